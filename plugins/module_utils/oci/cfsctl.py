# -*- coding: utf-8 -*-
# Copyright: (c) 2026, bootc.composefs maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ``cfsctl`` command line (or ``bootc internals cfs``, which embeds it), wrapped once (layer: oci).

Upstream: composefs-rs ``crates/composefs-ctl/src/lib.rs`` (``App``, ``Command::GC``). Spec:
``composefs-repo.md`` section 12 and ``bootc-composefs-host.md`` section 4.2 step 16.

Only garbage collection is used here::

    <command...> --repo <repository> --no-upgrade gc [-r <root>]... [--dry-run]

``<command...>`` is ``cfsctl`` or ``bootc internals cfs``; ``--no-upgrade`` keeps the tool from
writing a meta.json into a repository that has none; ``-r`` names extra roots (first-level
``images/`` or ``streams/`` entry names). The tool prints, for humans::

    Dry run (no files deleted):                  (dry run only)
    Objects: <n> removed (<bytes> bytes)
    Pruned symlinks: <i> images, <s> streams     (only when one is non-zero)

Those lines are parsed into numbers for the record only (``changed`` never depends on them); a line
that is missing gives None. Every run forces ``LC_ALL=C``; a non-zero exit is a ``ToolError`` with
the command and the end of stderr. ``runner(argv, env)`` is replaceable (tests pass a fake tool).
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from typing import Callable

from ansible_collections.bootc.composefs.plugins.module_utils.errors import ToolError

__all__ = ["CfsctlGcOutput", "gc_command", "parse_gc_output", "run_command", "run_gc"]

STDERR_TAIL_CHARS = 2000
_OBJECTS_LINE = re.compile(r"^Objects: (\d+) removed \((\d+) bytes\)\s*$", re.MULTILINE)
_PRUNED_LINE = re.compile(r"^Pruned symlinks: (\d+) images, (\d+) streams\s*$", re.MULTILINE)


@dataclass(frozen=True)
class CfsctlGcOutput:
    """What ``cfsctl gc`` said it did (None where its output had no such line)."""

    argv: tuple
    objects_removed: int | None
    objects_bytes: int | None
    images_pruned: int | None
    streams_pruned: int | None
    stdout: str

    def as_dict(self) -> dict:
        return {"command": list(self.argv), "objects_removed": self.objects_removed, "objects_bytes": self.objects_bytes,
                "images_pruned": self.images_pruned, "streams_pruned": self.streams_pruned}


def gc_command(command, repo_path: str, roots, dry_run: bool = False) -> list:
    """The argv of a GC of ``repo_path`` keeping ``roots`` (entry names), by ``command`` (``["cfsctl"]``...)."""
    argv = [str(part) for part in command] + ["--repo", str(repo_path), "--no-upgrade", "gc"]
    for root in roots:
        argv += ["-r", str(root)]
    if dry_run:
        argv.append("--dry-run")
    return argv


def parse_gc_output(argv, stdout: str) -> CfsctlGcOutput:
    """The numbers of ``cfsctl gc``'s report (see the module docstring)."""
    objects = _OBJECTS_LINE.search(stdout)
    pruned = _PRUNED_LINE.search(stdout)
    return CfsctlGcOutput(
        argv=tuple(argv),
        objects_removed=int(objects.group(1)) if objects else None,
        objects_bytes=int(objects.group(2)) if objects else None,
        images_pruned=int(pruned.group(1)) if pruned else (0 if objects else None),
        streams_pruned=int(pruned.group(2)) if pruned else (0 if objects else None),
        stdout=stdout,
    )


def run_command(argv, env: dict) -> tuple:
    """Run ``argv`` with ``env``; return ``(rc, stdout, stderr)`` as text (the default runner)."""
    try:
        proc = subprocess.run(list(argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, check=False)
    except OSError as err:
        raise ToolError("cannot run %s: %s" % (argv[0], err.strerror or err), command=argv) from None
    return proc.returncode, proc.stdout.decode("utf-8", "replace"), proc.stderr.decode("utf-8", "replace")


def run_gc(argv, runner: Callable | None = None) -> CfsctlGcOutput:
    """Run a GC command made by :func:`gc_command`; ToolError when it fails."""
    env = dict(os.environ, LC_ALL="C")
    rc, stdout, stderr = (runner or run_command)(list(argv), env)
    if rc != 0:
        tail = stderr[-STDERR_TAIL_CHARS:]
        raise ToolError("%s failed with exit code %d: %s" % (" ".join(argv), rc, tail.strip() or "(no error output)"),
                        command=argv, rc=rc, stderr=tail)
    return parse_gc_output(argv, stdout)
