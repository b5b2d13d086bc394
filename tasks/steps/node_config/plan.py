"""Pure: from a node's facts to the writes it needs (the XML edited in memory on its own files)."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from ...engine import remote
from ...engine.inventory import Host, Inventory
from ...engine.remote import FileSpec, FileState
from ...wso2 import ei_xml, jdbc
from .. import vault
from .facts import NodeFacts
from .params import MEMBERSHIP_FILE, SECRET_FILES, conf_dir, driver_class, node_params


@dataclass
class NodePlan:
    files: list[remote.FileChange] = field(default_factory=list)
    create_user: bool = False
    chown: bool = False
    move_aside: tuple[str, ...] = ()
    membership_changed: bool = False
    originals: dict[str, bytes | None] = field(default_factory=dict)
    rendered: dict[str, str] = field(default_factory=dict)  # rel -> sha256 we want
    # files whose only change is user-mgt.xml's admin password: a first-start seed, the running
    # cluster never reads it again, so writing it needs no restart
    seed_only: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.files or self.create_user or self.chown or self.move_aside)

    @property
    def restart_reasons(self) -> list[str]:
        """What a running node reads that this plan changes (file names, moved jars)."""
        return [c.spec.path.rsplit("/", 1)[-1] for c in self.files
                if c.spec.path not in self.seed_only] + list(self.move_aside)

    def describe(self, inv: Inventory) -> list[str]:
        out = []
        if self.create_user:
            out.append(f"create service user {inv.cluster.service_user}")
        out += [f"move aside {inv.cluster.ei_home}/lib/{n} (another version of the driver)"
                for n in self.move_aside]
        out += [c.describe() for c in self.files]
        if self.chown:
            out.append(f"chown -R {inv.cluster.service_user} {inv.cluster.ei_home}")
        out += [f"{p}: only the admin password seed changed: no restart (the admin step "
                "rotates it in the user store)" for p in self.seed_only]
        return out


def _wanted_mode(rel: str) -> int:
    return 0o600 if rel in SECRET_FILES else 0o644


def meta_as_wanted(inv: Inventory, f: NodeFacts) -> bool:
    user = inv.cluster.service_user
    return all(st is not None and (st.owner, st.group, st.mode) == (user, user, _wanted_mode(rel))
               for rel, st in f.conf_state.items())


def plan_node(inv: Inventory, node: Host, f: NodeFacts, jar: bytes) -> NodePlan:
    """Pure: from the node's facts to the writes it needs. Raises ei_xml.XmlConfigError.

    With metadata-only facts (no file contents: the caller saw that the files are what we
    rendered last time from the same inputs) only the driver and ownership are planned.
    """
    cl = inv.cluster
    user = cl.service_user
    specs: list[FileSpec] = []
    states: dict[str, FileState | None] = {}
    wanted: dict[str, bytes] = {}
    membership = False
    contents = any(data is not None for data in f.conf.values())
    if contents:
        missing = [rel for rel, data in f.conf.items() if data is None]
        if missing:
            raise ei_xml.XmlConfigError(missing[0], "", f"{conf_dir(inv)}/{missing[0]} is "
                                        "missing on the node: is EI_HOME a complete EI 6.x install?")
        wanted = ei_xml.render_node_config(dict(f.conf), node_params(inv, node))
        wanted = vault.config_files(inv, wanted)  # the passwords as Secure Vault aliases
        specs = [FileSpec(f"{conf_dir(inv)}/{rel}", data, user, user, _wanted_mode(rel),
                          rel in SECRET_FILES) for rel, data in wanted.items()]
        states = {f"{conf_dir(inv)}/{rel}": st for rel, st in f.conf_state.items()}
        old_axis2, new_axis2 = f.conf[MEMBERSHIP_FILE], wanted[MEMBERSHIP_FILE]
        # the cluster itself (clustering on, its domain) changed, not only its member list:
        # a member list grows or shrinks rolling (steps/membership), a domain cannot
        membership = old_axis2 != new_axis2 and _members(old_axis2)[:2] != _members(new_axis2)[:2]
    jar_name = cl.jdbc_driver.name
    jar_sha = hashlib.sha256(jar).hexdigest()
    lib = jdbc.plan_lib(jar_name, jar_sha, driver_class(inv), f.lib)
    if lib.install:
        specs.append(FileSpec(f"{cl.ei_home}/lib/{jar_name}", jar, user, user, 0o644))
    if jar_name in f.lib:  # the lib probe gives no owner/mode: only content matters there
        states[f"{cl.ei_home}/lib/{jar_name}"] = FileState(f.lib[jar_name], 0o644, user, user)
    changes = remote.plan_files(specs, states)
    rendered = {rel: hashlib.sha256(data).hexdigest() for rel, data in wanted.items()} \
        if contents else {}
    user_mgt = f"{conf_dir(inv)}/{ei_xml.USER_MGT}"
    seed_only = tuple(c.spec.path for c in changes if c.spec.path == user_mgt and c.content_changed
                      and ei_xml.admin_seed_only_change(f.conf.get(ei_xml.USER_MGT),
                                                        c.spec.content))
    return NodePlan(files=changes, create_user=not f.user_exists,
                    chown=bool(f.not_owned) or not f.user_exists, move_aside=lib.move_aside,
                    membership_changed=membership,
                    originals={f"{conf_dir(inv)}/{k}": v for k, v in f.conf.items()},
                    rendered=rendered, seed_only=seed_only)


def _members(axis2: bytes | None) -> tuple:
    """(domain, members) of an axis2.xml, to tell a membership change from other edits."""
    if not axis2:
        return ()
    from lxml import etree
    try:
        root = etree.fromstring(axis2)
    except etree.XMLSyntaxError:
        return ()
    cl = root.find("clustering")
    if cl is None:
        return ()
    dom = [p.text for p in cl.findall("parameter") if p.get("name") == "domain"]
    hosts = tuple((m.findtext("hostName"), m.findtext("port")) for m in cl.iter("member"))
    return (cl.get("enable"), tuple(dom), hosts)
