"""operations/status.py: the status result of hand-built hosts, and one finding per kind of damage.

Expected values come from what the builders wrote (image_repo.py: digests are sha256 of the JSON
written, object names from the fsverity oracle) and from independent walks of the tree (os.walk
for usage), never from a first run of the code under test.
"""

import hashlib
import os
import shutil

import pytest

from ansible_collections.bootc.composefs.plugins.module_utils.errors import HostError, UnsafePathError
from ansible_collections.bootc.composefs.plugins.module_utils.operations import status
from ansible_collections.bootc.composefs.plugins.module_utils.repository.repo import Repository
from ansible_collections.bootc.composefs.tests.unit.builders import repo_builder as rb
from ansible_collections.bootc.composefs.tests.unit.plugins.module_utils.operations import image_repo


def _read(host, **kwargs):
    return status.read_status(status.StatusRequest(root=str(host.root), **kwargs))


def _codes(result):
    return sorted(f["code"] for f in result.data["findings"])


def _by_role(result):
    return {d["role"]: d for d in result.data["deployments"]}


def _tree_digest(root):
    """sha256 over every path, type, mode, link text and content below ``root`` (nothing followed)."""
    digest = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            path = os.path.join(dirpath, name)
            info = os.lstat(path)
            digest.update(("%s %o %d\n" % (os.path.relpath(path, root), info.st_mode, info.st_mtime_ns)).encode())
            if os.path.islink(path):
                digest.update(os.readlink(path).encode())
            elif os.path.isfile(path):
                with open(path, "rb") as handle:
                    digest.update(handle.read())
    return digest.hexdigest()


# -- a healthy host ----------------------------------------------------------------------------


def test_healthy_host_roles_and_metadata(three_deployments):
    host, images = three_deployments
    result = _read(host)
    assert _codes(result) == []
    roles = _by_role(result)
    assert [d["role"] for d in result.data["deployments"]] == ["booted", "staged", "rollback"]
    for role, image in images.items():
        item = roles[role]
        assert item["verity"] == image.boot_id
        assert item["manifest_digest"] == image.manifest_digest
        assert item["config_digest"] == image.config_digest
        assert item["metadata_source"] == "repository"
        assert item["created"] == "2026-08-01T10:00:00Z" and item["architecture"] == "amd64"
        assert item["image"] == {"image": "quay.io/example/os:42", "transport": "registry", "signature": None,
                                 "reference": "ostree-unverified-image:docker://quay.io/example/os:42"}
        assert item["boot_type"] == "bls" and item["boot_digest"] == "0" * 64
        assert item["warnings"] == []
    # version: manifest annotation, else the config label (the staged image only has the label)
    assert [roles[r]["version"] for r in ("booted", "staged", "rollback")] == ["2.0", "3.0", "1.0"]
    assert roles["staged"]["download_only"] is False
    hostinfo = result.data["host"]
    assert (hostinfo["booted"], hostinfo["staged"], hostinfo["rollback"]) == (
        images["booted"].boot_id, images["staged"].boot_id, images["rollback"].boot_id)
    assert hostinfo["bootloader"] == "grub" and hostinfo["boot_type"] == "bls"


def test_repository_facts_and_tags(three_deployments):
    host, images = three_deployments
    result = _read(host)
    repo = result.data["repository"]
    assert repo["path"] == str(host.tree.sysroot / "composefs")
    assert repo["exists"] and repo["meta_json"] and repo["error"] is None
    assert (repo["algorithm"], repo["meta_algorithm"], repo["format_version"]) == ("sha256", "fsverity-sha256-12", 1)
    assert repo["erofs_formats"] == [1] and repo["secure"] is False and repo["usage"] is None
    expected = [{"name": "localhost/bootc-" + image.manifest_digest, "manifest_digest": image.manifest_digest,
                 "owner": "bootc", "live": True} for image in images.values()]
    assert sorted(result.data["tags"], key=lambda t: t["name"]) == sorted(expected, key=lambda t: t["name"])


