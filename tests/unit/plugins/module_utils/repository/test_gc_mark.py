# -*- coding: utf-8 -*-
# Copyright: (c) 2026, bootc.composefs maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests for repository/gc_mark.py: what the mark keeps alive, walks, parses and reports.

Repositories and oracles as in test_gc.py (``image_repo`` builders, ``composefs-info objects`` for
what a boot image references, the ``fsverity`` oracle for surviving objects); the mark is observed
through the plan it feeds (``plan_repository_gc``).
"""

from __future__ import annotations

import os

import pytest

from ansible_collections.bootc.composefs.tests.unit.builders import repo_builder as rb
from ansible_collections.bootc.composefs.tests.unit.plugins.module_utils.operations import image_repo
from ansible_collections.bootc.composefs.tests.unit.plugins.module_utils.repository.test_gc import (
    CT_LAYER,
    Built,
    apply_plan,
    assert_intact,
    erofs_objects,
    plan_of,
)


@pytest.fixture
def built(tmp_path, fsverity_tool, zstd_tool, composefs_oracle):
    return Built(image_repo.ImageRepo(tmp_path / "repo", fsverity_tool, zstd_tool, composefs_oracle))


def test_extra_image_root_keeps_the_image_and_what_it_references(built, fsverity_tool, composefs_oracle):
    os.unlink(os.path.join(str(built.root), "streams", "refs", built.tag_ref(built.a)))
    boot_path = os.path.join(str(built.root), "objects", built.a.boot_id[:2], built.a.boot_id[2:])
    referenced = erofs_objects(composefs_oracle, boot_path)
    assert referenced and referenced <= built.a.file_ids
    plan = plan_of(built.root, extra_images=[built.a.boot_id])
    removed = set(plan.object_ids())
    assert not removed & (referenced | {built.a.boot_id})
    assert removed == (built.a.closure - built.live(built.b, built.app) - referenced - {built.a.boot_id}) | built.garbage
    assert plan.parsed_images == 1
    apply_plan(built.root, plan)
    assert_intact(fsverity_tool, built.root, referenced | {built.a.boot_id})


def test_image_ref_root_is_parsed(built, composefs_oracle):
    os.unlink(os.path.join(str(built.root), "streams", "refs", built.tag_ref(built.a)))
    built.repo.builder.add_ref("images", "keep/boot", built.a.boot_id)
    boot_path = os.path.join(str(built.root), "objects", built.a.boot_id[:2], built.a.boot_id[2:])
    referenced = erofs_objects(composefs_oracle, boot_path)
    plan = plan_of(built.root)
    assert not set(plan.object_ids()) & (referenced | {built.a.boot_id})
    assert "images/refs/keep/boot" in plan.roots.images[built.a.boot_id]


def test_extra_stream_root(built):
    os.unlink(os.path.join(str(built.root), "streams", "refs", built.tag_ref(built.a)))
    plan = plan_of(built.root, extra_streams=["oci-manifest-" + built.a.manifest_digest, "oci-manifest-sha256:" + "0" * 64])
    assert set(plan.object_ids()) == built.garbage


def test_streams_are_followed_by_object_id_without_their_entry(built):
    """composefs-rs would lose the layers of a config whose entry is gone; we walk the object the manifest names."""
    os.unlink(os.path.join(str(built.root), "streams", "oci-config-" + built.a.config_digest))
    plan = plan_of(built.root)
    assert set(plan.object_ids()) == built.garbage
    assert plan.errors == ()


def test_config_erofs_images_are_kept_not_parsed(built):
    plan = plan_of(built.root)
    assert plan.parsed_images == 0
    assert not {built.a.plain_id, built.a.boot_id} & set(plan.object_ids())


def test_legacy_header_splitstreams_are_walked(built, zstd_tool):
    data = rb.splitstream_bytes(zstd_tool, "sha256", CT_LAYER, 0, [], [bytes.fromhex(i) for i in built.garbage], b"",
                                b"", legacy=True)
    legacy = built.repo.object(data)
    built.repo.entry("streams", "legacy-stream", legacy)
    built.repo.builder.add_ref("streams", "legacy", "legacy-stream")
    plan = plan_of(built.root)
    assert plan.errors == () and plan.object_ids() == []


def test_dangling_ref_is_reported_and_kept(built):
    built.repo.builder.add_ref("streams", "oci/gone:1", "oci-manifest-sha256:" + "1" * 64)
    plan = plan_of(built.root)
    assert plan.errors == ()
    assert [d["entry"] for d in plan.dangling_refs] == ["streams/oci-manifest-sha256:" + "1" * 64]
    apply_plan(built.root, plan)
    assert os.path.islink(os.path.join(str(built.root), "streams", "refs", "oci", "gone:1"))


def test_stream_ref_to_a_missing_object_is_reported(built, zstd_tool):
    missing = bytes.fromhex("ef" * 32)
    data = rb.splitstream_bytes(zstd_tool, "sha256", CT_LAYER, 0, [missing], [], b"0:child\0", b"")
    parent = built.repo.object(data)
    built.repo.entry("streams", "parent", parent)
    built.repo.builder.add_ref("streams", "parent", "parent")
    plan = plan_of(built.root)
    assert plan.errors == ()
    assert "ef" * 32 in plan.missing_objects


def test_leaf_objects_are_never_read(built):
    """Objects only named (layer files, EROFS images a config names) are kept without being opened: damage there is no error."""
    leaf = sorted(built.a.file_ids)[0]
    path = os.path.join(str(built.root), "objects", leaf[:2], leaf[2:])
    with open(path, "r+b") as handle:
        handle.truncate(3)
    plan = plan_of(built.root)
    assert plan.errors == ()
    assert leaf not in plan.object_ids() and set(plan.object_ids()) == built.garbage
    images = (built.a, built.b, built.app)
    streams = {i.manifest_stream_id for i in images} | {i.config_stream_id for i in images}
    assert plan.walked_streams == len(streams | {layer.stream_id for i in images for layer in i.layers})
