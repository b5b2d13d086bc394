"""`fab remove-node NAME`: take a node out of the cluster without a failed request.

The operator first removes its [[nodes]] entry from hosts.toml (until then `fab deploy` keeps
it, and once removed `fab deploy` refuses to run while the record still has it). Then, in
this order: drain it at the LB; stop it and disable its unit; drop its DB account; record it as
retired (its REGISTRY_LOCALn and number are kept: a later node gets another number); write the
others' member lists (and the new registry writer's flag, when it was the writer) and restart
them one at a time, each drained first (the first drain also takes it out of the upstreams);
then the LB as hosts.toml says. A run stopped half way is finished by running it again, or by
`fab deploy` once the record no longer lists the node.
"""
from __future__ import annotations

import dataclasses

from invoke import task

from ...engine import remote
from ...engine.cli import COMMON_HELP, Abort, session
from ...engine.inventory import Host
from ...engine.plan import ActionFailed, Plan
from ...engine.remote import HostSession, q
from ...engine.report import Status, StepResult
from .. import db, deploy, lb, node_config, services, systemd
from . import identity, record

STEP = "remove-node"



def check_request(res: identity.Resolution, listed: set[str], name: str, purge: bool,
                  move_writer: bool) -> identity.Identity:
    """Pure: the identity to remove, or Abort naming why not (nothing changed yet)."""
    if name in listed:
        raise Abort(f"{name} is still a [[nodes]] entry of hosts.toml: remove that entry "
                    f"first (else the next `fab deploy` adds it back), then run `fab "
                    f"remove-node {name}`; nothing was changed")
    gone = next((o for o in res.orphans if o.name == name), None)
    if gone is None:
        known = ", ".join(res.wanted.nodes) or "none"
        raise Abort(f"no recorded node named {name!r} (recorded: {known}); nothing was changed")
    if res.wanted.writer == name and not move_writer:
        after = identity.retire(res.wanted, name, purge=purge).writer or "none"
        raise Abort(f"{name} is the registry writer (the one node that writes the shared "
                    f"registry; the others mount it read-only). Removing it moves that role to "
                    f"{after}: {name} is stopped first, then {after} is reconfigured and "
                    "restarted as the writer before the others. Run again with --move-writer "
                    "to do that; nothing was changed")
    return gone


def disable_plan(run, s: HostSession) -> Plan:
    """Its unit disabled, so a reboot does not bring it back into the cluster."""
    unit = systemd.UNIT_NAME
    probe = remote.read_facts(s, {"en": f"systemctl is-enabled {q(unit)} 2>/dev/null || true"})
    if probe["en"].out.strip() not in ("enabled", "enabled-runtime"):
        return Plan(noop=f"{unit} not enabled")
    return Plan().add(f"disable {unit} (no start at boot)", lambda s: remote.run_script(
        s, f"systemctl disable {q(unit)}\n", check=True, what="disable") and None)


def drop_account_plan(run, gone: identity.Identity, purge: bool = False) -> Plan:
    """Its account; with purge also its REGISTRY_LOCALn (the backup was taken before)."""
    inv = run.inv
    acc = db.account(inv.database.user, gone.address)
    local = inv.database.local_db(gone.number)
    plan = Plan()
    if purge:
        plan.add(f"DROP DATABASE {local} (--purge; backed up first)", lambda s: _sql(
            s, inv, f"DROP DATABASE IF EXISTS {db.ident(local)};", f"drop {local}"))
    if any(n.address == gone.address for n in inv.nodes):
        plan.noop = f"'{inv.database.user}'@'{gone.address}' kept: another node has that address"
        return plan
    return plan.add(f"drop the DB account '{inv.database.user}'@'{gone.address}'"
                    + ("" if purge else f" ({local} kept)"),
                    lambda s: _sql(s, inv, f"DROP USER IF EXISTS {acc};", f"drop {acc}"))


def _sql(s: HostSession, inv, statement: str, what: str) -> None:
    res = remote.run_script(s, db.admin_script(inv, [statement]), what=what)
    if not res.ok:
        raise ActionFailed(f"could not {what}: {(res.stderr or res.stdout).strip()[-300:]}",
                           changes_done=False)


