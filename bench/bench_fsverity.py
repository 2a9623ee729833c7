# -*- coding: utf-8 -*-
"""Benchmark: fs-verity digest of a large file, ours (formats/fsverity.digest_path) against ``fsverity digest``.

Run: ``.venv/bin/python bench/bench_fsverity.py [--size-mib 1024] [--runs 5] [--seed 1] [--variants]``

Writes a random file of ``--size-mib`` MiB in a temporary directory (removed afterwards), reads it
once to warm the page cache, then for sha256 and sha512 times Debian's
``fsverity digest --hash-alg=... --block-size=4096 FILE`` and our ``digest_path`` (computing, not
asking the kernel), best of ``--runs`` interleaved runs each, checks the digests are equal and prints the
throughputs and the ratio ours / tool. Targets: >= 1.3x for sha256, >= 2x for sha512.
``--variants`` also times one worker and the thread backend, for comparison.
"""

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO_ROOT, ".ci", "tmp", "collections"))

from ansible_collections.bootc.composefs.plugins.module_utils.formats import fsverity  # noqa: E402  pylint: disable=wrong-import-position

MIB = 1 << 20
TARGETS = {"sha256": 1.3, "sha512": 2.0}


def write_random_file(path, size, seed):
    """Write ``size`` pseudo-random bytes (fixed seed) to ``path``."""
    rng = random.Random(seed)
    with open(path, "wb") as out:
        left = size
        while left:
            count = min(left, 16 * MIB)
            out.write(rng.randbytes(count))
            left -= count


def warm_page_cache(path):
    """Read the whole file once so every timed run reads from the page cache."""
    with open(path, "rb", buffering=0) as fileobj:
        buf = bytearray(16 * MIB)
        while fileobj.readinto(buf):
            pass


def best_of(runs, funcs):
    """[(best wall time in seconds, last result)] for each of ``funcs``, called in turn ``runs`` times.

    The calls are interleaved so that a burst of load from other processes hits all of them alike.
    """
    best = [None] * len(funcs)
    results = [None] * len(funcs)
    for dummy in range(runs):
        for index, func in enumerate(funcs):
            start = time.perf_counter()
            results[index] = func()
            elapsed = time.perf_counter() - start
            best[index] = elapsed if best[index] is None else min(best[index], elapsed)
    return list(zip(best, results))


def tool_digest(tool, path, algorithm):
    """Raw digest printed by ``fsverity digest`` ("<alg>:<hex> <path>")."""
    proc = subprocess.run([tool, "digest", "--hash-alg=%s" % algorithm.name, "--block-size=4096", path],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=dict(os.environ, LC_ALL="C"), check=True)
    name, sep, rest = proc.stdout.decode("ascii").partition(":")
    if name != algorithm.name or not sep:
        raise RuntimeError("unexpected fsverity output: %r" % proc.stdout)
    return bytes.fromhex(rest.split()[0])


def ours_digest(path, algorithm, threads):
    """Our digest, computed (a kernel measurement would not be a benchmark)."""
    return fsverity.digest_path(path, algorithm, threads=threads, use_kernel=False)


def ours_with_thread_backend(path, algorithm):
    """digest_path forced to run its extra workers as threads instead of forked processes."""
    saved = fsverity._fork_is_safe  # pylint: disable=protected-access
    fsverity._fork_is_safe = lambda: False  # pylint: disable=protected-access
    try:
        return fsverity.digest_path(path, algorithm, use_kernel=False)
    finally:
        fsverity._fork_is_safe = saved  # pylint: disable=protected-access


def rate(size, seconds):
    return "%7.1f MiB/s (%.3f s)" % (size / MIB / seconds, seconds)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--size-mib", type=int, default=1024, help="size of the test file in MiB (default 1024)")
    parser.add_argument("--runs", type=int, default=5, help="timed runs per measurement, best kept (default 5)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the random file content (default 1)")
    parser.add_argument("--threads", type=int, default=None, help="digest_path threads (default: automatic)")
    parser.add_argument("--variants", action="store_true", help="also time one worker and the thread backend")
    parser.add_argument("--tmpdir", default=None, help="where to create the test file (default: system temp dir)")
    args = parser.parse_args(argv)

    tool = shutil.which("fsverity")
    if tool is None:
        sys.stderr.write("fsverity (fsverity-utils) is not installed; run tests/setup/bootstrap.sh\n")
        return 2
    size = args.size_mib * MIB
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:
        cpus = os.cpu_count()
    print("file: %d MiB random, page cache warm; %s CPUs; best of %d interleaved runs; python %s; load average %.2f"
          % (args.size_mib, cpus, args.runs, sys.version.split()[0], os.getloadavg()[0]))
    failed = False
    workdir = tempfile.mkdtemp(prefix="bench-fsverity-", dir=args.tmpdir)
    try:
        path = os.path.join(workdir, "data")
        write_random_file(path, size, args.seed)
        warm_page_cache(path)
        for algorithm in (fsverity.SHA256, fsverity.SHA512):
            funcs = [
                lambda: tool_digest(tool, path, algorithm),  # pylint: disable=cell-var-from-loop
                lambda: ours_digest(path, algorithm, args.threads),  # pylint: disable=cell-var-from-loop
            ]
            labels = ["one worker", "thread backend"] if args.variants else []
            if args.variants:
                funcs.append(lambda: ours_digest(path, algorithm, 1))  # pylint: disable=cell-var-from-loop
                funcs.append(lambda: ours_with_thread_backend(path, algorithm))  # pylint: disable=cell-var-from-loop
            timings = best_of(args.runs, funcs)
            tool_time, expected = timings[0]
            ours_time, ours = timings[1]
            ratio = tool_time / ours_time
            equal = ours == expected
            failed = failed or not equal
            print("%s: fsverity %s  ours %s  ratio %.2fx (target >= %.1fx: %s)  digests %s"
                  % (algorithm.name, rate(size, tool_time), rate(size, ours_time), ratio, TARGETS[algorithm.name],
                     "met" if ratio >= TARGETS[algorithm.name] else "MISSED", "equal" if equal else "DIFFER"))
            for label, (seconds, digest) in zip(labels, timings[2:]):
                failed = failed or digest != expected
                print("  %s, %s: %s  ratio %.2fx  digests %s" % (algorithm.name, label, rate(size, seconds), tool_time / seconds,
                                                                 "equal" if digest == expected else "DIFFER"))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print("load average at the end %.2f (other processes competing for the CPUs lower both figures)" % os.getloadavg()[0])
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
