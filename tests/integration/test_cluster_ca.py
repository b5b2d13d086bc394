"""The cluster's own keys and TLS to the database, on a real lab (LAB_INDEX + 0, 2 nodes).

A deploy gives each node its own key pair from the cluster CA (kept on the controller), NGINX
verifies the nodes against that CA, the DB server presents a certificate from it and the node
accounts REQUIRE SSL; the JDBC driver (the real jar, in the stand-in) verifies the server. The
tests run in file order and build on each other.
"""
from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import stat

import pytest
from cryptography import x509

from tests.integration.helpers import curl, fab, out, recap_rows, served_by, noop_deploy

PROFILE = "/opt/wso2ei-6.6.0/wso2/business-process"
SEC = f"{PROFILE}/repository/resources/security"
KEYSTORE = f"{SEC}/bps-node.p12"


@pytest.fixture(scope="module")
def clab(lab_factory):
    lab = lab_factory(int(os.environ.get("LAB_INDEX", "7")), nodes=2)
    shutil.rmtree(lab.run_dir / "cluster-ca", ignore_errors=True)  # a new lab, a new CA
    return lab


def lb_https(lab) -> tuple[int, str]:
    return curl("https://ei.wso2.com/services/", resolve=f"ei.wso2.com:443:{lab.address('lb')}")


def presented(lab, node: str) -> x509.Certificate:
    """The certificate a node presents on its HTTPS port (read from the LB's namespace)."""
    r = lab.exec("lb", f"echo | openssl s_client -connect {lab.address(node)}:9445 "
                       "-servername nodes.bps.internal 2>/dev/null | openssl x509", check=True)
    return x509.load_pem_x509_certificate(r.stdout.encode())


def db_login(lab, node: str, ssl: bool):
    pw = lab.secret("db_password")
    flag = "--ssl" if ssl else "--ssl=0"
    return lab.exec(node, ["sh", "-c", f"MYSQL_PWD=\"$1\" mariadb -h {lab.address('db')} "
                           f"-u wso2bps {flag} -N -e \"SHOW STATUS LIKE 'Ssl_version'\"",
                           "sh", pw])


def test_first_deploy_nodes_have_their_own_keys(clab):
    r = fab(clab, "deploy")
    assert r.returncode == 0, out(r)
    assert "created the cluster CA" in r.stdout
    ca_key, ca_crt = clab.run_dir / "cluster-ca/ca.key", clab.run_dir / "cluster-ca/ca.crt"
    assert stat.S_IMODE(ca_key.stat().st_mode) == 0o600
    ca = x509.load_pem_x509_certificate(ca_crt.read_bytes())
    certs = {n: presented(clab, n) for n in clab.node_names}
    for n, cert in certs.items():
        assert cert.issuer == ca.subject, n
        ca.public_key().verify(cert.signature, cert.tbs_certificate_bytes,
                               __import__("cryptography.hazmat.primitives.asymmetric.padding",
                                          fromlist=["PKCS1v15"]).PKCS1v15(),
                               cert.signature_hash_algorithm)
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert san.get_values_for_type(x509.DNSName) == ["nodes.bps.internal"]
        assert [str(a) for a in san.get_values_for_type(x509.IPAddress)] == [clab.address(n)]
        assert cert.not_valid_after_utc - dt.datetime.now(dt.timezone.utc) > dt.timedelta(days=300)
        # carbon.xml and Tomcat name the node's own keystore; WSO2's public key is gone from them
        conf = clab.exec(n, f"cat {PROFILE}/conf/carbon.xml {PROFILE}/conf/tomcat/"
                            "catalina-server.xml", check=True).stdout
        ks = re.search(r"<KeyStore>.*?</KeyStore>", conf, re.S).group(0)
        assert "bps-node.p12" in ks and "wso2carbon" not in ks
        assert 'keystoreFile="${carbon.home}/repository/resources/security/bps-node.p12"' in conf
        st = clab.exec(n, f"stat -c '%a %U' {KEYSTORE}", check=True).stdout.split()
        assert st == ["600", "wso2"], st
    assert len({c.fingerprint(c.signature_hash_algorithm) for c in certs.values()}) == 2
    # NGINX verifies them, and both serve
    assert {served_by(lb_https(clab)[1]) for _ in range(8)} == {"node1", "node2"}
    conf = clab.exec("lb", "cat /etc/nginx/conf.d/ei.https.conf", check=True).stdout
    assert "proxy_ssl_verify on;" in conf and "proxy_ssl_name nodes.bps.internal;" in conf


