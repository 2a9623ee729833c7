# -*- coding: utf-8 -*-
# Copyright: (c) 2026, bootc.composefs maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests for formats/zstd.py: the public API with every backend, against the ``zstd`` CLI oracle.

Both directions: bytes compressed by ``zstd`` must inflate to the original with every backend
(pinned with ``use_backend``, the pure-Python one included), and bytes compressed by every backend
must give the original back through ``zstd -d``. Expected values are the inputs themselves.
"""

from __future__ import annotations

import functools
import io
import os
import random
import struct
import sys
import tarfile
import types

import pytest

from ansible_collections.bootc.composefs.plugins.module_utils.errors import FormatError, ToolError
from ansible_collections.bootc.composefs.plugins.module_utils.formats import zstd
from ansible_collections.bootc.composefs.tests.conftest import run_tool

MIB = 1 << 20
AVAILABLE = zstd.available_backends()
SKIPPABLE_MAGIC = 0x184D2A50


@pytest.fixture(params=AVAILABLE)
def backend(request):
    """Pin each backend this host has in turn, then unpin."""
    zstd.use_backend(request.param)
    yield request.param
    zstd.use_backend(None)


# --- inputs ------------------------------------------------------------------------------------------

def _words(rng, count):
    vocabulary = [bytes(rng.choice(b"abcdefghijklmnopqrstuvwxyz") for _dummy in range(rng.randint(2, 10))) for _dummy in range(800)]
    lines = []
    for _dummy in range(count // 8):
        lines.append(b" ".join(rng.choice(vocabulary) for _dummy in range(8)))
    return b"\n".join(lines)


def _text(size, seed):
    rng = random.Random(seed)
    return (_words(rng, size // 4))[:size]


def _tar_like(size, seed=7):
    """A real tar stream of text, config, binary, zero-filled and random members (like an OCI layer)."""
    rng = random.Random(seed)
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        index = 0
        while out.tell() < size:
            kind = index % 5
            if kind == 0:
                content = _words(rng, rng.randint(100, 3000))
            elif kind == 1:
                content = b"".join(b"%s=%d\n" % (rng.choice([b"key", b"path", b"mode", b"uid"]), rng.randint(0, 9999))
                                   for _dummy in range(rng.randint(10, 300)))
            elif kind == 2:
                content = b"".join(struct.pack("<IIQ", i, rng.randint(0, 255), i * 4096) for i in range(rng.randint(50, 2000)))
            elif kind == 3:
                content = bytes(rng.randint(512, 20000))
            else:
                content = rng.randbytes(rng.randint(100, 8000))
            info = tarfile.TarInfo("usr/share/bootc/file%05d" % index)
            info.size = len(content)
            info.mtime = 1700000000 + index
            tar.addfile(info, io.BytesIO(content))
            index += 1
    return out.getvalue()


@functools.lru_cache(maxsize=None)
def sample(name):
    """The named test input (deterministic)."""
    if name == "empty":
        return b""
    if name == "one-byte":
        return b"z"
    if name == "short-text":
        return b"1:composefs.image.v1\x000:sha256:" + b"1" * 64 + b"\x00"
    if name == "text-100k":
        return _text(100000, 1)
    if name == "tar-1m":
        return _tar_like(MIB)
    if name == "random-1m":
        return random.Random(3).randbytes(MIB)
    if name == "long-runs":
        return b"\x00" * 300000 + b"ab" * 5000 + b"\xff" * 200001 + b"tail"
    if name == "multiblock-400k":
        return _text(400000, 2)
    raise KeyError(name)


INPUTS = ["empty", "one-byte", "short-text", "text-100k", "tar-1m", "random-1m", "long-runs", "multiblock-400k"]
LEVELS = {
    "l1": ["-1"],
    "l3": ["-3"],
    "l9": ["-9"],
    "l19": ["-19"],
    "ultra22": ["--ultra", "-22"],
    "long27": ["--long=27"],
}
CHECKS = {"check": ["--check"], "no-check": ["--no-check"]}


@functools.lru_cache(maxsize=None)
def cli_compressed(tool, name, level, check):
    """``sample(name)`` compressed by the ``zstd`` CLI from stdin (streaming: no content size)."""
    return run_tool([tool, "-q", "-c"] + LEVELS[level] + CHECKS[check], input=sample(name)).stdout


def cli_decompress(tool, data):
    """The oracle's reading of ``data``."""
    return run_tool([tool, "-d", "-c", "-q"], input=data).stdout


