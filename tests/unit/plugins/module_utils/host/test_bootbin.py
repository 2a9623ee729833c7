"""host/bootbin.py: boot binaries on disk and which entries reference them (spec §6.2, bootc gc.rs tests).

The §6.2 scenarios replay bootc's TestRoot sequences with ``host_tree.Type1History``; bootc's GC
scanner only sees prefixed binaries, so "visible" below means ``prefixed``.
"""

import os

from ansible_collections.bootc.composefs.plugins.module_utils.host import bootbin, entries
from ansible_collections.bootc.composefs.plugins.module_utils.host.paths import load_host_paths
from host_tree import Type1History, fake_digest

A, B, C, D = (fake_digest(n) for n in range(4))


def _scan(tree):
    paths = load_host_paths(str(tree.root))
    binaries = bootbin.load_boot_binaries(paths, "grub")
    listed = entries.list_bls_entries(paths, paths.boot_dir)
    return binaries, listed.composefs


def _visible(binaries):
    return [b for b in binaries.binaries if b.prefixed]


def _unreferenced(binaries, bls_entries):
    return sorted(b.name for b in bootbin.unreferenced_binaries(_visible(binaries), [e.boot_artifact_name for e in bls_entries]))


def _artifact_of(bls_entries, verity):
    return next(e.boot_artifact_name for e in bls_entries if e.verity == verity)


def test_shared_type1_dirs_are_not_unreferenced_2102(grub_tree):
    history = Type1History(grub_tree)
    history.upgrade(1)
    history.upgrade(2, kernel=True)
    history.upgrade(3)
    history.gc(A)
    binaries, bls_entries = _scan(grub_tree)
    assert sorted(b.name for b in _visible(binaries)) == sorted([A, C])
    assert sorted(e.verity for e in bls_entries) == sorted([C, D])
    assert _unreferenced(binaries, bls_entries) == [A]

    history.gc(C)
    binaries, bls_entries = _scan(grub_tree)
    assert sorted(b.name for b in _visible(binaries)) == sorted([A, C])
    assert sorted(e.verity for e in bls_entries) == sorted([B, D])
    assert _artifact_of(bls_entries, D) == C
    assert _unreferenced(binaries, bls_entries) == []
    # Matching on deployment verities instead (the pre-#2102 filter) would flag both dirs.
    verities = {e.verity for e in bls_entries}
    assert sorted(b.name for b in _visible(binaries) if b.name not in verities) == sorted([A, C])


def test_legacy_entries_are_listed_with_unprefixed_artifacts(grub_tree):
    history = Type1History(grub_tree, legacy=True)
    history.upgrade(1)
    bls_entries = _scan(grub_tree)[1]
    assert len(bls_entries) == 2
    assert [(e.boot_artifact_name, e.has_prefix) for e in bls_entries] == [(A, False), (A, False)]
    assert {e.verity for e in bls_entries} == {A, B}


def test_legacy_dirs_are_invisible_to_the_scanner_and_reported(grub_tree):
    Type1History(grub_tree, legacy=True)
    binaries = _scan(grub_tree)[0]
    assert _visible(binaries) == []
    assert [(b.name, b.prefixed) for b in binaries.binaries] == [(A, False)]
    assert [b.name for b in binaries.legacy] == [A]
    assert [f.code for f in binaries.findings] == ["legacy-boot-layout"]


def test_gc_after_migration(grub_tree):
    history = Type1History(grub_tree, legacy=True)
    history.upgrade(1)
    history.upgrade(2, kernel=True)
    history.migrate()
    binaries, bls_entries = _scan(grub_tree)
    assert len(_visible(binaries)) == 2
    assert len(bls_entries) == 2
    assert _unreferenced(binaries, bls_entries) == []
    history.gc(A)
    binaries, bls_entries = _scan(grub_tree)
    assert sorted(e.verity for e in bls_entries) == sorted([B, C])
    assert len(_visible(binaries)) == 2
    assert _unreferenced(binaries, bls_entries) == []


def test_post_migration_upgrade_cycle(grub_tree):
    history = Type1History(grub_tree, legacy=True)
    history.upgrade(1)
    history.migrate()
    history.upgrade(2, kernel=True)
    history.upgrade(3)
    history.gc(A)
    binaries, bls_entries = _scan(grub_tree)
    assert sorted(e.verity for e in bls_entries) == sorted([C, D])
    assert _unreferenced(binaries, bls_entries) == [A]
    assert _artifact_of(bls_entries, D) == C


