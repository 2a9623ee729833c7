"""simhost: simulated bootc composefs hosts for the tests, the demo and Molecule.

``build_host(root, spec)`` lays out a complete host below ``root`` in the real formats, exactly as
bootc does (spec ../shared/spec/bootc-composefs-host.md §1): a composefs repository holding real
OCI images (ocigen) with their boot EROFS images, state dirs with origins, boot binaries, BLS
entries or a GRUB menu, the kernel command line and the staged marker, plus optional damages.

| module | owns |
|---|---|
| ``spec`` | ``HostSpec`` and its parts, variants, damage kinds, presets |
| ``bootfiles`` | rendering bootc's files (entries, origin, user.cfg, efivars...) |
| ``images`` | building and importing images, boot resources (``read_boot_image``), ``/etc`` extraction |
| ``layout`` | where each file goes for a variant, and writing it; ``HostLayout.booted_cmdline`` |
| ``damage`` | one damage per finding kind |
| ``builder`` | ``build_host`` |
| ``cli`` | ``python3 tests/tools/simhost.py build DIR ...`` |

Importing the package makes ``ocigen`` and the collection importable (``importpath``).
"""

from simhost.importpath import ensure_import_paths

ensure_import_paths()

# pylint: disable=wrong-import-position
from simhost.builder import build_host  # noqa: E402
from simhost.images import read_boot_image  # noqa: E402
from simhost.layout import HostLayout  # noqa: E402
from simhost.spec import (  # noqa: E402
    DAMAGE_FINDINGS,
    DAMAGE_KINDS,
    PRESETS,
    VARIANTS,
    AppImageSpec,
    DamageSpec,
    DeploymentSpec,
    HostSpec,
    load_spec,
    preset_spec,
)

__all__ = [
    "build_host",
    "read_boot_image",
    "HostLayout",
    "AppImageSpec",
    "DamageSpec",
    "DeploymentSpec",
    "HostSpec",
    "load_spec",
    "preset_spec",
    "DAMAGE_FINDINGS",
    "DAMAGE_KINDS",
    "PRESETS",
    "VARIANTS",
]
