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
"""
from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from pathlib import Path

import jinja2
from invoke import task

from ..engine import boot, remote
from . import cluster_ca, lb_rules, nginx_conf
from ..engine.cli import COMMON_HELP, session
from ..engine.inventory import Host, Inventory
from ..engine.remote import FileChange, FileSpec, HostSession, q
from ..engine.plan import ActionFailed, Plan
from ..engine.report import StepResult

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"
CONF_DIR = "/etc/nginx/conf.d"
VHOSTS = ("ei.http.conf", "ei.https.conf", "ui.ei.https.conf", "ei.default.conf")
DEFAULT_SITE = "/etc/nginx/sites-enabled/default"
DEBIAN_DEFAULT = "/etc/nginx/sites-available/default"  # nginx-common's conffile
ETC_HOSTS = "/etc/hosts"
HOSTS_MARKER = "bps-deploy lb-names"
MAX_FAILS = 3
FAIL_TIMEOUT = "30s"
STEP = "lb"


class RenderError(Exception):
    """A template could not be rendered; str() names the template and line."""


class LbError(Exception):
    """The LB cannot be configured as asked (bad drain name, bad allow-list, ...)."""


# --------------------------------------------------------------------------- templates


def _env() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)),
                              undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                              autoescape=False)


def _context_lines(name: str, lineno: int | None) -> str:
    if not lineno:
        return ""
    try:
        lines = (TEMPLATES / name).read_text().splitlines()
    except OSError:
        return ""
    lo, hi = max(1, lineno - 2), min(len(lines), lineno + 2)
    return "\n" + "\n".join(f"  {'>' if i == lineno else ' '} {i:4d} | {lines[i - 1]}"
                            for i in range(lo, hi + 1))


def render(name: str, ctx: dict, env: jinja2.Environment | None = None) -> str:
    """Render templates/<name>; any template error becomes a RenderError with file and line."""
    env = env or _env()
    try:
        return env.get_template(name).render(**ctx)
    except jinja2.TemplateSyntaxError as e:
        tname = e.name or name
        raise RenderError(f"templates/{tname}:{e.lineno}: syntax error: {e.message}"
                          f"{_context_lines(tname, e.lineno)}") from None
    except jinja2.UndefinedError as e:
        # find the innermost template frame in the traceback for the line number
        tname, lineno = name, None
        tb = e.__traceback__
        while tb is not None:
            fn = tb.tb_frame.f_code.co_filename
            if fn.startswith(str(TEMPLATES)):
                tname, lineno = Path(fn).name, tb.tb_lineno
            tb = tb.tb_next
        where = f"templates/{tname}" + (f":{lineno}" if lineno else "")
        raise RenderError(f"{where}: undefined value: {e.message}"
                          f"{_context_lines(tname, lineno)}") from None
    except jinja2.TemplateError as e:
        raise RenderError(f"templates/{name}: {e}") from None


def parse_nginx_version(out: str) -> tuple[int, ...] | None:
    """'nginx version: nginx/1.22.1' -> (1, 22, 1); None if not found."""
    m = re.search(r"nginx/(\d+(?:\.\d+)*)", out or "")
    return tuple(int(x) for x in m.group(1).split(".")) if m else None


def template_context(inv: Inventory, nginx_version: tuple[int, ...] | None,
                     drain: frozenset[str] = frozenset(),
                     default_owners: dict[int, str] | None = None) -> dict:
    """default_owners: {port: file} of other files that declare default_server on 80/443."""
    cl = inv.cluster
    default_owners = default_owners or {}
    problem = nginx_conf.snippet_problem(cl.nginx_extra or "")
    if problem:
        raise LbError(f"cluster.nginx_extra: {problem}")
    try:
        admin_regex = lb_rules.admin_services_regex(cl.admin_services_extra)
    except ValueError as e:
        raise LbError(f"cluster.admin_services_extra: {e}") from None
    bad = sorted(set(cl.expose_on_service) - set(lb_rules.CONSOLE_APPS))
    if bad:
        raise LbError(f"cluster.expose_on_service: {', '.join(bad)} unknown; allowed: "
                      f"{', '.join(lb_rules.CONSOLE_APPS)}")
    unknown = sorted(set(drain) - {n.name for n in inv.nodes})
    if unknown:
        raise LbError(f"cannot drain {', '.join(unknown)}: no such node in hosts.toml "
                      f"(nodes: {', '.join(n.name for n in inv.nodes)})")
    for net in cl.console_allow:
        try:
            ipaddress.ip_network(net, strict=False)
        except ValueError:
            raise LbError(f"cluster.console_allow: {net!r} is not a network") from None
    return {
        "managed_note": "Managed by bps-deploy (`fab lb`): local edits are overwritten.",
        "nodes": [{"name": n.name, "address": n.address} for n in inv.nodes],
        "drain": frozenset(drain),
        "http_port": cl.http_port,
        "https_port": cl.https_port,
        "service_name": cl.service_name,
        "console_name": cl.console_name,
        "cert_path": inv.certs.cert_path,
        "key_path": inv.certs.key_path,
        "console_allow": list(cl.console_allow),
        "nginx_extra": cl.nginx_extra or "",
        "max_fails": MAX_FAILS,
        "fail_timeout": FAIL_TIMEOUT,
        # `http2 on;` exists from 1.25.1; before that http2 is a `listen` parameter
        "http2_directive": bool(nginx_version and nginx_version >= (1, 25, 1)),
        "admin_services_regex": admin_regex,
        "console_only_regex": lb_rules.console_only_regex(cl.expose_on_service),
        # ssl_reject_handshake exists from 1.19.4; before that the catch-all shows our cert
        "reject_handshake": bool(nginx_version and nginx_version >= (1, 19, 4)),
        "default_owner_80": default_owners.get(80, ""),
        "default_owner_443": default_owners.get(443, ""),
        **cluster_ca.lb_context(inv),  # NGINX verifies the nodes against the cluster CA
    }


def render_vhosts(inv: Inventory, nginx_version: tuple[int, ...] | None,
                  drain: frozenset[str] = frozenset(),
                  default_owners: dict[int, str] | None = None) -> list[FileSpec]:
    """Pure: the vhost files, exactly. Each must be well-formed (braces balance)."""
    ctx = template_context(inv, nginx_version, drain, default_owners)
    env = _env()
    out = []
    for name in VHOSTS:
        text = tidy(render(f"{name}.j2", ctx, env))
        problem = nginx_conf.structure_problem(text)
        if problem:
            raise RenderError(f"{CONF_DIR}/{name} as rendered is not well-formed: {problem}")
        out.append(FileSpec(f"{CONF_DIR}/{name}", text.encode()))
    ca = cluster_ca.lb_ca_pem(inv)  # written and validated (nginx -t) with the vhosts
    if ca is not None:
        out.append(FileSpec(cluster_ca.lb_ca_path(inv), ca))
    return out


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


def tidy(text: str) -> str:
    """Pure: drop the blank lines template includes leave (after `{`, before `}`, doubles)."""
    text = re.sub(r"\{\n(?:[ \t]*\n)+", "{\n", text)
    text = re.sub(r"\n(?:[ \t]*\n)+([ \t]*\})", r"\n\1", text)
    return re.sub(r"\n(?:[ \t]*\n){2,}", "\n\n", text)


def hosts_block(inv: Inventory) -> list[str]:
    cl = inv.cluster
    return [f"{inv.lb.address}\t{cl.service_name} {cl.console_name}"]


def plan_etc_hosts(current: bytes | None, state: remote.FileState | None,
                   inv: Inventory) -> list[FileChange]:
    """Pure: the /etc/hosts change (managed block present when etc_hosts, absent otherwise)."""
    block = hosts_block(inv) if inv.cluster.etc_hosts else []
    return remote.block_change(ETC_HOSTS, current, state, block, HOSTS_MARKER)


# --------------------------------------------------------------------------- facts


@dataclass
class LbFacts:
    nginx_version: tuple[int, ...] | None
    nginx_running: bool
    systemd: bool
    cert_present: bool
    key_present: bool
    default_site: bool  # sites-enabled/default exists (file or link)
    default_site_kind: str = "absent"  # absent | link | file (anything not a link)
    default_site_target: str = ""  # the link's resolved target
    default_site_md5: str = ""  # md5 of what sites-enabled/default resolves to
    default_site_pkg_md5: str = ""  # dpkg's md5 of nginx-common's sites-available/default
    nginx_dump: str | None = None  # `nginx -T` (None when it fails)
    files: dict[str, remote.FileState | None] = field(default_factory=dict)
    hosts_content: bytes | None = None
    hosts_state: remote.FileState | None = None
    drained: frozenset[str] = frozenset()  # nodes marked down in our vhosts now
    boot: boot.Boot = boot.Boot("none", "")  # nginx started at boot?


NGINX_RUNNING = ("if [ -s /run/nginx.pid ] && kill -0 \"$(cat /run/nginx.pid)\" 2>/dev/null; "
                 "then echo running; elif pgrep -x nginx >/dev/null 2>&1; then echo running; "
                 "else echo stopped; fi")


DEFAULT_SITE_PROBE = (
    f"d={DEFAULT_SITE}; if [ -L $d ]; then echo \"link $(readlink -f $d)\"; "
    "elif [ -e $d ]; then echo file; else echo absent; fi; "
    "echo \"md5 $(md5sum < $d 2>/dev/null | cut -d' ' -f1)\"; "
    "echo \"pkg $(dpkg-query -W -f='${Conffiles}\\n' nginx-common 2>/dev/null | "
    f"awk '$1==\"{DEBIAN_DEFAULT}\" {{print $2}}')\"")


def parse_default_site(out: str) -> dict[str, str]:
    """The default-site probe's output -> kind, target, md5, pkg_md5."""
    got = {"kind": "absent", "target": "", "md5": "", "pkg_md5": ""}
    for line in out.splitlines():
        word, _, rest = line.strip().partition(" ")
        if word in ("absent", "file"):
            got["kind"] = word
        elif word == "link":
            got["kind"], got["target"] = "link", rest.strip()
        elif word == "md5":
            got["md5"] = rest.strip()
        elif word == "pkg":
            got["pkg_md5"] = rest.strip()
    return got


