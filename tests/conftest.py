"""Shared pytest fixtures: the oracle tools every format test compares against.

Oracles are real programs (Debian's fsverity, zstd, mkcomposefs/composefs-info). A missing oracle
is a failure, not a skip: `make test` (tests/setup/bootstrap.sh) installs all of them.
"""

import os
import pathlib
import shutil
import subprocess
import sys

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
ORACLE_WRAPPER = REPO_ROOT / "tests" / "setup" / "composefs-oracle"
TOOLS = REPO_ROOT / "tests" / "tools"
if str(TOOLS) not in sys.path:
    sys.path.insert(0, str(TOOLS))

from registry import LocalRegistry  # noqa: E402  pylint: disable=wrong-import-position


def _require_tool(name):
    path = shutil.which(name)
    if path is None:
        pytest.fail("oracle tool %r is not installed; run tests/setup/bootstrap.sh" % name)
    return path


def run_tool(argv, **kwargs):
    """Run an oracle command with LC_ALL=C; fail the test with its stderr when it fails."""
    env = dict(os.environ, LC_ALL="C")
    proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, check=False, **kwargs)
    if proc.returncode != 0:
        pytest.fail("%s failed (rc %d): %s" % (" ".join(map(str, argv)), proc.returncode,
                                               proc.stderr.decode("utf-8", "replace")[-2000:]))
    return proc


@pytest.fixture(scope="session")
def fsverity_tool():
    """Path of Debian's `fsverity` binary (fsverity-utils)."""
    return _require_tool("fsverity")


@pytest.fixture(scope="session")
def zstd_tool():
    """Path of the `zstd` command-line tool."""
    return _require_tool("zstd")


@pytest.fixture(scope="session")
def composefs_oracle():
    """Callable running Debian's `mkcomposefs` / `composefs-info`: composefs_oracle("mkcomposefs", *args)."""
    run_tool([str(ORACLE_WRAPPER), "--ensure"])

    def run(tool, *args, **kwargs):
        return run_tool([str(ORACLE_WRAPPER), tool] + [str(a) for a in args], **kwargs)

    return run


@pytest.fixture(scope="session")
def registry(tmp_path_factory):
    """A running local registry for the whole session; yields a LocalRegistry (``.address`` = host:port)."""
    reg = LocalRegistry(tmp_path_factory.mktemp("registry"), fail=pytest.fail).start()
    yield reg
    reg.stop()
