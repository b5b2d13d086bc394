# shellcheck shell=sh
# What openssl says about the LB's certificate and key (read only; parsed by
# tasks/steps/certs/facts.py: parse_cert_probe). Sourced after a generated header that sets
#   CERT  the certificate (PEM)
#   KEY   its private key (never printed: only its public half's sha256)

if [ -s "$CERT" ]; then
    echo CERT=present
    openssl x509 -in "$CERT" -noout -subject -nameopt RFC2253 -enddate -fingerprint -sha256 2>&1
    openssl x509 -in "$CERT" -noout -ext subjectAltName 2>/dev/null
    openssl x509 -in "$CERT" -noout -text 2>/dev/null | grep -m1 'Public-Key:'
    echo "CERTPUB=$(openssl x509 -in "$CERT" -noout -pubkey 2>/dev/null |
        openssl pkey -pubin -outform DER 2>/dev/null | sha256sum | cut -d' ' -f1)"
    echo "PEM=$(base64 -w0 < "$CERT")"
else
    echo CERT=missing
fi
if [ -s "$KEY" ]; then
    echo KEY=present
    echo "KEYSTAT=$(stat -c '%a %U' "$KEY")"
    echo "KEYPUB=$(openssl pkey -in "$KEY" -pubout -outform DER 2>/dev/null |
        sha256sum | cut -d' ' -f1)"
else
    echo KEY=missing
fi