def lb_probes(inv: Inventory) -> dict[str, str]:
    probes = {f"file:{p}": remote.probe_file(p) for p in lb_files(inv)}
    probes.update({
        "nginx": "command -v nginx >/dev/null 2>&1 && nginx -v 2>&1 || echo MISSING",
        "running": NGINX_RUNNING,
        "systemd": "[ -d /run/systemd/system ] && echo yes || echo no",
        "boot": boot.boot_probe(("nginx",)),
        "cert": f"[ -s {q(inv.certs.cert_path)} ] && echo present || echo missing",
        "key": f"[ -s {q(inv.certs.key_path)} ] && echo present || echo missing",
        "default_site": DEFAULT_SITE_PROBE,
        "nginx_dump": "nginx -T 2>/dev/null",
        "hosts_file": remote.probe_file(ETC_HOSTS, content=True),
        # the marker _upstream.j2 writes after a drained node's server line
        "drained": "cat " + " ".join(q(f"{CONF_DIR}/{v}") for v in VHOSTS)
                   + " 2>/dev/null | grep -o '# [^ ]* (drained)' | sort -u || true",
    })
    return probes


def lb_files(inv: Inventory) -> list[str]:
    """The files `fab lb` writes (and validates together): the vhosts and the cluster CA."""
    return [f"{CONF_DIR}/{v}" for v in VHOSTS] + (
        [cluster_ca.lb_ca_path(inv)] if inv.certs.cluster_ca else [])


