"""A byte-preserving XML editor: change one element's text or one attribute, insert or remove
an element, and leave every other byte of the file as it was.

lxml re-serialises a whole document: it rewrites multi-line start tags onto one line, `<a></a>`
as `<a/>`, quote styles and the XML declaration, so a diff against the original would show
hundreds of unrelated lines. Instead a file is:

1. checked with lxml (well-formed, entities not resolved, no network), errors name the line;
2. split into a small source-mapped element tree (`Doc`): each element knows the character
   offsets of its start tag, content and end tag, so an edit replaces exactly the characters
   it must (an element's text, one attribute value) or inserts a new, escaped fragment (`New`)
   indented like its siblings with the file's own line ending;
3. re-checked with lxml after the edits (`Doc.to_bytes`).

Everything else (comments, declaration, encoding, attribute order and layout, CRLF, tabs) is
left byte for byte. The edits are "ensure" style (compare, change only if different), so an
edit applied to its own output changes nothing. Values are always escaped (`esc_text`,
`esc_attr`); no markup is built from unescaped strings. Nothing here knows any product: the
WSO2 files and elements are in tasks/wso2/.
"""
from __future__ import annotations

import codecs
import re
from collections import Counter
from typing import Callable, Iterable, Iterator

from lxml import etree

from .xmltree import (ATTR_RE, TOKEN_RE, El, New, Selector, Tok,  # noqa: F401  (re-exported)
                      attr_of, esc_attr, esc_text, leaf, sel, unescape)


class XmlConfigError(Exception):
    """A configuration file cannot be edited; str() names the file and the element."""

    def __init__(self, file: str, element: str, message: str):
        self.file = file
        self.element = element
        self.message = message
        super().__init__(f"{file}: {message}")

