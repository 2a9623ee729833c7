# -*- coding: utf-8 -*-
"""Decision paths of the upgrade role that the Molecule scenarios do not reach, on simulated hosts.

Each test builds a host with tests/tools/simhost (booted 2, rollback 1; image 3 written to a kept
OCI layout but not imported), then runs the role with ``ansible-playbook`` over the local
connection, with ``composefs_upgrade_root`` on that host and the bootc test double
(tests/tools/bootc_double.py) as bootc. The local connection cannot reboot (ansible.builtin.reboot
refuses to reboot the controller), so reboots are the double's ``reboot`` command run by the test,
as an operator would reboot by hand. Expected values come from the simhost build results: verities,
manifest digests, and the verity a reference host booted into image 3 has.
"""

import hashlib
import json
import os
import pathlib
import subprocess
import sys
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
TOOLS = ROOT / "tests" / "tools"
DOUBLE = TOOLS / "bootc_double.py"
BIN = pathlib.Path(sys.executable).parent
if str(TOOLS) not in sys.path:
    sys.path.insert(0, str(TOOLS))

import simhost  # noqa: E402  pylint: disable=wrong-import-position

BASE = {"variant": "bls-systemd", "deployments": [
    {"role": "booted", "version": "2", "kernel_version": "6.12.2-sim"},
    {"role": "rollback", "version": "1", "kernel_version": "6.12.1-sim"},
]}
PLAY = """\
- name: Upgrade the simulated host
  hosts: all
  gather_facts: false
  roles:
    - role: bootc.composefs.upgrade
"""


def tree_digest(root):
    """sha256 over every path, type, mode, link target and file content below ``root``.

    The role's own state directory (``var/lib/bootc-composefs``, created by the first run to hold
    the lock) counts only by its files: an empty one, and the parents made for it, are no change.
    """
    skipped = set()
    for path in ("var/lib/bootc-composefs", "var/lib", "var"):
        full = os.path.join(root, path)
        if os.path.isdir(full) and not set(os.listdir(full)) - {os.path.basename(p) for p in skipped}:
            skipped.add(path)
    digest = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            path = os.path.join(dirpath, name)
            if os.path.relpath(path, root) in skipped:
                continue
            digest.update(("%s %o\n" % (os.path.relpath(path, root), os.lstat(path).st_mode)).encode())
            if os.path.islink(path):
                digest.update(os.readlink(path).encode())
            elif os.path.isfile(path):
                digest.update(pathlib.Path(path).read_bytes())
    return digest.hexdigest()


class Host:
    """A simulated host, the OCI layout next to it, and helpers to run the role and the double on it."""

    def __init__(self, workdir, reference_verity):
        self.workdir = workdir
        self.root = workdir / "host"
        self.oci = workdir / "oci"
        self.built = simhost.build_host(self.root, dict(BASE, oci_dir=str(self.oci), pending_versions=["3"]))
        self.target_digest = self.built["pending_images"][0]["manifest_digest"]
        self.target_image = "%s:%s" % (self.oci, self.built["pending_images"][0]["layout_tag"])
        self.target_verity = reference_verity
        self.versions = {d["version"]: d for d in self.built["deployments"]}
        self.state_file = self.root / "var" / "lib" / "bootc-composefs" / "upgrade-state.json"
        self.lock = self.root / "var" / "lib" / "bootc-composefs" / "upgrade.lock"

    def run(self, check=False, **variables):
        """ansible-playbook with the role; returns (exit code, output, recap counters of the host)."""
        values = {
            "ansible_connection": "local",
            "ansible_python_interpreter": sys.executable,
            "composefs_upgrade_root": str(self.root),
            "composefs_upgrade_image": self.target_image,
            "composefs_upgrade_transport": "oci",
            "composefs_upgrade_bootc_command": ["python3", str(DOUBLE), "--root", str(self.root)],
            "composefs_upgrade_pull_poll": 1,
        }
        values.update(variables)
        inventory = self.workdir / "inventory.json"
        inventory.write_text(json.dumps({"all": {"hosts": {"simhost": values}}}))
        playbook = self.workdir / "play.yml"
        playbook.write_text(PLAY)
        env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0",
                   ANSIBLE_COLLECTIONS_PATH=str(ROOT / ".ci" / "tmp" / "collections"))
        argv = [str(BIN / "ansible-playbook"), "-i", str(inventory), str(playbook)] + (["--check"] if check else [])
        proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, check=False)
        recap = [line for line in proc.stdout.splitlines() if line.startswith("simhost ")]
        counters = dict(item.split("=") for item in recap[-1].split(":", 1)[1].split()) if recap else {}
        return proc.returncode, proc.stdout, {k: int(v) for k, v in counters.items()}

    def double(self, *args):
        proc = subprocess.run([sys.executable, str(DOUBLE), "--root", str(self.root)] + list(args),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, check=False)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    def status(self):
        return json.loads(self.double("status", "--json"))["status"]

    def state(self):
        return json.loads(self.state_file.read_text())


@pytest.fixture(scope="module", name="reference_verity")
def fixture_reference_verity(tmp_path_factory):
    """The deployment verity of image 3 (same kernel as the booted 2, as simhost's pending images have)."""
    root = tmp_path_factory.mktemp("reference") / "host"
    built = simhost.build_host(root, {"variant": "bls-systemd", "deployments": [
        {"role": "booted", "version": "3", "kernel_version": "6.12.2-sim"}]})
    return built["deployments"][0]["verity"]


