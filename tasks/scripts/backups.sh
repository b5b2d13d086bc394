# shellcheck shell=sh
# Library: the backups of the files the tool replaces, in one root-only folder on each host.
# Sourced after a generated header that sets
#   BACKUP_DIR  the folder (0700 root)
#   STAMP       this run's id, a UTC stamp (20261201T175500Z): backups sort by it
#   KEEP        how many backups of one file to keep

umask 077
mkdir -p "$BACKUP_DIR"
chmod 700 "$BACKUP_DIR"

# backup_name PATH: a new, unique backup file for PATH in this run (a run may back up a file
# twice): BACKUP_DIR/<path with / as %>.<STAMP>.XXXXXX~
backup_name() {
    mktemp "$BACKUP_DIR/$(printf '%s' "$1" | sed 's|^/||; s|/|%|g').$STAMP.XXXXXX~"
}

# prune_backups BACKUP: keep the newest KEEP backups of the file BACKUP belongs to
prune_backups() {
    _prefix=${1%."$STAMP".*}
    # only that file's backups (NAME.<UTC stamp>.XXXXXX~); the glob sorts them oldest first
    for _old in "$_prefix".[0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9]T[0-9][0-9][0-9][0-9][0-9][0-9]Z.*~; do
        if [ -e "$_old" ]; then printf '%s\n' "$_old"; fi
    done | head -n "-$KEEP" | while read -r _old; do rm -f -- "$_old"; done
}
