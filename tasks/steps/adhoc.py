"""Ad hoc work on any host or group: `fab ping`, `fab run --on nodes "uptime"`.

Neither is a step of the plan contract (engine/plan.py): `ping` only reads facts, and `run`
runs the operator's own command, which the tool cannot plan or check."""
from __future__ import annotations

from invoke import task

from ..engine import remote
from . import certs, services
from ..engine.cli import COMMON_HELP, session, targets
from ..engine.inventory import Inventory
from ..engine.remote import HostSession, q
from ..engine.report import StepResult


def ping_probes(inv: Inventory, role: str) -> dict[str, str]:
    probes = {
        "os": ". /etc/os-release 2>/dev/null && echo \"$PRETTY_NAME\" || uname -sr",
        "root": "id -u",
    }
    if role == "lb":
        probes["nginx"] = "nginx -v 2>&1 | sed 's/^nginx version: //'"
        probes["openssl"] = "openssl version"
    elif role == "node":
        ei = inv.cluster.ei_home
        probes["ei_home"] = f"test -d {q(ei + '/wso2/business-process')} && echo present"
        jh = inv.cluster.java_home
        probes["java"] = services.java_probe(inv.cluster.service_user, jh)
        probes["keytool"] = certs.keytool_probe(inv)  # the one certs' import would use
    elif role == "db":
        probes["db"] = ("(mariadbd --version || mysqld --version || mariadb --version || "
                        "mysql --version) 2>/dev/null | head -1")
    return probes


def ping_host(inv: Inventory, s: HostSession) -> StepResult:
    facts = remote.read_facts(s, ping_probes(inv, s.host.role))
    problems = []
    if facts["root"].out.strip() != "0":
        problems.append("sudo does not give root")
    parts = [facts["os"].out.strip()]
    for key, label in (("nginx", "nginx"), ("openssl", "openssl"), ("java", "java"),
                       ("keytool", "keytool"), ("db", "db")):
        if key in facts:
            if facts[key].rc != 0 or not facts[key].out.strip():
                problems.append(f"{label} not found")
            else:
                parts.append(f"{label}: {facts[key].out.strip().splitlines()[0]}")
    if "ei_home" in facts:
        if facts["ei_home"].out.strip() == "present":
            parts.append(f"EI_HOME {inv.cluster.ei_home} present")
        elif inv.cluster.ei_zip:
            parts.append(f"EI_HOME missing (will install from {inv.cluster.ei_zip.name})")
        else:
            problems.append(f"EI_HOME {inv.cluster.ei_home} missing (set cluster.ei_zip to "
                            "install it, or fix cluster.ei_home)")
    sudo = {"root": "root login", "nopasswd": "sudo ok", "password": "sudo ok (password)"}
    parts.insert(1, sudo.get("root" if s.user == "root" else s._sudo_mode or "", "sudo ok"))
    if problems:
        return StepResult(s.name, "ping", "failed", "; ".join(problems + parts))
    return StepResult(s.name, "ping", "ok", "; ".join(parts))


@task(help={"on": COMMON_HELP["on"], "parallel": COMMON_HELP["parallel"]})
def ping(c, on=None, parallel=16):
    """Check each host: reachable, host key known, sudo works, OS and the tools its role needs."""
    with session(c, parallel=parallel, title="PING") as run:
        run.each(targets(c, run.inv, on), "ping", lambda s: ping_host(run.inv, s))


@task(name="run", help={"command": "shell command to run", "on": COMMON_HELP["on"],
                        "sudo": "run it as root", "parallel": COMMON_HELP["parallel"]})
def run_(c, command, on=None, sudo=False, parallel=16):
    """Run a shell command on hosts by inventory name or role, in parallel, host-prefixed."""
    with session(c, parallel=parallel, title="RUN") as run:
        def one(s: HostSession) -> StepResult:
            res = remote.run_script(s, command + "\n", root=sudo)
            for line in (res.stdout + res.stderr).rstrip("\n").splitlines():
                run.rep.line(s.name, line)
            status = "ok" if res.ok else "failed"
            return StepResult(s.name, "run", status, f"exit {res.exit}")
        run.each(targets(c, run.inv, on), "run", one)
