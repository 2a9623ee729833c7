"""host/entries.py: configured and staged entries, foreign and damaged entries, entry files, source choice (spec §2.3, §6.3 case 5)."""

import errno

import pytest

from ansible_collections.bootc.composefs.plugins.module_utils.host import entries
from ansible_collections.bootc.composefs.plugins.module_utils.host.paths import load_host_paths
from host_tree import fake_digest

A, B = fake_digest(0), fake_digest(1)
FWUPD = "title Firmware Updater\nversion 1.9.21\nefi /EFI/fedora/fwupdx64.efi\n"
MEMTEST = "title Memtest86+\nversion 7.20\nlinux /memtest86+x64.bin\n"
MEMTEST_NO_VERSION = "title Memtest86+ EFI\nefi /EFI/memtest86/memtest.efi\n"


def _bls(tree):
    paths = load_host_paths(str(tree.root))
    return entries.list_bls_entries(paths, str(tree.entries_root))


def _grub(tree):
    paths = load_host_paths(str(tree.root))
    return entries.list_grub_entries(paths, str(tree.boot))


def test_staged_entries_are_included(grub_tree):
    grub_tree.entry("active.conf", "title Active Deployment\nversion 2\nsort-key 1\nlinux /boot/bootc_composefs-%(a)s/vmlinuz\n"
                    "initrd /boot/bootc_composefs-%(a)s/initramfs.img\noptions root=UUID=abc123 rw composefs=%(a)s\n" % {"a": A})
    grub_tree.entry("staged.conf", "title Staged Deployment\nversion 3\nsort-key 0\nlinux /boot/bootc_composefs-%(b)s/vmlinuz\n"
                    "initrd /boot/bootc_composefs-%(b)s/initramfs.img\noptions root=UUID=abc123 rw composefs=%(b)s\n" % {"b": B},
                    staged=True)
    listing = _bls(grub_tree)
    assert [(e.name, e.verity, e.staged) for e in listing.all] == [("active.conf", A, False), ("staged.conf", B, True)]
    assert {e.verity for e in listing.composefs} == {A, B}
    assert listing.findings == ()


def test_foreign_entries_do_not_abort_the_listing_2228(systemd_tree):
    systemd_tree.uki_entry("bootc_fedora-42-1.conf", A, sort_key="bootc-fedora-0")
    systemd_tree.entry("fwupd.conf", FWUPD)
    systemd_tree.entry("memtest.conf", MEMTEST)
    systemd_tree.entry("memtest-efi.conf", MEMTEST_NO_VERSION)
    systemd_tree.entry("README.txt", "not an entry")
    (systemd_tree.esp / "loader" / "entries" / "dir.conf").mkdir()
    listing = _bls(systemd_tree)
    assert [e.verity for e in listing.composefs] == [A]
    foreign = {e.name: e.problem for e in listing.foreign}
    assert set(foreign) == {"fwupd.conf", "memtest.conf", "memtest-efi.conf"}
    assert "not a bootc UKI" in foreign["fwupd.conf"]
    assert "no 'options'" in foreign["memtest.conf"]
    assert "version" in foreign["memtest-efi.conf"]
    assert sorted((f.code, f.path.rsplit("/", 1)[1]) for f in listing.findings) == [
        ("foreign-entry", "fwupd.conf"), ("foreign-entry", "memtest-efi.conf"), ("foreign-entry", "memtest.conf")]
    fwupd = next(e for e in listing.foreign if e.name == "fwupd.conf")
    assert fwupd.boot_type == "uki" and fwupd.bls.efi == "/EFI/fedora/fwupdx64.efi"


def test_unreadable_and_odd_entries(grub_tree):
    grub_tree.entry("latin1.conf", b"title caf\xe9\nversion 1\nlinux /v\n")
    grub_tree.entry("escape.conf", "version 1\nlinux /boot/bootc_composefs-x/vmlinuz\noptions composefs=../../etc\n")
    grub_tree.entry("noparent.conf", "version 1\nlinux /vmlinuz\noptions composefs=%s\n" % A)
    listing = _bls(grub_tree)
    assert [e.name for e in listing.all] == ["escape.conf", "noparent.conf"]
    escape, noparent = listing.all
    assert escape.foreign and "path component" in escape.problem
    assert escape.damaged and listing.damaged == (escape,) and listing.foreign == ()  # composefs= and a bootc_composefs- path
    assert (noparent.verity, noparent.artifact, noparent.foreign) == (A, None, False)
    assert "parent" in noparent.problem
    assert sorted(f.code for f in listing.findings) == ["damaged-entry", "unknown-boot-artifact", "unreadable-file"]


def test_missing_entries_dirs(grub_tree):
    listing = _bls(grub_tree)
    assert listing.all == () and listing.findings == ()


