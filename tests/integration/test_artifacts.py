"""`fab artifacts` on a deployed lab: all four kinds, node 1 first; a no-op; one changed; --prune;
refusals: a corrupt archive locally (exit 2, no host touched), a package node 1 rejects (node 2
never touched); the stand-in's hot deployer failing a half-written copy.

One deployed lab (LAB_INDEX) for the module; the tests run in file order and build on each other.
"""
from __future__ import annotations

import json
import re
import shutil
from datetime import datetime

import pytest

from tests import artifact_samples as S
from tests.integration.helpers import fab, out
from tests.paths import PROFILE

SERVER = f"{PROFILE}/repository/deployment/server"
LOG = f"{PROFILE}/repository/logs/wso2carbon.log"
STAMP = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\]")


@pytest.fixture(scope="module")
def alab(lab, tmp_path_factory):
    r = fab(lab, "deploy")
    assert r.returncode == 0, out(r)
    folder = tmp_path_factory.mktemp("artifacts")
    toml = lab.run_dir / "hosts-artifacts.toml"
    toml.write_text((lab.run_dir / "hosts.toml").read_text()
                    + f'\n[artifacts]\ndir = "{folder}"\nwait = 60\n')
    lab.toml, lab.folder = toml, folder
    return lab


def log_lines(lab, node: str, pattern: str) -> list[str]:
    r = lab.exec(node, f"cat {PROFILE}/repository/logs/wso2carbon*.log 2>/dev/null")
    return [ln for ln in r.stdout.splitlines() if re.search(pattern, ln)]


def when(line: str) -> datetime:
    return datetime.strptime(STAMP.match(line).group(1), "%Y-%m-%d %H:%M:%S,%f")


def listing(lab, node: str) -> str:
    return lab.exec(node, f"cd {SERVER} && find bpel humantasks bpmn carbonapps -type f | sort "
                          "| xargs -r sha256sum").stdout


def test_corrupt_archive_is_refused_locally(alab):
    S.write_all(alab.folder)
    (alab.folder / "Broken.zip").write_bytes(S.corrupt(S.bpel_zip("Broken")))
    (alab.folder / "NoProcess.bar").write_bytes(S._zip({"readme.txt": b"x"}))
    before = {n: listing(alab, n) for n in alab.node_names}
    r = fab(alab.toml, "artifacts")
    assert r.returncode == 2, out(r)
    assert "Broken.zip: corrupt archive" in out(r)
    assert "NoProcess.bar: a .bar without a process definition" in out(r)
    assert "no host was touched" in out(r)
    assert {n: listing(alab, n) for n in alab.node_names} == before
    (alab.folder / "Broken.zip").unlink()
    (alab.folder / "NoProcess.bar").unlink()


def test_first_deploy_all_four_kinds_node1_first(alab):
    r = fab(alab.toml, "artifacts")
    assert r.returncode == 0, out(r)
    n1, n2 = alab.node_names[:2]
    ok = r"Successfully (deployed|Deployed) "
    first = {n: log_lines(alab, n, ok) for n in (n1, n2)}
    for n in (n1, n2):
        text = "\n".join(first[n])
        for what in ("BPEL package HelloWorld-", "HumanTask package ApproveTask-",
                     "BPMN archive OneTask.bar", "Carbon Application : HelloCApp_1.0.0"):
            assert what in text, (n, text)
    # node 1 deployed everything before node 2 deployed anything
    assert max(map(when, first[n1])) <= min(map(when, first[n2])), first
    # node 2 loaded the versions node 1 made in the shared BPS database
    v = {n: re.search(r"HelloWorld-(\d+)", "\n".join(first[n])).group(1) for n in (n1, n2)}
    assert v[n1] == v[n2], v
    assert listing(alab, n1) == listing(alab, n2)
    owner = alab.exec(n1, f"stat -c %U {SERVER}/bpel/HelloWorld.zip").stdout.strip()
    assert owner == "wso2"


def test_second_run_uploads_nothing(alab, tmp_path):
    stats = tmp_path / "stats.json"
    r = fab(alab.toml, "artifacts", env={"BPS_STATS_FILE": str(stats)})
    assert r.returncode == 0, out(r)
    assert "upload" not in out(r) and "all up to date" in out(r), out(r)
    commands = json.loads(stats.read_text())["commands"]
    assert all(commands[n] == 1 for n in alab.node_names), commands


def test_noop_deploy_reads_artifacts_in_its_fact_read(alab, tmp_path):
    stats = tmp_path / "stats.json"
    r = fab(alab.toml, "deploy", env={"BPS_STATS_FILE": str(stats)})
    assert r.returncode == 0, out(r)
    assert "all up to date" in out(r)
    commands = json.loads(stats.read_text())["commands"]
    assert all(c <= 5 for c in commands.values()), commands


