"""`fab admin-password` (and the last step of `fab deploy`): WSO2's admin password where it lives.

user-mgt.xml's `<AdminUser><Password>` only seeds the admin into the JDBC user store
(WSO2_USER_DB) at the product's first start; after that the store holds the admin's password
(salted SHA-256) and the file's value is never read again. So a changed `secrets.admin_password`
is applied through the product's own user admin service, on a running node:

* facts: each node remembers, root-only (`/var/lib/bps-deploy/admin-password.state`, 0600), a
  PBKDF2 hash of the admin user and password last applied, never the password. It is read with
  the node's configuration facts (`node_config.node_probes`), so a no-op deploy spends no command.
* plan (pure, `plan_admin`): every node remembers this password -> nothing. A node remembers
  another one -> a rotation is pending and needs the admin's current password,
  `secrets.admin_password_old` (an error naming it otherwise). No node remembers anything (a
  first deploy, or a cluster set up before this step) -> check that the password logs in, and
  remember it (or rotate it, when `admin_password_old` is given and the store still has it).
* apply: on node 1 only (the store is shared), `updateCredentialByAdmin` of
  `/services/RemoteUserStoreManagerService` over the node's own HTTPS port, authenticated with
  the old password (HTTP basic auth, as the product accepts for admin services); skipped when the
  new password already logs in (a run that died after the change). Then on every node:
  `AuthenticationAdmin` `login` with the new password must succeed and with the old one fail,
  and only then is the new hash remembered. The passwords reach curl only in its config on
  stdin (`curl -K -`): never in argv or the environment (tasks/scripts/admin_password.sh).
"""
from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import os
from dataclasses import dataclass, field

from invoke import task

from ..engine import remote
from ..engine.cli import COMMON_HELP, Abort, session
from .node_config import ADMIN_STATE
from ..engine.inventory import Host, Inventory
from ..engine.plan import ActionFailed, Plan
from ..engine.remote import HostSession
from ..engine.report import Status, StepResult
from ..engine.runner import Run

STEP = "admin"
# PBKDF2 rounds of the remembered hash. The hash sits in a root-only file on nodes whose
# user-mgt.xml holds the same password in clear (and WSO2's own store keeps one salted SHA-256):
# slowing an attacker who already has it buys nothing, while every no-op deploy pays the cost
# once (200 000 rounds were 0.11 s of a 1.3 s no-op). Old lines keep their own count.
ITERATIONS = 10_000
UM_SERVICE = "RemoteUserStoreManagerService"
UM_NS = "http://service.ws.um.carbon.wso2.org"
AUTH_SERVICE = "AuthenticationAdmin"
AUTH_NS = "http://authentication.services.core.carbon.wso2.org"
SOAP_NS = "http://schemas.xmlsoap.org/soap/envelope/"
OLD_KEY = "secrets.admin_password_old"


# --------------------------------------------------------------------------- the remembered hash


def state_line(user: str, password: str, salt: bytes) -> str:
    """What a node remembers of the applied admin password: a salted PBKDF2, never the value."""
    h = _pbkdf2(user, password, salt, ITERATIONS)
    return f"v1 pbkdf2-sha256 {ITERATIONS} {user} {salt.hex()} {h.hex()}"


def state_matches(state: str, user: str, password: str) -> bool | None:
    """True: remembers this user and password; False: another one; None: nothing readable."""
    parts = state.split()
    if len(parts) != 6 or parts[:2] != ["v1", "pbkdf2-sha256"] or not parts[2].isdigit():
        return None
    try:
        salt, want = bytes.fromhex(parts[4]), bytes.fromhex(parts[5])
    except ValueError:
        return None
    if parts[3] != user:
        return False
    return hmac.compare_digest(_pbkdf2(user, password, salt, int(parts[2])), want)


@functools.lru_cache(maxsize=64)
def _pbkdf2(user: str, password: str, salt: bytes, iterations: int) -> bytes:
    # one run writes the same line (one salt) to every node: a no-op plan hashes once
    return hashlib.pbkdf2_hmac("sha256", f"{user}\0{password}".encode(), salt, iterations)


# --------------------------------------------------------------------------- plan


@dataclass
class AdminPlan:
    action: str  # "none" | "apply" | "error"
    reason: str = ""
    first: str = ""  # node 1: where the user store is changed (rotate) and checked first
    nodes: tuple[str, ...] = ()  # nodes to verify and remember the new password on
    rotate: bool = False  # change it in the store (with admin_password_old) unless it logs in
    check_old: bool = False  # the old password must fail to log in afterwards
    pending: tuple[str, ...] = field(default=())  # nodes that remember another password

    def describe(self, inv: Inventory) -> list[str]:
        if self.action != "apply":
            return []
        node1 = inv.host(self.first)
        out = []
        if self.rotate:
            out.append(f"on {self.first}: unless the new password already logs in, "
                       f"updateCredentialByAdmin({inv.cluster.admin_user}) at "
                       f"{services_url(inv, node1)}/{UM_SERVICE}, authenticated with {OLD_KEY}")
        out.append(f"on {', '.join(self.nodes)}: {AUTH_SERVICE} login with the new password must "
                   "succeed" + (" and with the old one fail" if self.check_old else "")
                   + f", then remember its hash in {ADMIN_STATE}")
        return out