def test_grub_menus_configured_and_staged(grub_tree):
    grub_tree.user_cfg([A])
    grub_tree.user_cfg([B, A], staged=True)
    listing = _grub(grub_tree)
    assert [(e.verity, e.staged, e.position, e.boot_type, e.has_prefix) for e in listing.all] == [
        (A, False, 0, "uki", True), (B, True, 0, "uki", True), (A, True, 1, "uki", True)]
    assert listing.configured[0].name == "Fedora Linux 42 (Forty Two): (%s)" % A
    assert listing.configured[0].path == str(grub_tree.boot / "grub2" / "user.cfg")


def test_grub_password_only_user_cfg_has_no_entries(grub_tree):
    grub_tree.write(grub_tree.boot / "grub2" / "user.cfg", "GRUB2_PASSWORD=grub.pbkdf2.sha512.10000.0A1B.2C3D")
    listing = _grub(grub_tree)
    assert listing.all == () and listing.has_password and listing.findings == ()


def test_grub_foreign_menuentry_and_broken_staged_file(grub_tree):
    grub_tree.write(grub_tree.boot / "grub2" / "user.cfg",
                    'menuentry "Windows" {\n insmod chain\n chainloader /EFI/Microsoft/Boot/bootmgfw.efi\n}\n')
    grub_tree.write(grub_tree.boot / "grub2" / "user.cfg.staged", 'menuentry "broken" {\n')
    listing = _grub(grub_tree)
    assert [e.name for e in listing.foreign] == ["Windows"]
    assert listing.composefs == ()
    assert sorted(f.code for f in listing.findings) == ["foreign-entry", "unreadable-file"]


def _set(source, verities):
    fake = tuple(entries.BootEntry(source=source, path="/x", name=v, staged=False, position=0, boot_type=None, verity=v,
                                   artifact=None, problem=None) for v in verities)
    return entries.EntrySet(source=source, configured=fake, staged=(), findings=())


@pytest.mark.parametrize("bls_verities, grub_verities, booted_type, expected, conflict", [
    pytest.param([A], [], None, "bls", False, id="only-bls"),
    pytest.param([], [A], None, "grub", False, id="only-grub"),
    pytest.param([], [], None, "bls", False, id="neither"),
    pytest.param([A], [A], "uki", "grub", True, id="both-origin-says-uki"),
    pytest.param([A], [A], "bls", "bls", True, id="both-origin-says-bls"),
    pytest.param([B], [A], None, "grub", True, id="both-only-grub-names-booted"),
    pytest.param([A], [A], None, "bls", True, id="both-default-bls"),
])
def test_choose_source(bls_verities, grub_verities, booted_type, expected, conflict):
    chosen, why = entries.choose_source(_set("bls", bls_verities), _set("grub", grub_verities), A, booted_type)
    assert chosen.source == expected
    assert (why is not None) is conflict


def test_choose_source_without_grub_set():
    chosen, why = entries.choose_source(_set("bls", []), None, A, "uki")
    assert chosen.source == "bls" and why is None


# --- damaged (bootc's, unidentifiable) versus foreign (another tool's) ------------------------------------


@pytest.mark.parametrize("file_name, text, damaged", [
    pytest.param("bootc_fedora-42-1.conf", "title Fedora\nverzion 42\nlinux /boot/bootc_composefs-%s/vmlinuz\noptions composefs=%s\n" % (A, A),
                 True, id="bootc-file-name-no-version"),
    pytest.param("bootc_fedora-42-1.conf", "title Fedora\nversion 42\nlinux /boot/vmlinuz\noptions rw\n", True,
                 id="bootc-file-name-only"),
    pytest.param("custom.conf", "title X\nversion 1\nefi /EFI/x/grubx64.efi\nsort-key bootc-fedora-0\n", True, id="bootc-sort-key"),
    pytest.param("rescue.conf", "title Rescue\nversion 1\nlinux /boot/bootc_composefs-%s/vmlinuz\n" % A, True,
                 id="bootc-kernel-dir-no-options"),
    pytest.param("cut.conf", "title Cut\nversion 1\nlinux /boot/vmlinuz\noptions rw composefs=\n", True, id="empty-composefs-value"),
    pytest.param("initrd.conf", "title I\nversion 1\nlinux /vmlinuz\ninitrd /boot/bootc_composefs-x/initrd\noptions rw\n", True,
                 id="bootc-initrd-path"),
    pytest.param("broken.conf", "no key value lines at all composefs=%s\n" % A, True, id="unparsable-with-composefs"),
    pytest.param("fwupd.conf", FWUPD, False, id="fwupd"),
    pytest.param("memtest.conf", MEMTEST, False, id="memtest"),
    pytest.param("other-os.conf", "title Debian\nversion 12\nlinux /vmlinuz-6.1\noptions root=/dev/sda2 rw\nsort-key debian\n", False,
                 id="another-os"),
])
def test_an_unidentifiable_entry_that_looks_like_bootcs_is_damaged(systemd_tree, file_name, text, damaged):
    systemd_tree.entry(file_name, text)
    entry, = _bls(systemd_tree).all
    assert entry.verity is None and entry.damaged is damaged
    code, = [f.code for f in _bls(systemd_tree).findings]
    assert code == ("damaged-entry" if damaged else "foreign-entry")


