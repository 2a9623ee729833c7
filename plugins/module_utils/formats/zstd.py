# -*- coding: utf-8 -*-
# Copyright: (c) 2026, bootc.composefs maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Zstandard (RFC 8878) compression for splitstreams: the public API and the backend chooser.

Layer: formats. composefs-rs compresses each splitstream section (named refs, stream body) as one
zstd frame, level 3, no checksum, written by a streaming encoder (so no content size); an empty
section is still one frame, e.g. ``28 b5 2f fd 20 00 01 00 00``. Readers must accept several
concatenated frames (spec ``composefs-repo.md`` section 8.7).

A zstd stream, as this module reads it (all integers little-endian):

| part | size | meaning |
|---|---|---|
| frame | variable | zstd frame (magic ``28 b5 2f fd``) or skippable frame (magic ``5? 2a 4d 18``) |
| frame | variable | ... any number more, back to back; the output is the concatenation |

The layout is described, table by table, next to the code that reads it:

| file | describes |
|---|---|
| ``zstd_frame.py`` | frame header, window size, skippable frames, block headers; the streaming frame scanner |
| ``zstd_checksum.py`` | the content checksum (XXH64) |
| ``zstd_block.py`` | compressed blocks: literals section, sequences section, sequence execution |
| ``zstd_entropy.py`` | FSE table descriptions and decoding, Huffman tree descriptions and streams |
| ``zstd_python.py`` | the pure-Python codec built from them, and what its encoder writes |
| ``zstd_stream.py`` | the streaming reader (:func:`open_reader`): how a read flows, its error rules |
| ``zstd_cli.py`` | the ``zstd`` binary as a backend |

``decompress`` first walks the frame and block headers in pure Python (cheap), so every backend
reports truncation, bad magic, reserved bits and dictionaries the same way, with an offset, and a
declared content size larger than ``max_size`` is refused before anything is inflated. Then one
backend inflates. ``open_reader`` does the same incrementally over a file object: the frame and
block headers are checked as they are read (``zstd_frame.StreamScanner``), with the same messages,
and the backend inflates what has been checked. Backends, tried in this order once, at first use:

| name | what | ``decompress`` | ``open_reader`` |
|---|---|---|---|
| ``compression.zstd`` | standard library, Python >= 3.14 | a decompressor per frame | a decompressor per frame fed block by block |
| ``zstandard`` | python-zstandard | ``stream_reader(read_across_frames=True)`` (older: per frame) | the same, pulling the checked frames |
| ``pyzstd`` | pyzstd | as ``compression.zstd`` | as ``compression.zstd`` |
| ``zstd-cli`` | the ``zstd`` binary (``zstd_cli.py``) | whole stream from a temporary file | frames piped in as they are read (one thread, a selector) |
| ``python`` | ``zstd_python.py``, always available | each frame decoded into one buffer | block by block, one window of history per frame |

Output is pulled from every backend in bounded pieces (``READ_CHUNK_SIZE``), so ``max_size`` stops
a decompression bomb early.

