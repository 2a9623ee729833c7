# -*- coding: utf-8 -*-
"""oci/image: opening stored images, EROFS refs, lookups by EROFS id (the object closure: test_closure.py).

Images are imported from real layouts (``oci_testimages``); expected values come from the layout
files (digests, JSON bytes) and from the repository's files (link texts, object files).
"""

import os
import pathlib

import pytest

from ansible_collections.bootc.composefs.plugins.module_utils.errors import ComposefsError, DanglingRefError, FormatError
from ansible_collections.bootc.composefs.plugins.module_utils.oci import boot, image, importer
from ansible_collections.bootc.composefs.tests.unit.plugins.module_utils.oci import oci_testimages as images


def _all_objects(repo_path):
    return {p.parent.name + p.name for p in pathlib.Path(repo_path, "objects").glob("??/*")}


def _object_file(repo_path, object_id):
    return pathlib.Path(repo_path, "objects", object_id[:2], object_id[2:])


@pytest.fixture
def imported(layouts, make_repo):
    layout_dir, info = layouts.get("gzip")
    repo = make_repo()
    result = importer.import_oci_layout(repo, layout_dir, ref="multi", tag="quay.io/x/multi:1")
    return repo, info, result


@pytest.mark.parametrize("how", ["tag", "digest", "at-digest"])
def test_open_image(imported, how, layouts):
    repo, info, result = imported
    ref = {"tag": "quay.io/x/multi:1", "digest": info["manifest_digest"], "at-digest": "@" + info["manifest_digest"]}[how]
    opened = image.open_image(repo, ref)
    layout_dir, _unused = layouts.get("gzip")
    assert opened.manifest_digest == info["manifest_digest"] and opened.config_digest == info["config_digest"]
    assert opened.manifest_bytes == images.blob_path(layout_dir, info["manifest_digest"]).read_bytes()
    assert opened.config_bytes == images.blob_path(layout_dir, info["config_digest"]).read_bytes()
    assert opened.manifest["layers"][0]["digest"] == info["layers"][0]["digest"]
    assert opened.config["rootfs"]["diff_ids"] == info["diff_ids"]
    assert opened.is_container_image and not opened.is_artifact and opened.verified
    assert opened.diff_ids == tuple(info["diff_ids"])
    assert all(layer.present and layer.entry_present for layer in opened.layers)
    assert opened.layer_refs == result.layer_object_ids
    assert opened.erofs_refs == {"composefs.image.v1": result.image_object_id}
    assert opened.image_verity() == result.image_object_id
    assert opened.image_verity("plain", 2) is None and opened.image_verity("boot") is None
    link = os.readlink(os.path.join(repo.path, "streams", "oci-manifest-" + info["manifest_digest"]))
    assert link.replace("/", "").endswith(opened.manifest_object_id)
    assert opened.config_object_id == result.config_object_id


def test_layer_presence_reflects_the_repository(imported):
    repo, info, result = imported
    victim = result.layer_object_ids[info["diff_ids"][1]]
    _object_file(repo.path, victim).unlink()
    os.unlink(os.path.join(repo.path, "streams", "oci-layer-" + info["diff_ids"][2]))
    layers = image.open_image(repo, info["manifest_digest"]).layers
    assert [(layer.entry_present, layer.object_present) for layer in layers] == [(True, True), (True, False), (False, True)]


def test_tampered_manifest_object_is_a_digest_mismatch(imported):
    repo, info, _result = imported
    manifest = image.read_manifest(repo, info["manifest_digest"])
    blob_id = image.read_stream_object(repo, manifest.stream_object_id).object_refs[0].hex()
    path = _object_file(repo.path, blob_id)
    path.write_bytes(path.read_bytes().replace(b'"schemaVersion": 2', b'"schemaVersion":  2'))
    with pytest.raises(ComposefsError) as caught:
        image.open_image(repo, info["manifest_digest"])
    assert "not the expected %s" % info["manifest_digest"] in str(caught.value)


