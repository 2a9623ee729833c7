# -*- coding: utf-8 -*-
# Copyright: (c) 2026, bootc.composefs maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""OCI image layout directories (``oci:`` in skopeo's words): index, platform choice, verified blobs.

Layer: oci. Upstream: composefs-rs ``crates/composefs-oci/src/oci_layout.rs`` (which reads layouts
with the ``ocidir`` crate) and ``layer.rs`` (``decompress_async``, ``is_tar_media_type``); format:
the OCI image-layout and image-index specifications.

Directory::

    oci-layout                     {"imageLayoutVersion": "1.0.0"}
    index.json                     image index: "manifests" = descriptors (digest, size, mediaType,
                                   annotations["org.opencontainers.image.ref.name"] = the tag)
    blobs/<algorithm>/<hex>        every blob, named by its content digest

Choosing the manifest (:meth:`OciLayout.resolve`):

1. ``ref`` = a digest (``sha256:...``, optionally ``@``-prefixed): the descriptor with that digest
   in ``index.json`` (or inside an image index it lists); ``ref`` = a name: the descriptor whose
   ``org.opencontainers.image.ref.name`` annotation equals it; no ``ref``: the only descriptor, or,
   when there are several, the one matching the platform.
2. An image index (OCI index or Docker manifest list, told by media type or by a ``manifests``
   key) is descended: the first entry whose ``platform`` matches (os, architecture, and variant
   when one is asked for) wins. The default platform is ``linux`` and the Go architecture name of
   the host (``platform.machine()``: ``x86_64`` -> ``amd64``, ``aarch64`` -> ``arm64``...).

Every blob is checked while it is read: its size must be the descriptor's and its sha256 the
descriptor's digest (:class:`VerifiedBlob`); a mismatch names the blob file and both values.

