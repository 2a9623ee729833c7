# -*- coding: utf-8 -*-
# Copyright: (c) 2026, bootc.composefs maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""fs-verity file digests: the names of composefs repository objects.

Layer: formats. Spec: ``composefs-repo.md`` section 7; upstream: composefs-rs
``crates/composefs/src/fsverity/{digest,ioctl,hashvalue}.rs``.

Merkle tree. The file data is cut into 4096-byte blocks, the last one zero-padded; each block is
hashed (level 0). The hashes of a level are concatenated, cut into 4096-byte blocks (128 sha256 or
64 sha512 hashes per block, the last block zero-padded) and hashed again, giving the next level,
until a level holds exactly one hash: the root. A file of at most one block has the hash of that
padded block as root; an empty file has an all-zero root of the hash's size.

Descriptor. The digest is the hash of this 256-byte record (integers little-endian):

====== ==== ============== ===============================================
offset size field          value
====== ==== ============== ===============================================
0      1    version        1
1      1    hash_algorithm 1 = sha256, 2 = sha512 (the kernel id)
2      1    log_blocksize  12
3      1    salt_size      0
4      4    sig_size       0 (u32, reserved)
8      8    data_size      file length in bytes (u64)
16     64   root_hash      root, zero-padded to 64 bytes
80     32   salt           zeros
112    144  reserved       zeros
====== ==== ============== ===============================================

Kernel interfaces (``linux/fsverity.h``):

- ``FS_IOC_ENABLE_VERITY`` (``0x40806685``) takes the 128-byte ``fsverity_enable_arg``
  ``{u32 version=1, u32 hash_algorithm, u32 block_size=4096, u32 salt_size=0, u64 salt_ptr=0,
  u32 sig_size=0, u32 reserved, u64 sig_ptr=0, u64 reserved[11]}``. The fd must be read-only and
  no writable fd or shared writable mapping of the file may exist (else ``ETXTBSY``).
- ``FS_IOC_MEASURE_VERITY`` (``0xc0046686``) fills ``{u16 digest_algorithm, u16 digest_size,
  u8 digest[]}``; ``digest_size`` is the buffer size on input. ``ENODATA`` means verity is not
  enabled on the file; ``ENOTTY``/``EOPNOTSUPP`` that the filesystem (or kernel) lacks support.

Not supported: salts, block sizes other than 4096, builtin signatures, hash algorithms other than
sha256 and sha512 (composefs uses none of them).
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import struct
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
MAX_DIGEST_SIZE = 64  # root_hash field width in the descriptor
# version, hash_algorithm, log_blocksize, salt_size, sig_size, data_size, root_hash (zero-padded);
# the remaining 176 bytes (salt + reserved) are zero.
_DESCRIPTOR_HEAD = struct.Struct("<BBBBIQ64s")
_DESCRIPTOR_TAIL = bytes(DESCRIPTOR_SIZE - _DESCRIPTOR_HEAD.size)
_ZERO_BLOCK = bytes(BLOCK_SIZE)

# --- Kernel ioctls ----------------------------------------------------------------------------

FS_IOC_ENABLE_VERITY = 0x40806685
FS_IOC_MEASURE_VERITY = 0xC0046686
# struct fsverity_enable_arg: version, hash_algorithm, block_size, salt_size, salt_ptr, sig_size,
# reserved1, sig_ptr, then reserved2[11] (88 zero bytes) to 128 bytes.
_ENABLE_ARG = struct.Struct("<IIIIQIIQ88x")
# struct fsverity_digest header: digest_algorithm, digest_size (followed by the digest bytes).
_MEASURE_HEAD = struct.Struct("<HH")
_UNSUPPORTED_ERRNOS = frozenset((errno.ENOTTY, errno.EOPNOTSUPP, errno.EINVAL))


class HashAlgorithm(NamedTuple):
    """One fs-verity hash algorithm: hashlib name, kernel id (descriptor byte 1), digest length."""

    name: str
    kernel_id: int
    digest_size: int


SHA256 = HashAlgorithm("sha256", 1, 32)
SHA512 = HashAlgorithm("sha512", 2, 64)
ALGORITHMS = (SHA256, SHA512)

_CONSTRUCTORS = {SHA256.kernel_id: hashlib.sha256, SHA512.kernel_id: hashlib.sha512}


