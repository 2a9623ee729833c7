# -*- coding: utf-8 -*-
# Copyright: (c) 2026, bootc.composefs maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""plugins/modules/composefs_gc.py: arguments, result shape, check and diff mode, failures, docs vs argspec.

The module runs in-process (``patch_module_args``); its JSON result is read from stdout. Hosts come
from tests/tools/simhost (three deployments, two stale bootc tags, an app image); what a GC decides
is tested in depth in operations/test_gc.py, here only what the module adds. Expected values come
from the build result (tags, digests) and the disk.
"""

import hashlib
import json
import os
import stat
import sys

import pytest
import yaml
from ansible.module_utils.testing import patch_module_args

from ansible_collections.bootc.composefs.plugins.module_utils import module_support
from ansible_collections.bootc.composefs.plugins.modules import composefs_gc

TOOLS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "tools")
RESULT_KEYS = {"changed", "booted", "live", "live_manifests", "tags_created", "tags_removed", "boot_binaries",
               "state_dirs", "staged_marker", "objects_removed", "objects_bytes", "bytes_freed", "images_pruned",
               "streams_pruned", "repository", "paths", "repo_gc_backend", "findings", "errors"}


def _simhost():
    path = os.path.abspath(TOOLS)
    if path not in sys.path:
        sys.path.insert(0, path)
    import simhost  # pylint: disable=import-outside-toplevel

    return simhost


def _run(capsys, args):
    with patch_module_args(args):
        with pytest.raises(SystemExit) as caught:
            composefs_gc.main()
    return caught.value.code, json.loads(capsys.readouterr().out)


def _tree_digest(root):
    digest = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            path = os.path.join(dirpath, name)
            info = os.lstat(path)
            digest.update(("%s %o %d\n" % (os.path.relpath(path, root), info.st_mode, info.st_mtime_ns)).encode())
            if os.path.islink(path):
                digest.update(os.readlink(path).encode())
            elif os.path.isfile(path):
                with open(path, "rb") as handle:
                    digest.update(handle.read())
    return digest.hexdigest()


@pytest.fixture(name="built")
def fixture_built(tmp_path):
    """Three deployments (booted, staged, rollback), two stale bootc tags, an app image."""
    simhost = _simhost()
    spec = simhost.preset_spec("three-deployments")
    spec.stale_bootc_tags = 2
    spec.app_images = (simhost.AppImageSpec(tag="quay.io/example/app:1"),)
    return simhost.build_host(str(tmp_path / "root"), spec)


def test_result_shape_and_second_run_unchanged(capsys, built, monkeypatch):
    warned = []
    monkeypatch.setattr(composefs_gc.AnsibleModule, "warn", lambda self, text: warned.append(text))
    code, result = _run(capsys, {"root": built["root"]})
    assert code == 0 and result["changed"] is True and "failed" not in result
    assert RESULT_KEYS <= set(result)
    assert sorted(t["tag"] for t in result["tags_removed"]) == sorted(t["tag"] for t in built["stale_bootc_tags"])
    assert result["booted"] == built["booted"]
    assert sorted(d["verity"] for d in result["live"]) == sorted(d["verity"] for d in built["deployments"])
    assert result["repository"]["validation"] == "plan" and "removed_objects" not in result
    assert warned == []
    code, again = _run(capsys, {"root": built["root"]})
    assert code == 0 and again["changed"] is False and again["objects_removed"] == 0


def test_check_mode_reports_the_real_run_and_changes_nothing(capsys, built):
    root = built["root"]
    before = _tree_digest(root)
    _code, checked = _run(capsys, {"root": root, "list_objects": True, "_ansible_check_mode": True, "_ansible_diff": True})
    assert _tree_digest(root) == before
    assert checked["changed"] is True
    diff = checked["diff"]
    stale = [t["tag"] for t in built["stale_bootc_tags"]]
    assert set(stale) <= set(diff["before"]["tags"]) and not set(stale) & set(diff["after"]["tags"])
    assert "quay.io/example/app:1 -> %s" % built["app_images"][0]["manifest_digest"] in diff["after"]["tags"]
    _code, done = _run(capsys, {"root": root, "list_objects": True})
    for key in ("tags_created", "tags_removed", "boot_binaries", "state_dirs", "objects_removed", "objects_bytes",
                "bytes_freed", "images_pruned", "streams_pruned", "removed_objects"):
        assert checked[key] == done[key], key
    assert len(done["removed_objects"]) == done["objects_removed"] > 0
    for object_id in done["removed_objects"]:
        assert not os.path.lexists(os.path.join(built["paths"]["repository"], "objects", object_id[:2], object_id[2:]))


def test_phase_switches_reach_the_operation(capsys, built):
    code, result = _run(capsys, {"root": built["root"], "tags": False, "repository": False, "boot_binaries": False,
                                 "state_dirs": False})
    assert code == 0 and result["changed"] is False
    assert result["repository"] is None and result["tags_removed"] == []


def test_refusal_fails_with_the_file_and_deletes_nothing(capsys, built):
    rollback = [d for d in built["deployments"] if d["role"] == "rollback"][0]
    with open(rollback["origin_path"], "wb") as handle:
        handle.write(b"\xff garbage")
    before = _tree_digest(built["root"])
    for check_mode in (False, True):
        code, result = _run(capsys, {"root": built["root"], "_ansible_check_mode": check_mode})
        assert code == 1 and result["failed"] is True and result["changed"] is False
        assert rollback["origin_path"] in result["msg"] and "Traceback" not in result["msg"]
        assert result["errors"] and rollback["origin_path"] in result["errors"][0]
    assert _tree_digest(built["root"]) == before


def test_not_a_composefs_host_fails_with_a_message(capsys, tmp_path):
    (tmp_path / "proc").mkdir()
    (tmp_path / "proc" / "cmdline").write_text("root=/dev/sda1 ro\n")
    code, result = _run(capsys, {"root": str(tmp_path)})
    assert code == 1 and "not a bootc composefs host" in result["msg"]


def test_cfsctl_command_runs_with_c_locale_and_the_roots(capsys, built, tmp_path):
    record = tmp_path / "argv.json"
    tool = tmp_path / "fake-cfsctl"
    tool.write_text("#!%s\nimport json, os, sys\njson.dump({'argv': sys.argv[1:], 'lc_all': os.environ.get('LC_ALL')}, "
                    "open(%r, 'w'))\nprint('Objects: 0 removed (0 bytes)')\n" % (sys.executable, str(record)))
    tool.chmod(tool.stat().st_mode | stat.S_IXUSR)
    code, result = _run(capsys, {"root": built["root"], "repo_gc_backend": "cfsctl", "cfsctl_command": [str(tool)]})
    assert code == 0, result
    seen = json.loads(record.read_text())
    assert seen["lc_all"] == "C"
    assert seen["argv"][:4] == ["--repo", built["paths"]["repository"], "--no-upgrade", "gc"]
    roots = set(seen["argv"][5::2])
    assert {d["verity"] for d in built["deployments"]} <= roots
    assert result["repository"]["tool"]["objects_removed"] == 0


def test_documented_options_are_the_argspec():
    own = yaml.safe_load(composefs_gc.DOCUMENTATION)["options"]
    assert set(own) == {"boot_binaries", "state_dirs", "tags", "repository", "repo_gc_backend", "cfsctl_command",
                        "lock_timeout", "list_objects"}
    doc = yaml.safe_load(composefs_gc.DOCUMENTATION)
    assert "bootc.composefs.common.HOST_PATHS" in doc["extends_documentation_fragment"]
    assert set(module_support.HOST_PATHS)  # the shared options come from the fragment
    assert own["repo_gc_backend"]["choices"] == ["native", "cfsctl"]


def test_every_return_key_is_documented(capsys, built):
    doc = yaml.safe_load(composefs_gc.RETURN)
    _code, result = _run(capsys, {"root": built["root"], "list_objects": True, "_ansible_check_mode": True})
    returned = set(result) - {"invocation", "diff"}
    assert returned <= set(doc), returned - set(doc)
    for name, entry in doc.items():
        assert {"description", "returned", "type", "sample"} <= set(entry) or "contains" in entry, name
