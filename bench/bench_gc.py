# -*- coding: utf-8 -*-
"""Benchmark: repository GC (``repository/gc.py``) against ``find objects -type f | wc -l``, time and memory.

Run: ``.venv/bin/python bench/bench_gc.py [--objects 200000] [--garbage 0.1] [--runs 3] [--mark-ids 1000000]``

1. Builds (once; cached in ``~/.cache/bootc-composefs/bench-gc-<params>/``, ``--rebuild`` to redo)
   a sha512 repository of ``--objects`` real objects (65..1500 random bytes each, named by their
   fs-verity digest) and the streams that reference them: ``--images`` tagged images (manifest ->
   config -> ``--layers`` layer splitstreams of about objects/(images*layers) external chunks
   each, a quarter of the layers shared between two images), ``--erofs-roots`` EROFS images of
   ``--erofs-files`` files each (``images/refs`` roots, also named by their image's config), and
   garbage: a ``--garbage`` fraction of the objects, half in layer streams no image uses (their
   ``streams/`` entries are unlinked by the GC), half referenced by nothing.
2. Times, warm (dropping caches is not possible here: every timing runs on a warm page, dentry
   and inode cache, after one untimed pass of each), best of ``--runs``:
   * floor: ``sh -c 'find objects -type f | wc -l'`` in the repository;
   * dry run: ``plan_repository_gc`` (shared lock, nothing written), in a fresh Python process;
   * real run: ``plan_repository_gc`` + ``apply_repository_gc`` (exclusive lock, deletions), in a
     fresh Python process, each time on a new hard-link copy of the cached repository (``cp -al``;
     the GC only unlinks, so the cache is never touched);
   GC times are measured inside the child around the GC calls (interpreter start-up and imports
   excluded, reported apart), as wall time and as CPU time (``time.process_time``); the floor's
   CPU time is that of ``sh`` and its children (``os.wait4``). On a shared machine the CPU ratio
   moves less than the wall ratio. Memory is the child's ``ru_maxrss`` (``os.wait4``), with the
   baseline of a child that only imports the same modules.
3. Mark memory for ``--mark-ids`` objects, two ways: (a) the real code path: ``plan_repository_gc``
   of a synthetic repository whose 100 layer splitstreams name ``--mark-ids`` distinct object ids
   (the objects themselves are absent: the mark does not open object refs, only streams and root
   images), peak RSS minus the import-only baseline; (b) the data structure alone: a ``set`` of
   that many 64-byte ``bytes`` ids (what ``_Marker.live`` holds), RSS growth in a fresh child.

Targets: dry run and real run <= 3x the floor (wall time, best of ``--runs``); peak RSS of the GC
child <= 150 MB (exit status 1 when one is missed, as every bench of ``make bench``). The load
average is printed: on a busy machine the ratios move by tens of percent. ``--profile`` prints a
cProfile of one plan (in this process, after a warm-up) instead.
"""

import argparse
import hashlib
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLLECTIONS = os.path.join(REPO_ROOT, ".ci", "tmp", "collections")
sys.path.insert(0, COLLECTIONS)


def _ensure_collection_link():
    link = os.path.join(COLLECTIONS, "ansible_collections", "bootc", "composefs")
    if not os.path.lexists(link):
        os.makedirs(os.path.dirname(link), exist_ok=True)
        os.symlink(REPO_ROOT, link)


_ensure_collection_link()


class _Library:
    """The collection's modules, imported on first use and only in the child processes: the
    parent stays small, because a child's ``ru_maxrss`` starts from the RSS of the process that
    forked it (Linux keeps the high-water mark across ``execve``)."""

    def __getattr__(self, name):
        # pylint: disable=import-outside-toplevel
        from ansible_collections.bootc.composefs.plugins.module_utils.formats import fsverity, splitstream, tree
        from ansible_collections.bootc.composefs.plugins.module_utils.formats.erofs import writer as erofs_writer
        from ansible_collections.bootc.composefs.plugins.module_utils.repository import gc as repo_gc
        from ansible_collections.bootc.composefs.plugins.module_utils.repository.repo import Repository

        self.__dict__.update(fsverity=fsverity, splitstream=splitstream, tree=tree, erofs_writer=erofs_writer,
                             repo_gc=repo_gc, Repository=Repository, ALGORITHM=fsverity.SHA512)
        return self.__dict__[name]


LIB = _Library()

