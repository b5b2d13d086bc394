# shellcheck shell=sh
# Library: the kernel settings of our drop-in. Sourced after a generated header that sets
#   KEYS    the settings (dotted names), space-separated
#   DROPIN  our drop-in (/etc/sysctl.d/60-wso2ei.conf)
#   AFTER   the prefix of each line sysctl_apply prints

# sysctl_now: "key=value" for each of KEYS, read from /proc/sys (no procps needed);
# "key=MISSING" when this kernel has no such setting
sysctl_now() {
    for _k in $KEYS; do
        _f=/proc/sys/$(echo "$_k" | tr . /)
        if [ -r "$_f" ]; then
            echo "$_k=$(tr -s '\t ' '  ' < "$_f")"
        else
            echo "$_k=MISSING"
        fi
    done
}

# sysctl_apply: apply our drop-in only (not `sysctl --system`: the other files are not ours to
# re-apply now; at boot systemd-sysctl reads them all), then print what the kernel took
sysctl_apply() {
    if command -v sysctl >/dev/null 2>&1; then
        sysctl -q -p "$DROPIN" >/dev/null 2>&1
    else
        /lib/systemd/systemd-sysctl "$DROPIN" >/dev/null 2>&1
    fi || echo "applying $DROPIN reported errors" >&2
    sysctl_now | sed "s/^/$AFTER/"
}
