# -*- coding: utf-8 -*-
# Copyright: (c) 2026, bootc.composefs maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""operations/gc.py: plans and runs on hand-built hosts (host_tree + image_repo) and simhost hosts.

Expected values: what the builders wrote (each image's ``closure``, the kernel dirs, state dirs and
tags they made), what is on disk (os.walk, readlink), the ``fsverity`` oracle (surviving objects are
intact) and ``composefs-info objects`` (what a boot image needs). One test (or one parametrized
table) per safety rule; the rule is named in the test's docstring.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys

import pytest

from ansible_collections.bootc.composefs.plugins.module_utils.errors import HostError
from ansible_collections.bootc.composefs.plugins.module_utils.operations import gc
from ansible_collections.bootc.composefs.tests.unit.builders import host_tree
from ansible_collections.bootc.composefs.tests.unit.builders import repo_builder as rb
from ansible_collections.bootc.composefs.tests.unit.plugins.module_utils.operations import image_repo

TOOLS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "..", "tools")


# --- helpers -----------------------------------------------------------------------------------------


def request(host, **kwargs):
    return gc.GcRequest(root=str(host.root), **kwargs)


def plan(host, **kwargs):
    return gc.plan_gc(request(host, **kwargs))


def run(host, check_mode=False, step=None, runner=None, **kwargs):
    return gc.run_gc(request(host, **kwargs), check_mode=check_mode, step=step, runner=runner)


def tree_digest(root):
    """sha256 over every path, type, mode, mtime, link text and content below ``root`` (nothing followed)."""
    digest = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(str(root)):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            path = os.path.join(dirpath, name)
            info = os.lstat(path)
            digest.update(("%s %o %d\n" % (os.path.relpath(path, str(root)), info.st_mode, info.st_mtime_ns)).encode())
            if os.path.islink(path):
                digest.update(os.readlink(path).encode())
            elif os.path.isfile(path):
                with open(path, "rb") as handle:
                    digest.update(handle.read())
    return digest.hexdigest()


def objects_on_disk(repo_root):
    found = {}
    base = os.path.join(str(repo_root), "objects")
    for sub in os.listdir(base):
        for name in os.listdir(os.path.join(base, sub)):
            found[sub + name] = os.lstat(os.path.join(base, sub, name)).st_size
    return found


def tags_on_disk(repo_root):
    base = os.path.join(str(repo_root), "streams", "refs", "oci")
    return {name: os.readlink(os.path.join(base, name)) for name in os.listdir(base)} if os.path.isdir(base) else {}


def assert_intact(fsverity_tool, repo_root, object_ids, algorithm="sha256"):
    for object_id in object_ids:
        path = os.path.join(str(repo_root), "objects", object_id[:2], object_id[2:])
        assert os.path.isfile(path), "live object %s was removed" % object_id
        assert rb.fsverity_digest(fsverity_tool, path, algorithm) == object_id


def erofs_objects(composefs_oracle, repo_root, object_id):
    path = os.path.join(str(repo_root), "objects", object_id[:2], object_id[2:])
    return {line.replace("/", "") for line in composefs_oracle("composefs-info", "objects", path).stdout.decode().split()}


def bootc_tag_file(manifest_digest):
    return image_repo.encode_tag("localhost/bootc-" + manifest_digest)


class Garbage:
    """What the fixture adds to three_deployments: a stale bootc-tagged image, an app image, orphans."""

    def __init__(self, host, images):
        self.host = host
        self.images = images
        self.stale = host.repo.image([{"usr/old": b"old" * 120}], version="0.9", marker="o")
        host.repo.bootc_tag(self.stale.manifest_digest)
        self.app = host.repo.image([{"app/bin": b"app" * 150}], version="app", marker="a")
        host.repo.tag("quay.io/example/app:1", self.app.manifest_digest)
        self.orphan_verity = hashlib.sha256(b"orphan").hexdigest()
        self.orphan_dir = host.tree.state_dir(self.orphan_verity)
        self.kernel_name = hashlib.sha256(b"old kernel").hexdigest()
        self.kernel_dir = host.tree.type1_dir(self.kernel_name)
        self.repo_root = host.repo.root

    @property
    def live_images(self):
        return [self.images[role] for role in ("booted", "staged", "rollback")]

    def live_closure(self):
        return set().union(*(image.closure for image in self.live_images + [self.app]))

    def stale_unique(self):
        return self.stale.closure - self.live_closure()

    def live_paths(self):
        """State dirs, kernel dirs and entry files every live deployment needs."""
        tree = self.host.tree
        found = []
        for image in self.live_images:
            found.append(tree.state / image.boot_id / (image.boot_id + ".origin"))
            found.append(tree.type1_root / (host_tree.PREFIX + image.boot_id) / "vmlinuz")
        found += list((tree.boot / "loader").rglob("*.conf"))
        return found


