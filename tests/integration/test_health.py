"""What "healthy" means, on real hosts: the login page answers 200, the started mark survives a
log roll at start, a node whose join no member saw (port 4000 blocked) is not healthy, and a
stop is graceful up to cluster.stop_timeout, then loudly killed.

One 2-node lab for the module (LAB_INDEX + 11); the tests run in file order and build on each
other. Lab knobs of the stand-in go in /etc/default/bps-standin on a node (read by the stand-in
itself at each start).
"""
from __future__ import annotations

import os

import pytest

from tests.integration.helpers import fab, out, recap_rows, node_pid, noop_deploy

BASE = int(os.environ.get("LAB_INDEX", "7"))
PROFILE = "/opt/wso2ei-6.6.0/wso2/business-process"
LOGS = f"{PROFILE}/repository/logs"
KNOBS = "/etc/default/bps-standin"


@pytest.fixture(scope="module")
def hlab(lab_factory):
    lab = lab_factory(BASE + 11, nodes=2)
    lab.variant = lambda name, **cl: lab.write_hosts_toml(lab.run_dir / f"hosts-{name}.toml",
                                                          cluster=cl)
    return lab


def _log(lab, node) -> str:
    return lab.exec(node, f"cat {LOGS}/wso2carbon.log").stdout


def _last_start(lab, node) -> str:
    """The log from the last start on (the stand-in's first line of a start)."""
    return _log(lab, node).rpartition("Starting WSO2 Carbon (lab stand-in)")[2]


def _pid(lab, node) -> str:
    return node_pid(lab, node)


def test_deploy_gates_on_login_page_and_membership(hlab, tmp_path):
    r = fab(hlab, "deploy")
    text = out(r)
    assert r.returncode == 0, text
    assert "[node1] restart: changed: started, healthy: pid" in text, text
    assert "/carbon/admin/login.jsp on HTTPS 9445 answered 200, no other member running" in text
    assert "[node2] restart: changed: started, healthy: pid" in text
    assert "joined the cluster (seen by node1)" in text
    # node1 logged node2's join (with node2's uuid); node2 itself logged no join
    assert "Member joined [" in _log(hlab, "node1")
    assert f"/{hlab.address('node2')}:4000" in _log(hlab, "node1")
    assert "Member joined" not in _log(hlab, "node2")
    # the stand-in serves the profile's pages, not any path
    a = hlab.address("node1")
    codes = hlab.exec("node1", f"for p in /carbon/admin/login.jsp /services/ /nonexistent; do "
                               f"curl -sk -o /dev/null -w '%{{http_code}} ' https://{a}:9445$p; "
                               "done").stdout.split()
    assert codes == ["200", "200", "404"], codes
    # a no-op deploy: nothing restarted, at most 5 SSH commands per host (only starts pay)
    noop_deploy(hlab, tmp_path / "stats.json")


def test_log_rolled_at_start_is_followed(hlab):
    """log4j2 rolls wso2carbon.log at start (here past 2000 bytes, as at 10 MB or at midnight):
    the started mark is in the new file, the offset points into the rolled one."""
    hlab.exec("node2", f"echo STANDIN_ROLL_BYTES=2000 > {KNOBS}", check=True)
    size = int(hlab.exec("node2", f"stat -c %s {LOGS}/wso2carbon.log").stdout)
    assert size > 2000, size
    try:
        r = fab(hlab, "restart", "--only", "node2")
        text = out(r)
        assert r.returncode == 0, text
        assert "[node2] restart: changed: restarted, healthy:" in text, text
        assert "log rolled at start (" in text and "/wso2carbon-" in text, text
        rolled = hlab.exec("node2", f"ls {LOGS}").stdout.split()
        assert any(f.startswith("wso2carbon-") and f.endswith(".log") for f in rolled), rolled
        new = _log(hlab, "node2")
        assert "WSO2 Carbon started" in new and "Shutdown hook triggered" not in new
    finally:
        hlab.exec("node2", f"rm -f {KNOBS}")


