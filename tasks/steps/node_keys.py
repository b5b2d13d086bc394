"""Each node's own key pair (cluster CA), its keystore, and the CA in its truststores.

Part of `fab configure` (and so of `fab deploy`): its facts come in configure's one fact read
(`probes`), so a no-op run spends no command and starts no JVM here:
- the keystore `<profile>/repository/resources/security/bps-node.p12` (PKCS12, built on the
  controller with `cryptography`, written as the service user, 0600) and `cluster-ca.pem`
  beside it (the CA in PEM, for the JDBC driver). What was issued is remembered on the node in
  a root-only file: the keystore's sha256, the certificate's fingerprint and expiry, the CA's
  fingerprint, the names and a PBKDF2 digest of the password. A new key and certificate are
  issued when the keystore is missing or not the one we wrote, the CA, the names or the
  password changed, or the certificate expires within `certs.renew_before_days`.
- the CA (alias bps-cluster-ca) imported into the truststores with keytool (the LB
  certificate's import script, tasks/scripts/truststore_import.sh) only when a store's sha256
  is not the one recorded after our last import.
A changed keystore or truststore marks the node for a restart (the JVM reads them at start).
"""
from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, field

from ..engine import remote
from ..engine.inventory import Host, Inventory
from ..engine.plan import ActionFailed, Plan
from ..engine.remote import FileSpec, FileState, HostSession, q
from . import certs, cluster_ca

STEP = "node-keys"
KEYS_STATE = f"{remote.STATE_DIR}/node-keys.state"
TRUST_STATE = f"{remote.STATE_DIR}/truststore-ca.state"


def managed_paths(inv: Inventory) -> list[str]:
    """For `fab backup` (backup/managed.py): the keystore, the CA file, their records."""
    if not inv.certs.cluster_ca:
        return []
    return [cluster_ca.node_keystore_path(inv), cluster_ca.node_ca_path(inv), KEYS_STATE,
            TRUST_STATE]


def probes(inv: Inventory) -> dict[str, str]:
    """Added to configure's fact read (node_config.node_probes)."""
    if not inv.certs.cluster_ca:
        return {}
    out = {"keys:keystore": remote.probe_file(cluster_ca.node_keystore_path(inv)),
           "keys:ca": remote.probe_file(cluster_ca.node_ca_path(inv)),
           "keys:state": f"cat {KEYS_STATE} 2>/dev/null || true",
           "keys:trust": f"cat {TRUST_STATE} 2>/dev/null || true"}
    for path, _ in certs.truststores(inv):
        out[f"keys:store:{path}"] = remote.probe_file(path)
    return out


@dataclass
class KeyFacts:
    keystore: FileState | None
    ca: FileState | None
    remembered: dict[str, str]  # KEYS_STATE: key -> value
    trust: dict[str, tuple[str, str]]  # TRUST_STATE: store path -> (sha, CA fingerprint)
    stores: dict[str, FileState | None] = field(default_factory=dict)


def parse(raw: dict[str, remote.Fact]) -> KeyFacts:
    kv = dict(line.split("=", 1) for line in raw["keys:state"].out.splitlines() if "=" in line)
    return KeyFacts(remote.parse_file_probe(raw["keys:keystore"].out),
                    remote.parse_file_probe(raw["keys:ca"].out), kv,
                    certs.parse_state_file(raw["keys:trust"].out),
                    {k[len("keys:store:"):]: remote.parse_file_probe(f.out)
                     for k, f in raw.items() if k.startswith("keys:store:")})


def names_digest(inv: Inventory, node: Host) -> str:
    dns, ips = cluster_ca.node_names(inv, node.address)
    return hashlib.sha256(" ".join(dns + ips).encode()).hexdigest()[:32]


@dataclass
class KeysPlan:
    reissue: list[str] = field(default_factory=list)  # why a new key and certificate
    write_ca: bool = False
    trust: list[str] = field(default_factory=list)  # truststores to import the CA into
    error: str | None = None


