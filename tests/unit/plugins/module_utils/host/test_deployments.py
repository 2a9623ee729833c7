"""host/deployments.py: load_host classification and findings (spec §2.5, §2.6, §6.1 T3, Open questions 1, 7, 8, 9, 10).

Each layout gets a booted (B), a staged (S, marked), a rollback and an "other" deployment: three
configured entries (booted, R, O) plus the staged set (S and a copy of B), as bootc leaves them
when an update is staged on a host that still carries an extra entry.
"""

import pytest

from ansible_collections.bootc.composefs.plugins.module_utils.errors import ComposefsError, HostError
from ansible_collections.bootc.composefs.plugins.module_utils.host.deployments import load_host
from ansible_collections.bootc.composefs.plugins.module_utils.host.paths import load_host_paths
from host_tree import HostTree, fake_verity, menuentry_text, origin_text

BOOTED, STAGED, R, O = (fake_verity(n) for n in (1, 2, 3, 4))


def _load(tree, **kwargs):
    return load_host(load_host_paths(str(tree.root)), **kwargs)


def _codes(state):
    return sorted(f.code for f in state.findings)


def _roles(state):
    return [(d.role, d.verity) for d in state.deployments]


def _grub_bls(tree, marker=True, locked=False):
    tree.type1_deployment(BOOTED, "bootc_fedora-44.0-1.conf", sort_key="bootc-fedora-0", version="44.0")
    tree.type1_deployment(R, "bootc_fedora-43.0-0.conf", sort_key="bootc-fedora-1", version="43.0")
    tree.type1_deployment(O, "bootc_fedora-42.0-0.conf", sort_key="bootc-fedora-1", version="42.0")
    tree.type1_deployment(STAGED, "bootc_fedora-45.0-1.conf", staged=True, sort_key="bootc-fedora-0", version="45.0")
    tree.type1_entry("bootc_fedora-44.0-0.conf", BOOTED, staged=True, sort_key="bootc-fedora-1", version="44.0")
    if marker:
        tree.staged_marker(STAGED, locked=locked)
    tree.booted(BOOTED)


def _systemd(tree, uki=False):
    def deploy(verity, name, key, version, staged=False):
        if uki:
            tree.uki_deployment(verity, name, staged=staged, sort_key=key, version=version)
        else:
            tree.type1_deployment(verity, name, staged=staged, sort_key=key, version=version)
    deploy(BOOTED, "bootc_fedora-44.0-1.conf", "bootc-fedora-0", "44.0")
    deploy(R, "bootc_fedora-43.0-0.conf", "bootc-fedora-1", "43.0")
    deploy(O, "bootc_fedora-42.0-0.conf", "bootc-fedora-2", "42.0")
    deploy(STAGED, "bootc_fedora-45.0-1.conf", "bootc-fedora-0", "45.0", staged=True)
    if uki:
        tree.uki_entry("bootc_fedora-44.0-0.conf", BOOTED, staged=True, sort_key="bootc-fedora-1", version="44.0")
    else:
        tree.type1_entry("bootc_fedora-44.0-0.conf", BOOTED, staged=True, sort_key="bootc-fedora-1", version="44.0")
    tree.staged_marker(STAGED)
    tree.booted(BOOTED)


def _grub_uki(tree):
    for verity in (BOOTED, R, O, STAGED):
        tree.uki_deployment(verity)
    tree.user_cfg([BOOTED, R, O])
    tree.user_cfg([STAGED, BOOTED], staged=True)
    tree.staged_marker(STAGED)
    tree.booted(BOOTED)


def test_grub_bls_classification(grub_tree):
    _grub_bls(grub_tree, locked=True)
    state = _load(grub_tree)
    assert state.bootloader.kind == "grub" and state.entry_source == "bls" and state.boot_type == "bls"
    # bootc's rollback list L is reverse menu order on GRUB + BLS, so the rollback is the lowest menu entry.
    assert _roles(state) == [("booted", BOOTED), ("staged", STAGED), ("rollback", O), ("other", R)]
    assert state.staged.download_only and state.staged.staged_marker
    assert [e.verity for e in state.menu_order] == [BOOTED, R, O]
    assert state.rollback_queued is False
    assert state.rollback_queued_bootc is True  # bootc's inverted GRUB + BLS row
    assert state.missing_verity_allowed is False and not state.soft_rebooted
    assert state.artifact_names == frozenset([BOOTED, R, O, STAGED])
    assert sorted(state.live_verities) == sorted([BOOTED, STAGED, R, O])
    assert len(state.booted.entries) == 2 and state.booted.in_configured_entries
    assert not state.staged.in_configured_entries
    assert state.booted.manifest_digest.startswith("sha256:") and state.booted.image.transport == "registry"
    assert len(state.boot_binaries.binaries) == 4
    assert state.findings == ()


