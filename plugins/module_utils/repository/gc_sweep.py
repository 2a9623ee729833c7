# -*- coding: utf-8 -*-
# Copyright: (c) 2026, bootc.composefs maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The sweep of a repository garbage collection: what goes, and the deletions themselves (layer: repository).

Spec: ``composefs-repo.md`` sections 4 (objects), 12.2 steps 7-8, 12.4 and 12.5; upstream:
composefs-rs ``repository.rs`` (``gc_impl`` deletion loop, ``cleanup_broken_links``).

What goes, given the mark's live set (``gc_mark``):

* :func:`sweep_objects`: every valid object name in ``objects/<xx>/`` whose key is not live, with
  its ``st_size`` (one ``lstat`` each, which also checks it is a regular file). Names that are no
  object name (another length, upper case, not hex), anything that is not a regular file, and
  anything but an ``<xx>`` directory in ``objects/`` are reported and never touched (composefs-rs
  aborts midway on bad names); ``.tmp-object-*`` files of a writer are skipped silently;
* :func:`plan_entries`: first-level entries whose object exists but is not live (unlinked before
  the objects go, spec 12.5) and entries whose object is already missing (pruned last). Refs are
  never removed: they are roots someone made; dangling ones are reported.

The deletions (run by ``gc.apply_repository_gc`` under the exclusive lock): :func:`unlink_entry`
unlinks an entry only if its link text is still the one the plan saw (and, for a prune, its object
is still missing); :func:`remove_objects` unlinks objects through one ``objects/<xx>`` descriptor
per group, calling ``step`` before each.

The listing itself (``gc_listing``: every ``objects/<xx>`` listed once, its names validated and
hex-decoded in one pass) is taken by a forked child while the mark runs, when the mark could start
one (the live set carries it), else here; the results are the same either way, and a child that
fails gives an error (nothing deleted), never a partial listing.

