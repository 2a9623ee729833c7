# -*- coding: utf-8 -*-
# Copyright: (c) 2026, bootc.composefs maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The kernel command line and its ``composefs=`` parameter (layer: host).

Spec: bootc-composefs-host.md §2.1 (Type1 entries carry ``composefs=`` in ``options``), §2.2 (the
booted deployment), §6.3 cases 1 and 4. Upstream: bootc ``bootc_composefs/status.rs``
(``ComposefsCmdline``), ``composefs_consts.rs`` (``COMPOSEFS_CMDLINE``).

Format (``/proc/cmdline``, and the ``options`` line of a BLS entry): parameters separated by
whitespace; a parameter is ``key`` or ``key=value``; double quotes group text containing spaces
(``key="a b"`` or ``"key=a b"``), and are removed from the value. As in the kernel, ``-`` and ``_``
are interchangeable in keys.

``composefs=<verity>`` names the booted deployment; ``composefs=?<verity>`` means the same and
additionally that fs-verity is optional (``missing_verity_allowed``, from ``--allow-missing-verity``
at install). The key must match exactly: ``composefs_backup=...`` is a different parameter. The
first ``composefs=`` wins (as in bootc). A ``composefs`` without value, or with an empty verity,
names no deployment and is treated as absent.
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = [
    "COMPOSEFS_KEY",
    "KernelParam",
    "ComposefsParam",
    "KernelCmdline",
    "split_cmdline",
    "parse_cmdline",
    "parse_composefs_value",
    "find_composefs",
    "load_cmdline",
]

COMPOSEFS_KEY = "composefs"
# Prefix of the composefs= value meaning "fs-verity is optional".
OPTIONAL_VERITY_MARK = "?"


def _normalize_key(key: str) -> str:
    return key.replace("-", "_")


class KernelParam(NamedTuple):
    """One parameter: ``key``, ``value`` (None for a bare flag, quotes removed), the ``raw`` token."""

    key: str
    value: str | None
    raw: str


class ComposefsParam(NamedTuple):
    """The value of ``composefs=``: the deployment verity and whether fs-verity may be missing."""

    verity: str
    missing_verity_allowed: bool

    def render(self) -> str:
        """The parameter as written on a command line: ``composefs=[?]<verity>``."""
        return "%s=%s%s" % (COMPOSEFS_KEY, OPTIONAL_VERITY_MARK if self.missing_verity_allowed else "", self.verity)


class KernelCmdline(NamedTuple):
    """A parsed command line: all parameters in order, plus the ``composefs=`` one if any."""

    params: tuple
    composefs: ComposefsParam | None

    def find(self, key: str) -> KernelParam | None:
        """The first parameter whose key is ``key`` (``-``/``_`` equivalent); None if absent."""
        wanted = _normalize_key(key)
        for param in self.params:
            if _normalize_key(param.key) == wanted:
                return param
        return None

    @property
    def other_params(self) -> tuple:
        """Every parameter except ``composefs=`` ones, in order."""
        wanted = _normalize_key(COMPOSEFS_KEY)
        return tuple(p for p in self.params if _normalize_key(p.key) != wanted)


def split_cmdline(text: str) -> list:
    """The raw parameter tokens of ``text``: whitespace-separated, double quotes grouping."""
    tokens = []
    current = []
    quoted = False
    in_token = False
    for char in text:
        if char == '"':
            quoted = not quoted
            in_token = True
            current.append(char)
        elif char.isspace() and not quoted:
            if in_token:
                tokens.append("".join(current))
                current = []
                in_token = False
        else:
            current.append(char)
            in_token = True
    if in_token:
        tokens.append("".join(current))
    return tokens


def _parse_param(raw: str) -> KernelParam:
    key, sep, value = raw.partition("=")
    key = key.replace('"', "")
    if not sep:
        return KernelParam(key=key, value=None, raw=raw)
    return KernelParam(key=key, value=value.replace('"', ""), raw=raw)


def parse_composefs_value(value: str | None) -> ComposefsParam | None:
    """The verity and flag of a ``composefs=`` value (``<v>`` or ``?<v>``); None if it names nothing."""
    if value is None:
        return None
    allowed = value.startswith(OPTIONAL_VERITY_MARK)
    verity = value[len(OPTIONAL_VERITY_MARK):] if allowed else value
    if not verity:
        return None
    return ComposefsParam(verity=verity, missing_verity_allowed=allowed)


def parse_cmdline(text: str) -> KernelCmdline:
    """Parse a kernel command line (``/proc/cmdline`` content or a BLS ``options`` value)."""
    params = tuple(_parse_param(raw) for raw in split_cmdline(text))
    parsed = KernelCmdline(params=params, composefs=None)
    param = parsed.find(COMPOSEFS_KEY)
    return KernelCmdline(params=params, composefs=parse_composefs_value(param.value if param else None))


def find_composefs(text: str) -> ComposefsParam | None:
    """The ``composefs=`` parameter of command line ``text``; None if it has none."""
    return parse_cmdline(text).composefs


def load_cmdline(paths) -> KernelCmdline | None:
    """The host's kernel command line (``paths.cmdline_file``); None if the file does not exist."""
    text = paths.read_text(paths.cmdline_file)
    if text is None:
        return None
    return parse_cmdline(text)
