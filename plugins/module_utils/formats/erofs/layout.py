# -*- coding: utf-8 -*-
# Copyright: (c) 2026, bootc.composefs maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""On-disk structures of composefs EROFS images: constants, records, pure parse/encode helpers.

Layer: formats. Spec: ``composefs-repo.md`` section 11. Upstream: C composefs 1.0.8
``libcomposefs/lcfs-writer-erofs.c``, ``lcfs-erofs.h``, ``erofs_fs.h``; composefs-rs 0.9
``crates/composefs/src/erofs/format.rs``. ``reader.py`` and ``writer.py`` build on this file; the
rules for *where* things go (inode order, padding, sharing) are described in ``writer.py``.

All integers are little-endian. Block size B = 4096 (``blkszbits`` 12); an inode slot is 32 bytes.

Image framing:

====== ==== ===========================================================================
offset size structure
====== ==== ===========================================================================
0      32   composefs header: u32 magic 0xd078629a, u32 version 1, u32 flags (bit 0: an inode
            has a POSIX ACL xattr), u32 composefs_version (0, 1 or 2), 16 zero bytes
32     992  zeros
1024   128  EROFS superblock (below)
1152   ...  inode table: inode ``nid`` starts at ``meta_blkaddr * B + 32 * nid`` (meta_blkaddr 0)
...    ...  shared xattr table: shared xattr ``id`` starts at ``xattr_blkaddr * B + 4 * id``
...    ...  data blocks (block aligned): directory blocks, file blocks, chunk tables
====== ==== ===========================================================================

Superblock (offsets from 1024):

