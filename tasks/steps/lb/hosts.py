"""The LB's names in /etc/hosts: hosts_file (tasks/steps/hosts_file.py) owns the block and its
format, on the LB and on the nodes; these names stay for lb's callers and tests."""
from __future__ import annotations

from ...engine import remote
from ...engine.inventory import Inventory
from ...engine.remote import FileChange, HostSession
from ...engine.report import StepResult
from .. import hosts_file
from .vhosts import STEP

ETC_HOSTS = "/etc/hosts"
HOSTS_MARKER = hosts_file.MARKER  # the LB's and the nodes' one names block


def hosts_block(inv: Inventory) -> list[str]:
    """The LB's own /etc/hosts block (hosts_file owns the format)."""
    return hosts_file.wanted_lines(inv, "lb")


def plan_etc_hosts(current: bytes | None, state: remote.FileState | None,
                   inv: Inventory) -> list[FileChange]:
    """Pure: the LB's /etc/hosts change (hosts_file's block, absent when etc_hosts is off)."""
    return hosts_file.changes(current, state, inv, "lb")


def node_hosts(run, s: HostSession) -> StepResult:
    """A node's /etc/hosts: hosts_file's block (the LB names with the rest the nodes need);
    not read again when an earlier step of this run settled it."""
    return hosts_file.host_step(run, s, step=STEP)
