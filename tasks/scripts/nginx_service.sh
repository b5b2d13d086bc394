# shellcheck shell=sh
# nginx on the LB: say whether it runs, start it or reload it.
# Sourced after a generated header that sets
#   ACTION      status (prints running | stopped) | start | reload
#   IF_RUNNING  1: do nothing when nginx is not running (prints "nginx not running")
#   VALIDATE    1: `nginx -t` first; exit 3 with nginx's words on stderr when it fails
# systemctl when systemd runs, else the init script through `service`, else nginx itself.

nginx_running() {
    if [ -s /run/nginx.pid ] && kill -0 "$(cat /run/nginx.pid)" 2>/dev/null; then
        return 0
    fi
    pgrep -x nginx >/dev/null 2>&1
}

if [ "$ACTION" = status ]; then
    if nginx_running; then echo running; else echo stopped; fi
    exit 0
fi
if [ "$IF_RUNNING" = 1 ] && ! nginx_running; then
    echo 'nginx not running'
    exit 0
fi
if [ "$VALIDATE" = 1 ] && ! vout=$(nginx -t 2>&1); then
    echo "$vout" >&2
    echo 'nginx -t failed: not reloaded' >&2
    exit 3
fi
# the output goes through a temp file: a daemon that kept our stdout would hold the SSH channel
o=$(mktemp)
if [ -d /run/systemd/system ]; then
    systemctl "$ACTION" nginx
elif command -v service >/dev/null 2>&1 && [ -x /etc/init.d/nginx ]; then
    service nginx "$ACTION"
elif [ "$ACTION" = start ]; then
    nginx
else
    nginx -s reload
fi </dev/null >"$o" 2>&1
rc=$?
cat "$o" >&2
rm -f "$o"
exit "$rc"
