"""The admin password where it lives: WSO2_USER_DB, changed through the product's user admin
service on a running node (issue "The real product, not a forgiving stand-in", point 6).

One lab (LAB_INDEX+13, 2 nodes); the tests build on each other in file order.
"""
from __future__ import annotations

import base64
import hashlib
import http.client
import os
import re
import secrets as _secrets
import ssl

import pytest

from tests.integration.helpers import fab, out, recap_rows, node_pids, noop_deploy
from tests.integration.test_faults import ProcSampler

BASE = int(os.environ.get("LAB_INDEX", "7"))
EI = "/opt/wso2ei-6.6.0"
PROFILE = f"{EI}/wso2/business-process"
STATE = "/var/lib/bps-deploy/admin-password.state"
PENDING = "/var/lib/bps-deploy/pending-restart"


@pytest.fixture(scope="module")
def alab(lab_factory):
    lab = lab_factory(BASE + 13, nodes=2)
    lab.first = fab(lab.hosts_toml, "deploy")
    return lab


def login(lab, node: str, password: str, user: str = "admin") -> bool:
    """AuthenticationAdmin login straight at the node's HTTPS port (from this process: no
    password in any argv)."""
    body = ('<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
            'xmlns:a="http://authentication.services.core.carbon.wso2.org"><soapenv:Body>'
            f"<a:login><a:username>{user}</a:username><a:password>{password}</a:password>"
            "<a:remoteAddress>127.0.0.1</a:remoteAddress></a:login></soapenv:Body>"
            "</soapenv:Envelope>")
    c = http.client.HTTPSConnection(lab.address(node), 9445, timeout=20,
                                    context=ssl._create_unverified_context())
    c.request("POST", "/services/AuthenticationAdmin", body.encode(),
              {"Content-Type": "text/xml; charset=UTF-8", "SOAPAction": '"urn:login"'})
    r = c.getresponse()
    text = r.read().decode()
    c.close()
    assert r.status == 200, (r.status, text)
    assert "loginResponse" in text, text
    return "return>true</" in text


def admin_row(lab) -> tuple[str, str]:
    r = lab.exec("db", "mariadb -N -B -e \"SELECT UM_USER_PASSWORD, UM_SALT_VALUE FROM UM_USER "
                       "WHERE UM_USER_NAME='admin' AND UM_TENANT_ID=-1234\" WSO2_USER_DB",
                 check=True)
    rows = [ln.split("\t") for ln in r.stdout.strip().splitlines()]
    assert len(rows) == 1, r.stdout
    return rows[0][0], rows[0][1]


def wso2_hash(password: str, salt: str) -> str:
    return base64.b64encode(hashlib.sha256((password + salt).encode()).digest()).decode()


def newest_run_log(lab) -> str:
    logs = sorted((lab.run_dir / "logs").glob("run-*.log"), key=lambda p: p.stat().st_mtime)
    return logs[-1].read_text(errors="replace")


def write_secret(lab, name: str, value: str):
    p = lab.secrets_dir / name
    p.write_text(value + "\n")
    p.chmod(0o600)
    return p


def test_first_deploy_seeds_and_remembers_the_admin_password(alab):
    lab = alab
    r = lab.first
    assert r.returncode == 0, out(r)
    pw = lab.secret("admin_password")
    # the stand-in seeded the admin from user-mgt.xml, hashed as WSO2's JDBCUserStoreManager
    stored, salt = admin_row(lab)
    assert salt and stored == wso2_hash(pw, salt)
    assert re.search(r"\[node1\] admin: changed: .*login with the new password works", r.stdout), \
        r.stdout
    for n in lab.node_names:
        assert login(lab, n, pw) and not login(lab, n, pw + "x")
        st = lab.exec(n, ["stat", "-c", "%a %U", STATE], check=True).stdout.split()
        assert st == ["600", "root"], st
        text = lab.exec(n, ["cat", STATE], check=True).stdout
        assert text.startswith("v1 pbkdf2-sha256 ") and pw not in text, text
    r2, _ = noop_deploy(lab.hosts_toml, lab.run_dir / "stats-admin.json")
    assert "admin password already applied" in r2.stdout, r2.stdout


