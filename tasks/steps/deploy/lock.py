"""The deploy lock: one deploy at a time, an atomic mkdir on the LB host (tasks/scripts/lock.sh)."""
from __future__ import annotations

import contextlib
import getpass
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from ...engine import remote
from ...engine.cli import Abort
from ...engine.plan import Plan
from ...engine.remote import HostSession
from ...engine.report import StepResult
from ...engine.runner import Run

LOCK_DIR = f"{remote.STATE_DIR}/deploy.lock"
BOOT_ID = "/proc/sys/kernel/random/boot_id"


@dataclass(frozen=True)
class LockOwner:
    """Who holds (or would hold) the deploy lock: `user@machine pid=N boot=ID since=TIME`."""
    user: str
    machine: str
    pid: int
    boot: str  # this machine's boot id, "?" where there is none: a pid means nothing across boots
    since: str = ""

    def __str__(self) -> str:
        return f"{self.user}@{self.machine} pid={self.pid} boot={self.boot} since={self.since}"

    @classmethod
    def parse(cls, text: str) -> "LockOwner | None":
        fields = dict(f.split("=", 1) for f in text.split()[1:] if "=" in f)
        who = text.split()[0] if text.split() else ""
        user, at, machine = who.partition("@")
        try:
            return cls(user, machine, int(fields["pid"]), fields.get("boot", "?"),
                       fields.get("since", "")) if at and user and machine else None
        except (KeyError, ValueError):
            return None


def _boot_id() -> str:
    try:
        return Path(BOOT_ID).read_text().strip() or "?"
    except OSError:
        return "?"


def _lock_owner() -> LockOwner:
    return LockOwner(getpass.getuser(), socket.gethostname(), os.getpid(), _boot_id(),
                     time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime()))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def stale_lock(holder: str, me: LockOwner, pid_alive=_pid_alive) -> tuple[bool, str]:
    """Pure (pid_alive aside): may this lock be broken without asking, and why (not).

    Only a lock of this user on this machine since its last boot, whose process is gone: any
    other (another user, another machine, a reboot since, a live or unknown pid) may be a run
    we cannot see, and is broken only by `fab unlock` / `--break-lock`.
    """
    owner = LockOwner.parse(holder)
    if owner is None:
        return False, "the lock's owner cannot be read"
    if owner.machine != me.machine:
        return False, f"taken on another machine ({owner.machine})"
    if owner.user != me.user:
        return False, f"taken by another user ({owner.user}, you are {me.user})"
    if owner.boot == "?" or me.boot == "?":
        return False, "no boot id to prove its pid belongs to this boot"
    if owner.boot != me.boot:
        return False, "taken before this machine's last reboot (boot id differs)"
    if pid_alive(owner.pid):
        return False, f"its process {owner.pid} is still running"
    return True, f"its process {owner.pid} is gone (same user, machine and boot)"


def lock_lib(owner: str = "") -> str:
    return remote.script("lock.sh", LOCK_DIR=LOCK_DIR, OWNER=owner)


def acquire_lock(run: Run, break_lock: bool = False) -> None:
    """One deploy at a time: an atomic mkdir on the LB host, with who/when/pid inside."""
    s = run.session(run.inv.lb)
    me = _lock_owner()
    script = lock_lib(str(me)) + ("lock_break\n" if break_lock else "") + "lock_take\n"
    res = remote.run_script(s, script, check=True, what="lock")
    if res.stdout.startswith("ACQUIRED"):
        return
    holder = res.stdout.split("\n", 1)[1].strip() if "\n" in res.stdout else "?"
    stale, why = stale_lock(holder, me)
    if stale and not break_lock:
        run.rep.warn(f"breaking the stale deploy lock of a dead run ({holder}): {why}")
        return acquire_lock(run, break_lock=True)
    raise Abort(f"another deploy holds the lock on {run.inv.lb.name} ({holder}). Wait for it; "
                f"it was not broken automatically: {why}. If that run is dead, break the lock "
                "with `fab unlock` or `--break-lock`")


def release_lock(run: Run) -> None:
    try:
        remote.run_script(run.session(run.inv.lb), lock_lib() + "lock_break\n")
    except remote.RemoteError:
        run.rep.warn(f"could not release the deploy lock on {run.inv.lb.name}")


@contextlib.contextmanager
def deploy_lock(run: Run, break_lock: bool = False) -> Iterator[None]:
    """Hold the lock for a run that changes hosts; a check run changes nothing and takes none
    (so it never waits for, nor blocks, a real deploy)."""
    if run.check:
        yield
        return
    acquire_lock(run, break_lock)
    try:
        yield
    finally:
        release_lock(run)


def unlock_plan(holder: str) -> Plan:
    """Pure: break the lock `holder` holds (`fab unlock`), nothing when none is held."""
    plan = Plan(noop="no lock held")
    if holder:
        plan.add(f"remove the deploy lock of {holder}",
                 lambda s: remote.run_script(s, lock_lib() + "lock_break\n", check=True,
                                             what="unlock") and None)
    return plan


def unlock_host(run: Run, s: HostSession) -> StepResult:
    holder = remote.run_script(s, lock_lib() + "lock_show\n", check=True, what="lock").stdout
    return run.apply(s, "unlock", unlock_plan(holder.strip()))
