"""Hostile or careless hosts.toml values: each is refused at load (exit 2) naming the key, the
bad value (never a secret's) and the fix, before any host is touched."""
from __future__ import annotations

import copy

import pytest

from tasks.engine import inventory
from tasks.engine.inventory import InventoryError
from tests.unit.inv_factory import make_raw


def load_raw(tmp_path, raw: dict) -> inventory.Inventory:
    return inventory.from_dict(raw, tmp_path / "hosts.toml")


def refused(tmp_path, raw: dict) -> str:
    with pytest.raises(InventoryError) as e:
        load_raw(tmp_path, raw)
    return str(e.value)


def setting(raw: dict, key: str, value) -> dict:
    """Set 'section.key' or 'nodes[i].key' in a copy of raw."""
    out = copy.deepcopy(raw)
    table, _, name = key.rpartition(".")
    if table.startswith("nodes["):
        out["nodes"][int(table[6:-1])][name] = value
    else:
        out.setdefault(table, {})[name] = value
    return out


# --------------------------------------------------------------------------- names ending in "\n"

NAME_LIKE = [
    ("ssh.user", "deploy"),
    ("lb.name", "lb"),
    ("nodes[0].name", "node1"),
    ("db.name", "db"),
    ("lb.address", "192.0.2.2"),
    ("nodes[1].address", "192.0.2.12"),
    ("db.address", "192.0.2.3"),
    ("lb.ssh_address", "lb.example.com"),
    ("nodes[0].ssh_address", "192.0.2.111"),
    ("db.hostname", "carbondb.example.com"),
    ("cluster.service_name", "ei.example.com"),
    ("cluster.console_name", "ui.ei.example.com"),
    ("cluster.domain", "wso2.bps.domain"),
    ("cluster.service_user", "wso2"),
    ("cluster.service_user", "root"),
    ("cluster.admin_user", "admin"),
    ("cluster.ei_version", "6.6.0"),
    ("cluster.jdbc_driver_class", "org.mariadb.jdbc.Driver"),
    ("database.user", "wso2bps"),
    ("database.user_db", "WSO2_USER_DB"),
    ("database.registry_db", "REGISTRY_DB"),
    ("database.local_registry_prefix", "REGISTRY_LOCAL"),
    ("database.bps_db", "BPS_DS"),
    ("database.activiti_db", "ACTIVITI_DB"),
    ("database.admin_user", "dbadmin"),
]


@pytest.mark.parametrize("key,good", NAME_LIKE, ids=[f"{k}={v}" for k, v in NAME_LIKE])
def test_trailing_newline_is_refused_for_every_name(tmp_path, key, good):
    raw = make_raw(tmp_path, secrets={"db_admin_password": {"file": "db_admin_password"}})
    if key != "cluster.service_user" or good != "root":
        load_raw(tmp_path, setting(raw, key, good))  # the value itself is fine
    msg = refused(tmp_path, setting(raw, key, good + "\n"))
    assert f"{key}: {good + chr(10)!r}" in msg, msg


# --------------------------------------------------------------------------- SSH targets


@pytest.mark.parametrize("changes,both", [
    # explicit ssh_address on two hosts
    ({"nodes[0].ssh_address": "jump1.example.com", "nodes[1].ssh_address": "JUMP1.example.com."},
     ("node1", "node2")),
    # explicit ssh_address equal to another host's (defaulted) address
    ({"db.ssh_address": "192.0.2.11"}, ("node1", "db")),
    ({"lb.ssh_address": "192.0.2.3"}, ("lb", "db")),
])
def test_two_hosts_one_ssh_address_refused(tmp_path, changes, both):
    raw = make_raw(tmp_path)
    for k, v in changes.items():
        raw = setting(raw, k, v)
    msg = refused(tmp_path, raw)
    assert f"is where we SSH to for both {both[0]} and {both[1]}" in msg, msg
    assert "give each host its own ssh_address" in msg


def test_same_address_reported_once(tmp_path):
    # ssh_address defaults to address: the address clash is the one problem to report
    raw = setting(make_raw(tmp_path), "nodes[1].address", "192.0.2.11")
    with pytest.raises(InventoryError) as e:
        load_raw(tmp_path, raw)
    assert e.value.problems == ["address 192.0.2.11 is given to both node1 and node2; each host "
                                "needs its own address"]


