# -*- coding: utf-8 -*-
# Copyright: (c) 2026, bootc.composefs maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Zstandard compressed blocks (RFC 8878 section 3.1.1.3): literals, sequences, execution.

Layer: formats. Pure-Python decoding of one compressed block into the frame's output; frames are
``zstd_frame.py``, entropy tables ``zstd_entropy.py`` (encoding: ``zstd_entropy_encoder.py``), the
public API ``zstd.py``. All integers are little-endian. A compressed block is a literals section
followed by a sequences section.

Literals section header (``type`` = bits 0-1 of the first byte, ``format`` = bits 2-3):

| type | format | header bytes | Regenerated_Size | Compressed_Size | streams |
|---|---|---|---|---|---|
| 0 raw, 1 RLE | 0 or 2 | 1 | bits 3-7 | - | - |
| 0 raw, 1 RLE | 1 | 2 | bits 4-15 | - | - |
| 0 raw, 1 RLE | 3 | 3 | bits 4-23 | - | - |
| 2 compressed, 3 treeless | 0 / 1 | 3 | bits 4-13 | bits 14-23 | 1 / 4 |
| 2 compressed, 3 treeless | 2 | 4 | bits 4-17 | bits 18-31 | 4 |
| 2 compressed, 3 treeless | 3 | 5 | bits 4-21 | bits 22-39 | 4 |