def test_grub_menuentries_damaged_and_foreign(grub_tree):
    grub_tree.write(grub_tree.boot / "grub2" / "user.cfg",
                    'menuentry "Windows" {\n insmod chain\n chainloader /EFI/Microsoft/Boot/bootmgfw.efi\n}\n'
                    'menuentry "Fedora (bootc_composefs-%s)" {\n insmod chain\n chainloader /EFI/Linux/bootc/fedora.efi\n}\n' % A)
    listing = _grub(grub_tree)
    assert [e.name for e in listing.foreign] == ["Windows"]
    assert [e.name for e in listing.damaged] == ["Fedora (bootc_composefs-%s)" % A]
    assert sorted(f.code for f in listing.findings) == ["damaged-entry", "foreign-entry"]


# --- entry files: every file a bootloader may read, and the artifact names written in it ---------------


@pytest.mark.parametrize("text, names", [
    ("linux /boot/bootc_composefs-%s/vmlinuz\ninitrd /boot/bootc_composefs-%s/initrd\n" % (A, B), {A, B}),
    ("efi /EFI/Linux/bootc/bootc_composefs-%s.efi\n" % A, {A}),
    ("chainloader /EFI/Linux/bootc/bootc_composefs-%s.efi.extra.d/x.addon.efi\n" % A, {A}),
    ("# a comment naming bootc_composefs-old-kernel_1.2+x\n", {"old-kernel_1.2+x"}),
    ("title nothing of bootc's\n", set()),
], ids=["type1", "uki", "addon-dir", "comment", "none"])
def test_artifact_names_in(text, names):
    assert entries.artifact_names_in(text) == frozenset(names)


def test_entry_files_cover_both_roots_every_file_and_both_menus(grub_tree):
    grub_tree.entry("bootc_fedora-44-1.conf", "linux /boot/bootc_composefs-%s/vmlinuz\n" % A)
    grub_tree.entry("notes.txt", "old: bootc_composefs-%s\n" % B, staged=True)
    grub_tree.write(grub_tree.esp / "loader" / "entries" / "esp.conf", "efi /EFI/Linux/bootc/bootc_composefs-esp.efi\n")
    grub_tree.write(grub_tree.boot / "grub2" / "user.cfg.staged", "chainloader /EFI/Linux/bootc/bootc_composefs-menu.efi\n")
    grub_tree.write(grub_tree.esp / "grub2" / "user.cfg", b"\xff not text")
    (grub_tree.boot / "loader" / "entries" / "subdir.conf").mkdir()
    paths = load_host_paths(str(grub_tree.root))
    found = {f.path: f for f in entries.list_entry_files(paths, [paths.boot_dir, paths.esp])}
    boot, esp = str(grub_tree.boot), str(grub_tree.esp)
    assert sorted(found) == sorted([boot + "/loader/entries/bootc_fedora-44-1.conf", boot + "/loader/entries.staged/notes.txt",
                                    esp + "/loader/entries/esp.conf", boot + "/grub2/user.cfg.staged", esp + "/grub2/user.cfg"])
    assert found[boot + "/loader/entries/bootc_fedora-44-1.conf"].artifact_names == frozenset([A])
    assert found[boot + "/loader/entries.staged/notes.txt"].artifact_names == frozenset([B])
    assert found[esp + "/loader/entries/esp.conf"].artifact_names == frozenset(["esp"])
    assert found[boot + "/grub2/user.cfg.staged"].artifact_names == frozenset(["menu"])
    unreadable = found[esp + "/grub2/user.cfg"]
    assert unreadable.artifact_names == frozenset() and "UTF-8" in unreadable.problem
    assert all(f.problem is None for f in found.values() if f is not unreadable)


def test_an_entries_dir_that_cannot_be_listed_is_an_entry_file_problem(grub_tree, monkeypatch):
    grub_tree.entry("bootc_fedora-44-1.conf", "linux /boot/bootc_composefs-%s/vmlinuz\n" % A)
    paths = load_host_paths(str(grub_tree.root))
    directory = str(grub_tree.boot / "loader" / "entries")
    real_scan_dir = type(paths).scan_dir

    def scan_dir(self, path):
        if path == directory:
            raise OSError(errno.EIO, "Input/output error")
        return real_scan_dir(self, path)

    monkeypatch.setattr(type(paths), "scan_dir", scan_dir)
    found, = entries.list_entry_files(paths, [paths.boot_dir])
    assert found.path == directory and found.problem == "cannot be listed: Input/output error"
