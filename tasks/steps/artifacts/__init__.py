"""`fab artifacts`: the local folder's BPEL, HumanTask, BPMN and Carbon app archives, deployed
on every node, node 1 first, each verified by the node's own deployment log lines.

    local check (exit 2, no host touched) -> facts (the node fact read: sha256 of the deployed
    archives + our manifest) -> pure plan per node -> upload what differs, all nodes in parallel,
    to a staging folder outside the hot-deploy folders -> node 1: rename into place as the
    service user, wait for its log lines -> the other nodes in parallel, the same ->
    with --prune: undeploy what we deployed and the folder lost (the other nodes, node 1 last).

Node 1 versions the packages in the shared BPS database (its registry is the writable one):
the others load the version it made, so they go only once node 1 has deployed. A failure on
node 1 stops the run before any other node's hot-deploy folder is touched (what was staged
there is removed), showing node 1's own error lines.
"""
from __future__ import annotations

import io
import secrets
import threading
import time
from pathlib import Path

from invoke import task
from invoke.exceptions import Exit

from .. import services
from ...engine import remote
from ...engine.cli import COMMON_HELP, Abort, session
from ...engine.inventory import Host, Inventory
from ...engine.plan import ActionFailed, Plan
from ...engine.remote import HostSession, q
from ...engine.report import StepResult
from ...engine.runner import Run
from .local import Artifact, ArtifactError, load_folder
from .plan import (ArtifactPlan, NodeArtifacts, PROBE, fail_pattern, gone_pattern, ok_pattern,
                   parse, plan_node, probes, server_dir, stage_dir)

STEP = "artifacts"
_TIMING = threading.Lock()


def local_or_exit(inv: Inventory, folder: Path | None = None) -> list[Artifact]:
    """The checked local artifacts; a bad folder ends the run with exit 2 before any host."""
    folder = folder or (inv.artifacts.dir if inv.artifacts else None)
    if folder is None:
        raise Exit("error: no artifacts folder: set [artifacts] dir in hosts.toml or pass "
                   "--dir", code=2)
    try:
        return load_folder(folder)
    except ArtifactError as e:
        raise Exit(f"error: {e}", code=2) from None


def _lib(inv: Inventory, stamp: str) -> str:
    wait = inv.artifacts.wait if inv.artifacts else 120
    return (remote.backups_lib(stamp, inv.cluster.backups_keep) + remote.script("files.sh")
            + remote.script("log_since.sh", LOG=services.paths(inv)["log"],
                            ROLLED=services.ROLLED_LOGS)
            + remote.script("artifacts.sh", OWNER=inv.cluster.service_user,
                            SERVER=server_dir(inv), STAGE=stage_dir(inv),
                            MANIFEST=remote.STATE_DIR + "/artifacts.manifest", WAIT=wait))


def staged_name(i: int) -> str:
    return f"a{i}"


def send_files(s: HostSession, folder: str, files: dict[str, bytes]) -> None:
    """SFTP the raw bytes (no base64: a third fewer bytes, no shell parsing them) into a new
    private folder of the SSH user: mkdir fails if the path exists, and 0700 keeps everyone
    else out; root then reads it (the SSH user is root's equal through sudo anyway)."""
    # a client of our own: Fabric's Connection.sftp() caches one, which `with` would close
    sftp = s.c.client.open_sftp()
    try:
        sftp.mkdir(folder, 0o700)
        for name, data in files.items():
            sftp.putfo(io.BytesIO(data), f"{folder}/{name}", confirm=False)
    except (OSError, EOFError) as e:
        raise remote.RemoteError(f"SFTP upload to {folder} failed: {e or type(e).__name__} "
                                 "(is the SFTP subsystem enabled in sshd?)") from None
    finally:
        sftp.close()


def upload(run: Run, s: HostSession, p: ArtifactPlan) -> None:
    """Stage what the node needs: SFTP, then one script hands the bytes to the service user."""
    t0 = time.monotonic()
    folder = f"/tmp/.bps-upload-{secrets.token_hex(8)}"
    send_files(s, folder, {staged_name(i): a.data for i, a in enumerate(p.puts)})
    args = " ".join(f"{staged_name(i)} {len(a.data)} {a.sha256}" for i, a in enumerate(p.puts))
    remote.run_script(s, _lib(run.inv, run.stamp) + f"receive {q(folder)} {args}\n",
                      check=True, what="artifact upload")
    with _TIMING:  # bench/: the upload phase alone (all nodes at once: the slowest node)
        key = STEP + "-upload"
        run.step_seconds[key] = max(run.step_seconds.get(key, 0.0), time.monotonic() - t0)


