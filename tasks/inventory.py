"""hosts.toml: read, validate and model the cluster.

Every mistake is found before any host is touched, reported together, each naming the key
and the fix (exit code 2). Secrets are resolved here, from a 0600 file or an environment
variable, and kept in a `Secrets` object whose repr never shows them.
"""
from __future__ import annotations

import difflib
import ipaddress
import os
import re
import stat
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

DEFAULT_TRUSTSTORE_PASSWORD = "wso2carbon"  # WSO2's shipped default


class InventoryError(Exception):
    """hosts.toml is wrong; str() lists every problem with its fix."""

    exit_code = 2

    def __init__(self, path: Path | str, problems: list[str]):
        self.path = str(path)
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{self.path}: {len(problems)} problem(s):\n{lines}")


# --------------------------------------------------------------------------- model


@dataclass(frozen=True)
class Host:
    name: str
    role: str  # "lb" | "node" | "db"
    address: str  # the address the cluster uses (IP the other hosts reach)
    ssh_address: str  # where we SSH to (defaults to address)
    index: int = 0  # nodes: 1-based position = start order

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True)
class SshSettings:
    user: str
    port: int
    key: Path | None
    known_hosts: Path | None
    connect_timeout: int
    command_timeout: int
    jump: str | None
    ssh_config: Path | None
    accept_new_host_keys: bool


@dataclass(frozen=True)
class ClusterSettings:
    service_name: str
    console_name: str
    ei_home: str
    ei_version: str
    service_user: str
    port_offset: int
    hazelcast_port: int
    domain: str
    health_timeout: int
    jdbc_driver: Path
    jdbc_driver_class: str | None
    ei_zip: Path | None
    etc_hosts: bool
    console_allow: tuple[str, ...]
    allow_default_admin: bool
    admin_user: str
    nginx_extra: str

    @property
    def http_port(self) -> int:  # the profile's servlet HTTP port seen from outside
        return 9763 + self.port_offset

    @property
    def https_port(self) -> int:
        return 9443 + self.port_offset

    @property
    def profile_home(self) -> str:
        return f"{self.ei_home}/wso2/business-process"


@dataclass(frozen=True)
class DatabaseSettings:
    hostname: str
    port: int
    user: str
    user_db: str
    registry_db: str
    local_registry_prefix: str
    bps_db: str
    activiti_db: str
    max_connections: int
    admin_user: str | None
    scripts_dir: str | None

    def local_db(self, node_index: int) -> str:
        return f"{self.local_registry_prefix}{node_index}"

    def all_databases(self, node_count: int) -> list[str]:
        return [self.user_db, self.registry_db,
                *(self.local_db(i) for i in range(1, node_count + 1)),
                self.bps_db, self.activiti_db]


@dataclass(frozen=True)
class CertSettings:
    dir: str
    key_bits: int
    days: int
    renew_before_days: int
    cert_file: Path | None
    key_file: Path | None

    @property
    def cert_path(self) -> str:
        return f"{self.dir}/server.crt"

    @property
    def key_path(self) -> str:
        return f"{self.dir}/server.key"


class Secrets:
    """Resolved secret values. repr/str never show them; `values()` feeds the redactor."""

    def __init__(self, values: dict[str, str | None]):
        self._values = dict(values)

    def get(self, name: str) -> str | None:
        return self._values.get(name)

    def __getattr__(self, name: str) -> str | None:
        if name.startswith("_"):
            raise AttributeError(name)
        return self._values.get(name)

    def values(self) -> list[str]:
        return [v for v in self._values.values() if v]

    def __repr__(self) -> str:
        return "Secrets(" + ", ".join(f"{k}=***" for k, v in self._values.items() if v) + ")"

    __str__ = __repr__


