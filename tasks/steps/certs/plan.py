"""`fab certs` pure plans: keep, (re)generate or upload the LB's certificate; which of a node's
truststores need keytool. No I/O, no clock (the caller gives `now`)."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime

from ...engine.inventory import Inventory
from .facts import CertInfo, StoreFacts


def days_left(info: CertInfo, now: datetime) -> int | None:
    if not info.not_after:
        return None
    return int((info.not_after - now).total_seconds() // 86400)


@dataclass
class LbCertPlan:
    action: str  # "keep" | "generate" | "upload" | "fix-key-mode"
    reasons: list[str] = field(default_factory=list)


def _key_mode_wrong(info: CertInfo) -> str | None:
    if info.key_mode == 0o600 and info.key_owner == "root":
        return None
    mode = f"{info.key_mode:04o}" if info.key_mode is not None else "?"
    return f"key mode/owner is {mode} {info.key_owner}, want 0600 root"


def plan_lb_cert(info: CertInfo, inv: Inventory, now: datetime, renew: bool = False,
                 user_files: tuple[bytes, bytes] | None = None,
                 remote_user_sha: tuple[str | None, str | None] = (None, None)) -> LbCertPlan:
    """Pure: keep, (re)generate or upload the LB's certificate, and why."""
    cl, cs = inv.cluster, inv.certs
    if user_files is not None:
        crt, key = user_files
        want = (hashlib.sha256(crt).hexdigest(), hashlib.sha256(key).hexdigest())
        if renew:
            return LbCertPlan("upload", ["--renew given (your own certificate is re-uploaded)"])
        if remote_user_sha != want:
            return LbCertPlan("upload", ["your certificate/key differ from the LB's copies"])
        wrong = _key_mode_wrong(info)
        if wrong:
            return LbCertPlan("fix-key-mode", [wrong])
        return LbCertPlan("keep", ["your certificate is on the LB"])
    reasons = []
    if renew:
        reasons.append("--renew given")
    if not info.cert_present:
        reasons.append(f"no certificate at {cs.cert_path}")
    if not info.key_present:
        reasons.append(f"no key at {cs.key_path}")
    reasons += info.problems
    if info.cert_present and info.key_present and info.cert_pub and info.key_pub \
            and info.cert_pub != info.key_pub:
        reasons.append("certificate does not match the key")
    if info.cert_present and not info.problems:
        if info.subject_cn != cl.service_name:
            reasons.append(f"CN is {info.subject_cn!r}, want {cl.service_name!r}")
        missing = [n for n in (cl.service_name, cl.console_name) if n not in info.sans]
        if missing:
            reasons.append(f"subjectAltName lacks {', '.join(missing)}")
        left = days_left(info, now)
        if left is not None and left <= cs.renew_before_days:
            reasons.append(f"expires in {left} day(s) (renew_before_days = "
                           f"{cs.renew_before_days})")
        if info.key_bits is not None and info.key_bits < cs.key_bits:
            reasons.append(f"key is {info.key_bits} bits, want {cs.key_bits}")
    if reasons:
        return LbCertPlan("generate", reasons)
    wrong = _key_mode_wrong(info)
    if wrong:
        return LbCertPlan("fix-key-mode", [wrong])
    left = days_left(info, now)
    return LbCertPlan("keep", [f"certificate valid for {left} more day(s), matches the key and "
                               "the names"])


@dataclass
class TruststorePlan:
    """Which of a node's truststores need keytool to import the LB certificate."""

    error: str | None = None
    work: list[str] = field(default_factory=list)  # store paths that need keytool
    skipped: list[str] = field(default_factory=list)  # optional stores that do not exist
    up_to_date: list[str] = field(default_factory=list)


def plan_truststores(stores: list[StoreFacts], fingerprint: str | None,
                     keytool: bool) -> TruststorePlan:
    """Pure: which truststores need keytool (the remembered checksum tells the others apart).
    fingerprint None: the LB certificate is not known yet (check mode, a new one): all work."""
    plan = TruststorePlan()
    missing = [st.path for st in stores if st.required and st.state is None]
    if missing:
        plan.error = (f"truststore {missing[0]} is missing: is the EI installed at "
                      "cluster.ei_home on this node?")
        return plan
    for st in stores:
        if st.state is None:
            plan.skipped.append(st.path)
        elif fingerprint and st.remembered == (st.state.sha256, fingerprint):
            plan.up_to_date.append(st.path)
        else:
            plan.work.append(st.path)
    if plan.work and not keytool:
        plan.error = "keytool not found (no JAVA_HOME/bin/keytool, none on PATH): install a JDK"
    return plan
