"""Text-level builder of bootc composefs host trees, for the host-layer unit tests.

Writes the files of spec bootc-composefs-host.md §1 the way bootc lays them out (entries, origins,
``user.cfg``, staged marker, kernel dirs, UKIs, efivars) below a temporary root, so tests read real
files. Nothing here imports the library under test: the expected values stay independent of it.

``HostTree`` writes single files; ``Type1History`` replays install / upgrade / GC sequences on a
GRUB + BLS tree the way bootc's own ``testutils.rs`` does (shared kernel dirs, legacy layout,
prefix migration), for the §6.2 scenarios.
"""

import hashlib
import json
import os
import pathlib
import shutil

PREFIX = "bootc_composefs-"
LOADER_INFO_NAME = "LoaderInfo-4a67b082-0a4c-41cf-b6c7-440b29bb8c4f"
EFIUUID_PREAMBLE = (
    "\n"
    "if [ -f ${config_directory}/efiuuid.cfg ]; then\n"
    "        source ${config_directory}/efiuuid.cfg\n"
    "fi\n"
)
DEFAULT_KARGS = "root=UUID=6b2f0b2e-1111-4a4a-9c9c-0123456789ab rw console=ttyS0"
DEFAULT_IMAGE = "ostree-unverified-image:docker://quay.io/example/os:42"


def fake_digest(number):
    """sha256("build-<n>") as hex: the 64-hex stand-in verities of bootc's testutils.rs."""
    return hashlib.sha256(("build-%d" % number).encode()).hexdigest()


def fake_verity(number):
    """A realistic 128-hex (SHA-512) verity for deployment ``number``."""
    return hashlib.sha512(("deployment-%d" % number).encode()).hexdigest()


def fake_manifest_digest(number):
    """A well-formed ``sha256:<64 hex>`` manifest digest."""
    return "sha256:" + hashlib.sha256(("manifest-%d" % number).encode()).hexdigest()


def origin_text(image=DEFAULT_IMAGE, boot_type="bls", digest=None, manifest_digest=None):
    """An origin keyfile as bootc's tini writer renders it (blank line between sections, no final newline)."""
    sections = []
    if image is not None:
        sections.append("[origin]\ncontainer-image-reference = %s" % image)
    boot = ["[boot]"]
    if boot_type is not None:
        boot.append("boot_type = %s" % boot_type)
    if digest is not None:
        boot.append("digest = %s" % digest)
    sections.append("\n".join(boot))
    if manifest_digest is not None:
        sections.append("[image]\nmanifest_digest = %s" % manifest_digest)
    return "\n\n".join(sections)


def type1_entry_text(verity, artifact, version="42", title=None, sort_key=None, linux_root="/boot",
                     prefixed=True, kargs=DEFAULT_KARGS, allow_missing=False):
    """A bootc Type1 entry booting ``verity`` from the kernel dir of ``artifact``."""
    dir_name = (PREFIX + artifact) if prefixed else artifact
    lines = [
        "title %s" % (title or "Fedora Linux %s" % version),
        "version %s" % version,
        "linux %s/%s/vmlinuz" % (linux_root, dir_name),
        "initrd %s/%s/initrd" % (linux_root, dir_name),
        "options %s composefs=%s%s" % (kargs, "?" if allow_missing else "", verity),
    ]
    if sort_key is not None:
        lines.append("sort-key %s" % sort_key)
    return "\n".join(lines) + "\n"


def uki_entry_text(verity, version="42", key="uki", title=None, sort_key=None, prefixed=True):
    """A bootc systemd-boot UKI entry (``uki`` or ``efi`` key) for ``verity``."""
    name = (PREFIX + verity) if prefixed else verity
    lines = [
        "title %s" % (title or "Fedora Linux %s" % version),
        "version %s" % version,
        "%s /EFI/Linux/bootc/%s.efi" % (key, name),
    ]
    if sort_key is not None:
        lines.append("sort-key %s" % sort_key)
    return "\n".join(lines) + "\n"


