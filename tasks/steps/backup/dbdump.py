"""The cluster's databases: one consistent dump out, and back in, on the DB host.

The admin login reaches both clients as db-init's does (db.client_prelude: an option file on
file descriptor 3 from a here-document, never argv, env or a file). The dump is ONE
mysqldump --single-transaction over every cluster database that exists (one snapshot across
all of them, without locking the nodes out), with DROP/CREATE DATABASE so a restore replaces
each database whole, `--hex-blob` so the registry's BLOBs survive as text; gzip and base64 on
the host, the exact bytes here. The SQL for the list travels on stdin.

Size: the dump passes through this machine's memory (fine for the hundreds of MB a BPS
cluster's databases usually hold; see README).
"""
from __future__ import annotations

import base64
import re

from ...engine import remote
from ...engine.inventory import Inventory
from .. import db

# the dump client with db-init's login (BPS_CNF_B64 from db.client_prelude, on fd 3);
# mysqldump has no --connect-timeout, so it is not db-init's bps_sql
DUMP_CLIENT = (
    "BPS_DUMP=$(command -v mariadb-dump || command -v mysqldump) || "
    "{ echo 'BPS-NO-DUMP: no mariadb-dump/mysqldump on this host' >&2; exit 127; }\n"
    "bps_dump() {\n"
    "  \"$BPS_DUMP\" --defaults-extra-file=/dev/fd/3 \"$@\" "
    "3<<__BPS_CNF__\n$(printf '%s' \"$BPS_CNF_B64\" | base64 -d)\n__BPS_CNF__\n"
    "}\n")
DUMP_OPTIONS = "--single-transaction --quick --hex-blob --add-drop-database --triggers"


def dump_script(inv: Inventory) -> str:
    """Stdout: the gzip'd dump in base64; stderr: @@DBS (those that exist), @@SERVER, @@DUMP rc."""
    names = ", ".join(db.lit(x) for x in db.db_kinds(inv))
    return (db.client_prelude(inv)
            + "dbs=$(bps_sql -N -B <<'__BPS_SQL__'\n"
              f"SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME IN ({names}) "
              "ORDER BY SCHEMA_NAME;\n__BPS_SQL__\n) || exit 3\n"
            + "ver=$(bps_sql -N -B <<'__BPS_SQL__'\nSELECT VERSION();\n__BPS_SQL__\n)\n"
            + "echo \"@@SERVER $ver\" >&2\n"
            + "echo \"@@DBS $(echo $dbs)\" >&2\n"
            + "[ -n \"$dbs\" ] || exit 0\n"
            + DUMP_CLIENT
            # the database names are checked SQL identifiers (hosts.toml), safe unquoted
            + f"{{ bps_dump {DUMP_OPTIONS} --databases $dbs; echo \"@@DUMP rc=$?\" >&2; }} "
              "| gzip -c | base64 -w0\n")


def parse_dump(res: remote.CmdResult) -> tuple[list[str], str, bytes | None]:
    """(databases dumped, server version, gzip bytes or None); raises RemoteError on failure."""
    m_dbs = re.search(r"^@@DBS ?(.*)$", res.stderr, re.M)
    if res.exit != 0 or m_dbs is None:
        raise remote.RemoteError(f"listing the cluster's databases failed (exit {res.exit}): "
                                 + _tail(res.stderr))
    names = m_dbs.group(1).split()
    server = (re.search(r"^@@SERVER (.*)$", res.stderr, re.M) or [None, ""])[1].strip()
    if not names:
        return [], server, None
    rc = re.search(r"^@@DUMP rc=(\d+)$", res.stderr, re.M)
    if rc is None or rc.group(1) != "0":
        raise remote.RemoteError(f"mysqldump failed (exit {rc.group(1) if rc else '?'}): "
                                 + _tail(res.stderr))
    return names, server, base64.b64decode(res.stdout.strip())


def restore_script(inv: Inventory, gz: bytes) -> str:
    """Load the dump as the admin (it drops and recreates each database it holds)."""
    b64 = base64.encodebytes(gz).decode()
    return (db.client_prelude(inv)
            + f"base64 -d <<'__BPS_DUMP__' | gunzip -c | bps_sql\n{b64}__BPS_DUMP__\n")


def _tail(text: str) -> str:
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.startswith("@@")]
    return " | ".join(lines[-3:]) or "no message"
