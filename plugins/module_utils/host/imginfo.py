# -*- coding: utf-8 -*-
# Copyright: (c) 2026, bootc.composefs maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The legacy ``<verity>.imginfo`` file: OCI config and manifest of a deployment (layer: host).

Spec: bootc-composefs-host.md §1.3, §1.5, §3.1 step 3, §3.3. Upstream: bootc
``bootc_composefs/status.rs`` (``ImgConfigManifest``, ``get_imginfo``).

Location: ``<sysroot>/state/deploy/<verity>/<verity>.imginfo``. Written only by bootc before
PR #2044 (deployments whose origin has no ``[image] manifest_digest``); never written or deleted
now. Content: compact JSON of one object with two members, in this order:

| member | content |
|---|---|
| ``config`` | the full OCI image configuration (``architecture``, ``os``, ``created``, ``config.Labels``, ``rootfs``, ``history``...) |
| ``manifest`` | the OCI image manifest (``schemaVersion``, ``mediaType``, ``config`` descriptor, ``layers``, ``annotations``) |

We require a JSON object whose ``config`` is an object and whose ``manifest`` is an object with an
integer ``schemaVersion``, a ``config`` descriptor carrying a string ``digest``, and a ``layers``
list; anything else is a ``FormatError``. Other members are kept as they are.

Not reproduced: bootc reports ``imageDigest`` for these deployments as the hex SHA-256 of the
manifest *re-serialized by Rust oci-spec* (no ``sha256:`` prefix, generally not the registry
digest, §3.3). That byte string cannot be rebuilt faithfully here, so no digest is derived;
``config_digest`` (from the manifest) is the stable identifier this file offers.
"""

from __future__ import annotations

import json
import os
from typing import NamedTuple

from ansible_collections.bootc.composefs.plugins.module_utils.errors import FormatError

__all__ = ["ImageInfo", "parse_imginfo", "imginfo_path", "load_imginfo", "VERSION_ANNOTATION"]

# The manifest annotation bootc reports as the image version (config labels are not consulted).
VERSION_ANNOTATION = "org.opencontainers.image.version"


class ImageInfo(NamedTuple):
    """The ``config`` and ``manifest`` JSON objects of a legacy deployment (plain dicts)."""

    config: dict
    manifest: dict

    @property
    def architecture(self) -> str | None:
        """``config.architecture`` (e.g. ``amd64``), None if absent."""
        value = self.config.get("architecture")
        return value if isinstance(value, str) else None

    @property
    def created(self) -> str | None:
        """``config.created`` (RFC 3339 text as stored), None if absent."""
        value = self.config.get("created")
        return value if isinstance(value, str) else None

    @property
    def version(self) -> str | None:
        """The manifest annotation ``org.opencontainers.image.version``, None if absent."""
        annotations = self.manifest.get("annotations")
        value = annotations.get(VERSION_ANNOTATION) if isinstance(annotations, dict) else None
        return value if isinstance(value, str) else None

    @property
    def config_digest(self) -> str:
        """``manifest.config.digest``: the OCI config digest (``sha256:...``)."""
        return self.manifest["config"]["digest"]

    @property
    def layer_digests(self) -> tuple:
        """The ``digest`` of each manifest layer descriptor, in order."""
        return tuple(layer.get("digest") for layer in self.manifest["layers"] if isinstance(layer, dict))


def parse_imginfo(text: str) -> ImageInfo:
    """Parse ``.imginfo`` JSON text; ``FormatError`` if it is not ``{config, manifest}`` as described."""
    try:
        document = json.loads(text)
    except ValueError as err:
        raise FormatError("not valid JSON: %s" % err)
    if not isinstance(document, dict):
        raise FormatError("expected a JSON object with 'config' and 'manifest'")
    config = document.get("config")
    manifest = document.get("manifest")
    if not isinstance(config, dict):
        raise FormatError("'config' is missing or not an object")
    if not isinstance(manifest, dict):
        raise FormatError("'manifest' is missing or not an object")
    schema = manifest.get("schemaVersion")
    if not isinstance(schema, int) or isinstance(schema, bool):
        raise FormatError("manifest 'schemaVersion' is missing or not an integer")
    descriptor = manifest.get("config")
    if not isinstance(descriptor, dict) or not isinstance(descriptor.get("digest"), str):
        raise FormatError("manifest 'config' descriptor has no string 'digest'")
    if not isinstance(manifest.get("layers"), list):
        raise FormatError("manifest 'layers' is missing or not a list")
    return ImageInfo(config=config, manifest=manifest)


def imginfo_path(paths, verity: str) -> str:
    """``<sysroot>/state/deploy/<verity>/<verity>.imginfo``."""
    return os.path.join(paths.state_deploy_dir, verity, verity + ".imginfo")


def load_imginfo(paths, verity: str) -> ImageInfo | None:
    """The ``.imginfo`` of deployment ``verity``; None if the file does not exist."""
    path = imginfo_path(paths, verity)
    text = paths.read_text(path)
    if text is None:
        return None
    try:
        return parse_imginfo(text)
    except FormatError as err:
        raise err.with_path(path)
