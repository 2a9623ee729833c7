# -*- coding: utf-8 -*-
# Copyright: (c) 2026, bootc.composefs maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the bootc.composefs modules share: argument-spec pieces and result helpers (layer: module support).

Each argument spec here has the name of the documentation fragment that describes it in
``plugins/doc_fragments/common.py``: ``HOST_PATHS`` is documented by
``bootc.composefs.common.HOST_PATHS``. The option names are the keyword arguments of
``host.paths.load_host_paths`` (plus ``bootloader``, the ``bootloader_kind`` of
``host.deployments.load_host``), so a module hands them down without renaming.

This is the only library file allowed to import ``ansible.*``; it needs nothing from it yet.
"""

from __future__ import annotations

from ansible_collections.bootc.composefs.plugins.module_utils.host import bootloader

__all__ = ["HOST_PATHS", "host_paths_params"]

# Documented by the HOST_PATHS fragment of plugins/doc_fragments/common.py.
HOST_PATHS = {
    "root": {"type": "path", "default": "/"},
    "sysroot": {"type": "path"},
    "boot_dir": {"type": "path"},
    "esp": {"type": "path"},
    "run_dir": {"type": "path"},
    "cmdline_file": {"type": "path"},
    "bootloader": {"type": "str", "choices": list(bootloader.KINDS)},
}


def host_paths_params(params: dict) -> dict:
    """The HOST_PATHS options out of a module's ``params``, ready for an operation's request."""
    return {name: params.get(name) for name in HOST_PATHS}
