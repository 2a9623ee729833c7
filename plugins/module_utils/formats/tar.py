# -*- coding: utf-8 -*-
# Copyright: (c) 2026, bootc.composefs maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The composefs split of a tar layer, and the layer's tree entries read back from it.

Layer: formats. An OCI layer is a tar archive (POSIX.1-1988 ustar, GNU or POSIX.1-2001 pax
dialect: header blocks in ``tar_header.py``, reading member by member in ``tar_reader.py``).
composefs stores it as a *split stream* (spec ``composefs-repo.md`` §10.2): the archive bytes in
order, where the content of every regular file larger than ``INLINE_CONTENT_MAX`` bytes is
replaced by a reference to a repository object (named by its fs-verity digest), and everything
else stays inline. Concatenating the inline bytes and the referenced objects gives back the
archive byte for byte, so the layer's ``diff_id`` (sha256 of the tar) stays verifiable.
Upstream: composefs-rs ``crates/composefs-oci/src/tar.rs`` (``split_async``, ``get_entry``).

The split (``split_tar``)
-------------------------
Events, in archive order:

- ``("inline", bytes)``: header blocks of a member (with all its extended headers, global headers
  before it included), content *and* padding of every member that is not a regular file larger
  than ``INLINE_CONTENT_MAX`` bytes, the padding of those that are, and the end-of-archive blocks
  with everything after them (extra zero records, any trailing bytes);
- ``("external", fsverity_digest, size)``: the content (without padding) of a regular file of
  more than ``INLINE_CONTENT_MAX`` bytes, handed to ``store_object`` as a file object.

Inline events are never empty; neighbouring inline bytes are joined up to ``INLINE_FLUSH_BYTES``.
``iter_layer_entries`` reads such an event stream back (composefs-rs ``get_entry``): it is the way
to get a layer's tree entries both right after the split and later from the repository's stored
split stream. One pass over a layer, writing the split stream and collecting its entries::

    def tee(events):
        for event in events:
            if event[0] == INLINE:
                writer.write_inline(event[1])
            else:
                writer.write_external(event[1], event[2])
            yield event

    events = tee(split_tar(stream, store_object))
    entries = list(iter_layer_entries(events))
    for _event in events:  # iter_layer_entries stops at the end-of-archive marker: write the rest too
        pass

Inline thresholds
-----------------
composefs-rs uses one constant for both decisions, ``INLINE_CONTENT_MAX_V0 = 64``
(``crates/composefs/src/lib.rs``): ``split_async`` sends regular files of more than 64 bytes to
the object store, and ``get_entry`` turns an inline chunk into inline EROFS file content and an
external chunk into an external file, failing when a split stream disagrees with the 64-byte rule.
So files of at most 64 bytes are inline both in the split stream and in the image; the EROFS
readers' ``MAX_INLINE_CONTENT = 512`` is only a parsing bound for untrusted images.

Whiteouts are plain members here (``.wh.<name>``, ``.wh..wh..opq``); ``oci/layers.py`` gives
them their meaning when it merges layers.

