"""A run: the inventory, options, one connection per host, bounded parallel steps.

A failed or unreachable host never raises out of a step: it is recorded, named in the recap,
and dropped from later steps of this run, while the other hosts go on.
"""
from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from . import remote
from .inventory import Host, Inventory
from .remote import FileChange, FileSpec, HostSession, RemoteError, Unreachable
from .plan import ActionFailed, Done, Plan
from .report import Redactor, Reporter, Status, StepResult, sensitive_diff, unified_diff


@dataclass
class RunOptions:
    check: bool = False  # read facts and plan only; touch nothing
    diff: bool = False  # show unified diffs of files that (would) change
    parallel: int = 16  # hosts worked on at once


# What a step calls before it deletes data (run.before_data_loss): `fab backup` registers its
# guard here (tasks/__init__.py), so the engine does not depend on the backup step.
DATA_LOSS_GUARDS: list[Callable[["Run", str], None]] = []


class Run:
    def __init__(self, inv: Inventory, opts: RunOptions, reporter: Reporter):
        self.inv = inv
        self.opts = opts
        self.rep = reporter
        self.stamp = remote.utc_stamp()  # the run id: names its backups and run manifests
        reporter.log_only(None, f"run id {self.stamp}")
        self._sessions: dict[str, HostSession] = {}
        self._locks: dict[str, threading.Lock] = {h.name: threading.Lock() for h in inv.hosts}
        self.dead: dict[str, str] = {}  # host -> why it left the run
        self.step_seconds: dict[str, float] = {}  # wall time per step name (bench/)
        self.commands: dict[str, int] = {}  # SSH commands per host, kept after close
        self.shared: dict[str, object] = {}  # what one step leaves for a later one of this run

    @property
    def check(self) -> bool:
        return self.opts.check

    def session(self, host: Host) -> HostSession:
        # a host outside hosts.toml (a node being removed) gets its lock on first use
        with self._locks.setdefault(host.name, threading.Lock()):
            s = self._sessions.get(host.name)
            if s is None:
                # the inventory's own Host of that name: it may know more (set_inventory)
                host = next((h for h in self.inv.hosts if h.name == host.name), host)
                s = remote.connect(self.inv, host)
                self._sessions[host.name] = s
            return s

    def set_inventory(self, inv: Inventory) -> None:
        """The same hosts with more known about them (steps/membership: each node's recorded
        identity): open sessions carry the new Host from now on."""
        self.inv = inv
        for h in inv.hosts:
            s = self._sessions.get(h.name)
            if s is not None:
                s.host = h

    def sessions(self) -> dict[str, HostSession]:
        return dict(self._sessions)

    def alive(self, hosts: Iterable[Host]) -> list[Host]:
        return [h for h in hosts if h.name not in self.dead]

    def each(self, hosts: Iterable[Host], step: str,
             fn: Callable[[HostSession], StepResult]) -> dict[str, StepResult]:
        """Run fn on each live host in parallel (bounded); record one result per host."""
        hosts = list(hosts)
        results: dict[str, StepResult] = {}

        def one(h: Host) -> StepResult:
            if h.name in self.dead:
                return StepResult(h.name, step, "skipped", f"left the run: {self.dead[h.name]}")
            try:
                s = self.session(h)
                r = fn(s)
            except Unreachable as e:
                self.dead[h.name] = "unreachable"
                return StepResult(h.name, step, "unreachable", str(e))
            except RemoteError as e:
                self.dead[h.name] = f"{step} failed"
                return StepResult(h.name, step, "failed", str(e))
            except Exception as e:  # a bug must still not hide the other hosts' results
                self.dead[h.name] = f"{step} failed"
                return StepResult(h.name, step, "failed", f"{type(e).__name__}: {e}")
            if r.status in ("failed", "unreachable"):
                self.dead.setdefault(h.name, f"{step} failed")
            return r

        t0 = time.monotonic()
        workers = max(1, min(self.opts.parallel, len(hosts) or 1))
        if workers == 1:
            out = [one(h) for h in hosts]
        else:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                out = list(pool.map(one, hosts))
        self.step_seconds[step] = self.step_seconds.get(step, 0.0) + time.monotonic() - t0
        for h, r in zip(hosts, out):
            results[h.name] = self.rep.record(r, show_diff=self.opts.diff)
        return results

    def before_data_loss(self, what: str) -> None:
        """Before a step deletes data: every registered guard runs (a backup); one that fails
        raises (cli.Abort), so the step does not run."""
        for guard in DATA_LOSS_GUARDS:
            guard(self, what)

    def close(self) -> None:
        for s in self._sessions.values():
            self.commands[s.name] = self.commands.get(s.name, 0) + s.commands
            remote.close(s)
        self._sessions.clear()

    # -- the step contract: the one place that knows check mode, diffs and status -------------
    def apply(self, s: HostSession, step: str, plan: Plan) -> StepResult:
        """Run a step's plan on one host (see engine/plan.py); its result, not yet recorded."""
        warn = "\n".join(plan.warnings)

        def said(*parts: str) -> str:
            return "\n".join(p for p in parts if p)

        if plan.error is not None:
            return StepResult(s.name, step, Status.FAILED, said(plan.error, warn))
        if not plan.actions:
            return StepResult(s.name, step, Status.OK, said(plan.noop, warn), value=plan.value)
        changes = plan.changes
        diffs = self.diffs_for(s, plan.files, plan.before)
        if self.check:
            return StepResult(s.name, step, Status.CHANGED, said("would change (check mode)", warn),
                              changes, diffs, value=plan.value)
        notes: list[str] = []
        restarted = killed = False
        value = plan.value
        done: list[str] = []
        for action in plan.actions:
            try:
                out = action.run(s)
            except (ActionFailed, RemoteError) as e:
                text = e.message if isinstance(e, ActionFailed) else str(e)
                keep = not isinstance(e, ActionFailed) or e.changes_done
                if isinstance(e, ActionFailed):
                    restarted, killed = restarted or e.restarted, killed or e.killed
                head = f"{action.describe}: {text}" if not action.quiet else text
                if done:
                    head += "\n(done before this: " + "; ".join(done) + ")"
                return StepResult(s.name, step, Status.FAILED, said(head, warn),
                                  changes if keep else done, diffs, restarted, killed)
            if not action.quiet:
                done.append(action.describe)
            if isinstance(out, Done):
                restarted, killed = restarted or out.restarted, killed or out.killed
                value = out.value if out.value is not None else value
                out = out.note
            if out:
                notes.append(out)
        return StepResult(s.name, step, Status.CHANGED, said(*notes, warn), changes, diffs,
                          restarted, killed, value)

    # -- the common "these files, exactly" step --------------------------------
    def file_facts(self, s: HostSession, specs: list[FileSpec],
                   extra: dict[str, str] | None = None) -> tuple[dict, dict]:
        """One round trip: state of each wanted file plus any extra probes."""
        probes = {f"file:{sp.path}": remote.probe_file(sp.path) for sp in specs}
        probes.update(extra or {})
        facts = remote.read_facts(s, probes)
        states = {sp.path: remote.parse_file_probe(facts[f"file:{sp.path}"].out) for sp in specs}
        return states, facts

    def diffs_for(self, s: HostSession, changes: list[FileChange],
                  before: dict[str, bytes | None] | None = None) -> list[str]:
        if not self.opts.diff:
            return []
        wanted = [c for c in changes if c.content_changed]
        before = dict(before or {})
        missing = [c.spec.path for c in wanted if c.before is not None and c.spec.path not in before]
        if missing:
            facts = remote.read_facts(s, {p: remote.probe_file(p, content=True) for p in missing})
            for p in missing:
                before[p] = remote.parse_content_probe(facts[p].out)
        out = []
        for c in wanted:  # the redactor masks every secret value in the diff text
            if c.spec.sensitive:  # a secret as a whole: only how many lines changed
                out.append(sensitive_diff(c.spec.path, before.get(c.spec.path), c.spec.content))
            else:
                out.append(unified_diff(c.spec.path, before.get(c.spec.path), c.spec.content,
                                        self.rep.redact))
        return out

    def apply_files(self, s: HostSession, changes: list[FileChange], *,
                    validate: str | None = None, what: str = "write files",
                    check: bool = True) -> remote.CmdResult:
        """Write the changes atomically; a failure raises (CommandFailed) unless check=False,
        for a caller that reads the result itself (e.g. a failed validation, exit 3)."""
        script = remote.write_files_script(changes, self.stamp, validate,
                                           self.inv.cluster.backups_keep)
        return remote.run_script(s, script, what=what, check=check)


def make_run(inv: Inventory, check: bool = False, diff: bool = False, parallel: int = 16,
             log_dir: Path | None = None, stream=None) -> Run:
    redact = Redactor(inv.secrets.masked())  # the secrets and their derived forms
    rep = Reporter(redact, log_dir=log_dir, stream=stream)
    for w in inv.warnings:
        rep.warn(w)
    return Run(inv, RunOptions(check=check, diff=diff, parallel=parallel), rep)