def take_out(run, host: Host, unreachable_ok: bool) -> None:
    """Drain it, stop it, disable its unit; raise Abort if it cannot be done."""
    if deploy._lb_configured(run):
        r = lb.lb_host_step(run, drain=frozenset({host.name}))
        if r.status not in ("ok", "changed"):
            raise Abort(f"could not drain {host.name} at the LB: {r.msg}; nothing else changed")
    if unreachable_ok:
        try:
            run.session(host)
        except remote.Unreachable as e:
            # the operator's word that the machine is gone: not a failure of this run
            run.dead[host.name] = "unreachable: taken for gone (--unreachable-ok)"
            run.rep.record(StepResult(host.name, "stop", Status.SKIPPED, (
                f"unreachable ({e}): not stopped; --unreachable-ok takes the machine for gone")))
            return
    r = run.each([host], "stop", lambda s: services.stop_node(run, s))[host.name]
    if r.status not in ("ok", "changed"):
        raise Abort(f"{host.name} could not be stopped ({r.status}); it stays drained. If the "
                    "machine is gone for good, run again with --unreachable-ok")
    run.each([host], STEP, lambda s: run.apply(s, STEP, disable_plan(run, s)))


def roll_others(run, new_writer: str | None) -> bool:
    cfg = node_config.configure_step(run)
    if not cfg.ok:
        return False
    todo = deploy.nodes_needing_restart(run, cfg)
    if new_writer:  # the new registry writer first: the registry has a writer again at once
        todo = sorted(todo, key=lambda n: n.name != new_writer)
    return deploy.restart_nodes(run, todo, rolling=True)


@task(name="remove-node",
      help={"name": "the node to remove (already taken out of hosts.toml)",
            "purge": "also drop its REGISTRY_LOCALn (`fab backup` runs first)",
            "move_writer": "allowed to remove the registry writer (the role moves)",
            "unreachable_ok": "go on when the node cannot be reached (the machine is gone)",
            "check": COMMON_HELP["check"]})
def remove_node(c, name, purge=False, move_writer=False, unreachable_ok=False, check=False):
    """Take a node out of the cluster: drain, stop, drop its account, roll the others."""
    with session(c, check=check, title="REMOVE-NODE") as run:
        inv = run.inv
        res = record.ensure(run)
        gone = check_request(res, {n.name for n in inv.nodes}, name, purge, move_writer)
        after = identity.retire(res.wanted, name, purge=purge)
        moved = after.writer if res.wanted.writer == name else None
        run.rep.line(None, f"removing {name} ({gone.address}, REGISTRY_LOCAL{gone.number} "
                           + ("dropped after a backup" if purge else "kept") + ")"
                           + (f"; registry writer moves to {moved}" if moved else ""))
        with deploy.deploy_lock(run):
            host = gone.host(len(inv.nodes) + 1, res.wanted.writer == name)
            run.set_inventory(identity.with_identity(
                dataclasses.replace(inv, nodes=(*inv.nodes, host)), res.wanted))
            if purge and not run.check:  # the backup holds its REGISTRY_LOCALn: taken first
                run.before_data_loss(f"fab remove-node {name} --purge (drops "
                                     f"REGISTRY_LOCAL{gone.number})")
            take_out(run, host, unreachable_ok)
            run.set_inventory(identity.with_identity(inv, after))
            r = run.each([inv.db], STEP,
                         lambda s: run.apply(s, STEP, drop_account_plan(run, gone, purge)))
            if r[inv.db.name].status not in ("ok", "changed"):
                raise Abort("the DB account was not dropped; run `fab remove-node` again")
            if not record.record_step(run, after, f"{name} retired; " + record.describe(after)):
                raise Abort("the identity record was not written; run `fab remove-node` again")
            res.wanted, res.orphans = after, [o for o in res.orphans if o.name != name]
            if not roll_others(run, moved):
                raise Abort("a node failed while taking the new member list; `fab deploy` "
                            "completes it")
            lb.lb_step(run)