def test_usage_counts_match_an_independent_walk(three_deployments):
    host, _images = three_deployments
    host.repo.tag("quay.io/example/app:1", _images["booted"].manifest_digest)
    objects = host.tree.sysroot / "composefs" / "objects"
    sizes = [os.lstat(os.path.join(d, f)).st_size for d, _dirs, files in os.walk(objects) for f in files]
    blocks = [os.lstat(os.path.join(d, f)).st_blocks * 512 for d, _dirs, files in os.walk(objects) for f in files]
    usage = _read(host, usage=True).data["repository"]["usage"]
    assert usage == {"objects": len(sizes), "object_bytes": sum(sizes), "object_disk_bytes": sum(blocks),
                     "invalid_objects": 0, "streams": len(os.listdir(host.tree.sysroot / "composefs" / "streams")) - 1,
                     "images": 6, "tags": 4}


def test_foreign_tag_is_never_unreferenced(three_deployments):
    host, images = three_deployments
    other = host.repo.image([{"app": b"a" * 300}], marker="app")
    host.repo.tag("quay.io/example/app:1", other.manifest_digest)
    result = _read(host)
    assert _codes(result) == []
    tag = [t for t in result.data["tags"] if t["name"] == "quay.io/example/app:1"][0]
    assert tag == {"name": "quay.io/example/app:1", "manifest_digest": other.manifest_digest, "owner": "foreign",
                   "live": False}
    assert images["booted"].manifest_digest != other.manifest_digest


def test_status_never_writes(three_deployments):
    host, _images = three_deployments
    os.unlink(host.repo.path_of(_images["booted"].layers[0].stream_id))  # damage makes more code run
    before = _tree_digest(host.root)
    _read(host, usage=True)
    _read(host)
    assert _tree_digest(host.root) == before


# -- not a composefs host ------------------------------------------------------------------------


def test_plain_directory_is_not_a_composefs_host(tmp_path):
    (tmp_path / "proc").mkdir()
    (tmp_path / "proc" / "cmdline").write_text("root=/dev/sda1 ro quiet\n")
    with pytest.raises(HostError) as caught:
        status.read_status(status.StatusRequest(root=str(tmp_path)))
    assert "not a bootc composefs host" in str(caught.value)
    assert "Traceback" not in str(caught.value)
    assert caught.value.partial_result["host"]["root"] == str(tmp_path)
    # no ESP of its own: the boot dir is named once, not "X or X"
    boot = str(tmp_path / "sysroot" / "boot")
    assert str(caught.value).count(boot) == 1, str(caught.value)


def test_missing_root_is_a_clear_error(tmp_path):
    with pytest.raises(HostError) as caught:
        status.read_status(status.StatusRequest(root=str(tmp_path / "nope")))
    assert str(caught.value).startswith("%s: not a bootc composefs host: host root is not a directory" % (tmp_path / "nope"))


# -- one finding per kind of damage ------------------------------------------------------------


def _finding(result, code):
    found = [f for f in result.data["findings"] if f["code"] == code]
    assert found, "no %s finding in %s" % (code, result.data["findings"])
    return found


def test_missing_repository(three_deployments):
    host, _images = three_deployments
    shutil.rmtree(host.tree.sysroot / "composefs")
    result = _read(host)
    assert _finding(result, "missing-repository")[0]["path"] == str(host.tree.sysroot / "composefs")
    assert result.data["repository"]["exists"] is False
    assert all(d["metadata_source"] is None for d in result.data["deployments"])
    assert len(_finding(result, "unresolved-image")) == 3


def test_unreadable_meta_json(three_deployments):
    host, _images = three_deployments
    (host.tree.sysroot / "composefs" / "meta.json").write_text("{not json")
    result = _read(host)
    found = _finding(result, "unreadable-file")
    assert any(f["path"].endswith("meta.json") for f in found)
    assert result.data["repository"]["error"]


