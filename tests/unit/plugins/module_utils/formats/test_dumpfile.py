# -*- coding: utf-8 -*-
"""composefs dumpfiles: escapes, parse errors (with line numbers), tree semantics, and round trips
against composefs-info 1.0.8 (more in erofs/test_erofs_oracle.py)."""

import pathlib

import pytest

from ansible_collections.bootc.composefs.plugins.module_utils.errors import FormatError
from ansible_collections.bootc.composefs.plugins.module_utils.formats import dumpfile
from ansible_collections.bootc.composefs.plugins.module_utils.formats.erofs import reader, writer
from ansible_collections.bootc.composefs.plugins.module_utils.formats.tree import (
    Device,
    Directory,
    Fifo,
    RegularFile,
    Socket,
    Stat,
    Symlink,
)

VECTORS = pathlib.Path(__file__).resolve().parents[4] / "fixtures" / "vectors" / "composefs-rs"
ROOT = b"/ 0 40755 2 0 0 0 0.0 - - -\n"
DIGEST = "70a9125438f7255245f596c54cebb6621cb9a64f062752cf26763c1b690e7340"


def _line(tree_line):
    return dumpfile.encode_dumpfile(dumpfile.parse_dumpfile(ROOT + tree_line)).split(b"\n")[1]


# --- escapes (composefs-dump(5) and composefs-info's print_escaped) -------------------------------

@pytest.mark.parametrize("name, escaped", [
    (b"plain", b"plain"),
    (b"a b", b"a\\x20b"),
    (b"back\\slash", b"back\\\\slash"),
    (b"nl\ntab\tcr\r", b"nl\\ntab\\tcr\\r"),
    (b"eq=sign", b"eq=sign"),  # '=' is escaped in xattr fields only
    (b"-", b"-"),  # a path is never a lone dash: it starts with '/'
    (b"\x7f\x80\xff\x01", b"\\x7f\\x80\\xff\\x01"),
    (b"~!", b"~!"),
])
def test_path_escapes(name, escaped):
    root = Directory(Stat(0o040755))
    root.entries[name] = Fifo(Stat(0o010644))
    assert dumpfile.encode_dumpfile(root).split(b"\n")[1].split(b" ")[0] == b"/" + escaped
    assert list(dumpfile.parse_dumpfile(dumpfile.encode_dumpfile(root)).entries) == [name]


@pytest.mark.parametrize("content, field", [(b"-", b"\\x2d"), (b"a=b", b"a=b"), (b" ", b"\\x20"), (b"\\", b"\\\\")])
def test_content_escapes(content, field):
    root = Directory(Stat(0o040755))
    root.entries[b"f"] = RegularFile(Stat(0o100644), len(content), content)
    assert dumpfile.encode_dumpfile(root).split(b"\n")[1].split(b" ")[9] == field


@pytest.mark.parametrize("key, value, field", [
    (b"user.a", b"-", b"user.a=-"),
    (b"user.a", b"", b"user.a="),
    (b"user.k=v", b"x=y", b"user.k\\x3dv=x\\x3dy"),
    (b"security.selinux", b"label\0", b"security.selinux=label\\x00"),
    (b"user.sp", b"a b", b"user.sp=a\\x20b"),
])
def test_xattr_escapes(key, value, field):
    root = Directory(Stat(0o040755, xattrs={key: value}))
    assert dumpfile.encode_dumpfile(root).split(b"\n", 1)[0].split(b" ")[11] == field
    assert dumpfile.parse_dumpfile(dumpfile.encode_dumpfile(root)).stat.xattrs == {key: value}


def test_unescape_accepts_upper_case_hex_and_named_escapes():
    tree = dumpfile.parse_dumpfile(ROOT + b"/\\x4A\\x6b\\\\\\n 0 10644 1 0 0 0 0.0 - - - user.x=\\t\\r\n")
    assert list(tree.entries) == [b"Jk\\\n"]
    assert tree.entries[b"Jk\\\n"].stat.xattrs == {b"user.x": b"\t\r"}


