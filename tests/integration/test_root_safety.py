"""A hostile service user: nothing the EI service user can write may steer root.

The tool runs as root on nodes where `wso2` owns EI_HOME. These cases plant what that user can
plant (a link instead of its own folder, a PID of root's in its PID file, a java it can write)
and check that root's own files and processes stay as they were. One bounded race test flips a
folder and a link while configure writes.
"""
from __future__ import annotations

import os
import shlex
import threading
import time

import pytest

from tests.integration.helpers import fab, out, recap_rows, served_by, curl

from tests.paths import EI, PROFILE  # noqa: E402

BASE = int(os.environ.get("LAB_INDEX", "7"))
SECURITY = f"{PROFILE}/repository/resources/security"
DATASOURCES = f"{PROFILE}/conf/datasources"
CANARY_DIR = "/root/canary"
CANARY = "root's own file\n"


@pytest.fixture(scope="module")
def rlab(lab_factory):
    """LAB_INDEX+9: a deployed 2-node cluster for the hostile-service-user cases."""
    lab = lab_factory(BASE + 9, nodes=2)
    r = fab(lab, "deploy")
    assert r.returncode == 0, out(r)
    return lab


def plant_canary(lab, host: str, name: str) -> None:
    """A root-only folder holding a root-only file of the given name (0600)."""
    lab.exec(host, f"install -d -m 0700 {CANARY_DIR} && cat > {CANARY_DIR}/{name}"
                   f" && chmod 600 {CANARY_DIR}/{name}", check=True, input=CANARY)


def canary_intact(lab, host: str, name: str) -> None:
    r = lab.exec(host, f"stat -c '%U:%G %a' {CANARY_DIR}/{name}; cat {CANARY_DIR}/{name}",
                 check=True)
    assert r.stdout == f"root:root 600\n{CANARY}", r.stdout


def as_wso2(lab, host: str, cmd: str, check: bool = True):
    return lab.exec(host, cmd, user="wso2", check=check)


def test_truststore_folder_swapped_for_a_link_during_renew(rlab):
    """keytool runs as wso2: a link to a root-only folder gets nothing written through it."""
    plant_canary(rlab, "node1", "client-truststore.jks")
    as_wso2(rlab, "node1", f"mv {SECURITY} {SECURITY}.real && ln -s {CANARY_DIR} {SECURITY}")
    try:
        r = fab(rlab, "certs", "--renew")
        assert r.returncode != 0
        rows = recap_rows(r.stdout)
        assert rows["node1"]["failed"] == 1 and rows["node2"]["failed"] == 0, r.stdout
        canary_intact(rlab, "node1", "client-truststore.jks")
        assert rlab.exec("node1", f"ls -A {CANARY_DIR}").stdout.split() == \
            ["client-truststore.jks"]
    finally:
        as_wso2(rlab, "node1", f"rm -f {SECURITY} && mv {SECURITY}.real {SECURITY}")
        rlab.exec("node1", f"rm -rf {CANARY_DIR}")
    r = fab(rlab, "deploy")
    assert r.returncode == 0, out(r)


def test_datasources_folder_swapped_for_a_link(rlab):
    """The DB password's file: written as wso2, so a link to root's folder is a dead end."""
    plant_canary(rlab, "node1", "master-datasources.xml")
    as_wso2(rlab, "node1", f"mv {DATASOURCES} {DATASOURCES}.real && ln -s {CANARY_DIR} "
                           f"{DATASOURCES}")
    try:
        r = fab(rlab, "configure")
        assert r.returncode != 0
        assert "node1" in out(r)
        canary_intact(rlab, "node1", "master-datasources.xml")
        assert rlab.exec("node1", f"ls -A {CANARY_DIR}").stdout.split() == \
            ["master-datasources.xml"]
        # nothing of the DB password left in root's folder or beside the canary
        leaked = rlab.exec("node1", f"grep -rl Password {CANARY_DIR} || true").stdout
        assert leaked == ""
    finally:
        as_wso2(rlab, "node1", f"rm -f {DATASOURCES} && mv {DATASOURCES}.real {DATASOURCES}")
        rlab.exec("node1", f"rm -rf {CANARY_DIR}")


