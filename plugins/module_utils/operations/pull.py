# -*- coding: utf-8 -*-
# Copyright: (c) 2026, bootc.composefs maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pulling a container image into the composefs repository of a bootc host (layer: operations).

Spec: bootc-composefs-host.md §1.4 (references), §5 (pull flow); composefs-repo.md §6 (lock),
§9 (write ordering), §10 (OCI streams, tags, pull). Upstream: bootc
``crates/lib/src/bootc_composefs/repo.rs`` (``pull_composefs_repo``: direct and unified pulls, the
``localhost/bootc-<digest>`` tag, ``generate_boot_image``), ``update.rs`` / ``switch.rs``
(``is_image_pulled``); composefs-rs ``crates/composefs-oci/src/skopeo.rs`` (``pull``).

``pull_image(request, check_mode)`` is the whole operation. Steps, in order:

1. Parse the reference (``oci/reference.py``) and open the repository ``<sysroot>/composefs``
   (``Repository.open``: ``LOCK_SH``, held until the end, so a garbage collection, which needs
   ``LOCK_EX``, waits for the pull and never runs in its middle).
2. Decide without the network when the policy allows it (table below).
3. Otherwise: with ``via_containers_storage``, stage 1 of bootc's unified pull (``oci/podman.py``:
   ``podman pull`` into ``<sysroot>/ostree/bootc/storage``), then read the image from there;
   without it, read it from the source. One skopeo image proxy (``oci/proxy.py``) gives the
   manifest digest (an index resolved to ``platform``), the manifest and the config.
4. Layers whose stream (by diff_id) is in the repository are reused; the others are fetched one
   by one through the proxy and streamed straight into the importer (``_LayerFeed``: no copy on
   disk), each verified while it is split (skopeo's digest check, the importer's size, sha256
   and diff_id checks).
5. Import with ``oci/importer.py`` (file objects, layer splitstreams, EROFS images, config and
   manifest streams, in the crash-safe order of composefs-repo.md §9); then, for bootable images
   (config label ``containers.bootc=1``), the boot EROFS as bootc's pull does
   (``oci/boot.generate_boot_image``: its verity is the ``composefs=`` id a deployment of this
   image will have); the tag last.

Policies (``pull_policy``), podman's words applied to content-addressed storage. The *local name*
is the tag: ``tag`` when given, else ``localhost/bootc-<manifest digest>``, which depends on the
digest and so cannot be known without asking the source. An image is *complete* when its
manifest, config and layer streams, its EROFS image(s) and (bootable images) its boot image are
all in the repository.

============ =================================================================================
policy       contacts the source
============ =================================================================================
``missing``  no, when the reference is pinned (``@sha256:``) and that image is complete (only a
             missing tag is created); no, when ``tag`` is given, exists and names a complete
             image; otherwise yes, to learn the digest, and fetches only what is missing
``newer``    no, for a pinned reference whose image is complete (pinned content cannot change);
             otherwise yes: a tag that names another digest than the source's moves
``always``   always; the manifest and config are read again and the import runs, but layers
             already present are reused (as podman reuses layers in its storage)
============ =================================================================================

``changed`` is true exactly when something landed: a layer, config, manifest, EROFS or boot image
was written, or the tag was created or moved. Check mode does steps 1-2 and, when the source must
be asked, reads its manifest and config (read-only: nothing is fetched, written or tagged) and
predicts; it cannot know that the source will not move before the real run, hence partial
support. With ``via_containers_storage`` check mode reads the source directly and predicts the
manifest bootc's storage will hold from the layer sizes the repository knows.

Crash safety: everything the pull writes before the tag is unreferenced (no ref names it), so an
interrupted or failed pull leaves no tag and only data a garbage collection removes; the next pull
reuses every complete layer stream. The importer reads an OCI image layout staged in
``<repo>/.pull-<random>/``: manifest, config and ``index.json`` files, and for each missing layer a
symlink to skopeo's pipe (``/proc/self/fd/N``) made just before the importer opens it. It is locked
with ``flock`` while in use (created as ``.pull-new-*``, renamed once locked), removed at the end of
the pull whatever happens, and, after a kill, by the next pull (an unlocked ``.pull-*``
directory). The tag is written last, by an atomic symlink replace.

