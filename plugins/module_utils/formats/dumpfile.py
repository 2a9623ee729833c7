# -*- coding: utf-8 -*-
# Copyright: (c) 2026, bootc.composefs maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""composefs dumpfiles (composefs-dump(5)): a filesystem tree as text, one line per file.

Layer: formats. Written by ``composefs-info dump`` (C composefs 1.0.8, ``tools/composefs-info.c``)
and composefs-rs (``crates/composefs/src/dumpfile.rs``); read by ``mkcomposefs --from-file``
(``tools/mkcomposefs.c``) and composefs-rs (``dumpfile_parse.rs``). Upstream man page:
``man/composefs-dump.md``. The tree it maps to is ``formats/tree.py``.

A line is eleven fields separated by single spaces, then zero or more ``KEY=VALUE`` xattrs:

===== ======= ===================================================================================
field name    meaning
===== ======= ===================================================================================
1     PATH    absolute path, ``/`` for the root; parents come before children, root first
2     SIZE    file size (decimal); for directories the size the image gave the directory
3     MODE    ``st_mode`` in octal, type bits included; ``@`` in front marks a hardlink line
4     NLINK   link count (decimal); written from the tree, ignored when read
5     UID     owner (decimal, < 2**32)
6     GID     group (decimal, < 2**32)
7     RDEV    device number (decimal) of character and block devices, else 0
8     MTIME   ``SECONDS.NANOSECONDS`` (``1.1`` is one second and one nanosecond); seconds may be < 0
9     PAYLOAD symlink target; backing file ``xx/rest`` of an external file; hardlink target path
10    CONTENT inline file content (must be SIZE bytes, at most 5000)
11    DIGEST  hex fs-verity digest of an external file (64 hex digits, 128 for sha512)
12+   XATTRS  ``KEY=VALUE``: the first unescaped ``=`` separates key from value
===== ======= ===================================================================================

Escapes: ``\\\\``, ``\\n``, ``\\r``, ``\\t`` and ``\\xHH`` (any byte). Writers escape every byte outside
``!``..``~`` (so a space is ``\\x20``), ``=`` inside xattr fields, and a field that is exactly ``-``
(``\\x2d``), because a lone ``-`` means "none". Xattr values never use the ``-`` sentinel.

Hardlinks: the first path of a shared leaf (depth-first, names sorted) carries the data; later
paths are hardlink lines whose PAYLOAD is the first path. ``composefs-info`` fills every other field
of a hardlink line from the target; readers ignore all of them except PAYLOAD.

