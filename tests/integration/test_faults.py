"""The fault suite: what the user sees when things go wrong, and that nothing is lost or half-done.

Two labs of their own (LAB_INDEX+3: a deployed cluster the cases break and repair; LAB_INDEX+4: a
fresh lab for SSH-level faults, on which nothing may change), so this file runs in the same
pytest session as the other integration tests. The table of cases is in bench/README.md.

Covered elsewhere (not repeated here; see bench/README.md "## Fault suite"):
* bad / inconsistent hosts.toml keys: tests/unit/test_inventory.py::test_bad_input_is_named
  (here only: such a file touches no host at all);
* `nginx -t` failure -> old config still served:
  tests/integration/test_lb_certs.py::test_broken_value_fails_with_nginx_message_and_old_config_serves;
* the DB down during db-init: tests/integration/test_db.py::test_server_down_fails_fast_and_touches_no_node.

FAULT_SEED (default 9) seeds the kill points of the killed-deploy case.
"""
from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import threading
import time

import pytest

from tests.integration.helpers import REPO, curl, fab, out, recap_rows, served_by, snapshot

from tests.paths import EI, PROFILE, LOCK  # noqa: E402

BASE = int(os.environ.get("LAB_INDEX", "7"))
CONF = f"{PROFILE}/conf"
PENDING = "/var/lib/bps-deploy/pending-restart"
CLEAN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


# --------------------------------------------------------------------------- helpers


def lb_nodes(lab, tries: int = 8) -> set[str]:
    return {served_by(curl(f"http://{lab.address('lb')}/services/", host="ei.wso2.com")[1])
            for _ in range(tries)}


def fab_env(toml) -> dict:
    return {**os.environ, "FABRIC_INVENTORY": str(toml)}


def popen_fab(toml, *args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "fabric", *args], cwd=REPO, env=fab_env(toml),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def sshd_logins(lab) -> dict[str, int]:
    """Per host, SSH logins so far (from the host's sshd log): proves a host was not touched."""
    res = {}
    for h in lab.hosts:
        f = lab.run_dir / "logs" / f"{h}.log"
        res[h] = len(re.findall(r"^Accepted publickey", f.read_text(errors="replace"), re.M))
    return res


def no_lock(lab) -> bool:
    return lab.exec("lb", f"test -e {LOCK}").returncode != 0


def tmp_leftovers(lab) -> list[str]:
    found = []
    for h in lab.hosts:
        r = lab.exec(h, f"find {EI} /etc/nginx /etc/hosts /etc/mysql -name '.bps-tmp*' "
                        "2>/dev/null")
        found += [f"{h}:{p}" for p in r.stdout.split()]
    return found


def assert_noop(lab, toml) -> None:
    r = fab(toml, "deploy")
    rows = recap_rows(r.stdout)
    assert r.returncode == 0 and rows, out(r)
    assert all(row["changed"] == 0 and not row["restarted"] for row in rows.values()), r.stdout


def drift(lab) -> None:
    """Work for a deploy on every role: both nodes' carbon.xml, one LB vhost."""
    for n in lab.node_names:
        lab.exec(n, f"sed -i 's#<HostName>ei.wso2.com</HostName>#<HostName>drift</HostName>#' "
                    f"{CONF}/carbon.xml", check=True)
    lab.exec("lb", "sed -i 's/^/ /' /etc/nginx/conf.d/ei.http.conf", check=True)


