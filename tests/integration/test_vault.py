"""Secure Vault on real nodes (issue 19): the nodes run through the aliases, no file on any host
holds a clear DB or admin password after a deploy, a no-op deploy encrypts nothing and restarts
nothing, a wrong keystore password fails the node with the product's own error, and
`cluster.secure_vault = false` says so loudly."""
from __future__ import annotations

import os

import pytest

from tests.integration.helpers import curl, fab, node_pids, out, recap_rows, served_by, noop_deploy
from tests.paths import PROFILE

BASE = int(os.environ.get("LAB_INDEX", "7"))
CONF = f"{PROFILE}/conf"
PWFILE = "/var/lib/bps-deploy/keystore-password"
SCAN = f"{PROFILE.rsplit('/wso2/', 1)[0]} /etc /var/backups/bps-deploy"


@pytest.fixture(scope="module")
def vlab(lab_factory):
    lab = lab_factory(BASE, nodes=2)
    r = fab(lab, "deploy")
    assert r.returncode == 0, out(r)
    return lab


def _served(lab) -> set[str]:
    return {served_by(curl(f"http://{lab.address('lb')}/services/", host="ei.wso2.com")[1])
            for _ in range(6)}


def _clear_hits(lab) -> list[str]:
    """Files (any host, under EI_HOME, /etc and the backups) holding the DB or admin password."""
    hits = []
    for name in ("db_password", "admin_password"):
        pw = lab.secret(name)
        for h in lab.hosts:
            found = lab.exec(h, f"grep -rlaF -e {pw!r} {SCAN} 2>/dev/null").stdout.split()
            hits += [f"{h}:{f} ({name})" for f in found]
    return hits


def test_nodes_run_through_the_aliases(vlab):
    assert _served(vlab) == {"node1", "node2"}
    for n in vlab.node_names:
        ds = vlab.exec(n, f"cat {CONF}/datasources/master-datasources.xml").stdout
        assert 'svns:secretAlias="Datasources.WSO2_USER_DB.Configuration.Password">password<' in ds
        log = vlab.exec(n, f"cat {PROFILE}/repository/logs/wso2carbon.log").stdout
        assert "Secure Vault: 10 secret(s)" in log
        # the server read the keystore password and deleted password-tmp, as the product does
        assert vlab.exec(n, f"test -e {PROFILE}/password-tmp").returncode != 0
        assert vlab.exec(n, f"stat -c '%U %a' {PWFILE}").stdout.split() == ["root", "600"]
        ct = vlab.exec(n, f"stat -c '%U %a' {CONF}/security/cipher-text.properties").stdout
        assert ct.split() == ["wso2", "600"]


def test_no_clear_db_or_admin_password_in_any_file(vlab):
    assert _clear_hits(vlab) == []


def test_noop_deploy_encrypts_nothing_and_restarts_nothing(vlab, tmp_path):
    before = {n: vlab.exec(n, f"sha256sum {CONF}/security/cipher-text.properties").stdout
              for n in vlab.node_names}
    pids = node_pids(vlab)
    noop_deploy(vlab, tmp_path / "stats.json")
    assert node_pids(vlab) == pids
    assert {n: vlab.exec(n, f"sha256sum {CONF}/security/cipher-text.properties").stdout
            for n in vlab.node_names} == before


def test_a_wrong_keystore_password_fails_the_node_with_the_products_error(vlab):
    vlab.exec("node2", f"echo not-the-password > {PWFILE}", check=True)
    r = fab(vlab, "restart", "--only", "node2")
    assert r.returncode != 0, out(r)
    log = vlab.exec("node2", f"cat {PROFILE}/repository/logs/wso2carbon.log").stdout
    assert "IOError loading keyStore from ' " in log
    assert "Keystore was tampered with, or password was incorrect" in log
    # the next deploy puts the right password back and the node comes up
    r = fab(vlab, "deploy")
    assert r.returncode == 0, out(r)
    assert _served(vlab) == {"node1", "node2"}


def test_secure_vault_off_is_loud_and_back_on_is_clean(vlab, tmp_path):
    off = vlab.write_hosts_toml(tmp_path / "off.toml", cluster={"secure_vault": False})
    r = fab(off, "deploy")
    assert r.returncode == 0, out(r)
    assert "!!! cluster.secure_vault = false" in out(r)
    assert _served(vlab) == {"node1", "node2"}
    ds = vlab.exec("node1", f"cat {CONF}/datasources/bps-datasources.xml").stdout
    assert vlab.secret("db_password") in ds and "secretAlias" not in ds
    again = fab(off, "deploy")
    assert "!!! cluster.secure_vault = false" in out(again)  # on every run
    assert all(row["changed"] == 0 for row in recap_rows(again.stdout).values()), again.stdout
    r = fab(vlab, "deploy")
    assert r.returncode == 0, out(r)
    assert _served(vlab) == {"node1", "node2"}
    assert _clear_hits(vlab) == []


# --------------------------------------------------------------------------- systemd hosts


def test_systemd_supplies_the_keystore_password_at_every_start(lab_factory):
    """Hosts that boot systemd: the unit hands root's password file over as a credential and
    copies it into password-tmp as the service user before each start, so a JVM killed with
    -9 comes back through the aliases with no fab command."""
    import time
    slab = lab_factory(BASE + 1, nodes=2, kind="systemd")
    r = fab(slab, "deploy")
    assert r.returncode == 0, out(r)
    unit = slab.exec("node1", "systemctl cat wso2ei-bps.service").stdout
    assert f"LoadCredential=keystore-password:{PWFILE}" in unit
    assert _served(slab) == {"node1", "node2"}
    log = f"{PROFILE}/repository/logs/wso2carbon.log"
    starts = slab.exec("node1", f"grep -c 'Secure Vault: 10 secret' {log}").stdout.strip()
    pid = slab.exec("node1", "pgrep -u wso2 -f -- '-Dcarbon[.]home='").stdout.split()[0]
    slab.exec("node1", f"kill -9 {pid}", check=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        now = slab.exec("node1", f"grep -c 'Secure Vault: 10 secret' {log}").stdout.strip()
        if now != starts and "WSO2 Carbon started" in slab.exec(
                "node1", f"tail -n 3 {log}").stdout:
            break
        time.sleep(1)
    else:
        pytest.fail("systemd did not bring node1 back through the vault within 120 s:\n"
                    + slab.exec("node1", f"tail -n 20 {log}").stdout)
    assert slab.exec("node1", f"test -e {PROFILE}/password-tmp").returncode != 0
    assert _clear_hits(slab) == []
