"""Per-host results, host-prefixed output, the recap table and the redacted run log."""
from __future__ import annotations

import difflib
import os
import re
import sys
import threading
import time
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path


class Status(str, Enum):
    """A step's result on one host. A str Enum: `Status.OK == "ok"`, so logs and JSON stay plain."""

    OK = "ok"
    CHANGED = "changed"
    FAILED = "failed"
    UNREACHABLE = "unreachable"
    SKIPPED = "skipped"

    def __str__(self) -> str:  # f"{status}" prints "ok", not "Status.OK"
        return self.value

    __hash__ = str.__hash__  # Enum hashes the name: keep dict keys "ok" and Status.OK one key

    @property
    def bad(self) -> bool:
        return self in (Status.FAILED, Status.UNREACHABLE)


STATUSES = tuple(s.value for s in Status)


@dataclass
class StepResult:
    """What one step did on one host. `ok` carries the reason nothing was needed."""

    host: str
    step: str
    status: Status  # a plain string is accepted and made a Status
    msg: str = ""
    changes: list[str] = field(default_factory=list)
    diffs: list[str] = field(default_factory=list)
    restarted: bool = False
    killed: bool = False  # a JVM got SIGKILL: it did not stop within cluster.stop_timeout
    value: object = field(default=None, repr=False)  # what the step hands on (engine/plan.py)

    def __post_init__(self):
        self.status = Status(self.status)  # ValueError for a status that does not exist


class Redactor:
    """Replaces every known secret with *** in anything we print or log."""

    def __init__(self, secrets: list[str] | None = None):
        self._secrets: list[str] = []
        for s in secrets or []:
            self.add(s)

    def add(self, secret: str | None) -> None:
        if secret and len(secret) >= 3 and secret not in self._secrets:
            self._secrets.append(secret)
            self._secrets.sort(key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for s in self._secrets:
            text = text.replace(s, "***")
        return text


# Values of password-like fields, masked in every diff: the redactor knows today's secrets,
# but the "before" side of a diff may hold an old password that it has never seen. An element's
# value is its text and CDATA sections (`<password><![CDATA[...]]></password>`), masked whole.
_SECRET_FIELDS = [
    re.compile(r"(<(?P<tag>[\w:.-]*(?:[Pp]assword|PASSWORD))(?:\s[^>]*)?>)"
               r"(?P<v>(?:[^<]|<!\[CDATA\[(?s:.*?)\]\]>)*)(</(?P=tag)>)"),
    re.compile(r"(?im)^(\s*[\w.-]*password[\w.-]*\s*[=:]\s*)(?P<v>\S.*)$"),
]


def mask_secret_fields(text: str, before: str | None = None) -> str:
    """Replace password-like values with ***; with `before` (the other side of a diff), a value
    that differs from the same field there shows as ***changed*** so the diff still says so."""
    for rx in _SECRET_FIELDS:
        old = [m.group("v") for m in rx.finditer(before)] if before is not None else []
        count = iter(range(10 ** 9))

        def repl(m, old=old, count=count):
            i = next(count)
            mark = "***" if before is None or (i < len(old) and old[i] == m.group("v")) \
                else "***changed***"
            return m.group(0)[:m.start("v") - m.start(0)] + mark + \
                m.group(0)[m.end("v") - m.start(0):]
        text = rx.sub(repl, text)
    return text


# Control characters in text from hosts (log tails, command output, error messages) would reach
# the operator's terminal: ESC sequences clear the screen, retitle the window or rewrite earlier
# lines. Everything we print or log goes through `printable`: \n and \t stay, CRLF is a line end,
# every other C0 control, DEL and C1 control is shown as a visible \xNN escape.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """Pure: text safe for a terminal (see _CONTROL)."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group(0)):02x}", text.replace("\r\n", "\n"))


def unified_diff(path: str, before: bytes | None, after: bytes, redact: Redactor) -> str:
    old = (before or b"").decode("utf-8", "replace")
    new = after.decode("utf-8", "replace")
    a = redact(mask_secret_fields(old)).splitlines(keepends=True)
    b = redact(mask_secret_fields(new, old)).splitlines(keepends=True)
    return "".join(difflib.unified_diff(a, b, f"before: {path}", f"after: {path}"))


def sensitive_diff(path: str, before: bytes | None, after: bytes) -> str:
    """The diff of a file that is a secret as a whole (FileSpec.sensitive): how many lines
    changed, never which or what (field masking cannot know every secret such a file holds)."""
    old = (before or b"").decode("utf-8", "replace").splitlines()
    new = after.decode("utf-8", "replace").splitlines()
    removed = added = 0
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, old, new, autojunk=False).get_opcodes():
        if op != "equal":
            removed, added = removed + i2 - i1, added + j2 - j1
    return (f"--- before: {path}\n+++ after: {path}\n(sensitive file: {removed} line(s) removed, "
            f"{added} added; content not shown)\n")


