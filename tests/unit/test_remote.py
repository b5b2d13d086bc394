"""Remote primitives that need no host: fact parsing, file plans, managed blocks, and the
atomic write script itself (run with the local /bin/sh in a temp dir: real files, real mv)."""
import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.paths import REPO

from tasks.engine import remote  # noqa: E402
from tasks.engine.remote import FileSpec, FileState  # noqa: E402
from tasks.engine.report import Redactor, Reporter, StepResult  # noqa: E402


def test_parse_facts_keeps_output_and_codes():
    text = ("noise\n@@BPS-FACT-BEGIN a\nline1\nline2\n\n@@BPS-FACT-END a 0\n"
            "@@BPS-FACT-BEGIN b\n\n@@BPS-FACT-END b 3\n")
    f = remote.parse_facts(text)
    assert f["a"].out == "line1\nline2" and f["a"].rc == 0
    assert f["b"].out == "" and f["b"].rc == 3


def test_plan_files_no_change_is_empty():
    spec = FileSpec("/etc/x", b"hello", "root", "root", 0o644)
    same = FileState(hashlib.sha256(b"hello").hexdigest(), 0o644, "root", "root")
    assert remote.plan_files([spec], {"/etc/x": same}) == []
    [ch] = remote.plan_files([spec], {"/etc/x": FileState(same.sha256, 0o600, "root", "root")})
    assert not ch.content_changed and "fix owner/mode" in ch.describe()
    [ch] = remote.plan_files([spec], {"/etc/x": None})
    assert ch.content_changed and ch.describe() == "create /etc/x"


def test_managed_block_is_idempotent_and_keeps_other_lines():
    text = "127.0.0.1 localhost\n10.0.0.5 other\n"
    once = remote.managed_block(text, ["10.0.0.2 ei.example.com"], "t")
    assert once.startswith(text)
    assert remote.managed_block(once, ["10.0.0.2 ei.example.com"], "t") == once
    changed = remote.managed_block(once, ["10.0.0.3 ei.example.com"], "t")
    assert "10.0.0.3" in changed and "10.0.0.2" not in changed and changed.startswith(text)
    # two markers live side by side
    both = remote.managed_block(changed, ["10.0.0.9 db"], "u")
    assert remote.managed_block(both, ["10.0.0.3 ei.example.com"], "t") == both
    assert remote.managed_block(both, [], "u") == changed


def _run_local(script: str, tmp: Path) -> subprocess.CompletedProcess:
    script = script.replace(remote.BACKUP_DIR, str(tmp / "backups"))
    return subprocess.run(["sh", "-s"], input=script.encode(), capture_output=True)


def test_write_script_is_atomic_with_backup(tmp_path):
    target = tmp_path / "conf" / "a.conf"
    target.parent.mkdir()
    target.write_text("old\n")
    me = os.getuid()
    import pwd, grp
    user = pwd.getpwuid(me).pw_name
    group = grp.getgrgid(os.getgid()).gr_name
    spec = FileSpec(str(target), b"new\n", user, group, 0o640)
    ch = remote.plan_files([spec], {str(target): FileState("x", 0o644, user, group)})
    r = _run_local(remote.write_files_script(ch, "STAMP"), tmp_path)
    assert r.returncode == 0, r.stderr
    assert target.read_text() == "new\n" and (target.stat().st_mode & 0o777) == 0o640
    backups = [p for p in (tmp_path / "backups").iterdir() if p.is_file()]
    assert len(backups) == 1 and backups[0].read_text() == "old\n"
    assert backups[0].stat().st_mode & 0o777 == 0o600
    # the run's manifest names it, with the file's metadata before the run
    manifest = (tmp_path / "backups" / "runs" / "STAMP").read_text()
    assert manifest == f"b 644 {user} {group} {backups[0]} {target}\n"
    assert not [p for p in target.parent.iterdir() if p.name.startswith(".bps-tmp")]


