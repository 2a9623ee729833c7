# -*- coding: utf-8 -*-
# Copyright: (c) 2026, bootc.composefs maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Menu order of BLS entries, and the UAPI version comparison it relies on (layer: host).

Spec: bootc-composefs-host.md §2.4, §6.3 cases 2, 6, 7. Upstream: bootc
``bootc_composefs/status.rs`` (``get_sorted_type1_boot_entries_helper``), ``parsers/bls_config.rs``
(``Ord for BLSConfig``); the ``uapi-version`` crate; UAPI Version Format Specification.

Menu order (first = the default entry), as bootc computes it:

* systemd-boot: compare ``sort-key`` when both entries have one; if equal or missing, compare
  ``machine-id`` when both have one; if still equal, ``version`` **descending** by the UAPI rules.
  (Plain string comparisons are by code point, i.e. byte-wise for UTF-8.)
* grub and grub-cc: file name, byte-wise **descending** (bootc's approximation of GRUB's rpm-style
  name/version/release sort; they diverge e.g. for versions ``9`` vs ``10``, Open question 11:
  we follow bootc, since bootc decides which entry it considers the default).

``ascending=False`` sorts with the comparison reversed (first = last menu entry); equal elements
keep their input order in both directions. GRUB ``user.cfg`` menuentries keep their file order.

Lists built from an ``entries.EntrySet`` (foreign entries left out):

* ``menu_entries``: configured (or staged) entries in menu order; the first configured one is the
  default entry.
* ``rollback_list``: bootc's list L (§2.5 step 6, §2.6): menu order, except GRUB + BLS where bootc
  asks for ``ascending=false`` and so gets the *last* menu entry first.
* ``bootc_rollback_queued``: bootc's literal ``rollbackQueued`` from the first element of L (§2.6
  table), including its two inverted rows; None where bootc would fail.

