# -*- coding: utf-8 -*-
# Copyright: (c) 2026, bootc.composefs maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Zstandard frames (RFC 8878 section 3.1): headers, block headers, skippable frames.

Layer: formats. This file knows the *outer* shape of a zstd stream: where frames start and end,
what their headers say and where their blocks are. It does not decode block contents (that is
``zstd_block.py``); the public API is ``zstd.py``. composefs-rs writes one frame per splitstream
section (spec ``composefs-repo.md`` section 8.7); readers accept any number of concatenated frames.

All integers are little-endian.

A stream is a sequence of frames, each either a zstd frame or a skippable frame:

| frame | layout |
|---|---|
| zstd frame | magic ``28 b5 2f fd`` (u32 0xFD2FB528), frame header, one or more blocks, optional checksum |
| skippable frame | magic u32 0x184D2A50..0x184D2A5F, u32 ``Frame_Size``, ``Frame_Size`` bytes of user data |

Frame header (after the magic), 2 to 14 bytes:

| field | size | meaning |
|---|---|---|
| Frame_Header_Descriptor | 1 | bits 7-6 FCS flag, bit 5 Single_Segment, bit 4 unused, bit 3 reserved (0), bit 2 checksum, bits 1-0 DID flag |
| Window_Descriptor | 0 or 1 | absent when Single_Segment; exponent bits 7-3, mantissa bits 2-0 |
| Dictionary_ID | 0, 1, 2 or 4 | by DID flag 0..3 |
| Frame_Content_Size | 0, 1, 2, 4 or 8 | FCS flag 0 -> 1 byte if Single_Segment else absent; 1 -> 2 bytes (value + 256); 2 -> 4; 3 -> 8 |

``Window_Size = (1 << (10 + exponent)) * (8 + mantissa) / 8``; with Single_Segment the window is the
content size. Block header, 3 bytes (u24):

| bits | field | meaning |
|---|---|---|
| 0 | Last_Block | 1 on the frame's last block |
| 1-2 | Block_Type | 0 raw (Block_Size bytes copied), 1 RLE (one byte repeated Block_Size times), 2 compressed, 3 reserved |
| 3-23 | Block_Size | raw/compressed: bytes that follow; RLE: regenerated size (one byte follows) |

A block regenerates at most ``Block_Maximum_Size = min(Window_Size, 128 KiB)`` bytes and a compressed
block is at most 128 KiB. The optional 4-byte content checksum is the low 32 bits of XXH64 (seed 0)
of the frame's decompressed content (``zstd_checksum.py``).

Two walkers apply the same checks (bad magic, truncation, reserved bits and block types, oversized
blocks, dictionaries), with the same messages and stream offsets: :func:`scan_frames` over a
buffer holding the whole stream, :class:`StreamScanner` over a file object, one frame header or
block at a time, for the streaming reader (``zstd_stream.py``).

