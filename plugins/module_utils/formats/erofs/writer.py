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
whiteout escaping, metacopy/redirect first then user xattrs in name order, shared xattrs in
ascending (name index, suffix, value) order with absolute ids and ``xattr_blkaddr`` 0, external files
with one chunk (chunk format 31), inline data never moved to blocks, inline-tail padding of
``pad_inline_tail_v2``.

Deliberate differences from mkcomposefs (it reads them from the dumpfile, we derive them from the
tree): ``nlink`` of leaves, and which path of a hardlinked leaf is the "original" (see step 2).
Inline content is limited to 5000 bytes (what mkcomposefs and its reader accept).
"""

from __future__ import annotations

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
    object_pathname,
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


class _Inode:
    """One inode being laid out (slots: this is the per-file hot path of the benchmark)."""

    __slots__ = ("kind", "mode", "uid", "gid", "mtime", "nsec", "nlink", "size", "rdev", "xattrs", "data", "entries",
                 "n_blocks", "tail", "compact", "nid", "ino", "blkaddr", "chunks", "xattr_size", "shared", "local",
                 "whiteouts", "chunk_lists", "pad")

    def __init__(self, kind: int, stat: Stat, nlink: int) -> None:
        self.kind = kind
        self.mode = kind | (stat.mode & 0o7777)
        self.uid = stat.uid
        self.gid = stat.gid
        self.mtime = stat.mtime
        self.nsec = stat.mtime_nsec
        self.nlink = nlink
        self.size = 0
        self.rdev = 0
        self.data = b""
        self.entries = None
        self.chunks = 0
        self.n_blocks = 0
        self.tail = 0
        self.blkaddr = 0
        self.whiteouts = False
        xattrs = stat.xattrs
        if xattrs:
            self.xattrs = {(b"trusted.overlay.overlay." + key[16:] if key.startswith(b"trusted.overlay.") else key): value
                           for key, value in xattrs.items()}
        else:
            self.xattrs = {}


def _check_name(name: bytes) -> None:
    if not name or len(name) > 255 or b"/" in name or b"\0" in name or name in _DOT_NAMES:
        raise FormatError("invalid directory entry name %r" % (name,))


def _leaf_inode(leaf, nlink: int, algorithm, escape_whiteouts: bool) -> _Inode:
    """The inode of one leaf: kind, size, data and the overlay xattrs mkcomposefs adds."""
    cls = type(leaf)
    if cls is RegularFile:
        node = _Inode(S_IFREG, leaf.stat, nlink)
        if leaf.content is not None:
            node.size = len(leaf.content)
            node.data = bytes(leaf.content)
            if node.size > MAX_INLINE_CONTENT_BYTES:
                raise FormatError("inline file of %d bytes exceeds %d" % (node.size, MAX_INLINE_CONTENT_BYTES))
        elif leaf.size:
            node.size = leaf.size
            if not 0 < leaf.size < 1 << 64:
                raise FormatError("file size %d out of range" % leaf.size)
            bits = L.chunk_bits(leaf.size)
            node.chunks = (leaf.size + (1 << bits) - 1) >> bits
            if node.chunks > L.MAX_CHUNKS:
                raise FormatError("external file of %d bytes needs more than %d chunks" % (leaf.size, L.MAX_CHUNKS))
            digest = leaf.fsverity_digest
            if digest is None:
                node.xattrs[L.XATTR_METACOPY] = b""
            elif len(digest) != algorithm.digest_size:
                raise FormatError("fs-verity digest of %d bytes, %s needs %d" % (len(digest), algorithm.name, algorithm.digest_size))
            else:
                node.xattrs[L.XATTR_METACOPY] = L.encode_metacopy(bytes(digest), algorithm.kernel_id)
            backing = leaf.backing_path if leaf.backing_path is not None else (None if digest is None else object_pathname(digest))
            if backing:
                node.xattrs[L.XATTR_REDIRECT] = b"/" + bytes(backing)
        return node
    if cls is Symlink:
        node = _Inode(S_IFLNK, leaf.stat, nlink)
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
        if escape_whiteouts and kind == S_IFCHR and leaf.rdev == 0:
            node = _Inode(S_IFREG, leaf.stat, nlink)
            node.xattrs[L.XATTR_ESCAPED_WHITEOUT] = b""
            node.xattrs[L.XATTR_USER_WHITEOUT] = b""
            return node
        node = _Inode(kind, leaf.stat, nlink)
        node.rdev = leaf.rdev
        return node
    if cls is Fifo:
        return _Inode(S_IFIFO, leaf.stat, nlink)
    if cls is Socket:
        return _Inode(S_IFSOCK, leaf.stat, nlink)
    raise FormatError("not a tree node: %r" % (leaf,))


def _is_whiteout(leaf) -> bool:
    return type(leaf) is Device and leaf.rdev == 0 and leaf.stat.mode & L.S_IFMT == S_IFCHR


class _Tree:
    """Breadth-first walk of the tree: directories, sorted entries and hardlink occurrences."""

    def __init__(self, root: Directory, extra_root_entries) -> None:
        self.dirs = [root]
        self.parents = [0]
        self.names = [b""]
        self.items = []
        self.subdirs = []
        self.first: Dict[int, Tuple[int, bytes]] = {}
        self.multi: Dict[int, List[Tuple[int, bytes]]] = {}
        seen_dirs = {id(root)}
        first = self.first
        index = 0
        while index < len(self.dirs):
            entries = self.dirs[index].entries
            items = sorted(entries.items())
            if index == 0 and extra_root_entries:
                items = sorted(items + extra_root_entries)
            subdirs = 0
            for name, child in items:
                if type(child) is Directory:
                    if id(child) in seen_dirs:
                        raise FormatError("directory %r appears twice in the tree" % (name,))
                    seen_dirs.add(id(child))
                    self.dirs.append(child)
                    self.parents.append(index)
                    self.names.append(name)
                    subdirs += 1
                else:
                    where = (index, name)
                    known = first.setdefault(id(child), where)
                    if known is not where:
                        self.multi.setdefault(id(child), [known]).append(where)
                if len(name) > 255 or b"/" in name or not name or name in _DOT_NAMES or b"\0" in name:
                    _check_name(name)
            self.items.append(items)
            self.subdirs.append(subdirs)
            index += 1

    def path(self, where: Tuple[int, bytes]) -> Tuple[bytes, ...]:
        index, name = where
        parts = [name]
        while index:
            parts.append(self.names[index])
            index = self.parents[index]
        return tuple(reversed(parts))

    def canonical(self) -> Dict[int, Tuple[int, bytes]]:
        """For each shared leaf, the (directory index, name) first in depth-first sorted order."""
        return {key: min(places, key=self.path) for key, places in self.multi.items()}


def _dir_layout(node: _Inode) -> None:
    """Split a directory's entries into full blocks and a last chunk (tail or block)."""
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


