"""``build_host(root, spec)``: a complete bootc composefs host tree, in the real formats.

Steps, in bootc's own order where it has one (spec bootc-composefs-host.md §1.3 write order, §5.5):

1. the repository ``<sysroot>/composefs``, as ``bootc install`` creates it: SHA-512, insecure
   (``--allow-missing-verity``: no fs-verity in a test kernel), EROFS default V1;
2. per deployment, oldest first: image built (ocigen), imported, tagged ``localhost/bootc-<digest>``,
   boot EROFS generated (its object id is the verity), boot binaries written (a Type1 dir is shared
   by deployments with the same kernel), state dir and origin written; the install image's
   ``/var`` seeds the shared ``/var``;
3. the menus: configured entries (or ``user.cfg``), then the staged set (the new primary plus the
   booted entry re-keyed as secondary) and the staged marker;
4. the running system: ``/proc/cmdline``, ``/proc/self/mountinfo``;
5. app images, stale bootc tags, then the damages (``damage.py``).

The result is plain JSON-able data describing what was built (``BuildResult`` keys are documented
in ``build_host``).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field

import ocigen
from ansible_collections.bootc.composefs.plugins.module_utils.formats import fsverity
from ansible_collections.bootc.composefs.plugins.module_utils.host import bls
from ansible_collections.bootc.composefs.plugins.module_utils.oci import tags
from ansible_collections.bootc.composefs.plugins.module_utils.repository.repo import Repository
from simhost import bootfiles, damage
from simhost.images import ImageFactory
from simhost.layout import HostLayout, check_menu_order, kernel_dir_owners, menu_positions
from simhost.spec import load_spec

DEFAULT_OCI_PATH = "/var/lib/simhost/oci"


@dataclass
class Deployed:
    """One built deployment: its spec, image and where its files are."""

    spec: object
    image: object
    image_reference: str
    artifact_name: str = ""
    artifact_path: str = ""
    entry_path: str = ""
    entry_text: str = ""
    staged_entry_paths: list = field(default_factory=list)
    files: dict = field(default_factory=dict)

    @property
    def verity(self) -> str:
        """The deployment id: the boot EROFS verity."""
        return self.image.verity

    @property
    def role(self) -> str:
        """The role asked for in the spec."""
        return self.spec.role


class Build:
    """State of one ``build_host`` run, shared with the damage functions."""

    def __init__(self, root: str, spec, repo, layout: HostLayout, factory: ImageFactory, oci_path: str) -> None:
        self.root = root
        self.spec = spec
        self.repo = repo
        self.layout = layout
        self.factory = factory
        self.oci_path = oci_path
        self.deployed = []
        self.app_images = []
        self.stale_images = []
        self.extra_images = []
        self.pending_images = []
        self.foreign_entries = []
        self.menu_files = {}

    def by_role(self, role: str) -> list:
        """Deployments with ``role`` in spec order."""
        return [d for d in self.deployed if d.role == role]

    @property
    def booted(self) -> Deployed:
        """The booted deployment."""
        return self.by_role("booted")[0]

    @property
    def staged(self):
        """The staged deployment, or None."""
        found = self.by_role("staged")
        return found[0] if found else None

    def image_reference(self, deployment_spec, layout_tag: str) -> str:
        """The origin's image reference for a deployment (transport + name, see ``bootfiles.image_reference``)."""
        if deployment_spec.image:
            name = deployment_spec.image
        elif deployment_spec.transport == "registry":
            name = deployment_spec.image_name
        elif deployment_spec.transport == "containers-storage":
            name = "localhost/%s:%s" % (deployment_spec.os_id, deployment_spec.version)
        elif deployment_spec.transport == "oci":
            name = "%s:%s" % (self.oci_path, layout_tag)
        else:
            name = "%s/%s.ociarchive" % (os.path.dirname(self.oci_path), layout_tag)
        return bootfiles.image_reference(deployment_spec.transport, name)

    def options(self, verity: str) -> str:
        """The ``options`` line of a Type1 entry: install kargs, ``composefs=``, the /boot mount if separate."""
        text = "%s %s" % (self.layout.kargs, bootfiles.composefs_karg(verity, self.spec.allow_missing_verity))
        if self.spec.separate_boot:
            text += " systemd.mount-extra=UUID=%s:/boot:ext4:defaults" % bootfiles.BOOT_FS_UUID
        return text

    # -- deployments -------------------------------------------------------------------------

    def deploy_all(self) -> None:
        """Images, boot binaries and state dirs of every deployment, oldest first."""
        spec = self.spec
        chronological = list(reversed([d for d in spec.deployments if d.role != "staged"])) + \
            [d for d in spec.deployments if d.role == "staged"]
        built = {}
        for deployment_spec in chronological:
            image = self.factory.bootc_image(deployment_spec.version, deployment_spec.kernel_version, deployment_spec.os_id,
                                             spec.boot_type, deployment_spec.uki_addons, deployment_spec.payload_bytes)
            built[id(deployment_spec)] = Deployed(spec=deployment_spec, image=image,
                                                  image_reference=self.image_reference(deployment_spec, image.layout_tag))
        self.deployed = [built[id(d)] for d in spec.deployments]
        owners = kernel_dir_owners(spec.deployments)
        for deployment_spec in chronological:
            deployed = built[id(deployment_spec)]
            if spec.boot_type == "bls":
                owner = built[id(owners[deployment_spec.kernel_version])]
                if owner.image.boot_digest != deployed.image.boot_digest:
                    raise RuntimeError("deployments %s and %s share kernel %s but not its bytes"
                                       % (owner.spec.version, deployment_spec.version, deployment_spec.kernel_version))
                deployed.artifact_name = owner.verity
                deployed.artifact_path = self.layout.type1_path(owner.verity)
                if not os.path.isdir(deployed.artifact_path):
                    self.layout.write_type1_dir(owner.verity, owner.image.vmlinuz, owner.image.initrd)
            else:
                deployed.artifact_name = deployed.verity
                deployed.artifact_path = self.layout.write_uki(deployed.verity, deployed.image.uki, deployed.image.addons)
            deployed.files = self.layout.write_state_dir(deployed.verity, self.repo, deployed.image, deployed.image_reference,
                                                         deployment_spec.legacy)
        if chronological:
            self.layout.seed_var(self.repo, built[id(chronological[0])].image)

    # -- menus -------------------------------------------------------------------------------

    def _bls_entry_text(self, deployed: Deployed, key: str) -> str:
        image = deployed.image
        version = bootfiles.os_version(image.os_release) or deployed.verity
        if self.spec.boot_type == "uki":
            return bootfiles.render_bls_entry(bootfiles.boot_label(image.os_release), version,
                                              efi=bootfiles.uki_efi_path(deployed.verity), efi_key="uki", sort_key_value=key)
        kernel_dir = "%s/%s%s" % (self.layout.linux_prefix, bootfiles.PREFIX, deployed.artifact_name)
        return bootfiles.render_bls_entry(bootfiles.pretty_name(image.os_release) or deployed.verity, version,
                                          linux=kernel_dir + "/vmlinuz", initrd=(kernel_dir + "/initrd",),
                                          options=self.options(deployed.verity), sort_key_value=key)

    def _entry_identity(self, deployed: Deployed) -> tuple:
        image = deployed.image
        return bootfiles.os_id(image.os_release), bootfiles.os_version(image.os_release) or deployed.verity

    def write_menus(self) -> None:
        """Configured entries (or user.cfg), the staged set and the staged marker."""
        order = [next(d for d in self.deployed if d.spec is s) for s in menu_positions(self.spec.deployments, self.spec.variant)]
        staged = self.staged
        if self.spec.variant == "uki-grub":
            menuentries = [bootfiles.render_menuentry(bootfiles.boot_label(d.image.os_release), d.verity) for d in order]
            path = self.layout.write_user_cfg(menuentries)
            for deployed, text in zip(order, menuentries):
                deployed.entry_path, deployed.entry_text = path, text
            if staged is not None:
                text = bootfiles.render_menuentry(bootfiles.boot_label(staged.image.os_release), staged.verity)
                staged_path = self.layout.write_user_cfg([text, menuentries[0]], staged=True)
                staged.entry_path, staged.entry_text = staged_path, text
                staged.staged_entry_paths.append(staged_path)
                self.booted.staged_entry_paths.append(staged_path)
        else:
            planned = []
            for position, deployed in enumerate(order):
                os_identifier, version = self._entry_identity(deployed)
                planned.append((bootfiles.entry_file_name(os_identifier, version, position == 0),
                                bootfiles.sort_key(os_identifier, position)))
            check_menu_order(self.spec.variant, planned)
            for deployed, (file_name, key) in zip(order, planned):
                deployed.entry_text = self._bls_entry_text(deployed, key)
                deployed.entry_path = self.layout.write_entry(file_name, deployed.entry_text)
            if staged is not None:
                os_identifier, version = self._entry_identity(staged)
                staged.entry_text = self._bls_entry_text(staged, bootfiles.sort_key(os_identifier, 0))
                staged.entry_path = self.layout.write_entry(bootfiles.entry_file_name(os_identifier, version, True),
                                                            staged.entry_text, staged=True)
                staged.staged_entry_paths.append(staged.entry_path)
                booted = self.booted
                _booted_os, booted_version = self._entry_identity(booted)
                copy = self.layout.write_entry(bootfiles.entry_file_name(os_identifier, booted_version, False),
                                               bootfiles.set_sort_key(booted.entry_text, bootfiles.sort_key(os_identifier, 1)),
                                               staged=True)
                booted.staged_entry_paths.append(copy)
        for kind in self.spec.foreign_entries:
            self.foreign_entries.append(self.layout.write_foreign_entry(kind))
        if staged is not None:
            self.layout.write_staged_marker(staged.verity, staged.spec.download_only)

    # -- running system ----------------------------------------------------------------------

    def booted_cmdline(self) -> str:
        """``/proc/cmdline`` of the booted deployment as its bootloader passes it (UKI: its ``.cmdline`` and the addons')."""
        booted = self.booted
        if self.spec.boot_type == "uki":
            return " ".join([booted.image.uki_cmdline] + _addon_cmdlines(booted.image.addons))
        return self.layout.booted_cmdline(bls.parse_bls_entry(booted.entry_text))

    def write_running_state(self) -> None:
        """``/proc/cmdline`` and ``/proc/self/mountinfo`` of the booted deployment."""
        self.layout.write_cmdline(self.booted_cmdline())
        self.layout.write_mountinfo(self.booted.verity)

    # -- other images ------------------------------------------------------------------------

    def add_other_images(self) -> None:
        """App images (their own tags) and stale bootc-tagged images (used by no deployment)."""
        for app in self.spec.app_images:
            self.app_images.append(self.factory.app_image(app.tag, app.version, app.payload_bytes))
        for number in range(self.spec.stale_bootc_tags):
            self.stale_images.append(self.factory.bootc_image(self.factory.fresh_version("0.%d" % (number + 1)),
                                                              "6.10.%d-sim" % number, boot_type=self.spec.boot_type))

    def add_pending_images(self) -> None:
        """Images written to the kept OCI layout only (``pending_versions``): updates to pull."""
        for version in self.spec.pending_versions:
            written, layout_tag, _cmdline, _verity = self.factory.write_layout_image(
                version, self.booted.spec.kernel_version, self.booted.spec.os_id, self.spec.boot_type)
            self.pending_images.append({"version": version, "layout_tag": layout_tag, "manifest_digest": written["manifest_digest"],
                                        "config_digest": written["config_digest"],
                                        "reference": "oci:%s:%s" % (self.oci_path, layout_tag)})

    # -- result ------------------------------------------------------------------------------

    def deployment_dict(self, deployed: Deployed) -> dict:
        """One deployment of the result."""
        image = deployed.image
        return {
            "verity": deployed.verity,
            "role": deployed.role,
            "version": deployed.spec.version,
            "kernel_version": deployed.spec.kernel_version,
            "legacy": deployed.spec.legacy,
            "manifest_digest": image.manifest_digest,
            "config_digest": image.config_digest,
            "bootc_tag": image.bootc_tag,
            "image_reference": deployed.image_reference,
            "boot_type": image.boot_type,
            "boot_digest": image.boot_digest,
            "boot_artifact_name": deployed.artifact_name,
            "boot_artifact_path": deployed.artifact_path,
            "boot_artifact_shared": deployed.artifact_name != deployed.verity,
            "uki_addons": sorted(image.addons) if deployed.spec.uki_addons else [],
            "entry_path": deployed.entry_path,
            "staged_entry_paths": list(deployed.staged_entry_paths),
            "state_dir": deployed.files.get("state_dir"),
            "origin_path": deployed.files.get("origin"),
            "imginfo_path": deployed.files.get("imginfo"),
            "boot_image_path": os.path.join(self.layout.repo_path, "images", deployed.verity),
        }

    def result(self, damages: list, seconds: float) -> dict:
        """The JSON-able description of the host (see ``build_host``)."""
        layout = self.layout
        role_of = {role: [d.verity for d in self.by_role(role)] for role in ("booted", "staged", "rollback", "other")}
        return {
            "root": self.root,
            "variant": self.spec.variant,
            "bootloader": self.spec.bootloader,
            "boot_type": self.spec.boot_type,
            "paths": {
                "sysroot": layout.sysroot,
                "boot_dir": layout.boot_dir,
                "esp": layout.esp,
                "repository": layout.repo_path,
                "state_deploy": layout.state_deploy,
                "entries_dir": layout.entries_dir if self.spec.variant != "uki-grub" else None,
                "staged_entries_dir": layout.staged_entries_dir if self.spec.variant != "uki-grub" else None,
                "user_cfg": layout.user_cfg if self.spec.variant == "uki-grub" else None,
                "user_cfg_staged": layout.user_cfg_staged if self.spec.variant == "uki-grub" else None,
                "type1_dir": layout.type1_dir if self.spec.boot_type == "bls" else None,
                "uki_dir": layout.uki_dir if self.spec.boot_type == "uki" else None,
                "cmdline_file": layout.cmdline_file,
                "mountinfo_file": layout.mountinfo_file,
                "staged_marker": layout.staged_marker if self.staged is not None else None,
                "efivars": layout.efivars if self.spec.bootloader == "systemd" else None,
            },
            "booted": role_of["booted"][0],
            "staged": (role_of["staged"] or [None])[0],
            "rollback": (role_of["rollback"] or [None])[0],
            "others": role_of["other"],
            "deployments": [self.deployment_dict(d) for d in self.deployed],
            "app_images": [{"tag": a.tag, "manifest_digest": a.manifest_digest, "config_digest": a.config_digest}
                           for a in self.app_images],
            "stale_bootc_tags": [{"tag": i.bootc_tag, "manifest_digest": i.manifest_digest, "verity": i.verity}
                                 for i in self.stale_images],
            "tags": [{"tag": tag, "manifest_digest": digest} for tag, digest in tags.list_tags(self.repo)],
            "foreign_entries": list(self.foreign_entries),
            "damages": damages,
            "oci_dir": self.spec.oci_dir,
            "pending_images": list(self.pending_images),
            "spec": self.spec.as_dict(),
            "seconds": round(seconds, 3),
        }


