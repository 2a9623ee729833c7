# -*- coding: utf-8 -*-
# Copyright: (c) 2026, bootc.composefs maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The repository part of a host GC delegated to ``cfsctl gc`` / ``bootc internals cfs gc`` (layer: operations).

With ``repo_gc_backend=cfsctl`` the plan is made as with the native backend (``repository/gc.py``,
so check mode and the refusals are the same), then our repository handle is closed and the tool
runs with the plan's extra roots (``-r <verity>``, ``-r oci-manifest-<digest>``); it takes the
exclusive lock itself. What it removed is then counted from the disk against the plan (the tool's
own report is returned apart, as ``tool``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Callable

from ansible_collections.bootc.composefs.plugins.module_utils.oci import cfsctl
from ansible_collections.bootc.composefs.plugins.module_utils.operations.gc_plan import GcPlan

__all__ = ["CfsctlOutcome", "run_cfsctl"]


@dataclass(frozen=True)
class CfsctlOutcome:
    """The repository part of a run delegated to cfsctl: counts checked against the plan, and the tool's own."""

    objects_removed: int
    objects_bytes: int
    images_pruned: int
    streams_pruned: int
    removed_objects: tuple
    tool: dict = field(hash=False)

    def as_dict(self, list_objects: bool = False) -> dict:
        """The ``repository`` part of the module result."""
        data = {"objects_removed": self.objects_removed, "objects_bytes": self.objects_bytes,
                "images_pruned": self.images_pruned, "streams_pruned": self.streams_pruned, "validation": "cfsctl",
                "tool": dict(self.tool)}
        if list_objects:
            data["removed_objects"] = [raw.hex() for raw in self.removed_objects]
        return data


def run_cfsctl(plan: GcPlan, step: Callable | None, runner) -> CfsctlOutcome:
    """Run the tool with the plan's roots (``step("cfsctl", argv)`` first); what went, counted from the disk."""
    repo_plan = plan.repository
    roots = list(repo_plan.extra_images) + list(repo_plan.extra_streams)
    argv = cfsctl.gc_command(plan.request.cfsctl_command, repo_plan.path, roots)
    if step is not None:
        step("cfsctl", " ".join(argv))
    tool = cfsctl.run_gc(argv, runner=runner)
    gone = []
    total = 0
    for raw, size in zip(repo_plan.remove_objects, repo_plan.remove_sizes):
        object_id = raw.hex()
        if not os.path.lexists(os.path.join(repo_plan.path, "objects", object_id[:2], object_id[2:])):
            gone.append(raw)
            total += size
    pruned = {"images": 0, "streams": 0}
    for category, name, _text in repo_plan.unlink_entries + repo_plan.prune_entries:
        if not os.path.lexists(os.path.join(repo_plan.path, category, name)):
            pruned[category] += 1
    return CfsctlOutcome(objects_removed=len(gone), objects_bytes=total, images_pruned=pruned["images"],
                         streams_pruned=pruned["streams"], removed_objects=tuple(gone), tool=tool.as_dict())