@dataclass(frozen=True)
class Inventory:
    path: Path
    ssh: SshSettings
    lb: Host
    nodes: tuple[Host, ...]
    db: Host
    cluster: ClusterSettings
    database: DatabaseSettings
    certs: CertSettings
    secrets: Secrets = field(repr=False)
    warnings: tuple[str, ...] = ()

    @property
    def hosts(self) -> list[Host]:
        return [self.lb, *self.nodes, self.db]

    def host(self, name: str) -> Host:
        for h in self.hosts:
            if h.name == name or h.address == name or h.ssh_address == name:
                return h
        close = difflib.get_close_matches(name, [h.name for h in self.hosts], 1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise InventoryError(self.path, [f"no host named {name!r} in hosts.toml{hint}; "
                                         f"known: {', '.join(h.name for h in self.hosts)}"])

    def select(self, spec: str) -> list[Host]:
        """'all', a role ('lb', 'nodes', 'db') or comma-separated host names."""
        out: list[Host] = []
        for part in [p.strip() for p in spec.split(",") if p.strip()]:
            if part == "all":
                out += self.hosts
            elif part in ("nodes", "node"):
                out += self.nodes
            elif part == "lb" and self.lb.name != "lb":
                out.append(self.lb)
            elif part == "db" and self.db.name != "db":
                out.append(self.db)
            else:
                out.append(self.host(part))
        seen: set[str] = set()
        return [h for h in out if not (h.name in seen or seen.add(h.name))]


# --------------------------------------------------------------------------- schema

_HOSTNAME_RE = re.compile(r"^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)"
                          r"(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$")
_IDENT_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
_USER_RE = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")

REQ = object()  # marker: key is required

# section -> key -> (type, default)
SCHEMA: dict[str, dict[str, tuple[type | tuple, Any]]] = {
    "ssh": {
        "user": (str, "root"), "port": (int, 22), "key": (str, None),
        "known_hosts": (str, None), "connect_timeout": (int, 10),
        "command_timeout": (int, 300), "jump": (str, None), "ssh_config": (str, None),
        "accept_new_host_keys": (bool, False), "sudo_password": (dict, None),
    },
    "lb": {"name": (str, "lb"), "address": (str, REQ), "ssh_address": (str, None)},
    "node": {"name": (str, REQ), "address": (str, REQ), "ssh_address": (str, None)},
    "db": {"name": (str, "db"), "address": (str, REQ), "ssh_address": (str, None),
           "hostname": (str, None), "port": (int, 3306)},
    "cluster": {
        "service_name": (str, REQ), "console_name": (str, REQ), "ei_home": (str, REQ),
        "ei_version": (str, "6.6.0"), "service_user": (str, "wso2"),
        "port_offset": (int, 2), "hazelcast_port": (int, 4000),
        "domain": (str, "wso2.bps.domain"), "health_timeout": (int, 300),
        "jdbc_driver": (str, REQ), "jdbc_driver_class": (str, None), "ei_zip": (str, None),
        "etc_hosts": (bool, True), "console_allow": (list, []),
        "allow_default_admin": (bool, False), "admin_user": (str, "admin"),
        "nginx_extra": (str, ""),
    },
    "database": {
        "user": (str, "wso2bps"), "user_db": (str, "WSO2_USER_DB"),
        "registry_db": (str, "REGISTRY_DB"), "local_registry_prefix": (str, "REGISTRY_LOCAL"),
        "bps_db": (str, "BPS_DS"), "activiti_db": (str, "ACTIVITI_DB"),
        "max_connections": (int, 1000), "admin_user": (str, None), "scripts_dir": (str, None),
    },
    "certs": {
        "dir": (str, "/etc/nginx/ssl"), "key_bits": (int, 3072), "days": (int, 365),
        "renew_before_days": (int, 30), "cert_file": (str, None), "key_file": (str, None),
    },
    "secrets": {
        "db_password": (dict, REQ), "admin_password": (dict, None),
        "truststore_password": (dict, None), "db_admin_password": (dict, None),
    },
}
TOP_LEVEL = {"ssh": dict, "lb": dict, "nodes": list, "db": dict, "cluster": dict,
             "database": dict, "certs": dict, "secrets": dict}


def _suggest(key: str, options: list[str]) -> str:
    close = difflib.get_close_matches(key, options, 1, 0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


class _Checker:
    def __init__(self, path: Path):
        self.path = path
        self.base = path.parent
        self.problems: list[str] = []
        self.warnings: list[str] = []

    def err(self, msg: str) -> None:
        self.problems.append(msg)

    def section(self, where: str, schema_name: str, data: Any) -> dict[str, Any]:
        schema = SCHEMA[schema_name]
        if not isinstance(data, dict):
            self.err(f"[{where}] must be a table, got {type(data).__name__}")
            data = {}
        out: dict[str, Any] = {}
        for key in data:
            if key not in schema:
                self.err(f"{where}.{key}: unknown key{_suggest(key, list(schema))}; "
                         f"allowed: {', '.join(schema)}")
        for key, (typ, default) in schema.items():
            if key not in data:
                if default is REQ:
                    self.err(f"{where}.{key}: missing required key; add `{key} = ...` "
                             f"to [{where.split('[')[0]}]")
                out[key] = None if default is REQ else default
                continue
            value = data[key]
            ok = isinstance(value, typ) and not (typ is int and isinstance(value, bool))
            if not ok:
                self.err(f"{where}.{key}: expected {typ.__name__}, got "
                         f"{type(value).__name__} {value!r}")
                out[key] = None if default is REQ else default
            else:
                out[key] = value
        return out

    # value checks -------------------------------------------------------------
    def port(self, where: str, value: int | None) -> None:
        if value is not None and not 1 <= value <= 65535:
            self.err(f"{where}: port {value} is out of range; use 1-65535")

    def positive(self, where: str, value: int | None, lo: int = 1, hi: int | None = None) -> None:
        if value is None:
            return
        if value < lo or (hi is not None and value > hi):
            rng = f"{lo}..{hi}" if hi is not None else f">= {lo}"
            self.err(f"{where}: {value} is out of range; use {rng}")

    def address(self, where: str, value: str | None, cluster: bool = True) -> None:
        if not value:
            return
        try:
            ip = ipaddress.ip_address(value)
        except ValueError:
            if not _HOSTNAME_RE.match(value):
                self.err(f"{where}: {value!r} is neither an IP address nor a valid host name; "
                         "use e.g. 192.0.2.10 or node1.example.com")
                return
            if cluster and value.lower() in ("localhost", "localhost.localdomain"):
                self.err(f"{where}: {value!r} cannot be a cluster address: WSO2 needs a specific "
                         "IP that the other hosts can reach; use the host's own IP")
            return
        if cluster and (ip.is_loopback or ip.is_unspecified):
            self.err(f"{where}: {value} is a loopback/unspecified address: WSO2 needs a specific "
                     "IP that the other hosts can reach; use the host's own IP")

    def hostname(self, where: str, value: str | None) -> None:
        if value and not _HOSTNAME_RE.match(value):
            self.err(f"{where}: {value!r} is not a valid host name; use e.g. ei.example.com")

    def ident(self, where: str, value: str | None) -> None:
        if value and not _IDENT_RE.match(value):
            self.err(f"{where}: {value!r} is not a safe SQL identifier; use letters, digits "
                     "and _ (max 64), starting with a letter")

    def local_path(self, where: str, value: str | None, must_exist: bool = True) -> Path | None:
        if not value:
            return None
        p = Path(os.path.expanduser(value))
        if not p.is_absolute():
            p = (self.base / p)
        if must_exist and not p.exists():
            self.err(f"{where}: file {str(p)!r} does not exist; fix the path (relative paths "
                     f"are relative to {self.base})")
        return p

    def secret(self, where: str, ref: dict | None) -> str | None:
        if ref is None:
            return None
        keys = set(ref)
        if len(keys) != 1 or not keys <= {"file", "env", "value"}:
            self.err(f"{where}: give exactly one of {{ file = \"path\" }}, {{ env = \"VAR\" }} "
                     f"or {{ value = \"...\" }}; got keys {sorted(keys)}")
            return None
        kind, arg = next(iter(ref.items()))
        if not isinstance(arg, str) or not arg:
            self.err(f"{where}.{kind}: must be a non-empty string")
            return None
        if kind == "value":
            self.warnings.append(f"!!! {where} is written inline in hosts.toml: anyone who can "
                                 "read that file has it; move it to a 0600 file or an env var")
            return arg
        if kind == "env":
            val = os.environ.get(arg)
            if val is None:
                self.err(f"{where}: environment variable {arg} is not set; export it or use "
                         "{ file = ... }")
            return val
        p = self.local_path(f"{where}.file", arg)
        if p is None or not p.exists():
            return None
        st = p.stat()
        if st.st_mode & 0o077:
            self.err(f"{where}.file: {p} is readable by others (mode "
                     f"{stat.S_IMODE(st.st_mode):04o}); run: chmod 600 {p}")
            return None
        try:  # UTF-8 whatever the locale: the nodes read the password as UTF-8 too
            val = p.read_text(encoding="utf-8").rstrip("\r\n")
        except UnicodeDecodeError as e:
            self.err(f"{where}.file: {p} is not UTF-8 text ({e.reason} at byte {e.start}); "
                     "save it as UTF-8")
            return None
        if not val:
            self.err(f"{where}.file: {p} is empty")
        return val


def load(path: str | os.PathLike) -> Inventory:
    """Read and validate hosts.toml. Raises InventoryError listing every problem."""
    path = Path(path).resolve() if Path(path).exists() else Path(path)
    if not path.exists():
        raise InventoryError(path, [f"file not found; create it (see the shipped hosts.toml) "
                                    f"or pass --inventory / FABRIC_INVENTORY"])
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))  # TOML is UTF-8, whatever the locale
    except UnicodeDecodeError as e:
        raise InventoryError(path, [f"not UTF-8 text ({e.reason} at byte {e.start}); TOML files "
                                    "are UTF-8"]) from None
    except tomllib.TOMLDecodeError as e:
        raise InventoryError(path, [f"TOML syntax error: {e}"]) from None
    return from_dict(raw, path)


