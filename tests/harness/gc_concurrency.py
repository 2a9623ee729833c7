# -*- coding: utf-8 -*-
"""Concurrency harness of the GC: a GC and an image import race on the same repository, round after round.

Run (from the repository root; ``make env`` once)::

    .venv/bin/python tests/harness/gc_concurrency.py             # CI size: 12 rounds, ~5 s
    .venv/bin/python tests/harness/gc_concurrency.py --full      # 60 rounds, bigger images
    .venv/bin/python tests/harness/gc_concurrency.py --rounds 200 --seed 3 --json

The host is the GC host of ``gchost.py`` (small). Setup imports image 0 (layer ``base``) under the
tag ``quay.io/example/conc-base:1`` (kept). Round ``r`` (1, 2, ...):

1. writes a fresh OCI image ``r`` with three layers: ``base`` (shared with the live image 0),
   ``U(r-1)`` (the unique layer of image ``r-1``) and a new ``U(r)`` (``--files`` new files, plus a
   few whose bytes equal files of ``U(r-2)``: objects shared with garbage);
2. untags image ``r-1`` (``quay.io/example/conc:<r-1>``), so ``U(r-1)`` and ``U(r-2)`` become
   garbage unless image ``r`` keeps them;
3. forks two processes with a random order and offset (``schedule``: the import starts during
   a GC, or around the moment the GC takes its exclusive lock, or the GC starts during an
   import; offsets drawn from recent timings): a full GC (``operations.gc.plan_gc`` + ``apply_gc``) and an import
   (``Repository.open`` - shared lock, as every composefs-rs opener - ``import_oci_layout`` with
   ``tag=quay.io/example/conc:<r>``, close);
4. requires both to succeed, then image ``r`` complete: its tag, and every entry and object of its
   closure (``oci.closure.image_object_closure`` and the independent ``oracle.py`` walk) present
   with the right ``fsverity digest``; image 0 and the host's live deployments complete too.

The report counts how the two overlapped (GC planned while the import held the lock, import
waited for the GC's exclusive lock, GC waited for the import), how often the GC recomputed its
plan under the lock and kept objects its first plan would have deleted, and objects lost (must
be 0). Exit status 0 when there is no failure.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time

HARNESS_DIR = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(HARNESS_DIR)), "tests", "tools"))
import simhost  # noqa: E402,F401  pylint: disable=wrong-import-position,unused-import
import ocigen  # noqa: E402  pylint: disable=wrong-import-position
import gcchild  # noqa: E402  pylint: disable=wrong-import-position
import gchost  # noqa: E402  pylint: disable=wrong-import-position
import oracle  # noqa: E402  pylint: disable=wrong-import-position
import treesnap  # noqa: E402  pylint: disable=wrong-import-position
from ansible_collections.bootc.composefs.plugins.module_utils.oci import closure as oci_closure  # noqa: E402  pylint: disable=wrong-import-position
from ansible_collections.bootc.composefs.plugins.module_utils.oci import importer, tags  # noqa: E402  pylint: disable=wrong-import-position
from ansible_collections.bootc.composefs.plugins.module_utils.repository.repo import Repository  # noqa: E402  pylint: disable=wrong-import-position

CI = {"rounds": 12, "files": 40, "shared_with_garbage": 4}
FULL = {"rounds": 60, "files": 150, "shared_with_garbage": 8}
BASE_TAG = "quay.io/example/conc-base:1"
ROUND_TAG = "quay.io/example/conc:%d"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--full", action="store_true", help="full size (%d rounds)" % FULL["rounds"])
    parser.add_argument("--rounds", type=int)
    parser.add_argument("--files", type=int, help="new files per round")
    parser.add_argument("--seed", type=int, default=1, help="random seed (default %(default)s)")
    parser.add_argument("--workdir", help="directory for the trees (default: a new temporary directory in /dev/shm if possible, removed)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    return parser


def _file_bytes(seed: int, layer: str, number: int) -> bytes:
    rng = random.Random("%d:%s:%d" % (seed, layer, number))
    return rng.randbytes(rng.randint(100, 6000))


def base_layer(seed: int) -> list:
    """The layer every round image shares with the kept image 0."""
    entries = [("dir", "usr"), ("dir", "usr/share"), ("dir", "usr/share/base")]
    entries += [("file", "usr/share/base/b%02d" % n, _file_bytes(seed, "base", n)) for n in range(10)]
    return entries


def unique_layer(seed: int, round_number: int, sizes: dict) -> list:
    """``U(round)``: new files, plus files whose bytes are those of ``U(round - 2)`` under other names."""
    top = "usr/share/r%04d" % round_number
    entries = [("dir", "usr"), ("dir", "usr/share"), ("dir", top)]
    entries += [("file", "%s/f%03d" % (top, n), _file_bytes(seed, "u%d" % round_number, n)) for n in range(sizes["files"])]
    if round_number >= 2:
        entries += [("file", "%s/same-as-r%d-%02d" % (top, round_number - 2, n), _file_bytes(seed, "u%d" % (round_number - 2), n))
                    for n in range(sizes["shared_with_garbage"])]
    return entries


def import_image(repo_path: str, layout_dir: str, ref: str, tag: str):
    """A ``fork_call``/``spawn`` function: open the repository (shared lock), import ``ref`` with ``tag``, close."""
    def run(emit):
        emit("start")
        with Repository.open(repo_path, writable=True) as repo:
            emit("opened")
            result = importer.import_oci_layout(repo, layout_dir, ref=ref, tag=tag)
        emit("closed")
        return {"manifest_digest": result.manifest_digest, "layers_reused": list(result.layers_reused),
                "layers_fetched": list(result.layers_fetched)}

    return run


def _event(outcome, kind: str):
    for event in outcome.events:
        if event.get("k") == kind or (event.get("k") == "step" and event.get("kind") == kind):
            return event
    return None


class ConcurrencyRun:
    """State of one harness run."""

    def __init__(self, workdir: str, sizes: dict, seed: int) -> None:
        self.workdir = workdir
        self.sizes = sizes
        self.seed = seed
        self.rng = random.Random(seed)
        self.root = os.path.join(workdir, "host")
        self.repo_path = os.path.join(self.root, gchost.REPO_REL)
        self.failures = []
        self.rounds = []
        self.fsverity = oracle.FsverityOracle()
        self.timings = {"gc_end": [], "gc_locked": [], "import": []}
        self.layers = {}

    def fail(self, round_number, message: str) -> None:
        """Record a failure."""
        self.failures.append({"round": round_number, "problem": message})

    def events_path(self, name: str) -> str:
        """Events file of a child."""
        return os.path.join(self.workdir, "%s.jsonl" % name)

    def layer(self, round_number: int) -> list:
        """``U(round)``, cached."""
        if round_number not in self.layers:
            self.layers[round_number] = unique_layer(self.seed, round_number, self.sizes)
            self.layers.pop(round_number - 3, None)
        return self.layers[round_number]

    def setup(self) -> None:
        """Build the host, import image 0, run a first GC alone (it also gives the first timings)."""
        with tempfile.TemporaryDirectory(dir=self.workdir) as scratch:
            build = gchost.build_gc_host(self.root, gchost.HostParams(garbage_images=1, garbage_files=20, seed=self.seed), scratch)
        self.host_oracle = gchost.GcOracle(self.root, build)
        layout = os.path.join(self.workdir, "oci-0")
        written = ocigen.write_image(layout, [base_layer(self.seed)], tag="r0")
        outcome = gcchild.fork_call(import_image(self.repo_path, layout, "r0", BASE_TAG), self.events_path("import-0"))
        self._require(0, "import of image 0", outcome)
        self.base_manifest = written["manifest_digest"]
        self.timings["import"].append(outcome.seconds)
        outcome = gcchild.fork_call(gcchild.gc_steps(self.root), self.events_path("gc-0"))
        if self._require(0, "first GC", outcome):
            self._time_gc(outcome)
        problems = gchost.live_problems(self.root, self.host_oracle)
        for problem in problems:
            self.fail(0, problem)

    def _time_gc(self, outcome) -> None:
        locked = _event(outcome, "locked")
        if locked is not None:
            self.timings["gc_locked"].append(locked["t"])
        self.timings["gc_end"].append(outcome.seconds)

    def estimate(self, name: str) -> float:
        """The shortest of the last five timings ``name`` (a child that waited for the other is slower)."""
        return min(self.timings[name][-5:])

    def schedule(self) -> tuple:
        """``(first, offset, mode)``: who starts first and how much later the other starts.

        Three modes, equally likely: the import starts at any time during a GC, or around the GC
        taking its exclusive lock, or the GC starts at any time during an import.
        """
        mode = self.rng.choice(("import-during-gc", "import-at-gc-lock", "gc-during-import"))
        if mode == "gc-during-import":
            return "import", self.rng.uniform(0, self.estimate("import")), mode
        if mode == "import-at-gc-lock" and self.timings["gc_locked"]:
            locked = self.estimate("gc_locked")
            return "gc", self.rng.uniform(max(0.0, locked - 0.003), max(locked, self.estimate("gc_end"))), mode
        return "gc", self.rng.uniform(0, self.estimate("gc_end")), mode

    def _require(self, round_number, what: str, outcome) -> bool:
        if outcome.raised or outcome.killed or outcome.exit_code:
            detail = outcome.raised["message"] if outcome.raised else outcome.events[-2:]
            self.fail(round_number, "%s failed: %s" % (what, detail))
            return False
        return True

    def one_round(self, number: int) -> None:
        """Steps 1-4 of the module docstring."""
        layout = os.path.join(self.workdir, "oci-%d" % number)
        layers = [base_layer(self.seed), self.layer(number - 1), self.layer(number)]
        written = ocigen.write_image(layout, layers, tag="r%d" % number)
        manifest = written["manifest_digest"]
        if number >= 2:
            with Repository.open(self.repo_path, writable=True) as repo:
                if tags.resolve_tag(repo, ROUND_TAG % (number - 1)) is not None:
                    tags.untag_image(repo, ROUND_TAG % (number - 1))
        first, offset, mode = self.schedule()
        second = "import" if first == "gc" else "gc"
        funcs = {"gc": gcchild.gc_steps(self.root),
                 "import": import_image(self.repo_path, layout, "r%d" % number, ROUND_TAG % number)}
        children = {}
        children[first] = gcchild.spawn(funcs[first], self.events_path(first))
        time.sleep(offset)
        children[second] = gcchild.spawn(funcs[second], self.events_path(second))
        outcomes = {name: gcchild.wait(pid, started, self.events_path(name)) for name, (pid, started) in children.items()}
        record = {"round": number, "mode": mode, "offset": round(offset, 4)}
        ok = self._require(number, "the GC", outcomes["gc"]) & self._require(number, "the import", outcomes["import"])
        if ok:
            record.update(self.classify(outcomes, written["diff_ids"][1]))
            self._time_gc(outcomes["gc"])
            self.timings["import"].append(outcomes["import"].seconds)
        self.check_image(number, manifest, record)
        treesnap.remove_tree(layout)
        self.rounds.append(record)

    @staticmethod
    def classify(outcomes: dict, previous_layer: str) -> dict:
        """How the two children overlapped (see the module docstring)."""
        gc_run, imported = outcomes["gc"], outcomes["import"]
        opened, closed = _event(imported, "opened")["at"], _event(imported, "closed")["at"]
        started = _event(imported, "start")["at"]
        planned = _event(gc_run, "planned")["at"]
        gc_start = planned - _event(gc_run, "planned")["t"]
        locked = _event(gc_run, "locked")
        locked_at = locked["at"] if locked else None
        gc_end = gc_run.events[-1]["at"]
        value = gc_run.returned or {}
        return {
            "gc_planned_while_import_held_lock": gc_start < closed and planned > opened,
            "import_waited_for_gc_lock": locked_at is not None and locked_at < opened and started < gc_end,
            "gc_waited_for_import": locked_at is not None and gc_start < closed < locked_at,
            "gc_validation": value.get("validation"),
            "gc_kept_objects": value.get("kept_objects", 0),
            "gc_objects_removed": value.get("objects_removed", 0),
            "import_reused_previous_layer": previous_layer in (imported.returned or {}).get("layers_reused", []),
        }

    def check_image(self, number: int, manifest: str, record: dict) -> None:
        """Step 4 of the module docstring."""
        link = os.path.join(self.repo_path, gchost.GcOracle.tag_file(ROUND_TAG % number))
        try:
            text = os.readlink(link)
        except OSError:
            text = None
        if text != "../../oci-manifest-" + manifest:
            self.fail(number, "tag %s is %r" % (ROUND_TAG % number, text))
            return
        closure = set()
        repo_oracle = oracle.RepoOracle(self.repo_path)
        try:
            with Repository.open(self.repo_path) as repo:
                closure |= oci_closure.image_object_closure(repo, manifest)
        except Exception as err:  # pylint: disable=broad-except
            self.fail(number, "image_object_closure failed: %s: %s" % (type(err).__name__, err))
        try:
            walked = repo_oracle.tag_closure(manifest)
            closure |= walked["objects"]
            for problem in oracle.missing_from(self.repo_path, {"entries": walked["entries"], "objects": set()}):
                self.fail(number, "image %d: %s" % (number, problem))
        except (oracle.OracleError, OSError) as err:
            self.fail(number, "oracle walk of image %d failed: %s" % (number, err))
        problems = self.fsverity.check_objects(self.repo_path, closure)
        record["closure_objects"] = len(closure)
        record["lost_objects"] = sum(1 for p in problems if p.startswith("missing"))
        for problem in problems:
            self.fail(number, "image %d: %s" % (number, problem))
        for problem in gchost.live_problems(self.root, self.host_oracle):
            self.fail(number, problem)
        try:
            base = repo_oracle.tag_closure(self.base_manifest)
            for problem in oracle.missing_from(self.repo_path, base):
                self.fail(number, "image 0: %s" % problem)
        except (oracle.OracleError, OSError) as err:
            self.fail(number, "image 0 cannot be walked: %s" % err)

    def summary(self) -> dict:
        """The report."""
        keys = ("gc_planned_while_import_held_lock", "import_waited_for_gc_lock", "gc_waited_for_import",
                "import_reused_previous_layer")
        counts = {k: sum(1 for r in self.rounds if r.get(k)) for k in keys}
        counts["gc_recomputed_plan"] = sum(1 for r in self.rounds if r.get("gc_validation") == "recomputed")
        counts["gc_kept_objects_its_plan_listed"] = sum(1 for r in self.rounds if r.get("gc_kept_objects"))
        modes = {}
        for record in self.rounds:
            modes[record["mode"]] = modes.get(record["mode"], 0) + 1
        return {"seed": self.seed, "sizes": dict(self.sizes), "rounds": len(self.rounds), "overlaps": counts, "modes": modes,
                "objects_removed_by_gcs": sum(r.get("gc_objects_removed") or 0 for r in self.rounds),
                "objects_checked": sum(r.get("closure_objects", 0) for r in self.rounds),
                "lost_objects": sum(r.get("lost_objects", 0) for r in self.rounds),
                "fsverity_files_checked": self.fsverity.checked, "failures": len(self.failures),
                "failure_details": self.failures[:50], "round_details": self.rounds}


def main(argv=None) -> int:
    """Run the harness; return the exit status."""
    args = _parser().parse_args(argv)
    sizes = dict(FULL if args.full else CI)
    if args.rounds is not None:
        sizes["rounds"] = args.rounds
    if args.files is not None:
        sizes["files"] = args.files
    oracle.ensure_composefs_oracle()

    def _run(workdir):
        run = ConcurrencyRun(workdir, sizes, args.seed)
        run.setup()
        for number in range(1, sizes["rounds"] + 1):
            run.one_round(number)
        return run.summary()

    report = treesnap.run_harness("gc-concurrency-", args.workdir, _run)
    if not treesnap.print_report(report, args.json):
        print("gc_concurrency: %d rounds, %d closure objects checked, %d lost; GCs removed %d objects; %.1f s"
              % (report["rounds"], report["objects_checked"], report["lost_objects"], report["objects_removed_by_gcs"],
                 report["seconds"]))
        print("  schedules: %s" % ", ".join("%s %d" % kv for kv in sorted(report["modes"].items())))
        print("  overlaps: %s" % ", ".join("%s %d" % kv for kv in sorted(report["overlaps"].items())))
        print("  failures: %d" % report["failures"])
        for failure in report["failure_details"]:
            print("    %s" % json.dumps(failure, sort_keys=True))
    return 1 if report["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
