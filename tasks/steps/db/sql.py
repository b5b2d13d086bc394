"""db-init's SQL and the remote scripts that run it (tasks/scripts/db_*.sh), built purely.

Every script is a static body from tasks/scripts/ with a generated header of quoted parameters
(remote.script); SQL and the admin login travel inside the script on stdin, never in argv or
the environment (see db_client.sh for the login on file descriptor 3).
"""
from __future__ import annotations

import base64

from ...engine import remote
from ...engine.inventory import Inventory
from ...engine.remote import FileChange, q
from .cnf import cnf_value
from .model import MANAGED_MARK, DbFacts, Load, Server, db_kinds, lit

BIND_OTHER = "BPS-BIND-OTHER"  # db_settings.sh's word for "another file wins over ours"


# --------------------------------------------------------------------------- SQL (pure)


def identified(server: Server, h: str) -> str:
    if not server.mariadb and server.version >= (5, 7, 6):
        return f"IDENTIFIED WITH mysql_native_password AS {lit(h)}"
    return f"IDENTIFIED BY PASSWORD {lit(h)}"


def alter_password(server: Server, acc: str, h: str) -> str:
    if server.version >= ((10, 2, 0) if server.mariadb else (5, 7, 6)):
        return f"ALTER USER {acc} {identified(server, h)};"
    return f"SET PASSWORD FOR {acc} = {lit(h)};"


def facts_sql(inv: Inventory, app_hash: str) -> str:
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
        f"information_schema.SCHEMA_PRIVILEGES WHERE GRANTEE LIKE "
        f"{lit(lit(inv.database.user) + '@%')};",
        "SELECT 'var', 'max_connections', @@global.max_connections;",
        "SELECT 'var', 'socket', @@global.socket;",
        "SELECT 'var', 'skip_networking', @@global.skip_networking;",
        "SELECT 'var', 'bind_address', @@global.bind_address;",
        # MariaDB < 10.4 keeps the hash in Password; MySQL has no such column (error ignored)
        f"SELECT 'pwcol', Host, Password = {h} FROM mysql.user WHERE User = {u};",
    ])


def tables_sql(dbs: list[str]) -> str:
    return (f"SELECT 'table', TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES "
            f"WHERE TABLE_SCHEMA IN ({', '.join(lit(x) for x in dbs)});")


# --------------------------------------------------------------------------- scripts (pure)


def client_prelude(inv: Inventory) -> str:
    """db_client.sh with this cluster's admin login: root over the unix socket, or
    database.admin_user with secrets.db_admin_password."""
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
    return remote.script("db_client.sh", BPS_CNF_B64=base64.b64encode(cnf.encode()).decode())


def sql_script(inv: Inventory, sql: str, force: bool = False) -> str:
    """Statements run by the admin client; without `force` the first error stops them."""
    return client_prelude(inv) + remote.script("db_sql.sh", SQL=sql, FORCE=int(force))


def admin_script(inv: Inventory, statements: list[str]) -> str:
    return sql_script(inv, "\n".join(statements))


def load_script(inv: Inventory, loads: list[Load], sources: dict[str, bytes]) -> str:
    """One client invocation per database, markers with each exit code; then the tables."""
    parts = [client_prelude(inv)]
    for ld in loads:
        sql = "\n".join(sources[s].decode("utf-8", "replace").rstrip() for s in ld.scripts)
        parts.append(remote.script("db_load.sh", DB=ld.db, SQL=sql))
    parts.append(remote.script("db_sql.sh", SQL=tables_sql([ld.db for ld in loads]), FORCE=0))
    return "".join(parts)


def restart_command(facts: DbFacts) -> str:
    """What restarts the server (said in messages; db_settings.sh runs the same)."""
    svc = q(facts.service)
    if facts.init == "systemd":
        return f"systemctl restart {svc}"
    return f"service {svc} restart"


def print_defaults_script() -> str:
    """The server's own reading of its option files (the fact read's "cnf" probe)."""
    return remote.script("db_print_defaults.sh") + "print_defaults\n"


def _settings_lib(facts: DbFacts, want: str, ours: str, check_bind: bool, restart: bool,
                  legacy: str | None) -> str:
    return remote.script("db_print_defaults.sh") + remote.script(
        "db_settings.sh", WANT_BIND=want, OURS=ours, CHECK_BIND=int(check_bind),
        RESTART=int(restart), INIT=facts.init, SERVICE=facts.service, LEGACY=legacy or "",
        MARK=MANAGED_MARK.decode())


def bind_check(want: str, ours: str) -> str:
    """After our drop-in is in place: the server's reading must end with `want` (or all
    interfaces); else print BIND_OTHER naming the files and exit 1."""
    return _settings_lib(DbFacts(), want, ours, True, False, None) + "bind_check\n"


def settings_script(facts: DbFacts, change: list[FileChange], want: str, restart: bool,
                    legacy: str | None, stamp: str, keep: int) -> str:
    """Write the drop-in; check that its bind address wins; restart when the bind address must
    change; roll back on failure (and start the server again); then remove our old drop-in."""
    check_bind = any(b"bind-address" in c.spec.content for c in change)
    ours = change[0].spec.path if change else f"{facts.conf_dir}/"
    validate = "settings_check" if check_bind or restart else None
    return (_settings_lib(facts, want, ours, check_bind, restart, legacy)
            + "(\n" + remote.write_files_script(change, stamp, validate, keep)
            + "remove_legacy\n)\nsettings_end $?\n")
