"""The commands: `fab backup`, `fab restore BACKUP --overwrite-cluster`, `fab rollback`."""
from __future__ import annotations

from pathlib import Path

from invoke import task

from ...engine.cli import COMMON_HELP, Abort, session
from .. import deploy
from . import restore as rs, rollback as rb, take


@task(help={"check": "read every host and say what would be backed up; write nothing",
            "to": "folder to write the backup into (default: backups/ beside hosts.toml)",
            "parallel": COMMON_HELP["parallel"]})
def backup(c, check=False, to=None, parallel=16):
    """Dump every cluster database and every managed file into a local, checksummed folder."""
    with session(c, check=check, parallel=parallel, title="BACKUP") as run:
        take.take_backup(run, root=Path(to) if to else None)


@task(positional=["backup"],
      help={"backup": "the backup folder (backups/<run id>)",
            "overwrite_cluster": "required: stop every node, replace the databases and the "
                                 "managed files with the backup's, start the nodes in order",
            "check": "verify the backup and show what would be restored; change nothing",
            "diff": COMMON_HELP["diff"], "parallel": COMMON_HELP["parallel"]})
def restore(c, backup, overwrite_cluster=False, check=False, diff=False, parallel=16):
    """Verify a backup, then stop every node, restore databases and files, start in order."""
    with session(c, check=check, diff=diff, parallel=parallel, title="RESTORE") as run:
        if not rs.restore_step(run, Path(backup), overwrite_cluster):
            raise Abort("the restore did not finish on every host (see above)")


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
