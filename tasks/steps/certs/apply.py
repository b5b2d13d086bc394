"""`fab certs` actions: the scripts that change the LB's certificate and the nodes' truststores
(tasks/scripts/lb_cert.sh, truststore_import.sh) and the Plans that run them (engine/plan.py).

What the LB hands to the nodes, the certificate they must trust (`LbCert`), travels as the LB
result's value: the plan's (the current certificate, or None when a new one would be made in
check mode) or the value of the action that made the new one.
"""
from __future__ import annotations

import base64
from dataclasses import dataclass

from ...engine import remote
from ...engine.inventory import Inventory
from ...engine.plan import ActionFailed, Done, Plan
from ...engine.remote import HostSession
from ..lb.apply import nginx_service_script
from .facts import TRUSTSTORE_STATE, CertInfo, read_lb_cert
from .plan import LbCertPlan, TruststorePlan


@dataclass(frozen=True)
class LbCert:
    """The LB certificate the nodes must trust."""

    pem: bytes | None  # None: not known yet (check mode, where a new one would be made)
    fingerprint: str | None
    changed: bool = False  # this run replaced it


# --------------------------------------------------------------------------- scripts


def req_config(inv: Inventory) -> str:
    """openssl's request config: CN = the service name, both names as subjectAltNames (the
    self-signed certificate keeps them through `-extfile`), a server certificate's key usage."""
    cl = inv.cluster
    return ("[req]\nprompt = no\ndistinguished_name = dn\nreq_extensions = ext\n"
            f"[dn]\nCN = {cl.service_name}\n"
            f"[ext]\nsubjectAltName = DNS:{cl.service_name},DNS:{cl.console_name}\n"
            "basicConstraints = critical,CA:FALSE\n"
            "keyUsage = critical,digitalSignature,keyEncipherment\n"
            "extendedKeyUsage = serverAuth\n")


def _cert_script(inv: Inventory, stamp: str, mode: str, **params: object) -> str:
    cl, cs = inv.cluster, inv.certs
    header: dict[str, object] = dict(
        MODE=mode, CERT_DIR=cs.dir, CERT_PATH=cs.cert_path, KEY_PATH=cs.key_path,
        CSR_PATH=f"{cs.dir}/server.csr", NAMES=f"{cl.service_name} {cl.console_name}",
        KEY_BITS="", DAYS="", REQ_CNF="", CRT_B64="", KEY_B64="")
    header.update(params)
    return (remote.backups_lib(stamp, cl.backups_keep)
            + remote.script("lb_cert.sh", **header))


def generate_script(inv: Inventory, stamp: str) -> str:
    """Key, request and self-signed certificate on the LB; checked, then moved into place."""
    return _cert_script(inv, stamp, "generate", KEY_BITS=int(inv.certs.key_bits),
                        DAYS=int(inv.certs.days), REQ_CNF=req_config(inv))


def upload_script(inv: Inventory, stamp: str, crt: bytes, key: bytes) -> str:
    """The user's certificate and key (in this script, on stdin, base64), checked that they
    match each other and the names before they replace anything."""
    return _cert_script(inv, stamp, "upload", CRT_B64=base64.b64encode(crt).decode(),
                        KEY_B64=base64.b64encode(key).decode())


def fix_key_script(inv: Inventory, stamp: str) -> str:
    return _cert_script(inv, stamp, "fix-key-mode")


def reload_nginx_script() -> str:
    """Reload nginx (after nginx -t) if it runs; says "nginx not running" when it does not."""
    return nginx_service_script("reload", if_running=True, validate=True)


def import_script(stores: list[str], pem: bytes, fingerprint: str, alias: str, password: str,
                  service_user: str, ei_home: str, stamp: str,
                  pending_reason: str = "certs: LB certificate imported",
                  keep: int = remote.BACKUPS_KEEP, java_home: str | None = None) -> str:
    """keytool on the node, as the service user (tasks/scripts/truststore_import.sh): compare
    the fingerprint under `alias`; replace only if different, in a copy that is checked before
    it replaces the store. The password travels in this script (stdin), base64, into a 0600
    file in a private temp folder, never into argv."""
    return remote.backups_lib(stamp, keep) + remote.script(
        "truststore_import.sh", SERVICE_USER=service_user, EI_HOME=ei_home, ALIAS=alias,
        FINGERPRINT=fingerprint, STATE_FILE=TRUSTSTORE_STATE,
        PENDING_FILE=remote.PENDING_RESTART, PENDING_REASON=pending_reason,
        JAVA_HOME=java_home or "", STORES="\n".join(stores),
        PASSWORD_B64=base64.b64encode(password.encode()).decode(),
        CERT_PEM=pem.decode().strip())