Reading normalises like ``mkcomposefs`` does when it builds an image: a file with CONTENT is inline
(PAYLOAD and DIGEST are ignored), a file of SIZE 0 is empty (PAYLOAD and DIGEST are ignored),
anything else is external (a PAYLOAD other than the DIGEST's object path is kept as
``RegularFile.backing_path``); SIZE of symlinks, devices, fifos and sockets and RDEV of non-devices
are ignored (images do not store them; mkcomposefs only lets a SIZE above 4 GiB turn such an inode
into an extended one). Deliberately stricter than ``mkcomposefs``: paths must be canonical
(no ``//``, ``.``, ``..``), a duplicate or missing parent is an error, nanoseconds must be below
10**9, uid/gid must fit 32 bits, xattr keys must be 1..255 bytes without NUL. Empty lines are
skipped. Not supported: NUL bytes in paths or symlink targets (they cannot exist on Linux).
"""

from __future__ import annotations

import binascii
import re
import stat as _stat
from typing import Dict, List, Optional, Tuple

from ansible_collections.bootc.composefs.plugins.module_utils.errors import FormatError
from ansible_collections.bootc.composefs.plugins.module_utils.formats.tree import (
    MAX_NAME_BYTES,
    Device,
    Directory,
    Fifo,
    RegularFile,
    Socket,
    Stat,
    Symlink,
    gc_paused,
    link_counts,
    object_pathname,
)

__all__ = [
    "parse_dumpfile",
    "encode_dumpfile",
    "MAX_INLINE_CONTENT_BYTES",
    "MAX_SYMLINK_TARGET_BYTES",
]

# --- limits (those of mkcomposefs 1.0.8 and the kernel) -----------------------------------------

MAX_INLINE_CONTENT_BYTES = 5000  # LCFS_INLINE_CONTENT_MAX: longest CONTENT mkcomposefs accepts
MAX_SYMLINK_TARGET_BYTES = 4095  # PATH_MAX - 1
MAX_XATTR_NAME_BYTES = 255  # XATTR_NAME_MAX
MAX_XATTR_VALUE_BYTES = 65535  # EROFS stores the value size in 16 bits
NSEC_PER_SEC = 1000000000
_FIELD_COUNT = 11
_HARDLINK_FIELD_COUNT = 9  # PATH .. PAYLOAD

# --- escaping ------------------------------------------------------------------------------------

_NONE = b"-"
_LONE_DASH = b"\\x2d"
# bytes written as themselves: graphic ASCII except the backslash (and '=' in xattr fields)
_NEEDS_ESCAPE = re.compile(rb"[^\x21-\x5b\x5d-\x7e]")
_NEEDS_ESCAPE_XATTR = re.compile(rb"[^\x21-\x3c\x3e-\x5b\x5d-\x7e]")
_NAMED_ESCAPES = {0x5C: b"\\\\", 0x0A: b"\\n", 0x0D: b"\\r", 0x09: b"\\t"}
_ESCAPED = [_NAMED_ESCAPES.get(c, bytes((c,)) if 0x21 <= c <= 0x7E else b"\\x%02x" % c) for c in range(256)]
_ESCAPED_XATTR = list(_ESCAPED)
_ESCAPED_XATTR[0x3D] = b"\\x3d"
# a valid escape fills group 1; anything else after a backslash (or nothing) is an error
_UNESCAPE = re.compile(rb"\\(?:(x[0-9a-fA-F]{2}|[\\nrt])|.?)", re.DOTALL)
_UNESCAPED = {b"\\": b"\\", b"n": b"\n", b"r": b"\r", b"t": b"\t"}

# --- file types ----------------------------------------------------------------------------------

_S_IFMT = _stat.S_IFMT(0o177777)
_S_IFREG = _stat.S_IFREG
_S_IFDIR = _stat.S_IFDIR
_DOTS = (b".", b"..")
_DEVICE_TYPES = (_stat.S_IFCHR, _stat.S_IFBLK)
_TYPE_NAMES = {
    _stat.S_IFREG: "regular file",
    _stat.S_IFDIR: "directory",
    _stat.S_IFLNK: "symlink",
    _stat.S_IFCHR: "character device",
    _stat.S_IFBLK: "block device",
    _stat.S_IFIFO: "fifo",
    _stat.S_IFSOCK: "socket",
}


def _unescape_match(match) -> bytes:
    token = match.group(1)
    if token is None:
        raise ValueError("invalid escape %r" % (match.group(0),))
    if token[:1] == b"x":
        return bytes((int(token[1:], 16),))
    return _UNESCAPED[token]


def _unescape(field: bytes) -> bytes:
    """Undo the dumpfile escapes of one field; a malformed escape raises ValueError."""
    if b"\\" not in field:
        return field
    return _UNESCAPE.sub(_unescape_match, field)


def _escape(value: bytes) -> bytes:
    if _NEEDS_ESCAPE.search(value) is None:
        return value
    return b"".join([_ESCAPED[c] for c in value])


def _escape_xattr(value: bytes) -> bytes:
    if _NEEDS_ESCAPE_XATTR.search(value) is None:
        return value
    return b"".join([_ESCAPED_XATTR[c] for c in value])


def _escape_optional(value: Optional[bytes]) -> bytes:
    if value is None:
        return _NONE
    if value == _NONE:
        return _LONE_DASH
    return _escape(value)


# --- parsing -------------------------------------------------------------------------------------


def _decimal(field: bytes, what: str, limit: int) -> int:
    if not field.isdigit():
        raise ValueError("%s %r is not a decimal number" % (what, field))
    value = int(field)
    if value > limit:
        raise ValueError("%s %d is out of range" % (what, value))
    return value


def _mode(field: bytes) -> int:
    if not field.isdigit():
        raise ValueError("mode %r is not an octal number" % (field,))
    mode = int(field, 8)  # ValueError for digits 8 and 9
    if mode > 0o177777 or _stat.S_IFMT(mode) not in _TYPE_NAMES:
        raise ValueError("invalid mode %o" % mode)
    return mode


def _mtime(field: bytes) -> Tuple[int, int]:
    seconds, dot, nanoseconds = field.partition(b".")
    digits = seconds[1:] if seconds[:1] == b"-" else seconds
    if not dot or not digits.isdigit() or not nanoseconds.isdigit():
        raise ValueError("mtime %r is not SECONDS.NANOSECONDS" % (field,))
    sec = int(seconds)
    nsec = int(nanoseconds)
    if nsec >= NSEC_PER_SEC or not -(1 << 63) <= sec < (1 << 63):
        raise ValueError("mtime %r is out of range" % (field,))
    return sec, nsec


def _optional(field: bytes) -> Optional[bytes]:
    if field == _NONE:
        return None
    return _unescape(field)


def _xattr(field: bytes) -> Tuple[bytes, bytes]:
    key, sep, value = field.partition(b"=")
    if not sep:
        raise ValueError("xattr %r has no '='" % (field,))
    key = _unescape(key)
    if not key or b"\0" in key or len(key) > MAX_XATTR_NAME_BYTES:
        raise ValueError("invalid xattr key %r" % (key,))
    value = _unescape(value)
    if len(value) > MAX_XATTR_VALUE_BYTES:
        raise ValueError("xattr %r value is longer than %d bytes" % (key, MAX_XATTR_VALUE_BYTES))
    return key, value


def _canonical_target(target: bytes) -> bytes:
    """Hardlink targets are looked up like mkcomposefs does: extra and leading slashes are ignored."""
    return b"/" + b"/".join(part for part in target.split(b"/") if part)


class _LineError(Exception):
    """A problem found after the fact (hardlinks are resolved at the end): (line number, message)."""


class _Parser:
    """State of one parse: directories by path, pending hardlinks, field caches.

    Shaped for speed (``bench/bench_erofs.py``): fields that repeat from line to line (modes,
    owners, mtimes, xattrs) are parsed once and looked up afterwards.
    """

    def __init__(self) -> None:
        self.root: Optional[Directory] = None
        self.directories: Dict[bytes, Directory] = {}
        self.hardlinks: Dict[bytes, Tuple[int, int, Directory, bytes, bytes]] = {}
        self.modes: Dict[bytes, int] = {}
        self.ids: Dict[bytes, int] = {}
        self.mtimes: Dict[bytes, Tuple[int, int]] = {}
        self.xattrs: Dict[bytes, Tuple[bytes, bytes]] = {}

    def parent_of(self, path: bytes) -> Tuple[Directory, bytes]:
        if path[:1] != b"/":
            raise ValueError("path %r is not absolute" % (path,))
        if path == b"/":
            raise ValueError("the root must be a directory")
        parent_path, _slash, name = path.rpartition(b"/")
        parent = self.directories.get(parent_path or b"/")
        if parent is None:
            if self.root is None:
                raise ValueError("the first entry must be the root directory '/'")
            raise ValueError("parent directory of %r is missing or not a directory" % (path,))
        if not name or len(name) > MAX_NAME_BYTES or name in (b".", b"..") or b"\0" in name:
            raise ValueError("invalid file name %r" % (name,))
        if name in parent.entries:
            raise ValueError("duplicate path %r" % (path,))
        return parent, name

    def hardlink(self, fields: List[bytes], lineno: int) -> None:
        path = _unescape(fields[0])
        mode = _mode(fields[2][1:])
        if _stat.S_ISDIR(mode):
            raise ValueError("directories cannot be hardlinked")
        target = _optional(fields[8])
        if not target:
            raise ValueError("hardlink without a target path")
        parent, name = self.parent_of(path)
        parent.entries[name] = None  # placeholder until the hardlinks are resolved
        self.hardlinks[path] = (lineno, parent, name, _canonical_target(target))

    def parse(self, lines: List[bytes]) -> None:
        """Add every line to the tree. Shaped for speed (``bench/bench_erofs.py``): one loop, state in
        locals, and fields that repeat from line to line (modes, owners, mtimes, xattrs) parsed once."""
        modes, ids, mtimes, known = self.modes, self.ids, self.mtimes, self.xattrs
        directories = self.directories
        lineno = 0
        try:
            for lineno, line in enumerate(lines, 1):
                if not line:
                    continue
                fields = line.split(b" ")
                if len(fields) < _FIELD_COUNT:
                    if len(fields) >= _HARDLINK_FIELD_COUNT and fields[2][:1] == b"@":
                        self.hardlink(fields, lineno)
                        continue
                    raise ValueError("expected at least %d fields, found %d" % (_FIELD_COUNT, len(fields)))
                path = fields[0]
                if b"\\" in path:
                    path = _unescape(path)
                if path[:1] != b"/":
                    raise ValueError("path %r is not absolute" % (path,))
                mode = modes.get(fields[2])
                if mode is None:
                    if fields[2][:1] == b"@":
                        self.hardlink(fields, lineno)
                        continue
                    mode = modes[fields[2]] = _mode(fields[2])
                size_field = fields[1]
                if not size_field.isdigit() or len(size_field) > 20:
                    raise ValueError("size %r is not a decimal number" % (size_field,))
                if not fields[3].isdigit():
                    raise ValueError("nlink %r is not a decimal number" % (fields[3],))
                uid = ids.get(fields[4])
                if uid is None:
                    uid = ids[fields[4]] = _decimal(fields[4], "uid", 0xFFFFFFFF)
                gid = ids.get(fields[5])
                if gid is None:
                    gid = ids[fields[5]] = _decimal(fields[5], "gid", 0xFFFFFFFF)
                mtime = mtimes.get(fields[7])
                if mtime is None:
                    mtime = mtimes[fields[7]] = _mtime(fields[7])
                xattrs = {}
                if len(fields) > _FIELD_COUNT:
                    for field in fields[_FIELD_COUNT:]:
                        pair = known.get(field)
                        if pair is None:
                            pair = known[field] = _xattr(field)
                        xattrs[pair[0]] = pair[1]
                stat = Stat(mode, uid, gid, mtime[0], mtime[1], xattrs)
                kind = mode & _S_IFMT
                if kind == _S_IFREG:
                    node = _regular_file(stat, int(size_field), fields)
                elif kind == _S_IFDIR:
                    node = Directory(stat, {}, int(size_field))
                    if path == b"/":
                        self.set_root(node)
                        continue
                    directories[path] = node
                else:
                    node = _special_file(stat, kind, fields)
                parent_path, _slash, name = path.rpartition(b"/")
                parent = directories.get(parent_path or b"/")
                if parent is None or not name or len(name) > MAX_NAME_BYTES or name in _DOTS or b"\0" in name or name in parent.entries:
                    parent, name = self.parent_of(path)  # raises the precise error
                parent.entries[name] = node
        except (ValueError, IndexError) as err:
            raise _LineError(lineno, str(err)) from None

    def set_root(self, node: Directory) -> None:
        if self.root is not None:
            raise ValueError("duplicate root entry")
        self.root = self.directories[b"/"] = node

    def resolve(self, path: bytes, seen: Tuple[bytes, ...] = ()):
        """Return the leaf a hardlink line names, following hardlinks to hardlinks."""
        lineno, _parent, _name, target = self.hardlinks[path]
        if target == path or target in seen:
            raise _LineError(lineno, "hardlink loop through %r" % (target,))
        parent_path, _slash, name = target.rpartition(b"/")
        parent = self.directories.get(parent_path or b"/")
        if parent is None or name not in parent.entries:
            raise _LineError(lineno, "hardlink target %r does not exist" % (target,))
        node = parent.entries[name]
        if node is None:
            node = self.resolve(target, seen + (path,))
        if isinstance(node, Directory):
            raise _LineError(lineno, "hardlink target %r is a directory" % (target,))
        return node

    def finish(self) -> Directory:
        if self.root is None:
            raise FormatError("dumpfile has no root directory entry", 0)
        for path, (_lineno, parent, name, _target) in self.hardlinks.items():
            parent.entries[name] = self.resolve(path)
        return self.root


def _regular_file(stat: Stat, size: int, fields: List[bytes]) -> RegularFile:
    content = fields[9]
    if content != _NONE:
        content = _unescape(content)
        if len(content) != size:
            raise ValueError("content is %d bytes but size is %d" % (len(content), size))
        if size > MAX_INLINE_CONTENT_BYTES:
            raise ValueError("inline content of %d bytes exceeds %d" % (size, MAX_INLINE_CONTENT_BYTES))
        return RegularFile(stat, size, content)
    if size == 0:
        return RegularFile(stat, 0)
    if size >= 1 << 64:
        raise ValueError("size %d is out of range" % size)
    digest_field = fields[10]
    backing_path = fields[8]
    backing_path = None if backing_path == _NONE else _unescape(backing_path)
    if digest_field == _NONE:
        return RegularFile(stat, size, None, None, backing_path)
    if len(digest_field) not in (64, 128):
        raise ValueError("digest %r is not 64 or 128 hex digits" % (digest_field,))
    fsverity_digest = binascii.unhexlify(digest_field)  # binascii.Error is a ValueError
    if backing_path is not None and (backing_path == digest_field[:2] + b"/" + digest_field[2:]
                                     or backing_path == object_pathname(fsverity_digest)):
        backing_path = None
    return RegularFile(stat, size, None, fsverity_digest, backing_path)


def _special_file(stat: Stat, kind: int, fields: List[bytes]):
    """The leaf of a symlink, device, fifo or socket line."""
    if kind == _stat.S_IFLNK:
        target = _optional(fields[8])
        if not target or b"\0" in target or len(target) > MAX_SYMLINK_TARGET_BYTES:
            raise ValueError("symlink target must be 1..%d bytes without NUL" % MAX_SYMLINK_TARGET_BYTES)
        return Symlink(stat, target)
    if kind in _DEVICE_TYPES:
        return Device(stat, _decimal(fields[6], "rdev", (1 << 64) - 1))
    if not fields[6].isdigit():
        raise ValueError("rdev %r is not a decimal number" % (fields[6],))
    if kind == _stat.S_IFIFO:
        return Fifo(stat)
    return Socket(stat)


def parse_dumpfile(text) -> Directory:
    """Return the tree a composefs dumpfile (``str`` or bytes-like) describes.

    Errors name the line: ``FormatError("line 12: ...", offset=<byte offset of the line>)``.
    Hardlink lines may name targets that appear later in the file, as mkcomposefs allows.
    """
    with gc_paused():  # before any allocation: see tree.gc_paused
        data = text.encode("utf-8", "surrogateescape") if isinstance(text, str) else bytes(text)
        lines = data.split(b"\n")
        parser = _Parser()
        try:
            parser.parse(lines)
            return parser.finish()
        except _LineError as err:
            lineno, message = err.args
    # offsets are only computed for the error (shaped for speed: bench/bench_erofs.py)
    offset = sum(len(line) + 1 for line in lines[:lineno - 1])
    raise FormatError("line %d: %s" % (lineno, message), offset)


# --- encoding ------------------------------------------------------------------------------------


def _file_fields(node, nlinks: Dict[int, int]) -> Tuple[int, int, int, int, Optional[bytes], Optional[bytes], Optional[bytes]]:
    """(type bits, size, nlink, rdev, payload, content, digest hex) of a node's line."""
    if isinstance(node, Directory):
        subdirs = sum(1 for child in node.entries.values() if isinstance(child, Directory))
        return _stat.S_IFDIR, node.size, 2 + subdirs, 0, None, None, None
    nlink = nlinks.get(id(node), 1)
    if isinstance(node, RegularFile):
        if node.content is not None:
            return _stat.S_IFREG, len(node.content), nlink, 0, None, node.content or None, None
        if node.size == 0:
            return _stat.S_IFREG, 0, nlink, 0, None, None, None
        digest = node.fsverity_digest
        payload = node.backing_path
        if payload is None and digest is not None:
            payload = object_pathname(digest)
        return _stat.S_IFREG, node.size, nlink, 0, payload, None, None if digest is None else digest.hex().encode("ascii")
    if isinstance(node, Symlink):
        return _stat.S_IFLNK, len(node.target), nlink, 0, node.target, None, None
    if isinstance(node, Device):
        kind = node.stat.mode & _S_IFMT
        if kind not in _DEVICE_TYPES:
            raise FormatError("device node has mode %o, which is neither a character nor a block device" % node.stat.mode)
        return kind, 0, nlink, node.rdev, None, None, None
    if isinstance(node, Fifo):
        return _stat.S_IFIFO, 0, nlink, 0, None, None, None
    if isinstance(node, Socket):
        return _stat.S_IFSOCK, 0, nlink, 0, None, None, None
    raise FormatError("not a tree node: %r" % (node,))


def _encode_line(path: bytes, node, nlinks: Dict[int, int], hardlink_target: Optional[bytes]) -> bytes:
    kind, size, nlink, rdev, payload, content, digest = _file_fields(node, nlinks)
    stat = node.stat
    mode = kind | (stat.mode & 0o7777)
    if hardlink_target is not None:
        payload = hardlink_target
    parts = [
        _escape(path),
        b"%d %s%o %d %d %d %d %d.%d" % (size, b"@" if hardlink_target is not None else b"", mode, nlink,
                                        stat.uid, stat.gid, rdev, stat.mtime, stat.mtime_nsec),
        _escape_optional(payload),
        _escape_optional(content),
        digest or _NONE,
    ]
    for key, value in stat.xattrs.items():
        parts.append(_escape_xattr(key) + b"=" + _escape_xattr(value))
    return b" ".join(parts)


def encode_dumpfile(root: Directory) -> bytes:
    """Return the dumpfile of ``root`` as ``composefs-info dump`` prints it (one line per path).

    Paths are visited depth-first with names sorted; the first path of a shared leaf is written in
    full, later ones as hardlink lines naming it. Xattrs keep the order of ``Stat.xattrs``.
    """
    nlinks = link_counts(root)
    first_paths: Dict[int, bytes] = {}
    lines = []
    stack = [(b"/", root)]
    while stack:
        path, node = stack.pop()
        if isinstance(node, Directory):
            lines.append(_encode_line(path, node, nlinks, None))
            base = path if path == b"/" else path + b"/"
            stack.extend((base + name, child) for name, child in sorted(node.entries.items(), reverse=True))
            continue
        first = first_paths.get(id(node))
        if first is None and nlinks.get(id(node), 1) > 1:
            first_paths[id(node)] = path
        lines.append(_encode_line(path, node, nlinks, first))
    lines.append(b"")
    return b"\n".join(lines)
