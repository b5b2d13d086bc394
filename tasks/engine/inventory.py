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

from ..wso2 import jdbc as jdbc_mod
from ..steps import lb_rules, nginx_conf

DEFAULT_TRUSTSTORE_PASSWORD = "wso2carbon"  # WSO2's shipped default
DEFAULT_KEYSTORE_PASSWORD = "wso2carbon"  # of WSO2's shipped wso2carbon.jks


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
    nat: bool = False  # `address` is not on the host's own interfaces (NAT): not checked

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
    admin_services_extra: tuple[str, ...] = ()  # more admin services the service names hide
    expose_on_service: tuple[str, ...] = ()  # console-only apps also served on the service names
    backups_keep: int = 10  # backups kept per managed file on each host
    stop_timeout: int = 120  # seconds a graceful stop (SIGTERM) may take before SIGKILL
    java_home: str | None = None  # the JDK that runs EI (JAVA_HOME); None: the `java` on PATH
    jvm_heap: str = "2048m"  # -Xms = -Xmx (WSO2's production advice: 2 GB); "2g", "2048m"
    nofile: int = 65535  # open files of the EI process (LimitNOFILE), WSO2's guidance
    apply_sysctl: bool = True  # apply the kernel settings drop-in where the host has its own kernel
    secure_vault: bool = True  # passwords in the nodes' files as WSO2 Secure Vault aliases

    @property
    def jvm_mem_opts(self) -> str:
        """JVM_MEM_OPTS for wso2server.sh: the heap fixed at jvm_heap (-Xms = -Xmx)."""
        return jvm_mem_opts(self.jvm_heap)

    @property
    def console_open(self) -> str | None:
        """Why the console is open to all (e.g. 'is empty'); None if console_allow limits it."""
        return console_open_reason(self.console_allow)

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
    max_connections: int | None  # a floor; the need is derived from the nodes' pools
    admin_user: str | None
    scripts_dir: str | None
    allow_server_restart: bool = False  # db-init may restart the DB server (bind address)
    jdbc_options: dict | None = None  # extra JDBC URL options; None: the driver's defaults

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
        # a misspelled secret is a bug, not a missing secret: never a silent None
        if name.startswith("_") or name not in self._values:
            raise AttributeError(f"no secret named {name!r} (known: {', '.join(self._values)})")
        return self._values[name]

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

# Every pattern here is used with fullmatch(): with match() and `$`, a value ending in "\n"
# would pass (`$` also matches before a final newline).
_HOSTNAME_RE = re.compile(r"(?=.{1,253}\Z)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)"
                          r"(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*")
_IDENT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
_USER_RE = re.compile(r"[a-z_][a-z0-9_-]{0,31}")
_HEAP_RE = re.compile(r"\s*([1-9][0-9]{0,6})\s*([mg])\s*", re.I)
HEAP_MIN_MB, HEAP_MAX_MB = 128, 1024 * 1024  # 128m .. 1024g
NOFILE_MIN, NOFILE_MAX = 1024, 1048576  # 1048576: the kernel's default fs.nr_open


def heap_mb(value: object) -> int | None:
    """Pure: "2g" -> 2048, "2048m" -> 2048; None when not a size this tool writes (a number
    with the unit m or g, 128m..1024g: nothing else reaches the JVM's command line)."""
    m = _HEAP_RE.fullmatch(value) if isinstance(value, str) else None
    if not m:
        return None
    mb = int(m.group(1)) * (1024 if m.group(2).lower() == "g" else 1)
    return mb if HEAP_MIN_MB <= mb <= HEAP_MAX_MB else None


def jvm_mem_opts(heap: str) -> str:
    """Pure: "2g" -> "-Xms2g -Xmx2g" (a fixed heap: WSO2's production advice sets both)."""
    if heap_mb(heap) is None:
        raise ValueError(f"not a heap size: {heap!r}")
    size = heap.strip().lower().replace(" ", "")
    return f"-Xms{size} -Xmx{size}"
