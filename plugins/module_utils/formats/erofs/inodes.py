# -*- coding: utf-8 -*-
# Copyright: (c) 2026, bootc.composefs maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The inodes the composefs EROFS writers lay out: how tree nodes become inodes, and the pieces both
writers emit the same way.

Layer: formats. Structures are described in ``layout.py``; the placement rules are in ``writer.py``
(V0/V1, mkcomposefs) and ``writer_v2.py`` (V2, composefs-rs). Shared here:

| piece | rule |
|---|---|
| :class:`Inode` | one inode being laid out; user ``trusted.overlay.*`` xattrs become ``trusted.overlay.overlay.*`` |
| :func:`leaf_inode` | a leaf's kind, size and data; an external file's overlay xattrs and chunk size (below) |
| :class:`XattrNames` | an xattr name as EROFS stores it: prefix index, suffix, name-filter bit |
| :func:`split_xattrs` | per inode: shared ids, local entries, name filter, xattr area size |
| :func:`dir_chunks`, :func:`dirent_block` | directory entries cut into full blocks and a last chunk, inline when at most half a block |
| :func:`emit_data_blocks` | data blocks in inode order: directory, file and symlink blocks, one-block chunk tables |
| :func:`superblock_parts` | the composefs header, the padding up to 1024 and the superblock |

An external file (size > 0, no inline content) gets ``trusted.overlay.metacopy`` (the fs-verity
header and digest; empty without a digest) and ``trusted.overlay.redirect`` (``/`` + backing path,
else ``/xx/rest`` of the digest); its chunk is the smallest power of two >= its size, at least 4096.