def plan_admin(inv: Inventory, states: dict[str, str]) -> AdminPlan:
    """Pure: from each live node's remembered hash (node name -> ADMIN_STATE text, "" when
    missing) to what the admin step does. No I/O; the hashing is deterministic."""
    user = inv.cluster.admin_user
    new, old = inv.secrets.admin_password or "", inv.secrets.admin_password_old or ""
    names = [n.name for n in inv.nodes if n.name in states]
    if not names:
        return AdminPlan("none", "no node to check")
    verdict = {n: state_matches(states[n], user, new) for n in names}
    todo = tuple(n for n in names if verdict[n] is not True)
    if not todo:
        why = "admin password already applied (the user store has it: its hash is remembered " \
              "on every node)"
        if old:
            why += f"; {OLD_KEY} is set but not needed: remove it"
        return AdminPlan("none", why)
    pending = tuple(n for n in todo if verdict[n] is False)
    if pending and not old:
        return AdminPlan("error", (
            f"secrets.admin_password changed since it was last applied ({', '.join(pending)} "
            f"remember{'s' if len(pending) == 1 else ''} another one): the admin password lives "
            f"in the user store (WSO2_USER_DB), and changing it there needs the current one. Set "
            f"{OLD_KEY} (a file or env var, like the other secrets) to the admin's current "
            "password and run again; user-mgt.xml only seeds a new cluster's admin"),
            pending=pending)
    first = inv.nodes[0].name
    rotate = bool(old) and old != new
    nodes = tuple(dict.fromkeys(((first,) if rotate else ()) + todo))
    if rotate and first not in states:
        return AdminPlan("error", f"{first} (node 1), where the password is changed in the "
                         "shared user store, is not in this run", pending=pending)
    reason = ("rotation pending: " if pending else "no node remembers the admin password yet: ") \
        + ", ".join(todo)
    return AdminPlan("apply", reason, first, nodes, rotate, rotate, pending)


# --------------------------------------------------------------------------- remote calls


def services_url(inv: Inventory, node: Host) -> str:
    return f"https://{node.address}:{inv.cluster.https_port}/services"


