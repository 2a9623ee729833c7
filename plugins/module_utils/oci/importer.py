# -*- coding: utf-8 -*-
# Copyright: (c) 2026, bootc.composefs maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Importing an image from a source (``source.py``) into a composefs repository.

Layer: oci. Spec: ``composefs-repo.md`` sections 9, 10.2-10.5; upstream: composefs-rs
``crates/composefs-oci/src/skopeo.rs`` (``pull_image``, ``ensure_layer``), ``oci_layout.rs``
(``import_oci_layout``), ``tar.rs`` (``split_async``) and ``lib.rs`` (``ensure_oci_composefs_erofs``).

:func:`import_image` imports from any image source: an OCI layout directory
(:func:`import_oci_layout`, ``layout.LayoutSource``) or skopeo's image proxy
(``proxy_source.ProxySource``, used by ``operations/pull*.py``). The source hands over the raw
manifest and config bytes, which are stored byte for byte under their digests, and one reader per
layer. What is already stored is skipped by the rule of ``completeness.py``.

What an import leaves in the repository (``D`` = manifest digest, ``C`` = config digest):

=============================== ==================================================================
entry                           points at
=============================== ==================================================================
``streams/oci-layer-<diff_id>`` layer splitstream (``ocilayer``): the uncompressed tar, files of more
                                than 64 bytes as external objects; artifact layers: ``oci_blob``
                                stream named by the blob digest
``images/<hex>``                the EROFS image of the merged layers, one per configured format
                                (V1 ``mkcomposefs --min-version=1`` bytes; V2 when the repository asks)
``streams/oci-config-<C>``      config splitstream: refs per diff_id, ``composefs.image.v1`` (and
                                ``composefs.image`` for V2), existing boot keys kept
``streams/oci-manifest-<D>``    manifest splitstream: ``config:<C>`` and refs per layer
``streams/refs/oci/<tag>``      ``../../oci-manifest-<D>``, only when ``tag`` is given
=============================== ==================================================================

Order, so that a crash or an exception leaves nothing that names missing data (section 9): per
layer, every file object, then the layer splitstream object, then ``syncfs`` and the layer entry
(``register_stream``); then the EROFS objects, ``syncfs``, their ``images/`` entries; then the
config stream (object, ``syncfs``, entry), the manifest stream likewise; the tag last (an atomic
symlink replace). Objects are never fsynced one by one. A layer whose entry exists is not read
again, so an interrupted import resumes where it stopped.

Every layer is checked before anything names it: the source's reader checks the bytes it yields
(size and digest: ``layout.VerifiedBlob``, ``proxy.ProxyPipe``), and the uncompressed tar must
hash to the diff_id (``layer_reader.LayerTar``, which reads and decompresses on a thread of its
own while this thread splits the tar and stores its files: ``formats/tar_split.py``).

Differences from composefs-rs, same end state: it writes config and manifest streams without
EROFS refs, then generates the EROFS and rewrites both; here a fresh import writes them once,
refs included (no superseded stream objects). It regenerates the EROFS and rewrites config and
manifest on every pull; here an image whose streams and EROFS refs are all in place is left
untouched, so a second import is a no-op that reports what it reused. Layers are read one after
the other (composefs-rs: in parallel, largest first), each on two threads.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from ansible_collections.bootc.composefs.plugins.module_utils.errors import ComposefsError, FormatError
from ansible_collections.bootc.composefs.plugins.module_utils.formats import splitstream, tar_split, tree
from ansible_collections.bootc.composefs.plugins.module_utils.oci import completeness, filesystem, layer_reader, layout, streams, tags
from ansible_collections.bootc.composefs.plugins.module_utils.oci import digest as oci_digest
from ansible_collections.bootc.composefs.plugins.module_utils.oci.image import (
    BOOT_IMAGE_REF_KEY,
    image_ref_key,
    is_erofs_ref_key,
    read_manifest,
)
from ansible_collections.bootc.composefs.plugins.module_utils.oci.source import ImageSource, SourceLayer

__all__ = ["ImportResult", "import_image", "import_oci_layout"]

# Files up to this size are stored from one buffer (one digest pass, no write when the object
# exists); larger ones are streamed through a staging file.
SMALL_OBJECT_BYTES = 1 << 20


