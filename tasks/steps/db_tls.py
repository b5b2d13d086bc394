"""TLS to the database: the DB server's certificate from the cluster CA, its accounts REQUIRE SSL.

Part of `fab db-init` / `fab deploy`; its facts come in db-init's one fact read (`probes`, added
by db.db_probes), so a no-op run spends no command here.
- `/etc/bps-deploy/db-tls/`: `server.crt` (SANs: `[db] hostname`, the JDBC URLs' host, and the
  DB address), `server.key` (root:mysql 0640: the server reads it as its own user) and `ca.pem`
  (the cluster CA), issued on the controller like the nodes' keys. Renewed like them: when
  missing or not ours, the CA or names changed, or the certificate expires within
  `certs.renew_before_days` (remembered in /var/lib/bps-deploy/db-tls.state, root only).
- the drop-in `zz-bps-deploy-tls.cnf` (beside db-init's `zz-bps-deploy.cnf`: each file is one
  step's) sets `ssl_cert`, `ssl_key`, `ssl_ca` in `[mysqld]`.
- loading: a server already using these paths reloads a renewed certificate live, with
  `FLUSH SSL` (MariaDB >= 10.4) or `ALTER INSTANCE RELOAD TLS` (MySQL >= 8.0.16); a server
  that must read new paths (the first time) or has neither is restarted only under
  `database.allow_server_restart` (the consent db-init asks for the bind address): without it
  the run stops before any change and says what it would write and run.
- REQUIRE SSL on every node's account (`require_ssl`): only once the nodes connect over TLS,
  i.e. by `fab deploy` after the nodes were configured and restarted; `database.tls = false`
  turns it back to REQUIRE NONE before anything else (the nodes may then connect without).
"""
from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, field

from ..engine import remote
from ..engine.inventory import Inventory
from ..engine.plan import ActionFailed, Plan
from ..engine.remote import FileSpec, FileState, HostSession, q
from . import cluster_ca

STEP = "db-tls"
TLS_DIR = "/etc/bps-deploy/db-tls"
CERT, KEY, CA = f"{TLS_DIR}/server.crt", f"{TLS_DIR}/server.key", f"{TLS_DIR}/ca.pem"
DROPIN_NAME = "zz-bps-deploy-tls.cnf"
STATE = f"{remote.STATE_DIR}/db-tls.state"
MARK = "# Managed by bps-deploy (db-tls): TLS for the cluster's connections, cluster CA.\n"


def wanted(inv: Inventory) -> bool:
    return inv.database.tls and inv.certs.cluster_ca


def managed_paths(inv: Inventory, conf_dirs: tuple[str, ...]) -> list[str]:
    """For `fab backup` (backup/managed.py): the certificate, key, CA, record, drop-ins."""
    if not wanted(inv):
        return []
    return [CERT, KEY, CA, STATE] + [f"{d}/{DROPIN_NAME}" for d in conf_dirs]


def facts_sql(inv: Inventory) -> str:
    """The server's TLS state and the accounts' REQUIRE, asked in db-init's own SQL fact (one
    client run for both): lines tagged 'tls' and 'req'."""
    return (f"SELECT 'tls', @@global.have_ssl, IFNULL(@@global.ssl_cert, ''), VERSION();\n"
            f"SELECT 'req', Host, ssl_type FROM mysql.user WHERE User = "
            f"'{inv.database.user}';\n")  # an identifier checked at load (letters, digits, _)


def probes(inv: Inventory, conf_dirs: tuple[str, ...]) -> dict[str, str]:
    """Added to db-init's fact read: the files, our drop-in, the record, the mysql group (the
    SQL part rides in db-init's "sql" fact: facts_sql)."""
    out = {"tls:dropin": "".join(f"if [ -d {q(d)} ]; then echo {q(d)}; "
                                 f"{remote.probe_file(d + '/' + DROPIN_NAME, content=True)}; el"
                                 for d in conf_dirs) + "se true; fi",
           "tls:state": f"cat {STATE} 2>/dev/null || true",
           "tls:group": "getent group mysql >/dev/null && echo mysql || echo root"}
    for p in (CERT, KEY, CA):
        out[f"tls:{p}"] = remote.probe_file(p)
    return out


