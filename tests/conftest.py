"""Shared pytest fixtures: the oracle tools every format test compares against.

Oracles are real programs (Debian's fsverity, zstd, mkcomposefs/composefs-info). A missing oracle
is a failure, not a skip: `make test` (tests/setup/bootstrap.sh) installs all of them.
"""

import os
import pathlib
import shutil
import subprocess

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
ORACLE_WRAPPER = REPO_ROOT / "tests" / "setup" / "composefs-oracle"


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


def _free_port():
    import socket  # pylint: disable=import-outside-toplevel

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LocalRegistry:
    """A real OCI registry (Debian's docker-registry) on 127.0.0.1 with a free port."""

    def __init__(self, workdir):
        self.workdir = pathlib.Path(workdir)
        self.port = _free_port()
        self.address = "127.0.0.1:%d" % self.port
        self.proc = None

    def start(self):
        import time  # pylint: disable=import-outside-toplevel
        import urllib.request  # pylint: disable=import-outside-toplevel

        binary = _require_tool("docker-registry")
        data = self.workdir / "data"
        data.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "config.yml"
        config.write_text(
            "version: 0.1\nlog: {level: warn}\n"
            "storage:\n  filesystem: {rootdirectory: %s}\n  delete: {enabled: true}\n"
            "http: {addr: '%s'}\n" % (data, self.address)
        )
        log = open(self.workdir / "registry.log", "wb")  # pylint: disable=consider-using-with
        self.proc = subprocess.Popen([binary, "serve", str(config)], stdout=log, stderr=subprocess.STDOUT)  # pylint: disable=consider-using-with
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail("docker-registry exited: %s" % (self.workdir / "registry.log").read_text(errors="replace"))
            try:
                with urllib.request.urlopen("http://%s/v2/" % self.address, timeout=1) as resp:
                    if resp.status == 200:
                        return self
            except OSError:
                time.sleep(0.1)
        pytest.fail("docker-registry did not answer on %s" % self.address)
        return self

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def restart(self):
        """Stop then start again on the same port and storage (for tests that break a pull mid-way)."""
        self.stop()
        return self.start()


@pytest.fixture(scope="session")
def registry(tmp_path_factory):
    """A running local registry for the whole session; yields a LocalRegistry (``.address`` = host:port)."""
    reg = LocalRegistry(tmp_path_factory.mktemp("registry")).start()
    yield reg
    reg.stop()
