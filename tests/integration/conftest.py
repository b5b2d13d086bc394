"""Integration fixtures: a real lab (network namespaces + sshd + MariaDB + stand-in EI nodes).

Needs root. Never skips: if the lab cannot be made the tests FAIL (CI runs as root).
LAB_INDEX (default 7) picks the lab; extra labs from `lab_factory` use other indexes.
"""
from __future__ import annotations

import os

import pytest

from lab.lab import Lab, LabError


# Indexes of the labs up right now in this session. Lab.up() first takes down whatever lab
# holds its index, so two fixtures on one index would silently share (and break) one lab:
# a second one on a live index fails instead.
_LIVE: dict[int, str] = {}


def _make(index: int, nodes: int, owner: str, **kw) -> Lab:
    if os.geteuid() != 0:
        pytest.fail("integration tests need root (the lab uses network namespaces)", pytrace=False)
    if index in _LIVE:
        pytest.fail(f"lab index {index} is already up for {_LIVE[index]}; {owner} must use "
                    "another offset from LAB_INDEX", pytrace=False)
    lab = Lab(index=index, nodes=nodes, **kw)
    try:
        lab.up()
    except (LabError, OSError) as e:
        try:
            lab.down()
        finally:
            pytest.fail(f"could not bring up lab {index}: {e}", pytrace=False)
    _LIVE[index] = owner
    return lab


def _down(lab: Lab) -> None:
    try:
        lab.down()
    finally:
        _LIVE.pop(lab.index, None)


@pytest.fixture(scope="module")
def lab(request):
    """The module's lab: LAB_INDEX (default 7), 2 nodes. Each module gets a fresh one and it is
    torn down at the module's end, even on failure, so no module sees another's deploy."""
    lab = _make(int(os.environ.get("LAB_INDEX", "7")), 2, request.module.__name__)
    try:
        yield lab
    finally:
        _down(lab)


@pytest.fixture(scope="module")
def lab_factory(request):
    """make(index=K, nodes=N, ei_home=True, kind="netns") -> Lab, up; all are torn down at the
    module's end. kind="systemd": hosts that boot systemd (systemd-nspawn), see lab/lab.py.
    Within a module every lab needs its own index; across modules indexes are reused."""
    made: list[Lab] = []

    def make(index: int, nodes: int = 2, **kw) -> Lab:
        lab = _make(index, nodes, request.module.__name__, **kw)
        made.append(lab)
        return lab

    try:
        yield make
    finally:
        for lab in reversed(made):
            _down(lab)
