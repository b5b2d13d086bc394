"""Pure XML editing of one EI 6.6.0 Business Process node's configuration (reference §4).

No I/O, no network, no clock: `render_node_config(originals, params)` maps the current bytes of
each file in `CONF_FILES` to the wanted bytes. The lead's code reads, diffs and writes them.

How the files are edited
------------------------
lxml re-serialises a whole document: it rewrites multi-line start tags onto one line
(catalina-server.xml, axis2.xml), `<a></a>` as `<a/>`, quote styles and the XML declaration. A
diff against the shipped file would then show hundreds of unrelated lines. So every file is:

1. checked with lxml (well-formed, entities not resolved, no network), errors name the line;
2. split into a small source-mapped element tree (`_Doc`): each element knows the character
   offsets of its start tag, content and end tag, so an edit replaces exactly the characters
   it must (an element's text, one attribute value) or inserts a new, escaped fragment indented
   like its siblings with the file's own line ending;
3. re-checked with lxml after the edits.

Everything else (comments, declaration, encoding, attribute order and layout, CRLF, tabs) is
left byte for byte. Each edit is "ensure" style (compare, change only if different), so
rendering its own output returns identical bytes.

Values are always escaped (`&` -> `&amp;`, `<`, `>`, and quotes in attributes) by `_esc_text`
/ `_esc_attr`; no markup is built from unescaped strings.
"""
from __future__ import annotations

import codecs
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator

from lxml import etree

from . import keystore_xml

CONF_FILES = (
    "datasources/master-datasources.xml",
    "datasources/bps-datasources.xml",
    "datasources/activiti-datasources.xml",
    "user-mgt.xml",
    "registry.xml",
    "axis2/axis2.xml",
    "bps.xml",
    "carbon.xml",
    "tomcat/catalina-server.xml",
)  # relative to <EI_HOME>/wso2/business-process/conf/

# registry.xml mount (reference §4.5)
REGISTRY_DB_CONFIG = "wso2bpsregistry"
REMOTE_INSTANCE_ID = "instanceid"
REMOTE_INSTANCE_URL = "https://localhost:9443/registry"
MOUNTS = (("/_system/config", "/_system/bpsconfig"), ("/_system/governance", "/_system/governance"))

# pool settings of the datasources we add to master-datasources.xml (reference §4.1)
NEW_DS_POOL = (
    ("maxActive", "50"),
    ("maxWait", "60000"),
    ("testOnBorrow", "true"),
    ("validationQuery", "SELECT 1"),
    ("validationInterval", "30000"),
    ("defaultAutoCommit", "false"),
)
_DEFAULT_DESCRIPTION = {
    "user": "The datasource used for user manager",
    "registry": "The datasource used for config/governance registry mount",
}
# pre-offset servlet ports in catalina-server.xml / axis2.xml (reference §1, §6.7)
HTTP_PORT, HTTPS_PORT = "9763", "9443"


# --------------------------------------------------------------------------- API types


@dataclass(frozen=True)
class DataSourceSpec:
    name: str
    jndi: str
    url: str
    username: str
    password: str
    driver_class: str
    description: str = ""

    def __repr__(self) -> str:  # never show the password in logs or tracebacks
        return (f"DataSourceSpec(name={self.name!r}, jndi={self.jndi!r}, url={self.url!r}, "
                f"username={self.username!r}, password='***', driver_class={self.driver_class!r})")


@dataclass(frozen=True)
class NodeXmlParams:
    node_ip: str                  # this node's address (localMemberHost)
    member_ips: tuple[str, ...]   # every node, in order
    hazelcast_port: int           # 4000, not offset
    domain: str                   # e.g. wso2.bps.domain
    node_id: str                  # stable per node, e.g. "node1"
    registry_read_only: bool      # False on the first node, True on the others
    service_name: str             # LB service host name -> carbon.xml HostName
    console_name: str             # LB console host name -> carbon.xml MgtHostName
    port_offset: int              # carbon.xml <Ports><Offset>
    http_proxy_port: int          # 80 -> catalina 9763 connector proxyPort (+ axis2 http)
    https_proxy_port: int         # 443 -> catalina 9443 connector proxyPort (+ axis2 https)
    user_db: DataSourceSpec       # WSO2_USER_DB, jdbc/WSO2UMDB (added to master-datasources)
    registry_db: DataSourceSpec   # WSO2REGISTRY_DB, jdbc/WSO2RegistryDB (added)
    local_db: DataSourceSpec      # WSO2_CARBON_DB, jdbc/WSO2CarbonDB (edit existing)
    bps_db: DataSourceSpec        # BPS_DS, bpsds (edit url/user/password/driver only)
    activiti_db: DataSourceSpec   # ACTIVITI_DB, jdbc/ActivitiDB (edit url/user/password/driver)
    admin_username: str
    admin_password: str = field(repr=False)
    # the node's own keystore (cluster CA); None: leave WSO2's wso2carbon.jks as it is
    keystore: keystore_xml.KeystoreXml | None = field(default=None, repr=False)


