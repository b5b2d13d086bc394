"""The step contract: a step's pure planner returns a `Plan` of typed `Action`s; `Run.apply` runs it.

Every step has the same shape (pyinfra's operations, Ansible's modules):

    facts = read_x_facts(s, ...)          # one round trip, typed (engine.remote.probe_file, ...)
    plan = plan_x(facts, inv, ...)         # pure: no I/O, unit-tested on its own
    return run.apply(s, STEP, plan)        # the ONE place that knows check mode, diffs, status

`Run.apply` (engine/runner.py) owns what every step used to write by hand:
- a plan with `error` fails the host with that text (a refusal found while planning);
- a plan with no actions is `ok` with its `noop` reason, and runs nothing;
- in check mode a non-empty plan is `changed` with the runner's check-mode note, its change
  lines and diffs, and runs nothing;
- otherwise the actions run in order; an `ActionFailed` stops the plan and fails the host with the
  action's own message (what already ran is listed as done), any other `RemoteError` likewise;
- diffs come from the actions' `files` (FileChange), masked by the reporter's redactor and the
  password-field masking; a `FileSpec(sensitive=True)` shows only how many lines changed.

An action's `run(s)` may return a string: a note appended to the host's message (for example
"nginx reloaded"), or a `Done` to also mark the host restarted/killed or to hand a value on.

What a step hands to the next one (the LB certificate the nodes must trust) travels on the
result, `StepResult.value`: the last `Done.value` an action returned, else the plan's own
`value` (a no-op, check mode). Never an out-parameter filled from a worker thread.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

from .remote import FileChange, HostSession
from .report import Status  # noqa: F401  (part of the contract)


class ActionFailed(Exception):
    """An action could not do its work; the message names the cause and the fix."""

    def __init__(self, message: str, *, changes_done: bool = True, restarted: bool = False,
                 killed: bool = False):
        super().__init__(message)
        self.message = message
        self.changes_done = changes_done  # False: the action restored what it had changed
        # a start that failed its health gate did restart the node (the recap says so)
        self.restarted, self.killed = restarted, killed


@dataclass
class Done:
    """What an action may return besides a plain note."""

    note: str = ""
    restarted: bool = False
    killed: bool = False
    value: object = None  # handed on as StepResult.value (None: keep the plan's)


@dataclass
class Action:
    """One thing a plan does on one host.

    describe: the change line the report shows (and check mode shows as what would be done).
    run: does it over the host's session; raises ActionFailed/RemoteError; may return a note.
    files: the FileChanges it writes (their diffs are shown with --diff).
    """

    describe: str
    run: Callable[[HostSession], "str | Done | None"]
    files: Sequence[FileChange] = ()
    quiet: bool = False  # a follow-up (reload, verify) that adds no change line of its own


@dataclass
class Plan:
    """What a step will do on one host, decided purely from facts."""

    actions: list[Action] = field(default_factory=list)
    noop: str = "already as wanted"  # the reason nothing is needed (shown when actions is empty)
    warnings: list[str] = field(default_factory=list)  # shown with the result, never fatal
    error: str | None = None  # a refusal: nothing runs and the host fails with this text
    before: dict[str, bytes | None] = field(default_factory=dict)  # known contents, for diffs
    value: object = None  # StepResult.value when no action hands on one (no-op, check mode)

    def __bool__(self) -> bool:
        return bool(self.actions) or self.error is not None

    @property
    def changes(self) -> list[str]:
        return [a.describe for a in self.actions if not a.quiet]

    @property
    def files(self) -> list[FileChange]:
        return [f for a in self.actions for f in a.files]

    def add(self, describe: str, run: Callable[[HostSession], "str | Done | None"],
            files: Sequence[FileChange] = (), quiet: bool = False) -> "Plan":
        self.actions.append(Action(describe, run, tuple(files), quiet))
        return self

    @classmethod
    def refuse(cls, error: str) -> "Plan":
        return cls(error=error)
