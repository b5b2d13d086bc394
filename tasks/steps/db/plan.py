"""db-init's planner (pure): the DB host's facts -> a `Plan` whose actions carry all the SQL.

The actions, in the order they run: WSO2's scripts fetched and checked (before any change), the
server settings (settings.py: drop-in, old drop-in, restart), start at boot, the admin SQL in one
client invocation (max_connections, databases, users, grants, revokes, the drops --drop asks
for), the schema loads; last, partial databases not named by --drop fail the host.

* One account per node address (never '%'), `GRANT ALL` on the shared databases and that
  node's own REGISTRY_LOCALn only (CREATE USER, then GRANT: valid on MySQL 5.7/8 and MariaDB);
  a grant on another node's local registry (wider than needed) is revoked, and the plan says so.
* Scripts are not idempotent: a database is loaded only when it holds none of its tables; a
  database with some of them is partial: reported with the missing tables, never dropped unless
  `--drop NAME` names it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from ...engine import boot
from ...engine.inventory import Inventory
from ...engine.plan import Plan
from ...engine.remote import FileSpec, plan_files
from .apply import Loads, Settings, SqlAction, SqlBatch, fail_with, shell
from .model import (KIND_TABLES, REQUIRED_PRIVS, DbFacts, Load, Server, account, classify,
                    db_kinds, ident, node_databases, scripts_for)
from .settings import plan_settings
from .sql import alter_password, identified

Fetch = Callable[[list[str]], dict[str, bytes]]


@dataclass
class DbPlan(Plan):
    """The contract's Plan, with the typed decisions behind its actions (tests, messages)."""

    errors: list[str] = field(default_factory=list)  # refusals: nothing runs
    problems: list[str] = field(default_factory=list)  # the rest runs, then the host fails
    loads: list[Load] = field(default_factory=list)
    dropin: FileSpec | None = None
    remove_legacy: str | None = None  # our old drop-in, to back up and remove
    restart: bool = False
    wanted_bind: str = ""
    enable: str | None = None  # the command that starts the server at boot (None: it does)

    @property
    def admin_sql(self) -> list[str]:
        """Every statement the actions carry, in the order they run."""
        return [q for a in self.actions if isinstance(a, SqlAction) for q in a.sql]

    @property
    def empty(self) -> bool:
        return not self.actions


class _Sql:
    """The SQL actions, in run order: all in one batch (one client invocation)."""

    def __init__(self, inv: Inventory, server: Server):
        self.batch = SqlBatch(inv, server.label)
        self.actions: list[SqlAction] = []

    def __call__(self, describe: str, statements: list[str]) -> None:
        self.actions.append(SqlAction(describe, self.batch.add(statements),
                                      sql=tuple(statements)))


def _accounts(p: DbPlan, sql: _Sql, facts: DbFacts, inv: Inventory, server: Server,
              app_hash: str) -> None:
    """The application user: one account per node address, its grants; revokes last."""
    d = inv.database
    user = d.user
    kinds = db_kinds(inv)
    revokes: list[tuple[str, list[str]]] = []
    for node in inv.nodes:
        acc = account(user, node.address)
        if node.address not in facts.users:
            sql(f"create user '{user}'@'{node.address}' ({node.name})",
                 [f"CREATE USER {acc} {identified(server, app_hash)};"])
        elif not facts.users[node.address]:
            sql(f"set the password of '{user}'@'{node.address}' (hosts.toml has a "
                           "different one)", [alter_password(server, acc, app_hash)])
        have = facts.grants.get(node.address, {})
        needed = node_databases(inv, node.registry_number)
        lacking = [db for db in needed if not REQUIRED_PRIVS <= have.get(db, set())]
        if lacking:
            sql(f"grant all on {', '.join(lacking)} to '{user}'@'{node.address}'",
                 [f"GRANT ALL PRIVILEGES ON {ident(db)}.* TO {acc};" for db in lacking])
        # another node's local registry: wider than this node needs
        wider = [db for db in kinds if db not in needed and have.get(db)]
        if wider:
            revokes.append((f"revoke all on {', '.join(wider)} from '{user}'@'{node.address}' "
                            f"({node.name} needs only its own {d.local_db(node.registry_number)})",
                            [f"REVOKE ALL PRIVILEGES ON {ident(db)}.* FROM {acc};"
                             for db in wider]))
    for describe, statements in revokes:  # after every GRANT
        sql(describe, statements)
    others = sorted(set(facts.users) - {n.address for n in inv.nodes})
    if others:
        p.warnings.append(f"other accounts of {user} left alone: "
                          + ", ".join(f"'{user}'@'{h}'" for h in others))
    extra_dbs = sorted({db for h in facts.grants.values() for db in h} - set(kinds))
    if extra_dbs:
        p.warnings.append(f"{user} also has grants on {', '.join(extra_dbs)} (left alone)")


