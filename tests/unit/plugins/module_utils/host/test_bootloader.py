"""host/bootloader.py: LoaderInfo EFI variable and bootloader kinds (spec §1.7)."""

import pytest

from ansible_collections.bootc.composefs.plugins.module_utils.errors import ComposefsError, FormatError
from ansible_collections.bootc.composefs.plugins.module_utils.host import bootloader
from ansible_collections.bootc.composefs.plugins.module_utils.host.paths import load_host_paths


def _efivar(text, attributes=7):
    return attributes.to_bytes(4, "little") + (text + "\0").encode("utf-16-le")


@pytest.mark.parametrize("data, text", [
    pytest.param(_efivar("systemd-boot 257.7"), "systemd-boot 257.7", id="systemd-boot"),
    pytest.param(_efivar("GRUB 2.12"), "GRUB 2.12", id="grub"),
    pytest.param(b"\x07\x00\x00\x00" + "systemd-boot".encode("utf-16-le"), "systemd-boot", id="no-nul"),
    pytest.param(b"\x07\x00\x00\x00", "", id="empty-payload"),
    pytest.param(_efivar("x") + b"\x01", "x", id="odd-length"),
])
def test_parse_loader_info(data, text):
    assert bootloader.parse_loader_info(data) == text


def test_parse_loader_info_too_short():
    with pytest.raises(FormatError):
        bootloader.parse_loader_info(b"\x07\x00")


@pytest.mark.parametrize("info, kind", [
    ("systemd-boot 257.7", "systemd"),
    ("Systemd-Boot 254", "systemd"),
    ("GRUB CC 2.12", "grub-cc"),
    ("grub cc", "grub-cc"),
    ("GRUB 2.12", "grub"),
    ("rEFInd", "grub"),
    (None, "grub"),
])
def test_kind(info, kind):
    assert bootloader.bootloader_kind(info) == kind


def test_load_bootloader(systemd_tree, grub_tree):
    detected = bootloader.load_bootloader(load_host_paths(str(systemd_tree.root)))
    assert (detected.kind, detected.loader_info, detected.source, detected.bls_compatible) == (
        "systemd", "systemd-boot 257.7", "efivars", True)
    default = bootloader.load_bootloader(load_host_paths(str(grub_tree.root)))
    assert (default.kind, default.source, default.bls_compatible) == ("grub", "default", False)
    forced = bootloader.load_bootloader(load_host_paths(str(grub_tree.root)), override="grub-cc")
    assert (forced.kind, forced.source, forced.bls_compatible) == ("grub-cc", "override", True)
    with pytest.raises(ComposefsError, match="lilo"):
        bootloader.load_bootloader(load_host_paths(str(grub_tree.root)), override="lilo")


def test_grub_cc_tree(tmp_path):
    import host_tree
    tree = host_tree.HostTree(tmp_path, bootloader="grub-cc")
    assert bootloader.load_bootloader(load_host_paths(str(tree.root))).kind == "grub-cc"


def test_guess_bootloader(grub_tree):
    paths = load_host_paths(str(grub_tree.root))
    assert bootloader.guess_bootloader(paths) is None
    (grub_tree.esp / "loader" / "entries").mkdir(parents=True)
    assert bootloader.guess_bootloader(paths) == "systemd"
    (grub_tree.boot / "grub2").mkdir()
    (grub_tree.boot / "grub2" / "user.cfg").write_text("GRUB2_PASSWORD=x")
    assert bootloader.guess_bootloader(paths) is None
