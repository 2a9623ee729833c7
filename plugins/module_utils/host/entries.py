# -*- coding: utf-8 -*-
# Copyright: (c) 2026, bootc.composefs maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The boot entries of a host, from BLS ``.conf`` files or GRUB ``user.cfg``, as one record type (layer: host).

Spec: bootc-composefs-host.md §2.1, §2.3, §2.4, §6.1 T3, §6.3 case 5, Open questions 8 and 10.
Upstream: bootc ``bootc_composefs/status.rs`` (``list_bootloader_entries``, ``list_type1_entries``,
``get_sorted_*``), bootc issues #2208 and #2228.

Sources, relative to the *entries root* (the GRUB boot dir on GRUB classic, the ESP on
systemd-boot and grub-cc):

| source | configured | staged |
|---|---|---|
| ``bls`` | ``loader/entries/*.conf`` | ``loader/entries.staged/*.conf`` |
| ``grub`` (GRUB classic + UKI, relative to the boot dir) | ``grub2/user.cfg`` menuentries | ``grub2/user.cfg.staged`` |

Each entry becomes a ``BootEntry`` carrying where it came from, the parsed entry, the deployment
``verity`` it boots and the ``artifact`` (boot artifact name) it points at (§2.1). Non-``.conf``
names, subdirectories and missing directories are skipped. Duplicates are expected: while an
update is staged, the booted entry appears in both the configured and the staged set.

Unlike bootc, one odd entry never aborts the listing:

* an entry that cannot be tied to a deployment (no ``version``, no ``composefs=`` in a Type1
  entry, an EFI path that is not a bootc UKI) keeps ``verity`` None and says why in ``problem``.
  If it still looks like bootc's, it is *damaged* (``damaged``, reported as ``damaged-entry``):
  a BLS file named ``bootc_*`` (bootc's scheme, spec §1.7), a ``sort-key bootc-*``, or
  ``composefs=`` / a ``bootc_composefs-`` path in its ``options``, ``linux``, ``initrd`` or ``efi``
  (a GRUB menuentry: its ``chainloader``, ``options`` or title; a ``.conf`` that does not parse:
  its whole text). bootc's listing fails on such an entry, and the deployment it boots could be
  taken for unused. Otherwise it is *foreign* (``fwupd.conf``, memtest, another OS) and reported
  as ``foreign-entry``;
* an entry whose verity is known but whose kernel/UKI path yields no artifact name keeps its
  verity (it still protects its deployment) with ``artifact`` None and ``problem`` set;
* a verity that is not a safe single path component (``composefs=../x``) leaves the entry
  unidentified (damaged: it carries ``composefs=``), since it would be used to build state-dir paths;
* a file that cannot be read, or a ``user.cfg`` that does not parse, is reported as
  ``unreadable-file`` and contributes no entries.

Order within each set: BLS entries by file name (bytes); menuentries in file order. Menu order is
a separate step (``menuorder``).

Entry files (``list_entry_files``): every regular file of ``loader/entries`` and
``loader/entries.staged`` below each root given (the boot dir and the ESP), ``.conf`` or not,
and ``grub2/user.cfg[.staged]`` below each, read once, with every boot artifact name written in
it (``bootc_composefs-<name>``, ``.efi`` / ``.efi.extra.d`` stripped) or the reason it could not
be read. A bootloader may read any of them, whatever source the host layer chose: a garbage
collection keeps every binary they name.

Which source a GRUB classic host uses (``choose_source``, Open question 8): bootc switches to the
GRUB menu as soon as ``grub2/user.cfg`` exists, so a ``user.cfg`` written by ``grub2-setpassword``
(only ``GRUB2_PASSWORD=...``) hides every BLS entry. We take the source that actually names
deployments; when both do, the booted deployment's origin ``boot_type`` decides (``uki`` ⇒ GRUB
menu, ``bls`` ⇒ BLS), then the source naming the booted verity, then BLS; the caller reports it.
systemd-boot and grub-cc always use BLS.
"""

from __future__ import annotations

import os
import re
from typing import NamedTuple

from ansible_collections.bootc.composefs.plugins.module_utils.errors import ComposefsError, FormatError
from ansible_collections.bootc.composefs.plugins.module_utils.host import artifact, bls, findings, grub

__all__ = [
    "BootEntry",
    "EntrySet",
    "EntryFile",
    "list_bls_entries",
    "list_grub_entries",
    "list_entry_files",
    "artifact_names_in",
    "choose_source",
    "SOURCE_BLS",
    "SOURCE_GRUB",
]

SOURCE_BLS = "bls"
SOURCE_GRUB = "grub"
# Any "bootc_composefs-<name>" written in an entry file names a boot artifact (linux, initrd,
# efi/uki, chainloader paths; also in entries nothing else identifies).
_ARTIFACT_TOKEN = re.compile(re.escape(artifact.ARTIFACT_PREFIX) + r"([A-Za-z0-9_.+-]+)")
# What makes an unidentified entry bootc's: its file name, its sort-key, what its paths and options say.
_BOOTC_FILE_PREFIX = "bootc_"
_BOOTC_SORT_KEY_PREFIX = "bootc-"
_BOOTC_MARKS = ("composefs=", artifact.ARTIFACT_PREFIX)


class BootEntry(NamedTuple):
    """One boot entry, configured or staged, from a ``.conf`` file or a ``user.cfg`` menuentry.

    ``name`` is the ``.conf`` file name (BLS) or the menuentry title (GRUB); ``position`` the index
    of the menuentry in its file (0 for BLS). ``verity`` is None for an entry we cannot identify,
    foreign or ``damaged`` (one that looks like bootc's, see the module docstring).
    """

    source: str
    path: str
    name: str
    staged: bool
    position: int
    boot_type: str | None
    verity: str | None
    artifact: artifact.ArtifactName | None
    problem: str | None
    bls: bls.BlsEntry | None = None
    menuentry: grub.MenuEntry | None = None
    damaged: bool = False

    @property
    def foreign(self) -> bool:
        """True if the entry boots no deployment we can identify (a foreign or a damaged entry)."""
        return self.verity is None

    @property
    def boot_artifact_name(self) -> str | None:
        """The name of the kernel dir or UKI this entry uses (prefix stripped), None if unknown."""
        return self.artifact.name if self.artifact is not None else None

    @property
    def has_prefix(self) -> bool | None:
        """Whether the artifact path carries the ``bootc_composefs-`` prefix (None if unknown)."""
        return self.artifact.prefixed if self.artifact is not None else None


class EntrySet(NamedTuple):
    """Entries of one source: ``configured`` and ``staged`` (foreign ones included) plus findings."""

    source: str
    configured: tuple
    staged: tuple
    findings: tuple
    has_password: bool = False

    @property
    def all(self) -> tuple:
        """Configured entries followed by staged ones."""
        return self.configured + self.staged

    @property
    def composefs(self) -> tuple:
        """Entries that boot an identified deployment (configured then staged)."""
        return tuple(entry for entry in self.all if not entry.foreign)

    @property
    def foreign(self) -> tuple:
        """Entries of other tools: nothing we can identify, nothing bootc's (configured then staged)."""
        return tuple(entry for entry in self.all if entry.foreign and not entry.damaged)

    @property
    def damaged(self) -> tuple:
        """Entries that look like bootc's but boot nothing we can identify (configured then staged)."""
        return tuple(entry for entry in self.all if entry.damaged)


class EntryFile(NamedTuple):
    """A file a bootloader may read entries from: the boot artifact names written in it, or why it could not be read."""

    path: str
    artifact_names: frozenset
    problem: str | None = None


def _identify(derive_verity, derive_artifact, value) -> tuple:
    try:
        verity = derive_verity(value)
    except FormatError as err:
        return None, None, err.message
    if not artifact.is_safe_name(verity):
        return None, None, "verity %r is not a single path component" % verity
    try:
        return verity, derive_artifact(value), None
    except FormatError as err:
        return verity, None, err.message


def _marked_as_bootc(texts) -> bool:
    return any(mark in text for text in texts for mark in _BOOTC_MARKS)


def _bls_entry(path: str, name: str, text: str, staged: bool) -> BootEntry:
    bootc_name = name.startswith(_BOOTC_FILE_PREFIX)
    try:
        parsed = bls.parse_bls_entry(text)
    except FormatError as err:
        return BootEntry(source=SOURCE_BLS, path=path, name=name, staged=staged, position=0, boot_type=None,
                         verity=None, artifact=None, problem=err.message, damaged=bootc_name or _marked_as_bootc([text]))
    verity, name_of_artifact, problem = _identify(bls.entry_verity, bls.entry_artifact, parsed)
    damaged = verity is None and (bootc_name or (parsed.sort_key or "").startswith(_BOOTC_SORT_KEY_PREFIX)
                                  or _marked_as_bootc([parsed.options or "", parsed.linux or "", parsed.efi or ""]
                                                      + list(parsed.initrd)))
    return BootEntry(source=SOURCE_BLS, path=path, name=name, staged=staged, position=0, boot_type=parsed.boot_type,
                     verity=verity, artifact=name_of_artifact, problem=problem, bls=parsed, damaged=damaged)


def _note_entry(entry: BootEntry, found: list) -> None:
    if entry.damaged:
        found.append(findings.Finding(findings.DAMAGED_ENTRY, entry.path,
                                      "boot entry %r looks like bootc's but cannot be tied to a deployment (%s)"
                                      % (entry.name, entry.problem)))
    elif entry.foreign:
        found.append(findings.Finding(findings.FOREIGN_ENTRY, entry.path,
                                      "boot entry %r is not a bootc deployment and is ignored: %s" % (entry.name, entry.problem)))
    elif entry.artifact is None:
        found.append(findings.Finding(findings.UNKNOWN_BOOT_ARTIFACT, entry.path,
                                      "boot entry %r boots %s but names no boot binary: %s" % (entry.name, entry.verity, entry.problem)))


def _list_bls_dir(paths, directory: str, staged: bool, found: list) -> tuple:
    try:
        listing = paths.scan_dir(directory) or []
    except OSError as err:
        found.append(findings.Finding(findings.UNREADABLE_FILE, directory, "cannot list boot entries: %s" % err.strerror))
        return ()
    entries = []
    for item in listing:
        if not item.name.endswith(bls.ENTRY_SUFFIX) or item.kind == "dir":
            continue
        try:
            if paths.kind(item.path) != "file":
                continue
            text = paths.read_text(item.path)
        except (OSError, ComposefsError) as err:
            found.append(findings.Finding(findings.UNREADABLE_FILE, item.path, "cannot read boot entry: %s" % _reason(err)))
            continue
        if text is None:
            continue
        entry = _bls_entry(item.path, item.name, text, staged)
        _note_entry(entry, found)
        entries.append(entry)
    return tuple(entries)


def _reason(err) -> str:
    if isinstance(err, ComposefsError):
        return err.message
    return err.strerror or str(err)


def list_bls_entries(paths, entries_root: str) -> EntrySet:
    """``loader/entries`` then ``loader/entries.staged`` below ``entries_root``, as ``BootEntry`` records."""
    found = []
    configured = _list_bls_dir(paths, os.path.join(entries_root, bls.ENTRIES_DIR), False, found)
    staged = _list_bls_dir(paths, os.path.join(entries_root, bls.STAGED_ENTRIES_DIR), True, found)
    return EntrySet(source=SOURCE_BLS, configured=configured, staged=staged, findings=tuple(found))


def _menuentry(path: str, position: int, entry: grub.MenuEntry, staged: bool) -> BootEntry:
    verity, name_of_artifact, problem = _identify(grub.menuentry_verity, grub.menuentry_artifact, entry)
    damaged = verity is None and _marked_as_bootc([entry.chainloader, entry.options, entry.title])
    return BootEntry(source=SOURCE_GRUB, path=path, name=entry.title, staged=staged, position=position, boot_type="uki",
                     verity=verity, artifact=name_of_artifact, problem=problem, menuentry=entry, damaged=damaged)


def list_grub_entries(paths, boot_dir: str) -> EntrySet:
    """The menuentries of ``grub2/user.cfg`` then ``grub2/user.cfg.staged`` below ``boot_dir``."""
    found = []
    sets = []
    has_password = False
    for staged in (False, True):
        path = os.path.join(boot_dir, grub.USER_CFG_STAGED if staged else grub.USER_CFG)
        try:
            config = grub.load_user_cfg(paths, boot_dir, staged=staged)
        except (OSError, ComposefsError) as err:
            found.append(findings.Finding(findings.UNREADABLE_FILE, path, "cannot read GRUB menu: %s" % _reason(err)))
            config = None
        entries = []
        if config is not None:
            has_password = has_password or config.has_password
            for position, menuentry in enumerate(config.menuentries):
                entry = _menuentry(path, position, menuentry, staged)
                _note_entry(entry, found)
                entries.append(entry)
        sets.append(tuple(entries))
    return EntrySet(source=SOURCE_GRUB, configured=sets[0], staged=sets[1], findings=tuple(found),
                    has_password=has_password)


def artifact_names_in(text: str) -> frozenset:
    """Every boot artifact name written in ``text`` as ``bootc_composefs-<name>`` (``.efi``, ``.efi.extra.d`` stripped)."""
    names = set()
    for token in _ARTIFACT_TOKEN.findall(text):
        for suffix in (artifact.ADDON_DIR_SUFFIX, artifact.UKI_SUFFIX):
            if token.endswith(suffix):
                token = token[:-len(suffix)]
                break
        names.add(token)
    return frozenset(names)


def _entry_file(paths, path: str) -> EntryFile | None:
    try:
        text = paths.read_text(path)
    except (OSError, ComposefsError) as err:
        return EntryFile(path, frozenset(), "cannot be read: %s" % _reason(err))
    return None if text is None else EntryFile(path, artifact_names_in(text))


def list_entry_files(paths, roots) -> tuple:
    """An :class:`EntryFile` per file a bootloader may read entries from below each of ``roots`` (see the module docstring)."""
    found = []
    for root in roots:
        for sub in (bls.ENTRIES_DIR, bls.STAGED_ENTRIES_DIR):
            directory = os.path.join(root, sub)
            try:
                listing = paths.scan_dir(directory) or []
            except (OSError, ComposefsError) as err:
                found.append(EntryFile(directory, frozenset(), "cannot be listed: %s" % _reason(err)))
                continue
            found.extend(_entry_file(paths, item.path) for item in listing if item.kind == "file")
        found.extend(_entry_file(paths, os.path.join(root, name)) for name in (grub.USER_CFG, grub.USER_CFG_STAGED))
    return tuple(item for item in found if item is not None)


def choose_source(bls_set: EntrySet, grub_set: EntrySet | None, booted_verity: str, booted_boot_type: str | None) -> tuple:
    """``(entry_set, why)``: the source to use and, only when both name deployments, why it won."""
    if grub_set is None or not grub_set.composefs:
        return bls_set, None
    if not bls_set.composefs:
        return grub_set, None
    if booted_boot_type in ("uki", "bls"):
        chosen = grub_set if booted_boot_type == "uki" else bls_set
        return chosen, "the booted deployment's origin has boot_type %s" % booted_boot_type
    in_grub = any(entry.verity == booted_verity for entry in grub_set.composefs)
    in_bls = any(entry.verity == booted_verity for entry in bls_set.composefs)
    if in_grub and not in_bls:
        return grub_set, "only the GRUB menu names the booted deployment"
    return bls_set, "BLS entries are the default"