class XmlConfigError(Exception):
    """A configuration file cannot be edited; str() names the file and the element."""

    def __init__(self, file: str, element: str, message: str):
        self.file = file
        self.element = element
        self.message = message
        super().__init__(f"{file}: {message}")


def secrets_of(p: NodeXmlParams) -> list[str]:
    """The passwords written by `render_node_config`, for masking diffs and logs."""
    out: list[str] = []
    for s in (p.user_db.password, p.registry_db.password, p.local_db.password,
              p.bps_db.password, p.activiti_db.password, p.admin_password):
        if s and s not in out:
            out.append(s)
    return out


def render_node_config(originals: dict[str, bytes], p: NodeXmlParams) -> dict[str, bytes]:
    """Given the node's current bytes of each CONF_FILES entry, return the wanted bytes of each.

    Pure and deterministic; applying it to its own output returns identical bytes. Raises
    XmlConfigError (and returns nothing) if a file is missing, not well-formed or lacks an
    element we edit inside; ValueError if the parameters contradict each other.
    """
    _check_params(p)
    missing = [f for f in CONF_FILES if f not in originals]
    if missing:
        raise XmlConfigError(missing[0], "(file)",
                             f"missing from the node's files (also missing: {missing[1:]})"
                             if len(missing) > 1 else "missing from the node's files")
    out: dict[str, bytes] = {}
    for name in CONF_FILES:
        doc = _Doc(name, originals[name])
        _EDITORS[name](doc, p)
        if p.keystore is not None:
            keystore_xml.edit(name, doc, p.keystore)
        out[name] = doc.to_bytes()
    return out


def _check_params(p: NodeXmlParams) -> None:
    problems = []
    if not p.member_ips:
        problems.append("member_ips is empty")
    if len(set(p.member_ips)) != len(p.member_ips):
        problems.append(f"member_ips has duplicates: {list(p.member_ips)}")
    if p.member_ips and p.node_ip not in p.member_ips:
        problems.append(f"node_ip {p.node_ip} is not one of member_ips {list(p.member_ips)}")
    for label, port in (("hazelcast_port", p.hazelcast_port), ("http_proxy_port", p.http_proxy_port),
                        ("https_proxy_port", p.https_proxy_port)):
        if not (isinstance(port, int) and 0 < port < 65536):
            problems.append(f"{label} {port!r} is not a TCP port")
    if not (isinstance(p.port_offset, int) and 0 <= p.port_offset < 1000):
        problems.append(f"port_offset {p.port_offset!r} is not an offset")
    if p.user_db.name == p.registry_db.name or p.user_db.jndi == p.registry_db.jndi:
        problems.append("user_db and registry_db need distinct names and JNDI names")
    for label, s in (("node_ip", p.node_ip), ("domain", p.domain), ("node_id", p.node_id),
                     ("service_name", p.service_name), ("console_name", p.console_name),
                     ("admin_username", p.admin_username)):
        if not s or s != s.strip():
            problems.append(f"{label} {s!r} is empty or has surrounding spaces")
    if problems:
        raise ValueError("NodeXmlParams: " + "; ".join(problems))


# --------------------------------------------------------------------------- escaping


