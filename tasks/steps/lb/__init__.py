"""`fab lb`: the NGINX load balancer in front of the EI nodes (guide §5.1).

Four files in /etc/nginx/conf.d/ rendered from templates/ (Jinja2, StrictUndefined):
`ei.http.conf` and `ei.https.conf` (service name, round robin over every node, HTTP 9765 /
HTTPS 9445 with the profile's port offset; never the console, the admin services or the
console-only apps: tasks/lb_rules.py), `ui.ei.https.conf` (console name, HTTPS with client
affinity `hash $remote_addr consistent`, allow-list from cluster.console_allow) and
`ei.default.conf` (catch-all default servers on 80 and 443: unknown Host headers never reach
the nodes).

Debian's own default site (the link `sites-enabled/default` -> sites-available/default whose
content is the nginx package's, by dpkg's md5) is disabled: the link is moved to
/var/backups/bps-deploy/. Anything else at that path is the operator's and is left alone, with
a warning. Another server block claiming our names on our ports (read from `nginx -T`) fails
the step, naming its file.

Files are pushed only when their content differs, the new set is checked with `nginx -t` and
rolled back if the check fails (nginx keeps serving the old config), nginx is reloaded only when
something changed and started when it is not running. The LB names go into /etc/hosts on the LB
and the nodes in a managed block when cluster.etc_hosts is true.

Layout: vhosts.py (templates, rendering), facts.py (one round trip), plan.py (pure),
apply.py (the plan as actions, the nginx scripts), hosts.py (the LB names in /etc/hosts); this
module wires them per the step contract (engine/plan.py).
"""
from __future__ import annotations

from invoke import task

from ...engine.cli import COMMON_HELP, session
from ...engine.plan import Plan
from ...engine.remote import HostSession
from ...engine.report import Status, StepResult
from .apply import (disable_default_script, lb_actions, live_conflicts_script,  # noqa: F401
                    nginx_message, nginx_service_script)
from .facts import (DEBIAN_DEFAULT, DEFAULT_SITE, LbFacts, default_site_probe,  # noqa: F401
                    lb_probes, nginx_running_probe, parse_default_site, parse_drained,
                    parse_lb_facts, read_lb_facts)
from .hosts import ETC_HOSTS, HOSTS_MARKER, hosts_block, node_hosts, plan_etc_hosts  # noqa: F401
from .plan import (LbPlan, default_owners, default_site_decision, name_conflicts,  # noqa: F401
                   our_names, plan_lb)
from .vhosts import (CONF_DIR, FAIL_TIMEOUT, MAX_FAILS, STEP, TEMPLATES, VHOSTS,  # noqa: F401
                     LbError, RenderError, parse_nginx_version, render, render_vhosts,
                     template_context, tidy)


def lb_host_step(run, drain: frozenset[str] = frozenset(), certs_planned: bool = False,
                 undraining: frozenset[str] = frozenset()) -> StepResult:
    """Configure the LB host itself (vhosts, default site, nginx); its result, recorded.

    undraining: nodes this run drained and now puts back (see plan_lb)."""
    inv = run.inv
    if inv.cluster.console_open:
        run.rep.warn(f"!!! cluster.console_allow {inv.cluster.console_open}: the management "
                     f"console (/carbon on {inv.cluster.console_name}) is OPEN TO EVERYONE; list "
                     "the admin networks")
    if drain:
        run.rep.line(None, f"draining (marked down in the upstreams): {', '.join(sorted(drain))}")

    def one(s: HostSession) -> StepResult:
        facts = read_lb_facts(s, inv)
        try:
            lp = plan_lb(facts, inv, frozenset(drain), certs_planned and run.check,
                         frozenset(undraining))
        except (RenderError, LbError) as e:  # a config mistake: refused, nothing written
            return run.apply(s, STEP, Plan.refuse(str(e)))
        return run.apply(s, STEP, lb_actions(run, facts, lp))

    return run.each([inv.lb], STEP, one)[inv.lb.name]


def lb_step(run, drain: frozenset[str] = frozenset(), certs_planned: bool = False) -> bool:
    """Configure the LB (vhosts, default site, nginx) then the nodes' /etc/hosts. True = all ok."""
    inv = run.inv
    if lb_host_step(run, drain, certs_planned).status not in (Status.OK, Status.CHANGED):
        return False
    nodes = run.alive(inv.nodes)
    results = run.each(nodes, STEP, lambda s: node_hosts(run, s)) if nodes else {}
    return all(r.status in (Status.OK, Status.CHANGED) for r in results.values())


@task(help={"check": COMMON_HELP["check"], "diff": COMMON_HELP["diff"],
            "parallel": COMMON_HELP["parallel"]})
def lb(c, check=False, diff=False, parallel=16):
    """NGINX on the LB: the vhosts and catch-all (validated with nginx -t), reload on change."""
    with session(c, check=check, diff=diff, parallel=parallel, title="LB") as run:
        lb_step(run)
