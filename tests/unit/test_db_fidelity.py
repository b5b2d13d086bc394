"""The real product, not a forgiving stand-in: grants per node, max_connections from the pools,
the drop-in's bind address that must win, restart consent, JDBC URLs per driver (no host)."""
from __future__ import annotations

import subprocess
import zipfile
from pathlib import Path

import pytest

from tasks.steps import db, node_config

from tasks.wso2 import ei_xml, jdbc

from tasks.engine import inventory
from tests.paths import WSO2_FILES
from tests.unit.inv_factory import make_inv
from tests.unit.test_db_plan import all_grants, done_facts, fresh_facts, settings_of

CONF = WSO2_FILES / "wso2/business-process/conf"
DROPIN = "/etc/mysql/mariadb.conf.d/zz-bps-deploy.cnf"


@pytest.fixture
def inv(tmp_path):
    return make_inv(tmp_path, database={"allow_server_restart": True})


# --------------------------------------------------------------------------- 7. grants


def test_wider_grant_is_revoked_and_the_plan_says_so(inv):
    grants = all_grants(inv)
    grants["192.0.2.11"]["REGISTRY_LOCAL2"] = set(db.REQUIRED_PRIVS)  # as the old tool did
    grants["192.0.2.12"]["REGISTRY_LOCAL1"] = {"SELECT"}
    p = db.plan_db(done_facts(inv, grants=grants), inv)
    assert p.admin_sql == [
        "REVOKE ALL PRIVILEGES ON `REGISTRY_LOCAL2`.* FROM 'wso2bps'@'192.0.2.11';",
        "REVOKE ALL PRIVILEGES ON `REGISTRY_LOCAL1`.* FROM 'wso2bps'@'192.0.2.12';"]
    assert p.changes == [
        "revoke all on REGISTRY_LOCAL2 from 'wso2bps'@'192.0.2.11' (node1 needs only its own "
        "REGISTRY_LOCAL1)",
        "revoke all on REGISTRY_LOCAL1 from 'wso2bps'@'192.0.2.12' (node2 needs only its own "
        "REGISTRY_LOCAL2)"]
    # once revoked: nothing to do (idempotent)
    assert db.plan_db(done_facts(inv), inv).empty


def test_revokes_come_after_every_grant(tmp_path):
    inv3 = make_inv(tmp_path, nodes=3, database={"allow_server_restart": True})
    grants = {"192.0.2.11": {d: set(db.REQUIRED_PRIVS) for d in db.db_kinds(inv3)}}
    p = db.plan_db(done_facts(inv3, grants=grants), inv3)
    kinds = [s.split()[0] for s in p.admin_sql]
    assert kinds.count("REVOKE") == 2 and kinds.index("REVOKE") > max(
        i for i, k in enumerate(kinds) if k == "GRANT")
    assert "REVOKE ALL PRIVILEGES ON `REGISTRY_LOCAL3`.* FROM 'wso2bps'@'192.0.2.11';" \
        in p.admin_sql
    assert db.node_databases(inv3, 3) == ["WSO2_USER_DB", "REGISTRY_DB", "REGISTRY_LOCAL3",
                                          "BPS_DS", "ACTIVITI_DB"]


# --------------------------------------------------------------------------- 8. max_connections


def shipped_ds() -> dict[str, bytes]:
    return {rel: (CONF / rel).read_bytes() for rel in db.DS_FILES}


def test_pool_sizes_of_the_shipped_files_are_300():
    sizes = db.pool_sizes(shipped_ds())
    assert sizes == {"WSO2_CARBON_DB": 50, "WSO2_USER_DB": 50, "WSO2REGISTRY_DB": 50,
                     "BPS_DS": 100, "ACTIVITI_DB": 50}
    assert sum(sizes.values()) == db.SHIPPED_POOL_TOTAL == 300
    # no files yet (EI not installed): the same, from WSO2's shipped values
    assert db.pool_sizes({}) == sizes


