# -*- coding: utf-8 -*-
"""oci/layers: merging real multi-layer tars into a tree, checked against an on-disk oracle.

The oracle applies the same layers to a real directory: whiteouts and opaque markers are handled by
plain code below (remove what they name from the directory, before the layer is extracted, as the
OCI image spec describes), then GNU ``tar -x`` extracts the layer on top, then the marker files are
deleted again. The tree our code builds must list exactly what that directory holds: names, types,
modes, owners, mtimes (ns), xattrs, symlink targets, device numbers, hard link groups (inode
numbers), inline content of small files and ``fsverity digest`` of the others.
"""

import decimal
import gzip
import hashlib
import importlib.util
import io
import json
import os
import pathlib
import random
import shutil
import stat
import subprocess
import tarfile

import pytest

from ansible_collections.bootc.composefs.plugins.module_utils.errors import FormatError
from ansible_collections.bootc.composefs.plugins.module_utils.formats import fsverity
from ansible_collections.bootc.composefs.plugins.module_utils.formats import tar as tarfmt
from ansible_collections.bootc.composefs.plugins.module_utils.formats import tree
from ansible_collections.bootc.composefs.plugins.module_utils.oci import layers

MTIME_NS = 1600000000 * 10**9 + 987654321
CAPABILITY = bytes.fromhex("0100000200200000000000000000000000000000")