class ProcSampler:
    """argv + environ of every process on every host, sampled in a loop inside each host
    (one small python3 per host reading /proc; unique lines are streamed back)."""

    CODE = r"""
import os, select, sys
seen = set(); n = 0; out = sys.stdout.buffer
while True:
    n += 1
    for p in os.listdir('/proc'):
        if not p.isdigit() or p == str(os.getpid()):
            continue
        try:
            with open('/proc/%s/cmdline' % p, 'rb') as f: c = f.read()
            with open('/proc/%s/environ' % p, 'rb') as f: e = f.read()
        except OSError:
            continue
        line = c.replace(b'\0', b' ') + b' |ENV| ' + e.replace(b'\0', b' ')
        if line not in seen:
            seen.add(line); out.write(line.replace(b'\n', b' ') + b'\n')
    out.write(b'@@SAMPLE\n'); out.flush()
    r, _, _ = select.select([sys.stdin], [], [], 0.02)
    if r and not os.read(0, 1):
        break
"""

    def __init__(self, lab):
        self.lab = lab
        self.lines: dict[str, list[str]] = {h: [] for h in lab.hosts}
        self.samples: dict[str, int] = {h: 0 for h in lab.hosts}
        self.procs = {}
        self.threads = []

    def __enter__(self):
        for h in self.lab.hosts:
            pid = self.lab.host_pid(h)
            argv = ["nsenter", "-t", str(pid), "-m", "-u", "-i", "-n", "-p", "-r", "-w",
                    "env", "-i", f"PATH={CLEAN_PATH}", "python3", "-c", self.CODE]
            p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 stderr=subprocess.DEVNULL)
            self.procs[h] = p
            t = threading.Thread(target=self._read, args=(h, p), daemon=True)
            t.start()
            self.threads.append(t)
        time.sleep(0.3)
        return self

    def _read(self, h, p):
        for raw in p.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            if line == "@@SAMPLE":
                self.samples[h] += 1
            else:
                self.lines[h].append(line)

    def __exit__(self, *a):
        time.sleep(0.2)
        for p in self.procs.values():
            try:
                p.stdin.close()
            except OSError:
                pass
        for p in self.procs.values():
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        for t in self.threads:
            t.join(10)


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def flab(lab_factory):
    """LAB_INDEX+3: the cluster the fault cases break and repair (2 nodes)."""
    lab = lab_factory(BASE + 3, nodes=2)
    # the known test passwords of this lab's secret files, and a sudo-with-password user
    lab.op_toml = lab.write_hosts_toml(lab.run_dir / "hosts-operator.toml", user="operator")
    lab.first = None
    return lab


@pytest.fixture(scope="module")
def deployed(flab):
    """The first full deploy (as `operator`, sudo with a password), process lists sampled on
    every host during the run; later cases start from this cluster."""
    if flab.first is None:
        with ProcSampler(flab) as ps:
            r = fab(flab.op_toml, "deploy")
        flab.first = (r, ps)
        assert r.returncode == 0, out(r)
        assert lb_nodes(flab) == {"node1", "node2"}
    return flab


@pytest.fixture(scope="module")
def slab(lab_factory):
    """LAB_INDEX+4: a fresh lab for SSH-level faults (nothing may change on it)."""
    return lab_factory(BASE + 4, nodes=2)


# --------------------------------------------------------------------------- secrets


def _grep_files(lab, host: str, dirs: str, secrets: list[str]) -> list[str]:
    # patterns on stdin: the test itself never puts a password in an argv
    r = lab.exec(host, f"grep -rlF -f /dev/stdin {dirs} 2>/dev/null || true",
                 input="\n".join(secrets) + "\n", timeout=300)
    return [p for p in r.stdout.splitlines() if p]