def test_pool_sizes_follow_the_files_configure_writes(tmp_path):
    """What configure writes: its own datasources with NEW_DS_POOL, the others' maxActive kept."""
    inv = make_inv(tmp_path, driver_class="org.mariadb.jdbc.Driver")
    files = {rel: (CONF / rel).read_bytes() for rel in ei_xml.CONF_FILES}
    files["datasources/bps-datasources.xml"] = files["datasources/bps-datasources.xml"].replace(
        b"<maxActive>100</maxActive>", b"<maxActive>250</maxActive>")
    files["datasources/activiti-datasources.xml"] = files[
        "datasources/activiti-datasources.xml"].replace(b"<maxActive>50</maxActive>",
                                                        b"<maxActive></maxActive>")
    out = ei_xml.render_node_config(files, node_config.node_params(inv, inv.nodes[0]))
    sizes = db.pool_sizes({rel: out[rel] for rel in db.DS_FILES})
    assert sizes == {"WSO2_CARBON_DB": 50, "WSO2_USER_DB": 50, "WSO2REGISTRY_DB": 50,
                     "BPS_DS": 250, "ACTIVITI_DB": db.TOMCAT_MAX_ACTIVE}
    # a file that is not XML counts with the defaults
    assert db.pool_sizes({"datasources/bps-datasources.xml": b"<oops"})["BPS_DS"] == 100


@pytest.mark.parametrize("pools,need,want", [
    ([300, 300], 600, 720),          # 2 nodes: +20%
    ([300, 300, 300], 900, 1080),    # 3 nodes
    ([100, 100], 200, 250),          # small pools: at least +50
    ([300] * 16, 4800, 5760),
])
def test_connections_formula(pools, need, want):
    assert db.connections_wanted(pools) == (need, want)


def test_max_connections_follows_node_count_and_pools(tmp_path):
    inv3 = make_inv(tmp_path, nodes=3, database={"allow_server_restart": True})
    f = fresh_facts(bind_running="0.0.0.0", bind_configured="0.0.0.0")
    p = db.plan_db(f, inv3)
    assert "SET GLOBAL max_connections = 1080;" in p.admin_sql
    assert p.dropin.content == db.render_dropin(None, 1080)
    # pools read from the nodes
    f = fresh_facts(bind_running="0.0.0.0", bind_configured="0.0.0.0",
                    node_pools={"node1": 400, "node2": 400, "node3": 300})
    assert "SET GLOBAL max_connections = 1320;" in db.plan_db(f, inv3).admin_sql


def test_max_connections_floor_and_never_lower(tmp_path):
    inv = make_inv(tmp_path, database={"max_connections": 2000})
    f = fresh_facts(bind_running="0.0.0.0", bind_configured="0.0.0.0")
    p = db.plan_db(f, inv)
    assert p.admin_sql[0] == "SET GLOBAL max_connections = 2000;"
    assert p.dropin.content == db.render_dropin(None, 2000)
    inv = make_inv(tmp_path)
    # configured and running higher than wanted elsewhere: left alone
    f = done_facts(inv, dropin=None, dropin_state=None, bind_running="0.0.0.0",
                   bind_configured="0.0.0.0", max_conn_configured=1500, max_conn_running=1500)
    assert db.plan_db(f, inv).empty
    # our drop-in says 1000 (the old fixed value): kept, never lowered to 720
    assert db.plan_db(done_facts(inv), inv).empty
    # running raised live to 3000, nothing configured: the drop-in keeps 3000, no SET GLOBAL
    f = done_facts(inv, dropin=None, dropin_state=None, bind_running="0.0.0.0",
                   bind_configured="0.0.0.0", max_conn_configured=None, max_conn_running=3000)
    p = db.plan_db(f, inv)
    assert p.dropin.content == db.render_dropin(None, 3000) and p.admin_sql == []


