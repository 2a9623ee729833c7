# -*- coding: utf-8 -*-
# Copyright: (c) 2026, bootc.composefs maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The GRUB ``user.cfg`` menu bootc writes for UKIs on GRUB classic hosts (layer: host).

Spec: bootc-composefs-host.md §1.7 (GRUB + UKI example, staging protocol), §2.1, §2.3, §6.3 case 3,
Open question 8. Upstream: bootc ``crates/lib/src/parsers/grub_menuconfig.rs``,
``bootc_composefs/boot.rs`` (``write_grub_uki_menuentry``).

Files, relative to the GRUB boot dir (``/sysroot/boot``): ``grub2/user.cfg`` (the menu; first
menuentry = default) and ``grub2/user.cfg.staged`` (the next menu while an update is staged).
bootc writes, with bodies unindented::

    (empty line)
    if [ -f ${config_directory}/efiuuid.cfg ]; then
            source ${config_directory}/efiuuid.cfg
    fi
    menuentry "<boot label>: (<verity>)" {
    insmod fat
    insmod chain
    search --no-floppy --set=root --fs-uuid "${EFI_PART_UUID}"
    chainloader /EFI/Linux/bootc/bootc_composefs-<verity>.efi
    }

Parsing: everything before the first menuentry is the ``preamble``. A menuentry starts with the
word ``menuentry`` at the beginning of a line (comments never start one), then a quoted title
(double quotes with backslash escapes kept verbatim as in bootc, or single quotes), optional GRUB
options (``--class x``), and a ``{ ... }`` body whose braces must balance (backslash escapes a
brace). Body lines are stripped, ``#`` comments and lines without a space are skipped, and each
line splits at its first space: ``insmod`` values are collected, ``chainloader`` and ``search``
keep their last value, ``set`` lines are dropped (as in bootc), other commands go to ``extra``.
Text between and after menuentries is ignored. An unterminated title or body, or an empty
title, is a ``FormatError``.

``grub2-setpassword`` also writes ``grub2/user.cfg``, holding only ``GRUB2_PASSWORD=...``. bootc takes
the mere existence of ``user.cfg`` as "GRUB + UKI" and then finds no entries (Open question 8);
callers here decide by the menuentries actually present. ``has_password`` reports password lines.

