# -*- coding: utf-8 -*-
"""operations/pull.py end to end with real skopeo on OCI image layouts (no registry: the integration tests have it).

Hosts are bare trees ``<root>/sysroot/composefs`` whose repository ``repo_builder`` writes by hand
(meta.json bytes of the spec). Oracles: ocigen's digests (hashlib over what it writes), the tar bytes
it builds (diff_ids and uncompressed sizes), tag link texts as the spec writes them (section 10.4),
layer streams reassembled by a reader written here from spec section 8 with the ``zstd`` tool, object
names from ``fsverity digest``, ``skopeo inspect``.
"""

import errno
import json
import os
import shutil
import struct
import subprocess
import time

import pytest

from ansible_collections.bootc.composefs.plugins.module_utils.errors import ComposefsError, ToolError
from ansible_collections.bootc.composefs.plugins.module_utils.oci import importer
from ansible_collections.bootc.composefs.plugins.module_utils.operations import pull, pull_apply
from ansible_collections.bootc.composefs.tests.tools import ocigen
from ansible_collections.bootc.composefs.tests.unit.builders import repo_builder

APP_LAYERS = [[("dir", "usr"), ("dir", "srv"), ("file", "srv/app.bin", b"app" * 9000), ("file", "srv/conf", b"k=v\n")]]


def _tag_link(repo_path, tag):
    path = os.path.join(repo_path, "streams", "refs", "oci", tag.replace("%", "%25").replace("/", "%2F"))
    return os.readlink(path) if os.path.islink(path) else None


def _reassemble(repo_path, stream_object_id):
    """The bytes a splitstream stands for (spec 8.2, 8.3, 8.6), inflated by the zstd tool."""
    with open(os.path.join(repo_path, "objects", stream_object_id[:2], stream_object_id[2:]), "rb") as handle:
        data = handle.read()
    assert data[:11] == b"SplitStream"
    size = {1: 32, 2: 64}[data[14]]
    info_start = struct.unpack_from("<Q", data, 16)[0]
    fields = struct.unpack_from("<10Q", data, info_start)
    object_refs = data[fields[2]:fields[3]]
    objects = [object_refs[i:i + size].hex() for i in range(0, len(object_refs), size)]
    stream = subprocess.run(["zstd", "-q", "-d", "-c"], input=data[fields[4]:fields[5]], stdout=subprocess.PIPE,
                            check=True).stdout
    out, offset = [], 0
    while offset < len(stream):
        value = struct.unpack_from("<q", stream, offset)[0]
        offset += 8
        if value < 0:
            out.append(stream[offset:offset - value])
            offset -= value
        else:
            with open(os.path.join(repo_path, "objects", objects[value][:2], objects[value][2:]), "rb") as handle:
                out.append(handle.read())
    assert len(b"".join(out)) == fields[9]
    return b"".join(out)


def _entry_object(repo_path, category, name):
    text = os.readlink(os.path.join(repo_path, category, name))
    assert text.startswith("../objects/")
    return text[len("../objects/"):].replace("/", "")


@pytest.fixture(scope="module")
def layouts(tmp_path_factory):
    base = tmp_path_factory.mktemp("pull-layouts")
    lay = str(base / "os")
    v1 = ocigen.write_bootc_image(lay, version="1", tag="1")
    v2 = ocigen.write_bootc_image(lay, version="2", tag="2")
    app = ocigen.write_image(str(base / "app"), APP_LAYERS, tag="1")
    idx = str(base / "idx")
    amd = ocigen.write_image(idx, APP_LAYERS + [[("file", "srv/amd", b"amd")]], architecture="amd64", add_ref=False)
    arm = ocigen.write_image(idx, APP_LAYERS + [[("file", "srv/arm", b"arm")]], architecture="arm64", add_ref=False)
    index = ocigen.write_index(idx, [amd, arm], tag="multi")
    return {"base": base, "os": lay, "v1": v1, "v2": v2, "app_dir": str(base / "app"), "app": app, "idx": idx,
            "amd": amd, "arm": arm, "index": index}