def test_max_connections_key_is_optional(tmp_path):
    assert make_inv(tmp_path).database.max_connections is None
    with pytest.raises(inventory.InventoryError, match="database.max_connections"):
        make_inv(tmp_path, database={"max_connections": 5})


# --------------------------------------------------------------------------- 9. bind / drop-in


def test_dropin_sorts_after_the_distributions_files():
    for theirs in ("50-server.cnf", "60-galera.cnf", "99-lab.cnf", "mysqld.cnf",
                   "Z-upper.cnf", "zz-aaa.cnf"):
        assert not db.later_in_dir(f"/etc/mysql/x/{theirs}", f"/etc/mysql/x/{db.DROPIN_NAME}")
    assert db.later_in_dir("/etc/mysql/x/zzzz-local.cnf", f"/etc/mysql/x/{db.DROPIN_NAME}")
    assert not db.later_in_dir("/etc/mysql/y/zzzz-local.cnf", f"/etc/mysql/x/{db.DROPIN_NAME}")


def test_a_later_file_setting_bind_back_stops_before_any_change(inv):
    f = fresh_facts(bind_files=[
        ("/etc/mysql/mariadb.conf.d/50-server.cnf", "127.0.0.1"),
        ("/etc/mysql/mariadb.conf.d/zzzz-local.cnf", "127.0.0.1")])
    p = db.plan_db(f, inv)
    assert p.errors == [
        "/etc/mysql/mariadb.conf.d/zzzz-local.cnf sets bind-address = 127.0.0.1 and is read "
        f"after {DROPIN}, so the server would still not listen on 192.0.2.3; it is not ours: "
        "change or remove that line there, then re-run"]
    assert not p.restart
    # a later file that opens all interfaces is fine
    f.bind_files[-1] = ("/etc/mysql/mariadb.conf.d/zzzz-local.cnf", "0.0.0.0")
    assert not db.plan_db(f, inv).errors


def test_our_dropin_written_but_another_file_wins_no_restart_loop(inv):
    """The loop: ours says the address, the server reads 127.0.0.1 after it, restart, again."""
    f = done_facts(inv, bind_running="127.0.0.1", bind_configured="127.0.0.1", bind_files=[
        ("/etc/mysql/conf.d/zz-other.cnf", "127.0.0.1"),
        (DROPIN, "127.0.0.1,192.0.2.3")])
    p = db.plan_db(f, inv)
    assert not p.restart and len(p.errors) == 1
    assert p.errors[0].startswith(
        f"{DROPIN} sets bind-address = 127.0.0.1,192.0.2.3, but the server reads bind-address = "
        "127.0.0.1 after it, from /etc/mysql/conf.d/zz-other.cnf: not restarted")


def test_restart_needs_consent_and_says_what_it_would_do(tmp_path):
    inv = make_inv(tmp_path)
    assert inv.database.allow_server_restart is False
    p = db.plan_db(fresh_facts(), inv)
    assert not p.restart and len(p.errors) == 1
    msg = p.errors[0]
    assert msg.startswith("mariadb must be restarted to listen on 192.0.2.3 (it listens on "
                          "127.0.0.1 only), and [database] allow_server_restart is not true")
    assert f"would write {DROPIN}:\n" in msg
    assert "    [mysqld]\n    bind-address = 127.0.0.1,192.0.2.3\n    max_connections = 720\n" \
        in msg
    assert "then restart mariadb (service mariadb restart)" in msg
    # only max_connections to raise: no restart, no consent needed
    f = fresh_facts(bind_running="0.0.0.0", bind_configured="0.0.0.0")
    assert not db.plan_db(f, inv).errors


