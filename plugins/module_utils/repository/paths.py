# -*- coding: utf-8 -*-
# Copyright: (c) 2026, bootc.composefs maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where things live in a composefs repository, and how to touch them without leaving it.

Layer: repository. Spec: ``composefs-repo.md`` sections 2, 4.3 and 5; upstream: composefs-rs
``crates/composefs/src/repository.rs`` (``symlink_impl``, ``has_stream``) and ``util.rs``
(``replace_symlinkat``).

Layout (relative to the repository directory)::

    meta.json
    objects/<xx>/<rest>          object files, <xx><rest> = lowercase hex fs-verity digest
    images/<hex>                 -> ../objects/<xx>/<rest>
    images/refs/<c1>/.../<ck>    -> ../ * k + <hex>
    streams/<stream name>        -> ../objects/<xx>/<rest>
    streams/refs/<c1>/.../<ck>   -> ../ * k + <stream name>
    .symlink-<12 alnum>          temporary symlink of an atomic replace (left behind by a crash)
    objects/.tmp-object-<12>     temporary object file when O_TMPFILE is unsupported

Link texts are exactly the forms above (section 5.1): an entry is ``../objects/`` + the object's
path, a ref climbs one ``..`` per component of its own name and names a first-level entry. Readers
here accept only those exact forms, in lowercase hex, before following anything: a link text
naming ``/etc/passwd`` or ``../../x`` is an :class:`UnsafePathError`, never a path we open.

Safety rules for every operation in this layer:

- everything is opened relative to the repository directory descriptor, one component at a time,
  with ``O_NOFOLLOW`` (a symlinked ``objects/`` or ``streams/refs/`` is refused, not followed);
- names are validated first: no ``/`` inside a component, no empty component, no ``.``/``..``,
  no NUL, valid UTF-8;
- object ids are lowercase hex of exactly twice the digest size of the repository's algorithm.
"""

from __future__ import annotations

import errno
import os
import re
import stat
import string

from ansible_collections.bootc.composefs.plugins.module_utils.errors import UnsafePathError

__all__ = [
    "META_JSON",
    "OBJECTS",
    "IMAGES",
    "STREAMS",
    "REFS",
    "CATEGORIES",
    "validate_object_id",
    "object_relpath",
    "object_repo_path",
    "is_object_subdir",
    "parse_object_name",
    "entry_link_text",
    "parse_entry_link",
    "validate_stream_name",
    "validate_entry_name",
    "split_relpath",
    "validate_ref_name",
    "ref_link_text",
    "parse_ref_link",
    "open_dir",
    "lstat_at",
    "readlink_at",
    "replace_symlink",
    "unlink_symlink",
    "random_name",
]

META_JSON = "meta.json"
OBJECTS = "objects"
IMAGES = "images"
STREAMS = "streams"
REFS = "refs"  # reserved first-level name inside images/ and streams/
CATEGORIES = (IMAGES, STREAMS)

ENTRY_LINK_PREFIX = "../objects/"
SYMLINK_TMP_PREFIX = ".symlink-"
RANDOM_NAME_LENGTH = 12
RANDOM_NAME_ATTEMPTS = 16  # collisions of 12 random alphanumerics only happen by accident

_LOWER_HEX = re.compile("[0-9a-f]+")
_ALNUM = string.ascii_letters + string.digits
# Directories: read-only, must really be directories, never followed when they are symlinks.
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def _is_lower_hex(text: str) -> bool:
    return _LOWER_HEX.fullmatch(text) is not None


def validate_object_id(object_id, algorithm) -> str:
    """Return ``object_id`` when it is lowercase hex of the algorithm's digest; UnsafePathError otherwise."""
    width = 2 * algorithm.digest_size
    if not isinstance(object_id, str) or len(object_id) != width or not _is_lower_hex(object_id):
        raise UnsafePathError("object id %r is not %d lowercase hex digits (an fs-verity %s digest); "
                              "pass the hex digest exactly as the repository names it" % (object_id, width, algorithm.name))
    return object_id


def object_relpath(object_id: str) -> str:
    """Return ``<xx>/<rest>``: the object's path inside ``objects/`` (id already validated)."""
    return object_id[:2] + "/" + object_id[2:]


def object_repo_path(object_id: str) -> str:
    """Return ``objects/<xx>/<rest>``: the object's path inside the repository (id already validated)."""
    return OBJECTS + "/" + object_relpath(object_id)


