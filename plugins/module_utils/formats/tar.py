# -*- coding: utf-8 -*-
# Copyright: (c) 2026, bootc.composefs maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tar archives (OCI layers): a streaming reader, the composefs split, and layer tree entries.

Layer: formats. An OCI layer is a tar archive (POSIX.1-1988 ustar, GNU or POSIX.1-2001 pax
dialect). composefs stores it as a *split stream* (spec ``composefs-repo.md`` §10.2): the archive
bytes in order, where the content of every regular file larger than ``INLINE_CONTENT_MAX`` bytes is
replaced by a reference to a repository object (named by its fs-verity digest), and everything
else stays inline. Concatenating the inline bytes and the referenced objects gives back the
archive byte for byte, so the layer's ``diff_id`` (sha256 of the tar) stays verifiable.
Upstream: composefs-rs ``crates/composefs-oci/src/tar.rs`` (``split_async``, ``get_entry``) and
the sans-IO parser it uses, composefs/tar-core ``src/parse.rs``.

Blocks
------
An archive is a sequence of 512-byte blocks: for each member, one or more header blocks, then
its content rounded up to a whole block (the tail of the last block is *padding*, normally zero,
but kept as found). The archive ends with two all-zero blocks; writers may add more zero blocks
to fill a record (GNU tar: 20 blocks of 512 bytes, Python's tarfile: the same). A header block:

    offset  size  field      encoding
    0       100   name       bytes up to the first NUL
    100     8     mode       numeric (below); permission bits, sometimes with S_IFMT bits too
    108     8     uid        numeric
    116     8     gid        numeric
    124     12    size       numeric: content length in bytes
    136     12    mtime      numeric: seconds since the epoch
    148     8     chksum     octal: sum of the 512 header bytes, this field counted as 8 spaces
    156     1     typeflag   '0'/NUL regular, '1' hard link, '2' symlink, '3' char device,
                             '4' block device, '5' directory, '6' fifo, '7' contiguous (regular),
                             'L'/'K' GNU long name/link, 'x'/'g' pax headers, 'S' GNU sparse
    157     100   linkname   bytes up to the first NUL: hard link or symlink target
    257     6     magic      "ustar\\0" (POSIX, version "00") or "ustar " (GNU, version " \\0");
                             anything else is an old (v7) header without the fields below
    263     2     version
    265     32    uname      bytes up to the first NUL (informative only)
    297     32    gname      bytes up to the first NUL (informative only)
    329     8     devmajor   numeric
    337     8     devminor   numeric
    345     155   prefix     POSIX ustar only: directory part of the name (name = prefix/name);
                             GNU headers keep atime/ctime/sparse data here instead
    500     12    (unused)

Numeric fields are ASCII octal, optionally surrounded by spaces and ended by NUL or space; an
empty field reads as 0. GNU *base-256*: when the top bit of the first byte is set, the field is a
big-endian two's complement binary number (first byte 0x80: positive, the 0x80 bit masked off;
0xff: negative). Only ``mtime`` may be negative here; anything else negative is rejected.
The checksum is accepted as the unsigned or the signed (historic) byte sum.

Extended headers (only recognised when the block has the ustar or GNU magic, as tar-core does;
``g`` is recognised always). Each is a header block whose content is data for the next member:

- GNU ``L`` (long name) / ``K`` (long link target): content is the path, NUL-terminated;
- pax ``x``: records ``"<len> <key>=<value>\\n"`` (``len`` is the whole record's length, in
  decimal). Keys used: ``path``, ``linkpath``, ``size``, ``uid``, ``gid``, ``mtime`` (decimal
  seconds, optionally ``.fraction``: up to 9 digits give nanoseconds, the rest are truncated),
  ``uname``, ``gname``, ``SCHILY.xattr.<name>`` (value = raw xattr bytes), and
  ``LIBARCHIVE.xattr.<url-encoded name>`` (value = base64 without padding); when both name the
  same attribute the SCHILY value wins. Other keys (atime, ctime, comment...) are ignored.
- pax ``g`` (global header): kept in the byte stream, its records are not applied (composefs-rs
  ignores them too).

