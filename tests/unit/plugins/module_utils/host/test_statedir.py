"""host/statedir.py: state dirs and the origin/imginfo read from them (spec §1.3, §4.2 step 8)."""

import os

from ansible_collections.bootc.composefs.plugins.module_utils.host import statedir
from ansible_collections.bootc.composefs.plugins.module_utils.host.paths import load_host_paths
from host_tree import fake_verity, origin_text

V1, V2 = fake_verity(1), fake_verity(2)


def test_list_state_dirs_only_directories(grub_tree):
    grub_tree.state_dir(V1)
    grub_tree.state_dir(V2)
    grub_tree.write(grub_tree.state / "stray", "x")
    os.symlink(str(grub_tree.state / V1), str(grub_tree.state / "link-to-state"))
    names, found = statedir.list_state_dirs(load_host_paths(str(grub_tree.root)))
    assert sorted(names) == sorted([V1, V2])
    assert sorted((f.code, os.path.basename(f.path)) for f in found) == [
        ("stray-state-entry", "link-to-state"), ("stray-state-entry", "stray")]


def test_missing_state_dir_root(tmp_path):
    assert statedir.list_state_dirs(load_host_paths(tmp_path)) == ((), ())


def test_load_state_files(grub_tree):
    grub_tree.state_dir(V1)
    files = statedir.load_state_files(load_host_paths(str(grub_tree.root)), V1)
    assert files.path == str(grub_tree.state / V1)
    assert files.origin.boot_type == "bls" and files.imginfo is None and files.findings == ()


def test_missing_and_malformed_origin(grub_tree):
    grub_tree.state_dir(V1, origin=None)
    grub_tree.state_dir(V2, origin="[boot]\n")
    paths = load_host_paths(str(grub_tree.root))
    missing = statedir.load_state_files(paths, V1)
    assert missing.origin is None and [f.code for f in missing.findings] == ["missing-origin"]
    malformed = statedir.load_state_files(paths, V2)
    assert malformed.origin is None and [f.code for f in malformed.findings] == ["unreadable-file"]
    assert malformed.findings[0].path.endswith(V2 + ".origin")


def test_legacy_imginfo(grub_tree):
    grub_tree.state_dir(V1, origin=origin_text(manifest_digest=None),
                        imginfo='{"config":{},"manifest":{"schemaVersion":2,"config":{"digest":"sha256:c"},"layers":[]}}')
    grub_tree.state_dir(V2, origin=origin_text(manifest_digest=None), imginfo="{broken")
    paths = load_host_paths(str(grub_tree.root))
    assert statedir.load_state_files(paths, V1).imginfo.config_digest == "sha256:c"
    broken = statedir.load_state_files(paths, V2)
    assert broken.imginfo is None and broken.origin is not None
    assert [f.code for f in broken.findings] == ["unreadable-file"]
