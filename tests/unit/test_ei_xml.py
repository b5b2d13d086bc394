"""tasks/wso2/ei_xml.py (and the engine's xmledit under it) against the real shipped EI 6.6.0 files (read-only, never copied).

WSO2's shipped files: tests/fixtures/wso2-ei (see its PROVENANCE.md).
"""
from __future__ import annotations

import difflib
import os
import re
import sys
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest
from lxml import etree


from tasks.wso2.ei_xml import (  # noqa: E402
    CONF_FILES,
    DataSourceSpec,
    NodeXmlParams,
    XmlConfigError,
    render_node_config,
)

from tests.paths import PROFILE_CONF as CONF  # noqa: E402


DB = "jdbc:mysql://10.0.0.5:3306/{}?useSSL=false&autoReconnect=true"


def ds(name: str, jndi: str, db: str, pw: str) -> DataSourceSpec:
    return DataSourceSpec(name, jndi, DB.format(db), "wso2bps", pw, "com.mysql.jdbc.Driver")


def params(**kw) -> NodeXmlParams:
    base = NodeXmlParams(
        node_ip="10.0.0.11", member_ips=("10.0.0.11", "10.0.0.12"), hazelcast_port=4000,
        domain="wso2.bps.domain", node_id="node1", registry_read_only=False,
        service_name="bps.example.com", console_name="console.bps.example.com", port_offset=2,
        http_proxy_port=80, https_proxy_port=443,
        user_db=ds("WSO2_USER_DB", "jdbc/WSO2UMDB", "WSO2_USER_DB", "pwUser1"),
        registry_db=ds("WSO2REGISTRY_DB", "jdbc/WSO2RegistryDB", "REGISTRY_DB", "pwReg2"),
        local_db=ds("WSO2_CARBON_DB", "jdbc/WSO2CarbonDB", "REGISTRY_LOCAL1", "pwLocal3"),
        bps_db=ds("BPS_DS", "bpsds", "BPS_DS", "pwBps4"),
        activiti_db=ds("ACTIVITI_DB", "jdbc/ActivitiDB", "ACTIVITI_DB", "pwAct5"),
        admin_username="admin", admin_password="pwAdmin6",
    )
    return replace(base, **kw)


def node2() -> NodeXmlParams:
    return params(node_ip="10.0.0.12", node_id="node2", registry_read_only=True,
                  local_db=ds("WSO2_CARBON_DB", "jdbc/WSO2CarbonDB", "REGISTRY_LOCAL2", "pwLocal3"))


@pytest.fixture(scope="module")
def shipped() -> dict[str, bytes]:
    return {f: (CONF / f).read_bytes() for f in CONF_FILES}


@pytest.fixture(scope="module")
def rendered(shipped) -> dict[str, bytes]:
    return render_node_config(shipped, params())


def lines(b: bytes) -> list[str]:
    return b.decode("latin-1").splitlines()


def changed(before: bytes, after: bytes) -> tuple[Counter, Counter]:
    """(removed lines, added lines) of a unified diff, line endings stripped, indentation kept."""
    rem, add = Counter(), Counter()
    for ln in difflib.unified_diff(lines(before), lines(after), lineterm="", n=0):
        if ln.startswith(("---", "+++", "@@")):
            continue
        (rem if ln[0] == "-" else add)[ln[1:]] += 1
    return rem, add


def tree(b: bytes):
    return etree.fromstring(b, etree.XMLParser(resolve_entities=False, no_network=True))


def xp(b: bytes, path: str) -> list:
    """XPath over local names: 'a/b[@x="y"]' -> */*[local-name()='a']/... relative to root."""
    steps = [f"*[local-name()='{name}']{pred}"
             for name, pred in re.findall(r"([\w.-]+)((?:\[[^\]]*\])?)/?", path)]
    return tree(b).xpath("/*/" + "/".join(steps))


def text(b: bytes, path: str) -> str:
    found = xp(b, path)
    assert len(found) == 1, (path, found)
    return found[0].text


# --------------------------------------------------------------------------- whole-render properties


def test_returns_every_file_and_is_idempotent(shipped, rendered):
    assert set(rendered) == set(CONF_FILES)
    assert render_node_config(rendered, params()) == rendered
    assert render_node_config(shipped, params()) == rendered  # deterministic


def test_inputs_are_not_modified(shipped):
    copy = dict(shipped)
    render_node_config(copy, params())
    assert copy == shipped


