#!/bin/sh
# Stand-in for <EI_HOME>/wso2/business-process/bin/wso2server.sh (TEST LAB ONLY).
# Usage: wso2server.sh start|stop|restart|status
# Like the real daemon mode: start returns at once; the pid goes to <profile>/wso2carbon.pid and
# stdout/stderr are appended to <profile>/repository/logs/wso2carbon.log.

SCRIPT=$(readlink -f "$0")
CARBON_HOME=$(cd "$(dirname "$SCRIPT")/.." && pwd)
EI_HOME=$(cd "$CARBON_HOME/../.." && pwd)
PID_FILE="$CARBON_HOME/wso2carbon.pid"
LOG_DIR="$CARBON_HOME/repository/logs"
LOG_FILE="$LOG_DIR/wso2carbon.log"
JAR="$CARBON_HOME/bin/standin.jar"

find_java() {
    if [ -n "$JAVA_HOME" ] && [ -x "$JAVA_HOME/bin/java" ]; then
        JAVACMD="$JAVA_HOME/bin/java"
    else
        JAVACMD=$(command -v java) || { echo "Error: JAVA_HOME is not defined correctly and java is not on PATH." >&2; exit 1; }
    fi
}

# pid of the running server, empty if none (a zombie or a reused pid does not count)
running_pid() {
    [ -f "$PID_FILE" ] || return 1
    pid=$(tr -dc '0-9' < "$PID_FILE" 2>/dev/null)
    [ -n "$pid" ] || return 1
    [ -r "/proc/$pid/cmdline" ] || return 1
    (tr '\0' ' ' < "/proc/$pid/cmdline") 2>/dev/null | grep -q "StandIn" || return 1
    echo "$pid"
}

do_start() {
    if pid=$(running_pid); then
        echo "Process is already running (pid $pid)"
        return 0
    fi
    find_java
    mkdir -p "$LOG_DIR" || exit 1
    cd "$CARBON_HOME" || exit 1
    NODE_NAME=$(hostname 2>/dev/null || cat /etc/hostname)
    # lab knobs read by StandIn (STANDIN_ROLL_BYTES, STANDIN_STOP_SECONDS), root's file
    # shellcheck disable=SC1091
    if [ -r /etc/default/bps-standin ]; then set -a; . /etc/default/bps-standin; set +a; fi
    # setsid: own session, no controlling tty; closed stdio so an SSH session does not hang.
    # The -D options the product's wso2server.sh (EI 6.6.0) passes that change what this JVM
    # does: file.encoding=UTF8 above all (the JDBC driver encodes the DB password with the
    # default charset; without it a JVM started under LC_ALL=C uses US-ASCII).
    setsid "$JAVACMD" -Xms16m -Xmx64m -Xss512k -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
        -XX:MaxMetaspaceSize=64m -Xshare:auto \
        -Dfile.encoding=UTF8 -Djava.net.preferIPv4Stack=true -Dcom.ibm.cacheLocalHost=true \
        -Djava.security.egd=file:/dev/./urandom \
        -Dcarbon.home="$CARBON_HOME" -Dei.home="$EI_HOME" -Dnode.name="$NODE_NAME" \
        -Dwso2.server.standalone=true -cp "$JAR" StandIn \
        </dev/null >>"$LOG_FILE" 2>&1 &
    pid=$!
    echo "$pid" > "$PID_FILE"
    echo "Starting WSO2 Carbon (stand-in) ... pid $pid, log $LOG_FILE"
}

do_stop() {
    if ! pid=$(running_pid); then
        echo "Process is not running"
        rm -f "$PID_FILE"
        return 0
    fi
    echo "Stopping WSO2 Carbon (pid $pid) ..."
    kill -TERM "$pid" 2>/dev/null
    i=0
    while running_pid >/dev/null && [ $i -lt 300 ]; do
        sleep 0.1
        i=$((i + 1))
    done
    if running_pid >/dev/null; then
        echo "Process did not stop within 30 s, killing it"
        kill -KILL "$pid" 2>/dev/null
        sleep 0.5
    fi
    rm -f "$PID_FILE"
}

case "$1" in
    start|--start|-start) do_start ;;
    stop|--stop|-stop) do_stop ;;
    restart|--restart|-restart) do_stop; do_start ;;
    status|--status|-status)
        if pid=$(running_pid); then echo "WSO2 Carbon is running (pid $pid)"; exit 0
        else echo "WSO2 Carbon is not running"; exit 3; fi ;;
    *) echo "Usage: $0 start|stop|restart|status" >&2; exit 2 ;;
esac
