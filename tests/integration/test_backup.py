"""`fab backup`, `fab restore`, `fab rollback` on a real lab (issue 18).

One lab for the module (LAB_INDEX + 8); the tests run in file order and build on each other:
a deployed cluster; a row written into a BPS table; a backup; every cluster database dropped;
a restore refused without its flag, then done: the row is back and the nodes are healthy; a
corrupted backup refused before anything stops; a deploy whose config change leaves node1
unhealthy names `fab rollback`, and the rollback puts the files back and the nodes are healthy.
The figures (backup and restore time) are printed for the README.
"""
from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path

import pytest

from tests.integration.helpers import curl, fab, out, served_by, node_pids, noop_deploy

EI = "/opt/wso2ei-6.6.0"
DS = f"{EI}/wso2/business-process/conf/datasources/master-datasources.xml"
BPS_DS = f"{EI}/wso2/business-process/conf/datasources/bps-datasources.xml"
DATABASES = ("WSO2_USER_DB", "REGISTRY_DB", "REGISTRY_LOCAL1", "REGISTRY_LOCAL2", "BPS_DS",
             "ACTIVITI_DB")
ROW = "bps-backup-row-7f3a"


@pytest.fixture(scope="module")
def blab(lab_factory):
    # BACKUP_LAB_KIND=systemd runs the same module on hosts that boot systemd (by hand)
    lab = lab_factory(int(os.environ.get("LAB_INDEX", "7")) + 8, nodes=2,
                      kind=os.environ.get("BACKUP_LAB_KIND", "netns"))
    r = fab(lab, "deploy")
    assert r.returncode == 0, out(r)
    lab.state = {}
    return lab


def sql(lab, statement: str) -> str:
    r = lab.exec("db", ["mariadb", "-N", "-B", "-e", statement])
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def healthy(lab, node: str) -> bool:
    code, _ = curl(f"https://{lab.address(node)}:9445/carbon/admin/login.jsp")
    return code == 200


def lb_nodes(lab) -> set[str]:
    return {served_by(curl(f"http://{lab.address('lb')}/services/", host="ei.wso2.com")[1])
            for _ in range(6)}


def test_backup_takes_every_database_and_managed_file(blab):
    sql(blab, f"INSERT INTO BPS_DS.TASK_ATTACHMENT (ATTACHMENT_ID, MESSAGE_EXCHANGE_ID) "
              f"VALUES (424242, '{ROW}')")
    t0 = time.monotonic()
    r = fab(blab, "backup")
    seconds = time.monotonic() - t0
    text = out(r)
    assert r.returncode == 0, text
    m = re.search(r"backup written \(fab backup\): (\S+) \(", text)
    assert m, text
    folder = Path(m.group(1))
    blab.state["backup"] = folder
    print(f"\nFIGURE backup: {seconds:.1f}s wall for `fab backup` (2 nodes), "
          f"{sum(p.stat().st_size for p in folder.rglob('*') if p.is_file()) // 1024} KiB")
    assert (folder.stat().st_mode & 0o777) == 0o700
    assert all((p.stat().st_mode & 0o777) == (0o600 if p.is_file() else 0o700)
               for p in folder.rglob("*"))
    import json
    import subprocess
    assert subprocess.run(["sha256sum", "-c", "--quiet", "SHA256SUMS"], cwd=folder).returncode == 0
    manifest = json.loads((folder / "manifest.json").read_text())
    assert sorted(manifest["databases"]["names"]) == sorted(DATABASES)
    paths = {(f["host"], f["path"]) for f in manifest["files"]}
    assert ("node2", DS) in paths and ("lb", "/etc/nginx/conf.d/ei.https.conf") in paths
    assert ("lb", "/etc/nginx/ssl/server.key") in paths
    # the admin login never reached a command line on the DB host (it is root over the socket
    # in the lab) and the app password is in the backup only inside the node's 0600 file
    assert "--password" not in text


def test_restore_without_its_flag_is_refused_and_explained(blab):
    before = node_pids(blab)
    r = fab(blab, "restore", str(blab.state["backup"]))
    text = out(r)
    assert r.returncode != 0
    assert "--overwrite-cluster" in text and "STOPS every node" in text and "BPS_DS" in text
    assert node_pids(blab) == before


