"""`fab configure`: on each EI node, the JDBC driver and the profile's cluster configuration.

Facts (one round trip per node): EI_HOME, service user, ownership, JDK, lib/ jars, the current
bytes of every config file we edit, the pending-restart mark. Plan: the XML edits are made in
memory by `ei_xml.render_node_config` on the node's own files (so comments and the user's other
settings stay); only files whose bytes, owner or mode differ are written, atomically, with a
0600 backup. Any change marks the node as needing a restart, on the node itself.
"""
from __future__ import annotations

import base64
import dataclasses
import functools
import hashlib
import json
import posixpath
from dataclasses import dataclass, field
from pathlib import Path

from invoke import task

from ..wso2 import ei_xml, jdbc
from ..engine import remote
from . import cluster_ca, node_keys, services, systemd, vault
from .vault import step as vault_step
from ..wso2 import vault as wso2_vault
from .artifacts import plan as artifact_plan
from ..engine.cli import COMMON_HELP, session
from ..engine.inventory import Host, Inventory
from ..engine.remote import FileSpec, FileState, HostSession, q
from ..engine.report import StepResult
from ..engine.runner import Run

# files holding passwords: never world-readable (WSO2 needs them in clear without secure vault)
SECRET_FILES = {"datasources/master-datasources.xml", "datasources/bps-datasources.xml",
                "datasources/activiti-datasources.xml", "user-mgt.xml"}
MEMBERSHIP_FILE = "axis2/axis2.xml"


def conf_dir(inv: Inventory) -> str:
    return f"{inv.cluster.profile_home}/conf"


def jdbc_url(inv: Inventory, database: str) -> str:
    """Scheme and default options follow the driver in the jar (jdbc.url_style);
    database.jdbc_options replaces the default extras, never the tool's own TLS options."""
    d = inv.database
    return jdbc.jdbc_url(driver_info(inv), d.hostname, d.port, database, d.jdbc_options,
                         cluster_ca.jdbc_ca(inv))


def driver_info(inv: Inventory) -> jdbc.DriverInfo:
    return jdbc.driver_info(inv.cluster.jdbc_driver, inv.cluster.jdbc_driver_class)


def driver_class(inv: Inventory) -> str:
    return inv.cluster.jdbc_driver_class or jdbc.driver_class_of(inv.cluster.jdbc_driver)


def node_params(inv: Inventory, node: Host) -> ei_xml.NodeXmlParams:
    """Everything node-specific that goes into its XML files."""
    d, cl = inv.database, inv.cluster
    pw, drv = inv.secrets.db_password, driver_class(inv)

    def ds(name: str, jndi: str, db: str, desc: str) -> ei_xml.DataSourceSpec:
        return ei_xml.DataSourceSpec(name, jndi, jdbc_url(inv, db), d.user, pw, drv, desc)

    return ei_xml.NodeXmlParams(
        node_ip=node.address,
        member_ips=tuple(n.address for n in inv.nodes),
        hazelcast_port=cl.hazelcast_port,
        domain=cl.domain,
        node_id=node.name,
        registry_read_only=node.index != 1,
        service_name=cl.service_name,
        console_name=cl.console_name,
        port_offset=cl.port_offset,
        http_proxy_port=80,
        https_proxy_port=443,
        user_db=ds("WSO2_USER_DB", "jdbc/WSO2UMDB", d.user_db,
                   "The datasource used for user manager"),
        registry_db=ds("WSO2REGISTRY_DB", "jdbc/WSO2RegistryDB", d.registry_db,
                       "The datasource used for config/governance registry mount"),
        local_db=ds("WSO2_CARBON_DB", "jdbc/WSO2CarbonDB", d.local_db(node.index),
                    "The datasource used for registry and user manager"),
        bps_db=ds("BPS_DS", "bpsds", d.bps_db, ""),
        activiti_db=ds("ACTIVITI_DB", "jdbc/ActivitiDB", d.activiti_db, ""),
        admin_username=cl.admin_user,
        admin_password=inv.secrets.admin_password,
        keystore=cluster_ca.keystore_xml_params(inv),
    )


# --------------------------------------------------------------------------- facts


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


CONFIG_STATE = f"{remote.STATE_DIR}/configure.state"
ADMIN_STATE = f"{remote.STATE_DIR}/admin-password.state"


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
        # (tasks/systemd.py): in this same read, so a no-op deploy spends nothing on them
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
    return (ei_xml.code_bytes() + Path(__file__).read_bytes()
            + Path(wso2_vault.__file__).read_bytes())


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


# --------------------------------------------------------------------------- plan


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
        membership = old_axis2 != new_axis2 and _members(old_axis2) != _members(new_axis2)
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


def remember_script(state: str) -> str:
    b64 = base64.b64encode(state.encode()).decode()
    return (f"mkdir -p {remote.STATE_DIR}; umask 077; echo {b64} | base64 -d > "
            f"{CONFIG_STATE}.tmp && mv -f {CONFIG_STATE}.tmp {CONFIG_STATE}\n")