:class:`LayoutSource` is an image of a layout as an image source (``source.py``) for the
importer: the manifest and config blobs as they are (``form`` exact, the manifest digest is the
descriptor's), and each layer blob, compressed as its media type says (the importer decompresses
it, ``layer_reader.py``).
"""

from __future__ import annotations

import io
import os
import platform as _platform
from typing import Callable, NamedTuple

from ansible_collections.bootc.composefs.plugins.module_utils.errors import ComposefsError, DanglingRefError, FormatError
from ansible_collections.bootc.composefs.plugins.module_utils.oci import digest as oci_digest
from ansible_collections.bootc.composefs.plugins.module_utils.oci.image import parse_json_document
from ansible_collections.bootc.composefs.plugins.module_utils.oci.source import (
    Descriptor,
    ImageSource,
    SourceLayer,
    describe_image,
    parse_descriptor,
)

__all__ = [
    "MEDIA_TYPE_INDEX",
    "MEDIA_TYPE_MANIFEST",
    "REF_NAME_ANNOTATION",
    "Platform",
    "Descriptor",
    "ResolvedManifest",
    "VerifiedBlob",
    "OciLayout",
    "LayoutSource",
    "parse_platform",
    "host_platform",
]

MEDIA_TYPE_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_TYPE_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_TYPE_DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MEDIA_TYPE_DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
INDEX_MEDIA_TYPES = (MEDIA_TYPE_INDEX, MEDIA_TYPE_DOCKER_LIST)
REF_NAME_ANNOTATION = "org.opencontainers.image.ref.name"
LAYOUT_FILE = "oci-layout"
INDEX_FILE = "index.json"

# platform.machine() -> (GOARCH, variant) as container registries name platforms
GOARCH_BY_MACHINE = {
    "x86_64": ("amd64", ""), "amd64": ("amd64", ""),
    "aarch64": ("arm64", ""), "arm64": ("arm64", ""),
    "armv7l": ("arm", "v7"), "armv7": ("arm", "v7"), "armv6l": ("arm", "v6"), "armv5tel": ("arm", "v5"),
    "i386": ("386", ""), "i486": ("386", ""), "i586": ("386", ""), "i686": ("386", ""),
    "ppc64le": ("ppc64le", ""), "ppc64": ("ppc64", ""), "s390x": ("s390x", ""),
    "riscv64": ("riscv64", ""), "loongarch64": ("loong64", ""), "mips64": ("mips64", ""),
}
# architecture -> variant a platform without one means (containerd's normalisation)
DEFAULT_VARIANTS = {"arm64": "v8", "arm": "v7"}

# --- safety limits ---------------------------------------------------------------------------------
MAX_JSON_BLOB_BYTES = 16 << 20  # index, manifest, config: JSON of a few KiB
MAX_INDEX_DEPTH = 4  # nested image indexes followed before giving up
READ_CHUNK_BYTES = 1 << 20
PROGRESS_STEP_BYTES = 8 << 20  # how often a blob read reports progress


class Platform(NamedTuple):
    """An OCI platform: ``os``, ``architecture`` (Go names) and optional ``variant``."""

    os: str
    architecture: str
    variant: str = ""

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)


class ResolvedManifest(NamedTuple):
    """The chosen image manifest: its descriptor, raw (verified) bytes and parsed JSON."""

    descriptor: Descriptor
    data: bytes
    document: dict


def parse_platform(text: str) -> Platform:
    """Parse ``os/arch[/variant]`` or ``arch`` (os ``linux``); ValueError for anything else."""
    parts = text.split("/") if isinstance(text, str) else []
    if len(parts) == 1 and parts[0]:
        return Platform("linux", parts[0])
    if len(parts) in (2, 3) and all(parts):
        return Platform(*parts)
    raise ValueError("platform %r is not os/architecture[/variant] (e.g. linux/amd64 or linux/arm64/v8)" % (text,))


def host_platform() -> Platform:
    """Return ``linux/<GOARCH>[/variant]`` of this machine."""
    machine = _platform.machine().lower()
    architecture, variant = GOARCH_BY_MACHINE.get(machine, (machine, ""))
    return Platform("linux", architecture, variant)


def _platform_matches(found, wanted: Platform) -> bool:
    if not isinstance(found, dict):
        return False
    if found.get("os") != wanted.os or found.get("architecture") != wanted.architecture:
        return False
    if not wanted.variant:
        return True
    default = DEFAULT_VARIANTS.get(wanted.architecture, "")
    return (found.get("variant") or default) == wanted.variant


class VerifiedBlob(io.RawIOBase):
    """Read a blob file while hashing it; :meth:`finish` reads the rest and checks size and digest.

    ``on_progress(bytes_read)`` is called about every ``PROGRESS_STEP_BYTES`` and at the end; an
    exception it raises stops the read (and the import) at that point.
    """

    def __init__(self, path: str, descriptor: Descriptor, on_progress: Callable[[int], None] | None = None) -> None:
        super().__init__()
        self.path = path
        self.descriptor = descriptor
        self._hasher = oci_digest.new_hasher(descriptor.digest, "blob digest")
        self._on_progress = on_progress
        self._next_report = PROGRESS_STEP_BYTES
        self.bytes_read = 0
        try:
            self._file = open(path, "rb")  # pylint: disable=consider-using-with
        except FileNotFoundError:
            raise DanglingRefError("the image layout has no blob %s; copy the image again" % descriptor.digest,
                                   path=path) from None
        except OSError as err:
            raise ComposefsError("cannot open blob %s: %s" % (descriptor.digest, err.strerror), path=path) from None

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        count = self._file.readinto(buffer)
        if count:
            self._hasher.update(memoryview(buffer)[:count])
            self.bytes_read += count
            if self.bytes_read > self.descriptor.size:
                raise ComposefsError("blob %s is larger than the %d bytes its descriptor says; the layout is corrupted"
                                     % (self.descriptor.digest, self.descriptor.size), path=self.path)
            if self._on_progress is not None and self.bytes_read >= self._next_report:
                self._next_report = self.bytes_read + PROGRESS_STEP_BYTES
                self._on_progress(self.bytes_read)
        return count or 0

    def finish(self) -> None:
        """Read whatever is left, then check size and digest; ComposefsError naming both values on a mismatch."""
        while self.read(READ_CHUNK_BYTES):
            pass
        if self.bytes_read != self.descriptor.size:
            raise ComposefsError("blob %s is %d bytes, its descriptor says %d; the layout is corrupted: copy the image "
                                 "again" % (self.descriptor.digest, self.bytes_read, self.descriptor.size), path=self.path)
        actual = "%s:%s" % (self._hasher.name, self._hasher.hexdigest())
        oci_digest.check_digest(actual, self.descriptor.digest, "blob", path=self.path)
        if self._on_progress is not None:
            self._on_progress(self.bytes_read)

    def close(self) -> None:
        if not self.closed:
            self._file.close()
        super().close()


class OciLayout:
    """An OCI image layout directory, with its ``index.json`` loaded."""

    def __init__(self, path) -> None:
        self.path = os.fspath(path)
        marker = os.path.join(self.path, LAYOUT_FILE)
        try:
            with open(marker, "rb") as handle:
                layout = parse_json_document(handle.read(MAX_JSON_BLOB_BYTES + 1), "oci-layout file")
        except FileNotFoundError:
            raise ComposefsError("not an OCI image layout (no oci-layout file); copy the image with 'skopeo copy ... "
                                 "oci:DIR:TAG' first", path=self.path) from None
        except FormatError as err:
            err.with_path(marker)
            raise
        if layout.get("imageLayoutVersion") != "1.0.0":
            raise FormatError("imageLayoutVersion %r is not 1.0.0" % (layout.get("imageLayoutVersion"),), path=marker)
        index_path = os.path.join(self.path, INDEX_FILE)
        try:
            with open(index_path, "rb") as handle:
                self.index = parse_json_document(handle.read(MAX_JSON_BLOB_BYTES + 1), "index.json")
        except FileNotFoundError:
            raise ComposefsError("OCI image layout has no index.json", path=self.path) from None
        except FormatError as err:
            err.with_path(index_path)
            raise
        manifests = self.index.get("manifests")
        if not isinstance(manifests, list):
            raise FormatError("index.json has no \"manifests\" list", path=index_path)
        self.descriptors = tuple(parse_descriptor(d, "index.json manifests[%d]" % i) for i, d in enumerate(manifests))

    def blob_path(self, digest: str) -> str:
        """Return the path of the blob ``digest`` names."""
        parsed = oci_digest.parse_digest(digest)
        return os.path.join(self.path, "blobs", parsed.algorithm, parsed.hex)

    def open_blob(self, descriptor: Descriptor, on_progress=None) -> VerifiedBlob:
        """Open a blob for a verified read (see :class:`VerifiedBlob`)."""
        return VerifiedBlob(self.blob_path(descriptor.digest), descriptor, on_progress)

    def read_blob(self, descriptor: Descriptor, max_size: int = MAX_JSON_BLOB_BYTES) -> bytes:
        """Return a small blob's verified bytes (manifests, configs, indexes)."""
        if descriptor.size > max_size:
            raise FormatError("blob %s claims %d bytes, more than the %d a manifest or config may have"
                              % (descriptor.digest, descriptor.size, max_size), path=self.blob_path(descriptor.digest))
        with self.open_blob(descriptor) as blob:
            data = blob.read(descriptor.size)
            blob.finish()
        return data

    def _find_by_digest(self, wanted: str, descriptors, depth: int) -> Descriptor | None:
        for descriptor in descriptors:
            if descriptor.digest == wanted:
                return descriptor
        if depth >= MAX_INDEX_DEPTH:
            return None
        for descriptor in descriptors:
            if descriptor.media_type in INDEX_MEDIA_TYPES:
                children = self._index_children(descriptor, self.read_blob(descriptor))
                found = self._find_by_digest(wanted, children, depth + 1)
                if found is not None:
                    return found
        return None

    def _index_children(self, descriptor: Descriptor, data: bytes) -> tuple:
        document = parse_json_document(data, "image index %s" % descriptor.digest)
        manifests = document.get("manifests")
        if not isinstance(manifests, list):
            raise FormatError("image index %s has no manifests list" % descriptor.digest, path=self.blob_path(descriptor.digest))
        return tuple(parse_descriptor(d, "image index %s manifests[%d]" % (descriptor.digest, i)) for i, d in enumerate(manifests))

    def _by_platform(self, descriptors, wanted: Platform, what: str) -> Descriptor:
        for descriptor in descriptors:
            if _platform_matches(descriptor.platform, wanted):
                return descriptor
        if len(descriptors) == 1 and descriptors[0].platform is None:
            return descriptors[0]
        available = sorted({str(Platform(d.platform.get("os", "?"), d.platform.get("architecture", "?"), d.platform.get("variant", "")))
                            for d in descriptors if d.platform})
        raise ComposefsError("%s has no manifest for platform %s (available: %s); pass the platform to import"
                             % (what, wanted, ", ".join(available) or "none declared"), path=self.path)

    def resolve(self, ref: str | None = None, platform: str | Platform | None = None) -> ResolvedManifest:
        """Return the image manifest ``ref`` and ``platform`` select (see the module docstring)."""
        wanted = platform if isinstance(platform, Platform) else parse_platform(platform) if platform else host_platform()
        text = ref[1:] if isinstance(ref, str) and ref.startswith("@") else ref
        if text is not None and oci_digest.is_digest(text):
            descriptor = self._find_by_digest(text, self.descriptors, 0)
            if descriptor is None:
                raise DanglingRefError("the image layout has no manifest or index %s" % text, path=self.path)
        elif ref is not None:
            named = [d for d in self.descriptors if d.annotations.get(REF_NAME_ANNOTATION) == ref]
            if not named:
                known = sorted({d.annotations.get(REF_NAME_ANNOTATION) for d in self.descriptors} - {None})
                raise DanglingRefError("the image layout has no image named %r (names: %s)" % (ref, ", ".join(known) or "none"),
                                       path=self.path)
            if len({d.digest for d in named}) > 1:
                raise ComposefsError("the image layout names %d different manifests %r; pass a digest instead"
                                     % (len(named), ref), path=self.path)
            descriptor = named[0]
        elif len(self.descriptors) == 1:
            descriptor = self.descriptors[0]
        elif not self.descriptors:
            raise ComposefsError("the image layout's index.json lists no image", path=self.path)
        else:
            descriptor = self._by_platform(self.descriptors, wanted, "index.json")
        return self._descend(descriptor, wanted, 0)

    def _descend(self, descriptor: Descriptor, wanted: Platform, depth: int) -> ResolvedManifest:
        data = self.read_blob(descriptor)
        document = parse_json_document(data, "blob %s" % descriptor.digest)
        media_type = descriptor.media_type or document.get("mediaType") or ""
        if media_type in INDEX_MEDIA_TYPES or (not media_type and "manifests" in document):
            if depth >= MAX_INDEX_DEPTH:
                raise FormatError("image indexes nested more than %d deep" % MAX_INDEX_DEPTH, path=self.path)
            children = self._index_children(descriptor, data)
            child = self._by_platform(children, wanted, "image index %s" % descriptor.digest)
            return self._descend(child, wanted, depth + 1)
        if "config" not in document or "layers" not in document:
            raise FormatError("blob %s (media type %r) is neither an image manifest nor an index"
                              % (descriptor.digest, media_type), path=self.blob_path(descriptor.digest))
        return ResolvedManifest(descriptor, data, document)