def menuentry_text(verity, label="Fedora Linux 42 (Forty Two)", prefixed=True, indent=""):
    """One GRUB UKI menuentry as bootc writes it (unindented body unless ``indent``)."""
    name = (PREFIX + verity) if prefixed else verity
    body = [
        "insmod fat",
        "insmod chain",
        'search --no-floppy --set=root --fs-uuid "${EFI_PART_UUID}"',
        "chainloader /EFI/Linux/bootc/%s.efi" % name,
    ]
    return 'menuentry "%s: (%s)" {\n%s\n}\n' % (label, verity, "\n".join(indent + line for line in body))


class HostTree:
    """A host root in a temp dir: ``sysroot``, GRUB boot dir, ESP (``<root>/boot/efi``), /run, /proc."""

    def __init__(self, root, bootloader="grub", separate_boot=False):
        self.root = pathlib.Path(root)
        self.bootloader = bootloader
        self.separate_boot = separate_boot
        self.sysroot = self.root / "sysroot"
        # A separate /boot partition (bootc#2399) is mounted at <root>/boot; <sysroot>/boot stays empty.
        self.boot = self.root / "boot" if separate_boot else self.sysroot / "boot"
        (self.sysroot / "boot").mkdir(parents=True, exist_ok=True)
        self.esp = self.root / "boot" / "efi"
        self.state = self.sysroot / "state" / "deploy"
        for directory in (self.sysroot, self.boot, self.esp / "EFI", self.state, self.root / "run", self.root / "proc"):
            directory.mkdir(parents=True, exist_ok=True)
        if bootloader != "grub":
            self.loader_info({"systemd": "systemd-boot 257.7", "grub-cc": "GRUB CC 2.12"}[bootloader])

    # -- generic ----------------------------------------------------------------------------

    def write(self, path, content):
        """Write ``content`` (str or bytes) to ``path`` (absolute, or relative to the root)."""
        path = pathlib.Path(path)
        if not path.is_absolute():
            path = self.root / path
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
        return path

    @property
    def entries_root(self):
        """Where ``loader/entries`` lives: the GRUB boot dir, or the ESP for BLS-compatible loaders."""
        return self.boot if self.bootloader == "grub" else self.esp

    @property
    def type1_root(self):
        """Where Type1 kernel dirs live: the GRUB boot dir, or ``ESP/EFI/Linux``."""
        return self.boot if self.bootloader == "grub" else self.esp / "EFI" / "Linux"

    @property
    def linux_root(self):
        """The directory prefix bootc writes in ``linux`` lines for this bootloader."""
        if self.bootloader != "grub":
            return "/EFI/Linux"
        return "" if self.separate_boot else "/boot"

    # -- kernel command line, efivars, run ---------------------------------------------------

    def cmdline(self, text):
        return self.write("proc/cmdline", text + "\n")

    def booted(self, verity, allow_missing=False, kargs=DEFAULT_KARGS):
        """Write /proc/cmdline booting ``verity``."""
        return self.cmdline("BOOT_IMAGE=(hd0,gpt2)/boot/vmlinuz %s composefs=%s%s" % (kargs, "?" if allow_missing else "", verity))

    def loader_info(self, text):
        """Write the LoaderInfo efivar: 4-byte attributes, then NUL-terminated UTF-16LE text."""
        data = (6).to_bytes(4, "little") + (text + "\0").encode("utf-16-le")
        return self.write(os.path.join("sys/firmware/efi/efivars", LOADER_INFO_NAME), data)

    def staged_marker(self, verity, locked=False):
        """Write /run/composefs/staged-deployment as bootc does (sorted keys, compact)."""
        text = json.dumps({"depl_id": verity, "finalization_locked": locked}, sort_keys=True, separators=(",", ":"))
        return self.write("run/composefs/staged-deployment", text)

    # -- state dirs --------------------------------------------------------------------------

    def state_dir(self, verity, origin="default", imginfo=None, boot_type="bls"):
        """Create ``state/deploy/<v>/{etc,var}`` and, unless ``origin`` is None, ``<v>.origin``."""
        directory = self.state / verity
        (directory / "etc").mkdir(parents=True, exist_ok=True)
        var = directory / "var"
        if not os.path.lexists(str(var)):
            os.symlink("../../os/default/var", str(var))
        if origin == "default":
            origin = origin_text(boot_type=boot_type, digest=hashlib.sha256(verity.encode()).hexdigest(),
                                 manifest_digest="sha256:" + hashlib.sha256(("manifest-" + verity).encode()).hexdigest())
        if origin is not None:
            self.write(directory / (verity + ".origin"), origin)
        if imginfo is not None:
            self.write(directory / (verity + ".imginfo"), imginfo)
        return directory

    # -- boot binaries -----------------------------------------------------------------------

    def type1_dir(self, name, prefixed=True, kernel=b"fake-kernel", initrd=b"fake-initrd"):
        """A kernel dir ``bootc_composefs-<name>/{vmlinuz,initrd}`` (or ``<name>/`` if not prefixed)."""
        directory = self.type1_root / ((PREFIX + name) if prefixed else name)
        self.write(directory / "vmlinuz", kernel)
        self.write(directory / "initrd", initrd)
        return directory

    def uki(self, name, prefixed=True, content=b"MZ-fake-uki", addons=None):
        """A UKI in ``ESP/EFI/Linux/bootc`` and, with ``addons`` (name -> bytes), its addon dir."""
        stem = (PREFIX + name) if prefixed else name
        path = self.write(self.esp / "EFI" / "Linux" / "bootc" / (stem + ".efi"), content)
        if addons is not None:
            self.addon_dir(name, prefixed=prefixed, addons=addons)
        return path

    def addon_dir(self, name, prefixed=True, addons=None):
        """An addon dir ``<stem>.efi.extra.d`` holding ``addons`` (file name -> bytes)."""
        stem = (PREFIX + name) if prefixed else name
        directory = self.esp / "EFI" / "Linux" / "bootc" / (stem + ".efi.extra.d")
        directory.mkdir(parents=True, exist_ok=True)
        for file_name, content in (addons or {"console.addon.efi": b"MZ-addon"}).items():
            self.write(directory / file_name, content)
        return directory

    # -- entries -----------------------------------------------------------------------------

    def entry(self, file_name, text, staged=False):
        """Write ``loader/entries[.staged]/<file_name>`` below the entries root."""
        directory = self.entries_root / "loader" / ("entries.staged" if staged else "entries")
        return self.write(directory / file_name, text)

    def type1_entry(self, file_name, verity, artifact=None, staged=False, **kwargs):
        """A Type1 entry for ``verity`` using the kernel dir of ``artifact`` (default: its own)."""
        kwargs.setdefault("linux_root", self.linux_root)
        return self.entry(file_name, type1_entry_text(verity, artifact or verity, **kwargs), staged=staged)

    def uki_entry(self, file_name, verity, staged=False, **kwargs):
        """A systemd-boot UKI entry for ``verity``."""
        return self.entry(file_name, uki_entry_text(verity, **kwargs), staged=staged)

    def user_cfg(self, verities, staged=False, preamble=EFIUUID_PREAMBLE, prefixed=True):
        """``grub2/user.cfg`` (or ``.staged``) with one menuentry per verity, first = default."""
        text = preamble + "".join(menuentry_text(verity, prefixed=prefixed) for verity in verities)
        return self.write(self.boot / "grub2" / ("user.cfg.staged" if staged else "user.cfg"), text)

    # -- whole deployments -------------------------------------------------------------------

    def type1_deployment(self, verity, file_name, artifact=None, staged=False, sort_key=None, version="42", origin="default"):
        """State dir + kernel dir (if new) + Type1 entry for ``verity``."""
        self.state_dir(verity, origin=origin, boot_type="bls")
        if not (self.type1_root / (PREFIX + (artifact or verity))).exists():
            self.type1_dir(artifact or verity)
        return self.type1_entry(file_name, verity, artifact=artifact, staged=staged, sort_key=sort_key, version=version)

    def uki_deployment(self, verity, file_name=None, staged=False, sort_key=None, version="42", origin="default"):
        """State dir + UKI + (systemd-boot) UKI entry for ``verity``; GRUB menus are written separately."""
        self.state_dir(verity, origin=origin, boot_type="uki")
        self.uki(verity)
        if file_name is not None:
            return self.uki_entry(file_name, verity, staged=staged, sort_key=sort_key, version=version)
        return None


