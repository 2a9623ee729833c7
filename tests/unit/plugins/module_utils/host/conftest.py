"""Host-layer test fixtures: the text-level host tree builder (tests/unit/builders/host_tree.py)."""

import pathlib
import sys

import pytest

BUILDERS = pathlib.Path(__file__).resolve().parents[3] / "builders"
if str(BUILDERS) not in sys.path:
    sys.path.insert(0, str(BUILDERS))

import host_tree  # noqa: E402  pylint: disable=wrong-import-position


@pytest.fixture
def grub_tree(tmp_path):
    """An empty GRUB classic host tree (no LoaderInfo)."""
    return host_tree.HostTree(tmp_path / "grub-root", bootloader="grub")


@pytest.fixture
def systemd_tree(tmp_path):
    """An empty systemd-boot host tree (LoaderInfo says systemd-boot)."""
    return host_tree.HostTree(tmp_path / "systemd-root", bootloader="systemd")
