"""The nodes' (and the LB's) `/etc/hosts`: ONE managed block with every name they need.

With `[cluster] etc_hosts = true` (no DNS for our names), each node needs the LB's names (the
service and console names, for the nodes' own calls to the cluster) and the DB server's name
(the datasources' JDBC URLs use it); the LB needs its own names. One block, between our
markers, holds them all; every other line of the file is left as it is, and a line elsewhere
that maps one of our names is reported (it may win), never edited. With etc_hosts off the block
is removed. The file keeps its owner and mode; the old version is backed up.

Owner: this module alone. `fab db-init` and `fab deploy` settle the nodes right after the DB
host (reading the file inside the node read db-init makes anyway); `fab lb` settles them after
the LB. A host settled once in a run is not read again by a later step of that run (its block
is the same whichever step asks), so a no-op deploy reads each node's /etc/hosts once.

Earlier versions wrote two blocks ("bps-deploy lb-names" from lb, "bps-deploy db-name" from
db-init): they are folded into this one on the first run.
"""
from __future__ import annotations

import threading

from ..engine import remote
from ..engine.inventory import Inventory
from ..engine.plan import Plan
from ..engine.remote import FileChange, FileState, HostSession
from ..engine.report import Status, StepResult

STEP = "etc-hosts"
PATH = "/etc/hosts"
FACT = "/etc/hosts"  # the probe's key in a fact read
MARKER = "bps-deploy names"
LEGACY_MARKERS = ("bps-deploy lb-names", "bps-deploy db-name")


# --------------------------------------------------------------------------- plan (pure)


def wanted_lines(inv: Inventory, role: str = "node") -> list[str]:
    """The block's lines for a host of `role` ("node" or "lb"); [] when etc_hosts is off."""
    cl = inv.cluster
    if not cl.etc_hosts:
        return []
    out = [f"{inv.lb.address}\t{cl.service_name} {cl.console_name}"]
    name = inv.database.hostname
    if role == "node" and name and name != inv.db.address:
        out.append(f"{inv.db.address}\t{name}")
    return out


def changes(current: bytes | None, state: FileState | None, inv: Inventory,
            role: str = "node") -> list[FileChange]:
    """The one write (or none) that leaves exactly our block, the old blocks folded in."""
    return remote.block_change(PATH, current, state, wanted_lines(inv, role), MARKER,
                               legacy=LEGACY_MARKERS)


def shadowing(text: str, lines: list[str]) -> list[str]:
    """Lines outside our blocks that map one of our names (left alone: they may win)."""
    names = {n for ln in lines for n in ln.split()[1:]}
    notes, inside = [], False
    for ln in text.splitlines():
        if ln.startswith("# BEGIN bps-deploy"):
            inside = True
        elif ln.startswith("# END bps-deploy"):
            inside = False
        elif not inside:
            hit = sorted(names & set(ln.split("#", 1)[0].split()[1:]))
            if hit:
                notes.append(f"another line also maps {', '.join(hit)} (left alone, may win): "
                             f"{ln.strip()}")
    return notes


def plan_hosts(current: bytes | None, state: FileState | None, inv: Inventory,
               role: str = "node", stamp: str = "") -> Plan:
    """Pure: the host's /etc/hosts plan (at most one write, backed up)."""
    lines = wanted_lines(inv, role)
    plan = Plan(noop=("/etc/hosts already maps " + "; ".join(" ".join(ln.split()[1:]) + " to "
                                                          + ln.split()[0] for ln in lines))
                if lines else "etc_hosts off: no managed block",
                warnings=shadowing((current or b"").decode("utf-8", "replace"), lines),
                before={PATH: current})
    todo = changes(current, state, inv, role)
    if todo:
        what = ("map " + ", ".join(" ".join(ln.split()[1:]) for ln in lines)
                if lines else "remove our names block")
        script = remote.write_files_script(todo, stamp, None, inv.cluster.backups_keep)
        plan.add(f"{todo[0].describe()} ({what})", lambda s: remote.run_script(
            s, script, check=True, what="writing /etc/hosts") and None, todo)
    return plan


# --------------------------------------------------------------------------- step


def probes() -> dict[str, str]:
    """The file fact, for a step that reads the host anyway (see db.facts.node_probes)."""
    return {FACT: remote.probe_file(PATH, content=True)}


SETTLED = "etc-hosts.settled"  # run.shared: the hosts whose block this run already settled
_lock = threading.Lock()  # run.each calls host_step from pool threads


def _done(run) -> set[str]:
    with _lock:
        return run.shared.setdefault(SETTLED, set())  # type: ignore[return-value]


def host_step(run, s: HostSession, cached: str | None = None, step: str = STEP,
              role: str = "node") -> StepResult:
    """One host's /etc/hosts. cached: probes()'s output read moments ago by the caller."""
    done = _done(run)
    if s.name in done:
        return StepResult(s.name, step, Status.OK, "/etc/hosts settled earlier in this run")
    out = cached if cached is not None else remote.read_facts(s, probes())[FACT].out
    st = remote.parse_file_probe(out)
    r = run.apply(s, step, plan_hosts(st.content if st else None, st, run.inv, role, run.stamp))
    if not r.status.bad:
        done.add(s.name)
    return r


def nodes_step(run, cached: dict[str, str] | None = None) -> bool:
    """Every live node's /etc/hosts; True when none failed."""
    cached = cached or {}
    nodes = run.alive(run.inv.nodes)
    out = run.each(nodes, STEP, lambda s: host_step(run, s, cached.get(s.name)))
    return not any(r.status.bad for r in out.values())
