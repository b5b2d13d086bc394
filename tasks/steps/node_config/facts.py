"""A node's facts for `fab configure` (one round trip), and what we remember having rendered."""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from ...engine import remote
from ...engine.inventory import Host, Inventory
from ...engine.remote import FileState, q
from ...wso2 import ei_xml, jdbc
from ...wso2 import vault as wso2_vault
from .. import node_keys, services, systemd, vault
from .params import conf_dir, node_params

CONFIG_STATE = f"{remote.STATE_DIR}/configure.state"
ADMIN_STATE = f"{remote.STATE_DIR}/admin-password.state"


@dataclass
class NodeFacts:
    ei_home: bool
    user_exists: bool
    not_owned: str  # first path under EI_HOME not owned by the service user ("" = all owned)
    java: str  # "java 17.0.15 (/usr/lib/jvm/...)", "" when missing
    lib: dict[str, str]  # jar name -> sha256
    conf: dict[str, bytes | None]  # rel path -> bytes
    conf_state: dict[str, FileState | None]
    pending: str
    remembered: str = ""  # CONFIG_STATE: what we rendered last time, and from which inputs
    admin_state: str = ""  # admin.ADMIN_STATE: a hash of the admin password last applied
    system: systemd.SystemFacts | None = None  # init, limits, unit file, kernel settings


def node_probes(inv: Inventory, contents: bool = False) -> dict[str, str]:
    """Facts of a node; the config files' bytes only with `contents` (a no-op run needs only
    their hashes, compared with what we remember having written)."""
    cl = inv.cluster
    probes = {
        "ei_home": f"test -d {q(cl.profile_home)} && echo yes || echo no",
        "user": f"id -u {q(cl.service_user)} >/dev/null 2>&1 && echo yes || echo no",
        "not_owned": (f"id -u {q(cl.service_user)} >/dev/null 2>&1 && "
                      f"find {q(cl.ei_home)} ! -user {q(cl.service_user)} -print -quit "
                      "2>/dev/null; true"),
        "java": services.java_probe(cl.service_user, cl.java_home),
        "lib": jdbc.probe_lib(q(cl.ei_home + "/lib")),
        "pending": remote.probe_pending(),
        "remembered": f"cat {CONFIG_STATE} 2>/dev/null || true",
        # read here so a no-op deploy's admin step needs no command of its own (tasks/admin.py)
        "admin_state": f"cat {ADMIN_STATE} 2>/dev/null || true",
        # the host's init, limits and kernel settings, the unit and the sysctl drop-in
        # (tasks/steps/systemd/): in this same read, so a no-op deploy spends nothing on them
        "init": systemd.INIT_PROBE,
        "sysctl_now": systemd.sysctl_probe(),
        "unit_file": remote.probe_file(systemd.UNIT_PATH, content=True),
        "sysctl_file": remote.probe_file(systemd.SYSCTL_PATH, content=True),
    }
    for rel in ei_xml.CONF_FILES:
        probes[f"conf:{rel}"] = remote.probe_file(f"{conf_dir(inv)}/{rel}", content=contents)
    probes.update(node_keys.probes(inv))  # the node's own keystore and truststores
    # Secure Vault's digests; the shipped keystore's bytes with the files, for vault.precheck
    probes.update(vault.probes(inv, contents and not inv.certs.cluster_ca))
    return probes


def parse_node_facts(facts: dict[str, remote.Fact]) -> NodeFacts:
    conf: dict[str, bytes | None] = {}
    state: dict[str, FileState | None] = {}
    for rel in ei_xml.CONF_FILES:
        state[rel] = remote.parse_file_probe(facts[f"conf:{rel}"].out)
        conf[rel] = state[rel].content if state[rel] else None
    return NodeFacts(
        ei_home=facts["ei_home"].out.strip() == "yes",
        user_exists=facts["user"].out.strip() == "yes",
        not_owned=facts["not_owned"].out.strip(),
        java=facts["java"].out.strip(),
        lib=jdbc.parse_lib(facts["lib"].out),
        conf=conf, conf_state=state, pending=facts["pending"].out.strip(),
        remembered=facts["remembered"].out.strip() if "remembered" in facts else "",
        admin_state=facts["admin_state"].out.strip() if "admin_state" in facts else "",
        system=systemd.SystemFacts(
            systemd.parse_init(facts["init"].out), facts["java"].out.strip(),
            systemd.parse_sysctl(facts["sysctl_now"].out),
            remote.parse_file_probe(facts["unit_file"].out),
            remote.parse_file_probe(facts["sysctl_file"].out)) if "init" in facts else None)


@functools.lru_cache(maxsize=1)
def _edit_code() -> bytes:
    """The code the edit depends on: the XML editor and this package's parameters and plan."""
    here = Path(__file__).parent
    return ei_xml.code_bytes() + b"".join(p.read_bytes() for p in (here / "params.py",
                                                                    here / "plan.py",
                                                                    Path(wso2_vault.__file__)))


def render_digest(inv: Inventory, node: Host) -> str:
    """Identifies everything the XML edit depends on besides the files: the node's parameters
    (secrets included, only as a hash, in a root-only file on a node that holds them anyway)
    and the edit code itself."""
    code = _edit_code()
    # asdict, not repr: the dataclasses hide passwords from repr, and a changed password
    # must change the digest
    params = json.dumps([dataclasses.asdict(node_params(inv, node)), vault.enabled(inv)],
                        sort_keys=True).encode()
    return hashlib.sha256(code + b"\0" + params).hexdigest()


def remembered_state(digest: str, files: dict[str, str]) -> str:
    """CONFIG_STATE content: the digest, then 'sha256 rel' of each file as we wrote it."""
    return "\n".join([digest] + [f"{sha} {rel}" for rel, sha in sorted(files.items())]) + "\n"


def unchanged_since_last_render(f: NodeFacts, digest: str) -> bool:
    """True when every config file is byte for byte what we wrote from the same inputs: the
    edit is idempotent, so rendering again would give the same bytes (no need to fetch them)."""
    current = {rel: st.sha256 for rel, st in f.conf_state.items() if st is not None}
    return len(current) == len(ei_xml.CONF_FILES) and \
        f.remembered == remembered_state(digest, current).strip()
