# -*- coding: utf-8 -*-
# Copyright: (c) 2026, bootc.composefs maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Zstandard entropy coding (RFC 8878 section 4): FSE tables and Huffman literals, decoding side.

Layer: formats. Used by ``zstd_block.py`` (the pure-Python decoder); the public API is ``zstd.py``.

Bitstreams come in two directions:

| kind | used for | read order |
|---|---|---|
| forward | FSE table descriptions | little-endian, least significant bit first |
| backward | Huffman streams, FSE-coded weights, sequences | from the end, most significant bit first, after a ``1`` marker |

The marker is the highest set bit of the last byte; the zero bits above it are padding.

A backward stream seen as one little-endian integer has the marker as its top set bit, and the
bits after it, most significant first, are exactly the reading order. ``backward_bits`` therefore
returns ``bin(int)`` minus ``0b1``: a ``str`` of ``'0'``/``'1'`` that the decoders slice and look up
in dicts keyed by bit strings. This is the speed trick of the pure-Python decoder (whole-stream
conversion in C, no per-bit Python work; see bench/bench_zstd.py).

FSE table description (forward bits):

| field | bits | meaning |
|---|---|---|
| Accuracy_Log - 5 | 4 | table size is ``1 << Accuracy_Log`` |
| counts | variable | per symbol ``value - 1`` (-1 = "less than one"), ``value`` in ``nbBits - 1`` or ``nbBits`` bits |

``nbBits`` shrinks as the remaining probability drops. After a 0 count, 2-bit repeat flags add
that many zero counts (3 = add 3 and read another flag).

The description ends when the counts sum to the table size; it is padded to a whole byte. States
are spread with step ``size/2 + size/8 + 3``, "less than one" symbols taking the last cells.

Huffman tree description:

| header byte | what follows |
|---|---|
| < 128 | that many bytes: an FSE table (Accuracy_Log <= 6) then a backward stream of weights, decoded by two interleaved states |
| >= 128 | ``header - 127`` weights, 4 bits each, high nibble first |

The last symbol's weight is implied (the weights must sum to a power of two). A symbol of weight
``w > 0`` has a code of ``Max_Number_of_Bits + 1 - w`` bits; codes are canonical, lowest weight first.

The encoding side (Huffman-coded literals for the pure-Python encoder) is ``zstd_entropy_encoder.py``.
"""

from __future__ import annotations

from typing import Dict, List, NamedTuple, Tuple

from ansible_collections.bootc.composefs.plugins.module_utils.errors import FormatError

__all__ = [
    "FseTable",
    "HuffmanTable",
    "backward_bits",
    "parse_fse_distribution",
    "build_fse_table",
    "rle_fse_table",
    "parse_huffman_table",
    "decode_huffman_literals",
]

# --- limits ----------------------------------------------------------------------------------------
# An FSE description of up to 256 symbols at Accuracy_Log 9 fits in far fewer bytes than this; the
# reader looks no further (bounds the integer it builds).
FSE_DESCRIPTION_MAX_BYTES = 512
HUFFMAN_WEIGHTS_MAX_LOG = 6
HUFFMAN_MAX_WEIGHTS = 255
# RFC 8878 caps codes at 11 bits; libzstd's decoder accepts 12, and so do we.
HUFFMAN_MAX_BITS = 12
# Streams shorter than this many symbols per table entry are decoded one symbol per lookup: building
# the multi-symbol table would cost more than it saves.
MULTI_SYMBOL_MIN_RATIO = 4
# Zero bits appended to backward bit strings so slices past the end stay full length.
BIT_PADDING = "0" * 256

# Bit-string keys for every table width, built on first use.
_KEYS: Dict[int, List[str]] = {}


def _keys(width: int) -> List[str]:
    keys = _KEYS.get(width)
    if keys is None:
        keys = [format(i, "0%db" % width) for i in range(1 << width)] if width else [""]
        _KEYS[width] = keys
    return keys


def backward_bits(view, start: int, end: int, what: str) -> str:
    """Reading-order bits of the backward stream ``view[start:end]`` (marker and padding removed)."""
    if end <= start:
        raise FormatError("empty %s bitstream" % what, offset=start)
    if view[end - 1] == 0:
        raise FormatError("%s bitstream does not end with a marker bit (last byte is 0)" % what, offset=end - 1)
    return bin(int.from_bytes(view[start:end], "little"))[3:]


# --- FSE -------------------------------------------------------------------------------------------

class FseTable(NamedTuple):
    """FSE decoding table: per state, the symbol, the bits to read and the next state's base."""

    accuracy_log: int
    symbols: List[int]
    nbits: List[int]
    bases: List[int]


