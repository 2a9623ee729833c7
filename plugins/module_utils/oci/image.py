# -*- coding: utf-8 -*-
# Copyright: (c) 2026, bootc.composefs maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""An OCI image as stored in a composefs repository: opening it by tag or digest, reading its streams.

Layer: oci. Spec: ``composefs-repo.md`` sections 8.9, 10.2-10.4 and ``bootc-composefs-host.md``
section 3; upstream: composefs-rs ``crates/composefs-oci/src/oci_image.rs`` (``OciImage::open``,
``read_external_splitstream``) and ``lib.rs`` (``open_config``, ``take_boot_image_refs``). What an
image keeps alive (section 12) is ``closure.py``.

An image is a chain of splitstreams (``streams.py`` writes them):

================================ ============ ===============================================
stream                           body         named refs (key -> object id)
================================ ============ ===============================================
``oci-manifest-<manifest dgst>`` one external ``config:<config digest>`` -> config stream object;
                                 object: the  ``<diff_id>`` -> layer stream object, per layer
                                 manifest
                                 JSON
``oci-config-<config digest>``   one external ``<diff_id>`` -> layer stream object, config order;
                                 object: the  ``composefs.image`` -> V2 EROFS image object;
                                 config JSON  ``composefs.image.v1`` -> V1 EROFS image object;
                                              ``composefs.image.boot[.v1][.xattrs=<mode>]`` -> boot
                                              EROFS image objects
``oci-layer-<diff_id>``          the tar,     none
                                 split
================================ ============ ===============================================

