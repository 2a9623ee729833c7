# -*- coding: utf-8 -*-
# Copyright: (c) 2026, bootc.composefs maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""In-memory filesystem tree: the common currency of dumpfiles, EROFS images and OCI layers.

Layer: formats. A composefs image describes a directory tree whose regular files are either small
enough to be stored *inline* in the image or are *external*: their content lives in the repository
as an object named by its fs-verity digest, and the image only records that digest and the size.

Model (mirrors composefs-rs ``tree.rs`` and composefs-dump(5)):

- every node carries a ``Stat``: full ``st_mode`` (file type bits included), uid, gid, mtime
  (seconds and nanoseconds) and an ordered mapping of extended attributes (``bytes`` -> ``bytes``);
- a ``Directory`` maps entry names (``bytes``, no ``/``, not ``.``/``..``) to child nodes;
- leaves are ``RegularFile`` (inline ``content`` or external ``fsverity_digest`` + ``size``),
  ``Symlink`` (``target``), ``Device`` (character or block, by ``st_mode``, with ``rdev``), ``Fifo``
  and ``Socket``;
- a hardlink is the *same leaf object* placed in two directories; writers derive ``nlink`` and
  inode sharing from object identity (``link_counts``). Directories are never shared.

How a ``RegularFile`` is stored, in the order writers decide it:

=========================================== ============================================================
fields                                      meaning
=========================================== ============================================================
``content`` is not None                     inline: the bytes live in the image (``size == len(content)``)
``size == 0``                               empty file (nothing stored, digest and backing path ignored)
``fsverity_digest`` set                     external: the repository object named by the digest; its
                                            backing path is the object path ``xx/rest`` of the digest
``fsverity_digest`` None                    external without a known digest (mkcomposefs writes an empty
                                            ``overlay.metacopy``); rare, kept for dumpfile fidelity
``backing_path`` set                        the backing file named explicitly (dumpfile PAYLOAD) when it
                                            is not the digest's object path; None means "derive it"
=========================================== ============================================================

``Directory.size`` is informational: the size a dumpfile or an EROFS image recorded for the
directory (its dirent data size). Writers compute their own; ``encode_dumpfile`` prints it so
that a dump read back is printed unchanged.

The model holds values only; it knows nothing of byte layouts. Encoders and decoders live in
``dumpfile.py`` and ``erofs/``.
"""

from __future__ import annotations

import gc
import stat as _stat
from dataclasses import dataclass, field
from typing import Dict, Iterator, List, Optional, Tuple, Union

from ansible_collections.bootc.composefs.plugins.module_utils.errors import FormatError

__all__ = [
    "Stat",
    "RegularFile",
    "Symlink",
    "Device",
    "Fifo",
    "Socket",
    "Directory",
    "Leaf",
    "Node",
    "walk",
    "lookup",
    "validate_name",
    "link_counts",
    "object_pathname",
    "gc_paused",
    "MAX_NAME_BYTES",
]

MAX_NAME_BYTES = 255  # NAME_MAX: longest directory entry name Linux (and mkcomposefs) accept


@dataclass
class Stat:
    """Inode metadata shared by every node kind. ``mode`` includes the S_IFMT type bits."""

    mode: int
    uid: int = 0
    gid: int = 0
    mtime: int = 0
    mtime_nsec: int = 0
    xattrs: Dict[bytes, bytes] = field(default_factory=dict)

    @property
    def permissions(self) -> int:
        """Permission and special bits (``mode & 0o7777``)."""
        return _stat.S_IMODE(self.mode)


@dataclass(eq=False)
class RegularFile:
    """A regular file: ``content`` when inline, or ``fsverity_digest`` + ``size`` when external."""

    stat: Stat
    size: int = 0
    content: Optional[bytes] = None
    fsverity_digest: Optional[bytes] = None
    backing_path: Optional[bytes] = None

    @property
    def is_external(self) -> bool:
        """True when the file names a repository object (``fsverity_digest`` is set)."""
        return self.fsverity_digest is not None

    @property
    def is_inline(self) -> bool:
        """True when the image stores the file's bytes itself (inline content, or an empty file)."""
        return self.content is not None or self.size == 0


