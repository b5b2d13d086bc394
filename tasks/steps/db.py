"""`fab db-init`: the cluster's databases, the application user and WSO2's schemas, once and safely.

Facts (one round trip on the DB host) -> plan (pure) -> apply (check mode stops after the plan).

Decisions (see also the reference doc §2 and §6):
* Admin access: root over the unix socket by default; with `database.admin_user`, that user with
  `secrets.db_admin_password`. Either way the client reads its login from a 0600
  `--defaults-extra-file` created and removed inside the same remote script; SQL travels in
  heredocs on the script's stdin. Nothing secret is ever in argv or the environment.
* The application password never leaves this machine in clear: we send only its
  mysql_native_password hash (`*` + SHA1(SHA1(pw))). The user is created with that hash
  (`IDENTIFIED BY PASSWORD` on MariaDB / MySQL < 5.7.6, `IDENTIFIED WITH mysql_native_password AS`
  on MySQL >= 5.7.6, including 8.0), so a changed password in hosts.toml is found by comparing
  hashes on the server, and the hash is added to the output redactor. MySQL 8.4+ disables
  mysql_native_password by default: there CREATE USER fails and says so.
* One account per node address (never '%'), `GRANT ALL` on the shared databases and that
  node's own REGISTRY_LOCALn only (CREATE USER, then GRANT: valid on MySQL 5.7/8 and MariaDB);
  a grant on another node's local registry (wider than needed) is revoked, and the plan says so.
* Scripts are not idempotent: a database is loaded only when it holds none of its tables; a
  database with some of them is partial: reported with the missing tables, never dropped unless
  `--drop NAME` names it. Each database is loaded by one client invocation.
* Server settings: a drop-in (zz-bps-deploy.cnf: `!includedir` reads a folder's *.cnf files
  in byte order, so it is read after Debian's 50-server.cnf and Ubuntu's mysqld.cnf) with
  bind-address = 127.0.0.1 plus the DB address (one address only where the server cannot take
  a list) and max_connections, written only when the configured values do not already fit.
  Whether it wins is checked, not assumed: a file read after ours that sets bind-address back
  stops the run before any change, naming the file; so does one my_print_defaults shows
  winning over our written drop-in (instead of restarting on every run), and, after a write,
  a final value that is still not ours (the drop-in is put back, no restart).
* max_connections: the nodes' pools (maxActive of our five datasources, read from each node's
  datasource files; WSO2's shipped sizes where a file is not there yet) summed over the nodes,
  plus 20% headroom (at least 50); [database] max_connections is only a floor. A larger
  configured or running value is never lowered. Raised live with SET GLOBAL.
* The server is restarted only when the bind address must change, and only with
  `[database] allow_server_restart = true` (a DB server may serve other applications): without
  it the run stops before any change and prints the drop-in it would write. If the restart
  fails, the previous files are restored and the server started again.
"""
from __future__ import annotations

import base64
import hashlib
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from invoke import task

from lxml import etree

from ..engine import boot, remote
from . import db_tls
from ..wso2 import ei_xml
from ..engine.cli import COMMON_HELP, Abort, session
from ..engine import inventory
from ..engine.inventory import Inventory
from ..engine.remote import Fact, FileSpec, FileState, HostSession, q
from ..engine.report import StepResult, unified_diff

STEP = "db-init"
HOSTS_STEP = "db-init /etc/hosts"
HOSTS_MARKER = "bps-deploy db-name"
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


# --------------------------------------------------------------------------- model


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


@dataclass
class DbPlan:
    changes: list[str] = field(default_factory=list)  # what we do (or would do)
    notes: list[str] = field(default_factory=list)  # said in the result, no action
    errors: list[str] = field(default_factory=list)  # refuse to apply anything
    problems: list[str] = field(default_factory=list)  # apply the rest, then fail (partial DBs)
    admin_sql: list[str] = field(default_factory=list)
    loads: list[Load] = field(default_factory=list)
    dropin: FileSpec | None = None
    remove_legacy: str | None = None  # our old drop-in, to back up and remove
    restart: bool = False
    wanted_bind: str = ""
    enable: str | None = None  # the command that starts the server at boot (None: it does)

    @property
    def empty(self) -> bool:
        return not (self.changes or self.admin_sql or self.loads or self.dropin
                    or self.remove_legacy or self.enable)


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
        out[d.local_db(n.index)] = "kernel"
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


def parse_cnf_options(text: str) -> dict[str, str]:
    """`--key=value` lines (my_print_defaults / --print-defaults) -> {key: last value}."""
    out: dict[str, str] = {}
    for tok in text.split():
        if tok.startswith("--"):
            k, _, v = tok[2:].partition("=")
            out[k.replace("-", "_")] = v
    return out


def parse_cnf_file(text: str) -> dict[str, str]:
    """`key = value` lines of an option file's server sections -> {key: last value}."""
    out: dict[str, str] = {}
    section = ""
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("["):
            section = line.strip("[] \t").lower()
            continue
        if not line or line[0] in "#;!" or not (section in SERVER_SECTIONS or section.startswith(
                tuple(x + "-" for x in SERVER_SECTIONS))):
            continue
        k, _, v = line.partition("=")
        out[k.strip().replace("-", "_").lower()] = v.split("#", 1)[0].strip().strip("'\"")
    return out


def render_dropin(bind: str | None, max_conn: int | None) -> bytes:
    lines = ["# Managed by bps-deploy (fab db-init): the BPS cluster's nodes connect over the",
             "# network, each with its connection pools. Named to be read last. Do not edit.",
             "[mysqld]"]
    if bind is not None:
        lines.append(f"bind-address = {bind}")
    if max_conn is not None:
        lines.append(f"max_connections = {max_conn}")
    return ("\n".join(lines) + "\n").encode()


