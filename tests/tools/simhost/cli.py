"""Command line of simhost (the only place that prints).

    python3 tests/tools/simhost.py build DIR [--preset NAME] [--variant V] [--oci-dir DIR [--pending VERSION]...] [--json]
    python3 tests/tools/simhost.py --list-presets

``build`` lays out preset ``NAME`` (default ``three-deployments``) below ``DIR`` (new or empty),
moved to variant ``V`` when given, and prints a summary, or the ``build_host`` result as JSON.
``--oci-dir`` keeps the OCI image layout the images were imported from; ``--pending`` adds images
to it that are not imported (updates for pull demos, reachable as ``oci:<dir>:<os>-<version>``).
Exit status: 0 built, 2 bad arguments or spec.
"""

from __future__ import annotations

import argparse
import json
import sys

from simhost.builder import build_host
from simhost.spec import PRESETS, VARIANTS, load_spec, preset_spec

DEFAULT_PRESET = "three-deployments"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="simhost.py", description="Build a simulated bootc composefs host tree.")
    parser.add_argument("--list-presets", action="store_true", help="list the presets and exit")
    commands = parser.add_subparsers(dest="command")
    build = commands.add_parser("build", help="build a host below DIR")
    build.add_argument("dir", metavar="DIR", help="new or empty directory to build the host in")
    build.add_argument("--preset", default=DEFAULT_PRESET, choices=sorted(PRESETS), help="what to build (default %(default)s)")
    build.add_argument("--variant", choices=VARIANTS, help="bootloader and boot type, overriding the preset's")
    build.add_argument("--oci-dir", help="keep the OCI image layout in this directory")
    build.add_argument("--pending", action="append", default=[], metavar="VERSION",
                       help="also write image VERSION (not imported) to the --oci-dir layout, to pull later")
    build.add_argument("--json", action="store_true", help="print the build result as JSON")
    return parser


def _short(verity) -> str:
    return verity[:16] + "…" if verity else "-"


def _summary(result: dict) -> str:
    lines = ["built %s host in %s (%.2fs)" % (result["variant"], result["root"], result["seconds"])]
    for deployment in result["deployments"]:
        notes = []
        if deployment["legacy"]:
            notes.append("legacy")
        if deployment["boot_artifact_shared"]:
            notes.append("shares %s" % _short(deployment["boot_artifact_name"]))
        lines.append("  %-8s %-6s %s kernel %s %s" % (deployment["role"], deployment["version"], _short(deployment["verity"]),
                                                      deployment["kernel_version"], " ".join(notes)))
    lines.append("  tags: %d (%s)" % (len(result["tags"]), ", ".join(t["tag"] for t in result["tags"])))
    for damage in result["damages"]:
        lines.append("  damage %s -> %s finding %s: %s"
                     % (damage["kind"], damage["reported_by"], damage["finding"], ", ".join(damage["paths"])))
    return "\n".join(lines)


def main(argv=None) -> int:
    """Run the command line; return the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.list_presets:
        width = max(len(name) for name in PRESETS)
        for name, (description, _factory) in PRESETS.items():
            print("%-*s  %s" % (width, name, description))
        return 0
    if args.command != "build":
        parser.print_usage(sys.stderr)
        return 2
    try:
        spec = preset_spec(args.preset, args.variant)
        if args.oci_dir:
            spec.oci_dir = args.oci_dir
        spec.pending_versions = tuple(args.pending)
        result = build_host(args.dir, load_spec(spec))
    except ValueError as err:
        print("simhost: %s" % err, file=sys.stderr)
        return 2
    try:
        print(json.dumps(result, indent=2, sort_keys=True) if args.json else _summary(result))
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader (``| head``) went away: the host is built, which is what counts.
        sys.stdout = None
    return 0