def parse_drained(out: str) -> frozenset[str]:
    """'# node1 (drained)' lines -> {'node1'}."""
    return frozenset(m.group(1) for m in re.finditer(r"^# (\S+) \(drained\)$", out, re.M))


def parse_lb_facts(facts: dict[str, remote.Fact]) -> LbFacts:
    nginx = facts["nginx"].out.strip()
    ds = parse_default_site(facts["default_site"].out)
    dump = facts.get("nginx_dump")
    return LbFacts(
        nginx_version=None if nginx.endswith("MISSING") else parse_nginx_version(nginx),
        nginx_running=facts["running"].out.strip() == "running",
        systemd=facts["systemd"].out.strip() == "yes",
        cert_present=facts["cert"].out.strip() == "present",
        key_present=facts["key"].out.strip() == "present",
        default_site=ds["kind"] != "absent",
        default_site_kind=ds["kind"],
        default_site_target=ds["target"],
        default_site_md5=ds["md5"],
        default_site_pkg_md5=ds["pkg_md5"],
        nginx_dump=dump.out if dump is not None and dump.rc == 0 and dump.out.strip() else None,
        files={k[5:]: remote.parse_file_probe(f.out) for k, f in facts.items()
               if k.startswith("file:")},
        hosts_content=remote.parse_content_probe(facts["hosts_file"].out),
        hosts_state=remote.parse_file_probe(facts["hosts_file"].out),
        drained=parse_drained(facts["drained"].out),
        boot=boot.parse_boot(facts["boot"].out, "nginx") if "boot" in facts
        else boot.Boot("none", ""),
    )