# --- parse errors ------------------------------------------------------------------------------------

BAD = [
    ("bad escape", b"/a\\q 0 10644 1 0 0 0 0.0 - - -\n", 2, "invalid escape"),
    ("short hex escape", b"/a\\x4 0 10644 1 0 0 0 0.0 - - -\n", 2, "invalid escape"),
    ("trailing backslash", b"/a\\ 0 10644 1 0 0 0 0.0 - - -\n", 2, "invalid escape"),
    ("too few fields", b"/a 0 10644 1 0 0 0 0.0 - -\n", 2, "at least 11 fields"),
    ("relative path", b"a 0 10644 1 0 0 0 0.0 - - -\n", 2, "not absolute"),
    ("duplicate", b"/a 0 10644 1 0 0 0 0.0 - - -\n/a 0 10644 1 0 0 0 0.0 - - -\n", 3, "duplicate path"),
    ("missing parent", b"/a/b 0 10644 1 0 0 0 0.0 - - -\n", 2, "missing or not a directory"),
    ("parent not dir", b"/a 0 10644 1 0 0 0 0.0 - - -\n/a/b 0 10644 1 0 0 0 0.0 - - -\n", 3, "missing or not a directory"),
    ("double slash", b"/d 0 40755 2 0 0 0 0.0 - - -\n/d//b 0 10644 1 0 0 0 0.0 - - -\n", 3, "missing or not a directory"),
    ("dot name", b"/. 0 10644 1 0 0 0 0.0 - - -\n", 2, "invalid file name"),
    ("trailing slash", b"/d 0 40755 2 0 0 0 0.0 - - -\n/d/ 0 10644 1 0 0 0 0.0 - - -\n", 3, "invalid file name"),
    ("NUL in name", b"/a\\x00b 0 10644 1 0 0 0 0.0 - - -\n", 2, "invalid file name"),
    ("long name", b"/" + b"x" * 256 + b" 0 10644 1 0 0 0 0.0 - - -\n", 2, "invalid file name"),
    ("octal mode", b"/a 0 10648 1 0 0 0 0.0 - - -\n", 2, "invalid literal"),
    ("file type", b"/a 0 170644 1 0 0 0 0.0 - - -\n", 2, "invalid mode"),
    ("size", b"/a -1 10644 1 0 0 0 0.0 - - -\n", 2, "size"),
    ("nlink", b"/a 0 10644 x 0 0 0 0.0 - - -\n", 2, "nlink"),
    ("uid range", b"/a 0 10644 1 4294967296 0 0 0.0 - - -\n", 2, "uid 4294967296 is out of range"),
    ("gid", b"/a 0 10644 1 0 +1 0 0.0 - - -\n", 2, "gid"),
    ("mtime without dot", b"/a 0 10644 1 0 0 0 5 - - -\n", 2, "SECONDS.NANOSECONDS"),
    ("nanoseconds", b"/a 0 10644 1 0 0 0 5.1000000000 - - -\n", 2, "out of range"),
    ("rdev", b"/a 0 20644 1 0 0 x 0.0 - - -\n", 2, "rdev"),
    ("content size", b"/a 3 100644 1 0 0 0 0.0 - ab -\n", 2, "content is 2 bytes but size is 3"),
    ("content limit", b"/a 5001 100644 1 0 0 0 0.0 - " + b"x" * 5001 + b" -\n", 2, "exceeds 5000"),
    ("digest length", b"/a 9 100644 1 0 0 0 0.0 - - abcd\n", 2, "64 or 128 hex digits"),
    ("digest hex", b"/a 9 100644 1 0 0 0 0.0 - - " + b"g" * 64 + b"\n", 2, "Non-hexadecimal"),
    ("symlink without target", b"/l 1 120777 1 0 0 0 0.0 - - -\n", 2, "symlink target"),
    ("long symlink", b"/l 4096 120777 1 0 0 0 0.0 " + b"t" * 4096 + b" - -\n", 2, "symlink target"),
    ("xattr without =", b"/a 0 10644 1 0 0 0 0.0 - - - user.x\n", 2, "has no '='"),
    ("empty xattr key", b"/a 0 10644 1 0 0 0 0.0 - - - =v\n", 2, "invalid xattr key"),
    ("empty xattr field", b"/a 0 10644 1 0 0 0 0.0 - - - user.a=1 \n", 2, "has no '='"),
    ("hardlinked directory", b"/a 0 @40755 1 0 0 0 0.0 /b - -\n", 2, "directories cannot be hardlinked"),
    ("hardlink without target", b"/a 0 @100644 1 0 0 0 0.0 - - -\n", 2, "without a target"),
    ("hardlink target missing", b"/a 0 @100644 1 0 0 0 0.0 /nope - -\n", 2, "does not exist"),
    ("hardlink to a directory", b"/d 0 40755 2 0 0 0 0.0 - - -\n/a 0 @100644 1 0 0 0 0.0 /d - -\n", 3, "is a directory"),
    ("hardlink loop", b"/a 0 @100644 1 0 0 0 0.0 /b - -\n/b 0 @100644 1 0 0 0 0.0 /a - -\n", 3, "loop"),
    ("self hardlink", b"/a 0 @100644 1 0 0 0 0.0 /a - -\n", 2, "loop"),
    ("second root", b"/ 0 40755 2 0 0 0 0.0 - - -\n", 2, "duplicate root"),
]


