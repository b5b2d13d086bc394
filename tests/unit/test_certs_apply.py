"""`fab certs`: the apply path on fake hosts (tests/fakes.py): the LB certificate generated,
renewed or uploaded, handed to the nodes as the LB result's value and imported into their
truststores; check mode, --diff, a no-op, and failures named."""
from __future__ import annotations

import base64
import hashlib
import re

import pytest

from tasks.engine import inventory, remote
from tasks.engine.remote import CmdResult
from tasks.engine.report import Status
from tasks.steps import certs
from tests.fakes import FakeFile, fake_run, output
from tests.unit.inv_factory import make_inv, make_raw

STORE = "/opt/wso2ei-6.6.0/wso2/business-process/repository/resources/security/client-truststore.jks"
OLD_DER, NEW_DER = b"\x30\x03\x02\x01\x01", b"\x30\x03\x02\x01\x02"


def pem(der: bytes) -> bytes:
    return (b"-----BEGIN CERTIFICATE-----\n" + base64.encodebytes(der)
            + b"-----END CERTIFICATE-----\n")


def fp(der: bytes) -> str:
    return certs.cert_fingerprint(pem(der))


def probe_out(der: bytes | None, keystat: str = "600 root") -> str:
    """What lb_cert_probe.sh prints for a good certificate (valid to 2036) with key, or none."""
    if der is None:
        return "CERT=missing\nKEY=missing\n"
    pub = "ab" * 32
    return (f"CERT=present\nsubject=CN=ei.example.com\nnotAfter=Nov 25 13:23:11 2036 GMT\n"
            f"X509v3 Subject Alternative Name: \n    DNS:ei.example.com, DNS:ui.ei.example.com\n"
            f"                Public-Key: (3072 bit)\nCERTPUB={pub}\n"
            f"PEM={base64.b64encode(pem(der)).decode()}\n"
            f"KEY=present\nKEYSTAT={keystat}\nKEYPUB={pub}\n")


def after(host, ran: str, probe: str, stdout: str) -> None:
    """Once a script matching `ran` has run on the fake host, answer `probe` with `stdout`
    (the host's state changed: e.g. the certificate read back after it was generated)."""
    orig = host.exec

    def exec_(command: str, stdin: bytes) -> CmdResult:
        res = orig(command, stdin)
        if re.search(ran, stdin.decode(), re.M):
            host.rules.insert(0, (re.compile(probe, re.M), CmdResult(stdout, "", 0)))
        return res

    host.exec = exec_


@pytest.fixture
def inv(tmp_path):
    return make_inv(tmp_path, 2)


def lab(inv, monkeypatch, lb_der=None, remembered: bytes | None = None, **kw):
    """Fake LB and nodes: the LB's certificate (or none); each node has its required store
    (the optional one is missing), remembering an import of `remembered`'s fingerprint."""
    run, hosts = fake_run(inv, monkeypatch, **kw)
    hosts["lb"].answer(r"^CERT=", stdout=probe_out(lb_der))
    for n in inv.nodes:
        h = hosts[n.name]
        h.files[STORE] = FakeFile(b"JKS", owner="wso2", group="wso2")
        state = f"{hashlib.sha256(b'JKS').hexdigest()} {fp(remembered)} {STORE}\n" \
            if remembered else ""
        h.answer(r"^STORES=", stdout=f"IMPORTED {STORE}\n")
        h.answer(r"truststore\.state", stdout=state)
        h.answer(r"command -v keytool", stdout="/usr/bin/keytool")
    return run, hosts


def results(run) -> dict[str, certs.StepResult]:
    return {r.host: r for r in run.rep.results}


def scripts(host) -> list[str]:
    return [s for s in host.scripts if "@@BPS-FACT-BEGIN" not in s]


def test_first_run_generates_and_every_node_imports_the_new_certificate(inv, monkeypatch):
    run, hosts = lab(inv, monkeypatch)
    after(hosts["lb"], r"^MODE=generate$", r"^CERT=", probe_out(NEW_DER))
    assert certs.certs_step(run)
    r = results(run)
    assert r["lb"].status == Status.CHANGED and f"fingerprint {fp(NEW_DER)}" in r["lb"].msg
    assert "nginx reloaded" in r["lb"].msg
    assert r["lb"].value == certs.LbCert(pem(NEW_DER), fp(NEW_DER), changed=True)
    gen, reload = scripts(hosts["lb"])
    assert "MODE=generate\n" in gen and "KEY_BITS=3072\n" in gen and "backup_name" in gen
    assert "\nACTION=reload\nIF_RUNNING=1\nVALIDATE=1\n" in reload
    for n in inv.nodes:
        assert r[n.name].status == Status.CHANGED and "pending restart" in r[n.name].msg
        [imp] = scripts(hosts[n.name])
        assert f"FINGERPRINT={fp(NEW_DER)}\n" in imp and f"STORES={STORE}\n" in imp
        # the store password only in base64, in the script on stdin
        assert "wso2carbon" not in imp
        assert "PASSWORD_B64=" + base64.b64encode(b"wso2carbon").decode() in imp


def test_no_op_runs_one_fact_read_per_host_and_no_keytool(inv, monkeypatch):
    run, hosts = lab(inv, monkeypatch, lb_der=OLD_DER, remembered=OLD_DER)
    assert certs.certs_step(run)
    r = results(run)
    assert r["lb"].status == Status.OK and "certificate valid for" in r["lb"].msg
    for n in inv.nodes:
        assert r[n.name].status == Status.OK and "no keytool run" in r[n.name].msg
    assert all(len(h.scripts) == 1 for h in hosts.values() if h.name != "db")