@pytest.mark.parametrize("f", CONF_FILES)
def test_declaration_encoding_and_line_endings_kept(shipped, rendered, f):
    before, after = shipped[f], rendered[f]
    assert after.split(b"\n", 1)[0] == before.split(b"\n", 1)[0]  # declaration byte for byte
    assert after.endswith(b"\n") == before.endswith(b"\n")
    assert after.count(b"\r\n") - before.count(b"\r\n") == after.count(b"\n") - before.count(b"\n") \
        if b"\r\n" in before else b"\r" not in after
    # every comment of the shipped file is still there
    assert re.findall(rb"<!--.*?-->", before, re.S) == \
        [c for c in re.findall(rb"<!--.*?-->", after, re.S)]


def test_axis2_is_crlf_throughout(shipped, rendered):
    assert shipped["axis2/axis2.xml"].count(b"\n") == shipped["axis2/axis2.xml"].count(b"\r\n")
    out = rendered["axis2/axis2.xml"]
    assert out.count(b"\n") == out.count(b"\r\n")
    assert out.count(b"\n") > shipped["axis2/axis2.xml"].count(b"\n")  # we added lines, all CRLF


def test_iso_8859_1_files_stay_latin1(shipped):
    assert shipped["registry.xml"].startswith(b'<?xml version="1.0" encoding="ISO-8859-1"?>')
    assert shipped["carbon.xml"].startswith(b'<?xml version="1.0" encoding="ISO-8859-1"?>')
    reg = ds("WSO2REGISTRY_DB", "jdbc/WSO2RegistryDB", "REGISTRY_DB", "pw")
    p = params(registry_db=replace(reg, username="us\u00e9r\u20ac"),
               service_name="bps.example.com", console_name="console.example.com")
    files = dict(shipped)  # a Latin-1 byte the user put in a comment survives untouched
    files["registry.xml"] = files["registry.xml"].replace(b"For details", b"F\xfcr details")
    out = render_node_config(files, p)["registry.xml"]
    assert b"F\xfcr details" in out
    assert b"us\xe9r&#8364;@jdbc" in out  # e-acute as a Latin-1 byte, euro as a char reference
    assert text(out, "remoteInstance/cacheId").startswith("us\u00e9r\u20ac@jdbc:mysql")


def test_ampersand_and_markup_in_values_are_escaped(shipped):
    nasty = "p&<>\"'w"
    p = params(bps_db=replace(params().bps_db, password=nasty), admin_password=nasty)
    out = render_node_config(shipped, p)
    b = out["datasources/bps-datasources.xml"]
    assert b"<password>p&amp;&lt;&gt;\"'w</password>" in b
    assert text(b, "datasources/datasource/definition/configuration/password") == nasty
    assert text(out["user-mgt.xml"], "Realm/Configuration/AdminUser/Password") == nasty
    assert b"?useSSL=false&amp;autoReconnect=true</url>" in b
    assert render_node_config(out, p) == out


def secrets_of(p: NodeXmlParams) -> list[str]:
    """The passwords render_node_config writes (each once)."""
    out = [p.user_db.password, p.registry_db.password, p.local_db.password, p.bps_db.password,
           p.activiti_db.password, p.admin_password]
    return [s for i, s in enumerate(out) if s and s not in out[:i]]


def test_passwords_only_in_password_elements(rendered):
    p = params()
    assert secrets_of(p) == ["pwUser1", "pwReg2", "pwLocal3", "pwBps4", "pwAct5", "pwAdmin6"]
    seen = Counter()
    for f, b in rendered.items():
        raw = b.decode("latin-1")
        for node in tree(b).iter():
            for pw in secrets_of(p):
                in_text = pw in (node.text or "")
                if isinstance(node.tag, str):
                    assert not any(pw in v for v in node.attrib.values()), (f, node.tag)
                    if in_text:
                        assert etree.QName(node).localname.lower() == "password", (f, node.tag)
                        assert node.text == pw
                        seen[pw] += 1
                else:
                    assert not in_text, (f, "comment/PI holds a password")
                assert pw not in (node.tail or ""), (f, "text outside an element")
        for pw in secrets_of(p):  # raw bytes: exactly one occurrence per password element
            assert raw.count(pw) == len(re.findall(rf"<(?:\w+:)?[Pp]assword(?:\s[^>]*)?>{pw}<", raw))
    assert seen == Counter({s: 1 for s in secrets_of(p)})


