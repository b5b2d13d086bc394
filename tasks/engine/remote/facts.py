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
    """Run every probe in ONE round trip; return each probe's output and exit code.

    The file facts among them (probe_file) are read together: one `stat` and one `sha256sum`
    for all of them, not a handful of processes each (a node's no-op read has some twenty
    files; at 16 nodes sharing two CPUs in the lab that was most of the configure step)."""
    files = [(k, p) for k, p in probes.items() if isinstance(p, FileProbe)]
    batch = len(files) > 1
    parts = []
    for key, snippet in probes.items():
        if not (batch and isinstance(snippet, FileProbe)):
            parts.append(_block(key, snippet))
    if batch:
        parts.append(_block(_FILES_KEY, files_snippet([p for _, p in files])))
    res = run_script(s, "".join(parts), root=root, what="fact read")
    facts = parse_facts(res.stdout)
    if batch:
        got = facts.pop(_FILES_KEY, Fact("", 1))
        for (key, _), out in zip(files, parse_files(got.out, len(files), s.name)):
            facts[key] = Fact(out, 0)
    return facts


def _block(key: str, snippet: str) -> str:
    return (f"echo '{_BEGIN}{key}'\n( {snippet}\n) </dev/null 2>&1\n"
            f"echo \"\n{_END}{key} $?\"\n")


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


class FileProbe(str):
    """probe_file's snippet, which also says what it reads, so read_facts can batch it."""
    path: str
    content: bool

    def __new__(cls, text: str, path: str, content: bool) -> "FileProbe":
        obj = super().__new__(cls, text)
        obj.path, obj.content = path, content
        return obj


def probe_file(path: str, content: bool = False) -> str:
    """The one file fact: MISSING; NOTFILE <kind> <path>; or '<mode> <owner> <group> <sha256>'
    and, with `content`, the bytes in base64 on the next line. A link is reported, never
    followed: the path may be in a folder the service user controls."""
    p = q(path)
    read = f"stat -c '%a %U %G' {p} | tr '\\n' ' '; sha256sum < {p} | cut -d' ' -f1"
    if content:
        read += f"; base64 -w0 < {p}; echo"
    return FileProbe(f"if [ -L {p} ]; then echo NOTFILE link {p}; "
                     f"elif [ -d {p} ]; then echo NOTFILE folder {p}; "
                     f"elif [ -f {p} ]; then {read}; "
                     f"elif [ -e {p} ]; then echo NOTFILE special {p}; else echo MISSING; fi",
                     path, content)


_FILES_KEY = "@files"
# What each path is, the way probe_file says it; a regular file is then stat'ed and hashed
# with all the others at once (and its bytes read, if asked)
_FILES_LIB = """bps_k() {
    if [ -L "$2" ]; then echo "K $1 NOTFILE link $2"
    elif [ -d "$2" ]; then echo "K $1 NOTFILE folder $2"
    elif [ -f "$2" ]; then echo "K $1 FILE"; return 0
    elif [ -e "$2" ]; then echo "K $1 NOTFILE special $2"
    else echo "K $1 MISSING"; fi
    return 1
}
bps_b() { printf 'B %s ' "$1"; base64 -w0 < "$2"; echo; }
set --
"""


def files_snippet(probes: list[FileProbe]) -> str:
    """Many probe_file facts in one: lines 'K <i> FILE|MISSING|NOTFILE <kind> <path>', then
    one 'S <mode> <owner> <group>' and one 'H <sha256>' per FILE in order, and 'B <i> <base64>'
    where the bytes were asked for."""
    lines = [_FILES_LIB]
    for i, p in enumerate(probes):
        path = q(p.path)
        more = f"{{ set -- \"$@\" {path}; bps_b {i} {path}; }}" if p.content \
            else f"set -- \"$@\" {path}"
        lines.append(f"bps_k {i} {path} && {more}\n")
    lines.append("if [ $# -gt 0 ]; then\n"
                 "    stat -c 'S %a %U %G' -- \"$@\" 2>/dev/null\n"
                 "    sha256sum -- \"$@\" 2>/dev/null | sed 's/^\\\\//; s/ .*//; s/^/H /'\n"
                 "fi")
    return "".join(lines)


def parse_files(out: str, n: int, host: str = "") -> list[str]:
    """files_snippet's output as n outputs of probe_file, in order."""
    kinds: dict[int, str] = {}
    stats, hashes, data = [], [], {}
    for line in out.splitlines():
        tag, _, rest = line.partition(" ")
        if tag == "K":
            i, _, kind = rest.partition(" ")
            kinds[int(i)] = kind
        elif tag == "S":
            stats.append(rest)
        elif tag == "H":
            hashes.append(rest)
        elif tag == "B":
            i, _, b64 = rest.partition(" ")
            data[int(i)] = b64
    regular = [i for i in range(n) if kinds.get(i) == "FILE"]
    if len(kinds) != n or len(stats) != len(regular) or len(hashes) != len(regular):
        raise RemoteError(f"[{host}] the file facts came back incomplete (a file changed while "
                          "they were read?): run again")
    outs = [kinds[i] for i in range(n)]
    for i, st, h in zip(regular, stats, hashes):
        outs[i] = f"{st} {h}" + (f"\n{data[i]}" if i in data else "")
    return outs


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
