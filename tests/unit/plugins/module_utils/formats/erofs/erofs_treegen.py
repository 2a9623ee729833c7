# -*- coding: utf-8 -*-
"""Deterministic composefs dumpfiles for the EROFS oracle tests (fed to mkcomposefs and to us).

Written independently of ``formats/dumpfile.py`` (its own escaping and line layout) so that a bug in
our encoder cannot hide in the test inputs. Lines come out depth-first with names sorted; a shared
leaf is written in full at its first path (with its true link count, which mkcomposefs copies) and
as ``@`` hardlink lines afterwards, as composefs-info writes them.

``generate(seed, entries)`` draws a random tree covering the features listed in ``FEATURES``;
``CASES`` holds hand-made trees for the edges (block boundaries, limits, escapes).
"""

import hashlib
import random

S_IFDIR, S_IFREG, S_IFLNK = 0o040000, 0o100000, 0o120000
S_IFCHR, S_IFBLK, S_IFIFO, S_IFSOCK = 0o020000, 0o060000, 0o010000, 0o140000

FEATURES = (
    "empty dirs", "hardlinks of files, symlinks, devices and fifos", "short and 4095-byte symlinks",
    "char/block devices, fifos, sockets", "whiteouts (char 0:0)", "255-byte and odd-byte names",
    "xattrs local and shared, escaped trusted.overlay.*, ACLs, lustre.*", "inline files 0..5000 bytes",
    "external files up to 2**53 bytes, with and without digest, odd backing paths", "odd modes",
    "uids/gids above 65535", "mtimes with nanoseconds, negative and huge",
)


def escape(value, in_xattr=False):
    """composefs-dump escaping: graphic ASCII except backslash (and '=' in xattrs) kept, rest \\xHH."""
    if isinstance(value, str):
        value = value.encode()
    out = []
    for byte in value:
        if 0x21 <= byte <= 0x7E and byte != 0x5C and not (in_xattr and byte == 0x3D):
            out.append(chr(byte))
        else:
            out.append("\\x%02x" % byte)
    return "".join(out)


def optional(value):
    if value is None:
        return "-"
    if value in (b"-", "-"):
        return "\\x2d"
    return escape(value)


class Leaf:
    """A leaf of the generated tree; the same object in two directories is a hardlink."""

    def __init__(self, mode, uid=0, gid=0, mtime="0.0", xattrs=None, **fields):
        self.mode = mode
        self.uid = uid
        self.gid = gid
        self.mtime = mtime
        self.xattrs = list(xattrs or [])
        self.size = fields.get("size", 0)
        self.rdev = fields.get("rdev", 0)
        self.payload = fields.get("payload")
        self.content = fields.get("content")
        self.digest = fields.get("digest")


class Dir:
    def __init__(self, mode=S_IFDIR | 0o755, uid=0, gid=0, mtime="0.0", xattrs=None):
        self.mode = mode
        self.uid = uid
        self.gid = gid
        self.mtime = mtime
        self.xattrs = list(xattrs or [])
        self.entries = {}


def _xattr_text(xattrs):
    return "".join(" %s=%s" % (escape(key, True), escape(value, True)) for key, value in xattrs)


def dump(root):
    """The dumpfile text (bytes) of a generated tree."""
    counts = {}
    stack = [root]
    while stack:
        directory = stack.pop()
        for child in directory.entries.values():
            if isinstance(child, Dir):
                stack.append(child)
            else:
                counts[id(child)] = counts.get(id(child), 0) + 1
    lines = []
    first = {}

    def visit(path, node):
        if isinstance(node, Dir):
            fields = (escape(path or "/"), node.mode, node.uid, node.gid, node.mtime, _xattr_text(node.xattrs))
            lines.append("%s 0 %o 2 %d %d 0 %s - - -%s" % fields)
            for name in sorted(node.entries):
                visit(path + b"/" + name, node.entries[name])
            return
        if id(node) in first:
            lines.append("%s 0 @%o 0 0 0 0 0.0 %s - -" % (escape(path), node.mode, escape(first[id(node)])))
            return
        first[id(node)] = path
        lines.append("%s %d %o %d %d %d %d %s %s %s %s%s" % (
            escape(path), node.size, node.mode, counts[id(node)], node.uid, node.gid, node.rdev, node.mtime,
            optional(node.payload), optional(node.content), node.digest or "-", _xattr_text(node.xattrs)))

    visit(b"", root)
    return ("\n".join(lines) + "\n").encode()


