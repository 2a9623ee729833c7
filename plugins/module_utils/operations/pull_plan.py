# -*- coding: utf-8 -*-
# Copyright: (c) 2026, bootc.composefs maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The decisions of a pull: what the policy and the repository settle without the network, what to fetch, what check mode predicts.

Layer: operations. Spec: bootc-composefs-host.md §5 (pull flow); composefs-repo.md §10.5.
Upstream: bootc ``crates/lib/src/bootc_composefs/update.rs`` / ``switch.rs`` (``is_image_pulled``),
composefs-rs ``crates/composefs-oci/src/skopeo.rs`` (``ensure_layer``: present layers are not
fetched). Nothing here writes to the repository; ``pull_apply.py`` carries the decisions out.

Policies (``pull_policy``), podman's words applied to content-addressed storage. The *local name*
is the tag: ``tag`` when given, else ``localhost/bootc-<manifest digest>``, which depends on the
digest and so cannot be known without asking the source. An image is *complete* by the rule of
``oci/completeness.py`` (manifest, config, layer streams, EROFS images, and for bootable images
the boot image).

============ =================================================================================
policy       contacts the source
============ =================================================================================
``missing``  no, when the reference is pinned (``@sha256:``) and that image is complete (only a
             missing tag is created); no, when ``tag`` is given, exists and names a complete
             image; otherwise yes, to learn the digest, and fetches only what is missing
``newer``    no, for a pinned reference whose image is complete (pinned content cannot change);
             otherwise yes: a tag that names another digest than the source's moves
``always``   always; the manifest and config are read again and the import runs, but layers
             already present are reused (as podman reuses layers in its storage)
============ =================================================================================

Check mode decides the same way and, when the source must be asked, reads its manifest and
config and predicts (:func:`predict_import`). With ``via_containers_storage`` it reads the source
directly: ``podman pull`` keeps a source's manifest as it is, so the repository will store the
same digest. From a ``containers-storage`` source, though, the copy into bootc's storage
(``podman image push``) rewrites the manifest with uncompressed layer descriptors (containers/image
``storage/storage_src.go`` ``LayerInfosForCopy``), whose digest is known only after the copy:
check mode then says "changed" and leaves ``manifest_digest`` unset.
"""

from __future__ import annotations

from typing import NamedTuple

from ansible_collections.bootc.composefs.plugins.module_utils.errors import ComposefsError
from ansible_collections.bootc.composefs.plugins.module_utils.oci import completeness, filesystem, reference, skopeo, tags
from ansible_collections.bootc.composefs.plugins.module_utils.oci.image import boot_image_ref_key, image_ref_key
from ansible_collections.bootc.composefs.plugins.module_utils.oci.source import FORM_CONVERTED, SourceImage
from ansible_collections.bootc.composefs.plugins.module_utils.operations.pull_job import POLICY_ALWAYS, POLICY_MISSING, PullJob, mib

__all__ = ["LocalPlan", "SourcePlan", "plan_local", "plan_source", "predict_import", "verities", "tag_target"]


class LocalPlan(NamedTuple):
    """A pull settled without the source: the complete ``image``; ``tag_digest`` to tag (None: the tag is in place)."""

    image: object  # oci.image.OciImage
    tag_digest: str | None


class SourcePlan(NamedTuple):
    """What to do with the image the source described."""

    image: SourceImage
    missing: tuple  # source.SourceLayer not in the repository, in manifest order
    complete: object  # oci.image.OciImage when the image is complete in the repository, else None
    bootable: bool
    fetch: bool  # import the image (False: it is complete and the policy does not ask for more)
    digest_known: bool = True  # False: check mode of a unified pull from containers-storage (module docstring)


def tag_target(repo, tag: str) -> str | None:
    """The manifest digest ``tag`` names, or None when there is no such (readable) tag."""
    try:
        found = tags.resolve_tag(repo, tag)
    except ComposefsError:
        return None
    return found[0] if found else None


def verities(repo, image, bootable: bool) -> tuple:
    """``(image verity, boot verity)`` of a stored image in the repository's default EROFS format (None when absent)."""
    if image is None or not image.is_container_image:
        return None, None
    version = filesystem.erofs_versions(repo)[0]
    boot = image.erofs_refs.get(boot_image_ref_key(version)) if bootable else None
    return image.erofs_refs.get(image_ref_key(version)), boot