def plan_keys(inv: Inventory, node: Host, f: KeyFacts, ca: "cluster_ca.Ca | None",
              now: dt.datetime) -> KeysPlan:
    """Pure: what the node needs (ca None: check mode before the CA exists)."""
    plan = KeysPlan()
    ca_fp = ca.fingerprint if ca else "(new CA)"
    r = f.remembered
    if f.keystore is None:
        plan.reissue.append("no keystore yet")
    elif r.get("sha") != f.keystore.sha256:
        plan.reissue.append("the keystore is not the one this tool wrote")
    else:
        plan.reissue += cluster_ca.reissue_reasons(r, ca_fp, names_digest(inv, node), now,
                                                   inv.certs.renew_before_days)
        salt = f"{node.name}:{r.get('fp', '')}"
        if r.get("pw") != cluster_ca.secret_digest(inv.secrets.keystore_password, salt):
            plan.reissue.append("secrets.keystore_password changed")
        if not plan.reissue and (f.keystore.owner != inv.cluster.service_user
                                 or f.keystore.mode != 0o600):
            plan.reissue.append("the keystore's owner/mode is not the service user's 0600")
    plan.write_ca = ca is None or f.ca is None or f.ca.sha256 != hashlib.sha256(ca.pem).hexdigest()
    stores = certs.truststores(inv)
    for path, required in stores:
        st = f.stores.get(path)
        if st is None:
            if required:
                plan.error = (f"truststore {path} is missing: is the EI installed at "
                              "cluster.ei_home on this node?")
            continue
        if ca is None or f.trust.get(path) != (st.sha256, ca.fingerprint):
            plan.trust.append(path)
    return plan


def keys_files(inv: Inventory, node: Host, ca: "cluster_ca.Ca", now: dt.datetime
               ) -> tuple[list[FileSpec], str]:
    """A new key pair and certificate: the keystore's FileSpec and the state to remember."""
    dns, ips = cluster_ca.node_names(inv, node.address)
    key, cert = cluster_ca.issue(ca, node.name, dns, ips, inv.certs.node_days, now)
    pw = inv.secrets.keystore_password
    p12 = cluster_ca.keystore_bytes(key, cert, ca, pw)
    user = inv.cluster.service_user
    fp = cluster_ca.fingerprint(cert)
    state = (f"sha={hashlib.sha256(p12).hexdigest()}\nfp={fp}\n"
             f"not_after={int(cert.not_valid_after_utc.timestamp())}\nca={ca.fingerprint}\n"
             f"names={names_digest(inv, node)}\n"
             f"pw={cluster_ca.secret_digest(pw, f'{node.name}:{fp}')}\n")
    return [FileSpec(cluster_ca.node_keystore_path(inv), p12, user, user, 0o600,
                     sensitive=True)], state


def keys_actions(run, s: HostSession, f: KeyFacts, plan: KeysPlan, ca) -> Plan:
    inv = run.inv
    out = Plan(noop="own key pair (cluster CA) and the CA in the truststore(s) as wanted "
                    "(no keytool run)", error=plan.error)
    if plan.error:
        return out
    user = inv.cluster.service_user
    now = dt.datetime.now(dt.timezone.utc)
    if plan.reissue or plan.write_ca:
        ca_pem = ca.pem if ca else b""
        specs = [FileSpec(cluster_ca.node_ca_path(inv), ca_pem, user, user, 0o644)]
        state = ""
        if plan.reissue and ca is not None:
            ks, state = keys_files(inv, s.host, ca, now)
            specs = ks + specs
        current = {cluster_ca.node_keystore_path(inv): f.keystore,
                   cluster_ca.node_ca_path(inv): f.ca}
        changes = remote.plan_files(specs, current) if ca else [
            remote.FileChange(sp, current.get(sp.path), True) for sp in specs]
        what = (f"new key pair and certificate from the cluster CA in "
                f"{cluster_ca.node_keystore_path(inv)}: {'; '.join(plan.reissue)}"
                if plan.reissue else f"write the cluster CA to {cluster_ca.node_ca_path(inv)}")

        def write(s: HostSession) -> None:
            script = remote.write_files_script(changes, run.stamp, keep=inv.cluster.backups_keep)
            if state:
                script += cluster_ca.remember_script(KEYS_STATE, state)
            # the JVM reads its keystore, and the JDBC driver the CA file, at start
            script += remote.pending_restart_script(
                f"{run.stamp} {STEP}: {'new keystore' if state else 'cluster CA file'}")
            remote.run_script(s, script, check=True, what="node keystore")
        out.add(what, write, changes)
    if plan.trust:
        stores = list(plan.trust)
        out.add(f"trust the cluster CA (alias {cluster_ca.CA_ALIAS}) in {', '.join(stores)}",
                lambda s: _import_ca(run, s, stores, f.stores, ca))
    return out