def _esc_text(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _esc_attr(s: str, quote: str = '"') -> str:
    s = _esc_text(s).replace("\t", "&#9;").replace("\n", "&#10;").replace("\r", "&#13;")
    return s.replace('"', "&quot;") if quote == '"' else s.replace("'", "&apos;")


_REF = re.compile(r"&(#x[0-9a-fA-F]+|#[0-9]+|amp|lt|gt|quot|apos);")
_NAMED = {"amp": "&", "lt": "<", "gt": ">", "quot": '"', "apos": "'"}


def _unescape(s: str) -> str:
    def one(m: re.Match[str]) -> str:
        r = m.group(1)
        if r.startswith("#x"):
            return chr(int(r[2:], 16))
        if r.startswith("#"):
            return chr(int(r[1:]))
        return _NAMED[r]
    return _REF.sub(one, s)


# --------------------------------------------------------------------------- source-mapped tree

_TOKEN = re.compile(
    r"(?P<comment><!--.*?-->)"
    r"|(?P<cdata><!\[CDATA\[.*?\]\]>)"
    r"|(?P<pi><\?.*?\?>)"
    r"|(?P<doctype><!DOCTYPE(?:[^\[>]|\[.*?\])*>)"
    r"|(?P<end></(?P<ename>[^\s>]+)\s*>)"
    r"|(?P<start><(?P<sname>[^\s/>!?]+)(?P<attrs>(?:\s+[^\s=/>]+\s*=\s*(?:\"[^\"]*\"|'[^']*'))*)"
    r"\s*(?P<empty>/?)>)"
    r"|(?P<text>[^<]+)",
    re.S,
)
_ATTR = re.compile(r"(?P<ws>\s+)(?P<name>[^\s=/>]+)\s*=\s*(?P<q>[\"'])(?P<value>.*?)(?P=q)", re.S)


@dataclass(eq=False)
class _Tok:
    kind: str  # "text" | "comment" | "cdata" | "pi"
    start: int
    end: int


@dataclass(eq=False)
class _El:
    qname: str
    start: int          # index of '<'
    start_end: int      # index after the start tag's '>'
    end_start: int = -1  # index of '</' (== start_end if self-closing)
    end: int = -1       # index after the end tag
    empty: bool = False
    parent: "_El | None" = None
    content: list = field(default_factory=list)  # _El and _Tok, in order
    src: str = field(default="", repr=False)      # the document text these offsets refer to

    @property
    def local(self) -> str:
        return self.qname.rpartition(":")[2]

    @property
    def prefix(self) -> str:
        return self.qname.rpartition(":")[0]

    def children(self, local: str | None = None) -> list["_El"]:
        return [c for c in self.content if isinstance(c, _El) and (local is None or c.local == local)]


@dataclass
class _New:
    """A new element to insert: serialised with escaping, indented like its siblings."""
    local: str
    text: str | None = None
    children: tuple["_New", ...] = ()
    attrs: tuple[tuple[str, str], ...] = ()


def _leaf(local: str, text: str) -> _New:
    return _New(local, text=text)


Selector = Callable[["_El"], bool]


def _sel(local: str, **attrs: str) -> Selector:
    def match(e: _El) -> bool:
        return e.local == local and all(_attr_of(e, k) == v for k, v in attrs.items())
    match.__name__ = f"<{local}{''.join(f' {k}={v!r}' for k, v in attrs.items())}>"
    return match


def _attr_of(e: _El, name: str) -> str | None:
    for m in _ATTR.finditer(e.src, e.start + 1 + len(e.qname), e.start_end):
        if m.group("name") == name:
            return _unescape(m.group("value"))
    return None


class _Doc:
    """One configuration file: its text, encoding, line ending and source-mapped tree."""

    def __init__(self, file: str, data: bytes):
        self.file = file
        if not isinstance(data, (bytes, bytearray)):
            raise XmlConfigError(file, "(file)", f"expected bytes, got {type(data).__name__}")
        self._check_wellformed(bytes(data), "file")
        self.bom = b""
        if data.startswith(codecs.BOM_UTF8):
            self.bom, data = codecs.BOM_UTF8, data[len(codecs.BOM_UTF8):]
        m = re.match(rb"<\?xml[^>]*?encoding\s*=\s*[\"']([A-Za-z0-9._-]+)[\"']", data)
        self.encoding = m.group(1).decode("ascii") if m else "utf-8"
        try:
            codecs.lookup(self.encoding)
            self.text = bytes(data).decode(self.encoding)
        except (LookupError, UnicodeDecodeError) as exc:
            raise XmlConfigError(file, "(file)", f"cannot decode as {self.encoding}: {exc}") from None
        crlf = self.text.count("\r\n")
        self.nl = "\r\n" if crlf and crlf * 2 >= self.text.count("\n") else "\n"
        self._parse()
        self.unit = self._indent_unit()

    # ---- parsing

    def _check_wellformed(self, data: bytes, what: str) -> None:
        parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                                 remove_blank_text=False, huge_tree=False)
        try:
            etree.fromstring(data, parser)
        except etree.XMLSyntaxError as exc:
            line = exc.lineno if exc.lineno is not None else "?"
            if what == "file":
                raise XmlConfigError(self.file, "(document)",
                                     f"not well-formed XML at line {line}: {exc.msg}") from None
            raise XmlConfigError(self.file, "(document)",
                                 f"internal error: edited XML is not well-formed at line {line}: "
                                 f"{exc.msg}") from None

    def _parse(self) -> None:
        text, pos, stack = self.text, 0, []
        root: _El | None = None
        top: list = []
        while pos < len(text):
            m = _TOKEN.match(text, pos)
            if m is None:  # lxml accepted the file, so this is our tokenizer's limit
                raise XmlConfigError(self.file, "(document)",
                                     f"unsupported markup at line {text.count(chr(10), 0, pos) + 1}")
            kind = next(k for k in ("comment", "cdata", "pi", "doctype", "end", "start", "text")
                        if m.group(k) is not None)
            parent_content = stack[-1].content if stack else top
            if kind == "start":
                el = _El(m.group("sname"), m.start(), m.end(), parent=stack[-1] if stack else None,
                         src=text)
                parent_content.append(el)
                if m.group("empty"):
                    el.empty, el.end_start, el.end = True, m.end(), m.end()
                else:
                    stack.append(el)
                if root is None:
                    root = el
            elif kind == "end":
                el = stack.pop()
                el.end_start, el.end = m.start(), m.end()
            elif kind != "doctype":
                parent_content.append(_Tok(kind, m.start(), m.end()))
            pos = m.end()
        if root is None or stack:
            raise XmlConfigError(self.file, "(document)", "no root element")
        self.root = root

    def _indent_unit(self) -> str:
        deltas: Counter[str] = Counter()
        for e in self.iter():
            ci, pi = self.indent_of(e), self.indent_of(e.parent) if e.parent else None
            if ci is not None and pi is not None and len(ci) > len(pi) and ci.startswith(pi):
                deltas[ci[len(pi):]] += 1
        return deltas.most_common(1)[0][0] if deltas else "    "

    def iter(self, el: _El | None = None) -> Iterator[_El]:
        el = el or self.root
        yield el
        for c in el.children():
            yield from self.iter(c)

    def to_bytes(self) -> bytes:
        out = self.bom + self.text.encode(self.encoding, errors="xmlcharrefreplace")
        self._check_wellformed(out, "result")
        return out

    def _splice(self, start: int, end: int, new: str) -> None:
        if self.text[start:end] == new:
            return
        self.text = self.text[:start] + new + self.text[end:]
        self._parse()

    # ---- reading

    def err(self, element: str, message: str) -> XmlConfigError:
        return XmlConfigError(self.file, element, message)

    def path_of(self, e: _El) -> str:
        parts = []
        while e is not None:
            parts.append(e.local)
            e = e.parent
        return "/".join(reversed(parts))

    def text_of(self, e: _El) -> str | None:
        """Unescaped text of a leaf element (None if it has child elements)."""
        if e.empty:
            return ""
        if e.children():
            return None
        parts = []
        for t in e.content:
            if t.kind == "text":
                parts.append(_unescape(self.text[t.start:t.end]))
            elif t.kind == "cdata":
                parts.append(self.text[t.start + 9:t.end - 3])
        return "".join(parts)

    def attr(self, e: _El, name: str) -> str | None:
        return _attr_of(e, name)

    def find(self, parent: _El, sel: Selector) -> list[_El]:
        return [c for c in parent.children() if sel(c)]

    def one(self, parent: _El, sel: Selector, *, required: str | None = None) -> _El | None:
        found = self.find(parent, sel)
        if len(found) > 1:
            raise self.err(sel.__name__, f"{len(found)} {sel.__name__} elements in "
                                         f"<{self.path_of(parent)}>, expected one")
        if not found and required is not None:
            raise self.err(sel.__name__, f"no {sel.__name__} element in <{self.path_of(parent)}>: "
                                         f"{required}")
        return found[0] if found else None

    def indent_of(self, node: _El | _Tok) -> str | None:
        """The whitespace between the previous line break and `node`, if nothing else is there."""
        line_start = self.text.rfind("\n", 0, node.start) + 1
        ws = self.text[line_start:node.start]
        return ws if ws.strip() == "" and line_start > 0 else None

    def example_comment(self, parent: _El, pattern: str) -> _Tok | None:
        """The last comment directly in `parent` whose text matches `pattern` (a commented example)."""
        rx = re.compile(pattern)
        found = [t for t in parent.content if isinstance(t, _Tok) and t.kind == "comment"
                 and rx.search(self.text, t.start + 4, t.end - 3)]
        return found[-1] if found else None

    # ---- editing (every method re-parses; callers must re-find nodes afterwards)

    def set_text(self, e: _El, value: str) -> None:
        current = self.text_of(e)
        if current is None:
            raise self.err(e.local, f"<{self.path_of(e)}> has child elements, expected a value")
        if current == value or (current.strip() == value and value == value.strip()):
            return
        if e.empty:  # <x/> -> <x>value</x>
            tag = self.text[e.start:e.end]
            new = re.sub(r"\s*/>$", ">", tag) + _esc_text(value) + f"</{e.qname}>"
            return self._splice(e.start, e.end, new)
        toks = [t for t in e.content if t.kind in ("text", "cdata")]
        markup = [t for t in e.content if t.kind not in ("text", "cdata")]
        if not markup:
            return self._splice(e.start_end, e.end_start, _esc_text(value))
        # keep comments/PIs inside the element: value replaces the first non-blank text run
        runs = [t for t in toks if self.text[t.start:t.end].strip()]
        if not runs:
            return self._splice(e.start_end, e.start_end, _esc_text(value))
        for t in reversed(runs[1:]):
            self.text = self.text[:t.start] + self.text[t.end:]
        first = runs[0]
        self.text = self.text[:first.start] + _esc_text(value) + self.text[first.end:]
        self._parse()

    def set_attr(self, e: _El, name: str, value: str, *, after: str | None = None) -> None:
        """Set attribute `name`; a new one goes after attribute `after` (else last), laid out
        like that attribute (own line with the same indentation, or one space)."""
        attrs = list(_ATTR.finditer(self.text, e.start + 1 + len(e.qname), e.start_end))
        for m in attrs:
            if m.group("name") == name:
                if _unescape(m.group("value")) == value:
                    return
                return self._splice(m.start("value"), m.end("value"), _esc_attr(value, m.group("q")))
        ref = next((m for m in attrs if m.group("name") == after), attrs[-1] if attrs else None)
        if ref is None:
            pos, sep = e.start + 1 + len(e.qname), " "
        else:
            pos, ws = ref.end(), ref.group("ws")
            sep = self.nl + ws[ws.rfind("\n") + 1:] if "\n" in ws else " "
        self._splice(pos, pos, f'{sep}{name}="{_esc_attr(value)}"')

    def serialize(self, n: _New, prefix: str, indent: str) -> str:
        q = f"{prefix}:{n.local}" if prefix else n.local
        a = "".join(f' {k}="{_esc_attr(v)}"' for k, v in n.attrs)
        if n.children:
            inner = "".join(self.nl + indent + self.unit + self.serialize(c, prefix, indent + self.unit)
                            for c in n.children)
            return f"<{q}{a}>{inner}{self.nl}{indent}</{q}>"
        if n.text is None:
            return f"<{q}{a}/>"
        return f"<{q}{a}>{_esc_text(n.text)}</{q}>"

    def _sep_before(self, node: _El | _Tok, parent: _El) -> tuple[str, str]:
        """(line break(s), indentation) used before `node`: one or two line breaks (a blank line
        between siblings is kept as the style) and the node's own indentation."""
        ind = self.indent_of(node)
        if ind is None:
            pind = self.indent_of(parent) or ""
            return self.nl, pind + self.unit
        line_start = self.text.rfind("\n", 0, node.start) + 1
        prev_end = max((c.end for c in parent.content if c.end <= node.start
                        and not (isinstance(c, _Tok) and c.kind == "text"
                                 and not self.text[c.start:c.end].strip())),
                       default=parent.start_end)
        gap = self.text[prev_end:line_start]
        breaks = 2 if gap.count("\n") >= 2 else 1
        return self.nl * breaks, ind

    def insert_after(self, anchor: _El | _Tok, parent: _El, n: _New) -> None:
        breaks, ind = self._sep_before(anchor, parent)
        if isinstance(anchor, _Tok):  # a comment: put the element right under it
            breaks = self.nl
        self._splice(anchor.end, anchor.end, breaks + ind + self.serialize(n, parent.prefix, ind))

    def insert_before(self, anchor: _El | _Tok, parent: _El, n: _New) -> None:
        breaks, ind = self._sep_before(anchor, parent)
        self._splice(anchor.start, anchor.start, self.serialize(n, parent.prefix, ind) + breaks + ind)

    def append_child(self, parent: _El, n: _New) -> None:
        kids = [c for c in parent.content if isinstance(c, _El) or c.kind == "comment"]
        if kids:
            return self.insert_after(kids[-1], parent, n)
        pind = self.indent_of(parent) or ""
        body = self.nl + pind + self.unit + self.serialize(n, parent.prefix, pind + self.unit) \
            + self.nl + pind
        if parent.empty:
            tag = re.sub(r"\s*/>$", ">", self.text[parent.start:parent.end])
            return self._splice(parent.start, parent.end, tag + body + f"</{parent.qname}>")
        self._splice(parent.start_end, parent.end_start, body)

    def remove(self, e: _El) -> None:
        line_start = self.text.rfind("\n", 0, e.start)
        ws = self.text[line_start:e.start] if line_start >= 0 else ""
        start = line_start - (1 if self.text[line_start - 1:line_start] == "\r" else 0) \
            if line_start >= 0 and ws.strip() == "" else e.start
        self._splice(start, e.end, "")

    # ---- "ensure" helpers (the edit language of the per-file functions)

    def ensure_leaf(self, get_parent: Callable[[], _El], local: str, value: str, *,
                    attrs: dict[str, str] | None = None, example: str | None = None,
                    after: Iterable[Selector] = (), before: Iterable[Selector] = ()) -> None:
        """Set the text of the one child `local` (with `attrs`) of the parent; create it if absent:
        right under a commented example matching `example`, else after the first present of
        `after`, else before the first present of `before`, else as the last child."""
        attrs = attrs or {}
        parent = get_parent()
        node = self.one(parent, _sel(local, **attrs))
        if node is not None:
            return self.set_text(node, value)
        self.create(parent, _New(local, text=value, attrs=tuple(attrs.items())),
                    example=example, after=after, before=before)

    def create(self, parent: _El, n: _New, *, example: str | None = None,
               after: Iterable[Selector] = (), before: Iterable[Selector] = ()) -> None:
        if example:
            tok = self.example_comment(parent, example)
            if tok is not None:
                return self.insert_after(tok, parent, n)
        for sel in after:
            found = self.find(parent, sel)
            if found:
                return self.insert_after(found[-1], parent, n)
        for sel in before:
            found = self.find(parent, sel)
            if found:
                return self.insert_before(found[0], parent, n)
        self.append_child(parent, n)


