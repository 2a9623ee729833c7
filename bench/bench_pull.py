# -*- coding: utf-8 -*-
"""Benchmark: pulling a large rootfs image with composefs_pull's operation against ``mkcomposefs --digest-store``.

Run: ``.venv/bin/python bench/bench_pull.py [--files 24000] [--megabytes 640] [--layers 4] [--runs 2]
[--compression gzip|none] [--algorithm sha256|sha512] [--loop | --scratch DIR] [--json]``

1. Builds once (cached in ``~/.cache/bootc-composefs/bench-pull-<params>/``, ``--rebuild`` to redo)
   a deterministic rootfs tree of ``--files`` regular files (sizes log-uniform from 16 bytes to
   256 KiB, plus a few files of several MiB, until ``--megabytes`` of content; about a third
   compressible text-like data, the rest random), directories, symlinks and hard links, and an OCI
   image layout of exactly that tree: ``--layers`` tar layers (the top-level directories split
   among them) written with Python's ``tarfile``, compressed by ``zlib`` (level 1) or not.
2. Times, best of ``--runs`` each, runs interleaved, ``sync`` before each:
   * ours: ``operations.pull.pull_image`` of ``oci:<layout>:bench`` into a fresh repository of a
     bare host tree (skopeo's image proxy, staging, native import: file objects, layer
     splitstreams, the EROFS image, config and manifest streams, the tag), in this process;
   * mkcomposefs: ``mkcomposefs --digest-store=<store> <tree> <image>`` (Debian's composefs 1.0,
     through ``tests/setup/composefs-oracle``) on the extracted tree: digests every file, copies
     each into the store and fsyncs it, writes the EROFS image.
   Both write to ``--scratch`` (default: the cache directory, on whatever filesystem holds it), or
   with ``--loop`` (root only) to an ext4 of their own: a preallocated image file in the cache
   directory on a loop device with direct I/O, created and removed by the run. A filesystem of
   their own is what a bootc host's ``/sysroot`` is; on a filesystem shared with a busy machine,
   ``syncfs`` also waits for other processes' dirty data and every open contends with their
   journal traffic, so the numbers there swing with the machine's load (both tools' do).
3. Checks that every object mkcomposefs put in its store is an object of our repository with the
   same name (same fs-verity digest of the same content; needs ``--algorithm sha256``) and prints
   the throughput of both in MB of file content per second and the ratio ours / mkcomposefs
   (target >= 1.0).

Crash safety is the same by different means: mkcomposefs fsyncs every object before the image
that names it; the importer writes objects without fsync and issues one ``syncfs`` before each
stream entry that references them (composefs-repo.md section 9), the tag last.
``tests/harness/pull_crash.py`` kills pulls at random points and checks that guarantee.
"""

import argparse
import hashlib
import io
import json
import os
import random
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zlib

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLLECTIONS = os.path.join(REPO_ROOT, ".ci", "tmp", "collections")
sys.path.insert(0, COLLECTIONS)
sys.path.insert(0, os.path.join(REPO_ROOT, "tests", "tools"))

import ocigen  # noqa: E402  pylint: disable=wrong-import-position,import-error

ORACLE = os.path.join(REPO_ROOT, "tests", "setup", "composefs-oracle")
MTIME = 1700000000
MEDIA_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
MEDIA_TAR = "application/vnd.oci.image.layer.v1.tar"
TOP_DIRS = ["usr/lib", "usr/share", "usr/bin", "usr/lib64", "usr/libexec", "etc", "usr/include", "usr/src"]
WORDS = [b"the ", b"system ", b"library ", b"config ", b"value ", b"module ", b"kernel ", b"python ", b"= ", b"\n"]


def _ensure_collection_link():
    link = os.path.join(COLLECTIONS, "ansible_collections", "bootc", "composefs")
    if not os.path.lexists(link):
        os.makedirs(os.path.dirname(link), exist_ok=True)
        os.symlink(REPO_ROOT, link)


