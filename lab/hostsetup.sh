#!/bin/sh
# Runs as PID 1 of a lab host's fresh PID/mount/UTS/IPC namespaces (inside its network
# namespace), prepares the host's private view of the file system and users, then execs sshd
# so sshd stays PID 1: killing it kills every process of the host.
#
# Environment (set by lab.py): HOST_NAME HOST_IP HOST_DIR LAB_PUBKEY SUDO_PW_FILE
set -eu
D="$HOST_DIR"

# This mount namespace is private (unshare default): nothing below leaks to the machine.
mount --make-rprivate /

# /etc: the machine's /etc as lower layer, writes go to the host's upper dir.
mount -t overlay "lab-etc-$HOST_NAME" \
    -o "lowerdir=/etc,upperdir=$D/etc-upper,workdir=$D/etc-work" /etc

# /var/lib: the machine's as lower layer (dpkg, sudo, ... state), writes stay on this host.
mount -t overlay "lab-varlib-$HOST_NAME" \
    -o "lowerdir=/var/lib,upperdir=$D/varlib-upper,workdir=$D/varlib-work" /var/lib

# A new host has no deploy-tool state, whatever the machine's own /var/lib holds.
rm -rf /var/lib/bps-deploy

# Private directories (prepared by lab.py under $D/fs), on top of the overlays.
for p in root home opt srv var/lib/mysql var/lib/nginx var/log var/www var/tmp var/mail var/backups run tmp; do
    [ -d "/$p" ] || mkdir -p "/$p"
    mount --bind "$D/fs/$p" "/$p"
done

hostname "$HOST_NAME"
echo "$HOST_NAME" > /etc/hostname
printf '127.0.0.1\tlocalhost\n%s\t%s\n::1\tlocalhost ip6-localhost ip6-loopback\n' \
    "$HOST_IP" "$HOST_NAME" > /etc/hosts

# No IPv6 link-local address on the lab link (loopback keeps ::1 for nginx's default site).
echo 1 > /proc/sys/net/ipv6/conf/eth0/disable_ipv6 2>/dev/null || true

# Users, keys and sudo (lab/labusers.sh, copied beside this script): created here so they
# land in this host's /etc overlay.
# shellcheck source=lab/labusers.sh
. "$(dirname "$0")/labusers.sh"
lab_users "$(cat "$SUDO_PW_FILE")" "$(cat "$LAB_PUBKEY")"

install -d -m 0755 -o root -g root /run/sshd
install -d -m 1777 /run/lock
chmod 1777 /tmp /var/tmp

echo "lab host $HOST_NAME ($HOST_IP) ready, starting sshd"
exec /usr/sbin/sshd -D -e -f "$D/sshd_config"
