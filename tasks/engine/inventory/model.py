"""The cluster as the tool sees it: frozen dataclasses that ARE the hosts.toml schema.

Each settings class lists its fields once. A field that is a key of its hosts.toml table says
so with `toml_key(type, default)` (its TOML type and default, or REQ); `schema.SCHEMA` is derived
from these, and `build(cls, section, **computed)` fills a class by keyword from the checked
section, so no list of fields is written twice. A field marked `derived()` is computed by the
parser (a path resolved, a list made a tuple, a value from another table).
"""
from __future__ import annotations

import difflib
import ipaddress
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from .credentials import Secrets

REQ = object()  # marker: the key is required


def toml_key(typ: type, default: Any) -> Any:
    """A field that is a hosts.toml key: its TOML type and its default (REQ: required)."""
    return field(metadata={"toml": (typ, default)})


def derived() -> Any:
    """A field the parser computes (not read as-is from the class's own table)."""
    return field(metadata={})


def toml_keys(cls: type) -> dict[str, tuple[type, Any]]:
    """The hosts.toml keys of a settings class, in field order: name -> (type, default)."""
    return {f.name: f.metadata["toml"] for f in fields(cls) if "toml" in f.metadata}


def build(cls: type, section: dict[str, Any], **computed: Any) -> Any:
    """`cls` by keyword: each field from `computed` if given there, else from the checked
    section (a key field). A derived field missing from `computed` is a bug: KeyError."""
    names = {f.name for f in fields(cls)}
    stray = set(computed) - names
    if stray:
        raise TypeError(f"{cls.__name__} has no field(s) {sorted(stray)}")
    return cls(**{f.name: computed[f.name] if f.name in computed else section[f.name]
                  for f in fields(cls)})


class InventoryError(Exception):
    """hosts.toml is wrong; str() lists every problem with its fix."""

    exit_code = 2

    def __init__(self, path: Path | str, problems: list[str]):
        self.path = str(path)
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{self.path}: {len(problems)} problem(s):\n{lines}")


@dataclass(frozen=True)
class Host:
    name: str
    role: str  # "lb" | "node" | "db"
    address: str  # the address the cluster uses (IP the other hosts reach)
    ssh_address: str  # where we SSH to (defaults to address)
    index: int = 0  # nodes: 1-based position = start order
    nat: bool = False  # `address` is not on the host's own interfaces (NAT): not checked
    # nodes: the recorded identity (steps/membership); 0/None until a run has read it, and
    # then the position decides, as it did before identities were recorded
    registry: int = field(default=0, compare=False)
    writer: bool | None = field(default=None, compare=False)

    def __str__(self) -> str:
        return self.name

    @property
    def registry_number(self) -> int:
        """The n of this node's REGISTRY_LOCALn."""
        return self.registry or self.index

    @property
    def registry_writer(self) -> bool:
        return self.writer if self.writer is not None else self.index == 1


@dataclass(frozen=True)
class SshSettings:  # [ssh]; its sudo_password is a secret (credentials.Secrets)
    user: str = toml_key(str, "root")
    port: int = toml_key(int, 22)
    key: Path | None = toml_key(str, None)
    known_hosts: Path | None = toml_key(str, None)  # None in hosts.toml: ~/.ssh/known_hosts
    connect_timeout: int = toml_key(int, 10)
    command_timeout: int = toml_key(int, 300)
    jump: str | None = toml_key(str, None)  # [user@]host[:port]
    ssh_config: Path | None = toml_key(str, None)
    accept_new_host_keys: bool = toml_key(bool, False)


