# -*- coding: utf-8 -*-
# Copyright: (c) 2026, bootc.composefs maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where an image comes from, as the importer sees it: the source protocol.

Layer: oci. Spec: ``composefs-repo.md`` sections 10.2 and 10.5; upstream: composefs-rs
``crates/composefs-oci/src/skopeo.rs`` (``ImageOp``: manifest, config, one blob per layer) and
``oci_layout.rs`` (the same from a layout directory).

An image source (``oci/layout.py`` ``LayoutSource``, ``oci/proxy_source.py`` ``ProxySource``)
has:

- ``image``: a :class:`SourceImage`, everything the repository stores about the image except its
  layers, already read and checked: the raw manifest bytes and their digest (the stream name),
  the raw config bytes, and one :class:`SourceLayer` per manifest layer;
- ``open_layer(layer, on_progress=None)``: a reader of that layer's bytes (a binary file object
  with ``readinto``); its ``finish()`` reads what is left and raises a ``ComposefsError`` when the
  bytes were not those the source promised (size, digest, or the transfer failed), ``close()``
  abandons it, ``bytes_read`` counts what was read, ``path`` names it in messages;
- ``close()``.

The bytes of a layer are either its blob, compressed as the manifest's media type says, or,
when ``SourceLayer.uncompressed``, the uncompressed tar itself, whose digest is then the diff_id
(``containers-storage`` keeps only uncompressed layers; ``docker-archive`` names layers by
diff_id). Either way the reader's ``finish`` checks them against ``fetch_digest`` and
``fetch_size``, and the importer checks the uncompressed tar against the diff_id.

What is stored, and under which digest (``form``):

============= ============================================= =========================================
form          source                                        ``manifest_digest`` (the stored name)
============= ============================================= =========================================
``exact``     an OCI manifest: registries, layouts, archives ``source_digest``: the source's bytes are
              written by skopeo or podman, containers-storage stored as they are
``converted`` a Docker schema 2 manifest, which skopeo's image  the sha256 of skopeo's OCI conversion,
              proxy only hands out converted to OCI              which is what is stored; ``source_digest``
                                                                 keeps the Docker digest
============= ============================================= =========================================

The repository only stores content under the digest it hashes to, so the manifest digest is
always ``sha256(manifest_bytes)``; :func:`describe_image` checks it and the config digest.
"""

from __future__ import annotations

from typing import NamedTuple

from ansible_collections.bootc.composefs.plugins.module_utils.errors import FormatError
from ansible_collections.bootc.composefs.plugins.module_utils.oci import digest as oci_digest
from ansible_collections.bootc.composefs.plugins.module_utils.oci.image import (
    IMAGE_CONFIG_MEDIA_TYPE,
    parse_diff_ids,
    parse_json_document,
)

__all__ = [
    "FORM_EXACT",
    "FORM_CONVERTED",
    "LAYER_COMPRESSION",
    "BOOTC_LABEL",
    "Descriptor",
    "SourceLayer",
    "SourceImage",
    "ImageSource",
    "layer_compression",
    "parse_descriptor",
    "check_content",
    "describe_image",
    "config_labels",
]

FORM_EXACT = "exact"
FORM_CONVERTED = "converted"
BOOTC_LABEL = "containers.bootc"  # config label "1" marks a bootable (bootc) image

# layer media type -> compression (OCI layer types, their non-distributable twins, Docker's)
LAYER_COMPRESSION = {
    "application/vnd.oci.image.layer.v1.tar": "none",
    "application/vnd.oci.image.layer.v1.tar+gzip": "gzip",
    "application/vnd.oci.image.layer.v1.tar+zstd": "zstd",
    "application/vnd.oci.image.layer.nondistributable.v1.tar": "none",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip": "gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd": "zstd",
    "application/vnd.docker.image.rootfs.diff.tar.gzip": "gzip",
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip": "gzip",
}


def layer_compression(media_type: str) -> str | None:
    """Return ``none``, ``gzip`` or ``zstd`` for a tar layer media type, None for any other."""
    return LAYER_COMPRESSION.get(media_type)


class Descriptor(NamedTuple):
    """An OCI content descriptor (the fields used here)."""

    media_type: str
    digest: str
    size: int
    annotations: dict
    platform: dict | None


def parse_descriptor(value, what: str) -> Descriptor:
    """Check an OCI descriptor object; FormatError naming ``what`` otherwise."""
    if not isinstance(value, dict):
        raise FormatError("%s is not a descriptor object" % what)
    digest = oci_digest.validate_digest(value.get("digest"), "%s digest" % what)
    size = value.get("size")
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise FormatError("%s %s: size %r is not a non-negative integer" % (what, digest, size))
    media_type = value.get("mediaType", "")
    annotations = value.get("annotations") or {}
    if not isinstance(media_type, str) or not isinstance(annotations, dict):
        raise FormatError("%s %s: mediaType or annotations have the wrong JSON type" % (what, digest))
    found_platform = value.get("platform")
    return Descriptor(media_type, digest, size, annotations, found_platform if isinstance(found_platform, dict) else None)


class SourceLayer(NamedTuple):
    """One manifest layer: its id in the repository and how its bytes come from the source.

    ``layer_id`` names the layer stream (``oci-layer-<layer_id>``): the diff_id, or for an
    artifact the blob digest. The reader yields ``fetch_size`` bytes hashing to ``fetch_digest``:
    the blob as ``media_type`` says, or the uncompressed tar when ``uncompressed`` (then
    ``fetch_digest`` is the diff_id).
    """

    layer_id: str
    media_type: str
    fetch_digest: str
    fetch_size: int
    uncompressed: bool = False

    @property
    def compression(self) -> str | None:
        """``none``/``gzip``/``zstd`` of the bytes the reader yields; None for a non-tar (artifact) layer."""
        if self.uncompressed:
            return "none"
        return layer_compression(self.media_type)


class SourceImage(NamedTuple):
    """What the repository stores of an image, read and checked (see the module docstring for ``form``)."""

    source_digest: str
    manifest_digest: str
    manifest_bytes: bytes
    manifest: dict
    config_digest: str
    config_bytes: bytes
    config_media_type: str
    layers: tuple
    form: str = FORM_EXACT

    @property
    def is_container_image(self) -> bool:
        return self.config_media_type == IMAGE_CONFIG_MEDIA_TYPE

    @property
    def labels(self) -> dict:
        """The config's ``config.Labels`` (empty for artifacts or when absent)."""
        if not self.is_container_image:
            return {}
        return config_labels(parse_json_document(self.config_bytes, "config %s" % self.config_digest))

    @property
    def bootable(self) -> bool:
        """True for a container image labelled ``containers.bootc=1``."""
        return self.is_container_image and str(self.labels.get(BOOTC_LABEL, "")) == "1"


