"""db-init's facts: the DB host in one round trip, the nodes' pools (and /etc/hosts) in one
read each, and WSO2's scripts (checked byte for byte when read from a node)."""
from __future__ import annotations

import hashlib
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ...engine import boot, remote
from ...engine.inventory import Inventory
from ...engine.remote import Fact, HostSession
from .. import db_tls, hosts_file
from .cnf import DS_FILES, parse_bind_lines, parse_cnf_options, pool_sizes
from .model import (CONF_DIRS, DROPIN_NAME, LEGACY_DROPIN, WSO2_SCRIPT_SHA256, DbFacts, Server)
from .sql import client_prelude, facts_sql, print_defaults_script


def db_probes(inv: Inventory, app_hash: str) -> dict[str, str]:
    probes = {
        "sql": client_prelude(inv) + remote.script(
            "db_sql.sh", SQL=facts_sql(inv, app_hash) + "\n" + db_tls.facts_sql(inv), FORCE=1),
        "cnf": print_defaults_script(),
        "confdir": remote.script("db_confdir.sh", DIRS=" ".join(CONF_DIRS)),
        "binds": remote.script("db_binds.sh"),
        "init": remote.script("db_service.sh"),
        "boot": boot.boot_probe(("mariadb", "mysql", "mysqld")),
        # TLS for the cluster's connections (tasks/steps/db_tls.py), in this same read
        **db_tls.probes(inv, CONF_DIRS),
    }
    # our drop-in (and its old name) in each folder it may be in: "confdir" says which counts
    for d in CONF_DIRS:
        probes[f"dropin:{d}"] = remote.probe_file(f"{d}/{DROPIN_NAME}", content=True)
        probes[f"legacy:{d}"] = remote.probe_file(f"{d}/{LEGACY_DROPIN}", content=True)
    return probes


def _parse_sql(f: DbFacts, out: str) -> None:
    pw_col: dict[str, bool] = {}
    for line in out.splitlines():
        cols = line.split("\t")
        tag = cols[0]
        if tag == "version" and len(cols) >= 3:
            f.server = Server.parse(cols[1], cols[2])
        elif tag == "db" and len(cols) >= 3:
            f.databases[cols[1]] = cols[2]
        elif tag == "table" and len(cols) >= 3:
            f.tables.setdefault(cols[1], set()).add(cols[2].upper())
        elif tag == "user" and len(cols) >= 4:
            f.users[cols[1]] = cols[2] == "mysql_native_password" and cols[3] == "1"
        elif tag == "pwcol" and len(cols) >= 3:
            pw_col[cols[1]] = cols[2] == "1"
        elif tag == "grant" and len(cols) >= 4:
            m = re.match(r"'(.*)'@'(.*)'$", cols[1])
            if m:
                f.grants.setdefault(m.group(2), {}).setdefault(
                    cols[2].replace("\\_", "_"), set()).add(cols[3].upper())
        elif tag == "var" and len(cols) >= 3:
            name, val = cols[1], cols[2]
            if name == "max_connections" and val.isdigit():
                f.max_conn_running = int(val)
            elif name == "socket" and val not in ("", "NULL"):
                f.socket = val
            elif name == "skip_networking":
                f.skip_networking = val in ("1", "ON")
            elif name == "bind_address":
                f.bind_running = "" if val == "NULL" else val
    for h, ok in pw_col.items():  # MariaDB < 10.4: hash in Password, plugin ''
        if ok:
            f.users[h] = True


def _why_down(f: DbFacts, out: str, host: str, inv: Inventory) -> str:
    out = out.strip()
    if "BPS-NO-CLIENT" in out:
        return f"no mariadb/mysql client on {host}; install the server's client package there"
    if re.search(r"ERROR 200[0-9]|Can't connect|No such file", out):
        m = re.search(r"socket '([^']+)'", out)
        f.socket = m.group(1) if m else f.socket
        return f"database server on {host} is not running (socket {f.socket})"
    if re.search(r"ERROR (1045|1698)", out):
        who = inv.database.admin_user or "root (unix socket)"
        return (f"the database server on {host} refused the admin login as {who}: "
                f"{out.splitlines()[-1][:300]}; set database.admin_user and "
                "secrets.db_admin_password in hosts.toml")
    return f"cannot read the database server on {host}: {out[-500:] or 'no output'}"