def _addon_cmdlines(addons: dict) -> list:
    return [ocigen.read_pe_sections(data)[".cmdline"].decode() for _name, data in sorted(addons.items())]


def build_host(root, spec=None) -> dict:
    """Build the host described by ``spec`` (``HostSpec``, dict or None) below ``root``; return what was built.

    ``root`` must not exist or be an empty directory. Result keys: ``root``, ``variant``,
    ``bootloader``, ``boot_type``, ``paths`` (sysroot, boot_dir, esp, repository, state_deploy,
    entries_dir, staged_entries_dir, user_cfg, user_cfg_staged, type1_dir, uki_dir, cmdline_file,
    mountinfo_file, staged_marker, efivars; None where the variant has none), ``booted``,
    ``staged``, ``rollback`` (verities or None), ``others``, ``deployments`` (spec order: verity,
    role, version, kernel_version, legacy, manifest/config digests, bootc_tag, image_reference,
    boot_type, boot_digest, boot_artifact_name/path/shared, uki_addons, entry_path,
    staged_entry_paths, state_dir, origin_path, imginfo_path, boot_image_path), ``app_images``,
    ``stale_bootc_tags``, ``tags`` (every tag in the repository at the end), ``foreign_entries``,
    ``damages`` (kind, finding, reported_by, target, paths), ``oci_dir``, ``pending_images``
    (version, layout_tag, manifest/config digests, ``oci:`` reference), ``spec``, ``seconds``.
    """
    spec = load_spec(spec)
    started = time.monotonic()
    root = os.path.abspath(os.fspath(root))
    if os.path.exists(root) and os.listdir(root):
        raise ValueError("%s is not empty; simhost builds into a new or empty directory" % root)
    os.makedirs(root, exist_ok=True)
    scratch = tempfile.mkdtemp(prefix="simhost-")
    try:
        layout_dir = spec.oci_dir or os.path.join(scratch, "oci")
        if spec.oci_dir:
            os.makedirs(spec.oci_dir, exist_ok=True)
        layout = HostLayout(root, spec)
        os.makedirs(layout.sysroot)
        with Repository.init(layout.repo_path, algorithm=fsverity.SHA512, erofs_default=1, insecure=True) as repo:
            layout.write_skeleton()
            factory = ImageFactory(repo, layout_dir, scratch, spec.allow_missing_verity)
            build = Build(root, spec, repo, layout, factory, os.path.abspath(spec.oci_dir) if spec.oci_dir else DEFAULT_OCI_PATH)
            build.deploy_all()
            build.write_menus()
            build.write_running_state()
            build.add_other_images()
            build.add_pending_images()
            damages = [damage.apply_damage(build, item) for item in spec.damages]
            return build.result(damages, time.monotonic() - started)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
