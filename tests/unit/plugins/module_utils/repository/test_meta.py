# -*- coding: utf-8 -*-
# Copyright: (c) 2026, bootc.composefs maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests for repository/meta.py: exact bytes and compatibility rules of ``composefs-repo.md`` section 3."""

from __future__ import annotations

import json

import pytest

from ansible_collections.bootc.composefs.plugins.module_utils.errors import FormatError, RepositoryFormatError
from ansible_collections.bootc.composefs.plugins.module_utils.formats import fsverity
from ansible_collections.bootc.composefs.plugins.module_utils.repository import meta
from ansible_collections.bootc.composefs.tests.unit.builders import repo_builder as rb

# section 3.2: dual-format (bootc-style) repository
META_DUAL = rb.META_SHA512_V1.replace(b'"default": 1\n', b'"default": 1,\n    "extra": [\n      2\n    ]\n')


def variant(**changes):
    """The default sha512 meta.json as a dict with ``changes`` applied (None deletes a key)."""
    obj = json.loads(rb.META_SHA512_V1)
    for key, value in changes.items():
        if value is None:
            obj.pop(key, None)
        else:
            obj[key] = value
    return json.dumps(obj).encode()


@pytest.mark.parametrize("algorithm,erofs_default,extra,expected", [
    (fsverity.SHA512, 1, (), rb.META_SHA512_V1),
    (fsverity.SHA256, 1, (), rb.META_SHA256_V1),
    (fsverity.SHA512, 2, (), rb.META_SHA512_V2),
    (fsverity.SHA512, 1, (2,), META_DUAL),
], ids=["default-sha512-v1", "sha256-v1", "v2", "dual"])
def test_encode_exact_bytes(algorithm, erofs_default, extra, expected):
    assert meta.encode_meta(meta.new_meta(algorithm, erofs_default, extra)) == expected


@pytest.mark.parametrize("data", [rb.META_SHA512_V1, rb.META_SHA256_V1, rb.META_SHA512_V2, META_DUAL],
                         ids=["sha512-v1", "sha256-v1", "v2", "dual"])
def test_parse_encode_round_trip(data):
    assert meta.encode_meta(meta.parse_meta(data)) == data


def test_parse_default():
    parsed = meta.parse_meta(rb.META_SHA512_V1)
    assert parsed.version == 1
    assert parsed.algorithm == fsverity.SHA512
    assert parsed.read_only_compatible == ("v1_erofs",)
    assert parsed.effective_erofs_formats() == (1, ())
    assert meta.check_meta(parsed) == ()
    assert meta.check_meta(parsed, fsverity.SHA512) == ()


@pytest.mark.parametrize("data,expected", [
    (variant(erofs_formats={"default": 1, "extra": [2]}), (1, (2,))),
    (variant(erofs_formats={"default": 0}), (0, ())),
    (variant(erofs_formats=None), (1, ())),
    (variant(erofs_formats={"default": 2}), (1, ())),
    (variant(erofs_formats=None, features={"read-only-compatible": []}), (2, ())),
    (variant(erofs_formats={"default": 2}, features={}), (2, ())),
    (variant(erofs_formats={"default": 2, "extra": [1]}, features={}), (2, (1,))),
], ids=["explicit-dual", "explicit-v0", "absent-with-v1-flag", "default2-with-v1-flag", "legacy-absent",
        "default2-no-flag", "v2-with-extra"])
def test_effective_erofs_formats(data, expected):
    assert meta.parse_meta(data).effective_erofs_formats() == expected


def test_absent_erofs_formats_equals_default_two():
    assert meta.parse_meta(variant(erofs_formats=None)) == meta.parse_meta(variant(erofs_formats={"default": 2}))
    assert meta.parse_meta(variant(erofs_formats={"default": 1, "extra": [2, 2]})) == meta.parse_meta(META_DUAL)


def test_optional_feature_arrays_and_unknown_keys():
    parsed = meta.parse_meta(variant(features={"incompatible": []}, erofs_version=2, future_key={"a": 1}))
    assert (parsed.compatible, parsed.read_only_compatible, parsed.incompatible) == ((), (), ())
    parsed = meta.parse_meta(variant(features=None))
    assert parsed.read_only_compatible == ()


