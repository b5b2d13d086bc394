"""`fab db-init`: fact parsing, the pure plan, scripts and secrets handling (no host)."""
import hashlib
import re
import sys
from pathlib import Path

import pytest

from tests.paths import REPO, WSO2_FILES

from tasks.steps import db  # noqa: E402

from tasks.engine import inventory, remote
from tasks.engine.remote import Fact  # noqa: E402
from tests.unit.inv_factory import make_inv  # noqa: E402

SHARED = WSO2_FILES
APP_PW = "s3cret-db_password"
MARIADB = db.Server("MariaDB", (10, 11, 6), "10.11.6-MariaDB-0+deb12u1")




@pytest.fixture
def inv(tmp_path):
    return make_inv(tmp_path)


def all_grants(inv):
    """What the tool grants: each node the shared databases and its own local registry."""
    return {n.address: {d: set(db.REQUIRED_PRIVS) for d in db.node_databases(inv, n.index)}
            for n in inv.nodes}


def done_facts(inv, **kw) -> db.DbFacts:
    """A server where everything is already as wanted."""
    tables = {}
    for name, kind in db.db_kinds(inv).items():
        tables[name] = set(db.KIND_TABLES[kind])
    dropin = db.render_dropin("127.0.0.1,192.0.2.3", 1000)
    base = dict(server=MARIADB, databases={d: "utf8mb4" for d in db.db_kinds(inv)},
                tables=tables, users={n.address: True for n in inv.nodes},
                grants=all_grants(inv), bind_running="127.0.0.1,192.0.2.3",
                bind_files=[("/etc/mysql/mariadb.conf.d/50-server.cnf", "127.0.0.1"),
                            ("/etc/mysql/mariadb.conf.d/zz-bps-deploy.cnf",
                             "127.0.0.1,192.0.2.3")],
                max_conn_running=1000, bind_configured="127.0.0.1,192.0.2.3",
                max_conn_configured=1000, dropin=dropin,
                dropin_state=remote.FileState(hashlib.sha256(dropin).hexdigest(), 0o644,
                                              "root", "root"))
    base.update(kw)
    return db.DbFacts(**base)


def fresh_facts(**kw) -> db.DbFacts:
    """A fresh apt install: nothing of ours, bind 127.0.0.1, 151 connections."""
    base = dict(server=MARIADB, bind_running="127.0.0.1", max_conn_running=151,
                bind_configured="127.0.0.1", max_conn_configured=None,
                bind_files=[("/etc/mysql/mariadb.conf.d/50-server.cnf", "127.0.0.1")])
    base.update(kw)
    return db.DbFacts(**base)


def settings_of(p) -> str:
    """The script the plan's settings action runs (drop-in, old drop-in, restart)."""
    st = next(a.run.__self__ for a in p.actions
              if isinstance(getattr(a.run, "__self__", None), db.Settings))
    return st.script()


# --------------------------------------------------------------------------- tables / scripts


def script_tables(path: Path) -> set[str]:
    text = "\n".join(l for l in path.read_text().splitlines() if not l.lstrip().startswith("--"))
    return {m.upper() for m in re.findall(r"create\s+table\s+(?:if\s+not\s+exists\s+)?`?(\w+)",
                                          text, re.I)}


def test_table_sets_match_the_shipped_scripts():
    srv = MARIADB
    assert script_tables(SHARED / db.scripts_for("kernel", srv, "6.6.0")[0]) == db.KERNEL_TABLES
    assert len(db.KERNEL_TABLES) == 40  # REG_ASSOCIATIONS is commented out
    assert script_tables(SHARED / db.scripts_for("bps", srv, "6.6.0")[0]) == db.BPS_TABLES
    assert len(db.BPS_TABLES) == 41
    acts = db.scripts_for("activiti", srv, "6.6.0")
    counts = [len(script_tables(SHARED / s)) for s in acts]
    assert counts == [13, 8, 4, 1, 1]
    assert set().union(*(script_tables(SHARED / s) for s in acts)) == db.ACTIVITI_TABLES
    old = db.Server("MySQL", (5, 6, 3))
    assert set().union(*(script_tables(SHARED / s) for s in db.scripts_for("activiti", old,
                                                                            "6.6.0"))) \
        == db.ACTIVITI_TABLES
    v65 = SHARED / "variants/ei-6.5.0"
    assert script_tables(v65 / "dbscripts/mysql5.7.sql") == db.KERNEL_TABLES
    assert script_tables(v65 / "dbscripts/mysql.sql") == db.KERNEL_TABLES