@pytest.fixture
def host(three_deployments):
    sim, images = three_deployments
    return Garbage(sim, images)


def assert_live_complete(fsverity_tool, host):
    """Safety: every live deployment and the app image keep everything they need."""
    assert_intact(fsverity_tool, host.repo_root, host.live_closure())
    for path in host.live_paths():
        assert os.path.exists(str(path)), path
    tags = tags_on_disk(host.repo_root)
    for image in host.live_images:
        assert tags[bootc_tag_file(image.manifest_digest)] == "../../oci-manifest-" + image.manifest_digest
    assert tags["quay.io%2Fexample%2Fapp:1"] == "../../oci-manifest-" + host.app.manifest_digest


# --- what is collected ---------------------------------------------------------------------------------


def test_collects_stale_tag_objects_orphans_and_keeps_everything_live(host, fsverity_tool):
    """Rule 1: booted, staged, rollback and all they reach survive; the app image's foreign tag keeps it."""
    before = objects_on_disk(host.repo_root)
    the_plan = plan(host.host)
    assert the_plan.errors == ()
    assert [t.tag for t in the_plan.tags_remove] == ["localhost/bootc-" + host.stale.manifest_digest]
    assert the_plan.tags_create == ()
    assert [b.path for b in the_plan.boot_binaries] == [str(host.kernel_dir)]
    assert [s.path for s in the_plan.state_dirs] == [str(host.orphan_dir)]
    assert set(the_plan.repository.object_ids()) == host.stale_unique()
    assert the_plan.repository.objects_bytes == sum(before[i] for i in host.stale_unique())
    result = gc.apply_gc(the_plan)
    assert result.changed
    assert set(objects_on_disk(host.repo_root)) == set(before) - host.stale_unique()
    assert not host.kernel_dir.exists() and not host.orphan_dir.exists()
    assert_live_complete(fsverity_tool, host)
    assert not plan(host.host).changed


def test_check_mode_is_exactly_the_real_run_and_changes_nothing(host):
    """Check mode: the tree is byte-identical afterwards and the plan equals what the run then does."""
    digest = tree_digest(host.host.root)
    checked = run(host.host, check_mode=True).as_dict(list_objects=True)
    assert tree_digest(host.host.root) == digest
    done = run(host.host).as_dict(list_objects=True)
    for key in ("changed", "tags_created", "tags_removed", "boot_binaries", "state_dirs", "staged_marker",
                "objects_removed", "objects_bytes", "bytes_freed", "images_pruned", "streams_pruned", "removed_objects"):
        assert checked[key] == done[key], key
    assert sorted(checked["removed_objects"]) == sorted(host.stale_unique())
    assert done["repository"]["validation"] == "plan"
    again = run(host.host, check_mode=True).as_dict()
    assert not again["changed"] and again["objects_removed"] == 0


def test_diff_shows_tags_and_deployments_before_and_after(host):
    diff = plan(host.host).diff()
    stale_tag = "localhost/bootc-" + host.stale.manifest_digest
    assert stale_tag in diff["before"]["tags"] and stale_tag not in diff["after"]["tags"]
    assert "quay.io/example/app:1 -> " + host.app.manifest_digest in diff["after"]["tags"]
    assert "%s (orphan)" % host.orphan_verity in diff["before"]["deployments"]
    assert "%s (booted)" % host.images["booted"].boot_id in diff["after"]["deployments"]
    assert [d for d in diff["after"]["deployments"] if "orphan" in d] == []
    assert str(host.kernel_dir) in diff["before"]["boot_binaries"]
    assert str(host.kernel_dir) not in diff["after"]["boot_binaries"]


@pytest.mark.parametrize("phase", ["boot_binaries", "state_dirs", "tags", "repository"])
def test_each_phase_can_be_switched_off(host, phase):
    the_plan = plan(host.host, **{phase: False})
    assert the_plan.errors == ()
    if phase == "boot_binaries":
        assert the_plan.boot_binaries == ()
    elif phase == "state_dirs":
        assert the_plan.state_dirs == () and the_plan.staged_marker is None
    elif phase == "tags":
        assert the_plan.tags_remove == () and the_plan.tags_create == ()
        assert set(the_plan.repository.object_ids()) == set()
    else:
        assert the_plan.repository is None
        before = objects_on_disk(host.repo_root)
        gc.apply_gc(the_plan)
        assert objects_on_disk(host.repo_root) == before


