# -*- coding: utf-8 -*-
# Copyright: (c) 2026, bootc.composefs maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests for repository/paths.py: names and link texts of ``composefs-repo.md`` sections 2 and 5."""

from __future__ import annotations

import os

import pytest

from ansible_collections.bootc.composefs.plugins.module_utils.errors import UnsafePathError
from ansible_collections.bootc.composefs.plugins.module_utils.formats import fsverity
from ansible_collections.bootc.composefs.plugins.module_utils.repository import paths

SHA256_ID = "1e2eaa4202d750a41174ee454970b92c1bc2f925b1e35076d8c7d5f56362ba64"  # spec 7.4 "hello world"
SHA512_ID = ("18430270729d162d4e469daca123ae61893db4b0583d8f7081e3bf4f92b88ba5"
             "14e7982f10733fb6aa895195c5ae8fd2eb2c47a8be05513ce5a0c51a6f570409")


def test_object_paths():
    assert paths.object_repo_path(SHA256_ID) == "objects/1e/" + SHA256_ID[2:]
    assert paths.entry_link_text(SHA512_ID) == "../objects/18/" + SHA512_ID[2:]
    assert len(SHA512_ID[2:]) == 126 and len(SHA256_ID[2:]) == 62


@pytest.mark.parametrize("ref,entry,text", [
    ("c1", "oci-manifest-sha256:ab", "../oci-manifest-sha256:ab"),
    ("oci/localhost%2Fbootc-sha256:abc", "oci-manifest-sha256:ab", "../../oci-manifest-sha256:ab"),
    ("oci-referrers/s/a", "oci-manifest-sha256:ab", "../../../oci-manifest-sha256:ab"),
    ("a/b/c/d", SHA256_ID, "../../../../" + SHA256_ID),
], ids=["depth1", "tag", "referrer", "depth4"])
def test_ref_link_texts(ref, entry, text):
    assert paths.ref_link_text(ref, entry) == text
    assert paths.parse_ref_link(text, len(ref.split("/"))) == entry


@pytest.mark.parametrize("object_id", [
    SHA256_ID.upper(), SHA256_ID[:-1], SHA256_ID + "0", "g" * 64, "", None, 12, SHA512_ID,
], ids=["uppercase", "short", "long", "non-hex", "empty", "none", "int", "sha512-in-sha256"])
def test_validate_object_id_rejects(object_id):
    with pytest.raises(UnsafePathError):
        paths.validate_object_id(object_id, fsverity.SHA256)


def test_parse_entry_link():
    assert paths.parse_entry_link("../objects/1e/" + SHA256_ID[2:], fsverity.SHA256) == SHA256_ID
    assert paths.parse_entry_link("../objects/18/" + SHA512_ID[2:], fsverity.SHA512) == SHA512_ID


@pytest.mark.parametrize("text", [
    "/etc/passwd",
    "../../x",
    "../objects/1e/" + SHA256_ID[2:].upper(),
    "../objects/1E/" + SHA256_ID[2:],
    "objects/1e/" + SHA256_ID[2:],
    "../../objects/1e/" + SHA256_ID[2:],
    "/../objects/1e/" + SHA256_ID[2:],
    "../objects/1e" + SHA256_ID[2:] + "/",
    "../objects/1e/" + SHA256_ID[2:] + "/..",
    "../objects/1e/../" + SHA256_ID[2:],
    "../objects/" + SHA256_ID,
    "",
], ids=["absolute", "dotdot", "upper-rest", "upper-dir", "no-dotdot", "two-dotdot", "rooted", "slash-moved",
        "trailing-dotdot", "dotdot-inside", "no-split", "empty"])
def test_parse_entry_link_rejects(text):
    with pytest.raises(UnsafePathError):
        paths.parse_entry_link(text, fsverity.SHA256)


@pytest.mark.parametrize("text,depth", [
    ("../x", 2), ("../../x", 1), ("../../../etc/passwd", 3), ("/etc/passwd", 1), ("../..", 1), ("../../", 2),
    ("../refs", 1), ("x", 1), ("../a/b", 1), ("..//x", 1), ("../x\0", 1), ("../x", 0),
], ids=["too-shallow", "too-deep", "escape", "absolute", "dotdot-name", "empty-name", "refs", "no-prefix",
        "slash-in-name", "double-slash", "nul", "depth-zero"])
