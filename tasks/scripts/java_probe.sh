# shellcheck shell=sh
# Probe: the node's JDK without starting a JVM: the JDK's `release` file names its version (a
# JVM per node per no-op run costs more than everything else the run does). Only a JDK without
# that file is asked with `java -version`, and then as the service user: root never runs a
# program from a path it has not proven to be root's own. Generated header:
#   SERVICE_USER      the account EI runs as
#   JAVA_HOME_WANTED  cluster.java_home: that JDK; empty: the `java` on PATH
# Prints `java VERSION (HOME)`, `java, version unknown (...)`, `missing HOME/bin/java`, or
# nothing (no java at all).
jb=''
rj=''
jh=''
if [ -n "$JAVA_HOME_WANTED" ]; then
    jh=$JAVA_HOME_WANTED
    jb="$jh/bin/java"
    if [ ! -x "$jb" ]; then echo "missing $jb"; jb=''; fi
    rj=$(readlink -f "$jh")
else
    if [ -n "${JAVA_HOME:-}" ] && [ -x "$JAVA_HOME/bin/java" ]; then
        jb="$JAVA_HOME/bin/java"
    elif command -v java >/dev/null; then
        jb=$(command -v java)
    fi
    if [ -n "$jb" ]; then jh=$(dirname "$(dirname "$(readlink -f "$jb")")"); fi
fi
if [ -n "$jb" ]; then
    v=$(sed -n 's/^JAVA_VERSION="\(.*\)"/\1/p' "$jh/release" 2>/dev/null)
    if [ -n "$v" ]; then
        if [ -n "$rj" ] && [ "$rj" != "$jh" ]; then
            echo "java $v ($jh -> $rj)"
        else
            echo "java $v ($jh)"
        fi
    elif id -u "$SERVICE_USER" >/dev/null 2>&1; then
        runuser -u "$SERVICE_USER" -- "$jb" -version 2>&1 | head -1
    else
        echo "java, version unknown ($jh has no release file)"
    fi
fi
