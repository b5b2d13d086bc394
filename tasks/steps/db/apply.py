"""db-init's actions at run time: what each action of the plan does over the host's session.

The planner (plan.py) decides everything and builds these; `run.apply` runs them (and nothing
in check mode). Several change lines may share one remote script (all the SQL in one client
invocation, all the loads in one script): the first of them runs it for all, as lb's vhosts do.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable

from ...engine import remote
from ...engine.inventory import Inventory
from ...engine.plan import Action, ActionFailed, Done
from ...engine.remote import FileChange, HostSession
from .model import DbFacts, Load, classify
from .sql import BIND_OTHER, admin_script, load_script, settings_script


@dataclass
class SqlAction(Action):
    """An action whose work is SQL statements, run as the database admin (see SqlBatch)."""

    sql: tuple[str, ...] = ()


def _tail(res: remote.CmdResult, lines: int = 3) -> str:
    err = [x for x in (res.stderr + "\n" + res.stdout).splitlines() if x.strip()]
    return " | ".join(err[-lines:]) or "no output"


@dataclass
class SqlBatch:
    """Every statement of the plan in ONE client invocation; it stops at the first error."""

    inv: Inventory
    server: str  # the server's label, for the note
    sql: list[str] = field(default_factory=list)
    ran: bool = False

    def add(self, statements: list[str]) -> Callable[[HostSession], str | None]:
        self.sql += statements
        return self.run

    def run(self, s: HostSession) -> str | None:
        if self.ran:
            return None
        self.ran = True
        res = remote.run_script(s, admin_script(self.inv, self.sql), what="db admin SQL")
        if not res.ok:
            raise ActionFailed(f"the admin SQL failed on {s.name} (client exit {res.exit}): "
                               f"{_tail(res)}; the statements after the failing one did not run")
        return f"{self.server}: {len(self.sql)} SQL statement(s) run"


@dataclass
class Settings:
    """The drop-in, our old drop-in's removal and the restart: one script (db_settings.sh)."""

    facts: DbFacts
    change: list[FileChange]
    want_bind: str
    restart: bool
    legacy: str | None
    stamp: str
    keep: int
    ran: bool = False

    def script(self) -> str:
        return settings_script(self.facts, self.change, self.want_bind, self.restart,
                               self.legacy, self.stamp, self.keep)

    def run(self, s: HostSession) -> Done | None:
        if self.ran:
            return None
        self.ran = True
        res = remote.run_script(s, self.script(), what="db settings")
        out = res.stdout + res.stderr
        path = self.change[0].spec.path if self.change else self.facts.dropin_path
        if not res.ok and BIND_OTHER in out:
            line = next(ln for ln in out.splitlines() if BIND_OTHER in ln)
            raise ActionFailed(
                f"after writing {path}, " + line.split(": ", 1)[1].strip()
                + f": another file wins over ours, so {path} was rolled back (as before this "
                  f"run) and {self.facts.service} was not restarted; nothing else changed. "
                  "Change or remove that line there, then re-run", changes_done=False)
        if not res.ok:
            raise ActionFailed(f"writing the server settings{' / restart' if self.restart else ''}"
                               f" failed on {s.name} (exit {res.exit}): {_tail(res, 6)}")
        if self.restart:
            return Done(f"{self.facts.service} restarted (bind-address changed)", restarted=True)
        return None


def needed_scripts(plan) -> list[str]:
    """The WSO2 scripts a plan's loads need, each once, in load order."""
    out: list[str] = []
    for ld in plan.loads:
        out += [s for s in ld.scripts if s not in out]
    return out


@dataclass
class Loads:
    """WSO2's scripts: fetched (and checked) before any change, then loaded in one script, one
    client invocation per database, each database's tables counted afterwards."""

    inv: Inventory
    loads: list[Load]
    fetch: Callable[[list[str]], dict[str, bytes]] | None
    sources: dict[str, bytes] = field(default_factory=dict)
    ran: bool = False

    def get_sources(self, s: HostSession) -> None:
        if self.fetch is None:
            raise ActionFailed("no source for WSO2's scripts was given")
        self.sources = self.fetch(needed_scripts(self))

    def run(self, s: HostSession) -> str | None:
        if self.ran:
            return None
        self.ran = True
        res = remote.run_script(s, load_script(self.inv, self.loads, self.sources),
                                what="schema load", timeout=max(s.timeout, 600))
        rcs = dict(re.findall(r"^@@LOAD (\S+) rc=(\d+)$", res.stdout, re.M))
        after: dict[str, set[str]] = {}
        for line in res.stdout.splitlines():
            cols = line.split("\t")
            if cols[0] == "table" and len(cols) >= 3:
                after.setdefault(cols[1], set()).add(cols[2].upper())
        failures = []
        for ld in self.loads:
            state, missing = classify(after.get(ld.db), ld.kind)
            if rcs.get(ld.db) != "0" or state != "complete":
                failures.append(f"loading {ld.db} on {s.name} failed (client exit "
                                f"{rcs.get(ld.db, '?')}; {state}, missing {len(missing)} "
                                f"table(s)): {_tail(res)}")
        if failures:
            raise ActionFailed("; ".join(failures))
        return f"{len(self.loads)} database(s) loaded"


def fail_with(message: str) -> Callable[[HostSession], None]:
    """The last action of a plan that applies what it can, then fails (partial databases)."""
    def run(s: HostSession) -> None:
        raise ActionFailed(message)
    return run


def shell(command: str, what: str) -> Callable[[HostSession], None]:
    return lambda s: remote.run_script(s, command + "\n", check=True, what=what) and None
