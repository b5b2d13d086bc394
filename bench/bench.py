#!/usr/bin/env python3
"""Benchmarks of `fab deploy` on the lab (run as root: `make bench`).

For each cluster size (2, 4, 8, 16 nodes, plus the LB and the DB host) it brings up a lab
(indexes 40.., so it never collides with the tests' labs 7-30), runs one fresh `fab deploy`
(timed, split by phase), then several no-op `fab deploy` runs (nothing to change), and records:

* wall time of the whole command as a user runs it (`python -m fabric deploy`: interpreter
  start, imports, inventory, connections, work, recap), and the tool's own time;
* SSH commands per host, from the tool's own counters (BPS_STATS_FILE, see tasks/cli.py);
* SSH connections per host, counted independently from each lab host's sshd log
  (`Accepted publickey ...`), and, in one extra no-op run per size (not timed), SSH commands and
  SFTP sessions per host counted on paramiko's channels (bench/sshcount.py): a cross-check of
  the tool's own counters;
* the machine's CPU use, sampled for 2 s with the lab idle before each size's no-op runs
  (figures taken above 25% are flagged), and during every run (both CPUs' busy share, and the
  tool's own CPU seconds).

Prints a table, writes bench/results/bench.json and draws bench/scaling.png (hosts vs seconds).
Nothing in the lab or the tool is tuned for it: the labs are the ones the tests use, and the
hosts.toml is the one the lab writes (the shipped hosts.toml with the lab's addresses).

    python3 bench/bench.py [--sizes 2,4,8,16] [--runs 7] [--keep] [--chart-only]
"""
from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
RESULTS = BENCH / "results"
sys.path.insert(0, str(REPO))

from lab.lab import Lab  # noqa: E402

BASE_INDEX = 40
TARGETS = {2: 1.5, 16: 3.0}  # no-op wall seconds
TARGET_CMDS = 5  # SSH commands per host per no-op run
# the same job written by hand, speed-tuned, on this machine (issue 9): hosts -> seconds
REFERENCE = {"pyinfra": {4: 3.4, 18: (6.7, 27.0)}, "Ansible": {4: 9.8, 18: 60.0}}
REFERENCE_CMDS = {"pyinfra": 35, "Ansible": 57}


def ensure_matplotlib() -> bool:
    try:
        import matplotlib  # noqa: F401
        return True
    except ImportError:
        pass
    print("bench: installing matplotlib (bench/requirements.txt)", flush=True)
    r = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--root-user-action=ignore",
                        "-r", str(BENCH / "requirements.txt")], capture_output=True, text=True)
    if r.returncode != 0:
        print(f"bench: pip failed, no chart:\n{r.stderr[-1500:]}", file=sys.stderr)
        return False
    return True


def loadavg() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def sshd_counts(lab: Lab) -> dict[str, dict[str, int]]:
    """Per host: SSH logins so far, from the host's own sshd log (its journal on a host that
    boots systemd)."""
    out = {}
    if lab.kind == "systemd":
        for h in lab.hosts:
            n = lab.exec(h, "journalctl -q --no-pager -o cat -u ssh.service | "
                            "grep -c '^Accepted publickey for ' || true").stdout.strip()
            out[h] = {"connections": int(n or 0)}
        return out
    for h in lab.hosts:
        f = lab.run_dir / "logs" / f"{h}.log"
        text = f.read_text(errors="replace") if f.exists() else ""
        out[h] = {"connections": len(re.findall(r"^Accepted publickey for ", text, re.M))}
    return out