def from_dict(raw: dict[str, Any], path: Path) -> Inventory:
    ck = _Checker(path)
    for key in raw:
        if key not in TOP_LEVEL:
            ck.err(f"{key}: unknown section{_suggest(key, list(TOP_LEVEL))}; "
                   f"allowed: {', '.join(TOP_LEVEL)}")
    for key in ("lb", "nodes", "db", "cluster", "secrets"):
        if key not in raw:
            ck.err(f"[{key}]: missing required section" if key != "nodes"
                   else "[[nodes]]: missing; add two or more [[nodes]] tables")

    ssh = ck.section("ssh", "ssh", raw.get("ssh", {}))
    lb = ck.section("lb", "lb", raw.get("lb", {}))
    db = ck.section("db", "db", raw.get("db", {}))
    cl = ck.section("cluster", "cluster", raw.get("cluster", {}))
    dbs = ck.section("database", "database", raw.get("database", {}))
    certs = ck.section("certs", "certs", raw.get("certs", {}))
    sec = ck.section("secrets", "secrets", raw.get("secrets", {}))
    nodes_raw = raw.get("nodes", [])
    if not isinstance(nodes_raw, list):
        ck.err("nodes: must be an array of tables: write each node as [[nodes]]")
        nodes_raw = []
    nodes = [ck.section(f"nodes[{i}]", "node", n) for i, n in enumerate(nodes_raw)]
    if "nodes" in raw and len(nodes) < 2:
        ck.err(f"[[nodes]]: a cluster needs two or more nodes, found {len(nodes)}; add another "
               "[[nodes]] table")

    # ssh
    ck.port("ssh.port", ssh["port"])
    ck.positive("ssh.connect_timeout", ssh["connect_timeout"], 1, 600)
    ck.positive("ssh.command_timeout", ssh["command_timeout"], 1, 86400)
    if ssh["user"] and not _USER_RE.match(ssh["user"]):
        ck.err(f"ssh.user: {ssh['user']!r} is not a valid user name")
    key = ck.local_path("ssh.key", ssh["key"])
    known = ck.local_path("ssh.known_hosts", ssh["known_hosts"], must_exist=False)
    if known is None:
        known = Path(os.path.expanduser("~/.ssh/known_hosts"))
    if not known.exists() and not ssh["accept_new_host_keys"]:
        ck.err(f"ssh.known_hosts: {known} does not exist; put the hosts' keys there (verify "
               "them out of band) or set accept_new_host_keys = true to trust on first use")
    ssh_cfg = ck.local_path("ssh.ssh_config", ssh["ssh_config"], must_exist=True)
    sudo_pw = ck.secret("ssh.sudo_password", ssh["sudo_password"])

    # hosts
    hosts: list[Host] = []
    if lb["address"]:
        ck.address("lb.address", lb["address"])
        ck.address("lb.ssh_address", lb["ssh_address"], cluster=False)
        hosts.append(Host(lb["name"], "lb", lb["address"], lb["ssh_address"] or lb["address"]))
    for i, n in enumerate(nodes):
        ck.address(f"nodes[{i}].address", n["address"])
        ck.address(f"nodes[{i}].ssh_address", n["ssh_address"], cluster=False)
        if n["name"] and n["address"]:
            hosts.append(Host(n["name"], "node", n["address"], n["ssh_address"] or n["address"],
                              index=i + 1))
    if db["address"]:
        ck.address("db.address", db["address"])
        ck.address("db.ssh_address", db["ssh_address"], cluster=False)
        ck.hostname("db.hostname", db["hostname"])
        ck.port("db.port", db["port"])
        hosts.append(Host(db["name"], "db", db["address"], db["ssh_address"] or db["address"]))
    seen_names: dict[str, str] = {}
    seen_addr: dict[str, str] = {}
    for h in hosts:
        if not _NAME_RE.match(h.name):
            ck.err(f"{h.role} {h.name!r}: name must be letters, digits, '.', '_' or '-'")
        if h.name in seen_names:
            ck.err(f"host name {h.name!r} is used twice; give each host its own name")
        seen_names[h.name] = h.role
        if h.address in seen_addr:
            ck.err(f"address {h.address} is given to both {seen_addr[h.address]} and {h.name}; "
                   "each host needs its own address")
        seen_addr[h.address] = h.name

    # cluster
    for k in ("service_name", "console_name"):
        ck.hostname(f"cluster.{k}", cl[k])
    if cl["service_name"] and cl["service_name"] == cl["console_name"]:
        ck.err("cluster.console_name: must differ from service_name (they are two vhosts)")
    if cl["ei_home"] and not cl["ei_home"].startswith("/"):
        ck.err(f"cluster.ei_home: {cl['ei_home']!r} must be an absolute path")
    if cl["service_user"] and not _USER_RE.match(cl["service_user"]):
        ck.err(f"cluster.service_user: {cl['service_user']!r} is not a valid user name")
    if cl["service_user"] == "root":
        ck.err("cluster.service_user: the EI server must not run as root; use e.g. 'wso2'")
    ck.positive("cluster.port_offset", cl["port_offset"], 0, 1000)
    ck.port("cluster.hazelcast_port", cl["hazelcast_port"])
    ck.positive("cluster.health_timeout", cl["health_timeout"], 1, 7200)
    ck.hostname("cluster.domain", cl["domain"])
    jdbc = ck.local_path("cluster.jdbc_driver", cl["jdbc_driver"])
    if jdbc and jdbc.exists() and jdbc.suffix != ".jar":
        ck.err(f"cluster.jdbc_driver: {jdbc} is not a .jar")
    ei_zip = ck.local_path("cluster.ei_zip", cl["ei_zip"])
    allow: list[str] = []
    for i, net in enumerate(cl["console_allow"] or []):
        try:
            allow.append(str(ipaddress.ip_network(str(net), strict=False)))
        except ValueError:
            ck.err(f"cluster.console_allow[{i}]: {net!r} is not a network; use e.g. "
                   "'192.0.2.0/24' or '192.0.2.7'")
    if not allow and "console_allow" in raw.get("cluster", {}):
        ck.warnings.append("!!! cluster.console_allow is empty: the management console "
                           "(/carbon) is open to everyone who reaches the LB")

    # database
    names = [dbs[k] for k in ("user_db", "registry_db", "bps_db", "activiti_db")]
    for k in ("user_db", "registry_db", "local_registry_prefix", "bps_db", "activiti_db", "user"):
        ck.ident(f"database.{k}", dbs[k])
    locals_ = [f"{dbs['local_registry_prefix']}{i}" for i in range(1, len(nodes) + 1)]
    all_names = names + locals_
    dup = sorted({n for n in all_names if n and all_names.count(n) > 1})
    if dup:
        ck.err(f"database: name(s) {', '.join(dup)} used for two databases; each database "
               "needs its own name")
    ck.positive("database.max_connections", dbs["max_connections"], 10, 100000)

    # certs
    ck.positive("certs.key_bits", certs["key_bits"], 2048, 16384)
    ck.positive("certs.days", certs["days"], 1, 3650)
    ck.positive("certs.renew_before_days", certs["renew_before_days"], 0, 3650)
    if certs["dir"] and not certs["dir"].startswith("/"):
        ck.err("certs.dir: must be an absolute path on the LB")
    cert_file = ck.local_path("certs.cert_file", certs["cert_file"])
    key_file = ck.local_path("certs.key_file", certs["key_file"])
    if bool(cert_file) != bool(key_file):
        ck.err("certs: give both cert_file and key_file, or neither (self-signed)")

    # secrets
    values = {k: ck.secret(f"secrets.{k}", sec[k]) for k in SCHEMA["secrets"]}
    values["sudo_password"] = sudo_pw
    if values["truststore_password"] is None and not ck.problems:
        ck.warnings.append("secrets.truststore_password not set: using WSO2's default "
                           "'wso2carbon' for client-truststore.jks")
        values["truststore_password"] = DEFAULT_TRUSTSTORE_PASSWORD
    if sec["admin_password"] is None and not cl["allow_default_admin"]:
        ck.err("secrets.admin_password: not set, which would leave WSO2's default admin/admin "
               "on a console the LB exposes; set it, or set cluster.allow_default_admin = true")
    if values["admin_password"] is None:
        values["admin_password"] = "admin"

    if ck.problems:
        raise InventoryError(path, ck.problems)

    return Inventory(
        path=path,
        ssh=SshSettings(ssh["user"], ssh["port"], key, known, ssh["connect_timeout"],
                        ssh["command_timeout"], ssh["jump"], ssh_cfg,
                        ssh["accept_new_host_keys"]),
        lb=hosts[0], nodes=tuple(h for h in hosts if h.role == "node"), db=hosts[-1],
        cluster=ClusterSettings(
            cl["service_name"], cl["console_name"], cl["ei_home"].rstrip("/"), cl["ei_version"],
            cl["service_user"], cl["port_offset"], cl["hazelcast_port"], cl["domain"],
            cl["health_timeout"], jdbc, cl["jdbc_driver_class"], ei_zip, cl["etc_hosts"],
            tuple(allow), cl["allow_default_admin"], cl["admin_user"], cl["nginx_extra"]),
        database=DatabaseSettings(
            db["hostname"] or db["address"], db["port"], dbs["user"], dbs["user_db"],
            dbs["registry_db"], dbs["local_registry_prefix"], dbs["bps_db"],
            dbs["activiti_db"], dbs["max_connections"], dbs["admin_user"], dbs["scripts_dir"]),
        certs=CertSettings(certs["dir"].rstrip("/"), certs["key_bits"], certs["days"],
                           certs["renew_before_days"], cert_file, key_file),
        secrets=Secrets(values),
        warnings=tuple(ck.warnings),
    )
