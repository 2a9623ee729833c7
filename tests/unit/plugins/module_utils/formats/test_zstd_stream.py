# -*- coding: utf-8 -*-
# Copyright: (c) 2026, bootc.composefs maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests for streaming decompression: ``zstd.open_reader`` (formats/zstd_stream.py, the scanner of
zstd_frame.py, the streaming decoders of zstd.py, zstd_cli.py and zstd_python.py), every backend.

The oracle is the ``zstd`` CLI: it compresses the inputs (multi-frame, multi-block, with and
without checksums, tiny windows) and its reading of a stream is the expected output. Reads come in
odd sizes, from sources that return short reads. Errors must be those of ``zstd.decompress``:
the same framing messages and offsets, FormatError or ToolError only.
"""

from __future__ import annotations

import functools
import glob
import io
import os
import random
import tarfile

import pytest

from ansible_collections.bootc.composefs.plugins.module_utils.errors import ComposefsError, FormatError, ToolError
from ansible_collections.bootc.composefs.plugins.module_utils.formats import zstd, zstd_python
from ansible_collections.bootc.composefs.tests.conftest import run_tool
from ansible_collections.bootc.composefs.tests.unit.plugins.module_utils.formats.test_zstd import (
    AVAILABLE,
    cli_compressed,
    cli_decompress,
    sample,
    skippable,
    use_old_zstandard,
)

MIB = 1 << 20
CHUNK_SIZES = [1, 7, 4093, 65537, MIB + 3]


@pytest.fixture(params=AVAILABLE)
def backend(request):
    """Pin each backend this host has in turn, then unpin."""
    zstd.use_backend(request.param)
    yield request.param
    zstd.use_backend(None)


class ShortReads(io.RawIOBase):
    """A source that returns at most a few (varying) bytes per read, counting reads; never closed by the reader."""

    def __init__(self, data, sizes=(1000, 3, 77777, 12)):
        super().__init__()
        self._data = memoryview(data)
        self._pos = 0
        self._sizes = sizes
        self.reads = 0

    def readable(self):
        return True

    def readinto(self, buffer):
        size = min(len(buffer), self._sizes[self.reads % len(self._sizes)], len(self._data) - self._pos)
        self.reads += 1
        buffer[:size] = self._data[self._pos:self._pos + size]
        self._pos += size
        return size


def read_in_chunks(reader, sizes, use_readinto=False):
    pieces = []
    index = 0
    while True:
        size = sizes[index % len(sizes)]
        index += 1
        if use_readinto:
            buffer = bytearray(size)
            count = reader.readinto(buffer)
            piece = bytes(buffer[:count])
        else:
            piece = reader.read(size)
        if not piece:
            return b"".join(pieces)
        assert len(piece) == size or not reader.read(1), "short read before the end"
        pieces.append(piece)


def stream_outcome(data, **options):
    """(output, None) or (None, error) of reading ``data`` to the end through open_reader."""
    try:
        return zstd.open_reader(io.BytesIO(data), **options).read(), None
    except FormatError as err:
        return None, err


def oneshot_outcome(data, **options):
    try:
        return zstd.decompress(data, **options), None
    except FormatError as err:
        return None, err


@functools.lru_cache(maxsize=None)
def tiny_window_frame(tool, name):
    """``sample(name)`` with a 1 KiB window (``wlog=10``): the streaming decoders must drop history."""
    return run_tool([tool, "-q", "-c", "-3", "--zstd=wlog=10", "--check"], input=sample(name)).stdout


@functools.lru_cache(maxsize=None)
def multi_frame_stream(tool):
    """Frames of several levels and window sizes, checked and not, with skippable frames between."""
    parts = [
        cli_compressed(tool, "multiblock-400k", "l3", "check"),
        skippable(b"between"),
        cli_compressed(tool, "empty", "l1", "no-check"),
        cli_compressed(tool, "tar-1m", "l19", "no-check"),
        cli_compressed(tool, "long-runs", "long27", "check"),
        skippable(b"", 9),
        tiny_window_frame(tool, "text-100k"),
        cli_compressed(tool, "random-1m", "l1", "check"),
    ]
    return b"".join(parts)


# --- output -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("use_readinto", [False, True], ids=["read", "readinto"])
@pytest.mark.parametrize("chunk", CHUNK_SIZES)
def test_multi_frame_multi_block_stream_in_odd_chunks(zstd_tool, backend, chunk, use_readinto):
    stream = multi_frame_stream(zstd_tool)
    expected = cli_decompress(zstd_tool, stream)
    sizes = [chunk, chunk + 4093] if chunk < MIB else [chunk]  # odd sizes, not millions of 1-byte calls
    assert read_in_chunks(zstd.open_reader(io.BytesIO(stream)), sizes, use_readinto) == expected


def test_source_with_short_reads(zstd_tool, backend):
    stream = multi_frame_stream(zstd_tool)
    source = ShortReads(stream)
    reader = zstd.open_reader(source)
    assert reader.backend == backend
    assert read_in_chunks(reader, [5000, 1]) == cli_decompress(zstd_tool, stream)
    assert source.reads > len(stream) // 77777 and not source.closed


@pytest.mark.parametrize("name", ["text-100k", "tar-1m", "multiblock-400k"])
def test_tiny_window_drops_history_correctly(zstd_tool, backend, name):
    frame = tiny_window_frame(zstd_tool, name) * 2
    assert zstd.open_reader(io.BytesIO(frame)).read() == sample(name) * 2


def test_empty_and_skippable_only_streams(backend):
    assert zstd.open_reader(io.BytesIO(b"")).read() == b""
    assert zstd.open_reader(io.BytesIO(skippable(b"abc") + skippable(b"", 3))).read() == b""


def test_read_all_and_file_object_protocol(zstd_tool, backend):
    frame = cli_compressed(zstd_tool, "tar-1m", "l3", "check")
    with zstd.open_reader(io.BytesIO(frame)) as reader:
        assert reader.readable() and not reader.seekable() and not reader.writable()
        head = reader.read(512)
        assert head + reader.read() == sample("tar-1m")
        assert reader.read() == b"" and reader.read(10) == b""
    assert reader.closed
    with pytest.raises(ValueError):
        reader.read(1)


def test_tarfile_streams_through_the_reader(zstd_tool, backend):
    frame = cli_compressed(zstd_tool, "tar-1m", "l3", "no-check")
    with tarfile.open(fileobj=zstd.open_reader(io.BytesIO(frame)), mode="r|") as archive:
        names = [member.name for member in archive]
    with tarfile.open(fileobj=io.BytesIO(sample("tar-1m"))) as archive:
        assert names == archive.getnames()


def test_buffered_reader_over_the_reader(zstd_tool, backend):
    frame = cli_compressed(zstd_tool, "multiblock-400k", "l9", "check")
    buffered = io.BufferedReader(zstd.open_reader(io.BytesIO(frame)), 8192)
    assert buffered.read(3) + buffered.read() == sample("multiblock-400k")


def test_python_decoder_holds_a_window_not_the_stream(zstd_tool, monkeypatch):
    """The pure-Python reader keeps a window (128 KiB here) of history plus the slack, not the frame's output."""
    tar = sample("tar-1m")
    data = b"".join(tar[i:] + tar[:i] for i in (0, 5000, 77777, 123456, 300000, 654321))
    frame = run_tool([zstd_tool, "-q", "-c", "-1", "--zstd=wlog=17"], input=data).stdout
    history = []
    decode = zstd_python.zstd_block.decode_compressed_block

    def recording(view, start, end, out, state, block_max):
        history.append(len(out))
        return decode(view, start, end, out, state, block_max)

    monkeypatch.setattr(zstd_python.zstd_block, "decode_compressed_block", recording)
    zstd.use_backend("python")
    try:
        assert read_in_chunks(zstd.open_reader(io.BytesIO(frame)), [MIB]) == data
    finally:
        zstd.use_backend(None)
    bound = (128 << 10) + zstd_python.HISTORY_SLACK_BYTES + (128 << 10)
    assert max(history) <= bound < len(data) // 4


