# shellcheck shell=sh
# Library: find and stop the EI JVM of one EI_HOME without trusting anything the service user
# can write. Sourced after a generated header that sets
#   SERVICE_USER  the account EI runs as
#   PROFILE_HOME  <EI_HOME>/wso2/business-process (CARBON_HOME of the profile)
#   STOP_WAIT     seconds a graceful stop may take before SIGKILL
#   UNIT          the systemd unit that runs the profile where systemd runs (wso2ei-bps.service)
#
# The PID file (<profile>/wso2carbon.pid) belongs to the service user, who could write any PID
# into it (root's sshd, or -1 for every process). So a PID counts only when the process is
# proven to be this profile's JVM: it runs as SERVICE_USER and its command line carries
# -Dcarbon.home=PROFILE_HOME as one argument. And it is signalled as SERVICE_USER, so even a PID
# reused between the proof and the signal can only be one of that user's own processes.

# ei_pids: the PIDs of this profile's JVM(s), one a line (none when not running)
ei_pids() {
    _real=$(readlink -f -- "$PROFILE_HOME" 2>/dev/null || printf '%s' "$PROFILE_HOME")
    for _p in $(pgrep -u "$SERVICE_USER" -f -- 'carbon[.]home=' 2>/dev/null); do
        if tr '\000' '\n' < "/proc/$_p/cmdline" 2>/dev/null |
            grep -qxF -e "-Dcarbon.home=$PROFILE_HOME" -e "-Dcarbon.home=$_real"; then
            echo "$_p"
        fi
    done
}

# ei_state: "alive PID..." or "dead"
ei_state() {
    _pids=$(ei_pids | tr '\n' ' ')
    if [ -n "$_pids" ]; then echo "alive $_pids"; else echo dead; fi
}

# ei_kill SIGNAL: signal every proven JVM of this profile, as the service user
ei_kill() {
    for _p in $(ei_pids); do
        runuser -u "$SERVICE_USER" -- kill "-$1" "$_p" 2>/dev/null || true
    done
}

# ei_stop: SIGTERM (what the product's `wso2server.sh stop` sends), wait up to STOP_WAIT
# seconds, then SIGKILL, said on stdout ("stopped" or "killed after N s")
ei_stop() {
    [ -n "$(ei_pids)" ] || { echo "not running"; return 0; }
    ei_kill TERM
    _waited=0
    while [ -n "$(ei_pids)" ] && [ "$_waited" -lt "$((STOP_WAIT * 5))" ]; do
        sleep 0.2
        _waited=$((_waited + 1))
    done
    if [ -n "$(ei_pids)" ]; then
        ei_kill KILL
        sleep 0.5
        echo "killed: still running ${STOP_WAIT}s after SIGTERM, sent SIGKILL"
    else
        echo "stopped"
    fi
    runuser -u "$SERVICE_USER" -- rm -f -- "$PROFILE_HOME/wso2carbon.pid"
}

# unit_state: on a host that systemd runs (its runtime dir, and PID 1 is systemd), "systemd",
# the unit's ActiveState, SubState, MainPID, UnitFileState and NRestarts (key=value lines), then
# each proven JVM as "in PID" (in the unit's cgroup) or "out PID" (started some other way);
# elsewhere "none"
unit_state() {
    if [ -d /run/systemd/system ] && [ "$(cat /proc/1/comm 2>/dev/null)" = systemd ]; then
        echo systemd
        systemctl show -p LoadState -p ActiveState -p SubState -p MainPID -p UnitFileState \
            -p NRestarts -p LimitNOFILE -p LimitNOFILESoft \
            -- "$UNIT" 2>/dev/null
        for _p in $(ei_pids); do
            if grep -q "/$UNIT\$" "/proc/$_p/cgroup" 2>/dev/null; then
                echo "in $_p"
            else
                echo "out $_p"
            fi
        done
    else
        echo none
    fi
}

# ei_limits: "limits PID SOFT HARD" (open files) of each proven JVM
ei_limits() {
    for _p in $(ei_pids); do
        awk -v p="$_p" '/^Max open files/ {print "limits", p, $4, $5}' "/proc/$_p/limits" \
            2>/dev/null
    done
}

# stop_outside: stop a JVM started outside the unit (the old way) before systemd takes over
stop_outside() {
    echo "moving under systemd: stopping the JVM started outside $UNIT"
    ei_stop
}

# unit_stop: `systemctl stop`, then systemd's word on how it went: "killed: ..." when it had to
# SIGKILL after TimeoutStopSec (Result=timeout), else "stopped" (the lines ei_stop prints)
unit_stop() {
    systemctl stop "$UNIT"
    if [ "$(systemctl show -p Result --value "$UNIT")" = timeout ]; then
        echo "killed: still running after TimeoutStopSec (systemd sent SIGKILL)"
    else
        echo "stopped"
    fi
}

# unit_start: Type=simple returns once the script runs; the health gate does the waiting
unit_start() {
    systemctl reset-failed "$UNIT" 2>/dev/null
    systemctl start "$UNIT"
}

# ei_log_pos: the size and inode of the profile's log ("0" when there is none): where the log
# stood, so a later read starts there and sees a roll (a new inode)
ei_log_pos() {
    stat -c '%s %i' -- "$PROFILE_HOME/repository/logs/wso2carbon.log" 2>/dev/null || echo 0
}

# ei_launchers: how many copies of the product's bin/wso2server.sh run as SERVICE_USER (it stays
# the JVM's parent and runs `java -version` before the JVM exists: a start under way)
ei_launchers() {
    _ctl=$(printf '%s' "$PROFILE_HOME/bin/wso2server.sh" | sed 's/[.]/[.]/g')
    pgrep -u "$SERVICE_USER" -f -- "$_ctl" 2>/dev/null | wc -l
}

# ei_login_code URL: the HTTP status the profile's login page answers (000: no answer in 3 s)
ei_login_code() {
    curl -sk -o /dev/null -w '%{http_code}' --max-time 3 -- "$1" 2>/dev/null || echo 000
}
