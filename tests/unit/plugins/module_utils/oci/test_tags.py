# -*- coding: utf-8 -*-
# Copyright: (c) 2026, bootc.composefs maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests for oci/tags.py: encodings and link texts of ``composefs-repo.md`` section 10.4."""

from __future__ import annotations

import os

import pytest

from ansible_collections.bootc.composefs.plugins.module_utils.errors import DanglingRefError, UnsafePathError
from ansible_collections.bootc.composefs.plugins.module_utils.formats import fsverity
from ansible_collections.bootc.composefs.plugins.module_utils.oci import tags
from ansible_collections.bootc.composefs.plugins.module_utils.repository.repo import Repository
from ansible_collections.bootc.composefs.tests.unit.builders import repo_builder as rb

DIGEST = "sha256:" + "ab" * 32
OTHER_DIGEST = "sha256:" + "cd" * 32

# section 10.4 example table
SPEC_TAGS = [
    ("localhost/bootc-sha256:abc", "localhost%2Fbootc-sha256:abc"),
    ("myimage:latest", "myimage:latest"),
    ("library/nginx", "library%2Fnginx"),
    ("quay.io/fedora/fedora-bootc:42", "quay.io%2Ffedora%2Ffedora-bootc:42"),
    ("docker://busybox", "docker:%2F%2Fbusybox"),
    ("test%2F", "test%252F"),
]


@pytest.fixture(name="repo")
def fixture_repo(tmp_path):
    repo = Repository.init(tmp_path / "repo", algorithm=fsverity.SHA512)
    yield repo
    repo.close()


@pytest.mark.parametrize("tag,name", SPEC_TAGS, ids=[pair[0] for pair in SPEC_TAGS])
def test_spec_examples(tag, name):
    assert tags.encode_tag(tag) == name
    assert tags.decode_tag(name) == tag


@pytest.mark.parametrize("name,tag", [
    ("a%2fb", "a%2fb"),
    ("a%41b", "a%41b"),
    ("end%", "end%"),
    ("end%2", "end%2"),
    ("%%2F", "%%2F"),
    ("%252F", "%2F"),
    ("%2F%25", "/%"),
], ids=["lowercase-hex-kept", "other-code-kept", "trailing-percent", "short-code", "percent-eats-next",
        "double-encoded", "both"])
def test_decode_single_pass(name, tag):
    assert tags.decode_tag(name) == tag


def test_tag_image_link_text(repo):
    tags.tag_image(repo, DIGEST, "localhost/bootc-sha256:abc")
    path = os.path.join(repo.path, "streams", "refs", "oci", "localhost%2Fbootc-sha256:abc")
    assert os.readlink(path) == "../../oci-manifest-" + DIGEST
    tags.tag_image(repo, OTHER_DIGEST, "localhost/bootc-sha256:abc")
    assert os.readlink(path) == "../../oci-manifest-" + OTHER_DIGEST
    assert not [n for n in os.listdir(repo.path) if n.startswith(".symlink-")]


@pytest.mark.parametrize("tag", ["@sha256:" + "ab" * 32, "", ".", "..", "a\0b", None])
def test_bad_tags_are_rejected(repo, tag):
    with pytest.raises(UnsafePathError):
        tags.tag_image(repo, DIGEST, tag)
    assert not os.path.exists(os.path.join(repo.path, "streams"))


@pytest.mark.parametrize("digest", ["sha256:" + "AB" * 32, "sha256:" + "ab" * 31, "sha512:" + "ab" * 64,
                                    "ab" * 32, "sha256:../../x" + "a" * 50, None])
def test_bad_manifest_digests_are_rejected(repo, digest):
    with pytest.raises(UnsafePathError):
        tags.tag_image(repo, digest, "t")
    with pytest.raises(UnsafePathError):
        tags.bootc_tag(digest)
    for call in (tags.validate_manifest_digest, tags.manifest_stream_name):
        with pytest.raises(UnsafePathError, match="manifest digest"):
            call(digest)


def test_manifest_stream_name():
    assert tags.validate_manifest_digest(DIGEST) == DIGEST
    assert tags.manifest_stream_name(DIGEST) == "oci-manifest-" + DIGEST


def test_list_resolve_untag(repo):
    object_id = repo.ensure_object(b"manifest stream")
    repo.register_stream("oci-manifest-" + DIGEST, object_id)
    for tag, _name in SPEC_TAGS:
        tags.tag_image(repo, DIGEST, tag)
    tags.tag_image(repo, OTHER_DIGEST, "dangling")
    listed = tags.list_tags(repo)
    assert sorted(listed) == sorted([(pair[0], DIGEST) for pair in SPEC_TAGS] + [("dangling", OTHER_DIGEST)])
    assert tags.resolve_tag(repo, "quay.io/fedora/fedora-bootc:42") == (DIGEST, object_id)
    assert tags.resolve_tag(repo, "never-tagged") is None
    with pytest.raises(DanglingRefError, match="oci-manifest"):
        tags.resolve_tag(repo, "dangling")
    tags.untag_image(repo, "library/nginx")
    assert tags.resolve_tag(repo, "library/nginx") is None
    with pytest.raises(DanglingRefError, match="does not exist"):
        tags.untag_image(repo, "library/nginx")
    assert os.path.isdir(os.path.join(repo.path, "streams", "refs", "oci"))


def test_list_tags_skips_foreign_refs(tmp_path, repo):
    builder = rb.RepoBuilder(tmp_path / "repo", algorithm="sha512", meta=None)
    builder.add_ref("streams", "oci/good", "oci-manifest-" + DIGEST)
    builder.symlink("streams/refs/oci/escape", "/etc/passwd")
    builder.symlink("streams/refs/oci/config", "../../oci-config-" + DIGEST)
    builder.symlink("streams/refs/oci/shallow", "../oci-manifest-" + DIGEST)
    builder.symlink("streams/refs/oci/bad-digest", "../../oci-manifest-sha256:xyz")
    builder.symlink("streams/refs/oci/sha512", "../../oci-manifest-sha512:" + "ab" * 64)
    builder.add_ref("streams", "oci/nested/deeper", "oci-manifest-" + DIGEST)
    assert tags.list_tags(repo) == [("good", DIGEST)]
    with pytest.raises(UnsafePathError):
        tags.resolve_tag(repo, "escape")
    with pytest.raises(UnsafePathError):
        tags.resolve_tag(repo, "config")
    with pytest.raises(UnsafePathError):
        tags.resolve_tag(repo, "sha512")


def test_bootc_tags():
    assert tags.BOOTC_TAG_PREFIX == "localhost/bootc-"
    assert tags.bootc_tag(DIGEST) == "localhost/bootc-" + DIGEST
    assert tags.encode_tag(tags.bootc_tag(DIGEST)) == "localhost%2Fbootc-" + DIGEST
    assert tags.is_bootc_tag("localhost/bootc-" + DIGEST)
    assert not tags.is_bootc_tag("quay.io/fedora/fedora-bootc:42")
    assert not tags.is_bootc_tag(None)
