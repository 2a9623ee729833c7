# -*- coding: utf-8 -*-
# Copyright: (c) 2026, bootc.composefs maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The repository lock: ``flock(2)`` on the repository directory's descriptor.

Layer: repository. Spec: ``composefs-repo.md`` section 6; upstream: composefs-rs
``crates/composefs/src/repository.rs`` (``open_path``, ``gc``).

Protocol (shared with composefs-rs, cfsctl and bootc):

- every opener holds ``LOCK_SH`` on an ``O_RDONLY`` descriptor of the repository directory for as
  long as it uses the repository (``cfsctl transaction`` holds one to keep a GC away);
- writers never take ``LOCK_EX``: every mutation is an atomic link or rename of content-addressed
  data, so concurrent writers are safe;
- garbage collection converts its ``LOCK_SH`` into ``LOCK_EX`` on the *same* descriptor (waiting
  until no other opener remains), works, then converts back to ``LOCK_SH``.

Two facts of flock(2) shape the code:

- a lock belongs to an open file description, not to a process: two independently opened
  descriptors of the repository in one process are two lockers, and converting one to exclusive
  waits for the other forever. :class:`HandleRegistry` counts the handles a process has open on
  each repository so that an exclusive request with another local handle open fails at once
  (RepositoryLockedError) instead of deadlocking;
- a conversion is not atomic: the kernel drops the shared lock before it waits for the exclusive
  one, and a failed non-blocking attempt leaves no lock at all. So a GC must re-read everything
  it looked at under the shared lock, and a timed-out conversion takes the shared lock back
  (blocking, as an ordinary open does) before it reports the failure.

Timeouts poll with ``LOCK_NB`` (no signals, no threads); ``timeout=None`` blocks in the kernel.
"""

from __future__ import annotations

import fcntl
import threading
import time

from ansible_collections.bootc.composefs.plugins.module_utils.errors import RepositoryLockedError

__all__ = [
    "HandleRegistry",
    "HANDLES",
    "lock_shared",
    "lock_exclusive",
    "convert_to_exclusive",
    "convert_to_shared",
    "unlock",
]

POLL_FIRST_SECONDS = 0.01
POLL_MAX_SECONDS = 0.2


class HandleRegistry:
    """Thread-safe count of the open repository handles of this process, per directory (dev, inode)."""

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._counts = {}

    def add(self, key) -> None:
        """Record one more open handle on repository ``key``."""
        with self._mutex:
            self._counts[key] = self._counts.get(key, 0) + 1

    def remove(self, key) -> None:
        """Record that one handle on repository ``key`` was closed."""
        with self._mutex:
            left = self._counts.get(key, 0) - 1
            if left > 0:
                self._counts[key] = left
            else:
                self._counts.pop(key, None)

    def count(self, key) -> int:
        """Return how many handles this process has open on repository ``key``."""
        with self._mutex:
            return self._counts.get(key, 0)


HANDLES = HandleRegistry()


def _flock(fd: int, operation: int, timeout: float | None, what: str, where: str | None) -> None:
    if timeout is None:
        fcntl.flock(fd, operation)
        return
    deadline = time.monotonic() + max(0.0, timeout)
    pause = POLL_FIRST_SECONDS
    while True:
        try:
            fcntl.flock(fd, operation | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise RepositoryLockedError(
                    "could not take the %s repository lock within %s seconds: another process holds it (a garbage "
                    "collection, or an open repository while we wait to collect); retry later or allow a longer "
                    "timeout" % (what, timeout), path=where) from None
            time.sleep(min(pause, remaining))
            pause = min(pause * 2, POLL_MAX_SECONDS)


def lock_shared(fd: int, timeout: float | None = None, where: str | None = None) -> None:
    """Take (or convert to) ``LOCK_SH`` on ``fd``; with ``timeout`` raise RepositoryLockedError when it expires."""
    _flock(fd, fcntl.LOCK_SH, timeout, "shared", where)


def lock_exclusive(fd: int, timeout: float | None = None, where: str | None = None) -> None:
    """Take (or convert to) ``LOCK_EX`` on ``fd``; with ``timeout`` raise RepositoryLockedError when it expires."""
    _flock(fd, fcntl.LOCK_EX, timeout, "exclusive", where)


def convert_to_exclusive(fd: int, timeout: float | None = None, where: str | None = None) -> None:
    """Convert this descriptor's ``LOCK_SH`` to ``LOCK_EX``; on failure hold ``LOCK_SH`` again, then raise."""
    try:
        lock_exclusive(fd, timeout, where)
    except BaseException:
        lock_shared(fd)
        raise


def convert_to_shared(fd: int) -> None:
    """Convert this descriptor's ``LOCK_EX`` back to ``LOCK_SH`` (never waits: we held the stronger lock)."""
    lock_shared(fd)


def unlock(fd: int) -> None:
    """Release whatever lock ``fd`` holds."""
    fcntl.flock(fd, fcntl.LOCK_UN)
