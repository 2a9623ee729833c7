# -*- coding: utf-8 -*-
# Copyright: (c) 2026, bootc.composefs maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""``meta.json``: the repository's format version, digest algorithm, features and EROFS formats.

Layer: repository (pure: bytes <-> value; ``repo.py`` reads and writes the file). Spec:
``composefs-repo.md`` section 3; upstream: composefs-rs ``crates/composefs/src/repository.rs``
(``RepoMetadata``, ``FeatureFlags``) and ``repository_format.rs``.

Fields, in the order they are written:

======================== ============================ ================================================
key                      type                         meaning
======================== ============================ ================================================
``version``              integer (u32)                base format version; this code knows 1 (and 0)
``algorithm``            string                       ``fsverity-<sha256|sha512>-12``; block size 4 KiB only
``features``             object, optional             ``compatible``, ``read-only-compatible``,
                                                      ``incompatible``: arrays of strings, each optional
                                                      on read and always written
``erofs_formats``        object, optional             ``{"default": 0|1|2, "extra": [0|1|2, ...]}``;
                                                      ``extra`` optional, omitted when empty
======================== ============================ ================================================

Written as JSON with 2-space indentation, ``": "`` after keys, ``[]`` for empty arrays and a final
newline (serde_json's pretty printer; ``json.dumps(obj, indent=2) + "\\n"`` gives the same bytes).

Compatibility rules (read side):

- ``version`` greater than 1: refuse the repository (RepositoryFormatError).
- a feature in ``incompatible`` that we do not know: refuse. Known: none.
- a feature in ``read-only-compatible`` that we do not know: the repository may be read but not
  written. Known: ``v1_erofs``. (composefs-rs 0.9.0 computes this but does not enforce it; we do.)
- a feature in ``compatible``: ignored. Known: none.
- unknown top-level keys (e.g. the pre-release ``erofs_version``) and unknown keys inside
  ``features`` / ``erofs_formats`` are ignored; duplicate keys, ``NaN`` and wrong types are errors.

Effective EROFS formats (section 3.3): ``erofs_formats`` as stored unless it is absent or exactly
``{"default": 2}``; then ``{"default": 1}`` when ``v1_erofs`` is read-only-compatible, else
``{"default": 2}`` (repositories older than the field are V2). Writers put ``v1_erofs`` in
``read-only-compatible`` exactly when the default format is 1.

Two configurations are equal (idempotent init) when all fields are, with an absent
``erofs_formats`` read as ``{"default": 2}`` and ``extra`` as a sorted set, as in composefs-rs.

On disk (:func:`load_meta`, :func:`write_meta`): the file is opened ``O_NOFOLLOW`` relative to the
repository descriptor. It is created atomically and never overwritten: staged (``O_TMPFILE`` or
``.tmp-meta-<random>``), fsynced, reopened read-only, given fs-verity for a *secure* repository,
then linked to ``meta.json``; an existing file wins and the caller compares. Whether the file has
fs-verity is the one thing that makes a repository secure (section 3.5).
"""

from __future__ import annotations

import errno
import json
import os
from dataclasses import dataclass, field

from ansible_collections.bootc.composefs.plugins.module_utils.errors import (
    ComposefsError,
    FormatError,
    RepositoryFormatError,
    UnsafePathError,
)
from ansible_collections.bootc.composefs.plugins.module_utils.formats import fsverity
from ansible_collections.bootc.composefs.plugins.module_utils.repository import paths

__all__ = [
    "REPO_FORMAT_VERSION",
    "V1_EROFS",
    "KNOWN_COMPATIBLE",
    "KNOWN_READ_ONLY_COMPATIBLE",
    "KNOWN_INCOMPATIBLE",
    "EROFS_FORMAT_VERSIONS",
    "RepoMeta",
    "new_meta",
    "algorithm_text",
    "parse_algorithm",
    "parse_meta",
    "encode_meta",
    "check_meta",
    "load_meta",
    "write_meta",
]

REPO_FORMAT_VERSION = 1
MAX_U32 = (1 << 32) - 1
V1_EROFS = "v1_erofs"
KNOWN_COMPATIBLE = frozenset()
KNOWN_READ_ONLY_COMPATIBLE = frozenset((V1_EROFS,))
KNOWN_INCOMPATIBLE = frozenset()
EROFS_FORMAT_VERSIONS = (0, 1, 2)
LEGACY_EROFS_DEFAULT = 2  # repositories written before erofs_formats existed
ALGORITHM_PREFIX = "fsverity-"

MAX_META_JSON_BYTES = 1 << 20  # meta.json is a few hundred bytes; anything this big is not one
META_TMP_PREFIX = ".tmp-meta-"

_FEATURE_KEYS = (("compatible", "compatible"), ("read-only-compatible", "read_only_compatible"),
                 ("incompatible", "incompatible"))


@dataclass(frozen=True)
class RepoMeta:
    """The content of ``meta.json``; tuples keep the on-disk order of feature lists."""

    version: int
    algorithm: fsverity.HashAlgorithm
    compatible: tuple = ()
    read_only_compatible: tuple = ()
    incompatible: tuple = ()
    erofs_default: int = LEGACY_EROFS_DEFAULT
    erofs_extra: tuple = ()  # sorted, unique
    erofs_formats_present: bool = field(default=True, compare=False)

    def unknown_read_only_features(self) -> tuple:
        """Return the read-only-compatible features this code does not know (non-empty: open read-only)."""
        return tuple(f for f in self.read_only_compatible if f not in KNOWN_READ_ONLY_COMPATIBLE)

    def effective_erofs_formats(self) -> tuple:
        """Return ``(default, extra)``: the EROFS format versions images are written in (section 3.3)."""
        if self.erofs_formats_present and (self.erofs_default, self.erofs_extra) != (LEGACY_EROFS_DEFAULT, ()):
            return self.erofs_default, self.erofs_extra
        if V1_EROFS in self.read_only_compatible:
            return 1, ()
        return LEGACY_EROFS_DEFAULT, ()

    def erofs_generation_order(self) -> tuple:
        """Return the EROFS versions in the order images are generated: default, then extra ascending, no repeat."""
        default, extra = self.effective_erofs_formats()
        return (default,) + tuple(v for v in extra if v != default)


def _check_erofs_version(value, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value not in EROFS_FORMAT_VERSIONS:
        raise FormatError("%s is %r; expected one of the EROFS format versions 0, 1, 2" % (what, value))
    return value


def new_meta(algorithm: fsverity.HashAlgorithm, erofs_default: int = 1, erofs_extra=()) -> RepoMeta:
    """Return the metadata ``init`` writes: version 1, ``v1_erofs`` exactly when the default format is 1."""
    if algorithm not in fsverity.ALGORITHMS:
        raise RepositoryFormatError("unsupported fs-verity algorithm %r; use SHA256 or SHA512" % (algorithm,))
    _check_erofs_version(erofs_default, "erofs_default")
    extra = tuple(sorted({_check_erofs_version(v, "erofs_extra entry") for v in erofs_extra}))
    return RepoMeta(version=REPO_FORMAT_VERSION, algorithm=algorithm,
                    read_only_compatible=(V1_EROFS,) if erofs_default == 1 else (),
                    erofs_default=erofs_default, erofs_extra=extra)


def algorithm_text(algorithm: fsverity.HashAlgorithm) -> str:
    """Return the ``algorithm`` value of meta.json: ``fsverity-<hash>-12``."""
    return "%s%s-%d" % (ALGORITHM_PREFIX, algorithm.name, fsverity.LG_BLOCK_SIZE)


def parse_algorithm(text) -> fsverity.HashAlgorithm:
    """Return the algorithm named by ``fsverity-<sha256|sha512>-12``; FormatError otherwise."""
    if not isinstance(text, str) or not text.startswith(ALGORITHM_PREFIX) or "-" not in text[len(ALGORITHM_PREFIX):]:
        raise FormatError("algorithm %r is not of the form fsverity-<hash>-<lg_blocksize>" % (text,))
    hash_name, lg_text = text[len(ALGORITHM_PREFIX):].rsplit("-", 1)
    if not lg_text.isdigit() or not lg_text.isascii() or int(lg_text) != fsverity.LG_BLOCK_SIZE:
        raise FormatError("algorithm %r: only lg_blocksize %d (4 KiB blocks) is supported" % (text, fsverity.LG_BLOCK_SIZE))
    for algorithm in fsverity.ALGORITHMS:
        if algorithm.name == hash_name:
            return algorithm
    raise FormatError("algorithm %r: unknown hash %r (expected sha256 or sha512)" % (text, hash_name))


def _reject_duplicates(pairs):
    result = {}
    for key, value in pairs:
        if key in result:
            raise FormatError("duplicate key %r in a JSON object" % (key,))
        result[key] = value
    return result


def _reject_constant(name):
    raise FormatError("%s is not valid JSON" % name)


def _load_json(data):
    if isinstance(data, str):
        text = data
    else:
        try:
            text = bytes(data).decode("utf-8")
        except UnicodeDecodeError as err:
            raise FormatError("meta.json is not UTF-8", offset=err.start) from None
    try:
        return json.loads(text, object_pairs_hook=_reject_duplicates, parse_constant=_reject_constant)
    except json.JSONDecodeError as err:
        raise FormatError("invalid JSON: %s" % err.msg, offset=len(text[:err.pos].encode("utf-8", "replace"))) from None
    except RecursionError:
        raise FormatError("invalid JSON: nested too deeply") from None


def _string_list(value, what: str) -> tuple:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise FormatError("%s must be an array of strings, not %r" % (what, value))
    return tuple(value)


def parse_meta(data) -> RepoMeta:
    """Parse meta.json bytes; FormatError when malformed, RepositoryFormatError when the version is too new."""
    obj = _load_json(data)
    if not isinstance(obj, dict):
        raise FormatError("meta.json must hold a JSON object, not %s" % type(obj).__name__)
    version = obj.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or not 0 <= version <= MAX_U32:
        raise FormatError("\"version\" is %r; expected an unsigned integer" % (version,))
    if version > REPO_FORMAT_VERSION:
        raise RepositoryFormatError("repository format version %d is newer than the version %d this collection "
                                    "understands; update bootc.composefs" % (version, REPO_FORMAT_VERSION))
    if "algorithm" not in obj:
        raise FormatError("\"algorithm\" is missing; expected e.g. \"fsverity-sha512-12\"")
    algorithm = parse_algorithm(obj["algorithm"])
    features = obj.get("features", {})
    if not isinstance(features, dict):
        raise FormatError("\"features\" must be an object, not %r" % (features,))
    lists = {attr: _string_list(features.get(key, []), "features.%s" % key) for key, attr in _FEATURE_KEYS}
    formats = obj.get("erofs_formats")
    present = "erofs_formats" in obj
    if not present:
        default, extra = LEGACY_EROFS_DEFAULT, ()
    elif not isinstance(formats, dict) or "default" not in formats:
        raise FormatError("\"erofs_formats\" must be an object with a \"default\" key, not %r" % (formats,))
    else:
        default = _check_erofs_version(formats["default"], "erofs_formats.default")
        extra_list = formats.get("extra", [])
        if not isinstance(extra_list, list):
            raise FormatError("erofs_formats.extra must be an array, not %r" % (extra_list,))
        extra = tuple(sorted({_check_erofs_version(v, "erofs_formats.extra entry") for v in extra_list}))
    return RepoMeta(version=version, algorithm=algorithm, erofs_default=default, erofs_extra=extra,
                    erofs_formats_present=present, **lists)


def encode_meta(meta: RepoMeta) -> bytes:
    """Return the exact meta.json bytes for ``meta`` (serde_json pretty printing plus a newline)."""
    formats = {"default": meta.erofs_default}
    if meta.erofs_extra:
        formats["extra"] = list(meta.erofs_extra)
    obj = {
        "version": meta.version,
        "algorithm": algorithm_text(meta.algorithm),
        "features": {key: list(getattr(meta, attr)) for key, attr in _FEATURE_KEYS},
        "erofs_formats": formats,
    }
    return (json.dumps(obj, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def check_meta(meta: RepoMeta, algorithm: fsverity.HashAlgorithm | None = None) -> tuple:
    """Check that this code may use the repository; return the unknown read-only features (read-only if any).

    RepositoryFormatError: version too new, unknown incompatible feature, or an algorithm other than
    the ``algorithm`` the caller asked for.
    """
    if meta.version > REPO_FORMAT_VERSION:
        raise RepositoryFormatError("repository format version %d is newer than the version %d this collection "
                                    "understands; update bootc.composefs" % (meta.version, REPO_FORMAT_VERSION))
    unknown = [f for f in meta.incompatible if f not in KNOWN_INCOMPATIBLE]
    if unknown:
        raise RepositoryFormatError("repository uses incompatible feature(s) %s that this collection does not "
                                    "support; update bootc.composefs" % ", ".join(repr(f) for f in unknown))
    if algorithm is not None and algorithm != meta.algorithm:
        raise RepositoryFormatError("repository uses %s, not the requested %s; open it without an algorithm or "
                                    "with %s" % (algorithm_text(meta.algorithm), algorithm_text(algorithm), meta.algorithm.name))
    return meta.unknown_read_only_features()


def _open_meta(dir_fd: int, where: str) -> int | None:
    try:
        return os.open(paths.META_JSON, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
    except FileNotFoundError:
        return None
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise UnsafePathError("meta.json is a symbolic link; replace it by the file itself", path=where) from None
        raise


def load_meta(dir_fd: int, where: str | None = None) -> tuple | None:
    """Return ``(RepoMeta, secure)`` from ``meta.json`` in ``dir_fd``, or None when there is none.

    ``secure`` is whether the file has fs-verity. Errors carry ``where`` (the file's path).
    """
    meta_fd = _open_meta(dir_fd, where)
    if meta_fd is None:
        return None
    try:
        with os.fdopen(os.dup(meta_fd), "rb") as fileobj:
            data = fileobj.read(MAX_META_JSON_BYTES + 1)
        if len(data) > MAX_META_JSON_BYTES:
            raise FormatError("meta.json is larger than %d bytes; it is not a repository metadata file" % MAX_META_JSON_BYTES)
        meta = parse_meta(data)
        return meta, fsverity.measure_fd(meta_fd, meta.algorithm) is not None
    except ComposefsError as err:
        err.with_path(where)
        raise
    finally:
        os.close(meta_fd)


def write_meta(dir_fd: int, meta: RepoMeta, verity: bool, where: str | None = None) -> bool:
    """Create ``meta.json`` atomically, never overwriting; False when one already exists.

    ``verity`` enables fs-verity on it (a secure repository); ComposefsError when unsupported.
    """
    # Imported here: readers (status) never write, and staging loads ctypes.
    from ansible_collections.bootc.composefs.plugins.module_utils.repository import staging  # pylint: disable=import-outside-toplevel
    with staging.StagedFile(dir_fd, META_TMP_PREFIX) as stage:
        staging.write_all(stage.fd, encode_meta(meta))
        os.fsync(stage.fd)
        ro_fd = stage.reopen_read_only()
        if verity and not fsverity.enable_fd(ro_fd, meta.algorithm):
            raise ComposefsError("cannot enable fs-verity on meta.json: this filesystem does not support it; initialize "
                                 "with insecure=True or use a filesystem with fs-verity", path=where)
        try:
            stage.link_into_place(dir_fd, paths.META_JSON)
        except FileExistsError:
            return False
    os.fsync(dir_fd)
    return True
