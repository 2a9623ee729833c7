# -*- coding: utf-8 -*-
# Copyright: (c) 2026, bootc.composefs maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests for repository/objects.py and staging.py: object names come from the ``fsverity digest`` oracle."""

from __future__ import annotations

import errno
import io
import os

import pytest

from ansible_collections.bootc.composefs.plugins.module_utils.errors import (
    ComposefsError,
    DanglingRefError,
    FormatError,
    RepositoryFormatError,
    UnsafePathError,
)
from ansible_collections.bootc.composefs.plugins.module_utils.formats import fsverity
from ansible_collections.bootc.composefs.plugins.module_utils.repository import objects, staging
from ansible_collections.bootc.composefs.plugins.module_utils.repository.repo import Repository
from ansible_collections.bootc.composefs.tests.unit.builders import repo_builder as rb

SIZES = [0, 1, 4095, 4096, 4097, 3 * 65536 + 7, (1 << 20) + 1]
ALGORITHMS = [fsverity.SHA256, fsverity.SHA512]


def pattern(size, seed=0):
    return bytes((i * 7 + seed) % 251 for i in range(size))


@pytest.fixture(name="repo_factory")
def fixture_repo_factory(tmp_path):
    opened = []

    def make(algorithm=fsverity.SHA256, name="repo"):
        repo = Repository.init(tmp_path / name, algorithm=algorithm)
        opened.append(repo)
        return repo

    yield make
    for repo in opened:
        repo.close()


def oracle_id(tmp_path, fsverity_tool, data, algorithm):
    path = tmp_path / "oracle-input"
    path.write_bytes(data)
    return rb.fsverity_digest(fsverity_tool, path, algorithm.name)


def stray_files(root):
    return [p for p in root.rglob("*") if p.name.startswith((".tmp-", ".symlink-"))]


@pytest.mark.parametrize("algorithm", ALGORITHMS, ids=[a.name for a in ALGORITHMS])
@pytest.mark.parametrize("size", SIZES)
def test_object_names_match_fsverity_oracle(tmp_path, fsverity_tool, repo_factory, algorithm, size):
    repo = repo_factory(algorithm)
    data = pattern(size)
    expected = oracle_id(tmp_path, fsverity_tool, data, algorithm)
    assert repo.ensure_object(data) == expected
    path = tmp_path / "repo" / "objects" / expected[:2] / expected[2:]
    assert path.read_bytes() == data
    assert repo.object_path(expected) == str(path)
    assert repo.has_object(expected)
    assert repo.read_object(expected, verify=True) == data


@pytest.mark.parametrize("algorithm", ALGORITHMS, ids=[a.name for a in ALGORITHMS])
def test_streaming_object_matches_oracle(tmp_path, fsverity_tool, repo_factory, algorithm):
    repo = repo_factory(algorithm)
    data = pattern(5 * (1 << 20) + 123, seed=3)
    expected = oracle_id(tmp_path, fsverity_tool, data, algorithm)
    assert repo.ensure_object_from_fileobj(io.BytesIO(data)) == (expected, len(data))
    assert (tmp_path / "repo" / "objects" / expected[:2] / expected[2:]).read_bytes() == data
    assert repo.ensure_object_from_fileobj(io.BytesIO(data)) == (expected, len(data))
    assert repo.ensure_object(data) == expected
    assert not stray_files(tmp_path / "repo")


def test_existing_object_written_by_another_tool_is_reused(tmp_path, fsverity_tool):
    builder = rb.RepoBuilder(tmp_path / "built", fsverity_tool=fsverity_tool)
    object_id = builder.add_object(b"from elsewhere")
    repo = Repository.open(tmp_path / "built", writable=True)
    try:
        before = rb.tree_snapshot(tmp_path / "built")
        assert repo.ensure_object(b"from elsewhere") == object_id
        assert repo.ensure_object_from_fileobj(io.BytesIO(b"from elsewhere")) == (object_id, 14)
        assert rb.tree_snapshot(tmp_path / "built") == before
    finally:
        repo.close()


