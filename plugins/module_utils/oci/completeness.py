# -*- coding: utf-8 -*-
# Copyright: (c) 2026, bootc.composefs maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What of an image the repository already holds: the rule that decides what a pull or an import skips.

Layer: oci. Spec: ``composefs-repo.md`` sections 9 and 10.3-10.5; upstream: composefs-rs
``crates/composefs-oci/src/skopeo.rs`` (``ensure_layer``: a layer whose ``oci-layer-<diff_id>``
entry exists is not fetched), bootc ``crates/lib/src/bootc_composefs/update.rs``
(``is_image_pulled``).

One rule, used by the importer (``importer.py``) to skip work and by the pull
(``operations/pull_plan.py``) to decide without the network what to fetch:

- a **layer** is stored when the stored config's named ref for it, or the ``oci-layer-<id>``
  entry, names a layer stream object that exists (:func:`stored_layer`). An entry is only ever
  written after its stream object and everything it references (section 9), so an existing
  object behind it is a complete layer;
- a **config** is stored when ``oci-config-<digest>`` exists and reads back as a config stream
  whose JSON hashes to its digest (:func:`stored_config`; a damaged one, e.g. left by a crashed
  garbage collection, counts as absent and is written again);
- an **image** is complete (:func:`complete_image`) when its manifest, config and every layer
  stream are stored, and, for a container image, the EROFS image of every format the repository
  asks for is recorded on the config with its ``images/`` entry, and, for a bootable image
  (config label ``containers.bootc=1``), the boot EROFS image of the default format too.
"""

from __future__ import annotations

from ansible_collections.bootc.composefs.plugins.module_utils.errors import ComposefsError
from ansible_collections.bootc.composefs.plugins.module_utils.oci import digest as oci_digest
from ansible_collections.bootc.composefs.plugins.module_utils.oci import filesystem
from ansible_collections.bootc.composefs.plugins.module_utils.oci.image import (
    boot_image_ref_key,
    image_ref_key,
    open_image,
    read_config,
)
from ansible_collections.bootc.composefs.plugins.module_utils.oci.source import BOOTC_LABEL, config_labels

__all__ = ["stored_config", "stored_layer", "image_entry_present", "erofs_present", "complete_image", "is_bootable_config"]


def stored_config(repo, config_digest: str):
    """The stored config stream of ``config_digest`` (``image.StoredBlob``, JSON not parsed), or None."""
    if not repo.has_stream(oci_digest.config_stream_name(config_digest)):
        return None
    try:
        return read_config(repo, config_digest, parse=False)
    except ComposefsError:
        return None


def stored_layer(repo, layer_id: str, config_refs: dict | None = None) -> str | None:
    """The object id of a complete stored layer stream for ``layer_id``, or None.

    ``config_refs`` are the named refs of the stored config (``stored_config(...).named_refs``),
    when there is one: its ref is tried first.
    """
    candidates = [config_refs.get(layer_id)] if config_refs else []
    name = oci_digest.layer_stream_name(layer_id)
    if repo.has_stream(name):
        candidates.append(repo.stream_object_id(name))
    for object_id in candidates:
        if object_id is not None and repo.has_object(object_id):
            return object_id
    return None


def image_entry_present(repo, object_id: str | None) -> bool:
    """True when ``object_id`` is an EROFS image object with its ``images/`` entry."""
    return object_id is not None and repo.has_object(object_id) and repo.image_object_id(object_id) is not None


def erofs_present(repo, refs: dict, keys) -> bool:
    """True when every key of ``keys`` is in ``refs`` and names a present EROFS image."""
    return all(image_entry_present(repo, refs.get(key)) for key in keys)


def is_bootable_config(config) -> bool:
    """True for a parsed image config labelled ``containers.bootc=1``."""
    return str(config_labels(config).get(BOOTC_LABEL, "")) == "1"


def complete_image(repo, manifest_digest: str, bootable: bool | None = None):
    """The opened image (``image.OciImage``) when manifest ``manifest_digest`` is complete (module docstring), else None.

    ``bootable`` None reads it from the stored config's label.
    """
    try:
        image = open_image(repo, manifest_digest)
    except ComposefsError:
        return None
    if not all(layer.present for layer in image.layers):
        return None
    if image.is_container_image:
        versions = filesystem.erofs_versions(repo)
        if not erofs_present(repo, image.erofs_refs, [image_ref_key(v) for v in versions]):
            return None
        if bootable is None:
            bootable = is_bootable_config(image.config)
        if bootable and not image_entry_present(repo, image.erofs_refs.get(boot_image_ref_key(versions[0]))):
            return None
    return image
