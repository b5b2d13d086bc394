"""The cluster CA, node keys and DB TLS: pure planners and, on fake hosts, every apply path."""
from __future__ import annotations

import datetime as dt
import hashlib
import stat

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from tests.fakes import FakeFile, fake_run
from tests.unit.inv_factory import make_inv

from tasks.engine import remote
from tasks.engine.inventory import InventoryError
from tasks.steps import cluster_ca, db_tls, node_keys
from tasks.steps.node_config import ConfigureOutcome

NOW = dt.datetime.now(dt.timezone.utc)


@pytest.fixture(autouse=True)
def _small_keys(monkeypatch):  # the same code paths, without seconds of RSA 4096 per test
    monkeypatch.setattr(cluster_ca, "CA_KEY_BITS", 2048)
    monkeypatch.setattr(cluster_ca, "NODE_KEY_BITS", 2048)


@pytest.fixture(scope="module")
def ca():
    return cluster_ca.new_ca("ei.example.com", 3650)


@pytest.fixture
def inv(tmp_path):
    return make_inv(tmp_path, database={"allow_server_restart": True})


# --------------------------------------------------------------------------- controller CA

def test_ca_created_once_key_0600_and_kept(tmp_path):
    inv = make_inv(tmp_path)
    assert cluster_ca.ensure_ca(inv, check=True) == (None, cluster_ca.ensure_ca(
        inv, check=True)[1]) and not inv.certs.ca_key.exists()  # check mode creates nothing
    ca, note = cluster_ca.ensure_ca(inv)
    assert "created the cluster CA" in note
    assert stat.S_IMODE(inv.certs.ca_key.stat().st_mode) == 0o600
    again, note = cluster_ca.ensure_ca(inv)
    assert note == "" and again.fingerprint == ca.fingerprint


def test_ca_half_missing_or_readable_key_refused(tmp_path):
    inv = make_inv(tmp_path)
    cluster_ca.ensure_ca(inv)
    inv.certs.ca_key.chmod(0o644)
    with pytest.raises(cluster_ca.CaError, match="readable by others"):
        cluster_ca.ensure_ca(inv)
    inv.certs.ca_cert.unlink()
    with pytest.raises(cluster_ca.CaError, match="restore it from your backup"):
        cluster_ca.ensure_ca(inv)


def test_a_key_that_is_not_the_certificates_is_refused_before_and_at_signing(tmp_path):
    """ensure_ca checks the pair at once (no host touched yet); the key's full load waits for
    the first signature and refuses a key file swapped meanwhile."""
    inv = make_inv(tmp_path)
    cluster_ca.ensure_ca(inv)
    ca, _ = cluster_ca.ensure_ca(inv)
    assert ca._key is None  # a no-op run never pays for the key's consistency check
    other = cluster_ca.new_ca("other", 30)
    pem = other.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption())
    inv.certs.ca_key.write_bytes(pem)
    with pytest.raises(cluster_ca.CaError, match="no longer holds the cluster CA's key"):
        cluster_ca.issue(ca, "node1", ("nodes.bps.internal",), ("192.0.2.11",), 365)
    with pytest.raises(cluster_ca.CaError, match="does not belong to the key"):
        cluster_ca.ensure_ca(inv)


def test_node_certificate_names_and_keystore(ca):
    key, cert = cluster_ca.issue(ca, "node1", ("nodes.bps.internal",), ("192.0.2.11",), 365)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["nodes.bps.internal"]
    assert [str(a) for a in san.get_values_for_type(x509.IPAddress)] == ["192.0.2.11"]
    assert cert.issuer == ca.cert.subject
    p12 = pkcs12.load_pkcs12(cluster_ca.keystore_bytes(key, cert, ca, "Ks-secret"), b"Ks-secret")
    assert p12.cert.friendly_name == b"bps-node" and p12.cert.certificate == cert
    assert [c.certificate for c in p12.additional_certs] == [ca.cert]


