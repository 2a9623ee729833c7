# -*- coding: utf-8 -*-
# Copyright: (c) 2026, bootc.composefs maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One Boot Loader Specification (BLS) Type #1 entry: the ``loader/entries/*.conf`` format (layer: host).

Spec: bootc-composefs-host.md §1.7 (entry examples, file names, sort keys), §2.1 (identifiers),
§6.4 (cases). Upstream: bootc ``crates/lib/src/parsers/bls_config.rs``, ``bootc_composefs/boot.rs``
(file names and sort keys); UAPI Boot Loader Specification.

Format: UTF-8 text, one ``key value`` per line. Lines are stripped; empty lines and lines starting
with ``#`` are ignored; the key ends at the first space or tab and the value is the rest, stripped.
A line that is only a key is ignored (as in bootc). Keys:

| key | repeat | meaning |
|---|---|---|
| ``title`` | last wins | menu title (``PRETTY_NAME`` for bootc Type1, the UKI boot label for UKIs) |
| ``version`` | last wins | **required**; compared with the UAPI version rules for menu order |
| ``linux`` | last wins | Type1 kernel path, e.g. ``/boot/bootc_composefs-<v>/vmlinuz`` |
| ``initrd`` | all kept | Type1 initrd paths |
| ``options`` | joined | kernel command line, holds ``composefs=<v>``; several lines are joined with a space |
| ``efi`` / ``uki`` | last wins | EFI binary (bootc UKI: ``/EFI/Linux/bootc/bootc_composefs-<v>.efi``) |
| ``machine-id``, ``sort-key`` | last wins | menu ordering keys |
| anything else | all kept | kept in ``extra`` in file order |

An entry has exactly one of ``linux`` (Type1) and ``efi``/``uki`` (EFI, usually a UKI);
``FormatError`` otherwise, and when ``version`` is missing.

Two deliberate differences from bootc's parser, both only affecting files bootc did not write:
the key may end at a tab (bootc splits at the first space only), and repeated ``options`` lines are
joined like systemd-boot does (bootc keeps the last one).

Identifiers of an entry (§2.1):

| kind | ``verity`` (which deployment) | ``boot_artifact_name`` (which binaries) |
|---|---|---|
| Type1 | ``composefs=`` in ``options`` (``?`` stripped) | parent dir of ``linux``, prefix stripped if present |
| EFI | file name of the EFI path, prefix and ``.efi`` stripped | same, prefix optional |

For a Type1 entry sharing an older deployment's kernel dir (bootc#2102) the two differ.

