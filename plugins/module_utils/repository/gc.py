# -*- coding: utf-8 -*-
# Copyright: (c) 2026, bootc.composefs maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Garbage collection of a composefs repository: scan, mark, sweep plan, apply.

Layer: repository (knows refs, entries, objects, splitstreams and EROFS images; nothing about OCI
tags or deployments). Spec: ``composefs-repo.md`` sections 2, 5, 6, 9, 11.5-11.6, 12 and 13;
upstream: composefs-rs ``crates/composefs/src/repository.rs`` (``gc``, ``gc_dry_run``,
``gc_impl``, ``walk_streams``, ``cleanup_broken_links``).

Steps, each callable on its own (the operations layer chains them):

==================================== ================================================================
:func:`scan_repository`              every ref below ``images/refs`` and ``streams/refs`` and every
                                     first-level entry of ``images/`` and ``streams/`` (``readlink``
                                     only), each with the problem that makes it unusable, if any
:func:`mark`                         the live set: every object reachable from the roots
:func:`plan_repository_gc`           scan + roots (with simulated ref changes) + mark + sweep plan
                                     (one listing per ``objects/<xx>``); no side effects
:func:`apply_repository_gc`          executes a plan under ``LOCK_EX`` (see "Apply" below)
==================================== ================================================================

Roots: every ref below ``streams/refs/`` and ``images/refs/`` (each names a first-level entry),
plus *extra roots* the caller names: first-level ``images/`` entries (the boot EROFS images of
live deployments) and ``streams/`` entries (their manifests). ``add_stream_refs`` and
``remove_stream_refs`` simulate ref changes the caller will make before applying (tags created and
removed), so a plan made before those changes describes exactly what the run after them deletes.

Mark, from each root:

* image root: the entry's object is live; the image's framing is checked (``erofs.reader``) and
  every object its ``trusted.overlay.metacopy`` / ``trusted.overlay.redirect`` xattrs name is live
  (``formats/erofs/scan.py``);