def test_params_repr_hides_passwords():
    same = ds("X", "j", "D", "same-pw")
    p = params(user_db=replace(same, name="A", jndi="jA"), registry_db=replace(same, name="B", jndi="jB"),
               local_db=replace(params().local_db, password=""), admin_password="same-pw")
    assert "same-pw" not in repr(p) and "pwBps4" not in repr(p)


# --------------------------------------------------------------------------- per-file: the diff holds only intended edits

I4, I8, I12, I16, I20 = (" " * n for n in (4, 8, 12, 16, 20))


def conf_lines(url_db: str, pw: str, ind: str = I20) -> set[str]:
    return {f"{ind}<url>{DB.format(url_db).replace('&', '&amp;')}</url>", f"{ind}<username>wso2bps</username>",
            f"{ind}<password>{pw}</password>", f"{ind}<driverClassName>com.mysql.jdbc.Driver</driverClassName>"}


def new_ds_lines(name, jndi, db, pw, desc) -> set[str]:
    return {"", f"{I8}<datasource>", f"{I12}<name>{name}</name>", f"{I12}<description>{desc}</description>",
            f"{I12}<jndiConfig>", f"{I16}<name>{jndi}</name>", f"{I12}</jndiConfig>",
            f'{I12}<definition type="RDBMS">', f"{I16}<configuration>", f"{I16}</configuration>",
            f"{I12}</definition>", f"{I8}</datasource>", f"{I20}<maxActive>50</maxActive>",
            f"{I20}<maxWait>60000</maxWait>", f"{I20}<testOnBorrow>true</testOnBorrow>",
            f"{I20}<validationQuery>SELECT 1</validationQuery>",
            f"{I20}<validationInterval>30000</validationInterval>",
            f"{I20}<defaultAutoCommit>false</defaultAutoCommit>"} | conf_lines(db, pw)


H2 = {f"{I20}<username>wso2carbon</username>", f"{I20}<password>wso2carbon</password>",
      f"{I20}<driverClassName>org.h2.Driver</driverClassName>"}

EXPECTED = {  # file -> (lines that may be removed, lines that may be added)
    "datasources/master-datasources.xml": (
        H2 | {f"{I20}<url>jdbc:h2:./repository/database/WSO2CARBON_DB;DB_CLOSE_ON_EXIT=FALSE;LOCK_TIMEOUT=60000</url>"},
        conf_lines("REGISTRY_LOCAL1", "pwLocal3")
        | new_ds_lines("WSO2_USER_DB", "jdbc/WSO2UMDB", "WSO2_USER_DB", "pwUser1",
                       "The datasource used for user manager")
        | new_ds_lines("WSO2REGISTRY_DB", "jdbc/WSO2RegistryDB", "REGISTRY_DB", "pwReg2",
                       "The datasource used for config/governance registry mount")),
    "datasources/bps-datasources.xml": (
        H2 | {f"{I20}<url>jdbc:h2:file:./repository/database/jpadb;DB_CLOSE_ON_EXIT=FALSE;MVCC=TRUE</url>"},
        conf_lines("BPS_DS", "pwBps4")),
    "datasources/activiti-datasources.xml": (
        H2 | {f"{I20}<url>jdbc:h2:./repository/database/activiti;DB_CLOSE_DELAY=-1;DB_CLOSE_ON_EXIT=FALSE;"
              "LOCK_TIMEOUT=60000</url>"},
        conf_lines("ACTIVITI_DB", "pwAct5")),
    "user-mgt.xml": (
        {f"{I16}<Password>admin</Password>", f'{I12}<Property name="dataSource">jdbc/WSO2CarbonDB</Property>'},
        {f"{I16}<Password>pwAdmin6</Password>", f'{I12}<Property name="dataSource">jdbc/WSO2UMDB</Property>'}),
    "registry.xml": (set(), {
        "", f'{I4}<dbConfig name="wso2bpsregistry">', f"{I8}<dataSource>jdbc/WSO2RegistryDB</dataSource>",
        f"{I4}</dbConfig>", f'{I4}<remoteInstance url="https://localhost:9443/registry">',
        f"{I8}<id>instanceid</id>", f"{I8}<dbConfig>wso2bpsregistry</dbConfig>", f"{I8}<readOnly>false</readOnly>",
        f"{I8}<enableCache>true</enableCache>", f"{I8}<registryRoot>/</registryRoot>",
        f"{I8}<cacheId>wso2bps@{DB.format('REGISTRY_DB').replace('&', '&amp;')}</cacheId>",
        f"{I4}</remoteInstance>", f'{I4}<mount path="/_system/config" overwrite="true">',
        f'{I4}<mount path="/_system/governance" overwrite="true">', f"{I8}<instanceId>instanceid</instanceId>",
        f"{I8}<targetPath>/_system/bpsconfig</targetPath>", f"{I8}<targetPath>/_system/governance</targetPath>",
        f"{I4}</mount>"}),
    "axis2/axis2.xml": (
        {' ' * 16 + 'enable="false">', f'{I8}<parameter name="domain">wso2.carbon.domain</parameter>',
         f'{I8}<parameter name="localMemberHost">127.0.0.1</parameter>', f"{I16}<hostName>127.0.0.1</hostName>"},
        {' ' * 16 + 'enable="true">', f'{I8}<parameter name="domain">wso2.bps.domain</parameter>',
         f'{I8}<parameter name="localMemberHost">10.0.0.11</parameter>', f"{I16}<hostName>10.0.0.11</hostName>",
         f"{I12}<member>", f"{I16}<hostName>10.0.0.12</hostName>", f"{I16}<port>4000</port>", f"{I12}</member>",
         f'{I8}<parameter name="proxyPort">80</parameter>', f'{I8}<parameter name="proxyPort">443</parameter>'}),
    "bps.xml": (set(), {f"{I4}<tns:UseDistributedLock>true</tns:UseDistributedLock>",
                        f"{I4}<tns:NodeId>node1</tns:NodeId>"}),
    "carbon.xml": ({f"{I4}<HostName>localhost</HostName>"},
                   {f"{I4}<HostName>bps.example.com</HostName>",
                    f"{I4}<MgtHostName>console.bps.example.com</MgtHostName>"}),
    "tomcat/catalina-server.xml": (set(), {' ' * 16 + 'proxyPort="80"', ' ' * 19 + 'proxyPort="443"'}),
}