def apply_script(inv: Inventory, plan: NodePlan, stamp: str, remember: str = "") -> str:
    cl = inv.cluster
    user, home = q(cl.service_user), q(cl.ei_home)
    lines = ["set -e"]
    if plan.create_user:
        lines.append(f"id -u {user} >/dev/null 2>&1 || useradd --system --user-group "
                     f"--home-dir {home} --no-create-home --shell /usr/sbin/nologin {user}")
    if plan.chown:  # first: the files below are then written as their owner, the service user
        lines.append(f"chown -R {user}:{user} {home}")
    for name in plan.move_aside:
        # lib/ is the service user's: read and removed as that user, kept by root
        src = q(f"{cl.ei_home}/lib/{name}")
        dst = q(f"{remote.BACKUP_DIR}/lib-{name}.{stamp}~")
        lines.append(f"(umask 077; mkdir -p {remote.BACKUP_DIR}); "
                     f"runuser -u {user} -- cat -- {src} > {dst}; "
                     f"runuser -u {user} -- rm -f -- {src}")
    script = "\n".join(lines) + "\n"
    if plan.files:
        script += remote.write_files_script(plan.files, stamp, keep=inv.cluster.backups_keep)
    reasons = plan.restart_reasons
    if reasons:
        script += remote.pending_restart_script(f"{stamp} configure: {' '.join(reasons)}")
    if remember:
        script += remember_script(remember)
    return script


# --------------------------------------------------------------------------- install


def install_from_zip(run: Run, s: HostSession) -> str:
    """Upload the EI zip once (checksum-verified) and unpack it as EI_HOME."""
    cl = run.inv.cluster
    data = cl.ei_zip.read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    staged = f"/var/tmp/bps-deploy-{sha[:16]}.zip"
    have = remote.run_script(s, f"sha256sum {staged} 2>/dev/null | cut -d' ' -f1", root=False)
    if have.stdout.strip() != sha:
        with s.c.sftp() as sftp:
            sftp.put(str(cl.ei_zip), staged)
    parent, name = posixpath.split(cl.ei_home)
    script = f"""set -e
[ "$(sha256sum {staged} | cut -d' ' -f1)" = {sha} ] || {{ echo 'upload of {cl.ei_zip.name} corrupted' >&2; exit 1; }}
work=$(mktemp -d {q(parent)}/.bps-unpack.XXXXXX)
trap 'rm -rf "$work"' EXIT
if command -v unzip >/dev/null; then unzip -q {staged} -d "$work"; else python3 -m zipfile -e {staged} "$work"; fi
top=$(ls -A "$work")
[ "$(echo "$top" | wc -l)" = 1 ] || {{ echo 'zip must hold one top directory' >&2; exit 1; }}
[ -d "$work/$top/wso2/business-process" ] || {{ echo 'zip holds no wso2/business-process: not an EI 6.x distribution' >&2; exit 1; }}
find "$work/$top" -name '*.sh' -exec chmod +x {{}} +
mv "$work/$top" {q(cl.ei_home)}
rm -f {staged}
"""
    if run.check:
        return f"would install {cl.ei_zip.name} as {cl.ei_home}"
    remote.run_script(s, script, check=True, what=f"install of {cl.ei_zip.name}")
    return f"installed {cl.ei_zip.name} as {cl.ei_home}"


# --------------------------------------------------------------------------- step


@dataclass
class ConfigureOutcome:
    ok: bool
    changed: set[str] = field(default_factory=set)  # nodes whose config changed
    restart: set[str] = field(default_factory=set)  # ... in what a running node reads
    admin_states: dict[str, str] = field(default_factory=dict)  # node -> admin.ADMIN_STATE
    membership_changed: bool = False
    # each node's process state, read in the same round trip as its config facts
    states: dict[str, services.NodeState] = field(default_factory=dict)
    raw: dict[str, dict] = field(default_factory=dict)  # node -> that read (artifacts, node_keys)
    keys_changed: set[str] = field(default_factory=set)  # nodes given keys (the vault re-reads)