Identifiers (§2.1): the verity is the chainloader file name with ``bootc_composefs-`` and ``.efi``
stripped (a legacy bare-hex name is accepted too); the boot artifact name is the same name.
"""

from __future__ import annotations

import os
from typing import NamedTuple

from ansible_collections.bootc.composefs.plugins.module_utils.errors import FormatError
from ansible_collections.bootc.composefs.plugins.module_utils.host import artifact

__all__ = [
    "MenuEntry",
    "GrubUserConfig",
    "USER_CFG",
    "USER_CFG_STAGED",
    "parse_user_cfg",
    "menuentry_verity",
    "menuentry_artifact",
    "load_user_cfg",
]

# Relative to the GRUB boot dir.
USER_CFG = "grub2/user.cfg"
USER_CFG_STAGED = "grub2/user.cfg.staged"

_KEYWORD = "menuentry"
_PASSWORD_PREFIXES = ("GRUB2_PASSWORD=", "password_pbkdf2 ", "password ")


class MenuEntry(NamedTuple):
    """One menuentry: raw title, insmod list, chainloader, search, other commands, options."""

    title: str
    insmod: tuple = ()
    chainloader: str = ""
    search: str = ""
    extra: tuple = ()
    options: str = ""


class GrubUserConfig(NamedTuple):
    """A parsed ``user.cfg``: the text before the first menuentry and the menuentries in file order."""

    preamble: str
    menuentries: tuple
    has_password: bool


def _line_number(text: str, index: int) -> int:
    return text.count("\n", 0, index) + 1


def _find_menuentry(text: str, start: int) -> int:
    """Index of the next line-initial ``menuentry`` keyword at or after ``start``; -1 if none."""
    index = start
    while True:
        index = text.find(_KEYWORD, index)
        if index < 0:
            return -1
        line_start = text.rfind("\n", 0, index) + 1
        after = text[index + len(_KEYWORD):index + len(_KEYWORD) + 1]
        if not text[line_start:index].strip() and (after == "" or after.isspace() or after in "\"'"):
            return index
        index += len(_KEYWORD)


def _read_title(text: str, index: int) -> tuple:
    quote = text[index]
    end = index + 1
    while end < len(text):
        char = text[end]
        if quote == '"' and char == "\\":
            end += 2
            continue
        if char == quote:
            return text[index + 1:end], end + 1
        end += 1
    raise FormatError("line %d: menuentry title is not terminated" % _line_number(text, index))


def _read_body(text: str, index: int) -> tuple:
    depth = 1
    end = index + 1
    while end < len(text):
        char = text[end]
        if char == "\\":
            end += 2
            continue
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return text[index + 1:end], end + 1
        end += 1
    raise FormatError("line %d: menuentry body has no matching '}'" % _line_number(text, index))


def _body_entry(title: str, options: str, body: str) -> MenuEntry:
    insmod = []
    extra = []
    chainloader = ""
    search = ""
    for line in body.split("\n"):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition(" ")
        if not sep:
            continue
        value = value.strip()
        if key == "insmod":
            insmod.append(value)
        elif key == "chainloader":
            chainloader = value
        elif key == "search":
            search = value
        elif key != "set":
            extra.append((key, value))
    return MenuEntry(title=title, insmod=tuple(insmod), chainloader=chainloader, search=search,
                     extra=tuple(extra), options=options)


def _parse_menuentry(text: str, index: int) -> tuple:
    pos = index + len(_KEYWORD)
    while pos < len(text) and text[pos].isspace():
        pos += 1
    if pos >= len(text) or text[pos] not in "\"'":
        raise FormatError("line %d: menuentry title is not quoted" % _line_number(text, index))
    title, pos = _read_title(text, pos)
    if not title:
        raise FormatError("line %d: menuentry has an empty title" % _line_number(text, index))
    brace = text.find("{", pos)
    if brace < 0:
        raise FormatError("line %d: menuentry has no '{' body" % _line_number(text, index))
    options = text[pos:brace].strip()
    body, pos = _read_body(text, brace)
    return _body_entry(title, options, body), pos


def parse_user_cfg(text: str) -> GrubUserConfig:
    """Parse ``user.cfg`` text into its preamble and menuentries (file order, first = default)."""
    first = _find_menuentry(text, 0)
    preamble = text if first < 0 else text[:first]
    entries = []
    index = first
    while index >= 0:
        entry, end = _parse_menuentry(text, index)
        entries.append(entry)
        index = _find_menuentry(text, end)
    has_password = any(line.strip().startswith(_PASSWORD_PREFIXES) for line in preamble.split("\n"))
    return GrubUserConfig(preamble=preamble, menuentries=tuple(entries), has_password=has_password)


def menuentry_verity(entry: MenuEntry) -> str:
    """The verity ``entry`` boots (from its chainloader); ``FormatError`` if it is not a bootc UKI."""
    if not entry.chainloader:
        raise FormatError("menuentry %r has no chainloader" % entry.title)
    return artifact.verity_from_efi_path(entry.chainloader)


def menuentry_artifact(entry: MenuEntry) -> artifact.ArtifactName:
    """The UKI ``entry`` chainloads; ``FormatError`` if the chainloader path yields no name."""
    if not entry.chainloader:
        raise FormatError("menuentry %r has no chainloader" % entry.title)
    return artifact.artifact_from_efi_path(entry.chainloader)


def load_user_cfg(paths, boot_dir: str, staged: bool = False) -> GrubUserConfig | None:
    """The parsed ``grub2/user.cfg`` (or ``.staged``) below ``boot_dir``; None if it does not exist."""
    path = os.path.join(boot_dir, USER_CFG_STAGED if staged else USER_CFG)
    text = paths.read_text(path)
    if text is None:
        return None
    try:
        return parse_user_cfg(text)
    except FormatError as err:
        raise err.with_path(path)
