# shellcheck shell=sh
# Every bind-address line of the server's option files: file TAB [section] TAB value, in the
# order the server reads them (each folder's *.cnf in byte order, as the shell's glob sorts
# them under LC_ALL=C). The caller keeps the server's own sections.
for f in /etc/my.cnf /etc/mysql/*.cnf /etc/mysql/*/*.cnf /etc/my.cnf.d/*.cnf; do
    [ -f "$f" ] || continue
    awk -v f="$f" '
        /^[[:space:]]*\[/ { s = $0; gsub(/[][[:space:]]/, "", s); sec = tolower(s); next }
        tolower($0) ~ /^[[:space:]]*bind[-_]address[[:space:]]*=/ {
            v = $0
            sub(/^[^=]*=[[:space:]]*/, "", v)
            sub(/[[:space:]]*(#.*)?$/, "", v)
            print f "\t" sec "\t" v
        }' "$f" 2>/dev/null
done
true