def test_legacy_dropin_is_replaced_and_its_values_kept(inv):
    legacy = db.render_dropin("127.0.0.1,192.0.2.3", 1000).replace(
        b"Named to be read last", b"each holds about 300 pooled connections")
    f = done_facts(inv, dropin=None, dropin_state=None, legacy_dropin=legacy,
                   bind_files=[("/etc/mysql/mariadb.conf.d/50-server.cnf", "127.0.0.1"),
                               ("/etc/mysql/mariadb.conf.d/60-bps-cluster.cnf",
                                "127.0.0.1,192.0.2.3")])
    p = db.plan_db(f, inv)
    assert p.dropin.content == db.render_dropin("127.0.0.1,192.0.2.3", 1000)
    assert p.remove_legacy == "/etc/mysql/mariadb.conf.d/60-bps-cluster.cnf"
    assert not p.restart and not p.errors
    s = settings_of(p)
    assert "LEGACY=/etc/mysql/mariadb.conf.d/60-bps-cluster.cnf\n" in s and "\nremove_legacy\n" in s
    assert 'rm -f "$LEGACY"' in s
    # someone else's file by that name is not ours: left alone
    f.legacy_dropin = b"[mysqld]\nmax_connections = 10\n"
    assert db.plan_db(f, inv).remove_legacy is None


def test_parse_option_files():
    assert db.parse_cnf_file("[client]\nbind-address=1.1.1.1\n[mysqld]\n# x\n"
                             "bind-address = '10.0.0.1' # c\nmax_connections=9\n") == \
        {"bind_address": "10.0.0.1", "max_connections": "9"}
    out = ("/etc/mysql/mariadb.conf.d/50-server.cnf\tmysqld\t127.0.0.1\n"
           "/etc/mysql/my.cnf\tclient\t10.0.0.9\n"
           "/etc/mysql/conf.d/x.cnf\tmysqld-8.0\t\"0.0.0.0\"\n")
    assert db.parse_bind_lines(out) == [
        ("/etc/mysql/mariadb.conf.d/50-server.cnf", "127.0.0.1"),
        ("/etc/mysql/conf.d/x.cnf", "0.0.0.0")]


def _run_bind_check(tmp_path, prints: str) -> subprocess.CompletedProcess:
    fake = tmp_path / "bin"
    fake.mkdir(exist_ok=True)
    (fake / "my_print_defaults").write_text(f"#!/bin/sh\necho '{prints}'\n")
    (fake / "my_print_defaults").chmod(0o755)
    script = db.bind_check("127.0.0.1,10.0.0.3", DROPIN)
    return subprocess.run(["sh", "-c", script], capture_output=True, text=True,
                          env={"PATH": f"{fake}:/usr/bin:/bin"})


def test_bind_check_after_writing(tmp_path):
    ok = _run_bind_check(tmp_path, "--socket=/x --bind-address=127.0.0.1,10.0.0.3 --port=3306")
    assert ok.returncode == 0 and ok.stdout == ""
    bad = _run_bind_check(tmp_path, "--bind-address=127.0.0.1,10.0.0.3 --bind-address=127.0.0.1")
    assert bad.returncode == 1
    assert bad.stdout.startswith(f"{db.BIND_OTHER}: the server would still read bind-address = "
                                 "127.0.0.1, from: ")


def test_node_read_carries_etc_hosts(tmp_path):
    """One read per node: the pools and /etc/hosts (also with etc_hosts off: an old block of
    ours is then removed)."""
    inv = make_inv(tmp_path)
    probes = db.node_probes(inv)
    assert set(probes) == {*db.DS_FILES, "/etc/hosts"}
    assert "/opt/wso2ei-6.6.0/wso2/business-process/conf/datasources/bps-datasources.xml" in \
        probes["datasources/bps-datasources.xml"]
    assert "/etc/hosts" in db.node_probes(make_inv(tmp_path, cluster={"etc_hosts": False}))


# --------------------------------------------------------------------------- 10. JDBC URL

SERVICES = "META-INF/services/java.sql.Driver"


