# -*- coding: utf-8 -*-
# Copyright: (c) 2026, bootc.composefs maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Garbage collection of a composefs repository: the plan, and its application (layer: repository).

Knows refs, entries, objects, splitstreams and EROFS images; nothing about OCI tags or
deployments. Spec: ``composefs-repo.md`` sections 2, 5, 6, 9, 11.5-11.6, 12 and 13; upstream:
composefs-rs ``crates/composefs/src/repository.rs`` (``gc``, ``gc_dry_run``, ``gc_impl``,
``walk_streams``, ``cleanup_broken_links``).

The steps, one file each (the operations layer calls the two entry points of this file):

=============================== =====================================================================
``gc_snapshot.py``              every ref below ``images/refs`` and ``streams/refs`` and every
                                first-level entry of ``images/`` and ``streams/`` (``readlink`` only),
                                each with the problem that makes it unusable, if any
``gc_roots.py``                 the roots: refs (with the ref changes the caller will make simulated)
                                and extra entry names
``gc_mark.py``                  the live set: every object reachable from the roots
``gc_sweep.py``                 what goes (one listing per ``objects/<xx>``; entries) and the deletions
:func:`plan_repository_gc`      snapshot + roots + mark + sweep: a :class:`RepoGcPlan`, no side effects
:func:`apply_repository_gc`     executes a plan under ``LOCK_EX`` (see "Apply" below)
=============================== =====================================================================

Fatal (the plan records an error, nothing at all is deleted) versus reported:

========================================================= ==========================================
situation                                                 outcome
========================================================= ==========================================
a ref that is not a symlink, not UTF-8, or whose link     error naming the ref (composefs-rs aborts
text is not ``../`` * depth + entry name                  too, on the first two)
a root's entry that is not a symlink to ``../objects/..`` error naming the entry
a root image, a walked splitstream or any object read on  error naming the file (an unparsable root
the way that cannot be read or parsed (bad magic,         could hide references)
truncated, wrong algorithm, content not matching its
name)
``objects/`` or ``images/`` or ``streams/`` unreadable,   error
or a symlink
a ref naming a missing entry, or an entry (of a root)     reported as a dangling ref; composefs-rs
naming a missing object                                   aborts the whole GC instead
a stream ref naming a missing object                      reported (``missing_objects``)
a name in ``objects/<xx>/`` that is no object, anything   reported, never touched (composefs-rs
but a directory in ``objects/``                           aborts midway on bad names)
an entry that is not a symlink or has a malformed link    reported, never touched
text, and no root names it
========================================================= ==========================================

``images/`` and ``streams/`` counts follow composefs-rs's ``images_pruned`` / ``streams_pruned``.

Apply, in this order, all under ``LOCK_EX`` taken by converting the handle's ``LOCK_SH``
(``Repository.exclusive``, exactly as composefs-rs ``gc`` does, so every composefs-rs, cfsctl,
bootc or ``composefs_pull`` opener is excluded while anything is deleted):

1. re-validate: refs and entries are listed again and must equal what the plan expects (its
   snapshot with the simulated ref changes applied), and every object the mark found missing must
   still be missing. Objects are immutable and named by their content, so then the live set is the
   plan's. Otherwise the plan is recomputed under the lock and only what *both* plans delete is
   deleted (never anything the checked plan did not list; something that became live is kept);
2. unlink first-level entries whose object is not live (link text re-read and compared first);
3. unlink the unreachable objects, grouped per ``objects/<xx>`` directory;
4. unlink entries whose object is missing (re-checked).

A live object is never deleted and no entry ever names a deleted object, so a crash at any
instant leaves every live root complete; the next run plans the rest from what is on disk.
Memory and speed: see ``gc_mark.py`` (live keys) and ``gc_sweep.py`` (one listing per directory,
no per-name Python code); ``bench/bench_gc.py`` measures both.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from ansible_collections.bootc.composefs.plugins.module_utils.errors import ComposefsError, PlanError
from ansible_collections.bootc.composefs.plugins.module_utils.repository import gc_mark, gc_roots, gc_snapshot, gc_sweep, paths

__all__ = ["RepoGcPlan", "RepoGcResult", "plan_repository_gc", "apply_repository_gc"]


