# -*- coding: utf-8 -*-
"""oci/importer: OCI layouts imported into real repositories, checked with oracles.

Layer streams must reassemble to the tar the gzip/zstd tools decompress (sha256 = diff_id);
manifest/config objects must be the blob files byte for byte (``sha256sum``); entries and refs
must have the spec's link texts; object names must be what ``fsverity digest`` computes; the V1
EROFS must be byte-identical to ``mkcomposefs --min-version=1`` run on the same layers extracted
by GNU tar (``oci_testimages.extract_merged``), and reference exactly the objects
``composefs-info objects`` lists.
"""

import hashlib
import json
import os
import pathlib

import pytest

from ansible_collections.bootc.composefs.plugins.module_utils.errors import ComposefsError, FormatError
from ansible_collections.bootc.composefs.plugins.module_utils.formats import fsverity, splitstream
from ansible_collections.bootc.composefs.plugins.module_utils.oci import importer, layout
from ansible_collections.bootc.composefs.tests.unit.plugins.module_utils.oci import oci_testimages as images

IMAGE_KEY_V1 = "composefs.image.v1"
IMAGE_KEY_V2 = "composefs.image"


def _reassemble(repo_path, stream_name):
    """Reassemble a stream from the files on disk (the splitstream parser is the only library code used)."""
    target = os.readlink(os.path.join(repo_path, "streams", stream_name))
    stream = splitstream.parse_splitstream(pathlib.Path(repo_path, "streams", target).read_bytes())
    pieces = []
    for chunk in splitstream.iter_chunks(stream):
        if isinstance(chunk, bytes):
            pieces.append(chunk)
        else:
            digest = stream.object_refs[chunk].hex()
            pieces.append(pathlib.Path(repo_path, "objects", digest[:2], digest[2:]).read_bytes())
    return stream, b"".join(pieces)


def _sha256sum(path):
    return "sha256:" + images.run(["sha256sum", path]).stdout.split()[0].decode()


def _link(repo_path, *parts):
    return os.readlink(os.path.join(repo_path, *parts))


def _object_link(object_id):
    return "../objects/%s/%s" % (object_id[:2], object_id[2:])


@pytest.mark.parametrize("name", ["gzip", "none", "zstd", "mixed", "bootc"])
@pytest.mark.parametrize("algorithm", [fsverity.SHA256, fsverity.SHA512], ids=["sha256", "sha512"])
def test_layer_streams_reassemble_to_the_decompressed_blobs(layouts, make_repo, name, algorithm):
    layout_dir, info = layouts.get(name)
    repo = make_repo(algorithm)
    result = importer.import_oci_layout(repo, layout_dir, ref=None)
    manifest = images.blob_path(layout_dir, info["manifest_digest"]).read_bytes()
    descriptors = json.loads(manifest)["layers"]
    assert result.layers_fetched == tuple(info["diff_ids"]) and result.layers_reused == ()
    for descriptor, diff_id in zip(descriptors, info["diff_ids"]):
        tar_bytes = images.decompress_blob(images.blob_path(layout_dir, descriptor["digest"]), descriptor["mediaType"])
        stream, data = _reassemble(repo.path, "oci-layer-" + diff_id)
        assert data == tar_bytes
        assert stream.content_type == splitstream.CONTENT_TYPE_OCI_LAYER
        assert stream.stream_size == len(tar_bytes)
        assert stream.named_refs == {}
        path = pathlib.Path(repo.path) / "check.tar"
        path.write_bytes(data)
        assert _sha256sum(path) == diff_id


