"""The GC proof harnesses of ``tests/harness`` at CI size: crash (SIGKILL), concurrency (GC vs import), fuzz.

Each harness runs as its own process (as anyone would run it: ``.venv/bin/python
tests/harness/<name>.py --json``) and prints its report as JSON; the test requires zero failures
and that the run did what it claims (kills landed inside deletion phases, rounds overlapped,
inputs of every kind were tried). Full-size runs: ``--full`` (see tests/harness/README.md).
"""

import json
import pathlib
import subprocess
import sys

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
HARNESS = REPO_ROOT / "tests" / "harness"
TIMEOUT_SECONDS = 600


def run_harness(script, *args):
    """Run ``tests/harness/<script> --json``; return (process, report)."""
    proc = subprocess.run([sys.executable, str(HARNESS / script), "--json"] + list(args), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, cwd=str(REPO_ROOT), timeout=TIMEOUT_SECONDS, check=False)
    stderr = proc.stderr.decode("utf-8", "replace")
    if not proc.stdout.strip():
        pytest.fail("%s printed no report (rc %d): %s" % (script, proc.returncode, stderr[-3000:]))
    return proc, json.loads(proc.stdout)


def _failures(report):
    return json.dumps(report.get("failure_details", []), indent=1, sort_keys=True)[:6000]


def test_gc_crash_harness():
    proc, report = run_harness("gc_crash.py")
    assert report["failures"] == 0, _failures(report)
    assert proc.returncode == 0
    assert report["kills"] >= 20
    assert report["in_deletion_phases"] == report["kills"], report["kills_per_phase"]
    assert len(report["kills_per_phase"]) >= 4, report["kills_per_phase"]
    assert report["deterministic_build"] is True
    assert all(report["work_per_phase"].values()), report["work_per_phase"]


def test_gc_concurrency_harness():
    proc, report = run_harness("gc_concurrency.py")
    assert report["failures"] == 0, _failures(report)
    assert proc.returncode == 0
    assert report["rounds"] >= 10
    assert report["lost_objects"] == 0
    overlaps = report["overlaps"]
    assert overlaps["gc_planned_while_import_held_lock"] + overlaps["import_waited_for_gc_lock"] >= 1, overlaps


def test_gc_fuzz_harness():
    proc, report = run_harness("gc_fuzz.py")
    assert report["failures"] == 0, _failures(report)
    assert proc.returncode == 0
    assert report["inputs"] >= 800
    assert len(report["by_kind"]) == 11, sorted(report["by_kind"])
    assert report["totals"].get("error", 0) > 0 and report["totals"].get("plan-exact", 0) > 0, report["totals"]
