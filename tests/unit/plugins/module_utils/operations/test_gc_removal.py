# -*- coding: utf-8 -*-
# Copyright: (c) 2026, bootc.composefs maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests for operations/gc_removal.py: deletions stay below the sysroot, boot dir and ESP, never follow a symlink.

Hosts from the builders; what must survive (files outside the tree, the shared /var, targets of
symlinks) is written by the test and read back afterwards.
"""

from __future__ import annotations

import os

import pytest

from ansible_collections.bootc.composefs.plugins.module_utils.errors import PlanError
from ansible_collections.bootc.composefs.plugins.module_utils.operations import gc

from ansible_collections.bootc.composefs.tests.unit.plugins.module_utils.operations.test_gc import (
    Garbage,
    build_uki_host,
    host_tree,
    run,
    tree_digest,
)


@pytest.fixture
def host(three_deployments):
    sim, images = three_deployments
    return Garbage(sim, images)


@pytest.fixture
def uki_host(tmp_path):
    return build_uki_host(tmp_path)


def test_orphan_state_dir_removal_never_follows_symlinks(host, tmp_path):
    """Rule 6: the shared /var and anything a symlink inside the orphan names stay."""
    var = host.host.tree.sysroot / "state" / "os" / "default" / "var"
    var.mkdir(parents=True)
    (var / "precious").write_text("keep")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious").write_text("keep")
    os.symlink(str(outside), str(host.orphan_dir / "etc" / "escape"))
    (host.orphan_dir / "etc" / "deep" / "er").mkdir(parents=True)
    (host.orphan_dir / "etc" / "deep" / "er" / "file").write_text("x")
    run(host.host)
    assert not host.orphan_dir.exists()
    assert (var / "precious").read_text() == "keep"
    assert (outside / "precious").read_text() == "keep"


def test_kernel_dir_symlink_is_never_followed(host, tmp_path):
    outside = tmp_path / "outside-kernel"
    outside.mkdir()
    (outside / "vmlinuz").write_bytes(b"not ours")
    link = host.host.tree.type1_root / (host_tree.PREFIX + "ff" * 32)
    os.symlink(str(outside), str(link))
    run(host.host)
    assert (outside / "vmlinuz").read_bytes() == b"not ours"
    assert os.path.islink(str(link))


def test_boot_binaries_dir_leading_out_of_the_esp_refuses(uki_host):
    """Rule 6: the UKI dir is a symlink to a directory outside the ESP: nothing is deleted there, or anywhere."""
    built, stale, _orphan_addons = uki_host
    uki_dir = built["paths"]["uki_dir"]
    elsewhere = os.path.join(built["root"], "elsewhere")
    os.rename(uki_dir, elsewhere)
    os.symlink(os.path.relpath(elsewhere, os.path.dirname(uki_dir)), uki_dir)
    digest = tree_digest(built["root"])
    for check_mode in (True, False):
        with pytest.raises(PlanError) as raised:
            gc.run_gc(gc.GcRequest(root=built["root"]), check_mode=check_mode)
        assert stale in str(raised.value) and "outside the sysroot, boot dir and ESP" in str(raised.value)
    assert tree_digest(built["root"]) == digest
