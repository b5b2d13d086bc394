# shellcheck shell=sh
# Library: the backups of the files the tool replaces, in one root-only folder on each host.
# Sourced after a generated header that sets
#   BACKUP_DIR  the folder (0700 root)
#   STAMP       this run's id, a UTC stamp (20261201T175500Z): backups sort by it
#   KEEP        how many backups of one file (and how many run manifests) to keep
#
# Each run that replaces a file also lists it in its run manifest, BACKUP_DIR/runs/STAMP, one
# line per backup: `b MODE OWNER GROUP BACKUP PATH` (the file's metadata before the run, path
# last). So "what run X replaced, and how it was before" is one file per host: `fab rollback`
# reads the newest manifest and puts those files back. A run that replaces nothing (a no-op
# deploy) writes no manifest.

umask 077
mkdir -p "$BACKUP_DIR"
chmod 700 "$BACKUP_DIR"

# backup_name PATH: a new, unique backup file for PATH in this run (a run may back up a file
# twice), recorded in this run's manifest: BACKUP_DIR/<path with / as %>.<STAMP>.XXXXXX~
backup_name() {
    _bak=$(mktemp "$BACKUP_DIR/$(printf '%s' "$1" | sed 's|^/||; s|/|%|g').$STAMP.XXXXXX~") ||
        return 1
    record_backup "$1" "$_bak" || return 1
    printf '%s\n' "$_bak"
}

# record_backup PATH BACKUP: one line in this run's manifest (made, and older manifests
# pruned to the newest KEEP, on the run's first backup). The metadata is read without
# following a link (stat, not stat -L); the writers refuse a link at PATH anyway.
record_backup() {
    _runs="$BACKUP_DIR/runs"
    _m="$_runs/$STAMP"
    if [ ! -e "$_m" ]; then
        mkdir -p "$_runs" && chmod 700 "$_runs" && : >> "$_m" || return 1
        # run manifests sort by their stamp (undone ones and rollbacks carry a suffix)
        find "$_runs" -mindepth 1 -maxdepth 1 -type f -name '[0-9]*Z*' -printf '%f\n' |
            sort | head -n "-$KEEP" | while read -r _old; do rm -f -- "$_runs/$_old"; done
    fi
    _meta=$(stat -c '%a %U %G' -- "$1") || return 1
    printf 'b %s %s %s\n' "$_meta" "$2" "$1" >> "$_m"
}

# prune_backups BACKUP: keep the newest KEEP backups of the file BACKUP belongs to
prune_backups() {
    _prefix=${1%."$STAMP".*}
    # only that file's backups (NAME.<UTC stamp>.XXXXXX~); the glob sorts them oldest first
    for _old in "$_prefix".[0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9]T[0-9][0-9][0-9][0-9][0-9][0-9]Z.*~; do
        if [ -e "$_old" ]; then printf '%s\n' "$_old"; fi
    done | head -n "-$KEEP" | while read -r _old; do rm -f -- "$_old"; done
}