@pytest.mark.parametrize("f", CONF_FILES)
def test_diff_against_shipped_holds_only_intended_edits(shipped, rendered, f):
    removed, added = changed(shipped[f], rendered[f])
    may_remove, may_add = EXPECTED[f]
    assert set(removed) <= may_remove, set(removed) - may_remove
    assert set(added) <= may_add, set(added) - may_add
    # and every intended non-blank line really is there
    assert {ln for ln in may_add if ln} <= set(lines(rendered[f])), {ln for ln in may_add if ln} - set(lines(rendered[f]))
    assert sum(removed.values()) <= sum(added.values())


def test_master_datasources_values(rendered):
    b = rendered["datasources/master-datasources.xml"]
    names = [t.text for t in xp(b, "datasources/datasource/name")]
    assert names == ["WSO2_CARBON_DB", "WSO2_USER_DB", "WSO2REGISTRY_DB"]
    for name, jndi, db, pw in (("WSO2_CARBON_DB", "jdbc/WSO2CarbonDB", "REGISTRY_LOCAL1", "pwLocal3"),
                               ("WSO2_USER_DB", "jdbc/WSO2UMDB", "WSO2_USER_DB", "pwUser1"),
                               ("WSO2REGISTRY_DB", "jdbc/WSO2RegistryDB", "REGISTRY_DB", "pwReg2")):
        base = f"datasources/datasource[name='{name}']"
        assert text(b, f"{base}/jndiConfig/name") == jndi
        assert xp(b, f"{base}/definition")[0].get("type") == "RDBMS"
        c = f"{base}/definition/configuration"
        assert [e.tag for e in xp(b, c)[0]] == ["url", "username", "password", "driverClassName", "maxActive",
                                               "maxWait", "testOnBorrow", "validationQuery",
                                               "validationInterval", "defaultAutoCommit"]
        assert text(b, f"{c}/url") == DB.format(db)
        assert (text(b, f"{c}/username"), text(b, f"{c}/password")) == ("wso2bps", pw)
        assert text(b, f"{c}/driverClassName") == "com.mysql.jdbc.Driver"
        assert [text(b, f"{c}/{k}") for k in ("maxActive", "maxWait", "testOnBorrow", "validationQuery",
                                              "validationInterval", "defaultAutoCommit")] == \
            ["50", "60000", "true", "SELECT 1", "30000", "false"]
    # the commented SAMPLE_DATA_SOURCE and the description of WSO2_CARBON_DB stay
    assert b"<!--datasource>\n            <name>SAMPLE_DATA_SOURCE</name>" in b
    assert text(b, "datasources/datasource[1]/description") == "The datasource used for registry and user manager"


