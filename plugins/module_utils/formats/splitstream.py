# -*- coding: utf-8 -*-
# Copyright: (c) 2026, bootc.composefs maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Splitstream: a byte stream stored as inline pieces plus references to repository objects.

Layer: formats. Spec: ``composefs-repo.md`` sections 8 and 10.1; upstream: composefs-rs
``crates/composefs/src/splitstream_format.rs`` (format prose) and ``splitstream.rs`` (reader, writer).

composefs-rs stores OCI manifests, configs and tar layers this way: large file contents become
*external* chunks (fs-verity digests of objects), the rest stays *inline* and is zstd-compressed.
The splitstream file is itself an object. All integers are little-endian. A *range* is a pair of
u64 ``[start, end)`` of absolute file offsets (``end < start`` is an error); readers find every
section only through ranges, so the physical order below is the writer's choice.

File as written (``N`` = digest size: 32 for sha256, 64 for sha512):

============ ============================= ==================================================
position     size                          section
============ ============================= ==================================================
0            32                            header
32           80                            info
112          N * stream refs               stream_refs: raw digests, no header
then         N * object refs               object_refs: raw digests, no header
then         variable                      named_refs: one zstd frame of records
then to EOF  variable                      stream: one zstd frame of chunks
============ ============================= ==================================================