@dataclass
class TlsFacts:
    have_ssl: str = ""
    ssl_cert: str = ""
    version: str = ""
    require: dict[str, str] = field(default_factory=dict)  # account host -> ssl_type
    conf_dir: str | None = None
    dropin: bytes | None = None
    dropin_state: FileState | None = None
    files: dict[str, FileState | None] = field(default_factory=dict)
    remembered: dict[str, str] = field(default_factory=dict)
    group: str = "mysql"

    @property
    def dropin_path(self) -> str | None:
        return f"{self.conf_dir}/{DROPIN_NAME}" if self.conf_dir else None

    @property
    def reload_sql(self) -> str | None:
        """The statement that loads a renewed certificate without a restart, if any."""
        v = self.version.lower()
        nums = tuple(int(x) for x in v.split("-")[0].split(".")[:3] if x.isdigit())
        if "mariadb" in v:
            return "FLUSH SSL;" if nums >= (10, 4) else None
        return "ALTER INSTANCE RELOAD TLS;" if nums >= (8, 0, 16) else None


def parse(raw: dict[str, remote.Fact]) -> TlsFacts:
    f = TlsFacts()
    for line in raw["sql"].out.splitlines():
        cols = line.split("\t")
        if cols[0] == "tls" and len(cols) >= 4:
            f.have_ssl, f.ssl_cert, f.version = cols[1], cols[2], cols[3]
        elif cols[0] == "req" and len(cols) >= 3:
            f.require[cols[1]] = cols[2]
    lines = raw["tls:dropin"].out.splitlines()
    f.conf_dir = lines[0].strip() if lines else None
    if len(lines) >= 2:
        f.dropin_state = remote.parse_file_probe("\n".join(lines[1:]))
        f.dropin = f.dropin_state.content if f.dropin_state else None
    f.files = {p: remote.parse_file_probe(raw[f"tls:{p}"].out) for p in (CERT, KEY, CA)}
    f.remembered = dict(ln.split("=", 1) for ln in raw["tls:state"].out.splitlines() if "=" in ln)
    f.group = raw["tls:group"].out.strip() or "root"
    return f


def dropin_bytes() -> bytes:
    return (MARK + "[mysqld]\n" + f"ssl_cert = {CERT}\nssl_key = {KEY}\nssl_ca = {CA}\n").encode()


def names(inv: Inventory) -> tuple[tuple[str, ...], tuple[str, ...]]:
    dns = tuple(dict.fromkeys(n for n in (inv.database.hostname,) if not _is_ip(n)))
    return dns, (inv.db.address,)


def _is_ip(s: str) -> bool:
    import ipaddress
    try:
        ipaddress.ip_address(s)
        return True
    except ValueError:
        return False


def _names_digest(inv: Inventory) -> str:
    dns, ips = names(inv)
    return hashlib.sha256(" ".join(dns + ips).encode()).hexdigest()[:32]


@dataclass
class TlsPlan:
    reissue: list[str] = field(default_factory=list)
    write_ca: bool = False
    dropin: bool = False
    load: str = ""  # "" | "restart" | "reload"
    unrequire: list[str] = field(default_factory=list)  # hosts to REQUIRE NONE (tls off)
    require: list[str] = field(default_factory=list)  # hosts to REQUIRE SSL (after the nodes)
    error: str | None = None