def test_renew_replaces_a_good_certificate_and_the_nodes_follow(inv, monkeypatch):
    run, hosts = lab(inv, monkeypatch, lb_der=OLD_DER, remembered=OLD_DER)
    after(hosts["lb"], r"^MODE=generate$", r"^CERT=", probe_out(NEW_DER))
    assert certs.certs_step(run, renew=True)
    r = results(run)
    assert r["lb"].status == Status.CHANGED and "--renew given" in r["lb"].changes[0]
    for n in inv.nodes:  # the remembered import is of the old fingerprint: keytool runs
        assert r[n.name].status == Status.CHANGED
        assert hosts[n.name].ran(f"^FINGERPRINT={re.escape(fp(NEW_DER))}$")


def test_check_mode_shows_both_sides_and_runs_nothing(inv, monkeypatch):
    run, hosts = lab(inv, monkeypatch, check=True, diff=True, remembered=OLD_DER)
    assert certs.certs_step(run)
    r = results(run)
    assert r["lb"].status == Status.CHANGED and "would change (check mode)" in r["lb"].msg
    assert any("self-signed certificate" in c and "no certificate at" in c
               for c in r["lb"].changes)
    # the new certificate is not known in check mode: every node shows its import
    assert r["lb"].value == certs.LbCert(None, None, changed=True)
    for n in inv.nodes:
        assert r[n.name].status == Status.CHANGED and STORE in r[n.name].changes[0]
        assert r[n.name].diffs == []  # keystores are binary: no diff, only the change line
    assert not any(scripts(h) for h in hosts.values())


def test_user_files_are_uploaded_and_the_key_is_never_shown(tmp_path, monkeypatch):
    key = b"-----BEGIN PRIVATE KEY-----\nS3CR3TKEY\n-----END PRIVATE KEY-----\n"
    (tmp_path / "lb.crt").write_bytes(pem(NEW_DER))
    (tmp_path / "lb.key").write_bytes(key)
    raw = make_raw(tmp_path, 2)
    raw["certs"] = {"cert_file": "lb.crt", "key_file": "lb.key"}
    inv = inventory.from_dict(raw, tmp_path / "hosts.toml")
    run, hosts = lab(inv, monkeypatch, lb_der=OLD_DER, remembered=OLD_DER, diff=True)
    after(hosts["lb"], r"^MODE=upload$", r"^CERT=", probe_out(NEW_DER))
    assert certs.certs_step(run)
    r = results(run)
    assert r["lb"].status == Status.CHANGED
    assert r["lb"].changes[0].startswith("upload your certificate and key")
    [up, _reload] = scripts(hosts["lb"])
    assert "KEY_B64=" + base64.b64encode(key).decode() in up and b"S3CR3TKEY" not in up.encode()
    text = output(run)
    assert "S3CR3TKEY" not in text and "PRIVATE KEY" not in text


def test_generate_failure_is_named_and_no_node_is_touched(inv, monkeypatch):
    run, hosts = lab(inv, monkeypatch)
    hosts["lb"].answer(r"^MODE=generate$", stderr="the new certificate does not cover the "
                       "name ui.ei.example.com", exit=1)
    assert not certs.certs_step(run)
    r = results(run)
    assert r["lb"].status == Status.FAILED
    assert "generate failed, the old certificate and key are untouched" in r["lb"].msg
    assert "does not cover the name ui.ei.example.com" in r["lb"].msg
    assert r["lb"].changes == []  # nothing was replaced
    assert not any(h.scripts for n, h in hosts.items() if n != "lb")


def test_keytool_failure_on_one_node_is_named(inv, monkeypatch):
    run, hosts = lab(inv, monkeypatch, lb_der=OLD_DER)
    hosts["node2"].rules.insert(0, (re.compile(r"^STORES=", re.M), CmdResult(
        "", f"ERROR {STORE}: the store password is wrong (secrets.truststore_password)\n", 1)))
    assert not certs.certs_step(run)
    r = results(run)
    assert r["node1"].status == Status.CHANGED
    assert r["node2"].status == Status.FAILED
    assert f"{STORE}: the store password is wrong (secrets.truststore_password)" in r["node2"].msg


def test_key_mode_fixed_without_touching_the_certificate(inv, monkeypatch):
    run, hosts = lab(inv, monkeypatch, lb_der=OLD_DER, remembered=OLD_DER)
    hosts["lb"].rules.insert(0, (re.compile(r"^CERT=", re.M),
                                 CmdResult(probe_out(OLD_DER, keystat="644 root"), "", 0)))
    assert certs.certs_step(run)
    r = results(run)
    assert r["lb"].status == Status.CHANGED and "0644 root, want 0600 root" in r["lb"].changes[0]
    [fix] = scripts(hosts["lb"])
    assert "MODE=fix-key-mode\n" in fix
    assert r["lb"].value == certs.LbCert(pem(OLD_DER), fp(OLD_DER))
    assert all(results(run)[n.name].status == Status.OK for n in inv.nodes)


def test_required_store_missing_fails_that_node_only(inv, monkeypatch):
    run, hosts = lab(inv, monkeypatch, lb_der=OLD_DER)
    del hosts["node2"].files[STORE]
    assert not certs.certs_step(run)
    r = results(run)
    assert r["node1"].status == Status.CHANGED
    assert r["node2"].status == Status.FAILED and "is missing" in r["node2"].msg
    assert not scripts(hosts["node2"])


def test_keytool_probe_follows_java_home(tmp_path):
    inv = make_inv(tmp_path, 2, cluster={"java_home": "/opt/jdk-11"})
    assert certs.keytool_probe(inv).startswith("JAVA_HOME=/opt/jdk-11\n")
    assert remote.script("keytool_probe.sh", JAVA_HOME="").startswith("JAVA_HOME=''\n")