def test_restore_brings_back_dropped_databases_and_the_row(blab):
    for name in DATABASES:
        sql(blab, f"DROP DATABASE {name}")
    assert sql(blab, "SHOW DATABASES LIKE 'BPS_DS'") == ""
    t0 = time.monotonic()
    r = fab(blab, "restore", str(blab.state["backup"]), "--overwrite-cluster", timeout=900)
    seconds = time.monotonic() - t0
    text = out(r)
    assert r.returncode == 0, text
    print(f"\nFIGURE restore: {seconds:.1f}s wall for `fab restore` (safety backup, stop 2 "
          "nodes, 6 databases, files, ordered health-gated start)")
    # the order: the nodes stopped last first, the databases, the files, then started in order
    i_stop2, i_stop1 = text.index("[node2] stop"), text.index("[node1] stop")
    i_db = text.index("restore databases")
    i_start1, i_start2 = text.index("[node1] start"), text.index("[node2] start")
    assert i_stop2 < i_stop1 < i_db < i_start1 < i_start2, text
    assert "before restore of" in text  # a safety backup of the state it replaced
    assert sql(blab, "SELECT MESSAGE_EXCHANGE_ID FROM BPS_DS.TASK_ATTACHMENT "
                     "WHERE ATTACHMENT_ID = 424242") == ROW
    assert healthy(blab, "node1") and healthy(blab, "node2")
    assert lb_nodes(blab) == {"node1", "node2"}


def test_a_corrupted_backup_is_refused_before_anything_stops(blab, tmp_path):
    bad = tmp_path / "corrupted"
    shutil.copytree(blab.state["backup"], bad)
    victim = next((bad / "files" / "node1").iterdir())
    victim.write_bytes(victim.read_bytes() + b"tampered\n")
    before = node_pids(blab)
    r = fab(blab, "restore", str(bad), "--overwrite-cluster")
    text = out(r)
    assert r.returncode != 0 and "failed its checksums" in text, text
    assert victim.name in text
    assert node_pids(blab) == before
    assert "stop" not in re.sub(r"stopped or changed", "", text.split("failed its checksums")[0])


def test_a_deploy_that_leaves_a_node_unhealthy_names_fab_rollback_which_puts_it_back(blab):
    good = {n: blab.exec(n, f"sha256sum {DS} {BPS_DS}").stdout for n in ("node1", "node2")}
    # a config change that breaks the nodes: the datasources point at a port nothing serves
    toml = blab.run_dir / "hosts-db-port-3307.toml"
    blab.write_hosts_toml(toml, db={"port": 3307})
    r = fab(toml, "deploy")
    text = out(r)
    assert r.returncode != 0, text
    assert "a node failed its health check" in text and "`fab rollback`" in text, text
    run_id = re.search(r"run id (\d{8}T\d{6}Z)", text).group(1)
    assert not healthy(blab, "node1")
    assert any(blab.exec(n, f"sha256sum {DS}").stdout != good[n].splitlines()[0] + "\n"
               for n in ("node1",))
    t0 = time.monotonic()
    r = fab(blab, "rollback")
    seconds = time.monotonic() - t0
    text = out(r)
    assert r.returncode == 0, text
    print(f"\nFIGURE rollback: {seconds:.1f}s wall for `fab rollback` (2 nodes restarted)")
    assert f"rolling back run {run_id}" in text
    for n in ("node1", "node2"):
        assert blab.exec(n, f"sha256sum {DS} {BPS_DS}").stdout == good[n], n
        assert healthy(blab, n), n
    assert lb_nodes(blab) == {"node1", "node2"}
    runs = blab.exec("node1", "ls /var/backups/bps-deploy/runs").stdout.split()
    assert f"{run_id}.undone" in runs and any(x.endswith(".rollback") for x in runs)
    # the deploy with the good hosts.toml now has nothing to put back
    r = fab(blab, "deploy")
    assert r.returncode == 0, out(r)
    assert healthy(blab, "node1") and healthy(blab, "node2")


def test_a_no_op_deploy_writes_no_run_manifest_and_stays_at_5_commands(blab, tmp_path):
    before = {h: blab.exec(h, "ls /var/backups/bps-deploy/runs 2>/dev/null").stdout
              for h in blab.hosts}
    noop_deploy(blab, tmp_path / "stats.json")
    assert {h: blab.exec(h, "ls /var/backups/bps-deploy/runs 2>/dev/null").stdout
            for h in blab.hosts} == before
