# -*- coding: utf-8 -*-
"""EROFS writer: V2 against the composefs-rs snapshots, sha512 images, V2 round trips, and the trees an
image cannot hold. (V0/V1 byte-identity with mkcomposefs is in test_erofs_oracle.py.)"""

import pathlib
import subprocess

import pytest

from ansible_collections.bootc.composefs.plugins.module_utils.errors import FormatError
from ansible_collections.bootc.composefs.plugins.module_utils.formats import dumpfile, fsverity
from ansible_collections.bootc.composefs.plugins.module_utils.formats.erofs import layout, reader, writer
from ansible_collections.bootc.composefs.plugins.module_utils.formats.tree import (
    Device,
    Directory,
    Fifo,
    RegularFile,
    Socket,
    Stat,
    Symlink,
)
from ansible_collections.bootc.composefs.tests.unit.plugins.module_utils.formats.erofs import erofs_snapshot
from ansible_collections.bootc.composefs.tests.unit.plugins.module_utils.formats.erofs import erofs_treegen as treegen

VECTORS = pathlib.Path(__file__).resolve().parents[5] / "fixtures" / "vectors" / "composefs-rs"


def _simple_tree():
    """The tree of composefs-rs tests/mkfs.rs ``simple`` (see the vectors README)."""
    root = Directory(Stat(0o040755))
    root.entries = {
        b"fifo": Fifo(Stat(0o010000)),
        b"regular-inline": RegularFile(Stat(0o100000), 4, b"hihi"),
        b"regular-external": RegularFile(Stat(0o100000), 1234, None, b"\x5a" * 32),
        b"chrdev": Device(Stat(0o020000), 123),
        b"blkdev": Device(Stat(0o060000), 123),
        b"socket": Socket(Stat(0o140000)),
        b"symlink": Symlink(Stat(0o120000), b"/target"),
    }
    return root


@pytest.mark.parametrize("name, tree", [("simple", _simple_tree), ("empty", lambda: Directory(Stat(0o040755)))])
def test_v2_image_matches_composefs_rs_snapshot(name, tree):
    expected = erofs_snapshot.assemble((VECTORS / ("mkfs__%s.snap" % name)).read_text())
    assert writer.write_image(tree(), version=2) == expected


