"""`fab backup`'s folder on this machine: written atomically, private, checksummed, verified.

    backups/<run id>/            0700 (backups/ too)
      manifest.json              what is in it: the databases, each file with its host,
                                 path, owner, group, mode and sha256, the files that were absent
      databases.sql.gz           one mysqldump --single-transaction of every cluster database
                                 (one consistent snapshot), with DROP/CREATE DATABASE
      files/<host>/<path, / as %>
      SHA256SUMS                 sha256 of every other file (`sha256sum -c SHA256SUMS` works)

Every file 0600. The folder is built as `.<run id>.partial` and renamed when complete, so a
folder with the run id's name is always a whole backup. `verify` is what `fab restore`
checks before anything stops.
"""
from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

FORMAT = 1
MANIFEST = "manifest.json"
SUMS = "SHA256SUMS"
DUMP = "databases.sql.gz"
DUMP_DONE = b"-- Dump completed"  # mysqldump's last line: the dump was not cut short


class BackupInvalid(Exception):
    """A backup folder that must not be restored: the message lists every problem."""


def stored_name(host: str, path: str) -> str:
    return f"files/{host}/{path.lstrip('/').replace('/', '%')}"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _write_private(path: Path, data: bytes) -> None:
    old = os.umask(0o077)  # every folder made on the way is 0700 too
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    finally:
        os.umask(old)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


class Writer:
    """Build a backup folder under `root`; `finish` makes it appear whole, `abandon` removes it."""

    def __init__(self, root: Path, run_id: str):
        old = os.umask(0o077)
        try:
            root.mkdir(mode=0o700, parents=True, exist_ok=True)
        finally:
            os.umask(old)
        os.chmod(root, 0o700)
        self.final = root / run_id
        if self.final.exists():
            raise FileExistsError(f"{self.final} already exists")
        self.tmp = root / f".{run_id}.partial"
        shutil.rmtree(self.tmp, ignore_errors=True)
        self.tmp.mkdir(mode=0o700)
        self.sums: dict[str, str] = {}

    def put(self, rel: str, data: bytes) -> str:
        _write_private(self.tmp / rel, data)
        self.sums[rel] = sha256(data)
        return self.sums[rel]

    def finish(self, manifest: dict) -> Path:
        self.put(MANIFEST, json.dumps(manifest, indent=1, sort_keys=True).encode() + b"\n")
        sums = "".join(f"{h}  {rel}\n" for rel, h in sorted(self.sums.items()))
        _write_private(self.tmp / SUMS, sums.encode())
        os.rename(self.tmp, self.final)
        return self.final

    def abandon(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)


@dataclass
class Backup:
    folder: Path
    manifest: dict
    dump: bytes | None  # gzip bytes, or None when no database existed

    def file(self, rel: str) -> bytes:
        return (self.folder / rel).read_bytes()

    @property
    def size(self) -> int:
        return sum(p.stat().st_size for p in self.folder.rglob("*") if p.is_file())


def parse_sums(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        h, sep, rel = line.partition("  ")
        if sep and len(h) == 64:
            out[rel] = h
    return out


def verify(folder: Path) -> Backup:
    """Every checksum, before anything else: raises BackupInvalid naming every problem."""
    if not (folder / SUMS).is_file() or not (folder / MANIFEST).is_file():
        raise BackupInvalid(f"{folder} is not a backup made by `fab backup` (no {SUMS} or "
                            f"{MANIFEST}); nothing was changed")
    sums = parse_sums((folder / SUMS).read_text(errors="replace"))
    problems = []
    present = {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()} - {SUMS}
    for rel in sorted(present - set(sums)):
        problems.append(f"{rel} is not in {SUMS}")
    for rel, h in sorted(sums.items()):
        p = folder / rel
        if rel not in present:
            problems.append(f"{rel} is missing")
        elif p.is_symlink() or sha256(p.read_bytes()) != h:
            problems.append(f"{rel}: sha256 does not match {SUMS} (corrupted or changed)")
    if problems:
        raise BackupInvalid(f"backup {folder} failed its checksums, so nothing was stopped or "
                            "changed:\n  " + "\n  ".join(problems))
    manifest = json.loads((folder / MANIFEST).read_text())
    if manifest.get("format") != FORMAT:
        raise BackupInvalid(f"{folder}: backup format {manifest.get('format')!r}, this tool "
                            f"reads {FORMAT}; nothing was changed")
    for f in manifest["files"]:
        if sha256((folder / f["name"]).read_bytes()) != f["sha256"]:
            problems.append(f"{f['name']}: not the file the manifest describes")
    dump = None
    if manifest["databases"]["names"]:
        try:
            dump = (folder / DUMP).read_bytes()
            tail = gzip.decompress(dump)[-200:]
        except (OSError, EOFError) as e:
            raise BackupInvalid(f"{folder}/{DUMP} does not decompress ({e}); nothing was "
                                "changed") from None
        if DUMP_DONE not in tail:
            problems.append(f"{DUMP} does not end with mysqldump's '-- Dump completed'")
    if problems:
        raise BackupInvalid(f"backup {folder} is not whole, so nothing was stopped or "
                            "changed:\n  " + "\n  ".join(problems))
    return Backup(folder, manifest, dump)
