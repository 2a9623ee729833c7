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
import json
import os
import shutil
import sys

import pytest

from ansible_collections.bootc.composefs.plugins.module_utils.errors import HostError, PlanError, ToolError
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


# --- boot binaries ------------------------------------------------------------------------------------


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


def test_an_unidentifiable_entry_that_looks_like_bootcs_refuses(host):
    """Rule 2: an entry booting a bootc kernel dir without composefs= (bootc's listing fails on it too)."""
    path = host.host.tree.entry("custom-rescue.conf", "title Rescue\nversion 1\nlinux /boot/%s%s/vmlinuz\n"
                                                      % (host_tree.PREFIX, host.kernel_name))
    the_plan = plan(host.host)
    assert any(str(path) in error for error in the_plan.errors)
    assert the_plan.boot_binaries == ()


def test_foreign_entries_of_other_tools_are_ignored(host):
    host.host.tree.entry("fwupd.conf", "title Firmware updater\nefi /EFI/fedora/fwupdx64.efi\n")
    host.host.tree.entry("memtest86+.conf", "title Memtest86+\nlinux /memtest86+/memtest.bin\n")
    the_plan = plan(host.host)
    assert the_plan.errors == ()
    assert [b.path for b in the_plan.boot_binaries] == [str(host.kernel_dir)]


def _simhost():
    path = os.path.abspath(TOOLS)
    if path not in sys.path:
        sys.path.insert(0, path)
    import simhost  # pylint: disable=import-outside-toplevel

    return simhost


@pytest.fixture
def uki_host(tmp_path):
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


# --- state dirs and the staged marker -----------------------------------------------------------------


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


def test_stale_staged_marker_is_removed_and_a_real_one_kept(host):
    marker = host.host.tree.root / "run" / "composefs" / "staged-deployment"
    assert plan(host.host).staged_marker is None
    host.host.tree.staged_marker(host.orphan_verity)
    the_plan = plan(host.host)
    assert the_plan.staged_marker == str(marker)
    gc.apply_gc(the_plan)
    assert not marker.exists()


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


def test_entry_without_state_dir_keeps_its_image(host, fsverity_tool, composefs_oracle):
    """Open question 6: the entry is not removed and the image it names is protected."""
    host.host.tree.type1_entry("new-entry.conf", host.stale.boot_id, version="9")
    host.host.tree.type1_dir(host.stale.boot_id)
    the_plan = plan(host.host)
    assert the_plan.errors == ()
    gc.apply_gc(the_plan)
    needed = erofs_objects(composefs_oracle, host.repo_root, host.stale.boot_id) | {host.stale.boot_id}
    assert_intact(fsverity_tool, host.repo_root, needed | host.stale.closure)


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


# --- refusals: nothing at all is deleted --------------------------------------------------------------


def _garbage_origin(host):
    path = host.host.tree.state / host.images["rollback"].boot_id / (host.images["rollback"].boot_id + ".origin")
    path.write_bytes(b"\xff\xfe not an origin")
    return str(path)


def _non_utf8_entry(host):
    return str(host.host.tree.entry("bootc_simos-0.5-0.conf", b"title \xff\nversion 1\n"))


def _bad_imginfo(host):
    image = host.host.repo.image([{"usr/legacy": b"l" * 300}], version="1", marker="l")
    host.host.deploy(image, "bootc_simos-0.1-0.conf", "bootc-simos-2", version="0.1", manifest_digest=None,
                     imginfo="{not json")
    return str(host.host.tree.state / image.boot_id / (image.boot_id + ".imginfo"))


def _corrupt_object(host, object_id, keep):
    path = host.host.repo.path_of(object_id)
    with open(str(path), "r+b") as handle:
        handle.truncate(keep)
    return str(path)


def _corrupt_manifest_stream(host):
    return _corrupt_object(host, host.images["booted"].manifest_stream_id, 40)


def _corrupt_config_stream(host):
    return _corrupt_object(host, host.images["staged"].config_stream_id, 100)


def _corrupt_boot_image(host):
    return _corrupt_object(host, host.images["rollback"].boot_id, 1100)


def _meta(text):
    def damage(host):
        path = host.repo_root / "meta.json"
        path.write_bytes(text(path.read_bytes()))
        return str(path)
    damage.__name__ = "meta"
    return damage


def _no_meta(host):
    path = host.repo_root / "meta.json"
    path.unlink()
    return str(path)


def _ref_not_a_symlink(host):
    path = host.repo_root / "streams" / "refs" / "oci" / "plain-file"
    path.write_text("x")
    return str(path)


