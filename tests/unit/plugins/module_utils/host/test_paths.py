"""host/paths.py: default locations, the separate-/boot and ESP rules, chroot-style safe reading."""

import os

import pytest

from ansible_collections.bootc.composefs.plugins.module_utils.errors import FormatError, HostError, UnsafePathError
from ansible_collections.bootc.composefs.plugins.module_utils.host.paths import load_host_paths


def _mkdirs(root, *relative):
    for rel in relative:
        (root / rel).mkdir(parents=True, exist_ok=True)


def test_defaults_are_below_root(tmp_path):
    _mkdirs(tmp_path, "sysroot/boot/loader")
    paths = load_host_paths(tmp_path)
    root = str(tmp_path)
    assert paths.root == root
    assert paths.sysroot == root + "/sysroot"
    assert paths.boot_dir == root + "/sysroot/boot"
    assert paths.run_dir == root + "/run"
    assert paths.cmdline_file == root + "/proc/cmdline"
    assert paths.mountinfo_file == root + "/proc/self/mountinfo"
    assert paths.efivars_dir == root + "/sys/firmware/efi/efivars"
    assert paths.state_deploy_dir == root + "/sysroot/state/deploy"
    assert paths.composefs_repo == root + "/sysroot/composefs"
    assert paths.staged_deployment_file == root + "/run/composefs/staged-deployment"
    assert paths.boot_dir_rule == "<sysroot>/boot"


def test_root_must_be_a_directory(tmp_path):
    with pytest.raises(HostError):
        load_host_paths(tmp_path / "missing")


@pytest.mark.parametrize("sysroot_boot, root_boot, expected", [
    pytest.param((), ("loader/entries",), "root", id="separate-boot-partition-2399"),
    pytest.param((), ("grub2",), "root", id="separate-boot-partition-grub-uki-2399"),
    pytest.param(("loader/entries",), ("loader/entries",), "sysroot", id="both-hold-entries-sysroot-wins"),
    pytest.param(("grub2",), ("loader/entries",), "sysroot", id="sysroot-holds-grub2"),
    pytest.param((), ("efi/EFI",), "sysroot", id="root-boot-without-loader"),
    pytest.param((), (), "sysroot", id="nothing-anywhere"),
], )
def test_boot_dir_rule(tmp_path, sysroot_boot, root_boot, expected):
    _mkdirs(tmp_path, "sysroot/boot", "boot")
    _mkdirs(tmp_path / "sysroot" / "boot", *sysroot_boot)
    _mkdirs(tmp_path / "boot", *root_boot)
    paths = load_host_paths(tmp_path)
    want = str(tmp_path / "boot") if expected == "root" else str(tmp_path / "sysroot" / "boot")
    assert paths.boot_dir == want
    if expected == "root":
        assert "2399" in paths.boot_dir_rule


def test_boot_dir_override_wins(tmp_path):
    _mkdirs(tmp_path, "sysroot/boot/loader", "elsewhere/loader")
    paths = load_host_paths(tmp_path, boot_dir=tmp_path / "elsewhere")
    assert paths.boot_dir == str(tmp_path / "elsewhere")
    assert paths.boot_dir_rule == "override"


@pytest.mark.parametrize("dirs, expected, found", [
    pytest.param(("boot/efi/EFI", "efi/EFI", "sysroot/boot/efi/EFI"), "boot/efi", True, id="root-boot-efi-first"),
    pytest.param(("efi/EFI", "sysroot/boot/efi/EFI"), "efi", True, id="root-efi"),
    pytest.param(("sysroot/boot/efi/EFI",), "sysroot/boot/efi", True, id="sysroot-boot-efi"),
    pytest.param(("sysroot/boot/EFI",), "sysroot/boot", True, id="boot-dir-holds-EFI"),
    pytest.param(("sysroot/boot/efi",), "sysroot/boot/efi", False, id="unmounted-mount-point"),
    pytest.param((), "sysroot/boot", False, id="nothing-falls-back-to-boot-dir"),
])
def test_esp_rule(tmp_path, dirs, expected, found):
    _mkdirs(tmp_path, "sysroot/boot", *dirs)
    paths = load_host_paths(tmp_path)
    assert paths.esp == str(tmp_path / expected)
    assert paths.esp_found is found


def test_esp_override_outside_root_is_its_own_anchor(tmp_path):
    _mkdirs(tmp_path, "root/sysroot/boot", "esp/EFI/Linux")
    (tmp_path / "esp" / "EFI" / "Linux" / "x.efi").write_bytes(b"MZ")
    (tmp_path / "secret").write_text("no")
    os.symlink("/../../secret", str(tmp_path / "esp" / "link"))
    paths = load_host_paths(tmp_path / "root", esp=tmp_path / "esp")
    assert paths.esp_rule == "override" and paths.esp_found
    assert paths.read_bytes(str(tmp_path / "esp" / "EFI" / "Linux" / "x.efi")) == b"MZ"
    # An absolute link on the ESP restarts at the ESP, never at the real /.
    assert paths.resolve(str(tmp_path / "esp" / "link")) == str(tmp_path / "esp" / "secret")
    with pytest.raises(UnsafePathError):
        paths.read_bytes(str(tmp_path / "secret"))


