"""The commands: `fab backup`, `fab restore BACKUP`, `fab rollback`."""
from __future__ import annotations

from invoke import task

from ...engine.cli import COMMON_HELP, Abort, session
from .. import deploy
from . import rollback as rb


@task(help={"check": COMMON_HELP["check"], "diff": COMMON_HELP["diff"],
            "parallel": COMMON_HELP["parallel"]})
def rollback(c, check=False, diff=False, parallel=16):
    """Put back the files the newest run replaced, on every host; restart in order."""
    with session(c, check=check, diff=diff, parallel=parallel, title="ROLLBACK") as run:
        if not run.check:
            deploy.acquire_lock(run)
        try:
            if not rb.rollback_step(run):
                raise Abort("the rollback did not finish on every host (see above)")
        finally:
            if not run.check:
                deploy.release_lock(run)
