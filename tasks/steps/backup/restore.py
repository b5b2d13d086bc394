"""`fab restore BACKUP --overwrite-cluster`: put a `fab backup` folder back on the cluster.

Order, and why:
1. verify the folder (every sha256, the manifest, the dump whole: archive.verify) and that it
   fits this inventory, on this machine, before any host is touched;
2. refuse without --overwrite-cluster, saying what it would overwrite (check mode needs none);
3. read every host and plan every file to put back (a link or folder where a file belongs
   stops here), before anything stops;
4. a safety backup of the cluster as it is now (a restore deletes data);
5. the deploy lock; stop every node, last first (the services code: SIGTERM, then SIGKILL only
   after cluster.stop_timeout);
6. the databases (each dropped and recreated from the dump), then the files on every host
   (put_back: atomic sets, the LB's checked by nginx -t and reloaded);
7. every node started in inventory order, each healthy before the next (the deploy's code).
"""
from __future__ import annotations

import time
from pathlib import Path

from ...engine import remote
from ...engine.cli import Abort
from ...engine.plan import Plan
from ...engine.remote import HostSession
from ...engine.report import StepResult
from ...engine.runner import Run
from .. import db, deploy, services
from . import archive, dbdump, put_back, take

FLAG = "--overwrite-cluster"
STEP = "restore"


def fit_problems(bk: archive.Backup, run: Run) -> list[str]:
    """Pure: why this backup does not belong to this inventory's cluster."""
    inv, m = run.inv, bk.manifest
    out = []
    for name, h in m["hosts"].items():
        mine = next((x for x in inv.hosts if x.name == name), None)
        if mine is None:
            out.append(f"host {name} of the backup is not in {inv.path}")
        elif mine.role != h["role"]:
            out.append(f"host {name} is a {h['role']} in the backup, a {mine.role} here")
    extra = set(m["databases"]["names"]) - set(db.db_kinds(inv))
    if extra:
        out.append(f"database(s) {', '.join(sorted(extra))} of the backup are not this "
                   "cluster's ([database] names differ)")
    return out


def refusal(bk: archive.Backup, run: Run) -> str:
    m = bk.manifest
    dbs = m["databases"]["names"]
    return (f"backup {bk.folder} (run id {m['run_id']}, {m['created']}) verified: "
            f"{len(dbs)} database(s), {len(m['files'])} file(s). Restoring it STOPS every node "
            f"({', '.join(n.name for n in run.inv.nodes)}), REPLACES the database(s) "
            f"{', '.join(dbs) or '(none)'} with their state at {m['created']} (every row written "
            "since is lost; a backup of the current state is taken first), puts back the "
            "managed files on every host, then starts the nodes in order. To do that, run "
            f"again with {FLAG} (or --check to see the plan)")


def plan_files(run: Run, bk: archive.Backup) -> dict[str, Plan]:
    plans: dict[str, Plan] = {}
    by_host: dict[str, list[dict]] = {}
    for f in bk.manifest["files"]:
        by_host.setdefault(f["host"], []).append(f)

    def one(s: HostSession) -> StepResult:
        entries = by_host.get(s.name, [])
        paths = [f["path"] for f in entries]
        facts = remote.read_facts(s, put_back.probes(paths))
        wanted = [put_back.spec(f["path"], bk.file(f["name"]), int(f["mode"], 8), f["owner"],
                                f["group"]) for f in entries]
        plans[s.name] = p = put_back.put_back_plan(
            run, s.host, wanted, put_back.states(facts, paths),
            systemd=facts["systemd"].out.strip() == "yes", why=f"restore of {bk.folder.name}")
        return StepResult(s.name, "restore plan", "ok",
                          f"{len(p.changes)} change(s)" if p.changes else p.noop)

    res = run.each([h for h in run.inv.hosts if h.name in bk.manifest["hosts"]],
                   "restore plan", one)
    bad = [f"{h}: {r.msg}" for h, r in res.items() if r.status.bad]
    if bad:
        raise Abort("cannot plan the restore on every host; nothing was stopped or changed:\n  "
                    + "\n  ".join(bad))
    return plans


def databases_plan(run: Run, bk: archive.Backup) -> Plan:
    """The DB host's part: load the dump (it drops and recreates each database it holds)."""
    names = bk.manifest["databases"]["names"]
    plan = Plan(noop="the backup holds no database (none existed when it was taken)")
    if bk.dump is None:
        return plan

    def load(s: HostSession) -> str:
        t = time.monotonic()
        remote.run_script(s, dbdump.restore_script(run.inv, bk.dump), check=True,
                          what="loading the dump", timeout=max(s.timeout, 3600))
        return f"loaded in {time.monotonic() - t:.1f}s"

    return plan.add(f"drop and reload {', '.join(names)} from the backup", load)


def restore_databases(run: Run, bk: archive.Backup) -> None:
    step = STEP + " databases"
    r = run.each([run.inv.db], step, lambda s: run.apply(s, step, databases_plan(run, bk)))
    if r[run.inv.db.name].status.bad:
        raise Abort("the databases were not restored; the nodes stay stopped. Fix the cause "
                    f"named above and run `fab restore {bk.folder} {FLAG}` again")


def restore_step(run: Run, folder: Path, overwrite: bool) -> bool:
    try:
        bk = archive.verify(folder)
    except archive.BackupInvalid as e:
        raise Abort(str(e)) from None
    problems = fit_problems(bk, run)
    if problems:
        raise Abort(f"backup {folder} is not of this cluster; nothing was changed:\n  "
                    + "\n  ".join(problems))
    if not overwrite and not run.check:
        raise Abort(refusal(bk, run))
    run.rep.line(None, f"backup {folder} verified (run id {bk.manifest['run_id']}, "
                       f"{bk.manifest['created']}); this run: {run.stamp}")
    plans = plan_files(run, bk)
    if run.check:
        return _stop_restore_start(run, bk, plans)
    deploy.acquire_lock(run)
    try:
        take.take_backup(run, why=f"before restore of {folder.name}")
        return _stop_restore_start(run, bk, plans)
    finally:
        deploy.release_lock(run)


def _stop_restore_start(run: Run, bk: archive.Backup, plans: dict[str, Plan]) -> bool:
    for n in reversed(run.inv.nodes):
        r = run.each([n], "stop", lambda s: services.stop_node(run, s))[n.name]
        if r.status.bad:
            raise Abort(f"{n.name} could not be stopped; nothing was restored")
    restore_databases(run, bk)
    hosts = [h for h in run.inv.hosts if h.name in plans]
    done = run.each(hosts, STEP, lambda s: run.apply(s, STEP, plans[s.name]))
    hosts_ok = all(not r.status.bad for r in done.values())
    started = deploy.restart_nodes(run, list(run.inv.nodes), rolling=False, step="start")
    return hosts_ok and started
