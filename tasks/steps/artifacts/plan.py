"""Artifacts on a node: the facts (one probe in the node's existing fact read), the pure plan,
and the log lines that prove a deployment (the product's own, see lab/standin/Deployer.java).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from ...engine import remote
from ...engine.inventory import Inventory
from ...engine.remote import q
from .local import FOLDERS, Artifact

MANIFEST = f"{remote.STATE_DIR}/artifacts.manifest"
PROBE = "artifacts"
_MARK = "@@manifest"


def server_dir(inv: Inventory) -> str:
    return f"{inv.cluster.profile_home}/repository/deployment/server"


def stage_dir(inv: Inventory) -> str:
    """Uploads land here: the service user's, outside every hot-deploy folder, and on the same
    file system as them (under the profile), so putting a file in place is one rename."""
    return f"{inv.cluster.profile_home}/tmp/bps-artifacts"


def probes(inv: Inventory) -> dict[str, str]:
    """One probe for the node's fact read: sha256 of every archive in the four folders, read
    as the service user (root never reads through the user's folders), then our manifest."""
    user, server = q(inv.cluster.service_user), server_dir(inv)
    dirs = " ".join(q(f"{server}/{d}") for d in FOLDERS)
    return {PROBE: (f"if id -u {user} >/dev/null 2>&1; then runuser -u {user} -- find {dirs} "
                    "-maxdepth 1 -type f ! -name '.*' \\( -name '*.zip' -o -name '*.bar' -o "
                    "-name '*.car' \\) -exec sha256sum {} + 2>/dev/null; fi; "
                    f"echo {_MARK}; cat {MANIFEST} 2>/dev/null; true")}


@dataclass
class NodeArtifacts:
    files: dict[str, str]  # rel (bpel/x.zip) -> sha256 of what is in the hot-deploy folder
    manifest: dict[str, str]  # rel -> sha256 this tool put there


def parse(inv: Inventory, out: str) -> NodeArtifacts:
    files: dict[str, str] = {}
    manifest: dict[str, str] = {}
    prefix = server_dir(inv) + "/"
    target = files
    for line in out.splitlines():
        if line.strip() == _MARK:
            target = manifest
            continue
        sha, _, path = line.strip().partition(" ")
        path = path.strip().lstrip("*")
        if len(sha) != 64 or not path:
            continue
        target[path[len(prefix):] if path.startswith(prefix) else path] = sha
    return NodeArtifacts(files, manifest)


# --------------------------------------------------------------------------- plan


@dataclass
class ArtifactPlan:
    """What one node needs: pure, from the local artifacts and the node's facts."""

    added: list[Artifact] = field(default_factory=list)
    changed: list[Artifact] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)  # rels to undeploy (--prune)
    forget: list[str] = field(default_factory=list)  # manifest lines whose file is gone
    unchanged: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def puts(self) -> list[Artifact]:
        return self.added + self.changed

    @property
    def upload_bytes(self) -> int:
        return sum(len(a.data) for a in self.puts)

    def lines(self) -> list[str]:
        """The change lines (also what --check shows)."""
        return ([f"add {a.rel}" for a in self.added]
                + [f"update {a.rel} (the previous version goes to {remote.BACKUP_DIR})"
                   for a in self.changed]
                + [f"undeploy {r} (pruned; kept in {remote.BACKUP_DIR})" for r in self.removed])

    def listing(self) -> str:
        """--diff: the artifact list."""
        def row(word: str, items: list[str]) -> str:
            return f"  {word:9} {', '.join(items) if items else '-'}"
        return "\n".join(["artifacts:", row("added", [a.rel for a in self.added]),
                          row("changed", [a.rel for a in self.changed]),
                          row("removed", self.removed), row("unchanged", self.unchanged)])


def plan_node(arts: list[Artifact], f: NodeArtifacts, prune: bool) -> ArtifactPlan:
    p = ArtifactPlan()
    wanted = {a.rel: a for a in arts}
    for rel, a in wanted.items():
        have = f.files.get(rel)
        if have is None:
            p.added.append(a)
        elif have != a.sha256:
            p.changed.append(a)
        else:
            p.unchanged.append(rel)
    for rel, sha in sorted(f.manifest.items()):
        if rel in wanted:
            continue
        if rel not in f.files:
            p.forget.append(rel)
        elif f.files[rel] != sha:
            p.warnings.append(f"{rel} is no longer what this tool deployed (changed by hand): "
                              "not pruned; remove it yourself if it must go")
        elif prune:
            p.removed.append(rel)
        else:
            p.warnings.append(f"{rel} is deployed but no longer in the artifacts folder: "
                              "`fab artifacts --prune` undeploys it")
    return p


