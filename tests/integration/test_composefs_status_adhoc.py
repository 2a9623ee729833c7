"""composefs_status run ad hoc (``ansible localhost -m bootc.composefs.composefs_status -a root=...``) on simulated hosts.

Expected values come from what simhost was asked to build (its result: roles, verities, digests,
paths, damages) and from oracles: ``fsverity digest`` for deployment verities, ``skopeo inspect``
of the OCI layout the images came from for manifest/config digests, creation time, architecture
and version, ``sha256sum``-style hashing of the kernel and initrd for boot digests.
"""

import hashlib
import json
import os
import shutil
import subprocess

import pytest

MODULE = "bootc.composefs.composefs_status"
VARIANTS = ("bls-grub", "bls-systemd", "uki-systemd", "uki-grub")
PRESETS = [("three-deployments", None)] + [(v, None) for v in VARIANTS] + [("demo", v) for v in VARIANTS] + [
    ("separate-boot", None), ("grub-password", None), ("foreign-entries", None)]
FACT_KEYS = ("host", "deployments", "repository", "tags", "findings")


def _status(ansible_adhoc, built, **args):
    outcome = ansible_adhoc(MODULE, dict(args, root=built["root"]))
    assert outcome.rc == 0 and outcome.status == "SUCCESS", outcome
    assert outcome.result["changed"] is False
    return outcome.result


def _expected_findings(built):
    """The findings a host built this way must show: stale bootc tags, foreign entries, damages."""
    expected = [("unreferenced-bootc-tag", None) for _tag in built["stale_bootc_tags"]]
    expected += [("foreign-entry", None) for _entry in built["foreign_entries"]]
    return sorted(expected)


@pytest.mark.parametrize("preset, variant", PRESETS, ids=["%s%s" % (p, "-" + v if v else "") for p, v in PRESETS])
def test_roles_and_metadata_match_the_built_host(ansible_adhoc, simulated_host, preset, variant):
    built = simulated_host(preset, variant)
    result = _status(ansible_adhoc, built)
    host = result["host"]
    assert (host["booted"], host["staged"], host["rollback"]) == (built["booted"], built["staged"], built["rollback"])
    assert (host["bootloader"], host["boot_type"]) == (built["bootloader"], built["boot_type"])
    by_verity = {d["verity"]: d for d in result["deployments"]}
    assert sorted(by_verity) == sorted(d["verity"] for d in built["deployments"])
    assert [d["role"] for d in result["deployments"]][:1] == ["booted"]
    for expected in built["deployments"]:
        item = by_verity[expected["verity"]]
        assert item["role"] == expected["role"]
        assert item["manifest_digest"] == expected["manifest_digest"]
        assert item["config_digest"] == expected["config_digest"]
        assert item["metadata_source"] == ("imginfo" if expected["legacy"] else "repository")
        assert item["boot_type"] == expected["boot_type"] == built["boot_type"]
        assert item["boot_digest"] == expected["boot_digest"]
        assert item["image"]["reference"] == expected["image_reference"]
        assert (item["image"]["transport"], item["image"]["image"]) == ("registry", "quay.io/example/simos:" + expected["version"])
        assert expected["boot_artifact_name"] in item["boot_artifacts"]
        assert item["state_dir"] == expected["state_dir"]
        assert item["warnings"] == []
    assert sorted((f["code"], None) for f in result["findings"]) == _expected_findings(built), result["findings"]
    tags = {t["name"]: t for t in result["tags"]}
    assert sorted(tags) == sorted(t["tag"] for t in built["tags"])
    live = {d["manifest_digest"] for d in built["deployments"]}
    for name, tag in tags.items():
        assert tag["owner"] == ("bootc" if name.startswith("localhost/bootc-") else "foreign")
        assert tag["live"] == (tag["manifest_digest"] in live)
    for key in FACT_KEYS:
        assert result["ansible_facts"]["composefs"][key] == result[key]


def _skopeo_json(*args):
    out = subprocess.run(["skopeo", "inspect"] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=True)
    return out.stdout


