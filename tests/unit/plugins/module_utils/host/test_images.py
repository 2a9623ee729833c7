"""host/images.py: which image a deployment runs (origin -> repository, .imginfo, tag search; Open questions 2, 4).

Hosts and repositories are hand-built (operations/image_repo.py: JSON digests by hashlib, object
names by the fsverity oracle, EROFS images by mkcomposefs); expected values are what was built.
"""

import importlib
import json
import os

import pytest

from ansible_collections.bootc.composefs.plugins.module_utils.host import images
from ansible_collections.bootc.composefs.plugins.module_utils.host.deployments import load_host
from ansible_collections.bootc.composefs.plugins.module_utils.host.paths import load_host_paths
from ansible_collections.bootc.composefs.plugins.module_utils.repository.repo import Repository

FILES = {"usr/bin/tool": b"t" * 300, "usr/lib/os-release": b"ID=simos\n" + b"o" * 90}
REFERENCE = "ostree-unverified-image:containers-storage:localhost/simos"


@pytest.fixture(name="host")
def fixture_host(tmp_path, fsverity_tool, zstd_tool, composefs_oracle):
    tree_mod = importlib.import_module("ansible_collections.bootc.composefs.tests.unit.builders.host_tree")
    repo_mod = importlib.import_module("ansible_collections.bootc.composefs.tests.unit.plugins.module_utils.operations.image_repo")
    tree = tree_mod.HostTree(tmp_path / "root")
    repo = repo_mod.ImageRepo(tree.sysroot / "composefs", fsverity_tool, zstd_tool, composefs_oracle)
    return tree_mod, tree, repo


def _deploy(host, verity, manifest_digest=None, imginfo=None, origin=True):
    tree_mod, tree, _repo = host
    text = tree_mod.origin_text(image=REFERENCE, manifest_digest=manifest_digest) if origin else None
    tree.type1_deployment(verity, "bootc_simos-1-1.conf", sort_key="bootc-simos-0", origin=text)
    if imginfo is not None:
        tree.write(tree.state / verity / (verity + ".imginfo"), json.dumps(imginfo, separators=(",", ":")))
    tree.booted(verity)


def _resolve(host, with_repo=True):
    _tree_mod, tree, _repo = host
    state = load_host(load_host_paths(str(tree.root)))
    repo = Repository.open(tree.sysroot / "composefs") if with_repo else None
    try:
        resolved = images.resolve_images(state, repo)
    finally:
        if repo is not None:
            repo.close()
    return resolved.by_verity[state.booted_verity], resolved.findings


def _imginfo_of(image):
    return {"config": image.config, "manifest": image.manifest}


def test_origin_manifest_digest_reads_the_repository(host):
    image = host[2].image([FILES], version="42.1", marker="a")
    _deploy(host, image.boot_id, manifest_digest=image.manifest_digest)
    metadata, found = _resolve(host)
    assert (metadata.source, metadata.manifest_digest, metadata.config_digest) == (
        "repository", image.manifest_digest, image.config_digest)
    assert (metadata.version, metadata.created, metadata.architecture) == ("42.1", "2026-08-01T10:00:00Z", "amd64")
    assert metadata.manifest == image.manifest and metadata.config == image.config
    assert metadata.image.manifest_digest == image.manifest_digest
    assert metadata.warnings == () and found == ()


@pytest.mark.parametrize("annotation, label, expected", [
    ("1.0", "2.0", "1.0"),  # bootc's choice: the manifest annotation
    (None, "2.0", "2.0"),  # podman build sets the label only
    (None, None, None),
], ids=["annotation-wins", "label-fallback", "none"])
def test_version_sources(host, annotation, label, expected):
    image = host[2].image([FILES], version=annotation, label_version=label, marker="v")
    _deploy(host, image.boot_id, manifest_digest=image.manifest_digest)
    assert _resolve(host)[0].version == expected


def test_no_readable_origin(host):
    image = host[2].image([FILES], marker="n")
    _deploy(host, image.boot_id, origin=False)
    metadata, found = _resolve(host)
    assert metadata.source is None and metadata.warnings
    assert found == ()  # the host layer reports missing-origin; no second finding


def test_missing_manifest_stream_falls_back_to_imginfo(host):
    image = host[2].image([FILES], version="3", marker="m")
    os.unlink(host[2].root / "streams" / ("oci-manifest-" + image.manifest_digest))
    _deploy(host, image.boot_id, manifest_digest=image.manifest_digest, imginfo=_imginfo_of(image))
    metadata, found = _resolve(host)
    assert (metadata.source, metadata.manifest_digest, metadata.config_digest, metadata.version) == (
        "imginfo", image.manifest_digest, image.config_digest, "3")
    assert any("cannot read manifest" in w for w in metadata.warnings) and found == ()


