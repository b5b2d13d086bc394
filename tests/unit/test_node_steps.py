"""The node steps' apply paths over fake sessions (tests/fakes.py): configure, the systemd unit,
start/stop and the health gate, the deploy preflight and lock. Real planners, the real runner."""
from __future__ import annotations

import hashlib

import pytest

from tasks.engine.cli import Abort
from tasks.engine.report import Status
from tasks.steps import deploy, node_config, services, systemd
from tasks.wso2 import ei_xml
from tests.fakes import FakeFile, fake_run, output
from tests.paths import PROFILE_CONF as CONF
from tests.unit.inv_factory import make_inv

JAVA = "java 11.0.20 (/usr/lib/jvm/java-11)"
NO_INIT = "none\npid1 sh\ncontainer none\nnofile 1048576 1048576"
SYSTEMD_INIT = "systemd\npid1 systemd\ncontainer none\nnofile 1048576 1048576"


@pytest.fixture(autouse=True)
def no_node_keys(monkeypatch):
    """The cluster CA's node keys step and the vault step after configure have their own
    tests (test_node_keys, test_vault)."""
    from tasks.steps import node_keys
    from tasks.steps.vault import step as vault_step
    monkeypatch.setattr(node_keys, "keys_step", lambda run, outcome, nodes: None)
    monkeypatch.setattr(vault_step, "vault_step", lambda run, outcome, nodes: None)


@pytest.fixture
def inv(tmp_path):
    return make_inv(tmp_path, driver_class="org.mariadb.jdbc.Driver")


def shipped() -> dict[str, bytes]:
    return {rel: (CONF / rel).read_bytes() for rel in ei_xml.CONF_FILES}


def node_host(inv, host, conf: dict[str, bytes], *, init: str = NO_INIT, java: str = JAVA,
              lib: str = "", remembered: str = "", proc: str = "dead"):
    """A node with EI installed, its service user, and `conf` as its config files."""
    user = inv.cluster.service_user
    for rel, data in conf.items():
        mode = 0o600 if rel in node_config.SECRET_FILES else 0o644
        host.files[f"{node_config.conf_dir(inv)}/{rel}"] = FakeFile(data, mode, user, user)
    host.answer(r"^test -d ", stdout="yes")
    host.answer(r"^id -u \S+ >/dev/null 2>&1 && echo yes", stdout="yes")
    host.answer(r"^JAVA_HOME_WANTED=", stdout=java)
    host.answer(r"^cd \S+/lib 2>/dev/null", stdout=lib)
    host.answer(r"^cat /var/lib/bps-deploy/configure.state", stdout=remembered)
    host.answer(r"^c1=\$\(cat /proc/1/comm", stdout=init)
    host.answer(r"^PROFILE_HOME=", stdout=proc)
    return host


def as_deployed(inv, node, host, jar: bytes):
    """The node exactly as a configure run leaves it (files, driver, sysctl drop-in, state)."""
    from tasks.steps import vault
    wanted = vault.config_files(  # the passwords as Secure Vault aliases, as configure writes
        inv, ei_xml.render_node_config(shipped(), node_config.node_params(inv, node)))
    lib = f"{hashlib.sha256(jar).hexdigest()}  {inv.cluster.jdbc_driver.name}"
    digest = node_config.render_digest(inv, node)
    state = node_config.remembered_state(
        digest, {rel: hashlib.sha256(d).hexdigest() for rel, d in wanted.items()})
    node_host(inv, host, wanted, lib=lib, remembered=state.strip())
    host.files[systemd.SYSCTL_PATH] = systemd.render_sysctl({})
    return wanted


def writes(host) -> list[str]:
    return [s for s in host.scripts if "@@BPS-FACT-BEGIN" not in s]


# --------------------------------------------------------------------------- configure


