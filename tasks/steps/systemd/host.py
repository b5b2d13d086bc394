"""The host's init, what it can grant a unit (open files), and the JDK the unit runs."""
from __future__ import annotations

import re
from dataclasses import dataclass

from ...engine import remote

# systemd runs the host (its runtime dir AND PID 1 is systemd), a container, and what a unit
# can be granted: tasks/scripts/host_init.sh
INIT_PROBE = remote.script("host_init.sh")


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

