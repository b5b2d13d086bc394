"""`fab lb` facts: nginx, the vhosts, Debian's default site, `nginx -T`, the drained nodes and
/etc/hosts, in one round trip."""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from ...engine import boot, remote
from ...engine.inventory import Inventory
from ...engine.remote import HostSession, q
from .. import cluster_ca
from .hosts import ETC_HOSTS
from .vhosts import CONF_DIR, VHOSTS, parse_nginx_version

DEFAULT_SITE = "/etc/nginx/sites-enabled/default"
DEBIAN_DEFAULT = "/etc/nginx/sites-available/default"  # nginx-common's conffile


@dataclass
class LbFacts:
    nginx_version: tuple[int, ...] | None
    nginx_running: bool
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


def nginx_running_probe() -> str:
    """Prints running | stopped (tasks/scripts/nginx_service.sh)."""
    return remote.script("nginx_service.sh", ACTION="status", IF_RUNNING=0, VALIDATE=0)


def default_site_probe() -> str:
    """What sites-enabled/default is (tasks/scripts/nginx_default_site.sh): parse_default_site."""
    return remote.script("nginx_default_site.sh", ACTION="probe", SITE=DEFAULT_SITE,
                         PACKAGE_SITE=DEBIAN_DEFAULT, BACKUP="")


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
        "running": nginx_running_probe(),
        "boot": boot.boot_probe(("nginx",)),
        "cert": f"[ -s {q(inv.certs.cert_path)} ] && echo present || echo missing",
        "key": f"[ -s {q(inv.certs.key_path)} ] && echo present || echo missing",
        "default_site": default_site_probe(),
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