# --------------------------------------------------------------------------- log lines


def _name(s: str) -> str:
    return re.escape(s).replace("\\-", "-")


# The product's own lines (wso2/carbon-business-process at the 4.4.x/4.5.x used by EI 6.x,
# wso2/wso2-ode, apache/ode, wso2/carbon-kernel; see the README's Artifacts section):
# BPEL: no per-package success line; ODE logs each process it registers, new (node 1) or
# reloaded from the version node 1 made (the others):
#   org.apache.ode.bpel.engine.BpelServerImpl.register: "Registered process {ns}Name-<ver>."
#   (msgProcessRegistered in org/apache/ode/bpel/engine/Messages.java)
# HumanTask: no success line of its own (HumanTaskStore.deploy logs at DEBUG); each task's
# Axis2 service, deployed by HumanTaskStore.deploy(HumanTaskBaseConfiguration) through
# DeploymentEngine.addServiceGroup, is logged by Carbon's
#   org.wso2.carbon.core.deployment.DeploymentInterceptor: "Deploying Axis2 service: S {super-tenant}"
# Carbon app: ApplicationManager "Successfully Deployed Carbon Application : N_V {super-tenant}".
# BPMN: none (see BPMN_STARTED): BPMNDeployer logs only "Deploying BPMN archive X for tenant: T"
# before it deploys, and a worker (read-only registry) returns at once, logging nothing.
_OK = {
    "bpel": r"\{{org\.apache\.ode\.bpel\.engine\.BpelServerImpl\}} - +Registered process "
            r"\{{[^}}]*\}}{n}-[0-9]+\.$",
    "humantask": r"\{{org\.wso2\.carbon\.core\.deployment\.DeploymentInterceptor\}} - +"
                 r"Deploying Axis2 service: {n} \{{super-tenant\}}$",
    "bpmn": r"\{{org\.wso2\.carbon\.bpmn\.core\.deployment\.BPMNDeployer\}} - +"
            r"Deploying BPMN archive {n} for tenant: ",
    "carbonapp": r"Successfully Deployed Carbon Application : {n} ?[{{]",
}


def ok_pattern(a: Artifact) -> str:
    """grep -E: the node's line that says this artifact deployed (for BPMN: that node 1 took
    it up; the proof is its row in ACT_RE_DEPLOYMENT, see bpmn_rows_sql)."""
    n = {"bpel": a.logged, "humantask": a.logged, "bpmn": a.name, "carbonapp": a.app}[a.kind]
    return _OK[a.kind].format(n=_name(n))


def waits_on(rel: str, node1: bool) -> bool:
    """Whether a node logs anything for the archive at rel: a worker node (read-only
    registry) leaves a .bar alone (BPMNDeployer.deploy and .undeploy return before their
    first line); the process lives in the shared Activiti database node 1 wrote."""
    return node1 or not rel.startswith("bpmn/")


def bpmn_rows_sql(activiti_db: str, names: list[str]) -> str:
    """The real product state of a BPMN deployment: TenantRepository.deploy creates one
    ACT_RE_DEPLOYMENT row per deployment, NAME_ = the archive's base name, CATEGORY_ = the
    tenant id (repositoryService.setDeploymentCategory). Counted before and after node 1."""
    ins = ", ".join("'" + n.replace("'", "''") + "'" for n in names)
    return (f"SELECT NAME_, COUNT(*) FROM `{activiti_db}`.ACT_RE_DEPLOYMENT WHERE NAME_ IN "
            f"({ins}) AND CATEGORY_ = '-1234' GROUP BY NAME_;")


def fail_pattern(name: str) -> str:
    """grep -E: an ERROR line of the node about this file."""
    return f" ERROR .*[ /:]{_name(name)}([ .(]|$)"


def gone_pattern(rel: str) -> str:
    """grep -E: the node's line that says the file was undeployed."""
    stem = rel.rsplit("/", 1)[-1].rsplit(".", 1)[0]
    return f"[Uu]n[Dd]eploying .*[ /(]{_name(stem)}[ .)]"
