"""Self-tests of the lab (lab/lab.py) and the stand-in WSO2 server (lab/standin/)."""
from __future__ import annotations

import re
import subprocess
import time
import tomllib
import zipfile
from pathlib import Path

import paramiko
import pytest

from lab.lab import EI_HOME, LAB_JAVA_HOME, PROFILE, Lab

PROF = f"{EI_HOME}/{PROFILE}"
LOG = f"{PROF}/repository/logs/wso2carbon.log"
SERVER = f"{PROF}/bin/wso2server.sh"


def ssh(lab: Lab, host: str, user: str = "deploy") -> paramiko.SSHClient:
    c = paramiko.SSHClient()
    c.load_host_keys(str(lab.known_hosts))
    c.set_missing_host_key_policy(paramiko.RejectPolicy())
    c.connect(lab.address(host), username=user, key_filename=str(lab.key),
              look_for_keys=False, allow_agent=False, timeout=5)
    return c


def run(c: paramiko.SSHClient, cmd: str, timeout: float = 60, input: str | None = None):
    stdin, stdout, stderr = c.exec_command(cmd, timeout=timeout)
    if input is not None:
        stdin.write(input)
        stdin.channel.shutdown_write()
    out, err = stdout.read().decode(), stderr.read().decode()
    return stdout.channel.recv_exit_status(), out, err


@pytest.mark.parametrize("user", ["deploy", "root"])
def test_hosts_answer_ssh_strictly(lab, user):
    for h in lab.hosts:
        with ssh(lab, h, user) as c:
            rc, out, _ = run(c, "hostname; hostname -I; id -un")
            name, ips, who = out.split("\n")[:3]
            assert rc == 0
            assert name == h
            assert ips.split() == [lab.address(h)]
            assert who == user


def test_unknown_host_key_is_rejected(lab, tmp_path):
    kh = tmp_path / "known_hosts"
    kh.write_text(lab.known_hosts.read_text().replace(lab.address("lb") + " ", "10.0.0.9 ", 1))
    c = paramiko.SSHClient()
    c.load_host_keys(str(kh))
    c.set_missing_host_key_policy(paramiko.RejectPolicy())
    with pytest.raises(paramiko.SSHException):
        c.connect(lab.address("lb"), username="deploy", key_filename=str(lab.key),
                  look_for_keys=False, allow_agent=False, timeout=5)
    c.close()


def test_sudo(lab):
    with ssh(lab, "node1") as c:
        assert run(c, "sudo -n id -u")[1].strip() == "0"
    with ssh(lab, "node1", "operator") as c:
        rc, _, _ = run(c, "sudo -n true")
        assert rc != 0                      # operator needs the password
        rc, out, _ = run(c, "sudo -S -p '' id -u", input=lab.secret("sudo_password") + "\n")
        assert (rc, out.strip()) == (0, "0")


def test_isolation(lab):
    """Private /etc overlay, /opt, /var/lib/mysql; no route out of the lab."""
    assert "deploy:" not in Path("/etc/passwd").read_text()
    n1 = lab.exec("node1", f"ls {EI_HOME}/wso2/business-process/conf/carbon.xml; ip route; "
                           "grep -c '^deploy:' /etc/passwd")
    assert n1.returncode == 0, n1.stderr
    assert "default" not in n1.stdout
    lb = lab.exec("lb", f"test -e {EI_HOME}")
    assert lb.returncode != 0
    # write in one host's /etc is not seen by another host nor by the machine
    lab.exec("node1", "echo marker > /etc/lab-marker", check=True)
    assert lab.exec("node2", "test -e /etc/lab-marker").returncode != 0
    assert not Path("/etc/lab-marker").exists()


def test_mariadb_on_db_host(lab):
    with ssh(lab, "db") as c:
        rc, out, err = run(c, "sudo mariadb -N -e 'select 1+1'")
        assert (rc, out.strip()) == (0, "2"), err
        rc, out, _ = run(c, "grep -rh '^bind-address' /etc/mysql/")
        assert "127.0.0.1" in out            # the deploy tool must open it