def test_configure_fresh_node_writes_everything_in_one_script(inv, monkeypatch):
    run, hosts = fake_run(inv, monkeypatch)
    node = inv.nodes[0]
    node_host(inv, hosts[node.name], shipped())
    out = node_config.configure_step(run, [node])
    r = run.rep.results[-1]
    assert r.status == Status.CHANGED, r.msg
    assert any("master-datasources.xml" in c for c in r.changes)
    assert any(inv.cluster.jdbc_driver.name in c for c in r.changes)
    assert len(writes(hosts[node.name])) == 1  # every write, the mark and the state: one script
    script = writes(hosts[node.name])[0]
    assert "pending-restart" in script and "\nremember " in script
    assert out.ok and out.changed == {node.name} and out.restart == {node.name}
    assert out.states[node.name].running is False


def test_configure_noop_reads_once_and_writes_nothing(inv, monkeypatch):
    run, hosts = fake_run(inv, monkeypatch)
    node = inv.nodes[0]
    as_deployed(inv, node, hosts[node.name], inv.cluster.jdbc_driver.read_bytes())
    out = node_config.configure_step(run, [node])
    r = run.rep.results[-1]
    assert r.status == Status.OK and "configuration up to date" in r.msg, (r.msg, r.changes)
    assert hosts[node.name].scripts and not writes(hosts[node.name])
    assert len(hosts[node.name].scripts) == 1  # one fact read: no content fetch
    assert out.changed == set() and out.restart == set()


def test_configure_files_as_wanted_but_not_remembered_is_a_change_not_an_ok(inv, monkeypatch):
    """A result reported ok never writes: remembering the render is a (small) change."""
    run, hosts = fake_run(inv, monkeypatch)
    node = inv.nodes[0]
    as_deployed(inv, node, hosts[node.name], inv.cluster.jdbc_driver.read_bytes())
    hosts[node.name].rules = [r for r in hosts[node.name].rules
                              if "configure.state" not in r[0].pattern]
    out = node_config.configure_step(run, [node])
    r = run.rep.results[-1]
    assert r.status == Status.CHANGED and r.changes == [
        f"remember what the files were rendered from ({node_config.CONFIG_STATE})"]
    assert len(writes(hosts[node.name])) == 1 and "\nremember " in writes(hosts[node.name])[0]
    assert out.changed == set()  # not a configuration change: no restart, no drift
    assert node_config.plan_configure(run, run.session(node)).drift is False


def test_configure_check_mode_lists_the_changes_and_writes_nothing(inv, monkeypatch):
    run, hosts = fake_run(inv, monkeypatch, check=True)
    node = inv.nodes[0]
    node_host(inv, hosts[node.name], shipped())
    out = node_config.configure_step(run, [node])
    r = run.rep.results[-1]
    assert r.status == Status.CHANGED and "would change (check mode)" in r.msg
    assert any("axis2.xml" in c for c in r.changes)
    assert not writes(hosts[node.name])
    assert out.changed == {node.name}  # "would change": what a check-mode deploy plans on


def test_configure_diff_masks_the_secrets(inv, monkeypatch):
    run, hosts = fake_run(inv, monkeypatch, check=True, diff=True)
    node = inv.nodes[0]
    node_host(inv, hosts[node.name], shipped())
    node_config.configure_step(run, [node])
    r = run.rep.results[-1]
    text = "".join(r.diffs)
    assert "master-datasources.xml" in text and "axis2.xml" in text  # every file has its diff
    assert inv.secrets.db_password not in text and inv.secrets.admin_password not in text
    assert inv.secrets.db_password not in output(run)


def test_configure_refuses_a_broken_install_before_writing(inv, monkeypatch):
    run, hosts = fake_run(inv, monkeypatch)
    node = inv.nodes[0]
    conf = shipped()
    del conf["axis2/axis2.xml"]
    node_host(inv, hosts[node.name], conf)
    out = node_config.configure_step(run, [node])
    r = run.rep.results[-1]
    assert r.status == Status.FAILED and "axis2/axis2.xml is missing" in r.msg
    assert "nothing written" in r.msg and not writes(hosts[node.name])
    assert not out.ok and node.name in run.dead