class Host:
    """``<root>/sysroot/composefs`` (a hand-written empty sha256 repository) and pull() with defaults."""

    def __init__(self, root):
        self.root = str(root)
        self.repo = os.path.join(self.root, "sysroot", "composefs")
        repo_builder.RepoBuilder(self.repo)
        os.makedirs(os.path.join(self.root, "run"))

    def pull(self, image, check_mode=False, **kwargs):
        return pull.pull_image(pull.PullRequest(image=image, root=self.root, **kwargs), check_mode=check_mode)

    def fails(self, image, failure, check_mode=False, **kwargs):
        with pytest.raises(ComposefsError) as err:
            self.pull(image, check_mode=check_mode, **kwargs)
        assert err.value.partial_result["failure"] == failure, str(err.value)
        return err.value

    def staging_dirs(self):
        """Anything a pull left beside the repository's own entries (it stages nothing: there must be none)."""
        return [n for n in os.listdir(self.repo) if n.startswith(".pull")]


@pytest.fixture
def host(tmp_path):
    return Host(tmp_path / "root")


def test_first_pull_then_unchanged(host, layouts, fsverity_tool):
    v1 = layouts["v1"]
    result = host.pull("oci:%s:1" % layouts["os"])
    assert result.changed and result.tag_changed and result.contacted_source
    assert result.manifest_digest == result.source_digest == v1["manifest_digest"]
    assert result.config_digest == v1["config_digest"] and result.form == "exact"
    assert result.tag == "localhost/bootc-" + v1["manifest_digest"] and result.previous_digest is None
    assert _tag_link(host.repo, result.tag) == "../../oci-manifest-" + v1["manifest_digest"]
    assert result.layers_fetched == v1["diff_ids"] and result.layers_reused == []
    assert result.bytes_fetched == sum(d["size"] for d in json.loads(v1["manifest"])["layers"])
    for diff_id in v1["diff_ids"]:
        tar_bytes = _reassemble(host.repo, _entry_object(host.repo, "streams", "oci-layer-" + diff_id))
        assert "sha256:" + __import__("hashlib").sha256(tar_bytes).hexdigest() == diff_id
    assert result.bootable and result.boot_verity and result.image_verity
    for verity in (result.boot_verity, result.image_verity):
        image_object = os.path.join(host.repo, "objects", verity[:2], verity[2:])
        assert _entry_object(host.repo, "images", verity) == verity
        assert repo_builder.fsverity_digest(fsverity_tool, image_object, "sha256") == verity
    assert result.commands == [["skopeo", "experimental-image-proxy"]]
    assert not host.staging_dirs() and not os.path.exists(result.progress_file)
    again = host.pull("oci:%s:1" % layouts["os"])
    assert not again.changed and not again.tag_changed and again.contacted_source
    assert again.layers_fetched == [] and again.layers_reused == v1["diff_ids"] and again.bytes_fetched == 0
    assert (again.image_verity, again.boot_verity, again.previous_digest) == (result.image_verity, result.boot_verity,
                                                                              v1["manifest_digest"])


def test_check_mode_predicts_and_writes_nothing(host, layouts):
    before = repo_builder.tree_snapshot(host.root)
    predicted = host.pull("oci:%s:1" % layouts["os"], check_mode=True)
    assert repo_builder.tree_snapshot(host.root) == before
    assert predicted.changed and predicted.check_mode and predicted.progress_file is None
    assert predicted.manifest_digest == layouts["v1"]["manifest_digest"]
    assert predicted.layers_fetched == layouts["v1"]["diff_ids"]
    assert any(a.startswith("would tag localhost/bootc-") for a in predicted.actions)
    done = host.pull("oci:%s:1" % layouts["os"])
    assert done.changed and done.layers_fetched == predicted.layers_fetched and done.tag == predicted.tag
    before = repo_builder.tree_snapshot(host.root)
    predicted = host.pull("oci:%s:1" % layouts["os"], check_mode=True)
    assert not predicted.changed and repo_builder.tree_snapshot(host.root) == before