def is_object_subdir(name: str) -> bool:
    """Return whether ``name`` is an ``objects/`` subdirectory name: two lowercase hex digits."""
    return len(name) == 2 and _is_lower_hex(name)


def parse_object_name(subdir: str, name: str, algorithm) -> str | None:
    """Return the object id named by ``objects/<subdir>/<name>``, or None when that is no object name."""
    object_id = subdir + name
    if len(subdir) != 2 or len(object_id) != 2 * algorithm.digest_size or not _is_lower_hex(object_id):
        return None
    return object_id


def entry_link_text(object_id: str) -> str:
    """Return the link text of an ``images/`` or ``streams/`` entry naming ``object_id``."""
    return ENTRY_LINK_PREFIX + object_relpath(object_id)


def parse_entry_link(text: str, algorithm, where: str | None = None) -> str:
    """Return the object id of entry link text ``../objects/<xx>/<rest>``; UnsafePathError for any other text."""
    width = 2 * algorithm.digest_size
    body = text[len(ENTRY_LINK_PREFIX):] if text.startswith(ENTRY_LINK_PREFIX) else ""
    object_id = body[:2] + body[3:]
    if len(body) != width + 1 or body[2:3] != "/" or not _is_lower_hex(object_id):
        raise UnsafePathError("entry link text %r is not ../objects/<xx>/<rest> with %d lowercase hex digits; "
                              "remove the entry (a garbage collection or a new pull recreates valid ones)" % (text, width),
                              path=where)
    return object_id


def _check_component(component: str, what: str, where: str | None = None) -> None:
    if not component or component in (".", "..") or "/" in component or "\0" in component:
        raise UnsafePathError("%s %r has an empty, '.', '..', '/' or NUL component; use a plain name" % (what, component),
                              path=where)
    try:
        component.encode("utf-8")
    except UnicodeEncodeError:
        raise UnsafePathError("%s %r is not valid UTF-8; use a UTF-8 name" % (what, component), path=where) from None


def validate_stream_name(name) -> str:
    """Return ``name`` when it can be a first-level ``streams/`` entry; UnsafePathError otherwise."""
    if not isinstance(name, str):
        raise UnsafePathError("stream name %r is not a string" % (name,))
    _check_component(name, "stream name")
    if name == REFS:
        raise UnsafePathError("stream name 'refs' is reserved for the refs directory; choose another name")
    return name


def validate_entry_name(category: str, name, algorithm) -> str:
    """Return ``name`` when it can be a first-level entry of ``category`` (images: hex object id)."""
    if category == IMAGES:
        return validate_object_id(name, algorithm)
    if category == STREAMS:
        return validate_stream_name(name)
    raise UnsafePathError("unknown entry category %r (expected images or streams)" % (category,))


def split_relpath(path, what: str = "repository path") -> tuple:
    """Return the components of relative path ``path`` (``a/b/c``); UnsafePathError for forbidden shapes."""
    if not isinstance(path, str) or not path:
        raise UnsafePathError("%s %r is empty or not a string" % (what, path))
    components = tuple(path.split("/"))
    for component in components:
        _check_component(component, "%s %r: component" % (what, path))
    return components


def validate_ref_name(ref) -> tuple:
    """Return the components of ref name ``ref`` (``oci/<tag>``); UnsafePathError for forbidden shapes."""
    return split_relpath(ref, "ref name")


def ref_link_text(ref: str, entry_name: str) -> str:
    """Return the link text of ``<category>/refs/<ref>`` naming first-level entry ``entry_name``."""
    return "../" * len(validate_ref_name(ref)) + entry_name


def parse_ref_link(text: str, depth: int, where: str | None = None) -> str:
    """Return the entry name of a ref link text ``../`` * depth + name; UnsafePathError otherwise.

    The name is checked as a single component (no ``/``, ``.``, ``..``, NUL); whether it is a valid
    stream name or image id is for the caller to check against its category.
    """
    prefix = "../" * depth
    name = text[len(prefix):] if depth > 0 and text.startswith(prefix) else ""
    if not name or name in (".", "..", REFS) or "/" in name or "\0" in name:
        raise UnsafePathError("ref link text %r is not %s<entry name> (a ref %d level(s) below refs/ must name a "
                              "first-level entry); remove or re-create the ref" % (text, prefix or "../", depth), path=where)
    return name


