"""host/artifact.py: boot artifact names from EFI and kernel paths (bls_config.rs / grub_menuconfig.rs cases)."""

import pytest

from ansible_collections.bootc.composefs.plugins.module_utils.errors import FormatError
from ansible_collections.bootc.composefs.plugins.module_utils.host import artifact

DIGEST = "7e11ac46e3e022053e7226a20104ac656bf72d1a84e3a398b7cce70e9df188b6"
VERITY_128 = "f7" * 64


@pytest.mark.parametrize("path, name, prefixed", [
    pytest.param("bootc_composefs-abcd1234.efi", "abcd1234", True, id="efi-with-prefix"),
    pytest.param("/EFI/Linux/abcd1234.efi", "abcd1234", False, id="efi-missing-prefix-is-allowed"),
    pytest.param("/EFI/Linux/bootc/bootc_composefs-deadbeef01234567.efi", "deadbeef01234567", True, id="efi-nested-path"),
    pytest.param("/EFI/Linux/bootc/bootc_composefs-%s.efi" % DIGEST, DIGEST, True, id="efi-full-digest"),
])
def test_artifact_from_efi_path(path, name, prefixed):
    assert artifact.artifact_from_efi_path(path) == artifact.ArtifactName(name=name, prefixed=prefixed)


@pytest.mark.parametrize("path, message", [
    pytest.param("bootc_composefs-abcd1234", "suffix", id="efi-missing-suffix"),
    pytest.param("/EFI/Linux/bootc/bootc_composefs-abcd1234", "suffix", id="chainloader-missing-suffix"),
    pytest.param("/", "no file name", id="efi-no-file-name"),
    pytest.param("", "no file name", id="empty-path"),
])
def test_artifact_from_efi_path_errors(path, message):
    with pytest.raises(FormatError, match=message):
        artifact.artifact_from_efi_path(path)


@pytest.mark.parametrize("path, name, prefixed", [
    pytest.param("/boot/bootc_composefs-xyz5678/vmlinuz", "xyz5678", True, id="type1-with-prefix"),
    pytest.param("/boot/bootc_composefs-%s/vmlinuz" % DIGEST, DIGEST, True, id="type1-deep-path"),
    pytest.param("/EFI/Linux/bootc_composefs-%s/vmlinuz" % DIGEST, DIGEST, True, id="type1-on-esp"),
    pytest.param("/bootc_composefs-abc/vmlinuz", "abc", True, id="separate-boot-partition-path"),
    pytest.param("/boot/%s/vmlinuz-5.14.10" % DIGEST, DIGEST, False, id="legacy-unprefixed"),
])
def test_artifact_from_linux_path(path, name, prefixed):
    assert artifact.artifact_from_linux_path(path) == artifact.ArtifactName(name=name, prefixed=prefixed)


@pytest.mark.parametrize("path", [
    pytest.param("vmlinuz", id="no-parent"),
    pytest.param("/vmlinuz", id="parent-is-root"),
    pytest.param("/boot/../vmlinuz", id="parent-is-dotdot"),
])
def test_artifact_from_linux_path_errors(path):
    with pytest.raises(FormatError, match="parent"):
        artifact.artifact_from_linux_path(path)


@pytest.mark.parametrize("path, verity", [
    pytest.param("/EFI/Linux/bootc/bootc_composefs-%s.efi" % DIGEST, DIGEST, id="prefixed"),
    pytest.param("bootc_composefs-abc123def456.efi", "abc123def456", id="prefixed-short"),
    pytest.param("/EFI/Linux/%s.efi" % DIGEST, DIGEST, id="legacy-64-hex"),
    pytest.param("/EFI/Linux/bootc/%s.efi" % VERITY_128, VERITY_128, id="legacy-128-hex"),
])
def test_verity_from_efi_path(path, verity):
    assert artifact.verity_from_efi_path(path) == verity


@pytest.mark.parametrize("path, message", [
    pytest.param("/EFI/fedora/fwupdx64.efi", "not a bootc UKI", id="fwupd"),
    pytest.param("/EFI/memtest86/memtest.efi", "not a bootc UKI", id="memtest"),
    pytest.param("/EFI/Linux/uki.efi", "not a bootc UKI", id="other-uki"),
    pytest.param("/EFI/Linux/%s.efi" % DIGEST.upper(), "not a bootc UKI", id="uppercase-hex-is-not-legacy"),
    pytest.param("/EFI/Linux/bootc/bootc_composefs-.efi", "names no deployment", id="prefix-only"),
    pytest.param("/EFI/Linux/bootc/bootc_composefs-x", "suffix", id="no-suffix"),
])
def test_verity_from_efi_path_errors(path, message):
    with pytest.raises(FormatError, match=message):
        artifact.verity_from_efi_path(path)


def test_names_on_disk():
    assert artifact.type1_dir_name("abc") == "bootc_composefs-abc"
    assert artifact.uki_file_name("abc") == "bootc_composefs-abc.efi"
    assert artifact.addon_dir_name("abc") == "bootc_composefs-abc.efi.extra.d"


@pytest.mark.parametrize("name, safe", [("abc", True), ("", False), (".", False), ("..", False), ("a/b", False), ("../x", False)])
def test_is_safe_name(name, safe):
    assert artifact.is_safe_name(name) is safe