def test_script_choice_by_server_and_ei_version():
    base = "wso2/business-process/dbscripts/bps/bpmn/create/activiti."
    assert db.scripts_for("kernel", MARIADB, "6.6.0") == ["dbscripts/mysql.sql"]
    assert db.scripts_for("kernel", db.Server("MySQL", (5, 7, 30)), "6.5.0") == \
        ["dbscripts/mysql5.7.sql"]
    assert db.scripts_for("kernel", db.Server("MySQL", (8, 0, 36)), "6.5.0") == \
        ["dbscripts/mysql5.7.sql"]
    assert db.scripts_for("kernel", MARIADB, "6.5.0") == ["dbscripts/mysql5.7.sql"]
    assert db.scripts_for("kernel", db.Server("MySQL", (5, 6, 40)), "6.5.0") == \
        ["dbscripts/mysql.sql"]
    assert db.scripts_for("bps", MARIADB, "6.6.0") == \
        ["wso2/business-process/dbscripts/bps/bpel/create/mysql.sql"]
    assert db.scripts_for("activiti", db.Server("MySQL", (8, 0, 36)), "6.6.0") == [
        base + "mysql.create.engine.sql", base + "mysql.create.history.sql",
        base + "mysql.create.identity.sql", base + "mysql.create.substitute.sql",
        "wso2/business-process/dbscripts/bps/bpmn/metadata/create/mysql.sql"]
    old = db.scripts_for("activiti", db.Server("MySQL", (5, 6, 3)), "6.6.0")
    assert old[:4] == [base + "mysql55.create.engine.sql", base + "mysql55.create.history.sql",
                       base + "mysql.create.identity.sql", base + "mysql55.create.substitute.sql"]


def test_charset_and_server_levels():
    assert MARIADB.charset == "utf8mb4" and MARIADB.multi_bind
    assert db.Server("MySQL", (5, 6, 51)).charset == "latin1"
    assert db.Server("MySQL", (5, 7, 7)).charset == "utf8mb4"
    assert not db.Server("MySQL", (5, 7, 44)).multi_bind
    assert db.Server.parse("10.11.6-MariaDB-0+deb12u1", "Debian 12").label == "MariaDB 10.11.6"
    assert db.Server.parse("8.0.36", "MySQL Community Server - GPL").label == "MySQL 8.0.36"


def test_classify():
    assert db.classify(None, "bps") == ("missing", sorted(db.BPS_TABLES))
    assert db.classify({"OTHER"}, "bps")[0] == "missing"
    assert db.classify(set(db.BPS_TABLES), "bps") == ("complete", [])
    st, missing = db.classify({"ODE_SCHEMA_VERSION", "ode_job"}, "bps")
    assert st == "partial" and len(missing) == 39 and "ODE_JOB" not in missing


def test_native_hash_is_mysql_password():
    # SELECT PASSWORD('password') on MariaDB / MySQL 5.x
    assert db.native_hash("password") == "*2470C0C06DEE42FD1618BB99005ADCA2EC9D1E19"


def test_bind_ok():
    assert db.bind_ok(None, "10.0.0.3") and db.bind_ok("0.0.0.0", "10.0.0.3")
    assert db.bind_ok("127.0.0.1,10.0.0.3", "10.0.0.3") and db.bind_ok("*", "x")
    assert not db.bind_ok("127.0.0.1", "10.0.0.3")
    assert not db.bind_ok("10.0.0.4", "10.0.0.3")


# --------------------------------------------------------------------------- plan


@pytest.fixture
def rinv(tmp_path):
    """The inventory with the DB server restart allowed (as the lab's hosts.toml)."""
    return make_inv(tmp_path, database={"allow_server_restart": True})