Every backend writes frames like composefs-rs does: no checksum; ``compress`` levels are libzstd's
(1..22, negative = fast, 0 = default 3). Accelerator exceptions are turned into ``FormatError``
(bad input) or ``ToolError`` (the ``zstd`` binary could not run, was killed,
failed to compress, or failed to inflate data the pure-Python decoder accepts: when ``zstd -d``
fails, the pure-Python decoder tells bad data from a broken tool). Dictionaries are not supported
by any backend.
"""

from __future__ import annotations

import shutil
from typing import TYPE_CHECKING, BinaryIO, Callable, List, Optional

from ansible_collections.bootc.composefs.plugins.module_utils.errors import ComposefsError, FormatError
from ansible_collections.bootc.composefs.plugins.module_utils.formats import zstd_frame

# The backends' modules and zstd_stream (streaming, size errors) are imported where they are used:
# inflating a splitstream section with an accelerator needs none of them (bench/bench_status.py).
if TYPE_CHECKING:
    from ansible_collections.bootc.composefs.plugins.module_utils.formats import zstd_stream

__all__ = [
    "BACKEND_NAMES",
    "DEFAULT_LEVEL",
    "MIN_LEVEL",
    "MAX_LEVEL",
    "decompress",
    "open_reader",
    "compress",
    "backend_name",
    "use_backend",
    "available_backends",
]

# --- levels ----------------------------------------------------------------------------------------
DEFAULT_LEVEL = 3
MAX_LEVEL = 22
# libzstd's most negative ("fast") level; level 0 means the default, as in libzstd.
MIN_LEVEL = -131072

# --- backend chooser -----------------------------------------------------------------------------
BACKEND_NAMES = ("compression.zstd", "zstandard", "pyzstd", "zstd-cli", "python")
# Output is pulled from streaming decoders in pieces of at most this size.
READ_CHUNK_SIZE = 1 << 20


class _Backend:
    """One way of inflating and deflating: a name and three callables."""

    def __init__(self, name: str, decompress_frames: Callable, compress_data: Callable, inflate_stream: Callable) -> None:
        self.name = name
        self.decompress_frames = decompress_frames   # (view, spans, max_size) -> bytes
        self.compress_data = compress_data           # (data, level) -> bytes
        self.inflate_stream = inflate_stream         # (scanner, max_size) -> iterator of output pieces


# --- compression.zstd and pyzstd share the decompressor API --------------------------------------

def _per_frame_backend(name: str, module) -> _Backend:
    error_types = (module.ZstdError,)

    def decompress_frames(view, spans, max_size):
        pieces = []
        total = 0
        for span in spans:
            if span.header is None:
                continue
            decompressor = module.ZstdDecompressor()
            limit = -1 if max_size is None else max_size - total + 1
            try:
                piece = decompressor.decompress(view[span.start:span.end], limit)
            except error_types as err:
                raise FormatError("zstd frame rejected by %s: %s" % (name, err), offset=span.start) from None
            total += len(piece)
            if max_size is not None and total > max_size:
                from ansible_collections.bootc.composefs.plugins.module_utils.formats import zstd_stream  # pylint: disable=import-outside-toplevel
                raise zstd_stream.too_large(max_size, span.start)
            if not decompressor.eof or decompressor.unused_data:
                raise FormatError("zstd frame does not end where its last block ends (%s)" % name, offset=span.start)
            pieces.append(piece)
        return b"".join(pieces)

    def compress_data(data, level):
        try:
            return module.compress(data, level)
        except error_types as err:
            raise ComposefsError("%s could not compress: %s" % (name, err)) from None

    def inflate_frame(scanner):
        from ansible_collections.bootc.composefs.plugins.module_utils.formats import zstd_stream  # pylint: disable=import-outside-toplevel
        decompressor = module.ZstdDecompressor()
        start = scanner.frame_start
        try:
            for raw in zstd_stream.iter_raw_frame(scanner):
                if decompressor.eof:
                    raise FormatError("zstd frame does not end where its last block ends (%s)" % name, offset=start)
                piece = decompressor.decompress(raw, READ_CHUNK_SIZE)
                while True:
                    if piece:
                        yield piece
                    if decompressor.eof or decompressor.needs_input:
                        break
                    piece = decompressor.decompress(b"", READ_CHUNK_SIZE)
        except error_types as err:
            raise FormatError("zstd frame rejected by %s: %s" % (name, err), offset=start) from None
        if not decompressor.eof or decompressor.unused_data:
            raise FormatError("zstd frame does not end where its last block ends (%s)" % name, offset=start)

    def inflate_stream(scanner, _max_size):
        while scanner.next_frame() is not None:
            yield from inflate_frame(scanner)

    return _Backend(name, decompress_frames, compress_data, inflate_stream)


def _probe_stdlib() -> Optional[_Backend]:
    try:
        from compression import zstd as module  # pylint: disable=import-outside-toplevel
    except ImportError:
        return None
    return _per_frame_backend("compression.zstd", module)


def _probe_pyzstd() -> Optional[_Backend]:
    try:
        import pyzstd as module  # pylint: disable=import-outside-toplevel
    except ImportError:
        return None
    return _per_frame_backend("pyzstd", module)


# --- zstandard -------------------------------------------------------------------------------------

def _probe_zstandard() -> Optional[_Backend]:
    try:
        import zstandard as module  # pylint: disable=import-outside-toplevel
    except ImportError:
        return None
    name = "zstandard"

    def readers(view, spans):
        try:
            yield module.ZstdDecompressor().stream_reader(bytes(view), read_across_frames=True)
        except TypeError:
            # Old python-zstandard without read_across_frames: one reader per frame.
            for span in spans:
                if span.header is not None:
                    yield module.ZstdDecompressor().stream_reader(bytes(view[span.start:span.end]))

    def decompress_frames(view, spans, max_size):
        # The frames were checked complete by scan_frames: stream_reader alone would take a truncated
        # frame for a short one. read_across_frames follows composefs-rs (several frames per section).
        pieces = []
        total = 0
        try:
            for reader in readers(view, spans):
                while True:
                    want = READ_CHUNK_SIZE if max_size is None else min(READ_CHUNK_SIZE, max_size - total + 1)
                    piece = reader.read(want)
                    if not piece:
                        break
                    total += len(piece)
                    if max_size is not None and total > max_size:
                        from ansible_collections.bootc.composefs.plugins.module_utils.formats import zstd_stream  # pylint: disable=import-outside-toplevel
                        raise zstd_stream.too_large(max_size, None)
                    pieces.append(piece)
        except module.ZstdError as err:
            raise FormatError("zstd data rejected by %s: %s" % (name, err)) from None
        return b"".join(pieces)

    def compress_data(data, level):
        try:
            return module.ZstdCompressor(level=level).compress(data)
        except module.ZstdError as err:
            raise ComposefsError("%s could not compress: %s" % (name, err)) from None

    def stream_readers(scanner):
        # Only checked, complete zstd frames reach python-zstandard (see decompress_frames).
        from ansible_collections.bootc.composefs.plugins.module_utils.formats import zstd_stream  # pylint: disable=import-outside-toplevel
        try:
            yield module.ZstdDecompressor().stream_reader(zstd_stream.RawFrameSource(zstd_stream.iter_raw_frames(scanner)),
                                                          read_across_frames=True, closefd=False)
        except TypeError:
            # Old python-zstandard without read_across_frames: one reader per frame.
            while scanner.next_frame() is not None:
                yield module.ZstdDecompressor().stream_reader(zstd_stream.RawFrameSource(zstd_stream.iter_raw_frame(scanner)))

    def inflate_stream(scanner, _max_size):
        try:
            for reader in stream_readers(scanner):
                with reader:
                    while True:
                        piece = reader.read(READ_CHUNK_SIZE)
                        if not piece:
                            break
                        yield piece
        except module.ZstdError as err:
            raise FormatError("zstd data rejected by %s: %s" % (name, err)) from None

    return _Backend(name, decompress_frames, compress_data, inflate_stream)


# --- the zstd binary -------------------------------------------------------------------------------

def _probe_cli() -> Optional[_Backend]:
    binary = shutil.which("zstd")
    if binary is None:
        return None
    from ansible_collections.bootc.composefs.plugins.module_utils.formats import zstd_cli  # pylint: disable=import-outside-toplevel
    return _Backend("zstd-cli",
                    lambda view, spans, max_size: zstd_cli.decompress(binary, view, spans, max_size),
                    lambda data, level: zstd_cli.compress(binary, data, level),
                    lambda scanner, max_size: zstd_cli.inflate_stream(binary, scanner, max_size))


# --- pure Python -----------------------------------------------------------------------------------

def _probe_python() -> _Backend:
    # pylint: disable-next=import-outside-toplevel
    from ansible_collections.bootc.composefs.plugins.module_utils.formats import zstd_python
    return _Backend("python", zstd_python.decompress_frames, zstd_python.compress,
                    lambda scanner, _max_size: zstd_python.inflate_stream(scanner))


_PROBES = {
    "compression.zstd": _probe_stdlib,
    "zstandard": _probe_zstandard,
    "pyzstd": _probe_pyzstd,
    "zstd-cli": _probe_cli,
    "python": _probe_python,
}
_STATE = {"automatic": None, "pinned": None}


def _backend() -> _Backend:
    if _STATE["pinned"] is not None:
        return _STATE["pinned"]
    if _STATE["automatic"] is None:
        for name in BACKEND_NAMES:
            found = _PROBES[name]()
            if found is not None:
                _STATE["automatic"] = found
                break
    return _STATE["automatic"]


def backend_name() -> str:
    """Name of the backend in use: one of ``BACKEND_NAMES``."""
    return _backend().name


def available_backends() -> List[str]:
    """Names of the backends usable on this host, in the chooser's order."""
    return [name for name in BACKEND_NAMES if _PROBES[name]() is not None]