def run(argv, **kwargs):
    env = dict(os.environ, LC_ALL="C")
    proc = subprocess.run([str(a) for a in argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, check=False,
                          **kwargs)
    if proc.returncode != 0:
        pytest.fail("%s failed: %s" % (argv, proc.stderr.decode("utf-8", "replace")[-2000:]))
    return proc


def content_of(size, seed=0):
    return random.Random(size * 31 + seed).randbytes(size)


def store_object(fileobj, _size):
    return fsverity.digest_fileobj(fileobj)


def layer_entries(data):
    return tarfmt.iter_layer_entries(tarfmt.split_tar(io.BytesIO(data), store_object))


# --- layer sources -----------------------------------------------------------------------


def _write(path, data, mode=0o644, uid=0, gid=0):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as handle:
        handle.write(data)
    os.chown(path, uid, gid)
    os.chmod(path, mode)


def _times(root, offset_ns):
    for dirpath, dirnames, filenames in os.walk(root, topdown=False):
        for index, name in enumerate(sorted(dirnames + filenames)):
            when = MTIME_NS + offset_ns + index * 1000003
            os.utime(os.path.join(dirpath, name), ns=(when, when), follow_symlinks=False)
    os.utime(root, ns=(MTIME_NS + offset_ns, MTIME_NS + offset_ns))


def make_layer0(root):
    for directory in ("usr/bin", "usr/lib", "usr/share", "etc/cfg.d", "var/cache/sub", "opt/thing/deep", "dev", "run"):
        os.makedirs(os.path.join(root, directory))
    _write(os.path.join(root, "usr/bin/tool"), content_of(100), 0o755)
    _write(os.path.join(root, "usr/bin/small"), b"small file", 0o755, uid=12, gid=34)
    _write(os.path.join(root, "usr/lib/libx.so"), content_of(5000), 0o644)
    os.symlink("libx.so", os.path.join(root, "usr/lib/libx.so.1"))
    os.link(os.path.join(root, "usr/bin/tool"), os.path.join(root, "usr/bin/tool2"))
    _write(os.path.join(root, "etc/old.conf"), b"old")
    _write(os.path.join(root, "etc/keep.conf"), content_of(200), 0o600)
    _write(os.path.join(root, "etc/cfg.d/a"), b"a")
    _write(os.path.join(root, "etc/cfg.d/b"), content_of(65))
    _write(os.path.join(root, "var/cache/x"), content_of(70))
    _write(os.path.join(root, "var/cache/sub/y"), b"y")
    _write(os.path.join(root, "opt/thing/deep/z"), b"z")
    _write(os.path.join(root, "srv"), b"a file for now")
    _write(os.path.join(root, "run/stuff"), content_of(99))
    os.mkfifo(os.path.join(root, "run/fifo"))
    os.mknod(os.path.join(root, "dev/null"), stat.S_IFCHR | 0o666, os.makedev(1, 3))
    os.symlink("etc", os.path.join(root, "lnk"))
    os.chmod(os.path.join(root, "usr"), 0o755)
    os.chmod(root, 0o755)
    os.setxattr(os.path.join(root, "usr/bin/tool"), "security.capability", CAPABILITY)
    os.setxattr(os.path.join(root, "etc/keep.conf"), "user.note", b"kept \x00 binary")
    os.setxattr(os.path.join(root, "usr"), "user.dirattr", b"on usr")
    os.setxattr(os.path.join(root, "run"), "user.run", b"on run")
    _times(root, 0)


def make_layer1(root):
    for directory in ("etc/cfg.d", "opt", "srv/inner", "usr/bin", "var"):
        os.makedirs(os.path.join(root, directory))
    _write(os.path.join(root, "etc/.wh.old.conf"), b"")
    _write(os.path.join(root, "etc/cfg.d/.wh..wh..opq"), b"")
    _write(os.path.join(root, "etc/cfg.d/c"), content_of(64))
    _write(os.path.join(root, "opt/thing"), b"a file replacing a directory")
    _write(os.path.join(root, "srv/inner/data"), content_of(3000))
    _write(os.path.join(root, "usr/bin/tool"), content_of(3000, 1), 0o700)
    _write(os.path.join(root, "var/.wh.cache"), b"")
    os.symlink("usr/bin", os.path.join(root, "lnk"))
    os.chmod(os.path.join(root, "etc"), 0o750)
    os.chown(os.path.join(root, "etc"), 5, 6)
    os.chmod(root, 0o700)
    _times(root, 10**12)


def _info(name, kind=tarfile.REGTYPE, size=0, **attrs):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.size = size
    info.mtime = attrs.pop("mtime", 1650000000)
    info.mode = attrs.pop("mode", 0o755 if kind == tarfile.DIRTYPE else 0o644)
    for key, value in attrs.items():
        setattr(info, key, value)
    return info


def layer2_tar():
    """Written with tarfile: cross-layer hard links, odd path spellings, pax fractional mtimes."""
    frac = _info("etc//keep.conf", size=64, uid=7)
    frac.pax_headers = {"mtime": "1650000000.25", "SCHILY.xattr.user.new": "replaced"}
    members = [
        (_info("./usr/", tarfile.DIRTYPE), None),
        (_info("./usr/bin/", tarfile.DIRTYPE, mode=0o711), None),
        (_info("usr/bin/newlink", tarfile.LNKTYPE, linkname="usr/lib/libx.so"), None),
        (_info("usr/bin/small2", tarfile.LNKTYPE, linkname="./usr/bin/small"), None),
        (_info("usr/share/", tarfile.DIRTYPE), None),
        (_info("/usr/share/abs", size=80), content_of(80, 2)),
        (_info("etc/", tarfile.DIRTYPE, mode=0o755), None),
        (frac, content_of(64, 3)),
        (_info("var/", tarfile.DIRTYPE), None),
        (_info("var/cache/", tarfile.DIRTYPE, mode=0o1777), None),
        (_info("var/cache/z", size=1), b"z"),
        (_info("dev/", tarfile.DIRTYPE), None),
        (_info("dev/big", tarfile.BLKTYPE, devmajor=259, devminor=65536), None),
        (_info("run/", tarfile.DIRTYPE), None),
        (_info("run/more", size=2), b"ok"),
    ]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for info, data in members:
            archive.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


@pytest.fixture(scope="module")
def layer_tars(tmp_path_factory):
    base = tmp_path_factory.mktemp("layers")
    tars = []
    for index, (maker, fmt) in enumerate(((make_layer0, "posix"), (make_layer1, "gnu"))):
        source = base / ("src%d" % index)
        source.mkdir()
        maker(str(source))
        out = base / ("layer%d.tar" % index)
        run(["tar", "--format=" + fmt, "--sort=name", "--numeric-owner", "--xattrs", "--xattrs-include=*", "-cf", out,
             "-C", source, "."])
        tars.append(out.read_bytes())
    tars.append(layer2_tar())
    return tars


# --- the oracle: apply layers to a real directory ----------------------------------------------


def _norm(name):
    parts = [p for p in name.split("/") if p not in ("", ".")]
    return "/".join(parts)


def _remove(path):
    parent = os.path.dirname(path)
    before = os.lstat(parent).st_mtime_ns
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    else:
        os.unlink(path)
    os.utime(parent, ns=(before, before), follow_symlinks=False)


def apply_layer_on_disk(merged, tar_path):
    before = {dirpath: os.lstat(dirpath).st_mtime_ns for dirpath, _dirs, _files in os.walk(merged)}
    names = run(["tar", "-tf", tar_path, "--quoting-style=literal"]).stdout.decode().splitlines()
    types = [line[:1] for line in run(["tar", "-tvf", tar_path]).stdout.decode().splitlines()]
    assert len(names) == len(types)
    markers = []
    for name, kind in zip(names, types):
        rel = _norm(name)
        base = rel.rsplit("/", 1)[-1]
        parent = os.path.join(merged, os.path.dirname(rel))
        if base.startswith(".wh."):
            markers.append(os.path.join(merged, rel))
            if not os.path.isdir(parent):
                continue
            if base == ".wh..wh..opq":
                for child in os.listdir(parent):
                    _remove(os.path.join(parent, child))
            elif os.path.lexists(os.path.join(parent, base[4:])):
                _remove(os.path.join(parent, base[4:]))
            continue
        target = os.path.join(merged, rel)
        if not os.path.isdir(target) or os.path.islink(target):
            continue
        if kind != "d":
            _remove(target)
        else:
            # a directory entry replaces the directory's metadata, xattrs included; tar -x only adds xattrs
            for key in os.listxattr(target):
                os.removexattr(target, key)
    run(["tar", "-x", "-p", "--numeric-owner", "--xattrs", "--xattrs-include=*", "-C", merged, "-f", tar_path])
    for marker in markers:
        if os.path.lexists(marker):
            _remove(marker)
    # Directories keep their mtime unless the layer lists them, then they take the archive's; tar -x
    # leaves "now" on directories it adds entries to (mtimes read with Python's tarfile, pax as decimals).
    listed = {}
    with tarfile.open(tar_path) as archive:
        for member in archive.getmembers():
            if member.isdir():
                text = member.pax_headers.get("mtime")
                listed[os.path.join(merged, _norm(member.name)).rstrip("/")] = (
                    int(decimal.Decimal(text) * 10**9) if text else int(member.mtime) * 10**9)
    for dirpath, when in before.items():
        if dirpath.rstrip("/") not in listed and os.path.isdir(dirpath) and not os.path.islink(dirpath):
            os.utime(dirpath, ns=(when, when), follow_symlinks=False)
    for dirpath, when in listed.items():
        os.utime(dirpath, ns=(when, when), follow_symlinks=False)


def describe_disk(root, fsverity_tool):
    entries = {}
    inodes = {}
    big_files = []
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [""] + dirnames + filenames if dirpath == root else dirnames + filenames:
            full = os.path.join(dirpath, name) if name else root
            rel = os.path.relpath(full, root) if name else ""
            info = os.lstat(full)
            xattrs = {} if stat.S_ISLNK(info.st_mode) else {
                os.fsencode(k): os.getxattr(full, k, follow_symlinks=False) for k in os.listxattr(full, follow_symlinks=False)}
            extra = None
            if stat.S_ISREG(info.st_mode):
                with open(full, "rb") as handle:
                    body = handle.read()
                if len(body) <= 64:
                    extra = ("inline", body)
                else:
                    extra = ("external", len(body))
                    big_files.append((rel, full))
                inodes.setdefault(info.st_ino, set()).add(rel)
            elif stat.S_ISLNK(info.st_mode):
                extra = os.fsencode(os.readlink(full))
                inodes.setdefault(info.st_ino, set()).add(rel)
            elif stat.S_ISCHR(info.st_mode) or stat.S_ISBLK(info.st_mode):
                extra = info.st_rdev
                inodes.setdefault(info.st_ino, set()).add(rel)
            elif not stat.S_ISDIR(info.st_mode):
                inodes.setdefault(info.st_ino, set()).add(rel)
            entries[rel] = [info.st_mode, info.st_uid, info.st_gid, info.st_mtime_ns, xattrs, extra]
    if big_files:
        out = run([fsverity_tool, "digest", "--compact"] + [full for _rel, full in big_files]).stdout.split()
        for (rel, _full), digest in zip(big_files, out):
            entries[rel][5] = ("external", entries[rel][5][1], bytes.fromhex(digest.decode()))
    groups = {frozenset(paths) for paths in inodes.values() if len(paths) > 1}
    return entries, groups


def describe_tree(root):
    entries = {}
    by_leaf = {}
    for path, node in tree.walk(root, prefix=b""):
        rel = path.lstrip(b"/").decode()
        node_stat = node.stat
        extra = None
        if isinstance(node, tree.RegularFile):
            extra = ("inline", node.content) if not node.is_external else ("external", node.size, node.fsverity_digest)
        elif isinstance(node, tree.Symlink):
            extra = node.target
        elif isinstance(node, tree.Device):
            extra = node.rdev
        if not isinstance(node, tree.Directory):
            by_leaf.setdefault(id(node), set()).add(rel)
        entries[rel] = [node_stat.mode, node_stat.uid, node_stat.gid, node_stat.mtime * 10**9 + node_stat.mtime_nsec,
                        dict(node_stat.xattrs), extra]
    groups = {frozenset(paths) for paths in by_leaf.values() if len(paths) > 1}
    return entries, groups


def oracle(tmp_path, tars, fsverity_tool, count=None):
    merged = tmp_path / "merged"
    merged.mkdir()
    for index, data in enumerate(tars[:count]):
        path = tmp_path / ("oracle%d.tar" % index)
        path.write_bytes(data)
        apply_layer_on_disk(str(merged), str(path))
    return describe_disk(str(merged), fsverity_tool)


@pytest.mark.parametrize("count", [1, 2, 3])
def test_merge_matches_layers_applied_on_disk(layer_tars, tmp_path, fsverity_tool, count):
    expected, expected_groups = oracle(tmp_path, layer_tars, fsverity_tool, count)
    root = layers.merge_layers(layer_entries(data) for data in layer_tars[:count])
    actual, groups = describe_tree(root)
    assert sorted(actual) == sorted(expected)
    for rel in sorted(expected):
        assert actual[rel] == expected[rel], rel
    assert groups == expected_groups


def test_merge_details(layer_tars):
    """The behaviours the disk comparison covers, spelled out."""
    root = layers.merge_layers(layer_entries(data) for data in layer_tars)
    names = {path for path, _node in tree.walk(root, prefix=b"")}
    assert b"/etc/old.conf" not in names and b"/etc/cfg.d/a" not in names and b"/etc/cfg.d/c" in names
    assert not any(name.rsplit(b"/", 1)[-1].startswith(b".wh.") for name in names)
    assert isinstance(tree.lookup(root, b"opt/thing"), tree.RegularFile)
    assert isinstance(tree.lookup(root, b"srv/inner/data"), tree.RegularFile)
    assert sorted(tree.lookup(root, b"var/cache").entries) == [b"z"]
    tool, tool2 = tree.lookup(root, b"usr/bin/tool"), tree.lookup(root, b"usr/bin/tool2")
    assert tool is not tool2 and tool2.size == 100 and tool.size == 3000
    assert tool2.stat.xattrs == {b"security.capability": CAPABILITY}
    assert tree.lookup(root, b"usr/bin/newlink") is tree.lookup(root, b"usr/lib/libx.so")
    assert tree.lookup(root, b"usr/bin/small2") is tree.lookup(root, b"usr/bin/small")
    assert tree.lookup(root, b"usr/share/abs").size == 80
    keep = tree.lookup(root, b"etc/keep.conf")
    assert (keep.content, keep.stat.mtime, keep.stat.mtime_nsec, keep.stat.xattrs) == (
        content_of(64, 3), 1650000000, 250000000, {b"user.new": b"replaced"})
    assert root.stat.mode == stat.S_IFDIR | 0o700


def test_transform_for_oci(layer_tars, tmp_path, fsverity_tool):
    expected, _groups = oracle(tmp_path, layer_tars, fsverity_tool)
    usr = expected["usr"]
    expected[""] = [usr[0], usr[1], usr[2], usr[3], dict(usr[4]), None]
    for rel in [r for r in expected if r.startswith("run/")]:
        del expected[rel]
    expected["run"][3] = usr[3]
    for keep_user in (False, True):
        root = layers.merge_layers(layer_entries(data) for data in layer_tars)
        layers.transform_for_oci(root, keep_user_xattrs=keep_user)
        actual, _groups = describe_tree(root)
        want = {}
        for rel, values in expected.items():
            xattrs = {k: v for k, v in values[4].items() if k == b"security.capability" or (keep_user and k.startswith(b"user."))}
            want[rel] = values[:4] + [xattrs] + values[5:]
        assert actual == want
        assert root.entries[b"run"].entries == {}


# --- rules on small synthetic layers ----------------------------------------------------------


def _dir(mode=0o755, mtime=0):
    return tree.Directory(tree.Stat(mode=stat.S_IFDIR | mode, mtime=mtime))


def _file(data=b"", mtime=0):
    return tree.RegularFile(tree.Stat(mode=stat.S_IFREG | 0o644, mtime=mtime), size=len(data), content=data)


def entry(path, node=None, target=None):
    return tarfmt.LayerEntry(path, node, target)


def test_path_normalisation_and_absolute_paths():
    root = layers.merge_layers([[entry(b"./a/", _dir()), entry(b"a//b", _file(b"1")), entry(b"/a/./c", _file(b"2")),
                                 entry(b"//a/d/", _dir())]])
    assert sorted(root.entries[b"a"].entries) == [b"b", b"c", b"d"]
    assert layers.split_path(b"./x//y/./z/") == (b"x", b"y", b"z")
    assert layers.split_path(b"/") == ()


@pytest.mark.parametrize("path", [b"../etc/passwd", b"a/../../b", b"a/..", b"/.."])
def test_dotdot_is_rejected(path):
    with pytest.raises(FormatError, match="'..' component"):
        layers.merge_layers([[entry(b"a/", _dir()), entry(path, _file())]])
    with pytest.raises(FormatError, match="'..' component"):
        layers.merge_layers([[entry(b"f", _file()), entry(b"link", None, path)]])


def test_implicit_parent_directories():
    root = layers.merge_layers([[entry(b"x/y/z", _file(b"z"))]])
    implicit = root.entries[b"x"]
    assert implicit.stat == tree.Stat(mode=stat.S_IFDIR | 0o755)
    assert implicit.entries[b"y"].stat == tree.Stat(mode=stat.S_IFDIR | 0o755)
    with pytest.raises(FormatError, match="layer 0: 'x/y/z': parent directory 'x' does not exist"):
        layers.merge_layers([[entry(b"x/y/z", _file(b"z"))]], implicit_directories=False)


def test_parent_must_be_a_directory():
    symlink = tree.Symlink(tree.Stat(mode=stat.S_IFLNK | 0o777), target=b"/")
    with pytest.raises(FormatError, match="layer 1: 'l/f': 'l' is not a directory"):
        layers.merge_layers([[entry(b"l", symlink)], [entry(b"l/f", _file())]])
    with pytest.raises(FormatError, match="is not a directory"):
        layers.merge_layers([[entry(b"f", _file())], [entry(b"f/.wh.x", _file())]])


def test_hardlink_errors():
    with pytest.raises(FormatError, match="hard link target 'nope' does not exist"):
        layers.merge_layers([[entry(b"a", None, b"nope")]])
    with pytest.raises(FormatError, match="is a directory"):
        layers.merge_layers([[entry(b"d/", _dir()), entry(b"a", None, b"d")]])
    with pytest.raises(FormatError, match="hard link to the root"):
        layers.merge_layers([[entry(b"a", None, b"./")]])
    with pytest.raises(FormatError, match="does not exist"):
        layers.merge_layers([[entry(b"f", _file()), entry(b".wh.f", _file())], [entry(b"a", None, b"f")]])


def test_root_entries():
    root = layers.merge_layers([[]])
    assert root.stat == tree.Stat(mode=stat.S_IFDIR)
    root = layers.merge_layers([[entry(b"./", _dir(0o700, 5))], [entry(b"/", _dir(0o750, 6)), entry(b"f", _file())]])
    assert root.stat == tree.Stat(mode=stat.S_IFDIR | 0o750, mtime=6) and list(root.entries) == [b"f"]
    with pytest.raises(FormatError, match="root entry must be a directory"):
        layers.merge_layers([[entry(b".", _file())]])


def test_whiteout_rules_as_composefs_rs_applies_them():
    lower = [entry(b"d/", _dir()), entry(b"d/old", _file(b"o")), entry(b"e/", _dir()), entry(b"e/x", _file(b"x"))]
    upper = [
        entry(b"d/", _dir(0o700, 9)),
        entry(b"d/new", _file(b"n")),
        entry(b"d/.wh..wh..opq", _file()),   # composefs-rs clears d here, d/new included
        entry(b"d/newer", _file(b"m")),
        entry(b"e/.wh.x", _file()),
        entry(b"missing/.wh.y", _file()),    # no-op: nothing to delete, nothing created
        entry(b"e/.wh.", _file()),           # names nothing
    ]
    root = layers.merge_layers([lower, upper])
    assert sorted(root.entries) == [b"d", b"e"]
    assert list(root.entries[b"d"].entries) == [b"newer"] and root.entries[b"d"].stat.mtime == 9
    assert root.entries[b"e"].entries == {}


def test_replacing_kinds():
    lower = [entry(b"a/", _dir()), entry(b"a/x", _file(b"x")), entry(b"b", _file(b"b"))]
    upper = [entry(b"a", _file(b"now a file")), entry(b"b/", _dir(0o700)), entry(b"b/y", _file(b"y"))]
    root = layers.merge_layers([lower, upper])
    assert isinstance(root.entries[b"a"], tree.RegularFile) and root.entries[b"a"].content == b"now a file"
    assert list(root.entries[b"b"].entries) == [b"y"]
    again = [entry(b"a/", _dir(0o711))]
    root = layers.merge_layers([lower, upper, again])
    assert root.entries[b"a"].entries == {} and root.entries[b"a"].stat.mode == stat.S_IFDIR | 0o711


def test_errors_carry_the_entry_offset():
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w", format=tarfile.USTAR_FORMAT) as archive:
        archive.addfile(_info("ok", size=1), io.BytesIO(b"1"))
        archive.addfile(_info("../evil", size=0), io.BytesIO(b""))
    with pytest.raises(FormatError) as info:
        layers.merge_layers([layer_entries(data.getvalue())])
    assert info.value.offset == 1024 and "layer 0: path '../evil'" in str(info.value)


def test_transform_requires_usr():
    root = layers.merge_layers([[entry(b"etc/", _dir())]])
    with pytest.raises(FormatError, match="no /usr"):
        layers.transform_for_oci(root)
    root = layers.merge_layers([[entry(b"usr/", _dir()), entry(b"run", _file())]])
    with pytest.raises(FormatError, match="/run is not a directory"):
        layers.transform_for_oci(root)


# --- an OCI image written by the test tooling (gzip layers in an image layout) --------------------


def _load_ocigen():
    path = pathlib.Path(__file__).resolve().parents[5] / "tests" / "tools" / "ocigen.py"
    spec = importlib.util.spec_from_file_location("ocigen_for_test_layers", str(path))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_oci_image_layers(tmp_path, fsverity_tool):
    ocigen = _load_ocigen()
    layout = tmp_path / "layout"
    image = ocigen.write_bootc_image(str(layout), version="7", payload=content_of(70000, 4))
    manifest = json.loads(image["manifest"])
    blobs = [layout / "blobs" / "sha256" / layer["digest"].split(":", 1)[1] for layer in manifest["layers"]]
    kept = {}

    def keep_object(fileobj, size):
        data = fileobj.read()
        assert len(data) == size
        fsverity_digest = fsverity.digest_bytes(data)
        kept[fsverity_digest] = data
        return fsverity_digest

    entry_lists = []
    for blob, diff_id in zip(blobs, image["diff_ids"]):
        with gzip.open(str(blob), "rb") as stream:
            events = list(tarfmt.split_tar(stream, keep_object))
        tar_bytes = b"".join(e[1] if e[0] == "inline" else kept[e[1]] for e in events)
        assert "sha256:" + hashlib.sha256(tar_bytes).hexdigest() == diff_id
        entry_lists.append(list(tarfmt.iter_layer_entries(events)))
    root = layers.merge_layers(entry_lists)

    merged = tmp_path / "merged"
    merged.mkdir()
    for blob in blobs:
        apply_layer_on_disk(str(merged), str(blob))
    expected, expected_groups = describe_disk(str(merged), fsverity_tool)
    actual, groups = describe_tree(root)
    # the layers have no root entry: the tree keeps its uninitialised root, the directory is ours
    del expected[""], actual[""]
    assert actual == expected
    assert groups == expected_groups == {frozenset({"usr/bin/sh", "usr/bin/bash"})}
    assert tree.lookup(root, b"etc/old.conf") is None and tree.lookup(root, b"var/cache").entries == {}