def test_managed_file_replaced_by_a_link_is_refused(rlab):
    """The file itself a link (to a root-only file): the facts say so, nothing is written."""
    conf = f"{PROFILE}/conf/carbon.xml"
    plant_canary(rlab, "node1", "carbon.xml")
    as_wso2(rlab, "node1", f"mv {conf} {conf}.real && ln -s {CANARY_DIR}/carbon.xml {conf}")
    try:
        r = fab(rlab, "configure")
        assert r.returncode != 0
        assert f"{conf} is a link, not a regular file: nothing was written" in out(r)
        canary_intact(rlab, "node1", "carbon.xml")
    finally:
        as_wso2(rlab, "node1", f"rm -f {conf} && mv {conf}.real {conf}")
        rlab.exec("node1", f"rm -rf {CANARY_DIR}")
    r = fab(rlab, "deploy")
    assert r.returncode == 0, out(r)


def test_java_the_service_user_can_write_never_runs_as_root(rlab, tmp_path):
    """A JDK without a `release` file whose java the service user owns: asked for its version
    as wso2 only. (No cluster.java_home here: the `java` on PATH is the one asked.)"""
    toml = rlab.write_hosts_toml(tmp_path / "hosts.toml", cluster={"java_home": None})
    fake = "/opt/fakejdk"
    # /usr/bin/java -> /etc/alternatives/java: /etc is the lab host's own (an overlay)
    real = rlab.exec("node1", "readlink /etc/alternatives/java", check=True).stdout.strip()
    rlab.exec("node1", f"install -d -o wso2 -g wso2 {fake}/bin && "
                       f"printf '#!/bin/sh\\nid -u >> /tmp/java-ran-as\\necho \"openjdk version "
                       f"11.0.99\"\\n' > {fake}/bin/java && chown wso2:wso2 {fake}/bin/java && "
                       f"chmod 755 {fake}/bin/java && ln -sfn {fake}/bin/java /etc/alternatives/java",
              check=True)
    try:
        fab(toml, "ping")
        fab(toml, "configure", "--check")
        ran = rlab.exec("node1", "cat /tmp/java-ran-as 2>/dev/null").stdout.split()
        wso2 = rlab.exec("node1", "id -u wso2").stdout.strip()
        assert ran and set(ran) == {wso2}, ran
    finally:
        rlab.exec("node1", f"ln -sfn {real} /etc/alternatives/java; rm -rf {fake} /tmp/java-ran-as")


@pytest.mark.parametrize("planted", ["1", "-1", "ssh"])
def test_pid_file_with_a_root_pid_kills_nothing_of_root(rlab, planted):
    """Case 2: the PID file says sshd (PID 1 of the host), -1, or another root process: stop
    signals only the proven JVM of this EI_HOME, as wso2."""
    pidfile = f"{PROFILE}/wso2carbon.pid"
    if planted == "ssh":
        rlab.exec("node1", "setsid -f sleep 600 </dev/null >/dev/null 2>&1", check=True)
        planted = rlab.exec("node1", "pgrep -x -u root sleep | head -1").stdout.strip()
    as_wso2(rlab, "node1", f"printf '%s' {planted} > {pidfile}")
    r = fab(rlab, "stop", "--on", "node1")
    assert r.returncode == 0, out(r)
    # the host (sshd is its PID 1) and root's process are alive; the JVM is gone
    assert rlab.exec("node1", "true").returncode == 0
    if planted not in ("1", "-1"):
        assert rlab.exec("node1", f"kill -0 {planted}").returncode == 0
        rlab.exec("node1", f"kill {planted}")
    assert rlab.exec("node1", "pgrep -u wso2 -f carbon.home=").returncode != 0
    r = fab(rlab, "deploy")
    assert r.returncode == 0, out(r)
    assert {served_by(curl(f"http://{rlab.address('lb')}/services/", host="ei.wso2.com")[1])
            for _ in range(6)} == {"node1", "node2"}


