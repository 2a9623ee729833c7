# -*- coding: utf-8 -*-
# Copyright: (c) 2026, bootc.composefs maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The uncompressed tar of a layer, read, checked and decompressed on a thread of its own.

Layer: oci. Upstream: composefs-rs ``crates/composefs-oci/src/layer.rs`` (``decompress_async``)
and ``skopeo.rs`` (``ensure_layer``: the blob is decompressed while the tar is split, the
transfer's verdict awaited before the layer stream is registered).

:class:`LayerTar` takes a source's layer reader (``source.py``) and hands the importer the
uncompressed tar as a sequence of ``bytes`` chunks (:meth:`LayerTar.next_chunk`). A thread of
its own does everything that works on whole buffers: reading the source (which hashes the blob
as it reads it), inflating it (``gzip`` by ``zlib``, which also checks each member's CRC-32 and
length; ``zstd`` by ``formats/zstd.py``), and hashing the tar for the diff_id. These calls
release the GIL, so they run on the second CPU while the importer's thread parses the tar and
stores objects (bench/bench_pull.py: about a third of an import's CPU time moves there). At most
``QUEUE_CHUNKS`` chunks wait, which bounds the memory.

The last chunk is followed by the end (``b""``) only after the checks, in this order: the
source's verdict on the bytes (``finish``: size, digest, a failed transfer), then the diff_id of
the tar. An error is raised from :meth:`next_chunk` in the importer's thread; a decompression
error or a malformed tar is reported as the source's verdict when the bytes were not what the
source promised (a corrupted or truncated blob is a digest mismatch or a transfer failure, not
"bad gzip data"). :meth:`LayerTar.close` stops the thread (waking a reader waiting for a pipe)
and closes the source's reader; it is safe at any point.
"""

from __future__ import annotations

import hashlib
import queue
import threading
import zlib

from ansible_collections.bootc.composefs.plugins.module_utils.errors import ComposefsError, FormatError
from ansible_collections.bootc.composefs.plugins.module_utils.formats import zstd
from ansible_collections.bootc.composefs.plugins.module_utils.oci import digest as oci_digest

__all__ = ["LayerTar", "DECOMPRESSION_ERRORS", "blame_reader"]

READ_BYTES = 1 << 18  # compressed bytes read per call
CHUNK_BYTES = 1 << 20  # uncompressed bytes per chunk handed over
QUEUE_CHUNKS = 8  # chunks waiting at most (bounds the memory to ~8 MiB)
GZIP_WBITS = 16 + zlib.MAX_WBITS  # gzip wrapper: header parsed, CRC-32 and size checked by zlib
GZIP_MAGIC = b"\x1f\x8b"
JOIN_POLL_SECONDS = 0.05
DECOMPRESSION_ERRORS = (EOFError, zlib.error)
_END = object()


def blame_reader(reader) -> ComposefsError | None:
    """After a decompression or tar error: the source's verdict on its bytes, when they were wrong (else None)."""
    try:
        reader.finish()
    except ComposefsError as err:
        return err
    except (OSError, EOFError):
        pass
    return None


def _gzip_members(read):
    """Yield the decompressed bytes of the concatenated gzip members ``read(n)`` returns (NUL padding allowed after them)."""
    data = read(READ_BYTES)
    while data:
        if data.startswith(b"\0"):
            data = data.lstrip(b"\0") or read(READ_BYTES)
            continue
        if len(data) < 2:
            data += read(READ_BYTES)
        if not data.startswith(GZIP_MAGIC):
            raise zlib.error("not a gzip member (magic %r)" % data[:2])
        inflater = zlib.decompressobj(GZIP_WBITS)
        while True:
            out = inflater.decompress(data, CHUNK_BYTES)
            if out:
                yield out
            while inflater.unconsumed_tail and not inflater.eof:
                out = inflater.decompress(inflater.unconsumed_tail, CHUNK_BYTES)
                if out:
                    yield out
            if inflater.eof:
                data = inflater.unused_data or read(READ_BYTES)
                break
            data = read(READ_BYTES)
            if not data:
                raise EOFError("compressed data ended before the end-of-stream marker")


def _plain(readinto):
    """Chunks of an uncompressed stream, each a fresh ``bytearray`` filled by ``readinto`` (no copy after the read)."""
    while True:
        chunk = bytearray(CHUNK_BYTES)
        view = memoryview(chunk)
        filled = 0
        while filled < CHUNK_BYTES:
            count = readinto(view[filled:])
            if not count:
                break
            filled += count
        view.release()
        if not filled:
            return
        if filled < CHUNK_BYTES:
            del chunk[filled:]
        yield chunk
        if filled < CHUNK_BYTES:
            return


def _zstd(reader):
    inflater = zstd.open_reader(reader)
    try:
        while True:
            data = inflater.read(CHUNK_BYTES)
            if not data:
                return
            yield data
    finally:
        if inflater is not reader:
            inflater.close()  # may end a zstd child process


class LayerTar:
    """The uncompressed tar of ``reader`` (compression ``none``/``gzip``/``zstd``), as chunks (module docstring).

    ``diff_id``: the sha256 the tar must have; None when the reader's own check already is that
    (an uncompressed blob whose digest is the diff_id). ``what`` names the layer in messages.
    """

    def __init__(self, reader, compression: str, diff_id: str | None, what: str) -> None:
        self.reader = reader
        self.compression = compression
        self.diff_id = diff_id
        self.what = what
        self.bytes_read = 0  # blob bytes behind the chunks handed out so far
        self.failed = False  # next_chunk raised the reading thread's error
        self._queue = queue.Queue(QUEUE_CHUNKS)
        self._stop = threading.Event()
        self._done = False
        self._thread = threading.Thread(target=self._produce, name="layer-reader", daemon=True)
        self._thread.start()

    def _chunks(self):
        if self.compression == "gzip":
            return _gzip_members(self.reader.read)
        if self.compression == "zstd":
            return _zstd(self.reader)
        return _plain(self.reader.readinto)

    def _put(self, item) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=JOIN_POLL_SECONDS)
                return True
            except queue.Full:
                continue
        return False

    def _produce(self) -> None:
        hasher = hashlib.sha256() if self.diff_id is not None else None
        try:
            try:
                for chunk in self._chunks():
                    if hasher is not None:
                        hasher.update(chunk)
                    if not self._put((chunk, self.reader.bytes_read)):
                        return
                self.reader.finish()
            except DECOMPRESSION_ERRORS + (FormatError,) as err:
                blamed = blame_reader(self.reader)
                if blamed is not None:
                    raise blamed from None
                message = err.message if isinstance(err, FormatError) else str(err)
                raise FormatError("layer blob %s cannot be decompressed (%s): %s" % (self.what, self.compression, message),
                                  path=getattr(self.reader, "path", None)) from None
            if hasher is not None:
                oci_digest.check_digest("sha256:" + hasher.hexdigest(), self.diff_id, "uncompressed layer %s" % self.what,
                                        path=getattr(self.reader, "path", None))
            self._put((_END, self.reader.bytes_read))
        except BaseException as err:  # pylint: disable=broad-except
            self._put((err, self.reader.bytes_read))

    def next_chunk(self) -> bytes:
        """The next chunk of the tar; ``b""`` at its end (after every check passed); the reading thread's error otherwise."""
        if self._done:
            return b""
        item, self.bytes_read = self._queue.get()
        if item is _END:
            self._done = True
            self._thread.join()
            return b""
        if isinstance(item, BaseException):
            self._done = self.failed = True
            self._thread.join()
            raise item
        return item

    def blame(self) -> ComposefsError | None:
        """After the tar was found malformed: the reading thread's error when the bytes turn out wrong, else None.

        Reads the layer to its end (the source's verdict and the diff_id check come there).
        """
        try:
            while self.next_chunk():
                pass
        except ComposefsError as err:
            return err
        except Exception:  # pylint: disable=broad-except
            return None
        return None

    def _stop_thread(self) -> None:
        self._stop.set()
        interrupt = getattr(self.reader, "interrupt", None)
        if interrupt is not None:
            interrupt()
        while self._thread.is_alive():
            try:
                while True:
                    self._queue.get_nowait()
            except queue.Empty:
                pass
            self._thread.join(JOIN_POLL_SECONDS)

    def close(self) -> None:
        """Stop the reading thread and close the source's reader (abandoning a payload not read to its end)."""
        self._stop_thread()
        self.reader.close()
