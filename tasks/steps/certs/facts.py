"""`fab certs` facts: what openssl says about the LB's certificate and key, and each node's
truststores (file facts, the remembered import, keytool). Each read is one round trip."""
from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone

from ...engine import remote
from ...engine.inventory import Inventory
from ...engine.remote import HostSession

TRUSTSTORE_STATE = f"{remote.STATE_DIR}/truststore.state"
_PEM_RE = re.compile(rb"-----BEGIN CERTIFICATE-----\s+(.+?)\s+-----END CERTIFICATE-----", re.S)
_EMPTY_SHA = hashlib.sha256(b"").hexdigest()
_MONTHS = {m: i for i, m in enumerate(
    "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split(), 1)}


def cert_fingerprint(pem: bytes) -> str:
    """SHA-256 fingerprint of the first certificate in a PEM, as keytool prints it (AB:CD:...)."""
    m = _PEM_RE.search(pem)
    if not m:
        raise ValueError("no PEM certificate found")
    der = base64.b64decode(b"".join(m.group(1).split()))
    h = hashlib.sha256(der).hexdigest().upper()
    return ":".join(h[i:i + 2] for i in range(0, len(h), 2))


def truststores(inv: Inventory) -> list[tuple[str, bool]]:
    """(path, required) of the truststores to import into on each node."""
    return [(f"{inv.cluster.profile_home}/repository/resources/security/client-truststore.jks",
             True),
            (f"{inv.cluster.ei_home}/repository/resources/security/client-truststore.jks", False)]


# --------------------------------------------------------------------------- the LB


@dataclass
class CertInfo:
    """What openssl says about the LB's certificate and key."""

    cert_present: bool = False
    key_present: bool = False
    subject_cn: str | None = None
    sans: tuple[str, ...] = ()
    not_after: datetime | None = None
    cert_pub: str | None = None  # sha256 of the cert's public key (DER)
    key_pub: str | None = None  # sha256 of the key's public key (DER)
    key_bits: int | None = None
    key_mode: int | None = None
    key_owner: str | None = None
    fingerprint: str | None = None
    pem: bytes | None = None
    problems: list[str] = field(default_factory=list)


def parse_enddate(text: str) -> datetime | None:
    """'notAfter=Nov 25 13:00:00 2026 GMT' -> aware datetime (no locale dependence)."""
    m = re.search(r"notAfter=(\w{3})\s+(\d+)\s+(\d+):(\d+):(\d+)\s+(\d{4})", text or "")
    if not m or m.group(1) not in _MONTHS:
        return None
    mon, day, hh, mm, ss, year = m.groups()
    return datetime(int(year), _MONTHS[mon], int(day), int(hh), int(mm), int(ss),
                    tzinfo=timezone.utc)


def parse_subject_cn(text: str) -> str | None:
    """From `-subject -nameopt RFC2253` ('subject=CN=ei.wso2.com,O=x') or the default form."""
    m = re.search(r"subject=.*?CN\s*=\s*([^,/\n]+)", text or "")
    return m.group(1).strip() if m else None


def parse_sans(text: str) -> tuple[str, ...]:
    """DNS names from `openssl x509 -ext subjectAltName` output."""
    return tuple(m.group(1) for m in re.finditer(r"DNS:([^,\s]+)", text or ""))


def parse_key_bits(text: str) -> int | None:
    m = re.search(r"Public-Key:\s*\((\d+) bit\)", text or "")
    return int(m.group(1)) if m else None


def lb_cert_probe(inv: Inventory) -> str:
    """The probe (tasks/scripts/lb_cert_probe.sh) of the LB's certificate and key."""
    return remote.script("lb_cert_probe.sh", CERT=inv.certs.cert_path, KEY=inv.certs.key_path)


def parse_cert_probe(out: str) -> CertInfo:
    """Pure: parse lb_cert_probe's output."""
    info = CertInfo()
    kv: dict[str, str] = {}
    for line in out.splitlines():
        k, sep, v = line.partition("=")
        if sep and k.isupper():
            kv.setdefault(k, v)
    info.cert_present = kv.get("CERT") == "present"
    info.key_present = kv.get("KEY") == "present"
    if info.cert_present:
        info.subject_cn = parse_subject_cn(out)
        info.sans = parse_sans(out)
        info.not_after = parse_enddate(out)
        info.key_bits = parse_key_bits(out)
        pub = kv.get("CERTPUB", "")
        info.cert_pub = pub if pub and pub != _EMPTY_SHA else None
        if kv.get("PEM"):
            try:
                info.pem = base64.b64decode(kv["PEM"])
                info.fingerprint = cert_fingerprint(info.pem)
            except (ValueError, base64.binascii.Error):
                info.problems.append("certificate is not a PEM certificate")
        if info.not_after is None:
            info.problems.append("openssl cannot read the certificate")
    if info.key_present:
        st = kv.get("KEYSTAT", "").split()
        if len(st) == 2:
            info.key_mode, info.key_owner = int(st[0], 8), st[1]
        pub = kv.get("KEYPUB", "")
        info.key_pub = pub if pub and pub != _EMPTY_SHA else None
        if info.key_pub is None:
            info.problems.append("openssl cannot read the key")
    return info


def read_lb_cert(s: HostSession, inv: Inventory, with_user_files: bool = False
                 ) -> tuple[CertInfo, tuple[str | None, str | None]]:
    """One round trip: the certificate's facts and, for the user's own files, the sha256 of
    the LB's copies of both."""
    probes = {"cert": lb_cert_probe(inv)}
    if with_user_files:
        probes["crt_sha"] = remote.probe_file(inv.certs.cert_path)
        probes["key_sha"] = remote.probe_file(inv.certs.key_path)
    f = remote.read_facts(s, probes)
    info = parse_cert_probe(f["cert"].out)
    shas: tuple[str | None, str | None] = (None, None)
    if with_user_files:
        a, b = (remote.parse_file_probe(f["crt_sha"].out),
                remote.parse_file_probe(f["key_sha"].out))
        shas = (a.sha256 if a else None, b.sha256 if b else None)
    return info, shas


# --------------------------------------------------------------------------- the nodes


@dataclass
class StoreFacts:
    path: str
    required: bool
    state: remote.FileState | None  # None = missing
    remembered: tuple[str, str] | None  # (store sha256, cert fingerprint) after our last import


def parse_state_file(text: str) -> dict[str, tuple[str, str]]:
    """Lines '<store sha256> <fingerprint> <path>' -> {path: (sha, fp)}."""
    out = {}
    for line in (text or "").splitlines():
        parts = line.split(None, 2)
        if len(parts) == 3:
            out[parts[2]] = (parts[0], parts[1])
    return out


def keytool_probe(inv: Inventory) -> str:
    """Prints the keytool the import would use (cluster.java_home's, else PATH's); rc 1: none."""
    return remote.script("keytool_probe.sh", JAVA_HOME=inv.cluster.java_home or "")


def read_truststore_facts(s: HostSession, inv: Inventory) -> tuple[list[StoreFacts], bool]:
    """One round trip: each truststore's file fact and remembered import; keytool found."""
    probes = {f"store:{p}": remote.probe_file(p) for p, _ in truststores(inv)}
    probes["state"] = f"cat {TRUSTSTORE_STATE} 2>/dev/null || true"
    probes["keytool"] = keytool_probe(inv)
    f = remote.read_facts(s, probes)
    remembered = parse_state_file(f["state"].out)
    stores = [StoreFacts(p, req, remote.parse_file_probe(f[f"store:{p}"].out), remembered.get(p))
              for p, req in truststores(inv)]
    return stores, f["keytool"].rc == 0 and bool(f["keytool"].out.strip())