def test_distinct_ssh_addresses_load(tmp_path):
    raw = setting(make_raw(tmp_path), "nodes[0].ssh_address", "node1.example.com")
    raw = setting(raw, "nodes[1].ssh_address", "2001:db8::12")  # SSH over IPv6 is fine
    inv = load_raw(tmp_path, raw)
    assert [h.ssh_address for h in inv.nodes] == ["node1.example.com", "2001:db8::12"]


# --------------------------------------------------------------------------- IPv4 addresses


@pytest.mark.parametrize("key", ["lb.address", "nodes[0].address", "db.address"])
@pytest.mark.parametrize("value,why", [
    ("2001:db8::11", "cannot be a cluster address: it is IPv6"),
    ("node1.example.com", "cannot be a cluster address: it is a host name"),
    ("not an address", "is not an IPv4 address"),
])
def test_cluster_address_must_be_ipv4(tmp_path, key, value, why):
    msg = refused(tmp_path, setting(make_raw(tmp_path), key, value))
    assert f"{key}: " in msg and why in msg, msg
    if "cannot be" in why:
        assert "NGINX upstreams and the database accounts" in msg and "IPv4" in msg


# --------------------------------------------------------------------------- secrets

SECRETS = ["db_password", "admin_password", "truststore_password", "db_admin_password",
           "sudo_password"]


def with_secret(raw: dict, name: str, ref: dict) -> dict:
    out = copy.deepcopy(raw)
    (out["ssh"] if name == "sudo_password" else out["secrets"])[name] = ref
    return out


def secret_file(tmp_path, content: bytes, name: str = "pw") -> str:
    p = tmp_path / name
    p.write_bytes(content)
    p.chmod(0o600)
    return name


@pytest.mark.parametrize("name", SECRETS)
@pytest.mark.parametrize("char,label", [("\n", "LF"), ("\r", "CR"), ("\x1b", "ESC"),
                                        ("\t", "TAB"), ("\x00", "NUL"), ("\x7f", "DEL"),
                                        ("\x01", "U+0001")])
def test_control_character_in_secret_refused(tmp_path, name, char, label):
    raw = make_raw(tmp_path)
    bad = "pw-" + char + "-SECRETPART"
    for ref in ({"value": bad}, {"file": secret_file(tmp_path, (bad + "\n").encode())}):
        msg = refused(tmp_path, with_secret(raw, name, ref))
        where = "ssh.sudo_password" if name == "sudo_password" else f"secrets.{name}"
        assert f"{where}: contains the control character {label}" in msg, msg
        assert "SECRETPART" not in msg
        assert any(why in msg for why in ("XML 1.0 cannot hold", "line based", "one line"))


def test_control_character_in_env_secret_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("BPS_TEST_PW", "pw\x1b[2JSECRETPART")
    raw = with_secret(make_raw(tmp_path), "db_password", {"env": "BPS_TEST_PW"})
    msg = refused(tmp_path, raw)
    assert "secrets.db_password: contains the control character ESC (environment variable " \
           "BPS_TEST_PW), and it is written into the nodes' datasource XML" in msg, msg
    assert "SECRETPART" not in msg


def test_secret_file_cr_is_not_turned_into_lf(tmp_path):
    raw = make_raw(tmp_path)
    # a lone CR inside: refused, never read as a line break
    ref = {"file": secret_file(tmp_path, b"pw\rSECRETPART\n")}
    msg = refused(tmp_path, with_secret(raw, "db_password", ref))
    assert "contains the control character CR" in msg and "SECRETPART" not in msg
    # a Windows line ending: refused with the fix
    ref = {"file": secret_file(tmp_path, b"SECRETPART\r\n")}
    msg = refused(tmp_path, with_secret(raw, "db_password", ref))
    assert "ends with a CR (a Windows line ending?)" in msg and "dos2unix" in msg
    # two final newlines: only one is the file's
    ref = {"file": secret_file(tmp_path, b"SECRETPART\n\n")}
    assert "contains the control character LF" in refused(tmp_path,
                                                          with_secret(raw, "db_password", ref))


def test_secret_file_one_final_newline_stripped_and_utf8_kept(tmp_path):
    raw = make_raw(tmp_path)
    for content, want in ((b"p\xc3\xa4ss w\xc3\xb6rd\n", "päss wörd"), (b"plain", "plain")):
        ref = {"file": secret_file(tmp_path, content)}
        inv = load_raw(tmp_path, with_secret(raw, "db_password", ref))
        assert inv.secrets.db_password == want