def test_failed_validation_restores_every_file(tmp_path):
    import pwd, grp
    user = pwd.getpwuid(os.getuid()).pw_name
    group = grp.getgrgid(os.getgid()).gr_name
    a, b = tmp_path / "a.conf", tmp_path / "b.conf"
    a.write_text("A-old\n")
    specs = [FileSpec(str(a), b"A-new\n", user, group), FileSpec(str(b), b"B-new\n", user, group)]
    ch = remote.plan_files(specs, {str(a): FileState("x", 0o644, user, group), str(b): None})
    r = _run_local(remote.write_files_script(ch, "S", validate="echo 'bad line 3' >&2; false"),
                   tmp_path)
    assert r.returncode == 3
    assert b"bad line 3" in r.stderr and b"previous files restored" in r.stderr
    assert a.read_text() == "A-old\n" and not b.exists()


def test_corrupted_transfer_is_refused(tmp_path):
    import pwd, grp
    user = pwd.getpwuid(os.getuid()).pw_name
    group = grp.getgrgid(os.getgid()).gr_name
    a = tmp_path / "a.conf"
    a.write_text("keep\n")
    ch = remote.plan_files([FileSpec(str(a), b"new\n", user, group)],
                           {str(a): FileState("x", 0o644, user, group)})
    script = remote.write_files_script(ch, "S").replace(hashlib.sha256(b"new\n").hexdigest(),
                                                       "0" * 64)
    r = _run_local(script, tmp_path)
    assert r.returncode != 0 and a.read_text() == "keep\n"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".bps-tmp")]


def test_redactor_and_recap(capsys, tmp_path):
    red = Redactor(["hunter22", "pw"])
    assert red("a hunter22 b pw") == "a *** b pw"  # too-short secrets are not masked globally
    rep = Reporter(red, log_dir=tmp_path, color=False)
    rep.record(StepResult("node1", "configure", "changed", "password hunter22 set"))
    rep.record(StepResult("node2", "configure", "failed", "boom"))
    assert rep.recap() == 1
    out = capsys.readouterr().out
    assert "[node1] configure: changed: password *** set" in out
    assert "hunter22" not in out and "hunter22" not in rep.log_path.read_text()
    assert oct(rep.log_path.stat().st_mode & 0o777) == "0o600"


def test_diffs_mask_old_passwords_the_redactor_never_saw():
    from tasks.engine.report import unified_diff
    before = b"<AdminUser>\n  <UserName>admin</UserName>\n  <Password>old-secret</Password>\n"
    after = b"<AdminUser>\n  <UserName>admin</UserName>\n  <Password>new-secret</Password>\n"
    d = unified_diff("user-mgt.xml", before, after, Redactor(["new-secret"]))
    assert "old-secret" not in d and "new-secret" not in d
    assert "-  <Password>***</Password>" in d and "+  <Password>***changed***</Password>" in d
    cnf = unified_diff("x.cnf", b"password = a1\n", b"password = b2\n", Redactor())
    assert "a1" not in cnf and "b2" not in cnf


def test_batched_file_facts_say_exactly_what_each_probe_says(tmp_path):
    """read_facts reads many probe_file facts with one stat and one sha256sum: for a file, an
    asked-for content, a missing path, a folder, a link (never followed) and a special file
    the batch must answer what each probe answers alone, run by a real shell."""
    import os
    import subprocess
    from tasks.engine.remote import facts
    (tmp_path / "a file").write_bytes(b"x" * 5000)
    (tmp_path / "b").write_bytes(b"")
    os.symlink(tmp_path / "a file", tmp_path / "link")
    (tmp_path / "dir").mkdir()
    paths = [(tmp_path / "a file", True), (tmp_path / "b", False), (tmp_path / "none", True),
             (tmp_path / "dir", False), (tmp_path / "link", True), (Path("/dev/null"), False),
             (tmp_path / "b", True)]
    probes = [facts.probe_file(str(p), content=c) for p, c in paths]

    def sh(text):
        return subprocess.run(["sh", "-c", text], capture_output=True, text=True,
                              check=True).stdout
    batched = facts.parse_files(sh(facts.files_snippet(probes)), len(probes))
    assert [b.rstrip("\n") for b in batched] == [sh(str(p)).rstrip("\n") for p in probes]
    assert batched[4].startswith("NOTFILE link")
    assert facts.parse_file_probe(batched[0]).content == b"x" * 5000
    with pytest.raises(remote.RemoteError, match="incomplete"):
        facts.parse_files("K 0 FILE\n", 1, "node1")
