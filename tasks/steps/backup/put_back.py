"""Put a set of files back on one host, for `fab rollback` and `fab restore`.

The files go through the tool's one write path (engine/remote.write_files_script, files.sh):
each file written by its owner into a temp file beside it, the current version backed up
(and listed in this run's manifest, so a rollback or a restore can itself be rolled back),
an atomic mv, the whole set put back as it was on any failure. Then what the host's role
needs for the files to take effect:
* LB: `nginx -t` on the new set before it goes live (rolled back when it fails), a reload;
* node: a pending-restart mark in the same script, so the node is restarted in order (and a
  run that dies before that restart is finished by the next one);
* DB: the server reads its drop-in at its next restart, said as a warning (the tool never
  restarts a DB server without `database.allow_server_restart`, and a rollback is no reason).
"""
from __future__ import annotations

from ...engine import remote
from ...engine.inventory import Host
from ...engine.plan import ActionFailed, Plan
from ...engine.remote import FileSpec, FileState, HostSession
from .. import lb, systemd as sd


def spec(path: str, content: bytes, mode: int, owner: str, group: str) -> FileSpec:
    """A file to put back exactly; one that is not world-readable is treated as a secret
    (never diffed in clear): the datasources, user-mgt.xml, keys, the truststore."""
    return FileSpec(path, content, owner, group, mode, sensitive=not mode & 0o004)


def probes(paths: list[str]) -> dict[str, str]:
    """The current state of each path (no contents) and whether systemd runs the host."""
    out = {f"cur:{p}": remote.probe_file(p) for p in paths}
    out["systemd"] = "[ -d /run/systemd/system ] && echo yes || echo no"
    return out


def states(facts: dict[str, remote.Fact], paths: list[str]) -> dict[str, FileState | None]:
    """Raises NotAFile (a link or folder where a file belongs): nothing is written there."""
    return {p: remote.parse_file_probe(facts[f"cur:{p}"].out) for p in paths}


def put_back_plan(run, host: Host, wanted: list[FileSpec], current: dict[str, FileState | None],
                  *, systemd: bool, why: str, after: str = "", noop: str = "") -> Plan:
    """Pure but for the actions' closures: the host's plan to make `wanted` exact.

    after: shell lines run at the end of the same script, only when the write succeeded (a
    rollback marks the run it undid there); also run alone when no file differs."""
    changes = remote.plan_files(wanted, current)
    plan = Plan(noop=noop or "every file already as in the backup")
    if not changes:
        if after:
            plan.add(f"{why}: nothing differs", lambda s: _run(s, after, why) and None, quiet=True)
        return plan
    validate = "nginx -t" if host.role == "lb" else None
    reload_units = systemd and any(c.spec.path == sd.UNIT_PATH and c.content_changed
                                   for c in changes)
    reason = f"{run.stamp} {why}: " + " ".join(c.spec.path.rsplit("/", 1)[-1] for c in changes)

    def write(s: HostSession) -> None:
        script = remote.write_files_script(changes, run.stamp, validate,
                                           run.inv.cluster.backups_keep)
        if reload_units:
            script += "systemctl daemon-reload\n"  # systemd reads a changed unit file then
        if host.role == "node":
            script += remote.pending_restart_script(reason)
        res = remote.run_script(s, script + after, what=why)
        if res.exit == 3 and validate:
            raise ActionFailed("nginx -t rejected the files put back; the files before this "
                               "run were put back and nginx still serves them:\n"
                               + lb.nginx_message(res.stderr), changes_done=False)
        if not res.ok:
            raise remote.CommandFailed(s.name, why, res)

    for i, ch in enumerate(changes):  # one write for the set, one change line per file
        # a secret file's bytes never reach a diff (a key, a datasource's password)
        secret = ch.spec.sensitive and ch.content_changed
        plan.add(ch.describe() + (" (not world-readable: no diff shown)" if secret else ""),
                 write if i == 0 else (lambda s: None), [] if secret else [ch])
    if reload_units:
        plan.add("systemctl daemon-reload", lambda s: None)  # in the write's script
    if host.role == "lb":
        plan.add("reload nginx", lambda s: _run(s, lb.nginx_service_script("reload"),
                                                "reload nginx") and None)
    elif host.role == "db":
        plan.warnings.append("the database server reads its drop-in at its next restart; "
                             "it was not restarted")
    return plan


def _run(s: HostSession, script: str, what: str) -> remote.CmdResult:
    return remote.run_script(s, script, check=True, what=what)
