# -*- coding: utf-8 -*-
"""simhost (tests/tools/simhost/): simulated bootc composefs hosts, read back by the host layer.

Every preset and variant is built and read with ``load_host(load_host_paths(root=...))``: the roles
must be the ones the spec asked for and the findings only those the spec implies. Every damage
must produce its finding where it is reported (host layer, or the status operation for repository
damages, whose on-disk effect is also checked directly). Independent facts come from oracles and
the spec: ``fsverity digest`` of each boot image equals the deployment verity, ``composefs-info
dump``/``objects`` read the boot images, ``objdump``/``objcopy`` read the UKIs, ``configparser``
reads the origins, and entry, menu, origin and marker texts are compared with the examples of
spec bootc-composefs-host.md §1.4, §1.6 and §1.7 written out here by hand.
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
from ansible_collections.bootc.composefs.plugins.module_utils.repository.repo import Repository

REPO_ROOT = pathlib.Path(__file__).resolve().parents[3]
TOOLS = REPO_ROOT / "tests" / "tools"
if str(TOOLS) not in sys.path:
    sys.path.insert(0, str(TOOLS))

import simhost  # noqa: E402  pylint: disable=wrong-import-position
from simhost.spec import DamageSpec, DeploymentSpec, HostSpec  # noqa: E402  pylint: disable=wrong-import-position

CLEAN_PRESETS = ["demo", "three-deployments", "bls-grub", "bls-systemd", "uki-systemd", "uki-grub", "separate-boot",
                 "grub-password", "foreign-entries"]
# Findings a clean preset is expected to produce (everything else is a failure).
EXPECTED_HOST_FINDINGS = {"foreign-entries": {"foreign-entry"}}
GRUB_KARGS = "root=UUID=6b2f0b2e-5d6e-4c1a-9f3e-3d7c2a1b0c9d rw console=ttyS0"
SYSTEMD_KARGS = "rw console=ttyS0"
PREAMBLE = "\nif [ -f ${config_directory}/efiuuid.cfg ]; then\n        source ${config_directory}/efiuuid.cfg\nfi\n"


def kernel_bytes(kernel_version):
    """ocigen's default kernel and initramfs for ``kernel_version`` (ocigen.bootc_rootfs_layers)."""
    return ((b"vmlinuz for " + kernel_version.encode() + b"\n") * 64,
            (b"initramfs for " + kernel_version.encode() + b"\n") * 64)


class Builds:
    """Hosts built once per session: ``get(preset, variant)``; ``build(name, spec)`` for one-off specs."""

    def __init__(self, factory):
        self._factory = factory
        self._built = {}

    def get(self, preset, variant=None):
        key = (preset, variant)
        if key not in self._built:
            root = self._factory.mktemp("host-%s-%s" % (preset, variant or "default"))
            self._built[key] = simhost.build_host(root / "root", simhost.preset_spec(preset, variant))
        return self._built[key]

    def build(self, name, spec):
        root = self._factory.mktemp("host-" + name)
        return simhost.build_host(root / "root", spec)


@pytest.fixture(scope="session")
def builds(tmp_path_factory):
    return Builds(tmp_path_factory)


def read_host(result, **overrides):
    return load_host(load_host_paths(root=result["root"], **overrides))


def origin_of(result, deployment):
    parser = configparser.ConfigParser()
    parser.read_string(pathlib.Path(deployment["origin_path"]).read_text())
    return parser


def by_role(result, role):
    return [d for d in result["deployments"] if d["role"] == role]


def status_findings(result):
    status = pytest.importorskip("ansible_collections.bootc.composefs.plugins.module_utils.operations.status")
    return status.read_status(status.StatusRequest(root=result["root"])).data["findings"]


