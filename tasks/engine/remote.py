"""Remote primitives: strict SSH connections, one-round-trip scripts, facts, atomic writes.

Design:
* One Fabric `Connection` per host per run, host keys checked against known_hosts (Fabric on its
  own auto-adds any key; we replace that policy before connecting).
* Every remote action is a POSIX shell script sent on **stdin** of `sh -s` (through sudo when the
  SSH user is not root). Nothing secret is ever in argv or the environment; file contents and
  SQL travel inside the script as base64 heredocs.
* Facts: many probes in one script, one round trip, parsed back by markers.
* Files: render locally, compare sha256/owner/mode with the facts, and only then write: temp file
  in the same directory, chown/chmod, backup of the old version (0600, outside the config dirs),
  atomic `mv`; optional validation command with roll-back of the whole set.
"""
from __future__ import annotations

import base64
import functools
import hashlib
import shlex
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import logging

import paramiko
from fabric import Config, Connection

from .inventory import Host, Inventory

STATE_DIR = "/var/lib/bps-deploy"  # our marks on every host (pending restart, lock, checksums)
BACKUP_DIR = "/var/backups/bps-deploy"  # previous versions of the files we replaced
PENDING_RESTART = f"{STATE_DIR}/pending-restart"
q = shlex.quote
# paramiko's transport thread logs failures (with a traceback) to the root logger's last-resort
# handler, i.e. on the user's stderr; every failure reaches the user through our own message
logging.getLogger("paramiko").addHandler(logging.NullHandler())


# --------------------------------------------------------------------------- errors


class RemoteError(Exception):
    """A host-level failure with a message meant for the user (names host and cause)."""


class Unreachable(RemoteError):
    pass


class HostKeyUnknown(Unreachable):
    pass


class HostKeyChanged(Unreachable):
    pass


class CommandFailed(RemoteError):
    def __init__(self, host: str, what: str, result: "CmdResult"):
        self.result = result
        detail = (result.stderr.strip() or result.stdout.strip())[-2000:]
        super().__init__(f"{what} failed (exit {result.exit}): {detail}")


class _StrictPolicy(paramiko.MissingHostKeyPolicy):
    """Reject unknown host keys with a message that says how to trust the host."""

    def __init__(self, known_hosts: Path | None):
        self.known_hosts = known_hosts

    def missing_host_key(self, client, hostname, key):
        fp = base64.b64encode(hashlib.sha256(key.asbytes()).digest()).decode().rstrip("=")
        kh = self.known_hosts or "~/.ssh/known_hosts"
        host, _, port = hostname.strip("[").partition("]:")
        scan = f"ssh-keyscan -p {port} {host}" if port else f"ssh-keyscan {host}"
        raise HostKeyUnknown(
            f"host key of {hostname} ({key.get_name()} SHA256:{fp}) is not in {kh}. "
            f"If that fingerprint is right (check it on the host's console: ssh-keygen -lf "
            f"/etc/ssh/ssh_host_{key.get_name().replace('ssh-', '')}_key.pub), trust it with: "
            f"{scan} >> {kh}")


# --------------------------------------------------------------------------- session


@dataclass
class CmdResult:
    stdout: str
    stderr: str
    exit: int

    @property
    def ok(self) -> bool:
        return self.exit == 0


@dataclass
class HostSession:
    """One host's connection for this run, with its sudo mode and counters."""

    host: Host
    c: Connection
    user: str
    sudo_password: str | None
    timeout: int
    commands: int = 0
    bytes_sent: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    _sudo_mode: str | None = None  # None (not known yet) | "nopasswd" | "password"

    @property
    def name(self) -> str:
        return self.host.name


def _make_connection(inv: Inventory, address: str, gateway: Connection | None) -> Connection:
    ssh = inv.ssh
    overrides: dict = {"load_ssh_configs": True}
    if ssh.ssh_config is not None:
        overrides["ssh_config_path"] = str(ssh.ssh_config)
    config = Config(overrides=overrides)
    connect_kwargs: dict = {"banner_timeout": ssh.connect_timeout,
                            "auth_timeout": ssh.connect_timeout}
    if ssh.key is not None:
        connect_kwargs.update(key_filename=str(ssh.key), look_for_keys=False, allow_agent=False)
    c = Connection(address, user=ssh.user, port=ssh.port, config=config, gateway=gateway,
                   connect_timeout=ssh.connect_timeout, connect_kwargs=connect_kwargs)
    # Fabric sets AutoAddPolicy in Connection.__init__: replace it before anything connects.
    if ssh.known_hosts is not None and ssh.known_hosts.exists():
        c.client.load_host_keys(str(ssh.known_hosts))
    if ssh.accept_new_host_keys:
        c.client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    else:
        c.client.set_missing_host_key_policy(_StrictPolicy(ssh.known_hosts))
    return c


