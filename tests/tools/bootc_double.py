"""TEST DOUBLE of the ``bootc`` command line for simulated composefs hosts. It is not bootc.

The Molecule scenarios run the ``bootc.composefs.upgrade`` role in containers that cannot boot,
against a host tree that ``tests/tools/simhost`` built under a root directory (``--root``, default
``$BOOTC_DOUBLE_ROOT`` or ``/``). This program stands in for the host's ``bootc``: it writes the
same files bootc writes on disk (spec bootc-composefs-host.md §1.3-§1.7, §5.1, §5.5), so the
collection's modules read the result exactly as they would read a real host. It reuses the
collection's library (repository, OCI images, boot EROFS generation, host model) and the simulated
host's readers and writers (``simhost.images.read_boot_image``, ``simhost.bootfiles``, ``simhost.layout``
including ``HostLayout.booted_cmdline``) instead of writing those formats again.

Run it as ``python3 tests/tools/bootc_double.py [--root DIR] <command>`` (no shebang: ansible-test's
shebang check allows only ``#!/usr/bin/env python``, which Debian does not ship). Commands:

* ``switch [--transport T] IMAGE``: resolves IMAGE's manifest digest at its source (``skopeo inspect``),
  then writes, in bootc's order: the ``localhost/bootc-<digest>`` tag and the boot EROFS image (its
  verity is the new deployment id); the Type1 kernel dir, or none when an existing one has the same
  kernel and initrd (bootc#2102); the staged entry set ``loader/entries.staged`` (new primary plus the
  booted entry re-keyed as secondary); the state dir (``etc/`` from the image, ``var`` link,
  ``<v>.origin`` with ``manifest_digest``); last the staged marker ``/run/composefs/staged-deployment``.
* ``upgrade``: ``switch`` to the image the host follows (the staged deployment's, else the booted
  one's); prints "No changes" when that image is deployed already.
* ``rollback``: rewrites the two configured entries with swapped sort keys and ``bootc`` as OS id into
  ``entries.staged``, copies foreign entries, exchanges it with ``entries``; drops a staged deployment
  (its entries and the marker).
* ``status --json``: a minimal ``bootc status --json`` (apiVersion, kind, spec.image, spec.bootOrder,
  status.booted/staged/rollback with image, imageDigest, version and composefs verity, rollbackQueued).
* ``reboot`` (TEST ONLY, stands for a reboot): finalizes a staged deployment (exchanges
  ``entries.staged`` and ``entries``, then bootc's boot-binaries-only GC), clears ``/run/composefs``,
  boots the default entry (writes ``/proc/cmdline`` and ``/proc/self/mountinfo`` for it) and writes a
  new boot id.
* ``boot-id`` (TEST ONLY): prints ``<root>/proc/sys/kernel/random/boot_id``, created when missing; the
  roles' ``boot_time_command`` in tests, so that ``ansible.builtin.reboot`` sees the "reboot".

Deliberate differences from bootc:

* Only Type1 (BLS) hosts: GRUB classic with ``loader/entries`` and systemd-boot. UKI hosts fail with
  a message. The Molecule hosts are ``bls-systemd`` (systemd-boot orders entries by sort key, so a
  rollback changes the default entry; GRUB orders them by file name).
* The image must already be in the repository (the role always pulls it with
  ``bootc.composefs.composefs_pull`` first); bootc would pull it itself. Its digest is still
  resolved at the source, as bootc does, so a moved tag is noticed.
* No ``/etc`` three-way merge at finalize (the state dir keeps the image's ``/etc``), no
  disk-space check, no prune GC after staging (the ``cleanup`` role is what the tests exercise),
  no soft reboot, no journal messages, no locking. Directory exchanges are two renames, not
  ``renameat2(RENAME_EXCHANGE)``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from simhost import importpath  # noqa: E402  pylint: disable=wrong-import-position

importpath.ensure_import_paths()

# pylint: disable=wrong-import-position
from ansible_collections.bootc.composefs.plugins.module_utils.errors import ComposefsError  # noqa: E402
from ansible_collections.bootc.composefs.plugins.module_utils.host import bootbin, bootloader, menuorder  # noqa: E402
from ansible_collections.bootc.composefs.plugins.module_utils.host.deployments import load_host  # noqa: E402
from ansible_collections.bootc.composefs.plugins.module_utils.host.paths import load_host_paths  # noqa: E402
from ansible_collections.bootc.composefs.plugins.module_utils.oci import boot, tags  # noqa: E402
from ansible_collections.bootc.composefs.plugins.module_utils.operations import status as status_operation  # noqa: E402
from ansible_collections.bootc.composefs.plugins.module_utils.repository.repo import Repository  # noqa: E402
from simhost import bootfiles  # noqa: E402
from simhost import images as simhost_images  # noqa: E402
from simhost.layout import HostLayout  # noqa: E402
from simhost.spec import HostSpec  # noqa: E402

# pylint: enable=wrong-import-position

# Transports as bootc's --transport takes them -> containers-image transport prefixes.
TRANSPORT_PREFIXES = {
    "registry": "docker://",
    "oci": "oci:",
    "oci-archive": "oci-archive:",
    "containers-storage": "containers-storage:",
}
BOOT_ID_PATH = ("proc", "sys", "kernel", "random", "boot_id")
COMPOSEFS_KARG = re.compile(r"(?<!\S)composefs=\??[0-9a-f]+")
MEDIA_TYPE_INDEX = "application/vnd.oci.image.index.v1+json"  # the double resolves single-platform images only
ROLLBACK_OS_ID = "bootc"  # bootc's rollback rewrites both entries with this OS id


class DoubleError(Exception):
    """A failure reported like bootc does: a message on stderr and exit code 1."""


def _host(root: str):
    """(paths, HostState) of the simulated host below ``root``."""
    paths = load_host_paths(root)
    return paths, load_host(paths)


def _layout(root: str, state) -> HostLayout:
    """The simulated host's writers for this host's variant (Type1 only)."""
    if state.boot_type != "bls" or state.entry_source != "bls":
        raise DoubleError("bootc test double: only Type1 (BLS) hosts are supported, this one is %s / %s"
                          % (state.boot_type, state.entry_source))
    variant = "bls-systemd" if state.bootloader.kind == bootloader.SYSTEMD else "bls-grub"
    separate_boot = os.path.realpath(state.paths.boot_dir) == os.path.realpath(os.path.join(root, "boot"))
    return HostLayout(root, HostSpec(variant=variant, separate_boot=separate_boot))


def resolve_manifest_digest(transport: str, image: str) -> str:
    """The manifest digest of ``image`` at its source, as bootc asks the image proxy (``skopeo inspect``)."""
    if transport not in TRANSPORT_PREFIXES:
        raise DoubleError("unknown transport %r" % transport)
    argv = ["skopeo", "inspect", "--raw", TRANSPORT_PREFIXES[transport] + image]
    proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False,
                          env=dict(os.environ, LC_ALL="C"))
    if proc.returncode != 0:
        raise DoubleError("%s failed: %s" % (" ".join(argv), proc.stderr.decode("utf-8", "replace").strip()[-2000:]))
    raw = proc.stdout
    if json.loads(raw).get("mediaType") == MEDIA_TYPE_INDEX:
        raise DoubleError("%s is an image index; the test double wants a single-platform image" % image)
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def read_boot_image(repo, manifest_digest: str):
    """What bootc reads from a pulled image to deploy it (simhost's reader): boot verity, tree, kernel, initrd, os-release."""
    try:
        return simhost_images.read_boot_image(repo, manifest_digest, boot_type="bls")
    except RuntimeError as err:
        raise DoubleError("%s (UKI images are not supported)" % err) from None


def _shared_kernel_dir(layout: HostLayout, boot_digest: str):
    """The name of an existing ``bootc_composefs-<name>`` dir with the same kernel + initrd, else None."""
    if not os.path.isdir(layout.type1_dir):
        return None
    for entry in sorted(os.listdir(layout.type1_dir)):
        path = os.path.join(layout.type1_dir, entry)
        if not entry.startswith(bootfiles.PREFIX) or not os.path.isdir(path):
            continue
        try:
            with open(os.path.join(path, "vmlinuz"), "rb") as vmlinuz, open(os.path.join(path, "initrd"), "rb") as initrd:
                digest = boot.boot_digest(vmlinuz.read(), initrd.read())
        except OSError:
            continue
        if digest == boot_digest:
            return entry[len(bootfiles.PREFIX):]
    return None


def _configured_entry(state, verity: str):
    entry = next((e for e in state.menu_order if e.verity == verity), None)
    if entry is None or entry.bls is None:
        raise DoubleError("no configured BLS entry boots %s" % verity)
    return entry


def _linux_prefix(entry) -> str:
    """``/boot`` (or ``/EFI/Linux``, or empty) from an entry's ``linux`` path ``<prefix>/bootc_composefs-<n>/vmlinuz``."""
    return entry.bls.linux.rsplit("/", 2)[0]


def _read_text(path: str) -> str:
    with open(path, encoding="utf-8") as handle:
        return handle.read()


def _remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.unlink(path)


def _exchange(new_dir: str, current_dir: str) -> None:
    """``new_dir`` takes the place of ``current_dir``, whose old content is deleted (bootc: renameat2 EXCHANGE)."""
    old = current_dir + ".double-old"
    _remove(old)
    os.rename(current_dir, old)
    os.rename(new_dir, current_dir)
    shutil.rmtree(old)


def stage(root: str, transport: str, image: str, upgrading: bool) -> str:
    """``bootc switch`` / ``bootc upgrade``: stage ``image``; returns the message bootc would print."""
    _paths, state = _host(root)
    layout = _layout(root, state)
    manifest_digest = resolve_manifest_digest(transport, image)
    with Repository.open(state.paths.composefs_repo, writable=True) as repo:
        if not repo.has_stream("oci-manifest-" + manifest_digest):
            raise DoubleError("bootc test double: %s (%s) is not in the repository; pull it first (composefs_pull)"
                              % (image, manifest_digest))
        tags.tag_image(repo, manifest_digest, tags.bootc_tag(manifest_digest))
        new = read_boot_image(repo, manifest_digest)
        existing = {d.verity: d.role for d in state.deployments}
        if new.verity in existing:
            if upgrading:
                return "No changes in: %s" % image
            raise DoubleError("Target image has the same fs-verity digest as the existing %s deployment %s"
                              % (existing[new.verity], new.verity))
        booted_entry = _configured_entry(state, state.booted_verity)
        # 1. boot binaries (shared when kernel and initrd are identical)
        artifact_name = _shared_kernel_dir(layout, new.boot_digest)
        if artifact_name is None:
            artifact_name = new.verity
            layout.write_type1_dir(new.verity, new.vmlinuz, new.initrd)
        # 2. the complete next entry set, staged
        _remove(layout.staged_entries_dir)
        os_id = bootfiles.os_id(new.os_release)
        version = bootfiles.os_version(new.os_release) or new.verity
        kernel_dir = "%s/%s%s" % (_linux_prefix(booted_entry), bootfiles.PREFIX, artifact_name)
        karg = bootfiles.composefs_karg(new.verity, state.missing_verity_allowed)
        options = COMPOSEFS_KARG.sub(karg, booted_entry.bls.options or "")
        if karg not in options:
            options = (options + " " + karg).strip()
        primary = bootfiles.render_bls_entry(bootfiles.pretty_name(new.os_release) or new.verity, version,
                                             linux=kernel_dir + "/vmlinuz", initrd=(kernel_dir + "/initrd",),
                                             options=options, sort_key_value=bootfiles.sort_key(os_id, 0))
        layout.write_entry(bootfiles.entry_file_name(os_id, version, True), primary, staged=True)
        secondary = bootfiles.set_sort_key(_read_text(booted_entry.path), bootfiles.sort_key(os_id, 1))
        layout.write_entry(bootfiles.entry_file_name(os_id, booted_entry.bls.version, False), secondary, staged=True)
        # 3. state dir and origin (a leftover of an interrupted run is replaced)
        _remove(layout.state_dir(new.verity))
        layout.write_state_dir(new.verity, repo, new, bootfiles.image_reference(transport, image), legacy=False)
    # 4. the staged marker: only now is the deployment staged
    layout.write_staged_marker(new.verity)
    return "Queued for next boot: %s\n  Digest: %s" % (image, manifest_digest)


def upgrade(root: str) -> str:
    """``bootc upgrade``: stage the image the host follows."""
    _paths, state = _host(root)
    followed = state.staged if state.staged is not None and state.staged.image is not None else state.booted
    if followed.image is None:
        raise DoubleError("the booted deployment has no image reference to upgrade from")
    return stage(root, followed.image.transport, followed.image.image, upgrading=True)


def rollback(root: str) -> str:
    """``bootc rollback`` on a Type1 host: swap the primary and secondary entries, drop a staged deployment."""
    _paths, state = _host(root)
    layout = _layout(root, state)
    configured = [e for e in state.entries if not e.staged and not e.foreign]
    if len(configured) != 2:
        raise DoubleError("bootc rollback handles exactly two boot entries, found %d" % len(configured))
    if state.rollback is None:
        raise DoubleError("No rollback available")
    # bootc sorts by sort key, descending: the entry that was secondary becomes primary.
    ordered = sorted(configured, key=lambda e: _BlsOrder(e.bls), reverse=True)
    _remove(layout.staged_entries_dir)
    if state.staged is not None:
        _remove(state.paths.staged_deployment_file)
    os.makedirs(layout.staged_entries_dir)
    for position, entry in enumerate(ordered):
        text = bootfiles.set_sort_key(_read_text(entry.path), bootfiles.sort_key(ROLLBACK_OS_ID, position))
        layout.write_entry(bootfiles.entry_file_name(ROLLBACK_OS_ID, entry.bls.version, position == 0), text, staged=True)
    for name in sorted(os.listdir(layout.entries_dir)):
        source = os.path.join(layout.entries_dir, name)
        if os.path.isfile(source) and not name.startswith("bootc_"):
            shutil.copy2(source, os.path.join(layout.staged_entries_dir, name))
    _exchange(layout.staged_entries_dir, layout.entries_dir)
    reverting = ordered[0].verity == state.booted_verity
    return "Next boot: current deployment" if reverting else "Next boot: rollback deployment"


class _BlsOrder:
    """Sort wrapper for BLS entries in bootc's order (sort key, machine id, version)."""

    def __init__(self, entry) -> None:
        self.entry = entry

    def __lt__(self, other) -> bool:
        return menuorder.compare_bls_entries(self.entry, other.entry) < 0


def boot_id_path(root: str) -> str:
    """``<root>/proc/sys/kernel/random/boot_id``."""
    return os.path.join(root, *BOOT_ID_PATH)


def write_boot_id(root: str) -> str:
    """A new random boot id; returns it."""
    value = str(uuid.uuid4())
    path = boot_id_path(root)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(value + "\n")
    return value


def read_boot_id(root: str) -> str:
    """The current boot id, created on first use."""
    path = boot_id_path(root)
    if not os.path.exists(path):
        return write_boot_id(root)
    return _read_text(path).strip()


def reboot(root: str) -> str:
    """TEST ONLY: what a reboot does to the on-disk state (finalize, GC of boot binaries, new boot)."""
    paths, state = _host(root)
    layout = _layout(root, state)
    finalized = None
    if state.staged is not None and os.path.isdir(layout.staged_entries_dir):
        _exchange(layout.staged_entries_dir, layout.entries_dir)
        finalized = state.staged.verity
        # bootc-finalize-staged then runs a GC of boot binaries only (spec §4.1)
        _paths, after = _host(root)
        for binary in bootbin.unreferenced_binaries(after.boot_binaries.binaries, after.artifact_names):
            if binary.name != after.booted_verity and binary.boot_type == bootbin.TYPE1:
                _remove(binary.path)
    _remove(os.path.join(paths.run_dir, "composefs"))
    _paths, after = _host(root)
    if not after.menu_order:
        raise DoubleError("no boot entry to boot")
    default = after.menu_order[0]
    layout.write_cmdline(layout.booted_cmdline(default.bls))
    if os.path.exists(layout.mountinfo_file):
        layout.write_mountinfo(default.verity)
    boot_id = write_boot_id(root)
    return "rebooted into %s%s (boot id %s)" % (default.verity, " (finalized)" if finalized == default.verity else "", boot_id)


def _entry_status(deployment: dict, bootloader_kind: str, missing_verity_allowed: bool, download_only: bool = False):
    if not deployment:
        return None
    image = deployment.get("image")
    return {
        "image": {
            "image": {"image": image["image"], "transport": image["transport"]} if image else None,
            "imageDigest": deployment.get("manifest_digest"),
            "version": deployment.get("version"),
            "timestamp": deployment.get("created"),
            "architecture": deployment.get("architecture"),
        } if image else None,
        "cachedUpdate": None,
        "incompatible": False,
        "pinned": False,
        "downloadOnly": download_only,
        "store": None,
        "ostree": None,
        "composefs": {"verity": deployment["verity"], "bootType": "Bls" if deployment.get("boot_type") == "bls" else "Uki",
                      "bootloader": bootloader_kind, "bootDigest": deployment.get("boot_digest"),
                      "missingVerityAllowed": missing_verity_allowed},
    }


def status_json(root: str) -> dict:
    """A minimal ``bootc status --json`` document, from the collection's status operation."""
    data = status_operation.read_status(status_operation.StatusRequest(root=root)).data
    host = data["host"]
    by_role = {}
    for deployment in data["deployments"]:
        by_role.setdefault(deployment["role"], deployment)
    args = (host["bootloader"], host["missing_verity_allowed"])
    spec_source = by_role.get("staged") or by_role.get("booted") or {}
    spec_image = spec_source.get("image")
    return {
        "apiVersion": "org.containers.bootc/v1",
        "kind": "BootcHost",
        "metadata": {"name": "host"},
        "spec": {"bootOrder": "rollback" if host["rollback_queued"] else "default",
                 "image": {"image": spec_image["image"], "transport": spec_image["transport"]} if spec_image else None},
        "status": {
            "booted": _entry_status(by_role.get("booted"), *args),
            "staged": _entry_status(by_role.get("staged"), *args, download_only=host["download_only"]),
            "rollback": _entry_status(by_role.get("rollback"), *args),
            "rollbackQueued": host["rollback_queued"],
            "type": None,
        },
    }


def build_parser() -> argparse.ArgumentParser:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(prog="bootc", description="TEST DOUBLE of bootc for simulated composefs hosts")
    parser.add_argument("--root", default=os.environ.get("BOOTC_DOUBLE_ROOT", "/"),
                        help="root of the simulated host (default: $BOOTC_DOUBLE_ROOT or /)")
    commands = parser.add_subparsers(dest="command", required=True)
    switch = commands.add_parser("switch", help="stage another image")
    switch.add_argument("--transport", default="registry", choices=sorted(TRANSPORT_PREFIXES))
    switch.add_argument("image")
    commands.add_parser("upgrade", help="stage the newest version of the image the host follows")
    commands.add_parser("rollback", help="make the rollback deployment the default")
    status = commands.add_parser("status", help="print the status")
    status.add_argument("--json", action="store_true", help="JSON output (the only format of the double)")
    status.add_argument("--format", choices=["json"], default="json")
    commands.add_parser("reboot", help="TEST ONLY: apply what a reboot does on disk")
    commands.add_parser("boot-id", help="TEST ONLY: print the boot id of the simulated host")
    return parser


def main(argv=None) -> int:
    """Run one command; bootc's exit codes (0 success, 1 failure with the message on stderr)."""
    args = build_parser().parse_args(argv)
    root = os.path.abspath(args.root)
    try:
        if args.command == "switch":
            message = stage(root, args.transport, args.image, upgrading=False)
        elif args.command == "upgrade":
            message = upgrade(root)
        elif args.command == "rollback":
            message = rollback(root)
        elif args.command == "status":
            message = json.dumps(status_json(root), sort_keys=True, separators=(",", ":"))
        elif args.command == "reboot":
            message = reboot(root)
        else:
            message = read_boot_id(root)
    except (DoubleError, ComposefsError, OSError) as err:
        sys.stderr.write("error: %s\n" % err)
        return 1
    sys.stdout.write(message + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