def test_plan_fresh_server(rinv):
    inv = rinv
    p = db.plan_db(fresh_facts(), inv)
    assert not p.errors and not p.problems
    assert p.dropin.path == "/etc/mysql/mariadb.conf.d/zz-bps-deploy.cnf"
    assert b"bind-address = 127.0.0.1,192.0.2.3\n" in p.dropin.content
    assert b"max_connections = 720\n" in p.dropin.content  # 2 x 300 + 20%
    assert p.restart
    sql = "\n".join(p.admin_sql)
    assert "SET GLOBAL max_connections = 720;" in sql
    for name in ("WSO2_USER_DB", "REGISTRY_DB", "REGISTRY_LOCAL1", "REGISTRY_LOCAL2", "BPS_DS",
                 "ACTIVITI_DB"):
        assert f"CREATE DATABASE IF NOT EXISTS `{name}` CHARACTER SET utf8mb4;" in sql
    # each node: the shared databases and its own local registry, nothing wider
    for addr, own, other in (("192.0.2.11", "REGISTRY_LOCAL1", "REGISTRY_LOCAL2"),
                             ("192.0.2.12", "REGISTRY_LOCAL2", "REGISTRY_LOCAL1")):
        for name in ("WSO2_USER_DB", "REGISTRY_DB", own, "BPS_DS", "ACTIVITI_DB"):
            assert f"GRANT ALL PRIVILEGES ON `{name}`.* TO 'wso2bps'@'{addr}';" in sql
        assert f"ON `{other}`.* TO 'wso2bps'@'{addr}'" not in sql
    assert "REVOKE" not in sql
    h = db.native_hash(APP_PW)
    assert f"CREATE USER 'wso2bps'@'192.0.2.11' IDENTIFIED BY PASSWORD '{h}';" in sql
    assert "'%'" not in sql and "IDENTIFIED BY '" not in sql
    assert APP_PW not in sql  # only the hash ever leaves this machine
    assert [ld.db for ld in p.loads] == list(db.db_kinds(inv))
    assert not any(ld.drop_first for ld in p.loads)
    # statements in the order the server needs them: databases, users, then grants
    first_grant = next(i for i, s in enumerate(p.admin_sql) if s.startswith("GRANT"))
    assert all(not s.startswith("CREATE DATABASE") for s in p.admin_sql[first_grant:])


def test_plan_no_change(inv):
    p = db.plan_db(done_facts(inv), inv)
    assert p.empty and not p.errors and not p.problems and not p.restart
    assert p.changes == [] and p.admin_sql == [] and p.loads == []


def test_plan_mysql8_syntax(rinv):
    inv = rinv
    srv = db.Server("MySQL", (8, 0, 36))
    p = db.plan_db(fresh_facts(server=srv, conf_dir="/etc/mysql/mysql.conf.d",
                               service="mysql", bind_files=[
                                   ("/etc/mysql/mysql.conf.d/mysqld.cnf", "127.0.0.1")]), inv)
    sql = "\n".join(p.admin_sql)
    h = db.native_hash(APP_PW)
    assert f"CREATE USER 'wso2bps'@'192.0.2.11' IDENTIFIED WITH mysql_native_password AS '{h}';" \
        in sql
    assert "GRANT ALL PRIVILEGES ON `BPS_DS`.* TO 'wso2bps'@'192.0.2.11';" in sql
    assert not re.search(r"GRANT[^;]*IDENTIFIED", sql)
    # read after Ubuntu's mysqld.cnf (bind-address = 127.0.0.1) in the same folder
    assert p.dropin.path == "/etc/mysql/mysql.conf.d/zz-bps-deploy.cnf"
    assert db.later_in_dir("/etc/mysql/mysql.conf.d/mysqld.cnf", p.dropin.path) is False
    assert not p.errors and p.restart


def test_plan_mysql57_single_bind_and_56_latin1(rinv):
    inv = rinv
    p = db.plan_db(fresh_facts(server=db.Server("MySQL", (5, 7, 44))), inv)
    assert b"bind-address = 192.0.2.3\n" in p.dropin.content
    p = db.plan_db(fresh_facts(server=db.Server("MySQL", (5, 6, 51))), inv)
    assert "CREATE DATABASE IF NOT EXISTS `BPS_DS` CHARACTER SET latin1;" in p.admin_sql


def test_plan_password_changed(inv):
    users = {"192.0.2.11": False, "192.0.2.12": True}
    p = db.plan_db(done_facts(inv, users=users), inv)
    h = db.native_hash(APP_PW)
    assert p.admin_sql == [f"ALTER USER 'wso2bps'@'192.0.2.11' IDENTIFIED BY PASSWORD '{h}';"]
    assert p.changes == ["set the password of 'wso2bps'@'192.0.2.11' (hosts.toml has a "
                         "different one)"]