def test_repository_locked(three_deployments, monkeypatch):
    host, _images = three_deployments
    monkeypatch.setattr(status, "LOCK_TIMEOUT_SECONDS", 0.2)
    holder = rb.hold_lock_process(host.tree.sysroot / "composefs", "EX")  # as a running GC would
    try:
        result = _read(host)
    finally:
        holder.stdin.close()
        holder.wait()
    assert _finding(result, "repository-locked")[0]["path"] == str(host.tree.sysroot / "composefs")
    assert all(d["metadata_source"] is None for d in result.data["deployments"])


def _repo_dir(host):
    return host.tree.sysroot / "composefs"


def _stream_entry(host, name):
    return _repo_dir(host) / "streams" / name


def _damage_tag_to_missing_manifest(host, images):
    missing = "sha256:" + "ab" * 32
    host.repo.tag("quay.io/example/gone:1", missing)
    return "dangling-ref", str(_repo_dir(host) / "streams" / "refs" / "oci" / "quay.io%2Fexample%2Fgone:1")


def _damage_entry_to_missing_object(host, images):
    other = host.repo.image([{"app": b"a" * 300}], marker="app")
    host.repo.tag("quay.io/example/app:1", other.manifest_digest)
    os.unlink(host.repo.path_of(other.config_stream_id))
    return "dangling-ref", str(_stream_entry(host, "oci-config-" + other.config_digest))


def _damage_regular_file_in_streams(host, images):
    path = _stream_entry(host, "stray")
    path.write_text("not a symlink")
    return "malformed-ref", str(path)


def _damage_bad_tag_link(host, images):
    path = _repo_dir(host) / "streams" / "refs" / "oci" / "bad"
    os.symlink("../oci-manifest-" + images["booted"].manifest_digest, path)  # one level short
    return "malformed-ref", str(path)


def _damage_boot_image_entry(host, images):
    os.unlink(_repo_dir(host) / "images" / images["booted"].boot_id)
    return "missing-image", str(_repo_dir(host) / "images" / images["booted"].boot_id)


def _damage_boot_image_object(host, images):
    os.unlink(host.repo.path_of(images["rollback"].boot_id))
    return "missing-object", str(host.repo.path_of(images["rollback"].boot_id))


def _damage_layer_entry(host, images):
    layer = images["booted"].layers[1]
    os.unlink(_stream_entry(host, "oci-layer-" + layer.diff_id))
    return "missing-stream", str(_stream_entry(host, "oci-layer-" + layer.diff_id))


def _damage_manifest_entry(host, images):
    os.unlink(_stream_entry(host, "oci-manifest-" + images["rollback"].manifest_digest))
    return "missing-stream", str(_stream_entry(host, "oci-manifest-" + images["rollback"].manifest_digest))


def _damage_config_entry(host, images):
    os.unlink(_stream_entry(host, "oci-config-" + images["staged"].config_digest))
    return "missing-stream", str(_stream_entry(host, "oci-config-" + images["staged"].config_digest))


def _damage_file_object(host, images):
    object_id = images["booted"].layers[1].file_ids["usr/share/v2"]
    os.unlink(host.repo.path_of(object_id))
    return "missing-object", str(host.repo.path_of(object_id))


def _damage_layer_stream_object(host, images):
    object_id = images["staged"].layers[1].stream_id
    os.unlink(host.repo.path_of(object_id))
    return "missing-object", str(host.repo.path_of(object_id))


def _damage_manifest_blob(host, images):
    os.unlink(host.repo.path_of(images["booted"].manifest_blob_id))
    return "missing-object", None


def _damage_corrupt_manifest_stream(host, images):
    path = host.repo.path_of(images["booted"].manifest_stream_id)
    path.write_bytes(b"garbage, not a splitstream")
    return "unreadable-file", None


def _damage_untagged(host, images):
    os.unlink(_repo_dir(host) / "streams" / "refs" / "oci" / ("localhost%2Fbootc-" + images["rollback"].manifest_digest))
    return "untagged-live-manifest", str(_repo_dir(host) / "streams" / "refs" / "oci" /
                                         ("localhost%2Fbootc-" + images["rollback"].manifest_digest))


