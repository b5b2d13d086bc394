"""fab artifacts: local checks, facts, the pure plan, log patterns, and the apply path over fake
sessions (node 1 first, a node 1 failure stops before the others, --prune order, check, diff)."""
from __future__ import annotations

import hashlib
import re

import pytest

from tests import artifact_samples as S
from tests.fakes import fake_run, output
from tests.unit.inv_factory import make_inv

from tasks.engine.cli import Abort
from tasks.steps import artifacts
from tasks.steps.artifacts import local, plan as P


@pytest.fixture
def inv(tmp_path):
    return make_inv(tmp_path)


@pytest.fixture
def arts(tmp_path):
    S.write_all(tmp_path / "arts")
    return local.load_folder(tmp_path / "arts")


def sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


# --------------------------------------------------------------------------- local checks


@pytest.mark.parametrize("name,data,why", [
    ("Cut.zip", S.corrupt(S.bpel_zip()), "corrupt archive"),
    ("NoDd.zip", S._zip({"x.bpel": b"<p/>"}), "deploy.xml"),
    ("Empty.bar", S._zip({"a.txt": b"x"}), "a .bar without a process definition"),
    ("NoArt.car", S._zip({"a.txt": b"x"}), "a .car without artifacts.xml"),
    ("Bad.zip", S._zip({"deploy.xml": b"<deploy"}), "deploy.xml is not well-formed"),
    ("bad name.zip", S.bpel_zip(), "file name must be"),
])
def test_each_bad_archive_is_named_with_its_reason(tmp_path, name, data, why):
    (tmp_path / name).write_bytes(data)
    with pytest.raises(local.ArtifactError) as e:
        local.load_folder(tmp_path)
    assert f"{name}: " in str(e.value) and why in str(e.value)
    assert "no host was touched" in str(e.value)


def test_two_archives_with_one_package_name_are_refused(tmp_path):
    (tmp_path / "Order.zip").write_bytes(S.bpel_zip("Order"))
    (tmp_path / "order.zip").write_bytes(S.humantask_zip("order"))
    (tmp_path / "a.car").write_bytes(S.car("App"))
    (tmp_path / "b.car").write_bytes(S.car("App", pad=10))
    with pytest.raises(local.ArtifactError) as e:
        local.load_folder(tmp_path)
    assert "Order.zip and order.zip: two archives with one package name" in str(e.value)
    assert "a.car and b.car: two archives with one package name 'App_1.0.0'" in str(e.value)


def test_kinds_are_recognised_by_content(arts):
    assert {a.rel: a.kind for a in arts} == {
        "bpel/HelloWorld.zip": "bpel", "humantasks/ApproveTask.zip": "humantask",
        "bpmn/OneTask.bar": "bpmn", "carbonapps/HelloCApp_1.0.0.car": "carbonapp"}
    assert [a.app for a in arts if a.kind == "carbonapp"] == ["HelloCApp_1.0.0"]


def test_missing_folder_exits_2(inv, tmp_path):
    from invoke.exceptions import Exit
    with pytest.raises(Exit) as e:
        artifacts.local_or_exit(inv, tmp_path / "nope")
    assert e.value.code == 2


# --------------------------------------------------------------------------- facts and plan


def probe_out(inv, files: dict[str, bytes], manifest: dict[str, bytes] | None = None) -> str:
    server = P.server_dir(inv)
    lines = [f"{sha(d)}  {server}/{rel}" for rel, d in files.items()] + ["@@manifest"]
    lines += [f"{sha(d)} {rel}" for rel, d in (manifest or {}).items()]
    return "\n".join(lines)