def test_systemd_type1_classification(systemd_tree):
    _systemd(systemd_tree)
    state = _load(systemd_tree)
    assert state.bootloader.kind == "systemd" and state.entry_source == "bls" and state.boot_type == "bls"
    assert _roles(state) == [("booted", BOOTED), ("staged", STAGED), ("rollback", R), ("other", O)]
    assert state.rollback_queued is False and state.rollback_queued_bootc is False
    assert state.booted.boot_artifact_names == (BOOTED,)
    assert state.boot_binaries.type1_dir == str(systemd_tree.esp / "EFI" / "Linux")
    assert len(state.boot_binaries.binaries) == 4
    assert state.findings == ()


def test_systemd_uki_classification(systemd_tree):
    _systemd(systemd_tree, uki=True)
    state = _load(systemd_tree)
    assert state.entry_source == "bls" and state.boot_type == "uki"
    assert _roles(state) == [("booted", BOOTED), ("staged", STAGED), ("rollback", R), ("other", O)]
    assert state.rollback_queued is False
    assert state.rollback_queued_bootc is True  # bootc's missing negation for systemd-boot + UKI
    assert sorted(b.boot_type for b in state.boot_binaries.binaries) == ["uki"] * 4
    assert state.findings == ()


def test_grub_uki_classification(grub_tree):
    _grub_uki(grub_tree)
    state = _load(grub_tree)
    assert state.entry_source == "grub" and state.boot_type == "uki"
    assert _roles(state) == [("booted", BOOTED), ("staged", STAGED), ("rollback", R), ("other", O)]
    assert [e.verity for e in state.menu_order] == [BOOTED, R, O]
    assert state.rollback_queued is False and state.rollback_queued_bootc is False
    assert state.artifact_names == frozenset([BOOTED, R, O, STAGED])
    assert state.findings == ()


def test_rollback_queued_after_entries_are_swapped(systemd_tree):
    systemd_tree.type1_deployment(BOOTED, "bootc_bootc-44.0-0.conf", sort_key="bootc-bootc-1", version="44.0")
    systemd_tree.type1_deployment(R, "bootc_bootc-43.0-1.conf", sort_key="bootc-bootc-0", version="43.0")
    systemd_tree.booted(BOOTED)
    state = _load(systemd_tree)
    assert [e.verity for e in state.menu_order] == [R, BOOTED]
    assert state.rollback_queued is True and state.rollback_queued_bootc is True
    assert _roles(state) == [("booted", BOOTED), ("rollback", R)]


def test_bad_verity_entry_is_skipped_with_a_finding_t3(grub_tree):
    _grub_bls(grub_tree)
    booted_entry = grub_tree.entries_root / "loader" / "entries" / "bootc_fedora-44.0-1.conf"
    grub_tree.entry("new-entry.conf", booted_entry.read_text().replace(BOOTED, "bad-verity"))
    state = _load(grub_tree)
    assert _roles(state) == [("booted", BOOTED), ("staged", STAGED), ("rollback", O), ("other", R)]
    assert _codes(state) == ["entry-without-state-dir"]
    assert state.findings[0].path.endswith("new-entry.conf")
    assert "bad-verity" in state.artifact_names
    assert "bad-verity" not in state.live_verities


def test_run_composefs_removed_means_no_staged_t3(grub_tree):
    _grub_bls(grub_tree, marker=False)
    state = _load(grub_tree)
    assert state.staged is None and state.staged_deployment is None
    assert _roles(state) == [("booted", BOOTED), ("rollback", O), ("other", R), ("unlisted", STAGED)]
    assert "staged" in state.unlisted[0].unlisted_reason
    assert STAGED in state.live_verities and state.findings == ()