def test_changed_admin_password_without_the_old_one_is_a_clear_error(alab):
    lab = alab
    old = lab.secret("admin_password")
    lab.old_pw = old
    lab.new_pw = "Rot-" + _secrets.token_urlsafe(16)
    pids = node_pids(lab)
    write_secret(lab, "admin_password", lab.new_pw)
    r = fab(lab.hosts_toml, "deploy")
    text = out(r)
    assert r.returncode == 1, text
    assert "secrets.admin_password_old" in text and "admin: failed" in text, text
    assert lab.new_pw not in text and old not in text
    rows = recap_rows(r.stdout)
    assert not any(row["restarted"] for row in rows.values()), r.stdout
    assert node_pids(lab) == pids
    for n in lab.node_names:
        # user-mgt.xml took the new seed, which marks no restart; the store still has the old one
        # (through Secure Vault: an alias in the file, never the password in clear)
        mgt = lab.exec(n, ["cat", f"{PROFILE}/conf/user-mgt.xml"]).stdout
        assert "UserManager.AdminUser.Password" in mgt and lab.new_pw not in mgt
        assert lab.exec(n, ["test", "-e", PENDING]).returncode != 0
        assert login(lab, n, old) and not login(lab, n, lab.new_pw)


def test_rotation_changes_it_in_the_user_store_without_a_restart(alab):
    lab = alab
    old, new = lab.old_pw, lab.new_pw
    oldf = write_secret(lab, "admin_password_old", old)
    lab.rot_toml = lab.write_hosts_toml(lab.run_dir / "hosts-rotate.toml",
                                        secrets={"admin_password_old": {"file": str(oldf)}})
    pids = node_pids(lab)
    row_before = admin_row(lab)
    check = fab(lab.rot_toml, "deploy", "--check")
    assert check.returncode == 0, out(check)
    assert "updateCredentialByAdmin(admin)" in check.stdout, check.stdout
    assert login(lab, "node1", old)  # check mode ran nothing
    with ProcSampler(lab) as ps:
        r = fab(lab.rot_toml, "deploy")
    text = out(r)
    assert r.returncode == 0, text
    assert "[node1] admin: changed: admin password changed in the user store" in r.stdout, text
    assert re.search(r"\[node2\] admin: changed: .*the old one is refused", r.stdout), text
    rows = recap_rows(r.stdout)
    assert not any(row["restarted"] for row in rows.values()), r.stdout
    assert node_pids(lab) == pids  # no JVM restarted
    for n in lab.node_names:
        assert login(lab, n, new), n
        assert not login(lab, n, old), n
    row_after = admin_row(lab)
    assert row_after[0] != row_before[0] and row_after[0] == wso2_hash(new, row_after[1])
    # no password in any process's argv or environment, on any host, nor in output or run log
    leaks = []
    for h in lab.hosts:
        assert ps.samples[h] >= 5, ps.samples
        leaks += [f"[{h}] {line[:160]!r}" for line in ps.lines[h]
                  if old in line or new in line]
    assert any("curl" in line and "-K -" in line for line in ps.lines["node1"]), \
        "the sampler saw no curl"
    assert not leaks, "\n".join(leaks)
    log = newest_run_log(lab)
    for v in (old, new):
        assert v not in text and v not in log


def test_second_deploy_after_rotation_changes_nothing(alab):
    lab = alab
    pids = node_pids(lab)
    r, _ = noop_deploy(lab.rot_toml, lab.run_dir / "stats-admin.json")
    assert "admin_password_old is set but not needed" in r.stdout, r.stdout
    # and without admin_password_old
    r, _ = noop_deploy(lab.hosts_toml, lab.run_dir / "stats-admin.json")
    assert node_pids(lab) == pids
    for n in lab.node_names:
        assert login(lab, n, lab.new_pw)


def test_a_restart_keeps_the_rotated_password(alab):
    """The user-mgt.xml seed is applied at first start only: a restarted node keeps the
    password of the store, even one rotated away from what user-mgt.xml says."""
    lab = alab
    lab.exec("node2", f"sed -i 's#<Password>{lab.new_pw}</Password>#<Password>seed-only"
                      f"</Password>#' {PROFILE}/conf/user-mgt.xml", check=True)
    r = fab(lab.hosts_toml, "restart", "--only", "node2")
    assert r.returncode == 0, out(r)
    assert login(lab, "node2", lab.new_pw) and not login(lab, "node2", "seed-only")
    assert "exists in the user store" in lab.exec(
        "node2", ["cat", f"{PROFILE}/repository/logs/wso2carbon.log"]).stdout
