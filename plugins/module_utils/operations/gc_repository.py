# -*- coding: utf-8 -*-
# Copyright: (c) 2026, bootc.composefs maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The repository side of a host GC plan: live manifests, bootc tags, the repository plan (layer: operations).

Spec: bootc-composefs-host.md §4.2 steps 11-16, §3 (manifest resolution), Open question 12;
composefs-repo.md §10.4 (tags), §12.

Live deployments: every deployment ``load_host`` returns (booted, staged, rollback, other, and the
``unlisted`` ones bootc's status hides: Open question 7, they boot or may be finalized) plus any
verity a boot entry names without a state dir. Their manifests: the origin's ``manifest_digest``;
for legacy origins (no digest) the tagged images whose config digest equals the ``.imginfo`` one,
and the tagged images whose config links the deployment's EROFS image (any ``composefs.image*``
key). Every match is kept. Live verities are extra repository roots (``images/<verity>``), and so
are the live manifests' streams (``streams/oci-manifest-<digest>``), with or without tags.

Tags (``tags`` phase): a ``localhost/bootc-<digest>`` tag is created for every live manifest that
has none (its stream must exist), and every ``localhost/bootc-*`` tag whose manifest no live
deployment uses is removed; any other tag (an app image) is never touched. The repository plan
(``repository`` phase, ``repository/gc.py``) is computed as the repository will be *after* those
tag changes (bootc's dry run does not simulate them, Open question 12), with the live boot images
and manifest streams as extra roots.

The repository is opened with its shared lock only, and refused when it resolves outside the
sysroot, has no meta.json, or lists a format version or feature this collection does not know.
"""

from __future__ import annotations

import os

from ansible_collections.bootc.composefs.plugins.module_utils.errors import ComposefsError, UnsafePathError
from ansible_collections.bootc.composefs.plugins.module_utils.oci import digest as oci_digest
from ansible_collections.bootc.composefs.plugins.module_utils.oci import image as oci_image
from ansible_collections.bootc.composefs.plugins.module_utils.oci import tags as oci_tags
from ansible_collections.bootc.composefs.plugins.module_utils.operations import gc_safety
from ansible_collections.bootc.composefs.plugins.module_utils.operations.gc_plan import GcRequest, LiveDeployment, PlanNotes, TagChange
from ansible_collections.bootc.composefs.plugins.module_utils.repository import gc as repo_gc
from ansible_collections.bootc.composefs.plugins.module_utils.repository import meta as repo_meta
from ansible_collections.bootc.composefs.plugins.module_utils.repository.repo import Repository

__all__ = ["open_repository", "TaggedImages", "resolve_live", "plan_tags", "repository_part"]


def open_repository(paths, writable: bool, timeout):
    """The repository opened (shared lock), or None when it does not exist. Refusals are errors (raised or noted)."""
    path = paths.composefs_repo
    try:
        kind = paths.kind(path)
        real = paths.resolve(path)
        sysroot = paths.resolve(paths.sysroot)
    except (OSError, ComposefsError) as err:
        raise ComposefsError("cannot look up the composefs repository: %s" % err, path=path) from None
    if kind is None:
        return None
    if not (real == sysroot or real.startswith(sysroot.rstrip("/") + "/")):
        raise UnsafePathError("the repository resolves to %s, outside the sysroot %s; refusing to collect it" % (real, sysroot),
                              path=path)
    repo = Repository.open(real, writable=writable, timeout=timeout)
    try:
        check_repository_format(repo)
    except BaseException:
        repo.close()
        raise
    return repo


def check_repository_format(repo) -> None:
    """ComposefsError naming meta.json when the repository predates it or lists what this collection does not know."""
    meta_path = os.path.join(repo.path, "meta.json")
    if repo.legacy:
        raise ComposefsError("the repository has no meta.json (it predates composefs-rs 0.9); run bootc or cfsctl once to "
                             "upgrade it before collecting garbage", path=meta_path)
    unknown = [f for f in repo.meta.compatible if f not in repo_meta.KNOWN_COMPATIBLE]
    unknown += list(repo.meta.unknown_read_only_features())
    unknown += [f for f in repo.meta.incompatible if f not in repo_meta.KNOWN_INCOMPATIBLE]
    if unknown:
        raise ComposefsError("meta.json lists feature(s) %s unknown to this collection; a feature we do not know could "
                             "change what is reachable, so nothing is collected: update bootc.composefs" % ", ".join(unknown),
                             path=meta_path)


class TaggedImages:
    """Every tagged manifest opened once: ``images`` (digest -> OciImage) and ``failures`` (digest -> message)."""

    def __init__(self, repo, tags: list) -> None:
        self.images = {}
        self.failures = {}
        for manifest_digest in sorted({digest for _tag, digest in tags}):
            try:
                self.images[manifest_digest] = oci_image.open_image(repo, manifest_digest)
            except (OSError, ComposefsError) as err:
                self.failures[manifest_digest] = str(err) if isinstance(err, ComposefsError) else (err.strerror or str(err))

    def by_config(self, config_digest: str) -> list:
        """Tagged manifests whose config digest is ``config_digest``."""
        return sorted(d for d, image in self.images.items() if image.config_digest == config_digest)

    def by_erofs(self, object_id: str) -> list:
        """Tagged manifests whose config links EROFS image ``object_id``."""
        return sorted(d for d, image in self.images.items() if object_id in image.erofs_refs.values())


def resolve_live(state, repo, tagged: TaggedImages, live_verities: tuple, notes: PlanNotes) -> tuple:
    """A :class:`LiveDeployment` per live verity, with the manifests it keeps (origin, ``.imginfo``, tag search)."""
    deployments = {d.verity: d for d in state.deployments}
    result = []
    for verity in live_verities:
        deployment = deployments.get(verity)
        role = deployment.role if deployment is not None else "entry-only"
        has_image = False
        if repo is not None:
            if len(verity) != 2 * repo.algorithm.digest_size:
                notes.errors.append(_verity_length_error(state, repo, verity, role))
            elif is_hex(verity):
                has_image = repo.image_object_id(verity) is not None
        if deployment is not None and deployment.manifest_digest is not None:
            digest = deployment.manifest_digest
            if tagged is not None and digest not in tagged.images:
                check_manifest_readable(state, repo, tagged, deployment, notes)
            result.append(LiveDeployment(verity, role, (digest,), "origin", has_image))
            continue
        digests = []
        source = None
        info = deployment.imginfo if deployment is not None else None
        if info is not None and tagged is not None:
            digests.extend(tagged.by_config(info.config_digest))
            source = "imginfo" if digests else None
        if tagged is not None:
            found = [d for d in tagged.by_erofs(verity) if d not in digests]
            if found and source is None:
                source = "tag-search"
            digests.extend(found)
        if not digests and deployment is not None:
            notes.warnings.append("%s deployment %s: no manifest found (legacy origin without manifest_digest and no "
                                  "tagged image links it); its boot image is kept, its OCI metadata is not protected"
                                  % (role, verity))
        result.append(LiveDeployment(verity, role, tuple(sorted(digests)), source, has_image))
    return tuple(result)


def _verity_length_error(state, repo, verity: str, role: str) -> str:
    """The refusal for a deployment verity of the wrong length, naming the files that give it (entries, else the command line)."""
    files = sorted({e.path for e in state.entries if e.verity == verity})
    if not files:
        files = [state.paths.cmdline_file if verity == state.booted_verity else state.paths.boot_dir]
    return ("%s: names %s deployment %s, %d hex digits, but the deployments of a %s repository have %d (an fs-verity "
            "digest of its images): the file is damaged (bootc cannot read it either); restore the verity"
            % (", ".join(files), role, verity, len(verity), repo.algorithm.name, 2 * repo.algorithm.digest_size))


def check_manifest_readable(state, repo, tagged: TaggedImages, deployment, notes: PlanNotes) -> None:
    """An error naming the origin when the manifest it names cannot be read (bootc's status fails then, spec 2.9).

    When the repository has no such manifest at all, the origin is the likely culprit (a damaged
    digest): the message says so, with the tagged images whose config names the deployment's boot
    image when there are some; when the repository has the manifest but cannot read it, the
    repository is damaged and the image must be pulled again.
    """
    digest = deployment.manifest_digest
    try:
        oci_image.open_image(repo, digest)
        return
    except (OSError, ComposefsError) as err:
        reason = str(err) if isinstance(err, ComposefsError) else "%s" % err
    origin = gc_safety.origin_file(state, deployment)
    stream_name = oci_digest.manifest_stream_name(digest)
    what = ("bootc's status fails too, and what %s deployment %s needs could be taken for unused"
            % (deployment.role, deployment.verity))
    try:
        in_repository = repo.has_stream(stream_name)
    except (OSError, ComposefsError):
        in_repository = True
    if in_repository:
        notes.errors.append("%s: names manifest %s, which the repository holds but cannot read (%s): the repository is "
                            "damaged; %s: pull the image again" % (origin, digest, reason, what))
        return
    candidates = [d for d in tagged.by_erofs(deployment.verity) if d != digest]
    if candidates:
        advice = ("the repository's image %s boots this deployment (its config names images/%s): the origin is "
                  "damaged; restore its [image] manifest_digest" % (" or ".join(candidates), deployment.verity))
    else:
        advice = ("the origin is likely damaged: restore its [image] manifest_digest (if it is right, the image "
                  "was removed from the repository: pull it again)")
    notes.errors.append("%s: names manifest %s, which is not in the repository (no streams/%s); %s; %s"
                        % (origin, digest, stream_name, what, advice))


def is_hex(text: str) -> bool:
    """True for 64 or 128 lowercase hex digits (a deployment verity)."""
    try:
        bytes.fromhex(text)
    except ValueError:
        return False
    return len(text) in (64, 128) and text == text.lower()


def plan_tags(repo, tags: list, live: tuple, tagged: TaggedImages, notes: PlanNotes) -> tuple:
    """``(tags to create, tags to remove)``: a bootc tag per live manifest, none for the others (bootc tags only)."""
    live_digests = {d for item in live for d in item.manifest_digests}
    by_name = dict(tags)
    create = []
    for manifest_digest in sorted(live_digests):
        tag = oci_tags.bootc_tag(manifest_digest)
        if by_name.get(tag) == manifest_digest:
            continue
        if not repo.has_stream(oci_digest.manifest_stream_name(manifest_digest)):
            notes.warnings.append("live manifest %s has no manifest stream in the repository; tag %s is not created"
                                  % (manifest_digest, tag))
            continue
        create.append(TagChange(tag, manifest_digest))
    creating = {c.tag for c in create}
    unresolved = [item.verity for item in live if not item.manifest_digests and item.role != "entry-only"]
    remove = []
    for tag, manifest_digest in tags:
        if not oci_tags.is_bootc_tag(tag) or manifest_digest in live_digests or tag in creating:
            continue
        if unresolved and manifest_digest in tagged.failures:
            notes.warnings.append("bootc tag %s is kept: its image cannot be read (%s) and deployment(s) %s have no known "
                                  "manifest, so it may be theirs" % (tag, tagged.failures[manifest_digest], ", ".join(unresolved)))
            continue
        remove.append(TagChange(tag, manifest_digest))
    return tuple(create), tuple(remove)


def repository_part(request: GcRequest, state, live_verities: tuple, notes: PlanNotes) -> dict:
    """Tags, live manifests and the repository plan; an empty dict when there is no repository."""
    try:
        repo = open_repository(state.paths, writable=False, timeout=request.lock_timeout)
    except (OSError, ComposefsError) as err:
        notes.errors.append(str(err) if isinstance(err, ComposefsError) else "cannot open the repository: %s" % err)
        return {}
    if repo is None:
        notes.finding("missing-repository", state.paths.composefs_repo, "the composefs repository does not exist")
        notes.warnings.append("no composefs repository at %s: tags and objects are not collected" % state.paths.composefs_repo)
        return {}
    try:
        tags = oci_tags.list_tags(repo)
        tagged = TaggedImages(repo, tags)
        live = resolve_live(state, repo, tagged, live_verities, notes)
        create, remove = plan_tags(repo, tags, live, tagged, notes) if request.tags else ((), ())
        plan = None
        if request.repository:
            extra_images = [item.verity for item in live if item.has_image]
            extra_streams = sorted({oci_digest.manifest_stream_name(d) for item in live for d in item.manifest_digests})
            extra_streams = [name for name in extra_streams if repo.has_stream(name)]
            for item in live:
                if not item.has_image and item.role != "entry-only":
                    notes.finding("missing-image", os.path.join(repo.path, "images", item.verity),
                                  "%s deployment %s has no boot image entry in the repository" % (item.role, item.verity))
            plan = repo_gc.plan_repository_gc(
                repo, extra_images=extra_images, extra_streams=extra_streams,
                add_stream_refs={oci_tags.tag_ref(c.tag): oci_digest.manifest_stream_name(c.manifest_digest) for c in create},
                remove_stream_refs=[oci_tags.tag_ref(r.tag) for r in remove])
            notes.errors.extend(plan.errors)
            for dangling in plan.dangling_refs:
                notes.finding("dangling-ref", os.path.join(repo.path, dangling["entry"]),
                              "%s: %s" % (dangling["ref"], dangling["problem"]))
            for item in plan.invalid_objects:
                notes.finding("invalid-object", item[0], item[1])
            for item in plan.unusable_entries:
                notes.finding("malformed-ref", item[0], item[1])
        return {"tags": tuple(tags), "live": live, "create": create, "remove": remove, "plan": plan}
    except (OSError, ComposefsError) as err:
        notes.errors.append(str(err) if isinstance(err, ComposefsError) else "cannot read the repository: %s" % err)
        return {}
    finally:
        repo.close()
