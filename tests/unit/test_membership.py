"""Stable node identity, the orphan refusal, remove-node's checks and the password rotation's
plans (steps/membership): the pure parts, then the apply paths on the fake-session tier."""
from __future__ import annotations

import dataclasses
import json

import pytest

from tasks.engine.cli import Abort
from tasks.engine.remote import HostSession
from tasks.steps import db, node_config
from tasks.steps.membership import identity, lifecycle, record, remove, rotation
from tasks.steps.membership.identity import Identity, Record
from tests.fakes import FakeFile, FakeHost, fake_run, output
from tests.unit.inv_factory import make_inv


@pytest.fixture
def inv3(tmp_path):
    return make_inv(tmp_path, nodes=3, driver_class="org.mariadb.jdbc.Driver")


def rec(*nodes: tuple[str, str, int], writer="node1", retired=None) -> Record:
    return Record({n: Identity(n, a, k) for n, a, k in nodes}, writer, retired or {})


def without(inv, name):
    """hosts.toml with one [[nodes]] entry taken out (the others move up a position)."""
    kept = [n for n in inv.nodes if n.name != name]
    return dataclasses.replace(inv, nodes=tuple(dataclasses.replace(n, index=i + 1)
                                                for i, n in enumerate(kept)))


# --------------------------------------------------------------------------- identity (pure)


def test_no_record_numbers_by_position_and_node1_writes(inv3):
    res = identity.resolve(None, inv3.nodes)
    assert {i.name: i.number for i in res.wanted.nodes.values()} == {
        "node1": 1, "node2": 2, "node3": 3}
    assert res.wanted.writer == "node1" and res.changed and not res.orphans


def test_a_node_keeps_its_number_by_name_whatever_its_position(inv3):
    full = identity.resolve(None, inv3.nodes).wanted
    after = identity.retire(full, "node2", purge=False)
    inv2 = without(inv3, "node2")
    res = identity.resolve(after, inv2.nodes)
    assert res.wanted.number_of("node3") == 3 and not res.orphans and not res.changed
    resolved = identity.with_identity(inv2, res.wanted)
    node3 = resolved.nodes[1]
    assert node3.index == 2 and node3.registry_number == 3
    assert node_config.node_params(resolved, node3).local_db.url.split("?")[0].endswith(
        "/REGISTRY_LOCAL3")
    assert db.node_databases(resolved, node3.registry_number)[2] == "REGISTRY_LOCAL3"
    assert "REGISTRY_LOCAL2" not in db.db_kinds(resolved)  # kept on the server, not ours now


def test_a_new_node_gets_the_lowest_free_number_never_a_retired_one(inv3):
    r = rec(("node1", "192.0.2.11", 1), ("node3", "192.0.2.13", 3), retired={2: "node2"})
    res = identity.resolve(r, inv3.nodes)  # node2 comes back under the same name: a new node
    assert res.new == ["node2"] and res.wanted.number_of("node2") == 4
    r = rec(("node1", "192.0.2.11", 1), ("node3", "192.0.2.13", 3))
    assert identity.resolve(r, inv3.nodes).wanted.number_of("node2") == 2


def test_the_writer_is_named_and_moves_only_by_retire(inv3):
    r = rec(("node1", "192.0.2.11", 1), ("node2", "192.0.2.12", 2), ("node3", "192.0.2.13", 3),
            writer="node2")
    resolved = identity.with_identity(inv3, identity.resolve(r, inv3.nodes).wanted)
    flags = [node_config.node_params(resolved, n).registry_read_only for n in resolved.nodes]
    assert flags == [True, False, True]
    after = identity.retire(r, "node2", purge=False)
    assert after.writer == "node1" and after.retired == {2: "node2"}
    assert identity.retire(r, "node2", purge=True).retired == {}


def test_record_round_trip_and_unreadable_record():
    r = rec(("node1", "192.0.2.11", 1), retired={2: "node2"})
    assert Record.parse(r.render()) == r
    assert Record.parse(None) is None and Record.parse(b" ") is None
    with pytest.raises(ValueError):
        Record.parse(b"{not json")
    with pytest.raises(ValueError):
        Record.parse(json.dumps({"format": 99, "nodes": []}).encode())


def test_orphans_are_named_with_the_command_to_run(inv3):
    r = identity.resolve(None, inv3.nodes).wanted
    res = identity.resolve(r, without(inv3, "node3").nodes)
    assert [o.name for o in res.orphans] == ["node3"]
    assert "node3" in res.wanted.nodes  # still recorded until remove-node retires it
    msg = identity.orphan_error(res.orphans, "db:/x")
    assert "fab remove-node node3" in msg and "192.0.2.13" in msg and "nothing was changed" in msg


# --------------------------------------------------------------------------- fake sessions


def with_record(hosts, r: Record):
    hosts["db"].files[record.RECORD] = FakeFile(r.render(), mode=0o600)


