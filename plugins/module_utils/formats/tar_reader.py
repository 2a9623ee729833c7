# -*- coding: utf-8 -*-
# Copyright: (c) 2026, bootc.composefs maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reading a tar archive member by member from a forward-only file object (a layer being pulled).

Layer: formats. Header blocks and extended headers are decoded by ``tar_header.py``; this file
walks the archive: a member's chain of header blocks (extended headers first, at most
``MAX_EXTENSION_HEADERS`` of them holding ``MAX_EXTENSION_BYTES`` in all), then its content and
padding, until the end-of-archive marker (two zero blocks; a lone zero block at the very end is
accepted, one followed by data is not), then the trailer (the end blocks and every byte after
them, kept for byte-exact reassembly).

:func:`read_header_chain` works on any source with ``offset`` and ``read_exact(n)``: the archive
itself here, and the inline bytes of a stored split stream in ``tar.py``. :class:`TarReader`
holds nothing but the current member's headers in memory; a member's content is a file object
(:class:`TarContent`) read before the next member is asked for (the reader skips what is left).
"""

from __future__ import annotations

import io
from typing import Iterator, NamedTuple, Optional

from ansible_collections.bootc.composefs.plugins.module_utils.errors import ComposefsError, FormatError
from ansible_collections.bootc.composefs.plugins.module_utils.formats.tar_header import (
    BLOCK_SIZE,
    FORMAT_GNU,
    FORMAT_V7,
    GNU_LONGLINK_TYPE,
    GNU_LONGNAME_TYPE,
    GNU_SPARSE_TYPE,
    PAX_GLOBAL_TYPE,
    PAX_LOCAL_TYPE,
    TarEntry,
    ZERO_BLOCK,
    cstring,
    decode_entry,
    member_error,
    padded_size,
    parse_header,
    parse_pax_records,
)

__all__ = [
    "HeaderChain",
    "read_header_chain",
    "TarContent",
    "TarMember",
    "TarReader",
    "iter_members",
]

# --- safety limits -----------------------------------------------------------------------

# Extension header content is held in memory: tar-core's default budget per member.
MAX_EXTENSION_BYTES = 1 << 20
# Extension headers in a row before a real member (tar-core default): stops endless chains.
MAX_EXTENSION_HEADERS = 16
# Read size when copying content or trailing bytes.
COPY_CHUNK_BYTES = 1 << 16


# --- reading a header chain from a byte source -------------------------------------------


class HeaderChain(NamedTuple):
    """What :func:`read_header_chain` found: a member (``entry`` set), the end marker, or EOF."""

    offset: int
    raw: bytes
    entry: Optional[TarEntry]


def read_header_chain(source) -> HeaderChain:
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
            return HeaderChain(start, b"", None)
        if len(block) < BLOCK_SIZE:
            raise FormatError("archive truncated inside a header block (%d of %d bytes)" % (len(block), BLOCK_SIZE),
                              block_offset)
        if block == ZERO_BLOCK:
            if parts:
                raise FormatError("extended headers are not followed by a member", block_offset)
            second = source.read_exact(BLOCK_SIZE)
            if second.strip(b"\x00"):
                raise FormatError("lone zero block followed by more data", block_offset)
            return HeaderChain(start, block + second, None)
        header = parse_header(block, 0, block_offset)
        parts.append(block)
        typeflag = header.typeflag
        extension = typeflag == PAX_GLOBAL_TYPE or (
            header.header_format != FORMAT_V7 and typeflag in (GNU_LONGNAME_TYPE, GNU_LONGLINK_TYPE, PAX_LOCAL_TYPE))
        if not extension:
            if typeflag == GNU_SPARSE_TYPE and header.header_format == FORMAT_GNU:
                name = long_name if long_name is not None else header.name
                raise member_error(name, "sparse files (GNU type 'S') are not supported", block_offset)
            entry = decode_entry(header, long_name, long_link, pax, block_offset)
            return HeaderChain(start, b"".join(parts), entry)
        pending += 1
        pending_bytes += header.size
        if pending > MAX_EXTENSION_HEADERS:
            raise member_error(header.name, "more than %d extended headers in a row" % MAX_EXTENSION_HEADERS, block_offset)
        if pending_bytes > MAX_EXTENSION_BYTES:
            raise member_error(header.name, "extended header content of %d bytes exceeds %d" % (
                pending_bytes, MAX_EXTENSION_BYTES), block_offset)
        stored = padded_size(header.size)
        data = source.read_exact(stored)
        if len(data) < stored:
            raise member_error(header.name, "archive truncated inside an extended header (%d of %d bytes)" % (
                len(data), stored), block_offset)
        parts.append(data)
        content = data[:header.size]
        if typeflag == PAX_GLOBAL_TYPE:
            parse_pax_records(content, block_offset + BLOCK_SIZE)
            continue
        if typeflag == PAX_LOCAL_TYPE:
            if pax is not None:
                raise member_error(header.name, "two pax headers for one member", block_offset)
            pax = parse_pax_records(content, block_offset + BLOCK_SIZE)
        elif typeflag == GNU_LONGNAME_TYPE:
            if long_name is not None:
                raise member_error(header.name, "two GNU long names for one member", block_offset)
            long_name = cstring(content)
        else:
            if long_link is not None:
                raise member_error(header.name, "two GNU long link names for one member", block_offset)
            long_link = cstring(content)


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
            raise member_error(self._member.entry.path, "archive truncated inside member content (%d bytes missing)" % (
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

    def __init__(self, source: _StreamSource, chain: HeaderChain) -> None:
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
                raise member_error(self.entry.path, "archive truncated inside member padding", self.offset)
            self._padding = padding
        return self._padding


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
        chain = read_header_chain(self._source)
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
