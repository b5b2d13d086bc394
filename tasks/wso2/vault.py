"""WSO2 Secure Vault for an EI 6.6.0 Business Process node: what WSO2's cipher tool does, in Python.

Pure (no I/O, no clock): the step (tasks/steps/vault) reads and writes the files.

What WSO2's cipher tool (`ciphertool.sh -Dconfigure`, org.wso2.ciphertool.CipherTool) does, and
so what this module does the same way:
* each secured value in a configuration file is replaced by the text `password` and the element
  gets `svns:secretAlias="<alias>"`, the root element `xmlns:svns="http://org.wso2.securevault/
  configuration"`; for an attribute (cipher-tool.properties' `,true`, catalina-server.xml's
  keystorePass) the attribute's value becomes `password` and its element gets the alias;
* `conf/security/cipher-text.properties`: `<alias>=<base64 of RSA/ECB/PKCS1Padding
  ciphertext>` (`Cipher.getInstance("RSA")` = RSA/ECB/PKCS1Padding, initialised with the
  primary keystore's certificate; `DatatypeConverter.printBase64Binary`), written as
  java.util.Properties does (`=` escaped as `\\=`);
* `conf/security/secret-conf.properties`: the keys of `writeToSecureConfPropertyFile`: the
  file secret repository, the primary keystore (carbon.xml's Location/Type/KeyAlias) and
  Carbon's DefaultSecretCallbackHandler, which reads the keystore password from
  `<carbon.home>/password-tmp` at start and deletes it.

The aliases are those of the profile's shipped cipher-tool.properties (WSO2 EI 6.6.0,
tests/fixtures/wso2-ei), plus `Datasources.<NAME>.Configuration.Password` (WSO2's own naming)
for the datasources the tool adds or edits. The BPS profile's axis2.xml holds keystore
passwords only inside comments (its NIO https transports are commented out): nothing to secure.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import struct
from dataclasses import dataclass

from ..engine.xmledit import Doc as _Doc, XmlConfigError
from ..engine.xmltree import ATTR_RE as _ATTR, El as _El

NS = "http://org.wso2.securevault/configuration"
NS_ATTR = "xmlns:svns"
ALIAS_ATTR = "svns:secretAlias"
PLACEHOLDER = "password"  # CipherTool: node.setTextContent(Constants.SecureVault.PASSWORD)
SECRET_CONF = "security/secret-conf.properties"  # relative to the profile's conf/
CIPHER_TEXT = "security/cipher-text.properties"
CARBON_SECRET_PROVIDER = "org.wso2.securevault.secret.handler.SecretManagerSecretCallbackHandler"
FILE_PROVIDER = "org.wso2.securevault.secret.repository.FileBaseSecretRepositoryProvider"
DEFAULT_CALLBACK = "org.wso2.carbon.securevault.DefaultSecretCallbackHandler"
PASSWORD_TMP = "password-tmp"  # in carbon.home (the profile): DefaultSecretCallbackHandler
RSA_PKCS1_OVERHEAD = 11


class VaultError(Exception):
    """Secure Vault cannot be set up with these inputs; the message names the cause and fix."""


@dataclass(frozen=True)
class Secured:
    """One secured value: its alias, the file (relative to conf/), where it is, which secret."""
    alias: str
    file: str
    path: tuple[str, ...]  # element names from the root's child down ("datasource:NAME" picks one)
    secret: str  # the inventory secret that is its plaintext
    attr: str | None = None  # the attribute holding the value (else the element's text)


def _ds(name: str, file: str) -> Secured:
    return Secured(f"Datasources.{name}.Configuration.Password", file,
                   ("datasources", f"datasource:{name}", "definition", "configuration",
                    "password"), "db_password")


MASTER = "datasources/master-datasources.xml"
SECURED: tuple[Secured, ...] = (
    Secured("Carbon.Security.KeyStore.Password", "carbon.xml",
            ("Security", "KeyStore", "Password"), "keystore_password"),
    Secured("Carbon.Security.KeyStore.KeyPassword", "carbon.xml",
            ("Security", "KeyStore", "KeyPassword"), "keystore_password"),
    Secured("Carbon.Security.TrustStore.Password", "carbon.xml",
            ("Security", "TrustStore", "Password"), "truststore_password"),
    Secured("UserManager.AdminUser.Password", "user-mgt.xml",
            ("Realm", "Configuration", "AdminUser", "Password"), "admin_password"),
    Secured("Server.Service.Connector.keystorePass", "tomcat/catalina-server.xml",
            ("Service", "Connector[keystorePass]"), "keystore_password", attr="keystorePass"),
    _ds("WSO2_CARBON_DB", MASTER),
    _ds("WSO2_USER_DB", MASTER),
    _ds("WSO2REGISTRY_DB", MASTER),
    _ds("BPS_DS", "datasources/bps-datasources.xml"),
    _ds("ACTIVITI_DB", "datasources/activiti-datasources.xml"),
)
ADMIN_ALIAS = "UserManager.AdminUser.Password"
VAULTED_FILES = tuple(dict.fromkeys(s.file for s in SECURED))


# --------------------------------------------------------------------------- the XML


def _targets(doc: _Doc, s: Secured) -> list[_El]:
    found = [doc.root]
    for step in s.path:
        nxt: list[_El] = []
        for el in found:
            if step.startswith("datasource:"):
                name = step.split(":", 1)[1]
                nxt += [d for d in el.children("datasource")
                        if any(doc.text_of(n) == name for n in d.children("name"))]
            elif step.endswith("]"):
                local, attr = step[:-1].split("[")
                nxt += [c for c in el.children(local) if doc.attr(c, attr) is not None]
            else:
                nxt += el.children(step)
        found = nxt
    return found


def alias_config(originals: dict[str, bytes]) -> dict[str, bytes]:
    """Pure: the configuration files with every secured value replaced by its alias, as the
    cipher tool leaves them. `originals` maps conf-relative names (ei_xml.CONF_FILES) to bytes;
    the other files are returned unchanged. Idempotent. Raises XmlConfigError when a value to
    secure is not where WSO2's files have it."""
    out = dict(originals)
    for file in VAULTED_FILES:
        doc = _Doc(file, out[file])
        for s in (x for x in SECURED if x.file == file):
            found = _targets(doc, s)
            if not found:
                raise XmlConfigError(file, s.path[-1], f"no {'/'.join(s.path)} to secure as "
                                     f"{s.alias}: is this WSO2 EI 6.6.0's {file}?")
            for i in range(len(found)):
                el = _targets(doc, s)[i]  # every edit re-parses: find it again
                if s.attr:
                    doc.set_attr(el, s.attr, PLACEHOLDER)
                    doc.set_attr(_targets(doc, s)[i], ALIAS_ATTR, s.alias, after=s.attr)
                else:
                    doc.set_text(el, PLACEHOLDER)
                    doc.set_attr(_targets(doc, s)[i], ALIAS_ATTR, s.alias)
        if doc.attr(doc.root, NS_ATTR) != NS:
            doc.set_attr(doc.root, NS_ATTR, NS)
        out[file] = doc.to_bytes()
    return out