def test_plan_missing_grant_and_other_accounts(inv):
    grants = all_grants(inv)
    grants["192.0.2.12"]["BPS_DS"] = {"SELECT"}
    grants["%"] = {"OTHER_DB": {"SELECT"}}
    p = db.plan_db(done_facts(inv, grants=grants,
                              users={"192.0.2.11": True, "192.0.2.12": True, "%": True}), inv)
    assert p.admin_sql == ["GRANT ALL PRIVILEGES ON `BPS_DS`.* TO 'wso2bps'@'192.0.2.12';"]
    notes = " ".join(p.warnings)
    assert "'wso2bps'@'%'" in notes and "OTHER_DB" in notes  # reported, left alone


def test_plan_partial_is_reported_never_dropped(inv):
    f = done_facts(inv)
    f.tables["BPS_DS"] = {"ODE_SCHEMA_VERSION", "ODE_JOB", "TASK_ATTACHMENT"}
    p = db.plan_db(f, inv)
    assert p.loads == [] and not any("DROP" in s for s in p.admin_sql)
    assert len(p.problems) == 1
    msg = p.problems[0]
    assert "BPS_DS is partial (3 of 41 tables" in msg and "HT_COORDINATION_DATA" in msg
    assert "ODE_JOB," not in msg and "--drop BPS_DS" in msg


def test_plan_drop_only_the_named_partial(inv):
    f = done_facts(inv)
    f.tables["BPS_DS"] = {"ODE_SCHEMA_VERSION"}
    f.tables["ACTIVITI_DB"] = {"ACT_GE_PROPERTY"}
    p = db.plan_db(f, inv, drop=("BPS_DS",))
    assert [(ld.db, ld.drop_first) for ld in p.loads] == [("BPS_DS", True)]
    assert len(p.problems) == 1 and "ACTIVITI_DB is partial" in p.problems[0]


def test_plan_drop_refuses_complete_and_unknown(inv):
    p = db.plan_db(done_facts(inv), inv, drop=("BPS_DS",))
    assert p.errors and "refusing to drop a complete database" in p.errors[0]
    p = db.plan_db(done_facts(inv), inv, drop=("mysql",))
    assert p.errors and "not one of this cluster's databases" in p.errors[0]
    with pytest.raises(db.Abort):
        db._validate_drop(inv, ("mysql",))


def test_plan_settings_only_when_needed(inv):
    # all interfaces and plenty of connections configured elsewhere: no drop-in, no restart
    f = done_facts(inv, dropin=None, dropin_state=None, bind_running="0.0.0.0",
                   bind_configured="0.0.0.0", max_conn_configured=2000, max_conn_running=2000)
    p = db.plan_db(f, inv)
    assert p.dropin is None and not p.restart and p.empty
    # only max_connections too low: drop-in with max_connections, SET GLOBAL, no restart
    f = done_facts(inv, dropin=None, dropin_state=None, bind_running="0.0.0.0",
                   bind_configured="0.0.0.0", max_conn_configured=None, max_conn_running=151)
    p = db.plan_db(f, inv)
    assert p.dropin.content == db.render_dropin(None, 720) and not p.restart
    assert p.admin_sql == ["SET GLOBAL max_connections = 720;"]


def test_plan_skip_networking_refused(inv):
    p = db.plan_db(done_facts(inv, skip_networking=True), inv)
    assert p.errors and "skip-networking" in p.errors[0]


def test_local_registry_per_node(tmp_path):
    inv3 = make_inv(tmp_path, nodes=3, database={"allow_server_restart": True})
    p = db.plan_db(fresh_facts(), inv3)
    assert [ld.db for ld in p.loads if ld.kind == "kernel"] == [
        "WSO2_USER_DB", "REGISTRY_DB", "REGISTRY_LOCAL1", "REGISTRY_LOCAL2", "REGISTRY_LOCAL3"]
    assert sum(s.startswith("CREATE USER") for s in p.admin_sql) == 3


# --------------------------------------------------------------------------- facts parsing

