# -*- coding: utf-8 -*-
# Copyright: (c) 2026, bootc.composefs maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Carrying a pull out: bootc's storage (stage 1), the source, the import, the boot image, the tag.

Layer: operations. Spec: bootc-composefs-host.md §5 (pull flow); composefs-repo.md §9 (write
ordering), §10.4-10.5. Upstream: bootc ``crates/lib/src/bootc_composefs/repo.rs``
(``pull_composefs_repo``: direct and unified pulls, the ``localhost/bootc-<digest>`` tag,
``generate_boot_image``); composefs-rs ``crates/composefs-oci/src/skopeo.rs`` (``pull``).

:func:`apply_source` talks to the source: with ``via_containers_storage``, stage 1 of bootc's
unified pull first (``oci/podman.py``: ``podman pull`` into ``<sysroot>/ostree/bootc/storage``,
or ``podman image push`` from another containers-storage), then one skopeo image proxy
(``oci/proxy.py``) reads the image from the source, or from bootc's storage, as an image source
(``oci/proxy_source.py``). Its decisions come from ``pull_plan.py``. The missing layers stream
from skopeo's pipes straight into the importer (``oci/importer.py`` ``import_image``: nothing is
copied to disk first), each checked while it is read (skopeo's check, the pipe's own size and
sha256, the diff_id of the tar); a source silent for ``data_timeout`` is ``unreachable``. Then,
for bootable images, the boot EROFS as bootc's pull does (``oci/boot.generate_boot_image``: its
verity is the ``composefs=`` id a deployment of this image will have); the tag last.

