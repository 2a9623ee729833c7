"""host/bls.py: BLS entry parsing and identifiers (bootc bls_config.rs and boot.rs cases, spec §1.7, §2.1, §6.4)."""

import pytest

from ansible_collections.bootc.composefs.plugins.module_utils.errors import FormatError
from ansible_collections.bootc.composefs.plugins.module_utils.host import bls

DIGEST = "7e11ac46e3e022053e7226a20104ac656bf72d1a84e3a398b7cce70e9df188b6"
UKI_DIGEST = "f7415d75017a12a387a39d2281e033a288fc15775108250ef70a01dcadb93346"

VALID = """
    title Fedora 42.20250623.3.1 (CoreOS)
    version 2
    linux /boot/%(d)s/vmlinuz-5.14.10
    initrd /boot/%(d)s/initramfs-5.14.10.img
    options root=UUID=abc123 rw composefs=%(d)s
    custom1 value1
    custom2 value2
""" % {"d": DIGEST}


def test_parse_valid_type1_entry():
    entry = bls.parse_bls_entry(VALID)
    assert entry.title == "Fedora 42.20250623.3.1 (CoreOS)"
    assert entry.version == "2"
    assert entry.kind == "type1" and entry.boot_type == "bls"
    assert entry.linux == "/boot/%s/vmlinuz-5.14.10" % DIGEST
    assert entry.initrd == ("/boot/%s/initramfs-5.14.10.img" % DIGEST,)
    assert entry.options == "root=UUID=abc123 rw composefs=%s" % DIGEST
    assert entry.extra == (("custom1", "value1"), ("custom2", "value2"))
    assert entry.efi is None and entry.efi_key is None


def test_parse_multiple_initrd():
    entry = bls.parse_bls_entry("version 2\nlinux /boot/vmlinuz\ninitrd /boot/initramfs-1.img\ninitrd /boot/initramfs-2.img\n"
                                "options root=UUID=abc123 rw\n")
    assert entry.initrd == ("/boot/initramfs-1.img", "/boot/initramfs-2.img")


def test_spec_example_entry():
    text = ("title Fedora Linux 42 (Forty Two)\nversion 42\nlinux /boot/bootc_composefs-%(v)s/vmlinuz\n"
            "initrd /boot/bootc_composefs-%(v)s/initrd\noptions root=UUID=6b2f rw console=ttyS0 composefs=%(v)s\n"
            "sort-key bootc-fedora-0" % {"v": DIGEST})
    entry = bls.parse_bls_entry(text)
    assert entry.sort_key == "bootc-fedora-0"
    assert bls.entry_verity(entry) == DIGEST
    assert bls.entry_artifact(entry).name == DIGEST


@pytest.mark.parametrize("text, message", [
    pytest.param("title Fedora\nlinux /vmlinuz\ninitrd /initramfs.img\noptions root=UUID=xyz ro quiet\n", "version",
                 id="missing-version"),
    pytest.param("title Fedora\nversion 1\ninitrd /initramfs.img\noptions root=UUID=xyz ro quiet\n", "missing 'linux'",
                 id="missing-linux"),
    pytest.param("version 1\nlinux /vmlinuz\nefi /EFI/Linux/x.efi\n", "both", id="linux-and-efi"),
    pytest.param("version 1\nuki /EFI/Linux/x.efi\nlinux /vmlinuz\n", "both", id="uki-and-linux"),
    pytest.param("", "version", id="empty"),
    pytest.param("version\nlinux /vmlinuz\n", "version", id="key-without-value-is-ignored"),
])
def test_parse_errors(text, message):
    with pytest.raises(FormatError, match=message):
        bls.parse_bls_entry(text)


def test_parse_details():
    text = ("# comment\n\n  title   Spaced  Title  \r\nversion\t1.0\nlinux /vmlinuz\noptions a=1\noptions composefs=abc\n"
            "machine-id 0123\nsort-key k\nsort-key k2\nfoo bar\nfoo baz\nlonely\n")
    entry = bls.parse_bls_entry(text)
    assert entry.title == "Spaced  Title"
    assert entry.version == "1.0"
    assert entry.options == "a=1 composefs=abc"
    assert bls.entry_verity(entry) == "abc"
    assert entry.machine_id == "0123"
    assert entry.sort_key == "k2"
    assert entry.extra == (("foo", "bar"), ("foo", "baz"))


@pytest.mark.parametrize("key", ["efi", "uki"])
def test_efi_and_uki_keys_give_the_same_identifiers(key):
    text = "title Fedora UKI\nversion 1\n%s /EFI/Linux/bootc/bootc_composefs-%s.efi\nsort-key bootc-fedora-0\n" % (key, UKI_DIGEST)
    entry = bls.parse_bls_entry(text)
    assert entry.kind == "efi" and entry.boot_type == "uki" and entry.efi_key == key
    assert bls.entry_artifact(entry).name == UKI_DIGEST
    assert bls.entry_verity(entry) == UKI_DIGEST