@dataclass
class ImportResult:
    """What :func:`import_image` did.

    ``object_count``/``bytes_written`` count every object handed to the object store during this
    import (file contents, splitstreams, JSON, EROFS images), whether or not an identical object
    was already there; a no-op import stores nothing.
    """

    manifest_digest: str
    config_digest: str
    manifest_object_id: str = ""
    config_object_id: str = ""
    layer_object_ids: dict = field(default_factory=dict)
    layers_fetched: tuple = ()
    layers_reused: tuple = ()
    object_count: int = 0
    bytes_written: int = 0
    image_object_id: str | None = None
    erofs_refs: dict = field(default_factory=dict)
    is_container_image: bool = True
    manifest_reused: bool = False
    config_reused: bool = False
    erofs_reused: bool = False
    tag: str | None = None
    tag_changed: bool = False

    @property
    def changed(self) -> bool:
        """True when the import created or re-pointed anything."""
        return bool(self.layers_fetched) or not (self.manifest_reused and self.config_reused and self.erofs_reused) \
            or self.tag_changed

    @property
    def stream_object_ids(self) -> dict:
        """``{stream name: object id}`` of the image's manifest, config and layer streams."""
        ids = {oci_digest.manifest_stream_name(self.manifest_digest): self.manifest_object_id,
               oci_digest.config_stream_name(self.config_digest): self.config_object_id}
        ids.update((oci_digest.layer_stream_name(k), v) for k, v in self.layer_object_ids.items())
        return ids


class _CountingStore:
    """The repository, with every object store counted (see ``ImportResult.object_count``)."""

    def __init__(self, repo) -> None:
        self._repo = repo
        self.objects = 0
        self.bytes = 0

    def __getattr__(self, name):
        return getattr(self._repo, name)

    def ensure_object(self, data) -> str:
        self.objects += 1
        self.bytes += len(data)
        return self._repo.ensure_object(data)

    def ensure_object_from_fileobj(self, fileobj) -> tuple:
        object_id, size = self._repo.ensure_object_from_fileobj(fileobj)
        self.objects += 1
        self.bytes += size
        return object_id, size

    def write_stream(self, stream_name: str, data, ref: str | None = None) -> str:
        self.objects += 1
        self.bytes += len(data)
        return self._repo.write_stream(stream_name, data, ref)


class _Views:
    """A member's content as a file object whose ``read`` hands out memoryviews (no copy) to the object store."""

    def __init__(self, content: tar_split.MemberContent) -> None:
        self._content = content

    def read(self, size: int = -1):
        return self._content.read_view(size)


class _Importer:
    """One import: the repository (counted), the source, progress state."""

    def __init__(self, repo, source: ImageSource, progress, total_layers: int) -> None:
        self.store = _CountingStore(repo)
        self.repo = repo
        self.source = source
        self.progress = progress
        self.total_layers = total_layers
        self.done_layers = 0
        self.bytes_done = 0

    def report(self, blob_bytes: int = 0) -> None:
        if self.progress is not None:
            self.progress(self.done_layers, self.total_layers, self.bytes_done + blob_bytes)

    def store_content(self, content: tar_split.MemberContent, size: int) -> bytes:
        """``tar_split.split_chunks``'s ``store_object``: one regular file's content into the object store."""
        if size <= SMALL_OBJECT_BYTES:
            return bytes.fromhex(self.store.ensure_object(content.read_whole()))
        object_id, stored = self.store.ensure_object_from_fileobj(_Views(content))
        if stored != size:
            raise FormatError("tar member content ends after %d of %d bytes" % (stored, size))
        return bytes.fromhex(object_id)

    def split_layer(self, layer: SourceLayer) -> tuple:
        """Split one tar layer into a registered layer stream; return ``(object id, tree entries)``."""
        check = None if layer.uncompressed and layer.fetch_digest == layer.layer_id else layer.layer_id
        reader = self.source.open_layer(layer)
        path = getattr(reader, "path", None)
        tar = layer_reader.LayerTar(reader, layer.compression, check, layer.fetch_digest)
        writer = splitstream.SplitStreamWriter(self.repo.algorithm, splitstream.CONTENT_TYPE_OCI_LAYER)
        entries = []

        def next_chunk() -> bytes:
            chunk = tar.next_chunk()
            self.report(tar.bytes_read)
            return chunk

        try:
            try:
                with tree.gc_paused():
                    for event in tar_split.split_chunks(next_chunk, self.store_content, entries):
                        if event[0] is tar_split.INLINE:
                            writer.write_inline(event[1])
                        else:
                            writer.write_external(event[1], event[2])
            except FormatError as err:
                if tar.failed:
                    raise
                blamed = tar.blame()
                if blamed is not None:
                    raise blamed from None
                err.message = "layer %s: %s" % (layer.layer_id, err.message)
                err.args = (err.message,)
                err.with_path(path)
                raise
        finally:
            tar.close()
        object_id = self.store.ensure_object(writer.encode())
        self.repo.register_stream(oci_digest.layer_stream_name(layer.layer_id), object_id)
        self.bytes_done += tar.bytes_read
        return object_id, entries

    def store_blob_layer(self, layer: SourceLayer) -> str:
        """Store a non-tar artifact layer as an ``oci_blob`` stream; return the stream object id."""
        with self.source.open_layer(layer, self.report) as blob:
            blob_id, size = self.store.ensure_object_from_fileobj(blob)
            blob.finish()
        self.bytes_done += size
        return streams.write_blob_stream(self.store, oci_digest.layer_stream_name(layer.layer_id), blob_id, size)


