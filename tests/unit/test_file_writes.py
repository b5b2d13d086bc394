"""The one file fact and the write script, run locally with /bin/sh on real files.

The hostile cases need root (CI and the lab run as root): the service user's files are written
as that user, so a link it plants in its own folder cannot steer root anywhere.
"""
from __future__ import annotations

import hashlib
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tasks.engine import remote
from tasks.engine.remote import FileSpec, FileState, NotAFile

SERVICE = "nobody"  # a real non-root account on every Debian machine


def sh(script: str, tmp: Path) -> subprocess.CompletedProcess:
    script = script.replace(remote.BACKUP_DIR, str(tmp / "backups"))
    return subprocess.run(["sh", "-s"], input=("set -u\n" + script).encode(),
                          capture_output=True)


def fact(path: Path, tmp: Path, content: bool = False) -> FileState | None:
    r = sh(remote.probe_file(str(path), content=content), tmp)
    return remote.parse_file_probe(r.stdout.decode())


def state_of(path: Path) -> FileState:
    st = path.stat()
    return FileState(hashlib.sha256(path.read_bytes()).hexdigest(), st.st_mode & 0o777,
                     pwd.getpwuid(st.st_uid).pw_name, __import__("grp").getgrgid(st.st_gid).gr_name)


def test_file_fact_says_missing_present_and_not_a_file(tmp_path):
    f = tmp_path / "a.conf"
    assert fact(f, tmp_path) is None
    f.write_bytes(b"x\n")
    os.chmod(f, 0o640)
    st = fact(f, tmp_path, content=True)
    assert (st.sha256, st.mode, st.content) == (hashlib.sha256(b"x\n").hexdigest(), 0o640, b"x\n")
    assert fact(f, tmp_path).content is None  # hash only, unless asked
    (tmp_path / "d").mkdir()
    with pytest.raises(NotAFile, match=r"d is a folder, not a regular file: nothing was written"):
        fact(tmp_path / "d", tmp_path)
    (tmp_path / "l").symlink_to(f)
    with pytest.raises(NotAFile, match="is a link"):
        fact(tmp_path / "l", tmp_path)


def test_rollback_restores_owner_and_mode_exactly(tmp_path):
    """A failed validation puts every file back as it was: content, mode, owner (case 15)."""
    a = tmp_path / "a.conf"
    a.write_text("A-old\n")
    os.chmod(a, 0o644)
    before = state_of(a)
    spec = FileSpec(str(a), b"A-new\n", before.owner, before.group, 0o600)
    script = remote.write_files_script(remote.plan_files([spec], {str(a): before}), "S",
                                       validate="false")
    assert sh(script, tmp_path).returncode == 3
    assert a.read_text() == "A-old\n" and state_of(a) == before


def test_backups_are_pruned_to_the_last_n(tmp_path):
    a = tmp_path / "a.conf"
    a.write_text("v0\n")
    for i in range(1, 6):
        before = state_of(a)
        spec = FileSpec(str(a), f"v{i}\n".encode(), before.owner, before.group, 0o644)
        stamp = f"2026010{i}T000000Z"
        r = sh(remote.write_files_script(remote.plan_files([spec], {str(a): before}), stamp,
                                         keep=3), tmp_path)
        assert r.returncode == 0, r.stderr
    kept = sorted(p.name for p in (tmp_path / "backups").iterdir() if p.is_file())
    assert len(kept) == 3 and [k.split(".")[2] for k in kept] == [
        "20260103T000000Z", "20260104T000000Z", "20260105T000000Z"]
    assert all((tmp_path / "backups" / k).stat().st_mode & 0o777 == 0o600 for k in kept)
    # one manifest per run that replaced something, pruned the same way (run ids)
    runs = tmp_path / "backups" / "runs"
    assert sorted(p.name for p in runs.iterdir()) == kept_stamps(kept)
    line = (runs / "20260105T000000Z").read_text().split()
    assert line[:2] == ["b", "644"] and line[-1] == str(a) and line[-2].endswith("~")
    assert (tmp_path / "backups" / line[-2]).name in kept or line[-2].split("/")[-1] in kept


def kept_stamps(names: list[str]) -> list[str]:
    return [n.split(".")[2] for n in names]


def test_a_folder_at_a_managed_path_is_refused_before_writing(tmp_path):
    """Case 16: the facts say 'folder', the step fails with that reason, nothing is written."""
    d = tmp_path / "ei.http.conf"
    d.mkdir()
    with pytest.raises(NotAFile, match="move the folder away"):
        fact(d, tmp_path)
    assert list(d.iterdir()) == [] and not list(tmp_path.glob(".bps-tmp*"))


