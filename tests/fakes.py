"""The middle test tier: a fake session that records every script and answers facts.

A step's apply path runs against `FakeHost`s with a real `Run` (real planner, real runner, real
report, check mode and diffs), without root, sshd or the lab:

    run, hosts = fake_run(inv, monkeypatch, check=False, diff=True)
    hosts["lb"].files["/etc/hosts"] = b"127.0.0.1 localhost\\n"
    hosts["lb"].answer(r"^nginx -T", stdout=DUMP)
    r = lb.lb_host_step(run)
    assert r.status == "changed" and hosts["lb"].ran("nginx -t")

What it answers:
- `remote.probe_file(path)` probes (inside a fact read or alone) from `FakeHost.files`
  ({path: bytes} or {path: FakeFile}); a missing path answers MISSING;
- any other probe or script: the first rule added with `answer(regex, ...)` whose regex matches
  (re.search, multiline) the probe snippet or the script; else empty output and exit 0.
Every script is kept in `FakeHost.scripts` (fact reads too), in order.
"""
from __future__ import annotations

import base64
import hashlib
import io
import re
from dataclasses import dataclass, field

from tasks.engine import remote
from tasks.engine.inventory import Inventory
from tasks.engine.remote import CmdResult, HostSession
from tasks.engine.runner import Run, make_run

_PROBE_FILE = re.compile(r"^if \[ -L (?P<p>'[^']*'|\S+) \]; then echo NOTFILE link")
# one path of read_facts' batched file facts (remote.facts.files_snippet)
_BATCHED = re.compile(r"^bps_k (?P<i>\d+) (?P<p>'[^']*'|\S+) && (?P<more>.*)$", re.M)
_FACT = re.compile(r"echo '@@BPS-FACT-BEGIN (?P<key>[^']*)'\n\( (?P<snip>.*?)\n\) </dev/null 2>&1\n"
                   r"echo \"\n@@BPS-FACT-END (?P=key) \$\?\"\n", re.S)


@dataclass
class FakeFile:
    content: bytes
    mode: int = 0o644
    owner: str = "root"
    group: str = "root"
    kind: str = "file"  # or "link", "folder", "special": probe_file answers NOTFILE


@dataclass
class FakeHost:
    name: str
    files: dict[str, "bytes | FakeFile"] = field(default_factory=dict)
    scripts: list[str] = field(default_factory=list)
    rules: list[tuple[re.Pattern, CmdResult]] = field(default_factory=list)

    def answer(self, pattern: str, stdout: str = "", stderr: str = "", exit: int = 0) -> "FakeHost":
        self.rules.append((re.compile(pattern, re.M), CmdResult(stdout, stderr, exit)))
        return self

    def ran(self, pattern: str) -> bool:
        """True when any script (fact reads excluded) matched the regex."""
        rx = re.compile(pattern, re.M)
        return any(rx.search(s) for s in self.scripts if "@@BPS-FACT-BEGIN" not in s)

    # -- answering ------------------------------------------------------------------------------
    def _file_probe(self, quoted: str, snippet: str) -> str:
        path = quoted[1:-1].replace("'\\''", "'") if quoted.startswith("'") else quoted
        f = self.files.get(path)
        if f is None:
            return "MISSING"
        if isinstance(f, bytes):
            f = FakeFile(f)
        if f.kind != "file":
            return f"NOTFILE {f.kind} {path}"
        out = f"{f.mode:o} {f.owner} {f.group} {hashlib.sha256(f.content).hexdigest()}"
        if "base64" in snippet:
            out += "\n" + base64.b64encode(f.content).decode()
        return out

    def _batch(self, snippet: str) -> CmdResult:
        """files_snippet's output for the paths it names, from the same answers as one by one."""
        ks, ss, hs, bs = [], [], [], []
        for m in _BATCHED.finditer(snippet):
            i, content = m.group("i"), "bps_b" in m.group("more")
            one = self._file_probe(m.group("p"), "base64" if content else "").split("\n")
            if one[0] == "MISSING" or one[0].startswith("NOTFILE"):
                ks.append(f"K {i} {one[0]}")
                continue
            ks.append(f"K {i} FILE")
            mode_owner_group, _, sha = one[0].rpartition(" ")
            ss.append(f"S {mode_owner_group}")
            hs.append(f"H {sha}")
            if content:
                bs.append(f"B {i} {one[1]}")
        return CmdResult("\n".join(ks + bs + ss + hs) + "\n", "", 0)

    def _one(self, snippet: str) -> CmdResult:
        if snippet.startswith("bps_k() {"):
            return self._batch(snippet)
        m = _PROBE_FILE.search(snippet)
        if m:
            return CmdResult(self._file_probe(m.group("p"), snippet), "", 0)
        for rx, res in self.rules:
            if rx.search(snippet):
                return res
        return CmdResult("", "", 0)

    def exec(self, command: str, stdin: bytes) -> CmdResult:
        script = stdin.decode()
        self.scripts.append(script)
        facts = list(_FACT.finditer(script))
        if not facts:
            return self._one(script)
        out = []
        for m in facts:
            r = self._one(m.group("snip"))
            text = r.stdout + r.stderr
            out.append(f"@@BPS-FACT-BEGIN {m.group('key')}\n{text}\n@@BPS-FACT-END "
                       f"{m.group('key')} {r.exit}")
        return CmdResult("\n".join(out) + "\n", "", 0)


def fake_run(inv: Inventory, monkeypatch, *, check: bool = False,
             diff: bool = False) -> tuple[Run, dict[str, FakeHost]]:
    """A real Run over fake hosts (one per inventory host, by name); output in run.rep's stream."""
    run = make_run(inv, check=check, diff=diff, parallel=4, stream=io.StringIO())
    hosts = {h.name: FakeHost(h.name) for h in inv.hosts}
    for h in inv.hosts:
        s = HostSession(host=h, c=None, user="root", sudo_password=None, timeout=30)
        s.fake = hosts[h.name]  # type: ignore[attr-defined]
        run._sessions[h.name] = s

    def fake_exec(s: HostSession, command: str, stdin: bytes, timeout: int) -> CmdResult:
        s.commands += 1
        return s.fake.exec(command, stdin)  # type: ignore[attr-defined]

    # the transport module's own name: run_script looks _exec up there
    monkeypatch.setattr(remote.transport, "_exec", fake_exec)
    return run, hosts


def output(run: Run) -> str:
    """What the run printed so far (host-prefixed lines, the recap)."""
    return run.rep.stream.getvalue()  # type: ignore[attr-defined]