@pytest.mark.parametrize("name, lines, lineno, message", BAD, ids=[case[0] for case in BAD])
def test_parse_errors_name_the_line(name, lines, lineno, message):
    with pytest.raises(FormatError, match=message) as info:
        dumpfile.parse_dumpfile(ROOT + lines)
    assert str(info.value.message).startswith("line %d: " % lineno), name
    assert info.value.offset == len(b"\n".join((ROOT + lines).split(b"\n")[:lineno - 1])) + 1


@pytest.mark.parametrize("text, message", [
    (b"", "no root"),
    (b"/a 0 10644 1 0 0 0 0.0 - - -\n", "first entry must be the root"),
    (b"/ 0 100644 1 0 0 0 0.0 - - -\n", "root must be a directory"),
])
def test_root_errors(text, message):
    with pytest.raises(FormatError, match=message):
        dumpfile.parse_dumpfile(text)


# --- semantics ---------------------------------------------------------------------------------------


def test_kinds_and_fields():
    tree = dumpfile.parse_dumpfile(
        b"/ 4096 40555 7 5 6 0 100.5 - - - user.r=1\n"
        b"/d 41 41777 2 0 0 0 1.2 - - -\n"
        b"/empty 0 100644 1 0 0 0 0.0 ignored - " + DIGEST.encode() + b"\n"
        b"/inline 5 104755 1 70000 2 0 -5.7 - hello " + DIGEST.encode() + b"\n"
        b"/external 42 100755 1 0 0 0 0.0 70/a9125438f7255245f596c54cebb6621cb9a64f062752cf26763c1b690e7340 - " + DIGEST.encode() + b"\n"
        b"/nodigest 7 100644 1 0 0 0 0.0 - - -\n"
        b"/payload 7 100644 1 0 0 0 0.0 some/file - " + DIGEST.encode() + b"\n"
        b"/chr 0 20600 1 0 0 259 0.0 - - -\n"
        b"/blk 0 60600 1 0 0 2049 0.0 - - -\n"
        b"/fifo 0 10600 1 0 0 0 0.0 - - -\n"
        b"/sock 0 140600 1 0 0 0 0.0 - - -\n"
        b"/link 3 120777 1 0 0 0 0.0 \\x2d - -\n"
    )
    assert (tree.stat.mode, tree.stat.uid, tree.stat.gid, tree.stat.mtime, tree.stat.mtime_nsec, tree.size) == (0o40555, 5, 6, 100, 5, 4096)
    entries = tree.entries
    assert entries[b"d"].size == 41 and entries[b"d"].stat.mode == 0o41777
    assert (entries[b"empty"].size, entries[b"empty"].content, entries[b"empty"].fsverity_digest) == (0, None, None)
    inline = entries[b"inline"]
    assert (inline.content, inline.fsverity_digest, inline.stat.uid, inline.stat.mtime, inline.stat.mtime_nsec) == (b"hello", None, 70000, -5, 7)
    external = entries[b"external"]
    assert (external.size, external.fsverity_digest, external.backing_path) == (42, bytes.fromhex(DIGEST), None)
    assert (entries[b"nodigest"].fsverity_digest, entries[b"nodigest"].backing_path) == (None, None)
    assert entries[b"payload"].backing_path == b"some/file"
    assert isinstance(entries[b"chr"], Device) and entries[b"chr"].rdev == 259
    assert isinstance(entries[b"blk"], Device) and entries[b"blk"].stat.mode == 0o60600
    assert isinstance(entries[b"fifo"], Fifo) and isinstance(entries[b"sock"], Socket)
    assert isinstance(entries[b"link"], Symlink) and entries[b"link"].target == b"-"