def connect(inv: Inventory, host: Host) -> HostSession:
    """Open the host's connection (strict host keys, jump host honoured) and check it works."""
    gateway = None
    if inv.ssh.jump:
        user, _, rest = inv.ssh.jump.rpartition("@")
        addr, _, port = rest.partition(":")
        gateway = _make_connection(inv, addr, None)
        if user:
            gateway.user = user
        if port:
            gateway.port = int(port)
    c = _make_connection(inv, host.ssh_address, gateway)
    where = f"{inv.ssh.user}@{host.ssh_address}:{inv.ssh.port}"
    try:
        c.open()
    except HostKeyUnknown:
        raise
    except paramiko.BadHostKeyException as e:
        raise HostKeyChanged(
            f"host key of {host.ssh_address} CHANGED: known_hosts has "
            f"{e.expected_key.get_name()} SHA256:{_fp(e.expected_key)}, the host offers "
            f"SHA256:{_fp(e.key)}. This may be an attack, or the host was rebuilt. Verify, then "
            f"remove the old key: ssh-keygen -R {host.ssh_address} -f {inv.ssh.known_hosts}"
        ) from None
    except paramiko.AuthenticationException as e:
        raise Unreachable(f"SSH login as {where} refused ({e}); check ssh.user and ssh.key, and "
                          "that the key is in the user's authorized_keys") from None
    except (socket.timeout, TimeoutError) as e:
        raise Unreachable(f"cannot reach {where}: timed out after {inv.ssh.connect_timeout}s; "
                          "check the address, that sshd runs and the firewall") from None
    except paramiko.SSHException as e:
        if "banner" in str(e) or str(e) == "No existing session":  # paramiko's words for it
            raise Unreachable(f"cannot reach {where}: the port answers but no SSH banner came "
                              f"within {inv.ssh.connect_timeout}s; check that sshd runs (hung or "
                              "overloaded?) and that this is the SSH port") from None
        raise Unreachable(f"cannot reach {where}: {e or type(e).__name__}; check the address, "
                          "that sshd runs and the port") from None
    except (OSError, EOFError) as e:
        raise Unreachable(f"cannot reach {where}: {e or type(e).__name__}; check the address, "
                          "that sshd runs and the port") from None
    # keepalives: a host that drops mid-run is noticed in seconds, not at the TCP timeout
    c.client.get_transport().set_keepalive(5)
    return HostSession(host, c, inv.ssh.user, inv.secrets.sudo_password,
                       inv.ssh.command_timeout)


def _fp(key) -> str:
    return base64.b64encode(hashlib.sha256(key.asbytes()).digest()).decode().rstrip("=")


def close(s: HostSession) -> None:
    try:
        s.c.close()
    except Exception:
        pass


# --------------------------------------------------------------------------- run


