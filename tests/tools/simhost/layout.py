"""Where bootc puts each file of a composefs host, and writing them there (spec bootc-composefs-host.md §1).

``HostLayout`` knows the paths of one variant below a root and writes state dirs, boot binaries,
boot entries, GRUB menus, the kernel command line, efivars and the staged marker.

Per variant (``<boot>`` = ``<root>/sysroot/boot``, or ``<root>/boot`` with ``separate_boot``;
ESP = ``<root>/boot/efi``):

``bls-grub``
    kernel dirs ``<boot>/bootc_composefs-<n>/{vmlinuz,initrd}``; entries ``<boot>/loader/entries``
    and ``entries.staged``; ``linux /boot/bootc_composefs-<n>/vmlinuz`` (``/bootc_composefs-...``
    with ``separate_boot``); ``<boot>/grub2/grub.cfg``; an ESP only for ``orphan-addon-dir``.
``bls-systemd``
    kernel dirs ``ESP/EFI/Linux/bootc_composefs-<n>/``; entries ``ESP/loader/entries`` and
    ``entries.staged``; ``linux /EFI/Linux/bootc_composefs-<n>/vmlinuz``; LoaderInfo efivar.
``uki-systemd``
    UKIs ``ESP/EFI/Linux/bootc/bootc_composefs-<v>.efi`` (+ ``.efi.extra.d/``); entries with a
    ``uki`` key in ``ESP/loader/entries`` and ``entries.staged``; ``ESP/loader/loader.conf``;
    LoaderInfo efivar.
``uki-grub``
    UKIs as uki-systemd; menu ``<boot>/grub2/user.cfg`` and ``user.cfg.staged``;
    ``<boot>/grub2/efiuuid.cfg``.

Every host also gets ``<sysroot>/composefs`` (the repository, made by the builder),
``<sysroot>/composefs/bootc/`` and ``<sysroot>/ostree/bootc -> ../composefs/bootc`` (bootc's
install), ``<sysroot>/state/deploy/<v>/{etc/,var,<v>.origin[,<v>.imginfo]}``,
``<sysroot>/state/os/default/var/`` (the install image's ``/var``), ``<root>/proc/cmdline``,
``<root>/proc/self/mountinfo`` and, with a staged deployment, ``<root>/run/composefs/staged-deployment``.

Menu order (``menu_positions``): the booted deployment is the primary entry; bootc's rollback is
the first non-booted entry of its list L, which is the menu itself except on GRUB + BLS, where
bootc takes the menu in reverse. So the rollback is placed second, or last on GRUB + BLS, and the
others in between in the order given. Entry names follow bootc (primary ``-1.conf`` /
``bootc-<os>-0``, every other ``-0.conf`` / ``bootc-<os>-<menu position>``; the two-entry case is
exactly bootc's primary + secondary). ``check_menu_order`` refuses specs whose versions would make
GRUB (file names, descending) or systemd-boot (sort keys) show another order.
"""

from __future__ import annotations

import os

import ocigen
from simhost import bootfiles
from simhost.images import extract_tree


def _write(path: str, data, mode: int = 0o644) -> str:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as handle:
        handle.write(data.encode() if isinstance(data, str) else data)
    os.chmod(path, mode)
    return path


def menu_positions(deployments, variant: str) -> list:
    """The configured (non-staged) deployments in menu order (see the module docstring)."""
    configured = [d for d in deployments if d.role != "staged"]
    booted = [d for d in configured if d.role == "booted"]
    rollback = [d for d in configured if d.role == "rollback"]
    others = [d for d in configured if d.role == "other"]
    if variant == "bls-grub":
        return booted + others + rollback
    return booted + rollback + others


def kernel_dir_owners(deployments) -> dict:
    """``{kernel_version: deployment that created the shared Type1 dir}``: the oldest user of that kernel.

    The list is newest first (menu order), and a staged deployment is the newest of all.
    """
    by_age = [d for d in deployments if d.role == "staged"] + [d for d in deployments if d.role != "staged"]
    owners = {}
    for deployment in by_age:
        owners[deployment.kernel_version] = deployment
    return owners