def test_shared_layers_are_reused(host, layouts):
    v1, v2 = layouts["v1"], layouts["v2"]
    host.pull("oci:%s:1" % layouts["os"])
    second = host.pull("oci:%s:2" % layouts["os"])
    shared = [d for d in v2["diff_ids"] if d in v1["diff_ids"]]
    assert shared and second.layers_reused == shared
    assert second.layers_fetched == [d for d in v2["diff_ids"] if d not in shared]
    assert second.changed and second.manifest_digest == v2["manifest_digest"]
    assert _tag_link(host.repo, "localhost/bootc-" + v1["manifest_digest"]) == "../../oci-manifest-" + v1["manifest_digest"]


def test_pinned_digest_needs_no_network(host, layouts):
    digest = layouts["v1"]["manifest_digest"]
    first = host.pull("oci:%s:1@%s" % (layouts["os"], digest))
    assert first.changed and first.manifest_digest == digest
    missing_skopeo = ("/nonexistent/skopeo",)
    again = host.pull("oci:%s:1@%s" % (layouts["os"], digest), skopeo_command=missing_skopeo)
    assert not again.changed and not again.contacted_source and again.commands == []
    tagged = host.pull("oci:%s:1@%s" % (layouts["os"], digest), tag="pinned/os:1", pull_policy="newer",
                       skopeo_command=missing_skopeo)
    assert tagged.changed and tagged.tag_changed and not tagged.contacted_source
    assert _tag_link(host.repo, "pinned/os:1") == "../../oci-manifest-" + digest
    host.fails("oci:%s:1@%s" % (layouts["os"], digest), "missing-tool", pull_policy="always", skopeo_command=missing_skopeo)


def test_pinned_digest_must_match(host, layouts):
    err = host.fails("oci:%s:1@%s" % (layouts["os"], layouts["v2"]["manifest_digest"]), "digest-mismatch")
    assert layouts["v1"]["manifest_digest"] in str(err) and not os.path.exists(os.path.join(host.repo, "streams"))


def test_policies_with_a_custom_tag(host, layouts, tmp_path):
    lay = str(tmp_path / "moving")
    shutil.copytree(layouts["os"], lay)
    writer = ocigen.LayoutWriter(lay)
    writer.add_ref(layouts["v1"]["descriptor"], "stable")
    first = host.pull("oci:%s:stable" % lay, tag="apps/os:stable")
    assert first.changed and first.manifest_digest == layouts["v1"]["manifest_digest"]
    quiet = host.pull("oci:%s:stable" % lay, tag="apps/os:stable", skopeo_command=("/nonexistent/skopeo",))
    assert not quiet.changed and not quiet.contacted_source and quiet.manifest_digest == layouts["v1"]["manifest_digest"]
    writer.add_ref(layouts["v2"]["descriptor"], "stable")
    still = host.pull("oci:%s:stable" % lay, tag="apps/os:stable")
    assert not still.changed and not still.contacted_source
    moved = host.pull("oci:%s:stable" % lay, tag="apps/os:stable", pull_policy="newer")
    assert moved.changed and moved.tag_changed and moved.previous_digest == layouts["v1"]["manifest_digest"]
    assert moved.manifest_digest == layouts["v2"]["manifest_digest"]
    assert _tag_link(host.repo, "apps/os:stable") == "../../oci-manifest-" + layouts["v2"]["manifest_digest"]
    always = host.pull("oci:%s:stable" % lay, tag="apps/os:stable", pull_policy="always")
    assert not always.changed and always.contacted_source and always.layers_fetched == []


