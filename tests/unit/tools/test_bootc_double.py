# -*- coding: utf-8 -*-
"""tests/tools/bootc_double.py: the bootc test double writes what bootc writes.

Expected values come from elsewhere than the double: the simulated-host builder's own staged
deployment (``simhost`` preset ``bls-systemd`` stages version 3 on top of booted 2 and rollback 1,
built independently of the double), ocigen's image digests and kernel bytes, ``skopeo inspect``,
``configparser`` for origins, and the file names, sort keys and marker texts of spec
bootc-composefs-host.md §1.6-§1.7 written out here by hand. The collection's ``load_host`` reads
the results back, as the roles' modules do.
"""

import configparser
import hashlib
import json
import os
import pathlib
import shutil
import subprocess
import sys

import pytest

from ansible_collections.bootc.composefs.plugins.module_utils.host.deployments import load_host
from ansible_collections.bootc.composefs.plugins.module_utils.host.paths import load_host_paths
from ansible_collections.bootc.composefs.plugins.module_utils.oci import importer
from ansible_collections.bootc.composefs.plugins.module_utils.repository.repo import Repository

REPO_ROOT = pathlib.Path(__file__).resolve().parents[3]
TOOLS = REPO_ROOT / "tests" / "tools"
if str(TOOLS) not in sys.path:
    sys.path.insert(0, str(TOOLS))

import bootc_double  # noqa: E402  pylint: disable=wrong-import-position
import ocigen  # noqa: E402  pylint: disable=wrong-import-position
import simhost  # noqa: E402  pylint: disable=wrong-import-position

SYSTEMD_KARGS = "rw console=ttyS0"
GRUB_KARGS = "root=UUID=6b2f0b2e-5d6e-4c1a-9f3e-3d7c2a1b0c9d rw console=ttyS0"
TWO_DEPLOYMENTS = {"variant": "bls-systemd", "deployments": [
    {"role": "booted", "version": "2", "kernel_version": "6.12.2-sim"},
    {"role": "rollback", "version": "1", "kernel_version": "6.12.1-sim"},
]}


def tree_digest(root):
    """sha256 over every path, type, mode, link target and file content below ``root``."""
    digest = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            digest.update(("%s %o\n" % (os.path.relpath(path, root), st.st_mode)).encode())
            if os.path.islink(path):
                digest.update(os.readlink(path).encode())
            elif os.path.isfile(path):
                digest.update(pathlib.Path(path).read_bytes())
    return digest.hexdigest()


def skopeo_digest(reference):
    """The manifest digest skopeo reports for ``reference`` (oracle)."""
    proc = subprocess.run(["skopeo", "inspect", reference], stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)
    assert proc.returncode == 0, proc.stderr.decode()
    return json.loads(proc.stdout)["Digest"]


def read_origin(path):
    parser = configparser.ConfigParser()
    parser.read_string(pathlib.Path(path).read_text())
    return parser


def host_state(root):
    return load_host(load_host_paths(root))


def double(root, *args):
    """Run the double's command line in-process; returns its exit code."""
    return bootc_double.main(["--root", str(root)] + list(args))


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """simhost's own bls-systemd host: booted 2, rollback 1 and version 3 staged by the builder."""
    root = tmp_path_factory.mktemp("reference") / "host"
    return simhost.build_host(root, simhost.preset_spec("bls-systemd"))


@pytest.fixture(name="target")
def fixture_target(tmp_path):
    """An OCI layout holding simos version 3 (kernel 6.12.3-sim), as the staged image of the reference."""
    layout = tmp_path / "oci"
    written = ocigen.write_bootc_image(str(layout), version="3", name="simos", tag="simos-3", kernel_version="6.12.3-sim")
    written["reference"] = "%s:simos-3" % layout
    return written