def digest_of(seed):
    return hashlib.sha256(repr(seed).encode()).hexdigest()


def external(size, digest, **kw):
    return Leaf(S_IFREG | 0o644, size=size, payload="%s/%s" % (digest[:2], digest[2:]), digest=digest, **kw)


def inline(content, **kw):
    return Leaf(S_IFREG | 0o644, size=len(content), content=content or None, **kw)


def symlink(target, **kw):
    return Leaf(S_IFLNK | 0o777, size=len(target), payload=target, **kw)


# --- random trees -----------------------------------------------------------------------------------

_NAME_BYTES = b"abcdefghijklmnopqrstuvwxyz0123456789._-+=,@ \\\n\t\xe9\xff!#"
_XATTR_KEYS = [b"user.a", b"user.b", b"user.overlay.x", b"trusted.overlay.redirect", b"trusted.overlay.opaque",
               b"trusted.overlay.overlay.y", b"trusted.foo", b"security.ima", b"lustre.lov", b"system.posix_acl_access",
               b"system.posix_acl_default", b"unknown.prefix", b"user.with=equals"]
_LABELS = [b"system_u:object_r:usr_t:s0\0", b"system_u:object_r:lib_t:s0\0", b"unconfined_u:object_r:user_home_t:s0\0"]


def _random_name(rng, taken):
    while True:
        pick = rng.random()
        if pick < 0.02:
            name = bytes(rng.choice(b"abcdef") for _index in range(255))
        elif pick < 0.1:
            name = bytes(rng.choice(_NAME_BYTES) for _index in range(rng.randrange(1, 12)))
        else:
            name = ("n%d" % rng.randrange(10 ** rng.randrange(1, 6))).encode()
        if name not in taken and name not in (b".", b"..") and b"/" not in name:
            return name


def _random_meta(rng, base_mtime):
    meta = {}
    if rng.random() < 0.3:
        meta["mtime"] = "%d.%d" % (base_mtime + rng.randrange(-1000, 1000), rng.randrange(10 ** 9))
    else:
        meta["mtime"] = "%d.0" % base_mtime
    if rng.random() < 0.05:
        meta["uid"] = rng.choice([65535, 65536, 100000, 2 ** 32 - 1])
        meta["gid"] = rng.choice([0, 65536, 2 ** 31])
    xattrs = []
    if rng.random() < 0.8:
        xattrs.append((b"security.selinux", rng.choice(_LABELS)))
    for _index in range(rng.choice([0, 0, 0, 1, 2])):
        key = rng.choice(_XATTR_KEYS)
        if all(key != pair[0] for pair in xattrs):
            value = rng.choice([b"", b"-", b"v", b"=x=", b"\0\xff", bytes(rng.randrange(256) for _index in range(rng.randrange(40)))])
            if not value and key.startswith(b"system.posix_acl_"):
                # a 4-byte entry (empty suffix, empty value) that ends the xattr area is skipped by
                # composefs-info 1.0.8 (loop bound ``entry + 4 < end``); test_erofs_reader covers it
                value = b"\x02"
            xattrs.append((key, value))
    meta["xattrs"] = xattrs
    return meta


