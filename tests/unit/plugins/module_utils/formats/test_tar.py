# -*- coding: utf-8 -*-
"""formats/tar, tar_header, tar_reader: headers, streaming reader, split events and layer entries,
on archives written by real tools.

Oracles: GNU tar (``--format=gnu|posix|ustar|v7``) and Python's ``tarfile`` write the archives; the
sha256 of the archive bytes checks reassembly; the source files on disk (``os.lstat``, contents,
``os.readlink``, ``os.getxattr``), ``tar -t`` and ``tarfile`` listings give the expected members;
``fsverity digest`` gives the expected external object ids.
"""

import base64
import gzip
import hashlib
import io
import os
import random
import stat
import subprocess
import tarfile

import pytest

from ansible_collections.bootc.composefs.plugins.module_utils.errors import ComposefsError, FormatError
from ansible_collections.bootc.composefs.plugins.module_utils.formats import tar as tarfmt
from ansible_collections.bootc.composefs.plugins.module_utils.formats import tar_header, tar_reader
from ansible_collections.bootc.composefs.plugins.module_utils.formats import tree

MTIME_NS = 1700000000 * 10**9 + 123456789
SIZES = (0, 1, 64, 65, 511, 512, 513, 1 << 20)
HUGE_UID = 4294967294
BIG_UID = 3000000