def unalias_config(originals: dict[str, bytes], plaintexts: dict[str, str]) -> dict[str, bytes]:
    """Pure: the reverse, for `secure_vault = false` after it was on: each value that carries an
    alias gets its clear value back (`plaintexts`: alias -> value) and loses the alias (the
    server would otherwise use the text `password`). Files without aliases are unchanged."""
    out = dict(originals)
    for file in VAULTED_FILES:
        doc = _Doc(file, out[file])
        for s in (x for x in SECURED if x.file == file):
            for i in range(len(_targets(doc, s))):
                el = _targets(doc, s)[i]
                if doc.attr(el, ALIAS_ATTR) is None:
                    continue
                if s.attr:
                    doc.set_attr(el, s.attr, plaintexts[s.alias])
                else:
                    doc.set_text(el, plaintexts[s.alias])
                _drop_attr(doc, _targets(doc, s)[i], ALIAS_ATTR)
        # WSO2 ships the declaration in the datasources files only; the rest get theirs back
        if not file.startswith("datasources/") and "svns:" not in doc.text:
            _drop_attr(doc, doc.root, NS_ATTR)
        out[file] = doc.to_bytes()
    return out


def _drop_attr(doc: _Doc, el: _El, name: str) -> None:
    for m in _ATTR.finditer(doc.text, el.start + 1 + len(el.qname), el.start_end):
        if m.group("name") == name:
            return doc._splice(m.start(), m.end(), "")


