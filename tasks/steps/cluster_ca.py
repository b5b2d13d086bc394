"""The cluster's own CA, kept on the controller, and the certificates it issues.

The CA key lives in `certs.ca_key` (0600, created with the `cryptography` package if absent,
in a 0700 folder), its certificate in `certs.ca_cert`. It signs:
- one key pair per node (tasks/steps/node_keys.py): the node's primary keystore, replacing
  WSO2's shipped wso2carbon.jks, whose private key is public. Per node, not per cluster: a node's
  key leaking (a disk, a backup) exposes one node and is replaced on that node alone, and each
  certificate names its own node's address, so NGINX and the nodes can tell them apart;
- the DB server's certificate (tasks/steps/db_tls.py).
Every node certificate carries the node's address (IP SAN) and ONE shared cluster-internal name
(`certs.internal_name`, a DNS SAN): NGINX has one `proxy_ssl_name` per upstream of addresses.

Pure helpers here (no host I/O); the controller's files are read and written only by
`ensure_ca`, which the deploy calls once, before any host step needs the CA.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ..engine.inventory import Inventory
from ..engine.remote import STATE_DIR
from ..wso2.keystore_xml import SECURITY_DIR, KeystoreXml

CA_KEY_BITS = 4096
NODE_KEY_BITS = 3072
KEY_ALIAS = "bps-node"  # the private key's alias in each node's keystore
CA_ALIAS = "bps-cluster-ca"  # the CA's alias in the truststores
KEYSTORE_TYPE = "PKCS12"


class CaError(Exception):
    """The CA files cannot be used; the message names the file and the fix."""


class Ca:
    """The CA certificate, and its private key when something is to be signed.

    A no-op run only compares fingerprints, so the key is loaded with OpenSSL's full RSA
    consistency check (0.4 s for a 4096-bit key on a small machine) only on first use as
    `.key`; `ensure_ca` has already checked that the file holds the certificate's key."""

    def __init__(self, cert: x509.Certificate, key: rsa.RSAPrivateKey | None = None,
                 key_file: Path | None = None):
        self.cert = cert
        self._key = key
        self._key_file = key_file

    @property
    def key(self) -> rsa.RSAPrivateKey:
        if self._key is None:
            assert self._key_file is not None
            key = serialization.load_pem_private_key(self._key_file.read_bytes(), None)
            if _pub(key) != _pub(self.cert):  # the file changed since ensure_ca looked
                raise CaError(f"{self._key_file} no longer holds the cluster CA's key")
            self._key = key  # type: ignore[assignment]
        return self._key  # type: ignore[return-value]

    @property
    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.cert)


def fingerprint(cert: x509.Certificate) -> str:
    """SHA-256 as keytool prints it (AB:CD:...)."""
    h = cert.fingerprint(hashes.SHA256()).hex().upper()
    return ":".join(h[i:i + 2] for i in range(0, len(h), 2))


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def new_ca(name: str, days: int, now: dt.datetime | None = None) -> Ca:
    now = now or _now()
    key = rsa.generate_private_key(public_exponent=65537, key_size=CA_KEY_BITS)
    subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "bps-deploy"),
                         x509.NameAttribute(NameOID.COMMON_NAME, f"{name} cluster CA")])
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False,
                                         False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
            .sign(key, hashes.SHA256()))
    return Ca(cert, key)