CACHE = os.environ.get("BOOTC_COMPOSEFS_CACHE", os.path.join(os.path.expanduser("~"), ".cache", "bootc-composefs"))
TARGET_RATIO = 3.0
TARGET_RSS_MB = 150.0
TAR_HEADER_BYTES = 512
MARK_STREAMS = 100


def _parser():
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--objects", type=int, default=200000, help="objects in the repository (default %(default)s)")
    parser.add_argument("--garbage", type=float, default=0.1, help="unreachable fraction (default %(default)s)")
    parser.add_argument("--images", type=int, default=4)
    parser.add_argument("--layers", type=int, default=40, help="layers per image (default %(default)s)")
    parser.add_argument("--erofs-roots", type=int, default=2)
    parser.add_argument("--erofs-files", type=int, default=50000)
    parser.add_argument("--mark-ids", type=int, default=1000000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rebuild", action="store_true", help="rebuild the cached repositories")
    parser.add_argument("--work", help="where the hard-link copies go (default: next to the cache, same filesystem)")
    parser.add_argument("--profile", action="store_true", help="print a cProfile of one plan instead of timing")
    parser.add_argument("--child", nargs=2, metavar=("MODE", "PATH"), help=argparse.SUPPRESS)
    return parser


# --- building the repositories ------------------------------------------------------------------------


def _fake_digest(label):
    return "sha256:" + hashlib.sha256(label.encode()).hexdigest()


def _tar_header(name):
    header = bytearray(TAR_HEADER_BYTES)
    header[:len(name)] = name.encode()[:100]
    return bytes(header)


def _layer_stream(members):
    """A layer splitstream: per object a 512-byte header inline, then the object as an external chunk."""
    writer = LIB.splitstream.SplitStreamWriter(LIB.ALGORITHM, LIB.splitstream.CONTENT_TYPE_OCI_LAYER)
    for number, (digest, size) in enumerate(members):
        writer.write_inline(_tar_header("f%07d" % number))
        writer.write_external(digest, size)
        writer.write_inline(bytes(-size % TAR_HEADER_BYTES))
    writer.write_inline(bytes(2 * TAR_HEADER_BYTES))
    return writer.encode()


def _json_stream(content_type, document, repo, named):
    data = json.dumps(document, sort_keys=True).encode()
    object_id = repo.ensure_object(data)
    writer = LIB.splitstream.SplitStreamWriter(LIB.ALGORITHM, content_type)
    writer.write_external(bytes.fromhex(object_id), len(data))
    for name, object_hex in named:
        writer.add_named_ref(name, bytes.fromhex(object_hex))
    return writer.encode()


def _erofs_image(members):
    """An EROFS image (V1) of one directory holding every member as an external file."""
    directory = LIB.tree.Directory(LIB.tree.Stat(mode=0o40755))
    for number, (digest, size) in enumerate(members):
        directory.entries[b"f%07d" % number] = LIB.tree.RegularFile(LIB.tree.Stat(mode=0o100644), size=size, fsverity_digest=digest)
    root = LIB.tree.Directory(LIB.tree.Stat(mode=0o40755), {b"usr": directory})
    return LIB.erofs_writer.write_image(root, version=1, algorithm=LIB.ALGORITHM)


def build_repository(path, args, log):
    """The benchmark repository (module docstring, step 1) at ``path``; returns its description."""
    rng = random.Random(args.seed)
    started = time.monotonic()
    with LIB.Repository.init(path, algorithm=LIB.ALGORITHM, erofs_default=1, insecure=True) as repo:
        objects = []
        for number in range(args.objects):
            data = b"%d:%d:" % (args.seed, number) + rng.randbytes(rng.randint(65, 1500))
            objects.append((bytes.fromhex(repo.ensure_object(data)), len(data)))
            if number % 50000 == 49999:
                log("  %d objects written (%.0f s)" % (number + 1, time.monotonic() - started))
        garbage = int(len(objects) * args.garbage)
        live, loose_garbage, layered_garbage = objects[garbage:], objects[:garbage // 2], objects[garbage // 2:garbage]
        layer_count = args.images * args.layers
        per_layer = max(1, len(live) // layer_count)
        layers = []
        for number in range(layer_count):
            members = live[number * per_layer:(number + 1) * per_layer if number < layer_count - 1 else len(live)]
            diff_id = _fake_digest("layer-%d" % number)
            layers.append((diff_id, repo.write_stream("oci-layer-" + diff_id, _layer_stream(members)), members))
        for number in range(0, len(layered_garbage), per_layer):
            diff_id = _fake_digest("garbage-layer-%d" % number)
            repo.write_stream("oci-layer-" + diff_id, _layer_stream(layered_garbage[number:number + per_layer]))
        log("  layer streams written (%.0f s)" % (time.monotonic() - started))
        for image in range(args.images):
            own = layers[image * args.layers:(image + 1) * args.layers]
            shared = layers[((image + 1) % args.images) * args.layers:][:args.layers // 4] if args.images > 1 else []
            chosen = own + shared
            named = [(diff_id, object_id) for diff_id, object_id, _members in chosen]
            config_named = list(named)
            if image < args.erofs_roots:
                files = [m for _d, _o, members in chosen for m in members][:args.erofs_files]
                erofs_id = repo.write_image(_erofs_image(files), name="bench/image-%d" % image)
                config_named.append(("composefs.image.v1", erofs_id))
            config_digest = _fake_digest("config-%d" % image)
            manifest_digest = _fake_digest("manifest-%d" % image)
            config_id = repo.write_stream("oci-config-" + config_digest, _json_stream(
                LIB.splitstream.CONTENT_TYPE_OCI_CONFIG, {"rootfs": {"diff_ids": [d for d, _o in named]}}, repo, config_named))
            repo.write_stream("oci-manifest-" + manifest_digest, _json_stream(
                LIB.splitstream.CONTENT_TYPE_OCI_MANIFEST, {"config": config_digest}, repo,
                [("config:" + config_digest, config_id)] + named), ref="oci/bench%%2Fimage:%d" % image)
        repo.sync()
    description = {"objects": args.objects, "garbage_objects": garbage, "loose_garbage": len(loose_garbage),
                   "layers": layer_count, "objects_per_layer": per_layer, "images": args.images,
                   "erofs_roots": args.erofs_roots, "erofs_files": args.erofs_files,
                   "build_seconds": round(time.monotonic() - started, 1)}
    return description


def build_mark_repository(path, count, seed, log):
    """``MARK_STREAMS`` layer streams naming ``count`` distinct (absent) object ids, one tag each."""
    rng = random.Random(seed)
    started = time.monotonic()
    per_stream = count // MARK_STREAMS
    with LIB.Repository.init(path, algorithm=LIB.ALGORITHM, erofs_default=1, insecure=True) as repo:
        for number in range(MARK_STREAMS):
            writer = LIB.splitstream.SplitStreamWriter(LIB.ALGORITHM, LIB.splitstream.CONTENT_TYPE_OCI_LAYER)
            for _ref in range(per_stream if number < MARK_STREAMS - 1 else count - per_stream * (MARK_STREAMS - 1)):
                writer.write_external(rng.randbytes(LIB.ALGORITHM.digest_size), 100)
            repo.write_stream("oci-layer-" + _fake_digest("mark-%d" % number), writer.encode(), ref="mark/%d" % number)
    log("  synthetic mark repository written (%.0f s)" % (time.monotonic() - started))


def cached(name, mode, args):
    """``CACHE/<name>/repo``, built by a ``--child MODE`` process unless a complete copy is there; (path, description)."""
    base = os.path.join(CACHE, name)
    marker = os.path.join(base, "complete.json")
    if os.path.exists(marker):
        with open(marker, encoding="utf-8") as handle:
            return os.path.join(base, "repo"), json.load(handle)
    shutil.rmtree(base, ignore_errors=True)
    os.makedirs(base)
    settings = {k: v for k, v in vars(args).items() if k != "child"}
    description = run_child(mode, os.path.join(base, "repo"), env={"BENCH_GC_ARGS": json.dumps(settings)})[1]
    with open(marker, "w", encoding="utf-8") as handle:
        json.dump(description, handle)
    return os.path.join(base, "repo"), description


# --- the child processes ------------------------------------------------------------------------------


def _vm_hwm_mib():
    """Peak RSS of this process image (``VmHWM`` of /proc/self/status: reset by ``execve``), MiB."""
    with open("/proc/self/status", encoding="ascii") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return None


def child(mode, path):
    """Run one measured operation (or a build) and print JSON (``--child MODE PATH``)."""
    result = {"mode": mode}
    LIB.repo_gc  # pylint: disable=pointless-statement  # imports before the clock starts
    started = time.perf_counter()
    cpu_started = time.process_time()
    if mode in ("build", "build-mark"):
        args = argparse.Namespace(**json.loads(os.environ["BENCH_GC_ARGS"]))

        def log(text):
            print(text, file=sys.stderr, flush=True)

        if mode == "build":
            result.update(build_repository(path, args, log))
        else:
            build_mark_repository(path, args.mark_ids, args.seed, log)
    elif mode == "imports":
        pass
    elif mode == "plan":
        with LIB.Repository.open(path) as repo:
            plan = LIB.repo_gc.plan_repository_gc(repo)
        result.update(live=plan.live_objects, present=plan.present_objects, remove=len(plan.remove_objects),
                      unlink=len(plan.unlink_entries), errors=list(plan.errors))
    elif mode == "apply":
        with LIB.Repository.open(path, writable=True) as repo:
            plan = LIB.repo_gc.plan_repository_gc(repo)
            planned = time.perf_counter()
            plan_cpu = time.process_time() - cpu_started
            done = LIB.repo_gc.apply_repository_gc(repo, plan)
        result.update(live=plan.live_objects, removed=done.objects_removed, pruned=done.images_pruned + done.streams_pruned,
                      validation=done.validation, plan_seconds=planned - started, plan_cpu_seconds=plan_cpu,
                      errors=list(plan.errors))
    elif mode == "idset":
        count = int(os.environ["BENCH_GC_IDS"])
        size = LIB.ALGORITHM.digest_size
        rng = random.Random(1)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        live = {rng.randbytes(size) for _id in range(count)}
        result.update(ids=len(live), rss_growth_kib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)
    else:
        raise SystemExit("unknown child mode %r" % mode)
    result["seconds"] = time.perf_counter() - started
    result["cpu_seconds"] = time.process_time() - cpu_started
    result["vm_hwm_mib"] = _vm_hwm_mib()
    print(json.dumps(result))


def run_child(mode, path, env=None):
    """(wall seconds, result dict, peak RSS in MiB) of ``bench_gc.py --child MODE PATH`` in a fresh interpreter."""
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--child", mode, path],  # pylint: disable=consider-using-with
                            stdout=subprocess.PIPE, env=dict(os.environ, **(env or {})))
    out = proc.stdout.read()
    proc.stdout.close()
    _pid, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = status
    wall = time.perf_counter() - started
    if status != 0:
        raise RuntimeError("child %s failed (status %d)" % (mode, status))
    return wall, json.loads(out), usage.ru_maxrss / 1024.0


def floor(repo_path):
    """(wall seconds, count, CPU seconds of sh, find and wc) of ``find objects -type f | wc -l``."""
    started = time.perf_counter()
    proc = subprocess.Popen(["sh", "-c", "find objects -type f | wc -l"], cwd=repo_path,  # pylint: disable=consider-using-with
                            stdout=subprocess.PIPE)
    out = proc.stdout.read()
    proc.stdout.close()
    _pid, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = status
    wall = time.perf_counter() - started
    if status != 0:
        raise RuntimeError("the floor command failed (status %d)" % status)
    return wall, int(out), usage.ru_utime + usage.ru_stime


def profile(repo_path, top=30):
    """cProfile of one ``plan_repository_gc`` (after an untimed one), sorted by internal time."""
    import cProfile  # pylint: disable=import-outside-toplevel
    import pstats  # pylint: disable=import-outside-toplevel

    with LIB.Repository.open(repo_path) as repo:
        LIB.repo_gc.plan_repository_gc(repo)
        profiler = cProfile.Profile()
        profiler.enable()
        LIB.repo_gc.plan_repository_gc(repo)
        profiler.disable()
    pstats.Stats(profiler, stream=sys.stdout).sort_stats("tottime").print_stats(top)


def hardlink_copy(source, destination):
    """``cp -al`` (the GC only unlinks: the cached repository is never changed)."""
    subprocess.run(["cp", "-al", source, destination], check=True)


def main(argv=None):
    """Run the benchmark; print the figures."""
    args = _parser().parse_args(argv)
    if args.child:
        child(*args.child)
        return 0

    def log(text):
        print(text, flush=True)

    name = "bench-gc-o%d-g%s-i%d-l%d-e%dx%d-s%d" % (
        args.objects, args.garbage, args.images, args.layers, args.erofs_roots, args.erofs_files, args.seed)
    if args.rebuild:
        shutil.rmtree(os.path.join(CACHE, name), ignore_errors=True)
    log("repository %s (cached in %s)" % (name, CACHE))
    repo_path, description = cached(name, "build", args)
    log("  %s" % json.dumps(description, sort_keys=True))
    if args.profile:
        profile(repo_path)
        return 0
    work = args.work or os.path.join(CACHE, name, "work")
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)

    log("warm-up (page, dentry and inode caches are warm for every timing; dropping them is not possible here)")
    floor(repo_path)
    run_child("plan", repo_path)
    _wall, _baseline, baseline_rss = run_child("imports", repo_path)
    log("  parent RSS %.1f MiB (a child's ru_maxrss cannot be lower)" % (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0))

    floors, plans, applies = [], [], []
    for run in range(args.runs):
        floors.append(floor(repo_path))
        plans.append(run_child("plan", repo_path))
        copy = os.path.join(work, "copy-%d" % run)
        hardlink_copy(repo_path, copy)
        floor(copy)
        applies.append(run_child("apply", copy))
        shutil.rmtree(copy)
    floor_seconds, count, _cpu = min(floors)
    floor_cpu = min(item[2] for item in floors)
    plan_cpu = min(item[1]["cpu_seconds"] for item in plans)
    apply_cpu = min(item[1]["cpu_seconds"] for item in applies)
    plan_best = min(plans, key=lambda item: item[1]["seconds"])
    apply_best = min(applies, key=lambda item: item[1]["seconds"])
    plan_rss = max(item[2] for item in plans)
    apply_rss = max(item[2] for item in applies)
    plan_hwm = max(item[1]["vm_hwm_mib"] for item in plans)
    apply_hwm = max(item[1]["vm_hwm_mib"] for item in applies)

    log("")
    log("objects: %d files (find), live %d, removed by the real run %d, entries unlinked %d"
        % (count, plan_best[1]["live"], apply_best[1]["removed"], apply_best[1]["pruned"]))
    log("floor    find objects -type f | wc -l : %8.3f s                 cpu %.3f s" % (floor_seconds, floor_cpu))
    log("dry run  plan_repository_gc            : %8.3f s  (%.2fx floor; cpu %.3f s, %.2fx floor cpu; child wall %.3f s incl. start-up)"
        % (plan_best[1]["seconds"], plan_best[1]["seconds"] / floor_seconds, plan_cpu, plan_cpu / floor_cpu, plan_best[0]))
    log("real run plan + apply_repository_gc    : %8.3f s  (%.2fx floor; cpu %.3f s, %.2fx floor cpu; plan %.3f s; child wall %.3f s)"
        % (apply_best[1]["seconds"], apply_best[1]["seconds"] / floor_seconds, apply_cpu, apply_cpu / floor_cpu,
           apply_best[1]["plan_seconds"], apply_best[0]))
    log("peak RSS (ru_maxrss)  dry run %.1f MiB, real run %.1f MiB, import-only child %.1f MiB (target <= %.0f MB); "
        "VmHWM of the GC process image: dry %.1f MiB, real %.1f MiB"
        % (plan_rss, apply_rss, baseline_rss, TARGET_RSS_MB, plan_hwm, apply_hwm))
    met = {"dry": plan_best[1]["seconds"] <= TARGET_RATIO * floor_seconds,
           "real": apply_best[1]["seconds"] <= TARGET_RATIO * floor_seconds,
           "memory": max(plan_rss, apply_rss) <= TARGET_RSS_MB}
    log("best of %d runs each; targets: ratio <= %.0fx: dry %s, real %s; memory: %s; load average %.1f on %d CPUs"
        % (args.runs, TARGET_RATIO, *("met" if met[k] else "MISSED" for k in ("dry", "real", "memory")),
           os.getloadavg()[0], os.cpu_count()))

    mark_name = "bench-gc-mark-%d-s%d" % (args.mark_ids, args.seed)
    if args.rebuild:
        shutil.rmtree(os.path.join(CACHE, mark_name), ignore_errors=True)
    mark_path, _desc = cached(mark_name, "build-mark", args)
    run_child("plan", mark_path)
    _wall, mark_result, mark_rss = run_child("plan", mark_path)
    _wall, idset, idset_rss = run_child("idset", mark_path, env={"BENCH_GC_IDS": str(args.mark_ids)})
    log("mark of %d objects (a) plan_repository_gc of %d streams naming them: peak RSS %.1f MiB, %.1f MiB above the "
        "import-only child, %.2f s; (b) a set of %d 64-byte ids alone: +%.1f MiB (child peak %.1f MiB)"
        % (mark_result["live"], MARK_STREAMS, mark_rss, mark_rss - baseline_rss, mark_result["seconds"], idset["ids"],
           idset["rss_growth_kib"] / 1024.0, idset_rss))
    log("  (ru_maxrss and VmHWM agree when the parent is small: mark child VmHWM %.1f MiB)" % mark_result["vm_hwm_mib"])
    shutil.rmtree(work, ignore_errors=True)
    return 0 if all(met.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
