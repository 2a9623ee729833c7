# -*- coding: utf-8 -*-
# Copyright: (c) 2026, bootc.composefs maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests for repository/lock.py and Repository.exclusive(): real second processes hold flock(2) locks
(``composefs-repo.md`` section 6)."""

from __future__ import annotations

import threading

import pytest

from ansible_collections.bootc.composefs.plugins.module_utils.errors import RepositoryFormatError, RepositoryLockedError
from ansible_collections.bootc.composefs.plugins.module_utils.formats import fsverity
from ansible_collections.bootc.composefs.plugins.module_utils.repository import lock
from ansible_collections.bootc.composefs.plugins.module_utils.repository.repo import Repository
from ansible_collections.bootc.composefs.tests.unit.builders import repo_builder as rb

WAIT_SECONDS = 60  # upper bound for things that must happen; never asserted as a duration


@pytest.fixture(name="repo_path")
def fixture_repo_path(tmp_path):
    Repository.init(tmp_path / "repo", algorithm=fsverity.SHA256).close()
    return tmp_path / "repo"


def release(proc):
    proc.stdin.close()
    proc.wait(WAIT_SECONDS)
    proc.stdout.close()


def test_open_holds_shared_lock_until_close(repo_path):
    repo = Repository.open(repo_path)
    assert not rb.try_lock_process(repo_path, "EX")
    assert rb.try_lock_process(repo_path, "SH")
    repo.close()
    repo.close()
    assert rb.try_lock_process(repo_path, "EX")


def test_exclusive_times_out_while_another_process_holds_shared(repo_path):
    holder = rb.hold_lock_process(repo_path, "SH")
    try:
        with Repository.open(repo_path, writable=True) as repo:
            with pytest.raises(RepositoryLockedError, match="exclusive"):
                with repo.exclusive(timeout=0.2):
                    pytest.fail("exclusive lock granted while another process holds LOCK_SH")
            release(holder)
            holder = None
            assert not rb.try_lock_process(repo_path, "EX"), "the shared lock was not taken back after the timeout"
            with repo.exclusive(timeout=WAIT_SECONDS):
                assert not rb.try_lock_process(repo_path, "SH")
            assert rb.try_lock_process(repo_path, "SH")
            assert not rb.try_lock_process(repo_path, "EX")
    finally:
        if holder is not None:
            release(holder)


def test_blocking_exclusive_waits_for_the_other_process(repo_path):
    holder = rb.hold_lock_process(repo_path, "SH")
    entered = threading.Event()
    errors = []
    with Repository.open(repo_path, writable=True) as repo:

        def collect():
            try:
                with repo.exclusive():
                    entered.set()
            except Exception as err:  # pylint: disable=broad-except
                errors.append(err)

        worker = threading.Thread(target=collect)
        worker.start()
        try:
            assert not entered.wait(0.5), "exclusive() did not wait for the other process's LOCK_SH"
        finally:
            release(holder)
        worker.join(WAIT_SECONDS)
        assert entered.is_set() and not errors and not worker.is_alive()


def test_open_times_out_while_a_gc_holds_exclusive(repo_path):
    holder = rb.hold_lock_process(repo_path, "EX")
    try:
        with pytest.raises(RepositoryLockedError, match="shared"):
            Repository.open(repo_path, timeout=0.1)
    finally:
        release(holder)
    with Repository.open(repo_path, timeout=WAIT_SECONDS) as repo:
        assert repo.read_only


def test_second_handle_in_same_process_is_refused_not_deadlocked(repo_path):
    first = Repository.open(repo_path, writable=True)
    second = Repository.open(repo_path)
    try:
        with pytest.raises(RepositoryLockedError, match="other handle"):
            with first.exclusive(timeout=WAIT_SECONDS):
                pytest.fail("exclusive granted with a second handle open")
    finally:
        second.close()
    with first.exclusive(timeout=WAIT_SECONDS):
        with first.exclusive():
            assert not rb.try_lock_process(repo_path, "SH")
        assert not rb.try_lock_process(repo_path, "SH")
    assert rb.try_lock_process(repo_path, "SH")
    first.close()


def test_exclusive_needs_a_writable_repository(repo_path):
    with Repository.open(repo_path) as repo:
        with pytest.raises(RepositoryFormatError, match="read-only"):
            with repo.exclusive():
                pytest.fail("exclusive granted on a read-only handle")


def test_handle_registry_counts():
    registry = lock.HandleRegistry()
    registry.add("k")
    registry.add("k")
    registry.remove("k")
    assert registry.count("k") == 1
    registry.remove("k")
    registry.remove("k")
    assert registry.count("k") == 0
