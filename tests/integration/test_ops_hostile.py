"""Hostile input in operations: a non-ASCII DB password, an old password in CDATA, a failed
drain, locks of others, an interrupted rolling restart, escape codes in a node's log.

One lab of its own (LAB_INDEX+7), deployed once with a non-ASCII DB password; the cases run in
file order on it and leave it converged. The cases are rows of the README's fault table.
"""
from __future__ import annotations

import getpass
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.helpers import (
    REPO, curl, fab, out, recap_rows, served_by, node_pid, node_pids)

from tests.paths import EI, PROFILE, LOCK  # noqa: E402

BASE = int(os.environ.get("LAB_INDEX", "7"))
CONF = f"{PROFILE}/conf"
LOG = f"{PROFILE}/repository/logs/wso2carbon.log"
NGINX_CONF = "/etc/nginx/conf.d"
UTF8_PW = "pä$$wörd-ünï"
OLD_CDATA_PW = "Old-CDATA-pw-4711"


def lb_nodes(lab, tries: int = 8) -> set[str]:
    return {served_by(curl(f"http://{lab.address('lb')}/services/", host="ei.wso2.com")[1])
            for _ in range(tries)}


def no_lock(lab) -> bool:
    return lab.exec("lb", f"test -e {LOCK}").returncode != 0


def newest_run_log(lab) -> str:
    logs = sorted((lab.run_dir / "logs").glob("run-*.log"), key=lambda p: p.stat().st_mtime)
    return logs[-1].read_text(errors="replace")


def assert_noop(toml) -> None:
    r = fab(toml, "deploy")
    rows = recap_rows(r.stdout)
    assert r.returncode == 0 and rows, out(r)
    assert all(row["changed"] == 0 and not row["restarted"] for row in rows.values()), r.stdout


@pytest.fixture(scope="module")
def hlab(lab_factory):
    """LAB_INDEX+7, deployed with a non-ASCII DB password (secret file, UTF-8)."""
    lab = lab_factory(BASE + 7, nodes=2)
    pw = lab.secrets_dir / "db_password_utf8"
    pw.write_text(UTF8_PW + "\n", encoding="utf-8")
    pw.chmod(0o600)
    lab.toml = lab.write_hosts_toml(lab.run_dir / "hosts-utf8.toml",
                                    secrets={"db_password": {"file": str(pw)}},
                                    # these tests read the password as written in the XML
                                    # files (escaping, CDATA): in clear, so Secure Vault off
                                    cluster={"secure_vault": False})
    lab.first = fab(lab.toml, "deploy")
    return lab


# --------------------------------------------------------------------------- item 7


def test_non_ascii_db_password_end_to_end(hlab):
    lab = hlab
    r = lab.first
    text = out(r)
    assert r.returncode == 0, text
    assert "Current charset" not in text, text
    assert UTF8_PW not in text  # redacted like any secret
    rows = recap_rows(r.stdout)
    assert rows["node1"]["restarted"] and rows["node2"]["restarted"], r.stdout
    # the datasources hold it as UTF-8, and the DB accepts it from the nodes' JVMs: each node
    # passed the stand-in's JDBC checks (it logs the mark only after all of them)
    for n in lab.node_names:
        ds = lab.exec(n, ["cat", f"{CONF}/datasources/bps-datasources.xml"]).stdout
        assert f"<password>{UTF8_PW}</password>" in ds, n
        assert "WSO2 Carbon started" in lab.exec(n, ["cat", LOG]).stdout, n
        # the JVM runs as the product's does: UTF-8 locale and -Dfile.encoding=UTF8
        pid = node_pid(lab, n)
        argv = lab.exec(n, f"tr '\\0' ' ' < /proc/{pid}/cmdline").stdout
        env = lab.exec(n, f"tr '\\0' '\\n' < /proc/{pid}/environ").stdout.splitlines()
        assert "-Dfile.encoding=UTF8" in argv, argv
        assert "LC_ALL=C.UTF-8" in env and "LANG=C.UTF-8" in env, env
    assert lb_nodes(lab) == {"node1", "node2"}
    assert_noop(lab.toml)


# --------------------------------------------------------------------------- item 23


def test_fab_logs_shows_escape_codes_harmlessly(hlab):
    lab = hlab
    lab.exec("node1", f"printf 'evil \\033[2J\\033]0;pwned\\007 end\\r\\n' >> {LOG}", check=True)
    r = fab(lab.toml, "logs", "--on", "node1", "-n", "5")
    assert r.returncode == 0, out(r)
    for ch in ("\x1b", "\x07", "\r"):
        assert ch not in out(r), repr(out(r))
    assert "[node1] evil \\x1b[2J\\x1b]0;pwned\\x07 end\n" in r.stdout, r.stdout
    log = newest_run_log(lab)
    assert "\x1b" not in log and "\x07" not in log and "pwned\\x07 end" in log


# --------------------------------------------------------------------------- item 21: locks


def _write_lock(lab, owner: str) -> None:
    lab.exec("lb", f"mkdir -p {LOCK} && cat > {LOCK}/owner", input=owner + "\n", check=True)


