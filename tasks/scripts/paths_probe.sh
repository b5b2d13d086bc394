# shellcheck shell=sh
# Probe: TCP to every target at once, 3 s at most. Generated header:
#   TARGETS  'name:address:port' words, space-separated
# Prints 'name:port open|refused|unreachable WHY' per target. "refused" proves the route (the
# host answered), which is all the preflight asks before the service is up. bash only for its
# /dev/tcp; the address and port reach it as arguments, never as code.

probe_one() {
    # the single quotes are bash's code; $0 and $1 are its arguments
    # shellcheck disable=SC2016
    _out=$(timeout 3 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$2" "$3" 2>&1)
    _rc=$?
    if [ "$_rc" = 0 ]; then
        echo "$1:$3 open"
    elif echo "$_out" | grep -qi refused; then
        echo "$1:$3 refused"
    elif [ "$_rc" = 124 ]; then
        echo "$1:$3 unreachable (timed out)"
    else
        echo "$1:$3 unreachable ${_out##*: }"
    fi
}

for t in $TARGETS; do
    # split name:address:port on ':' (by design; the header's words never hold blanks)
    # shellcheck disable=SC2086
    (IFS=:; set -- $t; probe_one "$1" "$2" "$3") &
done
wait
