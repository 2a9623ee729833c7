# -*- coding: utf-8 -*-
# Copyright: (c) 2026, bootc.composefs maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The composefs split of a tar layer, in one pass over the archive's bytes (spec ``composefs-repo.md`` §10.2).

Layer: formats. Upstream: composefs-rs ``crates/composefs-oci/src/tar.rs`` (``split_async``).
What the split is (events, the 64-byte rule) is described in ``tar.py``; this file does it.

:func:`split_chunks` reads the archive as a sequence of byte chunks (``next_chunk()``, ``b""`` at
the end: a layer being decompressed, ``oci/layer_reader.py``) and yields the split events; when
given an ``entries`` list it also appends each member's tree entry (``tar_entry.py``), so an
import parses every header once (``tar.iter_layer_entries`` would parse the inline bytes again).
:func:`split_tar` is the same over a binary file object.

Shaped for speed (bench/bench_pull.py imports 24,000 files): headers are read as 512-byte slices
of the current chunk and decoded by ``tar_header.parse_header``'s fast path; a file's content is
handed to ``store_object`` as a :class:`MemberContent` whose ``read_view`` returns memoryviews of
the chunk, so content lying in one chunk is never copied before the object store writes it (only
content spanning chunks is joined).
"""

from __future__ import annotations

import io
from typing import Callable, Iterator

from ansible_collections.bootc.composefs.plugins.module_utils.errors import ComposefsError
from ansible_collections.bootc.composefs.plugins.module_utils.formats.tar_entry import INLINE_CONTENT_MAX, layer_entry_from_tar
from ansible_collections.bootc.composefs.plugins.module_utils.formats.tar_header import describe_name, member_error
from ansible_collections.bootc.composefs.plugins.module_utils.formats.tar_reader import read_header_chain

__all__ = ["INLINE", "EXTERNAL", "INLINE_FLUSH_BYTES", "ChunkStream", "MemberContent", "split_chunks", "split_tar"]

INLINE = "inline"
EXTERNAL = "external"
# Inline bytes are gathered into one event up to this size (bounds memory for huge inline runs).
INLINE_FLUSH_BYTES = 1 << 20
# Bytes asked of a file object per read by split_tar; pieces of inline content copied at a time.
READ_BYTES = 1 << 20
COPY_BYTES = 1 << 16


class ChunkStream:
    """The archive's bytes from successive chunks, read forward only; ``offset`` counts what was consumed.

    A chunk (``bytes`` or a ``bytearray`` nobody changes any more) is used as it is, not copied.
    """

    __slots__ = ("_next_chunk", "_buf", "_view", "_pos", "_base")

    def __init__(self, next_chunk: Callable[[], bytes]) -> None:
        self._next_chunk = next_chunk
        self._buf = b""
        self._view = memoryview(b"")
        self._pos = 0
        self._base = 0  # archive offset of _buf[0]

    @property
    def offset(self) -> int:
        return self._base + self._pos

    def _advance(self) -> bool:
        """Make the next non-empty chunk current; False at the end of the archive's bytes."""
        while True:
            chunk = self._next_chunk()
            if not chunk:
                return False
            self._base += len(self._buf)
            self._buf = chunk if isinstance(chunk, (bytes, bytearray)) else bytes(chunk)
            self._view = memoryview(self._buf)
            self._pos = 0
            return True

    def read_exact(self, size: int) -> bytes:
        """Return the next ``size`` bytes (a ``bytes`` copy); fewer only at the end of the bytes."""
        pos = self._pos
        end = pos + size
        if end <= len(self._buf):
            self._pos = end
            return self._view[pos:end].tobytes()
        parts = []
        need = size
        while need:
            available = len(self._buf) - self._pos
            if available >= need:
                parts.append(self._view[self._pos:self._pos + need])
                self._pos += need
                break
            if available:
                parts.append(self._view[self._pos:])
                self._pos = len(self._buf)
                need -= available
            if not self._advance():
                break
        return b"".join(parts)

    def read_view(self, size: int) -> memoryview:
        """Return up to ``size`` next bytes from the current chunk without copying; empty at the end."""
        if self._pos >= len(self._buf) and not self._advance():
            return self._view[0:0]
        pos = self._pos
        end = min(pos + size, len(self._buf))
        self._pos = end
        return self._view[pos:end]


