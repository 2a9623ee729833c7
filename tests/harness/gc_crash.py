# -*- coding: utf-8 -*-
"""Crash harness of the GC: SIGKILL a GC at random points, check every live deployment, rerun, compare.

Run (from the repository root; ``make env`` once, for .venv and the oracles)::

    .venv/bin/python tests/harness/gc_crash.py                 # CI size: 20 kills, ~10 s
    .venv/bin/python tests/harness/gc_crash.py --full          # 120 kills, bigger host
    .venv/bin/python tests/harness/gc_crash.py --kills 500 --seed 7 --json

What it does:

1. builds the GC host of ``gchost.py`` (three live deployments, a dropped one, stale and garbage
   bootc tags, an app image, orphan state dirs, an unreferenced kernel dir, a missing bootc tag:
   work for every GC phase) plus ``--statedir-files`` files in the dropped deployment's state dir
   (so that timed kills can land inside a tree removal); builds it a second time and checks both
   trees are identical (the build, splitstream object ids included, is deterministic);
2. asks the oracles (``oracle.py``: ``fsverity digest``, ``composefs-info objects``, a splitstream
   reader written from the spec) what an uninterrupted GC must leave, runs one on a copy and
   requires exactly that end state (the *reference*), and times it (three runs);
3. per kill, on a fresh hard-link copy of the host: forks a child running ``plan_gc`` +
   ``apply_gc`` and kills it with SIGKILL, alternately
   * ``step`` kills: the child kills itself when ``apply_gc`` announces step N (its ``step``
     callback; N drawn per phase, so every phase is hit), i.e. just before that deletion;
   * ``timed`` kills: the parent waits for the child's first step, then kills it after a delay
     drawn uniformly from the deletion window (first to last step) of the fastest uninterrupted
     run, shrunk to any shorter window seen later (a miss): anywhere inside a deletion, ``rm -rf``
     of a tree included;
   then checks (a) every path the oracle keeps is still there, unchanged (same inode, same symlink
   text), nothing but the expected tags was added; (b) every entry and object of every live
   deployment's closure (boot image + tag chain) and of the app image exists; (c) ``fsverity
   digest`` of a random sample of live objects equals their names; then reruns the GC uninterrupted
   and requires the reference end state (file listing, symlink texts, object names, content of
   non-object files);
4. at the end, ``fsverity digest`` of every object of the reference tree and of the last converged
   tree.

Exit status 0 when there is no failure. ``--json`` prints the report as JSON (the pytest wrapper
reads it).
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
import gcchild  # noqa: E402  pylint: disable=wrong-import-position
import gchost  # noqa: E402  pylint: disable=wrong-import-position
import oracle  # noqa: E402  pylint: disable=wrong-import-position
import treesnap  # noqa: E402  pylint: disable=wrong-import-position

CI = {"kills": 20, "garbage_images": 2, "garbage_files": 120, "statedir_files": 150, "sample": 12}
FULL = {"kills": 120, "garbage_images": 3, "garbage_files": 400, "statedir_files": 400, "sample": 24}
MAX_MISSES = 200


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--full", action="store_true", help="full size (%d kills)" % FULL["kills"])
    parser.add_argument("--kills", type=int, help="number of kills that must land")
    parser.add_argument("--seed", type=int, default=1, help="random seed (default %(default)s)")
    parser.add_argument("--garbage-images", type=int)
    parser.add_argument("--garbage-files", type=int)
    parser.add_argument("--statedir-files", type=int)
    parser.add_argument("--workdir", help="directory for the trees (default: a new temporary directory in /dev/shm if possible, removed)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    return parser


def _sizes(args) -> dict:
    sizes = dict(FULL if args.full else CI)
    for key in ("kills", "garbage_images", "garbage_files", "statedir_files"):
        value = getattr(args, key)
        if value is not None:
            sizes[key] = value
    return sizes


def _fill_state_dir(build: dict, count: int) -> None:
    """``count`` small files below the dropped deployment's state dir (a populated /etc)."""
    base = os.path.join(build["dropped"]["state_dir"], "etc", "harness")
    os.makedirs(base)
    for number in range(count):
        sub = os.path.join(base, "d%02d" % (number % 16))
        os.makedirs(sub, exist_ok=True)
        with open(os.path.join(sub, "f%04d.conf" % number), "w", encoding="utf-8") as handle:
            handle.write("key%d = value\n" % number)


