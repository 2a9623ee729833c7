# -*- coding: utf-8 -*-
# Copyright: (c) 2026, bootc.composefs maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Error types of the bootc.composefs library (the bottom layer: imports nothing of ours).

Every failure the library knows how to describe is a ``ComposefsError``. Callers catch that one
type; subclasses exist only where a caller branches on the kind of failure. An error names the
file it is about (``path``) and, for format errors, the byte ``offset``; ``str(err)`` renders
``"<path>: offset 0x<off>: <message>"`` so a module can hand it straight to ``fail_json``.

Pure parsers do not know the path of what they parse: they raise without one and the ``load_*``
boundary adds it with ``err.with_path(path)``.
"""

from __future__ import annotations

__all__ = [
    "ComposefsError",
    "FormatError",
    "UnsafePathError",
    "RepositoryFormatError",
    "RepositoryLockedError",
    "DanglingRefError",
    "ToolError",
    "HostError",
    "PlanError",
]


class ComposefsError(Exception):
    """Base class: a failure with a human sentence, the path it concerns, and partial results."""

    def __init__(self, message: str, path: str | None = None, partial_result: dict | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.path = path
        self.partial_result = dict(partial_result or {})

    def with_path(self, path) -> "ComposefsError":
        """Attach the file this error is about (only if none is known yet); returns self."""
        if self.path is None and path is not None:
            self.path = str(path)
        return self

    def _prefix(self) -> str:
        return "%s: " % self.path if self.path else ""

    def __str__(self) -> str:
        return self._prefix() + self.message


class FormatError(ComposefsError, ValueError):
    """Malformed bytes or text in one of the on-disk formats (truncated, bad magic, bad offset...)."""

    def __init__(self, message: str, offset: int | None = None, path: str | None = None) -> None:
        super().__init__(message, path=path)
        self.offset = offset

    def __str__(self) -> str:
        where = "offset 0x%x: " % self.offset if self.offset is not None else ""
        return self._prefix() + where + self.message


class UnsafePathError(ComposefsError):
    """A path or symlink would lead outside the repository or sysroot, or has a forbidden shape."""


class RepositoryFormatError(ComposefsError):
    """The repository cannot be used: not initialized, unknown version or feature, wrong algorithm."""


class RepositoryLockedError(ComposefsError):
    """The repository lock could not be taken (another process holds it and we may not wait)."""


class DanglingRefError(ComposefsError):
    """A ref or entry points at something that does not exist."""


class ToolError(ComposefsError):
    """An external command (skopeo, podman, zstd, cfsctl, bootc) failed."""

    def __init__(self, message: str, command=None, rc: int | None = None, stderr: str = "",
                 path: str | None = None, partial_result: dict | None = None) -> None:
        super().__init__(message, path=path, partial_result=partial_result)
        self.command = list(command or [])
        self.rc = rc
        self.stderr = stderr or ""


class HostError(ComposefsError):
    """The host is not a composefs bootc host, or its boot state is inconsistent."""


class PlanError(ComposefsError):
    """A plan cannot be applied (it recorded errors, or the disk changed since it was made)."""
