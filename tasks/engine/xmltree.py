"""The source-mapped tree under xmledit.Doc: tokens, elements that know their character
offsets, new fragments to insert, selectors, and XML escaping. Pure data, no product knowledge.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable


# --------------------------------------------------------------------------- escaping


def esc_text(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def esc_attr(s: str, quote: str = '"') -> str:
    s = esc_text(s).replace("\t", "&#9;").replace("\n", "&#10;").replace("\r", "&#13;")
    return s.replace('"', "&quot;") if quote == '"' else s.replace("'", "&apos;")


_REF = re.compile(r"&(#x[0-9a-fA-F]+|#[0-9]+|amp|lt|gt|quot|apos);")
_NAMED = {"amp": "&", "lt": "<", "gt": ">", "quot": '"', "apos": "'"}


def unescape(s: str) -> str:
    def one(m: re.Match[str]) -> str:
        r = m.group(1)
        if r.startswith("#x"):
            return chr(int(r[2:], 16))
        if r.startswith("#"):
            return chr(int(r[1:]))
        return _NAMED[r]
    return _REF.sub(one, s)


# --------------------------------------------------------------------------- source-mapped tree

TOKEN_RE = re.compile(
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
ATTR_RE = re.compile(r"(?P<ws>\s+)(?P<name>[^\s=/>]+)\s*=\s*(?P<q>[\"'])(?P<value>.*?)(?P=q)", re.S)


@dataclass(eq=False)
class Tok:
    kind: str  # "text" | "comment" | "cdata" | "pi"
    start: int
    end: int


@dataclass(eq=False)
class El:
    qname: str
    start: int          # index of '<'
    start_end: int      # index after the start tag's '>'
    end_start: int = -1  # index of '</' (== start_end if self-closing)
    end: int = -1       # index after the end tag
    empty: bool = False
    parent: "El | None" = None
    content: list = field(default_factory=list)  # El and Tok, in order
    src: str = field(default="", repr=False)      # the document text these offsets refer to

    @property
    def local(self) -> str:
        return self.qname.rpartition(":")[2]

    @property
    def prefix(self) -> str:
        return self.qname.rpartition(":")[0]

    def children(self, local: str | None = None) -> list["El"]:
        return [c for c in self.content if isinstance(c, El) and (local is None or c.local == local)]


@dataclass
class New:
    """A new element to insert: serialised with escaping, indented like its siblings."""
    local: str
    text: str | None = None
    children: tuple["New", ...] = ()
    attrs: tuple[tuple[str, str], ...] = ()


def leaf(local: str, text: str) -> New:
    return New(local, text=text)


Selector = Callable[["El"], bool]


def sel(local: str, **attrs: str) -> Selector:
    def match(e: El) -> bool:
        return e.local == local and all(attr_of(e, k) == v for k, v in attrs.items())
    match.__name__ = f"<{local}{''.join(f' {k}={v!r}' for k, v in attrs.items())}>"
    return match


def attr_of(e: El, name: str) -> str | None:
    for m in ATTR_RE.finditer(e.src, e.start + 1 + len(e.qname), e.start_end):
        if m.group("name") == name:
            return unescape(m.group("value"))
    return None
