"""The local artifacts folder: each archive recognised by extension and content, and checked.

Checked before any host is touched (a refusal names every bad file and why): a zip that is not
whole (bad central directory or CRC), a BPEL zip without deploy.xml, a HumanTask zip without
htconfig.xml, a .bar without a process definition (.bpmn / .bpmn20.xml), a .car without
artifacts.xml (or without its application's name and version), and two archives that would be
one package on the nodes (the product names a BPEL/HumanTask package after its file, so
HelloWorld.zip in bpel/ and a HelloWorld.zip that is HumanTask cannot both live; and two .car
with one application name_version).
"""
from __future__ import annotations

import hashlib
import io
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

from lxml import etree

# kind -> (folder under repository/deployment/server, extension, descriptor)
KINDS = {
    "bpel": ("bpel", ".zip", "deploy.xml"),
    "humantask": ("humantasks", ".zip", "htconfig.xml"),
    "bpmn": ("bpmn", ".bar", None),
    "carbonapp": ("carbonapps", ".car", "artifacts.xml"),
}
FOLDERS = tuple(k[0] for k in KINDS.values())
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,200}")


class ArtifactError(Exception):
    """The local folder cannot be deployed; the message lists every problem."""


@dataclass(frozen=True)
class Artifact:
    kind: str
    name: str  # the file name, as on the node
    data: bytes
    app: str = ""  # a Carbon app's name_version (what the product logs)

    @property
    def folder(self) -> str:
        return KINDS[self.kind][0]

    @property
    def rel(self) -> str:  # bpel/HelloWorld.zip: its place under deployment/server
        return f"{self.folder}/{self.name}"

    @property
    def package(self) -> str:
        return self.name.rsplit(".", 1)[0]

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


def _kind_of(names: list[str], ext: str) -> str | None:
    """What a whole archive is, from its entries."""
    if ext == ".bar":
        return "bpmn"
    if ext == ".car":
        return "carbonapp"
    if "deploy.xml" in names:
        return "bpel"
    if "htconfig.xml" in names:
        return "humantask"
    return None


def read_artifact(path: Path, data: bytes | None = None) -> tuple[Artifact | None, str | None]:
    """Pure but for the read: (artifact, None) or (None, why it is refused)."""
    data = path.read_bytes() if data is None else data
    ext = path.suffix.lower()
    if not _NAME_RE.fullmatch(path.name):
        return None, "file name must be letters, digits, '_', '.', '+' or '-'"
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            bad = z.testzip()
            if bad is not None:
                return None, f"corrupt archive: {bad} fails its CRC check"
            names = z.namelist()
            kind = _kind_of(names, ext)
            if kind is None:
                return None, ("a .zip must be a BPEL package (deploy.xml at its root) or a "
                              "HumanTask package (htconfig.xml at its root): neither found")
            desc = KINDS[kind][2]
            if kind == "bpmn":
                if not any(n.endswith((".bpmn", ".bpmn20.xml")) for n in names):
                    return None, "a .bar without a process definition (.bpmn or .bpmn20.xml)"
                return Artifact(kind, path.name, data), None
            if desc not in names:
                return None, f"a .car without {desc} at its root"
            try:
                root = etree.fromstring(z.read(desc))
            except etree.XMLSyntaxError as e:
                return None, f"{desc} is not well-formed XML: {e}"
            app = ""
            if kind == "carbonapp":
                arts = [a for a in root.iter("artifact") if a.get("name") and a.get("version")]
                if not arts:
                    return None, "artifacts.xml names no <artifact> with a name and version"
                app = f"{arts[0].get('name')}_{arts[0].get('version')}"
            return Artifact(kind, path.name, data, app), None
    except (zipfile.BadZipFile, EOFError, OSError, ValueError) as e:
        return None, f"corrupt archive (not a whole zip: {e})"


def load_folder(folder: Path) -> list[Artifact]:
    """Every archive in `folder` (not recursive), checked; ArtifactError lists all problems."""
    if not folder.is_dir():
        raise ArtifactError(f"artifacts folder {folder} does not exist: create it, or fix "
                            "[artifacts] dir in hosts.toml")
    problems: list[str] = []
    arts: list[Artifact] = []
    for p in sorted(folder.iterdir()):
        if p.name.startswith(".") or not p.is_file():
            continue
        if p.suffix.lower() not in (".zip", ".bar", ".car"):
            problems.append(f"{p.name}: not an artifact (.zip, .bar or .car)")
            continue
        art, why = read_artifact(p)
        if why:
            problems.append(f"{p.name}: {why}")
        else:
            arts.append(art)
    problems += clashes(arts)
    if problems:
        raise ArtifactError("the artifacts folder " + str(folder) + " cannot be deployed; no host "
                            "was touched:\n  " + "\n  ".join(problems))
    return arts


def clashes(arts: list[Artifact]) -> list[str]:
    """Pure: two archives that would be one package on the nodes."""
    out = []
    seen: dict[str, Artifact] = {}
    for a in arts:
        if a.kind == "carbonapp":
            key, keyed = a.app, f"car:{a.app}"
        else:  # BPEL and HumanTask packages are both named after their file
            key = a.package
            keyed = f"{'bpmn' if a.kind == 'bpmn' else 'pkg'}:{key.lower()}"
        other = seen.get(keyed)
        if other is not None:
            out.append(f"{other.name} and {a.name}: two archives with one package name "
                       f"{key!r}: keep one")
        seen.setdefault(keyed, a)
    return out
