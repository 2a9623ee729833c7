# -*- coding: utf-8 -*-
# Copyright: (c) 2026, bootc.composefs maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The object store: ``objects/<xx>/<rest>``, files named by their fs-verity digest.

Layer: repository. Spec: ``composefs-repo.md`` sections 4 and 9; upstream: composefs-rs
``crates/composefs/src/repository.rs`` (``ensure_object``, ``ensure_object_from_reader``,
``open_object``, ``sync``).

An object is immutable and content-addressed: its name is the lowercase hex fs-verity digest
(sha256 or sha512, 4 KiB blocks, no salt) of its content, split after the first byte. Writing
one that exists is a no-op. In a *secure* repository (meta.json has fs-verity) every object must
have fs-verity and its measured digest must equal its name; in an *insecure* one verity is
enabled where the filesystem supports it and digests are otherwise computed in userspace.

Writing an object, in order (never replacing anything):

1. stage the content in ``objects/``: an anonymous ``O_TMPFILE``, or a ``.tmp-object-<random>``
   file created ``O_EXCL`` when the filesystem (or a missing ``/proc``) rules that out;
2. reopen it read-only, close the writable descriptor, enable fs-verity (required when secure),
   and compare the kernel's measurement with the digest computed while writing. An insecure
   repository skips this step once the filesystem said it has no fs-verity;
3. put it in place: ``linkat`` of ``/proc/self/fd/N`` (anonymous) or ``renameat2(NOREPLACE)``
   (named; ``link`` + ``unlink`` where renameat2 is missing). ``EEXIST`` means the object was
   stored before, or another writer stored the same content first: the existing object is checked
   as in step 2 (verity enabled where missing) and that is success. A named stage file is removed
   on every failure.

``ensure_bytes`` knows the digest before writing and looks for the object first (one ``openat``),
so content already stored is not written again; ``ensure_fileobj`` learns it only after staging and
relies on ``EEXIST``.

