"""Hostile or careless hosts.toml values: each is refused at load (exit 2) naming the key, the
bad value (never a secret's) and the fix, before any host is touched."""
from __future__ import annotations

import copy

import pytest

from tasks import inventory
from tasks.inventory import InventoryError
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


# --------------------------------------------------------------------------- item 6: "\n"

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


# --------------------------------------------------------------------------- item 4: one target


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


# --------------------------------------------------------------------------- item 18: IPv4


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
