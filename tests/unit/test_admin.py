"""The admin password step: the remembered hash, the pure plan (rotation needed / already
applied / old password missing / first deploy), check mode, the script and curl config it sends,
and that a user-mgt.xml change of only the admin seed restarts nothing."""
import base64
import hashlib
import io
import re

import pytest

from tasks.steps import admin, node_config

from tasks.wso2 import ei_xml

from tasks.engine import remote
from tasks.engine.report import Status
from tasks.engine.runner import make_run
from tests.fakes import fake_run, output
from tests.paths import PROFILE_CONF as CONF
from tests.unit.inv_factory import make_inv

NEW = "s3cret-admin_password"  # make_inv's admin password
OLD = "0ld-\"pa<ss>&\\word"


def _inv(tmp_path, old: str | None = None, nodes: int = 2):
    secrets = {}
    if old is not None:
        p = tmp_path / "admin_password_old"
        p.write_text(old + "\n")
        p.chmod(0o600)
        secrets["admin_password_old"] = {"file": p.name}
    return make_inv(tmp_path, nodes, secrets=secrets)


def _state(password: str, user: str = "admin") -> str:
    return admin.state_line(user, password, b"0123456789abcdef")


def test_remembered_hash_never_holds_the_password():
    line = _state(NEW)
    assert NEW not in line and line.startswith("v1 pbkdf2-sha256 ")
    assert admin.state_matches(line, "admin", NEW) is True
    assert admin.state_matches(line, "admin", OLD) is False
    assert admin.state_matches(line, "root", NEW) is False
    assert admin.state_matches(_state(NEW), "admin", NEW) is True
    assert admin.state_matches(admin.state_line("admin", NEW, b"other-salt"), "admin", NEW)
    for junk in ("", "garbage", "v1 pbkdf2-sha256 x admin zz zz", "v2 a b c d e"):
        assert admin.state_matches(junk, "admin", NEW) is None


def test_already_applied_is_a_noop(tmp_path):
    inv = _inv(tmp_path)
    plan = admin.plan_admin(inv, {"node1": _state(NEW), "node2": _state(NEW)})
    assert plan.action == "none" and "already applied" in plan.reason
    # admin_password_old left in hosts.toml after the rotation: said, harmless
    inv = _inv(tmp_path, old=OLD)
    plan = admin.plan_admin(inv, {"node1": _state(NEW), "node2": _state(NEW)})
    assert plan.action == "none" and "admin_password_old is set but not needed" in plan.reason


def test_rotation_needed(tmp_path):
    inv = _inv(tmp_path, old=OLD)
    plan = admin.plan_admin(inv, {"node1": _state(OLD), "node2": _state(OLD)})
    assert plan.action == "apply" and plan.rotate and plan.check_old
    assert plan.first == "node1" and plan.nodes == ("node1", "node2")
    assert plan.pending == ("node1", "node2")
    lines = plan.describe(inv)
    assert "updateCredentialByAdmin(admin) at https://192.0.2.11:9445/services/" \
           "RemoteUserStoreManagerService" in lines[0]
    assert "node1, node2" in lines[1] and "old one fail" in lines[1]
    assert OLD not in " ".join(lines) and NEW not in " ".join(lines)


def test_rotation_half_done_runs_on_node1_again(tmp_path):
    """node1 remembers the new one, node2 the old (a run that died in between): the change
    runs on node 1 again (it is skipped there when the new password already logs in)."""
    inv = _inv(tmp_path, old=OLD)
    plan = admin.plan_admin(inv, {"node1": _state(NEW), "node2": _state(OLD)})
    assert plan.action == "apply" and plan.rotate and plan.nodes == ("node1", "node2")


def test_old_password_missing_is_an_error_naming_it(tmp_path):
    inv = _inv(tmp_path)
    plan = admin.plan_admin(inv, {"node1": _state(OLD), "node2": _state(OLD)})
    assert plan.action == "error" and plan.pending == ("node1", "node2")
    assert "secrets.admin_password_old" in plan.reason
    assert OLD not in plan.reason and NEW not in plan.reason


