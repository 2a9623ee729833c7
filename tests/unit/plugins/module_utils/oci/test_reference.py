# -*- coding: utf-8 -*-
"""oci/reference.py: transports, bootc's ostree-* origin forms, pinned digests (spec bootc-composefs-host.md §1.4).

The forms come from the spec's origin table and from containers-transports(5); the skopeo names
(``source_name``) are checked against what real ``skopeo inspect`` accepts in test_skopeo_reads_source_names.
"""

import os
import subprocess

import pytest

from ansible_collections.bootc.composefs.plugins.module_utils.errors import FormatError
from ansible_collections.bootc.composefs.plugins.module_utils.oci import reference
from ansible_collections.bootc.composefs.tests.tools import ocigen

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize("text, transport, image, signature, remote", [
    pytest.param("ostree-unverified-image:docker://quay.io/example/os:42", "registry", "quay.io/example/os:42", None, None,
                 id="unverified-docker"),
    pytest.param("ostree-unverified-registry:quay.io/example/os:42", "registry", "quay.io/example/os:42", None, None,
                 id="unverified-registry"),
    pytest.param("ostree-image-signed:docker://quay.io/example/os@" + DIGEST, "registry", "quay.io/example/os@" + DIGEST,
                 "container-policy", None, id="signed-pinned"),
    pytest.param("ostree-remote-image:fedora:docker://quay.io/x:1", "registry", "quay.io/x:1", "ostree-remote", "fedora",
                 id="remote-image"),
    pytest.param("ostree-remote-registry:fedora:quay.io/x:1", "registry", "quay.io/x:1", "ostree-remote", "fedora",
                 id="remote-registry"),
    pytest.param("ostree-unverified-image:containers-storage:localhost/bootc-derived", "containers-storage",
                 "localhost/bootc-derived", None, None, id="containers-storage"),
    pytest.param("ostree-unverified-image:oci:/srv/os:1", "oci", "/srv/os:1", None, None, id="oci"),
    pytest.param("ostree-unverified-image:oci-archive:/srv/os.tar", "oci-archive", "/srv/os.tar", None, None, id="oci-archive"),
])
def test_origin_forms(text, transport, image, signature, remote):
    ref = reference.parse_image_reference(text)
    assert (ref.transport, ref.image, ref.signature, ref.remote, ref.raw) == (transport, image, signature, remote, text)
    assert reference.parse_reference(text) == ref


@pytest.mark.parametrize("text, transport_option, transport, image", [
    pytest.param("quay.io/fedora/fedora-bootc:42", None, "registry", "quay.io/fedora/fedora-bootc:42", id="bare-registry"),
    pytest.param("fedora:42", None, "registry", "fedora:42", id="short-name-with-tag"),
    pytest.param("localhost:5000/os", None, "registry", "localhost:5000/os", id="host-port"),
    pytest.param("127.0.0.1:5000/os:v1", None, "registry", "127.0.0.1:5000/os:v1", id="ip-port"),
    pytest.param("docker://quay.io/os:1", None, "registry", "quay.io/os:1", id="docker-scheme"),
    pytest.param("registry:quay.io/os:1", None, "registry", "quay.io/os:1", id="registry-prefix"),
    pytest.param("docker://quay.io/os:1", "registry", "registry", "quay.io/os:1", id="agreeing-option"),
    pytest.param("oci:/srv/os:1", None, "oci", "/srv/os:1", id="oci"),
    pytest.param("/srv/os:1", "oci", "oci", "/srv/os:1", id="oci-by-option"),
    pytest.param("oci-archive:/srv/os.tar:1", None, "oci-archive", "/srv/os.tar:1", id="oci-archive"),
    pytest.param("docker-archive:/srv/os.tar", None, "docker-archive", "/srv/os.tar", id="docker-archive"),
    pytest.param("/srv/os.tar", "docker-archive", "docker-archive", "/srv/os.tar", id="docker-archive-by-option"),
    pytest.param("containers-storage:[overlay@/s+/r]localhost/os", None, "containers-storage", "[overlay@/s+/r]localhost/os",
                 id="containers-storage-with-store"),
    pytest.param("localhost/os:latest", "containers-storage", "containers-storage", "localhost/os:latest",
                 id="containers-storage-by-option"),
    pytest.param("  quay.io/os:1 \n", None, "registry", "quay.io/os:1", id="surrounding-space"),
])
def test_module_forms(text, transport_option, transport, image):
    ref = reference.parse_reference(text, transport_option)
    assert (ref.transport, ref.image, ref.signature, ref.remote) == (transport, image, None, None)
    assert not ref.unverified