File names and sort keys written by bootc (``<os>`` = os-release ``ID``, default ``bootc``; ``<os_>``
= ``<os>`` with ``-`` turned into ``_``, so GRUB's name-version-release split stays right):

| role | file name | ``sort-key`` |
|---|---|---|
| primary (new, default) | ``bootc_<os_>-<version>-1.conf`` | ``bootc-<os>-0`` |
| secondary (previous) | ``bootc_<os_>-<version>-0.conf`` | ``bootc-<os>-1`` |
"""

from __future__ import annotations

from typing import NamedTuple

from ansible_collections.bootc.composefs.plugins.module_utils.errors import FormatError
from ansible_collections.bootc.composefs.plugins.module_utils.host import artifact, cmdline

__all__ = [
    "BlsEntry",
    "EntryFileName",
    "ENTRIES_DIR",
    "STAGED_ENTRIES_DIR",
    "ENTRY_SUFFIX",
    "KIND_TYPE1",
    "KIND_EFI",
    "PRIORITY_PRIMARY",
    "PRIORITY_SECONDARY",
    "parse_bls_entry",
    "entry_verity",
    "entry_artifact",
    "entry_file_name",
    "entry_sort_key",
    "parse_entry_file_name",
]

# Relative to the entries root (the GRUB boot dir, or the ESP for systemd-boot and grub-cc).
ENTRIES_DIR = "loader/entries"
STAGED_ENTRIES_DIR = "loader/entries.staged"
ENTRY_SUFFIX = ".conf"

# The "release" field of the file name (GRUB sorts it descending) and the last field of the sort
# key (systemd-boot sorts it ascending), for the entry to boot by default and the previous one.
PRIORITY_PRIMARY = "primary"
PRIORITY_SECONDARY = "secondary"
_FILE_RELEASE = {PRIORITY_PRIMARY: "1", PRIORITY_SECONDARY: "0"}
_SORT_KEY_SUFFIX = {PRIORITY_PRIMARY: "0", PRIORITY_SECONDARY: "1"}

KIND_TYPE1 = "type1"
KIND_EFI = "efi"


class BlsEntry(NamedTuple):
    """A parsed BLS entry. ``efi_key`` is ``efi`` or ``uki`` for EFI entries, None for Type1."""

    version: str
    title: str | None = None
    linux: str | None = None
    initrd: tuple = ()
    options: str | None = None
    efi: str | None = None
    efi_key: str | None = None
    machine_id: str | None = None
    sort_key: str | None = None
    extra: tuple = ()

    @property
    def kind(self) -> str:
        """``type1`` (kernel + initrd) or ``efi`` (an EFI binary, normally a UKI)."""
        return KIND_EFI if self.efi is not None else KIND_TYPE1

    @property
    def boot_type(self) -> str:
        """The bootc boot type this entry implies: ``bls`` for Type1, ``uki`` for EFI entries."""
        return "uki" if self.kind == KIND_EFI else "bls"


def _split_line(line: str) -> tuple:
    for index, char in enumerate(line):
        if char in " \t":
            return line[:index], line[index + 1:].strip()
    return line, None


def parse_bls_entry(text: str) -> BlsEntry:
    """Parse the text of one ``.conf`` entry; ``FormatError`` if version or the kernel/EFI key is wrong."""
    fields = {}
    initrd = []
    options = []
    extra = []
    efi_key = None
    for line in text.split("\n"):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, value = _split_line(line)
        if value is None:
            continue
        if key in ("title", "version", "linux", "machine-id", "sort-key"):
            fields[key] = value
        elif key in ("efi", "uki"):
            fields["efi"] = value
            efi_key = key
        elif key == "initrd":
            initrd.append(value)
        elif key == "options":
            options.append(value)
        else:
            extra.append((key, value))
    if "version" not in fields:
        raise FormatError("missing 'version' key")
    if "linux" in fields and "efi" in fields:
        raise FormatError("both 'linux' and '%s' keys are present" % efi_key)
    if "linux" not in fields and "efi" not in fields:
        raise FormatError("missing 'linux', 'efi' or 'uki' key")
    return BlsEntry(
        version=fields["version"],
        title=fields.get("title"),
        linux=fields.get("linux"),
        initrd=tuple(initrd),
        options=" ".join(options) if options else None,
        efi=fields.get("efi"),
        efi_key=efi_key,
        machine_id=fields.get("machine-id"),
        sort_key=fields.get("sort-key"),
        extra=tuple(extra),
    )


def entry_verity(entry: BlsEntry) -> str:
    """The verity of the deployment ``entry`` boots; ``FormatError`` saying why if it names none."""
    if entry.kind == KIND_EFI:
        return artifact.verity_from_efi_path(entry.efi)
    if entry.options is None:
        raise FormatError("Type1 entry has no 'options' line, so no composefs= parameter")
    param = cmdline.find_composefs(entry.options)
    if param is None:
        raise FormatError("Type1 entry has no composefs= parameter in its options")
    return param.verity


def entry_artifact(entry: BlsEntry) -> artifact.ArtifactName:
    """The boot artifact ``entry`` points at; ``FormatError`` if its path yields no name."""
    if entry.kind == KIND_EFI:
        return artifact.artifact_from_efi_path(entry.efi)
    return artifact.artifact_from_linux_path(entry.linux)


def entry_file_name(os_id: str, version: str, priority: str) -> str:
    """``bootc_<os_>-<version>-<1|0>.conf``: the file name bootc gives an entry."""
    return "bootc_%s-%s-%s%s" % (os_id.replace("-", "_"), version, _FILE_RELEASE[priority], ENTRY_SUFFIX)


def entry_sort_key(os_id: str, priority: str) -> str:
    """``bootc-<os>-<0|1>``: the sort key bootc gives an entry (hyphens in ``os_id`` kept)."""
    return "bootc-%s-%s" % (os_id, _SORT_KEY_SUFFIX[priority])


class EntryFileName(NamedTuple):
    """A ``.conf`` file name split from the right the way GRUB does: name, version, release."""

    name: str
    version: str
    release: str


def parse_entry_file_name(file_name: str) -> EntryFileName:
    """Split ``<name>-<version>-<release>.conf``; ``FormatError`` if it lacks two ``-`` or ``.conf``."""
    if not file_name.endswith(ENTRY_SUFFIX):
        raise FormatError("entry file name %r does not end in %r" % (file_name, ENTRY_SUFFIX))
    parts = file_name[:-len(ENTRY_SUFFIX)].rsplit("-", 2)
    if len(parts) != 3:
        raise FormatError("entry file name %r is not <name>-<version>-<release>.conf" % file_name)
    return EntryFileName(name=parts[0], version=parts[1], release=parts[2])