def test_first_deploy_verifies_and_remembers(tmp_path):
    inv = _inv(tmp_path)
    plan = admin.plan_admin(inv, {"node1": "", "node2": ""})
    assert plan.action == "apply" and not plan.rotate and not plan.check_old
    assert plan.nodes == ("node1", "node2") and plan.pending == ()
    # with admin_password_old given, a store that still has the old one is rotated
    plan = admin.plan_admin(_inv(tmp_path, old=OLD), {"node1": "", "node2": ""})
    assert plan.rotate and plan.check_old


def test_only_the_live_nodes_are_planned(tmp_path):
    inv = _inv(tmp_path, old=OLD)
    plan = admin.plan_admin(inv, {"node2": _state(OLD)})
    assert plan.action == "error" and "node1" in plan.reason  # node 1 changes the store


class _Dummy:
    def __init__(self, host):
        self.host, self.name = host, host.name


def test_check_mode_says_what_it_would_do_and_runs_nothing(tmp_path, monkeypatch):
    inv = _inv(tmp_path, old=OLD)
    stream = io.StringIO()
    run = make_run(inv, check=True, stream=stream)
    run.session = lambda h: _Dummy(h)

    def boom(*a, **k):
        raise AssertionError("check mode ran a remote command")

    monkeypatch.setattr(remote, "run_script", boom)
    monkeypatch.setattr(remote, "read_facts", boom)
    assert admin.admin_step(run, {"node1": _state(OLD), "node2": _state(OLD)})
    text = stream.getvalue()
    assert "[node1] admin: changed: would change (check mode)" in text, text
    assert "~ apply the admin password (rotation pending: node1, node2)" in text
    assert "updateCredentialByAdmin(admin)" in text
    assert OLD not in text and NEW not in text


def test_error_fails_every_pending_node(tmp_path):
    inv = _inv(tmp_path)
    stream = io.StringIO()
    run = make_run(inv, stream=stream)
    run.session = lambda h: _Dummy(h)
    assert not admin.admin_step(run, {"node1": _state(OLD), "node2": _state(OLD)})
    text = stream.getvalue()
    assert re.search(r"\[node1\] admin: failed: .*secrets.admin_password_old", text), text
    assert re.search(r"\[node2\] admin: failed: ", text), text


def test_script_carries_the_passwords_only_inside_base64_curl_configs(tmp_path):
    inv = _inv(tmp_path, old=OLD)
    plan = admin.plan_admin(inv, {"node1": _state(OLD), "node2": _state(OLD)})
    script = admin.node_script(inv, plan, inv.nodes[0], _state(NEW))
    assert NEW not in script and OLD not in script
    header = dict(re.findall(r"^([A-Z_]+)=(.*)$", script.split("\n# shellcheck")[0], re.M))
    assert header["ROTATE"] == "1" and header["CHECK_OLD"] == "1"
    update = base64.b64decode(header["UPDATE"]).decode()
    # curl reads it on stdin (-K -): basic auth with the old password, XML-escaped body
    assert 'user = "admin:0ld-\\"pa<ss>&\\\\word"' in update
    assert "<p:newCredential>s3cret-admin_password</p:newCredential>" in update
    assert 'url = "https://192.0.2.11:9445/services/RemoteUserStoreManagerService"' in update
    login_old = base64.b64decode(header["LOGIN_OLD"]).decode()
    assert "<p:password>0ld-\\\"pa&lt;ss&gt;&amp;\\\\word</p:password>" in login_old
    assert "user =" not in login_old  # login needs no basic auth
    # node2 only verifies
    s2 = admin.node_script(inv, plan, inv.nodes[1], _state(NEW))
    assert "ROTATE=0" in s2 and "UPDATE=''" in s2
    # no secret on the command line of anything the script runs
    body = remote._script_body("admin_password.sh")
    assert "curl -sS -k --max-time 60 --noproxy '*' -K -" in body


