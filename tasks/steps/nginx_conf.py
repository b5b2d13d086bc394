"""Pure NGINX config text helpers: a small tokenizer, the structure checks for `nginx_extra`
and the rendered vhosts, and a parser of `nginx -T` output (server blocks with their listen
ports and server names). No I/O here: everything is tested with captured text.

The tokenizer follows nginx's own rules (ngx_conf_read_token) closely enough for these checks:
`#` starts a comment only where a token could start, '…' and "…" are strings in which `\\`
escapes the next character, `\\` escapes outside strings too, and `${name}` inside a word is a
variable, not a block.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field


class ConfSyntaxError(ValueError):
    """The text is not a well-formed nginx fragment; str() says what and on which line."""


@dataclass(frozen=True)
class Token:
    kind: str  # "word" | "string" | "{" | "}" | ";"
    value: str
    line: int


_ESCAPES = {'"': '"', "'": "'", "\\": "\\", "t": "\t", "r": "\r", "n": "\n"}


def tokenize(text: str) -> list[Token]:
    """Tokens of an nginx config text. Raises ConfSyntaxError for an unterminated string."""
    out: list[Token] = []
    i, n, line = 0, len(text), 1
    while i < n:
        ch = text[i]
        if ch == "\n":
            line += 1
            i += 1
        elif ch in " \t\r":
            i += 1
        elif ch == "#":
            while i < n and text[i] != "\n":
                i += 1
        elif ch in "{};":
            out.append(Token(ch, ch, line))
            i += 1
        elif ch in "\"'":
            start, i, buf = line, i + 1, []
            while True:
                if i >= n:
                    raise ConfSyntaxError(f"line {start}: string opened with {ch} is never "
                                          "closed")
                c = text[i]
                if c == "\\" and i + 1 < n:
                    nxt = text[i + 1]
                    buf.append(_ESCAPES.get(nxt, "\\" + nxt))  # as nginx: others kept
                    line += nxt == "\n"
                    i += 2
                    continue
                if c == ch:
                    i += 1
                    break
                line += c == "\n"
                buf.append(c)
                i += 1
            out.append(Token("string", "".join(buf), start))
        else:
            start, buf = line, []
            while i < n:
                c = text[i]
                if c == "\\" and i + 1 < n:
                    buf.append(_ESCAPES.get(text[i + 1], text[i:i + 2]))
                    i += 2
                    continue
                if c == "$" and i + 1 < n and text[i + 1] == "{":
                    j = text.find("}", i + 2)
                    if j < 0 or "\n" in text[i:j]:
                        raise ConfSyntaxError(f"line {line}: variable ${{ is never closed")
                    buf.append(text[i:j + 1])
                    i = j + 1
                    continue
                if c in " \t\r\n{};\"'":
                    break
                buf.append(c)
                i += 1
            out.append(Token("word", "".join(buf), start))
    return out


def _blocks_problem(text: str, close_past_start: str, unterminated: str) -> str | None:
    """Tokenize, then: a `}` closing a block not opened in `text`, blocks left open, text
    ending inside a directive; None when the braces and statements are well-formed."""
    try:
        toks = tokenize(text)
    except ConfSyntaxError as e:
        return str(e)
    depth = 0
    for t in toks:
        if t.kind == "{":
            depth += 1
        elif t.kind == "}":
            if depth == 0:
                return f"line {t.line}: `}}` {close_past_start}"
            depth -= 1
    if depth:
        return f"{depth} block(s) opened with `{{` are never closed"
    if toks and toks[-1].kind not in (";", "}"):
        return f"line {toks[-1].line}: {unterminated.format(value=toks[-1].value)}"
    return None


def snippet_problem(text: str) -> str | None:
    """Why an operator snippet cannot go inside a server block, or None when it can.

    It must not close a block it did not open (that would end our server block and let the
    snippet add a server of its own), must close every block it opens, and must end at a
    statement boundary (`;` or `}`), so nothing we render after it is swallowed.
    """
    return _blocks_problem(
        text, "closes the server block the snippet is placed in; a snippet may only close the "
              "blocks it opens itself",
        "the last directive ({value!r}) has no terminating `;`")


def structure_problem(text: str) -> str | None:
    """Why a whole rendered vhost file is not well-formed (unbalanced braces, ...), or None."""
    return _blocks_problem(text, "closes more blocks than were opened",
                           "the file ends inside a directive")


# --------------------------------------------------------------------------- nginx -T


@dataclass
class ServerBlock:
    file: str
    line: int
    ports: set[int] = field(default_factory=set)
    default_ports: set[int] = field(default_factory=set)  # listen ... default_server
    names: list[str] = field(default_factory=list)


_FILE_HDR = re.compile(r"^# configuration file (.+):[ \t]*\n", re.M)
_STATUS_LINE = re.compile(r"(?m)^nginx: (?:\[\w+\]|the configuration file|configuration file)"
                          r".*$")


def split_dump(text: str) -> dict[str, str]:
    """`nginx -T` output -> {file path: content}, in the order nginx printed them."""
    files: dict[str, str] = {}
    heads = list(_FILE_HDR.finditer(text or ""))
    for k, m in enumerate(heads):
        end = heads[k + 1].start() if k + 1 < len(heads) else len(text)
        # nginx's own status lines (stderr, when merged) are no config text
        body = _STATUS_LINE.sub("", text[m.end():end])
        files[m.group(1)] = body
    return files


def listen_port(args: list[str]) -> int | None:
    """The port of a `listen` directive's first argument (80 when only an address)."""
    if not args:
        return None
    a = args[0]
    if a.startswith("unix:"):
        return None
    if a.startswith("["):  # [::]:80 / [::1]
        m = re.match(r"^\[[^\]]*\](?::(\d+))?$", a)
        return int(m.group(1)) if m and m.group(1) else (80 if m else None)
    if a.isdigit():
        return int(a)
    host, _, port = a.rpartition(":")
    if host and port.isdigit():
        return int(port)
    return 80  # an address or host name alone