def _schemas(p: DbPlan, sql: _Sql, inv: Inventory, server: Server,
             states: dict[str, tuple[str, list[str]]], drop: tuple[str, ...]) -> list[str]:
    """Which databases are loaded (and dropped first); the load change lines."""
    loads = []
    for db, kind in db_kinds(inv).items():
        state, missing = states[db]
        scripts = scripts_for(kind, server, inv.cluster.ei_version)
        names = ", ".join(s.split("dbscripts/", 1)[-1] for s in scripts)
        total = len(KIND_TABLES[kind])
        if state == "missing":
            p.loads.append(Load(db, kind, scripts))
            loads.append(f"load {names} into {db}")
            if db in drop:
                p.warnings.append(f"--drop {db}: it holds none of its tables; loaded, not dropped")
        elif state == "partial":
            have = total - len(missing)
            if db in drop:
                p.loads.append(Load(db, kind, scripts, drop_first=True))
                sql(f"DROP partial database {db} ({have}/{total} tables, as --drop "
                               f"{db} asks) and create it again",
                     [f"DROP DATABASE {ident(db)};",
                      f"CREATE DATABASE {ident(db)} CHARACTER SET {server.charset};"])
                loads.append(f"load {names} into {db}")
            else:
                p.problems.append(
                    f"{db} is partial ({have} of {total} tables; missing: "
                    f"{', '.join(missing)}): not loaded and not dropped. If it holds nothing "
                    f"you need, drop and reload it with: fab db-init --drop {db}")
        elif db in drop:
            p.errors.append(f"--drop {db}: {db} is complete ({total} tables); "
                            "refusing to drop a complete database")
    return loads


def plan_db(facts: DbFacts, inv: Inventory, drop: tuple[str, ...] = (),
            app_hash: str | None = None, *, stamp: str = "", fetch: Fetch | None = None) -> DbPlan:
    """Everything db-init must do on the DB host, from the facts. No I/O: the actions do it.

    fetch: reads WSO2's scripts (facts.fetch_scripts over the run), called by the first action.
    """
    server = facts.server or Server("MariaDB", (10, 11, 0))
    found = f"{server.label} found"
    p = DbPlan(noop=f"{found}; databases, users, grants, schemas and server settings already "
                    "as wanted", before={facts.dropin_path or "": facts.dropin})
    kinds = db_kinds(inv)
    app_hash = app_hash or inv.secrets.db_native_hash
    for name in drop:
        if name not in kinds:
            p.errors.append(f"--drop {name}: not one of this cluster's databases "
                            f"({', '.join(kinds)}); nothing dropped")
    sql = _Sql(inv, server)
    settings = plan_settings(p, facts, inv, server)
    for describe, statement in settings.set_global:
        sql(describe, [statement])
    states = {db: classify(facts.tables.get(db), kind) for db, kind in kinds.items()}
    for db in kinds:
        if db not in facts.databases:
            sql(f"create database {db} (character set {server.charset})",
                 [f"CREATE DATABASE IF NOT EXISTS {ident(db)} CHARACTER SET {server.charset};"])
    _accounts(p, sql, facts, inv, server, app_hash)
    # started at boot: the tool restarts this server, it must come back after a reboot
    p.enable, note = boot.boot_plan(boot.parse_boot(facts.boot_out, facts.service),
                                    facts.service)
    if note:
        p.warnings.append(note)
    load_lines = _schemas(p, sql, inv, server, states, drop)
    if p.errors:
        p.error = f"{found}; nothing changed: " + "; ".join(p.errors)
        return p
    loads = Loads(inv, p.loads, fetch)
    if p.loads:
        p.add("read and check WSO2's scripts", loads.get_sources, quiet=True)
    change = plan_files([p.dropin], {p.dropin.path: facts.dropin_state}) if p.dropin else []
    run_settings = Settings(facts, change, p.wanted_bind, p.restart, p.remove_legacy, stamp,
                            inv.cluster.backups_keep).run
    for i, describe in enumerate(settings.dropin_changes):
        p.add(describe, run_settings, change if i == 0 else ())
    if p.enable:
        p.add(f"start {facts.service} at boot: " + p.enable.split(" 2>")[0],
              shell(p.enable, f"enable {facts.service} at boot"))
    p.actions += sql.actions  # after the settings and the boot fix
    for describe in load_lines:
        p.add(describe, loads.run)
    if p.problems:
        if p.actions:
            p.warnings += p.problems
            p.add(f"{len(p.problems)} partial database(s) left as they are", fail_with(
                f"{len(p.problems)} partial database(s) not loaded and not dropped (below)"),
                quiet=True)
        else:
            p.error = f"{found}; " + "; ".join(p.problems)
    return p
