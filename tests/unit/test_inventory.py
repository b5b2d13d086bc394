"""hosts.toml validation: every bad input gets one clear error naming the key and the fix."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.paths import FAB, REPO

from tasks.engine import inventory  # noqa: E402
from tasks.engine.inventory import InventoryError  # noqa: E402


def good_toml(tmp: Path) -> str:
    for name in ("db_password", "admin_password", "keystore_password"):
        p = tmp / name
        p.write_text("s3cret-" + name + "\n")
        p.chmod(0o600)
    (tmp / "known_hosts").write_text("")
    (tmp / "driver.jar").write_bytes(b"PK")
    return f"""
[ssh]
user = "deploy"
known_hosts = "known_hosts"

[lb]
address = "192.0.2.2"

[[nodes]]
name = "node1"
address = "192.0.2.11"

[[nodes]]
name = "node2"
address = "192.0.2.12"

[db]
address = "192.0.2.3"
hostname = "carbondb.example.com"

[cluster]
service_name = "ei.example.com"
console_name = "ui.ei.example.com"
ei_home = "/opt/wso2ei-6.6.0"
jdbc_driver = "driver.jar"
console_allow = ["192.0.2.0/24"]

[secrets]
db_password = {{ file = "db_password" }}
admin_password = {{ file = "admin_password" }}
keystore_password = {{ file = "keystore_password" }}
"""


def load_text(tmp: Path, text: str):
    p = tmp / "hosts.toml"
    p.write_text(text)
    return inventory.load(p)


def problems(tmp: Path, text: str) -> str:
    with pytest.raises(InventoryError) as e:
        load_text(tmp, text)
    return str(e.value)


def test_good_file_loads(tmp_path):
    inv = load_text(tmp_path, good_toml(tmp_path))
    assert [h.name for h in inv.hosts] == ["lb", "node1", "node2", "db"]
    assert [n.index for n in inv.nodes] == [1, 2]
    assert inv.cluster.http_port == 9765 and inv.cluster.https_port == 9445
    assert inv.database.all_databases(2) == ["WSO2_USER_DB", "REGISTRY_DB", "REGISTRY_LOCAL1",
                                             "REGISTRY_LOCAL2", "BPS_DS", "ACTIVITI_DB"]
    assert inv.secrets.db_password == "s3cret-db_password"
    assert "s3cret" not in repr(inv) and "s3cret" not in repr(inv.secrets)
    # truststore password defaults to WSO2's, with a warning
    assert inv.secrets.truststore_password == "wso2carbon"
    assert any("truststore_password" in w for w in inv.warnings)


def test_shipped_hosts_toml_parses_as_toml():
    import tomllib
    raw = tomllib.loads((REPO / "hosts.toml").read_text())
    assert len(raw["nodes"]) == 2


@pytest.mark.parametrize("old,new,expect", [
    ('user = "deploy"', 'usr = "deploy"', "ssh.usr: unknown key (did you mean 'user'?)"),
    ('[cluster]', '[clustr]', "clustr: unknown section (did you mean 'cluster'?)"),
    ('service_name = "ei.example.com"\n', '', "cluster.service_name: missing required key"),
    ('address = "192.0.2.11"', 'address = "no_such host!"',
     "nodes[0].address: 'no_such host!' is not an IPv4 address"),
    ('address = "192.0.2.11"', 'address = "127.0.0.1"', "loopback"),
    ('address = "192.0.2.11"', 'address = "localhost"', "cannot be a cluster address"),
    ('address = "192.0.2.12"', 'address = "192.0.2.11"',
     "address 192.0.2.11 is given to both node1 and node2"),
    ('address = "192.0.2.2"', 'address = "192.0.2.11"', "given to both lb and node1"),
    ('hostname = "carbondb.example.com"', 'hostname = "carbondb.example.com"\nport = 70000',
     "db.port: port 70000 is out of range"),
    ('user = "deploy"', 'user = "deploy"\nport = 0', "ssh.port: port 0 is out of range"),
    ('jdbc_driver = "driver.jar"', 'jdbc_driver = "driver.jar"\nport_offset = -1',
     "cluster.port_offset: -1 is out of range"),
    ('console_allow = ["192.0.2.0/24"]', 'console_allow = ["nonsense"]',
     "console_allow[0]: 'nonsense' is not a network"),
    ('db_password = { file = "db_password" }', 'db_password = { file = "nope" }',
     "secrets.db_password.file: file"),
    ('db_password = { file = "db_password" }', 'db_password = { env = "NO_SUCH_VAR_BPS" }',
     "environment variable NO_SUCH_VAR_BPS is not set"),
    ('jdbc_driver = "driver.jar"', 'jdbc_driver = "driver.jar"\n[database]\nbps_db = "REGISTRY_DB"',
     "REGISTRY_DB used for two databases"),
    ('jdbc_driver = "driver.jar"',
     'jdbc_driver = "driver.jar"\n[database]\nlocal_registry_prefix = "BPS_DS"\nbps_db = "BPS_DS1"',
     "BPS_DS1 used for two databases"),
    ('port_offset', 'x', None),  # placeholder row (no-op) keeps ids stable
])
def test_bad_input_is_named(tmp_path, old, new, expect):
    text = good_toml(tmp_path)
    if expect is None:
        return
    assert old in text, old
    msg = problems(tmp_path, text.replace(old, new, 1))
    assert expect in msg, msg


def test_fewer_than_two_nodes(tmp_path):
    text = good_toml(tmp_path)
    one = text.split("[[nodes]]")
    text = one[0] + "[[nodes]]" + one[1] + "[db]" + one[2].split("[db]", 1)[1]
    assert "a cluster needs two or more nodes, found 1" in problems(tmp_path, text)


def test_toml_syntax_error_has_line_and_column(tmp_path):
    msg = problems(tmp_path, good_toml(tmp_path).replace('user = "deploy"', 'user = "deploy'))
    assert "TOML syntax error" in msg and "line 3" in msg and "column" in msg


def test_secret_file_readable_by_others(tmp_path):
    text = good_toml(tmp_path)
    (tmp_path / "db_password").chmod(0o644)
    msg = problems(tmp_path, text)
    assert "readable by others (mode 0644); run: chmod 600" in msg


def test_inline_secret_warns_loudly(tmp_path):
    text = good_toml(tmp_path).replace('db_password = { file = "db_password" }',
                                       'db_password = { value = "inline-pw" }')
    inv = load_text(tmp_path, text)
    assert inv.secrets.db_password == "inline-pw"
    assert any("inline" in w and w.startswith("!!!") for w in inv.warnings)


def test_default_admin_refused_unless_allowed(tmp_path):
    text = good_toml(tmp_path).replace('admin_password = { file = "admin_password" }\n', "")
    assert "default admin/admin" in problems(tmp_path, text)
    inv = load_text(tmp_path, text.replace('jdbc_driver = "driver.jar"',
                                           'jdbc_driver = "driver.jar"\nallow_default_admin = true'))
    assert inv.secrets.admin_password == "admin"


def test_all_problems_reported_together(tmp_path):
    text = good_toml(tmp_path).replace('user = "deploy"', 'usr = "x"').replace(
        '"192.0.2.11"', '"127.0.0.1"')
    with pytest.raises(InventoryError) as e:
        load_text(tmp_path, text)
    assert len(e.value.problems) >= 2


def test_select(tmp_path):
    inv = load_text(tmp_path, good_toml(tmp_path))
    assert [h.name for h in inv.select("nodes")] == ["node1", "node2"]
    assert [h.name for h in inv.select("lb,node2,node2")] == ["lb", "node2"]
    with pytest.raises(InventoryError, match="did you mean 'node1'"):
        inv.select("nod1")


def test_fab_exits_2_on_bad_inventory(tmp_path):
    text = good_toml(tmp_path).replace('user = "deploy"', 'usr = "deploy"')
    (tmp_path / "hosts.toml").write_text(text)
    r = subprocess.run([*FAB, "ping"], cwd=REPO, capture_output=True, text=True,
                       env={**os.environ, "FABRIC_INVENTORY": str(tmp_path / "hosts.toml")})
    assert r.returncode == 2
    assert "did you mean 'user'" in r.stderr + r.stdout


def test_a_misspelled_secret_is_an_error_not_none(tmp_path):
    inv = load_text(tmp_path, good_toml(tmp_path))
    assert inv.secrets.db_password
    with pytest.raises(AttributeError, match="no secret named 'db_pasword'"):
        inv.secrets.db_pasword  # noqa: B018


def test_secrets_is_one_credentials_object(tmp_path):
    from tasks.engine.inventory import Secrets, native_hash
    from tests.unit.inv_factory import make_inv
    inv = make_inv(tmp_path)
    s = inv.secrets
    assert s.db_native_hash == native_hash("s3cret-db_password")
    assert s.db_native_hash is s.db_native_hash  # computed once
    assert s.admin_password_old is None  # a known secret, not set
    with pytest.raises(AttributeError, match="no secret named 'db_pasword'"):
        s.db_pasword  # noqa: B018  (a misspelled name is a bug, never a silent None)
    with pytest.raises(ValueError, match="no secret named db_pasword"):
        Secrets({"db_pasword": "x"})
    assert "s3cret" not in repr(s) and s.db_native_hash in s.masked()
    assert "wso2carbon" not in s.masked()  # WSO2's public default is no secret


def test_settings_classes_are_the_schema():
    from dataclasses import fields
    from tasks.engine.inventory import SCHEMA, ClusterSettings, model
    assert list(SCHEMA["cluster"]) == [f.name for f in fields(ClusterSettings)]
    assert SCHEMA["database"]["user"] == (str, "wso2bps")
    with pytest.raises(KeyError):  # a derived field left out is a bug, found at once
        model.build(model.DatabaseSettings, {k: None for k in SCHEMA["database"]})
    with pytest.raises(TypeError, match="no field"):
        model.build(model.CertSettings, {}, no_such=1)


def test_readme_documents_every_key():
    """The README's schema table is prose, not a third copy: it must name every key."""
    from tasks.engine.inventory import SCHEMA
    documented: dict[str, set[str]] = {}
    for line in (REPO / "README.md").read_text().splitlines():
        if not line.startswith("| `["):
            continue
        for m in re.finditer(r"\[\[?(\w+)\]?\]([^\[]*)", line.split("|")[1]):
            section = {"nodes": "node"}.get(m.group(1), m.group(1))
            documented.setdefault(section, set()).update(re.findall(r"\w+", m.group(2)))
    missing = [f"[{s}] {k}" for s, keys in SCHEMA.items() for k in keys
               if k not in documented.get(s, set())]
    assert not missing, "README.md's hosts.toml table lacks: " + ", ".join(missing)
