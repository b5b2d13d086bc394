# shellcheck shell=sh
# Library: prepare EI_HOME for `fab configure` (root's part; the files in it are written by
# files.sh as their owner). Sourced after a generated header that sets
#   SERVICE_USER  the account EI runs as (owns EI_HOME)
#   EI_HOME       the EI installation
#   BACKUP_DIR    where replaced files are kept (root's, 0700)
#   STAMP         this run's UTC stamp (backup names)
#   STATE_FILE    what configure remembers having rendered (root's, 0600)

# create_user: the service user, a system account without a shell, at home in EI_HOME
create_user() {
    id -u "$SERVICE_USER" >/dev/null 2>&1 ||
        useradd --system --user-group --home-dir "$EI_HOME" --no-create-home \
            --shell /usr/sbin/nologin "$SERVICE_USER"
}

# chown_home: EI_HOME to the service user (first: the files are then written as their owner)
chown_home() {
    chown -R "$SERVICE_USER:$SERVICE_USER" "$EI_HOME"
}

# move_aside NAME: another version of the JDBC driver out of lib/; lib/ is the service user's,
# so the jar is read and removed as that user, and kept by root
move_aside() {
    (umask 077; mkdir -p "$BACKUP_DIR")
    runuser -u "$SERVICE_USER" -- cat -- "$EI_HOME/lib/$1" > "$BACKUP_DIR/lib-$1.$STAMP~"
    runuser -u "$SERVICE_USER" -- rm -f -- "$EI_HOME/lib/$1"
}

# remember BASE64: replace STATE_FILE atomically with the decoded text
remember() {
    mkdir -p "$(dirname "$STATE_FILE")"
    (umask 077; echo "$1" | base64 -d > "$STATE_FILE.tmp") && mv -f "$STATE_FILE.tmp" "$STATE_FILE"
}
