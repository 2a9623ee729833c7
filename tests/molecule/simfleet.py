"""Simulated hosts and the upgrade target for the Molecule scenarios (run on the controller by their prepare step).

    simfleet.py build ROOT SPEC_JSON RESULT_JSON
        build_host(ROOT, SPEC) with tests/tools/simhost and write its result (the expected values of
        the scenario's verify step) to RESULT_JSON.
    simfleet.py target WORKDIR REGISTRY RESULT_JSON [--tag TAG]...
        the upgrade target: simhost writes version 3 of the image next to a host (pending image of
        spec TARGET_BASE, booted kernel), skopeo pushes it to docker://REGISTRY/simos:TAG for each TAG,
        and a reference host booted into version 3 gives the deployment verity the target must have
        once deployed. Checks that the digest simhost wrote, the one skopeo reports from the registry
        and the reference host's agree, and writes them to RESULT_JSON.
    simfleet.py treehash ROOT
        prints a digest of every path, type, mode, link target and file content below ROOT (the
        same command runs in the containers, to prove check mode changed nothing).
"""

import hashlib
import json
import os
import subprocess
import sys

TOOLS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "tests", "tools")
sys.path.insert(0, TOOLS)

import simhost  # noqa: E402  pylint: disable=wrong-import-position

TARGET_VERSION = "3"
# The fleet's hosts: booted 2, rollback 1 (systemd-boot, Type1): the shape of every host after an upgrade.
TARGET_BASE = {"variant": "bls-systemd", "deployments": [
    {"role": "booted", "version": "2", "kernel_version": "6.12.2-sim"},
    {"role": "rollback", "version": "1", "kernel_version": "6.12.1-sim"},
]}


def run(argv):
    """Run a tool; exit with its stderr when it fails."""
    proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False, env=dict(os.environ, LC_ALL="C"))
    if proc.returncode != 0:
        sys.exit("%s failed: %s" % (" ".join(argv), proc.stderr.decode("utf-8", "replace")[-2000:]))
    return proc.stdout.decode()


def write_json(path, data):
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=1, sort_keys=True)


def build(root, spec_json, result_path):
    """Build one simulated host; its build result is the scenario's expectation."""
    write_json(result_path, simhost.build_host(root, json.loads(spec_json)))


def target(workdir, registry, result_path, tags):
    """Write, push and cross-check the upgrade target image (see the module docstring)."""
    oci_dir = os.path.join(workdir, "oci")
    base = simhost.build_host(os.path.join(workdir, "target-base"), dict(TARGET_BASE, oci_dir=oci_dir, pending_versions=[TARGET_VERSION]))
    pending = base["pending_images"][0]
    booted_kernel = next(d["kernel_version"] for d in base["deployments"] if d["role"] == "booted")
    reference = simhost.build_host(os.path.join(workdir, "target-reference"), {
        "variant": TARGET_BASE["variant"],
        "deployments": [{"role": "booted", "version": TARGET_VERSION, "kernel_version": booted_kernel}]})
    deployed = reference["deployments"][0]
    if deployed["manifest_digest"] != pending["manifest_digest"]:
        sys.exit("simhost wrote %s for the pending image but %s for the deployed one" % (pending["manifest_digest"], deployed["manifest_digest"]))
    pushed = {}
    for tag in tags:
        destination = "docker://%s/simos:%s" % (registry, tag)
        run(["skopeo", "copy", "--quiet", "--dest-tls-verify=false", pending["reference"], destination])
        pushed[tag] = json.loads(run(["skopeo", "inspect", "--tls-verify=false", destination]))["Digest"]
        if pushed[tag] != pending["manifest_digest"]:
            sys.exit("the registry serves %s as %s, simhost wrote %s" % (destination, pushed[tag], pending["manifest_digest"]))
    write_json(result_path, {
        "version": TARGET_VERSION,
        "manifest_digest": pending["manifest_digest"],
        "verity": deployed["verity"],
        "boot_digest": deployed["boot_digest"],
        "images": {tag: "%s/simos:%s" % (registry, tag) for tag in tags},
        "pushed": pushed,
    })


def treehash(root):
    """Digest of the tree below ``root`` (paths, types, modes, link targets, contents)."""
    digest = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            digest.update(("%s %o\n" % (os.path.relpath(path, root), st.st_mode)).encode())
            if os.path.islink(path):
                digest.update(os.readlink(path).encode())
            elif os.path.isfile(path):
                with open(path, "rb") as handle:
                    digest.update(handle.read())
    return digest.hexdigest()


def main(argv):
    """Dispatch the subcommands of the module docstring."""
    if len(argv) == 4 and argv[0] == "build":
        build(*argv[1:])
    elif len(argv) >= 4 and argv[0] == "target":
        tags = [argv[i + 1] for i in range(4, len(argv), 2) if argv[i] == "--tag"] or ["stable"]
        target(argv[1], argv[2], argv[3], tags)
    elif len(argv) == 2 and argv[0] == "treehash":
        print(treehash(argv[1]))
    else:
        sys.exit(__doc__)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
