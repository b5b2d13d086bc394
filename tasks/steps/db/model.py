"""db-init's model: what the cluster's databases hold, the server's facts, pure helpers."""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from ...engine import inventory
from ...engine.inventory import Inventory
from ...engine.remote import FileState

STEP = "db-init"
DROPIN_NAME = "zz-bps-deploy.cnf"  # read last in its folder (byte order, like !includedir)
LEGACY_DROPIN = "60-bps-cluster.cnf"  # our old name: removed once the new one is in place
MANAGED_MARK = b"Managed by bps-deploy"
CONF_DIRS = ("/etc/mysql/mariadb.conf.d", "/etc/mysql/mysql.conf.d", "/etc/mysql/conf.d",
             "/etc/my.cnf.d")
DEFAULT_SOCKET = "/run/mysqld/mysqld.sock"
PROFILE = "wso2/business-process"

# Tables each WSO2 script creates (EI 6.6.0; the 6.5.0 / mysql5.7 / mysql55 variants create the
# same names; REG_ASSOCIATIONS is commented out in the kernel script). tests/unit/test_db.py checks these against the shipped scripts.
KERNEL_TABLES = frozenset("""
REG_CLUSTER_LOCK REG_LOG REG_PATH REG_CONTENT REG_CONTENT_HISTORY REG_RESOURCE
REG_RESOURCE_HISTORY REG_COMMENT REG_RESOURCE_COMMENT REG_RATING REG_RESOURCE_RATING REG_TAG
REG_RESOURCE_TAG REG_PROPERTY REG_RESOURCE_PROPERTY REG_ASSOCIATION REG_SNAPSHOT
UM_TENANT UM_DOMAIN UM_USER UM_SYSTEM_USER UM_ROLE UM_MODULE UM_MODULE_ACTIONS UM_PERMISSION
UM_ROLE_PERMISSION UM_USER_PERMISSION UM_USER_ROLE UM_SHARED_USER_ROLE UM_ACCOUNT_MAPPING
UM_USER_ATTRIBUTE UM_DIALECT UM_CLAIM UM_PROFILE_CONFIG UM_CLAIM_BEHAVIOR UM_HYBRID_ROLE
UM_HYBRID_USER_ROLE UM_SYSTEM_ROLE UM_SYSTEM_USER_ROLE UM_HYBRID_REMEMBER_ME""".split())
BPS_TABLES = frozenset("""
ODE_SCHEMA_VERSION ODE_JOB TASK_ATTACHMENT ODE_ACTIVITY_RECOVERY ODE_CORRELATION_SET
ODE_CORRELATOR ODE_CORSET_PROP ODE_EVENT ODE_FAULT ODE_MESSAGE ODE_MESSAGE_EXCHANGE
ODE_MESSAGE_ROUTE ODE_MEX_PROP ODE_PARTNER_LINK ODE_PROCESS ODE_PROCESS_INSTANCE ODE_SCOPE
ODE_XML_DATA ODE_XML_DATA_PROP OPENJPA_SEQUENCE_TABLE STORE_DU STORE_PROCESS STORE_PROCESS_PROP
STORE_PROC_TO_PROP STORE_VERSIONS HT_DEADLINE HT_DEPLOYMENT_UNIT HT_EVENT HT_GENERIC_HUMAN_ROLE
HT_HUMANROLE_ORGENTITY HT_JOB HT_MESSAGE HT_ORG_ENTITY HT_PRESENTATION_ELEMENT
HT_PRESENTATION_PARAM HT_TASK HT_TASK_ATTACHMENT HT_TASK_COMMENT HT_VERSIONS ATTACHMENT
HT_COORDINATION_DATA""".split())
ACTIVITI_ENGINE = frozenset("""ACT_GE_PROPERTY ACT_GE_BYTEARRAY ACT_RE_DEPLOYMENT ACT_RE_MODEL
ACT_RU_EXECUTION ACT_RU_JOB ACT_RE_PROCDEF ACT_RU_TASK ACT_RU_IDENTITYLINK ACT_RU_VARIABLE
ACT_RU_EVENT_SUBSCR ACT_EVT_LOG ACT_PROCDEF_INFO""".split())
ACTIVITI_HISTORY = frozenset("""ACT_HI_PROCINST ACT_HI_ACTINST ACT_HI_TASKINST ACT_HI_VARINST
ACT_HI_DETAIL ACT_HI_COMMENT ACT_HI_ATTACHMENT ACT_HI_IDENTITYLINK""".split())
ACTIVITI_IDENTITY = frozenset("ACT_ID_GROUP ACT_ID_MEMBERSHIP ACT_ID_USER ACT_ID_INFO".split())
ACTIVITI_SUBSTITUTE = frozenset(["ACT_BPS_SUBSTITUTES"])
BPMN_METADATA = frozenset(["BPS_BPMN_DEPLOYMENT_METADATA"])
ACTIVITI_TABLES = (ACTIVITI_ENGINE | ACTIVITI_HISTORY | ACTIVITI_IDENTITY | ACTIVITI_SUBSTITUTE
                   | BPMN_METADATA)
