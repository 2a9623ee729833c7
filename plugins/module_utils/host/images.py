# -*- coding: utf-8 -*-
# Copyright: (c) 2026, bootc.composefs maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which OCI image each deployment runs: manifest, config and where they were found (layer: host).

Spec: bootc-composefs-host.md §1.4 (origin ``[image] manifest_digest``), §1.5 (legacy
``.imginfo``), §2.8 (ImageStatus mapping), §3 (resolution), §4.2 step 12 (legacy tag search),
Open questions 2 and 4; composefs-repo.md §10.2-10.4 (streams, named refs, tags). Upstream: bootc
``bootc_composefs/status.rs`` (``get_imginfo``), ``gc.rs`` (live manifest collection).

This file sits in the host layer because it answers a host question with the oci layer's help
(``oci.image``); nothing below the host layer knows about deployments.

Resolution of one deployment, first success wins, every failure noted in ``warnings``:

| step | when | what is read | ``source`` |
|---|---|---|---|
| 1 | the origin has ``manifest_digest`` | stream ``oci-manifest-<digest>`` -> manifest JSON -> named ref ``config:<digest>`` -> config JSON | ``repository`` |
| 2 | step 1 failed or was skipped | ``<verity>.imginfo`` (``{config, manifest}`` JSON) | ``imginfo`` |
| 3 | steps 1 and 2 failed (for legacy deployments: also after step 2, see below) | the tag search below | ``tag-search`` |

bootc fails ``bootc status`` when step 1 fails and does not try step 2 or 3 then (§2.9); we
report and keep going.

