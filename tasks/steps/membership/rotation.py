"""DB password rotation in the safe order: one node at a time, never two sides disagreeing.

Each node has its own account ('user'@'its address'), so the password can change node by node.
For each node whose account still has another password than hosts.toml's: drain it at the LB,
ALTER USER its account, write its datasources, restart it, wait for health, put it back. A run
that stops half way leaves every node with its account and its files agreeing (the ones done
on the new password, the others on the old), and the next run rotates the rest: the accounts
that still differ are read again in its preflight.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from ...engine import remote
from ...engine.inventory import Host, Inventory
from ...engine.plan import ActionFailed, Plan
from ...engine.remote import HostSession
from .. import db, node_config
from ..db.sql import alter_password

STEP = "rotate-password"
KEY = "accounts"  # Run.shared


@dataclass
class Accounts:
    server: db.Server | None = None
    # account host -> its password is the one hosts.toml gives (False: another one)
    matches: dict[str, bool] = field(default_factory=dict)


def probes(inv: Inventory) -> dict[str, str]:
    """The app accounts' password state, in the DB host's preflight read (admin login)."""
    u = db.lit(inv.database.user)
    h = db.lit(inv.secrets.db_native_hash)
    sql = (f"SELECT 'version', VERSION(), @@version_comment;\n"
           f"SELECT 'user', Host, authentication_string = {h} FROM mysql.user WHERE User = {u};\n"
           # MariaDB < 10.4 keeps the hash in Password (MySQL has no such column: ignored)
           f"SELECT 'pwcol', Host, Password = {h} FROM mysql.user WHERE User = {u};\n")
    return {"accounts": (db.client_prelude(inv)
                         + f"bps_sql --force -N -B <<'__BPS_SQL__'\n{sql}__BPS_SQL__\n")}


def parse(out: str) -> Accounts:
    a = Accounts()
    for line in out.splitlines():
        cols = line.split("\t")
        if cols[0] == "version" and len(cols) >= 3:
            a.server = db.Server.parse(cols[1], cols[2])
        elif cols[0] in ("user", "pwcol") and len(cols) >= 3:
            a.matches[cols[1]] = a.matches.get(cols[1], False) or cols[2] == "1"
    return a


def to_rotate(nodes: tuple[Host, ...] | list[Host], accounts: Accounts) -> list[Host]:
    """Pure: the nodes whose own account exists with another password, in start order. A node
    without an account is not rotated: db-init creates it with the new password."""
    return [n for n in nodes if accounts.matches.get(n.address) is False]


def alter_sql(inv: Inventory, server: db.Server | None, node: Host) -> str:
    acc = db.account(inv.database.user, node.address)
    return alter_password(server or db.Server("MariaDB", (10, 11, 0)), acc,
                              inv.secrets.db_native_hash)


def alter_plan(run, node: Host, accounts: Accounts) -> Plan:
    inv = run.inv
    sql = alter_sql(inv, accounts.server, node)

    def alter(s: HostSession) -> None:
        res = remote.run_script(s, db.admin_script(inv, [sql]), what="ALTER USER")
        if not res.ok:
            raise ActionFailed(f"the DB server refused the new password for "
                               f"'{inv.database.user}'@'{node.address}': "
                               f"{(res.stderr or res.stdout).strip()[-300:]}; {node.name} keeps "
                               "the old one and was not reconfigured", changes_done=False)
        accounts.matches[node.address] = True
    return Plan().add(f"set the password of '{inv.database.user}'@'{node.address}' "
                      f"({node.name}, the new one from hosts.toml)", alter)


def prepare(run, accounts: Accounts) -> Callable[[Host], bool]:
    """For the rolling restart, between the drain and the start of `node`: its account, then
    its files (configure on that node alone). False stops the roll (the node is put back)."""
    def one(node: Host) -> bool:
        r = run.each([run.inv.db], STEP,
                     lambda s: run.apply(s, STEP, alter_plan(run, node, accounts)))
        if r[run.inv.db.name].status not in ("ok", "changed"):
            return False
        return node_config.configure_step(run, [node], step=f"{STEP} configure").ok
    return one


def rotate(run, restart_nodes) -> bool:
    """Rotate every node that needs it, one at a time (restart_nodes: deploy's rolling restart,
    given so this module does not import the deploy task). True when there was nothing to do
    or all went well; False leaves the rest for the next run."""
    accounts = run.shared.get(KEY)
    if accounts is None:
        return True
    nodes = to_rotate(run.alive(run.inv.nodes), accounts)
    if not nodes:
        return True
    run.rep.line(None, "DB password changed in hosts.toml: rotating one node at a time "
                       f"(drain, ALTER USER, datasources, restart, health, undrain): "
                       + ", ".join(n.name for n in nodes))
    if run.check:
        for n in nodes:
            run.each([run.inv.db], STEP,
                     lambda s, n=n: run.apply(s, STEP, alter_plan(run, n, accounts)))
        return True
    return restart_nodes(run, nodes, rolling=True, prepare=prepare(run, accounts),
                         step=STEP)
