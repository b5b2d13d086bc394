"""`fab deploy`, `fab restart`, `fab stop`, `fab status`, `fab logs`, `fab unlock`.

deploy = preflight (all hosts, parallel; any problem stops the run before anything changes)
       -> lock -> db-init -> certs -> configure (nodes in parallel)
       -> start/restart only the nodes that need it, in inventory order, each healthy first
       -> lb (validated, reloaded only on change) -> unlock.
"""
from __future__ import annotations

import getpass
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from invoke import task

from . import admin, artifacts, certs, db, db_tls, node_config, lb, services, systemd
from ..engine import remote
from ..engine.cli import COMMON_HELP, Abort, session, targets
from ..engine.inventory import Host, Inventory
from ..engine.remote import HostSession, q
from ..engine.report import StepResult
from ..engine.runner import Run

LOCK_DIR = f"{remote.STATE_DIR}/deploy.lock"
MISSING_EI = "; EI_HOME missing: will install from cluster.ei_zip"


# --------------------------------------------------------------------------- preflight


def paths_probe(targets: list[tuple[str, str, int]]) -> str:
    """Probe: TCP to every (name, address, port) at once, in one bash, 3 s at most.

    Prints 'name:port open|refused|unreachable ...' per target. "refused" proves the route (the
    host answered), which is all we ask before the service is up.
    """
    checks = " ".join(q(f"{n}:{a}:{p}") for n, a, p in targets)
    inner = ("for t in " + checks + "; do ( IFS=:; set -- $t; "
             "if out=$( { exec 3<>\"/dev/tcp/$2/$3\"; } 2>&1 ); then echo \"$1:$3 open\"; "
             "elif echo \"$out\" | grep -qi refused; then echo \"$1:$3 refused\"; "
             "else echo \"$1:$3 unreachable ${out##*: }\"; fi ) & done; wait")
    names = " ".join(q(f"{n}:{p}") for n, _, p in targets)
    # whatever has not answered when the 3 s are up is unreachable (timed out)
    return (f"res=$(timeout 3 bash -c {q(inner)} 2>/dev/null); echo \"$res\"; "
            f"for t in {names}; do echo \"$res\" | grep -q \"^$t \" || "
            "echo \"$t unreachable (timed out)\"; done")


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
    from .adhoc import ping_probes
    probes = ping_probes(inv, h.role)
    targets = path_targets(inv, h)
    if targets:
        probes["paths"] = paths_probe(targets)
    if h.role == "node":
        probes["curl"] = "command -v curl"
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
        return StepResult(s.name, "preflight", "failed", "; ".join(problems))
    msg = facts["os"].out.strip()
    if s.host.role == "node" and facts["ei_home"].out.strip() != "present":
        msg += MISSING_EI
    return StepResult(s.name, "preflight", "ok", msg)


def preflight(run: Run) -> list[Host]:
    """Check every host; return the nodes that need EI installed from the zip."""
    missing: list[Host] = []

    def one(s: HostSession) -> StepResult:
        r = preflight_host(run.inv, s)
        if r.status == "ok" and s.host.role == "node" and r.msg.endswith(MISSING_EI):
            missing.append(s.host)
        return r

    results = run.each(run.inv.hosts, "preflight", one)
    bad = [f"{h}: {r.msg}" for h, r in results.items() if r.status != "ok"]
    if bad:
        raise Abort("preflight found problems; nothing was changed:\n  " + "\n  ".join(bad))
    return [n for n in run.inv.nodes if n in missing]


# --------------------------------------------------------------------------- lock


BOOT_ID = "/proc/sys/kernel/random/boot_id"


