# -*- coding: utf-8 -*-
# Copyright: (c) 2026, bootc.composefs maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure-Python zstd codec (RFC 8878): the fallback backend of ``zstd.py``, always available.

Layer: formats. Decoding covers the whole format except dictionaries: frames and skippable frames
(``zstd_frame.py``), raw / RLE / compressed blocks (``zstd_block.py``), Huffman and FSE entropy
coding in every mode (``zstd_entropy.py``), repeat offsets, and the XXH64 content checksum
(``zstd_checksum.py``), which is verified when present. A match never reaches into an earlier frame.

Two decoders share the block code:

| function | input | memory | a match may reach back |
|---|---|---|---|
| :func:`decompress_frames` | the whole stream in a buffer | each frame's whole output | to the start of its frame |
| :func:`inflate_stream` | a ``zstd_frame.StreamScanner`` | window + ``HISTORY_SLACK_BYTES`` + one block | a window (further if still held) |

``inflate_stream`` yields each block's output as soon as it is decoded; a single-segment frame's
window is its content size, so its history grows with its output.

Encoding writes valid but simple frames:

| part | what is written |
|---|---|
| frame header | Frame_Content_Size always; Single_Segment when the content fits in 128 KiB, else a 128 KiB window |
| blocks | runs of ``MIN_RUN_BYTES_HUFFMAN`` equal bytes (``MIN_RUN_BYTES`` at levels <= 0) become RLE blocks; the rest is cut into blocks of up to 128 KiB |
| block kind | RLE if it is one repeated byte, else compressed (Huffman-coded literals, no sequences) when smaller, else raw |
| empty input | one empty raw block (``28 b5 2f fd 20 00 01 00 00``) |
| checksum | XXH64 low 32 bits, only when asked for (composefs-rs writes none) |

