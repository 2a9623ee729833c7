"""host/origin.py: the .origin keyfile and container image references (spec §1.4, bootc state.rs/ostree-ext)."""

import pytest

from ansible_collections.bootc.composefs.plugins.module_utils.errors import FormatError
from ansible_collections.bootc.composefs.plugins.module_utils.host import origin
from ansible_collections.bootc.composefs.plugins.module_utils.host.paths import load_host_paths

# Spec §1.4 example, as tini writes it (no trailing newline).
SPEC_ORIGIN = (
    "[origin]\n"
    "container-image-reference = ostree-unverified-image:containers-storage:localhost/bootc-derived\n"
    "\n"
    "[boot]\n"
    "boot_type = bls\n"
    "digest = 0c5e2d4f0d8b7a51e9e3c9f7a0c1b2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9\n"
    "\n"
    "[image]\n"
    "manifest_digest = sha256:3f0d6c1e2b4a59788c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b"
)


def test_spec_example():
    parsed = origin.parse_origin(SPEC_ORIGIN)
    assert parsed.boot_type == "bls"
    assert parsed.boot_digest == "0c5e2d4f0d8b7a51e9e3c9f7a0c1b2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9"
    assert parsed.manifest_digest == "sha256:3f0d6c1e2b4a59788c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b"
    assert parsed.container_image_reference == "ostree-unverified-image:containers-storage:localhost/bootc-derived"
    assert (parsed.image.transport, parsed.image.image, parsed.image.signature) == (
        "containers-storage", "localhost/bootc-derived", None)
    assert [section[0] for section in parsed.sections] == ["origin", "boot", "image"]


def test_keyfile_forms():
    text = "  ; comment\n# comment\n[boot]\nboot_type=uki\n  digest   =   abc  \n[origin]\n[boot]\nextra = a = b\nboot_type = bls"
    sections = origin.parse_keyfile(text)
    assert sections == {"boot": {"boot_type": "bls", "digest": "abc", "extra": "a = b"}, "origin": {}}


@pytest.mark.parametrize("text, message", [
    pytest.param("boot_type = bls\n[boot]\n", "before any", id="item-before-section"),
    pytest.param("[boot\nboot_type = bls\n", "section header", id="unclosed-section"),
    pytest.param("[boot]\njust words\n", "key = value", id="line-without-equals"),
    pytest.param("[boot]\n= bls\n", "key = value", id="empty-key"),
])
def test_keyfile_errors(text, message):
    with pytest.raises(FormatError, match=message):
        origin.parse_keyfile(text)


@pytest.mark.parametrize("text, transport, image, signature, remote", [
    pytest.param("ostree-unverified-image:docker://quay.io/example/os:42", "registry", "quay.io/example/os:42", None, None,
                 id="docker-transport-is-registry"),
    pytest.param("ostree-unverified-image:registry:quay.io/example/os:42", "registry", "quay.io/example/os:42", None, None,
                 id="registry-transport"),
    pytest.param("ostree-unverified-registry:quay.io/example/foo:sometag", "registry", "quay.io/example/foo:sometag", None, None,
                 id="unverified-registry-shorthand"),
    pytest.param("ostree-image-signed:docker://quay.io/example/os@sha256:" + "a" * 64, "registry",
                 "quay.io/example/os@sha256:" + "a" * 64, "container-policy", None, id="signed"),
    pytest.param("ostree-remote-image:fedora:docker://quay.io/example/foo:sometag", "registry", "quay.io/example/foo:sometag",
                 "ostree-remote", "fedora", id="ostree-remote-image"),
    pytest.param("ostree-remote-registry:fedora:quay.io/fedora/fedora-bootc:latest", "registry",
                 "quay.io/fedora/fedora-bootc:latest", "ostree-remote", "fedora", id="ostree-remote-registry"),
    pytest.param("ostree-unverified-image:containers-storage:localhost/bootc-derived", "containers-storage",
                 "localhost/bootc-derived", None, None, id="containers-storage"),
    pytest.param("ostree-unverified-image:oci:/path/to/oci-dir:tag", "oci", "/path/to/oci-dir:tag", None, None, id="oci-dir"),
    pytest.param("ostree-unverified-image:oci-archive:/x.tar", "oci-archive", "/x.tar", None, None, id="oci-archive"),
    pytest.param("ostree-unverified-image:dir:/srv/img", "dir", "/srv/img", None, None, id="dir"),
    pytest.param("ostree-unverified-image:docker-daemon:img:1", "docker-daemon", "img:1", None, None, id="docker-daemon"),
    pytest.param("ostree-unverified-image:oci:quay.io/test/image:latest", "oci", "quay.io/test/image:latest", None, None,
                 id="bootc-testutils-reference"),
])
def test_image_reference(text, transport, image, signature, remote):
    ref = origin.parse_image_reference(text)
    assert (ref.transport, ref.image, ref.signature, ref.remote, ref.raw) == (transport, image, signature, remote, text)