def _exec(s: HostSession, command: str, stdin: bytes, timeout: int) -> CmdResult:
    """Run `command` on the host's transport, feeding `stdin` and then EOF."""
    transport = s.c.client.get_transport()
    if transport is None or not transport.is_active():
        raise Unreachable(f"connection to {s.host.ssh_address} was lost")
    try:
        chan = transport.open_session(timeout=timeout)
    except (paramiko.SSHException, OSError, EOFError) as e:
        why = str(e) or type(e).__name__
        raise Unreachable(f"no answer from {s.host.ssh_address}: {why} (host down or "
                          "connection lost?)") from None
    chan.settimeout(timeout)
    out: list[bytes] = []
    err: list[bytes] = []
    errors: list[BaseException] = []

    def pump(read, sink):
        try:
            while True:
                data = read(65536)
                if not data:
                    return
                sink.append(data)
        except BaseException as e:  # socket.timeout, closed channel
            errors.append(e)

    # paramiko waits for the exec reply without a timeout: a host that drops right now would
    # hang us forever, so a watchdog closes the connection (the host is lost anyway)
    watchdog = threading.Timer(timeout, transport.close)
    watchdog.daemon = True
    watchdog.start()
    try:
        chan.exec_command(command)
    except (paramiko.SSHException, OSError, EOFError) as e:
        raise Unreachable(f"no answer from {s.host.ssh_address} within {timeout}s: "
                          f"{str(e) or type(e).__name__} (host down or connection lost?)") from None
    finally:
        watchdog.cancel()
    readers = [threading.Thread(target=pump, args=(chan.recv, out), daemon=True),
               threading.Thread(target=pump, args=(chan.recv_stderr, err), daemon=True)]
    for t in readers:
        t.start()
    try:
        if stdin:
            chan.sendall(stdin)
        chan.shutdown_write()
    except OSError:
        pass  # the command may exit before reading all input; its exit code tells
    deadline = time.monotonic() + timeout
    for t in readers:
        t.join(max(0.0, deadline - time.monotonic()))
    if any(t.is_alive() for t in readers) or errors:
        chan.close()
        raise RemoteError(f"command timed out after {timeout}s on {s.name}")
    # the exit status follows the output; a host that drops right now must not hang us
    if not chan.status_event.wait(max(1.0, deadline - time.monotonic())):
        chan.close()
        raise Unreachable(f"no exit status from {s.host.ssh_address} within {timeout}s "
                          "(host down or connection lost?)")
    code = chan.recv_exit_status()
    chan.close()
    with s.lock:
        s.commands += 1
        s.bytes_sent += len(stdin)
    return CmdResult(b"".join(out).decode("utf-8", "replace"),
                     b"".join(err).decode("utf-8", "replace"), code)


def _password_mode(s: HostSession, why: str) -> None:
    """sudo wants a password: check ours once, or say how to fix it."""
    if not s.sudo_password:
        raise RemoteError(f"sudo on {s.name} needs a password for {s.user} ({why[:200]}); set "
                          "ssh.sudo_password in hosts.toml, or give the user NOPASSWD")
    probe = _exec(s, "sudo -S -k -p '' -- sh -s", s.sudo_password.encode() + b"\nid -u\n", 30)
    if probe.stdout.strip() != "0":
        msg = (probe.stderr.strip().splitlines() or ["wrong password?"])[-1]
        raise RemoteError(f"sudo refused {s.user} on {s.name}: {msg[:200]}; check "
                          "ssh.sudo_password and the sudoers rules")
    s._sudo_mode = "password"


def run_script(s: HostSession, script: str, *, root: bool = True, timeout: int | None = None,
               check: bool = False, what: str = "remote script") -> CmdResult:
    """Run a shell script on the host, as root by default. The script travels on stdin."""
    body = ("set -u\nexport LC_ALL=C PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:"
            "/sbin:/bin\n" + script).encode()
    timeout = timeout or s.timeout
    if not root or s.user == "root":
        res = _exec(s, "sh -s", body, timeout)
    else:
        if s._sudo_mode in (None, "nopasswd"):
            # try passwordless sudo first: no extra round trip when it works
            res = _exec(s, "sudo -n -H -- sh -s", body, timeout)
            if s._sudo_mode is None:
                if res.exit == 1 and "sudo:" in res.stderr and not res.stdout:
                    _password_mode(s, res.stderr.strip())  # the script did not run
                else:
                    s._sudo_mode = "nopasswd"
        if s._sudo_mode == "password":
            # -k: always ask, so sudo always consumes exactly the first line (the password)
            res = _exec(s, "sudo -S -k -p '' -H -- sh -s",
                        s.sudo_password.encode() + b"\n" + body, timeout)
    if check and not res.ok:
        raise CommandFailed(s.name, what, res)
    return res


# --------------------------------------------------------------------------- facts

_BEGIN = "@@BPS-FACT-BEGIN "
_END = "@@BPS-FACT-END "


@dataclass
class Fact:
    out: str
    rc: int


def read_facts(s: HostSession, probes: dict[str, str], root: bool = True) -> dict[str, Fact]:
    """Run every probe in ONE round trip; return each probe's output and exit code."""
    parts = []
    for key, snippet in probes.items():
        parts.append(f"echo '{_BEGIN}{key}'\n( {snippet}\n) </dev/null 2>&1\n"
                     f"echo \"\n{_END}{key} $?\"\n")
    res = run_script(s, "".join(parts), root=root, what="fact read")
    return parse_facts(res.stdout)