def test_deleted_staged_origin_is_live_but_hidden_t3(grub_tree):
    _grub_bls(grub_tree)
    (grub_tree.state / STAGED / (STAGED + ".origin")).unlink()
    state = _load(grub_tree)
    assert state.staged is None
    unlisted = state.unlisted[0]
    assert (unlisted.verity, unlisted.unlisted_reason, unlisted.staged_marker, unlisted.origin) == (
        STAGED, "no readable origin", True, None)
    assert unlisted.boot_type == "bls"
    assert _codes(state) == ["missing-origin"]
    assert STAGED in state.live_verities


def test_unreadable_origin_is_protected_open_question_7(grub_tree):
    _grub_bls(grub_tree)
    (grub_tree.state / R / (R + ".origin")).write_text("[boot]\nboot_type = zfs\n")
    state = _load(grub_tree)
    assert state.deployment(R).role == "unlisted" and R in state.live_verities
    assert state.rollback.verity == O and state.others == ()
    assert _codes(state) == ["unreadable-file"]
    assert "zfs" in state.findings[0].message


def test_fwupd_and_memtest_entries_are_ignored_2228(systemd_tree):
    _systemd(systemd_tree, uki=True)
    systemd_tree.entry("fwupd.conf", "title Firmware Updater\nversion 1.9\nefi /EFI/fedora/fwupdx64.efi\n")
    systemd_tree.entry("memtest86+.conf", "title Memtest86+\nlinux /memtest86+x64.efi\n")
    state = _load(systemd_tree)
    assert _roles(state) == [("booted", BOOTED), ("staged", STAGED), ("rollback", R), ("other", O)]
    assert sorted(e.name for e in state.foreign_entries) == ["fwupd.conf", "memtest86+.conf"]
    assert state.damaged_entries == ()
    assert _codes(state) == ["foreign-entry", "foreign-entry"]
    assert state.rollback_queued is False


def test_a_damaged_bootc_entry_is_listed_apart_and_reported(systemd_tree):
    """An entry with bootc's file name and sort-key that lost its version: damaged, not foreign."""
    _systemd(systemd_tree)
    path = systemd_tree.esp / "loader" / "entries" / "bootc_fedora-42.0-0.conf"
    path.write_text(path.read_text().replace("version ", "verzion "))
    systemd_tree.entry("fwupd.conf", "title Firmware Updater\nversion 1.9\nefi /EFI/fedora/fwupdx64.efi\n")
    state = _load(systemd_tree)
    assert [e.path for e in state.damaged_entries] == [str(path)]
    assert [e.name for e in state.foreign_entries] == ["fwupd.conf"]
    assert _codes(state) == ["damaged-entry", "foreign-entry", "orphan-state-dir"]
    assert O not in [d.verity for d in state.deployments]


def test_the_entry_source_not_chosen_and_every_entry_file_are_exposed(grub_tree):
    """GRUB classic with both menus naming deployments: the BLS entries are chosen, the GRUB menu's are kept apart."""
    _grub_bls(grub_tree)
    grub_tree.user_cfg([BOOTED, R])
    grub_tree.write(grub_tree.esp / "loader" / "entries" / "left-over.conf", "efi /EFI/Linux/bootc/bootc_composefs-old.efi\n")
    state = _load(grub_tree)
    assert state.entry_source == "bls"
    assert [(e.source, e.verity) for e in state.unchosen_entries] == [("grub", BOOTED), ("grub", R)]
    files = {f.path: f.artifact_names for f in state.entry_files}
    assert files[str(grub_tree.esp / "loader" / "entries" / "left-over.conf")] == frozenset(["old"])
    assert files[str(grub_tree.boot / "grub2" / "user.cfg")] == frozenset([BOOTED, R])
    assert all(f.problem is None for f in state.entry_files)


def test_no_other_source_on_systemd_boot(systemd_tree):
    _systemd(systemd_tree)
    assert _load(systemd_tree).unchosen_entries == ()


def test_grub_password_user_cfg_does_not_hide_bls_entries_open_question_8(grub_tree):
    _grub_bls(grub_tree)
    grub_tree.write(grub_tree.boot / "grub2" / "user.cfg", "GRUB2_PASSWORD=grub.pbkdf2.sha512.10000.ABCD.EF01")
    state = _load(grub_tree)
    assert state.entry_source == "bls" and state.boot_type == "bls"
    assert _roles(state) == [("booted", BOOTED), ("staged", STAGED), ("rollback", O), ("other", R)]
    assert state.findings == ()