def _wait_block(rows: list[tuple[str, str, str]]) -> str:
    body = "".join(f"{r}\t{ok}\t{bad}\n" for r, ok, bad in rows)
    return ("set -- $(stat -c '%s %i' \"$LOG\" 2>/dev/null || echo '0 0')\n"
            f"off=$1 ino=$2\n__ROWS__wait_lines \"$off\" \"$ino\" <<'__BPS_WAIT__'\n"
            f"{body}__BPS_WAIT__\n")


def deploy_script(inv: Inventory, p: ArtifactPlan, stamp: str) -> str:
    """Rename each staged archive into place (the previous one kept), then wait for the
    node's deployment line of each; one round trip."""
    moves = "".join(f"put {staged_name(i)} {a.sha256} {q(a.rel)}"
                    f"{' old' if a in p.changed else ''}\n" for i, a in enumerate(p.puts))
    moves += "".join(f"manifest_set {q(r)}\n" for r in p.forget)
    rows = [(a.rel, ok_pattern(a), fail_pattern(a.name)) for a in p.puts]
    return _lib(inv, stamp) + _wait_block(rows).replace("__ROWS__", moves)


def prune_script(inv: Inventory, p: ArtifactPlan, stamp: str) -> str:
    takes = "".join(f"take {q(r)}\n" for r in p.removed)
    rows = [(r, gone_pattern(r), fail_pattern(r.rsplit("/", 1)[-1])) for r in p.removed]
    return _lib(inv, stamp) + _wait_block(rows).replace("__ROWS__", takes)


def _run_checked(s: HostSession, script: str, what: str) -> str:
    """Run a deploy/prune script; exit 3 (a node's error or no line in time) is ActionFailed
    with the node's own lines."""
    res = remote.run_script(s, script, what=what, timeout=max(s.timeout, 3700))
    if res.exit == 3:
        raise ActionFailed(res.stdout.strip() + "\n(the node's own log lines above; "
                           "fix the archive and run again)")
    if not res.ok:
        raise ActionFailed(f"{what} failed (exit {res.exit}): "
                           f"{(res.stderr.strip() or res.stdout.strip())[-1500:]}")
    return f"{len([ln for ln in res.stdout.splitlines() if ln.startswith('ok ')])} verified " \
           "in the node's log"


# --------------------------------------------------------------------------- the step


class _State:
    def __init__(self):
        self.plans: dict[str, ArtifactPlan] = {}
        self.running: dict[str, bool] = {}


def stage_plan(run: Run, s: HostSession, p: ArtifactPlan, running: bool, count: int) -> Plan:
    """Phase 1, every node: the plan --check shows; otherwise only the upload to staging."""
    plan = Plan(noop=f"{count} artifact(s) deployed, all up to date", warnings=list(p.warnings))
    if run.check:
        for line in p.lines():
            plan.add(line, lambda _s: None)
        return plan
    if p.puts and not running:
        return Plan.refuse(f"EI is not running on {s.name}: it cannot deploy; nothing was "
                           "deployed (start it: `fab restart --only " + s.name + "`)")
    if p.puts:
        mb = p.upload_bytes / 1e6
        plan.add(f"upload {len(p.puts)} artifact(s), {mb:.2f} MB, to {stage_dir(run.inv)}",
                 lambda s_: upload(run, s_, p))
    elif p.removed or p.forget:
        plan.noop = "nothing to upload"
    return plan


