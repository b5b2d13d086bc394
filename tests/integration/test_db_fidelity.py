"""The database as a real product would be: restart consent, a config file that sets the bind
address back after ours, grants no wider than each node needs, max_connections from the pools.

One lab (LAB_INDEX+12, 2 nodes); the tests run in file order and build on each other.
"""
from __future__ import annotations

import os

import pytest

from tests.integration.helpers import curl, fab, out, served_by, node_pids, noop_deploy

BASE = int(os.environ.get("LAB_INDEX", "7"))
CONF_D = "/etc/mysql/mariadb.conf.d"
DROPIN = f"{CONF_D}/zz-bps-deploy.cnf"
LOCAL = f"{CONF_D}/zzzz-local.cnf"  # sorts after ours: as Ubuntu's mysqld.cnf after a 60-...


@pytest.fixture(scope="module")
def flab(lab_factory):
    return lab_factory(BASE + 12, nodes=2)


def sql(lab, query: str) -> str:
    r = lab.exec("db", ["mariadb", "-N", "-B", "-e", query])
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def app_query(lab, host: str, db: str):
    """Connect as the app user from `host` (its own address); password on stdin, never argv."""
    cnf = f"[client]\nuser=wso2bps\npassword={lab.secret('db_password')}\n"
    return lab.exec(host, ["mariadb", "--defaults-extra-file=/dev/stdin", "-h",
                           lab.address("db"), "--connect-timeout=5", "-N", "-B", "-e",
                           "SELECT DATABASE()", db], input=cnf, timeout=30)


def server_pid(lab) -> str:
    return lab.exec("db", "pgrep -x mariadbd || pgrep -x mysqld").stdout.strip()


def db_state(lab) -> tuple:
    """What a refused run must not change on the DB host."""
    files = lab.exec("db", "ls -la --time-style=+%s /etc/mysql/mariadb.conf.d; "
                           "sha256sum /etc/mysql/mariadb.conf.d/*").stdout
    return files, sql(lab, "SHOW DATABASES"), server_pid(lab), \
        sql(lab, "SELECT @@global.bind_address, @@global.max_connections")


def test_restart_refused_without_consent_changes_nothing(flab):
    toml = flab.run_dir / "hosts-no-restart.toml"
    flab.write_hosts_toml(toml, database={"allow_server_restart": None})
    before = db_state(flab)
    r = fab(toml, "db-init")
    text = out(r)
    assert r.returncode != 0, text
    a = flab.address("db")
    assert (f"[db] db-init: failed: MariaDB 10.11" in text and "nothing changed: mariadb must be "
            f"restarted to listen on {a} (it listens on 127.0.0.1 only), and [database] "
            "allow_server_restart is not true" in text), text
    # exactly what it would change: the drop-in, line by line, and the restart
    assert f"[db]     [mysqld]\n[db]     bind-address = 127.0.0.1,{a}\n" \
           "[db]     max_connections = 720\n" in text, text
    assert f"would write {DROPIN}:" in text and "then restart mariadb (service mariadb " \
                                                "restart)" in text
    assert db_state(flab) == before
    assert "[node1]" not in text.split("DB-INIT (")[0]  # the nodes are not touched


def test_a_later_config_file_setting_bind_back_stops_before_any_change(flab):
    r = flab.exec("db", f"printf '[mysqld]\\nbind-address = 127.0.0.1\\n' > {LOCAL}")
    assert r.returncode == 0, r.stderr
    before = db_state(flab)
    r = fab(flab, "db-init")
    text = out(r)
    assert r.returncode != 0, text
    assert (f"{LOCAL} sets bind-address = 127.0.0.1 and is read after {DROPIN}, so the server "
            f"would still not listen on {flab.address('db')}; it is not ours" in text), text
    assert db_state(flab) == before  # no drop-in, no database, no restart


def test_deploy_grants_only_what_each_node_needs(flab):
    flab.exec("db", f"rm -f {LOCAL}")
    r = fab(flab, "deploy")
    assert r.returncode == 0, out(r)
    assert "mariadb restarted (bind-address changed)" in r.stdout
    assert flab.address("db") in sql(flab, "SELECT @@global.bind_address")
    # node i: the shared databases and its own REGISTRY_LOCALi, nothing else
    for i, node in enumerate(flab.node_names, 1):
        other = f"REGISTRY_LOCAL{3 - i}"
        for db in ("WSO2_USER_DB", "REGISTRY_DB", f"REGISTRY_LOCAL{i}", "BPS_DS", "ACTIVITI_DB"):
            q = app_query(flab, node, db)
            assert q.returncode == 0 and q.stdout.strip() == db, (node, db, q.stderr)
        q = app_query(flab, node, other)
        assert q.returncode != 0 and f"Access denied for user 'wso2bps'@'{flab.address(node)}' " \
            f"to database '{other}'" in q.stderr, (node, q.stdout, q.stderr)
    _healthy(flab)


