# -*- coding: utf-8 -*-
# Copyright: (c) 2026, bootc.composefs maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ``Repository`` facade: one open, locked composefs repository.

Layer: repository. Spec: ``composefs-repo.md`` sections 2-6 and 9; upstream: composefs-rs
``crates/composefs/src/repository.rs`` (``init_path``, ``open_path``, ``open_upgrade``,
``write_stream``, ``write_image``).

Tree::

    REPO/                       directory, mode 0700 when init creates it
      meta.json                 format version, algorithm, features (meta.py); fs-verity => secure
      objects/<xx>/<rest>       content-addressed files (objects.py)
      images/<hex>              -> ../objects/<xx>/<rest>      EROFS images (refs.py)
      images/refs/<name...>     -> ../../<hex>                 GC roots
      streams/<stream name>     -> ../objects/<xx>/<rest>      splitstreams
      streams/refs/<name...>    -> ../../<stream name>         GC roots (OCI tags: refs/oci/<tag>)

Link texts are exact (section 5.1, ``paths.py``) and checked before anything follows them.

Opening: ``open(O_RDONLY|O_DIRECTORY)`` of the directory, ``flock(LOCK_SH)`` on that descriptor
(blocking, or polling up to ``timeout``), then the meta.json checks of ``access.py``: version,
features, algorithm; fs-verity on meta.json makes the repository *secure* (every object must carry
verity); unknown read-only-compatible features, ``writable=False`` or a repository older than
meta.json (unless ``upgrade=True``) make it read-only. Errors of every method name absolute paths.

Locking (``lock.py``): the shared lock is held until ``close()``; :meth:`Repository.exclusive`
converts it to ``LOCK_EX`` on the same descriptor and back (garbage collection). Keep one handle
per repository per process: ``exclusive()`` refuses when this process has another one open.

Crash consistency of writes (section 9):

1. external objects are stored without fsync (``ensure_object``);
2. the splitstream is stored as an object;
3. ``syncfs`` - the one barrier;
4. ``streams/<name>`` is created or atomically re-pointed;
5. the optional ref is created or re-pointed.