def test_deploy_preflight_refuses_an_orphan_before_any_change(inv3, monkeypatch):
    inv2 = without(inv3, "node3")
    run, hosts = fake_run(inv2, monkeypatch)
    with_record(hosts, identity.resolve(None, inv3.nodes).wanted)
    raw = record.remote.read_facts(run.session(inv2.db), lifecycle.db_probes(inv2))
    with pytest.raises(Abort) as e:
        lifecycle.preflight(run, raw)
    assert "fab remove-node node3" in str(e.value)
    assert all(not h.ran(".") for h in hosts.values())  # only the fact read ran


def test_record_is_written_once_then_a_no_op(inv3, monkeypatch):
    run, hosts = fake_run(inv3, monkeypatch)
    assert record.record_step(run)
    assert hosts["db"].ran(record.RECORD.replace(".", r"\."))
    assert "REGISTRY_LOCAL3" in output(run)
    run, hosts = fake_run(inv3, monkeypatch)
    with_record(hosts, identity.resolve(None, inv3.nodes).wanted)
    assert record.record_step(run)
    assert len(hosts["db"].scripts) == 1  # the fact read only


def test_record_step_in_check_mode_writes_nothing(inv3, monkeypatch):
    run, hosts = fake_run(inv3, monkeypatch, check=True)
    assert record.record_step(run)
    assert not hosts["db"].ran(".") and "record node identities" in output(run)


def test_an_unreadable_record_stops_the_run(inv3, monkeypatch):
    run, hosts = fake_run(inv3, monkeypatch)
    hosts["db"].files[record.RECORD] = b"garbage"
    with pytest.raises(Abort) as e:
        record.ensure(run)
    assert record.RECORD in str(e.value) and "nothing was changed" in str(e.value)


# --------------------------------------------------------------------------- rotation


def accounts_out(inv, matches: dict[str, bool]) -> str:
    return "version\t10.11.6-MariaDB\tmariadb.org\n" + "".join(
        f"user\t{h}\t{int(ok)}\n" for h, ok in matches.items())


def test_rotation_picks_existing_accounts_with_another_password(inv3):
    a = rotation.parse(accounts_out(inv3, {"192.0.2.11": True, "192.0.2.12": False}))
    # node3 has no account: db-init creates it with the new password, no rotation
    assert [n.name for n in rotation.to_rotate(inv3.nodes, a)] == ["node2"]
    assert "ALTER USER 'wso2bps'@'192.0.2.12'" in rotation.alter_sql(inv3, a.server,
                                                                     inv3.nodes[1])


def test_rotation_runs_node_by_node_through_the_rolling_restart(inv3, monkeypatch):
    run, hosts = fake_run(inv3, monkeypatch)
    run.shared[rotation.KEY] = rotation.parse(accounts_out(inv3, {
        "192.0.2.11": False, "192.0.2.12": False, "192.0.2.13": True}))
    calls = []

    def restart_nodes(run, nodes, *, rolling, prepare=None, step="restart"):
        calls.append(([n.name for n in nodes], rolling, step))
        monkeypatch.setattr(node_config, "configure_step",
                            lambda run, nodes, step="": node_config.ConfigureOutcome(True))
        return all(prepare(n) for n in nodes)

    assert rotation.rotate(run, restart_nodes)
    assert calls == [(["node1", "node2"], True, rotation.STEP)]
    alters = [s for s in hosts["db"].scripts if "ALTER USER" in s]
    assert len(alters) == 2 and "'192.0.2.11'" in alters[0] and "'192.0.2.12'" in alters[1]
    assert "s3cret-db_password" not in "".join(alters)  # the hash only


def test_rotation_stops_when_the_server_refuses(inv3, monkeypatch):
    run, hosts = fake_run(inv3, monkeypatch)
    hosts["db"].answer("ALTER USER", stderr="ERROR 1396 (HY000): Operation ALTER USER failed",
                       exit=1)
    a = rotation.parse(accounts_out(inv3, {"192.0.2.11": False}))
    r = run.apply(run.session(inv3.db), rotation.STEP, rotation.alter_plan(run, inv3.nodes[0], a))
    assert r.status == "failed" and "keeps the old one" in r.msg and "1396" in r.msg
    assert a.matches["192.0.2.11"] is False


def test_rotation_in_check_mode_shows_each_alter_and_runs_nothing(inv3, monkeypatch):
    run, hosts = fake_run(inv3, monkeypatch, check=True)
    run.shared[rotation.KEY] = rotation.parse(accounts_out(inv3, {"192.0.2.12": False}))
    assert rotation.rotate(run, lambda *a, **k: pytest.fail("no restart in check mode"))
    assert "set the password of 'wso2bps'@'192.0.2.12'" in output(run)
    assert not hosts["db"].ran("ALTER")