def test_configure_refuses_an_unsupported_jdk(inv, monkeypatch):
    run, hosts = fake_run(inv, monkeypatch)
    node = inv.nodes[0]
    node_host(inv, hosts[node.name], shipped(), java="java 17.0.2 (/usr/lib/jvm/java-17)")
    node_config.configure_step(run, [node])
    r = run.rep.results[-1]
    assert r.status == Status.FAILED and "JDK 17.0.2" in r.msg and not writes(hosts[node.name])


def test_configure_write_failure_fails_the_host_naming_it(inv, monkeypatch):
    run, hosts = fake_run(inv, monkeypatch)
    node = inv.nodes[0]
    node_host(inv, hosts[node.name], shipped()).answer(r"^SERVICE_USER=\S+\nEI_HOME=",
                                                       stderr="No space left on device", exit=1)
    node_config.configure_step(run, [node])
    r = run.rep.results[-1]
    assert r.status == Status.FAILED and "No space left on device" in r.msg


# --------------------------------------------------------------------------- systemd


def test_systemd_host_gets_the_unit_written_reloaded_and_enabled(inv, monkeypatch):
    run, hosts = fake_run(inv, monkeypatch, diff=True)
    node = inv.nodes[0]
    unit = "dead\nsystemd\nLoadState=not-found\nActiveState=inactive\nUnitFileState=\n"
    node_host(inv, hosts[node.name], shipped(), init=SYSTEMD_INIT, proc=unit)
    out = node_config.configure_step(run, [node])
    r = run.rep.results[-1]
    assert r.status == Status.CHANGED, r.msg
    assert f"systemctl enable {systemd.UNIT_NAME} (started at boot)" in r.changes
    assert "systemctl daemon-reload" in r.changes
    assert any(systemd.UNIT_PATH in d for d in r.diffs)
    script = writes(hosts[node.name])[0]
    assert script.index(systemd.UNIT_PATH) < script.index("systemctl daemon-reload") \
        < script.index(f"systemctl enable {systemd.UNIT_NAME}")
    assert out.restart == {node.name}


def test_systemd_unit_as_wanted_only_enables(inv, monkeypatch):
    run, hosts = fake_run(inv, monkeypatch)
    node = inv.nodes[0]
    as_deployed(inv, node, hosts[node.name], inv.cluster.jdbc_driver.read_bytes())
    h = hosts[node.name]
    h.rules = [(rx, res) for rx, res in h.rules if "comm" not in rx.pattern
               and "PROFILE_HOME" not in rx.pattern]
    h.answer(r"^c1=\$\(cat /proc/1/comm", stdout=SYSTEMD_INIT)
    h.answer(r"^PROFILE_HOME=", stdout="dead\nsystemd\nLoadState=loaded\nActiveState=inactive\n"
                                       "UnitFileState=disabled\n")
    h.files[systemd.UNIT_PATH] = systemd.render_unit(inv, node, "/usr/lib/jvm/java-11",
                                                     inv.cluster.nofile)
    out = node_config.configure_step(run, [node])
    r = run.rep.results[-1]
    assert r.status == Status.CHANGED and r.changes == [
        f"systemctl enable {systemd.UNIT_NAME} (started at boot)"], r.changes
    assert "systemctl daemon-reload" not in writes(h)[0]
    assert out.restart == set()  # enabling at boot changes nothing a running node reads


# --------------------------------------------------------------------------- services


def test_stop_of_a_stopped_node_is_ok_and_runs_nothing(inv, monkeypatch):
    run, hosts = fake_run(inv, monkeypatch)
    node = inv.nodes[0]
    r = services.stop_node(run, run.session(node))
    assert r.status == Status.OK and r.msg == "not running" and not writes(hosts[node.name])


def test_stop_of_a_running_node_reports_a_sigkill(inv, monkeypatch):
    run, hosts = fake_run(inv, monkeypatch)
    node = inv.nodes[0]
    h = hosts[node.name]
    h.answer(r"^ei_stop$", stdout="killed: still running 120s after SIGTERM, sent SIGKILL")
    h.answer(r"^PROFILE_HOME=", stdout="alive 4242")
    r = services.stop_node(run, run.session(node))
    assert r.status == Status.CHANGED and r.killed and "KILLED" in r.msg and "4242" in r.msg
    assert r.changes == ["stop EI (pid 4242)"]


