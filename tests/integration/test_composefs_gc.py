# -*- coding: utf-8 -*-
# Copyright: (c) 2026, bootc.composefs maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""composefs_gc run the way operators run it: ``ansible all -m bootc.composefs.composefs_gc --check --diff``, then
for real, and from a playbook, on simulated hosts (tests/tools/simhost) built fresh for each test.

Expected values come from what simhost built (its result: verities, digests, stale tags, paths), from
the object sets of two builds that differ only by what the test is about, and from oracles:
``composefs-info missing-objects`` (a boot image is complete), ``fsverity digest`` (surviving objects
are intact), ``find``-style walks and readlink (what is on disk). Never from a first run of our code.
"""

import json
import os
import re
import shutil
import subprocess
import tempfile

import pytest

from ansible_collections.bootc.composefs.tests.conftest import run_tool
from ansible_collections.bootc.composefs.tests.unit.builders import repo_builder as rb

MODULE = "bootc.composefs.composefs_gc"
VARIANTS = ("bls-grub", "bls-systemd", "uki-systemd", "uki-grub")
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VENV_BIN = os.path.join(REPO_ROOT, ".venv", "bin")
ORACLE = os.path.join(REPO_ROOT, "tests", "setup", "composefs-oracle")


# --- building hosts and oracles ------------------------------------------------------------------------


def build(simhost, root, preset="three-deployments", variant=None, stale=0, app=False, damages=()):
    spec = simhost.preset_spec(preset, variant)
    spec.stale_bootc_tags = stale
    if app:
        spec.app_images = (simhost.AppImageSpec(tag="quay.io/example/app:1", payload_bytes=8192),)
    if damages:
        spec.damages = tuple(simhost.DamageSpec(kind) for kind in damages)
    return simhost.build_host(str(root), simhost.load_spec(spec))


def objects_on_disk(repository) -> dict:
    """``{object id: size}``: every file below ``objects/<xx>/`` (what ``find objects -type f`` lists)."""
    found = {}
    base = os.path.join(repository, "objects")
    for sub in os.listdir(base):
        for name in os.listdir(os.path.join(base, sub)):
            found[sub + name] = os.lstat(os.path.join(base, sub, name)).st_size
    return found


def named_objects(repository) -> set:
    """Objects a first-level ``images/`` or ``streams/`` entry names (readlink)."""
    found = set()
    for category in ("images", "streams"):
        base = os.path.join(repository, category)
        for name in os.listdir(base):
            if name != "refs":
                text = os.readlink(os.path.join(base, name))
                found.add(text.split("/")[-2] + text.split("/")[-1])
    return found


def boot_image_complete(built, deployment) -> bool:
    """composefs-info: no object the deployment's boot image names is missing."""
    out = run_tool([ORACLE, "composefs-info", "--basedir=%s" % os.path.join(built["paths"]["repository"], "objects"),
                    "missing-objects", deployment["boot_image_path"]]).stdout.decode()
    return out.strip() == ""


def assert_deployments_complete(built):
    """Every live deployment: boot image present and complete, state dir, origin and boot binary present."""
    for deployment in built["deployments"]:
        assert os.path.isfile(deployment["boot_image_path"]), deployment["role"]
        assert boot_image_complete(built, deployment), deployment["role"]
        assert os.path.isfile(deployment["origin_path"]), deployment["role"]
        assert os.path.exists(deployment["boot_artifact_path"]), deployment["role"]
    tags = os.listdir(os.path.join(built["paths"]["repository"], "streams", "refs", "oci"))
    for deployment in built["deployments"]:
        assert deployment["bootc_tag"].replace("/", "%2F") in tags


def assert_intact(built, object_ids):
    base = os.path.join(built["paths"]["repository"], "objects")
    for object_id in object_ids:
        path = os.path.join(base, object_id[:2], object_id[2:])
        assert rb.fsverity_digest("fsverity", path, "sha512") == object_id


def splitstream_content_type(repository, object_id) -> bytes:
    """The ASCII content type of a splitstream object (header 32 bytes, info at its offset, type at +64)."""
    with open(os.path.join(repository, "objects", object_id[:2], object_id[2:]), "rb") as handle:
        data = handle.read()
    assert data[:11] == b"SplitStream"
    info = int.from_bytes(data[16:24], "little")
    return data[info + 64:info + 72]


def gc(ansible_adhoc, built, check=False, **args):
    outcome = ansible_adhoc(MODULE, dict(args, root=built["root"]), check=check)
    assert outcome.rc == 0, outcome
    return outcome.result


# --- the acceptance test ---------------------------------------------------------------------


