# -*- coding: utf-8 -*-
"""formats/erofs/scan.py: the byte scan of EROFS references against two oracles.

Oracles: ``composefs-info objects`` (Debian composefs 1.0.8) on images made by ``mkcomposefs``
(V1 and V0) from the generated dumpfiles of ``erofs_treegen`` and the composefs-rs vectors, and the
structural reader (``reader.referenced_objects``, itself checked against composefs-info in
test_erofs_oracle.py) on those images and on V2 images. The scan must find at least what they
list (a superset is allowed, spec 11.6) and, on every image a writer made, exactly that. Crafted
tails (entries a fake head would swallow, redirects of other shapes, digests cut by the end of the
image) check the slow paths; framing errors must raise FormatError.
"""

import pathlib
import struct

import pytest

from ansible_collections.bootc.composefs.plugins.module_utils.errors import FormatError
from ansible_collections.bootc.composefs.plugins.module_utils.formats import dumpfile, fsverity, tree
from ansible_collections.bootc.composefs.plugins.module_utils.formats.erofs import reader, scan, writer
from ansible_collections.bootc.composefs.tests.unit.plugins.module_utils.formats.erofs import erofs_treegen as treegen

VECTORS = pathlib.Path(__file__).resolve().parents[5] / "fixtures" / "vectors" / "composefs-rs"
CASES = ["seed%d" % seed for seed in range(8)] + sorted(treegen.CASES) + ["special.dump", "special_v1.dump"]
KEY_BYTES = 16


def _case_text(name):
    if name.startswith("seed"):
        return treegen.generate(int(name[4:]))
    if name in treegen.CASES:
        return treegen.CASES[name]()
    return (VECTORS / name).read_bytes()


def _listed(objects_output: bytes) -> set:
    """Raw digests of the ``xx/rest`` object paths composefs-info prints (other backing paths skipped)."""
    return {bytes.fromhex((line[:2] + line[3:]).decode()) for line in objects_output.splitlines()
            if len(line) == 65 and line[2:3] == b"/"}


class MkcomposefsCase:
    """One dumpfile: mkcomposefs's V1 and V0 images and what composefs-info lists for them."""

    def __init__(self, name, workdir, run):
        dump_path = workdir / "input.dump"
        dump_path.write_bytes(_case_text(name))
        self.images = {}
        self.listed = {}
        for version, args in ((1, ["--min-version=1"]), (0, [])):
            path = workdir / ("v%d.img" % version)
            run("mkcomposefs", "--from-file", *args, dump_path, path)
            self.images[version] = path.read_bytes()
            self.listed[version] = _listed(run("composefs-info", "objects", path).stdout)


@pytest.fixture(scope="module")
def mkcomposefs_cases(tmp_path_factory, composefs_oracle):
    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = MkcomposefsCase(name, tmp_path_factory.mktemp(name.replace(".", "_")), composefs_oracle)
        return cache[name]

    return get


@pytest.mark.parametrize("version", [1, 0])
@pytest.mark.parametrize("name", CASES)
def test_scan_of_mkcomposefs_images_is_what_composefs_info_lists(mkcomposefs_cases, name, version):
    case = mkcomposefs_cases(name)
    image = case.images[version]
    found = scan.scan_references(image, fsverity.SHA256)
    assert found == case.listed[version]
    assert found == reader.referenced_objects(image, fsverity.SHA256)
    assert scan.scan_references(image, fsverity.SHA256, KEY_BYTES) == {raw[:KEY_BYTES] for raw in found}


def _many_files_tree(count, algorithm, shared_every=0):
    """A V1/V2 tree of ``count`` external files (some sharing content, i.e. the same digest) in two directories."""
    usr = tree.Directory(tree.Stat(mode=0o40755))
    etc = tree.Directory(tree.Stat(mode=0o40755))
    for number in range(count):
        label = number - number % shared_every if shared_every else number
        digest = fsverity.digest_bytes(b"file %d" % label, algorithm)
        target = usr if number % 3 else etc
        target.entries[b"f%06d" % number] = tree.RegularFile(tree.Stat(mode=0o100644), size=100 + number,
                                                             fsverity_digest=digest)
    return tree.Directory(tree.Stat(mode=0o40755), {b"usr": usr, b"etc": etc})


