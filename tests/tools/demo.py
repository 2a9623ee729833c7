# -*- coding: utf-8 -*-
# Copyright: (c) 2026, bootc.composefs maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The demo behind ``make demo``: a full cycle on a simulated bootc composefs host.

1. build the ``demo`` preset of tests/tools/simhost in a temporary directory: five deployments
   (booted, staged, rollback, two others, one of them legacy), an app image, two stale bootc tags,
   in the real on-disk formats; plus an OCI layout holding a newer version of the OS image
   (simhost ``--oci-dir ... --pending 6``);
2. start a local registry (Debian's docker-registry, tests/tools/registry.py) on 127.0.0.1 and a
   free port, and push the newer image to it with ``skopeo copy``;
3. run ``playbooks/demo.yml`` on the host with ``ansible-playbook`` (localhost, local connection):
   status before -> pull from the registry (twice: the second changes nothing) -> stage with the
   ``bootc.composefs.upgrade`` role, whose ``bootc`` is the bootc test double
   (tests/tools/bootc_double.py), no reboot -> cleanup with ``composefs_gc`` (the plan in check
   mode, then the real run) -> status after, with before/after figures;
4. stop the registry and remove the temporary directory, also when a step fails or the demo is
   interrupted (Ctrl-C, SIGTERM). ``--keep`` keeps the directory for a closer look.

The double only knows what the registry serves through registries.conf, as bootc does: it runs
with ``HOME`` in the temporary directory, whose ``.config/containers/registries.conf`` marks the
plain-HTTP registry as insecure (Debian 12's skopeo has no ``CONTAINERS_REGISTRIES_CONF``).

Run it through ``make demo`` (which prepares .venv and the Debian packages first) or as
``.venv/bin/python tests/tools/demo.py``.
"""

import argparse
import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import tempfile
import time

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
TOOLS = REPO_ROOT / "tests" / "tools"
COLLECTIONS = REPO_ROOT / ".ci" / "tmp" / "collections"
PLAYBOOK = REPO_ROOT / "playbooks" / "demo.yml"
DOUBLE = TOOLS / "bootc_double.py"
VENV_BIN = REPO_ROOT / ".venv" / "bin"
NEW_VERSION = "6"
REPOSITORY_NAME = "simos"
PLAYBOOK_GRACE_SECONDS = 15

if str(TOOLS) not in sys.path:
    sys.path.insert(0, str(TOOLS))

import registry  # noqa: E402  pylint: disable=wrong-import-position


class DemoError(Exception):
    """A step of the demo failed; the message says which and why."""


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
    """The command ``name`` from .venv, else from PATH."""
    candidate = VENV_BIN / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if found is None:
        raise DemoError("%s not found; run `make demo` (it installs everything the demo needs) instead" % name)
    return found


def _exit_on_signal(signum, _frame):
    """SIGTERM and SIGHUP end the demo like Ctrl-C does: through the clean-up."""
    raise KeyboardInterrupt("signal %d" % signum)


def build(workdir: str) -> dict:
    """Build the demo host and the OCI layout with the newer image below ``workdir``; return simhost's result."""
    import simhost  # pylint: disable=import-outside-toplevel

    spec = simhost.preset_spec("demo")
    spec.oci_dir = os.path.join(workdir, "oci")
    spec.pending_versions = (NEW_VERSION,)
    _say("$ python3 tests/tools/simhost.py build %s/host --preset demo --oci-dir %s --pending %s"
         % (workdir, spec.oci_dir, NEW_VERSION))
    return simhost.build_host(os.path.join(workdir, "host"), simhost.load_spec(spec))


def describe(built: dict) -> None:
    _say("Built a simulated %s host (%s boot entries, real composefs repository) in %.1fs:"
         % (built["bootloader"], built["boot_type"], built["seconds"]))
    for deployment in built["deployments"]:
        notes = []
        if deployment["legacy"]:
            notes.append("legacy: no manifest digest in its origin, metadata in .imginfo")
        if deployment["boot_artifact_shared"]:
            notes.append("boots from another deployment's kernel dir")
        _say(("  %-8s version %-3s %s...  %s" % (deployment["role"], deployment["version"], deployment["verity"][:16],
                                                 "; ".join(notes))).rstrip())
    _say("  plus %d app image tag(s) and %d stale bootc tag(s)" % (len(built["app_images"]), len(built["stale_bootc_tags"])))
    pending = built["pending_images"][0]
    _say("  and, not imported: version %s in the OCI layout %s (manifest %s)"
         % (pending["version"], built["oci_dir"], pending["manifest_digest"]))
    _say()


def push(built: dict, reg) -> str:
    """Copy the pending image into the registry with skopeo; return its reference there (host:port/name:tag)."""
    pending = built["pending_images"][0]
    image = "%s/%s:%s" % (reg.address, REPOSITORY_NAME, pending["version"])
    argv = [_tool("skopeo"), "copy", "--quiet", "--dest-tls-verify=false", pending["reference"], "docker://" + image]
    _say("$ skopeo copy --dest-tls-verify=false %s docker://%s" % (pending["reference"], image))
    proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False, env=dict(os.environ, LC_ALL="C"))
    if proc.returncode != 0:
        raise DemoError("skopeo copy failed (exit status %d): %s" % (proc.returncode, proc.stderr.decode("utf-8", "replace").strip()))
    return image


def bootc_command(workdir: str, root: str, reg) -> list:
    """The bootc the upgrade role runs: the test double on ``root``, trusting the plain-HTTP registry."""
    home = pathlib.Path(workdir) / "bootc-home"
    conf = home / ".config" / "containers" / "registries.conf"
    conf.parent.mkdir(parents=True)
    conf.write_text(registry.registries_conf(reg.address))
    return ["env", "HOME=%s" % home, sys.executable, str(DOUBLE), "--root", root]


def _stop_playbook(proc) -> None:
    """Let an interrupted ansible-playbook stop: its own SIGINT from the terminal, else ours; SIGKILL after a while."""
    for action in (None, proc.send_signal):
        if action is not None:
            action(signal.SIGINT)
        try:
            proc.wait(timeout=2 if action is None else PLAYBOOK_GRACE_SECONDS)
            return
        except subprocess.TimeoutExpired:
            pass
    proc.kill()
    proc.wait()


def run_playbook(workdir: str, built: dict, image: str, bootc: list) -> int:
    """Run the demo playbook, its variables in ``<workdir>/demo-vars.json``; return its exit status (output to the terminal).

    On Ctrl-C or SIGTERM ansible-playbook gets SIGINT (it is in the terminal's process group too)
    and some seconds to stop; it is killed after that.
    """
    extra = {
        "composefs_demo_root": built["root"],
        "composefs_demo_image": image,
        "composefs_demo_tls_verify": False,
        "composefs_demo_bootc_command": bootc,
        "composefs_demo_expect": {"booted": built["booted"], "staged": built["staged"], "rollback": built["rollback"],
                                  "manifest_digest": built["pending_images"][0]["manifest_digest"]},
        "ansible_python_interpreter": sys.executable,
    }
    vars_file = os.path.join(workdir, "demo-vars.json")
    with open(vars_file, "w", encoding="utf-8") as handle:
        json.dump(extra, handle, indent=1, sort_keys=True)
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=_collection_path(), ANSIBLE_CALLBACK_RESULT_FORMAT="yaml",
               ANSIBLE_DISPLAY_SKIPPED_HOSTS="0", ANSIBLE_LOCALHOST_WARNING="0", ANSIBLE_INVENTORY_UNPARSED_WARNING="0",
               ANSIBLE_RETRY_FILES_ENABLED="0")
    argv = [_tool("ansible-playbook"), "-i", "localhost,", "-c", "local", "-e", "@" + vars_file, str(PLAYBOOK)]
    _say("$ ansible-playbook -i localhost, -c local -e @%s %s" % (vars_file, PLAYBOOK.relative_to(REPO_ROOT)))
    _say("  composefs_demo_root=%s" % built["root"])
    _say("  composefs_demo_image=%s (plain HTTP: composefs_demo_tls_verify=false)" % image)
    _say("  composefs_demo_bootc_command: the bootc test double, %s" % " ".join(bootc[2:]))
    proc = subprocess.Popen(argv, env=env, cwd=str(REPO_ROOT))  # pylint: disable=consider-using-with
    try:
        return proc.wait()
    except BaseException:
        _stop_playbook(proc)
        raise


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="A full cycle on a simulated bootc composefs host: status, pull from a "
                                                 "local registry, stage, cleanup, status.")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (host, OCI layout, registry data)")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # also when started with SIGINT ignored (a background job)
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _exit_on_signal)
    started = time.monotonic()
    workdir = tempfile.mkdtemp(prefix="bootc-composefs-demo-")
    reg = None
    status = 1
    try:
        built = build(workdir)
        describe(built)
        reg = registry.LocalRegistry(os.path.join(workdir, "registry"))
        reg.start()
        _say("Started a local registry (docker-registry, plain HTTP) on %s" % reg.address)
        image = push(built, reg)
        _say()
        status = run_playbook(workdir, built, image, bootc_command(workdir, built["root"], reg))
    except (DemoError, registry.RegistryError) as err:
        _say("demo: %s" % err)
    except KeyboardInterrupt:
        _say()
        _say("Demo interrupted.")
        status = 130
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, signal.SIG_IGN)  # a second Ctrl-C must not cut the clean-up short
        if reg is not None:
            reg.stop()
            _say("Stopped the local registry on %s." % reg.address)
        if args.keep:
            _say("The simulated host, the OCI layout and the registry data are kept in %s" % workdir)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
            _say("Removed %s." % workdir)
    _say()
    if status == 0:
        _say("Demo done in %.0fs: status, pull, stage and cleanup on the simulated host, checked against what was built."
             % (time.monotonic() - started))
    elif status != 130:
        _say("Demo failed (exit status %d)." % status)
    return status


if __name__ == "__main__":
    sys.exit(main())
