"""The health gate's pure parts and its log reader (tasks/scripts/log_since.sh, run here with a
real sh on temp files), stop_timeout, and the KILLED line in the recap."""
from __future__ import annotations

import io
import os
import subprocess

import pytest

from tasks.engine import inventory, remote

from tasks.steps import services
from tasks.engine.report import Redactor, Reporter, StepResult
from tests.unit.inv_factory import make_inv, make_raw

MARK = "WSO2 Carbon started"


def _log_since(log, offset, inode, pattern=MARK):
    script = (remote.script("log_since.sh", LOG=str(log), ROLLED=services.ROLLED_LOGS)
              + f"log_since {offset} {remote.q(inode)} {remote.q(pattern)}\n")
    r = subprocess.run(["sh", "-s"], input=script, capture_output=True, text=True,
                       env={"PATH": "/usr/bin:/bin", "LC_ALL": "C"})
    assert r.returncode == 0, r.stderr
    return services.parse_log_since(r.stdout)


def _mark(log):
    st = os.stat(log)
    return st.st_size, str(st.st_ino)


def test_log_without_roll_counts_only_after_the_offset(tmp_path):
    log = tmp_path / "wso2carbon.log"
    log.write_text(f"old {MARK} in 3 sec\n")
    off, ino = _mark(log)
    assert _log_since(log, off, ino) == (0, "")
    with log.open("a") as f:
        f.write(f"x\n{MARK} in 2 sec\n")
    assert _log_since(log, off, ino) == (1, "")


def test_log_rolled_at_start_reads_the_rolled_tail_and_the_new_log(tmp_path):
    log = tmp_path / "wso2carbon.log"
    log.write_text(f"old {MARK} in 3 sec\n" * 50)
    off, ino = _mark(log)
    with log.open("a") as f:  # written by this start before log4j2 rolled it
        f.write("Member joined [u-1]: /10.0.0.12:4000\n")
    other = tmp_path / "wso2carbon-01-01-2020.log"  # an older roll, not ours
    other.write_text(f"{MARK}\n" * 9)
    rolled = tmp_path / "wso2carbon-06-30-2025.log"
    log.rename(rolled)
    log.write_text(f"Starting\n{MARK} in 4 sec\n")
    assert _log_since(log, off, ino) == (1, str(rolled))
    pat = services.joined_pattern("10.0.0.12", 4000)
    assert _log_since(log, off, ino, pat) == (1, str(rolled))


def test_log_truncated_in_place_falls_back_to_the_newest_rolled_file(tmp_path):
    log = tmp_path / "wso2carbon.log"
    log.write_text("a" * 1000 + "\n")
    off, ino = _mark(log)
    copy = tmp_path / "wso2carbon-06-30-2025.log"
    copy.write_text("a" * 1000 + f"\n{MARK} (before the truncation)\n")
    log.write_text(f"{MARK}\n")  # same inode, smaller than the offset
    assert _log_since(log, off, ino) == (2, str(copy))


def test_log_missing_before_the_start_is_read_whole(tmp_path):
    log = tmp_path / "wso2carbon.log"
    assert _log_since(log, 0, "") == (0, "")
    log.write_text(f"{MARK} in 1 sec\n")
    assert _log_since(log, 0, "") == (1, "")


def test_links_are_never_read(tmp_path):
    secret = tmp_path / "root-only"
    secret.write_text(f"{MARK}\n")
    log = tmp_path / "wso2carbon.log"
    log.symlink_to(secret)
    assert _log_since(log, 0, "") == (0, "")


def test_joined_pattern_names_exactly_that_member():
    pat = services.joined_pattern("10.99.7.12", 4000)
    lines = ["[x] INFO {HazelcastClusteringAgent} - Member joined [2b9b-1c]: /10.99.7.12:4000",
             "Member joined [a]: /10.99.7.1:4000", "Member joined [a]: /10.99.7.12:40001",
             "Member joined [a]: /10x99x7x12:4000", "Member left [a]: /10.99.7.12:4000"]
    r = subprocess.run(["grep", "-E", pat], input="\n".join(lines) + "\n",
                       capture_output=True, text=True)
    assert r.stdout.splitlines() == lines[:1]


def _st(running=True, https="200"):
    return services.NodeState(running, "42", https, 0, "")


def test_health_problem_says_which_gate_failed(tmp_path):
    inv = make_inv(tmp_path)
    n1, n2 = inv.nodes
    assert services.health_problem(inv, n2, _st(), True, []) is None
    assert services.health_problem(inv, n2, _st(False), True, []) == "the process exited"
    assert "no 'WSO2 Carbon started'" in services.health_problem(inv, n2, _st(), False, [])
    msg = services.health_problem(inv, n2, _st(https="404"), True, [])
    assert f"https://{n2.address}:9445/carbon/admin/login.jsp answered 404" in msg
    assert "answered nothing" in services.health_problem(inv, n2, _st(https="000"), True, [])
    msg = services.health_problem(inv, n2, _st(), True, [n1.name])
    assert msg.startswith(f"not in the cluster: {n1.name} did not log `Member joined [...]: "
                          f"/{n2.address}:4000`")
    assert "Hazelcast port 4000 is blocked" in msg


def test_parse_state_reads_size_and_inode_and_wants_200():
    f = {"proc": remote.Fact("alive 7", 0), "https": remote.Fact("200", 0),
         "log_size": remote.Fact("4096 1234", 0), "pending": remote.Fact("", 0)}
    st = services.parse_state(f)
    assert (st.log_size, st.log_inode, st.healthy) == (4096, "1234", True)
    for code in ("404", "302", "500", "000"):
        f["https"] = remote.Fact(code, 0)
        assert not services.parse_state(f).healthy, code
    f["log_size"] = remote.Fact("0", 0)  # no log yet
    assert (services.parse_state(f).log_size, services.parse_state(f).log_inode) == (0, "")


def test_stop_timeout_default_validated_and_passed_to_the_stop(tmp_path):
    assert make_inv(tmp_path).cluster.stop_timeout == 120
    inv = make_inv(tmp_path, cluster={"stop_timeout": 7})
    assert "STOP_WAIT=7\n" in services.stop_script(inv)
    for bad in (0, -1, 100000):
        raw = make_raw(tmp_path, cluster={"stop_timeout": bad})
        with pytest.raises(inventory.InventoryError, match="cluster.stop_timeout"):
            inventory.from_dict(raw, tmp_path / "hosts.toml")


def test_killed_is_said_in_the_step_and_the_recap(tmp_path):
    res = remote.CmdResult("killed: still running 5s after SIGTERM, sent SIGKILL\n", "", 0)
    said = services._stop_outcome(res)
    assert said.startswith("KILLED: still running 5s")
    assert services._stop_outcome(remote.CmdResult("stopped\n", "", 0)) == "stopped"
    out = io.StringIO()
    rep = Reporter(Redactor(), stream=out, color=False)
    rep.record(StepResult("node2", "restart", "changed", f"restarted; {said}", restarted=True,
                          killed=True))
    rep.record(StepResult("node1", "restart", "changed", "restarted", restarted=True))
    rep.recap()
    lines = out.getvalue().splitlines()
    assert "[node2] restart: changed: restarted; KILLED: still running 5s" in lines[0]
    assert any(ln.startswith("!!! KILLED") and ln.endswith(": node2") for ln in lines), lines