@pytest.mark.parametrize("algorithm", [fsverity.SHA256, fsverity.SHA512], ids=["sha256", "sha512"])
def test_entries_refs_and_objects(layouts, make_repo, algorithm):
    layout_dir, info = layouts.get("gzip")
    repo = make_repo(algorithm)
    result = importer.import_oci_layout(repo, layout_dir, ref="multi", tag="example.com/multi:1")
    md, cd = info["manifest_digest"], info["config_digest"]
    assert (result.manifest_digest, result.config_digest) == (md, cd)
    # manifest and config objects are the blob files, byte for byte
    for stream_name, digest in (("oci-manifest-" + md, md), ("oci-config-" + cd, cd)):
        stream, data = _reassemble(repo.path, stream_name)
        assert data == images.blob_path(layout_dir, digest).read_bytes()
        assert len(stream.object_refs) == 1
        object_id = stream.object_refs[0].hex()
        assert _sha256sum(os.path.join(repo.path, "objects", object_id[:2], object_id[2:])) == digest
    # exact link texts (spec 5.1, 10.4)
    assert _link(repo.path, "streams", "refs", "oci", "example.com%2Fmulti:1") == "../../oci-manifest-" + md
    assert _link(repo.path, "streams", "oci-manifest-" + md) == _object_link(result.manifest_object_id)
    assert _link(repo.path, "streams", "oci-config-" + cd) == _object_link(result.config_object_id)
    for diff_id in info["diff_ids"]:
        assert _link(repo.path, "streams", "oci-layer-" + diff_id) == _object_link(result.layer_object_ids[diff_id])
    assert _link(repo.path, "images", result.image_object_id) == _object_link(result.image_object_id)
    assert sorted(os.listdir(os.path.join(repo.path, "images"))) == [result.image_object_id]
    # named refs of config and manifest
    config_stream, _data = _reassemble(repo.path, "oci-config-" + cd)
    assert config_stream.content_type == splitstream.CONTENT_TYPE_OCI_CONFIG
    assert {k: v.hex() for k, v in config_stream.named_refs.items()} == dict(result.layer_object_ids, **{IMAGE_KEY_V1: result.image_object_id})
    assert [r.hex() for r in config_stream.stream_refs] == [result.layer_object_ids[d] for d in info["diff_ids"]] + [result.image_object_id]
    manifest_stream, _data = _reassemble(repo.path, "oci-manifest-" + md)
    assert manifest_stream.content_type == splitstream.CONTENT_TYPE_OCI_MANIFEST
    assert {k: v.hex() for k, v in manifest_stream.named_refs.items()} == dict(result.layer_object_ids, **{"config:" + cd: result.config_object_id})
    assert manifest_stream.stream_refs[0].hex() == result.config_object_id
    # every object's name is its fs-verity digest
    names = images.fsverity_names(repo.path, algorithm.name)
    assert names and all(name == digest for name, digest in names.items())
    assert result.object_count >= len(names)


def _our_image(repo, result):
    return pathlib.Path(repo.path, "objects", result.image_object_id[:2], result.image_object_id[2:]).read_bytes()


def _layer_tars(layout_dir, info):
    return [images.decompress_blob(images.blob_path(layout_dir, d["digest"]), d["mediaType"])
            for d in json.loads(info["manifest"])["layers"]]


@pytest.mark.parametrize("name", ["plain", "boot"])
def test_erofs_is_byte_identical_to_mkcomposefs_on_the_extracted_layers(layouts, make_repo, composefs_oracle, tmp_path, name):
    layout_dir, info = layouts.get(name)
    repo = make_repo()
    result = importer.import_oci_layout(repo, layout_dir)
    ours = _our_image(repo, result)
    source = images.extract_merged(tmp_path / "merged", _layer_tars(layout_dir, info), tmp_path)
    theirs, stored = images.mkcomposefs_image(composefs_oracle, source, tmp_path)
    assert ours == theirs
    referenced = images.composefs_info_objects(composefs_oracle, ours, tmp_path)
    assert referenced == stored
    assert all(os.path.exists(os.path.join(repo.path, "objects", o[:2], o[2:])) for o in referenced)
    assert images.fsverity_names(repo.path)[result.image_object_id] == result.image_object_id


@pytest.mark.parametrize("name", ["gzip", "zstd", "bootc"])
def test_erofs_with_hard_links_against_mkcomposefs(layouts, make_repo, composefs_oracle, tmp_path, name):
    """mkcomposefs's directory mode drops hard links (see oci_testimages.expand_hardlinks): compare dumps with
    our hard links expanded, and bytes with mkcomposefs --from-file given its own dump plus the on-disk links."""
    layout_dir, info = layouts.get(name)
    repo = make_repo()
    result = importer.import_oci_layout(repo, layout_dir)
    ours = _our_image(repo, result)
    source = images.extract_merged(tmp_path / "merged", _layer_tars(layout_dir, info), tmp_path)
    theirs, stored = images.mkcomposefs_image(composefs_oracle, source, tmp_path)
    our_dump = images.composefs_info_dump(composefs_oracle, ours, tmp_path, "ours.img")
    their_dump = images.composefs_info_dump(composefs_oracle, theirs, tmp_path, "theirs.img")
    assert b" @" in our_dump and b" @" not in their_dump
    assert images.expand_hardlinks(our_dump) == their_dump
    linked = images.restore_hardlinks(their_dump, source)
    assert images.mkcomposefs_from_dump(composefs_oracle, linked, tmp_path) == ours
    assert images.composefs_info_objects(composefs_oracle, ours, tmp_path) == stored