def test_nginx_config_on_lb(lab):
    with ssh(lab, "lb") as c:
        rc, out, err = run(c, "sudo nginx -t")
        assert rc == 0, out + err
        assert "successful" in err
        rc, out, _ = run(c, "pgrep -x nginx")
        assert rc != 0                       # installed, not started


def test_hosts_toml(lab):
    data = tomllib.loads(lab.hosts_toml.read_text())
    k = lab.index
    assert data["ssh"]["key"] == str(lab.key) and Path(data["ssh"]["key"]).is_absolute()
    assert data["lb"]["address"] == f"10.99.{k}.2"
    assert data["db"]["address"] == f"10.99.{k}.3"
    assert [n["address"] for n in data["nodes"]] == [f"10.99.{k}.11", f"10.99.{k}.12"]
    assert data["cluster"]["console_allow"] == [f"10.99.{k}.0/24"]
    for s in ("db_password", "admin_password", "truststore_password"):
        f = Path(data["secrets"][s]["file"])
        assert f.is_file() and f.stat().st_mode & 0o077 == 0
    assert "wso2carbon" in lab.secret("truststore_password")
    repo_file = Path(__file__).resolve().parents[2] / "hosts.toml"
    if not repo_file.exists():
        return
    repo = tomllib.loads(repo_file.read_text())
    assert set(data) == set(repo)
    for sect in repo:
        if isinstance(repo[sect], dict):
            assert set(repo[sect]) <= set(data[sect]) | {"sudo_password"}, sect


def test_write_hosts_toml_variant(lab, tmp_path):
    p = lab.write_hosts_toml(tmp_path / "h.toml", user="operator", cluster={"port_offset": 3})
    d = tomllib.loads(p.read_text())
    assert d["ssh"]["user"] == "operator"
    assert d["ssh"]["sudo_password"]["file"].endswith("secrets/sudo_password")
    assert d["cluster"]["port_offset"] == 3


JAVA = f"JAVA_HOME={LAB_JAVA_HOME}"


def _jvm(lab: Lab, host: str) -> str:
    """PID of the profile's JVM (found by its command line, as the tool does), "" if none."""
    return lab.exec(host, f"pgrep -f -- '-Dcarbon[.]home={PROF} '").stdout.strip()


def test_standin_fails_clearly_when_unconfigured(lab):
    """Shipped (H2) configuration, started with WSO2's own wso2server.sh: the stand-in must
    exit with clear ERROR lines."""
    r = lab.exec("node2", f"{JAVA} {SERVER} start", check=True)
    assert r.stdout == ""  # the real script forks with nohup and says nothing
    deadline = time.monotonic() + 30
    seen = False
    while time.monotonic() < deadline:
        log = lab.exec("node2", f"cat {LOG} 2>/dev/null").stdout
        if "startup aborted" in log and not _jvm(lab, "node2"):
            break
        time.sleep(0.3)
    else:
        pytest.fail("stand-in kept running with an unconfigured node")
    log = lab.exec("node2", f"cat {LOG}").stdout
    assert "ERROR {StandIn}" in log
    assert re.search(r"ERROR \{StandIn\} - datasource BPS_DS .*still on H2", log)
    assert "conf/axis2/axis2.xml" in log and "conf/bps.xml" in log
    assert "WSO2 Carbon started in" not in log


