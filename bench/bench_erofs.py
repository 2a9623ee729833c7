# -*- coding: utf-8 -*-
"""Benchmark: dumpfile -> EROFS image, ours (parse_dumpfile + write_image) against mkcomposefs.

Run: ``.venv/bin/python bench/bench_erofs.py [--entries 50000] [--runs 5] [--seed 1]``

Generates a deterministic, image-like dumpfile (nested directories, mostly external files with
sha256 digests, some inline files, symlinks, hardlinks, a few devices; SELinux labels on every
file, some user xattrs), then times ``mkcomposefs --from-file --min-version=1`` (through
``tests/setup/composefs-oracle``) and our parser + V1 writer, best of ``--runs`` each, checks the two
images are byte-identical and prints the throughput ratio ours / mkcomposefs (target >= 0.5).
"""

import argparse
import hashlib
import os
import random
import subprocess
import sys
import tempfile
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO_ROOT, ".ci", "tmp", "collections"))

from ansible_collections.bootc.composefs.plugins.module_utils.formats import dumpfile  # noqa: E402  pylint: disable=wrong-import-position
from ansible_collections.bootc.composefs.plugins.module_utils.formats.erofs import writer  # noqa: E402  pylint: disable=wrong-import-position

ORACLE = os.path.join(REPO_ROOT, "tests", "setup", "composefs-oracle")
LABELS = [b"system_u:object_r:usr_t:s0", b"system_u:object_r:lib_t:s0", b"system_u:object_r:bin_t:s0",
          b"system_u:object_r:etc_t:s0", b"system_u:object_r:textrel_shlib_t:s0"]
WORDS = ["lib", "share", "bin", "python3", "site-packages", "locale", "doc", "man", "include", "systemd", "x86_64",
         "gnu", "perl5", "icons", "hicolor", "fonts", "zoneinfo", "firmware", "modules", "kernel", "drivers", "net"]
EXTENSIONS = [".so", ".py", ".pyc", ".txt", ".gz", ".h", ".conf", ".mo", ".png", ".json", ""]


def _name(rng, kind):
    if kind == "dir":
        return "%s%s" % (rng.choice(WORDS), rng.choice(["", "-%d" % rng.randrange(100), ".d"]))
    stem = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz_-0123456789") for _index in range(rng.randrange(3, 18)))
    return stem + rng.choice(EXTENSIONS)


def _escape(value):
    """Dumpfile escape (graphic ASCII except backslash kept; '=' escaped too: used for xattrs)."""
    out = []
    for byte in value:
        if 0x21 <= byte <= 0x7E and byte not in (0x5C, 0x3D):
            out.append(chr(byte))
        else:
            out.append("\\x%02x" % byte)
    return "".join(out)


