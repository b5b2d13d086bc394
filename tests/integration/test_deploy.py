"""`fab deploy` end to end on a fresh lab: check mode, first deploy, no-op, rolling restart,
a killed deploy, a node failing its health gate, a wrong DB password, adding node3.

One lab for the module; the tests run in file order and build on each other, as an operator's
day would.
"""
from __future__ import annotations

import json
import re
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.integration.helpers import (
    REPO, Load, curl, fab, out, recap_rows, served_by, snapshot, node_pids)

EI = "/opt/wso2ei-6.6.0"
PROFILE = f"{EI}/wso2/business-process"


@pytest.fixture(scope="module")
def dlab(lab_factory):
    # three nodes exist; hosts.toml lists two until the "add node3" test
    lab = lab_factory(int(os.environ.get("LAB_INDEX", "7")) + 1, nodes=3)
    toml2 = lab.run_dir / "hosts-2nodes.toml"
    lab.write_hosts_toml(toml2, nodes=2) if _takes_nodes(lab) else _two_node_toml(lab, toml2)
    lab.toml2 = toml2
    return lab


def _takes_nodes(lab) -> bool:
    import inspect
    return "nodes" in inspect.signature(lab.hosts_dict).parameters


def _two_node_toml(lab, path):
    import tomllib
    from lab.lab import dump_toml
    data = tomllib.loads((lab.run_dir / "hosts.toml").read_text())
    data["nodes"] = data["nodes"][:2]
    path.write_text(dump_toml(data))


def lb_url(lab, port=80):
    return f"http://{lab.address('lb')}:{port}/services/"


def lb_get(lab, https=False):
    if https:
        return curl("https://ei.wso2.com/services/", resolve=f"ei.wso2.com:443:{lab.address('lb')}")
    return curl(lb_url(lab), host="ei.wso2.com")


def test_check_on_fresh_lab_changes_nothing(dlab):
    before = snapshot(dlab)
    r = fab(dlab.toml2, "deploy", "--check")
    text = out(r)
    assert r.returncode == 0, text
    assert snapshot(dlab) == before
    # it lists the work a real deploy does
    for expect in ("create database BPS_DS", "load", "ei.https.conf", "client-truststore.jks",
                   "master-datasources.xml", "start EI", "CHECK MODE"):
        assert expect in text, expect


def test_first_deploy_brings_the_cluster_up(dlab):
    r = fab(dlab.toml2, "deploy")
    assert r.returncode == 0, out(r)
    rows = recap_rows(r.stdout)
    assert rows["node1"]["restarted"] and rows["node2"]["restarted"], r.stdout
    nodes = {served_by(lb_get(dlab)[1]) for _ in range(6)}
    assert nodes == {"node1", "node2"}, nodes
    nodes = {served_by(lb_get(dlab, https=True)[1]) for _ in range(6)}
    assert nodes == {"node1", "node2"}, nodes
    # each node passed the stand-in's checks (it only logs this after all of them)
    for n in ("node1", "node2"):
        log = dlab.exec(n, f"cat {PROFILE}/repository/logs/wso2carbon.log").stdout
        assert "WSO2 Carbon started" in log
    # max_connections from the pools: 2 nodes x 300 + 20%
    assert _max_connections(dlab) == "720"


def _max_connections(lab) -> str:
    r = lab.exec("db", ["mariadb", "-N", "-B", "-e", "SELECT @@global.max_connections"])
    return r.stdout.strip()


def _nginx_master(lab):
    pid = lab.exec("lb", "cat /run/nginx.pid").stdout.strip()
    start = lab.exec("lb", f"ps -o lstart= -p {pid}").stdout.strip()
    workers = lab.exec("lb", f"ps -o pid= --ppid {pid}").stdout.split()
    return pid, start, sorted(workers)


def test_second_deploy_changes_nothing(dlab):
    nginx, pids = _nginx_master(dlab), node_pids(dlab, ("node1", "node2"))
    r = fab(dlab.toml2, "deploy")
    assert r.returncode == 0, out(r)
    rows = recap_rows(r.stdout)
    assert rows and all(row["changed"] == 0 and not row["restarted"] for row in rows.values()), \
        r.stdout
    assert _nginx_master(dlab) == nginx  # same master, same workers: no reload
    assert node_pids(dlab, ("node1", "node2")) == pids


def test_status_is_all_well(dlab):
    r = fab(dlab.toml2, "status")
    assert r.returncode == 0, out(r)
    assert "healthy" in r.stdout
    lines = r.stdout.splitlines()
    i = next(i for i, ln in enumerate(lines) if ln.startswith("host "))
    assert lines[i].split() == ["host", "role", "reachable", "service", "healthy", "pending",
                                "drained", "drift", "cert_days", "schema", "artifacts"]
    table = {ln.split()[0]: ln.split() for ln in lines[i + 1:i + 5]}
    assert set(table) == {"lb", "node1", "node2", "db"}
    assert table["node1"][1:9] == ["node", "yes", "running", "yes", "no", "no", "no", "-"]
    # for machines: JSON on stdout, exit code 0 when all is well
    j = fab(dlab.toml2, "status", "--json")
    assert j.returncode == 0, out(j)
    rows = {row["host"]: row for row in json.loads(j.stdout)}
    assert all(row["ok"] and row["reachable"] for row in rows.values())
    assert rows["db"]["schema"] == "complete" and rows["lb"]["cert_days"] > 300


