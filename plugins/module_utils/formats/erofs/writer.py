# -*- coding: utf-8 -*-
# Copyright: (c) 2026, bootc.composefs maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Write a ``tree.Directory`` as a composefs EROFS image (V0, V1 byte-identical to mkcomposefs; V2).

Layer: formats. Structures are described in ``layout.py``, the inodes both writers lay out in
``inodes.py``; this file holds the V0/V1 placement rules, those of C composefs 1.0.8
``libcomposefs/lcfs-writer-erofs.c`` (``lcfs_write_erofs_to``) and ``lcfs-writer.c``
(``lcfs_compute_tree``), and :func:`write_image` for every version (V2, composefs-rs's legacy
format: ``writer_v2.py``). Spec: ``composefs-repo.md`` section 11.8.

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

Deliberate differences from mkcomposefs (it reads them from the dumpfile, we derive them from the
tree): ``nlink`` of leaves, and which path of a hardlinked leaf is the "original" (see step 2).
Inline content is limited to 5000 bytes (what mkcomposefs and its reader accept).
"""

from __future__ import annotations

import struct
from typing import Dict, List, Tuple

from ansible_collections.bootc.composefs.plugins.module_utils.errors import FormatError
from ansible_collections.bootc.composefs.plugins.module_utils.formats import fsverity
from ansible_collections.bootc.composefs.plugins.module_utils.formats.erofs import layout as L
from ansible_collections.bootc.composefs.plugins.module_utils.formats.erofs.inodes import (
    DOT_NAMES,
    HALF_BLOCK,
    INODES_START,
    MAX_INLINE_CONTENT_BYTES,
    MAX_SYMLINK_TARGET_BYTES,
    S_IFCHR,
    S_IFDIR,
    S_IFLNK,
    S_IFREG,
    U64_MASK,
    ZEROS,
    Inode,
    XattrNames,
    check_extended,
    check_names,
    dir_chunks,
    dirent_block,
    emit_data_blocks,
    entry_name,
    leaf_inode,
    split_xattrs,
    superblock_parts,
    verity_params,
)
from ansible_collections.bootc.composefs.plugins.module_utils.formats.erofs.writer_v2 import write_v2
from ansible_collections.bootc.composefs.plugins.module_utils.formats.tree import Device, Directory, Stat, gc_paused

__all__ = ["write_image", "MAX_INLINE_CONTENT_BYTES", "MAX_SYMLINK_TARGET_BYTES"]

_B = L.BLOCK_SIZE
_STUB_NAMES = [b"%02x" % i for i in range(256)]
_CHUNK_BASED_FORMAT = L.LAYOUT_CHUNK_BASED << 1  # data layout as placed in the format field
# what a directory holding a user whiteout gets (mkcomposefs adds the opaque pair from version 1 on,
# and any tree with a whiteout is written as version 1 or later)
_WHITEOUT_DIR_PAIRS = [(L.XATTR_ESCAPED_WHITEOUTS, b""), (L.XATTR_USER_WHITEOUTS, b""),
                       (L.XATTR_ESCAPED_OPAQUE, b"x"), (L.XATTR_USER_OPAQUE, b"x")]


class _Collector:
    """Breadth-first (V0/V1) or depth-first (V2) walk turning the tree into inodes.

    Each directory gets its entries sorted by name, ``.`` and ``..`` included; a leaf met again is
    the same inode (its occurrences are recorded to pick the hardlink "original" and nlink).
    """

    def __init__(self, algorithm, escape_whiteouts: bool, directories: List[Inode]) -> None:
        self.directories = directories
        self.verity = verity_params(algorithm)
        self.escape_whiteouts = escape_whiteouts
        self.nodes: List[Inode] = []
        self.leaf_nodes: Dict[int, Inode] = {}
        self.places: Dict[int, List[Tuple[int, bytes]]] = {}
        self.dirs: List[Tuple[Directory, Inode, int, bytes]] = []
        self.whiteouts: List[Tuple[int, int]] = []
        self.seen_dirs = set()
        self.stub_ids = set()

    def directory(self, directory: Directory, parent: int, name: bytes) -> Inode:
        if id(directory) in self.seen_dirs:
            raise FormatError("directory %r appears twice in the tree" % (name,))
        self.seen_dirs.add(id(directory))
        node = Inode(S_IFDIR, directory.stat, 2)
        self.directories.append(node)
        self.dirs.append((directory, node, parent, name))
        self.nodes.append(node)
        return node

    def entries(self, index: int, extra=None) -> List[Tuple[bytes, Inode]]:
        """Create (or find) the inodes of directory ``index``'s entries; returns its sorted entries.

        Shaped for speed (``bench/bench_erofs.py``): names are checked once per directory with C-level
        joins, and node classes are compared exactly (trees hold only the tree module's classes).
        """
        directory, node, parent, _name = self.dirs[index]
        check_names(directory.entries)
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
                        child_node = leaf_inode(child, verity, escape)
                        if escape and child_node.kind == S_IFREG:
                            self.whiteouts.append((key, index))
                    else:
                        child_node = leaf_inode(child, verity, False)
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
            entries.sort(key=entry_name)
        node.entries = entries
        return entries

    def first_place(self, node: Inode, index: int, entries) -> Tuple[int, bytes]:
        """(directory index, name) where a leaf met again was met first (rare: a scan is fine)."""
        first = node.place
        for name, child in entries if first == index else self.dirs[first][1].entries:
            if child is node and name not in DOT_NAMES:
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


def _collect_v1(root: Directory, algorithm, version: int, directories: List[Inode]) -> Tuple[List[Inode], int]:
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


def _reorder(collector: _Collector, canonical: Dict[int, Tuple[int, bytes]]) -> List[Inode]:
    """Breadth-first order again, a hardlinked leaf placed at its depth-first first path."""
    placed = {id(collector.leaf_nodes[key]): place for key, place in canonical.items()}
    order = [collector.dirs[0][1]]
    for index, (_directory, node, _parent, _name) in enumerate(collector.dirs):
        for name, child in node.entries:
            if name in DOT_NAMES:
                continue
            place = placed.get(id(child))
            if place is None or place == (index, name):
                order.append(child)
    return order


def _xattr_tables_v1(nodes: List[Inode], names: XattrNames) -> Tuple[List[bytes], int]:
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
    split_xattrs(nodes, names, offsets, L.MAX_SHARED_PER_INODE)
    return table, size


def _place_inodes_v1(nodes: List[Inode], min_time: Tuple[int, int]) -> int:
    """Step 4: blocks, tails, compact or extended, padding and nid of every inode; returns the table end."""
    pos = INODES_START
    min_sec, min_nsec = min_time
    for node in nodes:
        kind = node.kind
        if kind == S_IFDIR:
            dir_chunks(node)
            size = node.n_blocks * _B + node.tail
        else:
            size = node.size
            if node.chunks:
                node.tail = 4 * node.chunks
            elif kind == S_IFLNK:
                node.tail = size
            elif size and kind == S_IFREG:
                node.n_blocks, node.tail = divmod(size, _B)
                if node.tail > HALF_BLOCK:
                    node.n_blocks += 1
                    node.tail = 0
        node.compact = compact = (node.mtime == min_sec and node.nsec == min_nsec and node.nlink <= 0xFFFF
                                  and 0 <= node.uid <= 0xFFFF and 0 <= node.gid <= 0xFFFF and size <= 0xFFFFFFFF)
        if not compact:
            check_extended(node)
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


def _emit_inodes_v1(nodes: List[Inode], shared_base: int, out: List[bytes]) -> None:
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
            append(ZEROS[:node.pad] if node.pad <= _B else bytes(node.pad))
        xattr_size = node.xattr_size
        icount = (xattr_size - 12) // 4 + 1 if xattr_size else 0
        if node.compact:
            append(compact_pack(layout, icount, node.mode, node.nlink, size, 0, u, ino, node.uid, node.gid))
        else:
            append(extended_pack(layout | 1, icount, node.mode, 0, size, u, ino, node.uid, node.gid,
                                 node.mtime & U64_MASK, node.nsec, node.nlink))
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
                append(dirent_block(node.chunk_lists[-1]))
            elif node.chunks:
                append(null_chunk if node.chunks == 1 else null_chunk * node.chunks)
            else:
                append(node.data[len(node.data) - tail:])


def _write_v1(root: Directory, version: int, algorithm, directories: List[Inode]) -> bytes:
    nodes, version = _collect_v1(root, algorithm, version, directories)
    names = XattrNames(lustre=False)
    table, table_size = _xattr_tables_v1(nodes, names)
    oldest = min(nodes, key=lambda node: (node.mtime, node.nsec))
    check_extended(oldest)
    min_time = (oldest.mtime, oldest.nsec)
    inodes_end = _place_inodes_v1(nodes, min_time)
    data_start = L.round_up(inodes_end + table_size, _B)
    next_block = data_start // _B
    for node in nodes:
        if node.n_blocks:
            node.blkaddr = next_block
            next_block += node.n_blocks
    has_acl = L.XATTR_POSIX_ACL_ACCESS in names.known or L.XATTR_POSIX_ACL_DEFAULT in names.known
    out = superblock_parts(nodes, version, L.COMPOSEFS_FLAG_HAS_ACL if has_acl else 0, min_time, next_block, inodes_end // _B)
    _emit_inodes_v1(nodes, inodes_end % _B, out)
    used = sum(map(len, out))
    out.append(bytes(inodes_end - used))
    out.extend(table)
    out.append(bytes(data_start - inodes_end - table_size))
    emit_data_blocks(nodes, out)
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
        directories: List[Inode] = []
        try:
            if not isinstance(root, Directory):
                raise FormatError("the root of an image must be a directory")
            if version == 2:
                return write_v2(root, algorithm, directories)
            if version in (0, 1):
                return _write_v1(root, version, algorithm, directories)
            raise FormatError("unknown composefs image version %r (expected 0, 1 or 2)" % (version,))
        finally:
            # A directory inode lists itself as "." and its parent as "..": break those cycles so
            # that reference counting frees every inode before the collector runs again.
            for node in directories:
                node.entries = node.chunk_lists = None
            del directories[:]