def test_deep_transitive_sharing(grub_tree):
    history = Type1History(grub_tree)
    for number in (1, 2, 3):
        history.upgrade(number)
    binaries, bls_entries = _scan(grub_tree)
    assert [b.name for b in _visible(binaries)] == [A]
    assert [e.boot_artifact_name for e in bls_entries] == [A, A]
    history.gc(A)
    binaries, bls_entries = _scan(grub_tree)
    assert len(bls_entries) == 2
    assert _unreferenced(binaries, bls_entries) == []
    history.gc(B)
    history.gc(C)
    binaries, bls_entries = _scan(grub_tree)
    assert [(e.verity, e.boot_artifact_name) for e in bls_entries] == [(D, A)]
    assert _unreferenced(binaries, bls_entries) == []


def test_prefix_signal_drives_migration(grub_tree):
    history = Type1History(grub_tree, legacy=True)
    history.upgrade(1)
    history.upgrade(2, kernel=True)
    binaries, bls_entries = _scan(grub_tree)
    assert len(bls_entries) == 2 and not any(e.has_prefix for e in bls_entries)
    assert _visible(binaries) == []
    history.migrate()
    binaries, bls_entries = _scan(grub_tree)
    assert all(e.has_prefix for e in bls_entries)
    assert len(_visible(binaries)) == 2
    assert _unreferenced(binaries, bls_entries) == []
    history.upgrade(3, kernel=True)
    binaries, bls_entries = _scan(grub_tree)
    assert all(e.has_prefix for e in bls_entries)
    assert len(_visible(binaries)) == 3 and len(bls_entries) == 2
    assert _unreferenced(binaries, bls_entries) == [A]


def test_ukis_addons_and_sizes(systemd_tree):
    keep, orphan_owner, legacy = "aa" * 64, "bb" * 64, "cc" * 64
    systemd_tree.uki(keep, content=b"U" * 100, addons={"console.addon.efi": b"A" * 10, "debug.addon.efi": b"B" * 5})
    systemd_tree.addon_dir(orphan_owner, addons={"x.addon.efi": b"X" * 7})
    systemd_tree.uki(legacy, prefixed=False)
    systemd_tree.write(systemd_tree.esp / "EFI" / "Linux" / "bootc" / "global.addon.efi", b"G")
    systemd_tree.write(systemd_tree.esp / "EFI" / "Linux" / "bootc" / "bootc_composefs-noext", b"N")
    systemd_tree.type1_dir("dd" * 64, kernel=b"k" * 30, initrd=b"i" * 20)
    systemd_tree.write(systemd_tree.esp / "EFI" / "Linux" / "other" / "x", b"")
    paths = load_host_paths(str(systemd_tree.root))
    binaries = bootbin.load_boot_binaries(paths, "systemd")
    assert binaries.type1_dir == str(systemd_tree.esp / "EFI" / "Linux")
    assert binaries.uki_dir == str(systemd_tree.esp / "EFI" / "Linux" / "bootc")
    summary = sorted((b.boot_type, b.name, b.prefixed, b.apparent_bytes) for b in binaries.binaries)
    assert summary == sorted([("uki", keep, True, 115), ("uki", legacy, False, len(b"MZ-fake-uki")), ("bls", "dd" * 64, True, 50)])
    kept = next(b for b in binaries.binaries if b.name == keep)
    assert os.path.basename(kept.addon_dir.path) == "bootc_composefs-%s.efi.extra.d" % keep
    assert kept.addon_dir.apparent_bytes == 15
    assert [(a.name, a.apparent_bytes) for a in binaries.orphan_addon_dirs] == [(orphan_owner, 7)]
    assert sorted(f.code for f in binaries.findings) == ["legacy-boot-layout", "orphan-addon-dir"]
    assert [b.name for b in bootbin.unreferenced_binaries(binaries.binaries, [keep, legacy])] == ["dd" * 64]


def test_grub_scans_the_boot_dir_and_ignores_other_dirs(grub_tree):
    grub_tree.type1_dir("ee" * 64)
    for name in ("loader", "grub2", "efi", "bootc_composefs-"):
        (grub_tree.boot / name).mkdir(exist_ok=True)
    grub_tree.write(grub_tree.boot / ("bootc_composefs-" + "ff" * 64), b"a file, not a kernel dir")
    binaries = bootbin.load_boot_binaries(load_host_paths(str(grub_tree.root)), "grub")
    assert [(b.boot_type, b.name) for b in binaries.binaries] == [("bls", "ee" * 64)]
    assert binaries.findings == ()


def test_missing_directories_are_empty(tmp_path):
    binaries = bootbin.load_boot_binaries(load_host_paths(tmp_path), "systemd")
    assert binaries.binaries == () and binaries.orphan_addon_dirs == () and binaries.findings == ()
