# -*- coding: utf-8 -*-
# Copyright: (c) 2026, bootc.composefs maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests for operations/gc_cfsctl.py: the repository part delegated to cfsctl (a runner stands in for the tool).
"""

from __future__ import annotations


import pytest

from ansible_collections.bootc.composefs.plugins.module_utils.errors import ToolError
from ansible_collections.bootc.composefs.tests.unit.builders import repo_builder as rb

from ansible_collections.bootc.composefs.tests.unit.plugins.module_utils.operations.test_gc import (
    Garbage,
    bootc_tag_file,
    run,
    tags_on_disk,
)


@pytest.fixture
def host(three_deployments):
    sim, images = three_deployments
    return Garbage(sim, images)


def test_cfsctl_backend_gets_the_live_roots_after_the_tag_changes(host):
    calls = []

    def runner(argv, env):
        calls.append((argv, env["LC_ALL"], dict(tags_on_disk(host.repo_root))))
        assert rb.try_lock_process(host.repo_root, "EX"), "our handle must be closed while cfsctl runs"
        return 0, "Objects: 3 removed (123 bytes)\n", ""

    result = run(host.host, runner=runner, repo_gc_backend="cfsctl", cfsctl_command=("bootc", "internals", "cfs"))
    (argv, lc_all, tags_seen), = calls
    assert lc_all == "C"
    assert argv[:6] == ["bootc", "internals", "cfs", "--repo", str(host.repo_root), "--no-upgrade"]
    assert argv[6] == "gc"
    roots = set(argv[8::2])
    assert argv[7::2] == ["-r"] * len(roots)
    assert roots == ({i.boot_id for i in host.live_images}
                     | {"oci-manifest-" + i.manifest_digest for i in host.live_images})
    assert bootc_tag_file(host.stale.manifest_digest) not in tags_seen
    data = result.as_dict()
    assert data["repository"]["tool"]["objects_removed"] == 3
    assert data["objects_removed"] == 0  # the fake removed nothing: counts come from the disk


def test_cfsctl_failure_is_a_tool_error_with_the_command_and_stderr(host):
    def runner(argv, env):
        return 1, "", "error: Acquiring exclusive lock for GC\n"

    with pytest.raises(ToolError) as raised:
        run(host.host, runner=runner, repo_gc_backend="cfsctl")
    assert raised.value.command[0] == "cfsctl" and "Acquiring exclusive lock" in raised.value.stderr
