# -*- coding: utf-8 -*-
# Copyright: (c) 2026, bootc.composefs maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Writing the splitstreams of an OCI image: manifest, config and blob streams, and their rewrites.

Layer: oci. Spec: ``composefs-repo.md`` sections 9, 10.2, 10.3 and 10.5; upstream: composefs-rs
``crates/composefs-oci/src/lib.rs`` (``write_config_raw``) and ``oci_image.rs``
(``write_manifest``, ``rewrite_manifest``, ``write_blob``). Tar layer streams are written by
``importer.py`` while it splits the archive.

Shapes written (``N`` = the repository's digest size; every body is one external chunk):

========================= ============ ================================== ======================================
stream name               content type body                               named refs, in stream_refs order
========================= ============ ================================== ======================================
``oci-config-<digest>``   ``ociconfg`` the raw config JSON, byte for byte ``<diff_id>`` per layer in config order
                                       (its sha256 is the config digest)  (artifacts: manifest layer digests), then
                                                                          ``composefs.image``, ``composefs.image.v1``,
                                                                          then boot keys sorted by name
``oci-manifest-<digest>`` ``ocimanif`` the raw manifest JSON              ``config:<config digest>``, then
                                                                          ``<diff_id>`` per layer
``oci-layer-<digest>``    ``oci_blob`` an artifact layer blob             none
``oci-blob-<digest>``     ``oci_blob`` a standalone blob                  none
========================= ============ ================================== ======================================

``stream_size`` is the stored blob's length. The JSON and blob bytes are separate objects so that
they carry their own fs-verity. Every write goes through ``Repository.write_stream``: the
splitstream object, then ``syncfs``, then the ``streams/`` entry (section 9), so an entry never
names data that is not on disk. A rewrite (new EROFS refs) re-points the same entry name; the
superseded splitstream object is left for the garbage collector, and tags follow automatically
because they name entries.
"""

from __future__ import annotations

from ansible_collections.bootc.composefs.plugins.module_utils.errors import DanglingRefError
from ansible_collections.bootc.composefs.plugins.module_utils.formats import splitstream
from ansible_collections.bootc.composefs.plugins.module_utils.oci import digest as oci_digest
from ansible_collections.bootc.composefs.plugins.module_utils.oci.image import (
    BOOT_IMAGE_REF_KEY,
    IMAGE_REF_KEY,
    IMAGE_REF_KEY_V1,
    OciImage,
    is_erofs_ref_key,
)

__all__ = [
    "encode_external_stream",
    "ordered_erofs_refs",
    "write_config_stream",
    "write_manifest_stream",
    "write_blob_stream",
    "rewrite_image_streams",
]


def encode_external_stream(algorithm, content_type: int, blob_object_id: str, size: int, named_refs=()) -> bytes:
    """Return a splitstream whose body is object ``blob_object_id`` (``size`` bytes) with ``named_refs`` in order."""
    writer = splitstream.SplitStreamWriter(algorithm, content_type)
    for name, object_id in named_refs:
        writer.add_named_ref(name, bytes.fromhex(object_id))
    writer.write_external(bytes.fromhex(blob_object_id), size)
    return writer.encode()


def ordered_erofs_refs(erofs_refs: dict) -> list:
    """Return the EROFS refs as ``[(key, object id)]`` in writing order: V2, V1, then boot keys by name."""
    unknown = sorted(k for k in erofs_refs if not is_erofs_ref_key(k))
    if unknown:
        raise ValueError("not EROFS image keys: %s" % ", ".join(unknown))
    ordered = [(k, erofs_refs[k]) for k in (IMAGE_REF_KEY, IMAGE_REF_KEY_V1) if k in erofs_refs]
    ordered.extend(sorted((k, v) for k, v in erofs_refs.items() if k.startswith(BOOT_IMAGE_REF_KEY)))
    return ordered


def write_config_stream(repo, config_digest: str, config_bytes: bytes, layer_refs, erofs_refs=None) -> str:
    """Store the config stream (``layer_refs``: ``[(diff_id, object id)]`` in config order); return its object id."""
    oci_digest.check_digest(oci_digest.sha256_digest(config_bytes), config_digest, "config JSON")
    named = list(layer_refs)
    named.extend(ordered_erofs_refs(erofs_refs or {}))
    blob_id = repo.ensure_object(config_bytes)
    data = encode_external_stream(repo.algorithm, splitstream.CONTENT_TYPE_OCI_CONFIG, blob_id, len(config_bytes), named)
    return repo.write_stream(oci_digest.config_stream_name(config_digest), data)


def write_manifest_stream(repo, manifest_digest: str, manifest_bytes: bytes, config_digest: str,
                          config_object_id: str, layer_refs) -> str:
    """Store the manifest stream (``config:<digest>`` then ``layer_refs`` in order); return its object id."""
    oci_digest.check_digest(oci_digest.sha256_digest(manifest_bytes), manifest_digest, "manifest JSON")
    named = [(oci_digest.config_ref_name(config_digest), config_object_id)]
    named.extend((layer_id, object_id) for layer_id, object_id in layer_refs)
    blob_id = repo.ensure_object(manifest_bytes)
    data = encode_external_stream(repo.algorithm, splitstream.CONTENT_TYPE_OCI_MANIFEST, blob_id, len(manifest_bytes), named)
    return repo.write_stream(oci_digest.manifest_stream_name(manifest_digest), data)


def write_blob_stream(repo, stream_name: str, blob_object_id: str, size: int) -> str:
    """Store an ``oci_blob`` stream over an already stored object; return the stream's object id."""
    data = encode_external_stream(repo.algorithm, splitstream.CONTENT_TYPE_OCI_BLOB, blob_object_id, size)
    return repo.write_stream(stream_name, data)


def rewrite_image_streams(repo, image: OciImage, erofs_refs: dict) -> tuple:
    """Rewrite config then manifest stream of ``image`` with ``erofs_refs`` as its complete EROFS key set.

    The JSON bytes are reused as stored (their digests cannot change); the layer refs are the
    image's own. Returns ``(config stream object id, manifest stream object id)``. The EROFS image
    objects must already be stored; the config rewrite's ``syncfs`` makes them durable before the
    config entry names them.
    """
    missing = [layer.diff_id for layer in image.layers if layer.object_id is None]
    if missing:
        raise DanglingRefError("image %s names no layer stream for %s; pull the image again"
                               % (image.manifest_digest, ", ".join(missing)))
    layer_refs = [(layer.diff_id, layer.object_id) for layer in image.layers]
    config_id = write_config_stream(repo, image.config_digest, image.config_bytes, layer_refs, erofs_refs)
    manifest_id = write_manifest_stream(repo, image.manifest_digest, image.manifest_bytes, image.config_digest,
                                        config_id, layer_refs)
    return config_id, manifest_id
