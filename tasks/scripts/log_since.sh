# shellcheck shell=sh
# Library: count the lines a log got since a byte offset that match a pattern, across a roll.
# Reads only (run as root, it never writes and never reads a link or a non-regular file).
# Sourced after a generated header that sets
#   LOG      the live log, e.g. <profile>/repository/logs/wso2carbon.log
#   ROLLED   glob of the rolled names in the same folder (log4j2's filePattern:
#            wso2carbon-%d{MM-dd-yyyy}.log -> wso2carbon-*.log*)
#
# log4j2 rolls the log daily and at 10 MB, also right at a start: the offset taken before the
# start then points into the rolled file, and the new log starts at byte 0. A roll shows as a
# new inode (or a smaller size) at LOG; the old file is the rolled one with the old inode (or,
# when none has it, e.g. copied and truncated, the newest rolled file).

_regular() { [ -f "$1" ] && [ ! -L "$1" ]; }

# _since_find OFFSET INODE: sets _rolled (the rolled file to read, or -) and where to start
# reading it (_from_rolled) and the live log (_from)
_since_find() {
    _off=$1 _ino=$2 _rolled=- _from=$(($1 + 1)) _from_rolled=$(($1 + 1))
    _dir=$(dirname -- "$LOG")
    _now_ino=$(stat -c %i -- "$LOG" 2>/dev/null || echo)
    _now_size=$(stat -c %s -- "$LOG" 2>/dev/null || echo 0)
    if [ -n "$_ino" ] && [ "$_ino" != 0 ] &&
        { [ "$_now_ino" != "$_ino" ] || [ "$_now_size" -lt "$_off" ]; }; then
        _newest='' _newest_t=0
        for _f in "$_dir"/$ROLLED; do
            _regular "$_f" || continue
            if [ "$(stat -c %i -- "$_f")" = "$_ino" ]; then _rolled=$_f; break; fi
            _t=$(stat -c %Y -- "$_f")
            if [ -z "$_newest" ] || [ "$_t" -gt "$_newest_t" ]; then _newest=$_f _newest_t=$_t; fi
        done
        if [ "$_rolled" = - ] && [ -n "$_newest" ]; then _rolled=$_newest; fi
        _from=1
    fi
}

# _since_cat: the text found by _since_find
_since_cat() {
    {
        if [ "$_rolled" != - ]; then tail -c +"$_from_rolled" -- "$_rolled"; echo; fi
        if _regular "$LOG"; then tail -c +"$_from" -- "$LOG"; fi
    } 2>/dev/null
}

# log_since OFFSET INODE PATTERN: prints "rolled PATH|-" then "count N" (grep -E PATTERN)
log_since() {
    _since_find "$1" "$2"
    echo "rolled $_rolled"
    _n=$(_since_cat | grep -cE -- "$3")
    echo "count ${_n:-0}"
}

# log_lines OFFSET INODE PATTERN: the lines since OFFSET that match (grep -E PATTERN)
log_lines() {
    _since_find "$1" "$2"
    _since_cat | grep -E -- "$3"
}
