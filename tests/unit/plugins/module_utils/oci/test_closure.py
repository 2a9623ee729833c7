# -*- coding: utf-8 -*-
"""oci/closure: the objects an image keeps alive, its modes (EROFS images left unread, every ref followed,
missing pieces listed instead of raised).

Images are imported from real layouts (``oci_testimages``); expected values come from the repository's
files (a fresh repository holding one image holds nothing else), from ``composefs-info objects`` (what an
EROFS image names) and from the streams the importer reports.
"""

import os
import pathlib

import pytest

from ansible_collections.bootc.composefs.plugins.module_utils.errors import DanglingRefError, FormatError
from ansible_collections.bootc.composefs.plugins.module_utils.oci import boot, closure, image, importer
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


@pytest.fixture
def superseded(layouts, make_repo):
    """A crash between the config and the manifest rewrite: the manifest entry names the older manifest
    object, which names the older config object, which no ``streams/`` entry names any more."""
    repo = make_repo()
    layout_dir, _info = layouts.get("boot")
    result = importer.import_oci_layout(repo, layout_dir, tag="os:1")
    boot.generate_boot_image(repo, result.manifest_digest)
    entry = os.path.join(repo.path, "streams", "oci-manifest-" + result.manifest_digest)
    os.unlink(entry)
    os.symlink("../objects/%s/%s" % (result.manifest_object_id[:2], result.manifest_object_id[2:]), entry)
    return repo, result


def test_closure_is_everything_a_fresh_repository_holds(layouts, make_repo):
    repo = make_repo()
    layout_dir, _info = layouts.get("boot")
    result = importer.import_oci_layout(repo, layout_dir, tag="os:1")
    assert closure.image_object_closure(repo, result.manifest_digest) == _all_objects(repo.path)
    superseded_ids = {result.config_object_id, result.manifest_object_id}
    boot_id = boot.generate_boot_image(repo, result.manifest_digest)
    found = closure.image_object_closure(repo, result.manifest_digest)
    assert boot_id in found and result.image_object_id in found
    assert found == _all_objects(repo.path) - superseded_ids
    assert not superseded_ids & found
    for modes in ({"erofs": False}, {"all_refs": True}, {"erofs": False, "all_refs": True}):
        assert closure.image_object_closure(repo, result.manifest_digest, **modes) == found, modes


def test_closure_of_sha512_repo(layouts, make_repo):
    from ansible_collections.bootc.composefs.plugins.module_utils.formats import fsverity  # pylint: disable=import-outside-toplevel
    repo = make_repo(fsverity.SHA512)
    layout_dir, _info = layouts.get("bootc")
    result = importer.import_oci_layout(repo, layout_dir)
    assert closure.image_object_closure(repo, result.manifest_digest) == _all_objects(repo.path)
    assert all(len(o) == 128 for o in _all_objects(repo.path))


def test_missing_pieces_raise(imported):
    repo, info, result = imported
    _object_file(repo.path, result.image_object_id).unlink()
    with pytest.raises(DanglingRefError, match="EROFS image"):
        closure.image_object_closure(repo, info["manifest_digest"])
    with pytest.raises(DanglingRefError):
        closure.image_object_closure(repo, "sha256:" + "0" * 64)


def test_missing_pieces_are_listed_and_the_walk_goes_on(imported):
    repo, info, result = imported
    before = _all_objects(repo.path)
    lost_layer = result.layer_object_ids[info["diff_ids"][1]]
    _object_file(repo.path, lost_layer).unlink()
    _object_file(repo.path, result.image_object_id).unlink()
    with pytest.raises(DanglingRefError):
        closure.image_object_closure(repo, info["manifest_digest"])
    missing = []
    found = closure.image_object_closure(repo, info["manifest_digest"], missing=missing)
    assert all(isinstance(err, DanglingRefError) for err in missing) and len(missing) == 2
    assert sorted("objects/%s/%s" % (lost_layer[:2], lost_layer[2:]) in err.path for err in missing) == [False, True]
    assert [err for err in missing if "EROFS image %s" % result.image_object_id in err.message]
    # everything else is still reached: the JSON objects, the other layers' files, the missing ids themselves
    assert found <= before and {lost_layer, result.image_object_id, result.config_object_id, result.manifest_object_id} <= found
    for object_id in set(result.layer_object_ids.values()) - {lost_layer}:
        assert object_id in found
        assert {r.hex() for r in image.read_stream_object(repo, object_id).object_refs} <= found


def test_missing_manifest_entry_is_listed(imported):
    repo, _info, _result = imported
    missing = []
    assert closure.image_object_closure(repo, "sha256:" + "0" * 64, missing=missing) == frozenset()
    assert len(missing) == 1 and isinstance(missing[0], DanglingRefError)
    assert missing[0].path == os.path.join(repo.path, "streams", "oci-manifest-sha256:" + "0" * 64)


def test_erofs_images_are_read_only_when_asked(imported, composefs_oracle, tmp_path):
    repo, info, result = imported
    named = images.composefs_info_objects(composefs_oracle, repo.read_object(result.image_object_id), tmp_path)
    assert named
    for object_id in result.layer_object_ids.values():
        _object_file(repo.path, object_id).unlink()
    deep = closure.image_object_closure(repo, info["manifest_digest"], missing=[])
    shallow = closure.image_object_closure(repo, info["manifest_digest"], erofs=False, missing=[])
    assert named <= deep and not named & shallow
    assert deep - named == shallow and result.image_object_id in shallow
    _object_file(repo.path, result.image_object_id).write_bytes(b"not an EROFS image")
    with pytest.raises(FormatError):
        closure.image_object_closure(repo, info["manifest_digest"], missing=[])
    assert closure.image_object_closure(repo, info["manifest_digest"], erofs=False, missing=[]) == shallow


def test_refs_lead_into_streams_only_through_entries(superseded):
    """The collector keeps the older config object but does not walk it (spec 12.2)."""
    repo, result = superseded
    found = closure.image_object_closure(repo, result.manifest_digest)
    assert result.config_object_id in found and result.image_object_id not in found
    assert set(result.layer_object_ids.values()) <= found
    layer_objects = set()
    for object_id in result.layer_object_ids.values():
        layer_objects.update(r.hex() for r in image.read_stream_object(repo, object_id).object_refs)
    assert layer_objects <= found


def test_all_refs_follows_what_reading_the_image_follows(superseded):
    """Opening the image reads the older config object: with ``all_refs`` its refs are walked too."""
    repo, result = superseded
    opened = image.open_image(repo, result.manifest_digest)
    assert opened.config_object_id == result.config_object_id
    found = closure.image_object_closure(repo, result.manifest_digest, all_refs=True)
    config_json = image.read_stream_object(repo, result.config_object_id).object_refs[0].hex()
    as_collected = closure.image_object_closure(repo, result.manifest_digest)
    assert as_collected <= found and found - as_collected == {config_json, result.image_object_id}
