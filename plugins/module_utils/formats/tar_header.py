# -*- coding: utf-8 -*-
# Copyright: (c) 2026, bootc.composefs maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tar header blocks and extended headers (ustar, GNU, pax): the bytes before each member's content.

Layer: formats. OCI layers are tar archives; this file decodes one header block, pax records and
a member's metadata with its extended headers applied (:class:`TarEntry`). Reading an archive
member by member is ``tar_reader.py``; the composefs split of a layer is ``tar.py``. Upstream:
composefs-rs ``crates/composefs-oci/src/tar.rs`` and the sans-IO parser it uses, composefs/tar-core
``src/parse.rs``.

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
``MAX_EXTENSION_BYTES`` (both checked in ``tar_reader.py``). Hard links, symlinks, devices, directories and fifos must have size 0
(tar-core rejects them otherwise: readers disagree on where the next header is).

Not supported, rejected with ``FormatError``: sparse files, both GNU ``S`` members and pax
``GNU.sparse.*`` members (composefs-rs rejects them as well; container layers never contain
them); a lone zero block followed by more data (an archive-confusion vector; a lone zero block at
the very end is accepted as the end). Other unknown type flags (``D``, ``V``, ``M``...) pass through
the split (``tar.py``) with their content inline, but cannot become tree entries.

