# -*- coding: utf-8 -*-
# Copyright: (c) 2026, bootc.composefs maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""fs-verity file digests: the names of composefs repository objects.

Layer: formats. Spec: ``composefs-repo.md`` section 7; upstream: composefs-rs
``crates/composefs/src/fsverity/{digest,ioctl,hashvalue}.rs``.

Merkle tree. The file data is cut into 4096-byte blocks, the last one zero-padded; each block is
hashed (level 0). The hashes of a level are concatenated, cut into 4096-byte tree blocks (128
sha256 or 64 sha512 hashes per block, the last block zero-padded) and hashed again, giving the
next level, until a level holds exactly one hash: the root. A file of at most one block has the
hash of that padded block as root; an empty file has an all-zero root of the hash's size.

Descriptor. The digest is the hash of this 256-byte record; integers are little-endian:

====== ==== ============== ===============================================
offset size field          value
====== ==== ============== ===============================================
0      1    version        1
1      1    hash_algorithm 1 = sha256, 2 = sha512 (the kernel's id)
2      1    log_blocksize  12
3      1    salt_size      0
4      4    sig_size       0 (u32, reserved)
8      8    data_size      file length in bytes (u64)
16     64   root_hash      root, zero-padded to 64 bytes
80     32   salt           zeros
112    144  reserved       zeros
====== ==== ============== ===============================================

Kernel interfaces (``linux/fsverity.h``):

- ``FS_IOC_ENABLE_VERITY`` (``0x40806685``) takes the 128-byte ``struct fsverity_enable_arg``
  ``{u32 version=1; u32 hash_algorithm; u32 block_size=4096; u32 salt_size=0; u64 salt_ptr=0;
  u32 sig_size=0; u32 reserved1; u64 sig_ptr=0; u64 reserved2[11]}``. The fd must be read-only
  and no writable fd or writable shared mapping of the file may exist anywhere (``ETXTBSY``);
  ``EEXIST`` means verity is already enabled.
- ``FS_IOC_MEASURE_VERITY`` (``0xc0046686``) fills ``{u16 digest_algorithm; u16 digest_size;
  u8 digest[]}``; on input ``digest_size`` is the room in the buffer (``EOVERFLOW`` if too
  small). ``ENODATA``: verity is not enabled on the file.
- ``ENOTTY`` / ``EOPNOTSUPP`` (and ``EINVAL`` from some filesystems) mean the kernel or the
  filesystem has no fs-verity.

Not supported: salts, block sizes other than 4096, builtin signatures, hash algorithms other
than sha256 and sha512 (composefs uses none of them).

Unlike the composefs-rs hasher, ``FsVerityHasher`` accepts chunks of any size (spec section 7.3:
feeding it unaligned chunks produced wrong object names).
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import mmap
import os
import signal
import stat
import struct
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

from ansible_collections.bootc.composefs.plugins.module_utils.errors import ComposefsError, FormatError

__all__ = [
    "BLOCK_SIZE",
    "LG_BLOCK_SIZE",
    "HashAlgorithm",
    "SHA256",
    "SHA512",
    "ALGORITHMS",
    "algorithm_by_name",
    "algorithm_by_kernel_id",
    "FsVerityHasher",
    "digest_bytes",
    "digest_fileobj",
    "digest_path",
    "measure_fd",
    "enable_fd",
]

# --- Merkle tree and descriptor ---------------------------------------------------------------

LG_BLOCK_SIZE = 12
BLOCK_SIZE = 1 << LG_BLOCK_SIZE  # bytes per data block and per tree block
DESCRIPTOR_SIZE = 256
MAX_DIGEST_SIZE = 64  # width of root_hash in the descriptor, and of the largest digest
# version, hash_algorithm, log_blocksize, salt_size, sig_size, data_size, root_hash (zero-padded);
# salt and reserved (the remaining 176 bytes) are zero.
_DESCRIPTOR_HEAD = struct.Struct("<BBBBIQ64s")
_DESCRIPTOR_TAIL = bytes(DESCRIPTOR_SIZE - _DESCRIPTOR_HEAD.size)
_ZERO_BLOCK = bytes(BLOCK_SIZE)

# --- Kernel ioctls ----------------------------------------------------------------------------

FS_IOC_ENABLE_VERITY = 0x40806685
FS_IOC_MEASURE_VERITY = 0xC0046686
# struct fsverity_enable_arg: version, hash_algorithm, block_size, salt_size, salt_ptr, sig_size,
# reserved1, sig_ptr, then reserved2[11] (88 zero bytes): 128 bytes in all.
_ENABLE_ARG = struct.Struct("<IIIIQIIQ88x")
# struct fsverity_digest header: digest_algorithm, digest_size; the digest bytes follow.
_MEASURE_HEAD = struct.Struct("<HH")
_NO_VERITY_SUPPORT = frozenset((errno.ENOTTY, errno.EOPNOTSUPP, errno.EINVAL))

# --- Reading and parallelism ------------------------------------------------------------------

# Bytes read per system call: a multiple of every level-1 tree block's coverage (128 * 4096 for
# sha256), small enough to stay in the CPU cache between the copy and the hashing.
_READ_SIZE = 1 << 20
_READ_SLICES = tuple(slice(offset, offset + BLOCK_SIZE) for offset in range(0, _READ_SIZE, BLOCK_SIZE))
# digest_path with threads=None uses one worker per this many bytes of file (and per CPU): a
# forked worker costs about 0.3 ms, hashing 8 MiB about 6 ms (sha256) on the benchmark VM.
_PARALLEL_MIN_BYTES = 8 << 20
_MAX_AUTO_WORKERS = 8


class HashAlgorithm(NamedTuple):
    """One fs-verity hash algorithm: hashlib name, kernel id (descriptor byte 1), digest length."""

    name: str
    kernel_id: int
    digest_size: int


SHA256 = HashAlgorithm("sha256", 1, 32)
SHA512 = HashAlgorithm("sha512", 2, 64)
ALGORITHMS = (SHA256, SHA512)


class _Hashing(NamedTuple):
    """What the tree code needs of an algorithm: constructor, unbound ``digest``, hashes per block."""

    new: object
    digest_of: object
    hashes_per_block: int


def _hashing_for(constructor, algorithm: HashAlgorithm) -> _Hashing:
    # type(...).digest is the unbound C method: map() can call it without a Python frame.
    return _Hashing(constructor, type(constructor()).digest, BLOCK_SIZE // algorithm.digest_size)


_HASHING = {
    SHA256: _hashing_for(hashlib.sha256, SHA256),
    SHA512: _hashing_for(hashlib.sha512, SHA512),
}


def algorithm_by_name(name: str) -> HashAlgorithm:
    """Return the algorithm called ``name`` ("sha256" or "sha512"); FormatError otherwise."""
    for algorithm in ALGORITHMS:
        if algorithm.name == name:
            return algorithm
    raise FormatError("unknown fs-verity hash algorithm %r (expected sha256 or sha512)" % (name,))


def algorithm_by_kernel_id(kernel_id: int) -> HashAlgorithm:
    """Return the algorithm whose kernel id is ``kernel_id`` (1 or 2); FormatError otherwise."""
    for algorithm in ALGORITHMS:
        if algorithm.kernel_id == kernel_id:
            return algorithm
    raise FormatError("unknown fs-verity hash algorithm id %r (expected 1 = sha256 or 2 = sha512)" % (kernel_id,))


def _hashing(algorithm: HashAlgorithm) -> _Hashing:
    if algorithm not in ALGORITHMS:
        raise FormatError("unknown fs-verity hash algorithm %r (expected SHA256 or SHA512)" % (algorithm,))
    return _HASHING[algorithm]


# --- Tree arithmetic (pure) -------------------------------------------------------------------


def _hash_blocks(hashing: _Hashing, view, start: int, end: int) -> bytes:
    """Concatenated hashes of the whole blocks of ``view[start:end]`` (a multiple of BLOCK_SIZE).

    Hot path (bench/bench_fsverity.py): the loop runs entirely in C (map over slice objects,
    constructor and unbound digest), so a block costs two hashlib calls and no bytecode; the
    slices of a full read buffer are made once, at import.
    """
    length = end - start
    if length <= _READ_SIZE:
        slices = _READ_SLICES if length == _READ_SIZE else _READ_SLICES[:length // BLOCK_SIZE]
    else:
        slices = map(slice, range(0, length, BLOCK_SIZE), range(BLOCK_SIZE, length + BLOCK_SIZE, BLOCK_SIZE))
    blocks = map(view[start:end].__getitem__, slices)
    return b"".join(map(hashing.digest_of, map(hashing.new, blocks)))


def _next_level(hashing: _Hashing, hashes: bytes) -> bytes:
    """Hashes of the tree blocks holding ``hashes``, the last block zero-padded."""
    whole = len(hashes) - len(hashes) % BLOCK_SIZE
    result = _hash_blocks(hashing, memoryview(hashes), 0, whole)
    if whole < len(hashes):
        result += hashing.new(hashes[whole:] + _ZERO_BLOCK[len(hashes) - whole:]).digest()
    return result


def _root_from_level(hashing: _Hashing, hashes: bytes) -> bytes:
    """Root hash of a tree whose level (0 or above) holding ``hashes`` has at least one hash."""
    size = len(hashes) // (BLOCK_SIZE // hashing.hashes_per_block)
    while size > 1:
        hashes = _next_level(hashing, hashes)
        size = (size + hashing.hashes_per_block - 1) // hashing.hashes_per_block
    return hashes


def _descriptor_digest(hashing: _Hashing, algorithm: HashAlgorithm, data_size: int, root: bytes) -> bytes:
    """The fs-verity digest: hash of the descriptor for ``data_size`` bytes with tree root ``root``."""
    head = _DESCRIPTOR_HEAD.pack(1, algorithm.kernel_id, LG_BLOCK_SIZE, 0, 0, data_size, root)
    return hashing.new(head + _DESCRIPTOR_TAIL).digest()


# --- Incremental hashing ----------------------------------------------------------------------


class FsVerityHasher:
    """Incremental fs-verity digest: ``update()`` with chunks of any size, then ``digest()``.

    Data that does not fill a block waits in a buffer; each tree level keeps the hashes that do
    not yet fill a tree block, so memory stays below one block per level.
    """

    def __init__(self, algorithm: HashAlgorithm = SHA256) -> None:
        self.algorithm = algorithm
        self._hashing = _hashing(algorithm)
        self._size = 0
        self._partial = bytearray()  # data not yet filling a block (< BLOCK_SIZE bytes)
        self._pending = []  # per tree level: hashes not yet filling a tree block
        self._counts = []  # per tree level: hashes produced so far

    @property
    def size(self) -> int:
        """Number of data bytes fed so far."""
        return self._size

    def update(self, data) -> None:
        """Feed the next bytes of the file (any bytes-like object, any length)."""
        view = memoryview(data)
        if view.ndim != 1 or view.itemsize != 1:
            view = view.cast("B")
        length = len(view)
        if not length:
            return
        self._size += length
        start = 0
        if self._partial:
            start = min(BLOCK_SIZE - len(self._partial), length)
            self._partial += view[:start]
            if len(self._partial) < BLOCK_SIZE:
                return
            self._add(0, self._hashing.new(self._partial).digest(), 1)
            self._partial = bytearray()
        whole_end = length - (length - start) % BLOCK_SIZE
        if whole_end > start:
            self._add(0, _hash_blocks(self._hashing, view, start, whole_end), (whole_end - start) // BLOCK_SIZE)
        if whole_end < length:
            self._partial += view[whole_end:]

    def _add(self, level: int, hashes: bytes, count: int) -> None:
        """Append ``count`` hashes to ``level``, hashing every tree block they fill into the next level."""
        while True:
            if level == len(self._pending):
                self._pending.append(bytearray())
                self._counts.append(0)
            pending = self._pending[level]
            pending += hashes
            self._counts[level] += count
            whole = len(pending) - len(pending) % BLOCK_SIZE
            if not whole:
                return
            with memoryview(pending) as view:  # released before the resize below
                hashes = _hash_blocks(self._hashing, view, 0, whole)
            count = whole // BLOCK_SIZE
            del pending[:whole]
            level += 1

    def digest(self) -> bytes:
        """Return the fs-verity digest of everything fed so far (the hasher stays usable)."""
        hashing = self._hashing
        pending = [bytes(level) for level in self._pending]
        counts = list(self._counts)
        if self._partial:
            if not pending:
                pending.append(b"")
                counts.append(0)
            pending[0] += hashing.new(bytes(self._partial) + _ZERO_BLOCK[len(self._partial):]).digest()
            counts[0] += 1
        root = bytes(MAX_DIGEST_SIZE)
        level = 0
        while level < len(pending):
            if counts[level] == 1:
                root = pending[level]
                break
            # This level has several hashes: its unfinished tree block, zero-padded, is the last
            # block hashed into the level above.
            if pending[level]:
                if level + 1 == len(pending):
                    pending.append(b"")
                    counts.append(0)
                pending[level + 1] += hashing.new(pending[level] + _ZERO_BLOCK[len(pending[level]):]).digest()
                counts[level + 1] += 1
            level += 1
        return _descriptor_digest(hashing, self.algorithm, self._size, root)

    def hexdigest(self) -> str:
        """Return ``digest()`` as lowercase hex (a repository object id)."""
        return self.digest().hex()


def digest_bytes(data, algorithm: HashAlgorithm = SHA256) -> bytes:
    """Return the fs-verity digest of ``data`` (any bytes-like object)."""
    hasher = FsVerityHasher(algorithm)
    hasher.update(data)
    return hasher.digest()


def digest_fileobj(fileobj, algorithm: HashAlgorithm = SHA256) -> bytes:
    """Return the fs-verity digest of what ``fileobj`` yields from its position to EOF.

    Reads with ``readinto`` into one reused buffer when the object has it, else with ``read``.
    """
    hasher = FsVerityHasher(algorithm)
    readinto = getattr(fileobj, "readinto", None)
    if readinto is not None:
        buf = bytearray(_READ_SIZE)
        view = memoryview(buf)
        while True:
            count = readinto(buf)
            if not count:
                break
            hasher.update(view[:count])
    else:
        while True:
            chunk = fileobj.read(_READ_SIZE)
            if not chunk:
                break
            hasher.update(chunk)
    return hasher.digest()


# --- Files: kernel measurement or (parallel) computation ----------------------------------------


def digest_path(path, algorithm: HashAlgorithm = SHA256, threads: int | None = None, use_kernel: bool = True) -> bytes:
    """Return the fs-verity digest of the file at ``path``.

    With ``use_kernel`` the kernel's measurement is returned when the file has fs-verity enabled
    with ``algorithm``; otherwise the digest is computed. ``threads`` is the number of CPU
    workers: None gives one per available CPU and per 8 MiB of file, at most 8; an explicit
    number is used as given (capped by the number of level-1 tree blocks).

    Parallel workers hash disjoint ranges of data blocks, each range a whole number of level-1
    tree blocks, so their level-1 hashes concatenate into the file's level 1. When this process
    has a single thread the workers are forked child processes: hashlib releases the GIL while
    it hashes a 4 KiB block but must take it back for every block, and on 2-CPU VMs two threads
    then run sha256 no faster than one (bench/bench_fsverity.py --variants). A process with
    other threads alive cannot fork safely; it runs the workers as threads instead.
    """
    hashing = _hashing(algorithm)
    if threads is not None and threads < 1:
        raise FormatError("threads must be at least 1, got %r" % (threads,))
    try:
        fd = os.open(os.fspath(path), os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except OSError as err:
        raise ComposefsError("cannot open file to compute its fs-verity digest: %s" % (err.strerror or err,), path=str(path)) from err
    try:
        if use_kernel:
            measured = measure_fd(fd, algorithm)
            if measured is not None:
                return measured
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            with os.fdopen(os.dup(fd), "rb") as fileobj:
                return digest_fileobj(fileobj, algorithm)
        size = info.st_size
        level1 = _hash_file(fd, hashing, size, _worker_count(threads, size, hashing))
        if os.fstat(fd).st_size != size:
            raise ComposefsError("file changed size while its fs-verity digest was computed", path=str(path))
        root = _root_from_level(hashing, level1) if level1 else bytes(MAX_DIGEST_SIZE)
        return _descriptor_digest(hashing, algorithm, size, root)
    except ComposefsError as err:
        raise err.with_path(path)
    except OSError as err:
        raise ComposefsError("cannot read file to compute its fs-verity digest: %s" % (err.strerror or err,), path=str(path)) from err
    finally:
        os.close(fd)


def _worker_count(threads: int | None, size: int, hashing: _Hashing) -> int:
    level1_blocks = -(-size // (BLOCK_SIZE * hashing.hashes_per_block))
    if threads is None:
        try:
            cpus = len(os.sched_getaffinity(0))
        except (AttributeError, OSError):
            cpus = os.cpu_count() or 1
        threads = min(cpus, _MAX_AUTO_WORKERS, max(1, size // _PARALLEL_MIN_BYTES))
    return max(1, min(threads, level1_blocks))


def _hash_file(fd: int, hashing: _Hashing, size: int, workers: int) -> bytes:
    """The file's lowest tree level that fits the workers' split: level 0 for files of one block, else level 1."""
    if size <= BLOCK_SIZE:
        data = _read_exactly(fd, 0, size)
        return hashing.new(data + _ZERO_BLOCK[size:]).digest() if size else b""
    span = BLOCK_SIZE * hashing.hashes_per_block  # data bytes under one level-1 hash
    level1_blocks = -(-size // span)
    bounds = [level1_blocks * k // workers * span for k in range(workers)] + [size]
    ranges = list(zip(bounds[:-1], bounds[1:]))
    if len(ranges) == 1:
        return _hash_range(fd, hashing, 0, size)
    if _fork_is_safe():
        return _hash_ranges_forked(fd, hashing, ranges)
    with ThreadPoolExecutor(max_workers=len(ranges) - 1) as pool:
        futures = [pool.submit(_hash_range, fd, hashing, start, end) for start, end in ranges[1:]]
        first = _hash_range(fd, hashing, ranges[0][0], ranges[0][1])
        return first + b"".join(future.result() for future in futures)


def _read_exactly(fd: int, offset: int, size: int) -> bytes:
    data = os.pread(fd, size, offset)
    while len(data) < size:
        more = os.pread(fd, size - len(data), offset + len(data))
        if not more:
            raise ComposefsError("file shrank while its fs-verity digest was computed (short read at offset %d)" % (offset + len(data)))
        data += more
    return data


def _hash_range(fd: int, hashing: _Hashing, start: int, end: int) -> bytes:
    """Level-1 hashes of the data in ``[start, end)``: ``start`` on a level-1 boundary, ``end`` too or EOF.

    Hot path (bench/bench_fsverity.py): one reused buffer filled by preadv, level-0 hashes of a
    whole buffer in one C-level loop.
    """
    view = memoryview(bytearray(_READ_SIZE))
    level1 = []
    offset = start
    while offset < end:
        want = min(_READ_SIZE, end - offset)
        got = _fill(fd, view[:want], offset)
        if got < want:
            raise ComposefsError("file shrank while its fs-verity digest was computed (short read at offset %d)" % (offset + got))
        if want % BLOCK_SIZE:
            # Only the file's last block can be partial: zero-pad it.
            padded = want + BLOCK_SIZE - want % BLOCK_SIZE
            view[want:padded] = _ZERO_BLOCK[:padded - want]
            want = padded
        # _READ_SIZE and range bounds are multiples of the level-1 span, so only the file's last
        # level-1 block can be partial: _next_level zero-pads it.
        level1.append(_next_level(hashing, _hash_blocks(hashing, view, 0, want)))
        offset += _READ_SIZE
    return b"".join(level1)


def _fill(fd: int, view, offset: int) -> int:
    """Read into ``view`` from ``offset`` until it is full or EOF; return the bytes read."""
    done = 0
    while done < len(view):
        count = os.preadv(fd, [view[done:]], offset + done)
        if not count:
            break
        done += count
    return done


def _fork_is_safe() -> bool:
    """Forking copies only the calling thread: it is safe only when no other thread is running."""
    return hasattr(os, "fork") and threading.active_count() == 1


def _hash_range_mapped(fd: int, hashing: _Hashing, start: int, end: int) -> bytes:
    """``_hash_range`` reading through a read-only mapping, which saves copying the data.

    Only for worker processes: touching a mapped page past the end of a file that shrank
    raises SIGBUS, which kills the process. Falls back to ``_hash_range`` when the file cannot
    be mapped.
    """
    length = end - start
    try:
        mapped = mmap.mmap(fd, length, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ, offset=start)
    except (OSError, ValueError):
        return _hash_range(fd, hashing, start, end)
    view = memoryview(mapped)
    try:
        level1 = []
        for offset in range(0, length, _READ_SIZE):
            stop = min(offset + _READ_SIZE, length)
            whole = stop - (stop - offset) % BLOCK_SIZE
            level0 = _hash_blocks(hashing, view, offset, whole)
            if whole < stop:  # the file's last block, zero-padded
                level0 += hashing.new(view[whole:stop].tobytes() + _ZERO_BLOCK[stop - whole:]).digest()
            level1.append(_next_level(hashing, level0))
        return b"".join(level1)
    finally:
        view.release()
        mapped.close()


def _hash_ranges_forked(fd: int, hashing: _Hashing, ranges) -> bytes:
    """Hash each range in a forked child process that writes its level-1 hashes to a pipe.

    The children read through mmap (faster than copying); this process only collects, so a
    file that shrinks under a mapping kills a child (reported as ComposefsError), never the caller.
    """
    digest_size = BLOCK_SIZE // hashing.hashes_per_block
    children = []  # (pid or None once reaped, read end of its pipe)
    try:
        for start, end in ranges:
            read_end, write_end = os.pipe()
            pid = os.fork()
            if pid == 0:  # child: must never return into the caller's code
                status = 1
                try:
                    os.close(read_end)
                    _write_all(write_end, _hash_range_mapped(fd, hashing, start, end))
                    status = 0
                finally:
                    os._exit(status)  # pylint: disable=protected-access
            os.close(write_end)
            children.append((pid, read_end))
        parts = []
        for index, (pid, read_end) in enumerate(children):
            parts.append(_read_all(read_end))
            status = os.waitpid(pid, 0)[1]
            children[index] = (None, read_end)
            start, end = ranges[index]
            if status != 0 or len(parts[-1]) != -(-(end - start) // (BLOCK_SIZE * hashing.hashes_per_block)) * digest_size:
                raise ComposefsError("fs-verity worker process for bytes %d-%d failed (%s); was the file changed while "
                                     "its digest was computed?" % (start, end, _describe_wait_status(status)))
        return b"".join(parts)
    finally:
        for pid, read_end in children:
            os.close(read_end)
            if pid is not None:
                try:
                    os.kill(pid, signal.SIGKILL)
                    os.waitpid(pid, 0)
                except OSError:
                    pass


def _describe_wait_status(status: int) -> str:
    if os.WIFSIGNALED(status):
        return "killed by signal %d" % os.WTERMSIG(status)
    if os.WIFEXITED(status):
        return "exit status %d" % os.WEXITSTATUS(status)
    return "wait status %d" % status


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _read_all(fd: int) -> bytes:
    chunks = []
    while True:
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


# --- Kernel ioctls --------------------------------------------------------------------------------


def measure_fd(fd: int, algorithm: HashAlgorithm) -> bytes | None:
    """Return the kernel's fs-verity digest of open file ``fd``, or None when it has none to give.

    None means: verity is not enabled on the file (ENODATA), the kernel or filesystem does not
    support it (ENOTTY, EOPNOTSUPP, EINVAL), or the file's verity uses another algorithm than
    ``algorithm`` (its digest is not the one asked for; compute it instead). Other errors raise
    ComposefsError.
    """
    _hashing(algorithm)
    buf = bytearray(_MEASURE_HEAD.size + MAX_DIGEST_SIZE)
    _MEASURE_HEAD.pack_into(buf, 0, 0, MAX_DIGEST_SIZE)
    try:
        fcntl.ioctl(fd, FS_IOC_MEASURE_VERITY, buf, True)
    except OSError as err:
        if err.errno == errno.ENODATA or err.errno in _NO_VERITY_SUPPORT:
            return None
        raise ComposefsError("cannot measure the fs-verity digest (FS_IOC_MEASURE_VERITY): %s" % os.strerror(err.errno or 0)) from err
    kernel_id, size = _MEASURE_HEAD.unpack_from(buf, 0)
    if kernel_id != algorithm.kernel_id or size != algorithm.digest_size:
        return None
    return bytes(buf[_MEASURE_HEAD.size:_MEASURE_HEAD.size + size])


def enable_fd(fd: int, algorithm: HashAlgorithm) -> bool:
    """Enable fs-verity on open file ``fd``: True when enabled (or already was), False when unsupported.

    The fd must be opened read-only and no writable fd or mapping of the file may exist anywhere.
    Other failures raise ComposefsError. Enabling reads the whole file to build the tree; an
    already enabled file keeps its algorithm (check it with ``measure_fd``).
    """
    _hashing(algorithm)
    arg = _ENABLE_ARG.pack(1, algorithm.kernel_id, BLOCK_SIZE, 0, 0, 0, 0, 0)
    try:
        fcntl.ioctl(fd, FS_IOC_ENABLE_VERITY, arg)
    except OSError as err:
        if err.errno == errno.EEXIST:
            return True
        if err.errno in (errno.ENOTTY, errno.EOPNOTSUPP):
            return False
        if err.errno == errno.ETXTBSY:
            raise ComposefsError("cannot enable fs-verity: the file is open for writing (ETXTBSY); close every writable "
                                 "descriptor and mapping of it, then enable verity through a read-only descriptor") from err
        raise ComposefsError("cannot enable fs-verity (FS_IOC_ENABLE_VERITY): %s" % os.strerror(err.errno or 0)) from err
    return True
