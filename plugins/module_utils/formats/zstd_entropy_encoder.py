# -*- coding: utf-8 -*-
# Copyright: (c) 2026, bootc.composefs maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Zstandard entropy coding (RFC 8878 section 4), encoding side: Huffman-coded literals.

Layer: formats. Used by ``zstd_block.encode_literals_block`` (the pure-Python encoder writes
literals-only compressed blocks); the formats are described with their decoders in
``zstd_entropy.py``, the public API is ``zstd.py``.

What the encoder writes:

| part | how |
|---|---|
| code | Huffman over the block's byte counts, at most ``HUFFMAN_ENCODE_MAX_BITS`` (11, the RFC limit) bits long |
| too deep | the counts are halved (every used symbol kept at 1 or more) until the tree fits |
| tree description | FSE-compressed weights (Accuracy_Log 6, no "less than one" counts) or direct 4-bit weights, the smaller |
| FSE weights | two interleaved states, laid out the way the decoder reads them |
| codes | canonical, assigned as the decoder does: lowest weight first |
| stream | backward bit stream; ``str.translate`` turns the literals into its bit string in one C-level pass |
"""

from __future__ import annotations

import heapq
from typing import Dict, List, Optional, Sequence, Tuple

from ansible_collections.bootc.composefs.plugins.module_utils.formats.zstd_entropy import HUFFMAN_WEIGHTS_MAX_LOG, build_fse_table

__all__ = [
    "encode_fse_distribution",
    "huffman_code_lengths",
    "encode_huffman_description",
    "huffman_codes",
    "encode_huffman_stream",
]

# Longest code the encoder makes (RFC 8878 limit), and the largest symbol a direct-weights
# description can name (header byte 127 + number of listed weights <= 255).
HUFFMAN_ENCODE_MAX_BITS = 11
HUFFMAN_DIRECT_MAX_SYMBOL = 128


def _huffman_depths(weighted: List[Tuple[int, int]]) -> Dict[int, int]:
    """Code length per symbol of a Huffman code for (count, symbol) pairs."""
    heap = [(count, index, [symbol]) for index, (count, symbol) in enumerate(weighted)]
    heapq.heapify(heap)
    depths = {symbol: 0 for _count, symbol in weighted}
    order = len(heap)
    while len(heap) > 1:
        count1, _order1, symbols1 = heapq.heappop(heap)
        count2, _order2, symbols2 = heapq.heappop(heap)
        merged = symbols1 + symbols2
        for symbol in merged:
            depths[symbol] += 1
        heapq.heappush(heap, (count1 + count2, order, merged))
        order += 1
    return depths


def huffman_code_lengths(counts: Sequence[int], max_bits: int = HUFFMAN_ENCODE_MAX_BITS) -> List[int]:
    """Code length per symbol (0 = unused) of a complete Huffman code no longer than ``max_bits``.

    Needs at least two used symbols. Too-deep trees are flattened by halving the counts (keeping
    every used symbol at 1 or more) until they fit.
    """
    present = [(count, symbol) for symbol, count in enumerate(counts) if count]
    if len(present) < 2:
        raise ValueError("a Huffman code needs at least two symbols")
    shift = 0
    while True:
        depths = _huffman_depths([(max(count >> shift, 1), symbol) for count, symbol in present])
        if max(depths.values()) <= max_bits:
            break
        shift += 1
    lengths = [0] * len(counts)
    for symbol, depth in depths.items():
        lengths[symbol] = depth
    return lengths


def _normalize(counts: Dict[int, int], log: int) -> List[int]:
    """Counts scaled to sum to ``1 << log``, every used symbol at least 1 (no "less than one")."""
    size = 1 << log
    total = sum(counts.values())
    norm = [0] * (max(counts) + 1)
    for symbol, count in counts.items():
        norm[symbol] = max(1, count * size // total)
    largest = max(range(len(norm)), key=lambda symbol: norm[symbol])
    norm[largest] += size - sum(norm)
    while norm[largest] < 1:
        donor = max(range(len(norm)), key=lambda symbol: norm[symbol])
        norm[donor] -= 1
        norm[largest] += 1
    return norm


def encode_fse_distribution(norm: Sequence[int], log: int) -> Tuple[int, int]:
    """FSE table description of ``norm`` (no -1 counts) as forward bits: (value, bit count)."""
    value = log - 5
    bit = 4
    remaining = (1 << log) + 1
    threshold = 1 << log
    nbits = log + 1
    symbol = 0
    while remaining > 1:
        count = norm[symbol]
        code = count + 1
        limit = 2 * threshold - 1 - remaining
        if code < limit:
            value |= code << bit
            bit += nbits - 1
        else:
            if code >= threshold:
                code += limit
            value |= code << bit
            bit += nbits
        remaining -= count
        symbol += 1
        if count == 0:
            zeros = 0
            while symbol + zeros < len(norm) and norm[symbol + zeros] == 0:
                zeros += 1
            symbol += zeros
            while zeros >= 3:
                value |= 3 << bit
                bit += 2
                zeros -= 3
            value |= zeros << bit
            bit += 2
        while remaining < threshold:
            nbits -= 1
            threshold >>= 1
    return value, bit


def _fse_weights_description(weights: List[int]) -> Optional[bytes]:
    """FSE-compressed weights (header byte < 128), or None when they need 128 bytes or more.

    Two interleaved states, as the decoder reads them: even weights from state 1, odd ones from
    state 2; the decoder stops when an update overruns the stream and emits the other state's
    symbol, so the state of the second-to-last weight must read at least one bit.
    """
    log = HUFFMAN_WEIGHTS_MAX_LOG
    counts: Dict[int, int] = {}
    for weight in weights:
        counts[weight] = counts.get(weight, 0) + 1
    if len(counts) == 1:
        # A lone symbol would fill the table with zero-bit states: add an unused second symbol.
        counts[0 if weights[0] else 1] = 1
    norm = _normalize(counts, log)
    table = build_fse_table(list(norm), log)
    size = 1 << log
    previous: Dict[int, List[int]] = {}
    for state in range(size):
        targets = previous.setdefault(table.symbols[state], [0] * size)
        for target in range(table.bases[state], table.bases[state] + (1 << table.nbits[state])):
            targets[target] = state
    count = len(weights)
    states = [0] * count
    states[count - 1] = table.symbols.index(weights[-1])
    states[count - 2] = next(state for state in range(size) if table.symbols[state] == weights[-2] and table.nbits[state])
    for index in range(count - 3, -1, -1):
        states[index] = previous[weights[index]][states[index + 2]]
    pieces = [format(states[0], "0%db" % log), format(states[1], "0%db" % log)]
    for index in range(count - 2):
        width = table.nbits[states[index]]
        if width:
            pieces.append(format(states[index + 2] - table.bases[states[index]], "0%db" % width))
    bits = "".join(pieces)
    stream = int("1" + bits, 2).to_bytes((len(bits) + 8) // 8, "little")
    value, used = encode_fse_distribution(norm, log)
    description = value.to_bytes((used + 7) // 8, "little") + stream
    if len(description) >= 128:
        return None
    return bytes((len(description),)) + description


def encode_huffman_description(lengths: Sequence[int]) -> Optional[bytes]:
    """Smallest tree description (FSE-compressed or direct weights) of these code lengths, or None."""
    last = max(symbol for symbol, length in enumerate(lengths) if length)
    max_bits = max(lengths)
    weights = [max_bits + 1 - length if length else 0 for length in lengths[:last]]
    candidates = []
    if len(weights) >= 2:
        fse = _fse_weights_description(weights)
        if fse is not None:
            candidates.append(fse)
    if last <= HUFFMAN_DIRECT_MAX_SYMBOL:
        padded = weights + [0] * (len(weights) % 2)
        candidates.append(bytes((127 + last,)) + bytes((padded[i] << 4) | padded[i + 1] for i in range(0, len(padded), 2)))
    return min(candidates, key=len) if candidates else None


def huffman_codes(lengths: Sequence[int]) -> Dict[int, str]:
    """Canonical code of each used symbol as a bit string, as the decoder assigns them."""
    max_bits = max(lengths)
    codes = {}
    slot = 0
    for weight in range(1, max_bits + 1):
        length = max_bits + 1 - weight
        for symbol, symbol_length in enumerate(lengths):
            if symbol_length == length:
                codes[symbol] = format(slot >> (weight - 1), "0%db" % length)
                slot += 1 << (weight - 1)
    return codes


def encode_huffman_stream(text: str, table: Dict[int, str]) -> bytes:
    """One backward Huffman stream for ``text`` (literals decoded as latin-1), ``table`` from ``huffman_codes``."""
    bits = text.translate(table)
    return int("1" + bits, 2).to_bytes((len(bits) + 8) // 8, "little")