@pytest.fixture
def service_dir():
    """An EI-like folder the service user owns (reachable by it: pytest's tmp is 0700 root)
    and a root-only canary beside it."""
    if os.geteuid() != 0:
        pytest.fail("needs root (the tool writes as root; CI runs as root)")
    base = Path(tempfile.mkdtemp(prefix="bps-test-"))
    os.chmod(base, 0o755)
    yield from _service_dir(base)
    shutil.rmtree(base)


def _service_dir(tmp_path: Path):
    conf = tmp_path / "ei" / "conf"
    conf.mkdir(parents=True)
    for p in (conf.parent, conf):
        os.chown(p, pwd.getpwnam(SERVICE).pw_uid, pwd.getpwnam(SERVICE).pw_gid)
    canary_dir = tmp_path / "rootonly"
    canary_dir.mkdir(mode=0o700)
    canary = canary_dir / "master-datasources.xml"
    canary.write_text("root's secret\n")
    os.chmod(canary, 0o600)
    yield conf, canary


def _service_spec(path: Path, data: bytes) -> FileSpec:
    group = __import__("grp").getgrgid(pwd.getpwnam(SERVICE).pw_gid).gr_name
    return FileSpec(str(path), data, SERVICE, group, 0o600, sensitive=True)


def test_service_user_folder_swapped_for_a_link_cannot_steer_root(service_dir, tmp_path):
    """Case 1: the service user swaps its conf folder for a link to a root-only folder; the
    write (made as that user) fails there, and the root-only file stays as it was."""
    conf, canary = service_dir
    target = conf / "datasources" / "master-datasources.xml"
    spec = _service_spec(target, b"<datasources>db password</datasources>\n")
    (conf / "datasources").symlink_to(canary.parent)
    script = remote.write_files_script(remote.plan_files([spec], {str(target): None}), "S")
    r = sh(script, tmp_path)
    assert r.returncode != 0
    assert canary.read_text() == "root's secret\n"
    st = canary.stat()
    assert (st.st_uid, st.st_mode & 0o777) == (0, 0o600)
    assert not list(canary.parent.glob(".bps-tmp*"))


def test_service_user_file_swapped_for_a_link_is_not_followed(service_dir, tmp_path):
    """The managed file itself becomes a link to a root-only file after the facts were read:
    the backup is read as the service user (refused), the root file is untouched."""
    conf, canary = service_dir
    target = conf / "carbon.xml"
    target.write_text("old\n")
    os.chown(target, pwd.getpwnam(SERVICE).pw_uid, pwd.getpwnam(SERVICE).pw_gid)
    before = state_of(target)
    target.unlink()
    target.symlink_to(canary)
    spec = _service_spec(target, b"new\n")
    r = sh(remote.write_files_script(remote.plan_files([spec], {str(target): before}), "S"),
           tmp_path)
    assert r.returncode != 0 and b"no longer a regular file" in r.stderr
    assert canary.read_text() == "root's secret\n" and canary.stat().st_uid == 0
    backups = [b for b in (tmp_path / "backups").glob("*") if b.is_file()]
    assert all(b.read_text() != "root's secret\n" for b in backups)


def test_service_user_file_is_written_by_that_user(service_dir, tmp_path):
    conf, _ = service_dir
    target = conf / "datasources" / "bps-datasources.xml"
    spec = _service_spec(target, b"<x/>\n")
    r = sh(remote.write_files_script(remote.plan_files([spec], {str(target): None}), "S"),
           tmp_path)
    assert r.returncode == 0, r.stderr
    st = target.stat()
    assert (pwd.getpwuid(st.st_uid).pw_name, st.st_mode & 0o777) == (SERVICE, 0o600)
    assert pwd.getpwuid(target.parent.stat().st_uid).pw_name == SERVICE


def test_a_failed_write_leaves_no_temp_file(tmp_path):
    """Disk full while staging: the temp file the owner made is removed with the failure."""
    target = tmp_path / "conf" / "a.conf"
    target.parent.mkdir()
    target.write_text("old\n")
    before = state_of(target)
    spec = FileSpec(str(target), b"new\n", before.owner, before.group, 0o644)
    script = remote.write_files_script(remote.plan_files([spec], {str(target): before}), "S")
    # `cat` failing like a full disk does, after mktemp made the file
    script = script.replace("{ cat > \"$t\" ||", "{ false > \"$t\" ||")
    r = sh(script, tmp_path)
    assert r.returncode != 0 and target.read_text() == "old\n"
    assert not list(target.parent.glob(".bps-tmp*"))
