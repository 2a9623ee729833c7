# -*- coding: utf-8 -*-
"""EROFS writer and reader against the oracle: Debian's mkcomposefs / composefs-info 1.0.8, fsck.erofs.

Each case is a dumpfile (random trees with fixed seeds, hand-made edge trees, the composefs-rs
vectors). For each: our V1 and V0 images must be byte-identical to mkcomposefs's (with
``--min-version=1`` and by default); composefs-info must dump our image as it dumps theirs; our
reader's tree of their image must re-encode to their dump, and write back to their bytes; our
referenced objects must be what ``composefs-info objects`` lists; fsck.erofs must accept our image.
"""

import pathlib
import subprocess

import pytest

from ansible_collections.bootc.composefs.plugins.module_utils.formats import dumpfile, fsverity
from ansible_collections.bootc.composefs.plugins.module_utils.formats.erofs import reader, writer
from ansible_collections.bootc.composefs.tests.unit.plugins.module_utils.formats.erofs import erofs_treegen as treegen

VECTORS = pathlib.Path(__file__).resolve().parents[5] / "fixtures" / "vectors" / "composefs-rs"
SEEDS = range(16)
CASES = ["seed%d" % seed for seed in SEEDS] + sorted(treegen.CASES) + ["special.dump", "special_v1.dump"]


def _case_text(name):
    if name.startswith("seed"):
        return treegen.generate(int(name[4:]))
    if name in treegen.CASES:
        return treegen.CASES[name]()
    return (VECTORS / name).read_bytes()


class OracleCase:
    """One dumpfile with the oracle's images, dump and object list (built once per session)."""

    def __init__(self, name, text, workdir, run):
        self.name = name
        self.text = text
        self.workdir = workdir
        dump_path = workdir / "input.dump"
        dump_path.write_bytes(text)
        self.images = {}
        for version, args in ((1, ["--min-version=1"]), (0, [])):
            image_path = workdir / ("mkcomposefs-v%d.img" % version)
            run("mkcomposefs", "--from-file", *args, dump_path, image_path)
            self.images[version] = image_path.read_bytes()
        self.dump = run("composefs-info", "dump", workdir / "mkcomposefs-v1.img").stdout
        self.objects = run("composefs-info", "objects", workdir / "mkcomposefs-v1.img").stdout
        self.run = run


@pytest.fixture(scope="session")
def oracle_cases(tmp_path_factory, composefs_oracle):
    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = OracleCase(name, _case_text(name), tmp_path_factory.mktemp(name.replace(".", "_")), composefs_oracle)
        return cache[name]

    return get


@pytest.fixture(params=CASES)
def case(request, oracle_cases):
    return oracle_cases(request.param)


def _first_difference(ours, theirs):
    limit = min(len(ours), len(theirs))
    index = next((i for i in range(limit) if ours[i] != theirs[i]), limit)
    return "first difference at 0x%x (ours %d bytes, theirs %d bytes)" % (index, len(ours), len(theirs))


@pytest.mark.parametrize("version", [1, 0])
def test_image_is_byte_identical_to_mkcomposefs(case, version):
    ours = writer.write_image(dumpfile.parse_dumpfile(case.text), version=version)
    theirs = case.images[version]
    assert ours == theirs, _first_difference(ours, theirs)


def test_composefs_info_dumps_our_image_like_theirs(case):
    path = case.workdir / "ours-v1.img"
    path.write_bytes(writer.write_image(dumpfile.parse_dumpfile(case.text), version=1))
    assert case.run("composefs-info", "dump", path).stdout == case.dump


@pytest.mark.parametrize("version", [1, 0])
def test_reader_tree_of_their_image_encodes_to_their_dump(case, version):
    tree = reader.read_image(case.images[version]).to_tree()
    assert dumpfile.encode_dumpfile(tree) == case.dump


@pytest.mark.parametrize("version", [1, 0])
def test_reader_tree_of_their_image_writes_back_to_their_bytes(case, version):
    tree = reader.read_image(case.images[version]).to_tree()
    assert writer.write_image(tree, version=version) == case.images[version]


def test_their_dump_round_trips_through_our_dumpfile_codec(case):
    assert dumpfile.encode_dumpfile(dumpfile.parse_dumpfile(case.dump)) == case.dump


def test_referenced_objects_are_what_composefs_info_lists(case):
    lines = case.objects.splitlines()
    assert lines == sorted(lines)  # composefs-info prints backing paths "xx/rest", sorted, one per line
    listed = {bytes.fromhex((line[:2] + line[3:]).decode()) for line in lines if len(line) == 65 and line[2:3] == b"/"}
    assert reader.referenced_objects(case.images[1], fsverity.SHA256) == listed
    assert reader.referenced_objects(case.images[0], fsverity.SHA256) == listed


def test_fsck_erofs_accepts_our_image(case):
    path = case.workdir / "ours-fsck.img"
    path.write_bytes(writer.write_image(dumpfile.parse_dumpfile(case.text), version=1))
    proc = subprocess.run(["fsck.erofs", str(path)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=False)
    assert proc.returncode == 0, proc.stdout.decode("utf-8", "replace")