def jar(tmp_path: Path, name: str, manifest: dict[str, str], cls: str) -> Path:
    p = tmp_path / name
    lines = ["Manifest-Version: 1.0", *(f"{k}: {v}" for k, v in manifest.items())]
    with zipfile.ZipFile(p, "w") as z:
        z.writestr("META-INF/MANIFEST.MF", "\r\n".join(lines) + "\r\n\r\n")
        z.writestr(SERVICES, f"# the driver\n{cls}\n")
    return p


DRIVERS = {
    # as the real jars' manifests say (2.7.6 from Debian 12's libmariadb-java)
    "mariadb-2.7.6": ({"Bundle-Name": "mariadb-java-client", "Bundle-Version": "2.7.6"},
                      "org.mariadb.jdbc.Driver",
                      "jdbc:mysql://db.example.com:3306/BPS_DS?useSSL=false&autoReconnect=true"),
    "mariadb-3.3.3": ({"Implementation-Title": "mariadb-java-client",
                       "Implementation-Version": "3.3.3", "Bundle-Version": "3.3.3"},
                      "org.mariadb.jdbc.Driver",
                      "jdbc:mariadb://db.example.com:3306/BPS_DS?sslMode=disable"),
    "mysql-5.1.49": ({"Implementation-Title": "MySQL Connector Java",
                      "Implementation-Version": "5.1.49", "Bundle-Name": "Oracle Corporation's "
                      "JDBC Driver for MySQL", "Bundle-Version": "5.1.49"},
                     "com.mysql.jdbc.Driver",
                     "jdbc:mysql://db.example.com:3306/BPS_DS?useSSL=false&autoReconnect=true"),
    "mysql-8.0.33": ({"Implementation-Title": "MySQL Connector/J",
                      "Implementation-Version": "8.0.33", "Bundle-Version": "8.0.33"},
                     "com.mysql.cj.jdbc.Driver",
                     "jdbc:mysql://db.example.com:3306/BPS_DS?sslMode=DISABLED&autoReconnect=true"),
}


@pytest.mark.parametrize("which", list(DRIVERS))
def test_url_scheme_and_default_options_per_driver(tmp_path, which):
    manifest, cls, url = DRIVERS[which]
    j = jar(tmp_path, f"{which}.jar", manifest, cls)
    info = jdbc.driver_info(j)
    assert info.driver_class == cls and info.version_text == which.split("-")[1]
    assert jdbc.jdbc_url(info, "db.example.com", 3306, "BPS_DS") == url


def test_the_real_debian_jar_keeps_todays_url():
    real = Path("/usr/share/java/mariadb-java-client.jar")
    if not real.exists():
        pytest.skip("no Debian mariadb-java-client jar on this machine")
    info = jdbc.driver_info(real.resolve())
    assert (info.title, info.version) == ("mariadb-java-client", (2, 7, 6))
    assert jdbc.jdbc_url(info, "h", 3306, "D") == \
        "jdbc:mysql://h:3306/D?useSSL=false&autoReconnect=true"


def test_manifest_continuation_lines():
    text = ("Manifest-Version: 1.0\r\nBundle-Name: mariadb-java-cl\r\n ient\r\n\r\n"
            "Name: x\r\nA: b\r\n")
    assert jdbc.parse_manifest(text) == {"Manifest-Version": "1.0",
                                         "Bundle-Name": "mariadb-java-client"}


