# -*- coding: utf-8 -*-
# Copyright: (c) 2026, bootc.composefs maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests for repository/gc.py: plans and their application on hand-built repositories (end to end).

Repositories come from the independent builders (``image_repo.ImageRepo``: object names from the
``fsverity digest`` oracle, splitstreams assembled field by field with the ``zstd`` CLI, EROFS
images by ``mkcomposefs``). Expected values are what was built (each image's ``closure``), what
is on disk (``os.walk`` / ``os.lstat``), the ``fsverity`` oracle (surviving objects are intact)
and ``composefs-info objects`` (what an EROFS image references); never a first run of the code
under test. The steps have their own files: test_gc_snapshot.py, test_gc_roots.py, test_gc_mark.py,
test_gc_sweep.py (they share the builders and oracles of this file).
"""

from __future__ import annotations

import os
import shutil
import struct

import pytest

from ansible_collections.bootc.composefs.plugins.module_utils.errors import PlanError, RepositoryLockedError
from ansible_collections.bootc.composefs.plugins.module_utils.repository import gc
from ansible_collections.bootc.composefs.plugins.module_utils.repository.repo import Repository
from ansible_collections.bootc.composefs.tests.unit.builders import repo_builder as rb
from ansible_collections.bootc.composefs.tests.unit.plugins.module_utils.operations import image_repo

CT_LAYER = image_repo.CT_LAYER


# --- helpers (oracles) -------------------------------------------------------------------------------


def objects_on_disk(root) -> dict:
    """``{object id: st_size}`` of every regular file below ``objects/<xx>/`` (os.walk, no follow)."""
    found = {}
    base = os.path.join(str(root), "objects")
    for sub in sorted(os.listdir(base)) if os.path.isdir(base) else []:
        path = os.path.join(base, sub)
        if len(sub) != 2 or not os.path.isdir(path) or os.path.islink(path):
            continue
        for name in os.listdir(path):
            info = os.lstat(os.path.join(path, name))
            if os.path.isfile(os.path.join(path, name)) and not os.path.islink(os.path.join(path, name)):
                found[sub + name] = info.st_size
    return found


def entries_on_disk(root) -> dict:
    """``{"<category>/<name>": link text}`` of the first-level entries."""
    found = {}
    for category in ("images", "streams"):
        base = os.path.join(str(root), category)
        for name in sorted(os.listdir(base)) if os.path.isdir(base) else []:
            if name != "refs":
                found["%s/%s" % (category, name)] = os.readlink(os.path.join(base, name))
    return found


def refs_on_disk(root) -> dict:
    found = {}
    for category in ("images", "streams"):
        base = os.path.join(str(root), category, "refs")
        for dirpath, _dirs, files in os.walk(base):
            for name in files:
                path = os.path.join(dirpath, name)
                found[os.path.relpath(path, str(root))] = os.readlink(path) if os.path.islink(path) else "<file>"
    return found


def assert_intact(fsverity_tool, root, object_ids):
    """Every object is present and its content has the fs-verity digest its name says (oracle)."""
    for object_id in object_ids:
        path = os.path.join(str(root), "objects", object_id[:2], object_id[2:])
        assert os.path.isfile(path), "live object %s was removed" % object_id
        assert rb.fsverity_digest(fsverity_tool, path, "sha256") == object_id


def erofs_objects(composefs_oracle, path) -> set:
    """Object ids an EROFS image references, as composefs-info lists them."""
    out = composefs_oracle("composefs-info", "objects", path).stdout.decode()
    return {line.replace("/", "") for line in out.split()}


def open_repo(root, writable=True):
    return Repository.open(str(root), writable=writable)


def plan_of(root, **kwargs):
    with open_repo(root, writable=False) as repo:
        return gc.plan_repository_gc(repo, **kwargs)


def apply_plan(root, plan, **kwargs):
    with open_repo(root) as repo:
        return gc.apply_repository_gc(repo, plan, **kwargs)


class Built:
    """Two tagged images sharing a layer, an app image, and garbage objects."""

    def __init__(self, repo):
        self.repo = repo
        self.root = repo.root
        shared = {"usr/lib/os-release": b"ID=simos\n" + b"s" * 300}
        self.a = repo.image([shared, {"usr/share/a": b"a" * 700}], version="1", marker="a")
        self.b = repo.image([shared, {"usr/share/b": b"b" * 900}], version="2", marker="b")
        self.app = repo.image([{"app/bin": b"app" * 150}], version="app", marker="p")
        repo.tag("localhost/bootc-" + self.a.manifest_digest, self.a.manifest_digest)
        repo.tag("localhost/bootc-" + self.b.manifest_digest, self.b.manifest_digest)
        repo.tag("quay.io/example/app:1", self.app.manifest_digest)
        self.garbage = {repo.object(b"garbage one " * 40), repo.object(b"garbage two " * 90)}

    def tag_ref(self, image):
        return "oci/" + image_repo.encode_tag("localhost/bootc-" + image.manifest_digest)

    def live(self, *images):
        return set().union(*(image.closure for image in images))


@pytest.fixture
def built(tmp_path, fsverity_tool, zstd_tool, composefs_oracle):
    return Built(image_repo.ImageRepo(tmp_path / "repo", fsverity_tool, zstd_tool, composefs_oracle))


def entries_of(image, repo_root):
    """The first-level entries that name objects of ``image`` only."""
    names = {"streams/oci-manifest-" + image.manifest_digest, "streams/oci-config-" + image.config_digest,
             "images/" + image.plain_id, "images/" + image.boot_id}
    names |= {"streams/oci-layer-" + layer.diff_id for layer in image.layers}
    return {n for n in names if os.path.lexists(os.path.join(str(repo_root), n))}


# --- end to end: plan, then apply ---------------------------------------------------------------------


def test_all_tagged_only_garbage_goes(built, fsverity_tool):
    before = objects_on_disk(built.root)
    plan = plan_of(built.root)
    assert plan.errors == ()
    assert set(plan.object_ids()) == built.garbage
    assert plan.objects_bytes == sum(before[i] for i in built.garbage)
    assert plan.unlink_entries == () and plan.prune_entries == ()
    result = apply_plan(built.root, plan)
    assert result.validation == "plan"
    assert {raw.hex() for raw in result.removed_objects} == built.garbage
    assert set(objects_on_disk(built.root)) == set(before) - built.garbage
    assert_intact(fsverity_tool, built.root, built.live(built.a, built.b, built.app))


def test_foreign_tag_keeps_its_image_and_refs_are_never_removed(built, fsverity_tool):
    refs_before = refs_on_disk(built.root)
    plan = plan_of(built.root, remove_stream_refs=[built.tag_ref(built.a), built.tag_ref(built.b)])
    assert not set(plan.object_ids()) & built.app.closure
    apply_plan(built.root, plan)
    assert refs_on_disk(built.root) == refs_before
    assert_intact(fsverity_tool, built.root, built.app.closure)


# --- refusals: nothing at all is deleted --------------------------------------------------------------


def _regular_file_ref(built):
    path = os.path.join(str(built.root), "streams", "refs", "oci", "not-a-link")
    with open(path, "w") as handle:
        handle.write("x")
    return path


def _escaping_ref(built):
    built.repo.builder.add_ref("streams", "oci/evil", "../../../../etc/passwd")
    return os.path.join(str(built.root), "streams", "refs", "oci", "evil")


def _absolute_ref(built):
    path = os.path.join(str(built.root), "streams", "refs", "oci", "absolute")
    os.symlink("/etc/passwd", path)
    return path


def _non_utf8_ref(built):
    path = os.path.join(os.fsencode(str(built.root)), b"streams", b"refs", b"oci", b"bad-\xff")
    os.symlink(b"../../oci-manifest-" + built.a.manifest_digest.encode(), path)
    return os.path.join(str(built.root), "streams", "refs", "oci")


def _corrupt_object(built, object_id, keep=40):
    path = os.path.join(str(built.root), "objects", object_id[:2], object_id[2:])
    with open(path, "r+b") as handle:
        handle.truncate(keep)
    return path


def _truncated_manifest_stream(built):
    return _corrupt_object(built, built.b.manifest_stream_id)


def _truncated_config_stream(built):
    return _corrupt_object(built, built.b.config_stream_id, keep=120)


def _bad_named_refs(built):
    path = os.path.join(str(built.root), "objects", built.b.config_stream_id[:2], built.b.config_stream_id[2:])
    data = bytearray(open(path, "rb").read())
    start = struct.unpack_from("<Q", data, 32 + 48)[0]
    data[start:start + 4] = b"\xff\xff\xff\xff"
    with open(path, "wb") as handle:
        handle.write(bytes(data))
    return path


def _corrupt_root_image(built):
    built.repo.builder.add_ref("images", "keep", built.a.boot_id)
    return _corrupt_object(built, built.a.boot_id, keep=1200)


def _root_entry_not_a_symlink(built):
    path = os.path.join(str(built.root), "streams", "plain-file")
    with open(path, "w") as handle:
        handle.write("x")
    built.repo.builder.add_ref("streams", "plain", "plain-file")
    return path


def _root_entry_escaping(built):
    built.repo.builder.symlink("streams/escaping", "../../../etc/passwd")
    built.repo.builder.add_ref("streams", "escaping", "escaping")
    return os.path.join(str(built.root), "streams", "escaping")


def _objects_is_a_symlink(built):
    objects = os.path.join(str(built.root), "objects")
    os.rename(objects, objects + "-real")
    os.symlink("objects-real", objects)
    return objects


def _flipped_stream_ref(built):
    """A bit flipped in the config's stream_refs array: it still parses, but names another layer."""
    path = os.path.join(str(built.root), "objects", built.b.config_stream_id[:2], built.b.config_stream_id[2:])
    data = bytearray(open(path, "rb").read())
    start = struct.unpack_from("<Q", data, 32)[0]
    data[start + 5] ^= 0x10
    with open(path, "wb") as handle:
        handle.write(bytes(data))
    return path


def _truncated_stream_without_entry(built):
    """A config stream cut inside its header, no streams/ entry left to say it is a stream."""
    os.unlink(os.path.join(str(built.root), "streams", "oci-config-" + built.b.config_digest))
    return _corrupt_object(built, built.b.config_stream_id, keep=14)


REFUSALS = [_flipped_stream_ref, _truncated_stream_without_entry, _regular_file_ref, _escaping_ref, _absolute_ref, _non_utf8_ref, _truncated_manifest_stream,
            _truncated_config_stream, _bad_named_refs, _corrupt_root_image, _root_entry_not_a_symlink,
            _root_entry_escaping, _objects_is_a_symlink]


@pytest.mark.parametrize("damage", REFUSALS, ids=[f.__name__.strip("_") for f in REFUSALS])
def test_unparsable_root_refuses_everything(built, damage):
    path = damage(built)
    snapshot = rb.tree_snapshot(built.root)
    plan = plan_of(built.root, remove_stream_refs=[built.tag_ref(built.a)])
    assert plan.errors, plan.as_dict()
    assert any(path in error for error in plan.errors), plan.errors
    with pytest.raises(PlanError) as raised:
        apply_plan(built.root, plan)
    assert path in str(raised.value)
    assert rb.tree_snapshot(built.root) == snapshot


def test_refusal_under_the_lock_too(built):
    """A root that breaks between plan and apply: the recomputation under LOCK_EX refuses."""
    plan = plan_of(built.root)
    path = _truncated_manifest_stream(built)
    built.repo.tag("trigger:1", built.app.manifest_digest)  # any change forces the recomputation
    snapshot = rb.tree_snapshot(built.root)
    with pytest.raises(PlanError) as raised:
        apply_plan(built.root, plan)
    assert path in str(raised.value)
    assert rb.tree_snapshot(built.root) == snapshot


# --- apply: lock, order, re-validation, crashes ---------------------------------------------------------


def test_apply_order_under_the_exclusive_lock(built):
    built.repo.builder.add_entry("images", "cd" * 32, "cd" * 32)
    plan = plan_of(built.root, remove_stream_refs=[built.tag_ref(built.a)])
    os.unlink(os.path.join(str(built.root), "streams", "refs", built.tag_ref(built.a)))
    seen = []
    live_entries = {}

    def step(kind, name):
        if kind in ("locked", "object") and not any(k == kind for k, _n in seen):
            assert not rb.try_lock_process(built.root, "SH"), "a reader could open the repository during the GC"
        if kind == "object":
            # every entry still on disk names an object that is still there (or was missing before)
            for entry, text in entries_on_disk(built.root).items():
                target = os.path.normpath(os.path.join(str(built.root), entry.split("/")[0], text))
                live_entries[entry] = os.path.exists(target) or entry == "images/" + "cd" * 32
                assert live_entries[entry], entry
        seen.append((kind, name))

    apply_plan(built.root, plan, step=step)
    kinds = [k for k, _n in seen]
    assert kinds[0] == "locked"
    assert kinds == sorted(kinds, key=["locked", "entry", "object", "prune"].index)
    assert kinds.count("prune") == 1 and kinds.count("object") == len(plan.remove_objects)
    assert rb.try_lock_process(built.root, "EX")


def test_a_reader_holding_the_shared_lock_blocks_deletion(built):
    plan = plan_of(built.root)
    snapshot = rb.tree_snapshot(built.root)
    holder = rb.hold_lock_process(built.root, "SH")
    try:
        with pytest.raises(RepositoryLockedError):
            apply_plan(built.root, plan, timeout=0.3)
    finally:
        holder.stdin.close()
        holder.wait()
    assert rb.tree_snapshot(built.root) == snapshot


def test_new_ref_between_plan_and_apply_is_honoured(built, fsverity_tool):
    plan = plan_of(built.root, remove_stream_refs=[built.tag_ref(built.a)])
    os.unlink(os.path.join(str(built.root), "streams", "refs", built.tag_ref(built.a)))
    built.repo.tag("quay.io/example/kept:1", built.a.manifest_digest)  # a concurrent pull tagged it again
    result = apply_plan(built.root, plan)
    assert result.validation == "recomputed"
    assert {raw.hex() for raw in result.removed_objects} == built.garbage
    assert_intact(fsverity_tool, built.root, built.a.closure)


def test_new_extra_root_at_apply_time_is_honoured(built, fsverity_tool, composefs_oracle):
    os.unlink(os.path.join(str(built.root), "streams", "refs", built.tag_ref(built.a)))
    plan = plan_of(built.root)
    result = apply_plan(built.root, plan, extra_images=[built.a.boot_id])
    assert result.validation == "recomputed"
    boot_path = os.path.join(str(built.root), "objects", built.a.boot_id[:2], built.a.boot_id[2:])
    assert_intact(fsverity_tool, built.root, erofs_objects(composefs_oracle, boot_path))


def test_missing_object_that_appears_forces_recomputation(built, zstd_tool, fsverity_tool, tmp_path):
    """A stream ref whose object was missing at plan time, written before apply: what it names stays."""
    orphan = built.repo.object(b"only the late stream needs me " * 20)
    late = rb.splitstream_bytes(zstd_tool, "sha256", CT_LAYER, 0, [], [bytes.fromhex(orphan)], b"", b"")
    scratch = tmp_path / "late"
    scratch.write_bytes(late)
    late_id = rb.fsverity_digest(fsverity_tool, scratch, "sha256")
    parent = rb.splitstream_bytes(zstd_tool, "sha256", CT_LAYER, 0, [bytes.fromhex(late_id)], [], b"0:late\0", b"")
    built.repo.entry("streams", "parent", built.repo.object(parent))
    built.repo.builder.add_ref("streams", "parent", "parent")
    plan = plan_of(built.root)
    assert late_id in plan.missing_objects and orphan in plan.object_ids()
    assert built.repo.object(late) == late_id
    result = apply_plan(built.root, plan)
    assert result.validation == "recomputed"
    assert_intact(fsverity_tool, built.root, {orphan, late_id})


class Crash(Exception):
    pass


def _crash_at(number):
    count = [0]

    def step(kind, _name):
        if kind == "locked":
            return
        count[0] += 1
        if count[0] == number:
            raise Crash()

    return step


def _run_to_end(root):
    plan = plan_of(root)
    apply_plan(root, plan)
    return objects_on_disk(root), entries_on_disk(root), refs_on_disk(root)


def test_crash_at_any_step_keeps_live_data_and_a_rerun_converges(built, fsverity_tool, tmp_path):
    os.unlink(os.path.join(str(built.root), "streams", "refs", built.tag_ref(built.a)))
    built.repo.builder.add_entry("images", "cd" * 32, "cd" * 32)
    pristine = tmp_path / "pristine"
    shutil.copytree(str(built.root), str(pristine), symlinks=True)
    reference = tmp_path / "reference"
    shutil.copytree(str(pristine), str(reference), symlinks=True)
    expected_end = _run_to_end(reference)
    steps = len(plan_of(pristine).remove_objects) + len(plan_of(pristine).unlink_entries) + 1
    live = built.live(built.b, built.app)
    for number in range(1, steps + 1):
        work = tmp_path / ("crash-%d" % number)
        shutil.copytree(str(pristine), str(work), symlinks=True)
        with pytest.raises(Crash):
            apply_plan(work, plan_of(work), step=_crash_at(number))
        assert rb.try_lock_process(work, "EX"), "the lock must be released when apply dies"
        assert_intact(fsverity_tool, work, live)
        for entry, text in entries_on_disk(work).items():
            if entry != "images/" + "cd" * 32:
                assert os.path.exists(os.path.join(str(work), entry.split("/")[0], text)), (number, entry)
        assert _run_to_end(work) == expected_end, number
