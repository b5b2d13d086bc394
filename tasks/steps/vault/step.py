"""The `vault` step: run by configure right after node_keys.keys_step, so the values are
encrypted for the keystore as the keys step left it (a first deploy with the cluster CA has no
keystore before it; reissued keys would not decrypt the old cipher text).

Configure writes the XML with the aliases; this step writes cipher-text.properties,
secret-conf.properties, the password file and the state. Both happen before the deploy's
restarts, and a failure here fails configure (no restart), so a node never starts with aliases
whose cipher text is missing or made for another key. A no-op reads nothing more: its facts
ride on configure's one read (vault.probes) and decide by digests; only a node whose keys
changed, or whose vault is not up to date, is read again (with the keystore's bytes).
"""
from __future__ import annotations

from ...engine import remote
from ...engine.inventory import Host
from ...engine.plan import Plan
from ...engine.remote import HostSession
from ...wso2 import vault as wv
from . import (VaultFacts, VaultPlan, apply_script, conf_path, enabled, parse_facts, plan_vault,
               probes, up_to_date)

STEP = "vault"
CARBON = "carbon.xml"


def _noop(inv) -> str:
    if not enabled(inv):
        return "Secure Vault off (cluster.secure_vault = false)"
    return "the secured passwords are encrypted for the current keystore (nothing decrypted)"


def vault_actions(run, vplan: VaultPlan) -> Plan:
    """The VaultPlan as the step contract's Plan: one write of files, state and scrub."""
    inv = run.inv
    out = Plan(noop=_noop(inv), error=vplan.error)
    if vplan.error or vplan.empty:
        return out

    def write(s: HostSession) -> None:
        script = "set -e\n"
        if vplan.files:
            script += remote.write_files_script(vplan.files, run.stamp,
                                                keep=inv.cluster.backups_keep)
        script += apply_script(inv, vplan)
        if vplan.restart_reasons:  # the server reads them at start
            script += remote.pending_restart_script(
                f"{run.stamp} {STEP}: {' '.join(vplan.restart_reasons)}")
        remote.run_script(s, script, check=True, what="Secure Vault write")

    out.add("; ".join(vplan.describe()) or "Secure Vault files", write, vplan.files)
    return out


def read_full(s: HostSession, inv) -> tuple[VaultFacts, bytes | None]:
    """The vault's facts again, with the keystore's bytes and carbon.xml as written now."""
    raw = remote.read_facts(s, {**probes(inv, contents=True),
                                "vault:carbon": remote.probe_file(conf_path(inv, CARBON),
                                                                  content=True)})
    carbon = remote.parse_file_probe(raw["vault:carbon"].out)
    return parse_facts(raw), carbon.content if carbon else None


def vault_step(run, outcome, nodes: list[Host]) -> None:
    """After keys_step, on the nodes configure read."""
    inv = run.inv

    def one(s: HostSession):
        raw = outcome.raw.get(s.name)
        if raw is None or "vault_state" not in raw:
            return run.apply(s, STEP, Plan(noop="not read (configure failed)"))
        f = parse_facts(raw)
        keys_new = s.name in outcome.keys_changed
        if not keys_new and up_to_date(inv, f):
            return run.apply(s, STEP, Plan(noop=_noop(inv)))
        if run.check and enabled(inv) and (keys_new or s.name in outcome.changed):
            # the keystore / carbon.xml this would encrypt for are not written in check mode
            plan = Plan()
            plan.add(f"write {wv.CIPHER_TEXT}: the secured passwords encrypted for the node's "
                     "keystore as this run leaves it", lambda s: None)
            return run.apply(s, STEP, plan)
        full, carbon = read_full(s, inv)
        vplan = plan_vault(inv, s.host, full, carbon)
        result = run.apply(s, STEP, vault_actions(run, vplan))
        if result.status == "changed":
            outcome.changed.add(s.name)
            if vplan.restart_reasons:
                outcome.restart.add(s.name)
        return result

    results = run.each([n for n in nodes if n.name in outcome.raw], STEP, one)
    if any(r.status not in ("ok", "changed") for r in results.values()):
        outcome.ok = False