def build_pristine(path: str, scratch: str, sizes: dict, seed: int) -> dict:
    """The GC host below ``path`` (see the module docstring)."""
    params = gchost.HostParams(garbage_images=sizes["garbage_images"], garbage_files=sizes["garbage_files"], seed=seed)
    build = gchost.build_gc_host(path, params, scratch)
    _fill_state_dir(build, sizes["statedir_files"])
    return build


class CrashRun:
    """State of one harness run."""

    def __init__(self, workdir: str, sizes: dict, seed: int) -> None:
        self.workdir = workdir
        self.sizes = sizes
        self.rng = random.Random(seed)
        self.seed = seed
        self.pristine = os.path.join(workdir, "pristine")
        self.failures = []
        self.report = {"seed": seed, "sizes": dict(sizes)}
        self.counter = 0
        self.fsverity = oracle.FsverityOracle()

    def fail(self, kill: dict, message: str) -> None:
        """Record a failure (with the kill it belongs to)."""
        self.failures.append({"kill": kill, "problem": message})

    def new_copy(self) -> str:
        """A fresh hard-link copy of the pristine host."""
        self.counter += 1
        path = os.path.join(self.workdir, "run-%05d" % self.counter)
        gchost.copy_host(self.pristine, path)
        return path

    def events_path(self) -> str:
        """The events file of the next child."""
        return os.path.join(self.workdir, "events-%05d.jsonl" % self.counter)

    def setup(self) -> None:
        """Build, check determinism, compute the oracle's end state, run and time the reference GC."""
        started = time.monotonic()
        with tempfile.TemporaryDirectory(dir=self.workdir) as scratch:
            self.build = build_pristine(self.pristine, scratch, self.sizes, self.seed)
        self.report["build_seconds"] = round(time.monotonic() - started, 2)
        with tempfile.TemporaryDirectory(dir=self.workdir) as scratch:
            twin = os.path.join(scratch, "twin")
            with tempfile.TemporaryDirectory(dir=self.workdir) as scratch2:
                build_pristine(twin, scratch2, self.sizes, self.seed)
            delta = treesnap.diff(treesnap.snapshot(self.pristine, treesnap.CONTENT), treesnap.snapshot(twin, treesnap.CONTENT))
            self.report["deterministic_build"] = treesnap.is_empty_diff(delta)
            if not self.report["deterministic_build"]:
                self.fail(None, "two builds of the host differ: %s" % {k: v[:5] for k, v in delta.items()})
        self.oracle = gchost.GcOracle(self.pristine, self.build)
        self.before = treesnap.snapshot(self.pristine)
        self.removals = self.oracle.removals(self.before)
        self.additions = self.oracle.additions()
        self.expected = self.oracle.expected_after(self.before)
        rels = {"type1": os.path.relpath(self.build["paths"]["type1_dir"], self.pristine) + "/",
                "state": os.path.relpath(self.build["paths"]["state_deploy"], self.pristine) + "/"}
        self.trees = {}
        for rel in self.removals:
            for prefix in rels.values():
                if rel.startswith(prefix):
                    self.trees.setdefault(prefix + rel[len(prefix):].split("/")[0], set()).add(rel)
        self.report["oracle"] = self.oracle.summary()
        self.report["work_per_phase"] = gchost.phase_work(self.before, self.expected, rels)
        for phase, count in self.report["work_per_phase"].items():
            if not count:
                self.fail(None, "the host gives the GC nothing to do in phase %s" % phase)
        all_objects = oracle.list_objects(self.oracle.repo.path)
        for problem in self.fsverity.check_objects(self.oracle.repo.path, all_objects):
            self.fail(None, "pristine host: %s" % problem)
        self.reference_run()

    def reference_run(self) -> None:
        """Three uninterrupted runs: the reference end state (must be the oracle's) and the timeline."""
        timelines = []
        for number in range(3):
            path = self.new_copy()
            outcome = gcchild.fork_call(gcchild.gc_steps(path), self.events_path())
            if outcome.raised or outcome.killed or outcome.exit_code:
                raise RuntimeError("the uninterrupted GC failed: %s" % (outcome.raised or outcome.events[-3:]))
            steps = outcome.steps()
            timelines.append((steps[0]["t"], steps[-1]["t"], outcome.events[-1]["t"], len(steps)))
            if number == 0:
                self.steps = steps
                after = treesnap.snapshot(path)
                delta = treesnap.diff(self.expected, after)
                if not treesnap.is_empty_diff(delta):
                    self.fail(None, "the uninterrupted GC does not leave the oracle's end state: %s"
                              % {k: v[:8] for k, v in delta.items()})
                self.reference = treesnap.snapshot(path, treesnap.CONTENT)
                self.reference_path = path
            else:
                treesnap.remove_tree(path)
        timelines.sort(key=lambda item: item[1] - item[0])
        first, last, total, count = timelines[0]
        self.window = last - first
        self.report["uninterrupted"] = {"seconds": round(total, 4), "first_step": first, "last_step": last, "steps": count,
                                        "steps_per_phase": self._phase_counts(s["kind"] for s in self.steps)}

    @staticmethod
    def _phase_counts(kinds) -> dict:
        counts = {}
        for kind in kinds:
            phase = gcchild.STEP_PHASES.get(kind, kind)
            counts[phase] = counts.get(phase, 0) + 1
        return counts

    def draw_step(self) -> int:
        """A 1-based step number: a phase drawn uniformly, then a step of it."""
        by_phase = {}
        for index, step in enumerate(self.steps, 1):
            by_phase.setdefault(gcchild.STEP_PHASES.get(step["kind"], step["kind"]), []).append(index)
        phase = self.rng.choice(sorted(by_phase))
        return self.rng.choice(by_phase[phase])

    def check_killed(self, path: str, kill: dict) -> None:
        """The checks (a), (b), (c) of the module docstring on a killed tree."""
        after = treesnap.snapshot(path)
        for rel, record in self.before.items():
            if rel in self.removals:
                continue
            if after.get(rel) != record:
                self.fail(kill, "%s: %s" % (rel, "deleted" if rel not in after else "changed %s -> %s" % (record, after[rel])))
        for rel in set(after) - set(self.before):
            if self.additions.get(rel) != after[rel][2]:
                self.fail(kill, "%s: unexpected new path %s" % (rel, after[rel]))
        for problem in gchost.live_problems(path, self.oracle):
            self.fail(kill, problem)
        kill["partial_trees"] = sum(1 for members in self.trees.values() if 0 < len(members & set(after)) < len(members))
        live = sorted(self.oracle.live["objects"])
        sample = self.rng.sample(live, min(self.sizes["sample"], len(live)))
        for problem in self.fsverity.check_objects(os.path.join(path, gchost.REPO_REL), sample):
            self.fail(kill, problem)

    def one_kill(self, mode: str) -> dict | None:
        """One kill; None when the child finished before the kill (a miss)."""
        path = self.new_copy()
        kill = {"number": len(self.report.setdefault("kills", [])) + 1, "mode": mode}
        if mode == "step":
            kill["at_step"] = self.draw_step()
            outcome = gcchild.fork_call(gcchild.gc_steps(path, kill_at_step=kill["at_step"]), self.events_path())
        else:
            kill["after_first_step"] = round(self.rng.uniform(0, self.window), 6)
            outcome = gcchild.fork_call(gcchild.gc_steps(path), self.events_path(), kill_after=kill["after_first_step"],
                                        anchor="step")
        if not outcome.killed:
            treesnap.remove_tree(path)
            steps = outcome.steps()
            if steps:  # the deletions took less time than the window: shrink it (machine load varies)
                self.window = min(self.window, steps[-1]["t"] - steps[0]["t"])
            if outcome.raised:
                kill["phase"] = "completed"
                self.fail(kill, "the GC failed instead of being killed: %s" % outcome.raised["message"])
                return kill
            return None
        kill["phase"] = outcome.phase()
        kill["steps_done"] = len(outcome.steps())
        self.check_killed(path, kill)
        rerun = gcchild.fork_call(gcchild.gc_steps(path), self.events_path())
        if rerun.raised or rerun.killed or rerun.exit_code:
            self.fail(kill, "the rerun failed: %s" % ((rerun.raised or {}).get("message") or rerun.events[-2:]))
        else:
            delta = treesnap.diff(self.reference, treesnap.snapshot(path, treesnap.CONTENT))
            if not treesnap.is_empty_diff(delta):
                self.fail(kill, "the rerun does not converge to the reference end state: %s" % {k: v[:8] for k, v in delta.items()})
        self.last_converged = path
        return kill

    def run_kills(self) -> None:
        """``sizes["kills"]`` kills that land, alternating step and timed kills."""
        kills = self.report.setdefault("kills", [])
        misses = 0
        previous = None
        while len(kills) < self.sizes["kills"]:
            mode = "step" if len(kills) % 2 == 0 else "timed"
            kill = self.one_kill(mode)
            if kill is None:
                misses += 1
                if misses > MAX_MISSES:
                    self.fail(None, "%d timed kills arrived after the GC had finished; the window is wrong" % misses)
                    break
                continue
            kills.append(kill)
            if previous is not None:
                treesnap.remove_tree(previous)
            previous = self.last_converged
        self.report["timed_misses"] = misses

    def final_checks(self) -> None:
        """``fsverity digest`` of every object of the reference tree and of the last converged one."""
        trees = [self.reference_path] + ([self.last_converged] if getattr(self, "last_converged", None) else [])
        for tree in trees:
            repo = os.path.join(tree, gchost.REPO_REL)
            for problem in self.fsverity.check_objects(repo, oracle.list_objects(repo)):
                self.fail(None, "%s: %s" % (os.path.basename(tree), problem))
        self.report["fsverity_files_checked"] = self.fsverity.checked

    def summary(self) -> dict:
        """The report: kills per mode and phase, failures."""
        kills = self.report.get("kills", [])
        per_phase = {}
        per_mode = {}
        for kill in kills:
            per_phase[kill["phase"]] = per_phase.get(kill["phase"], 0) + 1
            per_mode[kill["mode"]] = per_mode.get(kill["mode"], 0) + 1
        ordered = {p: per_phase[p] for p in gcchild.PHASE_ORDER + ("completed",) if p in per_phase}
        ordered.update({p: c for p, c in per_phase.items() if p not in ordered})
        report = dict(self.report)
        report["kills"] = len(kills)
        report["kills_per_mode"] = per_mode
        report["kills_per_phase"] = ordered
        report["in_deletion_phases"] = sum(c for p, c in per_phase.items() if p not in ("plan", "completed"))
        report["inside_a_tree_removal"] = sum(1 for k in kills if k.get("partial_trees"))
        report["failures"] = len(self.failures)
        report["failure_details"] = self.failures[:50]
        return report


