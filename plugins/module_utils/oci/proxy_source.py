# -*- coding: utf-8 -*-
# Copyright: (c) 2026, bootc.composefs maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""An image read through skopeo's image proxy, as an image source for the importer (``source.py``).

Layer: oci. Upstream: composefs-rs ``crates/composefs-oci/src/skopeo.rs`` (``ImageOp``:
``pull``, ``ensure_config_with_layers``, ``ensure_layer``); skopeo 1.9.3 ``cmd/skopeo/proxy.go``
(``GetManifest``, ``GetFullConfig``, ``GetBlob``); containers/image ``storage/storage_src.go``
(``getBlobAndLayerID``) and ``docker/internal/tarfile/src.go`` (``GetBlob``).

:meth:`ProxySource.resolve` reads the manifest (``GetManifest``: the digest as the source names it,
and the manifest bytes) and the config, and decides how each layer is fetched:

================================ ========================= ==================================================
case                             manifest and config       layer bytes fetched (``GetBlob``)
================================ ========================= ==================================================
OCI manifest (registries,        the source's bytes; form  each blob by its digest, compressed as its media
layouts, archives written by     ``exact``: stored under   type says
skopeo or podman,                the source's digest
containers-storage)
Docker schema 2 manifest         skopeo's OCI conversion   the same blobs (the conversion keeps the layer
(``docker save``/``docker-       (``GetManifest`` converts, digests); the config from ``GetFullConfig``,
archive`` archives, images built the raw one is not served) which is exactly what the conversion names
by Docker); form ``converted``   stored under its own
                                 sha256
``containers-storage``, a layer  unchanged                 the uncompressed diff by its diff_id (c/storage keeps
whose manifest digest is not                               only that; its size asked with a ``GetBlob`` whose
its diff_id                                                pipe is abandoned: skopeo 1.9 has no ``GetLayerInfo``)
a layer whose digest is its      unchanged                 the blob, uncompressed although the media type says
diff_id but whose media type                               compressed (docker-archive serves layers by diff_id,
says compressed                                            decompressed)
================================ ========================= ==================================================

No manifest is rewritten: the stored manifest is the source's (or, for Docker schema 2, skopeo's
conversion, the only form the proxy hands out), so ``manifest_digest`` is what ``skopeo inspect``
and ``podman images --digests`` show for every OCI image.

composefs-rs at commit f22ecda (``crates/composefs-oci/src/skopeo.rs``) does the same for OCI
sources, including uncompressed layers from containers-storage by diff_id (lines 175-190, via
``GetLayerInfo``). For a Docker schema 2 source it takes the converted bytes with the *original*
digest from ``fetch_manifest_raw_oci`` (line 448) and names the manifest stream after that digest
(line 471, bytes written at line 493), so the stored bytes do not hash to their name, which its
own ``OciImage::open`` rejects when it has no verity to trust (``oci_image.rs`` lines 158-162);
and it fetches the config with ``GetBlob`` by the converted manifest's config digest (line 347),
a blob the source does not have (the conversion re-serializes the config), so such pulls fail
("blob unknown to registry", composefs-rs issue 99). Storing the conversion under its own digest
is the only content-addressed way to keep them.
"""

from __future__ import annotations

from ansible_collections.bootc.composefs.plugins.module_utils.oci import digest as oci_digest
from ansible_collections.bootc.composefs.plugins.module_utils.oci import skopeo
from ansible_collections.bootc.composefs.plugins.module_utils.oci.image import parse_json_document
from ansible_collections.bootc.composefs.plugins.module_utils.oci.proxy import ImageProxy, ProxyPipe
from ansible_collections.bootc.composefs.plugins.module_utils.oci.source import (
    FORM_CONVERTED,
    FORM_EXACT,
    Descriptor,
    ImageSource,
    SourceLayer,
    describe_image,
    layer_compression,
    parse_descriptor,
)

__all__ = ["ProxySource", "CONTAINERS_STORAGE"]

CONTAINERS_STORAGE = "containers-storage"


class ProxySource(ImageSource):
    """The image ``name`` (``<transport>:<name>``) read through an :class:`ImageProxy`; :meth:`open` then :meth:`resolve`."""

    def __init__(self, proxy: ImageProxy, name: str, transport: str) -> None:
        self.proxy = proxy
        self.name = name
        self.transport = transport
        self.handle = None
        self.image = None

    def open(self) -> "ProxySource":
        """``OpenImage`` (an index resolved to the proxy's platform); ToolError classified on failure."""
        self.handle = self.proxy.open_image(self.name)
        return self

    def close(self) -> None:
        if self.handle is not None:
            handle, self.handle = self.handle, None
            self.proxy.close_image(handle)

    def resolve(self):
        """Read manifest and config, decide each layer's fetch (module docstring); return the ``source.SourceImage``."""
        source_digest, manifest_bytes = self.proxy.get_manifest(self.handle)
        oci_digest.validate_digest(source_digest, "manifest digest reported by skopeo for %s" % self.name)
        form = FORM_EXACT if oci_digest.sha256_digest(manifest_bytes) == source_digest else FORM_CONVERTED
        manifest = parse_json_document(manifest_bytes, "manifest of %s" % self.name)
        config = parse_descriptor(manifest.get("config"), "manifest of %s: config" % self.name)
        if form == FORM_CONVERTED:
            config_bytes = self.proxy.get_full_config(self.handle)
            got = oci_digest.sha256_digest(config_bytes)
            if got != config.digest:
                raise skopeo.tool_error("config of %s" % self.name, "skopeo's converted config has digest %s, its converted "
                                        "manifest names %s" % (got, config.digest), command=self.proxy.argv,
                                        failure=skopeo.DIGEST_MISMATCH)
        else:
            config_bytes = self.proxy.read_blob(self.handle, config.digest, config.size)
        self.image = describe_image(self.name, manifest_bytes, config_bytes, self._layer, source_digest=source_digest, form=form)
        return self.image

    def _layer(self, descriptor: Descriptor, layer_id: str, is_image: bool) -> SourceLayer:
        compressed = layer_compression(descriptor.media_type) not in (None, "none")
        if is_image and self.transport == CONTAINERS_STORAGE and descriptor.digest != layer_id:
            return SourceLayer(layer_id, descriptor.media_type, layer_id, self.proxy.blob_size(self.handle, layer_id), True)
        if is_image and descriptor.digest == layer_id and compressed:
            return SourceLayer(layer_id, descriptor.media_type, layer_id, descriptor.size, True)
        return SourceLayer(layer_id, descriptor.media_type, descriptor.digest, descriptor.size)

    def open_layer(self, layer: SourceLayer, on_progress=None) -> ProxyPipe:
        """A pipe of the layer's bytes, checked against ``fetch_digest`` and ``fetch_size`` by its ``finish``."""
        if self.image is None or self.handle is None:
            raise ValueError("the image %s was not resolved before its layers were asked for" % self.name)
        return self.proxy.get_blob(self.handle, layer.fetch_digest, layer.fetch_size, on_progress)