def channel_counts(lab: Lab, toml: Path) -> dict[str, dict[str, int]]:
    """One extra no-op run with paramiko's channel calls counted (bench/sshcount.py):
    per host, SSH commands (exec), SFTP sessions (subsystem sftp) and shells."""
    with tempfile.NamedTemporaryFile(prefix="bps-chan-", suffix=".json", delete=False) as f:
        path = Path(f.name)
    env = {**os.environ, "FABRIC_INVENTORY": str(toml), "BENCH_SSH_COUNTS": str(path)}
    p = subprocess.run([sys.executable, str(BENCH / "sshcount.py"), "deploy"], cwd=REPO,
                       env=env, capture_output=True, text=True, timeout=600)
    raw = json.loads(path.read_text()) if path.exists() and path.stat().st_size else {}
    path.unlink(missing_ok=True)
    if p.returncode != 0:
        raise SystemExit(f"bench: counted run failed:\n{(p.stdout + p.stderr)[-3000:]}")
    by_addr = {lab.address(h): h for h in lab.hosts}
    return {by_addr.get(a, a): {"exec": c.get("exec", 0), "sftp": c.get("subsystem:sftp", 0),
                                "other": sum(v for k, v in c.items()
                                             if k not in ("exec", "subsystem:sftp"))}
            for a, c in raw.items()}


def cpu_times() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    v = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = v[3] + v[4]
    return sum(v) - idle, sum(v)


def fab_deploy(toml: Path, *args: str) -> dict:
    """One `fab deploy`, as a user runs it; returns wall seconds, the tool's stats, sshd counts."""
    with tempfile.NamedTemporaryFile(prefix="bps-stats-", suffix=".json", delete=False) as f:
        stats_file = Path(f.name)
    env = {**os.environ, "FABRIC_INVENTORY": str(toml), "BPS_STATS_FILE": str(stats_file)}
    import resource
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    b0, t0j = cpu_times()
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "fabric", "deploy", *args], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=1800)
    wall = time.perf_counter() - t0
    b1, t1j = cpu_times()
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    tool_cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    machine_busy = (b1 - b0) / max(1, t1j - t0j)
    try:
        stats = json.loads(stats_file.read_text())
    except (OSError, ValueError):
        stats = {}
    stats_file.unlink(missing_ok=True)
    return {"wall": wall, "rc": p.returncode, "stats": stats, "output": p.stdout + p.stderr,
            "tool_cpu": tool_cpu, "machine_busy": machine_busy}


def summary(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "stdev": statistics.stdev(values) if len(values) > 1 else 0.0, "n": len(values),
            "all": [round(v, 3) for v in values]}


def bench_size(nodes: int, index: int, runs: int, keep: bool, kind: str = "netns") -> dict:
    lab = Lab(index=index, nodes=nodes, kind=kind)
    print(f"\n== {nodes} nodes (+ lb, db), {kind} hosts: lab {index}", flush=True)
    t = time.monotonic()
    lab.up()
    print(f"   lab up in {time.monotonic() - t:.1f}s", flush=True)
    toml = lab.hosts_toml
    res: dict = {"nodes": nodes, "hosts": nodes + 2, "lab_index": index, "kind": kind}
    try:
        before = sshd_counts(lab)
        res["load_before_fresh"] = loadavg()
        fresh = fab_deploy(toml)
        after = sshd_counts(lab)
        if fresh["rc"] != 0:
            raise SystemExit(f"bench: fresh deploy on lab {index} failed (exit {fresh['rc']}):\n"
                             f"{fresh['output'][-4000:]}")
        res["fresh"] = {"wall": fresh["wall"], "tool_seconds": fresh["stats"].get("seconds"),
                        "phases": fresh["stats"].get("steps", {}),
                        "commands": fresh["stats"].get("commands", {}),
                        "connections": {h: after[h]["connections"] - before[h]["connections"]
                                        for h in lab.hosts}}
        print(f"   fresh deploy: {fresh['wall']:.1f}s", flush=True)
        time.sleep(2)
        b0, t0 = cpu_times()
        time.sleep(2)
        b1, t1 = cpu_times()
        res["idle_busy"] = (b1 - b0) / max(1, t1 - t0)
        print(f"   machine busy while the lab idles: {res['idle_busy']:.0%}", flush=True)
        noop = []
        for i in range(runs):
            before = sshd_counts(lab)
            load = loadavg()
            r = fab_deploy(toml)
            after = sshd_counts(lab)
            st = r["stats"].get("status", {})
            changed = {h: row.get("changed", 0) for h, row in st.items() if row.get("changed")}
            if r["rc"] != 0 or changed:
                raise SystemExit(f"bench: run {i + 1} was not a no-op (exit {r['rc']}, changed "
                                 f"{changed}):\n{r['output'][-4000:]}")
            noop.append({"wall": r["wall"], "tool_seconds": r["stats"].get("seconds"),
                         "steps": r["stats"].get("steps", {}),
                         "commands": r["stats"].get("commands", {}), "load_before": load,
                         "tool_cpu": r["tool_cpu"], "machine_busy": r["machine_busy"],
                         "connections": {h: after[h]["connections"] - before[h]["connections"]
                                         for h in lab.hosts}})
            print(f"   no-op {i + 1}/{runs}: {r['wall']:.2f}s (tool {r['stats'].get('seconds', 0):.2f}s,"
                  f" tool CPU {r['tool_cpu']:.2f}s, both CPUs {r['machine_busy']:.0%} busy, "
                  f"load {load:.2f})", flush=True)
        res["noop_runs"] = noop
        res["noop_wall"] = summary([r["wall"] for r in noop])
        res["noop_tool"] = summary([r["tool_seconds"] or 0.0 for r in noop])
        res["noop_tool_cpu"] = summary([r["tool_cpu"] for r in noop])
        res["noop_machine_busy"] = summary([r["machine_busy"] for r in noop])
        cmds = [c for r in noop for c in r["commands"].values()]
        res["noop_commands_per_host"] = {"max": max(cmds), "min": min(cmds),
                                         "by_host": noop[-1]["commands"]}
        res["noop_connections_per_host_max"] = max(c for r in noop for c in r["connections"].values())
        chan = channel_counts(lab, toml)
        res["noop_channels"] = chan
        res["noop_sftp_total"] = sum(c["sftp"] for c in chan.values())
        res["noop_exec_per_host_max"] = max(c["exec"] for c in chan.values())
        steps = {}
        for r in noop:
            for k, v in r["steps"].items():
                steps.setdefault(k, []).append(v)
        res["noop_steps_median"] = {k: statistics.median(v) for k, v in steps.items()}
    finally:
        if not keep:
            lab.down()
    return res


