# -*- coding: utf-8 -*-
# Copyright: (c) 2026, bootc.composefs maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests for operations/gc_safety.py (and the repository refusals it names): damaged or unsafe input refuses everything.

One builder per damage (``REFUSALS``), each returning the path the refusal must name; the whole
host tree is hashed before and after (check mode and a real run): nothing at all may change.
"""

from __future__ import annotations

import os

import pytest

from ansible_collections.bootc.composefs.plugins.module_utils.errors import PlanError
from ansible_collections.bootc.composefs.tests.unit.builders import host_tree
from ansible_collections.bootc.composefs.tests.unit.plugins.module_utils.operations.test_gc import (
    Garbage,
    bootc_tag_file,
    plan,
    run,
    tree_digest,
)


@pytest.fixture
def host(three_deployments):
    sim, images = three_deployments
    return Garbage(sim, images)


def _garbage_origin(host):
    path = host.host.tree.state / host.images["rollback"].boot_id / (host.images["rollback"].boot_id + ".origin")
    path.write_bytes(b"\xff\xfe not an origin")
    return str(path)


def _non_utf8_entry(host):
    return str(host.host.tree.entry("bootc_simos-0.5-0.conf", b"title \xff\nversion 1\n"))


def _bad_imginfo(host):
    image = host.host.repo.image([{"usr/legacy": b"l" * 300}], version="1", marker="l")
    host.host.deploy(image, "bootc_simos-0.1-0.conf", "bootc-simos-2", version="0.1", manifest_digest=None,
                     imginfo="{not json")
    return str(host.host.tree.state / image.boot_id / (image.boot_id + ".imginfo"))


def _corrupt_object(host, object_id, keep):
    path = host.host.repo.path_of(object_id)
    with open(str(path), "r+b") as handle:
        handle.truncate(keep)
    return str(path)


def _corrupt_manifest_stream(host):
    return _corrupt_object(host, host.images["booted"].manifest_stream_id, 40)


def _corrupt_config_stream(host):
    return _corrupt_object(host, host.images["staged"].config_stream_id, 100)


def _corrupt_boot_image(host):
    return _corrupt_object(host, host.images["rollback"].boot_id, 1100)


def _meta(text):
    def damage(host):
        path = host.repo_root / "meta.json"
        path.write_bytes(text(path.read_bytes()))
        return str(path)
    damage.__name__ = "meta"
    return damage


def _no_meta(host):
    path = host.repo_root / "meta.json"
    path.unlink()
    return str(path)


def _ref_not_a_symlink(host):
    path = host.repo_root / "streams" / "refs" / "oci" / "plain-file"
    path.write_text("x")
    return str(path)


def _legacy_boot_layout(host):
    host.host.tree.type1_dir("dd" * 32, prefixed=False)
    return str(host.host.tree.type1_root / ("dd" * 32))


def _booted_without_entry(host):
    booted = host.images["booted"]
    for path in (host.host.tree.boot / "loader").rglob("*.conf"):
        if booted.boot_id in path.read_text():
            path.unlink()
    return str(host.host.tree.state / booted.boot_id)


def _booted_binary_unreferenced(host):
    booted = host.images["booted"]
    for path in (host.host.tree.boot / "loader").rglob("*.conf"):
        text = path.read_text()
        if "composefs=" + booted.boot_id in text:
            path.write_text(text.replace(host_tree.PREFIX + booted.boot_id, host_tree.PREFIX + host.kernel_name))
    return str(host.host.tree.type1_root / (host_tree.PREFIX + booted.boot_id))


def _moved_behind_a_symlink(host, path):
    """Move ``path`` out of the sysroot (still inside the host root) and leave a relative symlink to it."""
    moved = host.host.tree.root / ("moved-" + path.name)
    os.rename(str(path), str(moved))
    os.symlink(os.path.relpath(str(moved), str(path.parent)), str(path))
    return str(path)


def _entries_dir_symlink(host):
    return _moved_behind_a_symlink(host, host.host.tree.boot / "loader" / "entries.staged")


def _entry_file_symlink(host):
    return _moved_behind_a_symlink(host, sorted((host.host.tree.boot / "loader" / "entries").glob("*.conf"))[0])


def _state_dir_symlink(host):
    return _moved_behind_a_symlink(host, host.host.tree.state / host.images["rollback"].boot_id)


def _live_kernel_dir_symlink(host):
    path = _moved_behind_a_symlink(host, host.host.tree.type1_root / (host_tree.PREFIX + host.images["rollback"].boot_id))
    return path


def _damaged_bootc_entry(host):
    rollback = host.images["rollback"]
    for path in (host.host.tree.boot / "loader").rglob("*.conf"):
        text = path.read_text()
        if "composefs=" + rollback.boot_id in text:
            path.write_text(text.replace("version ", "verzion "))
            return str(path)
    raise AssertionError("no rollback entry")


def _non_hex_verity_in_entry(host):
    path = sorted((host.host.tree.boot / "loader" / "entries").glob("*.conf"))[0]
    text = path.read_text()
    verity = text.split("composefs=")[1].split()[0].lstrip("?")
    path.write_text(text.replace(verity, verity[:-1] + "z"))
    return str(path)


def _truncated_verity_in_entry(host):
    path = sorted((host.host.tree.boot / "loader" / "entries").glob("*.conf"))[0]
    text = path.read_text()
    verity = text.split("composefs=")[1].split()[0].lstrip("?")
    path.write_text(text.replace("composefs=" + verity, "composefs=" + verity[:40]))
    return str(path)


def _verity_of_another_length_in_entry(host):
    """A 128-hex verity in a sha256 repository (whose deployments have 64): no deployment of this host."""
    path = sorted((host.host.tree.boot / "loader" / "entries").glob("*.conf"))[0]
    text = path.read_text()
    verity = text.split("composefs=")[1].split()[0].lstrip("?")
    path.write_text(text.replace("composefs=" + verity, "composefs=" + verity * 2))
    return str(path)


def _origin_without_manifest_digest(host):
    rollback = host.images["rollback"]
    path = host.host.tree.state / rollback.boot_id / (rollback.boot_id + ".origin")
    path.write_text(path.read_text().replace("manifest_digest", "manifest_digext"))
    return str(path)


def _origin_names_an_unknown_manifest(host):
    rollback = host.images["rollback"]
    path = host.host.tree.state / rollback.boot_id / (rollback.boot_id + ".origin")
    digest = rollback.manifest_digest
    path.write_text(path.read_text().replace(digest, digest[:-1] + ("0" if digest[-1] != "0" else "1")))
    return str(path)


def _conflicting_boot_type(host):
    rollback = host.images["rollback"]
    path = host.host.tree.state / rollback.boot_id / (rollback.boot_id + ".origin")
    path.write_text(path.read_text().replace("boot_type = bls", "boot_type = uki"))
    return str(path)


REFUSALS = {
    "non-hex-verity-in-entry": _non_hex_verity_in_entry,
    "truncated-verity-in-entry": _truncated_verity_in_entry,
    "verity-of-another-length-in-entry": _verity_of_another_length_in_entry,
    "origin-without-manifest-digest": _origin_without_manifest_digest,
    "origin-names-an-unknown-manifest": _origin_names_an_unknown_manifest,
    "conflicting-boot-type": _conflicting_boot_type,
    "entries-dir-symlink": _entries_dir_symlink,
    "entry-file-symlink": _entry_file_symlink,
    "state-dir-symlink": _state_dir_symlink,
    "live-kernel-dir-symlink": _live_kernel_dir_symlink,
    "damaged-bootc-entry": _damaged_bootc_entry,
    "unreadable-origin": _garbage_origin,
    "non-utf8-entry": _non_utf8_entry,
    "malformed-imginfo": _bad_imginfo,
    "corrupt-manifest-stream": _corrupt_manifest_stream,
    "corrupt-config-stream": _corrupt_config_stream,
    "corrupt-boot-image": _corrupt_boot_image,
    "invalid-meta-json": _meta(lambda data: data[:20]),
    "meta-version-2": _meta(lambda data: data.replace(b'"version": 1', b'"version": 2')),
    "unknown-incompatible-feature": _meta(lambda data: data.replace(b'"incompatible": []', b'"incompatible": ["x"]')),
    "unknown-read-only-feature": _meta(lambda data: data.replace(b'"v1_erofs"', b'"v1_erofs", "zz"')),
    "unknown-compatible-feature": _meta(lambda data: data.replace(b'"compatible": []', b'"compatible": ["new"]')),
    "no-meta-json": _no_meta,
    "ref-not-a-symlink": _ref_not_a_symlink,
    "legacy-boot-layout": _legacy_boot_layout,
    "booted-without-entry": _booted_without_entry,
    "booted-binary-unreferenced": _booted_binary_unreferenced,
}


@pytest.mark.parametrize("damage", sorted(REFUSALS))
def test_anything_unreadable_refuses_everything(host, damage):
    """Rules 2, 3 and 6: an unparsable root, an unknown format, an unsafe path: nothing at all is deleted."""
    path = REFUSALS[damage](host)
    digest = tree_digest(host.host.root)
    for check_mode in (True, False):
        with pytest.raises(PlanError) as raised:
            run(host.host, check_mode=check_mode)
        assert path in str(raised.value), str(raised.value)
        assert raised.value.partial_result["errors"], damage
        assert raised.value.partial_result["changed"] is False
    assert tree_digest(host.host.root) == digest


def test_an_unidentifiable_entry_that_looks_like_bootcs_refuses(host):
    """Rule 2: an entry booting a bootc kernel dir without composefs= (bootc's listing fails on it too)."""
    path = host.host.tree.entry("custom-rescue.conf", "title Rescue\nversion 1\nlinux /boot/%s%s/vmlinuz\n"
                                                      % (host_tree.PREFIX, host.kernel_name))
    the_plan = plan(host.host)
    assert any(str(path) in error for error in the_plan.errors)
    assert the_plan.boot_binaries == ()


def test_legacy_boot_layout_allows_the_other_phases(host):
    _legacy_boot_layout(host)
    result = run(host.host, boot_binaries=False)
    assert result.as_dict()["objects_removed"] == len(host.stale_unique())


# --- what the refusals say (harness finding 8: name the damaged file, give the right advice) ----------


def _errors(host):
    the_plan = plan(host.host)
    assert the_plan.errors
    return the_plan.errors


def test_an_origin_naming_a_manifest_the_repository_never_had_is_called_damaged(host):
    """The origin's digest is damaged: the message names the origin and the image that really boots the deployment."""
    rollback = host.images["rollback"]
    path = _origin_names_an_unknown_manifest(host)
    error, = [e for e in _errors(host) if e.startswith(path + ":")]
    assert "is not in the repository" in error and "the origin is damaged" in error
    assert rollback.manifest_digest in error and "images/" + rollback.boot_id in error
    assert "pull" not in error


def test_an_origin_naming_a_manifest_no_image_boots_is_still_blamed_first(host):
    """No tagged image names the deployment's boot image either: repair the origin first, pull only if it is right."""
    rollback = host.images["rollback"]
    os.unlink(str(host.host.repo.root / "streams" / "refs" / "oci" / bootc_tag_file(rollback.manifest_digest)))
    os.unlink(str(host.host.repo.root / "streams" / ("oci-manifest-" + rollback.manifest_digest)))
    path = str(host.host.tree.state / rollback.boot_id / (rollback.boot_id + ".origin"))
    error, = [e for e in _errors(host) if e.startswith(path + ":")]
    assert "is not in the repository" in error and "the origin is likely damaged" in error
    assert error.index("restore its [image] manifest_digest") < error.index("pull it again")


def test_a_manifest_the_repository_holds_but_cannot_read_is_the_repositorys_fault(host):
    """The origin is right, the repository's manifest stream is damaged: pull the image again."""
    rollback = host.images["rollback"]
    os.unlink(str(host.host.repo.root / "streams" / "refs" / "oci" / bootc_tag_file(rollback.manifest_digest)))
    _corrupt_object(host, rollback.manifest_stream_id, 40)
    path = str(host.host.tree.state / rollback.boot_id / (rollback.boot_id + ".origin"))
    error, = [e for e in _errors(host) if e.startswith(path + ":")]
    stream = "objects/%s/%s" % (rollback.manifest_stream_id[:2], rollback.manifest_stream_id[2:])
    assert "the repository holds but cannot read" in error and stream in error and error.endswith("pull the image again")


def test_a_verity_of_the_wrong_length_names_the_entry_and_both_lengths(host):
    path = _verity_of_another_length_in_entry(host)
    error, = [e for e in _errors(host) if "hex digits" in e]
    assert error.startswith(path + ":") and "128 hex digits" in error and "have 64" in error
