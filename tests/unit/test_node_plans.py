"""Pure parts of the node steps: the JDBC driver plan, node state parsing, membership change
detection, the configure plan on WSO2's shipped files, the deploy lock's staleness rule."""
import dataclasses
import hashlib
import os
import sys
import zipfile
from pathlib import Path

import pytest

from tests.paths import REPO

from tasks.steps import deploy, node_config, services  # noqa: E402

from tasks.wso2 import ei_xml, jdbc

from tasks.engine import remote
from tests.unit.inv_factory import make_inv  # noqa: E402

from tests.paths import PROFILE_CONF as CONF


def make_jar(path: Path, services_text: str | None) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        if services_text is not None:
            z.writestr("META-INF/services/java.sql.Driver", services_text)
        z.writestr("x/Driver.class", b"\xca\xfe")
    return path


def test_driver_class_read_from_the_jar_skipping_comments(tmp_path):
    jar = make_jar(tmp_path / "mysql-connector-java-5.1.49.jar",
                   "# licence\n#\n\ncom.mysql.jdbc.Driver\ncom.mysql.fabric.jdbc.Driver\n")
    assert jdbc.driver_class_of(jar) == "com.mysql.jdbc.Driver"
    with pytest.raises(jdbc.DriverError, match="jdbc_driver_class"):
        jdbc.driver_class_of(make_jar(tmp_path / "plain.jar", None))


def test_real_mariadb_jar_when_installed():
    jar = Path("/usr/share/java/mariadb-java-client.jar")
    if not jar.exists():
        pytest.fail("libmariadb-java is a dependency (scripts/install-deps.sh)")
    assert jdbc.driver_class_of(jar) == "org.mariadb.jdbc.Driver"


@pytest.mark.parametrize("name,fam", [
    ("mariadb-java-client-2.7.6.jar", "mariadb-java-client"),
    ("mariadb-java-client.jar", "mariadb-java-client"),
    ("mysql-connector-java-5.1.49-bin.jar", "mysql-connector-java"),
    ("mysql-connector-j-8.4.0.jar", "mysql-connector-j"),
])
def test_family(name, fam):
    assert jdbc.family(name) == fam


def test_plan_lib():
    sha = "a" * 64
    lib = {"mariadb-java-client.jar": sha, "mariadb-java-client-2.5.0.jar": "b" * 64,
           "other-lib-1.0.jar": "c" * 64, "mysql-connector-java-5.1.40.jar": "d" * 64}
    plan = jdbc.plan_lib("mariadb-java-client.jar", sha, "org.mariadb.jdbc.Driver", lib)
    assert not plan.install and plan.move_aside == ("mariadb-java-client-2.5.0.jar",)
    plan = jdbc.plan_lib("mysql-connector-java-5.1.49.jar", "e" * 64, "com.mysql.jdbc.Driver", lib)
    assert plan.install and plan.move_aside == ("mysql-connector-java-5.1.40.jar",)
    assert jdbc.parse_lib(f"{sha}  mariadb-java-client.jar\n") == {"mariadb-java-client.jar": sha}


def test_parse_node_state():
    f = {"proc": remote.Fact("alive 123", 0), "https": remote.Fact("200", 0),
         "log_size": remote.Fact("4096", 0), "pending": remote.Fact("", 0)}
    st = services.parse_state(f)
    assert st.running and st.healthy and st.pid == "123" and st.log_size == 4096
    f["https"] = remote.Fact("000", 0)
    assert not services.parse_state(f).healthy
    f["proc"] = remote.Fact("dead", 0)
    assert not services.parse_state(f).running


def _inv(tmp_path, nodes=2):
    # the clear-password rendering (ei_xml alone); with Secure Vault: tests/unit/test_vault.py
    inv = make_inv(tmp_path, nodes, driver_class="org.mariadb.jdbc.Driver",
                   cluster={"secure_vault": False})
    return inv, inv.cluster.jdbc_driver.read_bytes()


def _facts(conf: dict, lib=None, user=True) -> node_config.NodeFacts:
    return node_config.NodeFacts(
        ei_home=True, user_exists=user, not_owned="", java="openjdk 17", lib=lib or {},
        conf=conf, conf_state={k: remote.FileState(hashlib.sha256(v).hexdigest(),
                                                   0o600 if k in node_config.SECRET_FILES
                                                   else 0o644, "wso2", "wso2")
                               for k, v in conf.items()}, pending="")


def test_configure_plan_on_shipped_files_then_no_change(tmp_path):
    inv, jar = _inv(tmp_path)
    shipped = {rel: (CONF / rel).read_bytes() for rel in ei_xml.CONF_FILES}
    plan = node_config.plan_node(inv, inv.nodes[0], _facts(shipped, user=False), jar)
    paths = {c.spec.path for c in plan.files}
    assert "/opt/wso2ei-6.6.0/lib/mariadb-java-client.jar" in paths and len(paths) == 10
    assert plan.create_user and plan.membership_changed
    # the same node after the write: nothing to do
    done = {rel: ei_xml.render_node_config(shipped, node_config.node_params(inv, inv.nodes[0]))[rel]
            for rel in ei_xml.CONF_FILES}
    lib = {"mariadb-java-client.jar": hashlib.sha256(jar).hexdigest()}
    again = node_config.plan_node(inv, inv.nodes[0], _facts(done, lib), jar)
    assert again.empty and not again.membership_changed
    script = node_config.apply_script(inv, plan, "STAMP")
    assert "pw-db_password" not in script.split("base64 -d")[0]  # secrets only inside payloads