Speed (an import writes tens of thousands of objects): the descriptors of ``objects/`` and of each
``objects/<xx>`` are opened at first use and kept until :meth:`ObjectStore.close`, so storing a
new object costs ``openat(O_TMPFILE)``, the writes, one ``linkat`` and one ``close``. The store
also remembers that O_TMPFILE or fs-verity is unavailable instead of failing on each object. The
directories are never removed while the repository is open (garbage collection removes objects,
not ``objects/<xx>``).
No object is fsynced: durability comes from one ``syncfs(2)`` (:meth:`ObjectStore.sync`) before
anything that references new objects becomes visible (``write_stream`` in ``repo.py``). After a
crash an unreferenced object is garbage, never a dangling reference.
"""

from __future__ import annotations

import errno
import os
import stat
import weakref
from typing import TYPE_CHECKING, Iterator, NamedTuple

from ansible_collections.bootc.composefs.plugins.module_utils.errors import (
    ComposefsError,
    DanglingRefError,
    FormatError,
    RepositoryFormatError,
    UnsafePathError,
)
from ansible_collections.bootc.composefs.plugins.module_utils.formats import fsverity
from ansible_collections.bootc.composefs.plugins.module_utils.repository import paths

# staging.py (stage files, syncfs) is imported by the methods that write: a reader such as
# composefs_status never needs it (bench/bench_status.py).
if TYPE_CHECKING:
    from ansible_collections.bootc.composefs.plugins.module_utils.repository import staging

__all__ = ["ObjectEntry", "ObjectStore", "infer_algorithm"]

TMP_OBJECT_PREFIX = ".tmp-object-"
COPY_CHUNK_SIZE = 1 << 20
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
# object file name length in objects/<xx>/ -> algorithm (pre-meta.json repositories, section 3.6)
_NAME_LENGTH_ALGORITHMS = {2 * a.digest_size - 2: a for a in fsverity.ALGORITHMS}


class ObjectEntry(NamedTuple):
    """One name found under ``objects/<xx>/``: ``object_id`` is None (with ``problem``) when it is no valid object."""

    relpath: str
    object_id: str | None
    problem: str | None = None


class ObjectStore:
    """Objects of one repository, reached through its directory descriptor; :meth:`close` releases the cached fds."""

    def __init__(self, repo_fd: int, algorithm: fsverity.HashAlgorithm, secure: bool, repo_path: str = "") -> None:
        self.repo_fd = repo_fd
        self.algorithm = algorithm
        self.secure = secure
        self.repo_path = repo_path
        # "" -> fd of objects/, "<xx>" -> fd of objects/<xx>: opened at first use, kept until close()
        self._dir_fds = {}
        self._anonymous = True  # False once O_TMPFILE (or /proc) turned out unusable here
        self._verity_unsupported = False  # insecure only: the filesystem said it has no fs-verity
        self._finalizer = weakref.finalize(self, _close_fds, self._dir_fds)

    def close(self) -> None:
        """Close the cached directory descriptors (idempotent; the store reopens them if used again)."""
        _close_fds(self._dir_fds)

    def _where(self, relpath: str) -> str:
        return os.path.join(self.repo_path, relpath) if self.repo_path else relpath

    def path_of(self, object_id: str) -> str:
        """Return the path of the object for messages (``<repo>/objects/<xx>/<rest>``)."""
        return self._where(paths.object_repo_path(object_id))

    def _objects_fd(self, create: bool = False) -> int:
        """Return the cached fd of ``objects/``; FileNotFoundError when absent and not ``create``."""
        fd = self._dir_fds.get("")
        if fd is None:
            fd = self._dir_fds[""] = paths.open_dir(self.repo_fd, paths.OBJECTS, create=create)
        return fd

    def _subdir_fd(self, object_id: str, create: bool = False) -> int:
        """Return the cached fd of ``objects/<xx>``; FileNotFoundError when absent and not ``create``."""
        prefix = object_id[:2]
        fd = self._dir_fds.get(prefix)
        if fd is not None:
            return fd
        objects_fd = self._objects_fd(create)
        try:
            try:
                fd = paths.open_dir(objects_fd, prefix)
            except FileNotFoundError:
                if not create:
                    raise
                fd = paths.open_dir(objects_fd, prefix, create=True)
        except UnsafePathError as err:
            raise UnsafePathError(err.message, path=self._where(paths.OBJECTS + "/" + prefix)) from None
        self._dir_fds[prefix] = fd
        return fd

    def _open_existing(self, object_id: str) -> int | None:
        """Return a read-only fd of the object, None when it (or its ``objects/<xx>``) does not exist."""
        try:
            fd = os.open(object_id[2:], _FILE_FLAGS, dir_fd=self._subdir_fd(object_id))
        except FileNotFoundError:
            return None
        except OSError as err:
            if err.errno == errno.ELOOP:
                raise UnsafePathError("object is a symbolic link; remove it", path=self.path_of(object_id)) from None
            raise
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise UnsafePathError("object is not a regular file; remove it", path=self.path_of(object_id))
        return fd

    def _verify_fd(self, fd: int, fsverity_digest: bytes, relpath: str, enable: bool = False) -> bool:
        """Check ``fd``'s kernel fs-verity digest against its name; True when it was measured."""
        measured = fsverity.measure_fd(fd, self.algorithm)
        if measured is None and enable and not self._verity_unsupported:
            try:
                if fsverity.enable_fd(fd, self.algorithm):
                    measured = fsverity.measure_fd(fd, self.algorithm)
            except ComposefsError:
                if self.secure:
                    raise
        if measured is None:
            if self.secure:
                raise ComposefsError("object has no %s fs-verity although the repository is secure; remove the object "
                                     "and write it again" % self.algorithm.name, path=self._where(relpath))
            return False
        if measured != fsverity_digest:
            raise FormatError("fs-verity digest %s does not match the object's name: the object is corrupted; remove it "
                              "and write it again" % measured.hex(), path=self._where(relpath))
        return True

    def has(self, object_id: str) -> bool:
        """Return whether ``objects/<xx>/<rest>`` exists (UnsafePathError when it is not a regular file)."""
        paths.validate_object_id(object_id, self.algorithm)
        try:
            info = paths.lstat_at(self._subdir_fd(object_id), object_id[2:])
        except FileNotFoundError:
            return False
        if info is None:
            return False
        if not stat.S_ISREG(info.st_mode):
            raise UnsafePathError("object is not a regular file; remove it", path=self.path_of(object_id))
        return True

    def open(self, object_id: str, verify: bool = False) -> int:
        """Return a read-only fd of the object, checked against its name where fs-verity allows.

        Secure repository: the measured digest must equal the name. Insecure: a measured digest is
        compared too; without one, ``verify`` computes the digest in userspace (reads the file).
        """
        paths.validate_object_id(object_id, self.algorithm)
        relpath = paths.object_repo_path(object_id)
        fd = self._open_existing(object_id)
        if fd is None:
            raise DanglingRefError("object does not exist; the repository lost it: pull the image again (and run a "
                                   "garbage collection to drop stale entries)", path=self._where(relpath))
        try:
            digest = bytes.fromhex(object_id)
            if not self._verify_fd(fd, digest, relpath) and verify:
                with os.fdopen(os.dup(fd), "rb") as fileobj:
                    computed = fsverity.digest_fileobj(fileobj, self.algorithm)
                os.lseek(fd, 0, os.SEEK_SET)
                if computed != digest:
                    raise FormatError("content has fs-verity digest %s, not its name: the object is corrupted; remove it "
                                      "and write it again" % computed.hex(), path=self._where(relpath))
        except BaseException:
            os.close(fd)
            raise
        return fd

    def read(self, object_id: str, verify: bool = False) -> bytes:
        """Return the object's content (see :meth:`open` for the checks)."""
        fd = self.open(object_id, verify)
        with os.fdopen(fd, "rb") as fileobj:
            return fileobj.read()

    def ensure_bytes(self, data) -> str:
        """Store ``data`` unless present; return its object id.

        The digest is known before writing, so one ``openat`` looks for the object first and spares
        writing content that is already stored.
        """
        digest = fsverity.digest_bytes(data, self.algorithm)
        object_id = digest.hex()
        if self._check_present(object_id, digest):
            return object_id
        from ansible_collections.bootc.composefs.plugins.module_utils.repository import staging  # pylint: disable=import-outside-toplevel
        with self._stage() as stage:
            staging.write_all(stage.fd, data)
            self._commit(stage, object_id, digest)
        return object_id

    def ensure_fileobj(self, fileobj) -> tuple:
        """Store what ``fileobj.read()`` yields up to EOF, streaming; return ``(object_id, size)``.

        The digest is known only once the content is staged: ``EEXIST`` from the link is the
        existence check.
        """
        from ansible_collections.bootc.composefs.plugins.module_utils.repository import staging  # pylint: disable=import-outside-toplevel
        hasher = fsverity.FsVerityHasher(self.algorithm)
        size = 0
        with self._stage() as stage:
            while True:
                chunk = fileobj.read(COPY_CHUNK_SIZE)
                if not chunk:
                    break
                hasher.update(chunk)
                staging.write_all(stage.fd, chunk)
                size += len(chunk)
            digest = hasher.digest()
            self._commit(stage, digest.hex(), digest)
        return digest.hex(), size

    def _stage(self) -> staging.StagedFile:
        """Return a new stage file in ``objects/``, remembering when O_TMPFILE is unusable here."""
        from ansible_collections.bootc.composefs.plugins.module_utils.repository import staging  # pylint: disable=import-outside-toplevel
        stage = staging.StagedFile(self._objects_fd(create=True), TMP_OBJECT_PREFIX, allow_anonymous=self._anonymous)
        if stage.name is not None:
            self._anonymous = False
        return stage

    def _check_present(self, object_id: str, digest: bytes) -> bool:
        """Return whether the object exists, after checking it (and enabling verity where missing)."""
        try:
            fd = self._open_existing(object_id)
        except FileNotFoundError:
            return False
        if fd is None:
            return False
        try:
            self._verify_fd(fd, digest, paths.object_repo_path(object_id), enable=not self.secure)
        finally:
            os.close(fd)
        return True

    def _enable_verity(self, stage: staging.StagedFile, object_id: str, digest: bytes) -> None:
        """Enable fs-verity on the staged content (required when secure) and check the kernel's digest.

        An insecure repository stops trying once the filesystem said it has no fs-verity, which
        also spares reopening each stage file read-only.
        """
        if self._verity_unsupported:
            return
        relpath = paths.object_repo_path(object_id)
        ro_fd = stage.reopen_read_only()
        enabled = False
        try:
            enabled = fsverity.enable_fd(ro_fd, self.algorithm)
        except ComposefsError as err:
            if self.secure:
                err.with_path(self._where(relpath))
                raise
        else:
            if not enabled and not self.secure:
                self._verity_unsupported = True
        if self.secure and not enabled:
            raise ComposefsError("cannot enable fs-verity on a new object: the filesystem does not support it but the "
                                 "repository is secure (its meta.json has fs-verity)", path=self._where(relpath))
        if enabled:
            self._verify_fd(ro_fd, digest, relpath)

    def _commit(self, stage: staging.StagedFile, object_id: str, digest: bytes) -> None:
        """Put the staged content in place as ``objects/<xx>/<rest>``; an existing object is checked instead."""
        self._enable_verity(stage, object_id, digest)
        sub_fd = self._subdir_fd(object_id, create=True)
        for _attempt in range(2):
            try:
                stage.link_into_place(sub_fd, object_id[2:])
                return
            except FileExistsError:
                pass  # stored before, or another writer stored the same content first
            if self._check_present(object_id, digest):
                return
        raise FileExistsError(errno.EEXIST, "object name exists but cannot be opened", self.path_of(object_id))

    def remove(self, object_id: str) -> int | None:
        """Unlink the object; return its size, or None when absent. Only under the exclusive lock (GC)."""
        paths.validate_object_id(object_id, self.algorithm)
        try:
            sub_fd = self._subdir_fd(object_id)
        except FileNotFoundError:
            return None
        info = paths.lstat_at(sub_fd, object_id[2:])
        if info is None:
            return None
        if not stat.S_ISREG(info.st_mode):
            raise UnsafePathError("object is not a regular file; refusing to remove it", path=self.path_of(object_id))
        os.unlink(object_id[2:], dir_fd=sub_fd)
        return info.st_size

    def iter_objects(self) -> Iterator[ObjectEntry]:
        """Yield every name under ``objects/<xx>/`` (xx two lowercase hex digits), sorted, invalid ones flagged.

        Other names directly in ``objects/`` (stage files, foreign directories) are not objects and
        are skipped, never reported for removal.
        """
        try:
            objects_fd = paths.open_dir(self.repo_fd, paths.OBJECTS)
        except FileNotFoundError:
            return
        try:
            subdirs = sorted(e.name for e in os.scandir(objects_fd))
            for subdir in subdirs:
                if not paths.is_object_subdir(subdir):
                    continue
                relpath = paths.OBJECTS + "/" + subdir
                try:
                    sub_fd = paths.open_dir(objects_fd, subdir)
                except (UnsafePathError, FileNotFoundError) as err:
                    yield ObjectEntry(relpath, None, "not a directory (%s)" % getattr(err, "message", err))
                    continue
                try:
                    entries = sorted(os.scandir(sub_fd), key=lambda e: e.name)
                    for entry in entries:
                        yield self._object_entry(relpath, subdir, entry)
                finally:
                    os.close(sub_fd)
        finally:
            os.close(objects_fd)

    def _object_entry(self, relpath: str, subdir: str, entry) -> ObjectEntry:
        object_id = paths.parse_object_name(subdir, entry.name, self.algorithm)
        path = relpath + "/" + entry.name
        if object_id is None:
            return ObjectEntry(path, None, "name is not %d lowercase hex digits" % (2 * self.algorithm.digest_size - 2))
        if not entry.is_file(follow_symlinks=False):
            return ObjectEntry(path, None, "not a regular file")
        return ObjectEntry(path, object_id)

    def sync(self) -> None:
        """Flush the repository's filesystem (the one durability barrier)."""
        from ansible_collections.bootc.composefs.plugins.module_utils.repository import staging  # pylint: disable=import-outside-toplevel
        staging.sync_filesystem(self.repo_fd)