@pytest.mark.parametrize("f,name,jndi,kept", [
    ("datasources/bps-datasources.xml", "BPS_DS", "bpsds",
     {"useDataSourceFactory": "false", "defaultAutoCommit": "true", "maxActive": "100", "maxIdle": "20",
      "maxWait": "10000"}),
    ("datasources/activiti-datasources.xml", "ACTIVITI_DB", "jdbc/ActivitiDB",
     {"maxActive": "50", "maxWait": "60000", "validationQuery": "SELECT 1"}),
])
def test_bps_and_activiti_datasources(rendered, f, name, jndi, kept):
    b = rendered[f]
    assert text(b, "datasources/datasource/name") == name
    assert text(b, "datasources/datasource/jndiConfig/name") == jndi
    c = "datasources/datasource/definition/configuration"
    assert text(b, f"{c}/url") == DB.format(name)
    assert text(b, f"{c}/driverClassName") == "com.mysql.jdbc.Driver"
    for k, v in kept.items():
        assert text(b, f"{c}/{k}") == v


def test_user_mgt(rendered):
    b = rendered["user-mgt.xml"]
    assert text(b, "Realm/Configuration/Property[@name='dataSource']") == "jdbc/WSO2UMDB"
    assert text(b, "Realm/Configuration/AdminUser/UserName") == "admin"
    assert text(b, "Realm/Configuration/AdminUser/Password") == "pwAdmin6"
    assert xp(b, "Realm/UserStoreManager")[0].get("class") == "org.wso2.carbon.user.core.jdbc.JDBCUserStoreManager"


def test_registry(rendered):
    b = rendered["registry.xml"]
    root = tree(b)
    order = [(e.tag, e.get("name") or e.get("path") or e.get("url")) for e in root if isinstance(e.tag, str)]
    i = order.index(("dbConfig", "wso2registry"))
    assert order[i:i + 5] == [("dbConfig", "wso2registry"), ("dbConfig", "wso2bpsregistry"),
                              ("remoteInstance", "https://localhost:9443/registry"),
                              ("mount", "/_system/config"), ("mount", "/_system/governance")]
    assert text(b, "dbConfig[@name='wso2bpsregistry']/dataSource") == "jdbc/WSO2RegistryDB"
    ri = xp(b, "remoteInstance")[0]
    assert [(e.tag, e.text) for e in ri] == [
        ("id", "instanceid"), ("dbConfig", "wso2bpsregistry"), ("readOnly", "false"), ("enableCache", "true"),
        ("registryRoot", "/"), ("cacheId", "wso2bps@" + DB.format("REGISTRY_DB"))]
    for path, target in (("/_system/config", "/_system/bpsconfig"), ("/_system/governance", "/_system/governance")):
        m = xp(b, f"mount[@path='{path}']")[0]
        assert m.get("overwrite") == "true"
        assert [(e.tag, e.text) for e in m] == [("instanceId", "instanceid"), ("targetPath", target)]
    assert text(b, "readOnly") == "false" and text(b, "dbConfig[@name='wso2registry']/dataSource") == "jdbc/WSO2CarbonDB"


def test_axis2(rendered):
    b = rendered["axis2/axis2.xml"]
    cl = xp(b, "clustering")[0]
    assert cl.get("enable") == "true"
    assert cl.get("class") == "org.wso2.carbon.core.clustering.hazelcast.HazelcastClusteringAgent"
    assert list(cl.attrib) == ["class", "enable"]
    param = {e.get("name"): e.text for e in cl.findall("parameter")}
    assert (param["membershipScheme"], param["domain"], param["localMemberHost"], param["localMemberPort"]) == \
        ("wka", "wso2.bps.domain", "10.0.0.11", "4000")
    assert param["AvoidInitiation"] == "true"
    assert [(m.findtext("hostName"), m.findtext("port")) for m in cl.find("members")] == \
        [("10.0.0.11", "4000"), ("10.0.0.12", "4000")]
    for name, port in (("http", "80"), ("https", "443")):
        tr = xp(b, f"transportReceiver[@name='{name}']")[0]
        assert tr.xpath("parameter[@name='proxyPort']/text()") == [port]


