# -*- coding: utf-8 -*-
# Copyright: (c) 2026, bootc.composefs maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Write a ``tree.Directory`` as a composefs EROFS image (V0, V1 byte-identical to mkcomposefs; V2).

Layer: formats. Structures are described in ``layout.py``; this file holds the placement rules,
those of C composefs 1.0.8 ``libcomposefs/lcfs-writer-erofs.c`` (``lcfs_write_erofs_to``) and
``lcfs-writer.c`` (``lcfs_compute_tree``) for V0/V1, of composefs-rs 0.9
``crates/composefs/src/erofs/writer.rs`` for V2. Spec: ``composefs-repo.md`` section 11.8.

V0/V1, in the order mkcomposefs applies them:

1. Rewrite: user ``trusted.overlay.*`` xattrs become ``trusted.overlay.overlay.*``; an external file
   (size > 0, no inline content) gets ``trusted.overlay.metacopy`` and ``trusted.overlay.redirect``
   (``/`` + backing path, only if there is one); a user whiteout (character device 0:0) becomes an
   empty regular file with the escaped-whiteout xattrs and marks its directory (see ``layout.py``);
   the root gets ``trusted.overlay.opaque=y`` and the 256 whiteout stubs it does not already hold.
   A tree holding a user whiteout is always written as version 1 (mkcomposefs raises the default
   version 0 to 1 for it).
2. Order: breadth-first from the root, entries sorted by name bytes. A shared leaf (hardlink) is
   one inode, placed where its first path in depth-first sorted order is (where a composefs-info
   dump writes it in full). The inode number (``ino``) is the position in this order. Xattrs of an
   inode are sorted by full name. ``nlink`` is 2 + subdirectories for a directory, the number of
   paths for a leaf. ``build_time`` is the smallest mtime.
3. Shared xattrs: every (name, value) pair used by more than one inode, sorted by name, then value
   length, then value, all descending; an inode refers to at most 128 of them (the first in its
   name order), the rest stay local. The table follows the inode table; ids count 4-byte words from
   the start of the table's block.
4. Inodes: compact (32 bytes) when mtime equals build_time and nlink, uid, gid fit 16 bits and size
   32 bits, else extended (64). Each starts on a 32-byte slot. Inline tails: directory entries that
   do not fill a block (at most 2048 bytes, else one more block), inline file bytes past the last
   full block (same 2048 rule), symlink targets, and the chunk table of an external file (one
   0xffffffff per chunk; a chunk is the smallest power of two >= the size, at least 4096). A tail
   that would cross a block boundary moves its inode forward by the distance to the boundary
   rounded up to 32 bytes; if it still does not fit it becomes a data block. A symlink whose inode,
   xattrs and target would cross a block boundary starts on the next block, and its target moves
   to a data block when the three together reach 4096 bytes.
5. Data blocks, in inode order: full directory blocks, inline file blocks, symlink target blocks,
   the one-block chunk table of an external file with more chunks than fit inline.

V2 (composefs-rs legacy): depth-first order (directory, then its entries in name order, recursing
into subdirectories), extended inodes only, ``ino`` = nid, mtime_nsec 0, build_time 0, no stubs, no
whiteout escaping, ``lustre.`` is a known prefix, metacopy/redirect first then user xattrs in name
order, every repeated xattr shared, in ascending (name index, suffix, value) order with absolute
ids and ``xattr_blkaddr`` 0, external files with one null chunk (chunk format 31; none without a
digest), inline data and symlink targets in the inode with the inline-tail padding of
``pad_inline_tail_v2``. Two departures where composefs-rs would write what fsck.erofs rejects (it
never does for the trees it builds: it inlines at most 64 bytes): inline files of 4096 bytes or
more keep their full blocks apart, and a tail that still crosses a block boundary after the
padding goes to a data block.