====== ==== ======= ==================================================================
offset size type    field
====== ==== ======= ==================================================================
0      4    u32     magic 0xe0f5e1e2
4      4    u32     checksum (0: composefs sets no ``sb_chksum`` feature)
8      4    u32     feature_compat: 0x1 sb_chksum, 0x2 mtime, 0x4 xattr_filter (writers: 0x6)
12     1    u8      blkszbits (12)
13     1    u8      extslots (0)
14     2    u16     root_nid
16     8    u64     inos: number of inodes
24     8    u64     build_time: mtime (seconds, two's complement) of every compact inode
32     4    u32     build_time_nsec
36     4    u32     blocks: image size in blocks
40     4    u32     meta_blkaddr (0)
44     4    u32     xattr_blkaddr (V0/V1: block holding the inode table end; V2: 0)
48     16   bytes   uuid (zeros)
64     16   bytes   volume_name (zeros)
80     4    u32     feature_incompat (0; 0x4 chunked_file is the only bit a reader accepts)
84     2    u16     available_compr_algs (0)
86     2    u16     extra_devices (0)
88     2    u16     devt_slotoff
90     1    u8      dirblkbits (0)
91     1    u8      xattr_prefix_count (0)
92     4    u32     xattr_prefix_start
96     8    u64     packed_nid (0)
104    1    u8      xattr_filter_reserved
105    23   bytes   reserved
====== ==== ======= ==================================================================

Inode header. Bit 0 of ``format`` picks the layout (0 compact, 1 extended); bits 1..3 the data
layout (0 FLAT_PLAIN: data in blocks from ``u``; 2 FLAT_INLINE: ``size // B`` blocks from ``u`` and
the last ``size % B`` bytes right after the xattrs; 4 CHUNK_BASED: ``u`` low 5 bits = chunk bits -
12, chunk table after the xattrs or in one block). ``u`` is the rdev of devices.

Compact inode (32 bytes; its mtime is the superblock's build_time):

====== ==== ==== ==========================================================
offset size type field
====== ==== ==== ==========================================================
0      2    u16  format
2      2    u16  xattr_icount
4      2    u16  mode (type bits included)
6      2    u16  nlink
8      4    u32  size
12     4    u32  mtime offset (0: composefs writers leave it unused)
16     4    u32  u: first data block, rdev, or chunk format
20     4    u32  ino
24     2    u16  uid
26     2    u16  gid
28     4         reserved
====== ==== ==== ==========================================================

Extended inode (64 bytes):

====== ==== ==== ==========================================================
offset size type field
====== ==== ==== ==========================================================
0      2    u16  format
2      2    u16  xattr_icount
4      2    u16  mode
6      2         reserved
8      8    u64  size
16     4    u32  u
20     4    u32  ino
24     4    u32  uid
28     4    u32  gid
32     8    u64  mtime (seconds, two's complement)
40     4    u32  mtime_nsec
44     4    u32  nlink
48     16        reserved
====== ==== ==== ==========================================================

Xattr area, right after the inode header, ``0`` bytes if ``xattr_icount`` is 0 else
``12 + 4 * (xattr_icount - 1)``: u32 name_filter (an inverted bloom filter: bit
``xxh32(suffix, 0x25bbe08f + name_index) % 32`` is cleared for every name present), u8
shared_count, 7 reserved, ``shared_count`` u32 shared ids, then local entries until the end of the
area. Entry: u8 name_len, u8 name_index, u16 value_size, the name suffix, the value, zero padding
to 4 bytes. Name prefixes by index: 0 none, 1 ``user.``, 2 ``system.posix_acl_access``, 3
``system.posix_acl_default``, 4 ``trusted.``, 5 ``lustre.``, 6 ``security.``. C mkcomposefs (V0/V1)
never uses 5 (``lustre.*`` keys are stored whole under index 0); composefs-rs V2 does.

Directory data (every block, and the inline tail as a short block): 12-byte dirents
``{u64 nid, u16 nameoff, u8 file_type, u8 reserved}`` then the names, unterminated. The entry count is
``dirent[0].nameoff // 12``; name ``i`` spans ``[nameoff_i, nameoff_i+1)``, the last one runs to the
first NUL or the end of the block. ``.`` and ``..`` are entries. Entries are sorted by name bytes.
file_type: 1 regular, 2 directory, 3 char device, 4 block device, 5 fifo, 6 socket, 7 symlink.

composefs conventions (``overlayfs`` reads these):

- external file: CHUNK_BASED, one or more null chunks (0xffffffff), xattrs
  ``trusted.overlay.metacopy`` = ``{u8 version 0, u8 length 4+N, u8 flags 0, u8 algorithm 1|2}`` +
  the N-byte fs-verity digest (empty value if the digest is unknown) and
  ``trusted.overlay.redirect`` = ``/`` + backing path (``/xx/rest`` of the digest);
- a user xattr ``trusted.overlay.X`` is stored as ``trusted.overlay.overlay.X``;
- V0/V1: the root has ``trusted.overlay.opaque=y`` and 256 whiteout stubs ``00``..``ff`` (character
  devices 0:0 copying the root's owner, mtime and ``security.selinux``); a user whiteout (character
  device 0:0) is stored as an empty regular file with ``trusted.overlay.overlay.whiteout`` and
  ``user.overlay.whiteout`` (both empty), its directory gets ``trusted.overlay.overlay.whiteouts``
  and ``user.overlay.whiteouts`` (empty) and, from version 1 on, ``trusted.overlay.overlay.opaque``
  and ``user.overlay.opaque`` (``x``).

Versions: V0 and V1 (C ``mkcomposefs``, default and ``--min-version=1``) share one layout and differ
in the header's composefs_version (V0 writes 1 anyway when the tree holds a whiteout). V2 is
composefs-rs's legacy layout: extended inodes only, depth-first inode order, no stub table, no
whiteout escaping, build_time 0, xattr_blkaddr 0 and absolute shared xattr ids.

Not supported (rejected by the reader): compression, extra devices, custom xattr prefixes, packed
inodes, block sizes other than 4096, images larger than 1 GiB.
"""

from __future__ import annotations

import struct
from typing import List, NamedTuple, Optional, Tuple

from ansible_collections.bootc.composefs.plugins.module_utils.errors import FormatError

__all__ = [
    "BLOCK_SIZE",
    "SLOT_SIZE",
    "MAX_IMAGE_BYTES",
    "ComposefsHeader",
    "Superblock",
    "InodeHeader",
    "XattrEntry",
    "Dirent",
    "parse_header",
    "encode_header",
    "parse_superblock",
    "encode_superblock",
    "parse_inode_header",
    "encode_inode_header",
    "parse_xattr_entry",
    "encode_xattr_entry",
    "parse_dirents",
    "encode_dirents",
    "split_xattr_name",
    "join_xattr_name",
    "xattr_filter_bit",
    "xattr_area_size",
    "xattr_icount",
    "encode_metacopy",
    "parse_metacopy",
    "chunk_bits",
    "xxh32",
    "round_up",
]

# --- sizes -----------------------------------------------------------------------------------------

LG_BLOCK_SIZE = 12
BLOCK_SIZE = 1 << LG_BLOCK_SIZE
SLOT_SIZE = 32  # inode alignment; nid = byte offset // SLOT_SIZE
MAX_IMAGE_BYTES = 1 << 30  # composefs-rs refuses larger images; so do we (bounds all parsing work)

# --- composefs header ------------------------------------------------------------------------------

COMPOSEFS_MAGIC = 0xD078629A
COMPOSEFS_HEADER_VERSION = 1
COMPOSEFS_FLAG_HAS_ACL = 0x1
COMPOSEFS_VERSIONS = (0, 1, 2)
HEADER = struct.Struct("<IIII16x")  # magic, version, flags, composefs_version, unused

# --- superblock ----------------------------------------------------------------------------------

SUPERBLOCK_OFFSET = 1024
EROFS_MAGIC = 0xE0F5E1E2
FEATURE_COMPAT_SB_CHKSUM = 0x1
FEATURE_COMPAT_MTIME = 0x2
FEATURE_COMPAT_XATTR_FILTER = 0x4
FEATURE_COMPAT_KNOWN = FEATURE_COMPAT_SB_CHKSUM | FEATURE_COMPAT_MTIME | FEATURE_COMPAT_XATTR_FILTER
FEATURE_INCOMPAT_CHUNKED_FILE = 0x4
SUPERBLOCK = struct.Struct("<IIIBBHQQIIII16s16sIHHHBBIQB23x")  # see the table in the docstring

# --- inodes --------------------------------------------------------------------------------------

INODE_LAYOUT_EXTENDED = 0x1
LAYOUT_FLAT_PLAIN = 0
LAYOUT_FLAT_INLINE = 2
LAYOUT_CHUNK_BASED = 4
LAYOUT_NAMES = {LAYOUT_FLAT_PLAIN: "flat-plain", LAYOUT_FLAT_INLINE: "flat-inline", LAYOUT_CHUNK_BASED: "chunk-based"}
COMPACT_INODE = struct.Struct("<HHHHIIIIHH4x")  # format, xattr_icount, mode, nlink, size, mtime, u, ino, uid, gid
EXTENDED_INODE = struct.Struct("<HHHHQIIIIQII16x")  # format, icount, mode, reserved, size, u, ino, uid, gid, mtime, nsec, nlink
COMPACT_INODE_SIZE = COMPACT_INODE.size
EXTENDED_INODE_SIZE = EXTENDED_INODE.size
NULL_CHUNK = b"\xff\xff\xff\xff"  # EROFS_NULL_ADDR: a chunk with no data (reads as zeros / redirected)
CHUNK_FORMAT_BLKBITS_MASK = 0x1F
MAX_CHUNKS = 1024  # mkcomposefs limit: the chunk table of an external file fits one block

# --- xattrs --------------------------------------------------------------------------------------

XATTR_HEADER = struct.Struct("<IB7x")  # name_filter, shared_count
XATTR_ENTRY = struct.Struct("<BBH")  # name_len, name_index, value_size
U32 = struct.Struct("<I")
XATTR_HEADER_SIZE = XATTR_HEADER.size
XATTR_ENTRY_HEADER_SIZE = XATTR_ENTRY.size
XATTR_FILTER_SEED = 0x25BBE08F
MAX_SHARED_PER_INODE = 128  # EROFS_XATTR_LONG_PREFIX: mkcomposefs shares at most this many per inode
XATTR_PREFIXES = (b"", b"user.", b"system.posix_acl_access", b"system.posix_acl_default", b"trusted.", b"lustre.", b"security.")
XATTR_INDEX_LUSTRE = 5
# lookup order for writers: C mkcomposefs 1.0.8 knows these five prefixes (no lustre.)
_WRITER_PREFIXES = ((b"user.", 1), (b"system.posix_acl_access", 2), (b"system.posix_acl_default", 3), (b"trusted.", 4), (b"security.", 6))

# overlayfs xattrs composefs writes (full names)
XATTR_METACOPY = b"trusted.overlay.metacopy"
XATTR_REDIRECT = b"trusted.overlay.redirect"
XATTR_OPAQUE = b"trusted.overlay.opaque"
XATTR_OVERLAY_PREFIX = b"trusted.overlay."
XATTR_ESCAPED_PREFIX = b"trusted.overlay.overlay."
XATTR_ESCAPED_WHITEOUT = b"trusted.overlay.overlay.whiteout"
XATTR_ESCAPED_WHITEOUTS = b"trusted.overlay.overlay.whiteouts"
XATTR_ESCAPED_OPAQUE = b"trusted.overlay.overlay.opaque"
XATTR_USER_WHITEOUT = b"user.overlay.whiteout"
XATTR_USER_WHITEOUTS = b"user.overlay.whiteouts"
XATTR_USER_OPAQUE = b"user.overlay.opaque"
XATTR_POSIX_ACL_ACCESS = b"system.posix_acl_access"
XATTR_POSIX_ACL_DEFAULT = b"system.posix_acl_default"
XATTR_SELINUX = b"security.selinux"
_METACOPY_HEADER = struct.Struct("<BBBB")  # version 0, length, flags 0, fs-verity algorithm

# --- directories ---------------------------------------------------------------------------------

DIRENT = struct.Struct("<QHBx")  # nid, nameoff, file_type
DIRENT_SIZE = DIRENT.size
FT_UNKNOWN, FT_REG, FT_DIR, FT_CHR, FT_BLK, FT_FIFO, FT_SOCK, FT_LNK = range(8)
S_IFMT = 0o170000
FILE_TYPE_BY_IFMT = {0o100000: FT_REG, 0o040000: FT_DIR, 0o020000: FT_CHR, 0o060000: FT_BLK,
                     0o010000: FT_FIFO, 0o140000: FT_SOCK, 0o120000: FT_LNK}


class ComposefsHeader(NamedTuple):
    magic: int
    version: int
    flags: int
    composefs_version: int


class Superblock(NamedTuple):
    magic: int
    checksum: int
    feature_compat: int
    blkszbits: int
    extslots: int
    root_nid: int
    inos: int
    build_time: int
    build_time_nsec: int
    blocks: int
    meta_blkaddr: int
    xattr_blkaddr: int
    uuid: bytes
    volume_name: bytes
    feature_incompat: int
    available_compr_algs: int
    extra_devices: int
    devt_slotoff: int
    dirblkbits: int
    xattr_prefix_count: int
    xattr_prefix_start: int
    packed_nid: int
    xattr_filter_reserved: int


class InodeHeader(NamedTuple):
    """One inode header, compact or extended (``mtime`` of a compact inode is build_time's)."""

    extended: bool
    data_layout: int
    xattr_icount: int
    mode: int
    nlink: int
    size: int
    u: int
    ino: int
    uid: int
    gid: int
    mtime: int
    mtime_nsec: int

    @property
    def header_size(self) -> int:
        return EXTENDED_INODE_SIZE if self.extended else COMPACT_INODE_SIZE


class XattrEntry(NamedTuple):
    name_index: int
    suffix: bytes
    value: bytes


class Dirent(NamedTuple):
    name: bytes
    nid: int
    file_type: int


def round_up(value: int, alignment: int) -> int:
    return (value + alignment - 1) // alignment * alignment


def _need(buf, offset: int, size: int, what: str) -> None:
    if offset < 0 or offset + size > len(buf):
        raise FormatError("%s (%d bytes) extends past the end of the image (%d bytes)" % (what, size, len(buf)), offset)


# --- header and superblock -------------------------------------------------------------------------


def parse_header(buf, offset: int = 0) -> ComposefsHeader:
    """Return the composefs header at ``offset`` (fields unchecked)."""
    _need(buf, offset, HEADER.size, "composefs header")
    return ComposefsHeader(*HEADER.unpack_from(buf, offset))


def encode_header(header: ComposefsHeader) -> bytes:
    return HEADER.pack(*header)


def parse_superblock(buf, offset: int = SUPERBLOCK_OFFSET) -> Superblock:
    """Return the EROFS superblock at ``offset`` (fields unchecked)."""
    _need(buf, offset, SUPERBLOCK.size, "EROFS superblock")
    return Superblock(*SUPERBLOCK.unpack_from(buf, offset))


def encode_superblock(superblock: Superblock) -> bytes:
    return SUPERBLOCK.pack(*superblock)


# --- inodes --------------------------------------------------------------------------------------


def _signed64(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def parse_inode_header(buf, offset: int, build_time: int = 0, build_time_nsec: int = 0) -> InodeHeader:
    """Return the inode header at ``offset``; compact inodes take ``build_time`` as their mtime."""
    _need(buf, offset, COMPACT_INODE_SIZE, "inode header")
    i_format = buf[offset] | buf[offset + 1] << 8
    layout = (i_format >> 1) & 0x7
    if i_format & INODE_LAYOUT_EXTENDED:
        _need(buf, offset, EXTENDED_INODE_SIZE, "extended inode header")
        (_format, icount, mode, _reserved, size, u, ino, uid, gid, mtime, nsec, nlink) = EXTENDED_INODE.unpack_from(buf, offset)
        return InodeHeader(True, layout, icount, mode, nlink, size, u, ino, uid, gid, _signed64(mtime), nsec)
    (_format, icount, mode, nlink, size, _mtime, u, ino, uid, gid) = COMPACT_INODE.unpack_from(buf, offset)
    return InodeHeader(False, layout, icount, mode, nlink, size, u, ino, uid, gid, _signed64(build_time), build_time_nsec)


def encode_inode_header(inode: InodeHeader) -> bytes:
    """Inverse of ``parse_inode_header`` (a compact inode's mtime is not stored)."""
    if inode.extended:
        return EXTENDED_INODE.pack(
            inode.data_layout << 1 | INODE_LAYOUT_EXTENDED, inode.xattr_icount, inode.mode, 0, inode.size, inode.u,
            inode.ino, inode.uid, inode.gid, inode.mtime & 0xFFFFFFFFFFFFFFFF, inode.mtime_nsec, inode.nlink)
    return COMPACT_INODE.pack(
        inode.data_layout << 1, inode.xattr_icount, inode.mode, inode.nlink, inode.size, 0, inode.u, inode.ino, inode.uid, inode.gid)


def chunk_bits(size: int) -> int:
    """Chunk size bits mkcomposefs picks for an external file: one chunk if possible, >= a block."""
    bits = (size - 1).bit_length()
    if bits < LG_BLOCK_SIZE:
        return LG_BLOCK_SIZE
    return bits if bits < LG_BLOCK_SIZE + CHUNK_FORMAT_BLKBITS_MASK else LG_BLOCK_SIZE + CHUNK_FORMAT_BLKBITS_MASK


# --- xattrs --------------------------------------------------------------------------------------


def xattr_area_size(icount: int) -> int:
    return 0 if icount == 0 else XATTR_HEADER_SIZE + 4 * (icount - 1)


def xattr_icount(area_size: int) -> int:
    return 0 if area_size == 0 else (area_size - XATTR_HEADER_SIZE) // 4 + 1


def split_xattr_name(name: bytes, lustre: bool = False) -> Tuple[int, bytes]:
    """Return ``(name_index, suffix)`` for a full xattr name, as the chosen writer stores it.

    ``lustre=False`` is C mkcomposefs (V0/V1), ``True`` composefs-rs V2 (knows ``lustre.``).
    """
    for prefix, index in _WRITER_PREFIXES:
        if name.startswith(prefix):
            return index, name[len(prefix):]
    if lustre and name.startswith(b"lustre."):
        return XATTR_INDEX_LUSTRE, name[7:]
    return 0, name


def join_xattr_name(name_index: int, suffix: bytes) -> bytes:
    if name_index >= len(XATTR_PREFIXES):
        raise FormatError("xattr name index %d is not a known prefix" % name_index)
    return XATTR_PREFIXES[name_index] + suffix


def parse_xattr_entry(buf, offset: int, end: int) -> Tuple[XattrEntry, int]:
    """Return the xattr entry at ``offset`` (which must end by ``end``) and the next entry's offset."""
    if offset + XATTR_ENTRY_HEADER_SIZE > end or end > len(buf):
        raise FormatError("xattr entry header extends past its area", offset)
    name_len, name_index, value_size = XATTR_ENTRY.unpack_from(buf, offset)
    start = offset + XATTR_ENTRY_HEADER_SIZE
    stop = start + name_len + value_size
    if stop > end:
        raise FormatError("xattr entry (%d name, %d value bytes) extends past its area" % (name_len, value_size), offset)
    if name_index >= len(XATTR_PREFIXES):
        raise FormatError("xattr name index %d is not a known prefix" % name_index, offset)
    entry = XattrEntry(name_index, bytes(buf[start:start + name_len]), bytes(buf[start + name_len:stop]))
    return entry, offset + round_up(stop - offset, 4)


def encode_xattr_entry(name_index: int, suffix: bytes, value: bytes) -> bytes:
    raw = XATTR_ENTRY.pack(len(suffix), name_index, len(value)) + suffix + value
    return raw + b"\0" * (-len(raw) % 4)


def xxh32(data: bytes, seed: int) -> int:
    """32-bit xxHash of ``data`` (used only for the short xattr name filter, so a plain loop)."""
    p1, p2, p3, p4, p5, mask = 2654435761, 2246822519, 3266489917, 668265263, 374761393, 0xFFFFFFFF
    length = len(data)
    pos = 0
    if length >= 16:
        acc = [(seed + p1 + p2) & mask, (seed + p2) & mask, seed & mask, (seed - p1) & mask]
        while pos + 16 <= length:
            for lane in range(4):
                value = (acc[lane] + U32.unpack_from(data, pos + 4 * lane)[0] * p2) & mask
                acc[lane] = ((value << 13 | value >> 19) & mask) * p1 & mask
            pos += 16
        hashed = sum(((v << r) | (v >> (32 - r))) & mask for v, r in zip(acc, (1, 7, 12, 18)))
    else:
        hashed = seed + p5
    hashed = (hashed + length) & mask
    while pos + 4 <= length:
        hashed = (hashed + U32.unpack_from(data, pos)[0] * p3) & mask
        hashed = ((hashed << 17 | hashed >> 15) & mask) * p4 & mask
        pos += 4
    while pos < length:
        hashed = (hashed + data[pos] * p5) & mask
        hashed = ((hashed << 11 | hashed >> 21) & mask) * p1 & mask
        pos += 1
    hashed ^= hashed >> 15
    hashed = hashed * p2 & mask
    hashed ^= hashed >> 13
    hashed = hashed * p3 & mask
    return hashed ^ (hashed >> 16)


def xattr_filter_bit(name_index: int, suffix: bytes) -> int:
    """The name-filter bit (a power of two) an xattr clears in its inode's ``name_filter``."""
    return 1 << (xxh32(suffix, XATTR_FILTER_SEED + name_index) & 31)


def encode_metacopy(fsverity_digest: bytes, kernel_id: int) -> bytes:
    """``trusted.overlay.metacopy`` value naming ``fsverity_digest`` (algorithm by kernel id)."""
    return _METACOPY_HEADER.pack(0, 4 + len(fsverity_digest), 0, kernel_id) + fsverity_digest


def parse_metacopy(value: bytes) -> Optional[Tuple[int, bytes]]:
    """Return ``(kernel_id, fsverity_digest)`` from a metacopy value, None if it names no digest."""
    if len(value) < 4:
        return None
    version, length, flags, kernel_id = _METACOPY_HEADER.unpack_from(value, 0)
    if version != 0 or flags != 0 or length != len(value) or (kernel_id, length) not in ((1, 36), (2, 68)):
        return None
    return kernel_id, bytes(value[4:])


# --- directories ---------------------------------------------------------------------------------


def parse_dirents(buf, offset: int, size: int) -> List[Dirent]:
    """Return the entries of the directory block (or inline tail) ``buf[offset:offset+size]``."""
    _need(buf, offset, size, "directory block")
    if size < DIRENT_SIZE:
        raise FormatError("directory block of %d bytes holds no entry" % size, offset)
    first = buf[offset + 8] | buf[offset + 9] << 8
    if first == 0 or first % DIRENT_SIZE or first > size:
        raise FormatError("directory block: first name offset %d is not a multiple of 12 within the block" % first, offset)
    count = first // DIRENT_SIZE
    heads = [DIRENT.unpack_from(buf, offset + DIRENT_SIZE * i) for i in range(count)]
    entries = []
    for i, (nid, nameoff, file_type) in enumerate(heads):
        end = heads[i + 1][1] if i + 1 < count else size
        if nameoff < first or end > size or end <= nameoff:
            raise FormatError("directory entry %d: name [%d, %d) is not inside the block" % (i, nameoff, end), offset)
        name = bytes(buf[offset + nameoff:offset + end])
        if i + 1 == count:
            name = name.split(b"\0", 1)[0]
        if not name or b"/" in name or b"\0" in name:
            raise FormatError("directory entry %d: invalid name %r" % (i, name), offset)
        entries.append(Dirent(name, nid, file_type))
    return entries


def encode_dirents(entries: List[Tuple[bytes, int, int]]) -> bytes:
    """Dirents then names for ``(name, nid, file_type)`` entries (no padding)."""
    nameoff = DIRENT_SIZE * len(entries)
    heads = []
    for name, nid, file_type in entries:
        heads.append(DIRENT.pack(nid, nameoff, file_type))
        nameoff += len(name)
    return b"".join(heads) + b"".join(entry[0] for entry in entries)
