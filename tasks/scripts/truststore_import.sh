# shellcheck shell=sh
# Import the LB certificate into a node's truststores with keytool, AS THE SERVICE USER.
# Sourced after a generated header that sets
#   SERVICE_USER  owner of EI_HOME and of the truststores (once configure has run)
#   EI_HOME       the EI installation the stores are in
#   ALIAS         the certificate's alias (the service name)
#   FINGERPRINT   its SHA-256 fingerprint as keytool prints it (AB:CD:...)
#   STATE_FILE    root's record of "<store sha256> <fingerprint> <path>" (no JVM on a no-op)
#   PENDING_FILE PENDING_REASON   the node's pending-restart mark
#   JAVA_HOME     cluster.java_home: its bin/keytool is used ("" = the keytool on PATH)
#   STORES        the truststores to work on, one path a line
#   PASSWORD_B64  the stores' password, base64 (this script travels on stdin, never in argv)
#   CERT_PEM      the LB certificate
# and sourced after backups.sh. Prints "IMPORTED <store>" / "SAME <store>" on stdout and
# "ERROR <store>: <why>" on stderr; exits 1 when any store failed.
#
# keytool follows links and runs the JDK's code: both run as the service user, who owns the
# stores and their folders anyway, so nothing it can plant there steers root. Root keeps only
# its own files: the state record, the backups, the pending mark. Only an EI_HOME that nobody
# but root can change (a fresh unzip, before configure hands it to the service user) is worked
# on as root.
# The `sh -c '...'` body is single-quoted on purpose: its values come as arguments.
# shellcheck disable=SC2016

# the keytool work below runs in a child shell (as the service user): it reads JAVA_HOME
if [ -n "${JAVA_HOME:-}" ]; then export JAVA_HOME; else unset JAVA_HOME; fi
rc=0
imported=0
w=$(mktemp -d /tmp/.bps-kt.XXXXXX)
trap 'rm -rf "$w"' EXIT
mkdir -p "$(dirname "$STATE_FILE")"
chmod 700 "$(dirname "$STATE_FILE")"
touch "$STATE_FILE"
chmod 600 "$STATE_FILE"

# as_kt CMD...: CMD as the user the keytool work runs as (KT_USER, chosen by prepare)
as_kt() {
    if [ "$KT_USER" = root ]; then "$@"; else runuser -u "$KT_USER" -- "$@"; fi
}

# prepare: choose KT_USER; it may read the password and the certificate in the folder root made
prepare() {
    if [ -n "$(find "$EI_HOME" \( ! -user root -o -perm -0002 -o -perm -0020 \) -print -quit \
               2>/dev/null)" ]; then
        KT_USER=$SERVICE_USER
    else
        KT_USER=root
    fi
    chown -R "$KT_USER" "$w"
}

# the keytool work on one store, as the service user; says SAME, IMPORTED or ERROR on stdout
KEYTOOL_WORK='
w=$1 store=$2 alias=$3 fp=$4
kt=keytool
if [ -n "${JAVA_HOME:-}" ] && [ -x "$JAVA_HOME/bin/keytool" ]; then kt="$JAVA_HOME/bin/keytool"; fi
[ -f "$store" ] && [ ! -L "$store" ] || { echo "ERROR $store: not a regular file"; exit 0; }
if ! out=$("$kt" -list -keystore "$store" -storepass:file "$w/pw" 2>&1); then
    case "$out" in
        *password*) echo "ERROR $store: the store password is wrong (secrets.truststore_password)" ;;
        *) echo "ERROR $store: keytool cannot read it: $(echo "$out" | tail -n 2 | tr "\n" " ")" ;;
    esac
    exit 0
fi
have() {
    "$kt" -list -keystore "$1" -storepass:file "$w/pw" -alias "$alias" 2>/dev/null |
        sed -n "s/.*(SHA-256): *//p" | tr -d " \r"
}
old=$(have "$store")
if [ "$old" = "$fp" ]; then echo "SAME $store"; exit 0; fi
umask 077
tmp=$(mktemp "$(dirname "$store")/.bps-tmp.XXXXXX") || { echo "ERROR $store: cannot write beside it"; exit 0; }
cat -- "$store" > "$tmp" && chmod --reference="$store" "$tmp"
if [ -n "$old" ]; then "$kt" -delete -alias "$alias" -keystore "$tmp" -storepass:file "$w/pw" >/dev/null 2>&1; fi
if "$kt" -importcert -noprompt -trustcacerts -alias "$alias" -file "$w/lb.crt" \
     -keystore "$tmp" -storepass:file "$w/pw" > "$w/out" 2>&1 && [ "$(have "$tmp")" = "$fp" ]; then
    echo "READY $store $tmp"
else
    rm -f -- "$tmp"
    echo "ERROR $store: keytool import failed: $(tail -n 2 "$w/out" | tr "\n" " ")"
fi
'

# remember PATH: record the store's sha256 (read as the service user) and the fingerprint
remember() {
    s=$(as_kt sha256sum -- "$1" | cut -d' ' -f1)
    grep -v " $1\$" "$STATE_FILE" > "$w/state.new" || true
    echo "$s $FINGERPRINT $1" >> "$w/state.new"
    cat "$w/state.new" > "$STATE_FILE"
}

import_store() {
    said=$(as_kt sh -c "$KEYTOOL_WORK" sh "$w" "$1" "$ALIAS" "$FINGERPRINT")
    case "$said" in
        "SAME "*)
            remember "$1"
            echo "$said" ;;
        "READY "*)
            tmp=${said#READY "$1" }
            bak=$(backup_name "$1")
            as_kt cat -- "$1" > "$bak"
            prune_backups "$bak"
            if as_kt mv -f -- "$tmp" "$1"; then
                remember "$1"
                imported=1
                echo "IMPORTED $1"
            else
                echo "ERROR $1: cannot move the new store into place" >&2
                rc=1
            fi ;;
        *)
            echo "${said:-ERROR $1: keytool said nothing}" >&2
            rc=1 ;;
    esac
}

finish() {
    # a JVM reads its truststore at start: the node needs a restart
    if [ "$imported" = 1 ]; then
        echo "$PENDING_REASON" >> "$PENDING_FILE"
        chmod 600 "$PENDING_FILE"
    fi
    exit "$rc"
}

# the password and the certificate go into root's private folder (umask 077: 0600 files)
printf '%s' "$PASSWORD_B64" | base64 -d > "$w/pw"
printf '%s\n' "$CERT_PEM" > "$w/lb.crt"
prepare
set -f
ifs=$IFS
IFS='
'
for store in $STORES; do
    IFS=$ifs
    import_store "$store"
done
finish