def test_db_refuses_plain_connections_the_nodes_use_tls(clab):
    for n in clab.node_names:
        plain = db_login(clab, n, ssl=False)
        assert plain.returncode != 0 and "Access denied" in plain.stderr, plain
        tls = db_login(clab, n, ssl=True)
        assert tls.returncode == 0 and "TLSv1" in tls.stdout, tls
    # the DB server's certificate is from the cluster CA and names the JDBC URLs' host
    r = clab.exec("node1", f"echo | openssl s_client -starttls mysql -connect "
                           f"{clab.address('db')}:3306 -CAfile {SEC}/cluster-ca.pem "
                           "-verify_hostname carbondb.mysql-wso2.com 2>&1", check=False)
    assert "Verify return code: 0 (ok)" in r.stdout, r.stdout[-800:]
    log = clab.exec("node1", f"cat {PROFILE}/repository/logs/wso2carbon.log", check=True).stdout
    assert re.search(r"datasource BPS_DS -> jdbc:mysql://carbondb\.mysql-wso2\.com:3306/BPS_DS\?"
                     r"useSSL=true&serverSslCert=\S+cluster-ca\.pem", log), log[-2000:]
    # a start now (the accounts REQUIRE SSL) connects: over TLS, through the real driver
    r = fab(clab, "restart", "--only", "node1")
    assert r.returncode == 0, out(r)


def test_second_deploy_changes_nothing(clab):
    # no new round trip for the CA and TLS checks: at most 5 commands per host
    r, _ = noop_deploy(clab, clab.run_dir / "stats.json")
    for n in clab.node_names:
        assert f"[{n}] node-keys: ok: own key pair (cluster CA) and the CA in the truststore(s) " \
               "as wanted (no keytool run)" in r.stdout
    assert "[db] db-tls: ok: TLS as wanted" in r.stdout


def _rogue(clab, node: str) -> tuple[bytes, bytes]:
    """A CA of our own (not the cluster's) and a keystore for `node` from it, with every name,
    the keystore password and the node's own key pair right (Secure Vault's cipher texts are
    for that key): only the issuer is wrong."""
    import base64
    from cryptography.hazmat.primitives.serialization import pkcs12
    from tasks.steps import cluster_ca
    pw = clab.secret("keystore_password")
    now = clab.exec(node, ["base64", "-w0", KEYSTORE], check=True).stdout
    own, _, _ = pkcs12.load_key_and_certificates(base64.b64decode(now), pw.encode())
    rogue = cluster_ca.new_ca("rogue", 30)
    key, cert = cluster_ca.issue(rogue, node, ("nodes.bps.internal",), (clab.address(node),), 30,
                                 key=own)
    return rogue.pem, cluster_ca.keystore_bytes(key, cert, rogue, clab.secret("keystore_password"))


def _put_as_wso2(clab, node: str, path: str, data: bytes) -> None:
    import base64
    clab.exec(node, ["sh", "-c", f"base64 -d | runuser -u wso2 -- sh -c 'cat > {path}'"],
              input=base64.b64encode(data).decode(), check=True)


def test_nginx_refuses_a_node_with_a_foreign_certificate(clab):
    _, p12 = _rogue(clab, "node2")
    _put_as_wso2(clab, "node2", KEYSTORE, p12)
    r = fab(clab, "restart", "--only", "node2")
    assert r.returncode == 0, out(r)  # the node itself is fine: its keystore opens
    assert presented(clab, "node2").issuer != presented(clab, "node1").issuer
    served = [served_by(lb_https(clab)[1]) for _ in range(10)]
    assert set(served) == {"node1"}, served
    log = clab.exec("lb", "cat /var/log/nginx/error.log", check=True).stdout
    assert "upstream SSL certificate verify error" in log, log[-1500:]
    # the next deploy sees a keystore it did not write: a new key pair, node2 restarted
    r = fab(clab, "deploy")
    assert r.returncode == 0, out(r)
    assert "the keystore is not the one this tool wrote" in r.stdout
    assert recap_rows(r.stdout)["node2"]["restarted"]
    assert {served_by(lb_https(clab)[1]) for _ in range(8)} == {"node1", "node2"}


def test_a_wrong_ca_for_the_db_fails_visibly(clab):
    rogue_pem, _ = _rogue(clab, "node1")
    _put_as_wso2(clab, "node1", f"{SEC}/cluster-ca.pem", rogue_pem)
    r = fab(clab, "restart", "--only", "node1", timeout=300)
    assert r.returncode != 0, out(r)
    log = clab.exec("node1", f"tail -n 80 {PROFILE}/repository/logs/wso2carbon.log",
                    check=True).stdout
    assert re.search(r"cannot connect to jdbc:mysql://\S+ .*(SSL|certif|PKIX)", log, re.I), log
    r = fab(clab, "deploy")  # puts the cluster CA back, starts node1
    assert r.returncode == 0, out(r)
    assert {served_by(lb_https(clab)[1]) for _ in range(8)} == {"node1", "node2"}