def _simhost():
    path = os.path.abspath(TOOLS)
    if path not in sys.path:
        sys.path.insert(0, path)
    import simhost  # pylint: disable=import-outside-toplevel

    return simhost


def build_uki_host(tmp_path):
    """A uki-systemd simhost with a stale UKI (and its addon dir) and an addon dir whose UKI is gone."""
    simhost = _simhost()
    built = simhost.build_host(str(tmp_path / "root"), simhost.preset_spec("uki-systemd"))
    uki_dir = built["paths"]["uki_dir"]
    stale = os.path.join(uki_dir, host_tree.PREFIX + "aa" * 64 + ".efi")
    with open(stale, "wb") as handle:
        handle.write(b"MZ stale uki")
    os.makedirs(stale + ".extra.d")
    with open(os.path.join(stale + ".extra.d", "console.addon.efi"), "wb") as handle:
        handle.write(b"MZ addon")
    orphan_addons = os.path.join(uki_dir, host_tree.PREFIX + "bb" * 64 + ".efi.extra.d")
    os.makedirs(orphan_addons)
    return built, stale, orphan_addons


def test_not_a_composefs_host(tmp_path):
    (tmp_path / "root").mkdir()
    with pytest.raises(HostError):
        gc.plan_gc(gc.GcRequest(root=str(tmp_path / "root")))


# --- lock, order, crashes -----------------------------------------------------------------------------


def test_objects_go_under_the_exclusive_lock_after_the_host_phases(host):
    """Rule 4 and 5: apply order, and no other opener while objects are deleted."""
    host.host.tree.staged_marker(host.orphan_verity)
    booted = host.images["booted"]
    os.unlink(os.path.join(str(host.repo_root), "streams", "refs", "oci", bootc_tag_file(booted.manifest_digest)))
    kinds = []

    def step(kind, _what):
        if kind == "object" and "object" not in kinds:
            assert not rb.try_lock_process(host.repo_root, "SH")
        kinds.append(kind)

    run(host.host, step=step)
    order = ["tag-create", "boot-binary", "staged-marker", "state-dir", "untag", "locked", "entry", "object"]
    seen = [k for k in kinds if k in order]
    assert seen == sorted(seen, key=order.index)
    assert set(order) <= set(kinds)
    assert rb.try_lock_process(host.repo_root, "EX")


class Crash(Exception):
    pass


def _snapshot(root):
    return rb.tree_snapshot(root)


def test_a_crash_at_any_step_keeps_every_live_deployment_and_a_rerun_converges(host, fsverity_tool, tmp_path):
    """Rule 5: kill apply before each single deletion or creation; then run again."""
    booted = host.images["booted"]
    os.unlink(os.path.join(str(host.repo_root), "streams", "refs", "oci", bootc_tag_file(booted.manifest_digest)))
    host.host.tree.staged_marker(host.orphan_verity)
    pristine = tmp_path / "pristine"
    shutil.copytree(str(host.host.root), str(pristine), symlinks=True)
    reference = tmp_path / "reference"
    shutil.copytree(str(pristine), str(reference), symlinks=True)
    steps = []
    gc.run_gc(gc.GcRequest(root=str(reference)), step=lambda kind, what: steps.append(kind))
    end = _snapshot(reference)
    count = len([k for k in steps if k != "locked"])
    assert count >= 8
    for number in range(1, count + 1):
        work = tmp_path / ("crash-%d" % number)
        shutil.copytree(str(pristine), str(work), symlinks=True)
        with pytest.raises(Crash):
            gc.run_gc(gc.GcRequest(root=str(work)), step=_crash_at(number))
        assert_intact(fsverity_tool, work / "sysroot" / "composefs", host.live_closure())
        for path in host.live_paths():
            assert os.path.exists(str(work / os.path.relpath(str(path), str(host.host.root)))), (number, path)
        gc.run_gc(gc.GcRequest(root=str(work)))
        assert _snapshot(work) == end, number


def _crash_at(number):
    """A step hook that raises before the ``number``-th deletion or creation."""
    seen = [0]

    def step(kind, _what):
        if kind != "locked":
            seen[0] += 1
            if seen[0] == number:
                raise Crash()

    return step
