"""Secure Vault on each EI node: facts, the pure plan, and the scripts it adds to `configure`.

The XML side (values replaced by `svns:secretAlias`) is deterministic and is part of the node's
rendered configuration (node_config.plan_node calls wso2.vault.alias_config). This module owns
what is not: `cipher-text.properties` (RSA encryption is randomized), `secret-conf.properties`,
the root-only file that holds the keystore password for unattended starts, and a root-only
state file with a salted digest of each value encrypted, so a no-op run decrypts nothing,
encrypts nothing and starts no JVM: it compares digests read in configure's one fact read.

How the keystore password reaches the server at every start (WSO2's DefaultSecretCallbackHandler
reads `<carbon.home>/password-tmp`, then overwrites and deletes it):
* under systemd: `LoadCredential=` hands PASSWORD_FILE to the unit, and an `ExecStartPre=` run
  AS THE SERVICE USER copies it into password-tmp; before every start, restarts by
  `Restart=always` and boots included (templates/wso2ei-bps.service.j2);
* elsewhere: the tool's own start (services.start_and_wait) writes password-tmp the same way,
  root reading its file, the service user writing (`password_tmp_script`).
"""
from __future__ import annotations

import base64
import secrets as _random
from dataclasses import dataclass, field

from ...engine import remote
from ...engine.inventory import Host, Inventory
from ...engine.remote import FileChange, FileSpec, FileState, q
from ...wso2 import vault as wv
from .. import cluster_ca

PASSWORD_FILE = f"{remote.STATE_DIR}/keystore-password"  # root 0600: the keystore password
STATE_FILE = f"{remote.STATE_DIR}/vault.state"  # root 0600: digests of what was encrypted
KEYSTORE_REL = "repository/resources/security/wso2carbon.jks"  # the profile's primary keystore


def enabled(inv: Inventory) -> bool:
    return inv.cluster.secure_vault


def conf_path(inv: Inventory, rel: str) -> str:
    return f"{inv.cluster.profile_home}/conf/{rel}"


def keystore_path(inv: Inventory) -> str:
    """The primary keystore the values are encrypted for: the node's own (cluster CA, PKCS12),
    else WSO2's shipped JKS."""
    if inv.certs.cluster_ca:
        return cluster_ca.node_keystore_path(inv)
    return f"{inv.cluster.profile_home}/{KEYSTORE_REL}"


def password_tmp(inv: Inventory) -> str:
    return f"{inv.cluster.profile_home}/{wv.PASSWORD_TMP}"


# --------------------------------------------------------------------------- facts


def probes(inv: Inventory, contents: bool = False) -> dict[str, str]:
    """Added to configure's one fact read (node_config.node_probes); the keystore's bytes only
    when something has to be encrypted."""
    return {
        "vault_state": f"cat {STATE_FILE} 2>/dev/null || true",
        "vault:secret_conf": remote.probe_file(conf_path(inv, wv.SECRET_CONF)),
        "vault:cipher_text": remote.probe_file(conf_path(inv, wv.CIPHER_TEXT)),
        "vault:password": remote.probe_file(PASSWORD_FILE),
        "vault:keystore": remote.probe_file(keystore_path(inv), content=contents),
    }


@dataclass
class State:
    """The state file: what the tool encrypted last time, as digests."""
    salt: str = ""
    keystore: str = ""  # sha256 of the keystore the values were encrypted for
    files: dict[str, str] = field(default_factory=dict)  # cipher-text / secret-conf -> sha256
    aliases: dict[str, str] = field(default_factory=dict)  # alias -> digest

    def render(self) -> str:
        lines = ["bps-deploy vault v1", f"salt {self.salt}", f"keystore {self.keystore}"]
        lines += [f"file {k} {v}" for k, v in sorted(self.files.items())]
        lines += [f"alias {k} {v}" for k, v in sorted(self.aliases.items())]
        return "\n".join(lines) + "\n"


def parse_state(out: str) -> State | None:
    lines = out.strip().splitlines()
    if not lines or lines[0] != "bps-deploy vault v1":
        return None
    st = State()
    for ln in lines[1:]:
        f = ln.split()
        if f[:1] == ["salt"] and len(f) == 2:
            st.salt = f[1]
        elif f[:1] == ["keystore"] and len(f) == 2:
            st.keystore = f[1]
        elif f[:1] == ["file"] and len(f) == 3:
            st.files[f[1]] = f[2]
        elif f[:1] == ["alias"] and len(f) == 3:
            st.aliases[f[1]] = f[2]
    return st


@dataclass
class VaultFacts:
    state: State | None
    secret_conf: FileState | None
    cipher_text: FileState | None
    password: FileState | None
    keystore: FileState | None  # with content when read with contents=True


