"""EI node processes: state, start/stop as the service user, the health gate, log tails.

Health of a node = its process alive, `WSO2 Carbon started` in its log since this start, and
HTTPS on its own address and port answering. A node that fails the gate stops the run there.
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass

from . import remote
from .inventory import Inventory
from .remote import HostSession, q
from .report import StepResult
from .runner import Run

STARTED_MARK = "WSO2 Carbon started"

STOP_TIMEOUT = 120  # seconds a graceful stop (SIGTERM) may take before SIGKILL


def java_probe(service_user: str, java_home: str | None = None) -> str:
    """The node's JDK without starting a JVM: the JDK's `release` file names its version (a
    JVM per node per no-op run costs more than everything else the run does). Only a JDK
    without that file is asked with `java -version`, and then as the service user: root never
    runs a program from a path it has not proven to be root's own.

    java_home (cluster.java_home): that JDK, else the `java` on PATH. Prints
    `java VERSION (HOME)`, `java, version unknown (...)`, `missing HOME/bin/java`, or nothing."""
    u = q(service_user)
    if java_home:
        find = (f"jh={q(java_home)}; jb=\"$jh/bin/java\"; "
                "if [ ! -x \"$jb\" ]; then echo \"missing $jb\"; jb=''; fi; "
                "rj=$(readlink -f \"$jh\"); ")
    else:
        find = ("jb=''; if [ -n \"${JAVA_HOME:-}\" ] && [ -x \"$JAVA_HOME/bin/java\" ]; then "
                "jb=\"$JAVA_HOME/bin/java\"; elif command -v java >/dev/null; then "
                "jb=$(command -v java); fi; "
                "if [ -n \"$jb\" ]; then jh=$(dirname \"$(dirname \"$(readlink -f \"$jb\")\")\"); fi; ")
    return (find +
            "if [ -n \"$jb\" ]; then "
            "v=$(sed -n 's/^JAVA_VERSION=\"\\(.*\\)\"/\\1/p' \"$jh/release\" 2>/dev/null); "
            "if [ -n \"$v\" ]; then if [ -n \"${rj:-}\" ] && [ \"$rj\" != \"$jh\" ]; then "
            "echo \"java $v ($jh -> $rj)\"; else echo \"java $v ($jh)\"; fi; "
            f"elif id -u {u} >/dev/null 2>&1; then runuser -u {u} -- \"$jb\" -version 2>&1 "
            "| head -1; else echo \"java, version unknown ($jh has no release file)\"; fi; fi")


SUPPORTED_JDKS = (8, 11)  # WSO2 EI 6.6.0: JDK 8 and 11 only


def jdk_major(version: str) -> int | None:
    """'1.8.0_392' -> 8, '11.0.13' -> 11, '17' -> 17, '21-ea' -> 21; None if not a version."""
    m = re.match(r"\s*(\d+)(?:\.(\d+))?", version)
    if not m:
        return None
    major = int(m.group(1))
    if major == 1 and m.group(2):
        major = int(m.group(2))
    return major


def jdk_problem(java: str, java_home: str | None = None) -> str | None:
    """Pure: why the JDK a node would run EI on is refused (None: JDK 8 or 11).

    `java` is java_probe's output. Unknown versions are refused too: EI would start on
    whatever it is and fail later in ways that do not name the JDK."""
    where = f"cluster.java_home = {java_home!r}" if java_home else "the `java` on PATH " \
        "(cluster.java_home is not set)"
    fix = ("install JDK 11 (or 8) on the node and set cluster.java_home in hosts.toml to "
           "it, e.g. java_home = \"/usr/lib/jvm/java-11-openjdk-amd64\"")
    java = java.strip()
    if not java:
        return f"no JDK found ({where}): {fix}"
    if java.startswith("missing "):
        return f"no JDK at {where}: {java.removeprefix('missing ')} does not exist: {fix}"
    m = re.match(r"java (\S+) \((.*)\)$", java) or \
        re.search(r'version "([^"]+)"()', java)
    found = f"{m.group(1)}" + (f" at {m.group(2)}" if m and m.group(2) else "") if m else java
    major = jdk_major(m.group(1)) if m else None
    if major is None:
        return (f"cannot tell the version of the JDK that would run EI ({where}: {java}); "
                f"WSO2 EI 6.6.0 runs on JDK 8 and 11 only: {fix}")
    if major not in SUPPORTED_JDKS:
        return (f"JDK {found} ({where}) is not supported: WSO2 EI 6.6.0 runs on JDK 8 and "
                f"11 only (its wso2server.sh warns and starts anyway); {fix}")
    return None


def process_lib(inv: Inventory, stop_wait: int = STOP_TIMEOUT) -> str:
    """tasks/scripts/ei_process.sh for this cluster: ei_pids, ei_state, ei_kill, ei_stop."""
    return remote.script("ei_process.sh", SERVICE_USER=inv.cluster.service_user,
                         PROFILE_HOME=inv.cluster.profile_home, STOP_WAIT=int(stop_wait))


def paths(inv: Inventory) -> dict[str, str]:
    home = inv.cluster.profile_home
    return {"pid": f"{home}/wso2carbon.pid", "log": f"{home}/repository/logs/wso2carbon.log",
            "ctl": f"{home}/bin/wso2server.sh"}


def state_probes(inv: Inventory, node_address: str, https: bool = True) -> dict[str, str]:
    """Process, pending mark, log size; with https, the HTTPS answer too (a TLS handshake in
    the node's JVM: only where health matters, not to decide restarts)."""
    p = paths(inv)
    url = f"https://{node_address}:{inv.cluster.https_port}/carbon/"
    probes = {
        "proc": process_lib(inv) + "ei_state",
        "log_size": f"stat -c %s {q(p['log'])} 2>/dev/null || echo 0",
        "pending": remote.probe_pending(),
    }
    if https:
        probes["https"] = (f"curl -sk -o /dev/null -w '%{{http_code}}' --max-time 3 {q(url)} "
                           "2>/dev/null || echo 000")
    return probes


@dataclass
class NodeState:
    running: bool
    pid: str
    https: str
    log_size: int
    pending: str

    @property
    def healthy(self) -> bool:
        return self.running and self.https not in ("", "000")


def parse_state(facts: dict[str, remote.Fact]) -> NodeState:
    proc = facts["proc"].out.strip().split()
    size = facts["log_size"].out.strip()
    https = facts["https"].out.strip()[-3:] if "https" in facts else ""
    return NodeState(bool(proc) and proc[0] == "alive", proc[1] if len(proc) > 1 else "",
                     https, int(size) if size.isdigit() else 0,
                     facts["pending"].out.strip())


def node_state(run: Run, s: HostSession, extra: dict[str, str] | None = None):
    probes = state_probes(run.inv, s.host.address)
    probes.update(extra or {})
    facts = remote.read_facts(s, probes)
    return parse_state(facts), facts


# The locale EI runs in: our scripts run with LC_ALL=C, and a JVM started from there has the
# US-ASCII default charset (a non-ASCII DB password then fails to log in). WSO2's wso2server.sh
# also passes -Dfile.encoding=UTF8; this covers what the JVM takes from the locale besides that.
EI_LOCALE = "C.UTF-8"


def _as_service_user(inv: Inventory, action: str) -> str:
    p = paths(inv)
    # the real wso2server.sh wants JAVA_HOME: cluster.java_home, else derived from the `java`
    # on PATH (java_probe and the preflight checked that JDK's version)
    jh = inv.cluster.java_home
    find = f"jh={q(jh)}\n" if jh else (
        "jh=${JAVA_HOME:-}; if [ -z \"$jh\" ]; then jb=$(readlink -f \"$(command -v java)\")"
        "; jh=${jb%/bin/java}; fi\n")
    return (find +
            f"runuser -u {q(inv.cluster.service_user)} -- env JAVA_HOME=\"$jh\" "
            f"LANG={EI_LOCALE} LC_ALL={EI_LOCALE} "
            f"sh {q(p['ctl'])} {action} </dev/null >/dev/null 2>&1\n")


def stop_script(inv: Inventory, wait: int = STOP_TIMEOUT) -> str:
    """Stop this profile's JVM: SIGTERM as the product's own `stop` does, SIGKILL only after
    `wait` seconds (said in the output); only a process proven to be that JVM is signalled."""
    return process_lib(inv, wait) + "ei_stop\n"


def log_tail(run: Run, s: HostSession, lines: int = 40) -> str:
    p = paths(run.inv)
    res = remote.run_script(s, f"tail -n {int(lines)} {q(p['log'])} 2>/dev/null || "
                               "echo '(no log yet)'")
    return res.stdout


def stop_node(run: Run, s: HostSession) -> StepResult:
    st, _ = node_state(run, s)
    if not st.running:
        return StepResult(s.name, "stop", "ok", "not running")
    if run.check:
        return StepResult(s.name, "stop", "changed", f"would stop (pid {st.pid})")
    res = remote.run_script(s, stop_script(run.inv), check=True, what="stop",
                            timeout=STOP_TIMEOUT + 30)
    return StepResult(s.name, "stop", "changed", f"{_stop_outcome(res)} (was pid {st.pid})")


def _stop_outcome(res: remote.CmdResult) -> str:
    """ei_stop's own word: "stopped", or loudly, "killed: ..." after the graceful timeout."""
    said = [ln for ln in res.stdout.splitlines() if ln.startswith(("stopped", "killed"))]
    return said[-1].upper() if said and said[-1].startswith("killed") else "stopped"


def start_and_wait(run: Run, s: HostSession, step: str = "restart") -> StepResult:
    """(Re)start the node and hold until it is healthy; clear its pending mark only then."""
    inv = run.inv
    st, _ = node_state(run, s)
    if run.check:
        what = "restart" if st.running else "start"
        return StepResult(s.name, step, "changed", f"would {what}"
                          + (f" (pending: {st.pending.splitlines()[-1]})" if st.pending else ""))
    # a PID file left by a JVM that died (crash, kill -9) may name a live process by now,
    # and the product's `start` then says "Process is already running" and starts nothing
    stale = (process_lib(inv) + f"if [ -z \"$(ei_pids)\" ]; then runuser -u "
             f"{q(inv.cluster.service_user)} -- rm -f -- {q(paths(inv)['pid'])}; fi\n")
    script = (stop_script(inv) if st.running else "") + stale + _as_service_user(inv, "start")
    res = remote.run_script(s, script, check=True, what="start", timeout=STOP_TIMEOUT + 60)
    killed = _stop_outcome(res) if st.running else "stopped"
    ok, detail = wait_healthy(run, s, st.log_size, inv.cluster.health_timeout)
    if not ok:
        tail = log_tail(run, s)
        return StepResult(s.name, step, "failed",
                          f"not healthy after start: {detail}\n--- last lines of "
                          f"{paths(inv)['log']} ---\n{tail.rstrip()}", restarted=True)
    remote.run_script(s, remote.clear_pending_script(), check=True, what="clear pending mark")
    return StepResult(s.name, step, "changed", f"{'restarted' if st.running else 'started'}, "
                      f"healthy: {detail}" + ("" if killed == "stopped" else f"; {killed}"),
                      restarted=True)


EXIT_POLLS = 3  # consecutive polls with neither the JVM nor its launcher: the start failed


def launcher_probe(inv: Inventory) -> str:
    """How many `sh <profile>/bin/wso2server.sh` of the service user run: the product's script
    stays the JVM's parent (it loops to restart on exit code 121) and runs `java -version`
    before the JVM exists, so a live launcher means the start is still under way."""
    ctl = paths(inv)["ctl"]
    return (f"pgrep -u {q(inv.cluster.service_user)} -f -- {q(ctl.replace('.', '[.]'))} "
            "2>/dev/null | wc -l")


def exited(running: bool, launchers: int, gone_before: int) -> tuple[int, bool]:
    """Pure: (polls in a row with neither the JVM nor its launcher, has the start failed).

    `wso2server.sh start` returns at once; its nohup'd copy checks the JDK and only then starts
    the JVM, which writes wso2carbon.pid seconds later. So neither "no JVM yet" nor "no PID
    file yet" is an exit: only the JVM and the script both gone, several polls in a row."""
    gone = 0 if running or launchers > 0 else gone_before + 1
    return gone, gone >= EXIT_POLLS


def wait_healthy(run: Run, s: HostSession, log_offset: int, timeout: int) -> tuple[bool, str]:
    p = paths(run.inv)
    extra = {"started": f"tail -c +{log_offset + 1} {q(p['log'])} 2>/dev/null | "
                        f"grep -c {q(STARTED_MARK)} || true",
             "launcher": launcher_probe(run.inv)}
    t0 = time.monotonic()
    last_note = 0.0
    gone = 0
    seen = False
    while True:
        st, facts = node_state(run, s, extra)
        started = facts["started"].out.strip() not in ("", "0")
        launchers = int(facts["launcher"].out.strip() or 0) \
            if facts["launcher"].out.strip().isdigit() else 0
        waited = time.monotonic() - t0
        seen = seen or st.running
        if st.running and started and st.healthy:
            return True, f"pid {st.pid}, HTTPS {run.inv.cluster.https_port} answered " \
                         f"{st.https} after {waited:.1f}s"
        gone, dead = exited(st.running, launchers, gone)
        if dead:
            return False, "the process exited" + ("" if seen else
                                                  " (before its JVM was seen: see the log)")
        if waited > timeout:
            why = ("process alive" if st.running else "process dead") + \
                  (", started mark seen" if started else ", no 'WSO2 Carbon started' in log") + \
                  f", HTTPS {st.https or 'no answer'}"
            return False, f"timed out after {timeout}s ({why})"
        if waited - last_note >= 5:
            run.rep.line(s.name, f"  waiting for health ({waited:.0f}s / {timeout}s)")
            last_note = waited
        time.sleep(0.3)