def test_parse_and_plan(inv, arts):
    bpel = next(a for a in arts if a.kind == "bpel")
    old = S.bpmn_bar(version=0)
    f = P.parse(inv, probe_out(inv, {bpel.rel: bpel.data, "bpmn/OneTask.bar": old,
                                     "bpel/Gone.zip": b"g", "bpel/Hand.zip": b"h2",
                                     "bpel/Mine.zip": b"m"},
                               {"bpel/Gone.zip": b"g", "bpel/Hand.zip": b"h1",
                                "bpel/Mine.zip": b"m", "bpel/Vanished.zip": b"v"}))
    assert f.files[bpel.rel] == bpel.sha256 and f.manifest["bpel/Gone.zip"] == sha(b"g")
    p = P.plan_node(arts, f, prune=True)
    assert sorted(a.rel for a in p.added) == ["carbonapps/HelloCApp_1.0.0.car",
                                               "humantasks/ApproveTask.zip"]
    assert [a.rel for a in p.changed] == ["bpmn/OneTask.bar"]
    assert p.unchanged == [bpel.rel]
    assert p.removed == ["bpel/Gone.zip", "bpel/Mine.zip"]  # ours, unchanged since
    assert p.forget == ["bpel/Vanished.zip"]
    assert any("bpel/Hand.zip is no longer what this tool deployed" in w for w in p.warnings)
    kept = P.plan_node(arts, f, prune=False)
    assert kept.removed == [] and any("--prune` undeploys it" in w for w in kept.warnings)
    assert "removed   bpel/Gone.zip, bpel/Mine.zip" in p.listing()


def test_patterns_match_the_products_lines_and_only_that_file(arts):
    by = {a.kind: a for a in arts}
    ok = {"bpel": "INFO {x} - Successfully deployed BPEL package HelloWorld-3 from HelloWorld.zip",
          "humantask": "Successfully deployed HumanTask package ApproveTask-2 from ApproveTask.zip",
          "bpmn": "Successfully deployed BPMN archive OneTask.bar as deployment 4",
          "carbonapp": "Successfully Deployed Carbon Application : HelloCApp_1.0.0{super-tenant}"}
    for kind, line in ok.items():
        assert re.search(P.ok_pattern(by[kind]), line), kind
    fail = P.fail_pattern("HelloWorld.zip")
    assert re.search(fail, "[t] [EI-BPS] ERROR {a} - The HelloWorld.zip service, which is not valid")
    assert re.search(fail, "[t] [EI-BPS] ERROR {a} - Error extracting BPEL archive /x/HelloWorld.zip. y")
    assert not re.search(fail, "[t] [EI-BPS] ERROR {a} - The MyHelloWorld.zip service")
    gone = P.gone_pattern("bpmn/OneTask.bar")
    assert re.search(gone, "Undeploying BPMN archive /x/bpmn/OneTask.bar for tenant: -1234")
    assert re.search(P.gone_pattern("carbonapps/A.car"),
                     "Undeploying Carbon Application : A_1.0.0{super-tenant} (A.car)")


def test_status_cells_flag_a_node_whose_set_differs(inv, arts):
    a = arts[0]
    raw = {"node1": {P.PROBE: _fact(probe_out(inv, {a.rel: a.data}))},
           "node2": {P.PROBE: _fact(probe_out(inv, {}))}}
    cells = artifacts.status_cells(inv, raw)
    assert cells["node1"] == ("1", None)
    assert cells["node2"][0] == "0 DIFFERS" and a.rel in cells["node2"][1]


def _fact(out: str):
    from tasks.engine.remote import Fact
    return Fact(out, 0)


# --------------------------------------------------------------------------- apply path


def setup_hosts(inv, hosts, order, files=None, manifest=None, monkeypatch=None):
    sent = []
    if monkeypatch is not None:  # SFTP: the bytes, by name, into a private folder
        monkeypatch.setattr(artifacts, "send_files", lambda s, folder, files_: (
            order.append((s.name, f"sftp {folder} {sorted(files_)}")), sent.append(files_)))
    for n in inv.nodes:
        h = hosts[n.name]
        h.answer(r"@@manifest", stdout=probe_out(inv, files or {}, manifest))
        h.answer(r"ei_state; unit_state", stdout="alive 4242")
        orig = h.exec

        def rec(command, stdin, _orig=orig, _n=n.name):
            order.append((_n, stdin.decode()))
            return _orig(command, stdin)
        h.exec = rec
    return sent


