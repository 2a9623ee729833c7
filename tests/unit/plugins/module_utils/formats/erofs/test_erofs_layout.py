# -*- coding: utf-8 -*-
"""EROFS layout helpers: record round trips, dirent parsing errors, xattr names, chunk sizes.

Expected values come from the composefs-rs snapshot (name filter), the C sources' rules (chunk bits,
prefix table) and mkcomposefs images (via test_erofs_oracle.py, which checks every byte)."""

import pytest

from ansible_collections.bootc.composefs.plugins.module_utils.errors import FormatError
from ansible_collections.bootc.composefs.plugins.module_utils.formats.erofs import layout


def test_header_and_superblock_round_trip():
    header = layout.ComposefsHeader(layout.COMPOSEFS_MAGIC, 1, 1, 2)
    assert layout.parse_header(layout.encode_header(header)) == header
    superblock = layout.Superblock(layout.EROFS_MAGIC, 0, 6, 12, 0, 36, 8, (1 << 64) - 5, 7, 9, 0, 3, b"u" * 16, b"v" * 16,
                                   4, 0, 0, 0, 0, 0, 0, 0, 0)
    raw = b"\0" * layout.SUPERBLOCK_OFFSET + layout.encode_superblock(superblock)
    assert len(raw) == 1152
    assert layout.parse_superblock(raw) == superblock


@pytest.mark.parametrize("inode", [
    layout.InodeHeader(False, 2, 3, 0o100644, 5, 4000, 17, 9, 65535, 1, -5, 3),
    layout.InodeHeader(True, 4, 0, 0o020600, 70000, 1 << 40, 31, 2, 1 << 31, 7, -(1 << 40), 999999999),
])
def test_inode_header_round_trip(inode):
    raw = layout.encode_inode_header(inode)
    assert len(raw) == inode.header_size
    parsed = layout.parse_inode_header(raw, 0, build_time=(1 << 64) - 5, build_time_nsec=3)
    assert parsed == inode


def test_truncated_records_raise_format_error():
    with pytest.raises(FormatError, match="extends past the end"):
        layout.parse_header(b"\0" * 31)
    with pytest.raises(FormatError, match="extended inode header"):
        layout.parse_inode_header(b"\x01" + b"\0" * 40, 0)


def test_dirents_round_trip():
    entries = [(b".", 36, layout.FT_DIR), (b"..", 36, layout.FT_DIR), (b"a", 40, layout.FT_REG), (b"bb", 41, layout.FT_LNK)]
    raw = layout.encode_dirents(entries)
    assert len(raw) == 4 * 12 + 1 + 2 + 1 + 2
    assert layout.parse_dirents(raw, 0, len(raw)) == [layout.Dirent(*entry) for entry in entries]
    # the last name of a full block stops at the first NUL
    block = raw + b"\0" * (4096 - len(raw))
    assert layout.parse_dirents(block, 0, 4096)[-1].name == b"bb"


@pytest.mark.parametrize("raw, message", [
    (b"\0" * 11, "holds no entry"),
    (b"\0" * 8 + b"\x00\x00" + b"\0" * 2 + b"x", "first name offset 0"),
    (b"\0" * 8 + b"\x0d\x00" + b"\0" * 2 + b"x", "first name offset 13"),
    (b"\0" * 8 + b"\x30\x00" + b"\0" * 2 + b"x", "first name offset 48"),
    (b"\0" * 8 + b"\x0c\x00" + b"\0" * 2, "not inside the block"),
    (b"\0" * 8 + b"\x0c\x00\x01\x00" + b"a/b", "invalid name"),
    (b"\0" * 8 + b"\x0c\x00\x01\x00" + b"\0", "invalid name"),
])
def test_bad_dirents(raw, message):
    with pytest.raises(FormatError, match=message):
        layout.parse_dirents(raw, 0, len(raw))


@pytest.mark.parametrize("name, c_split, rs_split", [
    (b"user.foo", (1, b"foo"), (1, b"foo")),
    (b"system.posix_acl_access", (2, b""), (2, b"")),
    (b"system.posix_acl_default", (3, b""), (3, b"")),
    (b"trusted.overlay.metacopy", (4, b"overlay.metacopy"), (4, b"overlay.metacopy")),
    (b"security.selinux", (6, b"selinux"), (6, b"selinux")),
    (b"lustre.lov", (0, b"lustre.lov"), (5, b"lov")),
    (b"system.nfs4_acl", (0, b"system.nfs4_acl"), (0, b"system.nfs4_acl")),
])
def test_xattr_name_split(name, c_split, rs_split):
    assert layout.split_xattr_name(name) == c_split
    assert layout.split_xattr_name(name, lustre=True) == rs_split
    assert layout.join_xattr_name(*rs_split) == name


def test_xattr_entry_round_trip_and_bounds():
    raw = layout.encode_xattr_entry(4, b"overlay.redirect", b"/ab/cd")
    assert len(raw) % 4 == 0
    entry, end = layout.parse_xattr_entry(raw, 0, len(raw))
    assert entry == layout.XattrEntry(4, b"overlay.redirect", b"/ab/cd") and end == len(raw)
    with pytest.raises(FormatError, match="past its area"):
        layout.parse_xattr_entry(raw, 0, len(raw) - 4)
    with pytest.raises(FormatError, match="not a known prefix"):
        layout.parse_xattr_entry(b"\x01\x07\x00\x00x\0\0\0", 0, 8)


def test_name_filter_of_the_snapshot_inode():
    # composefs-rs mkfs__simple.snap: the external file's name_filter is U32(2147352575)
    bits = layout.xattr_filter_bit(4, b"overlay.metacopy") | layout.xattr_filter_bit(4, b"overlay.redirect")
    assert ~bits & 0xFFFFFFFF == 2147352575


@pytest.mark.parametrize("size, bits", [(1, 12), (4096, 12), (4097, 13), (1 << 32, 32), ((1 << 32) + 1, 33),
                                        (1 << 43, 43), ((1 << 43) + 1, 43), (1 << 60, 43)])
def test_chunk_bits(size, bits):
    assert layout.chunk_bits(size) == bits


def test_metacopy():
    value = layout.encode_metacopy(b"\x5a" * 32, 1)
    assert value == b"\x00\x24\x00\x01" + b"\x5a" * 32
    assert layout.parse_metacopy(value) == (1, b"\x5a" * 32)
    assert layout.parse_metacopy(layout.encode_metacopy(b"\x01" * 64, 2)) == (2, b"\x01" * 64)
    for bad in (b"", b"\x00\x24\x00", b"\x01" + value[1:], value[:-1], b"\x00\x24\x00\x02" + b"\x5a" * 32):
        assert layout.parse_metacopy(bad) is None


def test_xattr_area_sizes():
    assert [layout.xattr_area_size(n) for n in (0, 1, 2, 37)] == [0, 12, 16, 156]
    assert [layout.xattr_icount(n) for n in (0, 12, 16, 156)] == [0, 1, 2, 37]