# --- the plan --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RepoGcPlan:
    """What a repository GC deletes; plain data (``as_dict``), made by :func:`plan_repository_gc`.

    ``remove_objects`` are raw digests (sorted) with ``remove_sizes`` alongside; ``unlink_entries``
    and ``prune_entries`` are ``(category, name, link text)``; ``expected`` is the fingerprint the
    repository must have when the plan is applied (after the simulated ref changes).
    """

    path: str
    algorithm: str
    roots: gc_roots.Roots
    extra_images: tuple
    extra_streams: tuple
    live_objects: int
    present_objects: int
    walked_streams: int
    parsed_images: int
    remove_objects: tuple
    remove_sizes: tuple
    unlink_entries: tuple
    prune_entries: tuple
    dangling_refs: tuple
    missing_objects: dict = field(hash=False)
    unusable_entries: tuple = ()
    invalid_objects: tuple = ()
    errors: tuple = ()
    expected: tuple = ()

    @property
    def objects_bytes(self) -> int:
        """Sum of ``st_size`` of the objects to remove."""
        return sum(self.remove_sizes)

    def pruned_counts(self) -> dict:
        """``{"images": n, "streams": n}``: entries to unlink and to prune, per category."""
        counts = {paths.IMAGES: 0, paths.STREAMS: 0}
        for category, _name, _text in self.unlink_entries + self.prune_entries:
            counts[category] += 1
        return counts

    @property
    def changed(self) -> bool:
        """True when applying the plan removes something."""
        return bool(self.remove_objects or self.unlink_entries or self.prune_entries)

    def object_ids(self) -> list:
        """The hex object ids to remove, sorted."""
        return [raw.hex() for raw in self.remove_objects]

    def as_dict(self, list_objects: bool = False) -> dict:
        """Plain data for a module result; object ids only with ``list_objects`` (they can be many)."""
        counts = self.pruned_counts()
        data = {
            "path": self.path,
            "algorithm": self.algorithm,
            "roots": self.roots.as_dict(),
            "live_objects": self.live_objects,
            "present_objects": self.present_objects,
            "walked_streams": self.walked_streams,
            "parsed_images": self.parsed_images,
            "objects_removed": len(self.remove_objects),
            "objects_bytes": self.objects_bytes,
            "images_pruned": counts[paths.IMAGES],
            "streams_pruned": counts[paths.STREAMS],
            "pruned_entries": ["%s/%s" % (c, n) for c, n, _t in sorted(self.unlink_entries + self.prune_entries)],
            "dangling_refs": list(self.dangling_refs),
            "missing_objects": sorted(self.missing_objects),
            "unusable_entries": [{"path": p, "problem": m} for p, m in self.unusable_entries],
            "invalid_objects": [{"path": p, "problem": m} for p, m in self.invalid_objects],
            "errors": list(self.errors),
        }
        if list_objects:
            data["removed_objects"] = self.object_ids()
        return data


def plan_repository_gc(repo, extra_images=(), extra_streams=(), add_stream_refs=None, remove_stream_refs=(),
                       snapshot: gc_snapshot.RepoSnapshot | None = None) -> RepoGcPlan:
    """Plan a GC of ``repo`` as it will be after the simulated ref changes; no side effects.

    ``extra_images`` / ``extra_streams``: first-level entry names to treat as roots (names that do
    not exist are ignored, like composefs-rs ``additional_roots``). ``add_stream_refs``: ``{ref:
    stream name}`` refs to be created (``oci/<encoded tag>``); ``remove_stream_refs``: refs to be
    removed. Errors are recorded in the plan (``errors``), which then must not be applied.
    """
    added, removed = gc_roots.validate_ref_changes(add_stream_refs, remove_stream_refs)
    errors = []
    if snapshot is None:
        try:
            snapshot = gc_snapshot.scan_repository(repo)
        except (OSError, ComposefsError) as err:
            reason = str(err) if isinstance(err, ComposefsError) else "%s: %s" % (repo.path, err.strerror or err)
            return _failed_plan(repo, "cannot list the repository's refs and entries: %s" % reason)
    refs = gc_roots.expected_refs(snapshot, added, removed)
    roots = gc_roots.build_roots(refs, tuple(extra_images), tuple(extra_streams))
    marked = gc_mark.mark(repo, roots, snapshot)
    errors.extend(marked.errors)
    sweep = gc_sweep.sweep_objects(repo, marked.live)
    errors.extend(sweep.errors)
    unlink, prune, unusable = gc_sweep.plan_entries(repo, snapshot, marked.live, roots)
    expected = gc_snapshot.RepoSnapshot(refs=refs, entries=snapshot.entries).fingerprint()
    return RepoGcPlan(
        path=repo.path, algorithm=repo.algorithm.name, roots=roots, extra_images=tuple(extra_images),
        extra_streams=tuple(extra_streams), live_objects=len(marked.live), present_objects=sweep.present,
        walked_streams=marked.walked_streams, parsed_images=marked.parsed_images, remove_objects=sweep.remove,
        remove_sizes=sweep.sizes, unlink_entries=unlink, prune_entries=prune, dangling_refs=marked.dangling_refs,
        missing_objects=marked.missing_objects, unusable_entries=unusable, invalid_objects=sweep.invalid,
        errors=tuple(errors), expected=expected)


def _failed_plan(repo, message: str) -> RepoGcPlan:
    return RepoGcPlan(path=repo.path, algorithm=repo.algorithm.name, roots=gc_roots.Roots({}, {}, ()), extra_images=(),
                      extra_streams=(), live_objects=0, present_objects=0, walked_streams=0, parsed_images=0,
                      remove_objects=(), remove_sizes=(), unlink_entries=(), prune_entries=(), dangling_refs=(),
                      missing_objects={}, errors=(message,))


