"""Images of the simulated host: ocigen OCI layouts imported into the host's composefs repository.

Each bootc image goes through what bootc's pull does (spec bootc-composefs-host.md §5.5): import
(``oci.importer``, an ``oci:`` pull), tag ``localhost/bootc-<manifest digest>``, generate the boot
EROFS (``oci.boot.generate_boot_image``; its object id is the deployment verity), then read the
boot resources of the untransformed tree (kernel + initrd + os-release, or the UKI and its addons):
``read_boot_image``, which the bootc test double (tests/tools/bootc_double.py) uses too.

UKI images are built the way UKI images are: in two stages. The boot EROFS ignores ``/boot``
(composefs-boot empties it), so the image is first built without a UKI and imported into a
scratch repository to learn its boot verity V; then the UKI, whose ``.cmdline`` says
``composefs=?V``, is added under ``/boot/EFI/Linux`` and the final image is imported into the host
repository, where its boot verity must again be V (checked). The UKIs are PE images without code
(``ocigen.build_uki``): every section bootc reads is real, but no firmware could boot them.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass, field, replace

import ocigen
from ansible_collections.bootc.composefs.plugins.module_utils.formats import tree
from ansible_collections.bootc.composefs.plugins.module_utils.oci import boot, filesystem, importer, tags
from ansible_collections.bootc.composefs.plugins.module_utils.oci import image as oci_image
from ansible_collections.bootc.composefs.plugins.module_utils.repository.repo import Repository
from simhost import bootfiles

# Kernel arguments a UKI carries besides composefs= (UKIs boot with root discovery, no root=).
UKI_KARGS = "rw console=ttyS0"
# Command lines of the addons ``uki_addons`` may name; any other name gets ``simhost.addon=<name>``.
ADDON_CMDLINES = {
    "console": "console=ttyS0,115200 earlyprintk=ttyS0",
    "debug": "debug systemd.log_level=debug",
    "fips": "fips=1",
}
VERSION_KEY = "org.opencontainers.image.version"


@dataclass
class BootcImage:
    """A bootc image in the host repository and what bootc would read from it."""

    version: str
    kernel_version: str
    os_id: str
    layout_tag: str
    manifest_digest: str
    config_digest: str
    manifest_bytes: bytes
    config_bytes: bytes
    verity: str
    diff_ids: tuple
    os_release: dict
    boot_type: str
    boot_digest: str
    vmlinuz: bytes = b""
    initrd: bytes = b""
    uki: bytes = b""
    uki_cmdline: str = ""
    addons: dict = field(default_factory=dict)
    root: object = None

    @property
    def bootc_tag(self) -> str:
        """``localhost/bootc-<manifest digest>``."""
        return tags.bootc_tag(self.manifest_digest)


@dataclass
class AppImage:
    """A non-bootc image imported under its own tag."""

    tag: str
    manifest_digest: str
    config_digest: str


def payload_bytes(seed: str, size: int) -> bytes:
    """``size`` deterministic bytes unique to ``seed`` (incompressible, so never deduplicated)."""
    if size <= 0:
        return b""
    blocks = []
    counter = 0
    while len(blocks) * 32 < size:
        blocks.append(hashlib.sha256(("%s/%d" % (seed, counter)).encode()).digest())
        counter += 1
    return b"".join(blocks)[:size]


def addon_cmdline(name: str) -> str:
    """The ``.cmdline`` of UKI addon ``name``."""
    return ADDON_CMDLINES.get(name, "simhost.addon=%s" % name)


class ImageFactory:
    """Builds images into one OCI layout and imports them into the host repository."""

    def __init__(self, repo, layout_dir: str, scratch_dir: str, allow_missing_verity: bool) -> None:
        self.repo = repo
        self.layout_dir = layout_dir
        self.scratch_dir = scratch_dir
        self.allow_missing_verity = allow_missing_verity
        self.versions = set()

    def fresh_version(self, base: str) -> str:
        """A version string not used by any image built so far (``base``, ``base.1``, ...)."""
        candidate, number = base, 0
        while candidate in self.versions:
            number += 1
            candidate = "%s.%d" % (base, number)
        return candidate

    def _scratch_verity(self, os_id: str, version: str, layer_args: dict) -> str:
        """The boot verity of the image without UKI, from a throw-away layout and repository."""
        work = tempfile.mkdtemp(prefix="uki-stage1-", dir=self.scratch_dir)
        try:
            layout = os.path.join(work, "oci")
            written = ocigen.write_bootc_image(layout, version=version, name=os_id, tag="stage1", **layer_args)
            with Repository.init(os.path.join(work, "repo"), erofs_default=1, insecure=True) as scratch:
                importer.import_oci_layout(scratch, layout, ref="stage1")
                return boot.generate_boot_image(scratch, written["manifest_digest"])
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def write_layout_image(self, version: str, kernel_version: str, os_id: str = "simos", boot_type: str = "bls",
                           addons=(), payload_size: int = 0) -> tuple:
        """Write a bootc image into the OCI layout only; return ``(ocigen result, layout tag, UKI cmdline, verity)``.

        The verity is known beforehand for UKI images only (stage 1, see the module docstring).
        """
        if version in self.versions:
            raise ValueError("image version %r is built twice" % version)
        self.versions.add(version)
        layout_tag = "%s-%s" % (os_id, version)
        layer_args = {"kernel_version": kernel_version}
        payload = payload_bytes("%s-%s" % (os_id, version), payload_size)
        if payload:
            layer_args["payload"] = payload
        if boot_type != "uki":
            written = ocigen.write_bootc_image(self.layout_dir, version=version, name=os_id, tag=layout_tag, **layer_args)
            return written, layout_tag, "", None
        expected_verity = self._scratch_verity(os_id, version, layer_args)
        uki_cmdline = "%s %s" % (UKI_KARGS, bootfiles.composefs_karg(expected_verity, self.allow_missing_verity))
        vmlinuz, initrd = ocigen.default_kernel(kernel_version)
        uki = ocigen.build_uki(uki_cmdline, ocigen.bootc_os_release(os_id, version), vmlinuz, initrd, uname=kernel_version)
        addon_files = {name: ocigen.build_uki_addon(addon_cmdline(name)) for name in addons}
        written = ocigen.write_bootc_uki_image(self.layout_dir, version=version, name=os_id, uki=uki,
                                               uki_name="%s-%s" % (os_id, kernel_version), addons=addon_files,
                                               tag=layout_tag, **layer_args)
        return written, layout_tag, uki_cmdline, expected_verity

    def bootc_image(self, version: str, kernel_version: str, os_id: str = "simos", boot_type: str = "bls",
                    addons=(), payload_size: int = 0, tag_bootc: bool = True) -> BootcImage:
        """Build, import, tag and boot-prepare one bootc image; see the module docstring."""
        written, layout_tag, uki_cmdline, expected_verity = self.write_layout_image(version, kernel_version, os_id, boot_type,
                                                                                    addons, payload_size)
        manifest_digest = written["manifest_digest"]
        importer.import_oci_layout(self.repo, self.layout_dir, ref=layout_tag)
        if tag_bootc:
            tags.tag_image(self.repo, manifest_digest, tags.bootc_tag(manifest_digest))
        image = read_boot_image(self.repo, manifest_digest, boot_type)
        if expected_verity is not None and image.verity != expected_verity:
            raise RuntimeError("UKI image %s: boot verity %s differs from the stage-1 verity %s baked into its UKI"
                               % (version, image.verity, expected_verity))
        return replace(image, version=version, kernel_version=kernel_version, os_id=os_id, layout_tag=layout_tag,
                       uki_cmdline=uki_cmdline)

    def app_image(self, tag: str, version: str, payload_size: int = 0) -> AppImage:
        """Build and import an application image under ``tag`` (no boot image, no bootc tag)."""
        name = tag.rsplit("/", 1)[-1].split(":", 1)[0] or "app"
        layout_tag = "app-%s-%s" % (name, version)
        written = ocigen.write_image(self.layout_dir, ocigen.app_layers(name, version, payload_bytes(layout_tag, payload_size)),
                                     tag=layout_tag, labels={"org.opencontainers.image.title": name},
                                     annotations={"org.opencontainers.image.version": version})
        importer.import_oci_layout(self.repo, self.layout_dir, ref=layout_tag, tag=tag)
        return AppImage(tag=tag, manifest_digest=written["manifest_digest"], config_digest=written["config_digest"])


def read_boot_image(repo, manifest_digest: str, boot_type=None) -> BootcImage:
    """What bootc reads from a pulled image to deploy it (spec bootc-composefs-host.md §5.5), as a ``BootcImage``.

    Generates the boot EROFS when it is missing (its object id is the deployment verity), then reads
    the untransformed tree: ``/usr/lib/os-release``, and the kernel and initrd of the first
    ``/usr/lib/modules/<kver>/`` (``boot_type`` ``bls``) or the UKI under ``/boot/EFI/Linux`` and its
    addons (``uki``). ``boot_type`` None chooses as bootc does: ``uki`` when the image has a UKI, else
    ``bls``. ``version`` is the image's ``org.opencontainers.image.version`` (manifest annotation, else
    config label), ``kernel_version`` the kernel's directory name, ``layout_tag`` and ``uki_cmdline``
    are empty. Raises ``RuntimeError`` when the image has no kernel of that boot type.
    """
    verity = boot.generate_boot_image(repo, manifest_digest)
    opened = oci_image.open_image(repo, manifest_digest)
    root = filesystem.create_filesystem(repo, opened)

    def read(node):
        return boot.read_file(repo, node)

    resources = boot.find_boot_resources(root, read)
    ukis = [r for r in resources if r.kind == boot.KIND_UKI]
    kernels = [r for r in resources if r.kind == boot.KIND_VMLINUZ]
    if boot_type is None:
        boot_type = "uki" if ukis else "bls"
    os_release_node = tree.lookup(root, b"/usr/lib/os-release")
    os_release = bootfiles.parse_os_release(read(os_release_node)) if os_release_node is not None else {}
    config = (opened.config or {}).get("config") or {}
    version = ((opened.manifest.get("annotations") or {}).get(VERSION_KEY) or (config.get("Labels") or {}).get(VERSION_KEY) or "")
    image = BootcImage(version=version, kernel_version="", os_id=bootfiles.os_id(os_release), layout_tag="",
                       manifest_digest=manifest_digest, config_digest=opened.config_digest, manifest_bytes=opened.manifest_bytes,
                       config_bytes=opened.config_bytes, verity=verity, diff_ids=opened.diff_ids, os_release=os_release,
                       boot_type=boot_type, boot_digest="", root=root)
    if boot_type == "uki":
        if not ukis:
            raise RuntimeError("image %s has no UKI under /boot/EFI/Linux" % manifest_digest)
        image.kernel_version = ukis[0].kver or ""
        image.uki = read(next(iter(ukis[0].files.values())))
        for resource in resources:
            if resource.kind == boot.KIND_UKI_ADDON:
                image.addons[resource.path.rsplit("/", 1)[1]] = read(next(iter(resource.files.values())))
        sections = ocigen.read_pe_sections(image.uki)
        image.boot_digest = boot.boot_digest(sections[".linux"], sections[".initrd"])
        return image
    if not kernels:
        raise RuntimeError("image %s has no /usr/lib/modules/<kver>/vmlinuz" % manifest_digest)
    files = kernels[0].read(repo)
    image.kernel_version = kernels[0].kver or ""
    image.vmlinuz = files["vmlinuz"]
    image.initrd = files["initramfs.img"]
    image.boot_digest = kernels[0].boot_digest(repo)
    return image


def extract_tree(repo, node, destination: str) -> int:
    """Write the tree ``node`` (a directory) to ``destination`` like ``cp -a`` would; return the files written.

    Regular files, directories and symlinks with their modes and mtimes; hard links become copies;
    devices, fifos, sockets, ownership and xattrs are skipped (a test tree runs unprivileged).
    """
    count = 0
    os.makedirs(destination, exist_ok=True)
    directories = [(node, destination)]
    index = 0
    while index < len(directories):
        directory, path = directories[index]
        index += 1
        for name, child in directory.sorted_entries():
            target = os.path.join(path, os.fsdecode(name))
            if isinstance(child, tree.Directory):
                os.makedirs(target, exist_ok=True)
                directories.append((child, target))
            elif isinstance(child, tree.RegularFile):
                with open(target, "wb") as handle:
                    handle.write(boot.read_file(repo, child))
                os.chmod(target, child.stat.permissions)
                os.utime(target, ns=(child.stat.mtime * 10**9 + child.stat.mtime_nsec,) * 2)
                count += 1
            elif isinstance(child, tree.Symlink):
                os.symlink(os.fsdecode(child.target), target)
    for directory, path in reversed(directories):
        os.chmod(path, directory.stat.permissions)
        os.utime(path, ns=(directory.stat.mtime * 10**9 + directory.stat.mtime_nsec,) * 2)
    return count
