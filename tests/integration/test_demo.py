"""``make demo``'s script (tests/tools/demo.py): the full cycle on a simulated host, checked on disk.

The demo builds the ``demo`` preset, pushes version 6 of the OS image to a local registry, and runs
playbooks/demo.yml: status, pull (twice), stage with the upgrade role and the bootc test double,
composefs_gc (plan, then real), status. Kept with ``--keep``, the host is read back here with
``composefs_status`` (as an operator would) and against references built independently with
simhost: the untouched demo host (the "before"), and a host booted into version 6 (the verity the
staged deployment must have). Without ``--keep`` and when interrupted, nothing may be left behind:
no temporary directory (``TMPDIR`` points into the test's directory), no registry, no ansible process.
"""

import json
import os
import pathlib
import re
import signal
import subprocess
import sys
import time

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
DEMO = REPO_ROOT / "tests" / "tools" / "demo.py"
STATUS = "bootc.composefs.composefs_status"
NEW_VERSION = "6"


def run_demo(tmp_path, *args):
    """Run demo.py with TMPDIR below ``tmp_path``; returns (exit status, output, TMPDIR)."""
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir(exist_ok=True)
    proc = subprocess.run([sys.executable, str(DEMO)] + list(args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, check=False, cwd=str(REPO_ROOT), env=dict(os.environ, TMPDIR=str(tmpdir)))
    return proc.returncode, proc.stdout, tmpdir


def processes_naming(text):
    """``[(pid, argv)]`` of the processes whose command line contains ``text``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            argv = pathlib.Path("/proc", entry, "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(text.encode() in arg for arg in argv):
            found.append((int(entry), [a.decode(errors="replace") for a in argv if a]))
    return found


def status_of(ansible_adhoc, root):
    outcome = ansible_adhoc(STATUS, {"root": str(root), "usage": True})
    assert outcome.rc == 0, outcome
    return outcome.result


@pytest.fixture(scope="module", name="references")
def fixture_references(tmp_path_factory, simhost):
    """simhost builds, independent of the demo: the demo host as built, and the verity of version 6 once deployed."""
    work = tmp_path_factory.mktemp("demo-references")
    spec = simhost.preset_spec("demo")
    spec.oci_dir = str(work / "oci")
    spec.pending_versions = (NEW_VERSION,)
    before = simhost.build_host(work / "before", simhost.load_spec(spec))
    booted_kernel = next(d["kernel_version"] for d in before["deployments"] if d["role"] == "booted")
    deployed = simhost.build_host(work / "deployed", {"variant": before["variant"], "deployments": [
        {"role": "booted", "version": NEW_VERSION, "kernel_version": booted_kernel}]})
    return {"before": before, "new": deployed["deployments"][0], "pending": before["pending_images"][0],
            "app_tag": spec.app_images[0].tag}


def test_demo_full_cycle_leaves_the_host_upgraded_and_collected(tmp_path, references, ansible_adhoc):
    code, out, _tmpdir = run_demo(tmp_path, "--keep")
    assert code == 0, out[-8000:]
    workdir = pathlib.Path(re.search(r"^The simulated host, the OCI layout and the registry data are kept in (\S+)$", out, re.M).group(1))
    root = workdir / "host"
    built_before = references["before"]
    image = json.loads((workdir / "demo-vars.json").read_text())["composefs_demo_image"]
    assert re.fullmatch(r"127\.0\.0\.1:\d+/simos:%s" % NEW_VERSION, image)
    assert not processes_naming(str(workdir)), "the registry (or another process of the demo) still runs"

    before = status_of(ansible_adhoc, built_before["root"])
    after = status_of(ansible_adhoc, root)
    new, pending = references["new"], references["pending"]

    # stage: the pulled image is the staged deployment, booted and rollback untouched; a reboot is pending
    assert after["host"]["booted"] == built_before["booted"]
    assert after["host"]["rollback"] == built_before["rollback"]
    assert after["host"]["staged"] == new["verity"] != built_before["staged"]
    staged = next(d for d in after["deployments"] if d["role"] == "staged")
    assert staged["manifest_digest"] == pending["manifest_digest"] == new["manifest_digest"]
    assert staged["image"]["transport"] == "registry" and staged["image"]["image"] == image
    marker = json.loads((root / "run" / "composefs" / "staged-deployment").read_text())
    assert marker["depl_id"] == new["verity"]
    state = json.loads((root / "var" / "lib" / "bootc-composefs" / "upgrade-state.json").read_text())
    assert state["last"]["phase"] == "staged" and state["last"]["manifest_digest"] == pending["manifest_digest"]
    assert not (root / "var" / "lib" / "bootc-composefs" / "upgrade.lock").exists()

    # cleanup: the replaced staged deployment (version 5) and the stale tags are gone, with their data
    old_staged = next(d for d in built_before["deployments"] if d["role"] == "staged")
    assert not os.path.lexists(str(root / os.path.relpath(old_staged["state_dir"], built_before["root"])))
    assert not os.path.lexists(str(root / os.path.relpath(old_staged["boot_artifact_path"], built_before["root"])))
    live = {d["manifest_digest"] for d in after["deployments"]}
    assert live == {d["manifest_digest"] for d in built_before["deployments"] if d["role"] != "staged"} | {pending["manifest_digest"]}
    assert sorted(t["name"] for t in after["tags"]) == sorted(["localhost/bootc-" + digest for digest in live] + [references["app_tag"]])
    removed = [t["manifest_digest"] for t in built_before["stale_bootc_tags"]] + [old_staged["manifest_digest"]]
    streams = root / "sysroot" / "composefs" / "streams"
    assert not [digest for digest in removed if os.path.lexists(str(streams / ("oci-manifest-" + digest)))]
    assert after["findings"] == [] and before["findings"]
    assert [d["role"] for d in after["deployments"]] == [d["role"] for d in before["deployments"]]

    # before/after figures: collected more than the pull added
    assert after["repository"]["usage"]["objects"] < before["repository"]["usage"]["objects"]
    assert after["repository"]["usage"]["object_bytes"] < before["repository"]["usage"]["object_bytes"]
    assert len(after["tags"]) == len(before["tags"]) - len(built_before["stale_bootc_tags"])

    # what the run printed agrees
    assert "changed: false" in out and "REBOOT PENDING" in out and "failed=0" in out
    assert re.search(r"^ *- staged version +simos\.5 +simos\.%s +simos\.%s$" % (NEW_VERSION, NEW_VERSION), out, re.M)


def test_demo_removes_its_directory_and_stops_the_registry(tmp_path):
    code, out, tmpdir = run_demo(tmp_path)
    assert code == 0, out[-8000:]
    workdir = re.search(r"^Removed (\S+)\.$", out, re.M).group(1)
    assert workdir.startswith(str(tmpdir) + os.sep)
    assert not os.listdir(str(tmpdir)), os.listdir(str(tmpdir))
    assert not processes_naming(workdir)
    assert "Stopped the local registry" in out and "Demo done" in out


def test_demo_interrupted_cleans_up(tmp_path):
    """SIGINT (as Ctrl-C sends, here to demo.py alone) while the playbook runs: registry stopped, directory removed."""
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    proc = subprocess.Popen([sys.executable, str(DEMO)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,  # pylint: disable=consider-using-with
                            cwd=str(REPO_ROOT), env=dict(os.environ, TMPDIR=str(tmpdir)))
    lines = []
    deadline = time.monotonic() + 120
    try:
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("PLAY [2/5") or time.monotonic() > deadline:
                break
        assert any(line.startswith("PLAY [2/5") for line in lines), "".join(lines)
        workdirs = [str(p) for p in tmpdir.iterdir()]
        assert len(workdirs) == 1 and processes_naming(workdirs[0]), "the demo runs a registry and ansible-playbook"
        proc.send_signal(signal.SIGINT)
        rest = proc.communicate(timeout=60)[0]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    out = "".join(lines) + rest
    assert proc.returncode == 130, out[-4000:]
    assert "Demo interrupted." in out and "Stopped the local registry" in out
    assert not os.listdir(str(tmpdir)), os.listdir(str(tmpdir))
    assert not processes_naming(workdirs[0])