Block layout and sizes are those of ``zstd_frame.py``, the literals-only compressed block is in
``zstd_block.py``. There is no match finding: text-like data shrinks by its byte statistics only.
Levels <= 0 skip the Huffman attempt (raw and RLE blocks only); higher levels behave alike.
"""

from __future__ import annotations

import re
from typing import Iterator, List, Optional

from ansible_collections.bootc.composefs.plugins.module_utils.errors import FormatError
from ansible_collections.bootc.composefs.plugins.module_utils.formats import zstd_block, zstd_checksum, zstd_frame

__all__ = ["MIN_RUN_BYTES", "decompress", "decompress_frames", "decode_frame", "inflate_stream", "compress"]

# --- streaming decoder ---------------------------------------------------------------------------------
# History beyond the window is dropped once it exceeds the window by this much: one move per MiB.
HISTORY_SLACK_BYTES = 1 << 20

# --- encoder ---------------------------------------------------------------------------------------
# Shorter runs are not worth an RLE block of their own: 4 bytes plus a split of the data around
# it, which for Huffman-coded data also means a second code table (tens of bytes).
MIN_RUN_BYTES = 32
MIN_RUN_BYTES_HUFFMAN = 512
# Matches whole runs of MIN_RUN_BYTES or more: a greedy match consumes its run, so the search does
# not restart inside it (a pattern demanding 512 repeats would rescan every shorter run per byte).
_RUN = re.compile(rb"(.)\1{%d,}" % (MIN_RUN_BYTES - 1), re.DOTALL)
# The window announced by multi-block frames: the blocks never refer back, so one block.
ENCODER_WINDOW_LOG = 17
# Shorter raw stretches are not worth a Huffman table.
MIN_HUFFMAN_BYTES = 64


def _too_large(limit: int, total_limit: Optional[int], offset: int) -> FormatError:
    return FormatError("zstd data inflates to more than max_size (%d bytes)" % (total_limit if total_limit is not None else limit),
                       offset=offset)


def decode_frame(view, span: zstd_frame.FrameSpan, limit: Optional[int] = None, total_limit: Optional[int] = None) -> bytearray:
    """Decode one zstd frame whose framing ``scan_frames`` has checked; ``limit`` bounds its output."""
    header = span.header
    pos = span.start + header.header_size
    block_max = header.block_max_size
    expected = header.content_size
    state = zstd_block.FrameState()
    out = bytearray()
    while True:
        value = view[pos] | (view[pos + 1] << 8) | (view[pos + 2] << 16)
        block_type = (value >> 1) & 3
        size = value >> 3
        block_start = pos
        pos += zstd_frame.BLOCK_HEADER_SIZE
        if block_type == zstd_frame.BLOCK_RAW:
            out += view[pos:pos + size]
            pos += size
        elif block_type == zstd_frame.BLOCK_RLE:
            out += bytes((view[pos],)) * size
            pos += 1
        else:
            zstd_block.decode_compressed_block(view, pos, pos + size, out, state, block_max)
            pos += size
        if limit is not None and len(out) > limit:
            raise _too_large(limit, total_limit, block_start)
        if expected is not None and len(out) > expected:
            raise FormatError("frame content exceeds its declared size %d" % expected, offset=block_start)
        if value & 1:
            break
    if expected is not None and len(out) != expected:
        raise FormatError("frame content is %d bytes, its header declares %d" % (len(out), expected), offset=span.start)
    if header.has_checksum:
        stored = zstd_frame.U32.unpack_from(view, pos)[0]
        actual = zstd_checksum.xxh64(out) & 0xFFFFFFFF
        if stored != actual:
            raise FormatError("content checksum mismatch: frame says %08x, content hashes to %08x" % (stored, actual), offset=pos)
    return out


def decompress_frames(view, spans: List[zstd_frame.FrameSpan], max_size: Optional[int] = None) -> bytes:
    """Decode the zstd frames of ``spans`` (from ``scan_frames(view)``), skipping skippable frames."""
    pieces = []
    total = 0
    for span in spans:
        if span.header is None:
            continue
        limit = None if max_size is None else max_size - total
        piece = decode_frame(view, span, limit, max_size)
        total += len(piece)
        pieces.append(piece)
    # One copy, bytearray pieces to bytes.
    return b"".join(pieces)


def decompress(data, max_size: Optional[int] = None) -> bytes:
    """Decode every frame of ``data``; ``FormatError`` on malformed input or output beyond ``max_size``."""
    view = memoryview(data).cast("B")
    return decompress_frames(view, zstd_frame.scan_frames(view), max_size)


def inflate_stream(scanner: zstd_frame.StreamScanner) -> Iterator[bytes]:
    """Yield the content of every zstd frame ``scanner`` reads, block by block (skippable frames skipped)."""
    while scanner.next_frame() is not None:
        yield from _inflate_frame(scanner)


def _inflate_frame(scanner: zstd_frame.StreamScanner) -> Iterator[bytes]:
    header = scanner.header
    expected = header.content_size
    checksum = zstd_checksum.Xxh64() if header.has_checksum else None
    state = zstd_block.FrameState()
    history = bytearray()  # the frame's latest output: at least a window of it, once produced
    produced = 0
    last = False
    while not last:
        block = scanner.next_block()
        last = block.last
        if len(history) > header.window_size + HISTORY_SLACK_BYTES:
            del history[:len(history) - header.window_size]  # cheap: bytearray drops a prefix in place
        start = len(history)
        if block.block_type == zstd_frame.BLOCK_RAW:
            history += memoryview(block.raw)[zstd_frame.BLOCK_HEADER_SIZE:]
        elif block.block_type == zstd_frame.BLOCK_RLE:
            history += block.raw[zstd_frame.BLOCK_HEADER_SIZE:] * block.size
        else:
            try:
                zstd_block.decode_compressed_block(memoryview(block.raw), zstd_frame.BLOCK_HEADER_SIZE, len(block.raw), history,
                                                   state, header.block_max_size)
            except FormatError as err:
                if err.offset is not None:
                    err.offset += block.offset
                raise
        piece = bytes(history[start:])
        produced += len(piece)
        if expected is not None and produced > expected:
            raise FormatError("frame content exceeds its declared size %d" % expected, offset=block.offset)
        if checksum is not None:
            checksum.update(piece)
        if piece:
            yield piece
    if expected is not None and produced != expected:
        raise FormatError("frame content is %d bytes, its header declares %d" % (produced, expected), offset=scanner.frame_start)
    stored = scanner.end_frame()
    if checksum is not None:
        actual = checksum.intdigest() & 0xFFFFFFFF
        stored_value = zstd_frame.U32.unpack(stored)[0]
        if stored_value != actual:
            raise FormatError("content checksum mismatch: frame says %08x, content hashes to %08x" % (stored_value, actual),
                              offset=scanner.offset - zstd_frame.CHECKSUM_SIZE)


def _blocks(data: bytes, huffman: bool):
    """Yield (block type, payload, regenerated size) covering ``data``: raw and RLE blocks."""
    pos = 0
    min_run = MIN_RUN_BYTES_HUFFMAN if huffman else MIN_RUN_BYTES
    for run in _RUN.finditer(data):
        start, stop = run.span()
        if stop - start < min_run:
            continue
        for chunk in range(pos, start, zstd_frame.MAX_BLOCK_SIZE):
            piece = data[chunk:min(start, chunk + zstd_frame.MAX_BLOCK_SIZE)]
            yield zstd_frame.BLOCK_RAW, piece, len(piece)
        byte = data[start:start + 1]
        for chunk in range(start, stop, zstd_frame.MAX_BLOCK_SIZE):
            yield zstd_frame.BLOCK_RLE, byte, min(stop, chunk + zstd_frame.MAX_BLOCK_SIZE) - chunk
        pos = stop
    for chunk in range(pos, len(data), zstd_frame.MAX_BLOCK_SIZE):
        piece = data[chunk:chunk + zstd_frame.MAX_BLOCK_SIZE]
        yield zstd_frame.BLOCK_RAW, piece, len(piece)


def compress(data, level: int = 3, checksum: bool = False) -> bytes:
    """Encode ``data`` as one zstd frame of raw, RLE and Huffman-literal blocks."""
    data = bytes(data)
    parts = [zstd_frame.encode_frame_header(len(data), checksum, ENCODER_WINDOW_LOG)]
    huffman = level > 0
    blocks = list(_blocks(data, huffman)) or [(zstd_frame.BLOCK_RAW, b"", 0)]
    last = len(blocks) - 1
    for index, (block_type, payload, size) in enumerate(blocks):
        if block_type == zstd_frame.BLOCK_RAW and size > 1 and not payload.strip(payload[:1]):
            block_type, payload = zstd_frame.BLOCK_RLE, payload[:1]
        elif huffman and block_type == zstd_frame.BLOCK_RAW and size >= MIN_HUFFMAN_BYTES:
            packed = zstd_block.encode_literals_block(payload)
            if packed is not None:
                block_type, payload, size = zstd_frame.BLOCK_COMPRESSED, packed, len(packed)
        parts.append(zstd_frame.encode_block_header(index == last, block_type, size))
        parts.append(payload)
    if checksum:
        parts.append(zstd_frame.U32.pack(zstd_checksum.xxh64(data) & 0xFFFFFFFF))
    return b"".join(parts)