def test_index_platforms(host, layouts):
    arm = host.pull("oci:%s:multi" % layouts["idx"], platform="linux/arm64", tag="apps/multi:arm")
    assert arm.manifest_digest == layouts["arm"]["manifest_digest"] and arm.platform == "linux/arm64"
    amd = host.pull("oci:%s:multi" % layouts["idx"], platform="amd64", tag="apps/multi:amd")
    assert amd.manifest_digest == layouts["amd"]["manifest_digest"]
    assert amd.layers_reused == layouts["amd"]["diff_ids"][:1]
    assert not arm.bootable and arm.boot_verity is None and arm.image_verity and arm.warnings == []
    untagged = host.pull("oci:%s:multi" % layouts["idx"], platform="amd64")
    assert untagged.tag == "localhost/bootc-" + layouts["amd"]["manifest_digest"]
    assert len(untagged.warnings) == 1 and "not a bootc image" in untagged.warnings[0]


def test_app_image_beside_os_images(host, layouts):
    host.pull("oci:%s:1" % layouts["os"])
    app = host.pull("oci:%s:1" % layouts["app_dir"], tag="quay.io/example/app:1")
    assert app.changed and not app.bootable and app.boot_verity is None
    assert _tag_link(host.repo, "quay.io/example/app:1") == "../../oci-manifest-" + layouts["app"]["manifest_digest"]
    assert _tag_link(host.repo, "localhost/bootc-" + layouts["v1"]["manifest_digest"]) is not None


def _stored_blob(repo_path, stream_name):
    """The single external object a manifest or config stream stores (spec 10.2), read from disk."""
    stream = _entry_object(repo_path, "streams", stream_name)
    return _reassemble(repo_path, stream)


