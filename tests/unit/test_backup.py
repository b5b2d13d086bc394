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


def test_rollback_of_an_unchanged_file_still_marks_the_run(inv, monkeypatch):
    run, hosts = fake_run(inv, monkeypatch)
    h = _node_with_run(hosts, current=b"<old/>")
    h.files[CARBON] = FakeFile(b"<old/>", 0o644, "wso2", "wso2")
    monkeypatch.setattr(deploy, "restart_nodes", lambda *a, **kw: pytest.fail("no restart"))
    assert rollback.rollback_step(run)
    assert h.ran(f"{R2}.undone") and not h.ran("commit ")


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
    run, _ = fake_run(inv, monkeypatch)
    cfg = deploy.node_config.ConfigureOutcome(True, changed={"node2"})
    hint = deploy.rollback_hint(run, cfg)
    assert run.stamp in hint and "`fab rollback`" in hint and "node2" in hint
    assert deploy.rollback_hint(run, deploy.node_config.ConfigureOutcome(True)) == ""