def algorithm_by_name(name: str) -> HashAlgorithm:
    """Return the algorithm called ``name`` ("sha256" or "sha512"); FormatError otherwise."""
    for algorithm in ALGORITHMS:
        if algorithm.name == name:
            return algorithm
    raise FormatError("unknown fs-verity hash algorithm %r (expected sha256 or sha512)" % (name,))


def algorithm_by_kernel_id(kernel_id: int) -> HashAlgorithm:
    """Return the algorithm with kernel id ``kernel_id`` (1 or 2); FormatError otherwise."""
    for algorithm in ALGORITHMS:
        if algorithm.kernel_id == kernel_id:
            return algorithm
    raise FormatError("unknown fs-verity hash algorithm id %r (expected 1 = sha256 or 2 = sha512)" % (kernel_id,))


def _constructor(algorithm: HashAlgorithm):
    if algorithm not in ALGORITHMS:
        raise FormatError("unknown fs-verity hash algorithm %r (expected SHA256 or SHA512)" % (algorithm,))
    return _CONSTRUCTORS[algorithm.kernel_id]


def _descriptor_digest(new, algorithm: HashAlgorithm, data_size: int, root: bytes) -> bytes:
    head = _DESCRIPTOR_HEAD.pack(1, algorithm.kernel_id, LG_BLOCK_SIZE, 0, 0, data_size, root)
    return new(head + _DESCRIPTOR_TAIL).digest()


def _hash_blocks(new, buf, start: int, end: int) -> bytes:
    """Concatenated hashes of the whole blocks ``buf[start:end]`` (``end - start`` a multiple of BLOCK_SIZE)."""
    view = memoryview(buf)
    return b"".join([new(view[i:i + BLOCK_SIZE]).digest() for i in range(start, end, BLOCK_SIZE)])