class Reporter:
    """Host-prefixed lines while running, a recap at the end, and a full redacted log file."""

    def __init__(self, redact: Redactor, log_dir: Path | None = None, stream=None,
                 color: bool | None = None):
        self.redact = redact
        self.stream = stream or sys.stdout
        self.color = self.stream.isatty() if color is None else color
        self.results: list[StepResult] = []
        self.restarted: set[str] = set()
        self.killed: set[str] = set()
        self.lock = threading.Lock()
        self.started = time.monotonic()
        self.log_path: Path | None = None
        self._log = None
        if log_dir is not None:
            log_dir.mkdir(parents=True, exist_ok=True)
            stamp = time.strftime("%Y%m%dT%H%M%S")
            self.log_path = log_dir / f"run-{stamp}-{os.getpid()}.log"
            fd = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            self._log = os.fdopen(fd, "a", buffering=1)

    # -- output ----------------------------------------------------------------
    _COLORS = {"ok": "32", "changed": "33", "failed": "31", "unreachable": "31",
               "skipped": "36", "warn": "35"}

    def _paint(self, text: str, status: str) -> str:
        if not self.color or status not in self._COLORS:
            return text
        return f"\033[{self._COLORS[status]}m{text}\033[0m"

    def line(self, host: str | None, text: str, status: str = "") -> None:
        text = printable(self.redact(text))
        prefix = f"[{host}] " if host else ""
        with self.lock:
            for ln in text.splitlines() or [""]:
                if self._log:
                    self._log.write(f"{time.strftime('%H:%M:%S')} {prefix}{ln}\n")
                if self.stream is not None:
                    try:
                        self.stream.write(self._paint(prefix + ln, status) + "\n")
                    except BrokenPipeError:  # `fab ... | head`: keep working, stop printing
                        self.stream = None
            if self.stream is not None:
                try:
                    self.stream.flush()
                except BrokenPipeError:
                    self.stream = None

    def log_only(self, host: str | None, text: str) -> None:
        if self._log:
            with self.lock:
                prefix = f"[{host}] " if host else ""
                for ln in printable(self.redact(text)).splitlines():
                    self._log.write(f"{time.strftime('%H:%M:%S')} {prefix}{ln}\n")

    def warn(self, text: str) -> None:
        self.line(None, f"WARNING: {text}", "warn")

    def record(self, r: StepResult, show_diff: bool = False) -> StepResult:
        with self.lock:
            self.results.append(r)
            if r.restarted:
                self.restarted.add(r.host)
            if r.killed:
                self.killed.add(r.host)
        head = f"{r.step}: {r.status}"
        if r.msg:
            head += f": {r.msg}"
        self.line(r.host, head, r.status)
        for ch in r.changes:
            self.line(r.host, f"  ~ {ch}", r.status)
        for d in r.diffs:
            if show_diff:
                self.line(r.host, d.rstrip("\n"))
            else:
                self.log_only(r.host, d)
        return r

    # -- recap -----------------------------------------------------------------
    def host_status(self) -> dict[str, dict[str, int]]:
        table: dict[str, dict[str, int]] = {}
        for r in self.results:
            row = table.setdefault(r.host, {s: 0 for s in STATUSES})
            row[r.status] += 1
        return table

    def failed_hosts(self) -> list[str]:
        return [h for h, row in self.host_status().items()
                if row["failed"] or row["unreachable"]]

    def recap(self, title: str = "RECAP") -> int:
        table = self.host_status()
        width = max([len(h) for h in table] + [4])
        elapsed = time.monotonic() - self.started
        self.line(None, "")
        self.line(None, f"{title} ({elapsed:.1f}s)")
        self.line(None, f"{'host'.ljust(width)}  {'ok':>4} {'changed':>8} {'failed':>7} "
                        f"{'unreach':>8} {'skipped':>8}  restarted")
        for host, row in table.items():
            status = ("failed" if row["failed"] or row["unreachable"]
                      else "changed" if row["changed"] else "ok")
            self.line(None, f"{host.ljust(width)}  {row['ok']:>4} {row['changed']:>8} "
                            f"{row['failed']:>7} {row['unreachable']:>8} {row['skipped']:>8}  "
                            f"{'yes' if host in self.restarted else 'no'}", status)
        if self.killed:
            self.line(None, f"!!! KILLED (SIGKILL, no graceful stop: still running after "
                            f"cluster.stop_timeout): {', '.join(sorted(self.killed))}", "failed")
        if self.log_path:
            self.line(None, f"log: {self.log_path}")
        return 1 if self.failed_hosts() else 0

    def close(self) -> None:
        if self._log:
            self._log.close()
            self._log = None
