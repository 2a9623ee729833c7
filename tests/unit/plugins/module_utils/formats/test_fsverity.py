# -*- coding: utf-8 -*-
# Copyright: (c) 2026, bootc.composefs maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests for formats/fsverity.py.

Expected digests come only from spec section 7.4 (``composefs-repo.md``) or from the oracle
``fsverity digest --hash-alg=... --block-size=4096 FILE`` (Debian fsverity-utils).
"""

from __future__ import annotations

import functools
import hashlib
import io
import os
import random
import signal
import threading

import pytest

from ansible_collections.bootc.composefs.plugins.module_utils.errors import ComposefsError, FormatError
from ansible_collections.bootc.composefs.plugins.module_utils.formats import fsverity
from ansible_collections.bootc.composefs.tests.conftest import run_tool

ALGORITHMS = [fsverity.SHA256, fsverity.SHA512]
ALGORITHM_IDS = [a.name for a in ALGORITHMS]
MIB = 1 << 20


@functools.lru_cache(maxsize=None)
def pattern(size):
    """``size`` bytes with byte i = i % 251 (the spec's patN input)."""
    return (bytes(range(251)) * (size // 251 + 1))[:size]


# spec section 7.4: (id, input, sha256 fs-verity digest, sha512 fs-verity digest)
SPEC_VECTORS = [
    ("empty", b"",
     "3d248ca542a24fc62d1c43b916eae5016878e2533c88238480b26128a1f1af95",
     "ccf9e5aea1c2a64efa2f2354a6024b90dffde6bbc017825045dce374474e13d1"
     "0adb9dadcc6ca8e17a3c075fbd31336e8f266ae6fa93a6c3bed66f9e784e5abf"),
    ("hello", b"hello world",
     "1e2eaa4202d750a41174ee454970b92c1bc2f925b1e35076d8c7d5f56362ba64",
     "18430270729d162d4e469daca123ae61893db4b0583d8f7081e3bf4f92b88ba5"
     "14e7982f10733fb6aa895195c5ae8fd2eb2c47a8be05513ce5a0c51a6f570409"),
    ("zero1", b"\0",
     "b803429503d95915829b29fdbc8bbad142f3abfd11b1cadf5526582e685c0551",
     "9fcf5172b085b1c8f9365eecb37a1869e193a4705654a5829f11939cd01d5c0f"
     "d97276be8cd9d49f76cfc8dcfeb80f8128e3548a1de50b56912b9e3fc7bde27b"),
    ("pat4096", 4096,
     "13e9b8848ae484a36acb3f3cac0ceb2f7601e96633d15c92f9bd3dd44e492157",
     "7bf994782b368ecc4e20ce9144701b1a30524d5bbc90987625de22eebc8cf370"
     "ec846c1b5e77f9099c6f6cfc0b590359b9ac8083a43e5f7fa5ec05a25dab6e03"),
    ("pat4097", 4097,
     "b0d074abef4d544404facfab6ba242f6a8ccbde90f1325cd286f3c8aa8d0f8aa",
     "97a1e45daaa69bd7b31908cf835318ba36476984ffa7f4a5913c0187db04ce5f"
     "19dc80306f493741d4ad1cdd212b7a9d2691aa3d42563d35471363fbb0fc7f1c"),
    ("pat262145", 262145,
     "3a184208d2025273795779ebbea5a31c8edecdb33646aaad46c66d089f8b9eed",
     "db774f463acc1e672e4da91d045eb146f2647efec545951fb7005067ff9899da"
     "3ae94dc206531b40985587ce4e5eb173a235d51b488074067d9e34131814b9de"),
    ("pat524289", 524289,
     "4dc6905041c9c4ee73e13b53f63f5d289c46da359b664a965ead7f8cc4d799d4",
     "60b58fe0f1e5198627ffb6be091eef60edce9b4ff6ee43884ba78a831ecdecc1"
     "572729afc5ebeb09101e3f102c9d7142ab4f66216198d85f8c7194eca7885bb2"),
    ("pat67108865", 67108865,
     "acba6554fbff4e8b2fc0361086b9e8ed6afbbd3196ade159c0f3e2bf9ecb2ed1",
     "8fedd4f06e533c604401fab2dd3cb54567ad80704a80aa78f32f023ce51bb46c"
     "297a2e8e3f3e65b35d69c06e37855309dec7ffbd63e2fdb6342e51b86024599b"),
]

# spec section 7.4: plain sha256 of some inputs, to check the pattern generator
SPEC_INPUT_SHA256 = [
    (4097, "a16560d668b843fb3be99ace41dbd18471f342bd3255a1d21204b35e43f74436"),
    (524289, "5584f83643017fcea9b7d65d3d3f890b5219eb1abfcb8896a2d4ef554d4612ec"),
    (67108865, "113352d294fcac5a297615d7125b46d2c6bfd15e44bf39558f5bb2ad092a2b28"),
]


def spec_input(value):
    return pattern(value) if isinstance(value, int) else value


def spec_expected(algorithm, sha256, sha512):
    return bytes.fromhex(sha256 if algorithm == fsverity.SHA256 else sha512)


def feed(algorithm, data, chunk_sizes):
    """FsVerityHasher fed ``data`` in chunks cycling through ``chunk_sizes``."""
    hasher = fsverity.FsVerityHasher(algorithm)
    view = memoryview(data)
    offset = 0
    index = 0
    while offset < len(view):
        size = chunk_sizes[index % len(chunk_sizes)]
        hasher.update(view[offset:offset + size])
        offset += size
        index += 1
    return hasher.digest()


class ReadOnlyStream:
    """A stream with ``read`` and no ``readinto`` (like some decompressors), returning short reads."""

    def __init__(self, data):
        self._stream = io.BytesIO(data)

    def read(self, size=-1):
        return self._stream.read(min(size, 10007) if size and size > 0 else size)


@pytest.fixture(params=["fork", "thread"])
def parallel_backend(request, monkeypatch):
    """Pin how digest_path runs its extra workers (forked processes or threads)."""
    monkeypatch.setattr(fsverity, "_fork_is_safe", lambda: request.param == "fork")
    return request.param


# --- spec vectors ---------------------------------------------------------------------------------


@pytest.mark.parametrize("size, expected", SPEC_INPUT_SHA256, ids=["pat%d" % case[0] for case in SPEC_INPUT_SHA256])
def test_pattern_generator_matches_spec(size, expected):
    assert hashlib.sha256(pattern(size)).hexdigest() == expected


@pytest.mark.parametrize("name, value, sha256, sha512", SPEC_VECTORS, ids=[v[0] for v in SPEC_VECTORS])
@pytest.mark.parametrize("algorithm", ALGORITHMS, ids=ALGORITHM_IDS)
def test_spec_vector_digest_bytes(name, value, sha256, sha512, algorithm):
    assert fsverity.digest_bytes(spec_input(value), algorithm) == spec_expected(algorithm, sha256, sha512), name


@pytest.mark.parametrize("name, value, sha256, sha512", SPEC_VECTORS, ids=[v[0] for v in SPEC_VECTORS])
@pytest.mark.parametrize("algorithm", ALGORITHMS, ids=ALGORITHM_IDS)
def test_spec_vector_hasher_unaligned_chunks(name, value, sha256, sha512, algorithm):
    data = spec_input(value)
    chunks = [4095, 4097, 65537] if len(data) > MIB else [1, 7, 4095, 4097, 65537]
    assert feed(algorithm, data, chunks) == spec_expected(algorithm, sha256, sha512), name


@pytest.fixture(scope="session")
def spec_files(tmp_path_factory):
    """{vector name: path of a file holding its input}."""
    folder = tmp_path_factory.mktemp("fsverity-spec")
    files = {}
    for vector in SPEC_VECTORS:
        files[vector[0]] = folder / vector[0]
        files[vector[0]].write_bytes(spec_input(vector[1]))
    return files


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("name, sha256, sha512", [(v[0], v[2], v[3]) for v in SPEC_VECTORS], ids=[v[0] for v in SPEC_VECTORS])
@pytest.mark.parametrize("algorithm", ALGORITHMS, ids=ALGORITHM_IDS)
def test_spec_vector_digest_path(spec_files, parallel_backend, name, sha256, sha512, algorithm, threads):
    got = fsverity.digest_path(spec_files[name], algorithm, threads=threads)
    assert got == spec_expected(algorithm, sha256, sha512), parallel_backend


def test_hex_helper_matches_spec():
    hasher = fsverity.FsVerityHasher(fsverity.SHA256)
    hasher.update(b"hello world")
    assert hasher.hexdigest() == SPEC_VECTORS[1][2]
    assert hasher.size == 11


# --- agreement with the fsverity oracle on random files -------------------------------------------

ORACLE_SIZES = [
    0, 1, 4095, 4096, 4097,
    64 * 4096 + 1,  # sha512: 2 tree levels
    128 * 4096,  # sha256: one full level-1 block
    128 * 4096 + 1,  # sha256: 2 tree levels
    MIB + 3 * 4096 + 17,  # crosses the 1 MiB read size of digest_path
    64 * 64 * 4096,  # sha512: exactly 2 full levels
    64 * 64 * 4096 + 1,  # sha512: 3 tree levels
    128 * 128 * 4096 + 5 * 4096 + 3,  # sha256: 3 tree levels
]
SEED = 20260701


@pytest.fixture(scope="session")
def random_files(tmp_path_factory, fsverity_tool):
    """{size: (path, {algorithm: oracle digest})} for random files (fixed seed)."""
    rng = random.Random(SEED)
    folder = tmp_path_factory.mktemp("fsverity-oracle")
    files = {}
    for size in ORACLE_SIZES:
        path = folder / ("random-%d" % size)
        path.write_bytes(rng.randbytes(size))
        files[size] = (path, {algorithm: oracle_digest(fsverity_tool, path, algorithm) for algorithm in ALGORITHMS})
    return files


def oracle_digest(tool, path, algorithm):
    """Digest printed by ``fsverity digest`` ("<alg>:<hex> <path>")."""
    out = run_tool([tool, "digest", "--hash-alg=%s" % algorithm.name, "--block-size=4096", str(path)]).stdout.decode()
    name, sep, rest = out.partition(":")
    assert name == algorithm.name and sep, out
    return bytes.fromhex(rest.split()[0])


def entry_bytes(path, algorithm):
    return fsverity.digest_bytes(path.read_bytes(), algorithm)


def entry_bytearray(path, algorithm):
    return fsverity.digest_bytes(bytearray(path.read_bytes()), algorithm)


def entry_hasher(chunk_sizes):
    def run(path, algorithm):
        return feed(algorithm, path.read_bytes(), chunk_sizes)
    return run


def entry_hasher_random_chunks(path, algorithm):
    data = path.read_bytes()
    rng = random.Random(len(data))
    chunk_sizes = [rng.choice([1, 2, 511, 4095, 4096, 4097, 8191, 12289, 100000]) for dummy in range(64)]
    return feed(algorithm, data, chunk_sizes)


def entry_fileobj(path, algorithm):
    with open(path, "rb") as fileobj:
        return fsverity.digest_fileobj(fileobj, algorithm)


def entry_fileobj_unbuffered(path, algorithm):
    with open(path, "rb", buffering=0) as fileobj:
        return fsverity.digest_fileobj(fileobj, algorithm)


def entry_fileobj_read_only(path, algorithm):
    return fsverity.digest_fileobj(ReadOnlyStream(path.read_bytes()), algorithm)


def entry_path(threads, use_kernel=True):
    def run(path, algorithm):
        return fsverity.digest_path(str(path), algorithm, threads=threads, use_kernel=use_kernel)
    return run


ENTRY_POINTS = [
    ("digest_bytes", entry_bytes, None),
    ("digest_bytes_bytearray", entry_bytearray, None),
    ("hasher_chunk_1", entry_hasher([1]), 300000),
    ("hasher_chunk_7", entry_hasher([7]), 2 * MIB),
    ("hasher_chunk_4095", entry_hasher([4095]), None),
    ("hasher_chunk_4097", entry_hasher([4097]), None),
    ("hasher_chunk_65537", entry_hasher([65537]), None),
    ("hasher_chunks_mixed", entry_hasher_random_chunks, None),
    ("digest_fileobj", entry_fileobj, None),
    ("digest_fileobj_unbuffered", entry_fileobj_unbuffered, None),
    ("digest_fileobj_read_only", entry_fileobj_read_only, None),
    ("digest_path_threads_1", entry_path(1), None),
    ("digest_path_threads_2", entry_path(2), None),
    ("digest_path_threads_3", entry_path(3), None),
    ("digest_path_threads_auto", entry_path(None), None),
    ("digest_path_no_kernel", entry_path(2, use_kernel=False), None),
]
ORACLE_CASES = [
    pytest.param(size, entry, id="%d-%s" % (size, name))
    for size in ORACLE_SIZES
    for name, entry, max_size in ENTRY_POINTS
    if max_size is None or size <= max_size
]


@pytest.mark.parametrize("size, entry", ORACLE_CASES)
@pytest.mark.parametrize("algorithm", ALGORITHMS, ids=ALGORITHM_IDS)
def test_agrees_with_fsverity_tool(random_files, size, entry, algorithm):
    path, expected = random_files[size]
    assert entry(path, algorithm) == expected[algorithm]


@pytest.mark.parametrize("size", [64 * 4096 + 1, 128 * 128 * 4096 + 5 * 4096 + 3])
@pytest.mark.parametrize("algorithm", ALGORITHMS, ids=ALGORITHM_IDS)
def test_digest_path_parallel_backends_agree_with_fsverity_tool(random_files, parallel_backend, size, algorithm):
    path, expected = random_files[size]
    assert fsverity.digest_path(path, algorithm, threads=2) == expected[algorithm], parallel_backend


@pytest.mark.parametrize("algorithm", ALGORITHMS, ids=ALGORITHM_IDS)
def test_forked_workers_fall_back_to_reads_when_mmap_fails(random_files, monkeypatch, algorithm):
    def refuse(*args, **kwargs):
        raise OSError(19, "No such device")

    monkeypatch.setattr(fsverity, "_fork_is_safe", lambda: True)
    monkeypatch.setattr(fsverity.mmap, "mmap", refuse)
    path, expected = random_files[MIB + 3 * 4096 + 17]
    assert fsverity.digest_path(path, algorithm, threads=2, use_kernel=False) == expected[algorithm]


@pytest.mark.parametrize("how", ["killed", "exception"])
def test_failed_forked_worker_is_an_error_of_the_file(random_files, monkeypatch, how):
    def fail(*args):
        if how == "killed":
            os.kill(os.getpid(), signal.SIGKILL)
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(fsverity, "_fork_is_safe", lambda: True)
    monkeypatch.setattr(fsverity, "_hash_range_mapped", fail)
    path = random_files[MIB + 3 * 4096 + 17][0]
    with pytest.raises(ComposefsError, match="worker process") as info:
        fsverity.digest_path(path, threads=2, use_kernel=False)
    assert info.value.path == str(path)


@pytest.mark.parametrize("algorithm", ALGORITHMS, ids=ALGORITHM_IDS)
def test_hasher_stays_usable_after_digest(tmp_path, fsverity_tool, random_files, algorithm):
    path, expected = random_files[64 * 4096 + 1]
    data = path.read_bytes()
    prefix = tmp_path / "prefix"
    prefix.write_bytes(data[:4097])
    hasher = fsverity.FsVerityHasher(algorithm)
    hasher.update(data[:4097])
    assert hasher.digest() == oracle_digest(fsverity_tool, prefix, algorithm)
    hasher.update(data[4097:])
    assert hasher.digest() == expected[algorithm]


@pytest.mark.parametrize("algorithm", ALGORITHMS, ids=ALGORITHM_IDS)
def test_digest_path_on_fifo_streams(tmp_path, random_files, algorithm):
    path, expected = random_files[MIB + 3 * 4096 + 17]
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)

    def writer():
        with open(fifo, "wb") as out:
            out.write(path.read_bytes())

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        assert fsverity.digest_path(fifo, algorithm, threads=2) == expected[algorithm]
    finally:
        thread.join()


# --- algorithms and bad arguments -----------------------------------------------------------------


def test_algorithm_lookup():
    assert fsverity.algorithm_by_name("sha256") == fsverity.SHA256 == ("sha256", 1, 32)
    assert fsverity.algorithm_by_name("sha512") == fsverity.SHA512 == ("sha512", 2, 64)
    assert fsverity.algorithm_by_kernel_id(1) is fsverity.SHA256
    assert fsverity.algorithm_by_kernel_id(2) is fsverity.SHA512
    assert (fsverity.BLOCK_SIZE, fsverity.LG_BLOCK_SIZE) == (4096, 12)


@pytest.mark.parametrize("name", ["md5", "SHA256", "sha-256", "sha384", ""])
def test_unknown_algorithm_name(name):
    with pytest.raises(FormatError, match="unknown fs-verity hash algorithm"):
        fsverity.algorithm_by_name(name)


@pytest.mark.parametrize("kernel_id", [0, 3, -1])
def test_unknown_kernel_id(kernel_id):
    with pytest.raises(FormatError):
        fsverity.algorithm_by_kernel_id(kernel_id)


@pytest.mark.parametrize("algorithm", ["sha256", fsverity.HashAlgorithm("md5", 3, 16), None],
                         ids=["name-string", "md5", "none"])
def test_unknown_algorithm_object(tmp_path, algorithm):
    path = tmp_path / "f"
    path.write_bytes(b"x")
    with pytest.raises(FormatError):
        fsverity.FsVerityHasher(algorithm)
    with pytest.raises(FormatError):
        fsverity.digest_bytes(b"x", algorithm)
    with pytest.raises(FormatError):
        fsverity.digest_path(path, algorithm)
    with open(path, "rb") as fileobj:
        with pytest.raises(FormatError):
            fsverity.measure_fd(fileobj.fileno(), algorithm)
        with pytest.raises(FormatError):
            fsverity.enable_fd(fileobj.fileno(), algorithm)


def test_digest_path_rejects_zero_threads(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"x")
    with pytest.raises(FormatError):
        fsverity.digest_path(path, threads=0)


def test_digest_path_missing_file_names_it(tmp_path):
    path = tmp_path / "missing"
    with pytest.raises(ComposefsError) as info:
        fsverity.digest_path(path)
    assert info.value.path == str(path)


def test_digest_path_directory_is_an_error(tmp_path):
    with pytest.raises(ComposefsError) as info:
        fsverity.digest_path(tmp_path, use_kernel=False)
    assert info.value.path == str(tmp_path)


# --- kernel interfaces (this kernel has no fs-verity: only the "not available" answers) -------------


@pytest.mark.parametrize("algorithm", ALGORITHMS, ids=ALGORITHM_IDS)
def test_measure_fd_without_verity_is_none(tmp_path, algorithm):
    path = tmp_path / "f"
    path.write_bytes(b"hello world")
    with open(path, "rb") as fileobj:
        assert fsverity.measure_fd(fileobj.fileno(), algorithm) is None


@pytest.mark.parametrize("algorithm", ALGORITHMS, ids=ALGORITHM_IDS)
def test_enable_fd_then_measure(tmp_path, fsverity_tool, algorithm):
    """Without fs-verity support: False, and still no measurement. With it: the oracle's digest."""
    path = tmp_path / "f"
    path.write_bytes(pattern(70000))
    with open(path, "rb") as fileobj:
        enabled = fsverity.enable_fd(fileobj.fileno(), algorithm)
        measured = fsverity.measure_fd(fileobj.fileno(), algorithm)
    if enabled:
        assert measured == oracle_digest(fsverity_tool, path, algorithm)
    else:
        assert enabled is False
        assert measured is None


@pytest.mark.skipif(not os.path.isdir("/dev/shm"), reason="needs a tmpfs at /dev/shm")
def test_enable_fd_on_tmpfs_is_unsupported():
    with open("/dev/shm/bootc-composefs-test-fsverity-%d" % os.getpid(), "w+b") as fileobj:
        try:
            fileobj.write(b"data")
            fileobj.flush()
            with open(fileobj.name, "rb") as reader:
                assert fsverity.enable_fd(reader.fileno(), fsverity.SHA256) is False
                assert fsverity.measure_fd(reader.fileno(), fsverity.SHA256) is None
        finally:
            os.unlink(fileobj.name)


def test_ioctls_on_a_closed_fd_raise_composefs_error(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"x")
    fd = os.open(path, os.O_RDONLY)
    os.close(fd)
    with pytest.raises(ComposefsError):
        fsverity.measure_fd(fd, fsverity.SHA256)
    with pytest.raises(ComposefsError):
        fsverity.enable_fd(fd, fsverity.SHA256)
