# -*- coding: utf-8 -*-
# Copyright: (c) 2026, bootc.composefs maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Status of a bootc composefs host: deployments, repository, tags and findings (layer: operations).

Spec: bootc-composefs-host.md §2 (deployments and roles), §3 (image metadata), §4.2 steps 8-14
(what a GC would judge: orphans, live manifests, bootc tags), Open questions 2, 4, 7, 13;
composefs-repo.md §2-5 (layout, meta.json, objects, refs), §10.4 (tags), §12.4 and §13 (what
breaks a GC or an fsck). Upstream counterpart: bootc ``bootc_composefs/status.rs``, which is not
read-only (it renames legacy boot artifacts and writes UKI digests into origins) and aborts on
many real layouts. ``read_status`` never writes: it opens files read-only and takes only the
repository's shared ``flock`` (a GC in progress makes it wait up to ``LOCK_TIMEOUT_SECONDS``).

There is no plan: status is a read operation. ``read_status(request)`` returns a ``StatusResult``
whose ``data`` is the JSON-ready dict the module returns (and puts under ``ansible_facts.composefs``):

| key | content |
|---|---|
| ``host`` | paths used, bootloader, booted / staged / rollback verities, rollback queued, boot binaries |
| ``deployments`` | one dict per deployment (``deployment_dict``), booted first, then staged, rollback, others, unlisted |
| ``repository`` | path, algorithm, format version, EROFS formats, secure; ``usage`` counts and bytes on request |
| ``tags`` | every OCI tag: name, manifest digest, ``owner`` ``bootc`` or ``foreign``, ``live`` |
| ``findings`` | ``{code, path, message}``: the host layer's (``host.findings``), image resolution's (``host.images``), and these |

Findings raised here, about the repository (never fatal):

| code | meaning |
|---|---|
| ``missing-repository`` | ``<sysroot>/composefs`` does not exist |
| ``repository-locked`` | the shared lock was not granted in time (a GC holds it); repository facts are missing |
| ``unreadable-file`` | meta.json, a splitstream or a JSON object that cannot be read or parsed |
| ``dangling-ref`` | a ref (tag) whose stream or image entry is missing, or an entry whose object is missing |
| ``malformed-ref`` | a ref or entry that is not a symlink of the exact form composefs writes (a GC would abort) |
| ``missing-image`` | a live deployment's boot EROFS ``images/<verity>`` entry is missing: it cannot be mounted |
| ``missing-stream`` | a stream a live deployment's image needs (manifest, config, layer) has no ``streams/`` entry |
| ``missing-object`` | an object a live deployment's image needs (JSON, splitstream, EROFS, file content) is gone |
| ``untagged-live-manifest`` | a deployment's manifest has no ``localhost/bootc-<digest>`` tag (a GC would create it) |
| ``unreferenced-bootc-tag`` | a ``localhost/bootc-*`` tag no deployment uses (a GC would remove it) |
| ``invalid-object`` | a name under ``objects/<xx>/`` that is no object (only looked at with ``usage``) |