def configure_step(run: Run, nodes: list[Host] | None = None,
                   step: str = "configure") -> ConfigureOutcome:
    inv = run.inv
    nodes = nodes or list(inv.nodes)
    jar = inv.cluster.jdbc_driver.read_bytes()
    outcome = ConfigureOutcome(True)

    def one(s: HostSession) -> StepResult:
        notes = []
        probes = node_probes(inv)
        probes.update(services.state_probes(inv, s.host.address, https=False))
        if inv.artifacts:  # fab artifacts' facts ride on this read (steps/artifacts/plan.py)
            probes.update(artifact_plan.probes(inv))
        raw = remote.read_facts(s, probes)
        outcome.raw[s.name] = raw
        outcome.states[s.name] = services.parse_state(raw)
        facts = parse_node_facts(raw)
        outcome.admin_states[s.name] = facts.admin_state
        jdk = services.jdk_problem(facts.java, inv.cluster.java_home)
        if jdk:  # before anything is installed or written
            return StepResult(s.name, step, "failed", f"{jdk} (nothing written)")
        if not facts.ei_home:
            if inv.cluster.ei_zip is None:
                return StepResult(s.name, step, "failed",
                                  f"EI_HOME {inv.cluster.ei_home} is missing on this node: "
                                  "install EI there, or set cluster.ei_zip to let the tool do it")
            notes.append(install_from_zip(run, s))
            if run.check:
                return StepResult(s.name, step, "changed", notes[0],
                                  changes=["configure the unpacked EI (after install)"])
            facts = parse_node_facts(remote.read_facts(s, node_probes(inv)))
        digest = render_digest(inv, s.host)
        fetched: dict = {}
        if not (unchanged_since_last_render(facts, digest) and meta_as_wanted(inv, facts)):
            # something differs from what we wrote last time: fetch the files and edit them
            fetched = remote.read_facts(s, node_probes(inv, contents=True))
            full = parse_node_facts(fetched)
            full.remembered = facts.remembered
            facts = full
        try:
            plan = plan_node(inv, s.host, facts, jar)
        except ei_xml.XmlConfigError as e:
            return StepResult(s.name, step, "failed", f"{e} (nothing written)")
        if fetched and plan.files:  # before any alias is written (steps/vault/step.py)
            carbon = f"{conf_dir(inv)}/carbon.xml"
            problem = vault.precheck(inv, fetched, next(
                (c.spec.content for c in plan.files if c.spec.path == carbon),
                facts.conf.get("carbon.xml")))
            if problem:
                return StepResult(s.name, step, "failed", f"{problem} (nothing written)")
        remember = remembered_state(digest, plan.rendered) if plan.rendered else ""
        sysplan = systemd.plan_system(inv, s.host, facts.system, outcome.states[s.name].unit) \
            if facts.system else systemd.SystemPlan()
        if sysplan.error:
            return StepResult(s.name, step, "failed", f"{sysplan.error} (nothing written)")
        for w in sysplan.warnings:
            run.rep.line(s.name, f"  !!! {w}", "warn")
        if plan.empty and remember and remember.strip() != facts.remembered \
                and not run.check:
            remote.run_script(s, remember_script(remember), check=True, what="remember")
        jdk = facts.java.replace('"', "")
        said = "".join(f"; {n}" for n in sysplan.notes + [f"!!! {w}" for w in sysplan.warnings])
        if plan.membership_changed:
            outcome.membership_changed = True
        if plan.empty and sysplan.empty:
            msg = "configuration up to date" + (f"; {jdk}" if jdk else "") + said
            if facts.pending:
                msg += "; restart still pending from an earlier run"
            return StepResult(s.name, step, "ok", msg)
        diffs = run.diffs_for(s, plan.files + sysplan.files,
                              {**plan.originals, **sysplan.originals})
        changes = notes + plan.describe(inv) + sysplan.describe()
        if not run.check:
            script = apply_script(inv, plan, run.stamp, remember) if not plan.empty else ""
            script += systemd.system_script(sysplan, run.stamp, inv.cluster.backups_keep)
            if sysplan.restart_reasons:
                script += remote.pending_restart_script(
                    f"{run.stamp} configure: {' '.join(sysplan.restart_reasons)}")
            res = remote.run_script(s, script, check=True, what="configure write")
            if sysplan.apply_sysctl:
                left = systemd.sysctl_differences(systemd.parse_sysctl_after(res.stdout))
                if left:
                    said += (f"; !!! the kernel did not take every setting of "
                             f"{systemd.SYSCTL_PATH}: " + "; ".join(left))
        outcome.changed.add(s.name)  # in check mode: would change
        if plan.restart_reasons or sysplan.restart_reasons:
            outcome.restart.add(s.name)
        return StepResult(s.name, step, "changed",
                          ("would change" if run.check else "changed") + f"; {jdk}" + said,
                          changes=changes, diffs=diffs)

    results = run.each(nodes, step, one)
    outcome.ok = all(r.status in ("ok", "changed") for r in results.values())
    node_keys.keys_step(run, outcome, run.alive(nodes))  # each node's own keys (cluster CA)
    # after the keys: the values are encrypted for the keystore as it now is
    vault_step.vault_step(run, outcome, run.alive(nodes))
    return outcome


@task(help={"check": COMMON_HELP["check"], "diff": COMMON_HELP["diff"],
            "parallel": COMMON_HELP["parallel"], "on": "nodes to configure (default: all)"})
def configure(c, check=False, diff=False, parallel=16, on=None):
    """Copy the JDBC driver and write each node's datasource, registry and cluster config."""
    with session(c, check=check, diff=diff, parallel=parallel, title="CONFIGURE") as run:
        nodes = run.inv.select(on) if on else list(run.inv.nodes)
        configure_step(run, [n for n in nodes if n.role == "node"])
