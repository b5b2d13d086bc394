"""Run ids, rollback, backup and restore: the pure parts and the apply paths over fake hosts."""
from __future__ import annotations

import re

import pytest

from tasks.engine import remote
from tasks.engine.cli import Abort
from tasks.steps import deploy
from tasks.steps.backup import rollback, runs
from tests.fakes import FakeFile, fake_run, output
from tests.unit import inv_factory

R1, R2, R3 = "20261201T100000Z", "20261201T110000Z", "20261201T120000Z"
CARBON = "/opt/wso2ei-6.6.0/wso2/business-process/conf/carbon.xml"
BAK = f"{remote.BACKUP_DIR}/opt%wso2ei-6.6.0%wso2%business-process%conf%carbon.xml.{R2}.abc~"


@pytest.fixture
def inv(tmp_path):
    return inv_factory.make_inv(tmp_path)


def manifest(name: str, *lines: str) -> str:
    return f"@run {name}\n" + "".join(line + "\n" for line in lines)


def test_parse_runs_and_pick_the_newest_run_not_undone():
    got = runs.parse_runs(manifest(R1, f"b 600 wso2 wso2 /b/x.{R1}.a~ /etc/x")
                          + manifest(f"{R2}.undone", f"b 644 root root /b/y.{R2}.a~ /etc/y")
                          + manifest(f"{R3}.rollback", "b 644 root root /b/z /etc/z")
                          + manifest(R3, "garbage line", f"b 644 root root /b/y.{R3}.a~ /etc/y"))
    assert got.undoable == [R1, R3]
    assert got.runs[R1] == [runs.Entry("/etc/x", f"/b/x.{R1}.a~", 0o600, "wso2", "wso2")]
    assert len(got.runs[R3]) == 1  # a line of another format is skipped
    other = runs.parse_runs(manifest(R2, "b 644 root root /b/q /etc/q"))
    assert runs.pick_run({"lb": got, "node1": other}) == R3
    assert runs.pick_run({"lb": runs.HostRuns()}) is None


def test_the_state_before_a_run_is_its_first_backup_of_a_path():
    a = runs.Entry("/etc/x", "/b/1", 0o644, "root", "root")
    b = runs.Entry("/etc/x", "/b/2", 0o600, "root", "root")
    assert runs.before_run([a, b]) == {"/etc/x": a}


def _node_with_run(hosts, node="node1", current=b"<new/>", backup=b"<old/>"):
    h = hosts[node]
    h.answer(re.escape(runs.RUNS_DIR) + r".*@run",
             stdout=manifest(R2, f"b 644 wso2 wso2 {BAK} {CARBON}"))
    h.files[BAK] = FakeFile(backup, 0o600)
    h.files[CARBON] = FakeFile(current, 0o600, "wso2", "wso2")
    return h


def test_rollback_puts_back_the_newest_run_and_restarts_its_nodes(inv, monkeypatch):
    run, hosts = fake_run(inv, monkeypatch)
    h = _node_with_run(hosts)
    restarted = []
    monkeypatch.setattr(deploy, "restart_nodes",
                        lambda run, nodes, **kw: restarted.append((nodes, kw)) or True)
    assert rollback.rollback_step(run)
    writes = [sc for sc in h.scripts if "commit " in sc]
    assert len(writes) == 1
    w = writes[0]
    # written by its owner with the mode it had before the run, the node marked for restart,
    # the run marked undone (the next rollback goes one further back)
    assert re.search(r"^stage wso2 wso2 644 \S*carbon.xml", w, re.M)
    assert "pending-restart" in w and f"{R2}.undone" in w and f"{run.stamp}.rollback" in w
    assert [n.name for n in restarted[0][0]] == ["node1"] and restarted[0][1]["rolling"] is False
    assert not any("commit " in sc for sc in hosts["node2"].scripts + hosts["lb"].scripts)
    assert f"rolling back run {R2}" in output(run)


def test_rollback_check_mode_writes_nothing(inv, monkeypatch):
    run, hosts = fake_run(inv, monkeypatch, check=True, diff=True)
    h = _node_with_run(hosts)
    monkeypatch.setattr(deploy, "restart_nodes", lambda run, nodes, **kw: True)
    assert rollback.rollback_step(run)
    assert not any("commit " in sc for sc in h.scripts)
    assert "would change (check mode)" in output(run)


def test_rollback_refuses_before_any_change_when_a_backup_is_gone(inv, monkeypatch):
    run, hosts = fake_run(inv, monkeypatch)
    _node_with_run(hosts)
    _node_with_run(hosts, "node2")
    del hosts["node2"].files[BAK]
    with pytest.raises(Abort, match="cannot be rolled back on every host"):
        rollback.rollback_step(run)
    assert not any("commit " in sc for h in hosts.values() for sc in h.scripts)
    assert "its backup" in output(run) and "is gone" in output(run)