# --------------------------------------------------------------------------- per-file edits


def _path(doc: _Doc, *steps: Selector, why: str) -> Callable[[], _El]:
    """A re-resolvable handle: root, then one required child per step."""
    def get() -> _El:
        el = doc.root
        for s in steps:
            el = doc.one(el, s, required=why)
        return el
    return get


def _datasource(doc: _Doc, name: str, *, required: bool = True) -> Callable[[], _El | None]:
    def get() -> _El | None:
        dss = doc.one(doc.root, _sel("datasources"), required="no datasources defined")
        found = [d for d in dss.children("datasource")
                 if any(doc.text_of(n) == name for n in d.children("name"))]
        if len(found) > 1:
            raise doc.err("datasource", f"{len(found)} <datasource> named {name}, expected one")
        if not found and required:
            raise doc.err("datasource", f"no <datasource> named {name} in <datasources>")
        return found[0] if found else None
    return get


def _edit_datasource(doc: _Doc, spec: DataSourceSpec, get: Callable[[], _El | None]) -> None:
    """url/username/password/driverClassName of an existing datasource; its JNDI name must
    already be spec.jndi (we never rename: other files refer to it)."""
    ds = get()
    jndi = [doc.text_of(n) for j in ds.children("jndiConfig") for n in j.children("name")]
    if jndi and jndi[0] != spec.jndi:
        raise doc.err("jndiConfig", f"<datasource> {spec.name} has JNDI name {jndi[0]!r}, expected "
                                    f"{spec.jndi!r} (not renamed: other files refer to it)")

    def conf() -> _El:
        d = get()
        definition = doc.one(d, _sel("definition"), required=f"datasource {spec.name} has no definition")
        return doc.one(definition, _sel("configuration"),
                       required=f"datasource {spec.name} has no configuration")

    order = ("url", "username", "password", "driverClassName")
    for i, (local, value) in enumerate(zip(order, (spec.url, spec.username, spec.password,
                                                   spec.driver_class))):
        doc.ensure_leaf(conf, local, value, after=[_sel(x) for x in reversed(order[:i])],
                        before=[_sel(x) for x in order[i + 1:]])


