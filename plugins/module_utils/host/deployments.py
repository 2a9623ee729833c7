# -*- coding: utf-8 -*-
# Copyright: (c) 2026, bootc.composefs maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The deployments of a bootc composefs host and their roles: ``load_host`` (layer: host).

Spec: bootc-composefs-host.md §2 (identification, listing, menu order, classification,
rollbackQueued), §2.9 (failure matrix), §4.2 steps 3 and 8 (orphans), §6.1 T3, Open questions 1,
7, 8, 9, 10. Upstream: bootc ``bootc_composefs/status.rs`` (``composefs_deployment_status_from``),
``gc.rs`` (``list_state_dirs``, orphans).

How ``load_host`` reads a host, strictly read-only:

1. Booted verity B: ``composefs=`` on the kernel command line; if the ``/`` mount source names
   another verity, a soft reboot happened and that one is booted (``missing_verity_allowed`` is
   then false, as in bootc).
2. Bootloader from LoaderInfo (``bootloader`` module). Without LoaderInfo bootc assumes GRUB; if
   the GRUB boot dir then holds no ``loader/entries`` and no ``grub2/user.cfg`` while the ESP holds
   ``loader/entries``, we assume systemd-boot and report ``bootloader-guessed``.
3. Entries (``entries`` module): on systemd-boot/grub-cc the ESP's BLS entries. On GRUB classic
   bootc uses ``grub2/user.cfg`` as soon as the file exists; a ``user.cfg`` holding only a GRUB
   password then hides every BLS entry (Open question 8). We use the source that actually names
   deployments; if both do, the booted deployment's origin ``boot_type`` decides (``uki`` ⇒ GRUB
   menu), then the source naming B, then BLS, with a ``conflicting-boot-types`` finding. The
   identified entries of the other source are kept too (``unchosen_entries``), and every file a
   bootloader may read entries from, below the boot dir and the ESP, is read once for the boot
   artifact names written in it (``entry_files``), for a garbage collection to keep what they name.
4. State dirs: directories in ``<sysroot>/state/deploy``; anything else there is reported.
5. For each verity named by an entry (configured, then staged, each in menu order, as bootc
   iterates): its state dir, origin, and, if the origin has no ``manifest_digest``, its legacy
   ``.imginfo``. The first origin fixes the host boot type; disagreeing ones are reported.
6. Roles, as bootc assigns them (§2.5), over deployments with a readable origin: B is ``booted``;
   the verity named by ``/run/composefs/staged-deployment`` is ``staged``; the others are
   candidates, kept only if they appear in the configured list L and sorted by their position in
   L: the first is ``rollback``, the rest ``other``. L is the configured entries in menu order,
   *reversed* for GRUB + BLS (bootc sorts that list with ``ascending=false``), and ``user.cfg``
   order for GRUB + UKI.

Deliberate differences from bootc, each a documented bootc bug or abort:

* Foreign entries (fwupd, memtest, other OSes; bootc#2228) are listed apart and ignored; damaged
  ones (they look like bootc's but cannot be identified, on which bootc's listing fails) are
  listed apart too and reported as ``damaged-entry``.
* ``rollback_queued`` means "the default entry (first configured bootc entry in menu order) does
  not boot B" (Open question 1). bootc's literal value, inverted for GRUB + BLS and for
  systemd-boot/grub-cc + UKI, is kept as ``rollback_queued_bootc`` for parity reports.
* A deployment with an entry and a state dir but no readable origin, or one that only the staged
  entry set names while no marker says it is staged, is hidden by bootc's status but still boots
  or may be finalized: it gets role ``unlisted`` (with ``unlisted_reason``), counts as live, and is
  reported (Open question 7). A booted deployment without origin or state dir is still ``booted``.
* Entries without a state dir and state dirs without an entry are findings, not failures; one
  ``Deployment`` per verity even if several entries name it; conflicting boot types are reported.

``load_host`` raises ``HostError`` only when the host is not a composefs host at all (no
``composefs=`` and no bootc entries) or the booted deployment cannot be identified (no
``composefs=``, or B has neither an entry nor a state dir). Image resolution (origin
``manifest_digest`` → repository manifest and config) is not done here: each ``Deployment`` carries
its ``origin`` and ``imginfo`` for the operations layer to resolve.
"""

from __future__ import annotations

import os
from typing import NamedTuple

from ansible_collections.bootc.composefs.plugins.module_utils.errors import ComposefsError, HostError
from ansible_collections.bootc.composefs.plugins.module_utils.host import (
    artifact,
    bootbin,
    bootloader,
    cmdline,
    entries,
    findings,
    grub,
    menuorder,
    mountinfo,
    origin,
    staged,
    statedir,
)
from ansible_collections.bootc.composefs.plugins.module_utils.host.bootbin import BootBinaries
from ansible_collections.bootc.composefs.plugins.module_utils.host.bootloader import Bootloader
from ansible_collections.bootc.composefs.plugins.module_utils.host.cmdline import KernelCmdline
from ansible_collections.bootc.composefs.plugins.module_utils.host.imginfo import ImageInfo
from ansible_collections.bootc.composefs.plugins.module_utils.host.mountinfo import RootMount
from ansible_collections.bootc.composefs.plugins.module_utils.host.origin import ImageReference, Origin
from ansible_collections.bootc.composefs.plugins.module_utils.host.paths import HostPaths
from ansible_collections.bootc.composefs.plugins.module_utils.host.staged import StagedDeployment

__all__ = ["Deployment", "HostState", "load_host", "ROLES"]

ROLE_BOOTED = "booted"
ROLE_STAGED = "staged"
ROLE_ROLLBACK = "rollback"
ROLE_OTHER = "other"
ROLE_UNLISTED = "unlisted"
ROLES = (ROLE_BOOTED, ROLE_STAGED, ROLE_ROLLBACK, ROLE_OTHER, ROLE_UNLISTED)

REASON_NO_ORIGIN = "no readable origin"
REASON_STAGED_ONLY = "named only by staged entries, and no staged-deployment marker names it"


class Deployment(NamedTuple):
    """One deployment (verity), its role, state dir, origin, legacy imginfo and the entries naming it."""

    verity: str
    role: str
    state_dir: str | None
    origin: Origin | None
    imginfo: ImageInfo | None
    entries: tuple
    staged_marker: bool = False
    download_only: bool = False
    unlisted_reason: str | None = None

    @property
    def boot_type(self) -> str | None:
        """``bls`` or ``uki``: from the origin, else from the entries, else None."""
        if self.origin is not None:
            return self.origin.boot_type
        return next((e.boot_type for e in self.entries if e.boot_type), None)

    @property
    def boot_digest(self) -> str | None:
        """The origin's ``[boot] digest`` (SHA-256 of kernel+initrd), None if unknown."""
        return self.origin.boot_digest if self.origin is not None else None

    @property
    def manifest_digest(self) -> str | None:
        """The origin's ``[image] manifest_digest`` (``sha256:...``), None for legacy or unknown."""
        return self.origin.manifest_digest if self.origin is not None else None

    @property
    def image(self) -> ImageReference | None:
        """The origin's container image reference, None if it has none or is unreadable."""
        return self.origin.image if self.origin is not None else None

    @property
    def boot_artifact_names(self) -> tuple:
        """Names of the boot binaries this deployment's entries use (shared ones included)."""
        names = []
        for entry in self.entries:
            if entry.boot_artifact_name is not None and entry.boot_artifact_name not in names:
                names.append(entry.boot_artifact_name)
        return tuple(names)

    @property
    def in_configured_entries(self) -> bool:
        """True if a configured (not staged) entry boots this deployment."""
        return any(not entry.staged for entry in self.entries)


class HostState(NamedTuple):
    """Everything the read side knows about a host; see the module docstring for the rules.

    ``entries``: the chosen source's entries that boot a deployment (configured, then staged, menu
    order); ``foreign_entries`` / ``damaged_entries``: the entries of both sources that boot nothing
    identifiable, other tools' / bootc-looking ones; ``unchosen_entries``: the entries of the source
    not chosen that boot a deployment (GRUB classic only); ``entry_files``: every file a bootloader
    may read entries from, below the boot dir and the ESP (``entries.EntryFile``).
    """

    paths: HostPaths
    bootloader: Bootloader
    cmdline: KernelCmdline | None
    root_mount: RootMount | None
    booted_verity: str
    missing_verity_allowed: bool
    soft_rebooted: bool
    entry_source: str
    boot_type: str | None
    entries: tuple
    foreign_entries: tuple
    damaged_entries: tuple
    unchosen_entries: tuple
    entry_files: tuple
    menu_order: tuple
    deployments: tuple
    staged_deployment: StagedDeployment | None
    state_dirs: tuple
    boot_binaries: BootBinaries
    rollback_queued: bool
    rollback_queued_bootc: bool | None
    findings: tuple

    def _role(self, role: str) -> tuple:
        return tuple(d for d in self.deployments if d.role == role)

    @property
    def booted(self) -> Deployment:
        """The booted deployment (always present)."""
        return self._role(ROLE_BOOTED)[0]

    @property
    def staged(self) -> Deployment | None:
        """The staged deployment as bootc status shows it, or None."""
        found = self._role(ROLE_STAGED)
        return found[0] if found else None

    @property
    def rollback(self) -> Deployment | None:
        """The rollback deployment, or None."""
        found = self._role(ROLE_ROLLBACK)
        return found[0] if found else None

    @property
    def others(self) -> tuple:
        """bootc's ``otherDeployments``, in rollback-list order."""
        return self._role(ROLE_OTHER)

    @property
    def unlisted(self) -> tuple:
        """Live deployments bootc's status would hide (see ``Deployment.unlisted_reason``)."""
        return self._role(ROLE_UNLISTED)

    @property
    def live_verities(self) -> tuple:
        """Verities of every deployment that must be protected (all roles)."""
        return tuple(d.verity for d in self.deployments)

    @property
    def artifact_names(self) -> frozenset:
        """Boot artifact names of all bootc entries, configured and staged: the binaries in use."""
        return frozenset(e.boot_artifact_name for e in self.entries if e.boot_artifact_name is not None)

    def deployment(self, verity: str) -> Deployment | None:
        """The deployment with ``verity``, or None."""
        return next((d for d in self.deployments if d.verity == verity), None)


def _attempt(found: list, path: str, what: str, func, *args):
    """``func(*args)``, or None with an ``unreadable-file`` finding when it fails to read or parse."""
    try:
        return func(*args)
    except (OSError, ComposefsError) as err:
        reason = err.message if isinstance(err, ComposefsError) else (err.strerror or str(err))
        found.append(findings.Finding(findings.UNREADABLE_FILE, getattr(err, "path", None) or path,
                                      "cannot read %s: %s" % (what, reason)))
        return None


def _detect_bootloader(paths, override, found) -> Bootloader:
    if override is not None:
        return bootloader.load_bootloader(paths, override)
    path = os.path.join(paths.efivars_dir, bootloader.LOADER_INFO_VARIABLE)
    detected = _attempt(found, path, "the LoaderInfo EFI variable", bootloader.load_bootloader, paths)
    if detected is None:
        detected = Bootloader(kind=bootloader.GRUB, loader_info=None, source=bootloader.SOURCE_DEFAULT)
    if detected.source != bootloader.SOURCE_DEFAULT:
        return detected
    guessed = _attempt(found, paths.boot_dir, "the boot layout", bootloader.guess_bootloader, paths)
    if guessed is None:
        return detected
    found.append(findings.Finding(findings.BOOTLOADER_GUESSED, paths.esp,
                                  "no LoaderInfo EFI variable and no GRUB entries; assuming %s because the ESP holds "
                                  "loader/entries (pass the bootloader kind if this is grub-cc)" % guessed))
    return Bootloader(kind=guessed, loader_info=None, source=bootloader.SOURCE_DEFAULT)


def _choose_source(paths, kind, bls_set, grub_set, booted_verity, found) -> entries.EntrySet:
    booted_boot_type = None
    if kind == bootloader.GRUB and grub_set is not None and grub_set.composefs and bls_set.composefs:
        # Problems with this origin are reported when the deployment itself is read.
        booted_origin = _attempt([], origin.origin_path(paths, booted_verity), "the booted origin", origin.load_origin, paths, booted_verity)
        booted_boot_type = booted_origin.boot_type if booted_origin is not None else None
    chosen, why = entries.choose_source(bls_set, grub_set if kind == bootloader.GRUB else None, booted_verity, booted_boot_type)
    if why is not None:
        found.append(findings.Finding(findings.CONFLICTING_BOOT_TYPES, os.path.join(paths.boot_dir, grub.USER_CFG),
                                      "both grub2/user.cfg menuentries and loader/entries name deployments; using the %s "
                                      "entries because %s" % ("GRUB menu" if chosen is grub_set else "BLS", why)))
    return chosen


def _booted(paths, kernel_cmdline, root_mount, any_entries) -> tuple:
    param = kernel_cmdline.composefs if kernel_cmdline is not None else None
    if param is None:
        if not any_entries:
            where = paths.boot_dir if paths.esp == paths.boot_dir else "%s or %s" % (paths.boot_dir, paths.esp)
            raise HostError("not a bootc composefs host: no composefs= parameter on the kernel command line and no "
                            "bootc boot entries under %s" % where, path=paths.cmdline_file)
        raise HostError("cannot identify the booted deployment: the kernel command line has no composefs= parameter "
                        "(pass the booted command line if the root is not the running system)", path=paths.cmdline_file)
    verity, allowed, soft = param.verity, param.missing_verity_allowed, False
    if root_mount is not None and root_mount.verity and root_mount.verity != verity:
        verity, allowed, soft = root_mount.verity, False, True
    if not artifact.is_safe_name(verity):
        raise HostError("booted verity %r from the kernel command line is not a valid deployment name" % verity,
                        path=paths.cmdline_file)
    return verity, allowed, soft


def _read_files(paths, order, state_dirs, by_verity, found) -> dict:
    records = {}
    for verity in order:
        if verity in state_dirs:
            files = statedir.load_state_files(paths, verity)
            found.extend(files.findings)
            records[verity] = (files.path, files.origin, files.imginfo)
            continue
        where = by_verity[verity][0].path if by_verity[verity] else paths.state_deploy_dir
        found.append(findings.Finding(findings.ENTRY_WITHOUT_STATE_DIR, where,
                                      "boot entry names deployment %s, which has no state dir (bootc skips it)" % verity))
        records[verity] = (None, None, None)
    return records


def _host_boot_type(paths, order, records, listed, found) -> str | None:
    boot_type = None
    for verity in order:
        loaded = records[verity][1]
        if loaded is None:
            continue
        if boot_type is None:
            boot_type = loaded.boot_type
        elif loaded.boot_type != boot_type:
            found.append(findings.Finding(findings.CONFLICTING_BOOT_TYPES, origin.origin_path(paths, verity),
                                          "deployment %s has boot type %s but the host's first deployment has %s"
                                          % (verity, loaded.boot_type, boot_type)))
    if boot_type is None and listed:
        boot_type = listed[0].boot_type
    return boot_type


def _classify(order, records, by_verity, booted_verity, marker, entries_l) -> tuple:
    listed_in_l = [entry.verity for entry in entries_l]
    booted = staged_one = None
    candidates = []
    unlisted = []
    for verity in order:
        state_dir, loaded, info = records[verity]
        marked = marker is not None and marker.depl_id == verity
        fields = dict(verity=verity, state_dir=state_dir, origin=loaded, imginfo=info, entries=tuple(by_verity[verity]),
                      staged_marker=marked, download_only=bool(marked and marker.finalization_locked))
        if verity == booted_verity:
            booted = Deployment(role=ROLE_BOOTED, **fields)
        elif state_dir is None:
            continue
        elif loaded is None:
            unlisted.append(Deployment(role=ROLE_UNLISTED, unlisted_reason=REASON_NO_ORIGIN, **fields))
        elif marked:
            staged_one = Deployment(role=ROLE_STAGED, **fields)
        elif verity in listed_in_l:
            candidates.append(fields)
        else:
            unlisted.append(Deployment(role=ROLE_UNLISTED, unlisted_reason=REASON_STAGED_ONLY, **fields))
    candidates.sort(key=lambda fields: listed_in_l.index(fields["verity"]))
    ranked = [Deployment(role=ROLE_ROLLBACK if index == 0 else ROLE_OTHER, **fields) for index, fields in enumerate(candidates)]
    return tuple([booted] + ([staged_one] if staged_one else []) + ranked + unlisted)


def _report_leftovers(paths, state_dirs, by_verity, marker, listed, found) -> None:
    for name in state_dirs:
        if name not in by_verity:
            found.append(findings.Finding(findings.ORPHAN_STATE_DIR, os.path.join(paths.state_deploy_dir, name),
                                          "state dir of %s is named by no boot entry (configured or staged)" % name))
    if marker is not None and not by_verity.get(marker.depl_id):
        found.append(findings.Finding(findings.STAGED_MARKER_WITHOUT_ENTRY, paths.staged_deployment_file,
                                      "staged-deployment marker names %s, which no boot entry boots" % marker.depl_id))
    for entry in listed:
        if entry.artifact is not None and not entry.artifact.prefixed:
            found.append(findings.Finding(findings.LEGACY_BOOT_LAYOUT, entry.path,
                                          "boot entry %r uses an artifact without the %r prefix (layout from before bootc's "
                                          "prefix migration)" % (entry.name, artifact.ARTIFACT_PREFIX)))


def load_host(paths: HostPaths, bootloader_kind: str | None = None) -> HostState:
    """Read the host below ``paths`` and classify its deployments (see the module docstring).

    ``bootloader_kind`` (``grub``, ``grub-cc``, ``systemd``) overrides the LoaderInfo detection, for
    roots that are not the running system. Raises ``HostError`` only as described above.
    """
    found = []
    kernel_cmdline = _attempt(found, paths.cmdline_file, "the kernel command line", cmdline.load_cmdline, paths)
    root_mount = _attempt(found, paths.mountinfo_file, "the mount table", mountinfo.load_root_mount, paths)
    loader = _detect_bootloader(paths, bootloader_kind, found)
    kind = loader.kind
    bls_set = entries.list_bls_entries(paths, paths.boot_dir if kind == bootloader.GRUB else paths.esp)
    grub_set = entries.list_grub_entries(paths, paths.boot_dir) if kind == bootloader.GRUB else None
    found.extend(bls_set.findings)
    found.extend(grub_set.findings if grub_set is not None else ())
    any_entries = bool(bls_set.composefs or (grub_set is not None and grub_set.composefs))
    booted_verity, allowed, soft = _booted(paths, kernel_cmdline, root_mount, any_entries)

    chosen = _choose_source(paths, kind, bls_set, grub_set, booted_verity, found)
    listed = menuorder.menu_entries(chosen, kind) + menuorder.menu_entries(chosen, kind, staged=True)
    state_dirs, state_findings = statedir.list_state_dirs(paths)
    found.extend(state_findings)
    marker = _attempt(found, paths.staged_deployment_file, "the staged-deployment marker", staged.load_staged_deployment, paths)

    order = []
    by_verity = {}
    for entry in listed:
        if entry.verity not in by_verity:
            order.append(entry.verity)
        by_verity.setdefault(entry.verity, []).append(entry)
    if booted_verity not in by_verity:
        if booted_verity not in state_dirs:
            raise HostError("cannot identify the booted deployment %s: no boot entry names it and it has no state dir "
                            "under %s" % (booted_verity, paths.state_deploy_dir), path=paths.cmdline_file)
        found.append(findings.Finding(findings.BOOTED_WITHOUT_ENTRY, os.path.join(paths.state_deploy_dir, booted_verity),
                                      "the booted deployment %s has a state dir but no boot entry" % booted_verity))
        order.insert(0, booted_verity)
        by_verity[booted_verity] = []

    records = _read_files(paths, order, state_dirs, by_verity, found)
    boot_type = _host_boot_type(paths, order, records, listed, found)
    entries_l = menuorder.rollback_list(chosen, kind)
    deployments = _classify(order, records, by_verity, booted_verity, marker, entries_l)
    _report_leftovers(paths, state_dirs, by_verity, marker, listed, found)
    binaries = bootbin.load_boot_binaries(paths, kind)
    found.extend(binaries.findings)
    menu = tuple(menuorder.menu_entries(chosen, kind))
    return HostState(
        paths=paths,
        bootloader=loader,
        cmdline=kernel_cmdline,
        root_mount=root_mount,
        booted_verity=booted_verity,
        missing_verity_allowed=allowed,
        soft_rebooted=soft,
        entry_source=chosen.source,
        boot_type=boot_type,
        entries=tuple(listed),
        foreign_entries=bls_set.foreign + (grub_set.foreign if grub_set is not None else ()),
        damaged_entries=bls_set.damaged + (grub_set.damaged if grub_set is not None else ()),
        unchosen_entries=(bls_set if chosen is grub_set else grub_set).composefs if grub_set is not None else (),
        entry_files=entries.list_entry_files(paths, [paths.boot_dir] + ([paths.esp] if paths.esp != paths.boot_dir else [])),
        menu_order=menu,
        deployments=deployments,
        staged_deployment=marker,
        state_dirs=state_dirs,
        boot_binaries=binaries,
        rollback_queued=bool(menu) and menu[0].verity != booted_verity,
        rollback_queued_bootc=menuorder.bootc_rollback_queued(entries_l, kind, booted_verity),
        findings=tuple(found),
    )