def test_max_connections_from_the_pools(flab):
    # 2 nodes x (WSO2_CARBON_DB 50 + WSO2_USER_DB 50 + WSO2REGISTRY_DB 50 + BPS_DS 100 +
    # ACTIVITI_DB 50) = 600, + 20% = 720: in the drop-in and running
    assert sql(flab, "SELECT @@global.max_connections") == "720"
    assert "max_connections = 720" in flab.exec("db", f"cat {DROPIN}").stdout


def test_a_wider_grant_is_revoked_once(flab):
    n1 = flab.address("node1")
    sql(flab, f"GRANT ALL PRIVILEGES ON REGISTRY_LOCAL2.* TO 'wso2bps'@'{n1}'")
    assert app_query(flab, "node1", "REGISTRY_LOCAL2").returncode == 0  # the old, wider state
    r = fab(flab, "db-init", "--check")
    assert r.returncode == 0, out(r)
    assert "[db] db-init: changed: would change (check mode)" in r.stdout, r.stdout
    assert (f"[db]   ~ revoke all on REGISTRY_LOCAL2 from 'wso2bps'@'{n1}' (node1 needs only its "
            "own REGISTRY_LOCAL1)") in r.stdout, r.stdout
    r = fab(flab, "db-init")
    assert r.returncode == 0 and "[db] db-init: changed:" in r.stdout, out(r)
    assert "revoke all on REGISTRY_LOCAL2" in r.stdout
    q = app_query(flab, "node1", "REGISTRY_LOCAL2")
    assert q.returncode != 0 and "Access denied" in q.stderr
    r = fab(flab, "db-init")
    assert r.returncode == 0 and "[db] db-init: ok:" in r.stdout, out(r)
    _healthy(flab)


def test_another_file_winning_is_named_and_never_restarted_in_a_loop(flab):
    """A setting read after our folder (here appended to /etc/mysql/mariadb.cnf, after its
    !includedir lines) and a restart by someone else: the server listens on 127.0.0.1 only. The
    old tool restarted it on every run (its drop-in said the address, the other file won)."""
    main = "/etc/mysql/mariadb.cnf"
    r = flab.exec("db", f"cp -p {main} /root/mariadb.cnf.saved && "
                        f"printf '\\n[mysqld]\\nbind-address = 127.0.0.1\\n' >> {main} && "
                        "service mariadb restart </dev/null >/dev/null 2>&1", timeout=90)
    assert r.returncode == 0, r.stderr
    assert sql(flab, "SELECT @@global.bind_address") == "127.0.0.1"
    pid = server_pid(flab)
    a = flab.address("db")
    for _ in range(2):
        r = fab(flab, "db-init")
        text = out(r)
        assert r.returncode != 0, text
        assert (f"{DROPIN} sets bind-address = 127.0.0.1,{a}, but the server reads "
                f"bind-address = 127.0.0.1 after it, from {main}" in text
                and ": not restarted (it would not help)" in text), text
        assert server_pid(flab) == pid
    # without our drop-in: written, checked with my_print_defaults, rolled back, no restart
    flab.exec("db", f"mv {DROPIN} /root/dropin.saved")
    r = fab(flab, "db-init")
    text = out(r)
    assert r.returncode != 0, text
    assert (f"after writing {DROPIN}, the server would still read bind-address = 127.0.0.1, "
            f"from: {main}" in text and "was rolled back (as before this run) and mariadb was "
            "not restarted" in text), text
    assert flab.exec("db", f"test -e {DROPIN}").returncode != 0
    assert server_pid(flab) == pid
    # the operator puts their file back: one restart, then all well
    flab.exec("db", f"cp -p /root/mariadb.cnf.saved {main}")
    r = fab(flab, "db-init")
    assert r.returncode == 0 and "mariadb restarted (bind-address changed)" in r.stdout, out(r)
    r = fab(flab, "db-init")
    assert r.returncode == 0 and "[db] db-init: ok:" in r.stdout, out(r)
    assert sql(flab, "SELECT @@global.max_connections") == "720"
    _healthy(flab)


def test_noop_deploy_costs_the_same_and_starts_no_jvm(flab, tmp_path):
    pids = node_pids(flab)
    _, cmds = noop_deploy(flab, tmp_path / "stats.json")
    assert cmds["db"] <= 2, cmds
    assert node_pids(flab) == pids and all(pids.values())


def _healthy(lab):
    r = fab(lab, "status")
    assert r.returncode == 0 and "healthy" in r.stdout, out(r)
    seen = {served_by(curl(f"http://{lab.address('lb')}/services/", host="ei.wso2.com")[1])
            for _ in range(6)}
    assert seen == {"node1", "node2"}, seen
