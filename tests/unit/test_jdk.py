"""The JDK that runs EI: cluster.java_home, the version decision (8 and 11 only), the probe
that reads the JDK's `release` file, and the start's grace period (no PID file, no JVM yet)."""
from __future__ import annotations

import os
import subprocess

import pytest

from tasks.steps import certs, services

from tasks.engine import inventory
from tests.unit.inv_factory import make_inv, make_raw


# --------------------------------------------------------------------------- version decision

@pytest.mark.parametrize("version, major", [
    ("1.8.0_392", 8), ("1.7.0_80", 7), ("11.0.13", 11), ("11", 11), ("17.0.15", 17),
    ("21", 21), ("21-ea", 21), ("25.0.1", 25), ("9.0.4", 9), ("", None), ("unknown", None),
])
def test_jdk_major(version, major):
    assert services.jdk_major(version) == major


@pytest.mark.parametrize("java", [
    "java 11.0.13 (/opt/jdk-11)",
    "java 1.8.0_392 (/usr/lib/jvm/java-8-openjdk-amd64)",
    'openjdk version "11.0.99" 2021-10-19',      # no release file: `java -version` as wso2
    'java version "1.8.0_202"',
])
def test_jdk_8_and_11_are_accepted(java):
    assert services.jdk_problem(java, "/opt/jdk") is None


@pytest.mark.parametrize("java, found", [
    ("java 17.0.15 (/usr/lib/jvm/java-17-openjdk-amd64)",
     "JDK 17.0.15 at /usr/lib/jvm/java-17-openjdk-amd64"),
    ("java 21.0.2 (/usr/lib/jvm/java-21-openjdk-amd64)", "JDK 21.0.2 at"),
    ("java 1.7.0_80 (/usr/lib/jvm/java-7)", "JDK 1.7.0_80 at"),
    ('openjdk version "17.0.1" 2021-10-19', "JDK 17.0.1 "),
])
def test_other_jdks_are_refused_naming_the_jdk_and_the_fix(java, found):
    msg = services.jdk_problem(java, "/usr/lib/jvm/x")
    assert msg and found in msg, msg
    assert "JDK 8 and 11 only" in msg
    assert "cluster.java_home" in msg and "install JDK 11" in msg


def test_unknown_version_is_refused():
    msg = services.jdk_problem("java, version unknown (/opt/j has no release file)", None)
    assert msg and "cannot tell the version" in msg and "/opt/j has no release file" in msg
    assert "the `java` on PATH" in msg  # no java_home: says where the JDK came from


@pytest.mark.parametrize("java, said", [
    ("", "no JDK found"),
    ("missing /opt/jdk-11/bin/java", "/opt/jdk-11/bin/java does not exist"),
])
def test_missing_jdk_is_refused(java, said):
    msg = services.jdk_problem(java, "/opt/jdk-11")
    assert msg and said in msg and "cluster.java_home" in msg


# --------------------------------------------------------------------------- java_home key

def test_java_home_defaults_to_java_on_path(tmp_path):
    assert make_inv(tmp_path).cluster.java_home is None


def test_java_home_is_kept_without_trailing_slash(tmp_path):
    inv = make_inv(tmp_path, cluster={"java_home": "/usr/lib/jvm/java-11-openjdk-amd64/"})
    assert inv.cluster.java_home == "/usr/lib/jvm/java-11-openjdk-amd64"


@pytest.mark.parametrize("value, said", [
    ("jdk-11", "must be an absolute path"),
    ("/opt/jdk 11", "not safe in a path"),
    ("/opt/jdk;rm -rf /", "not safe in a path"),
    ("/opt/$(id)", "not safe in a path"),
    ("/opt/../usr/lib/jvm", "contains '..'"),
    ("/opt//jdk", "is not normalized"),
    ("/opt/jdk-11\n", "not safe in a path"),
    ("/", "cannot be the root directory"),
])
def test_bad_java_home_is_named(tmp_path, value, said):
    raw = make_raw(tmp_path, cluster={"java_home": value})
    with pytest.raises(inventory.InventoryError) as e:
        inventory.from_dict(raw, tmp_path / "hosts.toml")
    assert "cluster.java_home" in str(e.value) and said in str(e.value), str(e.value)


def test_java_home_must_be_a_string(tmp_path):
    raw = make_raw(tmp_path, cluster={"java_home": 11})
    with pytest.raises(inventory.InventoryError) as e:
        inventory.from_dict(raw, tmp_path / "hosts.toml")
    assert "cluster.java_home: expected str" in str(e.value)


# --------------------------------------------------------------------------- what runs remotely

def _probe(cmd: str) -> str:
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    return subprocess.run(["sh", "-c", cmd], capture_output=True, text=True, env=env,
                          timeout=30).stdout.strip()