Errors name the member and the archive offset of its header: ``FormatError`` from
:func:`member_error`, shared with the reader and the split.
"""

from __future__ import annotations

import base64
import binascii
import struct
import zlib
from dataclasses import dataclass, field
from typing import Dict, NamedTuple, Optional, Tuple

from ansible_collections.bootc.composefs.plugins.module_utils.errors import FormatError

__all__ = [
    "BLOCK_SIZE",
    "TarHeader",
    "TarEntry",
    "parse_header",
    "parse_pax_records",
    "decode_entry",
    "padded_size",
    "cstring",
    "describe_name",
    "member_error",
]

# --- blocks and header layout -------------------------------------------------------------

BLOCK_SIZE = 512
ZERO_BLOCK = bytes(BLOCK_SIZE)

# One ustar header block; the fields, in order, as in the table of the module docstring.
HEADER_STRUCT = struct.Struct("100s8s8s8s12s12s8s1s100s6s2s32s32s8s8s155s12s")
CHKSUM_OFFSET = 148
CHKSUM_SIZE = 8
# Fast path of parse_header: byte ranges of the numeric fields (mode..chksum; devmajor, devminor)
# and the only bytes they may hold there (octal digits, space, NUL); anything else takes the slow path.
NUMERIC_RANGE = (100, 156)
DEVICE_RANGE = (329, 345)
PLAIN_NUMERIC_BYTES = b"01234567 \x00"
HALF_BLOCK = 256  # the byte sum of 256 bytes (at most 65280) is adler32's low half minus 1, exactly

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

# --- safety limits -----------------------------------------------------------------------

# Larger than any off_t: such a size cannot describe a real file.
MAX_ENTRY_SIZE = (1 << 63) - 1
# pax mtime fractions: digits kept (nanoseconds).
NSEC_DIGITS = 9


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
        return padded_size(self.size)


def padded_size(size: int) -> int:
    """Return ``size`` rounded up to whole blocks (content + padding)."""
    return (size + BLOCK_SIZE - 1) // BLOCK_SIZE * BLOCK_SIZE


def cstring(raw: bytes) -> bytes:
    """Return ``raw`` up to its first NUL."""
    end = raw.find(b"\x00")
    return raw if end < 0 else raw[:end]


def describe_name(name: bytes) -> str:
    """Return a member name for messages."""
    return repr(name.decode("utf-8", "backslashreplace"))


def member_error(name: bytes, message: str, offset: int) -> FormatError:
    """Return the FormatError for ``message`` about member ``name`` whose header is at ``offset``."""
    return FormatError("tar member %s: %s" % (describe_name(name), message), offset)


# --- header blocks -----------------------------------------------------------------------


def _parse_number(raw: bytes, what: str, name: bytes, offset: int, signed: bool = False) -> int:
    """Decode an octal or GNU base-256 numeric field."""
    if raw and raw[0] & 0x80:
        value = int.from_bytes(raw, "big")
        if raw[0] & 0x40:
            value -= 1 << (8 * len(raw))
            if not signed:
                raise member_error(name, "negative base-256 %s field %s" % (what, raw.hex()), offset)
        else:
            value &= (1 << (8 * len(raw) - 1)) - 1
        return value
    digits = cstring(raw).strip(b" \t\n\v\f\r")
    if not digits:
        return 0
    if digits.strip(b"01234567"):
        raise member_error(name, "bad octal %s field %r" % (what, raw), offset)
    return int(digits, 8)


def _octal(raw: bytes) -> int:
    """A plain octal field up to its first NUL (digits, spaces around them); ValueError for anything else."""
    digits = raw.partition(b"\x00")[0]
    return int(digits, 8) if digits else 0


def _parse_plain(block: bytes) -> Optional[TarHeader]:
    """The common header, decoded fast; None when anything is unusual (the slow path decides then).

    Shaped for speed (bench/bench_pull.py: tar header parsing was a third of an import's CPU
    time): one ``unpack`` of the whole block, the checksum from two ``zlib.adler32`` calls (C
    loops) instead of a Python sum, every numeric field checked by one ``translate`` over its
    range and decoded by ``int(..., 8)``. Accepted only when the stored checksum is the unsigned
    sum and every numeric field holds octal digits with spaces and a NUL end only, where both
    paths give the same values; base-256 numbers, signed checksums and malformed fields go to
    the slow path, which also produces the errors.
    """
    (name, mode, uid, gid, size, mtime, chksum, typeflag, linkname, magic, version,
     uname, gname, devmajor, devminor, prefix, _unused) = HEADER_STRUCT.unpack(block)
    if block[NUMERIC_RANGE[0]:NUMERIC_RANGE[1]].translate(None, PLAIN_NUMERIC_BYTES):
        return None
    total = (zlib.adler32(block[:HALF_BLOCK]) & 0xFFFF) + (zlib.adler32(block[HALF_BLOCK:]) & 0xFFFF) - 2
    try:
        if _octal(chksum) != total - sum(chksum) + CHKSUM_SIZE * 0x20:
            return None
        if magic == USTAR_MAGIC and version == USTAR_VERSION:
            header_format = FORMAT_USTAR
        elif magic == GNU_MAGIC and version == GNU_VERSION:
            header_format = FORMAT_GNU
        else:
            header_format = FORMAT_V7
        if header_format == FORMAT_V7:
            major = minor = 0
            uname = gname = b""
        else:
            if block[DEVICE_RANGE[0]:DEVICE_RANGE[1]].translate(None, PLAIN_NUMERIC_BYTES):
                return None
            major, minor = _octal(devmajor), _octal(devminor)
            uname, gname = uname.split(b"\x00", 1)[0], gname.split(b"\x00", 1)[0]
        return TarHeader(name.split(b"\x00", 1)[0], _octal(mode), _octal(uid), _octal(gid), _octal(size), _octal(mtime),
                         typeflag, linkname.split(b"\x00", 1)[0], header_format, uname, gname, major, minor,
                         prefix.split(b"\x00", 1)[0] if header_format == FORMAT_USTAR else b"")
    except ValueError:
        return None


def parse_header(buf, offset: int = 0, archive_offset: Optional[int] = None) -> TarHeader:
    """Decode and checksum-verify the 512-byte header block at ``buf[offset:]``.

    Errors report ``archive_offset`` (the block's position in the archive) or else ``offset``.
    """
    if offset == 0 and type(buf) is bytes and len(buf) == BLOCK_SIZE:  # pylint: disable=unidiomatic-typecheck
        block = buf  # a block read on its own (tar_reader, tar_split): no copy
    else:
        block = bytes(buf[offset:offset + BLOCK_SIZE])
    if archive_offset is not None:
        offset = archive_offset
    if len(block) < BLOCK_SIZE:
        raise FormatError("truncated tar header: %d of %d bytes" % (len(block), BLOCK_SIZE), offset)
    header = _parse_plain(block)
    return header if header is not None else _parse_block(block, offset)


def _parse_block(block: bytes, offset: int) -> TarHeader:
    """Decode every header :func:`parse_header` accepts (the reference the fast path agrees with); errors otherwise."""
    (name, mode, uid, gid, size, mtime, chksum, typeflag, linkname, magic, version,
     uname, gname, devmajor, devminor, prefix, _unused) = HEADER_STRUCT.unpack(block)
    name = cstring(name)
    stored = _parse_number(chksum, "checksum", name, offset)
    unsigned = sum(block) - sum(block[CHKSUM_OFFSET:CHKSUM_OFFSET + CHKSUM_SIZE]) + CHKSUM_SIZE * 0x20
    if stored != unsigned:
        signed_sum = sum(b - 256 if b > 127 else b for b in block[:CHKSUM_OFFSET])
        signed_sum += sum(b - 256 if b > 127 else b for b in block[CHKSUM_OFFSET + CHKSUM_SIZE:])
        signed_sum += CHKSUM_SIZE * 0x20
        if stored != signed_sum:
            raise member_error(name, "header checksum mismatch (stored %d, computed %d)" % (stored, unsigned), offset)
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
        linkname=cstring(linkname),
        header_format=header_format,
        uname=cstring(uname) if header_format != FORMAT_V7 else b"",
        gname=cstring(gname) if header_format != FORMAT_V7 else b"",
        devmajor=_parse_number(devmajor, "devmajor", name, offset) if header_format != FORMAT_V7 else 0,
        devminor=_parse_number(devminor, "devminor", name, offset) if header_format != FORMAT_V7 else 0,
        prefix=cstring(prefix) if header_format == FORMAT_USTAR else b"",
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
        raise member_error(name, "pax %s value %r is not a decimal number" % (key.decode("ascii"), value), offset)
    return int(value)


def _pax_time(value: bytes, name: bytes, offset: int) -> Tuple[int, int]:
    """pax time ``[-]seconds[.fraction]`` -> (seconds, nanoseconds); fraction truncated to 9 digits."""
    negative = value.startswith(b"-")
    text = value[1:] if negative else value
    whole, dot, fraction = text.partition(b".")
    if not whole or whole.strip(b"0123456789") or fraction.strip(b"0123456789") or (dot and not fraction):
        raise member_error(name, "pax mtime value %r is not a decimal time" % (value,), offset)
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


def decode_entry(header: TarHeader, long_name, long_link, pax, offset: int) -> TarEntry:
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
        raise member_error(path, "sparse files (pax GNU.sparse.*) are not supported", offset)
    if not path:
        raise member_error(path, "empty path", offset)
    if size > MAX_ENTRY_SIZE:
        raise member_error(path, "absurd size %d" % size, offset)
    if header.typeflag in HEADER_ONLY_TYPES and size != 0:
        raise member_error(path, "type %r must have size 0, not %d" % (header.typeflag.decode("latin-1"), size), offset)
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
        raise member_error(name, "LIBARCHIVE.xattr value is not base64", offset) from None
