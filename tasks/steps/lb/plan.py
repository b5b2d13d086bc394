"""`fab lb` pure plan: what the LB needs, from its facts (engine/plan.py's first half)."""
from __future__ import annotations

from dataclasses import dataclass, field

from ...engine import boot, remote
from ...engine.inventory import Inventory
from ...engine.remote import FileChange
from .. import cluster_ca, nginx_conf
from .facts import DEBIAN_DEFAULT, DEFAULT_SITE, LbFacts
from .hosts import plan_etc_hosts
from .vhosts import CONF_DIR, VHOSTS, render_vhosts


def our_names(inv: Inventory) -> dict[str, set[int]]:
    """Our server names and the ports our vhosts serve each on."""
    return {inv.cluster.service_name: {80, 443}, inv.cluster.console_name: {443}}


def name_conflicts(dump: str | None, inv: Inventory) -> list[nginx_conf.Conflict]:
    """Pure: other server blocks in an `nginx -T` dump claiming our names on our ports."""
    if not dump:
        return []
    own = {f"{CONF_DIR}/{v}" for v in VHOSTS}
    return nginx_conf.conflicts(nginx_conf.parse_servers(dump), our_names(inv), own)


def default_owners(dump: str | None, skip: set[str]) -> dict[int, str]:
    """Pure: {port: file} for 80/443 where a file other than ours (and `skip`) is
    the default_server."""
    if not dump:
        return {}
    own = {f"{CONF_DIR}/{v}" for v in VHOSTS} | skip
    out: dict[int, str] = {}
    for b in nginx_conf.parse_servers(dump):
        for port in sorted(b.default_ports & {80, 443}):
            if b.file not in own:
                out.setdefault(port, b.file)
    return out


def default_site_decision(kind: str, target: str, md5: str,
                          pkg_md5: str) -> tuple[bool, str | None]:
    """Pure: (disable it, warning). Only Debian's own default site is disabled: the link
    sites-enabled/default -> /etc/nginx/sites-available/default whose content has the md5 dpkg
    recorded for nginx-common's conffile. Anything else is the operator's: left, with a warning.
    """
    if kind == "absent":
        return False, None
    if kind != "link":
        why = "it is a regular file, not Debian's link to sites-available/default"
    elif target != DEBIAN_DEFAULT:
        why = f"it links to {target or '?'}, not to {DEBIAN_DEFAULT}"
    elif not pkg_md5:
        why = (f"dpkg records no checksum for {DEBIAN_DEFAULT} (nginx-common not installed?), "
               "so it cannot be told from your own site")
    elif md5 != pkg_md5:
        why = f"{DEBIAN_DEFAULT} was edited (its md5 differs from the nginx package's)"
    else:
        return True, None
    return False, (f"!!! left {DEFAULT_SITE} alone: {why}. It stays enabled; requests it "
                   "matches (and unknown Host headers, if it is the default_server) go there")


@dataclass
class LbPlan:
    error: str | None = None
    vhosts: list[FileChange] = field(default_factory=list)
    hosts: list[FileChange] = field(default_factory=list)
    disable_default: bool = False
    start: bool = False  # nginx is not running
    warnings: list[str] = field(default_factory=list)  # shown in the step's message
    undrain: list[str] = field(default_factory=list)  # drained now, not asked for: put back
    enable: str | None = None  # the command that makes nginx start at boot (None: it does)

    @property
    def changes(self) -> list[str]:
        out = []
        if self.undrain:
            out.append(f"put back into rotation: {', '.join(self.undrain)} (drained by an "
                       "earlier run that did not finish, e.g. an interrupted rolling restart)")
        if self.disable_default:
            out.append(f"disable Debian's default site ({DEFAULT_SITE}, link moved to "
                       f"{remote.BACKUP_DIR})")
        out += [c.describe() for c in self.vhosts]
        out += [c.describe() + " (LB names block)" for c in self.hosts]
        if self.start:
            out.append("start nginx (not running)")
        elif self.vhosts or self.disable_default:
            out.append("reload nginx")
        if self.enable:
            out.append("start nginx at boot: " + self.enable.split(" 2>")[0])
        return out


def plan_lb(facts: LbFacts, inv: Inventory, drain: frozenset[str] = frozenset(),
            certs_planned: bool = False, undraining: frozenset[str] = frozenset()) -> LbPlan:
    """Pure: what the LB needs. Raises RenderError/LbError for config mistakes.

    certs_planned: a check-mode deploy whose certs step would create the certificate first.
    undraining: nodes this run drained itself and now puts back (not a leftover to report).
    """
    if facts.nginx_version is None:
        return LbPlan(error="nginx is not installed on the LB (or `nginx -v` fails): install "
                            "it first, e.g. `apt-get install nginx`")
    missing = [p for p, ok in ((inv.certs.cert_path, facts.cert_present),
                               (inv.certs.key_path, facts.key_present)) if not ok]
    if missing and not certs_planned:
        return LbPlan(error=f"{' and '.join(missing)} not on the LB: run `fab certs` first "
                            "(nothing was written)")
    disable, warning = default_site_decision(facts.default_site_kind, facts.default_site_target,
                                             facts.default_site_md5, facts.default_site_pkg_md5)
    warnings = [warning] if warning else []
    found = name_conflicts(facts.nginx_dump, inv)
    exact = [c for c in found if c.exact]
    if exact:
        return LbPlan(error="another vhost on the LB claims our names (nothing was written):\n"
                            + "\n".join(c.describe() for c in exact), warnings=warnings)
    warnings += ["!!! " + c.describe() for c in found]
    owners = default_owners(facts.nginx_dump, {DEFAULT_SITE} if disable else set())
    for port, f in sorted(owners.items()):
        warnings.append(f"!!! {f} is the default_server on port {port}: requests with an "
                        "unknown Host header go there (our catch-all is left out on that port)")
    wanted = render_vhosts(inv, facts.nginx_version, drain, owners)
    if inv.certs.cluster_ca and not any(sp.path == cluster_ca.lb_ca_path(inv) for sp in wanted):
        warnings.append(f"!!! certs.cluster_ca is on but the cluster CA ({inv.certs.ca_cert}) "
                        "does not exist yet: NGINX cannot verify the nodes, so these vhosts "
                        "say proxy_ssl_verify off. `fab deploy` (or `fab configure`) creates "
                        "the CA and the nodes' keys; `fab lb` then turns verification on")
    vhosts = remote.plan_files(wanted, facts.files)
    enable, note = boot.boot_plan(facts.boot, "nginx")
    if note:
        warnings.append(note)
    return LbPlan(vhosts=vhosts, enable=enable,
                  hosts=plan_etc_hosts(facts.hosts_content, facts.hosts_state, inv),
                  disable_default=disable,
                  start=not facts.nginx_running, warnings=warnings,
                  undrain=[n.name for n in inv.nodes if n.name in facts.drained
                           and n.name not in drain | undraining] if vhosts else [])
