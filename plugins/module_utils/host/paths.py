# -*- coding: utf-8 -*-
# Copyright: (c) 2026, bootc.composefs maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where the files of a bootc composefs host live, and how to read them safely (layer: host).

Every host path is taken relative to one ``root``: ``/`` on a booted host, or the mount point of a
disk image or a test tree. Spec: bootc-composefs-host.md §1.1 (physical layout), §1.7 (boot
layout), §2.2 (booted deployment), §7 (what the read side needs).

Locations and how their defaults are chosen (an explicit override always wins):

| location | default |
|---|---|
| ``sysroot`` | ``<root>/sysroot`` |
| ``boot_dir`` | ``<sysroot>/boot``, or ``<root>/boot`` for a separate /boot partition (below) |
| ``esp`` | the first of ``<root>/boot/efi``, ``<root>/efi``, ``<sysroot>/boot/efi``, ``boot_dir`` that holds ``EFI/``; |
| | else ``<sysroot>/boot/efi`` if it is a directory (an unmounted mount point: ``esp_found`` false); else ``boot_dir`` |
| ``run_dir`` | ``<root>/run`` (holds ``composefs/staged-deployment``) |
| ``cmdline_file`` | ``<root>/proc/cmdline`` |
| ``mountinfo_file`` | ``<root>/proc/self/mountinfo`` (source of ``/``, used to detect soft reboots) |
| ``efivars_dir`` | ``<root>/sys/firmware/efi/efivars`` (``LoaderInfo`` names the bootloader) |

"Holds boot state" means: has a ``loader/`` or a ``grub2/`` directory.

