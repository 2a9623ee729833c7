# -*- coding: utf-8 -*-
"""Test images and oracles shared by test_image, test_importer and test_boot.

Images are real OCI image layouts written by ``tests/tools/ocigen.py`` (tar layers from Python's
``tarfile``) plus, here, layers compressed by the ``zstd`` command-line tool and layouts with
chosen media types. The oracles never use the library under test:

- :func:`extract_merged` applies the layers to a directory with GNU ``tar -x`` (as root: owners,
  modes, mtimes, xattrs, devices, hard links), handling whiteouts and opaque markers with plain
  file operations before each layer is extracted, then applies the root-metadata and xattr rules
  of composefs-rs ``transform_for_oci`` (and, for boot images, ``transform_for_boot``) with
  ``os`` calls;
- :func:`mkcomposefs_image` runs Debian's ``mkcomposefs --min-version=1 --digest-store`` on that
  directory; ``composefs-info``, ``fsverity digest``, ``sha256sum``, ``skopeo`` check the rest.
"""

import decimal
import gzip
import hashlib
import io
import json
import os
import pathlib
import random
import shutil
import subprocess
import tarfile

from ansible_collections.bootc.composefs.tests.tools import ocigen

MTIME = 1700000000
USR_MTIME = 1700000777
CAPABILITY = bytes.fromhex("0100000200200000000000000000000000000000")
ZSTD_MEDIA = "application/vnd.oci.image.layer.v1.tar+zstd"


