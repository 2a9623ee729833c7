# -*- coding: utf-8 -*-
# Copyright: (c) 2026, bootc.composefs maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Hand-built composefs repositories holding OCI images, for the status and image-resolution tests.

Independent of the library under test: object names come from the ``fsverity digest`` oracle,
splitstreams are assembled field by field (``repo_builder.splitstream_bytes``, zstd by the CLI),
EROFS images are made by ``mkcomposefs`` from a dumpfile naming the file objects, and manifest and
config digests are plain ``hashlib.sha256`` of the JSON bytes written. The repository uses sha256
fs-verity because ``mkcomposefs`` writes sha256 digests only; deployments are then named by 64 hex
digits, which the host layer accepts like 128.

Layout written per image (composefs-repo.md §10.2-10.4)::

    objects/..                       file contents, JSON blobs, splitstreams, EROFS images
    streams/oci-layer-<diff_id>      -> layer splitstream (inline headers, one external ref per file)
    streams/oci-config-<digest>      -> config splitstream (named refs: diff_ids, composefs.image.v1,
                                        composefs.image.boot.v1)
    streams/oci-manifest-<digest>    -> manifest splitstream (named refs: config:<digest>, diff_ids)
    images/<plain id>, images/<boot id>
    streams/refs/oci/<encoded tag>   -> ../../oci-manifest-<digest>
