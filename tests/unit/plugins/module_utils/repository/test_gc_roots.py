# -*- coding: utf-8 -*-
# Copyright: (c) 2026, bootc.composefs maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests for repository/gc_roots.py: roots from refs and extra names, simulated ref changes.

``expected_refs`` and ``build_roots`` are pure: table cases from hand-written ``RefLink`` records
(link texts as composefs-repo.md section 5.1 writes them). The simulation is then checked end to end:
a plan made before a tag change deletes exactly what the run after it deletes.
"""

from __future__ import annotations

import os

import pytest

from ansible_collections.bootc.composefs.plugins.module_utils.errors import UnsafePathError
from ansible_collections.bootc.composefs.plugins.module_utils.repository import gc_roots, gc_snapshot
from ansible_collections.bootc.composefs.tests.unit.plugins.module_utils.operations import image_repo
from ansible_collections.bootc.composefs.tests.unit.plugins.module_utils.repository.test_gc import (
    Built,
    apply_plan,
    assert_intact,
    entries_of,
    entries_on_disk,
    objects_on_disk,
    plan_of,
)

MANIFEST_A = "oci-manifest-sha256:" + "a" * 64
MANIFEST_B = "oci-manifest-sha256:" + "b" * 64


@pytest.fixture
def built(tmp_path, fsverity_tool, zstd_tool, composefs_oracle):
    return Built(image_repo.ImageRepo(tmp_path / "repo", fsverity_tool, zstd_tool, composefs_oracle))


def _ref(category, ref, entry, problem=None):
    text = None if entry is None else "../" * (ref.count("/") + 1) + entry
    return gc_snapshot.RefLink(category, ref, text, entry, problem)


SNAPSHOT = gc_snapshot.RepoSnapshot(refs=(
    _ref("images", "keep/boot", "c" * 64),
    _ref("streams", "oci/a:1", MANIFEST_A),
    _ref("streams", "oci/b:1", MANIFEST_B),
    _ref("streams", "oci/broken", None, "not a symbolic link (a ref must be one)"),
), entries=())


def test_expected_refs_remove_and_add_in_the_link_form_of_a_tag():
    refs = gc_roots.expected_refs(SNAPSHOT, add_stream_refs={"oci/c:1": MANIFEST_A, "oci/b:1": MANIFEST_A},
                                  remove_stream_refs=["oci/a:1"])
    assert [(r.category, r.ref, r.link_text, r.entry) for r in refs] == [
        ("images", "keep/boot", "../../" + "c" * 64, "c" * 64),
        ("streams", "oci/b:1", "../../" + MANIFEST_A, MANIFEST_A),
        ("streams", "oci/broken", None, None),
        ("streams", "oci/c:1", "../../" + MANIFEST_A, MANIFEST_A),
    ]


def test_build_roots_names_why_each_entry_is_a_root_and_keeps_bad_refs_apart():
    roots = gc_roots.build_roots(SNAPSHOT.refs, extra_images=["c" * 64, "d" * 64], extra_streams=[MANIFEST_B])
    assert roots.images == {"c" * 64: ("images/refs/keep/boot", "extra root"), "d" * 64: ("extra root",)}
    assert roots.streams == {MANIFEST_A: ("streams/refs/oci/a:1",), MANIFEST_B: ("streams/refs/oci/b:1", "extra root")}
    assert [r.ref for r in roots.bad_refs] == ["oci/broken"]
    assert roots.as_dict()["streams"][MANIFEST_B] == ["streams/refs/oci/b:1", "extra root"]


@pytest.mark.parametrize("added, removed", [
    ({"../escape": MANIFEST_A}, ()),
    ({"oci/ok": "../../etc/passwd"}, ()),
    ({}, ["oci/../../x"]),
    ({}, ["/absolute"]),
], ids=["added-ref-escapes", "added-stream-name-escapes", "removed-ref-escapes", "removed-ref-absolute"])
def test_simulated_changes_with_unsafe_names_are_refused(added, removed):
    with pytest.raises(UnsafePathError):
        gc_roots.validate_ref_changes(added, removed)


def test_simulated_untag_equals_the_real_run(built, fsverity_tool):
    """The plan made before a tag is removed deletes exactly what the run after the removal deletes."""
    before = objects_on_disk(built.root)
    expected = built.a.closure - built.live(built.b, built.app) | built.garbage
    plan = plan_of(built.root, remove_stream_refs=[built.tag_ref(built.a)])
    assert set(plan.object_ids()) == expected
    assert plan.objects_bytes == sum(before[i] for i in expected)
    a_entries = entries_of(built.a, built.root) - {"streams/oci-layer-" + built.a.layers[0].diff_id}
    assert {"%s/%s" % (c, n) for c, n, _t in plan.unlink_entries} == a_entries
    os.unlink(os.path.join(str(built.root), "streams", "refs", built.tag_ref(built.a)))
    result = apply_plan(built.root, plan)
    assert result.validation == "plan"
    assert sorted(raw.hex() for raw in result.removed_objects) == sorted(expected)
    assert result.objects_bytes == plan.objects_bytes
    assert set(objects_on_disk(built.root)) == set(before) - expected
    assert not (set(entries_on_disk(built.root)) & a_entries)
    assert_intact(fsverity_tool, built.root, built.live(built.b, built.app))


def test_simulated_new_ref_protects_its_image(built):
    os.unlink(os.path.join(str(built.root), "streams", "refs", built.tag_ref(built.a)))
    plan = plan_of(built.root, add_stream_refs={built.tag_ref(built.a): "oci-manifest-" + built.a.manifest_digest})
    assert set(plan.object_ids()) == built.garbage