@pytest.mark.parametrize("text, message", [
    pytest.param("quay.io/example/os:42", "scheme", id="no-scheme"),
    pytest.param("plain", "no ':'", id="no-colon"),
    pytest.param("ostree-unverified-image:docker:quay.io/x", "docker://", id="docker-without-slashes"),
    pytest.param("ostree-unverified-image:ftp:quay.io/x", "unknown transport", id="unknown-transport"),
    pytest.param("ostree-unverified-image:oci:", "empty image name", id="empty-name"),
    pytest.param("ostree-unverified-image:quay.io", "no '<transport>:'", id="no-transport"),
    pytest.param("ostree-remote-image:fedora", "remote", id="remote-without-reference"),
])
def test_image_reference_errors(text, message):
    with pytest.raises(FormatError, match=message):
        origin.parse_image_reference(text)


@pytest.mark.parametrize("text, message", [
    pytest.param("[origin]\ncontainer-image-reference = ostree-unverified-image:docker://x/y\n", "boot_type", id="no-boot-type"),
    pytest.param("[boot]\nboot_type = BLS\n", "unknown", id="boot-type-is-case-sensitive"),
    pytest.param("[boot]\nboot_type = bls\n[image]\nmanifest_digest = sha256:abc\n", "sha256:<64 hex>", id="short-digest"),
    pytest.param("[boot]\nboot_type = bls\n[image]\nmanifest_digest = sha512:" + "a" * 64, "sha256", id="other-algorithm"),
    pytest.param("[boot]\nboot_type = bls\n[image]\nmanifest_digest = sha256:" + "A" * 64, "sha256", id="uppercase-hex"),
    pytest.param("[boot]\nboot_type = bls\n[origin]\ncontainer-image-reference = nonsense", "no ':'", id="bad-reference"),
])
def test_origin_errors(text, message):
    with pytest.raises(FormatError, match=message):
        origin.parse_origin(text)


def test_origin_without_image_or_digest():
    parsed = origin.parse_origin("[boot]\nboot_type = uki")
    assert (parsed.image, parsed.container_image_reference, parsed.boot_digest, parsed.manifest_digest) == (None, None, None, None)
    assert parsed.boot_type == "uki"


def test_load_origin(tmp_path):
    verity = "ab" * 64
    paths = load_host_paths(tmp_path)
    assert origin.load_origin(paths, verity) is None
    state = tmp_path / "sysroot" / "state" / "deploy" / verity
    state.mkdir(parents=True)
    assert origin.load_origin(paths, verity) is None
    (state / (verity + ".origin")).write_text(SPEC_ORIGIN)
    assert origin.load_origin(paths, verity).boot_type == "bls"
    assert origin.origin_path(paths, verity) == str(state / (verity + ".origin"))
    (state / (verity + ".origin")).write_text("[boot]\n")
    with pytest.raises(FormatError) as err:
        origin.load_origin(paths, verity)
    assert err.value.path == str(state / (verity + ".origin"))
