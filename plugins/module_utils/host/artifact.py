# -*- coding: utf-8 -*-
# Copyright: (c) 2026, bootc.composefs maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Names of boot artifacts: Type1 kernel dirs, UKIs and UKI addon dirs (layer: host).

Spec: bootc-composefs-host.md §0 (glossary: boot_artifact_name), §1.7 (boot layout, legacy
layout), §2.1 (per-entry identifiers). Upstream: bootc ``crates/lib/src/composefs_consts.rs``,
``bootc_composefs/boot.rs`` (name helpers), ``parsers/bls_config.rs`` (``boot_artifact_info``).

On-disk names (``<n>`` is the artifact name: the verity of the deployment that *created* it):

| artifact | current name | legacy name (bootc before the prefix migration) |
|---|---|---|
| Type1 kernel dir | ``bootc_composefs-<n>/`` holding ``vmlinuz`` + ``initrd`` | ``<n>/`` |
| UKI (``ESP/EFI/Linux/bootc/``) | ``bootc_composefs-<n>.efi`` | ``<n>.efi`` |
| UKI addon dir (same dir) | ``bootc_composefs-<n>.efi.extra.d/`` | ``<n>.efi.extra.d/`` |

Deriving the name from a path written in a boot entry:

* EFI path (BLS ``efi``/``uki`` key, GRUB ``chainloader``): the file name must end in ``.efi``;
  the ``bootc_composefs-`` prefix is stripped when present (``prefixed`` tells which).
* Type1 ``linux`` path: the name of the kernel's parent directory, prefix stripped when present.

Deriving the *verity* (which deployment an EFI entry boots): bootc requires the prefix and the
suffix. We also accept a legacy unprefixed name when it is a bare 64- or 128-digit lowercase hex
string (bootc renames those before it reads them; a read-only tool must read them as they are).
Anything else is not a bootc UKI: ``fwupdx64.efi``, ``memtest.efi``, another OS's ``grubx64.efi``.
"""

from __future__ import annotations

import posixpath
import re
from typing import NamedTuple

from ansible_collections.bootc.composefs.plugins.module_utils.errors import FormatError

__all__ = [
    "ARTIFACT_PREFIX",
    "UKI_SUFFIX",
    "ADDON_DIR_SUFFIX",
    "UKI_DIR",
    "TYPE1_ESP_DIR",
    "ArtifactName",
    "is_legacy_name",
    "is_safe_name",
    "type1_dir_name",
    "uki_file_name",
    "addon_dir_name",
    "artifact_from_efi_path",
    "artifact_from_linux_path",
    "verity_from_efi_path",
]

ARTIFACT_PREFIX = "bootc_composefs-"
UKI_SUFFIX = ".efi"
ADDON_DIR_SUFFIX = ".efi.extra.d"
# Relative to the ESP: bootc's UKIs live one level below EFI/Linux so that systemd-boot does not
# list them on its own (it only shows them through bootc's .conf entries).
UKI_DIR = "EFI/Linux/bootc"
# Relative to the ESP: Type1 kernel dirs on systemd-boot and grub-cc hosts.
TYPE1_ESP_DIR = "EFI/Linux"

# A legacy (unprefixed) artifact name is a bare verity: SHA-512 (128 hex) on real hosts, SHA-256
# (64 hex) in bootc's own unit tests and in older documentation.
_LEGACY_NAME_RE = re.compile(r"\A(?:[0-9a-f]{64}|[0-9a-f]{128})\Z")


class ArtifactName(NamedTuple):
    """An artifact name with the prefix stripped, and whether the prefix was there."""

    name: str
    prefixed: bool


def is_legacy_name(name: str) -> bool:
    """True if ``name`` looks like a bare verity (64 or 128 lowercase hex digits)."""
    return bool(_LEGACY_NAME_RE.match(name))


def is_safe_name(name: str) -> bool:
    """True if ``name`` can be used as one path component (not empty, no ``/``, not ``.``/``..``)."""
    return bool(name) and "/" not in name and "\0" not in name and name not in (".", "..")


def type1_dir_name(name: str) -> str:
    """``bootc_composefs-<name>``: the Type1 kernel directory of artifact ``name``."""
    return ARTIFACT_PREFIX + name


def uki_file_name(name: str) -> str:
    """``bootc_composefs-<name>.efi``: the UKI file of artifact ``name``."""
    return ARTIFACT_PREFIX + name + UKI_SUFFIX


def addon_dir_name(name: str) -> str:
    """``bootc_composefs-<name>.efi.extra.d``: the addon directory of the UKI of ``name``."""
    return ARTIFACT_PREFIX + name + ADDON_DIR_SUFFIX


def _strip_prefix(name: str) -> ArtifactName:
    if name.startswith(ARTIFACT_PREFIX):
        return ArtifactName(name=name[len(ARTIFACT_PREFIX):], prefixed=True)
    return ArtifactName(name=name, prefixed=False)


def _file_name(path: str) -> str:
    name = posixpath.basename(path.rstrip("/"))
    return "" if name in (".", "..") else name


def artifact_from_efi_path(path: str) -> ArtifactName:
    """The artifact named by an EFI path; ``FormatError`` if it has no file name or no ``.efi``."""
    file_name = _file_name(path)
    if not file_name:
        raise FormatError("EFI path %r has no file name" % path)
    if not file_name.endswith(UKI_SUFFIX):
        raise FormatError("EFI file name %r is missing the %r suffix" % (file_name, UKI_SUFFIX))
    return _strip_prefix(file_name[:-len(UKI_SUFFIX)])


def verity_from_efi_path(path: str) -> str:
    """The verity an EFI path boots; ``FormatError`` if it is not a bootc UKI name (see docstring)."""
    artifact = artifact_from_efi_path(path)
    if not artifact.prefixed and not is_legacy_name(artifact.name):
        raise FormatError("EFI file %r does not start with %r: not a bootc UKI" % (_file_name(path), ARTIFACT_PREFIX))
    if not artifact.name:
        raise FormatError("EFI file %r names no deployment" % _file_name(path))
    return artifact.name


def artifact_from_linux_path(path: str) -> ArtifactName:
    """The artifact (kernel dir) named by a Type1 ``linux`` path; ``FormatError`` if it has no parent dir."""
    parent = posixpath.dirname(path.rstrip("/"))
    dir_name = _file_name(parent) if parent else ""
    if not dir_name:
        raise FormatError("kernel path %r has no parent directory name" % path)
    return _strip_prefix(dir_name)