@dataclass(frozen=True)
class LockOwner:
    """Who holds (or would hold) the deploy lock: `user@machine pid=N boot=ID since=TIME`."""
    user: str
    machine: str
    pid: int
    boot: str  # this machine's boot id, "?" where there is none: a pid means nothing across boots
    since: str = ""

    def __str__(self) -> str:
        return f"{self.user}@{self.machine} pid={self.pid} boot={self.boot} since={self.since}"

    @classmethod
    def parse(cls, text: str) -> "LockOwner | None":
        fields = dict(f.split("=", 1) for f in text.split()[1:] if "=" in f)
        who = text.split()[0] if text.split() else ""
        user, at, machine = who.partition("@")
        try:
            return cls(user, machine, int(fields["pid"]), fields.get("boot", "?"),
                       fields.get("since", "")) if at and user and machine else None
        except (KeyError, ValueError):
            return None


def _boot_id() -> str:
    try:
        return Path(BOOT_ID).read_text().strip() or "?"
    except OSError:
        return "?"


def _lock_owner() -> LockOwner:
    return LockOwner(getpass.getuser(), socket.gethostname(), os.getpid(), _boot_id(),
                     time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime()))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def stale_lock(holder: str, me: LockOwner, pid_alive=_pid_alive) -> tuple[bool, str]:
    """Pure (pid_alive aside): may this lock be broken without asking, and why (not).

    Only a lock of this user on this machine since its last boot, whose process is gone: any
    other (another user, another machine, a reboot since, a live or unknown pid) may be a run
    we cannot see, and is broken only by `fab unlock` / `--break-lock`.
    """
    owner = LockOwner.parse(holder)
    if owner is None:
        return False, "the lock's owner cannot be read"
    if owner.machine != me.machine:
        return False, f"taken on another machine ({owner.machine})"
    if owner.user != me.user:
        return False, f"taken by another user ({owner.user}, you are {me.user})"
    if owner.boot == "?" or me.boot == "?":
        return False, "no boot id to prove its pid belongs to this boot"
    if owner.boot != me.boot:
        return False, "taken before this machine's last reboot (boot id differs)"
    if pid_alive(owner.pid):
        return False, f"its process {owner.pid} is still running"
    return True, f"its process {owner.pid} is gone (same user, machine and boot)"


def acquire_lock(run: Run, break_lock: bool = False) -> None:
    """One deploy at a time: an atomic mkdir on the LB host, with who/when/pid inside."""
    s = run.session(run.inv.lb)
    me = _lock_owner()
    script = (f"mkdir -p {remote.STATE_DIR}\n"
              + (f"rm -rf {LOCK_DIR}\n" if break_lock else "")
              + f"if mkdir {LOCK_DIR} 2>/dev/null; then echo {q(str(me))} > {LOCK_DIR}/owner; "
                f"echo ACQUIRED; else echo HELD; cat {LOCK_DIR}/owner 2>/dev/null; fi\n")
    res = remote.run_script(s, script, check=True, what="lock")
    if res.stdout.startswith("ACQUIRED"):
        return
    holder = res.stdout.split("\n", 1)[1].strip() if "\n" in res.stdout else "?"
    stale, why = stale_lock(holder, me)
    if stale and not break_lock:
        run.rep.warn(f"breaking the stale deploy lock of a dead run ({holder}): {why}")
        return acquire_lock(run, break_lock=True)
    raise Abort(f"another deploy holds the lock on {run.inv.lb.name} ({holder}). Wait for it; "
                f"it was not broken automatically: {why}. If that run is dead, break the lock "
                "with `fab unlock` or `--break-lock`")


def release_lock(run: Run) -> None:
    try:
        remote.run_script(run.session(run.inv.lb), f"rm -rf {LOCK_DIR}\n")
    except remote.RemoteError:
        run.rep.warn(f"could not release the deploy lock on {run.inv.lb.name}")


# --------------------------------------------------------------------------- restart


def _lb_configured(run: Run) -> bool:
    facts = remote.read_facts(run.session(run.inv.lb),
                              {"vhost": "test -f /etc/nginx/conf.d/ei.http.conf && echo yes"})
    return facts["vhost"].out.strip() == "yes"