def _import_ca(run, s: HostSession, paths: list[str], before: dict, ca) -> str:
    """One keytool run for all stores (truststore_import.sh), its own record (TRUST_STATE)."""
    inv = run.inv
    script = certs.import_script(
        paths, ca.pem, ca.fingerprint, cluster_ca.CA_ALIAS, inv.secrets.truststore_password,
        inv.cluster.service_user, inv.cluster.ei_home, run.stamp,
        f"{run.stamp} {STEP}: cluster CA imported into the truststore",
        inv.cluster.backups_keep, inv.cluster.java_home)
    script = script.replace("STATE_FILE=" + q(certs.TRUSTSTORE_STATE),
                            "STATE_FILE=" + q(TRUST_STATE), 1)
    fix = ""
    for path in paths:  # the LB certificate's record stays true: only our alias was added
        st = before.get(path)
        if st is not None:  # the store read as the keytool user (as_kt: never root's reading)
            fix += (f"new=$(as_kt sha256sum -- {q(path)} | cut -d' ' -f1); "
                    f"[ -f {certs.TRUSTSTORE_STATE} ] && sed -i \"s|^{st.sha256} \\(.*\\) "
                    f"{path}\\$|$new \\1 {path}|\" {certs.TRUSTSTORE_STATE}\n")
    head, sep, tail = script.rpartition("finish\n")
    res = remote.run_script(s, head + fix + sep + tail, what="truststore import (cluster CA)")
    errors = [ln[len("ERROR "):] for ln in res.stderr.splitlines() if ln.startswith("ERROR ")]
    if not res.ok:
        raise ActionFailed("; ".join(errors) or (res.stderr or res.stdout).strip()[-800:])
    return "" if "IMPORTED" in res.stdout else "the CA was already there; checksum remembered"


def keys_step(run, outcome, nodes: list[Host]) -> None:
    """After configure's writes, on the nodes it read: keys, CA file, truststores."""
    inv = run.inv
    if not inv.certs.cluster_ca:
        return
    try:
        ca = cluster_ca.run_ca(run)
    except cluster_ca.CaError as e:
        for n in nodes:
            run.rep.record(remote_fail(n.name, str(e)))
        outcome.ok = False
        return
    now = dt.datetime.now(dt.timezone.utc)

    def one(s: HostSession):
        raw = outcome.raw.get(s.name)
        if raw is None:  # configure did not read it (failed there)
            return run.apply(s, STEP, Plan(noop="not read (configure failed)"))
        f = parse(raw)
        plan = plan_keys(inv, s.host, f, ca, now)
        result = run.apply(s, STEP, keys_actions(run, s, f, plan, ca))
        if result.status == "changed":  # the JVM reads its key and trust stores at start
            outcome.changed.add(s.name)
            outcome.keys_changed.add(s.name)  # the vault step re-reads the keystore
            outcome.restart.add(s.name)
        return result

    results = run.each([n for n in nodes if n.name in outcome.raw], STEP, one)
    if any(r.status not in ("ok", "changed") for r in results.values()):
        outcome.ok = False


def remote_fail(host: str, msg: str):
    from ..engine.report import StepResult, Status
    return StepResult(host, STEP, Status.FAILED, msg)