@pytest.mark.parametrize("secrets,expect", [
    ({"keystore_password": {"value": "wso2carbon"}}, "'wso2carbon' is refused"),
])
def test_default_keystore_password_refused(tmp_path, secrets, expect):
    with pytest.raises(InventoryError, match=expect):
        make_inv(tmp_path, secrets=secrets)


def test_switches_off_warn_loudly(tmp_path):
    raw_inv = make_inv(tmp_path, database={"tls": False})
    assert any(w.startswith("!!! database.tls = false") for w in raw_inv.warnings)
    from tests.unit.inv_factory import make_raw
    from tasks.engine import inventory
    raw = make_raw(tmp_path, database={"tls": False})
    raw["certs"] = {"cluster_ca": False}
    inv = inventory.from_dict(raw, tmp_path / "hosts.toml")
    assert any(w.startswith("!!! certs.cluster_ca = false") for w in inv.warnings)
    raw["database"] = {}
    with pytest.raises(InventoryError, match="database.tls = true needs certs.cluster_ca"):
        inventory.from_dict(raw, tmp_path / "hosts.toml")


# --------------------------------------------------------------------------- node keys

def _keys_facts(inv, node, ca, p12=b"P12", remembered=None, stores_sha="s" * 64):
    st = remote.FileState(hashlib.sha256(p12).hexdigest(), 0o600, "wso2", "wso2")
    stores = {p: remote.FileState(stores_sha, 0o644, "wso2", "wso2")
              for p, _ in node_keys.certs.truststores(inv)}
    trust = {p: (stores_sha, ca.fingerprint) for p in stores}
    fp = "AB:CD"
    good = {"sha": st.sha256, "fp": fp, "ca": ca.fingerprint,
            "names": node_keys.names_digest(inv, node),
            "pw": cluster_ca.secret_digest(inv.secrets.keystore_password, f"{node.name}:{fp}"),
            "not_after": str(int((NOW + dt.timedelta(days=200)).timestamp()))}
    good.update(remembered or {})
    ca_st = remote.FileState(hashlib.sha256(ca.pem).hexdigest(), 0o644, "wso2", "wso2")
    return node_keys.KeyFacts(st, ca_st, good, trust, stores)


def test_plan_keys_noop_and_each_reason(inv, ca):
    node = inv.nodes[0]
    f = _keys_facts(inv, node, ca)
    p = node_keys.plan_keys(inv, node, f, ca, NOW)
    assert (p.reissue, p.write_ca, p.trust, p.error) == ([], False, [], None)
    for change, reason in (({"ca": "other"}, "the cluster CA changed"),
                           ({"names": "x"}, "the host's names changed"),
                           ({"pw": "x"}, "secrets.keystore_password changed"),
                           ({"sha": "x"}, "not the one this tool wrote"),
                           ({"not_after": str(int((NOW + dt.timedelta(days=3)).timestamp()))},
                            "expires in")):
        p = node_keys.plan_keys(inv, node, _keys_facts(inv, node, ca, remembered=change), ca, NOW)
        assert any(reason in r for r in p.reissue), (change, p.reissue)
    f = _keys_facts(inv, node, ca)
    f.stores = {p: remote.FileState("t" * 64, 0o644, "wso2", "wso2") for p in f.stores}
    assert len(node_keys.plan_keys(inv, node, f, ca, NOW).trust) == 2  # a store changed since


def _node_outcome(run, inv, hosts, node):
    s = run.session(node)
    raw = remote.read_facts(s, node_keys.probes(inv))
    hosts[node.name].scripts.clear()
    out = ConfigureOutcome(True)
    out.raw[node.name] = raw
    return out


def _with_stores(inv, host):
    for p, _ in node_keys.certs.truststores(inv):
        host.files[p] = FakeFile(b"JKS", 0o644, "wso2", "wso2")