def _describe_local(job: PullJob, image) -> None:
    result = job.result
    result.manifest_digest, result.config_digest = image.manifest_digest, image.config_digest
    result.bootable = image.is_container_image and completeness.is_bootable_config(image.config)
    result.layers_reused = list(image.diff_ids)
    result.image_verity, result.boot_verity = verities(job.repo, image, result.bootable)


def plan_local(job: PullJob) -> LocalPlan | None:
    """The pull settled without the source when the policy allows it (module docstring), else None."""
    policy = job.request.pull_policy
    if policy == POLICY_ALWAYS:
        return None
    pinned = job.ref.pinned_digest
    if pinned is not None:
        image = completeness.complete_image(job.repo, pinned)
        if image is not None:
            job.result.actions.append("image %s is complete in the repository (pinned digest): source not contacted" % pinned)
            _describe_local(job, image)
            return LocalPlan(image, pinned)
    if policy == POLICY_MISSING and job.request.tag is not None:
        target = tag_target(job.repo, job.request.tag)
        image = completeness.complete_image(job.repo, target) if target is not None else None
        if image is not None:
            job.result.actions.append("tag %s exists and names complete image %s (pull_policy missing): source not "
                                      "contacted" % (job.request.tag, target))
            _describe_local(job, image)
            job.result.tag, job.result.previous_digest = job.request.tag, target
            return LocalPlan(image, None)
    return None


def _check_pinned(job: PullJob, image: SourceImage) -> None:
    pinned = job.ref.pinned_digest
    if pinned is None or job.ref.transport not in reference.FILE_TRANSPORTS:
        return
    if pinned not in (image.source_digest, image.manifest_digest):
        raise skopeo.tool_error("%s" % job.ref.display(), "the image there has manifest digest %s, not the pinned %s"
                                % (image.source_digest, pinned), failure=skopeo.DIGEST_MISMATCH)


def _describe_source(job: PullJob, image: SourceImage, digest_known: bool) -> None:
    result = job.result
    result.source_digest, result.config_digest, result.form = image.source_digest, image.config_digest, image.form
    result.manifest_digest = image.manifest_digest if digest_known else None
    note = ", stored as skopeo's OCI conversion %s" % image.manifest_digest if image.form == FORM_CONVERTED else ""
    result.actions.append("resolved %s (platform %s) to manifest %s%s" % (job.ref.display(), result.platform,
                                                                          image.source_digest, note))


def plan_source(job: PullJob, image: SourceImage) -> SourcePlan:
    """Decide what to do with ``image`` as the source described it; records layers fetched/reused on the result."""
    _check_pinned(job, image)
    stored = completeness.stored_config(job.repo, image.config_digest)
    config_refs = stored.named_refs if stored is not None else None
    missing = []
    for layer in image.layers:
        if completeness.stored_layer(job.repo, layer.layer_id, config_refs) is not None:
            job.result.layers_reused.append(layer.layer_id)
        else:
            job.result.layers_fetched.append(layer.layer_id)
            missing.append(layer)
    bootable = image.bootable
    job.result.bootable = bootable
    digest_known = not (job.check_mode and job.request.via_containers_storage
                        and job.ref.transport == reference.TRANSPORTS["containers-storage"])
    _describe_source(job, image, digest_known)
    complete = completeness.complete_image(job.repo, image.manifest_digest, bootable) if digest_known else None
    fetch = job.request.pull_policy == POLICY_ALWAYS or complete is None
    if not fetch:
        job.result.actions.append("image %s is complete in the repository: nothing to fetch" % image.manifest_digest)
        job.result.image_verity, job.result.boot_verity = verities(job.repo, complete, bootable)
    return SourcePlan(image, tuple(missing), complete, bootable, fetch, digest_known)


def predict_import(job: PullJob, plan: SourcePlan) -> None:
    """Check mode: record what fetching and importing the image would do (nothing is fetched or written)."""
    for layer in plan.missing:
        job.act("fetch layer %s (%s)" % (layer.layer_id, mib(layer.fetch_size)))
    job.result.bytes_fetched = sum(layer.fetch_size for layer in plan.missing)
    if not plan.digest_known:
        job.result.changed = True
        job.act("copy %s into bootc's containers-storage and import it (the manifest digest stored is known only after "
                "the copy)" % job.ref.display())
    elif plan.complete is None:
        job.result.changed = True
        job.act("import manifest %s" % plan.image.manifest_digest)
