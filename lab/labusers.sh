# shellcheck shell=sh
# The lab's users, keys and sudo rules, the same on both kinds of lab host. Sourced by
# hostsetup.sh (namespace hosts, copied beside it) and run before sdsetup.sh (systemd hosts:
# lab.py gives chroot this file's text, then sdsetup.sh's, since the chroot cannot see it).

# lab_users SUDO_PASSWORD PUBKEY_TEXT: root and deploy log in with the key only; deploy has
# passwordless sudo, operator sudo with SUDO_PASSWORD (the tool's ssh.sudo_password path).
lab_users() {
    users_pw=$1
    users_key=$2
    # A '!' password means "locked" to sshd, so key-only users get '*'.
    if grep -q '^root:!' /etc/shadow; then usermod -p '*' root; fi
    id deploy >/dev/null 2>&1 || useradd -m -s /bin/bash -c "lab deploy user" deploy
    usermod -p '*' deploy
    if ! id operator >/dev/null 2>&1; then
        # Debian has a group "operator" (37): the user joins it
        if getent group operator >/dev/null; then set -- -g operator; else set --; fi
        useradd -m -s /bin/bash -c "lab operator (sudo with password)" "$@" operator
    fi
    printf 'operator:%s\n' "$users_pw" | chpasswd

    cp -n /etc/skel/.bashrc /etc/skel/.profile /root/ 2>/dev/null || true
    for u in root deploy operator; do
        h=$(getent passwd "$u" | cut -d: -f6)
        install -d -m 0700 -o "$u" -g "$u" "$h/.ssh"
        printf '%s\n' "$users_key" > "$h/.ssh/authorized_keys"
        chown "$u:$u" "$h/.ssh/authorized_keys"
        chmod 0600 "$h/.ssh/authorized_keys"
    done
    chmod 0700 /root

    umask 0227
    printf 'deploy ALL=(ALL:ALL) NOPASSWD: ALL\n' > /etc/sudoers.d/deploy
    printf 'Defaults:operator lecture=never\noperator ALL=(ALL:ALL) ALL\n' > /etc/sudoers.d/operator
    umask 022
}
