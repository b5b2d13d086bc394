#!/bin/sh
# Runs through chroot in one systemd lab host's root (its overlay on the shared Debian root)
# before its first boot: users, keys and sudo exactly as hostsetup.sh makes them on the
# namespace hosts (lab.py enables the host's services).
#
# Environment (set by lab.py): HOST_NAME LAB_PUBKEY (the key's text);
# stdin: the operator's sudo password.
set -eu
IFS= read -r sudo_pw

# A '!' password means "locked" to sshd, so key-only users get '*'.
if grep -q '^root:!' /etc/shadow; then usermod -p '*' root; fi
id deploy >/dev/null 2>&1 || useradd -m -s /bin/bash -c "lab deploy user" deploy
usermod -p '*' deploy
if ! id operator >/dev/null 2>&1; then
    # Debian has a group "operator" (37): the user joins it, as on the namespace hosts
    if getent group operator >/dev/null; then set -- -g operator; else set --; fi
    useradd -m -s /bin/bash -c "lab operator (sudo with password)" "$@" operator
fi
printf 'operator:%s\n' "$sudo_pw" | chpasswd

cp -n /etc/skel/.bashrc /etc/skel/.profile /root/ 2>/dev/null || true
for u in root deploy operator; do
    h=$(getent passwd "$u" | cut -d: -f6)
    install -d -m 0700 -o "$u" -g "$u" "$h/.ssh"
    printf '%s\n' "$LAB_PUBKEY" > "$h/.ssh/authorized_keys"
    chown "$u:$u" "$h/.ssh/authorized_keys"
    chmod 0600 "$h/.ssh/authorized_keys"
done
chmod 0700 /root

umask 0227
printf 'deploy ALL=(ALL:ALL) NOPASSWD: ALL\n' > /etc/sudoers.d/deploy
printf 'Defaults:operator lecture=never\noperator ALL=(ALL:ALL) ALL\n' > /etc/sudoers.d/operator
umask 022

echo "lab host $HOST_NAME: set up"