Priorities for the path: pax ``path`` > GNU ``L`` > ustar ``prefix/name`` > ``name``; for the
link target: pax ``linkpath`` > GNU ``K`` > ``linkname``. A member may have at most one of each
extension kind and ``MAX_EXTENSION_HEADERS`` headers in all, whose content adds up to at most
``MAX_EXTENSION_BYTES``. Hard links, symlinks, devices, directories and fifos must have size 0
(tar-core rejects them otherwise: readers disagree on where the next header is).

Not supported, rejected with ``FormatError``: sparse files, both GNU ``S`` members and pax
``GNU.sparse.*`` members (composefs-rs rejects them as well; container layers never contain
them); a lone zero block followed by more data (an archive-confusion vector; a lone zero block at
the very end is accepted as the end). Other unknown type flags (``D``, ``V``, ``M``...) pass through
the split with their content inline, but cannot become tree entries.

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
"""

from __future__ import annotations

import base64
import binascii
import io
import stat as _stat
import struct
from dataclasses import dataclass, field
from typing import Callable, Dict, Iterable, Iterator, NamedTuple, Optional, Tuple

from ansible_collections.bootc.composefs.plugins.module_utils.errors import ComposefsError, FormatError
from ansible_collections.bootc.composefs.plugins.module_utils.formats import tree

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

# --- blocks and header layout -------------------------------------------------------------

BLOCK_SIZE = 512
ZERO_BLOCK = bytes(BLOCK_SIZE)

# One ustar header block; the fields, in order, as in the table of the module docstring.
HEADER_STRUCT = struct.Struct("100s8s8s8s12s12s8s1s100s6s2s32s32s8s8s155s12s")
CHKSUM_OFFSET = 148
CHKSUM_SIZE = 8

USTAR_MAGIC = b"ustar\x00"
USTAR_VERSION = b"00"
GNU_MAGIC = b"ustar "
GNU_VERSION = b" \x00"

# Header dialect told by magic + version.
FORMAT_USTAR = "ustar"
FORMAT_GNU = "gnu"
FORMAT_V7 = "v7"

# Type flags.
REGULAR_TYPES = (b"0", b"\x00", b"7")
HARDLINK_TYPE = b"1"
SYMLINK_TYPE = b"2"
CHAR_TYPE = b"3"
BLOCK_TYPE = b"4"
DIRECTORY_TYPE = b"5"
FIFO_TYPE = b"6"
GNU_LONGNAME_TYPE = b"L"
GNU_LONGLINK_TYPE = b"K"
PAX_LOCAL_TYPE = b"x"
PAX_GLOBAL_TYPE = b"g"
GNU_SPARSE_TYPE = b"S"
# Entry types that carry no content: their size must be 0.
HEADER_ONLY_TYPES = (HARDLINK_TYPE, SYMLINK_TYPE, CHAR_TYPE, BLOCK_TYPE, DIRECTORY_TYPE, FIFO_TYPE)
# Type flag -> kind name used by TarEntry.kind.
KIND_BY_TYPE = {
    b"0": "file", b"\x00": "file", b"7": "file",
    HARDLINK_TYPE: "hardlink", SYMLINK_TYPE: "symlink", CHAR_TYPE: "chardev", BLOCK_TYPE: "blockdev",
    DIRECTORY_TYPE: "directory", FIFO_TYPE: "fifo",
}
# Kind -> S_IFMT bits of the tree node.
IFMT_BY_KIND = {
    "file": _stat.S_IFREG, "symlink": _stat.S_IFLNK, "chardev": _stat.S_IFCHR, "blockdev": _stat.S_IFBLK,
    "directory": _stat.S_IFDIR, "fifo": _stat.S_IFIFO,
}

# pax keys.
PAX_PATH = b"path"
PAX_LINKPATH = b"linkpath"
PAX_SIZE = b"size"
PAX_UID = b"uid"
PAX_GID = b"gid"
PAX_MTIME = b"mtime"
PAX_UNAME = b"uname"
PAX_GNAME = b"gname"
PAX_SCHILY_XATTR = b"SCHILY.xattr."
PAX_LIBARCHIVE_XATTR = b"LIBARCHIVE.xattr."
PAX_GNU_SPARSE = b"GNU.sparse."

# --- the split ---------------------------------------------------------------------------

# Regular files of more than this many bytes become repository objects (composefs-rs
# INLINE_CONTENT_MAX_V0, crates/composefs/src/lib.rs); smaller ones stay inline in the split
# stream *and* in the EROFS image.
INLINE_CONTENT_MAX = 64
INLINE = "inline"
EXTERNAL = "external"
# Inline bytes are gathered into one event up to this size (bounds memory for huge inline runs).
INLINE_FLUSH_BYTES = 1 << 20
# Read size when copying content or trailing bytes.
COPY_CHUNK_BYTES = 1 << 16

# --- safety limits -----------------------------------------------------------------------

# Extension header content is held in memory: tar-core's default budget per member.
MAX_EXTENSION_BYTES = 1 << 20
# Extension headers in a row before a real member (tar-core default): stops endless chains.
MAX_EXTENSION_HEADERS = 16
# Larger than any off_t: such a size cannot describe a real file.
MAX_ENTRY_SIZE = (1 << 63) - 1
# uid, gid, device major/minor are 32-bit in the kernel and in EROFS.
MAX_ID = 0xFFFFFFFF
# Inode timestamps are signed 64-bit seconds.
MIN_MTIME = -(1 << 63)
MAX_MTIME = (1 << 63) - 1
NSEC_DIGITS = 9
# Permission and special bits of a mode field.
PERMISSION_BITS = 0o7777


class TarHeader(NamedTuple):
    """One decoded 512-byte header block (no extension applied)."""

    name: bytes
    mode: int
    uid: int
    gid: int
    size: int
    mtime: int
    typeflag: bytes
    linkname: bytes
    header_format: str
    uname: bytes
    gname: bytes
    devmajor: int
    devminor: int
    prefix: bytes


@dataclass(frozen=True)
class TarEntry:
    """A member's metadata with every extended header applied (the archive's view, not the tree's).

    ``mode`` is the raw mode field; ``devmajor``/``devminor`` are None for v7 headers, which have
    no such fields; ``xattrs`` come from pax ``SCHILY.xattr.*`` / ``LIBARCHIVE.xattr.*`` records.
    """

    path: bytes
    typeflag: bytes
    mode: int
    uid: int
    gid: int
    mtime: int
    mtime_nsec: int
    size: int
    link_target: bytes = b""
    devmajor: Optional[int] = None
    devminor: Optional[int] = None
    uname: bytes = b""
    gname: bytes = b""
    xattrs: Dict[bytes, bytes] = field(default_factory=dict)
    header_format: str = FORMAT_USTAR

    @property
    def kind(self) -> str:
        """``file``, ``hardlink``, ``symlink``, ``chardev``, ``blockdev``, ``directory``, ``fifo`` or ``other``."""
        return KIND_BY_TYPE.get(self.typeflag, "other")

    @property
    def is_regular(self) -> bool:
        return self.typeflag in REGULAR_TYPES

    @property
    def stored_size(self) -> int:
        """Content size rounded up to whole blocks (content + padding)."""
        return _padded(self.size)


class LayerEntry(NamedTuple):
    """One layer member as a tree entry: ``node`` (a fresh, empty ``Directory`` for directories) or,
    for a hard link, ``node`` None and ``hardlink_target`` set. ``path`` is the raw archive path."""

    path: bytes
    node: Optional[tree.Node]
    hardlink_target: Optional[bytes] = None
    offset: Optional[int] = None


def _padded(size: int) -> int:
    return (size + BLOCK_SIZE - 1) // BLOCK_SIZE * BLOCK_SIZE


def _cstring(raw: bytes) -> bytes:
    end = raw.find(b"\x00")
    return raw if end < 0 else raw[:end]


def _describe(name: bytes) -> str:
    return repr(name.decode("utf-8", "backslashreplace"))


def _member_error(name: bytes, message: str, offset: int) -> FormatError:
    return FormatError("tar member %s: %s" % (_describe(name), message), offset)


# --- header blocks -----------------------------------------------------------------------


def _parse_number(raw: bytes, what: str, name: bytes, offset: int, signed: bool = False) -> int:
    """Decode an octal or GNU base-256 numeric field."""
    if raw and raw[0] & 0x80:
        value = int.from_bytes(raw, "big")
        if raw[0] & 0x40:
            value -= 1 << (8 * len(raw))
            if not signed:
                raise _member_error(name, "negative base-256 %s field %s" % (what, raw.hex()), offset)
        else:
            value &= (1 << (8 * len(raw) - 1)) - 1
        return value
    digits = _cstring(raw).strip(b" \t\n\v\f\r")
    if not digits:
        return 0
    if digits.strip(b"01234567"):
        raise _member_error(name, "bad octal %s field %r" % (what, raw), offset)
    return int(digits, 8)


def parse_header(buf, offset: int = 0, archive_offset: Optional[int] = None) -> TarHeader:
    """Decode and checksum-verify the 512-byte header block at ``buf[offset:]``.

    Errors report ``archive_offset`` (the block's position in the archive) or else ``offset``.
    """
    block = bytes(buf[offset:offset + BLOCK_SIZE])
    if archive_offset is not None:
        offset = archive_offset
    if len(block) < BLOCK_SIZE:
        raise FormatError("truncated tar header: %d of %d bytes" % (len(block), BLOCK_SIZE), offset)
    (name, mode, uid, gid, size, mtime, chksum, typeflag, linkname, magic, version,
     uname, gname, devmajor, devminor, prefix, _unused) = HEADER_STRUCT.unpack(block)
    name = _cstring(name)
    stored = _parse_number(chksum, "checksum", name, offset)
    unsigned = sum(block) - sum(block[CHKSUM_OFFSET:CHKSUM_OFFSET + CHKSUM_SIZE]) + CHKSUM_SIZE * 0x20
    if stored != unsigned:
        signed_sum = sum(b - 256 if b > 127 else b for b in block[:CHKSUM_OFFSET])
        signed_sum += sum(b - 256 if b > 127 else b for b in block[CHKSUM_OFFSET + CHKSUM_SIZE:])
        signed_sum += CHKSUM_SIZE * 0x20
        if stored != signed_sum:
            raise _member_error(name, "header checksum mismatch (stored %d, computed %d)" % (stored, unsigned), offset)
    if magic == USTAR_MAGIC and version == USTAR_VERSION:
        header_format = FORMAT_USTAR
    elif magic == GNU_MAGIC and version == GNU_VERSION:
        header_format = FORMAT_GNU
    else:
        header_format = FORMAT_V7
    return TarHeader(
        name=name,
        mode=_parse_number(mode, "mode", name, offset),
        uid=_parse_number(uid, "uid", name, offset),
        gid=_parse_number(gid, "gid", name, offset),
        size=_parse_number(size, "size", name, offset),
        mtime=_parse_number(mtime, "mtime", name, offset, signed=True),
        typeflag=typeflag,
        linkname=_cstring(linkname),
        header_format=header_format,
        uname=_cstring(uname) if header_format != FORMAT_V7 else b"",
        gname=_cstring(gname) if header_format != FORMAT_V7 else b"",
        devmajor=_parse_number(devmajor, "devmajor", name, offset) if header_format != FORMAT_V7 else 0,
        devminor=_parse_number(devminor, "devminor", name, offset) if header_format != FORMAT_V7 else 0,
        prefix=_cstring(prefix) if header_format == FORMAT_USTAR else b"",
    )


def parse_pax_records(data: bytes, offset: int = 0) -> Tuple[Tuple[bytes, bytes], ...]:
    """Split pax extended header content into ``(key, value)`` pairs, in order.

    ``offset`` is the archive position of ``data[0]``, for errors. Trailing NUL bytes are ignored.
    """
    records = []
    pos = 0
    end = len(data)
    while pos < end:
        if data[pos] == 0 and not data[pos:].strip(b"\x00"):
            break
        space = data.find(b" ", pos, min(end, pos + 21))
        length_text = data[pos:space] if space > pos else b""
        if not length_text or length_text.strip(b"0123456789"):
            raise FormatError("pax record without a decimal length", offset + pos)
        length = int(length_text)
        record_end = pos + length
        if length <= len(length_text) + 1 or record_end > end or data[record_end - 1:record_end] != b"\n":
            raise FormatError("pax record length %d does not fit its content" % length, offset + pos)
        keyvalue = data[space + 1:record_end - 1]
        equals = keyvalue.find(b"=")
        if equals <= 0:
            raise FormatError("pax record without key=value", offset + pos)
        records.append((keyvalue[:equals], keyvalue[equals + 1:]))
        pos = record_end
    return tuple(records)


def _pax_decimal(value: bytes, key: bytes, name: bytes, offset: int) -> int:
    if not value or value.strip(b"0123456789"):
        raise _member_error(name, "pax %s value %r is not a decimal number" % (key.decode("ascii"), value), offset)
    return int(value)


def _pax_time(value: bytes, name: bytes, offset: int) -> Tuple[int, int]:
    """pax time ``[-]seconds[.fraction]`` -> (seconds, nanoseconds); fraction truncated to 9 digits."""
    negative = value.startswith(b"-")
    text = value[1:] if negative else value
    whole, dot, fraction = text.partition(b".")
    if not whole or whole.strip(b"0123456789") or fraction.strip(b"0123456789") or (dot and not fraction):
        raise _member_error(name, "pax mtime value %r is not a decimal time" % (value,), offset)
    seconds = int(whole)
    nsec = int((fraction[:NSEC_DIGITS]).ljust(NSEC_DIGITS, b"0")) if fraction else 0
    if negative:
        seconds = -seconds
        if nsec:
            seconds -= 1
            nsec = 10 ** NSEC_DIGITS - nsec
    return seconds, nsec


def _unquote_url(raw: bytes) -> bytes:
    """Decode %XX escapes (libarchive url-encodes xattr names in pax keys)."""
    out = bytearray()
    pos = 0
    while pos < len(raw):
        char = raw[pos]
        if char == 0x25 and _is_hex(raw[pos + 1:pos + 3]):
            out.append(int(raw[pos + 1:pos + 3], 16))
            pos += 3
        else:
            out.append(char)
            pos += 1
    return bytes(out)


def _is_hex(two: bytes) -> bool:
    return len(two) == 2 and not two.strip(b"0123456789abcdefABCDEF")


def _decode_entry(header: TarHeader, long_name, long_link, pax, offset: int) -> TarEntry:
    """Apply GNU long name/link and pax records to a header: the member as readers see it."""
    path = header.name
    if header.prefix:
        path = header.prefix + b"/" + header.name
    if long_name is not None:
        path = long_name
    link_target = long_link if long_link is not None else header.linkname
    size, uid, gid, mtime, mtime_nsec = header.size, header.uid, header.gid, header.mtime, 0
    uname, gname = header.uname, header.gname
    schily: Dict[bytes, bytes] = {}
    libarchive: Dict[bytes, bytes] = {}
    sparse = False
    for key, value in pax or ():
        if key == PAX_PATH:
            path = value
        elif key == PAX_LINKPATH:
            link_target = value
        elif key == PAX_SIZE:
            size = _pax_decimal(value, key, path, offset)
        elif key == PAX_UID:
            uid = _pax_decimal(value, key, path, offset)
        elif key == PAX_GID:
            gid = _pax_decimal(value, key, path, offset)
        elif key == PAX_MTIME:
            mtime, mtime_nsec = _pax_time(value, path, offset)
        elif key == PAX_UNAME:
            uname = value
        elif key == PAX_GNAME:
            gname = value
        elif key.startswith(PAX_SCHILY_XATTR):
            schily[key[len(PAX_SCHILY_XATTR):]] = value
        elif key.startswith(PAX_LIBARCHIVE_XATTR):
            libarchive[_unquote_url(key[len(PAX_LIBARCHIVE_XATTR):])] = _base64_value(value, path, offset)
        elif key.startswith(PAX_GNU_SPARSE):
            sparse = True
    if sparse:
        for key, value in pax:
            if key == PAX_GNU_SPARSE + b"name":
                path = value
        raise _member_error(path, "sparse files (pax GNU.sparse.*) are not supported", offset)
    if not path:
        raise _member_error(path, "empty path", offset)
    if size > MAX_ENTRY_SIZE:
        raise _member_error(path, "absurd size %d" % size, offset)
    if header.typeflag in HEADER_ONLY_TYPES and size != 0:
        raise _member_error(path, "type %r must have size 0, not %d" % (header.typeflag.decode("latin-1"), size), offset)
    xattrs = dict(libarchive)
    xattrs.update(schily)
    has_devices = header.header_format != FORMAT_V7
    return TarEntry(
        path=path, typeflag=header.typeflag, mode=header.mode, uid=uid, gid=gid, mtime=mtime, mtime_nsec=mtime_nsec,
        size=size, link_target=link_target, devmajor=header.devmajor if has_devices else None,
        devminor=header.devminor if has_devices else None, uname=uname, gname=gname, xattrs=xattrs,
        header_format=header.header_format,
    )


def _base64_value(value: bytes, name: bytes, offset: int) -> bytes:
    try:
        return base64.b64decode(value + b"=" * (-len(value) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise _member_error(name, "LIBARCHIVE.xattr value is not base64", offset) from None


# --- reading a header chain from a byte source -------------------------------------------


class _Chain(NamedTuple):
    """What ``_read_member_headers`` found: a member (``entry`` set), the end marker, or EOF."""

    offset: int
    raw: bytes
    entry: Optional[TarEntry]


def _read_member_headers(source) -> _Chain:
    """Read the header blocks of the next member (extensions included) from ``source``.

    ``source`` has ``offset`` and ``read_exact(n)`` (short only at end of data). Returns a chain
    with ``entry`` None when the archive ends: ``raw`` is then the zero blocks read (empty at a
    clean end of data).
    """
    start = source.offset
    parts = []
    long_name = long_link = pax = None
    pending = 0
    pending_bytes = 0
    while True:
        block_offset = source.offset
        block = source.read_exact(BLOCK_SIZE)
        if not block and not parts:
            return _Chain(start, b"", None)
        if len(block) < BLOCK_SIZE:
            raise FormatError("archive truncated inside a header block (%d of %d bytes)" % (len(block), BLOCK_SIZE),
                              block_offset)
        if block == ZERO_BLOCK:
            if parts:
                raise FormatError("extended headers are not followed by a member", block_offset)
            second = source.read_exact(BLOCK_SIZE)
            if second.strip(b"\x00"):
                raise FormatError("lone zero block followed by more data", block_offset)
            return _Chain(start, block + second, None)
        header = parse_header(block, 0, block_offset)
        parts.append(block)
        typeflag = header.typeflag
        extension = typeflag == PAX_GLOBAL_TYPE or (
            header.header_format != FORMAT_V7 and typeflag in (GNU_LONGNAME_TYPE, GNU_LONGLINK_TYPE, PAX_LOCAL_TYPE))
        if not extension:
            if typeflag == GNU_SPARSE_TYPE and header.header_format == FORMAT_GNU:
                name = long_name if long_name is not None else header.name
                raise _member_error(name, "sparse files (GNU type 'S') are not supported", block_offset)
            entry = _decode_entry(header, long_name, long_link, pax, block_offset)
            return _Chain(start, b"".join(parts), entry)
        pending += 1
        pending_bytes += header.size
        if pending > MAX_EXTENSION_HEADERS:
            raise _member_error(header.name, "more than %d extended headers in a row" % MAX_EXTENSION_HEADERS,
                                block_offset)
        if pending_bytes > MAX_EXTENSION_BYTES:
            raise _member_error(header.name, "extended header content of %d bytes exceeds %d" % (
                pending_bytes, MAX_EXTENSION_BYTES), block_offset)
        stored = _padded(header.size)
        data = source.read_exact(stored)
        if len(data) < stored:
            raise _member_error(header.name, "archive truncated inside an extended header (%d of %d bytes)" % (
                len(data), stored), block_offset)
        parts.append(data)
        content = data[:header.size]
        if typeflag == PAX_GLOBAL_TYPE:
            parse_pax_records(content, block_offset + BLOCK_SIZE)
            continue
        if typeflag == PAX_LOCAL_TYPE:
            if pax is not None:
                raise _member_error(header.name, "two pax headers for one member", block_offset)
            pax = parse_pax_records(content, block_offset + BLOCK_SIZE)
        elif typeflag == GNU_LONGNAME_TYPE:
            if long_name is not None:
                raise _member_error(header.name, "two GNU long names for one member", block_offset)
            long_name = _cstring(content)
        else:
            if long_link is not None:
                raise _member_error(header.name, "two GNU long link names for one member", block_offset)
            long_link = _cstring(content)


class _StreamSource:
    """A binary file object read forward only, with the count of bytes consumed."""

    def __init__(self, fileobj) -> None:
        self._fileobj = fileobj
        self.offset = 0

    def read_some(self, size: int) -> bytes:
        data = self._fileobj.read(size) if size > 0 else b""
        self.offset += len(data)
        return data

    def read_exact(self, size: int) -> bytes:
        data = self.read_some(size)
        if len(data) == size or not data:
            return data
        parts = [data]
        got = len(data)
        while got < size:
            more = self.read_some(size - got)
            if not more:
                break
            parts.append(more)
            got += len(more)
        return b"".join(parts)


# --- streaming reader --------------------------------------------------------------------


class TarContent(io.RawIOBase):
    """File object over one member's content (exactly ``entry.size`` bytes, no padding)."""

    def __init__(self, source: _StreamSource, member: "TarMember") -> None:
        super().__init__()
        self._source = source
        self._member = member
        self.remaining = member.entry.size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        want = min(len(buffer), self.remaining)
        if want <= 0:
            return 0
        data = self._source.read_some(want)
        if not data:
            raise _member_error(self._member.entry.path, "archive truncated inside member content (%d bytes missing)" % (
                self.remaining), self._member.offset)
        buffer[:len(data)] = data
        self.remaining -= len(data)
        return len(data)

    def skip(self) -> None:
        """Read and drop whatever content is left."""
        while self.remaining:
            self.read(min(self.remaining, COPY_CHUNK_BYTES))


class TarMember:
    """A member being read: ``header_bytes`` (every header block, extensions included), ``entry``,
    and ``content``, a file object over its content. Read it before asking for the next member;
    the reader skips whatever is left."""

    def __init__(self, source: _StreamSource, chain: _Chain) -> None:
        self.offset = chain.offset
        self.header_bytes = chain.raw
        self.entry: TarEntry = chain.entry
        self.content_offset = chain.offset + len(chain.raw)
        self._source = source
        self.content = TarContent(source, self)
        self._padding: Optional[bytes] = None

    def read_padding(self) -> bytes:
        """Skip unread content, then return the padding bytes after it (read once, then cached)."""
        if self._padding is None:
            self.content.skip()
            size = self.entry.stored_size - self.entry.size
            padding = self._source.read_exact(size)
            if len(padding) < size:
                raise _member_error(self.entry.path, "archive truncated inside member padding", self.offset)
            self._padding = padding
        return self._padding

    def iter_stored(self) -> Iterator[bytes]:
        """Yield the unread rest of the content, then the padding: the member's bytes after its headers."""
        while self.content.remaining:
            yield self.content.read(min(self.content.remaining, COPY_CHUNK_BYTES))
        padding = self.read_padding()
        if padding:
            yield padding


class TarReader:
    """Iterate the members of a tar read from a forward-only binary file object.

    After the iteration ends, ``iter_trailer()`` yields the end-of-archive blocks and every byte
    after them. Nothing but the current member's headers is held in memory.
    """

    def __init__(self, fileobj) -> None:
        self._source = _StreamSource(fileobj)
        self._member: Optional[TarMember] = None
        self._trailer: Optional[bytes] = None

    @property
    def offset(self) -> int:
        """Bytes consumed from the file object so far."""
        return self._source.offset

    def __iter__(self) -> "TarReader":
        return self

    def __next__(self) -> TarMember:
        if self._member is not None:
            self._member.read_padding()
            self._member = None
        if self._trailer is not None:
            raise StopIteration
        chain = _read_member_headers(self._source)
        if chain.entry is None:
            self._trailer = chain.raw
            raise StopIteration
        self._member = TarMember(self._source, chain)
        return self._member

    def iter_trailer(self) -> Iterator[bytes]:
        """Yield the end-of-archive blocks and everything up to the end of the file object."""
        if self._trailer is None:
            raise ComposefsError("tar trailer requested before the last member was read")
        if self._trailer:
            yield self._trailer
        while True:
            data = self._source.read_some(COPY_CHUNK_BYTES)
            if not data:
                return
            yield data


def iter_members(fileobj) -> Iterator[TarMember]:
    """Yield each member of the tar read from ``fileobj`` (see ``TarReader``)."""
    return iter(TarReader(fileobj))


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
                    member.content.remaining, entry.size, _describe(entry.path)))
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
            raise _member_error(name, "split stream keeps %d content bytes inline, expected an external chunk" % size,
                                offset)
        event = self._external
        self._external = None
        if len(event) > 2 and event[2] is not None and event[2] != size:
            raise _member_error(name, "external chunk of %s bytes for content of %d bytes" % (event[2], size), offset)
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
        chain = _read_member_headers(source)
        entry = chain.entry
        if entry is None:
            return
        if entry.is_regular and entry.size > INLINE_CONTENT_MAX:
            fsverity_digest = source.take_external(entry.size, entry.path, chain.offset)
            padding = source.read_exact(entry.stored_size - entry.size)
            if len(padding) < entry.stored_size - entry.size:
                raise _member_error(entry.path, "split stream ends inside member padding", chain.offset)
            yield layer_entry_from_tar(entry, None, chain.offset, fsverity_digest=fsverity_digest)
        else:
            stored = source.read_exact(entry.stored_size)
            if len(stored) < entry.stored_size:
                raise _member_error(entry.path, "split stream ends inside member content", chain.offset)
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
        raise _member_error(entry.path, "unsupported entry type %r" % entry.typeflag.decode("latin-1"), where)
    if kind == "hardlink":
        if not entry.link_target:
            raise _member_error(entry.path, "hard link without a target", where)
        return LayerEntry(entry.path, None, entry.link_target, offset)
    for what, value in (("uid", entry.uid), ("gid", entry.gid)):
        if value > MAX_ID:
            raise _member_error(entry.path, "%s %d does not fit in 32 bits" % (what, value), where)
    if not MIN_MTIME <= entry.mtime <= MAX_MTIME:
        raise _member_error(entry.path, "mtime %d does not fit in 64 bits" % entry.mtime, where)
    node_stat = tree.Stat(mode=IFMT_BY_KIND[kind] | (entry.mode & PERMISSION_BITS), uid=entry.uid, gid=entry.gid,
                          mtime=entry.mtime, mtime_nsec=entry.mtime_nsec, xattrs=dict(entry.xattrs))
    if kind == "directory":
        node: tree.Node = tree.Directory(node_stat)
    elif kind == "file":
        if fsverity_digest is not None:
            if entry.size <= INLINE_CONTENT_MAX:
                raise _member_error(entry.path, "file of %d bytes must be inline, not external" % entry.size, where)
            node = tree.RegularFile(node_stat, size=entry.size, fsverity_digest=bytes(fsverity_digest))
        else:
            data = bytes(content or b"")
            if len(data) != entry.size or entry.size > INLINE_CONTENT_MAX:
                raise _member_error(entry.path, "file of %d bytes cannot be inline (%d bytes given)" % (
                    entry.size, len(data)), where)
            node = tree.RegularFile(node_stat, size=entry.size, content=data)
    elif kind == "symlink":
        node = tree.Symlink(node_stat, target=entry.link_target)
    elif kind == "fifo":
        node = tree.Fifo(node_stat)
    else:
        if entry.devmajor is None or entry.devminor is None:
            raise _member_error(entry.path, "device without device numbers (v7 header)", where)
        if entry.devmajor > MAX_ID or entry.devminor > MAX_ID:
            raise _member_error(entry.path, "device number %d:%d out of range" % (entry.devmajor, entry.devminor), where)
        node = tree.Device(node_stat, rdev=makedev(entry.devmajor, entry.devminor))
    return LayerEntry(entry.path, node, None, offset)
