# shellcheck shell=sh
# Library: start the profile the product's own way, as the service user. Sourced after
# ei_process.sh (ei_pids) and a generated header that sets
#   SERVICE_USER      the account EI runs as
#   JAVA_HOME_WANTED  cluster.java_home; empty: derived from the `java` on PATH (the JDK whose
#                     version java_probe.sh and the preflight checked)
#   JVM_MEM_OPTS      cluster.jvm_mem_opts
#   LOCALE            the locale EI runs in: our scripts run with LC_ALL=C, and a JVM started
#                     from there has the US-ASCII default charset (a non-ASCII DB password then
#                     fails to log in)
#   CTL               <profile>/bin/wso2server.sh
#   PID_FILE          <profile>/wso2carbon.pid

# ei_clear_stale_pid: a PID file left by a JVM that died (crash, kill -9) may name a live
# process by now, and the product's `start` then says "Process is already running" and starts
# nothing. Removed as the service user, whose file it is.
ei_clear_stale_pid() {
    if [ -z "$(ei_pids)" ]; then
        runuser -u "$SERVICE_USER" -- rm -f -- "$PID_FILE"
    fi
}

# ei_ctl ACTION: the product's wso2server.sh ACTION as the service user (it wants JAVA_HOME)
ei_ctl() {
    _jh=$JAVA_HOME_WANTED
    if [ -z "$_jh" ]; then
        _jh=${JAVA_HOME:-}
        if [ -z "$_jh" ]; then
            _jb=$(readlink -f "$(command -v java)")
            _jh=${_jb%/bin/java}
        fi
    fi
    runuser -u "$SERVICE_USER" -- env JAVA_HOME="$_jh" JVM_MEM_OPTS="$JVM_MEM_OPTS" \
        LANG="$LOCALE" LC_ALL="$LOCALE" sh "$CTL" "$1" </dev/null >/dev/null 2>&1
}