# --- apply -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RepoGcResult:
    """What :func:`apply_repository_gc` did; ``validation`` is ``plan`` or ``recomputed``."""

    objects_removed: int
    objects_bytes: int
    images_pruned: int
    streams_pruned: int
    removed_objects: tuple
    pruned_entries: tuple
    validation: str
    kept_objects: int = 0

    def as_dict(self, list_objects: bool = False) -> dict:
        """Plain data for a module result; object ids only with ``list_objects``."""
        data = {"objects_removed": self.objects_removed, "objects_bytes": self.objects_bytes,
                "images_pruned": self.images_pruned, "streams_pruned": self.streams_pruned,
                "pruned_entries": ["%s/%s" % e for e in self.pruned_entries], "validation": self.validation,
                "kept_objects": self.kept_objects}
        if list_objects:
            data["removed_objects"] = [raw.hex() for raw in self.removed_objects]
        return data


def _plan_error(plan: RepoGcPlan) -> PlanError:
    return PlanError("the repository GC plan recorded %d error(s), so nothing is deleted: %s"
                     % (len(plan.errors), "; ".join(plan.errors)), path=plan.path,
                     partial_result={"repository": plan.as_dict()})


def _still_missing(repo, plan: RepoGcPlan) -> bool:
    return not any(gc_sweep.object_exists(repo, object_id) for object_id in plan.missing_objects)


def _intersect(plan: RepoGcPlan, fresh: RepoGcPlan) -> tuple:
    fresh_objects = set(fresh.remove_objects)
    keep = [(raw, size) for raw, size in zip(plan.remove_objects, plan.remove_sizes) if raw in fresh_objects]
    unlink = tuple(e for e in plan.unlink_entries if e in set(fresh.unlink_entries))
    prune = tuple(e for e in plan.prune_entries if e in set(fresh.prune_entries + fresh.unlink_entries))
    return tuple(r for r, _s in keep), tuple(s for _r, s in keep), unlink, prune


def apply_repository_gc(repo, plan: RepoGcPlan, timeout: float | None = None, step: Callable | None = None,
                        extra_images=(), extra_streams=()) -> RepoGcResult:
    """Execute ``plan`` on ``repo`` (open writable, the one handle of this process) under ``LOCK_EX``.

    PlanError when the plan recorded errors, or when the recomputation under the lock does. The
    order and the re-validation are in the module docstring; ``extra_images`` / ``extra_streams``
    are roots the caller learnt of since planning (a deployment added meanwhile): any the plan did
    not have forces the recomputation, with the roots of both. ``step(kind, name)`` is called after
    the lock is taken (``locked``) and before every single deletion (``entry``, ``object``,
    ``prune``): crash and concurrency harnesses use it.
    """
    if plan.errors:
        raise _plan_error(plan)
    images = tuple(sorted(set(plan.extra_images) | set(extra_images)))
    streams = tuple(sorted(set(plan.extra_streams) | set(extra_streams)))
    with repo.exclusive(timeout):
        if step is not None:
            step("locked", repo.path)
        snapshot = gc_snapshot.scan_repository(repo)
        new_roots = (set(images) - set(plan.extra_images)) & set(snapshot.entry_map(paths.IMAGES)) or \
            (set(streams) - set(plan.extra_streams)) & set(snapshot.entry_map(paths.STREAMS))
        remove, sizes, unlink, prune = plan.remove_objects, plan.remove_sizes, plan.unlink_entries, plan.prune_entries
        validation = "plan"
        if new_roots or snapshot.fingerprint() != plan.expected or not _still_missing(repo, plan):
            validation = "recomputed"
            fresh = plan_repository_gc(repo, images, streams, snapshot=snapshot)
            if fresh.errors:
                raise _plan_error(fresh)
            remove, sizes, unlink, prune = _intersect(plan, fresh)
        pruned = []
        for category, name, text in unlink:
            if step is not None:
                step("entry", "%s/%s" % (category, name))
            if gc_sweep.unlink_entry(repo, category, name, text, want_missing=False):
                pruned.append((category, name))
        removed, total = gc_sweep.remove_objects(repo, remove, sizes, step)
        for category, name, text in prune:
            if step is not None:
                step("prune", "%s/%s" % (category, name))
            if gc_sweep.unlink_entry(repo, category, name, text, want_missing=True):
                pruned.append((category, name))
    counts = {paths.IMAGES: 0, paths.STREAMS: 0}
    for category, _name in pruned:
        counts[category] += 1
    return RepoGcResult(objects_removed=len(removed), objects_bytes=total, images_pruned=counts[paths.IMAGES],
                        streams_pruned=counts[paths.STREAMS], removed_objects=removed, pruned_entries=tuple(pruned),
                        validation=validation, kept_objects=len(plan.remove_objects) - len(removed))
