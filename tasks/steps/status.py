"""`fab status`: one row per host, for people and for monitoring scripts.

Columns: role, reachable, service (EI JVM / nginx / DB server), healthy, restart pending,
drained at the LB, config drift (what `fab deploy` is to change), certificate days left, schema
state. Exit code 0 when all is well; 1 when any host is unreachable, unhealthy, drifted, pending
or drained (or the LB / DB is not right); 2 for a bad hosts.toml. `--json` prints the rows as
JSON on stdout (the host lines then go to stderr).
"""
from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass, field

from invoke import task
from invoke.exceptions import Exit

from . import artifacts, certs, db, node_config, lb, services, systemd
from ..engine import remote
from ..engine.cli import session
from ..engine.remote import HostSession
from ..engine.report import Status, StepResult
from ..engine.runner import Run
from .membership import record as members

COLUMNS = ("host", "role", "reachable", "service", "healthy", "pending", "drained", "drift",
           "cert_days", "schema", "artifacts")


@dataclass
class Row:
    host: str
    role: str
    reachable: bool = True
    service: str = "-"  # EI: running/STOPPED; LB: nginx running/STOPPED; DB: the server
    healthy: str = "-"  # yes / NO
    pending: str = "-"  # no / YES (a restart the next deploy will make)
    drained: str = "-"  # no / YES (out of the LB's rotation)
    drift: str = "-"  # no / YES (`fab deploy` is to change the node's configuration)
    cert_days: int | None = None  # the LB certificate's days left
    schema: str = "-"  # complete / INCOMPLETE (names) / -
    artifacts: str = "-"  # archives in the hot-deploy folders; "N DIFFERS" from node 1's
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.reachable and not self.problems

    def cells(self) -> list[str]:
        return [self.host, self.role, "yes" if self.reachable else "NO", self.service,
                self.healthy, self.pending, self.drained, self.drift,
                "-" if self.cert_days is None else str(self.cert_days), self.schema,
                self.artifacts]