Deliberately unsupported: dictionaries (a non-zero Dictionary_ID raises ``FormatError``; an ID field
present with value 0 means "no dictionary", as in libzstd). The window size is not limited here:
the pure-Python decoder keeps a frame's window in memory; accelerators apply their own limits.
"""

from __future__ import annotations

import struct
from typing import BinaryIO, List, NamedTuple, Optional

from ansible_collections.bootc.composefs.plugins.module_utils.errors import FormatError
# xxh64 moved to zstd_checksum.py; still importable from here for bench/bench_zstd.py.
from ansible_collections.bootc.composefs.plugins.module_utils.formats.zstd_checksum import xxh64

__all__ = [
    "ZSTD_MAGIC",
    "SKIPPABLE_MAGIC_MIN",
    "SKIPPABLE_MAGIC_MAX",
    "MAX_BLOCK_SIZE",
    "BLOCK_RAW",
    "BLOCK_RLE",
    "BLOCK_COMPRESSED",
    "FrameHeader",
    "FrameSpan",
    "parse_frame_header",
    "encode_frame_header",
    "encode_block_header",
    "encode_skippable_frame",
    "scan_frames",
    "StreamBlock",
    "StreamScanner",
    "xxh64",
]

# --- magic numbers -------------------------------------------------------------------------------
ZSTD_MAGIC = 0xFD2FB528
ZSTD_MAGIC_BYTES = b"\x28\xb5\x2f\xfd"
SKIPPABLE_MAGIC_MIN = 0x184D2A50
SKIPPABLE_MAGIC_MAX = 0x184D2A5F

# --- records -------------------------------------------------------------------------------------
U16 = struct.Struct("<H")
U32 = struct.Struct("<I")
U64 = struct.Struct("<Q")
# skippable frame: magic, Frame_Size
SKIPPABLE_HEADER = struct.Struct("<II")
SKIPPABLE_HEADER_SIZE = 8
BLOCK_HEADER_SIZE = 3
CHECKSUM_SIZE = 4

# --- Frame_Header_Descriptor bits ----------------------------------------------------------------
FHD_FCS_SHIFT = 6
FHD_SINGLE_SEGMENT = 0x20
FHD_RESERVED = 0x08
FHD_CHECKSUM = 0x04
FHD_DID_MASK = 0x03
# Dictionary_ID field size by DID flag; Frame_Content_Size field size by FCS flag (flag 0 depends
# on Single_Segment: see _fcs_size).
DID_FIELD_SIZES = (0, 1, 2, 4)
FCS_FIELD_SIZES = (0, 2, 4, 8)

# --- block header ---------------------------------------------------------------------------------
BLOCK_RAW = 0
BLOCK_RLE = 1
BLOCK_COMPRESSED = 2
BLOCK_RESERVED = 3
# 128 KiB: the most a block may regenerate (further limited by the window) and the largest
# compressed block payload.
MAX_BLOCK_SIZE = 128 * 1024
MIN_WINDOW_LOG = 10
# StreamScanner reads its file object in pieces of this size (at least).
SCANNER_READ_SIZE = 1 << 20


class FrameHeader(NamedTuple):
    """A parsed zstd frame header; ``header_size`` counts the 4 magic bytes."""

    header_size: int
    window_size: int
    content_size: Optional[int]
    dictionary_id: int
    has_checksum: bool
    single_segment: bool

    @property
    def block_max_size(self) -> int:
        """Most bytes one block of this frame may regenerate."""
        return min(self.window_size, MAX_BLOCK_SIZE)


class FrameSpan(NamedTuple):
    """Where one frame lies in a stream: ``[start, end)``; ``header`` is None for skippable frames."""

    start: int
    end: int
    header: Optional[FrameHeader]


def _need(buf, offset: int, size: int, what: str) -> None:
    if offset + size > len(buf):
        raise FormatError("truncated zstd data: expected %s (%d bytes), only %d left"
                          % (what, size, max(0, len(buf) - offset)), offset=offset)


def _header_size(descriptor: int, offset: int) -> int:
    """Return the frame header size after the magic (descriptor included) of Frame_Header_Descriptor ``descriptor``."""
    if descriptor & FHD_RESERVED:
        raise FormatError("zstd frame header descriptor 0x%02x has the reserved bit set" % descriptor, offset=offset)
    single_segment = bool(descriptor & FHD_SINGLE_SEGMENT)
    fcs_flag = descriptor >> FHD_FCS_SHIFT
    fcs_size = 1 if (fcs_flag == 0 and single_segment) else FCS_FIELD_SIZES[fcs_flag]
    return 1 + (0 if single_segment else 1) + DID_FIELD_SIZES[descriptor & FHD_DID_MASK] + fcs_size


def _block_payload_size(value: int, header: FrameHeader, offset: int) -> int:
    """Return how many bytes follow block header ``value`` (a u24 at ``offset``), after checking it."""
    block_type = (value >> 1) & 3
    block_size = value >> 3
    if block_type == BLOCK_RESERVED:
        raise FormatError("reserved block type 3", offset=offset)
    if block_type == BLOCK_COMPRESSED:
        if block_size > MAX_BLOCK_SIZE:
            raise FormatError("compressed block of %d bytes exceeds the 128 KiB limit" % block_size, offset=offset)
        return block_size
    if block_size > header.block_max_size:
        raise FormatError("block regenerates %d bytes, more than the block maximum %d"
                          % (block_size, header.block_max_size), offset=offset)
    return 1 if block_type == BLOCK_RLE else block_size


def _is_skippable(magic: int) -> bool:
    return SKIPPABLE_MAGIC_MIN <= magic <= SKIPPABLE_MAGIC_MAX


def _bad_magic(magic: int, offset: int) -> FormatError:
    return FormatError("expected a zstd frame magic (28 b5 2f fd) or a skippable frame magic, found %08x" % magic, offset=offset)


def _truncated_skippable(announced: int, present: int, offset: int) -> FormatError:
    return FormatError("truncated skippable frame: %d bytes of user data announced, %d present" % (announced, present),
                       offset=offset)


def parse_frame_header(buf, offset: int = 0) -> FrameHeader:
    """Parse the zstd frame header starting at the magic number at ``offset``."""
    _need(buf, offset, 5, "zstd frame magic and header descriptor")
    if bytes(buf[offset:offset + 4]) != ZSTD_MAGIC_BYTES:
        raise FormatError("expected zstd frame magic 28 b5 2f fd, found %s" % bytes(buf[offset:offset + 4]).hex(), offset=offset)
    pos = offset + 4
    descriptor = buf[pos]
    size = _header_size(descriptor, pos)
    single_segment = bool(descriptor & FHD_SINGLE_SEGMENT)
    fcs_flag = descriptor >> FHD_FCS_SHIFT
    fcs_size = 1 if (fcs_flag == 0 and single_segment) else FCS_FIELD_SIZES[fcs_flag]
    did_size = DID_FIELD_SIZES[descriptor & FHD_DID_MASK]
    _need(buf, pos, size, "zstd frame header")
    pos += 1
    window_size = 0
    if not single_segment:
        window_descriptor = buf[pos]
        window_log = MIN_WINDOW_LOG + (window_descriptor >> 3)
        window_base = 1 << window_log
        window_size = window_base + (window_base >> 3) * (window_descriptor & 7)
        pos += 1
    dictionary_id = int.from_bytes(bytes(buf[pos:pos + did_size]), "little")
    if dictionary_id:
        raise FormatError("zstd frame needs dictionary %d: dictionaries are not supported" % dictionary_id, offset=pos)
    pos += did_size
    content_size = None
    if fcs_size:
        content_size = int.from_bytes(bytes(buf[pos:pos + fcs_size]), "little")
        if fcs_size == 2:
            content_size += 256
    if single_segment:
        window_size = content_size
    return FrameHeader(4 + size, window_size, content_size, dictionary_id, bool(descriptor & FHD_CHECKSUM), single_segment)


def encode_frame_header(content_size: Optional[int], has_checksum: bool, window_log: int = 20) -> bytes:
    """Encode magic + frame header; single-segment (window = content) when the content fits the window."""
    if content_size is not None and content_size <= (1 << window_log):
        # Single_Segment: no Window_Descriptor, the content size doubles as the window.
        if content_size < 256:
            fcs_flag, field = 0, bytes((content_size,))
        elif content_size < 65536 + 256:
            fcs_flag, field = 1, U16.pack(content_size - 256)
        elif content_size < (1 << 32):
            fcs_flag, field = 2, U32.pack(content_size)
        else:
            fcs_flag, field = 3, U64.pack(content_size)
        descriptor = (fcs_flag << FHD_FCS_SHIFT) | FHD_SINGLE_SEGMENT | (FHD_CHECKSUM if has_checksum else 0)
        return ZSTD_MAGIC_BYTES + bytes((descriptor,)) + field
    if not MIN_WINDOW_LOG <= window_log <= 41:
        raise ValueError("window_log must be between 10 and 41, not %r" % (window_log,))
    window_descriptor = bytes(((window_log - MIN_WINDOW_LOG) << 3,))
    if content_size is None:
        fcs_flag, field = 0, b""
    elif content_size < (1 << 32):
        fcs_flag, field = 2, U32.pack(content_size)
    else:
        fcs_flag, field = 3, U64.pack(content_size)
    descriptor = (fcs_flag << FHD_FCS_SHIFT) | (FHD_CHECKSUM if has_checksum else 0)
    return ZSTD_MAGIC_BYTES + bytes((descriptor,)) + window_descriptor + field


def encode_block_header(last: bool, block_type: int, block_size: int) -> bytes:
    """Encode a 3-byte block header."""
    return (int(last) | (block_type << 1) | (block_size << 3)).to_bytes(3, "little")


def encode_skippable_frame(user_data: bytes, magic_variant: int = 0) -> bytes:
    """Encode a skippable frame holding ``user_data`` (magic 0x184D2A50 + ``magic_variant``)."""
    return SKIPPABLE_HEADER.pack(SKIPPABLE_MAGIC_MIN + (magic_variant & 15), len(user_data)) + bytes(user_data)


def scan_frames(buf) -> List[FrameSpan]:
    """Split a stream into frames, checking headers and block framing (not block contents).

    Cheap (one look per block header). Raises ``FormatError`` for anything that is not a complete
    sequence of frames: bad magic, truncation, reserved bits or block types, oversized blocks.
    """
    spans = []
    pos = 0
    end = len(buf)
    while pos < end:
        _need(buf, pos, 4, "frame magic number")
        magic = U32.unpack_from(buf, pos)[0]
        if _is_skippable(magic):
            _need(buf, pos, SKIPPABLE_HEADER_SIZE, "skippable frame header")
            frame_end = pos + SKIPPABLE_HEADER_SIZE + U32.unpack_from(buf, pos + 4)[0]
            if frame_end > end:
                raise _truncated_skippable(frame_end - pos - SKIPPABLE_HEADER_SIZE, end - pos - SKIPPABLE_HEADER_SIZE, pos)
            spans.append(FrameSpan(pos, frame_end, None))
            pos = frame_end
            continue
        if magic != ZSTD_MAGIC:
            raise _bad_magic(magic, pos)
        header = parse_frame_header(buf, pos)
        block_pos = pos + header.header_size
        while True:
            _need(buf, block_pos, BLOCK_HEADER_SIZE, "block header")
            value = buf[block_pos] | (buf[block_pos + 1] << 8) | (buf[block_pos + 2] << 16)
            payload = _block_payload_size(value, header, block_pos)
            block_pos += BLOCK_HEADER_SIZE
            _need(buf, block_pos, payload, "block contents")
            block_pos += payload
            if value & 1:
                break
        if header.has_checksum:
            _need(buf, block_pos, CHECKSUM_SIZE, "content checksum")
            block_pos += CHECKSUM_SIZE
        spans.append(FrameSpan(pos, block_pos, header))
        pos = block_pos
    return spans


class StreamBlock(NamedTuple):
    """One block as :class:`StreamScanner` read it: ``raw`` is its 3-byte header followed by its payload."""

    offset: int  # stream offset of the block header
    last: bool
    block_type: int
    size: int  # Block_Size: regenerated bytes (raw, RLE) or payload bytes (compressed)
    raw: bytes


class StreamScanner:
    """Walk a zstd stream read from a binary file object, one frame header or block at a time.

    Same checks, messages and stream offsets as :func:`scan_frames`; skippable frames are read and
    dropped. Use: :meth:`next_frame` (None at the end of the stream), then :meth:`next_block` until
    a block is ``last``, then :meth:`end_frame`. ``offset`` is the stream offset of the next byte.
    """

    def __init__(self, fileobj: BinaryIO, read_size: int = SCANNER_READ_SIZE) -> None:
        self._source = fileobj
        self._read_size = read_size
        self._buf = b""
        self._pos = 0  # next unconsumed byte of _buf
        self._eof = False
        self.offset = 0
        self.frame_start = 0  # stream offset of the current frame's magic
        self.header = None  # the current frame's header while its blocks are read
        self.header_bytes = b""  # the current frame's magic and header, as read
        self._block_due = False

    def _available(self, size: int) -> int:
        """Buffer at least ``size`` unconsumed bytes unless the stream ends first; return how many there are."""
        have = len(self._buf) - self._pos
        while have < size and not self._eof:
            chunk = self._source.read(max(self._read_size, size - have))
            if not chunk:
                self._eof = True
                break
            self._buf = self._buf[self._pos:] + bytes(chunk)
            self._pos = 0
            have = len(self._buf)
        return have

    def _need(self, size: int, what: str, skip: int = 0) -> None:
        """Like :func:`_need` for the ``size`` bytes ``skip`` bytes after the next unconsumed one."""
        have = self._available(skip + size) - skip
        if have < size:
            raise FormatError("truncated zstd data: expected %s (%d bytes), only %d left" % (what, size, max(0, have)),
                              offset=self.offset + skip)

    def _take(self, size: int, what: str) -> bytes:
        self._need(size, what)
        piece = self._buf[self._pos:self._pos + size]
        self._pos += size
        self.offset += size
        return piece

    def _skip(self, size: int) -> int:
        """Consume up to ``size`` bytes without keeping them; return how many there were."""
        skipped = 0
        while skipped < size:
            have = self._available(1)
            if not have:
                break
            step = min(have, size - skipped)
            self._pos += step
            self.offset += step
            skipped += step
        return skipped

    def next_frame(self) -> FrameHeader | None:
        """Skip skippable frames; return the next zstd frame's header, or None at the end of the stream."""
        if self.header is not None:
            raise ValueError("the current frame has not been read to its end")
        while self._available(1):
            start = self.offset
            self._need(4, "frame magic number")
            magic = U32.unpack_from(self._buf, self._pos)[0]
            if _is_skippable(magic):
                announced = U32.unpack(self._take(SKIPPABLE_HEADER_SIZE, "skippable frame header")[4:])[0]
                present = self._skip(announced)
                if present < announced:
                    raise _truncated_skippable(announced, present, start)
                continue
            if magic != ZSTD_MAGIC:
                raise _bad_magic(magic, start)
            self._need(5, "zstd frame magic and header descriptor")
            size = _header_size(self._buf[self._pos + 4], start + 4)
            self._need(size, "zstd frame header", skip=4)
            self.header_bytes = self._take(4 + size, "zstd frame header")
            try:
                self.header = parse_frame_header(self.header_bytes)
            except FormatError as err:
                err.offset = None if err.offset is None else err.offset + start
                raise
            self.frame_start = start
            self._block_due = True
            return self.header
        return None

    def next_block(self) -> StreamBlock:
        """Return the current frame's next block (check ``last``)."""
        if not self._block_due:
            raise ValueError("no block due: call next_frame first, or end_frame after the last block")
        offset = self.offset
        head = self._take(BLOCK_HEADER_SIZE, "block header")
        value = head[0] | (head[1] << 8) | (head[2] << 16)
        payload = _block_payload_size(value, self.header, offset)
        raw = head + self._take(payload, "block contents") if payload else head
        self._block_due = not value & 1
        return StreamBlock(offset, bool(value & 1), (value >> 1) & 3, value >> 3, raw)

    def end_frame(self) -> bytes:
        """After the last block: read the frame's content checksum (``b""`` when it has none)."""
        if self.header is None or self._block_due:
            raise ValueError("the current frame still has blocks to read")
        checksum = self._take(CHECKSUM_SIZE, "content checksum") if self.header.has_checksum else b""
        self.header = None
        return checksum