NFT = "nft add table inet bpsblock; " \
      "nft add chain inet bpsblock in '{ type filter hook input priority 0; }'; " \
      "nft add chain inet bpsblock out '{ type filter hook output priority 0; }'; " \
      "nft add rule inet bpsblock in ip saddr {peer} tcp dport 4000 drop; " \
      "nft add rule inet bpsblock out ip daddr {peer} tcp dport 4000 drop"


def test_blocked_cluster_port_fails_the_gate_then_converges(hlab):
    """Port 4000 blocked between node1 and node2 (nftables in node1's network namespace):
    node2 starts and serves, but node1 never logs its join: not healthy, and said why."""
    toml = hlab.variant("short", health_timeout=30)
    hlab.exec("node1", NFT.replace("{peer}", hlab.address("node2")), check=True)
    try:
        r = fab(toml, "restart", "--only", "node2")
        text = out(r)
        assert r.returncode != 0, text
        assert "[node2] restart: failed: not healthy after start: timed out after 30s: not in " \
               "the cluster: node1 did not log `Member joined [...]: " \
               f"/{hlab.address('node2')}:4000`" in text, text
        assert "the Hazelcast port 4000 is blocked between node2 and node1" in text
        # the node itself is up: only the membership is missing; the next deploy retries it
        assert "not healthy after the last start" in hlab.exec(
            "node2", "cat /var/lib/bps-deploy/pending-restart").stdout
    finally:
        hlab.exec("node1", "nft delete table inet bpsblock", check=True)
    r = fab(hlab, "deploy")
    text = out(r)
    assert r.returncode == 0, text
    assert recap_rows(r.stdout)["node2"]["restarted"], text
    assert "joined the cluster (seen by node1)" in text
    r = fab(hlab, "deploy")
    assert r.returncode == 0 and not any(
        row["restarted"] or row["changed"] for row in recap_rows(r.stdout).values()), out(r)


def test_graceful_stop_within_stop_timeout_is_not_killed(hlab):
    hlab.exec("node2", f"echo STANDIN_STOP_SECONDS=2 > {KNOBS}", check=True)
    assert fab(hlab, "restart", "--only", "node2").returncode == 0  # a JVM that takes 2 s
    r = fab(hlab.variant("stop30", stop_timeout=30), "restart", "--only", "node2")
    text = out(r)
    assert r.returncode == 0, text
    assert "KILLED" not in text and "[node2] restart: changed: restarted, healthy:" in text
    log = _log(hlab, "node2")
    before, _, now = log.rpartition("Starting WSO2 Carbon (lab stand-in)")
    for line in ("Shutdown hook triggered....", "Waiting for server task completion (2 s)",
                 "Halting JVM"):
        assert line in before.rpartition("WSO2 Carbon started")[2], line
    assert "unclean shutdown" not in now


def test_stop_slower_than_stop_timeout_is_killed_loudly(hlab):
    hlab.exec("node2", f"echo STANDIN_STOP_SECONDS=60 > {KNOBS}", check=True)
    assert fab(hlab, "restart", "--only", "node2").returncode == 0  # a JVM that takes 60 s
    old = _pid(hlab, "node2")
    r = fab(hlab.variant("stop3", stop_timeout=3), "stop", "--on", "node2")
    text = out(r)
    assert r.returncode == 0, text
    assert f"[node2] stop: changed: KILLED: still running 3s after SIGTERM, sent SIGKILL " \
           f"(cluster.stop_timeout) (was pid {old})" in text, text
    assert "!!! KILLED (SIGKILL, no graceful stop: still running after cluster.stop_timeout): " \
           "node2" in text
    assert "Halting JVM" not in _log(hlab, "node2").rpartition("Shutdown hook triggered")[2]
    hlab.exec("node2", f"rm -f {KNOBS}")
    r = fab(hlab, "deploy")
    assert r.returncode == 0, out(r)
    assert "unclean shutdown" in _last_start(hlab, "node2")
