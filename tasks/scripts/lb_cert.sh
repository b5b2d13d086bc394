# shellcheck shell=sh
# The LB's TLS certificate and key: generate them (self-signed), upload the user's own, or fix
# the key's owner and mode. Sourced after backups.sh and a generated header that sets
#   MODE        generate | upload | fix-key-mode
#   CERT_DIR    the folder of both (root's, 0755)
#   CERT_PATH KEY_PATH CSR_PATH   where they go
#   NAMES       the names the certificate must cover, space-separated (service, console)
#   KEY_BITS DAYS   generate: RSA key size, validity
#   REQ_CNF     generate: openssl's request config (CN, subjectAltName, key usage)
#   CRT_B64 KEY_B64   upload: the user's certificate and key, base64 (on stdin with this script)
# The new files are made and checked in a private temp folder beside the old ones, which are
# backed up and replaced only when every check passed: a failure leaves them untouched.

set -e
umask 077
if [ "$MODE" = fix-key-mode ]; then
    chown root:root "$KEY_PATH"
    chmod 600 "$KEY_PATH"
    exit 0
fi
mkdir -p "$CERT_DIR"
chmod 755 "$CERT_DIR"
t=$(mktemp -d "$CERT_DIR/.bps-certs.XXXXXX")
trap 'rm -rf "$t"' EXIT

fail() {
    echo "$1" >&2
    exit 1
}

if [ "$MODE" = generate ]; then
    what="the new certificate"
    printf '%s' "$REQ_CNF" > "$t/req.cnf"
    openssl genpkey -algorithm RSA -pkeyopt "rsa_keygen_bits:$KEY_BITS" -out "$t/server.key" \
        2>/dev/null
    openssl req -new -sha256 -key "$t/server.key" -config "$t/req.cnf" -out "$t/server.csr"
    # `x509 -req` drops the request's extensions: give them again with -extfile
    openssl x509 -req -sha256 -days "$DAYS" -in "$t/server.csr" -signkey "$t/server.key" \
        -extfile "$t/req.cnf" -extensions ext -out "$t/server.crt" 2>/dev/null
else
    what="certs.cert_file"
    printf '%s' "$CRT_B64" | base64 -d > "$t/server.crt"
    printf '%s' "$KEY_B64" | base64 -d > "$t/server.key"
    openssl x509 -in "$t/server.crt" -noout >/dev/null 2>&1 ||
        fail "certs.cert_file is not a PEM certificate"
    a=$(openssl x509 -in "$t/server.crt" -noout -pubkey | openssl pkey -pubin -outform DER |
        sha256sum)
    b=$(openssl pkey -in "$t/server.key" -pubout -outform DER 2>/dev/null | sha256sum) ||
        fail "certs.key_file is not a readable, unencrypted private key"
    [ "$a" = "$b" ] || fail "certs.cert_file and certs.key_file do not match each other"
fi
for n in $NAMES; do
    openssl x509 -in "$t/server.crt" -noout -checkhost "$n" | grep -q 'does match' ||
        fail "$what does not cover the name $n"
done

for p in "$CERT_PATH" "$KEY_PATH"; do
    if [ -f "$p" ]; then
        bak=$(backup_name "$p")
        cat -- "$p" > "$bak"
        prune_backups "$bak"
    fi
done
chown root:root "$t/server.key" "$t/server.crt"
chmod 600 "$t/server.key"
chmod 644 "$t/server.crt"
mv -f "$t/server.key" "$KEY_PATH"
mv -f "$t/server.crt" "$CERT_PATH"
if [ -f "$t/server.csr" ]; then
    chown root:root "$t/server.csr"
    chmod 644 "$t/server.csr"
    mv -f "$t/server.csr" "$CSR_PATH"
fi
echo "$MODE done"