def table(rows: list[Row]) -> list[str]:
    """Pure: the rows as aligned text lines, a header first."""
    cells = [list(COLUMNS)] + [r.cells() for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(COLUMNS))]
    return ["  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip() for line in cells]


def exit_code(rows: list[Row]) -> int:
    return 0 if all(r.ok for r in rows) else 1


def node_row(run: Run, s: HostSession, row: Row) -> StepResult:
    st, _ = services.node_state(run, s)
    row.service = "running" if st.running else "STOPPED"
    row.healthy = "yes" if st.healthy else "NO"
    row.pending = "YES" if st.pending else "no"
    parts = [f"running pid {st.pid}" if st.running else "NOT running",
             "healthy" if st.healthy else "NOT healthy"]
    if not (st.running and st.healthy):
        row.problems.append("not running and healthy")
    u = st.unit
    if u.managed:
        row.service += " (systemd)"
        parts.append(f"systemd {systemd.UNIT_NAME} {u.active}/{u.sub}"
                     + (f" MainPID {u.main_pid}" if u.main_pid else "")
                     + (", enabled at boot" if u.enabled == "enabled"
                        else f", NOT enabled at boot ({u.enabled or 'no unit'})")
                     + (f", restarted by systemd {u.restarts}x" if u.restarts else ""))
        if u.enabled != "enabled":
            row.problems.append(f"{systemd.UNIT_NAME} not enabled at boot")
        if u.outside:
            parts.append(f"JVM {' '.join(u.outside)} runs OUTSIDE the unit (started the old "
                         "way): `fab deploy` moves it under systemd")
            row.problems.append("JVM outside its systemd unit")
    elif u.systemd:
        parts.append(f"systemd runs here but {systemd.UNIT_NAME} is not installed: "
                     "`fab deploy` installs it")
        row.problems.append(f"{systemd.UNIT_NAME} not installed")
    if st.pending:
        parts.append("restart PENDING")
        row.problems.append("restart pending")
    return StepResult(s.name, "status", Status.OK if row.ok else Status.FAILED, ", ".join(parts))


def lb_row(run: Run, s: HostSession, row: Row, rows: dict[str, Row]) -> StepResult:
    inv = run.inv
    facts = lb.read_lb_facts(s, inv)
    test = remote.run_script(s, "nginx -t 2>&1")
    days = certs.cert_days_left(run)
    row.service = "nginx running" if facts.nginx_running else "nginx STOPPED"
    row.cert_days = days
    row.healthy = "yes" if facts.nginx_running and test.ok else "NO"
    for n in inv.nodes:
        rows[n.name].drained = "YES" if n.name in facts.drained else "no"
        if n.name in facts.drained:
            rows[n.name].problems.append("drained at the LB")
    parts = [("nginx running" if facts.nginx_running else "nginx NOT running"),
             ("config valid" if test.ok else "config INVALID: " + lb.nginx_message(test.stdout)),
             (f"certificate: {days} days left" if days is not None else "NO certificate")]
    if facts.drained:
        parts.append(f"DRAINED (out of rotation): {', '.join(sorted(facts.drained))}; "
                     "`fab deploy` or `fab lb` puts them back")
    if not facts.nginx_running or not test.ok:
        row.problems.append("nginx not running with a valid config")
    if days is None or days <= inv.certs.renew_before_days:
        row.problems.append("certificate missing or due for renewal")
    clash = lb.name_conflicts(facts.nginx_dump, inv)
    if any(c.exact for c in clash):
        row.problems.append("another vhost claims our names")
    parts += [("CONFLICT: " if c.exact else "!!! ") + c.describe() for c in clash]
    if inv.cluster.console_open:
        parts.append("!!! console /carbon open to everyone (cluster.console_allow "
                     f"{inv.cluster.console_open})")
    bad = bool(row.problems) or bool(facts.drained)
    return StepResult(s.name, "status", Status.FAILED if bad else Status.OK, ", ".join(parts))


def db_row(run: Run, s: HostSession, row: Row) -> StepResult:
    st = db.db_status(run)
    if not st.get("running"):
        row.service, row.healthy = "STOPPED", "NO"
        row.problems.append("database server not running")
        return StepResult(s.name, "status", Status.FAILED,
                          f"database server not running: {st.get('error') or ''}".strip())
    row.service, row.healthy = st["server"], "yes"
    dbs = st["databases"]
    incomplete = [f"{name} {d['state']}" for name, d in dbs.items() if d["state"] != "complete"]
    row.schema = "complete" if not incomplete else "INCOMPLETE: " + ", ".join(incomplete)
    if incomplete:
        row.problems.append("schemas incomplete")
    msg = f"{st['server']}; " + ("all schemas complete: " + ", ".join(dbs) if not incomplete
                                 else "INCOMPLETE: " + ", ".join(incomplete))
    return StepResult(s.name, "status", Status.FAILED if incomplete else Status.OK, msg)


def drift_of(run: Run, s: HostSession) -> StepResult:
    """Would `fab deploy` change this node's configuration? Planned, never applied: the value
    is the node's NodeConfigured (its `drift`, and the fact read the artifacts column reuses),
    None when the node could not be planned."""
    planned = node_config.plan_configure(run, s)
    if planned.plan.error:
        return StepResult(s.name, "drift", Status.FAILED, "configuration could not be planned: "
                          + planned.plan.error)
    if planned.drift:
        return StepResult(s.name, "drift", Status.FAILED, "configuration DRIFT: `fab deploy` "
                          "changes it", changes=planned.plan.changes, value=planned)
    return StepResult(s.name, "drift", Status.OK, "configuration as deployed", value=planned)


def collect(run: Run) -> list[Row]:
    """Read every host (nothing changes) and fill one row per host."""
    members.ensure(run)  # the nodes' identities (drift is planned with them) and the orphans
    inv = run.inv
    rows = {h.name: Row(h.name, h.role) for h in inv.hosts}
    res = run.each(inv.nodes, "status", lambda s: node_row(run, s, rows[s.name]))
    drift = run.each(run.alive(inv.nodes), "drift", lambda s: drift_of(run, s))
    planned = {name: r.value for name, r in drift.items()
               if isinstance(r.value, node_config.NodeConfigured)}
    for n in inv.nodes:
        got = planned.get(n.name)
        if got is not None and got.drift:
            rows[n.name].drift = "YES"
            rows[n.name].problems.append("configuration drift")
        elif got is not None:
            rows[n.name].drift = "no"
        elif n.name not in run.dead:
            rows[n.name].problems.append("configuration could not be read")
    for name, (cell, problem) in artifacts.status_cells(
            inv, {name: got.raw for name, got in planned.items()}).items():
        rows[name].artifacts = cell
        if problem:
            rows[name].problems.append(problem)
    res.update(run.each([inv.lb], "status", lambda s: lb_row(run, s, rows[s.name], rows)))
    res.update(run.each([inv.db], "status", lambda s: db_row(run, s, rows[s.name])))
    for name, r in res.items():
        if r.status == Status.UNREACHABLE:
            rows[name].reachable = False
            rows[name].problems.append("unreachable")
        elif r.status == Status.FAILED and not rows[name].problems:
            rows[name].problems.append(r.msg)
    return [rows[h.name] for h in inv.hosts] + orphan_rows(run)


def orphan_rows(run: Run) -> list[Row]:
    """A node the identity record has and hosts.toml no longer lists (read with drift)."""
    out = []
    for o in members.ensure(run).orphans:
        why = (f"ORPHAN: recorded ({o.address}, REGISTRY_LOCAL{o.number}) but not in hosts.toml;"
               f" run `fab remove-node {o.name}`")
        run.rep.record(StepResult(o.name, "status", "failed", why))
        out.append(Row(o.name, "node", service="?", healthy="?", problems=[why]))
    return out


@task(name="status", help={"parallel": "hosts read at once (default 16)",
                           "json": "print the rows as JSON on stdout (host lines on stderr)"})
def status(c, parallel=16, json_=False):
    """One row per host: reachable, service, healthy, pending, drained, drift, certificate,
    schema. Exit 0 when all is well, 1 otherwise (2: bad hosts.toml)."""
    rows: list[Row] = []
    with session(c, parallel=parallel, read_only=True,
                 stream=sys.stderr if json_ else None) as run:
        rows = collect(run)
        run.rep.line(None, "")
        run.rep.line(None, f"STATUS ({time.monotonic() - run.rep.started:.1f}s)")
        for line in table(rows):
            run.rep.line(None, line)
        for r in rows:
            if not r.ok:
                run.rep.line(r.host, "NOT OK: " + "; ".join(r.problems), "failed")
        if run.rep.log_path:
            run.rep.line(None, f"log: {run.rep.log_path}")
    if json_:
        print(json.dumps([asdict(r) | {"ok": r.ok} for r in rows], indent=1))
    if exit_code(rows):
        raise Exit(code=1)
