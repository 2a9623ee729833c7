# -*- coding: utf-8 -*-
# Copyright: (c) 2026, bootc.composefs maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests for repository/staging.py: files appear under their final name only, never replacing one."""

from __future__ import annotations

import os

import pytest

from ansible_collections.bootc.composefs.plugins.module_utils.repository import staging


@pytest.fixture(name="dir_fd")
def fixture_dir_fd(tmp_path):
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    yield fd
    os.close(fd)


@pytest.fixture(name="mode", params=["anonymous", "named", "named-no-renameat2"])
def fixture_mode(request, monkeypatch, tmp_path):
    if request.param != "anonymous":
        monkeypatch.setattr(staging, "PROC_SELF_FD", str(tmp_path / "no-proc"))
    if request.param == "named-no-renameat2":
        monkeypatch.setattr(staging, "_libc_function", lambda name: None)
    return request.param


def test_staged_file_appears_only_when_linked(tmp_path, dir_fd, mode):
    with staging.StagedFile(dir_fd, ".tmp-test-") as stage:
        assert (stage.name is None) == (mode == "anonymous")
        staging.write_all(stage.fd, b"content")
        stage.reopen_read_only()
        assert not (tmp_path / "final").exists()
        stage.link_into_place(dir_fd, "final")
    assert (tmp_path / "final").read_bytes() == b"content"
    assert sorted(os.listdir(tmp_path)) == ["final"]


def test_existing_name_is_never_replaced(tmp_path, dir_fd, mode):
    (tmp_path / "final").write_bytes(b"first")
    with staging.StagedFile(dir_fd, ".tmp-test-") as stage:
        staging.write_all(stage.fd, b"second")
        with pytest.raises(FileExistsError):
            stage.link_into_place(dir_fd, "final")
    assert (tmp_path / "final").read_bytes() == b"first"
    assert sorted(os.listdir(tmp_path)) == ["final"], mode


def test_discarded_stage_leaves_nothing(tmp_path, dir_fd, mode):
    with pytest.raises(RuntimeError):
        with staging.StagedFile(dir_fd, ".tmp-test-") as stage:
            staging.write_all(stage.fd, b"partial")
            raise RuntimeError("writer failed")
    assert not os.listdir(tmp_path), mode


def test_rename_noreplace(tmp_path, dir_fd, mode):
    (tmp_path / "a").write_bytes(b"a")
    (tmp_path / "b").write_bytes(b"b")
    with pytest.raises(FileExistsError):
        staging.rename_noreplace(dir_fd, "a", dir_fd, "b")
    staging.rename_noreplace(dir_fd, "a", dir_fd, "c")
    assert sorted(os.listdir(tmp_path)) == ["b", "c"] and (tmp_path / "c").read_bytes() == b"a", mode


def test_sync_filesystem_and_fallback(dir_fd, monkeypatch):
    staging.sync_filesystem(dir_fd)
    calls = []
    monkeypatch.setattr(staging, "_libc_function", lambda name: None)
    monkeypatch.setattr(staging.os, "sync", lambda: calls.append(True))
    staging.sync_filesystem(dir_fd)
    assert calls == [True]
