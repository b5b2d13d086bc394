"""`fab certs`: the LB's TLS certificate (openssl on the LB) and its import into every node's
truststore (keytool on the nodes) -- guide §5.2, with today's key sizes.

LB: an RSA key (cluster certs.key_bits, default 3072; created on the LB, never leaves it, 0600
root), a request with CN = the service name and subjectAltNames for the service and console
names, and a self-signed certificate that keeps those SANs (`-extfile`); or the user's own
certificate and key (certs.cert_file / certs.key_file), uploaded and checked that they match each
other and the names. An existing certificate is kept while it matches the key and the names and
is valid for more than certs.renew_before_days; `--renew` forces a new one.

Nodes: keytool imports the certificate (alias = service name) into the profile's
client-truststore.jks (required) and into <EI_HOME>/repository/resources/security/ when that one
exists. The store password never appears on a command line (`-storepass:file` with a 0600 temp
file removed afterwards). No JVM on a no-op run: after an import the store's sha256 and the
certificate's fingerprint are remembered in /var/lib/bps-deploy/ and keytool runs only when either
differs. A changed truststore marks the node as pending restart.
"""
from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone

from invoke import task

from ..engine import remote
from ..engine.cli import COMMON_HELP, session
from ..engine.inventory import Inventory
from ..engine.remote import HostSession, q
from ..engine.report import StepResult

STEP = "certs"
TRUSTSTORE_STATE = f"{remote.STATE_DIR}/truststore.state"
_PEM_RE = re.compile(rb"-----BEGIN CERTIFICATE-----\s+(.+?)\s+-----END CERTIFICATE-----", re.S)


# --------------------------------------------------------------------------- pure helpers


def cert_fingerprint(pem: bytes) -> str:
    """SHA-256 fingerprint of the first certificate in a PEM, as keytool prints it (AB:CD:...)."""
    m = _PEM_RE.search(pem)
    if not m:
        raise ValueError("no PEM certificate found")
    der = base64.b64decode(b"".join(m.group(1).split()))
    h = hashlib.sha256(der).hexdigest().upper()
    return ":".join(h[i:i + 2] for i in range(0, len(h), 2))


def truststores(inv: Inventory) -> list[tuple[str, bool]]:
    """(path, required) of the truststores to import into on each node."""
    return [(f"{inv.cluster.profile_home}/repository/resources/security/client-truststore.jks",
             True),
            (f"{inv.cluster.ei_home}/repository/resources/security/client-truststore.jks", False)]


@dataclass
class CertInfo:
    """What openssl says about the LB's certificate and key."""

    cert_present: bool = False
    key_present: bool = False
    subject_cn: str | None = None
    sans: tuple[str, ...] = ()
    not_after: datetime | None = None
    cert_pub: str | None = None  # sha256 of the cert's public key (DER)
    key_pub: str | None = None  # sha256 of the key's public key (DER)
    key_bits: int | None = None
    key_mode: int | None = None
    key_owner: str | None = None
    fingerprint: str | None = None
    pem: bytes | None = None
    problems: list[str] = field(default_factory=list)