def test_start_order_new_nodes_last_and_held_out_of_the_lb(inv3):
    class St:
        def __init__(self, running):
            self.running = running
    order, held = lifecycle.start_order(list(inv3.nodes), {"node1": St(True), "node2": St(True),
                                                           "node3": St(False)})
    assert [n.name for n in order] == ["node1", "node2", "node3"] and held == {"node3"}


# --------------------------------------------------------------------------- remove-node


def test_remove_node_refusals(inv3):
    full = identity.resolve(None, inv3.nodes).wanted
    inv2 = without(inv3, "node3")
    res = identity.resolve(full, inv2.nodes)
    listed = {n.name for n in inv2.nodes}
    with pytest.raises(Abort, match="still a \\[\\[nodes\\]\\] entry"):
        remove.check_request(res, listed, "node2", False, False)
    with pytest.raises(Abort, match="no recorded node named 'nodeX'"):
        remove.check_request(res, listed, "nodeX", False, False)
    assert remove.check_request(res, listed, "node3", False, False).number == 3
    res1 = identity.resolve(full, without(inv3, "node1").nodes)
    with pytest.raises(Abort, match="registry writer.*--move-writer"):
        remove.check_request(res1, {"node2", "node3"}, "node1", False, False)
    assert remove.check_request(res1, {"node2", "node3"}, "node1", False, True).name == "node1"


def test_remove_node_drops_only_its_account(inv3, monkeypatch):
    inv2 = without(inv3, "node3")
    run, hosts = fake_run(inv2, monkeypatch)
    gone = Identity("node3", "192.0.2.13", 3)
    r = run.apply(run.session(inv2.db), remove.STEP, remove.drop_account_plan(run, gone))
    assert r.status == "changed" and "REGISTRY_LOCAL3 kept" in r.changes[0]
    assert hosts["db"].ran(r"DROP USER IF EXISTS .*wso2bps.*@.*192\.0\.2\.13")
    assert not hosts["db"].ran("DROP DATABASE")


def test_remove_node_purge_drops_its_local_registry_too(inv3, monkeypatch):
    inv2 = without(inv3, "node3")
    run, hosts = fake_run(inv2, monkeypatch)
    gone = Identity("node3", "192.0.2.13", 3)
    r = run.apply(run.session(inv2.db), remove.STEP, remove.drop_account_plan(run, gone, True))
    assert r.status == "changed" and "DROP DATABASE REGISTRY_LOCAL3" in r.changes[0]
    assert hosts["db"].ran("DROP DATABASE IF EXISTS .*REGISTRY_LOCAL3")
    full = identity.resolve(None, inv3.nodes).wanted
    assert identity.resolve(identity.retire(full, "node3", purge=True),
                            inv3.nodes).wanted.number_of("node3") == 3  # the number is free


def test_remove_node_reaches_the_removed_host_from_the_record(inv3, monkeypatch):
    inv2 = without(inv3, "node3")
    run, hosts = fake_run(inv2, monkeypatch)
    host = Identity("node3", "192.0.2.13", 3, "10.0.0.13").host(3, False)
    assert (host.ssh_address, host.registry_number) == ("10.0.0.13", 3)
    fake = FakeHost("node3").answer("is-enabled", stdout="enabled")
    s = HostSession(host=host, c=None, user="root", sudo_password=None, timeout=30)
    s.fake = fake  # type: ignore[attr-defined]
    run._sessions["node3"] = s
    r = run.apply(run.session(host), remove.STEP, remove.disable_plan(run, run.session(host)))
    assert r.status == "changed" and fake.ran(r"systemctl disable '?wso2ei-bps\.service")


def test_a_gone_machine_is_skipped_with_unreachable_ok_and_fails_without(inv3, monkeypatch):
    """remove-node on a node that cannot be reached: without the flag the run stops (the node
    stays drained); with it the node is taken for gone, recorded as skipped, not failed, so
    the run can succeed."""
    from tasks.engine import remote
    inv2 = without(inv3, "node3")
    host = Identity("node3", "192.0.2.13", 3, "10.0.0.13").host(3, False)
    for flag in (False, True):
        run, hosts = fake_run(inv2, monkeypatch)
        monkeypatch.setattr(remote, "connect", lambda inv, h: (_ for _ in ()).throw(
            remote.Unreachable(f"{h.name}: no route to host")))
        monkeypatch.setattr(remove.deploy, "_lb_configured", lambda run: False)
        if not flag:
            with pytest.raises(Abort, match=r"node3 could not be stopped \(unreachable\).*"
                                            r"--unreachable-ok"):
                remove.take_out(run, host, flag)
            continue
        remove.take_out(run, host, flag)
        [r] = [r for r in run.rep.results if r.host == "node3"]
        assert r.status == "skipped" and "takes the machine for gone" in r.msg
        assert run.rep.failed_hosts() == [] and "node3" in run.dead
