# -*- coding: utf-8 -*-
# Copyright: (c) 2026, bootc.composefs maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""oci/cfsctl.py: the argv of a GC, the parsing of cfsctl's report, the C locale and the errors.

The report lines are those composefs-rs ``crates/composefs-ctl/src/lib.rs`` prints for ``gc``
(``Objects: N removed (B bytes)``, ``Pruned symlinks: I images, S streams`` only when non-zero).
A fake tool (a script) stands in for cfsctl, which this machine does not have.
"""

import json
import os
import stat
import sys

import pytest

from ansible_collections.bootc.composefs.plugins.module_utils.errors import ToolError
from ansible_collections.bootc.composefs.plugins.module_utils.oci import cfsctl


def test_gc_command_shape():
    argv = cfsctl.gc_command(["bootc", "internals", "cfs"], "/sysroot/composefs", ["abc", "oci-manifest-sha256:1"], dry_run=True)
    assert argv == ["bootc", "internals", "cfs", "--repo", "/sysroot/composefs", "--no-upgrade", "gc",
                    "-r", "abc", "-r", "oci-manifest-sha256:1", "--dry-run"]


@pytest.mark.parametrize("stdout, expected", [
    ("Objects: 12 removed (3456 bytes)\n", (12, 3456, 0, 0)),
    ("Dry run (no files deleted):\nObjects: 0 removed (0 bytes)\n", (0, 0, 0, 0)),
    ("Objects: 5 removed (10 bytes)\nPruned symlinks: 2 images, 7 streams\n", (5, 10, 2, 7)),
    ("something else entirely\n", (None, None, None, None)),
], ids=["objects", "dry-run", "pruned", "unknown"])
def test_parse_gc_output(stdout, expected):
    parsed = cfsctl.parse_gc_output(["cfsctl"], stdout)
    assert (parsed.objects_removed, parsed.objects_bytes, parsed.images_pruned, parsed.streams_pruned) == expected


def _fake_tool(tmp_path, rc=0, stdout="Objects: 1 removed (2 bytes)", stderr=""):
    record = tmp_path / "seen.json"
    tool = tmp_path / "cfsctl"
    tool.write_text("#!%s\nimport json, os, sys\njson.dump({'argv': sys.argv[1:], 'lc_all': os.environ.get('LC_ALL')}, "
                    "open(%r, 'w'))\nprint(%r)\nsys.stderr.write(%r)\nsys.exit(%d)\n"
                    % (sys.executable, str(record), stdout, stderr, rc))
    tool.chmod(tool.stat().st_mode | stat.S_IXUSR)
    return str(tool), record


def test_run_gc_forces_the_c_locale(tmp_path, monkeypatch):
    monkeypatch.setenv("LC_ALL", "de_DE.UTF-8")
    tool, record = _fake_tool(tmp_path)
    result = cfsctl.run_gc(cfsctl.gc_command([tool], "/repo", ["r1"]))
    seen = json.loads(record.read_text())
    assert seen == {"argv": ["--repo", "/repo", "--no-upgrade", "gc", "-r", "r1"], "lc_all": "C"}
    assert (result.objects_removed, result.objects_bytes) == (1, 2)


def test_failure_is_a_tool_error_with_command_rc_and_stderr_tail(tmp_path):
    tool, _record = _fake_tool(tmp_path, rc=3, stdout="", stderr="x" * 5000 + "error: repository is locked")
    with pytest.raises(ToolError) as raised:
        cfsctl.run_gc([tool, "gc"])
    err = raised.value
    assert err.rc == 3 and err.command == [tool, "gc"]
    assert err.stderr.endswith("error: repository is locked") and len(err.stderr) == cfsctl.STDERR_TAIL_CHARS
    assert "exit code 3" in str(err)


def test_missing_tool_is_a_tool_error(tmp_path):
    with pytest.raises(ToolError) as raised:
        cfsctl.run_gc([os.path.join(str(tmp_path), "no-such-cfsctl"), "gc"])
    assert "cannot run" in str(raised.value)
