"""Every file that names the node's primary keystore, pointed at the node's own (cluster CA).

WSO2 EI 6.6.0's business-process profile names `wso2carbon.jks` (password `wso2carbon`) in:
- carbon.xml `<Security><KeyStore>`: Location, Type, Password, KeyAlias, KeyPassword (the
  server's identity, Secure Vault, signing);
- tomcat/catalina-server.xml, the HTTPS connector (9443): keystoreFile, keystorePass, plus
  keystoreType and keyAlias (Tomcat's defaults are JKS and the first key);
- axis2/axis2.xml, the `keystore` parameter of every live https transport (the PassThrough /
  NHTTP sender; the shipped receiver is commented out and stays so).
`<InternalKeyStore>` (carbon.xml) is left alone: it encrypts data the product stores, and
replacing its key on a cluster that holds such data needs WSO2's key-rotation procedure.

Called by ei_xml.render_node_config on its documents (duck-typed `_Doc`: this module imports
nothing of ei_xml, so there is no cycle); pure, idempotent like every edit there.
"""
from __future__ import annotations

from dataclasses import dataclass

SECURITY_DIR = "repository/resources/security"


@dataclass(frozen=True)
class KeystoreXml:
    file_name: str  # in <carbon.home>/repository/resources/security/
    type: str  # PKCS12
    alias: str
    password: str  # store and key (PKCS12 has one password for both)

    def __repr__(self) -> str:  # never show the password
        return f"KeystoreXml({self.file_name!r}, {self.type!r}, {self.alias!r}, password='***')"

    @property
    def carbon_location(self) -> str:
        return "${carbon.home}/" + f"{SECURITY_DIR}/{self.file_name}"

    @property
    def relative_location(self) -> str:
        return f"{SECURITY_DIR}/{self.file_name}"


def edit(name: str, doc, ks: KeystoreXml) -> None:
    """Point `name` (a CONF_FILES entry) at the node's keystore; other files are left alone."""
    if name == "carbon.xml":
        _carbon(doc, ks)
    elif name == "tomcat/catalina-server.xml":
        _catalina(doc, ks)
    elif name == "axis2/axis2.xml":
        _axis2(doc, ks)


def _child(doc, parent, local: str, why: str):
    found = parent.children(local)
    if len(found) != 1:
        raise doc.err(local, f"{len(found)} <{local}> in <{doc.path_of(parent)}>, expected one: "
                             f"{why}")
    return found[0]


def _set_children(doc, get_parent, values: tuple[tuple[str, str], ...], why: str) -> None:
    for local, value in values:  # every set re-parses: find the parent again each time
        doc.set_text(_child(doc, get_parent(), local, why), value)


def _carbon(doc, ks: KeystoreXml) -> None:
    why = "cannot point the primary keystore at the node's own"

    def keystore():
        return _child(doc, _child(doc, doc.root, "Security", why), "KeyStore", why)

    _set_children(doc, keystore, (("Location", ks.carbon_location), ("Type", ks.type),
                                  ("Password", ks.password), ("KeyAlias", ks.alias),
                                  ("KeyPassword", ks.password)), why)


def _catalina(doc, ks: KeystoreXml) -> None:
    def connector():
        found = [e for e in doc.iter() if e.local == "Connector"
                 and (doc.attr(e, "SSLEnabled") or "").lower() == "true"]
        if len(found) != 1:
            raise doc.err("Connector", f"{len(found)} <Connector SSLEnabled=\"true\"> elements, "
                                       "expected one (the HTTPS connector)")
        return found[0]

    for attr, value in (("keystoreFile", ks.carbon_location), ("keystorePass", ks.password),
                        ("keystoreType", ks.type), ("keyAlias", ks.alias)):
        doc.set_attr(connector(), attr, value, after="keystorePass" if attr != "keystorePass"
                     else "keystoreFile")


def _axis2(doc, ks: KeystoreXml) -> None:
    def stores():
        return [e for e in doc.iter() if e.local == "KeyStore" and e.parent is not None
                and e.parent.local == "parameter" and doc.attr(e.parent, "name") == "keystore"]

    why = "cannot point the https transport's keystore at the node's own"
    for i in range(len(stores())):
        _set_children(doc, lambda i=i: stores()[i],
                      (("Location", ks.relative_location), ("Type", ks.type),
                       ("Password", ks.password), ("KeyPassword", ks.password)), why)