def ensure_ca(inv: Inventory, check: bool = False) -> tuple[Ca | None, str]:
    """The cluster CA from the controller's files; created (key 0600) when both are absent.

    Returns (ca, note). In check mode a missing CA is not created: (None, 'would create ...').
    A key without its certificate (or the reverse), a key readable by others, or a pair that
    does not match is refused: a CA is never silently replaced (every node trusts it).
    """
    cs = inv.certs
    key_p, cert_p = Path(cs.ca_key), Path(cs.ca_cert)
    if not key_p.exists() and not cert_p.exists():
        if check:
            return None, f"would create the cluster CA ({key_p}, {cert_p})"
        ca = new_ca(inv.cluster.service_name, cs.ca_days)
        for p in (key_p, cert_p):
            p.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        _write(key_p, ca.key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()), 0o600)
        _write(cert_p, ca.pem, 0o644)
        return ca, f"created the cluster CA {cert_p} (key {key_p}, 0600: back it up)"
    for p, other in ((key_p, cert_p), (cert_p, key_p)):
        if not p.is_file():
            raise CaError(f"{p} is missing but {other} exists: restore it from your backup "
                          "(a new CA would make every node untrusted), or remove both to start "
                          "a new CA")
    if key_p.stat().st_mode & 0o077:
        raise CaError(f"{key_p} (certs.ca_key) is readable by others "
                      f"({oct(key_p.stat().st_mode & 0o777)}): chmod 600 it")
    try:
        # the pair is checked here, before any host is touched; this load skips only OpenSSL's
        # RSA consistency check, which Ca.key does in full before the key signs anything
        key = serialization.load_pem_private_key(key_p.read_bytes(), None,
                                                 unsafe_skip_rsa_key_validation=True)
        cert = x509.load_pem_x509_certificate(cert_p.read_bytes())
    except (ValueError, TypeError) as e:
        raise CaError(f"{key_p} / {cert_p}: not an unencrypted PEM key and certificate ({e})") \
            from None
    if _pub(key) != _pub(cert):
        raise CaError(f"{cert_p} does not belong to the key {key_p}")
    ca = Ca(cert, key_file=key_p)
    left = (cert.not_valid_after_utc - _now()).days
    if left <= cs.renew_before_days:
        raise CaError(f"the cluster CA {cert_p} expires in {left} day(s): make a new CA "
                      "(move both files away, deploy: every node gets new keys) before then")
    return ca, ""


RUN_CA = "cluster-ca"  # run.shared: the CA this run read (or made), for every step that needs it


def run_ca(run) -> Ca | None:
    """ensure_ca for a run, once (db-tls and node-keys both ask): says what it created on the
    controller; raises CaError."""
    if RUN_CA not in run.shared:
        ca, note = ensure_ca(run.inv, check=run.check)
        if note:
            run.rep.line(None, note)
        run.shared[RUN_CA] = ca
    return run.shared[RUN_CA]  # type: ignore[return-value]


def _write(p: Path, data: bytes, mode: int) -> None:
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _pub(obj) -> bytes:
    k = obj.public_key()
    return k.public_bytes(serialization.Encoding.DER,
                          serialization.PublicFormat.SubjectPublicKeyInfo)


def issue(ca: Ca, cn: str, dns: tuple[str, ...], ips: tuple[str, ...], days: int,
          now: dt.datetime | None = None, key: rsa.RSAPrivateKey | None = None
          ) -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    """A new key (or `key`) and a server (and client) certificate signed by the CA."""
    now = now or _now()
    key = key or rsa.generate_private_key(public_exponent=65537, key_size=NODE_KEY_BITS)
    sans = [x509.DNSName(n) for n in dns] + [x509.IPAddress(ipaddress.ip_address(a))
                                            for a in ips]
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "bps-deploy"),
                                     x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
            .issuer_name(ca.cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(min(now + dt.timedelta(days=days), ca.cert.not_valid_after_utc))
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(True, False, True, False, False, False, False, False,
                                         False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                                  ExtendedKeyUsageOID.CLIENT_AUTH]), False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                ca.key.public_key()), False)
            .sign(ca.key, hashes.SHA256()))
    return key, cert