def python_startup(runs: int = 5) -> dict:
    """What the interpreter and the imports cost before the tool touches a host."""
    vals = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "fabric", "--list"], cwd=REPO, capture_output=True)
        vals.append(time.perf_counter() - t0)
    return summary(vals)


# --------------------------------------------------------------------------- output


def label(r: dict) -> str:
    """A size's name: its node count, with `sd` for hosts that boot systemd."""
    return f"{r['nodes']}" + ("sd" if r.get("kind") == "systemd" else "")


def table(data: dict) -> str:
    rows = [f"{'nodes':>5} {'hosts':>5} | {'no-op median':>12} {'min-max':>13} {'stdev':>6} "
            f"{'(tool)':>7} | {'ssh cmds/host':>13} {'conns/host':>10} {'sftp':>4} | target"]
    rows.append("-" * len(rows[0]))
    for r in data["sizes"]:
        w = r["noop_wall"]
        tgt = TARGETS.get(r["nodes"])
        verdict = "" if tgt is None else (f"<= {tgt}s met" if w["median"] <= tgt
                                          else f"<= {tgt}s MISSED")
        rows.append(f"{label(r):>5} {r['hosts']:>5} | {w['median']:>11.2f}s "
                    f"{w['min']:>5.2f}-{w['max']:<5.2f}s {w['stdev']:>5.2f}s "
                    f"{r['noop_tool']['median']:>6.2f}s | "
                    f"{r['noop_commands_per_host']['max']:>6} /{r['noop_exec_per_host_max']:>5} "
                    f"{r['noop_connections_per_host_max']:>10} {r['noop_sftp_total']:>4} | "
                    f"{verdict}")
    out = "\n".join(rows)
    for r in data["sizes"]:
        if "fresh" in r:
            f = r["fresh"]
            ph = ", ".join(f"{k} {v:.1f}s" for k, v in f["phases"].items())
            out += (f"\nfresh deploy, {label(r)} nodes: {f['wall']:.1f}s wall "
                    f"(tool {f['tool_seconds'] or 0:.1f}s): {ph}")
    s = data.get("python_startup")
    if s:
        out += (f"\ninterpreter + imports (`python -m fabric --list`): median {s['median']:.2f}s "
                f"({s['min']:.2f}-{s['max']:.2f}s)")
    return out