Deliberate differences from mkcomposefs (it reads them from the dumpfile, we derive them from the
tree): ``nlink`` of leaves, and which path of a hardlinked leaf is the "original" (see step 2).
Inline content is limited to 5000 bytes (what mkcomposefs and its reader accept).
"""

from __future__ import annotations

import binascii
import struct
from typing import Dict, List, Tuple

from ansible_collections.bootc.composefs.plugins.module_utils.errors import FormatError
from ansible_collections.bootc.composefs.plugins.module_utils.formats import fsverity
from ansible_collections.bootc.composefs.plugins.module_utils.formats.erofs import layout as L
from ansible_collections.bootc.composefs.plugins.module_utils.formats.tree import (
    Device,
    Directory,
    Fifo,
    RegularFile,
    Socket,
    Stat,
    Symlink,
    gc_paused,
)

__all__ = ["write_image", "MAX_INLINE_CONTENT_BYTES", "MAX_SYMLINK_TARGET_BYTES"]

MAX_INLINE_CONTENT_BYTES = 5000  # LCFS_INLINE_CONTENT_MAX: the C reader refuses longer inline files
MAX_SYMLINK_TARGET_BYTES = 4095  # PATH_MAX - 1
MAX_XATTR_VALUE_BYTES = 0xFFFF
_MAX_U16 = 0xFFFF
_MAX_U32 = 0xFFFFFFFF
_U64_MASK = (1 << 64) - 1
_B = L.BLOCK_SIZE
_HALF_BLOCK = L.BLOCK_SIZE // 2
_INODES_START = L.SUPERBLOCK_OFFSET + L.SUPERBLOCK.size

S_IFREG, S_IFDIR, S_IFLNK = 0o100000, 0o040000, 0o120000
S_IFCHR, S_IFBLK, S_IFIFO, S_IFSOCK = 0o020000, 0o060000, 0o010000, 0o140000
_STUB_NAMES = [b"%02x" % i for i in range(256)]
_DOT_NAMES = (b".", b"..")
_ZEROS = bytes(_B)
_U16 = struct.Struct("<H")
_FILE_TYPES = L.FILE_TYPE_BY_IFMT
_OVERLAY_PREFIX = L.XATTR_OVERLAY_PREFIX
_METACOPY = L.XATTR_METACOPY
_CHUNK_BASED_FORMAT = L.LAYOUT_CHUNK_BASED << 1  # data layout as placed in the format field
_REDIRECT = L.XATTR_REDIRECT
_ESCAPED_PREFIX = L.XATTR_ESCAPED_PREFIX
_MAX_XATTR_AREA = L.xattr_area_size(_MAX_U16)
# what a directory holding a user whiteout gets (mkcomposefs adds the opaque pair from version 1 on,
# and any tree with a whiteout is written as version 1 or later)
_WHITEOUT_DIR_PAIRS = [(L.XATTR_ESCAPED_WHITEOUTS, b""), (L.XATTR_USER_WHITEOUTS, b""),
                       (L.XATTR_ESCAPED_OPAQUE, b"x"), (L.XATTR_USER_OPAQUE, b"x")]


class _Inode:
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


def _check_names(entries: Dict[bytes, object]) -> None:
    """Raise FormatError unless every entry name is 1..255 bytes without '/' or NUL, not . or .."""
    if not entries:
        return
    joined = b"\0".join(entries)
    if (b"/" in joined or joined.count(b"\0") != len(entries) - 1 or max(map(len, entries)) > 255
            or b"" in entries or b"." in entries or b".." in entries):
        bad = [name for name in entries if not name or len(name) > 255 or b"/" in name or b"\0" in name or name in _DOT_NAMES]
        raise FormatError("invalid directory entry name %r" % (bad[0] if bad else b"",))


def _verity(algorithm) -> Tuple[int, bytes, object]:
    """What external files need of the fs-verity algorithm: (digest size, metacopy header, algorithm)."""
    return algorithm.digest_size, L.encode_metacopy(bytes(algorithm.digest_size), algorithm.kernel_id)[:4], algorithm


def _leaf_inode(leaf, verity: Tuple[int, bytes, object], escape_whiteout: bool) -> _Inode:
    """The inode of one leaf: kind, size, data and the overlay xattrs mkcomposefs adds."""
    cls = type(leaf)
    if cls is RegularFile:
        node = _Inode(S_IFREG, leaf.stat, 1)
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
        node = _Inode(S_IFLNK, leaf.stat, 1)
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
        if not 0 <= leaf.rdev <= _MAX_U32:
            raise FormatError("device number %d does not fit 32 bits" % leaf.rdev)
        if escape_whiteout and kind == S_IFCHR and leaf.rdev == 0:
            node = _Inode(S_IFREG, leaf.stat, 1)
            node.pairs.append((L.XATTR_ESCAPED_WHITEOUT, b""))
            node.pairs.append((L.XATTR_USER_WHITEOUT, b""))
            return node
        node = _Inode(kind, leaf.stat, 1)
        node.rdev = leaf.rdev
        return node
    if cls is Fifo:
        return _Inode(S_IFIFO, leaf.stat, 1)
    if cls is Socket:
        return _Inode(S_IFSOCK, leaf.stat, 1)
    raise FormatError("not a tree node: %r" % (leaf,))


class _Collector:
    """Breadth-first (V0/V1) or depth-first (V2) walk turning the tree into inodes.

    Each directory gets its entries sorted by name, ``.`` and ``..`` included; a leaf met again is
    the same inode (its occurrences are recorded to pick the hardlink "original" and nlink).
    """

    def __init__(self, algorithm, escape_whiteouts: bool, directories: List[_Inode]) -> None:
        self.directories = directories
        self.verity = _verity(algorithm)
        self.escape_whiteouts = escape_whiteouts
        self.nodes: List[_Inode] = []
        self.leaf_nodes: Dict[int, _Inode] = {}
        self.places: Dict[int, List[Tuple[int, bytes]]] = {}
        self.dirs: List[Tuple[Directory, _Inode, int, bytes]] = []
        self.whiteouts: List[Tuple[int, int]] = []
        self.seen_dirs = set()
        self.stub_ids = set()

    def directory(self, directory: Directory, parent: int, name: bytes) -> _Inode:
        if id(directory) in self.seen_dirs:
            raise FormatError("directory %r appears twice in the tree" % (name,))
        self.seen_dirs.add(id(directory))
        node = _Inode(S_IFDIR, directory.stat, 2)
        self.directories.append(node)
        self.dirs.append((directory, node, parent, name))
        self.nodes.append(node)
        return node

    def entries(self, index: int, extra=None) -> List[Tuple[bytes, _Inode]]:
        """Create (or find) the inodes of directory ``index``'s entries; returns its sorted entries.

        Shaped for speed (``bench/bench_erofs.py``): names are checked once per directory with C-level
        joins, and node classes are compared exactly (trees hold only the tree module's classes).
        """
        directory, node, parent, _name = self.dirs[index]
        _check_names(directory.entries)
        items = sorted(directory.entries.items())
        if extra:
            items = sorted(items + extra)
        entries = [(b".", node), (b"..", self.dirs[parent][1])]
        leaf_nodes = self.leaf_nodes
        nodes = self.nodes
        verity = self.verity
        subdirs = 0
        for name, child in items:
            cls = type(child)
            if cls is Directory:
                child_node = self.directory(child, index, name)
                subdirs += 1
            else:
                key = id(child)
                child_node = leaf_nodes.get(key)
                if child_node is None:
                    if cls is Device:
                        escape = self.escape_whiteouts and key not in self.stub_ids
                        child_node = _leaf_inode(child, verity, escape)
                        if escape and child_node.kind == S_IFREG:
                            self.whiteouts.append((key, index))
                    else:
                        child_node = _leaf_inode(child, verity, False)
                    leaf_nodes[key] = child_node
                    child_node.place = index
                    nodes.append(child_node)
                else:
                    places = self.places.get(key)
                    if places is None:
                        places = self.places[key] = [self.first_place(child_node, index, entries)]
                    places.append((index, name))
                    child_node.nlink += 1
            entries.append((name, child_node))
        node.nlink += subdirs
        if items and items[0][0] < b"..":
            entries.sort(key=_entry_name)
        node.entries = entries
        return entries

    def first_place(self, node: _Inode, index: int, entries) -> Tuple[int, bytes]:
        """(directory index, name) where a leaf met again was met first (rare: a scan is fine)."""
        first = node.place
        for name, child in entries if first == index else self.dirs[first][1].entries:
            if child is node and name not in _DOT_NAMES:
                return first, name
        raise FormatError("internal error: a hardlinked leaf lost its first place")

    def path(self, place: Tuple[int, bytes]) -> Tuple[bytes, ...]:
        """Path components of an entry; their order is depth-first sorted order."""
        index, name = place
        parts = [name]
        while index:
            _directory, _node, index, dir_name = self.dirs[index]
            parts.append(dir_name)
        return tuple(reversed(parts))

    def canonical(self) -> Dict[int, Tuple[int, bytes]]:
        """For each hardlinked leaf (by id), its first place in depth-first sorted order."""
        return {key: min(places, key=self.path) for key, places in self.places.items()}


def _entry_name(entry) -> bytes:
    return entry[0]


def _collect_v1(root: Directory, algorithm, version: int, directories: List[_Inode]) -> Tuple[List[_Inode], int]:
    """Steps 1 and 2: the inodes of a V0/V1 image in breadth-first order, and the version."""
    rstat = root.stat
    stub_xattrs = {}
    if L.XATTR_SELINUX in rstat.xattrs:
        stub_xattrs[L.XATTR_SELINUX] = rstat.xattrs[L.XATTR_SELINUX]
    stub_stat = Stat(S_IFCHR | 0o644, rstat.uid, rstat.gid, rstat.mtime, rstat.mtime_nsec, stub_xattrs)
    stubs = [(name, Device(stub_stat, 0)) for name in _STUB_NAMES if name not in root.entries]
    collector = _Collector(algorithm, True, directories)
    collector.stub_ids = {id(stub[1]) for stub in stubs}
    root_node = collector.directory(root, 0, b"")
    index = 0
    while index < len(collector.dirs):
        collector.entries(index, stubs if index == 0 else None)
        index += 1
    nodes = collector.nodes
    canonical = collector.canonical()
    if any(places[0] != canonical[key] for key, places in collector.places.items()):
        nodes = _reorder(collector, canonical)
    marked = {canonical[key][0] if key in canonical else index for key, index in collector.whiteouts}
    for index in marked:
        node = collector.dirs[index][1]
        version = max(version, 1)
        node.pairs = list(dict(node.pairs + _WHITEOUT_DIR_PAIRS).items())
    root_node.pairs.append((L.XATTR_OPAQUE, b"y"))
    return nodes, version


def _reorder(collector: _Collector, canonical: Dict[int, Tuple[int, bytes]]) -> List[_Inode]:
    """Breadth-first order again, a hardlinked leaf placed at its depth-first first path."""
    placed = {id(collector.leaf_nodes[key]): place for key, place in canonical.items()}
    order = [collector.dirs[0][1]]
    for index, (_directory, node, _parent, _name) in enumerate(collector.dirs):
        for name, child in node.entries:
            if name in _DOT_NAMES:
                continue
            place = placed.get(id(child))
            if place is None or place == (index, name):
                order.append(child)
    return order


class _XattrNames:
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
        return b"".join((head, _U16.pack(size), suffix, value, _ZEROS[:-(len(suffix) + size) % 4]))


def _xattr_tables_v1(nodes: List[_Inode], names: _XattrNames) -> Tuple[List[bytes], int]:
    """Step 3: sort each inode's xattrs, pick the shared ones; returns (table entries, table size)."""
    counts: Dict[Tuple[bytes, bytes], int] = {}
    for node in nodes:
        pairs = node.pairs
        if pairs:
            if len(pairs) > 1:
                pairs.sort()
            for pair in pairs:
                counts[pair] = counts.get(pair, 0) + 1
    shared = sorted((pair for pair, count in counts.items() if count > 1),
                    key=lambda pair: (pair[0], len(pair[1]), pair[1]), reverse=True)
    offsets: Dict[Tuple[bytes, bytes], int] = {}
    table = []
    size = 0
    for pair in shared:
        entry = names.entry(*pair)
        offsets[pair] = size
        table.append(entry)
        size += len(entry)
    _split_xattrs(nodes, names, offsets, L.MAX_SHARED_PER_INODE)
    return table, size


def _split_xattrs(nodes: List[_Inode], names: _XattrNames, offsets, max_shared: int) -> None:
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
    return info[3] + _U16.pack(value_size) + suffix, _ZEROS[:-(len(suffix) + value_size) % 4]


def _dir_chunks(node: _Inode) -> None:
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
    if used > _HALF_BLOCK:
        node.n_blocks += 1
        used = 0
    chunks.append(current)
    node.chunk_lists = chunks
    node.tail = used


def _check_extended(node: _Inode) -> None:
    if not (0 <= node.uid <= _MAX_U32 and 0 <= node.gid <= _MAX_U32 and node.nlink <= _MAX_U32
            and 0 <= node.nsec <= _MAX_U32 and -(1 << 63) <= node.mtime < 1 << 63 and 0 <= node.mode <= _MAX_U16):
        raise FormatError("inode metadata out of range (mode %r, uid %r, gid %r, mtime %r.%r, nlink %r)"
                          % (node.mode, node.uid, node.gid, node.mtime, node.nsec, node.nlink))


def _place_inodes_v1(nodes: List[_Inode], min_time: Tuple[int, int]) -> int:
    """Step 4: blocks, tails, compact or extended, padding and nid of every inode; returns the table end."""
    pos = _INODES_START
    min_sec, min_nsec = min_time
    for node in nodes:
        kind = node.kind
        if kind == S_IFDIR:
            _dir_chunks(node)
            size = node.n_blocks * _B + node.tail
        else:
            size = node.size
            if node.chunks:
                node.tail = 4 * node.chunks
            elif kind == S_IFLNK:
                node.tail = size
            elif size and kind == S_IFREG:
                node.n_blocks, node.tail = divmod(size, _B)
                if node.tail > _HALF_BLOCK:
                    node.n_blocks += 1
                    node.tail = 0
        node.compact = compact = (node.mtime == min_sec and node.nsec == min_nsec and node.nlink <= 0xFFFF
                                  and 0 <= node.uid <= 0xFFFF and 0 <= node.gid <= 0xFFFF and size <= 0xFFFFFFFF)
        if not compact:
            _check_extended(node)
        head = (32 if compact else 64) + node.xattr_size
        start = (pos + 31) & ~31
        tail = node.tail
        if kind == S_IFLNK:
            if head + tail >= _B:
                node.n_blocks = 1
                node.tail = 0
            if start // _B != (start + head + tail - 1) // _B:
                start += -start % _B
        elif tail:
            room = _B - (start + head) % _B
            if room < tail:
                extra = (room + 31) & ~31
                if tail > _B - (start + head + extra) % _B:
                    node.n_blocks += 1
                    node.tail = 0
                    extra = -start % _B
                start += extra
        node.pad = start - pos
        node.nid = start >> 5
        pos = start + head + node.tail
    return (pos + 31) & ~31


def _dirent_block(chunk) -> bytes:
    file_types = _FILE_TYPES
    return L.encode_dirents([(name, node.nid, file_types[node.kind]) for name, node in chunk])


def _emit_inodes_v1(nodes: List[_Inode], shared_base: int, out: List[bytes]) -> None:
    """Padding, header, xattr area and inline tail of every V0/V1 inode, appended to ``out``."""
    compact_pack = L.COMPACT_INODE.pack
    extended_pack = L.EXTENDED_INODE.pack
    append = out.append
    # the xattr header and the shared ids, in one pack per inode (by number of shared ids)
    packers: Dict[int, struct.Struct] = {}
    null_chunk = L.NULL_CHUNK
    for ino, node in enumerate(nodes):
        kind = node.kind
        tail = node.tail
        layout = 4 if tail else 0  # FLAT_INLINE / FLAT_PLAIN, already shifted into the format field
        u = node.blkaddr
        if kind == S_IFREG:
            size = node.size
            if node.chunks:
                layout = _CHUNK_BASED_FORMAT
                u = (u & 0xFFFF0000) | node.rdev
        elif kind == S_IFDIR:
            size = node.n_blocks * _B + tail
        elif kind == S_IFLNK:
            size = node.size if node.n_blocks else tail
        else:
            size = 0
            u = node.rdev
        if node.pad:
            append(_ZEROS[:node.pad] if node.pad <= _B else bytes(node.pad))
        xattr_size = node.xattr_size
        icount = (xattr_size - 12) // 4 + 1 if xattr_size else 0
        if node.compact:
            append(compact_pack(layout, icount, node.mode, node.nlink, size, 0, u, ino, node.uid, node.gid))
        else:
            append(extended_pack(layout | 1, icount, node.mode, 0, size, u, ino, node.uid, node.gid,
                                 node.mtime & _U64_MASK, node.nsec, node.nlink))
        if xattr_size:
            shared = node.shared
            count = len(shared)
            packer = packers.get(count)
            if packer is None:
                packer = packers[count] = struct.Struct(L.XATTR_HEADER.format + "%dI" % count)
            append(packer.pack(~node.name_filter & 0xFFFFFFFF, count, *[(shared_base + offset) >> 2 for offset in shared]))
            append(node.local)
        if tail:
            if kind == S_IFDIR:
                append(_dirent_block(node.chunk_lists[-1]))
            elif node.chunks:
                append(null_chunk if node.chunks == 1 else null_chunk * node.chunks)
            else:
                append(node.data[len(node.data) - tail:])


def _emit_blocks_v1(nodes: List[_Inode], out: List[bytes]) -> None:
    """The data blocks, in inode order, each padded to the block size."""
    for node in nodes:
        if not node.n_blocks:
            continue
        if node.kind == S_IFDIR:
            blocks = [_dirent_block(chunk) for chunk in node.chunk_lists[:node.n_blocks]]
        elif node.chunks:
            blocks = [L.NULL_CHUNK * (_B // 4)]
        else:
            blocks = [node.data[index * _B:(index + 1) * _B] for index in range(node.n_blocks)]
        for block in blocks:
            out.append(block)
            out.append(_ZEROS[:-len(block) % _B])


def _superblock(nodes: List[_Inode], composefs_version: int, flags: int, build_time: Tuple[int, int],
                blocks: int, xattr_blkaddr: int) -> List[bytes]:
    header = L.encode_header(L.ComposefsHeader(L.COMPOSEFS_MAGIC, L.COMPOSEFS_HEADER_VERSION, flags, composefs_version))
    superblock = L.encode_superblock(L.Superblock(
        L.EROFS_MAGIC, 0, L.FEATURE_COMPAT_MTIME | L.FEATURE_COMPAT_XATTR_FILTER, L.LG_BLOCK_SIZE, 0, nodes[0].nid,
        len(nodes), build_time[0] & _U64_MASK, build_time[1], blocks, 0, xattr_blkaddr, bytes(16), bytes(16),
        0, 0, 0, 0, 0, 0, 0, 0, 0))
    return [header, bytes(L.SUPERBLOCK_OFFSET - len(header)), superblock]


def _write_v1(root: Directory, version: int, algorithm, directories: List[_Inode]) -> bytes:
    nodes, version = _collect_v1(root, algorithm, version, directories)
    names = _XattrNames(lustre=False)
    table, table_size = _xattr_tables_v1(nodes, names)
    oldest = min(nodes, key=lambda node: (node.mtime, node.nsec))
    _check_extended(oldest)
    min_time = (oldest.mtime, oldest.nsec)
    inodes_end = _place_inodes_v1(nodes, min_time)
    data_start = L.round_up(inodes_end + table_size, _B)
    next_block = data_start // _B
    for node in nodes:
        if node.n_blocks:
            node.blkaddr = next_block
            next_block += node.n_blocks
    has_acl = L.XATTR_POSIX_ACL_ACCESS in names.known or L.XATTR_POSIX_ACL_DEFAULT in names.known
    out = _superblock(nodes, version, L.COMPOSEFS_FLAG_HAS_ACL if has_acl else 0, min_time, next_block, inodes_end // _B)
    _emit_inodes_v1(nodes, inodes_end % _B, out)
    used = sum(map(len, out))
    out.append(bytes(inodes_end - used))
    out.extend(table)
    out.append(bytes(data_start - inodes_end - table_size))
    _emit_blocks_v1(nodes, out)
    return b"".join(out)


def write_image(root: Directory, version: int = 1, algorithm=fsverity.SHA256) -> bytes:
    """Return the composefs EROFS image of ``root`` (V1: ``mkcomposefs --min-version=1`` bytes).

    ``version`` 0 is mkcomposefs's default output, 1 its ``--min-version=1`` output, 2 the legacy
    composefs-rs format. ``algorithm`` is the repository's fs-verity algorithm: external files'
    digests must have its size. Raises FormatError for trees an image cannot hold.
    """
    # The collector is paused before anything is allocated: a freshly parsed tree is ~10 young
    # objects per file, and the pass our first allocation would start over them cost more than any
    # step of the writer (bench/bench_erofs.py).
    with gc_paused():
        directories: List[_Inode] = []
        try:
            if not isinstance(root, Directory):
                raise FormatError("the root of an image must be a directory")
            if version == 2:
                return _write_v2(root, algorithm, directories)
            if version in (0, 1):
                return _write_v1(root, version, algorithm, directories)
            raise FormatError("unknown composefs image version %r (expected 0, 1 or 2)" % (version,))
        finally:
            # A directory inode lists itself as "." and its parent as "..": break those cycles so
            # that reference counting frees every inode before the collector runs again.
            for node in directories:
                node.entries = node.chunk_lists = None
            del directories[:]


def _collect_v2(root: Directory, algorithm, directories: List[_Inode]) -> List[_Inode]:
    """V2: depth-first inode order (a directory, then its entries in name order, each subtree whole)."""
    root_node = _Inode(S_IFDIR, root.stat, 2)
    directories.append(root_node)
    verity = _verity(algorithm)
    nodes = [root_node]
    leaf_nodes: Dict[int, _Inode] = {}
    seen_dirs = {id(root)}
    _check_names(root.entries)
    stack = [(root_node, iter(sorted(root.entries.items())), [(b".", root_node), (b"..", root_node)])]
    while stack:
        node, items, entries = stack[-1]
        for name, child in items:
            if isinstance(child, Directory):
                if id(child) in seen_dirs:
                    raise FormatError("directory %r appears twice in the tree" % (name,))
                seen_dirs.add(id(child))
                child_node = _Inode(S_IFDIR, child.stat, 2)
                directories.append(child_node)
                nodes.append(child_node)
                node.nlink += 1
                entries.append((name, child_node))
                _check_names(child.entries)
                stack.append((child_node, iter(sorted(child.entries.items())), [(b".", child_node), (b"..", node)]))
                break
            child_node = leaf_nodes.get(id(child))
            if child_node is None:
                child_node = leaf_nodes[id(child)] = _leaf_inode(child, verity, False)
                nodes.append(child_node)
            else:
                child_node.nlink += 1
            entries.append((name, child_node))
        else:
            stack.pop()
            entries.sort(key=_entry_name)
            node.entries = entries
    return nodes


_ADDED_V2 = (L.XATTR_METACOPY, L.XATTR_REDIRECT)


def _prepare_v2(nodes: List[_Inode], names: _XattrNames) -> Tuple[List[bytes], int]:
    """V2 xattr order (metacopy, redirect, then the rest by name), sharing, inline tails."""
    counts: Dict[Tuple[bytes, bytes], int] = {}
    for node in nodes:
        pairs = node.pairs
        if pairs:
            pairs = node.pairs = [p for p in pairs if p[0] in _ADDED_V2] + sorted(p for p in pairs if p[0] not in _ADDED_V2)
            for pair in pairs:
                counts[pair] = counts.get(pair, 0) + 1
        kind = node.kind
        if kind == S_IFDIR:
            _dir_chunks(node)
        elif node.chunks:
            node.tail = 4 if pairs and pairs[0][1] else 0  # one null chunk when the file has a digest
        elif kind == S_IFLNK:
            node.tail = node.size
        elif kind == S_IFREG:
            # composefs-rs only inlines up to 64 bytes; longer files keep EROFS's rule (full blocks apart)
            node.n_blocks, node.tail = divmod(node.size, _B)
    shared = sorted((pair for pair, count in counts.items() if count > 1), key=lambda pair: names.get(pair[0])[:2] + (pair[1],))
    table = []
    offsets = {}
    size = 0
    for pair in shared:
        offsets[pair] = size
        table.append(names.entry(*pair))
        size += len(table[-1])
    _split_xattrs(nodes, names, offsets, len(nodes) * 256)
    return table, size


def _place_inodes_v2(nodes: List[_Inode]) -> int:
    """Extended inodes; a FlatInline tail that would end in another block than its inode's metadata
    moves the inode past that block's end (composefs-rs ``pad_inline_tail_v2``). Where even that
    leaves the tail across a block boundary (composefs-rs then writes an image fsck.erofs rejects),
    the tail goes to a data block instead."""
    pos = _INODES_START
    for node in nodes:
        _check_extended(node)
        head = L.EXTENDED_INODE_SIZE + node.xattr_size
        start = (pos + 31) & ~31
        if node.tail and not node.chunks:
            metadata_end = start + head - 1
            if metadata_end // _B != (metadata_end + 1 + node.tail) // _B:
                padded = (start + _B - metadata_end % _B + 31) & ~31
                if (padded + head) // _B == (padded + head + node.tail - 1) // _B:
                    start = padded
                else:
                    node.n_blocks += 1
                    node.tail = 0
        node.pad = start - pos
        node.nid = start >> 5
        pos = start + head + node.tail
    return (pos + 31) & ~31


def _emit_inodes_v2(nodes: List[_Inode], inodes_end: int, out: List[bytes]) -> None:
    pack = L.EXTENDED_INODE.pack
    for node in nodes:
        kind = node.kind
        size = node.size
        u = 0
        layout = L.LAYOUT_FLAT_INLINE if node.tail else L.LAYOUT_FLAT_PLAIN
        if kind == S_IFDIR:
            size = node.n_blocks * _B + node.tail
            u = node.blkaddr
        elif node.chunks:
            layout = L.LAYOUT_CHUNK_BASED
            u = L.CHUNK_FORMAT_BLKBITS_MASK
        elif kind in (S_IFREG, S_IFLNK):
            u = node.blkaddr
        elif kind in (S_IFCHR, S_IFBLK):
            u = node.rdev
        if node.pad:
            out.append(bytes(node.pad))
        xattr_size = node.xattr_size
        out.append(pack(layout << 1 | 1, L.xattr_icount(xattr_size), node.mode, 0, size, u, node.nid, node.uid, node.gid,
                        node.mtime & _U64_MASK, 0, node.nlink))
        if xattr_size:
            out.append(L.XATTR_HEADER.pack(~node.name_filter & _MAX_U32, len(node.shared)))
            out.extend(L.U32.pack((inodes_end + offset) >> 2) for offset in node.shared)
            out.append(node.local)
        if node.tail:
            if kind == S_IFDIR:
                out.append(_dirent_block(node.chunk_lists[-1]))
            elif node.chunks:
                out.append(L.NULL_CHUNK)
            else:
                out.append(node.data[len(node.data) - node.tail:])


def _write_v2(root: Directory, algorithm, directories: List[_Inode]) -> bytes:
    """composefs-rs V2 (legacy): see the module docstring."""
    nodes = _collect_v2(root, algorithm, directories)
    names = _XattrNames(lustre=True)
    table, table_size = _prepare_v2(nodes, names)
    inodes_end = _place_inodes_v2(nodes)
    data_start = L.round_up(inodes_end + table_size, _B)
    next_block = data_start // _B
    for node in nodes:
        if node.n_blocks:
            node.blkaddr = next_block
            next_block += node.n_blocks
    out = _superblock(nodes, 2, 0, (0, 0), next_block, 0)
    _emit_inodes_v2(nodes, inodes_end, out)
    out.append(bytes(inodes_end - sum(map(len, out))))
    out.extend(table)
    out.append(bytes(data_start - inodes_end - table_size))
    _emit_blocks_v1(nodes, out)
    return b"".join(out)
