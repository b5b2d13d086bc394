"""Day 2 without downtime (issue 18): stable node identity, scale-out 2->3 and scale-in 3->2
under load, the orphan refusal, DB password rotation under load, and a rotation killed half way
that the next run finishes. One lab (three node hosts; hosts.toml lists two or three); the
tests build on each other in file order.
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import tomllib

import pytest

from tests.integration.helpers import REPO, Load, curl, fab, out, recap_rows, served_by

PROFILE = "/opt/wso2ei-6.6.0/wso2/business-process"
LOG = f"{PROFILE}/repository/logs/wso2carbon.log"
RECORD = "/var/lib/bps-deploy/members.json"


@pytest.fixture(scope="module")
def mlab(lab_factory):
    lab = lab_factory(int(os.environ.get("LAB_INDEX", "7")), nodes=3)
    from lab.lab import dump_toml
    data = tomllib.loads((lab.run_dir / "hosts.toml").read_text())
    lab.toml3 = lab.run_dir / "hosts.toml"
    lab.toml2 = lab.run_dir / "hosts-2nodes.toml"
    two = dict(data, nodes=data["nodes"][:2])
    lab.toml2.write_text(dump_toml(two))
    # the same two nodes with another DB password (the rotation tests)
    pw = lab.run_dir / "secrets" / "db_password_new"
    pw.write_text("Db-rotated-" + os.urandom(6).hex() + "\n")
    os.chmod(pw, 0o600)
    lab.new_pw = pw.read_text().strip()
    secrets = dict(data["secrets"], db_password={"file": str(pw)})
    lab.toml2_rotated = lab.run_dir / "hosts-2nodes-rotated.toml"
    lab.toml2_rotated.write_text(dump_toml(dict(two, secrets=secrets)))
    pw2 = lab.run_dir / "secrets" / "db_password_new2"
    pw2.write_text("Db-again-" + os.urandom(6).hex() + "\n")
    os.chmod(pw2, 0o600)
    lab.new_pw2 = pw2.read_text().strip()
    secrets2 = dict(secrets, db_password={"file": str(pw2)})

    def rotated2(name: str, *names: str):
        """hosts-NAME.toml: the last DB password, with these of the three nodes."""
        path = lab.run_dir / f"hosts-{name}.toml"
        path.write_text(dump_toml(dict(data, secrets=secrets2,
                                       nodes=[n for n in data["nodes"] if n["name"] in names])))
        return path
    lab.toml2_rotated2 = rotated2("2nodes-rotated2", "node1", "node2")
    lab.toml3_rotated2 = rotated2("3nodes-rotated2", "node1", "node2", "node3")
    lab.without_node1 = rotated2("without-node1", "node2", "node3")
    lab.without_node3 = rotated2("without-node3", "node1", "node2")
    return lab


def jvms(lab, node: str) -> list[str]:
    """The PIDs of the node's running EI JVMs (the processes, not the PID file)."""
    return lab.exec(node, "pgrep -f 'org[.]wso2[.]carbon[.]bootstrap'").stdout.split()


def lb_url(lab):
    return f"http://{lab.address('lb')}/services/"


def record(lab) -> dict:
    return json.loads(lab.exec("db", f"cat {RECORD}", check=True).stdout)


def members_seen(lab, node: str) -> set[str]:
    """The members `node` sees now: its last start's member list, then the joins and leaves
    it logged since (the stand-in logs like Hazelcast)."""
    text = lab.exec(node, f"cat {LOG}").stdout
    start = text.rfind("Members [")
    assert start >= 0, f"{node} never listed its members"
    seen: set[str] = set()
    first, *rest = text[start:].splitlines()
    seen |= set(re.findall(r"Member \[([\d.]+)\]:\d+ - \S+(?! this)", first))
    seen.discard(lab.address(node))
    for line in rest:
        m = re.search(r"Member (joined|left) \[[^]]*\]: /([\d.]+):", line)
        if m:
            (seen.add if m.group(1) == "joined" else seen.discard)(m.group(2))
    return seen


def assert_full_membership(lab, names):
    for n in names:
        want = {lab.address(o) for o in names if o != n}
        assert members_seen(lab, n) == want, (n, members_seen(lab, n), want)


def report(what, load):
    print(f"{what}: {load.sent} requests in {load.seconds:.1f}s, {load.failed} failed, "
          f"by node {load.by_node}")


def under_load(lab, what: str, *args, toml=None) -> str:
    """`fab ARGS` while requests go through the LB: it must succeed with not one request
    failed; the figures are printed (the README's table). Returns the run's output."""
    with Load(lb_url(lab), "ei.wso2.com") as load:
        time.sleep(0.5)
        r = fab(toml or lab.toml2, *args)
        time.sleep(0.5)
    report(what, load)
    assert r.returncode == 0, out(r)
    assert load.failed == 0, load.failures[:5]
    assert load.sent > 20
    return out(r)


