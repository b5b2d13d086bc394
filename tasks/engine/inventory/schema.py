"""The hosts.toml schema and its checker: types, defaults, and every value check.

`_Checker` collects every problem (each naming the key and the fix) instead of stopping at the
first, so one run of the tool lists them all.
"""
from __future__ import annotations

import difflib
import ipaddress
import os
import re
import stat
from pathlib import Path
from typing import Any

from .credentials import SECRET_SINKS
from .model import (REQ, ArtifactSettings, CertSettings, ClusterSettings, DatabaseSettings, SshSettings,
                    toml_keys)

# Every pattern here is used with fullmatch(): with match() and `$`, a value ending in "\n"
# would pass (`$` also matches before a final newline).
_HOSTNAME_RE = re.compile(r"(?=.{1,253}\Z)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)"
                          r"(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*")
_IDENT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
_USER_RE = re.compile(r"[a-z_][a-z0-9_-]{0,31}")
_SQL_USER_RE = re.compile(r"[A-Za-z0-9_.-]{1,32}")  # an account name in a MySQL option file
_ADMIN_USER_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}")  # WSO2's admin (user-mgt.xml)
_VERSION_RE = re.compile(r"\d+\.\d+(\.\d+)?")
_REMOTE_PATH_RE = re.compile(r"[A-Za-z0-9_./@+-]+")
_FILE_NAME_RE = re.compile(r"[A-Za-z0-9_+@-][A-Za-z0-9_.+@-]*")
_CLASS_RE = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*(\.[A-Za-z_$][A-Za-z0-9_$]*)*")

_WHY_IPV4 = ("the NGINX upstreams and the database accounts (one grant per node address) "
             "are written for IPv4 addresses")
_USER_FIX = "use lowercase letters, digits, '_' or '-' (max 32), starting with a letter or '_'"

_CONTROL_NAMES = {"\n": "LF (line feed)", "\r": "CR (carriage return)", "\t": "TAB",
                  "\x1b": "ESC", "\x00": "NUL", "\x7f": "DEL"}

# section -> key -> (TOML type, default or REQ); the settings classes' keys come from the
# classes themselves (model.toml_key), the host tables and the secrets are listed here
_HOST_KEYS = {"address": (str, REQ), "ssh_address": (str, None), "nat": (bool, False)}
SCHEMA: dict[str, dict[str, tuple[type, Any]]] = {
    "ssh": {**toml_keys(SshSettings), "sudo_password": (dict, None)},
    "lb": {"name": (str, "lb"), **_HOST_KEYS},
    "node": {"name": (str, REQ), **_HOST_KEYS},
    "db": {"name": (str, "db"), **_HOST_KEYS, "hostname": (str, None), "port": (int, 3306)},
    "cluster": toml_keys(ClusterSettings),
    "database": toml_keys(DatabaseSettings),
    "certs": toml_keys(CertSettings),
    "artifacts": toml_keys(ArtifactSettings),
    "secrets": {name: (dict, REQ if name == "db_password" else None)
                for name in SECRET_SINKS if name != "sudo_password"},  # that one is in [ssh]
}
TOP_LEVEL = {"ssh": dict, "lb": dict, "nodes": list, "db": dict, "cluster": dict,
             "database": dict, "certs": dict, "secrets": dict, "artifacts": dict}


