# -*- coding: utf-8 -*-
# Copyright: (c) 2026, bootc.composefs maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Deleting on the host: trees and files below the sysroot, boot dir and ESP only (layer: operations).

Every deletion of a host GC (boot binaries, state dirs, the staged marker) goes through
:class:`HostRemover`: the directory a path is removed from must resolve (symlinks followed
chroot-style by the host model) inside the real sysroot, boot dir or ESP (the staged marker: the
run dir), and is then opened component by component from ``/`` with ``O_NOFOLLOW``, so a component
replaced by a symlink since the check is refused. A path that is no longer what the plan saw (a
directory that became a file, a file that became a symlink) is refused too.

:func:`remove_tree` removes a tree depth-first through directory descriptors, one per level:
symlinks are unlinked, never followed, and a directory on another filesystem (a mount point)
stops the removal with an error.
"""

from __future__ import annotations

import errno
import os
import stat
from typing import Callable

from ansible_collections.bootc.composefs.plugins.module_utils.errors import UnsafePathError

__all__ = ["HostRemover", "remove_tree", "open_real_dir"]

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def _within(path: str, base: str) -> bool:
    return path == base or path.startswith(base.rstrip("/") + "/")


def open_real_dir(real: str) -> int:
    """Open absolute path ``real`` one component at a time, refusing any symlink on the way."""
    fd = os.open("/", _DIR_FLAGS)
    try:
        for part in [p for p in real.split("/") if p]:
            try:
                child = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except OSError as err:
                if err.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise UnsafePathError("a component became a symbolic link or is no directory; refusing to delete "
                                          "below it", path=real) from None
                raise
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd


class HostRemover:
    """Deletes below the real sysroot, boot dir and ESP (and the staged marker below the run dir) only."""

    def __init__(self, paths, step: Callable | None) -> None:
        self.paths = paths
        self.step = step
        self.allowed = [paths.resolve(p) for p in (paths.sysroot, paths.boot_dir, paths.esp)]
        self.run_dir = paths.resolve(paths.run_dir)

    def real_parent(self, path: str, marker: bool = False) -> str:
        """The real directory ``path`` is removed from; UnsafePathError when it lies outside what may be touched."""
        allowed = [self.run_dir] if marker else self.allowed
        real_parent = self.paths.resolve(os.path.dirname(path))
        if not any(_within(real_parent, base) for base in allowed):
            raise UnsafePathError("its directory resolves to %s, outside the %s; refusing to delete it"
                                  % (real_parent, "run dir" if marker else "sysroot, boot dir and ESP"), path=path)
        return real_parent

    def _parent(self, path: str, marker: bool = False) -> tuple:
        return open_real_dir(self.real_parent(path, marker)), os.path.basename(path)

    def remove(self, path: str, what: str, want_dir: bool | None) -> bool:
        """Remove ``path`` (a tree when it is a directory); False when it no longer exists."""
        parent_fd, name = self._parent(path)
        try:
            info = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
        except FileNotFoundError:
            os.close(parent_fd)
            return False
        try:
            is_dir = stat.S_ISDIR(info.st_mode)
            if want_dir is not None and is_dir != want_dir or not (is_dir or stat.S_ISREG(info.st_mode)):
                raise UnsafePathError("is not a %s any more; refusing to delete it" % ("directory" if want_dir else "regular file"),
                                      path=path)
            if self.step is not None:
                self.step(what, path)
            if is_dir:
                remove_tree(parent_fd, name, path)
            else:
                os.unlink(name, dir_fd=parent_fd)
        finally:
            os.close(parent_fd)
        return True

    def remove_marker(self, path: str) -> bool:
        """Unlink the staged-deployment marker (a regular file below the run dir); False when it is gone."""
        parent_fd, name = self._parent(path, marker=True)
        try:
            info = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
            if not stat.S_ISREG(info.st_mode):
                raise UnsafePathError("is not a regular file; refusing to delete it", path=path)
            if self.step is not None:
                self.step("staged-marker", path)
            os.unlink(name, dir_fd=parent_fd)
        except FileNotFoundError:
            return False
        finally:
            os.close(parent_fd)
        return True


def remove_tree(parent_fd: int, name: str, where: str) -> None:
    """Remove directory ``name`` (in ``parent_fd``) and everything below it, depth-first, through descriptors.

    Symlinks are unlinked, never followed; a directory on another filesystem than the parent (a
    mount point) stops the removal with an error; one descriptor is open per level.
    """
    device = os.fstat(parent_fd).st_dev
    stack = []
    try:
        stack.append([parent_fd, name, _open_subdir(parent_fd, name, device, where), None])
        while stack:
            frame = stack[-1]
            dir_fd = frame[2]
            if frame[3] is None:
                subdirs = []
                with os.scandir(dir_fd) as listing:
                    for item in listing:
                        if item.is_dir(follow_symlinks=False):
                            subdirs.append(item.name)
                        else:
                            os.unlink(item.name, dir_fd=dir_fd)
                frame[3] = subdirs
            if frame[3]:
                child = frame[3].pop()
                stack.append([dir_fd, child, _open_subdir(dir_fd, child, device, where), None])
                continue
            stack.pop()
            os.close(dir_fd)
            os.rmdir(frame[1], dir_fd=frame[0])
    finally:
        for frame in stack:
            os.close(frame[2])


def _open_subdir(dir_fd: int, name: str, device: int, where: str) -> int:
    fd = os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
    if os.fstat(fd).st_dev != device:
        os.close(fd)
        raise UnsafePathError("%s is a mount point (another filesystem) inside what is being deleted; refusing to delete "
                              "into it" % name, path=where)
    return fd