def _legacy_boot_layout(host):
    host.host.tree.type1_dir("dd" * 32, prefixed=False)
    return str(host.host.tree.type1_root / ("dd" * 32))


def _booted_without_entry(host):
    booted = host.images["booted"]
    for path in (host.host.tree.boot / "loader").rglob("*.conf"):
        if booted.boot_id in path.read_text():
            path.unlink()
    return str(host.host.tree.state / booted.boot_id)


def _booted_binary_unreferenced(host):
    booted = host.images["booted"]
    for path in (host.host.tree.boot / "loader").rglob("*.conf"):
        text = path.read_text()
        if "composefs=" + booted.boot_id in text:
            path.write_text(text.replace(host_tree.PREFIX + booted.boot_id, host_tree.PREFIX + host.kernel_name))
    return str(host.host.tree.type1_root / (host_tree.PREFIX + booted.boot_id))


def _moved_behind_a_symlink(host, path):
    """Move ``path`` out of the sysroot (still inside the host root) and leave a relative symlink to it."""
    moved = host.host.tree.root / ("moved-" + path.name)
    os.rename(str(path), str(moved))
    os.symlink(os.path.relpath(str(moved), str(path.parent)), str(path))
    return str(path)


def _entries_dir_symlink(host):
    return _moved_behind_a_symlink(host, host.host.tree.boot / "loader" / "entries.staged")


def _entry_file_symlink(host):
    return _moved_behind_a_symlink(host, sorted((host.host.tree.boot / "loader" / "entries").glob("*.conf"))[0])


def _state_dir_symlink(host):
    return _moved_behind_a_symlink(host, host.host.tree.state / host.images["rollback"].boot_id)


def _live_kernel_dir_symlink(host):
    path = _moved_behind_a_symlink(host, host.host.tree.type1_root / (host_tree.PREFIX + host.images["rollback"].boot_id))
    return path


def _damaged_bootc_entry(host):
    rollback = host.images["rollback"]
    for path in (host.host.tree.boot / "loader").rglob("*.conf"):
        text = path.read_text()
        if "composefs=" + rollback.boot_id in text:
            path.write_text(text.replace("version ", "verzion "))
            return str(path)
    raise AssertionError("no rollback entry")


def _non_hex_verity_in_entry(host):
    path = sorted((host.host.tree.boot / "loader" / "entries").glob("*.conf"))[0]
    text = path.read_text()
    verity = text.split("composefs=")[1].split()[0].lstrip("?")
    path.write_text(text.replace(verity, verity[:-1] + "z"))
    return str(path)


def _truncated_verity_in_entry(host):
    path = sorted((host.host.tree.boot / "loader" / "entries").glob("*.conf"))[0]
    text = path.read_text()
    verity = text.split("composefs=")[1].split()[0].lstrip("?")
    path.write_text(text.replace("composefs=" + verity, "composefs=" + verity[:40]))
    return str(path)


def _verity_of_another_length_in_entry(host):
    """A 128-hex verity in a sha256 repository (whose deployments have 64): no deployment of this host."""
    path = sorted((host.host.tree.boot / "loader" / "entries").glob("*.conf"))[0]
    text = path.read_text()
    verity = text.split("composefs=")[1].split()[0].lstrip("?")
    path.write_text(text.replace("composefs=" + verity, "composefs=" + verity * 2))
    return str(path)


def _origin_without_manifest_digest(host):
    rollback = host.images["rollback"]
    path = host.host.tree.state / rollback.boot_id / (rollback.boot_id + ".origin")
    path.write_text(path.read_text().replace("manifest_digest", "manifest_digext"))
    return str(path)


def _origin_names_an_unknown_manifest(host):
    rollback = host.images["rollback"]
    path = host.host.tree.state / rollback.boot_id / (rollback.boot_id + ".origin")
    digest = rollback.manifest_digest
    path.write_text(path.read_text().replace(digest, digest[:-1] + ("0" if digest[-1] != "0" else "1")))
    return str(path)


def _conflicting_boot_type(host):
    rollback = host.images["rollback"]
    path = host.host.tree.state / rollback.boot_id / (rollback.boot_id + ".origin")
    path.write_text(path.read_text().replace("boot_type = bls", "boot_type = uki"))
    return str(path)