def parse_fse_distribution(view, pos: int, end: int, max_symbol: int, max_log: int, what: str) -> Tuple[List[int], int, int]:
    """Read an FSE table description: (normalized counts, accuracy log, position after it)."""
    avail = min(end - pos, FSE_DESCRIPTION_MAX_BYTES)
    if avail <= 0:
        raise FormatError("missing %s FSE table description" % what, offset=pos)
    value = int.from_bytes(view[pos:pos + avail], "little")
    total_bits = avail * 8
    log = (value & 15) + 5
    if log > max_log:
        raise FormatError("%s FSE accuracy log %d exceeds the maximum %d" % (what, log, max_log), offset=pos)
    bit = 4
    remaining = (1 << log) + 1
    threshold = 1 << log
    nbits = log + 1
    counts: List[int] = []
    while remaining > 1 and len(counts) <= max_symbol:
        limit = 2 * threshold - 1 - remaining
        low = (value >> bit) & (threshold - 1)
        if low < limit:
            code = low
            bit += nbits - 1
        else:
            code = (value >> bit) & (2 * threshold - 1)
            if code >= threshold:
                code -= limit
            bit += nbits
        count = code - 1
        remaining -= -count if count < 0 else count
        if remaining < 1:
            raise FormatError("%s FSE counts exceed the table size" % what, offset=pos + bit // 8)
        counts.append(count)
        if count == 0:
            while True:
                repeat = (value >> bit) & 3
                bit += 2
                counts.extend([0] * repeat)
                if repeat != 3 or bit > total_bits:
                    break
            if len(counts) > max_symbol + 1:
                raise FormatError("%s FSE description names symbols beyond %d" % (what, max_symbol), offset=pos + bit // 8)
        while remaining < threshold:
            nbits -= 1
            threshold >>= 1
        if bit > total_bits:
            break
    if bit > total_bits:
        raise FormatError("truncated %s FSE table description" % what, offset=pos)
    if remaining != 1:
        raise FormatError("%s FSE counts do not add up to the table size" % what, offset=pos)
    return counts, log, pos + (bit + 7) // 8


def build_fse_table(counts: List[int], log: int) -> FseTable:
    """Spread normalized counts into a decoding table of ``1 << log`` states."""
    size = 1 << log
    symbols = [0] * size
    high = size - 1
    next_state = [0] * len(counts)
    for symbol, count in enumerate(counts):
        if count == -1:
            symbols[high] = symbol
            high -= 1
            next_state[symbol] = 1
        else:
            next_state[symbol] = count
    step = (size >> 1) + (size >> 3) + 3
    mask = size - 1
    position = 0
    for symbol, count in enumerate(counts):
        for _dummy in range(count):
            symbols[position] = symbol
            position = (position + step) & mask
            while position > high:
                position = (position + step) & mask
    if position != 0:
        raise FormatError("FSE counts do not spread over the table")
    nbits = [0] * size
    bases = [0] * size
    for state in range(size):
        symbol = symbols[state]
        rank = next_state[symbol]
        next_state[symbol] = rank + 1
        width = log - rank.bit_length() + 1
        nbits[state] = width
        bases[state] = (rank << width) - size
    return FseTable(log, symbols, nbits, bases)


def rle_fse_table(symbol: int) -> FseTable:
    """A one-state table that always yields ``symbol`` and reads no bits."""
    return FseTable(0, [symbol], [0], [0])


# --- Huffman ---------------------------------------------------------------------------------------

class HuffmanTable(NamedTuple):
    """Literal decoding tables keyed by the next ``max_bits`` bits (as a bit string).

    ``single`` maps to (one symbol as bytes, bits used); ``multi`` (filled on first need) maps to
    (every symbol wholly inside the window, bits used).
    """

    max_bits: int
    single: Dict[str, Tuple[bytes, int]]
    multi: Dict[str, Tuple[bytes, int]]


def _fse_weights(view, pos: int, end: int) -> List[int]:
    counts, log, pos = parse_fse_distribution(view, pos, end, 255, HUFFMAN_WEIGHTS_MAX_LOG, "Huffman weights")
    table = build_fse_table(counts, log)
    symbols, nbits, bases = table.symbols, table.nbits, table.bases
    bits = backward_bits(view, pos, end, "Huffman weights")
    total = len(bits)
    bits += BIT_PADDING
    state1 = int(bits[0:log], 2)
    state2 = int(bits[log:2 * log], 2)
    at = 2 * log
    weights = []
    # Two interleaved states; stop once the stream is overrun, emitting the other state's symbol
    # (the reference decoder's rule).
    while True:
        weights.append(symbols[state1])
        width = nbits[state1]
        state1 = bases[state1] + int(bits[at:at + width] or "0", 2)
        at += width
        if at > total:
            weights.append(symbols[state2])
            break
        weights.append(symbols[state2])
        width = nbits[state2]
        state2 = bases[state2] + int(bits[at:at + width] or "0", 2)
        at += width
        if at > total:
            weights.append(symbols[state1])
            break
        if len(weights) > HUFFMAN_MAX_WEIGHTS:
            break
    if len(weights) > HUFFMAN_MAX_WEIGHTS:
        raise FormatError("Huffman weight stream decodes to more than 255 weights", offset=pos)
    return weights


def parse_huffman_table(view, pos: int, end: int) -> Tuple[HuffmanTable, int]:
    """Read a Huffman tree description at ``pos``: (table, position after it)."""
    if pos >= end:
        raise FormatError("missing Huffman tree description", offset=pos)
    header = view[pos]
    if header < 128:
        stop = pos + 1 + header
        if header == 0 or stop > end:
            raise FormatError("Huffman weights need %d bytes, %d available" % (header, end - pos - 1), offset=pos)
        weights = _fse_weights(view, pos + 1, stop)
    else:
        count = header - 127
        stop = pos + 1 + (count + 1) // 2
        if stop > end:
            raise FormatError("Huffman weights need %d bytes, %d available" % ((count + 1) // 2, end - pos - 1), offset=pos)
        weights = []
        for byte in bytes(view[pos + 1:stop]):
            weights.append(byte >> 4)
            weights.append(byte & 15)
        del weights[count:]
    return _huffman_from_weights(weights, pos), stop


def _huffman_from_weights(weights: List[int], offset: int) -> HuffmanTable:
    total = 0
    for weight in weights:
        if weight > HUFFMAN_MAX_BITS:
            raise FormatError("Huffman weight %d exceeds %d" % (weight, HUFFMAN_MAX_BITS), offset=offset)
        if weight:
            total += 1 << (weight - 1)
    if total == 0:
        raise FormatError("Huffman weights are all zero", offset=offset)
    max_bits = total.bit_length()
    if max_bits > HUFFMAN_MAX_BITS:
        raise FormatError("Huffman codes would need %d bits, more than %d" % (max_bits, HUFFMAN_MAX_BITS), offset=offset)
    rest = (1 << max_bits) - total
    if rest & (rest - 1):
        raise FormatError("Huffman weights do not complete to a power of two", offset=offset)
    weights = weights + [rest.bit_length()]
    entries: List[Tuple[bytes, int]] = []
    for weight in range(1, max_bits + 1):
        width = max_bits + 1 - weight
        span = 1 << (weight - 1)
        for symbol, symbol_weight in enumerate(weights):
            if symbol_weight == weight:
                entries.extend([(bytes((symbol,)), width)] * span)
    return HuffmanTable(max_bits, dict(zip(_keys(max_bits), entries)), {})


def _multi_symbol(table: HuffmanTable) -> Dict[str, Tuple[bytes, int]]:
    """Lookup returning every symbol whose code lies wholly inside the ``max_bits`` window."""
    if table.multi:
        return table.multi
    width = table.max_bits
    keys = _keys(width)
    single = [table.single[key] for key in keys]
    mask = (1 << width) - 1
    for index, key in enumerate(keys):
        chunk, used = single[index]
        following = (index << used) & mask
        nxt, nxt_used = single[following]
        while used + nxt_used <= width:
            chunk += nxt
            used += nxt_used
            following = (following << nxt_used) & mask
            nxt, nxt_used = single[following]
        table.multi[key] = (chunk, used)
    return table.multi


def _decode_stream(view, start: int, end: int, table: HuffmanTable, count: int) -> bytes:
    bits = backward_bits(view, start, end, "Huffman literals")
    total = len(bits)
    width = table.max_bits
    bits += BIT_PADDING
    pieces = []
    append = pieces.append
    at = 0
    if count >= MULTI_SYMBOL_MIN_RATIO << width:
        # Fast path (bench/bench_zstd.py): several symbols per lookup while the window holds real bits.
        multi = _multi_symbol(table)
        safe = total - width
        while at < safe:
            chunk, used = multi[bits[at:at + width]]
            append(chunk)
            at += used
    single = table.single
    while at < total:
        chunk, used = single[bits[at:at + width]]
        append(chunk)
        at += used
    out = b"".join(pieces)
    if at != total or len(out) != count:
        raise FormatError("Huffman stream decodes to %d literals using %d of %d bits, expected %d literals"
                          % (len(out), at, total, count), offset=start)
    return out


def decode_huffman_literals(view, start: int, end: int, table: HuffmanTable, regenerated: int, four_streams: bool) -> bytes:
    """Decode a 1- or 4-stream Huffman literals payload ``view[start:end]`` into ``regenerated`` bytes."""
    if not four_streams:
        return _decode_stream(view, start, end, table, regenerated)
    if end - start < 10:
        raise FormatError("4-stream Huffman literals need at least 10 bytes, have %d" % (end - start), offset=start)
    sizes = [view[start] | (view[start + 1] << 8), view[start + 2] | (view[start + 3] << 8), view[start + 4] | (view[start + 5] << 8)]
    segment = (regenerated + 3) // 4
    last = regenerated - 3 * segment
    if last < 0:
        raise FormatError("%d literals cannot be split into 4 streams" % regenerated, offset=start)
    pos = start + 6
    if pos + sum(sizes) > end:
        raise FormatError("Huffman jump table sizes exceed the literals section", offset=start)
    sizes.append(end - pos - sum(sizes))
    pieces = []
    for index, size in enumerate(sizes):
        pieces.append(_decode_stream(view, pos, pos + size, table, segment if index < 3 else last))
        pos += size
    return b"".join(pieces)
