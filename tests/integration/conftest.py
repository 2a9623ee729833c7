"""Integration fixtures: simulated hosts (tests/tools/simhost) and real ``ansible`` / ``ansible-playbook`` runs.

Everything runs the collection the way an operator does: the CLI tools of ``.venv/bin`` with
``ANSIBLE_COLLECTIONS_PATH`` pointing at ``.ci/tmp/collections`` (``ansible_collections/bootc/composefs``
-> the repository root, made by tests/setup/bootstrap.sh and re-made here when missing), against
``localhost`` over the ``local`` connection, with the venv's Python on the managed side.

Fixtures:

* ``simulated_host(preset, variant=None, oci_dir=False)``: builds a host once per session and per
  arguments; returns the ``simhost.build_host`` result (what was built, in its own words);
* ``ansible_adhoc(module, args, check=False)``: ``ansible localhost -m module -a args`` with the
  ``minimal`` callback; returns ``AdhocResult(rc, status, result, stderr)``;
* ``ansible_playbook(playbook, extra_vars=None, check=False)``: returns the finished process
  (``rc``, ``stdout``, ``stderr``) with text output;
* ``tree_digest(root)``: a sha256 over every name, type, mode, link text and content below root.
"""

import hashlib
import json
import os
import pathlib
import subprocess
import sys
import tempfile
from typing import NamedTuple

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
VENV_BIN = REPO_ROOT / ".venv" / "bin"
COLLECTIONS = REPO_ROOT / ".ci" / "tmp" / "collections"
TOOLS = REPO_ROOT / "tests" / "tools"
PYTHON = str(VENV_BIN / "python")


def _ensure_collection_link():
    link = COLLECTIONS / "ansible_collections" / "bootc" / "composefs"
    if not link.exists():
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.is_symlink():
            link.unlink()
        link.symlink_to(REPO_ROOT)


def ansible_env(**extra):
    """The environment every ansible command of these tests runs with."""
    env = dict(os.environ)
    env.update({
        "ANSIBLE_COLLECTIONS_PATH": str(COLLECTIONS),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        "ANSIBLE_HOST_KEY_CHECKING": "0",
        "ANSIBLE_RETRY_FILES_ENABLED": "0",
        "ANSIBLE_LOCALHOST_WARNING": "0",
        "ANSIBLE_INVENTORY_UNPARSED_WARNING": "0",
        "LC_ALL": "C.UTF-8",
        "PATH": "%s:%s" % (VENV_BIN, env.get("PATH", "")),
    })
    env.update(extra)
    return env


def _simhost():
    if str(TOOLS) not in sys.path:
        sys.path.insert(0, str(TOOLS))
    import simhost  # pylint: disable=import-outside-toplevel

    return simhost


class AdhocResult(NamedTuple):
    rc: int
    status: str
    result: dict
    stderr: str


def run_adhoc(module, args, check=False, extra_args=()):
    """``ansible localhost -m module -a args``; ``args`` is a dict, passed as JSON."""
    argv = [str(VENV_BIN / "ansible"), "localhost", "-i", "localhost,", "-c", "local",
            "-e", "ansible_python_interpreter=%s" % PYTHON, "-m", module]
    if args:
        argv += ["-a", json.dumps(args)]
    if check:
        argv.append("--check")
    argv += list(extra_args)
    proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ansible_env(), text=True,
                          check=False, cwd=str(REPO_ROOT))
    head, sep, body = proc.stdout.partition(" => ")
    if not sep:
        raise AssertionError("unexpected ansible output (rc %d):\n%s\n%s" % (proc.returncode, proc.stdout, proc.stderr))
    return AdhocResult(proc.returncode, head.split("|")[-1].strip().rstrip("!"), json.loads(body), proc.stderr)


def run_playbook(playbook, extra_vars=None, check=False):
    """``ansible-playbook -i localhost, playbook``, extra vars as a JSON file; returns the CompletedProcess."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(dict(extra_vars or {}, ansible_python_interpreter=PYTHON), handle)
        vars_file = handle.name
    try:
        argv = [str(VENV_BIN / "ansible-playbook"), "-i", "localhost,", "-c", "local", "-e", "@" + vars_file, str(playbook)]
        if check:
            argv.append("--check")
        return subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ansible_env(), text=True,
                              check=False, cwd=str(REPO_ROOT))
    finally:
        os.unlink(vars_file)


def tree_digest(root):
    """sha256 over every path, type, mode, mtime, link text and file content below ``root`` (nothing followed)."""
    digest = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            path = os.path.join(dirpath, name)
            info = os.lstat(path)
            digest.update(("%s %o %d %d\n" % (os.path.relpath(path, root), info.st_mode, info.st_size,
                                              info.st_mtime_ns)).encode())
            if os.path.islink(path):
                digest.update(os.readlink(path).encode())
            elif os.path.isfile(path):
                with open(path, "rb") as handle:
                    digest.update(handle.read())
    return digest.hexdigest()


@pytest.fixture(scope="session", autouse=True)
def collection_link():
    _ensure_collection_link()


@pytest.fixture(scope="session")
def simhost():
    """The simhost package (tests/tools/simhost)."""
    return _simhost()


@pytest.fixture(scope="session")
def simulated_host(tmp_path_factory, simhost):  # pylint: disable=redefined-outer-name
    """Factory: ``simulated_host(preset, variant=None, oci_dir=False)`` -> build result (built once per session)."""
    built = {}

    def build(preset, variant=None, oci_dir=False):
        key = (preset, variant, oci_dir)
        if key not in built:
            base = tmp_path_factory.mktemp("%s-%s" % (preset, variant or "default"))
            spec = simhost.preset_spec(preset, variant)
            if oci_dir:
                spec.oci_dir = str(base / "oci")
            built[key] = simhost.build_host(str(base / "root"), spec)
        return built[key]

    return build


@pytest.fixture(scope="session")
def ansible_adhoc():
    return run_adhoc


@pytest.fixture(scope="session")
def ansible_playbook():
    return run_playbook


@pytest.fixture(name="tree_digest", scope="session")
def fixture_tree_digest():
    return tree_digest