def keystore_info(carbon_xml: bytes, carbon_home: str) -> tuple[str, str, str]:
    """(location, type, key alias) of the primary keystore in carbon.xml, `${carbon.home}`
    resolved as KeyStoreUtil.initializeCipher does."""
    doc = _Doc("carbon.xml", carbon_xml)
    ks = [k for sec in doc.root.children("Security") for k in sec.children("KeyStore")]
    if len(ks) != 1:
        raise VaultError("carbon.xml: expected one <Security><KeyStore>")
    vals = {c.local: (doc.text_of(c) or "").strip() for c in ks[0].children()}
    loc = vals.get("Location", "")
    if not loc:
        raise VaultError("carbon.xml: <Security><KeyStore><Location> is empty")
    if "}" in loc:
        loc = carbon_home + loc[loc.index("}") + 1:]
    elif not loc.startswith("/"):
        loc = f"{carbon_home}/{loc}"
    return loc, vals.get("Type") or "JKS", vals.get("KeyAlias") or "wso2carbon"


# --------------------------------------------------------------------------- the keystore


def _utf(data: bytes, i: int) -> tuple[str, int]:
    n = struct.unpack_from(">H", data, i)[0]
    return data[i + 2:i + 2 + n].decode("utf-8", "replace"), i + 2 + n


def keystore_certificate(data: bytes, password: str, alias: str) -> bytes:
    """The DER certificate of `alias` in a JKS (or PKCS12) keystore, after checking that
    `password` opens it (JKS: the store's keyed SHA-1 digest, as keytool checks it; so a wrong
    keystore password is refused before any node is told to use it)."""
    if data[:4] != b"\xfe\xed\xfe\xed":
        from cryptography.hazmat.primitives.serialization import pkcs12
        try:
            _key, cert, _more = pkcs12.load_key_and_certificates(data, password.encode())
        except ValueError:
            raise VaultError("the keystore does not open with secrets.keystore_password "
                             "(neither a JKS nor a PKCS12 store with that password)") from None
        if cert is None:
            raise VaultError("the PKCS12 keystore holds no certificate")
        from cryptography.hazmat.primitives.serialization import Encoding
        return cert.public_bytes(Encoding.DER)
    body, digest = data[:-20], data[-20:]
    want = hashlib.sha1(password.encode("utf-16-be") + b"Mighty Aphrodite" + body).digest()
    if not hmac.compare_digest(want, digest):
        raise VaultError("the keystore does not open with secrets.keystore_password (keystore "
                         "was tampered with, or password was incorrect)")
    version, count = struct.unpack_from(">II", data, 4)
    i = 12
    for _ in range(count):
        tag = struct.unpack_from(">I", data, i)[0]
        name, i = _utf(data, i + 4)
        i += 8  # timestamp
        certs = []
        if tag == 1:
            klen = struct.unpack_from(">I", data, i)[0]
            i += 4 + klen
            n = struct.unpack_from(">I", data, i)[0]
            i += 4
        else:
            n = 1
        for _c in range(n):
            if version == 2:
                _typ, i = _utf(data, i)
            clen = struct.unpack_from(">I", data, i)[0]
            certs.append(data[i + 4:i + 4 + clen])
            i += 4 + clen
        if name.lower() == alias.lower() and certs:
            return certs[0]
    raise VaultError(f"the keystore has no entry {alias!r} (carbon.xml <KeyAlias>)")


