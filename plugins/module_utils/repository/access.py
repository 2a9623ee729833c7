# -*- coding: utf-8 -*-
# Copyright: (c) 2026, bootc.composefs maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Access to a repository directory: initializing it, and deciding how an opened one may be used.

Layer: repository. Spec: ``composefs-repo.md`` sections 3.5 (init and open) and 3.6 (repositories
older than meta.json); upstream: composefs-rs ``crates/composefs/src/repository.rs``
(``init_path``, ``open_path``, ``open_upgrade``, ``infer_metadata``).

``init``: ``mkdir(path, 0700)`` (an existing directory is fine), then meta.json is created
atomically without overwriting (``meta.write_meta``); fs-verity on it makes the repository secure.
When a meta.json exists (someone was first, or init runs again) it must equal the requested
configuration. A directory whose ``objects/`` already holds objects of another algorithm is refused.
``objects/``, ``images/`` and ``streams/`` are created later, when first written.

``open`` (the caller holds the descriptor and the shared lock):

- meta.json present: parse it, refuse a newer version, unknown incompatible features or another
  algorithm than the caller asked for; unknown read-only-compatible features allow reading only;
  *secure* = meta.json has fs-verity;
- meta.json absent, no ``objects/``: not initialized;
- meta.json absent, ``objects/`` present: a repository from before meta.json. The algorithm comes
  from the first object's name length (62 hex: sha256, 126: sha512), *secure* from that object's
  fs-verity; no object at all is an error. It opens read-only and nothing is written, unless the
  caller asks for ``upgrade``: then meta.json is written the way composefs-rs 0.9.0
  ``open_upgrade`` writes it (EROFS default V1 with ``v1_erofs``, fs-verity iff the probed object
  has it) and the repository is opened normally;
- writing also needs a filesystem that is not mounted read-only.
"""

from __future__ import annotations

import os
from typing import NamedTuple

from ansible_collections.bootc.composefs.plugins.module_utils.errors import ComposefsError, RepositoryFormatError
from ansible_collections.bootc.composefs.plugins.module_utils.repository import meta as meta_json, objects, paths

__all__ = ["OpenState", "check_writable_filesystem", "load_state", "init_directory"]

REPO_DIR_MODE = 0o700


class OpenState(NamedTuple):
    """What opening found: the metadata and how the repository may be used."""

    meta: meta_json.RepoMeta
    secure: bool
    read_only: bool
    legacy: bool = False  # no meta.json (and not upgraded)
    read_only_reason: str = ""


def check_writable_filesystem(fd: int, path: str) -> None:
    """RepositoryFormatError when the filesystem holding ``fd`` is mounted read-only."""
    if os.fstatvfs(fd).f_flag & os.ST_RDONLY:
        raise RepositoryFormatError("the filesystem holding the repository is mounted read-only; remount it read-write "
                                    "before writing", path=path)


def _legacy_state(fd: int, path: str, writable: bool, algorithm, upgrade: bool) -> OpenState | None:
    """State of a repository without meta.json; None once ``upgrade`` has written one."""
    if paths.lstat_at(fd, paths.OBJECTS) is None:
        raise RepositoryFormatError("repository is not initialized (no meta.json); initialize it first", path=path)
    inferred, has_verity = objects.infer_algorithm(fd, path)
    if algorithm is not None and algorithm != inferred:
        raise RepositoryFormatError("repository without meta.json holds %s objects, not the requested %s; open it "
                                    "without an algorithm" % (inferred.name, algorithm.name), path=path)
    if not upgrade:
        if writable:
            raise RepositoryFormatError("repository predates meta.json; open it with upgrade=True to write one before "
                                        "writing, or open it read-only", path=path)
        legacy_meta = meta_json.RepoMeta(version=meta_json.REPO_FORMAT_VERSION, algorithm=inferred,
                                         erofs_formats_present=False)
        return OpenState(legacy_meta, has_verity, True, True,
                         "the repository has no meta.json (open with upgrade=True to write one)")
    check_writable_filesystem(fd, path)
    meta_json.write_meta(fd, meta_json.new_meta(inferred), has_verity, os.path.join(path, paths.META_JSON))
    return None


def load_state(fd: int, path: str, writable: bool, algorithm=None, upgrade: bool = False) -> OpenState:
    """Read and check meta.json of the repository open as ``fd``; return how it may be used."""
    meta_where = os.path.join(path, paths.META_JSON)
    loaded = meta_json.load_meta(fd, meta_where)
    if loaded is None:
        state = _legacy_state(fd, path, writable, algorithm, upgrade)
        if state is not None:
            return state
        loaded = meta_json.load_meta(fd, meta_where)
        if loaded is None:
            raise RepositoryFormatError("meta.json vanished right after the upgrade wrote it", path=path)
    meta, secure = loaded
    try:
        unknown = meta_json.check_meta(meta, algorithm)
    except ComposefsError as err:
        err.with_path(meta_where)
        raise
    reason = ""
    if unknown:
        reason = "meta.json lists read-only-compatible feature(s) %s unknown to this collection" % ", ".join(unknown)
        if writable:
            raise RepositoryFormatError("cannot open for writing: %s; update bootc.composefs" % reason, path=meta_where)
    elif not writable:
        reason = "opened read-only (writable=False)"
    if writable:
        check_writable_filesystem(fd, path)
    return OpenState(meta, secure, not writable, False, reason)


def _check_legacy_algorithm(fd: int, path: str, algorithm) -> None:
    """Refuse to write meta.json over an ``objects/`` holding objects of another algorithm."""
    try:
        inferred = objects.infer_algorithm(fd, path)[0]
    except RepositoryFormatError:
        return  # no objects yet
    if inferred != algorithm:
        raise RepositoryFormatError("directory already holds %s objects; initialize it with that algorithm or use an "
                                    "empty directory" % inferred.name, path=path)


def init_directory(path: str, new: meta_json.RepoMeta, insecure: bool) -> None:
    """Create the repository directory and its meta.json, or check that an existing one equals ``new``."""
    try:
        os.mkdir(path, REPO_DIR_MODE)
    except FileExistsError:
        pass
    except OSError as err:
        raise ComposefsError("cannot create the repository directory: %s" % err.strerror, path=path) from None
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as err:
        raise ComposefsError("cannot open the repository directory: %s" % err.strerror, path=path) from None
    where = os.path.join(path, paths.META_JSON)
    try:
        loaded = meta_json.load_meta(fd, where)
        if loaded is None:
            if paths.lstat_at(fd, paths.OBJECTS) is not None:
                _check_legacy_algorithm(fd, path, new.algorithm)
            meta_json.write_meta(fd, new, not insecure, where)
            loaded = meta_json.load_meta(fd, where)
        if loaded is None:
            raise RepositoryFormatError("meta.json vanished right after init wrote it", path=where)
    finally:
        os.close(fd)
    current = loaded[0]
    if current != new:
        raise RepositoryFormatError(
            "already initialized with a different configuration (%s, EROFS default %d, extra %s); requested %s, EROFS "
            "default %d, extra %s: open it as it is or use another directory"
            % (meta_json.algorithm_text(current.algorithm), current.erofs_default, list(current.erofs_extra),
               meta_json.algorithm_text(new.algorithm), new.erofs_default, list(new.erofs_extra)), path=where)