@pytest.fixture(name="host")
def fixture_host(tmp_path, target):
    """Booted 2, rollback 1, and the target imported into the repository (as composefs_pull leaves it)."""
    root = tmp_path / "host"
    built = simhost.build_host(root, TWO_DEPLOYMENTS)
    with Repository.open(str(root / "sysroot" / "composefs"), writable=True) as repo:
        importer.import_oci_layout(repo, str(tmp_path / "oci"), ref="simos-3")
    built["root_path"] = root
    return built


def entries_dir(root, staged=False):
    return pathlib.Path(root) / "boot" / "efi" / "loader" / ("entries.staged" if staged else "entries")


def by_version(built):
    return {d["version"]: d for d in built["deployments"]}


def by_role(built, role):
    return next(d for d in built["deployments"] if d["role"] == role)


def test_switch_stages_like_bootc(host, target, reference):
    root = host["root_path"]
    assert skopeo_digest("oci:" + target["reference"]) == target["manifest_digest"]
    assert double(root, "switch", "--transport", "oci", target["reference"]) == 0

    expected = by_version(reference)
    new_verity = expected["3"]["verity"]
    state = host_state(str(root))
    assert state.staged is not None and state.staged.verity == new_verity
    assert state.booted_verity == host["booted"] and state.rollback.verity == host["rollback"]

    # spec §1.7: new primary bootc_<os>-<ver>-1.conf / bootc-<os>-0, booted copy as secondary -0.conf / bootc-<os>-1
    staged = entries_dir(root, staged=True)
    assert sorted(os.listdir(staged)) == ["bootc_simos-2-0.conf", "bootc_simos-3-1.conf"]
    reference_staged = entries_dir(reference["root"], staged=True)
    for name in os.listdir(staged):
        assert (staged / name).read_bytes() == (reference_staged / name).read_bytes(), name
    primary = (staged / "bootc_simos-3-1.conf").read_text()
    assert "sort-key bootc-simos-0\n" in primary
    assert "options %s composefs=?%s\n" % (SYSTEMD_KARGS, new_verity) in primary
    assert "sort-key bootc-simos-1\n" in (staged / "bootc_simos-2-0.conf").read_text()
    # the configured entries are untouched until finalize
    assert sorted(os.listdir(entries_dir(root))) == ["bootc_simos-1-0.conf", "bootc_simos-2-1.conf"]

    # spec §1.6: canonical JSON marker
    marker = root / "run" / "composefs" / "staged-deployment"
    assert marker.read_text() == '{"depl_id":"%s","finalization_locked":false}' % new_verity

    # spec §1.3-§1.4: state dir = etc/ from the image, var link, origin with manifest_digest and boot digest
    state_dir = root / "sysroot" / "state" / "deploy" / new_verity
    assert os.readlink(state_dir / "var") == "../../os/default/var"
    assert tree_digest(state_dir / "etc") == tree_digest(pathlib.Path(expected["3"]["state_dir"]) / "etc")
    origin = read_origin(state_dir / (new_verity + ".origin"))
    vmlinuz, initrd = ocigen.default_kernel("6.12.3-sim")
    assert origin["origin"]["container-image-reference"] == "ostree-unverified-image:oci:" + target["reference"]
    assert origin["boot"]["boot_type"] == "bls"
    assert origin["boot"]["digest"] == hashlib.sha256(vmlinuz + initrd).hexdigest()
    assert origin["image"]["manifest_digest"] == target["manifest_digest"]

    # boot binaries: a new kernel dir, and the bootc tag of the new manifest
    kernel_dir = root / "boot" / "efi" / "EFI" / "Linux" / ("bootc_composefs-" + new_verity)
    assert (kernel_dir / "vmlinuz").read_bytes() == vmlinuz
    assert (kernel_dir / "initrd").read_bytes() == initrd
    tag_file = root / "sysroot" / "composefs" / "streams" / "refs" / "oci" / ("localhost%2Fbootc-" + target["manifest_digest"])
    assert os.readlink(tag_file) == "../../oci-manifest-" + target["manifest_digest"]