def _render(inv, shipped):
    return ei_xml.render_node_config(shipped, node_config.node_params(inv, inv.nodes[0]))


def _facts(conf: dict, jar: bytes) -> node_config.NodeFacts:
    lib = {"mariadb-java-client.jar": hashlib.sha256(jar).hexdigest()}
    return node_config.NodeFacts(
        ei_home=True, user_exists=True, not_owned="", java="openjdk 17", lib=lib,
        conf=conf, conf_state={k: remote.FileState(hashlib.sha256(v).hexdigest(),
                                                   0o600 if k in node_config.SECRET_FILES
                                                   else 0o644, "wso2", "wso2")
                               for k, v in conf.items()}, pending="")


def test_a_new_admin_seed_in_user_mgt_xml_restarts_nothing(tmp_path):
    inv = make_inv(tmp_path, driver_class="org.mariadb.jdbc.Driver",
                   cluster={"secure_vault": False})
    jar = inv.cluster.jdbc_driver.read_bytes()
    shipped = {rel: (CONF / rel).read_bytes() for rel in ei_xml.CONF_FILES}
    done = _render(inv, shipped)
    (tmp_path / "other_pw").write_text("a-new-admin-pw\n")
    (tmp_path / "other_pw").chmod(0o600)
    inv2 = make_inv(tmp_path, driver_class="org.mariadb.jdbc.Driver",
                    cluster={"secure_vault": False}, secrets={"admin_password": {"file": "other_pw"}})
    assert inv2.secrets.admin_password == "a-new-admin-pw"
    plan = node_config.plan_node(inv2, inv2.nodes[0], _facts(done, jar), jar)
    assert [c.spec.path.rsplit("/", 1)[-1] for c in plan.files] == ["user-mgt.xml"]
    assert not plan.empty and plan.restart_reasons == []
    assert remote.PENDING_RESTART not in node_config.apply_script(inv2, plan, "STAMP")
    assert any("only the admin password seed changed" in d for d in plan.describe(inv2))
    # the datasource of the user store does need a restart
    moved = dict(done)
    moved["user-mgt.xml"] = done["user-mgt.xml"].replace(b"jdbc/WSO2UMDB", b"jdbc/WSO2CarbonDB")
    plan = node_config.plan_node(inv2, inv2.nodes[0], _facts(moved, jar), jar)
    assert plan.restart_reasons == ["user-mgt.xml"]
    assert remote.PENDING_RESTART in node_config.apply_script(inv2, plan, "STAMP")


def test_seed_only_detection():
    shipped = (CONF / "user-mgt.xml").read_bytes()
    a = shipped.replace(b"<Password>admin</Password>", b"<Password>one</Password>")
    b = shipped.replace(b"<Password>admin</Password>", b"<Password>two</Password>")
    assert ei_xml.admin_seed_only_change(a, b)
    c = b.replace(b"jdbc/WSO2CarbonDB", b"jdbc/WSO2UMDB")
    assert not ei_xml.admin_seed_only_change(a, c)  # the user store's datasource matters
    d = b.replace(b"<UserName>admin</UserName>", b"<UserName>root</UserName>")
    assert not ei_xml.admin_seed_only_change(a, d)
    assert not ei_xml.admin_seed_only_change(None, a) and not ei_xml.admin_seed_only_change(a, a)
    assert not ei_xml.admin_seed_only_change(b"<broken", a)


# --------------------------------------------------------------------- apply path, fake hosts


def _admin_run(tmp_path, monkeypatch, old=None, **kw):
    run, hosts = fake_run(_inv(tmp_path, old=old), monkeypatch, **kw)
    return run, hosts


def _said(run) -> dict:
    return {r.host: r for r in run.rep.results if r.step == admin.STEP}


