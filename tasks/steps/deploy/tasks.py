"""The tasks: `fab deploy`, `fab restart`, `fab stop`, `fab logs`, `fab unlock`."""
from __future__ import annotations

from invoke import task

from ...engine.cli import COMMON_HELP, Abort, session, targets
from ...engine.remote import HostSession
from ...engine.report import Status, StepResult
from .. import admin, artifacts, certs, db, db_tls, lb, node_config, services
from ..membership import lifecycle
from .lock import deploy_lock, unlock_host
from .preflight import preflight
from .restarts import nodes_needing_restart, restart_nodes, rollback_hint


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
        with deploy_lock(run, break_lock):
            if to_install:
                results = run.each(to_install, "install",
                                   lambda s: node_config.install_step(run, s))
                if any(r.status != Status.CHANGED for r in results.values()):
                    raise Abort("installing EI from the zip failed")
            # before db-init: a changed DB password, node by node (db-init would ALTER all)
            if not lifecycle.before_db(run, restart_nodes):
                raise Abort("the DB password rotation stopped (see above); every node keeps "
                            "a password its account has: the next `fab deploy` goes on")
            if not db.db_step(run):
                raise Abort("db-init failed: nodes were not touched")
            if not certs.certs_step(run, renew=renew) and run.inv.lb.name in run.dead:
                raise Abort("certificates failed on the LB")
            cfg = node_config.configure_step(run)
            todo = nodes_needing_restart(run, cfg)
            if todo:
                full = cfg.membership_changed  # a running node's cluster domain changed
                # else rolling: the running nodes first, each drained, with the new member
                # list; a new node last (every running member then logs its join), kept out
                # of the LB until it is healthy
                order, held = lifecycle.start_order(todo, cfg.states)
                if not restart_nodes(run, list(run.inv.nodes) if full else order,
                                     rolling=True, full=full, held=held):
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


@task(help={"rolling": "drain each node from NGINX while it restarts (zero downtime)",
            "only": "restart only these nodes (comma-separated names)",
            "check": COMMON_HELP["check"]})
def restart(c, rolling=False, only=None, check=False):
    """Restart the EI nodes in order, each healthy before the next."""
    with session(c, check=check, title="RESTART") as run:
        nodes = [n for n in run.inv.select(only) if n.role == "node"] if only \
            else list(run.inv.nodes)
        with deploy_lock(run):
            restart_nodes(run, nodes, rolling=rolling)


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
            return StepResult(s.name, "logs", Status.OK, services.paths(run.inv)["log"])
        run.each([h for h in targets(c, run.inv, on, "nodes") if h.role == "node"], "logs", one)


@task
def unlock(c):
    """Break the deploy lock (only when the run that holds it is dead)."""
    with session(c, title="UNLOCK") as run:
        run.each([run.inv.lb], "unlock", lambda s: unlock_host(run, s))
