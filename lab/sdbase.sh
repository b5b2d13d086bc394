#!/bin/sh
# Runs once inside the shared Debian root of the systemd lab hosts (lab.py, kind "systemd"),
# after its packages are installed and before any host uses it: what every host shares.
# Per-host files (hostname, machine-id, keys, users, address) come from sdsetup.sh.
set -eu

# Services are enabled per host (mariadb on db, nginx on lb), as their package leaves them there.
systemctl disable nginx.service mariadb.service
# host0's static address comes from systemd-networkd (10-host0.network, per host)
systemctl enable systemd-networkd.service

# SSH: keys only, as on the namespace hosts; host keys are made per host
cat > /etc/ssh/sshd_config.d/lab.conf <<'CONF'
# lab hosts: keys only (the operator's password is for sudo)
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
MaxStartups 100
MaxSessions 100
CONF
rm -f /etc/ssh/ssh_host_*

# A fresh image: no identity of its own (each host gets its own)
: > /etc/machine-id
rm -f /var/lib/dbus/machine-id /etc/hostname
rm -rf /var/log/journal
mkdir -p /var/log/journal