def _fake_jdk(tmp_path, release: str | None):
    home = tmp_path / "jdk"
    (home / "bin").mkdir(parents=True)
    java = home / "bin/java"
    java.write_text("#!/bin/sh\necho ran >> \"$(dirname \"$0\")/../ran\"\n")
    java.chmod(0o755)
    if release is not None:
        (home / "release").write_text(release)
    return home


def test_probe_reads_the_release_file_of_java_home_and_runs_no_java(tmp_path):
    home = _fake_jdk(tmp_path, 'IMPLEMENTOR="x"\nJAVA_VERSION="17.0.15"\n')
    out = _probe(services.java_probe("nosuchuser-jdk", str(home)))
    assert out == f"java 17.0.15 ({home})"
    assert not (home / "ran").exists()
    assert "17.0.15" in services.jdk_problem(out, str(home))


def test_probe_without_release_file_never_runs_java_as_root(tmp_path):
    home = _fake_jdk(tmp_path, None)
    out = _probe(services.java_probe("nosuchuser-jdk", str(home)))
    assert out == f"java, version unknown ({home} has no release file)"
    assert not (home / "ran").exists()
    assert "cannot tell the version" in services.jdk_problem(out, str(home))


def test_probe_of_a_missing_java_home(tmp_path):
    out = _probe(services.java_probe("nosuchuser-jdk", str(tmp_path / "nojdk")))
    assert out == f"missing {tmp_path}/nojdk/bin/java"


def test_start_uses_java_home_as_java_home(tmp_path):
    inv = make_inv(tmp_path, cluster={"java_home": "/opt/jdk-11"})
    s = services._as_service_user(inv, "start")
    assert "\nJAVA_HOME_WANTED=/opt/jdk-11\n" in s and 'env JAVA_HOME="$_jh"' in s
    assert s.endswith("ei_ctl start\n")
    # without java_home: derived from the java on PATH (ei_start.sh), as before
    s = services._as_service_user(make_inv(tmp_path), "start")
    assert "\nJAVA_HOME_WANTED=''\n" in s and "command -v java" in s


def test_keytool_comes_from_java_home(tmp_path):
    s = certs.import_script(["/opt/ei/store.jks"], b"PEM", "FP", "ei.example.com", "pw", "wso2",
                            "/opt/ei", "20260101T000000Z", java_home="/opt/jdk-11")
    assert "JAVA_HOME=/opt/jdk-11\n" in s
    assert "export JAVA_HOME" in s  # reaches keytool's shell (run as the service user)


# --------------------------------------------------------------------------- start grace

def test_no_jvm_yet_is_not_an_exit_while_the_script_runs():
    """wso2server.sh start returns at once; its copy runs `java -version` twice, then the
    JVM, which writes the PID file seconds later: none of that is an exit."""
    gone = 0
    for _ in range(20):
        gone, dead = services.exited(running=False, launchers=1, gone_before=gone)
        assert not dead
    assert gone == 0


def test_exit_needs_several_polls_with_neither_jvm_nor_script():
    gone, dead = services.exited(False, 0, 0)
    assert (gone, dead) == (1, False)
    gone, dead = services.exited(False, 0, gone)
    assert not dead
    gone, dead = services.exited(False, 0, gone)
    assert dead and gone == services.EXIT_POLLS
    # one poll with the JVM (or the script) resets the count
    assert services.exited(True, 0, 2) == (0, False)
    assert services.exited(False, 1, 2) == (0, False)


def test_launcher_probe_matches_only_the_service_users_script(tmp_path):
    """Run the probe with a pgrep that records its arguments: the service user's processes
    whose command line holds the profile's wso2server.sh, dots matched literally."""
    inv = make_inv(tmp_path)
    shim = tmp_path / "bin"
    shim.mkdir()
    (shim / "pgrep").write_text('#!/bin/sh\nprintf "%s\\n" "$@" > "$ARGS"\necho 41\necho 42\n')
    (shim / "pgrep").chmod(0o755)
    args = tmp_path / "args"
    r = subprocess.run(["sh", "-c", services.launcher_probe(inv)], capture_output=True, text=True,
                       env={"PATH": f"{shim}:/usr/bin:/bin", "ARGS": str(args)})
    assert r.stdout.strip() == "2", r.stderr
    assert args.read_text().splitlines() == [
        "-u", "wso2", "-f", "--", "/opt/wso2ei-6[.]6[.]0/wso2/business-process/bin/wso2server[.]sh"]


def test_probe_names_where_a_linked_java_home_leads(tmp_path):
    home = _fake_jdk(tmp_path, 'JAVA_VERSION="17.0.15"\n')
    link = tmp_path / "jdk-11"
    link.symlink_to(home)
    out = _probe(services.java_probe("nosuchuser-jdk", str(link)))
    assert out == f"java 17.0.15 ({link} -> {home})"
    assert f"JDK 17.0.15 at {link} -> {home}" in services.jdk_problem(out, str(link))