def test_tampered_config_object_is_a_digest_mismatch(imported):
    repo, info, result = imported
    blob_id = image.read_stream_object(repo, result.config_object_id).object_refs[0].hex()
    path = _object_file(repo.path, blob_id)
    path.write_bytes(path.read_bytes() + b" ")
    with pytest.raises(ComposefsError, match="not the expected %s" % info["config_digest"]):
        image.open_image(repo, "quay.io/x/multi:1")


def test_missing_things_are_dangling(imported, make_repo):
    repo, info, result = imported
    with pytest.raises(DanglingRefError, match="no image is tagged"):
        image.open_image(repo, "nope:1")
    with pytest.raises(DanglingRefError):
        image.open_image(make_repo(name="empty"), info["manifest_digest"])
    _object_file(repo.path, result.config_object_id).unlink()
    with pytest.raises(DanglingRefError, match="missing"):
        image.open_image(repo, info["manifest_digest"])


def test_wrong_content_type_is_a_format_error(imported):
    repo, _info, result = imported
    layer_id = next(iter(result.layer_object_ids.values()))
    with pytest.raises(FormatError, match="content type"):
        image.read_external_stream(repo, "x", layer_id, content_type=0x66696E616D69636F)


def test_artifact_is_reported(make_repo, tmp_path):
    images.write_layout_image(str(tmp_path / "art"), [b"payload"], compression="none", tag="a",
                              layer_media_types=["application/octet-stream"],
                              config_media_type="application/vnd.example+json", config_bytes=b"{}")
    repo = make_repo()
    result = importer.import_oci_layout(repo, str(tmp_path / "art"), tag="a")
    opened = image.open_image(repo, "a")
    assert opened.is_artifact and opened.config is None and opened.erofs_refs == {}
    assert opened.config_media_type == "application/vnd.example+json" and opened.config_bytes == b"{}"
    assert opened.layer_refs == result.layer_object_ids


def test_ref_keys():
    assert image.image_ref_key(1) == image.image_ref_key(0) == "composefs.image.v1"
    assert image.image_ref_key(2) == "composefs.image"
    assert image.boot_image_ref_key(1) == "composefs.image.boot.v1"
    assert image.boot_image_ref_key(2) == "composefs.image.boot"
    assert image.boot_image_ref_key(1, "keep-user-xattrs") == "composefs.image.boot.v1.xattrs=keep-user-xattrs"
    assert image.boot_image_ref_key(2, "keep-user-xattrs") == "composefs.image.boot.xattrs=keep-user-xattrs"
    for key in ("composefs.image", "composefs.image.v1", "composefs.image.boot", "composefs.image.boot.v1.xattrs=x"):
        assert image.is_erofs_ref_key(key)
    for key in ("sha256:" + "a" * 64, "config:sha256:" + "a" * 64, "composefs.image.v2", "composefs.images"):
        assert not image.is_erofs_ref_key(key)
    with pytest.raises(ValueError):
        image.boot_image_ref_key(1, "everything")
    with pytest.raises(ValueError):
        image.image_ref_key(3)


def test_find_manifests_by_erofs(layouts, make_repo):
    repo = make_repo()
    layout_dir, _info = layouts.get("boot")
    result = importer.import_oci_layout(repo, layout_dir, tag="os:1")
    importer.import_oci_layout(repo, layout_dir, tag="localhost/bootc-" + result.manifest_digest)
    boot_id = boot.generate_boot_image(repo, result.manifest_digest)
    assert boot_id != result.image_object_id
    tags = ("localhost/bootc-" + result.manifest_digest, "os:1")
    assert image.find_manifests_by_erofs(repo, boot_id) == [
        image.ErofsMatch(result.manifest_digest, result.config_digest, "composefs.image.boot.v1", tags)]
    assert image.find_manifests_by_erofs(repo, result.image_object_id) == [
        image.ErofsMatch(result.manifest_digest, result.config_digest, "composefs.image.v1", tags)]
    assert image.find_manifests_by_erofs(repo, "0" * 64) == []
    os.unlink(os.path.join(repo.path, "streams", "refs", "oci", "os:1"))
    os.unlink(os.path.join(repo.path, "streams", "refs", "oci", "localhost%2Fbootc-" + result.manifest_digest))
    assert image.find_manifests_by_erofs(repo, boot_id) == []