def test_rollback_with_no_run_says_so(inv, monkeypatch):
    run, hosts = fake_run(inv, monkeypatch)
    assert rollback.rollback_step(run)
    assert "nothing to roll back" in output(run)


def test_a_run_with_no_net_change_is_marked_and_the_one_before_it_rolled_back(inv, monkeypatch):
    """A rolling restart drains and undrains (two writes, nothing differs after): rollback
    marks it and goes on to the run before it, which is what the operator means."""
    run, hosts = fake_run(inv, monkeypatch)
    h = hosts["node1"]
    bak3 = BAK.replace(R2, R3)
    h.answer(re.escape(runs.RUNS_DIR) + r".*@run",
             stdout=manifest(R2, f"b 600 wso2 wso2 {BAK} {CARBON}")
             + manifest(R3, f"b 644 wso2 wso2 {bak3} {CARBON}"))
    h.files[BAK] = FakeFile(b"<before-r2/>", 0o600)
    h.files[bak3] = FakeFile(b"<r2/>", 0o600)
    h.files[CARBON] = FakeFile(b"<r2/>", 0o644, "wso2", "wso2")
    restarted = []
    monkeypatch.setattr(deploy, "restart_nodes",
                        lambda run, nodes, **kw: restarted.append(nodes) or True)
    assert rollback.rollback_step(run)
    assert h.ran(f"{R3}.undone") and h.ran(f"{R2}.undone")
    w = [sc for sc in h.scripts if "commit " in sc]
    # secret (0600 before R2): no diff, but written, and the node restarted all the same
    assert len(w) == 1 and re.search(r"^stage wso2 wso2 600 ", w[0], re.M)
    assert [n.name for n in restarted[0]] == ["node1"]
    assert f"run {R3}: every file it replaced is already as before it" in output(run)


def test_lb_rollback_is_validated_and_reloaded(inv, monkeypatch):
    run, hosts = fake_run(inv, monkeypatch)
    conf = "/etc/nginx/conf.d/ei.http.conf"
    bak = f"{remote.BACKUP_DIR}/etc%nginx%conf.d%ei.http.conf.{R2}.x~"
    lb = hosts["lb"]
    lb.answer(re.escape(runs.RUNS_DIR) + r".*@run", stdout=manifest(R2, f"b 644 root root {bak} {conf}"))
    lb.files[bak], lb.files[conf] = b"old\n", b"new\n"
    assert rollback.rollback_step(run)
    w = next(sc for sc in lb.scripts if "commit " in sc)
    assert "nginx -t" in w and lb.ran("reload")


def test_deploy_hint_names_the_run_and_fab_rollback(inv, monkeypatch):
    from tasks.steps import node_config
    run, _ = fake_run(inv, monkeypatch)
    cfg = node_config.ConfigureOutcome(True, changed={"node2"})
    hint = deploy.rollback_hint(run, cfg)
    assert run.stamp in hint and "`fab rollback`" in hint and "node2" in hint
    assert deploy.rollback_hint(run, node_config.ConfigureOutcome(True)) == ""


# --------------------------------------------------------------------------- fab backup / restore

import base64  # noqa: E402
import gzip  # noqa: E402
import os  # noqa: E402
import subprocess  # noqa: E402

from tasks.steps import db, services  # noqa: E402
from tasks.steps.backup import archive, managed, restore, take  # noqa: E402

DUMP_SQL = b"-- MariaDB dump\nDROP DATABASE IF EXISTS `BPS_DS`;\n-- Dump completed on 2026-12-01\n"
DS = "/opt/wso2ei-6.6.0/wso2/business-process/conf/datasources/master-datasources.xml"


def _cluster(hosts, dbs="BPS_DS WSO2_USER_DB"):
    hosts["db"].answer(r"mariadb-dump", stdout=base64.b64encode(gzip.compress(DUMP_SQL)).decode(),
                       stderr=f"@@SERVER 10.11.6-MariaDB\n@@DBS {dbs}\n@@DUMP rc=0\n")
    hosts["db"].files["/etc/mysql/mariadb.conf.d/zz-bps-deploy.cnf"] = b"[mysqld]\n"
    hosts["lb"].files["/etc/nginx/conf.d/ei.http.conf"] = b"server {}\n"
    hosts["lb"].files["/etc/nginx/ssl/server.key"] = FakeFile(b"KEY", 0o600)
    for n in ("node1", "node2"):
        hosts[n].files[DS] = FakeFile(f"<pw>{n}</pw>".encode(), 0o600, "wso2", "wso2")
        hosts[n].files[CARBON] = FakeFile(b"<carbon/>", 0o644, "wso2", "wso2")
    hosts["lb"].answer(r"deploy\.lock", stdout="ACQUIRED\n")


