"""EI as a systemd service on hosts that boot real systemd (Lab(kind="systemd"): Debian 12
under systemd-nspawn): units enabled at boot, limits, systemd restarting a killed JVM, reboots
of a node, the LB and the DB with no fab command, a no-op second deploy, a rolling restart
through systemctl with zero failed requests, and moving a node started the old way under
systemd. One lab for the module; the tests run in file order and build on each other.
No timing assertions: waits are bounded, never measured.
"""
from __future__ import annotations

import os
import re
import threading
import time

import pytest

from tests.integration.helpers import Load, curl, fab, out, recap_rows, served_by, noop_deploy

BASE = int(os.environ.get("LAB_INDEX", "7"))
EI = "/opt/wso2ei-6.6.0"
PROFILE = f"{EI}/wso2/business-process"
LOG = f"{PROFILE}/repository/logs/wso2carbon.log"
UNIT = "wso2ei-bps.service"
NOFILE = 16384  # below the machine's hard limit (20000): what the JVM must get


@pytest.fixture(scope="module")
def slab(lab_factory):
    lab = lab_factory(BASE + 15, nodes=2, kind="systemd")
    lab.write_hosts_toml(cluster={"nofile": NOFILE})
    return lab


def jvm_pids(lab, node) -> list[str]:
    return lab.exec(node, "pgrep -u wso2 -f -- '-Dcarbon[.]home='").stdout.split()


def login_code(lab, node) -> str:
    a = lab.address(node)
    return lab.exec(node, f"curl -sk -o /dev/null -w '%{{http_code}}' --max-time 3 "
                          f"https://{a}:9445/carbon/admin/login.jsp").stdout.strip()


def log_size(lab, node) -> int:
    return int(lab.exec(node, f"stat -c %s {LOG} 2>/dev/null || echo 0").stdout.strip() or 0)


def joined_since(lab, member, node, offset) -> bool:
    """`member` logged `node` joining the cluster after byte `offset` of its log."""
    a = re.escape(lab.address(node))
    text = lab.exec(member, f"tail -c +{offset + 1} {LOG}").stdout
    return re.search(rf"Member joined \[[^]]*\]: /{a}:4000", text) is not None


