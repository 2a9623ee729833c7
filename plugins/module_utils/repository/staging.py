# -*- coding: utf-8 -*-
# Copyright: (c) 2026, bootc.composefs maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""How new files appear in a repository: staged out of sight, then linked into place, never replacing.

Layer: repository. Spec: ``composefs-repo.md`` sections 3.5 (meta.json), 4.2 (objects) and 9;
upstream: composefs-rs ``crates/composefs/src/repository.rs`` (``write_repo_metadata``,
``create_object_tmpfile_impl``, ``link_tmpfile_as_object``) and ``util.rs`` (``reopen_tmpfile_ro``).

A :class:`StagedFile` is filled while it has no name anyone looks up:

- preferably an anonymous ``O_TMPFILE`` in the target directory's filesystem: a crash leaves
  nothing behind. It is put in place by ``linkat`` of ``/proc/self/fd/N``;
- otherwise (no ``O_TMPFILE`` on this filesystem, or no ``/proc``) a file ``<prefix><12 random
  alphanumerics>`` created ``O_CREAT|O_EXCL``, put in place by ``renameat2(RENAME_NOREPLACE)``, or
  by ``link`` + ``unlink`` where renameat2 is unavailable. A crash may leave it behind (composefs-rs
  has the same ``objects/.tmp-object-*`` strays); it is removed on every failure we see.

To enable fs-verity the caller reopens the file read-only before putting it in place, which
closes the writable descriptor (the kernel refuses while a writer exists); a caller that knows the
filesystem has no fs-verity links the writable descriptor directly. Putting in place never
replaces an existing name: ``FileExistsError`` tells the caller someone else was first.

Durability is the caller's choice: meta.json is fsynced before it is linked; objects are not, and
one ``syncfs(2)`` (:func:`sync_filesystem`) orders them before anything that references them.
"""

from __future__ import annotations

import ctypes
import errno
import os

from ansible_collections.bootc.composefs.plugins.module_utils.repository import paths

__all__ = ["StagedFile", "sync_filesystem", "rename_noreplace", "write_all", "PROC_SELF_FD"]

FILE_MODE = 0o644
PROC_SELF_FD = "/proc/self/fd"  # anonymous files are linked into place through it
RENAME_NOREPLACE = 1  # linux/fs.h
# errno values meaning "this filesystem or kernel has no O_TMPFILE"
_TMPFILE_UNSUPPORTED = frozenset((errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL))


_PROC_AVAILABLE = {}  # PROC_SELF_FD -> whether it is a directory: probed once, not once per staged file


def _proc_available() -> bool:
    available = _PROC_AVAILABLE.get(PROC_SELF_FD)
    if available is None:
        available = _PROC_AVAILABLE[PROC_SELF_FD] = os.path.isdir(PROC_SELF_FD)
    return available


def _libc_function(name: str):
    try:
        return getattr(ctypes.CDLL(None, use_errno=True), name, None)
    except OSError:
        return None


def sync_filesystem(fd: int) -> None:
    """``syncfs(fd)``: flush the whole filesystem holding ``fd``; ``os.sync()`` where syncfs is unavailable."""
    function = _libc_function("syncfs")
    if function is None:
        os.sync()
        return
    if function(ctypes.c_int(fd)) != 0:
        code = ctypes.get_errno()
        raise OSError(code, "syncfs failed: %s" % os.strerror(code))


def rename_noreplace(src_dir_fd: int, src: str, dst_dir_fd: int, dst: str) -> None:
    """Move ``src`` to ``dst`` unless ``dst`` exists (FileExistsError then)."""
    function = _libc_function("renameat2")
    if function is not None:
        result = function(ctypes.c_int(src_dir_fd), os.fsencode(src), ctypes.c_int(dst_dir_fd), os.fsencode(dst),
                          ctypes.c_uint(RENAME_NOREPLACE))
        if result == 0:
            return
        code = ctypes.get_errno()
        if code == errno.EEXIST:
            raise FileExistsError(code, os.strerror(code), dst)
        if code not in (errno.ENOSYS, errno.EINVAL):
            raise OSError(code, os.strerror(code), dst)
    # No renameat2 here: link never replaces either.
    os.link(src, dst, src_dir_fd=src_dir_fd, dst_dir_fd=dst_dir_fd, follow_symlinks=False)
    os.unlink(src, dir_fd=src_dir_fd)


def write_all(fd: int, data) -> None:
    """Write every byte of ``data`` to ``fd``."""
    view = memoryview(data).cast("B")
    while view:
        written = os.write(fd, view)
        view = view[written:]


class StagedFile:
    """A new file in ``dir_fd`` not yet visible under its final name; use as a context manager."""

    def __init__(self, dir_fd: int, prefix: str, allow_anonymous: bool = True) -> None:
        self.dir_fd = dir_fd
        self.name = None  # set for a named stage file until it is put in place
        self.fd = -1  # writable descriptor until reopen_read_only()
        self.ro_fd = -1
        if allow_anonymous and _proc_available():
            try:
                self.fd = os.open(".", os.O_TMPFILE | os.O_RDWR | os.O_CLOEXEC, FILE_MODE, dir_fd=dir_fd)
                return
            except OSError as err:
                if err.errno not in _TMPFILE_UNSUPPORTED:
                    raise
        for _attempt in range(paths.RANDOM_NAME_ATTEMPTS):
            name = paths.random_name(prefix)
            try:
                self.fd = os.open(name, os.O_CREAT | os.O_EXCL | os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC,
                                  FILE_MODE, dir_fd=dir_fd)
            except FileExistsError:
                continue
            self.name = name
            return
        raise FileExistsError(errno.EEXIST, "no free temporary file name %s* after %d attempts"
                              % (prefix, paths.RANDOM_NAME_ATTEMPTS))

    def __enter__(self) -> "StagedFile":
        return self

    def __exit__(self, *exc_info) -> None:
        self.discard()

    def reopen_read_only(self) -> int:
        """Return a read-only fd of the file and close the writable one (fs-verity needs that)."""
        if self.name is None:
            self.ro_fd = os.open("%s/%d" % (PROC_SELF_FD, self.fd), os.O_RDONLY | os.O_CLOEXEC)
        else:
            self.ro_fd = os.open(self.name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=self.dir_fd)
        os.close(self.fd)
        self.fd = -1
        return self.ro_fd

    def link_into_place(self, dst_dir_fd: int, dst_name: str) -> None:
        """Give the file its final name ``dst_name`` in ``dst_dir_fd``; FileExistsError when that name exists.

        An anonymous file is linked through whichever descriptor is open (one ``linkat``): the
        read-only one after :meth:`reopen_read_only`, else the writable one.
        """
        if self.name is None:
            fd = self.ro_fd if self.ro_fd >= 0 else self.fd
            os.link("%s/%d" % (PROC_SELF_FD, fd), dst_name, dst_dir_fd=dst_dir_fd, follow_symlinks=True)
        else:
            rename_noreplace(self.dir_fd, self.name, dst_dir_fd, dst_name)
            self.name = None

    def discard(self) -> None:
        """Close every descriptor and remove a named stage file that was not put in place."""
        for attr in ("fd", "ro_fd"):
            fd = getattr(self, attr)
            if fd >= 0:
                os.close(fd)
                setattr(self, attr, -1)
        if self.name is not None:
            try:
                os.unlink(self.name, dir_fd=self.dir_fd)
            except FileNotFoundError:
                pass
            self.name = None