@dataclass(frozen=True)
class ClusterSettings:  # [cluster]
    service_name: str = toml_key(str, REQ)
    console_name: str = toml_key(str, REQ)
    ei_home: str = toml_key(str, REQ)
    ei_version: str = toml_key(str, "6.6.0")
    service_user: str = toml_key(str, "wso2")
    port_offset: int = toml_key(int, 2)
    hazelcast_port: int = toml_key(int, 4000)
    domain: str = toml_key(str, "wso2.bps.domain")
    health_timeout: int = toml_key(int, 300)
    jdbc_driver: Path = toml_key(str, REQ)
    jdbc_driver_class: str | None = toml_key(str, None)
    ei_zip: Path | None = toml_key(str, None)
    etc_hosts: bool = toml_key(bool, True)
    console_allow: tuple[str, ...] = toml_key(list, [])  # networks, normalised
    allow_default_admin: bool = toml_key(bool, False)
    admin_user: str = toml_key(str, "admin")
    nginx_extra: str = toml_key(str, "")
    admin_services_extra: tuple[str, ...] = toml_key(list, [])  # admin services the service names hide
    expose_on_service: tuple[str, ...] = toml_key(list, [])  # console-only apps also on the service names
    backups_keep: int = toml_key(int, 10)  # backups kept per managed file on each host
    stop_timeout: int = toml_key(int, 120)  # seconds a graceful stop (SIGTERM) may take before SIGKILL
    java_home: str | None = toml_key(str, None)  # the JDK that runs EI; None: the `java` on PATH
    jvm_heap: str = toml_key(str, "2048m")  # -Xms = -Xmx (WSO2's production advice: 2 GB)
    nofile: int = toml_key(int, 65535)  # open files of the EI process (LimitNOFILE), WSO2's guidance
    apply_sysctl: bool = toml_key(bool, True)  # the kernel settings drop-in, where the host has a kernel
    secure_vault: bool = toml_key(bool, True)  # passwords in the nodes' files as Secure Vault aliases

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
class DatabaseSettings:  # [database], plus where the server is ([db])
    hostname: str = derived()  # [db] hostname, else its address
    port: int = derived()  # [db] port
    user: str = toml_key(str, "wso2bps")
    user_db: str = toml_key(str, "WSO2_USER_DB")
    registry_db: str = toml_key(str, "REGISTRY_DB")
    local_registry_prefix: str = toml_key(str, "REGISTRY_LOCAL")
    bps_db: str = toml_key(str, "BPS_DS")
    activiti_db: str = toml_key(str, "ACTIVITI_DB")
    max_connections: int | None = toml_key(int, None)  # a floor; the need follows the nodes' pools
    admin_user: str | None = toml_key(str, None)
    scripts_dir: str | None = toml_key(str, None)
    allow_server_restart: bool = toml_key(bool, False)  # db-init may restart the server (bind address)
    jdbc_options: dict | None = toml_key(dict, None)  # extra JDBC URL options; None: driver defaults
    tls: bool = toml_key(bool, True)  # TLS to the database, cluster CA (tasks/steps/db_tls.py)

    def local_db(self, node_index: int) -> str:
        return f"{self.local_registry_prefix}{node_index}"

    def all_databases(self, node_count: int) -> list[str]:
        return [self.user_db, self.registry_db,
                *(self.local_db(i) for i in range(1, node_count + 1)),
                self.bps_db, self.activiti_db]


@dataclass(frozen=True)
class CertSettings:  # [certs]
    dir: str = toml_key(str, "/etc/nginx/ssl")
    key_bits: int = toml_key(int, 3072)
    days: int = toml_key(int, 365)
    renew_before_days: int = toml_key(int, 30)
    cert_file: Path | None = toml_key(str, None)
    key_file: Path | None = toml_key(str, None)
    # the cluster's own CA and node keys (tasks/steps/cluster_ca.py)
    cluster_ca: bool = toml_key(bool, True)
    ca_key: Path = toml_key(str, "cluster-ca/ca.key")  # on the controller, 0600, made if absent
    ca_cert: Path = toml_key(str, "cluster-ca/ca.crt")
    ca_days: int = toml_key(int, 3650)
    node_days: int = toml_key(int, 365)
    internal_name: str = toml_key(str, "nodes.bps.internal")  # SAN of every node certificate
    allow_default_keystore_password: bool = toml_key(bool, False)

    @property
    def cert_path(self) -> str:
        return f"{self.dir}/server.crt"

    @property
    def key_path(self) -> str:
        return f"{self.dir}/server.key"


@dataclass(frozen=True)
class ArtifactSettings:  # [artifacts]: the archives fab artifacts (and fab deploy) deploys
    dir: Path = toml_key(str, REQ)  # the local folder of .zip/.bar/.car archives
    wait: int = toml_key(int, 120)  # seconds a node may take to log each archive deployed


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
    artifacts: ArtifactSettings | None = None  # [artifacts]: `fab deploy` also deploys them

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


# --------------------------------------------------------------------------- pure helpers

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
