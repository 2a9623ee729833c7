# -*- coding: utf-8 -*-
# Copyright: (c) 2026, bootc.composefs maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Entries and refs: the symlinks that give repository objects their names and keep them alive.

Layer: repository. Spec: ``composefs-repo.md`` sections 2.3, 5 and 9; upstream: composefs-rs
``crates/composefs/src/repository.rs`` (``symlink_impl``, ``has_stream``, ``list_refs_in``).

Two categories, ``images/`` and ``streams/``, each with two kinds of symlinks::

    <category>/<entry>            -> ../objects/<xx>/<rest>        an entry names one object
    <category>/refs/<c1>/.../<ck> -> ../ * k + <entry>             a ref names one entry (a GC root)

Image entries are named by the object id of the EROFS image; stream entries by a caller's
content identifier without ``/`` (``oci-manifest-sha256:<hex>``). Ref names may have several
components; their directories are created (mode 0755) on demand and never removed here.

Because a ref names an *entry*, re-pointing the entry (a rewritten stream) moves every ref with
it. Every symlink is created or replaced atomically (``paths.replace_symlink``); reading one checks
its text against the exact form above before anything follows it.
"""

from __future__ import annotations

import os
from typing import NamedTuple

from ansible_collections.bootc.composefs.plugins.module_utils.errors import UnsafePathError
from ansible_collections.bootc.composefs.plugins.module_utils.repository import paths

__all__ = [
    "EntryInfo",
    "read_entry",
    "write_entry",
    "remove_entry",
    "list_entries",
    "write_ref",
    "read_ref",
    "remove_ref",
    "list_refs",
]


class EntryInfo(NamedTuple):
    """A first-level entry of ``images/`` or ``streams/``; ``object_id`` is None (with ``problem``) when unusable."""

    name: str
    object_id: str | None
    link_text: str | None
    problem: str | None = None


def _check_category(category: str) -> None:
    if category not in paths.CATEGORIES:
        raise UnsafePathError("unknown category %r (expected images or streams)" % (category,))


def read_entry(repo_fd: int, category: str, name: str, algorithm) -> str | None:
    """Return the object id entry ``<category>/<name>`` names, or None when there is no such entry."""
    _check_category(category)
    paths.validate_entry_name(category, name, algorithm)
    where = category + "/" + name
    try:
        dir_fd = paths.open_dir(repo_fd, category)
    except FileNotFoundError:
        return None
    try:
        text = paths.readlink_at(dir_fd, name, where=where)
    finally:
        os.close(dir_fd)
    if text is None:
        return None
    return paths.parse_entry_link(text, algorithm, where=where)


def write_entry(repo_fd: int, category: str, name: str, object_id: str, algorithm) -> None:
    """Create or atomically re-point ``<category>/<name>`` -> ``../objects/<xx>/<rest>``."""
    _check_category(category)
    paths.validate_entry_name(category, name, algorithm)
    paths.validate_object_id(object_id, algorithm)
    dir_fd = paths.open_dir(repo_fd, category, create=True)
    try:
        paths.replace_symlink(repo_fd, dir_fd, name, paths.entry_link_text(object_id), where=category + "/" + name)
    finally:
        os.close(dir_fd)


def remove_entry(repo_fd: int, category: str, name: str, algorithm) -> bool:
    """Unlink entry symlink ``<category>/<name>``; False when absent."""
    _check_category(category)
    paths.validate_entry_name(category, name, algorithm)
    try:
        dir_fd = paths.open_dir(repo_fd, category)
    except FileNotFoundError:
        return False
    try:
        return paths.unlink_symlink(dir_fd, name, where=category + "/" + name)
    finally:
        os.close(dir_fd)


def list_entries(repo_fd: int, category: str, algorithm) -> list:
    """Return an :class:`EntryInfo` per first-level name of ``<category>/`` except ``refs``, sorted by name.

    Names that are not symlinks, or whose link text is not ``../objects/<xx>/<rest>``, are
    reported with ``object_id`` None and a ``problem`` instead of raising.
    """
    _check_category(category)
    try:
        dir_fd = paths.open_dir(repo_fd, category)
    except FileNotFoundError:
        return []
    result = []
    try:
        for entry in sorted(os.scandir(dir_fd), key=lambda e: e.name):
            if entry.name == paths.REFS:
                continue
            if not entry.is_symlink():
                result.append(EntryInfo(entry.name, None, None, "not a symbolic link"))
                continue
            text = os.readlink(entry.name, dir_fd=dir_fd)
            try:
                paths.validate_entry_name(category, entry.name, algorithm)
                object_id = paths.parse_entry_link(text, algorithm)
            except UnsafePathError as err:
                result.append(EntryInfo(entry.name, None, text, err.message))
                continue
            result.append(EntryInfo(entry.name, object_id, text))
    finally:
        os.close(dir_fd)
    return result


def _refs_dir(category: str, components: tuple) -> str:
    return "/".join((category, paths.REFS) + tuple(components))


def write_ref(repo_fd: int, category: str, ref: str, entry_name: str, algorithm) -> None:
    """Create or atomically re-point ``<category>/refs/<ref>`` -> ``../`` * depth + ``entry_name``.

    The entry need not exist (as in composefs-rs ``name_stream``).
    """
    _check_category(category)
    components = paths.validate_ref_name(ref)
    paths.validate_entry_name(category, entry_name, algorithm)
    dir_fd = paths.open_dir(repo_fd, _refs_dir(category, components[:-1]), create=True)
    try:
        paths.replace_symlink(repo_fd, dir_fd, components[-1], paths.ref_link_text(ref, entry_name),
                              where=_refs_dir(category, components))
    finally:
        os.close(dir_fd)


def read_ref(repo_fd: int, category: str, ref: str, algorithm) -> str | None:
    """Return the entry name ref ``<category>/refs/<ref>`` names (exact link form checked), or None if absent."""
    _check_category(category)
    components = paths.validate_ref_name(ref)
    where = _refs_dir(category, components)
    try:
        dir_fd = paths.open_dir(repo_fd, _refs_dir(category, components[:-1]))
    except FileNotFoundError:
        return None
    try:
        text = paths.readlink_at(dir_fd, components[-1], where=where)
    finally:
        os.close(dir_fd)
    if text is None:
        return None
    name = paths.parse_ref_link(text, len(components), where=where)
    try:
        return paths.validate_entry_name(category, name, algorithm)
    except UnsafePathError as err:
        raise UnsafePathError("ref names %r, which cannot be a %s entry: %s" % (name, category, err.message), path=where) from None


def remove_ref(repo_fd: int, category: str, ref: str) -> bool:
    """Unlink ref symlink ``<category>/refs/<ref>``; False when absent. Directories are kept."""
    _check_category(category)
    components = paths.validate_ref_name(ref)
    try:
        dir_fd = paths.open_dir(repo_fd, _refs_dir(category, components[:-1]))
    except FileNotFoundError:
        return False
    try:
        return paths.unlink_symlink(dir_fd, components[-1], where=_refs_dir(category, components))
    finally:
        os.close(dir_fd)


def _utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _collect(dir_fd: int, prefix: str, result: list) -> None:
    for entry in sorted(os.scandir(dir_fd), key=lambda e: e.name):
        if not _utf8(entry.name):
            continue
        relpath = prefix + entry.name
        if entry.is_dir(follow_symlinks=False):
            sub_fd = paths.open_dir(dir_fd, entry.name)
            try:
                _collect(sub_fd, relpath + "/", result)
            finally:
                os.close(sub_fd)
        elif entry.is_symlink():
            text = os.readlink(entry.name, dir_fd=dir_fd)
            if _utf8(text):
                result.append((relpath, text))


def list_refs(repo_fd: int, category: str, prefix: str = "") -> list:
    """Return ``(path relative to prefix, link text)`` for every symlink below ``<category>/refs/<prefix>``.

    Recursive, sorted, never follows symlinks; names or texts that are not UTF-8 and files that
    are not symlinks are skipped (as composefs-rs does).
    """
    _check_category(category)
    components = paths.split_relpath(prefix.strip("/"), "ref prefix") if prefix.strip("/") else ()
    try:
        dir_fd = paths.open_dir(repo_fd, _refs_dir(category, components))
    except FileNotFoundError:
        return []
    result = []
    try:
        _collect(dir_fd, "", result)
    finally:
        os.close(dir_fd)
    return result
