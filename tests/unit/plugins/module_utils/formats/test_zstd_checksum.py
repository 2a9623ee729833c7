# -*- coding: utf-8 -*-
# Copyright: (c) 2026, bootc.composefs maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests for formats/zstd_checksum.py: XXH64 against published vectors, the ``zstd`` CLI's content
checksums and, when present, libxxhash; the incremental hasher against the same oracles."""

from __future__ import annotations

import ctypes
import ctypes.util
import random

import pytest

from ansible_collections.bootc.composefs.plugins.module_utils.formats import zstd_checksum, zstd_frame
from ansible_collections.bootc.composefs.tests.unit.plugins.module_utils.formats.test_zstd_python import cli_checksum

LENGTHS = list(range(0, 72)) + [127, 128, 129, 1000, 4096, 65537]
# reference values from the xxHash project (XXH64, seed 0)
PUBLISHED = {b"": 0xEF46DB3751D8E999, b"a": 0xD24EC4F1A98C6E5B, b"abc": 0x44BC2CF5AD770999}


def _libxxhash():
    name = ctypes.util.find_library("xxhash")
    if name is None:
        pytest.fail("libxxhash (Debian libxxhash0, the XXH64 oracle) is not installed; run tests/setup/bootstrap.sh")
    library = ctypes.CDLL(name)
    library.XXH64.restype = ctypes.c_uint64
    library.XXH64.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint64]
    return library


def _incremental(data, sizes, seed=0):
    hasher = zstd_checksum.Xxh64(seed)
    pos = 0
    index = 0
    while pos < len(data):
        step = sizes[index % len(sizes)]
        hasher.update(memoryview(data)[pos:pos + step])
        pos += step
        index += 1
    return hasher.intdigest()


def test_xxh64_published_vectors():
    for data, expected in PUBLISHED.items():
        assert zstd_checksum.xxh64(data) == expected
        assert _incremental(data, [1]) == expected


def test_zstd_frame_still_exports_xxh64():
    assert zstd_frame.xxh64 is zstd_checksum.xxh64


def test_xxh64_low_bits_match_the_cli_checksum(zstd_tool):
    rng = random.Random(9)
    for length in LENGTHS:
        data = rng.randbytes(length)
        assert zstd_checksum.xxh64(data) & 0xFFFFFFFF == cli_checksum(zstd_tool, data), length


def test_xxh64_matches_libxxhash():
    library = _libxxhash()
    rng = random.Random(10)
    for length in LENGTHS + [300001]:
        data = rng.randbytes(length)
        for seed in (0, 1, 0xFFFFFFFFFFFFFFFF):
            assert zstd_checksum.xxh64(data, seed) == library.XXH64(data, len(data), seed), (length, seed)


@pytest.mark.parametrize("sizes", [[1], [3, 29], [31, 33, 1], [32], [7, 1000, 5], [65536]], ids=str)
def test_incremental_hash_matches_libxxhash_for_any_piece_sizes(sizes):
    library = _libxxhash()
    rng = random.Random(11)
    for length in LENGTHS + [300001]:
        data = rng.randbytes(length)
        for seed in (0, 0xFFFFFFFFFFFFFFFF):
            assert _incremental(data, sizes, seed) == library.XXH64(data, len(data), seed), (length, seed)


def test_incremental_hash_matches_the_cli_checksum(zstd_tool):
    rng = random.Random(12)
    for length in LENGTHS:
        data = rng.randbytes(length)
        assert _incremental(data, [5, 40]) & 0xFFFFFFFF == cli_checksum(zstd_tool, data), length


def test_incremental_digest_can_be_taken_midway():
    data = random.Random(13).randbytes(1000)
    hasher = zstd_checksum.Xxh64()
    hasher.update(data[:100])
    library = _libxxhash()
    assert hasher.intdigest() == library.XXH64(data[:100], 100, 0)
    hasher.update(data[100:])
    assert hasher.intdigest() == library.XXH64(data, 1000, 0)
