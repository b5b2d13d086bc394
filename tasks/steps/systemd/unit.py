"""The unit file, what systemd says about it, and how a start/stop goes through systemctl."""
from __future__ import annotations

import re
from dataclasses import dataclass

from .. import lb, vault
from ...engine.inventory import Host, Inventory

UNIT_NAME = "wso2ei-bps.service"
UNIT_PATH = f"/etc/systemd/system/{UNIT_NAME}"
RESTART_SEC = 10  # between tries while the database (or anything else) is not up yet
EI_LOCALE = "C.UTF-8"  # as services.EI_LOCALE (not imported: services imports us)


def render_unit(inv: Inventory, node: Host, java_home: str, nofile: int) -> bytes:
    """Pure: the unit file's bytes (templates/wso2ei-bps.service.j2)."""
    cl = inv.cluster
    return lb.render("wso2ei-bps.service.j2", {
        "unit_name": UNIT_NAME, "ei_version": cl.ei_version, "node_name": node.name,
        "user": cl.service_user, "group": cl.service_user, "profile_home": cl.profile_home,
        "java_home": java_home, "jvm_mem_opts": cl.jvm_mem_opts, "locale": EI_LOCALE,
        "nofile": int(nofile), "stop_timeout": int(cl.stop_timeout),
        "restart_sec": RESTART_SEC,
        "password_file": vault.PASSWORD_FILE if vault.enabled(inv) else "",
        "password_tmp": vault.password_tmp(inv)}).encode()


def unit_nofile(unit: bytes | None) -> int | None:
    """LimitNOFILE= of a unit file's bytes (what the JVM should get)."""
    m = re.search(rb"^LimitNOFILE=(\d+)\s*$", unit or b"", re.M)
    return int(m.group(1)) if m else None


# --------------------------------------------------------------------------- unit state


@dataclass(frozen=True)
class UnitState:
    """What systemd says about the unit, and where this profile's JVMs run."""
    systemd: bool = False
    active: str = ""  # ActiveState: active, inactive, failed, activating, deactivating
    sub: str = ""  # SubState: running, auto-restart, dead, ...
    main_pid: str = ""  # MainPID ("" for 0)
    enabled: str = ""  # UnitFileState: enabled, disabled, "" (no unit file loaded)
    restarts: int = 0  # NRestarts: restarts systemd made on its own
    inside: tuple[str, ...] = ()  # JVM pids in the unit's cgroup
    outside: tuple[str, ...] = ()  # JVM pids elsewhere (started the old way, by hand, ...)
    loaded: bool = False  # LoadState=loaded: systemd knows the unit file
    limit_nofile: int | None = None  # the unit's LimitNOFILE (hard) as systemd has it loaded
    limit_soft: int | None = None
    jvm_limits: tuple[tuple[str, str, str], ...] = ()  # (pid, soft, hard) open files per JVM

    @property
    def running(self) -> bool:
        return self.active in ("active", "activating", "reloading")

    @property
    def managed(self) -> bool:
        """Start/stop go through systemctl: systemd runs the host and knows our unit."""
        return self.systemd and self.loaded


def parse_unit_state(out: str) -> UnitState:
    """The `unit_state` function of tasks/scripts/ei_process.sh -> UnitState."""
    kv, inside, outside, limits = {}, [], [], []
    systemd = False
    for ln in out.splitlines():
        ln = ln.strip()
        if ln == "systemd":
            systemd = True
        elif ln.startswith("limits "):
            f = ln.split()
            if len(f) == 4:
                limits.append((f[1], f[2], f[3]))
        elif ln.startswith("in "):
            inside.append(ln[3:].strip())
        elif ln.startswith("out "):
            outside.append(ln[4:].strip())
        elif "=" in ln:
            k, _, v = ln.partition("=")
            kv[k] = v
    main = kv.get("MainPID", "")
    restarts = kv.get("NRestarts", "0")

    def num(key: str) -> int | None:
        v = kv.get(key, "")
        return int(v) if v.isdigit() else None

    return UnitState(systemd, kv.get("ActiveState", ""), kv.get("SubState", ""),
                     "" if main in ("", "0") else main, kv.get("UnitFileState", ""),
                     int(restarts) if restarts.isdigit() else 0, tuple(inside), tuple(outside),
                     kv.get("LoadState") == "loaded", num("LimitNOFILE"),
                     num("LimitNOFILESoft"), tuple(limits))


# --------------------------------------------------------------------------- start/stop plans


def start_commands(u: UnitState, jvm_running: bool) -> list[str]:
    """Pure: how a (re)start goes on a systemd host, as named steps for the script.

    * a JVM outside the unit (the node was started the old way): `ei_stop` it first (SIGTERM,
      SIGKILL after cluster.stop_timeout), only then `systemctl start`: two JVMs of one
      profile never run at once (they would share its files and ports);
    * the unit running: `systemctl stop` then `systemctl start` (a restart in two steps, so
      systemd's word on how the stop went, Result=timeout when it had to SIGKILL, is read
      before the start resets it);
    * else: `systemctl start`.
    """
    steps = []
    if u.outside:
        steps.append("stop-outside")
    if u.running or (jvm_running and not u.outside):
        steps.append("systemctl-stop")
    steps.append("systemctl-start")
    return steps


def stop_commands(u: UnitState) -> list[str]:
    """Pure: a stop on a systemd host: through systemctl (a JVM killed behind systemd's back
    would be restarted: Restart=always), then any JVM still running outside the unit."""
    steps = []
    if u.running or u.inside:
        steps.append("systemctl-stop")
    if u.outside:
        steps.append("stop-outside")
    return steps


# start_commands/stop_commands steps -> the ei_process.sh functions that do them
UNIT_STEPS = {"stop-outside": "stop_outside", "systemctl-stop": "unit_stop",
              "systemctl-start": "unit_start"}


def unit_script(steps: list[str]) -> str:
    """Shell for start_commands/stop_commands, after services.process_lib (ei_process.sh's
    stop_outside, unit_stop, unit_start print `stopped`/`killed ...` lines as ei_stop does, so
    services' stop outcome reads both)."""
    return "".join(UNIT_STEPS[st] + "\n" for st in steps)


def limits_problem(u: UnitState) -> str | None:
    """Pure: None when every JVM's open-files limits (soft and hard, from /proc/<pid>/limits)
    are the unit's LimitNOFILE as systemd has it loaded; else what differs."""
    if u.limit_nofile is None:
        return None
    if not u.jvm_limits:
        return "could not read the JVM's open-files limit (/proc/<pid>/limits)"
    soft_want = u.limit_soft if u.limit_soft is not None else u.limit_nofile
    for pid, soft, hard in u.jvm_limits:
        if (soft, hard) != (str(soft_want), str(u.limit_nofile)):
            return (f"the JVM (pid {pid}) may open {soft} files (soft) / {hard} (hard), not the "
                    f"unit's LimitNOFILE={u.limit_nofile}: is it running outside {UNIT_NAME}, "
                    f"or did a drop-in (/etc/systemd/system/{UNIT_NAME}.d/) change it?")
    return None

