# -*- coding: utf-8 -*-
# Copyright: (c) 2026, bootc.composefs maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Streaming zstd decompression: a readable file object over a compressed one (``zstd.open_reader``).

Layer: formats. OCI layers compressed with zstd can be hundreds of MiB; the reader inflates them as
they are read, holding one frame's window (pure Python) or the accelerator's buffers, never the
whole stream. The stream format is the one ``zstd.py`` describes: any number of zstd and skippable
frames, back to back.

How a read flows:

| step | who | what |
|---|---|---|
| 1 | ``zstd_frame.StreamScanner`` | reads the compressed file object, checks framing as ``scan_frames`` does, drops skippable frames |
| 2 | :class:`LimitedScanner` | refuses a frame whose declared content size takes the total past ``max_size``, before inflating it |
| 3 | backend ``inflate_stream(scanner, max_size)`` | output pieces: the pure decoder's block by block; accelerators get raw frames |
| 4 | :class:`ZstdReader` | hands the pieces out through ``read``/``readinto``, counts them against ``max_size`` |

Errors are those of ``decompress``: ``FormatError`` for bad data (offsets are stream offsets where
known), ``ToolError`` when the ``zstd`` binary could not do its part; exceptions raised by the
compressed file object itself pass through unchanged. A read that meets an error raises it (the
output it had gathered is dropped: a short read always means the end of the stream); output
handed out by earlier reads is the stream's content up to there. Once failed, every further read
raises the same error again.
"""

from __future__ import annotations

import io
from typing import BinaryIO, Callable, Iterator, Optional

from ansible_collections.bootc.composefs.plugins.module_utils.errors import FormatError
from ansible_collections.bootc.composefs.plugins.module_utils.formats import zstd_frame

__all__ = ["ZstdReader", "LimitedScanner", "RawFrameSource", "iter_raw_frames", "iter_raw_frame", "too_large"]

# Raw frame bytes are handed to accelerators in pieces of about this size.
RAW_PIECE_BYTES = 1 << 20


def too_large(max_size: int, offset: Optional[int]) -> FormatError:
    """The error for output beyond ``max_size`` (same text for one-shot and streaming decompression)."""
    return FormatError("zstd data inflates to more than max_size (%d bytes)" % max_size, offset=offset)


class LimitedScanner(zstd_frame.StreamScanner):
    """A scanner that refuses, at its header, a frame whose declared size takes the total past ``max_size``."""

    def __init__(self, fileobj: BinaryIO, max_size: Optional[int] = None) -> None:
        super().__init__(fileobj)
        self.max_size = max_size
        self._declared = 0

    def next_frame(self):
        header = super().next_frame()
        if header is not None and self.max_size is not None and header.content_size is not None:
            self._declared += header.content_size
            if self._declared > self.max_size:
                raise too_large(self.max_size, self.frame_start)
        return header


def iter_raw_frame(scanner: zstd_frame.StreamScanner) -> Iterator[bytes]:
    """Yield the raw bytes of the frame whose header ``scanner`` just returned, up to its checksum, in pieces."""
    pending = [scanner.header_bytes]
    size = len(scanner.header_bytes)
    while True:
        block = scanner.next_block()
        pending.append(block.raw)
        size += len(block.raw)
        if block.last:
            break
        if size >= RAW_PIECE_BYTES:
            yield b"".join(pending)
            pending, size = [], 0
    pending.append(scanner.end_frame())
    yield b"".join(pending)


def iter_raw_frames(scanner: zstd_frame.StreamScanner) -> Iterator[bytes]:
    """Yield the raw bytes of every zstd frame ``scanner`` reads (skippable frames left out), in pieces."""
    while scanner.next_frame() is not None:
        yield from iter_raw_frame(scanner)


class RawFrameSource(io.RawIOBase):
    """A readable file object over raw frame pieces (for accelerators that pull their input)."""

    def __init__(self, pieces: Iterator[bytes]) -> None:
        super().__init__()
        self._pieces = pieces
        self._current = b""
        self._at = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while self._at >= len(self._current):
            self._current = next(self._pieces, b"")
            self._at = 0
            if not self._current:
                return 0
        count = min(len(buffer), len(self._current) - self._at)
        memoryview(buffer).cast("B")[:count] = self._current[self._at:self._at + count]
        self._at += count
        return count


class ZstdReader(io.RawIOBase):
    """The inflated stream of a zstd file object, produced as it is read (see the module docstring).

    ``inflate_stream(scanner, max_size)`` is the backend's generator of output pieces. Closing the
    reader stops the backend (and its ``zstd`` process, if any); it does not close ``fileobj``.
    """

    def __init__(self, fileobj: BinaryIO, inflate_stream: Callable[..., Iterator[bytes]], max_size: Optional[int] = None,
                 backend: str = "") -> None:
        super().__init__()
        self.backend = backend
        self.max_size = max_size
        self.bytes_out = 0
        self._pieces = inflate_stream(LimitedScanner(fileobj, max_size), max_size)
        self._current = b""
        self._at = 0
        self._error = None
        self._done = False

    def readable(self) -> bool:
        return True

    def _refill(self) -> bool:
        """Make ``_current`` hold unread output; False at the end of the stream.

        An error is raised at once, even when the current call has gathered some output (which is
        then dropped): a short read must mean the end of the stream, never a hidden failure.
        """
        if self._error is not None:
            raise self._error
        self._checkClosed()
        while self._at >= len(self._current):
            if self._done:
                return False
            try:
                piece = next(self._pieces, None)
            except Exception as err:
                self._error = err
                raise
            if piece is None:
                self._done = True
                return False
            self.bytes_out += len(piece)
            if self.max_size is not None and self.bytes_out > self.max_size:
                self._error = too_large(self.max_size, None)
                self._pieces.close()
                raise self._error
            self._current = piece
            self._at = 0
        return True

    def readinto(self, buffer) -> int:
        """Fill ``buffer`` with output; fewer bytes only at the end of the stream."""
        view = memoryview(buffer).cast("B")
        filled = 0
        while filled < len(view) and self._refill():
            count = min(len(view) - filled, len(self._current) - self._at)
            view[filled:filled + count] = self._current[self._at:self._at + count]
            self._at += count
            filled += count
        return filled

    def read(self, size: int = -1) -> bytes:
        """Return ``size`` bytes of output (everything left when negative); fewer only at the end."""
        if size is None or size < 0:
            return self.readall()
        pieces = []
        wanted = size
        while wanted and self._refill():
            if self._at == 0 and len(self._current) <= wanted:
                piece = self._current
            else:
                piece = self._current[self._at:self._at + wanted]
            self._at += len(piece)
            wanted -= len(piece)
            pieces.append(piece)
        return b"".join(pieces)

    def readall(self) -> bytes:
        """Return all output left."""
        pieces = []
        while self._refill():
            pieces.append(self._current[self._at:] if self._at else self._current)
            self._at = len(self._current)
        return b"".join(pieces)

    def close(self) -> None:
        if not self.closed:
            self._pieces.close()
        super().close()