Crash safety: everything written before the tag is unreferenced (no ref names it), so an
interrupted or failed pull leaves no tag and only data a garbage collection removes, and the
next pull reuses every complete layer stream. Nothing is staged outside the object store; the
``<repo>/.pull-*`` directories earlier versions staged layouts in are removed when their pull
is gone (:func:`remove_stale_staging`).
"""

from __future__ import annotations

import fcntl
import os
import shutil
import time

from ansible_collections.bootc.composefs.plugins.module_utils.errors import ComposefsError
from ansible_collections.bootc.composefs.plugins.module_utils.oci import boot, completeness, filesystem, importer, podman
from ansible_collections.bootc.composefs.plugins.module_utils.oci import proxy, proxy_source, reference, skopeo, tags
from ansible_collections.bootc.composefs.plugins.module_utils.oci.image import boot_image_ref_key, open_image
from ansible_collections.bootc.composefs.plugins.module_utils.oci.source import BOOTC_LABEL
from ansible_collections.bootc.composefs.plugins.module_utils.operations import pull_plan
from ansible_collections.bootc.composefs.plugins.module_utils.operations.pull_job import PullJob, mib

__all__ = ["STAGING_PREFIX", "STAGING_NEW_PREFIX", "apply_local", "apply_source", "apply_tag", "remove_stale_staging"]

STAGING_PREFIX = ".pull-"  # staging directories of earlier versions
STAGING_NEW_PREFIX = ".pull-new-"  # ... until their creator held the lock
STALE_STAGING_SECONDS = 60.0
# Free space asked for before fetching: the objects take at least what the compressed blobs take.
SPACE_FACTOR = 1


def remove_stale_staging(repo_path: str) -> list:
    """Remove ``<repo>/.pull-*`` staging directories of earlier versions' pulls that died; return their paths.

    Such a directory got its ``.pull-`` name once its creator held its ``flock``, so an unlocked
    one is abandoned; a ``.pull-new-*`` one (killed between creation and lock) is removed when
    older than ``STALE_STAGING_SECONDS``. A locked one (a pull of an earlier version still
    running) is left alone.
    """
    removed = []
    try:
        names = [n for n in os.listdir(repo_path) if n.startswith(STAGING_PREFIX)]
    except OSError:
        return removed
    for name in names:
        path = os.path.join(repo_path, name)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            if name.startswith(STAGING_NEW_PREFIX) and time.time() - os.fstat(fd).st_mtime < STALE_STAGING_SECONDS:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                continue  # a running pull holds it
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
        finally:
            os.close(fd)
    return removed


def apply_tag(job: PullJob, manifest_digest: str) -> None:
    """Create or move the tag (``tag`` or bootc's ``localhost/bootc-<digest>``) to ``manifest_digest``: the last write."""
    tag = job.request.tag or tags.bootc_tag(manifest_digest)
    if job.request.tag is None and job.result.bootable is False:
        job.result.warnings.append("%s is not a bootc image (no %s=1 label) but gets bootc's tag %s, which a garbage "
                                   "collection removes while no deployment uses it; pass tag to keep it"
                                   % (job.ref.display(), BOOTC_LABEL, tag))
    previous = pull_plan.tag_target(job.repo, tag)
    job.result.tag, job.result.previous_digest = tag, previous
    job.result.manifest_digest = job.result.manifest_digest or manifest_digest
    if previous == manifest_digest:
        return
    job.result.tag_changed = job.result.changed = True
    job.act("tag %s -> %s%s" % (tag, manifest_digest, " (was %s)" % previous if previous else ""))
    if not job.check_mode:
        tags.tag_image(job.repo, manifest_digest, tag)


def apply_local(job: PullJob, plan: pull_plan.LocalPlan) -> None:
    """Finish a pull ``pull_plan.plan_local`` settled: tag the complete image when the plan says so."""
    if plan.tag_digest is not None:
        apply_tag(job, plan.tag_digest)


def _stage_one(job: PullJob) -> tuple:
    """``(<transport>:<name> for the proxy, its transport)``; runs stage 1 of the unified pull."""
    if not job.request.via_containers_storage:
        return job.ref.source_name(), job.ref.transport
    storage = os.path.join(job.paths.sysroot, podman.STORAGE_SUBPATH)
    runroot = os.path.join(job.paths.run_dir, podman.RUNROOT_SUBPATH)
    if job.check_mode:
        job.result.actions.append("check mode: reading %s directly instead of through containers-storage %s"
                                  % (job.ref.display(), storage))
        return job.ref.source_name(), job.ref.transport
    podman.check_runroot(runroot)
    job.progress.update(force=True, phase="staging")
    if job.ref.transport == reference.TRANSPORTS["containers-storage"]:
        argv = podman.push_argv(job.request.podman_command, storage, runroot, job.ref.image)
        job.result.commands.append(skopeo.display_argv(argv))
        podman.run(argv, "copying %s into containers-storage %s" % (job.ref.display(), storage), job.runner)
        name = "containers-storage:%s%s" % (podman.storage_spec(storage, runroot), podman.split_store(job.ref.image)[1])
    else:
        argv = podman.pull_argv(job.request.podman_command, storage, runroot, job.ref.source_name(), job.options)
        job.result.commands.append(skopeo.display_argv(argv))
        stdout = podman.run(argv, "pulling %s into containers-storage %s" % (job.ref.display(), storage), job.runner)
        image_id = podman.image_id_of(stdout)
        if image_id is None:
            raise skopeo.tool_error("pulling %s into containers-storage %s" % (job.ref.display(), storage),
                                    "podman printed no image id: %r" % stdout[-200:], command=argv)
        name = podman.storage_reference(storage, runroot, image_id)
    job.result.actions.append("stage 1: %s is in containers-storage %s" % (job.ref.display(), storage))
    return name, proxy_source.CONTAINERS_STORAGE


def apply_source(job: PullJob) -> None:
    """Read the image from the source and do what ``pull_plan.plan_source`` decides (module docstring)."""
    name, transport = _stage_one(job)
    argv = skopeo.proxy_argv(job.request.skopeo_command, job.options)
    job.result.commands.append(skopeo.display_argv(argv))
    job.result.contacted_source = True
    with proxy.ImageProxy(argv, job.ref.display(), data_timeout=job.request.data_timeout) as image_proxy:
        source = proxy_source.ProxySource(image_proxy, name, transport).open()
        image = source.resolve()
        plan = pull_plan.plan_source(job, image)
        if job.check_mode and plan.fetch:
            pull_plan.predict_import(job, plan)
        if not plan.fetch or job.check_mode:
            if plan.digest_known:
                apply_tag(job, image.manifest_digest)
            return
        _fetch_and_import(job, source, plan)
        source.close()
    _finish_image(job, image.manifest_digest, plan.bootable)


def _check_space(job: PullJob, missing) -> None:
    need = SPACE_FACTOR * sum(layer.fetch_size for layer in missing)
    stats = os.statvfs(job.repo.path)
    free = stats.f_bavail * stats.f_frsize
    if need > free:
        message = ("not enough free space to pull %s: its %s of layers to fetch need at least as much, the repository's "
                   "filesystem has %s free (%s)" % (job.ref.display(), mib(need), mib(free), skopeo.failure_hint(skopeo.NO_SPACE)))
        raise ComposefsError(message, path=job.repo.path, partial_result={"failure": skopeo.NO_SPACE})


class _LayerProgress:
    """The importer's progress callback: the progress file, and each fetched layer on the result once it is in."""

    def __init__(self, job: PullJob, plan: pull_plan.SourcePlan) -> None:
        self.job = job
        self.layers = plan.image.layers
        self.missing = {layer.layer_id for layer in plan.missing}
        self.done = 0

    def __call__(self, done_layers: int, total_layers: int, blob_bytes: int) -> None:
        while self.done < done_layers:
            layer = self.layers[self.done]
            self.done += 1
            if layer.layer_id in self.missing:
                self.job.result.bytes_fetched += layer.fetch_size
                self.job.result.actions.append("fetched layer %s (%s)" % (layer.layer_id, mib(layer.fetch_size)))
        progress = self.job.progress
        progress.update(force=done_layers != progress.state["layers_done"], layers_done=done_layers,
                        layers_total=total_layers, bytes_done=blob_bytes)


def _fetch_and_import(job: PullJob, source: proxy_source.ProxySource, plan: pull_plan.SourcePlan) -> None:
    _check_space(job, plan.missing)
    for path in remove_stale_staging(job.repo.path):
        job.result.actions.append("removed staging directory %s left by an interrupted pull" % path)
    image = plan.image
    job.progress.update(force=True, phase="fetching", layers_total=len(image.layers), layers_done=0,
                        bytes_total=sum(layer.fetch_size for layer in plan.missing), bytes_done=0)
    imported = importer.import_image(job.repo, source, progress=_LayerProgress(job, plan))
    job.result.objects_written += imported.object_count
    job.result.bytes_written += imported.bytes_written
    if imported.changed:
        job.result.changed = True
    job.result.actions.append("imported manifest %s and config %s: %d layer(s) written, %d reused, %d object(s), %s"
                              % (image.manifest_digest, image.config_digest, len(imported.layers_fetched),
                                 len(imported.layers_reused), imported.object_count, mib(imported.bytes_written)))


def _finish_image(job: PullJob, manifest_digest: str, bootable: bool) -> None:
    image = open_image(job.repo, manifest_digest)
    if bootable:
        job.progress.update(force=True, phase="boot-image")
        key = boot_image_ref_key(filesystem.erofs_versions(job.repo)[0])
        had = completeness.image_entry_present(job.repo, image.erofs_refs.get(key))
        verity = boot.generate_boot_image(job.repo, manifest_digest)
        if not had:
            job.result.changed = True
            job.result.objects_written += 1
            job.result.bytes_written += os.stat(job.repo.object_path(verity)).st_size
            job.result.actions.append("generated boot image %s" % verity)
        image = open_image(job.repo, manifest_digest)
    job.result.image_verity, job.result.boot_verity = pull_plan.verities(job.repo, image, bootable)
    job.progress.update(force=True, phase="tagging")
    apply_tag(job, manifest_digest)