@pytest.mark.parametrize("force", ["named-stage", "named-stage-no-renameat2"])
def test_named_stage_fallback(tmp_path, fsverity_tool, repo_factory, monkeypatch, force):
    monkeypatch.setattr(staging, "PROC_SELF_FD", str(tmp_path / "no-proc"))
    if force == "named-stage-no-renameat2":
        monkeypatch.setattr(staging, "_libc_function", lambda name: None)
    repo = repo_factory()
    data = pattern(10000)
    expected = oracle_id(tmp_path, fsverity_tool, data, fsverity.SHA256)
    assert repo.ensure_object(data) == expected
    assert repo.ensure_object_from_fileobj(io.BytesIO(data)) == (expected, len(data))
    assert repo.ensure_object_from_fileobj(io.BytesIO(b"other")) == (oracle_id(tmp_path, fsverity_tool, b"other",
                                                                               fsverity.SHA256), 5)
    assert repo.read_object(expected) == data
    assert not stray_files(tmp_path / "repo")


@pytest.mark.parametrize("call", ["bytes", "fileobj"])
def test_lost_race_is_success(tmp_path, fsverity_tool, repo_factory, monkeypatch, call):
    repo = repo_factory()
    data = b"raced content"
    expected = oracle_id(tmp_path, fsverity_tool, data, fsverity.SHA256)
    real_link = staging.StagedFile.link_into_place
    raced = []

    def written_by_another_writer_first(stage, dst_dir_fd, dst_name):
        target = tmp_path / "repo" / "objects" / expected[:2] / expected[2:]
        target.write_bytes(data)
        raced.append(target.stat().st_ino)
        real_link(stage, dst_dir_fd, dst_name)

    monkeypatch.setattr(staging.StagedFile, "link_into_place", written_by_another_writer_first)
    if call == "bytes":
        assert repo.ensure_object(data) == expected
    else:
        assert repo.ensure_object_from_fileobj(io.BytesIO(data)) == (expected, len(data))
    target = tmp_path / "repo" / "objects" / expected[:2] / expected[2:]
    assert raced == [target.stat().st_ino] and target.read_bytes() == data
    assert not stray_files(tmp_path / "repo")


def test_store_keeps_directory_fds_until_closed(tmp_path, fsverity_tool):
    Repository.init(tmp_path / "repo", algorithm=fsverity.SHA256).close()
    repo_fd = os.open(tmp_path / "repo", os.O_RDONLY | os.O_DIRECTORY)
    try:
        baseline = len(os.listdir("/proc/self/fd"))
        store = objects.ObjectStore(repo_fd, fsverity.SHA256, secure=False)
        stored = [store.ensure_bytes(pattern(n, seed=n)) for n in range(600)]
        prefixes = {object_id[:2] for object_id in stored}
        assert len(os.listdir("/proc/self/fd")) == baseline + 1 + len(prefixes)
        assert store.has(stored[0]) and store.read(stored[1]) == pattern(1, seed=1)
        store.close()
        assert len(os.listdir("/proc/self/fd")) == baseline
        assert store.ensure_bytes(b"after close") == oracle_id(tmp_path, fsverity_tool, b"after close", fsverity.SHA256)
        del store
        assert len(os.listdir("/proc/self/fd")) == baseline
    finally:
        os.close(repo_fd)


def test_missing_o_tmpfile_is_remembered(tmp_path, fsverity_tool, repo_factory, monkeypatch):
    real_open = os.open
    tmpfile_attempts = []

    def open_without_tmpfile(path, flags, *args, **kwargs):
        if flags & os.O_TMPFILE == os.O_TMPFILE:
            tmpfile_attempts.append(path)
            raise OSError(errno.EOPNOTSUPP, os.strerror(errno.EOPNOTSUPP))
        return real_open(path, flags, *args, **kwargs)

    repo = repo_factory()
    monkeypatch.setattr(os, "open", open_without_tmpfile)
    contents = [b"first", b"second", pattern(70000)]
    assert [repo.ensure_object(c) for c in contents[:2]] + [repo.ensure_object_from_fileobj(io.BytesIO(contents[2]))[0]] == [
        oracle_id(tmp_path, fsverity_tool, c, fsverity.SHA256) for c in contents]
    assert len(tmpfile_attempts) == 1
    assert not stray_files(tmp_path / "repo")


def test_missing_fs_verity_is_remembered(tmp_path, fsverity_tool, repo_factory, monkeypatch):
    enable_calls = []

    def unsupported(fd, algorithm):
        enable_calls.append(fd)
        return False

    repo = repo_factory()
    monkeypatch.setattr(fsverity, "enable_fd", unsupported)
    contents = [b"one", b"two", pattern(9000)]
    assert [repo.ensure_object(c) for c in contents] == [oracle_id(tmp_path, fsverity_tool, c, fsverity.SHA256)
                                                         for c in contents]
    assert repo.ensure_object_from_fileobj(io.BytesIO(b"three"))[0] == oracle_id(tmp_path, fsverity_tool, b"three",
                                                                                 fsverity.SHA256)
    assert len(enable_calls) == 1