@pytest.mark.parametrize("preset, variant", [("three-deployments", None), ("demo", "uki-systemd")], ids=["bls-grub", "uki-systemd"])
def test_oracles_agree(ansible_adhoc, simulated_host, preset, variant):
    built = simulated_host(preset, variant, oci_dir=True)
    result = _status(ansible_adhoc, built)
    by_verity = {d["verity"]: d for d in result["deployments"]}
    for expected in built["deployments"]:
        item = by_verity[expected["verity"]]
        # the deployment id is the fs-verity digest of its boot EROFS image
        image = os.path.realpath(os.path.join(built["paths"]["repository"], "images", item["verity"]))
        out = subprocess.run(["fsverity", "digest", "--hash-alg=sha512", "--block-size=4096", image],
                             stdout=subprocess.PIPE, check=True, text=True).stdout
        assert out.split()[0] == "sha512:" + item["verity"]
        layout = "oci:%s:simos-%s" % (built["oci_dir"], expected["version"])
        inspected = json.loads(_skopeo_json(layout))
        raw_manifest = json.loads(_skopeo_json("--raw", layout))
        raw_config = _skopeo_json("--config", "--raw", layout)
        assert item["manifest_digest"] == inspected["Digest"]
        assert item["config_digest"] == "sha256:" + hashlib.sha256(raw_config).hexdigest()
        assert (item["created"], item["architecture"]) == (inspected["Created"], inspected["Architecture"])
        assert item["version"] == raw_manifest["annotations"]["org.opencontainers.image.version"]
        if built["boot_type"] == "bls":
            kernel_dir = expected["boot_artifact_path"]
            with open(os.path.join(kernel_dir, "vmlinuz"), "rb") as kernel, open(os.path.join(kernel_dir, "initrd"), "rb") as initrd:
                assert item["boot_digest"] == hashlib.sha256(kernel.read() + initrd.read()).hexdigest()


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_damage_is_a_finding(ansible_adhoc, simulated_host, variant):
    built = simulated_host("damaged", variant)
    result = _status(ansible_adhoc, built)
    found = {}
    for finding in result["findings"]:
        found.setdefault(finding["code"], []).append(finding["path"])
    assert built["damages"], "the damaged preset applies damages"
    for damage in built["damages"]:
        assert damage["finding"] in found, (damage, result["findings"])
        assert set(damage["paths"]) & set(found[damage["finding"]]), (damage, found[damage["finding"]])
    assert all(f["message"] for f in result["findings"])
    # roles survive the damage: the booted and rollback deployments are still identified
    assert (result["host"]["booted"], result["host"]["rollback"]) == (built["booted"], built["rollback"])


def test_check_mode_changes_nothing_and_reports_the_same(ansible_adhoc, simulated_host, tree_digest):
    built = simulated_host("damaged", "uki-systemd")
    before = tree_digest(built["root"])
    normal = _status(ansible_adhoc, built, usage=True)
    checked = ansible_adhoc(MODULE, {"root": built["root"], "usage": True}, check=True)
    assert checked.rc == 0 and checked.result["changed"] is False
    assert tree_digest(built["root"]) == before
    for key in FACT_KEYS:
        assert checked.result[key] == normal[key]


def test_usage_counts_match_the_tree(ansible_adhoc, simulated_host):
    built = simulated_host("demo")
    result = _status(ansible_adhoc, built, usage=True)
    objects = os.path.join(built["paths"]["repository"], "objects")
    files = [os.path.join(d, f) for d, _dirs, names in os.walk(objects) for f in names]
    usage = result["repository"]["usage"]
    assert usage["objects"] == len(files)
    assert usage["object_bytes"] == sum(os.lstat(f).st_size for f in files)
    assert usage["tags"] == len(built["tags"])
    assert result["repository"]["algorithm"] == "sha512" and result["repository"]["erofs_formats"] == [1]


def test_explicit_paths_inspect_a_host_elsewhere(ansible_adhoc, simulated_host, tmp_path):
    built = simulated_host("bls-systemd")
    cmdline = tmp_path / "cmdline"
    cmdline.write_text("root=UUID=1234 rw composefs=%s\n" % built["rollback"])
    outcome = ansible_adhoc(MODULE, {"root": str(tmp_path), "sysroot": built["paths"]["sysroot"],
                                     "boot_dir": built["paths"]["boot_dir"], "esp": built["paths"]["esp"],
                                     "run_dir": os.path.join(built["root"], "run"), "cmdline_file": str(cmdline),
                                     "bootloader": "systemd"})
    assert outcome.rc == 0, outcome
    assert outcome.result["host"]["booted"] == built["rollback"]
    assert outcome.result["host"]["bootloader_source"] == "override"


def test_not_a_composefs_host_fails_cleanly(ansible_adhoc, tmp_path):
    (tmp_path / "proc").mkdir()
    (tmp_path / "proc" / "cmdline").write_text("BOOT_IMAGE=/vmlinuz root=/dev/vda1 ro\n")
    outcome = ansible_adhoc(MODULE, {"root": str(tmp_path)})
    assert outcome.rc != 0 and outcome.status == "FAILED"
    assert "not a bootc composefs host" in outcome.result["msg"]
    assert "exception" not in outcome.result and "Traceback" not in outcome.result["msg"]


def test_missing_root_fails_cleanly(ansible_adhoc, tmp_path):
    outcome = ansible_adhoc(MODULE, {"root": str(tmp_path / "absent")})
    assert outcome.status == "FAILED" and "host root is not a directory" in outcome.result["msg"]
    assert "exception" not in outcome.result


def test_repository_removed_is_reported_not_fatal(ansible_adhoc, simulated_host, tmp_path):
    built = simulated_host("three-deployments")
    copy = tmp_path / "host"
    shutil.copytree(built["root"], str(copy), symlinks=True)
    shutil.rmtree(copy / "sysroot" / "composefs")
    outcome = ansible_adhoc(MODULE, {"root": str(copy)})
    assert outcome.rc == 0
    codes = sorted(f["code"] for f in outcome.result["findings"])
    assert codes == ["missing-repository", "unresolved-image", "unresolved-image", "unresolved-image"]
    assert outcome.result["host"]["booted"] == built["booted"]