def _suggest(key: str, options: list[str]) -> str:
    close = difflib.get_close_matches(key, options, 1, 0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


class _Checker:
    def __init__(self, path: Path):
        self.path = path
        self.base = path.parent
        self.problems: list[str] = []
        self.warnings: list[str] = []

    def err(self, msg: str) -> None:
        self.problems.append(msg)

    def section(self, where: str, schema_name: str, data: Any) -> dict[str, Any]:
        schema = SCHEMA[schema_name]
        if not isinstance(data, dict):
            self.err(f"[{where}] must be a table, got {type(data).__name__}")
            data = {}
        out: dict[str, Any] = {}
        for key in data:
            if key not in schema:
                self.err(f"{where}.{key}: unknown key{_suggest(key, list(schema))}; "
                         f"allowed: {', '.join(schema)}")
        for key, (typ, default) in schema.items():
            if key not in data:
                if default is REQ:
                    self.err(f"{where}.{key}: missing required key; add `{key} = ...` "
                             f"to [{where.split('[')[0]}]")
                out[key] = None if default is REQ else default
                continue
            value = data[key]
            ok = isinstance(value, typ) and not (typ is int and isinstance(value, bool))
            if not ok and key in SECRET_SINKS:  # never print what may be the secret itself
                self.err(f"{where}.{key}: expected a table such as {{ file = \"path\" }}, got "
                         f"{type(value).__name__} (value not shown)")
                out[key] = None if default is REQ else default
            elif not ok:
                self.err(f"{where}.{key}: expected {typ.__name__}, got "
                         f"{type(value).__name__} {value!r}")
                out[key] = None if default is REQ else default
            else:
                out[key] = value
        return out

    # value checks -------------------------------------------------------------
    def port(self, where: str, value: int | None) -> None:
        if value is not None and not 1 <= value <= 65535:
            self.err(f"{where}: port {value} is out of range; use 1-65535")

    def positive(self, where: str, value: int | None, lo: int = 1, hi: int | None = None) -> None:
        if value is None:
            return
        if value < lo or (hi is not None and value > hi):
            rng = f"{lo}..{hi}" if hi is not None else f">= {lo}"
            self.err(f"{where}: {value} is out of range; use {rng}")

    def address(self, where: str, value: str | None, cluster: bool = True) -> None:
        """cluster: the IPv4 address the other hosts reach; else (ssh_address) an IP or a name."""
        if not value:
            return
        try:
            ip = ipaddress.ip_address(value)
        except ValueError:
            if not _HOSTNAME_RE.fullmatch(value):
                self.err(f"{where}: {value!r} is not an IPv4 address; use e.g. 192.0.2.10"
                         if cluster else
                         f"{where}: {value!r} is neither an IP address nor a valid host name; "
                         "use e.g. 192.0.2.10 or node1.example.com")
            elif cluster:
                self.err(f"{where}: {value!r} cannot be a cluster address: it is a host name, "
                         f"and {_WHY_IPV4}; use the host's own IPv4 address (SSH to a name with "
                         "ssh_address)")
            return
        if cluster and ip.version != 4:
            self.err(f"{where}: {value} cannot be a cluster address: it is IPv6, and "
                     f"{_WHY_IPV4}; use the host's IPv4 address (ssh_address may be IPv6)")
            return
        if cluster and (ip.is_loopback or ip.is_unspecified):
            self.err(f"{where}: {value} is a loopback/unspecified address: WSO2 needs a specific "
                     "IP that the other hosts can reach; use the host's own IP")

    def remote_path(self, where: str, value: str | None, example: str) -> None:
        """A path on the hosts: absolute, normalized, only characters safe in any command."""
        if value is None:
            return
        fix = (f"use an absolute, normalized path of letters, digits and . _ / @ + -, "
               f"e.g. {example}")
        parts = value.rstrip("/").split("/")[1:]
        bad = sorted({c for c in value if not _REMOTE_PATH_RE.fullmatch(c)})
        if bad:
            self.err(f"{where}: {value!r} contains {', '.join(repr(c) for c in bad)}, not safe "
                     f"in a path on the hosts; {fix}")
        elif not value.startswith("/"):
            self.err(f"{where}: {value!r} must be an absolute path; {fix}")
        elif not parts:
            self.err(f"{where}: {value!r} cannot be the root directory; {fix}")
        elif ".." in value:
            self.err(f"{where}: {value!r} contains '..'; {fix}")
        elif any(p in ("", ".") for p in parts):
            norm = "/" + "/".join(p for p in parts if p not in ("", "."))
            self.err(f"{where}: {value!r} is not normalized; write {norm!r}")

    def jump(self, where: str, value: str) -> None:
        """[user@]host[:port], split the way remote.connect splits it."""
        fix = "write [user@]host[:port], e.g. deploy@bastion.example.com:22"
        user, at, rest = value.rpartition("@")
        host, colon, port = rest.partition(":")
        if at and not _USER_RE.fullmatch(user):
            self.err(f"{where}: the user {user!r} in {value!r} is not a valid user name; {fix}")
        if not (_is_ipv4(host) or _HOSTNAME_RE.fullmatch(host)):
            self.err(f"{where}: the host {host!r} in {value!r} is neither an IPv4 address nor a "
                     f"host name; {fix}")
        if colon and not (re.fullmatch(r"[0-9]{1,5}", port) and 1 <= int(port) <= 65535):
            self.err(f"{where}: the port {port!r} in {value!r} is not a number from 1 to 65535; "
                     f"{fix}")

    def hostname(self, where: str, value: str | None) -> None:
        if value and not _HOSTNAME_RE.fullmatch(value):
            self.err(f"{where}: {value!r} is not a valid host name; use e.g. ei.example.com")

    def ident(self, where: str, value: str | None) -> None:
        if value and not _IDENT_RE.fullmatch(value):
            self.err(f"{where}: {value!r} is not a safe SQL identifier; use letters, digits "
                     "and _ (max 64), starting with a letter")

    def local_path(self, where: str, value: str | None, must_exist: bool = True) -> Path | None:
        if not value:
            return None
        p = Path(os.path.expanduser(value))
        if not p.is_absolute():
            p = (self.base / p)
        try:
            exists, is_file = p.exists(), p.is_file()
        except (OSError, ValueError) as e:  # e.g. a NUL in the path, or no access to a parent
            self.err(f"{where}: {str(p)!r} cannot be used as a path ({e}); fix the path")
            return None
        if must_exist and not exists:
            self.err(f"{where}: file {str(p)!r} does not exist; fix the path (relative paths "
                     f"are relative to {self.base})")
        elif must_exist and not is_file:
            what = "a directory" if p.is_dir() else "not a regular file"
            self.err(f"{where}: {str(p)!r} is {what}; name the file itself")
        return p

    def secret(self, where: str, ref: dict | None) -> str | None:
        if ref is None:
            return None
        keys = set(ref)
        if len(keys) != 1 or not keys <= {"file", "env", "value"}:
            self.err(f"{where}: give exactly one of {{ file = \"path\" }}, {{ env = \"VAR\" }} "
                     f"or {{ value = \"...\" }}; got keys {sorted(keys)}")
            return None
        kind, arg = next(iter(ref.items()))
        if not isinstance(arg, str) or not arg:
            self.err(f"{where}.{kind}: must be a non-empty string")
            return None
        if kind == "value":
            self.warnings.append(f"!!! {where} is written inline in hosts.toml: anyone who can "
                                 "read that file has it; move it to a 0600 file or an env var")
            return self.secret_value(where, arg, "")
        if kind == "env":
            val = os.environ.get(arg)
            if val is None:
                self.err(f"{where}: environment variable {arg} is not set; export it or use "
                         "{ file = ... }")
                return None
            return self.secret_value(where, val, f"environment variable {arg}")
        p = self.local_path(f"{where}.file", arg)
        if p is None or not p.is_file():
            return None
        st = p.stat()
        if st.st_mode & 0o077:
            self.err(f"{where}.file: {p} is readable by others (mode "
                     f"{stat.S_IMODE(st.st_mode):04o}); run: chmod 600 {p}")
            return None
        # bytes, strict UTF-8 and no universal newlines: a CR must never quietly become a LF
        try:
            val = p.read_bytes().decode("utf-8")
        except OSError as e:
            self.err(f"{where}.file: {p} cannot be read ({e.strerror or e}); check its owner and "
                     "mode (0600, readable by you)")
            return None
        except UnicodeDecodeError as e:
            self.err(f"{where}.file: {p} is not UTF-8 text (invalid byte at offset {e.start}); "
                     "save the secret as UTF-8")
            return None
        if val.endswith("\n"):
            val = val[:-1]  # the file's final newline, one only
        if val.endswith("\r"):
            self.err(f"{where}.file: {p} ends with a CR (a Windows line ending?); save it with a "
                     "Unix line ending, e.g. run: dos2unix " + str(p))
            return None
        return self.secret_value(where, val, f"{p}")

    def secret_value(self, where: str, val: str, source: str) -> str | None:
        """The value, or None with an error if it cannot be written everywhere it goes.

        Messages name the secret and the reason, never the value.
        """
        src = f" ({source})" if source else ""
        if not val:
            self.err(f"{where}: is empty{src}; set the secret")
            return None
        try:
            val.encode("utf-8")
        except UnicodeEncodeError:  # an environment variable that is not UTF-8
            self.err(f"{where}: is not valid UTF-8{src}; set it as UTF-8 text")
            return None
        bad = next((c for c in val if ord(c) < 0x20 or ord(c) == 0x7F), None)
        if bad is not None:
            name = _CONTROL_NAMES.get(bad, f"U+{ord(bad):04X}")
            sink = SECRET_SINKS.get(where.rpartition(".")[2], "a file on the hosts")
            self.err(f"{where}: contains the control character {name}{src}, and {sink}; "
                     "choose a secret without control characters (U+0000-U+001F, U+007F)")
            return None
        # XML 1.0 (the datasources, user-mgt.xml) has no place for these either
        bad = next((c for c in val if 0x80 <= ord(c) <= 0x9F or ord(c) in (0xFFFE, 0xFFFF)
                    or ord(c) == 0xFEFF), None)
        if bad is not None:
            self.err(f"{where}: contains U+{ord(bad):04X}{src} (a C1 control, a byte-order mark "
                     "or a non-character), which XML 1.0 and the nodes' files cannot hold "
                     "safely; choose a secret without it")
            return None
        return val


def _is_ipv4(value: str) -> bool:
    try:
        return ipaddress.ip_address(value).version == 4
    except ValueError:
        return False