KIND_TABLES = {"kernel": KERNEL_TABLES, "bps": BPS_TABLES, "activiti": ACTIVITI_TABLES}

# What GRANT ALL on a database gives on every server we support (MariaDB adds DELETE HISTORY).
REQUIRED_PRIVS = frozenset({
    "SELECT", "INSERT", "UPDATE", "DELETE", "CREATE", "DROP", "REFERENCES", "INDEX", "ALTER",
    "CREATE TEMPORARY TABLES", "LOCK TABLES", "EXECUTE", "CREATE VIEW", "SHOW VIEW",
    "CREATE ROUTINE", "ALTER ROUTINE", "EVENT", "TRIGGER"})


SERVER_SECTIONS = ("mysqld", "server", "mariadb", "mariadbd")  # option file groups the server reads


def version_tuple(text: str) -> tuple[int, int, int]:
    m = re.match(r"(\d+)\.(\d+)(?:\.(\d+))?", text or "")
    if not m:
        return (0, 0, 0)
    return (int(m.group(1)), int(m.group(2)), int(m.group(3) or 0))


@dataclass(frozen=True)
class Server:
    flavour: str  # "MariaDB" | "MySQL"
    version: tuple[int, int, int]
    text: str = ""

    @classmethod
    def parse(cls, version: str, comment: str = "") -> "Server":
        flavour = "MariaDB" if "mariadb" in (version + comment).lower() else "MySQL"
        return cls(flavour, version_tuple(version), version)

    @property
    def label(self) -> str:
        return f"{self.flavour} {'.'.join(map(str, self.version))}"

    @property
    def mariadb(self) -> bool:
        return self.flavour == "MariaDB"

    @property
    def mysql57_level(self) -> bool:
        """Strict modes and syntax of MySQL 5.7+ (MariaDB 10.2+ is treated alike)."""
        return self.version >= ((10, 2, 0) if self.mariadb else (5, 7, 0))

    @property
    def dynamic_rows(self) -> bool:
        """DYNAMIC row format by default: utf8mb4 indexes up to 3072 bytes (§6.3)."""
        return self.version >= ((10, 2, 2) if self.mariadb else (5, 7, 7))

    @property
    def charset(self) -> str:
        return "utf8mb4" if self.dynamic_rows else "latin1"

    @property
    def fractional_seconds(self) -> bool:  # datetime(3): Activiti's non-mysql55 scripts
        return self.mariadb or self.version >= (5, 6, 4)

    @property
    def multi_bind(self) -> bool:  # bind-address takes a comma-separated list
        return self.version >= ((10, 11, 0) if self.mariadb else (8, 0, 13))


@dataclass
class DbFacts:
    """What the DB host told us. Built by parse_db_facts or, in tests, from a dict."""

    running: bool = True
    error: str = ""  # why we could not read the server (down, login refused, no client)
    socket: str = DEFAULT_SOCKET
    server: Server | None = None
    databases: dict[str, str] = field(default_factory=dict)  # ours that exist -> charset
    tables: dict[str, set[str]] = field(default_factory=dict)  # db -> table names (upper)
    users: dict[str, bool] = field(default_factory=dict)  # host -> app password matches
    grants: dict[str, dict[str, set[str]]] = field(default_factory=dict)  # host -> db -> privs
    bind_running: str | None = None
    max_conn_running: int | None = None
    skip_networking: bool = False
    bind_configured: str | None = None  # None: not set in any config file
    max_conn_configured: int | None = None
    conf_dir: str | None = "/etc/mysql/mariadb.conf.d"
    dropin: bytes | None = None
    dropin_state: FileState | None = None
    init: str = "sysv"  # "systemd" when /run/systemd/system exists
    service: str = "mariadb"
    boot_out: str = ""  # boot.boot_probe's output for the server's service names
    legacy_dropin: bytes | None = None  # our old 60-bps-cluster.cnf, if still there
    # every server-section bind-address line in the config files: (path, value), read order
    bind_files: list[tuple[str, str]] = field(default_factory=list)
    # node name -> its pools' total maxActive (from its datasource files); missing: shipped
    node_pools: dict[str, int] = field(default_factory=dict)

    @property
    def dropin_path(self) -> str | None:
        return f"{self.conf_dir}/{DROPIN_NAME}" if self.conf_dir else None

    @property
    def legacy_path(self) -> str | None:
        return f"{self.conf_dir}/{LEGACY_DROPIN}" if self.conf_dir else None


