# -*- coding: utf-8 -*-
# Copyright: (c) 2026, bootc.composefs maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Merging OCI image layers into one filesystem tree, as composefs-rs does.

Layer: oci. Input: the layers of an image, lowest first, each an iterable of
``formats.tar.LayerEntry`` (from ``tar.iter_layer_entries``: a path from the archive and a fresh
tree node, or a hard link target). Output: a ``formats.tree.Directory``, the root. Upstream:
composefs-rs ``crates/composefs-oci/src/image.rs`` (``process_entry``, ``create_filesystem``) and
``crates/composefs/src/generic_tree.rs`` (``Directory::merge``, ``FileSystem::transform_for_oci``).

Rules, entry by entry in archive order (each layer applied on top of the result so far):

- Paths: leading ``/``, empty and ``.`` components are dropped (``./usr//bin/`` is ``usr/bin``);
  a ``..`` component is rejected with ``FormatError``, so nothing can point outside the root. An
  absolute path is read from the image root, as composefs-rs does.
- The root itself (``./``, ``/``): must be a directory entry; its metadata replaces the root's.
  Before any root entry the root has mode ``S_IFDIR | 0``, uid/gid 0, mtime 0 (composefs-rs
  ``Stat::uninitialized``); ``transform_for_oci`` then copies ``/usr``'s metadata onto it.
- Whiteouts (by name only, whatever the entry type): ``<dir>/.wh.<name>`` removes ``<name>`` from
  ``<dir>``; ``<dir>/.wh..wh..opq`` empties ``<dir>``. Neither is itself added. composefs-rs
  applies them to whatever the tree holds at that point of the archive, so a whiteout also removes
  an entry added *earlier in the same layer*; the OCI image spec says whiteouts only hide lower
  layers. Both agree for the archives real builders write (whiteouts and the opaque marker come
  before the directory's new entries), and we follow composefs-rs so image digests match.
  A whiteout in a directory that does not exist is a no-op (composefs-rs fails on it).
- A directory on top of an existing directory replaces only its metadata (xattrs included) and
  keeps the entries; any other combination replaces the old node (a directory by a file drops the
  whole subtree; a file by a directory gives a new empty directory).
- Hard links: the target path (normalised like any path) must already name a non-directory in the
  tree built so far (lower layers included); the new name gets that *same* leaf object, so later
  replacing either name does not affect the other. The hard link entry's own metadata is ignored.
- Missing parent directories are created with mode ``0755``, uid/gid 0, mtime 0 when
  ``implicit_directories`` is true (composefs-rs fails instead; pass False for that behaviour).
  A parent that exists but is not a directory (a file, a symlink) is a ``FormatError``.
- Regular files keep what the layer entry carries: inline content for files of at most
  ``tar.INLINE_CONTENT_MAX`` (64) bytes, the fs-verity digest and size otherwise. Xattrs come from
  the pax records and are kept as they are until ``transform_for_oci``.

``transform_for_oci`` is composefs-rs ``FileSystem::transform_for_oci``: root metadata copied from
``/usr``, ``/run`` emptied (its mtime set to ``/usr``'s), xattrs filtered to the container
allowlist (``security.capability``; plus ``user.*`` with ``keep_user_xattrs``).
"""

from __future__ import annotations

import stat as _stat
from typing import Iterable, Optional, Tuple

from ansible_collections.bootc.composefs.plugins.module_utils.errors import FormatError
from ansible_collections.bootc.composefs.plugins.module_utils.formats import tree
from ansible_collections.bootc.composefs.plugins.module_utils.formats.tar import LayerEntry

__all__ = [
    "WHITEOUT_PREFIX",
    "OPAQUE_WHITEOUT",
    "CONTAINER_XATTR_ALLOWLIST",
    "split_path",
    "apply_layer",
    "merge_layers",
    "copy_root_metadata_from_usr",
    "canonicalize_run",
    "filter_xattrs",
    "transform_for_oci",
]

WHITEOUT_PREFIX = b".wh."
OPAQUE_WHITEOUT = b".wh..wh..opq"
# Mode of the root before a layer sets it (composefs-rs Stat::uninitialized, type bits added).
UNINITIALIZED_ROOT_MODE = _stat.S_IFDIR
# Mode of parent directories a layer implies without listing them.
IMPLICIT_DIRECTORY_MODE = _stat.S_IFDIR | 0o755
# Xattrs kept by transform_for_oci (composefs-rs CONTAINER_XATTR_ALLOWLIST).
CONTAINER_XATTR_ALLOWLIST = (b"security.capability",)
USER_XATTR_PREFIX = b"user."


def _describe(path: bytes) -> str:
    return repr(path.decode("utf-8", "backslashreplace"))


def split_path(path: bytes) -> Tuple[bytes, ...]:
    """Return the components of an archive path below the image root; FormatError on ``..`` or NUL."""
    parts = []
    for part in path.split(b"/"):
        if not part or part == b".":
            continue
        if part == b"..":
            raise FormatError("path %s has a '..' component" % _describe(path))
        parts.append(tree.validate_name(part))
    return tuple(parts)


def _lookup_directory(root: tree.Directory, parts: Tuple[bytes, ...], path: bytes) -> Optional[tree.Directory]:
    """The directory at ``parts``, None if a component is missing; FormatError if one is not a directory."""
    node: tree.Node = root
    for part in parts:
        child = node.entries.get(part)
        if child is None:
            return None
        if not isinstance(child, tree.Directory):
            raise FormatError("%s: %s is not a directory" % (_describe(path), _describe(part)))
        node = child
    return node


def _parent_directory(root: tree.Directory, parts: Tuple[bytes, ...], path: bytes, implicit: bool) -> tree.Directory:
    node = root
    for part in parts:
        child = node.entries.get(part)
        if child is None:
            if not implicit:
                raise FormatError("%s: parent directory %s does not exist" % (_describe(path), _describe(part)))
            child = tree.Directory(tree.Stat(mode=IMPLICIT_DIRECTORY_MODE))
            node.entries[part] = child
        elif not isinstance(child, tree.Directory):
            raise FormatError("%s: %s is not a directory" % (_describe(path), _describe(part)))
        node = child
    return node


def _hardlink_leaf(root: tree.Directory, entry: LayerEntry) -> tree.Node:
    target = entry.hardlink_target or b""
    parts = split_path(target)
    if not parts:
        raise FormatError("%s: hard link to the root directory" % _describe(entry.path))
    parent = _lookup_directory(root, parts[:-1], target)
    leaf = parent.entries.get(parts[-1]) if parent is not None else None
    if leaf is None:
        raise FormatError("%s: hard link target %s does not exist" % (_describe(entry.path), _describe(target)))
    if isinstance(leaf, tree.Directory):
        raise FormatError("%s: hard link target %s is a directory" % (_describe(entry.path), _describe(target)))
    return leaf


def _apply_entry(root: tree.Directory, entry: LayerEntry, implicit_directories: bool) -> None:
    parts = split_path(entry.path)
    if not parts:
        if not isinstance(entry.node, tree.Directory):
            raise FormatError("%s: the root entry must be a directory" % _describe(entry.path))
        root.stat = entry.node.stat
        return
    name = parts[-1]
    if name.startswith(WHITEOUT_PREFIX):
        directory = _lookup_directory(root, parts[:-1], entry.path)
        if directory is not None:
            if name == OPAQUE_WHITEOUT:
                directory.entries.clear()
            else:
                directory.entries.pop(name[len(WHITEOUT_PREFIX):], None)
        return
    node = entry.node if entry.node is not None else _hardlink_leaf(root, entry)
    parent = _parent_directory(root, parts[:-1], entry.path, implicit_directories)
    existing = parent.entries.get(name)
    if isinstance(node, tree.Directory) and isinstance(existing, tree.Directory):
        existing.stat = node.stat
    else:
        parent.entries[name] = node


def apply_layer(root: tree.Directory, entries: Iterable[LayerEntry], implicit_directories: bool = True) -> None:
    """Apply one layer's entries, in order, on top of the tree at ``root`` (modified in place)."""
    for entry in entries:
        try:
            _apply_entry(root, entry, implicit_directories)
        except FormatError as err:
            if err.offset is None:
                err.offset = entry.offset
            raise


def merge_layers(layers: Iterable[Iterable[LayerEntry]], implicit_directories: bool = True) -> tree.Directory:
    """Return the root of the tree made by applying ``layers`` (lowest first) to an empty root."""
    root = tree.Directory(tree.Stat(mode=UNINITIALIZED_ROOT_MODE))
    for index, layer in enumerate(layers):
        try:
            apply_layer(root, layer, implicit_directories)
        except FormatError as err:
            err.message = "layer %d: %s" % (index, err.message)
            err.args = (err.message,)
            raise
    return root


def copy_root_metadata_from_usr(root: tree.Directory) -> None:
    """Give the root ``/usr``'s mode, owner, mtime and xattrs (composefs-rs copy_root_metadata_from_usr)."""
    usr = root.entries.get(b"usr")
    if not isinstance(usr, tree.Directory):
        raise FormatError("the image has no /usr directory to take the root directory's metadata from")
    root.stat = tree.Stat(mode=usr.stat.mode, uid=usr.stat.uid, gid=usr.stat.gid, mtime=usr.stat.mtime,
                          mtime_nsec=usr.stat.mtime_nsec, xattrs=dict(usr.stat.xattrs))


def canonicalize_run(root: tree.Directory) -> None:
    """Empty ``/run`` if present and give it ``/usr``'s mtime (composefs-rs canonicalize_run)."""
    run = root.entries.get(b"run")
    if run is None:
        return
    if not isinstance(run, tree.Directory):
        raise FormatError("/run is not a directory")
    usr = root.entries.get(b"usr")
    if not isinstance(usr, tree.Directory):
        raise FormatError("the image has no /usr directory to take /run's mtime from")
    run.stat.mtime = usr.stat.mtime
    run.stat.mtime_nsec = usr.stat.mtime_nsec
    run.entries.clear()


def filter_xattrs(root: tree.Directory, keep_user_xattrs: bool = False) -> None:
    """Drop every xattr except the container allowlist (and ``user.*`` when asked), tree-wide."""
    seen = set()
    for _path, node in tree.walk(root):
        if id(node.stat) in seen:
            continue
        seen.add(id(node.stat))
        xattrs = node.stat.xattrs
        for name in list(xattrs):
            if name in CONTAINER_XATTR_ALLOWLIST or (keep_user_xattrs and name.startswith(USER_XATTR_PREFIX)):
                continue
            del xattrs[name]


def transform_for_oci(root: tree.Directory, keep_user_xattrs: bool = False) -> None:
    """Apply composefs-rs transform_for_oci: root metadata from /usr, empty /run, filtered xattrs."""
    copy_root_metadata_from_usr(root)
    canonicalize_run(root)
    filter_xattrs(root, keep_user_xattrs)