def parse_facts(facts: dict[str, remote.Fact]) -> VaultFacts:
    return VaultFacts(parse_state(facts["vault_state"].out),
                      *(remote.parse_file_probe(facts[f"vault:{k}"].out)
                        for k in ("secret_conf", "cipher_text", "password", "keystore")))


# --------------------------------------------------------------------------- plan


def precheck(inv: Inventory, facts: dict[str, remote.Fact], carbon_xml: bytes | None
             ) -> str | None:
    """Configure's check before it writes any alias: WSO2's shipped keystore exists and opens
    with secrets.keystore_password (the cluster CA's keystore is the tool's own, made with that
    password by node_keys before the vault step)."""
    if not enabled(inv) or inv.certs.cluster_ca or carbon_xml is None \
            or "vault:keystore" not in facts:
        return None
    ks = remote.parse_file_probe(facts["vault:keystore"].out)
    try:
        if ks is None:
            raise wv.VaultError(f"the primary keystore {keystore_path(inv)} is missing: Secure "
                                "Vault encrypts with it (or set cluster.secure_vault = false)")
        if ks.content is not None:
            _, _, alias = wv.keystore_info(carbon_xml, inv.cluster.profile_home)
            wv.keystore_certificate(ks.content, inv.secrets.keystore_password, alias)
    except wv.VaultError as e:
        return f"Secure Vault: {e}"
    return None


def plaintexts(inv: Inventory) -> dict[str, str]:
    return {s.alias: getattr(inv.secrets, s.secret) for s in wv.SECURED}


def config_files(inv: Inventory, wanted: dict[str, bytes]) -> dict[str, bytes]:
    """The node's rendered configuration with the passwords as aliases (on), or with any alias
    left from an earlier run turned back into its clear value (off)."""
    if enabled(inv):
        return wv.alias_config(wanted)
    return wv.unalias_config(wanted, plaintexts(inv))


def _password_spec(inv: Inventory) -> FileSpec:
    return FileSpec(PASSWORD_FILE, (inv.secrets.keystore_password + "\n").encode(),
                    "root", "root", 0o600, sensitive=True)


def changed_aliases(inv: Inventory, f: VaultFacts) -> list[str]:
    """Aliases whose encrypted value is not what the secrets say (all of them when the
    keystore, the cipher-text file or the state differ from what was written)."""
    st = f.state
    user = inv.cluster.service_user
    ct = f.cipher_text
    if (st is None or f.keystore is None or st.keystore != f.keystore.sha256 or ct is None
            or st.files.get("cipher-text") != ct.sha256
            or (ct.owner, ct.group, ct.mode) != (user, user, 0o600)):
        return [s.alias for s in wv.SECURED]
    want = plaintexts(inv)
    return [a for a, pt in want.items()
            if st.aliases.get(a) != wv.digest(st.salt, a, pt, st.keystore)]


def up_to_date(inv: Inventory, f: VaultFacts) -> bool:
    """Nothing to encrypt or write (decided without the keystore's or any file's bytes)."""
    if not enabled(inv):
        return f.state is None
    pw = f.password
    return (not changed_aliases(inv, f) and pw is not None
            and pw.sha256 == _password_spec(inv).sha256 and (pw.owner, pw.mode) == ("root", 0o600)
            and f.secret_conf is not None and f.state is not None
            and f.state.files.get("secret-conf") == f.secret_conf.sha256)


@dataclass
class VaultPlan:
    files: list[FileChange] = field(default_factory=list)
    state: str = ""  # the state file to write ("" = leave it; OFF = remove it)
    restart_reasons: list[str] = field(default_factory=list)
    scrub: bool = False  # remove backups of the secured files made before the switch
    error: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.files or self.state)

    def describe(self) -> list[str]:
        out = [c.describe() for c in self.files]
        if self.scrub:
            out.append("remove the backups of the secured files that hold clear passwords")
        if self.state == OFF:
            out.append(f"remove {PASSWORD_FILE} and {STATE_FILE} (Secure Vault off)")
        return out


OFF = "off"