def plan_tls(inv: Inventory, f: TlsFacts, ca, now: dt.datetime) -> TlsPlan:
    """Pure: what the DB host needs (ca None: check mode before the CA exists)."""
    p = TlsPlan()
    nodes = [n.address for n in inv.nodes]
    if not wanted(inv):
        p.unrequire = [h for h in nodes if f.require.get(h, "") not in ("", "NONE")]
        return p
    r = f.remembered
    ca_fp = ca.fingerprint if ca else "(new CA)"
    cert = f.files.get(CERT)
    if cert is None or f.files.get(KEY) is None:
        p.reissue.append("no server certificate yet")
    elif r.get("sha") != cert.sha256:
        p.reissue.append("the server certificate is not the one this tool wrote")
    else:
        p.reissue += cluster_ca.reissue_reasons(r, ca_fp, _names_digest(inv), now,
                                                inv.certs.renew_before_days)
    ca_st = f.files.get(CA)
    p.write_ca = ca is None or ca_st is None or ca_st.sha256 != hashlib.sha256(ca.pem).hexdigest()
    p.dropin = f.dropin != dropin_bytes()
    live = f.have_ssl == "YES" and f.ssl_cert == CERT
    if p.dropin or not live:
        p.load = "restart"
    elif p.reissue or p.write_ca:
        p.load = "reload" if f.reload_sql else "restart"
    if p.load == "restart" and not inv.database.allow_server_restart:
        p.error = (f"the database server must be restarted to {'use' if not live else 'load'} "
                   f"its TLS certificate ({TLS_DIR}, {f.dropin_path or DROPIN_NAME}) and "
                   "[database] allow_server_restart is not true: set it (the server drops its "
                   "connections for a moment), or restart it yourself after this run, or set "
                   "database.tls = false (loud warning); nothing was changed")
    if f.conf_dir is None:
        p.error = ("no MySQL/MariaDB configuration folder (mariadb.conf.d, mysql.conf.d, "
                   "conf.d, my.cnf.d) for the TLS drop-in")
    p.require = [h for h in nodes if f.require.get(h, "") != "ANY"]
    return p


def _issue(inv: Inventory, ca, now: dt.datetime) -> tuple[bytes, bytes, str]:
    dns, ips = names(inv)
    key, cert = cluster_ca.issue(ca, dns[0] if dns else inv.db.address, dns, ips,
                                 inv.certs.node_days, now)
    crt = cluster_ca.cert_pem(cert)
    state = (f"sha={hashlib.sha256(crt).hexdigest()}\nca={ca.fingerprint}\n"
             f"names={_names_digest(inv)}\nnot_after={int(cert.not_valid_after_utc.timestamp())}\n")
    return crt, cluster_ca.key_pem(key), state


def tls_actions(run, f: TlsFacts, p: TlsPlan, ca, restart_cmd: str, admin_prelude: str) -> Plan:
    inv = run.inv
    out = Plan(noop="TLS as wanted (certificate from the cluster CA, loaded)" if wanted(inv)
               else "TLS to the database off (database.tls = false)", error=p.error)
    if p.error:
        return out
    if p.unrequire:
        sql = [f"ALTER USER '{inv.database.user}'@'{h}' REQUIRE NONE;" for h in p.unrequire]
        out.add(f"REQUIRE NONE for {', '.join(p.unrequire)} (database.tls = false)",
                lambda s: _sql(s, admin_prelude, sql, "REQUIRE NONE") and None)
    if not wanted(inv) or not (p.reissue or p.write_ca or p.dropin or p.load):
        return out
    now = dt.datetime.now(dt.timezone.utc)
    specs = [FileSpec(CA, ca.pem if ca else b"", "root", "root", 0o644)]
    state = ""
    if p.reissue and ca is not None:
        crt, key, state = _issue(inv, ca, now)
        specs = [FileSpec(CERT, crt, "root", "root", 0o644),
                 FileSpec(KEY, key, "root", f.group, 0o640, sensitive=True)] + specs
    if p.dropin:
        specs.append(FileSpec(f.dropin_path, dropin_bytes(), "root", "root", 0o644))
    current = {**f.files, f.dropin_path: f.dropin_state}
    changes = remote.plan_files(specs, current) if ca else [
        remote.FileChange(sp, current.get(sp.path), True) for sp in specs]
    what = "; ".join(filter(None, [
        f"new server certificate from the cluster CA ({'; '.join(p.reissue)})" if p.reissue
        else "", f"the cluster CA in {CA}" if p.write_ca else "",
        f"ssl_cert/ssl_key/ssl_ca in {f.dropin_path}" if p.dropin else ""])) or "load TLS"
    load = {"restart": f"restart the server ({restart_cmd}, allow_server_restart)",
            "reload": f"load it live ({f.reload_sql})", "": ""}[p.load]

    def write(s: HostSession) -> str:
        script = f"install -d -m 0755 {TLS_DIR}\n" + remote.write_files_script(
            changes, run.stamp, f"{restart_cmd} </dev/null" if p.load == "restart" else None,
            inv.cluster.backups_keep)
        body = f"(\n{script})\nrc=$?\n"
        if p.load == "restart":  # a failed restart: our files were put back; start it again
            body += (f"if [ $rc -ne 0 ] && ! pgrep -x 'mariadbd|mysqld' >/dev/null; then "
                     f"{restart_cmd} </dev/null >/dev/null 2>&1; fi\n")
        body += "exit $rc\n"
        res = remote.run_script(s, body, what="db TLS files")
        if not res.ok:
            raise ActionFailed("the server did not start with TLS; the previous files were put "
                               f"back: {(res.stderr or res.stdout).strip()[-600:]}",
                               changes_done=False)
        if p.load == "reload":
            _sql(s, admin_prelude, [f.reload_sql], "reload TLS")
        if state:
            remote.run_script(s, cluster_ca.remember_script(STATE, state), check=True, what="remember db TLS")
        return "restarted" if p.load == "restart" else ""
    out.add(what + (f", then {load}" if load else ""), write, changes)
    return out


