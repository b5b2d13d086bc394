"""EI node processes: state, start/stop as the service user, the health gate, log tails.

Health of a node after a start (the gate every start passes before the next node starts):
* its JVM alive (the process of the service user with this profile's -Dcarbon.home),
* `WSO2 Carbon started` logged by this start (its log read from the byte offset taken before
  the start, across a log4j2 roll: tasks/scripts/log_since.sh),
* 200 from a page of the profile, on the node itself:
  https://<node>:<9443 + offset>/carbon/admin/login.jsp,
* in the cluster: every other running member logged `Member joined [<uuid>]: /<node>:<port>`
  since the start (Carbon's HazelcastClusteringAgent logs that on each member already running,
  never on the node that joins). Only starts pay for this: one more fact read per member.
A node that fails the gate stops the run there and keeps a pending-restart mark.
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass

from ..engine import remote
from . import systemd, vault
from ..engine.inventory import Host, Inventory
from ..engine.remote import HostSession, q
from ..engine.report import StepResult
from ..engine.runner import Run

STARTED_MARK = "WSO2 Carbon started"
LOGIN_PAGE = "/carbon/admin/login.jsp"  # served by the profile itself (not a 404 page)
ROLLED_LOGS = "wso2carbon-*.log*"  # log4j2.properties: filePattern wso2carbon-%d{MM-dd-yyyy}.log


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


def process_lib(inv: Inventory) -> str:
    """tasks/scripts/ei_process.sh for this cluster: ei_pids, ei_state, ei_kill, ei_stop
    (SIGKILL only after cluster.stop_timeout seconds)."""
    return remote.script("ei_process.sh", SERVICE_USER=inv.cluster.service_user,
                         PROFILE_HOME=inv.cluster.profile_home,
                         STOP_WAIT=int(inv.cluster.stop_timeout), UNIT=systemd.UNIT_NAME)


# the process fact: ei_state's line first, then the systemd unit's state and the JVMs' limits
PROC_FACT = "ei_state; unit_state; ei_limits"


def paths(inv: Inventory) -> dict[str, str]:
    home = inv.cluster.profile_home
    return {"pid": f"{home}/wso2carbon.pid", "log": f"{home}/repository/logs/wso2carbon.log",
            "ctl": f"{home}/bin/wso2server.sh"}


def state_probes(inv: Inventory, node_address: str, https: bool = True) -> dict[str, str]:
    """Process, pending mark, log size and inode; with https, the login page's HTTP status
    (a TLS handshake in the node's JVM: only where health matters, not to decide restarts)."""
    p = paths(inv)
    url = f"https://{node_address}:{inv.cluster.https_port}{LOGIN_PAGE}"
    probes = {
        "proc": process_lib(inv) + PROC_FACT,
        "log_size": f"stat -c '%s %i' {q(p['log'])} 2>/dev/null || echo 0",
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
    log_inode: str = ""  # with log_size: where the log stood (a roll changes the inode)
    unit: systemd.UnitState = systemd.UnitState()  # where systemd runs: the unit's state

    @property
    def healthy(self) -> bool:
        """Alive and the profile's login page answers 200 (not any status: a 404 or 500 page
        from a half-started server is not health)."""
        return self.running and self.https == "200"


def parse_state(facts: dict[str, remote.Fact]) -> NodeState:
    first, _, rest = facts["proc"].out.strip().partition("\n")
    proc = first.split()
    size, _, inode = facts["log_size"].out.strip().partition(" ")
    inode = inode.strip()
    https = facts["https"].out.strip()[-3:] if "https" in facts else ""
    return NodeState(bool(proc) and proc[0] == "alive", proc[1] if len(proc) > 1 else "",
                     https, int(size) if size.isdigit() else 0,
                     facts["pending"].out.strip(), inode if inode.isdigit() else "",
                     systemd.parse_unit_state(rest))


def node_state(run: Run, s: HostSession, extra: dict[str, str] | None = None):
    probes = state_probes(run.inv, s.host.address)
    probes.update(extra or {})
    facts = remote.read_facts(s, probes)
    return parse_state(facts), facts


# The locale EI runs in: our scripts run with LC_ALL=C, and a JVM started from there has the
# US-ASCII default charset (a non-ASCII DB password then fails to log in). WSO2's wso2server.sh
# also passes -Dfile.encoding=UTF8; this covers what the JVM takes from the locale besides that.
EI_LOCALE = systemd.EI_LOCALE


def _as_service_user(inv: Inventory, action: str) -> str:
    p = paths(inv)
    # the real wso2server.sh wants JAVA_HOME: cluster.java_home, else derived from the `java`
    # on PATH (java_probe and the preflight checked that JDK's version)
    jh = inv.cluster.java_home
    find = f"jh={q(jh)}\n" if jh else (
        "jh=${JAVA_HOME:-}; if [ -z \"$jh\" ]; then jb=$(readlink -f \"$(command -v java)\")"
        "; jh=${jb%/bin/java}; fi\n")
    start = vault.password_tmp_script(inv) if action == "start" else ""
    return (find + start +
            f"runuser -u {q(inv.cluster.service_user)} -- env JAVA_HOME=\"$jh\" "
            f"JVM_MEM_OPTS={q(inv.cluster.jvm_mem_opts)} LANG={EI_LOCALE} LC_ALL={EI_LOCALE} "
            f"sh {q(p['ctl'])} {action} </dev/null >/dev/null 2>&1\n")


def stop_script(inv: Inventory, unit: systemd.UnitState | None = None) -> str:
    """Stop this profile's JVM: SIGTERM as the product's own `stop` does, SIGKILL only after
    cluster.stop_timeout seconds (said in the output); only a process proven to be that JVM is
    signalled. Where systemd runs the node (its unit loaded): `systemctl stop` (which does the
    same with TimeoutStopSec), then ei_stop for a JVM left running outside the unit."""
    if unit is not None and unit.managed:
        return process_lib(inv) + systemd.unit_script(systemd.stop_commands(unit))
    return process_lib(inv) + "ei_stop\n"


def log_since_probe(inv: Inventory, offset: int, inode: str, pattern: str) -> str:
    """Probe: how many lines matching `pattern` (grep -E) the node's log got since `offset`
    bytes, where the log had `inode`; follows a roll into the rolled file (log_since.sh)."""
    return (remote.script("log_since.sh", LOG=paths(inv)["log"], ROLLED=ROLLED_LOGS)
            + f"log_since {int(offset)} {q(inode or '')} {q(pattern)}")


def parse_log_since(out: str) -> tuple[int, str]:
    """(matching lines, the rolled file read or '') from log_since's output."""
    count, rolled = 0, ""
    for line in out.splitlines():
        key, _, val = line.strip().partition(" ")
        if key == "count" and val.isdigit():
            count = int(val)
        elif key == "rolled" and val != "-":
            rolled = val
    return count, rolled


def joined_pattern(address: str, port: int) -> str:
    """grep -E for what a running member logs when the node at address:port joins."""
    return (r"Member joined \[[^]]*\]: /" + address.replace(".", r"\.") + f":{int(port)}"
            + r"([^0-9]|$)")


def log_tail(run: Run, s: HostSession, lines: int = 40) -> str:
    p = paths(run.inv)
    res = remote.run_script(s, f"tail -n {int(lines)} {q(p['log'])} 2>/dev/null || "
                               "echo '(no log yet)'")
    return res.stdout


def stop_node(run: Run, s: HostSession) -> StepResult:
    st, _ = node_state(run, s)
    if not st.running and not (st.unit.managed and st.unit.running):
        return StepResult(s.name, "stop", "ok", "not running")
    if run.check:
        return StepResult(s.name, "stop", "changed", f"would stop (pid {st.pid})"
                          + (f" with systemctl stop {systemd.UNIT_NAME}" if st.unit.managed
                             else ""))
    res = remote.run_script(s, stop_script(run.inv, st.unit), check=True, what="stop",
                            timeout=2 * run.inv.cluster.stop_timeout + 30)
    said = _stop_outcome(res)
    return StepResult(s.name, "stop", "changed", f"{said} (was pid {st.pid})",
                      killed=said != "stopped")


def _stop_outcome(res: remote.CmdResult) -> str:
    """ei_stop's own word: "stopped", or loudly, "KILLED: ..." after the graceful timeout."""
    said = [ln for ln in res.stdout.splitlines() if ln.startswith(("stopped", "killed"))]
    if said and said[-1].startswith("killed"):
        return "KILLED" + said[-1][len("killed"):] + " (cluster.stop_timeout)"
    return "stopped"


@dataclass(frozen=True)
class MemberMark:
    """Another running member and where its log stood before a start."""
    host: Host
    offset: int
    inode: str


def member_marks(run: Run, node: Host) -> tuple[list[MemberMark], list[str]]:
    """Before `node` starts: each other member's state and log position (one fact read per
    member). Returns the running members and notes on the ones that could not be read."""
    marks, notes = [], []
    probes = {"proc": process_lib(run.inv) + "ei_state",
              "log_size": f"stat -c '%s %i' {q(paths(run.inv)['log'])} 2>/dev/null || echo 0",
              "pending": "true"}
    for h in run.alive(run.inv.nodes):
        if h.name == node.name:
            continue
        try:
            st = parse_state(remote.read_facts(run.session(h), probes))
        except remote.RemoteError as e:
            notes.append(f"cannot read member {h.name} ({e}): its view of {node.name} is "
                         "not checked")
            continue
        if st.running:
            marks.append(MemberMark(h, st.log_size, st.log_inode))
    return marks, notes


def start_and_wait(run: Run, s: HostSession, step: str = "restart") -> StepResult:
    """(Re)start the node and hold until it is healthy; clear its pending mark only then."""
    inv = run.inv
    st, _ = node_state(run, s)
    if run.check:
        what = "restart" if st.running else "start"
        return StepResult(s.name, step, "changed", f"would {what}"
                          + (f" (pending: {st.pending.splitlines()[-1]})" if st.pending else ""))
    members, notes = member_marks(run, s.host)
    for n in notes:
        run.rep.line(s.name, "  " + n, "warn")
    # a PID file left by a JVM that died (crash, kill -9) may name a live process by now,
    # and the product's `start` then says "Process is already running" and starts nothing
    stale = (process_lib(inv) + f"if [ -z \"$(ei_pids)\" ]; then runuser -u "
             f"{q(inv.cluster.service_user)} -- rm -f -- {q(paths(inv)['pid'])}; fi\n")
    if st.unit.managed:
        # systemd runs this node: stop (a JVM started outside the unit first, by ei_stop), then
        # systemctl start; never two JVMs of the profile at once
        steps = systemd.start_commands(st.unit, st.running)
        stops = [x for x in steps if x != "systemctl-start"]
        script = (process_lib(inv) + systemd.unit_script(stops) + stale
                  + systemd.unit_script(["systemctl-start"]))
        if "stop-outside" in steps:
            run.rep.line(s.name, f"  moving under systemd: pid {' '.join(st.unit.outside)} runs "
                                 f"outside {systemd.UNIT_NAME} (started the old way); it is "
                                 "stopped first, then the unit is started")
    else:
        stops = ["stop"] if st.running else []
        script = (stop_script(inv) if st.running else "") + stale + _as_service_user(inv, "start")
    res = remote.run_script(s, script, check=True, what="start",
                            timeout=2 * inv.cluster.stop_timeout + 60)
    killed = _stop_outcome(res) if stops else "stopped"
    if killed != "stopped":
        run.rep.line(s.name, f"  !!! {killed}: the old JVM did not stop within "
                             f"cluster.stop_timeout ({inv.cluster.stop_timeout}s)", "failed")
    ok, detail, last = wait_healthy(run, s, st, inv.cluster.health_timeout, members)
    killed_note = "" if killed == "stopped" else f"; {killed}"
    if not ok:
        p = paths(inv)
        res = remote.run_script(s, remote.pending_restart_script(
            "not healthy after the last start") + f"tail -n 40 {q(p['log'])} 2>/dev/null || "
            "echo '(no log yet)'")
        return StepResult(s.name, step, "failed",
                          f"not healthy after start: {detail}{killed_note}\n--- last lines of "
                          f"{p['log']} ---\n{res.stdout.rstrip()}", restarted=True,
                          killed=bool(killed_note))
    remote.run_script(s, remote.clear_pending_script(), check=True, what="clear pending mark")
    how = ""
    if st.unit.managed:
        how = f" by systemd ({systemd.UNIT_NAME}, enabled at boot)" \
            if last.unit.enabled == "enabled" else \
            f" by systemd ({systemd.UNIT_NAME}, NOT enabled at boot)"
        problem = systemd.limits_problem(last.unit)
        if problem:
            run.rep.line(s.name, f"  !!! {problem}", "failed")
            return StepResult(s.name, step, "failed", f"healthy{how}, but {problem}: {detail}",
                              restarted=True, killed=bool(killed_note))
    return StepResult(s.name, step, "changed", f"{'restarted' if st.running else 'started'}"
                      f"{how}, healthy: {detail}{killed_note}", restarted=True,
                      killed=bool(killed_note))


def health_problem(inv: Inventory, node: Host, st: NodeState, started: bool,
                   unseen: list[str]) -> str | None:
    """Pure: None when the node is healthy, else what is missing (the first failing gate)."""
    if not st.running:
        return "the process exited"
    if not started:
        return f"no '{STARTED_MARK}' logged since this start"
    if st.https != "200":
        return (f"https://{node.address}:{inv.cluster.https_port}{LOGIN_PAGE} answered "
                f"{st.https if st.https not in ('', '000') else 'nothing'}, expected 200")
    if unseen:
        port = inv.cluster.hazelcast_port
        return (f"not in the cluster: {', '.join(unseen)} did not log `Member joined [...]: "
                f"/{node.address}:{port}` since {node.name} started (every running member "
                f"logs each node that joins). Likely cause: the Hazelcast port {port} is "
                f"blocked between {node.name} and {', '.join(unseen)} (a firewall, a security "
                "group); check that each can open a TCP connection to the other on that port")
    return None


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


def wait_healthy(run: Run, s: HostSession, before: NodeState, timeout: int,
                 members: list[MemberMark] = ()) -> tuple[bool, str, NodeState]:
    """(healthy, what was seen, the node's state at the last poll: its unit and JVM limits)."""
    inv = run.inv
    extra = {"started": log_since_probe(inv, before.log_size, before.log_inode, STARTED_MARK),
             "launcher": launcher_probe(inv)}
    pattern = joined_pattern(s.host.address, inv.cluster.hazelcast_port)
    unseen = {m.host.name: m for m in members}
    t0 = time.monotonic()
    last_note = 0.0
    gone = 0
    jvm_seen = False
    while True:
        st, facts = node_state(run, s, extra)
        started, rolled = parse_log_since(facts["started"].out)
        launchers = int(facts["launcher"].out.strip() or 0) \
            if facts["launcher"].out.strip().isdigit() else 0
        if st.unit.managed and st.unit.main_pid:
            launchers = max(launchers, 1)  # the unit's script runs (systemd's MainPID)
        waited = time.monotonic() - t0
        jvm_seen = jvm_seen or st.running
        if st.running and started and st.healthy:
            # only now ask the members (one read each; the ones that saw it are not asked again)
            for name, m in list(unseen.items()):
                try:
                    f = remote.read_facts(run.session(m.host), {
                        "proc": process_lib(inv) + "ei_state",
                        "joined": log_since_probe(inv, m.offset, m.inode, pattern)})
                except remote.RemoteError as e:
                    run.rep.line(s.name, f"  cannot read member {name} ({e}): its view of "
                                         f"{s.name} is not checked", "warn")
                    del unseen[name]
                    continue
                # a member that stopped meanwhile has nothing to prove
                if parse_log_since(f["joined"].out)[0] or \
                        not f["proc"].out.startswith("alive"):
                    del unseen[name]
        problem = health_problem(inv, s.host, st, bool(started), sorted(unseen))
        if problem is None:
            seen = ", ".join(m.host.name for m in members)
            return True, (f"pid {st.pid}, {LOGIN_PAGE} on HTTPS {inv.cluster.https_port} "
                          f"answered 200, " + (f"joined the cluster (seen by {seen})"
                                               if seen else "no other member running")
                          + (f", log rolled at start ({rolled})" if rolled else "")
                          + f" after {waited:.1f}s"), st
        gone, dead = exited(st.running, launchers, gone)
        if dead:
            return False, "the process exited" + ("" if jvm_seen else
                                                  " (before its JVM was seen: see the log)"), st
        if waited > timeout:
            return False, f"timed out after {timeout}s: {problem}", st
        if waited - last_note >= 5:
            run.rep.line(s.name, f"  waiting for health ({waited:.0f}s / {timeout}s): {problem}")
            last_note = waited
        time.sleep(0.3 if not started or not st.healthy else 1.0)
