# -*- coding: utf-8 -*-
# Copyright: (c) 2026, bootc.composefs maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The listing of ``objects/`` for the sweep, taken in a forked child while the mark runs (layer: repository).

Spec: ``composefs-repo.md`` sections 4 (objects) and 12.2 step 7. What the sweep (``gc_sweep``)
needs from ``objects/`` before it looks at the live set is the same for every run: per
``objects/<xx>`` directory (sorted), the raw digests of its valid object names and the names that
are no object name, or why it could not be opened or listed; the top-level names that are no
``<xx>`` directory; and whether ``objects/`` is absent or unsafe. :func:`iter_listing` computes
exactly that, as plain records.

Where it runs:

* sequentially (:func:`iter_listing` called by the sweep), after the mark: the fallback when
  ``fork`` is unavailable or fails, or when this process runs other threads (a forked copy of a
  threaded process may inherit a lock held by another thread);
* concurrently (:func:`start`, called by ``gc_mark.mark`` before it walks): a forked child runs
  :func:`iter_listing`, encodes the records (``marshal``, each framed by its length, then an end
  record holding their count) and writes them to a pipe; the sweep reads them back
  (:meth:`PendingListing.records`) once the mark is done, on 2 CPUs halving the time of a plan
  (``bench/bench_gc.py``). The listing travels on the live set (:class:`LiveSet`) the mark
  returns, so only the sweep given that very live set uses it, once.

Why a listing taken while the mark runs may serve to delete: the plan runs under the repository's
shared lock, where writers may add objects (never remove them; only a GC under ``LOCK_EX``
does), before and after the listing alike, and the sequential listing is taken under that same
lock too. Objects are named by their content and the live set only depends on the snapshot's
refs and entries, not on when an object was listed: an object listed and not live is unreachable
from the snapshot's roots whenever it was listed, and an object added after the listing is
simply not deleted. ``gc.apply_repository_gc`` then re-validates the snapshot under ``LOCK_EX``
(and recomputes the plan, with its own listing, when anything changed), exactly as it does for a
sequential listing.

Fail closed: any failure of the child (it cannot list, crashes, is killed, exits non-zero), a
short or malformed frame, a record out of order or inconsistent (a digest not in its
directory), a missing end record or a wrong count raises :class:`ListingError`; the sweep turns
it into an error of the plan, which then deletes nothing. A listing nobody reads (the mark
raised) is abandoned: the child is killed and reaped when its live set goes away.
"""

from __future__ import annotations

import fcntl
import contextlib
import functools
import gc
import marshal
import os
import signal
import struct
import threading
import weakref

from ansible_collections.bootc.composefs.plugins.module_utils.errors import UnsafePathError
from ansible_collections.bootc.composefs.plugins.module_utils.repository import paths

__all__ = ["without_cyclic_gc", "LiveSet", "PendingListing", "ListingError", "iter_listing", "start", "digest_keys",
           "HEADER", "LISTED", "OPEN_FAILED", "LIST_FAILED", "NOT_SUBDIR", "OK", "ABSENT", "UNSAFE"]

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
TMP_PREFIX = ".tmp-object-"

# Records. The first is (HEADER, OK | ABSENT | UNSAFE, message); then, in name order, one per
# entry of objects/ (temporary files of a writer skipped): (LISTED, subdir, raw digests, invalid
# names), (OPEN_FAILED | LIST_FAILED, subdir, strerror) or (NOT_SUBDIR, name).
HEADER = "header"
LISTED = "listed"
OPEN_FAILED = "open-failed"
LIST_FAILED = "list-failed"
NOT_SUBDIR = "not-subdir"
OK = "ok"
ABSENT = "absent"
UNSAFE = "unsafe"
_END = "end"
_FRAME = struct.Struct("<Q")
_READ_BUFFER_BYTES = 1 << 20
_PIPE_BYTES = 1 << 20
_MAX_RECORD_BYTES = 1 << 31  # 33 million sha512 names in one objects/<xx>
_CHILD_FAILED = 70


class ListingError(Exception):
    """The concurrent listing cannot be trusted (the message says why): the sweep refuses to plan any deletion."""


class LiveSet(set):
    """The mark's live set (a plain ``set`` of live keys), carrying the listing started with the mark, if any."""

    __slots__ = ("listing",)

    def __init__(self, listing=None) -> None:
        super().__init__()
        self.listing = listing

    def take_listing(self):
        """The listing started with this live set (None if none or already taken): usable once."""
        listing, self.listing = self.listing, None
        return listing


