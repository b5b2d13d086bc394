"""Secure Vault: the XML aliases on WSO2's shipped files, the cipher tool's encryption, the
keystore check, and the plan (first switch, no-op by digest, which changes restart)."""
from __future__ import annotations

import base64
import datetime
import hashlib
import struct
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from tasks.engine import remote
from tasks.engine.remote import FileState
from tasks.steps import node_config, vault
from tasks.wso2 import ei_xml
from tasks.wso2 import vault as wv
from tests.paths import PROFILE_CONF as CONF
from tests.unit.inv_factory import make_inv, make_raw
from tasks.engine import inventory

PW = "wso2carbon"


@pytest.fixture(scope="module")
def key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _cert(key) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
    c = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
         .public_key(key.public_key()).serial_number(1).not_valid_before(now)
         .not_valid_after(now + datetime.timedelta(days=30)).sign(key, hashes.SHA256()))
    return c.public_bytes(Encoding.DER)


def _utf(s: str) -> bytes:
    return struct.pack(">H", len(s)) + s.encode()


def make_jks(cert: bytes, password: str = PW, alias: str = "wso2carbon") -> bytes:
    """A JKS (version 2) with one trusted-certificate entry, digest keyed as keytool does."""
    body = b"\xfe\xed\xfe\xed" + struct.pack(">II", 2, 1) + struct.pack(">I", 2) + _utf(alias) \
        + struct.pack(">Q", 0) + _utf("X.509") + struct.pack(">I", len(cert)) + cert
    return body + hashlib.sha1(password.encode("utf-16-be") + b"Mighty Aphrodite" + body).digest()


def _inv(tmp_path, secrets=None, **cluster):
    """Without the cluster CA: WSO2's shipped wso2carbon.jks, its default password."""
    raw = make_raw(tmp_path, driver_class="org.mariadb.jdbc.Driver", cluster=cluster or None,
                   database={"tls": False}, secrets=secrets)
    raw["certs"] = {"cluster_ca": False}
    if not secrets or "keystore_password" not in secrets:
        del raw["secrets"]["keystore_password"]
    return inventory.from_dict(raw, tmp_path / "hosts.toml")


def _rendered(inv) -> dict[str, bytes]:
    shipped = {rel: (CONF / rel).read_bytes() for rel in ei_xml.CONF_FILES}
    return ei_xml.render_node_config(shipped, node_config.node_params(inv, inv.nodes[0]))


# --------------------------------------------------------------------------- XML


def test_aliases_replace_every_password_like_the_cipher_tool(tmp_path):
    inv = _inv(tmp_path)
    done = wv.alias_config(_rendered(inv))
    assert wv.alias_config(done) == done  # idempotent
    for rel, data in done.items():
        for secret in (inv.secrets.db_password, inv.secrets.admin_password):
            assert secret.encode() not in data, rel
    assert done["user-mgt.xml"].count(
        b'<Password svns:secretAlias="UserManager.AdminUser.Password">password</Password>') == 1
    assert b'<UserManager xmlns:svns="http://org.wso2.securevault/configuration">' \
        in done["user-mgt.xml"]
    cat = done["tomcat/catalina-server.xml"].decode()
    assert 'keystorePass="password"\n                   svns:secretAlias=' \
           '"Server.Service.Connector.keystorePass"' in cat
    # re-rendering with clear passwords then aliasing again gives the same bytes: a no-op
    again = ei_xml.render_node_config(done, node_config.node_params(inv, inv.nodes[0]))
    assert wv.alias_config(again) == done


def test_every_alias_of_the_shipped_cipher_tool_properties_is_secured():
    shipped = (CONF / "security/cipher-tool.properties").read_text()
    aliases = {ln.split("=", 1)[0] for ln in shipped.splitlines()
               if ln and not ln.startswith("#")}
    assert aliases <= {s.alias for s in wv.SECURED}


def test_secret_conf_has_the_cipher_tools_keys(tmp_path):
    inv = _inv(tmp_path)
    loc, typ, alias = wv.keystore_info(_rendered(inv)["carbon.xml"], inv.cluster.profile_home)
    assert loc == vault.keystore_path(inv) and (typ, alias) == ("JKS", "wso2carbon")
    text = wv.render_secret_conf(inv.cluster.profile_home, loc, typ, alias).decode()
    assert "keystore.identity.store.secretProvider=org.wso2.carbon.securevault." \
           "DefaultSecretCallbackHandler" in text
    assert "secretRepositories.file.provider=org.wso2.securevault.secret.repository." \
           "FileBaseSecretRepositoryProvider" in text


# --------------------------------------------------------------------------- keystore, cipher


def test_encryption_is_rsa_pkcs1_base64_that_the_private_key_opens(key):
    cert = wv.keystore_certificate(make_jks(_cert(key)), PW, "wso2carbon")
    ct = wv.encrypt(cert, "pä$$=word")
    assert key.decrypt(base64.b64decode(ct), padding.PKCS1v15()).decode() == "pä$$=word"
    assert wv.encrypt(cert, "x") != wv.encrypt(cert, "x")  # randomized
    props = wv.render_cipher_text({"A.B": "xy=="}).decode()
    assert "A.B=xy\\=\\=" in props  # as java.util.Properties.store writes it


def test_a_wrong_keystore_password_or_alias_is_refused(key):
    jks = make_jks(_cert(key))
    with pytest.raises(wv.VaultError, match="password was incorrect"):
        wv.keystore_certificate(jks, "wrong", "wso2carbon")
    with pytest.raises(wv.VaultError, match="no entry 'other'"):
        wv.keystore_certificate(jks, PW, "other")


# --------------------------------------------------------------------------- plan


def _facts(inv, jks: bytes | None, state=None, cipher=None, secret_conf=None, password=None):
    ks = FileState(hashlib.sha256(jks).hexdigest(), 0o644, "wso2", "wso2", content=jks) \
        if jks is not None else None
    return vault.VaultFacts(state, secret_conf, cipher, password, ks)


def _after(inv, f, plan) -> vault.VaultFacts:
    """The facts a node gives after `plan` was applied (the state and files it wrote)."""
    files = {c.spec.path: FileState(c.spec.sha256, c.spec.mode, c.spec.owner, c.spec.group)
             for c in plan.files}
    ks = FileState(f.keystore.sha256, 0o644, "wso2", "wso2")  # a no-op read: no bytes
    return vault.VaultFacts(vault.parse_state(plan.state),
                            files.get(vault.conf_path(inv, wv.SECRET_CONF), f.secret_conf),
                            files.get(vault.conf_path(inv, wv.CIPHER_TEXT), f.cipher_text),
                            files.get(vault.PASSWORD_FILE, f.password), ks)


def test_first_switch_then_noop_by_digest(tmp_path, key):
    inv = _inv(tmp_path)
    f = _facts(inv, make_jks(_cert(key)))
    carbon = wv.alias_config(_rendered(inv))["carbon.xml"]
    plan = vault.plan_vault(inv, inv.nodes[0], f, carbon, new_salt="ab")
    assert plan.error is None
    paths = {c.spec.path: c.spec for c in plan.files}
    assert set(paths) == {vault.PASSWORD_FILE, vault.conf_path(inv, wv.SECRET_CONF),
                          vault.conf_path(inv, wv.CIPHER_TEXT)}
    assert (paths[vault.PASSWORD_FILE].owner, paths[vault.PASSWORD_FILE].mode) == ("root", 0o600)
    ct = paths[vault.conf_path(inv, wv.CIPHER_TEXT)]
    assert ct.sensitive and ct.mode == 0o600 and ct.owner == "wso2"
    assert inv.secrets.db_password.encode() not in ct.content
    assert plan.restart_reasons and plan.scrub
    assert inv.secrets.db_password not in plan.state  # digests only
    after = _after(inv, f, plan)
    assert vault.up_to_date(inv, after)
    noop = vault.plan_vault(inv, inv.nodes[0], after, None)
    assert noop.empty and noop.error is None


def test_an_admin_password_change_reencrypts_without_restart(tmp_path, key):
    inv = _inv(tmp_path)
    f = _facts(inv, make_jks(_cert(key)))
    carbon = wv.alias_config(_rendered(inv))["carbon.xml"]
    after = _after(inv, f, vault.plan_vault(inv, inv.nodes[0], f, carbon))
    (tmp_path / "new_admin").write_text("another-admin-pw\n")
    (tmp_path / "new_admin").chmod(0o600)
    inv2 = _inv(tmp_path, secrets={"admin_password": {"file": "new_admin"}})
    assert vault.changed_aliases(inv2, after) == [wv.ADMIN_ALIAS]
    after.keystore = f.keystore  # configure re-reads with the keystore's bytes
    plan = vault.plan_vault(inv2, inv2.nodes[0], after, carbon)
    assert [c.spec.path for c in plan.files] == [vault.conf_path(inv, wv.CIPHER_TEXT)]
    assert plan.restart_reasons == []


def test_a_new_keystore_reencrypts_everything(tmp_path, key):
    inv = _inv(tmp_path)
    f = _facts(inv, make_jks(_cert(key)))
    carbon = wv.alias_config(_rendered(inv))["carbon.xml"]
    after = _after(inv, f, vault.plan_vault(inv, inv.nodes[0], f, carbon))
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    after.keystore = _facts(inv, make_jks(_cert(other))).keystore
    assert set(vault.changed_aliases(inv, after)) == {s.alias for s in wv.SECURED}
    plan = vault.plan_vault(inv, inv.nodes[0], after, carbon)
    assert plan.restart_reasons == ["cipher-text.properties"]


def test_a_wrong_keystore_password_is_refused_before_any_write(tmp_path, key):
    inv = _inv(tmp_path)
    f = _facts(inv, make_jks(_cert(key), password="something-else"))
    plan = vault.plan_vault(inv, inv.nodes[0], f, wv.alias_config(_rendered(inv))["carbon.xml"])
    assert plan.error and "password was incorrect" in plan.error and "nothing written" in plan.error
    missing = vault.plan_vault(inv, inv.nodes[0], _facts(inv, None), b"<x/>")
    assert "keystore" in missing.error and "secure_vault = false" in missing.error


def test_off_after_on_restores_a_plain_secret_conf_and_warns(tmp_path, key):
    inv = _inv(tmp_path, secure_vault=False)
    assert any("!!! cluster.secure_vault = false" in w for w in inv.warnings)
    assert vault.plan_vault(inv, inv.nodes[0], _facts(inv, None), None).empty  # never on
    was_on = _facts(inv, None, state=vault.State(salt="ab"))
    plan = vault.plan_vault(inv, inv.nodes[0], was_on, None)
    assert [c.spec.content for c in plan.files] == [wv.VAULT_OFF]
    assert plan.state == vault.OFF and "rm -f" in vault.apply_script(inv, plan)


def test_scripts_keep_the_password_off_argv(tmp_path):
    inv = _inv(tmp_path)
    s = vault.password_tmp_script(inv)
    assert inv.secrets.keystore_password not in s and s.endswith("password_tmp\n")
    assert "PASSWORD_FILE=/var/lib/bps-deploy/keystore-password" in s
    scrub = vault.apply_script(inv, vault.VaultPlan(scrub=True))
    assert remote.BACKUP_DIR in scrub
    assert "scrub_unvaulted opt%wso2ei-6.6.0%wso2%business-process%conf%datasources%" \
           "master-datasources.xml 'svns:secretAlias=\"Datasources.WSO2_CARBON_DB" in scrub


def test_off_after_on_puts_every_clear_value_back(tmp_path):
    on, off = _inv(tmp_path), _inv(tmp_path, secure_vault=False)
    clear = _rendered(off)
    aliased = vault.config_files(on, _rendered(on))
    assert vault.config_files(off, ei_xml.render_node_config(
        aliased, node_config.node_params(off, off.nodes[0]))) == clear
    assert vault.config_files(off, clear) == clear  # never on: nothing to undo


# --------------------------------------------------------------------------- apply (fake hosts)

from tests.fakes import FakeFile, fake_run, output  # noqa: E402


def _node(inv, host, jks: bytes, conf: dict[str, bytes] | None = None):
    """A fake node with WSO2's shipped files (or `conf`), the keystore, JDK 11, no systemd."""
    user = inv.cluster.service_user
    for rel in ei_xml.CONF_FILES:
        data = (conf or {}).get(rel) or (CONF / rel).read_bytes()
        host.files[f"{node_config.conf_dir(inv)}/{rel}"] = FakeFile(
            data, 0o600 if rel in node_config.SECRET_FILES else 0o644, user, user)
    host.files[vault.keystore_path(inv)] = FakeFile(jks, 0o644, user, user)
    host.answer(r"^test -d", stdout="yes")
    host.answer(r"^id -u \S+ >/dev/null 2>&1 && echo yes", stdout="yes")
    host.answer(r"JAVA_VERSION", stdout="java 11.0.13 (/opt/jdk-11)")
    host.answer(r"/proc/1/comm", stdout="none\npid1 sshd\ncontainer none")
    host.answer(r"^ei_state|PROFILE_HOME=", stdout="dead\nnone")
    return host


def _configure(inv, monkeypatch, key, check=False, diff=False, conf=None):
    run, hosts = fake_run(inv, monkeypatch, check=check, diff=diff)
    node = inv.nodes[0]
    _node(inv, hosts[node.name], make_jks(_cert(key)), conf)
    outcome = node_config.configure_step(run, [node])
    return run, hosts[node.name], outcome


def test_configure_switches_to_the_vault_then_encrypts_in_its_step(tmp_path, monkeypatch, key):
    inv = _inv(tmp_path)
    run, host, outcome = _configure(inv, monkeypatch, key, diff=True)
    text = output(run)
    assert outcome.ok and inv.nodes[0].name in outcome.restart, text
    writes = [s for s in host.scripts if "__BPS_EOF__" in s]
    assert len(writes) == 2  # configure's XML (aliases), then the vault step's cipher texts
    assert "cipher-text.properties" not in writes[0]
    w = writes[1]
    assert "security/cipher-text.properties" in w and vault.PASSWORD_FILE in w
    assert vault.STATE_FILE in w and "svns:secretAlias" in w  # state written, old backups scrubbed
    for secret in (inv.secrets.db_password, inv.secrets.admin_password):
        assert secret not in w and secret not in text  # base64 in the script, masked in diffs
    assert "create /var/lib/bps-deploy/keystore-password" in text


def test_configure_check_mode_writes_nothing(tmp_path, monkeypatch, key):
    inv = _inv(tmp_path)
    run, host, outcome = _configure(inv, monkeypatch, key, check=True)
    assert outcome.ok and not any("__BPS_EOF__" in s for s in host.scripts)
    assert "cipher-text.properties" in output(run)


def test_configure_refuses_a_wrong_keystore_password_before_writing(tmp_path, monkeypatch, key):
    (tmp_path / "ks").write_text("not-the-keystore-password\n")
    (tmp_path / "ks").chmod(0o600)
    inv = _inv(tmp_path, secrets={"keystore_password": {"file": "ks"}})
    run, host, outcome = _configure(inv, monkeypatch, key)
    assert not outcome.ok
    assert "password was incorrect" in output(run) and "nothing written" in output(run)
    assert not any("__BPS_EOF__" in s for s in host.scripts)


def test_with_the_cluster_ca_the_vault_encrypts_for_the_node_keystore(tmp_path):
    from tasks.steps import cluster_ca
    on = make_inv(tmp_path, driver_class="org.mariadb.jdbc.Driver")
    assert on.certs.cluster_ca and vault.keystore_path(on) == cluster_ca.node_keystore_path(on)
    assert vault.keystore_path(on).endswith("bps-node.p12")
    assert on.secrets.keystore_password == "s3cret-keystore_password"  # never the default
    off = _inv(tmp_path)
    assert vault.keystore_path(off).endswith("wso2carbon.jks")
    assert off.secrets.keystore_password == PW


def test_vault_step_encrypts_for_the_keystore_the_keys_step_just_wrote(tmp_path, monkeypatch, key):
    """Cluster CA on, first deploy: configure's read saw no keystore; node-keys wrote one; the
    vault step reads it again (with its bytes) and encrypts for it."""
    from cryptography.hazmat.primitives.serialization import BestAvailableEncryption, pkcs12
    from tasks.steps.vault import step as vault_step
    inv = make_inv(tmp_path, driver_class="org.mariadb.jdbc.Driver")
    pw = inv.secrets.keystore_password
    run, hosts = fake_run(inv, monkeypatch)
    node = inv.nodes[0]
    host, user = hosts[node.name], inv.cluster.service_user
    carbon = wv.alias_config(_rendered(inv))["carbon.xml"]
    assert vault.keystore_path(inv).encode() in carbon.replace(
        b"${carbon.home}", inv.cluster.profile_home.encode())
    host.files[vault.conf_path(inv, "carbon.xml")] = FakeFile(carbon, 0o644, user, user)
    p12 = pkcs12.serialize_key_and_certificates(
        b"bps-node", key, x509.load_der_x509_certificate(_cert(key)), None,
        BestAvailableEncryption(pw.encode()))
    host.files[vault.keystore_path(inv)] = FakeFile(p12, 0o600, user, user)
    outcome = node_config.ConfigureOutcome(True)
    missing = remote.Fact("MISSING", 0)
    outcome.raw[node.name] = {"vault_state": remote.Fact("", 0), "vault:secret_conf": missing,
                              "vault:cipher_text": missing, "vault:password": missing,
                              "vault:keystore": missing}
    outcome.keys_changed.add(node.name)
    vault_step.vault_step(run, outcome, [node])
    text = output(run)
    assert outcome.ok and node.name in outcome.restart, text
    w = [s for s in host.scripts if "__BPS_EOF__" in s]
    assert len(w) == 1 and "security/cipher-text.properties" in w[0] and pw not in w[0]