_SQL_USER_RE = re.compile(r"[A-Za-z0-9_.-]{1,32}")  # an account name in a MySQL option file
_ADMIN_USER_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}")  # WSO2's admin (user-mgt.xml)
_VERSION_RE = re.compile(r"\d+\.\d+(\.\d+)?")
_REMOTE_PATH_RE = re.compile(r"[A-Za-z0-9_./@+-]+")
_FILE_NAME_RE = re.compile(r"[A-Za-z0-9_+@-][A-Za-z0-9_.+@-]*")
_CLASS_RE = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*(\.[A-Za-z_$][A-Za-z0-9_$]*)*")

_WHY_IPV4 = ("the NGINX upstreams and the database accounts (one grant per node address) "
             "are written for IPv4 addresses")
_USER_FIX = "use lowercase letters, digits, '_' or '-' (max 32), starting with a letter or '_'"

# Where each secret is written; a value must fit in all of them, so no control characters
# (XML 1.0 cannot hold most of them; the other places are read line by line).
_SECRET_SINKS = {
    "db_password": "it is written into the nodes' datasource XML, which XML 1.0 cannot hold",
    "admin_password": "it is written into the nodes' user-mgt.xml, which XML 1.0 cannot hold",
    "admin_password_old": "it is sent to the nodes' user admin service in XML, which XML 1.0 "
                          "cannot hold",
    "truststore_password": "it is written to keytool's store password file, which is line based",
    "db_admin_password": "it is written to a MySQL client option file, which is line based",
    "sudo_password": "it is sent to sudo as one line on stdin",
    "keystore_password": "it is given to the server in its password-tmp file, which is line based",
}
_CONTROL_NAMES = {"\n": "LF (line feed)", "\r": "CR (carriage return)", "\t": "TAB",
                  "\x1b": "ESC", "\x00": "NUL", "\x7f": "DEL"}
_SECRET_KEYS = set(_SECRET_SINKS)

REQ = object()  # marker: key is required

