# -*- coding: utf-8 -*-
# Copyright: (c) 2026, bootc.composefs maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The host side of a GC plan: what the boot entries use, and which boot binaries and state dirs go (layer: operations).

Spec: bootc-composefs-host.md §4.2 steps 3-10, §4.3 (bootc#2102), §4.4; Open questions 6, 7, 15.

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
================= ================================================================ ====================================

What the entries use (:func:`referenced_names`) comes from the host layer, which reads every entry
file once (``host.entries.list_entry_files``): nothing here reads an entry file.

Live verities (:func:`live_verities`): every deployment ``load_host`` returns (booted, staged,
rollback, other, and the ``unlisted`` ones bootc's status hides: Open question 7) plus any verity
a boot entry names without a state dir (Open question 6).
"""

from __future__ import annotations

import os

from ansible_collections.bootc.composefs.plugins.module_utils.errors import ComposefsError
from ansible_collections.bootc.composefs.plugins.module_utils.host import artifact, bls, grub
from ansible_collections.bootc.composefs.plugins.module_utils.host import deployments as host_deployments
from ansible_collections.bootc.composefs.plugins.module_utils.host.paths import load_request_paths
from ansible_collections.bootc.composefs.plugins.module_utils.operations.gc_plan import BootBinaryRemoval, GcRequest, PlanNotes, StateDirRemoval

__all__ = ["load_state", "referenced_names", "live_verities", "plan_boot_binaries", "plan_state_dirs", "paths_dict"]


def load_state(request: GcRequest):
    """The host as ``host.deployments.load_host`` reads it below the request's paths; HostError when it is no bootc composefs host."""
    return host_deployments.load_host(load_request_paths(request), bootloader_kind=request.bootloader)


def referenced_names(state, notes: PlanNotes) -> frozenset:
    """Artifact names no boot binary GC may remove: those of every entry of both sources, and any written in an entry file.

    Entry files (``state.entry_files``: both BLS sets and GRUB menus below the boot dir and the
    ESP) are read by the host layer; one that could not be read is a refusal (it could name a
    binary in use).
    """
    names = set(state.artifact_names)
    for entry in state.entries + state.unchosen_entries + state.foreign_entries + state.damaged_entries:
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
    for entry_file in state.entry_files:
        if entry_file.problem is not None:
            notes.errors.append("%s: %s; the boot entries must be read to see which boot binaries they use: fix or "
                                "remove the file" % (entry_file.path, entry_file.problem))
        names.update(entry_file.artifact_names)
    return frozenset(names)


def live_verities(state) -> tuple:
    """Deployments (all roles) then verities only an entry names, in that order, without repeats."""
    order = [d.verity for d in state.deployments]
    for entry in state.entries:
        if entry.verity is not None and entry.verity not in order:
            order.append(entry.verity)
    return tuple(order)


def plan_boot_binaries(state, notes: PlanNotes) -> tuple:
    """The boot binaries (kernel dirs, UKIs, addon dirs) no entry names, sorted by path; refusals go to ``notes``."""
    referenced = referenced_names(state, notes)
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


def plan_state_dirs(state, live: tuple) -> tuple:
    """``(state dirs no entry names and no live deployment has, staged marker path or None)``."""
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


def paths_dict(state) -> dict:
    """The host paths the plan used (module result ``paths``)."""
    paths = state.paths
    return {"root": paths.root, "sysroot": paths.sysroot, "boot_dir": paths.boot_dir, "esp": paths.esp,
            "run_dir": paths.run_dir, "repository": paths.composefs_repo, "state_dir": paths.state_deploy_dir,
            "type1_dir": state.boot_binaries.type1_dir, "uki_dir": state.boot_binaries.uki_dir}