def test_secrets_appear_only_where_needed(deployed):
    lab = deployed
    r, ps = lab.first
    secrets = {n: lab.secret(n) for n in ("db_password", "admin_password", "sudo_password")}
    # (truststore_password is WSO2's public default `wso2carbon` in the lab: it is in WSO2's own
    # shipped files and in file names such as wso2carbon.log, so it cannot be grepped for)
    values = list(secrets.values())
    leaks = []
    # 1. the tool's output
    for name, v in secrets.items():
        if v in out(r):
            leaks.append(f"tool output contains {name}")
    # 2. the local logs next to the hosts.toml used (run logs + the lab's sshd logs)
    for f in sorted((lab.run_dir / "logs").iterdir()):
        text = f.read_text(errors="replace")
        leaks += [f"local log {f} contains {n}" for n, v in secrets.items() if v in text]
    runlogs = list((lab.run_dir / "logs").glob("run-*.log"))
    assert runlogs and all(p.stat().st_mode & 0o777 == 0o600 for p in runlogs)
    # 3. the process lists sampled during the run: argv and environment of every process
    for h in lab.hosts:
        assert ps.samples[h] >= 20, f"sampler on {h} took only {ps.samples[h]} samples"
        for line in ps.lines[h]:
            leaks += [f"[{h}] process {line[:160]!r} has {n} in argv/environ"
                      for n, v in secrets.items() if v in line]
    # the sampler did see the tool at work (its scripts on stdin of `sh -s`, via sudo)
    assert any("sudo" in l and "sh -s" in l for l in ps.lines["node1"]), ps.lines["node1"][:20]
    # 4. every file under each host's /var/log
    for h in lab.hosts:
        leaks += [f"[{h}] {p}" for p in _grep_files(lab, h, "/var/log", values)]
    assert not leaks, "\n".join(leaks)
    # 5. the files that must hold them: only WSO2's config on the nodes (and our 0600 backups
    # of their previous versions), each 0600 or 0640, never world-readable
    allowed = re.compile(rf"^({re.escape(CONF)}/|/var/backups/bps-deploy/)")
    holders = {}
    for h in lab.hosts:
        files = _grep_files(lab, h, "/etc /opt /srv /root /home /tmp /var/tmp /run /var/lib "
                                    "/var/backups /var/www /var/mail", values)
        for p in files:
            mode = lab.exec(h, ["stat", "-c", "%a %U:%G", p]).stdout.strip()
            holders[f"{h}:{p}"] = mode
    print("files holding a secret:\n" + "\n".join(f"  {k} {v}" for k, v in holders.items()))
    bad = [f"{k} ({v})" for k, v in holders.items()
           if not allowed.match(k.split(":", 1)[1]) or v.split()[0] not in ("600", "640")]
    assert not bad, "secret in an unexpected place or mode:\n" + "\n".join(bad)
    # Secure Vault is on by default: not even WSO2's config holds them (aliases and cipher text)
    assert not holders, "with Secure Vault on, no file holds a clear password:\n" + "\n".join(
        holders)


# --------------------------------------------------------------------------- SSH-level faults


def _refused_cleanly(lab, r, before):
    text = out(r)
    print(text)  # shown with -s, and by pytest on a failure
    assert r.returncode == 1, text
    assert "nothing was changed" in text, text
    assert snapshot(lab) == before
    assert no_lock(lab)
    return text


@pytest.mark.parametrize("how", ["sshd-frozen", "link-down"])
def test_host_unreachable(slab, how):
    lab = slab
    before = snapshot(lab)
    ns = lab.netns("node2")
    if how == "sshd-frozen":  # sshd stopped (SIGSTOP): the port accepts, no SSH banner comes
        stop = ["kill", "-STOP", str(lab.host_pid("node2"))]
        cont = ["kill", "-CONT", str(lab.host_pid("node2"))]
    else:  # the host gone from the network
        stop = ["ip", "-n", ns, "link", "set", "eth0", "down"]
        cont = ["ip", "-n", ns, "link", "set", "eth0", "up"]
    subprocess.run(stop, check=True)
    try:
        t = time.monotonic()
        r = fab(lab.hosts_toml, "deploy")
        took = time.monotonic() - t
    finally:
        subprocess.run(cont, check=True)
    text = _refused_cleanly(lab, r, before)
    line = next(l for l in text.splitlines() if l.startswith("[node2] preflight:"))
    assert re.search(r"^\[node2\] preflight: unreachable: cannot reach deploy@10\.99\.\d+\.12:22: ",
                     line), line
    # the cause in words (not paramiko's "No existing session"), and no traceback
    assert re.search(r"timed out|no SSH banner", line.split(":22:", 1)[1]), line
    assert "that sshd runs" in line
    assert "Traceback" not in text, text
    assert recap_rows(text)["node2"]["unreach"] == 1
    assert took < 40, took


def test_host_key_changed(slab, tmp_path):
    lab = slab
    before = snapshot(lab)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "k")],
                   check=True)
    other = (tmp_path / "k.pub").read_text().split()
    kh = tmp_path / "known_hosts"
    addr = lab.address("node1")
    kh.write_text("".join(f"{addr} {other[0]} {other[1]}\n" if l.startswith(addr + " ") else l
                          for l in lab.known_hosts.read_text().splitlines(keepends=True)))
    toml = lab.write_hosts_toml(tmp_path / "hosts.toml", ssh={"known_hosts": str(kh)})
    r = fab(toml, "deploy")
    text = _refused_cleanly(lab, r, before)
    line = next(l for l in text.splitlines() if l.startswith("[node1] preflight:"))
    assert "unreachable" in line and "CHANGED" in line and "ssh-keygen -R " + addr in line, line
    assert "may be an attack" in line
    assert all(f"[{h}] preflight: ok" in text for h in ("lb", "node2", "db")), text
    # the known_hosts file is not edited by the tool
    assert other[1] in kh.read_text()


