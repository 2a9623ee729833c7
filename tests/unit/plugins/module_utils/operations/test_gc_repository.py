# -*- coding: utf-8 -*-
# Copyright: (c) 2026, bootc.composefs maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests for operations/gc_repository.py: live manifests (origin, .imginfo, tag search), bootc tags, live images kept.

Hosts from the builders; expected manifests and closures are what ``image_repo`` built, tags what
is on disk (readlink), surviving objects checked with the ``fsverity`` oracle.
"""

from __future__ import annotations

import json
import os

import pytest

from ansible_collections.bootc.composefs.plugins.module_utils.operations import gc

from ansible_collections.bootc.composefs.tests.unit.plugins.module_utils.operations.test_gc import (
    Garbage,
    assert_intact,
    assert_live_complete,
    bootc_tag_file,
    erofs_objects,
    plan,
    run,
    tags_on_disk,
)


@pytest.fixture
def host(three_deployments):
    sim, images = three_deployments
    return Garbage(sim, images)


def test_missing_bootc_tag_is_created_before_anything_is_deleted(host, fsverity_tool):
    booted = host.images["booted"]
    os.unlink(os.path.join(str(host.repo_root), "streams", "refs", "oci", bootc_tag_file(booted.manifest_digest)))
    the_plan = plan(host.host)
    assert [(t.tag, t.manifest_digest) for t in the_plan.tags_create] == [
        ("localhost/bootc-" + booted.manifest_digest, booted.manifest_digest)]
    assert not set(the_plan.repository.object_ids()) & booted.closure
    steps = []
    result = gc.apply_gc(the_plan, step=lambda kind, what: steps.append(kind))
    assert steps[0] == "tag-create"
    assert result.repository.validation == "plan"  # the simulated tag is exactly the one created
    assert sorted(raw.hex() for raw in result.repository.removed_objects) == sorted(the_plan.repository.object_ids())
    assert_live_complete(fsverity_tool, host)


def test_untagged_live_image_survives_with_the_tags_phase_off(host, fsverity_tool):
    """Live manifests are extra roots, so a live image without any tag is kept even when tags are not touched."""
    booted = host.images["booted"]
    os.unlink(os.path.join(str(host.repo_root), "streams", "refs", "oci", bootc_tag_file(booted.manifest_digest)))
    run(host.host, tags=False)
    assert_intact(fsverity_tool, host.repo_root, booted.closure)
    assert bootc_tag_file(host.stale.manifest_digest) in tags_on_disk(host.repo_root)


def test_foreign_tag_is_never_touched_and_keeps_a_stale_bootc_manifest(host):
    host.host.repo.tag("quay.io/example/pinned:old", host.stale.manifest_digest)
    result = run(host.host)
    tags = tags_on_disk(host.repo_root)
    assert bootc_tag_file(host.stale.manifest_digest) not in tags
    assert tags["quay.io%2Fexample%2Fpinned:old"] == "../../oci-manifest-" + host.stale.manifest_digest
    assert result.as_dict()["objects_removed"] == 0


def test_deployment_without_origin_is_live(host, fsverity_tool):
    """Open question 7: an entry + state dir without origin still boots; its image is kept."""
    rollback = host.images["rollback"]
    os.unlink(str(host.host.tree.state / rollback.boot_id / (rollback.boot_id + ".origin")))
    the_plan = plan(host.host)
    assert the_plan.errors == ()
    live = {item.verity: item for item in the_plan.live}
    assert live[rollback.boot_id].role == "unlisted"
    assert live[rollback.boot_id].manifest_digests == (rollback.manifest_digest,)
    gc.apply_gc(the_plan)
    assert_intact(fsverity_tool, host.repo_root, rollback.closure)


def test_legacy_deployment_keeps_its_tag_through_imginfo(sim_host, fsverity_tool):
    image = sim_host.repo.image([{"usr/legacy": b"l" * 300}], version="1", marker="l")
    imginfo = json.dumps({"config": image.config, "manifest": image.manifest})
    sim_host.deploy(image, "bootc_simos-1-1.conf", "bootc-simos-0", version="1", manifest_digest=None, imginfo=imginfo)
    sim_host.tree.booted(image.boot_id)
    the_plan = plan(sim_host)
    assert the_plan.live[0].manifest_digests == (image.manifest_digest,)
    assert the_plan.live[0].source == "imginfo"
    gc.apply_gc(the_plan)
    assert bootc_tag_file(image.manifest_digest) in tags_on_disk(sim_host.repo.root)
    assert_intact(fsverity_tool, sim_host.repo.root, image.closure)


def test_legacy_origin_without_imginfo_refuses(sim_host):
    """bootc's status fails on an origin without manifest_digest and without .imginfo (spec 2.9): so do we."""
    image = sim_host.repo.image([{"usr/legacy": b"m" * 300}], version="1", marker="m")
    sim_host.deploy(image, "bootc_simos-1-1.conf", "bootc-simos-0", version="1", manifest_digest=None)
    sim_host.tree.booted(image.boot_id)
    the_plan = plan(sim_host)
    origin = str(sim_host.tree.state / image.boot_id / (image.boot_id + ".origin"))
    assert any(origin in error for error in the_plan.errors)


def test_deployment_without_origin_found_by_tag_search(sim_host, fsverity_tool):
    image = sim_host.repo.image([{"usr/legacy": b"m" * 300}], version="1", marker="m")
    sim_host.deploy(image, "bootc_simos-1-1.conf", "bootc-simos-0", version="1")
    os.unlink(str(sim_host.tree.state / image.boot_id / (image.boot_id + ".origin")))
    sim_host.tree.booted(image.boot_id)
    the_plan = plan(sim_host)
    assert the_plan.errors == ()
    assert the_plan.live[0].manifest_digests == (image.manifest_digest,) and the_plan.live[0].source == "tag-search"
    gc.apply_gc(the_plan)
    assert_intact(fsverity_tool, sim_host.repo.root, image.closure)


def test_unresolvable_deployment_keeps_its_boot_image(sim_host, fsverity_tool, composefs_oracle):
    image = sim_host.repo.image([{"usr/legacy": b"n" * 300}], version="1", marker="n")
    sim_host.deploy(image, "bootc_simos-1-1.conf", "bootc-simos-0", version="1", tag=False)
    os.unlink(str(sim_host.tree.state / image.boot_id / (image.boot_id + ".origin")))
    sim_host.tree.booted(image.boot_id)
    the_plan = plan(sim_host)
    assert the_plan.errors == ()
    assert the_plan.live[0].manifest_digests == () and the_plan.warnings
    gc.apply_gc(the_plan)
    assert_intact(fsverity_tool, sim_host.repo.root,
                  erofs_objects(composefs_oracle, sim_host.repo.root, image.boot_id) | {image.boot_id})
