"""The JDK a node would run EI on: read without starting a JVM, and the versions EI runs on."""
from __future__ import annotations

import re

from ...engine import remote


def java_probe(service_user: str, java_home: str | None = None) -> str:
    """The node's JDK without starting a JVM (tasks/scripts/java_probe.sh).

    java_home (cluster.java_home): that JDK, else the `java` on PATH. Prints
    `java VERSION (HOME)`, `java, version unknown (...)`, `missing HOME/bin/java`, or nothing."""
    return remote.script("java_probe.sh", SERVICE_USER=service_user,
                         JAVA_HOME_WANTED=java_home or "")


SUPPORTED_JDKS = (8, 11)  # WSO2 EI 6.6.0: JDK 8 and 11 only


def jdk_major(version: str) -> int | None:
    """'1.8.0_392' -> 8, '11.0.13' -> 11, '17' -> 17, '21-ea' -> 21; None if not a version."""
    m = re.match(r"\s*(\d+)(?:\.(\d+))?", version)
    if not m:
        return None
    major = int(m.group(1))
    if major == 1 and m.group(2):
        major = int(m.group(2))
    return major


def jdk_problem(java: str, java_home: str | None = None) -> str | None:
    """Pure: why the JDK a node would run EI on is refused (None: JDK 8 or 11).

    `java` is java_probe's output. Unknown versions are refused too: EI would start on
    whatever it is and fail later in ways that do not name the JDK."""
    where = f"cluster.java_home = {java_home!r}" if java_home else "the `java` on PATH " \
        "(cluster.java_home is not set)"
    fix = ("install JDK 11 (or 8) on the node and set cluster.java_home in hosts.toml to "
           "it, e.g. java_home = \"/usr/lib/jvm/java-11-openjdk-amd64\"")
    java = java.strip()
    if not java:
        return f"no JDK found ({where}): {fix}"
    if java.startswith("missing "):
        return f"no JDK at {where}: {java.removeprefix('missing ')} does not exist: {fix}"
    m = re.match(r"java (\S+) \((.*)\)$", java) or \
        re.search(r'version "([^"]+)"()', java)
    found = f"{m.group(1)}" + (f" at {m.group(2)}" if m and m.group(2) else "") if m else java
    major = jdk_major(m.group(1)) if m else None
    if major is None:
        return (f"cannot tell the version of the JDK that would run EI ({where}: {java}); "
                f"WSO2 EI 6.6.0 runs on JDK 8 and 11 only: {fix}")
    if major not in SUPPORTED_JDKS:
        return (f"JDK {found} ({where}) is not supported: WSO2 EI 6.6.0 runs on JDK 8 and "
                f"11 only (its wso2server.sh warns and starts anyway); {fix}")
    return None
