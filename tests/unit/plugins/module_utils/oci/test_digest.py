# -*- coding: utf-8 -*-
"""oci/digest: content digests, stream names and config ref keys (spec 10.2, 10.3, 14).

Expected digests come from ``sha256sum``; names are the spec's literal forms.
"""

import pytest

from ansible_collections.bootc.composefs.plugins.module_utils.errors import ComposefsError, FormatError
from ansible_collections.bootc.composefs.plugins.module_utils.oci import digest
from ansible_collections.bootc.composefs.tests.unit.plugins.module_utils.oci import oci_testimages as images

HEX64 = "0123456789abcdef" * 4
HEX128 = HEX64 * 2


@pytest.mark.parametrize("text, algorithm, verifiable", [
    ("sha256:" + HEX64, "sha256", True),
    ("sha512:" + HEX128, "sha512", False),
], ids=["sha256", "sha512"])
def test_parse_valid(text, algorithm, verifiable):
    parsed = digest.parse_digest(text)
    assert (parsed.algorithm, parsed.hex, parsed.verifiable) == (algorithm, text.split(":")[1], verifiable)
    assert str(parsed) == text and digest.validate_digest(text) == text and digest.is_digest(text)


@pytest.mark.parametrize("text", [
    "sha256:" + HEX64.upper(), "sha256:" + HEX64[:-1], "sha256:" + HEX64 + "0", "sha256:" + HEX128, "sha512:" + HEX64,
    "md5:" + HEX64[:32], HEX64, "sha256" + HEX64, "sha256:" + HEX64[:-1] + "g", "", "sha256:", None, 12,
    " sha256:" + HEX64, "sha256: " + HEX64[1:],
], ids=lambda t: repr(t)[:24])
def test_parse_invalid(text):
    with pytest.raises(FormatError):
        digest.parse_digest(text, "layer digest")
    assert not digest.is_digest(text)


def test_error_names_what_and_value():
    with pytest.raises(FormatError, match=r"config digest 'sha256:abc'.*64 lowercase hex"):
        digest.parse_digest("sha256:abc", "config digest")


def test_sha256_digest_agrees_with_sha256sum(tmp_path):
    data = images.content(100000, 1)
    (tmp_path / "blob").write_bytes(data)
    expected = "sha256:" + images.run(["sha256sum", str(tmp_path / "blob")]).stdout.split()[0].decode()
    assert digest.sha256_digest(data) == expected
    hasher = digest.new_hasher(expected)
    hasher.update(data)
    assert "sha256:" + hasher.hexdigest() == expected


def test_sha512_cannot_be_verified():
    with pytest.raises(ComposefsError, match="sha512.*cannot be verified"):
        digest.new_hasher("sha512:" + HEX128)


def test_check_digest_names_both():
    digest.check_digest("sha256:" + HEX64, "sha256:" + HEX64, "blob")
    other = "sha256:" + "f" * 64
    with pytest.raises(ComposefsError) as caught:
        digest.check_digest(other, "sha256:" + HEX64, "layer blob", path="/x/blob")
    message = str(caught.value)
    assert message.startswith("/x/blob: layer blob has digest " + other) and "sha256:" + HEX64 in message
    assert caught.value.partial_result == {"expected_digest": "sha256:" + HEX64, "actual_digest": other}


@pytest.mark.parametrize("kind, function, name", [
    ("manifest", digest.manifest_stream_name, "oci-manifest-sha256:" + HEX64),
    ("config", digest.config_stream_name, "oci-config-sha256:" + HEX64),
    ("layer", digest.layer_stream_name, "oci-layer-sha256:" + HEX64),
    ("blob", digest.blob_stream_name, "oci-blob-sha256:" + HEX64),
])
def test_stream_names_and_inverse(kind, function, name):
    assert function("sha256:" + HEX64) == name == digest.stream_name(kind, "sha256:" + HEX64)
    assert digest.parse_stream_name(name) == (kind, "sha256:" + HEX64)


@pytest.mark.parametrize("name", ["oci-manifest-sha256:abc", "oci-thing-sha256:" + HEX64, "refs", "", None,
                                  "oci-layer-" + HEX64, "ostree-commit-" + HEX64])
def test_parse_stream_name_rejects(name):
    assert digest.parse_stream_name(name) is None


def test_stream_name_errors():
    with pytest.raises(FormatError, match="layer digest"):
        digest.layer_stream_name("sha256:short")
    with pytest.raises(ValueError, match="unknown stream kind"):
        digest.stream_name("index", "sha256:" + HEX64)


def test_config_ref_name():
    assert digest.config_ref_name("sha256:" + HEX64) == "config:sha256:" + HEX64
    assert digest.parse_config_ref_name("config:sha256:" + HEX64) == "sha256:" + HEX64
    assert digest.parse_config_ref_name("sha256:" + HEX64) is None
    assert digest.parse_config_ref_name("config:sha256:12") is None
