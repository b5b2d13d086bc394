# shellcheck shell=sh
# Library: write files atomically, each one BY ITS OWNER, with 0600 backups and a roll-back of
# the whole set. Sourced after backups.sh (BACKUP_DIR STAMP KEEP); the generated part then
# calls stage/commit/fix_mode for each file, and prune at the end.
#
# Why by its owner: the EI service user owns EI_HOME. Whatever root does in a folder that user
# controls can be steered by a link the user plants there (cp -p, chown, chmod and keytool all
# follow links). So every read, write, rename and removal in such a place runs as that user
# (runuser), who can then reach nothing it could not reach anyway. Root keeps only what is in
# its own folders: the backups and this run's journal.
#
# The `sh -c '...'` bodies below are single-quoted on purpose: they run as the owner and take
# their values as arguments ($1...), never expanded by root's shell.
# shellcheck disable=SC2016

W=$(mktemp -d /tmp/.bps-files.XXXXXX)
: > "$W/journal"
tmp=''
tmp_owner=''

# as_owner USER CMD...: CMD as USER (directly when USER is root)
as_owner() {
    _u=$1
    shift
    if [ "$_u" = root ]; then "$@"; else runuser -u "$_u" -- "$@"; fi
}

fail() {
    echo "$*" >&2
    exit 1
}

# regular PATH: PATH is a regular file and not a link (as seen by the caller's user)
regular() {
    [ -f "$1" ] && [ ! -L "$1" ]
}

# stage OWNER GROUP MODE PATH SHA < base64: a verified temp file beside PATH, made by OWNER
stage() {
    tmp_owner=$1
    # a failed write (disk full) removes its own temp file: the caller never learns its name
    tmp=$(base64 -d | as_owner "$1" sh -c '
        d=$(dirname "$1") && (umask 022 && mkdir -p "$d") && t=$(mktemp "$d/.bps-tmp.XXXXXX") &&
        { cat > "$t" || { rm -f "$t"; exit 1; }; } && printf "%s\n" "$t"' sh "$4") ||
        fail "cannot write a temp file beside $4"
    got=$(as_owner "$1" sha256sum -- "$tmp" | cut -d' ' -f1)
    [ "$got" = "$5" ] || fail "transfer of $4 corrupted"
    if [ "$1" = root ]; then
        chown "root:$2" "$tmp" && chmod "$3" "$tmp"
    else
        as_owner "$1" chmod "$3" "$tmp" && { as_owner "$1" chgrp "$2" "$tmp" 2>/dev/null || true; }
    fi || fail "cannot set the owner and mode of $4"
}

# commit OWNER PATH [MODE OWNER GROUP of the old file]: back up the old file (read by OWNER,
# kept by root), then move the staged temp file over PATH
commit() {
    if [ $# -gt 2 ]; then
        bak=$(backup_name "$2") || fail "cannot make a backup in $BACKUP_DIR"
        as_owner "$1" sh -c '[ -f "$1" ] && [ ! -L "$1" ] && cat -- "$1"' sh "$2" > "$bak" ||
            fail "$2 is no longer a regular file: not replaced"
        echo "restore $1 $2 $bak $3 $4 $5" >> "$W/journal"
    else
        echo "remove $1 $2" >> "$W/journal"
    fi
    as_owner "$1" mv -f -- "$tmp" "$2" || fail "cannot move the new $2 into place"
    tmp=''
    echo "changed $2"
}

# fix_mode PATH OWNER GROUP MODE: root's own files only (a service user's file is rewritten)
fix_mode() {
    regular "$1" || fail "$1 is not a regular file"
    if ! { chown -h "$2:$3" "$1" && chmod "$4" "$1"; }; then
        fail "cannot set the owner and mode of $1"
    fi
    echo "fixed $1"
}

# restore OWNER PATH BACKUP MODE OWNER GROUP: the old content, owner and mode, exactly
restore() {
    as_owner "$1" sh -c '
        t=$(mktemp "$(dirname "$1")/.bps-tmp.XXXXXX") && cat > "$t" && chmod "$2" "$t" &&
        { [ "$(id -u)" != 0 ] || chown "$3:$4" "$t"; } && mv -f -- "$t" "$1"' \
        sh "$2" "$4" "$5" "$6" < "$3"
}

rollback() {
    set +e
    if [ -n "$tmp" ]; then as_owner "$tmp_owner" rm -f -- "$tmp"; fi
    sed -n '1!G;h;$p' "$W/journal" | while read -r op owner path bak mode fowner fgroup; do
        case $op in
            remove) as_owner "$owner" rm -f -- "$path" ;;
            restore) restore "$owner" "$path" "$bak" "$mode" "$fowner" "$fgroup" ;;
        esac
    done
}

# prune: keep the newest KEEP backups of each file this run backed up
prune() {
    while read -r op _ _ bak _; do
        if [ "$op" = restore ]; then prune_backups "$bak"; fi
    done < "$W/journal"
}

on_exit() {
    rc=$?
    if [ "$rc" -ne 0 ]; then rollback; fi
    rm -rf "$W"
}
trap on_exit EXIT
