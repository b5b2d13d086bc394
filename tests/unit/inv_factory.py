"""A valid Inventory for unit tests, from a dict (no host, no hosts.toml on disk)."""
from __future__ import annotations

import sys
import zipfile
from pathlib import Path

from tests.paths import REPO

from tasks.engine import inventory  # noqa: E402


def make_inv(tmp: Path, nodes: int = 2, *, cluster: dict | None = None,
             database: dict | None = None, secrets: dict | None = None,
             driver_class: str | None = None) -> inventory.Inventory:
    """Two nodes on 192.0.2.0/24 by default; secrets are 0600 files 's3cret-<name>'.

    driver_class: write a real jar naming that JDBC driver class (else a dummy file).
    """
    raw = make_raw(tmp, nodes, cluster=cluster, database=database, secrets=secrets,
                   driver_class=driver_class)
    return inventory.from_dict(raw, tmp / "hosts.toml")


def make_raw(tmp: Path, nodes: int = 2, *, cluster: dict | None = None,
             database: dict | None = None, secrets: dict | None = None,
             driver_class: str | None = None) -> dict:
    """make_inv's hosts.toml as a dict (files written in `tmp`), for tests that edit it."""
    for name in ("db_password", "admin_password", "db_admin_password", "keystore_password"):
        p = tmp / name
        p.write_text("s3cret-" + name + "\n")
        p.chmod(0o600)
    (tmp / "known_hosts").write_text("")
    jar = tmp / "mariadb-java-client.jar"
    if driver_class:
        with zipfile.ZipFile(jar, "w") as z:
            z.writestr("META-INF/services/java.sql.Driver", driver_class + "\n")
    else:
        jar.write_bytes(b"PK")
    raw = {
        "ssh": {"user": "deploy", "known_hosts": "known_hosts"},
        "lb": {"address": "192.0.2.2"},
        "nodes": [{"name": f"node{i}", "address": f"192.0.2.{10 + i}"}
                  for i in range(1, nodes + 1)],
        "db": {"address": "192.0.2.3", "hostname": "carbondb.example.com"},
        "cluster": {"service_name": "ei.example.com", "console_name": "ui.ei.example.com",
                    "ei_home": "/opt/wso2ei-6.6.0", "jdbc_driver": jar.name,
                    "console_allow": ["192.0.2.0/24"], **(cluster or {})},
        "database": database or {},
        "secrets": {"db_password": {"file": "db_password"},
                    "admin_password": {"file": "admin_password"},
                    "keystore_password": {"file": "keystore_password"}, **(secrets or {})},
    }
    return raw