Cost: without ``usage`` the repository is read only where a deployment points (its manifest,
config and layer splitstreams; the objects they name are checked for existence, not read) plus
one ``readlink`` per ref and entry. Existence checks are single lookups while few, else one
listing of ``objects/``. With ``usage`` every ``objects/<xx>/`` directory is listed once with
``os.scandir`` (counts, sizes) and the live deployments' EROFS images are parsed too
(``oci.closure.image_object_closure``), to check every object they name.
"""

from __future__ import annotations

import os
import stat
from typing import NamedTuple

from ansible_collections.bootc.composefs.plugins.module_utils.errors import (
    ComposefsError,
    DanglingRefError,
    RepositoryLockedError,
)
from ansible_collections.bootc.composefs.plugins.module_utils.host import deployments as host_deployments
from ansible_collections.bootc.composefs.plugins.module_utils.host import findings, images
from ansible_collections.bootc.composefs.plugins.module_utils.host.paths import load_request_paths
from ansible_collections.bootc.composefs.plugins.module_utils.oci import closure as oci_closure
from ansible_collections.bootc.composefs.plugins.module_utils.oci import digest as oci_digest
from ansible_collections.bootc.composefs.plugins.module_utils.oci import image as oci_image
from ansible_collections.bootc.composefs.plugins.module_utils.oci import tags as oci_tags
from ansible_collections.bootc.composefs.plugins.module_utils.repository import meta as repo_meta
from ansible_collections.bootc.composefs.plugins.module_utils.repository import paths as repo_paths
from ansible_collections.bootc.composefs.plugins.module_utils.repository.repo import Repository

__all__ = [
    "StatusRequest",
    "StatusResult",
    "read_status",
    "deployment_dict",
    "CODES",
    "LOCK_TIMEOUT_SECONDS",
]

MISSING_REPOSITORY = "missing-repository"
REPOSITORY_LOCKED = "repository-locked"
DANGLING_REF = "dangling-ref"
MALFORMED_REF = "malformed-ref"
MISSING_IMAGE = "missing-image"
MISSING_STREAM = "missing-stream"
MISSING_OBJECT = "missing-object"
UNTAGGED_LIVE_MANIFEST = "untagged-live-manifest"
UNREFERENCED_BOOTC_TAG = "unreferenced-bootc-tag"
INVALID_OBJECT = "invalid-object"

CODES = (MISSING_REPOSITORY, REPOSITORY_LOCKED, findings.UNREADABLE_FILE, DANGLING_REF, MALFORMED_REF, MISSING_IMAGE,
         MISSING_STREAM, MISSING_OBJECT, UNTAGGED_LIVE_MANIFEST, UNREFERENCED_BOOTC_TAG, INVALID_OBJECT)

# A GC holds the exclusive lock for seconds on a busy host; status waits that long, then reports.
LOCK_TIMEOUT_SECONDS = 30.0
TAG_OWNER_BOOTC = "bootc"
TAG_OWNER_FOREIGN = "foreign"


class StatusRequest(NamedTuple):
    """What to inspect: the host path options of ``load_host_paths``, the bootloader, and ``usage``."""

    root: str = "/"
    sysroot: str | None = None
    boot_dir: str | None = None
    esp: str | None = None
    run_dir: str | None = None
    cmdline_file: str | None = None
    bootloader: str | None = None
    usage: bool = False


class StatusResult(NamedTuple):
    """``data``: the result dict (see the module docstring); ``warnings``: sentences for a human."""

    data: dict
    warnings: tuple


def _reason(err) -> str:
    return err.message if isinstance(err, ComposefsError) else (err.strerror or str(err))


def _finding(code: str, path, message: str) -> dict:
    return findings.Finding(code, path, message).as_dict()


# -- host and deployments ----------------------------------------------------------------------


def _host_dict(state) -> dict:
    paths = state.paths
    staged = state.staged
    rollback = state.rollback
    in_use = state.artifact_names
    return {
        "root": paths.root,
        "sysroot": paths.sysroot,
        "boot_dir": paths.boot_dir,
        "boot_dir_rule": paths.boot_dir_rule,
        "esp": paths.esp,
        "esp_rule": paths.esp_rule,
        "esp_found": paths.esp_found,
        "run_dir": paths.run_dir,
        "bootloader": state.bootloader.kind,
        "bootloader_source": state.bootloader.source,
        "loader_info": state.bootloader.loader_info,
        "entry_source": state.entry_source,
        "boot_type": state.boot_type,
        "booted": state.booted_verity,
        "staged": staged.verity if staged is not None else None,
        "rollback": rollback.verity if rollback is not None else None,
        "download_only": bool(staged is not None and staged.download_only),
        "missing_verity_allowed": state.missing_verity_allowed,
        "soft_rebooted": state.soft_rebooted,
        "rollback_queued": state.rollback_queued,
        "rollback_queued_bootc": state.rollback_queued_bootc,
        "boot_binaries": [{"name": b.name, "boot_type": b.boot_type, "path": b.path, "prefixed": b.prefixed,
                           "in_use": b.name in in_use, "bytes": b.apparent_bytes}
                          for b in state.boot_binaries.binaries],
    }


def deployment_dict(deployment, metadata) -> dict:
    """The result dict of one deployment (``host.deployments.Deployment`` + ``host.images.ImageMetadata``)."""
    reference = deployment.image
    return {
        "verity": deployment.verity,
        "role": deployment.role,
        "unlisted_reason": deployment.unlisted_reason,
        "image": None if reference is None else {
            "image": reference.image,
            "transport": reference.transport,
            "signature": reference.signature,
            "reference": reference.raw,
        },
        "manifest_digest": metadata.manifest_digest,
        "config_digest": metadata.config_digest,
        "version": metadata.version,
        "created": metadata.created,
        "architecture": metadata.architecture,
        "metadata_source": metadata.source,
        "metadata_tag": metadata.matched_tag,
        "boot_type": deployment.boot_type,
        "boot_digest": deployment.boot_digest,
        "boot_artifacts": list(deployment.boot_artifact_names),
        "boot_entries": [{"path": e.path, "staged": e.staged} for e in deployment.entries],
        "state_dir": deployment.state_dir,
        "download_only": deployment.download_only,
        "warnings": list(metadata.warnings),
    }


# -- repository --------------------------------------------------------------------------------


def _open_repository(paths, found: list):
    """``(repo or None, info dict)``; failures become findings, never exceptions."""
    path = paths.composefs_repo
    info = {"path": path, "exists": False, "algorithm": None, "format_version": None, "erofs_formats": [],
            "secure": None, "meta_json": None, "read_only_reason": None, "error": None, "usage": None}
    try:
        real = paths.resolve(path)
        kind = paths.kind(path)
    except (OSError, ComposefsError) as err:
        info["error"] = _reason(err)
        found.append(_finding(findings.UNREADABLE_FILE, path, "cannot look up the composefs repository: %s" % info["error"]))
        return None, info
    if kind is None:
        found.append(_finding(MISSING_REPOSITORY, path, "the composefs repository does not exist: image metadata comes only "
                                                        "from .imginfo files and nothing in the repository can be checked"))
        return None, info
    info["exists"] = True
    try:
        repo = Repository.open(real, writable=False, timeout=LOCK_TIMEOUT_SECONDS)
    except RepositoryLockedError as err:
        info["error"] = err.message
        found.append(_finding(REPOSITORY_LOCKED, path, "the repository stayed locked for %d seconds (a garbage collection "
                                                       "is running?); run status again" % LOCK_TIMEOUT_SECONDS))
        return None, info
    except (OSError, ComposefsError) as err:
        info["error"] = _reason(err)
        where = getattr(err, "path", None) or path
        found.append(_finding(findings.UNREADABLE_FILE, where, "cannot open the composefs repository: %s" % info["error"]))
        return None, info
    meta = repo.meta
    info.update({
        "algorithm": repo.algorithm.name,
        "format_version": meta.version,
        "erofs_formats": list(meta.erofs_generation_order()),
        "secure": repo.secure,
        "meta_json": not repo.legacy,
        "read_only_reason": repo.read_only_reason if repo.legacy or meta.unknown_read_only_features() else None,
        "features": {"compatible": list(meta.compatible), "read_only_compatible": list(meta.read_only_compatible),
                     "incompatible": list(meta.incompatible)},
        "meta_algorithm": repo_meta.algorithm_text(repo.algorithm),
    })
    return repo, info


class _ObjectIndex:
    """Answers "does object X exist?" cheaply, from a listing of ``objects/`` or one lookup per object.

    With ``usage`` the listing exists anyway. Otherwise single lookups (cached) serve small
    questions, and the first question about more than ``BULK_LOOKUPS`` objects lists the names
    under ``objects/<xx>/`` once (one ``scandir`` per directory, no ``stat``), which is cheaper
    than that many lookups.
    """

    # One lookup opens two directories and stats a file; listing all 256 directories costs about
    # as much as this many lookups on a small repository, and far less on a big one.
    BULK_LOOKUPS = 256

    def __init__(self, repo, listed: set | None = None) -> None:
        self.repo = repo
        self.listed = listed
        self.cache = {}

    def exists(self, object_id: str) -> bool:
        """Whether ``objects/<xx>/<rest>`` of ``object_id`` exists."""
        if self.listed is not None:
            return object_id in self.listed
        known = self.cache.get(object_id)
        if known is None:
            try:
                known = self.repo.has_object(object_id)
            except (OSError, ComposefsError):
                known = False
            self.cache[object_id] = known
        return known

    def missing(self, object_ids) -> list:
        """The ids among ``object_ids`` whose object does not exist, sorted."""
        wanted = set(object_ids)
        if self.listed is None and len(wanted) > self.BULK_LOOKUPS:
            self.listed = _object_names(self.repo)
        return sorted(object_id for object_id in wanted if not self.exists(object_id))

    def path(self, object_id: str) -> str:
        """The path of the object (for findings)."""
        return os.path.join(self.repo.path, repo_paths.object_repo_path(object_id))


def _object_names(repo) -> set:
    """Every ``<xx><rest>`` name under ``objects/``, without looking at the files (existence only)."""
    objects_dir = os.path.join(repo.path, repo_paths.OBJECTS)
    names = set()
    try:
        subdirs = [e.name for e in os.scandir(objects_dir) if repo_paths.is_object_subdir(e.name)]
    except FileNotFoundError:
        return names
    for subdir in subdirs:
        try:
            names.update(subdir + name for name in os.listdir(os.path.join(objects_dir, subdir)))
        except OSError:
            continue
    return names


def _scan_objects(repo, found: list) -> tuple:
    """``(object ids, usage dict)`` from one ``os.scandir`` pass over ``objects/<xx>/``."""
    objects_dir = os.path.join(repo.path, repo_paths.OBJECTS)
    digest_chars = 2 * repo.algorithm.digest_size - 2
    names = set()
    count = apparent = disk = invalid = 0
    try:
        subdirs = sorted(e.name for e in os.scandir(objects_dir) if e.is_dir(follow_symlinks=False)
                         and repo_paths.is_object_subdir(e.name))
    except FileNotFoundError:
        subdirs = []
    except OSError as err:
        found.append(_finding(findings.UNREADABLE_FILE, objects_dir, "cannot list objects: %s" % _reason(err)))
        subdirs = []
    for subdir in subdirs:
        directory = os.path.join(objects_dir, subdir)
        try:
            entries = list(os.scandir(directory))
        except OSError as err:
            found.append(_finding(findings.UNREADABLE_FILE, directory, "cannot list objects: %s" % _reason(err)))
            continue
        for entry in entries:
            try:
                info = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if not stat.S_ISREG(info.st_mode) or len(entry.name) != digest_chars or \
                    repo_paths.parse_object_name(subdir, entry.name, repo.algorithm) is None:
                invalid += 1
                found.append(_finding(INVALID_OBJECT, entry.path, "not an object: expected a regular file named by %d "
                                                                  "lowercase hex digits (a GC would abort on it)" % digest_chars))
                continue
            names.add(subdir + entry.name)
            count += 1
            apparent += info.st_size
            disk += info.st_blocks * 512
    return names, {"objects": count, "object_bytes": apparent, "object_disk_bytes": disk, "invalid_objects": invalid}


def _check_entries(repo, category: str, listing, index: _ObjectIndex, found: list) -> set:
    """Names of the usable first-level entries of ``category``; findings for malformed or dangling ones."""
    usable = set()
    missing = set(index.missing(entry.object_id for entry in listing if entry.object_id is not None))
    for entry in listing:
        where = os.path.join(repo.path, category, entry.name)
        if entry.object_id is None:
            found.append(_finding(MALFORMED_REF, where, "entry is not a symlink to ../objects/<xx>/<rest>: %s" % entry.problem))
            continue
        if entry.object_id in missing:
            found.append(_finding(DANGLING_REF, where, "entry names object %s, which does not exist"
                                  % repo_paths.object_repo_path(entry.object_id)))
            continue
        usable.add(entry.name)
    return usable


def _check_refs(repo, category: str, refs, entries: set, found: list) -> None:
    """Findings for refs below ``<category>/refs/`` that are malformed or name a missing or dangling entry."""
    for relpath, text in refs:
        where = os.path.join(repo.path, category, repo_paths.REFS, relpath)
        try:
            name = repo_paths.parse_ref_link(text, len(relpath.split("/")))
        except ComposefsError as err:
            found.append(_finding(MALFORMED_REF, where, "ref link %r is not of the form composefs writes: %s" % (text, err.message)))
            continue
        if name not in entries:
            found.append(_finding(DANGLING_REF, where, "ref names %s/%s, which is missing or names a missing object"
                                  % (category, name)))


def _repository_checks(repo, info: dict, usage: bool, found: list) -> _ObjectIndex:
    listed = None
    if usage:
        listed, counts = _scan_objects(repo, found)
        info["usage"] = counts
    index = _ObjectIndex(repo, listed)
    try:
        stream_entries = repo.list_stream_entries()
        image_entries = repo.list_image_entries()
        streams = _check_entries(repo, repo_paths.STREAMS, stream_entries, index, found)
        image_names = _check_entries(repo, repo_paths.IMAGES, image_entries, index, found)
        _check_refs(repo, repo_paths.STREAMS, repo.list_stream_refs(), streams, found)
        _check_refs(repo, repo_paths.IMAGES, repo.list_image_refs(), image_names, found)
    except (OSError, ComposefsError) as err:
        found.append(_finding(findings.UNREADABLE_FILE, repo.path, "cannot list the repository's entries: %s" % _reason(err)))
        stream_entries = image_entries = []
    if info["usage"] is not None:
        info["usage"].update({"streams": len(stream_entries), "images": len(image_entries)})
    return index


# -- tags and live data ------------------------------------------------------------------------


def _tags(repo, found: list) -> list:
    try:
        listed = oci_tags.list_tags(repo)
    except (OSError, ComposefsError) as err:
        found.append(_finding(findings.UNREADABLE_FILE, os.path.join(repo.path, "streams", "refs", "oci"),
                              "cannot list the OCI tags: %s" % _reason(err)))
        return []
    return [{"name": name, "manifest_digest": digest,
             "owner": TAG_OWNER_BOOTC if oci_tags.is_bootc_tag(name) else TAG_OWNER_FOREIGN} for name, digest in listed]


def _users(verities) -> str:
    return ", ".join(verities)


def _report_open_failure(repo, manifest_digest: str, err, users: str, found: list) -> None:
    stream_name = oci_digest.manifest_stream_name(manifest_digest)
    try:
        present = repo.has_stream(stream_name)
    except (OSError, ComposefsError):
        present = True  # a malformed entry: reported by the entry check, and below as unreadable
    if not present:
        found.append(_finding(MISSING_STREAM, os.path.join(repo.path, repo_paths.STREAMS, stream_name),
                              "the manifest stream of deployment(s) %s does not exist" % users))
    elif isinstance(err, DanglingRefError):
        found.append(_finding(MISSING_OBJECT, err.path or repo.path, "image %s of deployment(s) %s is incomplete: %s"
                              % (manifest_digest, users, err.message)))
    else:
        found.append(_finding(findings.UNREADABLE_FILE, getattr(err, "path", None) or repo.path,
                              "cannot read image %s of deployment(s) %s: %s" % (manifest_digest, users, _reason(err))))


def _check_streams(repo, index: _ObjectIndex, image, users: str, found: list) -> bool:
    """Findings for the streams and EROFS images ``image`` names; True when all of them are there."""
    before = len(found)
    streams_dir = os.path.join(repo.path, repo_paths.STREAMS)
    if image.is_container_image:
        config_stream = oci_digest.config_stream_name(image.config_digest)
        if not repo.has_stream(config_stream):
            found.append(_finding(MISSING_STREAM, os.path.join(streams_dir, config_stream),
                                  "the config stream of deployment(s) %s does not exist" % users))
    for layer in image.layers:
        layer_stream = oci_digest.layer_stream_name(layer.diff_id)
        if layer.object_id is None:
            found.append(_finding(MISSING_STREAM, os.path.join(streams_dir, layer_stream),
                                  "image %s of deployment(s) %s names no stream for layer %s"
                                  % (image.manifest_digest, users, layer.diff_id)))
            continue
        if not layer.entry_present:
            found.append(_finding(MISSING_STREAM, os.path.join(streams_dir, layer_stream),
                                  "layer stream of deployment(s) %s does not exist (a garbage collection would not keep "
                                  "the layer's files)" % users))
        if not layer.object_present:
            found.append(_finding(MISSING_OBJECT, index.path(layer.object_id),
                                  "the splitstream of layer %s of deployment(s) %s does not exist" % (layer.diff_id, users)))
    for key, object_id in sorted(image.erofs_refs.items()):
        if not index.exists(object_id):
            found.append(_finding(MISSING_OBJECT, index.path(object_id),
                                  "EROFS image %s of deployment(s) %s does not exist" % (key, users)))
    return len(found) == before


def _check_live_data(repo, index: _ObjectIndex, live: dict, opened: dict, deep: bool, found: list) -> None:
    """Findings for whatever the live deployments' images need and the repository lacks.

    ``live`` maps manifest digest -> verities using it; ``opened`` manifest digest -> the
    ``OciImage`` image resolution already opened (others are opened here). The objects an image
    needs come from ``oci.closure.image_object_closure``: without ``deep`` through every named
    ref, without reading the EROFS images (they name the layers' file objects, reached anyway);
    with ``deep`` as a garbage collection walks it, reading the EROFS images too.
    """
    needed = {}
    for manifest_digest, verities in sorted(live.items()):
        users = _users(verities)
        image = opened.get(manifest_digest)
        if image is None:
            try:
                image = oci_image.open_image(repo, manifest_digest)
            except (OSError, ComposefsError) as err:
                _report_open_failure(repo, manifest_digest, err, users, found)
                continue
        try:
            complete = _check_streams(repo, index, image, users, found)
        except (OSError, ComposefsError) as err:
            found.append(_finding(findings.UNREADABLE_FILE, getattr(err, "path", None) or repo.path,
                                  "cannot check the streams of image %s of deployment(s) %s: %s"
                                  % (manifest_digest, users, _reason(err))))
            continue
        if not complete:
            continue
        lost = []
        failure = None
        try:
            closure = oci_closure.image_object_closure(repo, manifest_digest, erofs=deep, all_refs=not deep, missing=lost)
        except (OSError, ComposefsError) as err:
            failure = err
        for err in lost:
            found.append(_finding(MISSING_OBJECT, err.path or repo.path, "image %s of deployment(s) %s is incomplete: %s"
                                  % (manifest_digest, users, err.message)))
        if failure is not None:
            found.append(_finding(findings.UNREADABLE_FILE, getattr(failure, "path", None) or repo.path,
                                  "cannot walk image %s of deployment(s) %s: %s" % (manifest_digest, users, _reason(failure))))
        elif not lost:
            needed[manifest_digest] = (users, closure)
    missing = set(index.missing(set().union(*(closure for _users_, closure in needed.values()))))
    for manifest_digest, (users, closure) in sorted(needed.items()):
        for object_id in sorted(closure & missing):
            found.append(_finding(MISSING_OBJECT, index.path(object_id),
                                  "object needed by image %s of deployment(s) %s does not exist" % (manifest_digest, users)))


def _check_boot_images(repo, index: _ObjectIndex, state, found: list) -> None:
    for deployment in state.deployments:
        where = os.path.join(repo.path, repo_paths.IMAGES, deployment.verity)
        try:
            repo_paths.validate_object_id(deployment.verity, repo.algorithm)
        except ComposefsError:
            found.append(_finding(MISSING_IMAGE, where, "%s deployment %s cannot have a boot image in this repository: its "
                                                        "name is not a %s digest (%d hex digits)"
                                  % (deployment.role, deployment.verity, repo.algorithm.name, 2 * repo.algorithm.digest_size)))
            continue
        try:
            object_id = repo.image_object_id(deployment.verity)
        except (OSError, ComposefsError) as err:
            found.append(_finding(MALFORMED_REF, where, "cannot read the boot image entry of deployment %s: %s"
                                  % (deployment.verity, _reason(err))))
            continue
        if object_id is None:
            found.append(_finding(MISSING_IMAGE, where, "%s deployment %s has no boot image entry in the repository: it "
                                                        "cannot be mounted" % (deployment.role, deployment.verity)))
        elif not index.exists(object_id):
            found.append(_finding(MISSING_OBJECT, index.path(object_id), "the boot image of %s deployment %s is gone: it "
                                                                         "cannot be mounted" % (deployment.role, deployment.verity)))


def _check_tags(tags: list, live: dict, unresolved: list, found: list, where: str) -> None:
    names = {tag["name"] for tag in tags}
    for tag in tags:
        tag["live"] = tag["manifest_digest"] in live
        if tag["owner"] == TAG_OWNER_BOOTC and not tag["live"]:
            caveat = (" (or by deployment(s) %s, whose image could not be resolved)" % ", ".join(unresolved)) if unresolved else ""
            found.append(_finding(UNREFERENCED_BOOTC_TAG, os.path.join(where, oci_tags.encode_tag(tag["name"])),
                                  "bootc tag %s is used by no deployment%s; a garbage collection would remove it"
                                  % (tag["name"], caveat)))
    for manifest_digest, verities in sorted(live.items()):
        if oci_tags.bootc_tag(manifest_digest) in names:
            continue
        others = sorted(t["name"] for t in tags if t["manifest_digest"] == manifest_digest)
        protected = ("only tag(s) %s keep it" % ", ".join(others)) if others else "no tag keeps it alive"
        found.append(_finding(UNTAGGED_LIVE_MANIFEST, os.path.join(where, oci_tags.encode_tag(oci_tags.bootc_tag(manifest_digest))),
                              "manifest %s of deployment(s) %s has no bootc tag; %s (a garbage collection would tag it)"
                              % (manifest_digest, ", ".join(verities), protected)))


# -- entry point -------------------------------------------------------------------------------


def _load_state(request: StatusRequest):
    paths = load_request_paths(request)
    try:
        return host_deployments.load_host(paths, bootloader_kind=request.bootloader)
    except ComposefsError as err:
        err.partial_result.setdefault("host", {"root": paths.root, "sysroot": paths.sysroot, "boot_dir": paths.boot_dir,
                                               "esp": paths.esp, "run_dir": paths.run_dir,
                                               "cmdline_file": paths.cmdline_file})
        raise


def read_status(request: StatusRequest) -> StatusResult:
    """Read the host and its repository (never writing) and return the status result.

    Raises ``HostError`` (a ``ComposefsError``) only when the host is not a composefs bootc host or
    its booted deployment cannot be identified; every other problem is a finding.
    """
    state = _load_state(request)
    found = [f.as_dict() for f in state.findings]
    repo, repo_info = _open_repository(state.paths, found)
    try:
        tags = []
        index = None
        if repo is not None:
            index = _repository_checks(repo, repo_info, request.usage, found)
            tags = _tags(repo, found)
            if repo_info["usage"] is not None:
                repo_info["usage"]["tags"] = len(tags)
        resolved = images.resolve_images(state, repo)
        found.extend(f.as_dict() for f in resolved.findings)
        live = {}
        opened = {}
        unresolved = []
        result_deployments = []
        for deployment in state.deployments:
            metadata = resolved.by_verity[deployment.verity]
            result_deployments.append(deployment_dict(deployment, metadata))
            if metadata.manifest_digest is not None:
                live.setdefault(metadata.manifest_digest, []).append(deployment.verity)
                if metadata.image is not None and metadata.image.manifest_digest == metadata.manifest_digest:
                    opened[metadata.manifest_digest] = metadata.image
            else:
                unresolved.append(deployment.verity)
        if repo is not None:
            _check_boot_images(repo, index, state, found)
            _check_live_data(repo, index, live, opened, request.usage, found)
            _check_tags(tags, live, unresolved, found, os.path.join(repo.path, repo_paths.STREAMS, repo_paths.REFS, "oci"))
    finally:
        if repo is not None:
            repo.close()
    data = {
        "host": _host_dict(state),
        "deployments": result_deployments,
        "repository": repo_info,
        "tags": tags,
        "findings": _unique(found),
    }
    return StatusResult(data=data, warnings=_summary_warnings(data["findings"]))


def _unique(found: list) -> list:
    """The findings in order, one per (code, path): two checks may meet the same missing object."""
    seen = set()
    result = []
    for item in found:
        key = (item["code"], item["path"]) if item["path"] else (item["code"], item["message"])
        if key not in seen:
            seen.add(key)
            result.append(item)
    return result


def _summary_warnings(found: list) -> tuple:
    """One sentence for ``module.warn`` when anything was found: the details stay in the result."""
    if not found:
        return ()
    counts = {}
    for item in found:
        counts[item["code"]] = counts.get(item["code"], 0) + 1
    return ("%d finding(s) on this host: %s; see the 'findings' result"
            % (len(found), ", ".join("%s x%d" % item for item in sorted(counts.items()))),)