def test_keys_apply_writes_keystore_imports_ca_marks_restart(inv, monkeypatch):
    run, hosts = fake_run(inv, monkeypatch)
    node = inv.nodes[0]
    _with_stores(inv, hosts[node.name])
    hosts[node.name].answer(r"import_store", stdout="IMPORTED x\n")
    out = _node_outcome(run, inv, hosts, node)
    node_keys.keys_step(run, out, [node])
    scripts = hosts[node.name].scripts
    assert any("bps-node.p12" in sc and "pending-restart" in sc and "node-keys.state" in sc
               for sc in scripts)
    imports = [sc for sc in scripts if "import_store" in sc]
    assert len(imports) == 1 and all("truststore-ca.state" in sc and "bps-cluster-ca" in sc
                                     for sc in imports)
    assert "as_kt sha256sum" in imports[0] and "truststore.state" in imports[0]  # LB record kept
    assert all(inv.secrets.keystore_password not in sc for sc in scripts)  # only inside the p12
    assert node.name in out.restart and out.ok


def test_keys_check_mode_runs_nothing(inv, monkeypatch):
    cluster_ca.ensure_ca(inv)
    run, hosts = fake_run(inv, monkeypatch, check=True)
    node = inv.nodes[0]
    _with_stores(inv, hosts[node.name])
    out = _node_outcome(run, inv, hosts, node)
    node_keys.keys_step(run, out, [node])
    assert hosts[node.name].scripts == []
    assert "would change (check mode)" in run.rep.stream.getvalue()


def test_keys_import_failure_fails_the_node_naming_the_cause(inv, monkeypatch):
    run, hosts = fake_run(inv, monkeypatch)
    node = inv.nodes[0]
    _with_stores(inv, hosts[node.name])
    hosts[node.name].answer(r"import_store", stderr="ERROR store: the store password is wrong "
                            "(secrets.truststore_password)\n", exit=1)
    out = _node_outcome(run, inv, hosts, node)
    node_keys.keys_step(run, out, [node])
    assert not out.ok
    assert "the store password is wrong" in run.rep.stream.getvalue()


def test_keys_missing_truststore_refused_before_writing(inv, monkeypatch):
    run, hosts = fake_run(inv, monkeypatch)
    node = inv.nodes[0]
    out = _node_outcome(run, inv, hosts, node)
    node_keys.keys_step(run, out, [node])
    assert hosts[node.name].scripts == [] and not out.ok


# --------------------------------------------------------------------------- DB TLS

def _tls_facts(ca, have="YES", cert=db_tls.CERT, version="10.11.6-MariaDB", require=None,
               remembered=None, dropin=None):
    crt = b"CRT"
    files = {db_tls.CERT: remote.FileState(hashlib.sha256(crt).hexdigest(), 0o644, "root", "root"),
             db_tls.KEY: remote.FileState("k" * 64, 0o640, "root", "mysql"),
             db_tls.CA: remote.FileState(hashlib.sha256(ca.pem).hexdigest(), 0o644, "root",
                                         "root")}
    return db_tls.TlsFacts("YES" if have == "YES" else have, cert, version, require or {},
                           "/etc/mysql/mariadb.conf.d",
                           db_tls.dropin_bytes() if dropin is None else dropin, None, files,
                           remembered or {}, "mysql")


def _remembered(inv, ca, days=200):
    return {"sha": hashlib.sha256(b"CRT").hexdigest(), "ca": ca.fingerprint,
            "names": db_tls._names_digest(inv),
            "not_after": str(int((NOW + dt.timedelta(days=days)).timestamp()))}