def test_jdbc_options_replace_the_extras_never_the_owned(tmp_path):
    manifest, cls, _ = DRIVERS["mysql-8.0.33"]
    j = jar(tmp_path, "mysql-connector-j-8.0.33.jar", manifest, cls)
    inv = make_inv(tmp_path, cluster={"jdbc_driver": str(j)}, database={
        "jdbc_options": {"connectTimeout": 5000, "autoReconnect": False,
                         "serverTimezone": "UTC"}})
    assert node_config.jdbc_url(inv, "BPS_DS") == (
        "jdbc:mysql://carbondb.example.com:3306/BPS_DS?sslMode=VERIFY_IDENTITY&connectTimeout=5000"
        "&autoReconnect=false&serverTimezone=UTC")
    inv = make_inv(tmp_path, cluster={"jdbc_driver": str(j)}, database={"jdbc_options": {}})
    assert node_config.jdbc_url(inv, "BPS_DS").endswith("/BPS_DS?sslMode=VERIFY_IDENTITY")
    inv = make_inv(tmp_path, cluster={"jdbc_driver": str(j)},
                   database={"jdbc_options": {}, "tls": False})
    assert node_config.jdbc_url(inv, "BPS_DS").endswith("/BPS_DS?sslMode=DISABLED")
    assert any("database.tls = false" in w for w in inv.warnings)


TLS_URLS = {  # TLS on, the server verified against the cluster CA, in each driver's words
    "mariadb-2.7.6": "jdbc:mysql://db.example.com:3306/BPS_DS?useSSL=true&serverSslCert=/s/ca.pem"
                     "&autoReconnect=true",
    "mariadb-3.3.3": "jdbc:mariadb://db.example.com:3306/BPS_DS?sslMode=verify-full"
                     "&serverSslCert=/s/ca.pem",
    "mysql-5.1.49": "jdbc:mysql://db.example.com:3306/BPS_DS?useSSL=true&requireSSL=true"
                    "&verifyServerCertificate=true&autoReconnect=true",
    "mysql-8.0.33": "jdbc:mysql://db.example.com:3306/BPS_DS?sslMode=VERIFY_IDENTITY"
                    "&autoReconnect=true",
}


@pytest.mark.parametrize("which", list(TLS_URLS))
def test_tls_options_follow_the_driver(tmp_path, which):
    manifest, cls, _ = DRIVERS[which]
    info = jdbc.driver_info(jar(tmp_path, f"{which}.jar", manifest, cls))
    assert jdbc.jdbc_url(info, "db.example.com", 3306, "BPS_DS", None, "/s/ca.pem") == \
        TLS_URLS[which]


@pytest.mark.parametrize("options,expect", [
    ({"useSSL": "true"}, "useSSL is set by the tool itself"),
    ({"SSLMODE": "verify-full"}, "SSLMODE is set by the tool itself"),
    ({"enabledTLSProtocols": "TLSv1.2"}, "enabledTLSProtocols is set by the tool itself"),
    ({"trustStore": "file:/x"}, "trustStore is set by the tool itself"),
    ({"a&b": "1"}, "'a&b' is not an option name"),
    ({"x": "1&useSSL=true"}, "x: value '1&useSSL=true' is not allowed"),
    ({"x": "a b"}, "value 'a b' is not allowed"),
    ({"x": "</url>"}, "value '</url>' is not allowed"),
    ({"x": ""}, "value '' is not allowed"),
    ({"x": ["a"]}, "value ['a'] is not allowed"),
])
def test_jdbc_options_refused_at_load(tmp_path, options, expect):
    with pytest.raises(inventory.InventoryError) as e:
        make_inv(tmp_path, database={"jdbc_options": options})
    assert e.value.exit_code == 2
    assert any(p.startswith("database.jdbc_options: ") and expect in p for p in e.value.problems)


def test_jdbc_options_must_be_a_table(tmp_path):
    with pytest.raises(inventory.InventoryError, match="database.jdbc_options: expected dict"):
        make_inv(tmp_path, database={"jdbc_options": "autoReconnect=true"})


def test_server_capping_max_connections_at_start_is_explained(inv):
    f = done_facts(inv, max_conn_running=594)  # configured 1000 in our drop-in
    p = db.plan_db(f, inv)
    assert p.admin_sql == ["SET GLOBAL max_connections = 720;"]
    assert any("runs with max_connections = 594 although its configuration says 1000" in n
               and "open-files limit" in n for n in p.warnings)
