"""`fab rollback`: put back the files of the newest run id on every host, restart in order.

Phases (nothing changes before every host is planned):
1. one fact read per host: its run manifests (runs.RUNS_PROBE); the run to undo is the newest
   run id not rolled back yet on any host (runs.pick_run);
2. one fact read per host that run changed: the backups' bytes and the files' current state;
   a pure plan per host (runs.plan_rollback); any refusal (a backup pruned, a link where a file
   belongs) stops here, before any change;
3. the plans, hosts in parallel (each an atomic set; the LB's validated by nginx -t and
   reloaded); then the changed nodes restarted one at a time in inventory order, each healthy
   before the next (the deploy's restart code; not drained: draining rewrites the LB's vhosts
   from hosts.toml, which would undo the LB's part of the rollback).
"""
from __future__ import annotations

from ...engine import remote
from ...engine.cli import Abort
from ...engine.plan import Plan
from ...engine.remote import HostSession
from ...engine.report import StepResult
from ...engine.runner import Run
from .. import deploy
from . import runs


def find_runs(run: Run) -> dict[str, runs.HostRuns]:
    found: dict[str, runs.HostRuns] = {}

    def one(s: HostSession) -> StepResult:
        found[s.name] = runs.parse_runs(remote.read_facts(s, {"runs": runs.RUNS_PROBE})["runs"].out)
        ids = found[s.name].undoable
        return StepResult(s.name, "run ids", "ok", f"{len(ids)} run(s) to roll back to"
                          + (f", newest {ids[-1]}" if ids else ""))

    res = run.each(run.inv.hosts, "run ids", one)
    bad = [f"{h}: {r.msg}" for h, r in res.items() if r.status.bad]
    if bad:
        raise Abort("cannot read every host's run ids; nothing was rolled back:\n  "
                    + "\n  ".join(bad))
    return found


def plan_hosts(run: Run, found: dict[str, runs.HostRuns], run_id: str) -> dict[str, Plan]:
    """Every host that run changed, read and planned; any refusal aborts before a change."""
    plans: dict[str, Plan] = {}

    def plan_one(s: HostSession) -> StepResult:
        entries = runs.before_run(found[s.name].runs[run_id])
        facts = remote.read_facts(s, runs.restore_probes(entries))
        plans[s.name] = p = runs.plan_rollback(run, s.host, run_id, entries, facts)
        if p.error:
            return StepResult(s.name, "rollback plan", "failed", p.error)
        return StepResult(s.name, "rollback plan", "ok",
                          f"{len(p.changes)} change(s)" if p.changes else p.noop)

    hosts = [h for h in run.inv.hosts if run_id in found[h.name].runs]
    planned = run.each(hosts, "rollback plan", plan_one)
    if any(r.status.bad for r in planned.values()):
        raise Abort(f"run {run_id} cannot be rolled back on every host (see above); nothing "
                    "was changed")
    return plans


def rollback_step(run: Run) -> bool:
    """Undo the newest run id whose files differ from now; False when a host or node failed.

    A run whose every file is already as before it (a rolling restart drains a node and puts
    it back: two writes, no net change) is marked rolled back and skipped: the operator's
    "previous set" is the newest one that still makes a difference."""
    found = find_runs(run)
    while True:
        run_id = runs.pick_run(found)
        if run_id is None:
            run.rep.line(None, "nothing to roll back: no host has a run whose files differ from "
                               f"now (manifests in {runs.RUNS_DIR})")
            return True
        plans = plan_hosts(run, found, run_id)
        if any(p.changes for p in plans.values()):
            break
        run.rep.line(None, f"run {run_id}: every file it replaced is already as before it: "
                           "marked rolled back, looking one run further back")
        hosts = [h for h in run.inv.hosts if h.name in plans]
        run.each(hosts, runs.STEP, lambda s: run.apply(s, runs.STEP, plans[s.name]))
        for name in plans:
            del found[name].runs[run_id]
    run.rep.line(None, f"rolling back run {run_id} (this run: {run.stamp}) on "
                       + ", ".join(plans))
    hosts = [h for h in run.inv.hosts if h.name in plans]
    done = run.each(hosts, runs.STEP, lambda s: run.apply(s, runs.STEP, plans[s.name]))
    ok = all(not r.status.bad for r in done.values())
    nodes = [n for n in run.inv.nodes if n.name in done and done[n.name].status == "changed"
             and plans[n.name].changes]
    if nodes:
        ok = deploy.restart_nodes(run, nodes, rolling=False, step="restart") and ok
    return ok
