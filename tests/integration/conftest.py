"""Integration fixtures: a real lab (network namespaces + sshd + MariaDB + stand-in EI nodes).

Needs root. Never skips: if the lab cannot be made the tests FAIL (CI runs as root).
LAB_INDEX (default 7) picks the lab; extra labs from `lab_factory` use other indexes.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from tests.paths import REPO

from lab.lab import Lab, LabError  # noqa: E402


def _make(index: int, nodes: int, **kw) -> Lab:
    if os.geteuid() != 0:
        pytest.fail("integration tests need root (the lab uses network namespaces)", pytrace=False)
    lab = Lab(index=index, nodes=nodes, **kw)
    try:
        lab.up()
    except (LabError, OSError) as e:
        try:
            lab.down()
        finally:
            pytest.fail(f"could not bring up lab {index}: {e}", pytrace=False)
    return lab


@pytest.fixture(scope="session")
def lab():
    """The session's lab: LAB_INDEX (default 7), 2 nodes. Torn down even on failure."""
    lab = _make(int(os.environ.get("LAB_INDEX", "7")), 2)
    try:
        yield lab
    finally:
        lab.down()


@pytest.fixture(scope="session")
def lab_factory():
    """make(index=K, nodes=N, ei_home=True, kind="netns") -> Lab, up; all are torn down at
    session end. kind="systemd": hosts that boot systemd (systemd-nspawn), see lab/lab.py."""
    made: list[Lab] = []

    def make(index: int, nodes: int = 2, **kw) -> Lab:
        lab = _make(index, nodes, **kw)
        made.append(lab)
        return lab

    try:
        yield make
    finally:
        for lab in reversed(made):
            lab.down()