def generate_dumpfile(entries, seed):
    """A deterministic dumpfile of ``entries`` lines, in depth-first sorted order."""
    rng = random.Random(seed)
    root = {}
    dirs = [("", root, 0)]
    leaves = []
    while len(dirs) + len(leaves) < entries:
        path, directory, depth = dirs[-1 - min(int(rng.expovariate(0.05)), len(dirs) - 1)]
        kind = "dir" if rng.random() < 0.07 and depth < 10 else "file"
        name = _name(rng, kind)
        if name in directory:
            continue
        child_path = path + "/" + name
        if kind == "dir":
            directory[name] = {}
            dirs.append((child_path, directory[name], depth + 1))
        else:
            directory[name] = child_path
            leaves.append(child_path)
    base_mtime = 1700000000
    lines = []
    first_hardlink = {}

    def meta(label):
        mtime = "%d.0" % base_mtime if rng.random() < 0.6 else "%d.%d" % (base_mtime + rng.randrange(10 ** 6), rng.randrange(10 ** 9))
        xattrs = " security.selinux=" + _escape(label + b"\0")
        if rng.random() < 0.05:
            xattrs += " user.checksum=" + _escape(hashlib.md5(label + str(rng.random()).encode()).hexdigest().encode())
        return mtime, xattrs

    def emit(path, node):
        if isinstance(node, dict):
            mtime, xattrs = meta(LABELS[0])
            lines.append("%s 0 40755 2 0 0 0 %s - - -%s" % (path or "/", mtime, xattrs))
            for name in sorted(node, key=lambda n: n.encode()):
                emit(path + "/" + name, node[name])
            return
        mtime, xattrs = meta(rng.choice(LABELS))
        pick = rng.random()
        if pick < 0.78:
            digest = hashlib.sha256(path.encode()).hexdigest()
            size = int(rng.lognormvariate(9, 2.5)) + 1
            lines.append("%s %d 100644 1 0 0 0 %s %s/%s - %s%s" % (path, size, mtime, digest[:2], digest[2:], digest, xattrs))
        elif pick < 0.88:
            content = bytes(rng.randrange(32, 127) for _index in range(rng.randrange(1, 64)))
            lines.append("%s %d 100644 1 0 0 0 %s - %s -%s" % (path, len(content), mtime, _escape(content), xattrs))
        elif pick < 0.97:
            target = "../" * rng.randrange(3) + rng.choice(WORDS) + "/" + _name(rng, "file")
            lines.append("%s %d 120777 1 0 0 0 %s %s - -%s" % (path, len(target), mtime, target, xattrs))
        elif pick < 0.99 and first_hardlink:
            target = rng.choice(sorted(first_hardlink))
            first_hardlink[target][1] += 1
            lines.append("%s 0 @100644 0 0 0 0 0.0 %s - -" % (path, target))
        elif pick < 0.995:
            lines.append("%s 0 20644 1 0 0 %d %s - - -%s" % (path, rng.randrange(1, 1 << 16), mtime, xattrs))
        else:
            first_hardlink[path] = [len(lines), 1]
            content = b"shared"
            lines.append("%s %d 100644 {nlink} 0 0 0 %s - %s -%s" % (path, len(content), mtime, content.decode(), xattrs))

    emit("", root)
    # mkcomposefs copies NLINK from the dumpfile, so hardlink targets must carry the real count
    for index, count in first_hardlink.values():
        lines[index] = lines[index].replace("{nlink}", str(count), 1)
    return ("\n".join(lines) + "\n").encode()


def _best(function, runs):
    best = None
    result = None
    for _index in range(runs):
        start = time.perf_counter()
        result = function()
        elapsed = time.perf_counter() - start
        best = elapsed if best is None else min(best, elapsed)
    return best, result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=50000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)

    text = generate_dumpfile(args.entries, args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        dump_path = os.path.join(tmp, "bench.dump")
        image_path = os.path.join(tmp, "bench.img")
        with open(dump_path, "wb") as handle:
            handle.write(text)

        def oracle():
            subprocess.run([ORACLE, "mkcomposefs", "--from-file", "--min-version=1", dump_path, image_path],
                           check=True, env=dict(os.environ, LC_ALL="C"))
            with open(image_path, "rb") as handle:
                return handle.read()

        def ours():
            return writer.write_image(dumpfile.parse_dumpfile(text), version=1)

        oracle_seconds, oracle_image = _best(oracle, args.runs)
        ours_seconds, ours_image = _best(ours, args.runs)
        parse_seconds, tree = _best(lambda: dumpfile.parse_dumpfile(text), args.runs)
        write_seconds, _image = _best(lambda: writer.write_image(tree, version=1), args.runs)

    identical = ours_image == oracle_image
    print("entries: %d, dumpfile: %d bytes, image: %d bytes" % (text.count(b"\n"), len(text), len(oracle_image)))
    print("mkcomposefs --from-file --min-version=1: %.3f s (best of %d, process included)" % (oracle_seconds, args.runs))
    print("ours parse_dumpfile + write_image:      %.3f s (parse %.3f s, write %.3f s)" % (ours_seconds, parse_seconds, write_seconds))
    print("images byte-identical: %s" % ("yes" if identical else "NO"))
    print("throughput ours/mkcomposefs: %.2fx (target >= 0.5x)" % (oracle_seconds / ours_seconds))
    return 0 if identical else 1


if __name__ == "__main__":
    sys.exit(main())
