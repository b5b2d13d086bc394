"""Facts: many probes in ONE round trip, parsed back by markers; the one file fact.

A fact is a shell snippet (its command) plus a parser; `read_facts` runs any number of them in
one script. `probe_file` / `parse_file_probe` is the file fact every step uses: absent (None),
not a file (NotAFile, never followed or written over), or present with owner, mode, hash and,
when asked, its bytes.
"""
from __future__ import annotations

import base64
from dataclasses import dataclass, field

from .transport import HostSession, RemoteError, q, run_script

STATE_DIR = "/var/lib/bps-deploy"  # our marks on every host (pending restart, lock, checksums)
PENDING_RESTART = f"{STATE_DIR}/pending-restart"


_BEGIN = "@@BPS-FACT-BEGIN "
_END = "@@BPS-FACT-END "


@dataclass
class Fact:
    out: str
    rc: int


def read_facts(s: HostSession, probes: dict[str, str], root: bool = True) -> dict[str, Fact]:
    """Run every probe in ONE round trip; return each probe's output and exit code."""
    parts = []
    for key, snippet in probes.items():
        parts.append(f"echo '{_BEGIN}{key}'\n( {snippet}\n) </dev/null 2>&1\n"
                     f"echo \"\n{_END}{key} $?\"\n")
    res = run_script(s, "".join(parts), root=root, what="fact read")
    return parse_facts(res.stdout)


def parse_facts(text: str) -> dict[str, Fact]:
    facts: dict[str, Fact] = {}
    key = None
    buf: list[str] = []
    for line in text.split("\n"):
        if line.startswith(_BEGIN):
            key, buf = line[len(_BEGIN):], []
        elif line.startswith(_END) and key is not None:
            rc = int(line.rsplit(" ", 1)[1])
            out = "\n".join(buf)
            facts[key] = Fact(out[:-1] if out.endswith("\n") else out, rc)
            key = None
        elif key is not None:
            buf.append(line)
    return facts


class NotAFile(RemoteError):
    """A path the tool manages as a file is something else (a link, a folder, ...)."""


def probe_file(path: str, content: bool = False) -> str:
    """The one file fact: MISSING; NOTFILE <kind> <path>; or '<mode> <owner> <group> <sha256>'
    and, with `content`, the bytes in base64 on the next line. A link is reported, never
    followed: the path may be in a folder the service user controls."""
    p = q(path)
    read = f"stat -c '%a %U %G' {p} | tr '\\n' ' '; sha256sum < {p} | cut -d' ' -f1"
    if content:
        read += f"; base64 -w0 < {p}; echo"
    return (f"if [ -L {p} ]; then echo NOTFILE link {p}; "
            f"elif [ -d {p} ]; then echo NOTFILE folder {p}; "
            f"elif [ -f {p} ]; then {read}; "
            f"elif [ -e {p} ]; then echo NOTFILE special {p}; else echo MISSING; fi")


@dataclass(frozen=True)
class FileState:
    sha256: str
    mode: int
    owner: str
    group: str
    content: bytes | None = field(default=None, compare=False, repr=False)


def parse_file_probe(out: str) -> FileState | None:
    """Parse probe_file's output; a path that is not a regular file raises NotAFile, so no
    step ever writes over (or into) it."""
    lines = out.strip().split("\n")
    first = lines[0].split()
    if not first or first == ["MISSING"]:
        return None
    if first[0] == "NOTFILE":
        kind, path = first[1], " ".join(first[2:])
        raise NotAFile(f"{path} is a {kind}, not a regular file: nothing was written. The tool "
                       f"manages this path as a file; move the {kind} away and run again")
    mode, owner, group, sha = first
    data = base64.b64decode(lines[1]) if len(lines) > 1 else None
    return FileState(sha, int(mode, 8), owner, group, data)


def parse_content_probe(out: str) -> bytes | None:
    """The bytes of a file read with probe_file(path, content=True); None when missing."""
    st = parse_file_probe(out)
    return st.content if st else None


def read_file(s: HostSession, path: str) -> tuple[bytes | None, FileState | None]:
    """One round trip: a file's bytes and its owner/mode (None, None when missing)."""
    st = parse_file_probe(read_facts(s, {"file": probe_file(path, content=True)})["file"].out)
    return (st.content if st else None), st


def probe_pending() -> str:
    return f"cat {PENDING_RESTART} 2>/dev/null || true"
