# -*- coding: utf-8 -*-
# Copyright: (c) 2026, bootc.composefs maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pulling a container image into the composefs repository of a bootc host (layer: operations).

Spec: bootc-composefs-host.md §1.4 (references), §5 (pull flow); composefs-repo.md §6 (lock),
§9 (write ordering), §10 (OCI streams, tags, pull). Upstream: bootc
``crates/lib/src/bootc_composefs/repo.rs`` (``pull_composefs_repo``), composefs-rs
``crates/composefs-oci/src/skopeo.rs`` (``pull``).

``pull_image(request, check_mode)`` is the whole operation; this file orders its steps and turns
failures into classes. The pull is cut into files of one concept each:

===================== ========================================================================
file                  holds
===================== ========================================================================
``pull_job.py``       ``PullRequest``, ``PullResult``, the state the steps share (``PullJob``)
``pull_plan.py``      the decisions: policies, what is complete, what to fetch, check mode's
                      prediction (nothing written)
``pull_apply.py``     their execution: bootc's containers-storage (stage 1), the source through
                      skopeo's image proxy, the import, the boot image, the tag (last)
``pull_progress.py``  the progress file a running pull keeps
===================== ========================================================================

Steps, in order:

1. Parse the reference (``oci/reference.py``) and open the repository ``<sysroot>/composefs``
   (``Repository.open``: ``LOCK_SH``, held until the end, so a garbage collection, which needs
   ``LOCK_EX``, waits for the pull and never runs in its middle).
2. Decide without the network when the policy allows it (``pull_plan.plan_local``).
3. Otherwise read the image from the source, decide (``pull_plan.plan_source``) and import what
   is missing, then the boot image and the tag (``pull_apply.apply_source``).

``changed`` is true exactly when something landed: a layer, config, manifest, EROFS or boot image
was written, or the tag was created or moved. Check mode does steps 1-2 and, when the source must
be asked, reads its manifest and config (read-only: nothing is fetched, written or tagged) and
predicts; it cannot know that the source will not move before the real run, hence partial
support.

The manifest stored is the source's, under the source's digest (``source_digest`` =
``manifest_digest``, ``form`` ``exact``), except for Docker schema 2 images, which skopeo's image
proxy only hands out as an OCI conversion, stored under the conversion's digest (``converted``;
``oci/proxy_source.py`` explains why, and what composefs-rs does).