def read_lb_facts(s: HostSession, inv: Inventory) -> LbFacts:
    return parse_lb_facts(remote.read_facts(s, lb_probes(inv)))


# --------------------------------------------------------------------------- plan


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


# --------------------------------------------------------------------------- apply


def nginx_service_script(action: str, systemd: bool) -> str:
    """start|reload nginx: systemctl when systemd runs, else service, else nginx itself.

    Output goes through a temp file: a daemon that kept our stdout would hold the SSH channel.
    """
    direct = "nginx" if action == "start" else "nginx -s reload"
    if systemd:
        cmd = f"systemctl {action} nginx"
    else:
        cmd = (f"if command -v service >/dev/null 2>&1 && [ -x /etc/init.d/nginx ]; then "
               f"service nginx {action}; else {direct}; fi")
    return (f"o=$(mktemp); ( {cmd} ) </dev/null >\"$o\" 2>&1; rc=$?; cat \"$o\" >&2; "
            f"rm -f \"$o\"; exit $rc\n")


def disable_default_script(stamp: str) -> str:
    bak = f"{remote.BACKUP_DIR}/sites-enabled%default.{stamp}~"
    return (f"set -e\numask 077; mkdir -p {remote.BACKUP_DIR}\n"
            f"mv -f {DEFAULT_SITE} {q(bak)}\n"
            f"if ! vout=$(nginx -t 2>&1); then mv -f {q(bak)} {DEFAULT_SITE}; echo \"$vout\" >&2; "
            "echo 'validation failed: default site restored' >&2; exit 3; fi\n"
            f"echo 'disabled {DEFAULT_SITE}'\n")


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
            s, nginx_service_script("start", facts.systemd), check=True,
            what="start nginx") and None)
    elif lp.vhosts or lp.disable_default:
        plan.add("reload nginx", lambda s: remote.run_script(
            s, nginx_service_script("reload", facts.systemd), check=True,
            what="reload nginx") and None)
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


def node_hosts(run, s: HostSession) -> StepResult:
    """A node's /etc/hosts: the managed block naming the LB's host names."""
    content, state = remote.read_file(s, ETC_HOSTS)
    changes = plan_etc_hosts(content, state, run.inv)
    plan = Plan(noop="/etc/hosts already maps the LB names" if run.inv.cluster.etc_hosts
                else "etc_hosts off: no LB names block", before={ETC_HOSTS: content})
    if changes:
        plan.add("; ".join(c.describe() + " (LB names block)" for c in changes),
                 lambda s: run.apply_files(s, changes, what="/etc/hosts") and None, changes)
    return run.apply(s, STEP, plan)


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
            plan = plan_lb(facts, inv, frozenset(drain), certs_planned and run.check,
                           frozenset(undraining))
        except (RenderError, LbError) as e:
            return StepResult(s.name, STEP, "failed", str(e))
        return run.apply(s, STEP, lb_actions(run, facts, plan))

    return run.each([inv.lb], STEP, one)[inv.lb.name]


def lb_step(run, drain: frozenset[str] = frozenset(), certs_planned: bool = False) -> bool:
    """Configure the LB (vhosts, default site, nginx) then the nodes' /etc/hosts. True = all ok."""
    inv = run.inv
    if lb_host_step(run, drain, certs_planned).status in ("failed", "unreachable", "skipped"):
        return False
    nodes = run.alive(inv.nodes)
    results = run.each(nodes, STEP, lambda s: node_hosts(run, s)) if nodes else {}
    return all(r.status in ("ok", "changed") for r in results.values())


@task(help={"check": COMMON_HELP["check"], "diff": COMMON_HELP["diff"],
            "parallel": COMMON_HELP["parallel"]})
def lb(c, check=False, diff=False, parallel=16):
    """NGINX on the LB: the vhosts and catch-all (validated with nginx -t), reload on change."""
    with session(c, check=check, diff=diff, parallel=parallel, title="LB") as run:
        lb_step(run)