def test_three_deployments_two_stale_tags_and_an_app(simhost, ansible_adhoc, tree_digest, tmp_path):
    """Exactly the stale tags' unique objects go; the app image and every live deployment stay intact.

    Oracle: the same host built without the stale tags holds exactly the objects the stale tags do not
    add, so the stale tags' unique objects are the difference of the two builds.
    """
    built = build(simhost, tmp_path / "stale", stale=2, app=True)
    clean = build(simhost, tmp_path / "clean", stale=0, app=True)
    repository = built["paths"]["repository"]
    with_stale, without = objects_on_disk(repository), objects_on_disk(clean["paths"]["repository"])
    assert set(without) <= set(with_stale)
    stale_unique = set(with_stale) - set(without)
    assert stale_unique

    digest = tree_digest(built["root"])
    checked = gc(ansible_adhoc, built, check=True, list_objects=True)
    assert tree_digest(built["root"]) == digest
    assert checked["changed"] is True
    assert sorted(t["tag"] for t in checked["tags_removed"]) == sorted(t["tag"] for t in built["stale_bootc_tags"])
    assert checked["tags_created"] == [] and checked["boot_binaries"] == [] and checked["state_dirs"] == []

    removed = set(checked["removed_objects"])
    assert stale_unique <= removed
    # What else goes is what a GC takes from the clean host too: splitstreams superseded when bootc
    # generated the boot images (no entry names them; they are config and manifest streams).
    leftovers = removed - stale_unique
    assert not leftovers & named_objects(repository)
    for object_id in leftovers:
        assert splitstream_content_type(repository, object_id) in (b"ociconfg", b"ocimanif")
    clean_checked = gc(ansible_adhoc, clean, check=True, list_objects=True)
    assert set(clean_checked["removed_objects"]) == leftovers

    done = gc(ansible_adhoc, built, list_objects=True)
    assert set(done["removed_objects"]) == removed and done["objects_bytes"] == checked["objects_bytes"]
    assert done["objects_bytes"] == sum(with_stale[i] for i in removed)
    assert set(objects_on_disk(repository)) == set(with_stale) - removed

    assert_deployments_complete(built)
    assert_intact(built, set(objects_on_disk(repository)))
    tags = set(os.listdir(os.path.join(repository, "streams", "refs", "oci")))
    assert "quay.io%2Fexample%2Fapp:1" in tags
    assert not {t["tag"].replace("/", "%2F") for t in built["stale_bootc_tags"]} & tags
    status = ansible_adhoc("bootc.composefs.composefs_status", {"root": built["root"]}).result
    bad = [f for f in status["findings"] if f["code"].startswith("missing-") or f["code"] in
           ("dangling-ref", "unreferenced-bootc-tag", "untagged-live-manifest")]
    assert bad == []
    assert gc(ansible_adhoc, built)["changed"] is False


# --- every variant: check, run, idempotent --------------------------------------------------------------


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_variant(simhost, ansible_adhoc, tree_digest, tmp_path, variant):
    damages = ["orphan-state-dir"] + (["orphan-addon-dir"] if variant.startswith("uki") else [])
    built = build(simhost, tmp_path / "host", variant=variant, stale=1, damages=damages)
    orphan = [d for d in built["damages"] if d["kind"] == "orphan-state-dir"][0]
    digest = tree_digest(built["root"])
    checked = gc(ansible_adhoc, built, check=True)
    assert tree_digest(built["root"]) == digest and checked["changed"] is True
    removed_dirs = [s["path"] for s in checked["state_dirs"]]
    assert [p for p in orphan["paths"] if "/state/deploy/" in p][0] in removed_dirs
    done = gc(ansible_adhoc, built)
    for key in ("tags_removed", "boot_binaries", "state_dirs", "objects_removed", "objects_bytes"):
        assert done[key] == checked[key], key
    for item in done["state_dirs"] + done["boot_binaries"]:
        assert not os.path.lexists(item["path"])
    assert_deployments_complete(built)
    again = gc(ansible_adhoc, built)
    assert again["changed"] is False


# --- refusal, lock, fleet ------------------------------------------------------------------------------


def test_damaged_host_is_refused_and_left_untouched(simhost, ansible_adhoc, tree_digest, tmp_path):
    built = build(simhost, tmp_path / "host", preset="damaged")
    origin = [d for d in built["damages"] if d["kind"] == "unreadable-origin"][0]["paths"][0]
    digest = tree_digest(built["root"])
    for check in (True, False):
        outcome = ansible_adhoc(MODULE, {"root": built["root"]}, check=check)
        assert outcome.rc != 0 and outcome.status == "FAILED"
        assert origin in outcome.result["msg"] and "Traceback" not in outcome.result["msg"]
    assert tree_digest(built["root"]) == digest