def encrypt(cert_der: bytes, plaintext: str) -> str:
    """RSA/ECB/PKCS1Padding with the certificate's public key, base64: the cipher tool's
    doEncryption. Randomized: the same input gives a new ciphertext each time."""
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import padding, rsa
    key = x509.load_der_x509_certificate(cert_der).public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise VaultError("the keystore's key is not RSA: WSO2's cipher tool needs an RSA key")
    data = plaintext.encode("utf-8")
    if len(data) > key.key_size // 8 - RSA_PKCS1_OVERHEAD:
        raise VaultError(f"a secret of {len(data)} bytes is too long for the keystore's "
                         f"{key.key_size}-bit RSA key")
    return base64.b64encode(key.encrypt(data, padding.PKCS1v15())).decode("ascii")


# --------------------------------------------------------------------------- the properties


def _prop_escape(s: str) -> str:
    """java.util.Properties.store's escaping (saveConvert) for ASCII text."""
    out = []
    for ch in s:
        if ch in "\\=:#!":
            out.append("\\" + ch)
        elif ch == " " and not out:
            out.append("\\ ")
        else:
            out.append(ch)
    return "".join(out)


def render_cipher_text(values: dict[str, str]) -> bytes:
    """cipher-text.properties from {alias: base64 ciphertext}, sorted by alias."""
    lines = ["# Secure Vault secrets, encrypted with the primary keystore's public key",
             "# (RSA/ECB/PKCS1Padding, base64) by bps-deploy as WSO2's cipher tool does."]
    lines += [f"{_prop_escape(a)}={_prop_escape(v)}" for a, v in sorted(values.items())]
    return ("\n".join(lines) + "\n").encode()


def render_secret_conf(profile_home: str, ks_location: str, ks_type: str, ks_alias: str) -> bytes:
    """secret-conf.properties with the keys of the cipher tool's writeToSecureConfPropertyFile;
    paths absolute (the cipher tool writes the keystore's absolute path too)."""
    props = (
        ("carbon.secretProvider", CARBON_SECRET_PROVIDER),
        ("secretRepositories", "file"),
        ("secretRepositories.file.provider", FILE_PROVIDER),
        ("secretRepositories.file.location", f"{profile_home}/conf/{CIPHER_TEXT}"),
        ("keystore.identity.location", ks_location),
        ("keystore.identity.type", ks_type),
        ("keystore.identity.alias", ks_alias),
        ("keystore.identity.store.password", "identity.store.password"),
        ("keystore.identity.store.secretProvider", DEFAULT_CALLBACK),
        ("keystore.identity.key.password", "identity.key.password"),
        ("keystore.identity.key.secretProvider", DEFAULT_CALLBACK),
    )
    lines = ["# Secure Vault configuration, written by bps-deploy as WSO2's cipher tool",
             "# (-Dconfigure) writes it. The keystore password reaches the server in",
             f"# {profile_home}/{PASSWORD_TMP} at every start (see the README)."]
    lines += [f"{k}={_prop_escape(v)}" for k, v in props]
    return ("\n".join(lines) + "\n").encode()


VAULT_OFF = (b"# Secure Vault is off for this cluster (bps-deploy: cluster.secure_vault = false).\n"
             b"# The configuration files hold their passwords in clear (0600).\n")


# --------------------------------------------------------------------------- what was encrypted


def digest(salt: str, alias: str, plaintext: str, keystore_sha256: str) -> str:
    """What the state file keeps of one encrypted value: a salted hash of alias, plaintext and
    the keystore it was encrypted with (never the plaintext; RSA ciphertexts differ on each
    run, so this is what tells a no-op from a change)."""
    h = hashlib.sha256()
    for part in (salt, alias, plaintext, keystore_sha256):
        h.update(part.encode() + b"\0")
    return h.hexdigest()