Progress (``progress_file``, default ``<run_dir>/bootc-composefs/pull-progress.json``): while a
pull runs, JSON replaced atomically (write, then rename) at most every
``PROGRESS_INTERVAL_SECONDS`` and at each phase and layer; removed at the end. Keys:
``version`` (1), ``pid`` (of the pulling process), ``image``, ``phase`` (``resolving``, ``staging``
(the ``podman pull`` of a unified pull), ``fetching`` (layers fetched and imported),
``boot-image``, ``tagging``), ``layers_total``, ``layers_done`` (reused ones included),
``bytes_total`` (the blob sizes of the layers to fetch), ``bytes_done`` (blob bytes read so far),
``started`` and ``updated`` (Unix times).
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from ansible_collections.bootc.composefs.plugins.module_utils.errors import (
    ComposefsError,
    FormatError,
    RepositoryFormatError,
    RepositoryLockedError,
)
from ansible_collections.bootc.composefs.plugins.module_utils.host.paths import load_host_paths
from ansible_collections.bootc.composefs.plugins.module_utils.oci import (
    boot,
    filesystem,
    importer,
    layout,
    podman,
    proxy,
    reference,
    skopeo,
    tags,
)
from ansible_collections.bootc.composefs.plugins.module_utils.oci import digest as oci_digest
from ansible_collections.bootc.composefs.plugins.module_utils.oci.image import (
    boot_image_ref_key,
    image_ref_key,
    open_image,
    read_config,
)
from ansible_collections.bootc.composefs.plugins.module_utils.repository.repo import Repository

__all__ = [
    "POLICIES",
    "PullRequest",
    "PullResult",
    "pull_image",
    "default_progress_file",
    "remove_stale_staging",
]

POLICY_MISSING = "missing"
POLICY_NEWER = "newer"
POLICY_ALWAYS = "always"
POLICIES = (POLICY_MISSING, POLICY_ALWAYS, POLICY_NEWER)
PROGRESS_SUBPATH = os.path.join("bootc-composefs", "pull-progress.json")
PROGRESS_INTERVAL_SECONDS = 0.5
PROGRESS_VERSION = 1
# A garbage collection may hold the exclusive lock for minutes on a big repository.
LOCK_TIMEOUT_SECONDS = 600.0
STAGING_PREFIX = ".pull-"
STAGING_NEW_PREFIX = ".pull-new-"  # until its creator holds the lock
STALE_STAGING_SECONDS = 60.0
BOOTC_LABEL = "containers.bootc"
# Free space asked for before fetching: the objects take at least what the compressed blobs take.
SPACE_FACTOR = 1


@dataclass(frozen=True)
class PullRequest:
    """What to pull, how, and where (the host path options of ``host.paths.load_host_paths``)."""

    image: str
    transport: str | None = None
    tag: str | None = None
    pull_policy: str = POLICY_MISSING
    platform: str | None = None
    authfile: str | None = None
    creds: str | None = None
    tls_verify: bool | None = None
    cert_dir: str | None = None
    via_containers_storage: bool = False
    root: str = "/"
    sysroot: str | None = None
    boot_dir: str | None = None
    esp: str | None = None
    run_dir: str | None = None
    cmdline_file: str | None = None
    bootloader: str | None = None
    progress_file: str | None = None
    lock_timeout: float = LOCK_TIMEOUT_SECONDS
    data_timeout: float = proxy.DATA_TIMEOUT_SECONDS  # a source silent this long is unreachable
    skopeo_command: tuple = ("skopeo",)
    podman_command: tuple = ("podman",)


@dataclass
class PullResult:
    """What a pull did (or, in check mode, would do); :meth:`as_dict` is the module's result."""

    image: str
    transport: str
    tag: str | None = None
    changed: bool = False
    check_mode: bool = False
    contacted_source: bool = False
    source_digest: str | None = None
    manifest_digest: str | None = None
    config_digest: str | None = None
    form: str | None = None
    platform: str | None = None
    previous_digest: str | None = None
    tag_changed: bool = False
    bootable: bool | None = None
    image_verity: str | None = None
    boot_verity: str | None = None
    layers_fetched: list = field(default_factory=list)
    layers_reused: list = field(default_factory=list)
    bytes_fetched: int = 0
    bytes_written: int = 0
    objects_written: int = 0
    repository: str | None = None
    progress_file: str | None = None
    actions: list = field(default_factory=list)
    commands: list = field(default_factory=list)
    warnings: list = field(default_factory=list)

    def as_dict(self) -> dict:
        result = {key: value for key, value in self.__dict__.items() if key != "warnings"}
        result["layers_total"] = len(self.layers_fetched) + len(self.layers_reused)
        return result


def default_progress_file(run_dir: str) -> str:
    """``<run_dir>/bootc-composefs/pull-progress.json``."""
    return os.path.join(run_dir, PROGRESS_SUBPATH)


# --- progress ---------------------------------------------------------------------------------------


