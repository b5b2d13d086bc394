"""`fab db-init` as a step: the DB host (facts -> plan -> run.apply), then the nodes' /etc/hosts."""
from __future__ import annotations

from invoke import task

from ...engine import remote
from ...engine.cli import COMMON_HELP, Abort, session
from ...engine.inventory import Inventory
from ...engine.plan import Plan
from ...engine.remote import HostSession
from ...engine.report import StepResult
from .. import db_tls, hosts_file
from ..membership import record as members
from .facts import db_probes, fetch_scripts, parse_db_facts, read_db_facts, read_node_pools
from .sql import client_prelude, restart_command
from .model import KIND_TABLES, STEP, classify, db_kinds
from .plan import plan_db


def _validate_drop(inv: Inventory, drop: tuple[str, ...]) -> None:
    known = list(db_kinds(inv))
    bad = [d for d in drop if d not in known]
    if bad:
        raise Abort(f"--drop {', '.join(bad)}: not a database of this cluster (known: "
                    f"{', '.join(known)}); nothing was touched")


def _db_host_step(run, s: HostSession, drop: tuple[str, ...],
                  hosts_out: dict[str, str], state: dict) -> StepResult:
    inv = run.inv
    app_hash = inv.secrets.db_native_hash
    run.rep.redact.add(app_hash)
    raw = state["raw"] = remote.read_facts(s, db_probes(inv, app_hash))  # db_tls plans from it
    facts = state["facts"] = parse_db_facts(raw, s.name, inv)
    if not facts.running:
        return run.apply(s, STEP, Plan.refuse(facts.error))
    facts.node_pools = read_node_pools(run, hosts_out)
    plan = plan_db(facts, inv, drop, app_hash, stamp=run.stamp,
                   fetch=lambda paths: fetch_scripts(run, paths))
    return run.apply(s, STEP, plan)


def db_step(run, drop: tuple[str, ...] = ()) -> bool:
    """Databases, app user, grants, schemas, server settings; then /etc/hosts on the nodes.

    Returns False when the DB host failed (the nodes are then not touched).
    """
    members.ensure(run)  # each node's REGISTRY_LOCALn by name (steps/membership)
    inv = run.inv
    drop = tuple(x for x in drop if x)
    _validate_drop(inv, drop)
    if drop:  # the step that deletes data: a backup first, or nothing is dropped
        run.before_data_loss(f"db-init --drop {','.join(drop)}")
    hosts_out: dict[str, str] = {}  # each node's /etc/hosts, read with its pool sizes
    state: dict = {}
    res = run.each([inv.db], STEP, lambda s: _db_host_step(run, s, drop, hosts_out, state))
    if res[inv.db.name].status.bad:
        return False
    tls = db_tls.db_tls_step(run, state["raw"], restart_command(state["facts"]),
                             client_prelude(inv))
    if tls is None:
        return False
    run.shared["db_tls"] = tls  # its REQUIRE SSL part: `fab deploy`, once the nodes use TLS
    return hosts_file.nodes_step(run, hosts_out)


def db_status(run) -> dict:
    """For `fab status`: server version and each database complete / partial / missing."""
    inv = run.inv
    app_hash = inv.secrets.db_native_hash
    out: dict = {"host": inv.db.name, "running": False, "server": None, "databases": {}}
    try:
        facts = read_db_facts(run.session(inv.db), inv, app_hash)
    except remote.RemoteError as e:
        out["error"] = str(e)
        return out
    if not facts.running:
        out["error"] = facts.error
        return out
    out["running"] = True
    out["server"] = facts.server.label
    for db, kind in db_kinds(inv).items():
        st, missing = classify(facts.tables.get(db), kind)
        out["databases"][db] = {"state": st, "exists": db in facts.databases,
                                "tables": len(KIND_TABLES[kind]) - len(missing),
                                "expected": len(KIND_TABLES[kind]), "missing": missing}
    out["users"] = {h: {"password_ok": ok} for h, ok in facts.users.items()}
    return out


@task(name="db-init", help={
    "check": COMMON_HELP["check"], "diff": COMMON_HELP["diff"],
    "parallel": COMMON_HELP["parallel"],
    "drop": "comma-separated PARTIAL databases to drop and reload (e.g. BPS_DS); nothing else "
            "is ever dropped"})
def db_init(c, check=False, diff=False, drop="", parallel=16):
    """Create the cluster's databases, app user, grants and WSO2 schemas on the DB host."""
    with session(c, check=check, diff=diff, parallel=parallel, title="DB-INIT") as run:
        db_step(run, tuple(x.strip() for x in (drop or "").split(",") if x.strip()))
