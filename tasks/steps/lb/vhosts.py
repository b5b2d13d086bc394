"""`fab lb` vhosts: the four nginx files rendered from templates/ (Jinja2, StrictUndefined), each
checked well-formed. Template errors name the template and line (RenderError); config mistakes
the planner refuses (bad drain name, allow-list, snippet) are LbError."""
from __future__ import annotations

import ipaddress
import re
from pathlib import Path

import jinja2

from ...engine.inventory import Inventory
from ...engine.remote import FileSpec
from .. import cluster_ca, lb_rules, nginx_conf

STEP = "lb"  # the step's name in reports
TEMPLATES = Path(__file__).resolve().parents[3] / "templates"
CONF_DIR = "/etc/nginx/conf.d"
VHOSTS = ("ei.http.conf", "ei.https.conf", "ui.ei.https.conf", "ei.default.conf")
MAX_FAILS = 3
FAIL_TIMEOUT = "30s"


class RenderError(Exception):
    """A template could not be rendered; str() names the template and line."""


class LbError(Exception):
    """The LB cannot be configured as asked (bad drain name, bad allow-list, ...)."""


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


def tidy(text: str) -> str:
    """Pure: drop the blank lines template includes leave (after `{`, before `}`, doubles)."""
    text = re.sub(r"\{\n(?:[ \t]*\n)+", "{\n", text)
    text = re.sub(r"\n(?:[ \t]*\n)+([ \t]*\})", r"\n\1", text)
    return re.sub(r"\n(?:[ \t]*\n){2,}", "\n\n", text)