def parse_db_facts(raw: dict[str, Fact], host: str, inv: Inventory) -> DbFacts:
    f = DbFacts()
    cnf = parse_cnf_options(raw["cnf"].out) if "cnf" in raw else {}
    f.bind_configured = cnf.get("bind_address")
    if cnf.get("max_connections", "").isdigit():
        f.max_conn_configured = int(cnf["max_connections"])
    if cnf.get("socket"):
        f.socket = cnf["socket"]
    lines = raw["confdir"].out.split() if "confdir" in raw else []
    f.conf_dir = lines[0] if lines else None
    if f"dropin:{f.conf_dir}" in raw:
        f.dropin_state = remote.parse_file_probe(raw[f"dropin:{f.conf_dir}"].out)
        f.dropin = f.dropin_state.content if f.dropin_state else None
    if f"legacy:{f.conf_dir}" in raw:
        st = remote.parse_file_probe(raw[f"legacy:{f.conf_dir}"].out)
        f.legacy_dropin = st.content if st else None
    f.bind_files = parse_bind_lines(raw["binds"].out if "binds" in raw else "")
    init = raw["init"].out.split() if "init" in raw else []
    f.init = init[0] if init else "sysv"
    f.service = init[1] if len(init) > 1 else ("mariadb" if f.conf_dir and "mariadb" in
                                              f.conf_dir else "mysql")
    f.boot_out = raw["boot"].out if "boot" in raw else ""
    _parse_sql(f, raw["sql"].out)
    if f.server is None:
        f.running = False
        f.error = _why_down(f, raw["sql"].out, host, inv)
    return f


def read_db_facts(s: HostSession, inv: Inventory, app_hash: str) -> DbFacts:
    return parse_db_facts(remote.read_facts(s, db_probes(inv, app_hash)), s.name, inv)


# --------------------------------------------------------------------------- the nodes


def node_probes(inv: Inventory) -> dict[str, str]:
    """One read per node: its datasource files (for the pool sizes) and /etc/hosts (for the
    /etc/hosts step that follows, so a no-op costs no extra command on the nodes)."""
    conf = f"{inv.cluster.profile_home}/conf"
    probes = {rel: remote.probe_file(f"{conf}/{rel}", content=True) for rel in DS_FILES}
    probes.update(hosts_file.probes())
    return probes


def read_node_pools(run, hosts_out: dict[str, str]) -> dict[str, int]:
    """Each live node's pool total, read in parallel; a node that cannot be read counts with
    WSO2's shipped sizes (its own step reports the problem). Fills hosts_out with each node's
    /etc/hosts fact, for hosts_file."""
    inv = run.inv
    nodes = run.alive(inv.nodes)
    probes = node_probes(inv)

    def one(node) -> tuple[str, int | None]:
        try:
            raw = remote.read_facts(run.session(node), probes)
            files: dict[str, bytes | None] = {}
            for rel in DS_FILES:
                try:
                    files[rel] = remote.parse_content_probe(raw[rel].out) if rel in raw else None
                except remote.RemoteError:
                    files[rel] = None
            if hosts_file.FACT in raw:
                hosts_out[node.name] = raw[hosts_file.FACT].out
            return node.name, sum(pool_sizes(files).values())
        except Exception:  # noqa: BLE001 - reported by the node's own step
            return node.name, None

    with ThreadPoolExecutor(max_workers=max(1, min(run.opts.parallel, len(nodes) or 1))) as ex:
        return {name: n for name, n in ex.map(one, nodes) if n is not None}


def fetch_scripts(run, paths: list[str]) -> dict[str, bytes]:
    """WSO2's scripts: from database.scripts_dir (local) or the first node's EI_HOME (one read),
    where the service user can write them: those must be WSO2's own, byte for byte."""
    inv = run.inv
    out: dict[str, bytes] = {}
    missing: list[str] = []
    if inv.database.scripts_dir:
        base = Path(inv.database.scripts_dir).expanduser()
        if not base.is_absolute():
            base = inv.path.parent / base
        for p in paths:
            f = base / p
            if f.is_file():
                out[p] = f.read_bytes()
            else:
                missing.append(str(f))
        where = f"database.scripts_dir ({base})"
    else:
        node = inv.nodes[0]
        s = run.session(node)
        ei = inv.cluster.ei_home
        facts = remote.read_facts(s, {p: remote.probe_file(f"{ei}/{p}", content=True)
                                      for p in paths})
        for p in paths:
            content = remote.parse_content_probe(facts[p].out) if p in facts else None
            if content is None:
                missing.append(f"{node.name}:{ei}/{p}")
            elif hashlib.sha256(content).hexdigest() not in WSO2_SCRIPT_SHA256:
                raise remote.RemoteError(
                    f"{node.name}:{ei}/{p} is not WSO2's shipped script (sha256 "
                    f"{hashlib.sha256(content).hexdigest()[:16]}...): the service user can write "
                    "it and db-init would run it as the database admin, so it is not loaded. "
                    "Set database.scripts_dir to a local copy of EI_HOME you trust")
            else:
                out[p] = content
        where = f"{node.name}:{ei}"
    if missing:
        raise remote.RemoteError(f"WSO2's scripts not found in {where}: {', '.join(missing)}; "
                                 "check cluster.ei_home / cluster.ei_version, or set "
                                 "database.scripts_dir to a local EI_HOME copy")
    return out