* stream root: the entry's object is walked: it is live, every ``object_refs`` digest is live,
  every ``stream_refs`` digest (the targets of named refs, and any unnamed ones) is live, and is
  walked in turn when it is a splitstream: always when a ``streams/`` entry names that object
  (then it must parse), never when an ``images/`` entry does (EROFS images a config names are kept
  but not parsed, as upstream does: their files are the layers' objects), otherwise when its
  header is a splitstream header. composefs-rs only follows refs whose object has a ``streams/``
  entry; following the others by object id keeps a superset alive (a stream whose entry was lost
  still keeps its content);
* every object the mark parses, and every object it keeps as "not a splitstream" after probing
  it, is checked against its name first: the kernel measures it in a secure repository, the
  fs-verity digest is computed here in an insecure one. A flipped bit in a stream can therefore
  never redirect a reference elsewhere: it is an error naming the object.

Fatal (the plan records an error, nothing at all is deleted) versus reported:

========================================================= ==========================================
situation                                                 outcome
========================================================= ==========================================
a ref that is not a symlink, not UTF-8, or whose link     error naming the ref (composefs-rs aborts
text is not ``../`` * depth + entry name                  too, on the first two)
a root's entry that is not a symlink to ``../objects/..`` error naming the entry
a root image, a walked splitstream or any object read on  error naming the file (an unparsable root
the way that cannot be read or parsed (bad magic,         could hide references)
truncated, wrong algorithm, content not matching its
name)
``objects/`` or ``images/`` or ``streams/`` unreadable,   error
or a symlink
a ref naming a missing entry, or an entry (of a root)     reported as a dangling ref; composefs-rs
naming a missing object                                   aborts the whole GC instead
a stream ref naming a missing object                      reported (``missing_objects``)
a name in ``objects/<xx>/`` that is no object, anything   reported, never touched (composefs-rs
but a directory in ``objects/``                           aborts midway on bad names)
an entry that is not a symlink or has a malformed link    reported, never touched
text, and no root names it
========================================================= ==========================================

Sweep plan: objects present but not live (with their ``st_size`` from one ``lstat`` each);
first-level entries whose object exists but is not live (unlinked before the objects go, spec
12.5), and entries whose object is already missing (pruned last). Refs are never removed: they
are roots someone made; dangling ones are reported. ``images/`` and ``streams/`` counts follow
composefs-rs's ``images_pruned`` / ``streams_pruned``.

Apply, in this order, all under ``LOCK_EX`` taken by converting the handle's ``LOCK_SH``
(``Repository.exclusive``, exactly as composefs-rs ``gc`` does, so every composefs-rs, cfsctl,
bootc or ``composefs_pull`` opener is excluded while anything is deleted):

1. re-validate: refs and entries are listed again and must equal what the plan expects (its
   snapshot with the simulated ref changes applied), and every object the mark found missing must
   still be missing. Objects are immutable and named by their content, so then the live set is the
   plan's. Otherwise the plan is recomputed under the lock and only what *both* plans delete is
   deleted (never anything the checked plan did not list; something that became live is kept);
2. unlink first-level entries whose object is not live (link text re-read and compared first);
3. unlink the unreachable objects, grouped per ``objects/<xx>`` directory;
4. unlink entries whose object is missing (re-checked).

A live object is never deleted and no entry ever names a deleted object, so a crash at any
instant leaves every live root complete; the next run plans the rest from what is on disk.

Memory and speed (``bench/bench_gc.py``): the live set holds the first 16 bytes of each digest
(``KEY_BYTES``; a shared prefix can only keep an object alive); each ``objects/<xx>`` directory is
listed once, its names decoded in one pass and their keys cut in C, one set difference finds the
dead (no per-name Python code, no ``stat`` but one ``lstat`` per object to delete); EROFS images
are scanned for their references (``formats/erofs/scan.py``) rather than walked.
"""

from __future__ import annotations

import functools
import itertools
import operator
import os
import stat
from dataclasses import dataclass, field
from typing import Callable, NamedTuple

from ansible_collections.bootc.composefs.plugins.module_utils.errors import (
    ComposefsError,
    DanglingRefError,
    FormatError,
    PlanError,
    UnsafePathError,
)
from ansible_collections.bootc.composefs.plugins.module_utils.formats import fsverity, splitstream
from ansible_collections.bootc.composefs.plugins.module_utils.formats.erofs import scan as erofs_scan
from ansible_collections.bootc.composefs.plugins.module_utils.repository import paths

__all__ = [
    "RefLink",
    "EntryLink",
    "RepoSnapshot",
    "Roots",
    "MarkResult",
    "RepoGcPlan",
    "RepoGcResult",
    "scan_repository",
    "expected_refs",
    "build_roots",
    "mark",
    "plan_repository_gc",
    "apply_repository_gc",
    "live_key",
    "KEY_BYTES",
]

REF = "ref"
ENTRY = "entry"
# Enough bytes to tell a splitstream (either header layout) from anything else.
_PROBE_BYTES = splitstream.HEADER_SIZE
_READ_CHUNK_BYTES = 1 << 20
# The live set holds the first 16 bytes of each digest (128 bits): 90 bytes per object instead of
# 150 with the full 64-byte SHA-512 digest (1M live objects: ~95 MB instead of ~140 MB). Two
# objects sharing a key only keep one of them alive more than needed; never the other way.
KEY_BYTES = 16
live_key = operator.itemgetter(slice(0, KEY_BYTES))
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_ST_MODE = operator.attrgetter("st_mode")
_ST_SIZE = operator.attrgetter("st_size")


# --- snapshot of refs and entries -----------------------------------------------------------------


class RefLink(NamedTuple):
    """A symlink below ``<category>/refs/``: ``ref`` is its path there; ``entry`` None (with ``problem``) if unusable."""

    category: str
    ref: str
    link_text: str | None
    entry: str | None
    problem: str | None = None


class EntryLink(NamedTuple):
    """A first-level name of ``images/`` or ``streams/``; ``object_id`` None (with ``problem``) if unusable."""

    category: str
    name: str
    link_text: str | None
    object_id: str | None
    problem: str | None = None


@dataclass(frozen=True)
class RepoSnapshot:
    """Every ref and entry of a repository, sorted (category, name)."""

    refs: tuple
    entries: tuple

    def entry_map(self, category: str) -> dict:
        """``{name: EntryLink}`` of one category."""
        return {e.name: e for e in self.entries if e.category == category}

    def fingerprint(self) -> tuple:
        """What re-validation compares: every (kind, category, name, link text)."""
        return tuple(sorted([(REF, r.category, r.ref, r.link_text) for r in self.refs]
                            + [(ENTRY, e.category, e.name, e.link_text) for e in self.entries]))


def _where(repo, *parts) -> str:
    return os.path.join(repo.path, *parts)


def _is_utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _scan_refs(repo, category: str, dir_fd: int, prefix: str, out: list) -> None:
    with os.scandir(dir_fd) as listing:
        items = sorted(listing, key=lambda e: e.name)
    for item in items:
        relpath = prefix + item.name
        where = _where(repo, category, paths.REFS, relpath)
        if not _is_utf8(item.name):
            out.append(RefLink(category, relpath, None, None, "name is not UTF-8"))
            continue
        if item.is_dir(follow_symlinks=False):
            sub_fd = os.open(item.name, _DIR_FLAGS, dir_fd=dir_fd)
            try:
                _scan_refs(repo, category, sub_fd, relpath + "/", out)
            finally:
                os.close(sub_fd)
            continue
        if not item.is_symlink():
            out.append(RefLink(category, relpath, None, None, "not a symbolic link (a ref must be one)"))
            continue
        text = os.readlink(item.name, dir_fd=dir_fd)
        try:
            name = paths.parse_ref_link(text, relpath.count("/") + 1, where=where)
            paths.validate_entry_name(category, name, repo.algorithm)
        except UnsafePathError as err:
            out.append(RefLink(category, relpath, text, None, err.message))
            continue
        out.append(RefLink(category, relpath, text, name))


def _scan_category(repo, category: str, refs_out: list, entries_out: list) -> None:
    try:
        cat_fd = paths.open_dir(repo.fd, category)
    except FileNotFoundError:
        return
    try:
        with os.scandir(cat_fd) as listing:
            items = sorted(listing, key=lambda e: e.name)
        for item in items:
            if item.name == paths.REFS:
                if not item.is_dir(follow_symlinks=False):
                    raise UnsafePathError("is not a directory; refs must be a directory of symlinks",
                                          path=_where(repo, category, paths.REFS))
                refs_fd = os.open(paths.REFS, _DIR_FLAGS, dir_fd=cat_fd)
                try:
                    _scan_refs(repo, category, refs_fd, "", refs_out)
                finally:
                    os.close(refs_fd)
                continue
            if not item.is_symlink():
                entries_out.append(EntryLink(category, item.name, None, None, "not a symbolic link"))
                continue
            text = os.readlink(item.name, dir_fd=cat_fd)
            try:
                paths.validate_entry_name(category, item.name, repo.algorithm)
                object_id = paths.parse_entry_link(text, repo.algorithm)
            except UnsafePathError as err:
                entries_out.append(EntryLink(category, item.name, text, None, err.message))
                continue
            entries_out.append(EntryLink(category, item.name, text, object_id))
    finally:
        os.close(cat_fd)


def scan_repository(repo) -> RepoSnapshot:
    """List every ref and first-level entry of ``repo`` (never following a symlink).

    UnsafePathError when ``images/``, ``streams/`` or a ``refs`` directory is a symlink or no
    directory; problems with single refs or entries are recorded in them, not raised.
    """
    refs_out = []
    entries_out = []
    for category in paths.CATEGORIES:
        try:
            _scan_category(repo, category, refs_out, entries_out)
        except UnsafePathError as err:
            if err.path is not None and not os.path.isabs(err.path):
                err.path = _where(repo, err.path)
            raise
    return RepoSnapshot(refs=tuple(refs_out), entries=tuple(entries_out))


# --- roots -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Roots:
    """GC roots: ``{entry name: (why, ...)}`` per category, and the refs that could not be used."""

    streams: dict
    images: dict
    bad_refs: tuple

    def as_dict(self) -> dict:
        """Plain data: entry names and why each is a root."""
        return {"streams": {k: list(v) for k, v in sorted(self.streams.items())},
                "images": {k: list(v) for k, v in sorted(self.images.items())}}


def _validated_ref_changes(repo, add_stream_refs, remove_stream_refs) -> tuple:
    added = {}
    for ref, stream_name in sorted(dict(add_stream_refs or {}).items()):
        paths.validate_ref_name(ref)
        paths.validate_stream_name(stream_name)
        added[ref] = stream_name
    removed = set()
    for ref in remove_stream_refs or ():
        paths.validate_ref_name(ref)
        removed.add(ref)
    return added, removed


def expected_refs(snapshot: RepoSnapshot, add_stream_refs=None, remove_stream_refs=()) -> tuple:
    """The snapshot's refs after the simulated changes (removed refs gone, added refs in their exact link form)."""
    removed = set(remove_stream_refs or ())
    added = dict(add_stream_refs or {})
    refs = [r for r in snapshot.refs if not (r.category == paths.STREAMS and (r.ref in removed or r.ref in added))]
    for ref, stream_name in added.items():
        refs.append(RefLink(paths.STREAMS, ref, paths.ref_link_text(ref, stream_name), stream_name))
    return tuple(sorted(refs, key=lambda r: (r.category, r.ref)))


def build_roots(refs, extra_images=(), extra_streams=()) -> Roots:
    """Roots from ``refs`` (``RefLink``) plus extra entry names (``images/<hex>``, ``streams/<name>``)."""
    streams = {}
    images = {}
    bad = []
    for ref in refs:
        if ref.entry is None:
            bad.append(ref)
            continue
        target = streams if ref.category == paths.STREAMS else images
        target.setdefault(ref.entry, []).append("%s/refs/%s" % (ref.category, ref.ref))
    for name in extra_images:
        images.setdefault(name, []).append("extra root")
    for name in extra_streams:
        streams.setdefault(name, []).append("extra root")
    return Roots(streams={k: tuple(v) for k, v in streams.items()}, images={k: tuple(v) for k, v in images.items()},
                 bad_refs=tuple(bad))


# --- mark ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MarkResult:
    """The live set (``live_key`` of each raw digest) and what the walk found on the way."""

    live: set = field(hash=False)
    walked_streams: int
    parsed_images: int
    errors: tuple = ()
    dangling_refs: tuple = ()
    missing_objects: dict = field(hash=False, default_factory=dict)


def _read_all(fd: int) -> bytes:
    """The whole file: one read of its size (no copy to join chunks), more only if it grew."""
    data = os.read(fd, max(os.fstat(fd).st_size, 1))
    if not data:
        return data
    chunks = [data]
    while True:
        chunk = os.read(fd, _READ_CHUNK_BYTES)
        if not chunk:
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)
        chunks.append(chunk)


