"""An EI node's process state: its JVM, its systemd unit, its log position, its pending mark."""
from __future__ import annotations

from dataclasses import dataclass

from ...engine import remote
from ...engine.inventory import Inventory
from ...engine.remote import HostSession, q
from .. import systemd

LOGIN_PAGE = "/carbon/admin/login.jsp"  # served by the profile itself (not a 404 page)
# The locale EI runs in (tasks/scripts/ei_start.sh says why); WSO2's wso2server.sh also passes
# -Dfile.encoding=UTF8; this covers what the JVM takes from the locale besides that.
EI_LOCALE = systemd.EI_LOCALE


def process_lib(inv: Inventory) -> str:
    """tasks/scripts/ei_process.sh for this cluster: ei_pids, ei_state, ei_kill, ei_stop
    (SIGKILL only after cluster.stop_timeout seconds)."""
    return remote.script("ei_process.sh", SERVICE_USER=inv.cluster.service_user,
                         PROFILE_HOME=inv.cluster.profile_home,
                         STOP_WAIT=int(inv.cluster.stop_timeout), UNIT=systemd.UNIT_NAME)


# the process fact: ei_state's line first, then the systemd unit's state and the JVMs' limits
PROC_FACT = "ei_state; unit_state; ei_limits"


def paths(inv: Inventory) -> dict[str, str]:
    home = inv.cluster.profile_home
    return {"pid": f"{home}/wso2carbon.pid", "log": f"{home}/repository/logs/wso2carbon.log",
            "ctl": f"{home}/bin/wso2server.sh"}


def state_probes(inv: Inventory, node_address: str, https: bool = True) -> dict[str, str]:
    """Process, pending mark, log size and inode; with https, the login page's HTTP status
    (a TLS handshake in the node's JVM: only where health matters, not to decide restarts)."""
    url = f"https://{node_address}:{inv.cluster.https_port}{LOGIN_PAGE}"
    probes = {
        "proc": process_lib(inv) + PROC_FACT,
        "log_size": process_lib(inv) + "ei_log_pos",
        "pending": remote.probe_pending(),
    }
    if https:
        probes["https"] = process_lib(inv) + f"ei_login_code {q(url)}"
    return probes


@dataclass
class NodeState:
    running: bool
    pid: str
    https: str
    log_size: int
    pending: str
    log_inode: str = ""  # with log_size: where the log stood (a roll changes the inode)
    unit: systemd.UnitState = systemd.UnitState()  # where systemd runs: the unit's state

    @property
    def healthy(self) -> bool:
        """Alive and the profile's login page answers 200 (not any status: a 404 or 500 page
        from a half-started server is not health)."""
        return self.running and self.https == "200"


def parse_state(facts: dict[str, remote.Fact]) -> NodeState:
    first, _, rest = facts["proc"].out.strip().partition("\n")
    proc = first.split()
    size, _, inode = facts["log_size"].out.strip().partition(" ")
    inode = inode.strip()
    https = facts["https"].out.strip()[-3:] if "https" in facts else ""
    return NodeState(bool(proc) and proc[0] == "alive", proc[1] if len(proc) > 1 else "",
                     https, int(size) if size.isdigit() else 0,
                     facts["pending"].out.strip(), inode if inode.isdigit() else "",
                     systemd.parse_unit_state(rest))


def node_state(run, s: HostSession, extra: dict[str, str] | None = None):
    probes = state_probes(run.inv, s.host.address)
    probes.update(extra or {})
    facts = remote.read_facts(s, probes)
    return parse_state(facts), facts