def test_shared_type1_entry_has_different_verity_and_artifact():
    text = ("version 43\nlinux /boot/bootc_composefs-aaaa/vmlinuz\ninitrd /boot/bootc_composefs-aaaa/initrd\n"
            "options rw composefs=?bbbb\n")
    entry = bls.parse_bls_entry(text)
    assert bls.entry_verity(entry) == "bbbb"
    assert bls.entry_artifact(entry) == bls.artifact.ArtifactName(name="aaaa", prefixed=True)


@pytest.mark.parametrize("text, message", [
    pytest.param("version 1\nlinux /boot/x/vmlinuz\n", "no 'options'", id="no-options"),
    pytest.param("version 1\nlinux /boot/x/vmlinuz\noptions root=/dev/sda rw\n", "no composefs=", id="no-composefs"),
    pytest.param("version 1\nlinux /boot/x/vmlinuz\noptions composefs_backup=abc\n", "no composefs=", id="similar-key"),
    pytest.param("version 1\nefi /EFI/fedora/fwupdx64.efi\n", "not a bootc UKI", id="fwupd"),
])
def test_entry_verity_errors(text, message):
    with pytest.raises(FormatError, match=message):
        bls.entry_verity(bls.parse_bls_entry(text))


@pytest.mark.parametrize("text, message", [
    pytest.param("version 1\nlinux vmlinuz\noptions composefs=a\n", "parent", id="type1-no-parent"),
    pytest.param("version 1\nefi /EFI/Linux/bootc/bootc_composefs-a\n", "suffix", id="efi-no-suffix"),
])
def test_entry_artifact_errors(text, message):
    with pytest.raises(FormatError, match=message):
        bls.entry_artifact(bls.parse_bls_entry(text))


@pytest.mark.parametrize("os_id, version, priority, expected", [
    pytest.param("fedora", "41.20251125.0", bls.PRIORITY_PRIMARY, "bootc_fedora-41.20251125.0-1.conf", id="primary"),
    pytest.param("fedora", "41.20251125.0", bls.PRIORITY_SECONDARY, "bootc_fedora-41.20251125.0-0.conf", id="secondary"),
    pytest.param("fedora-coreos", "41.20251125.0", bls.PRIORITY_PRIMARY, "bootc_fedora_coreos-41.20251125.0-1.conf",
                 id="hyphenated-os-id"),
    pytest.param("my-custom-os", "1.0.0", bls.PRIORITY_PRIMARY, "bootc_my_custom_os-1.0.0-1.conf", id="many-hyphens"),
    pytest.param("rhel", "9.3.0", bls.PRIORITY_SECONDARY, "bootc_rhel-9.3.0-0.conf", id="rhel"),
])
def test_entry_file_name(os_id, version, priority, expected):
    assert bls.entry_file_name(os_id, version, priority) == expected


def test_entry_file_name_parses_like_grub():
    parsed = bls.parse_entry_file_name("bootc_fedora_coreos-41.20251125.0-1.conf")
    assert (parsed.name, parsed.version, parsed.release) == ("bootc_fedora_coreos", "41.20251125.0", "1")
    with pytest.raises(FormatError):
        bls.parse_entry_file_name("fwupd.conf")
    with pytest.raises(FormatError):
        bls.parse_entry_file_name("bootc_fedora-42-1")


def test_sort_keys():
    primary = bls.entry_sort_key("fedora", bls.PRIORITY_PRIMARY)
    secondary = bls.entry_sort_key("fedora", bls.PRIORITY_SECONDARY)
    assert (primary, secondary) == ("bootc-fedora-0", "bootc-fedora-1")
    assert primary < secondary
    assert bls.entry_sort_key("fedora-coreos", bls.PRIORITY_PRIMARY) == "bootc-fedora-coreos-0"


@pytest.mark.parametrize("first, second", [
    pytest.param(("fedora", "41.20251125.0", bls.PRIORITY_PRIMARY), ("fedora", "41.20251125.0", bls.PRIORITY_SECONDARY),
                 id="same-version-primary-first"),
    pytest.param(("fedora", "42.20251125.0", bls.PRIORITY_PRIMARY), ("fedora", "41.20251125.0", bls.PRIORITY_PRIMARY),
                 id="newer-version-first"),
    pytest.param(("rhel", "9.0", bls.PRIORITY_PRIMARY), ("fedora", "41.0", bls.PRIORITY_PRIMARY), id="name-descending"),
])
def test_file_names_sort_descending_like_grub(first, second):
    assert bls.entry_file_name(*first) > bls.entry_file_name(*second)
