# -*- coding: utf-8 -*-
# Copyright: (c) 2026, bootc.composefs maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The roots of a repository garbage collection, with the ref changes a caller will make simulated (layer: repository).

Spec: ``composefs-repo.md`` sections 10.4 (tags are ``streams/refs/oci/...`` refs) and 12.1-12.2
(roots); upstream: composefs-rs ``repository.rs`` (``gc_impl``: ``additional_roots``).

Roots are every ref below ``streams/refs/`` and ``images/refs/`` (each names a first-level entry),
plus *extra roots* the caller names: first-level ``images/`` entries (the boot EROFS images of
live deployments) and ``streams/`` entries (their manifests); names that do not exist are ignored,
as composefs-rs ignores unknown additional roots. ``add_stream_refs`` and ``remove_stream_refs``
simulate the ref changes the caller will make before applying (tags created and removed):
:func:`expected_refs` gives the refs as they will be, in the exact link form a tag has, so a plan
made before those changes describes exactly what the run after them deletes, and the application
can compare the refs it finds with them. A ref that could not be read is kept apart
(``Roots.bad_refs``): the mark turns each into an error.
"""

from __future__ import annotations

from dataclasses import dataclass

from ansible_collections.bootc.composefs.plugins.module_utils.repository import gc_snapshot, paths

__all__ = ["Roots", "validate_ref_changes", "expected_refs", "build_roots"]


@dataclass(frozen=True)
class Roots:
    """GC roots: ``{entry name: (why, ...)}`` per category, and the refs that could not be used."""

    streams: dict
    images: dict
    bad_refs: tuple

    def as_dict(self) -> dict:
        """Plain data: entry names and why each is a root."""
        return {"streams": {k: list(v) for k, v in sorted(self.streams.items())},
                "images": {k: list(v) for k, v in sorted(self.images.items())}}


def validate_ref_changes(add_stream_refs, remove_stream_refs) -> tuple:
    """``(added, removed)``: the simulated ref changes, every ref and stream name checked (UnsafePathError otherwise)."""
    added = {}
    for ref, stream_name in sorted(dict(add_stream_refs or {}).items()):
        paths.validate_ref_name(ref)
        paths.validate_stream_name(stream_name)
        added[ref] = stream_name
    removed = set()
    for ref in remove_stream_refs or ():
        paths.validate_ref_name(ref)
        removed.add(ref)
    return added, removed


def expected_refs(snapshot: gc_snapshot.RepoSnapshot, add_stream_refs=None, remove_stream_refs=()) -> tuple:
    """The snapshot's refs after the simulated changes (removed refs gone, added refs in their exact link form)."""
    removed = set(remove_stream_refs or ())
    added = dict(add_stream_refs or {})
    refs = [r for r in snapshot.refs if not (r.category == paths.STREAMS and (r.ref in removed or r.ref in added))]
    for ref, stream_name in added.items():
        refs.append(gc_snapshot.RefLink(paths.STREAMS, ref, paths.ref_link_text(ref, stream_name), stream_name))
    return tuple(sorted(refs, key=lambda r: (r.category, r.ref)))


def build_roots(refs, extra_images=(), extra_streams=()) -> Roots:
    """Roots from ``refs`` (``RefLink``) plus extra entry names (``images/<hex>``, ``streams/<name>``)."""
    streams = {}
    images = {}
    bad = []
    for ref in refs:
        if ref.entry is None:
            bad.append(ref)
            continue
        target = streams if ref.category == paths.STREAMS else images
        target.setdefault(ref.entry, []).append("%s/refs/%s" % (ref.category, ref.ref))
    for name in extra_images:
        images.setdefault(name, []).append("extra root")
    for name in extra_streams:
        streams.setdefault(name, []).append("extra root")
    return Roots(streams={k: tuple(v) for k, v in streams.items()}, images={k: tuple(v) for k, v in images.items()},
                 bad_refs=tuple(bad))