class Doc:
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
        root: El | None = None
        top: list = []
        while pos < len(text):
            m = TOKEN_RE.match(text, pos)
            if m is None:  # lxml accepted the file, so this is our tokenizer's limit
                raise XmlConfigError(self.file, "(document)",
                                     f"unsupported markup at line {text.count(chr(10), 0, pos) + 1}")
            kind = next(k for k in ("comment", "cdata", "pi", "doctype", "end", "start", "text")
                        if m.group(k) is not None)
            parent_content = stack[-1].content if stack else top
            if kind == "start":
                el = El(m.group("sname"), m.start(), m.end(), parent=stack[-1] if stack else None,
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
                parent_content.append(Tok(kind, m.start(), m.end()))
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

    def iter(self, el: El | None = None) -> Iterator[El]:
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

    def path_of(self, e: El) -> str:
        parts = []
        while e is not None:
            parts.append(e.local)
            e = e.parent
        return "/".join(reversed(parts))

    def text_of(self, e: El) -> str | None:
        """Unescaped text of a leaf element (None if it has child elements)."""
        if e.empty:
            return ""
        if e.children():
            return None
        parts = []
        for t in e.content:
            if t.kind == "text":
                parts.append(unescape(self.text[t.start:t.end]))
            elif t.kind == "cdata":
                parts.append(self.text[t.start + 9:t.end - 3])
        return "".join(parts)

    def attr(self, e: El, name: str) -> str | None:
        return attr_of(e, name)

    def find(self, parent: El, sel: Selector) -> list[El]:
        return [c for c in parent.children() if sel(c)]

    def one(self, parent: El, sel: Selector, *, required: str | None = None) -> El | None:
        found = self.find(parent, sel)
        if len(found) > 1:
            raise self.err(sel.__name__, f"{len(found)} {sel.__name__} elements in "
                                         f"<{self.path_of(parent)}>, expected one")
        if not found and required is not None:
            raise self.err(sel.__name__, f"no {sel.__name__} element in <{self.path_of(parent)}>: "
                                         f"{required}")
        return found[0] if found else None

    def indent_of(self, node: El | Tok) -> str | None:
        """The whitespace between the previous line break and `node`, if nothing else is there."""
        line_start = self.text.rfind("\n", 0, node.start) + 1
        ws = self.text[line_start:node.start]
        return ws if ws.strip() == "" and line_start > 0 else None

    def example_comment(self, parent: El, pattern: str) -> Tok | None:
        """The last comment directly in `parent` whose text matches `pattern` (a commented example)."""
        rx = re.compile(pattern)
        found = [t for t in parent.content if isinstance(t, Tok) and t.kind == "comment"
                 and rx.search(self.text, t.start + 4, t.end - 3)]
        return found[-1] if found else None

    # ---- editing (every method re-parses; callers must re-find nodes afterwards)

    def set_text(self, e: El, value: str) -> None:
        current = self.text_of(e)
        if current is None:
            raise self.err(e.local, f"<{self.path_of(e)}> has child elements, expected a value")
        if current == value or (current.strip() == value and value == value.strip()):
            return
        if e.empty:  # <x/> -> <x>value</x>
            tag = self.text[e.start:e.end]
            new = re.sub(r"\s*/>$", ">", tag) + esc_text(value) + f"</{e.qname}>"
            return self._splice(e.start, e.end, new)
        toks = [t for t in e.content if t.kind in ("text", "cdata")]
        markup = [t for t in e.content if t.kind not in ("text", "cdata")]
        if not markup:
            return self._splice(e.start_end, e.end_start, esc_text(value))
        # keep comments/PIs inside the element: value replaces the first non-blank text run
        runs = [t for t in toks if self.text[t.start:t.end].strip()]
        if not runs:
            return self._splice(e.start_end, e.start_end, esc_text(value))
        for t in reversed(runs[1:]):
            self.text = self.text[:t.start] + self.text[t.end:]
        first = runs[0]
        self.text = self.text[:first.start] + esc_text(value) + self.text[first.end:]
        self._parse()

    def set_attr(self, e: El, name: str, value: str, *, after: str | None = None) -> None:
        """Set attribute `name`; a new one goes after attribute `after` (else last), laid out
        like that attribute (own line with the same indentation, or one space)."""
        attrs = list(ATTR_RE.finditer(self.text, e.start + 1 + len(e.qname), e.start_end))
        for m in attrs:
            if m.group("name") == name:
                if unescape(m.group("value")) == value:
                    return
                return self._splice(m.start("value"), m.end("value"), esc_attr(value, m.group("q")))
        ref = next((m for m in attrs if m.group("name") == after), attrs[-1] if attrs else None)
        if ref is None:
            pos, sep = e.start + 1 + len(e.qname), " "
        else:
            pos, ws = ref.end(), ref.group("ws")
            sep = self.nl + ws[ws.rfind("\n") + 1:] if "\n" in ws else " "
        self._splice(pos, pos, f'{sep}{name}="{esc_attr(value)}"')

    def serialize(self, n: New, prefix: str, indent: str) -> str:
        q = f"{prefix}:{n.local}" if prefix else n.local
        a = "".join(f' {k}="{esc_attr(v)}"' for k, v in n.attrs)
        if n.children:
            inner = "".join(self.nl + indent + self.unit + self.serialize(c, prefix, indent + self.unit)
                            for c in n.children)
            return f"<{q}{a}>{inner}{self.nl}{indent}</{q}>"
        if n.text is None:
            return f"<{q}{a}/>"
        return f"<{q}{a}>{esc_text(n.text)}</{q}>"

    def _sep_before(self, node: El | Tok, parent: El) -> tuple[str, str]:
        """(line break(s), indentation) used before `node`: one or two line breaks (a blank line
        between siblings is kept as the style) and the node's own indentation."""
        ind = self.indent_of(node)
        if ind is None:
            pind = self.indent_of(parent) or ""
            return self.nl, pind + self.unit
        line_start = self.text.rfind("\n", 0, node.start) + 1
        prev_end = max((c.end for c in parent.content if c.end <= node.start
                        and not (isinstance(c, Tok) and c.kind == "text"
                                 and not self.text[c.start:c.end].strip())),
                       default=parent.start_end)
        gap = self.text[prev_end:line_start]
        breaks = 2 if gap.count("\n") >= 2 else 1
        return self.nl * breaks, ind

    def insert_after(self, anchor: El | Tok, parent: El, n: New) -> None:
        breaks, ind = self._sep_before(anchor, parent)
        if isinstance(anchor, Tok):  # a comment: put the element right under it
            breaks = self.nl
        self._splice(anchor.end, anchor.end, breaks + ind + self.serialize(n, parent.prefix, ind))

    def insert_before(self, anchor: El | Tok, parent: El, n: New) -> None:
        breaks, ind = self._sep_before(anchor, parent)
        self._splice(anchor.start, anchor.start, self.serialize(n, parent.prefix, ind) + breaks + ind)

    def append_child(self, parent: El, n: New) -> None:
        kids = [c for c in parent.content if isinstance(c, El) or c.kind == "comment"]
        if kids:
            return self.insert_after(kids[-1], parent, n)
        pind = self.indent_of(parent) or ""
        body = self.nl + pind + self.unit + self.serialize(n, parent.prefix, pind + self.unit) \
            + self.nl + pind
        if parent.empty:
            tag = re.sub(r"\s*/>$", ">", self.text[parent.start:parent.end])
            return self._splice(parent.start, parent.end, tag + body + f"</{parent.qname}>")
        self._splice(parent.start_end, parent.end_start, body)

    def remove(self, e: El) -> None:
        line_start = self.text.rfind("\n", 0, e.start)
        ws = self.text[line_start:e.start] if line_start >= 0 else ""
        start = line_start - (1 if self.text[line_start - 1:line_start] == "\r" else 0) \
            if line_start >= 0 and ws.strip() == "" else e.start
        self._splice(start, e.end, "")

    # ---- "ensure" helpers (the edit language of the per-file editors)

    def ensure_leaf(self, get_parent: Callable[[], El], local: str, value: str, *,
                    attrs: dict[str, str] | None = None, example: str | None = None,
                    after: Iterable[Selector] = (), before: Iterable[Selector] = ()) -> None:
        """Set the text of the one child `local` (with `attrs`) of the parent; create it if absent:
        right under a commented example matching `example`, else after the first present of
        `after`, else before the first present of `before`, else as the last child."""
        attrs = attrs or {}
        parent = get_parent()
        node = self.one(parent, sel(local, **attrs))
        if node is not None:
            return self.set_text(node, value)
        self.create(parent, New(local, text=value, attrs=tuple(attrs.items())),
                    example=example, after=after, before=before)

    def create(self, parent: El, n: New, *, example: str | None = None,
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


def path(doc: Doc, *steps: Selector, why: str) -> Callable[[], El]:
    """A re-resolvable handle: root, then one required child per step."""
    def get() -> El:
        el = doc.root
        for s in steps:
            el = doc.one(el, s, required=why)
        return el
    return get