@dataclass
class Load:
    db: str
    kind: str  # kernel | bps | activiti
    scripts: list[str]  # EI_HOME-relative paths, in load order
    drop_first: bool = False



# --------------------------------------------------------------------------- helpers (pure)


native_hash = inventory.native_hash  # the app account's hash: inv.secrets.db_native_hash


def ident(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def lit(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


def account(user: str, host: str) -> str:
    return f"{lit(user)}@{lit(host)}"


def db_kinds(inv: Inventory) -> dict[str, str]:
    """Our databases in creation order -> which script set they get."""
    d = inv.database
    out = {d.user_db: "kernel", d.registry_db: "kernel"}
    for n in inv.nodes:
        out[d.local_db(n.registry_number)] = "kernel"
    out[d.bps_db] = "bps"
    out[d.activiti_db] = "activiti"
    return out


def node_databases(inv: Inventory, index: int) -> list[str]:
    """What node `index` uses: the shared databases and its own local registry only."""
    d = inv.database
    return [d.user_db, d.registry_db, d.local_db(index), d.bps_db, d.activiti_db]


def scripts_for(kind: str, server: Server, ei_version: str) -> list[str]:
    """EI_HOME-relative scripts for a database kind, in load order, for this server/EI."""
    if kind == "kernel":
        old_kernel = version_tuple(ei_version) < (6, 6, 0)  # kernel 4.4.x: separate 5.7 script
        return ["dbscripts/mysql5.7.sql" if old_kernel and server.mysql57_level
                else "dbscripts/mysql.sql"]
    if kind == "bps":
        return [f"{PROFILE}/dbscripts/bps/bpel/create/mysql.sql"]
    base = f"{PROFILE}/dbscripts/bps/bpmn/create/activiti"
    v = "mysql" if server.fractional_seconds else "mysql55"
    return [f"{base}.{v}.create.engine.sql", f"{base}.{v}.create.history.sql",
            f"{base}.mysql.create.identity.sql",  # no mysql55 identity script exists
            f"{base}.{v}.create.substitute.sql",
            f"{PROFILE}/dbscripts/bps/bpmn/metadata/create/mysql.sql"]


def classify(present: set[str] | None, kind: str) -> tuple[str, list[str]]:
    """('complete'|'partial'|'missing', sorted missing tables) for one database."""
    expected = KIND_TABLES[kind]
    have = {t.upper() for t in (present or set())} & expected
    missing = sorted(expected - have)
    if not have:
        return "missing", missing
    return ("complete" if not missing else "partial"), missing


def bind_ok(value: str | None, address: str) -> bool:
    """Does a bind-address value let the nodes reach `address`? None/'' = all interfaces."""
    if value is None:
        return True
    parts = [p.strip() for p in value.split(",") if p.strip()]
    return not parts or any(p in ("0.0.0.0", "*", "::", address) for p in parts)



# sha256 of WSO2's own MySQL scripts as shipped (EI 6.6.0 and 6.5.0; tests/fixtures/wso2-ei/
# PROVENANCE.md). The scripts on a node are the service user's to write, and db-init runs them
# as the database admin: a script read from a node must be one of these, byte for byte.
WSO2_SCRIPT_SHA256 = frozenset({
    "e5c7fd019f118500ecf5aef83855558b389c5f7e9fe808e53098bfa4429211ae",  # kernel 4.5.3 mysql.sql
    "f7d13818508f24b2f419560966fd2697d228ac071b17aafc638c09331f580cd3",  # kernel 4.4.40 mysql.sql
    "eeaadc374db979e160962f31a616e3fc43f42833e055998cb3edc61cd253e8ea",  # 4.4.40 mysql5.7.sql
    "17102db54f8618e4b6a996421ed133f730a192d33f2129552bf60c738785cb84",  # bpel/create/mysql.sql
    "e1f0b6721f7f15633cee6f3564ba1894b1275bbafaa93456a78b42f16210a77f",  # activiti engine
    "ece01995fa0aa1e25e3a91321e1da2be1995f528c0ec72daa6584ed7874e3e08",  # activiti history
    "876b2cb863d4e59e5fcc87da9dc6372b5cdcd785c5678c0e5d915416cfb1b39b",  # activiti identity
    "fc591cbd455f74c1fcec474459bd45599aefaf42b780a4fe52c22ea192177779",  # activiti substitute
    "53098150c2367811566af0cf2605c4130bf1e88f96057ab1a9c51818ed42afbb",  # mysql55 engine
    "cd59b4d7bad7d892934d96813dafe301f051b18c937cb472c0b294eadee25410",  # mysql55 history
    "5e04e222dcb8ea8ef6e6939c05c1f36e3b34a129fd82fe4239b8086a5f30377b",  # mysql55 substitute
    "7a884ee2e20d3e1d4cbd314dd98690eca58ef3694c96d794e08065d696eea981",  # bpmn metadata
})