def test_switch_shares_an_identical_kernel_dir(tmp_path):
    root = tmp_path / "host"
    built = simhost.build_host(root, TWO_DEPLOYMENTS)
    layout = tmp_path / "oci"
    ocigen.write_bootc_image(str(layout), version="3", name="simos", tag="simos-3", kernel_version="6.12.2-sim")
    with Repository.open(str(root / "sysroot" / "composefs"), writable=True) as repo:
        importer.import_oci_layout(repo, str(layout), ref="simos-3")
    linux_dir = root / "boot" / "efi" / "EFI" / "Linux"
    before = sorted(os.listdir(linux_dir))
    assert double(root, "switch", "--transport", "oci", "%s:simos-3" % layout) == 0
    assert sorted(os.listdir(linux_dir)) == before
    primary = (entries_dir(root, staged=True) / "bootc_simos-3-1.conf").read_text()
    assert "linux /EFI/Linux/bootc_composefs-%s/vmlinuz\n" % built["booted"] in primary


def test_reboot_finalizes_the_staged_deployment(host, target, reference):
    root = host["root_path"]
    assert double(root, "switch", "--transport", "oci", target["reference"]) == 0
    assert double(root, "boot-id") == 0
    boot_id_file = root / "proc" / "sys" / "kernel" / "random" / "boot_id"
    first_boot = boot_id_file.read_text()
    assert double(root, "reboot") == 0

    new_verity = by_version(reference)["3"]["verity"]
    state = host_state(str(root))
    assert state.booted_verity == new_verity
    assert state.rollback.verity == host["booted"]
    assert state.staged is None and state.staged_deployment is None
    assert not (root / "run" / "composefs").exists()
    assert sorted(os.listdir(entries_dir(root))) == ["bootc_simos-2-0.conf", "bootc_simos-3-1.conf"]
    assert not entries_dir(root, staged=True).exists()
    assert (root / "proc" / "cmdline").read_text() == "%s composefs=?%s\n" % (SYSTEMD_KARGS, new_verity)
    assert "composefs:%s " % new_verity in (root / "proc" / "self" / "mountinfo").read_text()
    assert boot_id_file.read_text() != first_boot
    # finalize's boot-binaries GC: version 1 lost its entry, so its unshared kernel dir goes
    linux_dir = root / "boot" / "efi" / "EFI" / "Linux"
    assert sorted(os.listdir(linux_dir)) == sorted("bootc_composefs-" + v for v in (host["booted"], new_verity))


def test_reboot_on_grub_passes_boot_image_first(tmp_path):
    """GRUB's blscfg puts BOOT_IMAGE=(hd0,<boot partition>)<linux> before the entry's options (spec §1.7)."""
    root = tmp_path / "host"
    built = simhost.build_host(root, simhost.preset_spec("bls-grub"))
    staged = by_role(built, "staged")
    assert double(root, "reboot") == 0
    assert host_state(str(root)).booted_verity == staged["verity"]
    assert (root / "proc" / "cmdline").read_text() == "BOOT_IMAGE=(hd0,gpt3)/boot/bootc_composefs-%s/vmlinuz %s composefs=?%s\n" % (
        staged["boot_artifact_name"], GRUB_KARGS, staged["verity"])


def test_rollback_swaps_entries_and_reboot_boots_the_previous_deployment(host, target, reference):
    root = host["root_path"]
    assert double(root, "switch", "--transport", "oci", target["reference"]) == 0
    assert double(root, "reboot") == 0
    new_verity = by_version(reference)["3"]["verity"]
    assert double(root, "rollback") == 0

    # spec §1.7: after bootc rollback the entries carry "bootc" as OS id; the old secondary is primary
    entries = entries_dir(root)
    assert sorted(os.listdir(entries)) == ["bootc_bootc-2-1.conf", "bootc_bootc-3-0.conf"]
    assert "sort-key bootc-bootc-0\n" in (entries / "bootc_bootc-2-1.conf").read_text()
    assert "composefs=?%s\n" % host["booted"] in (entries / "bootc_bootc-2-1.conf").read_text()
    assert "sort-key bootc-bootc-1\n" in (entries / "bootc_bootc-3-0.conf").read_text()
    state = host_state(str(root))
    assert state.booted_verity == new_verity and state.rollback_queued

    assert double(root, "reboot") == 0
    state = host_state(str(root))
    assert state.booted_verity == host["booted"]
    assert state.rollback.verity == new_verity
    assert not state.rollback_queued


