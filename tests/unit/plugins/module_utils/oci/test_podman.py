# -*- coding: utf-8 -*-
"""oci/podman.py: command lines of bootc's unified pull, run by real podman on throw-away storages.

Oracles: podman itself (``podman images --digests`` after the commands ran) and ocigen's digests.
podman needs the CI settings of tests/setup/podman-env.sh (runc, pinned ulimits): the fixture
sources that script, sets its CONTAINERS_CONF for the test and restores the previous value after.
"""

import os
import shutil
import subprocess
import tempfile

import pytest

from ansible_collections.bootc.composefs.plugins.module_utils.errors import ToolError
from ansible_collections.bootc.composefs.plugins.module_utils.oci import podman, skopeo
from ansible_collections.bootc.composefs.plugins.module_utils.oci.layout import Platform
from ansible_collections.bootc.composefs.tests.tools import ocigen

PODMAN_ENV = os.path.join(os.path.dirname(__file__), "..", "..", "..", "..", "setup", "podman-env.sh")


@pytest.fixture(scope="module")
def podman_env():
    """The environment podman-env.sh exports (CONTAINERS_CONF), applied to this process for the runner."""
    proc = subprocess.run(["bash", "-c", ". %s && echo $CONTAINERS_CONF" % PODMAN_ENV], stdout=subprocess.PIPE, check=True)
    conf = proc.stdout.decode().strip()
    old = os.environ.get("CONTAINERS_CONF")
    os.environ["CONTAINERS_CONF"] = conf
    yield conf
    if old is None:
        del os.environ["CONTAINERS_CONF"]
    else:
        os.environ["CONTAINERS_CONF"] = old


def test_storage_names():
    assert podman.storage_spec("/s", "/r") == "[overlay@/s+/r]"
    assert podman.storage_reference("/s", "/r", "ab" * 32) == "containers-storage:[overlay@/s+/r]@" + "ab" * 32
    assert podman.split_store("[vfs@/s+/r]localhost/x:1") == (("vfs", "/s", "/r"), "localhost/x:1")
    assert podman.split_store("[/s]localhost/x") == (("overlay", "/s", None), "localhost/x")
    assert podman.split_store("localhost/x") == (None, "localhost/x")


def test_command_lines():
    options = skopeo.SourceOptions(authfile="/a.json", creds="u:p", tls_verify=False, cert_dir="/c",
                                   platform=Platform("linux", "arm64", "v8"))
    assert podman.pull_argv(["podman"], "/s", "/r", "docker://q/os:1", options) == [
        "podman", "--root", "/s", "--runroot", "/r", "pull", "--quiet", "--authfile", "/a.json", "--creds", "u:p",
        "--tls-verify=false", "--cert-dir", "/c", "--os", "linux", "--arch", "arm64", "--variant", "v8", "docker://q/os:1"]
    assert podman.push_argv(["podman"], "/s", "/r", "[overlay@/h+/hr]localhost/os:1") == [
        "podman", "--root", "/h", "--runroot", "/hr", "image", "push", "--quiet",
        "--remove-signatures", "localhost/os:1", "containers-storage:[overlay@/s+/r]localhost/os:1"]
    assert podman.push_argv(["podman"], "/s", "/r", "localhost/os:1")[:3] == ["podman", "image", "push"]


def test_outputs():
    assert podman.image_id_of("Trying to pull...\n" + "ab" * 32 + "\n") == "ab" * 32
    assert podman.image_id_of("nothing useful\n") is None
    stderr = "Trying to pull x...\nError: initializing source docker://x: pinging container registry\nSee 'podman pull --help'\n"
    assert podman.error_text(stderr) == "Error: initializing source docker://x: pinging container registry"
    assert podman.error_text("first\nlast line\nSee 'podman pull --help'") == "last line"


def test_runroot_length_is_checked():
    with pytest.raises(ToolError, match="50 characters"):
        podman.check_runroot("/" + "r" * 60)
    podman.check_runroot("/run/bootc/storage")


def test_run_classifies_failures():
    def runner(argv, env):
        assert env["LC_ALL"] == "C"
        return 125, "", "Error: reading manifest 1 in q/os: unauthorized: authentication required\n"

    with pytest.raises(ToolError) as err:
        podman.run(["podman", "pull", "q/os:1"], "pulling q/os:1", runner)
    assert err.value.partial_result == {"failure": skopeo.AUTH_REFUSED, "command": ["podman", "pull", "q/os:1"]}
    assert err.value.rc == 125
    with pytest.raises(ToolError) as err:
        podman.run(["/nonexistent/podman", "pull"], "pulling")
    assert err.value.partial_result["failure"] == skopeo.MISSING_TOOL


def test_real_pull_and_push(tmp_path, podman_env):  # pylint: disable=redefined-outer-name,unused-argument
    built = ocigen.write_image(str(tmp_path / "lay"), [[("file", "a", b"a" * 1000)]], tag="v1")
    short = tempfile.mkdtemp(prefix="pm", dir="/tmp")  # podman refuses run roots of more than 50 characters
    store, run = str(tmp_path / "s1"), os.path.join(short, "r1")
    try:
        stdout = podman.run(podman.pull_argv(["podman"], store, run, "oci:%s:v1" % (tmp_path / "lay"), skopeo.SourceOptions()),
                            "pulling")
        image_id = podman.image_id_of(stdout)
        assert image_id == built["config_digest"].split(":")[1]
        listing = podman.run(["podman", "--root", store, "--runroot", run, "images", "--digests", "--format",
                              "{{.Digest}} {{.Names}}"], "listing")
        assert built["manifest_digest"] in listing
        push = podman.push_argv(["podman"], str(tmp_path / "s2"), os.path.join(short, "r2"),
                                "[overlay@%s+%s]%s" % (store, run, "@" + image_id))
        push[-2], push[-1] = image_id, push[-1].replace("@" + image_id, "localhost/copied:1")
        podman.run(push, "pushing")
        listing = podman.run(["podman", "--root", str(tmp_path / "s2"), "--runroot", os.path.join(short, "r2"), "images",
                              "--format", "{{.Id}} {{.Names}}"], "listing")
        assert image_id in listing and "localhost/copied:1" in listing
    finally:
        for root, runroot in ((store, run), (str(tmp_path / "s2"), os.path.join(short, "r2"))):
            subprocess.run(["podman", "--root", root, "--runroot", runroot, "system", "reset", "--force"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        shutil.rmtree(short, ignore_errors=True)
