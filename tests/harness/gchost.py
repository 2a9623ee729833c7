# -*- coding: utf-8 -*-
"""The host the GC harnesses collect, and what an oracle says a GC must do to it.

``build_gc_host(root, params)`` builds (with ``tests/tools/simhost``) a GRUB + BLS host with real
work for every GC phase:

======================== =========================================================================
phase                    work on the host
======================== =========================================================================
boot binaries            the kernel dir of deployment 2, whose entry was dropped (as a finalize does)
orphan state dirs        deployment 2's state dir, and simhost's ``orphan-state-dir`` damage
bootc tag create         the booted deployment's bootc tag is missing (``live-manifest-without-bootc-tag``)
bootc tag remove         deployment 2's tag, the damage image's tag, ``stale_bootc_tags`` and the
                         garbage images (all ``localhost/bootc-*``, used by no deployment)
repository GC            everything only those images keep: layers, configs, manifests, EROFS images;
                         ``garbage_images`` images of ``garbage_files`` distinct files each; the
                         first garbage image's layer stream object is gone (an interrupted
                         composefs-rs GC, spec 12.4), so its entry is pruned last
======================== =========================================================================

Live: the staged (4), booted (3) and rollback (1) deployments and the app image
``quay.io/example/app:1``.

``GcOracle`` (``expect_gc``) derives what an uninterrupted GC must leave, from the build result
and the oracles of ``oracle.py`` only: the closure of every live deployment (boot image via
``composefs-info objects``, tag chain via the independent splitstream reader) and of every
non-bootc tag; the paths a GC must remove (objects and entries outside that closure, stale bootc
tags, orphan state dirs, unreferenced kernel dirs) and the tags it must create.
"""

from __future__ import annotations

import os
import random
import sys

import oracle
import treesnap

HARNESS_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(os.path.dirname(HARNESS_DIR))
TOOLS_DIR = os.path.join(REPO_ROOT, "tests", "tools")
if TOOLS_DIR not in sys.path:
    sys.path.insert(0, TOOLS_DIR)

import simhost  # noqa: E402  pylint: disable=wrong-import-position
import ocigen  # noqa: E402  pylint: disable=wrong-import-position
from ansible_collections.bootc.composefs.plugins.module_utils.oci import importer, tags  # noqa: E402  pylint: disable=wrong-import-position
from ansible_collections.bootc.composefs.plugins.module_utils.repository.repo import Repository  # noqa: E402  pylint: disable=wrong-import-position

BOOTC_TAG_PREFIX = "localhost/bootc-"
REPO_REL = "sysroot/composefs"
DROPPED_VERSION = "2"


class HostParams:
    """Size of the GC host: extra garbage images and their files, payload bytes per deployment image."""

    def __init__(self, garbage_images: int = 2, garbage_files: int = 150, payload_bytes: int = 64 * 1024, seed: int = 1):
        self.garbage_images = garbage_images
        self.garbage_files = garbage_files
        self.payload_bytes = payload_bytes
        self.seed = seed

    def as_dict(self) -> dict:
        """The parameters as plain data."""
        return {"garbage_images": self.garbage_images, "garbage_files": self.garbage_files,
                "payload_bytes": self.payload_bytes, "seed": self.seed}


def host_spec(params: HostParams):
    """The simhost spec: four deployments (one to be dropped), an app image, stale tags and two damages."""
    payload = params.payload_bytes
    return simhost.load_spec({
        "variant": "bls-grub",
        "deployments": [
            {"role": "staged", "version": "4", "kernel_version": "6.12.4-sim", "payload_bytes": payload},
            {"role": "booted", "version": "3", "kernel_version": "6.12.3-sim", "payload_bytes": payload},
            {"role": "other", "version": DROPPED_VERSION, "kernel_version": "6.12.2-sim", "payload_bytes": payload},
            {"role": "rollback", "version": "1", "kernel_version": "6.12.1-sim", "payload_bytes": payload},
        ],
        "app_images": [{"tag": "quay.io/example/app:1", "payload_bytes": 16 * 1024}],
        "stale_bootc_tags": 2,
        "damages": [{"kind": "orphan-state-dir"}, {"kind": "live-manifest-without-bootc-tag", "target": "booted"}],
    })