def test_adding_a_node_changes_only_axis2_and_rolls(tmp_path):
    inv2, jar = _inv(tmp_path)
    inv3, _ = _inv(tmp_path, nodes=3)
    shipped = {rel: (CONF / rel).read_bytes() for rel in ei_xml.CONF_FILES}
    done = ei_xml.render_node_config(shipped, node_config.node_params(inv2, inv2.nodes[0]))
    lib = {"mariadb-java-client.jar": hashlib.sha256(jar).hexdigest()}
    plan = node_config.plan_node(inv3, inv3.nodes[0], _facts(done, lib), jar)
    assert [c.spec.path.rsplit("/", 1)[-1] for c in plan.files] == ["axis2.xml"]
    # only the member list: a rolling restart (steps/membership), not a stop of every node
    assert not plan.membership_changed
    other = dataclasses.replace(inv3, cluster=dataclasses.replace(inv3.cluster, domain="x.y"))
    assert node_config.plan_node(other, other.nodes[0], _facts(done, lib),
                                 jar).membership_changed  # another domain: all stop


def test_node_params_per_node(tmp_path):
    inv, _ = _inv(tmp_path)
    p1, p2 = (node_config.node_params(inv, n) for n in inv.nodes)
    assert (p1.registry_read_only, p2.registry_read_only) == (False, True)
    # a MariaDB jar with no version in its manifest: jdbc:mariadb:, which every version takes
    assert p2.local_db.url == ("jdbc:mariadb://carbondb.example.com:3306/REGISTRY_LOCAL2?"
                               "sslMode=verify-full&serverSslCert=/opt/wso2ei-6.6.0/wso2/"
                               "business-process/repository/resources/security/cluster-ca.pem")
    assert p1.member_ips == p2.member_ips == ("192.0.2.11", "192.0.2.12")
    assert p1.node_id == "node1" and p1.bps_db.driver_class == "org.mariadb.jdbc.Driver"


def test_lock_staleness_rule():
    # the full decision table: tests/unit/test_ops.py; here with this process and machine
    me = deploy._lock_owner()
    own = f"{me.user}@{me.machine} pid={{}} boot={me.boot} since=x"
    assert not deploy.stale_lock(own.format(os.getpid()), me)[0]  # alive
    assert deploy.stale_lock(own.format(999999999), me)[0]  # gone: same user, machine, boot
    assert not deploy.stale_lock(f"{me.user}@elsewhere pid=999999999 boot={me.boot} since=x",
                                 me)[0]  # cannot tell: explicit
    assert not deploy.stale_lock(f"someone-else@{me.machine} pid=999999999 boot={me.boot} "
                                 "since=x", me)[0]  # another user: explicit


def test_render_digest_follows_every_input(tmp_path):
    import dataclasses
    inv, _ = _inv(tmp_path)
    d1 = node_config.render_digest(inv, inv.nodes[0])
    assert d1 == node_config.render_digest(inv, inv.nodes[0])
    assert d1 != node_config.render_digest(inv, inv.nodes[1])
    changed = dataclasses.replace(inv, secrets=type(inv.secrets)(
        {"db_password": "another password", "admin_password": inv.secrets.admin_password,
         "keystore_password": inv.secrets.keystore_password}))
    assert node_config.render_digest(changed, changed.nodes[0]) != d1
    rekeyed = dataclasses.replace(inv, secrets=type(inv.secrets)(
        {"db_password": inv.secrets.db_password, "admin_password": inv.secrets.admin_password,
         "keystore_password": "another keystore password"}))
    assert node_config.render_digest(rekeyed, rekeyed.nodes[0]) != d1


def test_unchanged_since_last_render(tmp_path):
    inv, _ = _inv(tmp_path)
    shas = {rel: "%064x" % i for i, rel in enumerate(ei_xml.CONF_FILES)}
    state = {rel: remote.FileState(sha, 0o600, "wso2", "wso2") for rel, sha in shas.items()}
    f = node_config.NodeFacts(True, True, "", "java 17", {}, {r: None for r in shas}, state, "",
                            remembered=node_config.remembered_state("D", shas).strip())
    assert node_config.unchanged_since_last_render(f, "D")
    assert not node_config.unchanged_since_last_render(f, "E")  # other inputs
    state[ei_xml.CONF_FILES[0]] = remote.FileState("f" * 64, 0o600, "wso2", "wso2")
    assert not node_config.unchanged_since_last_render(f, "D")  # edited on the node
