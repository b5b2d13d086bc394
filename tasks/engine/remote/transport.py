"""SSH transport: strict connections, one command per script, sudo, timeouts.

One Fabric `Connection` per host per run, host keys checked against known_hosts (Fabric on its
own auto-adds any key; we replace that policy before connecting). Every remote action is a POSIX
shell script sent on **stdin** of `sh -s` (through sudo when the SSH user is not root): nothing
secret is ever in argv or the environment.
"""
from __future__ import annotations

import base64
import hashlib
import logging
import shlex
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import paramiko
from fabric import Config, Connection

from ..inventory import Host, Inventory

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
        fp = _fp(key)
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
