"""The runner's side of the step contract on the fake-session tier: diffs, sensitive files,
check mode, an action's failure (tests/fakes.py)."""
from __future__ import annotations

from tasks.engine import remote
from tasks.engine.plan import ActionFailed, Plan
from tasks.engine.remote import FileSpec
from tasks.engine.report import Status
from tests.fakes import FakeFile, fake_run, output
from tests.unit.inv_factory import make_inv

SECRET_OLD = "password=old-value-not-known-to-the-redactor\n"
SECRET_NEW = "password=NEW-value-not-known-either\n"


def _file_plan(run, s, spec: FileSpec) -> Plan:
    """A one-file plan as a step builds it: the file fact, plan_files, an action writing it."""
    states, _ = run.file_facts(s, [spec])
    changes = remote.plan_files([spec], states)
    plan = Plan(noop="file as wanted")
    if changes:
        plan.add(changes[0].describe(), lambda s: run.apply_files(s, changes) and None, changes)
    return plan


def _setup(tmp_path, monkeypatch, **kw):
    inv = make_inv(tmp_path)
    run, hosts = fake_run(inv, monkeypatch, **kw)
    host = hosts[inv.lb.name]
    host.files["/etc/app/plain.conf"] = b"a=1\nb=2\n"
    host.files["/etc/app/secret.cnf"] = FakeFile(("[client]\n" + SECRET_OLD).encode(), 0o600)
    return run, host, run.session(inv.lb)


def test_sensitive_file_diff_shows_only_line_counts(tmp_path, monkeypatch):
    run, host, s = _setup(tmp_path, monkeypatch, diff=True)
    spec = FileSpec("/etc/app/secret.cnf", ("[client]\n" + SECRET_NEW + "ssl=1\n").encode(),
                    mode=0o600, sensitive=True)
    r = run.apply(s, "secret", _file_plan(run, s, spec))
    assert r.status == Status.CHANGED and r.changes == ["update /etc/app/secret.cnf"]
    assert r.diffs == ["--- before: /etc/app/secret.cnf\n+++ after: /etc/app/secret.cnf\n"
                       "(sensitive file: 1 line(s) removed, 2 added; content not shown)\n"]
    run.rep.record(r, show_diff=True)
    out = output(run)
    assert "value" not in out and "[client]" not in out and "ssl=1" not in out
    assert host.ran(r"commit root '?/etc/app/secret.cnf")  # written all the same


def test_plain_file_diff_is_a_unified_diff(tmp_path, monkeypatch):
    run, host, s = _setup(tmp_path, monkeypatch, diff=True)
    r = run.apply(s, "plain", _file_plan(run, s, FileSpec("/etc/app/plain.conf", b"a=1\nb=3\n")))
    assert r.status == Status.CHANGED
    assert "-b=2\n+b=3\n" in r.diffs[0] and "sensitive" not in r.diffs[0]


def test_sensitive_in_check_mode_writes_nothing(tmp_path, monkeypatch):
    run, host, s = _setup(tmp_path, monkeypatch, check=True, diff=True)
    spec = FileSpec("/etc/app/secret.cnf", b"[client]\n", mode=0o600, sensitive=True)
    r = run.apply(s, "secret", _file_plan(run, s, spec))
    assert r.status == Status.CHANGED and r.msg == "would change (check mode)"
    assert r.diffs[0].endswith("(sensitive file: 1 line(s) removed, 0 added; content not shown)\n")
    assert not host.ran("commit")


def test_no_diff_without_the_flag_and_noop(tmp_path, monkeypatch):
    run, host, s = _setup(tmp_path, monkeypatch)
    spec = FileSpec("/etc/app/secret.cnf", b"[client]\nx\n", mode=0o600, sensitive=True)
    r = run.apply(s, "secret", _file_plan(run, s, spec))
    assert r.status == Status.CHANGED and r.diffs == []
    same = FileSpec("/etc/app/plain.conf", b"a=1\nb=2\n")
    r = run.apply(s, "plain", _file_plan(run, s, same))
    assert (r.status, r.msg) == (Status.OK, "file as wanted")


def test_action_failure_names_what_was_done(tmp_path, monkeypatch):
    run, host, s = _setup(tmp_path, monkeypatch)

    def boom(s):
        raise ActionFailed("disk full; free space in /etc and run again")
    plan = Plan().add("first", lambda s: "did it").add("second", boom)
    r = run.apply(s, "two", plan)
    assert r.status == Status.FAILED
    assert r.msg == "second: disk full; free space in /etc and run again\n(done before this: first)"