def test_race_folder_and_link_flipping_while_configure_writes(rlab):
    """Bounded race: wso2 flips conf/datasources between its folder and a link to a root-only
    folder as fast as it can while configure rewrites the file; root's folder never changes."""
    plant_canary(rlab, "node1", "master-datasources.xml")
    flip = (f"end=$(( $(date +%s) + 20 )); while [ $(date +%s) -lt $end ]; do "
            f"mv -T {DATASOURCES} {DATASOURCES}.real 2>/dev/null; ln -sfn {CANARY_DIR} {DATASOURCES}; "
            f"rm -f {DATASOURCES}; mv -T {DATASOURCES}.real {DATASOURCES} 2>/dev/null; done")
    flipper = threading.Thread(target=lambda: as_wso2(rlab, "node1", flip, check=False))
    flipper.start()
    try:
        t_end = time.monotonic() + 18
        runs = 0
        while time.monotonic() < t_end:
            # make the file differ so configure writes it each time (as wso2, like the flipper)
            as_wso2(rlab, "node1", f"sed -i 's/<maxActive>/<maxActive >/' "
                                   f"{DATASOURCES}/master-datasources.xml 2>/dev/null",
                    check=False)
            fab(rlab, "configure", timeout=120)
            runs += 1
        assert runs >= 2
    finally:
        flipper.join(60)
    canary_intact(rlab, "node1", "master-datasources.xml")
    assert rlab.exec("node1", f"ls -A {CANARY_DIR}").stdout.split() == ["master-datasources.xml"]
    # put the folder back whatever state the flipper left, then converge
    as_wso2(rlab, "node1", f"[ -d {DATASOURCES} ] && [ ! -L {DATASOURCES} ] || "
                           f"{{ rm -f {DATASOURCES}; mv -T {DATASOURCES}.real {DATASOURCES}; }}",
            check=False)
    rlab.exec("node1", f"rm -rf {CANARY_DIR}")
    r = fab(rlab, "deploy")
    assert r.returncode == 0, out(r)


def test_schema_script_edited_by_the_service_user_is_not_run_as_db_admin(rlab):
    """db-init reads WSO2's scripts from node1's EI_HOME, which wso2 can write, and runs them as
    the DB admin: a script that is not WSO2's, byte for byte, is refused before any change."""
    script = f"{EI}/dbscripts/mysql.sql"
    as_wso2(rlab, "node1", f"cp {script} /tmp/mysql.sql.orig && "
                           f"echo 'CREATE DATABASE pwned;' >> {script}")
    # a partial database: db-init would drop it (--drop) and load the kernel script again
    rlab.exec("db", "mariadb REGISTRY_LOCAL2 -e 'DROP TABLE REG_LOG'", check=True)
    try:
        r = fab(rlab, "db-init", "--drop", "REGISTRY_LOCAL2")
        assert r.returncode != 0
        assert "is not WSO2's shipped script" in out(r) and "database.scripts_dir" in out(r)
        dbs = rlab.exec("db", "mariadb -N -e 'SHOW DATABASES'", check=True).stdout.split()
        assert "pwned" not in dbs and "REGISTRY_LOCAL2" in dbs  # refused before any change
    finally:
        as_wso2(rlab, "node1", f"cat /tmp/mysql.sql.orig > {script}")
    r = fab(rlab, "db-init", "--drop", "REGISTRY_LOCAL2")
    assert r.returncode == 0, out(r)
    r = fab(rlab, "deploy")
    assert r.returncode == 0, out(r)


