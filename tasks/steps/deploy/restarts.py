"""Ordered restarts: each node healthy before the next; drained from the LB while it restarts."""
from __future__ import annotations

from ...engine import remote
from ...engine.cli import Abort
from ...engine.inventory import Host
from ...engine.report import Status, StepResult
from ...engine.runner import Run
from .. import lb, node_config, services, systemd


def _lb_configured(run: Run) -> bool:
    facts = remote.read_facts(run.session(run.inv.lb),
                              {"vhost": "test -f /etc/nginx/conf.d/ei.http.conf && echo yes"})
    return facts["vhost"].out.strip() == "yes"


def restart_nodes(run: Run, nodes: list[Host], *, rolling: bool, full: bool = False,
                  step: str = "restart", prepare=None,
                  held: frozenset[str] = frozenset()) -> bool:
    """Restart `nodes` in order, each healthy before the next; False on the first failure.

    full: stop every node (last first), then start in order (the cluster domain changed).
    rolling: drain each node from NGINX while it restarts, then put it back.
    prepare(node) -> bool: run after the drain, before the start (a password rotation's
    ALTER USER and datasources); False stops here, the node put back as it was.
    held: nodes kept out of the LB until their own turn (a new node, not yet started).
    In check mode each step (drain, start, undrain) says what it would do: run.apply's part.
    """
    if full:
        for n in reversed(nodes):
            run.each([n], "stop", lambda s: services.stop_node(run, s))
    drain = rolling and not full and _lb_configured(run)
    done: list[str] = []
    for i, n in enumerate(nodes):
        if n.name in run.dead:
            return False
        held = held - {n.name}
        if drain:
            r = lb.lb_host_step(run, drain=frozenset({n.name}) | held)
            if r.status not in (Status.OK, Status.CHANGED):
                _drain_failed(run, nodes[i:], step, done, r,
                              f"could not drain {n.name} from the load balancer "
                              f"{run.inv.lb.name}", f"{n.name} stays in rotation")
        if prepare is not None and not prepare(n):
            if drain:
                lb.lb_host_step(run, drain=held, undraining=frozenset({n.name}))
            run.rep.line(n.name, "stopping here: later nodes are not touched", "failed")
            return False
        r = run.each([n], step, lambda s: services.start_and_wait(run, s, step))[n.name]
        if r.status == Status.FAILED:
            run.rep.line(n.name, "stopping here: later nodes are not restarted", "failed")
            return False
        done.append(n.name)
        if drain:
            r = lb.lb_host_step(run, drain=held, undraining=frozenset({n.name}))
            if r.status not in (Status.OK, Status.CHANGED):
                _drain_failed(run, nodes[i + 1:], step, done, r,
                              f"could not put {n.name} back into rotation on the load balancer "
                              f"{run.inv.lb.name}", f"{n.name} is still drained: `fab lb` or "
                              "the next `fab deploy` puts it back")
    return True


def _drain_failed(run: Run, left: list[Host], step: str, done: list[str], lb_result: StepResult,
                  what: str, state: str) -> None:
    """A failed drain/undrain stops a rolling restart before the next node restarts: raise."""
    for n in left:
        run.rep.record(StepResult(n.name, step, Status.SKIPPED,
                                  f"not restarted: {what} (rolling restart stopped)"))
    restarted = ", ".join(done) if done else "none"
    raise Abort(f"{what}: {lb_result.status}: {lb_result.msg.strip()}\n"
                f"the rolling restart stopped there: {state}; restarted before: {restarted}; "
                f"not restarted: {', '.join(n.name for n in left) or 'none'}")


def rollback_hint(run: Run, cfg: node_config.ConfigureOutcome) -> str:
    """How to go back when this run's changes left a node unhealthy (fab rollback)."""
    return (f"\nthis run (run id {run.stamp}) changed the configuration of "
            f"{', '.join(sorted(cfg.changed))}; to put back the files it replaced on every host "
            "and restart the nodes in order: `fab rollback` (then fix hosts.toml, or the next "
            "deploy makes the same change again)") if cfg.changed else ""


def nodes_needing_restart(run: Run, cfg: node_config.ConfigureOutcome) -> list[Host]:
    """Nodes whose config changed, that carry a pending mark, or that are not running."""
    todo = []
    for n in run.alive(run.inv.nodes):
        st = cfg.states.get(n.name)
        if st is None:
            continue
        why = [w for w, yes in (("configuration changed", n.name in cfg.restart),
                                ("restart pending", bool(st.pending)),
                                ("not running", not st.running),
                                (f"running outside {systemd.UNIT_NAME} (started the old way): "
                                 "moved under systemd", st.unit.managed and bool(st.unit.outside)))
               if yes]
        if why:
            todo.append(n)
            run.rep.line(n.name, "needs (re)start: " + ", ".join(why))
    return todo