SQL_OUT = "\n".join([
    "version\t10.11.6-MariaDB-0+deb12u1\tDebian 12",
    "db\tBPS_DS\tutf8mb4",
    "table\tBPS_DS\tODE_JOB",
    "table\tBPS_DS\tODE_SCHEMA_VERSION",
    "user\t10.99.1.11\tmysql_native_password\t1",
    "user\t10.99.1.12\tmysql_native_password\t0",
    "grant\t'wso2bps'@'10.99.1.11'\tBPS_DS\tSELECT",
    "grant\t'wso2bps'@'10.99.1.11'\tBPS_DS\tINSERT",
    "var\tmax_connections\t151",
    "var\tsocket\t/run/mysqld/mysqld.sock",
    "var\tskip_networking\tOFF",
    "var\tbind_address\t127.0.0.1",
    "pwcol\t10.99.1.11\t1",
    "pwcol\t10.99.1.12\t0",
])


def test_parse_facts(inv):
    raw = {"sql": Fact(SQL_OUT, 0),
           "cnf": Fact("--socket=/run/mysqld/mysqld.sock\n--bind-address=127.0.0.1\n"
                       "--max_connections=500", 0),
           "confdir": Fact("/etc/mysql/mariadb.conf.d", 0),
           "dropin:/etc/mysql/mariadb.conf.d": Fact("MISSING", 0),
           "init": Fact("sysv\nmariadb", 0)}
    f = db.parse_db_facts(raw, "db", inv)
    assert f.running and f.server.label == "MariaDB 10.11.6"
    assert f.databases == {"BPS_DS": "utf8mb4"}
    assert f.tables == {"BPS_DS": {"ODE_JOB", "ODE_SCHEMA_VERSION"}}
    assert f.users == {"10.99.1.11": True, "10.99.1.12": False}
    assert f.grants == {"10.99.1.11": {"BPS_DS": {"SELECT", "INSERT"}}}
    assert (f.bind_running, f.max_conn_running, f.skip_networking) == ("127.0.0.1", 151, False)
    assert (f.bind_configured, f.max_conn_configured) == ("127.0.0.1", 500)
    assert f.dropin is None and f.conf_dir == "/etc/mysql/mariadb.conf.d"
    assert (f.init, f.service) == ("sysv", "mariadb")
    assert db.restart_command(f) == "service mariadb restart"
    f.init = "systemd"
    assert db.restart_command(f) == "systemctl restart mariadb"


def test_parse_facts_existing_dropin(inv):
    import base64
    content = db.render_dropin("127.0.0.1,10.0.0.3", 1000)
    raw = {"sql": Fact(SQL_OUT, 0), "cnf": Fact("", 0), "init": Fact("systemd\nmysql", 0),
           "confdir": Fact("/etc/mysql/mariadb.conf.d", 0),
           "dropin:/etc/mysql/mariadb.conf.d": Fact(
               "644 root root " + hashlib.sha256(content).hexdigest() + "\n"
               + base64.b64encode(content).decode(), 0)}
    f = db.parse_db_facts(raw, "db", inv)
    assert f.dropin == content and f.dropin_state.mode == 0o644
    assert f.bind_configured is None  # not set anywhere: all interfaces


def test_server_down_message(inv):
    out = ("ERROR 2002 (HY000): Can't connect to local server through socket "
           "'/run/mysqld/mysqld.sock' (2)")
    f = db.parse_db_facts({"sql": Fact(out, 1), "cnf": Fact("", 0),
                           "confdir": Fact("", 0), "init": Fact("sysv", 0)}, "db", inv)
    assert not f.running
    assert f.error == "database server on db is not running (socket /run/mysqld/mysqld.sock)"


def test_admin_login_refused_message(inv):
    out = "ERROR 1698 (28000): Access denied for user 'root'@'localhost'"
    f = db.parse_db_facts({"sql": Fact(out, 1)}, "db", inv)
    assert not f.running and "refused the admin login" in f.error
    assert "database.admin_user" in f.error


# --------------------------------------------------------------------------- scripts / secrets


