# -*- coding: utf-8 -*-
# Copyright: (c) 2026, bootc.composefs maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The objects a composefs EROFS image references, found by scanning its bytes (layer: formats).

Spec: ``composefs-repo.md`` sections 11.3 (xattr entries), 11.5 (which xattrs name objects) and
11.6 (what composefs-rs ``collect_objects`` returns; a more liberal reader may keep more). The
structural reader (``reader.referenced_objects``) visits every inode reachable from the root, at
~10 us per inode in Python; a garbage collector marking 50000-file boot images cannot afford that
(``bench/bench_gc.py``). This file finds the same references at regex speed instead.

What is scanned. Every xattr entry, inline in an inode or in the shared xattr table, is one
contiguous run of bytes (little-endian, spec 11.3):

====== ============ ======================================================================
offset size         field
====== ============ ======================================================================
0      1            name_len: length of the name suffix (16 for both names below)
1      1            name_index: prefix table index; 4 is ``trusted.``
2      2            value_size
4      name_len     name suffix: ``overlay.metacopy`` or ``overlay.redirect``
4+nl   value_size   value, then zero padding to a multiple of 4
====== ============ ======================================================================

* ``trusted.overlay.metacopy``: value = 4-byte header ``{version 0, length 4+N, flags 0,
  fs-verity algorithm 1|2}`` + the N-byte raw digest. The scan looks for the entry header, the
  name and the value header as one literal (``_metacopy_head``) and takes the N bytes after it.
* ``trusted.overlay.redirect``: value = ``/`` + the object path ``xx/rest`` (2N+1 bytes); spec
  11.6 strips one leading ``/``, takes the last 2N+1 bytes, requires ``/`` at index 2 and
  hex-decodes the rest. Every occurrence of the name with ``name_len`` 16 and ``name_index`` 4
  before it is decoded that way.

So every reference the kernel can follow is found (reachable inodes, shared or inline entries),
plus any such bytes an unreachable inode, a file name or a file's inline data might hold: a
superset of ``reader.referenced_objects`` and of composefs-rs ``collect_objects``, which is what a
garbage collector needs (keeping more is safe, losing one is not). Only the framing is checked
(``reader.read_image``: magics, versions, size, features); the caller verifies the image's content
against its name first, so its bytes are what a writer wrote.

Fast paths (``bench/bench_gc.py``, 50000-file images): metacopy digests come from one ``findall``
whose lookahead capture cannot swallow a following head, so it finds every occurrence without a
second pass; redirects come from one ``findall`` of the standard form (``/xx/rest`` of exactly
2N+1 bytes after ``/``), valid when it matched every occurrence of the name (``count``), their
joined values checked in C (``/`` at each stride, nothing else but hex digits) and hex-decoded at
once. Anything else (a redirect of another shape, a crafted value swallowing the head of a real
entry) falls back to decoding every occurrence one by one.
"""

from __future__ import annotations

import binascii
import re

from ansible_collections.bootc.composefs.plugins.module_utils.formats.erofs import layout as L
from ansible_collections.bootc.composefs.plugins.module_utils.formats.erofs import reader

__all__ = ["scan_references"]

_TRUSTED_INDEX = L.XATTR_PREFIXES.index(b"trusted.")
_METACOPY_SUFFIX = L.XATTR_METACOPY[len(b"trusted."):]  # b"overlay.metacopy"
_REDIRECT_SUFFIX = L.XATTR_REDIRECT[len(b"trusted."):]  # b"overlay.redirect"
_REDIRECT_NAME_LEN = len(_REDIRECT_SUFFIX)
_HEX = b"[0-9a-fA-F]"  # bytes.fromhex and binascii accept both cases


def _entry_head(suffix: bytes, value_size: int) -> bytes:
    """The first bytes of an xattr entry ``trusted.<suffix>`` with a value of ``value_size`` bytes."""
    return L.XATTR_ENTRY.pack(len(suffix), _TRUSTED_INDEX, value_size) + suffix


def _metacopy_head(algorithm) -> bytes:
    """Entry header, name and value header of a metacopy xattr naming a digest of ``algorithm``."""
    size = algorithm.digest_size
    return _entry_head(_METACOPY_SUFFIX, 4 + size) + L.encode_metacopy(b"\0" * size, algorithm.kernel_id)[:4]


def scan_references(data: bytes, algorithm, key_bytes: int | None = None) -> set:
    """Raw digests the composefs EROFS image ``data`` references (framing checked; see the module docstring).

    With ``key_bytes``, only that many leading bytes of each digest, cut without building the full
    digests (a garbage collector's live keys). FormatError when the framing is wrong.
    """
    reader.read_image(data)
    size = algorithm.digest_size
    keep = size if key_bytes is None else max(1, min(key_bytes, size))
    # The lookahead keeps each match to the head itself: a head inside the 'digest' of a previous
    # one is found too, and a digest cut by the end of the image (shorter than N) is none.
    metacopies = re.findall(re.escape(_metacopy_head(algorithm)) + b"(?=(.{%d}).{%d})" % (keep, size - keep), data, re.S)
    found = set(metacopies)
    # Redirects of the standard form, "/xx/rest" (2N+1 bytes after the "/"), every digit checked by
    # the pattern: only the "xx/" and the digits of the kept bytes are captured.
    width = 2 * size + 1
    redirects = re.findall(re.escape(_entry_head(_REDIRECT_SUFFIX, width + 1) + b"/") + b"(%s{2}/%s{%d})(?=%s{%d})"
                           % (_HEX, _HEX, 2 * keep - 2, _HEX, 2 * (size - keep)), data, re.S)
    if len(redirects) != data.count(_REDIRECT_SUFFIX):
        found.update(raw[:keep] for raw in _redirect_references(data, size))
        return found
    hex_keys = b"".join(redirects).translate(None, b"/")
    if hex_keys == binascii.hexlify(b"".join(metacopies)):
        return found  # each redirect names what the metacopy before it names (what writers do)
    raw = binascii.unhexlify(hex_keys)
    found.update(map(raw.__getitem__, map(slice, range(0, len(raw), keep), range(keep, len(raw) + keep, keep))))
    return found


def _redirect_references(data: bytes, size: int) -> set:
    """Every ``trusted.overlay.redirect`` entry decoded one by one (spec 11.6: the object path is its last 2N+1 bytes)."""
    found = set()
    for match in re.finditer(re.escape(_REDIRECT_SUFFIX), data):
        start = match.start()
        if start < 4 or data[start - 4] != _REDIRECT_NAME_LEN or data[start - 3] != _TRUSTED_INDEX:
            continue
        value = data[match.end():match.end() + int.from_bytes(data[start - 2:start], "little")]
        path = value[1:] if value[:1] == b"/" else value
        path = path[-(2 * size + 1):]
        if len(path) == 2 * size + 1 and path[2:3] == b"/":
            try:
                found.add(bytes.fromhex((path[:2] + path[3:]).decode("ascii")))
            except ValueError:
                continue
    return found
