"""`fab lb` actions: the LB's plan as actions in the order they run, and the nginx scripts
(tasks/scripts/nginx_service.sh, nginx_default_site.sh) they send."""
from __future__ import annotations

import re

from ...engine import remote
from ...engine.plan import ActionFailed, Plan
from ...engine.remote import HostSession
from .facts import DEBIAN_DEFAULT, DEFAULT_SITE, LbFacts
from .hosts import ETC_HOSTS
from .plan import LbPlan, name_conflicts


def nginx_service_script(action: str, if_running: bool = False, validate: bool = False) -> str:
    """start | reload nginx (tasks/scripts/nginx_service.sh): systemctl when systemd runs, else
    the init script, else nginx itself. if_running: only when it runs; validate: nginx -t
    first (exit 3 when it fails)."""
    return remote.script("nginx_service.sh", ACTION=action, IF_RUNNING=int(if_running),
                         VALIDATE=int(validate))


def disable_default_script(stamp: str) -> str:
    """Move Debian's default site link aside; put it back if nginx -t then fails. The link
    goes to its own name in the backups folder, outside the run manifests: `fab rollback`
    rewrites files, and this is a link (see tasks/scripts/nginx_default_site.sh)."""
    return remote.script("nginx_default_site.sh", ACTION="disable", SITE=DEFAULT_SITE,
                         PACKAGE_SITE=DEBIAN_DEFAULT,
                         BACKUP=f"{remote.BACKUP_DIR}/sites-enabled%default.{stamp}~")


_NGINX_MSG = re.compile(r"^nginx: \[(emerg|alert|crit|error)\].*$", re.M)


def nginx_message(text: str) -> str:
    """nginx's own error lines (with file:line) from `nginx -t` output, else the tail."""
    lines = [m.group(0) for m in _NGINX_MSG.finditer(text)]
    return "\n".join(lines) if lines else text.strip()[-1500:]


def live_conflicts_script() -> str:
    return "nginx -T 2>/dev/null\n"


def lb_actions(run, facts: LbFacts, lp: LbPlan) -> Plan:
    """The LB host's plan as actions, in the order they must run (see engine/plan.py)."""
    plan = Plan(noop="vhosts, /etc/hosts and nginx already as wanted; no reload",
                warnings=list(lp.warnings), error=lp.error,
                before={ETC_HOSTS: facts.hosts_content})
    if lp.error:
        return plan
    if lp.undrain:
        plan.add(lp.changes[0], lambda s: None)  # done by the vhosts written below
    if lp.disable_default:
        def disable_default(s: HostSession) -> None:
            # first: Debian's site is a default_server on :80, as is our catch-all
            res = remote.run_script(s, disable_default_script(run.stamp),
                                    what="disable default site")
            if not res.ok:
                raise ActionFailed("failed (the site was restored):\n"
                                   + nginx_message(res.stderr + res.stdout), changes_done=False)
        plan.add(f"disable Debian's default site ({DEFAULT_SITE}, link moved to "
                 f"{remote.BACKUP_DIR})", disable_default)
    for i, change in enumerate(lp.vhosts):
        def write_vhosts(s: HostSession) -> None:
            res = run.apply_files(s, lp.vhosts, validate="nginx -t", what="nginx vhosts",
                                  check=False)
            if res.exit == 3:
                raise ActionFailed("nginx -t rejected the new config; the previous files were "
                                   "put back and nginx still serves the old config:\n"
                                   + nginx_message(res.stderr), changes_done=False)
            if not res.ok:
                raise remote.CommandFailed(s.name, "writing nginx vhosts", res)
        # one write for all vhosts (validated together), one change line each
        plan.add(change.describe(), write_vhosts if i == 0 else (lambda s: None), [change])
    if lp.hosts:
        plan.add("; ".join(c.describe() + " (LB names block)" for c in lp.hosts),
                 lambda s: run.apply_files(s, lp.hosts, what="/etc/hosts") and None, lp.hosts)
    if lp.start:
        plan.add("start nginx (not running)", lambda s: remote.run_script(
            s, nginx_service_script("start"), check=True, what="start nginx") and None)
    elif lp.vhosts or lp.disable_default:
        plan.add("reload nginx", lambda s: remote.run_script(
            s, nginx_service_script("reload"), check=True, what="reload nginx") and None)
    if lp.enable:
        enable = lp.enable
        plan.add("start nginx at boot: " + enable.split(" 2>")[0], lambda s: remote.run_script(
            s, enable + "\n", check=True, what="enable nginx at boot") and None)
    if lp.vhosts or lp.disable_default or lp.start:
        def verify_live(s: HostSession) -> None:
            # the config now live: did another vhost claim our names meanwhile?
            live = remote.run_script(s, live_conflicts_script(), what="nginx -T")
            exact = [c for c in name_conflicts(live.stdout if live.ok else None, run.inv)
                     if c.exact]
            if exact:
                raise ActionFailed("the new config is live, but another vhost claims our "
                                   "names:\n" + "\n".join(c.describe() for c in exact))
        plan.add("check the live config for name conflicts", verify_live, quiet=True)
    return plan
