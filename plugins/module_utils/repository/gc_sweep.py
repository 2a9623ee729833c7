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

Speed (``bench/bench_gc.py``): each ``objects/<xx>`` directory is listed once and its names
hex-decoded in one pass; their live keys are cut in C, ``difference`` probes the live set once
per name, and only the dead are located again, named and ``lstat``-ed (the calls mapped in C).
"""

from __future__ import annotations

import functools
import itertools
import operator
import os
import stat
from typing import Callable, NamedTuple

from ansible_collections.bootc.composefs.plugins.module_utils.errors import UnsafePathError
from ansible_collections.bootc.composefs.plugins.module_utils.repository import gc_mark, gc_roots, gc_snapshot, paths

__all__ = ["Sweep", "sweep_objects", "object_exists", "plan_entries", "unlink_entry", "remove_objects"]

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_ST_MODE = operator.attrgetter("st_mode")
_ST_SIZE = operator.attrgetter("st_size")


class Sweep(NamedTuple):
    """What :func:`sweep_objects` found: the objects to remove (sorted, with their sizes), what it counted and reported."""

    remove: tuple  # raw digests, sorted
    sizes: tuple  # st_size of each
    present: int  # objects found (valid names, regular files)
    invalid: tuple  # (path, problem) never touched
    errors: tuple


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


class _SweepState:
    """What the sweep collects while it lists ``objects/``."""

    def __init__(self, repo, live) -> None:
        self.repo = repo
        self.live = live
        self.remove = []
        self.invalid = []
        self.errors = []
        self.present = 0

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
                self.invalid.append((gc_snapshot.path_in(self.repo, paths.OBJECTS, subdir, name), "not a regular file"))

    def one_by_one(self, sub_fd: int, subdir: str, names: list) -> None:
        """The slow path for a directory holding names that are no object names."""
        width = 2 * self.repo.algorithm.digest_size - 2
        dead_names = []
        dead = []
        for name in names:
            raw = paths.parse_object_name(subdir, name, self.repo.algorithm)
            if raw is None or len(name) != width:
                self.invalid.append((gc_snapshot.path_in(self.repo, paths.OBJECTS, subdir, name),
                                     "name is not %d lowercase hex digits" % width))
                continue
            raw = bytes.fromhex(raw)
            if gc_mark.live_key(raw) in self.live:
                self.present += 1
            else:
                dead_names.append(name)
                dead.append(raw)
        self.candidates(sub_fd, subdir, dead_names, dead)

    def subdir(self, objects_fd: int, subdir: str) -> None:
        """Sweep ``objects/<subdir>``: count the live, plan the dead, report what is no object."""
        try:
            sub_fd = os.open(subdir, _DIR_FLAGS, dir_fd=objects_fd)
        except OSError as err:
            self.errors.append("%s: cannot be opened: %s" % (gc_snapshot.path_in(self.repo, paths.OBJECTS, subdir), err.strerror))
            return
        try:
            names = os.listdir(sub_fd)
            size = self.repo.algorithm.digest_size
            raw = _subdir_digests(subdir, names, size)
            if raw is None:
                self.one_by_one(sub_fd, subdir, names)
                return
            # Fast path (bench/bench_gc.py): the live key of every name is cut from the decoded listing
            # in C (no full digests, no per-name Python code); ``difference`` probes the live set once
            # per name (``-=`` would copy the live part first); only the dead are located again (their
            # index in the listing), named and lstat-ed.
            key = gc_mark.KEY_BYTES
            keys = list(map(raw.__getitem__, map(slice, range(0, len(raw), size), range(key, len(raw) + key, size))))
            dead = set(keys).difference(self.live)
            if not dead:
                self.present += len(keys)
                return
            indexes = list(itertools.compress(range(len(keys)), map(dead.__contains__, keys)))
            self.present += len(keys) - len(indexes)
            starts = list(map(size.__mul__, indexes))
            self.candidates(sub_fd, subdir, list(map(names.__getitem__, indexes)),
                            list(map(raw.__getitem__, map(slice, starts, map(size.__add__, starts)))))
        except OSError as err:
            self.errors.append("%s: cannot be listed: %s" % (gc_snapshot.path_in(self.repo, paths.OBJECTS, subdir), err.strerror))
        finally:
            os.close(sub_fd)


def sweep_objects(repo, live) -> Sweep:
    """List ``objects/<xx>/`` once (no ``stat`` but for objects not live); everything valid and not live goes."""
    state = _SweepState(repo, live)
    try:
        objects_fd = paths.open_dir(repo.fd, paths.OBJECTS)
    except FileNotFoundError:
        return Sweep((), (), 0, (), ())
    except UnsafePathError as err:
        return Sweep((), (), 0, (), ("%s: %s" % (gc_snapshot.path_in(repo, paths.OBJECTS), err.message),))
    try:
        with os.scandir(objects_fd) as listing:
            subdirs = sorted((e.name, e.is_dir(follow_symlinks=False)) for e in listing)
        for subdir, is_dir in subdirs:
            if paths.is_object_subdir(subdir) and is_dir:
                state.subdir(objects_fd, subdir)
            elif not subdir.startswith(".tmp-object-"):
                state.invalid.append((gc_snapshot.path_in(repo, paths.OBJECTS, subdir), "not an objects/<xx> directory"))
    finally:
        os.close(objects_fd)
    state.remove.sort()
    return Sweep(tuple(r for r, _s in state.remove), tuple(s for _r, s in state.remove), state.present,
                 tuple(sorted(state.invalid)), tuple(state.errors))


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
