"""The one script a node's configure change runs: prepare EI_HOME, write the files, mark the
pending restart, remember what was rendered (tasks/scripts/ei_home.sh, files.sh)."""
from __future__ import annotations

import base64

from ...engine import remote
from ...engine.inventory import Inventory
from ...engine.remote import q
from .facts import CONFIG_STATE
from .plan import NodePlan


def ei_home_lib(inv: Inventory, stamp: str) -> str:
    """tasks/scripts/ei_home.sh for this cluster: create_user, chown_home, move_aside, remember."""
    cl = inv.cluster
    return remote.script("ei_home.sh", SERVICE_USER=cl.service_user, EI_HOME=cl.ei_home,
                         BACKUP_DIR=remote.BACKUP_DIR, STAMP=stamp, STATE_FILE=CONFIG_STATE)


def remember_call(state: str) -> str:
    """The call (after ei_home_lib) that stores CONFIG_STATE: base64, so no quoting matters."""
    return f"remember {base64.b64encode(state.encode()).decode()}\n"


def remember_script(inv: Inventory, state: str, stamp: str) -> str:
    return ei_home_lib(inv, stamp) + remember_call(state)


def apply_script(inv: Inventory, plan: NodePlan, stamp: str, remember: str = "") -> str:
    lines = ["set -e"]
    if plan.create_user:
        lines.append("create_user")
    if plan.chown:  # first: the files below are then written as their owner, the service user
        lines.append("chown_home")
    lines += [f"move_aside {q(name)}" for name in plan.move_aside]
    script = ei_home_lib(inv, stamp) + "\n".join(lines) + "\n"
    if plan.files:
        script += remote.write_files_script(plan.files, stamp, keep=inv.cluster.backups_keep)
    reasons = plan.restart_reasons
    if reasons:
        script += remote.pending_restart_script(f"{stamp} configure: {' '.join(reasons)}")
    if remember:
        script += remember_call(remember)
    return script