def _xml_text(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cfg_value(s: str) -> str:
    """A double-quoted curl config value: backslash and quote escaped (no control characters:
    the inventory refuses them in secrets)."""
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _envelope(ns: str, op: str, args: list[tuple[str, str]]) -> str:
    body = "".join(f"<p:{k}>{_xml_text(v)}</p:{k}>" for k, v in args)
    return (f'<soapenv:Envelope xmlns:soapenv="{SOAP_NS}" xmlns:p="{ns}"><soapenv:Header/>'
            f"<soapenv:Body><p:{op}>{body}</p:{op}></soapenv:Body></soapenv:Envelope>")


def curl_config(url: str, action: str, body: str, auth: tuple[str, str] | None = None) -> str:
    """curl's config (`-K -`): URL, SOAP headers, the body and, for admin services, the basic
    auth. It carries the passwords, so it only ever travels on curl's stdin."""
    lines = [f"url = {_cfg_value(url)}",
             'header = "Content-Type: text/xml; charset=UTF-8"',
             "header = " + _cfg_value(f'SOAPAction: "urn:{action}"'),
             f"data-binary = {_cfg_value(body)}"]
    if auth:
        lines.append("user = " + _cfg_value(f"{auth[0]}:{auth[1]}"))
    return "\n".join(lines) + "\n"


def login_config(inv: Inventory, node: Host, password: str) -> str:
    return curl_config(f"{services_url(inv, node)}/{AUTH_SERVICE}", "login", _envelope(
        AUTH_NS, "login", [("username", inv.cluster.admin_user), ("password", password),
                           ("remoteAddress", node.address)]))


def update_config(inv: Inventory, node: Host, old: str, new: str) -> str:
    user = inv.cluster.admin_user
    return curl_config(f"{services_url(inv, node)}/{UM_SERVICE}", "updateCredentialByAdmin",
                       _envelope(UM_NS, "updateCredentialByAdmin",
                                 [("userName", user), ("newCredential", new)]), auth=(user, old))


def _b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode() if s else ""


def node_script(inv: Inventory, plan: AdminPlan, node: Host, state: str) -> str:
    """tasks/scripts/admin_password.sh for one node: rotate (node 1) and/or verify, remember."""
    new, old = inv.secrets.admin_password or "", inv.secrets.admin_password_old or ""
    rotate = plan.rotate and node.name == plan.first
    return remote.script(
        "admin_password.sh", NODE=node.name, ROTATE=int(rotate), CHECK_OLD=int(plan.check_old),
        UPDATE=_b64(update_config(inv, node, old, new) if rotate else ""),
        LOGIN_NEW=_b64(login_config(inv, node, new)),
        LOGIN_OLD=_b64(login_config(inv, node, old) if plan.check_old else ""),
        STATE_FILE=ADMIN_STATE, STATE=state)


EXIT_WHY = {
    4: ("the user store refuses secrets.admin_password for the admin: if the admin password was "
        f"changed before, set {OLD_KEY} to its current value so it is rotated"),
}


def node_actions(inv: Inventory, plan: AdminPlan, node: Host, state: str) -> Plan:
    """One node's part of an "apply" AdminPlan as actions (engine/plan.py): one script does it
    all; the change lines say what, and check mode shows them without running anything."""
    lines = plan.describe(inv)
    if plan.rotate and node.name != plan.first:
        lines = lines[-1:]  # only node 1 changes the shared store

    def apply(s: HostSession) -> str:
        res = remote.run_script(s, node_script(inv, plan, node, state), what="admin password",
                                timeout=min(s.timeout, 300))
        if not res.ok:
            detail = (res.stderr.strip() or res.stdout.strip())[-1000:]
            hint = None if plan.rotate else EXIT_WHY.get(res.exit)
            raise ActionFailed(detail + (f"; {hint}" if hint else ""))
        said = res.stdout.split()
        done = []
        if "CHANGED" in said:
            done.append(f"admin password changed in the user store (updateCredentialByAdmin, "
                        f"authenticated with {OLD_KEY})")
        elif "ALREADY" in said:
            done.append("the user store already had the new admin password")
        done.append("login with the new password works")
        if "OLD-REFUSED" in said:
            done.append("the old one is refused")
        done.append("its hash remembered")
        return "; ".join(done)

    out = Plan().add(f"apply the admin password ({plan.reason})", apply)
    for line in lines:
        out.add(line, lambda s: None)  # done by the script above
    return out


# --------------------------------------------------------------------------- step


def read_states(run: Run, nodes: list[Host]) -> dict[str, str]:
    """Standalone `fab admin-password`: each node's remembered hash (one command per node),
    handed back as each result's value."""
    def one(s: HostSession) -> StepResult:
        f = remote.read_facts(s, {"admin_state": f"cat {ADMIN_STATE} 2>/dev/null || true"})
        return StepResult(s.name, "facts", Status.OK, "admin password state read",
                          value=f["admin_state"].out.strip())

    results = run.each(nodes, "facts", one)
    return {name: r.value for name, r in results.items() if r.status == Status.OK}


def admin_step(run: Run, states: dict[str, str] | None = None) -> bool:
    """Apply secrets.admin_password in the user store when it changed; False on failure.

    `states`: node -> remembered hash, as read with the configure facts (fab deploy);
    read here when not given."""
    inv = run.inv
    nodes = run.alive(inv.nodes)
    if states is None:
        states = read_states(run, nodes)
        nodes = run.alive(nodes)
    plan = plan_admin(inv, {n.name: states.get(n.name, "") for n in nodes})
    if plan.action == "none":
        run.each(nodes, STEP, lambda s: run.apply(s, STEP, Plan(noop=plan.reason)))
        return True
    if plan.action == "error":
        bad = [inv.host(n) for n in plan.pending] or nodes
        run.each(bad, STEP, lambda s: run.apply(s, STEP, Plan.refuse(plan.reason)))
        return False
    targets = [inv.host(n) for n in plan.nodes]
    # one salt for the run: every node remembers the same line
    state = state_line(inv.cluster.admin_user, inv.secrets.admin_password or "", os.urandom(16))

    def one(s: HostSession) -> StepResult:
        return run.apply(s, STEP, node_actions(inv, plan, s.host, state))

    if plan.rotate:
        # node 1 changes the shared store first; the others only verify once it did
        first, rest = targets[0], targets[1:]
        r = run.each([first], STEP, one)[first.name]
        if r.status.bad:
            run.each(rest, STEP, lambda s: StepResult(
                s.name, STEP, Status.SKIPPED, f"not checked: the change on {first.name} failed"))
            return False
        targets = rest
    results = run.each(targets, STEP, one)
    return not any(r.status.bad or r.status == Status.SKIPPED for r in results.values())


@task(help={"check": COMMON_HELP["check"], "parallel": COMMON_HELP["parallel"]})
def admin_password(c, check=False, parallel=16):
    """Apply secrets.admin_password in the user store (needs secrets.admin_password_old)."""
    from .deploy.lock import deploy_lock  # the lock alone: deploy's tasks import this module
    with session(c, check=check, parallel=parallel, title="ADMIN PASSWORD") as run:
        with deploy_lock(run):
            if not admin_step(run):
                raise Abort("the admin password was not applied (see the lines above)")
