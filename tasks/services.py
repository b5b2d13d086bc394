"""EI node processes: state, start/stop as the service user, the health gate, log tails.

Health of a node = its process alive, `WSO2 Carbon started` in its log since this start, and
HTTPS on its own address and port answering. A node that fails the gate stops the run there.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

from . import remote
from .inventory import Inventory
from .remote import HostSession, q
from .report import StepResult
from .runner import Run

STARTED_MARK = "WSO2 Carbon started"

STOP_TIMEOUT = 120  # seconds a graceful stop (SIGTERM) may take before SIGKILL


def java_probe(service_user: str) -> str:
    """The node's JDK without starting a JVM: the JDK's `release` file names its version (a
    JVM per node per no-op run costs more than everything else the run does). Only a JDK
    without that file is asked with `java -version`, and then as the service user: root never
    runs a program from a path it has not proven to be root's own."""
    u = q(service_user)
    return ("jb=''; if [ -n \"${JAVA_HOME:-}\" ] && [ -x \"$JAVA_HOME/bin/java\" ]; then "
            "jb=\"$JAVA_HOME/bin/java\"; elif command -v java >/dev/null; then "
            "jb=$(command -v java); fi; "
            "if [ -n \"$jb\" ]; then jh=$(dirname \"$(dirname \"$(readlink -f \"$jb\")\")\"); "
            "v=$(sed -n 's/^JAVA_VERSION=\"\\(.*\\)\"/\\1/p' \"$jh/release\" 2>/dev/null); "
            "if [ -n \"$v\" ]; then echo \"java $v ($jh)\"; "
            f"elif id -u {u} >/dev/null 2>&1; then runuser -u {u} -- \"$jb\" -version 2>&1 "
            "| head -1; else echo \"java, version unknown ($jh has no release file)\"; fi; fi")


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
    # the real wso2server.sh wants JAVA_HOME; derive it from the node's java when unset
    return (f"jh=${{JAVA_HOME:-}}; if [ -z \"$jh\" ]; then jb=$(readlink -f \"$(command -v java)\")"
            f"; jh=${{jb%/bin/java}}; fi\n"
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
    script = (stop_script(inv) if st.running else "") + _as_service_user(inv, "start")
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


def wait_healthy(run: Run, s: HostSession, log_offset: int, timeout: int) -> tuple[bool, str]:
    p = paths(run.inv)
    extra = {"started": f"tail -c +{log_offset + 1} {q(p['log'])} 2>/dev/null | "
                        f"grep -c {q(STARTED_MARK)} || true"}
    t0 = time.monotonic()
    last_note = 0.0
    while True:
        st, facts = node_state(run, s, extra)
        started = facts["started"].out.strip() not in ("", "0")
        waited = time.monotonic() - t0
        if st.running and started and st.healthy:
            return True, f"pid {st.pid}, HTTPS {run.inv.cluster.https_port} answered " \
                         f"{st.https} after {waited:.1f}s"
        if not st.running and waited > 1.0:
            return False, "the process exited"
        if waited > timeout:
            why = ("process alive" if st.running else "process dead") + \
                  (", started mark seen" if started else ", no 'WSO2 Carbon started' in log") + \
                  f", HTTPS {st.https or 'no answer'}"
            return False, f"timed out after {timeout}s ({why})"
        if waited - last_note >= 5:
            run.rep.line(s.name, f"  waiting for health ({waited:.0f}s / {timeout}s)")
            last_note = waited
        time.sleep(0.3)