def _random_leaf(rng, base_mtime, digests):
    meta = _random_meta(rng, base_mtime)
    pick = rng.random()
    if pick < 0.5:
        size = rng.choice([1, 100, 4096, 4097, 1 << 20, (1 << 32) + 1, rng.randrange(1, 1 << 40)])
        if digests and rng.random() < 0.1:
            digest = rng.choice(digests)  # same content twice: shared metacopy/redirect xattrs
        else:
            digest = digest_of(rng.random())
            digests.append(digest)
        return external(size, digest, **meta)
    if pick < 0.7:
        size = rng.choice([0, 1, 5, 63, 64, 65, 2047, 2048, 2049, 4095, 4096, 4097, 5000, rng.randrange(200)])
        return inline(bytes(rng.randrange(256) for _index in range(size)), **meta)
    if pick < 0.82:
        length = rng.choice([1, 7, 100, 4000, 4095, rng.randrange(1, 300)])
        return symlink(bytes(rng.choice(b"abc/.-_") for _index in range(length)).replace(b"\0", b"x") or b"x", **meta)
    if pick < 0.88:
        kind = rng.choice([S_IFCHR, S_IFBLK])
        return Leaf(kind | 0o660, rdev=rng.choice([1, 259, 0x10001, 2 ** 32 - 1]), **meta)
    if pick < 0.92:
        return Leaf(S_IFCHR | rng.choice([0, 0o644, 0o600]), rdev=0, **meta)  # whiteout
    if pick < 0.96:
        return Leaf(S_IFIFO | 0o644, **meta)
    mode = rng.choice([0o4755, 0o2755, 0o1777, 0, 0o7777])
    return Leaf(rng.choice([S_IFSOCK, S_IFREG]) | mode, **meta)


def generate(seed, entries=300):
    """A random tree of about ``entries`` paths (fixed by ``seed``) as dumpfile text."""
    rng = random.Random(seed)
    base_mtime = rng.choice([0, 1700000000, -86400, 2 ** 40])
    root_meta = _random_meta(rng, base_mtime)
    root = Dir(uid=root_meta.get("uid", 0), gid=root_meta.get("gid", 0), mtime=root_meta["mtime"], xattrs=root_meta["xattrs"])
    dirs = [root]
    leaves = []
    digests = []
    for _index in range(entries):
        parent = rng.choice(dirs[-8:] if rng.random() < 0.7 else dirs)
        name = _random_name(rng, parent.entries)
        pick = rng.random()
        if pick < 0.12:
            meta = _random_meta(rng, base_mtime)
            child = Dir(mode=S_IFDIR | rng.choice([0o755, 0o700, 0o1777, 0]), uid=meta.get("uid", 0), gid=meta.get("gid", 0),
                        mtime=meta["mtime"], xattrs=meta["xattrs"])
            dirs.append(child)
        elif pick < 0.18 and leaves:
            child = rng.choice(leaves)  # hardlink
        else:
            child = _random_leaf(rng, base_mtime, digests)
            leaves.append(child)
        parent.entries[name] = child
    return dump(root)


# --- hand-made trees -------------------------------------------------------------------------------


def _big_directory(count, name_length):
    root = Dir(mtime="5.0")
    big = Dir(mtime="5.0")
    root.entries[b"big"] = big
    for index in range(count):
        name = ("f%0*d" % (name_length - 1, index)).encode()
        big.entries[name] = inline(b"x" * (index % 3), mtime="5.0")
    return dump(root)


def _shared_xattr_limit():
    """Two files with the same 130 xattrs: all shareable, mkcomposefs shares only 128 per inode."""
    xattrs = [(b"user.k%03d" % index, b"v%d" % index) for index in range(130)]
    root = Dir(mtime="1.0")
    root.entries[b"a"] = inline(b"a", mtime="1.0", xattrs=xattrs)
    root.entries[b"b"] = inline(b"b", mtime="1.0", xattrs=xattrs)
    return dump(root)


