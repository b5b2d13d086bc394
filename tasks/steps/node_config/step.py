"""The configure step on the step contract, its read-only planning entry point, `fab configure`.

    planned = plan_configure(run, s)      # facts (one round trip, two when the files changed)
                                          # and the Plan: reads only (fab status uses it)
    run.apply(s, step, planned.plan)      # check mode, diffs, status: the runner's

Each host's typed result (`NodeConfigured`) travels back as the StepResult's value; the
outcome over all nodes is built after `run.each`, never from the pool's threads.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from invoke import task

from ...engine import remote
from ...engine.cli import COMMON_HELP, session
from ...engine.inventory import Host
from ...engine.plan import ActionFailed, Plan
from ...engine.remote import HostSession
from ...engine.report import Status, StepResult
from ...engine.runner import Run
from ...wso2 import ei_xml
from .. import node_keys, services, systemd, vault
from ..membership import record as members
from ..vault import step as vault_step
from ..artifacts import plan as artifact_plan
from .facts import (CONFIG_STATE, NodeFacts, node_probes, parse_node_facts, remembered_state,
                    render_digest, unchanged_since_last_render)
from .files import apply_script, remember_script
from .install import install_plan
from .params import conf_dir
from .plan import NodePlan, meta_as_wanted, plan_node


@dataclass
class NodeConfigured:
    """What configure found and planned on one node (its StepResult's value)."""
    state: services.NodeState  # the process state, read in the same round trip as the facts
    admin_state: str  # admin.ADMIN_STATE's text ("" when none)
    plan: Plan
    drift: bool = False  # the node's configuration is not what a deploy would make it
    restart: bool = False  # ... in what a running node reads (files, unit, moved jars)
    membership_changed: bool = False
    raw: dict = field(default_factory=dict)  # the fact read itself (artifacts reuse it)


@dataclass
class ConfigureOutcome:
    ok: bool
    changed: set[str] = field(default_factory=set)  # nodes whose config changed (check: would)
    restart: set[str] = field(default_factory=set)  # ... in what a running node reads
    admin_states: dict[str, str] = field(default_factory=dict)  # node -> admin.ADMIN_STATE
    membership_changed: bool = False
    # each node's process state, read in the same round trip as its config facts
    states: dict[str, services.NodeState] = field(default_factory=dict)
    raw: dict[str, dict] = field(default_factory=dict)  # node -> that read (artifacts, node_keys)
    keys_changed: set[str] = field(default_factory=set)  # nodes given keys (the vault re-reads)


def _read(run: Run, s: HostSession) -> tuple[NodeFacts, services.NodeState, dict]:
    probes = node_probes(run.inv)
    probes.update(services.state_probes(run.inv, s.host.address, https=False))
    if run.inv.artifacts:  # fab artifacts' facts ride on this read (steps/artifacts/plan.py)
        probes.update(artifact_plan.probes(run.inv))
    raw = remote.read_facts(s, probes)
    return parse_node_facts(raw), services.parse_state(raw), raw


def plan_configure(run: Run, s: HostSession) -> NodeConfigured:
    """Read a node's facts and plan its configuration; changes nothing on the node."""
    inv = run.inv
    facts, state, raw = _read(run, s)

    def done(plan: Plan, **kw) -> NodeConfigured:
        return NodeConfigured(state, facts.admin_state, plan, raw=raw, **kw)

    jdk = services.jdk_problem(facts.java, inv.cluster.java_home)
    if jdk:  # before anything is installed or written
        return done(Plan.refuse(f"{jdk} (nothing written)"))
    if not facts.ei_home:
        if inv.cluster.ei_zip is None:
            return done(Plan.refuse(f"EI_HOME {inv.cluster.ei_home} is missing on this node: "
                                    "install EI there, or set cluster.ei_zip to let the tool "
                                    "do it"))
        plan = install_plan(run)
        plan.add("configure the unpacked EI (after install)",
                 lambda s: _configure_after_install(run, s))
        return done(plan, drift=True)
    digest = render_digest(inv, s.host)
    fetched: dict = {}
    if not (unchanged_since_last_render(facts, digest) and meta_as_wanted(inv, facts)):
        # something differs from what we wrote last time: fetch the files and edit them
        fetched = remote.read_facts(s, node_probes(inv, contents=True))
        full = parse_node_facts(fetched)
        full.remembered = facts.remembered
        facts = full
    try:
        nplan = plan_node(inv, s.host, facts, inv.cluster.jdbc_driver.read_bytes())
    except ei_xml.XmlConfigError as e:
        return done(Plan.refuse(f"{e} (nothing written)"))
    if fetched and nplan.files:  # before any alias is written (steps/vault/step.py)
        carbon = f"{conf_dir(inv)}/carbon.xml"
        problem = vault.precheck(inv, fetched, next(
            (c.spec.content for c in nplan.files if c.spec.path == carbon),
            facts.conf.get("carbon.xml")))
        if problem:
            return done(Plan.refuse(f"{problem} (nothing written)"))
    sysplan = systemd.plan_system(inv, s.host, facts.system, state.unit) \
        if facts.system else systemd.SystemPlan()
    plan = configure_actions(run, facts, nplan, sysplan, digest)
    return done(plan, drift=not (nplan.empty and sysplan.empty),
                restart=bool(nplan.restart_reasons or sysplan.restart_reasons),
                membership_changed=nplan.membership_changed)


def configure_actions(run: Run, facts: NodeFacts, nplan: NodePlan, sysplan: systemd.SystemPlan,
                      digest: str) -> Plan:
    """Pure: the node's plans as actions. One script does all the writes (one SSH command):
    the first action runs it, the others only name their change."""
    inv = run.inv
    jdk = facts.java.replace('"', "")
    notes = "; ".join([jdk] * bool(jdk) + sysplan.notes)
    remember = remembered_state(digest, nplan.rendered) if nplan.rendered else ""
    noop = "configuration up to date" + (f"; {notes}" if notes else "")
    if facts.pending:
        noop += "; restart still pending from an earlier run"
    plan = Plan(noop=noop, warnings=[f"!!! {w}" for w in sysplan.warnings],
                before={**nplan.originals, **sysplan.originals})
    if sysplan.error:
        plan.error = f"{sysplan.error} (nothing written)"
        return plan
    lines = nplan.describe(inv) + sysplan.describe()
    if not lines:
        if remember and remember.strip() != facts.remembered:
            # the files are as wanted but not as remembered (the tool or an input changed): a
            # change of our own bookkeeping, so the next no-op run need not fetch the files
            plan.add(f"remember what the files were rendered from ({CONFIG_STATE})",
                     lambda s: remote.run_script(s, remember_script(inv, remember, run.stamp),
                                                 check=True, what="remember") and None)
        return plan

    def write(s: HostSession) -> str:
        script = apply_script(inv, nplan, run.stamp, remember) if not nplan.empty else ""
        script += systemd.system_script(sysplan, run.stamp, inv.cluster.backups_keep)
        if sysplan.restart_reasons:
            script += remote.pending_restart_script(
                f"{run.stamp} configure: {' '.join(sysplan.restart_reasons)}")
        res = remote.run_script(s, script, check=True, what="configure write")
        said = notes
        if sysplan.apply_sysctl:
            left = systemd.sysctl_differences(systemd.parse_sysctl_after(res.stdout))
            if left:
                said += (f"; !!! the kernel did not take every setting of "
                         f"{systemd.SYSCTL_PATH}: " + "; ".join(left))
        return said

    plan.add(lines[0], write, nplan.files + sysplan.files)
    for line in lines[1:]:
        plan.add(line, lambda s: None)  # done by the write above
    return plan


def _configure_after_install(run: Run, s: HostSession) -> str:
    """After an install in the same step: plan on the fresh EI_HOME and run that plan."""
    plan = plan_configure(run, s).plan
    if plan.error:
        raise ActionFailed(plan.error)
    for action in plan.actions:
        action.run(s)
    return "configured: " + "; ".join(plan.changes) if plan.actions else plan.noop


def configure_node(run: Run, s: HostSession, step: str = "configure") -> StepResult:
    """One node's configure step: its result, with its NodeConfigured as the value."""
    planned = plan_configure(run, s)
    return dataclasses.replace(run.apply(s, step, planned.plan), value=planned)


def configure_outcome(results: dict[str, StepResult]) -> ConfigureOutcome:
    """Pure: the outcome over the nodes, from each node's result and its value."""
    out = ConfigureOutcome(all(r.status in (Status.OK, Status.CHANGED) for r in results.values()))
    for name, r in results.items():
        got = r.value
        if not isinstance(got, NodeConfigured):
            continue  # unreachable, or failed before its facts were read
        out.states[name] = got.state
        out.admin_states[name] = got.admin_state
        out.raw[name] = got.raw
        if got.drift and r.status == Status.CHANGED:
            out.changed.add(name)
            out.restart |= {name} if got.restart else set()
            # a running node changes cluster (another domain): every node stops
            out.membership_changed |= got.membership_changed and got.state.running
    return out


def configure_step(run: Run, nodes: list[Host] | None = None,
                   step: str = "configure") -> ConfigureOutcome:
    members.ensure(run)  # each node's REGISTRY_LOCALn and writer flag by name
    nodes = nodes or list(run.inv.nodes)
    out = configure_outcome(run.each(nodes, step, lambda s: configure_node(run, s, step)))
    node_keys.keys_step(run, out, run.alive(nodes))  # each node's own keys (cluster CA)
    # after the keys: the values are encrypted for the keystore as it now is
    vault_step.vault_step(run, out, run.alive(nodes))
    return out


@task(help={"check": COMMON_HELP["check"], "diff": COMMON_HELP["diff"],
            "parallel": COMMON_HELP["parallel"], "on": "nodes to configure (default: all)"})
def configure(c, check=False, diff=False, parallel=16, on=None):
    """Copy the JDBC driver and write each node's datasource, registry and cluster config."""
    with session(c, check=check, diff=diff, parallel=parallel, title="CONFIGURE") as run:
        nodes = run.inv.select(on) if on else list(run.inv.nodes)
        configure_step(run, [n for n in nodes if n.role == "node"])
