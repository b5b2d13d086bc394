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
