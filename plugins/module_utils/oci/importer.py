# -*- coding: utf-8 -*-
# Copyright: (c) 2026, bootc.composefs maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Importing an OCI image layout directory into a composefs repository (a pull from ``oci:DIR``).

Layer: oci. Spec: ``composefs-repo.md`` sections 9, 10.2-10.5; upstream: composefs-rs
``crates/composefs-oci/src/oci_layout.rs`` (``import_oci_layout``), ``skopeo.rs`` (``pull_image``),
``tar.rs`` (``split_async``) and ``lib.rs`` (``ensure_oci_composefs_erofs``).

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

Every blob is checked while it is read (size and sha256, ``layout.VerifiedBlob``), and a layer's
uncompressed sha256 must be its diff_id, before anything names it.

Differences from composefs-rs, same end state: it writes config and manifest streams without
EROFS refs, then generates the EROFS and rewrites both; here a fresh import writes them once,
refs included (no superseded stream objects). It regenerates the EROFS and rewrites config and
manifest on every pull; here an image whose streams and EROFS refs are all in place is left
untouched, so a second import is a no-op that reports what it reused. Layers are read one after
the other (composefs-rs: in parallel, largest first). zstd layers are inflated in memory
(``formats/zstd.py`` has no streaming decoder yet).
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, field
from typing import Callable

from ansible_collections.bootc.composefs.plugins.module_utils.errors import ComposefsError, FormatError
from ansible_collections.bootc.composefs.plugins.module_utils.formats import splitstream, tar, tree
from ansible_collections.bootc.composefs.plugins.module_utils.oci import digest as oci_digest
from ansible_collections.bootc.composefs.plugins.module_utils.oci import filesystem, layout, streams, tags
from ansible_collections.bootc.composefs.plugins.module_utils.oci.image import (
    IMAGE_CONFIG_MEDIA_TYPE,
    BOOT_IMAGE_REF_KEY,
    image_ref_key,
    is_erofs_ref_key,
    parse_diff_ids,
    parse_json_document,
    read_config,
    read_manifest,
)

__all__ = ["ImportResult", "import_oci_layout"]

# Files up to this size are read into memory and stored with one digest pass (and no write when
# the object exists); larger ones are streamed through a staging file.
SMALL_OBJECT_BYTES = 1 << 20
READ_CHUNK_BYTES = 1 << 20
TAR_BUFFER_BYTES = 1 << 20


@dataclass
class ImportResult:
    """What :func:`import_oci_layout` did.

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


class _HashingReader(io.RawIOBase):
    """Pass reads through, hashing them with sha256 (the uncompressed layer's diff_id)."""

    def __init__(self, fileobj) -> None:
        super().__init__()
        self._fileobj = fileobj
        self.hasher = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self._fileobj.read(len(buffer))
        count = len(data)
        buffer[:count] = data
        self.hasher.update(data)
        return count


class _Bounded(io.RawIOBase):
    """A tar member's content, read in pieces no larger than what is left (no 1 MiB buffers per file)."""

    def __init__(self, content) -> None:
        super().__init__()
        self._content = content

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        left = self._content.remaining
        if left <= 0:
            return b""
        return self._content.read(left if size is None or size < 0 else min(size, left))

    def readinto(self, buffer) -> int:
        data = self.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)


def _read_exactly(fileobj, size: int) -> bytes:
    parts, got = [], 0
    while got < size:
        piece = fileobj.read(size - got)
        if not piece:
            break
        parts.append(piece)
        got += len(piece)
    return b"".join(parts)


