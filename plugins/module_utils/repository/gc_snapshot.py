# -*- coding: utf-8 -*-
# Copyright: (c) 2026, bootc.composefs maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a repository's refs and first-level entries say, read without following a symlink (layer: repository).

The first step of a garbage collection (``gc.py``) and what its application re-validates under the
exclusive lock. Spec: ``composefs-repo.md`` sections 2.3, 5 and 12.2 steps 1-2 and 4-5; upstream:
composefs-rs ``crates/composefs/src/repository.rs`` (``gc_impl``: readdir of ``images/`` and
``streams/``, the walk of ``*/refs/``).

:func:`scan_repository` lists every ref below ``images/refs/`` and ``streams/refs/`` (recursively)
and every first-level entry of ``images/`` and ``streams/`` with ``readlink`` only, each as a
record with the problem that makes it unusable, if any:

======================= ======================================================================
record                  unusable when
======================= ======================================================================
:class:`RefLink`        its name is not UTF-8, it is not a symbolic link, or its link text is
                        not ``../`` * depth + a valid entry name of its category
:class:`EntryLink`      it is not a symbolic link, its name is not valid for its category, or
                        its link text is not ``../objects/<xx>/<rest>``
======================= ======================================================================

A ``refs`` directory or ``images/`` / ``streams/`` that is a symlink or no directory raises
``UnsafePathError`` (the GC then refuses); single bad refs and entries are recorded, and the plan
decides (a bad ref is an error: it could be a root; a bad entry no root names is reported).
:meth:`RepoSnapshot.fingerprint` is what the application compares before deleting.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import NamedTuple

from ansible_collections.bootc.composefs.plugins.module_utils.errors import UnsafePathError
from ansible_collections.bootc.composefs.plugins.module_utils.repository import paths

__all__ = ["RefLink", "EntryLink", "RepoSnapshot", "scan_repository", "path_in", "REF", "ENTRY"]

REF = "ref"
ENTRY = "entry"
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class RefLink(NamedTuple):
    """A symlink below ``<category>/refs/``: ``ref`` is its path there; ``entry`` None (with ``problem``) if unusable."""

    category: str
    ref: str
    link_text: str | None
    entry: str | None
    problem: str | None = None


class EntryLink(NamedTuple):
    """A first-level name of ``images/`` or ``streams/``; ``object_id`` None (with ``problem``) if unusable."""

    category: str
    name: str
    link_text: str | None
    object_id: str | None
    problem: str | None = None


@dataclass(frozen=True)
class RepoSnapshot:
    """Every ref and entry of a repository, sorted (category, name)."""

    refs: tuple
    entries: tuple

    def entry_map(self, category: str) -> dict:
        """``{name: EntryLink}`` of one category."""
        return {e.name: e for e in self.entries if e.category == category}

    def fingerprint(self) -> tuple:
        """What re-validation compares: every (kind, category, name, link text)."""
        return tuple(sorted([(REF, r.category, r.ref, r.link_text) for r in self.refs]
                            + [(ENTRY, e.category, e.name, e.link_text) for e in self.entries]))


def path_in(repo, *parts) -> str:
    """The absolute path of ``parts`` inside the repository (for messages)."""
    return os.path.join(repo.path, *parts)


def _is_utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _scan_refs(repo, category: str, dir_fd: int, prefix: str, out: list) -> None:
    with os.scandir(dir_fd) as listing:
        items = sorted(listing, key=lambda e: e.name)
    for item in items:
        relpath = prefix + item.name
        where = path_in(repo, category, paths.REFS, relpath)
        if not _is_utf8(item.name):
            out.append(RefLink(category, relpath, None, None, "name is not UTF-8"))
            continue
        if item.is_dir(follow_symlinks=False):
            sub_fd = os.open(item.name, _DIR_FLAGS, dir_fd=dir_fd)
            try:
                _scan_refs(repo, category, sub_fd, relpath + "/", out)
            finally:
                os.close(sub_fd)
            continue
        if not item.is_symlink():
            out.append(RefLink(category, relpath, None, None, "not a symbolic link (a ref must be one)"))
            continue
        text = os.readlink(item.name, dir_fd=dir_fd)
        try:
            name = paths.parse_ref_link(text, relpath.count("/") + 1, where=where)
            paths.validate_entry_name(category, name, repo.algorithm)
        except UnsafePathError as err:
            out.append(RefLink(category, relpath, text, None, err.message))
            continue
        out.append(RefLink(category, relpath, text, name))


def _scan_category(repo, category: str, refs_out: list, entries_out: list) -> None:
    try:
        cat_fd = paths.open_dir(repo.fd, category)
    except FileNotFoundError:
        return
    try:
        with os.scandir(cat_fd) as listing:
            items = sorted(listing, key=lambda e: e.name)
        for item in items:
            if item.name == paths.REFS:
                if not item.is_dir(follow_symlinks=False):
                    raise UnsafePathError("is not a directory; refs must be a directory of symlinks",
                                          path=path_in(repo, category, paths.REFS))
                refs_fd = os.open(paths.REFS, _DIR_FLAGS, dir_fd=cat_fd)
                try:
                    _scan_refs(repo, category, refs_fd, "", refs_out)
                finally:
                    os.close(refs_fd)
                continue
            if not item.is_symlink():
                entries_out.append(EntryLink(category, item.name, None, None, "not a symbolic link"))
                continue
            text = os.readlink(item.name, dir_fd=cat_fd)
            try:
                paths.validate_entry_name(category, item.name, repo.algorithm)
                object_id = paths.parse_entry_link(text, repo.algorithm)
            except UnsafePathError as err:
                entries_out.append(EntryLink(category, item.name, text, None, err.message))
                continue
            entries_out.append(EntryLink(category, item.name, text, object_id))
    finally:
        os.close(cat_fd)


def scan_repository(repo) -> RepoSnapshot:
    """List every ref and first-level entry of ``repo`` (never following a symlink).

    UnsafePathError when ``images/``, ``streams/`` or a ``refs`` directory is a symlink or no
    directory; problems with single refs or entries are recorded in them, not raised.
    """
    refs_out = []
    entries_out = []
    for category in paths.CATEGORIES:
        try:
            _scan_category(repo, category, refs_out, entries_out)
        except UnsafePathError as err:
            if err.path is not None and not os.path.isabs(err.path):
                err.path = path_in(repo, err.path)
            raise
    return RepoSnapshot(refs=tuple(refs_out), entries=tuple(entries_out))