def test_host_key_unknown(slab, tmp_path):
    lab = slab
    before = snapshot(lab)
    kh = tmp_path / "known_hosts"
    addr = lab.address("db")
    kh.write_text("".join(l for l in lab.known_hosts.read_text().splitlines(keepends=True)
                          if not l.startswith(addr + " ")))
    toml = lab.write_hosts_toml(tmp_path / "hosts.toml", ssh={"known_hosts": str(kh)})
    r = fab(toml, "deploy")
    text = _refused_cleanly(lab, r, before)
    line = next(l for l in text.splitlines() if l.startswith("[db] preflight:"))
    assert f"host key of {addr}" in line and "is not in" in line and "ssh-keyscan" in line, line
    assert addr not in kh.read_text()  # never trusted silently


@pytest.mark.parametrize("what", ["key", "user"])
def test_wrong_ssh_key_or_user(slab, tmp_path, what):
    lab = slab
    before = snapshot(lab)
    if what == "key":
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "k")],
                       check=True)
        toml = lab.write_hosts_toml(tmp_path / "hosts.toml", ssh={"key": str(tmp_path / "k")})
        user = "deploy"
    else:
        user = "nosuchuser"
        toml = lab.write_hosts_toml(tmp_path / "hosts.toml", user=user)
    r = fab(toml, "deploy")
    text = _refused_cleanly(lab, r, before)
    for h in lab.hosts:
        assert re.search(rf"^\[{h}\] preflight: unreachable: SSH login as {user}@"
                         rf"{re.escape(lab.address(h))}:22 refused", text, re.M), text
    assert "check ssh.user and ssh.key" in text


@pytest.mark.parametrize("how", ["no-password", "wrong-password"])
def test_sudo_refused(slab, tmp_path, how):
    lab = slab
    before = snapshot(lab)
    if how == "no-password":
        toml = lab.write_hosts_toml(tmp_path / "hosts.toml", user="operator",
                                    ssh={"sudo_password": None})
        want = "sudo on {h} needs a password for operator"
    else:
        bad = tmp_path / "sudo_pw"
        bad.write_text("Not-The-Sudo-Pw-123\n")
        bad.chmod(0o600)
        toml = lab.write_hosts_toml(tmp_path / "hosts.toml", user="operator",
                                    ssh={"sudo_password": {"file": str(bad)}})
        want = "sudo refused"
    t = time.monotonic()
    r = fab(toml, "deploy")
    took = time.monotonic() - t
    text = _refused_cleanly(lab, r, before)
    for h in lab.hosts:
        line = next((l for l in text.splitlines() if l.startswith(f"[{h}] preflight:")), "")
        assert "failed" in line and want.format(h=h) in line, (h, text)
        assert f" {h}" in line and "operator" in line and "ssh.sudo_password" in line, (h, line)
    assert "Not-The-Sudo-Pw-123" not in text
    assert took < 60, took  # sudo's failed-password delay, once per host, in parallel


@pytest.mark.parametrize("override,expect", [
    ({"nodes": "lb-address"}, "given to both lb and node2"),
    ({"database": {"bps_db": "REGISTRY_DB"}}, "REGISTRY_DB used for two databases"),
])
def test_inconsistent_inventory_touches_no_host(slab, tmp_path, override, expect):
    # the checks themselves: tests/unit/test_inventory.py::test_bad_input_is_named
    lab = slab
    if override.get("nodes") == "lb-address":
        override = {"nodes": [{"name": "node1", "address": lab.address("node1")},
                              {"name": "node2", "address": lab.address("lb")}]}
    toml = lab.write_hosts_toml(tmp_path / "hosts.toml", **override)
    logins = sshd_logins(lab)
    r = fab(toml, "deploy")
    assert r.returncode == 2, out(r)
    assert expect in out(r), out(r)
    time.sleep(0.2)
    assert sshd_logins(lab) == logins  # no host was even connected to


# --------------------------------------------------------------------------- node faults