def test_bps_xml(shipped, rendered):
    b = rendered["bps.xml"]
    assert b.count(b"xmlns") == shipped["bps.xml"].count(b"xmlns")  # no new namespace declarations
    ns = "{http://wso2.org/bps/config}"
    root = tree(b)
    tags = [e.tag.replace(ns, "") for e in root if isinstance(e.tag, str)]
    i = tags.index("ODESchedulerThreadPoolSize")
    assert tags[i:i + 4] == ["ODESchedulerThreadPoolSize", "UseDistributedLock", "NodeId", "BpelUI"]
    assert root.findtext(f"{ns}UseDistributedLock") == "true" and root.findtext(f"{ns}NodeId") == "node1"
    assert b"    <!-- <tns:UseDistributedLock>true</tns:UseDistributedLock> -->\n" \
           b"    <tns:UseDistributedLock>true</tns:UseDistributedLock>\n" in b
    assert b"    <!-- <tns:NodeId></tns:NodeId>  -->\n    <tns:NodeId>node1</tns:NodeId>\n" in b


def test_carbon(rendered):
    b = rendered["carbon.xml"]
    assert text(b, "HostName") == "bps.example.com" and text(b, "MgtHostName") == "console.bps.example.com"
    assert text(b, "Ports/Offset") == "2"
    assert b"<HostName>bps.example.com</HostName>\n    <MgtHostName>console.bps.example.com</MgtHostName>\n" in b
    assert b"<!--MgtHostName>mgt.wso2.org</MgtHostName-->" in b


def test_catalina(shipped, rendered):
    b = rendered["tomcat/catalina-server.xml"]
    conns = {c.get("port"): c for c in tree(b).iter("Connector")}
    assert conns["9763"].get("proxyPort") == "80" and conns["9443"].get("proxyPort") == "443"
    assert b"9765" not in b and b"9445" not in b
    orig = {c.get("port"): c for c in tree(shipped["tomcat/catalina-server.xml"]).iter("Connector")}
    for port in ("9763", "9443"):  # attribute order kept, proxyPort right after port
        want = list(orig[port].attrib)
        want.insert(want.index("port") + 1, "proxyPort")
        assert list(conns[port].attrib) == want


# --------------------------------------------------------------------------- re-runs with other parameters


def test_second_node(shipped):
    out = render_node_config(shipped, node2())
    assert text(out["registry.xml"], "remoteInstance/readOnly") == "true"
    assert text(out["bps.xml"], "NodeId") == "node2"
    assert xp(out["axis2/axis2.xml"], "clustering/parameter[@name='localMemberHost']")[0].text == "10.0.0.12"
    c = "datasources/datasource[1]/definition/configuration/url"
    assert text(out["datasources/master-datasources.xml"], c) == DB.format("REGISTRY_LOCAL2")


def test_adding_a_member_changes_only_the_members_list(rendered):
    three = params(member_ips=("10.0.0.11", "10.0.0.12", "10.0.0.13"))
    out = render_node_config(rendered, three)
    for f in CONF_FILES:
        if f != "axis2/axis2.xml":
            assert out[f] == rendered[f], f
    removed, added = changed(rendered["axis2/axis2.xml"], out["axis2/axis2.xml"])
    assert removed == Counter()
    assert added == Counter([f"{I12}<member>", f"{I16}<hostName>10.0.0.13</hostName>",
                             f"{I16}<port>4000</port>", f"{I12}</member>"])
    assert b"\r\n            <member>\r\n                <hostName>10.0.0.13</hostName>\r\n" in out["axis2/axis2.xml"]
    assert render_node_config(out, params()) == rendered  # and back to two nodes


@pytest.mark.parametrize("change", [
    dict(port_offset=3), dict(member_ips=("10.0.0.12", "10.0.0.11")), dict(admin_password="other"),
    dict(registry_read_only=True), dict(domain="wso2.bps.other"), dict(http_proxy_port=8080),
    dict(user_db=ds("WSO2_USER_DB", "jdbc/WSO2UMDB", "USERS", "x")),
    dict(registry_db=ds("WSO2REGISTRY_DB", "jdbc/WSO2RegistryDB", "REG2", "y")),
    dict(member_ips=("10.0.0.11",)),
])
def test_rerun_with_changed_params_converges(shipped, rendered, change):
    p = params(**change)
    direct = render_node_config(shipped, p)
    assert render_node_config(rendered, p) == direct
    assert render_node_config(direct, p) == direct