def _content(rng, size):
    if rng.random() < 0.35:
        text = b"".join(rng.choice(WORDS) for _index in range(size // 5 + 1))
        return text[:size]
    return rng.randbytes(size)


def build_tree(tree, files, megabytes, seed):
    """The rootfs tree; returns ``(regular files, content bytes)``."""
    rng = random.Random(seed)
    budget = megabytes << 20
    big = [rng.randrange(4 << 20, 12 << 20) for _index in range(max(1, megabytes // 40))]
    sizes = [int(16 * (2 ** (rng.random() * 14))) for _index in range(files - len(big))]
    scale = max(0.1, (budget - sum(big)) / float(sum(sizes)))
    sizes = [max(1, int(s * scale)) for s in sizes] + big
    rng.shuffle(sizes)
    directories = []
    for top in TOP_DIRS:
        for index in range(40):
            directories.append("%s/d%02d/sub%d" % (top, index, index % 3))
    total = 0
    paths = []
    for number, size in enumerate(sizes):
        directory = directories[number % len(directories)]
        path = os.path.join(tree, directory, "f%06d.%s" % (number, rng.choice(["so", "py", "txt", "gz", "conf"])))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as handle:
            handle.write(_content(rng, size))
        paths.append(path)
        total += size
    for number in range(0, len(paths), 97):
        link = paths[number] + ".link"
        os.symlink(os.path.basename(paths[number]), link)
    for number in range(1, len(paths), 211):
        os.link(paths[number], paths[number] + ".hard")
    for dirpath, dirnames, filenames in os.walk(tree):
        for name in dirnames + filenames:
            os.utime(os.path.join(dirpath, name), (MTIME, MTIME), follow_symlinks=False)
    os.utime(tree, (MTIME, MTIME))
    return len(paths), total


def _tar_of(tree, tops):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        seen = set()
        for top in tops:
            parts = top.split("/")
            for depth in range(1, len(parts)):
                parent = "/".join(parts[:depth])
                if parent not in seen:
                    seen.add(parent)
                    tar.add(os.path.join(tree, parent), arcname=parent, recursive=False)
            for dirpath, dirnames, filenames in os.walk(os.path.join(tree, top)):
                dirnames.sort()
                rel = os.path.relpath(dirpath, tree)
                tar.add(dirpath, arcname=rel, recursive=False)
                for name in sorted(filenames):
                    tar.add(os.path.join(dirpath, name), arcname=os.path.join(rel, name), recursive=False)
    return buffer.getvalue()


def build_layout(tree, layout, layers, compression):
    """An OCI image layout (tag ``bench``) of ``tree``; returns its manifest digest."""
    present = [top for top in TOP_DIRS if os.path.isdir(os.path.join(tree, top))]
    groups = [present[i::layers] for i in range(layers)]
    writer = ocigen.LayoutWriter(layout)
    descriptors, diff_ids = [], []
    for group in groups:
        tar_bytes = _tar_of(tree, group)
        diff_ids.append("sha256:" + hashlib.sha256(tar_bytes).hexdigest())
        blob = tar_bytes
        if compression == "gzip":
            packer = zlib.compressobj(1, zlib.DEFLATED, 31)
            blob = packer.compress(tar_bytes) + packer.flush()
        descriptors.append({"mediaType": MEDIA_GZIP if compression == "gzip" else MEDIA_TAR,
                            "digest": writer.add_blob(blob), "size": len(blob)})
    config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": diff_ids},
                         "config": {}}, sort_keys=True).encode()
    manifest = json.dumps({"schemaVersion": 2, "mediaType": ocigen.MEDIA_MANIFEST,
                           "config": {"mediaType": ocigen.MEDIA_CONFIG, "digest": writer.add_blob(config), "size": len(config)},
                           "layers": descriptors}, sort_keys=True).encode()
    digest = writer.add_blob(manifest)
    writer.add_ref({"mediaType": ocigen.MEDIA_MANIFEST, "digest": digest, "size": len(manifest)}, "bench")
    return digest


def prepare(args):
    key = "bench-pull-%d-%d-%d-%s-%d" % (args.files, args.megabytes, args.layers, args.compression, args.seed)
    base = os.path.join(os.path.expanduser("~"), ".cache", "bootc-composefs", key)
    marker = os.path.join(base, "complete.json")
    if os.path.exists(marker) and not args.rebuild:
        with open(marker) as handle:
            return base, json.load(handle)
    shutil.rmtree(base, ignore_errors=True)
    os.makedirs(base)
    started = time.monotonic()
    files, content = build_tree(os.path.join(base, "tree"), args.files, args.megabytes, args.seed)
    digest = build_layout(os.path.join(base, "tree"), os.path.join(base, "layout"), args.layers, args.compression)
    info = {"files": files, "content_bytes": content, "manifest_digest": digest, "build_seconds": time.monotonic() - started}
    with open(marker, "w") as handle:
        json.dump(info, handle)
    return base, info


def _meta(algorithm):
    return json.dumps({"version": 1, "algorithm": "fsverity-%s-12" % algorithm,
                       "features": {"compatible": [], "read-only-compatible": ["v1_erofs"], "incompatible": []},
                       "erofs_formats": {"default": 1}}, indent=2).encode() + b"\n"


def run_ours(base, scratch, algorithm):
    from ansible_collections.bootc.composefs.plugins.module_utils.operations import pull  # pylint: disable=import-outside-toplevel

    root = os.path.join(scratch, "host")
    repo = os.path.join(root, "sysroot", "composefs")
    os.makedirs(repo, mode=0o700)
    os.makedirs(os.path.join(root, "run"))
    with open(os.path.join(repo, "meta.json"), "wb") as handle:
        handle.write(_meta(algorithm))
    subprocess.run(["sync"], check=True)
    started = time.monotonic()
    result = pull.pull_image(pull.PullRequest(image="oci:%s:bench" % os.path.join(base, "layout"), root=root,
                                              tag="bench/rootfs:1"))
    seconds = time.monotonic() - started
    return seconds, repo, result


def run_mkcomposefs(base, scratch):
    store = os.path.join(scratch, "store")
    os.makedirs(store)
    subprocess.run(["sync"], check=True)
    started = time.monotonic()
    subprocess.run([ORACLE, "mkcomposefs", "--digest-store=" + store, os.path.join(base, "tree"),
                    os.path.join(scratch, "image.cfs")], check=True, stdout=subprocess.DEVNULL)
    return time.monotonic() - started, store


def _objects(directory):
    found = set()
    for sub in os.listdir(directory):
        path = os.path.join(directory, sub)
        if len(sub) == 2 and os.path.isdir(path):
            found.update(sub + name for name in os.listdir(path))
    return found


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--files", type=int, default=24000)
    parser.add_argument("--megabytes", type=int, default=640)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--compression", choices=["gzip", "none"], default="gzip")
    parser.add_argument("--algorithm", choices=["sha256", "sha512"], default="sha256")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rebuild", action="store_true")
    parser.add_argument("--scratch", help="directory for the repositories and digest stores (default: the cache directory); "
                        "a filesystem of their own keeps other I/O of the machine out of the measurement")
    parser.add_argument("--loop", action="store_true", help="run on an ext4 of its own on a loop device (root only)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    _ensure_collection_link()
    subprocess.run([ORACLE, "--ensure"], check=True, stdout=subprocess.DEVNULL)
    base, info = prepare(args)
    loop = None
    if args.loop:
        loop = LoopFilesystem(base, (info["content_bytes"] * 3) // (1 << 30) + 2)
        args.scratch = loop.mount_point
    try:
        report = measure(args, base, info)
    finally:
        if loop is not None:
            loop.remove()
    report["filesystem"] = "ext4 on a loop device (direct I/O)" if loop is not None else _filesystem_of(args.scratch or base)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        mb = report["content_mb"]
        print("rootfs: %d files, %.1f MB of content, %d %s layer(s); repository %s; written to %s"
              % (report["files"], mb, args.layers, args.compression, args.algorithm, report["filesystem"]))
        print("ours (pull_image, oci layout):    %7.2f s  %7.1f MB/s" % (report["ours_seconds"], report["ours_mb_per_s"]))
        print("mkcomposefs --digest-store:        %7.2f s  %7.1f MB/s"
              % (report["mkcomposefs_seconds"], report["mkcomposefs_mb_per_s"]))
        if report["objects"]:
            print("objects: all %d of mkcomposefs's are in our repository under the same names"
                  % report["objects"]["mkcomposefs_objects"])
        print("ratio ours / mkcomposefs throughput: %.2fx (target >= 1.0)" % report["ratio"])


def _filesystem_of(path):
    found = subprocess.run(["findmnt", "-no", "FSTYPE,SOURCE", "-T", path], stdout=subprocess.PIPE, check=False)
    return found.stdout.decode().strip() or "unknown"


class LoopFilesystem:
    """A preallocated ext4 image on a loop device with direct I/O, mounted in a temporary directory."""

    def __init__(self, base, gigabytes):
        self.image = os.path.join(base, "scratch-ext4.img")
        self.mount_point = tempfile.mkdtemp(prefix="bench-pull-fs-")
        self.device = None
        subprocess.run(["fallocate", "-l", "%dG" % gigabytes, self.image], check=True)
        subprocess.run(["mkfs.ext4", "-q", "-F", self.image], check=True)
        self.device = subprocess.run(["losetup", "--direct-io=on", "-f", "--show", self.image], stdout=subprocess.PIPE,
                                     check=True).stdout.decode().strip()
        subprocess.run(["mount", self.device, self.mount_point], check=True)

    def remove(self):
        subprocess.run(["umount", self.mount_point], check=False)
        if self.device:
            subprocess.run(["losetup", "-d", self.device], check=False)
        os.rmdir(self.mount_point)
        os.unlink(self.image)


def measure(args, base, info):
    """Interleaved timed runs; returns the report dict."""
    ours, theirs = [], []
    checked = None
    for _run in range(args.runs):
        scratch = tempfile.mkdtemp(prefix="bench-pull-", dir=args.scratch or base)
        try:
            seconds, repo, result = run_ours(base, scratch, args.algorithm)
            ours.append(seconds)
            mk_seconds, store = run_mkcomposefs(base, scratch)
            theirs.append(mk_seconds)
            if checked is None and args.algorithm == "sha256":
                missing = _objects(store) - _objects(os.path.join(repo, "objects"))
                checked = {"mkcomposefs_objects": len(_objects(store)), "missing_from_ours": len(missing)}
                if missing:
                    raise SystemExit("bench_pull: %d object(s) of mkcomposefs are not in our repository" % len(missing))
            assert result.manifest_digest == info["manifest_digest"]
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    mb = info["content_bytes"] / 1e6
    return {"files": info["files"], "content_mb": round(mb, 1), "layers": args.layers, "compression": args.compression,
            "algorithm": args.algorithm, "ours_seconds": round(min(ours), 3), "mkcomposefs_seconds": round(min(theirs), 3),
            "ours_mb_per_s": round(mb / min(ours), 1), "mkcomposefs_mb_per_s": round(mb / min(theirs), 1),
            "ratio": round(min(theirs) / min(ours), 2), "runs": {"ours": ours, "mkcomposefs": theirs}, "objects": checked}


if __name__ == "__main__":
    main()