FORWARD = r"""
import socket, sys, threading, time  # bps-forward
src, dst = sys.argv[1], sys.argv[2]
ls = socket.socket()
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
for _ in range(50):
    try:
        ls.bind((src, 22)); break
    except OSError:
        time.sleep(0.1)
ls.listen(16)
def pipe(a, b):
    try:
        while True:
            d = a.recv(65536)
            if not d:
                break
            b.sendall(d)
    except OSError:
        pass
    for s in (a, b):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
while True:
    c, _ = ls.accept()
    u = socket.create_connection((dst, 22))
    threading.Thread(target=pipe, args=(c, u), daemon=True).start()
    threading.Thread(target=pipe, args=(u, c), daemon=True).start()
"""


def test_host_reached_at_another_machines_address_is_refused(rlab, tmp_path):
    """Case 4: node2's ssh_address leads to node1's machine (a second IP of node1, its key
    trusted for it). Preflight proves the machine reached does not own node2's cluster address
    and stops before any change, naming the fix."""
    alias = rlab.address("node1").rsplit(".", 1)[0] + ".99"
    rlab.exec("node1", f"ip addr add {alias}/24 dev eth0", check=True)
    # the lab's sshd listens on the host's own address only: forward the alias's port 22 to it
    rlab.exec("node1", f"setsid -f python3 -c {shlex.quote(FORWARD)} {alias} "
                       f"{rlab.address('node1')} </dev/null >/dev/null 2>&1", check=True)
    try:
        kh = tmp_path / "known_hosts"
        key = rlab.known_hosts.read_text().splitlines()
        node1_key = next(l for l in key if l.startswith(rlab.address("node1") + " "))
        kh.write_text("\n".join(key + [alias + " " + node1_key.split(" ", 1)[1]]) + "\n")
        toml = rlab.write_hosts_toml(tmp_path / "hosts.toml", ssh={"known_hosts": str(kh)})
        text = toml.read_text().replace(f'address = "{rlab.address("node2")}"',
                                        f'address = "{rlab.address("node2")}"\n'
                                        f'ssh_address = "{alias}"')
        toml.write_text(text)
        before = rlab.exec("node1", f"sha256sum {PROFILE}/conf/axis2/axis2.xml").stdout
        r = fab(toml, "deploy")
        assert r.returncode != 0
        assert (f"its cluster address {rlab.address('node2')} is not on any interface of the "
                f"machine reached at {alias}") in out(r)
        assert "nothing was changed" in out(r)
        assert rlab.exec("node1", f"sha256sum {PROFILE}/conf/axis2/axis2.xml").stdout == before
    finally:
        rlab.exec("node1", f"pkill -f 'bps-forwar[d]' ; ip addr del {alias}/24 dev eth0")


def test_folder_at_a_managed_path_and_backups_pruned(rlab):
    """Case 16: a folder where a vhost file belongs is refused before any write, no temp file
    left; case 22: after many changing runs, at most backups_keep (10) backups per file."""
    vhost = "/etc/nginx/conf.d/ei.http.conf"
    rlab.exec("lb", f"mv {vhost} /root/ei.http.conf.keep && mkdir {vhost}", check=True)
    try:
        r = fab(rlab, "lb")
        assert r.returncode != 0
        assert f"{vhost} is a folder, not a regular file: nothing was written" in out(r)
        assert rlab.exec("lb", f"ls -A {vhost}").stdout == ""
        assert rlab.exec("lb", "find /etc/nginx -name '.bps-tmp*'").stdout == ""
    finally:
        rlab.exec("lb", f"rmdir {vhost}; mv /root/ei.http.conf.keep {vhost}")
    for _ in range(12):
        rlab.exec("lb", f"sed -i 's/^/ /' {vhost}", check=True)
        r = fab(rlab, "lb")
        assert r.returncode == 0, out(r)
    kept = rlab.exec("lb", "ls /var/backups/bps-deploy | grep -c '^etc%nginx%conf.d%ei.http.conf\\.'"
                     ).stdout.strip()
    assert kept == "10"
    modes = rlab.exec("lb", "stat -c %a /var/backups/bps-deploy/etc%nginx%conf.d%ei.http.conf.*"
                      ).stdout.split()
    assert set(modes) == {"600"}
