"""Self-tests of the lab's hosts that boot systemd (Lab(kind="systemd"), lab/lab.py):
Debian 12 with real systemd under systemd-nspawn, one overlay per host on a shared root."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import paramiko
import pytest

from lab.lab import EI_HOME, LAB_JAVA_HOME, Lab, cgroup_dirs
from tests.integration.test_lab import _leftovers, run, ssh

BASE = int(os.environ.get("LAB_INDEX", "7"))


@pytest.fixture(scope="module")
def sdlab(lab_factory) -> Lab:
    return lab_factory(index=BASE + 14, nodes=1, kind="systemd")


def test_every_host_boots_systemd(sdlab):
    for h in sdlab.hosts:
        r = sdlab.exec(h, "cat /proc/1/comm; systemctl is-system-running --wait; "
                          "systemctl --failed --plain --no-legend --no-pager")
        comm, state, *failed = r.stdout.splitlines()
        assert comm == "systemd", h
        assert state == "running", f"{h}: {state}, failed units: {failed}"
        assert sdlab.status()[h]["system"] == "running"


@pytest.mark.parametrize("user", ["deploy", "operator", "root"])
def test_ssh_strict_known_hosts(sdlab, user):
    for h in sdlab.hosts:
        with ssh(sdlab, h, user) as c:
            rc, out, _ = run(c, "hostname; hostname -I; id -un")
            assert rc == 0
            assert out.split("\n")[:3] == [h, sdlab.address(h) + " ", user]


def test_known_hosts_is_strict(sdlab, tmp_path):
    kh = tmp_path / "known_hosts"
    kh.write_text("".join(l.replace(sdlab.address("db") + " ", sdlab.address("lb") + " ", 1)
                          for l in sdlab.known_hosts.read_text().splitlines(True)
                          if not l.startswith(sdlab.address("lb") + " ")))
    c = paramiko.SSHClient()
    c.load_host_keys(str(kh))
    c.set_missing_host_key_policy(paramiko.RejectPolicy())
    with pytest.raises(paramiko.SSHException):   # db's keys do not match lb
        c.connect(sdlab.address("lb"), username="deploy", key_filename=str(sdlab.key),
                  look_for_keys=False, allow_agent=False, timeout=5)
    c.close()


def test_sudo(sdlab):
    assert sdlab.exec("node1", "id -un", user="deploy", check=True).stdout == "deploy\n"
    with ssh(sdlab, "node1") as c:
        assert run(c, "sudo -n id -u")[1].strip() == "0"
    with ssh(sdlab, "node1", "operator") as c:
        rc, _, _ = run(c, "sudo -n true")
        assert rc != 0                      # operator needs the password
        rc, out, _ = run(c, "sudo -S -p '' id -u", input=sdlab.secret("sudo_password") + "\n")
        assert (rc, out.strip()) == (0, "0")


def test_mariadb_runs_as_a_service_on_db(sdlab):
    with ssh(sdlab, "db") as c:
        rc, out, err = run(c, "sudo mariadb -N -e 'select 1+1'")
        assert (rc, out.strip()) == (0, "2"), err
        rc, out, _ = run(c, "systemctl is-active mariadb; systemctl is-enabled mariadb")
        assert out.split() == ["active", "enabled"]
        rc, out, _ = run(c, "grep -rh '^bind-address' /etc/mysql/")
        assert "127.0.0.1" in out            # the deploy tool must open it
    # the other hosts have it installed (one root) but not enabled
    assert sdlab.exec("node1", "systemctl is-enabled mariadb").stdout.strip() == "disabled"


def test_nginx_on_lb_and_node_files(sdlab):
    with ssh(sdlab, "lb") as c:
        rc, out, err = run(c, "sudo nginx -t && systemctl is-enabled nginx")
        assert rc == 0 and out.strip() == "enabled", out + err
    r = sdlab.exec("node1", f"{LAB_JAVA_HOME}/bin/java -version 2>&1; test -d {EI_HOME} && "
                            "echo ei; ip route", check=True)
    assert "11.0." in r.stdout and "\nei\n" in r.stdout
    assert "default" not in r.stdout         # no route out of the lab


def test_reboot_gives_a_new_boot_and_ssh(sdlab):
    old = sdlab.boot_id("node1")
    sdlab.exec("node1", "echo kept > /etc/lab-marker", check=True)
    new = sdlab.reboot("node1")
    assert new and new != old
    with ssh(sdlab, "node1") as c:
        rc, out, _ = run(c, "cat /proc/sys/kernel/random/boot_id; cat /etc/lab-marker; "
                            "journalctl --list-boots --no-pager | wc -l")
        boot, marker, boots = out.split()
    assert boot == new and marker == "kept"
    assert int(boots) >= 2                  # journald keeps the logs of the earlier boot
    assert sdlab.exec("node1", "systemctl is-system-running --wait").stdout.strip() == "running"


def test_poweroff_and_start(sdlab):
    old = sdlab.boot_id("node1")
    sdlab.poweroff("node1")
    st = sdlab.status()["node1"]
    assert (st["pid"], st["sshd"]) == (None, False)
    assert sdlab.status()["db"]["sshd"]     # the others keep running
    sdlab.start("node1")
    assert sdlab.boot_id("node1") != old
    with ssh(sdlab, "node1") as c:
        assert run(c, "id -un")[1].strip() == "deploy"


def _pidns_members(pid: int) -> list[int]:
    ns = os.readlink(f"/proc/{pid}/ns/pid")
    found = []
    for p in Path("/proc").glob("[0-9]*"):
        try:
            if os.readlink(p / "ns/pid") == ns:
                found.append(int(p.name))
        except OSError:
            pass
    return found


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:                          # gone already
        return ""


def test_down_leaves_nothing(sdlab):
    with ssh(sdlab, "node1") as c:           # something long-running: it must die with the host
        run(c, "setsid -f sleep 1000 </dev/null >/dev/null 2>&1")
    top = sdlab.cgroup()
    pids = {int(x) for d in cgroup_dirs(top) for f in d.glob("**/cgroup.procs")
            for x in f.read_text().split()}
    for h in sdlab.hosts:                    # every process of every host, in any cgroup
        pids.update(_pidns_members(sdlab.host_pid(h)))
    sleepers = [p for p in pids if _comm(p) == "sleep"]
    assert len(pids) >= 10 and sleepers
    sdlab.down()
    assert [p for p in pids if Path(f"/proc/{p}").exists()] == []
    left = _leftovers(sdlab)
    left += [str(d) for d in cgroup_dirs(top) if d.exists()]
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    left += [l.split(":")[1] for l in links.splitlines() if f"vb-bps{sdlab.index}-" in l]
    left += [l for l in Path("/proc/self/mountinfo").read_text().splitlines()
             if f"bpslab{sdlab.index}-" in l]
    assert left == []
    assert not sdlab.state_dir.exists()
