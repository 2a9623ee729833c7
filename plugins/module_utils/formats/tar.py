# -*- coding: utf-8 -*-
# Copyright: (c) 2026, bootc.composefs maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The composefs split of a tar layer, and the layer's tree entries read back from it.

Layer: formats. An OCI layer is a tar archive (POSIX.1-1988 ustar, GNU or POSIX.1-2001 pax
dialect: header blocks in ``tar_header.py``, reading member by member in ``tar_reader.py``).
composefs stores it as a *split stream* (spec ``composefs-repo.md`` §10.2): the archive bytes in
order, where the content of every regular file larger than ``INLINE_CONTENT_MAX`` bytes is
replaced by a reference to a repository object (named by its fs-verity digest), and everything
else stays inline. Concatenating the inline bytes and the referenced objects gives back the
archive byte for byte, so the layer's ``diff_id`` (sha256 of the tar) stays verifiable.
Upstream: composefs-rs ``crates/composefs-oci/src/tar.rs`` (``split_async``, ``get_entry``).

The split (``tar_split.py``: ``split_tar`` over a file object, ``split_chunks`` over chunks)
------------------------------------------------------------------------------------------------
Events, in archive order:

- ``("inline", bytes)``: header blocks of a member (with all its extended headers, global headers
  before it included), content *and* padding of every member that is not a regular file larger
  than ``INLINE_CONTENT_MAX`` bytes, the padding of those that are, and the end-of-archive blocks
  with everything after them (extra zero records, any trailing bytes);
- ``("external", fsverity_digest, size)``: the content (without padding) of a regular file of
  more than ``INLINE_CONTENT_MAX`` bytes, handed to ``store_object`` as a file object.

Inline events are never empty; neighbouring inline bytes are joined up to ``INLINE_FLUSH_BYTES``.
``split_chunks`` also gives each member's tree entry (``tar_entry.py``) as it splits, which is
how an import gets a layer's entries in one pass. ``iter_layer_entries`` (here) reads an event
stream back (composefs-rs ``get_entry``): the way to get a layer's tree entries later, from the
repository's stored split stream; it accepts exactly what the split produces.

Inline thresholds
-----------------
composefs-rs uses one constant for both decisions, ``INLINE_CONTENT_MAX_V0 = 64``
(``crates/composefs/src/lib.rs``): ``split_async`` sends regular files of more than 64 bytes to
the object store, and ``get_entry`` turns an inline chunk into inline EROFS file content and an
external chunk into an external file, failing when a split stream disagrees with the 64-byte rule.
So files of at most 64 bytes are inline both in the split stream and in the image; the EROFS
readers' ``MAX_INLINE_CONTENT = 512`` is only a parsing bound for untrusted images.

The archive-level names (``BLOCK_SIZE``, ``TarHeader``, ``TarEntry``, ``TarMember``, ``TarReader``,
``parse_header``, ``parse_pax_records``, ``iter_members``), the split and the tree entries
(``split_tar``, ``LayerEntry``, ``layer_entry_from_tar``) stay importable from here.
"""

from __future__ import annotations

from typing import Iterable, Iterator, Optional

from ansible_collections.bootc.composefs.plugins.module_utils.errors import FormatError
from ansible_collections.bootc.composefs.plugins.module_utils.formats.tar_entry import (
    INLINE_CONTENT_MAX,
    LayerEntry,
    layer_entry_from_tar,
    makedev,
)
from ansible_collections.bootc.composefs.plugins.module_utils.formats.tar_header import (
    BLOCK_SIZE,
    TarEntry,
    TarHeader,
    member_error,
    parse_header,
    parse_pax_records,
)
from ansible_collections.bootc.composefs.plugins.module_utils.formats.tar_reader import (
    TarMember,
    TarReader,
    iter_members,
    read_header_chain,
)
from ansible_collections.bootc.composefs.plugins.module_utils.formats.tar_split import (
    EXTERNAL,
    INLINE,
    INLINE_FLUSH_BYTES,
    split_chunks,
    split_tar,
)

__all__ = [
    "BLOCK_SIZE",
    "INLINE_CONTENT_MAX",
    "INLINE_FLUSH_BYTES",
    "INLINE",
    "EXTERNAL",
    "TarHeader",
    "TarEntry",
    "TarMember",
    "TarReader",
    "LayerEntry",
    "parse_header",
    "parse_pax_records",
    "iter_members",
    "split_tar",
    "split_chunks",
    "iter_layer_entries",
    "layer_entry_from_tar",
    "makedev",
]


class _EventSource:
    """Reads the inline bytes of a split-event stream; external chunks are taken explicitly."""

    def __init__(self, events: Iterable[tuple]) -> None:
        self._events = iter(events)
        self._buffer = b""
        self._pos = 0
        self._external: Optional[tuple] = None
        self.offset = 0

    def _fill(self) -> bool:
        """Load the next inline event; False at the end or when an external event is next."""
        if self._external is not None:
            return False
        for event in self._events:
            if not isinstance(event, tuple) or len(event) < 2 or event[0] not in (INLINE, EXTERNAL):
                raise FormatError("split event is neither (\"inline\", bytes) nor (\"external\", digest, size)", self.offset)
            if event[0] == EXTERNAL:
                self._external = event
                return False
            if event[1]:
                self._buffer = bytes(event[1])
                self._pos = 0
                return True
        return False

    def read_exact(self, size: int) -> bytes:
        parts = []
        got = 0
        while got < size:
            if self._pos >= len(self._buffer) and not self._fill():
                if self._external is not None:
                    raise FormatError("split stream has an external chunk where %d inline bytes were expected" % (
                        size - got), self.offset)
                break
            take = self._buffer[self._pos:self._pos + size - got]
            self._pos += len(take)
            self.offset += len(take)
            parts.append(take)
            got += len(take)
        return b"".join(parts)

    def take_external(self, size: int, name: bytes, offset: int) -> bytes:
        """Consume the external event that must come next; return its fs-verity digest."""
        if self._pos < len(self._buffer) or (self._external is None and self._fill()) or self._external is None:
            raise member_error(name, "split stream keeps %d content bytes inline, expected an external chunk" % size, offset)
        event = self._external
        self._external = None
        if len(event) > 2 and event[2] is not None and event[2] != size:
            raise member_error(name, "external chunk of %s bytes for content of %d bytes" % (event[2], size), offset)
        self.offset += size
        return bytes(event[1])


def iter_layer_entries(events: Iterable[tuple]) -> Iterator[LayerEntry]:
    """Yield the tree entries of a layer from its split-stream events, in archive order.

    ``events`` as produced by ``split_tar`` (``("external", digest)`` without size is accepted).
    Regular files must be external exactly when larger than ``INLINE_CONTENT_MAX``. Stops at the
    end-of-archive marker.
    """
    source = _EventSource(events)
    while True:
        chain = read_header_chain(source)
        entry = chain.entry
        if entry is None:
            return
        if entry.is_regular and entry.size > INLINE_CONTENT_MAX:
            fsverity_digest = source.take_external(entry.size, entry.path, chain.offset)
            padding = source.read_exact(entry.stored_size - entry.size)
            if len(padding) < entry.stored_size - entry.size:
                raise member_error(entry.path, "split stream ends inside member padding", chain.offset)
            yield layer_entry_from_tar(entry, None, chain.offset, fsverity_digest=fsverity_digest)
        else:
            stored = source.read_exact(entry.stored_size)
            if len(stored) < entry.stored_size:
                raise member_error(entry.path, "split stream ends inside member content", chain.offset)
            yield layer_entry_from_tar(entry, stored[:entry.size], chain.offset)