def test_db_tls_noop_reload_restart_and_consent(tmp_path, ca):
    inv = make_inv(tmp_path, database={"allow_server_restart": True})
    nodes = {n.address: "ANY" for n in inv.nodes}
    f = _tls_facts(ca, require=nodes, remembered=_remembered(inv, ca))
    p = db_tls.plan_tls(inv, f, ca, NOW)
    assert (p.reissue, p.write_ca, p.dropin, p.load, p.require, p.error) == \
        ([], False, False, "", [], None)
    f = _tls_facts(ca, require=nodes, remembered=_remembered(inv, ca, days=5))
    p = db_tls.plan_tls(inv, f, ca, NOW)
    assert p.reissue and p.load == "reload" and f.reload_sql == "FLUSH SSL;"
    f = _tls_facts(ca, have="DISABLED", cert="", dropin=b"", remembered=_remembered(inv, ca))
    p = db_tls.plan_tls(inv, f, ca, NOW)
    assert p.dropin and p.load == "restart" and p.error is None
    assert p.require == [n.address for n in inv.nodes]
    no = make_inv(tmp_path)  # allow_server_restart false
    p = db_tls.plan_tls(no, f, ca, NOW)
    assert p.error and "allow_server_restart is not true" in p.error and "nothing was changed" \
        in p.error
    assert _tls_facts(ca, version="8.0.36").reload_sql == "ALTER INSTANCE RELOAD TLS;"
    assert _tls_facts(ca, version="10.3.39-MariaDB").reload_sql is None


def test_db_tls_off_requires_none_first(tmp_path, ca):
    inv = make_inv(tmp_path, database={"tls": False})
    f = _tls_facts(ca, require={inv.nodes[0].address: "ANY", inv.nodes[1].address: ""})
    p = db_tls.plan_tls(inv, f, ca, NOW)
    assert p.unrequire == [inv.nodes[0].address] and p.load == "" and not p.require


def _db_raw(run, inv, hosts, ca_present: bool):
    s = run.session(inv.db)
    hosts["db"].answer(r"SELECT 'tls'", stdout="tls\tDISABLED\t\t10.11.6-MariaDB\n")
    hosts["db"].answer(r"if \[ -d '?/etc/mysql/mariadb.conf.d", stdout="/etc/mysql/mariadb.conf.d\n"
                       "MISSING\n")
    raw = remote.read_facts(s, {"sql": db_tls.facts_sql(inv),
                                **db_tls.probes(inv, ("/etc/mysql/mariadb.conf.d",))})
    hosts["db"].scripts.clear()
    return raw


def test_db_tls_apply_first_time_restarts_under_consent(inv, monkeypatch):
    cluster_ca.ensure_ca(inv)
    run, hosts = fake_run(inv, monkeypatch)
    raw = _db_raw(run, inv, hosts, True)
    p = db_tls.db_tls_step(run, raw, "service mariadb restart", "")
    assert p is not None and p.require
    writes = [sc for sc in hosts["db"].scripts if "zz-bps-deploy-tls.cnf" in sc]
    assert writes and "service mariadb restart" in writes[0] and "db-tls.state" in \
        "".join(hosts["db"].scripts)
    # REQUIRE SSL comes later, once the nodes use TLS
    assert not hosts["db"].ran("REQUIRE SSL")
    assert db_tls.require_step(run, p, "")
    assert hosts["db"].ran(r"ALTER USER 'wso2bps'@'192\.0\.2\.11' REQUIRE SSL;")


def test_db_tls_failed_restart_is_reported_and_files_rolled_back(inv, monkeypatch):
    cluster_ca.ensure_ca(inv)
    run, hosts = fake_run(inv, monkeypatch)
    raw = _db_raw(run, inv, hosts, True)
    hosts["db"].answer(r"zz-bps-deploy-tls\.cnf", stderr="Job for mariadb.service failed", exit=1)
    assert db_tls.db_tls_step(run, raw, "service mariadb restart", "") is None
    assert "previous files were put back" in run.rep.stream.getvalue()


def test_db_tls_check_mode_touches_nothing(inv, monkeypatch):
    run, hosts = fake_run(inv, monkeypatch, check=True)
    raw = _db_raw(run, inv, hosts, False)
    assert db_tls.db_tls_step(run, raw, "service mariadb restart", "") is not None
    assert hosts["db"].scripts == [] and not inv.certs.ca_key.exists()