Speed (``bench/bench_gc.py``): the live keys of a directory's digests are cut in one C call,
``difference`` probes the live set once per name, and only the dead are located again, named and
``lstat``-ed (the calls mapped in C), with the cyclic garbage collector paused.
"""

from __future__ import annotations

import functools
import itertools
import operator
import os
import stat
from typing import Callable, NamedTuple

from ansible_collections.bootc.composefs.plugins.module_utils.errors import UnsafePathError
from ansible_collections.bootc.composefs.plugins.module_utils.repository import gc_listing, gc_mark, gc_roots, gc_snapshot, paths

__all__ = ["Sweep", "sweep_objects", "object_exists", "plan_entries", "unlink_entry", "remove_objects"]

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_ST_MODE = operator.attrgetter("st_mode")
_ST_SIZE = operator.attrgetter("st_size")
_AFTER_FIRST_BYTE = operator.itemgetter(slice(1, None))


class Sweep(NamedTuple):
    """What :func:`sweep_objects` found: the objects to remove (sorted, with their sizes), what it counted and reported."""

    remove: tuple  # raw digests, sorted
    sizes: tuple  # st_size of each
    present: int  # objects found (valid names, regular files)
    invalid: tuple  # (path, problem) never touched
    errors: tuple


class _SweepState:
    """What the sweep collects from the records of the listing (``gc_listing``) and the live set."""

    def __init__(self, repo, live) -> None:
        self.repo = repo
        self.live = live
        self.remove = []
        self.invalid = []
        self.errors = []
        self.present = 0
        self._objects_fd = None  # -1: cannot be opened (recorded once)

    def close(self) -> None:
        """Close ``objects/`` if it was opened to look at the dead."""
        if self._objects_fd is not None and self._objects_fd >= 0:
            os.close(self._objects_fd)
        self._objects_fd = None

    def _where(self, *parts) -> str:
        return gc_snapshot.path_in(self.repo, paths.OBJECTS, *parts)

    def take(self, records) -> None:
        """Every record of a listing, in order (see ``gc_listing.iter_listing``)."""
        for record in records:
            kind = record[0]
            if kind == gc_listing.HEADER:
                if record[1] == gc_listing.UNSAFE:
                    self.errors.append("%s: %s" % (self._where(), record[2]))
            elif kind == gc_listing.LISTED:
                self.subdir(record[1], record[2], record[3])
            elif kind == gc_listing.OPEN_FAILED:
                self.errors.append("%s: cannot be opened: %s" % (self._where(record[1]), record[2]))
            elif kind == gc_listing.LIST_FAILED:
                self.errors.append("%s: cannot be listed: %s" % (self._where(record[1]), record[2]))
            else:
                self.invalid.append((self._where(record[1]), "not an objects/<xx> directory"))

    def candidates(self, sub_fd: int, subdir: str, names: list, digests: list) -> None:
        """Valid object names that are not live (and their raw digests): removed when a regular file (one lstat each).

        Fast path (bench/bench_gc.py): the lstat calls and the checks of their results run in C
        (``map``); a name that vanished or is no regular file sends the directory to the loop.
        """
        try:
            infos = list(map(functools.partial(os.lstat, dir_fd=sub_fd), names))
        except FileNotFoundError:
            infos = None
        if infos is not None and all(map(stat.S_ISREG, map(_ST_MODE, infos))):
            self.remove.extend(zip(digests, map(_ST_SIZE, infos)))
            self.present += len(infos)
            return
        for name, raw in zip(names, digests):
            try:
                info = os.lstat(name, dir_fd=sub_fd)
            except FileNotFoundError:
                continue
            if stat.S_ISREG(info.st_mode):
                self.remove.append((raw, info.st_size))
                self.present += 1
            else:
                self.invalid.append((self._where(subdir, name), "not a regular file"))

    def _open_objects(self) -> int | None:
        """``objects/`` (opened once, when the first dead object is looked at); None (recorded) when it cannot be."""
        if self._objects_fd is None:
            try:
                self._objects_fd = paths.open_dir(self.repo.fd, paths.OBJECTS)
            except (OSError, UnsafePathError) as err:
                self._objects_fd = -1
                self.errors.append("%s: cannot be opened again: %s" % (self._where(), getattr(err, "message", None) or err))
        return self._objects_fd if self._objects_fd >= 0 else None

    def subdir(self, subdir: str, raw: bytes, invalid: tuple) -> None:
        """Sweep ``objects/<subdir>`` as listed: count the live, plan the dead, report what is no object.

        Fast path (bench/bench_gc.py): the live key of every digest is cut from the decoded listing
        in one C call (``struct``), ``difference`` probes the live set once per name (``-=`` would
        copy the live part first; ``map(live.__contains__)`` is twice as slow), and only the dead
        are located again (their index in the listing), named and lstat-ed.
        """
        size = self.repo.algorithm.digest_size
        for name in invalid:
            self.invalid.append((self._where(subdir, name), "name is not %d lowercase hex digits" % (2 * size - 2)))
        keys = gc_listing.digest_keys(raw, size, gc_mark.KEY_BYTES)
        dead = set(keys).difference(self.live)
        if not dead:
            self.present += len(keys)
            return
        indexes = list(itertools.compress(range(len(keys)), map(dead.__contains__, keys)))
        self.present += len(keys) - len(indexes)
        starts = list(map(size.__mul__, indexes))
        digests = list(map(raw.__getitem__, map(slice, starts, map(size.__add__, starts))))
        names = list(map(bytes.hex, map(_AFTER_FIRST_BYTE, digests)))
        objects_fd = self._open_objects()
        if objects_fd is None:
            return
        try:
            sub_fd = os.open(subdir, _DIR_FLAGS, dir_fd=objects_fd)
        except OSError as err:
            self.errors.append("%s: cannot be opened: %s" % (self._where(subdir), err.strerror))
            return
        try:
            self.candidates(sub_fd, subdir, names, digests)
        except OSError as err:
            self.errors.append("%s: cannot be listed: %s" % (self._where(subdir), err.strerror))
        finally:
            os.close(sub_fd)

    def sweep(self) -> Sweep:
        """The result."""
        self.remove.sort()
        return Sweep(tuple(r for r, _s in self.remove), tuple(s for _r, s in self.remove), self.present,
                     tuple(sorted(self.invalid)), tuple(self.errors))


def sweep_objects(repo, live) -> Sweep:
    """List ``objects/<xx>/`` once (no ``stat`` but for objects not live); everything valid and not live goes.

    The listing is the one the mark started in a child (``gc_listing``) when ``live`` carries it,
    else taken here; a failed child gives a sweep that only holds an error (nothing is deleted).
    """
    listing = live.take_listing() if isinstance(live, gc_listing.LiveSet) else None
    if listing is not None and listing.repo is not repo:
        listing.close()
        listing = None
    state = _SweepState(repo, live)
    try:
        with gc_listing.without_cyclic_gc():
            if listing is None:
                state.take(gc_listing.iter_listing(repo.fd, repo.algorithm))
            else:
                try:
                    state.take(listing.records())
                except gc_listing.ListingError as err:
                    return Sweep((), (), 0, (), ("%s: the listing taken while marking failed, so nothing is deleted: %s"
                                                 % (gc_snapshot.path_in(repo, paths.OBJECTS), err),))
            return state.sweep()
    finally:
        state.close()
        if listing is not None:
            listing.close()


def object_exists(repo, object_id: str) -> bool:
    """Whether ``objects/<xx>/<rest>`` is there as a regular file (no symlink followed)."""
    try:
        sub_fd = paths.open_dir(repo.fd, paths.OBJECTS + "/" + object_id[:2])
    except (FileNotFoundError, UnsafePathError):
        return False
    try:
        info = paths.lstat_at(sub_fd, object_id[2:])
    finally:
        os.close(sub_fd)
    return info is not None and stat.S_ISREG(info.st_mode)


def plan_entries(repo, snapshot: gc_snapshot.RepoSnapshot, live, roots: gc_roots.Roots) -> tuple:
    """``(unlink, prune, unusable)``: entries whose object is not live, entries whose object is missing, bad entries no root names."""
    unlink = []
    prune = []
    unusable = []
    for entry in snapshot.entries:
        where = gc_snapshot.path_in(repo, entry.category, entry.name)
        if entry.object_id is None:
            rooted = roots.images if entry.category == paths.IMAGES else roots.streams
            if entry.name not in rooted:
                unusable.append((where, entry.problem))
            continue
        if not object_exists(repo, entry.object_id):
            prune.append((entry.category, entry.name, entry.link_text))
        elif gc_mark.live_key(bytes.fromhex(entry.object_id)) not in live:
            unlink.append((entry.category, entry.name, entry.link_text))
    return tuple(unlink), tuple(prune), tuple(unusable)


def unlink_entry(repo, category: str, name: str, link_text: str, want_missing: bool) -> bool:
    """Unlink ``<category>/<name>`` if it still has ``link_text`` (and, with ``want_missing``, its object is still gone)."""
    try:
        cat_fd = paths.open_dir(repo.fd, category)
    except FileNotFoundError:
        return False
    try:
        current = paths.readlink_at(cat_fd, name, where=gc_snapshot.path_in(repo, category, name))
        if current != link_text:
            return False
        if want_missing and object_exists(repo, paths.parse_entry_link(current, repo.algorithm)):
            return False
        return paths.unlink_symlink(cat_fd, name, where=gc_snapshot.path_in(repo, category, name))
    finally:
        os.close(cat_fd)


def remove_objects(repo, remove: tuple, sizes: tuple, step: Callable | None) -> tuple:
    """Unlink objects (raw digests, sorted), one ``objects/<xx>`` descriptor per group; returns what went."""
    removed = []
    total = 0
    objects_fd = paths.open_dir(repo.fd, paths.OBJECTS)
    try:
        index = 0
        while index < len(remove):
            first = remove[index][0]
            end = index + 1
            while end < len(remove) and remove[end][0] == first:
                end += 1
            try:
                sub_fd = os.open("%02x" % first, _DIR_FLAGS, dir_fd=objects_fd)
            except FileNotFoundError:
                index = end
                continue
            try:
                for position in range(index, end):
                    raw = remove[position]
                    if step is not None:
                        step("object", raw.hex())
                    try:
                        os.unlink(raw[1:].hex(), dir_fd=sub_fd)
                    except (FileNotFoundError, IsADirectoryError):
                        continue
                    removed.append(raw)
                    total += sizes[position]
            finally:
                os.close(sub_fd)
            index = end
    finally:
        os.close(objects_fd)
    return tuple(removed), total