def run(argv, **kwargs):
    """Run a tool with LC_ALL=C; raise AssertionError with its stderr when it fails."""
    env = dict(os.environ, LC_ALL="C")
    proc = subprocess.run([str(a) for a in argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, check=False,
                          **kwargs)
    if proc.returncode != 0:
        raise AssertionError("%s failed (rc %d): %s" % (argv, proc.returncode, proc.stderr.decode("utf-8", "replace")[-2000:]))
    return proc


def content(size, seed=0):
    """Deterministic pseudo-random bytes."""
    return random.Random(size * 7919 + seed).randbytes(size)


# --- layers -------------------------------------------------------------------------------------


def multi_layers():
    """Three layers: types, sizes around the 64-byte inline limit, xattrs, hard links, whiteouts, opaque dirs."""
    base = [
        ("dir", "usr", {"mtime": USR_MTIME}), ("dir", "usr/bin"), ("dir", "usr/lib"), ("dir", "usr/share"),
        ("dir", "etc"), ("dir", "etc/cfg.d", {"mode": 0o700, "uid": 10, "gid": 20}), ("dir", "var"), ("dir", "var/cache"),
        ("dir", "var/cache/sub"), ("dir", "run"), ("dir", "run/lock"), ("dir", "boot"), ("dir", "sysroot"),
        ("dir", "dev"), ("dir", "opt"), ("dir", "opt/app"),
        ("file", "usr/bin/tool", content(200000, 1), {"mode": 0o755, "xattrs": {"security.capability": CAPABILITY}}),
        ("hardlink", "usr/bin/tool2", "usr/bin/tool"),
        ("file", "usr/bin/tiny", b"#!/bin/sh\n", {"mode": 0o755}),
        ("symlink", "usr/bin/link", "tool"),
        ("symlink", "bin", "usr/bin"),
        ("file", "usr/lib/f64", content(64, 2)),
        ("file", "usr/lib/f65", content(65, 3)),
        ("file", "usr/lib/empty", b""),
        ("file", "usr/share/doc.txt", content(5000, 4), {"xattrs": {"user.comment": b"dropped by transform_for_oci"}}),
        ("file", "etc/config", b"secret=1\n", {"mode": 0o600, "uid": 1000, "gid": 1000, "mtime": MTIME + 5}),
        ("file", "etc/cfg.d/a.conf", content(300, 5)),
        ("file", "etc/old.conf", b"obsolete\n"),
        ("file", "var/cache/sub/data", content(1000, 6)),
        ("file", "run/lock/pid", b"42\n"),
        ("file", "boot/stale-in-boot", content(100, 7)),
        ("file", "opt/app/big", content(1 << 20 | 3, 8)),
        ("file", "opt/app/dup", content(1 << 20 | 3, 8)),
        ("fifo", "dev/fifo"), ("chr", "dev/null", 1, 3), ("blk", "dev/sda", 8, 0),
    ]
    middle = [
        ("whiteout", "etc/old.conf"),
        ("opaque", "var/cache"),
        ("dir", "var/cache", {"mode": 0o750, "mtime": MTIME + 60}),
        ("file", "var/cache/new", content(300, 9)),
        ("dir", "usr", {"mtime": USR_MTIME + 100, "mode": 0o755}),
        ("file", "usr/lib/f64", content(64, 10)),
        ("hardlink", "usr/lib/tool-link", "usr/bin/tool"),
        ("file", "opt/app", b"now a file\n"),
        ("dir", "etc/newdir"),
        ("file", "etc/newdir/x", content(70, 11), {"xattrs": {"user.k": b"v", "security.capability": CAPABILITY}}),
    ]
    top = [
        ("whiteout", "usr/bin/link"),
        ("file", "usr/bin/link", b"a file where a symlink was\n"),
        ("dir", "usr/bin", {"mode": 0o750, "mtime": MTIME + 99}),
        ("file", "usr/share/added", content(4096 * 3 + 1, 12)),
    ]
    return [base, middle, top]


def boot_layers(kernel=None, initrd=None, with_uki=True):
    """A bootable tree: a kernel in /usr/lib/modules, a UKI and an addon in /boot/EFI/Linux."""
    kernel = kernel if kernel is not None else content(9000, 21)
    initrd = initrd if initrd is not None else content(13000, 22)
    base = [
        ("dir", "usr", {"mtime": USR_MTIME}), ("dir", "usr/lib"), ("dir", "usr/lib/modules"),
        ("dir", "usr/lib/modules/6.1.0-test"),
        ("file", "usr/lib/modules/6.1.0-test/vmlinuz", kernel, {"mode": 0o755}),
        ("file", "usr/lib/modules/6.1.0-test/initramfs.img", initrd),
        ("file", "usr/lib/os-release", b"ID=testos\nVERSION_ID=1\n"),
        ("dir", "etc"), ("file", "etc/hostname", b"h\n"), ("dir", "run"),
        ("dir", "boot", {"mtime": MTIME + 1}), ("dir", "sysroot", {"mtime": MTIME + 2}),
        ("dir", "sysroot/ostree"), ("file", "sysroot/ostree/x", content(100, 23)),
    ]
    if with_uki:
        base += [("dir", "boot/EFI"), ("dir", "boot/EFI/Linux"),
                 ("file", "boot/EFI/Linux/test.efi", content(5000, 24)),
                 ("dir", "boot/EFI/Linux/test.efi.extra.d"),
                 ("file", "boot/EFI/Linux/test.efi.extra.d/dbg.addon.efi", content(700, 25))]
    return [base]


def build_tars(layers):
    """Uncompressed tar bytes of each layer (ocigen's tarfile writer)."""
    return [ocigen.build_layer_tar(entries) for entries in layers]


def compress(tar_bytes, compression):
    """Return ``(blob, media type)``; zstd through the zstd command-line tool."""
    if compression == "zstd":
        return run(["zstd", "-q", "-c", "-3"], input=tar_bytes).stdout, ZSTD_MEDIA
    return ocigen.compress_layer(tar_bytes, compression)


def write_layout_image(layout_dir, tars, compression="gzip", tag="latest", architecture="amd64", layer_media_types=None,
                       config_media_type=ocigen.MEDIA_CONFIG, config_bytes=None, add_ref=True):
    """Write one image into an OCI layout (per-layer compression allowed); return ocigen-style info."""
    writer = ocigen.LayoutWriter(layout_dir)
    compressions = compression if isinstance(compression, (list, tuple)) else [compression] * len(tars)
    descriptors, diff_ids = [], []
    for index, (tar_bytes, method) in enumerate(zip(tars, compressions)):
        blob, media = compress(tar_bytes, method)
        if layer_media_types:
            media = layer_media_types[index]
        descriptors.append({"mediaType": media, "digest": writer.add_blob(blob), "size": len(blob)})
        diff_ids.append("sha256:" + hashlib.sha256(tar_bytes).hexdigest())
    if config_bytes is None:
        config_bytes = json.dumps({"architecture": architecture, "os": "linux",
                                   "rootfs": {"type": "layers", "diff_ids": diff_ids}}, sort_keys=True).encode()
    manifest = {"schemaVersion": 2, "mediaType": ocigen.MEDIA_MANIFEST,
                "config": {"mediaType": config_media_type, "digest": writer.add_blob(config_bytes), "size": len(config_bytes)},
                "layers": descriptors}
    manifest_bytes = json.dumps(manifest, sort_keys=True).encode()
    manifest_digest = writer.add_blob(manifest_bytes)
    descriptor = {"mediaType": ocigen.MEDIA_MANIFEST, "digest": manifest_digest, "size": len(manifest_bytes),
                  "platform": {"architecture": architecture, "os": "linux"}}
    if add_ref:
        writer.add_ref(descriptor, tag)
    return {"manifest_digest": manifest_digest, "config_digest": manifest["config"]["digest"], "diff_ids": diff_ids,
            "descriptor": descriptor, "manifest": manifest_bytes, "config": config_bytes, "layers": descriptors,
            "tars": tars}


def blob_path(layout_dir, digest):
    algorithm, hex_part = digest.split(":", 1)
    return pathlib.Path(layout_dir) / "blobs" / algorithm / hex_part


# --- the on-disk oracle ---------------------------------------------------------------------------


def _norm(name):
    return "/".join(p for p in name.split("/") if p not in ("", "."))


def _remove(path):
    """Remove a path (tree) without changing its parent's mtime."""
    parent = os.path.dirname(path)
    before = os.lstat(parent).st_mtime_ns
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    else:
        os.unlink(path)
    os.utime(parent, ns=(before, before), follow_symlinks=False)


def _member_mtime_ns(member):
    text = member.pax_headers.get("mtime")
    return int(decimal.Decimal(text) * 10**9) if text else int(member.mtime) * 10**9


def apply_layer(root, tar_bytes, workdir):
    """Apply one uncompressed layer on top of directory ``root`` with GNU tar (see the module docstring)."""
    root = str(root)
    tar_path = os.path.join(str(workdir), "layer.tar")
    with open(tar_path, "wb") as handle:
        handle.write(tar_bytes)
    with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as archive:
        members = archive.getmembers()
    before = {d: os.lstat(d).st_mtime_ns for d, _dirs, _files in os.walk(root)}
    markers, listed_dirs = [], {}
    for member in members:
        rel = _norm(member.name)
        base = rel.rsplit("/", 1)[-1]
        parent = os.path.join(root, os.path.dirname(rel))
        target = os.path.join(root, rel)
        if base.startswith(".wh."):
            markers.append(target)
            if not os.path.isdir(parent):
                continue
            if base == ".wh..wh..opq":
                for child in os.listdir(parent):
                    _remove(os.path.join(parent, child))
            elif os.path.lexists(os.path.join(parent, base[4:])):
                _remove(os.path.join(parent, base[4:]))
            continue
        if member.isdir():
            listed_dirs[target.rstrip("/")] = _member_mtime_ns(member)
        if not os.path.lexists(target):
            continue
        existing_dir = os.path.isdir(target) and not os.path.islink(target)
        if member.isdir() and existing_dir:
            for key in os.listxattr(target, follow_symlinks=False):  # a directory entry replaces all metadata
                os.removexattr(target, key, follow_symlinks=False)
        elif existing_dir or member.isdir():
            _remove(target)
    run(["tar", "-x", "-p", "--numeric-owner", "--xattrs", "--xattrs-include=*", "-C", root, "-f", tar_path])
    for marker in markers:
        if os.path.lexists(marker):
            _remove(marker)
    for dirpath, when in before.items():
        if dirpath.rstrip("/") not in listed_dirs and os.path.isdir(dirpath) and not os.path.islink(dirpath):
            os.utime(dirpath, ns=(when, when), follow_symlinks=False)
    for dirpath, when in listed_dirs.items():
        os.utime(dirpath, ns=(when, when), follow_symlinks=False)


def _filter_xattrs(root, keep_user=False):
    for dirpath, dirnames, filenames in os.walk(root):
        for path in [dirpath] + [os.path.join(dirpath, n) for n in dirnames + filenames]:
            if os.path.islink(path):
                continue
            for key in os.listxattr(path, follow_symlinks=False):
                if key == "security.capability" or (keep_user and key.startswith("user.")):
                    continue
                os.removexattr(path, key, follow_symlinks=False)


def _empty(path, mtime_ns):
    for child in os.listdir(path):
        _remove(os.path.join(path, child))
    os.utime(path, ns=(mtime_ns, mtime_ns), follow_symlinks=False)


def extract_merged(root, tars, workdir, boot=False, keep_user_xattrs=False):
    """Build the merged, transformed tree of ``tars`` in directory ``root`` (the mkcomposefs input)."""
    root = str(root)
    os.makedirs(root)
    for tar_bytes in tars:
        apply_layer(root, tar_bytes, workdir)
    _filter_xattrs(root, keep_user_xattrs)
    usr = os.lstat(os.path.join(root, "usr"))
    run_dir = os.path.join(root, "run")
    if os.path.isdir(run_dir):
        _empty(run_dir, usr.st_mtime_ns)
    if boot:
        for name in ("boot", "sysroot"):
            path = os.path.join(root, name)
            nsec = os.lstat(path).st_mtime_ns % 10**9  # composefs-boot copies /usr's seconds only
            _empty(path, (usr.st_mtime_ns // 10**9) * 10**9 + nsec)
    for key in os.listxattr(root):
        os.removexattr(root, key)
    for key in os.listxattr(os.path.join(root, "usr")):
        os.setxattr(root, key, os.getxattr(os.path.join(root, "usr"), key))
    os.chown(root, usr.st_uid, usr.st_gid)
    os.chmod(root, usr.st_mode & 0o7777)
    os.utime(root, ns=(usr.st_mtime_ns, usr.st_mtime_ns))
    return root


def mkcomposefs_image(oracle, source, workdir, name="oracle"):
    """Run ``mkcomposefs --min-version=1 --digest-store``; return ``(image bytes, set of stored object ids)``."""
    store = pathlib.Path(workdir) / (name + "-store")
    image = pathlib.Path(workdir) / (name + ".img")
    oracle("mkcomposefs", "--digest-store=%s" % store, "--min-version=1", source, image)
    stored = {p.parent.name + p.name for p in store.rglob("*") if p.is_file()}
    return image.read_bytes(), stored


def composefs_info_objects(oracle, image_bytes, workdir, name="info.img"):
    """The object ids ``composefs-info objects`` lists for an image."""
    path = pathlib.Path(workdir) / name
    path.write_bytes(image_bytes)
    lines = oracle("composefs-info", "objects", path).stdout.decode().split()
    return {line.replace("/", "") for line in lines}


def composefs_info_dump(oracle, image_bytes, workdir, name="dump.img"):
    path = pathlib.Path(workdir) / name
    path.write_bytes(image_bytes)
    return oracle("composefs-info", "dump", path).stdout


def fsverity_names(repo_path, algorithm="sha256"):
    """``{object name: fsverity digest}`` of every object file, digests by the ``fsverity`` tool."""
    files = sorted(p for p in (pathlib.Path(repo_path) / "objects").glob("??/*") if p.is_file())
    if not files:
        return {}
    out = run(["fsverity", "digest", "--compact", "--hash-alg=%s" % algorithm] + files).stdout.decode().split()
    return {p.parent.name + p.name: digest for p, digest in zip(files, out)}


def repo_snapshot(repo_path):
    """Every path below the repository with its link text or content hash (to compare before/after)."""
    snapshot = {}
    for path in sorted(pathlib.Path(repo_path).rglob("*")):
        rel = str(path.relative_to(repo_path))
        if path.is_symlink():
            snapshot[rel] = "-> " + os.readlink(path)
        elif path.is_file():
            snapshot[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            snapshot[rel] = "dir"
    return snapshot


def decompress_blob(path, media_type):
    """Uncompressed bytes of a layer blob, by the gzip/zstd command-line tools."""
    if media_type.endswith("+gzip"):
        return run(["gzip", "-dc", path]).stdout
    if media_type.endswith("+zstd"):
        return run(["zstd", "-dc", "-q", path]).stdout
    return pathlib.Path(path).read_bytes()


def gzip_bytes(data):
    return gzip.compress(data, mtime=0)


# --- hard links ------------------------------------------------------------------------------------
# mkcomposefs 1.0.8 reading a *directory* does not keep hard links: every path becomes an inode of
# its own with nlink 1 (checked: GNU tar extracts usr/bin/tool and usr/bin/tool2 as one inode with
# st_nlink 2, mkcomposefs dumps both with nlink 1 and no '@'). composefs-rs and our writer share
# one inode. So for trees with hard links the oracle is either the dump with hard links expanded,
# or mkcomposefs --from-file on its own dump with the hard links put back from the on-disk inodes.


def _dump_lines(dump):
    return [line.split(" ") for line in dump.decode("utf-8").splitlines()]


def expand_hardlinks(dump):
    """Rewrite a composefs-info dump as mkcomposefs's directory mode would have it (no hard links)."""
    rows = _dump_lines(dump)
    by_path = {row[0]: row for row in rows}
    out = []
    for row in rows:
        if row[2].startswith("@"):
            row = [row[0]] + by_path[row[8]][1:]
        if not row[2].startswith("4"):  # every non-directory gets nlink 1
            row = row[:3] + ["1"] + row[4:]
        out.append(" ".join(row))
    return ("\n".join(out) + "\n").encode("utf-8")


def restore_hardlinks(dump, source):
    """Put the hard links of directory ``source`` (by st_ino) back into mkcomposefs's dump of it."""
    rows = _dump_lines(dump)
    groups = {}
    for row in rows:
        info = os.lstat(os.path.join(source, row[0].lstrip("/")))
        if not os.path.isdir(os.path.join(source, row[0].lstrip("/"))) or os.path.islink(os.path.join(source, row[0].lstrip("/"))):
            groups.setdefault(info.st_ino, []).append(row[0])
    first = {}
    for paths in groups.values():
        for path in paths:
            first[path] = (paths[0], len(paths))
    out = []
    for row in rows:
        if row[0] in first and first[row[0]][1] > 1:
            target, count = first[row[0]]
            row = row[:3] + [str(count)] + row[4:]
            if target != row[0]:
                row = row[:2] + ["@" + row[2]] + row[3:8] + [target] + row[9:]
        out.append(" ".join(row))
    return ("\n".join(out) + "\n").encode("utf-8")


def mkcomposefs_from_dump(oracle, dump, workdir, name="fromdump"):
    """Run ``mkcomposefs --from-file --min-version=1`` on a dump; return the image bytes."""
    dump_path = pathlib.Path(workdir) / (name + ".dump")
    image = pathlib.Path(workdir) / (name + ".img")
    dump_path.write_bytes(dump)
    oracle("mkcomposefs", "--from-file", "--min-version=1", dump_path, image)
    return image.read_bytes()


def without_hardlinks(layers):
    """The same layers with every hard link entry dropped."""
    return [[entry for entry in layer if entry[0] != "hardlink"] for layer in layers]
