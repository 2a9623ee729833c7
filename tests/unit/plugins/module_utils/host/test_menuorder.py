"""host/menuorder.py: UAPI version comparison and BLS menu order (spec §2.4, §6.3 cases 2, 6, 7).

Version cases: systemd's test-string-util.c suite (as run by the uapi-version crate bootc uses) and
the examples of the UAPI Version Format Specification. Ordering cases: bootc bls_config.rs and
status.rs tests.
"""

import collections

import pytest

from ansible_collections.bootc.composefs.plugins.module_utils.host import bls, entries, menuorder
from ansible_collections.bootc.composefs.plugins.module_utils.host.paths import load_host_paths

# systemd test_strverscmp_improved: each version is older than every later one.
ORDERED_VERSIONS = [
    "~1", "", "ab", "abb", "abc", "0001", "002", "12", "122", "122.9", "123~rc1", "123", "123-a", "123-a.1", "123-a1",
    "123-a1.1", "123-3", "123-3.1", "123^patch1", "123^1", "123.a-1", "123.1-1", "123a-1", "124",
]

OLDER_NEWER = [
    ("123.45-67.88", "123.45-67.89"), ("123.45-67.89", "123.45-67.89a"), ("123.45-67.ab", "123.45-67.89"),
    ("123.45-67.9", "123.45-67.89"), ("123.45-67", "123.45-67.89"), ("123.45-66.89", "123.45-67.89"),
    ("123.45-9.99", "123.45-67.89"), ("123.42-99.99", "123.45-67.89"), ("123-99.99", "123.45-67.89"),
    ("123~rc1-99.99", "123.45-67.89"), ("123~rc1-99.99", "123-45.67.89"), ("123~rc1-99.99", "123~rc2-67.89"),
    ("123~rc1-99.99", "123^aa2-67.89"), ("123~rc1-99.99", "123aa2-67.89"), ("1.0.0~rc1", "1.0.0"),
    ("123-99.99", "123^aa2-67.89"), ("123-99.99", "123aa2-67.89"),
    ("123^45-67.89", "123.45-67.89"), ("123^aa1-99.99", "123^aa2-67.89"), ("123^aa2-67.89", "123aa2-67.89"),
    ("123.aa2-67.89", "123aa2-67.89"), ("123.aa2-67.89", "123.ab2-67.89"),
    ("12_3", "123"), ("123", "123."), ("12", "12_3"), ("12.3", "12_3"), ("123", "123.0"), ("123", "123_0"),
    ("123..0", "123.0"), ("~", ""),
    # UAPI specification examples (where they agree with the code).
    ("bar-123", "foo-123"), ("123", "123a"), ("123", "123.a"), ("123.a", "123.b"), ("123.a", "123a"), ("A", "a"),
    ("", "0"), ("0", "0."), ("0", "0.0"), ("1_", "1.2"), ("1.3.3", "1_2_3"), ("1+", "1.2"), ("1.3.3", "1+2+3"),
    # bootc: a final release sorts newer than its release candidate.
    ("1.0~rc1", "1.0"), ("41.20251125.0", "42.20251125.0"), ("9", "10"),
]

EQUAL = [
    ("123_aa2-67.89", "123aa+2-67.89"), ("0_", "0"), ("_0_", "0"), ("_0", "0"), ("0", "0___"), ("", "_"), ("_", "_"),
    ("~", "~"), ("1\u0660\u0661\u0662", "1"), ("1\u0e50\u0e51", "1"),
    ("11", "11"), ("systemd-123", "systemd-123"), ("11\u03b1", "11\u03b2"), ("1_", "1"), ("_1", "1"), ("1+", "1"), ("+1", "1"),
]


def test_systemd_version_order():
    for index, older in enumerate(ORDERED_VERSIONS):
        for newer in ORDERED_VERSIONS[index + 1:]:
            assert menuorder.compare_versions(older, newer) == -1, (older, newer)
            assert menuorder.compare_versions(newer, older) == 1, (newer, older)


@pytest.mark.parametrize("older, newer", OLDER_NEWER, ids=["%s<%s" % pair for pair in OLDER_NEWER])
def test_older_newer(older, newer):
    assert menuorder.compare_versions(older, newer) == -1
    assert menuorder.compare_versions(newer, older) == 1


@pytest.mark.parametrize("left, right", EQUAL, ids=["%r==%r" % pair for pair in EQUAL])
def test_equal(left, right):
    assert menuorder.compare_versions(left, right) == 0
    assert menuorder.compare_versions(right, left) == 0


def test_tilde_is_lowest_even_below_the_empty_string():
    # The specification's example list says '' < '~' and '0' < '~'; systemd and uapi-version say otherwise.
    assert menuorder.compare_versions("~", "") == -1
    assert menuorder.compare_versions("~", "0") == -1


def _entry(text):
    return bls.parse_bls_entry(text)


