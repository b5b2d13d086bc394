"""db-init's apply path over fake sessions (tests/fakes.py): a real Run, planner and runner,
without root: a fresh server, a no-op, check mode, --diff, a failing SQL statement."""
from __future__ import annotations

import base64
import shlex

import pytest

from tasks.steps import db, hosts_file
from tests.fakes import fake_run, output
from tests.paths import WSO2_FILES
from tests.unit.inv_factory import make_inv

EI = "/opt/wso2ei-6.6.0"
DROPIN = "/etc/mysql/mariadb.conf.d/zz-bps-deploy.cnf"
HOSTS = b"127.0.0.1\tlocalhost\n"


def sql_out(inv, *, done: bool) -> str:
    """The fact read's SQL answer: a fresh apt install, or everything as db-init leaves it."""
    lines = ["version\t10.11.6-MariaDB-0+deb12u1\tDebian 12",
             "var\tmax_connections\t" + ("1000" if done else "151"),
             "var\tskip_networking\t0",
             "var\tbind_address\t" + ("127.0.0.1,192.0.2.3" if done else "127.0.0.1")]
    if done:
        for name, kind in db.db_kinds(inv).items():
            lines.append(f"db\t{name}\tutf8mb4")
            lines += [f"table\t{name}\t{t}" for t in sorted(db.KIND_TABLES[kind])]
        for n in inv.nodes:
            lines.append(f"user\t{n.address}\tmysql_native_password\t1")
            for name in db.node_databases(inv, n.index):
                lines += [f"grant\t'wso2bps'@'{n.address}'\t{name}\t{p}"
                          for p in sorted(db.REQUIRED_PRIVS)]
    return "\n".join(lines) + "\n"


def load_out(inv) -> str:
    """What the load script prints when every database loaded."""
    out = [f"@@LOAD {name} rc=0" for name in db.db_kinds(inv)]
    for name, kind in db.db_kinds(inv).items():
        out += [f"table\t{name}\t{t}" for t in sorted(db.KIND_TABLES[kind])]
    return "\n".join(out) + "\n"


def lab(inv, monkeypatch, *, done: bool, check: bool = False, diff: bool = False):
    """Fake hosts: the DB server (fresh or done), nodes with WSO2's scripts and /etc/hosts."""
    run, hosts = fake_run(inv, monkeypatch, check=check, diff=diff)
    dbh = hosts["db"]
    dbh.answer(r"VERSION\(\), @@version_comment", stdout=sql_out(inv, done=done))
    dbh.answer(r"^print_defaults$", stdout="--bind-address=" + (
        "127.0.0.1,192.0.2.3 --max_connections=1000" if done else "127.0.0.1"))
    dbh.answer(r"^DIRS=", stdout="/etc/mysql/mariadb.conf.d\n")
    dbh.answer(r"for s in mariadb mysql mysqld", stdout="systemd\nmariadb\n")
    dbh.answer(r"systemctl is-enabled|is-enabled", stdout="systemd mariadb enabled\n")
    dbh.answer(r"^echo \"@@LOAD \$DB start\"", stdout=load_out(inv))
    binds = "/etc/mysql/mariadb.conf.d/50-server.cnf\tmysqld\t127.0.0.1\n"
    if done:
        dbh.files[DROPIN] = db.render_dropin("127.0.0.1,192.0.2.3", 1000)
        binds += f"{DROPIN}\tmysqld\t127.0.0.1,192.0.2.3\n"
    dbh.answer(r"bind\[-_\]address\[\[:space:\]\]\*=", stdout=binds)
    for n in inv.nodes:
        h = hosts[n.name]
        h.files["/etc/hosts"] = (hosts_file.plan_hosts(HOSTS, None, inv).actions[0].files[0]
                                 .spec.content if done else HOSTS)
        for kind in ("kernel", "bps", "activiti"):
            for p in db.scripts_for(kind, db.Server("MariaDB", (10, 11, 6)), "6.6.0"):
                h.files[f"{EI}/{p}"] = (WSO2_FILES / p).read_bytes()
    return run, hosts


@pytest.fixture
def inv(tmp_path):
    # db-tls has its own fake-session tests (test_db_tls*); here: the db step alone
    return make_inv(tmp_path, database={"allow_server_restart": True, "tls": False})


def param(script: str, name: str) -> str:
    """A parameter's value as the remote shell sees it (the header is shell-quoted)."""
    lex = shlex.shlex(script[script.index(f"\n{name}=") + 1:], posix=True)
    lex.whitespace_split = True
    return lex.get_token().split("=", 1)[1]


def writes(host) -> list[str]:
    return [s for s in host.scripts if "@@BPS-FACT-BEGIN" not in s]