class FsVerityHasher:
    """Incremental fs-verity digest: ``update()`` with chunks of any size, then ``digest()``.

    Unlike the composefs-rs hasher (spec section 7.3), chunks need not be block-aligned: data is
    buffered until a whole block is available.
    """

    def __init__(self, algorithm: HashAlgorithm = SHA256) -> None:
        self.algorithm = algorithm
        self._new = _constructor(algorithm)
        self._size = 0
        self._partial = bytearray()  # data not yet making a whole block (< BLOCK_SIZE bytes)
        self._levels = []  # per tree level: hashes not yet making a whole tree block
        self._counts = []  # per tree level: number of hashes produced so far

    def update(self, data) -> None:
        """Feed the next bytes of the file (any bytes-like object, any length)."""
        view = memoryview(data).cast("B")
        length = len(view)
        if not length:
            return
        self._size += length
        start = 0
        if self._partial:
            take = min(BLOCK_SIZE - len(self._partial), length)
            self._partial += view[:take]
            start = take
            if len(self._partial) < BLOCK_SIZE:
                return
            self._add_hashes(0, self._new(self._partial).digest(), 1)
            self._partial = bytearray()
        whole_end = start + (length - start) // BLOCK_SIZE * BLOCK_SIZE
        if whole_end > start:
            self._add_hashes(0, _hash_blocks(self._new, view, start, whole_end), (whole_end - start) // BLOCK_SIZE)
        if whole_end < length:
            self._partial += view[whole_end:]

    def _add_hashes(self, level: int, hashes: bytes, count: int) -> None:
        while True:
            if level == len(self._levels):
                self._levels.append(bytearray())
                self._counts.append(0)
            pending = self._levels[level]
            pending += hashes
            self._counts[level] += count
            whole = len(pending) // BLOCK_SIZE * BLOCK_SIZE
            if not whole:
                return
            hashes = _hash_blocks(self._new, pending, 0, whole)
            count = whole // BLOCK_SIZE
            del pending[:whole]
            level += 1

    def digest(self) -> bytes:
        """Return the fs-verity digest of everything fed so far (the hasher stays usable)."""
        new = self._new
        size = self._size
        levels = [bytearray(pending) for pending in self._levels]
        counts = list(self._counts)
        if self._partial:
            hashes = new(bytes(self._partial) + _ZERO_BLOCK[len(self._partial):]).digest()
            if not levels:
                levels.append(bytearray())
                counts.append(0)
            levels[0] += hashes
            counts[0] += 1
        root = _finish_levels(new, levels, counts)
        return _descriptor_digest(new, self.algorithm, size, root)

    def hexdigest(self) -> str:
        """Return ``digest()`` as lowercase hex (the repository object id)."""
        return self.digest().hex()


def _finish_levels(new, levels, counts) -> bytes:
    """Root hash from per-level pending hashes (each shorter than a block) and hash counts."""
    if not levels:
        return bytes(MAX_DIGEST_SIZE)
    level = 0
    while True:
        pending = levels[level]
        if counts[level] == 1:
            return bytes(pending)
        if pending:
            block = bytes(pending) + _ZERO_BLOCK[len(pending):]
            if level + 1 == len(levels):
                levels.append(bytearray())
                counts.append(0)
            levels[level + 1] += new(block).digest()
            counts[level + 1] += 1
        level += 1


def digest_bytes(data, algorithm: HashAlgorithm = SHA256) -> bytes:
    """Return the fs-verity digest of ``data`` (any bytes-like object)."""
    hasher = FsVerityHasher(algorithm)
    hasher.update(data)
    return hasher.digest()


_READ_SIZE = 1 << 20


def digest_fileobj(fileobj, algorithm: HashAlgorithm = SHA256) -> bytes:
    """Return the fs-verity digest of what ``fileobj`` yields from its position to EOF."""
    hasher = FsVerityHasher(algorithm)
    while True:
        chunk = fileobj.read(_READ_SIZE)
        if not chunk:
            break
        hasher.update(chunk)
    return hasher.digest()


def digest_path(path, algorithm: HashAlgorithm = SHA256, threads: int | None = None, use_kernel: bool = True) -> bytes:
    """Return the fs-verity digest of the file at ``path``.

    With ``use_kernel`` the kernel's measurement is returned when the file has fs-verity enabled
    with ``algorithm``; otherwise the digest is computed.
    """
    _constructor(algorithm)
    try:
        with open(path, "rb") as fileobj:
            if use_kernel:
                measured = measure_fd(fileobj.fileno(), algorithm)
                if measured is not None:
                    return measured
            return digest_fileobj(fileobj, algorithm)
    except OSError as err:
        raise ComposefsError("cannot read file for fs-verity digest: %s" % (err.strerror or err,), path=str(path)) from err


def measure_fd(fd: int, algorithm: HashAlgorithm) -> bytes | None:
    """Return the kernel's fs-verity digest of open file ``fd``, or None when it has none.

    None means: verity is not enabled on the file (ENODATA), the filesystem or kernel does not
    support it (ENOTTY, EOPNOTSUPP, EINVAL), or the file's verity uses another algorithm than
    ``algorithm`` (its digest is then not the one asked for). Other errors raise ComposefsError.
    """
    _constructor(algorithm)
    buf = bytearray(_MEASURE_HEAD.size + MAX_DIGEST_SIZE)
    _MEASURE_HEAD.pack_into(buf, 0, 0, MAX_DIGEST_SIZE)
    try:
        fcntl.ioctl(fd, FS_IOC_MEASURE_VERITY, buf, True)
    except OSError as err:
        if err.errno == errno.ENODATA or err.errno in _UNSUPPORTED_ERRNOS:
            return None
        raise ComposefsError("FS_IOC_MEASURE_VERITY failed: %s" % os.strerror(err.errno or 0)) from err
    kernel_id, size = _MEASURE_HEAD.unpack_from(buf, 0)
    if kernel_id != algorithm.kernel_id or size != algorithm.digest_size:
        return None
    return bytes(buf[_MEASURE_HEAD.size:_MEASURE_HEAD.size + size])


def enable_fd(fd: int, algorithm: HashAlgorithm) -> bool:
    """Enable fs-verity on open file ``fd``; True when enabled (or already), False when unsupported.

    The fd must be opened read-only and no writable fd or mapping of the file may exist anywhere
    (ETXTBSY otherwise). Other failures raise ComposefsError.
    """
    _constructor(algorithm)
    arg = bytearray(_ENABLE_ARG.pack(1, algorithm.kernel_id, BLOCK_SIZE, 0, 0, 0, 0, 0))
    try:
        fcntl.ioctl(fd, FS_IOC_ENABLE_VERITY, arg, False)
    except OSError as err:
        if err.errno == errno.EEXIST:
            return True
        if err.errno in (errno.ENOTTY, errno.EOPNOTSUPP):
            return False
        if err.errno == errno.ETXTBSY:
            raise ComposefsError("cannot enable fs-verity: the file is still open for writing somewhere "
                                 "(close every writable descriptor and mapping, then reopen it read-only)") from err
        raise ComposefsError("FS_IOC_ENABLE_VERITY failed: %s" % os.strerror(err.errno or 0)) from err
    return True