def test_rotation_changes_on_node1_then_verifies_everywhere(tmp_path, monkeypatch):
    run, hosts = _admin_run(tmp_path, monkeypatch, old=OLD)
    hosts["node1"].answer(r"^ROTATE=1$", stdout="CHANGED\nNEW-OK\nOLD-REFUSED\n")
    hosts["node2"].answer(r"^ROTATE=0$", stdout="NEW-OK\nOLD-REFUSED\n")
    assert admin.admin_step(run, {"node1": _state(OLD), "node2": _state(OLD)})
    r = _said(run)
    assert r["node1"].status == Status.CHANGED
    assert r["node1"].msg.startswith("admin password changed in the user store")
    assert "the old one is refused" in r["node2"].msg and "its hash remembered" in r["node2"].msg
    # node 1 first and alone: node 2 only verifies, after it
    assert [len(h.scripts) for h in (hosts["node1"], hosts["node2"])] == [1, 1]
    for n in ("node1", "node2"):
        assert NEW not in hosts[n].scripts[0] and OLD not in hosts[n].scripts[0]
    text = output(run)
    assert NEW not in text and OLD not in text


def test_noop_runs_nothing_and_says_why(tmp_path, monkeypatch):
    run, hosts = _admin_run(tmp_path, monkeypatch)
    assert admin.admin_step(run, {"node1": _state(NEW), "node2": _state(NEW)})
    r = _said(run)
    assert all(x.status == Status.OK and "already applied" in x.msg for x in r.values())
    assert not any(h.scripts for h in hosts.values())


def test_check_mode_on_fake_hosts_runs_nothing(tmp_path, monkeypatch):
    run, hosts = _admin_run(tmp_path, monkeypatch, old=OLD, check=True, diff=True)
    assert admin.admin_step(run, {"node1": _state(OLD), "node2": _state(OLD)})
    r = _said(run)
    assert r["node1"].status == Status.CHANGED and "would change (check mode)" in r["node1"].msg
    assert any("updateCredentialByAdmin" in c for c in r["node1"].changes)
    assert not any("updateCredentialByAdmin" in c for c in r["node2"].changes)
    assert r["node1"].diffs == []  # nothing file-shaped: the user store changes
    assert not any(h.scripts for h in hosts.values())


def test_standalone_reads_the_states_in_one_command_per_node(tmp_path, monkeypatch):
    run, hosts = _admin_run(tmp_path, monkeypatch)
    for n in ("node1", "node2"):
        hosts[n].answer(r"admin-password\.state", stdout=_state(NEW))
    assert admin.admin_step(run)
    assert [len(hosts[n].scripts) for n in ("node1", "node2")] == [1, 1]
    assert all(x.status == Status.OK for x in _said(run).values())


def test_failure_on_node1_is_named_and_the_others_are_skipped(tmp_path, monkeypatch):
    run, hosts = _admin_run(tmp_path, monkeypatch, old=OLD)
    hosts["node1"].answer(r"^ROTATE=1$", stderr="node1: updateCredentialByAdmin refused: "
                          "Old credential does not match", exit=3)
    assert not admin.admin_step(run, {"node1": _state(OLD), "node2": _state(OLD)})
    r = _said(run)
    assert r["node1"].status == Status.FAILED and "Old credential does not match" in r["node1"].msg
    assert r["node2"].status == Status.SKIPPED and "change on node1 failed" in r["node2"].msg
    assert not hosts["node2"].scripts


def test_first_deploy_refused_password_gets_the_hint(tmp_path, monkeypatch):
    run, hosts = _admin_run(tmp_path, monkeypatch)
    for n in ("node1", "node2"):
        hosts[n].answer(r"^ROTATE=0$", stderr=f"{n}: the new admin password does not log in",
                        exit=4)
    assert not admin.admin_step(run, {"node1": "", "node2": ""})
    r = _said(run)
    for n in ("node1", "node2"):
        assert r[n].status == Status.FAILED and "set secrets.admin_password_old" in r[n].msg