def _damage_unreferenced_tag(host, images):
    other = host.repo.image([{"old": b"o" * 300}], marker="old")
    host.repo.bootc_tag(other.manifest_digest)
    return "unreferenced-bootc-tag", str(_repo_dir(host) / "streams" / "refs" / "oci" /
                                         ("localhost%2Fbootc-" + other.manifest_digest))


def _damage_orphan_state_dir(host, images):
    orphan = hashlib.sha256(b"orphan").hexdigest()
    host.tree.state_dir(orphan)
    return "orphan-state-dir", str(host.tree.state / orphan)


def _damage_entry_without_state_dir(host, images):
    shutil.rmtree(host.tree.state / images["rollback"].boot_id)
    return "entry-without-state-dir", None


def _damage_unreadable_origin(host, images):
    path = host.tree.state / images["rollback"].boot_id / (images["rollback"].boot_id + ".origin")
    path.write_text("[boot]\nboot_type = floppy\n")
    return "unreadable-file", str(path)


DAMAGE = [
    _damage_tag_to_missing_manifest, _damage_entry_to_missing_object, _damage_regular_file_in_streams,
    _damage_bad_tag_link, _damage_boot_image_entry, _damage_boot_image_object, _damage_layer_entry,
    _damage_manifest_entry, _damage_config_entry, _damage_file_object, _damage_layer_stream_object,
    _damage_manifest_blob, _damage_corrupt_manifest_stream, _damage_untagged, _damage_unreferenced_tag,
    _damage_orphan_state_dir, _damage_entry_without_state_dir, _damage_unreadable_origin,
]


@pytest.mark.parametrize("usage", [False, True], ids=["streams", "deep"])
@pytest.mark.parametrize("damage", DAMAGE, ids=[d.__name__[len("_damage_"):] for d in DAMAGE])
def test_every_damage_is_a_finding(three_deployments, damage, usage):
    host, images = three_deployments
    code, path = damage(host, images)
    result = _read(host, usage=usage)
    found = _finding(result, code)
    if path is not None:
        assert path in [f["path"] for f in found], found
    assert all(f["message"] for f in result.data["findings"])
    # roles never depend on the repository
    roles = _by_role(result)
    assert roles["booted"]["verity"] == images["booted"].boot_id


def test_invalid_object_name_needs_usage(three_deployments):
    host, _images = three_deployments
    stray = _repo_dir(host) / "objects" / "ab" / "not-hex"
    stray.parent.mkdir(exist_ok=True)
    stray.write_text("x")
    assert "invalid-object" not in _codes(_read(host))
    result = _read(host, usage=True)
    assert _finding(result, "invalid-object")[0]["path"] == str(stray)
    assert result.data["repository"]["usage"]["invalid_objects"] == 1


def test_untagged_manifest_kept_by_a_foreign_tag_says_so(three_deployments):
    host, images = three_deployments
    _damage_untagged(host, images)
    host.repo.tag("quay.io/example/os:1", images["rollback"].manifest_digest)
    message = _finding(_read(host), "untagged-live-manifest")[0]["message"]
    assert "quay.io/example/os:1" in message


def test_missing_manifest_falls_back_to_imginfo(three_deployments):
    host, images = three_deployments
    rollback = images["rollback"]
    imginfo = image_repo.json_bytes({"config": rollback.config, "manifest": rollback.manifest}).decode()
    host.tree.write(host.tree.state / rollback.boot_id / (rollback.boot_id + ".imginfo"), imginfo)
    _damage_manifest_entry(host, images)
    item = _by_role(_read(host))["rollback"]
    assert item["metadata_source"] == "imginfo"
    assert (item["manifest_digest"], item["config_digest"], item["version"]) == (rollback.manifest_digest,
                                                                                 rollback.config_digest, "1.0")
    assert any(".imginfo" in text for text in item["warnings"])