class HostLayout:
    """Paths of a host of ``spec.variant`` below ``root``, and the writers for its files."""

    def __init__(self, root: str, spec) -> None:
        self.root = os.path.abspath(root)
        self.spec = spec
        self.variant = spec.variant
        self.sysroot = os.path.join(self.root, "sysroot")
        self.boot_dir = os.path.join(self.root, "boot") if spec.separate_boot else os.path.join(self.sysroot, "boot")
        self.esp = os.path.join(self.root, "boot", "efi") if spec.has_esp else None
        self.repo_path = os.path.join(self.sysroot, "composefs")
        self.state_deploy = os.path.join(self.sysroot, "state", "deploy")
        self.shared_var = os.path.join(self.sysroot, "state", "os", "default", "var")
        self.cmdline_file = os.path.join(self.root, "proc", "cmdline")
        self.mountinfo_file = os.path.join(self.root, "proc", "self", "mountinfo")
        self.staged_marker = os.path.join(self.root, "run", "composefs", "staged-deployment")
        self.efivars = os.path.join(self.root, "sys", "firmware", "efi", "efivars")
        grub = spec.bootloader == "grub"
        self.entries_root = self.boot_dir if grub else self.esp
        self.type1_dir = self.boot_dir if grub else os.path.join(self.esp, bootfiles.TYPE1_ESP_DIR)
        self.uki_dir = os.path.join(self.esp, bootfiles.UKI_DIR) if self.esp else None
        if not grub:
            self.linux_prefix = "/" + bootfiles.TYPE1_ESP_DIR
        else:
            self.linux_prefix = "" if spec.separate_boot else "/boot"
        if spec.bootloader == "systemd":
            self.kargs = "rw console=ttyS0"
        else:
            self.kargs = "root=UUID=%s rw console=ttyS0" % bootfiles.ROOT_FS_UUID

    # -- paths -------------------------------------------------------------------------------

    @property
    def entries_dir(self) -> str:
        """``loader/entries`` below the entries root."""
        return os.path.join(self.entries_root, "loader", "entries")

    @property
    def staged_entries_dir(self) -> str:
        """``loader/entries.staged`` below the entries root."""
        return os.path.join(self.entries_root, "loader", "entries.staged")

    @property
    def user_cfg(self) -> str:
        """``grub2/user.cfg`` below the boot dir."""
        return os.path.join(self.boot_dir, "grub2", "user.cfg")

    @property
    def user_cfg_staged(self) -> str:
        """``grub2/user.cfg.staged`` below the boot dir."""
        return os.path.join(self.boot_dir, "grub2", "user.cfg.staged")

    def state_dir(self, verity: str) -> str:
        """``<sysroot>/state/deploy/<v>``."""
        return os.path.join(self.state_deploy, verity)

    def origin_path(self, verity: str) -> str:
        """``<state dir>/<v>.origin``."""
        return os.path.join(self.state_dir(verity), verity + ".origin")

    def type1_path(self, name: str) -> str:
        """The Type1 kernel dir of artifact ``name``."""
        return os.path.join(self.type1_dir, bootfiles.PREFIX + name)

    def uki_path(self, verity: str) -> str:
        """The UKI of ``verity`` on the ESP."""
        return os.path.join(self.uki_dir, bootfiles.uki_file_name(verity))

    def addon_dir(self, verity: str) -> str:
        """The addon dir of the UKI of ``verity``."""
        return os.path.join(self.uki_dir, bootfiles.addon_dir_name(verity))

    # -- skeleton ----------------------------------------------------------------------------

    def write_skeleton(self) -> None:
        """Directories every host has, bootc's compat symlink, bootloader files outside bootc's control."""
        for path in (os.path.join(self.sysroot, "boot"), self.boot_dir, self.state_deploy, self.shared_var,
                     os.path.join(self.root, "run"), os.path.join(self.repo_path, "bootc"), os.path.join(self.sysroot, "ostree")):
            os.makedirs(path, exist_ok=True)
        os.symlink("../composefs/bootc", os.path.join(self.sysroot, "ostree", "bootc"))
        if self.spec.bootloader == "grub":
            _write(os.path.join(self.boot_dir, "grub2", "grub.cfg"),
                   "# static configuration (bootupd): boots the BLS entries and grub2/user.cfg\n"
                   "set timeout=5\nload_env\nblscfg\n"
                   "if [ -f ${config_directory}/user.cfg ]; then\n  source ${config_directory}/user.cfg\nfi\n")
        if self.esp is not None:
            efi = os.path.join(self.esp, "EFI")
            if self.spec.bootloader == "systemd":
                loader = ocigen.build_pe([(".sdmagic", b"#### LoaderInfo: systemd-boot 258.2 ####"), (".text", b"\xc3")])
                _write(os.path.join(efi, "systemd", "systemd-bootx64.efi"), loader)
                _write(os.path.join(efi, "BOOT", "BOOTX64.EFI"), loader)
                _write(os.path.join(self.efivars, bootfiles.LOADER_INFO_VARIABLE), bootfiles.encode_efivar(bootfiles.SYSTEMD_LOADER_INFO))
            else:
                shim = ocigen.build_pe([(".text", b"\xc3"), (".sbat", b"shim,4\n")])
                _write(os.path.join(efi, "BOOT", "BOOTX64.EFI"), shim)
                _write(os.path.join(efi, "fedora", "shimx64.efi"), shim)
                _write(os.path.join(efi, "fedora", "grubx64.efi"), ocigen.build_pe([(".text", b"\xc3"), (".sbat", b"grub,4\n")]))
            if self.spec.boot_type == "uki":
                os.makedirs(self.uki_dir, exist_ok=True)
        if self.spec.bootloader == "grub" and self.spec.boot_type == "uki":
            _write(os.path.join(self.boot_dir, "grub2", "efiuuid.cfg"), bootfiles.render_efiuuid_cfg())
        if self.variant == "uki-systemd":
            _write(os.path.join(self.esp, "loader", "loader.conf"), bootfiles.LOADER_CONF)
        if self.spec.grub_password_user_cfg:
            _write(self.user_cfg, bootfiles.GRUB_PASSWORD_USER_CFG, mode=0o600)

    # -- state -------------------------------------------------------------------------------

    def write_state_dir(self, verity: str, repo, image, image_reference: str, legacy: bool) -> dict:
        """``state/deploy/<v>/``: ``etc/`` from the image, ``var`` link, origin (and ``.imginfo`` if legacy)."""
        directory = self.state_dir(verity)
        os.makedirs(os.path.join(directory, "etc"))
        etc = _lookup(image.root, b"etc")
        if etc is not None:
            extract_tree(repo, etc, os.path.join(directory, "etc"))
        updated = os.path.join(directory, "etc", ".updated")
        if os.path.lexists(updated):
            os.unlink(updated)
        os.symlink("../../os/default/var", os.path.join(directory, "var"))
        origin = bootfiles.render_origin(image_reference, image.boot_type, image.boot_digest,
                                         None if legacy else image.manifest_digest)
        paths = {"state_dir": directory, "origin": _write(self.origin_path(verity), origin)}
        if legacy:
            paths["imginfo"] = _write(os.path.join(directory, verity + ".imginfo"),
                                      bootfiles.render_imginfo(image.config_bytes, image.manifest_bytes))
        return paths

    def seed_var(self, repo, image) -> None:
        """The install image's ``/var`` copied into the shared ``state/os/default/var``."""
        var = _lookup(image.root, b"var")
        if var is not None:
            extract_tree(repo, var, self.shared_var)

    # -- boot binaries -----------------------------------------------------------------------

    def write_type1_dir(self, name: str, vmlinuz: bytes, initrd: bytes) -> str:
        """``bootc_composefs-<name>/{vmlinuz,initrd}`` in the Type1 binaries dir."""
        directory = self.type1_path(name)
        _write(os.path.join(directory, "vmlinuz"), vmlinuz, mode=0o755)
        _write(os.path.join(directory, "initrd"), initrd, mode=0o600)
        return directory

    def write_uki(self, verity: str, uki: bytes, addons: dict) -> str:
        """``bootc_composefs-<v>.efi`` and, with addons, ``bootc_composefs-<v>.efi.extra.d/<name>``."""
        path = _write(self.uki_path(verity), uki)
        for file_name, data in sorted(addons.items()):
            _write(os.path.join(self.addon_dir(verity), file_name), data)
        return path

    # -- menus -------------------------------------------------------------------------------

    def write_entry(self, file_name: str, text: str, staged: bool = False) -> str:
        """One ``.conf`` file in ``loader/entries`` (or ``entries.staged``)."""
        return _write(os.path.join(self.staged_entries_dir if staged else self.entries_dir, file_name), text)

    def write_user_cfg(self, menuentries, staged: bool = False) -> str:
        """``grub2/user.cfg`` (or ``.staged``) with the preamble and ``menuentries`` (rendered)."""
        return _write(self.user_cfg_staged if staged else self.user_cfg, bootfiles.render_user_cfg(menuentries))

    def write_foreign_entry(self, kind: str) -> str:
        """A non-bootc entry (fwupd, memtest86+) next to bootc's entries."""
        file_name, text = bootfiles.FOREIGN_ENTRIES[kind]
        return self.write_entry(file_name, text)

    # -- running system ----------------------------------------------------------------------

    def booted_cmdline(self, entry) -> str:
        """``/proc/cmdline`` of this host booted from the Type1 BLS ``entry`` (a parsed ``host.bls.BlsEntry``).

        systemd-boot passes the entry's ``options``; GRUB's ``blscfg`` puts
        ``BOOT_IMAGE=(hd0,<boot partition>)<linux>`` first (partition 2 when ``/boot`` is separate, else 3).
        """
        options = entry.options or ""
        if self.spec.bootloader != "grub":
            return options
        partition = "gpt2" if self.spec.separate_boot else "gpt3"
        return "BOOT_IMAGE=(hd0,%s)%s %s" % (partition, entry.linux, options)

    def write_cmdline(self, text: str) -> str:
        """``/proc/cmdline``."""
        return _write(self.cmdline_file, text + "\n")

    def write_mountinfo(self, booted_verity: str) -> str:
        """``/proc/self/mountinfo`` with the composefs root of ``booted_verity``."""
        return _write(self.mountinfo_file, bootfiles.render_mountinfo(booted_verity, self.spec.separate_boot, self.esp is not None))

    def write_staged_marker(self, verity: str, locked: bool = False) -> str:
        """``/run/composefs/staged-deployment``."""
        return _write(self.staged_marker, bootfiles.render_staged_marker(verity, locked))


def _lookup(root, name: bytes):
    node = root.entries.get(name) if root is not None else None
    return node if node is not None and hasattr(node, "entries") else None


def check_menu_order(variant: str, planned) -> None:
    """Raise ``ValueError`` if the bootloader would not show ``planned`` (``[(file name, sort key)]``) in that order."""
    names = [name for name, _key in planned]
    if len(set(names)) != len(names):
        raise ValueError("two boot entries would get the same file name: %s" % ", ".join(sorted(names)))
    if variant == "bls-grub":
        encoded = [os.fsencode(name) for name in names]
        if encoded != sorted(encoded, reverse=True):
            raise ValueError("GRUB lists BLS entries by file name, descending; %s would not come out in the wanted "
                             "menu order %s (booted first, rollback last): choose versions that sort that way"
                             % (sorted(names, reverse=True), names))
    elif variant != "uki-grub":
        keys = [key for _name, key in planned]
        if keys != sorted(keys):
            raise ValueError("systemd-boot sorts entries by sort-key; %s is not ascending (too many entries?)" % keys)
