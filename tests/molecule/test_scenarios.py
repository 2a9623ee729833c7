# -*- coding: utf-8 -*-
"""The Molecule scenarios of extensions/molecule/, one pytest test each, so CI ends on pytest's summary.

Each scenario runs ``molecule test`` (destroy, syntax, create, prepare, converge, idempotence, verify,
destroy) in podman containers of the locally built base image (tests/setup/base-image.sh), against
a local registry of its own (tests/tools/registry.py, started by tests/molecule/conftest.py), whose
address reaches the scenario as ``BOOTC_COMPOSEFS_TEST_REGISTRY``. What each scenario proves is written at the top
of its molecule.yml; the assertions are in its converge.yml and verify.yml. The scenarios run in the
background of the session (tests/molecule/conftest.py); these tests collect their results.
"""

import pathlib
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCENARIOS = sorted(p.parent.name for p in (ROOT / "extensions" / "molecule").glob("*/molecule.yml"))


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_molecule_scenario(scenario, scenario_runs):
    code, seconds, log = scenario_runs[scenario].result()
    sys.stdout.write("molecule scenario %s: %.0f s\n" % (scenario, seconds))
    output = log.read_text(encoding="utf-8", errors="replace")
    assert code == 0, "molecule test -s %s failed (%s) after %.0f s, log %s:\n%s" % (scenario, code, seconds, log, output[-12000:])