Limits: inline files hold at most ``MAX_INLINE_CONTENT_BYTES`` (what mkcomposefs and its reader
accept), symlink targets ``MAX_SYMLINK_TARGET_BYTES``, xattr values ``MAX_XATTR_VALUE_BYTES``;
entry names are 1..255 bytes without ``/`` or NUL, never ``.`` or ``..``.
"""

from __future__ import annotations

import binascii
import struct
from typing import Dict, List, Tuple

from ansible_collections.bootc.composefs.plugins.module_utils.errors import FormatError
from ansible_collections.bootc.composefs.plugins.module_utils.formats.erofs import layout as L
from ansible_collections.bootc.composefs.plugins.module_utils.formats.tree import (
    Device,
    Fifo,
    RegularFile,
    Socket,
    Stat,
    Symlink,
)

__all__ = [
    "MAX_INLINE_CONTENT_BYTES",
    "MAX_SYMLINK_TARGET_BYTES",
    "MAX_XATTR_VALUE_BYTES",
    "Inode",
    "check_names",
    "verity_params",
    "leaf_inode",
    "entry_name",
    "XattrNames",
    "split_xattrs",
    "dir_chunks",
    "check_extended",
    "dirent_block",
    "emit_data_blocks",
    "superblock_parts",
]

MAX_INLINE_CONTENT_BYTES = 5000  # LCFS_INLINE_CONTENT_MAX: the C reader refuses longer inline files
MAX_SYMLINK_TARGET_BYTES = 4095  # PATH_MAX - 1
MAX_XATTR_VALUE_BYTES = 0xFFFF
MAX_U16 = 0xFFFF
MAX_U32 = 0xFFFFFFFF
U64_MASK = (1 << 64) - 1
_B = L.BLOCK_SIZE
HALF_BLOCK = L.BLOCK_SIZE // 2
INODES_START = L.SUPERBLOCK_OFFSET + L.SUPERBLOCK.size

S_IFREG, S_IFDIR, S_IFLNK = 0o100000, 0o040000, 0o120000
S_IFCHR, S_IFBLK, S_IFIFO, S_IFSOCK = 0o020000, 0o060000, 0o010000, 0o140000
DOT_NAMES = (b".", b"..")
ZEROS = bytes(_B)
_U16 = struct.Struct("<H")
_FILE_TYPES = L.FILE_TYPE_BY_IFMT
_OVERLAY_PREFIX = L.XATTR_OVERLAY_PREFIX
_METACOPY = L.XATTR_METACOPY
_REDIRECT = L.XATTR_REDIRECT
_ESCAPED_PREFIX = L.XATTR_ESCAPED_PREFIX
_MAX_XATTR_AREA = L.xattr_area_size(MAX_U16)


class Inode:
    """One inode being laid out (slots: this is the per-file hot path of ``bench/bench_erofs.py``)."""

    __slots__ = ("kind", "mode", "uid", "gid", "mtime", "nsec", "nlink", "size", "rdev", "pairs", "data", "entries",
                 "n_blocks", "tail", "compact", "nid", "blkaddr", "chunks", "xattr_size", "shared", "local",
                 "name_filter", "chunk_lists", "pad", "place")

    def __init__(self, kind: int, stat: Stat, nlink: int) -> None:
        self.kind = kind
        self.mode = kind | (stat.mode & 0o7777)
        self.uid = stat.uid
        self.gid = stat.gid
        self.mtime = stat.mtime
        self.nsec = stat.mtime_nsec
        self.nlink = nlink
        self.size = self.rdev = self.chunks = self.n_blocks = self.tail = self.blkaddr = 0
        self.data = b""
        self.entries = None
        xattrs = stat.xattrs
        if not xattrs:
            self.pairs = []
        elif _OVERLAY_PREFIX in b"".join(xattrs):  # cheap pre-check (C loops) before the exact one
            self.pairs = [(_ESCAPED_PREFIX + key[16:] if key.startswith(_OVERLAY_PREFIX) else key, value)
                          for key, value in xattrs.items()]
        else:
            self.pairs = list(xattrs.items())


def check_names(entries: Dict[bytes, object]) -> None:
    """Raise FormatError unless every entry name is 1..255 bytes without '/' or NUL, not . or .."""
    if not entries:
        return
    joined = b"\0".join(entries)
    if (b"/" in joined or joined.count(b"\0") != len(entries) - 1 or max(map(len, entries)) > 255
            or b"" in entries or b"." in entries or b".." in entries):
        bad = [name for name in entries if not name or len(name) > 255 or b"/" in name or b"\0" in name or name in DOT_NAMES]
        raise FormatError("invalid directory entry name %r" % (bad[0] if bad else b"",))


def verity_params(algorithm) -> Tuple[int, bytes, object]:
    """What external files need of the fs-verity algorithm: (digest size, metacopy header, algorithm)."""
    return algorithm.digest_size, L.encode_metacopy(bytes(algorithm.digest_size), algorithm.kernel_id)[:4], algorithm


def leaf_inode(leaf, verity: Tuple[int, bytes, object], escape_whiteout: bool) -> Inode:
    """The inode of one leaf: kind, size, data and the overlay xattrs mkcomposefs adds."""
    cls = type(leaf)
    if cls is RegularFile:
        node = Inode(S_IFREG, leaf.stat, 1)
        if leaf.content is not None:
            node.size = len(leaf.content)
            node.data = bytes(leaf.content)
            if node.size > MAX_INLINE_CONTENT_BYTES:
                raise FormatError("inline file of %d bytes exceeds %d" % (node.size, MAX_INLINE_CONTENT_BYTES))
        elif leaf.size:
            size = node.size = leaf.size
            if not 0 < size < 1 << 64:
                raise FormatError("file size %r out of range" % (size,))
            bits = (size - 1).bit_length()  # layout.chunk_bits, inlined: this is the hot path
            bits = 12 if bits < 12 else (bits if bits < 43 else 43)
            node.rdev = bits - 12  # the chunk format, kept in the (unused) rdev slot
            chunks = node.chunks = ((size - 1) >> bits) + 1
            if chunks > L.MAX_CHUNKS:
                raise FormatError("external file of %d bytes needs more than %d chunks" % (size, L.MAX_CHUNKS))
            digest = leaf.fsverity_digest
            backing = leaf.backing_path
            pairs = node.pairs
            if digest is None:
                pairs.append((_METACOPY, b""))
            elif len(digest) != verity[0]:
                raise FormatError("fs-verity digest of %d bytes, %s needs %d" % (len(digest), verity[2].name, verity[0]))
            else:
                pairs.append((_METACOPY, verity[1] + digest))
                if backing is None:  # "/xx/rest": hexlify puts the separator before the last N-1 bytes
                    pairs.append((_REDIRECT, b"/" + binascii.hexlify(digest, b"/", len(digest) - 1)))
            if backing:
                pairs.append((_REDIRECT, b"/" + bytes(backing)))
        return node
    if cls is Symlink:
        node = Inode(S_IFLNK, leaf.stat, 1)
        target = bytes(leaf.target)
        if not target or len(target) > MAX_SYMLINK_TARGET_BYTES or b"\0" in target:
            raise FormatError("symlink target must be 1..%d bytes without NUL" % MAX_SYMLINK_TARGET_BYTES)
        node.data = target
        node.size = len(target)
        return node
    if cls is Device:
        kind = leaf.stat.mode & L.S_IFMT
        if kind not in (S_IFCHR, S_IFBLK):
            raise FormatError("device node with mode %o" % leaf.stat.mode)
        if not 0 <= leaf.rdev <= MAX_U32:
            raise FormatError("device number %d does not fit 32 bits" % leaf.rdev)
        if escape_whiteout and kind == S_IFCHR and leaf.rdev == 0:
            node = Inode(S_IFREG, leaf.stat, 1)
            node.pairs.append((L.XATTR_ESCAPED_WHITEOUT, b""))
            node.pairs.append((L.XATTR_USER_WHITEOUT, b""))
            return node
        node = Inode(kind, leaf.stat, 1)
        node.rdev = leaf.rdev
        return node
    if cls is Fifo:
        return Inode(S_IFIFO, leaf.stat, 1)
    if cls is Socket:
        return Inode(S_IFSOCK, leaf.stat, 1)
    raise FormatError("not a tree node: %r" % (leaf,))


def entry_name(entry) -> bytes:
    """Sort key of a directory entry ``(name, inode)``: its name."""
    return entry[0]


class XattrNames:
    """Per-image cache: how each xattr name is stored (index, suffix, name-filter bit, entry head)."""

    def __init__(self, lustre: bool) -> None:
        self.lustre = lustre
        self.known: Dict[bytes, Tuple[int, bytes, int, bytes]] = {}

    def get(self, key: bytes) -> Tuple[int, bytes, int, bytes]:
        found = self.known.get(key)
        if found is None:
            if not key or b"\0" in key or len(key) > 255:
                raise FormatError("invalid xattr name %r" % (key,))
            index, suffix = L.split_xattr_name(key, self.lustre)
            found = self.known[key] = (index, suffix, L.xattr_filter_bit(index, suffix), bytes((len(suffix), index)))
        return found

    def entry(self, key: bytes, value: bytes) -> bytes:
        _index, suffix, _bit, head = self.get(key)
        size = len(value)
        if size > MAX_XATTR_VALUE_BYTES:
            raise FormatError("xattr %r value of %d bytes exceeds %d" % (key, size, MAX_XATTR_VALUE_BYTES))
        return b"".join((head, _U16.pack(size), suffix, value, ZEROS[:-(len(suffix) + size) % 4]))


def split_xattrs(nodes: List[Inode], names: XattrNames, offsets, max_shared: int) -> None:
    """Per inode: shared table offsets, encoded local entries, name filter and xattr area size.

    Shaped for speed (``bench/bench_erofs.py``): the bytes before and after a local value depend only
    on the name and the value's length, so they are built once per (name, length).
    """
    known = names.known
    frames: Dict[Tuple[bytes, int], Tuple[bytes, bytes]] = {}
    for node in nodes:
        pairs = node.pairs
        if not pairs:
            node.xattr_size = 0
            continue
        shared = []
        local = []
        name_filter = 0
        size = L.XATTR_HEADER_SIZE
        for pair in pairs:
            key, value = pair
            info = known.get(key) or names.get(key)
            name_filter |= info[2]
            offset = offsets.get(pair) if offsets else None
            if offset is not None and len(shared) < max_shared:
                shared.append(offset)
                size += 4
                continue
            frame_key = (key, len(value))
            frame = frames.get(frame_key)
            if frame is None:
                frame = frames[frame_key] = _entry_frame(info, len(value), key)
            entry = frame[0] + value + frame[1]
            local.append(entry)
            size += len(entry)
        node.shared = shared
        node.local = local[0] if len(local) == 1 else b"".join(local)
        node.name_filter = name_filter
        node.xattr_size = size
        if size > _MAX_XATTR_AREA:
            raise FormatError("xattrs of one inode exceed the EROFS limit")


def _entry_frame(info: Tuple[int, bytes, int, bytes], value_size: int, key: bytes) -> Tuple[bytes, bytes]:
    """(header + name suffix, padding) of an xattr entry whose value has ``value_size`` bytes."""
    if value_size > MAX_XATTR_VALUE_BYTES:
        raise FormatError("xattr %r value of %d bytes exceeds %d" % (key, value_size, MAX_XATTR_VALUE_BYTES))
    suffix = info[1]
    return info[3] + _U16.pack(value_size) + suffix, ZEROS[:-(len(suffix) + value_size) % 4]


def dir_chunks(node: Inode) -> None:
    """Split a directory's entries into full blocks and a last chunk; set blocks and tail size."""
    chunks = []
    current = []
    used = 0
    for entry in node.entries:
        size = 12 + len(entry[0])
        if used + size > _B:
            chunks.append(current)
            current = []
            used = 0
        current.append(entry)
        used += size
    node.n_blocks = len(chunks)
    if used > HALF_BLOCK:
        node.n_blocks += 1
        used = 0
    chunks.append(current)
    node.chunk_lists = chunks
    node.tail = used