def test_legacy_deployment_found_by_tag_search(sim_host):
    image = sim_host.repo.image([{"usr/bin/a": b"a" * 100}], version="7.0", marker="legacy")
    sim_host.deploy(image, "bootc_simos-7.0-1.conf", "bootc-simos-0", version="7.0", manifest_digest=None)
    sim_host.tree.booted(image.boot_id)
    result = _read(sim_host)
    item = result.data["deployments"][0]
    assert (item["metadata_source"], item["metadata_tag"]) == ("tag-search", "localhost/bootc-" + image.manifest_digest)
    assert (item["manifest_digest"], item["config_digest"], item["version"]) == (image.manifest_digest,
                                                                                 image.config_digest, "7.0")
    assert _codes(result) == []
    assert result.data["tags"][0]["live"] is True


def test_legacy_deployment_without_tag_or_imginfo_is_unresolved(sim_host):
    image = sim_host.repo.image([{"usr/bin/a": b"a" * 100}], marker="lost")
    sim_host.deploy(image, "bootc_simos-7.0-1.conf", "bootc-simos-0", manifest_digest=None, tag=False)
    sim_host.tree.booted(image.boot_id)
    result = _read(sim_host)
    assert _codes(result) == ["unresolved-image"]
    assert result.data["deployments"][0]["metadata_source"] is None
    assert result.warnings == ("1 finding(s) on this host: unresolved-image x1; see the 'findings' result",)


def test_unreferenced_tag_caveat_names_unresolved_deployments(sim_host):
    image = sim_host.repo.image([{"usr/bin/a": b"a" * 100}], marker="lost")
    other = sim_host.repo.image([{"usr/bin/b": b"b" * 100}], marker="other")
    sim_host.deploy(image, "bootc_simos-7.0-1.conf", "bootc-simos-0", manifest_digest=None, tag=False)
    sim_host.repo.bootc_tag(other.manifest_digest)
    sim_host.tree.booted(image.boot_id)
    message = _finding(_read(sim_host), "unreferenced-bootc-tag")[0]["message"]
    assert image.boot_id in message


# -- robustness: nothing but HostError ever escapes ----------------------------------------------


def test_verity_that_cannot_name_an_image_here(sim_host):
    verity = "f" * 128  # a sha512-sized verity in this sha256 repository
    sim_host.tree.type1_deployment(verity, "bootc_simos-1-1.conf", sort_key="bootc-simos-0")
    sim_host.tree.booted(verity)
    found = _finding(_read(sim_host), "missing-image")
    assert "is not a sha256 digest (64 hex digits)" in found[0]["message"]


def test_repository_symlink_cannot_leave_the_root(three_deployments, tmp_path):
    host, _images = three_deployments
    outside = tmp_path / "outside-repo"
    shutil.move(str(host.tree.sysroot / "composefs"), str(outside))
    os.symlink(str(outside), host.tree.sysroot / "composefs")  # absolute: resolved inside the root, chroot-style
    result = _read(host)
    assert _finding(result, "missing-repository")
    assert result.data["repository"]["exists"] is False


def test_unlistable_objects_directory_is_a_finding(three_deployments, monkeypatch):
    host, _images = three_deployments
    real_scandir = os.scandir
    objects = str(host.tree.sysroot / "composefs" / "objects")

    def scandir(path="."):
        if str(path) == objects:
            raise PermissionError(13, "Permission denied")
        return real_scandir(path)

    monkeypatch.setattr(status.os, "scandir", scandir)
    result = _read(host, usage=True)
    assert objects in [f["path"] for f in _finding(result, "unreadable-file")]
    assert result.data["repository"]["usage"]["objects"] == 0


@pytest.mark.parametrize("method", ["has_stream", "has_object", "image_object_id", "list_stream_refs", "list_stream_entries"])
def test_repository_errors_become_findings(three_deployments, monkeypatch, method):
    host, images = three_deployments
    _damage_manifest_entry(host, images)  # makes the status look at the manifest stream again

    def broken(*_args, **_kwargs):
        raise UnsafePathError("injected failure", path="/somewhere")

    monkeypatch.setattr(Repository, method, broken)
    result = _read(host)
    assert result.data["findings"]
    assert _by_role(result)["booted"]["verity"] == images["booted"].boot_id
