"""`fab backup`: every cluster database and every managed file on every host, in one folder.

Each host in parallel: one fact read of its managed files (managed.py) with their bytes; the
DB host also dumps the databases (dbdump.py). Nothing on a host is changed. The folder is
written only when every host answered (archive.Writer: whole or not at all).

Also the safety net of every step that deletes data (`run.before_data_loss`, registered in
tasks/__init__.py): `fab db-init --drop` and `fab restore` take one first and stop when it
fails.
"""
from __future__ import annotations

import time
from pathlib import Path

from ...engine import remote
from ...engine.cli import Abort
from ...engine.remote import HostSession
from ...engine.report import StepResult
from ...engine.runner import Run
from . import archive, dbdump, managed

STEP = "backup"


def backups_root(run: Run) -> Path:
    return run.inv.path.parent / "backups"


def _read_files(run: Run, s: HostSession) -> tuple[list[tuple[str, remote.FileState]], list[str]]:
    paths = managed.managed_paths(run.inv, s.host)
    facts = remote.read_facts(s, {p: remote.probe_file(p, content=True) for p in paths})
    found, absent = [], []
    for p in paths:
        st = remote.parse_file_probe(facts[p].out)  # NotAFile for a link: named, not followed
        if st is None:
            absent.append(p)
        else:
            found.append((p, st))
    return found, absent


def take_backup(run: Run, why: str = "fab backup", root: Path | None = None) -> Path | None:
    """Write a backup folder; its path (None in check mode). Raises Abort on any failure,
    leaving no folder behind."""
    t0 = time.monotonic()
    inv = run.inv
    files: dict[str, tuple[list, list]] = {}
    dump: dict = {}

    def one(s: HostSession) -> StepResult:
        files[s.name] = found, absent = _read_files(run, s)
        said = f"{len(found)} managed file(s)" + (f", {len(absent)} absent" if absent else "")
        if s.host.role == "db":
            t = time.monotonic()
            res = remote.run_script(s, dbdump.dump_script(inv), what="database dump",
                                    timeout=max(s.timeout, 3600))
            names, server, gz = dbdump.parse_dump(res)
            dump.update(names=names, server=server, gz=gz, seconds=round(time.monotonic() - t, 1))
            said += (f"; {len(names)} database(s) dumped ({len(gz or b'') // 1024} KiB gzip, "
                     f"{server})" if names else "; no cluster database exists: none dumped")
        return StepResult(s.name, STEP, "ok", said)

    res = run.each(inv.hosts, STEP, one)
    bad = [f"{h}: {r.msg}" for h, r in res.items() if r.status.bad]
    if bad:
        raise Abort(f"backup ({why}) failed, no backup was written:\n  " + "\n  ".join(bad))
    if run.check:
        run.rep.line(None, f"would write a backup to {backups_root(run)}/{run.stamp} (check mode)")
        return None
    w = archive.Writer(root or backups_root(run), run.stamp)
    try:
        entries = []
        for h in inv.hosts:
            for path, st in files[h.name][0]:
                name = archive.stored_name(h.name, path)
                w.put(name, st.content or b"")
                entries.append({"host": h.name, "role": h.role, "path": path, "name": name,
                                "mode": f"{st.mode:04o}", "owner": st.owner, "group": st.group,
                                "sha256": st.sha256, "size": len(st.content or b"")})
        if dump.get("gz"):
            w.put(archive.DUMP, dump["gz"])
        # the cluster CA lives on this controller, not on a host: its key and certificate go
        # into the backup too (0600 like every file there); put back by hand if ever needed
        controller = []
        for p in (inv.certs.ca_key, inv.certs.ca_cert) if inv.certs.cluster_ca else ():
            if p.is_file():
                controller.append({"path": str(p), "name": f"controller/{p.name}",
                                   "sha256": w.put(f"controller/{p.name}", p.read_bytes())})
        manifest = {
            "format": archive.FORMAT, "run_id": run.stamp, "why": why,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "inventory": str(inv.path), "service_name": inv.cluster.service_name,
            "hosts": {h.name: {"role": h.role, "address": h.address} for h in inv.hosts},
            "databases": {"names": dump.get("names", []), "server": dump.get("server", ""),
                          "file": archive.DUMP if dump.get("gz") else None,
                          "dump_seconds": dump.get("seconds", 0)},
            "files": entries,
            "controller": controller,
            "absent": [{"host": h.name, "path": p} for h in inv.hosts for p in files[h.name][1]],
            "seconds": round(time.monotonic() - t0, 1),
        }
        folder = w.finish(manifest)
    except BaseException:
        w.abandon()
        raise
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    run.rep.line(None, f"backup written ({why}): {folder} ({len(manifest['databases']['names'])} "
                       f"database(s), {len(entries)} file(s) from {len(inv.hosts)} hosts, "
                       f"{size // 1024} KiB, {time.monotonic() - t0:.1f}s)")
    return folder


def before_data_loss(run: Run, what: str) -> None:
    """The guard a step calls before it deletes data: a backup, or the step does not run."""
    try:
        take_backup(run, why=f"before {what}")
    except Abort as e:
        raise Abort(f"{e}\nso `{what}` did not run: nothing was deleted") from None
