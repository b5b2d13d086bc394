# shellcheck shell=sh
# Library for the server settings (after db_print_defaults.sh; backups.sh and files.sh follow
# inside the caller's subshell). Generated header:
#   WANT_BIND   the bind-address our drop-in sets
#   OURS        our drop-in's path
#   CHECK_BIND  1: after writing, the server's own reading must end with an address that lets
#               the nodes in (another file may still win)
#   RESTART     1: restart the server (only when its bind address must change)
#   INIT        systemd | sysv
#   SERVICE     the server's service name
#   LEGACY      our old drop-in, to back up and remove ('' = none)
#   MARK        the line that marks a file as ours
# The caller writes the drop-in with settings_check as the validation (a failure puts the old
# files back), then calls remove_legacy, and ends with settings_end "$?".

restart_server() {
    if [ "$INIT" = systemd ]; then
        systemctl restart "$SERVICE"
    else
        service "$SERVICE" restart
    fi
}

# the server's reading must end with our address (or all interfaces); else name the files
bind_check() {
    bps_bind=$(print_defaults | tr ' ' '\n' | sed -n 's/^--bind[-_]address=//p' | tail -n 1)
    case "$bps_bind" in
        "$WANT_BIND" | 0.0.0.0 | '*' | '::') ;;
        *)
            echo "BPS-BIND-OTHER: the server would still read bind-address = $bps_bind, from:" \
                "$(grep -r -l -i -E '^[[:space:]]*bind[-_]address' /etc/my.cnf /etc/mysql \
                    /etc/my.cnf.d 2>/dev/null | grep -v -x -F "$OURS" | tr '\n' ' ')"
            exit 1
            ;;
    esac
}

settings_check() {
    if [ "$CHECK_BIND" = 1 ]; then
        bind_check || return 1
    fi
    if [ "$RESTART" = 1 ]; then
        restart_server </dev/null || return 1
    fi
}

remove_legacy() {
    [ -n "$LEGACY" ] || return 0
    if [ -f "$LEGACY" ] && [ ! -L "$LEGACY" ] && grep -q -F "$MARK" "$LEGACY"; then
        bak=$(backup_name "$LEGACY") && cat "$LEGACY" >"$bak" && rm -f "$LEGACY" &&
            echo "removed $LEGACY" && prune_backups "$bak"
    fi
}

# only a failed restart leaves the server down: never restart it after a failed check
settings_end() {
    if [ "$1" -ne 0 ] && [ "$RESTART" = 1 ] && ! pgrep -x 'mariadbd|mysqld' >/dev/null; then
        restart_server </dev/null >/dev/null 2>&1
        echo 'restart with the new settings failed: previous settings restored and the' \
            'server started again' >&2
    fi
    if [ "$1" -eq 0 ] && [ "$RESTART" = 1 ]; then
        echo "restarted $SERVICE"
    fi
    exit "$1"
}