Legacy deployments (origin without ``manifest_digest``, written before bootc PR #2044) also get
the tag search when their ``.imginfo`` was read: it is the only way to learn their true manifest
digest, which decides whether a GC keeps their tag. bootc itself reports the hex SHA-256 of the
manifest re-serialized by Rust oci-spec for them (no ``sha256:`` prefix, generally no registry
digest, Open question 2); that value cannot be rebuilt faithfully, so ``manifest_digest`` is
None unless the tag search finds the image.

Tag search (Open question 4): every tagged image whose config names the deployment's EROFS image
by one of its ``composefs.image*`` named refs. The deployment's verity is the digest of the
*boot* EROFS image (``composefs.image.boot[.v1][.xattrs=<mode>]``), so a boot key is what
matches on every real repository; bootc's GC compares the verity with the *plain* key
(``composefs.image`` / ``composefs.image.v1``) only, which never matches a boot image's verity
and leaves legacy deployments without OCI metadata. We match any ``composefs.image*`` key
(object ids are content digests, so no key can give a false match). Among matching manifests
a boot key wins, then a manifest with a bootc tag, then the lowest digest; the tag reported is
the manifest's bootc tag, else its first tag by name. ``matched_key`` and ``matched_tag`` tell which.
Several different manifests matching (the same image stored with two compressions) is noted.

Reported values (§2.8): ``version`` = manifest annotation ``org.opencontainers.image.version``
(bootc's choice), falling back to the config label of the same name (which ``podman build``
sets); ``created`` and ``architecture`` from the config, as stored.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import NamedTuple

from ansible_collections.bootc.composefs.plugins.module_utils.errors import ComposefsError
from ansible_collections.bootc.composefs.plugins.module_utils.host import findings, imginfo, origin
from ansible_collections.bootc.composefs.plugins.module_utils.oci import image as oci_image
from ansible_collections.bootc.composefs.plugins.module_utils.oci import tags as oci_tags

__all__ = [
    "ImageMetadata",
    "ResolvedImages",
    "resolve_image",
    "resolve_images",
    "SOURCE_REPOSITORY",
    "SOURCE_IMGINFO",
    "SOURCE_TAG_SEARCH",
    "UNRESOLVED_IMAGE",
    "BOOT_KEY_PREFIX",
]

SOURCE_REPOSITORY = "repository"
SOURCE_IMGINFO = "imginfo"
SOURCE_TAG_SEARCH = "tag-search"

# Finding code: a deployment with a readable origin whose image metadata no source could give.
UNRESOLVED_IMAGE = "unresolved-image"

# Config named refs of boot EROFS images start with this (composefs-repo.md §10.3).
BOOT_KEY_PREFIX = "composefs.image.boot"
VERSION_KEY = imginfo.VERSION_ANNOTATION


def _text(value) -> str | None:
    return value if isinstance(value, str) else None


@dataclass(frozen=True)
class ImageMetadata:
    """What is known about a deployment's image; every field may be None when nothing was found.

    ``image`` is the ``oci.image.OciImage`` opened from the repository (sources ``repository`` and
    ``tag-search``), so that callers checking the repository need not open it again.
    """

    source: str | None = None
    manifest_digest: str | None = None
    config_digest: str | None = None
    manifest: dict | None = None
    config: dict | None = None
    matched_tag: str | None = None
    matched_key: str | None = None
    warnings: tuple = ()
    image: object = field(default=None, compare=False, repr=False)

    @property
    def version(self) -> str | None:
        """Manifest annotation ``org.opencontainers.image.version``, else the config label of that name."""
        annotations = (self.manifest or {}).get("annotations")
        value = annotations.get(VERSION_KEY) if isinstance(annotations, dict) else None
        if _text(value) is not None:
            return value
        inner = (self.config or {}).get("config")
        labels = inner.get("Labels") if isinstance(inner, dict) else None
        return _text(labels.get(VERSION_KEY)) if isinstance(labels, dict) else None

    @property
    def created(self) -> str | None:
        """The config's ``created`` text (RFC 3339 as stored)."""
        return _text((self.config or {}).get("created"))

    @property
    def architecture(self) -> str | None:
        """The config's ``architecture`` (``amd64``, ``arm64``...)."""
        return _text((self.config or {}).get("architecture"))


class ResolvedImages(NamedTuple):
    """``by_verity``: an ``ImageMetadata`` for every deployment; ``findings``: ``unresolved-image`` ones."""

    by_verity: dict
    findings: tuple


def _reason(err) -> str:
    if isinstance(err, ComposefsError):
        return str(err)
    return err.strerror or str(err)


def _match_rank(match) -> tuple:
    return (not match.key.startswith(BOOT_KEY_PREFIX), not any(oci_tags.is_bootc_tag(t) for t in match.tags),
            match.manifest_digest)


class _TagSearch:
    """Tag search results per EROFS object id, computed once per repository and id."""

    def __init__(self, repo) -> None:
        self.repo = repo
        self.cache = {}

    def find(self, object_id: str) -> list:
        """``[oci.image.ErofsMatch]`` whose config names ``object_id``, best first (module docstring)."""
        if object_id not in self.cache:
            matches = oci_image.find_manifests_by_erofs(self.repo, object_id)
            self.cache[object_id] = sorted(matches, key=_match_rank)
        return self.cache[object_id]


def _from_repository(repo, manifest_digest: str) -> ImageMetadata:
    opened = oci_image.open_image(repo, manifest_digest)
    return ImageMetadata(source=SOURCE_REPOSITORY, manifest_digest=manifest_digest, config_digest=opened.config_digest,
                         manifest=opened.manifest, config=opened.config, image=opened)


def _search(search, repo, verity: str, warnings: list) -> ImageMetadata | None:
    if search is None:
        return None
    try:
        matches = search.find(verity)
    except (OSError, ComposefsError) as err:
        warnings.append("the tag search failed: %s" % _reason(err))
        return None
    if not matches:
        return None
    best = matches[0]
    tag = sorted(best.tags, key=lambda t: (not oci_tags.is_bootc_tag(t), t))[0]
    others = sorted({m.manifest_digest for m in matches} - {best.manifest_digest})
    if others:
        warnings.append("the tag search also matched manifest(s) %s; using %s (tag %s)" % (", ".join(others), best.manifest_digest, tag))
    try:
        found = _from_repository(repo, best.manifest_digest)
    except (OSError, ComposefsError) as err:
        warnings.append("tag %s names this deployment's image but cannot be read: %s" % (tag, _reason(err)))
        return None
    return replace(found, source=SOURCE_TAG_SEARCH, matched_tag=tag, matched_key=best.key)


def _imginfo(paths, deployment, warnings: list):
    if deployment.imginfo is not None:
        return deployment.imginfo
    try:
        info = imginfo.load_imginfo(paths, deployment.verity)
    except (OSError, ComposefsError) as err:
        warnings.append("cannot read the legacy .imginfo file: %s" % _reason(err))
        return None
    if info is None:
        warnings.append("there is no legacy .imginfo file to fall back to")
    return info


def _from_imginfo(info, manifest_digest: str | None) -> ImageMetadata:
    return ImageMetadata(source=SOURCE_IMGINFO, manifest_digest=manifest_digest, config_digest=info.config_digest,
                         manifest=info.manifest, config=info.config)


def resolve_image(paths, deployment, repo=None, search=None) -> ImageMetadata:
    """The image metadata of ``deployment`` (a ``host.deployments.Deployment``), by the steps above.

    ``repo`` is the open repository, or None when it cannot be read (only ``.imginfo`` is tried
    then); ``search`` a shared tag search (``resolve_images`` makes one per repository).
    """
    loaded = deployment.origin
    if loaded is None:
        return ImageMetadata(warnings=("no readable origin file, so the image is unknown",))
    warnings = []
    digest = loaded.manifest_digest
    if digest is not None:
        if repo is None:
            warnings.append("the repository cannot be read, so manifest %s cannot be looked up" % digest)
        else:
            try:
                return _from_repository(repo, digest)
            except (OSError, ComposefsError) as err:
                warnings.append("cannot read manifest %s from the repository: %s" % (digest, _reason(err)))
        info = _imginfo(paths, deployment, warnings)
        if info is not None:
            warnings.append("metadata read from the legacy .imginfo file instead")
            return replace(_from_imginfo(info, digest), warnings=tuple(warnings))
        found = _search(search, repo, deployment.verity, warnings)
        if found is not None:
            if found.manifest_digest != digest:
                warnings.append("the origin names manifest %s but the tagged image holding this deployment's EROFS image "
                                "is %s" % (digest, found.manifest_digest))
            warnings.append("metadata found by the tag search (tag %s)" % found.matched_tag)
            return replace(found, manifest_digest=digest, warnings=tuple(warnings))
        return ImageMetadata(manifest_digest=digest, warnings=tuple(warnings))
    # Legacy deployment: the host layer has read (or failed to read) its .imginfo.
    info = _imginfo(paths, deployment, warnings)
    found = _search(search, repo, deployment.verity, warnings)
    if info is not None:
        if found is None:
            if repo is not None:
                warnings.append("legacy deployment: no tagged image holds its EROFS image, so its manifest digest is unknown")
            return replace(_from_imginfo(info, None), warnings=tuple(warnings))
        if found.config_digest != info.config_digest:
            warnings.append("the .imginfo names config %s but the tagged image %s has config %s; reporting the .imginfo"
                            % (info.config_digest, found.matched_tag, found.config_digest))
            return replace(_from_imginfo(info, None), warnings=tuple(warnings))
        return ImageMetadata(source=SOURCE_IMGINFO, manifest_digest=found.manifest_digest, config_digest=info.config_digest,
                             manifest=info.manifest, config=info.config, matched_tag=found.matched_tag,
                             matched_key=found.matched_key, warnings=tuple(warnings), image=found.image)
    if found is not None:
        warnings.append("metadata found by the tag search (tag %s)" % found.matched_tag)
        return replace(found, warnings=tuple(warnings))
    return ImageMetadata(warnings=tuple(warnings))


def resolve_images(state, repo=None) -> ResolvedImages:
    """``resolve_image`` for every deployment of ``state`` (a ``HostState``), one tag search shared."""
    search = _TagSearch(repo) if repo is not None else None
    by_verity = {}
    found = []
    for deployment in state.deployments:
        metadata = resolve_image(state.paths, deployment, repo, search)
        by_verity[deployment.verity] = metadata
        if metadata.source is None and deployment.origin is not None:
            found.append(findings.Finding(UNRESOLVED_IMAGE, origin.origin_path(state.paths, deployment.verity),
                                          "no image metadata for deployment %s: %s" % (deployment.verity, "; ".join(metadata.warnings))))
    return ResolvedImages(by_verity=by_verity, findings=tuple(found))