"""

import hashlib
import json
import os
import pathlib
import shutil
import struct
import tempfile
from dataclasses import dataclass, field

from ansible_collections.bootc.composefs.tests.unit.builders import repo_builder as rb

CT_LAYER = int.from_bytes(b"ocilayer", "little")
CT_CONFIG = int.from_bytes(b"ociconfg", "little")
CT_MANIFEST = int.from_bytes(b"ocimanif", "little")
MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_LAYER = "application/vnd.oci.image.layer.v1.tar"
VERSION_KEY = "org.opencontainers.image.version"


def sha256(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def json_bytes(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def encode_tag(tag):
    return tag.replace("%", "%25").replace("/", "%2F")


@dataclass
class Layer:
    diff_id: str
    stream_id: str
    file_ids: dict


@dataclass
class Image:
    manifest_digest: str
    config_digest: str
    manifest_json: bytes
    config_json: bytes
    manifest_stream_id: str
    config_stream_id: str
    manifest_blob_id: str
    config_blob_id: str
    plain_id: str
    boot_id: str
    layers: list
    config: dict
    manifest: dict
    closure: set = field(default_factory=set)

    @property
    def file_ids(self):
        return {i for layer in self.layers for i in layer.file_ids.values()}


class ImageRepo:
    """A sha256 composefs repository at ``root`` into which images are written file by file."""

    def __init__(self, root, fsverity_tool, zstd_tool, composefs_oracle):
        self.root = pathlib.Path(root)
        self.builder = rb.RepoBuilder(self.root, "sha256", fsverity_tool)
        self.zstd_tool = zstd_tool
        self.oracle = composefs_oracle

    def entry(self, category, name, object_id):
        """``<category>/<name>`` -> the object, unless it exists already (layers shared between images)."""
        if not os.path.lexists(self.root / category / name):
            self.builder.add_entry(category, name, object_id)

    def object(self, data):
        return self.builder.add_object(data)

    def _stream(self, content_type, size, stream_refs, object_refs, named, chunks):
        records = b"".join(b"%d:%s\0" % (index, name.encode()) for name, index in named)
        return self.object(rb.splitstream_bytes(self.zstd_tool, "sha256", content_type, size,
                                                [bytes.fromhex(i) for i in stream_refs],
                                                [bytes.fromhex(i) for i in object_refs], records, chunks))

    def layer(self, files):
        """A layer of regular files (name -> bytes, every one stored as an external object)."""
        object_refs = []
        chunks = b""
        content = b""
        file_ids = {}
        for name in sorted(files):
            header = ("HDR %s %d\n" % (name, len(files[name]))).encode()
            chunks += struct.pack("<q", -len(header)) + header
            object_id = self.object(files[name])
            file_ids[name] = object_id
            if object_id not in object_refs:
                object_refs.append(object_id)
            chunks += struct.pack("<q", object_refs.index(object_id))
            content += header + files[name]
        diff_id = sha256(content)
        stream_id = self._stream(CT_LAYER, len(content), [], object_refs, [], chunks)
        self.entry("streams", "oci-layer-" + diff_id, stream_id)
        return Layer(diff_id=diff_id, stream_id=stream_id, file_ids=file_ids)

    def erofs(self, layers, extra=""):
        """An EROFS image (by mkcomposefs) of the layers' files, each a metacopy+redirect to its object."""
        lines = ["/ 0 40755 2 0 0 0 0.0 - - -"]
        files = {}
        for layer in layers:
            files.update(layer.file_ids)
        if extra:
            files[extra] = None
        dirs = sorted({"/".join(name.split("/")[:i]) for name in files for i in range(1, name.count("/") + 1)})
        entries = [(d, "dir") for d in dirs] + [(name, files[name]) for name in files]
        for name, object_id in sorted(entries):
            if object_id == "dir":
                lines.append("/%s 0 40755 2 0 0 0 0.0 - - -" % name)
            elif object_id is None:
                lines.append("/%s 0 100644 1 0 0 0 0.0 - - -" % name)
            else:
                lines.append("/%s 4096 100644 1 0 0 0 0.0 %s/%s - %s" % (name, object_id[:2], object_id[2:], object_id))
        work = pathlib.Path(tempfile.mkdtemp(prefix="image-repo-"))
        try:
            dump = work / "image.dump"
            dump.write_text("\n".join(lines) + "\n")
            image = work / "image.erofs"
            self.oracle("mkcomposefs", "--from-file", "--min-version=1", dump, image)
            object_id = self.object(image.read_bytes())
        finally:
            shutil.rmtree(work)
        self.entry("images", object_id, object_id)
        return object_id

    def image(self, files_per_layer, version=None, label_version=None, created="2026-08-01T10:00:00Z",
              architecture="amd64", marker="", erofs_names=None):
        """A pulled container image with plain and boot EROFS images; ``marker`` makes otherwise equal images differ.

        ``erofs_names`` (plain, boot) names the extra file that tells the two EROFS images apart
        (default ``plain<marker>``, ``boot<marker>``): equal names give equal images.
        """
        layers = [self.layer(files) for files in files_per_layer]
        plain_name, boot_name = erofs_names or ("plain" + marker, "boot" + marker)
        plain_id = self.erofs(layers, extra=plain_name)
        boot_id = self.erofs(layers, extra=boot_name)
        labels = {"containers.bootc": "1"}
        if label_version is not None:
            labels[VERSION_KEY] = label_version
        config = {"architecture": architecture, "os": "linux", "created": created, "config": {"Labels": labels},
                  "rootfs": {"type": "layers", "diff_ids": [layer.diff_id for layer in layers]}, "marker": marker}
        config_json = json_bytes(config)
        config_digest = sha256(config_json)
        config_blob = self.object(config_json)
        erofs_refs = [("composefs.image.v1", plain_id), ("composefs.image.boot.v1", boot_id)]
        stream_refs = [layer.stream_id for layer in layers] + [plain_id, boot_id]
        named = [(layer.diff_id, index) for index, layer in enumerate(layers)]
        named += [(key, stream_refs.index(object_id)) for key, object_id in erofs_refs]
        config_stream = self._stream(CT_CONFIG, len(config_json), stream_refs, [config_blob], named, struct.pack("<q", 0))
        self.entry("streams", "oci-config-" + config_digest, config_stream)
        manifest = {"schemaVersion": 2, "mediaType": MEDIA_MANIFEST,
                    "config": {"mediaType": MEDIA_CONFIG, "digest": config_digest, "size": len(config_json)},
                    "layers": [{"mediaType": MEDIA_LAYER, "digest": layer.diff_id, "size": 1} for layer in layers]}
        if version is not None:
            manifest["annotations"] = {VERSION_KEY: version}
        manifest_json = json_bytes(manifest)
        manifest_digest = sha256(manifest_json)
        manifest_blob = self.object(manifest_json)
        stream_refs = [config_stream] + [layer.stream_id for layer in layers]
        named = [("config:" + config_digest, 0)] + [(layer.diff_id, index + 1) for index, layer in enumerate(layers)]
        manifest_stream = self._stream(CT_MANIFEST, len(manifest_json), stream_refs, [manifest_blob], named, struct.pack("<q", 0))
        self.entry("streams", "oci-manifest-" + manifest_digest, manifest_stream)
        image = Image(manifest_digest=manifest_digest, config_digest=config_digest, manifest_json=manifest_json,
                      config_json=config_json, manifest_stream_id=manifest_stream, config_stream_id=config_stream,
                      manifest_blob_id=manifest_blob, config_blob_id=config_blob, plain_id=plain_id, boot_id=boot_id,
                      layers=layers, config=config, manifest=manifest)
        image.closure = ({manifest_stream, manifest_blob, config_stream, config_blob, plain_id, boot_id}
                         | {layer.stream_id for layer in layers} | image.file_ids)
        return image

    def tag(self, tag, manifest_digest):
        self.builder.add_ref("streams", "oci/" + encode_tag(tag), "oci-manifest-" + manifest_digest)

    def bootc_tag(self, manifest_digest):
        self.tag("localhost/bootc-" + manifest_digest, manifest_digest)

    def path_of(self, object_id):
        return self.root / "objects" / object_id[:2] / object_id[2:]