class _Marker:
    """One mark pass over a repository (see :func:`mark`)."""

    def __init__(self, repo, entries: dict) -> None:
        self.repo = repo
        self.entries = entries
        # Objects first-level entries name: what is behind a streams/ entry must be a splitstream,
        # what is behind an images/ entry is an image (kept, not parsed unless it is a root).
        self.stream_objects = {bytes.fromhex(e.object_id) for e in entries[paths.STREAMS].values() if e.object_id}
        self.image_objects = {bytes.fromhex(e.object_id) for e in entries[paths.IMAGES].values() if e.object_id}
        self.live = set()
        self.walked = set()
        self.not_streams = set()
        self.errors = []
        self.dangling = []
        self.missing = {}
        self.images = 0

    def _object_path(self, object_id: str) -> str:
        return _where(self.repo, paths.object_repo_path(object_id))

    def _read_verified(self, object_id: str, referrer: str) -> bytes | None:
        """The object's content, checked against its name; None (recorded) when it is missing.

        A secure repository's objects are measured by the kernel when opened; in an insecure one
        the fs-verity digest is computed here, so a damaged stream or image can never redirect a
        reference (FormatError naming the object instead).
        """
        fd = self._open(object_id, referrer)
        if fd is None:
            return None
        try:
            data = _read_all(fd)
        finally:
            os.close(fd)
        if not self.repo.secure and fsverity.digest_bytes(data, self.repo.algorithm).hex() != object_id:
            raise FormatError("content does not match the object's name (fs-verity digest differs): the object is "
                              "damaged; restore it (pull the image again) before collecting garbage",
                              path=self._object_path(object_id))
        return data

    def _open(self, object_id: str, referrer: str) -> int | None:
        """An fd of the object, or None (recorded as missing) when it does not exist."""
        try:
            return self.repo.open_object(object_id)
        except DanglingRefError:
            self.missing.setdefault(object_id, referrer)
            return None

    def _entry_object(self, category: str, name: str, why: tuple) -> str | None:
        entry = self.entries[category].get(name)
        label = "%s/%s" % (category, name)
        if entry is None:
            if why == ("extra root",):
                return None  # the caller reports extra roots that do not exist
            self.dangling.append({"ref": ", ".join(why), "entry": label,
                                  "problem": "names %s, which does not exist" % label})
            return None
        if entry.object_id is None:
            self.errors.append("%s: %s (named by %s); a GC root must be a symlink to ../objects/<xx>/<rest>: remove "
                               "or repair it" % (_where(self.repo, category, name), entry.problem, ", ".join(why)))
            return None
        return entry.object_id

    def mark_image(self, name: str, why: tuple) -> None:
        """Live: the image entry's object and every object the EROFS image names."""
        object_id = self._entry_object(paths.IMAGES, name, why)
        if object_id is None:
            return
        self.live.add(live_key(bytes.fromhex(object_id)))
        if not self._exists(object_id, "images/%s" % name):
            self.dangling.append({"ref": ", ".join(why), "entry": "images/%s" % name,
                                  "problem": "names object %s, which does not exist" % paths.object_repo_path(object_id)})
            return
        where = "%s (%s)" % (_where(self.repo, paths.IMAGES, name), self._object_path(object_id))
        data = self._read_verified(object_id, "images/%s" % name)
        if data is None:
            return
        try:
            found = erofs_scan.scan_references(data, self.repo.algorithm, KEY_BYTES)
        except ComposefsError as err:
            self.errors.append("%s: EROFS image cannot be parsed: %s" % (where, err))
            return
        del data
        self.images += 1
        self.live.update(found)

    def mark_stream(self, name: str, why: tuple) -> None:
        """Live: the stream entry's object and everything reachable from that splitstream."""
        object_id = self._entry_object(paths.STREAMS, name, why)
        if object_id is None:
            return
        raw = bytes.fromhex(object_id)
        self.live.add(live_key(raw))
        if raw in self.walked:
            return
        if not self._exists(object_id, "streams/%s" % name):
            self.dangling.append({"ref": ", ".join(why), "entry": "streams/%s" % name,
                                  "problem": "names object %s, which does not exist" % paths.object_repo_path(object_id)})
            return
        self.walked.add(raw)
        self._walk(object_id, "%s (%s)" % (_where(self.repo, paths.STREAMS, name), self._object_path(object_id)))

    def _exists(self, object_id: str, referrer: str) -> bool:
        fd = self._open(object_id, referrer)
        if fd is None:
            return False
        os.close(fd)
        return True

    def _walk(self, object_id: str, where: str) -> None:
        """Walk splitstream ``object_id`` and every splitstream it references, iteratively (one fd open at a time)."""
        todo = [(object_id, where)]
        while todo:
            object_id, where = todo.pop()
            data = self._read_verified(object_id, where)
            if data is None:
                continue
            try:
                stream = splitstream.parse_splitstream(data, self.repo.algorithm)
            except ComposefsError as err:
                self.errors.append("%s: splitstream cannot be parsed: %s" % (where, err))
                continue
            del data
            self.live.update(map(live_key, stream.object_refs))
            self.live.update(map(live_key, stream.stream_refs))
            for ref in stream.stream_refs:
                if ref in self.walked or ref in self.not_streams:
                    continue
                if ref in self.stream_objects or (ref not in self.image_objects and self._is_splitstream(ref, where)):
                    self.walked.add(ref)
                    todo.append((ref.hex(), self._object_path(ref.hex())))
                else:
                    self.not_streams.add(ref)
                    if ref in self.image_objects:
                        self._exists(ref.hex(), where)

    def _is_splitstream(self, raw: bytes, referrer: str) -> bool:
        """Whether an object no entry names starts with a splitstream header (False when missing: recorded).

        An object that does not is kept without being parsed, once its content is checked against
        its name (a damaged splitstream must not pass for an opaque object).
        """
        object_id = raw.hex()
        fd = self._open(object_id, referrer)
        if fd is None:
            return False
        try:
            head = os.pread(fd, _PROBE_BYTES, 0)
        finally:
            os.close(fd)
        try:
            splitstream.parse_header(head)
        except ComposefsError:
            self._read_verified(object_id, referrer)
            return False
        return True

    def result(self) -> MarkResult:
        return MarkResult(live=self.live, walked_streams=len(self.walked),
                          parsed_images=self.images, errors=tuple(self.errors), dangling_refs=tuple(self.dangling),
                          missing_objects=dict(self.missing))