def test_secret_of_wrong_type_is_not_printed(tmp_path):
    raw = make_raw(tmp_path)
    raw["secrets"]["db_password"] = "hunter2-SECRETPART"
    raw["ssh"]["sudo_password"] = "sudo-SECRETPART"
    msg = refused(tmp_path, raw)
    assert "secrets.db_password: expected a table such as { file = \"path\" }, got str" in msg
    assert "ssh.sudo_password: expected a table" in msg
    assert "SECRETPART" not in msg


def test_empty_env_secret_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("BPS_TEST_PW", "")
    raw = with_secret(make_raw(tmp_path), "admin_password", {"env": "BPS_TEST_PW"})
    assert "secrets.admin_password: is empty (environment variable BPS_TEST_PW)" in \
        refused(tmp_path, raw)


# --------------------------------------------------------------------------- no tracebacks


def test_secret_file_that_is_a_directory(tmp_path):
    (tmp_path / "pwdir").mkdir(mode=0o700)
    raw = with_secret(make_raw(tmp_path), "db_password", {"file": "pwdir"})
    msg = refused(tmp_path, raw)
    assert f"secrets.db_password.file: '{tmp_path / 'pwdir'}' is a directory; name the file " \
           "itself" in msg, msg


def test_secret_file_not_utf8(tmp_path):
    ref = {"file": secret_file(tmp_path, b"caf\xe9-SECRETPART\n")}  # latin-1
    msg = refused(tmp_path, with_secret(make_raw(tmp_path), "db_password", ref))
    assert "secrets.db_password.file:" in msg and "is not UTF-8 text (invalid byte at offset 3)" \
        in msg and "SECRETPART" not in msg


def test_inventory_path_is_a_directory(tmp_path):
    with pytest.raises(InventoryError) as e:
        inventory.load(tmp_path)
    assert e.value.problems == [f"is a directory; point FABRIC_INVENTORY (or the `inventory` "
                                f"setting) at the file itself, e.g. {tmp_path / 'hosts.toml'}"]


def test_inventory_path_not_accessible(tmp_path, monkeypatch):
    from pathlib import Path

    def denied(self):
        raise PermissionError(13, "Permission denied")
    monkeypatch.setattr(Path, "exists", denied)
    with pytest.raises(InventoryError) as e:
        inventory.load(tmp_path / "private" / "hosts.toml")
    assert e.value.problems == ["cannot be used as a path ([Errno 13] Permission denied); fix "
                                "FABRIC_INVENTORY (or the `inventory` setting)"]

def test_hosts_toml_not_utf8(tmp_path):
    p = tmp_path / "hosts.toml"
    p.write_bytes(b"[ssh]\nuser = \"deploy\"\n# caf\xe9\n")
    with pytest.raises(InventoryError) as e:
        inventory.load(p)
    assert e.value.problems == ["not UTF-8 text (invalid byte on line 3); TOML must be UTF-8: "
                                "save the file as UTF-8"]


def test_hosts_toml_nested_too_deeply(tmp_path):
    p = tmp_path / "hosts.toml"
    p.write_text("x = " + "[" * 100000 + "]" * 100000 + "\n")
    with pytest.raises(InventoryError, match="nested too deeply"):
        inventory.load(p)


def test_nul_in_a_path_is_a_problem_not_a_traceback(tmp_path):
    raw = with_secret(make_raw(tmp_path), "db_password", {"file": "pw\x00x"})
    assert "secrets.db_password.file:" in refused(tmp_path, raw)


@pytest.mark.parametrize("jump,expect", [
    ("host:abc", "ssh.jump: the port 'abc' in 'host:abc' is not a number from 1 to 65535"),
    ("bastion.example.com:70000", "the port '70000'"),
    ("bastion.example.com:", "the port ''"),
    ("op er@bastion.example.com", "ssh.jump: the user 'op er'"),
    ("deploy@bad_host!", "ssh.jump: the host 'bad_host!'"),
    ("deploy@bastion.example.com\n", "ssh.jump: the host 'bastion.example.com\\n'"),
])
def test_bad_jump_host_refused(tmp_path, jump, expect):
    msg = refused(tmp_path, setting(make_raw(tmp_path), "ssh.jump", jump))
    assert expect in msg and "write [user@]host[:port]" in msg, msg


@pytest.mark.parametrize("jump", ["bastion.example.com", "operator@192.0.2.2",
                                  "deploy@bastion.example.com:2222"])
