"""Operations: who may break the deploy lock, leftover drains, the locale EI starts in."""
import pytest

from tasks.steps import deploy, lb, services

from tasks.engine import remote
from tests.unit.inv_factory import make_inv

BOOT = "0b1e5c1a-8a4e-4d0e-9d3c-1f2e3d4c5b6a"
ME = deploy.LockOwner("alice", "ops1", 4242, BOOT, "2026-01-01T00:00:00Z")


def dead(pid):
    return False


def alive(pid):
    return True


def lock(user="alice", machine="ops1", pid=999, boot=BOOT):
    return str(deploy.LockOwner(user, machine, pid, boot, "2026-01-01T00:00:00Z"))


def test_lock_owner_round_trip():
    text = str(ME)
    assert text == f"alice@ops1 pid=4242 boot={BOOT} since=2026-01-01T00:00:00Z"
    assert deploy.LockOwner.parse(text) == ME
    assert deploy.LockOwner.parse("garbage") is None
    assert deploy.LockOwner.parse("alice@ops1 pid=x") is None


def test_own_dead_lock_is_broken():
    stale, why = deploy.stale_lock(lock(), ME, dead)
    assert stale and "999 is gone" in why


@pytest.mark.parametrize("holder,pid_alive,reason", [
    (lock(user="bob"), dead, "another user (bob, you are alice)"),
    (lock(machine="ops2"), dead, "another machine (ops2)"),
    (lock(boot="11111111-2222-3333-4444-555555555555"), dead, "last reboot"),
    (lock(boot="?"), dead, "no boot id"),
    (lock(), alive, "still running"),
    # a lock written before boot ids were recorded: its pid proves nothing
    ("alice@ops1 pid=999 since=2026-01-01T00:00:00Z", dead, "no boot id"),
    ("", dead, "cannot be read"),
])
def test_other_locks_are_not_broken(holder, pid_alive, reason):
    stale, why = deploy.stale_lock(holder, ME, pid_alive)
    assert not stale and reason in why, why


def test_unknown_own_boot_id_never_breaks():
    me = deploy.LockOwner("alice", "ops1", 1, "?")
    assert not deploy.stale_lock(lock(), me, dead)[0]


def test_this_process_reads_a_boot_id():
    assert deploy._lock_owner().boot not in ("", "?")  # Linux


# --------------------------------------------------------------------- leftover drains


@pytest.fixture
def inv(tmp_path):
    return make_inv(tmp_path)


def lb_facts(inv, drain=frozenset()):
    """An LB holding what we render with `drain`, and the drained marks that render has."""
    specs = lb.render_vhosts(inv, (1, 22, 1), drain)
    marks = "".join(sorted({f"# {n} (drained)\n" for n in drain}))
    return lb.LbFacts(
        nginx_version=(1, 22, 1), nginx_running=True, cert_present=True,
        key_present=True, default_site=False,
        files={sp.path: remote.FileState(sp.sha256, 0o644, "root", "root") for sp in specs},
        hosts_content=remote.managed_block("", lb.hosts_block(inv), lb.HOSTS_MARKER).encode(),
        hosts_state=remote.FileState("x", 0o644, "root", "root"),
        drained=lb.parse_drained(marks))


def test_parse_drained_reads_the_template_mark(inv):
    text = "".join(sp.content.decode() for sp in lb.render_vhosts(inv, (1, 22, 1),
                                                                   frozenset({"node2"})))
    import re
    marks = "\n".join(sorted(set(re.findall(r"# [^ ]* \(drained\)", text))))
    assert lb.parse_drained(marks) == {"node2"}
    assert lb.parse_drained("") == frozenset()


def test_leftover_drain_is_a_change_and_is_said(inv):
    plan = lb.plan_lb(lb_facts(inv, frozenset({"node1"})), inv)
    assert len(plan.vhosts) == 3 and plan.undrain == ["node1"]
    assert any(c.startswith("put back into rotation: node1 (drained by an earlier run")
               for c in plan.changes), plan.changes
    assert "reload nginx" in plan.changes


def test_own_undrain_is_not_called_a_leftover(inv):
    plan = lb.plan_lb(lb_facts(inv, frozenset({"node1"})), inv, undraining=frozenset({"node1"}))
    assert len(plan.vhosts) == 3 and plan.undrain == []


def test_draining_the_next_node_puts_a_leftover_back(inv):
    plan = lb.plan_lb(lb_facts(inv, frozenset({"node1"})), inv, frozenset({"node2"}))
    assert plan.undrain == ["node1"]


def test_no_drain_no_change(inv):
    plan = lb.plan_lb(lb_facts(inv), inv)
    assert plan.changes == [] and plan.undrain == []


# --------------------------------------------------------------------- EI's locale


def test_ei_starts_with_a_utf8_locale(inv):
    script = services._as_service_user(inv, "start")
    assert "\nLOCALE=C.UTF-8\n" in script and 'LANG="$LOCALE" LC_ALL="$LOCALE" sh ' in script
    # after `env`, so the service user's JVM gets it (our scripts run with LC_ALL=C)
    assert script.index("env JAVA_HOME") < script.index('LC_ALL="$LOCALE"')