def restart_nodes(run: Run, nodes: list[Host], *, rolling: bool, full: bool = False,
                  step: str = "restart") -> bool:
    """Restart `nodes` in order, each healthy before the next; False on the first failure.

    full: stop every node (last first), then start in order (membership/domain changed).
    rolling: drain each node from NGINX while it restarts, then put it back.
    """
    if run.check:
        run.each(nodes, step, lambda s: services.start_and_wait(run, s, step))
        return True
    if full:
        for n in reversed(nodes):
            run.each([n], "stop", lambda s: services.stop_node(run, s))
    drain = rolling and not full and _lb_configured(run)
    done: list[str] = []
    for i, n in enumerate(nodes):
        if n.name in run.dead:
            return False
        if drain:
            r = lb.lb_host_step(run, drain=frozenset({n.name}))
            if r.status not in ("ok", "changed"):
                _drain_failed(run, nodes[i:], step, done, r,
                              f"could not drain {n.name} from the load balancer "
                              f"{run.inv.lb.name}", f"{n.name} stays in rotation")
        r = run.each([n], step, lambda s: services.start_and_wait(run, s, step))[n.name]
        if r.status == "failed":
            run.rep.line(n.name, "stopping here: later nodes are not restarted", "failed")
            return False
        done.append(n.name)
        if drain:
            r = lb.lb_host_step(run, undraining=frozenset({n.name}))
            if r.status not in ("ok", "changed"):
                _drain_failed(run, nodes[i + 1:], step, done, r,
                              f"could not put {n.name} back into rotation on the load balancer "
                              f"{run.inv.lb.name}", f"{n.name} is still drained: `fab lb` or "
                              "the next `fab deploy` puts it back")
    return True


def _drain_failed(run: Run, left: list[Host], step: str, done: list[str], lb_result: StepResult,
                  what: str, state: str) -> None:
    """A failed drain/undrain stops a rolling restart before the next node restarts: raise."""
    for n in left:
        run.rep.record(StepResult(n.name, step, "skipped",
                                  f"not restarted: {what} (rolling restart stopped)"))
    restarted = ", ".join(done) if done else "none"
    raise Abort(f"{what}: {lb_result.status}: {lb_result.msg.strip()}\n"
                f"the rolling restart stopped there: {state}; restarted before: {restarted}; "
                f"not restarted: {', '.join(n.name for n in left) or 'none'}")


def rollback_hint(run: Run, cfg: node_config.ConfigureOutcome) -> str:
    """How to go back when this run's changes left a node unhealthy (fab rollback)."""
    return (f"\nthis run (run id {run.stamp}) changed the configuration of "
            f"{', '.join(sorted(cfg.changed))}; to put back the files it replaced on every host "
            "and restart the nodes in order: `fab rollback` (then fix hosts.toml, or the next "
            "deploy makes the same change again)") if cfg.changed else ""


def nodes_needing_restart(run: Run, cfg: node_config.ConfigureOutcome) -> list[Host]:
    """Nodes whose config changed, that carry a pending mark, or that are not running."""
    todo = []
    for n in run.alive(run.inv.nodes):
        st = cfg.states.get(n.name)
        if st is None:
            continue
        why = [w for w, yes in (("configuration changed", n.name in cfg.restart),
                                ("restart pending", bool(st.pending)),
                                ("not running", not st.running),
                                (f"running outside {systemd.UNIT_NAME} (started the old way): "
                                 "moved under systemd", st.unit.managed and bool(st.unit.outside)))
               if yes]
        if why:
            todo.append(n)
            run.rep.line(n.name, "needs (re)start: " + ", ".join(why))
    return todo


# --------------------------------------------------------------------------- tasks


@task(help={"check": COMMON_HELP["check"], "diff": COMMON_HELP["diff"],
            "parallel": COMMON_HELP["parallel"],
            "break_lock": "break a stale deploy lock left by a dead run",
            "renew": "force a new LB certificate"})
