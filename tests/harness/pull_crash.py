# -*- coding: utf-8 -*-
"""Crash harness of composefs_pull: SIGKILL a pull at random points, check the repository, collect, rerun.

Run (from the repository root; ``make env`` once, for .venv and the oracles)::

    .venv/bin/python tests/harness/pull_crash.py                 # CI size: 16 kills, ~40 s
    .venv/bin/python tests/harness/pull_crash.py --full          # 100 kills, a bigger image
    .venv/bin/python tests/harness/pull_crash.py --kills 300 --seed 7 --json

What it does:

1. builds two bootc-like images with ocigen (v1, v2: the same base layers, a payload layer of
   ``--files`` files, most above the 64-byte inline limit, plus one big file, different in each)
   into an OCI image layout, and a bare host whose repository (meta.json written by hand: sha512, as
   bootc creates them)
   already holds v1, pulled and tagged: the *pristine* host;
2. pulls v2 uninterrupted, in a child process, on a copy: the *reference*; checks it with the
   oracles (tag link text of the spec, the tag's closure read by ``oracle.py``'s splitstream
   reader and ``composefs-info objects``, every object's name against ``fsverity digest``, each
   layer reassembled from its splitstream hashing to its diff_id) and records the child's
   timeline: every mutation of the repository (object stores, stream entries, images, the tag,
   the ``syncfs`` barriers) with its time;
3. per kill, on a fresh hard-link copy of the pristine host, runs the same pull in a child and
   kills it with SIGKILL, alternately
   * ``step`` kills: the child kills itself just before mutation N, N uniform over the
     reference's mutations (so every kind is hit: objects, entries, images, tag);
   * ``timed`` kills: the parent kills it after a delay uniform over the reference's window from
     first to last mutation (inside a write, a decompression, a skopeo read);
   then checks (a) no tag names v2 unless v2 is complete, v1's tag and closure are untouched;
   (b) every first-level ``streams/`` entry's object, its object refs and named-ref targets exist,
   every ``images/`` entry's object and the objects it names exist (composefs-repo.md section 9:
   nothing visible names missing data); then, alternately, (c1) reruns the pull uninterrupted and
   requires exactly the reference's repository (names, link texts) and nothing left beside it
   (a pull stages nothing outside the object store: no ``.pull-*`` entry may ever appear), or
   (c2) runs the repository garbage collection (``repository/gc.py``) and requires exactly what
   the same collection leaves of the pristine host (whose superseded config and manifest stream
   objects, written before its boot image, are garbage too), or of the reference host when the
   kill came after the tag: the killed pull's debris is collectable.

Exit status 0 when there is no failure. ``--json`` prints the report as JSON (the pytest wrapper
reads it).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HARNESS_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(os.path.dirname(HARNESS_DIR))
COLLECTIONS = os.path.join(REPO_ROOT, ".ci", "tmp", "collections")
sys.path.insert(0, os.path.join(REPO_ROOT, "tests", "tools"))
sys.path.insert(0, COLLECTIONS)
import ocigen  # noqa: E402  pylint: disable=wrong-import-position,import-error
import oracle  # noqa: E402  pylint: disable=wrong-import-position
import treesnap  # noqa: E402  pylint: disable=wrong-import-position

CI = {"kills": 16, "files": 300, "big_kib": 2048}
FULL = {"kills": 100, "files": 3000, "big_kib": 24 * 1024}
TAG = "harness/os:2"
MUTATIONS = ("ensure_object", "ensure_object_from_fileobj", "write_stream", "register_stream", "write_image",
             "name_stream", "sync")
META = (b'{\n  "version": 1,\n  "algorithm": "fsverity-sha512-12",\n  "features": {\n    "compatible": [],\n'
        b'    "read-only-compatible": [\n      "v1_erofs"\n    ],\n    "incompatible": []\n  },\n'
        b'  "erofs_formats": {\n    "default": 1\n  }\n}\n')


# --- the child: one pull, optionally killing itself before mutation N ---------------------------------


def child_main(root: str, image: str, tag: str, die_at: int, events_path: str | None) -> int:
    from ansible_collections.bootc.composefs.plugins.module_utils.operations import pull  # pylint: disable=import-outside-toplevel
    from ansible_collections.bootc.composefs.plugins.module_utils.repository.repo import Repository  # pylint: disable=import-outside-toplevel

    start = time.monotonic()
    events = open(events_path, "a", encoding="utf-8") if events_path else None  # pylint: disable=consider-using-with
    counter = [0]

    def wrap(name):
        original = getattr(Repository, name)

        def counted(self, *args, **kwargs):
            counter[0] += 1
            if counter[0] == die_at:
                os.kill(os.getpid(), signal.SIGKILL)
            if events is not None:
                events.write(json.dumps({"n": counter[0], "kind": name, "t": time.monotonic() - start}) + "\n")
            return original(self, *args, **kwargs)

        setattr(Repository, name, counted)

    for name in MUTATIONS:
        wrap(name)
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    result = pull.pull_image(pull.PullRequest(image=image, root=root, tag=tag))
    if events is not None:
        events.write(json.dumps({"n": counter[0], "kind": "done", "t": time.monotonic() - start}) + "\n")
        events.close()
    sys.stdout.write(json.dumps({"manifest_digest": result.manifest_digest, "changed": result.changed}) + "\n")
    return 0


def run_child(root: str, image: str, tag: str, die_at: int = 0, events: str | None = None, kill_after: float | None = None):
    """Run one pull in a child; return ``(exit code or -signal, stdout lines, seconds)``."""
    argv = [sys.executable, os.path.abspath(__file__), "--child", root, image, tag, str(die_at), events or ""]
    started = time.monotonic()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # pylint: disable=consider-using-with
    ready = proc.stdout.readline()
    if ready != b"ready\n":
        proc.wait()
        raise RuntimeError("child did not start: %s %s" % (ready, proc.stderr.read()[-2000:]))
    if kill_after is not None:
        time.sleep(kill_after)
        proc.kill()
    out, err = proc.communicate()
    if proc.returncode not in (0, -signal.SIGKILL):
        raise RuntimeError("child failed (rc %d): %s" % (proc.returncode, err.decode("utf-8", "replace")[-3000:]))
    return proc.returncode, out.decode().splitlines(), time.monotonic() - started


# --- images and hosts --------------------------------------------------------------------------------


def build_images(layout: str, sizes: dict, seed: int) -> dict:
    rng = random.Random(seed)
    images = {}
    for version in ("1", "2"):
        layers = ocigen.bootc_rootfs_layers(version=version)
        payload = [("dir", "usr/share"), ("dir", "usr/share/harness")]
        payload += [("file", "usr/share/harness/f%05d" % i, rng.randbytes(rng.choice([40, 200, 1500, 9000])))
                    for i in range(sizes["files"])]
        payload.append(("file", "usr/share/harness/big", rng.randbytes(sizes["big_kib"] * 1024)))
        images[version] = ocigen.write_image(layout, layers + [payload], tag=version,
                                             labels={"containers.bootc": "1"})
        images[version]["tars"] = [ocigen.build_layer_tar(entries) for entries in layers + [payload]]
    return images


def new_host(path: str) -> str:
    repo = os.path.join(path, "sysroot", "composefs")
    os.makedirs(repo, mode=0o700)
    os.makedirs(os.path.join(path, "run"))
    with open(os.path.join(repo, "meta.json"), "wb") as handle:
        handle.write(META)
    return repo


def repo_state(repo: str) -> dict:
    """``{path below objects/, images/, streams/: link text or None}``: what a repository holds, by name."""
    found = {}
    for top in ("objects", "images", "streams"):
        for dirpath, dirnames, filenames in os.walk(os.path.join(repo, top)):
            for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
                path = os.path.join(dirpath, name)
                found[os.path.relpath(path, repo)] = os.readlink(path) if os.path.islink(path) else None
    return found


def tag_link(repo: str, tag: str):
    path = os.path.join(repo, "streams", "refs", "oci", tag.replace("%", "%25").replace("/", "%2F"))
    return os.readlink(path) if os.path.islink(path) else None


def visible_problems(repo: str) -> list:
    """Entries that name missing data (composefs-repo.md section 9 says there must be none)."""
    problems = []
    view = oracle.RepoOracle(repo)
    objects = oracle.list_objects(repo)
    for name, object_id in sorted(view.entries("streams").items()):
        if object_id not in objects:
            problems.append("streams/%s names missing object %s" % (name, object_id))
            continue
        stream = view.splitstream(object_id)
        for ref in stream["object_refs"] + list(stream["named_refs"].values()):
            if ref not in objects:
                problems.append("streams/%s references missing object %s" % (name, ref))
    for name, object_id in sorted(view.entries("images").items()):
        if object_id not in objects:
            problems.append("images/%s names missing object %s" % (name, object_id))
            continue
        for ref in sorted(view.image_objects(object_id) - objects):
            problems.append("images/%s references missing object %s" % (name, ref))
    return problems


def run_gc(repo: str) -> None:
    from ansible_collections.bootc.composefs.plugins.module_utils.repository import gc  # pylint: disable=import-outside-toplevel
    from ansible_collections.bootc.composefs.plugins.module_utils.repository.repo import Repository  # pylint: disable=import-outside-toplevel

    with Repository.open(repo, writable=True) as handle:
        gc.apply_repository_gc(handle, gc.plan_repository_gc(handle))


# --- the harness ---------------------------------------------------------------------------------------


class CrashRun:
    """State of one harness run."""

    def __init__(self, workdir: str, sizes: dict, seed: int) -> None:
        self.workdir = workdir
        self.sizes = sizes
        self.rng = random.Random(seed)
        self.failures = []
        self.report = {"seed": seed, "sizes": dict(sizes), "kills": {"step": 0, "timed": 0, "after_end": 0},
                       "checks": {"rerun": 0, "gc": 0}, "missed_timed_kills": 0}
        self.counter = 0

    def fail(self, kill, message: str) -> None:
        self.failures.append({"kill": kill, "problem": message})

    def copy_pristine(self) -> str:
        self.counter += 1
        path = os.path.join(self.workdir, "run-%05d" % self.counter)
        treesnap.hardlink_copy(self.pristine, path)
        return path

    def setup(self) -> None:
        started = time.monotonic()
        layout = os.path.join(self.workdir, "layout")
        self.images = build_images(layout, self.sizes, self.report["seed"])
        self.image = "oci:%s:2" % layout
        self.pristine = os.path.join(self.workdir, "pristine")
        repo = new_host(self.pristine)
        code, _out, _seconds = run_child(self.pristine, "oci:%s:1" % layout, "harness/os:1")
        if code != 0:
            raise RuntimeError("pulling v1 into the pristine host failed")
        self.pristine_state = repo_state(repo)
        collected = self.copy_pristine()
        run_gc(os.path.join(collected, "sysroot", "composefs"))
        self.collected_state = repo_state(os.path.join(collected, "sysroot", "composefs"))
        treesnap.remove_tree(collected)
        self.report["pristine_garbage_objects"] = len(set(self.pristine_state) - set(self.collected_state))
        self.v1_closure = oracle.RepoOracle(repo).tag_closure(self.images["1"]["manifest_digest"])
        self.report["build_seconds"] = round(time.monotonic() - started, 2)
        self.reference()

    def reference(self) -> None:
        windows = []
        for number in range(2):
            path = self.copy_pristine()
            events = os.path.join(self.workdir, "events-%d.jsonl" % number)
            code, out, seconds = run_child(path, self.image, TAG, events=events)
            if code != 0:
                raise RuntimeError("the uninterrupted pull failed")
            with open(events, encoding="utf-8") as handle:
                timeline = [json.loads(line) for line in handle]
            mutations = [e for e in timeline if e["kind"] != "done"]
            windows.append((mutations[0]["t"], mutations[-1]["t"], len(mutations), seconds))
            if number == 0:
                self.mutations = mutations
                self.reference_state = repo_state(os.path.join(path, "sysroot", "composefs"))
                self.check_reference(os.path.join(path, "sysroot", "composefs"), json.loads(out[-1]))
                run_gc(os.path.join(path, "sysroot", "composefs"))
                self.collected_reference_state = repo_state(os.path.join(path, "sysroot", "composefs"))
        windows.sort(key=lambda w: w[1] - w[0])
        self.window = windows[0][:2]
        kinds = {}
        for event in self.mutations:
            kinds[event["kind"]] = kinds.get(event["kind"], 0) + 1
        self.report["uninterrupted"] = {"seconds": round(windows[0][3], 3), "mutations": len(self.mutations),
                                        "mutations_per_kind": kinds, "window": [round(t, 4) for t in self.window]}

    def check_reference(self, repo: str, summary: dict) -> None:
        digest = self.images["2"]["manifest_digest"]
        if summary["manifest_digest"] != digest:
            self.fail(None, "reference pull stored %s, ocigen wrote %s" % (summary["manifest_digest"], digest))
        if tag_link(repo, TAG) != "../../oci-manifest-" + digest:
            self.fail(None, "reference tag link is %r" % tag_link(repo, TAG))
        closure = oracle.RepoOracle(repo).tag_closure(digest)
        for problem in oracle.missing_from(repo, closure):
            self.fail(None, "reference: %s" % problem)
        for problem in visible_problems(repo):
            self.fail(None, "reference: %s" % problem)
        for problem in oracle.FsverityOracle().check_objects(repo, oracle.list_objects(repo)):
            self.fail(None, "reference: %s" % problem)
        streams = oracle.RepoOracle(repo).entries("streams")
        for diff_id, tar_bytes in zip(self.images["2"]["diff_ids"], self.images["2"]["tars"]):
            data = oracle.reassemble(repo, streams["oci-layer-" + diff_id])
            if "sha256:" + hashlib.sha256(data).hexdigest() != diff_id or data != tar_bytes:
                self.fail(None, "reference: layer %s does not reassemble to its tar" % diff_id)

    def one_kill(self, number: int) -> None:
        path = self.copy_pristine()
        repo = os.path.join(path, "sysroot", "composefs")
        landed = self.report["kills"]["step"] + self.report["kills"]["timed"]
        if self.report["kills"]["step"] <= self.report["kills"]["timed"]:
            die_at = self.rng.randint(1, len(self.mutations))
            kill = {"number": number, "kind": "step", "before": self.mutations[die_at - 1]["kind"], "n": die_at}
            code, _out, _seconds = run_child(path, self.image, TAG, die_at=die_at)
        else:
            delay = self.rng.uniform(*self.window)
            kill = {"number": number, "kind": "timed", "after_seconds": round(delay, 4)}
            code, _out, _seconds = run_child(path, self.image, TAG, kill_after=delay)
            if code == 0:
                self.report["missed_timed_kills"] += 1
                self.window = (self.window[0], max(self.window[0], delay * 0.9))
                treesnap.remove_tree(path)
                return
        self.report["kills"][kill["kind"]] += 1
        tagged = self.check_after_kill(kill, repo, path)
        if landed % 2 == 0:
            self.report["checks"]["rerun"] += 1
            code, _out, _seconds = run_child(path, self.image, TAG)
            if code != 0:
                self.fail(kill, "the rerun failed")
            if repo_state(repo) != self.reference_state:
                self.fail(kill, "after the rerun the repository differs from the reference: %s"
                          % _delta(self.reference_state, repo_state(repo)))
            if [n for n in os.listdir(repo) if n.startswith(".pull")]:
                self.fail(kill, "the rerun left something beside the repository: %s" % os.listdir(repo))
        else:
            self.report["checks"]["gc"] += 1
            run_gc(repo)
            expected = self.collected_reference_state if tagged else self.collected_state
            if repo_state(repo) != expected:
                self.fail(kill, "after a GC the repository is not what a GC leaves of the %s host: %s"
                          % ("reference" if tagged else "pristine", _delta(expected, repo_state(repo))))
        treesnap.remove_tree(path)

    def check_after_kill(self, kill: dict, repo: str, path: str) -> bool:
        link = tag_link(repo, TAG)
        if link is not None:
            self.report["kills"]["after_end"] += 1
            closure = oracle.RepoOracle(repo).tag_closure(self.images["2"]["manifest_digest"])
            for problem in oracle.missing_from(repo, closure):
                self.fail(kill, "v2 is tagged but incomplete: %s" % problem)
        if tag_link(repo, "harness/os:1") != "../../oci-manifest-" + self.images["1"]["manifest_digest"]:
            self.fail(kill, "v1's tag changed")
        for problem in oracle.missing_from(repo, self.v1_closure):
            self.fail(kill, "v1: %s" % problem)
        for problem in visible_problems(repo):
            self.fail(kill, problem)
        staged = [n for n in os.listdir(repo) if n.startswith(".pull")]
        if staged or not os.path.isdir(path):
            self.fail(kill, "the killed pull left something beside the repository: %s" % staged)
        return link is not None


def _delta(before: dict, after: dict) -> dict:
    return {"missing": sorted(set(before) - set(after))[:5], "extra": sorted(set(after) - set(before))[:5],
            "changed": sorted(k for k in set(before) & set(after) if before[k] != after[k])[:5]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--full", action="store_true", help="full size (%d kills)" % FULL["kills"])
    parser.add_argument("--kills", type=int, help="number of kills that must land")
    parser.add_argument("--files", type=int, help="files in the payload layer")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workdir", help="directory for the trees (default: a temporary directory, removed)")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        root, image, tag, die_at, events = args.child
        return child_main(root, image, tag, int(die_at), events or None)
    sizes = dict(FULL if args.full else CI)
    if args.kills is not None:
        sizes["kills"] = args.kills
    if args.files is not None:
        sizes["files"] = args.files
    workdir = args.workdir or tempfile.mkdtemp(prefix="pull-crash-", dir=treesnap.scratch_parent())
    started = time.monotonic()
    run = CrashRun(workdir, sizes, args.seed)
    try:
        run.setup()
        number = 0
        while sum(run.report["kills"][k] for k in ("step", "timed")) < sizes["kills"] and number < sizes["kills"] * 4:
            run.one_kill(number)
            number += 1
    finally:
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    run.report["seconds"] = round(time.monotonic() - started, 1)
    run.report["failures"] = run.failures
    if args.json:
        sys.stdout.write(json.dumps(run.report, indent=2) + "\n")
    else:
        report = run.report
        sys.stdout.write("pull crash harness: %d step + %d timed kills (%d after the tag), %d reruns, %d GCs, %d failure(s), "
                         "%.1f s\n" % (report["kills"]["step"], report["kills"]["timed"], report["kills"]["after_end"],
                                       report["checks"]["rerun"], report["checks"]["gc"], len(run.failures),
                                       report["seconds"]))
        for failure in run.failures[:20]:
            sys.stdout.write("  %s\n" % json.dumps(failure))
    return 1 if run.failures else 0


if __name__ == "__main__":
    sys.exit(main())
