"""Run `fab ARGS` with paramiko's channel calls counted, per remote address (bench only).

    BENCH_SSH_COUNTS=/tmp/counts.json python3 bench/sshcount.py deploy

Counts every `exec_command` (an SSH command), `invoke_subsystem` (SFTP is the `sftp`
subsystem) and `invoke_shell` on any channel, independently of the tool's own counters, and
writes {address: {kind: n}} to BENCH_SSH_COUNTS at exit. Used for one extra run per size, never
for the timed runs.
"""
from __future__ import annotations

import atexit
import json
import os
import runpy
import sys
import threading

import paramiko

_counts: dict[str, dict[str, int]] = {}
_lock = threading.Lock()


def _bump(chan, kind: str) -> None:
    try:
        addr = chan.get_transport().getpeername()[0]
    except Exception:  # noqa: BLE001
        addr = "?"
    with _lock:
        row = _counts.setdefault(addr, {})
        row[kind] = row.get(kind, 0) + 1


def _wrap(name: str, kind):
    orig = getattr(paramiko.Channel, name)

    def wrapper(self, *a, **kw):
        _bump(self, kind(*a, **kw) if callable(kind) else kind)
        return orig(self, *a, **kw)

    setattr(paramiko.Channel, name, wrapper)


_wrap("exec_command", "exec")
_wrap("invoke_subsystem", lambda subsystem, *a, **kw: f"subsystem:{subsystem}")
_wrap("invoke_shell", "shell")


@atexit.register
def _dump() -> None:
    path = os.environ.get("BENCH_SSH_COUNTS")
    if path:
        with open(path, "w") as f:
            json.dump(_counts, f)


sys.argv = ["fab", *sys.argv[1:]]
runpy.run_module("fabric", run_name="__main__", alter_sys=True)