class _Importer:
    """One import: the repository (counted), the layout, progress state."""

    def __init__(self, repo, source: layout.OciLayout, progress, total_layers: int) -> None:
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

    def store_content(self, content, size: int) -> bytes:
        """``tar.split_tar``'s ``store_object``: one regular file's content into the object store."""
        if size <= SMALL_OBJECT_BYTES:
            data = _read_exactly(content, size)
            if len(data) != size:
                raise FormatError("tar member content ends after %d of %d bytes" % (len(data), size))
            return bytes.fromhex(self.store.ensure_object(data))
        object_id, stored = self.store.ensure_object_from_fileobj(_Bounded(content))
        if stored != size:
            raise FormatError("tar member content ends after %d of %d bytes" % (stored, size))
        return bytes.fromhex(object_id)

    def split_layer(self, descriptor: layout.Descriptor, layer_id: str, check_diff_id: bool) -> tuple:
        """Split one tar layer blob into a registered layer stream; return ``(object id, entries)``."""
        blob = self.source.open_blob(descriptor, self.report)
        tar_file = None
        try:
            try:
                tar_file = layout.open_layer_tar(blob, descriptor.media_type)
                hashing = _HashingReader(tar_file)
                buffered = io.BufferedReader(hashing, TAR_BUFFER_BYTES)
                writer = splitstream.SplitStreamWriter(self.repo.algorithm, splitstream.CONTENT_TYPE_OCI_LAYER)
                events = _tee(tar.split_tar(buffered, self.store_content), writer)
                with tree.gc_paused():
                    entries = list(tar.iter_layer_entries(events))
                for _event in events:
                    pass  # the end-of-archive blocks and anything after them
                blob.finish()
            except layout.DECOMPRESSION_ERRORS as err:
                _blame_blob(blob)
                raise FormatError("layer blob %s cannot be decompressed (%s): %s" % (descriptor.digest, descriptor.media_type, err),
                                  path=blob.path) from None
            except FormatError as err:
                _blame_blob(blob)
                err.message = "layer %s: %s" % (layer_id, err.message)
                err.args = (err.message,)
                err.with_path(blob.path)
                raise
        finally:
            # a zstd reader may run the zstd binary: end it now, not when garbage-collected
            if tar_file is not None and tar_file is not blob:
                tar_file.close()
            blob.close()
        if check_diff_id:
            oci_digest.check_digest("sha256:" + hashing.hasher.hexdigest(), layer_id, "uncompressed layer %s" % descriptor.digest,
                                    path=blob.path)
        data = writer.encode()
        object_id = self.store.ensure_object(data)
        self.repo.register_stream(oci_digest.layer_stream_name(layer_id), object_id)
        self.bytes_done += blob.bytes_read
        return object_id, entries

    def store_blob_layer(self, descriptor: layout.Descriptor) -> str:
        """Store a non-tar artifact layer as an ``oci_blob`` stream; return the stream object id."""
        with self.source.open_blob(descriptor, self.report) as blob:
            blob_id, size = self.store.ensure_object_from_fileobj(blob)
            blob.finish()
        self.bytes_done += size
        return streams.write_blob_stream(self.store, oci_digest.layer_stream_name(descriptor.digest), blob_id, size)


def _blame_blob(blob: layout.VerifiedBlob) -> None:
    """After a decompression or tar error: raise the digest mismatch instead when the blob is corrupted."""
    try:
        blob.finish()
    except ComposefsError as err:
        if err.partial_result.get("expected_digest"):
            raise
    except (OSError, EOFError):
        pass


def _tee(events, writer: splitstream.SplitStreamWriter):
    for event in events:
        if event[0] == tar.INLINE:
            writer.write_inline(event[1])
        else:
            writer.write_external(event[1], event[2])
        yield event


def _existing_config(repo, config_digest: str):
    if not repo.has_stream(oci_digest.config_stream_name(config_digest)):
        return None
    try:
        return read_config(repo, config_digest, parse=False)
    except ComposefsError:
        return None  # missing or damaged (e.g. left by a crashed garbage collection): write it again


def _existing_layer(repo, layer_id: str, config) -> str | None:
    """The object id of a complete stored layer stream for ``layer_id``, or None."""
    candidates = [config.named_refs.get(layer_id)] if config is not None else []
    name = oci_digest.layer_stream_name(layer_id)
    if repo.has_stream(name):
        candidates.append(repo.stream_object_id(name))
    for object_id in candidates:
        if object_id is not None and repo.has_object(object_id):
            return object_id
    return None


def _layer_ids(document: dict, config_digest: str, layer_count: int) -> tuple:
    result = parse_diff_ids(document, config_digest)
    if len(result) != layer_count:
        raise FormatError("config %s lists %d diff_ids but the manifest has %d layers" % (config_digest, len(result), layer_count))
    for diff_id in result:
        oci_digest.new_hasher(diff_id, "diff_id")
    return result