def parse_facts(text: str) -> dict[str, Fact]:
    facts: dict[str, Fact] = {}
    key = None
    buf: list[str] = []
    for line in text.split("\n"):
        if line.startswith(_BEGIN):
            key, buf = line[len(_BEGIN):], []
        elif line.startswith(_END) and key is not None:
            rc = int(line.rsplit(" ", 1)[1])
            out = "\n".join(buf)
            facts[key] = Fact(out[:-1] if out.endswith("\n") else out, rc)
            key = None
        elif key is not None:
            buf.append(line)
    return facts


class NotAFile(RemoteError):
    """A path the tool manages as a file is something else (a link, a folder, ...)."""


def probe_file(path: str, content: bool = False) -> str:
    """The one file fact: MISSING; NOTFILE <kind> <path>; or '<mode> <owner> <group> <sha256>'
    and, with `content`, the bytes in base64 on the next line. A link is reported, never
    followed: the path may be in a folder the service user controls."""
    p = q(path)
    read = f"stat -c '%a %U %G' {p} | tr '\\n' ' '; sha256sum < {p} | cut -d' ' -f1"
    if content:
        read += f"; base64 -w0 < {p}; echo"
    return (f"if [ -L {p} ]; then echo NOTFILE link {p}; "
            f"elif [ -d {p} ]; then echo NOTFILE folder {p}; "
            f"elif [ -f {p} ]; then {read}; "
            f"elif [ -e {p} ]; then echo NOTFILE special {p}; else echo MISSING; fi")


@dataclass(frozen=True)
class FileState:
    sha256: str
    mode: int
    owner: str
    group: str
    content: bytes | None = field(default=None, compare=False, repr=False)


def parse_file_probe(out: str) -> FileState | None:
    """Parse probe_file's output; a path that is not a regular file raises NotAFile, so no
    step ever writes over (or into) it."""
    lines = out.strip().split("\n")
    first = lines[0].split()
    if not first or first == ["MISSING"]:
        return None
    if first[0] == "NOTFILE":
        kind, path = first[1], " ".join(first[2:])
        raise NotAFile(f"{path} is a {kind}, not a regular file: nothing was written. The tool "
                       f"manages this path as a file; move the {kind} away and run again")
    mode, owner, group, sha = first
    data = base64.b64decode(lines[1]) if len(lines) > 1 else None
    return FileState(sha, int(mode, 8), owner, group, data)


def parse_content_probe(out: str) -> bytes | None:
    """The bytes of a file read with probe_file(path, content=True); None when missing."""
    st = parse_file_probe(out)
    return st.content if st else None


# --------------------------------------------------------------------------- files


@dataclass
class FileSpec:
    """A file we want on a host, exactly."""

    path: str
    content: bytes
    owner: str = "root"
    group: str = "root"
    mode: int = 0o644
    sensitive: bool = False  # holds a secret: never diffed in clear, backup 0600

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()


@dataclass
class FileChange:
    spec: FileSpec
    before: FileState | None
    content_changed: bool

    def describe(self) -> str:
        if self.before is None:
            return f"create {self.spec.path}"
        if self.content_changed:
            return f"update {self.spec.path}"
        return (f"fix owner/mode of {self.spec.path} ({self.before.owner}:{self.before.group} "
                f"{self.before.mode:04o} -> {self.spec.owner}:{self.spec.group} "
                f"{self.spec.mode:04o})")


def plan_files(wanted: Iterable[FileSpec], current: dict[str, FileState | None]) -> list[FileChange]:
    """Pure: which files need writing (content) or fixing (owner/mode)."""
    changes = []
    for spec in wanted:
        st = current.get(spec.path)
        if st is None:
            changes.append(FileChange(spec, None, True))
        elif st.sha256 != spec.sha256:
            changes.append(FileChange(spec, st, True))
        elif (st.mode, st.owner, st.group) != (spec.mode, spec.owner, spec.group):
            changes.append(FileChange(spec, st, False))
    return changes


SCRIPTS_DIR = Path(__file__).resolve().parents[1] / "scripts"
BACKUPS_KEEP = 10  # backups kept per file on each host (older ones are pruned)


@functools.lru_cache(maxsize=None)
def _script_body(name: str) -> str:
    return (SCRIPTS_DIR / name).read_text()