def garbage_layers(name: str, count: int, rng: random.Random) -> list:
    """One layer of ``count`` distinct files (65 bytes to 12 KiB: each an external object)."""
    entries = [("dir", "usr"), ("dir", "usr/share"), ("dir", "usr/share/" + name)]
    for number in range(count):
        size = rng.randint(65, 12 * 1024)
        entries.append(("file", "usr/share/%s/f%05d" % (name, number), rng.randbytes(size)))
    return [entries]


def add_garbage_images(repo_path: str, scratch: str, params: HostParams) -> list:
    """Import ``params.garbage_images`` images, each tagged ``localhost/bootc-<digest>``; return their manifest digests."""
    rng = random.Random(params.seed)
    layout = os.path.join(scratch, "garbage-oci")
    digests = []
    with Repository.open(repo_path, writable=True) as repo:
        for number in range(params.garbage_images):
            name = "garbage-%d" % number
            written = ocigen.write_image(layout, garbage_layers(name, params.garbage_files, rng), tag=name)
            digest = written["manifest_digest"]
            importer.import_oci_layout(repo, layout, ref=name, tag=tags.bootc_tag(digest))
            digests.append(digest)
    return digests


def build_gc_host(root: str, params: HostParams, scratch: str) -> dict:
    """Build the host below ``root`` (new); return simhost's result plus ``dropped`` and ``garbage_manifests``."""
    result = simhost.build_host(root, host_spec(params))
    dropped = [d for d in result["deployments"] if d["version"] == DROPPED_VERSION][0]
    os.unlink(dropped["entry_path"])
    result["dropped"] = dropped
    repo_path = os.path.join(root, REPO_REL)
    result["garbage_manifests"] = add_garbage_images(repo_path, scratch, params)
    if result["garbage_manifests"]:
        result["dangling_entry"] = _drop_layer_object(repo_path, result["garbage_manifests"][0])
    return result


def _drop_layer_object(repo_path: str, manifest_digest: str) -> str:
    """Unlink the object of the first layer stream of ``manifest_digest`` (found with the oracle reader); return its entry."""
    repo = oracle.RepoOracle(repo_path)
    streams = repo.entries("streams")
    manifest = repo.splitstream(streams["oci-manifest-" + manifest_digest])
    layer = sorted(name for name in manifest["named_refs"] if not name.startswith("config:"))[0]
    entry = "oci-layer-" + layer
    os.unlink(oracle.object_path(repo_path, streams[entry]))
    return "streams/" + entry


def _rel(root: str, path: str) -> str:
    return os.path.relpath(path, root)