@pytest.mark.parametrize("text, transport_option, message", [
    pytest.param("", None, "empty", id="empty"),
    pytest.param("ftp://quay.io/x", None, "unknown transport 'ftp'", id="unknown-scheme-transport"),
    pytest.param("foo:/bar", None, "unknown transport 'foo'", id="unknown-word-transport"),
    pytest.param("quay.io/x", "ftp", "unknown transport 'ftp'", id="unknown-option"),
    pytest.param("oci:/srv/os", "registry", "names transport 'oci'", id="contradicting-option"),
    pytest.param("docker:quay.io/x", None, "docker://", id="docker-without-slashes"),
    pytest.param("oci:", None, "empty image name", id="empty-name"),
    pytest.param("ostree-whatever:docker://x", None, "unknown scheme", id="unknown-ostree-scheme"),
    pytest.param("ostree-remote-image:fedora", None, "remote", id="remote-without-reference"),
])
def test_errors(text, transport_option, message):
    with pytest.raises(FormatError, match=message):
        reference.parse_reference(text, transport_option)


@pytest.mark.parametrize("text, name, pinned", [
    pytest.param("quay.io/os@" + DIGEST, "docker://quay.io/os@" + DIGEST, DIGEST, id="registry-keeps-digest"),
    pytest.param("quay.io/os:1", "docker://quay.io/os:1", None, id="registry-tag"),
    pytest.param("oci:/srv/os@" + DIGEST, "oci:/srv/os", DIGEST, id="oci-drops-digest"),
    pytest.param("oci:/srv/os:1", "oci:/srv/os:1", None, id="oci-ref-name"),
    pytest.param("docker-archive:/x.tar@" + DIGEST, "docker-archive:/x.tar", DIGEST, id="archive-drops-digest"),
    pytest.param("containers-storage:localhost/os@" + DIGEST, "containers-storage:localhost/os@" + DIGEST, DIGEST,
                 id="storage-keeps-digest"),
    pytest.param("quay.io/os@sha256:abc", "docker://quay.io/os@sha256:abc", None, id="short-digest-is-not-a-pin"),
])
def test_source_names_and_pins(text, name, pinned):
    ref = reference.parse_reference(text)
    assert ref.source_name() == name
    assert ref.pinned_digest == pinned


def test_unverified_and_display():
    ref = reference.parse_reference("ostree-unverified-registry:quay.io/os:1")
    assert ref.unverified and ref.display() == "docker://quay.io/os:1"
    assert not reference.parse_reference("ostree-image-signed:docker://quay.io/os:1").unverified
    assert reference.parse_reference("oci:/srv/os:1").display() == "oci:/srv/os:1"


def test_split_pinned_digest():
    assert reference.split_pinned_digest("a/b@" + DIGEST) == ("a/b", DIGEST)
    assert reference.split_pinned_digest("a/b:1") == ("a/b:1", None)


def test_host_origin_reexports_the_same_parser():
    from ansible_collections.bootc.composefs.plugins.module_utils.host import origin  # pylint: disable=import-outside-toplevel

    assert origin.parse_image_reference is reference.parse_image_reference
    assert origin.ImageReference is reference.ImageReference


def test_skopeo_reads_source_names(tmp_path):
    """The oracle: real ``skopeo inspect`` opens what source_name() produces, and reports ocigen's digest."""
    built = ocigen.write_image(str(tmp_path / "lay"), [[("file", "a", b"x" * 100)]], tag="t1")
    for text in ("oci:%s:t1" % (tmp_path / "lay"), "oci:%s:t1@%s" % (tmp_path / "lay", built["manifest_digest"]),
                 "ostree-unverified-image:oci:%s:t1" % (tmp_path / "lay")):
        name = reference.parse_reference(text).source_name()
        proc = subprocess.run(["skopeo", "inspect", "--format", "{{.Digest}}", name], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, env=dict(os.environ, LC_ALL="C"), check=False)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.decode().strip() == built["manifest_digest"]