def test_a_reader_holding_the_lock_delays_deletion_and_a_rerun_finishes(simhost, ansible_adhoc, tmp_path):
    """Objects are only deleted under LOCK_EX; a holder of LOCK_SH (a pull, cfsctl transaction) blocks it."""
    built = build(simhost, tmp_path / "host", stale=2, app=True)
    reference_root = tmp_path / "reference"
    shutil.copytree(built["root"], str(reference_root), symlinks=True)
    repository = built["paths"]["repository"]
    before = objects_on_disk(repository)
    holder = rb.hold_lock_process(repository, "SH")
    try:
        outcome = ansible_adhoc(MODULE, {"root": built["root"], "lock_timeout": 1})
    finally:
        holder.stdin.close()
        holder.wait()
    assert outcome.rc != 0 and "lock" in outcome.result["msg"]
    assert objects_on_disk(repository) == before
    done = gc(ansible_adhoc, built, list_objects=True)
    reference = gc(ansible_adhoc, {"root": str(reference_root)}, list_objects=True)
    assert set(objects_on_disk(repository)) == set(before) - set(reference["removed_objects"])
    assert_deployments_complete(built)
    assert done["changed"] is True


def test_fleet_check_diff_then_run(simhost, tmp_path):
    """``ansible all -m bootc.composefs.composefs_gc --check --diff`` over an inventory of hosts."""
    hosts = {name: build(simhost, tmp_path / name, variant=variant, stale=1)
             for name, variant in (("node1", "bls-grub"), ("node2", "uki-systemd"))}
    inventory = tmp_path / "inventory.ini"
    inventory.write_text("[bootc]\n" + "".join(
        "%s ansible_connection=local ansible_python_interpreter=%s gc_root=%s\n"
        % (name, os.path.join(VENV_BIN, "python"), built["root"]) for name, built in hosts.items()))
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=os.path.join(REPO_ROOT, ".ci", "tmp", "collections"),
               ANSIBLE_NOCOLOR="1")

    def run_all(*extra):
        proc = subprocess.run([os.path.join(VENV_BIN, "ansible"), "all", "-i", str(inventory), "-m", MODULE,
                               "-a", "root={{ gc_root }}"] + list(extra), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              env=env, text=True, check=False, cwd=REPO_ROOT)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return _per_host(proc.stdout)

    checked = run_all("--check", "--diff")
    done = run_all()
    for name, built in hosts.items():
        assert checked[name]["changed"] is True
        stale = built["stale_bootc_tags"][0]["tag"]
        assert stale in {t["tag"] for t in checked[name]["tags_removed"]}
        assert done[name]["tags_removed"] == checked[name]["tags_removed"]
        assert done[name]["objects_removed"] == checked[name]["objects_removed"] > 0
        assert_deployments_complete(built)
    assert all(item["changed"] is False for item in run_all().values())


HOST_LINE = re.compile(r"^(\S+) \| (\w+)!? => \{", re.MULTILINE)


def _per_host(stdout):
    """``{host: result}`` from the minimal callback's ``host | STATUS => {json}`` blocks (diffs come before them)."""
    results = {}
    decoder = json.JSONDecoder()
    for match in HOST_LINE.finditer(stdout):
        results[match.group(1)], _end = decoder.raw_decode(stdout, match.end() - 1)
    return results


PLAYBOOK = """
- name: Reclaim composefs space
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Plan
      bootc.composefs.composefs_gc:
        root: "{{ gc_root }}"
      check_mode: true
      register: plan
    - name: Collect
      bootc.composefs.composefs_gc:
        root: "{{ gc_root }}"
      register: collected
    - name: The run did what the plan said
      ansible.builtin.assert:
        that:
          - plan is changed
          - collected is changed
          - collected.objects_removed == plan.objects_removed
          - collected.objects_bytes == plan.objects_bytes
          - collected.tags_removed == plan.tags_removed
    - name: Status afterwards
      bootc.composefs.composefs_status:
        root: "{{ gc_root }}"
      register: status
    - name: Nothing stale, nothing missing
      ansible.builtin.assert:
        that:
          - status.findings | selectattr('code', 'in', ['unreferenced-bootc-tag', 'missing-object', 'missing-stream',
            'missing-image']) | list | length == 0
"""


def test_playbook_plan_collect_status(simhost, ansible_playbook, tmp_path):
    built = build(simhost, tmp_path / "host", preset="demo")
    with tempfile.NamedTemporaryFile("w", suffix=".yml", dir=str(tmp_path), delete=False) as handle:
        handle.write(PLAYBOOK)
    proc = ansible_playbook(handle.name, extra_vars={"gc_root": built["root"]})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "failed=0" in proc.stdout
    assert_deployments_complete(built)
