# -*- coding: utf-8 -*-
# Copyright: (c) 2026, bootc.composefs maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The demo behind ``make demo``: a simulated bootc composefs host, and a playbook showing its status.

1. build the ``demo`` preset of tests/tools/simhost in a temporary directory: five deployments
   (booted, staged, rollback, two others, one of them legacy), an app image, two stale bootc tags;
2. run ``playbooks/demo.yml`` on it with ``ansible-playbook`` (localhost, local connection): the
   play reads the status with ``bootc.composefs.composefs_status``, prints the host, each
   deployment and the findings, and checks booted / staged / rollback against what was built;
3. remove the temporary directory (``--keep`` leaves it for a closer look).

Run it through ``make demo`` (which prepares .venv first) or as ``.venv/bin/python tests/tools/demo.py``.
"""

import argparse
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
TOOLS = REPO_ROOT / "tests" / "tools"
COLLECTIONS = REPO_ROOT / ".ci" / "tmp" / "collections"
PLAYBOOK = REPO_ROOT / "playbooks" / "demo.yml"
VENV_BIN = REPO_ROOT / ".venv" / "bin"


def _say(text=""):
    print(text, flush=True)


def _collection_path() -> str:
    """``.ci/tmp/collections`` with ``ansible_collections/bootc/composefs`` -> this checkout."""
    link = COLLECTIONS / "ansible_collections" / "bootc" / "composefs"
    if not link.exists():
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.is_symlink():
            link.unlink()
        link.symlink_to(REPO_ROOT)
    return str(COLLECTIONS)


def _tool(name: str) -> str:
    """The ansible command ``name`` from .venv, else from PATH."""
    candidate = VENV_BIN / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if found is None:
        raise SystemExit("demo: %s not found; run `make demo` (it prepares .venv) instead" % name)
    return found


def build(root: str) -> dict:
    """Build the demo host below ``root``; return simhost's description of it."""
    sys.path.insert(0, str(TOOLS))
    import simhost  # pylint: disable=import-outside-toplevel

    return simhost.build_host(root, simhost.preset_spec("demo"))


def describe(built: dict) -> None:
    _say("Built a simulated %s host (%s boot entries) in %s:" % (built["bootloader"], built["boot_type"], built["root"]))
    for deployment in built["deployments"]:
        notes = []
        if deployment["legacy"]:
            notes.append("legacy: no manifest digest in its origin, metadata in .imginfo")
        if deployment["boot_artifact_shared"]:
            notes.append("boots from another deployment's kernel dir")
        _say("  %-8s version %-3s %s...  %s" % (deployment["role"], deployment["version"], deployment["verity"][:16],
                                                "; ".join(notes)))
    _say("  plus %d app image tag(s) and %d stale bootc tag(s)" % (len(built["app_images"]), len(built["stale_bootc_tags"])))
    _say()


def run_playbook(built: dict) -> int:
    """Run the demo playbook on the built host; return its exit status (its output goes to the terminal)."""
    extra = {
        "composefs_demo_root": built["root"],
        "composefs_demo_expect": {"booted": built["booted"], "staged": built["staged"], "rollback": built["rollback"]},
        "ansible_python_interpreter": sys.executable,
    }
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=_collection_path(), ANSIBLE_CALLBACK_RESULT_FORMAT="yaml",
               ANSIBLE_LOCALHOST_WARNING="0", ANSIBLE_INVENTORY_UNPARSED_WARNING="0", ANSIBLE_RETRY_FILES_ENABLED="0")
    argv = [_tool("ansible-playbook"), "-i", "localhost,", "-c", "local", "-e", json.dumps(extra), str(PLAYBOOK)]
    _say("$ ansible-playbook -i localhost, -c local -e composefs_demo_root=%s %s"
         % (built["root"], PLAYBOOK.relative_to(REPO_ROOT)))
    return subprocess.run(argv, env=env, cwd=str(REPO_ROOT), check=False).returncode


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Build a simulated bootc composefs host and show its status.")
    parser.add_argument("--keep", action="store_true", help="keep the simulated host instead of removing it")
    args = parser.parse_args(argv)
    workdir = tempfile.mkdtemp(prefix="bootc-composefs-demo-")
    status = 1
    try:
        built = build(os.path.join(workdir, "host"))
        describe(built)
        status = run_playbook(built)
    finally:
        if args.keep:
            _say("The simulated host is kept in %s" % workdir)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    _say()
    if status == 0:
        _say("Demo done: the status above is what the simulated host was built with.%s"
             % ("" if args.keep else " The temporary host has been removed."))
    else:
        _say("Demo failed (ansible-playbook exit status %d)." % status)
    return status


if __name__ == "__main__":
    sys.exit(main())
