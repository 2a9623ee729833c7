# -*- coding: utf-8 -*-
"""oci/proxy.py and proxy_source.py against real ``skopeo experimental-image-proxy`` (and a scripted fake for broken proxies).

Oracles: ocigen's digests (hashlib over the blobs it writes), ``skopeo inspect`` for the digest a
source reports, ``skopeo copy`` to make docker-archive and Docker schema 2 ``dir:`` sources, and
``hashlib`` over the tar bytes ocigen builds for uncompressed layer sizes and diff_ids.
"""

import hashlib
import json
import os
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from ansible_collections.bootc.composefs.plugins.module_utils.errors import ComposefsError, ToolError
from ansible_collections.bootc.composefs.plugins.module_utils.oci import proxy, proxy_source, skopeo
from ansible_collections.bootc.composefs.plugins.module_utils.oci.layout import Platform
from ansible_collections.bootc.composefs.tests.tools import ocigen

LAYERS = [
    [("dir", "usr"), ("file", "usr/a", b"alpha" * 300), ("file", "usr/small", b"s")],
    [("dir", "etc"), ("file", "etc/b", b"beta" * 5000, {"mode": 0o600})],
]


def _run(argv):
    proc = subprocess.run([str(a) for a in argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          env=dict(os.environ, LC_ALL="C"), check=False)
    assert proc.returncode == 0, proc.stderr.decode()
    return proc.stdout.decode()


def _inspect_digest(name):
    return _run(["skopeo", "inspect", "--format", "{{.Digest}}", name]).strip()


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    base = tmp_path_factory.mktemp("proxy")
    lay = str(base / "lay")
    built = ocigen.write_image(lay, LAYERS, tag="v1")
    amd = ocigen.write_image(str(base / "idx"), LAYERS, architecture="amd64", add_ref=False)
    arm = ocigen.write_image(str(base / "idx"), LAYERS[:1], architecture="arm64", add_ref=False)
    index = ocigen.write_index(str(base / "idx"), [amd, arm], tag="multi")
    _run(["skopeo", "copy", "-q", "oci:%s:v1" % lay, "docker-archive:%s:sim:v1" % (base / "d.tar")])
    _run(["skopeo", "copy", "-q", "--format", "v2s2", "oci:%s:v1" % lay, "dir:%s" % (base / "v2s2")])
    return {"base": base, "lay": lay, "built": built, "idx": str(base / "idx"), "amd": amd, "arm": arm, "index": index,
            "tars": [ocigen.build_layer_tar(entries) for entries in LAYERS]}


def _proxy(name, **options):
    return proxy.ImageProxy(skopeo.proxy_argv(["skopeo"], skopeo.SourceOptions(**options)), name)


def _read(pipe):
    with pipe:
        data = pipe.read()
        pipe.finish()
    return data


def test_exact_oci_layout(images):
    built = images["built"]
    name = "oci:%s:v1" % images["lay"]
    with _proxy(name) as image_proxy:
        assert image_proxy.version.startswith("0.2.")
        source = proxy_source.ProxySource(image_proxy, name, "oci").open()
        image = source.resolve()
        assert image.form == "exact"
        assert image.source_digest == image.manifest_digest == built["manifest_digest"] == _inspect_digest(name)
        assert image.manifest_bytes == built["manifest"] and image.config_bytes == built["config"]
        assert image.config_digest == built["config_digest"] and image.is_container_image
        assert [layer.layer_id for layer in image.layers] == built["diff_ids"]
        for layer, descriptor in zip(image.layers, json.loads(built["manifest"])["layers"]):
            assert not layer.uncompressed and (layer.fetch_digest, layer.fetch_size) == (descriptor["digest"], descriptor["size"])
            assert layer.media_type == descriptor["mediaType"] and layer.compression == "gzip"
            data = _read(source.open_layer(layer))
            assert "sha256:" + hashlib.sha256(data).hexdigest() == descriptor["digest"] and len(data) == descriptor["size"]
        source.close()


def test_index_platforms(images):
    name = "oci:%s:multi" % images["idx"]
    for platform, expected in ((Platform("linux", "amd64"), images["amd"]), (Platform("linux", "arm64"), images["arm"])):
        with _proxy(name, platform=platform) as image_proxy:
            image = proxy_source.ProxySource(image_proxy, name, "oci").open().resolve()
            assert image.manifest_digest == expected["manifest_digest"]
            assert [layer.layer_id for layer in image.layers] == expected["diff_ids"]
    with _proxy(name, platform=Platform("linux", "s390x")) as image_proxy:
        with pytest.raises(ToolError) as err:
            proxy_source.ProxySource(image_proxy, name, "oci").open().resolve()
    assert err.value.partial_result["failure"] == skopeo.NOT_FOUND


def test_docker_archive_is_converted_and_serves_tars(images):
    name = "docker-archive:%s" % (images["base"] / "d.tar")
    raw = json.loads(_run(["skopeo", "inspect", "--raw", name]))
    with _proxy(name) as image_proxy:
        source = proxy_source.ProxySource(image_proxy, name, "docker-archive").open()
        image = source.resolve()
        assert image.form == "converted"
        assert image.source_digest == _inspect_digest(name) == "sha256:" + hashlib.sha256(
            _run(["skopeo", "inspect", "--raw", name]).encode()).hexdigest()
        assert image.manifest_digest == "sha256:" + hashlib.sha256(image.manifest_bytes).hexdigest() != image.source_digest
        assert image.config_digest == "sha256:" + hashlib.sha256(image.config_bytes).hexdigest()
        stored = json.loads(image.manifest_bytes)["layers"]
        assert [d["digest"] for d in stored] == [d["digest"] for d in raw["layers"]] == images["built"]["diff_ids"]
        for layer, tar_bytes, diff_id in zip(image.layers, images["tars"], images["built"]["diff_ids"]):
            assert layer.uncompressed and layer.layer_id == layer.fetch_digest == diff_id and layer.compression == "none"
            assert layer.fetch_size == len(tar_bytes)
            assert _read(source.open_layer(layer)) == tar_bytes


def test_docker_schema2_is_converted(images):
    name = "dir:%s" % (images["base"] / "v2s2")
    raw = json.loads((images["base"] / "v2s2" / "manifest.json").read_bytes())
    assert raw["mediaType"] == "application/vnd.docker.distribution.manifest.v2+json"
    with _proxy(name) as image_proxy:
        source = proxy_source.ProxySource(image_proxy, name, "dir").open()
        image = source.resolve()
        assert image.form == "converted"
        assert image.source_digest == _inspect_digest(name) != image.manifest_digest
        assert image.manifest["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
        assert image.config_digest == "sha256:" + hashlib.sha256(image.config_bytes).hexdigest()
        assert json.loads(image.config_bytes)["rootfs"]["diff_ids"] == images["built"]["diff_ids"]
        assert [layer.fetch_digest for layer in image.layers] == [d["digest"] for d in raw["layers"]]
        for layer in image.layers:
            blob = (images["base"] / "v2s2" / layer.fetch_digest.split(":")[1]).read_bytes()
            assert _read(source.open_layer(layer)) == blob


def test_payload_abort_keeps_the_conversation(images):
    name = "oci:%s:v1" % images["lay"]
    layers = json.loads(images["built"]["manifest"])["layers"]
    with _proxy(name) as image_proxy:
        handle = image_proxy.open_image(name)
        pipe = image_proxy.get_blob(handle, layers[1]["digest"], layers[1]["size"])
        assert len(pipe.read(10)) == 10
        pipe.close()
        unread = image_proxy.get_blob(handle, layers[0]["digest"], layers[0]["size"])  # abandoned by the next call
        assert image_proxy.blob_size(handle, layers[1]["digest"]) == layers[1]["size"]
        assert unread.closed
        assert len(image_proxy.read_blob(handle, layers[0]["digest"], layers[0]["size"])) == layers[0]["size"]
        digest, data = image_proxy.get_manifest(handle)
        assert (digest, data) == (images["built"]["manifest_digest"], images["built"]["manifest"])
        image_proxy.close_image(handle)


def test_errors_from_skopeo(images, tmp_path):
    name = "oci:%s:v1" % images["lay"]
    layers = json.loads(images["built"]["manifest"])["layers"]
    with _proxy(name) as image_proxy:
        with pytest.raises(ToolError) as err:
            image_proxy.open_image("oci:%s:nope" % images["lay"])
        assert err.value.partial_result["failure"] == skopeo.NOT_FOUND and "nope" in str(err.value)
        handle = image_proxy.open_image(name)
        with pytest.raises(ToolError) as err:
            image_proxy.read_blob(handle, "sha256:" + "0" * 64, 10)
        assert err.value.partial_result["failure"] == skopeo.NOT_FOUND
        with pytest.raises(ToolError) as err:
            image_proxy.read_blob(handle, layers[0]["digest"], layers[0]["size"] - 1)
        assert err.value.partial_result["failure"] == skopeo.DIGEST_MISMATCH
        assert image_proxy.read_blob(handle, layers[1]["digest"], layers[1]["size"])  # still in step
    with pytest.raises(ToolError) as err:
        with proxy.ImageProxy([str(tmp_path / "no-skopeo")], "x"):
            pass
    assert err.value.partial_result["failure"] == skopeo.MISSING_TOOL


def test_corrupted_blob_is_a_digest_mismatch(images, tmp_path):
    copy = tmp_path / "lay"
    _run(["cp", "-a", images["lay"], str(copy)])
    layer = json.loads(images["built"]["manifest"])["layers"][1]
    path = copy / "blobs" / "sha256" / layer["digest"].split(":")[1]
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    name = "oci:%s:v1" % copy
    with _proxy(name) as image_proxy:
        handle = image_proxy.open_image(name)
        with pytest.raises(ToolError) as err:
            image_proxy.read_blob(handle, layer["digest"], layer["size"])
    assert err.value.partial_result["failure"] == skopeo.DIGEST_MISMATCH


FAKE_PROXY = textwrap.dedent('''\
    import array, json, os, socket, sys, time
    mode = sys.argv[1]
    sock = socket.socket(fileno=0)
    def reply(value=None, fd=None, pipeid=0, success=True, error=""):
        data = json.dumps({"success": success, "value": value, "pipeid": pipeid, "error": error}).encode()
        anc = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [fd]))] if fd is not None else []
        sock.sendmsg([data], anc)
    while True:
        message = sock.recv(65536)
        if not message:
            break
        method = json.loads(message)["method"]
        if mode == "silent":
            time.sleep(30)
        elif mode == "old":
            reply("0.1.0")
        elif mode == "die":
            sys.stderr.write("fatal: the proxy broke\\n")
            sys.exit(3)
        elif method == "Initialize":
            reply("0.2.3")
        elif method == "OpenImage":
            reply(1)
        elif method == "GetBlob":
            read_end, write_end = os.pipe()
            reply(10, fd=read_end, pipeid=write_end)
            time.sleep(30)
''')


@pytest.fixture
def fake_proxy(tmp_path):
    script = tmp_path / "fake_proxy.py"
    script.write_text(FAKE_PROXY)
    return lambda mode: [sys.executable, str(script), mode]


def test_broken_proxies(fake_proxy):
    with pytest.raises(ToolError) as err:
        proxy.ImageProxy(fake_proxy("silent"), "docker://x", reply_timeout=0.5).start()
    assert err.value.partial_result["failure"] == skopeo.UNREACHABLE and "did not answer Initialize" in str(err.value)
    with pytest.raises(ToolError) as err:
        proxy.ImageProxy(fake_proxy("old"), "docker://x").start()
    assert "protocol '0.1.0'" in str(err.value)
    with pytest.raises(ToolError) as err:
        proxy.ImageProxy(fake_proxy("die"), "docker://x").start()
    assert "exit code 3" in str(err.value) and "the proxy broke" in str(err.value)
    with proxy.ImageProxy(fake_proxy("stall"), "docker://x", data_timeout=0.5) as image_proxy:
        handle = image_proxy.open_image("docker://x")
        pipe = image_proxy.get_blob(handle, "sha256:" + "1" * 64, 10)
        with pytest.raises(ToolError) as err:
            pipe.read(5)
        assert err.value.partial_result["failure"] == skopeo.UNREACHABLE and "no data" in str(err.value)


def test_interrupt_ends_a_waiting_read(fake_proxy):
    with proxy.ImageProxy(fake_proxy("stall"), "docker://x", data_timeout=30) as image_proxy:
        handle = image_proxy.open_image("docker://x")
        pipe = image_proxy.get_blob(handle, "sha256:" + "1" * 64, 10)
        caught = []

        def read():
            try:
                pipe.read(5)
            except ComposefsError as err:
                caught.append(err)

        reader = threading.Thread(target=read)
        started = time.monotonic()
        reader.start()
        time.sleep(0.2)
        pipe.interrupt()
        reader.join(5)
        assert not reader.is_alive() and time.monotonic() - started < 5
        assert caught and "interrupted" in str(caught[0])
        image_proxy.kill()