def _sql(s: HostSession, prelude: str, statements: list[str], what: str) -> bool:
    sql = "\n".join(statements) + "\n"
    res = remote.run_script(s, prelude + f"bps_sql -N -B <<'__BPS_SQL__'\n{sql}__BPS_SQL__\n",
                            what=what)
    if not res.ok:
        raise ActionFailed(f"{what}: {(res.stderr or res.stdout).strip()[-600:]}")
    return True


def require_actions(run, p: TlsPlan, admin_prelude: str) -> Plan:
    """REQUIRE SSL on the node accounts: run by `fab deploy` once the nodes use TLS."""
    inv = run.inv
    out = Plan(noop="the node accounts already REQUIRE SSL" if wanted(inv)
               else "TLS to the database off")
    if wanted(inv) and p.require:
        sql = [f"ALTER USER '{inv.database.user}'@'{h}' REQUIRE SSL;" for h in p.require]
        out.add(f"REQUIRE SSL for {inv.database.user}@{', '.join(p.require)} (the nodes "
                "connect over TLS)", lambda s: _sql(s, admin_prelude, sql, "REQUIRE SSL") and None)
    return out


def db_tls_step(run, raw: dict, restart_cmd: str, admin_prelude: str) -> TlsPlan | None:
    """On the DB host, after db-init's own work: files, drop-in, load. Returns the plan (its
    REQUIRE SSL part is applied later by `require_step`), None when the host failed."""
    inv = run.inv
    if not wanted(inv):
        run.rep.line(inv.db.name, "!!! database.tls = false: DB traffic is not encrypted", "warn")
    try:
        ca = cluster_ca.run_ca(run) if inv.certs.cluster_ca else None
    except cluster_ca.CaError as e:
        from ..engine.report import Status, StepResult
        run.rep.record(StepResult(inv.db.name, STEP, Status.FAILED, str(e)))
        return None
    f = parse(raw)
    p = plan_tls(inv, f, ca, dt.datetime.now(dt.timezone.utc))
    res = run.each([inv.db], STEP, lambda s: run.apply(
        s, STEP, tls_actions(run, f, p, ca, restart_cmd, admin_prelude)))
    return p if res[inv.db.name].status in ("ok", "changed") else None


def require_step(run, p: TlsPlan | None, admin_prelude: str) -> bool:
    if p is None or not wanted(run.inv):
        return True
    res = run.each([run.inv.db], "db-tls require", lambda s: run.apply(
        s, "db-tls require", require_actions(run, p, admin_prelude)))
    return all(r.status in ("ok", "changed") for r in res.values())