def test_both_menus_name_deployments_origin_decides(grub_tree):
    _grub_bls(grub_tree)
    grub_tree.user_cfg([BOOTED])
    state = _load(grub_tree)
    assert state.entry_source == "bls"
    assert _codes(state) == ["conflicting-boot-types"]
    assert "origin" in state.findings[0].message


def test_separate_boot_partition_2399(tmp_path):
    tree = HostTree(tmp_path / "root", separate_boot=True)
    tree.type1_deployment(BOOTED, "bootc_fedora-44.0-1.conf", version="44.0")
    tree.type1_deployment(R, "bootc_fedora-43.0-0.conf", version="43.0")
    tree.booted(BOOTED)
    paths = load_host_paths(str(tree.root))
    assert paths.boot_dir == str(tmp_path / "root" / "boot")
    state = load_host(paths)
    assert _roles(state) == [("booted", BOOTED), ("rollback", R)]
    assert state.booted.entries[0].bls.linux == "/bootc_composefs-%s/vmlinuz" % BOOTED
    assert sorted(b.name for b in state.boot_binaries.binaries) == sorted([BOOTED, R])
    assert state.findings == ()


def test_booted_via_optional_verity(grub_tree):
    grub_tree.type1_deployment(BOOTED, "bootc_fedora-44.0-1.conf", version="44.0")
    grub_tree.booted(BOOTED, allow_missing=True)
    state = _load(grub_tree)
    assert state.booted_verity == BOOTED and state.missing_verity_allowed is True
    assert _roles(state) == [("booted", BOOTED)]


def test_soft_reboot_uses_the_root_mount_source(grub_tree):
    _grub_bls(grub_tree)
    grub_tree.booted(BOOTED, allow_missing=True)
    grub_tree.write("proc/self/mountinfo", "1 0 0:27 / / ro shared:1 - overlay composefs:%s ro\n" % STAGED)
    state = _load(grub_tree)
    assert state.soft_rebooted and state.booted_verity == STAGED
    assert state.missing_verity_allowed is False
    assert state.booted.verity == STAGED and state.staged is None


@pytest.mark.parametrize("setup, message", [
    pytest.param(lambda t: t.cmdline("root=/dev/sda1 rw"), "not a bootc composefs host", id="plain-host"),
    pytest.param(lambda t: None, "not a bootc composefs host", id="no-cmdline-no-entries"),
    pytest.param(lambda t: (t.cmdline("rw"), t.type1_deployment(R, "x.conf")), "no composefs= parameter", id="entries-but-no-karg"),
    pytest.param(lambda t: (t.booted(BOOTED), t.type1_deployment(R, "x.conf")), "no boot entry names it", id="booted-unknown"),
    pytest.param(lambda t: t.cmdline("composefs=../../etc"), "not a valid deployment name", id="unsafe-verity"),
])
def test_host_errors(grub_tree, setup, message):
    setup(grub_tree)
    with pytest.raises(HostError, match=message):
        _load(grub_tree)


def test_booted_with_state_dir_but_no_entry(grub_tree):
    grub_tree.state_dir(BOOTED)
    grub_tree.type1_deployment(R, "bootc_fedora-43.0-0.conf", version="43.0")
    grub_tree.booted(BOOTED)
    state = _load(grub_tree)
    assert _roles(state) == [("booted", BOOTED), ("rollback", R)]
    assert state.booted.entries == ()
    assert _codes(state) == ["booted-without-entry"]


def test_booted_with_entry_but_no_state_dir(grub_tree):
    grub_tree.type1_entry("bootc_fedora-44.0-1.conf", BOOTED, version="44.0")
    grub_tree.booted(BOOTED)
    state = _load(grub_tree)
    assert _roles(state) == [("booted", BOOTED)]
    assert state.booted.state_dir is None and state.booted.origin is None
    assert _codes(state) == ["entry-without-state-dir"]