def test_importing_twice_reuses_everything(layouts, make_repo):
    layout_dir, info = layouts.get("mixed")
    repo = make_repo()
    first = importer.import_oci_layout(repo, layout_dir, tag="t")
    before = images.repo_snapshot(repo.path)
    second = importer.import_oci_layout(repo, layout_dir, tag="t")
    assert images.repo_snapshot(repo.path) == before
    assert second.layers_reused == tuple(info["diff_ids"]) and second.layers_fetched == ()
    assert second.manifest_reused and second.config_reused and second.erofs_reused and not second.tag_changed
    assert not second.changed and first.changed
    assert (second.object_count, second.bytes_written) == (0, 0)
    assert second.stream_object_ids == first.stream_object_ids
    assert second.image_object_id == first.image_object_id


def test_layers_shared_between_images_are_reused(layouts, make_repo):
    repo = make_repo()
    layout_dir, info = layouts.get("index")
    amd = importer.import_oci_layout(repo, layout_dir, platform="linux/amd64")
    arm = importer.import_oci_layout(repo, layout_dir, platform="linux/arm64")
    assert amd.manifest_digest == info["amd64"]["manifest_digest"]
    assert arm.manifest_digest == info["arm64"]["manifest_digest"]
    assert arm.layers_reused == (info["arm64"]["diff_ids"][0],)
    assert arm.layers_fetched == (info["arm64"]["diff_ids"][1],)


def test_image_index_default_platform_is_the_host(layouts, make_repo):
    repo = make_repo()
    layout_dir, info = layouts.get("index")
    host = layout.host_platform()
    if host.architecture not in ("amd64", "arm64"):
        with pytest.raises(ComposefsError, match="no manifest for platform"):
            importer.import_oci_layout(repo, layout_dir, ref="multiarch")
        return
    result = importer.import_oci_layout(repo, layout_dir, ref="multiarch")
    assert result.manifest_digest == info[host.architecture]["manifest_digest"]
    with pytest.raises(ComposefsError, match="linux/s390x"):
        importer.import_oci_layout(repo, layout_dir, ref="multiarch", platform="linux/s390x")
    by_digest = importer.import_oci_layout(repo, layout_dir, ref="@" + info["arm64"]["manifest_digest"])
    assert by_digest.manifest_digest == info["arm64"]["manifest_digest"]


def test_skopeo_reads_the_same_manifest_digest(layouts, make_repo):
    layout_dir, info = layouts.get("gzip")
    inspected = images.run(["skopeo", "inspect", "--raw", "oci:%s:multi" % layout_dir]).stdout
    assert inspected == info["manifest"]
    result = importer.import_oci_layout(make_repo(), layout_dir, ref="multi")
    assert result.manifest_digest == "sha256:" + hashlib.sha256(inspected).hexdigest()


def _entries(repo_path, kind):
    base = pathlib.Path(repo_path, kind)
    return sorted(p.name for p in base.iterdir() if p.name != "refs") if base.exists() else []


def _assert_no_dangling_entries(repo_path):
    for kind in ("streams", "images"):
        for name in _entries(repo_path, kind):
            assert pathlib.Path(repo_path, kind, name).resolve().is_file(), (kind, name)


@pytest.mark.parametrize("name, what", [("gzip", "layer"), ("none", "layer"), ("zstd", "layer"), ("gzip", "config"),
                                        ("gzip", "manifest")])
def test_corrupted_blob_is_refused_and_nothing_names_it(layouts, make_repo, tmp_path, name, what):
    layout_dir, info = layouts.get(name)
    copy = tmp_path / "copy"
    images.run(["cp", "-a", layout_dir, str(copy)])
    digest = {"layer": info["layers"][1]["digest"], "config": info["config_digest"], "manifest": info["manifest_digest"]}[what]
    path = images.blob_path(copy, digest)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    repo = make_repo()
    with pytest.raises(ComposefsError) as caught:
        importer.import_oci_layout(repo, str(copy), ref="multi", tag="t")
    message = str(caught.value)
    assert "not the expected %s" % digest in message and caught.value.partial_result["expected_digest"] == digest
    assert caught.value.partial_result["actual_digest"] in message
    assert not (pathlib.Path(repo.path) / "streams" / "refs").exists()
    names = _entries(repo.path, "streams")
    assert not any(n.startswith(("oci-config-", "oci-manifest-")) for n in names)
    if what == "layer":
        assert names == ["oci-layer-" + info["diff_ids"][0]]
    _assert_no_dangling_entries(repo.path)