# --------------------------------------------------------------------------- pools (pure)

DS_FILES = ("datasources/master-datasources.xml", "datasources/bps-datasources.xml",
            "datasources/activiti-datasources.xml")  # relative to the profile's conf/
_ADDED_POOL = int(dict(ei_xml.NEW_DS_POOL)["maxActive"])
# our datasources -> (file, maxActive when the file is not there yet: WSO2's shipped value, or
# the one configure gives the datasources it adds)
POOLS = {"WSO2_CARBON_DB": (DS_FILES[0], 50), "WSO2_USER_DB": (DS_FILES[0], _ADDED_POOL),
         "WSO2REGISTRY_DB": (DS_FILES[0], _ADDED_POOL), "BPS_DS": (DS_FILES[1], 100),
         "ACTIVITI_DB": (DS_FILES[2], 50)}
SHIPPED_POOL_TOTAL = sum(v for _, v in POOLS.values())  # 300
TOMCAT_MAX_ACTIVE = 100  # Tomcat JDBC's default when <maxActive> is empty or missing
HEADROOM_MIN, HEADROOM_SHARE = 50, 0.20  # admin sessions, the tool, monitoring, replication


def pool_sizes(files: dict[str, bytes | None]) -> dict[str, int]:
    """maxActive of each of our datasources, from the node's datasource files as configure
    leaves them: an existing datasource keeps its own maxActive (configure edits only url,
    user, password, driver), an absent one gets what configure writes (NEW_DS_POOL) or, for
    a missing file, WSO2's shipped value."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    found: dict[str, dict[str, int]] = {}
    for rel in DS_FILES:
        data = files.get(rel)
        if data is None:
            continue
        try:
            root = etree.fromstring(data, parser)
        except etree.XMLSyntaxError:
            continue  # configure refuses it anyway; assume the defaults here
        sizes: dict[str, int] = {}
        for ds in root.iter("datasource"):
            name = (ds.findtext("name") or "").strip()
            text = (ds.findtext("definition/configuration/maxActive") or "").strip()
            sizes[name] = int(text) if text.isdigit() else TOMCAT_MAX_ACTIVE
        found[rel] = sizes
    return {name: found.get(rel, {}).get(name, default) for name, (rel, default) in POOLS.items()}


def connections_wanted(pool_totals: list[int]) -> tuple[int, int]:
    """(the nodes' pools together, what max_connections should be): plus 20%, at least 50."""
    need = sum(pool_totals)
    return need, need + max(HEADROOM_MIN, -(-need * 2 // 10))


def later_in_dir(path: str, ours: str) -> bool:
    """Is `path` read after our drop-in `ours`? Same folder and a later name in byte order
    (MySQL and MariaDB read an !includedir folder's *.cnf files sorted with strcmp)."""
    d, _, name = path.rpartition("/")
    od, _, oname = ours.rpartition("/")
    return d == od and name.encode() > oname.encode()


def winner_files(facts: DbFacts, value: str) -> list[str]:
    """Config files other than ours that set bind-address to `value`."""
    ours = {facts.dropin_path, facts.legacy_path}
    return [f for f, v in facts.bind_files if v == value and f not in ours]


# --------------------------------------------------------------------------- plan (pure)


def plan_db(facts: DbFacts, inv: Inventory, drop: tuple[str, ...] = (),
            app_hash: str | None = None) -> DbPlan:
    """Everything db-init must do on the DB host, from the facts. No I/O."""
    p = DbPlan()
    server = facts.server or Server("MariaDB", (10, 11, 0))
    d = inv.database
    kinds = db_kinds(inv)
    app_hash = app_hash or inv.secrets.db_native_hash
    for name in drop:
        if name not in kinds:
            p.errors.append(f"--drop {name}: not one of this cluster's databases "
                            f"({', '.join(kinds)}); nothing dropped")

    # -- server settings
    addr = inv.db.address
    ours = parse_cnf_file((facts.dropin or b"").decode("utf-8", "replace"))
    legacy = (parse_cnf_file(facts.legacy_dropin.decode("utf-8", "replace"))
              if facts.legacy_dropin and MANAGED_MARK in facts.legacy_dropin else {})
    managed = {**legacy, **ours}  # what our files set now (the old name goes away)
    want_bind = f"127.0.0.1,{addr}" if server.multi_bind else addr
    p.wanted_bind = want_bind
    bind_line = want_bind if ("bind_address" in managed
                              or not bind_ok(facts.bind_configured, addr)) else None
    pools = [facts.node_pools.get(n.name, SHIPPED_POOL_TOTAL) for n in inv.nodes]
    need, wanted = connections_wanted(pools)
    target = max(wanted, d.max_connections or 0)
    why = (f"{len(pools)} nodes' pools {need} + headroom = {wanted}"
           + (f", floor {d.max_connections}" if d.max_connections else ""))
    configured = facts.max_conn_configured
    max_line = None
    if "max_connections" in managed or (configured or 151) < target:
        # never lower what is configured or running
        max_line = max(target, configured or 0, facts.max_conn_running or 0)
    if facts.skip_networking:
        p.errors.append("the server runs with skip-networking: the nodes cannot connect over "
                        "TCP; remove skip-networking from its configuration, then re-run")
    if bind_line is not None or max_line is not None:
        if not facts.conf_dir:
            p.errors.append("no MySQL/MariaDB config directory found (looked for "
                            f"{', '.join(CONF_DIRS)}); cannot set bind-address/max_connections")
        else:
            content = render_dropin(bind_line, max_line)
            if content != facts.dropin:
                p.dropin = FileSpec(facts.dropin_path, content, "root", "root", 0o644)
                what = []
                if bind_line is not None:
                    what.append(f"bind-address = {bind_line}")
                if max_line is not None:
                    what.append(f"max_connections = {max_line} ({why})")
                verb = "create" if facts.dropin is None else "update"
                p.changes.append(f"{verb} {facts.dropin_path} ({', '.join(what)})")
            elif facts.dropin_state and (facts.dropin_state.mode, facts.dropin_state.owner) != \
                    (0o644, "root"):
                p.dropin = FileSpec(facts.dropin_path, content, "root", "root", 0o644)
                p.changes.append(f"fix owner/mode of {facts.dropin_path}")
            if legacy:
                p.remove_legacy = facts.legacy_path
                p.changes.append(f"remove our old drop-in {facts.legacy_path} (replaced by "
                                 f"{DROPIN_NAME}, backed up)")
    if bind_line is not None and facts.dropin_path:
        # a file read after ours that sets the address back: ours would never win
        later = [(f, v) for f, v in facts.bind_files if later_in_dir(f, facts.dropin_path)]
        if later and not bind_ok(later[-1][1], addr):
            p.errors.append(
                f"{later[-1][0]} sets bind-address = {later[-1][1]} and is read after "
                f"{facts.dropin_path}, so the server would still not listen on {addr}; it is "
                "not ours: change or remove that line there, then re-run")
        elif p.dropin is None and not bind_ok(facts.bind_configured, addr):
            # ours already says so, yet the server's own reading ends elsewhere
            files = winner_files(facts, facts.bind_configured or "")
            where = (", ".join(files) if files else
                     "a file outside " + ", ".join(CONF_DIRS) + " (see my_print_defaults --mysqld)")
            p.errors.append(
                f"{facts.dropin_path} sets bind-address = {bind_line}, but the server reads "
                f"bind-address = {facts.bind_configured} after it, from {where}: not restarted "
                "(it would not help); change or remove that line there, then re-run")
    if not bind_ok(facts.bind_running, addr) and not p.errors:
        if bind_line is None:
            p.errors.append(f"the server listens on {facts.bind_running} only, but its "
                            f"configuration already says {facts.bind_configured}: restart it "
                            "yourself or check for a command-line override")
        elif not d.allow_server_restart:
            body = (p.dropin.content if p.dropin else facts.dropin or b"").decode()
            p.errors.append(
                f"{facts.service} must be restarted to listen on {addr} (it listens on "
                f"{facts.bind_running} only), and [database] allow_server_restart is not true: "
                "a DB server may serve other applications. Nothing was changed. With "
                f"allow_server_restart = true the tool would write {facts.dropin_path}:\n"
                + "".join(f"    {ln}\n" for ln in body.splitlines())
                + f"then restart {facts.service} ({restart_command(facts)}); or make that "
                  "change and the restart yourself, then re-run")
        else:
            p.restart = True
            p.changes.append(f"restart {facts.service} (it listens on {facts.bind_running} only; "
                             f"needed: {want_bind})")
    if (facts.max_conn_running or 0) < target:
        p.admin_sql.append(f"SET GLOBAL max_connections = {int(target)};")
        p.changes.append(f"SET GLOBAL max_connections = {target} (running: "
                         f"{facts.max_conn_running}; {why}; no restart needed)")
        if facts.max_conn_running and (configured or 0) >= target:
            p.notes.append(
                f"the server runs with max_connections = {facts.max_conn_running} although its "
                f"configuration says {configured}: it lowers it at start when its open-files "
                "limit is too low; raise that (LimitNOFILE of its systemd unit, or "
                "open_files_limit under [mysqld_safe]) or the value drops at every restart")

    # -- databases
    states: dict[str, tuple[str, list[str]]] = {}
    for db, kind in kinds.items():
        states[db] = classify(facts.tables.get(db), kind)
        if db not in facts.databases:
            p.admin_sql.append(f"CREATE DATABASE IF NOT EXISTS {ident(db)} "
                               f"CHARACTER SET {server.charset};")
            p.changes.append(f"create database {db} (character set {server.charset})")

    # -- the application user: one account per node address, never '%'
    user = d.user
    revokes: list[str] = []
    for node in inv.nodes:
        acc = account(user, node.address)
        if node.address not in facts.users:
            p.admin_sql.append(f"CREATE USER {acc} {_identified(server, app_hash)};")
            p.changes.append(f"create user '{user}'@'{node.address}' ({node.name})")
        elif not facts.users[node.address]:
            p.admin_sql.append(_alter_password(server, acc, app_hash))
            p.changes.append(f"set the password of '{user}'@'{node.address}' (hosts.toml "
                             "has a different one)")
        have = facts.grants.get(node.address, {})
        needed = node_databases(inv, node.index)
        lacking = [db for db in needed if not REQUIRED_PRIVS <= have.get(db, set())]
        for db in lacking:
            p.admin_sql.append(f"GRANT ALL PRIVILEGES ON {ident(db)}.* TO {acc};")
        if lacking:
            p.changes.append(f"grant all on {', '.join(lacking)} to '{user}'@'{node.address}'")
        # another node's local registry: wider than this node needs
        wider = [db for db in kinds if db not in needed and have.get(db)]
        revokes.extend(f"REVOKE ALL PRIVILEGES ON {ident(db)}.* FROM {acc};" for db in wider)
        if wider:
            p.changes.append(f"revoke all on {', '.join(wider)} from '{user}'@'{node.address}' "
                             f"({node.name} needs only its own {d.local_db(node.index)})")
    p.admin_sql += revokes  # after every GRANT
    others = sorted(set(facts.users) - {n.address for n in inv.nodes})
    if others:
        p.notes.append(f"other accounts of {user} left alone: "
                       + ", ".join(f"'{user}'@'{h}'" for h in others))
    extra_dbs = sorted({db for h in facts.grants.values() for db in h} - set(kinds))
    if extra_dbs:
        p.notes.append(f"{user} also has grants on {', '.join(extra_dbs)} (left alone)")

    # -- started at boot (the tool restarts this server: it must come back after a reboot)
    p.enable, note = boot.boot_plan(boot.parse_boot(facts.boot_out, facts.service),
                                    facts.service)
    if p.enable:
        p.changes.append(f"start {facts.service} at boot: " + p.enable.split(" 2>")[0])
    if note:
        p.notes.append(note)

    # -- schemas
    for db, kind in kinds.items():
        state, missing = states[db]
        scripts = scripts_for(kind, server, inv.cluster.ei_version)
        names = ", ".join(s.split("dbscripts/", 1)[-1] for s in scripts)
        if state == "missing":
            p.loads.append(Load(db, kind, scripts))
            p.changes.append(f"load {names} into {db}")
            if db in drop:
                p.notes.append(f"--drop {db}: it holds none of its tables; loaded, not dropped")
        elif state == "partial":
            have = len(KIND_TABLES[kind]) - len(missing)
            if db in drop:
                p.loads.append(Load(db, kind, scripts, drop_first=True))
                p.changes.append(f"DROP partial database {db} ({have}/{len(KIND_TABLES[kind])} "
                                 f"tables, as --drop {db} asks), recreate it and load {names}")
            else:
                p.problems.append(
                    f"{db} is partial ({have} of {len(KIND_TABLES[kind])} tables; missing: "
                    f"{', '.join(missing)}): not loaded and not dropped. If it holds nothing "
                    f"you need, drop and reload it with: fab db-init --drop {db}")
        elif db in drop:
            p.errors.append(f"--drop {db}: {db} is complete ({len(KIND_TABLES[kind])} tables); "
                            "refusing to drop a complete database")
    return p


def _identified(server: Server, h: str) -> str:
    if not server.mariadb and server.version >= (5, 7, 6):
        return f"IDENTIFIED WITH mysql_native_password AS {lit(h)}"
    return f"IDENTIFIED BY PASSWORD {lit(h)}"


def _alter_password(server: Server, acc: str, h: str) -> str:
    if server.version >= ((10, 2, 0) if server.mariadb else (5, 7, 6)):
        return f"ALTER USER {acc} {_identified(server, h)};"
    return f"SET PASSWORD FOR {acc} = {lit(h)};"


# --------------------------------------------------------------------------- remote scripts


def cnf_value(value: str, what: str) -> str:
    """`value` for a MySQL option file line: double-quoted, with `\\` and `"` backslash-escaped
    (the client undoes both, and a `#` inside the quotes is not a comment). A line break or a
    NUL cannot be written there at all: refused, naming `what` (never the value)."""
    if any(c in value for c in "\n\r\0"):
        raise remote.RemoteError(f"{what} contains a line break or a NUL; the client option file "
                                 "cannot hold it")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def client_prelude(inv: Inventory) -> str:
    """Shell lines defining bps_sql(): the admin client, its login from an option file read on
    file descriptor 3 (a here-document), so no file on the DB host ever holds the password,
    not even for a moment, and none is left behind by a Ctrl-C or a dropped connection."""
    d = inv.database
    if d.admin_user:
        pw = inv.secrets.db_admin_password
        if not pw:
            raise remote.RemoteError("database.admin_user is set but secrets.db_admin_password "
                                     "is not; add it to [secrets] in hosts.toml")
        cnf = (f"[client]\nuser={cnf_value(d.admin_user, 'database.admin_user')}\n"
               f"password={cnf_value(pw, 'secrets.db_admin_password')}\n")
    else:
        cnf = f"[client]\nuser={cnf_value('root', 'the admin user')}\n"
    # base64 in a shell variable (never in argv: printf is a builtin), decoded into the
    # here-document each call; a command substitution's result is not expanded again
    b64 = base64.b64encode(cnf.encode()).decode()
    return (
        "BPS_CLIENT=$(command -v mariadb || command -v mysql) || "
        "{ echo 'BPS-NO-CLIENT: no mariadb/mysql client on this host'; exit 127; }\n"
        f"BPS_CNF_B64='{b64}'\n"
        "bps_sql() {\n"
        "  \"$BPS_CLIENT\" --defaults-extra-file=/dev/fd/3 --connect-timeout=10 \"$@\" "
        "3<<__BPS_CNF__\n$(printf '%s' \"$BPS_CNF_B64\" | base64 -d)\n__BPS_CNF__\n"
        "}\n")


def _facts_sql(inv: Inventory, app_hash: str) -> str:
    dbs = ", ".join(lit(x) for x in db_kinds(inv))
    u = lit(inv.database.user)
    h = lit(app_hash)
    return "\n".join([
        "SELECT 'version', VERSION(), @@version_comment;",
        f"SELECT 'db', SCHEMA_NAME, DEFAULT_CHARACTER_SET_NAME FROM information_schema.SCHEMATA "
        f"WHERE SCHEMA_NAME IN ({dbs});",
        f"SELECT 'table', TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES "
        f"WHERE TABLE_SCHEMA IN ({dbs});",
        f"SELECT 'user', Host, plugin, authentication_string = {h} FROM mysql.user "
        f"WHERE User = {u};",
        f"SELECT 'grant', GRANTEE, TABLE_SCHEMA, PRIVILEGE_TYPE FROM "
        f"information_schema.SCHEMA_PRIVILEGES WHERE GRANTEE LIKE {lit(lit(inv.database.user) + '@%')};",
        "SELECT 'var', 'max_connections', @@global.max_connections;",
        "SELECT 'var', 'socket', @@global.socket;",
        "SELECT 'var', 'skip_networking', @@global.skip_networking;",
        "SELECT 'var', 'bind_address', @@global.bind_address;",
        # MariaDB < 10.4 keeps the hash in Password; MySQL has no such column (error ignored)
        f"SELECT 'pwcol', Host, Password = {h} FROM mysql.user WHERE User = {u};",
    ]) + "\n"


def db_probes(inv: Inventory, app_hash: str) -> dict[str, str]:
    sql = _facts_sql(inv, app_hash)
    return {
        "sql": (client_prelude(inv)
                + f"bps_sql --force -N -B <<'__BPS_SQL__'\n{sql}__BPS_SQL__\n"),
        "cnf": PRINT_DEFAULTS,
        # the first of the server's config folders that exists, then our drop-in's file fact
        "confdir": "".join(f"if [ -d {q(d)} ]; then echo {q(d)}; "
                           f"{remote.probe_file(d + '/' + DROPIN_NAME, content=True)}; el"
                           for d in CONF_DIRS) + "se true; fi",
        "legacy": "".join(f"if [ -d {q(d)} ]; then "
                          f"{remote.probe_file(d + '/' + LEGACY_DROPIN, content=True)}; el"
                          for d in CONF_DIRS) + "se true; fi",
        # every bind-address line: file, [section], value (the folders' *.cnf in byte order)
        "binds": ("for f in /etc/my.cnf /etc/mysql/*.cnf /etc/mysql/*/*.cnf /etc/my.cnf.d/*.cnf; "
                  "do [ -f \"$f\" ] || continue; awk -v f=\"$f\" '"
                  "/^[[:space:]]*\\[/ { s = $0; gsub(/[][[:space:]]/, \"\", s); sec = tolower(s); "
                  "next } "
                  "tolower($0) ~ /^[[:space:]]*bind[-_]address[[:space:]]*=/ { v = $0; "
                  "sub(/^[^=]*=[[:space:]]*/, \"\", v); sub(/[[:space:]]*(#.*)?$/, \"\", v); "
                  "print f \"\\t\" sec \"\\t\" v }' \"$f\" 2>/dev/null; done; true"),
        "init": ("if [ -d /run/systemd/system ]; then echo systemd; else echo sysv; fi; "
                 "for s in mariadb mysql mysqld; do if [ -e /etc/init.d/$s ] || "
                 "[ -e /lib/systemd/system/$s.service ] || [ -e /usr/lib/systemd/system/$s.service ]"
                 " || [ -e /etc/systemd/system/$s.service ]; then echo $s; break; fi; done"),
        "boot": boot.boot_probe(("mariadb", "mysql", "mysqld")),
        # TLS for the cluster's connections (tasks/steps/db_tls.py), in this same read
        **db_tls.probes(inv, client_prelude(inv), CONF_DIRS),
    }


def parse_bind_lines(out: str) -> list[tuple[str, str]]:
    """The 'binds' probe -> [(file, value)] of bind-address lines in the server's sections."""
    found = []
    for line in out.splitlines():
        cols = line.split("\t")
        if len(cols) != 3:
            continue
        path, sec, value = cols
        if sec in SERVER_SECTIONS or sec.startswith(tuple(x + "-" for x in SERVER_SECTIONS)):
            found.append((path, value.strip().strip("'\"")))
    return found


def parse_db_facts(raw: dict[str, Fact], host: str, inv: Inventory) -> DbFacts:
    f = DbFacts()
    cnf = parse_cnf_options(raw["cnf"].out) if "cnf" in raw else {}
    f.bind_configured = cnf.get("bind_address")
    if cnf.get("max_connections", "").isdigit():
        f.max_conn_configured = int(cnf["max_connections"])
    if cnf.get("socket"):
        f.socket = cnf["socket"]
    lines = raw["confdir"].out.splitlines() if "confdir" in raw else []
    f.conf_dir = lines[0].strip() if lines else None
    if len(lines) >= 2:
        f.dropin_state = remote.parse_file_probe("\n".join(lines[1:]))
        f.dropin = f.dropin_state.content if f.dropin_state else None
    if "legacy" in raw and raw["legacy"].out.strip():
        st = remote.parse_file_probe(raw["legacy"].out)
        f.legacy_dropin = st.content if st else None
    f.bind_files = parse_bind_lines(raw["binds"].out if "binds" in raw else "")
    init = raw["init"].out.split() if "init" in raw else []
    f.init = init[0] if init else "sysv"
    f.service = init[1] if len(init) > 1 else ("mariadb" if f.conf_dir and "mariadb" in
                                              f.conf_dir else "mysql")
    f.boot_out = raw["boot"].out if "boot" in raw else ""
    sql = raw["sql"]
    pw_col: dict[str, bool] = {}
    for line in sql.out.splitlines():
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
    if f.server is None:
        f.running = False
        out = sql.out.strip()
        if "BPS-NO-CLIENT" in out:
            f.error = (f"no mariadb/mysql client on {host}; install the server's client "
                       "package there")
        elif re.search(r"ERROR 200[0-9]|Can't connect|No such file", out):
            m = re.search(r"socket '([^']+)'", out)
            f.socket = m.group(1) if m else f.socket
            f.error = f"database server on {host} is not running (socket {f.socket})"
        elif re.search(r"ERROR (1045|1698)", out):
            who = inv.database.admin_user or "root (unix socket)"
            f.error = (f"the database server on {host} refused the admin login as {who}: "
                       f"{out.splitlines()[-1][:300]}; set database.admin_user and "
                       "secrets.db_admin_password in hosts.toml")
        else:
            f.error = f"cannot read the database server on {host}: {out[-500:] or 'no output'}"
    return f


def read_db_facts(s: HostSession, inv: Inventory, app_hash: str) -> DbFacts:
    return parse_db_facts(remote.read_facts(s, db_probes(inv, app_hash)), s.name, inv)


def restart_command(facts: DbFacts) -> str:
    svc = q(facts.service)
    if facts.init == "systemd":
        return f"systemctl restart {svc}"
    return f"service {svc} restart"


PRINT_DEFAULTS = ("my_print_defaults --mysqld 2>/dev/null || mariadbd --print-defaults 2>/dev/null"
                  " || mysqld --print-defaults 2>/dev/null || true")
BIND_OTHER = "BPS-BIND-OTHER"


def bind_check(want: str, ours: str) -> str:
    """Shell: after our drop-in is in place, the server's own reading of its configuration
    (my_print_defaults) must end with an address that lets the nodes in; if another file still
    wins, name it and fail (the caller restores the files; nothing is restarted)."""
    dirs = " ".join(q(d) for d in ("/etc/my.cnf", "/etc/mysql", "/etc/my.cnf.d"))
    return (f"bps_bind=$( ({PRINT_DEFAULTS}) | tr ' ' '\\n' | "
            "sed -n 's/^--bind[-_]address=//p' | tail -n 1); "
            f"case \"$bps_bind\" in {q(want)}|0.0.0.0|'*'|'::') ;; *) "
            f"echo \"{BIND_OTHER}: the server would still read bind-address = $bps_bind, from: "
            f"$(grep -r -l -i -E '^[[:space:]]*bind[-_]address' {dirs} 2>/dev/null | "
            f"grep -v -x -F {q(ours)} | tr '\\n' ' ')\"; exit 1 ;; esac")


def settings_script(plan: DbPlan, facts: DbFacts, stamp: str, inv: Inventory) -> str:
    """Write the drop-in; check that its bind address wins; restart when the bind address must
    change; roll back on failure; then remove our old drop-in (backed up)."""
    change = (remote.plan_files([plan.dropin], {plan.dropin.path: facts.dropin_state})
              if plan.dropin else [])
    restart = restart_command(facts) if plan.restart else None
    checks = []
    if plan.dropin and b"bind-address" in plan.dropin.content:
        checks.append(f"{{ {bind_check(plan.wanted_bind, plan.dropin.path)}; }}")
    if restart:
        checks.append(f"{restart} </dev/null")
    validate = " && ".join(checks) or None
    body = remote.write_files_script(change, stamp, validate, inv.cluster.backups_keep)
    if plan.remove_legacy:
        old = q(plan.remove_legacy)
        body += (f"if [ -f {old} ] && [ ! -L {old} ] && grep -q -F "
                 f"{q(MANAGED_MARK.decode())} {old}; then bak=$(backup_name {old}) && "
                 f"cat {old} > \"$bak\" && rm -f {old} && echo 'removed {plan.remove_legacy}' "
                 "&& prune_backups \"$bak\"; fi\n")
    out = f"(\n{body})\nrc=$?\n"
    if restart:
        # only a failed restart leaves the server down: never restart it after a failed check
        out += (f"if [ $rc -ne 0 ] && ! pgrep -x 'mariadbd|mysqld' >/dev/null; then "
                f"{restart} </dev/null >/dev/null 2>&1; "
                "echo 'restart with the new settings failed: previous settings restored and the "
                "server started again' >&2; exit $rc; fi\n")
        out += f"[ $rc -ne 0 ] || echo 'restarted {facts.service}'\n"
    out += "exit $rc\n"
    return out


def admin_script(inv: Inventory, statements: list[str]) -> str:
    sql = "\n".join(statements) + "\n"
    assert "__BPS_SQL__" not in sql
    return client_prelude(inv) + f"bps_sql -N -B <<'__BPS_SQL__'\n{sql}__BPS_SQL__\n"


def load_script(inv: Inventory, loads: list[Load], sources: dict[str, bytes]) -> str:
    """One client invocation per database; markers report each exit code; then re-read tables."""
    parts = [client_prelude(inv)]
    for ld in loads:
        sql = "\n".join(sources[s].decode("utf-8", "replace").rstrip() for s in ld.scripts)
        delim = "__BPS_LOAD_" + hashlib.sha256(sql.encode()).hexdigest()[:16] + "__"
        assert delim not in sql
        parts.append(f"echo '@@LOAD {ld.db} start'\n"
                     f"bps_sql --database={q(ld.db)} <<'{delim}'\n{sql}\n{delim}\n"
                     f"echo \"@@LOAD {ld.db} rc=$?\"\n")
    dbs = ", ".join(lit(x.db) for x in loads)
    parts.append("bps_sql -N -B <<'__BPS_SQL__'\n"
                  f"SELECT 'table', TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES "
                  f"WHERE TABLE_SCHEMA IN ({dbs});\n__BPS_SQL__\n")
    return "".join(parts)


# --------------------------------------------------------------------------- script sources


def needed_scripts(plan: DbPlan) -> list[str]:
    out: list[str] = []
    for ld in plan.loads:
        out += [s for s in ld.scripts if s not in out]
    return out


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


def fetch_scripts(run, paths: list[str]) -> dict[str, bytes]:
    """WSO2's scripts: from database.scripts_dir (local) or the first node's EI_HOME (one read)."""
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


# --------------------------------------------------------------------------- the step


def _validate_drop(inv: Inventory, drop: tuple[str, ...]) -> None:
    known = list(db_kinds(inv))
    bad = [d for d in drop if d not in known]
    if bad:
        raise Abort(f"--drop {', '.join(bad)}: not a database of this cluster (known: "
                    f"{', '.join(known)}); nothing was touched")


def node_probes(inv: Inventory) -> dict[str, str]:
    """One read per node: its datasource files (for the pool sizes) and /etc/hosts (for the
    /etc/hosts step that follows, so a no-op costs no extra command on the nodes)."""
    conf = f"{inv.cluster.profile_home}/conf"
    probes = {rel: remote.probe_file(f"{conf}/{rel}", content=True) for rel in DS_FILES}
    if etc_hosts_line(inv) is not None:
        probes["/etc/hosts"] = remote.probe_file("/etc/hosts", content=True)
    return probes


def read_node_pools(run, state: dict) -> dict[str, int]:
    """Each live node's pool total, read in parallel; a node that cannot be read counts with
    WSO2's shipped sizes (its own step reports the problem)."""
    inv = run.inv
    nodes = run.alive(inv.nodes)
    probes = node_probes(inv)
    cache = state.setdefault("node_facts", {})

    def one(node) -> tuple[str, int | None]:
        try:
            raw = remote.read_facts(run.session(node), probes)
            files: dict[str, bytes | None] = {}
            for rel in DS_FILES:
                try:
                    files[rel] = remote.parse_content_probe(raw[rel].out) if rel in raw else None
                except remote.RemoteError:
                    files[rel] = None
            if "/etc/hosts" in raw:
                cache[node.name] = raw["/etc/hosts"].out
            return node.name, sum(pool_sizes(files).values())
        except Exception:  # noqa: BLE001 - reported by the node's own step
            return node.name, None

    with ThreadPoolExecutor(max_workers=max(1, min(run.opts.parallel, len(nodes) or 1))) as ex:
        return {name: n for name, n in ex.map(one, nodes) if n is not None}


def _db_host_step(run, s: HostSession, drop: tuple[str, ...], state: dict) -> StepResult:
    inv = run.inv
    app_hash = inv.secrets.db_native_hash
    run.rep.redact.add(app_hash)
    raw = remote.read_facts(s, db_probes(inv, app_hash))
    facts = state["facts"] = parse_db_facts(raw, s.name, inv)
    state["raw"] = raw  # db_tls plans from the same read
    if not facts.running:
        state["down"] = True
        return StepResult(s.name, STEP, "failed", facts.error)
    facts.node_pools = read_node_pools(run, state)
    found = f"{facts.server.label} found"
    plan = plan_db(facts, inv, drop, app_hash)
    diffs = []
    if plan.dropin and run.opts.diff:
        diffs.append(unified_diff(plan.dropin.path, facts.dropin, plan.dropin.content,
                                  run.rep.redact))
    if plan.errors:
        return StepResult(s.name, STEP, "failed", f"{found}; nothing changed: "
                          + "; ".join(plan.errors), diffs=diffs)
    tail = "".join(f"; {n}" for n in plan.notes)
    if run.check:
        if plan.problems:
            return StepResult(s.name, STEP, "failed", f"{found}; " + "; ".join(plan.problems)
                              + tail, changes=[f"would {c}" for c in plan.changes], diffs=diffs)
        if plan.empty:
            return StepResult(s.name, STEP, "ok", f"{found}; databases, users, grants, schemas "
                              f"and server settings already as wanted{tail}")
        return StepResult(s.name, STEP, "changed", f"{found}; would make "
                          f"{len(plan.changes)} change(s){tail}",
                          changes=[f"would {c}" for c in plan.changes], diffs=diffs)

    sources = fetch_scripts(run, needed_scripts(plan)) if plan.loads else {}
    restarted = False
    if plan.dropin or plan.restart or plan.remove_legacy:
        res = remote.run_script(s, settings_script(plan, facts, run.stamp, inv),
                                what="db settings")
        if not res.ok and BIND_OTHER in res.stdout + res.stderr:
            line = next(ln for ln in (res.stdout + res.stderr).splitlines() if BIND_OTHER in ln)
            return StepResult(s.name, STEP, "failed", (
                f"{found}; after writing {plan.dropin.path}, "
                + line.split(": ", 1)[1].strip()
                + f": another file wins over ours, so {plan.dropin.path} was rolled back (as "
                  f"before this run) and {facts.service} was not restarted; nothing else changed. "
                  "Change or remove that line there, then re-run"), diffs=diffs)
        if not res.ok:
            raise remote.CommandFailed(s.name, "writing the server settings / restart", res)
        restarted = plan.restart
    if plan.enable:
        remote.run_script(s, plan.enable + "\n", check=True,
                          what=f"enable {facts.service} at boot")
    admin = list(plan.admin_sql)
    for ld in plan.loads:
        if ld.drop_first:
            admin += [f"DROP DATABASE {ident(ld.db)};",
                      f"CREATE DATABASE {ident(ld.db)} CHARACTER SET "
                      f"{(facts.server or Server('MariaDB', (10, 11, 0))).charset};"]
    if admin:
        res = remote.run_script(s, admin_script(inv, admin), what="db admin SQL")
        if not res.ok:
            raise remote.CommandFailed(s.name, "creating databases/users/grants", res)
    failures: list[str] = []
    if plan.loads:
        res = remote.run_script(s, load_script(inv, plan.loads, sources), what="schema load",
                                timeout=max(s.timeout, 600))
        rcs = dict(re.findall(r"^@@LOAD (\S+) rc=(\d+)$", res.stdout, re.M))
        after: dict[str, set[str]] = {}
        for line in res.stdout.splitlines():
            cols = line.split("\t")
            if cols[0] == "table" and len(cols) >= 3:
                after.setdefault(cols[1], set()).add(cols[2].upper())
        for ld in plan.loads:
            state_, missing = classify(after.get(ld.db), ld.kind)
            if rcs.get(ld.db) != "0" or state_ != "complete":
                err = [x for x in res.stderr.splitlines() if x.strip()][-3:]
                failures.append(f"loading {ld.db} failed (client exit {rcs.get(ld.db, '?')}; "
                                f"{state_}, missing {len(missing)} table(s)): "
                                + " | ".join(err))
    changes = list(plan.changes)
    msg = f"{found}; {len(changes)} change(s)" if changes else f"{found}; nothing to do"
    if restarted:
        msg += f"; {facts.service} restarted (bind-address changed)"
    problems = failures + plan.problems
    if problems:
        return StepResult(s.name, STEP, "failed", f"{msg}; " + "; ".join(problems) + tail,
                          changes=changes, diffs=diffs, restarted=restarted)
    if not changes:
        return StepResult(s.name, STEP, "ok", f"{found}; databases, users, grants, schemas and "
                          f"server settings already as wanted{tail}")
    return StepResult(s.name, STEP, "changed", msg + tail, changes=changes, diffs=diffs,
                      restarted=restarted)


def etc_hosts_line(inv: Inventory) -> str | None:
    name = inv.database.hostname
    if not inv.cluster.etc_hosts or not name or name == inv.db.address:
        return None
    return f"{inv.db.address}\t{name}"


def plan_etc_hosts(text: str, line: str, hostname: str) -> tuple[str, list[str]]:
    """Pure: the new /etc/hosts text and notes about other lines naming the same host."""
    new = remote.managed_block(text, [line], HOSTS_MARKER)
    notes = []
    inside = False
    for ln in text.splitlines():
        if ln.startswith(f"# BEGIN {HOSTS_MARKER}"):
            inside = True
        elif ln.startswith(f"# END {HOSTS_MARKER}"):
            inside = False
        elif not inside and hostname in ln.split("#", 1)[0].split()[1:]:
            notes.append(f"another line also maps {hostname} (left alone, may win): {ln.strip()}")
    return new, notes


def _etc_hosts_one(run, s: HostSession, line: str, cached: str | None = None) -> StepResult:
    inv = run.inv
    if cached is not None:  # read with the node's pool sizes, moments ago
        st = remote.parse_file_probe(cached)
        before = st.content if st else None
    else:
        before, st = remote.read_file(s, "/etc/hosts")
    _, notes = plan_etc_hosts((before or b"").decode("utf-8", "replace"), line,
                              inv.database.hostname)
    tail = "".join(f"; {n}" for n in notes)
    changes = remote.block_change("/etc/hosts", before, st, [line], HOSTS_MARKER)
    if not changes:
        return StepResult(s.name, HOSTS_STEP, "ok",
                          f"{inv.database.hostname} already maps to {inv.db.address}{tail}")
    diffs = run.diffs_for(s, changes, {"/etc/hosts": before})
    desc = f"map {inv.database.hostname} to {inv.db.address} in /etc/hosts"
    if run.check:
        return StepResult(s.name, HOSTS_STEP, "changed", f"would {desc}{tail}",
                          changes=[f"would {desc}"], diffs=diffs)
    run.apply_files(s, changes, what="/etc/hosts")
    return StepResult(s.name, HOSTS_STEP, "changed", desc + tail, changes=[desc], diffs=diffs)


def db_step(run, drop: tuple[str, ...] = ()) -> bool:
    """Databases, app user, grants, schemas, server settings; then /etc/hosts on the nodes.

    Returns False when the DB host failed (the nodes are then not touched).
    """
    inv = run.inv
    drop = tuple(x for x in drop if x)
    _validate_drop(inv, drop)
    if drop:  # the step that deletes data: a backup first, or nothing is dropped
        run.before_data_loss(f"db-init --drop {','.join(drop)}")
    state: dict = {}
    res = run.each([inv.db], STEP, lambda s: _db_host_step(run, s, drop, state))
    if res[inv.db.name].status in ("failed", "unreachable"):
        return False
    tls = db_tls.db_tls_step(run, state["raw"], restart_command(state["facts"]),
                             client_prelude(inv))
    if tls is None:
        return False
    run.shared["db_tls"] = tls  # its REQUIRE SSL part: `fab deploy`, once the nodes use TLS
    line = etc_hosts_line(inv)
    if line is None:
        return True
    nodes = run.alive(inv.nodes)
    cache = state.get("node_facts", {})
    out = run.each(nodes, HOSTS_STEP,
                   lambda s: _etc_hosts_one(run, s, line, cache.get(s.name)))
    return all(r.status not in ("failed", "unreachable") for r in out.values())


def db_status(run) -> dict:
    """For `fab status`: server version and each database complete / partial / missing."""
    inv = run.inv
    app_hash = inv.secrets.db_native_hash
    out: dict = {"host": inv.db.name, "running": False, "server": None, "databases": {}}
    try:
        facts = read_db_facts(run.session(inv.db), inv, app_hash)
    except remote.RemoteError as e:
        out["error"] = str(e)
        return out
    if not facts.running:
        out["error"] = facts.error
        return out
    out["running"] = True
    out["server"] = facts.server.label
    for db, kind in db_kinds(inv).items():
        st, missing = classify(facts.tables.get(db), kind)
        out["databases"][db] = {"state": st, "exists": db in facts.databases,
                                "tables": len(KIND_TABLES[kind]) - len(missing),
                                "expected": len(KIND_TABLES[kind]), "missing": missing}
    out["users"] = {h: {"password_ok": ok} for h, ok in facts.users.items()}
    return out


@task(name="db-init", help={
    "check": COMMON_HELP["check"], "diff": COMMON_HELP["diff"],
    "parallel": COMMON_HELP["parallel"],
    "drop": "comma-separated PARTIAL databases to drop and reload (e.g. BPS_DS); nothing else "
            "is ever dropped"})
def db_init(c, check=False, diff=False, drop="", parallel=16):
    """Create the cluster's databases, app user, grants and WSO2 schemas on the DB host."""
    with session(c, check=check, diff=diff, parallel=parallel, title="DB-INIT") as run:
        db_step(run, tuple(x.strip() for x in (drop or "").split(",") if x.strip()))
