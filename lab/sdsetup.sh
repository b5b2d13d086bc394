#!/bin/sh
# Runs through chroot in one systemd lab host's root (its overlay on the shared Debian root)
# before its first boot: users, keys and sudo by lab/labusers.sh, exactly as on the namespace
# hosts (lab.py runs that file's text first, then this, and enables the host's services).
#
# Environment (set by lab.py): HOST_NAME LAB_PUBKEY (the key's text);
# stdin: the operator's sudo password.
set -eu
IFS= read -r sudo_pw
lab_users "$sudo_pw" "$LAB_PUBKEY"

echo "lab host $HOST_NAME: set up"