def use_backend(name: Optional[str]) -> None:
    """Pin a backend by name (tests, benchmarks); ``None`` returns to the automatic choice.

    Raises ``ValueError`` for an unknown name or a backend this host cannot provide.
    """
    if name is None:
        _STATE["pinned"] = None
        return
    if name not in _PROBES:
        raise ValueError("unknown zstd backend %r; expected one of %s" % (name, ", ".join(BACKEND_NAMES)))
    found = _PROBES[name]()
    if found is None:
        raise ValueError("zstd backend %r is not available on this host" % name)
    _STATE["pinned"] = found


# --- public API ------------------------------------------------------------------------------------

def decompress(data, max_size: Optional[int] = None) -> bytes:
    """Inflate every frame of ``data`` (skippable frames are skipped); ``b""`` gives ``b""``.

    ``max_size`` bounds the output (untrusted repositories): ``FormatError`` as soon as the output
    would exceed it, before inflating when a frame header already declares too much.
    """
    view = memoryview(data).cast("B")
    if not len(view):
        return b""
    spans = zstd_frame.scan_frames(view)
    if max_size is not None:
        declared = 0
        for span in spans:
            if span.header is not None and span.header.content_size is not None:
                declared += span.header.content_size
                if declared > max_size:
                    from ansible_collections.bootc.composefs.plugins.module_utils.formats import zstd_stream  # pylint: disable=import-outside-toplevel
                    raise zstd_stream.too_large(max_size, span.start)
    return _backend().decompress_frames(view, spans, max_size)


def open_reader(fileobj: BinaryIO, max_size: Optional[int] = None) -> zstd_stream.ZstdReader:
    """Return a binary file object that inflates the zstd stream read from ``fileobj`` as it is read.

    Every frame is inflated in turn (skippable frames are skipped), with the checks and errors of
    :func:`decompress`, raised when the read reaches the bad data (``zstd_stream.py``). Closing the
    reader does not close ``fileobj``.
    """
    from ansible_collections.bootc.composefs.plugins.module_utils.formats import zstd_stream  # pylint: disable=import-outside-toplevel
    backend = _backend()
    return zstd_stream.ZstdReader(fileobj, backend.inflate_stream, max_size, backend.name)


def compress(data, level: int = DEFAULT_LEVEL) -> bytes:
    """Compress ``data`` into one zstd frame (also for empty input), without checksum."""
    if isinstance(level, bool) or not isinstance(level, int) or not MIN_LEVEL <= level <= MAX_LEVEL:
        raise ValueError("zstd level must be an integer from %d to %d, not %r" % (MIN_LEVEL, MAX_LEVEL, level))
    if level == 0:
        level = DEFAULT_LEVEL
    return _backend().compress_data(bytes(data), level)