REFUSALS = {
    "non-hex-verity-in-entry": _non_hex_verity_in_entry,
    "truncated-verity-in-entry": _truncated_verity_in_entry,
    "verity-of-another-length-in-entry": _verity_of_another_length_in_entry,
    "origin-without-manifest-digest": _origin_without_manifest_digest,
    "origin-names-an-unknown-manifest": _origin_names_an_unknown_manifest,
    "conflicting-boot-type": _conflicting_boot_type,
    "entries-dir-symlink": _entries_dir_symlink,
    "entry-file-symlink": _entry_file_symlink,
    "state-dir-symlink": _state_dir_symlink,
    "live-kernel-dir-symlink": _live_kernel_dir_symlink,
    "damaged-bootc-entry": _damaged_bootc_entry,
    "unreadable-origin": _garbage_origin,
    "non-utf8-entry": _non_utf8_entry,
    "malformed-imginfo": _bad_imginfo,
    "corrupt-manifest-stream": _corrupt_manifest_stream,
    "corrupt-config-stream": _corrupt_config_stream,
    "corrupt-boot-image": _corrupt_boot_image,
    "invalid-meta-json": _meta(lambda data: data[:20]),
    "meta-version-2": _meta(lambda data: data.replace(b'"version": 1', b'"version": 2')),
    "unknown-incompatible-feature": _meta(lambda data: data.replace(b'"incompatible": []', b'"incompatible": ["x"]')),
    "unknown-read-only-feature": _meta(lambda data: data.replace(b'"v1_erofs"', b'"v1_erofs", "zz"')),
    "unknown-compatible-feature": _meta(lambda data: data.replace(b'"compatible": []', b'"compatible": ["new"]')),
    "no-meta-json": _no_meta,
    "ref-not-a-symlink": _ref_not_a_symlink,
    "legacy-boot-layout": _legacy_boot_layout,
    "booted-without-entry": _booted_without_entry,
    "booted-binary-unreferenced": _booted_binary_unreferenced,
}


@pytest.mark.parametrize("damage", sorted(REFUSALS))
def test_anything_unreadable_refuses_everything(host, damage):
    """Rules 2, 3 and 6: an unparsable root, an unknown format, an unsafe path: nothing at all is deleted."""
    path = REFUSALS[damage](host)
    digest = tree_digest(host.host.root)
    for check_mode in (True, False):
        with pytest.raises(PlanError) as raised:
            run(host.host, check_mode=check_mode)
        assert path in str(raised.value), str(raised.value)
        assert raised.value.partial_result["errors"], damage
        assert raised.value.partial_result["changed"] is False
    assert tree_digest(host.host.root) == digest


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


def test_legacy_boot_layout_allows_the_other_phases(host):
    _legacy_boot_layout(host)
    result = run(host.host, boot_binaries=False)
    assert result.as_dict()["objects_removed"] == len(host.stale_unique())


def test_kernel_dir_symlink_is_never_followed(host, tmp_path):
    outside = tmp_path / "outside-kernel"
    outside.mkdir()
    (outside / "vmlinuz").write_bytes(b"not ours")
    link = host.host.tree.type1_root / (host_tree.PREFIX + "ff" * 32)
    os.symlink(str(outside), str(link))
    run(host.host)
    assert (outside / "vmlinuz").read_bytes() == b"not ours"
    assert os.path.islink(str(link))


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


# --- the cfsctl backend --------------------------------------------------------------------------------


def test_cfsctl_backend_gets_the_live_roots_after_the_tag_changes(host):
    calls = []

    def runner(argv, env):
        calls.append((argv, env["LC_ALL"], dict(tags_on_disk(host.repo_root))))
        assert rb.try_lock_process(host.repo_root, "EX"), "our handle must be closed while cfsctl runs"
        return 0, "Objects: 3 removed (123 bytes)\n", ""

    result = run(host.host, runner=runner, repo_gc_backend="cfsctl", cfsctl_command=("bootc", "internals", "cfs"))
    (argv, lc_all, tags_seen), = calls
    assert lc_all == "C"
    assert argv[:6] == ["bootc", "internals", "cfs", "--repo", str(host.repo_root), "--no-upgrade"]
    assert argv[6] == "gc"
    roots = set(argv[8::2])
    assert argv[7::2] == ["-r"] * len(roots)
    assert roots == ({i.boot_id for i in host.live_images}
                     | {"oci-manifest-" + i.manifest_digest for i in host.live_images})
    assert bootc_tag_file(host.stale.manifest_digest) not in tags_seen
    data = result.as_dict()
    assert data["repository"]["tool"]["objects_removed"] == 3
    assert data["objects_removed"] == 0  # the fake removed nothing: counts come from the disk


def test_cfsctl_failure_is_a_tool_error_with_the_command_and_stderr(host):
    def runner(argv, env):
        return 1, "", "error: Acquiring exclusive lock for GC\n"

    with pytest.raises(ToolError) as raised:
        run(host.host, runner=runner, repo_gc_backend="cfsctl")
    assert raised.value.command[0] == "cfsctl" and "Acquiring exclusive lock" in raised.value.stderr
