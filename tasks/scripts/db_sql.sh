# shellcheck shell=sh
# SQL statements through the admin client (after db_client.sh). Generated header:
#   SQL    the statements, one or more lines
#   FORCE  1: go on after an error (the fact read: a column one server lacks must not hide
#          the other answers); 0: stop at the first error, exit non-zero
# The statements travel in a shell variable into the client's stdin, never in argv.
if [ "$FORCE" = 1 ]; then
    printf '%s\n' "$SQL" | bps_sql --force -N -B
else
    printf '%s\n' "$SQL" | bps_sql -N -B
fi