def _collect_v1(root: Directory, algorithm, version: int):
    """Steps 1 and 2: the inodes of a V0/V1 image in breadth-first order, and the version."""
    rstat = root.stat
    stub_xattrs = {}
    if L.XATTR_SELINUX in rstat.xattrs:
        stub_xattrs[L.XATTR_SELINUX] = rstat.xattrs[L.XATTR_SELINUX]
    stub_stat = Stat(S_IFCHR | 0o644, rstat.uid, rstat.gid, rstat.mtime, rstat.mtime_nsec, stub_xattrs)
    stubs = [(name, Device(stub_stat, 0)) for name in _STUB_NAMES if name not in root.entries]
    tree = _Tree(root, stubs)
    stub_ids = {id(leaf) for _, leaf in stubs}
    canonical = tree.canonical()
    multi = tree.multi
    root_node = _Inode(S_IFDIR, rstat, 2 + tree.subdirs[0])
    dir_nodes = [root_node]
    nodes = [root_node]
    shared_nodes: Dict[int, _Inode] = {}
    deferred = []
    next_dir = 1
    for index, items in enumerate(tree.items):
        parent = dir_nodes[index]
        entries = [(b".", parent), (b"..", dir_nodes[tree.parents[index]])]
        for name, child in items:
            if type(child) is Directory:
                node = _Inode(S_IFDIR, child.stat, 2 + tree.subdirs[next_dir])
                dir_nodes.append(node)
                next_dir += 1
            else:
                key = id(child)
                if key in multi:
                    if canonical[key] != (index, name):
                        deferred.append((entries, len(entries), key))
                        entries.append((name, None))
                        continue
                    node = shared_nodes[key] = _leaf_inode(child, len(multi[key]), algorithm, True)
                else:
                    node = _leaf_inode(child, 1, algorithm, key not in stub_ids)
                if key not in stub_ids and _is_whiteout(child):
                    parent.whiteouts = True
                    version = max(version, 1)
            nodes.append(node)
            entries.append((name, node))
        parent.entries = entries
    for entries, position, key in deferred:
        entries[position] = (entries[position][0], shared_nodes[key])
    for node in dir_nodes:
        node.entries.sort(key=_entry_name)
        if node.whiteouts:
            node.xattrs[L.XATTR_ESCAPED_WHITEOUTS] = b""
            node.xattrs[L.XATTR_USER_WHITEOUTS] = b""
            if version >= 1:
                node.xattrs[L.XATTR_ESCAPED_OPAQUE] = b"x"
                node.xattrs[L.XATTR_USER_OPAQUE] = b"x"
    root_node.xattrs[L.XATTR_OPAQUE] = b"y"
    return nodes, version