def test_absolute_symlink_is_rerooted(tmp_path):
    _mkdirs(tmp_path, "root/sysroot/boot", "root/etc")
    (tmp_path / "root" / "etc" / "cmdline").write_text("inside")
    (tmp_path / "outside").write_text("outside")
    os.symlink("/etc/cmdline", str(tmp_path / "root" / "proc-cmdline"))
    paths = load_host_paths(tmp_path / "root", cmdline_file=tmp_path / "root" / "proc-cmdline")
    assert paths.read_text(paths.cmdline_file) == "inside"


def test_dotdot_symlink_is_clamped_at_root(tmp_path):
    _mkdirs(tmp_path, "root/sysroot/state/deploy/v", "root/sysroot/state/os/default/var")
    (tmp_path / "root" / "x").write_text("root-x")
    (tmp_path / "x").write_text("host-x")
    os.symlink("../../../../../../x", str(tmp_path / "root" / "sysroot" / "escape"))
    os.symlink("../../os/default/var", str(tmp_path / "root" / "sysroot" / "state" / "deploy" / "v" / "var"))
    paths = load_host_paths(tmp_path / "root")
    assert paths.read_text(str(tmp_path / "root" / "sysroot" / "escape")) == "root-x"
    assert paths.is_dir(str(tmp_path / "root" / "sysroot" / "state" / "deploy" / "v" / "var"))


def test_symlink_loop_is_refused(tmp_path):
    _mkdirs(tmp_path, "sysroot/boot")
    os.symlink("b", str(tmp_path / "a"))
    os.symlink("a", str(tmp_path / "b"))
    paths = load_host_paths(tmp_path)
    with pytest.raises(UnsafePathError):
        paths.read_bytes(str(tmp_path / "a"))


def test_path_outside_every_anchor_is_refused(tmp_path):
    _mkdirs(tmp_path, "root/sysroot")
    paths = load_host_paths(tmp_path / "root")
    with pytest.raises(UnsafePathError):
        paths.read_bytes(str(tmp_path / "elsewhere"))


def test_read_missing_returns_none_and_lists(tmp_path):
    _mkdirs(tmp_path, "sysroot/boot/loader/entries/sub")
    (tmp_path / "sysroot" / "boot" / "loader" / "entries" / "b.conf").write_text("b")
    os.symlink("b.conf", str(tmp_path / "sysroot" / "boot" / "loader" / "entries" / "a.conf"))
    paths = load_host_paths(tmp_path)
    entries_dir = str(tmp_path / "sysroot" / "boot" / "loader" / "entries")
    assert paths.read_bytes(entries_dir + "/missing.conf") is None
    assert paths.read_text(entries_dir + "/nodir/x") is None
    assert paths.scan_dir(entries_dir + "/missing") is None
    listing = paths.scan_dir(entries_dir)
    assert [(e.name, e.kind) for e in listing] == [("a.conf", "symlink"), ("b.conf", "file"), ("sub", "dir")]
    assert paths.read_text(listing[0].path) == "b"
    assert paths.kind(listing[0].path) == "file"


def test_read_refuses_directories_big_files_and_bad_utf8(tmp_path):
    _mkdirs(tmp_path, "sysroot/boot")
    (tmp_path / "big").write_bytes(b"x" * 11)
    (tmp_path / "latin1").write_bytes(b"caf\xe9")
    paths = load_host_paths(tmp_path)
    with pytest.raises(FormatError, match="regular file"):
        paths.read_bytes(str(tmp_path / "sysroot"))
    with pytest.raises(FormatError, match="larger"):
        paths.read_bytes(str(tmp_path / "big"), max_bytes=10)
    with pytest.raises(FormatError) as err:
        paths.read_text(str(tmp_path / "latin1"))
    assert err.value.path == str(tmp_path / "latin1")
    assert err.value.offset == 3


def test_usage_counts_hard_links_once_and_does_not_follow_symlinks(tmp_path):
    _mkdirs(tmp_path, "sysroot/boot/bootc_composefs-a")
    kernel_dir = tmp_path / "sysroot" / "boot" / "bootc_composefs-a"
    (kernel_dir / "vmlinuz").write_bytes(b"k" * 1000)
    (kernel_dir / "initrd").write_bytes(b"i" * 24)
    os.link(str(kernel_dir / "vmlinuz"), str(kernel_dir / "vmlinuz.hardlink"))
    (tmp_path / "huge").write_bytes(b"h" * 100000)
    os.symlink(str(tmp_path / "huge"), str(kernel_dir / "link"))
    paths = load_host_paths(tmp_path)
    usage = paths.usage(str(kernel_dir))
    assert usage.apparent_bytes == 1024
    blocks = sum(os.lstat(str(p)).st_blocks for p in (kernel_dir, kernel_dir / "vmlinuz", kernel_dir / "initrd", kernel_dir / "link"))
    assert usage.disk_bytes == blocks * 512