def _failure(err, where: str) -> str:
    if isinstance(err, ComposefsError):
        return str(err) if err.path else "%s: %s" % (where, err)
    return "%s: cannot be read: %s" % (where, err.strerror or err)


def mark(repo, roots: Roots, snapshot: RepoSnapshot) -> MarkResult:
    """Return the live set of ``roots`` (see the module docstring); reads objects, writes nothing.

    Errors (unparsable roots) are recorded in the result, not raised, except for I/O failures
    other than a missing object, which are recorded too with the object's path.
    """
    entries = {category: snapshot.entry_map(category) for category in paths.CATEGORIES}
    marker = _Marker(repo, entries)
    for ref in roots.bad_refs:
        marker.errors.append("%s: %s; a GC root that cannot be read could keep anything alive: remove or repair it"
                             % (_where(repo, ref.category, paths.REFS, ref.ref), ref.problem))
    for name, why in sorted(roots.images.items()):
        try:
            marker.mark_image(name, why)
        except (OSError, ComposefsError) as err:
            marker.errors.append(_failure(err, _where(repo, paths.IMAGES, name)))
    for name, why in sorted(roots.streams.items()):
        try:
            marker.mark_stream(name, why)
        except (OSError, ComposefsError) as err:
            marker.errors.append(_failure(err, _where(repo, paths.STREAMS, name)))
    return marker.result()