def deploy(c, check=False, diff=False, parallel=16, break_lock=False, renew=False):
    """Deploy the whole cluster: db-init, certs, configure, ordered restarts, LB."""
    with session(c, check=check, diff=diff, parallel=parallel, title="DEPLOY") as run:
        # [artifacts]: checked here, before any host is touched (a bad archive: exit 2)
        arts = artifacts.local_or_exit(run.inv) if run.inv.artifacts else None
        to_install = preflight(run)
        if not run.check:
            acquire_lock(run, break_lock)
        try:
            if to_install:
                results = run.each(to_install, "install", lambda s: StepResult(
                    s.name, "install", "changed", node_config.install_from_zip(run, s)))
                if any(r.status != "changed" for r in results.values()):
                    raise Abort("installing EI from the zip failed")
            if not db.db_step(run):
                raise Abort("db-init failed: nodes were not touched")
            if not certs.certs_step(run, renew=renew) and run.inv.lb.name in run.dead:
                raise Abort("certificates failed on the LB")
            cfg = node_config.configure_step(run)
            todo = nodes_needing_restart(run, cfg)
            if todo:
                full = cfg.membership_changed and len(todo) > 0
                if not restart_nodes(run, todo if not full else list(run.inv.nodes),
                                     rolling=True, full=full):
                    raise Abort("a node failed its health check; the LB was left as it was"
                                + rollback_hint(run, cfg))
            lb.lb_step(run, certs_planned=True)
            # the nodes now connect over TLS: their DB accounts may REQUIRE it
            if not db_tls.require_step(run, run.shared.get("db_tls"), db.client_prelude(run.inv)):
                raise Abort("REQUIRE SSL on the node accounts failed (see the db-tls line)")
            # last, on healthy nodes: the admin password where it lives (the user store)
            if not admin.admin_step(run, cfg.admin_states):
                raise Abort("the admin password was not applied (see the admin lines above)")
            # on healthy nodes, with the facts of the configure read (a no-op costs nothing)
            if arts is not None and not artifacts.artifacts_step(run, arts, cfg.raw):
                raise Abort("artifacts were not deployed on every node (see above)")
        finally:
            if not run.check:
                release_lock(run)


@task(help={"rolling": "drain each node from NGINX while it restarts (zero downtime)",
            "only": "restart only these nodes (comma-separated names)",
            "check": COMMON_HELP["check"]})
def restart(c, rolling=False, only=None, check=False):
    """Restart the EI nodes in order, each healthy before the next."""
    with session(c, check=check, title="RESTART") as run:
        nodes = [n for n in run.inv.select(only) if n.role == "node"] if only \
            else list(run.inv.nodes)
        if not run.check:
            acquire_lock(run)
        try:
            restart_nodes(run, nodes, rolling=rolling)
        finally:
            if not run.check:
                release_lock(run)


@task(help={"on": "nodes to stop (default: all)", "check": COMMON_HELP["check"]})
def stop(c, on=None, check=False):
    """Stop the EI nodes, last first."""
    with session(c, check=check, title="STOP") as run:
        nodes = [n for n in targets(c, run.inv, on, "nodes") if n.role == "node"]
        for n in reversed(nodes):
            run.each([n], "stop", lambda s: services.stop_node(run, s))


@task(help={"on": "nodes (default: all)", "n": "number of lines (default 50)"})
def logs(c, on=None, n=50):
    """Show the tail of each node's EI log, host-prefixed."""
    with session(c, title="LOGS") as run:
        def one(s: HostSession) -> StepResult:
            for line in services.log_tail(run, s, int(n)).rstrip("\n").splitlines():
                run.rep.line(s.name, line)
            return StepResult(s.name, "logs", "ok", services.paths(run.inv)["log"])
        run.each([h for h in targets(c, run.inv, on, "nodes") if h.role == "node"], "logs", one)


@task
def unlock(c):
    """Break the deploy lock (only when the run that holds it is dead)."""
    with session(c, title="UNLOCK") as run:
        def one(s: HostSession) -> StepResult:
            res = remote.run_script(s, f"cat {LOCK_DIR}/owner 2>/dev/null; rm -rf {LOCK_DIR}\n")
            held = res.stdout.strip()
            return StepResult(s.name, "unlock", "changed" if held else "ok",
                              f"removed lock of {held}" if held else "no lock held")
        run.each([run.inv.lb], "unlock", one)
