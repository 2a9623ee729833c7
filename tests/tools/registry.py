"""A real OCI registry (Debian's ``docker-registry``) on 127.0.0.1 with a free port, for tests and the demo.

Used by the ``registry`` fixture of tests/conftest.py, by ``make demo`` (tests/tools/demo.py) and by
anything else that needs a registry to push to and pull from over plain HTTP::

    import registry
    with registry.LocalRegistry(workdir) as reg:      # started; stopped on leaving the block
        ... skopeo copy --dest-tls-verify=false oci:DIR:TAG docker://<reg.address>/name:TAG ...

The registry keeps its data, configuration and log (``registry.log``) below ``workdir``, serves
``http://127.0.0.1:<port>/v2/`` and allows deletes. It is plain HTTP: clients need
``--tls-verify=false`` (skopeo), ``tls_verify: false`` (``bootc.composefs.composefs_pull``) or an
``insecure = true`` entry in registries.conf (``registries_conf``).

Failures raise ``RegistryError``; pass ``fail=pytest.fail`` to report them as test failures instead.
"""

import pathlib
import shutil
import socket
import subprocess
import time
import urllib.request

START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0


class RegistryError(RuntimeError):
    """The registry could not be started (missing binary, exited, did not answer)."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def registries_conf(address: str) -> str:
    """registries.conf(5) text trusting the plain-HTTP registry at ``address`` (bootc and skopeo read it)."""
    return '[[registry]]\nlocation = "%s"\ninsecure = true\n' % address


class LocalRegistry:
    """A real OCI registry (Debian's docker-registry) on 127.0.0.1 with a free port.

    ``fail`` is called with the message of a failure (``pytest.fail`` in tests); by default a
    ``RegistryError`` is raised.
    """

    def __init__(self, workdir, fail=None):
        self.workdir = pathlib.Path(workdir)
        self.port = free_port()
        self.address = "127.0.0.1:%d" % self.port
        self.proc = None
        self._fail = fail

    def _error(self, message: str):
        if self._fail is not None:
            self._fail(message)
        raise RegistryError(message)

    @property
    def log_path(self) -> pathlib.Path:
        """The registry's log (its stdout and stderr)."""
        return self.workdir / "registry.log"

    def start(self):
        """Start the registry and wait until it answers ``GET /v2/`` (30 s at most); returns self."""
        binary = shutil.which("docker-registry")
        if binary is None:
            self._error("docker-registry is not installed; run tests/setup/bootstrap.sh (Debian package docker-registry)")
        data = self.workdir / "data"
        data.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "config.yml"
        config.write_text(
            "version: 0.1\nlog: {level: warn}\n"
            "storage:\n  filesystem: {rootdirectory: %s}\n  delete: {enabled: true}\n"
            "http: {addr: '%s'}\n" % (data, self.address)
        )
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen([binary, "serve", str(config)], stdout=log, stderr=subprocess.STDOUT)  # pylint: disable=consider-using-with
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self._error("docker-registry exited: %s" % self.log_path.read_text(errors="replace"))
            try:
                with urllib.request.urlopen("http://%s/v2/" % self.address, timeout=1) as resp:
                    if resp.status == 200:
                        return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        self._error("docker-registry did not answer on %s" % self.address)
        return self

    def stop(self):
        """Stop the registry (SIGTERM, then SIGKILL after 10 s); nothing happens when it is not running."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def restart(self):
        """Stop then start again on the same port and storage (for tests that break a pull mid-way)."""
        self.stop()
        return self.start()

    @property
    def running(self) -> bool:
        """Whether the registry process is alive."""
        return self.proc is not None and self.proc.poll() is None

    def __enter__(self):
        return self.start()

    def __exit__(self, *_exc):
        self.stop()