def test_offset_change_touches_one_line(rendered):
    out = render_node_config(rendered, params(port_offset=3))
    assert [f for f in CONF_FILES if out[f] != rendered[f]] == ["carbon.xml"]
    assert changed(rendered["carbon.xml"], out["carbon.xml"]) == \
        (Counter([f"{I8}<Offset>2</Offset>"]), Counter([f"{I8}<Offset>3</Offset>"]))


def test_users_other_settings_survive(shipped):
    files = dict(shipped)
    files["datasources/bps-datasources.xml"] = files["datasources/bps-datasources.xml"].replace(
        b"<maxActive>100</maxActive>", b"<maxActive>300</maxActive><!-- tuned -->")
    files["axis2/axis2.xml"] = files["axis2/axis2.xml"].replace(
        b'<parameter name="mcastTTL">100</parameter>', b'<parameter name="mcastTTL">7</parameter>')
    out = render_node_config(files, params())
    assert b"<maxActive>300</maxActive><!-- tuned -->" in out["datasources/bps-datasources.xml"]
    assert b'<parameter name="mcastTTL">7</parameter>' in out["axis2/axis2.xml"]


def test_existing_added_datasource_is_updated_in_place(rendered):
    p = params(user_db=ds("WSO2_USER_DB", "jdbc/WSO2UMDB", "USERS", "newpw"))
    out = render_node_config(rendered, p)["datasources/master-datasources.xml"]
    removed, added = changed(rendered["datasources/master-datasources.xml"], out)
    assert removed == Counter([f"{I20}<url>{DB.format('WSO2_USER_DB').replace('&', '&amp;')}</url>",
                               f"{I20}<password>pwUser1</password>"])
    assert added == Counter([f"{I20}<url>{DB.format('USERS').replace('&', '&amp;')}</url>",
                             f"{I20}<password>newpw</password>"])


# --------------------------------------------------------------------------- EI 6.5.0-style files (no commented examples)


def strip_examples(files: dict[str, bytes]) -> dict[str, bytes]:
    f = dict(files)
    f["bps.xml"] = re.sub(rb"\n *<!-- <tns:(UseDistributedLock|NodeId)>[^\n]*-->", b"", f["bps.xml"])
    f["carbon.xml"] = f["carbon.xml"].replace(b"<!--MgtHostName>mgt.wso2.org</MgtHostName-->", b"")
    f["axis2/axis2.xml"] = re.sub(rb"\r\n *<!--<parameter name=\"proxyPort\">\d+</parameter>-->", b"",
                                  f["axis2/axis2.xml"])
    return f


def test_files_without_commented_examples_get_elements_created(shipped):
    files = strip_examples(shipped)
    assert b"tns:NodeId" not in files["bps.xml"] and b"proxyPort" not in files["axis2/axis2.xml"]
    out = render_node_config(files, params())
    assert render_node_config(out, params()) == out
    ns = "{http://wso2.org/bps/config}"
    tags = [e.tag.replace(ns, "") for e in tree(out["bps.xml"]) if isinstance(e.tag, str)]
    i = tags.index("ODESchedulerThreadPoolSize")
    assert tags[i + 1:i + 3] == ["UseDistributedLock", "NodeId"]
    assert b"    <tns:ODESchedulerThreadPoolSize>50</tns:ODESchedulerThreadPoolSize>\n" \
           b"    <tns:UseDistributedLock>true</tns:UseDistributedLock>\n" \
           b"    <tns:NodeId>node1</tns:NodeId>\n" in out["bps.xml"]
    assert b'<parameter name="port">9763</parameter>\r\n        <parameter name="proxyPort">80</parameter>\r\n' \
        in out["axis2/axis2.xml"]
    assert text(out["carbon.xml"], "MgtHostName") == "console.bps.example.com"
    for f in CONF_FILES:
        assert set(changed(files[f], out[f])[1]) <= EXPECTED[f][1], f


def test_commented_out_local_member_host_is_created_under_its_comment(shipped):
    files = dict(shipped)
    live = b'<parameter name="localMemberHost">127.0.0.1</parameter>'
    files["axis2/axis2.xml"] = files["axis2/axis2.xml"].replace(live, b"<!--" + live + b"-->")
    out = render_node_config(files, params())["axis2/axis2.xml"]
    assert b'        <!--' + live + b'-->\r\n        <parameter name="localMemberHost">10.0.0.11</parameter>\r\n' in out
    names = [e.get("name") for e in xp(out, "clustering/parameter")]
    assert names.index("domain") < names.index("localMemberHost") < names.index("localMemberPort")