@contextlib.contextmanager
def without_cyclic_gc():
    """The cyclic garbage collector paused inside (restored after): the mark and the sweep make no cycles.

    Speed (bench/bench_gc.py): each full collection traverses the live set (one visit per live
    object) and every object of the process; the sweep's 20,000 ``lstat`` results alone trigger
    dozens of collections, a quarter of its time.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@functools.lru_cache(maxsize=512)
def _key_struct(count: int, digest_size: int, key_bytes: int) -> struct.Struct:
    return struct.Struct(("%ds%dx" % (key_bytes, digest_size - key_bytes)) * count)


def digest_keys(raw: bytes, digest_size: int, key_bytes: int) -> tuple:
    """The first ``key_bytes`` of each digest of ``raw`` (digests concatenated), in one C call."""
    return _key_struct(len(raw) // digest_size, digest_size, key_bytes).unpack(raw)


def _subdir_digests(subdir: str, names: list, digest_size: int) -> bytes | None:
    """The raw digests of ``names`` (in ``objects/<subdir>/``), concatenated, when every one is a valid object name.

    One pass in C (bench/bench_gc.py): the names, each prefixed by ``subdir``, are joined and
    hex-decoded at once; a name of another length, in upper case or with anything but hex digits
    gives None, and the caller looks at the names one by one.
    """
    if not names:
        return b""
    if set(map(len, names)) != {2 * digest_size - 2}:
        return None
    text = subdir + subdir.join(names)
    if text != text.lower():
        return None
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        return None
    if len(raw) != digest_size * len(names):
        return None  # fromhex skips whitespace
    return raw


def _list_subdir(objects_fd: int, subdir: str, algorithm) -> tuple:
    """The record of ``objects/<subdir>``: its valid names decoded (listing order), the others by name."""
    try:
        sub_fd = os.open(subdir, _DIR_FLAGS, dir_fd=objects_fd)
    except OSError as err:
        return (OPEN_FAILED, subdir, err.strerror)
    try:
        names = os.listdir(sub_fd)
    except OSError as err:
        return (LIST_FAILED, subdir, err.strerror)
    finally:
        os.close(sub_fd)
    raw = _subdir_digests(subdir, names, algorithm.digest_size)
    if raw is not None:
        return (LISTED, subdir, raw, ())
    width = 2 * algorithm.digest_size - 2
    valid = []
    invalid = []
    for name in names:
        if len(name) == width and paths.parse_object_name(subdir, name, algorithm) is not None:
            valid.append(subdir + name)
        else:
            invalid.append(name)
    return (LISTED, subdir, bytes.fromhex("".join(valid)), tuple(invalid))


def iter_listing(repo_fd: int, algorithm):
    """The records of ``objects/`` (see the module docstring); reads the directories, nothing else."""
    try:
        objects_fd = paths.open_dir(repo_fd, paths.OBJECTS)
    except FileNotFoundError:
        yield (HEADER, ABSENT, None)
        return
    except UnsafePathError as err:
        yield (HEADER, UNSAFE, err.message)
        return
    try:
        with os.scandir(objects_fd) as listing:
            subdirs = sorted((e.name, e.is_dir(follow_symlinks=False)) for e in listing)
        yield (HEADER, OK, None)
        for subdir, is_dir in subdirs:
            if paths.is_object_subdir(subdir) and is_dir:
                yield _list_subdir(objects_fd, subdir, algorithm)
            elif not subdir.startswith(TMP_PREFIX):
                yield (NOT_SUBDIR, subdir)
    finally:
        os.close(objects_fd)


# --- the forked child ---------------------------------------------------------------------------


def _child(repo_fd: int, algorithm, write_fd: int) -> None:
    """Runs in the child: the whole listing first (the parent is busy marking), then every frame."""
    frames = []
    for record in iter_listing(repo_fd, algorithm):
        payload = marshal.dumps(record)
        frames.append(_FRAME.pack(len(payload)))
        frames.append(payload)
    payload = marshal.dumps((_END, len(frames) // 2))
    frames.append(_FRAME.pack(len(payload)))
    frames.append(payload)
    data = memoryview(b"".join(frames))
    del frames
    while data:
        data = data[os.write(write_fd, data):]


def _abandon(pid: int, handle) -> None:
    """Kill and reap a child whose listing nobody reads (ours: not yet reaped, so its pid is still ours)."""
    handle.close()
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass


class PendingListing:
    """A listing being taken by a forked child (see :func:`start`); :meth:`records` reads it back, once."""

    def __init__(self, repo, pid: int, read_fd: int) -> None:
        self.repo = repo
        self.pid = pid
        self._handle = open(read_fd, "rb", buffering=_READ_BUFFER_BYTES)  # pylint: disable=consider-using-with
        self._finalizer = weakref.finalize(self, _abandon, pid, self._handle)

    def _read(self, size: int) -> bytes:
        try:
            return self._handle.read(size)
        except OSError as err:
            raise ListingError("the listing child's output cannot be read: %s" % (err.strerror or err)) from None

    def _frame(self):
        header = self._read(_FRAME.size)
        if len(header) != _FRAME.size:
            raise ListingError("the listing child's output ends early (%d bytes of a frame header)" % len(header))
        (size,) = _FRAME.unpack(header)
        if size > _MAX_RECORD_BYTES:
            raise ListingError("the listing child announced a record of %d bytes" % size)
        payload = self._read(size)
        if len(payload) != size:
            raise ListingError("the listing child's output ends early (%d of %d bytes of a record)" % (len(payload), size))
        try:
            return marshal.loads(payload)
        except (EOFError, ValueError, TypeError) as err:
            raise ListingError("the listing child sent a record that cannot be decoded: %s" % err) from None

    def _checked(self, record, previous: str | None) -> tuple:
        """``record`` when it is one :func:`iter_listing` can give after the entry named ``previous``."""
        if not isinstance(record, tuple) or len(record) < 2 or not isinstance(record[1], str):
            raise ListingError("the listing child sent a malformed record")
        kind, name = record[0], record[1]
        if previous is not None and name <= previous:
            raise ListingError("the listing child sent the entries of objects/ out of order")
        if kind == NOT_SUBDIR and len(record) == 2:
            return record
        if not paths.is_object_subdir(name):
            raise ListingError("the listing child sent a record of %r, which is no objects/<xx> directory" % name)
        if kind in (OPEN_FAILED, LIST_FAILED) and len(record) == 3 and (record[2] is None or isinstance(record[2], str)):
            return record
        if kind != LISTED or len(record) != 4 or not isinstance(record[2], bytes) or not isinstance(record[3], tuple):
            raise ListingError("the listing child sent a malformed record of objects/%s" % name)
        size = self.repo.algorithm.digest_size
        raw, invalid = record[2], record[3]
        count = len(raw) // size
        if len(raw) % size or raw[::size] != bytes((int(name, 16),)) * count:
            raise ListingError("the listing child sent digests that are not in objects/%s" % name)
        if not all(isinstance(item, str) for item in invalid):
            raise ListingError("the listing child sent a malformed name in objects/%s" % name)
        return record

    def records(self):
        """The records of the child's listing, checked; ListingError on anything unexpected (see the module docstring).

        The last records are only known to be complete once the child exited with status 0, which
        is checked after the last one is given: a caller must discard what it built from the
        records when this raises, at any point.
        """
        try:
            header = self._frame()
            if not (isinstance(header, tuple) and len(header) == 3 and header[0] == HEADER and header[1] in (OK, ABSENT, UNSAFE)
                    and (header[2] is None or isinstance(header[2], str))):
                raise ListingError("the listing child sent a malformed first record")
            yield header
            count = 1
            previous = None
            while True:
                record = self._frame()
                if isinstance(record, tuple) and record and record[0] == _END:
                    break
                record = self._checked(record, previous)
                previous = record[1]
                count += 1
                yield record
            if record != (_END, count) or (header[1] != OK and count != 1):
                raise ListingError("the listing child's end record does not match what it sent")
            if self._read(1):
                raise ListingError("the listing child sent data after its end record")
            self._reap()
        finally:
            self.close()

    def _reap(self) -> None:
        self._handle.close()
        self._finalizer.detach()
        try:
            _pid, status = os.waitpid(self.pid, 0)
        except ChildProcessError:
            raise ListingError("the listing child %d cannot be waited for (reaped elsewhere)" % self.pid) from None
        if not os.WIFEXITED(status) or os.WEXITSTATUS(status) != 0:
            raise ListingError("the listing child %d failed (wait status %#x)" % (self.pid, status))

    def close(self) -> None:
        """Kill and reap the child unless it was reaped (idempotent)."""
        self._finalizer()


def start(repo):
    """A :class:`PendingListing` of ``repo``'s ``objects/`` taken by a forked child, or None (then list sequentially).

    None when ``fork`` is unavailable, when this process runs other threads, or when ``fork`` or
    ``pipe`` fails: nothing was started then.
    """
    if not hasattr(os, "fork") or threading.active_count() != 1:
        return None
    try:
        read_fd, write_fd = os.pipe()
    except OSError:
        return None
    _enlarge_pipe(write_fd)
    try:
        pid = os.fork()
    except OSError:
        os.close(read_fd)
        os.close(write_fd)
        return None
    if pid == 0:  # the child: never returns, never runs the parent's cleanups
        status = _CHILD_FAILED
        try:
            os.close(read_fd)
            _child(repo.fd, repo.algorithm, write_fd)
            status = 0
        except BaseException:  # pylint: disable=broad-except
            pass
        finally:
            os._exit(status)  # pylint: disable=protected-access
    os.close(write_fd)
    return PendingListing(repo, pid, read_fd)


def _enlarge_pipe(write_fd: int) -> None:
    """A 1 MiB pipe where Linux allows it (``pipe-max-size``): 16 times fewer switches to the parent and back."""
    try:
        fcntl.fcntl(write_fd, getattr(fcntl, "F_SETPIPE_SZ", 1031), _PIPE_BYTES)
    except OSError:
        pass
