# shellcheck shell=sh
# Library: Secure Vault on an EI node (tasks/steps/vault). Sourced after a generated header that
# sets
#   SERVICE_USER   the account EI runs as
#   PASSWORD_FILE  root's 0600 file with the primary keystore's password
#   PASSWORD_TMP   <profile>/password-tmp, which Carbon reads at start and then deletes
#   BACKUP_DIR     the tool's backups (tasks/scripts/backups.sh)

# password_tmp: the keystore password into password-tmp before a start without systemd: root
# reads its own file, the service user writes (root never writes into that user's folder, where
# a planted link could steer it)
password_tmp() {
    if [ -f "$PASSWORD_FILE" ]; then
        # shellcheck disable=SC2016  # $1 is expanded by the service user's shell, on purpose
        runuser -u "$SERVICE_USER" -- sh -c 'umask 077; cat > "$1"' sh "$PASSWORD_TMP" \
            < "$PASSWORD_FILE"
    fi
}

# scrub_unvaulted NAME MARK: remove the backups of the secured file NAME (its backup name as
# backups.sh makes it, without the stamp) that lack MARK, one of the tool's aliases for it:
# made before Secure Vault was switched on, they hold passwords in clear
scrub_unvaulted() {
    for _b in "$BACKUP_DIR/$1".*~; do
        [ -f "$_b" ] || continue
        grep -qF -- "$2" "$_b" || rm -f -- "$_b"
    done
}

# scrub_plain NAME: remove the backups of cipher-text.properties with a `[value]` in clear (the
# shipped file: WSO2's default keystore and admin passwords in brackets)
scrub_plain() {
    for _b in "$BACKUP_DIR/$1".*~; do
        [ -f "$_b" ] || continue
        if grep -q '=\[' "$_b"; then rm -f -- "$_b"; fi
    done
}
