"""db-init's option files and pool sizes (pure): what the server reads, what the nodes need."""
from __future__ import annotations

from lxml import etree

from ...engine import remote
from ...wso2 import ei_xml
from .model import SERVER_SECTIONS, DbFacts


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


def cnf_value(value: str, what: str) -> str:
    """`value` for a MySQL option file line: double-quoted, with `\\` and `"` backslash-escaped
    (the client undoes both, and a `#` inside the quotes is not a comment). A line break or a
    NUL cannot be written there at all: refused, naming `what` (never the value)."""
    if any(c in value for c in "\n\r\0"):
        raise remote.RemoteError(f"{what} contains a line break or a NUL; the client option file "
                                 "cannot hold it")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


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