def wait_for(what: str, check, timeout: float = 240, every: float = 1.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(every)
    pytest.fail(f"not within {timeout:.0f}s: {what}")


def lb_nodes(lab, n=8) -> set[str]:
    seen = set()
    for _ in range(n):
        code, body = curl(f"http://{lab.address('lb')}/services/", host="ei.wso2.com")
        if code == 200:
            seen.add(served_by(body))
    return seen


def healthy_everywhere(lab) -> bool:
    return all(login_code(lab, n) == "200" for n in lab.node_names) and \
        lb_nodes(lab) == set(lab.node_names)


def test_first_deploy_runs_ei_under_enabled_units(slab):
    r = fab(slab, "deploy")
    text = out(r)
    assert r.returncode == 0, text
    for n in slab.node_names:
        assert f"[{n}] restart: changed: started by systemd ({UNIT}, enabled at boot)" in text
        got = slab.exec(n, f"systemctl is-enabled {UNIT}; systemctl is-active {UNIT}; "
                           f"stat -c '%U:%G %a' /etc/systemd/system/{UNIT}").stdout.split("\n")
        assert got[:3] == ["enabled", "active", "root:root 644"], (n, got)
        pids = jvm_pids(slab, n)
        assert len(pids) == 1, pids
        cg = slab.exec(n, f"cat /proc/{pids[0]}/cgroup").stdout
        assert f"/system.slice/{UNIT}" in cg, cg
        unit = slab.exec(n, f"cat /etc/systemd/system/{UNIT}").stdout
        for line in ("Type=simple", f"ExecStart=/bin/sh {PROFILE}/bin/wso2server.sh\n",
                     "User=wso2", "Environment=JAVA_HOME=/opt/jdk-11",
                     'Environment="JVM_MEM_OPTS=-Xms256m -Xmx256m"', "Restart=always",
                     "StartLimitIntervalSec=0", "TimeoutStopSec=120"):
            assert line in unit, line
        assert not re.search(r"^(PIDFile|ExecRestart|ExecStop)=", unit, re.M), unit
        cmdline = slab.exec(n, f"tr '\\0' ' ' < /proc/{pids[0]}/cmdline").stdout
        assert "-Xms256m -Xmx256m" in cmdline
        # the kernel settings drop-in: written, not applied (the lab shares this kernel)
        drop = slab.exec(n, "cat /etc/sysctl.d/60-wso2ei.conf").stdout
        assert "net.ipv4.tcp_fin_timeout = 30" in drop and "\nnet.ipv4.tcp_tw_recycle" not in drop
    assert "not applied" in text
    assert slab.exec("lb", "systemctl is-enabled nginx").stdout.strip() == "enabled"
    assert slab.exec("db", "systemctl is-enabled mariadb").stdout.strip() == "enabled"
    assert lb_nodes(slab) == {"node1", "node2"}


def test_jvm_open_files_limit_is_what_hosts_toml_says(slab):
    hard = int(slab.exec("node1", "awk '/^Max open files/ {print $5}' /proc/1/limits").stdout)
    assert NOFILE <= hard, (NOFILE, hard)
    for n in slab.node_names:
        pid = jvm_pids(slab, n)[0]
        line = slab.exec(n, f"grep '^Max open files' /proc/{pid}/limits").stdout.split()
        assert line[3:5] == [str(NOFILE), str(NOFILE)], line


def test_second_deploy_changes_nothing(slab, tmp_path):
    before = {n: jvm_pids(slab, n) for n in slab.node_names}
    noop_deploy(slab, tmp_path / "stats.json")
    assert {n: jvm_pids(slab, n) for n in slab.node_names} == before


def test_killed_jvm_is_restarted_by_systemd(slab):
    """kill -9 of node2's JVM: systemd starts it again (Restart=always, RestartSec=10) and it
    becomes healthy and rejoins the cluster, with no fab command."""
    old = jvm_pids(slab, "node2")
    mark = log_size(slab, "node1")
    slab.exec("node2", f"kill -9 {old[0]}", check=True)
    wait_for("a new JVM on node2", lambda: (p := jvm_pids(slab, "node2")) and p != old)
    wait_for("node2 healthy again", lambda: login_code(slab, "node2") == "200")
    wait_for("node1 logs node2 joining again", lambda: joined_since(slab, "node1", "node2", mark))
    restarts = slab.exec("node2", f"systemctl show -p NRestarts --value {UNIT}").stdout.strip()
    assert int(restarts) >= 1
    wait_for("the LB serves both nodes", lambda: lb_nodes(slab) == {"node1", "node2"})


def test_node1_rebooted_comes_back_and_rejoins(slab):
    mark = log_size(slab, "node2")
    before = slab.boot_id("node1")
    assert slab.reboot("node1") != before
    wait_for("node1 healthy after its reboot", lambda: login_code(slab, "node1") == "200")
    wait_for("node2 logs node1 joining", lambda: joined_since(slab, "node2", "node1", mark))
    assert slab.exec("node1", f"systemctl is-active {UNIT}").stdout.strip() == "active"
    wait_for("the LB serves both nodes", lambda: lb_nodes(slab) == {"node1", "node2"})


def test_lb_and_db_rebooted_service_resumes(slab):
    slab.reboot("db")
    assert slab.exec("db", "systemctl is-active mariadb").stdout.strip() == "active"
    slab.reboot("lb")
    assert slab.exec("lb", "systemctl is-active nginx").stdout.strip() == "active"
    wait_for("the LB serves both nodes after the LB and DB reboots",
             lambda: healthy_everywhere(slab))
    r = fab(slab, "status")
    assert r.returncode == 0, out(r)


def test_whole_cluster_power_cycle_db_last(slab):
    """A power cut: every host off; on again with the DB host last. The nodes boot before
    their DB, fail to start, and the unit keeps retrying (Restart=always, no start limit)
    until the DB is up; then `fab status` is all well and a deploy changes nothing."""
    for h in ["lb"] + slab.node_names + ["db"]:
        slab.poweroff(h)
    for h in ["lb"] + slab.node_names:
        slab.start(h)
    # the nodes are up without their DB: EI cannot start yet, and systemd keeps trying
    wait_for("node1 tried and failed to start without its DB", lambda: int(slab.exec(
        "node1", f"systemctl show -p NRestarts --value {UNIT}").stdout.strip() or 0) >= 1,
        timeout=300)
    assert slab.exec("node1", f"systemctl is-enabled {UNIT}").stdout.strip() == "enabled"
    slab.start("db")
    wait_for("every node healthy and served by the LB after the DB came up",
             lambda: healthy_everywhere(slab), timeout=600, every=3)
    r = fab(slab, "status")
    assert r.returncode == 0, out(r)
    r = fab(slab, "deploy")
    assert r.returncode == 0, out(r)
    assert all(row["changed"] == 0 and not row["restarted"]
               for row in recap_rows(r.stdout).values()), r.stdout


def test_rolling_restart_through_systemd_drops_nothing(slab):
    before = {n: jvm_pids(slab, n) for n in slab.node_names}
    restarts = {n: slab.exec(n, f"systemctl show -p NRestarts --value {UNIT}").stdout.strip()
                for n in slab.node_names}
    with Load(f"http://{slab.address('lb')}/services/", "ei.wso2.com") as load:
        time.sleep(0.5)
        r = fab(slab, "restart", "--rolling")
        time.sleep(0.5)
    text = out(r)
    assert r.returncode == 0, text
    assert load.failed == 0, load.failures[:5]
    assert load.sent > 20 and set(load.by_node) == {"node1", "node2"}, load.by_node
    for n in slab.node_names:
        assert f"[{n}] restart: changed: restarted by systemd ({UNIT}" in text
        after = jvm_pids(slab, n)
        assert after and after != before[n]
        # stopped and started through systemctl (a start systemd was asked for resets its
        # count of its own restarts: NRestarts 0, whatever it was before)
        assert slab.exec(n, f"systemctl show -p NRestarts --value {UNIT}").stdout.strip() \
            == "0", restarts[n]


def test_node_started_the_old_way_moves_under_systemd(slab):
    """node2's unit stopped and EI started by hand as before (wso2server.sh start as the
    service user): the next deploy stops that JVM first, then starts the unit; never two JVMs."""
    slab.exec("node2", f"systemctl stop {UNIT}", check=True)
    # with Secure Vault on, a hand start needs the keystore password in password-tmp, as the
    # product asks (the unit's ExecStartPre writes it; an operator starting by hand must too)
    slab.exec("node2", f"runuser -u wso2 -- sh -c 'umask 077; cat > {PROFILE}/password-tmp' "
                       "< /var/lib/bps-deploy/keystore-password", check=True)
    slab.exec("node2", f"runuser -u wso2 -- env JAVA_HOME=/opt/jdk-11 JVM_MEM_OPTS='-Xms256m "
                       f"-Xmx256m' sh {PROFILE}/bin/wso2server.sh start </dev/null >/dev/null "
                       "2>&1", check=True)
    wait_for("the hand-started node2 healthy", lambda: login_code(slab, "node2") == "200")
    old = jvm_pids(slab, "node2")
    assert len(old) == 1
    assert f"/{UNIT}" not in slab.exec("node2", f"cat /proc/{old[0]}/cgroup").stdout
    st = fab(slab, "status")
    assert "runs OUTSIDE the unit" in out(st), out(st)
    most = [0]
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            most[0] = max(most[0], len(jvm_pids(slab, "node2")))
            time.sleep(0.1)

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    try:
        r = fab(slab, "deploy")
    finally:
        stop.set()
        t.join(10)
    text = out(r)
    assert r.returncode == 0, text
    assert "running outside wso2ei-bps.service (started the old way): moved under systemd" in text
    assert "moving under systemd" in text
    assert most[0] == 1, f"{most[0]} JVMs of node2's profile at once"
    new = jvm_pids(slab, "node2")
    assert len(new) == 1 and new != old
    assert f"/system.slice/{UNIT}" in slab.exec("node2", f"cat /proc/{new[0]}/cgroup").stdout
    assert slab.exec("node2", f"systemctl is-active {UNIT}").stdout.strip() == "active"
    r = fab(slab, "deploy")
    assert r.returncode == 0 and not any(row["restarted"] for row in
                                         recap_rows(r.stdout).values()), out(r)
