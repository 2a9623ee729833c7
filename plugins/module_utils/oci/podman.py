# -*- coding: utf-8 -*-
# Copyright: (c) 2026, bootc.composefs maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ``podman`` command line, wrapped once: stage 1 of bootc's unified pull (layer: oci).

Spec: bootc-composefs-host.md §5.4; upstream: bootc ``crates/lib/src/podstorage.rs`` (``CStorage``:
``pull_with_progress``, ``pull_from_host_storage``) and ``bootc_composefs/repo.rs``
(``pull_composefs_unified``).

bootc's unified pull first brings the image into bootc's own containers-storage,
``<sysroot>/ostree/bootc/storage`` (run root ``/run/bootc/storage``), so that it is also
available to ``podman run``; then it imports from there. The commands::

    # any transport but containers-storage: podman fetches (and reuses the layers it has)
    <podman> --root <storage> --runroot <runroot> pull --quiet
             [--authfile F] [--creds U:P] [--tls-verify=B] [--cert-dir D]
             [--os OS --arch ARCH [--variant V]] <transport>:<name>

    # containers-storage: copied from the storage that holds it (podman's default one, or the
    # [driver@root+runroot] the reference names) into bootc's
    <podman> [--root R --runroot RR] image push --quiet --remove-signatures <name>
             containers-storage:[overlay@<storage>+<runroot>]<name>

podman refuses run roots longer than 50 characters (:func:`check_runroot`); bootc's
``/run/bootc/storage`` is far from it. ``podman pull`` always asks the source (podman 4.3 has no ``--policy``) and reuses the layers its
storage has. It prints the image id on standard output; :func:`storage_reference` names the image in
bootc's storage for the import (``containers-storage:[overlay@<storage>+<runroot>]@<image id>``).
Every run forces ``LC_ALL=C``; a failure is a ``ToolError`` classified like skopeo's
(``skopeo.classify_failure``: both are containers/image underneath).
"""

from __future__ import annotations

import re
import subprocess
from typing import Callable

from ansible_collections.bootc.composefs.plugins.module_utils.oci import skopeo

__all__ = [
    "STORAGE_SUBPATH",
    "RUNROOT_SUBPATH",
    "STORAGE_DRIVER",
    "storage_spec",
    "storage_reference",
    "split_store",
    "pull_argv",
    "push_argv",
    "run_command",
    "run",
    "image_id_of",
    "error_text",
    "check_runroot",
]

STORAGE_SUBPATH = "ostree/bootc/storage"  # below the sysroot
RUNROOT_SUBPATH = "bootc/storage"  # below the run directory
STORAGE_DRIVER = "overlay"
MAX_RUNROOT_CHARS = 50  # podman refuses longer run roots ("the specified runroot is longer than 50 characters")
_STORE = re.compile(r"\A\[(?:([A-Za-z0-9_-]+)@)?([^+\]]+)(?:\+([^\]]+))?\]")
_IMAGE_ID = re.compile(r"\A[0-9a-f]{64}\Z")


def storage_spec(storage: str, runroot: str, driver: str = STORAGE_DRIVER) -> str:
    """``[driver@storage+runroot]``, containers/image's way to name a storage in a reference."""
    return "[%s@%s+%s]" % (driver, storage, runroot)


def storage_reference(storage: str, runroot: str, image_id: str) -> str:
    """``containers-storage:[overlay@storage+runroot]@<image id>``: an image of that storage by id."""
    return "containers-storage:%s@%s" % (storage_spec(storage, runroot), image_id)


def split_store(name: str) -> tuple:
    """Split ``[driver@root+runroot]name`` into ``((driver, root, runroot) or None, name)``."""
    found = _STORE.match(name)
    if found is None:
        return None, name
    return (found.group(1) or STORAGE_DRIVER, found.group(2), found.group(3)), name[found.end():]


def _storage_args(storage: str | None, runroot: str | None) -> list:
    args = []
    if storage:
        args += ["--root", storage]
    if runroot:
        args += ["--runroot", runroot]
    return args


def pull_argv(command, storage: str, runroot: str, source_name: str, options: skopeo.SourceOptions) -> list:
    """The argv pulling ``source_name`` (``<transport>:<name>``) into the storage ``storage``."""
    argv = [str(part) for part in command] + _storage_args(storage, runroot) + ["pull", "--quiet"]
    argv += skopeo.image_args(options)
    if options.platform is not None:
        argv += ["--os", options.platform[0], "--arch", options.platform[1]]
        if len(options.platform) > 2 and options.platform[2]:
            argv += ["--variant", options.platform[2]]
    return argv + [source_name]


def push_argv(command, storage: str, runroot: str, name: str) -> list:
    """The argv copying containers-storage image ``name`` (``[store]`` prefix allowed) into ``storage``."""
    store, bare = split_store(name)
    argv = [str(part) for part in command]
    if store is not None:
        argv += _storage_args(store[1], store[2])  # no --storage-driver: podman's database remembers the store's own
    destination = "containers-storage:%s%s" % (storage_spec(storage, runroot), bare)
    return argv + ["image", "push", "--quiet", "--remove-signatures", bare, destination]


def check_runroot(runroot: str) -> None:
    """ToolError when podman would refuse ``runroot`` for its length (checked before anything runs)."""
    if len(runroot) > MAX_RUNROOT_CHARS:
        raise skopeo.tool_error("containers-storage run root %s" % runroot, "podman refuses run roots longer than %d "
                                "characters; set run_dir to a shorter directory" % MAX_RUNROOT_CHARS,
                                failure=skopeo.TOOL_FAILED)


def run_command(argv, env: dict) -> tuple:
    """Run ``argv``; return ``(rc, stdout, stderr)`` as text (the default runner)."""
    try:
        proc = subprocess.run(list(argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, check=False)
    except OSError as err:
        raise skopeo.missing_tool_error(list(argv), err) from None
    return proc.returncode, proc.stdout.decode("utf-8", "replace"), proc.stderr.decode("utf-8", "replace")


def run(argv, what: str, runner: Callable | None = None) -> str:
    """Run a podman command; return its standard output; ToolError (classified) when it fails."""
    rc, stdout, stderr = (runner or run_command)(list(argv), skopeo.tool_env())
    if rc != 0:
        tail = stderr[-skopeo.STDERR_TAIL_CHARS:]
        raise skopeo.tool_error(what, error_text(tail) or "exit code %d" % rc, command=argv, rc=rc, stderr=tail)
    return stdout


def error_text(stderr: str) -> str:
    """podman's ``Error: ...`` lines (the usage hint after them dropped), else its last line."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("Error:")]
    if errors:
        return " ".join(errors)
    lines = [line for line in lines if not line.startswith("See 'podman")]
    return lines[-1] if lines else ""


def image_id_of(stdout: str) -> str | None:
    """The image id ``podman pull --quiet`` printed (its last line), or None."""
    lines = [line.strip() for line in stdout.splitlines() if line.strip()]
    if lines and _IMAGE_ID.match(lines[-1]):
        return lines[-1]
    return None