def test_stop_check_mode_runs_nothing(inv, monkeypatch):
    run, hosts = fake_run(inv, monkeypatch, check=True)
    node = inv.nodes[0]
    hosts[node.name].answer(r"^PROFILE_HOME=", stdout="alive 4242")
    r = services.stop_node(run, run.session(node))
    assert r.status == Status.CHANGED and "would change (check mode)" in r.msg
    assert not writes(hosts[node.name])


def start_on_fake_node1(inv, monkeypatch):
    """A run over fake hosts whose health waits do not sleep; node1 and its fake host."""
    monkeypatch.setattr(services.health.time, "sleep", lambda s: None)
    run, hosts = fake_run(inv, monkeypatch)
    node = inv.nodes[0]
    return run, node, hosts[node.name]


def test_start_that_never_gets_healthy_fails_keeps_the_mark_and_shows_the_log(inv, monkeypatch):
    run, node, h = start_on_fake_node1(inv, monkeypatch)
    h.answer(r"^tail -n 40 ", stdout="java.lang.OutOfMemoryError\n")
    r = services.start_and_wait(run, run.session(node))
    assert r.status == Status.FAILED and r.restarted
    assert r.msg.startswith("not healthy after start: the process exited")
    assert "OutOfMemoryError" in r.msg
    assert h.ran("not healthy after the last start")  # the pending mark stays
    assert not h.ran(r"^rm -f /var/lib/bps-deploy/pending-restart")
    assert h.ran(r"^ei_ctl start$")


def test_start_healthy_clears_the_pending_mark(inv, monkeypatch):
    run, node, h = start_on_fake_node1(inv, monkeypatch)
    # the first rule a probe matches answers it: the process library's calls before the library
    h.answer(r"^ei_login_code ", stdout="200")
    h.answer(r"^ei_log_pos$", stdout="1234 99")
    h.answer(r"^PROFILE_HOME=", stdout="alive 77")
    h.answer(r"^cat /var/lib/bps-deploy/pending-restart", stdout="S configure: axis2.xml")
    h.answer(r"^LOG=", stdout="count 1\nrolled -")
    r = services.start_and_wait(run, run.session(node))
    assert r.status == Status.CHANGED and r.restarted, r.msg
    assert r.changes == ["restart EI, healthy before the next node (pending: S configure: "
                         "axis2.xml)"]
    assert "restarted, healthy: pid 77" in r.msg
    assert h.ran(r"^rm -f /var/lib/bps-deploy/pending-restart")
    assert h.ran(r"^ei_stop$")  # the running JVM stops before the new start


def test_start_check_mode_says_what_it_would_do(inv, monkeypatch):
    run, hosts = fake_run(inv, monkeypatch, check=True)
    node = inv.nodes[0]
    r = services.start_and_wait(run, run.session(node))
    assert r.status == Status.CHANGED and r.changes[0].startswith("start EI")
    assert not writes(hosts[node.name])


# --------------------------------------------------------------------------- deploy


def preflight_ready(inv, hosts, ei: str = "present"):
    for h in inv.hosts:
        f = hosts[h.name]
        f.answer(r"^id -u$", stdout="0")
        f.answer(r"^\. /etc/os-release", stdout="Debian GNU/Linux 12")
        f.answer(r"^ip -o -4 addr", stdout=h.address)
        f.answer(r"^TARGETS=", stdout="")
        f.answer(r"^nginx -v", stdout="1.22.1")
        f.answer(r"^openssl version", stdout="OpenSSL 3")
        f.answer(r"^command -v ", stdout="/usr/bin/x")
        f.answer(r"^# Where keytool is on a node", stdout="/usr/bin/keytool")
        f.answer(r"mysqld --version", stdout="mariadbd 10.11")
        f.answer(r"^test -d .*business-process", stdout=ei)
        f.answer(r"^JAVA_HOME_WANTED=", stdout=JAVA)


