# shellcheck shell=sh
# How the DB server is run: "systemd" or "sysv", then the first service name that exists.
if [ -d /run/systemd/system ]; then echo systemd; else echo sysv; fi
for s in mariadb mysql mysqld; do
    if [ -e "/etc/init.d/$s" ] || [ -e "/lib/systemd/system/$s.service" ] ||
        [ -e "/usr/lib/systemd/system/$s.service" ] || [ -e "/etc/systemd/system/$s.service" ]; then
        echo "$s"
        break
    fi
done