def test_first_deploy_records_identity(mlab):
    r = fab(mlab.toml2, "deploy")
    assert r.returncode == 0, out(r)
    rec = record(mlab)
    assert rec["writer"] == "node1"
    assert {n["name"]: n["number"] for n in rec["nodes"]} == {"node1": 1, "node2": 2}
    assert mlab.exec("db", f"stat -c %a {RECORD}").stdout.strip() == "600"
    # a no-op: the record is read with the preflight facts, nothing written
    r = fab(mlab.toml2, "deploy")
    assert all(row["changed"] == 0 for row in recap_rows(r.stdout).values()), r.stdout


def test_scale_out_2_to_3_under_load(mlab):
    text = under_load(mlab, "scale-out 2->3", "deploy", toml=mlab.toml3)
    # the running nodes rolled first, node3 held out of the LB until its own healthy start
    assert "draining (marked down in the upstreams): node1, node3" in text, text
    assert text.index("[node2] restart") < text.index("[node3] restart"), text
    assert "STOPPED" not in text and "[node1] stop" not in text  # no stop of every node
    assert {n["name"]: n["number"] for n in record(mlab)["nodes"]} == {
        "node1": 1, "node2": 2, "node3": 3}
    assert_full_membership(mlab, ("node1", "node2", "node3"))


def test_deploy_refuses_while_a_recorded_node_is_missing(mlab):
    r = fab(mlab.toml2, "deploy")
    text = out(r)
    assert r.returncode != 0
    assert "node3" in text and "fab remove-node node3" in text, text
    assert "nothing was changed" in text
    r = fab(mlab.toml2, "status")
    assert r.returncode != 0
    assert "ORPHAN" in out(r) and "fab remove-node node3" in out(r), out(r)


def test_remove_node_3_to_2_under_load(mlab):
    under_load(mlab, "scale-in 3->2 (remove-node node3)", "remove-node", "node3")
    rec = record(mlab)
    assert {n["name"] for n in rec["nodes"]} == {"node1", "node2"}
    assert rec["retired"] == {"3": "node3"}
    assert not jvms(mlab, "node3")
    accounts = mlab.exec("db", "mariadb -N -e \"SELECT Host FROM mysql.user WHERE "
                               "User='wso2bps'\"").stdout.split()
    assert mlab.address("node3") not in accounts
    assert "REGISTRY_LOCAL3" in mlab.exec("db", "mariadb -N -e 'SHOW DATABASES'").stdout
    assert "node3" not in mlab.exec("lb", "cat /etc/nginx/conf.d/ei.http.conf").stdout
    assert_full_membership(mlab, ("node1", "node2"))
    r = fab(mlab.toml2, "deploy")
    assert r.returncode == 0, out(r)
    assert all(row["changed"] == 0 for row in recap_rows(r.stdout).values()), r.stdout


def hashes_match(lab, pw) -> set[str]:
    q = (f"SELECT Host FROM mysql.user WHERE User='wso2bps' AND "
         f"authentication_string = PASSWORD('{pw}')")
    return set(lab.exec("db", f"mariadb -N -e \"{q}\"").stdout.split())


def test_password_rotation_under_load(mlab):
    text = under_load(mlab, "DB password rotation", "deploy", toml=mlab.toml2_rotated)
    assert hashes_match(mlab, mlab.new_pw) == {mlab.address("node1"), mlab.address("node2")}
    # one node at a time: node1's account changed before node2 was drained
    assert text.index("'wso2bps'@'" + mlab.address("node1")) < \
        text.index("draining (marked down in the upstreams): node2"), text
    r = fab(mlab.toml2_rotated, "deploy")
    assert all(row["changed"] == 0 for row in recap_rows(r.stdout).values()), r.stdout


