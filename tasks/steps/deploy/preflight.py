"""Preflight: every host checked at once before anything changes (tools, JDK, identity, routes)."""
from __future__ import annotations

from dataclasses import dataclass

from ...engine import remote
from ...engine.cli import Abort
from ...engine.inventory import Host, Inventory
from ...engine.remote import HostSession
from ...engine.report import Status, StepResult
from ...engine.runner import Run
from .. import services
from ..adhoc import ping_probes
from ..membership import lifecycle


@dataclass(frozen=True)
class Preflight:
    """What the preflight learnt on a host for the steps after it (its StepResult's value)."""
    needs_install: bool = False  # a node without EI_HOME, which cluster.ei_zip will fill
    facts: dict | None = None  # the DB host's: the identity record and accounts (membership)


def paths_probe(targets: list[tuple[str, str, int]]) -> str:
    """Probe: TCP to every (name, address, port) at once, 3 s at most (paths_probe.sh).

    Prints 'name:port open|refused|unreachable ...' per target."""
    return remote.script("paths_probe.sh", TARGETS=" ".join(f"{n}:{a}:{p}" for n, a, p in targets))


def parse_paths(out: str) -> dict[str, str]:
    res = {}
    for line in out.splitlines():
        key, _, state = line.strip().partition(" ")
        if key and state:
            res[key] = state
    return res


def path_targets(inv: Inventory, h: Host) -> list[tuple[str, str, int]]:
    if h.role == "node":
        return [(inv.db.name, inv.db.address, inv.database.port)] + [
            (o.name, o.address, inv.cluster.hazelcast_port) for o in inv.nodes if o.name != h.name]
    if h.role == "lb":
        return [(n.name, n.address, port) for n in inv.nodes
                for port in (inv.cluster.http_port, inv.cluster.https_port)]
    return []


def preflight_probes(inv: Inventory, h: Host) -> dict[str, str]:
    probes = ping_probes(inv, h.role)
    targets = path_targets(inv, h)
    if targets:
        probes["paths"] = paths_probe(targets)
    if h.role == "node":
        probes["curl"] = "command -v curl"
    if h.role == "db":  # the recorded node identities and the app accounts (steps/membership)
        probes.update(lifecycle.db_probes(inv))
    # the host's own IPv4 addresses: proves the machine reached is the one named (its host key
    # is already checked against known_hosts for its ssh_address)
    probes["addrs"] = ("ip -o -4 addr show 2>/dev/null | awk '{print $4}' | cut -d/ -f1 "
                       "| grep . || hostname -I 2>/dev/null | tr ' ' '\\n'")
    return probes


def identity_problem(h: Host, addrs_out: str) -> str | None:
    """Pure: None when the host reached owns its cluster address (or is declared NATed)."""
    addrs = sorted({a.strip() for a in addrs_out.split() if a.strip()})
    if h.nat or h.address in addrs:
        return None
    return (f"its cluster address {h.address} is not on any interface of the machine reached "
            f"at {h.ssh_address} (it has {', '.join(addrs) or 'none'}): is ssh_address pointing "
            "at another host? If this host sits behind NAT, set nat = true for it in hosts.toml")


def preflight_host(inv: Inventory, s: HostSession) -> StepResult:
    facts = remote.read_facts(s, preflight_probes(inv, s.host))
    problems = []
    if facts["root"].out.strip() != "0":
        problems.append("sudo does not give root")
    need = {"lb": ("nginx", "openssl"), "node": ("keytool", "curl"), "db": ("db",)}
    for tool in need[s.host.role]:
        if facts[tool].rc != 0 or not facts[tool].out.strip():
            problems.append(f"{'database server' if tool == 'db' else tool} not found: install it")
    if s.host.role == "node" and facts["ei_home"].out.strip() != "present" \
            and inv.cluster.ei_zip is None:
        problems.append(f"EI_HOME {inv.cluster.ei_home} missing (set cluster.ei_zip to install)")
    if s.host.role == "node":  # the JDK that will run EI: 8 or 11, read from its release file
        jdk = services.jdk_problem(facts["java"].out, inv.cluster.java_home)
        if jdk:
            problems.append(jdk)
    wrong_host = identity_problem(s.host, facts["addrs"].out)
    if wrong_host:
        problems.append(wrong_host)
    paths = parse_paths(facts["paths"].out) if "paths" in facts else {}
    for key, state in paths.items():
        if state.startswith("unreachable"):
            target, _, port = key.partition(":")
            problems.append(f"cannot reach {target} on port {port} "
                            f"({state.removeprefix('unreachable').strip()}): check routes and "
                            "firewalls between the hosts")
    if problems:
        return StepResult(s.name, "preflight", Status.FAILED, "; ".join(problems))
    missing = s.host.role == "node" and facts["ei_home"].out.strip() != "present"
    return StepResult(s.name, "preflight", Status.OK,
                      facts["os"].out.strip() + ("; EI_HOME missing: will install from "
                                                 "cluster.ei_zip" if missing else ""),
                      value=Preflight(needs_install=missing,
                                      facts=facts if s.host.role == "db" else None))


def preflight(run: Run) -> list[Host]:
    """Check every host; return the nodes that need EI installed from the zip."""
    results = run.each(run.inv.hosts, "preflight", lambda s: preflight_host(run.inv, s))
    bad = [f"{h}: {r.msg}" for h, r in results.items() if r.status != Status.OK]
    if bad:
        raise Abort("preflight found problems; nothing was changed:\n  " + "\n  ".join(bad))
    lifecycle.preflight(run, results[run.inv.db.name].value.facts)  # an orphan stops here
    return [n for n in run.inv.nodes
            if isinstance(results[n.name].value, Preflight) and results[n.name].value.needs_install]
