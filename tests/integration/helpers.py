"""Shared helpers for the lab tests: run the tool, talk to the LB, snapshot hosts."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

from tests.paths import REPO


def fab(lab_or_toml, *args: str, timeout: float = 600, env: dict | None = None
        ) -> subprocess.CompletedProcess:
    """Run `fab ARGS` against a lab's hosts.toml (or a given path); output captured as text."""
    toml = lab_or_toml if isinstance(lab_or_toml, (str, Path)) else lab_or_toml.run_dir / "hosts.toml"
    e = {**os.environ, "FABRIC_INVENTORY": str(toml), **(env or {})}
    return subprocess.run([sys.executable, "-m", "fabric", *args], cwd=REPO, env=e,
                          capture_output=True, text=True, timeout=timeout)


def noop_deploy(lab_or_toml, stats: Path, max_commands: int = 5
                ) -> tuple[subprocess.CompletedProcess, dict[str, int]]:
    """`fab deploy` that must change nothing and restart nothing, with at most `max_commands`
    SSH commands on any host (the no-op budget); returns the run and its commands per host."""
    assert Path(stats).suffix == ".json", f"{stats}: the stats file is written over"
    r = fab(lab_or_toml, "deploy", env={"BPS_STATS_FILE": str(stats)})
    rows = recap_rows(r.stdout)
    assert r.returncode == 0 and rows, out(r)
    assert all(row["changed"] == 0 and not row["restarted"] for row in rows.values()), r.stdout
    cmds = json.loads(Path(stats).read_text())["commands"]
    assert cmds and max(cmds.values()) <= max_commands, cmds
    return r, cmds


def out(r: subprocess.CompletedProcess) -> str:
    return r.stdout + r.stderr


def recap_rows(text: str) -> dict[str, dict[str, int]]:
    """Parse the recap table: host -> {ok, changed, failed, unreach, skipped}."""
    rows = {}
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("host ") and "changed" in line and "restarted" in line:
            for row in lines[i + 1:]:
                m = re.match(r"^(\S+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(yes|no)$", row)
                if not m:
                    break
                rows[m.group(1)] = {"ok": int(m.group(2)), "changed": int(m.group(3)),
                                    "failed": int(m.group(4)), "unreach": int(m.group(5)),
                                    "skipped": int(m.group(6)), "restarted": m.group(7) == "yes"}
    return rows


def curl(url: str, host: str | None = None, resolve: str | None = None,
         timeout: float = 5) -> tuple[int, str]:
    cmd = ["curl", "-sk", "--max-time", str(timeout), "-o", "-", "-w", "\n%{http_code}"]
    if host:
        cmd += ["-H", f"Host: {host}"]
    if resolve:
        cmd += ["--resolve", resolve]
    p = subprocess.run(cmd + [url], capture_output=True, text=True)
    body, _, code = p.stdout.rpartition("\n")
    return int(code or 0), body


def served_by(body: str) -> str:
    m = re.search(r"served-by: (\S+)", body)
    return m.group(1) if m else ""


class Load:
    """A bounded load generator: GETs through the LB until stopped (max `limit` requests)."""

    def __init__(self, url: str, host: str, limit: int = 20000, max_seconds: float = 300):
        self.url, self.host, self.limit, self.max_seconds = url, host, limit, max_seconds
        self.sent = self.failed = 0
        self.failures: list[str] = []
        self.by_node: dict[str, int] = {}
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._loop, daemon=True)

    def _loop(self):
        import http.client
        t0 = time.monotonic()
        host, _, port = self.url.split("//", 1)[1].split("/", 1)[0].partition(":")
        while not self._stop.is_set() and self.sent < self.limit \
                and time.monotonic() - t0 < self.max_seconds:
            self.sent += 1
            try:
                c = http.client.HTTPConnection(host, int(port or 80), timeout=10)
                c.request("GET", "/services/", headers={"Host": self.host})
                r = c.getresponse()
                body = r.read().decode("utf-8", "replace")
                c.close()
                if r.status != 200:
                    self.failed += 1
                    self.failures.append(f"HTTP {r.status}")
                else:
                    n = served_by(body)
                    self.by_node[n] = self.by_node.get(n, 0) + 1
            except Exception as e:  # noqa: BLE001 - every failure counts
                self.failed += 1
                self.failures.append(repr(e))
            time.sleep(0.01)

    def __enter__(self):
        self.t0 = time.monotonic()
        self._t.start()
        return self

    def __exit__(self, *a):
        self._stop.set()
        self._t.join(30)
        self.seconds = time.monotonic() - self.t0


def snapshot(lab, hosts=None) -> dict[str, str]:
    """What a --check run must not change: files we manage, processes, databases."""
    paths = "/etc/nginx /etc/hosts /etc/mysql /opt /var/lib/bps-deploy /etc/passwd"
    # MariaDB's debian-start (table checks right after the server starts) comes and goes
    for _ in range(100):
        if not lab.exec("db", "pgrep -f 'debian-[s]tart'").stdout.strip():
            break
        time.sleep(0.2)
    snap = {}
    for h in hosts or lab.hosts:
        files = lab.exec(h, f"find {paths} -xdev -type f 2>/dev/null | sort | "
                            "xargs -r sha256sum 2>/dev/null; ps -eo pid,args --no-headers | "
                            "grep -v -e 'ps -eo' -e sshd: -e 'sort' -e 'xargs' -e 'find ' "
                            "-e 'grep' -e 'sha256sum' -e ' sh -c' -e nsenter -e debian-start "
                            "-e mysqlcheck -e 'mysql --defaults' | sort").stdout
        snap[h] = files
    snap["db:databases"] = lab.exec("db", "mariadb -N -e 'show databases' 2>&1").stdout
    return snap


def node_pid(lab, node: str) -> str:
    """The PID in a node's wso2carbon.pid, as the product's JVM writes it (NUL-padded to 100
    bytes); "" when there is none."""
    from tests.paths import PROFILE
    return lab.exec(node, f"tr -d '\\000' < {PROFILE}/wso2carbon.pid 2>/dev/null").stdout.strip()


def node_pids(lab, names=None) -> dict[str, str]:
    return {n: node_pid(lab, n) for n in (names or lab.node_names)}