def test_apply_uploads_then_node1_first_then_the_others(inv, arts, monkeypatch):
    run, hosts = fake_run(inv, monkeypatch)
    order: list = []
    sent = setup_hosts(inv, hosts, order, monkeypatch=monkeypatch)
    for n in inv.nodes:
        hosts[n.name].answer(r"^wait_lines \"\$off\"", stdout="".join(f"ok {a.rel}\n" for a in arts))
    assert artifacts.artifacts_step(run, arts)
    kinds = [(n, "upload" if "\nreceive " in sc or sc.startswith("sftp") else
              "deploy" if "\nput " in sc else "read") for n, sc in order]
    deploys = [n for n, k in kinds if k == "deploy"]
    assert deploys == ["node1", "node2"]
    last_upload = max(i for i, (_, k) in enumerate(kinds) if k == "upload")
    assert last_upload < kinds.index(("node1", "deploy"))
    script = next(sc for n, sc in order if n == "node1" and "\nput " in sc)
    assert f"put a0 {arts[0].sha256} {arts[0].rel}" in script and "wait_lines" in script
    assert sent and sorted(sent[0]) == ["a0", "a1", "a2", "a3"]
    assert sent[0]["a0"] == arts[0].data  # the raw bytes, not base64
    assert "runuser" in script  # the owner moves the file in (files.sh as_owner)


def test_noop_with_the_configure_read_runs_no_command(inv, arts, monkeypatch):
    run, hosts = fake_run(inv, monkeypatch)
    raw = {n.name: {P.PROBE: _fact(probe_out(inv, {a.rel: a.data for a in arts}))}
           for n in inv.nodes}
    assert artifacts.artifacts_step(run, arts, raw)
    assert all(hosts[n.name].scripts == [] for n in inv.nodes)
    assert "4 artifact(s) deployed, all up to date" in output(run)


def test_check_mode_and_diff_list_without_uploading(inv, arts, monkeypatch):
    run, hosts = fake_run(inv, monkeypatch, check=True, diff=True)
    order: list = []
    setup_hosts(inv, hosts, order, monkeypatch=monkeypatch)
    assert artifacts.artifacts_step(run, arts)
    assert all("@@BPS-FACT-BEGIN" in sc for _, sc in order)  # fact reads only
    text = output(run)
    assert "would change (check mode)" in text and "add bpel/HelloWorld.zip" in text
    assert re.search(r"added\s+humantasks/ApproveTask.zip", text)


def test_node1_failure_stops_before_the_others(inv, arts, monkeypatch):
    run, hosts = fake_run(inv, monkeypatch)
    order: list = []
    setup_hosts(inv, hosts, order, monkeypatch=monkeypatch)
    hosts["node1"].answer(r"^wait_lines \"\$off\"", exit=3, stdout=(
        "failed bpel/HelloWorld.zip\n  | [t] [EI-BPS] ERROR {x} - The HelloWorld.zip service, "
        "which is not valid, caused boom\n"))
    with pytest.raises(Abort) as e:
        artifacts.artifacts_step(run, arts)
    assert "node 1" in str(e.value) and "were not touched (node2)" in str(e.value)
    assert "which is not valid, caused boom" in str(e.value)
    node2 = [sc for n, sc in order if n == "node2"]
    assert not any("\nput " in sc for sc in node2)
    assert any("\nreceive " in sc for sc in node2)  # staged in parallel, outside the folders
    assert "clear_stage" in node2[-1]  # what was staged there is removed


def test_node1_down_deploys_nothing_anywhere(inv, arts, monkeypatch):
    run, hosts = fake_run(inv, monkeypatch)
    order: list = []
    setup_hosts(inv, hosts, order, monkeypatch=monkeypatch)
    hosts["node1"].rules.insert(0, (re.compile(r"ei_state; unit_state", re.M),
                                    hosts["node1"].rules[1][1].__class__("dead", "", 0)))
    with pytest.raises(Abort):
        artifacts.artifacts_step(run, arts)
    assert not any("\nput " in sc for _, sc in order)
    assert "EI is not running on node1" in output(run)


def test_prune_the_others_first_node1_last(inv, arts, monkeypatch):
    run, hosts = fake_run(inv, monkeypatch)
    order: list = []
    files = {a.rel: a.data for a in arts} | {"bpel/Old.zip": b"old"}
    setup_hosts(inv, hosts, order, files, {"bpel/Old.zip": b"old"}, monkeypatch)
    for n in inv.nodes:
        hosts[n.name].answer(r"^wait_lines \"\$off\"", stdout="ok bpel/Old.zip\n")
    assert artifacts.artifacts_step(run, arts, prune=True)
    takes = [n for n, sc in order if "\ntake " in sc]
    assert takes == ["node2", "node1"]
    assert "undeploy bpel/Old.zip" in output(run)