def _entry_name(entry) -> bytes:
    return entry[0]


class _XattrNames:
    """Per-image cache: how each xattr name is stored (prefix index, suffix, name-filter bit)."""

    def __init__(self, lustre: bool) -> None:
        self.lustre = lustre
        self.known: Dict[bytes, Tuple[int, bytes, int]] = {}

    def get(self, key: bytes) -> Tuple[int, bytes, int]:
        found = self.known.get(key)
        if found is None:
            if not key or b"\0" in key or len(key) > 255:
                raise FormatError("invalid xattr name %r" % (key,))
            index, suffix = L.split_xattr_name(key, self.lustre)
            found = self.known[key] = (index, suffix, L.xattr_filter_bit(index, suffix))
        return found


def _entry_bytes(names: _XattrNames, key: bytes, value: bytes) -> bytes:
    if len(value) > MAX_XATTR_VALUE_BYTES:
        raise FormatError("xattr %r value of %d bytes exceeds %d" % (key, len(value), MAX_XATTR_VALUE_BYTES))
    index, suffix, _ = names.get(key)
    return L.encode_xattr_entry(index, suffix, value)


def _shared_table_v1(nodes: List[_Inode], names: _XattrNames) -> Tuple[List[bytes], int]:
    """Step 3: sort each inode's xattrs, pick the shared ones; returns (table entries, table size)."""
    counts: Dict[Tuple[bytes, bytes], int] = {}
    for node in nodes:
        items = node.xattrs
        if items:
            items = node.xattrs = sorted(items.items())
            for pair in items:
                counts[pair] = counts.get(pair, 0) + 1
        else:
            node.xattrs = ()
    shared = sorted((pair for pair, count in counts.items() if count > 1),
                    key=lambda pair: (pair[0], len(pair[1]), pair[1]), reverse=True)
    offsets: Dict[Tuple[bytes, bytes], int] = {}
    table = []
    offset = 0
    for pair in shared:
        entry = _entry_bytes(names, pair[0], pair[1])
        offsets[pair] = offset
        table.append(entry)
        offset += len(entry)
    for node in nodes:
        shared_offsets = []
        local = []
        for pair in node.xattrs:
            found = offsets.get(pair)
            if found is not None and len(shared_offsets) < L.MAX_SHARED_PER_INODE:
                shared_offsets.append(found)
            else:
                local.append(_entry_bytes(names, pair[0], pair[1]))
        node.shared = shared_offsets
        node.local = local
        if node.xattrs:
            node.xattr_size = L.XATTR_HEADER_SIZE + 4 * len(shared_offsets) + sum(map(len, local))
            if L.xattr_icount(node.xattr_size) > _MAX_U16:
                raise FormatError("xattrs of one inode exceed the EROFS limit")
        else:
            node.xattr_size = 0
    return table, offset


