# shellcheck shell=sh
# Library: bps_sql, the database admin client. Generated header:
#   BPS_CNF_B64  the client option file ([client] user=, password=), base64
# The login reaches the client on file descriptor 3 from a here-document: no file on the DB
# host ever holds the password, not even for a moment, and none is left behind by a Ctrl-C or
# a dropped connection. It is never in argv or the environment: printf is a builtin, and a
# command substitution's result is not expanded again. SQL comes on the client's stdin.
BPS_CLIENT=$(command -v mariadb || command -v mysql) || {
    echo 'BPS-NO-CLIENT: no mariadb/mysql client on this host'
    exit 127
}

bps_sql() {
    "$BPS_CLIENT" --defaults-extra-file=/dev/fd/3 --connect-timeout=10 "$@" 3<<__BPS_CNF__
$(printf '%s' "$BPS_CNF_B64" | base64 -d)
__BPS_CNF__
}
