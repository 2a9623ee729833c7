# -*- coding: utf-8 -*-
# Copyright: (c) 2026, bootc.composefs maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The filesystem tree of a stored OCI image, rebuilt from its layer splitstreams.

Layer: oci. Spec: ``composefs-repo.md`` sections 10.2 and 10.5 (step 4); upstream: composefs-rs
``crates/composefs-oci/src/image.rs`` (``create_filesystem``) and ``tar.rs`` (``get_entry``).

A layer stream (content type ``ocilayer``) replays the layer's tar: inline chunks are header
blocks, padding and small contents; each external chunk is the content of one regular file larger
than 64 bytes, which becomes an external file of the tree (its object is the file's content, its
fs-verity digest the chunk's object ref). ``formats/tar.py`` turns that event stream into layer
entries, ``layers.py`` merges the layers in ``rootfs.diff_ids`` order and applies
``transform_for_oci`` (root metadata from ``/usr``, ``/run`` emptied, xattrs filtered by mode:
``allowlist-only`` keeps ``security.capability``, ``keep-user-xattrs`` also ``user.*``).

The layer streams are read by the object ids the config stream names; like composefs-rs with a
known config verity, the layers' diff_ids are not re-hashed here (the importer checked them).

Writing a tree's EROFS images (:func:`write_erofs_images`, composefs-rs ``commit_images``): one
image per format the repository asks for (``meta.json`` ``erofs_formats``: the default first, then
the extras; V0 is never written, a V0 default is refused), each stored as an object; then one
``syncfs``; then the ``images/<hex>`` entries, so an entry never names data that is not on disk.
Nothing names the images until the caller rewrites the config stream.
"""

from __future__ import annotations

from typing import Iterator

from ansible_collections.bootc.composefs.plugins.module_utils.errors import ComposefsError, DanglingRefError, FormatError
from ansible_collections.bootc.composefs.plugins.module_utils.formats import splitstream, tar, tree
from ansible_collections.bootc.composefs.plugins.module_utils.formats.erofs import writer as erofs_writer
from ansible_collections.bootc.composefs.plugins.module_utils.oci import layers
from ansible_collections.bootc.composefs.plugins.module_utils.oci.image import (
    XATTR_MODES,
    XATTRS_KEEP_USER,
    OciImage,
    image_ref_key,
    read_stream_object,
)
from ansible_collections.bootc.composefs.plugins.module_utils.oci import digest as oci_digest

__all__ = ["layer_events", "read_layer_entries", "build_tree", "create_filesystem", "erofs_versions", "write_erofs_images"]


def layer_events(stream: splitstream.SplitStream) -> Iterator[tuple]:
    """Yield a layer stream's chunks as ``formats.tar`` split events (``("external", digest)`` without size)."""
    for chunk in splitstream.iter_chunks(stream):
        if isinstance(chunk, bytes):
            yield (tar.INLINE, chunk)
        else:
            yield (tar.EXTERNAL, stream.object_refs[chunk])


def read_layer_entries(repo, layer_object_id: str, diff_id: str | None = None) -> list:
    """Return the tree entries of the layer stream stored as object ``layer_object_id``, in archive order."""
    name = oci_digest.layer_stream_name(diff_id) if diff_id else None
    stream = read_stream_object(repo, layer_object_id, splitstream.CONTENT_TYPE_OCI_LAYER, name)
    try:
        with tree.gc_paused():
            return list(tar.iter_layer_entries(layer_events(stream)))
    except FormatError as err:
        err.message = "layer stream %s: %s" % (diff_id or layer_object_id, err.message)
        err.args = (err.message,)
        raise


def build_tree(entry_lists, xattr_mode: str = XATTR_MODES[0]) -> tree.Directory:
    """Merge layers' entry lists (lowest first) and apply ``transform_for_oci`` with ``xattr_mode``."""
    if xattr_mode not in XATTR_MODES:
        raise ValueError("unknown xattr filtering mode %r (expected %s)" % (xattr_mode, " or ".join(XATTR_MODES)))
    with tree.gc_paused():
        root = layers.merge_layers(entry_lists)
        layers.transform_for_oci(root, keep_user_xattrs=xattr_mode == XATTRS_KEEP_USER)
    return root


def create_filesystem(repo, image: OciImage, xattr_mode: str = XATTR_MODES[0]) -> tree.Directory:
    """Return the merged, ``transform_for_oci``-ed tree of a container image stored in ``repo``."""
    if not image.is_container_image:
        raise FormatError("manifest %s is an artifact (config media type %r), not a container image: it has no "
                          "filesystem" % (image.manifest_digest, image.config_media_type))
    entry_lists = []
    for layer in image.layers:
        if layer.object_id is None:
            raise DanglingRefError("config %s names no layer stream for %s; pull the image again"
                                   % (image.config_digest, layer.diff_id))
        entry_lists.append(read_layer_entries(repo, layer.object_id, layer.diff_id))
    return build_tree(entry_lists, xattr_mode)


def erofs_versions(repo) -> tuple:
    """Return the EROFS format versions images are written in: the default first, then the extras.

    V0 is never written (composefs-rs has no config slot for it); a V0 default is refused.
    """
    order = repo.meta.erofs_generation_order()
    if order[0] == 0:
        raise ComposefsError("the repository's default EROFS format is V0, which composefs cannot link to an image "
                             "(spec section 14); use a repository initialised with EROFS format 1", path=repo.path)
    return tuple(v for v in order if v != 0)


def write_erofs_images(repo, root: tree.Directory, versions, key_for=image_ref_key) -> dict:
    """Write the EROFS image of ``root`` in each version: objects, ``syncfs``, then ``images/`` entries.

    Returns ``{key_for(version): image object id}``; nothing names the images yet.
    """
    images = []
    for version in versions:
        data = erofs_writer.write_image(root, version=version, algorithm=repo.algorithm)
        images.append((key_for(version), data, repo.ensure_object(data)))
    repo.sync()
    for _key, data, _object_id in images:
        repo.write_image(data)
    return {key: object_id for key, _data, object_id in images}