def test_docker_archive_is_stored_as_skopeos_conversion(host, layouts, tmp_path):
    """A Docker schema 2 source: skopeo's proxy hands out an OCI conversion only; it is stored under its own digest."""
    archive = str(tmp_path / "os.tar")
    subprocess.run(["skopeo", "copy", "-q", "oci:%s:1" % layouts["os"], "docker-archive:%s:sim:1" % archive], check=True)

    def inspect(*extra):
        return subprocess.run(["skopeo", "inspect"] + list(extra) + ["docker-archive:" + archive], stdout=subprocess.PIPE,
                              check=True).stdout

    raw = json.loads(inspect("--raw"))
    assert raw["mediaType"] == "application/vnd.docker.distribution.manifest.v2+json"
    first = host.pull("docker-archive:" + archive)
    assert first.form == "converted" and first.source_digest == json.loads(inspect())["Digest"] != first.manifest_digest
    manifest_bytes = _stored_blob(host.repo, "oci-manifest-" + first.manifest_digest)
    assert "sha256:" + __import__("hashlib").sha256(manifest_bytes).hexdigest() == first.manifest_digest
    manifest = json.loads(manifest_bytes)
    assert manifest["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert [(d["digest"], d["size"]) for d in manifest["layers"]] == [(d["digest"], d["size"]) for d in raw["layers"]]
    assert [d["digest"] for d in raw["layers"]] == layouts["v1"]["diff_ids"]  # docker-archive names layers by diff_id
    config_bytes = _stored_blob(host.repo, "oci-config-" + first.config_digest)
    assert "sha256:" + __import__("hashlib").sha256(config_bytes).hexdigest() == first.config_digest == manifest["config"]["digest"]
    assert json.loads(config_bytes) == json.loads(inspect("--config"))  # skopeo's OCI view of the Docker config
    assert first.layers_fetched == layouts["v1"]["diff_ids"]
    for diff_id in layouts["v1"]["diff_ids"]:
        tar_bytes = _reassemble(host.repo, _entry_object(host.repo, "streams", "oci-layer-" + diff_id))
        assert "sha256:" + __import__("hashlib").sha256(tar_bytes).hexdigest() == diff_id
    assert _tag_link(host.repo, first.tag) == "../../oci-manifest-" + first.manifest_digest
    again = host.pull("docker-archive:" + archive)
    assert not again.changed and again.manifest_digest == first.manifest_digest


def test_failed_pull_leaves_no_tag_and_resumes(host, layouts, tmp_path):
    lay = str(tmp_path / "broken")
    shutil.copytree(layouts["os"], lay)
    layers = json.loads(layouts["v1"]["manifest"])["layers"]
    blob = os.path.join(lay, "blobs", "sha256", layers[1]["digest"].split(":")[1])
    good = open(blob, "rb").read()
    with open(blob, "wb") as handle:
        handle.write(good[:-1] + bytes([good[-1] ^ 1]))
    err = host.fails("oci:%s:1" % lay, "digest-mismatch")
    assert err.partial_result["actions"] and err.partial_result["commands"] == [["skopeo", "experimental-image-proxy"]]
    assert not os.path.isdir(os.path.join(host.repo, "streams", "refs")) or not os.listdir(
        os.path.join(host.repo, "streams", "refs", "oci"))
    assert not host.staging_dirs()
    with open(blob, "wb") as handle:
        handle.write(good)
    done = host.pull("oci:%s:1" % lay)
    assert done.changed and done.layers_reused == layouts["v1"]["diff_ids"][:1]  # imported before the failure
    assert done.layers_fetched == layouts["v1"]["diff_ids"][1:]


def test_stale_staging_is_removed_unless_locked(host, layouts):
    stale = os.path.join(host.repo, pull_apply.STAGING_PREFIX + "stale")
    busy = os.path.join(host.repo, pull_apply.STAGING_PREFIX + "busy")
    young = os.path.join(host.repo, pull_apply.STAGING_NEW_PREFIX + "young")
    old = os.path.join(host.repo, pull_apply.STAGING_NEW_PREFIX + "old")
    for path in (stale, busy, young, old):
        os.makedirs(os.path.join(path, "blobs"))
    os.utime(old, (time.time() - 3600, time.time() - 3600))
    holder = repo_builder.hold_lock_process(busy, "EX")
    try:
        result = host.pull("oci:%s:1" % layouts["os"])
    finally:
        holder.stdin.close()
        holder.wait()
    assert not os.path.exists(stale) and os.path.isdir(busy)
    assert os.path.isdir(young) and not os.path.exists(old)
    assert any(stale in action for action in result.actions)


def test_lock_is_held_for_the_whole_pull(host, layouts, monkeypatch):
    seen = {}
    real_import = importer.import_image

    def spying_import(repo, source, **kwargs):
        seen["gc_could_lock"] = repo_builder.try_lock_process(host.repo, "EX")
        with open(os.path.join(host.root, "run", "bootc-composefs", "pull-progress.json")) as handle:
            seen["progress"] = json.load(handle)
        return real_import(repo, source, **kwargs)

    monkeypatch.setattr(importer, "import_image", spying_import)
    host.pull("oci:%s:1" % layouts["os"])
    assert seen["gc_could_lock"] is False
    progress = seen["progress"]
    assert progress["phase"] == "fetching" and progress["version"] == 1 and progress["pid"] == os.getpid()
    assert progress["layers_total"] == 2 and progress["bytes_total"] == sum(
        d["size"] for d in json.loads(layouts["v1"]["manifest"])["layers"])
    assert progress["image"] == "oci:%s:1" % layouts["os"]


def test_a_running_gc_makes_the_pull_wait(host, layouts):
    holder = repo_builder.hold_lock_process(host.repo, "EX")
    try:
        err = host.fails("oci:%s:1" % layouts["os"], "repository-locked", lock_timeout=0.3)
    finally:
        holder.stdin.close()
        holder.wait()
    assert not err.partial_result["commands"]


def test_no_space_is_refused_before_fetching(host, layouts, monkeypatch):
    real = os.statvfs

    def full(path):
        stats = real(path)
        return os.statvfs_result((stats.f_bsize, stats.f_frsize, stats.f_blocks, 0, 0) + tuple(stats)[5:])

    monkeypatch.setattr(pull_apply.os, "statvfs", full)
    err = host.fails("oci:%s:1" % layouts["os"], "no-space")
    assert "free space" in str(err) and not host.staging_dirs()


def test_enospc_while_writing_is_no_space():
    failed = pull._os_error(OSError(errno.ENOSPC, "No space left on device", "/x"), "staging layer")  # pylint: disable=protected-access
    assert failed.partial_result == {"failure": "no-space"} and "composefs_gc" in str(failed)


@pytest.mark.parametrize("kwargs, failure, message", [
    pytest.param({"image": "ftp://quay.io/x"}, "unknown-transport", "unknown transport", id="unknown-transport"),
    pytest.param({"image": "quay.io/x", "transport": "nope"}, "unknown-transport", "unknown transport", id="bad-option"),
    pytest.param({"image": "ostree-remote-image:fedora:docker://q/x:1"}, "bad-reference", "ostree remote", id="ostree-remote"),
    pytest.param({"image": "q/x:1", "platform": "a/b/c/d"}, "bad-reference", "platform", id="bad-platform"),
    pytest.param({"image": "q/x:1", "tag": "@nope"}, "bad-reference", "reserved", id="bad-tag"),
    pytest.param({"image": "q/x:1", "skopeo_command": ("/nonexistent/skopeo",)}, "missing-tool", "not installed",
                 id="missing-skopeo"),
])
def test_refusals(host, kwargs, failure, message):
    image = kwargs.pop("image")
    err = host.fails(image, failure, **kwargs)
    assert message in str(err)


def test_missing_repository(tmp_path, layouts):
    os.makedirs(tmp_path / "bare" / "sysroot")
    with pytest.raises(ComposefsError) as err:
        pull.pull_image(pull.PullRequest(image="oci:%s:1" % layouts["os"], root=str(tmp_path / "bare")))
    assert err.value.partial_result["failure"] == "repository" and "composefs" in str(err.value)


def test_source_errors_keep_the_commands(host, layouts):
    err = host.fails("oci:%s:nosuchtag" % layouts["os"], "not-found")
    assert isinstance(err, ToolError) and err.partial_result["commands"] == [["skopeo", "experimental-image-proxy"]]


class _StallingRelay:
    """127.0.0.1:<port> -> the registry, forwarding until ``budget`` bytes came back, then silence (connections kept)."""

    def __init__(self, target_port, budget):
        import socket  # pylint: disable=import-outside-toplevel
        import threading  # pylint: disable=import-outside-toplevel

        self.budget = budget
        self.sockets = []
        self.server = socket.create_server(("127.0.0.1", 0))
        self.address = "127.0.0.1:%d" % self.server.getsockname()[1]

        def pump(source, sink, counted):
            try:
                while True:
                    data = source.recv(16384)
                    if not data:
                        return
                    if counted:
                        self.budget -= len(data)
                        if self.budget < 0:
                            return  # keep both sockets open, send nothing more
                    sink.sendall(data)
            except OSError:
                return

        def accept():
            while True:
                try:
                    client, _addr = self.server.accept()
                except OSError:
                    return
                upstream = socket.create_connection(("127.0.0.1", target_port))
                self.sockets += [client, upstream]
                threading.Thread(target=pump, args=(client, upstream, False), daemon=True).start()
                threading.Thread(target=pump, args=(upstream, client, True), daemon=True).start()

        threading.Thread(target=accept, daemon=True).start()

    def close(self):
        self.server.close()
        for sock in self.sockets:
            sock.close()


def test_a_silent_source_is_unreachable(host, registry, tmp_path):
    layout = str(tmp_path / "silent")
    ocigen.write_image(layout, [[("dir", "usr"), ("file", "usr/blob", os.urandom(4 << 20))]], tag="1")
    subprocess.run(["skopeo", "copy", "-q", "--dest-tls-verify=false", "oci:%s:1" % layout,
                    "docker://%s/unit/silent:1" % registry.address], check=True)
    relay = _StallingRelay(registry.port, 1 << 20)
    started = time.monotonic()
    try:
        err = host.fails("%s/unit/silent:1" % relay.address, "unreachable", tls_verify=False, data_timeout=2.0)
    finally:
        relay.close()
    assert "no data from the source for 2 seconds" in str(err) and time.monotonic() - started < 60
    assert not host.staging_dirs() and not os.path.isdir(os.path.join(host.repo, "streams", "refs"))