# section -> key -> (type, default)
SCHEMA: dict[str, dict[str, tuple[type | tuple, Any]]] = {
    "ssh": {
        "user": (str, "root"), "port": (int, 22), "key": (str, None),
        "known_hosts": (str, None), "connect_timeout": (int, 10),
        "command_timeout": (int, 300), "jump": (str, None), "ssh_config": (str, None),
        "accept_new_host_keys": (bool, False), "sudo_password": (dict, None),
    },
    "lb": {"name": (str, "lb"), "address": (str, REQ), "ssh_address": (str, None),
           "nat": (bool, False)},
    "node": {"name": (str, REQ), "address": (str, REQ), "ssh_address": (str, None),
             "nat": (bool, False)},
    "db": {"name": (str, "db"), "address": (str, REQ), "ssh_address": (str, None),
           "nat": (bool, False), "hostname": (str, None), "port": (int, 3306)},
    "cluster": {
        "service_name": (str, REQ), "console_name": (str, REQ), "ei_home": (str, REQ),
        "ei_version": (str, "6.6.0"), "service_user": (str, "wso2"),
        "port_offset": (int, 2), "hazelcast_port": (int, 4000),
        "domain": (str, "wso2.bps.domain"), "health_timeout": (int, 300),
        "jdbc_driver": (str, REQ), "jdbc_driver_class": (str, None), "ei_zip": (str, None),
        "etc_hosts": (bool, True), "console_allow": (list, []),
        "allow_default_admin": (bool, False), "admin_user": (str, "admin"),
        "nginx_extra": (str, ""), "admin_services_extra": (list, []),
        "expose_on_service": (list, []), "backups_keep": (int, 10),
        "stop_timeout": (int, 120),
        "java_home": (str, None), "jvm_heap": (str, "2048m"), "nofile": (int, 65535),
        "apply_sysctl": (bool, True), "secure_vault": (bool, True),
    },
    "database": {
        "user": (str, "wso2bps"), "user_db": (str, "WSO2_USER_DB"),
        "registry_db": (str, "REGISTRY_DB"), "local_registry_prefix": (str, "REGISTRY_LOCAL"),
        "bps_db": (str, "BPS_DS"), "activiti_db": (str, "ACTIVITI_DB"),
        "max_connections": (int, None), "admin_user": (str, None), "scripts_dir": (str, None),
        "allow_server_restart": (bool, False), "jdbc_options": (dict, None),
    },
    "certs": {
        "dir": (str, "/etc/nginx/ssl"), "key_bits": (int, 3072), "days": (int, 365),
        "renew_before_days": (int, 30), "cert_file": (str, None), "key_file": (str, None),
    },
    "secrets": {
        "db_password": (dict, REQ), "admin_password": (dict, None),
        "truststore_password": (dict, None), "db_admin_password": (dict, None),
        "admin_password_old": (dict, None), "keystore_password": (dict, None),
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
            if not ok and key in _SECRET_KEYS:  # never print what may be the secret itself
                self.err(f"{where}.{key}: expected a table such as {{ file = \"path\" }}, got "
                         f"{type(value).__name__} (value not shown)")
                out[key] = None if default is REQ else default
            elif not ok:
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
        """cluster: the IPv4 address the other hosts reach; else (ssh_address) an IP or a name."""
        if not value:
            return
        try:
            ip = ipaddress.ip_address(value)
        except ValueError:
            if not _HOSTNAME_RE.fullmatch(value):
                self.err(f"{where}: {value!r} is not an IPv4 address; use e.g. 192.0.2.10"
                         if cluster else
                         f"{where}: {value!r} is neither an IP address nor a valid host name; "
                         "use e.g. 192.0.2.10 or node1.example.com")
            elif cluster:
                self.err(f"{where}: {value!r} cannot be a cluster address: it is a host name, "
                         f"and {_WHY_IPV4}; use the host's own IPv4 address (SSH to a name with "
                         "ssh_address)")
            return
        if cluster and ip.version != 4:
            self.err(f"{where}: {value} cannot be a cluster address: it is IPv6, and "
                     f"{_WHY_IPV4}; use the host's IPv4 address (ssh_address may be IPv6)")
            return
        if cluster and (ip.is_loopback or ip.is_unspecified):
            self.err(f"{where}: {value} is a loopback/unspecified address: WSO2 needs a specific "
                     "IP that the other hosts can reach; use the host's own IP")

    def remote_path(self, where: str, value: str | None, example: str) -> None:
        """A path on the hosts: absolute, normalized, only characters safe in any command."""
        if value is None:
            return
        fix = (f"use an absolute, normalized path of letters, digits and . _ / @ + -, "
               f"e.g. {example}")
        parts = value.rstrip("/").split("/")[1:]
        bad = sorted({c for c in value if not _REMOTE_PATH_RE.fullmatch(c)})
        if bad:
            self.err(f"{where}: {value!r} contains {', '.join(repr(c) for c in bad)}, not safe "
                     f"in a path on the hosts; {fix}")
        elif not value.startswith("/"):
            self.err(f"{where}: {value!r} must be an absolute path; {fix}")
        elif not parts:
            self.err(f"{where}: {value!r} cannot be the root directory; {fix}")
        elif ".." in value:
            self.err(f"{where}: {value!r} contains '..'; {fix}")
        elif any(p in ("", ".") for p in parts):
            norm = "/" + "/".join(p for p in parts if p not in ("", "."))
            self.err(f"{where}: {value!r} is not normalized; write {norm!r}")

    def jump(self, where: str, value: str) -> None:
        """[user@]host[:port], split the way remote.connect splits it."""
        fix = "write [user@]host[:port], e.g. deploy@bastion.example.com:22"
        user, at, rest = value.rpartition("@")
        host, colon, port = rest.partition(":")
        if at and not _USER_RE.fullmatch(user):
            self.err(f"{where}: the user {user!r} in {value!r} is not a valid user name; {fix}")
        if not (_is_ipv4(host) or _HOSTNAME_RE.fullmatch(host)):
            self.err(f"{where}: the host {host!r} in {value!r} is neither an IPv4 address nor a "
                     f"host name; {fix}")
        if colon and not (re.fullmatch(r"[0-9]{1,5}", port) and 1 <= int(port) <= 65535):
            self.err(f"{where}: the port {port!r} in {value!r} is not a number from 1 to 65535; "
                     f"{fix}")

    def hostname(self, where: str, value: str | None) -> None:
        if value and not _HOSTNAME_RE.fullmatch(value):
            self.err(f"{where}: {value!r} is not a valid host name; use e.g. ei.example.com")

    def ident(self, where: str, value: str | None) -> None:
        if value and not _IDENT_RE.fullmatch(value):
            self.err(f"{where}: {value!r} is not a safe SQL identifier; use letters, digits "
                     "and _ (max 64), starting with a letter")

    def local_path(self, where: str, value: str | None, must_exist: bool = True) -> Path | None:
        if not value:
            return None
        p = Path(os.path.expanduser(value))
        if not p.is_absolute():
            p = (self.base / p)
        try:
            exists, is_file = p.exists(), p.is_file()
        except (OSError, ValueError) as e:  # e.g. a NUL in the path, or no access to a parent
            self.err(f"{where}: {str(p)!r} cannot be used as a path ({e}); fix the path")
            return None
        if must_exist and not exists:
            self.err(f"{where}: file {str(p)!r} does not exist; fix the path (relative paths "
                     f"are relative to {self.base})")
        elif must_exist and not is_file:
            what = "a directory" if p.is_dir() else "not a regular file"
            self.err(f"{where}: {str(p)!r} is {what}; name the file itself")
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
            return self.secret_value(where, arg, "")
        if kind == "env":
            val = os.environ.get(arg)
            if val is None:
                self.err(f"{where}: environment variable {arg} is not set; export it or use "
                         "{ file = ... }")
                return None
            return self.secret_value(where, val, f"environment variable {arg}")
        p = self.local_path(f"{where}.file", arg)
        if p is None or not p.is_file():
            return None
        st = p.stat()
        if st.st_mode & 0o077:
            self.err(f"{where}.file: {p} is readable by others (mode "
                     f"{stat.S_IMODE(st.st_mode):04o}); run: chmod 600 {p}")
            return None
        # bytes, strict UTF-8 and no universal newlines: a CR must never quietly become a LF
        try:
            val = p.read_bytes().decode("utf-8")
        except OSError as e:
            self.err(f"{where}.file: {p} cannot be read ({e.strerror or e}); check its owner and "
                     "mode (0600, readable by you)")
            return None
        except UnicodeDecodeError as e:
            self.err(f"{where}.file: {p} is not UTF-8 text (invalid byte at offset {e.start}); "
                     "save the secret as UTF-8")
            return None
        if val.endswith("\n"):
            val = val[:-1]  # the file's final newline, one only
        if val.endswith("\r"):
            self.err(f"{where}.file: {p} ends with a CR (a Windows line ending?); save it with a "
                     "Unix line ending, e.g. run: dos2unix " + str(p))
            return None
        return self.secret_value(where, val, f"{p}")

    def secret_value(self, where: str, val: str, source: str) -> str | None:
        """The value, or None with an error if it cannot be written everywhere it goes.

        Messages name the secret and the reason, never the value.
        """
        src = f" ({source})" if source else ""
        if not val:
            self.err(f"{where}: is empty{src}; set the secret")
            return None
        try:
            val.encode("utf-8")
        except UnicodeEncodeError:  # an environment variable that is not UTF-8
            self.err(f"{where}: is not valid UTF-8{src}; set it as UTF-8 text")
            return None
        bad = next((c for c in val if ord(c) < 0x20 or ord(c) == 0x7F), None)
        if bad is not None:
            name = _CONTROL_NAMES.get(bad, f"U+{ord(bad):04X}")
            sink = _SECRET_SINKS.get(where.rpartition(".")[2], "a file on the hosts")
            self.err(f"{where}: contains the control character {name}{src}, and {sink}; "
                     "choose a secret without control characters (U+0000-U+001F, U+007F)")
            return None
        # XML 1.0 (the datasources, user-mgt.xml) has no place for these either
        bad = next((c for c in val if 0x80 <= ord(c) <= 0x9F or ord(c) in (0xFFFE, 0xFFFF)
                    or ord(c) == 0xFEFF), None)
        if bad is not None:
            self.err(f"{where}: contains U+{ord(bad):04X}{src} (a C1 control, a byte-order mark "
                     "or a non-character), which XML 1.0 and the nodes' files cannot hold "
                     "safely; choose a secret without it")
            return None
        return val


def _is_ipv4(value: str) -> bool:
    try:
        return ipaddress.ip_address(value).version == 4
    except ValueError:
        return False


def console_open_reason(allow: tuple[str, ...]) -> str | None:
    """Why cluster.console_allow lets everyone in ('is empty', ...), or None if it restricts."""
    if not allow:
        return "is empty"
    nets = [ipaddress.ip_network(n, strict=False) for n in allow]
    for version in (4, 6):
        merged = ipaddress.collapse_addresses(n for n in nets if n.version == version)
        every = next((n for n in merged if n.prefixlen == 0), None)
        if every is not None:
            return f"covers every address ({every})"
    return None


def _target_key(value: str) -> str:
    """One spelling per SSH target: IPs normalised, names case-insensitive."""
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        return value.lower().rstrip(".")


def _ssh_origin(h: Host, given: set[str]) -> str:
    key = _key_of(h)
    return f"{key}.ssh_address" if h.name in given else f"{key}.address"


def _key_of(h: Host) -> str:
    """The hosts.toml table that defines `h`: lb, nodes[i] or db."""
    return f"nodes[{h.index - 1}]" if h.role == "node" else h.role


def load(path: str | os.PathLike) -> Inventory:
    """Read and validate hosts.toml. Raises InventoryError listing every problem."""
    try:
        path = Path(path).resolve() if Path(path).exists() else Path(path)
    except OSError as e:  # e.g. no access to a parent directory
        raise InventoryError(path, [f"cannot be used as a path ({e}); fix FABRIC_INVENTORY "
                                    "(or the `inventory` setting)"]) from None
    if not path.exists():
        raise InventoryError(path, [f"file not found; create it (see the shipped hosts.toml) "
                                    f"or pass --inventory / FABRIC_INVENTORY"])
    if path.is_dir():
        raise InventoryError(path, [f"is a directory; point FABRIC_INVENTORY (or the `inventory` "
                                    f"setting) at the file itself, e.g. {path / 'hosts.toml'}"])
    if not path.is_file():
        raise InventoryError(path, ["is not a regular file; point FABRIC_INVENTORY (or the "
                                    "`inventory` setting) at a hosts.toml file"])
    try:
        data = path.read_bytes()
    except OSError as e:
        raise InventoryError(path, [f"cannot be read ({e.strerror or e}); check its mode and "
                                    "owner"]) from None
    try:
        text = data.decode("utf-8")  # TOML is UTF-8, whatever the locale
    except UnicodeDecodeError as e:
        line = data[:e.start].count(b"\n") + 1
        raise InventoryError(path, [f"not UTF-8 text (invalid byte on line {line}); TOML must be "
                                    "UTF-8: save the file as UTF-8"]) from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise InventoryError(path, [f"TOML syntax error: {e}"]) from None
    except RecursionError:
        raise InventoryError(path, ["TOML syntax error: arrays or tables nested too deeply"]) \
            from None
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
    if ssh["user"] and not _USER_RE.fullmatch(ssh["user"]):
        ck.err(f"ssh.user: {ssh['user']!r} is not a valid user name; {_USER_FIX}")
    key = ck.local_path("ssh.key", ssh["key"])
    known = ck.local_path("ssh.known_hosts", ssh["known_hosts"], must_exist=False)
    if known is None:
        known = Path(os.path.expanduser("~/.ssh/known_hosts"))
    if not known.exists() and not ssh["accept_new_host_keys"]:
        ck.err(f"ssh.known_hosts: {known} does not exist; put the hosts' keys there (verify "
               "them out of band) or set accept_new_host_keys = true to trust on first use")
    ssh_cfg = ck.local_path("ssh.ssh_config", ssh["ssh_config"], must_exist=True)
    if ssh["jump"]:
        ck.jump("ssh.jump", ssh["jump"])
    sudo_pw = ck.secret("ssh.sudo_password", ssh["sudo_password"])

    # hosts
    hosts: list[Host] = []
    ssh_given: set[str] = set()  # hosts with an explicit ssh_address
    for t, name in ((lb, lb["name"]), *((n, n["name"]) for n in nodes), (db, db["name"])):
        if t["ssh_address"]:
            ssh_given.add(name)
    if lb["address"]:
        ck.address("lb.address", lb["address"])
        ck.address("lb.ssh_address", lb["ssh_address"], cluster=False)
        hosts.append(Host(lb["name"], "lb", lb["address"], lb["ssh_address"] or lb["address"],
                          nat=bool(lb["nat"])))
    for i, n in enumerate(nodes):
        ck.address(f"nodes[{i}].address", n["address"])
        ck.address(f"nodes[{i}].ssh_address", n["ssh_address"], cluster=False)
        if n["name"] and n["address"]:
            hosts.append(Host(n["name"], "node", n["address"], n["ssh_address"] or n["address"],
                              index=i + 1, nat=bool(n["nat"])))
    if db["address"]:
        ck.address("db.address", db["address"])
        ck.address("db.ssh_address", db["ssh_address"], cluster=False)
        ck.hostname("db.hostname", db["hostname"])
        ck.port("db.port", db["port"])
        hosts.append(Host(db["name"], "db", db["address"], db["ssh_address"] or db["address"],
                          nat=bool(db["nat"])))
    for h in hosts:
        if h.nat:
            ck.warnings.append(f"!!! {h.name}: nat = true: preflight does not check that the "
                               f"machine reached at {h.ssh_address} owns {h.address}")
    seen_names: dict[str, str] = {}
    seen_addr: dict[str, str] = {}
    seen_ssh: dict[str, Host] = {}
    for h in hosts:
        if not _NAME_RE.fullmatch(h.name):
            ck.err(f"{_key_of(h)}.name: {h.name!r} is not a valid host name; use letters, "
                   "digits, '.', '_' or '-' (max 63), starting with a letter or digit")
        if h.name in seen_names:
            ck.err(f"host name {h.name!r} is used twice; give each host its own name")
        seen_names[h.name] = h.role
        if h.address in seen_addr:
            ck.err(f"address {h.address} is given to both {seen_addr[h.address]} and {h.name}; "
                   "each host needs its own address")
        seen_addr[h.address] = h.name
        other = seen_ssh.setdefault(_target_key(h.ssh_address), h)
        if other is not h and (h.name in ssh_given or other.name in ssh_given):
            ck.err(f"ssh_address {h.ssh_address} is where we SSH to for both {other.name} and "
                   f"{h.name} ({_ssh_origin(other, ssh_given)}, {_ssh_origin(h, ssh_given)}): "
                   "one machine would be configured as two hosts; give each host its own "
                   "ssh_address (or none, to SSH to its address)")

    # cluster
    for k in ("service_name", "console_name"):
        ck.hostname(f"cluster.{k}", cl[k])
    if cl["service_name"] and cl["service_name"] == cl["console_name"]:
        ck.err("cluster.console_name: must differ from service_name (they are two vhosts)")
    ck.remote_path("cluster.ei_home", cl["ei_home"], "/opt/wso2ei-6.6.0")
    ck.remote_path("cluster.java_home", cl["java_home"], "/usr/lib/jvm/java-11-openjdk-amd64")
    if cl["service_user"] and not _USER_RE.fullmatch(cl["service_user"]):
        ck.err(f"cluster.service_user: {cl['service_user']!r} is not a valid user name; "
               f"{_USER_FIX}")
    if cl["admin_user"] is not None and not _ADMIN_USER_RE.fullmatch(cl["admin_user"]):
        ck.err(f"cluster.admin_user: {cl['admin_user']!r} is not a valid WSO2 user name; use "
               "letters, digits, '.', '_', '@' or '-' (max 64), e.g. 'admin'")
    if cl["ei_version"] is not None and not _VERSION_RE.fullmatch(cl["ei_version"]):
        ck.err(f"cluster.ei_version: {cl['ei_version']!r} is not a version; use e.g. '6.6.0'")
    if cl["jdbc_driver_class"] is not None and not _CLASS_RE.fullmatch(cl["jdbc_driver_class"]):
        ck.err(f"cluster.jdbc_driver_class: {cl['jdbc_driver_class']!r} is not a Java class "
               "name; use e.g. 'org.mariadb.jdbc.Driver', or leave it out to read it from the jar")
    if cl["service_user"] == "root":
        ck.err("cluster.service_user: the EI server must not run as root; use e.g. 'wso2'")
    ck.positive("cluster.port_offset", cl["port_offset"], 0, 1000)
    ck.port("cluster.hazelcast_port", cl["hazelcast_port"])
    ck.positive("cluster.health_timeout", cl["health_timeout"], 1, 7200)
    ck.positive("cluster.backups_keep", cl["backups_keep"], 1, 1000)
    ck.positive("cluster.stop_timeout", cl["stop_timeout"], 1, 3600)
    ck.positive("cluster.nofile", cl["nofile"], NOFILE_MIN, NOFILE_MAX)
    if cl["jvm_heap"] is not None and heap_mb(cl["jvm_heap"]) is None:
        ck.err(f"cluster.jvm_heap: {cl['jvm_heap']!r} is not a heap size; use a number of "
               f"megabytes or gigabytes with its unit, {HEAP_MIN_MB}m to {HEAP_MAX_MB // 1024}g, "
               "e.g. \"2048m\" or \"2g\" (WSO2's production advice: 2 GB; it becomes "
               "-Xms and -Xmx)")
    ck.hostname("cluster.domain", cl["domain"])
    jdbc = ck.local_path("cluster.jdbc_driver", cl["jdbc_driver"])
    if jdbc and jdbc.exists() and jdbc.suffix != ".jar":
        ck.err(f"cluster.jdbc_driver: {jdbc} is not a .jar")
    elif jdbc and not _FILE_NAME_RE.fullmatch(jdbc.name):
        ck.err(f"cluster.jdbc_driver: the jar's name {jdbc.name!r} is used on the nodes "
               "(<ei_home>/lib/); rename the file to letters, digits and . _ + @ -, e.g. "
               "mariadb-java-client-3.3.3.jar")
    ei_zip = ck.local_path("cluster.ei_zip", cl["ei_zip"])
    allow: list[str] = []
    for i, net in enumerate(cl["console_allow"] or []):
        try:
            allow.append(str(ipaddress.ip_network(str(net), strict=False)))
        except ValueError:
            ck.err(f"cluster.console_allow[{i}]: {net!r} is not a network; use e.g. "
                   "'192.0.2.0/24' or '192.0.2.7'")
    problem = nginx_conf.snippet_problem(cl["nginx_extra"] or "")
    if problem:
        ck.err(f"cluster.nginx_extra: {problem}; put directives (and whole `location ... {{ }}` "
               "blocks) only")
    admin_extra: list[str] = []
    for i, name in enumerate(cl["admin_services_extra"] or []):
        if isinstance(name, str) and lb_rules.SERVICE_NAME_RE.fullmatch(name):
            admin_extra.append(name)
        else:
            ck.err(f"cluster.admin_services_extra[{i}]: {name!r} is not a plain service name; "
                   "use the name as in /services/<name>, e.g. 'LoggingAdmin'")
    exposed: list[str] = []
    for i, app in enumerate(cl["expose_on_service"] or []):
        if app in lb_rules.CONSOLE_APPS:
            exposed.append(app)
        else:
            ck.err(f"cluster.expose_on_service[{i}]: {app!r} is not one of "
                   f"{', '.join(lb_rules.CONSOLE_APPS)}{_suggest(str(app), list(lb_rules.CONSOLE_APPS))}")
    open_reason = console_open_reason(tuple(allow))
    if open_reason and (allow or "console_allow" in raw.get("cluster", {})):
        ck.warnings.append(f"!!! cluster.console_allow {open_reason}: the management console "
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
    for problem in jdbc_mod.option_problems(dbs["jdbc_options"] or {}):
        ck.err(f"database.jdbc_options: {problem}")
    if dbs["admin_user"] is not None and not _SQL_USER_RE.fullmatch(dbs["admin_user"]):
        ck.err(f"database.admin_user: {dbs['admin_user']!r} is not a safe MySQL user name; use "
               "letters, digits, '.', '_' or '-' (1 to 32), e.g. 'dbadmin'")

    # certs
    ck.positive("certs.key_bits", certs["key_bits"], 2048, 16384)
    ck.positive("certs.days", certs["days"], 1, 3650)
    ck.positive("certs.renew_before_days", certs["renew_before_days"], 0, 3650)
    ck.remote_path("certs.dir", certs["dir"], "/etc/nginx/ssl")
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
    if values["keystore_password"] is None:
        # the node's primary keystore as shipped (wso2carbon.jks); Secure Vault encrypts with it
        values["keystore_password"] = DEFAULT_KEYSTORE_PASSWORD
    if not cl["secure_vault"]:
        ck.warnings.append("!!! cluster.secure_vault = false: the nodes keep the DB and admin "
                           "passwords in clear in their configuration files (0600); set it to "
                           "true (the default) to encrypt them with WSO2 Secure Vault")
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
            tuple(allow), cl["allow_default_admin"], cl["admin_user"], cl["nginx_extra"],
            tuple(admin_extra), tuple(dict.fromkeys(exposed)), cl["backups_keep"],
            cl["stop_timeout"],
            cl["java_home"].rstrip("/") if cl["java_home"] else None,
            cl["jvm_heap"].strip().lower(), cl["nofile"], cl["apply_sysctl"],
            cl["secure_vault"]),
        database=DatabaseSettings(
            db["hostname"] or db["address"], db["port"], dbs["user"], dbs["user_db"],
            dbs["registry_db"], dbs["local_registry_prefix"], dbs["bps_db"],
            dbs["activiti_db"], dbs["max_connections"], dbs["admin_user"], dbs["scripts_dir"],
            dbs["allow_server_restart"], dict(dbs["jdbc_options"]) if dbs["jdbc_options"]
            is not None else None),
        certs=CertSettings(certs["dir"].rstrip("/"), certs["key_bits"], certs["days"],
                           certs["renew_before_days"], cert_file, key_file),
        secrets=Secrets(values),
        warnings=tuple(ck.warnings),
    )
