# -*- coding: utf-8 -*-
# Copyright: (c) 2026, bootc.composefs maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""XXH64, the hash behind the zstd content checksum (RFC 8878 section 3.1.1, ``Content_Checksum``).

Layer: formats. A zstd frame whose header has the checksum flag ends with 4 bytes: the low 32 bits
of XXH64 (seed 0) of the frame's decompressed content, little-endian. The pure-Python decoder
(``zstd_python.py``) checks it; its encoder writes it only when asked (composefs-rs writes none).

XXH64 (https://github.com/Cyan4973/xxHash/blob/dev/doc/xxhash_spec.md), all arithmetic modulo 2^64,
input read as little-endian u64 / u32 lanes:

| step | what |
|---|---|
| accumulate | 32 bytes or more: four accumulators (seed + P1 + P2, seed + P2, seed, seed - P1), each fed every fourth u64 lane |
| | of the 32-byte stripes: ``acc = rotl(acc + lane * P2, 31) * P1`` |
| converge | ``rotl(v1, 1) + rotl(v2, 7) + rotl(v3, 12) + rotl(v4, 18)``, then each ``v`` merged in; shorter inputs start from seed + P5 |
| length | the total input length is added |
| tail | the remaining < 32 bytes: u64 lanes, then one u32, then single bytes, each mixed in |
| avalanche | xor-shift 33, * P2, xor-shift 29, * P3, xor-shift 32 |

:func:`xxh64` hashes a whole buffer; :class:`Xxh64` the same value incrementally (streaming decoder).
"""

from __future__ import annotations

import struct

__all__ = ["xxh64", "Xxh64"]

XXH_P1 = 0x9E3779B185EBCA87
XXH_P2 = 0xC2B2AE3D27D4EB4F
XXH_P3 = 0x165667B19E3779F9
XXH_P4 = 0x85EBCA77C2B2AE63
XXH_P5 = 0x27D4EB2F165667C5
MASK64 = (1 << 64) - 1
STRIPE_SIZE = 32
# Lanes are unpacked this many 32-byte stripes at a time, bounding the temporary tuple.
XXH_STRIPES_PER_CHUNK = 8192
U32 = struct.Struct("<I")
U64 = struct.Struct("<Q")


def _initial_accumulators(seed: int) -> tuple:
    return (seed + XXH_P1 + XXH_P2) & MASK64, (seed + XXH_P2) & MASK64, seed & MASK64, (seed - XXH_P1) & MASK64


def _accumulate(accumulators: tuple, data, pos: int, stripes: int) -> tuple:
    """Run the four accumulators over ``stripes`` 32-byte stripes of ``data`` from ``pos``."""
    v1, v2, v3, v4 = accumulators
    # Fast path (bench/bench_zstd.py): unpack many lanes at once and run each accumulator over
    # its own slice of lanes; rotate-then-multiply needs only one final mask.
    p1, p2, mask = XXH_P1, XXH_P2, MASK64
    while stripes:
        count = min(stripes, XXH_STRIPES_PER_CHUNK)
        lanes = struct.unpack_from("<%dQ" % (4 * count), data, pos)
        for lane in lanes[0::4]:
            v1 = (v1 + lane * p2) & mask
            v1 = ((v1 << 31 | v1 >> 33) * p1) & mask
        for lane in lanes[1::4]:
            v2 = (v2 + lane * p2) & mask
            v2 = ((v2 << 31 | v2 >> 33) * p1) & mask
        for lane in lanes[2::4]:
            v3 = (v3 + lane * p2) & mask
            v3 = ((v3 << 31 | v3 >> 33) * p1) & mask
        for lane in lanes[3::4]:
            v4 = (v4 + lane * p2) & mask
            v4 = ((v4 << 31 | v4 >> 33) * p1) & mask
        pos += STRIPE_SIZE * count
        stripes -= count
    return v1, v2, v3, v4


def _merge(acc: int, value: int) -> int:
    value = (value * XXH_P2) & MASK64
    value = (((value << 31) | (value >> 33)) * XXH_P1) & MASK64
    acc ^= value
    return (acc * XXH_P1 + XXH_P4) & MASK64


def _finish(accumulators, seed: int, length: int, tail) -> int:
    """Converge (``accumulators`` is None below 32 bytes of input), add the length, mix the tail, avalanche."""
    if accumulators is not None:
        v1, v2, v3, v4 = accumulators
        acc = ((v1 << 1 | v1 >> 63) + (v2 << 7 | v2 >> 57) + (v3 << 12 | v3 >> 52) + (v4 << 18 | v4 >> 46)) & MASK64
        for value in accumulators:
            acc = _merge(acc, value)
    else:
        acc = (seed + XXH_P5) & MASK64
    acc = (acc + length) & MASK64
    pos = 0
    end = len(tail)
    while pos + 8 <= end:
        lane = (U64.unpack_from(tail, pos)[0] * XXH_P2) & MASK64
        lane = (((lane << 31) | (lane >> 33)) * XXH_P1) & MASK64
        acc ^= lane
        acc = (((acc << 27) | (acc >> 37)) * XXH_P1 + XXH_P4) & MASK64
        pos += 8
    if pos + 4 <= end:
        acc ^= (U32.unpack_from(tail, pos)[0] * XXH_P1) & MASK64
        acc = (((acc << 23) | (acc >> 41)) * XXH_P2 + XXH_P3) & MASK64
        pos += 4
    while pos < end:
        acc ^= (tail[pos] * XXH_P5) & MASK64
        acc = (((acc << 11) | (acc >> 53)) * XXH_P1) & MASK64
        pos += 1
    acc ^= acc >> 33
    acc = (acc * XXH_P2) & MASK64
    acc ^= acc >> 29
    acc = (acc * XXH_P3) & MASK64
    acc ^= acc >> 32
    return acc


def xxh64(data, seed: int = 0) -> int:
    """XXH64 of ``data`` (the hash behind the zstd content checksum)."""
    data = memoryview(data).cast("B")
    length = len(data)
    stripes = length // STRIPE_SIZE
    accumulators = _accumulate(_initial_accumulators(seed), data, 0, stripes) if stripes else None
    return _finish(accumulators, seed, length, data[STRIPE_SIZE * stripes:])


class Xxh64:
    """XXH64 fed piece by piece: ``update`` any sizes, ``intdigest`` equals :func:`xxh64` of the concatenation."""

    def __init__(self, seed: int = 0) -> None:
        self._seed = seed
        self._accumulators = _initial_accumulators(seed)
        self._length = 0
        self._pending = b""  # the start of an incomplete stripe (< 32 bytes)

    def update(self, data) -> None:
        """Hash ``data`` after everything given so far."""
        data = memoryview(data).cast("B")
        self._length += len(data)
        if self._pending:
            need = STRIPE_SIZE - len(self._pending)
            if len(data) < need:
                self._pending += bytes(data)
                return
            stripe = self._pending + bytes(data[:need])
            self._accumulators = _accumulate(self._accumulators, stripe, 0, 1)
            data = data[need:]
        stripes = len(data) // STRIPE_SIZE
        if stripes:
            self._accumulators = _accumulate(self._accumulators, data, 0, stripes)
        self._pending = bytes(data[STRIPE_SIZE * stripes:])

    def intdigest(self) -> int:
        """The XXH64 of everything hashed so far (hashing may continue)."""
        accumulators = self._accumulators if self._length >= STRIPE_SIZE else None
        return _finish(accumulators, self._seed, self._length, self._pending)