def test_diff_id_mismatch_is_refused(layouts, make_repo, tmp_path):
    _layout_dir, info = layouts.get("gzip")
    tars = list(info["tars"])
    bad = images.write_layout_image(str(tmp_path / "bad"), tars, tag="bad")
    config = json.loads(bad["config"])
    config["rootfs"]["diff_ids"][0] = "sha256:" + "ab" * 32
    fixed = images.write_layout_image(str(tmp_path / "bad"), tars, tag="bad",
                                      config_bytes=json.dumps(config).encode())
    repo = make_repo()
    with pytest.raises(ComposefsError, match="sha256:abab.*|.*not the expected sha256:abab"):
        importer.import_oci_layout(repo, str(tmp_path / "bad"), ref="bad")
    assert fixed["diff_ids"][0] != config["rootfs"]["diff_ids"][0]
    assert _entries(repo.path, "streams") == []


def test_interrupted_import_leaves_complete_entries_only_and_resumes(layouts, make_repo):
    layout_dir, info = layouts.get("gzip")
    repo = make_repo()
    calls = []

    def progress(done, total, nbytes):
        calls.append((done, total, nbytes))
        if done == 2:
            raise KeyboardInterrupt("stop")

    with pytest.raises(KeyboardInterrupt):
        importer.import_oci_layout(repo, layout_dir, ref="multi", tag="t", progress=progress)
    assert calls[0] == (0, 3, 0) and calls[-1][:2] == (2, 3)
    assert [c[2] for c in calls] == sorted(c[2] for c in calls)
    assert _entries(repo.path, "streams") == sorted("oci-layer-" + d for d in info["diff_ids"][:2])
    assert not (pathlib.Path(repo.path) / "streams" / "refs").exists()
    _assert_no_dangling_entries(repo.path)
    for diff_id in info["diff_ids"][:2]:
        stream, _data = _reassemble(repo.path, "oci-layer-" + diff_id)
        for ref in stream.object_refs:
            assert pathlib.Path(repo.path, "objects", ref.hex()[:2], ref.hex()[2:]).is_file()
    resumed = importer.import_oci_layout(repo, layout_dir, ref="multi", tag="t")
    assert resumed.layers_reused == tuple(info["diff_ids"][:2]) and resumed.layers_fetched == (info["diff_ids"][2],)
    assert _link(repo.path, "streams", "refs", "oci", "t") == "../../oci-manifest-" + info["manifest_digest"]


def test_progress_mid_layer_abort(layouts, make_repo):
    layout_dir, _info = layouts.get("none")
    repo = make_repo()

    def progress(done, _total, nbytes):
        if done == 0 and nbytes > 0:
            raise RuntimeError("abort inside the first layer")

    with pytest.raises(RuntimeError):
        importer.import_oci_layout(repo, layout_dir, progress=progress)
    assert _entries(repo.path, "streams") == [] and _entries(repo.path, "images") == []


@pytest.mark.parametrize("default, extra, keys", [
    (2, (), [IMAGE_KEY_V2]),
    (1, (2,), [IMAGE_KEY_V2, IMAGE_KEY_V1]),
    (2, (1,), [IMAGE_KEY_V2, IMAGE_KEY_V1]),
])
def test_repositories_asking_for_v2_images(layouts, make_repo, composefs_oracle, tmp_path, default, extra, keys):
    layout_dir, _info = layouts.get("gzip")
    repo = make_repo(erofs_default=default, erofs_extra=extra)
    result = importer.import_oci_layout(repo, layout_dir)
    assert sorted(result.erofs_refs) == sorted(keys)
    assert result.image_object_id == result.erofs_refs[IMAGE_KEY_V1 if default == 1 else IMAGE_KEY_V2]
    objects = set()
    for key in keys:
        data = pathlib.Path(repo.path, "objects", result.erofs_refs[key][:2], result.erofs_refs[key][2:]).read_bytes()
        objects.add(frozenset(images.composefs_info_objects(composefs_oracle, data, tmp_path, key + ".img")))
        assert pathlib.Path(repo.path, "images", result.erofs_refs[key]).is_symlink()
    assert len(objects) == 1  # V1 and V2 name the same file objects
    assert importer.import_oci_layout(repo, layout_dir).changed is False