Opening (:func:`open_image`), as ``OciImage::open`` does: the manifest stream (through its
``streams/`` entry) must hold exactly one object ref, the raw manifest JSON; its sha256 must be the
manifest digest (checked whenever the digest is a sha256 one; a sha512 digest can only be trusted
through a tag's entry, section 14). The ``config:<digest>`` named ref gives the config stream
*object* (not its entry: after a crash between a config and a manifest rewrite the manifest still
names the older config object, which is complete), whose single object is the config JSON,
checked against the config digest. The config's named refs minus the ``composefs.image*`` keys are
the layers, listed in ``rootfs.diff_ids`` order. A manifest whose config media type is not the OCI
image config is an *artifact*: no EROFS, its layers are the manifest's layer digests, their refs
come from the manifest stream.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import NamedTuple

from ansible_collections.bootc.composefs.plugins.module_utils.errors import ComposefsError, DanglingRefError, FormatError
from ansible_collections.bootc.composefs.plugins.module_utils.formats import splitstream
from ansible_collections.bootc.composefs.plugins.module_utils.oci import digest as oci_digest
from ansible_collections.bootc.composefs.plugins.module_utils.oci import tags

__all__ = [
    "IMAGE_CONFIG_MEDIA_TYPE",
    "IMAGE_REF_KEY",
    "IMAGE_REF_KEY_V1",
    "BOOT_IMAGE_REF_KEY",
    "BOOT_IMAGE_REF_KEY_V1",
    "XATTRS_ALLOWLIST_ONLY",
    "XATTRS_KEEP_USER",
    "XATTR_MODES",
    "image_ref_key",
    "boot_image_ref_key",
    "is_erofs_ref_key",
    "parse_json_document",
    "parse_diff_ids",
    "StoredBlob",
    "LayerRef",
    "OciImage",
    "ErofsMatch",
    "stream_location",
    "read_stream_object",
    "read_external_stream",
    "read_manifest",
    "read_config",
    "open_image",
    "find_manifests_by_erofs",
]

IMAGE_CONFIG_MEDIA_TYPE = "application/vnd.oci.image.config.v1+json"

# --- EROFS named-ref keys of a config stream (composefs-rs lib.rs) --------------------------------
IMAGE_REF_KEY = "composefs.image"  # V2 image
IMAGE_REF_KEY_V1 = "composefs.image.v1"  # V1 image (V0 images are never recorded)
BOOT_IMAGE_REF_KEY = "composefs.image.boot"  # V2 boot image; also the prefix of every boot key
BOOT_IMAGE_REF_KEY_V1 = "composefs.image.boot.v1"
XATTRS_SUFFIX = ".xattrs="
XATTRS_ALLOWLIST_ONLY = "allowlist-only"  # default mode: no key suffix
XATTRS_KEEP_USER = "keep-user-xattrs"
XATTR_MODES = (XATTRS_ALLOWLIST_ONLY, XATTRS_KEEP_USER)
# EROFS format version -> plain image key; V0 and V1 share the V1 slot (composefs-rs FormatEpoch)
_IMAGE_KEYS = {0: IMAGE_REF_KEY_V1, 1: IMAGE_REF_KEY_V1, 2: IMAGE_REF_KEY}
_BOOT_KEYS = {0: BOOT_IMAGE_REF_KEY_V1, 1: BOOT_IMAGE_REF_KEY_V1, 2: BOOT_IMAGE_REF_KEY}

# --- safety limits --------------------------------------------------------------------------------
# Manifests and configs are a few KiB; bootc images with long histories stay well below this.
MAX_JSON_BYTES = 16 << 20


def image_ref_key(version: int) -> str:
    """Return the config named-ref key of the plain EROFS image of format ``version``."""
    try:
        return _IMAGE_KEYS[version]
    except KeyError:
        raise ValueError("unknown EROFS format version %r (expected 0, 1 or 2)" % (version,)) from None


def boot_image_ref_key(version: int, xattr_mode: str = XATTRS_ALLOWLIST_ONLY) -> str:
    """Return the config named-ref key of the boot EROFS image of ``version`` built with ``xattr_mode``."""
    if version not in _BOOT_KEYS:
        raise ValueError("unknown EROFS format version %r (expected 0, 1 or 2)" % (version,))
    if xattr_mode not in XATTR_MODES:
        raise ValueError("unknown xattr filtering mode %r (expected %s)" % (xattr_mode, " or ".join(XATTR_MODES)))
    base = _BOOT_KEYS[version]
    return base if xattr_mode == XATTRS_ALLOWLIST_ONLY else base + XATTRS_SUFFIX + xattr_mode


def is_erofs_ref_key(name: str) -> bool:
    """Return whether a config named-ref key names an EROFS image rather than a layer."""
    return name in (IMAGE_REF_KEY, IMAGE_REF_KEY_V1) or name.startswith(BOOT_IMAGE_REF_KEY)


def parse_json_document(data: bytes, what: str) -> dict:
    """Parse a JSON object (manifest, config, index); FormatError naming ``what`` otherwise."""
    if len(data) > MAX_JSON_BYTES:
        raise FormatError("%s is %d bytes, more than the %d a manifest or config may have" % (what, len(data), MAX_JSON_BYTES))
    try:
        document = json.loads(bytes(data).decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as err:
        raise FormatError("%s is not valid JSON: %s" % (what, err)) from None
    if not isinstance(document, dict):
        raise FormatError("%s is JSON but not an object" % what)
    return document


class StoredBlob(NamedTuple):
    """A manifest or config read from its stream: raw ``data``, its named refs (hex ids) and stream object id."""

    digest: str
    stream_object_id: str
    data: bytes
    named_refs: dict
    document: dict | None


class LayerRef(NamedTuple):
    """One layer of an image: its diff_id, the layer stream object the config names, and what exists."""

    diff_id: str
    object_id: str | None
    entry_present: bool
    object_present: bool

    @property
    def present(self) -> bool:
        """True when the layer stream object the image names is in the repository."""
        return self.object_present


@dataclass(frozen=True)
class OciImage:
    """An opened image: manifest and config (bytes and parsed), layers and EROFS refs."""

    manifest_digest: str
    manifest_object_id: str
    manifest_bytes: bytes
    manifest: dict
    config_digest: str
    config_object_id: str
    config_bytes: bytes
    config: dict | None
    config_media_type: str
    layers: tuple
    erofs_refs: dict = field(hash=False)
    manifest_refs: dict = field(hash=False, default_factory=dict)
    config_refs: dict = field(hash=False, default_factory=dict)
    verified: bool = True

    @property
    def is_container_image(self) -> bool:
        """True for a container image (OCI image config); False for an artifact."""
        return self.config_media_type == IMAGE_CONFIG_MEDIA_TYPE

    @property
    def is_artifact(self) -> bool:
        return not self.is_container_image

    @property
    def diff_ids(self) -> tuple:
        return tuple(layer.diff_id for layer in self.layers)

    @property
    def layer_refs(self) -> dict:
        """``{diff_id: layer stream object id}`` of the layers the image names."""
        return {layer.diff_id: layer.object_id for layer in self.layers if layer.object_id is not None}

    @property
    def boot_refs(self) -> dict:
        """The boot image keys among :attr:`erofs_refs`."""
        return {k: v for k, v in self.erofs_refs.items() if k.startswith(BOOT_IMAGE_REF_KEY)}

    def image_verity(self, kind: str = "plain", version: int = 1, xattr_mode: str = XATTRS_ALLOWLIST_ONLY) -> str | None:
        """Return the object id of the ``plain`` or ``boot`` EROFS image of ``version``, or None when not recorded."""
        if kind == "plain":
            return self.erofs_refs.get(image_ref_key(version))
        if kind == "boot":
            return self.erofs_refs.get(boot_image_ref_key(version, xattr_mode))
        raise ValueError("unknown image kind %r (expected 'plain' or 'boot')" % (kind,))


class ErofsMatch(NamedTuple):
    """A tagged image whose config links an EROFS image (:func:`find_manifests_by_erofs`)."""

    manifest_digest: str
    config_digest: str
    key: str
    tags: tuple


def stream_location(repo, stream_name: str | None, object_id: str) -> str:
    """Where a stream is, for messages: ``<repo>/streams/<name> (objects/<xx>/<rest>)``, ``splitstream`` for no name."""
    name = "streams/%s" % stream_name if stream_name else "splitstream"
    return "%s/%s (objects/%s/%s)" % (repo.path, name, object_id[:2], object_id[2:])


def read_stream_object(repo, object_id: str, content_type: int | None = None,
                       stream_name: str | None = None) -> splitstream.SplitStream:
    """Parse the splitstream stored as object ``object_id``; FormatError for another ``content_type``."""
    where = stream_location(repo, stream_name, object_id)
    try:
        data = repo.read_object(object_id)
    except DanglingRefError as err:
        raise DanglingRefError("splitstream object is missing from the repository; pull the image again",
                               path=where) from err
    try:
        stream = splitstream.parse_splitstream(data, repo.algorithm)
    except FormatError as err:
        err.with_path(where)
        raise
    if content_type is not None and stream.content_type != content_type:
        raise FormatError("splitstream has content type 0x%016x, expected 0x%016x (%s)"
                          % (stream.content_type, content_type, content_type.to_bytes(8, "little").decode("ascii", "replace")),
                          path=where)
    return stream


def read_external_stream(repo, stream_name: str, object_id: str | None = None,
                         content_type: int | None = None) -> tuple:
    """Return ``(data, named_refs, stream object id)`` of a stream holding exactly one external object.

    The stream is found through ``streams/<stream_name>`` unless ``object_id`` names its object;
    named refs come back as ``{name: hex object id}``.
    """
    if object_id is None:
        object_id = repo.stream_object_id(stream_name)
    stream = read_stream_object(repo, object_id, content_type, stream_name)
    if len(stream.object_refs) != 1:
        raise FormatError("splitstream has %d object refs, expected exactly 1 (the stored JSON or blob)"
                          % len(stream.object_refs), path=stream_location(repo, stream_name, object_id))
    blob_id = stream.object_refs[0].hex()
    try:
        data = repo.read_object(blob_id)
    except DanglingRefError as err:
        raise DanglingRefError("the object this stream stores its content in (%s) is missing; pull the image again"
                               % blob_id, path=stream_location(repo, stream_name, object_id)) from err
    named = {name: raw.hex() for name, raw in stream.named_refs.items()}
    return data, named, object_id


def read_manifest(repo, manifest_digest: str, object_id: str | None = None, verify: bool = True) -> StoredBlob:
    """Return the stored manifest of ``manifest_digest`` (sha256-checked when ``verify``; parsed)."""
    name = oci_digest.manifest_stream_name(manifest_digest)
    data, named, stream_id = read_external_stream(repo, name, object_id, splitstream.CONTENT_TYPE_OCI_MANIFEST)
    if verify:
        oci_digest.new_hasher(manifest_digest, "manifest digest")
        oci_digest.check_digest(oci_digest.sha256_digest(data), manifest_digest, "stored manifest",
                                path=stream_location(repo, name, stream_id))
    document = parse_json_document(data, "manifest %s" % manifest_digest)
    return StoredBlob(manifest_digest, stream_id, data, named, document)


def read_config(repo, config_digest: str, object_id: str | None = None, parse: bool = True) -> StoredBlob:
    """Return the stored config of ``config_digest`` (parsed JSON when ``parse``).

    Its sha256 is checked when the digest is a sha256 one; a sha512 config digest is trusted
    through the manifest stream's ref when ``object_id`` comes from there (composefs-rs checks
    nothing once it knows the verity), and refused otherwise.
    """
    name = oci_digest.config_stream_name(config_digest)
    data, named, stream_id = read_external_stream(repo, name, object_id, splitstream.CONTENT_TYPE_OCI_CONFIG)
    if object_id is None or oci_digest.parse_digest(config_digest).verifiable:
        oci_digest.new_hasher(config_digest, "config digest")
        oci_digest.check_digest(oci_digest.sha256_digest(data), config_digest, "stored config",
                                path=stream_location(repo, name, stream_id))
    document = parse_json_document(data, "config %s" % config_digest) if parse else None
    return StoredBlob(config_digest, stream_id, data, named, document)


def _config_descriptor(manifest: dict, manifest_digest: str) -> tuple:
    config = manifest.get("config")
    if not isinstance(config, dict):
        raise FormatError("manifest %s has no config descriptor" % manifest_digest)
    config_digest = oci_digest.validate_digest(config.get("digest"), "config digest of manifest %s" % manifest_digest)
    media_type = config.get("mediaType", "")
    if not isinstance(media_type, str):
        raise FormatError("manifest %s: config mediaType is not a string" % manifest_digest)
    return config_digest, media_type


def parse_diff_ids(config: dict, config_digest: str) -> tuple:
    """Return a config's ``rootfs.diff_ids`` (checked digests, in order); FormatError otherwise."""
    rootfs = config.get("rootfs")
    diff_ids = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
    if not isinstance(diff_ids, list):
        raise FormatError("config %s has no rootfs.diff_ids list" % config_digest)
    return tuple(oci_digest.validate_digest(d, "diff_id in config %s" % config_digest) for d in diff_ids)


def _manifest_layer_digests(manifest: dict, manifest_digest: str) -> tuple:
    layers = manifest.get("layers", [])
    if not isinstance(layers, list) or not all(isinstance(d, dict) for d in layers):
        raise FormatError("manifest %s: layers is not a list of descriptors" % manifest_digest)
    return tuple(oci_digest.validate_digest(d.get("digest"), "layer digest in manifest %s" % manifest_digest) for d in layers)


def _layer_ref(repo, layer_id: str, refs: dict) -> LayerRef:
    object_id = refs.get(layer_id)
    return LayerRef(layer_id, object_id, repo.has_stream(oci_digest.layer_stream_name(layer_id)),
                    object_id is not None and repo.has_object(object_id))


def _resolve(repo, ref: str) -> tuple:
    """Return ``(manifest_digest, manifest stream object id, opened by digest)`` for a tag or digest."""
    text = ref[1:] if isinstance(ref, str) and ref.startswith("@") else ref
    if oci_digest.is_digest(text):
        return text, repo.stream_object_id(oci_digest.manifest_stream_name(text)), True
    found = tags.resolve_tag(repo, ref)
    if found is None:
        raise DanglingRefError("no image is tagged %r; list the tags or pull the image" % (ref,),
                               path="%s/streams/refs/%s" % (repo.path, tags.tag_ref(ref)))
    return found[0], found[1], False


def open_image(repo, ref: str) -> OciImage:
    """Open the image tagged ``ref`` or with manifest digest ``ref`` (``sha256:...``, optionally ``@``-prefixed).

    DanglingRefError for an unknown tag or digest or a missing stream or object; ComposefsError for
    a digest mismatch; FormatError for malformed streams or JSON.
    """
    manifest_digest, manifest_id, by_digest = _resolve(repo, ref)
    verify = by_digest or oci_digest.parse_digest(manifest_digest).verifiable
    manifest = read_manifest(repo, manifest_digest, manifest_id, verify=verify)
    config_digest, media_type = _config_descriptor(manifest.document, manifest_digest)
    config_id = manifest.named_refs.get(oci_digest.config_ref_name(config_digest))
    if config_id is None:
        raise DanglingRefError("manifest stream has no %r named ref; pull the image again" % oci_digest.config_ref_name(config_digest),
                               path=stream_location(repo, oci_digest.manifest_stream_name(manifest_digest), manifest_id))
    is_image = media_type == IMAGE_CONFIG_MEDIA_TYPE
    config = read_config(repo, config_digest, config_id, parse=is_image)
    erofs_refs = {}
    if is_image:
        layer_ids = parse_diff_ids(config.document, config_digest)
        erofs_refs = {k: v for k, v in config.named_refs.items() if is_erofs_ref_key(k)}
        layer_source = config.named_refs
    else:
        layer_ids = _manifest_layer_digests(manifest.document, manifest_digest)
        layer_source = manifest.named_refs
    layers = tuple(_layer_ref(repo, layer_id, layer_source) for layer_id in layer_ids)
    return OciImage(manifest_digest=manifest_digest, manifest_object_id=manifest_id, manifest_bytes=manifest.data,
                    manifest=manifest.document, config_digest=config_digest, config_object_id=config_id,
                    config_bytes=config.data, config=config.document, config_media_type=media_type, layers=layers,
                    erofs_refs=erofs_refs, manifest_refs=manifest.named_refs, config_refs=config.named_refs,
                    verified=verify)


def find_manifests_by_erofs(repo, object_id: str) -> list:
    """Return an :class:`ErofsMatch` per tagged image whose config links EROFS image ``object_id`` (plain or boot keys).

    The legacy fallback of status code: which pulled image a deployment verity comes from. Tags
    whose image cannot be opened are skipped (GC and fsck report those).
    """
    by_manifest = {}
    for tag, manifest_digest in tags.list_tags(repo):
        by_manifest.setdefault(manifest_digest, []).append(tag)
    matches = []
    for manifest_digest in sorted(by_manifest):
        try:
            image = open_image(repo, manifest_digest)
        except ComposefsError:
            continue
        for key in sorted(image.erofs_refs):
            if image.erofs_refs[key] == object_id:
                matches.append(ErofsMatch(manifest_digest, image.config_digest, key, tuple(sorted(by_manifest[manifest_digest]))))
    return matches