def test_fresh_server_creates_grants_loads_and_restarts(inv, monkeypatch):
    run, hosts = lab(inv, monkeypatch, done=False)
    assert db.db_step(run) is True
    out = output(run)
    assert "[db] db-init: changed" in out and "mariadb restarted (bind-address changed)" in out
    assert f"create {DROPIN} (bind-address = 127.0.0.1,192.0.2.3" in out
    assert "load mysql.sql into WSO2_USER_DB" in out
    ran = writes(hosts["db"])
    # in order: the settings (drop-in, restart), then ONE admin SQL script, then ONE load
    assert len(ran) == 3, [r[:80] for r in ran]
    assert "settings_end $?" in ran[0] and "RESTART=1" in ran[0]
    sql = param(ran[1], "SQL")
    assert "CREATE USER 'wso2bps'@'192.0.2.11' IDENTIFIED BY PASSWORD '*" in sql
    assert "GRANT ALL PRIVILEGES ON `BPS_DS`.* TO 'wso2bps'@'192.0.2.12';" in sql
    assert sql.split("\n") == run_plan_sql(inv)
    assert ran[2].count('echo "@@LOAD $DB start"') == 6
    assert "CREATE TABLE" in ran[2]  # WSO2's scripts, read from node1 and checked
    # the app password never travels: only its hash, and no output shows the hash either
    app_pw = "s3cret-db_password"
    assert not any(app_pw in s for s in hosts["db"].scripts)
    assert db.native_hash(app_pw) not in out
    # the nodes: one read each (pools and /etc/hosts together), one write of the names block
    for n in inv.nodes:
        assert len(hosts[n.name].scripts) - (n.name == "node1") == 2
        assert f"[{n.name}] etc-hosts: changed" in out
    block = base64.b64decode(writes(hosts["node2"])[0].split("<<'__BPS_EOF__'\n")[1]
                             .split("__BPS_EOF__")[0]).decode()
    assert block == ("127.0.0.1\tlocalhost\n# BEGIN bps-deploy names (managed, do not edit)\n"
                     "192.0.2.2\tei.example.com ui.ei.example.com\n"
                     "192.0.2.3\tcarbondb.example.com\n# END bps-deploy names\n")


def run_plan_sql(inv) -> list[str]:
    """The statements the pure planner put in the actions, for the same facts."""
    f = db.DbFacts(server=db.Server("MariaDB", (10, 11, 6)), bind_running="127.0.0.1",
                   max_conn_running=151, bind_configured="127.0.0.1",
                   bind_files=[("/etc/mysql/mariadb.conf.d/50-server.cnf", "127.0.0.1")],
                   boot_out="systemd mariadb enabled\n", service="mariadb", init="systemd")
    return db.plan_db(f, inv).admin_sql


def test_no_op_runs_nothing(inv, monkeypatch):
    run, hosts = lab(inv, monkeypatch, done=True)
    assert db.db_step(run) is True
    out = output(run)
    assert "[db] db-init: ok: MariaDB 10.11.6 found; databases, users, grants" in out
    # the identity record (steps/membership; `fab deploy` reads it in its preflight), the facts
    assert writes(hosts["db"]) == [] and len(hosts["db"].scripts) == 2
    for n in inv.nodes:
        assert len(hosts[n.name].scripts) == 1  # one read: pools and /etc/hosts
        assert f"[{n.name}] etc-hosts: ok: /etc/hosts already maps" in out


def test_check_mode_lists_the_changes_and_runs_nothing(inv, monkeypatch):
    run, hosts = lab(inv, monkeypatch, done=False, check=True)
    assert db.db_step(run) is True
    out = output(run)
    assert "[db] db-init: changed: would change (check mode)" in out
    assert "~ restart mariadb (it listens on 127.0.0.1 only" in out
    assert "~ create database BPS_DS (character set utf8mb4)" in out
    assert "~ load bps/bpel/create/mysql.sql into BPS_DS" in out
    for h in hosts.values():
        assert writes(h) == []  # fact reads only
    assert "[node1] etc-hosts: changed: would change (check mode)" in out


def test_diff_shows_the_dropin(inv, monkeypatch):
    run, hosts = lab(inv, monkeypatch, done=False, check=True, diff=True)
    db.db_step(run)
    out = output(run)
    assert f"+++ {DROPIN}" in out or DROPIN in out
    assert "+bind-address = 127.0.0.1,192.0.2.3" in out
    assert "+max_connections = 720" in out
    assert "+192.0.2.3\tcarbondb.example.com" in out  # the nodes' names block


def test_failing_sql_is_named_with_host_and_cause(inv, monkeypatch):
    run, hosts = lab(inv, monkeypatch, done=False)
    hosts["db"].answer(r"CREATE USER ", stderr="ERROR 1396 (HY000) at line 9: Operation "
                       "CREATE USER failed for 'wso2bps'@'192.0.2.11'", exit=1)
    hosts["db"].rules.insert(0, hosts["db"].rules.pop())  # before the generic rules
    assert db.db_step(run) is False
    out = output(run)
    assert "[db] db-init: failed:" in out
    assert "the admin SQL failed on db (client exit 1): ERROR 1396" in out
    assert "the statements after the failing one did not run" in out
    assert not any("@@LOAD" in s for s in writes(hosts["db"]))  # no load after a failed SQL
    assert "[node1]" not in out.split("RECAP")[0].split("db-init: failed")[1]  # nodes untouched


def test_a_script_that_is_not_wso2s_is_refused_before_any_change(inv, monkeypatch):
    run, hosts = lab(inv, monkeypatch, done=False)
    hosts["node1"].files[f"{EI}/dbscripts/mysql.sql"] = b"DROP DATABASE mysql;\n"
    assert db.db_step(run) is False
    out = output(run)
    assert "is not WSO2's shipped script" in out
    assert writes(hosts["db"]) == []  # nothing written, nothing restarted