def test_legacy_erofs_version_key_is_ignored():
    parsed = meta.parse_meta(variant(erofs_version=2))
    assert parsed == meta.parse_meta(rb.META_SHA512_V1)


def test_unknown_version_is_refused_before_anything_else():
    with pytest.raises(RepositoryFormatError, match="version 2"):
        meta.parse_meta(variant(version=2, algorithm="something-else"))


def test_version_zero_is_accepted():
    assert meta.parse_meta(variant(version=0)).version == 0


def test_unknown_incompatible_feature_is_refused():
    parsed = meta.parse_meta(variant(features={"incompatible": ["shiny"]}))
    with pytest.raises(RepositoryFormatError, match="shiny"):
        meta.check_meta(parsed)


def test_unknown_read_only_feature_means_read_only():
    parsed = meta.parse_meta(variant(features={"read-only-compatible": ["v1_erofs", "future"]}))
    assert meta.check_meta(parsed) == ("future",)


def test_unknown_compatible_feature_is_ignored():
    parsed = meta.parse_meta(variant(features={"compatible": ["whatever"]}))
    assert meta.check_meta(parsed) == ()


def test_algorithm_mismatch_is_refused():
    with pytest.raises(RepositoryFormatError, match="fsverity-sha512-12"):
        meta.check_meta(meta.parse_meta(rb.META_SHA512_V1), fsverity.SHA256)


@pytest.mark.parametrize("algorithm", [
    "fsverity-sha1-12", "fsverity-sha256-16", "fsverity-sha256", "sha256-12", "fsverity-sha256-x", 256, None,
    "fsverity-sha256-012x", "fsverity-SHA256-12",
])
def test_bad_algorithm(algorithm):
    with pytest.raises(FormatError):
        meta.parse_meta(variant(algorithm=algorithm))


@pytest.mark.parametrize("data", [
    b"", b"{", b"[]", b"null", b"\xff{}", b'{"version": 1, "version": 1, "algorithm": "fsverity-sha256-12"}',
    b'{"version": NaN, "algorithm": "fsverity-sha256-12"}',
    variant(version=None), variant(version="1"), variant(version=True), variant(version=1.0), variant(version=-1),
    variant(algorithm=None), variant(features=[]), variant(features={"compatible": "x"}),
    variant(features={"compatible": [1]}), variant(erofs_formats={"extra": [2]}), variant(erofs_formats={"default": 3}),
    variant(erofs_formats={"default": True}), variant(erofs_formats={"default": 1, "extra": [5]}),
    variant(erofs_formats={"default": 1, "extra": 2}), variant(erofs_formats=[1]),
], ids=["empty", "truncated", "array", "null", "not-utf8", "duplicate-key", "nan", "no-version", "string-version",
        "bool-version", "float-version", "negative-version", "no-algorithm", "features-array", "feature-not-list",
        "feature-not-string", "no-default", "default-3", "default-bool", "extra-5", "extra-not-list", "formats-array"])
def test_malformed_meta_raises_format_error(data):
    with pytest.raises(FormatError):
        meta.parse_meta(data)


def test_invalid_json_error_has_offset():
    with pytest.raises(FormatError) as info:
        meta.parse_meta(b'{"version": 1,\n  "algorithm": }')
    assert info.value.offset == 30


def test_new_meta_rejects_unknown_formats():
    with pytest.raises(FormatError):
        meta.new_meta(fsverity.SHA256, 3)


@pytest.mark.parametrize("formats,expected", [
    ({"default": 1}, (1,)),
    ({"default": 1, "extra": [2]}, (1, 2)),
    ({"default": 2, "extra": [2, 0, 1]}, (2, 0, 1)),
], ids=["single", "dual", "default-repeated-in-extra"])
def test_erofs_generation_order(formats, expected):
    assert meta.parse_meta(variant(erofs_formats=formats)).erofs_generation_order() == expected