def test_managed_paths_cover_every_role(inv):
    node = managed.managed_paths(inv, inv.nodes[0])
    assert DS in node and CARBON in node and "/etc/systemd/system/wso2ei-bps.service" in node
    assert any(p.endswith("client-truststore.jks") for p in node)
    assert "/etc/nginx/conf.d/ei.https.conf" in managed.managed_paths(inv, inv.lb)
    assert "/etc/mysql/mariadb.conf.d/zz-bps-deploy.cnf" in managed.managed_paths(inv, inv.db)


def test_dump_script_keeps_the_login_off_argv_and_takes_one_snapshot(inv):
    script = __import__("tasks.steps.backup.dbdump", fromlist=["x"]).dump_script(inv)
    assert "--defaults-extra-file=/dev/fd/3" in script and "s3cret" not in script
    assert "--single-transaction" in script and "--databases $dbs" in script
    assert script.count("--databases") == 1  # one dump: one snapshot of every database


def test_backup_writes_a_private_checksummed_folder(inv, monkeypatch, tmp_path):
    run, hosts = fake_run(inv, monkeypatch)
    _cluster(hosts)
    folder = take.take_backup(run, root=tmp_path / "bk")
    assert folder.name == run.stamp and (folder.stat().st_mode & 0o777) == 0o700
    files = [p for p in folder.rglob("*") if p.is_file()]
    assert files and all((p.stat().st_mode & 0o777) == 0o600 for p in files)
    assert all((p.stat().st_mode & 0o777) == 0o700 for p in folder.rglob("*") if p.is_dir())
    r = subprocess.run(["sha256sum", "-c", "--quiet", archive.SUMS], cwd=folder,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    bk = archive.verify(folder)
    m = bk.manifest
    assert m["databases"]["names"] == ["BPS_DS", "WSO2_USER_DB"]
    assert gzip.decompress(bk.dump) == DUMP_SQL
    ds = next(f for f in m["files"] if f["host"] == "node2" and f["path"] == DS)
    assert (ds["mode"], ds["owner"]) == ("0600", "wso2")
    assert bk.file(ds["name"]) == b"<pw>node2</pw>"
    assert {"host": "lb", "path": "/etc/nginx/conf.d/ei.https.conf"} in m["absent"]
    # nothing written on any host
    assert not any("commit " in sc for h in hosts.values() for sc in h.scripts)


def test_backup_check_mode_writes_no_folder(inv, monkeypatch, tmp_path):
    run, hosts = fake_run(inv, monkeypatch, check=True)
    _cluster(hosts)
    assert take.take_backup(run, root=tmp_path / "bk") is None
    assert not (tmp_path / "bk").exists()


def test_a_failed_dump_leaves_no_folder(inv, monkeypatch, tmp_path):
    run, hosts = fake_run(inv, monkeypatch)
    _cluster(hosts)
    hosts["db"].rules.clear()
    hosts["db"].answer(r"mariadb-dump", stderr="@@DBS BPS_DS\nmysqldump: Got error: 1045\n"
                                               "@@DUMP rc=2\n")
    with pytest.raises(Abort, match="mysqldump failed .exit 2.*1045"):
        take.take_backup(run, root=tmp_path / "bk")
    assert not [p for p in (tmp_path / "bk").iterdir()] if (tmp_path / "bk").exists() else True


def test_db_init_drop_takes_a_backup_first_or_drops_nothing(inv, monkeypatch):
    run, hosts = fake_run(inv, monkeypatch)  # the DB host answers no dump: the backup fails
    with pytest.raises(Abort, match=r"so `db-init --drop BPS_DS` did not run"):
        db.db_step(run, ("BPS_DS",))
    assert not any("DROP DATABASE" in sc for sc in hosts["db"].scripts)


def _backup(inv, monkeypatch, tmp_path):
    run, hosts = fake_run(inv, monkeypatch)
    _cluster(hosts)
    return take.take_backup(run, root=tmp_path / "bk")


def test_restore_refuses_without_the_flag_and_says_what_it_would_do(inv, monkeypatch, tmp_path):
    folder = _backup(inv, monkeypatch, tmp_path)
    run, hosts = fake_run(inv, monkeypatch)
    with pytest.raises(Abort) as e:
        restore.restore_step(run, folder, overwrite=False)
    assert "--overwrite-cluster" in str(e.value) and "STOPS every node" in str(e.value)
    assert "BPS_DS" in str(e.value) and all(h.scripts == [] for h in hosts.values())


def test_a_corrupted_backup_is_refused_before_any_host_is_touched(inv, monkeypatch, tmp_path):
    folder = _backup(inv, monkeypatch, tmp_path)
    victim = folder / archive.stored_name("node1", DS)
    os.chmod(victim, 0o600)
    victim.write_bytes(b"<pw>tampered</pw>")
    run, hosts = fake_run(inv, monkeypatch)
    with pytest.raises(Abort, match="failed its checksums, so nothing was stopped"):
        restore.restore_step(run, folder, overwrite=True)
    assert all(h.scripts == [] for h in hosts.values())


def test_restore_stops_then_databases_then_files_then_ordered_start(inv, monkeypatch, tmp_path):
    folder = _backup(inv, monkeypatch, tmp_path)
    run, hosts = fake_run(inv, monkeypatch)
    _cluster(hosts)
    hosts["node1"].files[DS] = FakeFile(b"<pw>changed</pw>", 0o600, "wso2", "wso2")
    events = []
    monkeypatch.setattr(services, "stop_node", lambda run, s: events.append(("stop", s.name))
                        or __import__("tasks.engine.report", fromlist=["x"]).StepResult(
                            s.name, "stop", "changed", "stopped"))
    monkeypatch.setattr(deploy, "restart_nodes", lambda run, nodes, **kw: events.append(
        ("start", [n.name for n in nodes], kw["rolling"])) or True)
    assert restore.restore_step(run, folder, overwrite=True)
    assert events == [("stop", "node2"), ("stop", "node1"), ("start", ["node1", "node2"], False)]
    load = next(i for i, sc in enumerate(hosts["db"].scripts) if "gunzip -c | bps_sql" in sc)
    safety = next(i for i, sc in enumerate(hosts["db"].scripts) if "mariadb-dump" in sc)
    assert safety < load  # the current state is backed up before it is replaced
    w = [sc for sc in hosts["node1"].scripts if "commit " in sc]
    assert len(w) == 1 and "master-datasources.xml" in w[0] and "pending-restart" in w[0]
    assert not any("commit " in sc for sc in hosts["node2"].scripts)  # nothing differs there
    assert len(list((tmp_path / "bk").iterdir())) == 1  # the safety backup went beside hosts.toml
    assert (inv.path.parent / "backups").is_dir()


def test_restore_check_mode_verifies_and_plans_but_changes_nothing(inv, monkeypatch, tmp_path):
    folder = _backup(inv, monkeypatch, tmp_path)
    run, hosts = fake_run(inv, monkeypatch, check=True, diff=True)
    _cluster(hosts)
    hosts["node1"].files[DS] = FakeFile(b"<pw>changed</pw>", 0o600, "wso2", "wso2")
    assert restore.restore_step(run, folder, overwrite=False)  # check mode needs no flag
    text = output(run)
    assert "drop and reload BPS_DS, WSO2_USER_DB from the backup" in text and "~ start EI" in text
    for h in hosts.values():
        assert not [sc for sc in h.scripts if "@@BPS-FACT-BEGIN" not in sc], h.name
    # a secret file (not world-readable) is never diffed in clear
    assert "<pw>node1</pw>" not in text and "<pw>changed</pw>" not in text
    assert len(list((tmp_path / "bk").iterdir())) == 1 and not (inv.path.parent / "backups").exists()


def test_a_restored_lb_set_that_nginx_rejects_is_put_back_whole(inv, monkeypatch, tmp_path):
    from tasks.steps.backup import put_back
    run, hosts = fake_run(inv, monkeypatch)
    hosts["lb"].answer(r"nginx -t", stderr="nginx: [emerg] bad in /etc/nginx/conf.d/ei.http.conf:1",
                       exit=3)
    conf = "/etc/nginx/conf.d/ei.http.conf"
    plan = put_back.put_back_plan(run, inv.lb, [put_back.spec(conf, b"x", 0o644, "root", "root")],
                                  {conf: None}, systemd=False, why="restore of X")
    r = run.apply(run.session(inv.lb), "restore", plan)
    assert r.status == "failed" and "nginx -t rejected" in r.msg and "ei.http.conf:1" in r.msg
    assert not hosts["lb"].ran("reload")


def test_a_unit_file_put_back_is_reloaded_by_systemd(inv, monkeypatch):
    from tasks.steps.backup import put_back
    run, hosts = fake_run(inv, monkeypatch)
    unit = "/etc/systemd/system/wso2ei-bps.service"
    node = inv.nodes[0]
    plan = put_back.put_back_plan(run, node, [put_back.spec(unit, b"[Unit]\n", 0o644, "root",
                                                            "root")],
                                  {unit: remote.FileState("x", 0o644, "root", "root")},
                                  systemd=True, why="rollback of run X")
    assert "systemctl daemon-reload" in plan.changes
    r = run.apply(run.session(node), "rollback", plan)
    assert r.status == "changed" and hosts[node.name].ran(r"(?s)commit .*daemon-reload")