def plan_vault(inv: Inventory, node: Host, f: VaultFacts, carbon_xml: bytes | None,
               new_salt: str | None = None) -> VaultPlan:
    """Pure (the salt for a first encryption is an argument): the vault files of one node.

    `carbon_xml` is the node's carbon.xml as it will be written (None when configure did not
    fetch the files: then only the digests are compared, see up_to_date)."""
    plan = VaultPlan()
    cl = inv.cluster
    user = cl.service_user
    sc_path = conf_path(inv, wv.SECRET_CONF)
    if not enabled(inv):
        if f.state is not None:  # it was on: the server must no longer look for password-tmp
            plan.files = remote.plan_files(
                [FileSpec(sc_path, wv.VAULT_OFF, user, user, 0o644)], {sc_path: f.secret_conf})
            plan.state, plan.restart_reasons = OFF, ["secret-conf.properties"]
        return plan
    if up_to_date(inv, f):
        return plan
    if carbon_xml is None or f.keystore is None or f.keystore.content is None:
        if f.keystore is None:
            plan.error = (f"the primary keystore {keystore_path(inv)} is missing: Secure Vault "
                          "encrypts with it (or set cluster.secure_vault = false)")
        else:
            plan.error = "internal: the vault plan needs carbon.xml and the keystore's bytes"
        return plan
    try:
        loc, ks_type, ks_alias = wv.keystore_info(carbon_xml, cl.profile_home)
        if loc != keystore_path(inv):
            raise wv.VaultError(f"carbon.xml names the primary keystore {loc}, the tool "
                                f"expects {keystore_path(inv)}")
        secret_conf = wv.render_secret_conf(cl.profile_home, loc, ks_type, ks_alias)
        st = f.state or State()
        redo = changed_aliases(inv, f)
        if redo:
            cert = wv.keystore_certificate(f.keystore.content, inv.secrets.keystore_password,
                                           ks_alias)
            st = State(salt=(f.state.salt if f.state and f.state.salt else
                             new_salt or _random.token_hex(16)), keystore=f.keystore.sha256)
            values = {a: wv.encrypt(cert, pt) for a, pt in plaintexts(inv).items()}
            st.aliases = {a: wv.digest(st.salt, a, pt, st.keystore)
                          for a, pt in plaintexts(inv).items()}
            cipher = wv.render_cipher_text(values)
        else:
            cipher = None
    except wv.VaultError as e:
        plan.error = f"Secure Vault on {node.name}: {e} (nothing written)"
        return plan
    specs = [_password_spec(inv), FileSpec(sc_path, secret_conf, user, user, 0o600)]
    states = {PASSWORD_FILE: f.password, sc_path: f.secret_conf}
    ct_path = conf_path(inv, wv.CIPHER_TEXT)
    if cipher is not None:
        specs.append(FileSpec(ct_path, cipher, user, user, 0o600, sensitive=True))
        states[ct_path] = f.cipher_text
        st.files["cipher-text"] = FileSpec(ct_path, cipher).sha256
    st.files["secret-conf"] = FileSpec(sc_path, secret_conf).sha256
    plan.files = remote.plan_files(specs, states)
    plan.state = st.render()
    plan.scrub = True
    if set(redo) - {wv.ADMIN_ALIAS} or any(c.spec.path == sc_path for c in plan.files):
        # the server reads them at start; the admin password alone is a first-start seed
        plan.restart_reasons.append("cipher-text.properties" if redo else "secret-conf.properties")
    return plan


# --------------------------------------------------------------------------- scripts


def _backup_name(path: str) -> str:
    """A file's backup name without the stamp, as backups.sh's backup_name makes it."""
    return path.lstrip("/").replace("/", "%")


def lib(inv: Inventory) -> str:
    """tasks/scripts/vault.sh for this cluster: password_tmp, scrub_unvaulted, scrub_plain."""
    return remote.script("vault.sh", SERVICE_USER=inv.cluster.service_user,
                         PASSWORD_FILE=PASSWORD_FILE, PASSWORD_TMP=password_tmp(inv),
                         BACKUP_DIR=remote.BACKUP_DIR)


def apply_script(inv: Inventory, plan: VaultPlan) -> str:
    """After configure's file writes (which back up every replaced file): the state file, and
    the removal of backups that hold passwords in clear (made before the switch: a secured
    file's backup without our alias, the shipped cipher-text.properties with `[value]`s)."""
    out = ""
    if plan.scrub:
        out += lib(inv)
        # vaulted = carries one of OUR aliases for that file (WSO2's own master-datasources.xml
        # has a commented example with another alias)
        for rel in wv.VAULTED_FILES:
            mark = 'svns:secretAlias="%s"' % next(s.alias for s in wv.SECURED if s.file == rel)
            out += f"scrub_unvaulted {q(_backup_name(conf_path(inv, rel)))} {q(mark)}\n"
        out += f"scrub_plain {q(_backup_name(conf_path(inv, wv.CIPHER_TEXT)))}\n"
    if plan.state == OFF:
        out += f"rm -f -- {PASSWORD_FILE} {STATE_FILE}\n"
    elif plan.state:
        b64 = base64.b64encode(plan.state.encode()).decode()
        out += (f"mkdir -p {remote.STATE_DIR}; (umask 077; echo {b64} | base64 -d > "
                f"{STATE_FILE}.tmp) && mv -f {STATE_FILE}.tmp {STATE_FILE}\n")
    return out


def password_tmp_script(inv: Inventory) -> str:
    """Before a start without systemd: the keystore password into password-tmp, read by root
    from its own file, written by the service user (never root writing in that user's folder)."""
    return lib(inv) + "password_tmp\n" if enabled(inv) else ""