def artifacts_step(run: Run, arts: list[Artifact], raw: dict[str, dict] | None = None,
                   states: dict | None = None, prune: bool = False) -> bool:
    """Deploy `arts` on the live nodes. raw/states: each node's fact read already made (fab
    deploy's configure read), so a no-op costs no command. False when a node failed."""
    inv = run.inv
    st = _State()
    nodes = run.alive(inv.nodes)

    def phase1(s: HostSession) -> StepResult:
        facts = (raw or {}).get(s.name)
        if facts is None or PROBE not in facts:
            probes_ = probes(inv)
            probes_.update(services.state_probes(inv, s.host.address, https=False))
            facts = remote.read_facts(s, probes_)
            running = services.parse_state(facts).running
        else:
            running = (states or {}).get(s.name).running if states and s.name in states \
                else True
        p = plan_node(arts, parse(inv, facts[PROBE].out), prune)
        st.plans[s.name], st.running[s.name] = p, running
        r = run.apply(s, STEP, stage_plan(run, s, p, running, len(arts)))
        if run.opts.diff and (p.puts or p.removed):
            r.diffs = list(r.diffs) + [p.listing()]
        return r

    first = run.each(nodes, STEP, phase1)
    if run.check:
        return all(r.status != "failed" for r in first.values())
    node1 = inv.nodes[0]
    staged = [n for n in nodes if st.plans.get(n.name) and st.plans[n.name].puts]
    if node1.name in run.dead and staged:
        _unstage(run, staged)
        raise Abort(f"{node1.name} (node 1) could not take the artifacts: nothing was deployed "
                    "on any node (see its line above)")
    if any(n.name in run.dead for n in staged):
        _unstage(run, [n for n in staged if n.name not in run.dead])
        raise Abort("the upload failed on a node: nothing was deployed on any node")

    def deploy_one(s: HostSession) -> StepResult:
        p = st.plans[s.name]
        plan = Plan(noop="up to date")
        if p.puts or p.forget:
            plan.add("deploy: " + "; ".join(p.lines()[:len(p.puts)]) if p.puts
                     else f"forget {len(p.forget)} artifact(s) removed by hand",
                     lambda s_: _run_checked(s_, deploy_script(inv, p, run.stamp),
                                             "artifact deployment"))
        return run.apply(s, STEP + "-deploy", plan)

    todo = [n for n in nodes if n.name in st.plans and (st.plans[n.name].puts
                                                         or st.plans[n.name].forget)]
    if node1 in todo:
        r = run.each([node1], STEP + "-deploy", deploy_one)[node1.name]
        if r.status == "failed":
            rest = [n for n in staged if n != node1]
            _unstage(run, rest)
            raise Abort(f"{node1.name} (node 1) did not deploy the artifacts; the other nodes "
                        f"were not touched ({', '.join(n.name for n in rest) or 'none'}): "
                        f"{r.msg.strip()}")
    others = [n for n in todo if n != node1 and n.name not in run.dead]
    ok = all(r.status != "failed" for r in run.each(others, STEP + "-deploy",
                                                      deploy_one).values())
    pruning = [n for n in nodes if n.name in st.plans and st.plans[n.name].removed
               and n.name not in run.dead]

    def prune_one(s: HostSession) -> StepResult:
        p = st.plans[s.name]
        plan = Plan().add("; ".join(p.lines()[len(p.puts):]),
                          lambda s_: _run_checked(s_, prune_script(inv, p, run.stamp),
                                                  "artifact undeployment"))
        return run.apply(s, STEP + "-prune", plan)

    later = [n for n in pruning if n != node1]  # the others first, node 1 last
    results = run.each(later, STEP + "-prune", prune_one)
    if node1 in pruning:
        if any(r.status == "failed" for r in results.values()):
            raise Abort("undeploying failed on a node: node 1 keeps its artifacts")
        results.update(run.each([node1], STEP + "-prune", prune_one))
    return ok and all(r.status != "failed" for r in results.values())


def _unstage(run: Run, hosts: list[Host]) -> None:
    """Remove what was staged on nodes that will not deploy it (best effort)."""
    script = _lib(run.inv, run.stamp) + "clear_stage\n"  # also what an upload left behind
    for h in hosts:
        try:
            remote.run_script(run.session(h), script, what="clear staged artifacts")
        except remote.RemoteError:
            run.rep.warn(f"{h.name}: staged artifacts left in {stage_dir(run.inv)}")


# --------------------------------------------------------------------------- status


def status_cells(inv: Inventory, raw: dict[str, dict]) -> dict[str, tuple[str, str | None]]:
    """Pure: node -> (its artifacts cell, a problem or None): the count of archives in the
    hot-deploy folders, and a flag on every node whose set differs from node 1's."""
    sets = {n: frozenset(parse(inv, f[PROBE].out).files.items())
            for n, f in raw.items() if PROBE in f}
    ref = sets.get(inv.nodes[0].name)
    out = {}
    for n, got in sets.items():
        if ref is not None and got != ref:
            diff = sorted({rel for rel, _ in got ^ ref})
            out[n] = (f"{len(got)} DIFFERS", "artifacts differ from node 1's: "
                      + ", ".join(diff[:5]) + (" ..." if len(diff) > 5 else ""))
        else:
            out[n] = (str(len(got)), None)
    return out


# --------------------------------------------------------------------------- task


@task(help={"check": COMMON_HELP["check"], "diff": "list the artifacts added, changed, removed "
            "and unchanged on each node", "parallel": COMMON_HELP["parallel"],
            "prune": "undeploy the artifacts this tool deployed that left the folder",
            "dir": "the local artifacts folder (default: [artifacts] dir in hosts.toml)"})
def artifacts(c, check=False, diff=False, parallel=16, prune=False, dir=None):
    """Deploy the artifacts folder (BPEL, HumanTask, BPMN, Carbon apps): node 1 first, verified."""
    from ...engine.cli import load_inventory
    arts = local_or_exit(load_inventory(c), Path(dir) if dir else None)
    with session(c, check=check, diff=diff, parallel=parallel, title="ARTIFACTS") as run:
        if not artifacts_step(run, arts, prune=prune):
            raise Abort("artifacts were not deployed on every node (see above)")