def test_preflight_finds_the_nodes_to_install_as_a_typed_value(tmp_path, monkeypatch):
    zip_ = tmp_path / "wso2ei-6.6.0.zip"
    zip_.write_bytes(b"PK")
    inv = make_inv(tmp_path, cluster={"ei_zip": str(zip_)}, driver_class="org.mariadb.jdbc.Driver")
    run, hosts = fake_run(inv, monkeypatch)
    preflight_ready(inv, hosts, ei="")
    assert deploy.preflight(run) == list(inv.nodes)
    r = [x for x in run.rep.results if x.host == inv.nodes[0].name][-1]
    assert r.value == deploy.Preflight(needs_install=True)


def test_preflight_without_ei_and_without_zip_stops_the_run(inv, monkeypatch):
    run, hosts = fake_run(inv, monkeypatch)
    preflight_ready(inv, hosts, ei="")
    with pytest.raises(Abort, match="EI_HOME .* missing"):
        deploy.preflight(run)


def test_preflight_names_an_unreachable_path(inv, monkeypatch):
    run, hosts = fake_run(inv, monkeypatch)
    preflight_ready(inv, hosts)
    h = hosts[inv.nodes[0].name]
    h.rules = [(rx, res) for rx, res in h.rules if rx.pattern != "^TARGETS="]
    h.answer(r"^TARGETS=", stdout=f"{inv.db.name}:{inv.database.port} unreachable (timed out)\n")
    with pytest.raises(Abort, match=f"cannot reach {inv.db.name} on port"):
        deploy.preflight(run)


def test_lock_held_by_another_run_stops_the_deploy(inv, monkeypatch):
    run, hosts = fake_run(inv, monkeypatch)
    hosts["lb"].answer(r"^lock_take$", stdout="HELD\nalice@elsewhere pid=7 boot=b since=t\n")
    with pytest.raises(Abort, match="another deploy holds the lock on lb .*alice@elsewhere"):
        deploy.acquire_lock(run)
    assert not hosts["lb"].ran(r"^lock_break$")


def test_lock_is_taken_and_released_but_not_in_check_mode(inv, monkeypatch):
    run, hosts = fake_run(inv, monkeypatch)
    hosts["lb"].answer(r"^lock_take$", stdout="ACQUIRED\n")
    with deploy.deploy_lock(run):
        assert hosts["lb"].ran(r"^lock_take$")
    assert hosts["lb"].ran(r"^lock_break$")
    run, hosts = fake_run(inv, monkeypatch, check=True)
    with deploy.deploy_lock(run):
        pass
    assert hosts["lb"].scripts == []


def test_unlock_removes_a_held_lock_and_check_mode_only_says_so(inv, monkeypatch):
    for check in (True, False):
        run, hosts = fake_run(inv, monkeypatch, check=check)
        hosts["lb"].answer(r"^lock_show$", stdout="bob@m pid=1 boot=b since=t\n")
        r = deploy.unlock_host(run, run.session(inv.lb))
        assert r.status == Status.CHANGED
        assert r.changes == ["remove the deploy lock of bob@m pid=1 boot=b since=t"]
        assert hosts["lb"].ran(r"^lock_break$") is not check


# --------------------------------------------------------------------------- status


def test_status_drift_is_planned_never_applied(inv, monkeypatch):
    from tasks.steps import status
    run, hosts = fake_run(inv, monkeypatch)  # not a check run: status must not need one
    n1, n2 = inv.nodes
    node_host(inv, hosts[n1.name], shipped())
    as_deployed(inv, n2, hosts[n2.name], inv.cluster.jdbc_driver.read_bytes())
    drifted = status.drift_of(run, run.session(n1))
    assert drifted.status == Status.FAILED and drifted.value.drift is True
    assert any("axis2.xml" in c for c in drifted.changes)
    clean = status.drift_of(run, run.session(n2))
    assert clean.status == Status.OK and clean.value.drift is False
    assert not writes(hosts[n1.name]) and not writes(hosts[n2.name])