def test_unreadable_repository_uses_imginfo(host):
    image = host[2].image([FILES], marker="r")
    _deploy(host, image.boot_id, manifest_digest=image.manifest_digest, imginfo=_imginfo_of(image))
    metadata, _found = _resolve(host, with_repo=False)
    assert (metadata.source, metadata.manifest_digest) == ("imginfo", image.manifest_digest)


def test_nothing_found_is_an_unresolved_image_finding(host):
    image = host[2].image([FILES], marker="u")
    os.unlink(host[2].root / "streams" / ("oci-manifest-" + image.manifest_digest))
    _deploy(host, image.boot_id, manifest_digest=image.manifest_digest)
    metadata, found = _resolve(host)
    assert metadata.source is None and metadata.manifest_digest == image.manifest_digest
    assert [f.code for f in found] == ["unresolved-image"]
    assert found[0].path.endswith("%s/%s.origin" % (image.boot_id, image.boot_id))


def test_legacy_with_imginfo_learns_its_manifest_digest_from_a_tag(host):
    image = host[2].image([FILES], version="5", marker="l")
    host[2].bootc_tag(image.manifest_digest)
    _deploy(host, image.boot_id, imginfo=_imginfo_of(image))
    metadata, found = _resolve(host)
    assert (metadata.source, metadata.manifest_digest, metadata.config_digest) == (
        "imginfo", image.manifest_digest, image.config_digest)
    assert (metadata.matched_tag, metadata.matched_key) == ("localhost/bootc-" + image.manifest_digest, "composefs.image.boot.v1")
    assert found == ()


def test_legacy_with_imginfo_and_no_tag_has_no_manifest_digest(host):
    image = host[2].image([FILES], marker="x")
    _deploy(host, image.boot_id, imginfo=_imginfo_of(image))
    metadata, _found = _resolve(host)
    assert (metadata.source, metadata.manifest_digest, metadata.config_digest) == ("imginfo", None, image.config_digest)
    assert any("manifest digest is unknown" in w for w in metadata.warnings)


def test_legacy_imginfo_disagreeing_with_the_tagged_image_keeps_the_imginfo(host):
    image = host[2].image([FILES], marker="d")
    other = host[2].image([FILES, {"etc/x": b"x" * 100}], marker="d2")
    host[2].bootc_tag(image.manifest_digest)
    _deploy(host, image.boot_id, imginfo=_imginfo_of(other))
    metadata, _found = _resolve(host)
    assert (metadata.source, metadata.manifest_digest, metadata.config_digest) == ("imginfo", None, other.config_digest)
    assert any("reporting the .imginfo" in w for w in metadata.warnings)


def test_legacy_without_imginfo_uses_the_tag_search(host):
    image = host[2].image([FILES], version="9", marker="t")
    host[2].tag("quay.io/example/simos:9", image.manifest_digest)
    _deploy(host, image.boot_id)
    metadata, found = _resolve(host)
    assert (metadata.source, metadata.manifest_digest, metadata.version) == ("tag-search", image.manifest_digest, "9")
    assert (metadata.matched_tag, metadata.matched_key) == ("quay.io/example/simos:9", "composefs.image.boot.v1")
    assert found == ()


def test_tag_search_also_accepts_the_plain_key(host):
    # bootc's own legacy search compares the verity with the plain key only (Open question 4).
    image = host[2].image([FILES], marker="p")
    host[2].bootc_tag(image.manifest_digest)
    _deploy(host, image.plain_id)
    metadata, _found = _resolve(host)
    assert (metadata.source, metadata.manifest_digest, metadata.matched_key) == (
        "tag-search", image.manifest_digest, "composefs.image.v1")


def test_tag_search_prefers_a_boot_key_then_a_bootc_tag(host):
    repo = host[2]
    # a's plain EROFS image and b's boot EROFS image are the same object (same tree, same extra name)
    a = repo.image([FILES], marker="a", erofs_names=("shared", "boot-a"))
    b = repo.image([FILES], marker="b", erofs_names=("plain-b", "shared"))
    assert a.plain_id == b.boot_id
    repo.bootc_tag(a.manifest_digest)
    repo.tag("quay.io/example/b:1", b.manifest_digest)
    repo.bootc_tag(b.manifest_digest)
    _deploy(host, b.boot_id)
    metadata, _found = _resolve(host)
    assert (metadata.manifest_digest, metadata.matched_key, metadata.matched_tag) == (
        b.manifest_digest, "composefs.image.boot.v1", "localhost/bootc-" + b.manifest_digest)
    assert any("also matched manifest(s) %s" % a.manifest_digest in w for w in metadata.warnings)
