"""`fab configure` on real nodes: install from a zip where EI_HOME is missing, the stand-in
passes its checks, the node's files are WSO2's shipped files plus only our edits, a second run
changes nothing; and SSH-level features (jump host, sudo with a password, -H)."""
from __future__ import annotations

import base64
import os

import pytest

from tests.integration.helpers import curl, fab, out, recap_rows, served_by

from tasks.steps import node_config  # noqa: E402

from tasks.wso2 import ei_xml, vault

from tasks.engine import inventory

BASE = int(os.environ.get("LAB_INDEX", "7"))
from tests.paths import PROFILE_CONF as CONF
EI = "/opt/wso2ei-6.6.0"


@pytest.fixture(scope="module")
def zlab(lab_factory, tmp_path_factory):
    """A lab whose nodes have no EI_HOME: hosts.toml names a zip to install."""
    lab = lab_factory(BASE + 2, nodes=2, ei_home=False)
    d = tmp_path_factory.mktemp("zip")
    z = lab.build_ei_zip(d / "wso2ei-6.6.0.zip")
    lab.ztoml = lab.write_hosts_toml(d / "hosts.toml", cluster={"ei_zip": str(z)})
    return lab


def test_missing_ei_home_without_zip_is_a_clear_error(zlab):
    r = fab(zlab, "configure")
    assert r.returncode != 0
    assert f"EI_HOME {EI} is missing on this node" in out(r) and "cluster.ei_zip" in out(r)


def test_deploy_installs_from_the_zip_and_the_nodes_start(zlab):
    r = fab(zlab.ztoml, "deploy")
    text = out(r)
    assert r.returncode == 0, text
    assert "installed wso2ei-6.6.0.zip" in text
    assert {served_by(curl(f"http://{zlab.address('lb')}/services/", host="ei.wso2.com")[1])
            for _ in range(6)} == {"node1", "node2"}
    # the service user owns EI_HOME, the server runs as that user, not root
    for n in ("node1", "node2"):
        assert zlab.exec(n, f"stat -c %U {EI}").stdout.strip() == "wso2"
        # the product's JVM writes its PID NUL-padded to 100 bytes
        pid = zlab.exec(n, f"tr -d '\\000' < {EI}/wso2/business-process/wso2carbon.pid"
                        ).stdout.strip()
        assert zlab.exec(n, f"ps -o user= -p {pid}").stdout.strip() == "wso2"
        assert "WSO2 Carbon started" in zlab.exec(
            n, f"cat {EI}/wso2/business-process/repository/logs/wso2carbon.log").stdout


def test_second_run_changes_nothing_and_uploads_nothing(zlab):
    r = fab(zlab.ztoml, "deploy")
    assert r.returncode == 0, out(r)
    assert all(row["changed"] == 0 and not row["restarted"]
               for row in recap_rows(r.stdout).values()), r.stdout
    assert "install" not in r.stdout


@pytest.mark.parametrize("node", ["node1", "node2"])
def test_node_files_are_shipped_files_plus_only_our_edits(zlab, node):
    inv = inventory.load(zlab.ztoml)
    host = inv.host(node)
    shipped = {rel: (CONF / rel).read_bytes() for rel in ei_xml.CONF_FILES}
    expected = ei_xml.render_node_config(shipped, node_config.node_params(inv, host))
    if inv.cluster.secure_vault:  # the passwords as Secure Vault aliases (tests/unit/test_vault.py)
        expected = vault.alias_config(expected)
    for rel in ei_xml.CONF_FILES:
        path = f"{EI}/wso2/business-process/conf/{rel}"
        on_node = _read_bytes(zlab, node, path)
        # byte for byte what the pure edit of WSO2's shipped file gives (tests/unit proves that
        # edit changes only the intended elements), so nothing else on the node was touched
        assert on_node == expected[rel], rel
        assert on_node.count(b"<!--") == shipped[rel].count(b"<!--"), f"{rel}: comments lost"
        mode = zlab.exec(node, ["stat", "-c", "%a %U", path]).stdout.split()
        if rel in node_config.SECRET_FILES:
            assert mode == ["600", "wso2"], (rel, mode)


def _read_bytes(lab, node, path) -> bytes:
    return base64.b64decode(lab.exec(node, ["base64", "-w0", path], check=True).stdout)


def test_jump_host_and_sudo_password(zlab, tmp_path):
    # through the LB as a jump host, as `operator` whose sudo asks for a password
    toml = zlab.write_hosts_toml(tmp_path / "jump.toml", user="operator",
                                 ssh={"jump": f"operator@{zlab.address('lb')}"})
    r = fab(toml, "ping")
    assert r.returncode == 0, out(r)
    assert out(r).count("sudo ok (password)") == 4
    assert zlab.secret("sudo_password") not in out(r)
    r = fab(toml, "deploy")
    assert r.returncode == 0, out(r)
    assert all(row["changed"] == 0 for row in recap_rows(r.stdout).values()), r.stdout


def test_dash_h_takes_inventory_names(zlab):
    r = fab(zlab.ztoml, "-H", "node2", "ping")
    assert r.returncode == 0, out(r)
    assert "[node2] ping: ok" in r.stdout and "[node1]" not in r.stdout
    r = fab(zlab.ztoml, "run", "--on", "nodes", "hostname")
    assert r.returncode == 0 and "[node1] node1" in r.stdout and "[node2] node2" in r.stdout


def test_logs_and_stop(zlab):
    r = fab(zlab.ztoml, "logs", "--on", "node2", "-n", "5")
    assert r.returncode == 0 and "[node2]" in r.stdout and "[node1] " not in r.stdout
    r = fab(zlab.ztoml, "stop")
    assert r.returncode == 0, out(r)
    order = [ln.split("]")[0] for ln in r.stdout.splitlines() if "stop: changed" in ln]
    assert order == ["[node2", "[node1"], r.stdout  # last first
    r = fab(zlab.ztoml, "status")
    assert r.returncode != 0 and "NOT running" in r.stdout
    r = fab(zlab.ztoml, "deploy")
    assert r.returncode == 0, out(r)
