"""The artifacts figure (issue 17): the upload phase of `fab artifacts` pushing 20 artifacts
(5 MB in all: 5 each of BPEL, HumanTask, BPMN and Carbon apps) to every node, against a plain
parallel `scp` of the same bytes to the same hosts in the same run.

Per cluster size: a lab (--base-index.., never the tests' 7..30 nor the bench's default 40),
one fresh `fab deploy` (the nodes must run to deploy), then `rounds` rounds of: new contents of
the 20 artifacts (every one changed) -> `scp` of the 20 files to every node at once (one scp
process per node, as the SSH user, into a fresh /tmp folder) -> `fab artifacts`. The tool's
upload phase (to staging on every node in parallel) is measured alone (SFTP + the hand-over to
the service user, the slowest node: the tool's "artifacts-upload" time) and with the connection
and the fact read before it (its "artifacts" step); the deployment waits (node 1, then the others, each verified in its log) are
reported apart. Then one no-op `fab artifacts`: SSH commands per node (1: the fact read).
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(REPO))

from lab.lab import Lab  # noqa: E402
from tests import artifact_samples as S  # noqa: E402

COUNT, TOTAL = 20, 5_000_000
TARGET_RATIO = 1.3


def make_artifacts(folder: Path, round_: int) -> int:
    """20 artifacts of ~250 kB (incompressible padding), new contents each round."""
    for f in folder.glob("*"):
        f.unlink()
    each = TOTAL // COUNT
    makers = [("Bpel{}.zip", lambda n, pad: S.bpel_zip(n, round_, pad)),
              ("Task{}.zip", lambda n, pad: S.humantask_zip(n, round_, pad)),
              ("Flow{}.bar", lambda n, pad: S.bpmn_bar(n, round_, pad)),
              ("App{}.car", lambda n, pad: S.car(n, f"1.0.{round_}", pad))]
    total = 0
    for i in range(COUNT):
        pattern, make = makers[i % 4]
        name = pattern.format(i)
        data = make(name.split(".")[0], each - 1200)
        (folder / name).write_bytes(data)
        total += len(data)
    return total


def fab(toml: Path, *args: str) -> dict:
    with tempfile.NamedTemporaryFile(prefix="bps-stats-", suffix=".json", delete=False) as f:
        stats = Path(f.name)
    env = {**os.environ, "FABRIC_INVENTORY": str(toml), "BPS_STATS_FILE": str(stats)}
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "fabric", *args], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=1800)
    wall = time.perf_counter() - t0
    data = json.loads(stats.read_text()) if stats.stat().st_size else {}
    stats.unlink(missing_ok=True)
    if p.returncode != 0:
        raise SystemExit(f"bench: fab {' '.join(args)} failed:\n{(p.stdout + p.stderr)[-4000:]}")
    return {"wall": wall, "stats": data}


def parallel_scp(lab: Lab, files: list[Path], round_: int) -> float:
    """The same bytes to every node at once: one scp per node, as the SSH user."""
    opts = ["-q", "-i", str(lab.key), "-o", f"UserKnownHostsFile={lab.known_hosts}",
            "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes"]
    dest = f"/tmp/scp-bench-{round_}"
    for n in lab.node_names:
        lab.exec(n, f"rm -rf /tmp/scp-bench-*; install -d -o deploy {dest}", check=True)
    t0 = time.perf_counter()
    procs = [subprocess.Popen(["scp", *opts, *map(str, files), f"deploy@{lab.address(n)}:{dest}/"])
             for n in lab.node_names]
    codes = [p.wait() for p in procs]
    took = time.perf_counter() - t0
    if any(codes):
        raise SystemExit(f"bench: scp failed ({codes})")
    return took


def bench_size(nodes: int, index: int, rounds: int, keep: bool) -> dict:
    lab = Lab(index=index, nodes=nodes)
    print(f"\n== artifacts: {nodes} nodes, lab {index}", flush=True)
    lab.up()
    res: dict = {"nodes": nodes, "lab_index": index, "rounds": []}
    try:
        fab(lab.hosts_toml, "deploy")
        folder = lab.run_dir / "bench-artifacts"
        folder.mkdir(exist_ok=True)
        toml = lab.run_dir / "hosts-artifacts.toml"
        toml.write_text(lab.hosts_toml.read_text() + f'\n[artifacts]\ndir = "{folder}"\n')
        for r in range(1, rounds + 1):
            size = make_artifacts(folder, r)
            scp = parallel_scp(lab, sorted(folder.glob("*")), r)
            run = fab(toml, "artifacts")
            steps = run["stats"].get("steps", {})
            row = {"bytes": size, "scp": scp, "upload": steps.get("artifacts-upload", 0.0),
                   "facts_and_upload": steps.get("artifacts", 0.0),
                   "deploy_node1_and_others": steps.get("artifacts-deploy", 0.0),
                   "wall": run["wall"]}
            row["ratio"] = row["upload"] / scp
            res["rounds"].append(row)
            print(f"   round {r}: {size / 1e6:.2f} MB; scp {scp:.2f}s, upload {row['upload']:.2f}s "
                  f"(x{row['ratio']:.2f}; with connect + fact read {row['facts_and_upload']:.2f}s"
                  f"); deployment waits {row['deploy_node1_and_others']:.2f}s;"
                  f" whole command {row['wall']:.2f}s", flush=True)
        noop = fab(toml, "artifacts")
        res["noop_commands"] = {h: c for h, c in noop["stats"].get("commands", {}).items()}
        res["noop_wall"] = noop["wall"]
        print(f"   no-op: {noop['wall']:.2f}s, SSH commands per node {res['noop_commands']}")
        for k in ("scp", "upload", "facts_and_upload", "ratio", "deploy_node1_and_others",
                  "wall"):
            res[f"{k}_median"] = statistics.median(r[k] for r in res["rounds"])
    finally:
        if not keep:
            lab.down()
    return res


def run(sizes: list[int], base_index: int, rounds: int, keep: bool, out: Path) -> int:
    data = {"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "cpus": os.cpu_count(), "sizes": []}
    for i, n in enumerate(sizes):
        data["sizes"].append(bench_size(n, base_index + i, rounds, keep))
    out.write_text(json.dumps(data, indent=1))
    print("\nnodes  scp s  upload s  ratio  target  +connect+facts s  waits s  no-op cmds/node")
    for r in data["sizes"]:
        cmds = max(v for h, v in r["noop_commands"].items() if h.startswith("node"))
        print(f"{r['nodes']:5}  {r['scp_median']:5.2f}  {r['upload_median']:8.2f}  "
              f"{r['ratio_median']:5.2f}  {TARGET_RATIO:6}  {r['facts_and_upload_median']:16.2f}  "
              f"{r['deploy_node1_and_others_median']:7.2f}"
              f"  {cmds}")
    print(f"json: {out}")
    return 0