Header, current layout (``#[repr(C)]``, written since bootc 1.16):

====== ==== ============ ============================================================
offset size field        value
====== ==== ============ ============================================================
0      11   magic        ASCII ``SplitStream``
11     1    version      0 (anything else is refused)
12     2    flags        0 (ignored on read)
14     1    algorithm    kernel fs-verity id: 1 sha256, 2 sha512
15     1    lg_blocksize 12 (anything else is refused)
16     16   info         range of the info section: ``[32, 112)`` as written
====== ==== ============ ============================================================

Header, old layout (Rust struct without ``#[repr(C)]``, bootc <= 1.15): the same fields in another
order: info at 0, flags at 16, magic at 18, version at 29, algorithm at 30, lg_blocksize at 31.
Readers try the current layout first and the old one when bytes 0..11 are not the magic.

Info (80 bytes; a longer info section is accepted and its extra bytes ignored, a shorter one is an
error):

====== ==== ============= ==========================================================
offset size field         meaning
====== ==== ============= ==========================================================
0      16   stream_refs   range: digests of objects named by named refs
16     16   object_refs   range: digests of external chunk objects
32     16   stream        range: compressed chunk stream
48     16   named_refs    range: compressed named-ref records
64     8    content_type  opaque u64 tag (the ``CONTENT_TYPE_*`` constants)
72     8    stream_size   length of the reassembled stream (inline + external bytes)
====== ==== ============= ==========================================================

Both digest arrays are unique lists in first-insertion order; a range length must be a multiple
of ``N``. Content types are ASCII words read as a little-endian u64 (section 10.1): ``ocilayer``
tar layer, ``ociconfg`` config, ``ocimanif`` manifest, ``oci_blob`` other blob.

Named refs: the inflated section is a sequence of records ``<decimal index>:<name>\\0``, each
ended by NUL (the last one too). The record is split at its *first* ``:`` (names contain colons,
``0:config:sha256:...``); the index points into ``stream_refs``. Writers sort records by name
bytes; readers do not rely on order, a repeated name keeps the last record. An empty section (no
bytes at all, or a frame inflating to nothing) means no refs. Bytes after the last NUL and
non-UTF-8 records are errors.

Stream: the inflated section is a sequence of chunks up to EOF, which must fall on a chunk
boundary. Each chunk starts with an i64 ``v``: ``v < 0`` is an inline chunk whose ``-v`` literal
bytes follow; ``v >= 0`` is an external chunk, the whole content of object ``object_refs[v]``.
Writers coalesce consecutive inline writes, so inline chunks are never empty.

zstd: each section is written as one frame, also when empty (composefs-rs writes level 3, no
checksum, no content size); readers accept any number of concatenated frames. Output bytes differ
between zstd implementations, so splitstream object ids are not reproducible across writers; only
the logical content is.

Not supported: the pre-November-2025 splitstream format (whole file zstd, different header), which
composefs-rs 0.9.0 also refuses.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Callable, Iterator, NamedTuple

from ansible_collections.bootc.composefs.plugins.module_utils.errors import FormatError
from ansible_collections.bootc.composefs.plugins.module_utils.formats import fsverity, zstd

__all__ = [
    "MAGIC",
    "CONTENT_TYPE_OCI_LAYER",
    "CONTENT_TYPE_OCI_CONFIG",
    "CONTENT_TYPE_OCI_MANIFEST",
    "CONTENT_TYPE_OCI_BLOB",
    "FileRange",
    "SplitStreamHeader",
    "SplitStreamInfo",
    "SplitStream",
    "parse_header",
    "encode_header",
    "parse_info",
    "encode_info",
    "parse_named_refs",
    "encode_named_refs",
    "parse_splitstream",
    "iter_chunks",
    "reassemble",
    "SplitStreamWriter",
]

# --- header -------------------------------------------------------------------------------------
MAGIC = b"SplitStream"
VERSION = 0
LG_BLOCK_SIZE = 12
HEADER_SIZE = 32
# magic, version, flags, algorithm, lg_blocksize, info.start, info.end
_HEADER = struct.Struct("<11sBHBBQQ")
# info.start, info.end, flags, magic, version, algorithm, lg_blocksize (bootc <= 1.15)
_OLD_HEADER = struct.Struct("<QQH11sBBB")
_OLD_MAGIC_OFFSET = 18
# byte offsets of header fields, for error messages: (current layout, old layout)
_FIELD_OFFSETS = {"version": (11, 29), "algorithm": (14, 30), "lg_blocksize": (15, 31), "info": (16, 0)}

# --- info ---------------------------------------------------------------------------------------
INFO_SIZE = 80
# stream_refs, object_refs, stream, named_refs (start, end each), content_type, stream_size
_INFO = struct.Struct("<10Q")
_INFO_FIELD_OFFSETS = {"stream_refs": 0, "object_refs": 16, "stream": 32, "named_refs": 48}

# --- chunks -------------------------------------------------------------------------------------
_CHUNK = struct.Struct("<q")  # < 0: inline length (negated); >= 0: index into object_refs
MAX_U64 = (1 << 64) - 1

# --- content types (section 10.1): ASCII words as little-endian u64 ------------------------------
CONTENT_TYPE_OCI_LAYER = 0x726579616C69636F  # b"ocilayer"
CONTENT_TYPE_OCI_CONFIG = 0x67666E6F6369636F  # b"ociconfg"
CONTENT_TYPE_OCI_MANIFEST = 0x66696E616D69636F  # b"ocimanif"
CONTENT_TYPE_OCI_BLOB = 0x626F6C625F69636F  # b"oci_blob"

# --- safety limits ------------------------------------------------------------------------------
# Named refs are one short record per layer plus a few image keys; a manifest with thousands of
# layers stays far below this, so a larger inflated section is a decompression bomb.
MAX_NAMED_REFS_BYTES = 16 << 20


class FileRange(NamedTuple):
    """Half-open ``[start, end)`` of absolute file offsets."""

    start: int
    end: int


class SplitStreamHeader(NamedTuple):
    """The 32-byte header; ``legacy`` selects the old (bootc <= 1.15) field order."""

    algorithm_id: int
    info: FileRange
    version: int = VERSION
    flags: int = 0
    lg_block_size: int = LG_BLOCK_SIZE
    legacy: bool = False


class SplitStreamInfo(NamedTuple):
    """The 80-byte info section."""

    stream_refs: FileRange
    object_refs: FileRange
    stream: FileRange
    named_refs: FileRange
    content_type: int
    stream_size: int


@dataclass(frozen=True)
class SplitStream:
    """A parsed splitstream; ``stream_data`` is the still-compressed stream section."""

    algorithm: fsverity.HashAlgorithm
    content_type: int
    stream_size: int
    stream_refs: tuple
    object_refs: tuple
    named_refs: dict = field(hash=False)
    stream_data: bytes = b""
    legacy_header: bool = False


def parse_header(buf) -> SplitStreamHeader:
    """Parse the header at the start of ``buf`` (either layout); FormatError for bad magic or size."""
    view = memoryview(buf).cast("B")
    if len(view) < HEADER_SIZE:
        raise FormatError("file is %d bytes, shorter than the %d-byte splitstream header" % (len(view), HEADER_SIZE), offset=0)
    magic, version, flags, algorithm_id, lg_block_size, start, end = _HEADER.unpack_from(view, 0)
    if magic == MAGIC:
        return SplitStreamHeader(algorithm_id, FileRange(start, end), version, flags, lg_block_size, False)
    start, end, flags, magic, version, algorithm_id, lg_block_size = _OLD_HEADER.unpack_from(view, 0)
    if magic == MAGIC:
        return SplitStreamHeader(algorithm_id, FileRange(start, end), version, flags, lg_block_size, True)
    raise FormatError("no %r magic at offset 0 or %d; not a splitstream (or one of the unsupported pre-2025 format)"
                      % (MAGIC.decode(), _OLD_MAGIC_OFFSET), offset=0)


def encode_header(header: SplitStreamHeader) -> bytes:
    """Return the 32 header bytes in the layout ``header.legacy`` selects."""
    if header.legacy:
        return _OLD_HEADER.pack(header.info.start, header.info.end, header.flags, MAGIC, header.version,
                                header.algorithm_id, header.lg_block_size)
    return _HEADER.pack(MAGIC, header.version, header.flags, header.algorithm_id, header.lg_block_size,
                        header.info.start, header.info.end)


def parse_info(buf) -> SplitStreamInfo:
    """Parse the first 80 bytes of an info section (extra bytes are ignored)."""
    view = memoryview(buf).cast("B")
    if len(view) < INFO_SIZE:
        raise FormatError("info section is %d bytes, expected at least %d" % (len(view), INFO_SIZE))
    values = _INFO.unpack_from(view, 0)
    ranges = [FileRange(values[i], values[i + 1]) for i in range(0, 8, 2)]
    return SplitStreamInfo(ranges[0], ranges[1], ranges[2], ranges[3], values[8], values[9])


def encode_info(info: SplitStreamInfo) -> bytes:
    """Return the 80 info bytes."""
    return _INFO.pack(info.stream_refs.start, info.stream_refs.end, info.object_refs.start, info.object_refs.end,
                      info.stream.start, info.stream.end, info.named_refs.start, info.named_refs.end,
                      info.content_type, info.stream_size)


def _section(view, file_range: FileRange, what: str, field_offset: int):
    """Return ``view[start:end]`` after checking the range against the buffer."""
    start, end = file_range
    if end < start:
        raise FormatError("%s range [0x%x, 0x%x) ends before it starts" % (what, start, end), offset=field_offset)
    if end > len(view):
        raise FormatError("%s range [0x%x, 0x%x) ends past the end of the file (size %d)" % (what, start, end, len(view)),
                          offset=field_offset)
    return view[start:end]


def _digests(view, file_range: FileRange, algorithm: fsverity.HashAlgorithm, what: str, field_offset: int) -> tuple:
    section = _section(view, file_range, what, field_offset)
    size = algorithm.digest_size
    if len(section) % size:
        raise FormatError("%s section is %d bytes, not a multiple of the %d-byte %s digest"
                          % (what, len(section), size, algorithm.name), offset=field_offset)
    raw = section.tobytes()
    return tuple(raw[i:i + size] for i in range(0, len(raw), size))


def _inflate(data, what: str, section_start: int | None, max_size: int | None) -> bytes:
    """Inflate a section; errors carry the file offset when ``section_start`` is known."""
    try:
        return zstd.decompress(data, max_size)
    except FormatError as err:
        inner = err.offset if err.offset is not None else 0
        if section_start is None:
            raise FormatError("%s section, offset 0x%x into the section: %s" % (what, inner, err.message)) from None
        raise FormatError("%s section: %s" % (what, err.message), offset=section_start + inner) from None


def parse_named_refs(data: bytes, stream_refs: tuple) -> dict:
    """Parse inflated named-ref records into ``{name: digest}`` (digests resolved through ``stream_refs``)."""
    named = {}
    if not data:
        return named
    records = bytes(data).split(b"\0")
    if records[-1]:
        raise FormatError("named refs: %d trailing byte(s) not terminated by NUL" % len(records[-1]))
    position = 0
    for record in records[:-1]:
        try:
            text = record.decode("utf-8")
        except UnicodeDecodeError:
            raise FormatError("named refs: record at inflated offset %d is not UTF-8" % position) from None
        index_text, colon, name = text.partition(":")
        if not colon or not index_text.isdigit() or not index_text.isascii():
            raise FormatError("named refs: record at inflated offset %d is not '<index>:<name>': %r" % (position, text))
        index = int(index_text)
        if index >= len(stream_refs):
            raise FormatError("named refs: record %r points at stream ref %d but there are only %d"
                              % (text, index, len(stream_refs)))
        named[name] = stream_refs[index]
        position += len(record) + 1
    return named


def encode_named_refs(named: dict) -> bytes:
    """Return the inflated records for ``{name: stream_refs index}``, sorted by name bytes."""
    items = sorted((name.encode("utf-8"), index) for name, index in named.items())
    return b"".join(b"%d:%s\0" % (index, name) for name, index in items)


def parse_splitstream(buf, algorithm: fsverity.HashAlgorithm | None = None) -> SplitStream:
    """Parse a whole splitstream file (either header layout) without inflating the stream section.

    ``algorithm`` (the repository's) must match the header; None accepts the header's algorithm.
    """
    view = memoryview(buf).cast("B")
    header = parse_header(view)
    layout = 1 if header.legacy else 0
    if header.version != VERSION:
        raise FormatError("splitstream version %d is not supported (expected %d)" % (header.version, VERSION),
                          offset=_FIELD_OFFSETS["version"][layout])
    if header.lg_block_size != LG_BLOCK_SIZE:
        raise FormatError("fs-verity lg_blocksize %d is not supported (expected %d)" % (header.lg_block_size, LG_BLOCK_SIZE),
                          offset=_FIELD_OFFSETS["lg_blocksize"][layout])
    try:
        found = fsverity.algorithm_by_kernel_id(header.algorithm_id)
    except FormatError:
        found = None
    if found is None:
        raise FormatError("unknown fs-verity algorithm id %d (expected 1 = sha256 or 2 = sha512)" % header.algorithm_id,
                          offset=_FIELD_OFFSETS["algorithm"][layout])
    if algorithm is not None and found != algorithm:
        raise FormatError("splitstream uses fs-verity algorithm %s but the repository uses %s" % (found.name, algorithm.name),
                          offset=_FIELD_OFFSETS["algorithm"][layout])
    info_field = _FIELD_OFFSETS["info"][layout]
    info_bytes = _section(view, header.info, "info", info_field)
    if len(info_bytes) < INFO_SIZE:
        raise FormatError("info section is %d bytes, expected at least %d" % (len(info_bytes), INFO_SIZE), offset=info_field)
    info = parse_info(info_bytes)
    base = header.info.start
    stream_refs = _digests(view, info.stream_refs, found, "stream_refs", base + _INFO_FIELD_OFFSETS["stream_refs"])
    object_refs = _digests(view, info.object_refs, found, "object_refs", base + _INFO_FIELD_OFFSETS["object_refs"])
    named_section = _section(view, info.named_refs, "named_refs", base + _INFO_FIELD_OFFSETS["named_refs"])
    stream_section = _section(view, info.stream, "stream", base + _INFO_FIELD_OFFSETS["stream"])
    records = _inflate(named_section, "named_refs", info.named_refs.start, MAX_NAMED_REFS_BYTES)
    try:
        named_refs = parse_named_refs(records, stream_refs)
    except FormatError as err:
        raise FormatError(err.message, offset=info.named_refs.start) from None
    return SplitStream(algorithm=found, content_type=info.content_type, stream_size=info.stream_size,
                       stream_refs=stream_refs, object_refs=object_refs, named_refs=named_refs,
                       stream_data=stream_section.tobytes(), legacy_header=header.legacy)


def iter_chunks(stream: SplitStream, max_size: int | None = None) -> Iterator:
    """Yield the chunks of the stream section: ``bytes`` for inline data, ``int`` (object_refs index) for external.

    The section is inflated first (at most ``max_size`` bytes when given). FormatError for a chunk
    running past the end, an index outside ``object_refs``, or bad zstd data.
    """
    body = _inflate(stream.stream_data, "stream", None, max_size)
    view = memoryview(body)
    position, end, count = 0, len(body), len(stream.object_refs)
    while position < end:
        if end - position < _CHUNK.size:
            raise FormatError("stream: %d byte(s) at inflated offset %d are too short for a chunk header"
                              % (end - position, position))
        (value,) = _CHUNK.unpack_from(view, position)
        position += _CHUNK.size
        if value < 0:
            length = -value
            if length > end - position:
                raise FormatError("stream: inline chunk at inflated offset %d claims %d bytes, only %d remain"
                                  % (position - _CHUNK.size, length, end - position))
            yield bytes(view[position:position + length])
            position += length
        elif value >= count:
            raise FormatError("stream: external chunk at inflated offset %d names object ref %d but there are only %d"
                              % (position - _CHUNK.size, value, count))
        else:
            yield value


def reassemble(stream: SplitStream, read_object: Callable[[bytes], bytes], max_size: int | None = None) -> bytes:
    """Return the reassembled stream; ``read_object(fsverity_digest)`` supplies external chunks."""
    pieces = []
    for chunk in iter_chunks(stream, max_size):
        pieces.append(chunk if isinstance(chunk, bytes) else read_object(stream.object_refs[chunk]))
    return b"".join(pieces)


class _UniqueList:
    """Digests in first-insertion order with their indexes."""

    def __init__(self) -> None:
        self.items = []
        self._index = {}

    def ensure(self, item: bytes) -> int:
        index = self._index.get(item)
        if index is None:
            index = self._index[item] = len(self.items)
            self.items.append(item)
        return index


class SplitStreamWriter:
    """Build a splitstream in memory: inline writes, external chunks, named refs; then ``encode()``."""

    def __init__(self, algorithm: fsverity.HashAlgorithm, content_type: int) -> None:
        if algorithm not in fsverity.ALGORITHMS:
            raise ValueError("unsupported fs-verity algorithm %r" % (algorithm,))
        if isinstance(content_type, bool) or not isinstance(content_type, int) or not 0 <= content_type <= MAX_U64:
            raise ValueError("content_type must be an unsigned 64-bit integer, not %r" % (content_type,))
        self.algorithm = algorithm
        self.content_type = content_type
        self.stream_size = 0
        self._body = []  # encoded chunks, inflated
        self._pending = []  # inline pieces not yet framed as a chunk
        self._pending_size = 0
        self._stream_refs = _UniqueList()
        self._object_refs = _UniqueList()
        self._named = {}

    def _check_digest(self, fsverity_digest) -> bytes:
        digest = bytes(fsverity_digest)
        if len(digest) != self.algorithm.digest_size:
            raise ValueError("fs-verity digest is %d bytes, expected %d for %s"
                             % (len(digest), self.algorithm.digest_size, self.algorithm.name))
        return digest

    def _inline_chunk(self) -> list:
        if not self._pending_size:
            return []
        return [_CHUNK.pack(-self._pending_size)] + self._pending

    def write_inline(self, data) -> None:
        """Append literal bytes; consecutive inline writes become one chunk."""
        piece = bytes(data)
        if piece:
            self._pending.append(piece)
            self._pending_size += len(piece)
            self.stream_size += len(piece)

    def write_external(self, fsverity_digest: bytes, size: int) -> None:
        """Append the whole content of the object ``fsverity_digest`` (``size`` bytes long)."""
        digest = self._check_digest(fsverity_digest)
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise ValueError("external chunk size must be a non-negative integer, not %r" % (size,))
        self._body.extend(self._inline_chunk())
        self._pending, self._pending_size = [], 0
        self._body.append(_CHUNK.pack(self._object_refs.ensure(digest)))
        self.stream_size += size

    def add_named_ref(self, name: str, fsverity_digest: bytes) -> None:
        """Record ``name`` -> ``fsverity_digest`` (added to stream_refs); a repeated name replaces the earlier one."""
        if not isinstance(name, str) or "\0" in name:
            raise ValueError("named ref name must be a string without NUL, not %r" % (name,))
        name.encode("utf-8")
        self._named[name] = self._stream_refs.ensure(self._check_digest(fsverity_digest))

    @property
    def object_refs(self) -> tuple:
        """The external chunk digests so far, in first-use order."""
        return tuple(self._object_refs.items)

    def encode(self) -> bytes:
        """Return the complete splitstream file (current header layout); the writer stays usable."""
        stream = zstd.compress(b"".join(self._body + self._inline_chunk()))
        named = zstd.compress(encode_named_refs(self._named))
        stream_refs = b"".join(self._stream_refs.items)
        object_refs = b"".join(self._object_refs.items)
        info_start = HEADER_SIZE
        stream_refs_start = info_start + INFO_SIZE
        object_refs_start = stream_refs_start + len(stream_refs)
        named_start = object_refs_start + len(object_refs)
        stream_start = named_start + len(named)
        info = SplitStreamInfo(
            stream_refs=FileRange(stream_refs_start, object_refs_start),
            object_refs=FileRange(object_refs_start, named_start),
            stream=FileRange(stream_start, stream_start + len(stream)),
            named_refs=FileRange(named_start, stream_start),
            content_type=self.content_type,
            stream_size=self.stream_size,
        )
        header = SplitStreamHeader(self.algorithm.kernel_id, FileRange(info_start, stream_refs_start))
        return b"".join((encode_header(header), encode_info(info), stream_refs, object_refs, named, stream))