def test_parse_ref_link_rejects(text, depth):
    with pytest.raises(UnsafePathError):
        paths.parse_ref_link(text, depth)


@pytest.mark.parametrize("name", ["", ".", "..", "a/b", "refs", "a\0b", "\udcff", None])
def test_validate_stream_name_rejects(name):
    with pytest.raises(UnsafePathError):
        paths.validate_stream_name(name)


def test_validate_stream_name_accepts_oci_names():
    for name in ("oci-manifest-sha256:" + "a" * 64, "ostree-commit-abc", ".hidden", "a:b@c"):
        assert paths.validate_stream_name(name) == name


@pytest.mark.parametrize("ref", ["", "/a", "a/", "a//b", "a/../b", "..", "./a", "a\0", None])
def test_validate_ref_name_rejects(ref):
    with pytest.raises(UnsafePathError):
        paths.validate_ref_name(ref)


def test_validate_entry_name_images_are_object_ids():
    assert paths.validate_entry_name(paths.IMAGES, SHA256_ID, fsverity.SHA256) == SHA256_ID
    with pytest.raises(UnsafePathError):
        paths.validate_entry_name(paths.IMAGES, "name", fsverity.SHA256)


def test_parse_object_name():
    assert paths.parse_object_name("1e", SHA256_ID[2:], fsverity.SHA256) == SHA256_ID
    assert paths.parse_object_name("1e", SHA256_ID[2:], fsverity.SHA512) is None
    assert paths.parse_object_name("1E", SHA256_ID[2:], fsverity.SHA256) is None
    assert paths.parse_object_name("1e", ".tmp-object-abc", fsverity.SHA256) is None


def test_open_dir_refuses_symlinks_and_files(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    repo = tmp_path / "repo"
    repo.mkdir()
    os.symlink(str(outside), repo / "objects")
    (repo / "streams").write_bytes(b"")
    fd = os.open(repo, os.O_RDONLY | os.O_DIRECTORY)
    try:
        with pytest.raises(UnsafePathError, match="symbolic link"):
            paths.open_dir(fd, "objects", create=True)
        with pytest.raises(UnsafePathError, match="objects"):
            paths.open_dir(fd, "objects/ab", create=True)
        with pytest.raises(UnsafePathError, match="not a directory"):
            paths.open_dir(fd, "streams/refs", create=True)
        with pytest.raises(FileNotFoundError):
            paths.open_dir(fd, "images")
        with pytest.raises(UnsafePathError):
            paths.open_dir(fd, "../outside")
    finally:
        os.close(fd)
    assert not list(outside.iterdir())


def test_replace_symlink(tmp_path):
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        paths.replace_symlink(fd, fd, "link", "a")
        assert os.readlink(tmp_path / "link") == "a"
        paths.replace_symlink(fd, fd, "link", "a")
        paths.replace_symlink(fd, fd, "link", "b")
        assert os.readlink(tmp_path / "link") == "b"
        (tmp_path / "dir").mkdir()
        with pytest.raises(UnsafePathError):
            paths.replace_symlink(fd, fd, "dir", "b")
        (tmp_path / "file").write_bytes(b"keep")
        with pytest.raises(UnsafePathError):
            paths.replace_symlink(fd, fd, "file", "b")
        assert (tmp_path / "file").read_bytes() == b"keep"
        assert sorted(p.name for p in tmp_path.iterdir()) == ["dir", "file", "link"]
        assert paths.unlink_symlink(fd, "link") and not paths.unlink_symlink(fd, "link")
        with pytest.raises(UnsafePathError):
            paths.unlink_symlink(fd, "file")
    finally:
        os.close(fd)


def test_random_name():
    name = paths.random_name(".symlink-")
    assert name.startswith(".symlink-") and len(name) == len(".symlink-") + 12 and name[9:].isalnum()
