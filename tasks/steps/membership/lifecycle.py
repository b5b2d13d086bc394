"""What `fab deploy` asks of the membership package, in its order:

preflight: the identity record and the app accounts read with the DB host's preflight facts (no
command of their own); a recorded node missing from hosts.toml stops the run there.
before_db: the record written (new nodes' numbers) and a changed DB password rotated node by
node, before db-init could change every account at once.
start_order: the nodes to (re)start, the running ones first (each drained, restarted with the
new member list), a new node last, kept out of the LB until it is healthy.
"""
from __future__ import annotations

from ...engine import remote
from ...engine.inventory import Host, Inventory
from . import record, rotation


def db_probes(inv: Inventory) -> dict[str, str]:
    return {**record.probes(inv), **rotation.probes(inv)}


def preflight(run, raw: dict[str, remote.Fact]) -> None:
    record.ensure(run, raw)
    record.refuse_orphans(run)
    if "accounts" in raw:
        run.shared[rotation.KEY] = rotation.parse(raw["accounts"].out)


def before_db(run, restart_nodes) -> bool:
    if not record.record_step(run):
        return False
    return rotation.rotate(run, restart_nodes)


def start_order(todo: list[Host], states: dict) -> tuple[list[Host], frozenset[str]]:
    """The nodes to (re)start, the running ones first, and the ones not running (a new node),
    which the LB keeps drained until their own start is healthy.

    Running first: each then restarts with the full member list, so when a new node starts
    every running member already lists it and logs its join (the health gate's proof that it
    is in the cluster); a new node started first would be healthy only in its own view."""
    def running(n: Host) -> bool:
        st = states.get(n.name)
        return bool(st and st.running)
    new = [n for n in todo if not running(n)]
    return [n for n in todo if running(n)] + new, frozenset(n.name for n in new)