def test_hardlinks_are_shared_leaves_even_forward_and_chained():
    tree = dumpfile.parse_dumpfile(
        ROOT + b"/a 0 @100644 0 0 0 0 0.0 /b - -\n/b 0 @100644 0 0 0 0 0.0 //d///f - -\n"
        b"/d 0 40755 2 0 0 0 0.0 - - -\n/d/f 2 100644 3 0 0 0 0.0 - hi -\n")
    leaf = tree.entries[b"d"].entries[b"f"]
    assert tree.entries[b"a"] is leaf and tree.entries[b"b"] is leaf


def test_str_input_blank_lines_and_missing_final_newline():
    tree = dumpfile.parse_dumpfile("/ 0 40755 2 0 0 0 0.0 - - -\n\n/\\xc3\\xa9 0 10644 1 0 0 0 0.0 - - -")
    assert list(tree.entries) == ["é".encode()]


def test_encode_writes_hardlinks_like_composefs_info():
    text = (b"/ 4096 40755 3 0 0 0 100.5 - - -\n"
            b"/a 5 100644 2 0 0 0 -5.7 - hello - user.x=1\n"
            b"/b 5 @100644 2 0 0 0 -5.7 /a hello - user.x=1\n"
            b"/d 41 40755 2 0 0 0 100.5 - - -\n"
            b"/l 3 120777 2 0 0 0 100.5 abc - -\n"
            b"/l2 3 @120777 2 0 0 0 100.5 /l - -\n")
    assert dumpfile.encode_dumpfile(dumpfile.parse_dumpfile(text)) == text


def test_encode_derives_nlink_and_rejects_bad_devices():
    assert _line(b"/a 1 100644 9 0 0 0 0.0 - x -\n") == b"/a 1 100644 1 0 0 0 0.0 - x -"
    root = Directory(Stat(0o040755))
    root.entries[b"d"] = Device(Stat(0o100644), 1)
    with pytest.raises(FormatError, match="neither a character nor a block device"):
        dumpfile.encode_dumpfile(root)


@pytest.mark.parametrize("name", ["special.dump", "special_v1.dump"])
def test_vectors_round_trip_to_what_composefs_info_prints(name, tmp_path, composefs_oracle):
    text = (VECTORS / name).read_bytes()
    composefs_oracle("mkcomposefs", "--from-file", VECTORS / name, tmp_path / "theirs.img")
    theirs = composefs_oracle("composefs-info", "dump", tmp_path / "theirs.img").stdout
    ours = writer.write_image(dumpfile.parse_dumpfile(text), version=0)
    assert dumpfile.encode_dumpfile(reader.read_image(ours).to_tree()) == theirs
    assert dumpfile.encode_dumpfile(dumpfile.parse_dumpfile(theirs)) == theirs