class GcOracle:
    """What an uninterrupted GC of the built host must do (see the module docstring)."""

    def __init__(self, root: str, build: dict) -> None:
        self.root = root
        self.build = build
        repo_path = os.path.join(root, REPO_REL)
        self.repo = oracle.RepoOracle(repo_path)
        live = [d for d in build["deployments"] if d["version"] != DROPPED_VERSION]
        self.live_verities = sorted(d["verity"] for d in live)
        self.live_manifests = sorted({d["manifest_digest"] for d in live})
        self.live_artifacts = sorted({d["boot_artifact_name"] for d in live})
        tag_links = self._tag_links()
        self.kept_tags = sorted(t for t, digest in tag_links.items()
                                if not t.startswith(BOOTC_TAG_PREFIX) or digest in self.live_manifests)
        self.app_manifests = sorted({digest for t, digest in tag_links.items() if not t.startswith(BOOTC_TAG_PREFIX)})
        self.created_tags = sorted(BOOTC_TAG_PREFIX + m for m in self.live_manifests if BOOTC_TAG_PREFIX + m not in tag_links)
        self.deployment_closures = {v: oracle.merge_closures([self.repo.image_closure(v), self.repo.tag_closure(d["manifest_digest"])])
                                    for v, d in ((d["verity"], d) for d in live)}
        self.app_closures = {m: self.repo.tag_closure(m) for m in self.app_manifests}
        self.live = oracle.merge_closures(list(self.deployment_closures.values()) + list(self.app_closures.values()))

    def _tag_links(self) -> dict:
        """``{tag: manifest digest}`` read from ``streams/refs/oci`` (decoding per spec section 10.4)."""
        found = {}
        directory = os.path.join(self.repo.path, "streams", "refs", "oci")
        for name in os.listdir(directory):
            text = os.readlink(os.path.join(directory, name))
            tag = name.replace("%2F", "/").replace("%25", "%")
            found[tag] = os.path.basename(text)[len("oci-manifest-"):]
        return found

    @staticmethod
    def tag_file(tag: str) -> str:
        """Path of a tag's ref below the repository."""
        return "streams/refs/oci/" + tag.replace("%", "%25").replace("/", "%2F")

    def removals(self, before: dict) -> set:
        """Relative paths (of snapshot ``before`` of the untouched host) that a GC must remove."""
        repo = REPO_REL + "/"
        live_objects = self.live["objects"]
        state = _rel(self.root, self.build["paths"]["state_deploy"]) + "/"
        type1 = _rel(self.root, self.build["paths"]["type1_dir"]) + "/"
        live_tag_files = {repo + self.tag_file(t) for t in self.kept_tags}
        removed = set()
        for path, record in before.items():
            if path.startswith(repo + "objects/"):
                parts = path[len(repo):].split("/")
                if len(parts) == 3 and parts[1] + parts[2] not in live_objects:
                    removed.add(path)
            elif path.startswith(repo + "streams/refs/oci/") and record[0] == "symlink":
                if path not in live_tag_files:
                    removed.add(path)
            elif (path.startswith(repo + "streams/") or path.startswith(repo + "images/")) and path.count("/") == 3:
                if record[0] == "symlink" and record[2].startswith("../objects/"):
                    if record[2][len("../objects/"):].replace("/", "") not in live_objects:
                        removed.add(path)
            elif path.startswith(state):
                if path[len(state):].split("/")[0] not in self.live_verities:
                    removed.add(path)
            elif path.startswith(type1 + "bootc_composefs-"):
                if path[len(type1 + "bootc_composefs-"):].split("/")[0] not in self.live_artifacts:
                    removed.add(path)
        return removed

    def additions(self) -> dict:
        """``{relative path: symlink text}`` a GC must create (the missing bootc tags)."""
        return {REPO_REL + "/" + self.tag_file(tag): "../../oci-manifest-" + tag[len(BOOTC_TAG_PREFIX):]
                for tag in self.created_tags}

    def expected_after(self, before: dict) -> dict:
        """The snapshot (``before``'s mode) an uninterrupted GC must leave."""
        removed = self.removals(before)
        after = {p: r for p, r in before.items() if p not in removed}
        for path, text in self.additions().items():
            after[path] = ("symlink", 0, text, None)
        return after

    def summary(self) -> dict:
        """Counts for reports."""
        return {"live_deployments": len(self.live_verities), "live_manifests": len(self.live_manifests),
                "app_images": len(self.app_manifests), "live_objects": len(self.live["objects"]),
                "live_entries": len(self.live["entries"]), "tags_to_create": len(self.created_tags),
                "tags_kept": len(self.kept_tags)}


def live_problems(root: str, gc_oracle: GcOracle) -> list:
    """Existence problems of every live deployment's and app image's closure in the tree at ``root``."""
    repo_path = os.path.join(root, REPO_REL)
    problems = []
    for verity, closure in sorted(gc_oracle.deployment_closures.items()):
        problems.extend("deployment %s…: %s" % (verity[:12], p) for p in oracle.missing_from(repo_path, closure))
    for manifest, closure in sorted(gc_oracle.app_closures.items()):
        problems.extend("app image %s: %s" % (manifest[:19], p) for p in oracle.missing_from(repo_path, closure))
    return problems


def phase_work(before: dict, expected: dict, root_rel_paths: dict) -> dict:
    """How many paths each phase must remove or add (to show every phase has work)."""
    removed = set(before) - set(expected)
    added = set(expected) - set(before)
    counts = {"boot-binaries": 0, "state-dirs": 0, "tags-remove": 0, "repo-objects": 0, "repo-entries": 0,
              "tags-create": len(added)}
    for path in removed:
        if path.startswith(root_rel_paths["type1"]):
            counts["boot-binaries"] += 1
        elif path.startswith(root_rel_paths["state"]):
            counts["state-dirs"] += 1
        elif "/streams/refs/" in path:
            counts["tags-remove"] += 1
        elif "/objects/" in path:
            counts["repo-objects"] += 1
        else:
            counts["repo-entries"] += 1
    return counts


def copy_host(source: str, destination: str) -> None:
    """A working copy of a built host (hard links: the GC never writes a file in place)."""
    treesnap.hardlink_copy(source, destination)