After a crash ``streams/<name>`` is either absent or everything it references is on disk.
``write_image`` has no barrier of its own: a stream referencing the image brings it.
"""

from __future__ import annotations

import contextlib
import functools
import os

from ansible_collections.bootc.composefs.plugins.module_utils.errors import (
    ComposefsError,
    DanglingRefError,
    FormatError,
    RepositoryFormatError,
    RepositoryLockedError,
)
from ansible_collections.bootc.composefs.plugins.module_utils.formats import fsverity, splitstream
from ansible_collections.bootc.composefs.plugins.module_utils.repository import (
    access,
    lock,
    meta as meta_json,
    objects,
    paths,
    refs,
)

__all__ = ["Repository"]


def _locate(err: ComposefsError, repo_path: str) -> None:
    """Make the path an error names absolute (library layers name paths relative to the repository)."""
    if err.path is None:
        err.path = repo_path
    elif not os.path.isabs(err.path):
        err.path = os.path.join(repo_path, err.path)


def _located(method):
    """Decorator: errors raised by a Repository method name absolute paths."""
    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except ComposefsError as err:
            _locate(err, self.path)
            raise
    return wrapper


class Repository:
    """An open composefs repository holding ``LOCK_SH`` until :meth:`close` (or the ``with`` block ends)."""

    def __init__(self, fd: int, path: str, meta: meta_json.RepoMeta, secure: bool, read_only: bool,
                 legacy: bool = False, read_only_reason: str = "") -> None:
        self._fd = fd
        self._key = None
        self._exclusive_depth = 0
        self.path = path
        self.meta = meta
        self.algorithm = meta.algorithm
        self.secure = secure
        self.read_only = read_only
        self.read_only_reason = read_only_reason
        self.legacy = legacy
        self._objects = objects.ObjectStore(fd, meta.algorithm, secure, path)

    # --- opening and closing -------------------------------------------------------------------

    @classmethod
    def open(cls, path, writable: bool = False, algorithm: fsverity.HashAlgorithm | None = None,
             timeout: float | None = None, upgrade: bool = False) -> "Repository":
        """Open and share-lock the repository at ``path``; RepositoryFormatError when it is unusable."""
        path = os.fspath(path)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except (FileNotFoundError, NotADirectoryError):
            raise RepositoryFormatError("no repository directory here; initialize one first", path=path) from None
        try:
            lock.lock_shared(fd, timeout, where=path)
            state = access.load_state(fd, path, writable, algorithm, upgrade)
            repo = cls(fd, path, state.meta, state.secure, state.read_only, state.legacy, state.read_only_reason)
        except BaseException:
            os.close(fd)
            raise
        info = os.fstat(fd)
        repo._key = (info.st_dev, info.st_ino)
        lock.HANDLES.add(repo._key)
        return repo

    @classmethod
    def init(cls, path, algorithm: fsverity.HashAlgorithm = fsverity.SHA512, erofs_default: int = 1,
             insecure: bool = True, erofs_extra=(), timeout: float | None = None) -> "Repository":
        """Create (or idempotently re-initialize) a repository; return it opened writable.

        An existing meta.json must describe the same configuration (RepositoryFormatError otherwise).
        """
        path = os.fspath(path)
        access.init_directory(path, meta_json.new_meta(algorithm, erofs_default, erofs_extra), insecure)
        return cls.open(path, writable=True, algorithm=algorithm, timeout=timeout)

    @property
    def fd(self) -> int:
        """The repository directory descriptor (carries the lock); -1 once closed."""
        return self._fd

    def close(self) -> None:
        """Release the lock and the descriptor (idempotent)."""
        if self._fd < 0:
            return
        fd, self._fd = self._fd, -1
        self._objects.close()
        try:
            lock.unlock(fd)
        finally:
            os.close(fd)
            if self._key is not None:
                lock.HANDLES.remove(self._key)
                self._key = None

    def __enter__(self) -> "Repository":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def __repr__(self) -> str:
        return "Repository(%r, %s, %s%s)" % (self.path, self.algorithm.name, "secure" if self.secure else "insecure",
                                             ", read-only" if self.read_only else "")

    def _require_open(self) -> None:
        if self._fd < 0:
            raise ComposefsError("repository handle is closed; open the repository again", path=self.path)

    def _require_writable(self) -> None:
        self._require_open()
        if self.read_only:
            raise RepositoryFormatError("repository is read-only: %s" % self.read_only_reason, path=self.path)

    def _require_exclusive(self) -> None:
        self._require_writable()
        if not self._exclusive_depth:
            raise ComposefsError("removing objects or entries needs the exclusive lock; do it inside exclusive()",
                                 path=self.path)

    @contextlib.contextmanager
    def exclusive(self, timeout: float | None = None):
        """Context manager: hold ``LOCK_EX`` (converted from our ``LOCK_SH``) inside, ``LOCK_SH`` again after.

        RepositoryLockedError when ``timeout`` expires or this process has another handle on the
        repository open (flock would wait for that handle forever). The conversion is not atomic:
        re-read anything looked at before.
        """
        self._require_writable()
        if self._exclusive_depth:
            self._exclusive_depth += 1
            try:
                yield self
            finally:
                self._exclusive_depth -= 1
            return
        others = lock.HANDLES.count(self._key) - 1
        if others > 0:
            raise RepositoryLockedError("this process has %d other handle(s) on the repository open; close them before "
                                        "taking the exclusive lock (flock would wait for them forever)" % others,
                                        path=self.path)
        access.check_writable_filesystem(self._fd, self.path)
        lock.convert_to_exclusive(self._fd, timeout, where=self.path)
        self._exclusive_depth = 1
        try:
            yield self
        finally:
            self._exclusive_depth = 0
            lock.convert_to_shared(self._fd)

    # --- objects -------------------------------------------------------------------------------

    @_located
    def object_path(self, object_id: str) -> str:
        """Return the filesystem path of an object (for messages and external tools)."""
        paths.validate_object_id(object_id, self.algorithm)
        return os.path.join(self.path, paths.object_repo_path(object_id))

    @_located
    def has_object(self, object_id: str) -> bool:
        """Return whether the object exists."""
        self._require_open()
        return self._objects.has(object_id)

    @_located
    def ensure_object(self, data) -> str:
        """Store ``data`` as an object (no fsync; see :meth:`sync`); return its object id."""
        self._require_writable()
        return self._objects.ensure_bytes(data)

    @_located
    def ensure_object_from_fileobj(self, fileobj) -> tuple:
        """Store what ``fileobj`` yields to EOF, streaming (no fsync); return ``(object_id, size)``."""
        self._require_writable()
        return self._objects.ensure_fileobj(fileobj)

    @_located
    def read_object(self, object_id: str, verify: bool = False) -> bytes:
        """Return an object's content; checked against its name where fs-verity allows, or with ``verify``."""
        self._require_open()
        return self._objects.read(object_id, verify)

    @_located
    def open_object(self, object_id: str, verify: bool = False) -> int:
        """Return a read-only fd of an object (same checks as :meth:`read_object`); the caller closes it."""
        self._require_open()
        return self._objects.open(object_id, verify)

    @_located
    def sync(self) -> None:
        """``syncfs`` on the repository's filesystem: the durability barrier of section 9."""
        self._require_open()
        self._objects.sync()

    @_located
    def iter_objects(self):
        """Yield :class:`objects.ObjectEntry` for every name under ``objects/<xx>/`` (invalid ones flagged)."""
        self._require_open()
        return self._objects.iter_objects()

    @_located
    def remove_object(self, object_id: str) -> int | None:
        """Unlink an object (inside :meth:`exclusive` only); return its size or None when absent."""
        self._require_exclusive()
        return self._objects.remove(object_id)

    # --- streams -------------------------------------------------------------------------------

    @_located
    def has_stream(self, stream_name: str) -> bool:
        """Return whether ``streams/<stream_name>`` exists (its object is not checked)."""
        self._require_open()
        return refs.read_entry(self._fd, paths.STREAMS, stream_name, self.algorithm) is not None

    @_located
    def stream_object_id(self, stream_name: str) -> str:
        """Return the object id of ``streams/<stream_name>``; DanglingRefError when there is no such entry."""
        self._require_open()
        object_id = refs.read_entry(self._fd, paths.STREAMS, stream_name, self.algorithm)
        if object_id is None:
            raise DanglingRefError("stream does not exist in the repository; pull the image again",
                                   path=os.path.join(self.path, paths.STREAMS, stream_name))
        return object_id

    @_located
    def read_stream(self, stream_name: str) -> splitstream.SplitStream:
        """Parse the splitstream ``streams/<stream_name>`` names; errors carry the entry and object path."""
        object_id = self.stream_object_id(stream_name)
        where = "%s (%s)" % (os.path.join(self.path, paths.STREAMS, stream_name), paths.object_repo_path(object_id))
        try:
            data = self._objects.read(object_id)
        except DanglingRefError as err:
            raise DanglingRefError("stream entry names a missing object; pull the image again", path=where) from err
        try:
            return splitstream.parse_splitstream(data, self.algorithm)
        except FormatError as err:
            err.with_path(where)
            raise

    @_located
    def write_stream(self, stream_name: str, data, ref: str | None = None) -> str:
        """Store splitstream ``data`` and point ``streams/<stream_name>`` (and ``ref``) at it; return its object id.

        Order (section 9): object, ``syncfs``, entry, ref, so a crash never leaves an entry whose
        references are not on disk.
        """
        self._require_writable()
        paths.validate_stream_name(stream_name)
        if ref is not None:
            paths.validate_ref_name(ref)
        splitstream.parse_splitstream(data, self.algorithm)
        object_id = self._objects.ensure_bytes(data)
        self.register_stream(stream_name, object_id, ref)
        return object_id

    @_located
    def register_stream(self, stream_name: str, object_id: str, ref: str | None = None) -> None:
        """Make an already stored splitstream object visible as ``streams/<stream_name>``: ``syncfs``, entry, ref.

        The object must exist (DanglingRefError otherwise); it is not parsed here.
        """
        self._require_writable()
        paths.validate_stream_name(stream_name)
        paths.validate_object_id(object_id, self.algorithm)
        if ref is not None:
            paths.validate_ref_name(ref)
        if not self._objects.has(object_id):
            raise DanglingRefError("cannot register stream %r: its splitstream object does not exist; store it first"
                                   % stream_name, path=self._objects.path_of(object_id))
        self._objects.sync()
        refs.write_entry(self._fd, paths.STREAMS, stream_name, object_id, self.algorithm)
        if ref is not None:
            refs.write_ref(self._fd, paths.STREAMS, ref, stream_name, self.algorithm)

    @_located
    def name_stream(self, stream_name: str, ref: str) -> None:
        """Create or re-point ``streams/refs/<ref>`` -> ``../`` * depth + ``stream_name`` (entry not checked)."""
        self._require_writable()
        refs.write_ref(self._fd, paths.STREAMS, ref, stream_name, self.algorithm)

    @_located
    def stream_ref_target(self, ref: str) -> str | None:
        """Return the stream name ``streams/refs/<ref>`` names (exact link form checked), or None when absent."""
        self._require_open()
        return refs.read_ref(self._fd, paths.STREAMS, ref, self.algorithm)

    @_located
    def remove_stream_ref(self, ref: str) -> bool:
        """Unlink ``streams/refs/<ref>``; False when it does not exist."""
        self._require_writable()
        return refs.remove_ref(self._fd, paths.STREAMS, ref)

    @_located
    def list_stream_refs(self, prefix: str = "") -> list:
        """Return ``(path relative to prefix, link text)`` for every symlink below ``streams/refs/<prefix>``."""
        self._require_open()
        return refs.list_refs(self._fd, paths.STREAMS, prefix)

    @_located
    def list_stream_entries(self) -> list:
        """Return :class:`refs.EntryInfo` for every first-level ``streams/`` name (invalid ones flagged)."""
        self._require_open()
        return refs.list_entries(self._fd, paths.STREAMS, self.algorithm)

    @_located
    def remove_stream_entry(self, stream_name: str) -> bool:
        """Unlink ``streams/<stream_name>`` (inside :meth:`exclusive` only); False when absent."""
        self._require_exclusive()
        return refs.remove_entry(self._fd, paths.STREAMS, stream_name, self.algorithm)

    # --- images --------------------------------------------------------------------------------

    @_located
    def write_image(self, data, name: str | None = None) -> str:
        """Store EROFS ``data``, link ``images/<hex>`` (and ``images/refs/<name>``); return its object id. No syncfs."""
        self._require_writable()
        if name is not None:
            paths.validate_ref_name(name)
        object_id = self._objects.ensure_bytes(data)
        refs.write_entry(self._fd, paths.IMAGES, object_id, object_id, self.algorithm)
        if name is not None:
            refs.write_ref(self._fd, paths.IMAGES, name, object_id, self.algorithm)
        return object_id

    @_located
    def image_object_id(self, image_name: str) -> str | None:
        """Return the object id ``images/<image_name>`` names, or None when there is no such entry."""
        self._require_open()
        return refs.read_entry(self._fd, paths.IMAGES, image_name, self.algorithm)

    @_located
    def image_ref_target(self, ref: str) -> str | None:
        """Return the image entry ``images/refs/<ref>`` names (exact link form checked), or None when absent."""
        self._require_open()
        return refs.read_ref(self._fd, paths.IMAGES, ref, self.algorithm)

    @_located
    def remove_image_ref(self, ref: str) -> bool:
        """Unlink ``images/refs/<ref>``; False when it does not exist."""
        self._require_writable()
        return refs.remove_ref(self._fd, paths.IMAGES, ref)

    @_located
    def list_image_refs(self, prefix: str = "") -> list:
        """Return ``(path relative to prefix, link text)`` for every symlink below ``images/refs/<prefix>``."""
        self._require_open()
        return refs.list_refs(self._fd, paths.IMAGES, prefix)

    @_located
    def list_image_entries(self) -> list:
        """Return :class:`refs.EntryInfo` for every first-level ``images/`` name (invalid ones flagged)."""
        self._require_open()
        return refs.list_entries(self._fd, paths.IMAGES, self.algorithm)

    @_located
    def remove_image_entry(self, image_name: str) -> bool:
        """Unlink ``images/<image_name>`` (inside :meth:`exclusive` only); False when absent."""
        self._require_exclusive()
        return refs.remove_entry(self._fd, paths.IMAGES, image_name, self.algorithm)
