"""Files: the wanted state of a file, the pure diff against its fact, the atomic write script.

Render locally, compare sha256/owner/mode with the facts, and only then write: temp file in the
same directory, chown/chmod, backup of the old version (0600, outside the config dirs), atomic
`mv`; optional validation command with roll-back of the whole set. Remote scripts come from
tasks/scripts/*.sh (`script`), a static body plus a header of quoted parameters.
"""
from __future__ import annotations

import base64
import functools
import hashlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from .facts import PENDING_RESTART, STATE_DIR, FileState
from .transport import q

BACKUP_DIR = "/var/backups/bps-deploy"  # previous versions of the files we replaced


@dataclass
class FileSpec:
    """A file we want on a host, exactly."""

    path: str
    content: bytes
    owner: str = "root"
    group: str = "root"
    mode: int = 0o644
    sensitive: bool = False  # a secret as a whole: --diff shows only a count of lines

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()


@dataclass
class FileChange:
    spec: FileSpec
    before: FileState | None
    content_changed: bool

    def describe(self) -> str:
        if self.before is None:
            return f"create {self.spec.path}"
        if self.content_changed:
            return f"update {self.spec.path}"
        return (f"fix owner/mode of {self.spec.path} ({self.before.owner}:{self.before.group} "
                f"{self.before.mode:04o} -> {self.spec.owner}:{self.spec.group} "
                f"{self.spec.mode:04o})")


def plan_files(wanted: Iterable[FileSpec], current: dict[str, FileState | None]) -> list[FileChange]:
    """Pure: which files need writing (content) or fixing (owner/mode)."""
    changes = []
    for spec in wanted:
        st = current.get(spec.path)
        if st is None:
            changes.append(FileChange(spec, None, True))
        elif st.sha256 != spec.sha256:
            changes.append(FileChange(spec, st, True))
        elif (st.mode, st.owner, st.group) != (spec.mode, spec.owner, spec.group):
            changes.append(FileChange(spec, st, False))
    return changes


SCRIPTS_DIR = Path(__file__).resolve().parents[2] / "scripts"
BACKUPS_KEEP = 10  # backups kept per file on each host (older ones are pruned)


@functools.lru_cache(maxsize=None)
def _script_body(name: str) -> str:
    return (SCRIPTS_DIR / name).read_text()


def script(name: str, **params: object) -> str:
    """A remote script from tasks/scripts/NAME: a header of quoted assignments for its
    parameters, then the static body (what shellcheck checks is what runs)."""
    header = "".join(f"{k}={q(str(v))}\n" for k, v in params.items())
    return header + _script_body(name)


def backups_lib(stamp: str, keep: int = BACKUPS_KEEP) -> str:
    """tasks/scripts/backups.sh for this run: backup_name, prune_backups."""
    return script("backups.sh", BACKUP_DIR=BACKUP_DIR, STAMP=stamp, KEEP=int(keep))


def write_files_script(changes: list[FileChange], stamp: str,
                       validate: str | None = None, keep: int = BACKUPS_KEEP) -> str:
    """A script that applies `changes` atomically; with `validate`, rolls all back on failure.

    Each file: temp file in the same dir, written and checked by the file's owner -> owner/mode
    -> backup of the old file (read by the owner, kept by root, 0600) -> mv. A file the service
    user owns is only ever touched as that user (see scripts/files.sh), so an owner/mode fix of
    such a file is a rewrite. If anything fails (disk full, validation), every file already
    replaced is restored from its backup with its old owner and mode (or removed if it was new)
    and the script exits non-zero.
    """
    lines = [backups_lib(stamp, keep) + script("files.sh")]
    for ch in changes:
        sp = ch.spec
        if ch.content_changed or sp.owner != "root":
            b64 = base64.encodebytes(sp.content).decode()
            lines.append(f"stage {q(sp.owner)} {q(sp.group)} {sp.mode:o} {q(sp.path)} "
                         f"{sp.sha256} <<'__BPS_EOF__'\n{b64}__BPS_EOF__")
            old = ch.before
            lines.append(f"commit {q(sp.owner)} {q(sp.path)}" +
                         (f" {old.mode:o} {q(old.owner)} {q(old.group)}" if old else ""))
        else:
            lines.append(f"fix_mode {q(sp.path)} {q(sp.owner)} {q(sp.group)} {sp.mode:o}")
    if validate:
        lines += [f"if ! vout=$( {validate} 2>&1 ); then echo \"$vout\" >&2; "
                  "echo 'validation failed: previous files restored' >&2; exit 3; fi"]
    lines.append("prune")
    return "\n".join(lines) + "\n"


def utc_stamp() -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())


# --------------------------------------------------------------------------- shared blocks


def managed_block(text: str, block: list[str], marker: str = "bps-deploy") -> str:
    """Pure: put `block` between our markers in `text`; other lines untouched; idempotent."""
    begin, end = f"# BEGIN {marker} (managed, do not edit)", f"# END {marker}"
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    body = [begin, *block, end]
    if begin in lines and end in lines[lines.index(begin):]:
        i = lines.index(begin)
        j = lines.index(end, i)
        lines[i:j + 1] = body if block else []
    elif block:
        lines += body
    return "\n".join(lines) + "\n"


def block_change(path: str, current: bytes | None, state: FileState | None,
                 block: list[str], marker: str, legacy: tuple[str, ...] = ()) -> list[FileChange]:
    """Pure: the write that puts `block` between our markers in a text file (an empty block
    removes ours), keeping the file's owner and mode; [] when nothing changes. Blocks under
    the `legacy` markers (our older names for it) are removed in the same write."""
    text = (current or b"").decode("utf-8", "replace")
    new = text
    for old in legacy:
        new = managed_block(new, [], old)
    new = managed_block(new, block, marker)
    if new == text or (current is None and not block):
        return []
    spec = FileSpec(path, new.encode(), state.owner if state else "root",
                    state.group if state else "root", state.mode if state else 0o644)
    return [FileChange(spec, state, True)]


def pending_restart_script(reason: str) -> str:
    """Script lines that mark a node as needing a restart (kept until a healthy restart)."""
    return (f"mkdir -p {STATE_DIR}; echo {q(reason)} >> {PENDING_RESTART}; "
            f"chmod 600 {PENDING_RESTART}\n")


def clear_pending_script() -> str:
    return f"rm -f {PENDING_RESTART}\n"