def config_labels(config) -> dict:
    """The ``config.Labels`` object of a parsed image config, or ``{}``."""
    inner = config.get("config") if isinstance(config, dict) else None
    labels = inner.get("Labels") if isinstance(inner, dict) else None
    return labels if isinstance(labels, dict) else {}


class ImageSource:
    """Base of image sources (module docstring): ``image``, ``open_layer``, ``close``; a context manager."""

    name = "image"
    image: SourceImage

    def open_layer(self, layer: SourceLayer, on_progress=None):
        """Return a reader of ``layer``'s bytes (module docstring)."""
        raise NotImplementedError

    def close(self) -> None:
        """Release what the source holds (idempotent)."""

    def __enter__(self) -> "ImageSource":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def check_content(data: bytes, expected_digest: str, what: str) -> None:
    """ComposefsError when ``data`` does not hash to ``expected_digest`` (or that digest cannot be verified)."""
    hasher = oci_digest.new_hasher(expected_digest, "%s digest" % what)
    hasher.update(data)
    oci_digest.check_digest("%s:%s" % (hasher.name, hasher.hexdigest()), expected_digest, what)


def describe_image(what: str, manifest_bytes: bytes, config_bytes: bytes, layer_for, source_digest: str | None = None,
                   form: str = FORM_EXACT) -> SourceImage:
    """Check a manifest and its config and return the :class:`SourceImage` they describe.

    ``layer_for(descriptor, layer_id, is_image)`` returns each layer's :class:`SourceLayer` (how the
    source serves it). The manifest digest is the sha256 of ``manifest_bytes``; the config must
    hash to the digest the manifest gives it, and a container image's config must list one
    diff_id per manifest layer. FormatError (naming ``what``) otherwise.
    """
    manifest_digest = oci_digest.sha256_digest(manifest_bytes)
    manifest = parse_json_document(manifest_bytes, "manifest of %s" % what)
    if "layers" not in manifest or "config" not in manifest:
        raise FormatError("manifest %s of %s is not an image manifest (no config or layers)" % (manifest_digest, what))
    config = parse_descriptor(manifest.get("config"), "manifest %s config" % manifest_digest)
    raw_layers = manifest.get("layers")
    if not isinstance(raw_layers, list):
        raise FormatError("manifest %s of %s has no layers list" % (manifest_digest, what))
    descriptors = [parse_descriptor(d, "manifest %s layers[%d]" % (manifest_digest, i)) for i, d in enumerate(raw_layers)]
    check_content(config_bytes, config.digest, "config of %s" % what)
    is_image = config.media_type == IMAGE_CONFIG_MEDIA_TYPE
    if is_image:
        layer_ids = parse_diff_ids(parse_json_document(config_bytes, "config %s" % config.digest), config.digest)
        if len(layer_ids) != len(descriptors):
            raise FormatError("config %s lists %d diff_ids but manifest %s has %d layers"
                              % (config.digest, len(layer_ids), manifest_digest, len(descriptors)))
        for diff_id in layer_ids:
            oci_digest.new_hasher(diff_id, "diff_id")
    else:
        layer_ids = tuple(d.digest for d in descriptors)
    layers = tuple(layer_for(descriptor, layer_id, is_image) for descriptor, layer_id in zip(descriptors, layer_ids))
    return SourceImage(source_digest=source_digest or manifest_digest, manifest_digest=manifest_digest,
                       manifest_bytes=bytes(manifest_bytes), manifest=manifest, config_digest=config.digest,
                       config_bytes=bytes(config_bytes), config_media_type=config.media_type, layers=layers, form=form)