def _new_datasource(spec: DataSourceSpec, kind: str) -> _New:
    return _New("datasource", children=(
        _leaf("name", spec.name),
        _leaf("description", spec.description or _DEFAULT_DESCRIPTION[kind]),
        _New("jndiConfig", children=(_leaf("name", spec.jndi),)),
        _New("definition", attrs=(("type", "RDBMS"),), children=(
            _New("configuration", children=(
                _leaf("url", spec.url),
                _leaf("username", spec.username),
                _leaf("password", spec.password),
                _leaf("driverClassName", spec.driver_class),
                *(_leaf(k, v) for k, v in NEW_DS_POOL),
            )),
        )),
    ))


def _edit_master_datasources(doc: _Doc, p: NodeXmlParams) -> None:
    _edit_datasource(doc, p.local_db, _datasource(doc, p.local_db.name))
    anchor = p.local_db.name
    for spec, kind in ((p.user_db, "user"), (p.registry_db, "registry")):
        get = _datasource(doc, spec.name, required=False)
        if get() is None:
            doc.insert_after(_datasource(doc, anchor)(), doc.one(doc.root, _sel("datasources")),
                             _new_datasource(spec, kind))
        else:
            def jndi_parent(get=get, spec=spec) -> _El:
                return doc.one(get(), _sel("jndiConfig"),
                               required=f"datasource {spec.name} has no jndiConfig")
            doc.ensure_leaf(jndi_parent, "name", spec.jndi)
            _edit_datasource(doc, spec, get)
            if spec.description:
                doc.ensure_leaf(get, "description", spec.description, after=[_sel("name")])
        anchor = spec.name


