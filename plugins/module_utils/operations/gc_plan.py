# -*- coding: utf-8 -*-
# Copyright: (c) 2026, bootc.composefs maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A host garbage collection as plain data: the request, the plan, the result of a run (layer: operations).

``gc.plan_gc`` fills a :class:`GcPlan` (what a run deletes and creates, nothing done yet);
``gc.apply_gc`` returns a :class:`GcResult` (what it did). Both shape the module result the same
way (``as_dict``: the keys of ``composefs_gc``'s ``RETURN``) and give a ``diff`` of tags,
deployments (state dirs) and boot binaries, before and after. The planning steps write their
findings, warnings and refusals into one :class:`PlanNotes`; a plan with errors is never applied.
"""

from __future__ import annotations

from dataclasses import dataclass

from ansible_collections.bootc.composefs.plugins.module_utils.host import findings
from ansible_collections.bootc.composefs.plugins.module_utils.oci import tags as oci_tags
from ansible_collections.bootc.composefs.plugins.module_utils.repository import gc as repo_gc

__all__ = [
    "GcRequest",
    "GcPlan",
    "GcResult",
    "BootBinaryRemoval",
    "StateDirRemoval",
    "TagChange",
    "LiveDeployment",
    "PlanNotes",
    "BACKEND_NATIVE",
    "BACKEND_CFSCTL",
    "BACKENDS",
    "LOCK_TIMEOUT_SECONDS",
]

BACKEND_NATIVE = "native"
BACKEND_CFSCTL = "cfsctl"
BACKENDS = (BACKEND_NATIVE, BACKEND_CFSCTL)
# A GC elsewhere holds the exclusive lock for seconds; a long pull holds the shared one for minutes.
LOCK_TIMEOUT_SECONDS = 300.0


@dataclass(frozen=True)
class GcRequest:
    """What to collect: the host path options of ``load_host_paths``, the phases, the repository backend."""

    root: str = "/"
    sysroot: str | None = None
    boot_dir: str | None = None
    esp: str | None = None
    run_dir: str | None = None
    cmdline_file: str | None = None
    bootloader: str | None = None
    boot_binaries: bool = True
    state_dirs: bool = True
    tags: bool = True
    repository: bool = True
    repo_gc_backend: str = BACKEND_NATIVE
    cfsctl_command: tuple = ("cfsctl",)
    lock_timeout: float | None = LOCK_TIMEOUT_SECONDS


@dataclass(frozen=True)
class BootBinaryRemoval:
    """A boot binary to delete: ``kind`` ``type1`` (kernel dir), ``uki`` (with ``addon_dir``) or ``addon-dir``."""

    kind: str
    name: str
    path: str
    addon_dir: str | None
    bytes: int

    def as_dict(self) -> dict:
        return {"kind": self.kind, "name": self.name, "path": self.path, "addon_dir": self.addon_dir, "bytes": self.bytes}


@dataclass(frozen=True)
class StateDirRemoval:
    """An orphan state dir to delete."""

    verity: str
    path: str
    bytes: int

    def as_dict(self) -> dict:
        return {"verity": self.verity, "path": self.path, "bytes": self.bytes}


@dataclass(frozen=True)
class TagChange:
    """A bootc tag to create or remove."""

    tag: str
    manifest_digest: str

    def as_dict(self) -> dict:
        return {"tag": self.tag, "manifest_digest": self.manifest_digest}


@dataclass(frozen=True)
class LiveDeployment:
    """A deployment (or an entry-only verity, role ``entry-only``) the GC keeps, and the manifests it keeps alive."""

    verity: str
    role: str
    manifest_digests: tuple
    source: str | None
    has_image: bool

    def as_dict(self) -> dict:
        return {"verity": self.verity, "role": self.role, "manifest_digests": list(self.manifest_digests),
                "manifest_source": self.source, "boot_image": self.has_image}


@dataclass(frozen=True)
class GcPlan:
    """Everything a GC run deletes and creates, as plain data (see the module docstring)."""

    request: GcRequest
    paths: dict
    booted: str
    live: tuple
    boot_binaries: tuple
    state_dirs: tuple
    staged_marker: str | None
    tags_before: tuple
    tags_create: tuple
    tags_remove: tuple
    repository: repo_gc.RepoGcPlan | None
    state_dirs_before: tuple = ()
    boot_binaries_before: tuple = ()
    findings: tuple = ()
    warnings: tuple = ()
    errors: tuple = ()

    @property
    def changed(self) -> bool:
        """True when applying the plan removes or creates anything."""
        repo_changed = self.repository is not None and self.repository.changed
        return bool(self.boot_binaries or self.state_dirs or self.staged_marker or self.tags_create
                    or self.tags_remove or repo_changed)

    def live_manifests(self) -> tuple:
        """Every manifest digest a live deployment keeps, sorted."""
        return tuple(sorted({d for live in self.live for d in live.manifest_digests}))

    def as_dict(self, list_objects: bool = False) -> dict:
        """The module result for this plan (check mode); same keys as :meth:`GcResult.as_dict`."""
        repo = self.repository.as_dict(list_objects) if self.repository is not None else None
        counts = self.repository.pruned_counts() if self.repository is not None else {"images": 0, "streams": 0}
        objects_bytes = self.repository.objects_bytes if self.repository is not None else 0
        host_bytes = sum(b.bytes for b in self.boot_binaries) + sum(s.bytes for s in self.state_dirs)
        data = _result_shape(
            self, tags_created=[t.as_dict() for t in self.tags_create], tags_removed=[t.as_dict() for t in self.tags_remove],
            boot_binaries=[b.as_dict() for b in self.boot_binaries], state_dirs=[s.as_dict() for s in self.state_dirs],
            staged_marker=self.staged_marker, repository=repo,
            objects_removed=len(self.repository.remove_objects) if self.repository is not None else 0,
            objects_bytes=objects_bytes, symlinks=counts, bytes_freed=objects_bytes + host_bytes)
        if list_objects:
            data["removed_objects"] = repo["removed_objects"] if repo is not None else []
        return data

    def diff(self) -> dict:
        """``{"before": ..., "after": ...}``: tags, state dirs (deployments) and boot binaries."""
        return _diff(self, {t.tag for t in self.tags_remove}, [(t.tag, t.manifest_digest) for t in self.tags_create],
                     {s.verity for s in self.state_dirs}, {b.path for b in self.boot_binaries})


@dataclass(frozen=True)
class GcResult:
    """What :func:`apply_gc` did; ``plan`` is the plan it executed."""

    plan: GcPlan
    tags_created: tuple
    tags_removed: tuple
    boot_binaries: tuple
    state_dirs: tuple
    staged_marker: str | None
    repository: object
    notes: tuple = ()

    @property
    def warnings(self) -> tuple:
        """The plan's warnings and those of the run."""
        return tuple(self.plan.warnings) + tuple(self.notes)

    @property
    def changed(self) -> bool:
        """True when something was removed or created."""
        repo = self.repository
        repo_changed = repo is not None and bool(repo.objects_removed or repo.images_pruned or repo.streams_pruned)
        return bool(self.tags_created or self.tags_removed or self.boot_binaries or self.state_dirs or self.staged_marker
                    or repo_changed)

    def as_dict(self, list_objects: bool = False) -> dict:
        """The module result of the run; same keys as :meth:`GcPlan.as_dict`."""
        repo = self.repository.as_dict(list_objects) if self.repository is not None else None
        counts = {"images": 0, "streams": 0}
        objects_removed = objects_bytes = 0
        if self.repository is not None:
            counts = {"images": self.repository.images_pruned, "streams": self.repository.streams_pruned}
            objects_removed, objects_bytes = self.repository.objects_removed, self.repository.objects_bytes
        host_bytes = sum(b.bytes for b in self.boot_binaries) + sum(s.bytes for s in self.state_dirs)
        data = _result_shape(
            self.plan, tags_created=[t.as_dict() for t in self.tags_created],
            tags_removed=[t.as_dict() for t in self.tags_removed], boot_binaries=[b.as_dict() for b in self.boot_binaries],
            state_dirs=[s.as_dict() for s in self.state_dirs], staged_marker=self.staged_marker, repository=repo,
            objects_removed=objects_removed, objects_bytes=objects_bytes, symlinks=counts,
            bytes_freed=objects_bytes + host_bytes, changed=self.changed)
        if list_objects:
            data["removed_objects"] = (repo or {}).get("removed_objects", [])
        return data

    def diff(self) -> dict:
        """``{"before": ..., "after": ...}`` of what was actually done."""
        return _diff(self.plan, {t.tag for t in self.tags_removed}, [(t.tag, t.manifest_digest) for t in self.tags_created],
                     {s.verity for s in self.state_dirs}, {b.path for b in self.boot_binaries})


def _result_shape(plan: GcPlan, changed=None, **done) -> dict:
    symlinks = done.pop("symlinks")
    data = {
        "changed": plan.changed if changed is None else changed,
        "booted": plan.booted,
        "live": [d.as_dict() for d in plan.live],
        "live_manifests": list(plan.live_manifests()),
        "images_pruned": symlinks["images"],
        "streams_pruned": symlinks["streams"],
        "repo_gc_backend": plan.request.repo_gc_backend,
        "paths": dict(plan.paths),
        "findings": list(plan.findings),
        "errors": list(plan.errors),
    }
    data.update(done)
    return data


def _tag_line(tag: str, manifest_digest: str) -> str:
    """A tag for the diff; its manifest digest too unless the name is bootc's for that digest."""
    if oci_tags.is_bootc_tag(tag) and tag == oci_tags.BOOTC_TAG_PREFIX + manifest_digest:
        return tag
    return "%s -> %s" % (tag, manifest_digest)


def _diff(plan: GcPlan, untagged: set, created: list, removed_dirs: set, removed_binaries: set) -> dict:
    tags_before = sorted(_tag_line(*pair) for pair in plan.tags_before)
    created_names = {tag for tag, _digest in created}
    tags_after = sorted([_tag_line(tag, digest) for tag, digest in plan.tags_before
                         if tag not in untagged and tag not in created_names] + [_tag_line(*pair) for pair in created])
    roles = {d.verity: d.role for d in plan.live}
    dirs_before = sorted("%s (%s)" % (v, roles.get(v, "orphan")) for v in plan.state_dirs_before)
    dirs_after = sorted("%s (%s)" % (v, roles.get(v, "orphan")) for v in plan.state_dirs_before if v not in removed_dirs)
    binaries = plan.boot_binaries_before
    return {
        "before": {"tags": tags_before, "deployments": dirs_before, "boot_binaries": sorted(binaries)},
        "after": {"tags": tags_after, "deployments": dirs_after,
                  "boot_binaries": sorted(b for b in binaries if b not in removed_binaries)},
    }


class PlanNotes:
    """Errors, warnings and findings collected while planning."""

    def __init__(self) -> None:
        self.errors = []
        self.warnings = []
        self.findings = []

    def finding(self, code: str, path, message: str) -> None:
        """Record a finding of this plan (same shape as the host layer's)."""
        self.findings.append(findings.Finding(code, path, message).as_dict())
