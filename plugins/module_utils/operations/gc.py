# -*- coding: utf-8 -*-
# Copyright: (c) 2026, bootc.composefs maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Garbage collection of a bootc composefs host: a plan (plain data), then its application (layer: operations).

Spec: bootc-composefs-host.md §1, §2, §4 (``gc.rs``, ``delete.rs``) and Open questions 5, 6, 7, 12,
15; composefs-repo.md §2, §5, §6, §9, §11.5-11.6, §12-13. Upstream: bootc
``crates/lib/src/bootc_composefs/gc.rs`` (``composefs_gc``), composefs-rs ``repository.rs`` (``gc``).

``plan_gc(request)`` reads the host (``host.deployments.load_host``) and, with the repository's shared
lock only, the repository; it changes nothing and returns a :class:`GcPlan`. ``apply_gc(plan)``
executes it. Check mode is ``plan_gc`` alone: the plan lists exactly what ``apply_gc`` deletes and
creates when nothing changes in between, because the repository part is computed as the
repository will be *after* the planned tag changes (bootc's dry run does not simulate them, Open
question 12).

Phases (each switched off by its request flag) and what they may delete:

================= ================================================================ ====================================
phase             deletes                                                          never
================= ================================================================ ====================================
``boot_binaries`` ``bootc_composefs-<n>/`` kernel dirs, ``bootc_composefs-<n>.efi``  a binary any entry names (configured or
                  UKIs and their ``.efi.extra.d`` addon dirs (also addon dirs whose  staged, BLS or GRUB menu, foreign
                  UKI is gone, Open question 15) whose name ``<n>`` no boot entry    entries too, any ``bootc_composefs-<n>``
                  names (bootc#2102: by artifact name, not by deployment)            written in an entry file)
``state_dirs``    ``state/deploy/<v>/`` directories no boot entry names; the         the booted deployment's, any live one's,
                  staged-deployment marker when no boot entry names its deployment   anything that is not a real directory
                  (a staged leftover)
``tags``          creates ``localhost/bootc-<digest>`` for every live manifest;       any tag not starting with
                  removes ``localhost/bootc-*`` tags whose manifest no live           ``localhost/bootc-`` (app images)
                  deployment uses
``repository``    unreachable objects, then ``images/``/``streams/`` entries left     refs (reported when dangling), anything
                  dangling (``repository/gc.py``; or ``cfsctl gc`` / ``bootc internals reachable from a ref, a live deployment's
                  cfs gc`` with ``repo_gc_backend=cfsctl``)                           boot image or its manifest
================= ================================================================ ====================================

The plan is made in steps, one file each: ``gc_plan.py`` (the request, plan and result records),
``gc_safety.py`` (the refusals), ``gc_host.py`` (boot binaries, state dirs, live verities),
``gc_repository.py`` (live manifests, tags, the repository plan), ``gc_removal.py`` (deleting on
the host), ``gc_cfsctl.py`` (the cfsctl backend).

Apply order (crash safety). Nothing live is ever deleted, so a kill at any instant leaves every
live deployment complete, and a rerun plans the rest from what is on disk (converging to the end
state an uninterrupted run reaches):

1. create the missing bootc tags (atomic symlink replace): live images gain their roots first;
2. boot binaries: per UKI the addon dir, then the UKI; kernel dirs; each tree removed
   depth-first through directory descriptors, never following a symlink, never crossing into
   another filesystem;
3. the staged marker, then orphan state dirs (same removal);
4. untag stale bootc tags (one unlink each);
5. repository GC under ``LOCK_EX`` (``repository/gc.py``: re-validate, unlink dead entries, delete
   objects, prune broken entries; ``step`` sees each deletion).

Before deleting, ``apply_gc`` reads the host again (and lists the tags again) and deletes only
what both the plan and this fresh look agree on; the repository part re-validates itself under
the exclusive lock. Paths: every deletion happens inside the real (symlink-resolved) sysroot,
boot dir or ESP of the host model (the staged marker: inside the run dir), through descriptors
opened component by component with ``O_NOFOLLOW``; a path whose resolution leaves them is refused.

Decisions on the spec's open questions: containers-storage (``bootc/storage``) is never pruned
(5); boot entries without a state dir are kept, and their verity is protected like a deployment's
(6); deployments without origin are live (7); check mode simulates tag creation and removal (12);
addon dirs whose UKI is gone are collected (15).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Callable

from ansible_collections.bootc.composefs.plugins.module_utils.errors import ComposefsError, PlanError
from ansible_collections.bootc.composefs.plugins.module_utils.oci import digest as oci_digest
from ansible_collections.bootc.composefs.plugins.module_utils.oci import tags as oci_tags
from ansible_collections.bootc.composefs.plugins.module_utils.operations import gc_cfsctl, gc_host, gc_removal, gc_repository, gc_safety
from ansible_collections.bootc.composefs.plugins.module_utils.operations.gc_plan import (
    BACKEND_CFSCTL,
    BACKEND_NATIVE,
    BACKENDS,
    LOCK_TIMEOUT_SECONDS,
    GcPlan,
    GcRequest,
    GcResult,
    PlanNotes,
)
from ansible_collections.bootc.composefs.plugins.module_utils.repository import gc as repo_gc

__all__ = [
    "GcRequest",
    "GcPlan",
    "GcResult",
    "plan_gc",
    "apply_gc",
    "run_gc",
    "BACKEND_NATIVE",
    "BACKEND_CFSCTL",
    "BACKENDS",
    "LOCK_TIMEOUT_SECONDS",
]


def plan_gc(request: GcRequest) -> GcPlan:
    """Read the host and its repository (shared lock, nothing written) and return the GC plan.

    Raises ``HostError`` only when the host is not a composefs bootc host or its booted deployment
    cannot be identified; every reason to refuse is in the plan's ``errors`` instead.
    """
    return _make_plan(request)[0]


def _make_plan(request: GcRequest) -> tuple:
    """``(plan, host state)`` (see :func:`plan_gc`)."""
    if request.repo_gc_backend not in BACKENDS:
        raise ComposefsError("unknown repo_gc_backend %r (expected %s)" % (request.repo_gc_backend, " or ".join(BACKENDS)))
    state = gc_host.load_state(request)
    notes = PlanNotes()
    gc_safety.check_host_findings(state, request, notes)
    gc_safety.check_symlinks(state.paths, notes)
    gc_safety.check_entries(state, notes)
    gc_safety.check_origins(state, notes)
    live_verities = gc_host.live_verities(state)
    boot = gc_host.plan_boot_binaries(state, notes) if request.boot_binaries else ()
    state_dirs, marker = gc_host.plan_state_dirs(state, live_verities) if request.state_dirs else ((), None)
    gc_safety.check_removal_paths(state, boot, state_dirs, marker, notes)
    repo_part = {}
    if request.tags or request.repository:
        repo_part = gc_repository.repository_part(request, state, live_verities, notes)
    live = repo_part.get("live") or gc_repository.resolve_live(state, None, None, live_verities, PlanNotes())
    plan = GcPlan(
        request=request, paths=gc_host.paths_dict(state), booted=state.booted_verity, live=live, boot_binaries=boot,
        state_dirs=state_dirs, staged_marker=marker, tags_before=repo_part.get("tags", ()),
        tags_create=repo_part.get("create", ()), tags_remove=repo_part.get("remove", ()),
        repository=repo_part.get("plan"), state_dirs_before=tuple(state.state_dirs),
        boot_binaries_before=tuple(sorted([b.path for b in state.boot_binaries.binaries]
                                          + [a.path for a in state.boot_binaries.orphan_addon_dirs])),
        findings=tuple(notes.findings),
        warnings=tuple(notes.warnings), errors=tuple(notes.errors))
    return plan, state


# --- apply ------------------------------------------------------------------------------------------


def _plan_error(plan: GcPlan) -> PlanError:
    partial = plan.as_dict()
    partial["changed"] = False
    return PlanError("nothing was deleted: %s" % "; ".join(plan.errors), partial_result=partial)


def run_gc(request: GcRequest, check_mode: bool = False, step: Callable | None = None, runner=None):
    """:func:`plan_gc`, then (unless ``check_mode``) :func:`apply_gc`; the plan or the result (same interface).

    PlanError, carrying the plan as its partial result, when the plan records errors (in check mode
    too: the run would refuse).
    """
    plan = plan_gc(request)
    if plan.errors:
        raise _plan_error(plan)
    if check_mode:
        return plan
    return apply_gc(plan, step=step, runner=runner)


def apply_gc(plan: GcPlan, step: Callable | None = None, runner=None) -> GcResult:
    """Execute ``plan`` (see the module docstring for the order and the re-validation); return what was done.

    PlanError when the plan, or the fresh look taken before deleting, recorded errors. ``step(kind,
    what)`` is called before every single deletion or creation (``tag-create``, ``boot-binary``,
    ``addon-dir``, ``staged-marker``, ``state-dir``, ``untag``, ``cfsctl``, and the repository's
    ``locked``, ``entry``, ``object``, ``prune``); crash and concurrency harnesses raise or stop there.
    ``runner`` runs ``cfsctl`` (``oci.cfsctl.run_command`` when None).
    """
    if plan.errors:
        raise _plan_error(plan)
    # The host part again (the repository only listed for tags): delete what both looks agree on.
    fresh, state = _make_plan(replace(plan.request, repository=False))
    if fresh.errors:
        raise _plan_error(fresh)
    remover = gc_removal.HostRemover(state.paths, step)
    fresh_binaries = {(b.kind, b.path) for b in fresh.boot_binaries}
    fresh_dirs = {s.path for s in fresh.state_dirs}
    fresh_removals = {t.tag: t.manifest_digest for t in fresh.tags_remove}
    fresh_creations = {t.tag: t.manifest_digest for t in fresh.tags_create}
    warnings = []
    repo = None
    needs_repo = bool(plan.tags_create or plan.tags_remove or plan.repository is not None)
    done = {"created": [], "untagged": [], "binaries": [], "dirs": [], "marker": None, "repo": None}
    try:
        if needs_repo:
            repo = gc_repository.open_repository(state.paths, writable=True, timeout=plan.request.lock_timeout)
            if repo is None:
                raise ComposefsError("the repository vanished since the plan was made", path=state.paths.composefs_repo)
        for change in plan.tags_create:
            if fresh_creations.get(change.tag) != change.manifest_digest:
                continue
            if step is not None:
                step("tag-create", change.tag)
            oci_tags.tag_image(repo, change.manifest_digest, change.tag)
            done["created"].append(change)
        for removal in plan.boot_binaries:
            if (removal.kind, removal.path) not in fresh_binaries:
                continue
            if removal.addon_dir is not None:
                remover.remove(removal.addon_dir, "addon-dir", want_dir=True)
            if remover.remove(removal.path, "addon-dir" if removal.kind == "addon-dir" else "boot-binary",
                              want_dir=removal.kind != "uki"):
                done["binaries"].append(removal)
        if plan.staged_marker is not None and fresh.staged_marker == plan.staged_marker:
            if remover.remove_marker(plan.staged_marker):
                done["marker"] = plan.staged_marker
        for removal in plan.state_dirs:
            if removal.path in fresh_dirs and remover.remove(removal.path, "state-dir", want_dir=True):
                done["dirs"].append(removal)
        for change in plan.tags_remove:
            if fresh_removals.get(change.tag) != change.manifest_digest:
                continue
            ref = oci_tags.tag_ref(change.tag)
            if repo.stream_ref_target(ref) != oci_digest.manifest_stream_name(change.manifest_digest):
                continue  # re-pointed since the plan: no longer the tag the plan judged
            if step is not None:
                step("untag", change.tag)
            if repo.remove_stream_ref(ref):
                done["untagged"].append(change)
        if plan.repository is not None:
            if plan.request.repo_gc_backend == BACKEND_CFSCTL:
                repo.close()
                repo = None
                done["repo"] = gc_cfsctl.run_cfsctl(plan, step, runner)
            else:
                # Should the repository have changed, the plan is recomputed under the lock with the
                # roots of both looks at the host (a deployment added meanwhile stays protected).
                done["repo"] = repo_gc.apply_repository_gc(repo, plan.repository, timeout=plan.request.lock_timeout,
                                                           step=step, extra_images=_protected_images(fresh),
                                                           extra_streams=_protected_streams(fresh))
    finally:
        if repo is not None:
            repo.close()
    return GcResult(plan=plan, tags_created=tuple(done["created"]), tags_removed=tuple(done["untagged"]),
                    boot_binaries=tuple(done["binaries"]), state_dirs=tuple(done["dirs"]), staged_marker=done["marker"],
                    repository=done["repo"], notes=tuple(warnings))


def _protected_images(plan: GcPlan) -> tuple:
    """Image entry names a plan protects (live verities with a boot image)."""
    return tuple(item.verity for item in plan.live if item.has_image)


def _protected_streams(plan: GcPlan) -> tuple:
    """Manifest stream names a plan protects."""
    return tuple(oci_digest.manifest_stream_name(d) for d in plan.live_manifests())