def test_rolling_restart_loses_no_request(dlab):
    pids = node_pids(dlab, ("node1", "node2"))
    with Load(lb_url(dlab), "ei.wso2.com") as load:
        time.sleep(0.5)
        r = fab(dlab.toml2, "restart", "--rolling")
        time.sleep(0.5)
    print(f"rolling restart: {load.sent} requests in {load.seconds:.1f}s, {load.failed} failed, "
          f"by node {load.by_node}")
    assert r.returncode == 0, out(r)
    assert load.failed == 0, load.failures[:5]
    assert load.sent > 20
    new = node_pids(dlab, ("node1", "node2"))
    assert all(new[n] != pids[n] for n in new), (pids, new)


def test_killed_deploy_is_completed_by_the_next(dlab):
    # a row the cluster wrote must survive everything below
    dlab.exec("db", "mariadb BPS_DS -e \"CREATE TABLE IF NOT EXISTS T_KEEP (v INT); "
                    "INSERT INTO T_KEEP VALUES (42)\"", check=True)
    # drift on both nodes, so the deploy has restarts to do
    for n in ("node1", "node2"):
        dlab.exec(n, f"sed -i 's#<HostName>ei.wso2.com</HostName>#<HostName>drift</HostName>#' "
                     f"{PROFILE}/conf/carbon.xml", check=True)
    env = {**os.environ, "FABRIC_INVENTORY": str(dlab.toml2)}
    p = subprocess.Popen([sys.executable, "-m", "fabric", "deploy"], cwd=REPO, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen = []
    for line in p.stdout:
        seen.append(line)
        if "configure: changed" in line:
            break
    p.send_signal(signal.SIGKILL)
    p.wait(30)
    # both nodes carry the pending mark on the node itself
    for n in ("node1", "node2"):
        assert dlab.exec(n, "cat /var/lib/bps-deploy/pending-restart").stdout.strip(), n
    r = fab(dlab.toml2, "deploy")
    assert r.returncode == 0, out(r)
    assert "stale deploy lock" in out(r)
    rows = recap_rows(r.stdout)
    assert rows["node1"]["restarted"] and rows["node2"]["restarted"], r.stdout
    for n in ("node1", "node2"):
        assert not dlab.exec(n, "cat /var/lib/bps-deploy/pending-restart 2>/dev/null").stdout
    assert "42" in dlab.exec("db", "mariadb -N BPS_DS -e 'SELECT v FROM T_KEEP'").stdout
    r = fab(dlab.toml2, "deploy")
    assert all(row["changed"] == 0 for row in recap_rows(r.stdout).values()), r.stdout


def test_node2_failing_health_stops_the_deploy(dlab):
    # a stray second copy of the driver under another name: the node cannot start
    dlab.exec("node2", f"cp {EI}/lib/mariadb-java-client.jar {EI}/lib/zz-stray-driver.jar && "
                       "echo test >> /var/lib/bps-deploy/pending-restart", check=True)
    r = fab(dlab.toml2, "deploy")
    text = out(r)
    assert r.returncode != 0
    assert "[node2] restart: failed" in text and "last lines of" in text, text
    assert "ERROR" in text  # the stand-in's own reason, from the node's log tail
    # node1 keeps serving through the LB
    for _ in range(4):
        code, body = lb_get(dlab)
        assert code == 200 and served_by(body) == "node1", (code, body)
    dlab.exec("node2", f"rm -f {EI}/lib/zz-stray-driver.jar", check=True)
    r = fab(dlab.toml2, "deploy")
    assert r.returncode == 0, out(r)
    assert {served_by(lb_get(dlab)[1]) for _ in range(6)} == {"node1", "node2"}


def test_wrong_db_password_shows_the_nodes_reason(dlab, tmp_path):
    bad = tmp_path / "bad_pw"
    bad.write_text("not-the-password\n")
    bad.chmod(0o600)
    text = dlab.toml2.read_text()
    real = str(dlab.run_dir / "secrets" / "db_password")
    assert real in text
    toml = tmp_path / "hosts.toml"
    toml.write_text(text.replace(real, str(bad)))
    r = fab(toml, "configure", "--on", "node2")
    assert r.returncode == 0, out(r)
    r = fab(toml, "restart", "--only", "node2")
    text = out(r)
    assert r.returncode != 0 and "[node2] restart: failed" in text
    assert "Access denied" in text or "password" in text.lower(), text
    assert "not-the-password" not in text
    # put it right
    r = fab(dlab.toml2, "deploy")
    assert r.returncode == 0, out(r)


def test_adding_node3_changes_only_the_members(dlab):
    full = dlab.run_dir / "hosts.toml"  # lists node1..node3
    r = fab(full, "deploy", "--check")
    text = out(r)
    for n in ("node1", "node2"):
        lines = [ln for ln in text.splitlines() if ln.startswith(f"[{n}]   ~ ")]
        # the configuration change, then the rolling restart it needs (a member-list change
        # rolls, each node drained first: no full stop; check mode lists it too)
        config = [ln for ln in lines if not re.search(r"~ (stop|start|restart) EI\b", ln)]
        assert config and all("axis2.xml" in ln for ln in config), lines
        assert any("~ restart EI" in ln for ln in lines), lines
    assert any(ln.startswith("[node3]   ~ ") and "master-datasources.xml" in ln
               for ln in text.splitlines())
    r = fab(full, "deploy")
    assert r.returncode == 0, out(r)
    assert {served_by(lb_get(dlab)[1]) for _ in range(9)} == {"node1", "node2", "node3"}
    assert _max_connections(dlab) == "1080"  # 3 nodes x 300 + 20%, raised live
    r = fab(full, "deploy")
    assert all(row["changed"] == 0 for row in recap_rows(r.stdout).values()), r.stdout
