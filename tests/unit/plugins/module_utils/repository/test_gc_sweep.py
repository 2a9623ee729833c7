# -*- coding: utf-8 -*-
# Copyright: (c) 2026, bootc.composefs maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests for repository/gc_sweep.py: what the sweep plans to delete and what it reports, never touches.

Repositories and oracles as in test_gc.py (``image_repo`` builders; ``os.walk`` / ``os.lstat`` for
what is on disk). The fast path (a directory of valid names, decoded at once) is compared with the
name-by-name path on the same directories.
"""

from __future__ import annotations

import os

import pytest

from ansible_collections.bootc.composefs.plugins.module_utils.repository import gc_listing, gc_mark, gc_roots, gc_snapshot, gc_sweep
from ansible_collections.bootc.composefs.tests.unit.plugins.module_utils.operations import image_repo
from ansible_collections.bootc.composefs.tests.unit.plugins.module_utils.repository.test_gc import (
    Built,
    apply_plan,
    objects_on_disk,
    open_repo,
    plan_of,
)


@pytest.fixture
def built(tmp_path, fsverity_tool, zstd_tool, composefs_oracle):
    return Built(image_repo.ImageRepo(tmp_path / "repo", fsverity_tool, zstd_tool, composefs_oracle))


def _sweep(root, untag=()):
    """(Sweep, live set) of the repository at ``root`` with the tags of ``untag`` simulated away."""
    with open_repo(root, writable=False) as repo:
        snapshot = gc_snapshot.scan_repository(repo)
        roots = gc_roots.build_roots(gc_roots.expected_refs(snapshot, remove_stream_refs=untag))
        live = gc_mark.mark(repo, roots, snapshot).live
        return gc_sweep.sweep_objects(repo, live), live


def test_entry_of_a_missing_object_is_reported_then_pruned(built):
    missing = "ab" * 32
    built.repo.builder.add_entry("streams", "half-written", missing)
    built.repo.builder.add_ref("streams", "half", "half-written")
    built.repo.builder.add_entry("images", "cd" * 32, "cd" * 32)
    plan = plan_of(built.root)
    assert plan.errors == ()
    assert [d["entry"] for d in plan.dangling_refs] == ["streams/half-written"]
    assert {(c, n) for c, n, _t in plan.prune_entries} == {("streams", "half-written"), ("images", "cd" * 32)}
    result = apply_plan(built.root, plan)
    assert set(result.pruned_entries) == {("streams", "half-written"), ("images", "cd" * 32)}
    assert not os.path.lexists(os.path.join(str(built.root), "streams", "half-written"))
    assert os.path.islink(os.path.join(str(built.root), "streams", "refs", "half"))


def test_names_that_are_no_objects_are_reported_and_untouched(built):
    base = os.path.join(str(built.root), "objects")
    some = sorted(built.garbage)[0]
    odd = {
        os.path.join(base, some[:2], some[2:].upper()): "file",
        os.path.join(base, some[:2], "short"): "file",
        os.path.join(base, "ff", "e" * 62): "dir",
        os.path.join(base, "fe", "d" * 62): "link",
        os.path.join(base, ".tmp-object-abcdefabcdef"): "file",
        os.path.join(base, "not-hex"): "dir",
    }
    for path, kind in odd.items():
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if kind == "file":
            with open(path, "wb") as handle:
                handle.write(b"x")
        elif kind == "dir":
            os.mkdir(path)
        else:
            os.symlink("/etc/passwd", path)
    plan = plan_of(built.root)
    assert set(plan.object_ids()) == built.garbage
    reported = {path for path, _problem in plan.invalid_objects}
    assert reported == {p for p in odd if ".tmp-object-" not in p}
    apply_plan(built.root, plan)
    for path in odd:
        assert os.path.lexists(path)


def test_fast_path_equals_the_name_by_name_path(built, monkeypatch):
    """Every directory decoded at once, or every name looked at one by one: the same sweep."""
    fast, _live = _sweep(built.root, untag=[built.tag_ref(built.a)])
    monkeypatch.setattr(gc_listing, "_subdir_digests", lambda subdir, names, digest_size: None)
    slow, _live = _sweep(built.root, untag=[built.tag_ref(built.a)])
    assert fast == slow
    on_disk = objects_on_disk(built.root)
    assert fast.present == len(on_disk)
    assert {raw.hex(): size for raw, size in zip(fast.remove, fast.sizes)} == {
        object_id: on_disk[object_id] for object_id in built.a.closure - built.live(built.b, built.app) | built.garbage}


def test_a_directory_with_an_odd_name_is_swept_like_the_others(built):
    """One upper-case name sends its directory down the name-by-name path: reported, never touched; the rest as before."""
    expected = set(plan_of(built.root).object_ids())
    some = sorted(built.garbage)[0]
    odd = os.path.join(str(built.root), "objects", some[:2], "ab" * 31 + "AB")
    with open(odd, "wb") as handle:
        handle.write(b"not an object")
    plan = plan_of(built.root)
    assert set(plan.object_ids()) == expected
    assert [path for path, _problem in plan.invalid_objects] == [odd]
    apply_plan(built.root, plan)
    assert os.path.exists(odd)


def test_an_object_gone_between_listing_and_lstat_is_skipped(built, monkeypatch):
    """A name the listing gave that no longer exists (a concurrent GC of another tool): neither counted nor planned."""
    ghost = "%s%s" % (sorted(built.garbage)[0][:2], "e" * 62)
    real_listdir = os.listdir

    def listdir(path):
        names = real_listdir(path)
        if isinstance(path, int) and sorted(built.garbage)[0][2:] in names:
            names.append(ghost[2:])
        return names

    monkeypatch.setattr(gc_sweep.os, "listdir", listdir)
    sweep, _live = _sweep(built.root)
    assert {raw.hex() for raw in sweep.remove} == built.garbage
    assert sweep.present == len(objects_on_disk(built.root))