def test_db_down_when_a_node_starts(deployed):
    lab = deployed
    toml = lab.hosts_toml
    r = lab.exec("db", "service mariadb stop", timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    try:
        r = fab(toml, "restart", "--only", "node2")
        text = out(r)
        assert r.returncode == 1, text
        assert re.search(r"^\[node2\] restart: failed: not healthy after start: ", text, re.M), text
        # (the file name is not checked: the lab's truststore password is WSO2's default
        # `wso2carbon`, which the redactor also masks inside `wso2carbon.log`; see the README)
        assert f"[node2] --- last lines of {PROFILE}/repository/logs/" in text, text
        # the node's own reason, host-prefixed, from its log: it could not reach the database
        tail = text.split("--- last lines of", 1)[1].split("\nDEPLOY")[0]
        assert re.search(r"(?m)^\[node2\] .*(?i:connect|refused|communications link)", tail), tail
        # node1 untouched, still serving through the LB
        assert lb_nodes(lab) == {"node1"}
    finally:
        r = lab.exec("db", "service mariadb start", timeout=90)
        assert r.returncode == 0, r.stdout + r.stderr
    # the next deploy brings node2 back
    r = fab(toml, "deploy")
    assert r.returncode == 0, out(r)
    assert recap_rows(r.stdout)["node2"]["restarted"], r.stdout
    assert lb_nodes(lab) == {"node1", "node2"}


def test_disk_full_keeps_the_old_file(deployed, tmp_path):
    lab = deployed
    axis2 = f"{CONF}/axis2/axis2.xml"
    sha = lambda: lab.exec("node1", f"sha256sum {axis2} | cut -d' ' -f1").stdout.strip()
    before = sha()
    # a small tmpfs over conf/, inside node1's own mount namespace, with the files copied in,
    # then filled to the last byte
    lab.exec("node1", f"set -e; cp -a {CONF} /tmp/conf-copy; "
                      f"mount -t tmpfs -o size=$(( $(du -sk {CONF} | cut -f1) + 256 ))k "
                      f"fault-tmpfs {CONF}; cp -a /tmp/conf-copy/. {CONF}/; rm -rf /tmp/conf-copy; "
                      f"dd if=/dev/zero of={CONF}/.fill bs=4k 2>/dev/null || true; "
                      f"dd if=/dev/zero of={CONF}/.fill2 bs=64 2>/dev/null || true; "
                      f"chown --reference={CONF}/carbon.xml {CONF}", check=True)
    try:
        assert lab.exec("node1", f"df --output=avail -B1 {CONF} | tail -1").stdout.strip() == "0"
        assert sha() == before
        toml = lab.write_hosts_toml(tmp_path / "hosts.toml", cluster={"domain": "wso2.bps.fault"})
        r = fab(toml, "configure", "--on", "node1")
        text = out(r)
        assert r.returncode == 1, text
        line = next(l for l in text.splitlines() if l.startswith("[node1] configure:"))
        assert "failed" in line and "No space left on device" in text, text
        # the old file, whole; no temp file left; no restart asked for
        assert sha() == before
        assert not lab.exec("node1", f"find {CONF} -name '.bps-tmp*'").stdout.strip()
        assert "wso2.bps.fault" not in lab.exec("node1", f"cat {axis2}").stdout
        assert not lab.exec("node1", f"cat {PENDING} 2>/dev/null").stdout.strip()
    finally:
        lab.exec("node1", f"umount {CONF}", check=True)
    assert sha() == before
    assert_noop(lab, lab.hosts_toml)


# --------------------------------------------------------------------------- interrupted runs


def test_deploy_killed_at_random_points_converges(deployed):
    lab = deployed
    toml = lab.hosts_toml
    seed = int(os.environ.get("FAULT_SEED", "9"))
    rng = random.Random(seed)
    # the output stream of a full deploy with work on every role: where a kill can land
    drift(lab)
    r = fab(toml, "deploy")
    assert r.returncode == 0, out(r)
    lines = r.stdout.splitlines()
    work = next(i for i, l in enumerate(lines) if l.startswith("DEPLOY ("))
    points = sorted(rng.sample(range(1, work), 4))
    print(f"FAULT_SEED={seed}: killing after output lines {points} of {work}")
    for k in points:
        drift(lab)
        p = popen_fab(toml, "deploy")
        seen = []
        for line in p.stdout:
            seen.append(line.rstrip("\n"))
            if len(seen) >= k:
                break
        p.send_signal(signal.SIGKILL)
        p.wait(30)
        where = seen[-1] if seen else "(start)"
        print(f"  killed after line {k}: {where}")
        r = fab(toml, "deploy")
        assert r.returncode == 0, f"after a kill at line {k} ({where!r}):\n{out(r)}"
        assert_noop(lab, toml)
        assert lb_nodes(lab) == {"node1", "node2"}, f"kill at line {k} ({where!r})"
        assert no_lock(lab)
        assert not tmp_leftovers(lab), tmp_leftovers(lab)
        for n in lab.node_names:
            assert not lab.exec(n, f"cat {PENDING} 2>/dev/null").stdout.strip(), n


def test_two_deploys_at_once(deployed):
    lab = deployed
    toml = lab.hosts_toml
    drift(lab)  # real work (restarts) so that the runs overlap
    a, b = popen_fab(toml, "deploy"), popen_fab(toml, "deploy")
    out_a, _ = a.communicate(timeout=600)
    out_b, _ = b.communicate(timeout=600)
    runs = {a.pid: (a.returncode, out_a), b.pid: (b.returncode, out_b)}
    winners = [pid for pid, (rc, _) in runs.items() if rc == 0]
    losers = [pid for pid, (rc, _) in runs.items() if rc != 0]
    assert len(winners) == 1 and len(losers) == 1, runs
    rc, text = runs[losers[0]]
    assert re.search(rf"another deploy holds the lock on lb \(\S+@\S+ pid={winners[0]} ", text), text
    assert "fab unlock" in text
    # the refused run wrote nothing: it stopped after the read-only preflight
    steps = {m.group(1) for m in re.finditer(r"^\[\S+\] ([a-z-]+)[ :]", text, re.M)}
    assert steps <= {"preflight"}, steps
    assert no_lock(lab)
    assert_noop(lab, toml)
    assert lb_nodes(lab) == {"node1", "node2"}


def test_host_drops_mid_run(deployed, tmp_path):
    """node2 leaves the network after preflight, in the middle of a deploy with work to do."""
    lab = deployed
    toml = lab.write_hosts_toml(tmp_path / "hosts.toml", ssh={"command_timeout": 15})
    ns = lab.netns("node2")
    drift(lab)
    p = subprocess.Popen([sys.executable, "-m", "fabric", "deploy"], cwd=REPO,
                         env={**fab_env(toml), "PYTHONFAULTHANDLER": "1"},
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen = []
    try:
        for line in p.stdout:
            seen.append(line.rstrip("\n"))
            if line.startswith("[db] db-init:"):
                subprocess.run(["ip", "-n", ns, "link", "set", "eth0", "down"], check=True)
                break
        try:
            rest, _ = p.communicate(timeout=150)
        except subprocess.TimeoutExpired:  # a hang: dump every thread's stack, then fail
            p.send_signal(signal.SIGABRT)
            rest, _ = p.communicate(timeout=30)
            pytest.fail("deploy still running 150 s after node2 dropped (command_timeout 15 s):\n"
                        + "\n".join(seen) + "\n" + rest[-6000:], pytrace=False)
    finally:
        subprocess.run(["ip", "-n", ns, "link", "set", "eth0", "up"], check=True)
    text = "\n".join(seen) + "\n" + rest
    print(text)
    assert p.returncode == 1, text
    line = next(l for l in text.splitlines() if re.match(r"^\[node2\] [a-z /-]+: (failed|unreachable)", l))
    assert re.search(r"timed out|lost|unreachable", line), line
    assert recap_rows(text)["node2"]["failed"] + recap_rows(text)["node2"]["unreach"] >= 1
    assert no_lock(lab)
    # the run stopped there (db-init is a gate: "nodes were not touched"); node1 still serves
    assert "node1" in lb_nodes(lab)
    # the host is back: the next deploy finishes node2, then nothing is left to do
    r = fab(lab.hosts_toml, "deploy")
    assert r.returncode == 0, out(r)
    assert_noop(lab, lab.hosts_toml)
    assert lb_nodes(lab) == {"node1", "node2"}
    assert not tmp_leftovers(lab), tmp_leftovers(lab)