@pytest.mark.parametrize("first, second, sign", [
    pytest.param("version 3\nlinux /vmlinuz-3\n", "version 5\nlinux /vmlinuz-5\n", 1, id="by-version-descending"),
    pytest.param("version 3\nsort-key a\nlinux /v\n", "version 5\nsort-key b\nlinux /v\n", -1, id="by-sort-key"),
    pytest.param("version 3\nsort-key a\nlinux /v\n", "version 5\nsort-key a\nlinux /v\n", 1, id="same-sort-key-then-version"),
    pytest.param("version 3\nmachine-id a\nlinux /v\n", "version 5\nmachine-id b\nlinux /v\n", -1, id="by-machine-id"),
    pytest.param("version 3\nmachine-id a\nlinux /v\n", "version 5\nmachine-id a\nlinux /v\n", 1, id="same-machine-id-then-version"),
    pytest.param("version 1.0\nlinux /v\n", "version 1.0~rc1\nlinux /v\n", -1, id="final-before-rc"),
    pytest.param("version 3\nsort-key a\nlinux /v\n", "version 5\nlinux /v\n", 1, id="one-sort-key-missing-falls-to-version"),
])
def test_compare_bls_entries(first, second, sign):
    assert menuorder.compare_bls_entries(_entry(first), _entry(second)) == sign


def _listing(tree):
    return entries.list_bls_entries(load_host_paths(str(tree.root)), str(tree.entries_root))


def test_systemd_sort_by_sort_key(systemd_tree):
    digest_1 = "7e11ac46e3e022053e7226a20104ac656bf72d1a84e3a398b7cce70e9df188b6"
    digest_2 = "febdf62805de2ae7b6b597f2a9775d9c8a753ba1e5f09298fc8fbe0b0d13bf01"
    systemd_tree.entry("random_file.txt", "Random file that we won't parse")
    for name, digest, key in (("entry1.conf", digest_1, "1"), ("entry2.conf", digest_2, "2")):
        systemd_tree.entry(name, "title Fedora\nversion fedora-42.0\nsort-key %s\nlinux /boot/%s/vmlinuz-5.14.10\n"
                                 "initrd /boot/%s/initramfs-5.14.10.img\noptions root=UUID=abc123 rw composefs=%s\n"
                           % (key, digest, digest, digest))
    listing = _listing(systemd_tree)
    assert [e.name for e in listing.configured] == ["entry1.conf", "entry2.conf"]
    assert [e.bls.sort_key for e in menuorder.sort_menu(listing.configured, "systemd")] == ["1", "2"]
    assert [e.bls.sort_key for e in menuorder.sort_menu(listing.configured, "systemd", ascending=False)] == ["2", "1"]


def test_systemd_sort_key_then_version(systemd_tree):
    for version, priority in (("1.0.0", bls.PRIORITY_SECONDARY), ("2.0.0", bls.PRIORITY_PRIMARY), ("1.5.0", bls.PRIORITY_PRIMARY)):
        systemd_tree.entry(bls.entry_file_name("fedora", version, priority),
                           "title Fedora Linux (%s)\nversion %s\nsort-key %s\nlinux /boot/vmlinuz\ninitrd /boot/initramfs.img\n"
                           % (version, version, bls.entry_sort_key("fedora", priority)))
    configured = _listing(systemd_tree).configured
    ascending = menuorder.sort_menu(configured, "systemd")
    assert [(e.bls.sort_key, e.bls.version) for e in ascending] == [
        ("bootc-fedora-0", "2.0.0"), ("bootc-fedora-0", "1.5.0"), ("bootc-fedora-1", "1.0.0")]
    descending = menuorder.sort_menu(configured, "systemd", ascending=False)
    assert [e.bls.version for e in descending] == ["1.0.0", "1.5.0", "2.0.0"]


@pytest.mark.parametrize("kind", ["grub", "grub-cc"])
def test_grub_sorts_by_file_name_ignoring_sort_key(grub_tree, kind):
    for version, priority in (("41.20251125.0", bls.PRIORITY_SECONDARY), ("42.20251125.0", bls.PRIORITY_PRIMARY)):
        grub_tree.entry(bls.entry_file_name("fedora", version, priority),
                        "title Fedora Linux (%s)\nversion %s\nsort-key %s\nlinux /boot/vmlinuz\ninitrd /boot/initramfs.img\n"
                        % (version, version, bls.entry_sort_key("fedora", priority)))
    configured = _listing(grub_tree).configured
    assert [e.bls.version for e in menuorder.sort_menu(configured, kind)] == ["42.20251125.0", "41.20251125.0"]
    assert [e.bls.version for e in menuorder.sort_menu(configured, kind, ascending=False)] == ["41.20251125.0", "42.20251125.0"]


def test_grub_file_name_order_is_bytewise_not_version_aware():
    item = collections.namedtuple("Item", "name bls")
    names = ["bootc_fedora-9-1.conf", "bootc_fedora-10-1.conf", "bootc_fedora-10-0.conf"]
    ordered = menuorder.sort_menu([item(name, None) for name in names], "grub")
    assert [i.name for i in ordered] == ["bootc_fedora-9-1.conf", "bootc_fedora-10-1.conf", "bootc_fedora-10-0.conf"]


def test_equal_entries_keep_input_order_in_both_directions():
    item = collections.namedtuple("Item", "name bls")
    same = _entry("version 1\nsort-key k\nlinux /v\n")
    items = [item("a.conf", same), item("b.conf", same)]
    assert [i.name for i in menuorder.sort_menu(items, "systemd")] == ["a.conf", "b.conf"]
    assert [i.name for i in menuorder.sort_menu(items, "systemd", ascending=False)] == ["a.conf", "b.conf"]
