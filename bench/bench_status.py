# -*- coding: utf-8 -*-
"""Benchmark: ``composefs_status`` ad hoc against ``ansible.builtin.ping`` on the same host.

Run: ``.venv/bin/python bench/bench_status.py [--runs 9] [--preset demo] [--usage]``

Builds the simhost ``demo`` preset (five deployments: booted, staged, rollback, two others, one of
them legacy; an app image; stale bootc tags) in a temporary directory (removed afterwards), then
times, interleaved and after one warm-up run each,

    ansible localhost -i localhost, -c local -e ansible_python_interpreter=<venv python> -m ansible.builtin.ping
    ansible localhost -i localhost, -c local -e ansible_python_interpreter=<venv python> \\
        -m bootc.composefs.composefs_status -a root=<host>

and prints the best and median wall times and the ratio of the best times. Target: status
<= 1.3x ping. Both commands pay for the same ansible start-up, inventory and connection; the
difference is building and shipping the module with its module_utils, and running it. The
in-process time of ``read_status`` is printed too, to tell the two apart, and the CPU time of
each command (with everything it waited for: the forked worker and the module process), which
shows the same ratio with less noise on a busy machine. The load average before and after the
runs is printed with them.
"""

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLLECTIONS = os.path.join(REPO_ROOT, ".ci", "tmp", "collections")
sys.path.insert(0, COLLECTIONS)
sys.path.insert(0, os.path.join(REPO_ROOT, "tests", "tools"))

import simhost  # noqa: E402  pylint: disable=wrong-import-position
from ansible_collections.bootc.composefs.plugins.module_utils.operations import status  # noqa: E402  pylint: disable=wrong-import-position

TARGET_RATIO = 1.3
VENV_BIN = os.path.join(REPO_ROOT, ".venv", "bin")


def _ansible_argv(module, args=None):
    argv = [os.path.join(VENV_BIN, "ansible"), "localhost", "-i", "localhost,", "-c", "local",
            "-e", "ansible_python_interpreter=%s" % sys.executable, "-m", module]
    if args:
        argv += ["-a", args]
    return argv


def _env():
    return dict(os.environ, ANSIBLE_COLLECTIONS_PATH=COLLECTIONS, ANSIBLE_NOCOLOR="1", ANSIBLE_LOCALHOST_WARNING="0",
                ANSIBLE_INVENTORY_UNPARSED_WARNING="0", ANSIBLE_DEPRECATION_WARNINGS="0")


def _children_cpu():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _timed(argv, env):
    """``(wall seconds, CPU seconds of the command and everything it waited for, stdout)``."""
    cpu = _children_cpu()
    started = time.perf_counter()
    proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, check=False, text=True)
    elapsed = time.perf_counter() - started
    cpu = _children_cpu() - cpu
    if proc.returncode != 0 or "SUCCESS" not in proc.stdout:
        raise SystemExit("bench_status: %s failed (rc %d):\n%s%s"
                         % (" ".join(argv), proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:]))
    return elapsed, cpu, proc.stdout


def _check_status_output(stdout, built):
    result = json.loads(stdout.partition(" => ")[2])
    host = result["host"]
    if (host["booted"], host["staged"], host["rollback"]) != (built["booted"], built["staged"], built["rollback"]):
        raise SystemExit("bench_status: the status does not match the built host")
    return len(result["deployments"])


def _in_process(root, usage, runs):
    best = None
    for _run in range(runs):
        started = time.perf_counter()
        status.read_status(status.StatusRequest(root=root, usage=usage))
        elapsed = time.perf_counter() - started
        best = elapsed if best is None else min(best, elapsed)
    return best


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=9, help="timed runs of each command (default %(default)s)")
    parser.add_argument("--preset", default="demo", help="simhost preset to build (default %(default)s: 5 deployments)")
    parser.add_argument("--usage", action="store_true", help="run the status with usage=true")
    args = parser.parse_args(argv)
    workdir = tempfile.mkdtemp(prefix="bench-status-")
    load_before = os.getloadavg()[0]
    try:
        built = simhost.build_host(os.path.join(workdir, "host"), simhost.preset_spec(args.preset))
        env = _env()
        ping = _ansible_argv("ansible.builtin.ping")
        composefs = _ansible_argv("bootc.composefs.composefs_status",
                                  "root=%s usage=%s" % (built["root"], "true" if args.usage else "false"))
        _timed(ping, env)
        deployments = _check_status_output(_timed(composefs, env)[2], built)
        times = {"ping": [], "status": []}
        cpu_times = {"ping": [], "status": []}
        for _run in range(args.runs):
            for name, command in (("ping", ping), ("status", composefs)):
                wall, cpu, _stdout = _timed(command, env)
                times[name].append(wall)
                cpu_times[name].append(cpu)
        module_seconds = _in_process(built["root"], args.usage, args.runs)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    best = {name: min(values) for name, values in times.items()}
    best_cpu = {name: min(values) for name, values in cpu_times.items()}
    ratio = best["status"] / best["ping"]
    print("host: simhost preset %s, %d deployments, %s; %d interleaved runs each after one warm-up"
          % (args.preset, deployments, built["variant"], args.runs))
    print("load average %.2f before, %.2f after, on %d CPUs (other processes slow both commands, not always alike)"
          % (load_before, os.getloadavg()[0], os.cpu_count()))
    for name in ("ping", "status"):
        print("%-6s wall best %.3fs  median %.3fs   CPU best %.3fs" % (name, best[name], statistics.median(times[name]),
                                                                       best_cpu[name]))
    print("read_status in process (best): %.3fs" % module_seconds)
    print("ratio status/ping of CPU time (best): %.2fx (load-independent view of the same work)"
          % (best_cpu["status"] / best_cpu["ping"]))
    print("ratio status/ping (best): %.2fx (target <= %.1fx: %s)" % (ratio, TARGET_RATIO, "met" if ratio <= TARGET_RATIO else "MISSED"))
    return 0 if ratio <= TARGET_RATIO else 1


if __name__ == "__main__":
    sys.exit(main())
