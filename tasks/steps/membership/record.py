"""The identity record on the DB host, and what else the membership steps read there.

One file, root-only (`RECORD`), read in the DB host's preflight facts of `fab deploy` (no
command of its own on a no-op) or, for the other tasks, in one fact read on first need
(`ensure`). It imports no step, so every step may ask it.
"""
from __future__ import annotations

from dataclasses import dataclass

from ...engine import remote
from ...engine.cli import Abort
from ...engine.inventory import Inventory
from ...engine.plan import Plan
from ...engine.remote import FileSpec, HostSession
from ...engine.report import StepResult
from . import identity
from .identity import Record, Resolution

RECORD = f"{remote.STATE_DIR}/members.json"
STEP = "members"
KEY = "membership"  # Run.shared


@dataclass
class MemberFacts:
    record: Record | None
    state: remote.FileState | None


def probes(inv: Inventory) -> dict[str, str]:
    return {"members": remote.probe_file(RECORD, content=True)}


def parse(raw: dict[str, remote.Fact], host: str) -> MemberFacts:
    st = remote.parse_file_probe(raw["members"].out)
    try:
        record = Record.parse(st.content if st else None)
    except ValueError as e:
        raise Abort(f"{host}:{RECORD}: {e}; nothing was changed. It records which node owns "
                    "which REGISTRY_LOCALn: restore it from /var/backups/bps-deploy on that "
                    "host, or remove it to record the nodes by their position again") from None
    return MemberFacts(record, st)


def ensure(run, raw: dict[str, remote.Fact] | None = None) -> Resolution:
    """This run's identities: read once (or taken from `raw`, the preflight's facts), then every
    node of `run.inv` carries its registry number and writer flag."""
    got = run.shared.get(KEY)
    if got is not None:
        return got
    inv = run.inv
    if raw is None:
        raw = remote.read_facts(run.session(inv.db), probes(inv))
    facts = parse(raw, inv.db.name)
    res = identity.resolve(facts.record, inv.nodes)
    run.set_inventory(identity.with_identity(inv, res.wanted))
    run.shared[KEY] = res
    run.shared[KEY + ".facts"] = facts
    if res.new and res.recorded is not None:
        run.rep.line(inv.db.name, "new node(s): " + ", ".join(
            f"{n} = REGISTRY_LOCAL{res.wanted.number_of(n)}" for n in res.new))
    return res


def facts_of(run) -> MemberFacts:
    ensure(run)
    return run.shared[KEY + ".facts"]  # type: ignore[return-value]


def refuse_orphans(run) -> None:
    res = ensure(run)
    if res.orphans:
        raise Abort(identity.orphan_error(res.orphans, f"{run.inv.db.name}:{RECORD}"))


def write_plan(run, record: Record, why: str) -> Plan:
    facts = facts_of(run)
    spec = FileSpec(RECORD, record.render(), "root", "root", 0o600)
    changes = remote.plan_files([spec], {RECORD: facts.state})
    if not changes:
        return Plan(noop="node identities already recorded")

    def write(s: HostSession) -> None:
        run.apply_files(s, changes, what="identity record")
        facts.record = record
        facts.state = remote.FileState(spec.sha256, spec.mode, spec.owner, spec.group,
                                       spec.content)
    return Plan(before={RECORD: facts.record.render() if facts.record else None}).add(
        f"record node identities in {RECORD} ({why})", write, changes)


def describe(record: Record) -> str:
    return ", ".join(f"{i.name}=REGISTRY_LOCAL{i.number}"
                     + (" (registry writer)" if i.name == record.writer else "")
                     for i in sorted(record.nodes.values(), key=lambda i: i.number))


def record_step(run, record: Record | None = None, why: str = "") -> bool:
    """Write the record (this run's wanted one by default) on the DB host when it differs."""
    res = ensure(run)
    record = record or res.wanted
    why = why or describe(record)
    out = run.each([run.inv.db], STEP,
                   lambda s: run.apply(s, STEP, write_plan(run, record, why)))
    return out[run.inv.db.name].status not in ("failed", "unreachable")