def parse_servers(text: str) -> list[ServerBlock]:
    """Every `server { }` block of an `nginx -T` dump with its ports and names.

    Only `listen`/`server_name` directly inside the server block count. A file that does not
    tokenize is skipped (nginx -T would have failed on it). Blocks inside `stream`/`mail` are
    skipped when that context is visible in the same file.
    """
    out: list[ServerBlock] = []
    for path, body in split_dump(text).items():
        try:
            toks = tokenize(body)
        except ConfSyntaxError:
            continue
        stack: list[str] = []  # block names
        cur: list[Token] = []  # the statement being read
        blocks: list[ServerBlock | None] = []
        for t in toks:
            if t.kind == "{":
                name = cur[0].value if cur else ""
                stack.append(name)
                if name == "server" and not ({"stream", "mail"} & set(stack[:-1])):
                    blocks.append(ServerBlock(path, cur[0].line))
                else:
                    blocks.append(None)
                cur = []
            elif t.kind == "}":
                if stack:
                    stack.pop()
                    b = blocks.pop()
                    if b is not None:
                        if not b.ports:
                            b.ports.add(80)  # nginx's default listen (as root)
                        out.append(b)
                cur = []
            elif t.kind == ";":
                b = blocks[-1] if blocks else None
                if b is not None and cur and cur[0].kind == "word":
                    args = [x.value for x in cur[1:]]
                    if cur[0].value == "listen":
                        port = listen_port(args)
                        if port is not None:
                            b.ports.add(port)
                            if "default_server" in args[1:] or "default" in args[1:]:
                                b.default_ports.add(port)
                    elif cur[0].value == "server_name":
                        b.names += args
                cur = []
            else:
                cur.append(t)
    return out


def _wildcard_matches(pattern: str, name: str) -> bool:
    p = pattern.lower()
    if p.startswith("."):
        return name == p[1:] or name.endswith(p)
    if p.startswith("*."):
        return name.endswith(p[1:])
    if p.endswith(".*"):
        return name.startswith(p[:-1])
    return False


def name_clash(other: str, ours: str) -> str | None:
    """'exact' when `other` is our name (case-insensitive), 'maybe' when a wildcard or regex
    name could match it, else None."""
    o = other.lower()
    ours = ours.lower()
    if not o or o in ("_", '""'):
        return None
    if o.startswith("~"):
        try:
            return "maybe" if re.search(other[1:], ours) else None
        except re.error:
            return "maybe"
    if "*" in o or o.startswith("."):
        return "maybe" if _wildcard_matches(o, ours) else None
    return "exact" if o == ours else None


@dataclass(frozen=True)
class Conflict:
    name: str
    port: int
    file: str
    line: int
    other_name: str
    exact: bool

    def describe(self) -> str:
        if self.exact:
            return (f"{self.file}:{self.line} also claims server_name {self.name} on port "
                    f"{self.port}: nginx serves that name from whichever file it read first and "
                    "ignores the other; remove or rename that server block")
        return (f"{self.file}:{self.line} has server_name {self.other_name} on port "
                f"{self.port}, which could match {self.name} (exact names win in nginx, so "
                "ours still serves it)")


def conflicts(servers: list[ServerBlock], ours: dict[str, set[int]],
              own_files: set[str]) -> list[Conflict]:
    """Server blocks outside `own_files` claiming one of our names on one of its ports.

    ours: {our server name: the ports our vhosts serve it on}.
    """
    found: list[Conflict] = []
    for b in servers:
        if b.file in own_files:
            continue
        for name, ports in ours.items():
            for port in sorted(b.ports & ports):
                for other in b.names:
                    kind = name_clash(other, name)
                    if kind:
                        found.append(Conflict(name, port, b.file, b.line, other,
                                              kind == "exact"))
    return found