def test_good_jump_host_loads(tmp_path, jump):
    assert load_raw(tmp_path, setting(make_raw(tmp_path), "ssh.jump", jump)).ssh.jump == jump


@pytest.mark.parametrize("env", [
    {"FABRIC_INVENTORY": "{dir}"},                               # a directory
    {"FABRIC_INVENTORY": "{dir}/hosts.toml", "JUMP": "host:abc"},  # a bad jump port
])
def test_fab_exits_2_without_traceback(tmp_path, env):
    import os
    import subprocess

    from tests.paths import FAB, REPO
    from tests.unit.test_inventory import good_toml
    env = dict(env)
    text = good_toml(tmp_path)
    if "JUMP" in env:
        text = text.replace('user = "deploy"', f'user = "deploy"\njump = "{env.pop("JUMP")}"')
    (tmp_path / "hosts.toml").write_text(text)
    env = {k: v.format(dir=tmp_path) for k, v in env.items()}
    r = subprocess.run([*FAB, "ping"], cwd=REPO, capture_output=True, text=True,
                       env={**os.environ, **env})
    out = r.stdout + r.stderr
    assert r.returncode == 2, out
    assert "Traceback" not in out and out.startswith("error: "), out


# --------------------------------------------------------------------------- remote paths


@pytest.mark.parametrize("key", ["cluster.ei_home", "certs.dir"])
@pytest.mark.parametrize("value,why", [
    ("opt/wso2", "must be an absolute path"),
    ("/opt/../etc", "contains '..'"),
    ("/opt/wso2;reboot", "contains ';', not safe in a path on the hosts"),
    ("/opt/{a,b}", "contains ',', '{', '}'"),
    ("/opt/my wso2", "contains ' '"),
    ("/opt/wso2'x", "contains \"'\""),
    ('/opt/wso2"x', "contains '\"'"),
    ("/opt/$(id)", "contains '$', '(', ')'"),
    ("/opt/wso2\n", "contains '\\n'"),
    ("/opt//wso2", "is not normalized; write '/opt/wso2'"),
    ("/opt/./wso2", "is not normalized; write '/opt/wso2'"),
    ("/", "cannot be the root directory"),
    ("", "must be an absolute path"),
])
def test_remote_path_refused(tmp_path, key, value, why):
    msg = refused(tmp_path, setting(make_raw(tmp_path), key, value))
    assert f"{key}: {value!r}" in msg and why in msg, msg


def test_remote_paths_good(tmp_path):
    raw = setting(make_raw(tmp_path), "cluster.ei_home", "/opt/wso2ei-6.6.0/")
    raw = setting(raw, "certs.dir", "/etc/nginx/ssl@ei+1")
    inv = load_raw(tmp_path, raw)
    assert inv.cluster.ei_home == "/opt/wso2ei-6.6.0" and inv.certs.dir == "/etc/nginx/ssl@ei+1"


def test_jdbc_jar_name_must_be_safe_on_the_nodes(tmp_path):
    raw = make_raw(tmp_path)
    (tmp_path / "my driver;x.jar").write_bytes(b"PK")
    msg = refused(tmp_path, setting(raw, "cluster.jdbc_driver", "my driver;x.jar"))
    assert "cluster.jdbc_driver: the jar's name 'my driver;x.jar' is used on the nodes" in msg


# --------------------------------------------------------------------------- console_allow


@pytest.mark.parametrize("allow,reason", [
    ([], "is empty"),
    (["0.0.0.0/0"], "covers every address (0.0.0.0/0)"),
    (["192.0.2.0/24", "::/0"], "covers every address (::/0)"),
    (["0.0.0.0/1", "128.0.0.0/1"], "covers every address (0.0.0.0/0)"),
])
def test_console_open_to_everyone_warns(tmp_path, allow, reason):
    inv = load_raw(tmp_path, setting(make_raw(tmp_path), "cluster.console_allow", allow))
    assert inv.cluster.console_open == reason
    assert f"!!! cluster.console_allow {reason}: the management console (/carbon) is open to " \
           "everyone who reaches the LB" in inv.warnings


def test_console_restricted_does_not_warn(tmp_path):
    inv = load_raw(tmp_path, setting(make_raw(tmp_path), "cluster.console_allow",
                                     ["192.0.2.0/24", "2001:db8::/32"]))
    assert inv.cluster.console_open is None
    assert not any("console_allow" in w for w in inv.warnings)


