"""Start and stop an EI node (steps on the step contract), and its log's tail.

Start: through systemctl where systemd runs the node (its unit loaded), else the product's own
`wso2server.sh start` as the service user (tasks/scripts/ei_start.sh); then the health gate
(health.py). Stop: SIGTERM, SIGKILL only after cluster.stop_timeout (ei_process.sh).
"""
from __future__ import annotations

from ...engine import remote
from ...engine.inventory import Inventory
from ...engine.plan import ActionFailed, Done, Plan
from ...engine.remote import HostSession, q
from ...engine.report import StepResult
from ...engine.runner import Run
from .. import systemd, vault
from .health import member_marks, wait_healthy
from .state import EI_LOCALE, NodeState, node_state, paths, process_lib


def start_lib(inv: Inventory) -> str:
    """tasks/scripts/ei_start.sh for this cluster (after process_lib): ei_clear_stale_pid,
    ei_ctl ACTION."""
    p = paths(inv)
    return remote.script("ei_start.sh", SERVICE_USER=inv.cluster.service_user,
                         JAVA_HOME_WANTED=inv.cluster.java_home or "",
                         JVM_MEM_OPTS=inv.cluster.jvm_mem_opts, LOCALE=EI_LOCALE, CTL=p["ctl"],
                         PID_FILE=p["pid"])


def _as_service_user(inv: Inventory, action: str) -> str:
    """The product's wso2server.sh ACTION as the service user (needs process_lib before it)."""
    start = vault.password_tmp_script(inv) if action == "start" else ""  # Secure Vault
    return start_lib(inv) + start + f"ei_ctl {q(action)}\n"


def stop_script(inv: Inventory, unit: systemd.UnitState | None = None) -> str:
    """Stop this profile's JVM: SIGTERM as the product's own `stop` does, SIGKILL only after
    cluster.stop_timeout seconds (said in the output); only a process proven to be that JVM is
    signalled. Where systemd runs the node (its unit loaded): `systemctl stop` (which does the
    same with TimeoutStopSec), then ei_stop for a JVM left running outside the unit."""
    if unit is not None and unit.managed:
        return process_lib(inv) + systemd.unit_script(systemd.stop_commands(unit))
    return process_lib(inv) + "ei_stop\n"


def start_script(inv: Inventory, st: NodeState) -> tuple[str, list[str]]:
    """The (re)start script for a node in state `st`, and the stops it makes first."""
    if st.unit.managed:
        # systemd runs this node: stop (a JVM started outside the unit first, by ei_stop), then
        # systemctl start; never two JVMs of the profile at once
        steps = systemd.start_commands(st.unit, st.running)
        stops = [x for x in steps if x != "systemctl-start"]
        return (process_lib(inv) + start_lib(inv) + systemd.unit_script(stops)
                + "ei_clear_stale_pid\n" + systemd.unit_script(["systemctl-start"])), stops
    stops = ["stop"] if st.running else []
    # Secure Vault: without systemd, the keystore password reaches the product here (the
    # unit's ExecStartPre does it under systemd)
    return (process_lib(inv) + start_lib(inv) + ("ei_stop\n" if st.running else "")
            + "ei_clear_stale_pid\n" + vault.password_tmp_script(inv) + "ei_ctl start\n"), stops


def _stop_outcome(res: remote.CmdResult) -> str:
    """ei_stop's own word: "stopped", or loudly, "KILLED: ..." after the graceful timeout."""
    said = [ln for ln in res.stdout.splitlines() if ln.startswith(("stopped", "killed"))]
    if said and said[-1].startswith("killed"):
        return "KILLED" + said[-1][len("killed"):] + " (cluster.stop_timeout)"
    return "stopped"


def log_tail(run: Run, s: HostSession, lines: int = 40) -> str:
    p = paths(run.inv)
    res = remote.run_script(s, f"tail -n {int(lines)} {q(p['log'])} 2>/dev/null || "
                               "echo '(no log yet)'")
    return res.stdout


# --------------------------------------------------------------------------- stop


def stop_plan(run: Run, st: NodeState) -> Plan:
    """Pure: stop the node when its JVM (or its unit) runs."""
    plan = Plan(noop="not running")
    if not st.running and not (st.unit.managed and st.unit.running):
        return plan
    inv = run.inv

    def stop(s: HostSession) -> Done:
        res = remote.run_script(s, stop_script(inv, st.unit), check=True, what="stop",
                                timeout=2 * inv.cluster.stop_timeout + 30)
        said = _stop_outcome(res)
        return Done(f"{said} (was pid {st.pid})", killed=said != "stopped")

    how = f" with systemctl stop {systemd.UNIT_NAME}" if st.unit.managed else ""
    return plan.add(f"stop EI (pid {st.pid or '?'}){how}", stop)


def stop_node(run: Run, s: HostSession) -> StepResult:
    st, _ = node_state(run, s)
    return run.apply(s, "stop", stop_plan(run, st))


# --------------------------------------------------------------------------- start


def start_plan(run: Run, st: NodeState) -> Plan:
    """Pure: (re)start the node and hold until it is healthy (always one action)."""
    what = "restart" if st.running else "start"
    pending = f" (pending: {st.pending.splitlines()[-1]})" if st.pending else ""
    # the work is a quiet action and the change line follows it: a failed gate then reads
    # "restart: failed: not healthy after start: ..." (the gate's own words, not the line's)
    return Plan().add("", lambda s: _start(run, s, st), quiet=True) \
        .add(f"{what} EI, healthy before the next node{pending}", lambda s: None)


def start_and_wait(run: Run, s: HostSession, step: str = "restart") -> StepResult:
    """(Re)start the node and hold until it is healthy; clear its pending mark only then."""
    st, _ = node_state(run, s)
    return run.apply(s, step, start_plan(run, st))


def _start(run: Run, s: HostSession, st: NodeState) -> Done:
    """The start action: raises ActionFailed (the node keeps its pending mark) when the node
    is not healthy within cluster.health_timeout."""
    inv = run.inv
    members, notes = member_marks(run, s.host)
    for n in notes:
        run.rep.line(s.name, "  " + n, "warn")
    script, stops = start_script(inv, st)
    if "stop-outside" in stops:
        run.rep.line(s.name, f"  moving under systemd: pid {' '.join(st.unit.outside)} runs "
                             f"outside {systemd.UNIT_NAME} (started the old way); it is "
                             "stopped first, then the unit is started")
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
        raise ActionFailed(f"not healthy after start: {detail}{killed_note}\n--- last lines of "
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
            raise ActionFailed(f"healthy{how}, but {problem}: {detail}", restarted=True,
                               killed=bool(killed_note))
    return Done(f"{'restarted' if st.running else 'started'}{how}, healthy: {detail}"
                f"{killed_note}", restarted=True, killed=bool(killed_note))
