"""`fab certs`: the LB's TLS certificate (openssl on the LB) and its import into every node's
truststore (keytool on the nodes) -- guide §5.2, with today's key sizes.

LB: an RSA key (cluster certs.key_bits, default 3072; created on the LB, never leaves it, 0600
root), a request with CN = the service name and subjectAltNames for the service and console
names, and a self-signed certificate that keeps those SANs (`-extfile`); or the user's own
certificate and key (certs.cert_file / certs.key_file, both or neither: the inventory checks),
uploaded and checked that they match each other and the names. An existing certificate is kept
while it matches the key and the names and is valid for more than certs.renew_before_days;
`--renew` forces a new one.

Nodes: keytool imports the certificate (alias = service name) into the profile's
client-truststore.jks (required) and into <EI_HOME>/repository/resources/security/ when that one
exists. The store password never appears on a command line (`-storepass:file` with a 0600 temp
file removed afterwards). No JVM on a no-op run: after an import the store's sha256 and the
certificate's fingerprint are remembered in /var/lib/bps-deploy/ and keytool runs only when either
differs. A changed truststore marks the node as pending restart.

Layout: facts.py (one read per host), plan.py (pure), apply.py (scripts and actions); this
module wires them per the step contract (engine/plan.py). The LB's result hands the certificate
on to the nodes as its value (`apply.LbCert`).
"""
from __future__ import annotations

from datetime import datetime, timezone

from invoke import task

from ...engine.cli import COMMON_HELP, session
from ...engine.inventory import Inventory
from ...engine.remote import HostSession
from ...engine.report import Status, StepResult
from .apply import (LbCert, fix_key_script, generate_script, import_script,  # noqa: F401
                    lb_cert_actions, reload_nginx_script, req_config, truststore_actions,
                    upload_script)
from .facts import (TRUSTSTORE_STATE, CertInfo, StoreFacts, cert_fingerprint,  # noqa: F401
                    keytool_probe, lb_cert_probe, parse_cert_probe, parse_enddate,
                    parse_key_bits, parse_sans, parse_state_file, parse_subject_cn,
                    read_lb_cert, read_truststore_facts, truststores)
from .plan import (LbCertPlan, TruststorePlan, days_left, plan_lb_cert,  # noqa: F401
                   plan_truststores)

STEP = "certs"


def user_files(inv: Inventory) -> tuple[bytes, bytes] | None:
    """The user's own certificate and key (certs.cert_file/key_file), or None: self-signed."""
    cs = inv.certs
    if cs.cert_file is None or cs.key_file is None:  # both or neither: inventory.py says so
        return None
    return cs.cert_file.read_bytes(), cs.key_file.read_bytes()


def lb_cert(run, s: HostSession, renew: bool) -> StepResult:
    """The LB's certificate; the result's value is the LbCert the nodes must trust."""
    user = user_files(run.inv)
    info, shas = read_lb_cert(s, run.inv, with_user_files=user is not None)
    lp = plan_lb_cert(info, run.inv, datetime.now(timezone.utc), renew, user, shas)
    return run.apply(s, STEP, lb_cert_actions(run, info, lp, user))


def node_certs(run, s: HostSession, cert: LbCert) -> StepResult:
    """A node's truststores: import the LB certificate where the remembered import differs."""
    stores, keytool = read_truststore_facts(s, run.inv)
    tp = plan_truststores(stores, cert.fingerprint, keytool)
    return run.apply(s, STEP, truststore_actions(run, tp, cert))


def certs_step(run, renew: bool = False) -> bool:
    """LB certificate, then every node's truststore(s). True when every host is ok."""
    inv = run.inv
    r = run.each([inv.lb], STEP, lambda s: lb_cert(run, s, renew))[inv.lb.name]
    cert = r.value
    if r.status not in (Status.OK, Status.CHANGED) or not isinstance(cert, LbCert):
        return False
    results = run.each(run.alive(inv.nodes), STEP, lambda s: node_certs(run, s, cert))
    return all(r.status in (Status.OK, Status.CHANGED) for r in results.values())


def cert_days_left(run) -> int | None:
    """Days the LB certificate is still valid (None if there is none); for `fab status`."""
    info, _ = read_lb_cert(run.session(run.inv.lb), run.inv)
    return days_left(info, datetime.now(timezone.utc))


@task(help={"check": COMMON_HELP["check"], "diff": COMMON_HELP["diff"],
            "parallel": COMMON_HELP["parallel"],
            "renew": "replace the certificate even if it is still good"})
def certs(c, check=False, diff=False, renew=False, parallel=16):
    """LB TLS certificate (openssl on the LB) imported into every node's truststore (keytool)."""
    with session(c, check=check, diff=diff, parallel=parallel, title="CERTS") as run:
        certs_step(run, renew=renew)
