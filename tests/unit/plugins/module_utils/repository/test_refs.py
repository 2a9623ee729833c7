# -*- coding: utf-8 -*-
# Copyright: (c) 2026, bootc.composefs maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests for repository/refs.py (through the Repository facade): link texts of ``composefs-repo.md``
section 5.1 and symlink-escape attempts, which must raise UnsafePathError and touch nothing outside."""

from __future__ import annotations

import os

import pytest

from ansible_collections.bootc.composefs.plugins.module_utils.errors import DanglingRefError, UnsafePathError
from ansible_collections.bootc.composefs.plugins.module_utils.formats import fsverity
from ansible_collections.bootc.composefs.plugins.module_utils.repository.repo import Repository
from ansible_collections.bootc.composefs.tests.unit.builders import repo_builder as rb

MANIFEST = "oci-manifest-sha256:" + "e" * 64


@pytest.fixture(name="repo")
def fixture_repo(tmp_path):
    repo = Repository.init(tmp_path / "repo", algorithm=fsverity.SHA256)
    yield repo
    repo.close()


@pytest.fixture(name="outside")
def fixture_outside(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "passwd").write_bytes(b"root:x:0:0")
    return outside


def link(repo, relpath):
    return os.readlink(os.path.join(repo.path, relpath))


def test_stream_entry_and_ref_link_texts(repo):
    object_id = repo.ensure_object(b"payload")
    repo.register_stream(MANIFEST, object_id, ref="oci/localhost%2Fbootc-sha256:abc")
    repo.name_stream(MANIFEST, "top")
    repo.name_stream(MANIFEST, "oci-referrers/s/a")
    assert link(repo, "streams/" + MANIFEST) == "../objects/%s/%s" % (object_id[:2], object_id[2:])
    assert link(repo, "streams/refs/top") == "../" + MANIFEST
    assert link(repo, "streams/refs/oci/localhost%2Fbootc-sha256:abc") == "../../" + MANIFEST
    assert link(repo, "streams/refs/oci-referrers/s/a") == "../../../" + MANIFEST
    assert oct(os.stat(os.path.join(repo.path, "streams/refs/oci-referrers/s")).st_mode & 0o777) == oct(0o755 & ~_umask())
    assert repo.stream_ref_target("oci-referrers/s/a") == MANIFEST
    assert repo.stream_ref_target("missing") is None


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_image_entry_and_ref_link_texts(repo):
    object_id = repo.write_image(b"erofs bytes", name="a/b/c")
    assert link(repo, "images/" + object_id) == "../objects/%s/%s" % (object_id[:2], object_id[2:])
    assert link(repo, "images/refs/a/b/c") == "../../../" + object_id
    assert repo.image_object_id(object_id) == object_id
    assert repo.image_ref_target("a/b/c") == object_id
    assert repo.list_image_refs() == [("a/b/c", "../../../" + object_id)]


def test_replace_repoints_atomically_and_leaves_no_temporaries(repo):
    first = repo.ensure_object(b"one")
    second = repo.ensure_object(b"two")
    repo.register_stream("s", first, ref="r")
    repo.register_stream("s", second, ref="r")
    assert repo.stream_object_id("s") == second
    assert link(repo, "streams/refs/r") == "../s"
    assert not [n for n in os.listdir(repo.path) if n.startswith(".symlink-")]


def test_list_stream_refs_recursive_with_prefix(repo):
    for ref in ("oci/b", "oci/a", "other", "deep/x/y"):
        repo.name_stream(MANIFEST, ref)
    assert repo.list_stream_refs() == [("deep/x/y", "../../../" + MANIFEST), ("oci/a", "../../" + MANIFEST),
                                       ("oci/b", "../../" + MANIFEST), ("other", "../" + MANIFEST)]
    assert repo.list_stream_refs("oci") == [("a", "../../" + MANIFEST), ("b", "../../" + MANIFEST)]
    assert repo.list_stream_refs("oci/") == repo.list_stream_refs("oci")
    assert repo.list_stream_refs("nothing") == []
    with pytest.raises(UnsafePathError):
        repo.list_stream_refs("../x")


def test_list_entries_flags_invalid_ones(tmp_path, fsverity_tool):
    builder = rb.RepoBuilder(tmp_path / "built", fsverity_tool=fsverity_tool)
    object_id = builder.add_object(b"x")
    builder.add_entry("streams", "good", object_id)
    builder.symlink("streams/escape", "/etc/passwd")
    builder.symlink("streams/upper", "../objects/%s/%s" % (object_id[:2], object_id[2:].upper()))
    (tmp_path / "built" / "streams" / "plainfile").write_bytes(b"")
    builder.add_ref("streams", "r", "good")
    with Repository.open(tmp_path / "built") as repo:
        entries = {e.name: e for e in repo.list_stream_entries()}
    assert set(entries) == {"good", "escape", "upper", "plainfile"}
    assert entries["good"].object_id == object_id and entries["good"].problem is None
    assert all(entries[n].object_id is None and entries[n].problem for n in ("escape", "upper", "plainfile"))


@pytest.mark.parametrize("text", ["/etc/passwd", "../../x", "../objects/../../outside/passwd", "../../outside/passwd"])
def test_entry_pointing_outside_is_refused(repo, outside, text):
    os.makedirs(os.path.join(repo.path, "streams"), exist_ok=True)
    os.symlink(text, os.path.join(repo.path, "streams", "evil"))
    for call in (lambda: repo.has_stream("evil"), lambda: repo.stream_object_id("evil"), lambda: repo.read_stream("evil")):
        with pytest.raises(UnsafePathError) as info:
            call()
        assert "streams/evil" in str(info.value)
    assert (outside / "passwd").read_bytes() == b"root:x:0:0"


@pytest.mark.parametrize("text", ["../../../etc/passwd", "/etc/passwd", "../..", "../x", "../../refs"])
def test_ref_pointing_outside_is_refused(repo, text):
    os.makedirs(os.path.join(repo.path, "streams", "refs", "oci"))
    os.symlink(text, os.path.join(repo.path, "streams", "refs", "oci", "evil"))
    with pytest.raises(UnsafePathError):
        repo.stream_ref_target("oci/evil")


@pytest.mark.parametrize("ref", ["../x", "a/../../x", "/abs", "a//b", "a/./b", "a\0b", ""])
def test_ref_names_with_forbidden_shapes(repo, ref):
    with pytest.raises(UnsafePathError):
        repo.name_stream(MANIFEST, ref)
    with pytest.raises(UnsafePathError):
        repo.stream_ref_target(ref)
    with pytest.raises(UnsafePathError):
        repo.remove_stream_ref(ref)
    assert not os.path.exists(os.path.join(repo.path, "x"))


@pytest.mark.parametrize("name", ["../x", "a/b", "refs", "..", ""])
def test_stream_names_with_forbidden_shapes(repo, name):
    with pytest.raises(UnsafePathError):
        repo.has_stream(name)
    with pytest.raises(UnsafePathError):
        repo.name_stream(name, "r")


def test_symlinked_refs_dir_pointing_outside(repo, outside):
    os.makedirs(os.path.join(repo.path, "streams"))
    os.symlink(str(outside), os.path.join(repo.path, "streams", "refs"))
    before = rb.tree_snapshot(outside)
    with pytest.raises(UnsafePathError, match="symbolic link"):
        repo.name_stream(MANIFEST, "oci/tag")
    with pytest.raises(UnsafePathError):
        repo.list_stream_refs()
    with pytest.raises(UnsafePathError):
        repo.stream_ref_target("passwd")
    with pytest.raises(UnsafePathError):
        repo.remove_stream_ref("passwd")
    with pytest.raises(UnsafePathError):
        repo.register_stream(MANIFEST, repo.ensure_object(b"x"), ref="oci/tag")
    assert rb.tree_snapshot(outside) == before


def test_symlinked_category_dir_is_refused(repo, outside):
    os.symlink(str(outside), os.path.join(repo.path, "images"))
    with pytest.raises(UnsafePathError):
        repo.write_image(b"img")
    with pytest.raises(UnsafePathError):
        repo.list_image_entries()
    assert sorted(p.name for p in outside.iterdir()) == ["passwd"]


def test_ref_replacing_a_directory_or_file_is_refused(repo):
    os.makedirs(os.path.join(repo.path, "streams", "refs", "dir"))
    with open(os.path.join(repo.path, "streams", "refs", "file"), "wb"):
        pass
    with pytest.raises(UnsafePathError):
        repo.name_stream(MANIFEST, "dir")
    with pytest.raises(UnsafePathError):
        repo.name_stream(MANIFEST, "file")
    with pytest.raises(UnsafePathError):
        repo.remove_stream_ref("file")
    assert os.path.isfile(os.path.join(repo.path, "streams", "refs", "file"))


def test_remove_refs(repo):
    repo.name_stream(MANIFEST, "oci/t")
    assert repo.remove_stream_ref("oci/t")
    assert not repo.remove_stream_ref("oci/t")
    assert os.path.isdir(os.path.join(repo.path, "streams", "refs", "oci"))


def test_dangling_stream(repo):
    with pytest.raises(DanglingRefError):
        repo.stream_object_id("nothing")
    assert not repo.has_stream("nothing")
    with pytest.raises(DanglingRefError, match="does not exist"):
        repo.register_stream("gone", "ab" * 32)
    assert not repo.has_stream("gone")
    os.makedirs(os.path.join(repo.path, "streams"), exist_ok=True)
    os.symlink("../objects/ab/" + "ab" * 31, os.path.join(repo.path, "streams", "gone"))
    assert repo.has_stream("gone")
    with pytest.raises(DanglingRefError, match="streams/gone"):
        repo.read_stream("gone")