def run(argv, **kwargs):
    env = dict(os.environ, LC_ALL="C")
    proc = subprocess.run([str(a) for a in argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, check=False,
                          **kwargs)
    if proc.returncode != 0:
        pytest.fail("%s failed: %s" % (argv, proc.stderr.decode("utf-8", "replace")[-2000:]))
    return proc


def content_of(size, seed=0):
    return random.Random(size * 7919 + seed).randbytes(size)


class ObjectStore:
    """store_object stand-in: keeps content by sha256 (a stand-in id) and reads it in small chunks."""

    def __init__(self):
        self.objects = {}
        self.calls = []

    def __call__(self, fileobj, size):
        chunks = []
        while True:
            chunk = fileobj.read(4000)
            if not chunk:
                break
            chunks.append(chunk)
        data = b"".join(chunks)
        assert len(data) == size
        key = hashlib.sha256(data).digest()
        self.objects[key] = data
        self.calls.append(size)
        return key


class ShortReads(io.RawIOBase):
    """A non-seekable stream that returns at most a few hundred bytes per read."""

    def __init__(self, data):
        super().__init__()
        self._data = io.BytesIO(data)
        self._rng = random.Random(len(data))

    def readable(self):
        return True

    def readinto(self, buffer):
        chunk = self._data.read(min(len(buffer), self._rng.randint(1, 700)))
        buffer[:len(chunk)] = chunk
        return len(chunk)


def split(data, store=None):
    store = store if store is not None else ObjectStore()
    return list(tarfmt.split_tar(ShortReads(data), store)), store


def reassemble(events, store):
    out = []
    for event in events:
        if event[0] == "inline":
            out.append(event[1])
        else:
            assert event[0] == "external"
            data = store.objects[event[1]]
            assert len(data) == event[2]
            out.append(data)
    return b"".join(out)


def assert_roundtrip(data):
    events, store = split(data)
    assert hashlib.sha256(reassemble(events, store)).hexdigest() == hashlib.sha256(data).hexdigest()
    for previous, event in zip(events, events[1:]):
        assert not (previous[0] == event[0] == "inline"), "inline events are joined"
    assert all(event[1] for event in events if event[0] == "inline")
    return events, store


# --- source trees on disk ----------------------------------------------------------------


def _write(path, data, mode=0o644):
    with open(path, "wb") as handle:
        handle.write(data)
    os.chmod(path, mode)


def _fix_times(root):
    for dirpath, dirnames, filenames in os.walk(root, topdown=False):
        for name in dirnames + filenames:
            os.utime(os.path.join(dirpath, name), ns=(MTIME_NS, MTIME_NS), follow_symlinks=False)
    os.utime(root, ns=(MTIME_NS, MTIME_NS))


def make_basic_tree(root):
    """Every member kind GNU tar can put in any format; paths fit ustar (name 100 / prefix 155)."""
    os.makedirs(os.path.join(root, "dir", "sub"))
    for size in SIZES:
        _write(os.path.join(root, "dir", "size_%d" % size), content_of(size))
    _write(os.path.join(root, "setuid"), b"#!/bin/sh\n", 0o4755)
    _write(os.path.join(root, "private"), content_of(100, 1), 0o600)
    os.chmod(os.path.join(root, "dir", "sub"), 0o1777)
    os.symlink("size_1", os.path.join(root, "dir", "link_short"))
    os.symlink("does/not/exist", os.path.join(root, "dangling"))
    os.link(os.path.join(root, "dir", "size_65"), os.path.join(root, "hardlink_65"))
    os.link(os.path.join(root, "dir", "size_1"), os.path.join(root, "hardlink_1"))
    os.mkfifo(os.path.join(root, "fifo"))
    os.mknod(os.path.join(root, "null"), stat.S_IFCHR | 0o666, os.makedev(1, 3))
    os.mknod(os.path.join(root, "loop0"), stat.S_IFBLK | 0o660, os.makedev(7, 0))
    os.mknod(os.path.join(root, "bigdev"), stat.S_IFCHR | 0o600, os.makedev(300, 70000))
    middle = os.path.join(root, "m" * 60, "n" * 50)
    os.makedirs(middle)
    _write(os.path.join(middle, "f" * 90), content_of(70, 2))
    _fix_times(root)


def make_long_tree(root):
    """Names and link targets past ustar's limits (GNU 'L'/'K', pax path/linkpath)."""
    os.makedirs(root)
    _write(os.path.join(root, "l" * 150), content_of(200, 3))
    deep = os.path.join(root, *(["d" * 60] * 5))
    os.makedirs(deep)
    _write(os.path.join(deep, "x" * 100), content_of(5, 4))
    os.symlink("t" * 180, os.path.join(root, "symlink_long"))
    os.symlink("/".join(["u" * 90] * 3), os.path.join(root, "symlink_longer"))
    os.link(os.path.join(deep, "x" * 100), os.path.join(root, "hardlink_to_deep"))
    os.link(os.path.join(root, "l" * 150), os.path.join(root, "h" * 120))
    _fix_times(root)


def make_xattr_tree(root):
    os.makedirs(os.path.join(root, "d"))
    _write(os.path.join(root, "f"), content_of(300, 5))
    _write(os.path.join(root, "small"), b"tiny")
    os.setxattr(os.path.join(root, "f"), "user.plain", b"value")
    os.setxattr(os.path.join(root, "f"), "user.binary", bytes(range(256)))
    os.setxattr(os.path.join(root, "f"), "security.capability", bytes.fromhex("0100000200200000000000000000000000000000"))
    os.setxattr(os.path.join(root, "small"), "user.empty", b"")
    os.setxattr(os.path.join(root, "d"), "user.dir", b"on a directory")
    _fix_times(root)


def make_uid_tree(root):
    os.makedirs(root)
    for name, uid, gid in (("big", BIG_UID, 7), ("huge", HUGE_UID, HUGE_UID - 1), ("plain", 1000, 1000)):
        _write(os.path.join(root, name), content_of(80, uid % 97))
        os.chown(os.path.join(root, name), uid, gid)
    _fix_times(root)


@pytest.fixture(scope="module")
def trees(tmp_path_factory):
    base = tmp_path_factory.mktemp("trees")
    result = {}
    for name, maker in (("basic", make_basic_tree), ("long", make_long_tree), ("xattr", make_xattr_tree),
                        ("uid", make_uid_tree)):
        path = str(base / name)
        if name == "basic":
            os.makedirs(path)
        maker(path)
        result[name] = path
    return result


GNU_TAR_CASES = [
    ("basic", "gnu", []), ("basic", "posix", []), ("basic", "ustar", []), ("basic", "oldgnu", []),
    ("basic", "gnu", ["--blocking-factor=1"]), ("basic", "posix", ["--blocking-factor=3"]),
    ("long", "gnu", []), ("long", "posix", []), ("long", "oldgnu", []),
    ("xattr", "posix", ["--xattrs", "--xattrs-include=*"]),
    ("uid", "gnu", []), ("uid", "posix", []),
]


def gnu_tar(tmp_path, source, fmt, extra=()):
    out = tmp_path / ("%s.tar" % fmt)
    run(["tar", "--format=" + fmt, "--sort=name", "--numeric-owner"] + list(extra) + ["-cf", out, "-C", source, "."])
    return out.read_bytes()


def _disk_expectation(source, path):
    """What the member for archive path ``path`` must decode to, read from the source file."""
    full = os.path.join(source, path.decode().rstrip("/"))
    info = os.lstat(full)
    return info, full


def _members(data):
    reader = tar_reader.TarReader(ShortReads(data))
    result = []
    for member in reader:
        content = member.content.read() if member.entry.size <= 4096 else None
        result.append((member, content))
    trailer = b"".join(reader.iter_trailer())
    return result, trailer


@pytest.mark.parametrize("tree_name, fmt, extra", GNU_TAR_CASES,
                         ids=["%s-%s%s" % (t, f, "".join(e)[:20]) for t, f, e in GNU_TAR_CASES])
def test_gnu_tar_split_reassembles_and_decodes(trees, tmp_path, tree_name, fmt, extra):
    source = trees[tree_name]
    data = gnu_tar(tmp_path, source, fmt, extra)
    events, store = assert_roundtrip(data)

    listed = run(["tar", "-tf", tmp_path / ("%s.tar" % fmt), "--quoting-style=literal"]).stdout.splitlines()
    members, trailer = _members(data)
    assert [m.entry.path for m, _content in members] == listed
    assert data.endswith(trailer) and len(trailer) >= 1024 and not trailer.strip(b"\0")

    hardlinks = 0
    for member, content in members:
        entry = member.entry
        info, full = _disk_expectation(source, entry.path)
        assert stat.S_IMODE(entry.mode) == stat.S_IMODE(info.st_mode)
        assert (entry.uid, entry.gid) == (info.st_uid, info.st_gid)
        if fmt == "posix":
            assert (entry.mtime, entry.mtime_nsec) == divmod(info.st_mtime_ns, 10**9)
        else:
            assert (entry.mtime, entry.mtime_nsec) == (info.st_mtime_ns // 10**9, 0)
        if entry.kind == "hardlink":
            hardlinks += 1
            target = os.lstat(os.path.join(source, entry.link_target.decode()))
            assert target.st_ino == info.st_ino and entry.size == 0
        elif stat.S_ISREG(info.st_mode):
            assert entry.kind == "file" and entry.size == info.st_size
            if content is not None:
                with open(full, "rb") as handle:
                    assert content == handle.read()
        elif stat.S_ISDIR(info.st_mode):
            assert entry.kind == "directory" and entry.path.endswith(b"/")
        elif stat.S_ISLNK(info.st_mode):
            assert entry.kind == "symlink" and entry.link_target == os.fsencode(os.readlink(full))
        elif stat.S_ISFIFO(info.st_mode):
            assert entry.kind == "fifo"
        else:
            assert entry.kind == ("chardev" if stat.S_ISCHR(info.st_mode) else "blockdev")
            assert (entry.devmajor, entry.devminor) == (os.major(info.st_rdev), os.minor(info.st_rdev))
        if "--xattrs" in extra and not stat.S_ISLNK(info.st_mode):
            expected = {os.fsencode(k): os.getxattr(full, k, follow_symlinks=False) for k in os.listxattr(full)}
            assert entry.xattrs == expected
        else:
            assert entry.xattrs == {}
    assert hardlinks == {"basic": 2, "long": 2}.get(tree_name, 0)

    externals = sorted(e[2] for e in events if e[0] == "external")
    expected_sizes = sorted(m.entry.size for m, _content in members if m.entry.kind == "file" and m.entry.size > 64)
    assert externals == expected_sizes == sorted(store.calls)


@pytest.mark.parametrize("fmt", ["gnu", "posix"])
def test_external_objects_are_the_file_contents(trees, tmp_path, fsverity_tool, fmt):
    """The digests a store computes from what split_tar hands it equal `fsverity digest` of the source files."""
    source = trees["basic"]
    data = gnu_tar(tmp_path, source, fmt)
    objects = tmp_path / "objects"
    objects.mkdir()
    handed = []

    def store_object(fileobj, size):
        path = objects / ("%d" % len(handed))
        with open(path, "wb") as handle:
            while True:
                chunk = fileobj.read(65536)
                if not chunk:
                    break
                handle.write(chunk)
        assert path.stat().st_size == size
        handed.append(path)
        return str(path).encode()

    events = list(tarfmt.split_tar(io.BytesIO(data), store_object))
    entries = list(tarfmt.iter_layer_entries(events))
    regular = [e for e in entries if isinstance(e.node, tree.RegularFile) and e.node.is_external]
    assert len(regular) == len(handed) == 7
    sources = [os.path.join(source, e.path.decode()) for e in regular]
    objects_out = run([fsverity_tool, "digest", "--compact"] + [e.node.fsverity_digest.decode() for e in regular])
    sources_out = run([fsverity_tool, "digest", "--compact"] + sources)
    assert objects_out.stdout.split() == sources_out.stdout.split()


def test_gzip_pipe_is_read_as_a_stream(trees, tmp_path):
    data = gnu_tar(tmp_path, trees["basic"], "posix")
    compressed = tmp_path / "layer.tar.gz"
    compressed.write_bytes(gzip.compress(data))
    with subprocess.Popen(["gzip", "-dc", str(compressed)], stdout=subprocess.PIPE) as proc:
        store = ObjectStore()
        events = list(tarfmt.split_tar(proc.stdout, store))
    assert proc.returncode == 0
    assert reassemble(events, store) == data
    with gzip.open(compressed, "rb") as stream:
        store = ObjectStore()
        assert reassemble(list(tarfmt.split_tar(stream, store)), store) == data


def test_v7_format(tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    _write(str(source / "a"), content_of(100))
    _write(str(source / "b"), b"")
    os.symlink("a", str(source / "c"))
    os.link(str(source / "a"), str(source / "d"))
    _fix_times(str(source))
    data = gnu_tar(tmp_path, str(source), "v7")
    assert_roundtrip(data)
    members, _trailer = _members(data)
    kinds = {m.entry.path: (m.entry.kind, m.entry.header_format, m.entry.devmajor) for m, _content in members}
    assert kinds == {b"./": ("directory", "v7", None), b"./a": ("file", "v7", None), b"./b": ("file", "v7", None),
                     b"./c": ("symlink", "v7", None), b"./d": ("hardlink", "v7", None)}


# --- archives written by Python's tarfile -------------------------------------------------


def tarfile_archive(fmt, members, pax_headers=None):
    buf = io.BytesIO()
    kwargs = {"pax_headers": pax_headers} if pax_headers else {}
    with tarfile.open(fileobj=buf, mode="w", format=fmt, **kwargs) as archive:
        for info, data in members:
            archive.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def _info(name, kind=tarfile.REGTYPE, size=0, **attrs):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.size = size
    info.mtime = attrs.pop("mtime", 1700000000)
    info.mode = attrs.pop("mode", 0o644)
    for key, value in attrs.items():
        setattr(info, key, value)
    return info


def tarfile_members(fmt):
    members = [(_info("root/", tarfile.DIRTYPE, mode=0o755), None)]
    for size in SIZES:
        members.append((_info("root/f%d" % size, size=size), content_of(size, 9)))
    members += [
        (_info("root/sym", tarfile.SYMTYPE, linkname="f65", mode=0o777), None),
        (_info("root/hard", tarfile.LNKTYPE, linkname="root/f513"), None),
        (_info("root/chr", tarfile.CHRTYPE, devmajor=4095, devminor=1048575), None),
        (_info("root/blk", tarfile.BLKTYPE, devmajor=8, devminor=17), None),
        (_info("root/fifo", tarfile.FIFOTYPE), None),
        (_info("root/uid", size=3, uid=2097151, gid=65534, uname="someone", gname="group"), b"abc"),
        (_info("root/contiguous", tarfile.CONTTYPE, size=100), content_of(100, 10)),
    ]
    if fmt != tarfile.USTAR_FORMAT:
        long_dir = "root/" + "/".join(["p" * 80] * 4)
        members += [
            (_info(long_dir + "/", tarfile.DIRTYPE, mode=0o700), None),
            (_info(long_dir + "/" + "q" * 120, size=70), content_of(70, 11)),
            (_info("root/longlink", tarfile.SYMTYPE, linkname="z" * 300), None),
            (_info("root/hard_long", tarfile.LNKTYPE, linkname=long_dir + "/" + "q" * 120), None),
            (_info("root/huge_uid", size=1, uid=HUGE_UID, gid=BIG_UID), b"x"),
        ]
    else:
        members.append((_info("u" * 120 + "/" + "v" * 99, size=2), b"ok"))
    return members


TARFILE_FORMATS = [("pax", tarfile.PAX_FORMAT), ("gnu", tarfile.GNU_FORMAT), ("ustar", tarfile.USTAR_FORMAT)]


@pytest.mark.parametrize("fmt", [f for _n, f in TARFILE_FORMATS], ids=[n for n, _f in TARFILE_FORMATS])
def test_tarfile_written_archives(fmt):
    members = tarfile_members(fmt)
    data = tarfile_archive(fmt, members, pax_headers={"comment": "global header"} if fmt == tarfile.PAX_FORMAT else None)
    assert len(data) % tarfile.RECORDSIZE == 0
    assert_roundtrip(data)
    ours, trailer = _members(data)
    theirs = tarfile.open(fileobj=io.BytesIO(data)).getmembers()
    assert len(ours) == len(theirs) == len(members)
    assert len(trailer) >= 1024
    for (member, content), info, (_written, payload) in zip(ours, theirs, members):
        entry = member.entry
        assert entry.path.decode() == info.name + ("/" if info.isdir() else "")
        assert entry.typeflag == info.type
        assert (stat.S_IMODE(entry.mode), entry.uid, entry.gid) == (info.mode, info.uid, info.gid)
        assert entry.mtime == int(info.mtime)
        assert entry.size == info.size
        assert entry.link_target.decode() == info.linkname
        assert (entry.uname.decode(), entry.gname.decode()) == (info.uname, info.gname)
        if info.ischr() or info.isblk():
            assert (entry.devmajor, entry.devminor) == (info.devmajor, info.devminor)
        if content is not None and payload is not None:
            assert content == payload


def test_pax_fractional_mtime_xattrs_and_libarchive_keys():
    members = []
    for name, mtime in (("a", "1700000000.5"), ("b", "1700000000.123456789123"), ("c", "1700000000"),
                        ("d", "-1.25"), ("e", "1700000000.000000001")):
        info = _info(name, size=0)
        info.pax_headers = {"mtime": mtime}
        members.append((info, b""))
    xinfo = _info("x", size=100)
    xinfo.pax_headers = {
        "SCHILY.xattr.user.schily": "raw\x00value",
        "LIBARCHIVE.xattr.user.caf%C3%A9": base64.b64encode("café".encode()).decode().rstrip("="),
        "LIBARCHIVE.xattr.user.both": base64.b64encode(b"from libarchive").decode(),
        "SCHILY.xattr.user.both": "from schily",
        "LIBARCHIVE.xattr.security.capability": base64.b64encode(b"\x01\x02\x03").decode().rstrip("="),
    }
    members.append((xinfo, content_of(100)))
    data = tarfile_archive(tarfile.PAX_FORMAT, members)
    assert_roundtrip(data)
    ours, _trailer = _members(data)
    times = {m.entry.path: (m.entry.mtime, m.entry.mtime_nsec) for m, _content in ours}
    assert times == {b"a": (1700000000, 500000000), b"b": (1700000000, 123456789), b"c": (1700000000, 0),
                     b"d": (-2, 750000000), b"e": (1700000000, 1), b"x": (1700000000, 0)}
    assert ours[-1][0].entry.xattrs == {
        b"user.schily": b"raw\x00value", "user.café".encode(): "café".encode(), b"user.both": b"from schily",
        b"security.capability": b"\x01\x02\x03",
    }


def test_trailing_zero_records_and_lone_end_block():
    members = [(_info("f", size=200), content_of(200))]
    data = tarfile_archive(tarfile.GNU_FORMAT, members)
    body = data[:1024]
    assert not data[1024:].strip(b"\0")
    for tail in (bytes(1024), bytes(1024 + 512 * 37), bytes(1024) + b"not a tar", bytes(512), bytes(512 + 100), b""):
        archive = body + tail
        events, _store = assert_roundtrip(archive)
        reader = tar_reader.TarReader(io.BytesIO(archive))
        assert [m.entry.path for m in reader] == [b"f"]
        assert b"".join(reader.iter_trailer()) == tail
        assert events[-1] == ("inline", body[512 + 200:] + tail)


def test_empty_archives():
    for data in (b"", bytes(1024), bytes(10240)):
        events, _store = assert_roundtrip(data)
        assert events == ([("inline", data)] if data else [])
        assert list(tarfmt.iter_layer_entries(events)) == []


def test_reader_skips_unread_content_and_reads_partially():
    members = [(_info("a", size=5000), content_of(5000)), (_info("b", size=10), b"0123456789")]
    data = tarfile_archive(tarfile.USTAR_FORMAT, members)
    reader = tar_reader.TarReader(ShortReads(data))
    first = next(reader)
    assert first.content.read(10) == content_of(5000)[:10]
    second = next(reader)
    assert second.entry.path == b"b" and second.offset == 512 + 5120
    assert second.content.read() == b"0123456789"
    assert second.read_padding() == bytes(502)
    assert list(reader) == []


def test_padding_bytes_are_kept_as_found():
    data = bytearray(tarfile_archive(tarfile.USTAR_FORMAT, [(_info("a", size=100), content_of(100)),
                                                            (_info("b", size=10), b"0123456789")]))
    data[512 + 100:1024] = b"P" * 412
    data[1536 + 10:2048] = b"Q" * 502
    events, _store = assert_roundtrip(bytes(data))
    assert ("inline", bytes(data[:512])) == events[0] and events[1][0] == "external"
    assert events[2][1].startswith(b"P" * 412)


# --- layer entries --------------------------------------------------------------------------


def test_layer_entries_from_split_events(trees, tmp_path):
    source = trees["basic"]
    data = gnu_tar(tmp_path, source, "posix")
    events, store = split(data)
    entries = {e.path: e for e in tarfmt.iter_layer_entries(events)}
    for path, entry in entries.items():
        info, full = _disk_expectation(source, path)
        if entry.node is None:
            assert entry.hardlink_target in (b"./dir/size_65", b"./dir/size_1")
            continue
        node_stat = entry.node.stat
        assert node_stat.mode == info.st_mode
        assert (node_stat.mtime, node_stat.mtime_nsec) == divmod(info.st_mtime_ns, 10**9)
        if isinstance(entry.node, tree.RegularFile):
            with open(full, "rb") as handle:
                body = handle.read()
            assert entry.node.size == len(body)
            if len(body) <= 64:
                assert entry.node.content == body and entry.node.fsverity_digest is None
            else:
                assert store.objects[entry.node.fsverity_digest] == body and entry.node.content is None
        elif isinstance(entry.node, tree.Device):
            assert entry.node.rdev == info.st_rdev
        elif isinstance(entry.node, tree.Symlink):
            assert entry.node.target == os.fsencode(os.readlink(full))
        elif isinstance(entry.node, tree.Directory):
            assert entry.node.entries == {}
        else:
            assert isinstance(entry.node, tree.Fifo) and stat.S_ISFIFO(info.st_mode)


def test_layer_entries_reject_inconsistent_split_streams():
    data = tarfile_archive(tarfile.USTAR_FORMAT, [(_info("big", size=100), content_of(100)),
                                                  (_info("small", size=3), b"abc")])
    events, store = split(data)
    assert [e[0] for e in events] == ["inline", "external", "inline"]
    inlined = [("inline", reassemble(events, store))]
    with pytest.raises(FormatError, match="expected an external chunk"):
        list(tarfmt.iter_layer_entries(inlined))
    external_small = [events[0], events[1], ("inline", events[2][1][:1024 - 100]), ("external", b"d" * 32, 3),
                      ("inline", bytes(509) + events[2][1][1024 - 100 + 3:])]
    with pytest.raises(FormatError, match="external chunk where"):
        list(tarfmt.iter_layer_entries(external_small))
    with pytest.raises(FormatError, match="external chunk of 99 bytes"):
        list(tarfmt.iter_layer_entries([events[0], ("external", events[1][1], 99), events[2]]))
    with pytest.raises(FormatError, match="neither"):
        list(tarfmt.iter_layer_entries([("bogus",)]))
    with pytest.raises(FormatError, match="ends inside member"):
        list(tarfmt.iter_layer_entries([events[0], events[1]]))
    assert [e.path for e in tarfmt.iter_layer_entries([events[0], events[1][:2], events[2]])] == [b"big", b"small"]


def test_unsupported_types_split_but_are_no_tree_entries():
    info = _info("dumpdir", size=30)
    info.type = b"D"
    data = tarfile_archive(tarfile.GNU_FORMAT, [(info, b"Y" * 30)])
    events, _store = assert_roundtrip(data)
    assert [e[0] for e in events] == ["inline"]
    with pytest.raises(FormatError, match="unsupported entry type 'D'"):
        list(tarfmt.iter_layer_entries(events))


def test_store_object_must_consume_content():
    data = tarfile_archive(tarfile.USTAR_FORMAT, [(_info("big", size=1000), content_of(1000))])
    with pytest.raises(ComposefsError, match="left 900 of 1000"):
        list(tarfmt.split_tar(io.BytesIO(data), lambda f, size: f.read(100) and b"x"))


def test_makedev_matches_the_kernel_encoding():
    for major, minor in ((0, 0), (1, 3), (7, 0), (300, 70000), (4095, 1048575), (0xFFFFF, 0xFFFFF), (0x12345, 0xABCDE)):
        assert tarfmt.makedev(major, minor) == os.makedev(major, minor)


# --- malformed archives: FormatError and nothing else ---------------------------------------


def set_field(data, offset, start, width, value, fix_checksum=True):
    """Overwrite a header field (bytes, right-padded with NUL) and recompute the checksum plainly."""
    block = bytearray(data[offset:offset + 512])
    block[start:start + width] = value.ljust(width, b"\0")[:width]
    if fix_checksum:
        block[148:156] = b" " * 8
        block[148:156] = b"%06o\0 " % sum(block)
    return bytes(data[:offset]) + bytes(block) + bytes(data[offset + 512:])


def small_archive():
    return tarfile_archive(tarfile.GNU_FORMAT, [(_info("dir/", tarfile.DIRTYPE), None),
                                                (_info("dir/" + "n" * 120, size=700), content_of(700)),
                                                (_info("dir/s", size=10), b"0123456789"),
                                                (_info("dir/l", tarfile.SYMTYPE, linkname="s"), None)])


def expect_error(data, pattern):
    with pytest.raises(FormatError, match=pattern) as info:
        split(data)
    return info.value


def test_truncation_anywhere_is_a_format_error_or_an_exact_split():
    data = small_archive()
    end = data.rstrip(b"\0")
    end_of_members = len(end) + (-len(end) % 512)
    for cut in range(0, len(data), 37):
        piece = data[:cut]
        try:
            events, store = split(piece)
        except FormatError as err:
            assert err.offset is not None and "truncated" in str(err)
            assert cut % 512 or cut < end_of_members
            continue
        assert reassemble(events, store) == piece
        assert cut % 512 == 0 or cut > end_of_members


@pytest.mark.parametrize("cut, pattern, offset", [
    (100, "truncated inside a header block", 0),
    (1024 + 300, "truncated inside an extended header", 0x200),
    (2048 + 200, "truncated inside member content", 0x200),
    (2048 + 701, "truncated inside member padding", 0x200),
])
def test_truncation_messages(cut, pattern, offset):
    err = expect_error(small_archive()[:cut], pattern)
    assert err.offset == offset


def test_flipped_bytes_are_format_errors_or_exact_splits():
    data = small_archive()
    rng = random.Random(5)
    for _round in range(400):
        corrupt = bytearray(data)
        for _flip in range(rng.randint(1, 3)):
            corrupt[rng.randrange(0, 4096)] ^= 1 << rng.randrange(8)
        try:
            events, store = split(bytes(corrupt))
        except FormatError:
            continue
        assert reassemble(events, store) == bytes(corrupt)


def test_bad_checksum_names_member_and_offset():
    data = small_archive()
    corrupt = data[:3072] + b"X" + data[3073:]
    err = expect_error(corrupt, "checksum")
    assert err.offset == 3072 and "'Xir/s'" in str(err)


@pytest.mark.parametrize("start, width, value, pattern", [
    (124, 12, b"0000000009x", "bad octal size"),
    (100, 8, b"0006a4", "bad octal mode"),
    (108, 8, b"\xff" * 8, "negative base-256 uid"),
    (124, 12, b"\x80" + b"\xff" * 11, "absurd size"),
    (148, 8, b"12345678", "bad octal checksum"),
])
def test_bad_numeric_fields(start, width, value, pattern):
    data = small_archive()
    err = expect_error(set_field(data, 3072, start, width, value, fix_checksum=start != 148), pattern)
    assert err.offset == 3072 and "dir/s" in str(err)


def test_header_only_types_must_have_size_zero():
    data = small_archive()
    err = expect_error(set_field(data, 4096, 124, 12, b"00000000001"), "type '2' must have size 0")
    assert err.offset == 4096


def test_stray_zero_block_is_rejected():
    data = small_archive()
    err = expect_error(data[:3072] + bytes(512) + data[3072:], "lone zero block")
    assert err.offset == 3072


def test_global_headers_are_kept_but_not_applied():
    data = tarfile_archive(tarfile.PAX_FORMAT, [(_info("a", size=1), b"1")], pax_headers={"path": "ignored", "uid": "5"})
    events, _store = assert_roundtrip(data)
    ours, _trailer = _members(data)
    assert [(m.entry.path, m.entry.uid) for m, _content in ours] == [(b"a", 0)]
    assert ours[0][0].header_bytes[156:157] == b"g"


def _pax_archive(records_by_member):
    members = []
    for name, records in records_by_member:
        info = _info(name, size=0)
        info.pax_headers = records
        members.append((info, b""))
    return tarfile_archive(tarfile.PAX_FORMAT, members)


def test_pax_errors():
    data = _pax_archive([("a", {"uid": "12"})])
    record = b"9 uid=12\n"
    assert data[512:512 + len(record)] == record
    expect_error(data.replace(record, b"9 uid=1x\n"), "pax uid value b'1x' is not a decimal")
    expect_error(data.replace(record, b"8 uid=12\n"), "does not fit")
    expect_error(data.replace(record, b"x uid=12\n"), "without a decimal length")
    expect_error(data.replace(record, b"9 uid:12\n"), "without key=value")
    data = _pax_archive([("a", {"mtime": "12.5"})])
    expect_error(data.replace(b"mtime=12.5\n", b"mtime=1a.5\n"), "not a decimal time")
    data = _pax_archive([("a", {"LIBARCHIVE.xattr.user.x": "AAAA"})])
    expect_error(data.replace(b"=AAAA\n", b"=A!AA\n"), "not base64")


def test_duplicate_and_endless_extension_headers():
    data = _pax_archive([("a", {"uid": "1"})])
    pax_header = data[:1024]
    expect_error(pax_header + data, "two pax headers")
    long_name = tarfile_archive(tarfile.GNU_FORMAT, [(_info("n" * 200, size=0), b"")])
    expect_error(long_name[:1024] + long_name, "two GNU long names")
    global_header = tarfile_archive(tarfile.PAX_FORMAT, [], pax_headers={"comment": "x"})[:1024]
    expect_error(global_header * 17 + long_name, "more than 16 extended headers")
    big = set_field(global_header, 0, 124, 12, b"%011o" % ((1 << 20) + 1))
    expect_error(big, "exceeds")
    orphan = _pax_archive([("a", {"uid": "1"})])[:1024] + bytes(1024)
    expect_error(orphan, "not followed by a member")


def test_sparse_members_are_rejected(tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    with open(str(source / "sparse"), "wb") as handle:
        handle.seek(1 << 20)
        handle.write(b"end")
    for fmt, pattern in (("gnu", "GNU type 'S'"), ("posix", "pax GNU.sparse")):
        data = (tmp_path / fmt).with_suffix(".tar")
        run(["tar", "--format=" + fmt, "--sparse", "-cf", data, "-C", source, "sparse"])
        err = expect_error(data.read_bytes(), pattern)
        assert "tar member 'sparse'" in str(err) and err.offset is not None


def test_empty_path_is_rejected():
    data = small_archive()
    expect_error(set_field(data, 3072, 0, 100, b""), "empty path")


@pytest.mark.parametrize("uid, gid", [(HUGE_UID + 2, 0), (0, 1 << 40)])
def test_ids_beyond_32_bits_cannot_become_tree_entries(uid, gid):
    info = _info("f", size=0, uid=0, gid=0)
    info.pax_headers = {"uid": str(uid), "gid": str(gid)}
    data = tarfile_archive(tarfile.PAX_FORMAT, [(info, b"")])
    events, _store = assert_roundtrip(data)
    with pytest.raises(FormatError, match="does not fit in 32 bits"):
        list(tarfmt.iter_layer_entries(events))


def test_parse_header_direct():
    data = small_archive()
    header = tar_header.parse_header(data, 3072)
    assert (header.name, header.size, header.typeflag, header.header_format) == (b"dir/s", 10, b"0", "gnu")
    with pytest.raises(FormatError, match="truncated tar header"):
        tar_header.parse_header(data[:100])
    assert tar_header.parse_pax_records(b"8 a=bcd\n11 key=v=w\n\0\0") == ((b"a", b"bcd"), (b"key", b"v=w"))


def test_archive_names_stay_importable_from_tar():
    for module in (tar_header, tar_reader):
        for name in module.__all__:
            if name in tarfmt.__all__:
                assert getattr(tarfmt, name) is getattr(module, name), name
    assert {"TarReader", "TarMember", "TarEntry", "TarHeader", "parse_header", "parse_pax_records", "iter_members",
            "BLOCK_SIZE"} <= set(tarfmt.__all__)


# --- the fast path of parse_header ---------------------------------------------------------


def _blocks(data):
    return [data[i:i + 512] for i in range(0, len(data) - 511, 512)]


def _decode_or_error(block):
    try:
        return tar_header._parse_block(block, 0)  # pylint: disable=protected-access
    except FormatError:
        return None


@pytest.mark.parametrize("tree_name, fmt, extra", GNU_TAR_CASES,
                         ids=["%s-%s%s" % (t, f, "".join(e)[:20]) for t, f, e in GNU_TAR_CASES])
def test_fast_header_path_agrees_with_the_reference_decoder(trees, tmp_path, tree_name, fmt, extra):
    """Every block of archives GNU tar writes: the fast path decodes it as the reference does, or declines."""
    hits = headers = base256 = 0
    for block in _blocks(gnu_tar(tmp_path, trees[tree_name], fmt, extra)):
        fast = tar_header._parse_plain(block)  # pylint: disable=protected-access
        reference = _decode_or_error(block)
        if fast is not None:
            assert fast == reference
            hits += 1
        headers += reference is not None
        base256 += reference is not None and any(b & 0x80 for b in block[100:156] + block[329:345])
    assert headers and hits == headers - base256


@pytest.mark.parametrize("fmt", [f for _n, f in TARFILE_FORMATS], ids=[n for n, _f in TARFILE_FORMATS])
def test_fast_header_path_on_tarfile_archives(fmt):
    blocks = _blocks(tarfile_archive(fmt, tarfile_members(fmt)))
    decoded = [(tar_header._parse_plain(b), _decode_or_error(b)) for b in blocks]  # pylint: disable=protected-access
    assert all(fast is None or fast == reference for fast, reference in decoded)
    assert sum(fast is not None for fast, _r in decoded) >= sum(r is not None for _f, r in decoded) - 2  # base-256 ids


def _with_checksum(block, signed=False):
    block = bytearray(block)
    block[148:156] = b" " * 8
    total = sum((b - 256 if signed and b > 127 else b) for b in block)
    block[148:156] = b"%06o\0 " % (total & 0o777777)
    return bytes(block)


def _header(**fields):
    """A ustar header block with ``fields`` (offset -> raw bytes) overwritten, checksum recomputed."""
    block = bytearray(tarfile_archive(tarfile.USTAR_FORMAT, [(_info("name", size=5), b"hello")])[:512])
    for offset, raw in fields.items():
        block[int(offset[1:]):int(offset[1:]) + len(raw)] = raw
    return _with_checksum(block)


@pytest.mark.parametrize("block, fast_accepts", [
    pytest.param(_header(), True, id="plain"),
    pytest.param(_header(o100=b"  644 \0\0"), True, id="spaces-around-mode"),
    pytest.param(_header(o124=b"00000000005\0"[:12]), True, id="size"),
    pytest.param(_header(o124=b"00000000005 "), True, id="size-space-end"),
    pytest.param(_header(o108=b"\x80\0\0\0\0\0\x03\xe8"), False, id="base-256-uid"),
    pytest.param(_header(o100=b"0_644\0\0\0"), False, id="underscore"),
    pytest.param(_header(o100=b"0o644\0\0\0"), False, id="python-prefix"),
    pytest.param(_header(o100=b"6 44\0\0\0\0"), False, id="inner-space"),
    pytest.param(_header(o100=b"        "), False, id="all-spaces"),
    pytest.param(_header(o100=b"\0000644\0\0"), True, id="leading-nul"),
    pytest.param(_header(o329=b"0000012\0", o337=b"\x80\0\0\0\0\0\0\x05"), False, id="base-256-device"),
    pytest.param(_with_checksum(_header(o0=b"\xe9t\xe9"), signed=True), False, id="signed-checksum"),
])
def test_fast_header_path_declines_what_it_does_not_decode_alike(block, fast_accepts):
    fast = tar_header._parse_plain(block)  # pylint: disable=protected-access
    reference = _decode_or_error(block)
    assert (fast is not None) == fast_accepts
    if fast is not None:
        assert fast == reference
    assert tar_header.parse_header(block) == reference if reference is not None else True


def _entry_view(entry):
    node = entry.node
    fields = {k: v for k, v in vars(node).items() if k != "entries"} if node is not None else None
    return entry.path, type(node).__name__, fields, entry.hardlink_target, entry.offset


@pytest.mark.parametrize("tree_name, fmt, extra", GNU_TAR_CASES[:4] + GNU_TAR_CASES[6:8] + GNU_TAR_CASES[9:],
                         ids=lambda value: value if isinstance(value, str) else "".join(value)[:20])
def test_split_chunks_gives_the_entries_of_the_stored_stream(trees, tmp_path, tree_name, fmt, extra):
    """The entries split_chunks makes in one pass equal what iter_layer_entries reads back from its events."""
    data = gnu_tar(tmp_path, trees[tree_name], fmt, extra)
    store = ObjectStore()
    pieces = iter([data[i:i + 777] for i in range(0, len(data), 777)])
    entries = []
    events = list(tarfmt.split_chunks(lambda: next(pieces, b""), store, entries))
    assert reassemble(events, store) == data
    assert [_entry_view(e) for e in entries] == [_entry_view(e) for e in tarfmt.iter_layer_entries(events)]
    assert events == split(data)[0]