The archive-level names (``BLOCK_SIZE``, ``TarHeader``, ``TarEntry``, ``TarMember``, ``TarReader``,
``parse_header``, ``parse_pax_records``, ``iter_members``) stay importable from here.
"""

from __future__ import annotations

import stat as _stat
from typing import Callable, Iterable, Iterator, NamedTuple, Optional

from ansible_collections.bootc.composefs.plugins.module_utils.errors import ComposefsError, FormatError
from ansible_collections.bootc.composefs.plugins.module_utils.formats import tree
from ansible_collections.bootc.composefs.plugins.module_utils.formats.tar_header import (
    BLOCK_SIZE,
    TarEntry,
    TarHeader,
    describe_name,
    member_error,
    parse_header,
    parse_pax_records,
)
from ansible_collections.bootc.composefs.plugins.module_utils.formats.tar_reader import (
    TarContent,
    TarMember,
    TarReader,
    iter_members,
    read_header_chain,
)

__all__ = [
    "BLOCK_SIZE",
    "INLINE_CONTENT_MAX",
    "INLINE",
    "EXTERNAL",
    "TarHeader",
    "TarEntry",
    "TarMember",
    "TarReader",
    "LayerEntry",
    "parse_header",
    "parse_pax_records",
    "iter_members",
    "split_tar",
    "iter_layer_entries",
    "layer_entry_from_tar",
    "makedev",
]

# --- the split ---------------------------------------------------------------------------

# Regular files of more than this many bytes become repository objects (composefs-rs
# INLINE_CONTENT_MAX_V0, crates/composefs/src/lib.rs); smaller ones stay inline in the split
# stream *and* in the EROFS image.
INLINE_CONTENT_MAX = 64
INLINE = "inline"
EXTERNAL = "external"
# Inline bytes are gathered into one event up to this size (bounds memory for huge inline runs).
INLINE_FLUSH_BYTES = 1 << 20

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


# --- the split ---------------------------------------------------------------------------


def split_tar(fileobj, store_object: Callable[[TarContent, int], bytes]) -> Iterator[tuple]:
    """Yield the split-stream events of the tar read from ``fileobj`` (see the module docstring).

    ``store_object(content_fileobj, size)`` is called for each regular file of more than
    ``INLINE_CONTENT_MAX`` bytes; it must read the content to its end and return the fs-verity
    digest (raw bytes) under which it stored it.
    """
    reader = TarReader(fileobj)
    pending = bytearray()
    for member in reader:
        pending += member.header_bytes
        entry = member.entry
        if entry.is_regular and entry.size > INLINE_CONTENT_MAX:
            if pending:
                yield (INLINE, bytes(pending))
                pending.clear()
            fsverity_digest = store_object(member.content, entry.size)
            if member.content.remaining:
                raise ComposefsError("store_object left %d of %d content bytes of %s unread" % (
                    member.content.remaining, entry.size, describe_name(entry.path)))
            yield (EXTERNAL, fsverity_digest, entry.size)
            pending += member.read_padding()
        else:
            for data in member.iter_stored():
                pending += data
                if len(pending) >= INLINE_FLUSH_BYTES:
                    yield (INLINE, bytes(pending))
                    pending.clear()
        if len(pending) >= INLINE_FLUSH_BYTES:
            yield (INLINE, bytes(pending))
            pending.clear()
    for data in reader.iter_trailer():
        pending += data
        if len(pending) >= INLINE_FLUSH_BYTES:
            yield (INLINE, bytes(pending))
            pending.clear()
    if pending:
        yield (INLINE, bytes(pending))


class _EventSource:
    """Reads the inline bytes of a split-event stream; external chunks are taken explicitly."""

    def __init__(self, events: Iterable[tuple]) -> None:
        self._events = iter(events)
        self._buffer = b""
        self._pos = 0
        self._external: Optional[tuple] = None
        self.offset = 0

    def _fill(self) -> bool:
        """Load the next inline event; False at the end or when an external event is next."""
        if self._external is not None:
            return False
        for event in self._events:
            if not isinstance(event, tuple) or len(event) < 2 or event[0] not in (INLINE, EXTERNAL):
                raise FormatError("split event is neither (\"inline\", bytes) nor (\"external\", digest, size)", self.offset)
            if event[0] == EXTERNAL:
                self._external = event
                return False
            if event[1]:
                self._buffer = bytes(event[1])
                self._pos = 0
                return True
        return False

    def read_exact(self, size: int) -> bytes:
        parts = []
        got = 0
        while got < size:
            if self._pos >= len(self._buffer) and not self._fill():
                if self._external is not None:
                    raise FormatError("split stream has an external chunk where %d inline bytes were expected" % (
                        size - got), self.offset)
                break
            take = self._buffer[self._pos:self._pos + size - got]
            self._pos += len(take)
            self.offset += len(take)
            parts.append(take)
            got += len(take)
        return b"".join(parts)

    def take_external(self, size: int, name: bytes, offset: int) -> bytes:
        """Consume the external event that must come next; return its fs-verity digest."""
        if self._pos < len(self._buffer) or (self._external is None and self._fill()) or self._external is None:
            raise member_error(name, "split stream keeps %d content bytes inline, expected an external chunk" % size, offset)
        event = self._external
        self._external = None
        if len(event) > 2 and event[2] is not None and event[2] != size:
            raise member_error(name, "external chunk of %s bytes for content of %d bytes" % (event[2], size), offset)
        self.offset += size
        return bytes(event[1])


def iter_layer_entries(events: Iterable[tuple]) -> Iterator[LayerEntry]:
    """Yield the tree entries of a layer from its split-stream events, in archive order.

    ``events`` as produced by ``split_tar`` (``("external", digest)`` without size is accepted).
    Regular files must be external exactly when larger than ``INLINE_CONTENT_MAX``. Stops at the
    end-of-archive marker.
    """
    source = _EventSource(events)
    while True:
        chain = read_header_chain(source)
        entry = chain.entry
        if entry is None:
            return
        if entry.is_regular and entry.size > INLINE_CONTENT_MAX:
            fsverity_digest = source.take_external(entry.size, entry.path, chain.offset)
            padding = source.read_exact(entry.stored_size - entry.size)
            if len(padding) < entry.stored_size - entry.size:
                raise member_error(entry.path, "split stream ends inside member padding", chain.offset)
            yield layer_entry_from_tar(entry, None, chain.offset, fsverity_digest=fsverity_digest)
        else:
            stored = source.read_exact(entry.stored_size)
            if len(stored) < entry.stored_size:
                raise member_error(entry.path, "split stream ends inside member content", chain.offset)
            yield layer_entry_from_tar(entry, stored[:entry.size], chain.offset)


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
