# -*- coding: utf-8 -*-
# Copyright: (c) 2026, bootc.composefs maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""When a host GC refuses: the checks of the host view before anything is judged unused (layer: operations).

Refusals (the plan records an error; ``apply_gc`` deletes nothing at all), wherever bootc's own
status would fail and more: any file the host layer could not read or parse (``unreadable-file``:
entries, origins, ``.imginfo``, ``user.cfg``, the staged marker, listings); an entry whose verity
is no digest of the repository's length, or one we cannot tie to a deployment that still looks
like bootc's (``damaged-entry``: ``bootc_*`` file name, ``sort-key bootc-*``, ``composefs=``,
``bootc_composefs-``); an origin without
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
``repository``, every error of ``repository/gc.py`` (an unparsable root or stream, an object whose
content does not match its name, a malformed ref or entry).

Each check appends to the plan's ``PlanNotes``: ``errors`` (a refusal: nothing at all is deleted,
the message names the file, the problem and what fixes it) or ``findings``. The repository side
(format, manifests an origin names) is checked in ``gc_repository.py``.
"""

from __future__ import annotations

import os
import re
import stat

from ansible_collections.bootc.composefs.plugins.module_utils.errors import ComposefsError
from ansible_collections.bootc.composefs.plugins.module_utils.host import bls, findings, grub
from ansible_collections.bootc.composefs.plugins.module_utils.operations import gc_removal
from ansible_collections.bootc.composefs.plugins.module_utils.operations.gc_plan import GcRequest, PlanNotes

__all__ = ["check_host_findings", "check_entries", "check_origins", "check_symlinks", "check_removal_paths", "origin_file"]

# Host-layer finding codes that make a GC refuse (something we could not read may protect something).
# A stray entry in state/deploy (a state dir replaced by a symlink or a file) or a booted deployment
# that no entry names both mean the boot state cannot be seen as bootc sees it.
# A damaged entry (it looks like bootc's but cannot be identified) stops bootc's own listing, and
# the deployment it boots would be taken for unused.
_FATAL_ALWAYS = (findings.UNREADABLE_FILE, findings.STRAY_STATE_ENTRY, findings.BOOTED_WITHOUT_ENTRY,
                 findings.CONFLICTING_BOOT_TYPES, findings.DAMAGED_ENTRY)
# Deployment verities are fs-verity digests: 128 hex digits (sha512), 64 in sha256 repositories.
_VERITY = re.compile(r"\A(?:[0-9a-f]{64}|[0-9a-f]{128})\Z")
# Where bootc writes real files and directories: a symlink there could hide entries from us.
_BOOT_STATE_NAMES = ("loader", bls.ENTRIES_DIR, bls.STAGED_ENTRIES_DIR, "grub2", grub.USER_CFG, grub.USER_CFG_STAGED)
_FATAL_BOOT_BINARIES = (findings.LEGACY_BOOT_LAYOUT, findings.UNKNOWN_BOOT_ARTIFACT)


def check_host_findings(state, request: GcRequest, notes: PlanNotes) -> None:
    """Every host finding into the plan; errors for those that make a GC refuse (always, or with ``boot_binaries``)."""
    for finding in state.findings:
        notes.findings.append(finding.as_dict())
        if finding.code in _FATAL_ALWAYS:
            why = {findings.UNREADABLE_FILE: "fix or remove the file: a file that cannot be read could protect something",
                   findings.STRAY_STATE_ENTRY: "a state dir must be a real directory: what it replaces could be in use",
                   findings.BOOTED_WITHOUT_ENTRY: "the boot menu is not what bootc wrote, so nothing is judged unused "
                                                  "(bootc refuses too)",
                   findings.CONFLICTING_BOOT_TYPES: "the boot state is inconsistent, so nothing is judged unused "
                                                    "(bootc's status fails too)",
                   findings.DAMAGED_ENTRY: "bootc's listing fails on it, and the deployment it boots could be taken for "
                                           "unused: repair the entry"}[finding.code]
            notes.errors.append("%s: %s; %s" % (finding.path, finding.message, why))
        elif request.boot_binaries and finding.code in _FATAL_BOOT_BINARIES:
            notes.errors.append("%s: %s; run bootc once (it migrates legacy boot artifacts) or disable boot_binaries"
                                % (finding.path, finding.message))


def check_entries(state, notes: PlanNotes) -> None:
    """Errors for identified boot entries bootc would stop at (spec 2.1, 2.3, 2.9): a verity that is no fs-verity digest.

    Entries that look like bootc's but cannot be identified are the host layer's ``damaged-entry``
    findings, refused with the other findings (:func:`check_host_findings`); entries of fwupd,
    memtest or another OS (``foreign-entry``) are ignored.
    """
    for entry in state.entries:
        if not _VERITY.match(entry.verity):
            notes.errors.append("%s: boot entry %r boots %r, which is no deployment verity (64 or 128 lowercase hex "
                                "digits); bootc cannot read it either: repair the entry" % (entry.path, entry.name, entry.verity))


def check_origins(state, notes: PlanNotes) -> None:
    """Errors for live origins bootc's status would fail on (spec 2.9): no ``manifest_digest`` and no ``.imginfo``."""
    for deployment in state.deployments:
        if deployment.origin is not None and deployment.manifest_digest is None and deployment.imginfo is None:
            notes.errors.append("%s: the origin of %s deployment %s has no [image] manifest_digest and there is no legacy "
                                ".imginfo, so its image is unknown (bootc's status fails too): repair the origin"
                                % (origin_file(state, deployment), deployment.role, deployment.verity))


def check_symlinks(paths, notes: PlanNotes) -> None:
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


def origin_file(state, deployment) -> str:
    """The path of a deployment's ``<verity>.origin``."""
    return os.path.join(deployment.state_dir or os.path.join(state.paths.state_deploy_dir, deployment.verity),
                        deployment.verity + ".origin")


def check_removal_paths(state, boot: tuple, state_dirs: tuple, marker: str | None, notes: PlanNotes) -> None:
    """Errors for planned removals whose directory resolves outside the sysroot, boot dir and ESP (run dir: marker)."""
    remover = gc_removal.HostRemover(state.paths, None)
    planned = [(b.path, False) for b in boot] + [(b.addon_dir, False) for b in boot if b.addon_dir]
    planned += [(s.path, False) for s in state_dirs] + ([(marker, True)] if marker else [])
    for path, is_marker in planned:
        try:
            remover.real_parent(path, is_marker)
        except (OSError, ComposefsError) as err:
            notes.errors.append(str(err) if isinstance(err, ComposefsError) else "%s: %s" % (path, err))
