# -*- coding: utf-8 -*-
# Copyright: (c) 2026, bootc.composefs maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests for the pure-Python zstd codec: formats/zstd_python.py, zstd_frame.py, zstd_block.py, zstd_entropy.py.

The oracle is the ``zstd`` CLI: it makes the compressed inputs, accepts or rejects hand-built
frames, and reads what our encoder writes (XXH64: ``test_zstd_checksum.py``; the streaming
decoder: ``test_zstd_stream.py``). Inputs in ``FEATURES`` were picked (with a line tracer) because
libzstd 1.5 encodes them with the named rarely used feature.
"""

from __future__ import annotations

import os
import random
import struct
import subprocess

import pytest

from ansible_collections.bootc.composefs.plugins.module_utils.errors import FormatError
from ansible_collections.bootc.composefs.plugins.module_utils.formats import zstd_frame, zstd_python
from ansible_collections.bootc.composefs.tests.conftest import run_tool
from ansible_collections.bootc.composefs.tests.unit.plugins.module_utils.formats.test_zstd import INPUTS, sample

MAGIC = b"\x28\xb5\x2f\xfd"


def cli_compress(tool, data, *args):
    return run_tool([tool, "-q", "-c"] + list(args), input=data).stdout


def cli_decompress(tool, data):
    return run_tool([tool, "-d", "-c", "-q"], input=data).stdout


def oracle_accepts(tool, data):
    """Whether ``zstd -t`` accepts ``data`` (expected to fail for the malformed cases)."""
    proc = subprocess.run([tool, "-t", "-q"], input=data, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          env=dict(os.environ, LC_ALL="C"), check=False)
    return proc.returncode == 0


def cli_checksum(tool, data):
    """Low 32 bits of XXH64(data), as the CLI writes it at the end of a ``--check`` frame."""
    return struct.unpack("<I", cli_compress(tool, data, "--check")[-4:])[0]


# --- inputs that reach rarely used parts of the format -----------------------------------------------

def _same_literal(rng):
    vocabulary = [rng.randbytes(8) for _dummy in range(10000)]
    order = list(range(len(vocabulary)))
    rng.shuffle(order)
    return b"R".join(vocabulary) + b"R" + b"".join(b"Q" + vocabulary[i] for i in order)


def _tokens(rng, width, count, uses):
    tokens = [rng.randbytes(width) for _dummy in range(count)]
    return b"".join(tokens) + b"".join(rng.choice(tokens) for _dummy in range(uses))


def _deletions(rng):
    base = rng.randbytes(1000)
    parts = [base]
    for _dummy in range(200):
        cut = rng.randrange(1, 999)
        parts.append(base[:cut] + base[cut + 1:])
    return b"".join(parts)


def _raw_literals(rng):
    return b"".join(rng.randbytes(20000) + b"shared chunk of text " * 20 for _dummy in range(5))


FEATURES = {
    "rle-literals": (_same_literal, ["-19"]),
    "direct-huffman-weights": (lambda rng: bytes(rng.choices(range(16), weights=[40, 20, 10, 8, 6, 5, 4, 3, 2, 1, 1, 1, 1, 1, 1, 1],
                                                             k=200000)), ["-3"]),
    "literals-only-block": (lambda rng: bytes(rng.choices(range(64, 128), k=60000)), ["-1"]),
    "raw-literals-3-byte-header": (_raw_literals, ["-19"]),
    "over-32512-sequences": (lambda rng: _tokens(rng, 4, 4096, 100000), ["-19"]),
    "repeat-offset-minus-one": (_deletions, ["-19"]),
    "tiny-3-byte-matches": (lambda rng: _tokens(rng, 3, 2000, 120000), ["-19"]),
}


@pytest.mark.parametrize("feature", sorted(FEATURES))
def test_rare_features_from_the_cli(zstd_tool, feature):
    make, args = FEATURES[feature]
    data = make(random.Random(5))
    assert zstd_python.decompress(cli_compress(zstd_tool, data, *args)) == data


@pytest.mark.parametrize("name", INPUTS)
def test_streaming_compressor_output(name):
    """Frames without content size and with many small blocks, as a streaming writer makes them."""
    zstandard = pytest.importorskip("zstandard")
    data = sample(name)
    compressor = zstandard.ZstdCompressor(level=3).compressobj()
    pieces = []
    for start in range(0, len(data), 50000):
        pieces.append(compressor.compress(data[start:start + 50000]))
        pieces.append(compressor.flush(zstandard.COMPRESSOBJ_FLUSH_BLOCK))
    pieces.append(compressor.flush())
    assert zstd_python.decompress(b"".join(pieces)) == data


def test_long_window_frame(zstd_tool):
    frame = cli_compress(zstd_tool, sample("multiblock-400k"), "--long=27")
    assert zstd_frame.parse_frame_header(frame).window_size == 1 << 27
    assert zstd_python.decompress(frame) == sample("multiblock-400k")


# --- frame header variants ----------------------------------------------------------------------------

FCS_SIZES = {0: 0, 1: 2, 2: 4, 3: 8}
DID_SIZES = {0: 0, 1: 1, 2: 2, 3: 4}


def _variant_frame(tool, fcs_flag, single, did_flag, checksum):
    """A frame with one raw block, its header built field by field; returns (frame, payload)."""
    size = 200 if (fcs_flag == 0 and single) else 300
    payload = bytes((i * 7) & 255 for i in range(size))
    descriptor = (fcs_flag << 6) | (0x20 if single else 0) | (0x04 if checksum else 0) | did_flag
    header = MAGIC + bytes((descriptor,))
    if not single:
        header += b"\x00"                       # Window_Descriptor: 1 KiB
    header += bytes(DID_SIZES[did_flag])        # Dictionary_ID 0: no dictionary
    if fcs_flag == 0 and single:
        header += bytes((size,))
    elif fcs_flag == 1:
        header += struct.pack("<H", size - 256)
    elif fcs_flag:
        header += size.to_bytes(FCS_SIZES[fcs_flag], "little")
    frame = header + ((size << 3) | 1).to_bytes(3, "little") + payload
    if checksum:
        frame += struct.pack("<I", cli_checksum(tool, payload))
    return frame, payload


@pytest.mark.parametrize("checksum", [False, True], ids=["no-check", "check"])
@pytest.mark.parametrize("did_flag", [0, 1, 2, 3], ids=["did0", "did1", "did2", "did4"])
@pytest.mark.parametrize("single", [False, True], ids=["windowed", "single-segment"])
@pytest.mark.parametrize("fcs_flag", [0, 1, 2, 3], ids=["fcs0", "fcs2", "fcs4", "fcs8"])
def test_frame_header_variants(zstd_tool, fcs_flag, single, did_flag, checksum):
    frame, payload = _variant_frame(zstd_tool, fcs_flag, single, did_flag, checksum)
    assert cli_decompress(zstd_tool, frame) == payload
    header = zstd_frame.parse_frame_header(frame)
    assert header.window_size == (len(payload) if single else 1024)
    assert header.content_size == (None if (fcs_flag == 0 and not single) else len(payload))
    assert header.has_checksum == checksum
    assert zstd_python.decompress(frame) == payload


@pytest.mark.parametrize("did_flag", [1, 2, 3])
def test_dictionary_id_is_refused(did_flag):
    frame = MAGIC + bytes((0x20 | did_flag,)) + b"\x07" + bytes(DID_SIZES[did_flag] - 1) + b"\x05" + b"\x29\x00\x00hello"
    with pytest.raises(FormatError, match="dictionaries are not supported"):
        zstd_python.decompress(frame)


def test_reserved_descriptor_bit_is_refused(zstd_tool):
    frame = MAGIC + b"\x28\x05" + b"\x29\x00\x00hello"
    assert not oracle_accepts(zstd_tool, frame)
    with pytest.raises(FormatError, match="reserved"):
        zstd_python.decompress(frame)


# --- hand-built blocks: the oracle decides, we must agree -------------------------------------------
# Frame: single segment with a 1-byte content size, one compressed block. The block holds 3 raw
# literals "abc" and one sequence with RLE-mode tables (no state bits): literal length code, offset
# code and match length code are given, the bitstream holds only the extra bits and the marker.

def _one_sequence_frame(content_size, ll_code, of_code, ml_code, bitstream, modes=0x54, literals=b"\x18abc"):
    body = literals + b"\x01" + bytes((modes, ll_code, of_code, ml_code)) + bitstream
    return MAGIC + bytes((0x20, content_size)) + ((len(body) << 3) | 5).to_bytes(3, "little") + body


HAND_BUILT = {
    # offset code 2 + extra bits "10": value 6, offset 3; literal length 3, match length 3
    "valid-offset-3": (_one_sequence_frame(6, 3, 2, 0, b"\x06"), b"abcabc"),
    # offset 1 with match length 4 overlaps its own output (RLE-like copy)
    "valid-overlapping-match": (_one_sequence_frame(7, 3, 2, 1, b"\x04"), b"abccccc"),
    "offset-before-frame-start": (_one_sequence_frame(6, 3, 2, 0, b"\x07"), None),
    "more-literals-than-present": (_one_sequence_frame(8, 5, 2, 0, b"\x06"), None),
    "unused-bits-in-bitstream": (_one_sequence_frame(6, 3, 2, 0, b"\x0d"), None),
    "bitstream-without-marker": (_one_sequence_frame(6, 3, 2, 0, b"\x00"), None),
    "content-size-mismatch": (_one_sequence_frame(7, 3, 2, 0, b"\x06"), None),
    # libzstd ignores the reserved bits of Symbol_Compression_Modes; so do we
    "reserved-mode-bits-ignored": (_one_sequence_frame(6, 3, 2, 0, b"\x06", modes=0x55), b"abcabc"),
    "repeat-table-in-first-block": (_one_sequence_frame(6, 3, 2, 0, b"\x06", modes=0xD4), None),
    "treeless-literals-in-first-block": (_one_sequence_frame(6, 3, 2, 0, b"\x06", literals=b"\x33\xc0\x00abc"), None),
    "reserved-block-type": (MAGIC + b"\x20\x03" + b"\x1f\x00\x00abc", None),
    "rle-block-too-big": (MAGIC + b"\x00\x00" + ((2048 << 3) | 3).to_bytes(3, "little") + b"a", None),
    "empty-sequences-with-trailing-bytes": (MAGIC + b"\x20\x03" + b"\x35\x00\x00\x18abc\x00\x00", None),
}


@pytest.mark.parametrize("case", sorted(HAND_BUILT))
def test_hand_built_blocks_agree_with_the_oracle(zstd_tool, case):
    frame, expected = HAND_BUILT[case]
    if expected is None:
        assert not oracle_accepts(zstd_tool, frame), "the oracle accepts %s: the test case is wrong" % case
        with pytest.raises(FormatError):
            zstd_python.decompress(frame)
    else:
        assert cli_decompress(zstd_tool, frame) == expected
        assert zstd_python.decompress(frame) == expected


# --- encoder ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("checksum", [False, True], ids=["no-check", "check"])
@pytest.mark.parametrize("name", INPUTS)
def test_encoder_output_is_accepted_by_the_cli(zstd_tool, name, checksum):
    frame = zstd_python.compress(sample(name), checksum=checksum)
    run_tool([zstd_tool, "-t", "-q"], input=frame)
    assert cli_decompress(zstd_tool, frame) == sample(name)
    assert zstd_python.decompress(frame) == sample(name)


@pytest.mark.parametrize("size", [0, 1, 255, 256, 65791, 65792, 131072, 131073, 300000])
def test_encoder_content_size_boundaries(zstd_tool, size):
    data = bytes((i * 31 + i // 7) & 255 for i in range(size))
    frame = zstd_python.compress(data, checksum=True)
    assert cli_decompress(zstd_tool, frame) == data
    assert zstd_frame.parse_frame_header(frame).content_size == size


def test_encoder_empty_frame_matches_the_spec():
    # spec composefs-repo.md section 8.7: "an empty input still produces a frame (e.g. 28b52ffd2000010000)"
    assert zstd_python.compress(b"").hex() == "28b52ffd2000010000"


def test_encoder_uses_rle_blocks_for_runs(zstd_tool):
    data = bytes(1 << 20) + b"x" * 1000 + bytes(300)
    frame = zstd_python.compress(data)
    assert len(frame) < 100
    assert cli_decompress(zstd_tool, frame) == data


def _skewed(seed, symbols, size):
    rng = random.Random(seed)
    alphabet = rng.sample(range(256), symbols)
    weights = [rng.choice([1, 2, 5, 40, 300, rng.randint(1, 1000)]) for _dummy in alphabet]
    return bytes(rng.choices(alphabet, weights=weights, k=size))


# (distinct bytes, size): direct and FSE-compressed weights, one stream and four, every size format
SKEWED = [(2, 64), (3, 1000), (16, 1023), (40, 1024), (100, 5000), (128, 16383), (129, 16384), (200, 70000), (256, 131072)]


@pytest.mark.parametrize("symbols,size", SKEWED, ids=["%d-symbols-%d-bytes" % case for case in SKEWED])
def test_encoder_huffman_literals_are_accepted_by_the_cli(zstd_tool, symbols, size):
    for seed in range(5):
        data = _skewed(seed, symbols, size)
        frame = zstd_python.compress(data)
        assert cli_decompress(zstd_tool, frame) == data
        assert zstd_python.decompress(frame) == data


def test_encoder_shrinks_text():
    data = sample("text-100k")
    assert len(zstd_python.compress(data)) < 0.7 * len(data)


def test_encoder_levels_below_one_write_raw_blocks(zstd_tool):
    data = sample("text-100k")
    frame = zstd_python.compress(data, level=-5)
    assert len(frame) > len(data)
    assert cli_decompress(zstd_tool, frame) == data


def test_encoder_checksum_is_the_clis(zstd_tool):
    data = sample("text-100k")
    assert zstd_python.compress(data, checksum=True)[-4:] == cli_compress(zstd_tool, data, "--check")[-4:]