def test_corrupted_object_detected_by_verify(tmp_path, repo_factory):
    repo = repo_factory()
    object_id = repo.ensure_object(b"original content")
    (tmp_path / "repo" / "objects" / object_id[:2] / object_id[2:]).write_bytes(b"tampered content")
    assert repo.read_object(object_id) == b"tampered content"
    with pytest.raises(FormatError, match="corrupted") as info:
        repo.read_object(object_id, verify=True)
    assert object_id[2:] in str(info.value)


def test_missing_object_is_dangling(repo_factory):
    repo = repo_factory()
    missing = "ab" * 32
    assert not repo.has_object(missing)
    with pytest.raises(DanglingRefError, match=missing[2:]):
        repo.read_object(missing)


@pytest.mark.parametrize("object_id", ["AB" * 32, "ab" * 31, "../" + "a" * 61, "ab" * 64])
def test_invalid_object_ids(repo_factory, object_id):
    repo = repo_factory()
    for call in (repo.has_object, repo.read_object, repo.object_path):
        with pytest.raises(UnsafePathError):
            call(object_id)


def test_symlinked_objects_dir_is_refused(tmp_path, repo_factory):
    repo = repo_factory()
    outside = tmp_path / "outside"
    outside.mkdir()
    os.symlink(str(outside), tmp_path / "repo" / "objects")
    with pytest.raises(UnsafePathError, match="symbolic link"):
        repo.ensure_object(b"data")
    with pytest.raises(UnsafePathError):
        repo.ensure_object_from_fileobj(io.BytesIO(b"data"))
    with pytest.raises(UnsafePathError):
        repo.has_object("ab" * 32)
    assert not list(outside.iterdir())


def test_symlinked_object_and_subdir_are_refused(tmp_path, fsverity_tool, repo_factory):
    repo = repo_factory()
    outside = tmp_path / "outside"
    outside.mkdir()
    secret = outside / "passwd"
    secret.write_bytes(b"root:x:0:0")
    object_id = oracle_id(tmp_path, fsverity_tool, b"root:x:0:0", fsverity.SHA256)
    (tmp_path / "repo" / "objects" / object_id[:2]).mkdir(parents=True)
    os.symlink(str(secret), tmp_path / "repo" / "objects" / object_id[:2] / object_id[2:])
    for call in (lambda: repo.has_object(object_id), lambda: repo.read_object(object_id),
                 lambda: repo.ensure_object(b"root:x:0:0")):
        with pytest.raises(UnsafePathError):
            call()
    other_id = oracle_id(tmp_path, fsverity_tool, b"elsewhere", fsverity.SHA256)
    if other_id[:2] != object_id[:2]:
        os.symlink(str(outside), tmp_path / "repo" / "objects" / other_id[:2])
        with pytest.raises(UnsafePathError):
            repo.ensure_object(b"elsewhere")
    assert sorted(p.name for p in outside.iterdir()) == ["passwd"] and secret.read_bytes() == b"root:x:0:0"


def test_iter_objects_reports_invalid_names(tmp_path, fsverity_tool):
    builder = rb.RepoBuilder(tmp_path / "repo", fsverity_tool=fsverity_tool)
    valid = sorted(builder.add_object(pattern(n)) for n in (1, 2, 3))
    objects_dir = tmp_path / "repo" / "objects"
    (objects_dir / "ab").mkdir(exist_ok=True)
    (objects_dir / "ab" / "short").write_bytes(b"")
    (objects_dir / "ab" / ("CD" * 31)).write_bytes(b"")
    (objects_dir / "ab" / ("cd" * 31)).mkdir()
    (objects_dir / ".tmp-object-abcdefghijkl").write_bytes(b"")
    (objects_dir / "zz").mkdir()
    (objects_dir / "zz" / "x").write_bytes(b"")
    os.symlink(str(tmp_path), objects_dir / "ef")
    with Repository.open(tmp_path / "repo") as repo:
        entries = list(repo.iter_objects())
    good = [e.object_id for e in entries if e.object_id is not None]
    bad = sorted(e.relpath for e in entries if e.object_id is None)
    assert sorted(good) == valid
    assert bad == sorted(["objects/ab/short", "objects/ab/" + "CD" * 31, "objects/ab/" + "cd" * 31, "objects/ef"])
    assert all(e.problem for e in entries if e.object_id is None)