def check_extended(node: Inode) -> None:
    """Raise FormatError unless the inode's metadata fits an extended inode."""
    if not (0 <= node.uid <= MAX_U32 and 0 <= node.gid <= MAX_U32 and node.nlink <= MAX_U32
            and 0 <= node.nsec <= MAX_U32 and -(1 << 63) <= node.mtime < 1 << 63 and 0 <= node.mode <= MAX_U16):
        raise FormatError("inode metadata out of range (mode %r, uid %r, gid %r, mtime %r.%r, nlink %r)"
                          % (node.mode, node.uid, node.gid, node.mtime, node.nsec, node.nlink))


def dirent_block(chunk) -> bytes:
    """Encode one block (or inline tail) of directory entries ``(name, inode)``."""
    file_types = _FILE_TYPES
    return L.encode_dirents([(name, node.nid, file_types[node.kind]) for name, node in chunk])


def emit_data_blocks(nodes: List[Inode], out: List[bytes]) -> None:
    """The data blocks, in inode order, each padded to the block size."""
    for node in nodes:
        if not node.n_blocks:
            continue
        if node.kind == S_IFDIR:
            blocks = [dirent_block(chunk) for chunk in node.chunk_lists[:node.n_blocks]]
        elif node.chunks:
            blocks = [L.NULL_CHUNK * (_B // 4)]
        else:
            blocks = [node.data[index * _B:(index + 1) * _B] for index in range(node.n_blocks)]
        for block in blocks:
            out.append(block)
            out.append(ZEROS[:-len(block) % _B])


def superblock_parts(nodes: List[Inode], composefs_version: int, flags: int, build_time: Tuple[int, int],
                     blocks: int, xattr_blkaddr: int) -> List[bytes]:
    """The composefs header, zeros up to the superblock, and the superblock of an image of ``blocks`` blocks."""
    header = L.encode_header(L.ComposefsHeader(L.COMPOSEFS_MAGIC, L.COMPOSEFS_HEADER_VERSION, flags, composefs_version))
    superblock = L.encode_superblock(L.Superblock(
        L.EROFS_MAGIC, 0, L.FEATURE_COMPAT_MTIME | L.FEATURE_COMPAT_XATTR_FILTER, L.LG_BLOCK_SIZE, 0, nodes[0].nid,
        len(nodes), build_time[0] & U64_MASK, build_time[1], blocks, 0, xattr_blkaddr, bytes(16), bytes(16),
        0, 0, 0, 0, 0, 0, 0, 0, 0))
    return [header, bytes(L.SUPERBLOCK_OFFSET - len(header)), superblock]