class MemberContent(io.RawIOBase):
    """One member's content (``size`` bytes, no padding) read from a :class:`ChunkStream`; ``remaining`` is what is left.

    ``read``/``readinto`` copy as file objects do; :meth:`read_view` and :meth:`read_whole` hand
    out the chunk's memory itself.
    """

    def __init__(self, stream: ChunkStream, size: int, name: bytes, offset: int) -> None:
        super().__init__()
        self._stream = stream
        self._name = name
        self._offset = offset
        self.remaining = size

    def readable(self) -> bool:
        return True

    def read_view(self, size: int = -1) -> memoryview:
        """Up to ``size`` (all when negative) next content bytes lying in the current chunk; empty at the end."""
        want = self.remaining if size is None or size < 0 else min(size, self.remaining)
        if want <= 0:
            return memoryview(b"")
        view = self._stream.read_view(want)
        if not view:
            raise member_error(self._name, "archive truncated inside member content (%d bytes missing)" % self.remaining,
                               self._offset)
        self.remaining -= len(view)
        return view

    def read_whole(self):
        """All remaining content as one bytes-like object: a view of the chunk when it lies in one, else joined bytes."""
        first = self.read_view()
        if not self.remaining:
            return first
        parts = [first]
        while self.remaining:
            parts.append(self.read_view())
        return b"".join(parts)

    def readinto(self, buffer) -> int:
        view = self.read_view(len(buffer))
        buffer[:len(view)] = view
        return len(view)

    def skip(self) -> None:
        """Drop whatever content is left."""
        while self.remaining:
            self.read_view()


def _padding(stream: ChunkStream, entry, offset: int) -> bytes:
    size = entry.stored_size - entry.size
    padding = stream.read_exact(size)
    if len(padding) < size:
        raise member_error(entry.path, "archive truncated inside member padding", offset)
    return padding


def split_chunks(next_chunk: Callable[[], bytes], store_object: Callable[[MemberContent, int], bytes],
                 entries: list | None = None) -> Iterator[tuple]:
    """Yield the split events of the tar whose bytes ``next_chunk()`` returns (``tar.py`` describes them).

    ``store_object(content, size)`` is called for each regular file of more than
    ``INLINE_CONTENT_MAX`` bytes; it must read the :class:`MemberContent` to its end and return the
    fs-verity digest (raw bytes) under which it stored it. ``entries``, when given, receives each
    member's ``tar_entry.LayerEntry`` up to the end-of-archive marker, in archive order.
    """
    stream = ChunkStream(next_chunk)
    pending = bytearray()
    while True:
        chain = read_header_chain(stream)
        pending += chain.raw
        entry = chain.entry
        if entry is None:
            break
        size = entry.size
        if entry.is_regular and size > INLINE_CONTENT_MAX:
            if pending:
                yield (INLINE, bytes(pending))
                pending.clear()
            content = MemberContent(stream, size, entry.path, chain.offset)
            fsverity_digest = store_object(content, size)
            if content.remaining:
                raise ComposefsError("store_object left %d of %d content bytes of %s unread"
                                     % (content.remaining, size, describe_name(entry.path)))
            yield (EXTERNAL, fsverity_digest, size)
            pending += _padding(stream, entry, chain.offset)
            if entries is not None:
                entries.append(layer_entry_from_tar(entry, None, chain.offset, fsverity_digest=fsverity_digest))
        elif size <= INLINE_CONTENT_MAX:
            data = stream.read_exact(entry.stored_size)
            if len(data) < entry.stored_size:
                raise member_error(entry.path, "archive truncated inside member content (%d bytes missing)"
                                   % (entry.stored_size - len(data)), chain.offset)
            pending += data
            if entries is not None:
                entries.append(layer_entry_from_tar(entry, data[:size] if size else b"", chain.offset))
        else:  # a large member that stays inline (an unknown type): no tree entry, copied in pieces
            if entries is not None:
                entries.append(layer_entry_from_tar(entry, None, chain.offset))  # raises: not a tree entry
            content = MemberContent(stream, size, entry.path, chain.offset)
            while content.remaining:
                pending += content.read_view(COPY_BYTES)
                if len(pending) >= INLINE_FLUSH_BYTES:
                    yield (INLINE, bytes(pending))
                    pending.clear()
            pending += _padding(stream, entry, chain.offset)
        if len(pending) >= INLINE_FLUSH_BYTES:
            yield (INLINE, bytes(pending))
            pending.clear()
    while True:  # the end-of-archive blocks and everything after them
        view = stream.read_view(READ_BYTES)
        if not view:
            break
        pending += view
        if len(pending) >= INLINE_FLUSH_BYTES:
            yield (INLINE, bytes(pending))
            pending.clear()
    if pending:
        yield (INLINE, bytes(pending))


def split_tar(fileobj, store_object: Callable[[MemberContent, int], bytes]) -> Iterator[tuple]:
    """Yield the split events of the tar read from ``fileobj`` (see :func:`split_chunks`)."""
    return split_chunks(lambda: fileobj.read(READ_BYTES), store_object)