# --- errors: the same as decompress -------------------------------------------------------------------

def _framing_cases(zstd_tool):
    small = cli_compressed(zstd_tool, "short-text", "l3", "check")
    large = cli_compressed(zstd_tool, "multiblock-400k", "l3", "no-check")
    rng = random.Random(21)
    cases = [small[:length] for length in range(1, len(small))]
    cases += [large[:rng.randrange(1, len(large))] for _dummy in range(30)]
    cases += [b"\x28", b"\x28\xb5\x2f\xfd", b"not zstd at all", b"\x50\x2a\x4d\x18\x05\x00\x00\x00ab", small + b"\x00\x01",
              small + skippable(b"x" * 10)[:-3], small + bytes(small[:4]) + b"\x08" + small[5:]]
    return cases


def test_framing_errors_match_decompress_exactly(zstd_tool, backend):
    for data in _framing_cases(zstd_tool):
        output, expected = oneshot_outcome(data)
        assert output is None, data
        streamed, error = stream_outcome(data)
        assert streamed is None
        assert (str(error), error.offset) == (str(expected), expected.offset)


def test_dictionary_frames_are_refused(zstd_tool, tmp_path, backend):
    samples = []
    for index in range(300):
        path = tmp_path / ("s%d.json" % index)
        path.write_bytes(b'{"id": %d, "name": "layer-%d", "diff_id": "sha256:%064x"}\n' % (index, index, index * 7919))
        samples.append(str(path))
    run_tool([zstd_tool, "-q", "--train"] + samples + ["-o", str(tmp_path / "dict"), "--maxdict=2048"])
    frame = run_tool([zstd_tool, "-q", "-c", "-D", str(tmp_path / "dict")], input=b'{"id": 1, "name": "layer-1"}').stdout
    with pytest.raises(FormatError, match="dictionaries are not supported"):
        zstd.open_reader(io.BytesIO(frame)).read()