def test_rotation_killed_half_way_is_finished_by_the_next_run(mlab):
    env = {**os.environ, "FABRIC_INVENTORY": str(mlab.toml2_rotated2)}
    with Load(lb_url(mlab), "ei.wso2.com") as load:
        p = subprocess.Popen([sys.executable, "-m", "fabric", "deploy"], cwd=REPO, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for line in p.stdout:
            if "draining (marked down in the upstreams): node2" in line:
                break
        p.send_signal(signal.SIGKILL)
        p.wait(30)
        # node1 on the new password, node2 still on the old: each agrees with its own files
        assert hashes_match(mlab, mlab.new_pw2) == {mlab.address("node1")}
        assert hashes_match(mlab, mlab.new_pw) == {mlab.address("node2")}
        time.sleep(2)  # served meanwhile (node2 drained, both running)
        r = fab(mlab.toml2_rotated2, "deploy")
    report("rotation killed half way, then the next deploy", load)
    assert r.returncode == 0, out(r)
    assert "stale deploy lock" in out(r)
    assert load.failed == 0, load.failures[:5]
    assert hashes_match(mlab, mlab.new_pw2) == {mlab.address("node1"), mlab.address("node2")}
    r = fab(mlab.toml2_rotated2, "deploy")
    assert all(row["changed"] == 0 for row in recap_rows(r.stdout).values()), r.stdout


def test_removing_the_registry_writer_moves_the_role_under_load(mlab):
    """A removed host comes back as a new member (a new number: its old one stays retired),
    then node1, the registry writer, leaves with --move-writer --purge: refused without the
    flag, then node2 takes the role and restarts first, REGISTRY_LOCAL1 is dropped after a
    backup, and the LB serves throughout."""
    r = fab(mlab.toml3_rotated2, "deploy")
    assert r.returncode == 0, out(r)
    rec = record(mlab)
    assert {n["name"]: n["number"] for n in rec["nodes"]} == {"node1": 1, "node2": 2, "node3": 4}
    assert rec["writer"] == "node1"
    assert_full_membership(mlab, ("node1", "node2", "node3"))

    without1 = mlab.without_node1
    pids = {n: jvms(mlab, n) for n in mlab.node_names}
    r = fab(without1, "remove-node", "node1")
    assert r.returncode != 0
    assert "registry writer" in out(r) and "--move-writer" in out(r), out(r)
    assert "nothing was changed" in out(r)
    assert record(mlab) == rec
    assert {n: jvms(mlab, n) for n in mlab.node_names} == pids

    text = under_load(mlab, "remove the registry writer (remove-node node1 --move-writer "
                      "--purge)", "remove-node", "node1", "--move-writer", "--purge",
                      toml=without1)
    assert "registry writer moves to node2" in text, text
    assert text.index("[node2] restart") < text.index("[node3] restart"), text
    rec = record(mlab)
    assert rec["writer"] == "node2"
    assert {n["name"] for n in rec["nodes"]} == {"node2", "node3"}
    assert "1" not in rec["retired"]  # purged: its number is free again
    dbs = mlab.exec("db", "mariadb -N -e 'SHOW DATABASES'").stdout.split()
    assert "REGISTRY_LOCAL1" not in dbs and "REGISTRY_LOCAL2" in dbs
    assert list((mlab.run_dir / "backups").glob("*")), "no backup before the purge"
    assert not jvms(mlab, "node1")
    assert_full_membership(mlab, ("node2", "node3"))
    # the shared registry's mount: writable on node2 now, read-only on node3
    mounts = {n: mlab.exec(n, f"grep -c '<readOnly>false</readOnly>' {PROFILE}/conf/registry.xml"
                           ).stdout.strip() for n in ("node2", "node3")}
    assert int(mounts["node2"]) == int(mounts["node3"]) + 1, mounts
    r = fab(without1, "deploy")
    assert r.returncode == 0, out(r)
    assert all(row["changed"] == 0 for row in recap_rows(r.stdout).values()), r.stdout


def test_a_node_whose_machine_is_gone_is_removed_with_unreachable_ok(mlab):
    """node1's host comes back (a new member), then node3's machine is gone (its network down:
    neither SSH nor the cluster reach it). Its removal stops at the node that cannot be stopped
    and names --unreachable-ok, leaving the record as it was; with the flag the node is taken
    for gone: its account dropped, node1 and node2 rolled onto a member list without it, the LB
    serving from them alone."""
    r = fab(mlab.toml3_rotated2, "deploy")
    assert r.returncode == 0, out(r)
    rec = record(mlab)
    assert {n["name"] for n in rec["nodes"]} == {"node1", "node2", "node3"}
    assert rec["writer"] == "node2"
    without3 = mlab.without_node3
    mlab.exec("node3", "ip link set dev eth0 down", check=True)
    before = record(mlab)
    r = fab(without3, "remove-node", "node3")
    assert r.returncode != 0
    assert "node3 could not be stopped (unreachable)" in out(r), out(r)
    assert "--unreachable-ok" in out(r)
    assert record(mlab) == before
    r = fab(without3, "remove-node", "node3", "--unreachable-ok")
    assert r.returncode == 0, out(r)
    assert "[node3] stop: skipped: unreachable" in out(r), out(r)
    assert "--unreachable-ok takes the machine for gone" in out(r)
    rec = record(mlab)
    assert {n["name"] for n in rec["nodes"]} == {"node1", "node2"} and rec["writer"] == "node2"
    accounts = mlab.exec("db", "mariadb -N -e \"SELECT Host FROM mysql.user WHERE "
                               "User='wso2bps'\"").stdout.split()
    assert mlab.address("node3") not in accounts
    assert mlab.address("node3") not in mlab.exec("lb", "cat /etc/nginx/conf.d/ei.http.conf").stdout
    assert_full_membership(mlab, ("node1", "node2"))
    served = [curl(lb_url(mlab), host="ei.wso2.com") for _ in range(8)]
    assert {code for code, _ in served} == {200}, served
    assert {served_by(body) for _, body in served} == {"node1", "node2"}, served
    r = fab(without3, "deploy")
    assert r.returncode == 0, out(r)
    assert all(row["changed"] == 0 for row in recap_rows(r.stdout).values()), r.stdout
