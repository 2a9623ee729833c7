# -*- coding: utf-8 -*-
# Copyright: (c) 2026, bootc.composefs maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which bootloader runs the host: systemd-boot, GRUB classic or grub-cc (layer: host).

Spec: bootc-composefs-host.md §1.7 (bootloader detection, where things live). Upstream: bootc
``bootc_composefs/status.rs`` (``get_bootloader``), ``install.rs`` (``EFI_LOADER_INFO``).

The bootloader announces itself in the EFI variable ``LoaderInfo-4a67b082-0a4c-41cf-b6c7-440b29bb8c4f``
(Boot Loader Interface), read from efivarfs (``<root>/sys/firmware/efi/efivars``). An efivarfs
file is a 4-byte little-endian attribute mask followed by the variable data; LoaderInfo's data is
a NUL-terminated UTF-16LE string such as ``systemd-boot 256.4``.

| lowercased LoaderInfo contains | kind | entries root | Type1 kernel dirs |
|---|---|---|---|
| ``systemd-boot`` | ``systemd`` | ESP | ``ESP/EFI/Linux`` |
| ``grub cc`` | ``grub-cc`` | ESP | ``ESP/EFI/Linux`` |
| anything else | ``grub`` | the GRUB boot dir | the GRUB boot dir |

No efivarfs, or no LoaderInfo (BIOS boot, GRUB classic that does not set it, a disk image) ⇒
``grub``, as in bootc; ``source`` then says ``default`` so a caller can tell a guess from a fact.
``systemd`` and ``grub-cc`` are "BLS compatible": their menu is ``loader/entries`` on the ESP.

A root that is not the running system (a disk image, a test tree) has no efivarfs, and bootc's
``grub`` default is then wrong for a systemd-boot host. ``guess_bootloader`` offers one inference:
no ``loader/entries`` and no ``grub2/user.cfg`` in the GRUB boot dir while the ESP holds
``loader/entries`` means ``systemd`` (grub-cc has the same layout; only an explicit kind tells it apart).
"""

from __future__ import annotations

import os
from typing import NamedTuple

from ansible_collections.bootc.composefs.plugins.module_utils.errors import ComposefsError, FormatError
from ansible_collections.bootc.composefs.plugins.module_utils.host import bls, grub

__all__ = [
    "Bootloader",
    "SYSTEMD",
    "GRUB",
    "GRUB_CC",
    "KINDS",
    "LOADER_INFO_VARIABLE",
    "parse_loader_info",
    "bootloader_kind",
    "load_bootloader",
    "guess_bootloader",
]

SYSTEMD = "systemd"
GRUB = "grub"
GRUB_CC = "grub-cc"
KINDS = (GRUB, GRUB_CC, SYSTEMD)

LOADER_INFO_VARIABLE = "LoaderInfo-4a67b082-0a4c-41cf-b6c7-440b29bb8c4f"
# efivarfs prefixes the variable data with its attributes (u32, little-endian).
EFIVAR_ATTRIBUTES_BYTES = 4

SOURCE_EFIVARS = "efivars"
SOURCE_DEFAULT = "default"
SOURCE_OVERRIDE = "override"


class Bootloader(NamedTuple):
    """The bootloader ``kind``, the LoaderInfo text it came from, and the ``source`` of the decision."""

    kind: str
    loader_info: str | None
    source: str

    @property
    def bls_compatible(self) -> bool:
        """True for systemd-boot and grub-cc: entries and Type1 kernels live on the ESP."""
        return self.kind in (SYSTEMD, GRUB_CC)


def parse_loader_info(data: bytes) -> str:
    """The LoaderInfo string from efivarfs file content (attributes skipped, NULs stripped)."""
    if len(data) < EFIVAR_ATTRIBUTES_BYTES:
        raise FormatError("efivarfs file of %d bytes is shorter than its 4-byte attribute header" % len(data))
    payload = data[EFIVAR_ATTRIBUTES_BYTES:]
    if len(payload) % 2:
        payload = payload[:-1]
    return payload.decode("utf-16-le", errors="replace").split("\0", 1)[0]


def bootloader_kind(loader_info: str | None) -> str:
    """``systemd``, ``grub-cc`` or ``grub`` for a LoaderInfo string (None ⇒ ``grub``)."""
    text = (loader_info or "").lower()
    if "systemd-boot" in text:
        return SYSTEMD
    if "grub cc" in text:
        return GRUB_CC
    return GRUB


def load_bootloader(paths, override: str | None = None) -> Bootloader:
    """The host's bootloader: ``override`` if given, else from LoaderInfo, else ``grub``."""
    if override is not None:
        if override not in KINDS:
            raise ComposefsError("unknown bootloader kind %r (expected one of %s)" % (override, ", ".join(KINDS)))
        return Bootloader(kind=override, loader_info=None, source=SOURCE_OVERRIDE)
    path = os.path.join(paths.efivars_dir, LOADER_INFO_VARIABLE)
    data = paths.read_bytes(path)
    if data is None:
        return Bootloader(kind=GRUB, loader_info=None, source=SOURCE_DEFAULT)
    try:
        text = parse_loader_info(data)
    except FormatError as err:
        raise err.with_path(path)
    return Bootloader(kind=bootloader_kind(text), loader_info=text, source=SOURCE_EFIVARS)


def guess_bootloader(paths) -> str | None:
    """``systemd`` if only the ESP holds boot entries (see the module docstring), else None."""
    if paths.is_dir(os.path.join(paths.boot_dir, bls.ENTRIES_DIR)):
        return None
    if paths.kind(os.path.join(paths.boot_dir, grub.USER_CFG)) is not None:
        return None
    if paths.is_dir(os.path.join(paths.esp, bls.ENTRIES_DIR)):
        return SYSTEMD
    return None