def skippable(payload, variant=0):
    return struct.pack("<II", SKIPPABLE_MAGIC + variant, len(payload)) + payload


# --- chooser -----------------------------------------------------------------------------------------

def test_automatic_choice_is_the_first_available_backend():
    zstd.use_backend(None)
    assert zstd.backend_name() == AVAILABLE[0]
    assert AVAILABLE[-1] == "python"
    assert AVAILABLE == [name for name in zstd.BACKEND_NAMES if name in AVAILABLE]


def test_use_backend_pins_and_unpins():
    zstd.use_backend("python")
    try:
        assert zstd.backend_name() == "python"
    finally:
        zstd.use_backend(None)
    assert zstd.backend_name() == AVAILABLE[0]


def test_stdlib_backend_exactly_on_python_3_14():
    assert ("compression.zstd" in AVAILABLE) == (sys.version_info >= (3, 14))


@pytest.mark.parametrize("name", ["lz4", "", "Python"])
def test_use_backend_rejects_unknown_names(name):
    with pytest.raises(ValueError):
        zstd.use_backend(name)


@pytest.mark.parametrize("level", [23, -131073, 3.0, "3", True])
def test_compress_rejects_bad_levels(level):
    with pytest.raises(ValueError):
        zstd.compress(b"data", level)


# --- oracle -> every backend -------------------------------------------------------------------------

@pytest.mark.parametrize("check", sorted(CHECKS))
@pytest.mark.parametrize("level", sorted(LEVELS))
@pytest.mark.parametrize("name", INPUTS)
def test_cli_output_decodes_with_every_backend(zstd_tool, backend, name, level, check):
    assert zstd.decompress(cli_compressed(zstd_tool, name, level, check)) == sample(name)


def test_empty_input_gives_empty_output(backend):
    assert zstd.decompress(b"") == b""
    assert zstd.decompress(bytearray()) == b""


def test_accepts_any_bytes_like(zstd_tool, backend):
    frame = cli_compressed(zstd_tool, "text-100k", "l3", "check")
    assert zstd.decompress(bytearray(frame)) == sample("text-100k")
    assert zstd.decompress(memoryview(frame)) == sample("text-100k")


def test_decodes_streaming_frames_without_content_size(backend):
    """composefs-rs writes with a streaming encoder: no Frame_Content_Size, several blocks."""
    zstandard = pytest.importorskip("zstandard")
    data = sample("tar-1m")
    compressor = zstandard.ZstdCompressor(level=3).compressobj()
    frame = b"".join([compressor.compress(data[i:i + 65536]) for i in range(0, len(data), 65536)] + [compressor.flush()])
    assert zstandard.get_frame_parameters(frame).content_size == zstandard.CONTENTSIZE_UNKNOWN
    assert zstd.decompress(frame) == data


# --- every backend -> oracle -------------------------------------------------------------------------

@pytest.mark.parametrize("level", [1, 3, 19])
@pytest.mark.parametrize("name", INPUTS)
def test_backend_output_is_accepted_by_the_cli(zstd_tool, backend, name, level):
    frame = zstd.compress(sample(name), level)
    assert frame[:4] == b"\x28\xb5\x2f\xfd"
    assert cli_decompress(zstd_tool, frame) == sample(name)


def test_empty_input_still_gives_a_frame(zstd_tool, backend):
    frame = zstd.compress(b"")
    assert frame[:4] == b"\x28\xb5\x2f\xfd"
    run_tool([zstd_tool, "-t", "-q"], input=frame)
    assert cli_decompress(zstd_tool, frame) == b""


def test_compress_roundtrip_at_default_level(backend):
    assert zstd.decompress(zstd.compress(sample("tar-1m"))) == sample("tar-1m")


# --- concatenated and skippable frames ---------------------------------------------------------------

def test_concatenated_frames_from_cli_and_every_backend(zstd_tool, backend):
    parts = [("short-text", cli_compressed(zstd_tool, "short-text", "l3", "check")),
             ("empty", cli_compressed(zstd_tool, "empty", "l1", "no-check")),
             ("multiblock-400k", cli_compressed(zstd_tool, "multiblock-400k", "l19", "no-check"))]
    for name in AVAILABLE:
        zstd.use_backend(name)
        parts.append(("text-100k", zstd.compress(sample("text-100k"))))
        parts.append(("empty", zstd.compress(b"")))
    zstd.use_backend(backend)
    stream = b"".join(frame for _name, frame in parts)
    expected = b"".join(sample(name) for name, _frame in parts)
    assert cli_decompress(zstd_tool, stream) == expected
    assert zstd.decompress(stream) == expected