def test_bit_flips_raise_format_error_or_decode(zstd_tool, backend):
    """Flipped bits never raise anything but FormatError; a success is decompress's output (checked: the original)."""
    rng = random.Random(4321)
    cases = [(cli_compressed(zstd_tool, "text-100k", "l19", "check"), sample("text-100k")),
             (cli_compressed(zstd_tool, "long-runs", "l3", "check") + skippable(b"meta")
              + cli_compressed(zstd_tool, "one-byte", "l3", "check"), sample("long-runs") + sample("one-byte")),
             (tiny_window_frame(zstd_tool, "text-100k"), sample("text-100k"))]
    for _dummy in range(40 if backend == "zstd-cli" else 150):
        stream, original = rng.choice(cases)
        damaged = bytearray(stream)
        for _flip in range(rng.randint(1, 3)):
            position = rng.randrange(len(damaged))
            damaged[position] ^= 1 << rng.randrange(8)
        output, error = stream_outcome(bytes(damaged))
        if error is None:
            assert output == original
            assert oneshot_outcome(bytes(damaged))[0] == original


def test_errors_stick(zstd_tool, backend):
    frame = cli_compressed(zstd_tool, "multiblock-400k", "l3", "check")
    reader = zstd.open_reader(io.BytesIO(frame[:len(frame) // 2]))
    with pytest.raises(FormatError) as first:
        reader.read()
    with pytest.raises(FormatError) as again:
        reader.read(1)
    assert again.value is first.value


def test_output_before_the_damage_is_the_original(zstd_tool, backend):
    """What is handed out before the error is a prefix of the content (read-ahead backends may hand out less)."""
    frame = cli_compressed(zstd_tool, "multiblock-400k", "l3", "no-check")
    reader = zstd.open_reader(io.BytesIO(frame + frame[:len(frame) // 2]))
    pieces = []
    with pytest.raises(FormatError, match="truncated"):
        while True:
            pieces.append(reader.read(4096))
    delivered = b"".join(pieces)
    assert (sample("multiblock-400k") * 2).startswith(delivered)
    if backend in ("python", "pyzstd", "compression.zstd"):  # fed block by block: all but the last read's share
        assert len(delivered) > len(sample("multiblock-400k")) - 4096


class FailingSource(io.RawIOBase):
    """Gives ``good`` bytes, then raises ``error`` (the source's own failure, e.g. a blob digest check)."""

    def __init__(self, good, error):
        super().__init__()
        self._good = io.BytesIO(good)
        self._error = error

    def readable(self):
        return True

    def readinto(self, buffer):
        count = self._good.readinto(buffer)
        if not count:
            raise self._error
        return count


def test_source_errors_pass_through_unchanged(zstd_tool, backend):
    frame = cli_compressed(zstd_tool, "multiblock-400k", "l3", "check")
    error = ComposefsError("blob is larger than its descriptor says")
    reader = zstd.open_reader(FailingSource(frame[:len(frame) // 3], error))
    with pytest.raises(ComposefsError) as caught:
        reader.read()
    assert caught.value is error


# --- max_size ---------------------------------------------------------------------------------------

def test_max_size(zstd_tool, backend):
    data = sample("multiblock-400k")
    frame = cli_compressed(zstd_tool, "multiblock-400k", "l3", "no-check")
    assert zstd.open_reader(io.BytesIO(frame), max_size=len(data)).read() == data
    reader = zstd.open_reader(io.BytesIO(frame), max_size=len(data) - 1)
    with pytest.raises(FormatError, match="max_size"):
        reader.read()
    declared = zstd_python.compress(data)  # declares its content size (the CLI's streaming frames do not)
    with pytest.raises(FormatError, match="max_size") as caught:
        zstd.open_reader(io.BytesIO(declared), max_size=len(data) - 1).read(1)
    assert caught.value.offset == 0
    double = cli_compressed(zstd_tool, "text-100k", "l3", "no-check") * 2
    assert len(zstd.open_reader(io.BytesIO(double), max_size=200000).read()) == 200000
    with pytest.raises(FormatError, match="max_size"):
        zstd.open_reader(io.BytesIO(double), max_size=199999).read()


def test_max_size_stops_a_decompression_bomb_early(zstd_tool, backend):
    bomb = run_tool([zstd_tool, "-q", "-c", "-3"], input=bytes(64 * MIB)).stdout
    reader = zstd.open_reader(io.BytesIO(bomb), max_size=MIB)
    assert reader.read(MIB) == bytes(MIB)
    with pytest.raises(FormatError, match="max_size"):
        reader.read(1)
    assert reader.bytes_out <= 3 * MIB


# --- backends in particular -------------------------------------------------------------------------

def _children():
    found = set()
    for path in glob.glob("/proc/self/task/*/children"):
        with open(path, encoding="ascii") as handle:
            found.update(handle.read().split())
    return found


def test_cli_reader_closed_early_stops_the_tool(zstd_tool):
    assert "zstd-cli" in AVAILABLE, "the zstd binary is an oracle of these tests; run tests/setup/bootstrap.sh"
    zstd.use_backend("zstd-cli")
    try:
        before = _children()
        reader = zstd.open_reader(io.BytesIO(cli_compressed(zstd_tool, "tar-1m", "l3", "check")))
        assert reader.read(1000) == sample("tar-1m")[:1000]
        assert _children() - before
        reader.close()
        assert _children() == before
    finally:
        zstd.use_backend(None)


@pytest.fixture
def broken_cli(tmp_path, monkeypatch):
    """A ``zstd`` first on PATH that fails with a message, pinned as the backend."""
    fake = tmp_path / "zstd"
    fake.write_text("#!/bin/sh\necho 'zstd: simulated failure' >&2\nexit 3\n", encoding="utf-8")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", "%s%s%s" % (tmp_path, os.pathsep, os.environ.get("PATH", "")))
    zstd.use_backend("zstd-cli")
    yield str(fake)
    zstd.use_backend(None)


def test_failing_cli_on_valid_data_raises_tool_error(zstd_tool, broken_cli):
    with pytest.raises(ToolError) as caught:
        zstd.open_reader(io.BytesIO(cli_compressed(zstd_tool, "tar-1m", "l3", "check"))).read()
    assert caught.value.command[0] == broken_cli
    assert caught.value.rc == 3
    assert "simulated failure" in caught.value.stderr


def test_failing_cli_on_bad_data_raises_format_error(zstd_tool, broken_cli):
    frame = bytearray(cli_compressed(zstd_tool, "text-100k", "l3", "check"))
    frame[-1] ^= 1
    with pytest.raises(FormatError, match="checksum mismatch.*simulated failure"):
        zstd.open_reader(io.BytesIO(bytes(frame))).read()


def test_old_zstandard_without_read_across_frames(zstd_tool, monkeypatch):
    """python-zstandard before read_across_frames: the reader goes frame by frame instead."""
    use_old_zstandard(monkeypatch)
    try:
        stream = multi_frame_stream(zstd_tool)
        assert read_in_chunks(zstd.open_reader(ShortReads(stream)), [4093]) == cli_decompress(zstd_tool, stream)
        with pytest.raises(FormatError, match="max_size"):
            zstd.open_reader(io.BytesIO(stream), max_size=150000).read()
    finally:
        zstd.use_backend(None)
