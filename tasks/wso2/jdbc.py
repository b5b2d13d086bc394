"""The JDBC driver: which class a jar provides, and what to do with <EI_HOME>/lib.

Two versions of one driver in one classpath break at run time, so other jars of the same
family are moved aside (to the backup dir, never deleted).
"""
from __future__ import annotations

import re
import zipfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path


class DriverError(Exception):
    pass


@lru_cache(maxsize=8)
def driver_class_of(jar: Path) -> str:
    """The first class named in the jar's META-INF/services/java.sql.Driver (comments skipped)."""
    try:
        with zipfile.ZipFile(jar) as z:
            text = z.read("META-INF/services/java.sql.Driver").decode("utf-8", "replace")
    except KeyError:
        raise DriverError(f"{jar} has no META-INF/services/java.sql.Driver: is it a JDBC 4 "
                          "driver? Set cluster.jdbc_driver_class in hosts.toml") from None
    except (OSError, zipfile.BadZipFile) as e:
        raise DriverError(f"{jar}: not a readable jar ({e})") from None
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            return line
    raise DriverError(f"{jar}: META-INF/services/java.sql.Driver names no class")


_VERSION_TAIL = re.compile(r"[-_]v?\d[\w.\-]*$")

# Jar families that provide the same driver under other names.
_FAMILIES = {
    "org.mariadb.jdbc.Driver": ("mariadb-java-client",),
    "com.mysql.cj.jdbc.Driver": ("mysql-connector-java", "mysql-connector-j"),
    "com.mysql.jdbc.Driver": ("mysql-connector-java", "mysql-connector-j"),
}


def family(jar_name: str) -> str:
    """'mariadb-java-client-2.7.6.jar' -> 'mariadb-java-client'."""
    stem = jar_name[:-4] if jar_name.endswith(".jar") else jar_name
    return _VERSION_TAIL.sub("", stem)


@dataclass(frozen=True)
class LibPlan:
    install: bool  # our jar missing or different in lib/
    move_aside: tuple[str, ...]  # other versions of the same driver


def plan_lib(jar_name: str, jar_sha256: str, driver_class: str,
             lib: dict[str, str]) -> LibPlan:
    """Pure: `lib` maps file name -> sha256 of the jars now in <EI_HOME>/lib."""
    families = {family(jar_name), *_FAMILIES.get(driver_class, ())}
    others = tuple(sorted(n for n in lib if n != jar_name and family(n) in families))
    return LibPlan(lib.get(jar_name) != jar_sha256, others)


def probe_lib(lib_dir: str) -> str:
    """Probe: 'sha256  name' of each jar in lib/."""
    return (f"cd {lib_dir} 2>/dev/null && for f in *.jar; do [ -f \"$f\" ] && "
            "sha256sum \"$f\"; done; true")


def parse_lib(out: str) -> dict[str, str]:
    lib = {}
    for line in out.splitlines():
        parts = line.split(None, 1)
        if len(parts) == 2:
            lib[parts[1].lstrip("*")] = parts[0]
    return lib


# --------------------------------------------------------------------------- the JDBC URL

@dataclass(frozen=True)
class DriverInfo:
    """Which driver a jar is: its class and, from META-INF/MANIFEST.MF, its name and version."""

    driver_class: str
    title: str = ""  # Implementation-Title or Bundle-Name ('' when the manifest has neither)
    version_text: str = ""  # Implementation-Version or Bundle-Version

    @property
    def version(self) -> tuple[int, ...] | None:
        m = re.match(r"(\d+)(?:\.(\d+))?(?:\.(\d+))?", self.version_text)
        return tuple(int(x or 0) for x in m.groups()) if m else None

    @property
    def label(self) -> str:
        name = self.title or self.driver_class
        return f"{name} {self.version_text}".strip()


def parse_manifest(text: str) -> dict[str, str]:
    """META-INF/MANIFEST.MF main section -> {header: value} (continuation lines joined)."""
    out: dict[str, str] = {}
    last = None
    for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        if not line:
            if out:
                break  # end of the main section
            continue
        if line.startswith(" ") and last:
            out[last] += line[1:]
            continue
        name, sep, value = line.partition(":")
        if sep:
            last = name.strip()
            out[last] = value.strip()
    return out


@lru_cache(maxsize=8)
def driver_info(jar: Path, driver_class: str | None = None) -> DriverInfo:
    """The driver in `jar` (class from its services file unless given; name and version from
    its manifest, blank when the jar has none)."""
    cls = driver_class or driver_class_of(jar)
    try:
        with zipfile.ZipFile(jar) as z:
            man = parse_manifest(z.read("META-INF/MANIFEST.MF").decode("utf-8", "replace"))
    except (KeyError, OSError, zipfile.BadZipFile):
        man = {}
    title = man.get("Implementation-Title") or man.get("Bundle-Name") or ""
    version = man.get("Implementation-Version") or man.get("Bundle-Version") or ""
    return DriverInfo(cls, title, version)


MARIADB_CLASS = "org.mariadb.jdbc.Driver"
MYSQL8_CLASS = "com.mysql.cj.jdbc.Driver"
MYSQL5_CLASS = "com.mysql.jdbc.Driver"

