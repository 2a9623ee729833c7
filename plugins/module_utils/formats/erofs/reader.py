# -*- coding: utf-8 -*-
# Copyright: (c) 2026, bootc.composefs maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read composefs EROFS images (V0, V1 from mkcomposefs; V2 from composefs-rs) into values.

Layer: formats. Structures are described in ``layout.py``; spec ``composefs-repo.md`` sections
11.1-11.9. Upstream readers: C composefs 1.0.8 ``lcfs_load_node_from_image`` (what ``composefs-info``
prints) and composefs-rs 0.9 ``crates/composefs/src/erofs/reader.rs`` (``collect_objects``).

``read_image`` checks the framing (section 11.7: size <= 1 GiB, magics, versions, block size, no
compression / extra devices / custom prefixes / packed inode, ``meta_blkaddr`` 0). Everything else
is checked when it is read: every offset against the buffer, every directory visited once (a second
visit means a loop or a hardlinked directory), data layouts, name offsets. Malformed input raises
``FormatError`` and nothing else; the work is bounded by the image size.

``ErofsImage.to_tree`` undoes what the writers add, as ``composefs-info dump`` does:

- ``trusted.overlay.metacopy`` gives ``fsverity_digest``, ``trusted.overlay.redirect`` the backing
  path (kept in ``backing_path`` only when it is not the digest's object path); both are dropped;
- ``trusted.overlay.overlay.X`` becomes ``trusted.overlay.X``; other ``trusted.overlay.*`` are dropped;
- V0/V1: character devices 0:0 (the whiteout stubs) are skipped; a regular file carrying
  ``trusted.overlay.overlay.whiteout`` is a user whiteout again (character device 0:0), and the
  markers ``trusted.overlay.overlay.whiteouts``, ``user.overlay.whiteout(s)`` are dropped. The opaque
  markers a whiteout's directory got (``trusted.overlay.opaque=x``, ``user.overlay.opaque=x``) are
  kept, as composefs-info keeps them; writing the tree again adds the same values;
- V2: nothing is escaped by composefs-rs besides ``trusted.overlay.*``, so whiteouts are plain
  character devices 0:0 and are kept;
- xattrs come in image order, local entries before shared ones (composefs-info's order);
- inodes met twice are one shared leaf (a hardlink); ``nlink`` is not kept (writers derive it).
"""

from __future__ import annotations

from typing import Dict, Iterator, List, NamedTuple, Optional, Set, Tuple

from ansible_collections.bootc.composefs.plugins.module_utils.errors import FormatError
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

__all__ = ["ErofsImage", "Inode", "read_image", "referenced_objects"]

_B = L.BLOCK_SIZE
_MIN_IMAGE_BYTES = L.SUPERBLOCK_OFFSET + L.SUPERBLOCK.size
S_IFREG, S_IFDIR, S_IFLNK = 0o100000, 0o040000, 0o120000
S_IFCHR, S_IFBLK, S_IFIFO, S_IFSOCK = 0o020000, 0o060000, 0o010000, 0o140000
_DOTS = (b".", b"..")
_V1_DROPPED = frozenset((L.XATTR_ESCAPED_WHITEOUTS, L.XATTR_USER_WHITEOUT, L.XATTR_USER_WHITEOUTS))


class Inode(NamedTuple):
    """One inode: where it is, its header, and where its xattrs and inline tail are."""

    nid: int
    offset: int
    header: L.InodeHeader
    xattr_offset: int
    xattr_size: int
    inline_offset: int
    inline_size: int

    @property
    def kind(self) -> int:
        return self.header.mode & L.S_IFMT


class ErofsImage:
    """A validated composefs image in memory; see ``read_image``."""

    def __init__(self, buf, header: L.ComposefsHeader, superblock: L.Superblock) -> None:
        self.buf = buf
        self.header = header
        self.superblock = superblock
        self._inodes: Dict[int, Inode] = {}

    @property
    def composefs_version(self) -> int:
        return self.header.composefs_version

    @property
    def root_nid(self) -> int:
        return self.superblock.root_nid

    def inode(self, nid: int) -> Inode:
        """Return the inode ``nid`` (checked: header, xattr area and inline tail inside the image)."""
        found = self._inodes.get(nid)
        if found is not None:
            return found
        buf = self.buf
        offset = self.superblock.meta_blkaddr * _B + L.SLOT_SIZE * nid
        if nid < 0 or offset + L.COMPACT_INODE_SIZE > len(buf):
            raise FormatError("inode nid %d lies outside the image" % nid, offset)
        header = L.parse_inode_header(buf, offset, self.superblock.build_time, self.superblock.build_time_nsec)
        if header.data_layout not in L.LAYOUT_NAMES:
            raise FormatError("inode %d: unsupported data layout %d" % (nid, header.data_layout), offset)
        kind = header.mode & L.S_IFMT
        if kind not in L.FILE_TYPE_BY_IFMT:
            raise FormatError("inode %d: invalid mode %o" % (nid, header.mode), offset)
        xattr_offset = offset + header.header_size
        xattr_size = L.xattr_area_size(header.xattr_icount)
        inline_offset = xattr_offset + xattr_size
        inline_size = 0
        if header.data_layout == L.LAYOUT_FLAT_INLINE:
            inline_size = header.size % _B
        if inline_offset + inline_size > len(buf):
            raise FormatError("inode %d: xattrs or inline data extend past the end of the image" % nid, offset)
        if header.data_layout != L.LAYOUT_CHUNK_BASED:
            if header.size > len(buf):
                raise FormatError("inode %d: size %d is larger than the image" % (nid, header.size), offset)
            blocks = self._block_count(header)
            if blocks and (header.u + blocks) * _B > len(buf):
                raise FormatError("inode %d: data blocks from %d lie outside the image" % (nid, header.u), offset)
        elif kind != S_IFREG:
            raise FormatError("inode %d: only regular files may be chunk-based" % nid, offset)
        found = self._inodes[nid] = Inode(nid, offset, header, xattr_offset, xattr_size, inline_offset, inline_size)
        return found

    @staticmethod
    def _block_count(header: L.InodeHeader) -> int:
        if header.data_layout == L.LAYOUT_FLAT_INLINE:
            return header.size // _B
        if header.data_layout == L.LAYOUT_FLAT_PLAIN and header.mode & L.S_IFMT in (S_IFREG, S_IFDIR, S_IFLNK):
            return (header.size + _B - 1) // _B
        return 0

    def xattrs(self, inode: Inode) -> List[Tuple[L.XattrEntry, bool]]:
        """The inode's xattr entries as ``(entry, is_shared)``: local ones first, then shared ones."""
        if not inode.xattr_size:
            return []
        buf = self.buf
        end = inode.xattr_offset + inode.xattr_size
        _filter, shared_count = L.XATTR_HEADER.unpack_from(buf, inode.xattr_offset)
        pos = inode.xattr_offset + L.XATTR_HEADER_SIZE + 4 * shared_count
        if pos > end:
            raise FormatError("inode %d: %d shared xattr ids overflow the xattr area" % (inode.nid, shared_count), inode.offset)
        ids = [L.U32.unpack_from(buf, inode.xattr_offset + L.XATTR_HEADER_SIZE + 4 * i)[0] for i in range(shared_count)]
        entries = []
        while pos + L.XATTR_ENTRY_HEADER_SIZE <= end:
            entry, pos = L.parse_xattr_entry(buf, pos, end)
            entries.append((entry, False))
        base = self.superblock.xattr_blkaddr * _B
        for shared_id in ids:
            if base + 4 * shared_id + L.XATTR_ENTRY_HEADER_SIZE > len(buf):
                raise FormatError("inode %d: shared xattr %d lies outside the image" % (inode.nid, shared_id), inode.offset)
            entry = L.parse_xattr_entry(buf, base + 4 * shared_id, len(buf))[0]
            entries.append((entry, True))
        return entries

    def data(self, inode: Inode) -> bytes:
        """The bytes of a flat (not chunk-based) inode: its blocks followed by its inline tail."""
        header = inode.header
        if header.data_layout == L.LAYOUT_CHUNK_BASED:
            raise FormatError("inode %d: a chunk-based file keeps its data outside the image" % inode.nid, inode.offset)
        start = header.u * _B
        if header.data_layout == L.LAYOUT_FLAT_PLAIN:
            return bytes(self.buf[start:start + header.size])
        block_bytes = header.size - inode.inline_size
        return bytes(self.buf[start:start + block_bytes]) + bytes(self.buf[inode.inline_offset:inode.inline_offset + inode.inline_size])

    def dirents(self, inode: Inode) -> List[L.Dirent]:
        """All entries of a directory inode, ``.`` and ``..`` included, in image order."""
        header = inode.header
        if inode.kind != S_IFDIR:
            raise FormatError("inode %d is not a directory" % inode.nid, inode.offset)
        entries: List[L.Dirent] = []
        block_bytes = header.size - inode.inline_size
        for index in range((block_bytes + _B - 1) // _B):
            size = min(_B, block_bytes - index * _B)
            entries.extend(L.parse_dirents(self.buf, (header.u + index) * _B, size))
        if inode.inline_size:
            entries.extend(L.parse_dirents(self.buf, inode.inline_offset, inode.inline_size))
        return entries

    def walk(self) -> Iterator[Tuple[bytes, Inode]]:
        """Yield ``(path, inode)`` for the root and every entry below it (depth-first, image order).

        Every path is listed (whiteout stubs too); a directory reached twice raises FormatError.
        """
        root = self.inode(self.root_nid)
        seen = {root.nid}
        stack = [(b"/", root)]
        while stack:
            path, inode = stack.pop()
            yield path, inode
            if inode.kind != S_IFDIR:
                continue
            base = path if path == b"/" else path + b"/"
            children = []
            for entry in self.dirents(inode):
                if entry.name in _DOTS:
                    continue
                child = self.inode(entry.nid)
                if child.kind == S_IFDIR:
                    if child.nid in seen:
                        raise FormatError("directory inode %d is reached twice" % child.nid, child.offset)
                    seen.add(child.nid)
                children.append((base + entry.name, child))
            stack.extend(reversed(children))

    def to_tree(self) -> Directory:
        """Return the filesystem tree the image holds (see the module docstring for the rules)."""
        return _TreeBuilder(self).build()


class _TreeBuilder:
    """Turns inodes into tree nodes, sharing the leaf of an inode met twice."""

    def __init__(self, image: ErofsImage) -> None:
        self.image = image
        self.legacy = image.composefs_version == 2
        self.leaves: Dict[int, object] = {}

    def stat_and_extras(self, inode: Inode):
        """(Stat, fsverity_digest, redirect, is_escaped_whiteout) of an inode."""
        header = inode.header
        xattrs: Dict[bytes, bytes] = {}
        digest = redirect = None
        whiteout = False
        is_file = inode.kind == S_IFREG
        for entry, _shared in self.image.xattrs(inode):
            name = L.join_xattr_name(entry.name_index, entry.suffix)
            value = entry.value
            if not self.legacy and name in _V1_DROPPED:
                continue
            if name.startswith(L.XATTR_OVERLAY_PREFIX):
                if name == L.XATTR_REDIRECT:
                    if is_file:
                        redirect = value[1:] if len(value) > 1 and value[:1] == b"/" else value
                    continue
                if name == L.XATTR_METACOPY:
                    if is_file and value:
                        parsed = L.parse_metacopy(value)
                        if parsed is None:
                            raise FormatError("inode %d: malformed overlay.metacopy value" % inode.nid, inode.offset)
                        digest = parsed[1]
                    continue
                if not self.legacy and name == L.XATTR_ESCAPED_WHITEOUT and is_file:
                    whiteout = True
                    continue
                if not name.startswith(L.XATTR_ESCAPED_PREFIX):
                    continue
                name = L.XATTR_OVERLAY_PREFIX + name[len(L.XATTR_ESCAPED_PREFIX):]
            xattrs[name] = value
        stat = Stat(header.mode, header.uid, header.gid, header.mtime, header.mtime_nsec, xattrs)
        return stat, digest, redirect, whiteout

    def leaf(self, inode: Inode):
        """The tree leaf of a non-directory inode, or None for a whiteout stub to skip."""
        found = self.leaves.get(inode.nid)
        if found is not None:
            return found
        kind = inode.kind
        header = inode.header
        if kind == S_IFCHR and header.u == 0 and not self.legacy:
            return None
        stat, digest, redirect, whiteout = self.stat_and_extras(inode)
        if whiteout:
            stat.mode = S_IFCHR | (stat.mode & 0o7777)
            leaf = Device(stat, 0)
        elif kind == S_IFREG:
            leaf = self.regular_file(inode, stat, digest, redirect)
        elif kind == S_IFLNK:
            target = self.image.data(inode)
            if not target or len(target) >= 4096 or b"\0" in target:
                raise FormatError("inode %d: invalid symlink target %r" % (inode.nid, target[:64]), inode.offset)
            leaf = Symlink(stat, target)
        elif kind in (S_IFCHR, S_IFBLK):
            leaf = Device(stat, header.u)
        elif kind == S_IFIFO:
            leaf = Fifo(stat)
        else:
            leaf = Socket(stat)
        self.leaves[inode.nid] = leaf
        return leaf

    def regular_file(self, inode: Inode, stat: Stat, digest: Optional[bytes], redirect: Optional[bytes]) -> RegularFile:
        size = inode.header.size
        if inode.header.data_layout != L.LAYOUT_CHUNK_BASED:
            return RegularFile(stat, size, self.image.data(inode) if size else None)
        if size == 0:
            return RegularFile(stat, 0)
        if redirect is not None and digest is not None and redirect == object_pathname(digest):
            redirect = None
        return RegularFile(stat, size, None, digest, redirect)

    def build(self) -> Directory:
        image = self.image
        root_inode = image.inode(image.root_nid)
        if root_inode.kind != S_IFDIR:
            raise FormatError("the root inode %d is not a directory" % root_inode.nid, root_inode.offset)
        root = Directory(self.stat_and_extras(root_inode)[0], {}, root_inode.header.size)
        seen = {root_inode.nid}
        stack = [(root_inode, root)]
        while stack:
            inode, directory = stack.pop()
            for entry in image.dirents(inode):
                name = entry.name
                if name in _DOTS:
                    continue
                child_inode = image.inode(entry.nid)
                if child_inode.kind == S_IFDIR:
                    if child_inode.nid in seen:
                        raise FormatError("directory inode %d is reached twice" % child_inode.nid, child_inode.offset)
                    seen.add(child_inode.nid)
                    child = Directory(self.stat_and_extras(child_inode)[0], {}, child_inode.header.size)
                    stack.append((child_inode, child))
                else:
                    child = self.leaf(child_inode)
                    if child is None:
                        continue
                if name in directory.entries:
                    raise FormatError("directory inode %d holds %r twice" % (inode.nid, name), inode.offset)
                directory.entries[name] = child
        return root


def _check_framing(buf) -> Tuple[L.ComposefsHeader, L.Superblock]:
    size = len(buf)
    if size > L.MAX_IMAGE_BYTES:
        raise FormatError("image of %d bytes exceeds the %d byte limit" % (size, L.MAX_IMAGE_BYTES))
    if size < _MIN_IMAGE_BYTES:
        raise FormatError("image of %d bytes is too short for a superblock" % size, 0)
    header = L.parse_header(buf)
    if header.magic != L.COMPOSEFS_MAGIC:
        raise FormatError("bad composefs magic 0x%08x (expected 0x%08x)" % (header.magic, L.COMPOSEFS_MAGIC), 0)
    if header.version != L.COMPOSEFS_HEADER_VERSION:
        raise FormatError("unsupported composefs header version %d" % header.version, 4)
    if header.composefs_version not in L.COMPOSEFS_VERSIONS:
        raise FormatError("unsupported composefs_version %d" % header.composefs_version, 12)
    sb = L.parse_superblock(buf)
    checks = (
        (sb.magic == L.EROFS_MAGIC, 0, "bad EROFS magic 0x%08x" % sb.magic),
        (sb.blkszbits == L.LG_BLOCK_SIZE, 12, "block size bits %d (only 12 is supported)" % sb.blkszbits),
        (not sb.feature_compat & ~L.FEATURE_COMPAT_KNOWN, 8, "unknown compat features 0x%x" % sb.feature_compat),
        (not sb.feature_incompat & ~L.FEATURE_INCOMPAT_CHUNKED_FILE, 80, "unsupported incompat features 0x%x" % sb.feature_incompat),
        (sb.extslots == 0, 13, "extra superblock slots are not supported"),
        (sb.available_compr_algs == 0, 84, "compression is not supported"),
        (sb.extra_devices == 0, 86, "extra devices are not supported"),
        (sb.packed_nid == 0, 96, "packed inodes are not supported"),
        (sb.meta_blkaddr == 0, 40, "meta_blkaddr %d (composefs uses 0)" % sb.meta_blkaddr),
        (sb.xattr_prefix_count == 0, 91, "custom xattr prefixes are not supported"),
    )
    for ok, where, message in checks:
        if not ok:
            raise FormatError(message, L.SUPERBLOCK_OFFSET + where)
    return header, sb


def read_image(buf) -> ErofsImage:
    """Return the composefs image in ``buf`` (bytes-like), its framing checked (spec 11.1, 11.7)."""
    try:
        data = memoryview(buf).cast("B")
    except TypeError as err:
        raise FormatError("image is not a contiguous bytes-like object: %s" % err) from None
    header, superblock = _check_framing(data)
    return ErofsImage(data, header, superblock)


def _redirect_digest(value: bytes, digest_size: int) -> Optional[bytes]:
    path = value[1:] if value[:1] == b"/" else value
    path = path[-(2 * digest_size + 1):]
    if len(path) != 2 * digest_size + 1 or path[2:3] != b"/":
        return None
    try:
        return bytes.fromhex((path[:2] + path[3:]).decode("ascii"))
    except ValueError:
        return None


def referenced_objects(buf, algorithm) -> Set[bytes]:
    """Raw fs-verity digests the image names in metacopy and redirect xattrs (spec 11.5-11.6).

    Every inode reachable from the root is visited once; digests of another algorithm are ignored.
    """
    image = read_image(buf)
    size = algorithm.digest_size
    found: Set[bytes] = set()
    visited = set()
    todo = [image.root_nid]
    while todo:
        nid = todo.pop()
        if nid in visited:
            continue
        visited.add(nid)
        inode = image.inode(nid)
        for entry, _shared in image.xattrs(inode):
            if entry.name_index != 4:
                continue
            if entry.suffix == b"overlay.metacopy":
                parsed = L.parse_metacopy(entry.value)
                if parsed is not None and parsed[0] == algorithm.kernel_id and len(parsed[1]) == size:
                    found.add(parsed[1])
            elif entry.suffix == b"overlay.redirect":
                digest = _redirect_digest(entry.value, size)
                if digest is not None:
                    found.add(digest)
        if inode.kind == S_IFDIR:
            todo.extend(entry.nid for entry in image.dirents(inode) if entry.name not in _DOTS and entry.nid not in visited)
    return found