# --- sweep plan ------------------------------------------------------------------------------------


class _Sweep(NamedTuple):
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
                self.invalid.append((_where(self.repo, paths.OBJECTS, subdir, name), "not a regular file"))

    def one_by_one(self, sub_fd: int, subdir: str, names: list) -> None:
        """The slow path for a directory holding names that are no object names."""
        width = 2 * self.repo.algorithm.digest_size - 2
        dead_names = []
        dead = []
        for name in names:
            raw = paths.parse_object_name(subdir, name, self.repo.algorithm)
            if raw is None or len(name) != width:
                self.invalid.append((_where(self.repo, paths.OBJECTS, subdir, name),
                                     "name is not %d lowercase hex digits" % width))
                continue
            raw = bytes.fromhex(raw)
            if live_key(raw) in self.live:
                self.present += 1
            else:
                dead_names.append(name)
                dead.append(raw)
        self.candidates(sub_fd, subdir, dead_names, dead)

    def subdir(self, objects_fd: int, subdir: str) -> None:
        try:
            sub_fd = os.open(subdir, _DIR_FLAGS, dir_fd=objects_fd)
        except OSError as err:
            self.errors.append("%s: cannot be opened: %s" % (_where(self.repo, paths.OBJECTS, subdir), err.strerror))
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
            keys = list(map(raw.__getitem__, map(slice, range(0, len(raw), size), range(KEY_BYTES, len(raw) + KEY_BYTES, size))))
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
            self.errors.append("%s: cannot be listed: %s" % (_where(self.repo, paths.OBJECTS, subdir), err.strerror))
        finally:
            os.close(sub_fd)


