# -*- coding: utf-8 -*-
# Copyright: (c) 2026, bootc.composefs maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One pull: what was asked (:class:`PullRequest`), what happened (:class:`PullResult`), and the state its steps share.

Layer: operations. The pull itself is ``pull.py`` (entry point and the steps' order), its
decisions ``pull_plan.py``, their execution ``pull_apply.py``, its progress file
``pull_progress.py``; this file holds what they all read and write.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ansible_collections.bootc.composefs.plugins.module_utils.oci import proxy

__all__ = [
    "POLICY_MISSING",
    "POLICY_NEWER",
    "POLICY_ALWAYS",
    "POLICIES",
    "LOCK_TIMEOUT_SECONDS",
    "PullRequest",
    "PullResult",
    "PullJob",
    "mib",
]

POLICY_MISSING = "missing"
POLICY_NEWER = "newer"
POLICY_ALWAYS = "always"
POLICIES = (POLICY_MISSING, POLICY_ALWAYS, POLICY_NEWER)
# A garbage collection may hold the exclusive lock for minutes on a big repository.
LOCK_TIMEOUT_SECONDS = 600.0


@dataclass(frozen=True)
class PullRequest:
    """What to pull, how, and where (the host path options of ``host.paths.load_host_paths``)."""

    image: str
    transport: str | None = None
    tag: str | None = None
    pull_policy: str = POLICY_MISSING
    platform: str | None = None
    authfile: str | None = None
    creds: str | None = None
    tls_verify: bool | None = None
    cert_dir: str | None = None
    via_containers_storage: bool = False
    root: str = "/"
    sysroot: str | None = None
    boot_dir: str | None = None
    esp: str | None = None
    run_dir: str | None = None
    cmdline_file: str | None = None
    bootloader: str | None = None
    progress_file: str | None = None
    lock_timeout: float = LOCK_TIMEOUT_SECONDS
    data_timeout: float = proxy.DATA_TIMEOUT_SECONDS  # a source silent this long is unreachable
    skopeo_command: tuple = ("skopeo",)
    podman_command: tuple = ("podman",)


@dataclass
class PullResult:
    """What a pull did (or, in check mode, would do); :meth:`as_dict` is the module's result."""

    image: str
    transport: str
    tag: str | None = None
    changed: bool = False
    check_mode: bool = False
    contacted_source: bool = False
    source_digest: str | None = None
    manifest_digest: str | None = None
    config_digest: str | None = None
    form: str | None = None
    platform: str | None = None
    previous_digest: str | None = None
    tag_changed: bool = False
    bootable: bool | None = None
    image_verity: str | None = None
    boot_verity: str | None = None
    layers_fetched: list = field(default_factory=list)
    layers_reused: list = field(default_factory=list)
    bytes_fetched: int = 0
    bytes_written: int = 0
    objects_written: int = 0
    repository: str | None = None
    progress_file: str | None = None
    actions: list = field(default_factory=list)
    commands: list = field(default_factory=list)
    warnings: list = field(default_factory=list)

    def as_dict(self) -> dict:
        result = {key: value for key, value in self.__dict__.items() if key != "warnings"}
        result["layers_total"] = len(self.layers_fetched) + len(self.layers_reused)
        return result


class PullJob:
    """One pull under the repository lock: the parsed request, the host, the repository, the result being built."""

    def __init__(self, request: PullRequest, ref, options, paths, repo, result: PullResult, progress, check_mode: bool,
                 runner=None) -> None:
        self.request = request
        self.ref = ref  # oci.reference.ImageReference
        self.options = options  # oci.skopeo.SourceOptions
        self.paths = paths  # host.paths.HostPaths
        self.repo = repo
        self.result = result
        self.progress = progress  # pull_progress.PullProgress
        self.check_mode = check_mode
        self.runner = runner  # podman's command runner (tests)

    def act(self, text: str) -> None:
        """Record an action, as ``would <text>`` in check mode."""
        self.result.actions.append(("would " + text) if self.check_mode else text)


def mib(size: int) -> str:
    """``<size> MiB`` with one decimal, for actions and messages."""
    return "%.1f MiB" % (size / 1048576.0)
