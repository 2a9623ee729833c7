# -*- coding: utf-8 -*-
# Copyright: (c) 2026, bootc.composefs maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests for operations/gc_host.py: which boot binaries, state dirs and staged marker a GC plans to remove.

Hosts from the builders (host_tree + image_repo, simhost presets); expected values are what the
builders wrote (kernel dirs, UKIs, addon dirs, entries) and what is on disk afterwards.
"""

from __future__ import annotations

import os

import pytest

from ansible_collections.bootc.composefs.plugins.module_utils.operations import gc
from ansible_collections.bootc.composefs.tests.unit.builders import host_tree
from ansible_collections.bootc.composefs.tests.unit.plugins.module_utils.operations.test_gc import (
    Garbage,
    assert_intact,
    build_uki_host,
    erofs_objects,
    plan,
)


@pytest.fixture
def host(three_deployments):
    sim, images = three_deployments
    return Garbage(sim, images)


@pytest.fixture
def uki_host(tmp_path):
    return build_uki_host(tmp_path)


def test_shared_kernel_dir_is_kept_by_artifact_name(sim_host):
    """bootc#2102: a kernel dir named after a gone deployment stays while an entry uses it."""
    old = sim_host.repo.image([{"usr/a": b"a" * 200}], version="1", marker="1")
    new = sim_host.repo.image([{"usr/b": b"b" * 200}], version="2", marker="2")
    sim_host.tree.type1_dir(old.boot_id)  # created by the first deployment, which is gone now
    sim_host.tree.state_dir(new.boot_id, origin=host_tree.origin_text(digest="0" * 64, manifest_digest=new.manifest_digest))
    sim_host.tree.type1_entry("bootc_simos-2-1.conf", new.boot_id, artifact=old.boot_id, version="2")
    sim_host.repo.bootc_tag(new.manifest_digest)
    sim_host.tree.booted(new.boot_id)
    unused = sim_host.tree.type1_dir("ee" * 32)
    the_plan = plan(sim_host)
    assert the_plan.errors == ()
    assert [b.path for b in the_plan.boot_binaries] == [str(unused)]
    gc.apply_gc(the_plan)
    assert (sim_host.tree.type1_root / (host_tree.PREFIX + old.boot_id) / "vmlinuz").exists()


def test_foreign_entries_of_other_tools_are_ignored(host):
    host.host.tree.entry("fwupd.conf", "title Firmware updater\nefi /EFI/fedora/fwupdx64.efi\n")
    host.host.tree.entry("memtest86+.conf", "title Memtest86+\nlinux /memtest86+/memtest.bin\n")
    the_plan = plan(host.host)
    assert the_plan.errors == ()
    assert [b.path for b in the_plan.boot_binaries] == [str(host.kernel_dir)]


def test_ukis_their_addons_and_orphan_addon_dirs(uki_host):
    built, stale, orphan_addons = uki_host
    the_plan = gc.plan_gc(gc.GcRequest(root=built["root"]))
    assert the_plan.errors == ()
    assert {(b.kind, b.path, b.addon_dir) for b in the_plan.boot_binaries} == {
        ("uki", stale, stale + ".extra.d"), ("addon-dir", orphan_addons, None)}
    gc.apply_gc(the_plan)
    assert not os.path.lexists(stale) and not os.path.lexists(stale + ".extra.d") and not os.path.lexists(orphan_addons)
    for deployment in built["deployments"]:
        assert os.path.isfile(deployment["boot_artifact_path"])
        for addon in deployment["uki_addons"]:
            assert os.path.exists(os.path.join(deployment["boot_artifact_path"] + ".extra.d", addon))


def test_stale_staged_marker_is_removed_and_a_real_one_kept(host):
    marker = host.host.tree.root / "run" / "composefs" / "staged-deployment"
    assert plan(host.host).staged_marker is None
    host.host.tree.staged_marker(host.orphan_verity)
    the_plan = plan(host.host)
    assert the_plan.staged_marker == str(marker)
    gc.apply_gc(the_plan)
    assert not marker.exists()


def test_entry_without_state_dir_keeps_its_image(host, fsverity_tool, composefs_oracle):
    """Open question 6: the entry is not removed and the image it names is protected."""
    host.host.tree.type1_entry("new-entry.conf", host.stale.boot_id, version="9")
    host.host.tree.type1_dir(host.stale.boot_id)
    the_plan = plan(host.host)
    assert the_plan.errors == ()
    gc.apply_gc(the_plan)
    needed = erofs_objects(composefs_oracle, host.repo_root, host.stale.boot_id) | {host.stale.boot_id}
    assert_intact(fsverity_tool, host.repo_root, needed | host.stale.closure)


def test_a_binary_named_only_in_an_entry_file_the_host_did_not_choose_is_kept(host):
    """An entry below the ESP of a GRUB host (not the source bootc reads) and a note file still protect what they name."""
    esp_entry = host.host.tree.esp / "loader" / "entries" / "left-over.conf"
    esp_entry.parent.mkdir(parents=True, exist_ok=True)
    esp_entry.write_text("title Old\nversion 1\nlinux /boot/%s%s/vmlinuz\n" % (host_tree.PREFIX, host.kernel_name))
    the_plan = plan(host.host)
    assert the_plan.errors == () and the_plan.boot_binaries == ()
    esp_entry.unlink()
    (host.host.tree.boot / "loader" / "entries" / "notes.txt").write_text("keep %s%s\n" % (host_tree.PREFIX, host.kernel_name))
    the_plan = plan(host.host)
    assert the_plan.errors == () and the_plan.boot_binaries == ()


def test_an_entry_file_that_cannot_be_read_refuses_the_boot_binaries(host):
    """A file a bootloader may read entries from, not UTF-8: it could name a binary in use (the other phases still run)."""
    path = host.host.tree.boot / "loader" / "entries" / "notes.txt"
    path.write_bytes(b"\xff\xfe")
    the_plan = plan(host.host)
    assert any(error.startswith(str(path) + ":") for error in the_plan.errors)
    assert plan(host.host, boot_binaries=False).errors == ()