def test_lock_of_another_user_is_not_broken(hlab):
    lab = hlab
    boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    me = getpass.getuser()
    machine = socket.gethostname()
    # another user on this machine, this boot, a dead pid: not ours to break
    other = f"someone-else@{machine} pid=999999999 boot={boot} since=2026-01-01T00:00:00Z"
    _write_lock(lab, other)
    try:
        r = fab(lab.toml, "deploy")
        text = out(r)
        assert r.returncode == 1, text
        assert f"another deploy holds the lock on lb ({other})" in text, text
        assert "another user (someone-else" in text and "fab unlock" in text, text
        assert lab.exec("lb", f"cat {LOCK}/owner").stdout.strip() == other
        # the same with a lock from before this machine's last boot
        old_boot = f"{me}@{machine} pid=999999999 boot=00000000-0000-0000-0000-000000000000 since=x"
        _write_lock(lab, old_boot)
        r = fab(lab.toml, "deploy")
        assert r.returncode == 1 and "last reboot" in out(r), out(r)
        # ours (this user, machine, boot) with a dead pid: broken with a warning
        _write_lock(lab, f"{me}@{machine} pid=999999999 boot={boot} since=x")
        r = fab(lab.toml, "deploy")
        assert r.returncode == 0, out(r)
        assert "breaking the stale deploy lock" in r.stdout and "999999999 is gone" in r.stdout
    finally:
        lab.exec("lb", f"rm -rf {LOCK}")
    assert no_lock(lab)


# --------------------------------------------------------------------------- item 20


def test_old_cdata_password_masked_in_diff_and_run_log(hlab):
    lab = hlab
    f = f"{CONF}/datasources/bps-datasources.xml"
    lab.exec("node1", f"sed -i 's#<password>[^<]*</password>#<password><![CDATA[{OLD_CDATA_PW}]]>"
                      f"</password>#' {f}", check=True)
    assert OLD_CDATA_PW in lab.exec("node1", ["cat", f]).stdout
    r = fab(lab.toml, "deploy", "--diff")
    text = out(r)
    assert r.returncode == 0, text
    assert OLD_CDATA_PW not in text and UTF8_PW not in text, text
    # the datasource file is a sensitive FileSpec: its diff says only how many lines changed
    assert re.search(r"^\[node1\] .*\(sensitive file: .*content not shown\)", text, re.M), text
    log = newest_run_log(lab)
    assert "content not shown" in log and OLD_CDATA_PW not in log and UTF8_PW not in log
    assert f"<password>{UTF8_PW}</password>" in lab.exec("node1", ["cat", f]).stdout
    assert lb_nodes(lab) == {"node1", "node2"}


# --------------------------------------------------------------------------- item 10


def test_failed_drain_stops_the_rolling_restart(hlab):
    lab = hlab
    pids = node_pids(lab)
    conf = lab.exec("lb", f"cat {NGINX_CONF}/*.conf").stdout
    # the LB's vhost directory read-only (a bind mount in the LB's own mount namespace)
    lab.exec("lb", f"mount --bind {NGINX_CONF} {NGINX_CONF} && "
                   f"mount -o remount,bind,ro {NGINX_CONF}", check=True)
    try:
        assert lab.exec("lb", f"touch {NGINX_CONF}/.probe").returncode != 0
        r = fab(lab.toml, "restart", "--rolling")
    finally:
        lab.exec("lb", f"umount {NGINX_CONF}", check=True)
    text = out(r)
    print(text)
    assert r.returncode == 1, text
    # the LB, the node and the cause
    m = re.search(r"^STOPPED: could not drain node1 from the load balancer lb: failed: (.*)$",
                  text, re.M)
    assert m and "Read-only file system" in text.split("STOPPED:", 1)[1], text
    assert "restarted before: none; not restarted: node1, node2" in text, text
    assert re.search(r"^\[node1\] restart: skipped: not restarted: could not drain node1", text,
                     re.M), text
    rows = recap_rows(text)
    assert not rows["node1"]["restarted"] and not rows["node2"]["restarted"], text
    assert "restarted, healthy" not in text
    # no JVM was restarted, the LB config is as it was, both nodes serve
    assert node_pids(lab) == pids
    assert lab.exec("lb", f"cat {NGINX_CONF}/*.conf").stdout == conf
    assert lb_nodes(lab) == {"node1", "node2"}
    assert no_lock(lab)


# --------------------------------------------------------------------------- item 21: undrain


def test_interrupted_rolling_restart_is_undrained_by_next_deploy(hlab):
    lab = hlab
    env = {**os.environ, "FABRIC_INVENTORY": str(lab.toml)}
    p = subprocess.Popen([sys.executable, "-m", "fabric", "restart", "--rolling"], cwd=REPO,
                         env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen = []
    try:
        for line in p.stdout:
            seen.append(line.rstrip("\n"))
            # node1 is drained (the LB step for its drain is done): Ctrl-C now
            if line.startswith("[lb] lb: changed") and any("draining" in l for l in seen):
                p.send_signal(signal.SIGINT)
                break
        rest, _ = p.communicate(timeout=180)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(30)
    text = "\n".join(seen) + "\n" + rest
    print(text)
    assert p.returncode == 130, text
    assert "interrupted" in text
    vhosts = lab.exec("lb", f"cat {NGINX_CONF}/ei.http.conf").stdout
    assert "# node1 (drained)" in vhosts, vhosts  # left drained
    st = fab(lab.toml, "status")
    assert "DRAINED (out of rotation): node1" in st.stdout, out(st)
    r = fab(lab.toml, "deploy")
    text = out(r)
    assert r.returncode == 0, text
    assert re.search(r"^\[lb\]\s+~ put back into rotation: node1 \(drained by an earlier run", text,
                     re.M), text
    assert "(drained)" not in lab.exec("lb", f"cat {NGINX_CONF}/*.conf").stdout
    assert lb_nodes(lab) == {"node1", "node2"}
    assert no_lock(lab)
    assert_noop(lab.toml)
