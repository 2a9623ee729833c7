# -*- coding: utf-8 -*-
# Copyright: (c) 2026, bootc.composefs maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The progress file of a running pull (layer: operations).

``progress_file`` (default ``<run_dir>/bootc-composefs/pull-progress.json``): while a pull runs,
JSON replaced atomically (written to a temporary file beside it, then renamed) at most every
``PROGRESS_INTERVAL_SECONDS`` and at each phase and layer; removed at the end. Keys:

================= ==============================================================================
key               value
================= ==============================================================================
``version``       1
``pid``           the pulling process
``image``         the reference as displayed
``phase``         ``resolving``, ``staging`` (the ``podman pull`` of a unified pull), ``fetching``
                  (layers fetched and imported), ``boot-image``, ``tagging``
``layers_total``  layers of the image
``layers_done``   layers imported or reused so far
``bytes_total``   the blob sizes of the layers to fetch
``bytes_done``    blob bytes read so far
``started``       Unix time the pull started
``updated``       Unix time of this state
================= ==============================================================================
"""

from __future__ import annotations

import json
import os
import tempfile
import time

from ansible_collections.bootc.composefs.plugins.module_utils.errors import ComposefsError

__all__ = ["PROGRESS_SUBPATH", "PROGRESS_VERSION", "PullProgress", "default_progress_file"]

PROGRESS_SUBPATH = os.path.join("bootc-composefs", "pull-progress.json")
PROGRESS_INTERVAL_SECONDS = 0.5
PROGRESS_VERSION = 1


def default_progress_file(run_dir: str) -> str:
    """``<run_dir>/bootc-composefs/pull-progress.json``."""
    return os.path.join(run_dir, PROGRESS_SUBPATH)


class PullProgress:
    """The progress file (module docstring); every method is a no-op while ``path`` is None."""

    def __init__(self, path: str | None, image: str) -> None:
        self.path = path
        self.state = {"version": PROGRESS_VERSION, "pid": os.getpid(), "image": image, "phase": "resolving",
                      "layers_total": 0, "layers_done": 0, "bytes_total": 0, "bytes_done": 0,
                      "started": time.time(), "updated": time.time()}
        self._last = 0.0

    def update(self, force: bool = False, **fields) -> None:
        """Record ``fields``; write the file when ``force`` or when the last write is old enough."""
        if self.path is None:
            return
        self.state.update(fields)
        now = time.monotonic()
        if not force and now - self._last < PROGRESS_INTERVAL_SECONDS:
            return
        self._last = now
        self.state["updated"] = time.time()
        directory = os.path.dirname(self.path)
        try:
            os.makedirs(directory, mode=0o755, exist_ok=True)
            fd, temp = tempfile.mkstemp(prefix=".pull-progress-", dir=directory)
            try:
                with os.fdopen(fd, "w") as handle:
                    json.dump(self.state, handle, sort_keys=True)
                os.chmod(temp, 0o644)
                os.replace(temp, self.path)
            except BaseException:
                os.unlink(temp)
                raise
        except OSError as err:
            raise ComposefsError("cannot write the progress file: %s; set progress_file to a writable path"
                                 % (err.strerror or err), path=self.path) from None

    def remove(self) -> None:
        """Remove the file (the pull ended)."""
        if self.path is not None:
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass
