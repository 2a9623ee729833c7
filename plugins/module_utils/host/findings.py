# -*- coding: utf-8 -*-
# Copyright: (c) 2026, bootc.composefs maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Findings: facts about a host's boot state that are worth reporting but never fatal (layer: host).

bootc aborts ``bootc status`` on many oddities of the boot state (a foreign ``.conf`` file, two
origins disagreeing on the boot type, a malformed origin, see spec bootc-composefs-host.md §2.9).
The read side of this collection keeps going instead and records each oddity as a ``Finding``:
a stable ``code`` a caller can branch on (a GC plan refuses to delete on some of them), the
``path`` the finding is about, and one sentence for a human.

Codes (the ``CODES`` tuple is the complete list):

| code | meaning |
|---|---|
| ``orphan-state-dir`` | ``state/deploy/<v>/`` that no boot entry (configured or staged) names |
| ``entry-without-state-dir`` | a boot entry whose ``composefs=`` verity has no state dir (bootc skips it) |
| ``foreign-entry`` | a boot entry we cannot tie to a deployment and that is not bootc's (fwupd, memtest, another OS) |
| ``damaged-entry`` | a boot entry that looks like bootc's (``bootc_*`` file, ``bootc-*`` sort-key, ``composefs=``) but cannot be identified |
| ``unreadable-file`` | a file that exists but cannot be read or parsed (the message says why) |
| ``missing-origin`` | a state dir without ``<v>.origin`` (bootc hides the deployment) |
| ``legacy-boot-layout`` | boot artifacts without the ``bootc_composefs-`` prefix (pre-migration) |
| ``conflicting-boot-types`` | deployments disagree on BLS vs UKI, or both menus carry entries |
| ``staged-marker-without-entry`` | ``/run/composefs/staged-deployment`` names no listed entry |
| ``orphan-addon-dir`` | ``bootc_composefs-<v>.efi.extra.d`` whose UKI is gone |
| ``stray-state-entry`` | something other than a directory in ``state/deploy/`` |
| ``booted-without-entry`` | the booted deployment has a state dir but no boot entry |
| ``unknown-boot-artifact`` | a deployment's entry whose kernel/UKI path yields no artifact name |
| ``bootloader-guessed`` | no LoaderInfo EFI variable; the bootloader was inferred from the layout |
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = [
    "Finding",
    "CODES",
    "ORPHAN_STATE_DIR",
    "ENTRY_WITHOUT_STATE_DIR",
    "FOREIGN_ENTRY",
    "DAMAGED_ENTRY",
    "UNREADABLE_FILE",
    "MISSING_ORIGIN",
    "LEGACY_BOOT_LAYOUT",
    "CONFLICTING_BOOT_TYPES",
    "STAGED_MARKER_WITHOUT_ENTRY",
    "ORPHAN_ADDON_DIR",
    "STRAY_STATE_ENTRY",
    "BOOTED_WITHOUT_ENTRY",
    "UNKNOWN_BOOT_ARTIFACT",
    "BOOTLOADER_GUESSED",
]

ORPHAN_STATE_DIR = "orphan-state-dir"
ENTRY_WITHOUT_STATE_DIR = "entry-without-state-dir"
FOREIGN_ENTRY = "foreign-entry"
DAMAGED_ENTRY = "damaged-entry"
UNREADABLE_FILE = "unreadable-file"
MISSING_ORIGIN = "missing-origin"
LEGACY_BOOT_LAYOUT = "legacy-boot-layout"
CONFLICTING_BOOT_TYPES = "conflicting-boot-types"
STAGED_MARKER_WITHOUT_ENTRY = "staged-marker-without-entry"
ORPHAN_ADDON_DIR = "orphan-addon-dir"
STRAY_STATE_ENTRY = "stray-state-entry"
BOOTED_WITHOUT_ENTRY = "booted-without-entry"
UNKNOWN_BOOT_ARTIFACT = "unknown-boot-artifact"
BOOTLOADER_GUESSED = "bootloader-guessed"

CODES = (
    ORPHAN_STATE_DIR,
    ENTRY_WITHOUT_STATE_DIR,
    FOREIGN_ENTRY,
    DAMAGED_ENTRY,
    UNREADABLE_FILE,
    MISSING_ORIGIN,
    LEGACY_BOOT_LAYOUT,
    CONFLICTING_BOOT_TYPES,
    STAGED_MARKER_WITHOUT_ENTRY,
    ORPHAN_ADDON_DIR,
    STRAY_STATE_ENTRY,
    BOOTED_WITHOUT_ENTRY,
    UNKNOWN_BOOT_ARTIFACT,
    BOOTLOADER_GUESSED,
)


class Finding(NamedTuple):
    """One reportable oddity: a code from ``CODES``, the path it is about, a sentence."""

    code: str
    path: str | None
    message: str

    def as_dict(self) -> dict:
        """The finding as a plain ``{code, path, message}`` dict (module results, warnings)."""
        return {"code": self.code, "path": self.path, "message": self.message}