def _sweep_objects(repo, live) -> _Sweep:
    """List ``objects/<xx>/`` once (no ``stat`` but for objects not live); everything valid and not live goes."""
    state = _SweepState(repo, live)
    try:
        objects_fd = paths.open_dir(repo.fd, paths.OBJECTS)
    except FileNotFoundError:
        return _Sweep((), (), 0, (), ())
    except UnsafePathError as err:
        return _Sweep((), (), 0, (), ("%s: %s" % (_where(repo, paths.OBJECTS), err.message),))
    try:
        with os.scandir(objects_fd) as listing:
            subdirs = sorted((e.name, e.is_dir(follow_symlinks=False)) for e in listing)
        for subdir, is_dir in subdirs:
            if paths.is_object_subdir(subdir) and is_dir:
                state.subdir(objects_fd, subdir)
            elif not subdir.startswith(".tmp-object-"):
                state.invalid.append((_where(repo, paths.OBJECTS, subdir), "not an objects/<xx> directory"))
    finally:
        os.close(objects_fd)
    state.remove.sort()
    return _Sweep(tuple(r for r, _s in state.remove), tuple(s for _r, s in state.remove), state.present,
                  tuple(sorted(state.invalid)), tuple(state.errors))


def _object_exists(repo, object_id: str) -> bool:
    try:
        sub_fd = paths.open_dir(repo.fd, paths.OBJECTS + "/" + object_id[:2])
    except (FileNotFoundError, UnsafePathError):
        return False
    try:
        info = paths.lstat_at(sub_fd, object_id[2:])
    finally:
        os.close(sub_fd)
    return info is not None and stat.S_ISREG(info.st_mode)


# --- the plan --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RepoGcPlan:
    """What a repository GC deletes; plain data (``as_dict``), made by :func:`plan_repository_gc`.

    ``remove_objects`` are raw digests (sorted) with ``remove_sizes`` alongside; ``unlink_entries``
    and ``prune_entries`` are ``(category, name, link text)``; ``expected`` is the fingerprint the
    repository must have when the plan is applied (after the simulated ref changes).
    """

    path: str
    algorithm: str
    roots: Roots
    extra_images: tuple
    extra_streams: tuple
    live_objects: int
    present_objects: int
    walked_streams: int
    parsed_images: int
    remove_objects: tuple
    remove_sizes: tuple
    unlink_entries: tuple
    prune_entries: tuple
    dangling_refs: tuple
    missing_objects: dict = field(hash=False)
    unusable_entries: tuple = ()
    invalid_objects: tuple = ()
    errors: tuple = ()
    expected: tuple = ()

    @property
    def objects_bytes(self) -> int:
        """Sum of ``st_size`` of the objects to remove."""
        return sum(self.remove_sizes)

    def pruned_counts(self) -> dict:
        """``{"images": n, "streams": n}``: entries to unlink and to prune, per category."""
        counts = {paths.IMAGES: 0, paths.STREAMS: 0}
        for category, _name, _text in self.unlink_entries + self.prune_entries:
            counts[category] += 1
        return counts

    @property
    def changed(self) -> bool:
        """True when applying the plan removes something."""
        return bool(self.remove_objects or self.unlink_entries or self.prune_entries)

    def object_ids(self) -> list:
        """The hex object ids to remove, sorted."""
        return [raw.hex() for raw in self.remove_objects]

    def as_dict(self, list_objects: bool = False) -> dict:
        """Plain data for a module result; object ids only with ``list_objects`` (they can be many)."""
        counts = self.pruned_counts()
        data = {
            "path": self.path,
            "algorithm": self.algorithm,
            "roots": self.roots.as_dict(),
            "live_objects": self.live_objects,
            "present_objects": self.present_objects,
            "walked_streams": self.walked_streams,
            "parsed_images": self.parsed_images,
            "objects_removed": len(self.remove_objects),
            "objects_bytes": self.objects_bytes,
            "images_pruned": counts[paths.IMAGES],
            "streams_pruned": counts[paths.STREAMS],
            "pruned_entries": ["%s/%s" % (c, n) for c, n, _t in sorted(self.unlink_entries + self.prune_entries)],
            "dangling_refs": list(self.dangling_refs),
            "missing_objects": sorted(self.missing_objects),
            "unusable_entries": [{"path": p, "problem": m} for p, m in self.unusable_entries],
            "invalid_objects": [{"path": p, "problem": m} for p, m in self.invalid_objects],
            "errors": list(self.errors),
        }
        if list_objects:
            data["removed_objects"] = self.object_ids()
        return data