def test_orphans_strays_and_marker_without_entry(grub_tree):
    grub_tree.type1_deployment(BOOTED, "bootc_fedora-44.0-1.conf", version="44.0")
    grub_tree.state_dir(O)
    grub_tree.write(grub_tree.state / "stray-file", "x")
    grub_tree.staged_marker(STAGED)
    grub_tree.booted(BOOTED)
    state = _load(grub_tree)
    assert _roles(state) == [("booted", BOOTED)]
    assert _codes(state) == ["orphan-state-dir", "staged-marker-without-entry", "stray-state-entry"]
    assert O in state.state_dirs and O not in state.live_verities
    assert state.staged_deployment.depl_id == STAGED


def test_conflicting_origin_boot_types_are_reported(grub_tree):
    grub_tree.type1_deployment(BOOTED, "bootc_fedora-44.0-1.conf", version="44.0")
    grub_tree.type1_deployment(R, "bootc_fedora-43.0-0.conf", version="43.0", origin=origin_text(boot_type="uki"))
    grub_tree.booted(BOOTED)
    state = _load(grub_tree)
    assert state.boot_type == "bls"
    assert _roles(state) == [("booted", BOOTED), ("rollback", R)]
    assert _codes(state) == ["conflicting-boot-types"]


def test_legacy_layout_is_reported(grub_tree):
    grub_tree.state_dir(BOOTED, origin=origin_text(manifest_digest=None))
    grub_tree.type1_dir(BOOTED, prefixed=False)
    grub_tree.type1_entry("bootc_fedora-44.0-1.conf", BOOTED, prefixed=False, version="44.0")
    grub_tree.write(grub_tree.state / BOOTED / (BOOTED + ".imginfo"),
                    '{"config":{"architecture":"arm64"},"manifest":{"schemaVersion":2,"config":{"digest":"sha256:c"},"layers":[]}}')
    grub_tree.booted(BOOTED)
    state = _load(grub_tree)
    assert state.booted.entries[0].has_prefix is False
    assert state.booted.imginfo.architecture == "arm64" and state.booted.manifest_digest is None
    assert _codes(state) == ["legacy-boot-layout", "legacy-boot-layout"]


def test_imginfo_is_only_read_for_legacy_origins(grub_tree):
    grub_tree.type1_deployment(BOOTED, "bootc_fedora-44.0-1.conf", version="44.0")
    grub_tree.write(grub_tree.state / BOOTED / (BOOTED + ".imginfo"), "not json")
    grub_tree.booted(BOOTED)
    state = _load(grub_tree)
    assert state.booted.imginfo is None and state.findings == ()


def test_bootloader_is_guessed_from_the_layout(tmp_path):
    tree = HostTree(tmp_path / "root", bootloader="systemd")
    (tree.root / "sys").rename(tree.root / "sys-hidden")
    _systemd(tree)
    state = _load(tree)
    assert state.bootloader.kind == "systemd" and state.bootloader.source == "default"
    assert _codes(state) == ["bootloader-guessed"]
    assert state.rollback.verity == R
    forced = _load(tree, bootloader_kind="grub-cc")
    assert forced.bootloader.kind == "grub-cc" and forced.findings == ()
    # grub-cc: menu order by file name, descending; L is not reversed (only GRUB classic + BLS is).
    assert [e.verity for e in forced.menu_order] == [BOOTED, R, O]
    assert _roles(forced) == [("booted", BOOTED), ("staged", STAGED), ("rollback", R), ("other", O)]
    with pytest.raises(ComposefsError, match="unknown bootloader kind"):
        _load(tree, bootloader_kind="lilo")


def test_grub_uki_legacy_user_cfg(grub_tree):
    for verity in (BOOTED, R):
        grub_tree.state_dir(verity, boot_type="uki")
        grub_tree.uki(verity, prefixed=False)
    grub_tree.user_cfg([BOOTED, R], prefixed=False)
    grub_tree.booted(BOOTED)
    state = _load(grub_tree)
    assert _roles(state) == [("booted", BOOTED), ("rollback", R)]
    assert _codes(state) == ["legacy-boot-layout"] * 4


def test_menuentry_text_helper_matches_spec_layout():
    text = menuentry_text("abc")
    assert text.startswith('menuentry "Fedora Linux 42 (Forty Two): (abc)" {\ninsmod fat\n')
    assert "chainloader /EFI/Linux/bootc/bootc_composefs-abc.efi\n}" in text