Separate ``/boot`` partition (bootc issue #2399): bootc keeps reading ``/sysroot/boot`` even when
``/boot`` is its own partition mounted via ``systemd.mount-extra=``, where ``/sysroot/boot`` is an
empty directory of the root filesystem. We prefer ``<root>/boot`` exactly in that situation: when
``<sysroot>/boot`` holds no boot state while ``<root>/boot`` is a mount point or holds boot state. When
both hold boot state (the usual GRUB host, where they are the same filesystem) the sysroot wins,
as in bootc. The ``boot_dir`` override lets an operator settle any other layout.

ESP: bootc finds the ESP by GPT partition type on the disk backing ``/sysroot`` and mounts it
privately. A read-only module given a directory tree cannot do that, so we look where ESPs are
conventionally mounted and fall back to the boot dir (systemd-boot hosts often mount the ESP at
``/boot``). ``esp_rule`` says which rule chose the path and ``esp_found`` whether it holds ``EFI/``,
so a caller can warn and ask for the ``esp`` override.

Reading never follows a symlink out of the tree: every path is resolved component by component
the way a ``chroot`` would (an absolute link target restarts at the anchor, ``..`` stops at it).
The anchor is ``root``, or an override that lies outside ``root`` (an ESP mounted elsewhere). The
final component is opened with ``O_NOFOLLOW``; a directory swapped for a symlink between
resolution and open is not defended against (this module only reads). A path outside every
anchor raises ``UnsafePathError``.
"""

from __future__ import annotations

import errno
import os
import stat
from typing import NamedTuple

from ansible_collections.bootc.composefs.plugins.module_utils.errors import (
    FormatError,
    HostError,
    UnsafePathError,
)

__all__ = [
    "HostPaths",
    "DirEntry",
    "Usage",
    "load_host_paths",
    "load_request_paths",
    "MAX_FILE_BYTES",
    "MAX_SYMLINK_HOPS",
]

# Entries, origins, .imginfo and the staged marker are small; refusing bigger files bounds the
# memory a module uses on a node when a file is corrupt or hostile.
MAX_FILE_BYTES = 16 * 1024 * 1024
# Same bound as the kernel's ELOOP limit for one path walk.
MAX_SYMLINK_HOPS = 40
_READ_CHUNK_BYTES = 1024 * 1024
_MISSING_ERRNOS = (errno.ENOENT, errno.ENOTDIR)


class DirEntry(NamedTuple):
    """One name in a directory: ``kind`` is the entry itself (``lstat``): dir, file, symlink or other."""

    name: str
    path: str
    kind: str


class Usage(NamedTuple):
    """Size of a file or tree: ``apparent_bytes`` (sum of file sizes), ``disk_bytes`` (allocated blocks)."""

    apparent_bytes: int
    disk_bytes: int


def _kind_of_mode(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "dir"
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISLNK(mode):
        return "symlink"
    return "other"


def _split(path: str) -> list:
    return [part for part in path.split("/") if part not in ("", ".")]


def _is_within(path: str, base: str) -> bool:
    return path == base or path.startswith(base.rstrip("/") + "/")


class HostPaths(NamedTuple):
    """Absolute host paths of one bootc host, plus chroot-style safe reading below them."""

    root: str
    sysroot: str
    boot_dir: str
    esp: str
    run_dir: str
    cmdline_file: str
    mountinfo_file: str
    efivars_dir: str
    boot_dir_rule: str = "override"
    esp_rule: str = "override"
    esp_found: bool = True

    # -- well-known places -------------------------------------------------------------------

    @property
    def state_deploy_dir(self) -> str:
        """``<sysroot>/state/deploy``: one directory per deployment."""
        return os.path.join(self.sysroot, "state", "deploy")

    @property
    def composefs_repo(self) -> str:
        """``<sysroot>/composefs``: the composefs repository (read by other layers)."""
        return os.path.join(self.sysroot, "composefs")

    @property
    def staged_deployment_file(self) -> str:
        """``<run_dir>/composefs/staged-deployment``: the transient staged marker."""
        return os.path.join(self.run_dir, "composefs", "staged-deployment")

    # -- resolution --------------------------------------------------------------------------

    def _anchors(self) -> list:
        anchors = [self.root]
        for path in (self.sysroot, self.boot_dir, self.esp, self.run_dir, self.efivars_dir,
                     os.path.dirname(self.cmdline_file), os.path.dirname(self.mountinfo_file)):
            if not _is_within(path, self.root) and path not in anchors:
                anchors.append(path)
        return anchors

    def _anchor_for(self, path: str) -> str:
        best = None
        for anchor in self._anchors():
            if _is_within(path, anchor) and (best is None or len(anchor) > len(best)):
                best = anchor
        if best is None:
            raise UnsafePathError("path is outside the host root %s and every configured location" % self.root, path=path)
        return best

    def resolve(self, path: str, follow_last: bool = True) -> str:
        """The real path of ``path`` with every symlink resolved inside its anchor (chroot-style)."""
        if not os.path.isabs(path):
            path = os.path.join(self.root, path)
        # ".." is resolved below, clamped at the anchor; a lexical prefix match is enough here.
        anchor = self._anchor_for(path)
        pending = _split(path[len(anchor):])
        done = []
        hops = 0
        while pending:
            name = pending.pop(0)
            if name == "..":
                if done:
                    done.pop()
                continue
            if not pending and not follow_last:
                done.append(name)
                break
            candidate = os.path.join(anchor, *(done + [name]))
            try:
                mode = os.lstat(candidate).st_mode
            except OSError as err:
                if err.errno not in _MISSING_ERRNOS:
                    raise
                # Nothing below a missing name can be a symlink: finish lexically.
                for rest in [name] + pending:
                    if rest == "..":
                        if done:
                            done.pop()
                    else:
                        done.append(rest)
                break
            if not stat.S_ISLNK(mode):
                done.append(name)
                continue
            hops += 1
            if hops > MAX_SYMLINK_HOPS:
                raise UnsafePathError("too many levels of symbolic links", path=path)
            target = os.readlink(candidate)
            if target.startswith("/"):
                done = []
            pending = _split(target) + pending
        return os.path.join(anchor, *done) if done else anchor

    # -- queries -----------------------------------------------------------------------------

    def kind(self, path: str) -> str | None:
        """``dir``, ``file`` or ``other`` for what ``path`` resolves to; None if it does not exist."""
        try:
            return _kind_of_mode(os.lstat(self.resolve(path)).st_mode)
        except OSError as err:
            if err.errno in _MISSING_ERRNOS:
                return None
            raise

    def is_dir(self, path: str) -> bool:
        """True if ``path`` resolves (inside its anchor) to a directory."""
        return self.kind(path) == "dir"

    def is_file(self, path: str) -> bool:
        """True if ``path`` resolves (inside its anchor) to a regular file."""
        return self.kind(path) == "file"

    def is_mount(self, path: str) -> bool:
        """True if ``path`` resolves to a mount point."""
        return os.path.ismount(self.resolve(path))

    def scan_dir(self, path: str) -> list | None:
        """The entries of directory ``path`` sorted by name (bytes); None if it does not exist."""
        real = self.resolve(path)
        try:
            names = os.listdir(real)
        except OSError as err:
            if err.errno in _MISSING_ERRNOS:
                return None
            raise
        entries = []
        for name in sorted(names, key=os.fsencode):
            try:
                kind = _kind_of_mode(os.lstat(os.path.join(real, name)).st_mode)
            except FileNotFoundError:
                continue
            entries.append(DirEntry(name=name, path=os.path.join(path, name), kind=kind))
        return entries

    def read_bytes(self, path: str, max_bytes: int = MAX_FILE_BYTES) -> bytes | None:
        """The content of regular file ``path``; None if it does not exist.

        Raises ``FormatError`` for a non-regular file or one larger than ``max_bytes``, ``OSError``
        for other I/O failures, ``UnsafePathError`` for a path outside the tree.
        """
        real = self.resolve(path)
        try:
            fd = os.open(real, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | getattr(os, "O_NOCTTY", 0))
        except OSError as err:
            if err.errno in _MISSING_ERRNOS:
                return None
            if err.errno == errno.ELOOP:
                raise UnsafePathError("became a symbolic link while being opened", path=path)
            raise
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise FormatError("expected a regular file, found a %s" % _kind_of_mode(st.st_mode), path=path)
            chunks = []
            total = 0
            while True:
                chunk = os.read(fd, _READ_CHUNK_BYTES)
                if not chunk:
                    break
                total += len(chunk)
                if total > max_bytes:
                    raise FormatError("file is larger than the %d bytes allowed" % max_bytes, path=path)
                chunks.append(chunk)
            return b"".join(chunks)
        finally:
            os.close(fd)

    def read_text(self, path: str, max_bytes: int = MAX_FILE_BYTES) -> str | None:
        """The UTF-8 text of ``path``; None if it does not exist; ``FormatError`` if not UTF-8."""
        data = self.read_bytes(path, max_bytes=max_bytes)
        if data is None:
            return None
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as err:
            raise FormatError("not UTF-8 text (%s)" % err.reason, offset=err.start, path=path)

    def usage(self, path: str) -> Usage:
        """Apparent and allocated size of ``path`` and everything below it (symlinks not followed)."""
        real = self.resolve(path)
        seen = set()
        apparent = 0
        disk = 0
        stack = [real]
        # Sizes are informational: entries that vanish or cannot be read are skipped, not fatal.
        while stack:
            current = stack.pop()
            try:
                st = os.lstat(current)
            except OSError:
                continue
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            disk += getattr(st, "st_blocks", 0) * 512
            if stat.S_ISREG(st.st_mode):
                apparent += st.st_size
            elif stat.S_ISDIR(st.st_mode):
                try:
                    stack.extend(os.path.join(current, name) for name in os.listdir(current))
                except OSError:
                    continue
        return Usage(apparent_bytes=apparent, disk_bytes=disk)


def _holds_boot_state(probe: HostPaths, path: str) -> bool:
    return probe.is_dir(os.path.join(path, "loader")) or probe.is_dir(os.path.join(path, "grub2"))


def _absolute(path) -> str:
    return os.path.normpath(os.path.abspath(os.fspath(path)))


def _choose_boot_dir(probe: HostPaths, root: str, sysroot: str) -> tuple:
    sysroot_boot = os.path.join(sysroot, "boot")
    root_boot = os.path.join(root, "boot")
    if root_boot != sysroot_boot and not _holds_boot_state(probe, sysroot_boot) and probe.is_dir(root_boot):
        if probe.is_mount(root_boot):
            return root_boot, "<root>/boot: a mount point while <sysroot>/boot holds no loader/ or grub2/ (separate /boot, bootc#2399)"
        if _holds_boot_state(probe, root_boot):
            return root_boot, "<root>/boot: holds loader/ or grub2/ while <sysroot>/boot holds neither (separate /boot, bootc#2399)"
    return sysroot_boot, "<sysroot>/boot"


def _choose_esp(probe: HostPaths, root: str, sysroot: str, boot_dir: str) -> tuple:
    candidates = (
        (os.path.join(root, "boot", "efi"), "<root>/boot/efi holds EFI/"),
        (os.path.join(root, "efi"), "<root>/efi holds EFI/"),
        (os.path.join(sysroot, "boot", "efi"), "<sysroot>/boot/efi holds EFI/"),
        (boot_dir, "the boot dir holds EFI/"),
    )
    for path, rule in candidates:
        if probe.is_dir(os.path.join(path, "EFI")):
            return path, rule, True
    sysroot_efi = os.path.join(sysroot, "boot", "efi")
    if probe.is_dir(sysroot_efi):
        return sysroot_efi, "<sysroot>/boot/efi exists but holds no EFI/ (ESP not mounted?)", False
    return boot_dir, "no ESP found: using the boot dir", False


def load_host_paths(root="/", sysroot=None, boot_dir=None, esp=None, run_dir=None, cmdline_file=None,
                    mountinfo_file=None, efivars_dir=None) -> HostPaths:
    """The host paths below ``root``, with defaults probed on disk (see the module docstring)."""
    root = _absolute(root)
    if not os.path.isdir(root):
        raise HostError("host root is not a directory", path=root)
    sysroot = _absolute(sysroot) if sysroot is not None else os.path.join(root, "sysroot")
    run_dir = _absolute(run_dir) if run_dir is not None else os.path.join(root, "run")
    cmdline_file = _absolute(cmdline_file) if cmdline_file is not None else os.path.join(root, "proc", "cmdline")
    mountinfo_file = _absolute(mountinfo_file) if mountinfo_file is not None else os.path.join(root, "proc", "self", "mountinfo")
    efivars_dir = _absolute(efivars_dir) if efivars_dir is not None else os.path.join(root, "sys", "firmware", "efi", "efivars")
    given_boot = _absolute(boot_dir) if boot_dir is not None else None
    given_esp = _absolute(esp) if esp is not None else None
    probe = HostPaths(root=root, sysroot=sysroot, boot_dir=given_boot or sysroot, esp=given_esp or sysroot,
                      run_dir=run_dir, cmdline_file=cmdline_file, mountinfo_file=mountinfo_file,
                      efivars_dir=efivars_dir)
    if given_boot is not None:
        chosen_boot, boot_rule = given_boot, "override"
    else:
        chosen_boot, boot_rule = _choose_boot_dir(probe, root, sysroot)
    if given_esp is not None:
        chosen_esp, esp_rule = given_esp, "override"
        esp_found = probe.is_dir(os.path.join(given_esp, "EFI"))
    else:
        chosen_esp, esp_rule, esp_found = _choose_esp(probe, root, sysroot, chosen_boot)
    return HostPaths(root=root, sysroot=sysroot, boot_dir=chosen_boot, esp=chosen_esp, run_dir=run_dir,
                     cmdline_file=cmdline_file, mountinfo_file=mountinfo_file, efivars_dir=efivars_dir,
                     boot_dir_rule=boot_rule, esp_rule=esp_rule, esp_found=esp_found)


def load_request_paths(request) -> HostPaths:
    """The host paths of a status or GC request; a ``HostError`` says "not a bootc composefs host" and why.

    ``request`` has the path options of :func:`load_host_paths` as attributes (``root``,
    ``sysroot``, ``boot_dir``, ``esp``, ``run_dir``, ``cmdline_file``).
    """
    try:
        return load_host_paths(request.root, sysroot=request.sysroot, boot_dir=request.boot_dir, esp=request.esp,
                               run_dir=request.run_dir, cmdline_file=request.cmdline_file)
    except HostError as err:
        raise HostError("not a bootc composefs host: %s" % err.message, path=err.path) from None
