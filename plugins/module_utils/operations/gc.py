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
                  dangling (``repository.gc``; or ``cfsctl gc`` / ``bootc internals   reachable from a ref, a live deployment's
                  cfs gc`` with ``repo_gc_backend=cfsctl``)                           boot image or its manifest
================= ================================================================ ====================================

Live deployments: every deployment ``load_host`` returns (booted, staged, rollback, other, and the
``unlisted`` ones bootc's status hides: Open question 7, they boot or may be finalized) plus any
verity a boot entry names without a state dir. Their manifests: the origin's ``manifest_digest``;
for legacy origins (no digest) the tagged images whose config digest equals the ``.imginfo`` one,
and the tagged images whose config links the deployment's EROFS image (any ``composefs.image*``
key). Every match is kept. Live verities are extra repository roots (``images/<verity>``), and so
are the live manifests' streams (``streams/oci-manifest-<digest>``), with or without tags.

Refusals (the plan records an error; ``apply_gc`` deletes nothing at all), wherever bootc's own
status would fail and more: any file the host layer could not read or parse (``unreadable-file``:
entries, origins, ``.imginfo``, ``user.cfg``, the staged marker, listings); an entry whose verity
is no digest of the repository's length, or one we cannot tie to a deployment that still looks
like bootc's (``bootc_*`` file name, ``composefs=``, ``bootc_composefs-``); an origin without
``manifest_digest`` and without ``.imginfo``, or naming a manifest the repository cannot give;
conflicting boot types; anything but a directory in ``state/deploy``; a booted deployment no
entry names (bootc's "Inconsistent state"); a symlink where bootc keeps real boot state
(``loader``, ``loader/entries[.staged]`` and their files, ``grub2``, ``user.cfg[.staged]``,
``state``, ``state/deploy``, the staged marker), since what it hides could be in use; a planned
removal whose directory resolves outside the sysroot, boot dir and ESP; with ``boot_binaries``, an
entry naming no artifact or one that does not exist (a damaged entry), a legacy (unprefixed)
layout, which bootc migrates first, or an unused binary named like the booted deployment; with
``tags`` or ``repository``, a repository that cannot be opened, has no meta.json, resolves outside
the sysroot or lists a format version or feature this collection does not know; with
``repository``, every error of ``repository.gc`` (an unparsable root or stream, an object whose
content does not match its name, a malformed ref or entry).

Apply order (crash safety). Nothing live is ever deleted, so a kill at any instant leaves every
live deployment complete, and a rerun plans the rest from what is on disk (converging to the end
state an uninterrupted run reaches):

1. create the missing bootc tags (atomic symlink replace): live images gain their roots first;
2. boot binaries: per UKI the addon dir, then the UKI; kernel dirs; each tree removed
   depth-first through directory descriptors, never following a symlink, never crossing into
   another filesystem;
3. the staged marker, then orphan state dirs (same removal);
4. untag stale bootc tags (one unlink each);
5. repository GC under ``LOCK_EX`` (``repository.gc``: re-validate, unlink dead entries, delete
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

import errno
import os
import re
import stat
from dataclasses import dataclass, field, replace
from typing import Callable

from ansible_collections.bootc.composefs.plugins.module_utils.errors import (
    ComposefsError,
    HostError,
    PlanError,
    UnsafePathError,
)
from ansible_collections.bootc.composefs.plugins.module_utils.host import artifact, bls, findings, grub
from ansible_collections.bootc.composefs.plugins.module_utils.host import deployments as host_deployments
from ansible_collections.bootc.composefs.plugins.module_utils.host.paths import load_host_paths
from ansible_collections.bootc.composefs.plugins.module_utils.oci import cfsctl
from ansible_collections.bootc.composefs.plugins.module_utils.oci import digest as oci_digest
from ansible_collections.bootc.composefs.plugins.module_utils.oci import image as oci_image
from ansible_collections.bootc.composefs.plugins.module_utils.oci import tags as oci_tags
from ansible_collections.bootc.composefs.plugins.module_utils.repository import gc as repo_gc
from ansible_collections.bootc.composefs.plugins.module_utils.repository import meta as repo_meta
from ansible_collections.bootc.composefs.plugins.module_utils.repository.repo import Repository

__all__ = [
    "GcRequest",
    "GcPlan",
    "GcResult",
    "BootBinaryRemoval",
    "StateDirRemoval",
    "TagChange",
    "LiveDeployment",
    "plan_gc",
    "apply_gc",
    "run_gc",
    "BACKEND_NATIVE",
    "BACKEND_CFSCTL",
    "LOCK_TIMEOUT_SECONDS",
]

BACKEND_NATIVE = "native"
BACKEND_CFSCTL = "cfsctl"
BACKENDS = (BACKEND_NATIVE, BACKEND_CFSCTL)
# A GC elsewhere holds the exclusive lock for seconds; a long pull holds the shared one for minutes.
LOCK_TIMEOUT_SECONDS = 300.0
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# Any "bootc_composefs-<name>" written in an entry file protects <name> (paths in linux, initrd,
# efi/uki, chainloader lines, also of entries we cannot otherwise identify).
_ARTIFACT_TOKEN = re.compile(re.escape(artifact.ARTIFACT_PREFIX) + r"([A-Za-z0-9_.+-]+)")
# Host-layer finding codes that make a GC refuse (something we could not read may protect something).
# A stray entry in state/deploy (a state dir replaced by a symlink or a file) or a booted deployment
# that no entry names both mean the boot state cannot be seen as bootc sees it.
_FATAL_ALWAYS = (findings.UNREADABLE_FILE, findings.STRAY_STATE_ENTRY, findings.BOOTED_WITHOUT_ENTRY,
                 findings.CONFLICTING_BOOT_TYPES)
# Deployment verities are fs-verity digests: 128 hex digits (sha512), 64 in sha256 repositories.
_VERITY = re.compile(r"\A(?:[0-9a-f]{64}|[0-9a-f]{128})\Z")
# Where bootc writes real files and directories: a symlink there could hide entries from us.
_BOOT_STATE_NAMES = ("loader", bls.ENTRIES_DIR, bls.STAGED_ENTRIES_DIR, "grub2", grub.USER_CFG, grub.USER_CFG_STAGED)
_FATAL_BOOT_BINARIES = (findings.LEGACY_BOOT_LAYOUT, findings.UNKNOWN_BOOT_ARTIFACT)


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


# --- reading the host -------------------------------------------------------------------------------


def _load_state(request: GcRequest):
    try:
        paths = load_host_paths(request.root, sysroot=request.sysroot, boot_dir=request.boot_dir, esp=request.esp,
                                run_dir=request.run_dir, cmdline_file=request.cmdline_file)
    except HostError as err:
        raise HostError("not a bootc composefs host: %s" % err.message, path=err.path) from None
    return host_deployments.load_host(paths, bootloader_kind=request.bootloader)


class _Notes:
    """Errors, warnings and findings collected while planning."""

    def __init__(self) -> None:
        self.errors = []
        self.warnings = []
        self.findings = []

    def finding(self, code: str, path, message: str) -> None:
        self.findings.append(findings.Finding(code, path, message).as_dict())


def _check_host_findings(state, request: GcRequest, notes: _Notes) -> None:
    for finding in state.findings:
        notes.findings.append(finding.as_dict())
        if finding.code in _FATAL_ALWAYS:
            why = {findings.UNREADABLE_FILE: "fix or remove the file: a file that cannot be read could protect something",
                   findings.STRAY_STATE_ENTRY: "a state dir must be a real directory: what it replaces could be in use",
                   findings.BOOTED_WITHOUT_ENTRY: "the boot menu is not what bootc wrote, so nothing is judged unused "
                                                  "(bootc refuses too)",
                   findings.CONFLICTING_BOOT_TYPES: "the boot state is inconsistent, so nothing is judged unused "
                                                    "(bootc's status fails too)"}[finding.code]
            notes.errors.append("%s: %s; %s" % (finding.path, finding.message, why))
        elif request.boot_binaries and finding.code in _FATAL_BOOT_BINARIES:
            notes.errors.append("%s: %s; run bootc once (it migrates legacy boot artifacts) or disable boot_binaries"
                                % (finding.path, finding.message))


def _check_entries(state, notes: _Notes) -> None:
    """Errors for boot entries bootc would stop at (spec 2.1, 2.3, 2.9), so that we never act on what it cannot read.

    * an entry we identified whose ``composefs=`` value (or UKI name) is no fs-verity digest;
    * an entry we could not tie to a deployment that still says it is bootc's: a ``bootc_*`` file
      name, ``composefs=`` or ``bootc_composefs-`` in it (a damaged bootc entry; bootc's listing
      fails on it, and the deployment it boots would be taken for unused). Entries of fwupd,
      memtest or another OS say none of that and are ignored, as the host layer reports them.
    """
    for entry in state.entries:
        if not _VERITY.match(entry.verity):
            notes.errors.append("%s: boot entry %r boots %r, which is no deployment verity (64 or 128 lowercase hex "
                                "digits); bootc cannot read it either: repair the entry" % (entry.path, entry.name, entry.verity))
    for entry in state.foreign_entries:
        if entry.bls is not None:
            texts = [entry.bls.options or "", entry.bls.linux or "", entry.bls.efi or ""] + list(entry.bls.initrd)
        elif entry.menuentry is not None:
            texts = [entry.menuentry.chainloader, entry.menuentry.options, entry.menuentry.title]
        else:
            try:
                texts = [state.paths.read_text(entry.path) or ""]
            except (OSError, ComposefsError) as err:
                notes.errors.append("%s: cannot be read: %s" % (entry.path, err))
                continue
        bootc_name = entry.bls is not None or entry.menuentry is None
        bootc_name = bootc_name and os.path.basename(entry.path).startswith("bootc_")
        if bootc_name or any("composefs=" in text or artifact.ARTIFACT_PREFIX in text for text in texts):
            notes.errors.append("%s: boot entry %r looks like bootc's but cannot be tied to a deployment (%s); bootc's "
                                "listing fails on it, and the deployment it boots could be taken for unused: repair the "
                                "entry" % (entry.path, entry.name, entry.problem))


def _check_origins(state, notes: _Notes) -> None:
    """Errors for live origins bootc's status would fail on (spec 2.9): no ``manifest_digest`` and no ``.imginfo``."""
    for deployment in state.deployments:
        if deployment.origin is not None and deployment.manifest_digest is None and deployment.imginfo is None:
            notes.errors.append("%s: the origin of %s deployment %s has no [image] manifest_digest and there is no legacy "
                                ".imginfo, so its image is unknown (bootc's status fails too): repair the origin"
                                % (_origin_file(state, deployment), deployment.role, deployment.verity))


def _check_symlinks(paths, notes: _Notes) -> None:
    """Errors for symlinks where bootc keeps real boot state (entries, menus, state dirs, the staged marker).

    The host model follows symlinks inside the host root and treats what they do not lead to as
    absent, which for a boot entry means "not in use": a GC must not act on such a view.
    """
    candidates = [os.path.join(paths.sysroot, "state"), paths.state_deploy_dir, paths.staged_deployment_file]
    for root in sorted({paths.boot_dir, paths.esp}):
        candidates += [os.path.join(root, name) for name in _BOOT_STATE_NAMES]
        for sub in (bls.ENTRIES_DIR, bls.STAGED_ENTRIES_DIR):
            try:
                candidates += [item.path for item in paths.scan_dir(os.path.join(root, sub)) or []]
            except (OSError, ComposefsError):
                continue  # the host layer reports unreadable entry directories
    for path in candidates:
        try:
            real = paths.resolve(path, follow_last=False)
            is_link = stat.S_ISLNK(os.lstat(real).st_mode)
        except FileNotFoundError:
            continue
        except (OSError, ComposefsError) as err:
            notes.errors.append("%s: cannot be checked: %s" % (path, err))
            continue
        if is_link:
            notes.errors.append("%s: is a symbolic link where bootc keeps a real file or directory; what it hides could be "
                                "in use, so nothing is collected: replace it by what it points to" % path)


def _entry_files(paths) -> list:
    """Every boot entry file a bootloader may read: BLS sets below the boot dir and the ESP, GRUB menus."""
    files = []
    roots = [paths.boot_dir] + ([paths.esp] if paths.esp != paths.boot_dir else [])
    for root in roots:
        for sub in (bls.ENTRIES_DIR, bls.STAGED_ENTRIES_DIR):
            directory = os.path.join(root, sub)
            for item in paths.scan_dir(directory) or []:
                if item.kind == "file":
                    files.append(item.path)
        for name in (grub.USER_CFG, grub.USER_CFG_STAGED):
            files.append(os.path.join(root, name))
    return files


def _referenced_names(state, notes: _Notes) -> frozenset:
    """Artifact names no boot binary GC may remove: every entry's, foreign ones' and any written in an entry file."""
    names = set(state.artifact_names)
    for entry in tuple(state.entries) + tuple(state.foreign_entries):
        for derive, value in ((bls.entry_artifact, entry.bls), (grub.menuentry_artifact, entry.menuentry)):
            if value is None:
                continue
            try:
                names.add(derive(value).name)
            except ComposefsError:
                pass
        if entry.bls is not None:
            for initrd in entry.bls.initrd:
                try:
                    names.add(artifact.artifact_from_linux_path(initrd).name)
                except ComposefsError:
                    pass
    try:
        for path in _entry_files(state.paths):
            text = state.paths.read_text(path)
            if text is None:
                continue
            for token in _ARTIFACT_TOKEN.findall(text):
                for suffix in (artifact.ADDON_DIR_SUFFIX, artifact.UKI_SUFFIX):
                    if token.endswith(suffix):
                        token = token[:-len(suffix)]
                        break
                names.add(token)
    except (OSError, ComposefsError) as err:
        notes.errors.append("cannot read the boot entries to see which boot binaries they use: %s"
                            % (str(err) if isinstance(err, ComposefsError) else err.strerror or err))
    return frozenset(names)


def _live_verities(state) -> tuple:
    """Deployments (all roles) then verities only an entry names, in that order, without repeats."""
    order = [d.verity for d in state.deployments]
    for entry in state.entries:
        if entry.verity is not None and entry.verity not in order:
            order.append(entry.verity)
    return tuple(order)


def _plan_boot_binaries(state, notes: _Notes) -> tuple:
    referenced = _referenced_names(state, notes)
    removals = []
    binaries = state.boot_binaries
    present = {b.name for b in binaries.binaries}
    for entry in state.entries:
        name = entry.boot_artifact_name
        if name is None or name in present:
            continue
        if entry.boot_type == "uki":
            kind = "file"
            expected = os.path.join(binaries.uki_dir, artifact.uki_file_name(name) if entry.has_prefix else name + artifact.UKI_SUFFIX)
        else:
            kind = "directory"
            expected = os.path.join(binaries.type1_dir, artifact.type1_dir_name(name) if entry.has_prefix else name)
        notes.errors.append("%s: is not there as a real %s, yet boot entry %s boots from it (a symlink, a damaged entry or a "
                            "lost binary); refusing to collect boot binaries" % (expected, kind, entry.path))
    for binary in binaries.binaries:
        if binary.name in referenced:
            continue
        if binary.name == state.booted_verity:
            notes.errors.append("%s: inconsistent state: the booted deployment's boot binary is named by no boot entry; "
                                "refusing to collect anything (bootc refuses too)" % binary.path)
            continue
        kind = "type1" if binary.boot_type == "bls" else "uki"
        addon = binary.addon_dir.path if binary.addon_dir is not None else None
        removals.append(BootBinaryRemoval(kind, binary.name, binary.path, addon, binary.apparent_bytes))
    for addon in binaries.orphan_addon_dirs:
        if addon.name not in referenced and addon.name != state.booted_verity:
            removals.append(BootBinaryRemoval("addon-dir", addon.name, addon.path, None, addon.apparent_bytes))
    return tuple(sorted(removals, key=lambda r: r.path))


def _plan_state_dirs(state, live: tuple, notes: _Notes) -> tuple:
    named = {entry.verity for entry in state.entries if entry.verity is not None}
    removals = []
    for verity in state.state_dirs:
        if verity in named or verity in live or verity == state.booted_verity:
            continue
        path = os.path.join(state.paths.state_deploy_dir, verity)
        removals.append(StateDirRemoval(verity, path, state.paths.usage(path).apparent_bytes))
    marker = None
    staged = state.staged_deployment
    if staged is not None and staged.depl_id not in named:
        marker = state.paths.staged_deployment_file
    return tuple(sorted(removals, key=lambda r: r.verity)), marker


# --- the repository: live manifests, tags, mark and sweep -----------------------------------------


def _open_repository(paths, writable: bool, timeout, notes: _Notes | None = None):
    """The repository opened (shared lock), or None when it does not exist. Refusals are errors (raised or noted)."""
    path = paths.composefs_repo
    try:
        kind = paths.kind(path)
        real = paths.resolve(path)
        sysroot = paths.resolve(paths.sysroot)
    except (OSError, ComposefsError) as err:
        raise ComposefsError("cannot look up the composefs repository: %s" % err, path=path) from None
    if kind is None:
        return None
    if not (real == sysroot or real.startswith(sysroot.rstrip("/") + "/")):
        raise UnsafePathError("the repository resolves to %s, outside the sysroot %s; refusing to collect it" % (real, sysroot),
                              path=path)
    repo = Repository.open(real, writable=writable, timeout=timeout)
    try:
        _check_repository_format(repo)
    except BaseException:
        repo.close()
        raise
    return repo


def _check_repository_format(repo) -> None:
    meta_path = os.path.join(repo.path, "meta.json")
    if repo.legacy:
        raise ComposefsError("the repository has no meta.json (it predates composefs-rs 0.9); run bootc or cfsctl once to "
                             "upgrade it before collecting garbage", path=meta_path)
    unknown = [f for f in repo.meta.compatible if f not in repo_meta.KNOWN_COMPATIBLE]
    unknown += list(repo.meta.unknown_read_only_features())
    unknown += [f for f in repo.meta.incompatible if f not in repo_meta.KNOWN_INCOMPATIBLE]
    if unknown:
        raise ComposefsError("meta.json lists feature(s) %s unknown to this collection; a feature we do not know could "
                             "change what is reachable, so nothing is collected: update bootc.composefs" % ", ".join(unknown),
                             path=meta_path)


class _TaggedImages:
    """Every tagged manifest opened once: ``images`` (digest -> OciImage) and ``failures`` (digest -> message)."""

    def __init__(self, repo, tags: list) -> None:
        self.images = {}
        self.failures = {}
        for manifest_digest in sorted({digest for _tag, digest in tags}):
            try:
                self.images[manifest_digest] = oci_image.open_image(repo, manifest_digest)
            except (OSError, ComposefsError) as err:
                self.failures[manifest_digest] = str(err) if isinstance(err, ComposefsError) else (err.strerror or str(err))

    def by_config(self, config_digest: str) -> list:
        return sorted(d for d, image in self.images.items() if image.config_digest == config_digest)

    def by_erofs(self, object_id: str) -> list:
        return sorted(d for d, image in self.images.items() if object_id in image.erofs_refs.values())


def _resolve_live(state, repo, tagged: _TaggedImages, live_verities: tuple, notes: _Notes) -> tuple:
    deployments = {d.verity: d for d in state.deployments}
    result = []
    for verity in live_verities:
        deployment = deployments.get(verity)
        role = deployment.role if deployment is not None else "entry-only"
        has_image = False
        if repo is not None:
            if len(verity) != 2 * repo.algorithm.digest_size:
                files = sorted({e.path for e in state.entries if e.verity == verity}) or [state.paths.boot_dir]
                notes.errors.append("%s: boots %s deployment %s, but a %s repository names deployments by %d hex digits: "
                                    "the entry is damaged (bootc cannot read it either); repair it"
                                    % (", ".join(files), role, verity, repo.algorithm.name, 2 * repo.algorithm.digest_size))
            elif _is_hex(verity):
                has_image = repo.image_object_id(verity) is not None
        if deployment is not None and deployment.manifest_digest is not None:
            digest = deployment.manifest_digest
            if tagged is not None and digest not in tagged.images:
                _check_manifest_readable(state, repo, deployment, notes)
            result.append(LiveDeployment(verity, role, (digest,), "origin", has_image))
            continue
        digests = []
        source = None
        info = deployment.imginfo if deployment is not None else None
        if info is not None and tagged is not None:
            digests.extend(tagged.by_config(info.config_digest))
            source = "imginfo" if digests else None
        if tagged is not None:
            found = [d for d in tagged.by_erofs(verity) if d not in digests]
            if found and source is None:
                source = "tag-search"
            digests.extend(found)
        if not digests and deployment is not None:
            notes.warnings.append("%s deployment %s: no manifest found (legacy origin without manifest_digest and no "
                                  "tagged image links it); its boot image is kept, its OCI metadata is not protected"
                                  % (role, verity))
        result.append(LiveDeployment(verity, role, tuple(sorted(digests)), source, has_image))
    return tuple(result)


def _origin_file(state, deployment) -> str:
    return os.path.join(deployment.state_dir or os.path.join(state.paths.state_deploy_dir, deployment.verity),
                        deployment.verity + ".origin")


def _check_manifest_readable(state, repo, deployment, notes: _Notes) -> None:
    """An error naming the origin when the manifest it names cannot be read (bootc's status fails then, spec 2.9)."""
    try:
        oci_image.open_image(repo, deployment.manifest_digest)
    except (OSError, ComposefsError) as err:
        notes.errors.append("%s: names manifest %s, which cannot be read from the repository (%s); bootc's status fails "
                            "too, and what %s deployment %s needs could be taken for unused: repair the origin if it is "
                            "damaged, or pull the image again" % (_origin_file(state, deployment), deployment.manifest_digest,
                                                                  str(err) if isinstance(err, ComposefsError) else err,
                                                                  deployment.role, deployment.verity))


def _is_hex(text: str) -> bool:
    try:
        bytes.fromhex(text)
    except ValueError:
        return False
    return len(text) in (64, 128) and text == text.lower()


def _plan_tags(repo, tags: list, live: tuple, tagged: _TaggedImages, notes: _Notes) -> tuple:
    live_digests = {d for item in live for d in item.manifest_digests}
    by_name = dict(tags)
    create = []
    for manifest_digest in sorted(live_digests):
        tag = oci_tags.bootc_tag(manifest_digest)
        if by_name.get(tag) == manifest_digest:
            continue
        if not repo.has_stream(oci_digest.manifest_stream_name(manifest_digest)):
            notes.warnings.append("live manifest %s has no manifest stream in the repository; tag %s is not created"
                                  % (manifest_digest, tag))
            continue
        create.append(TagChange(tag, manifest_digest))
    creating = {c.tag for c in create}
    unresolved = [item.verity for item in live if not item.manifest_digests and item.role != "entry-only"]
    remove = []
    for tag, manifest_digest in tags:
        if not oci_tags.is_bootc_tag(tag) or manifest_digest in live_digests or tag in creating:
            continue
        if unresolved and manifest_digest in tagged.failures:
            notes.warnings.append("bootc tag %s is kept: its image cannot be read (%s) and deployment(s) %s have no known "
                                  "manifest, so it may be theirs" % (tag, tagged.failures[manifest_digest], ", ".join(unresolved)))
            continue
        remove.append(TagChange(tag, manifest_digest))
    return tuple(create), tuple(remove)


def _repository_part(request: GcRequest, state, live_verities: tuple, notes: _Notes) -> dict:
    """Tags, live manifests and the repository plan; an empty dict when there is no repository."""
    try:
        repo = _open_repository(state.paths, writable=False, timeout=request.lock_timeout)
    except (OSError, ComposefsError) as err:
        notes.errors.append(str(err) if isinstance(err, ComposefsError) else "cannot open the repository: %s" % err)
        return {}
    if repo is None:
        notes.finding("missing-repository", state.paths.composefs_repo, "the composefs repository does not exist")
        notes.warnings.append("no composefs repository at %s: tags and objects are not collected" % state.paths.composefs_repo)
        return {}
    try:
        tags = oci_tags.list_tags(repo)
        tagged = _TaggedImages(repo, tags)
        live = _resolve_live(state, repo, tagged, live_verities, notes)
        create, remove = _plan_tags(repo, tags, live, tagged, notes) if request.tags else ((), ())
        plan = None
        if request.repository:
            extra_images = [item.verity for item in live if item.has_image]
            extra_streams = sorted({oci_digest.manifest_stream_name(d) for item in live for d in item.manifest_digests})
            extra_streams = [name for name in extra_streams if repo.has_stream(name)]
            for item in live:
                if not item.has_image and item.role != "entry-only":
                    notes.finding("missing-image", os.path.join(repo.path, "images", item.verity),
                                  "%s deployment %s has no boot image entry in the repository" % (item.role, item.verity))
            plan = repo_gc.plan_repository_gc(
                repo, extra_images=extra_images, extra_streams=extra_streams,
                add_stream_refs={oci_tags.tag_ref(c.tag): oci_digest.manifest_stream_name(c.manifest_digest) for c in create},
                remove_stream_refs=[oci_tags.tag_ref(r.tag) for r in remove])
            notes.errors.extend(plan.errors)
            for dangling in plan.dangling_refs:
                notes.finding("dangling-ref", os.path.join(repo.path, dangling["entry"]),
                              "%s: %s" % (dangling["ref"], dangling["problem"]))
            for item in plan.invalid_objects:
                notes.finding("invalid-object", item[0], item[1])
            for item in plan.unusable_entries:
                notes.finding("malformed-ref", item[0], item[1])
        return {"tags": tuple(tags), "live": live, "create": create, "remove": remove, "plan": plan}
    except (OSError, ComposefsError) as err:
        notes.errors.append(str(err) if isinstance(err, ComposefsError) else "cannot read the repository: %s" % err)
        return {}
    finally:
        repo.close()


def _paths_dict(state) -> dict:
    paths = state.paths
    return {"root": paths.root, "sysroot": paths.sysroot, "boot_dir": paths.boot_dir, "esp": paths.esp,
            "run_dir": paths.run_dir, "repository": paths.composefs_repo, "state_dir": paths.state_deploy_dir,
            "type1_dir": state.boot_binaries.type1_dir, "uki_dir": state.boot_binaries.uki_dir}


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
    state = _load_state(request)
    notes = _Notes()
    _check_host_findings(state, request, notes)
    _check_symlinks(state.paths, notes)
    _check_entries(state, notes)
    _check_origins(state, notes)
    live_verities = _live_verities(state)
    boot = _plan_boot_binaries(state, notes) if request.boot_binaries else ()
    state_dirs, marker = _plan_state_dirs(state, live_verities, notes) if request.state_dirs else ((), None)
    _check_removal_paths(state, boot, state_dirs, marker, notes)
    repo_part = {}
    if request.tags or request.repository:
        repo_part = _repository_part(request, state, live_verities, notes)
    live = repo_part.get("live") or _resolve_live(state, None, None, live_verities, _Notes())
    plan = GcPlan(
        request=request, paths=_paths_dict(state), booted=state.booted_verity, live=live, boot_binaries=boot,
        state_dirs=state_dirs, staged_marker=marker, tags_before=repo_part.get("tags", ()),
        tags_create=repo_part.get("create", ()), tags_remove=repo_part.get("remove", ()),
        repository=repo_part.get("plan"), state_dirs_before=tuple(state.state_dirs),
        boot_binaries_before=tuple(sorted([b.path for b in state.boot_binaries.binaries]
                                          + [a.path for a in state.boot_binaries.orphan_addon_dirs])),
        findings=tuple(notes.findings),
        warnings=tuple(notes.warnings), errors=tuple(notes.errors))
    return plan, state


# --- deleting on the host ---------------------------------------------------------------------------


def _check_removal_paths(state, boot: tuple, state_dirs: tuple, marker: str | None, notes: _Notes) -> None:
    """Errors for planned removals whose directory resolves outside the sysroot, boot dir and ESP (run dir: marker)."""
    remover = _HostRemover(state.paths, None)
    planned = [(b.path, False) for b in boot] + [(b.addon_dir, False) for b in boot if b.addon_dir]
    planned += [(s.path, False) for s in state_dirs] + ([(marker, True)] if marker else [])
    for path, is_marker in planned:
        try:
            remover.real_parent(path, is_marker)
        except (OSError, ComposefsError) as err:
            notes.errors.append(str(err) if isinstance(err, ComposefsError) else "%s: %s" % (path, err))


def _within(path: str, base: str) -> bool:
    return path == base or path.startswith(base.rstrip("/") + "/")


def _open_real_dir(real: str) -> int:
    """Open absolute path ``real`` one component at a time, refusing any symlink on the way."""
    fd = os.open("/", _DIR_FLAGS)
    try:
        for part in [p for p in real.split("/") if p]:
            try:
                child = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except OSError as err:
                if err.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise UnsafePathError("a component became a symbolic link or is no directory; refusing to delete "
                                          "below it", path=real) from None
                raise
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd


class _HostRemover:
    """Deletes below the real sysroot, boot dir and ESP (and the staged marker below the run dir) only."""

    def __init__(self, paths, step: Callable | None) -> None:
        self.paths = paths
        self.step = step
        self.allowed = [paths.resolve(p) for p in (paths.sysroot, paths.boot_dir, paths.esp)]
        self.run_dir = paths.resolve(paths.run_dir)

    def real_parent(self, path: str, marker: bool = False) -> str:
        """The real directory ``path`` is removed from; UnsafePathError when it lies outside what may be touched."""
        allowed = [self.run_dir] if marker else self.allowed
        real_parent = self.paths.resolve(os.path.dirname(path))
        if not any(_within(real_parent, base) for base in allowed):
            raise UnsafePathError("its directory resolves to %s, outside the %s; refusing to delete it"
                                  % (real_parent, "run dir" if marker else "sysroot, boot dir and ESP"), path=path)
        return real_parent

    def _parent(self, path: str, marker: bool = False) -> tuple:
        return _open_real_dir(self.real_parent(path, marker)), os.path.basename(path)

    def remove(self, path: str, what: str, want_dir: bool | None) -> bool:
        """Remove ``path`` (a tree when it is a directory); False when it no longer exists."""
        parent_fd, name = self._parent(path)
        try:
            info = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
        except FileNotFoundError:
            os.close(parent_fd)
            return False
        try:
            is_dir = stat.S_ISDIR(info.st_mode)
            if want_dir is not None and is_dir != want_dir or not (is_dir or stat.S_ISREG(info.st_mode)):
                raise UnsafePathError("is not a %s any more; refusing to delete it" % ("directory" if want_dir else "regular file"),
                                      path=path)
            if self.step is not None:
                self.step(what, path)
            if is_dir:
                _remove_tree(parent_fd, name, path)
            else:
                os.unlink(name, dir_fd=parent_fd)
        finally:
            os.close(parent_fd)
        return True

    def remove_marker(self, path: str) -> bool:
        parent_fd, name = self._parent(path, marker=True)
        try:
            info = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
            if not stat.S_ISREG(info.st_mode):
                raise UnsafePathError("is not a regular file; refusing to delete it", path=path)
            if self.step is not None:
                self.step("staged-marker", path)
            os.unlink(name, dir_fd=parent_fd)
        except FileNotFoundError:
            return False
        finally:
            os.close(parent_fd)
        return True


def _remove_tree(parent_fd: int, name: str, where: str) -> None:
    """Remove directory ``name`` (in ``parent_fd``) and everything below it, depth-first, through descriptors.

    Symlinks are unlinked, never followed; a directory on another filesystem than the parent (a
    mount point) stops the removal with an error; one descriptor is open per level.
    """
    device = os.fstat(parent_fd).st_dev
    stack = []
    try:
        stack.append([parent_fd, name, _open_subdir(parent_fd, name, device, where), None])
        while stack:
            frame = stack[-1]
            dir_fd = frame[2]
            if frame[3] is None:
                subdirs = []
                with os.scandir(dir_fd) as listing:
                    for item in listing:
                        if item.is_dir(follow_symlinks=False):
                            subdirs.append(item.name)
                        else:
                            os.unlink(item.name, dir_fd=dir_fd)
                frame[3] = subdirs
            if frame[3]:
                child = frame[3].pop()
                stack.append([dir_fd, child, _open_subdir(dir_fd, child, device, where), None])
                continue
            stack.pop()
            os.close(dir_fd)
            os.rmdir(frame[1], dir_fd=frame[0])
    finally:
        for frame in stack:
            os.close(frame[2])


def _open_subdir(dir_fd: int, name: str, device: int, where: str) -> int:
    fd = os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
    if os.fstat(fd).st_dev != device:
        os.close(fd)
        raise UnsafePathError("%s is a mount point (another filesystem) inside what is being deleted; refusing to delete "
                              "into it" % name, path=where)
    return fd


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
    remover = _HostRemover(state.paths, step)
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
            repo = _open_repository(state.paths, writable=True, timeout=plan.request.lock_timeout)
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
                done["repo"] = _run_cfsctl(plan, state.paths, step, runner)
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


@dataclass(frozen=True)
class _CfsctlOutcome:
    """The repository part of a run delegated to cfsctl: counts checked against the plan, and the tool's own."""

    objects_removed: int
    objects_bytes: int
    images_pruned: int
    streams_pruned: int
    removed_objects: tuple
    tool: dict = field(hash=False)

    def as_dict(self, list_objects: bool = False) -> dict:
        data = {"objects_removed": self.objects_removed, "objects_bytes": self.objects_bytes,
                "images_pruned": self.images_pruned, "streams_pruned": self.streams_pruned, "validation": "cfsctl",
                "tool": dict(self.tool)}
        if list_objects:
            data["removed_objects"] = [raw.hex() for raw in self.removed_objects]
        return data


def _run_cfsctl(plan: GcPlan, paths, step: Callable | None, runner) -> _CfsctlOutcome:
    repo_plan = plan.repository
    roots = list(repo_plan.extra_images) + list(repo_plan.extra_streams)
    argv = cfsctl.gc_command(plan.request.cfsctl_command, repo_plan.path, roots)
    if step is not None:
        step("cfsctl", " ".join(argv))
    tool = cfsctl.run_gc(argv, runner=runner)
    gone = []
    total = 0
    for raw, size in zip(repo_plan.remove_objects, repo_plan.remove_sizes):
        object_id = raw.hex()
        if not os.path.lexists(os.path.join(repo_plan.path, "objects", object_id[:2], object_id[2:])):
            gone.append(raw)
            total += size
    pruned = {"images": 0, "streams": 0}
    for category, name, _text in repo_plan.unlink_entries + repo_plan.prune_entries:
        if not os.path.lexists(os.path.join(repo_plan.path, category, name)):
            pruned[category] += 1
    return _CfsctlOutcome(objects_removed=len(gone), objects_bytes=total, images_pruned=pruned["images"],
                          streams_pruned=pruned["streams"], removed_objects=tuple(gone), tool=tool.as_dict())