def _fsck(path):
    proc = subprocess.run(["fsck.erofs", str(path)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=False)
    assert proc.returncode == 0, proc.stdout.decode("utf-8", "replace")


@pytest.mark.parametrize("seed", range(6))
def test_v2_images_read_back_and_pass_fsck(seed, tmp_path):
    tree = dumpfile.parse_dumpfile(treegen.generate(seed, entries=200))
    image = writer.write_image(tree, version=2)
    (tmp_path / "v2.img").write_bytes(image)
    _fsck(tmp_path / "v2.img")
    again = reader.read_image(image).to_tree()
    assert writer.write_image(again, version=2) == image


def test_v2_keeps_whiteouts_and_lustre_prefix():
    root = Directory(Stat(0o040755))
    root.entries[b"wh"] = Device(Stat(0o020000, xattrs={b"lustre.x": b"1", b"trusted.overlay.y": b"2"}), 0)
    image = writer.write_image(root, version=2)
    parsed = reader.read_image(image)
    inode = parsed.inode(parsed.dirents(parsed.inode(parsed.root_nid))[-1].nid)
    names = [(entry.name_index, entry.suffix) for entry, _shared in parsed.xattrs(inode)]
    assert names == [(5, b"x"), (4, b"overlay.overlay.y")]
    leaf = parsed.to_tree().entries[b"wh"]
    assert isinstance(leaf, Device) and leaf.rdev == 0
    assert leaf.stat.xattrs == {b"lustre.x": b"1", b"trusted.overlay.y": b"2"}


@pytest.mark.parametrize("version", [0, 1, 2])
def test_sha512_images_name_sha512_objects(version, tmp_path):
    digest = bytes(range(64))
    root = Directory(Stat(0o040755))
    root.entries[b"big"] = RegularFile(Stat(0o100644), 1 << 20, None, digest)
    image = writer.write_image(root, version=version, algorithm=fsverity.SHA512)
    (tmp_path / "sha512.img").write_bytes(image)
    _fsck(tmp_path / "sha512.img")
    assert reader.referenced_objects(image, fsverity.SHA512) == {digest}
    assert reader.referenced_objects(image, fsverity.SHA256) == set()
    leaf = reader.read_image(image).to_tree().entries[b"big"]
    assert (leaf.fsverity_digest, leaf.backing_path, leaf.size) == (digest, None, 1 << 20)
    parsed = reader.read_image(image)
    inode = parsed.inode(next(e.nid for e in parsed.dirents(parsed.inode(parsed.root_nid)) if e.name == b"big"))
    values = {entry.suffix: entry.value for entry, _shared in parsed.xattrs(inode)}
    assert values[b"overlay.metacopy"] == b"\x00\x44\x00\x02" + digest
    assert values[b"overlay.redirect"] == b"/00/" + digest[1:].hex().encode()


def test_backing_path_overrides_the_object_path():
    root = Directory(Stat(0o040755))
    root.entries[b"f"] = RegularFile(Stat(0o100644), 10, None, b"\x01" * 32, b"somewhere/else")
    tree = reader.read_image(writer.write_image(root)).to_tree()
    assert tree.entries[b"f"].backing_path == b"somewhere/else"
    assert tree.entries[b"f"].fsverity_digest == b"\x01" * 32


def test_writer_does_not_modify_the_tree():
    tree = dumpfile.parse_dumpfile(treegen.CASES["names_and_order"]())
    before = dumpfile.encode_dumpfile(tree)
    writer.write_image(tree, version=1)
    writer.write_image(tree, version=2)
    assert dumpfile.encode_dumpfile(tree) == before


def _root_with(name, leaf):
    root = Directory(Stat(0o040755))
    root.entries[name] = leaf
    return root


def _cycle():
    root = Directory(Stat(0o040755))
    root.entries[b"self"] = root
    return root


BAD_TREES = [
    ("empty name", lambda: _root_with(b"", Fifo(Stat(0o010644))), "invalid directory entry name"),
    ("slash in name", lambda: _root_with(b"a/b", Fifo(Stat(0o010644))), "invalid directory entry name"),
    ("dot name", lambda: _root_with(b"..", Fifo(Stat(0o010644))), "invalid directory entry name"),
    ("256-byte name", lambda: _root_with(b"x" * 256, Fifo(Stat(0o010644))), "invalid directory entry name"),
    ("inline too big", lambda: _root_with(b"f", RegularFile(Stat(0o100644), 5001, b"x" * 5001)), "exceeds 5000"),
    ("digest size", lambda: _root_with(b"f", RegularFile(Stat(0o100644), 9, None, b"\x01" * 64)), "sha256 needs 32"),
    ("too many chunks", lambda: _root_with(b"f", RegularFile(Stat(0o100644), (1 << 53) + 1, None, b"\x01" * 32)), "chunks"),
    ("empty symlink", lambda: _root_with(b"l", Symlink(Stat(0o120777), b"")), "symlink target"),
    ("long symlink", lambda: _root_with(b"l", Symlink(Stat(0o120777), b"x" * 4096)), "symlink target"),
    ("device mode", lambda: _root_with(b"d", Device(Stat(0o100644), 1)), "device node"),
    ("rdev", lambda: _root_with(b"d", Device(Stat(0o020644), 1 << 32)), "32 bits"),
    ("uid", lambda: _root_with(b"f", Fifo(Stat(0o010644, uid=1 << 32))), "out of range"),
    ("mtime", lambda: _root_with(b"f", Fifo(Stat(0o010644, mtime=1 << 63))), "out of range"),
    ("xattr name", lambda: _root_with(b"f", Fifo(Stat(0o010644, xattrs={b"": b"x"}))), "invalid xattr name"),
    ("xattr value", lambda: _root_with(b"f", Fifo(Stat(0o010644, xattrs={b"user.x": b"v" * 65536}))), "exceeds 65535"),
    ("directory cycle", _cycle, "appears twice"),
    ("not a node", lambda: _root_with(b"x", object()), "not a tree node"),
]


@pytest.mark.parametrize("name, make, message", BAD_TREES, ids=[case[0] for case in BAD_TREES])
@pytest.mark.parametrize("version", [1, 2])
def test_trees_an_image_cannot_hold(name, make, message, version):
    with pytest.raises(FormatError, match=message):
        writer.write_image(make(), version=version)
    assert name


def test_unknown_version_and_root():
    with pytest.raises(FormatError, match="unknown composefs image version"):
        writer.write_image(Directory(Stat(0o040755)), version=3)
    with pytest.raises(FormatError, match="must be a directory"):
        writer.write_image(Fifo(Stat(0o010644)))


def test_v0_becomes_version_1_only_with_a_user_whiteout():
    plain = writer.write_image(Directory(Stat(0o040755)), version=0)
    assert layout.parse_header(plain).composefs_version == 0
    with_whiteout = writer.write_image(_root_with(b"w", Device(Stat(0o020000), 0)), version=0)
    assert layout.parse_header(with_whiteout).composefs_version == 1
