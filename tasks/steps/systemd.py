"""EI as a systemd service, boot survival, limits and kernel settings (pure parts and probes).

* Where systemd runs (/run/systemd/system exists and PID 1 is systemd) each node gets
  /etc/systemd/system/wso2ei-bps.service (templates/wso2ei-bps.service.j2, root's file),
  enabled at boot; start/stop/restart go through systemctl. Elsewhere EI is started as before
  (the product's `wso2server.sh start` as the service user, tasks/services.py).
* LimitNOFILE: cluster.nofile, capped at what the host can grant: systemd cannot raise a limit
  above its own hard limit without CAP_SYS_RESOURCE (a container's PID 1 lacks it, and a unit
  asking for more fails to start), nor above fs.nr_open.
* Kernel settings from WSO2's production guidelines: /etc/sysctl.d/60-wso2ei.conf, always
  written; applied only where the host has a kernel of its own (see sysctl_decision).

Facts are read inside the existing fact reads (node_config.node_probes, services.state_probes):
a no-op deploy spends no command on them.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from . import lb, vault
from ..engine.inventory import Host, Inventory
from ..engine.remote import FileChange, FileSpec, FileState, plan_files, q, write_files_script

UNIT_NAME = "wso2ei-bps.service"
UNIT_PATH = f"/etc/systemd/system/{UNIT_NAME}"
SYSCTL_PATH = "/etc/sysctl.d/60-wso2ei.conf"
RESTART_SEC = 10  # between tries while the database (or anything else) is not up yet
EI_LOCALE = "C.UTF-8"  # as services.EI_LOCALE (not imported: services imports us)


# --------------------------------------------------------------------------- host facts


INIT_PROBE = (
    # systemd runs the host: its runtime dir AND PID 1 is systemd (a chroot or a namespace may
    # have the dir from the machine, or no init at all)
    "c1=$(cat /proc/1/comm 2>/dev/null || echo '?'); "
    "if [ -d /run/systemd/system ] && [ \"$c1\" = systemd ]; then echo systemd; "
    "else echo none; fi; echo \"pid1 $c1\"; "
    # a container shares the machine's kernel: systemd-detect-virt -c, else systemd's marker
    "v=$(systemd-detect-virt -c 2>/dev/null); "
    "[ -n \"$v\" ] || v=$(cat /run/systemd/container 2>/dev/null); "
    "echo \"container ${v:-none}\"; "
    # what a unit can be granted: PID 1's hard open-files limit, and the kernel's fs.nr_open
    "echo \"nofile $(awk '/^Max open files/ {print $5}' /proc/1/limits 2>/dev/null) "
    "$(cat /proc/sys/fs/nr_open 2>/dev/null)\"")


@dataclass(frozen=True)
class HostInit:
    systemd: bool
    pid1: str = "?"
    container: str = "none"  # systemd-detect-virt -c: none, systemd-nspawn, docker, lxc, ...
    nofile_hard: int | None = None  # PID 1's hard RLIMIT_NOFILE (None: unknown/unlimited)
    nr_open: int | None = None


def parse_init(out: str) -> HostInit:
    lines = [ln.strip() for ln in out.splitlines() if ln.strip()]
    fields = {}
    for ln in lines[1:]:
        k, _, v = ln.partition(" ")
        fields[k] = v.strip()
    nums = [int(x) if x.isdigit() else None for x in fields.get("nofile", "").split()]
    nums += [None, None]
    return HostInit(systemd=bool(lines) and lines[0] == "systemd", pid1=fields.get("pid1", "?"),
                    container=fields.get("container", "none") or "none",
                    nofile_hard=nums[0], nr_open=nums[1])


def cap_nofile(wanted: int, host: HostInit) -> tuple[int, str | None]:
    """Pure: the LimitNOFILE a unit on this host can get, and a warning when it is capped.

    systemd sets a unit's limits itself; above its own hard limit that needs
    CAP_SYS_RESOURCE, which a container's PID 1 lacks (the unit then fails to start), and no
    process may exceed fs.nr_open."""
    caps = [(n, what) for n, what in ((host.nofile_hard, "the hard open-files limit of the "
                                       f"host's PID 1 ({host.pid1})"),
                                      (host.nr_open, "the kernel's fs.nr_open")) if n]
    if not caps:
        return wanted, None
    n, what = min(caps)
    if wanted <= n:
        return wanted, None
    return n, (f"cluster.nofile = {wanted} is more than this host can grant ({what}: {n}); "
               f"the unit asks for {n}: raise that limit on the host (or lower cluster.nofile) "
               "to silence this")


def java_home_of(java_probe_out: str, configured: str | None) -> str | None:
    """The JAVA_HOME for the unit: cluster.java_home, else the JDK the java probe found on
    PATH ("java 11.0.13 (/usr/lib/jvm/x)" or "(/usr/lib/jvm/x -> /real)")."""
    if configured:
        return configured
    m = re.search(r"\(([^()]*)\)\s*$", java_probe_out.strip())
    if not m:
        return None
    home = m.group(1).split(" -> ")[0].strip()
    return home if home.startswith("/") and " " not in home else None


# --------------------------------------------------------------------------- the unit


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


def unit_script(steps: list[str]) -> str:
    """Shell for start_commands/stop_commands (after process_lib: ei_stop). Prints
    `stopped`/`killed ...` lines as ei_stop does, so services._stop_outcome reads both."""
    unit = q(UNIT_NAME)
    out = []
    for st in steps:
        if st == "stop-outside":
            out.append("echo 'moving under systemd: stopping the JVM started outside "
                       f"{UNIT_NAME}'; ei_stop")
        elif st == "systemctl-stop":
            out.append(f"systemctl stop {unit}; r=$(systemctl show -p Result --value {unit}); "
                       "if [ \"$r\" = timeout ]; then echo \"killed: still running after "
                       "TimeoutStopSec (systemd sent SIGKILL)\"; else echo stopped; fi")
        elif st == "systemctl-start":
            # Type=simple: returns once the script runs; the health gate does the waiting
            out.append(f"systemctl reset-failed {unit} 2>/dev/null; systemctl start {unit}")
        else:
            raise ValueError(st)
    return "\n".join(out) + "\n"


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


# --------------------------------------------------------------------------- kernel settings


@dataclass(frozen=True)
class Sysctl:
    key: str
    value: str
    source: str
    at_least: bool = False  # never lower the kernel's value (each field of a triple)


WSO2_TUNING = ("WSO2 EI 6.x 'Network and OS Level Performance Tuning' (docs.wso2.com)")
SYSCTLS = (
    Sysctl("net.ipv4.tcp_fin_timeout", "30", WSO2_TUNING),
    Sysctl("net.ipv4.tcp_tw_reuse", "1", WSO2_TUNING + "; outgoing connections only"),
    Sysctl("fs.file-max", "2097152", WSO2_TUNING, at_least=True),
    Sysctl("net.core.rmem_default", "524288", WSO2_TUNING, at_least=True),
    Sysctl("net.core.wmem_default", "524288", WSO2_TUNING, at_least=True),
    Sysctl("net.core.rmem_max", "67108864", WSO2_TUNING, at_least=True),
    Sysctl("net.core.wmem_max", "67108864", WSO2_TUNING, at_least=True),
    Sysctl("net.ipv4.tcp_rmem", "4096 87380 16777216", WSO2_TUNING, at_least=True),
    Sysctl("net.ipv4.tcp_wmem", "4096 65536 16777216", WSO2_TUNING, at_least=True),
    Sysctl("net.ipv4.tcp_keepalive_time", "600", "not in WSO2's table; bps-deploy: a dead peer "
           "(DB, a member) is noticed after 10 min + 5 x 60 s, not Linux's 2 h 11 min"),
    Sysctl("net.ipv4.tcp_keepalive_intvl", "60", "see tcp_keepalive_time"),
    Sysctl("net.ipv4.tcp_keepalive_probes", "5", "see tcp_keepalive_time"),
)
LEFT_OUT = (
    "net.ipv4.tcp_tw_recycle (WSO2: 1): removed from Linux in 4.12, and unsafe behind NAT",
    "net.ipv4.ip_local_port_range (WSO2: 1024 65535): WSO2 itself warns that outgoing "
    "connections could then take the server's own ports (9443+offset, 9763+offset, 4000); "
    "the kernel's default range is kept",
)


def sysctl_probe() -> str:
    """Each setting's running value, read from /proc/sys (no procps needed), MISSING when this
    kernel has no such setting."""
    keys = " ".join(s.key for s in SYSCTLS)
    return (f"for k in {keys}; do f=/proc/sys/$(echo \"$k\" | tr . /); "
            "if [ -r \"$f\" ]; then echo \"$k=$(tr -s '\\t ' '  ' < \"$f\")\"; "
            "else echo \"$k=MISSING\"; fi; done")


def parse_sysctl(out: str) -> dict[str, str | None]:
    got: dict[str, str | None] = {}
    for ln in out.splitlines():
        k, sep, v = ln.strip().partition("=")
        if sep:
            got[k] = None if v.strip() == "MISSING" else " ".join(v.split())
    return got


def _at_least(want: str, now: str | None) -> str:
    w, n = want.split(), (now or "").split()
    if len(w) != len(n) or not all(x.isdigit() for x in w + n):
        return want
    return " ".join(str(max(int(a), int(b))) for a, b in zip(w, n))


def wanted_sysctls(running: dict[str, str | None]) -> list[tuple[Sysctl, str | None]]:
    """Pure: each setting and the value the drop-in sets (None: left out, the kernel has no such
    key). An at-least setting keeps a larger running value (field by field for triples)."""
    out = []
    for s in SYSCTLS:
        if s.key in running and running[s.key] is None:
            out.append((s, None))
        else:
            out.append((s, _at_least(s.value, running.get(s.key)) if s.at_least else s.value))
    return out


def render_sysctl(running: dict[str, str | None]) -> bytes:
    """Pure: /etc/sysctl.d/60-wso2ei.conf, each value with its source."""
    lines = ["# Kernel settings for WSO2 EI (Business Process profile), written by bps-deploy.",
             "# Values from WSO2's production guidelines unless said otherwise; an \"at least\"",
             "# value keeps a larger one the kernel already had. Left out on purpose:"]
    lines += [f"#   {x}" for x in LEFT_OUT]
    for s, v in wanted_sysctls(running):
        lines.append("")
        lines.append(f"# {s.source}" + (f"; at least {s.value}" if s.at_least else ""))
        lines.append(f"{s.key} = {v}" if v is not None else
                     f"# {s.key}: not set, this kernel has no such setting")
    return ("\n".join(lines) + "\n").encode()


def sysctl_differences(running: dict[str, str | None]) -> list[str]:
    """Pure: 'key: running X, drop-in Y' for each setting the kernel does not have yet."""
    out = []
    for s, v in wanted_sysctls(running):
        now = running.get(s.key)
        if v is not None and now is not None and now.split() != v.split():
            out.append(f"{s.key} is {now}, the drop-in sets {v}")
    return out


def sysctl_decision(apply_sysctl: bool, host: HostInit) -> tuple[bool, str]:
    """Pure: may the drop-in be applied now (`sysctl -p`), and why (not).

    Many of these settings (net.core.*, fs.file-max) are not per network namespace: a host that
    shares its kernel with the machine (a container, or a namespace host without an init of
    its own such as the lab's) would change the machine's own settings for everyone on it."""
    if not apply_sysctl:
        return False, "cluster.apply_sysctl is false"
    if host.container not in ("", "none"):
        return False, (f"this host is a container ({host.container}): it shares the machine's "
                       "kernel, whose settings are the machine's to change")
    if host.pid1 not in ("systemd", "init", "openrc-init", "runit", "s6-svscan", "tini"):
        return False, (f"PID 1 here is {host.pid1}, not an init: this host shares a kernel "
                       "(a namespace or chroot), whose settings are the machine's to change")
    return True, "the host has its own kernel"


SYSCTL_AFTER = "@@sysctl-after "


def sysctl_apply_script() -> str:
    """Apply our drop-in only (not `sysctl --system`: the other files are not ours to re-apply
    now; at boot systemd-sysctl reads them all), then print the values the kernel took."""
    f = q(SYSCTL_PATH)
    return (f"if command -v sysctl >/dev/null 2>&1; then sysctl -q -p {f} >/dev/null 2>&1; "
            f"else /lib/systemd/systemd-sysctl {f} >/dev/null 2>&1; fi || "
            f"echo 'applying {SYSCTL_PATH} reported errors' >&2\n"
            f"( {sysctl_probe()} ) | sed 's/^/{SYSCTL_AFTER}/'\n")


def parse_sysctl_after(out: str) -> dict[str, str | None]:
    return parse_sysctl("\n".join(ln[len(SYSCTL_AFTER):] for ln in out.splitlines()
                                  if ln.startswith(SYSCTL_AFTER)))


# --------------------------------------------------------------------------- plan


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