# --------------------------------------------------------------------------- option file


def test_db_admin_user_injection_refused_at_load(tmp_path):
    raw = make_raw(tmp_path, database={"admin_user": "root\ninit-command=CREATE DATABASE pwned"},
                   secrets={"db_admin_password": {"file": "db_admin_password"}})
    msg = refused(tmp_path, raw)
    assert "database.admin_user: 'root\\ninit-command=CREATE DATABASE pwned' is not a safe " \
           "MySQL user name" in msg, msg


@pytest.mark.parametrize("value", ["x\n", "a\rb", "a\x00b"])
def test_cnf_value_refuses_line_breaks_and_nul(value):
    from tasks.steps import db
    from tasks.engine import remote
    with pytest.raises(remote.RemoteError) as e:
        db.cnf_value("SECRETPART" + value, "secrets.db_admin_password")
    assert str(e.value) == ("secrets.db_admin_password contains a line break or a NUL; the "
                            "client option file cannot hold it")


HOSTILE_PASSWORDS = ['a"b #c\\d\\ ', "x\\", '"quoted"', "'single'", " lead and trail ",
                     "p#w;init-command=DROP DATABASE x", "päss-wörd", "\\n\\s\\t"]


def print_defaults(tmp_path, cnf: str) -> dict[str, str]:
    """What the real MariaDB client reads from `cnf` (my_print_defaults, client group)."""
    import subprocess
    f = tmp_path / "t.cnf"
    f.write_text(cnf)
    out = subprocess.run(["my_print_defaults", f"--defaults-file={f}", "client"],
                         capture_output=True, check=True).stdout.decode()
    return dict(line[2:].split("=", 1) for line in out.split("\n") if line)


@pytest.mark.parametrize("pw", HOSTILE_PASSWORDS)
def test_option_file_round_trips_through_the_client(tmp_path, pw):
    import base64
    import re

    from tasks.steps import db
    pw_file = tmp_path / "db_admin_password"
    raw = make_raw(tmp_path, database={"admin_user": "db.admin-1"},
                   secrets={"db_admin_password": {"file": "db_admin_password"}})
    pw_file.write_text(pw + "\n")
    inv = load_raw(tmp_path, raw)
    assert inv.secrets.db_admin_password == pw
    sql = db.client_prelude(inv)
    cnf = base64.b64decode(re.search(r"^BPS_CNF_B64='?([^'\n]*)'?$", sql, re.M).group(1)).decode()
    assert cnf.count("\n") == 3  # [client], user, password: nothing else
    assert print_defaults(tmp_path, cnf) == {"user": "db.admin-1", "password": pw}



def test_preflight_identity_check():
    """Case 4: the machine reached must own the host's cluster address (unless nat = true)."""
    from tasks.steps.deploy import identity_problem
    from tasks.engine.inventory import Host
    h = Host("node2", "node", "10.0.0.12", "10.0.0.12")
    assert identity_problem(h, "10.0.0.12\n127.0.0.1\n") is None
    msg = identity_problem(h, "10.0.0.11\n127.0.0.1\n")
    assert "10.0.0.12 is not on any interface" in msg and "10.0.0.11" in msg
    assert "nat = true" in msg
    assert identity_problem(Host("node2", "node", "10.0.0.12", "gw", nat=True), "1.2.3.4") is None


def test_nat_host_warns(tmp_path):
    raw = make_raw(tmp_path)
    raw["nodes"][1]["nat"] = True
    inv = load_raw(tmp_path, raw)
    assert inv.nodes[1].nat and any("nat = true" in w for w in inv.warnings)


def test_backups_keep_bounds(tmp_path):
    raw = make_raw(tmp_path)
    raw["cluster"]["backups_keep"] = 0
    with pytest.raises(InventoryError, match="cluster.backups_keep"):
        load_raw(tmp_path, raw)


@pytest.mark.parametrize("ch", ["\u0085", "\ufeff", "\uffff"])
def test_secret_with_c1_bom_or_nonchar_refused(tmp_path, ch):
    raw = make_raw(tmp_path)
    (tmp_path / "db_password").write_text("pw" + ch + "x\n")
    with pytest.raises(InventoryError, match=f"U\\+{ord(ch):04X}") as e:
        load_raw(tmp_path, raw)
    assert "pw" + ch not in str(e.value)
