# -*- coding: utf-8 -*-
# Copyright: (c) 2026, bootc.composefs maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests for formats/splitstream.py.

Expected bytes come from ``composefs-repo.md`` section 8 (header/info layout, the 8.8 worked
example and its old-layout header, 10.1 content types); zstd sections are checked and built with
the ``zstd`` command-line tool, object names with ``fsverity digest``.
"""

from __future__ import annotations

import random
import struct

import pytest

from ansible_collections.bootc.composefs.plugins.module_utils.errors import FormatError
from ansible_collections.bootc.composefs.plugins.module_utils.formats import fsverity, splitstream as ss
from ansible_collections.bootc.composefs.tests.unit.builders import repo_builder as rb

# --- spec section 8.8 ----------------------------------------------------------------------------
CONFIG_JSON = (b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:'
               + b"1" * 64 + b'"]}}')
CONFIG_OBJECT_ID = "816fc8dddcf436a286ad9d6969e3ba387db2c7d3a3aa4726e83c7e16fe4ff6f5"
LAYER_REF = b"\xaa" * 32
EROFS_REF = b"\xbb" * 32
DIFF_ID = "sha256:" + "1" * 64
HEADER_HEX = "53706c697453747265616d 00 0000 01 0c 2000000000000000 7000000000000000"
OLD_HEADER_HEX = "2000000000000000 7000000000000000 0000 53706c697453747265616d 00 01 0c"
NAMED_RECORDS = b"1:composefs.image.v1\0" + b"0:" + DIFF_ID.encode() + b"\0"
ONE_EXTERNAL_CHUNK = bytes.fromhex("0000000000000000")


def spec_bytes(text):
    return bytes.fromhex(text.replace(" ", ""))


def example_writer():
    writer = ss.SplitStreamWriter(fsverity.SHA256, ss.CONTENT_TYPE_OCI_CONFIG)
    writer.add_named_ref(DIFF_ID, LAYER_REF)
    writer.add_named_ref("composefs.image.v1", EROFS_REF)
    writer.write_external(bytes.fromhex(CONFIG_OBJECT_ID), len(CONFIG_JSON))
    return writer


def u64(buf, offset):
    return struct.unpack_from("<Q", buf, offset)[0]


@pytest.mark.parametrize("value,ascii_word,decimal", [
    (ss.CONTENT_TYPE_OCI_LAYER, b"ocilayer", 8243128152309195631),
    (ss.CONTENT_TYPE_OCI_CONFIG, b"ociconfg", 7450764058219340655),
    (ss.CONTENT_TYPE_OCI_MANIFEST, b"ocimanif", 7379550829149774703),
    (ss.CONTENT_TYPE_OCI_BLOB, b"oci_blob", 7093007107895157615),
], ids=["layer", "config", "manifest", "blob"])
def test_content_types_match_spec_table(value, ascii_word, decimal):
    assert value == decimal
    assert struct.pack("<Q", value) == ascii_word


def test_worked_example_config_object_id_matches_oracle(tmp_path, fsverity_tool):
    assert len(CONFIG_JSON) == 151
    path = tmp_path / "config.json"
    path.write_bytes(CONFIG_JSON)
    assert rb.fsverity_digest(fsverity_tool, path, "sha256") == CONFIG_OBJECT_ID


def test_worked_example_layout(zstd_tool):
    data = example_writer().encode()
    assert data[:32] == spec_bytes(HEADER_HEX)
    # info: stream_refs [0x70,0xb0), object_refs [0xb0,0xd0), named_refs from 0xd0 up to the
    # stream section, stream to EOF (zstd section sizes are illustrative in the spec)
    assert (u64(data, 32), u64(data, 40)) == (0x70, 0xB0)
    assert (u64(data, 48), u64(data, 56)) == (0xB0, 0xD0)
    named_start, named_end = u64(data, 80), u64(data, 88)
    stream_start, stream_end = u64(data, 64), u64(data, 72)
    assert named_start == 0xD0 and named_end == stream_start and stream_end == len(data)
    assert data[96:104] == b"ociconfg"
    assert u64(data, 104) == 0x97
    assert data[0x70:0xB0] == LAYER_REF + EROFS_REF
    assert data[0xB0:0xD0] == bytes.fromhex(CONFIG_OBJECT_ID)
    assert rb.zstd_decompress(zstd_tool, data[named_start:named_end]) == NAMED_RECORDS
    assert rb.zstd_decompress(zstd_tool, data[stream_start:stream_end]) == ONE_EXTERNAL_CHUNK


def test_worked_example_parses_back():
    stream = ss.parse_splitstream(example_writer().encode(), fsverity.SHA256)
    assert stream.algorithm == fsverity.SHA256
    assert stream.content_type == 0x67666E6F6369636F
    assert stream.stream_size == 151
    assert stream.stream_refs == (LAYER_REF, EROFS_REF)
    assert stream.object_refs == (bytes.fromhex(CONFIG_OBJECT_ID),)
    assert stream.named_refs == {DIFF_ID: LAYER_REF, "composefs.image.v1": EROFS_REF}
    assert not stream.legacy_header
    assert list(ss.iter_chunks(stream)) == [0]
    assert ss.reassemble(stream, {bytes.fromhex(CONFIG_OBJECT_ID): CONFIG_JSON}.__getitem__) == CONFIG_JSON


def test_hand_built_worked_example_parses(zstd_tool):
    data = rb.splitstream_bytes(zstd_tool, "sha256", 0x67666E6F6369636F, 151, [LAYER_REF, EROFS_REF],
                                [bytes.fromhex(CONFIG_OBJECT_ID)], NAMED_RECORDS, ONE_EXTERNAL_CHUNK)
    assert data[:32] == spec_bytes(HEADER_HEX)
    stream = ss.parse_splitstream(data)
    assert stream.named_refs == {DIFF_ID: LAYER_REF, "composefs.image.v1": EROFS_REF}
    assert stream.object_refs == (bytes.fromhex(CONFIG_OBJECT_ID),)
    assert list(ss.iter_chunks(stream)) == [0]


def test_old_header_layout_reads_the_same(zstd_tool):
    data = rb.splitstream_bytes(zstd_tool, "sha256", 0x67666E6F6369636F, 151, [LAYER_REF, EROFS_REF],
                                [bytes.fromhex(CONFIG_OBJECT_ID)], NAMED_RECORDS, ONE_EXTERNAL_CHUNK, legacy=True)
    assert data[:32] == spec_bytes(OLD_HEADER_HEX)
    stream = ss.parse_splitstream(data, fsverity.SHA256)
    assert stream.legacy_header
    assert stream.stream_refs == (LAYER_REF, EROFS_REF)
    assert stream.named_refs == {DIFF_ID: LAYER_REF, "composefs.image.v1": EROFS_REF}
    assert stream.stream_size == 151


def test_encode_header_both_layouts():
    header = ss.SplitStreamHeader(1, ss.FileRange(32, 112))
    assert ss.encode_header(header) == spec_bytes(HEADER_HEX)
    assert ss.encode_header(header._replace(legacy=True)) == spec_bytes(OLD_HEADER_HEX)
    assert ss.parse_header(spec_bytes(OLD_HEADER_HEX)) == header._replace(legacy=True)


def test_info_longer_than_80_bytes_is_accepted(zstd_tool):
    named = rb.zstd_compress(zstd_tool, b"")
    body = rb.zstd_compress(zstd_tool, struct.pack("<q", -3) + b"abc")
    info_len = 96
    start = 32 + info_len
    info = struct.pack("<10Q", start, start, start, start, start + len(named), start + len(named) + len(body),
                       start, start + len(named), 0, 3) + b"\xff" * 16
    data = b"SplitStream" + bytes([0, 0, 0, 1, 12]) + struct.pack("<QQ", 32, start) + info + named + body
    stream = ss.parse_splitstream(data)
    assert list(ss.iter_chunks(stream)) == [b"abc"]


def test_writer_coalesces_inline_and_dedups_objects(zstd_tool):
    obj_a, obj_b = b"\x01" * 64, b"\x02" * 64
    writer = ss.SplitStreamWriter(fsverity.SHA512, 0)
    writer.write_inline(b"ab")
    writer.write_inline(b"")
    writer.write_inline(b"cd")
    writer.write_external(obj_a, 10)
    writer.write_external(obj_b, 20)
    writer.write_external(obj_a, 10)
    writer.write_inline(b"e")
    data = writer.encode()
    stream = ss.parse_splitstream(data, fsverity.SHA512)
    assert data[14] == 2
    assert stream.object_refs == (obj_a, obj_b)
    assert stream.stream_size == 4 + 10 + 20 + 10 + 1
    expected = (struct.pack("<q", -4) + b"abcd" + struct.pack("<q", 0) + struct.pack("<q", 1) + struct.pack("<q", 0)
                + struct.pack("<q", -1) + b"e")
    assert rb.zstd_decompress(zstd_tool, stream.stream_data) == expected
    assert list(ss.iter_chunks(stream)) == [b"abcd", 0, 1, 0, b"e"]
    objects = {obj_a: b"A" * 10, obj_b: b"B" * 20}
    assert ss.reassemble(stream, objects.__getitem__) == b"abcd" + b"A" * 10 + b"B" * 20 + b"A" * 10 + b"e"


def test_writer_named_refs_sorted_unique_last_wins(zstd_tool):
    writer = ss.SplitStreamWriter(fsverity.SHA256, 0)
    writer.add_named_ref("zeta", b"\x03" * 32)
    writer.add_named_ref("alpha", b"\x04" * 32)
    writer.add_named_ref("zeta", b"\x04" * 32)
    writer.add_named_ref("Beta", b"\x03" * 32)
    data = writer.encode()
    stream = ss.parse_splitstream(data)
    assert stream.stream_refs == (b"\x03" * 32, b"\x04" * 32)
    start, end = u64(data, 80), u64(data, 88)
    assert rb.zstd_decompress(zstd_tool, data[start:end]) == b"0:Beta\x001:alpha\x001:zeta\x00"
    assert stream.named_refs == {"Beta": b"\x03" * 32, "alpha": b"\x04" * 32, "zeta": b"\x04" * 32}


def test_empty_writer_emits_frames_for_both_sections(zstd_tool):
    data = ss.SplitStreamWriter(fsverity.SHA256, 5).encode()
    named = data[u64(data, 80):u64(data, 88)]
    body = data[u64(data, 64):u64(data, 72)]
    assert named[:4] == b"\x28\xb5\x2f\xfd" and body[:4] == b"\x28\xb5\x2f\xfd"
    assert rb.zstd_decompress(zstd_tool, named) == b"" and rb.zstd_decompress(zstd_tool, body) == b""
    stream = ss.parse_splitstream(data)
    assert (stream.content_type, stream.stream_size, stream.named_refs) == (5, 0, {})
    assert not list(ss.iter_chunks(stream))


def test_empty_sections_mean_no_refs_and_no_chunks():
    data = b"SplitStream" + bytes([0, 0, 0, 1, 12]) + struct.pack("<QQ", 32, 112) + struct.pack("<10Q", *([112] * 8), 0, 0)
    stream = ss.parse_splitstream(data)
    assert stream.named_refs == {} and stream.object_refs == () and not list(ss.iter_chunks(stream))


def test_writer_rejects_bad_input():
    writer = ss.SplitStreamWriter(fsverity.SHA256, 0)
    with pytest.raises(ValueError):
        writer.write_external(b"\x00" * 64, 1)
    with pytest.raises(ValueError):
        writer.add_named_ref("a\0b", b"\x00" * 32)
    with pytest.raises(ValueError):
        writer.write_external(b"\x00" * 32, -1)
    with pytest.raises(ValueError):
        ss.SplitStreamWriter(fsverity.SHA256, -1)


@pytest.mark.parametrize("records,expected", [
    (b"", {}),
    (b"0:a\0", {"a": "r0"}),
    (b"1:config:sha256:abc\0" + b"0:x\0", {"config:sha256:abc": "r1", "x": "r0"}),
    (b"0:dup\x001:dup\0", {"dup": "r1"}),
    (b"0:\0", {"": "r0"}),
], ids=["empty", "one", "colon-in-name", "duplicate-last-wins", "empty-name"])
def test_parse_named_refs(records, expected):
    refs = (b"r0", b"r1")
    assert ss.parse_named_refs(records, refs) == {k: v.encode() for k, v in expected.items()}


@pytest.mark.parametrize("records", [
    b"0:a",
    b"0:a\x000:b",
    b"0:\xff\0",
    b"nocolon\0",
    b"\0",
    b"2:a\0",
    b"x:a\0",
    b"-1:a\0",
    b":a\0",
], ids=["unterminated", "trailing", "non-utf8", "no-colon", "empty-record", "index-out-of-range",
        "non-digit", "negative", "no-index"])
def test_parse_named_refs_rejects(records):
    with pytest.raises(FormatError):
        ss.parse_named_refs(records, (b"r0", b"r1"))


def _valid_stream(zstd_tool, chunks=b"", records=b"", object_refs=1):
    return rb.splitstream_bytes(zstd_tool, "sha256", 0, 0, [b"\x05" * 32], [b"\x06" * 32] * object_refs, records, chunks)


@pytest.mark.parametrize("chunks", [
    b"\x01\x02\x03",
    struct.pack("<q", -5) + b"abc",
    struct.pack("<q", 1),
    struct.pack("<q", -(1 << 63)),
    struct.pack("<q", -1) + b"a" + b"\0\0",
], ids=["short-header", "inline-too-long", "external-out-of-range", "int64-min", "eof-inside-header"])
def test_iter_chunks_rejects(zstd_tool, chunks):
    stream = ss.parse_splitstream(_valid_stream(zstd_tool, chunks))
    with pytest.raises(FormatError):
        list(ss.iter_chunks(stream))


def _patch(data, offset, new):
    return data[:offset] + new + data[offset + len(new):]


@pytest.mark.parametrize("mutate", [
    lambda d: b"SplitStreaX" + d[11:],
    lambda d: _patch(d, 11, b"\x01"),
    lambda d: _patch(d, 15, b"\x10"),
    lambda d: _patch(d, 14, b"\x03"),
    lambda d: _patch(d, 14, b"\x02"),
    lambda d: _patch(d, 16, struct.pack("<QQ", 112, 32)),
    lambda d: _patch(d, 16, struct.pack("<QQ", 32, 100)),
    lambda d: _patch(d, 16, struct.pack("<QQ", 32, 1 << 40)),
    lambda d: _patch(d, 32, struct.pack("<QQ", 112, 120)),
    lambda d: _patch(d, 48, struct.pack("<QQ", 150, 144)),
    lambda d: _patch(d, 64, struct.pack("<QQ", 0, len(d) + 1)),
    lambda d: _patch(d, 80, struct.pack("<QQ", 0, 16)),
    lambda d: d[:31],
], ids=["magic", "version", "lg-blocksize", "unknown-algorithm", "sha512-in-sha256-file", "info-reversed",
        "info-too-short", "info-past-eof", "stream-refs-not-multiple", "object-refs-reversed", "stream-past-eof",
        "named-refs-not-zstd", "short-header"])
def test_parse_rejects_malformed(zstd_tool, mutate):
    data = _valid_stream(zstd_tool, struct.pack("<q", 0), b"0:x\0")
    ss.parse_splitstream(data, fsverity.SHA256)
    with pytest.raises(FormatError):
        ss.parse_splitstream(mutate(data), fsverity.SHA256)


def test_algorithm_mismatch_with_repository(zstd_tool):
    with pytest.raises(FormatError, match="algorithm"):
        ss.parse_splitstream(_valid_stream(zstd_tool), fsverity.SHA512)


def _parse_all(data):
    stream = ss.parse_splitstream(data, fsverity.SHA256)
    return list(ss.iter_chunks(stream, max_size=1 << 20))


def test_truncated_at_every_offset_raises_format_error_only():
    writer = ss.SplitStreamWriter(fsverity.SHA256, ss.CONTENT_TYPE_OCI_LAYER)
    writer.add_named_ref("n", b"\x07" * 32)
    writer.write_inline(b"inline data")
    writer.write_external(b"\x08" * 32, 3)
    data = writer.encode()
    _parse_all(data)
    for size in range(len(data)):
        with pytest.raises(FormatError):
            _parse_all(data[:size])


def test_random_bit_flips_raise_format_error_only():
    writer = ss.SplitStreamWriter(fsverity.SHA256, 0)
    writer.add_named_ref("layer", b"\x09" * 32)
    writer.write_inline(b"x" * 100)
    writer.write_external(b"\x0a" * 32, 7)
    data = writer.encode()
    rng = random.Random(20260101)
    for _round in range(2000):
        mutated = bytearray(data)
        for _flip in range(rng.randint(1, 4)):
            position = rng.randrange(len(mutated))
            mutated[position] ^= 1 << rng.randrange(8)
        try:
            _parse_all(bytes(mutated))
        except FormatError:
            pass


@pytest.mark.parametrize("legacy", [False, True], ids=["current", "old"])
@pytest.mark.parametrize("field,offsets,value", [
    ("version", (11, 29), 1),
    ("algorithm", (14, 30), 7),
    ("lg_blocksize", (15, 31), 16),
], ids=["version", "algorithm", "lg-blocksize"])
def test_header_errors_point_at_the_field(zstd_tool, legacy, field, offsets, value):
    data = rb.splitstream_bytes(zstd_tool, "sha256", 0, 0, [], [], b"", b"", legacy=legacy)
    offset = offsets[1] if legacy else offsets[0]
    with pytest.raises(FormatError, match=field.split("_")[0]) as info:
        ss.parse_splitstream(_patch(data, offset, bytes([value])))
    assert info.value.offset == offset
