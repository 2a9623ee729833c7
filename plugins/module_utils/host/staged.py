# -*- coding: utf-8 -*-
# Copyright: (c) 2026, bootc.composefs maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The transient staged-deployment marker ``/run/composefs/staged-deployment`` (layer: host).

Spec: bootc-composefs-host.md §1.6, §2.5 step 3, §6.1 T3. Upstream: bootc
``bootc_composefs/status.rs`` (``StagedDeployment``), ``composefs_consts.rs``.

Written (on tmpfs) when ``bootc upgrade``/``switch`` stages a deployment; canonical JSON, sorted
keys, no whitespace::

    {"depl_id":"<verity>","finalization_locked":false}

| member | type | meaning |
|---|---|---|
| ``depl_id`` | string, required | verity of the staged deployment |
| ``finalization_locked`` | bool, required | ``--download-only``: do not finalize at shutdown (status ``downloadOnly``) |

Unknown members are ignored; a missing or mistyped required member is a ``FormatError`` (bootc's
serde would fail status). The marker is the only thing that makes an entry in ``entries.staged``
(or ``user.cfg.staged``) "staged": once it is gone (reboot without finalize, ``rm -rf
/run/composefs``) status shows no staged deployment.
"""

from __future__ import annotations

import json
from typing import NamedTuple

from ansible_collections.bootc.composefs.plugins.module_utils.errors import FormatError

__all__ = ["StagedDeployment", "parse_staged_deployment", "load_staged_deployment"]


class StagedDeployment(NamedTuple):
    """The marker: which verity is staged and whether its finalization is locked (download only)."""

    depl_id: str
    finalization_locked: bool

    @property
    def verity(self) -> str:
        """The staged deployment's verity (``depl_id``)."""
        return self.depl_id

    @property
    def download_only(self) -> bool:
        """Status ``downloadOnly``: same as ``finalization_locked``."""
        return self.finalization_locked


def parse_staged_deployment(text: str) -> StagedDeployment:
    """Parse the marker JSON; ``FormatError`` if it is not an object with the two required members."""
    try:
        document = json.loads(text)
    except ValueError as err:
        raise FormatError("not valid JSON: %s" % err)
    if not isinstance(document, dict):
        raise FormatError("expected a JSON object")
    depl_id = document.get("depl_id")
    locked = document.get("finalization_locked")
    if not isinstance(depl_id, str) or not depl_id:
        raise FormatError("'depl_id' is missing or not a non-empty string")
    if not isinstance(locked, bool):
        raise FormatError("'finalization_locked' is missing or not a boolean")
    return StagedDeployment(depl_id=depl_id, finalization_locked=locked)


def load_staged_deployment(paths) -> StagedDeployment | None:
    """The marker at ``paths.staged_deployment_file``; None if it does not exist."""
    path = paths.staged_deployment_file
    text = paths.read_text(path)
    if text is None:
        return None
    try:
        return parse_staged_deployment(text)
    except FormatError as err:
        raise err.with_path(path)
