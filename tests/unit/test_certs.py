"""`fab certs`: fact parsing and pure plans (no host); the apply path on fake hosts."""
import base64
import shutil
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.paths import REPO

from tasks.steps import certs  # noqa: E402

from tasks.engine import remote
from tests.unit.inv_factory import make_inv

NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)

# captured from tasks/scripts/lb_cert_probe.sh on a real certificate (PEM line shortened: parsed separately)
CAPTURED = """CERT=present
subject=CN=ei.example.com
notAfter=Nov 25 13:23:11 2026 GMT
sha256 Fingerprint=A0:73:6D:97
X509v3 Subject Alternative Name: 
    DNS:ei.example.com, DNS:ui.ei.example.com
                Public-Key: (3072 bit)
CERTPUB=f19ffaa7f16eb6484bae6c74840d41af34fbe33f2eacbc14e58e5b58d881a32b
KEY=present
KEYSTAT=600 root
KEYPUB=f19ffaa7f16eb6484bae6c74840d41af34fbe33f2eacbc14e58e5b58d881a32b
"""


@pytest.fixture
def inv(tmp_path):
    return make_inv(tmp_path, 2)


def info(**kw) -> certs.CertInfo:
    i = certs.parse_cert_probe(CAPTURED)
    for k, v in kw.items():
        setattr(i, k, v)
    return i


# --------------------------------------------------------------------- parsing

def test_parse_captured():
    i = certs.parse_cert_probe(CAPTURED)
    assert i.cert_present and i.key_present
    assert i.subject_cn == "ei.example.com"
    assert i.sans == ("ei.example.com", "ui.ei.example.com")
    assert i.not_after == datetime(2026, 11, 25, 13, 23, 11, tzinfo=timezone.utc)
    assert i.key_bits == 3072 and i.key_mode == 0o600 and i.key_owner == "root"
    assert i.cert_pub == i.key_pub and not i.problems


def test_parse_missing():
    i = certs.parse_cert_probe("CERT=missing\nKEY=missing\n")
    assert not i.cert_present and not i.key_present and i.not_after is None


def test_parse_unreadable_key():
    empty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    i = certs.parse_cert_probe(CAPTURED.replace("KEYPUB=f19f", "KEYPUB=xx") .replace(
        "KEYPUB=xxfaa7f16eb6484bae6c74840d41af34fbe33f2eacbc14e58e5b58d881a32b", f"KEYPUB={empty}"))
    assert i.key_pub is None and "openssl cannot read the key" in i.problems


def test_subject_default_format():
    assert certs.parse_subject_cn("subject=C = US, CN = ei.example.com") == "ei.example.com"


def test_days_left():
    i = certs.parse_cert_probe(CAPTURED)
    assert certs.days_left(i, datetime(2026, 11, 20, 13, 23, 11, tzinfo=timezone.utc)) == 5
    assert certs.days_left(certs.CertInfo(), NOW) is None


def test_probe_on_real_files(tmp_path):
    """The probe against files openssl made (read-only, local)."""
    cnf = tmp_path / "r.cnf"
    cnf.write_text("[req]\nprompt = no\ndistinguished_name = dn\n[dn]\nCN = ei.example.com\n"
                   "[ext]\nsubjectAltName = DNS:ei.example.com,DNS:ui.ei.example.com\n")
    k, c = tmp_path / "server.key", tmp_path / "server.crt"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(k),
                    "-out", str(c), "-days", "10", "-config", str(cnf), "-extensions", "ext"],
                   check=True, capture_output=True)
    k.chmod(0o600)
    out = subprocess.run(["sh", "-c", certs.lb_cert_probe(SimpleNamespace(
        certs=SimpleNamespace(cert_path=str(c), key_path=str(k))))],
        capture_output=True, text=True).stdout
    i = certs.parse_cert_probe(out)
    assert i.sans == ("ei.example.com", "ui.ei.example.com") and i.key_bits == 2048
    assert i.cert_pub == i.key_pub and i.cert_pub
    fp = subprocess.run(["openssl", "x509", "-in", str(c), "-noout", "-fingerprint", "-sha256"],
                        capture_output=True, text=True).stdout.strip().split("=", 1)[1]
    assert i.fingerprint == fp


def test_fingerprint_of_pem():
    der = b"\x30\x03\x02\x01\x00"
    pem = (b"-----BEGIN CERTIFICATE-----\n" + base64.encodebytes(der) +
           b"-----END CERTIFICATE-----\n")
    import hashlib
    h = hashlib.sha256(der).hexdigest().upper()
    assert certs.cert_fingerprint(pem).replace(":", "") == h
    with pytest.raises(ValueError):
        certs.cert_fingerprint(b"junk")


# --------------------------------------------------------------------- LB plan

def test_keep_good_cert(inv):
    p = certs.plan_lb_cert(info(), inv, NOW)
    assert p.action == "keep"


def test_renew_forces(inv):
    assert certs.plan_lb_cert(info(), inv, NOW, renew=True).action == "generate"


def test_missing_generates(inv):
    p = certs.plan_lb_cert(certs.parse_cert_probe("CERT=missing\nKEY=missing\n"), inv, NOW)
    assert p.action == "generate" and any("no certificate" in r for r in p.reasons)


def test_expiring_soon_generates(inv):
    soon = datetime(2026, 11, 25, tzinfo=timezone.utc) - timedelta(days=10)
    p = certs.plan_lb_cert(info(), inv, soon)
    assert p.action == "generate" and "expires in" in p.reasons[0]


def test_names_mismatch_generates(inv):
    p = certs.plan_lb_cert(info(sans=("ei.example.com",)), inv, NOW)
    assert p.action == "generate" and "ui.ei.example.com" in p.reasons[0]
    p = certs.plan_lb_cert(info(subject_cn="old.example.com"), inv, NOW)
    assert p.action == "generate" and "CN" in p.reasons[0]


def test_key_mismatch_generates(inv):
    p = certs.plan_lb_cert(info(key_pub="0" * 64), inv, NOW)
    assert p.action == "generate" and "does not match the key" in p.reasons[0]


def test_small_key_generates(inv):
    assert certs.plan_lb_cert(info(key_bits=2048), inv, NOW).action == "generate"


def test_key_mode_fixed(inv):
    p = certs.plan_lb_cert(info(key_mode=0o644), inv, NOW)
    assert p.action == "fix-key-mode"


def test_user_files(inv):
    crt, key = b"CRT", b"KEY"
    import hashlib
    same = (hashlib.sha256(crt).hexdigest(), hashlib.sha256(key).hexdigest())
    assert certs.plan_lb_cert(info(), inv, NOW, False, (crt, key), (None, None)).action == "upload"
    assert certs.plan_lb_cert(info(), inv, NOW, False, (crt, key), same).action == "keep"


def test_generate_script_keeps_sans_and_key_private(inv):
    s = certs.generate_script(inv, "20260101T000000Z")
    assert "-extfile" in s and "subjectAltName = DNS:ei.example.com,DNS:ui.ei.example.com" in s
    assert "KEY_BITS=3072\n" in s and "DAYS=365\n" in s and "MODE=generate\n" in s
    assert '"rsa_keygen_bits:$KEY_BITS"' in s and '-days "$DAYS"' in s
    assert 'chmod 600 "$t/server.key"' in s and "CN = ei.example.com" in s
    assert "{{" not in s and "backup_name" in s


# --------------------------------------------------------------------- node plan

STORE = "/opt/wso2ei-6.6.0/wso2/business-process/repository/resources/security/client-truststore.jks"
CARBON = "/opt/wso2ei-6.6.0/repository/resources/security/client-truststore.jks"


def test_truststore_paths(inv):
    assert certs.truststores(inv) == [(STORE, True), (CARBON, False)]


def st(sha):
    return remote.FileState(sha, 0o644, "wso2", "wso2")


def test_node_noop_when_remembered():
    stores = [certs.StoreFacts(STORE, True, st("a"), ("a", "FP")),
              certs.StoreFacts(CARBON, False, st("b"), ("b", "FP"))]
    p = certs.plan_truststores(stores, "FP", keytool=True)
    assert p.work == [] and p.error is None and len(p.up_to_date) == 2


def test_node_work_when_store_or_cert_differs():
    stores = [certs.StoreFacts(STORE, True, st("a2"), ("a", "FP")),
              certs.StoreFacts(CARBON, False, st("b"), ("b", "OLD"))]
    assert certs.plan_truststores(stores, "FP", True).work == [STORE, CARBON]


def test_node_optional_store_missing_is_skipped():
    stores = [certs.StoreFacts(STORE, True, st("a"), None),
              certs.StoreFacts(CARBON, False, None, None)]
    p = certs.plan_truststores(stores, "FP", True)
    assert p.work == [STORE] and p.skipped == [CARBON]


def test_node_required_store_missing_is_an_error():
    stores = [certs.StoreFacts(STORE, True, None, None),
              certs.StoreFacts(CARBON, False, st("b"), None)]
    p = certs.plan_truststores(stores, "FP", True)
    assert "missing" in p.error and STORE in p.error


def test_node_without_keytool():
    p = certs.plan_truststores([certs.StoreFacts(STORE, True, st("a"), None)], "FP", False)
    assert "keytool not found" in p.error


def test_state_file_parse():
    text = f"aaa FP1 {STORE}\nbbb FP2 {CARBON}\n"
    assert certs.parse_state_file(text) == {STORE: ("aaa", "FP1"), CARBON: ("bbb", "FP2")}


def test_import_script_keeps_password_off_argv():
    s = certs.import_script([STORE], b"-----BEGIN CERTIFICATE-----\nAA\n-----END CERTIFICATE-----",
                            "FP", "ei.example.com", "Sup3r-Secret", "wso2", "/opt/ei", "stamp")
    assert "Sup3r-Secret" not in s  # base64 in a heredoc, decoded into a 0600 file
    assert "-storepass:file" in s and "-storepass " not in s
    assert base64.b64encode(b"Sup3r-Secret").decode() in s
    assert "pending-restart" in s


def test_import_script_runs_keytool_as_the_service_user():
    """Case 1: keytool (a program from the JDK, following links) never runs as root."""
    s = certs.import_script([STORE], b"PEM", "FP", "ei.example.com", "pw", "wso2", "/opt/ei",
                            "stamp")
    assert "as_kt sh -c \"$KEYTOOL_WORK\"" in s
    assert "SERVICE_USER=wso2" in s
    root_part = s.replace(s[s.index("KEYTOOL_WORK='"):s.index("'\n\n# remember")], "")
    assert '"$kt"' not in root_part and "keytool" not in root_part.split("import_store")[-1]