def _entry_plan(repo, snapshot: RepoSnapshot, live, roots: Roots) -> tuple:
    unlink = []
    prune = []
    unusable = []
    for entry in snapshot.entries:
        where = _where(repo, entry.category, entry.name)
        if entry.object_id is None:
            rooted = roots.images if entry.category == paths.IMAGES else roots.streams
            if entry.name not in rooted:
                unusable.append((where, entry.problem))
            continue
        if not _object_exists(repo, entry.object_id):
            prune.append((entry.category, entry.name, entry.link_text))
        elif live_key(bytes.fromhex(entry.object_id)) not in live:
            unlink.append((entry.category, entry.name, entry.link_text))
    return tuple(unlink), tuple(prune), tuple(unusable)


def plan_repository_gc(repo, extra_images=(), extra_streams=(), add_stream_refs=None, remove_stream_refs=(),
                       snapshot: RepoSnapshot | None = None) -> RepoGcPlan:
    """Plan a GC of ``repo`` as it will be after the simulated ref changes; no side effects.

    ``extra_images`` / ``extra_streams``: first-level entry names to treat as roots (names that do
    not exist are ignored, like composefs-rs ``additional_roots``). ``add_stream_refs``: ``{ref:
    stream name}`` refs to be created (``oci/<encoded tag>``); ``remove_stream_refs``: refs to be
    removed. Errors are recorded in the plan (``errors``), which then must not be applied.
    """
    added, removed = _validated_ref_changes(repo, add_stream_refs, remove_stream_refs)
    errors = []
    if snapshot is None:
        try:
            snapshot = scan_repository(repo)
        except (OSError, ComposefsError) as err:
            reason = str(err) if isinstance(err, ComposefsError) else "%s: %s" % (repo.path, err.strerror or err)
            return _failed_plan(repo, "cannot list the repository's refs and entries: %s" % reason)
    refs = expected_refs(snapshot, added, removed)
    roots = build_roots(refs, tuple(extra_images), tuple(extra_streams))
    marked = mark(repo, roots, snapshot)
    errors.extend(marked.errors)
    sweep = _sweep_objects(repo, marked.live)
    errors.extend(sweep.errors)
    unlink, prune, unusable = _entry_plan(repo, snapshot, marked.live, roots)
    expected = RepoSnapshot(refs=refs, entries=snapshot.entries).fingerprint()
    return RepoGcPlan(
        path=repo.path, algorithm=repo.algorithm.name, roots=roots, extra_images=tuple(extra_images),
        extra_streams=tuple(extra_streams), live_objects=len(marked.live), present_objects=sweep.present,
        walked_streams=marked.walked_streams, parsed_images=marked.parsed_images, remove_objects=sweep.remove,
        remove_sizes=sweep.sizes, unlink_entries=unlink, prune_entries=prune, dangling_refs=marked.dangling_refs,
        missing_objects=marked.missing_objects, unusable_entries=unusable, invalid_objects=sweep.invalid,
        errors=tuple(errors), expected=expected)


def _failed_plan(repo, message: str) -> RepoGcPlan:
    return RepoGcPlan(path=repo.path, algorithm=repo.algorithm.name, roots=Roots({}, {}, ()), extra_images=(),
                      extra_streams=(), live_objects=0, present_objects=0, walked_streams=0, parsed_images=0,
                      remove_objects=(), remove_sizes=(), unlink_entries=(), prune_entries=(), dangling_refs=(),
                      missing_objects={}, errors=(message,))


# --- apply -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RepoGcResult:
    """What :func:`apply_repository_gc` did; ``validation`` is ``plan`` or ``recomputed``."""

    objects_removed: int
    objects_bytes: int
    images_pruned: int
    streams_pruned: int
    removed_objects: tuple
    pruned_entries: tuple
    validation: str
    kept_objects: int = 0

    def as_dict(self, list_objects: bool = False) -> dict:
        data = {"objects_removed": self.objects_removed, "objects_bytes": self.objects_bytes,
                "images_pruned": self.images_pruned, "streams_pruned": self.streams_pruned,
                "pruned_entries": ["%s/%s" % e for e in self.pruned_entries], "validation": self.validation,
                "kept_objects": self.kept_objects}
        if list_objects:
            data["removed_objects"] = [raw.hex() for raw in self.removed_objects]
        return data