class _Progress:
    """The progress file (module docstring); every method is a no-op when disabled."""

    def __init__(self, path: str | None, image: str) -> None:
        self.path = path
        self.state = {"version": PROGRESS_VERSION, "pid": os.getpid(), "image": image, "phase": "resolving",
                      "layers_total": 0, "layers_done": 0, "bytes_total": 0, "bytes_done": 0,
                      "started": time.time(), "updated": time.time()}
        self._last = 0.0

    def update(self, force: bool = False, **fields) -> None:
        if self.path is None:
            return
        self.state.update(fields)
        now = time.monotonic()
        if not force and now - self._last < PROGRESS_INTERVAL_SECONDS:
            return
        self._last = now
        self.state["updated"] = time.time()
        directory = os.path.dirname(self.path)
        try:
            os.makedirs(directory, mode=0o755, exist_ok=True)
            fd, temp = tempfile.mkstemp(prefix=".pull-progress-", dir=directory)
            try:
                with os.fdopen(fd, "w") as handle:
                    json.dump(self.state, handle, sort_keys=True)
                os.chmod(temp, 0o644)
                os.replace(temp, self.path)
            except BaseException:
                os.unlink(temp)
                raise
        except OSError as err:
            raise ComposefsError("cannot write the progress file: %s; set progress_file to a writable path"
                                 % (err.strerror or err), path=self.path) from None

    def remove(self) -> None:
        if self.path is not None:
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass


# --- staging ----------------------------------------------------------------------------------------


def remove_stale_staging(repo_path: str) -> list:
    """Remove the staging directories of pulls that died (``<repo>/.pull-*`` no pull holds); return their paths.

    A staging directory gets its ``.pull-`` name only once its creator holds its lock, so an
    unlocked one is abandoned; a ``.pull-new-*`` one (killed between creation and lock) is
    removed when older than ``STALE_STAGING_SECONDS``.
    """
    removed = []
    try:
        names = [n for n in os.listdir(repo_path) if n.startswith(STAGING_PREFIX)]
    except OSError:
        return removed
    for name in names:
        path = os.path.join(repo_path, name)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            if name.startswith(STAGING_NEW_PREFIX) and time.time() - os.fstat(fd).st_mtime < STALE_STAGING_SECONDS:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                continue  # a running pull holds it
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
        finally:
            os.close(fd)
    return removed


