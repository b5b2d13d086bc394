"""Kernel settings from WSO2's production guidelines: /etc/sysctl.d/60-wso2ei.conf."""
from __future__ import annotations

from dataclasses import dataclass

from ...engine import remote
from .host import HostInit

SYSCTL_PATH = "/etc/sysctl.d/60-wso2ei.conf"
SYSCTL_AFTER = "@@sysctl-after "  # the prefix of the values read after applying


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


def _lib() -> str:
    return remote.script("sysctl.sh", KEYS=" ".join(s.key for s in SYSCTLS), DROPIN=SYSCTL_PATH,
                         AFTER=SYSCTL_AFTER)


def sysctl_probe() -> str:
    """Each setting's running value, read from /proc/sys (tasks/scripts/sysctl.sh), MISSING when
    this kernel has no such setting."""
    return _lib() + "sysctl_now"


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
    its own such as the lab's) would alter the machine's own settings for everyone on it."""
    if not apply_sysctl:
        return False, "cluster.apply_sysctl is false"
    if host.container not in ("", "none"):
        return False, (f"this host is a container ({host.container}): it shares the machine's "
                       "kernel, whose settings are the machine's to change")
    if host.pid1 not in ("systemd", "init", "openrc-init", "runit", "s6-svscan", "tini"):
        return False, (f"PID 1 here is {host.pid1}, not an init: this host shares a kernel "
                       "(a namespace or chroot), whose settings are the machine's to change")
    return True, "the host has its own kernel"


def sysctl_apply_script() -> str:
    """Apply our drop-in only, then print the values the kernel took (sysctl.sh)."""
    return _lib() + "sysctl_apply\n"


def parse_sysctl_after(out: str) -> dict[str, str | None]:
    return parse_sysctl("\n".join(ln[len(SYSCTL_AFTER):] for ln in out.splitlines()
                                  if ln.startswith(SYSCTL_AFTER)))

