"""The LB names in /etc/hosts (a managed block, on the LB and on the nodes, when
cluster.etc_hosts is true). Kept apart: the hosts-file step is to own /etc/hosts."""
from __future__ import annotations

from ...engine import remote
from ...engine.inventory import Inventory
from ...engine.plan import Plan
from ...engine.remote import FileChange, HostSession
from ...engine.report import StepResult
from .vhosts import STEP

ETC_HOSTS = "/etc/hosts"
HOSTS_MARKER = "bps-deploy lb-names"


def hosts_block(inv: Inventory) -> list[str]:
    cl = inv.cluster
    return [f"{inv.lb.address}\t{cl.service_name} {cl.console_name}"]


def plan_etc_hosts(current: bytes | None, state: remote.FileState | None,
                   inv: Inventory) -> list[FileChange]:
    """Pure: the /etc/hosts change (managed block present when etc_hosts, absent otherwise)."""
    block = hosts_block(inv) if inv.cluster.etc_hosts else []
    return remote.block_change(ETC_HOSTS, current, state, block, HOSTS_MARKER)


def node_hosts(run, s: HostSession) -> StepResult:
    """A node's /etc/hosts: the managed block naming the LB's host names."""
    content, state = remote.read_file(s, ETC_HOSTS)
    changes = plan_etc_hosts(content, state, run.inv)
    plan = Plan(noop="/etc/hosts already maps the LB names" if run.inv.cluster.etc_hosts
                else "etc_hosts off: no LB names block", before={ETC_HOSTS: content})
    if changes:
        plan.add("; ".join(c.describe() + " (LB names block)" for c in changes),
                 lambda s: run.apply_files(s, changes, what="/etc/hosts") and None, changes)
    return run.apply(s, STEP, plan)