class _Staging:
    """``<repo>/.pull-<random>/``: an OCI image layout of the blobs to import, locked while it exists."""

    def __init__(self, repo_path: str) -> None:
        fresh = tempfile.mkdtemp(prefix=STAGING_NEW_PREFIX, dir=repo_path)
        self._fd = os.open(fresh, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        self.path = os.path.join(repo_path, STAGING_PREFIX + os.path.basename(fresh)[len(STAGING_NEW_PREFIX):])
        os.rename(fresh, self.path)
        os.makedirs(os.path.join(self.path, "blobs", "sha256"))
        with open(os.path.join(self.path, "oci-layout"), "w") as handle:
            handle.write('{"imageLayoutVersion":"1.0.0"}')

    def blob_path(self, digest: str) -> str:
        return os.path.join(self.path, "blobs", "sha256", oci_digest.parse_digest(digest).hex)

    def write_blob(self, digest: str, data: bytes) -> None:
        with open(self.blob_path(digest), "wb") as handle:
            handle.write(data)

    def write_index(self, manifest_digest: str, size: int) -> None:
        index = {"schemaVersion": 2, "manifests": [{"mediaType": layout.MEDIA_TYPE_MANIFEST, "digest": manifest_digest,
                                                    "size": size}]}
        with open(os.path.join(self.path, "index.json"), "w") as handle:
            json.dump(index, handle)

    def remove(self) -> None:
        if self._fd >= 0:
            shutil.rmtree(self.path, ignore_errors=True)
            os.close(self._fd)
            self._fd = -1


# --- repository state -------------------------------------------------------------------------------


def _existing_config_refs(repo, config_digest: str) -> dict | None:
    if not repo.has_stream(oci_digest.config_stream_name(config_digest)):
        return None
    try:
        return read_config(repo, config_digest, parse=False).named_refs
    except ComposefsError:
        return None


def _layer_present(repo, layer_id: str, config_refs: dict | None) -> bool:
    """The importer's rule: the config's ref or the ``oci-layer-<id>`` entry names an existing object."""
    candidates = [config_refs.get(layer_id)] if config_refs else []
    name = oci_digest.layer_stream_name(layer_id)
    if repo.has_stream(name):
        candidates.append(repo.stream_object_id(name))
    return any(c is not None and repo.has_object(c) for c in candidates)


def _image_entry_ok(repo, object_id: str | None) -> bool:
    return object_id is not None and repo.has_object(object_id) and repo.image_object_id(object_id) is not None


def _complete(repo, manifest_digest: str, bootable: bool | None = None):
    """The opened image when manifest ``manifest_digest`` is complete (module docstring), else None."""
    try:
        image = open_image(repo, manifest_digest)
    except ComposefsError:
        return None
    if not all(layer.present for layer in image.layers):
        return None
    if image.is_container_image:
        versions = filesystem.erofs_versions(repo)
        if not all(_image_entry_ok(repo, image.erofs_refs.get(image_ref_key(v))) for v in versions):
            return None
        if bootable is None:
            bootable = _is_bootable_config(image.config)
        if bootable and not _image_entry_ok(repo, image.erofs_refs.get(boot_image_ref_key(versions[0]))):
            return None
    return image


def _is_bootable_config(config) -> bool:
    inner = config.get("config") if isinstance(config, dict) else None
    labels = inner.get("Labels") if isinstance(inner, dict) else None
    return isinstance(labels, dict) and str(labels.get(BOOTC_LABEL, "")) == "1"


def _tag_target(repo, tag: str) -> str | None:
    try:
        found = tags.resolve_tag(repo, tag)
    except ComposefsError:
        return None
    return found[0] if found else None


def _verities(repo, image) -> tuple:
    if image is None or not image.is_container_image:
        return None, None
    version = filesystem.erofs_versions(repo)[0]
    return image.erofs_refs.get(image_ref_key(version)), image.erofs_refs.get(boot_image_ref_key(version))


# --- streaming layers into the importer -------------------------------------------------------------


class _LayerFeed:
    """Hands the importer each missing layer straight from skopeo's pipe: ``blobs/sha256/<hex>`` -> ``/proc/self/fd/<pipe>``.

    The importer reads the layout's layers in manifest order and reports ``progress(done_layers,
    ...)`` before the first and after each one; on each new ``done_layers`` the previous payload
    gets skopeo's verdict (``FinishPipe``) and, when layer ``done_layers`` is missing, its blob is
    requested and linked into the layout just before the importer opens it. The importer checks
    each blob's size and digest while it splits it, skopeo checks them too. A watchdog kills skopeo
    when the pipe stays empty and the importer reads nothing for ``DATA_TIMEOUT_SECONDS``.
    """

    def __init__(self, job: "_Pull", source: proxy.ProxySource, image: proxy.SourceImage, missing, staging: _Staging) -> None:
        self.job = job
        self.source = source
        self.layers = list(image.layers)
        self.missing = {layer.layer_id for layer in missing}
        self.staging = staging
        self.index = None
        self.current = None
        self.before = 0
        self.error = None
        self.stalled = False
        self._activity = (None, None, time.monotonic())
        self._stop = threading.Event()
        self._watchdog = threading.Thread(target=self._watch, daemon=True)
        self._watchdog.start()

    def on_progress(self, done_layers: int, total_layers: int, blob_bytes: int) -> None:
        if done_layers != self.index:
            self._advance(done_layers)
        self.job.progress.update(force=done_layers != self.job.progress.state["layers_done"], layers_done=done_layers,
                                 layers_total=total_layers, bytes_done=blob_bytes)
        self._activity = (blob_bytes, None, time.monotonic())

    def _advance(self, index: int) -> None:
        self._settle()
        self.index = index
        if index >= len(self.layers) or self.layers[index].layer_id not in self.missing:
            return
        layer = self.layers[index]
        pipe = self.source.open_layer(layer)
        link = self.staging.blob_path(layer.fetch_digest)
        os.symlink("/proc/self/fd/%d" % pipe.fd, link)
        self.current = (layer, pipe, link)

    def _settle(self) -> None:
        if self.current is None:
            return
        layer, pipe, link = self.current
        self.current = None
        os.unlink(link)
        pipe.finish_elsewhere()
        self.job.result.bytes_fetched += layer.fetch_size
        self.job.result.actions.append("fetched layer %s (%s)" % (layer.layer_id, _mib(layer.fetch_size)))

    def finish(self) -> None:
        """After a successful import: the last payload's verdict."""
        self._settle()

    def source_error(self):
        """After a failed import: skopeo's account of the payload in progress (the real cause), or None."""
        if self.stalled:
            return skopeo.tool_error(self.source.name, "no data from the source for %d seconds" % self.source.proxy.data_timeout,
                                     command=self.source.proxy.argv, failure=skopeo.UNREACHABLE)
        if self.current is None:
            return None
        layer, pipe, link = self.current
        self.current = None
        os.unlink(link)
        try:
            pipe.finish_elsewhere()
        except ComposefsError as err:
            return err
        return None

    def _watch(self) -> None:
        while not self._stop.wait(1.0):
            current = self.current
            level = current[1].bytes_available() if current is not None else None
            seen_bytes, seen_level, since = self._activity
            if level != seen_level or current is None:
                self._activity = (seen_bytes, level, time.monotonic())
            elif level == 0 and time.monotonic() - since > self.source.proxy.data_timeout:
                self.stalled = True
                self.source.proxy.kill()
                return

    def close(self) -> None:
        self._stop.set()
        self._watchdog.join()
        if self.current is not None:
            _layer, pipe, link = self.current
            self.current = None
            pipe.close()
            if os.path.lexists(link):
                os.unlink(link)


# --- the operation ----------------------------------------------------------------------------------


def _failure_of(err: ComposefsError) -> str:
    if isinstance(err, RepositoryLockedError):
        return "repository-locked"
    if isinstance(err, RepositoryFormatError):
        return "repository"
    if "expected_digest" in err.partial_result:
        return skopeo.DIGEST_MISMATCH
    found = skopeo.classify_failure(err.message)
    return found if found in (skopeo.NO_SPACE, skopeo.DIGEST_MISMATCH, skopeo.UNKNOWN_TRANSPORT) else "pull-failed"


def _os_error(err: OSError, doing: str, path: str | None = None) -> ComposefsError:
    failure = skopeo.NO_SPACE if err.errno in (errno.ENOSPC, errno.EDQUOT) else "pull-failed"
    message = "%s: %s" % (doing, err.strerror or err)
    if failure == skopeo.NO_SPACE:
        message += " (%s)" % skopeo.failure_hint(skopeo.NO_SPACE)
    return ComposefsError(message, path=path or err.filename, partial_result={"failure": failure})


def _mib(size: int) -> str:
    return "%.1f MiB" % (size / 1048576.0)


class _Pull:
    """One pull under the repository lock: state shared by the steps."""

    def __init__(self, request: PullRequest, ref: reference.ImageReference, options: skopeo.SourceOptions, paths,
                 repo, result: PullResult, progress: _Progress, check_mode: bool, runner) -> None:
        self.request = request
        self.ref = ref
        self.options = options
        self.paths = paths
        self.repo = repo
        self.result = result
        self.progress = progress
        self.check_mode = check_mode
        self.runner = runner

    def act(self, text: str) -> None:
        self.result.actions.append(("would " + text) if self.check_mode else text)

    # -- decisions without the network --

    def local_only(self) -> bool:
        """Finish without the source when the policy allows (module docstring); True when done."""
        policy = self.request.pull_policy
        if policy == POLICY_ALWAYS:
            return False
        pinned = self.ref.pinned_digest
        if pinned is not None:
            image = _complete(self.repo, pinned)
            if image is not None:
                self.result.actions.append("image %s is complete in the repository (pinned digest): source not contacted" % pinned)
                self._describe_local(image)
                self.tag(pinned)
                return True
        if policy == POLICY_MISSING and self.request.tag is not None:
            target = _tag_target(self.repo, self.request.tag)
            image = _complete(self.repo, target) if target is not None else None
            if image is not None:
                self.result.actions.append("tag %s exists and names complete image %s (pull_policy missing): source not "
                                           "contacted" % (self.request.tag, target))
                self._describe_local(image)
                self.result.tag, self.result.previous_digest = self.request.tag, target
                return True
        return False

    def _describe_local(self, image) -> None:
        result = self.result
        result.manifest_digest, result.config_digest = image.manifest_digest, image.config_digest
        result.bootable = image.is_container_image and _is_bootable_config(image.config)
        result.layers_reused = list(image.diff_ids)
        result.image_verity, result.boot_verity = _verities(self.repo, image)
        if not result.bootable:
            result.boot_verity = None

    # -- the source --

    def source_name(self) -> tuple:
        """``(<transport>:<name> for the proxy, its transport)``; runs stage 1 of the unified pull."""
        if not self.request.via_containers_storage:
            return self.ref.source_name(), self.ref.transport
        storage = os.path.join(self.paths.sysroot, podman.STORAGE_SUBPATH)
        runroot = os.path.join(self.paths.run_dir, podman.RUNROOT_SUBPATH)
        if self.check_mode:
            self.result.actions.append("check mode: reading %s directly instead of through containers-storage %s"
                                       % (self.ref.display(), storage))
            return self.ref.source_name(), self.ref.transport
        podman.check_runroot(runroot)
        self.progress.update(force=True, phase="staging")
        if self.ref.transport == reference.TRANSPORTS["containers-storage"]:
            argv = podman.push_argv(self.request.podman_command, storage, runroot, self.ref.image)
            self.result.commands.append(skopeo.display_argv(argv))
            podman.run(argv, "copying %s into containers-storage %s" % (self.ref.display(), storage), self.runner)
            name = "containers-storage:%s%s" % (podman.storage_spec(storage, runroot), podman.split_store(self.ref.image)[1])
        else:
            argv = podman.pull_argv(self.request.podman_command, storage, runroot, self.ref.source_name(), self.options)
            self.result.commands.append(skopeo.display_argv(argv))
            stdout = podman.run(argv, "pulling %s into containers-storage %s" % (self.ref.display(), storage), self.runner)
            image_id = podman.image_id_of(stdout)
            if image_id is None:
                raise skopeo.tool_error("pulling %s into containers-storage %s" % (self.ref.display(), storage),
                                        "podman printed no image id: %r" % stdout[-200:], command=argv)
            name = podman.storage_reference(storage, runroot, image_id)
        self.result.actions.append("stage 1: %s is in containers-storage %s" % (self.ref.display(), storage))
        return name, "containers-storage"

    def check_pinned(self, image: proxy.SourceImage) -> None:
        pinned = self.ref.pinned_digest
        if pinned is None or self.ref.transport not in reference.FILE_TRANSPORTS:
            return
        if pinned not in (image.source_digest, image.manifest_digest):
            raise skopeo.tool_error("%s" % self.ref.display(), "the image there has manifest digest %s, not the pinned %s"
                                    % (image.source_digest, pinned), failure=skopeo.DIGEST_MISMATCH)

    def run_source(self) -> None:
        name, transport = self.source_name()
        argv = skopeo.proxy_argv(self.request.skopeo_command, self.options)
        self.result.commands.append(skopeo.display_argv(argv))
        self.result.contacted_source = True
        with proxy.ImageProxy(argv, self.ref.display(), data_timeout=self.request.data_timeout) as image_proxy:
            source = proxy.ProxySource(image_proxy, name, transport).open()
            image = source.resolve()
            self.check_pinned(image)
            present = self.plan_layers(image)
            if self.check_mode and self.request.via_containers_storage:
                stored = self.as_stored_from_storage(image)
                if stored is None:
                    self.describe_source(image)
                    return
                image = stored
            bootable = image.is_container_image and str(image.labels.get(BOOTC_LABEL, "")) == "1"
            self.result.bootable = bootable
            self.describe_source(image)
            complete = _complete(self.repo, image.manifest_digest, bootable)
            if self.request.pull_policy != POLICY_ALWAYS and complete is not None:
                self.result.actions.append("image %s is complete in the repository: nothing to fetch" % image.manifest_digest)
                self.result.image_verity, self.result.boot_verity = _verities(self.repo, complete)
                if not bootable:
                    self.result.boot_verity = None
                self.tag(image.manifest_digest)
                return
            missing = [layer for layer in image.layers if layer.layer_id not in present]
            if self.check_mode:
                for layer in missing:
                    self.act("fetch layer %s (%s)" % (layer.layer_id, _mib(layer.fetch_size)))
                self.result.bytes_fetched = sum(layer.fetch_size for layer in missing)
                if complete is None:
                    self.result.changed = True
                    self.act("import manifest %s" % image.manifest_digest)
                self.tag(image.manifest_digest)
                return
            self.fetch_and_import(source, image, missing)
            source.close()
        self.finish_image(image.manifest_digest, bootable)

    def as_stored_from_storage(self, image: proxy.SourceImage):
        """Check mode of a unified pull: the image as bootc's containers-storage will present it, or None.

        Layers stored compressed come out of containers-storage uncompressed (``proxy.py``,
        ``normalized``); their sizes are those of the layer streams already in the repository.
        When one is missing the pull will fetch it: changed, and the stored digest is unknown.
        """
        layers, normalized = [], False
        for raw, layer in zip(image.manifest.get("layers", []), image.layers):
            if image.is_container_image and raw.get("digest") != layer.layer_id:
                if layer.layer_id in self.result.layers_fetched:
                    self.result.changed = True
                    self.result.bytes_fetched = sum(item.fetch_size for item in image.layers
                                                    if item.layer_id in self.result.layers_fetched)
                    self.act("fetch %d layer(s) into containers-storage and import them" % len(self.result.layers_fetched))
                    return None
                size = self.repo.read_stream(oci_digest.layer_stream_name(layer.layer_id)).stream_size
                layer = proxy.SourceLayer(layer.layer_id, proxy.uncompressed_descriptor(raw, layer.layer_id, size),
                                          layer.layer_id, size, True)
                normalized = True
            layers.append(layer)
        if not normalized:
            return image
        manifest_bytes = proxy.normalize_manifest(image.manifest, layers)
        return image._replace(manifest_bytes=manifest_bytes, manifest_digest=oci_digest.sha256_digest(manifest_bytes),
                              manifest=json.loads(manifest_bytes), layers=tuple(layers), form=proxy.FORM_NORMALIZED)

    def describe_source(self, image: proxy.SourceImage) -> None:
        result = self.result
        result.source_digest = image.source_digest
        result.manifest_digest, result.config_digest = image.manifest_digest, image.config_digest
        result.form = image.form
        note = {proxy.FORM_EXACT: "", proxy.FORM_CONVERTED: ", stored as skopeo's OCI conversion %s" % image.manifest_digest,
                proxy.FORM_NORMALIZED: ", stored with uncompressed layer descriptors as %s" % image.manifest_digest}[image.form]
        result.actions.append("resolved %s (platform %s) to manifest %s%s"
                              % (self.ref.display(), result.platform, image.source_digest, note))

    def plan_layers(self, image: proxy.SourceImage) -> set:
        config_refs = _existing_config_refs(self.repo, image.config_digest)
        present = set()
        for layer in image.layers:
            if _layer_present(self.repo, layer.layer_id, config_refs):
                present.add(layer.layer_id)
                self.result.layers_reused.append(layer.layer_id)
            else:
                self.result.layers_fetched.append(layer.layer_id)
        return present

    # -- writing --

    def check_space(self, missing) -> None:
        need = SPACE_FACTOR * sum(layer.fetch_size for layer in missing)
        stats = os.statvfs(self.repo.path)
        free = stats.f_bavail * stats.f_frsize
        if need > free:
            message = ("not enough free space to pull %s: its %s of layers to fetch need at least as much, the repository's "
                       "filesystem has %s free (%s)" % (self.ref.display(), _mib(need), _mib(free),
                                                        skopeo.failure_hint(skopeo.NO_SPACE)))
            raise ComposefsError(message, path=self.repo.path, partial_result={"failure": skopeo.NO_SPACE})

    def fetch_and_import(self, source: proxy.ProxySource, image: proxy.SourceImage, missing) -> None:
        self.check_space(missing)
        for path in remove_stale_staging(self.repo.path):
            self.result.actions.append("removed staging directory %s left by an interrupted pull" % path)
        staging = _Staging(self.repo.path)
        feed = _LayerFeed(self, source, image, missing, staging)
        try:
            staging.write_blob(image.manifest_digest, image.manifest_bytes)
            staging.write_blob(image.config_digest, image.config_bytes)
            staging.write_index(image.manifest_digest, len(image.manifest_bytes))
            self.progress.update(force=True, phase="fetching", layers_total=len(image.layers), layers_done=0,
                                 bytes_total=sum(layer.fetch_size for layer in missing), bytes_done=0)
            try:
                imported = importer.import_oci_layout(self.repo, staging.path, ref=image.manifest_digest,
                                                      progress=feed.on_progress)
                feed.finish()
            except ComposefsError as err:
                raise feed.source_error() or err from None
        finally:
            feed.close()
            staging.remove()
        self.result.objects_written += imported.object_count
        self.result.bytes_written += imported.bytes_written
        if imported.changed:
            self.result.changed = True
        self.result.actions.append("imported manifest %s and config %s: %d layer(s) written, %d reused, %d object(s), %s"
                                   % (image.manifest_digest, image.config_digest, len(imported.layers_fetched),
                                      len(imported.layers_reused), imported.object_count, _mib(imported.bytes_written)))

    def finish_image(self, manifest_digest: str, bootable: bool) -> None:
        image = open_image(self.repo, manifest_digest)
        version = filesystem.erofs_versions(self.repo)[0]
        if bootable:
            self.progress.update(force=True, phase="boot-image")
            key = boot_image_ref_key(version)
            had = _image_entry_ok(self.repo, image.erofs_refs.get(key))
            verity = boot.generate_boot_image(self.repo, manifest_digest)
            if not had:
                self.result.changed = True
                self.result.objects_written += 1
                self.result.bytes_written += os.stat(self.repo.object_path(verity)).st_size
                self.result.actions.append("generated boot image %s" % verity)
            image = open_image(self.repo, manifest_digest)
        self.result.image_verity, self.result.boot_verity = _verities(self.repo, image)
        if not bootable:
            self.result.boot_verity = None
        self.progress.update(force=True, phase="tagging")
        self.tag(manifest_digest)

    def tag(self, manifest_digest: str) -> None:
        tag = self.request.tag or tags.bootc_tag(manifest_digest)
        if self.request.tag is None and self.result.bootable is False:
            self.result.warnings.append("%s is not a bootc image (no %s=1 label) but gets bootc's tag %s, which a garbage "
                                        "collection removes while no deployment uses it; pass tag to keep it"
                                        % (self.ref.display(), BOOTC_LABEL, tag))
        previous = _tag_target(self.repo, tag)
        self.result.tag, self.result.previous_digest = tag, previous
        self.result.manifest_digest = self.result.manifest_digest or manifest_digest
        if previous == manifest_digest:
            return
        self.result.tag_changed = self.result.changed = True
        self.act("tag %s -> %s%s" % (tag, manifest_digest, " (was %s)" % previous if previous else ""))
        if not self.check_mode:
            tags.tag_image(self.repo, manifest_digest, tag)


def _parse(request: PullRequest) -> tuple:
    if request.pull_policy not in POLICIES:
        raise ComposefsError("pull_policy %r is not one of %s" % (request.pull_policy, ", ".join(POLICIES)))
    try:
        ref = reference.parse_reference(request.image, request.transport)
    except FormatError as err:
        failure = skopeo.UNKNOWN_TRANSPORT if "unknown transport" in err.message or "unknown scheme" in err.message else "bad-reference"
        err.partial_result["failure"] = failure
        raise
    if ref.signature == reference.SIGNATURE_OSTREE_REMOTE:
        raise ComposefsError("image reference %r asks for ostree remote %r signature verification, which composefs hosts do "
                             "not have; use ostree-image-signed: (containers policy) or ostree-unverified-image:"
                             % (ref.raw, ref.remote), partial_result={"failure": "bad-reference"})
    platform = None
    if request.platform:
        try:
            platform = layout.parse_platform(request.platform)
        except ValueError as err:
            raise ComposefsError(str(err), partial_result={"failure": "bad-reference"}) from None
    if request.tag is not None:
        tags.validate_tag(request.tag)
    options = skopeo.SourceOptions(authfile=request.authfile, creds=request.creds, tls_verify=request.tls_verify,
                                   cert_dir=request.cert_dir, platform=platform, insecure_policy=ref.unverified)
    return ref, platform, options


def pull_image(request: PullRequest, check_mode: bool = False, runner: Callable | None = None) -> PullResult:
    """Pull ``request.image`` into the host's composefs repository (module docstring); check mode predicts.

    ``runner(argv, env) -> (rc, stdout, stderr)`` replaces how podman commands run (tests). A
    failure is a ComposefsError whose ``partial_result`` carries ``failure`` (a class of
    ``skopeo.FAILURE_CLASSES``, or ``bad-reference`` / ``pull-failed``), ``actions`` and ``commands``.
    """
    try:
        ref, platform, options = _parse(request)
    except ComposefsError as err:
        err.partial_result.setdefault("failure", "bad-reference")
        err.partial_result.update(actions=[], commands=[])
        raise
    result = PullResult(image=ref.display(), transport=ref.transport, check_mode=check_mode,
                        platform=str(platform or layout.host_platform()))
    progress = _Progress(None, ref.display())
    try:
        paths = load_host_paths(root=request.root, sysroot=request.sysroot, boot_dir=request.boot_dir, esp=request.esp,
                                run_dir=request.run_dir, cmdline_file=request.cmdline_file)
        result.repository = paths.composefs_repo
        if not check_mode:
            result.progress_file = progress.path = request.progress_file or default_progress_file(paths.run_dir)
        with Repository.open(paths.composefs_repo, writable=not check_mode, timeout=request.lock_timeout) as repo:
            job = _Pull(request, ref, options, paths, repo, result, progress, check_mode, runner)
            progress.update(force=True)
            if not job.local_only():
                job.run_source()
    except ComposefsError as err:
        err.partial_result.setdefault("failure", _failure_of(err))
        err.partial_result.update(actions=result.actions, commands=result.commands)
        raise
    except OSError as err:
        failed = _os_error(err, "pulling %s" % ref.display())
        failed.partial_result.update(actions=result.actions, commands=result.commands)
        raise failed from None
    finally:
        progress.remove()
    return result
