"""hosts_file: the one owner of the nodes' (and the LB's) /etc/hosts: one block, one write."""
from __future__ import annotations

import dataclasses

from tasks.engine import remote
from tasks.steps import hosts_file, lb
from tests.fakes import FakeFile, fake_run, output
from tests.unit.inv_factory import make_inv

BASE = b"127.0.0.1\tlocalhost\n"
BLOCK = ("# BEGIN bps-deploy names (managed, do not edit)\n"
         "192.0.2.2\tei.example.com ui.ei.example.com\n"
         "192.0.2.3\tcarbondb.example.com\n# END bps-deploy names\n")


def new_text(plan) -> str:
    return plan.actions[0].files[0].spec.content.decode()


def test_one_block_with_the_lb_and_db_names(tmp_path):
    inv = make_inv(tmp_path)
    p = hosts_file.plan_hosts(BASE, None, inv)
    assert new_text(p) == BASE.decode() + BLOCK
    assert p.changes == ["create /etc/hosts (map ei.example.com ui.ei.example.com, "
                         "carbondb.example.com)"]
    again = hosts_file.plan_hosts(new_text(p).encode(), None, inv)
    assert not again.actions and again.noop.startswith("/etc/hosts already maps ei.example.com")


def test_the_lb_gets_its_names_only(tmp_path):
    inv = make_inv(tmp_path)
    assert hosts_file.wanted_lines(inv, "lb") == ["192.0.2.2\tei.example.com ui.ei.example.com"]
    assert lb.hosts_block(inv) == hosts_file.wanted_lines(inv, "lb")


def test_the_two_old_blocks_fold_into_one_write(tmp_path):
    inv = make_inv(tmp_path)
    old = (BASE.decode()
           + "# BEGIN bps-deploy db-name (managed, do not edit)\n192.0.2.3\tcarbondb.example.com\n"
             "# END bps-deploy db-name\n"
           + "# BEGIN bps-deploy lb-names (managed, do not edit)\n"
             "192.0.2.2\tei.example.com ui.ei.example.com\n# END bps-deploy lb-names\n")
    p = hosts_file.plan_hosts(old.encode(), None, inv)
    assert len(p.actions) == 1 and new_text(p) == BASE.decode() + BLOCK


def test_other_lines_naming_our_hosts_are_reported_not_edited(tmp_path):
    inv = make_inv(tmp_path)
    text = BASE + b"10.0.0.9 carbondb.example.com # old\n"
    p = hosts_file.plan_hosts(text, None, inv)
    assert new_text(p).startswith(text.decode())
    assert p.warnings == ["another line also maps carbondb.example.com (left alone, may win): "
                          "10.0.0.9 carbondb.example.com # old"]


def test_etc_hosts_off_removes_the_block(tmp_path):
    on = make_inv(tmp_path)
    off = dataclasses.replace(on, cluster=dataclasses.replace(on.cluster, etc_hosts=False))
    p = hosts_file.plan_hosts((BASE.decode() + BLOCK).encode(), None, off)
    assert new_text(p) == BASE.decode() and "remove our names block" in p.changes[0]
    assert not hosts_file.plan_hosts(BASE, None, off).actions


def test_db_name_equal_to_its_address_is_not_mapped(tmp_path):
    inv = make_inv(tmp_path)
    inv = dataclasses.replace(inv, database=dataclasses.replace(inv.database,
                                                                hostname=inv.db.address))
    assert hosts_file.wanted_lines(inv) == ["192.0.2.2\tei.example.com ui.ei.example.com"]


def test_keeps_owner_and_mode(tmp_path):
    st = remote.FileState("x", 0o640, "root", "adm")
    sp = hosts_file.changes(BASE, st, make_inv(tmp_path))[0].spec
    assert (sp.mode, sp.owner, sp.group) == (0o640, "root", "adm")


# --------------------------------------------------------------------------- apply (fakes)


def test_apply_writes_once_and_a_later_step_does_not_read_again(tmp_path, monkeypatch):
    inv = make_inv(tmp_path)
    run, hosts = fake_run(inv, monkeypatch)
    for n in inv.nodes:
        hosts[n.name].files["/etc/hosts"] = BASE
    assert hosts_file.nodes_step(run) is True
    for n in inv.nodes:
        h = hosts[n.name]
        assert len(h.scripts) == 2 and "BPS_EOF" in h.scripts[1]  # one read, one write
    assert lb.node_hosts(run, run.session(inv.nodes[0])).status == "ok"
    assert len(hosts["node1"].scripts) == 2
    assert "[node1] etc-hosts: changed" in output(run)


def test_check_mode_and_diff(tmp_path, monkeypatch):
    inv = make_inv(tmp_path)
    run, hosts = fake_run(inv, monkeypatch, check=True, diff=True)
    for n in inv.nodes:
        hosts[n.name].files["/etc/hosts"] = BASE
    assert hosts_file.nodes_step(run) is True
    out = output(run)
    assert "[node1] etc-hosts: changed: would change (check mode)" in out
    assert "[node1] +192.0.2.3\tcarbondb.example.com" in out
    assert all(len(h.scripts) == 1 for h in hosts.values() if h.scripts)  # reads only


def test_not_a_file_fails_the_host_and_writes_nothing(tmp_path, monkeypatch):
    inv = make_inv(tmp_path)
    run, hosts = fake_run(inv, monkeypatch)
    hosts["node1"].files["/etc/hosts"] = FakeFile(b"", kind="link")
    hosts["node2"].files["/etc/hosts"] = BASE
    assert hosts_file.nodes_step(run) is False
    out = output(run)
    assert "[node1] etc-hosts: failed: /etc/hosts is a link, not a regular file" in out
    assert len(hosts["node1"].scripts) == 1 and len(hosts["node2"].scripts) == 2


def test_a_failed_write_names_the_host_and_cause(tmp_path, monkeypatch):
    inv = make_inv(tmp_path)
    run, hosts = fake_run(inv, monkeypatch)
    for n in inv.nodes:
        hosts[n.name].files["/etc/hosts"] = BASE
    hosts["node2"].answer(r"BPS_EOF", stderr="mv: cannot move: Read-only file system", exit=1)
    assert hosts_file.nodes_step(run) is False
    out = output(run)
    assert "[node2] etc-hosts: failed: update /etc/hosts" in out
    assert "Read-only file system" in out