def markdown(data: dict) -> str:
    """The README's tables, from the JSON."""
    m = data["machine"]
    out = [f"Measured {data['started']} .. {data.get('finished', '?')}, {m['cpus']} CPUs, "
           f"Python {m['python']}, {data['runs']} no-op runs per size.", "",
           "| nodes (hosts) | no-op `fab deploy` wall: median | min - max | stdev | inside the "
           "tool | the tool's CPU | machine CPUs busy | SSH commands / host | SSH connections / host "
           "| SFTP ops | target |",
           "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in data["sizes"]:
        w, tgt = r["noop_wall"], TARGETS.get(r["nodes"])
        verdict = "" if tgt is None else (f"<= {tgt} s: met" if w["median"] <= tgt
                                          else f"<= {tgt} s: **missed**")
        c = r["noop_commands_per_host"]
        out.append(f"| {label(r)} ({r['hosts']}) | {w['median']:.2f} s | {w['min']:.2f} - "
                   f"{w['max']:.2f} s | {w['stdev']:.2f} s | {r['noop_tool']['median']:.2f} s | "
                   f"{r.get('noop_tool_cpu', {}).get('median', 0):.2f} s | "
                   f"{r.get('noop_machine_busy', {}).get('median', 0):.0%} | "
                   f"{c['max']} (db host: {c['by_host'].get('db', '?')}); counted on the channels: "
                   f"{r['noop_exec_per_host_max']} | "
                   f"{r['noop_connections_per_host_max']} | {r['noop_sftp_total']} | {verdict} |")
    out += ["", "| nodes | fresh `fab deploy` wall | " + " | ".join(
        k for k in data["sizes"][0]["fresh"]["phases"]) + " |",
        "|---|---|" + "---|" * len(data["sizes"][0]["fresh"]["phases"])]
    for r in data["sizes"]:
        f = r["fresh"]
        out.append(f"| {label(r)} | {f['wall']:.1f} s | " + " | ".join(
            f"{f['phases'].get(k, 0):.1f} s" for k in data["sizes"][0]["fresh"]["phases"]) + " |")
    out += ["", "| nodes | no-op, median per step: " + " | ".join(
        data["sizes"][0]["noop_steps_median"]) + " |",
        "|---|" + "---|" * len(data["sizes"][0]["noop_steps_median"])]
    for r in data["sizes"]:
        out.append(f"| {label(r)} | " + " | ".join(
            f"{r['noop_steps_median'].get(k, 0):.2f} s" for k in data["sizes"][0]["noop_steps_median"])
            + " |")
    return "\n".join(out) + "\n"


def chart(data: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = sorted((r for r in data["sizes"] if r.get("kind", "netns") == "netns"),
                   key=lambda r: r["hosts"])
    sd = sorted((r for r in data["sizes"] if r.get("kind") == "systemd"), key=lambda r: r["hosts"])
    x = [r["hosts"] for r in sizes]
    med = [r["noop_wall"]["median"] for r in sizes]
    lo = [r["noop_wall"]["median"] - r["noop_wall"]["min"] for r in sizes]
    hi = [r["noop_wall"]["max"] - r["noop_wall"]["median"] for r in sizes]
    tool = [r["noop_tool"]["median"] for r in sizes]
    fig, ax = plt.subplots(figsize=(7.5, 4.6), dpi=110)
    ax.errorbar(x, med, yerr=[lo, hi], fmt="o-", color="#1f6fb2", capsize=4, lw=2,
                label="bps-deploy no-op `fab deploy` (wall, median, min-max)")
    ax.plot(x, tool, "s--", color="#1f6fb2", alpha=0.55, ms=4,
            label="bps-deploy, time inside the tool (no interpreter start)")
    if sd:
        ax.plot([r["hosts"] for r in sd], [r["noop_wall"]["median"] for r in sd], "o:",
                color="#6a3d9a", lw=2, label="bps-deploy no-op, hosts that boot systemd")
    ax.plot([4, 18], [1.5, 3.0], "v", color="green", ms=9, label="targets (1.5 s / 3 s)")
    ax.plot([4, 18], [3.4, 6.7], "^-", color="#e08a00", alpha=0.8, label="pyinfra, hand-tuned")
    ax.vlines(18, 6.7, 27.0, color="#e08a00", alpha=0.5, lw=3)
    ax.plot([4, 18], [9.8, 60.0], "D-", color="#c0392b", alpha=0.8, label="Ansible, hand-tuned")
    ax.set_xlabel("hosts (nodes + LB + DB)")
    ax.set_ylabel("seconds, no-op deploy")
    ax.set_yscale("log")
    from matplotlib.ticker import FixedLocator, NullFormatter, ScalarFormatter
    ax.yaxis.set_major_locator(FixedLocator([0.5, 1, 1.5, 2, 3, 5, 10, 20, 30, 60]))
    ax.yaxis.set_major_formatter(ScalarFormatter())
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_xticks(x)
    ax.set_title("No-op `fab deploy`: cost as the cluster grows")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="2,4,8,16", help="node counts (default 2,4,8,16)")
    ap.add_argument("--runs", type=int, default=7, help="no-op runs per size (default 7)")
    ap.add_argument("--keep", action="store_true", help="leave the labs up")
    ap.add_argument("--kinds", default="netns",
                    help="lab host kinds, comma-separated: netns (default), systemd (hosts that "
                         "boot systemd under systemd-nspawn; shown as 2sd, 16sd, ...)")
    ap.add_argument("--base-index", type=int, default=BASE_INDEX,
                    help=f"first lab index (default {BASE_INDEX}; one per size and kind)")
    ap.add_argument("--artifacts", action="store_true",
                    help="the artifacts figure instead (bench/artifacts_bench.py): fab artifacts' "
                         "upload vs a parallel scp; --runs is its rounds (default 3)")
    ap.add_argument("--chart-only", action="store_true",
                    help="redraw bench/scaling.png from bench/results/bench.json")
    a = ap.parse_args(argv)
    RESULTS.mkdir(parents=True, exist_ok=True)
    if a.artifacts:
        import artifacts_bench
        sizes = [int(s) for s in a.sizes.split(",") if s.strip()]
        rounds = a.runs if "--runs" in (argv or sys.argv) else 3
        return artifacts_bench.run(sizes, a.base_index, rounds, a.keep,
                                   RESULTS / "artifacts.json")
    out_json = RESULTS / "bench.json"
    if a.chart_only:
        data = json.loads(out_json.read_text())
    else:
        if os.geteuid() != 0:
            print("bench: needs root (the lab uses network namespaces)", file=sys.stderr)
            return 1
        if a.runs < 5:
            print("bench: --runs must be 5 or more (median and spread)", file=sys.stderr)
            return 1
        sizes = [int(s) for s in a.sizes.split(",") if s.strip()]
        data = {"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "machine": {"cpus": os.cpu_count(), "load_at_start": loadavg(),
                            "python": sys.version.split()[0]},
                "runs": a.runs, "sizes": []}
        data["python_startup"] = python_startup()
        kinds = [k.strip() for k in a.kinds.split(",") if k.strip()]
        for j, kind in enumerate(kinds):
            for i, n in enumerate(sizes):
                data["sizes"].append(bench_size(n, a.base_index + j * len(sizes) + i, a.runs,
                                                a.keep, kind))
        data["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        out_json.write_text(json.dumps(data, indent=1))
    print("\n" + table(data))
    busy = [r["nodes"] for r in data["sizes"] if r.get("idle_busy", 0) > 0.25]
    if busy:
        print(f"note: the machine was busy (> 25% CPU with the lab idle) before the runs for "
              f"{busy} nodes: take figures again on a quiet machine")
    (RESULTS / "tables.md").write_text(markdown(data))
    print(f"\njson: {out_json}\nmarkdown: {RESULTS / 'tables.md'}")
    if ensure_matplotlib():
        chart(data, BENCH / "scaling.png")
        print(f"chart: {BENCH / 'scaling.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