def _close_fds(fds: dict) -> None:
    """Close and forget every descriptor in ``fds``."""
    while fds:
        os.close(fds.popitem()[1])


def infer_algorithm(repo_fd: int, where: str | None = None) -> tuple:
    """Return ``(algorithm, has_verity)`` of a repository without meta.json, from its first object.

    The algorithm follows from the object name length (62 hex: sha256, 126: sha512); fs-verity is
    probed on that object. RepositoryFormatError when ``objects/`` holds no object at all.
    """
    objects_fd = paths.open_dir(repo_fd, paths.OBJECTS)
    try:
        for subdir in sorted(e.name for e in os.scandir(objects_fd) if paths.is_object_subdir(e.name)):
            sub_fd = paths.open_dir(objects_fd, subdir)
            try:
                for entry in sorted(os.scandir(sub_fd), key=lambda e: e.name):
                    algorithm = _NAME_LENGTH_ALGORITHMS.get(len(entry.name))
                    if algorithm is None or paths.parse_object_name(subdir, entry.name, algorithm) is None:
                        continue
                    if not entry.is_file(follow_symlinks=False):
                        continue
                    fd = os.open(entry.name, _FILE_FLAGS, dir_fd=sub_fd)
                    try:
                        return algorithm, fsverity.measure_fd(fd, algorithm) is not None
                    finally:
                        os.close(fd)
            finally:
                os.close(sub_fd)
    finally:
        os.close(objects_fd)
    raise RepositoryFormatError("repository has no meta.json and no objects, so its algorithm cannot be inferred; "
                                "initialize it instead", path=where)