Raw literals follow as is, RLE literals are one byte. Compressed literals start with a Huffman tree
description (treeless ones reuse the frame's previous table); four streams start with a 6-byte jump
table (three u16 stream sizes, the fourth is the rest) and regenerate ``(size + 3) // 4`` bytes each,
the last one the remainder.

Sequences section:

| field | size | meaning |
|---|---|---|
| Number_of_Sequences | 1-3 | ``b0`` < 128: b0; < 255: ``((b0 - 128) << 8) + b1``; 255: ``b1 + (b2 << 8) + 0x7F00``; 0 ends the block |
| Symbol_Compression_Modes | 1 | bits 7-6 literal lengths, 5-4 offsets, 3-2 match lengths, 1-0 reserved (ignored, as libzstd does) |
| tables | variable | per mode, in that order: 0 predefined (none), 1 RLE (1 symbol byte), 2 FSE description, 3 repeat previous |
| bitstream | to block end | backward: initial states (LL, OF, ML), then per sequence (see below) |

Per sequence the bitstream gives the offset, match length and literal length extra bits, then the
state updates for literal lengths, match lengths and offsets (none after the last sequence).

A sequence copies ``literal_length`` literals then ``match_length`` bytes from ``offset`` back.
Offset values 1-3 name the repeat offsets (shifted by one when ``literal_length`` is 0; the 4th
choice is ``repeat1 - 1``); larger values are ``value - 3``. Repeat offsets start at 1, 4, 8 in each
frame and, like the tables, carry over from block to block. Leftover literals end the block.

The encoder side writes one kind of compressed block: Huffman-coded literals (direct weights, one
stream up to 1 KiB, four above) and an empty sequences section; no matches.
"""

from __future__ import annotations

from collections import Counter
from typing import List, Optional, Tuple

from ansible_collections.bootc.composefs.plugins.module_utils.errors import FormatError
from ansible_collections.bootc.composefs.plugins.module_utils.formats import zstd_entropy, zstd_entropy_encoder

__all__ = ["FrameState", "decode_compressed_block", "encode_literals_block"]

# --- literals section --------------------------------------------------------------------------------
LITERALS_RAW = 0
LITERALS_RLE = 1
LITERALS_COMPRESSED = 2
LITERALS_TREELESS = 3
# Encoder: one Huffman stream below this many literals (fits the 10-bit size fields), four above.
SINGLE_STREAM_MAX_LITERALS = 1023
# Literals section size fields by Size_Format for compressed literals: (header bytes, bits per size).
COMPRESSED_SIZE_FORMATS = {0: (3, 10), 1: (3, 10), 2: (4, 14), 3: (5, 18)}

# --- sequence codes: (baseline, extra bits) per code --------------------------------------------------
LITERAL_LENGTH_BASELINES = tuple(range(16)) + (16, 18, 20, 22, 24, 28, 32, 40, 48, 64, 128, 256, 512, 1024, 2048,
                                               4096, 8192, 16384, 32768, 65536)
LITERAL_LENGTH_EXTRA_BITS = (0,) * 16 + (1, 1, 1, 1, 2, 2, 3, 3, 4, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16)
MATCH_LENGTH_BASELINES = tuple(range(3, 35)) + (35, 37, 39, 41, 43, 47, 51, 59, 67, 83, 99, 131, 259, 515, 1027, 2051,
                                                4099, 8195, 16387, 32771, 65539)
MATCH_LENGTH_EXTRA_BITS = (0,) * 32 + (1, 1, 1, 1, 2, 2, 3, 3, 4, 4, 5, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16)
# Offset code N means value (1 << N) + N extra bits; libzstd decodes codes up to 31.
MAX_OFFSET_CODE = 31

# --- predefined distributions (Accuracy_Log 6, 6, 5) -----------------------------------------------
PREDEFINED_LITERAL_LENGTHS = (4, 3, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 2, 3, 2, 1, 1, 1, 1, 1,
                              -1, -1, -1, -1)
PREDEFINED_MATCH_LENGTHS = (1, 4, 3, 2, 2, 2, 2, 2, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
                            1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, -1, -1, -1, -1, -1, -1, -1)
PREDEFINED_OFFSETS = (1, 1, 1, 1, 1, 1, 2, 2, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, -1, -1, -1, -1, -1)

# Per table kind, in Symbol_Compression_Modes order: name, largest symbol, largest accuracy log,
# predefined distribution and its accuracy log.
KIND_LITERAL_LENGTHS = 0
KIND_OFFSETS = 1
KIND_MATCH_LENGTHS = 2
KINDS = (
    ("literal lengths", len(LITERAL_LENGTH_BASELINES) - 1, 9, PREDEFINED_LITERAL_LENGTHS, 6),
    ("offsets", MAX_OFFSET_CODE, 8, PREDEFINED_OFFSETS, 5),
    ("match lengths", len(MATCH_LENGTH_BASELINES) - 1, 9, PREDEFINED_MATCH_LENGTHS, 6),
)
MODE_PREDEFINED = 0
MODE_RLE = 1
MODE_FSE = 2
MODE_REPEAT = 3
INITIAL_REPEAT_OFFSETS = (1, 4, 8)

_PREDEFINED: List[Optional[list]] = [None, None, None]


class FrameState:
    """What a frame's blocks hand on to the next: Huffman table, sequence tables, repeat offsets."""

    __slots__ = ("huffman", "tables", "repeats")

    def __init__(self) -> None:
        self.huffman: Optional[zstd_entropy.HuffmanTable] = None
        self.tables: List[Optional[list]] = [None, None, None]
        self.repeats = list(INITIAL_REPEAT_OFFSETS)


def _sequence_table(kind: int, fse: zstd_entropy.FseTable) -> list:
    """Per state, everything one sequence step needs, flattened for the hot loop.

    Lengths: (baseline, extra bits, extra mask, state bits, state mask, next base).
    Offsets: (offset code, state bits, state mask, next base).
    """
    entries = []
    for symbol, width, base in zip(fse.symbols, fse.nbits, fse.bases):
        if kind == KIND_OFFSETS:
            entries.append((symbol, width, (1 << width) - 1, base))
        else:
            if kind == KIND_LITERAL_LENGTHS:
                baseline, extra = LITERAL_LENGTH_BASELINES[symbol], LITERAL_LENGTH_EXTRA_BITS[symbol]
            else:
                baseline, extra = MATCH_LENGTH_BASELINES[symbol], MATCH_LENGTH_EXTRA_BITS[symbol]
            entries.append((baseline, extra, (1 << extra) - 1, width, (1 << width) - 1, base))
    return entries


def _predefined(kind: int) -> list:
    table = _PREDEFINED[kind]
    if table is None:
        distribution, log = KINDS[kind][3], KINDS[kind][4]
        table = _sequence_table(kind, zstd_entropy.build_fse_table(list(distribution), log))
        _PREDEFINED[kind] = table
    return table


def _parse_literals(view, pos: int, end: int, state: FrameState, block_max: int) -> Tuple[bytes, int]:
    first = view[pos]
    literals_type = first & 3
    size_format = (first >> 2) & 3
    if literals_type in (LITERALS_RAW, LITERALS_RLE):
        header_size = (1, 2, 1, 3)[size_format]
        if pos + header_size > end:
            raise FormatError("truncated literals section header", offset=pos)
        if header_size == 1:
            size = first >> 3
        elif header_size == 2:
            size = (first >> 4) | (view[pos + 1] << 4)
        else:
            size = (first >> 4) | (view[pos + 1] << 4) | (view[pos + 2] << 12)
        if size > block_max:
            raise FormatError("literals section regenerates %d bytes, block maximum is %d" % (size, block_max), offset=pos)
        start = pos + header_size
        if literals_type == LITERALS_RAW:
            if start + size > end:
                raise FormatError("raw literals run past the block end", offset=pos)
            return bytes(view[start:start + size]), start + size
        if start >= end:
            raise FormatError("RLE literals byte missing", offset=pos)
        return bytes((view[start],)) * size, start + 1
    header_size = (3, 3, 4, 5)[size_format]
    if pos + header_size > end:
        raise FormatError("truncated literals section header", offset=pos)
    value = int.from_bytes(view[pos:pos + header_size], "little")
    field_bits = (10, 10, 14, 18)[size_format]
    field_mask = (1 << field_bits) - 1
    regenerated = (value >> 4) & field_mask
    compressed = (value >> (4 + field_bits)) & field_mask
    if regenerated > block_max:
        raise FormatError("literals section regenerates %d bytes, block maximum is %d" % (regenerated, block_max), offset=pos)
    start = pos + header_size
    stop = start + compressed
    if stop > end:
        raise FormatError("compressed literals (%d bytes) run past the block end" % compressed, offset=pos)
    if literals_type == LITERALS_COMPRESSED:
        table, start = zstd_entropy.parse_huffman_table(view, start, stop)
        state.huffman = table
    elif state.huffman is None:
        raise FormatError("treeless literals but no earlier Huffman table in this frame", offset=pos)
    literals = zstd_entropy.decode_huffman_literals(view, start, stop, state.huffman, regenerated, size_format != 0)
    return literals, stop


def _parse_sequences_header(view, pos: int, end: int, state: FrameState) -> Tuple[int, int]:
    """Read Number_of_Sequences and the tables; returns (count, position of the bitstream)."""
    if pos >= end:
        raise FormatError("compressed block lacks a sequences section", offset=pos)
    first = view[pos]
    if first < 128:
        count, pos = first, pos + 1
    elif first < 255:
        if pos + 2 > end:
            raise FormatError("truncated sequence count", offset=pos)
        count, pos = ((first - 128) << 8) + view[pos + 1], pos + 2
    else:
        if pos + 3 > end:
            raise FormatError("truncated sequence count", offset=pos)
        count, pos = view[pos + 1] + (view[pos + 2] << 8) + 0x7F00, pos + 3
    if count == 0:
        if pos != end:
            raise FormatError("%d bytes after an empty sequences section" % (end - pos), offset=pos)
        return 0, pos
    if pos >= end:
        raise FormatError("missing symbol compression modes", offset=pos)
    # Bits 1-0 are reserved; libzstd ignores them, and so do we, so that every backend agrees.
    modes = view[pos]
    pos += 1
    for kind, shift in ((KIND_LITERAL_LENGTHS, 6), (KIND_OFFSETS, 4), (KIND_MATCH_LENGTHS, 2)):
        mode = (modes >> shift) & 3
        name, max_symbol, max_log = KINDS[kind][0:3]
        if mode == MODE_PREDEFINED:
            table = _predefined(kind)
        elif mode == MODE_RLE:
            if pos >= end:
                raise FormatError("missing RLE symbol for %s" % name, offset=pos)
            if view[pos] > max_symbol:
                raise FormatError("RLE %s code %d exceeds %d" % (name, view[pos], max_symbol), offset=pos)
            table = _sequence_table(kind, zstd_entropy.rle_fse_table(view[pos]))
            pos += 1
        elif mode == MODE_FSE:
            counts, log, pos = zstd_entropy.parse_fse_distribution(view, pos, end, max_symbol, max_log, name)
            table = _sequence_table(kind, zstd_entropy.build_fse_table(counts, log))
        else:
            table = state.tables[kind]
            if table is None:
                raise FormatError("%s table repeated but no earlier table in this frame" % name, offset=pos)
        state.tables[kind] = table
    return count, pos


def decode_compressed_block(view, start: int, end: int, out: bytearray, state: FrameState, block_max: int) -> None:
    """Decode the compressed block ``view[start:end]``, appending to ``out`` (this frame's output)."""
    if start >= end:
        raise FormatError("empty compressed block", offset=start)
    literals, pos = _parse_literals(view, start, end, state, block_max)
    count, pos = _parse_sequences_header(view, pos, end, state)
    if count == 0:
        out += literals
        return
    _execute_sequences(view, pos, end, count, literals, out, state, len(out) + block_max)


def _execute_sequences(view, pos, end, count, literals, out, state, out_limit):  # pylint: disable=too-many-locals,too-many-statements
    ll_table, of_table, ml_table = state.tables
    bits = zstd_entropy.backward_bits(view, pos, end, "sequences")
    total = len(bits)
    bits += zstd_entropy.BIT_PADDING
    ll_log = len(ll_table).bit_length() - 1
    of_log = len(of_table).bit_length() - 1
    ml_log = len(ml_table).bit_length() - 1
    at = ll_log + of_log + ml_log
    states = int(bits[0:at] or "0", 2)
    ml_state = states & ((1 << ml_log) - 1)
    of_state = (states >> ml_log) & ((1 << of_log) - 1)
    ll_state = states >> (ml_log + of_log)
    rep1, rep2, rep3 = state.repeats
    lit_pos = 0
    lit_count = len(literals)
    out_len = len(out)
    state_bits = 0
    # Hot loop, shaped for speed (bench/bench_zstd.py): one int() parse per sequence for all its
    # bits, fields peeled off the low end with precomputed masks, matches copied as whole slices,
    # the output length tracked in a local. Reading past the stream end yields zero bits (padding,
    # then empty slices); the check after the loop rejects it, and out_limit bounds the work.
    for _dummy in range(count):
        ll_base, ll_extra, ll_mask, ll_bits, ll_bits_mask, ll_next = ll_table[ll_state]
        ml_base, ml_extra, ml_mask, ml_bits, ml_bits_mask, ml_next = ml_table[ml_state]
        of_code, of_bits, of_bits_mask, of_next = of_table[of_state]
        state_bits = ll_bits + ml_bits + of_bits
        stop = at + of_code + ml_extra + ll_extra + state_bits
        word = int(bits[at:stop] or "0", 2)
        at = stop
        of_state = of_next + (word & of_bits_mask)
        word >>= of_bits
        ml_state = ml_next + (word & ml_bits_mask)
        word >>= ml_bits
        ll_state = ll_next + (word & ll_bits_mask)
        word >>= ll_bits
        lit_len = ll_base + (word & ll_mask)
        word >>= ll_extra
        match_len = ml_base + (word & ml_mask)
        if of_code > 1:
            offset = (1 << of_code) + (word >> ml_extra) - 3
            rep3 = rep2
            rep2 = rep1
            rep1 = offset
        else:
            # 1-3 name repeat offsets 1-3, shifted by one when no literals precede (4: repeat1 - 1).
            choice = (1 << of_code) + (word >> ml_extra) + (0 if lit_len else 1)
            if choice == 1:
                offset = rep1
            elif choice == 2:
                rep1, rep2 = rep2, rep1
                offset = rep1
            elif choice == 3:
                offset = rep3
                rep3 = rep2
                rep2 = rep1
                rep1 = offset
            else:
                offset = rep1 - 1
                if offset == 0:
                    raise FormatError("repeat offset 1 minus one is zero", offset=pos)
                rep3 = rep2
                rep2 = rep1
                rep1 = offset
        if lit_len:
            lit_end = lit_pos + lit_len
            if lit_end > lit_count:
                raise FormatError("sequence needs %d literals, only %d left" % (lit_len, lit_count - lit_pos), offset=pos)
            out += literals[lit_pos:lit_end]
            lit_pos = lit_end
            out_len += lit_len
        source = out_len - offset
        if source < 0:
            raise FormatError("match offset %d reaches before the start of the frame (%d bytes decoded)"
                              % (offset, out_len), offset=pos)
        if match_len <= offset:
            out += out[source:source + match_len]
        else:
            out += (out[source:] * (match_len // offset + 1))[:match_len]
        out_len += match_len
        if out_len > out_limit:
            raise FormatError("compressed block regenerates more than the block maximum", offset=pos)
    if at - state_bits != total:
        raise FormatError("sequences bitstream: %d bits used, %d present" % (at - state_bits, total), offset=pos)
    state.repeats = [rep1, rep2, rep3]
    out += literals[lit_pos:]
    if len(out) > out_limit:
        raise FormatError("compressed block regenerates more than the block maximum", offset=pos)


def encode_literals_block(data: bytes) -> Optional[bytes]:
    """Compressed-block payload holding ``data`` as Huffman-coded literals and no sequences.

    None when Huffman coding does not apply (fewer than two distinct bytes, a byte above 128) or
    does not make the block smaller than ``data``.
    """
    counts = Counter(data)
    if len(counts) < 2:
        return None
    lengths = zstd_entropy_encoder.huffman_code_lengths([counts.get(symbol, 0) for symbol in range(256)])
    description = zstd_entropy_encoder.encode_huffman_description(lengths)
    if description is None:
        return None
    table = zstd_entropy_encoder.huffman_codes(lengths)
    text = data.decode("latin-1")
    size = len(data)
    if size <= SINGLE_STREAM_MAX_LITERALS:
        size_format = 0
        payload = description + zstd_entropy_encoder.encode_huffman_stream(text, table)
    else:
        segment = (size + 3) // 4
        streams = [zstd_entropy_encoder.encode_huffman_stream(text[i:i + segment], table) for i in range(0, 4 * segment, segment)]
        if max(len(stream) for stream in streams[:3]) > 0xFFFF:
            return None
        jump = b"".join(len(stream).to_bytes(2, "little") for stream in streams[:3])
        payload = description + jump + b"".join(streams)
        largest = max(size, len(payload))
        size_format = 1 if largest < (1 << 10) else 2 if largest < (1 << 14) else 3
    header_size, field_bits = COMPRESSED_SIZE_FORMATS[size_format]
    if len(payload) >= (1 << field_bits):
        return None
    header = LITERALS_COMPRESSED | (size_format << 2) | (size << 4) | (len(payload) << (4 + field_bits))
    block = header.to_bytes(header_size, "little") + payload + b"\x00"
    return block if len(block) < size else None