@pytest.mark.parametrize("algorithm", [fsverity.SHA256, fsverity.SHA512], ids=["sha256", "sha512"])
@pytest.mark.parametrize("version", [0, 1, 2])
@pytest.mark.parametrize("shared_every", [0, 4], ids=["distinct", "shared-content"])
def test_scan_equals_the_structural_reader(algorithm, version, shared_every):
    """Writers' images of both algorithms and all versions (shared xattrs when files share content)."""
    image = writer.write_image(_many_files_tree(700, algorithm, shared_every), version=version, algorithm=algorithm)
    expected = reader.referenced_objects(image, algorithm)
    assert len(expected) == (700 // shared_every if shared_every else 700)
    assert scan.scan_references(image, algorithm) == expected
    assert scan.scan_references(image, algorithm, KEY_BYTES) == {raw[:KEY_BYTES] for raw in expected}


def test_digests_of_another_algorithm_are_not_references():
    image = writer.write_image(_many_files_tree(50, fsverity.SHA256), version=1, algorithm=fsverity.SHA256)
    assert scan.scan_references(image, fsverity.SHA512) == set() == reader.referenced_objects(image, fsverity.SHA512)


# --- crafted tails: the slow paths ---------------------------------------------------------------------


def _entry(suffix, value):
    return struct.pack("<BBH", len(suffix), 4, len(value)) + suffix + value


def _redirect_value(raw, prefix=b"/"):
    text = raw.hex().encode()
    return prefix + text[:2] + b"/" + text[2:]


def _base_image():
    return writer.write_image(_many_files_tree(40, fsverity.SHA256), version=1, algorithm=fsverity.SHA256)


def test_entries_a_crafted_value_would_swallow_are_found():
    """A fake metacopy head whose 32 'digest' bytes cover the head of a real entry: both are found."""
    image = _base_image()
    real_meta, real_redirect, odd_redirect = b"\x11" * 32, b"\x22" * 32, b"\x33" * 32
    meta_head = struct.pack("<BBH", 16, 4, 36) + b"overlay.metacopy" + bytes([0, 36, 0, 1])
    tail = meta_head + b"\x00" * 8 + _entry(b"overlay.metacopy", bytes([0, 36, 0, 1]) + real_meta)
    tail += _entry(b"overlay.redirect", _redirect_value(real_redirect))
    tail += _entry(b"overlay.redirect", _redirect_value(odd_redirect, b"/prefix/"))
    found = scan.scan_references(image + tail, fsverity.SHA256)
    assert {real_meta, real_redirect, odd_redirect} <= found
    assert scan.scan_references(image, fsverity.SHA256) <= found
    keys = scan.scan_references(image + tail, fsverity.SHA256, KEY_BYTES)
    assert keys == {raw[:KEY_BYTES] for raw in found}


@pytest.mark.parametrize("value, expected", [
    (_redirect_value(b"\x44" * 32), {b"\x44" * 32}),  # standard form, but not what the metacopy before it names
    (_redirect_value(b"\x55" * 32, b""), {b"\x55" * 32}),  # no leading "/"
    (_redirect_value(b"\xab" * 32).upper(), {b"\xab" * 32}),  # upper case (as bytes.fromhex reads it)
    (b"/ab/" + b"c" * 30 + b" " + b"d" * 31, set()),  # whitespace is no hex digit
    (b"/ab/" + b"z" * 62, set()),  # not hex
    (b"/ab" + b"c" * 63, set()),  # no "/" after xx
], ids=["other-digest", "no-leading-slash", "upper-case", "whitespace", "not-hex", "no-slash"])
def test_redirects_of_every_shape(value, expected):
    image = _base_image()
    before = scan.scan_references(image, fsverity.SHA256)
    found = scan.scan_references(image + _entry(b"overlay.redirect", value), fsverity.SHA256)
    assert found == before | expected
    keys = scan.scan_references(image + _entry(b"overlay.redirect", value), fsverity.SHA256, KEY_BYTES)
    assert keys == {raw[:KEY_BYTES] for raw in found}


def test_a_digest_cut_by_the_end_of_the_image_is_none():
    image = _base_image()
    before = scan.scan_references(image, fsverity.SHA256)
    meta_head = struct.pack("<BBH", 16, 4, 36) + b"overlay.metacopy" + bytes([0, 36, 0, 1])
    assert scan.scan_references(image + meta_head + b"\x77" * 31, fsverity.SHA256) == before
    assert scan.scan_references(image + meta_head + b"\x77" * 32, fsverity.SHA256) == before | {b"\x77" * 32}
    cut_redirect = _entry(b"overlay.redirect", _redirect_value(b"\x88" * 32))[:-1]
    assert scan.scan_references(image + cut_redirect, fsverity.SHA256) == before


@pytest.mark.parametrize("damage", [
    lambda image: image[:1000],
    lambda image: b"\x00" * 4 + image[4:],
    lambda image: image[:1024] + b"\x00" * 4 + image[1028:],
], ids=["truncated-before-the-superblock", "composefs-magic", "erofs-magic"])
def test_framing_errors_raise_format_error(damage):
    with pytest.raises(FormatError):
        scan.scan_references(damage(_base_image()), fsverity.SHA256)


def test_dumpfile_round_trip_image_scans_like_it_reads():
    """An image written from a parsed dumpfile with hardlinks and odd backing paths (the 'special' vector)."""
    image = writer.write_image(dumpfile.parse_dumpfile(_case_text("special_v1.dump")), version=1)
    assert scan.scan_references(image, fsverity.SHA256) == reader.referenced_objects(image, fsverity.SHA256)