def main(argv=None) -> int:
    """Run the harness; return the exit status."""
    args = _parser().parse_args(argv)
    sizes = _sizes(args)
    oracle.ensure_composefs_oracle()

    def _run(workdir):
        run = CrashRun(workdir, sizes, args.seed)
        run.setup()
        run.run_kills()
        run.final_checks()
        return run.summary()

    report = treesnap.run_harness("gc-crash-", args.workdir, _run)
    if not treesnap.print_report(report, args.json):
        print("gc_crash: %d kills (%s), %d in deletion phases, timed kills that missed: %d"
              % (report["kills"], ", ".join("%s %d" % kv for kv in sorted(report["kills_per_mode"].items())),
                 report["in_deletion_phases"], report["timed_misses"]))
        print("  per phase: %s; inside a tree removal (rm -rf half done): %d"
              % (", ".join("%s %d" % kv for kv in report["kills_per_phase"].items()), report["inside_a_tree_removal"]))
        print("  host: %s; work per phase: %s" % (report["oracle"], report["work_per_phase"]))
        print("  uninterrupted GC: %s" % report["uninterrupted"])
        print("  deterministic build: %s; fsverity digests checked: %d; %.1f s"
              % (report["deterministic_build"], report["fsverity_files_checked"], report["seconds"]))
        print("  failures: %d" % report["failures"])
        for failure in report["failure_details"]:
            print("    %s" % json.dumps(failure, sort_keys=True))
    return 1 if report["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