_MONTHS = {m: i for i, m in enumerate(
    "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split(), 1)}


def parse_enddate(text: str) -> datetime | None:
    """'notAfter=Nov 25 13:00:00 2026 GMT' -> aware datetime (no locale dependence)."""
    m = re.search(r"notAfter=(\w{3})\s+(\d+)\s+(\d+):(\d+):(\d+)\s+(\d{4})", text or "")
    if not m or m.group(1) not in _MONTHS:
        return None
    mon, day, hh, mm, ss, year = m.groups()
    return datetime(int(year), _MONTHS[mon], int(day), int(hh), int(mm), int(ss),
                    tzinfo=timezone.utc)


def parse_subject_cn(text: str) -> str | None:
    """From `-subject -nameopt RFC2253` ('subject=CN=ei.wso2.com,O=x') or the default form."""
    m = re.search(r"subject=.*?CN\s*=\s*([^,/\n]+)", text or "")
    return m.group(1).strip() if m else None


def parse_sans(text: str) -> tuple[str, ...]:
    """DNS names from `openssl x509 -ext subjectAltName` output."""
    out = []
    for m in re.finditer(r"DNS:([^,\s]+)", text or ""):
        out.append(m.group(1))
    return tuple(out)


def parse_key_bits(text: str) -> int | None:
    m = re.search(r"Public-Key:\s*\((\d+) bit\)", text or "")
    return int(m.group(1)) if m else None


LB_CERT_PROBE = r"""
c={cert}; k={key}
if [ -s "$c" ]; then
  echo CERT=present
  openssl x509 -in "$c" -noout -subject -nameopt RFC2253 -enddate -fingerprint -sha256 2>&1
  openssl x509 -in "$c" -noout -ext subjectAltName 2>/dev/null
  openssl x509 -in "$c" -noout -text 2>/dev/null | grep -m1 'Public-Key:'
  echo "CERTPUB=$(openssl x509 -in "$c" -noout -pubkey 2>/dev/null | openssl pkey -pubin -outform DER 2>/dev/null | sha256sum | cut -d' ' -f1)"
  echo "PEM=$(base64 -w0 < "$c")"
else
  echo CERT=missing
fi
if [ -s "$k" ]; then
  echo KEY=present
  echo "KEYSTAT=$(stat -c '%a %U' "$k")"
  echo "KEYPUB=$(openssl pkey -in "$k" -pubout -outform DER 2>/dev/null | sha256sum | cut -d' ' -f1)"
else
  echo KEY=missing
fi
"""

_EMPTY_SHA = hashlib.sha256(b"").hexdigest()


def lb_cert_probe(inv: Inventory) -> str:
    return LB_CERT_PROBE.format(cert=q(inv.certs.cert_path), key=q(inv.certs.key_path))


def parse_cert_probe(out: str) -> CertInfo:
    """Pure: parse LB_CERT_PROBE's output."""
    info = CertInfo()
    kv = {}
    for line in out.splitlines():
        k, sep, v = line.partition("=")
        if sep and k.isupper():
            kv.setdefault(k, v)
    info.cert_present = kv.get("CERT") == "present"
    info.key_present = kv.get("KEY") == "present"
    if info.cert_present:
        info.subject_cn = parse_subject_cn(out)
        info.sans = parse_sans(out)
        info.not_after = parse_enddate(out)
        info.key_bits = parse_key_bits(out)
        pub = kv.get("CERTPUB", "")
        info.cert_pub = pub if pub and pub != _EMPTY_SHA else None
        if kv.get("PEM"):
            try:
                info.pem = base64.b64decode(kv["PEM"])
                info.fingerprint = cert_fingerprint(info.pem)
            except (ValueError, base64.binascii.Error):
                info.problems.append("certificate is not a PEM certificate")
        if info.not_after is None:
            info.problems.append("openssl cannot read the certificate")
    if info.key_present:
        st = kv.get("KEYSTAT", "").split()
        if len(st) == 2:
            info.key_mode, info.key_owner = int(st[0], 8), st[1]
        pub = kv.get("KEYPUB", "")
        info.key_pub = pub if pub and pub != _EMPTY_SHA else None
        if info.key_pub is None:
            info.problems.append("openssl cannot read the key")
    return info


def days_left(info: CertInfo, now: datetime) -> int | None:
    if not info.not_after:
        return None
    return int((info.not_after - now).total_seconds() // 86400)


@dataclass
class LbCertPlan:
    action: str  # "keep" | "generate" | "upload" | "fix-key-mode"
    reasons: list[str] = field(default_factory=list)


def plan_lb_cert(info: CertInfo, inv: Inventory, now: datetime, renew: bool = False,
                 user_files: tuple[bytes, bytes] | None = None,
                 remote_user_sha: tuple[str | None, str | None] = (None, None)) -> LbCertPlan:
    """Pure: keep, (re)generate or upload the LB's certificate, and why."""
    cl, cs = inv.cluster, inv.certs
    if user_files is not None:
        crt, key = user_files
        want = (hashlib.sha256(crt).hexdigest(), hashlib.sha256(key).hexdigest())
        if renew:
            return LbCertPlan("upload", ["--renew given (your own certificate is re-uploaded)"])
        if remote_user_sha != want:
            return LbCertPlan("upload", ["your certificate/key differ from the LB's copies"])
        if info.key_mode != 0o600 or info.key_owner != "root":
            return LbCertPlan("fix-key-mode", [f"key mode/owner is {info.key_mode and oct(info.key_mode)} "
                                               f"{info.key_owner}, want 0600 root"])
        return LbCertPlan("keep", ["your certificate is on the LB"])
    reasons = []
    if renew:
        reasons.append("--renew given")
    if not info.cert_present:
        reasons.append(f"no certificate at {cs.cert_path}")
    if not info.key_present:
        reasons.append(f"no key at {cs.key_path}")
    reasons += info.problems
    if info.cert_present and info.key_present and info.cert_pub and info.key_pub \
            and info.cert_pub != info.key_pub:
        reasons.append("certificate does not match the key")
    if info.cert_present and not info.problems:
        if info.subject_cn != cl.service_name:
            reasons.append(f"CN is {info.subject_cn!r}, want {cl.service_name!r}")
        missing = [n for n in (cl.service_name, cl.console_name) if n not in info.sans]
        if missing:
            reasons.append(f"subjectAltName lacks {', '.join(missing)}")
        left = days_left(info, now)
        if left is not None and left <= cs.renew_before_days:
            reasons.append(f"expires in {left} day(s) (renew_before_days = "
                           f"{cs.renew_before_days})")
        if info.key_bits is not None and info.key_bits < cs.key_bits:
            reasons.append(f"key is {info.key_bits} bits, want {cs.key_bits}")
    if reasons:
        return LbCertPlan("generate", reasons)
    if info.key_mode != 0o600 or info.key_owner != "root":
        return LbCertPlan("fix-key-mode", [f"key mode/owner is "
                                           f"{'%04o' % info.key_mode if info.key_mode else '?'} "
                                           f"{info.key_owner}, want 0600 root"])
    left = days_left(info, now)
    return LbCertPlan("keep", [f"certificate valid for {left} more day(s), matches the key and "
                               "the names"])


# --------------------------------------------------------------------------- LB scripts


def _backup_lines(inv: Inventory, stamp: str) -> str:
    """Back up the LB's certificate and key (root's own folder) like every managed file."""
    lines = [remote.backups_lib(stamp, inv.cluster.backups_keep).rstrip("\n")]
    for p in (inv.certs.cert_path, inv.certs.key_path):
        lines.append(f"if [ -f {q(p)} ]; then bak=$(backup_name {q(p)}); cat {q(p)} > \"$bak\"; "
                     "prune_backups \"$bak\"; fi")
    return "\n".join(lines) + "\n"


def generate_script(inv: Inventory, stamp: str) -> str:
    """Key, request and self-signed certificate on the LB; checked, then moved into place."""
    cl, cs = inv.cluster, inv.certs
    d = q(cs.dir)
    cnf = (f"[req]\nprompt = no\ndistinguished_name = dn\nreq_extensions = ext\n"
           f"[dn]\nCN = {cl.service_name}\n"
           f"[ext]\nsubjectAltName = DNS:{cl.service_name},DNS:{cl.console_name}\n"
           f"basicConstraints = critical,CA:FALSE\nkeyUsage = critical,digitalSignature,"
           f"keyEncipherment\nextendedKeyUsage = serverAuth\n")
    return f"""set -e
umask 077
mkdir -p {d}; chmod 755 {d}
t=$(mktemp -d {d}/.bps-certs.XXXXXX)
trap 'rm -rf "$t"' EXIT
cat > "$t/req.cnf" <<'__BPS_EOF__'
{cnf}__BPS_EOF__
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:{int(cs.key_bits)} -out "$t/server.key" 2>/dev/null
openssl req -new -sha256 -key "$t/server.key" -config "$t/req.cnf" -out "$t/server.csr"
# `x509 -req` drops the request's extensions: give them again with -extfile
openssl x509 -req -sha256 -days {int(cs.days)} -in "$t/server.csr" -signkey "$t/server.key" \\
  -extfile "$t/req.cnf" -extensions ext -out "$t/server.crt" 2>/dev/null
for n in {q(cl.service_name)} {q(cl.console_name)}; do
  openssl x509 -in "$t/server.crt" -noout -checkhost "$n" | grep -q 'does match' \\
    || {{ echo "new certificate does not cover $n" >&2; exit 1; }}
done
{_backup_lines(inv, stamp)}chown root:root "$t/server.key" "$t/server.crt" "$t/server.csr"
chmod 600 "$t/server.key"; chmod 644 "$t/server.crt" "$t/server.csr"
mv -f "$t/server.key" {q(cs.key_path)}
mv -f "$t/server.crt" {q(cs.cert_path)}
mv -f "$t/server.csr" {q(cs.dir + '/server.csr')}
echo generated
"""


def upload_script(inv: Inventory, stamp: str, crt: bytes, key: bytes) -> str:
    """Upload the user's certificate and key (on stdin, base64); check they match each other
    and the names before they replace anything."""
    cl, cs = inv.cluster, inv.certs
    d = q(cs.dir)
    return f"""set -e
umask 077
mkdir -p {d}; chmod 755 {d}
t=$(mktemp -d {d}/.bps-certs.XXXXXX)
trap 'rm -rf "$t"' EXIT
base64 -d > "$t/server.crt" <<'__BPS_EOF__'
{base64.encodebytes(crt).decode()}__BPS_EOF__
base64 -d > "$t/server.key" <<'__BPS_EOF__'
{base64.encodebytes(key).decode()}__BPS_EOF__
openssl x509 -in "$t/server.crt" -noout >/dev/null 2>&1 \\
  || {{ echo "certs.cert_file is not a PEM certificate" >&2; exit 1; }}
a=$(openssl x509 -in "$t/server.crt" -noout -pubkey | openssl pkey -pubin -outform DER | sha256sum)
b=$(openssl pkey -in "$t/server.key" -pubout -outform DER 2>/dev/null | sha256sum) \\
  || {{ echo "certs.key_file is not a readable, unencrypted private key" >&2; exit 1; }}
[ "$a" = "$b" ] || {{ echo "certs.cert_file and certs.key_file do not match each other" >&2; exit 1; }}
for n in {q(cl.service_name)} {q(cl.console_name)}; do
  openssl x509 -in "$t/server.crt" -noout -checkhost "$n" | grep -q 'does match' \\
    || {{ echo "certs.cert_file does not cover the name $n" >&2; exit 1; }}
done
{_backup_lines(inv, stamp)}chown root:root "$t/server.key" "$t/server.crt"
chmod 600 "$t/server.key"; chmod 644 "$t/server.crt"
mv -f "$t/server.key" {q(cs.key_path)}
mv -f "$t/server.crt" {q(cs.cert_path)}
echo uploaded
"""


def reload_nginx_script() -> str:
    """Reload nginx (after nginx -t) if it runs; say what happened on stdout."""
    from .lb import NGINX_RUNNING, nginx_service_script
    return f"""if [ "$( {NGINX_RUNNING} )" != running ]; then echo 'nginx not running'; exit 0; fi
if ! vout=$(nginx -t 2>&1); then echo "$vout" >&2; echo 'nginx -t failed: not reloaded' >&2; exit 3; fi
sd=no; [ -d /run/systemd/system ] && sd=yes
if [ $sd = yes ]; then {nginx_service_script('reload', True).strip()}
else {nginx_service_script('reload', False).strip()}
fi
"""


# --------------------------------------------------------------------------- LB step


def read_lb_cert(s: HostSession, inv: Inventory, with_user_files: bool = False) -> tuple:
    probes = {"cert": lb_cert_probe(inv)}
    if with_user_files:
        probes["crt_sha"] = remote.probe_file(inv.certs.cert_path)
        probes["key_sha"] = remote.probe_file(inv.certs.key_path)
    f = remote.read_facts(s, probes)
    info = parse_cert_probe(f["cert"].out)
    shas = (None, None)
    if with_user_files:
        a, b = (remote.parse_file_probe(f["crt_sha"].out), remote.parse_file_probe(f["key_sha"].out))
        shas = (a.sha256 if a else None, b.sha256 if b else None)
    return info, shas


def _user_files(inv: Inventory) -> tuple[bytes, bytes] | None:
    cs = inv.certs
    if cs.cert_file is None and cs.key_file is None:
        return None
    if cs.cert_file is None or cs.key_file is None:
        raise remote.RemoteError("certs.cert_file and certs.key_file go together: give both "
                                 "or neither")
    return cs.cert_file.read_bytes(), cs.key_file.read_bytes()


@dataclass
class LbCertOutcome:
    ok: bool
    changed: bool = False
    pem: bytes | None = None  # the certificate the nodes must trust (None in check mode if new)
    fingerprint: str | None = None


def lb_cert(run, s: HostSession, renew: bool, out: LbCertOutcome) -> StepResult:
    inv = run.inv
    user = _user_files(inv)
    info, shas = read_lb_cert(s, inv, with_user_files=user is not None)
    plan = plan_lb_cert(info, inv, datetime.now(timezone.utc), renew, user, shas)
    out.pem, out.fingerprint = info.pem, info.fingerprint
    if plan.action == "keep":
        out.ok = True
        return StepResult(s.name, STEP, "ok", f"{plan.reasons[0]}; fingerprint "
                                              f"{(info.fingerprint or '?')[:23]}...")
    desc = {"generate": f"new RSA {inv.certs.key_bits} key and self-signed certificate "
                        f"({inv.certs.days} days) for {inv.cluster.service_name}, "
                        f"{inv.cluster.console_name}",
            "upload": "upload your certificate and key",
            "fix-key-mode": f"chmod 600 / chown root {inv.certs.key_path}"}[plan.action]
    changes = [f"{desc}: {'; '.join(plan.reasons)}"]
    if plan.action != "fix-key-mode":
        changes.append("reload nginx if it runs (after nginx -t)")
    if run.check:
        out.ok = True
        out.changed = plan.action != "fix-key-mode"
        if out.changed:
            out.pem = out.fingerprint = None
        return StepResult(s.name, STEP, "changed", "would change (check mode)", changes)
    if plan.action == "fix-key-mode":
        remote.run_script(s, f"chown root:root {q(inv.certs.key_path)}; "
                             f"chmod 600 {q(inv.certs.key_path)}\n", check=True,
                          what="fix key mode")
        out.ok = True
        return StepResult(s.name, STEP, "changed", "", changes)
    script = (generate_script(inv, run.stamp) if plan.action == "generate"
              else upload_script(inv, run.stamp, *user))
    res = remote.run_script(s, script, what="certificate")
    if not res.ok:
        return StepResult(s.name, STEP, "failed", f"{plan.action} failed, the old certificate "
                          f"and key are untouched: {(res.stderr or res.stdout).strip()[-800:]}")
    info, _ = read_lb_cert(s, inv)
    if not info.pem or info.problems:
        return StepResult(s.name, STEP, "failed", "the new certificate cannot be read back: "
                          + "; ".join(info.problems))
    out.ok, out.changed, out.pem, out.fingerprint = True, True, info.pem, info.fingerprint
    rl = remote.run_script(s, reload_nginx_script(), what="reload nginx")
    if not rl.ok:
        return StepResult(s.name, STEP, "failed", "certificate replaced but nginx was not "
                          "reloaded: " + (rl.stderr or rl.stdout).strip()[-800:], changes)
    changes[-1] = ("nginx reloaded" if "not running" not in rl.stdout
                   else "nginx not running: not reloaded")
    return StepResult(s.name, STEP, "changed", f"fingerprint {info.fingerprint}", changes)


# --------------------------------------------------------------------------- nodes


@dataclass
class StoreFacts:
    path: str
    required: bool
    state: remote.FileState | None  # None = missing
    remembered: tuple[str, str] | None  # (store sha256, cert fingerprint) after our last import


def parse_state_file(text: str) -> dict[str, tuple[str, str]]:
    """Lines '<store sha256> <fingerprint> <path>' -> {path: (sha, fp)}."""
    out = {}
    for line in (text or "").splitlines():
        parts = line.split(None, 2)
        if len(parts) == 3:
            out[parts[2]] = (parts[0], parts[1])
    return out


def read_node_facts(s: HostSession, inv: Inventory) -> tuple[list[StoreFacts], bool]:
    probes = {f"store:{p}": remote.probe_file(p) for p, _ in truststores(inv)}
    probes["state"] = f"cat {TRUSTSTORE_STATE} 2>/dev/null || true"
    jh = inv.cluster.java_home
    probes["keytool"] = (f"test -x {q(jh + '/bin/keytool')} && echo found || echo missing"
                         if jh else
                         "if [ -n \"${JAVA_HOME:-}\" ] && [ -x \"$JAVA_HOME/bin/keytool\" ]; then "
                         "echo found; elif command -v keytool >/dev/null; then echo found; "
                         "else echo missing; fi")
    f = remote.read_facts(s, probes)
    remembered = parse_state_file(f["state"].out)
    stores = [StoreFacts(p, req, remote.parse_file_probe(f[f"store:{p}"].out), remembered.get(p))
              for p, req in truststores(inv)]
    return stores, f["keytool"].out.strip() == "found"


@dataclass
class NodePlan:
    error: str | None = None
    work: list[str] = field(default_factory=list)  # store paths that need keytool
    skipped: list[str] = field(default_factory=list)  # optional stores that do not exist
    up_to_date: list[str] = field(default_factory=list)


def plan_node(stores: list[StoreFacts], fingerprint: str | None, keytool: bool) -> NodePlan:
    """Pure: which truststores need keytool (the remembered checksum tells the others apart)."""
    plan = NodePlan()
    missing = [st.path for st in stores if st.required and st.state is None]
    if missing:
        plan.error = (f"truststore {missing[0]} is missing: is the EI installed at "
                      "cluster.ei_home on this node?")
        return plan
    for st in stores:
        if st.state is None:
            plan.skipped.append(st.path)
        elif fingerprint and st.remembered == (st.state.sha256, fingerprint):
            plan.up_to_date.append(st.path)
        else:
            plan.work.append(st.path)
    if plan.work and not keytool:
        plan.error = "keytool not found (no JAVA_HOME/bin/keytool, none on PATH): install a JDK"
    return plan


def import_script(stores: list[str], pem: bytes, fingerprint: str, alias: str, password: str,
                  service_user: str, ei_home: str, stamp: str,
                  pending_reason: str = "certs: LB certificate imported",
                  keep: int = remote.BACKUPS_KEEP, java_home: str | None = None) -> str:
    """keytool on the node, as the service user (tasks/scripts/truststore_import.sh): compare
    the fingerprint under `alias`; replace only if different, in a copy that is checked before
    it replaces the store. The password travels in this script (stdin) into a 0600 file in a
    private temp folder, never into argv."""
    head = remote.backups_lib(stamp, keep) + remote.script(
        "truststore_import.sh", SERVICE_USER=service_user, EI_HOME=ei_home, ALIAS=alias, FINGERPRINT=fingerprint,
        STATE_FILE=TRUSTSTORE_STATE, PENDING_FILE=remote.PENDING_RESTART,
        PENDING_REASON=pending_reason, JAVA_HOME=java_home or "")
    pw64 = base64.b64encode(password.encode()).decode()
    return (head +
            f"base64 -d > \"$w/pw\" <<'__BPS_EOF__'\n{pw64}\n__BPS_EOF__\n"
            f"cat > \"$w/lb.crt\" <<'__BPS_EOF__'\n{pem.decode().strip()}\n__BPS_EOF__\n"
            "prepare\n" + "".join(f"import_store {q(p)}\n" for p in stores) + "finish\n")


def node_certs(run, s: HostSession, pem: bytes | None, fingerprint: str | None,
               lb_changed: bool) -> StepResult:
    inv = run.inv
    stores, keytool = read_node_facts(s, inv)
    plan = plan_node(stores, fingerprint, keytool)
    if plan.error:
        return StepResult(s.name, STEP, "failed", plan.error)
    if not plan.work:
        return StepResult(s.name, STEP, "ok", "truststore(s) unchanged since the last import of "
                          "this certificate (no keytool run)")
    changes = [f"import the LB certificate (alias {inv.cluster.service_name}) into {p} if its "
               "fingerprint differs" for p in plan.work]
    if run.check:
        return StepResult(s.name, STEP, "changed", "would check/import (check mode)", changes)
    if not pem or not fingerprint:
        return StepResult(s.name, STEP, "failed", "no LB certificate to import")
    script = import_script(plan.work, pem, fingerprint, inv.cluster.service_name,
                           inv.secrets.truststore_password or "", inv.cluster.service_user,
                           inv.cluster.ei_home, run.stamp,
                           f"{run.stamp} certs: LB certificate imported into the truststore",
                           inv.cluster.backups_keep, inv.cluster.java_home)
    res = remote.run_script(s, script, what="truststore import")
    imported = [ln.split(" ", 1)[1] for ln in res.stdout.splitlines()
                if ln.startswith("IMPORTED ")]
    errors = [ln[len("ERROR "):] for ln in res.stderr.splitlines() if ln.startswith("ERROR ")]
    if not res.ok:
        detail = "; ".join(errors) or (res.stderr or res.stdout).strip()[-800:]
        return StepResult(s.name, STEP, "failed", detail,
                          [f"imported into {p}" for p in imported])
    if not imported:
        return StepResult(s.name, STEP, "ok", "fingerprint already in the truststore(s); "
                          "checksum remembered")
    return StepResult(s.name, STEP, "changed", "node marked pending restart (JVM reads its "
                      "truststore at start)", [f"imported certificate into {p}" for p in imported])


def certs_step(run, renew: bool = False) -> bool:
    """LB certificate, then every node's truststore(s). True when every host is ok."""
    inv = run.inv
    out = LbCertOutcome(ok=False)
    res = run.each([inv.lb], STEP, lambda s: lb_cert(run, s, renew, out))
    if not out.ok or res[inv.lb.name].status not in ("ok", "changed"):
        return False
    nodes = run.alive(inv.nodes)
    results = run.each(nodes, STEP, lambda s: node_certs(run, s, out.pem, out.fingerprint,
                                                         out.changed))
    return all(r.status in ("ok", "changed") for r in results.values())


def cert_days_left(run) -> int | None:
    """Days the LB certificate is still valid (None if there is none); for `fab status`."""
    s = run.session(run.inv.lb)
    info, _ = read_lb_cert(s, run.inv)
    return days_left(info, datetime.now(timezone.utc))


@task(help={"check": COMMON_HELP["check"], "diff": COMMON_HELP["diff"],
            "parallel": COMMON_HELP["parallel"],
            "renew": "replace the certificate even if it is still good"})
def certs(c, check=False, diff=False, renew=False, parallel=16):
    """LB TLS certificate (openssl on the LB) imported into every node's truststore (keytool)."""
    with session(c, check=check, diff=diff, parallel=parallel, title="CERTS") as run:
        certs_step(run, renew=renew)