@pytest.mark.parametrize("variant", [0, 7, 15])
def test_skippable_frames_are_skipped(zstd_tool, backend, variant):
    frame = cli_compressed(zstd_tool, "text-100k", "l3", "check")
    stream = skippable(b"", variant) + frame + skippable(b"user data \x28\xb5\x2f\xfd", variant) + frame + skippable(b"\0" * 1000)
    expected = sample("text-100k") * 2
    assert cli_decompress(zstd_tool, stream) == expected
    assert zstd.decompress(stream) == expected


def test_only_skippable_frames_give_empty_output(zstd_tool, backend):
    stream = skippable(b"abc") + skippable(b"", 3)
    assert cli_decompress(zstd_tool, stream) == b""
    assert zstd.decompress(stream) == b""


# --- corruption -------------------------------------------------------------------------------------

def _outcome(data):
    """Decompress, turning FormatError into None; any other exception fails the test."""
    try:
        return zstd.decompress(data)
    except FormatError:
        return None


def test_truncated_frames_raise_format_error(zstd_tool, backend):
    rng = random.Random(11)
    small = cli_compressed(zstd_tool, "short-text", "l3", "check")
    large = cli_compressed(zstd_tool, "multiblock-400k", "l3", "no-check")
    cuts = [(small, length) for length in range(1, len(small))]
    cuts += [(large, rng.randrange(1, len(large))) for _dummy in range(40)]
    for frame, length in cuts:
        with pytest.raises(FormatError):
            zstd.decompress(frame[:length])


def _flip_cases(zstd_tool):
    """(stream, original, has checksum) pairs to corrupt."""
    return [
        (cli_compressed(zstd_tool, "short-text", "l3", "check"), sample("short-text"), True),
        (cli_compressed(zstd_tool, "text-100k", "l19", "check"), sample("text-100k"), True),
        (cli_compressed(zstd_tool, "text-100k", "l1", "no-check"), sample("text-100k"), False),
        (cli_compressed(zstd_tool, "long-runs", "l3", "check") + skippable(b"meta") + cli_compressed(zstd_tool, "one-byte", "l3", "check"),
         sample("long-runs") + sample("one-byte"), True),
    ]


def test_bit_flips_raise_format_error_or_decode(zstd_tool, backend):
    """Flipped bits never raise anything but FormatError; with a checksum, a success is the original."""
    rng = random.Random(1234)
    cases = _flip_cases(zstd_tool)
    count = 100 if backend == "zstd-cli" else 300
    for _dummy in range(count):
        stream, original, checked = rng.choice(cases)
        damaged = bytearray(stream)
        for _flip in range(rng.randint(1, 3)):
            position = rng.randrange(len(damaged))
            damaged[position] ^= 1 << rng.randrange(8)
        result = _outcome(bytes(damaged))
        if result is not None and checked:
            assert result == original


def test_bad_checksum_raises_format_error(zstd_tool, backend):
    frame = bytearray(cli_compressed(zstd_tool, "text-100k", "l3", "check"))
    frame[-1] ^= 1
    with pytest.raises(FormatError):
        zstd.decompress(bytes(frame))


@pytest.mark.parametrize("data", [b"\x28", b"\x28\xb5\x2f\xfd", b"not zstd at all", b"\x50\x2a\x4d\x18\x05\x00\x00\x00ab"],
                         ids=["one-byte", "magic-only", "garbage", "short-skippable"])
def test_malformed_streams_raise_format_error(backend, data):
    with pytest.raises(FormatError):
        zstd.decompress(data)


def test_trailing_garbage_raises_format_error(zstd_tool, backend):
    with pytest.raises(FormatError):
        zstd.decompress(cli_compressed(zstd_tool, "short-text", "l3", "check") + b"\x00\x01")


def test_dictionary_frames_are_refused(zstd_tool, tmp_path, backend):
    samples = []
    for index in range(300):
        path = tmp_path / ("s%d.json" % index)
        path.write_bytes(b'{"id": %d, "name": "layer-%d", "diff_id": "sha256:%064x"}\n' % (index, index, index * 7919))
        samples.append(str(path))
    run_tool([zstd_tool, "-q", "--train"] + samples + ["-o", str(tmp_path / "dict"), "--maxdict=2048"])
    frame = run_tool([zstd_tool, "-q", "-c", "-D", str(tmp_path / "dict")], input=b'{"id": 1, "name": "layer-1"}').stdout
    with pytest.raises(FormatError, match="dictionaries are not supported"):
        zstd.decompress(frame)