UAPI version comparison (``compare_versions``), systemd's ``strverscmp_improved``. Walk both strings,
in a loop: skip characters other than ``A-Za-z0-9~-^.``; a ``~`` sorts lower than anything, even
the end of the string; then the string that has ended is the lower one; then, in turn, a ``-``, a
``^`` and a ``.`` sort lower than whatever the other string has at that point (equal marks are
skipped); then a run of digits compares numerically (leading zeros ignored; digits beat letters
and an empty run); otherwise runs of letters compare as strings (``A < a``, a longer run wins).
The published specification text disagrees with the code in two places (its examples put
``'' < '~'`` and its prose says ``^`` sorts higher); systemd's test suite, which the ``uapi-version``
crate used by bootc also runs, says otherwise, and we follow the code and those tests.
"""

from __future__ import annotations

import functools
import os

from ansible_collections.bootc.composefs.plugins.module_utils.host import bls, bootloader, entries

__all__ = ["compare_versions", "compare_bls_entries", "sort_menu", "menu_entries", "rollback_list", "bootc_rollback_queued"]

_SEPARATORS = "~-^."


def _valid(char: str) -> bool:
    return ("0" <= char <= "9") or ("a" <= char <= "z") or ("A" <= char <= "Z") or char in _SEPARATORS


def _cmp(left, right) -> int:
    return (left > right) - (left < right)


def _run(text: str, start: int, accept) -> int:
    end = start
    while end < len(text) and accept(text[end]):
        end += 1
    return end


def _is_digit(char: str) -> bool:
    return "0" <= char <= "9"


def _is_alpha(char: str) -> bool:
    return ("a" <= char <= "z") or ("A" <= char <= "Z")


def compare_versions(a: str, b: str) -> int:
    """-1, 0 or 1 as version ``a`` is older than, equal to or newer than ``b`` (UAPI rules)."""
    i = j = 0
    while True:
        while i < len(a) and not _valid(a[i]):
            i += 1
        while j < len(b) and not _valid(b[j]):
            j += 1
        head_a = a[i] if i < len(a) else ""
        head_b = b[j] if j < len(b) else ""
        if head_a == "~" or head_b == "~":
            order = _cmp(head_a != "~", head_b != "~")
            if order:
                return order
            i += 1
            j += 1
            head_a = a[i] if i < len(a) else ""
            head_b = b[j] if j < len(b) else ""
        if not head_a or not head_b:
            return _cmp(bool(head_a), bool(head_b))
        for mark in "-^.":
            if head_a == mark or head_b == mark:
                order = _cmp(head_a != mark, head_b != mark)
                if order:
                    return order
                i += 1
                j += 1
                head_a = a[i] if i < len(a) else ""
                head_b = b[j] if j < len(b) else ""
        if _is_digit(head_a) or _is_digit(head_b):
            end_a = _run(a, i, _is_digit)
            end_b = _run(b, j, _is_digit)
            order = _cmp(end_a != i, end_b != j)
            if order:
                return order
            digits_a = a[i:end_a].lstrip("0")
            digits_b = b[j:end_b].lstrip("0")
            order = _cmp(len(digits_a), len(digits_b)) or _cmp(digits_a, digits_b)
            if order:
                return order
        else:
            end_a = _run(a, i, _is_alpha)
            end_b = _run(b, j, _is_alpha)
            order = _cmp(a[i:end_a], b[j:end_b])
            if order:
                return order
        i, j = end_a, end_b


def compare_bls_entries(a, b) -> int:
    """systemd-boot order of two ``BlsEntry`` values: sort-key, machine-id, then version descending."""
    if a.sort_key is not None and b.sort_key is not None:
        order = _cmp(a.sort_key, b.sort_key)
        if order:
            return order
    if a.machine_id is not None and b.machine_id is not None:
        order = _cmp(a.machine_id, b.machine_id)
        if order:
            return order
    return -compare_versions(a.version, b.version)


def _compare_file_names_descending(a: str, b: str) -> int:
    return _cmp(os.fsencode(b), os.fsencode(a))


def sort_menu(items, bootloader_kind: str, ascending: bool = True) -> list:
    """``items`` in BLS menu order for ``bootloader_kind`` (first = default entry).

    ``items`` are objects with ``name`` (the ``.conf`` file name) and ``bls`` (its ``BlsEntry``).
    """
    if bootloader_kind == bootloader.SYSTEMD:
        def compare(x, y):
            return compare_bls_entries(x.bls, y.bls)
    else:
        def compare(x, y):
            return _compare_file_names_descending(x.name, y.name)
    if ascending:
        return sorted(items, key=functools.cmp_to_key(compare))
    return sorted(items, key=functools.cmp_to_key(lambda x, y: -compare(x, y)))


def menu_entries(entry_set, bootloader_kind: str, staged: bool = False, ascending: bool = True) -> list:
    """The non-foreign configured (or staged) entries of ``entry_set`` in menu order."""
    chosen = [entry for entry in (entry_set.staged if staged else entry_set.configured) if not entry.foreign]
    if entry_set.source == entries.SOURCE_GRUB:
        return chosen if ascending else list(reversed(chosen))
    return sort_menu(chosen, bootloader_kind, ascending=ascending)


def rollback_list(entry_set, bootloader_kind: str) -> list:
    """bootc's list L: configured entries in menu order, reversed for GRUB + BLS."""
    ascending = not (entry_set.source == entries.SOURCE_BLS and bootloader_kind == bootloader.GRUB)
    return menu_entries(entry_set, bootloader_kind, ascending=ascending)


def bootc_rollback_queued(entries_l, bootloader_kind: str, booted_verity: str) -> bool | None:
    """bootc's literal rollbackQueued from the first element of L; None if L is empty or bootc would fail."""
    if not entries_l:
        return None
    first = entries_l[0]
    if first.menuentry is not None:
        return booted_verity not in first.menuentry.chainloader
    if first.bls.kind == bls.KIND_EFI:
        # GRUB + BLS: bootc bails on an EFI entry; systemd-boot/grub-cc: bootc omits the negation.
        return None if bootloader_kind == bootloader.GRUB else booted_verity in first.bls.efi
    return booted_verity not in (first.bls.options or "")