def _edit_bps_datasources(doc: _Doc, p: NodeXmlParams) -> None:
    _edit_datasource(doc, p.bps_db, _datasource(doc, p.bps_db.name))


def _edit_activiti_datasources(doc: _Doc, p: NodeXmlParams) -> None:
    _edit_datasource(doc, p.activiti_db, _datasource(doc, p.activiti_db.name))


def _edit_user_mgt(doc: _Doc, p: NodeXmlParams) -> None:
    conf = _path(doc, _sel("Realm"), _sel("Configuration"),
                 why="cannot point the user store at the shared user DB")
    doc.ensure_leaf(conf, "Property", p.user_db.jndi, attrs={"name": "dataSource"})
    if doc.one(conf(), _sel("AdminUser")) is None:
        doc.create(conf(), _New("AdminUser", children=(_leaf("UserName", p.admin_username),
                                                       _leaf("Password", p.admin_password))),
                   after=[_sel("AdminRole")], before=[_sel("Property")])
    admin = _path(doc, _sel("Realm"), _sel("Configuration"), _sel("AdminUser"), why="")
    doc.ensure_leaf(admin, "UserName", p.admin_username, before=[_sel("Password")])
    doc.ensure_leaf(admin, "Password", p.admin_password, after=[_sel("UserName")])