# --- max_size ---------------------------------------------------------------------------------------

def test_max_size_allows_exact_size(zstd_tool, backend):
    data = sample("multiblock-400k")
    assert zstd.decompress(cli_compressed(zstd_tool, "multiblock-400k", "l3", "no-check"), max_size=len(data)) == data
    assert zstd.decompress(zstd.compress(data), max_size=len(data)) == data


def test_max_size_refuses_one_byte_more(zstd_tool, backend):
    data = sample("multiblock-400k")
    with pytest.raises(FormatError, match="max_size"):
        zstd.decompress(cli_compressed(zstd_tool, "multiblock-400k", "l3", "no-check"), max_size=len(data) - 1)
    with pytest.raises(FormatError, match="max_size"):
        zstd.decompress(zstd.compress(data), max_size=len(data) - 1)


def test_max_size_counts_all_frames(zstd_tool, backend):
    frame = cli_compressed(zstd_tool, "text-100k", "l3", "no-check")
    assert len(zstd.decompress(frame + frame, max_size=200000)) == 200000
    with pytest.raises(FormatError, match="max_size"):
        zstd.decompress(frame + frame, max_size=199999)


@functools.lru_cache(maxsize=None)
def _bomb(tool):
    """64 MiB of zeros as a streaming frame (no declared content size): a few KiB compressed."""
    return run_tool([tool, "-q", "-c", "-3"], input=bytes(64 * MIB)).stdout


def test_max_size_stops_a_decompression_bomb(zstd_tool, backend):
    bomb = _bomb(zstd_tool)
    assert len(bomb) < 64 * 1024
    with pytest.raises(FormatError, match="max_size"):
        zstd.decompress(bomb, max_size=MIB)


# --- the zstd binary failing ------------------------------------------------------------------------

@pytest.fixture
def broken_cli(tmp_path, monkeypatch):
    """A ``zstd`` first on PATH that always fails with a message, pinned as the backend."""
    fake = tmp_path / "zstd"
    fake.write_text("#!/bin/sh\necho 'zstd: simulated failure' >&2\nexit 3\n", encoding="utf-8")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", "%s%s%s" % (tmp_path, os.pathsep, os.environ.get("PATH", "")))
    zstd.use_backend("zstd-cli")
    yield str(fake)
    zstd.use_backend(None)


def test_failing_cli_compress_raises_tool_error(broken_cli):
    with pytest.raises(ToolError) as caught:
        zstd.compress(b"data")
    assert caught.value.command[0] == broken_cli
    assert caught.value.rc == 3
    assert "simulated failure" in caught.value.stderr
    assert "simulated failure" in str(caught.value)


def test_failing_cli_on_valid_data_raises_tool_error(zstd_tool, broken_cli):
    with pytest.raises(ToolError) as caught:
        zstd.decompress(cli_compressed(zstd_tool, "short-text", "l3", "check"))
    assert caught.value.command[0] == broken_cli
    assert "simulated failure" in caught.value.stderr


def use_old_zstandard(monkeypatch):
    """Pin the ``zstandard`` backend to python-zstandard as it was before ``read_across_frames``.

    Its ``stream_reader`` takes no keyword options (the real decompressor does the work); the
    caller resets the backend with ``zstd.use_backend(None)``.
    """
    zstandard = pytest.importorskip("zstandard")

    class OldDecompressor:
        def __init__(self):
            self.real = zstandard.ZstdDecompressor()

        def stream_reader(self, source, **options):
            if options:
                raise TypeError("stream_reader() got an unexpected keyword argument")
            return self.real.stream_reader(source)

    monkeypatch.setitem(sys.modules, "zstandard", types.SimpleNamespace(
        ZstdDecompressor=OldDecompressor, ZstdCompressor=zstandard.ZstdCompressor, ZstdError=zstandard.ZstdError))
    zstd.use_backend("zstandard")


def test_old_zstandard_without_read_across_frames(zstd_tool, monkeypatch):
    """python-zstandard before read_across_frames: the backend reads frame by frame instead."""
    use_old_zstandard(monkeypatch)
    try:
        frame = cli_compressed(zstd_tool, "text-100k", "l3", "check")
        stream = frame + skippable(b"x") + frame
        assert zstd.decompress(stream) == sample("text-100k") * 2
        with pytest.raises(FormatError, match="max_size"):
            zstd.decompress(stream, max_size=150000)
    finally:
        zstd.use_backend(None)
