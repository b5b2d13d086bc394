# shellcheck shell=sh
# Library: put artifacts into the product's hot-deploy folders, atomically and as the service
# user, and wait for the node's own deployment log lines. Sourced after backups.sh, files.sh
# (as_owner, fail) and log_since.sh (log_since, log_lines), and a generated header that sets
#   OWNER     the EI service user (owns EI_HOME: every touch of its folders is done as it)
#   SERVER    <profile>/repository/deployment/server (the four folders under it)
#   STAGE     <profile>/tmp/bps-artifacts: where uploads land, outside every hot-deploy folder,
#             on the same file system (a rename, never a copy, puts a file in place)
#   MANIFEST  root's list of what this tool deployed ('sha256 rel' lines): only these are pruned
#   WAIT      seconds to wait for the deployment lines (the product polls every 15 s)
# shellcheck disable=SC2016

# receive DIR NAME SIZE SHA [NAME SIZE SHA ...]: the files DIR/NAME (sent by SFTP into DIR,
# the SSH user's private 0700 folder) are checked (one sha256sum for all) and become staged
# copies $STAGE/NAME written by the owner, in ONE process: a runuser or a few processes per
# file cost more than the bytes. DIR is then removed.
receive() {
    _in=$1
    shift
    _files='' _sums='' _sizes='' _i=0
    for _a in "$@"; do
        case $((_i % 3)) in
            0) case $_a in *[!a-z0-9]* | '') fail "bad staged name $_a" ;; esac
               _name=$_a _files="$_files $_in/$_a" ;;
            1) _sizes="$_sizes$_name $_a
" ;;
            2) _sums="$_sums$_a  $_in/$_name
" ;;
        esac
        _i=$((_i + 1))
    done
    if ! printf '%s' "$_sums" | sha256sum -c --quiet - >/dev/null 2>&1; then
        rm -rf -- "$_in"
        fail "the upload arrived corrupted (sha256 differs)"
    fi
    # shellcheck disable=SC2086
    _got=$(cat -- $_files | as_owner "$OWNER" sh -c '
        s=$1; shift
        (umask 022 && mkdir -p "$s") && find "$s" -mindepth 1 -maxdepth 1 -delete || exit 1
        names=""
        while [ $# -gt 0 ]; do
            head -c "$2" > "$s/$1" || exit 1
            names="$names $1"
            shift 3
        done
        cd "$s" && chmod 644 $names && stat -c "%n %s" -- $names' sh "$STAGE" "$@")
    rm -rf -- "$_in"
    [ "$_got
" = "$_sizes" ] || fail "cannot stage the artifacts in $STAGE (disk full?)"
    echo "staged $(($# / 3))"
}

# clear_stage: remove what a stopped run left staged
clear_stage() {
    as_owner "$OWNER" sh -c '[ ! -d "$1" ] || [ -L "$1" ] || find "$1" -mindepth 1 -maxdepth 1 -delete' sh "$STAGE"
}

# manifest_set REL [SHA]: this tool's record of REL (no SHA: forget it)
manifest_set() {
    mkdir -p "$(dirname "$MANIFEST")"
    { awk -v r="$1" '$2 != r' "$MANIFEST" 2>/dev/null || true; if [ -n "${2:-}" ]; then echo "$2 $1"; fi; } \
        > "$MANIFEST.tmp" && chmod 600 "$MANIFEST.tmp" && mv -f "$MANIFEST.tmp" "$MANIFEST"
}

# keep_old REL: the version in place goes to the backup folder (read by the owner, kept by root)
keep_old() {
    bak=$(backup_name "$SERVER/$1") || fail "cannot make a backup in $BACKUP_DIR"
    as_owner "$OWNER" sh -c '[ -f "$1" ] && [ ! -L "$1" ] && cat -- "$1"' sh "$SERVER/$1" > "$bak" ||
        fail "$SERVER/$1 is not a regular file: not replaced"
    prune_backups "$bak"
}

# put NAME SHA REL [old]: move the staged file NAME into its hot-deploy folder (one rename by
# the owner) and record SHA as what we deployed there
put() {
    _name=$1
    shift
    [ "$(stat -c %d -- "$STAGE")" = "$(stat -c %d -- "$SERVER/${2%%/*}")" ] ||
        fail "$STAGE and $SERVER are on different file systems: a move would be a copy the hot deployer could read half-written"
    if [ "${3:-}" = old ]; then keep_old "$2"; fi
    as_owner "$OWNER" mv -f -- "$STAGE/$_name" "$SERVER/$2" || fail "cannot move $2 into $SERVER"
    manifest_set "$2" "$1"
}

# take REL: undeploy: the file goes to the backup folder, then is removed by the owner
take() {
    if as_owner "$OWNER" test -f "$SERVER/$1"; then
        keep_old "$1"
        as_owner "$OWNER" rm -f -- "$SERVER/$1" || fail "cannot remove $SERVER/$1"
    fi
    manifest_set "$1"
}

# wait_lines OFFSET INODE < 'rel<TAB>ok pattern<TAB>fail pattern' lines: wait until each rel
# has its ok line (deployed) or a fail line; prints 'ok REL' / 'failed REL' + the node's error
# lines / 'timeout REL'; exit 3 when any did not deploy
wait_lines() {
    _todo=$(cat)
    _end=$(($(date +%s) + WAIT))
    _bad=0
    while [ -n "$_todo" ]; do
        _left=''
        _nl='
'
        _tab=$(printf '\t')
        while IFS=$_tab read -r _rel _ok _fail; do
            [ -n "$_rel" ] || continue
            if [ "$(log_since "$1" "$2" "$_fail" | sed -n 's/^count //p')" != 0 ]; then
                echo "failed $_rel"
                log_lines "$1" "$2" "$_fail" | tail -n 20 | sed 's/^/  | /'
                _bad=1
            elif [ "$(log_since "$1" "$2" "$_ok" | sed -n 's/^count //p')" != 0 ]; then
                echo "ok $_rel"
            else
                _left="$_left$_rel$_tab$_ok$_tab$_fail$_nl"
            fi
        done <<__TODO__
$_todo
__TODO__
        _todo=$_left
        [ -n "$_todo" ] || break
        if [ "$(date +%s)" -ge "$_end" ]; then
            printf '%s' "$_todo" | cut -f1 | sed 's/^/timeout /'
            _bad=1
            break
        fi
        sleep 0.5
    done
    [ "$_bad" = 0 ] || exit 3
}
