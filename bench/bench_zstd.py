# -*- coding: utf-8 -*-
"""Benchmark: zstd decompression, the pure-Python backend against the accelerators and ``zstd -d``.

Run: ``.venv/bin/python bench/bench_zstd.py [--size-mib 8] [--runs 3] [--seed 1] [--from-dir /usr/lib/python3]``

Builds a deterministic tar stream of ``--size-mib`` MiB that looks like an OCI layer (text, config,
binary tables, zero-filled and random members), or tars real files from ``--from-dir``; compresses
it with the ``zstd`` CLI at level 3 with and without content checksum (streaming from stdin, as
composefs-rs writes: no content size), then times ``zstd.decompress`` with every available
backend, best of ``--runs``, checks the output and prints MB/s of decompressed output. Also times
the pure-Python encoder and XXH64. The pure-Python target is >= 5 MB/s on tar-like data.
"""

import argparse
import io
import os
import random
import struct
import subprocess
import sys
import tarfile
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO_ROOT, ".ci", "tmp", "collections"))

from ansible_collections.bootc.composefs.plugins.module_utils.formats import zstd  # noqa: E402  pylint: disable=wrong-import-position
from ansible_collections.bootc.composefs.plugins.module_utils.formats import zstd_frame  # noqa: E402  pylint: disable=wrong-import-position
from ansible_collections.bootc.composefs.plugins.module_utils.formats import zstd_python  # noqa: E402  pylint: disable=wrong-import-position

MIB = 1 << 20
PYTHON_TARGET_MBPS = 5.0


def _words(rng, count):
    vocabulary = [bytes(rng.choice(b"abcdefghijklmnopqrstuvwxyz") for _dummy in range(rng.randint(2, 10))) for _dummy in range(800)]
    return b"\n".join(b" ".join(rng.choice(vocabulary) for _dummy in range(8)) for _dummy in range(count // 8))


def synthetic_layer(size, seed):
    """A tar stream of about ``size`` bytes with a mix of member kinds."""
    rng = random.Random(seed)
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        index = 0
        while out.tell() < size:
            kind = index % 5
            if kind == 0:
                content = _words(rng, rng.randint(100, 3000))
            elif kind == 1:
                content = b"".join(b"%s=%d\n" % (rng.choice([b"key", b"path", b"mode", b"uid"]), rng.randint(0, 9999))
                                   for _dummy in range(rng.randint(10, 300)))
            elif kind == 2:
                content = b"".join(struct.pack("<IIQ", i, rng.randint(0, 255), i * 4096) for i in range(rng.randint(50, 2000)))
            elif kind == 3:
                content = bytes(rng.randint(512, 20000))
            else:
                content = rng.randbytes(rng.randint(100, 8000))
            info = tarfile.TarInfo("usr/share/bench/file%05d" % index)
            info.size = len(content)
            info.mtime = 1700000000 + index
            tar.addfile(info, io.BytesIO(content))
            index += 1
    return out.getvalue()


def directory_layer(path, size):
    """A tar stream of the regular files under ``path`` (sorted walk), stopping past ``size`` bytes."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for root, dirs, files in os.walk(path):
            dirs.sort()
            for name in sorted(files):
                full = os.path.join(root, name)
                if os.path.isfile(full) and not os.path.islink(full):
                    tar.add(full, arcname=os.path.relpath(full, path), recursive=False)
                if out.tell() >= size:
                    return out.getvalue()
    return out.getvalue()


def cli_compress(data, *args):
    return subprocess.run(["zstd", "-q", "-c", "-3"] + list(args), input=data, stdout=subprocess.PIPE,
                          env=dict(os.environ, LC_ALL="C"), check=True).stdout


def best_of(runs, func):
    """(best seconds, last result) of ``runs`` calls."""
    best = None
    result = None
    for _dummy in range(runs):
        start = time.perf_counter()
        result = func()
        elapsed = time.perf_counter() - start
        best = elapsed if best is None else min(best, elapsed)
    return best, result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--size-mib", type=float, default=8)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--from-dir", help="tar real files from this directory instead of synthetic members")
    args = parser.parse_args(argv)
    size = int(args.size_mib * MIB)
    data = directory_layer(args.from_dir, size) if args.from_dir else synthetic_layer(size, args.seed)
    print("input: %.2f MiB of %s tar data" % (len(data) / MIB, "real" if args.from_dir else "synthetic"))
    failures = 0
    for label, frame in (("level 3, no checksum", cli_compress(data, "--no-check")), ("level 3, checksum", cli_compress(data, "--check"))):
        print("%s: %.2f MiB compressed (ratio %.2f)" % (label, len(frame) / MIB, len(data) / len(frame)))
        for name in zstd.available_backends():
            zstd.use_backend(name)
            seconds, result = best_of(args.runs, lambda frame=frame: zstd.decompress(frame))
            if result != data:
                print("  %-16s WRONG OUTPUT" % name)
                failures += 1
                continue
            speed = len(data) / seconds / 1e6
            mark = ""
            if name == "python":
                mark = "  (target >= %.0f MB/s: %s)" % (PYTHON_TARGET_MBPS, "ok" if speed >= PYTHON_TARGET_MBPS else "MISSED")
            print("  %-16s %8.1f MB/s%s" % (name, speed, mark))
        zstd.use_backend(None)
    seconds, frame = best_of(args.runs, lambda: zstd_python.compress(data))
    if zstd_python.decompress(frame) != data:
        print("pure-Python encoder: WRONG ROUND TRIP")
        failures += 1
    print("pure-Python encoder (Huffman literals, RLE, raw blocks): %.1f MB/s, %.2f MiB out (ratio %.2f)"
          % (len(data) / seconds / 1e6, len(frame) / MIB, len(data) / len(frame)))
    seconds, _digest = best_of(args.runs, lambda: zstd_frame.xxh64(data))
    print("XXH64: %.1f MB/s" % (len(data) / seconds / 1e6))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
