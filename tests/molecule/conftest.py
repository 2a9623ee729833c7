# -*- coding: utf-8 -*-
"""Fixtures of tests/molecule: the Molecule scenarios run in the background of the whole session.

The scenarios selected in a session (tests of test_scenarios.py) are started as soon as the session
starts, ``BOOTC_COMPOSEFS_MOLECULE_JOBS`` at a time (default: all together). They spend most of
their time waiting for podman and Ansible start-up, so they run side by side, and next to the
other tests of this folder (test_role_paths.py, collected first); each scenario test then only
collects its result. Each scenario writes its output to ``.ci/tmp/molecule-logs/<scenario>.log``.

The containers live in a podman store of their own (``PODMAN_STORE``: graph root, run root and
libpod tmp dir), with tests/setup/podman-env.sh's settings otherwise. Podman commands elsewhere on
the machine, even a ``podman system reset`` of another store (which removes the shared
``/run/libpod`` and makes the next podman command "refresh" every running container of the default
store), cannot disturb the scenarios, and the scenarios leave nothing in the default store.

Each scenario has a registry of its own: they all push the same image under the same tags, and
docker-registry rewrites a tag's link file in place, so a pull of a tag while another scenario
pushes it can read a half-written link (HTTP 500 "invalid checksum digest format", seen in CI).
"""

import concurrent.futures
import os
import pathlib
import subprocess
import sys
import time

import pytest

from registry import LocalRegistry  # tests/tools, on sys.path through tests/conftest.py

ROOT = pathlib.Path(__file__).resolve().parents[2]
BIN = pathlib.Path(sys.executable).parent
# A whole scenario must finish well within this (alone, the longest takes about 3 minutes on 2 cores).
SCENARIO_TIMEOUT_SECONDS = 900
PODMAN_STORE = {
    "graphroot": "/var/lib/bootc-composefs-molecule/storage",
    "runroot": "/run/bootc-composefs-molecule/storage",
    "tmp_dir": "/run/bootc-composefs-molecule/libpod",
}


def _podman_env() -> dict:
    """CONTAINERS_CONF (podman-env.sh's settings plus a private tmp_dir) and CONTAINERS_STORAGE_CONF (private store)."""
    proc = subprocess.run(["bash", "-c", ". tests/setup/podman-env.sh && cat \"$CONTAINERS_CONF\""], cwd=ROOT,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, check=True)
    if "[engine]\n" not in proc.stdout:
        raise AssertionError("tests/setup/podman-env.sh wrote no [engine] table:\n" + proc.stdout)
    conf_dir = ROOT / ".ci" / "tmp" / "molecule-podman"
    conf_dir.mkdir(parents=True, exist_ok=True)
    containers_conf = conf_dir / "containers.conf"
    containers_conf.write_text(proc.stdout.replace("[engine]\n", "[engine]\ntmp_dir = \"%s\"\n" % PODMAN_STORE["tmp_dir"], 1))
    storage_conf = conf_dir / "storage.conf"
    storage_conf.write_text('[storage]\ndriver = "overlay"\ngraphroot = "%s"\nrunroot = "%s"\n'
                            % (PODMAN_STORE["graphroot"], PODMAN_STORE["runroot"]))
    return {"CONTAINERS_CONF": str(containers_conf), "BOOTC_COMPOSEFS_CONTAINERS_CONF": str(containers_conf),
            "CONTAINERS_STORAGE_CONF": str(storage_conf)}


def collections_path() -> str:
    """ANSIBLE_COLLECTIONS_PATH with the repository as bootc.composefs (what tests/setup/bootstrap.sh links)."""
    link = ROOT / ".ci" / "tmp" / "collections" / "ansible_collections" / "bootc" / "composefs"
    if not os.path.lexists(link):
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(ROOT)
    paths = [str(ROOT / ".ci" / "tmp" / "collections")]
    if os.environ.get("ANSIBLE_COLLECTIONS_PATH"):
        paths += [p for p in os.environ["ANSIBLE_COLLECTIONS_PATH"].split(":") if p and p not in paths]
    return ":".join(paths)


def _molecule_env() -> dict:
    """Environment for ``molecule`` (but the registry address): podman settings, collection path, the venv first in PATH."""
    env = dict(os.environ)
    env.update(_podman_env())
    env.update({
        "ANSIBLE_COLLECTIONS_PATH": collections_path(),
        "PATH": "%s:%s" % (BIN, env.get("PATH", "")),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        "PY_COLORS": "0",
        "NO_COLOR": "1",
    })
    subprocess.run(["tests/setup/base-image.sh"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, check=True)
    return env


def _run_scenario(scenario: str, env: dict) -> tuple:
    """``molecule test -s scenario``; returns (exit code or a timeout message, seconds, log path)."""
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


@pytest.fixture(scope="session", autouse=True, name="scenario_runs")
def fixture_scenario_runs(request):
    """Every scenario selected in this session, started at once in a pool; ``{scenario: future}``."""
    selected = sorted({item.callspec.params["scenario"] for item in request.session.items
                       if getattr(item, "callspec", None) is not None and "scenario" in item.callspec.params
                       and item.fspath.basename == "test_scenarios.py"})
    if not selected:
        yield {}
        return
    env = _molecule_env()
    registries = {}
    try:
        for scenario in selected:
            workdir = request.getfixturevalue("tmp_path_factory").mktemp("registry-%s" % scenario)
            registries[scenario] = LocalRegistry(workdir, fail=pytest.fail).start()
        jobs = int(os.environ.get("BOOTC_COMPOSEFS_MOLECULE_JOBS", "0")) or len(selected)
        with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
            yield {scenario: pool.submit(_run_scenario, scenario,
                                         dict(env, BOOTC_COMPOSEFS_TEST_REGISTRY=registries[scenario].address))
                   for scenario in selected}
    finally:
        for registry in registries.values():
            registry.stop()