def node_names(inv: Inventory, address: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(DNS SANs, IP SANs) of a node certificate."""
    return (inv.certs.internal_name,), (address,)


def keystore_bytes(key, cert: x509.Certificate, ca: Ca, password: str) -> bytes:
    """A PKCS12 keystore: the node's key under KEY_ALIAS with its chain (node, CA).

    PBE-SHA1-3DES and an HMAC-SHA1 MAC: what every JDK 8 and 11 update reads (AES-PBES2 needs
    8u301/11.0.12+). PKCS12 keeps one password for the store and the key (Java and WSO2 ask the
    same), so carbon.xml's KeyPassword is the keystore password.
    """
    enc = (serialization.PrivateFormat.PKCS12.encryption_builder().kdf_rounds(50000)
           .key_cert_algorithm(pkcs12.PBES.PBESv1SHA1And3KeyTripleDESCBC)
           .hmac_hash(hashes.SHA1()).build(password.encode()))
    return pkcs12.serialize_key_and_certificates(KEY_ALIAS.encode(), key, cert, [ca.cert], enc)


def key_pem(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def reissue_reasons(remembered: dict[str, str], ca_fp: str, names: str, now: dt.datetime,
                    renew_before_days: int) -> list[str]:
    """Pure: why a certificate we issued (as remembered on its host) must be issued again."""
    out = []
    if remembered.get("ca") != ca_fp:
        out.append("the cluster CA changed")
    if remembered.get("names") != names:
        out.append("the host's names changed")
    try:
        left = (dt.datetime.fromtimestamp(int(remembered.get("not_after", "0")), dt.timezone.utc)
                - now).days
    except ValueError:
        left = -1
    if left <= renew_before_days:
        out.append(f"the certificate expires in {left} day(s) (renew_before_days = "
                   f"{renew_before_days})")
    return out


def remember_script(path: str, text: str) -> str:
    """Shell: root's record of what was issued (0600, atomic)."""
    import base64
    b64 = base64.b64encode(text.encode()).decode()
    return (f"mkdir -p {STATE_DIR}; (umask 077; echo {b64} | base64 -d > {path}.tmp) "
            f"&& mv -f {path}.tmp {path}\n")


def secret_digest(password: str, salt: str) -> str:
    """What a node remembers of its keystore password (root-only file): PBKDF2, never the
    password, so a changed password is seen without opening the store (no JVM)."""
    return hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), 10000).hex()


# --------------------------------------------------------------------------- the nodes' side

KEYSTORE_FILE = "bps-node.p12"
CA_FILE = "cluster-ca.pem"  # beside it: the CA in PEM, for the JDBC driver (db_tls)


def keystore_xml_params(inv: Inventory) -> KeystoreXml | None:
    if not inv.certs.cluster_ca:
        return None
    return KeystoreXml(KEYSTORE_FILE, KEYSTORE_TYPE, KEY_ALIAS, inv.secrets.keystore_password)


def jdbc_ca(inv: Inventory) -> str | None:
    """The CA file the JDBC URLs verify the DB server with (None: database.tls = false)."""
    return node_ca_path(inv) if inv.database.tls and inv.certs.cluster_ca else None


def node_security_dir(inv: Inventory) -> str:
    return f"{inv.cluster.profile_home}/{SECURITY_DIR}"


def node_keystore_path(inv: Inventory) -> str:
    return f"{node_security_dir(inv)}/{KEYSTORE_FILE}"


def node_ca_path(inv: Inventory) -> str:
    return f"{node_security_dir(inv)}/{CA_FILE}"


# --------------------------------------------------------------------------- the LB's side

def lb_ca_path(inv: Inventory) -> str:
    return f"{inv.certs.dir}/cluster-ca.pem"


def lb_context(inv: Inventory) -> dict:
    """Template variables of templates/_to_nodes_tls.j2."""
    if lb_ca_pem(inv) is None:  # off, or no CA yet (`fab lb` before the first configure)
        return {"node_tls": None}
    return {"node_tls": {"ca": lb_ca_path(inv), "name": inv.certs.internal_name}}


def lb_ca_pem(inv: Inventory) -> bytes | None:
    """The CA certificate NGINX verifies the nodes with (None: cluster CA off, or none yet)."""
    if not inv.certs.cluster_ca:
        return None
    p = Path(inv.certs.ca_cert)
    return p.read_bytes() if p.is_file() else None