def test_scripts_keep_secrets_off_argv(tmp_path):
    inv = make_inv(tmp_path, database={"admin_user": "dbadmin"},
                   secrets={"db_admin_password": {"file": "db_admin_password"}})
    h = db.native_hash(APP_PW)
    probes = db.db_probes(inv, h)
    sql = probes["sql"]
    admin_pw = "s3cret-db_admin_password"
    # the admin password is only in base64, decoded into a here-document on fd 3: no file
    assert admin_pw not in sql and APP_PW not in sql
    assert sql.startswith(db.client_prelude(inv))
    assert cnf_of(db.client_prelude(inv)) == \
        f'[client]\nuser="dbadmin"\npassword="{admin_pw}"\n'
    assert "mktemp" not in sql and "/tmp" not in sql
    # the client's command line: only the option file's name
    assert re.search(r'"\$BPS_CLIENT" --defaults-extra-file=/dev/fd/3 --connect-timeout=10 '
                     r'"\$@" 3<<__BPS_CNF__', sql)
    # the app password itself never leaves: only its hash, compared on the server
    assert f"authentication_string = {db.lit(h)}" in db.sql.facts_sql(inv, h)
    assert h in sql and APP_PW not in sql


def test_default_admin_is_root_socket(inv):
    assert cnf_of(db.client_prelude(inv)) == '[client]\nuser="root"\n'


def cnf_of(script: str) -> str:
    """The option file bps_sql() hands the client on fd 3, as the shell builds it."""
    import subprocess
    r = subprocess.run(["sh", "-c", "client() { cat <&3; }\n" + script +
                        "\nBPS_CLIENT=client; bps_sql </dev/null"], capture_output=True,
                       text=True, env={"PATH": "/usr/bin:/bin"})
    return r.stdout


def test_option_file_reaches_the_client_on_fd_3_and_no_file_is_written(inv, tmp_path):
    """Case 11: nothing on the DB host holds the admin password, so a Ctrl-C cannot leave it."""
    import subprocess
    script = "client() { cat <&3; }\n" + db.client_prelude(inv) + "\nBPS_CLIENT=client"
    work = tmp_path / "work"
    work.mkdir()
    r = subprocess.run(["sh", "-c", script + "\nbps_sql; bps_sql"], capture_output=True,
                       text=True, cwd=work, env={"PATH": "/usr/bin:/bin", "TMPDIR": str(work)})
    assert r.stdout == '[client]\nuser="root"\n' * 2 and list(work.iterdir()) == []


def test_admin_user_without_password_is_refused(tmp_path):
    from tasks.engine.inventory import InventoryError
    with pytest.raises(InventoryError, match="secrets.db_admin_password: not set, but "
                                             "database.admin_user is"):
        make_inv(tmp_path, database={"admin_user": "dbadmin"})  # at load, before any host


def test_load_script_one_client_per_database(inv):
    p = db.plan_db(fresh_facts(), inv)
    sources = {s: f"CREATE TABLE T_{i} (A INT);\n".encode()
               for i, s in enumerate(db.needed_scripts(p))}
    script = db.load_script(inv, p.loads, sources)
    assert script.count('bps_sql --database="$DB"') == len(p.loads) == 6
    # Activiti: one invocation, scripts in order engine -> history -> identity -> substitute
    # -> metadata
    act = script.split("DB=ACTIVITI_DB\n", 1)[1].split("@@LOAD", 1)[0]
    order = [sources[s].decode().strip() for s in p.loads[-1].scripts]
    assert [act.index(x) for x in order] == sorted(act.index(x) for x in order)


def test_settings_script_restart_and_rollback(rinv):
    inv = rinv
    f = fresh_facts()
    p = db.plan_db(f, inv)
    s = settings_of(p)
    assert "RESTART=1\n" in s and "INIT=sysv\nSERVICE=mariadb\n" in s
    assert 'service "$SERVICE" restart' in s and "previous settings restored" in s
    assert "zz-bps-deploy.cnf" in s
    # the bind check runs before the restart, inside the validation (a failure restores)
    body = s.split("settings_check() {", 1)[1]
    assert body.index("bind_check") < body.index("restart_server </dev/null")
    assert "vout=$( settings_check 2>&1 )" in s


def test_task_registered():
    from tasks import ns
    assert "db-init" in ns.task_names


def test_known_script_checksums_are_the_shipped_scripts():
    """Scripts read from a node are loaded only if they are WSO2's, byte for byte: the table
    holds exactly the fixtures' scripts (6.6.0 and the 6.5.0 variants)."""
    shipped = {hashlib.sha256(f.read_bytes()).hexdigest()
               for f in SHARED.rglob("*.sql") if "reference" not in f.parts
               and "drop" not in f.parts and "truncate" not in f.parts}
    assert shipped == db.WSO2_SCRIPT_SHA256