def script(name: str, **params: object) -> str:
    """A remote script from tasks/scripts/NAME: a header of quoted assignments for its
    parameters, then the static body (what shellcheck checks is what runs)."""
    header = "".join(f"{k}={q(str(v))}\n" for k, v in params.items())
    return header + _script_body(name)


def backups_lib(stamp: str, keep: int = BACKUPS_KEEP) -> str:
    """tasks/scripts/backups.sh for this run: backup_name, prune_backups."""
    return script("backups.sh", BACKUP_DIR=BACKUP_DIR, STAMP=stamp, KEEP=int(keep))


def write_files_script(changes: list[FileChange], stamp: str,
                       validate: str | None = None, keep: int = BACKUPS_KEEP) -> str:
    """A script that applies `changes` atomically; with `validate`, rolls all back on failure.

    Each file: temp file in the same dir, written and checked by the file's owner -> owner/mode
    -> backup of the old file (read by the owner, kept by root, 0600) -> mv. A file the service
    user owns is only ever touched as that user (see scripts/files.sh), so an owner/mode fix of
    such a file is a rewrite. If anything fails (disk full, validation), every file already
    replaced is restored from its backup with its old owner and mode (or removed if it was new)
    and the script exits non-zero.
    """
    lines = [backups_lib(stamp, keep) + script("files.sh")]
    for ch in changes:
        sp = ch.spec
        if ch.content_changed or sp.owner != "root":
            b64 = base64.encodebytes(sp.content).decode()
            lines.append(f"stage {q(sp.owner)} {q(sp.group)} {sp.mode:o} {q(sp.path)} "
                         f"{sp.sha256} <<'__BPS_EOF__'\n{b64}__BPS_EOF__")
            old = ch.before
            lines.append(f"commit {q(sp.owner)} {q(sp.path)}" +
                         (f" {old.mode:o} {q(old.owner)} {q(old.group)}" if old else ""))
        else:
            lines.append(f"fix_mode {q(sp.path)} {q(sp.owner)} {q(sp.group)} {sp.mode:o}")
    if validate:
        lines += [f"if ! vout=$( {validate} 2>&1 ); then echo \"$vout\" >&2; "
                  "echo 'validation failed: previous files restored' >&2; exit 3; fi"]
    lines.append("prune")
    return "\n".join(lines) + "\n"


def utc_stamp() -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())


# --------------------------------------------------------------------------- shared blocks


def managed_block(text: str, block: list[str], marker: str = "bps-deploy") -> str:
    """Pure: put `block` between our markers in `text`; other lines untouched; idempotent."""
    begin, end = f"# BEGIN {marker} (managed, do not edit)", f"# END {marker}"
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    body = [begin, *block, end]
    if begin in lines and end in lines[lines.index(begin):]:
        i = lines.index(begin)
        j = lines.index(end, i)
        lines[i:j + 1] = body if block else []
    elif block:
        lines += body
    return "\n".join(lines) + "\n"


def block_change(path: str, current: bytes | None, state: FileState | None,
                 block: list[str], marker: str, legacy: tuple[str, ...] = ()) -> list[FileChange]:
    """Pure: the write that puts `block` between our markers in a text file (an empty block
    removes ours), keeping the file's owner and mode; [] when nothing changes. Blocks under
    the `legacy` markers (our older names for it) are removed in the same write."""
    text = (current or b"").decode("utf-8", "replace")
    new = text
    for old in legacy:
        new = managed_block(new, [], old)
    new = managed_block(new, block, marker)
    if new == text or (current is None and not block):
        return []
    spec = FileSpec(path, new.encode(), state.owner if state else "root",
                    state.group if state else "root", state.mode if state else 0o644)
    return [FileChange(spec, state, True)]


def read_file(s: HostSession, path: str) -> tuple[bytes | None, FileState | None]:
    """One round trip: a file's bytes and its owner/mode (None, None when missing)."""
    st = parse_file_probe(read_facts(s, {"file": probe_file(path, content=True)})["file"].out)
    return (st.content if st else None), st


def pending_restart_script(reason: str) -> str:
    """Script lines that mark a node as needing a restart (kept until a healthy restart)."""
    return (f"mkdir -p {STATE_DIR}; echo {q(reason)} >> {PENDING_RESTART}; "
            f"chmod 600 {PENDING_RESTART}\n")


def clear_pending_script() -> str:
    return f"rm -f {PENDING_RESTART}\n"


def probe_pending() -> str:
    return f"cat {PENDING_RESTART} 2>/dev/null || true"