def _data_sizes_v1(node: _Inode) -> None:
    """Blocks and inline tail of one inode before padding (compute_erofs_inode_size)."""
    kind = node.kind
    if kind == S_IFDIR:
        _dir_layout(node)
    elif kind == S_IFLNK:
        node.tail = node.size
    elif node.chunks:
        node.tail = 4 * node.chunks
    elif kind == S_IFREG and node.size:
        node.n_blocks, node.tail = divmod(node.size, _B)
        if node.tail > _HALF_BLOCK:
            node.n_blocks += 1
            node.tail = 0


def _check_extended(node: _Inode) -> None:
    if not (node.uid <= _MAX_U32 and node.gid <= _MAX_U32 and node.nlink <= _MAX_U32 and 0 <= node.nsec <= _MAX_U32
            and -(1 << 63) <= node.mtime < 1 << 63 and node.uid >= 0 and node.gid >= 0):
        raise FormatError("inode metadata out of range (uid %r, gid %r, mtime %r.%r, nlink %r)"
                          % (node.uid, node.gid, node.mtime, node.nsec, node.nlink))


def _place_inodes_v1(nodes: List[_Inode], min_time: Tuple[int, int]) -> int:
    """Step 4: compact or extended, padding, nid of every inode; returns the inode table end."""
    pos = _INODES_START
    for ino, node in enumerate(nodes):
        _data_sizes_v1(node)
        kind = node.kind
        size = node.n_blocks * _B + node.tail if kind == S_IFDIR else node.size
        node.compact = ((node.mtime, node.nsec) == min_time and node.nlink <= _MAX_U16 and node.uid <= _MAX_U16
                        and node.gid <= _MAX_U16 and size <= _MAX_U32 and node.uid >= 0 and node.gid >= 0)
        if not node.compact:
            _check_extended(node)
        head = (L.COMPACT_INODE_SIZE if node.compact else L.EXTENDED_INODE_SIZE) + node.xattr_size
        start = (pos + 31) & ~31
        tail = node.tail
        extra = 0
        if kind == S_IFLNK:
            total = head + tail
            if total >= _B:
                node.n_blocks += 1
                node.tail = 0
            if start // _B != (start + total - 1) // _B:
                extra = -start % _B
        elif tail:
            room = _B - (start + head) % _B
            if room < tail:
                extra = (room + 31) & ~31
                if tail > _B - (start + head + extra) % _B:
                    node.n_blocks += 1
                    node.tail = 0
                    extra = -start % _B
        node.ino = ino
        start += extra
        node.nid = start // L.SLOT_SIZE
        node.pad = start - pos
        pos = start + head + node.tail
    return (pos + 31) & ~31


def _file_type(node: _Inode) -> int:
    return L.FILE_TYPE_BY_IFMT[node.kind]


def _dirent_block(chunk) -> bytes:
    return L.encode_dirents([(name, node.nid, L.FILE_TYPE_BY_IFMT[node.kind]) for name, node in chunk])


def _inode_bytes(node: _Inode, names: _XattrNames, shared_base: int) -> List[bytes]:
    """Padding, header, xattr area and inline tail of one V0/V1 inode."""
    kind = node.kind
    layout = L.LAYOUT_FLAT_INLINE if node.tail else L.LAYOUT_FLAT_PLAIN
    u = node.blkaddr
    if kind == S_IFDIR:
        size = node.n_blocks * _B + node.tail
    elif kind == S_IFREG:
        size = node.size
        if node.chunks:
            layout = L.LAYOUT_CHUNK_BASED
            u = (u & 0xFFFF0000) | (L.chunk_bits(size) - L.LG_BLOCK_SIZE)
    elif kind == S_IFLNK:
        size = node.size if node.n_blocks else node.tail
    else:
        size = 0
        u = node.rdev
    icount = L.xattr_icount(node.xattr_size)
    if node.compact:
        head = L.COMPACT_INODE.pack(layout << 1, icount, node.mode, node.nlink, size, 0, u, node.ino, node.uid, node.gid)
    else:
        head = L.EXTENDED_INODE.pack(layout << 1 | 1, icount, node.mode, 0, size, u, node.ino, node.uid, node.gid,
                                     node.mtime & _U64_MASK, node.nsec, node.nlink)
    parts = [b"\0" * node.pad, head] if node.pad else [head]
    if icount:
        name_filter = 0
        for key, _ in node.xattrs:
            name_filter |= names.get(key)[2]
        parts.append(L.XATTR_HEADER.pack(~name_filter & _MAX_U32, len(node.shared)))
        if node.shared:
            parts.append(b"".join(L.U32.pack((shared_base + offset) >> 2) for offset in node.shared))
        parts.extend(node.local)
    if node.tail:
        if kind == S_IFDIR:
            parts.append(_dirent_block(node.chunk_lists[-1]))
        elif node.chunks:
            parts.append(L.NULL_CHUNK * node.chunks)
        else:
            parts.append(node.data[len(node.data) - node.tail:])
    return parts


