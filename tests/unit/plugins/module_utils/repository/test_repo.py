# -*- coding: utf-8 -*-
# Copyright: (c) 2026, bootc.composefs maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests for repository/repo.py: the Repository facade and the write protocol of ``composefs-repo.md``
section 9. Repositories to read are built by hand (tests/unit/builders)."""

from __future__ import annotations

import os

import pytest

from ansible_collections.bootc.composefs.plugins.module_utils.errors import (
    ComposefsError,
    DanglingRefError,
    FormatError,
    RepositoryFormatError,
    UnsafePathError,
)
from ansible_collections.bootc.composefs.plugins.module_utils.formats import fsverity, splitstream as ss
from ansible_collections.bootc.composefs.plugins.module_utils.repository import objects
from ansible_collections.bootc.composefs.plugins.module_utils.repository.repo import Repository
from ansible_collections.bootc.composefs.tests.unit.builders import repo_builder as rb


def splitstream_with(algorithm, inline=b"data"):
    writer = ss.SplitStreamWriter(algorithm, 0)
    writer.write_inline(inline)
    return writer.encode()


# --- streams, images, write protocol -------------------------------------------------------------

def test_write_stream_orders_object_sync_entry_ref(tmp_path, monkeypatch):
    repo = Repository.init(tmp_path / "repo", algorithm=fsverity.SHA256)
    data = splitstream_with(fsverity.SHA256)
    seen = []

    def record_sync(store):
        streams = tmp_path / "repo" / "streams"
        seen.append((store.has(fsverity.digest_bytes(data, fsverity.SHA256).hex()),
                     os.path.lexists(streams / "name"), os.path.lexists(streams / "refs" / "r")))

    monkeypatch.setattr(objects.ObjectStore, "sync", record_sync)
    with repo:
        object_id = repo.write_stream("name", data, ref="r")
        assert seen == [(True, False, False)]
        assert repo.stream_object_id("name") == object_id
        assert repo.stream_ref_target("r") == "name"
        assert repo.read_stream("name").stream_size == 4


def test_write_stream_validates_before_writing(tmp_path):
    with Repository.init(tmp_path / "repo", algorithm=fsverity.SHA256) as repo:
        with pytest.raises(FormatError):
            repo.write_stream("name", b"not a splitstream")
        with pytest.raises(FormatError, match="algorithm"):
            repo.write_stream("name", splitstream_with(fsverity.SHA512))
        with pytest.raises(UnsafePathError):
            repo.write_stream("a/b", splitstream_with(fsverity.SHA256))
        with pytest.raises(UnsafePathError):
            repo.write_stream("name", splitstream_with(fsverity.SHA256), ref="../x")
    assert sorted(os.listdir(tmp_path / "repo")) == ["meta.json"]


def test_read_stream_errors_name_the_stream(tmp_path, fsverity_tool):
    builder = rb.RepoBuilder(tmp_path / "repo", fsverity_tool=fsverity_tool)
    bad = builder.add_object(b"SplitStream garbage that is too short")
    builder.add_entry("streams", "broken", bad)
    with Repository.open(tmp_path / "repo") as repo:
        with pytest.raises(FormatError) as info:
            repo.read_stream("broken")
    message = str(info.value)
    assert "streams/broken" in message and "objects/%s/%s" % (bad[:2], bad[2:]) in message


def test_read_stream_built_by_hand(tmp_path, fsverity_tool, zstd_tool):
    builder = rb.RepoBuilder(tmp_path / "repo", fsverity_tool=fsverity_tool)
    content = builder.add_object(b"external content")
    data = rb.splitstream_bytes(zstd_tool, "sha256", ss.CONTENT_TYPE_OCI_BLOB, 16, [], [bytes.fromhex(content)], b"",
                                bytes(8))
    stream_object = builder.add_object(data)
    builder.add_entry("streams", "oci-blob-sha256:" + "f" * 64, stream_object)
    with Repository.open(tmp_path / "repo") as repo:
        stream = repo.read_stream("oci-blob-sha256:" + "f" * 64)
        assert stream.content_type == ss.CONTENT_TYPE_OCI_BLOB
        assert ss.reassemble(stream, lambda d: repo.read_object(d.hex())) == b"external content"


def test_write_image_has_no_barrier(tmp_path, monkeypatch):
    calls = []

    def record_sync(store):
        calls.append(store)

    monkeypatch.setattr(objects.ObjectStore, "sync", record_sync)
    with Repository.init(tmp_path / "repo", algorithm=fsverity.SHA256) as repo:
        repo.write_image(b"image", name="n")
    assert not calls


def test_read_only_and_closed_handles(tmp_path):
    Repository.init(tmp_path / "repo", algorithm=fsverity.SHA256).close()
    repo = Repository.open(tmp_path / "repo")
    for call in (lambda: repo.ensure_object(b"x"), lambda: repo.write_image(b"x"), lambda: repo.name_stream("s", "r"),
                 lambda: repo.write_stream("s", splitstream_with(fsverity.SHA256)), lambda: repo.remove_stream_ref("r")):
        with pytest.raises(RepositoryFormatError, match="read-only"):
            call()
    repo.close()
    with pytest.raises(ComposefsError, match="closed"):
        repo.has_stream("s")


def test_removals_need_the_exclusive_lock(tmp_path):
    with Repository.init(tmp_path / "repo", algorithm=fsverity.SHA256) as repo:
        object_id = repo.ensure_object(b"garbage")
        repo.register_stream("s", object_id)
        image_id = repo.write_image(b"image")
        for call in (lambda: repo.remove_object(object_id), lambda: repo.remove_stream_entry("s"),
                     lambda: repo.remove_image_entry(image_id)):
            with pytest.raises(ComposefsError, match="exclusive"):
                call()
        with repo.exclusive():
            assert repo.remove_stream_entry("s") and repo.remove_image_entry(image_id)
            assert repo.remove_object(object_id) == len(b"garbage")
            assert repo.remove_object(object_id) is None
        assert not repo.has_object(object_id) and not repo.has_stream("s")
    with Repository.open(tmp_path / "repo") as repo:
        with pytest.raises(DanglingRefError):
            repo.read_object(object_id)


def test_errors_name_absolute_paths(tmp_path):
    with Repository.init(tmp_path / "repo", algorithm=fsverity.SHA256) as repo:
        os.symlink(str(tmp_path), tmp_path / "repo" / "streams")
        with pytest.raises(UnsafePathError) as info:
            repo.has_stream("s")
        assert info.value.path == str(tmp_path / "repo" / "streams")
        with pytest.raises(UnsafePathError) as info:
            repo.has_stream("a/b")
        assert info.value.path == str(tmp_path / "repo")