def test_one_changed_artifact_only_it_redeployed_previous_kept(alab):
    n1 = alab.node_names[0]
    old = listing(alab, n1)
    (alab.folder / "HelloWorld.zip").write_bytes(S.bpel_zip(version=2))
    before = {n: len(log_lines(alab, n, "Successfully")) for n in alab.node_names}
    r = fab(alab.toml, "artifacts", "--diff")
    assert r.returncode == 0, out(r)
    assert "update bpel/HelloWorld.zip" in out(r)
    assert "add " not in out(r)
    assert re.search(r"changed\s+bpel/HelloWorld.zip", out(r)), out(r)
    for n in alab.node_names:
        new = log_lines(alab, n, "Successfully")[before[n]:]
        assert len(new) == 1 and "HelloWorld" in new[0], new
        kept = alab.exec(n, "ls /var/backups/bps-deploy/ | grep -c 'bpel%HelloWorld.zip'").stdout
        assert int(kept) >= 1
    assert listing(alab, n1) != old


def test_check_and_diff_show_a_removed_artifact_and_change_nothing(alab):
    shutil.move(alab.folder / "OneTask.bar", alab.folder.parent / "OneTask.bar")
    before = {n: listing(alab, n) for n in alab.node_names}
    r = fab(alab.toml, "artifacts", "--check", "--diff", "--prune")
    assert r.returncode == 0, out(r)
    assert "undeploy bpmn/OneTask.bar" in out(r) and re.search(r"removed\s+bpmn/OneTask.bar", out(r))
    assert {n: listing(alab, n) for n in alab.node_names} == before
    r = fab(alab.toml, "artifacts")  # without --prune: kept, and said so
    assert r.returncode == 0 and "--prune` undeploys it" in out(r), out(r)
    assert "OneTask.bar" in listing(alab, alab.node_names[0])


def test_prune_undeploys_others_first_node1_last(alab):
    n1, n2 = alab.node_names[:2]
    # a file put there by hand is never pruned
    alab.exec(n1, f"cp {SERVER}/bpel/HelloWorld.zip {SERVER}/bpel/ByHand.zip && "
                  f"chown wso2: {SERVER}/bpel/ByHand.zip")
    r = fab(alab.toml, "artifacts", "--prune")
    assert r.returncode == 0, out(r)
    for n in (n1, n2):
        assert "OneTask.bar" not in listing(alab, n)
    assert "ByHand.zip" in listing(alab, n1)
    gone = {n: log_lines(alab, n, r"Undeploying BPMN archive .*OneTask.bar") for n in (n1, n2)}
    assert gone[n1] and gone[n2] and when(gone[n2][-1]) <= when(gone[n1][-1]), gone
    alab.exec(n1, f"rm -f {SERVER}/bpel/ByHand.zip")


def test_stand_in_fails_a_half_written_archive(alab):
    n1 = alab.node_names[0]
    half = S.corrupt(S.bpel_zip("HalfCopy", pad=20000))
    alab.exec(n1, f"cat > {SERVER}/bpel/HalfCopy.zip", input=half.decode("latin-1"), user="wso2")
    import time
    for _ in range(40):
        if log_lines(alab, n1, r"ERROR .*HalfCopy.zip"):
            break
        time.sleep(0.5)
    assert log_lines(alab, n1, r"ERROR .*HalfCopy.zip.*(incomplete or corrupt|not valid)")
    alab.exec(n1, f"rm -f {SERVER}/bpel/HalfCopy.zip")


def test_package_node1_rejects_stops_before_node2(alab):
    n1, n2 = alab.node_names[:2]
    bad = S._zip({"deploy.xml":
                  b'<deploy xmlns="http://ode.fivesight.com/schemas/2006/06/27/dd" '
                  b'xmlns:x="urn:x"><process name="x:Missing"/></deploy>',
                  "Other.bpel": b'<process name="Other"/>'})
    (alab.folder / "Missing.zip").write_bytes(bad)
    before2 = listing(alab, n2)
    lines2 = len(log_lines(alab, n2, "."))
    r = fab(alab.toml, "artifacts")
    assert r.returncode == 1, out(r)
    assert "Process definition for Missing not found" in out(r), out(r)
    assert "were not touched" in out(r)
    assert listing(alab, n2) == before2
    assert not [ln for ln in log_lines(alab, n2, ".")[lines2:] if "Missing" in ln]
    staged = alab.exec(n2, f"ls -A {PROFILE}/tmp/bps-artifacts 2>/dev/null").stdout.strip()
    assert staged == ""
    (alab.folder / "Missing.zip").unlink()
    r = fab(alab.toml, "artifacts", "--prune")  # node 1 gives it up again
    assert r.returncode == 0, out(r)
    assert "Missing.zip" not in listing(alab, n1)


def test_status_counts_artifacts_and_flags_a_differing_node(alab):
    n1, n2 = alab.node_names[:2]
    r = fab(alab.toml, "status")
    rows = {ln.split()[0]: ln for ln in out(r).splitlines() if ln.startswith((n1, n2))}
    assert "DIFFERS" not in out(r), out(r)
    alab.exec(n2, f"rm -f {SERVER}/carbonapps/HelloCApp_1.0.0.car")
    r = fab(alab.toml, "status")
    assert r.returncode == 1 and "DIFFERS" in out(r) and "artifacts differ from node 1" in out(r)
    assert rows
    r = fab(alab.toml, "artifacts")  # puts it back
    assert r.returncode == 0, out(r)