def _plan_error(plan: RepoGcPlan) -> PlanError:
    return PlanError("the repository GC plan recorded %d error(s), so nothing is deleted: %s"
                     % (len(plan.errors), "; ".join(plan.errors)), path=plan.path,
                     partial_result={"repository": plan.as_dict()})


def _still_missing(repo, plan: RepoGcPlan) -> bool:
    return not any(_object_exists(repo, object_id) for object_id in plan.missing_objects)


def _unlink_entry(repo, category: str, name: str, link_text: str, want_missing: bool) -> bool:
    """Unlink ``<category>/<name>`` if it still has ``link_text`` (and, with ``want_missing``, its object is still gone)."""
    try:
        cat_fd = paths.open_dir(repo.fd, category)
    except FileNotFoundError:
        return False
    try:
        current = paths.readlink_at(cat_fd, name, where=_where(repo, category, name))
        if current != link_text:
            return False
        if want_missing and _object_exists(repo, paths.parse_entry_link(current, repo.algorithm)):
            return False
        return paths.unlink_symlink(cat_fd, name, where=_where(repo, category, name))
    finally:
        os.close(cat_fd)


def _remove_objects(repo, remove: tuple, sizes: tuple, step: Callable | None) -> tuple:
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


def _intersect(plan: RepoGcPlan, fresh: RepoGcPlan) -> tuple:
    fresh_objects = set(fresh.remove_objects)
    keep = [(raw, size) for raw, size in zip(plan.remove_objects, plan.remove_sizes) if raw in fresh_objects]
    unlink = tuple(e for e in plan.unlink_entries if e in set(fresh.unlink_entries))
    prune = tuple(e for e in plan.prune_entries if e in set(fresh.prune_entries + fresh.unlink_entries))
    return tuple(r for r, _s in keep), tuple(s for _r, s in keep), unlink, prune


def apply_repository_gc(repo, plan: RepoGcPlan, timeout: float | None = None, step: Callable | None = None,
                        extra_images=(), extra_streams=()) -> RepoGcResult:
    """Execute ``plan`` on ``repo`` (open writable, the one handle of this process) under ``LOCK_EX``.

    PlanError when the plan recorded errors, or when the recomputation under the lock does. The
    order and the re-validation are in the module docstring; ``extra_images`` / ``extra_streams``
    are roots the caller learnt of since planning (a deployment added meanwhile): any the plan did
    not have forces the recomputation, with the roots of both. ``step(kind, name)`` is called after
    the lock is taken (``locked``) and before every single deletion (``entry``, ``object``,
    ``prune``): crash and concurrency harnesses use it.
    """
    if plan.errors:
        raise _plan_error(plan)
    images = tuple(sorted(set(plan.extra_images) | set(extra_images)))
    streams = tuple(sorted(set(plan.extra_streams) | set(extra_streams)))
    with repo.exclusive(timeout):
        if step is not None:
            step("locked", repo.path)
        snapshot = scan_repository(repo)
        new_roots = (set(images) - set(plan.extra_images)) & set(snapshot.entry_map(paths.IMAGES)) or \
            (set(streams) - set(plan.extra_streams)) & set(snapshot.entry_map(paths.STREAMS))
        remove, sizes, unlink, prune = plan.remove_objects, plan.remove_sizes, plan.unlink_entries, plan.prune_entries
        validation = "plan"
        if new_roots or snapshot.fingerprint() != plan.expected or not _still_missing(repo, plan):
            validation = "recomputed"
            fresh = plan_repository_gc(repo, images, streams, snapshot=snapshot)
            if fresh.errors:
                raise _plan_error(fresh)
            remove, sizes, unlink, prune = _intersect(plan, fresh)
        pruned = []
        for category, name, text in unlink:
            if step is not None:
                step("entry", "%s/%s" % (category, name))
            if _unlink_entry(repo, category, name, text, want_missing=False):
                pruned.append((category, name))
        removed, total = _remove_objects(repo, remove, sizes, step)
        for category, name, text in prune:
            if step is not None:
                step("prune", "%s/%s" % (category, name))
            if _unlink_entry(repo, category, name, text, want_missing=True):
                pruned.append((category, name))
    counts = {paths.IMAGES: 0, paths.STREAMS: 0}
    for category, _name in pruned:
        counts[category] += 1
    return RepoGcResult(objects_removed=len(removed), objects_bytes=total, images_pruned=counts[paths.IMAGES],
                        streams_pruned=counts[paths.STREAMS], removed_objects=removed, pruned_entries=tuple(pruned),
                        validation=validation, kept_objects=len(plan.remove_objects) - len(removed))