def test_standin_serves_when_configured(lab):
    """Success path as the service user, through the lab's own minimal configuration, with
    WSO2's own wso2server.sh start and stop."""
    from lab import testconfig
    pw = testconfig.setup_db(lab, "node1")
    testconfig.configure_node(lab, "node1", pw)
    lab.exec("node1", f"id wso2 || useradd -r -m -d /home/wso2 wso2; chown -R wso2: {EI_HOME}",
             check=True)
    lab.exec("node1", f"sudo -u wso2 {JAVA} {SERVER} start", check=True)
    deadline = time.monotonic() + 60
    log = ""
    while time.monotonic() < deadline:
        log = lab.exec("node1", f"cat {LOG}").stdout
        if ("WSO2 Carbon started in" in log and "wrote wso2carbon.pid" in log) or "ERROR" in log:
            break
        time.sleep(0.3)
    assert "WSO2 Carbon started in" in log, log
    assert pw not in log
    out = subprocess.run(["curl", "-sk", f"https://{lab.address('node1')}:9445/carbon/"],
                         capture_output=True, text=True, timeout=10).stdout
    assert out.startswith("served-by: node1 nodeid=node1 path=/carbon/")
    # the JVM wrote its PID file itself: 100 bytes, NUL padded (carbon-kernel Main.writePID)
    pid = _jvm(lab, "node1")
    raw = lab.exec("node1", f"tr '\\000' @ < {PROF}/wso2carbon.pid").stdout
    assert raw == pid + "@" * (100 - len(pid)), raw
    again = lab.exec("node1", f"sudo -u wso2 {JAVA} {SERVER} start").stdout
    assert "already running" in again
    lab.exec("node1", f"sudo -u wso2 {JAVA} {SERVER} stop", check=True)  # kill -term, returns
    deadline = time.monotonic() + 30
    while _jvm(lab, "node1") and time.monotonic() < deadline:
        time.sleep(0.3)
    assert not _jvm(lab, "node1")
    assert "Shutdown complete" in lab.exec("node1", f"cat {LOG}").stdout


def test_ei_zip(lab, tmp_path):
    z = lab.build_ei_zip(tmp_path / "ei.zip")
    names = zipfile.ZipFile(z).namelist()
    assert all(n.startswith("wso2ei-6.6.0/") for n in names)
    for want in ("wso2ei-6.6.0/lib/", f"wso2ei-6.6.0/{PROFILE}/bin/wso2server.sh",
                 f"wso2ei-6.6.0/{PROFILE}/conf/carbon.xml",
                 f"wso2ei-6.6.0/{PROFILE}/repository/resources/security/wso2carbon.jks",
                 "wso2ei-6.6.0/repository/resources/security/client-truststore.jks"):
        assert want in names


def _leftovers(lab) -> list[str]:
    index = lab.index
    found = []
    ns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    found += [l for l in ns.splitlines() if l.startswith(f"bps{index}-")]
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    found += [l.split(":")[1] for l in links.splitlines()
              if re.search(rf":\s+(bpsbr{index}|vb{index}(lb|db|n\d+))[@:]", l)]
    run_dir = f"{lab.state_dir}/"
    for p in Path("/proc").glob("[0-9]*"):
        try:
            if run_dir in (p / "mountinfo").read_text():
                found.append(f"mount seen by pid {p.name}")
            if run_dir in (p / "cmdline").read_bytes().decode(errors="replace"):
                found.append(f"process {p.name}")
        except OSError:
            pass
    return found


def test_second_lab_and_down_leaves_nothing(lab_factory):
    """A second, concurrent lab (1 node, no EI_HOME), then down: nothing left behind."""
    idx = (int(__import__("os").environ.get("LAB_INDEX", "7")) + 1) % 201
    other = lab_factory(index=idx, nodes=1, ei_home=False)
    with ssh(other, "node1") as c:
        assert run(c, f"test -e {EI_HOME} || echo empty")[1].strip() == "empty"
    # start something long-running over SSH; it must die with the host
    with ssh(other, "node1") as c:
        run(c, "setsid -f sleep 1000 </dev/null >/dev/null 2>&1")
    pids = [int(x) for ns in (other.netns(h) for h in other.hosts)
            for x in subprocess.run(["ip", "netns", "pids", ns], capture_output=True,
                                    text=True).stdout.split()]
    assert len(pids) >= 4
    other.down()
    assert [p for p in pids if Path(f"/proc/{p}").exists()] == []
    assert _leftovers(other) == []
    assert not other.state_dir.exists()
