"""The remote scripts in tasks/scripts/: what shellcheck checks is what runs on the hosts."""
from __future__ import annotations

import subprocess

import pytest

from tasks.engine import remote

SCRIPTS = sorted(remote.SCRIPTS_DIR.glob("*.sh"))


def test_there_are_scripts():
    assert {p.name for p in SCRIPTS} >= {"backups.sh", "files.sh", "ei_process.sh",
                                         "truststore_import.sh"}


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: p.name)
def test_shellcheck_passes(path):
    r = subprocess.run(["shellcheck", "-s", "sh", str(path)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_parameters_are_quoted_in_the_header():
    s = remote.script("backups.sh", BACKUP_DIR="/var/backups/x y", STAMP="S", KEEP=3)
    assert s.startswith("BACKUP_DIR='/var/backups/x y'\nSTAMP=S\nKEEP=3\n")