USER_MGT = "user-mgt.xml"
ADMIN_PASSWORD_PATH = "Realm/Configuration/AdminUser/Password"


def _without_admin_password(data: bytes) -> bytes | None:
    try:
        root = etree.fromstring(data)
    except etree.XMLSyntaxError:
        return None
    for el in root.findall(ADMIN_PASSWORD_PATH):
        el.text = ""
    return etree.tostring(root, method="c14n")


def admin_seed_only_change(old: bytes | None, new: bytes) -> bool:
    """True when two versions of user-mgt.xml differ only in <AdminUser><Password>.

    That value only seeds the admin user into the JDBC user store at the product's first start;
    a running cluster reads its admin password from WSO2_USER_DB, so such an edit needs no
    restart (the password itself is rotated through the user admin service: tasks/admin.py)."""
    if old is None or old == new:
        return False
    a, b = _without_admin_password(old), _without_admin_password(new)
    return a is not None and a == b


def _edit_registry(doc: _Doc, p: NodeXmlParams) -> None:
    local_cfg = _sel("dbConfig", name="wso2registry")
    doc.one(doc.root, local_cfg, required="cannot add the shared registry mount after it")
    bps_cfg = _sel("dbConfig", name=REGISTRY_DB_CONFIG)

    # <dbConfig name="wso2bpsregistry"><dataSource>jdbc/WSO2RegistryDB</dataSource></dbConfig>
    if doc.one(doc.root, bps_cfg) is None:
        doc.create(doc.root, _New("dbConfig", attrs=(("name", REGISTRY_DB_CONFIG),),
                                  children=(_leaf("dataSource", p.registry_db.jndi),)),
                   after=[local_cfg])
    doc.ensure_leaf(lambda: doc.one(doc.root, bps_cfg), "dataSource", p.registry_db.jndi)

    # <remoteInstance> identified by its <id>
    def remote() -> _El | None:
        found = [r for r in doc.root.children("remoteInstance")
                 if any(doc.text_of(i) == REMOTE_INSTANCE_ID for i in r.children("id"))]
        return found[0] if found else None

    fields = (("id", REMOTE_INSTANCE_ID), ("dbConfig", REGISTRY_DB_CONFIG),
              ("readOnly", "true" if p.registry_read_only else "false"), ("enableCache", "true"),
              ("registryRoot", "/"), ("cacheId", f"{p.registry_db.username}@{p.registry_db.url}"))
    if remote() is None:
        doc.create(doc.root, _New("remoteInstance", attrs=(("url", REMOTE_INSTANCE_URL),),
                                  children=tuple(_leaf(k, v) for k, v in fields)),
                   after=[bps_cfg])
    doc.set_attr(remote(), "url", REMOTE_INSTANCE_URL)
    names = [k for k, _ in fields]
    for i, (k, v) in enumerate(fields):
        doc.ensure_leaf(remote, k, v, after=[_sel(x) for x in reversed(names[:i])])

    # the two mounts
    anchor: Selector = _sel("remoteInstance")
    for path, target in MOUNTS:
        msel = _sel("mount", path=path)
        if doc.one(doc.root, msel) is None:
            doc.create(doc.root, _New("mount", attrs=(("path", path), ("overwrite", "true")),
                                      children=(_leaf("instanceId", REMOTE_INSTANCE_ID),
                                                _leaf("targetPath", target))),
                       after=[anchor])
        doc.set_attr(doc.one(doc.root, msel), "overwrite", "true")
        get = (lambda s=msel: doc.one(doc.root, s))
        doc.ensure_leaf(get, "instanceId", REMOTE_INSTANCE_ID, before=[_sel("targetPath")])
        doc.ensure_leaf(get, "targetPath", target, after=[_sel("instanceId")])
        anchor = msel