@dataclass(eq=False)
class Symlink:
    stat: Stat
    target: bytes = b""


@dataclass(eq=False)
class Device:
    """Character or block device; which one is told by ``stat.mode``. ``rdev`` is the encoded dev_t."""

    stat: Stat
    rdev: int = 0


@dataclass(eq=False)
class Fifo:
    stat: Stat


@dataclass(eq=False)
class Socket:
    stat: Stat


Leaf = Union[RegularFile, Symlink, Device, Fifo, Socket]


@dataclass(eq=False)
class Directory:
    stat: Stat
    entries: Dict[bytes, "Node"] = field(default_factory=dict)
    size: int = 0

    def sorted_entries(self):
        """Entries in byte order of their names (the order every composefs writer uses)."""
        return sorted(self.entries.items())


Node = Union[Directory, Leaf]


def validate_name(name: bytes) -> bytes:
    """Return ``name`` if it is a valid directory entry name, else raise FormatError."""
    if not name or name in (b".", b"..") or b"/" in name or b"\0" in name or len(name) > MAX_NAME_BYTES:
        raise FormatError("invalid directory entry name %r" % (name,))
    return name


def object_pathname(fsverity_digest: bytes) -> bytes:
    """Return the repository object path ``xx/rest`` (lowercase hex) naming ``fsverity_digest``."""
    hexdigest = fsverity_digest.hex().encode("ascii")
    return hexdigest[:2] + b"/" + hexdigest[2:]


def link_counts(root: Directory) -> Dict[int, int]:
    """Return ``{id(leaf): number of directory entries naming it}`` for every leaf below ``root``."""
    counts: Dict[int, int] = {}
    stack = [root]
    while stack:
        directory = stack.pop()
        for child in directory.entries.values():
            if isinstance(child, Directory):
                stack.append(child)
            else:
                key = id(child)
                counts[key] = counts.get(key, 0) + 1
    return counts


def walk(root: Directory, prefix: bytes = b"/") -> Iterator[Tuple[bytes, Node]]:
    """Yield ``(path, node)`` for ``root`` and everything below it, depth-first, names sorted."""
    stack = [(prefix, root)]
    while stack:
        path, node = stack.pop()
        yield path, node
        if isinstance(node, Directory):
            base = path if path.endswith(b"/") else path + b"/"
            for name, child in reversed(node.sorted_entries()):
                stack.append((base + name, child))


def lookup(root: Directory, path: bytes) -> Optional[Node]:
    """Return the node at absolute or relative ``path`` (no symlink resolution), or None."""
    node: Node = root
    for part in path.split(b"/"):
        if not part or part == b".":
            continue
        if not isinstance(node, Directory):
            return None
        child = node.entries.get(part)
        if child is None:
            return None
        node = child
    return node


class _CollectorPause:
    """Context manager behind ``gc_paused``: one shared instance, nestable (a stack of states)."""

    __slots__ = ("_states",)

    def __init__(self) -> None:
        self._states: List[bool] = []

    def __enter__(self) -> None:
        self._states.append(gc.isenabled())
        gc.disable()

    def __exit__(self, exc_type, exc, traceback) -> bool:
        if self._states.pop():
            gc.enable()
        return False


_COLLECTOR_PAUSE = _CollectorPause()


def gc_paused() -> _CollectorPause:
    """Return a context manager pausing Python's cyclic garbage collector while a large tree is
    built or walked; the previous state is restored on exit.

    Trees hold no reference cycles, yet a parse or an image write creates ~10 objects per file and
    every few hundred allocations the collector rescans the young ones: on 50k files that was a
    third of the run time (``bench/bench_erofs.py``). Reference counting still frees everything.
    The manager is a preallocated object, so entering it allocates nothing: an allocation made just
    after a large tree was built would itself start the collector pass this avoids.
    """
    return _COLLECTOR_PAUSE
