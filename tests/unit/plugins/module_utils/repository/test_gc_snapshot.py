# -*- coding: utf-8 -*-
# Copyright: (c) 2026, bootc.composefs maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests for repository/gc_snapshot.py: refs and first-level entries as the GC reads them.

Repositories are written file by file (``repo_builder``: link texts of composefs-repo.md section 5.1);
expected records are what was written. Each unusable ref or entry carries its problem; a refs
directory or category that is not a real directory is refused.
"""

from __future__ import annotations

import os

import pytest

from ansible_collections.bootc.composefs.plugins.module_utils.errors import UnsafePathError
from ansible_collections.bootc.composefs.plugins.module_utils.repository import gc_snapshot
from ansible_collections.bootc.composefs.plugins.module_utils.repository.repo import Repository
from ansible_collections.bootc.composefs.tests.unit.builders import repo_builder as rb

MANIFEST = "oci-manifest-sha256:" + "a" * 64
OBJECT = "ab" * 32
IMAGE = "cd" * 32


@pytest.fixture
def builder(tmp_path):
    built = rb.RepoBuilder(tmp_path / "repo")
    built.add_entry("streams", MANIFEST, OBJECT)
    built.add_entry("images", IMAGE, IMAGE)
    built.add_ref("streams", "oci/app:1", MANIFEST)
    built.add_ref("images", "boot/keep", IMAGE)
    return built


def scan(builder):
    with Repository.open(str(builder.root)) as repo:
        return gc_snapshot.scan_repository(repo)


def test_refs_and_entries_as_written(builder):
    snapshot = scan(builder)
    assert [tuple(r) for r in snapshot.refs] == [
        ("images", "boot/keep", "../../" + IMAGE, IMAGE, None),
        ("streams", "oci/app:1", "../../" + MANIFEST, MANIFEST, None),
    ]
    assert [tuple(e) for e in snapshot.entries] == [
        ("images", IMAGE, "../objects/cd/" + IMAGE[2:], IMAGE, None),
        ("streams", MANIFEST, "../objects/ab/" + OBJECT[2:], OBJECT, None),
    ]
    assert snapshot.entry_map("streams")[MANIFEST].object_id == OBJECT


def _ref_file(builder):
    (builder.root / "streams" / "refs" / "oci" / "plain").write_text("x")
    return "streams", "oci/plain", "not a symbolic link"


def _ref_escaping(builder):
    builder.symlink("streams/refs/oci/evil", "../../../../etc/passwd")
    return "streams", "oci/evil", None


def _ref_absolute(builder):
    builder.symlink("images/refs/abs", "/etc/passwd")
    return "images", "abs", None


def _ref_wrong_depth(builder):
    builder.symlink("streams/refs/oci/deep", "../" + MANIFEST)
    return "streams", "oci/deep", None


REF_PROBLEMS = {"regular-file": _ref_file, "escaping": _ref_escaping, "absolute": _ref_absolute, "wrong-depth": _ref_wrong_depth}


@pytest.mark.parametrize("damage", sorted(REF_PROBLEMS))
def test_an_unusable_ref_is_recorded_with_its_problem(builder, damage):
    category, ref, problem = REF_PROBLEMS[damage](builder)
    found = [r for r in scan(builder).refs if (r.category, r.ref) == (category, ref)]
    assert len(found) == 1 and found[0].entry is None and found[0].problem
    if problem is not None:
        assert problem in found[0].problem


def test_a_non_utf8_ref_name_is_recorded(builder):
    os.symlink(b"../../" + MANIFEST.encode(), os.path.join(os.fsencode(str(builder.root)), b"streams", b"refs", b"oci", b"bad-\xff"))
    found = [r for r in scan(builder).refs if r.problem == "name is not UTF-8"]
    assert len(found) == 1 and found[0].entry is None


@pytest.mark.parametrize("link_text", ["../objects/zz/" + "0" * 62, "/etc/passwd", "../objects/ab/short", "../../objects/ab/" + OBJECT[2:]])
def test_an_entry_with_a_malformed_link_is_recorded(builder, link_text):
    builder.symlink("streams/odd-entry", link_text)
    entry = scan(builder).entry_map("streams")["odd-entry"]
    assert entry.link_text == link_text and entry.object_id is None and entry.problem


def test_an_entry_that_is_no_symlink_is_recorded(builder):
    (builder.root / "streams" / "plain-file").write_text("x")
    entry = scan(builder).entry_map("streams")["plain-file"]
    assert entry.link_text is None and entry.problem == "not a symbolic link"


@pytest.mark.parametrize("what", ["streams/refs", "images"])
def test_a_refs_dir_or_category_that_is_a_symlink_is_refused(builder, what):
    path = builder.root / what
    os.rename(str(path), str(path) + "-real")
    os.symlink(os.path.basename(str(path)) + "-real", str(path))
    with pytest.raises(UnsafePathError) as raised:
        scan(builder)
    assert raised.value.path == str(path)


def test_fingerprint_follows_link_texts(builder):
    before = scan(builder).fingerprint()
    assert scan(builder).fingerprint() == before
    os.unlink(str(builder.root / "streams" / "refs" / "oci" / "app:1"))
    builder.symlink("streams/refs/oci/app:1", "../../oci-manifest-sha256:" + "b" * 64)
    assert scan(builder).fingerprint() != before