def test_missing_members_and_mgt_host_name_are_created(shipped):
    files = dict(shipped)
    files["axis2/axis2.xml"] = re.sub(rb"<members>.*?</members>", b"<members/>", files["axis2/axis2.xml"],
                                      flags=re.S)
    files["carbon.xml"] = files["carbon.xml"].replace(b"<!--MgtHostName>mgt.wso2.org</MgtHostName-->",
                                                      b"<MgtHostName/>")
    out = render_node_config(files, params())
    assert [m.findtext("hostName") for m in xp(out["axis2/axis2.xml"], "clustering/members/member")] == \
        ["10.0.0.11", "10.0.0.12"]
    assert b"        <members>\r\n            <member>\r\n                <hostName>10.0.0.11</hostName>" \
        in out["axis2/axis2.xml"]
    assert text(out["carbon.xml"], "MgtHostName") == "console.bps.example.com"
    assert render_node_config(out, params()) == out


# --------------------------------------------------------------------------- errors


def broken(shipped, f, old: bytes, new: bytes, flags=0) -> dict[str, bytes]:
    files = dict(shipped)
    files[f] = re.sub(old, new, files[f], flags=flags)
    assert files[f] != shipped[f]
    return files


@pytest.mark.parametrize("f,old,new,msg", [
    ("axis2/axis2.xml", rb"<clustering .*?</clustering>", b"", "no <clustering> element"),
    ("user-mgt.xml", rb"<Configuration>.*?</Configuration>", b"", "no <Configuration> element in <UserManager/Realm>"),
    ("user-mgt.xml", rb"<Realm>.*</Realm>", b"", "no <Realm> element"),
    ("datasources/bps-datasources.xml", rb"<name>BPS_DS</name>", b"<name>OTHER</name>",
     "no <datasource> named BPS_DS"),
    ("datasources/activiti-datasources.xml", rb"<name>jdbc/ActivitiDB</name>", b"<name>jdbc/X</name>",
     "has JNDI name 'jdbc/X', expected 'jdbc/ActivitiDB'"),
    ("datasources/master-datasources.xml", rb"<name>WSO2_CARBON_DB</name>", b"<name>X</name>",
     "no <datasource> named WSO2_CARBON_DB"),
    ("registry.xml", rb'<dbConfig name="wso2registry">', b'<dbConfig name="other">',
     "no <dbConfig name='wso2registry'> element"),
    ("carbon.xml", rb"<Ports>.*?</Ports>", b"", "no <Ports> element"),
    ("tomcat/catalina-server.xml", rb'port="9763"', b'port="9765"', '0 <Connector port="9763"> elements'),
    ("axis2/axis2.xml", rb'<transportReceiver name="https"', b'<transportReceiver name="h2"',
     "no <transportReceiver name='https'> element"),
])
def test_missing_structure_raises_naming_file_and_element(shipped, f, old, new, msg):
    with pytest.raises(XmlConfigError) as ei:
        render_node_config(broken(shipped, f, old, new, re.S), params())
    assert str(ei.value).startswith(f + ": ") and msg in str(ei.value), str(ei.value)
    assert ei.value.file == f and ei.value.element


def test_missing_file(shipped):
    files = dict(shipped)
    del files["bps.xml"]
    with pytest.raises(XmlConfigError, match=r"^bps\.xml: missing") as ei:
        render_node_config(files, params())
    assert ei.value.file == "bps.xml"


def test_not_well_formed_names_the_line(shipped):
    files = broken(shipped, "carbon.xml", rb"<HostName>localhost</HostName>", b"<HostName>localhost</Host>")
    with pytest.raises(XmlConfigError, match=r"^carbon\.xml: not well-formed XML at line 47: "):
        render_node_config(files, params())


@pytest.mark.parametrize("change,msg", [
    (dict(node_ip="10.0.0.99"), "not one of member_ips"),
    (dict(member_ips=()), "member_ips is empty"),
    (dict(member_ips=("10.0.0.11", "10.0.0.11")), "duplicates"),
    (dict(hazelcast_port=0), "not a TCP port"),
    (dict(node_id=" "), "node_id"),
])
def test_bad_params(shipped, change, msg):
    with pytest.raises(ValueError, match=msg):
        render_node_config(shipped, params(**change))
