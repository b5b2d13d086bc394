"""EI as a systemd service, boot survival, limits and kernel settings (pure parts and probes).

* Where systemd runs (/run/systemd/system exists and PID 1 is systemd) each node gets
  /etc/systemd/system/wso2ei-bps.service (templates/wso2ei-bps.service.j2, root's file),
  enabled at boot; start/stop/restart go through systemctl. Elsewhere EI is started as before
  (the product's `wso2server.sh start` as the service user, tasks/steps/services/).
* LimitNOFILE: cluster.nofile, capped at what the host can grant: systemd cannot raise a limit
  above its own hard limit without CAP_SYS_RESOURCE (a container's PID 1 lacks it, and a unit
  asking for more fails to start), nor above fs.nr_open.
* Kernel settings from WSO2's production guidelines: /etc/sysctl.d/60-wso2ei.conf, always
  written; applied only where the host has a kernel of its own (see sysctl_decision).

Facts are read inside the existing fact reads (node_config.node_probes, services.state_probes):
a no-op deploy spends no command on them. The parts: host.py (the init, what a unit can be
granted), unit.py (the unit file, its state, start/stop through systemctl), sysctl.py (kernel
settings), plan.py (a node's plan and script, run by node_config's configure).
"""
from __future__ import annotations
from .host import INIT_PROBE, HostInit, cap_nofile, java_home_of, parse_init
from .plan import SystemFacts, SystemPlan, plan_system, system_script
from .sysctl import (LEFT_OUT, SYSCTL_AFTER, SYSCTL_PATH, SYSCTLS, Sysctl, parse_sysctl,
                     parse_sysctl_after, render_sysctl, sysctl_apply_script, sysctl_decision,
                     sysctl_differences, sysctl_probe, wanted_sysctls)
from .unit import (EI_LOCALE, RESTART_SEC, UNIT_NAME, UNIT_PATH, UNIT_STEPS, UnitState,
                   limits_problem, parse_unit_state, render_unit, start_commands, stop_commands,
                   unit_nofile, unit_script)

__all__ = [n for n in dir() if not n.startswith("_") and n != "annotations"]