def test_rollback_drops_a_staged_deployment(tmp_path):
    root = tmp_path / "host"
    built = simhost.build_host(root, simhost.preset_spec("bls-systemd"))
    assert double(root, "rollback") == 0
    state = host_state(str(root))
    assert state.staged is None and state.staged_deployment is None
    assert not entries_dir(root, staged=True).exists()
    assert state.menu_order[0].verity == built["rollback"]
    assert state.rollback_queued


def test_status_json_names_the_deployments(host):
    root = host["root_path"]
    proc = subprocess.run([sys.executable, str(TOOLS / "bootc_double.py"), "--root", str(root), "status", "--json"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)
    assert proc.returncode == 0, proc.stderr.decode()
    document = json.loads(proc.stdout)
    versions = by_version(host)
    assert document["apiVersion"] == "org.containers.bootc/v1" and document["kind"] == "BootcHost"
    assert document["status"]["booted"]["composefs"]["verity"] == host["booted"]
    assert document["status"]["booted"]["image"]["imageDigest"] == versions["2"]["manifest_digest"]
    assert document["status"]["rollback"]["composefs"]["verity"] == host["rollback"]
    assert document["status"]["staged"] is None
    assert document["spec"]["image"] == {"image": "quay.io/example/simos:2", "transport": "registry"}
    assert document["spec"]["bootOrder"] == "default" and document["status"]["rollbackQueued"] is False


def test_upgrade_of_a_deployed_image_changes_nothing(tmp_path):
    root = tmp_path / "host"
    spec = dict(TWO_DEPLOYMENTS, oci_dir=str(tmp_path / "oci"))
    spec["deployments"] = [dict(d, transport="oci") for d in spec["deployments"]]
    simhost.build_host(root, spec)
    before = tree_digest(root)
    assert double(root, "upgrade") == 0
    assert tree_digest(root) == before


@pytest.mark.parametrize("case", ["not-pulled", "already-deployed", "unknown-image"])
def test_switch_failures_write_nothing(tmp_path, case, capsys):
    root = tmp_path / "host"
    built = simhost.build_host(root, dict(TWO_DEPLOYMENTS, oci_dir=str(tmp_path / "oci")))
    layout = tmp_path / "oci"
    if case == "not-pulled":
        ocigen.write_bootc_image(str(layout), version="3", name="simos", tag="simos-3", kernel_version="6.12.3-sim")
        reference, message = "%s:simos-3" % layout, "is not in the repository"
    elif case == "already-deployed":
        reference, message = "%s:simos-1" % layout, "same fs-verity digest as the existing rollback deployment"
    else:
        reference, message = "%s:nothing" % layout, "skopeo inspect"
    assert built["rollback"]
    before = tree_digest(root)
    assert double(root, "switch", "--transport", "oci", reference) == 1
    assert message in capsys.readouterr().err
    assert tree_digest(root) == before


def test_uki_hosts_are_refused(tmp_path, capsys):
    root = tmp_path / "host"
    simhost.build_host(root, simhost.preset_spec("uki-systemd"))
    before = tree_digest(root)
    assert double(root, "rollback") == 1
    assert "only Type1 (BLS) hosts" in capsys.readouterr().err
    assert tree_digest(root) == before


def test_boot_id_is_created_once_and_kept(tmp_path, capsys):
    root = tmp_path / "host"
    simhost.build_host(root, TWO_DEPLOYMENTS)
    assert double(root, "boot-id") == 0
    first = capsys.readouterr().out
    assert double(root, "boot-id") == 0
    assert capsys.readouterr().out == first
    shutil.rmtree(root / "proc" / "sys")
    assert double(root, "boot-id") == 0
    assert capsys.readouterr().out != first
