# -*- coding: utf-8 -*-
# Copyright: (c) 2026, bootc.composefs maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Deployment state dirs ``<sysroot>/state/deploy/<verity>/`` and the files read from them (layer: host).

Spec: bootc-composefs-host.md §1.3 (state dir content), §2.5 step 1, §2.9, §4.2 step 8, Open
question 7. Upstream: bootc ``bootc_composefs/state.rs`` (``read_origin``), ``gc.rs``
(``list_state_dirs``), ``status.rs`` (``get_imginfo``).

| entry | content |
|---|---|
| ``etc/`` | the deployment's writable ``/etc`` |
| ``var`` | symlink ``../../os/default/var`` (the shared ``/var``) |
| ``<verity>.origin`` | see ``origin`` |
| ``<verity>.imginfo`` | legacy only, see ``imginfo``; read only when the origin has no ``manifest_digest`` |

A state dir is a *directory* in ``state/deploy``. bootc counts every non-regular-file entry (a
symlink too) and its GC deletes the orphans recursively; we list only real directories and report
anything else as ``stray-state-entry``, so nothing but a directory is ever offered for deletion.

Reading the files of one state dir never fails: a missing origin is ``missing-origin`` (bootc logs
"No origin file for deployment <v>" and hides the deployment), an unreadable or malformed one, or a
malformed ``.imginfo``, is ``unreadable-file``; the value is then None.
"""

from __future__ import annotations

import os
from typing import NamedTuple

from ansible_collections.bootc.composefs.plugins.module_utils.errors import ComposefsError
from ansible_collections.bootc.composefs.plugins.module_utils.host import findings, imginfo, origin
from ansible_collections.bootc.composefs.plugins.module_utils.host.imginfo import ImageInfo
from ansible_collections.bootc.composefs.plugins.module_utils.host.origin import Origin

__all__ = ["StateFiles", "list_state_dirs", "load_state_files"]


class StateFiles(NamedTuple):
    """What one state dir yields: its path, origin and legacy imginfo (None when absent or unreadable)."""

    path: str
    origin: Origin | None
    imginfo: ImageInfo | None
    findings: tuple


def _reason(err) -> str:
    return err.message if isinstance(err, ComposefsError) else (err.strerror or str(err))


def list_state_dirs(paths) -> tuple:
    """``(names, findings)``: the state dir names in ``state/deploy`` and findings about other entries."""
    found = []
    try:
        listing = paths.scan_dir(paths.state_deploy_dir) or []
    except (OSError, ComposefsError) as err:
        return (), (findings.Finding(findings.UNREADABLE_FILE, paths.state_deploy_dir,
                                     "cannot list the state directory: %s" % _reason(err)),)
    names = []
    for item in listing:
        if item.kind == "dir":
            names.append(item.name)
        else:
            found.append(findings.Finding(findings.STRAY_STATE_ENTRY, item.path,
                                          "%s in the deployment state directory is not a directory" % item.kind))
    return tuple(names), tuple(found)


def load_state_files(paths, verity: str) -> StateFiles:
    """The origin (and, for a legacy origin, the ``.imginfo``) of deployment ``verity``, with findings."""
    found = []
    path = origin.origin_path(paths, verity)
    loaded = None
    try:
        loaded = origin.load_origin(paths, verity)
        if loaded is None:
            found.append(findings.Finding(findings.MISSING_ORIGIN, path, "deployment %s has a state dir but no origin "
                                                                         "file (bootc hides it from status)" % verity))
    except (OSError, ComposefsError) as err:
        found.append(findings.Finding(findings.UNREADABLE_FILE, path, "cannot read the origin of %s: %s" % (verity, _reason(err))))
    info = None
    if loaded is not None and loaded.manifest_digest is None:
        try:
            info = imginfo.load_imginfo(paths, verity)
        except (OSError, ComposefsError) as err:
            found.append(findings.Finding(findings.UNREADABLE_FILE, imginfo.imginfo_path(paths, verity),
                                          "cannot read the legacy image info of %s: %s" % (verity, _reason(err))))
    return StateFiles(path=os.path.join(paths.state_deploy_dir, verity), origin=loaded, imginfo=info, findings=tuple(found))