def random_name(prefix: str) -> str:
    """Return ``prefix`` followed by 12 random ASCII letters and digits."""
    import secrets  # pylint: disable=import-outside-toplevel  # writers only: readers (status) skip its import
    return prefix + "".join(secrets.choice(_ALNUM) for _position in range(RANDOM_NAME_LENGTH))


def _unsafe_open_error(err: OSError, dir_fd: int, component: str, relpath: str) -> UnsafePathError | None:
    """Explain why ``component`` could not be opened as a directory without following it."""
    if err.errno not in (errno.ELOOP, errno.ENOTDIR):
        return None
    try:
        is_link = stat.S_ISLNK(os.stat(component, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except OSError:
        is_link = err.errno == errno.ELOOP
    if is_link:
        return UnsafePathError("is a symbolic link where a directory is expected; refusing to follow it out of the "
                               "repository (replace it by a real directory)", path=relpath)
    return UnsafePathError("is not a directory; move it out of the repository", path=relpath)


def open_dir(dir_fd: int, relpath: str, create: bool = False, mode: int = 0o755) -> int:
    """Open directory ``relpath`` below ``dir_fd`` without following symlinks; return a new fd.

    Every component must be a real directory (UnsafePathError otherwise). With ``create``, missing
    components are created with ``mode`` (umask applies). A missing directory without ``create``
    raises FileNotFoundError, which callers turn into "absent".
    """
    components = split_relpath(relpath)
    current = dir_fd
    done = []
    try:
        for component in components:
            done.append(component)
            if create:
                try:
                    os.mkdir(component, mode, dir_fd=current)
                except FileExistsError:
                    pass
            try:
                opened = os.open(component, _DIR_FLAGS, dir_fd=current)
            except OSError as err:
                unsafe = _unsafe_open_error(err, current, component, "/".join(done))
                if unsafe is not None:
                    raise unsafe from None
                raise
            if current != dir_fd:
                os.close(current)
            current = opened
    except BaseException:
        if current != dir_fd:
            os.close(current)
        raise
    return current


def lstat_at(dir_fd: int, name: str) -> os.stat_result | None:
    """Return ``lstat`` of ``name`` in ``dir_fd``, or None when it does not exist."""
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def readlink_at(dir_fd: int, name: str, where: str | None = None) -> str | None:
    """Return the link text of symlink ``name`` in ``dir_fd``; None if absent; UnsafePathError if no symlink."""
    try:
        return os.readlink(name, dir_fd=dir_fd)
    except FileNotFoundError:
        return None
    except OSError as err:
        if err.errno == errno.EINVAL:
            raise UnsafePathError("is not a symbolic link; move it out of the repository", path=where or name) from None
        raise


def replace_symlink(repo_fd: int, parent_fd: int, name: str, text: str, where: str | None = None) -> None:
    """Create symlink ``name`` (in ``parent_fd``) with ``text``, atomically replacing an existing symlink.

    Section 5.3: try ``symlinkat``; if the name exists with the same text, done; otherwise create
    ``.symlink-<random>`` in the repository root and ``renameat`` it over the name. An existing
    non-symlink is refused (UnsafePathError), never replaced.
    """
    try:
        os.symlink(text, name, dir_fd=parent_fd)
        return
    except FileExistsError:
        pass
    current = readlink_at(parent_fd, name, where=where)
    if current == text:
        return
    for _attempt in range(RANDOM_NAME_ATTEMPTS):
        tmp_name = random_name(SYMLINK_TMP_PREFIX)
        try:
            os.symlink(text, tmp_name, dir_fd=repo_fd)
        except FileExistsError:
            continue
        try:
            os.rename(tmp_name, name, src_dir_fd=repo_fd, dst_dir_fd=parent_fd)
        except BaseException:
            try:
                os.unlink(tmp_name, dir_fd=repo_fd)
            except OSError:
                pass
            raise
        return
    raise FileExistsError(errno.EEXIST, "no free temporary symlink name in the repository root after %d attempts"
                          % RANDOM_NAME_ATTEMPTS)


def unlink_symlink(dir_fd: int, name: str, where: str | None = None) -> bool:
    """Remove symlink ``name`` from ``dir_fd``; False when absent; UnsafePathError when it is no symlink."""
    info = lstat_at(dir_fd, name)
    if info is None:
        return False
    if not stat.S_ISLNK(info.st_mode):
        raise UnsafePathError("is not a symbolic link; refusing to remove it", path=where or name)
    try:
        os.unlink(name, dir_fd=dir_fd)
    except FileNotFoundError:
        return False
    return True
