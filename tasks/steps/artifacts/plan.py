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


def ok_pattern(a: Artifact) -> str:
    """grep -E: the node's line that says this artifact deployed."""
    n = _name(a.name)
    return {"bpel": f"Successfully deployed BPEL package .* from {n}$",
            "humantask": f"Successfully deployed HumanTask package .* from {n}$",
            "bpmn": f"Successfully deployed BPMN archive {n} as deployment",
            "carbonapp": f"Successfully Deployed Carbon Application : {_name(a.app)}[{{]"}[a.kind]


def fail_pattern(name: str) -> str:
    """grep -E: an ERROR line of the node about this file."""
    return f" ERROR .*[ /:]{_name(name)}([ .(]|$)"


def gone_pattern(rel: str) -> str:
    """grep -E: the node's line that says the file was undeployed."""
    stem = rel.rsplit("/", 1)[-1].rsplit(".", 1)[0]
    return f"[Uu]n[Dd]eploying .*[ /(]{_name(stem)}[ .)]"