A failure is a ``ComposefsError`` whose ``partial_result`` carries ``failure`` (a class of
``skopeo.FAILURE_CLASSES``, or ``bad-reference``, ``repository``, ``repository-locked``,
``pull-failed``), the ``actions`` done and the ``commands`` run.
"""

from __future__ import annotations

import errno
from typing import Callable

from ansible_collections.bootc.composefs.plugins.module_utils.errors import (
    ComposefsError,
    FormatError,
    RepositoryFormatError,
    RepositoryLockedError,
)
from ansible_collections.bootc.composefs.plugins.module_utils.host.paths import load_host_paths
from ansible_collections.bootc.composefs.plugins.module_utils.oci import layout, reference, skopeo, tags
from ansible_collections.bootc.composefs.plugins.module_utils.operations import pull_apply, pull_plan
from ansible_collections.bootc.composefs.plugins.module_utils.operations.pull_job import (
    LOCK_TIMEOUT_SECONDS,
    POLICIES,
    POLICY_ALWAYS,
    POLICY_MISSING,
    POLICY_NEWER,
    PullJob,
    PullRequest,
    PullResult,
)
from ansible_collections.bootc.composefs.plugins.module_utils.operations.pull_progress import PullProgress, default_progress_file
from ansible_collections.bootc.composefs.plugins.module_utils.repository.repo import Repository

__all__ = [
    "POLICIES",
    "POLICY_MISSING",
    "POLICY_NEWER",
    "POLICY_ALWAYS",
    "LOCK_TIMEOUT_SECONDS",
    "PullRequest",
    "PullResult",
    "pull_image",
    "default_progress_file",
]


def _failure_of(err: ComposefsError) -> str:
    if isinstance(err, RepositoryLockedError):
        return "repository-locked"
    if isinstance(err, RepositoryFormatError):
        return "repository"
    if "expected_digest" in err.partial_result:
        return skopeo.DIGEST_MISMATCH
    found = skopeo.classify_failure(err.message)
    return found if found in (skopeo.NO_SPACE, skopeo.DIGEST_MISMATCH, skopeo.UNKNOWN_TRANSPORT) else "pull-failed"


def _os_error(err: OSError, doing: str, path: str | None = None) -> ComposefsError:
    failure = skopeo.NO_SPACE if err.errno in (errno.ENOSPC, errno.EDQUOT) else "pull-failed"
    message = "%s: %s" % (doing, err.strerror or err)
    if failure == skopeo.NO_SPACE:
        message += " (%s)" % skopeo.failure_hint(skopeo.NO_SPACE)
    return ComposefsError(message, path=path or err.filename, partial_result={"failure": failure})


def _parse(request: PullRequest) -> tuple:
    if request.pull_policy not in POLICIES:
        raise ComposefsError("pull_policy %r is not one of %s" % (request.pull_policy, ", ".join(POLICIES)))
    try:
        ref = reference.parse_reference(request.image, request.transport)
    except FormatError as err:
        failure = skopeo.UNKNOWN_TRANSPORT if "unknown transport" in err.message or "unknown scheme" in err.message else "bad-reference"
        err.partial_result["failure"] = failure
        raise
    if ref.signature == reference.SIGNATURE_OSTREE_REMOTE:
        raise ComposefsError("image reference %r asks for ostree remote %r signature verification, which composefs hosts do "
                             "not have; use ostree-image-signed: (containers policy) or ostree-unverified-image:"
                             % (ref.raw, ref.remote), partial_result={"failure": "bad-reference"})
    platform = None
    if request.platform:
        try:
            platform = layout.parse_platform(request.platform)
        except ValueError as err:
            raise ComposefsError(str(err), partial_result={"failure": "bad-reference"}) from None
    if request.tag is not None:
        tags.validate_tag(request.tag)
    options = skopeo.SourceOptions(authfile=request.authfile, creds=request.creds, tls_verify=request.tls_verify,
                                   cert_dir=request.cert_dir, platform=platform, insecure_policy=ref.unverified)
    return ref, platform, options


def pull_image(request: PullRequest, check_mode: bool = False, runner: Callable | None = None) -> PullResult:
    """Pull ``request.image`` into the host's composefs repository (module docstring); check mode predicts.

    ``runner(argv, env) -> (rc, stdout, stderr)`` replaces how podman commands run (tests). A
    failure is a ComposefsError whose ``partial_result`` carries ``failure`` (a class of
    ``skopeo.FAILURE_CLASSES``, or ``bad-reference`` / ``pull-failed``), ``actions`` and ``commands``.
    """
    try:
        ref, platform, options = _parse(request)
    except ComposefsError as err:
        err.partial_result.setdefault("failure", "bad-reference")
        err.partial_result.update(actions=[], commands=[])
        raise
    result = PullResult(image=ref.display(), transport=ref.transport, check_mode=check_mode,
                        platform=str(platform or layout.host_platform()))
    progress = PullProgress(None, ref.display())
    try:
        paths = load_host_paths(root=request.root, sysroot=request.sysroot, boot_dir=request.boot_dir, esp=request.esp,
                                run_dir=request.run_dir, cmdline_file=request.cmdline_file)
        result.repository = paths.composefs_repo
        if not check_mode:
            result.progress_file = progress.path = request.progress_file or default_progress_file(paths.run_dir)
        with Repository.open(paths.composefs_repo, writable=not check_mode, timeout=request.lock_timeout) as repo:
            job = PullJob(request, ref, options, paths, repo, result, progress, check_mode, runner)
            progress.update(force=True)
            local = pull_plan.plan_local(job)
            if local is not None:
                pull_apply.apply_local(job, local)
            else:
                pull_apply.apply_source(job)
    except ComposefsError as err:
        err.partial_result.setdefault("failure", _failure_of(err))
        err.partial_result.update(actions=result.actions, commands=result.commands)
        raise
    except OSError as err:
        failed = _os_error(err, "pulling %s" % ref.display())
        failed.partial_result.update(actions=result.actions, commands=result.commands)
        raise failed from None
    finally:
        progress.remove()
    return result
