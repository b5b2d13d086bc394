"""Glue shared by the task modules: find the inventory, start a run, end it with a recap."""
from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import Iterator

from invoke.exceptions import Exit

from . import inventory
from .inventory import Host, Inventory, InventoryError
from .runner import Run, make_run

class Abort(Exception):
    """Stop the whole run here (after a failed gate); the message says why and what to do."""


REPO = Path(__file__).resolve().parents[2]

# Flag help shared by every task that changes hosts.
COMMON_HELP = {
    "check": "read facts and show what a run would do; touch nothing",
    "diff": "show unified diffs of the files a run writes (secrets masked)",
    "parallel": "hosts worked on at once (default 16)",
    "on": "hosts: 'all', a role (lb, nodes, db) or inventory names, comma-separated",
}


def inventory_path(c) -> Path:
    """hosts.toml: FABRIC_INVENTORY (or config 'inventory'), else the repo's hosts.toml."""
    value = None
    try:
        value = c.config.get("inventory")
    except Exception:
        pass
    value = os.environ.get("FABRIC_INVENTORY") or value or str(REPO / "hosts.toml")
    return Path(value)


def load_inventory(c) -> Inventory:
    try:
        return inventory.load(inventory_path(c))
    except InventoryError as e:
        raise Exit(f"error: {e}", code=2) from None


def targets(c, inv: Inventory, on: str | None, default: str = "all") -> list[Host]:
    """Hosts from --on, or from `fab -H name` (inventory names), or the default."""
    spec = on
    host = getattr(c, "host", None)
    if not spec and host:
        spec = host
    try:
        return inv.select(spec or default)
    except InventoryError as e:
        raise Exit(f"error: {e}", code=2) from None


@contextlib.contextmanager
def session(c, *, check: bool = False, diff: bool = False, parallel: int = 16,
            title: str = "RECAP", read_only: bool = False, stream=None) -> Iterator[Run]:
    """Open a run; always close connections, print the recap and exit non-zero on failure.

    read_only: a run that only reads (fab status: it calls read-only entry points such as
    node_config.plan_configure, never run.apply): no ok/changed recap (the task prints its own
    summary and decides its exit code)."""
    inv = load_inventory(c)
    run = make_run(inv, check=check, diff=diff, parallel=parallel,
                   log_dir=inv.path.parent / "logs", stream=stream)
    if check:
        run.rep.line(None, "CHECK MODE: nothing will be changed on any host")
    code = 0
    try:
        yield run
    except Abort as e:
        run.rep.line(None, f"STOPPED: {e}", "failed")
        code = 1
    except KeyboardInterrupt:
        run.rep.line(None, "interrupted: the next run completes what this one left (pending "
                           "restarts are kept on the nodes)", "failed")
        code = 130
    finally:
        run.close()
        _write_stats(run)
        rc = 0 if read_only else run.rep.recap(
            title + (" (check mode: nothing changed)" if check else ""))
        run.rep.close()
        code = code or rc
    if code:
        raise Exit(code=code)


def _write_stats(run: Run) -> None:
    """For bench/: per-host SSH command counts and per-step seconds, when asked for."""
    path = os.environ.get("BPS_STATS_FILE")
    if not path:
        return
    import json
    import time
    stats = {"seconds": time.monotonic() - run.rep.started, "commands": run.commands,
             "steps": run.step_seconds,
             "status": {h: row for h, row in run.rep.host_status().items()}}
    Path(path).write_text(json.dumps(stats, indent=1))