def test_infer_algorithm(tmp_path, fsverity_tool):
    for algorithm in ("sha256", "sha512"):
        builder = rb.RepoBuilder(tmp_path / algorithm, algorithm=algorithm, fsverity_tool=fsverity_tool, meta=None)
        builder.add_object(b"x")
        fd = os.open(tmp_path / algorithm, os.O_RDONLY | os.O_DIRECTORY)
        try:
            assert objects.infer_algorithm(fd) == (fsverity.algorithm_by_name(algorithm), False)
        finally:
            os.close(fd)
    (tmp_path / "empty" / "objects" / "ab").mkdir(parents=True)
    fd = os.open(tmp_path / "empty", os.O_RDONLY | os.O_DIRECTORY)
    try:
        with pytest.raises(RepositoryFormatError, match="no objects"):
            objects.infer_algorithm(fd)
    finally:
        os.close(fd)


# --- secure repositories, on a simulated fs-verity filesystem -------------------------------------

@pytest.fixture(name="verity")
def fixture_verity(fsverity_tool, monkeypatch):
    return rb.FakeVerity(fsverity_tool).install(monkeypatch, fsverity)


def test_secure_repository_enables_and_checks_verity(tmp_path, fsverity_tool, verity):
    with Repository.init(tmp_path / "repo", algorithm=fsverity.SHA256, insecure=False) as repo:
        assert repo.secure
        assert verity.has_verity(tmp_path / "repo" / "meta.json")
        data = pattern(9000)
        expected = oracle_id(tmp_path, fsverity_tool, data, fsverity.SHA256)
        assert repo.ensure_object(data) == expected
        assert repo.ensure_object_from_fileobj(io.BytesIO(b"streamed")) == (
            oracle_id(tmp_path, fsverity_tool, b"streamed", fsverity.SHA256), 8)
        assert verity.has_verity(tmp_path / "repo" / "objects" / expected[:2] / expected[2:])
        assert repo.read_object(expected) == data
    with Repository.open(tmp_path / "repo") as repo:
        assert repo.secure


def test_secure_repository_refuses_objects_without_verity(tmp_path, fsverity_tool, verity):
    with Repository.init(tmp_path / "repo", algorithm=fsverity.SHA256, insecure=False) as repo:
        plain = rb.RepoBuilder(tmp_path / "repo", fsverity_tool=fsverity_tool, meta=None).add_object(b"no verity")
        with pytest.raises(ComposefsError, match="fs-verity") as info:
            repo.read_object(plain)
        assert str(info.value).startswith(str(tmp_path / "repo" / "objects" / plain[:2]))
        with pytest.raises(ComposefsError, match="fs-verity"):
            repo.ensure_object(b"no verity")
    assert verity.enabled


def test_verity_digest_not_matching_the_name_is_corruption(tmp_path, fsverity_tool, verity):
    with Repository.init(tmp_path / "repo", algorithm=fsverity.SHA256) as repo:
        name = oracle_id(tmp_path, fsverity_tool, b"expected", fsverity.SHA256)
        target = tmp_path / "repo" / "objects" / name[:2]
        target.mkdir(parents=True)
        (target / name[2:]).write_bytes(b"something else")
        verity.enable_path(target / name[2:], fsverity.SHA256)
        with pytest.raises(FormatError, match="corrupted"):
            repo.read_object(name)
        with pytest.raises(FormatError, match="corrupted"):
            repo.ensure_object(b"expected")


def test_insecure_repository_enables_verity_where_missing(tmp_path, fsverity_tool, verity):
    builder = rb.RepoBuilder(tmp_path / "repo", fsverity_tool=fsverity_tool)
    object_id = builder.add_object(b"old object")
    with Repository.open(tmp_path / "repo", writable=True) as repo:
        assert not repo.secure
        assert repo.ensure_object(b"old object") == object_id
    assert verity.has_verity(tmp_path / "repo" / "objects" / object_id[:2] / object_id[2:])


def test_upgrade_keeps_verity_of_the_probed_object(tmp_path, fsverity_tool, verity):
    builder = rb.RepoBuilder(tmp_path / "repo", algorithm="sha512", fsverity_tool=fsverity_tool, meta=None)
    object_id = builder.add_object(b"verity object")
    verity.enable_path(tmp_path / "repo" / "objects" / object_id[:2] / object_id[2:], fsverity.SHA512)
    with Repository.open(tmp_path / "repo", writable=True, upgrade=True) as repo:
        assert repo.secure
    assert verity.has_verity(tmp_path / "repo" / "meta.json")
    assert (tmp_path / "repo" / "meta.json").read_bytes() == rb.META_SHA512_V1