def import_image(repo, source: ImageSource, tag: str | None = None,
                 progress: Callable[[int, int, int], None] | None = None) -> ImportResult:
    """Import ``source.image`` (``source.py``) into ``repo``; ``tag`` (optional) is created last.

    ``progress(done_layers, total_layers, blob_bytes_read)`` is called as layers are read; an
    exception it raises aborts the import, leaving only complete layer streams behind. See the
    module docstring for what is written and in which order.
    """
    if tag is not None:
        tags.validate_tag(tag)
    versions = filesystem.erofs_versions(repo)
    image = source.image
    manifest_digest, config_digest, is_image = image.manifest_digest, image.config_digest, image.is_container_image
    job = _Importer(repo, source, progress, len(image.layers))
    result = ImportResult(manifest_digest=manifest_digest, config_digest=config_digest, is_container_image=is_image, tag=tag)
    existing = completeness.stored_config(repo, config_digest)

    entry_lists, layer_refs, fetched, reused = [], [], [], []
    job.report()
    for layer in image.layers:
        object_id = completeness.stored_layer(repo, layer.layer_id, existing.named_refs if existing is not None else None)
        entries = None
        if object_id is not None:
            reused.append(layer.layer_id)
        elif layer.compression is not None:
            object_id, entries = job.split_layer(layer)
            fetched.append(layer.layer_id)
        elif is_image:
            raise FormatError("layer %s of image %s has media type %r, which is not a tar layer; refusing to import it"
                              % (layer.fetch_digest, manifest_digest, layer.media_type), path=getattr(source, "name", None))
        else:
            object_id = job.store_blob_layer(layer)
            fetched.append(layer.layer_id)
        result.layer_object_ids[layer.layer_id] = object_id
        layer_refs.append((layer.layer_id, object_id))
        entry_lists.append(entries)
        job.done_layers += 1
        job.report()
    result.layers_fetched, result.layers_reused = tuple(fetched), tuple(reused)

    old_refs = {k: v for k, v in existing.named_refs.items() if is_erofs_ref_key(k)} if existing is not None else {}
    erofs_refs = dict(old_refs)
    wanted = [image_ref_key(v) for v in versions]
    result.erofs_reused = not is_image or (existing is not None and completeness.erofs_present(repo, old_refs, wanted))
    if not result.erofs_reused:
        entry_lists = [entries if entries is not None else filesystem.read_layer_entries(repo, object_id, layer_id)
                       for entries, (layer_id, object_id) in zip(entry_lists, layer_refs)]
        root = filesystem.build_tree(entry_lists)
        del entry_lists
        erofs_refs = {k: v for k, v in old_refs.items() if k.startswith(BOOT_IMAGE_REF_KEY)}
        erofs_refs.update(filesystem.write_erofs_images(job.store, root, versions))
    result.erofs_refs = erofs_refs
    result.image_object_id = erofs_refs.get(wanted[0]) if is_image else None

    same_layers = existing is not None and all(existing.named_refs.get(k) == v for k, v in layer_refs)
    result.config_reused = existing is not None and same_layers and erofs_refs == old_refs
    if result.config_reused:
        result.config_object_id = existing.stream_object_id
    else:
        result.config_object_id = streams.write_config_stream(job.store, config_digest, image.config_bytes, layer_refs,
                                                              erofs_refs)

    expected_refs = dict(layer_refs)
    expected_refs[oci_digest.config_ref_name(config_digest)] = result.config_object_id
    stored_manifest = None
    if repo.has_stream(oci_digest.manifest_stream_name(manifest_digest)):
        try:
            stored_manifest = read_manifest(repo, manifest_digest)
        except ComposefsError:
            stored_manifest = None  # missing or damaged: write it again
    result.manifest_reused = stored_manifest is not None and stored_manifest.named_refs == expected_refs
    if result.manifest_reused:
        result.manifest_object_id = stored_manifest.stream_object_id
    else:
        result.manifest_object_id = streams.write_manifest_stream(job.store, manifest_digest, image.manifest_bytes,
                                                                  config_digest, result.config_object_id, layer_refs)

    if tag is not None:
        manifest_stream = oci_digest.manifest_stream_name(manifest_digest)
        result.tag_changed = repo.stream_ref_target(tags.tag_ref(tag)) != manifest_stream
        if result.tag_changed:
            tags.tag_image(repo, manifest_digest, tag)
    result.object_count, result.bytes_written = job.store.objects, job.store.bytes
    return result


def import_oci_layout(repo, layout_dir, ref: str | None = None, tag: str | None = None, platform=None,
                      progress: Callable[[int, int, int], None] | None = None) -> ImportResult:
    """Import the image ``ref`` (name or digest; the platform's entry of an index) from an OCI layout directory.

    A thin source over the layout (``layout.LayoutSource``) given to :func:`import_image`.
    """
    if tag is not None:
        tags.validate_tag(tag)
    filesystem.erofs_versions(repo)
    with layout.LayoutSource(layout_dir, ref, platform) as source:
        return import_image(repo, source, tag=tag, progress=progress)