def _said(res: remote.CmdResult) -> str:
    return (res.stderr or res.stdout).strip()[-800:]


# --------------------------------------------------------------------------- plans


def lb_cert_actions(run, info: CertInfo, lp: LbCertPlan,
                    user: tuple[bytes, bytes] | None) -> Plan:
    """The LB's certificate plan as actions; the result's value is the LbCert the nodes trust."""
    inv = run.inv
    current = LbCert(info.pem, info.fingerprint)
    if lp.action == "keep":
        return Plan(noop=f"{lp.reasons[0]}; fingerprint {(info.fingerprint or '?')[:23]}...",
                    value=current)
    why = "; ".join(lp.reasons)
    if lp.action == "fix-key-mode":
        def fix(s: HostSession) -> None:
            remote.run_script(s, fix_key_script(inv, run.stamp), check=True, what="fix key mode")
        return Plan(value=current).add(
            f"chmod 600 / chown root {inv.certs.key_path}: {why}", fix)

    generate = lp.action == "generate"
    desc = (f"new RSA {inv.certs.key_bits} key and self-signed certificate ({inv.certs.days} "
            f"days) for {inv.cluster.service_name}, {inv.cluster.console_name}" if generate
            else "upload your certificate and key")

    def replace(s: HostSession) -> Done:
        script = (generate_script(inv, run.stamp) if generate
                  else upload_script(inv, run.stamp, *user))
        res = remote.run_script(s, script, what="certificate")
        if not res.ok:
            raise ActionFailed(f"{lp.action} failed, the old certificate and key are "
                               f"untouched: {_said(res)}", changes_done=False)
        new, _ = read_lb_cert(s, inv)
        if not new.pem or new.problems:
            raise ActionFailed("the new certificate cannot be read back: "
                               + "; ".join(new.problems))
        return Done(f"fingerprint {new.fingerprint}",
                    value=LbCert(new.pem, new.fingerprint, changed=True))

    def reload(s: HostSession) -> str:
        res = remote.run_script(s, reload_nginx_script(), what="reload nginx")
        if not res.ok:
            raise ActionFailed(f"certificate replaced but nginx was not reloaded: {_said(res)}")
        return ("nginx not running: not reloaded" if "nginx not running" in res.stdout
                else "nginx reloaded")

    # in check mode the new certificate is not known: the nodes' plans show all their stores
    plan = Plan(value=LbCert(None, None, changed=True))
    plan.add(f"{desc}: {why}", replace)
    plan.add("reload nginx if it runs (after nginx -t)", reload)
    return plan


def truststore_actions(run, tp: TruststorePlan, cert: LbCert) -> Plan:
    """A node's truststore plan as actions: one keytool script for every store that needs it."""
    inv = run.inv
    plan = Plan(noop="truststore(s) unchanged since the last import of this certificate "
                     "(no keytool run)", error=tp.error)
    if tp.error or not tp.work:
        return plan

    def import_all(s: HostSession) -> str:
        if not cert.pem or not cert.fingerprint:
            raise ActionFailed("no LB certificate to import", changes_done=False)
        cl = inv.cluster
        script = import_script(tp.work, cert.pem, cert.fingerprint, cl.service_name,
                               inv.secrets.truststore_password or "", cl.service_user,
                               cl.ei_home, run.stamp,
                               f"{run.stamp} certs: LB certificate imported into the truststore",
                               cl.backups_keep, cl.java_home)
        res = remote.run_script(s, script, what="truststore import")
        imported = [ln.split(" ", 1)[1] for ln in res.stdout.splitlines()
                    if ln.startswith("IMPORTED ")]
        if not res.ok:
            errors = [ln[len("ERROR "):] for ln in res.stderr.splitlines()
                      if ln.startswith("ERROR ")]
            done = f" (imported into {', '.join(imported)})" if imported else ""
            raise ActionFailed(("; ".join(errors) or _said(res)) + done,
                               changes_done=bool(imported))
        if not imported:
            return "fingerprint already in the truststore(s); checksum remembered"
        return "node marked pending restart (JVM reads its truststore at start)"

    for i, path in enumerate(tp.work):
        # one script for all stores, one change line each
        plan.add(f"import the LB certificate (alias {inv.cluster.service_name}) into {path} "
                 "if its fingerprint differs", import_all if i == 0 else (lambda s: None))
    return plan
