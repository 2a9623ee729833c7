# -*- coding: utf-8 -*-
"""Snapshots of directory trees (never following a symlink), their differences, cheap copies, and the
scratch directory a harness runs in (:func:`run_harness`, :func:`print_report`).

A snapshot maps every path below a root (relative, ``/``-separated, the root itself excluded) to
a record ``(kind, size, link text, identity)``: ``kind`` is ``dir``, ``file``, ``symlink`` or
``other``; ``identity`` is ``(st_ino, st_mtime_ns)`` in ``local`` mode (detects a file replaced
or rewritten in place, for trees that are compared with themselves) or the sha256 of the content
in ``content`` mode (for comparing two copies of a tree), except for files below ``objects/``,
whose name is their digest and which the harnesses check with ``fsverity digest``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import tempfile
import time
import traceback

LOCAL = "local"
CONTENT = "content"


def _content_digest(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def snapshot(root: str, mode: str = LOCAL) -> dict:
    """``{relative path: (kind, size, link text, identity)}`` of everything below ``root`` (empty if it is missing)."""
    result = {}
    if not os.path.isdir(root) or os.path.islink(root):
        return result
    stack = [("", root)]
    while stack:
        prefix, directory = stack.pop()
        try:
            listing = list(os.scandir(directory))
        except OSError:
            continue
        for item in listing:
            rel = prefix + item.name
            try:
                info = item.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            if stat.S_ISDIR(info.st_mode):
                result[rel] = ("dir", 0, None, None)
                stack.append((rel + "/", item.path))
            elif stat.S_ISLNK(info.st_mode):
                result[rel] = ("symlink", 0, os.readlink(item.path), None)
            elif stat.S_ISREG(info.st_mode):
                if mode == LOCAL:
                    identity = (info.st_ino, info.st_mtime_ns)
                elif "objects/" in rel and len(item.name) > 32:
                    identity = None
                else:
                    identity = _content_digest(item.path)
                result[rel] = ("file", info.st_size, None, identity)
            else:
                result[rel] = ("other", 0, None, None)
    return result


def diff(before: dict, after: dict) -> dict:
    """``{"removed": [...], "added": [...], "changed": [...]}`` (sorted relative paths)."""
    removed = sorted(set(before) - set(after))
    added = sorted(set(after) - set(before))
    changed = sorted(p for p in set(before) & set(after) if before[p] != after[p])
    return {"removed": removed, "added": added, "changed": changed}


def is_empty_diff(delta: dict) -> bool:
    """True when a :func:`diff` found nothing."""
    return not (delta["removed"] or delta["added"] or delta["changed"])


def hardlink_copy(source: str, destination: str) -> None:
    """Copy ``source`` to the new ``destination``: directories and symlinks recreated, regular files hard-linked.

    Modes and ownership of directories are copied. Only for trees whose files are never written in
    place afterwards (corruptions are written as new files, GC only unlinks).
    """
    info = os.lstat(source)
    os.mkdir(destination, stat.S_IMODE(info.st_mode))
    os.chown(destination, info.st_uid, info.st_gid)
    stack = [(source, destination)]
    while stack:
        src_dir, dst_dir = stack.pop()
        for item in os.scandir(src_dir):
            target = os.path.join(dst_dir, item.name)
            info = item.stat(follow_symlinks=False)
            if stat.S_ISDIR(info.st_mode):
                os.mkdir(target, stat.S_IMODE(info.st_mode))
                os.chown(target, info.st_uid, info.st_gid)
                stack.append((item.path, target))
            elif stat.S_ISLNK(info.st_mode):
                os.symlink(os.readlink(item.path), target)
                os.lchown(target, info.st_uid, info.st_gid)
            else:
                os.link(item.path, target)
        os.chmod(dst_dir, stat.S_IMODE(os.lstat(src_dir).st_mode))


def full_copy(source: str, destination: str) -> None:
    """An independent copy (``cp -a`` semantics: symlinks as symlinks, modes, times)."""
    shutil.copytree(source, destination, symlinks=True)


def scratch_parent(min_free_bytes: int = 1 << 30):
    """``/dev/shm`` when it is a writable tmpfs with ``min_free_bytes`` free (directory operations there
    are much faster than on a loaded disk), else None (the system default for temporary files)."""
    candidate = "/dev/shm"
    try:
        info = os.statvfs(candidate)
    except OSError:
        return None
    if not os.access(candidate, os.W_OK) or info.f_bavail * info.f_frsize < min_free_bytes:
        return None
    return candidate


def remove_tree(path: str) -> None:
    """Remove a tree whatever its modes (a harness may leave read-only dirs behind)."""
    if not os.path.lexists(path):
        return

    def _retry(func, failed, _exc):
        parent = os.path.dirname(failed)
        os.chmod(parent, 0o755)
        func(failed)

    shutil.rmtree(path, onerror=_retry)


def run_harness(prefix: str, workdir, body) -> dict:
    """Run ``body(workdir)``, which returns the harness report, and add its ``seconds``.

    ``workdir`` None: a new directory named ``prefix...`` below :func:`scratch_parent`, removed
    afterwards. An exception of ``body`` becomes an aborted report with one failure (its traceback).
    """
    started = time.monotonic()
    owned = workdir is None
    if owned:
        workdir = tempfile.mkdtemp(prefix=prefix, dir=scratch_parent())
    os.makedirs(workdir, exist_ok=True)
    try:
        report = body(workdir)
    except Exception:  # pylint: disable=broad-except
        report = {"aborted": True, "failures": 1,
                  "failure_details": [{"problem": "the harness aborted: %s" % traceback.format_exc()[-3000:]}]}
    finally:
        if owned:
            remove_tree(workdir)
    report["seconds"] = round(time.monotonic() - started, 1)
    return report


def print_report(report: dict, as_json: bool) -> bool:
    """Print the report as JSON, or an aborted run's traceback; False when the caller prints its own summary."""
    if as_json:
        print(json.dumps(report, indent=1, sort_keys=True))
    elif report.get("aborted"):
        print(report["failure_details"][0]["problem"])
    else:
        return False
    return True
