# -*- coding: utf-8 -*-
# Copyright: (c) 2026, bootc.composefs maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Write a ``tree.Directory`` as a V2 composefs EROFS image (the legacy composefs-rs format).

Layer: formats. Structures are described in ``layout.py``, the inodes shared with the V0/V1 writer
in ``inodes.py``; ``writer.write_image(root, version=2)`` is the entry point. Rules: composefs-rs
0.9 ``crates/composefs/src/erofs/writer.rs``; spec ``composefs-repo.md`` section 11.8.

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
"""

from __future__ import annotations

from typing import Dict, List, Tuple

from ansible_collections.bootc.composefs.plugins.module_utils.errors import FormatError
from ansible_collections.bootc.composefs.plugins.module_utils.formats.erofs import layout as L
from ansible_collections.bootc.composefs.plugins.module_utils.formats.erofs.inodes import (
    INODES_START,
    MAX_U32,
    S_IFBLK,
    S_IFCHR,
    S_IFDIR,
    S_IFLNK,
    S_IFREG,
    U64_MASK,
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
from ansible_collections.bootc.composefs.plugins.module_utils.formats.tree import Directory

__all__ = ["write_v2"]

_B = L.BLOCK_SIZE
_ADDED_V2 = (L.XATTR_METACOPY, L.XATTR_REDIRECT)


def _collect_v2(root: Directory, algorithm, directories: List[Inode]) -> List[Inode]:
    """V2: depth-first inode order (a directory, then its entries in name order, each subtree whole)."""
    root_node = Inode(S_IFDIR, root.stat, 2)
    directories.append(root_node)
    verity = verity_params(algorithm)
    nodes = [root_node]
    leaf_nodes: Dict[int, Inode] = {}
    seen_dirs = {id(root)}
    check_names(root.entries)
    stack = [(root_node, iter(sorted(root.entries.items())), [(b".", root_node), (b"..", root_node)])]
    while stack:
        node, items, entries = stack[-1]
        for name, child in items:
            if isinstance(child, Directory):
                if id(child) in seen_dirs:
                    raise FormatError("directory %r appears twice in the tree" % (name,))
                seen_dirs.add(id(child))
                child_node = Inode(S_IFDIR, child.stat, 2)
                directories.append(child_node)
                nodes.append(child_node)
                node.nlink += 1
                entries.append((name, child_node))
                check_names(child.entries)
                stack.append((child_node, iter(sorted(child.entries.items())), [(b".", child_node), (b"..", node)]))
                break
            child_node = leaf_nodes.get(id(child))
            if child_node is None:
                child_node = leaf_nodes[id(child)] = leaf_inode(child, verity, False)
                nodes.append(child_node)
            else:
                child_node.nlink += 1
            entries.append((name, child_node))
        else:
            stack.pop()
            entries.sort(key=entry_name)
            node.entries = entries
    return nodes


def _prepare_v2(nodes: List[Inode], names: XattrNames) -> Tuple[List[bytes], int]:
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
            dir_chunks(node)
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
    split_xattrs(nodes, names, offsets, len(nodes) * 256)
    return table, size


def _place_inodes_v2(nodes: List[Inode]) -> int:
    """Extended inodes; a FlatInline tail that would end in another block than its inode's metadata
    moves the inode past that block's end (composefs-rs ``pad_inline_tail_v2``). Where even that
    leaves the tail across a block boundary (composefs-rs then writes an image fsck.erofs rejects),
    the tail goes to a data block instead."""
    pos = INODES_START
    for node in nodes:
        check_extended(node)
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


def _emit_inodes_v2(nodes: List[Inode], inodes_end: int, out: List[bytes]) -> None:
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
                        node.mtime & U64_MASK, 0, node.nlink))
        if xattr_size:
            out.append(L.XATTR_HEADER.pack(~node.name_filter & MAX_U32, len(node.shared)))
            out.extend(L.U32.pack((inodes_end + offset) >> 2) for offset in node.shared)
            out.append(node.local)
        if node.tail:
            if kind == S_IFDIR:
                out.append(dirent_block(node.chunk_lists[-1]))
            elif node.chunks:
                out.append(L.NULL_CHUNK)
            else:
                out.append(node.data[len(node.data) - node.tail:])


def write_v2(root: Directory, algorithm, directories: List[Inode]) -> bytes:
    """Return the V2 image of ``root`` (see the module docstring); ``directories`` collects the directory inodes."""
    nodes = _collect_v2(root, algorithm, directories)
    names = XattrNames(lustre=True)
    table, table_size = _prepare_v2(nodes, names)
    inodes_end = _place_inodes_v2(nodes)
    data_start = L.round_up(inodes_end + table_size, _B)
    next_block = data_start // _B
    for node in nodes:
        if node.n_blocks:
            node.blkaddr = next_block
            next_block += node.n_blocks
    out = superblock_parts(nodes, 2, 0, (0, 0), next_block, 0)
    _emit_inodes_v2(nodes, inodes_end, out)
    out.append(bytes(inodes_end - sum(map(len, out))))
    out.extend(table)
    out.append(bytes(data_start - inodes_end - table_size))
    emit_data_blocks(nodes, out)
    return b"".join(out)
