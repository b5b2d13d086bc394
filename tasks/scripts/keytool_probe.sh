# shellcheck shell=sh
# Where keytool is on a node: prints its path, or nothing and exits 1.
# Sourced after a generated header that sets
#   JAVA_HOME   cluster.java_home: its bin/keytool ("" = the keytool on PATH), as
#               truststore_import.sh chooses it

if [ -n "$JAVA_HOME" ]; then
    [ -x "$JAVA_HOME/bin/keytool" ] && echo "$JAVA_HOME/bin/keytool"
else
    command -v keytool
fi
