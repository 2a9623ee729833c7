# -*- coding: utf-8 -*-
# Copyright: (c) 2026, bootc.composefs maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests for repository/access.py (through Repository.init/open): the init and open rules of
``composefs-repo.md`` sections 3.5-3.6. Repositories to open are built by hand (tests/unit/builders)."""

from __future__ import annotations

import json
import os
import stat
import subprocess

import pytest

from ansible_collections.bootc.composefs.plugins.module_utils.errors import (
    ComposefsError,
    FormatError,
    RepositoryFormatError,
    UnsafePathError,
)
from ansible_collections.bootc.composefs.plugins.module_utils.formats import fsverity
from ansible_collections.bootc.composefs.plugins.module_utils.repository import lock
from ansible_collections.bootc.composefs.plugins.module_utils.repository.repo import Repository
from ansible_collections.bootc.composefs.tests.unit.builders import repo_builder as rb


def meta_with(**changes):
    obj = json.loads(rb.META_SHA256_V1)
    obj.update(changes)
    return json.dumps(obj, indent=2).encode()


def fs_supports_verity(tmp_path, fsverity_tool):
    """Whether ``fsverity enable`` works on this filesystem (decides which outcome a secure init must have)."""
    probe = tmp_path / "verity-probe"
    probe.write_bytes(b"probe")
    try:
        return subprocess.run([fsverity_tool, "enable", str(probe)], capture_output=True, check=False).returncode == 0
    finally:
        probe.unlink()


# --- init ----------------------------------------------------------------------------------------

def test_init_default_is_sha512_v1_insecure_with_exact_bytes(tmp_path):
    with Repository.init(tmp_path / "repo") as repo:
        assert repo.algorithm == fsverity.SHA512 and not repo.secure and not repo.read_only
        assert repo.meta.effective_erofs_formats() == (1, ())
    assert (tmp_path / "repo" / "meta.json").read_bytes() == rb.META_SHA512_V1
    assert stat.S_IMODE(os.stat(tmp_path / "repo").st_mode) == 0o700
    assert sorted(os.listdir(tmp_path / "repo")) == ["meta.json"]


def test_init_v2_and_dual(tmp_path):
    Repository.init(tmp_path / "v2", erofs_default=2).close()
    assert (tmp_path / "v2" / "meta.json").read_bytes() == rb.META_SHA512_V2
    Repository.init(tmp_path / "dual", erofs_extra=(2,)).close()
    assert json.loads((tmp_path / "dual" / "meta.json").read_bytes())["erofs_formats"] == {"default": 1, "extra": [2]}


def test_init_is_idempotent_and_refuses_other_configurations(tmp_path):
    Repository.init(tmp_path / "repo", algorithm=fsverity.SHA256).close()
    Repository.init(tmp_path / "repo", algorithm=fsverity.SHA256).close()
    assert (tmp_path / "repo" / "meta.json").read_bytes() == rb.META_SHA256_V1
    for kwargs in ({"algorithm": fsverity.SHA512}, {"algorithm": fsverity.SHA256, "erofs_default": 2},
                   {"algorithm": fsverity.SHA256, "erofs_extra": (2,)}):
        with pytest.raises(RepositoryFormatError, match="different configuration") as info:
            Repository.init(tmp_path / "repo", **kwargs)
        assert "meta.json" in str(info.value)
    assert (tmp_path / "repo" / "meta.json").read_bytes() == rb.META_SHA256_V1


def test_init_accepts_existing_equal_meta_written_elsewhere(tmp_path):
    rb.RepoBuilder(tmp_path / "repo", algorithm="sha512")
    Repository.init(tmp_path / "repo").close()
    (tmp_path / "legacy").mkdir()
    obj = json.loads(rb.META_SHA256_V1)
    del obj["erofs_formats"]
    obj["features"] = {}
    (tmp_path / "legacy" / "meta.json").write_bytes(json.dumps(obj).encode())
    Repository.init(tmp_path / "legacy", algorithm=fsverity.SHA256, erofs_default=2).close()


def test_secure_init_needs_fs_verity(tmp_path, fsverity_tool):
    if fs_supports_verity(tmp_path, fsverity_tool):
        with Repository.init(tmp_path / "repo", insecure=False) as repo:
            assert repo.secure
        return
    with pytest.raises(ComposefsError, match="fs-verity"):
        Repository.init(tmp_path / "repo", insecure=False)
    assert os.listdir(tmp_path / "repo") == []


def test_init_refuses_objects_of_another_algorithm(tmp_path, fsverity_tool):
    rb.RepoBuilder(tmp_path / "repo", algorithm="sha256", fsverity_tool=fsverity_tool, meta=None).add_object(b"x")
    with pytest.raises(RepositoryFormatError, match="sha256"):
        Repository.init(tmp_path / "repo", algorithm=fsverity.SHA512)
    assert not (tmp_path / "repo" / "meta.json").exists()


# --- open ----------------------------------------------------------------------------------------

def test_open_missing_or_uninitialized(tmp_path):
    with pytest.raises(RepositoryFormatError, match="no repository"):
        Repository.open(tmp_path / "absent")
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(RepositoryFormatError):
        Repository.open(tmp_path / "file")
    (tmp_path / "empty").mkdir()
    with pytest.raises(RepositoryFormatError, match="not initialized"):
        Repository.open(tmp_path / "empty")


def test_open_reads_meta_written_by_cfsctl_layout(tmp_path):
    rb.RepoBuilder(tmp_path / "repo", algorithm="sha512")
    with Repository.open(tmp_path / "repo", algorithm=fsverity.SHA512) as repo:
        assert repo.algorithm == fsverity.SHA512 and repo.read_only and not repo.secure
    with pytest.raises(RepositoryFormatError, match="fsverity-sha512-12") as info:
        Repository.open(tmp_path / "repo", algorithm=fsverity.SHA256)
    assert "meta.json" in str(info.value)
    assert lock.HANDLES.count((os.stat(tmp_path / "repo").st_dev, os.stat(tmp_path / "repo").st_ino)) == 0


@pytest.mark.parametrize("meta,error,fragment", [
    (meta_with(version=2), RepositoryFormatError, "version 2"),
    (meta_with(features={"incompatible": ["new-thing"]}), RepositoryFormatError, "new-thing"),
    (meta_with(algorithm="fsverity-sha1-12"), FormatError, "sha1"),
    (b"{not json", FormatError, "invalid JSON"),
], ids=["version-2", "incompatible-feature", "bad-algorithm", "invalid-json"])
def test_open_refuses_unusable_meta(tmp_path, meta, error, fragment):
    rb.RepoBuilder(tmp_path / "repo", meta=meta)
    with pytest.raises(error, match=fragment) as info:
        Repository.open(tmp_path / "repo")
    assert str(info.value).startswith(str(tmp_path / "repo" / "meta.json"))


def test_unknown_read_only_feature_is_enforced(tmp_path):
    rb.RepoBuilder(tmp_path / "repo", meta=meta_with(features={"read-only-compatible": ["v1_erofs", "future"]}))
    with pytest.raises(RepositoryFormatError, match="future"):
        Repository.open(tmp_path / "repo", writable=True)
    with Repository.open(tmp_path / "repo") as repo:
        assert repo.read_only and "future" in repo.read_only_reason
        with pytest.raises(RepositoryFormatError, match="read-only"):
            repo.ensure_object(b"x")


def test_meta_json_symlink_is_refused(tmp_path):
    (tmp_path / "real.json").write_bytes(rb.META_SHA256_V1)
    (tmp_path / "repo").mkdir()
    os.symlink(str(tmp_path / "real.json"), tmp_path / "repo" / "meta.json")
    with pytest.raises(UnsafePathError, match="symbolic link"):
        Repository.open(tmp_path / "repo")


# --- repositories older than meta.json -----------------------------------------------------------

@pytest.mark.parametrize("algorithm", ["sha256", "sha512"])
def test_legacy_repository_opens_read_only_without_writing(tmp_path, fsverity_tool, algorithm):
    builder = rb.RepoBuilder(tmp_path / "repo", algorithm=algorithm, fsverity_tool=fsverity_tool, meta=None)
    object_id = builder.add_object(b"legacy object")
    before = rb.tree_snapshot(tmp_path / "repo")
    with Repository.open(tmp_path / "repo") as repo:
        assert repo.legacy and repo.read_only and repo.algorithm.name == algorithm
        assert repo.meta.effective_erofs_formats() == (2, ())
        assert repo.read_object(object_id) == b"legacy object"
    with pytest.raises(RepositoryFormatError, match="upgrade"):
        Repository.open(tmp_path / "repo", writable=True)
    assert rb.tree_snapshot(tmp_path / "repo") == before


def test_legacy_repository_upgrade_writes_meta(tmp_path, fsverity_tool):
    rb.RepoBuilder(tmp_path / "repo", algorithm="sha512", fsverity_tool=fsverity_tool, meta=None).add_object(b"x")
    with Repository.open(tmp_path / "repo", writable=True, upgrade=True) as repo:
        assert not repo.legacy and not repo.read_only and repo.algorithm == fsverity.SHA512
    assert (tmp_path / "repo" / "meta.json").read_bytes() == rb.META_SHA512_V1


def test_legacy_repository_without_objects(tmp_path):
    (tmp_path / "repo" / "objects" / "ab").mkdir(parents=True)
    with pytest.raises(RepositoryFormatError, match="no objects"):
        Repository.open(tmp_path / "repo")


class _ReadOnlyStatvfs:
    f_flag = os.ST_RDONLY


def test_read_only_filesystem_is_refused_for_writing(tmp_path, monkeypatch):
    Repository.init(tmp_path / "repo", algorithm=fsverity.SHA256).close()
    writable = Repository.open(tmp_path / "repo", writable=True)
    monkeypatch.setattr(os, "fstatvfs", lambda fd: _ReadOnlyStatvfs())
    try:
        with pytest.raises(RepositoryFormatError, match="mounted read-only"):
            Repository.open(tmp_path / "repo", writable=True)
        with pytest.raises(RepositoryFormatError, match="mounted read-only"):
            with writable.exclusive():
                pytest.fail("exclusive granted on a read-only filesystem")
        with Repository.open(tmp_path / "repo") as repo:
            assert repo.read_only
    finally:
        writable.close()