def _edit_axis2(doc: _Doc, p: NodeXmlParams) -> None:
    clustering = _path(doc, _sel("clustering"), why="cannot enable Hazelcast clustering")
    clustering()  # fail early, naming the file and <clustering>
    doc.set_attr(clustering(), "enable", "true")
    param = lambda name: _sel("parameter", name=name)  # noqa: E731
    wanted = (("membershipScheme", "wka"), ("domain", p.domain), ("localMemberHost", p.node_ip),
              ("localMemberPort", str(p.hazelcast_port)))
    names = ["AvoidInitiation"] + [n for n, _ in wanted]
    for i, (name, value) in enumerate(wanted):
        doc.ensure_leaf(clustering, "parameter", value, attrs={"name": name},
                        example=rf"<parameter\s+name=\"{name}\"",
                        after=[param(x) for x in reversed(names[:i + 1])],
                        before=[param(x) for x in names[i + 2:]] + [_sel("members")])

    # <members>: one <member> per address, in order, edited position by position
    if doc.one(clustering(), _sel("members")) is None:
        doc.create(clustering(), _New("members"), before=[_sel("groupManagement")])
    members = lambda: doc.one(clustering(), _sel("members"))  # noqa: E731
    port = str(p.hazelcast_port)
    for i, ip in enumerate(p.member_ips):
        existing = members().children("member")
        if i < len(existing):
            get = (lambda i=i: members().children("member")[i])
            doc.ensure_leaf(get, "hostName", ip, before=[_sel("port")])
            doc.ensure_leaf(get, "port", port, after=[_sel("hostName")])
        else:
            new = _New("member", children=(_leaf("hostName", ip), _leaf("port", port)))
            if existing:
                doc.insert_after(existing[-1], members(), new)
            else:
                doc.append_child(members(), new)
    while len(members().children("member")) > len(p.member_ips):
        doc.remove(members().children("member")[-1])

    # proxyPort of the servlet transports, so generated WSDLs/EPRs name the LB port
    for transport, value in (("http", p.http_proxy_port), ("https", p.https_proxy_port)):
        get = _path(doc, _sel("transportReceiver", name=transport),
                    why="cannot set its proxyPort")
        doc.ensure_leaf(get, "parameter", str(value), attrs={"name": "proxyPort"},
                        example=r"<parameter\s+name=\"proxyPort\"", after=[param("port")])


def _edit_bps(doc: _Doc, p: NodeXmlParams) -> None:
    """Live elements go right under their commented example when there is one (the comment
    stays), else in schema order below ODESchedulerThreadPoolSize."""
    root = lambda: doc.root  # noqa: E731
    pre = re.escape(doc.root.prefix + ":" if doc.root.prefix else "")
    order = ("ODESchedulerThreadPoolSize", "UseDistributedLock", "UseInstanceStateCache", "NodeId")
    later = ("ODESchedulerConfiguration", "BpelUI", "TransactionManagerTimeout")
    for local, value in (("UseDistributedLock", "true"), ("NodeId", p.node_id)):
        i = order.index(local)
        doc.ensure_leaf(root, local, value, example=rf"<\s*{pre}{local}\b",
                        after=[_sel(x) for x in reversed(order[:i])],
                        before=[_sel(x) for x in order[i + 1:] + later])


def _edit_carbon(doc: _Doc, p: NodeXmlParams) -> None:
    root = lambda: doc.root  # noqa: E731
    doc.one(doc.root, _sel("HostName"), required="cannot set the load balancer host name")
    doc.ensure_leaf(root, "HostName", p.service_name)
    doc.ensure_leaf(root, "MgtHostName", p.console_name, after=[_sel("HostName")])
    ports = _path(doc, _sel("Ports"), why="cannot set the port offset")
    doc.ensure_leaf(ports, "Offset", str(p.port_offset), before=[_sel("JMX")])


def _edit_catalina(doc: _Doc, p: NodeXmlParams) -> None:
    for port, proxy in ((HTTP_PORT, p.http_proxy_port), (HTTPS_PORT, p.https_proxy_port)):
        def connector(port=port) -> _El:
            found = [e for e in doc.iter() if e.local == "Connector" and doc.attr(e, "port") == port]
            if len(found) != 1:
                raise doc.err(f'Connector port="{port}"',
                              f'{len(found)} <Connector port="{port}"> elements, expected one '
                              f"(ports are pre-offset values)")
            return found[0]
        doc.set_attr(connector(), "proxyPort", str(proxy), after="port")


_EDITORS: dict[str, Callable[[_Doc, NodeXmlParams], None]] = {
    "datasources/master-datasources.xml": _edit_master_datasources,
    "datasources/bps-datasources.xml": _edit_bps_datasources,
    "datasources/activiti-datasources.xml": _edit_activiti_datasources,
    "user-mgt.xml": _edit_user_mgt,
    "registry.xml": _edit_registry,
    "axis2/axis2.xml": _edit_axis2,
    "bps.xml": _edit_bps,
    "carbon.xml": _edit_carbon,
    "tomcat/catalina-server.xml": _edit_catalina,
}
assert tuple(_EDITORS) == CONF_FILES
