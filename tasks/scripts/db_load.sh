# shellcheck shell=sh
# Load WSO2's scripts into one database with ONE client invocation (after db_client.sh).
# Generated header:
#   DB   the database
#   SQL  its scripts, concatenated in load order
# The markers report the client's exit code per database (the caller re-reads the tables).
echo "@@LOAD $DB start"
printf '%s\n' "$SQL" | bps_sql --database="$DB"
echo "@@LOAD $DB rc=$?"
