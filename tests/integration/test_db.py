"""`fab db-init` against the real lab (MariaDB 10.11 as a fresh apt install: 127.0.0.1 only).

The tests run in file order and share the lab: first load, second run, partial, server down.
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import threading
import time

import pytest

from tests.paths import FAB, REPO, WSO2_FILES
DBS = ["WSO2_USER_DB", "REGISTRY_DB", "REGISTRY_LOCAL1", "REGISTRY_LOCAL2", "BPS_DS",
       "ACTIVITI_DB"]
EXPECTED = {"WSO2_USER_DB": 40, "REGISTRY_DB": 40, "REGISTRY_LOCAL1": 40,
            "REGISTRY_LOCAL2": 40, "BPS_DS": 41, "ACTIVITI_DB": 13 + 8 + 4 + 1 + 1}


def fab(lab, *args, sample_ps: bool = False, timeout: int = 300):
    """Run `fab db-init ARGS` for the lab; optionally sample every host's process list."""
    env = dict(os.environ, FABRIC_INVENTORY=str(lab.hosts_toml))
    proc = subprocess.Popen([*FAB, "db-init", *args], cwd=REPO, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    samples: list[str] = []
    if sample_ps:
        def sampler():
            while proc.poll() is None:
                for h in ("db", "node1", "node2"):
                    r = lab.exec(h, "ps -eo args", timeout=10)
                    samples.append(r.stdout)
        t = threading.Thread(target=sampler, daemon=True)
        t.start()
    out, _ = proc.communicate(timeout=timeout)
    if sample_ps:
        t.join(15)
    return proc.returncode, out, samples


def sql(lab, query: str, db: str = "") -> str:
    r = lab.exec("db", ["mariadb", "-N", "-B", "-e", query] + ([db] if db else []))
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def counts(lab) -> dict[str, int]:
    names = ", ".join(f"'{d}'" for d in DBS)
    out = sql(lab, "SELECT TABLE_SCHEMA, COUNT(*) FROM information_schema.TABLES WHERE "
                   f"TABLE_SCHEMA IN ({names}) GROUP BY TABLE_SCHEMA")
    return {l.split("\t")[0]: int(l.split("\t")[1]) for l in out.splitlines() if l}


def app_query(lab, host: str, target: str, db: str):
    """Connect as the app user from `host`; the password goes on stdin as an option file."""
    cnf = f"[client]\nuser=wso2bps\npassword={lab.secret('db_password')}\n"
    return lab.exec(host, ["mariadb", "--defaults-extra-file=/dev/stdin", "-h", target,
                           "--connect-timeout=5", "-N", "-B", "-e", "SELECT DATABASE()", db],
                    input=cnf, timeout=30)


@pytest.fixture(scope="module")
def lab(lab_factory):
    """This module's own lab (LAB_INDEX+5), so other modules' state cannot leak in."""
    return lab_factory(int(os.environ.get("LAB_INDEX", "7")) + 5, nodes=2)


@pytest.fixture(scope="module")
def first(lab):
    """The first run on the fresh lab, with the hosts' process lists sampled during it."""
    t = time.monotonic()
    rc, out, samples = fab(lab, sample_ps=True)
    return rc, out, samples, time.monotonic() - t


def test_first_run_creates_and_loads(lab, first):
    rc, out, samples, took = first
    assert rc == 0, out
    assert "[db] db-init: changed: mariadb restarted (bind-address changed)" in out
    assert "MariaDB 10.11" in out and "SQL statement(s) run" in out
    assert "mariadb restarted (bind-address changed)" in out
    assert counts(lab) == EXPECTED
    assert sql(lab, "SELECT VALUE_ FROM ACT_GE_PROPERTY WHERE NAME_='schema.version'",
               "ACTIVITI_DB") == "5.21.0.0"
    # the server now listens on its own address too, with enough connections: 2 nodes x 300
    # pooled connections (WSO2's shipped pool sizes; EI_HOME is there, not yet configured)
    # + 20% headroom
    assert sql(lab, "SELECT @@global.max_connections") == "720"
    assert "10.99." in sql(lab, "SELECT @@global.bind_address")
    # one account per node address, never '%'
    hosts = sql(lab, "SELECT Host FROM mysql.user WHERE User='wso2bps' ORDER BY Host").split()
    assert hosts == sorted(lab.address(n) for n in lab.node_names)
    for n in lab.node_names:
        assert "carbondb.mysql-wso2.com" in lab.exec(n, "cat /etc/hosts").stdout


def test_no_password_in_output_logs_or_process_lists(lab, first):
    rc, out, samples, took = first
    secrets = [lab.secret("db_password")]
    pw_hash = "*" + hashlib.sha1(hashlib.sha1(secrets[0].encode()).digest()).hexdigest().upper()
    logs = "".join(p.read_text() for p in (lab.run_dir / "logs").glob("run-*.log"))
    assert samples and any("sh -s" in s for s in samples)  # we did see our commands run
    for secret in secrets + [pw_hash]:
        assert secret not in out
        assert secret not in logs
        assert not any(secret in s for s in samples)


def test_app_user_reaches_dbs_from_nodes_by_name_but_not_from_lb(lab, first):
    for i, n in enumerate(lab.node_names, 1):
        for db in DBS:
            r = app_query(lab, n, "carbondb.mysql-wso2.com", db)
            if db.startswith("REGISTRY_LOCAL") and db != f"REGISTRY_LOCAL{i}":
                # another node's local registry: not granted
                assert r.returncode != 0 and "Access denied" in r.stderr, (n, db, r.stdout)
            else:
                assert r.returncode == 0 and r.stdout.strip() == db, (n, db, r.stderr)
    r = app_query(lab, "lb", lab.address("db"), "BPS_DS")
    assert r.returncode != 0 and "is not allowed to connect" in r.stderr


def test_second_run_changes_nothing_and_keeps_data(lab, first):
    sql(lab, "INSERT INTO UM_DOMAIN (UM_DOMAIN_NAME, UM_TENANT_ID) VALUES ('LABTEST', 77)",
        "WSO2_USER_DB")
    rc, out, _ = fab(lab)
    assert rc == 0, out
    body = out.split("DB-INIT (")[0]
    assert "load " not in body and "restart" not in body and "changed" not in body
    assert "[db] db-init: ok: MariaDB 10.11" in body
    for n in lab.node_names:
        assert f"[{n}] etc-hosts: ok:" in body
    assert sql(lab, "SELECT COUNT(*) FROM UM_DOMAIN WHERE UM_DOMAIN_NAME='LABTEST'",
               "WSO2_USER_DB") == "1"
    assert counts(lab) == EXPECTED


def test_check_mode_on_a_done_lab_says_ok(lab, first):
    rc, out, _ = fab(lab, "--check", "--diff")
    assert rc == 0 and "[db] db-init: ok: MariaDB 10.11" in out


def test_interrupted_load_reported_partial_and_never_dropped(lab, first):
    # simulate a load killed part way: the client dies after the first statements
    sql(lab, "DROP DATABASE REGISTRY_LOCAL2; CREATE DATABASE REGISTRY_LOCAL2")
    script = (WSO2_FILES / "dbscripts/mysql.sql").read_text()
    cut = script.index("CREATE TABLE IF NOT EXISTS REG_RESOURCE (")
    r = lab.exec("db", ["mariadb", "REGISTRY_LOCAL2"], input=script[:cut])
    assert r.returncode == 0, r.stderr
    sql(lab, "INSERT INTO REG_LOG (REG_PATH, REG_USER_ID, REG_LOGGED_TIME, REG_ACTION, "
             "REG_TENANT_ID) VALUES ('/keep', 'u', NOW(), 1, 0)", "REGISTRY_LOCAL2")
    before = counts(lab)["REGISTRY_LOCAL2"]
    assert 0 < before < 40

    rc, out, _ = fab(lab)
    assert rc != 0
    assert "REGISTRY_LOCAL2 is partial" in out and "REG_RESOURCE," in out
    assert "UM_USER" in out and "--drop REGISTRY_LOCAL2" in out
    assert counts(lab)["REGISTRY_LOCAL2"] == before  # nothing dropped, nothing loaded
    assert sql(lab, "SELECT COUNT(*) FROM REG_LOG WHERE REG_PATH='/keep'",
               "REGISTRY_LOCAL2") == "1"

    # --drop must name a partial database: a complete one is refused, nothing touched
    rc, out, _ = fab(lab, "--drop", "BPS_DS")
    assert rc != 0 and "refusing to drop a complete database" in out
    assert counts(lab) == {**EXPECTED, "REGISTRY_LOCAL2": before}

    rc, out, _ = fab(lab, "--drop", "REGISTRY_LOCAL2")
    assert rc == 0, out
    assert "DROP partial database REGISTRY_LOCAL2" in out
    assert counts(lab) == EXPECTED


def test_server_down_fails_fast_and_touches_no_node(lab, first):
    stamp = {n: lab.exec(n, "stat -c %Y.%i /etc/hosts").stdout for n in lab.node_names}
    r = lab.exec("db", "service mariadb stop", timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    try:
        t = time.monotonic()
        rc, out, _ = fab(lab)
        took = time.monotonic() - t
        assert rc != 0
        assert "database server on db is not running (socket /run/mysqld/mysqld.sock)" in out
        assert "[node1]" not in out and "[node2]" not in out
        assert took < 15
        assert {n: lab.exec(n, "stat -c %Y.%i /etc/hosts").stdout
                for n in lab.node_names} == stamp
    finally:
        r = lab.exec("db", "service mariadb start", timeout=90)
        assert r.returncode == 0, r.stdout + r.stderr