def _block_bytes(node: _Inode) -> List[bytes]:
    """The data blocks of one V0/V1 inode, each padded to the block size."""
    parts = []
    if node.kind == S_IFDIR:
        chunks = node.chunk_lists
        for chunk in chunks[:node.n_blocks]:
            block = _dirent_block(chunk)
            parts.append(block + b"\0" * (_B - len(block)))
    elif node.chunks:
        parts.append(L.NULL_CHUNK * (_B // 4))
    else:
        for index in range(node.n_blocks):
            block = node.data[index * _B:(index + 1) * _B]
            parts.append(block + b"\0" * (_B - len(block)))
    return parts


def _write_v1(root: Directory, version: int, algorithm) -> bytes:
    nodes, version = _collect_v1(root, algorithm, version)
    names = _XattrNames(lustre=False)
    table, table_size = _shared_table_v1(nodes, names)
    min_time = min((node.mtime, node.nsec) for node in nodes)
    _check_extended(min(nodes, key=lambda node: (node.mtime, node.nsec)))
    inodes_end = _place_inodes_v1(nodes, min_time)
    data_start = L.round_up(inodes_end + table_size, _B)
    next_block = data_start // _B
    for node in nodes:
        if node.n_blocks:
            node.blkaddr = next_block
            next_block += node.n_blocks
    has_acl = any(key in (L.XATTR_POSIX_ACL_ACCESS, L.XATTR_POSIX_ACL_DEFAULT) for key in names.known)
    header = L.encode_header(L.ComposefsHeader(L.COMPOSEFS_MAGIC, L.COMPOSEFS_HEADER_VERSION,
                                               L.COMPOSEFS_FLAG_HAS_ACL if has_acl else 0, version))
    superblock = L.encode_superblock(L.Superblock(
        L.EROFS_MAGIC, 0, L.FEATURE_COMPAT_MTIME | L.FEATURE_COMPAT_XATTR_FILTER, L.LG_BLOCK_SIZE, 0, nodes[0].nid,
        len(nodes), min_time[0] & _U64_MASK, min_time[1], next_block, 0, inodes_end // _B, bytes(16), bytes(16),
        0, 0, 0, 0, 0, 0, 0, 0, 0))
    parts = [header, b"\0" * (L.SUPERBLOCK_OFFSET - len(header)), superblock]
    shared_base = inodes_end % _B
    for node in nodes:
        parts.extend(_inode_bytes(node, names, shared_base))
    image = bytearray(b"".join(parts))
    image.extend(b"\0" * (inodes_end - len(image)))
    image.extend(b"".join(table))
    image.extend(b"\0" * (data_start - len(image)))
    for node in nodes:
        if node.n_blocks:
            image.extend(b"".join(_block_bytes(node)))
    return bytes(image)


def write_image(root: Directory, version: int = 1, algorithm=fsverity.SHA256) -> bytes:
    """Return the composefs EROFS image of ``root`` (V1: ``mkcomposefs --min-version=1`` bytes).

    ``version`` 0 is mkcomposefs's default output, 1 its ``--min-version=1`` output, 2 the legacy
    composefs-rs format. ``algorithm`` is the repository's fs-verity algorithm: external files'
    digests must have its size. Raises FormatError for trees an image cannot hold.
    """
    if not isinstance(root, Directory):
        raise FormatError("the root of an image must be a directory")
    if version in (0, 1):
        return _write_v1(root, version, algorithm)
    if version == 2:
        return _write_v2(root, algorithm)
    raise FormatError("unknown composefs image version %r (expected 0, 1 or 2)" % (version,))


def _write_v2(root: Directory, algorithm) -> bytes:
    raise FormatError("V2 writing is not implemented yet")