class LayoutSource(ImageSource):
    """The image ``ref`` (name or digest; the platform's entry of an index) of a layout, as an image source."""

    def __init__(self, layout_dir, ref: str | None = None, platform=None) -> None:
        self.layout = OciLayout(layout_dir)
        self.name = "oci:%s" % self.layout.path
        resolved = self.layout.resolve(ref, platform)
        digest = resolved.descriptor.digest
        config = parse_descriptor(resolved.document.get("config"), "manifest %s config" % digest)
        try:
            self.image = describe_image("%s (manifest %s)" % (self.name, digest), resolved.data, self.layout.read_blob(config),
                                        self._layer)
        except ComposefsError as err:
            err.with_path(self.layout.blob_path(digest))
            raise

    @staticmethod
    def _layer(descriptor: Descriptor, layer_id: str, _is_image: bool) -> SourceLayer:
        return SourceLayer(layer_id, descriptor.media_type, descriptor.digest, descriptor.size)

    def open_layer(self, layer: SourceLayer, on_progress=None) -> VerifiedBlob:
        """A :class:`VerifiedBlob` of the layer's blob file."""
        descriptor = Descriptor(layer.media_type, layer.fetch_digest, layer.fetch_size, {}, None)
        return VerifiedBlob(self.layout.blob_path(layer.fetch_digest), descriptor, on_progress)