# Options the tool sets itself (transport security; TLS settings will come from the tool too):
# hosts.toml's database.jdbc_options may not name them. Any option whose name contains one of
# these words, in any case (useSSL, sslMode, requireSSL, enabledTLSProtocols, trustStore...).
OWNED_OPTION_RE = re.compile(r"ssl|tls|keystore|truststore|certificate", re.I)
OPTION_NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9_.]{0,63}")
OPTION_VALUE_RE = re.compile(r"[A-Za-z0-9_.:,/+-]{1,200}")


@dataclass(frozen=True)
class UrlStyle:
    scheme: str  # jdbc:<scheme>://
    owned: tuple[tuple[str, str], ...]  # always set, never overridable
    extras: tuple[tuple[str, str], ...]  # defaults; database.jdbc_options replaces them


def url_style(info: DriverInfo, ca_pem: str | None = None) -> UrlStyle:
    """Scheme and options for a driver; `ca_pem`: TLS on, the server verified against that CA
    (a PEM file on the node), else TLS off (database.tls = false).

    * MariaDB Connector/J 3.x refuses `jdbc:mysql:` (without permitMysqlScheme): `jdbc:mariadb:`;
      TLS `sslMode=verify-full&serverSslCert=<ca>` (off: `sslMode=disable`); no autoReconnect
      (the pools' validation query reconnects). With no version in the manifest, `jdbc:mariadb:`
      too: every MariaDB driver takes it.
    * MariaDB 1.x/2.x: `jdbc:mysql:`, `useSSL=true&serverSslCert=<ca>` (the server's chain is
      checked against that CA, and its name against the URL's host: hostname verification is
      on unless disableSslHostnameVerification), autoReconnect.
    * MySQL Connector/J 8 from 8.0.13: `sslMode=VERIFY_IDENTITY` (CA and host name), the CA from
      the JVM's truststore (javax.net.ssl.trustStore: Carbon's client-truststore.jks, which
      trusts the cluster CA; Connector/J reads no PEM file). Not proven in the lab, which runs
      MariaDB Connector/J.
    * MySQL Connector/J 5.1 and 8 before 8.0.13: `useSSL=true&requireSSL=true&
      verifyServerCertificate=true` (the CA from the same truststore; 5.1 checks no host name).
    """
    v = info.version
    reconnect = (("autoReconnect", "true"),)
    if info.driver_class == MARIADB_CLASS:
        if v is not None and v < (3,):
            return UrlStyle("mysql", (("useSSL", "true"), ("serverSslCert", ca_pem))
                            if ca_pem else (("useSSL", "false"),), reconnect)
        return UrlStyle("mariadb", (("sslMode", "verify-full"), ("serverSslCert", ca_pem))
                        if ca_pem else (("sslMode", "disable"),), ())
    legacy = (("useSSL", "true"), ("requireSSL", "true"), ("verifyServerCertificate", "true"))
    if info.driver_class == MYSQL8_CLASS:
        if v is not None and v < (8, 0, 13):
            return UrlStyle("mysql", legacy if ca_pem else (("useSSL", "false"),), reconnect)
        return UrlStyle("mysql", (("sslMode", "VERIFY_IDENTITY" if ca_pem else "DISABLED"),),
                        reconnect)
    return UrlStyle("mysql", legacy if ca_pem else (("useSSL", "false"),), reconnect)


def option_problems(options: dict) -> list[str]:
    """What is wrong with database.jdbc_options (names/values unsafe, or owned by the tool)."""
    out = []
    for name, value in options.items():
        if not OPTION_NAME_RE.fullmatch(str(name)):
            out.append(f"{name!r} is not an option name; use letters, digits, '_' or '.' "
                       "(max 64), starting with a letter")
        elif OWNED_OPTION_RE.search(name):
            out.append(f"{name} is set by the tool itself (transport security options: any name "
                       "with ssl, tls, keystore, truststore or certificate); remove it")
        if isinstance(value, bool):
            continue
        if isinstance(value, int):
            value = str(value)
        if not isinstance(value, str) or not OPTION_VALUE_RE.fullmatch(value):
            out.append(f"{name}: value {value!r} is not allowed; use a string of letters, "
                       "digits and . _ : , / + - (1 to 200), a number or true/false")
    return out


def option_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def jdbc_url(info: DriverInfo, host: str, port: int, database: str,
             options: dict | None = None, ca_pem: str | None = None) -> str:
    """The URL for one database: the driver's scheme, the tool's own options first, then
    `options` (database.jdbc_options) or, when it is None, the driver's default extras."""
    style = url_style(info, ca_pem)
    opts = dict(style.owned)
    extra = dict(style.extras) if options is None else {k: option_value(v)
                                                        for k, v in options.items()}
    owned = {k.lower() for k in opts}
    opts.update({k: v for k, v in extra.items() if k.lower() not in owned})
    query = "&".join(f"{k}={v}" for k, v in opts.items())
    return f"jdbc:{style.scheme}://{host}:{port}/{database}" + (f"?{query}" if query else "")