def _inline_tails():
    """Inline files, symlinks and chunk tables of every awkward size, in one directory."""
    root = Dir(mtime="0.0", xattrs=[(b"security.selinux", b"label\0")])
    for size in (1, 2, 31, 32, 33, 1000, 2047, 2048, 2049, 3000, 4064, 4095, 4096, 4097, 4500, 5000):
        root.entries[b"inline%04d" % size] = inline((b"%d," % size * 5000)[:size])
        root.entries[b"link%04d" % size] = symlink((b"t" * size)[:min(size, 4095)])
    for bits in (12, 13, 32, 43, 44, 50, 52, 53):
        root.entries[b"ext%d" % bits] = external(1 << bits, digest_of(bits))
        if bits < 53:  # 2**53 + 1 would need 1025 chunks, more than mkcomposefs allows
            root.entries[b"ext%d+1" % bits] = external((1 << bits) + 1, digest_of(-bits))
    root.entries[b"nodigest"] = Leaf(S_IFREG | 0o600, size=10)
    root.entries[b"payload-only"] = Leaf(S_IFREG | 0o600, size=10, payload="ab/cdefg")
    root.entries[b"big-xattr"] = inline(b"x", xattrs=[(b"user.big", b"v" * 3000)])
    return dump(root)


def _names_and_order():
    """Names sorting before '.', 255-byte names, escapes; whiteouts in the root and below."""
    root = Dir(mtime="3.0", xattrs=[(b"security.selinux", b"root\0"), (b"trusted.overlay.opaque", b"z")])
    for name in (b"!", b"+plus", b",", b"-", b".-", b".a", b"...", b"a=b", b"sp ace", b"nl\nx", b"\xff", b"x" * 255, b"00", b"0g"):
        root.entries[name] = inline(b"n", mtime="3.0")
    root.entries[b"ff"] = Leaf(S_IFCHR | 0o644, mtime="3.0")  # a user whiteout named like a stub
    sub = Dir(mtime="3.0", xattrs=[(b"user.overlay.opaque", b"y")])
    root.entries[b"sub"] = sub
    sub.entries[b"wh"] = Leaf(S_IFCHR, mtime="3.0")
    sub.entries[b"wh2"] = Leaf(S_IFCHR | 0o600, mtime="3.0", xattrs=[(b"user.z", b"1")])
    return dump(root)


def _hardlinks_everywhere():
    """Shared leaves whose depth-first first path is deeper than a later breadth-first one."""
    root = Dir(mtime="7.0")
    deep = Dir(mtime="7.0")
    deeper = Dir(mtime="7.0")
    root.entries[b"a"] = deep
    deep.entries[b"b"] = deeper
    shared = [external(100, digest_of("h")), symlink(b"target"), Leaf(S_IFBLK | 0o600, rdev=8), Leaf(S_IFIFO | 0o600),
              inline(b"data"), Leaf(S_IFSOCK | 0o600)]
    for index, leaf in enumerate(shared):
        deeper.entries[b"x%d" % index] = leaf
        root.entries[b"z%d" % index] = leaf
        deep.entries[b"y%d" % index] = leaf
    return dump(root)


def _empty():
    return dump(Dir(mtime="0.0"))


def _empty_dirs_and_times():
    root = Dir(mtime="-5.999999999", uid=70000, gid=70000)
    for index in range(5):
        root.entries[b"d%d" % index] = Dir(mtime="%d.%d" % (index * 1000000007, index), mode=S_IFDIR | (0o755 if index else 0))
    root.entries[b"huge-mtime"] = inline(b"h", mtime="%d.1" % (2 ** 62))
    root.entries[b"neg-mtime"] = inline(b"n", mtime="-%d.2" % (2 ** 40))
    return dump(root)


CASES = {
    "empty": _empty,
    "empty_dirs_and_times": _empty_dirs_and_times,
    "big_directory": lambda: _big_directory(3000, 12),
    "long_names_directory": lambda: _big_directory(400, 255),
    "shared_xattr_limit": _shared_xattr_limit,
    "inline_tails": _inline_tails,
    "names_and_order": _names_and_order,
    "hardlinks_everywhere": _hardlinks_everywhere,
}
