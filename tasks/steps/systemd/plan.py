"""A node's systemd and kernel-settings plan (read with its configuration facts)."""
from __future__ import annotations

from dataclasses import dataclass, field

from ...engine.inventory import Host, Inventory
from ...engine.remote import FileChange, FileSpec, FileState, plan_files, q, write_files_script
from .host import HostInit, cap_nofile, java_home_of
from .sysctl import (SYSCTL_PATH, render_sysctl, sysctl_apply_script, sysctl_decision,
                     sysctl_differences)
from .unit import UNIT_NAME, UNIT_PATH, UnitState, render_unit

@dataclass
class SystemFacts:
    """A node's facts for this part, read with its configuration facts (node_config)."""
    init: HostInit
    java: str  # services.java_probe's output
    sysctl_now: dict[str, str | None]
    unit_file: FileState | None = None
    sysctl_file: FileState | None = None


@dataclass
class SystemPlan:
    files: list[FileChange] = field(default_factory=list)
    daemon_reload: bool = False
    enable: bool = False
    apply_sysctl: bool = False
    restart_reasons: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # said in the step's message
    warnings: list[str] = field(default_factory=list)  # said loudly (!!!)
    error: str | None = None
    originals: dict[str, bytes | None] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not (self.files or self.daemon_reload or self.enable or self.apply_sysctl)

    def describe(self) -> list[str]:
        out = [c.describe() for c in self.files]
        if self.daemon_reload:
            out.append("systemctl daemon-reload")
        if self.enable:
            out.append(f"systemctl enable {UNIT_NAME} (started at boot)")
        if self.apply_sysctl:
            out.append(f"apply the kernel settings of {SYSCTL_PATH}")
        return out


def plan_system(inv: Inventory, node: Host, f: SystemFacts, unit: UnitState) -> SystemPlan:
    """Pure: the unit (where systemd runs), its enablement, the kernel settings drop-in."""
    plan = SystemPlan()
    specs: list[FileSpec] = []
    states: dict[str, FileState | None] = {SYSCTL_PATH: f.sysctl_file, UNIT_PATH: f.unit_file}
    plan.originals = {p: (st.content if st else None) for p, st in states.items()}
    if f.init.systemd:
        java_home = java_home_of(f.java, inv.cluster.java_home)
        if not java_home:
            plan.error = (f"cannot tell the JAVA_HOME for {UNIT_NAME} from `{f.java}`: set "
                          "cluster.java_home in hosts.toml")
            return plan
        nofile, warning = cap_nofile(inv.cluster.nofile, f.init)
        if warning:
            plan.warnings.append(warning)
        specs.append(FileSpec(UNIT_PATH, render_unit(inv, node, java_home, nofile)))
    else:
        plan.notes.append(f"no systemd here (PID 1 is {f.init.pid1}): EI is started with its "
                          "own wso2server.sh, not enabled at boot")
    specs.append(FileSpec(SYSCTL_PATH, render_sysctl(f.sysctl_now)))
    plan.files = plan_files(specs, states)
    changed = {c.spec.path for c in plan.files if c.content_changed}
    if UNIT_PATH in changed:
        plan.daemon_reload = True
        plan.restart_reasons.append(UNIT_NAME)
    plan.enable = f.init.systemd and unit.enabled != "enabled"
    apply, why = sysctl_decision(inv.cluster.apply_sysctl, f.init)
    diff = sysctl_differences(f.sysctl_now)
    if apply:
        plan.apply_sysctl = bool(diff) or SYSCTL_PATH in changed
    elif diff:
        plan.notes.append(f"kernel settings written to {SYSCTL_PATH}, not applied: {why} "
                          f"({len(diff)} differ from the running kernel)")
    return plan


def system_script(plan: SystemPlan, stamp: str, keep: int) -> str:
    """Write the files, then daemon-reload / enable / apply the kernel settings."""
    out = write_files_script(plan.files, stamp, keep=keep) if plan.files else ""
    if plan.daemon_reload:
        out += "systemctl daemon-reload\n"
    if plan.enable:
        out += f"systemctl enable {q(UNIT_NAME)} 2>&1\n"
    if plan.apply_sysctl:
        out += sysctl_apply_script()
    return out
