"""The health gate every start passes before the next node starts (see the package's docstring)."""
from __future__ import annotations

import time
from dataclasses import dataclass

from ...engine import remote
from ...engine.inventory import Host, Inventory
from ...engine.remote import HostSession, q
from ...engine.runner import Run
from .state import LOGIN_PAGE, NodeState, node_state, parse_state, paths, process_lib

STARTED_MARK = "WSO2 Carbon started"
ROLLED_LOGS = "wso2carbon-*.log*"  # log4j2.properties: filePattern wso2carbon-%d{MM-dd-yyyy}.log


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
              "log_size": process_lib(run.inv) + "ei_log_pos",
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
    return process_lib(inv) + "ei_launchers"


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
