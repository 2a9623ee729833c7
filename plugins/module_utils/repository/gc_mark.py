# -*- coding: utf-8 -*-
# Copyright: (c) 2026, bootc.composefs maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The mark of a repository garbage collection: every object reachable from the roots (layer: repository).

Spec: ``composefs-repo.md`` sections 8 (splitstreams), 11.5-11.6 (what an EROFS image names),
12.2 steps 3 and 6; upstream: composefs-rs ``repository.rs`` (``gc_impl``, ``walk_streams``).

From each root (``gc_roots``):

* image root: the entry's object is live; the image's framing is checked and every object its
  ``trusted.overlay.metacopy`` / ``trusted.overlay.redirect`` xattrs name is live
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
  never redirect a reference elsewhere: it is an error naming the object. Objects only named
  (``object_refs``, images a config names) are never read.

What the mark finds on the way: errors (a bad ref, an unusable root entry, an unparsable or
damaged root, stream or image: the plan then deletes nothing), dangling refs (a root naming a
missing entry or object: reported), missing objects (a stream ref naming an object that is not
there: reported, and re-checked before deleting).

Memory (``bench/bench_gc.py``): the live set holds the first ``KEY_BYTES`` (16) bytes of each
digest (:data:`live_key`), 90 bytes per object instead of 150 with a full 64-byte SHA-512 digest
(1M live objects: ~95 MB instead of ~140 MB). Two objects sharing a key only keep one of them
alive more than needed; never the other way.
"""

from __future__ import annotations

import operator
import os
from dataclasses import dataclass, field

from ansible_collections.bootc.composefs.plugins.module_utils.errors import ComposefsError, DanglingRefError, FormatError
from ansible_collections.bootc.composefs.plugins.module_utils.formats import fsverity, splitstream
from ansible_collections.bootc.composefs.plugins.module_utils.formats.erofs import scan as erofs_scan
from ansible_collections.bootc.composefs.plugins.module_utils.repository import gc_listing, gc_roots, gc_snapshot, paths

__all__ = ["MarkResult", "mark", "live_key", "KEY_BYTES"]

# Enough bytes to tell a splitstream (either header layout) from anything else.
_PROBE_BYTES = splitstream.HEADER_SIZE
_READ_CHUNK_BYTES = 1 << 20
KEY_BYTES = 16
live_key = operator.itemgetter(slice(0, KEY_BYTES))


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

    def __init__(self, repo, entries: dict, live: set) -> None:
        self.repo = repo
        self.entries = entries
        # Objects first-level entries name: what is behind a streams/ entry must be a splitstream,
        # what is behind an images/ entry is an image (kept, not parsed unless it is a root).
        self.stream_objects = {bytes.fromhex(e.object_id) for e in entries[paths.STREAMS].values() if e.object_id}
        self.image_objects = {bytes.fromhex(e.object_id) for e in entries[paths.IMAGES].values() if e.object_id}
        self.live = live
        self.walked = set()
        self.not_streams = set()
        self.errors = []
        self.dangling = []
        self.missing = {}
        self.images = 0

    def _object_path(self, object_id: str) -> str:
        return gc_snapshot.path_in(self.repo, paths.object_repo_path(object_id))

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
                               "or repair it" % (gc_snapshot.path_in(self.repo, category, name), entry.problem, ", ".join(why)))
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
        where = "%s (%s)" % (gc_snapshot.path_in(self.repo, paths.IMAGES, name), self._object_path(object_id))
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
        self._walk(object_id, "%s (%s)" % (gc_snapshot.path_in(self.repo, paths.STREAMS, name), self._object_path(object_id)))

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
        """What the pass found, as a :class:`MarkResult`."""
        return MarkResult(live=self.live, walked_streams=len(self.walked),
                          parsed_images=self.images, errors=tuple(self.errors), dangling_refs=tuple(self.dangling),
                          missing_objects=dict(self.missing))


def _failure(err, where: str) -> str:
    if isinstance(err, ComposefsError):
        return str(err) if err.path else "%s: %s" % (where, err)
    return "%s: cannot be read: %s" % (where, err.strerror or err)


def mark(repo, roots: gc_roots.Roots, snapshot: gc_snapshot.RepoSnapshot) -> MarkResult:
    """Return the live set of ``roots`` (see the module docstring); reads objects, writes nothing.

    Errors (unparsable roots) are recorded in the result, not raised, except for I/O failures
    other than a missing object, which are recorded too with the object's path.
    """
    entries = {category: snapshot.entry_map(category) for category in paths.CATEGORIES}
    # The listing of objects/ for the sweep runs in a child meanwhile (gc_listing: why that is safe).
    listing = gc_listing.start(repo)
    try:
        marker = _Marker(repo, entries, gc_listing.LiveSet(listing))
        with gc_listing.without_cyclic_gc():
            _mark_roots(repo, roots, marker)
    except BaseException:
        if listing is not None:
            listing.close()
        raise
    return marker.result()


def _mark_roots(repo, roots: gc_roots.Roots, marker: _Marker) -> None:
    """Mark from every root; each failure is recorded in ``marker``."""
    for ref in roots.bad_refs:
        marker.errors.append("%s: %s; a GC root that cannot be read could keep anything alive: remove or repair it"
                             % (gc_snapshot.path_in(repo, ref.category, paths.REFS, ref.ref), ref.problem))
    for name, why in sorted(roots.images.items()):
        try:
            marker.mark_image(name, why)
        except (OSError, ComposefsError) as err:
            marker.errors.append(_failure(err, gc_snapshot.path_in(repo, paths.IMAGES, name)))
    for name, why in sorted(roots.streams.items()):
        try:
            marker.mark_stream(name, why)
        except (OSError, ComposefsError) as err:
            marker.errors.append(_failure(err, gc_snapshot.path_in(repo, paths.STREAMS, name)))
