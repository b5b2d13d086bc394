"""The node's own keystore in carbon.xml, catalina-server.xml and axis2.xml (WSO2's shipped files)."""
from __future__ import annotations

from lxml import etree

from tests.paths import REPO
from tasks.engine.xmledit import Doc
from tasks.wso2.keystore_xml import KeystoreXml

CONF = REPO / "tests/fixtures/wso2-ei/wso2/business-process/conf"
KS = KeystoreXml("bps-node.p12", "PKCS12", "bps-node", "Ks-p&ss<word>")


def render(name: str) -> bytes:
    doc = Doc(name, (CONF / name).read_bytes())
    from tasks.wso2 import keystore_xml
    keystore_xml.edit(name, doc, KS)
    return doc.to_bytes()


def test_carbon_primary_keystore_only():
    out = render("carbon.xml")
    root = etree.fromstring(out)
    ks = root.find("{*}Security/{*}KeyStore")
    assert ks.findtext("{*}Location") == "${carbon.home}/repository/resources/security/bps-node.p12"
    assert ks.findtext("{*}Type") == "PKCS12" and ks.findtext("{*}KeyAlias") == "bps-node"
    assert ks.findtext("{*}Password") == KS.password == ks.findtext("{*}KeyPassword")
    internal = root.find("{*}Security/{*}InternalKeyStore")
    assert internal.findtext("{*}Location").endswith("wso2carbon.jks")  # product data: untouched
    assert render_again("carbon.xml", out) == out


def render_again(name: str, data: bytes) -> bytes:
    from tasks.wso2 import keystore_xml
    doc = Doc(name, data)
    keystore_xml.edit(name, doc, KS)
    return doc.to_bytes()


def test_catalina_https_connector():
    out = render("tomcat/catalina-server.xml")
    c = [e for e in etree.fromstring(out).iter("Connector") if e.get("SSLEnabled") == "true"][0]
    assert c.get("keystoreFile").endswith("/bps-node.p12") and c.get("keystorePass") == KS.password
    assert c.get("keystoreType") == "PKCS12" and c.get("keyAlias") == "bps-node"
    assert b"wso2carbon.jks" not in out
    assert render_again("tomcat/catalina-server.xml", out) == out


def test_axis2_edits_live_keystores_only():
    # the business-process profile's axis2.xml names wso2carbon.jks only in commented-out NIO
    # transports: they stay as shipped
    shipped = (CONF / "axis2/axis2.xml").read_bytes()
    assert render("axis2/axis2.xml") == shipped
    live = shipped.replace(b"<!--  \r\n", b"", 1).replace(b"\t-->", b"", 1)
    live = live.replace(b"<!--  \n", b"", 1).replace(b"\t-->\n", b"\n", 1)
    assert etree.fromstring(live).findall(".//{*}parameter[@name='keystore']/{*}KeyStore")
    out = render_again("axis2/axis2.xml", live)
    keystores = etree.fromstring(out).findall(".//{*}parameter[@name='keystore']/{*}KeyStore")
    assert keystores and all(k.findtext("{*}Location") ==
                             "repository/resources/security/bps-node.p12" for k in keystores)
    assert render_again("axis2/axis2.xml", out) == out


def test_repr_hides_password():
    assert KS.password not in repr(KS)