def run(argv, **kwargs):
    proc = subprocess.run([str(a) for a in argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False,
                          env=dict(os.environ, LC_ALL="C"), **kwargs)
    return proc


def tool(argv):
    proc = run(argv)
    if proc.returncode != 0:
        pytest.fail("%s failed: %s" % (" ".join(map(str, argv)), proc.stderr.decode(errors="replace")))
    return proc.stdout


# -- every preset and variant reads back with the roles asked for ----------------------------------


def assert_roles(result, state):
    assert state.booted_verity == result["booted"]
    for deployment in result["deployments"]:
        read = state.deployment(deployment["verity"])
        assert read is not None, deployment
        assert read.role == deployment["role"], (deployment["version"], read.role, deployment["role"])
    assert len(state.deployments) == len(result["deployments"])


@pytest.mark.parametrize("preset", CLEAN_PRESETS)
def test_preset_reads_back_with_its_roles(builds, preset):
    result = builds.get(preset)
    state = read_host(result)
    assert_roles(result, state)
    assert {f.code for f in state.findings} == EXPECTED_HOST_FINDINGS.get(preset, set()), state.findings
    json.dumps(result)


@pytest.mark.parametrize("variant", simhost.VARIANTS)
@pytest.mark.parametrize("preset", ["demo", "three-deployments"])
def test_every_variant_reads_back(builds, preset, variant):
    result = builds.get(preset, variant)
    state = read_host(result)
    assert_roles(result, state)
    assert not state.findings, state.findings
    assert state.bootloader.kind == {"grub": "grub", "systemd": "systemd"}[result["bootloader"]]
    assert state.boot_type == result["boot_type"]
    assert state.entry_source == ("grub" if result["variant"] == "uki-grub" else "bls")


@pytest.mark.parametrize("variant", simhost.VARIANTS)
def test_status_sees_only_the_stale_tags(builds, variant):
    result = builds.get("demo", variant)
    found = status_findings(result)
    stale = {t["tag"] for t in result["stale_bootc_tags"]}
    assert len(stale) == 2
    assert {f["code"] for f in found} == {"unreferenced-bootc-tag"}, found
    assert {f["path"].rsplit("/", 1)[1].replace("%2F", "/") for f in found} == stale


def test_api_accepts_a_dict_spec(builds):
    result = builds.build("dict", {"variant": "bls-systemd", "deployments": [{"role": "booted", "version": "7"}],
                                   "app_images": ["quay.io/example/tool:2"], "damages": ["orphan-addon-dir"]})
    state = read_host(result)
    assert [(d.role, d.verity) for d in state.deployments] == [("booted", result["booted"])]
    assert [f.code for f in state.findings] == ["orphan-addon-dir"]
    assert {t["tag"] for t in result["tags"]} == {"quay.io/example/tool:2", result["deployments"][0]["bootc_tag"]}
    assert result["staged"] is None and result["paths"]["staged_marker"] is None
    assert not os.path.exists(os.path.join(result["root"], "run", "composefs", "staged-deployment"))


def test_transports_download_only_and_required_verity(builds):
    result = builds.build("transports", {
        "variant": "bls-systemd", "allow_missing_verity": False,
        "deployments": [
            {"role": "staged", "version": "4", "transport": "oci", "download_only": True},
            {"role": "booted", "version": "3", "transport": "containers-storage"},
            {"role": "rollback", "version": "2", "transport": "oci-archive"},
            {"role": "other", "version": "1", "image": "registry.example.com/os/simos:stable"},
        ]})
    state = read_host(result)
    assert_roles(result, state)
    assert not state.findings and state.missing_verity_allowed is False
    expected = {"4": ("oci", "/var/lib/simhost/oci:simos-4"), "3": ("containers-storage", "localhost/simos:3"),
                "2": ("oci-archive", "/var/lib/simhost/simos-2.ociarchive"), "1": ("registry", "registry.example.com/os/simos:stable")}
    for deployment in result["deployments"]:
        image = state.deployment(deployment["verity"]).image
        assert (image.transport, image.image) == expected[deployment["version"]]
        assert "composefs=%s" % deployment["verity"] in pathlib.Path(deployment["entry_path"]).read_text()
    assert state.staged.download_only is True
    marker = json.loads(pathlib.Path(result["paths"]["staged_marker"]).read_text())
    assert marker == {"depl_id": result["staged"], "finalization_locked": True}
    assert pathlib.Path(result["paths"]["cmdline_file"]).read_text() == "%s composefs=%s\n" % (SYSTEMD_KARGS, result["booted"])


# -- independent oracles ---------------------------------------------------------------------------


@pytest.mark.parametrize("variant", simhost.VARIANTS)
def test_boot_image_verity_is_the_fsverity_digest(builds, variant, fsverity_tool, composefs_oracle):
    result = builds.get("demo", variant)
    for deployment in result["deployments"]:
        image = deployment["boot_image_path"]
        out = tool([fsverity_tool, "digest", "--hash-alg=sha512", image]).decode()
        assert out.split()[0] == "sha512:" + deployment["verity"]
        assert os.path.basename(deployment["state_dir"]) == deployment["verity"]
        dump = composefs_oracle("composefs-info", "dump", image).stdout.decode()
        paths = [line.split(" ", 1)[0] for line in dump.splitlines()]
        assert "/usr/lib/modules/%s/vmlinuz" % deployment["kernel_version"] in paths
        assert "/etc/hostname" in paths and "/boot" in paths and "/sysroot" in paths
        # composefs-boot empties /boot and /sysroot in the boot image (UKIs live in /boot).
        assert not [p for p in paths if p.startswith(("/boot/", "/sysroot/"))]


def test_type1_binaries_hold_the_image_kernel(builds):
    result = builds.get("demo")
    for deployment in result["deployments"]:
        vmlinuz, initrd = kernel_bytes(deployment["kernel_version"])
        directory = pathlib.Path(deployment["boot_artifact_path"])
        assert directory.name == "bootc_composefs-" + deployment["boot_artifact_name"]
        assert (directory / "vmlinuz").read_bytes() == vmlinuz
        assert (directory / "initrd").read_bytes() == initrd
        assert origin_of(result, deployment)["boot"]["digest"] == hashlib.sha256(vmlinuz + initrd).hexdigest()


@pytest.mark.parametrize("variant", ["bls-grub", "uki-systemd"])
def test_read_boot_image_reads_what_was_deployed(builds, variant):
    """``read_boot_image`` (shared with the bootc test double) finds each deployment's verity, boot type and kernel."""
    result = builds.get("three-deployments", variant)
    with Repository.open(result["paths"]["repository"]) as repo:  # read-only: the boot images exist already
        for deployment in result["deployments"]:
            image = simhost.read_boot_image(repo, deployment["manifest_digest"])
            assert image.boot_type == deployment["boot_type"] == variant.split("-")[0]
            assert (image.verity, image.boot_digest) == (deployment["verity"], deployment["boot_digest"])
            assert image.config_digest == deployment["config_digest"]
            vmlinuz, initrd = kernel_bytes(deployment["kernel_version"])
            if image.boot_type == "bls":
                assert (image.vmlinuz, image.initrd, image.kernel_version) == (vmlinuz, initrd, deployment["kernel_version"])
            else:
                assert image.uki.startswith(b"MZ") and not image.vmlinuz
            assert image.os_release["ID"] == "simos"


def test_shared_kernel_dir_is_named_after_its_oldest_user(builds):
    result = builds.get("demo")
    booted = by_role(result, "booted")[0]
    sharer = [d for d in result["deployments"] if d["version"] == "3"][0]
    assert booted["kernel_version"] == sharer["kernel_version"]
    assert booted["boot_artifact_name"] == sharer["verity"] != booted["verity"]
    dirs = sorted(p.name for p in pathlib.Path(result["paths"]["type1_dir"]).iterdir() if p.name.startswith("bootc_composefs-"))
    assert dirs == sorted({"bootc_composefs-" + d["boot_artifact_name"] for d in result["deployments"]})
    assert len(dirs) == len(result["deployments"]) - 1
    state = read_host(result)
    assert state.deployment(booted["verity"]).boot_artifact_names == (sharer["verity"],)


def test_entries_match_the_spec_examples(builds):
    result = builds.get("three-deployments")
    booted, staged, rollback = (by_role(result, r)[0] for r in ("booted", "staged", "rollback"))
    entries = pathlib.Path(result["paths"]["sysroot"], "boot", "loader", "entries")
    assert sorted(p.name for p in entries.iterdir()) == ["bootc_simos-1-0.conf", "bootc_simos-2-1.conf"]

    def type1(deployment, sort_key):
        verity, name = deployment["verity"], deployment["boot_artifact_name"]
        return ("title Sim OS {ver}\nversion {ver}\nlinux /boot/bootc_composefs-{n}/vmlinuz\n"
                "initrd /boot/bootc_composefs-{n}/initrd\noptions {kargs} composefs=?{v}\nsort-key {key}\n"
                ).format(ver=deployment["version"], n=name, kargs=GRUB_KARGS, v=verity, key=sort_key)

    assert (entries / "bootc_simos-2-1.conf").read_text() == type1(booted, "bootc-simos-0")
    assert (entries / "bootc_simos-1-0.conf").read_text() == type1(rollback, "bootc-simos-1")
    staged_dir = entries.parent / "entries.staged"
    assert sorted(p.name for p in staged_dir.iterdir()) == ["bootc_simos-2-0.conf", "bootc_simos-3-1.conf"]
    assert (staged_dir / "bootc_simos-3-1.conf").read_text() == type1(staged, "bootc-simos-0")
    assert (staged_dir / "bootc_simos-2-0.conf").read_text() == type1(booted, "bootc-simos-1")
    marker = pathlib.Path(result["root"], "run", "composefs", "staged-deployment").read_text()
    assert marker == '{"depl_id":"%s","finalization_locked":false}' % staged["verity"]
    cmdline = pathlib.Path(result["paths"]["cmdline_file"]).read_text()
    assert cmdline == "BOOT_IMAGE=(hd0,gpt3)/boot/bootc_composefs-%s/vmlinuz %s composefs=?%s\n" % (
        booted["boot_artifact_name"], GRUB_KARGS, booted["verity"])


def test_origin_and_imginfo_match_the_spec(builds):
    result = builds.get("demo")
    for deployment in result["deployments"]:
        text = pathlib.Path(deployment["origin_path"]).read_text()
        boot = "[boot]\nboot_type = bls\ndigest = %s" % hashlib.sha256(b"".join(kernel_bytes(deployment["kernel_version"]))).hexdigest()
        head = "[origin]\ncontainer-image-reference = ostree-unverified-image:docker://quay.io/example/simos:%s\n\n" % deployment["version"]
        if deployment["legacy"]:
            assert text == head + boot
            info = json.loads(pathlib.Path(deployment["imginfo_path"]).read_text(), object_pairs_hook=list)
            assert [key for key, _value in info] == ["config", "manifest"]
            manifest = dict(info[1][1])
            assert dict(manifest["config"])["digest"] == deployment["config_digest"]
        else:
            assert text == head + boot + "\n\n[image]\nmanifest_digest = %s" % deployment["manifest_digest"]
            assert deployment["imginfo_path"] is None


def test_state_dirs_hold_etc_and_the_shared_var_link(builds):
    result = builds.get("demo")
    for deployment in result["deployments"]:
        state_dir = pathlib.Path(deployment["state_dir"])
        assert (state_dir / "etc" / "hostname").read_text() == "simhost\n"
        assert not (state_dir / "etc" / "old.conf").exists()  # whited out by the image's second layer
        assert os.readlink(str(state_dir / "var")) == "../../os/default/var"
        assert (state_dir / "var").resolve() == pathlib.Path(result["paths"]["sysroot"], "state", "os", "default", "var")
    assert os.readlink(os.path.join(result["paths"]["sysroot"], "ostree", "bootc")) == "../composefs/bootc"


def test_systemd_type1_layout(builds):
    result = builds.get("bls-systemd")
    esp = pathlib.Path(result["paths"]["esp"])
    assert esp == pathlib.Path(result["root"], "boot", "efi")
    efivar = pathlib.Path(result["paths"]["efivars"], "LoaderInfo-4a67b082-0a4c-41cf-b6c7-440b29bb8c4f").read_bytes()
    assert efivar[4:].decode("utf-16-le").rstrip("\0").startswith("systemd-boot ")
    for deployment in result["deployments"]:
        assert pathlib.Path(deployment["boot_artifact_path"]).parent == esp / "EFI" / "Linux"
    booted = by_role(result, "booted")[0]
    text = (esp / "loader" / "entries" / "bootc_simos-2-1.conf").read_text()
    assert "linux /EFI/Linux/bootc_composefs-%s/vmlinuz\n" % booted["boot_artifact_name"] in text
    assert "options %s composefs=?%s\n" % (SYSTEMD_KARGS, booted["verity"]) in text
    assert "root=" not in pathlib.Path(result["paths"]["cmdline_file"]).read_text()  # tmt T4: no root= with systemd-boot
    assert not pathlib.Path(result["paths"]["sysroot"], "boot", "loader").exists()


def section(path, name, tmp_path):
    out = tmp_path / (name.strip(".") + ".bin")
    tool(["objcopy", "-O", "binary", "--only-section=" + name, path, out])
    return out.read_bytes()


@pytest.mark.parametrize("variant", ["uki-systemd", "uki-grub"])
def test_ukis_are_pe_images_booting_their_deployment(builds, variant, tmp_path):
    result = builds.get("three-deployments" if variant == "uki-grub" else "uki-systemd", variant)
    for deployment in result["deployments"]:
        uki = deployment["boot_artifact_path"]
        assert uki == os.path.join(result["root"], "boot", "efi", "EFI", "Linux", "bootc",
                                   "bootc_composefs-%s.efi" % deployment["verity"])
        headers = tool(["objdump", "-h", uki]).decode()
        assert "pei-x86-64" in headers
        for name in (".osrel", ".cmdline", ".linux", ".initrd"):
            assert " %s " % name in headers
        cmdline = section(uki, ".cmdline", tmp_path).decode()
        assert "composefs=?%s" % deployment["verity"] in cmdline.split()
        vmlinuz, initrd = kernel_bytes(deployment["kernel_version"])
        assert section(uki, ".linux", tmp_path) == vmlinuz and section(uki, ".initrd", tmp_path) == initrd
        assert origin_of(result, deployment)["boot"]["boot_type"] == "uki"
        assert origin_of(result, deployment)["boot"]["digest"] == hashlib.sha256(vmlinuz + initrd).hexdigest()
        addons = pathlib.Path(uki + ".extra.d")
        if deployment["uki_addons"]:
            assert sorted(p.name for p in addons.iterdir()) == ["console.addon.efi"]
            assert section(str(addons / "console.addon.efi"), ".cmdline", tmp_path) == b"console=ttyS0,115200 earlyprintk=ttyS0"
        else:
            assert not addons.exists()


def test_uki_systemd_entries_match_the_spec(builds):
    result = builds.get("uki-systemd")
    esp = pathlib.Path(result["paths"]["esp"])
    booted, rollback = by_role(result, "booted")[0], by_role(result, "rollback")[0]
    assert (esp / "loader" / "entries" / "bootc_simos-2-1.conf").read_text() == (
        "title Sim OS 2 2\nversion 2\nuki /EFI/Linux/bootc/bootc_composefs-%s.efi\nsort-key bootc-simos-0\n" % booted["verity"])
    assert (esp / "loader" / "entries" / "bootc_simos-1-0.conf").read_text() == (
        "title Sim OS 1 1\nversion 1\nuki /EFI/Linux/bootc/bootc_composefs-%s.efi\nsort-key bootc-simos-1\n" % rollback["verity"])
    assert (esp / "loader" / "loader.conf").read_text() == "timeout 5"
    assert pathlib.Path(result["paths"]["cmdline_file"]).read_text() == (
        "rw console=ttyS0 composefs=?%s console=ttyS0,115200 earlyprintk=ttyS0\n" % booted["verity"])


def test_uki_grub_user_cfg_matches_the_spec(builds):
    result = builds.get("uki-grub")
    booted, staged, rollback = (by_role(result, r)[0] for r in ("booted", "staged", "rollback"))

    def menuentry(deployment):
        return ('menuentry "Sim OS {ver} {ver}: ({v})" {{\ninsmod fat\ninsmod chain\n'
                'search --no-floppy --set=root --fs-uuid "${{EFI_PART_UUID}}"\n'
                'chainloader /EFI/Linux/bootc/bootc_composefs-{v}.efi\n}}\n').format(ver=deployment["version"], v=deployment["verity"])

    assert pathlib.Path(result["paths"]["user_cfg"]).read_text() == PREAMBLE + menuentry(booted) + menuentry(rollback)
    assert pathlib.Path(result["paths"]["user_cfg_staged"]).read_text() == PREAMBLE + menuentry(staged) + menuentry(booted)
    efiuuid = pathlib.Path(result["paths"]["boot_dir"], "grub2", "efiuuid.cfg").read_text()
    assert efiuuid.startswith('set EFI_PART_UUID="') and efiuuid.endswith('"')
    assert not pathlib.Path(result["paths"]["boot_dir"], "loader").exists()


def test_separate_boot_partition(builds):
    result = builds.get("separate-boot")
    root = pathlib.Path(result["root"])
    assert result["paths"]["boot_dir"] == str(root / "boot")
    assert not list((root / "sysroot" / "boot").iterdir())  # the mount point on the root filesystem stays empty
    paths = load_host_paths(root=result["root"])
    assert paths.boot_dir == str(root / "boot")
    booted = by_role(result, "booted")[0]
    entry = (root / "boot" / "loader" / "entries" / "bootc_simos-2-1.conf").read_text()
    assert "linux /bootc_composefs-%s/vmlinuz\n" % booted["boot_artifact_name"] in entry
    assert "systemd.mount-extra=UUID=" in entry and ":/boot:ext4:defaults" in entry
    assert pathlib.Path(result["paths"]["cmdline_file"]).read_text().startswith(
        "BOOT_IMAGE=(hd0,gpt2)/bootc_composefs-%s/vmlinuz " % booted["boot_artifact_name"])


def test_separate_boot_uki_grub_reads_with_a_boot_dir_override(builds):
    spec = simhost.preset_spec("uki-grub")
    spec.separate_boot = True
    result = builds.build("separate-uki-grub", spec)
    assert pathlib.Path(result["root"], "boot", "grub2", "user.cfg").is_file()
    # <root>/boot holds grub2/ but no loader/, so the host layer needs to be told where /boot is.
    assert_roles(result, read_host(result, boot_dir=result["paths"]["boot_dir"]))


def test_grub_password_user_cfg_keeps_the_bls_entries(builds):
    result = builds.get("grub-password")
    text = pathlib.Path(result["paths"]["boot_dir"], "grub2", "user.cfg").read_text()
    assert text.startswith("GRUB2_PASSWORD=grub.pbkdf2.sha512.10000.") and "menuentry" not in text
    state = read_host(result)
    assert state.entry_source == "bls"
    assert_roles(result, state)


def test_foreign_entries_are_listed_apart(builds):
    result = builds.get("foreign-entries")
    state = read_host(result)
    assert sorted(os.path.basename(e.path) for e in state.foreign_entries) == ["fwupd.conf", "memtest86+.conf"]
    assert sorted(f.path for f in state.findings) == sorted(result["foreign_entries"])


def test_app_images_and_stale_tags(builds):
    result = builds.get("demo")
    tags = {t["tag"]: t["manifest_digest"] for t in result["tags"]}
    assert tags["quay.io/example/app:1"] == result["app_images"][0]["manifest_digest"]
    live = {d["manifest_digest"] for d in result["deployments"]}
    for deployment in result["deployments"]:
        assert tags["localhost/bootc-" + deployment["manifest_digest"]] == deployment["manifest_digest"]
        origin = origin_of(result, deployment)
        if not deployment["legacy"]:
            assert origin["image"]["manifest_digest"] == deployment["manifest_digest"]
    stale = [t for t in tags if t.startswith("localhost/bootc-") and tags[t] not in live]
    assert sorted(stale) == sorted(t["tag"] for t in result["stale_bootc_tags"])
    refs = pathlib.Path(result["paths"]["repository"], "streams", "refs", "oci")
    for tag, digest in tags.items():
        assert os.readlink(str(refs / tag.replace("%", "%25").replace("/", "%2F"))) == "../../oci-manifest-" + digest


def test_repository_is_created_like_bootc(builds):
    result = builds.get("three-deployments")
    meta = json.loads(pathlib.Path(result["paths"]["repository"], "meta.json").read_text())
    assert meta["algorithm"] == "fsverity-sha512-12"
    assert meta.get("erofs_formats", {}).get("default", 1) == 1


# -- damages ---------------------------------------------------------------------------------------


def damage_base():
    return HostSpec(variant="bls-grub", deployments=(
        DeploymentSpec(role="staged", version="4", kernel_version="6.12.4-sim"),
        DeploymentSpec(role="booted", version="3", kernel_version="6.12.3-sim"),
        DeploymentSpec(role="other", version="2", kernel_version="6.12.2-sim"),
        DeploymentSpec(role="rollback", version="1", kernel_version="6.12.1-sim"),
    ))


# Findings a damage brings besides its own (side effects a real host would show too).
SIDE_EFFECTS = {
    "orphan-state-dir": {"unreferenced-bootc-tag"},            # the dropped deployment's tag is still there
    "unreadable-origin": {"unreferenced-bootc-tag"},           # its image can no longer be tied to the tag
}


@pytest.mark.parametrize("kind", simhost.DAMAGE_KINDS)
def test_each_damage_produces_its_finding(builds, kind, composefs_oracle):
    spec = damage_base()
    spec.damages = (DamageSpec(kind),)
    result = builds.build("damage-" + kind, simhost.load_spec(spec))
    (record,) = result["damages"]
    assert record["kind"] == kind
    code, reported_by = simhost.DAMAGE_FINDINGS[kind]
    assert (record["finding"], record["reported_by"]) == (code, reported_by)
    state = read_host(result)
    host_codes = {f.code for f in state.findings}
    if reported_by == "host":
        assert host_codes == {code}, state.findings
        assert any(f.code == code and f.path in record["paths"] for f in state.findings), (state.findings, record)
    else:
        assert not host_codes, state.findings
        check_on_disk = globals()["on_disk_" + kind.replace("-", "_")]
        check_on_disk(result, record, composefs_oracle)
    found = status_findings(result)
    assert code in {f["code"] for f in found}
    assert {f["code"] for f in found} <= {code} | SIDE_EFFECTS.get(kind, set()), found


def on_disk_live_manifest_without_bootc_tag(result, record, _oracle):
    deployment = [d for d in result["deployments"] if d["verity"] == record["target"]][0]
    (path,) = record["paths"]
    assert path.endswith("localhost%2Fbootc-" + deployment["manifest_digest"])
    assert not os.path.lexists(path)
    assert os.path.exists(deployment["boot_image_path"])


def on_disk_unreferenced_bootc_tag(result, record, _oracle):
    (path,) = record["paths"]
    digest = os.readlink(path).rsplit("oci-manifest-", 1)[1]
    assert os.path.basename(path) == "localhost%2Fbootc-" + digest
    assert digest not in {origin_of(result, d)["image"]["manifest_digest"] for d in result["deployments"]}


def on_disk_dangling_ref(result, record, _oracle):
    (path,) = record["paths"]
    target = os.readlink(path)
    assert target.startswith("../../oci-manifest-sha256:")
    assert not os.path.lexists(os.path.join(result["paths"]["repository"], "streams", target[len("../../"):]))


def on_disk_missing_stream(result, record, _oracle):
    deployment = [d for d in result["deployments"] if d["verity"] == record["target"]][0]
    assert record["paths"] == [os.path.join(result["paths"]["repository"], "streams", "oci-config-" + deployment["config_digest"])]
    assert not os.path.lexists(record["paths"][0])


def on_disk_missing_object(result, record, oracle):
    (path,) = record["paths"]
    assert not os.path.exists(path)
    relative = "/".join(path.split(os.sep)[-2:])
    for deployment in result["deployments"]:
        objects = oracle("composefs-info", "objects", deployment["boot_image_path"]).stdout.decode().split()
        assert (relative in objects) == (deployment["verity"] == record["target"])


def test_dangling_ref_to_a_missing_object(builds):
    spec = damage_base()
    spec.damages = (DamageSpec("dangling-ref", options={"mode": "missing-object"}),)
    result = builds.build("dangling-object", simhost.load_spec(spec))
    tag_path, object_path = result["damages"][0]["paths"]
    stream = os.path.join(result["paths"]["repository"], "streams", os.readlink(tag_path)[len("../../"):])
    assert os.path.lexists(stream) and not os.path.exists(stream) and not os.path.exists(object_path)
    assert "dangling-ref" in {f["code"] for f in status_findings(result)}


@pytest.mark.parametrize("variant", simhost.VARIANTS)
def test_damaged_preset_reports_every_kind(builds, variant):
    result = builds.get("damaged", variant)
    assert [d["kind"] for d in result["damages"]] == list(simhost.DAMAGE_KINDS)
    host_codes = {f.code for f in read_host(result).findings}
    status_codes = {f["code"] for f in status_findings(result)}
    for record in result["damages"]:
        assert record["finding"] in (host_codes if record["reported_by"] == "host" else status_codes), record
        assert record["finding"] in status_codes


# -- spec validation and the command line ----------------------------------------------------------


@pytest.mark.parametrize("spec, message", [
    ({"variant": "lilo"}, "unknown variant"),
    ({"deployments": [{"role": "booted"}, {"role": "booted", "version": "2"}]}, "exactly one deployment"),
    ({"deployments": [{"role": "booted"}, {"role": "other", "version": "2"}]}, "needs a rollback"),
    ({"deployments": [{"role": "booted"}, {"role": "rollback"}]}, "versions must differ"),
    ({"deployments": [{"role": "booted", "uki_addons": ["console"]}]}, "need a UKI variant"),
    ({"damages": ["rm-rf"]}, "unknown damage"),
    ({"colour": "blue"}, "unknown spec field"),
    ({"pending_versions": ["9"]}, "set oci_dir"),
], ids=["variant", "two-booted", "other-without-rollback", "same-version", "addons-on-bls", "damage", "field", "pending"])
def test_invalid_specs_are_refused(spec, message):
    with pytest.raises(ValueError, match=message):
        simhost.load_spec(spec)


def test_grub_order_that_bootc_names_cannot_give_is_refused(tmp_path):
    spec = {"deployments": [{"role": "booted", "version": "1"}, {"role": "rollback", "version": "2"}]}
    with pytest.raises(ValueError, match="GRUB lists BLS entries by file name"):
        simhost.build_host(tmp_path / "root", spec)


def test_build_refuses_a_non_empty_directory(tmp_path):
    (tmp_path / "keep").write_text("x")
    with pytest.raises(ValueError, match="not empty"):
        simhost.build_host(tmp_path, None)


def test_cli_lists_presets_and_builds_json(tmp_path):
    script = TOOLS / "simhost.py"
    listing = run([sys.executable, script, "--list-presets"])
    assert listing.returncode == 0
    names = [line.split()[0] for line in listing.stdout.decode().splitlines()]
    assert set(names) == set(simhost.PRESETS) >= set(CLEAN_PRESETS) | {"damaged"} | set(simhost.VARIANTS)
    built = run([sys.executable, script, "build", tmp_path / "host", "--preset", "three-deployments", "--variant",
                 "uki-systemd", "--json"])
    assert built.returncode == 0, built.stderr
    result = json.loads(built.stdout)
    assert result["variant"] == "uki-systemd" and [d["role"] for d in result["deployments"]] == ["staged", "booted", "rollback"]
    assert_roles(result, read_host(result))
    again = run([sys.executable, script, "build", tmp_path / "host"])
    assert again.returncode == 2 and b"not empty" in again.stderr


def test_cli_keeps_the_oci_layout(tmp_path):
    built = run([sys.executable, TOOLS / "simhost.py", "build", tmp_path / "host", "--preset", "bls-grub",
                 "--oci-dir", tmp_path / "oci", "--pending", "4", "--json"])
    assert built.returncode == 0, built.stderr
    result = json.loads(built.stdout)
    index = json.loads((tmp_path / "oci" / "index.json").read_text())
    refs = {m["annotations"]["org.opencontainers.image.ref.name"]: m["digest"] for m in index["manifests"]}
    for deployment in result["deployments"]:
        assert refs["simos-" + deployment["version"]] == deployment["manifest_digest"]
    (pending,) = result["pending_images"]
    assert pending["reference"] == "oci:%s:simos-4" % (tmp_path / "oci")
    assert refs["simos-4"] == pending["manifest_digest"]
    assert pending["manifest_digest"] not in {t["manifest_digest"] for t in result["tags"]}  # not imported
    if shutil.which("skopeo"):
        inspect = tool(["skopeo", "inspect", "--raw", "oci:%s:simos-1" % (tmp_path / "oci")])
        assert "sha256:" + hashlib.sha256(inspect).hexdigest() == by_role(result, "rollback")[0]["manifest_digest"]