class Type1History:
    """Replays bootc install / upgrade / GC on a GRUB + BLS tree (model of bootc's testutils.rs).

    Each deployment has a verity ``fake_digest(n)`` and the name of the kernel dir it boots from:
    its own for the install and kernel upgrades, the previous deployment's for userspace-only
    upgrades. Entries are rewritten after every step: newest = primary, the one before = secondary.
    """

    def __init__(self, tree, legacy=False):
        self.tree = tree
        self.legacy = legacy
        self.deployments = []
        self._add(0, artifact=fake_digest(0), version="42.20250101.0")

    def _dir_name(self, artifact):
        return artifact if self.legacy else PREFIX + artifact

    def _add(self, number, artifact, version):
        verity = fake_digest(number)
        self.tree.state_dir(verity, origin=origin_text(image="ostree-unverified-image:oci:quay.io/test/image:latest",
                                                       digest=artifact))
        directory = self.tree.boot / self._dir_name(artifact)
        if not directory.exists():
            self.tree.write(directory / "vmlinuz", b"fake-kernel")
            self.tree.write(directory / "initrd", b"fake-initrd")
        self.deployments.append({"verity": verity, "artifact": artifact, "version": version})
        self._rewrite_entries()
        return verity

    def upgrade(self, number, kernel=False):
        """Add deployment ``number``; a userspace-only upgrade shares the previous kernel dir."""
        artifact = fake_digest(number) if kernel else self.deployments[-1]["artifact"]
        return self._add(number, artifact, "4%d.20250201.0" % number)

    def gc(self, verity):
        """Drop a deployment's state dir and entry, leaving kernel dirs for the GC filter to judge."""
        shutil.rmtree(str(self.tree.state / verity))
        self.deployments = [d for d in self.deployments if d["verity"] != verity]
        self._rewrite_entries()

    def migrate(self):
        """bootc's prefix migration: rename legacy kernel dirs, rewrite entries with the prefix."""
        for item in sorted(self.tree.boot.iterdir()):
            name = item.name
            if item.is_dir() and len(name) == 64 and all(c in "0123456789abcdef" for c in name):
                item.rename(self.tree.boot / (PREFIX + name))
        self.legacy = False
        self._rewrite_entries()

    def _rewrite_entries(self):
        entries = self.tree.boot / "loader" / "entries"
        entries.mkdir(parents=True, exist_ok=True)
        for item in entries.iterdir():
            if item.name.endswith(".conf"):
                item.unlink()
        roles = [(self.deployments[-1], "1", "0")]
        if len(self.deployments) >= 2:
            roles.append((self.deployments[-2], "0", "1"))
        for deployment, release, sort_index in roles:
            text = type1_entry_text(deployment["verity"], deployment["artifact"], version=deployment["version"],
                                    title="fedora %s" % deployment["version"], sort_key="bootc-fedora-%s" % sort_index,
                                    prefixed=not self.legacy, kargs="root=UUID=test-uuid rw")
            self.tree.write(entries / ("bootc_fedora-%s-%s.conf" % (deployment["version"], release)), text)