def test_v0_default_repository_is_refused(layouts, make_repo):
    layout_dir, _info = layouts.get("gzip")
    with pytest.raises(ComposefsError, match="V0"):
        importer.import_oci_layout(make_repo(erofs_default=0), layout_dir)


def test_unknown_layer_media_type_is_refused(layouts, make_repo, tmp_path):
    _layout_dir, info = layouts.get("gzip")
    images.write_layout_image(str(tmp_path / "odd"), info["tars"], compression="none", tag="odd",
                              layer_media_types=[images.ocigen.MEDIA_LAYER_TAR, "application/x-foo", images.ocigen.MEDIA_LAYER_TAR])
    repo = make_repo()
    with pytest.raises(FormatError, match="application/x-foo"):
        importer.import_oci_layout(repo, str(tmp_path / "odd"))
    _assert_no_dangling_entries(repo.path)


def test_artifact_is_stored_without_erofs(make_repo, tmp_path):
    blobs = [b"artifact payload " * 10, images.content(5000, 41)]
    info = images.write_layout_image(str(tmp_path / "art"), blobs, compression="none", tag="art",
                                     layer_media_types=["application/vnd.example.text", "application/octet-stream"],
                                     config_media_type="application/vnd.example.config+json", config_bytes=b"{}")
    repo = make_repo()
    result = importer.import_oci_layout(repo, str(tmp_path / "art"), tag="art")
    assert not result.is_container_image and result.image_object_id is None and result.erofs_refs == {}
    layer_digests = [d["digest"] for d in info["layers"]]
    assert list(result.layer_object_ids) == layer_digests
    for digest, blob in zip(layer_digests, blobs):
        stream, data = _reassemble(repo.path, "oci-layer-" + digest)
        assert stream.content_type == splitstream.CONTENT_TYPE_OCI_BLOB and data == blob and len(stream.object_refs) == 1
    assert _entries(repo.path, "images") == []
    assert importer.import_oci_layout(repo, str(tmp_path / "art"), tag="art").changed is False


def test_layout_errors(tmp_path, make_repo, layouts):
    repo = make_repo()
    with pytest.raises(ComposefsError, match="oci-layout"):
        importer.import_oci_layout(repo, str(tmp_path))
    layout_dir, _info = layouts.get("gzip")
    with pytest.raises(ComposefsError, match="no image named 'nope'"):
        importer.import_oci_layout(repo, layout_dir, ref="nope")
    with pytest.raises(ComposefsError, match="cannot be stored|reserved"):
        importer.import_oci_layout(repo, layout_dir, tag="@bad")


def test_layer_with_a_long_trailer_reassembles(make_repo, tmp_path):
    """Zero records after the end-of-archive marker (more than one inline event) stay in the layer stream."""
    tar_bytes = images.build_tars(images.boot_layers(with_uki=False))[0] + bytes(3 << 20)
    info = images.write_layout_image(str(tmp_path / "l"), [tar_bytes], compression="gzip", tag="t")
    repo = make_repo()
    importer.import_oci_layout(repo, str(tmp_path / "l"))
    _stream, data = _reassemble(repo.path, "oci-layer-" + info["diff_ids"][0])
    assert data == images.decompress_blob(images.blob_path(str(tmp_path / "l"), info["layers"][0]["digest"]),
                                          info["layers"][0]["mediaType"])


def test_sha512_content_digests_are_refused(layouts, make_repo, tmp_path):
    layout_dir, info = layouts.get("none")
    copy = tmp_path / "copy"
    images.run(["cp", "-a", layout_dir, str(copy)])
    manifest = images.blob_path(copy, info["manifest_digest"]).read_bytes()
    sha512 = hashlib.sha512(manifest).hexdigest()
    (copy / "blobs" / "sha512").mkdir()
    (copy / "blobs" / "sha512" / sha512).write_bytes(manifest)
    index = json.loads((copy / "index.json").read_text())
    index["manifests"][0]["digest"] = "sha512:" + sha512
    (copy / "index.json").write_text(json.dumps(index))
    repo = make_repo()
    with pytest.raises(ComposefsError, match="sha512.*cannot be verified"):
        importer.import_oci_layout(repo, str(copy))
    assert _entries(repo.path, "streams") == []
