# -*- coding: utf-8 -*-
"""The Molecule scenarios of extensions/molecule/, one pytest test each, so CI ends on pytest's summary.

Each scenario runs ``molecule test`` (destroy, syntax, create, prepare, converge, idempotence, verify,
destroy) in podman containers of the locally built base image (tests/setup/base-image.sh), against
the session's local registry (the ``registry`` fixture of tests/conftest.py), whose address reaches
the scenarios as ``BOOTC_COMPOSEFS_TEST_REGISTRY``. What each scenario proves is written at the top
of its molecule.yml; the assertions are in its converge.yml and verify.yml.

The scenarios of a session are started together (``BOOTC_COMPOSEFS_MOLECULE_JOBS`` at a time, default
all of them): they spend most of their time waiting for podman and Ansible start-up, so on two cores
three run in about the time of the longest one. Each writes its output to
``.ci/tmp/molecule-logs/<scenario>.log``; a failing test shows the end of it.
"""

import concurrent.futures
import os
import pathlib
import subprocess
import sys
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCENARIO_DIR = ROOT / "extensions" / "molecule"
SCENARIOS = sorted(p.parent.name for p in SCENARIO_DIR.glob("*/molecule.yml"))
BIN = pathlib.Path(sys.executable).parent
# A whole scenario must finish well within this (the three take about 5 minutes on 2 cores).
SCENARIO_TIMEOUT_SECONDS = 900


def _podman_env() -> dict:
    """The environment of tests/setup/podman-env.sh (CONTAINERS_CONF: runc and pinned ulimits)."""
    if os.environ.get("CONTAINERS_CONF"):
        return {}
    proc = subprocess.run(["bash", "-c", ". tests/setup/podman-env.sh && printf %s \"$CONTAINERS_CONF\""], cwd=ROOT,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, check=True)
    return {"CONTAINERS_CONF": proc.stdout}


def _collections_path() -> str:
    """ANSIBLE_COLLECTIONS_PATH with the repository as bootc.composefs (what tests/setup/bootstrap.sh links)."""
    link = ROOT / ".ci" / "tmp" / "collections" / "ansible_collections" / "bootc" / "composefs"
    if not os.path.lexists(link):
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(ROOT)
    paths = [str(ROOT / ".ci" / "tmp" / "collections")]
    if os.environ.get("ANSIBLE_COLLECTIONS_PATH"):
        paths += [p for p in os.environ["ANSIBLE_COLLECTIONS_PATH"].split(":") if p and p not in paths]
    return ":".join(paths)


@pytest.fixture(scope="session", name="molecule_env")
def fixture_molecule_env(registry):
    """Environment for ``molecule``: registry address, podman settings, collection path, the venv first in PATH."""
    env = dict(os.environ)
    env.update(_podman_env())
    env.update({
        "BOOTC_COMPOSEFS_TEST_REGISTRY": registry.address,
        "ANSIBLE_COLLECTIONS_PATH": _collections_path(),
        "PATH": "%s:%s" % (BIN, env.get("PATH", "")),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        "PY_COLORS": "0",
        "NO_COLOR": "1",
    })
    subprocess.run(["tests/setup/base-image.sh"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, check=True)
    return env


def _run_scenario(scenario: str, env: dict) -> tuple:
    """``molecule test -s scenario``; returns (exit code, seconds, log path)."""
    log_dir = ROOT / ".ci" / "tmp" / "molecule-logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    log = log_dir / ("%s.log" % scenario)
    started = time.monotonic()
    with open(log, "w", encoding="utf-8") as handle:
        try:
            code = subprocess.run([str(BIN / "molecule"), "test", "-s", scenario], cwd=ROOT, env=env, stdout=handle,
                                  stderr=subprocess.STDOUT, check=False, timeout=SCENARIO_TIMEOUT_SECONDS).returncode
        except subprocess.TimeoutExpired:
            code = "timeout after %d s" % SCENARIO_TIMEOUT_SECONDS
    return code, time.monotonic() - started, log


@pytest.fixture(scope="session", name="scenario_runs")
def fixture_scenario_runs(request, molecule_env):
    """Every scenario selected in this session, started at once in a pool; ``{scenario: future}``."""
    selected = sorted({item.callspec.params["scenario"] for item in request.session.items
                       if getattr(item, "callspec", None) is not None and "scenario" in item.callspec.params})
    jobs = int(os.environ.get("BOOTC_COMPOSEFS_MOLECULE_JOBS", "0")) or len(selected) or 1
    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
        yield {scenario: pool.submit(_run_scenario, scenario, molecule_env) for scenario in selected}


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_molecule_scenario(scenario, scenario_runs):
    code, seconds, log = scenario_runs[scenario].result()
    sys.stdout.write("molecule scenario %s: %.0f s\n" % (scenario, seconds))
    output = log.read_text(encoding="utf-8", errors="replace")
    assert code == 0, "molecule test -s %s failed (%s) after %.0f s, log %s:\n%s" % (scenario, code, seconds, log, output[-12000:])
