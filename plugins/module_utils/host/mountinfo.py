# -*- coding: utf-8 -*-
# Copyright: (c) 2026, bootc.composefs maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The mount source of ``/``, which names the running deployment after a soft reboot (layer: host).

Spec: bootc-composefs-host.md §2.2. Upstream: bootc ``bootc_composefs/status.rs``
(``composefs_booted``).

The kernel command line does not change on a soft reboot (``systemctl soft-reboot``), but the
root filesystem does: its mount source is ``composefs:<verity>`` (normal boot) or
``transient:composefs=<verity>`` (transient root). When that verity differs from the
``composefs=`` parameter, the mount source names the running deployment.

Format of ``/proc/self/mountinfo`` (proc(5)), one mount per line, space separated:

| field | meaning |
|---|---|
| 1-4 | mount id, parent id, ``major:minor``, root of the mount within its filesystem |
| 5 | mount point (octal escapes ``\\040`` space, ``\\011`` tab, ``\\012`` newline, ``\\134`` backslash) |
| 6 | mount options |
| 7.. | zero or more optional fields, ended by a single ``-`` |
| after ``-`` | filesystem type, mount source (same escapes), super options |

Mounts stack: the *last* line whose mount point is ``/`` is the visible root.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from ansible_collections.bootc.composefs.plugins.module_utils.errors import FormatError

__all__ = ["RootMount", "parse_root_mount", "load_root_mount"]

_ESCAPE_RE = re.compile(r"\\([0-7]{3})")
_SOURCE_PREFIXES = (("composefs:", False), ("transient:composefs=", True))


class RootMount(NamedTuple):
    """The visible ``/`` mount: its source and type, and the verity it names (None if not composefs)."""

    source: str
    fstype: str
    verity: str | None
    transient: bool


def _unescape(field: str) -> str:
    return _ESCAPE_RE.sub(lambda m: chr(int(m.group(1), 8)), field)


def parse_root_mount(text: str) -> RootMount | None:
    """The last mount of ``/`` in mountinfo ``text``; None if ``/`` is not listed."""
    found = None
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        fields = line.split(" ")
        try:
            separator = fields.index("-", 6)
        except ValueError:
            raise FormatError("line %d: no '-' separator after the optional fields" % number)
        if len(fields) < separator + 3:
            raise FormatError("line %d: missing filesystem type or mount source" % number)
        if _unescape(fields[4]) != "/":
            continue
        source = _unescape(fields[separator + 2])
        verity = None
        transient = False
        for prefix, is_transient in _SOURCE_PREFIXES:
            if source.startswith(prefix) and len(source) > len(prefix):
                verity = source[len(prefix):]
                transient = is_transient
                break
        found = RootMount(source=source, fstype=_unescape(fields[separator + 1]), verity=verity, transient=transient)
    return found


def load_root_mount(paths) -> RootMount | None:
    """The ``/`` mount from ``paths.mountinfo_file``; None if that file does not exist."""
    text = paths.read_text(paths.mountinfo_file)
    if text is None:
        return None
    try:
        return parse_root_mount(text)
    except FormatError as err:
        raise err.with_path(paths.mountinfo_file)