@pytest.fixture(name="host")
def fixture_host(tmp_path, reference_verity):
    link = ROOT / ".ci" / "tmp" / "collections" / "ansible_collections" / "bootc" / "composefs"
    if not os.path.lexists(link):
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(ROOT)
    return Host(tmp_path, reference_verity)


def verity(entry):
    return entry["composefs"]["verity"] if entry else None


def test_unset_reboot_policy_fails_before_changing_anything(host):
    before = tree_digest(host.root)
    code, output, recap = host.run()
    assert code == 2 and recap["failed"] == 1
    assert "Reboot required to upgrade to %s (%s)" % (host.target_image, host.target_digest) in output
    assert "Set composefs_upgrade_reboot" in output
    assert tree_digest(host.root) == before


def test_stage_without_reboot_then_verify_after_the_operator_reboots(host):
    code, output, recap = host.run(composefs_upgrade_reboot=False)
    assert code == 0 and recap["changed"] > 0, output
    status = host.status()
    assert verity(status["staged"]) == host.target_verity
    assert status["staged"]["image"]["imageDigest"] == host.target_digest
    assert host.state()["last"]["phase"] == "staged" and not host.lock.exists()
    assert "REBOOT PENDING" in output

    code, output, recap = host.run(composefs_upgrade_reboot=False)
    assert code == 0 and recap["changed"] == 0, output
    assert "reboot: the staged deployment runs the target" in output

    host.double("reboot")
    code, output, recap = host.run(composefs_upgrade_reboot=False, composefs_upgrade_health_check_command="true")
    assert code == 0 and "verify: booted into the deployment an earlier run staged" in output
    assert host.state()["last"]["phase"] == "verified"
    assert verity(host.status()["booted"]) == host.target_verity

    before = tree_digest(host.root)
    code, output, recap = host.run(composefs_upgrade_reboot=False)
    assert code == 0 and recap["changed"] == 0 and "none: the booted deployment runs the target" in output
    assert tree_digest(host.root) == before


def test_failed_health_check_after_a_manual_reboot_queues_the_rollback_and_refuses_the_target(host):
    assert host.run(composefs_upgrade_reboot=False)[0] == 0
    host.double("reboot")
    code, output, recap = host.run(composefs_upgrade_reboot=False, composefs_upgrade_health_check_command=["false"],
                                   composefs_upgrade_health_check_retries=1, composefs_upgrade_health_check_delay=0)
    assert code == 2 and recap["failed"] == 1 and recap["rescued"] == 1, output
    assert "The rollback is queued; reboot the host to complete it." in output
    state = host.state()
    assert state["last"]["phase"] == "rollback-queued"
    assert [t["manifest_digest"] for t in state["failed_targets"]] == [host.target_digest]
    status = host.status()
    assert status["rollbackQueued"] and verity(status["booted"]) == host.target_verity
    assert not host.lock.exists()

    host.double("reboot")
    assert verity(host.status()["booted"]) == host.versions["2"]["verity"]
    before = tree_digest(host.root)
    code, output, recap = host.run(composefs_upgrade_reboot=True)
    assert code == 2 and recap["changed"] == 0
    assert "the target failed on this host before and was rolled back" in output
    assert tree_digest(host.root) == before


def test_an_operator_rollback_is_left_alone_unless_forced(host):
    rollback_image = "%s:simos-1" % host.oci
    before = tree_digest(host.root)
    code, output, recap = host.run(composefs_upgrade_image=rollback_image, composefs_upgrade_reboot=True)
    assert code == 0 and recap["changed"] == 0
    assert "skip: the target is the rollback deployment: the host was rolled back away from it on purpose" in output
    assert tree_digest(host.root) == before

    code, output, recap = host.run(composefs_upgrade_image=rollback_image, composefs_upgrade_reboot=False,
                                   composefs_upgrade_force=True)
    assert code == 0 and recap["changed"] > 0, output
    assert "rollback: the target is the rollback deployment (forced)" in output
    status = host.status()
    assert status["rollbackQueued"] and verity(status["rollback"]) == host.versions["1"]["verity"]


def test_a_queued_rollback_blocks_an_upgrade(host):
    host.double("rollback")
    before = tree_digest(host.root)
    code, output, recap = host.run(composefs_upgrade_reboot=True)
    assert code == 0 and recap["changed"] == 0
    assert "skip: a rollback is queued" in output
    assert tree_digest(host.root) == before


def test_check_mode_predicts_and_writes_nothing(host):
    before = tree_digest(host.root)
    code, output, recap = host.run(check=True, composefs_upgrade_reboot=False)
    assert code == 0 and recap["changed"] >= 2, output
    assert "check mode: would run python3 %s --root %s switch --transport oci %s" % (DOUBLE, host.root, host.target_image) in output
    assert tree_digest(host.root) == before


def test_lock_held_by_another_run_and_stale_lock(host):
    host.lock.mkdir(parents=True)
    (host.lock / "owner.json").write_text(json.dumps({"acquired_epoch": int(time.time()), "play": "other run"}))
    code, output, recap = host.run(composefs_upgrade_reboot=False)
    assert code == 2 and recap["failed"] == 1
    assert "is held by another upgrade run" in output and "other run" in output
    assert host.status()["staged"] is None and host.lock.exists()

    (host.lock / "owner.json").write_text(json.dumps({"acquired_epoch": int(time.time()) - 7200, "play": "dead run"}))
    code, output, recap = host.run(composefs_upgrade_reboot=False, composefs_upgrade_lock_stale_seconds=3600)
    assert code == 0, output
    assert "breaking the stale lock" in output
    assert verity(host.status()["staged"]) == host.target_verity and not host.lock.exists()
