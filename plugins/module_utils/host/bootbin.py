# -*- coding: utf-8 -*-
# Copyright: (c) 2026, bootc.composefs maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Boot binaries on disk: Type1 kernel dirs, UKIs and UKI addon dirs, with their sizes (layer: host).

Spec: bootc-composefs-host.md §1.7 (where things live, shared Type1 dirs, legacy layout), §4.2
steps 3-6, §4.3, §6.2, Open question 15. Upstream: bootc ``bootc_composefs/gc.rs``
(``collect_boot_binaries``, ``unreferenced_boot_binaries``, ``delete_uki``), ``boot.rs``.

| binary | directory scanned | name on disk |
|---|---|---|
| Type1 kernel dir (``vmlinuz`` + ``initrd``) | GRUB: the boot dir; systemd-boot, grub-cc: ``ESP/EFI/Linux`` | ``bootc_composefs-<n>/`` |
| UKI | ``ESP/EFI/Linux/bootc`` | ``bootc_composefs-<n>.efi`` |
| UKI addons | ``ESP/EFI/Linux/bootc`` | ``bootc_composefs-<n>.efi.extra.d/`` |

``<n>`` is the *boot artifact name*: the verity of the deployment that created the binary. Type1
dirs are shared by later deployments with an identical kernel+initrd (bootc#2102), so a dir may be
named after a deployment that no longer exists; whether a binary is still used is decided by
comparing ``<n>`` with the boot artifact names of the entries (``unreferenced_binaries``), never
with deployment verities.

Legacy layout (bootc before the prefix migration): Type1 dirs named ``<n>/``, UKIs ``<n>.efi`` and
addon dirs ``<n>.efi.extra.d/`` where ``<n>`` is a bare 64- or 128-hex verity. bootc's GC scanner
cannot see them, so a GC must refuse to run while any exist; they are listed with
``prefixed=False`` and reported as ``legacy-boot-layout``.

Addon dirs belong to the UKI of the same name and are deleted with it by bootc. A dir whose UKI is
already gone is never collected by bootc (Open question 15); it is listed in ``orphan_addon_dirs``
and reported as ``orphan-addon-dir``. Sizes are measured without following symlinks:
``apparent_bytes`` sums file sizes, ``disk_bytes`` sums allocated blocks (hard links counted once).
"""

from __future__ import annotations

import os
from typing import NamedTuple

from ansible_collections.bootc.composefs.plugins.module_utils.host import artifact, bootloader, findings

__all__ = [
    "BootBinary",
    "AddonDir",
    "BootBinaries",
    "type1_binaries_dir",
    "uki_binaries_dir",
    "load_boot_binaries",
    "unreferenced_binaries",
]

TYPE1 = "bls"
UKI = "uki"


class AddonDir(NamedTuple):
    """A UKI addon dir ``<n>.efi.extra.d`` with its size."""

    name: str
    prefixed: bool
    path: str
    apparent_bytes: int
    disk_bytes: int


class BootBinary(NamedTuple):
    """A Type1 kernel dir (``boot_type`` ``bls``) or a UKI (``uki``); sizes include the addon dir."""

    boot_type: str
    name: str
    prefixed: bool
    path: str
    apparent_bytes: int
    disk_bytes: int
    addon_dir: AddonDir | None = None


class BootBinaries(NamedTuple):
    """Every boot binary found, orphaned addon dirs, the directories scanned and the findings."""

    type1_dir: str
    uki_dir: str
    binaries: tuple
    orphan_addon_dirs: tuple
    findings: tuple

    @property
    def legacy(self) -> tuple:
        """Binaries and addon dirs without the ``bootc_composefs-`` prefix (pre-migration layout)."""
        return tuple(b for b in self.binaries if not b.prefixed) + tuple(a for a in self.orphan_addon_dirs if not a.prefixed)


def type1_binaries_dir(paths, bootloader_kind: str) -> str:
    """Where Type1 kernel dirs live: the boot dir for GRUB, ``ESP/EFI/Linux`` otherwise."""
    if bootloader_kind == bootloader.GRUB:
        return paths.boot_dir
    return os.path.join(paths.esp, artifact.TYPE1_ESP_DIR)


def uki_binaries_dir(paths) -> str:
    """Where UKIs and their addon dirs live: ``ESP/EFI/Linux/bootc``."""
    return os.path.join(paths.esp, artifact.UKI_DIR)


def _name_of(stem: str) -> artifact.ArtifactName | None:
    if stem.startswith(artifact.ARTIFACT_PREFIX):
        name = stem[len(artifact.ARTIFACT_PREFIX):]
        return artifact.ArtifactName(name=name, prefixed=True) if name else None
    if artifact.is_legacy_name(stem):
        return artifact.ArtifactName(name=stem, prefixed=False)
    return None


def _scan(paths, directory: str, found: list) -> list:
    try:
        return paths.scan_dir(directory) or []
    except OSError as err:
        found.append(findings.Finding(findings.UNREADABLE_FILE, directory, "cannot list boot binaries: %s" % err.strerror))
        return []


def _type1(paths, directory: str, found: list) -> list:
    binaries = []
    for entry in _scan(paths, directory, found):
        name = _name_of(entry.name) if entry.kind == "dir" else None
        if name is None:
            continue
        size = paths.usage(entry.path)
        binaries.append(BootBinary(boot_type=TYPE1, name=name.name, prefixed=name.prefixed, path=entry.path,
                                   apparent_bytes=size.apparent_bytes, disk_bytes=size.disk_bytes))
    return binaries


def _ukis(paths, directory: str, found: list) -> tuple:
    ukis = {}
    addons = {}
    for entry in _scan(paths, directory, found):
        if entry.kind == "file" and entry.name.endswith(artifact.UKI_SUFFIX):
            name = _name_of(entry.name[:-len(artifact.UKI_SUFFIX)])
            if name is not None:
                ukis[(name.name, name.prefixed)] = entry.path
        elif entry.kind == "dir" and entry.name.endswith(artifact.ADDON_DIR_SUFFIX):
            name = _name_of(entry.name[:-len(artifact.ADDON_DIR_SUFFIX)])
            if name is not None:
                size = paths.usage(entry.path)
                addons[(name.name, name.prefixed)] = AddonDir(name=name.name, prefixed=name.prefixed, path=entry.path,
                                                              apparent_bytes=size.apparent_bytes, disk_bytes=size.disk_bytes)
    binaries = []
    for key, path in ukis.items():
        addon = addons.pop(key, None)
        size = paths.usage(path)
        extra_apparent = addon.apparent_bytes if addon else 0
        extra_disk = addon.disk_bytes if addon else 0
        binaries.append(BootBinary(boot_type=UKI, name=key[0], prefixed=key[1], path=path,
                                   apparent_bytes=size.apparent_bytes + extra_apparent,
                                   disk_bytes=size.disk_bytes + extra_disk, addon_dir=addon))
    return binaries, list(addons.values())


def load_boot_binaries(paths, bootloader_kind: str) -> BootBinaries:
    """Scan the Type1 and UKI directories of the host (see the module docstring)."""
    found = []
    type1_dir = type1_binaries_dir(paths, bootloader_kind)
    uki_dir = uki_binaries_dir(paths)
    binaries = _type1(paths, type1_dir, found)
    ukis, orphans = _ukis(paths, uki_dir, found)
    binaries.extend(ukis)
    for binary in binaries:
        if not binary.prefixed:
            found.append(findings.Finding(findings.LEGACY_BOOT_LAYOUT, binary.path,
                                          "boot binary has no %r prefix (layout from before bootc's prefix migration); "
                                          "run bootc once to migrate it" % artifact.ARTIFACT_PREFIX))
    for addon in orphans:
        found.append(findings.Finding(findings.ORPHAN_ADDON_DIR, addon.path,
                                      "UKI addon directory whose UKI %s is gone" % artifact.uki_file_name(addon.name)))
        if not addon.prefixed:
            found.append(findings.Finding(findings.LEGACY_BOOT_LAYOUT, addon.path,
                                          "UKI addon directory has no %r prefix" % artifact.ARTIFACT_PREFIX))
    return BootBinaries(type1_dir=type1_dir, uki_dir=uki_dir, binaries=tuple(binaries),
                        orphan_addon_dirs=tuple(orphans), findings=tuple(found))


def unreferenced_binaries(binaries, artifact_names) -> tuple:
    """The binaries whose name is none of ``artifact_names`` (the entries' boot artifact names)."""
    names = set(artifact_names)
    return tuple(binary for binary in binaries if binary.name not in names)
