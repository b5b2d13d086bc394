"""The systemd lab hosts' pure parts (lab/lab.py): the mirror apt uses, when the shared root is
rebuilt, the lab's own shell scripts. No root, no lab."""
from __future__ import annotations

import subprocess

import pytest

from lab import lab

DEB822 = """Types: deb
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
"""

ONE_LINE = """# deb cdrom:[Debian]/ bookworm main
deb http://security.debian.org/debian-security bookworm-security main
deb [arch=amd64] http://mirror.example.org/debian/ bookworm main contrib
"""


def test_mirror_from_deb822(tmp_path, monkeypatch):
    f = tmp_path / "debian.sources"
    f.write_text(DEB822)
    monkeypatch.setattr(lab, "APT_SOURCES", [f, tmp_path / "sources.list"])
    assert lab.apt_mirror() == ("http://deb.debian.org/debian", f)


def test_mirror_from_sources_list(tmp_path, monkeypatch):
    f = tmp_path / "sources.list"
    f.write_text(ONE_LINE)
    monkeypatch.setattr(lab, "APT_SOURCES", [tmp_path / "debian.sources", f])
    assert lab.apt_mirror() == ("http://mirror.example.org/debian/", f)


def test_no_mirror_is_an_error(tmp_path, monkeypatch):
    monkeypatch.setattr(lab, "APT_SOURCES", [tmp_path / "none"])
    with pytest.raises(lab.LabError, match="no Debian mirror"):
        lab.apt_mirror()


def test_root_rebuilt_only_when_its_recipe_changes(tmp_path, monkeypatch):
    f = tmp_path / "debian.sources"
    f.write_text(DEB822)
    monkeypatch.setattr(lab, "APT_SOURCES", [f])
    h = lab._sd_root_hash()
    f.write_text(DEB822.replace("20250520", "20250601"))   # a comment: same root
    assert lab._sd_root_hash() == h
    monkeypatch.setattr(lab, "SD_PACKAGES", lab.SD_PACKAGES + ["less"])
    assert lab._sd_root_hash() != h


def test_kind_is_checked():
    assert lab.Lab(3, 1).kind == "netns"
    assert lab.Lab(3, 1, kind="systemd").cgroup("node1") == "bpslab3/node1"
    with pytest.raises(lab.LabError, match="kind"):
        lab.Lab(3, 1, kind="docker")
    with pytest.raises(lab.LabError, match="only hosts of kind systemd"):
        lab.Lab(3, 1).reboot("node1")


@pytest.mark.parametrize("path", [lab.SD_BASE_SCRIPT, lab.SD_SETUP_SCRIPT, lab.SD_SUPERVISE],
                         ids=lambda p: p.name)
def test_lab_scripts_pass_shellcheck(path):
    r = subprocess.run(["shellcheck", "-s", "sh", str(path)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
