"""Run ids on the hosts: each run's manifest of the files it replaced, and `fab rollback`.

Every run has an id, its UTC stamp (`run.stamp`). A run that replaces a managed file keeps
the old version in /var/backups/bps-deploy (0600, root) and lists it in that host's manifest
`runs/<run id>` (tasks/scripts/backups.sh: `b MODE OWNER GROUP BACKUP PATH`); a run that
changes nothing writes none. So "the previous set" is well defined: the newest run id with a
manifest on any host. `fab rollback` puts back, on every host that run changed, each file as it
was before the run (the first backup of a path in the run: its state before the run), then
restarts the changed nodes in order, each healthy before the next. A rolled back run's
manifest becomes `<id>.undone` and the rollback's own one `<id>.rollback`, so a second
`fab rollback` goes one run further back (an undo stack, `cluster.backups_keep` deep).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from ...engine import remote
from ...engine.inventory import Host
from ...engine.plan import Plan
from ...engine.remote import q
from . import put_back

RUNS_DIR = f"{remote.BACKUP_DIR}/runs"
RUN_ID = re.compile(r"^\d{8}T\d{6}Z$")
STEP = "rollback"

# every manifest, each after a `@run NAME` line (names are stamps, with a suffix once undone)
RUNS_PROBE = (f"d={RUNS_DIR}; [ -d \"$d\" ] || exit 0; "
              "for m in $(ls \"$d\" | sort); do echo \"@run $m\"; cat \"$d/$m\"; done")


@dataclass(frozen=True)
class Entry:
    """One file a run replaced: where its old version is kept, and its metadata then."""
    path: str
    backup: str
    mode: int
    owner: str
    group: str


@dataclass
class HostRuns:
    runs: dict[str, list[Entry]] = field(default_factory=dict)  # manifest name -> entries

    @property
    def undoable(self) -> list[str]:
        """Run ids not rolled back yet (and not rollbacks), oldest first."""
        return sorted(n for n in self.runs if RUN_ID.match(n))


def parse_runs(out: str) -> HostRuns:
    got = HostRuns()
    name = None
    for line in out.splitlines():
        if line.startswith("@run "):
            name = line[5:].strip()
            got.runs[name] = []
            continue
        parts = line.split(" ", 5)
        if name is None or len(parts) != 6 or parts[0] != "b" or not parts[1].isdigit():
            continue  # a line of another format (a newer tool): not ours to act on
        got.runs[name].append(Entry(parts[5], parts[4], int(parts[1], 8), parts[2], parts[3]))
    return got


def pick_run(found: dict[str, HostRuns]) -> str | None:
    """Pure: the run to roll back: the newest run id not rolled back yet, on any host."""
    ids = [i for h in found.values() for i in h.undoable]
    return max(ids) if ids else None


def before_run(entries: list[Entry]) -> dict[str, Entry]:
    """Pure: per path, the run's first backup of it (a run may replace a file twice; its
    first backup is the file as it was before the run)."""
    out: dict[str, Entry] = {}
    for e in entries:
        out.setdefault(e.path, e)
    return out


def restore_probes(entries: dict[str, Entry]) -> dict[str, str]:
    p = put_back.probes(list(entries))
    p.update({f"bak:{path}": remote.probe_file(e.backup, content=True)
              for path, e in entries.items()})
    return p


def mark_script(run_id: str, stamp: str) -> str:
    """Shell: the run undone, this rollback's own manifest (if it replaced anything) named as
    a rollback: neither is picked by the next `fab rollback`."""
    d = RUNS_DIR
    return (f"mv -f {q(f'{d}/{run_id}')} {q(f'{d}/{run_id}.undone')}\n"
            f"if [ -e {q(f'{d}/{stamp}')} ]; then mv -f {q(f'{d}/{stamp}')} "
            f"{q(f'{d}/{stamp}.rollback')}; fi\n")


def plan_rollback(run, host: Host, run_id: str, entries: dict[str, Entry],
                  facts: dict[str, remote.Fact]) -> Plan:
    """Pure (facts in): put back each file run `run_id` replaced on this host, as it was."""
    wanted, missing = [], []
    for path, e in entries.items():
        st = remote.parse_file_probe(facts[f"bak:{path}"].out)
        if st is None:
            missing.append(f"{path} (its backup {e.backup} is gone)")
            continue
        wanted.append(put_back.spec(path, st.content or b"", e.mode, e.owner, e.group))
    if missing:
        return Plan.refuse(
            f"cannot roll back run {run_id}: " + "; ".join(missing) + ". Backups are kept for "
            "the newest cluster.backups_keep versions of each file; nothing was rolled back")
    try:
        current = put_back.states(facts, list(entries))
    except remote.NotAFile as e:
        return Plan.refuse(f"{e}; nothing was rolled back")
    return put_back.put_back_plan(run, host, wanted, current,
                                  systemd=facts["systemd"].out.strip() == "yes",
                                  why=f"rollback of run {run_id}",
                                  after=mark_script(run_id, run.stamp))
