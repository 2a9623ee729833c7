# -*- coding: utf-8 -*-
# Copyright: (c) 2026, bootc.composefs maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A tar layer member as a filesystem tree entry (``formats/tree.py``): what a layer contributes to an image.

Layer: formats. Upstream: composefs-rs ``crates/composefs-oci/src/tar.rs`` (``get_entry``).
The split of a layer (``tar_split.py``) makes these entries as it goes; ``tar.py`` makes them
again from a stored split stream. Both apply the same 64-byte rule (``INLINE_CONTENT_MAX``,
composefs-rs ``INLINE_CONTENT_MAX_V0`` in ``crates/composefs/src/lib.rs``): a regular file of
more than 64 bytes is external (its content is a repository object named by its fs-verity
digest), a smaller one carries its content inline.

Whiteouts are plain members here (``.wh.<name>``, ``.wh..wh..opq``); ``oci/layers.py`` gives
them their meaning when it merges layers.
"""

from __future__ import annotations

import stat as _stat
from typing import NamedTuple, Optional

from ansible_collections.bootc.composefs.plugins.module_utils.formats import tree
from ansible_collections.bootc.composefs.plugins.module_utils.formats.tar_header import TarEntry, member_error

__all__ = ["INLINE_CONTENT_MAX", "LayerEntry", "layer_entry_from_tar", "makedev"]

# Regular files of more than this many bytes become repository objects (composefs-rs
# INLINE_CONTENT_MAX_V0, crates/composefs/src/lib.rs); smaller ones stay inline in the split
# stream *and* in the EROFS image.
INLINE_CONTENT_MAX = 64

# Kind (TarEntry.kind) -> S_IFMT bits of the tree node.
IFMT_BY_KIND = {
    "file": _stat.S_IFREG, "symlink": _stat.S_IFLNK, "chardev": _stat.S_IFCHR, "blockdev": _stat.S_IFBLK,
    "directory": _stat.S_IFDIR, "fifo": _stat.S_IFIFO,
}

# --- limits of tree entries --------------------------------------------------------------

# uid, gid, device major/minor are 32-bit in the kernel and in EROFS.
MAX_ID = 0xFFFFFFFF
# Inode timestamps are signed 64-bit seconds.
MIN_MTIME = -(1 << 63)
MAX_MTIME = (1 << 63) - 1
# Permission and special bits of a mode field.
PERMISSION_BITS = 0o7777


class LayerEntry(NamedTuple):
    """One layer member as a tree entry: ``node`` (a fresh, empty ``Directory`` for directories) or,
    for a hard link, ``node`` None and ``hardlink_target`` set. ``path`` is the raw archive path."""

    path: bytes
    node: Optional[tree.Node]
    hardlink_target: Optional[bytes] = None
    offset: Optional[int] = None


def makedev(major: int, minor: int) -> int:
    """Encode a Linux dev_t (glibc/kernel ``makedev`` layout) from major and minor numbers."""
    return ((major & 0xFFFFF000) << 32) | ((major & 0xFFF) << 8) | ((minor & 0xFFFFFF00) << 12) | (minor & 0xFF)


def layer_entry_from_tar(entry: TarEntry, content: Optional[bytes], offset: Optional[int] = None,
                         fsverity_digest: Optional[bytes] = None) -> LayerEntry:
    """Turn a decoded member into a tree entry.

    Regular files take ``content`` (inline, at most ``INLINE_CONTENT_MAX`` bytes) or
    ``fsverity_digest`` (external). The tree mode is the type bits of the member's type plus the
    permission bits of its mode field (composefs-rs ORs the two; they differ only for mode fields
    carrying contradictory type bits).
    """
    kind = entry.kind
    where = -1 if offset is None else offset
    if kind == "other":
        raise member_error(entry.path, "unsupported entry type %r" % entry.typeflag.decode("latin-1"), where)
    if kind == "hardlink":
        if not entry.link_target:
            raise member_error(entry.path, "hard link without a target", where)
        return LayerEntry(entry.path, None, entry.link_target, offset)
    for what, value in (("uid", entry.uid), ("gid", entry.gid)):
        if value > MAX_ID:
            raise member_error(entry.path, "%s %d does not fit in 32 bits" % (what, value), where)
    if not MIN_MTIME <= entry.mtime <= MAX_MTIME:
        raise member_error(entry.path, "mtime %d does not fit in 64 bits" % entry.mtime, where)
    node_stat = tree.Stat(mode=IFMT_BY_KIND[kind] | (entry.mode & PERMISSION_BITS), uid=entry.uid, gid=entry.gid,
                          mtime=entry.mtime, mtime_nsec=entry.mtime_nsec, xattrs=dict(entry.xattrs))
    if kind == "directory":
        node: tree.Node = tree.Directory(node_stat)
    elif kind == "file":
        if fsverity_digest is not None:
            if entry.size <= INLINE_CONTENT_MAX:
                raise member_error(entry.path, "file of %d bytes must be inline, not external" % entry.size, where)
            node = tree.RegularFile(node_stat, size=entry.size, fsverity_digest=bytes(fsverity_digest))
        else:
            data = bytes(content or b"")
            if len(data) != entry.size or entry.size > INLINE_CONTENT_MAX:
                raise member_error(entry.path, "file of %d bytes cannot be inline (%d bytes given)" % (
                    entry.size, len(data)), where)
            node = tree.RegularFile(node_stat, size=entry.size, content=data)
    elif kind == "symlink":
        node = tree.Symlink(node_stat, target=entry.link_target)
    elif kind == "fifo":
        node = tree.Fifo(node_stat)
    else:
        if entry.devmajor is None or entry.devminor is None:
            raise member_error(entry.path, "device without device numbers (v7 header)", where)
        if entry.devmajor > MAX_ID or entry.devminor > MAX_ID:
            raise member_error(entry.path, "device number %d:%d out of range" % (entry.devmajor, entry.devminor), where)
        node = tree.Device(node_stat, rdev=makedev(entry.devmajor, entry.devminor))
    return LayerEntry(entry.path, node, None, offset)