def _erofs_in_place(repo, refs: dict, keys) -> bool:
    return all(k in refs and repo.has_object(refs[k]) and repo.image_object_id(refs[k]) is not None for k in keys)


def import_oci_layout(repo, layout_dir, ref: str | None = None, tag: str | None = None, platform=None,
                      progress: Callable[[int, int, int], None] | None = None) -> ImportResult:
    """Import the image ``ref`` (name or digest; the platform's entry of an index) from an OCI layout.

    ``tag`` (optional) is created last. ``progress(done_layers, total_layers, blob_bytes_read)`` is
    called as layers are read; an exception it raises aborts the import, leaving only complete
    layer streams behind. See the module docstring for what is written and in which order.
    """
    if tag is not None:
        tags.validate_tag(tag)
    versions = filesystem.erofs_versions(repo)
    source = layout.OciLayout(layout_dir)
    resolved = source.resolve(ref, platform)
    manifest_digest = resolved.descriptor.digest
    config_descriptor = layout.parse_descriptor(resolved.document.get("config"), "manifest %s config" % manifest_digest)
    raw_layers = resolved.document.get("layers")
    if not isinstance(raw_layers, list):
        raise FormatError("manifest %s has no layers list" % manifest_digest, path=source.blob_path(manifest_digest))
    layer_descriptors = [layout.parse_descriptor(d, "manifest %s layers[%d]" % (manifest_digest, i)) for i, d in enumerate(raw_layers)]
    is_image = config_descriptor.media_type == IMAGE_CONFIG_MEDIA_TYPE
    config_digest = config_descriptor.digest
    job = _Importer(repo, source, progress, len(layer_descriptors))
    result = ImportResult(manifest_digest=manifest_digest, config_digest=config_digest, is_container_image=is_image, tag=tag)

    existing = _existing_config(repo, config_digest)
    config_bytes = existing.data if existing is not None else source.read_blob(config_descriptor)
    if is_image:
        layer_ids = _layer_ids(parse_json_document(config_bytes, "config %s" % config_digest), config_digest, len(layer_descriptors))
    else:
        layer_ids = tuple(d.digest for d in layer_descriptors)

    entry_lists, layer_refs, fetched, reused = [], [], [], []
    job.report()
    for descriptor, layer_id in zip(layer_descriptors, layer_ids):
        object_id = _existing_layer(repo, layer_id, existing)
        entries = None
        if object_id is not None:
            reused.append(layer_id)
        elif layout.layer_compression(descriptor.media_type) is not None:
            object_id, entries = job.split_layer(descriptor, layer_id, check_diff_id=is_image)
            fetched.append(layer_id)
        elif is_image:
            raise FormatError("layer %s of image %s has media type %r, which is not a tar layer; refusing to import it"
                              % (descriptor.digest, manifest_digest, descriptor.media_type), path=source.path)
        else:
            object_id = job.store_blob_layer(descriptor)
            fetched.append(layer_id)
        result.layer_object_ids[layer_id] = object_id
        layer_refs.append((layer_id, object_id))
        entry_lists.append(entries)
        job.done_layers += 1
        job.report()
    result.layers_fetched, result.layers_reused = tuple(fetched), tuple(reused)

    old_refs = {k: v for k, v in existing.named_refs.items() if is_erofs_ref_key(k)} if existing is not None else {}
    erofs_refs = dict(old_refs)
    wanted = [image_ref_key(v) for v in versions]
    result.erofs_reused = not is_image or (existing is not None and _erofs_in_place(repo, old_refs, wanted))
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
        result.config_object_id = streams.write_config_stream(job.store, config_digest, config_bytes, layer_refs, erofs_refs)

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
        result.manifest_object_id = streams.write_manifest_stream(job.store, manifest_digest, resolved.data, config_digest,
                                                                  result.config_object_id, layer_refs)

    if tag is not None:
        manifest_stream = oci_digest.manifest_stream_name(manifest_digest)
        result.tag_changed = repo.stream_ref_target(tags.tag_ref(tag)) != manifest_stream
        if result.tag_changed:
            tags.tag_image(repo, manifest_digest, tag)
    result.object_count, result.bytes_written = job.store.objects, job.store.bytes
    return result
