# -*- coding: utf-8 -*-
# Copyright: (c) 2026, bootc.composefs maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The boot EROFS image of a pulled OCI image (its verity is the deployment id) and the boot resources.

Layer: oci. Spec: ``composefs-repo.md`` section 10.7, ``bootc-composefs-host.md`` sections 0 and
5.5; upstream: composefs-rs ``crates/composefs-oci/src/boot.rs`` (``generate_boot_image``),
``lib.rs`` (``ensure_oci_composefs_erofs_boot``), ``crates/composefs-boot/src/lib.rs``
(``transform_for_boot``, ``empty_toplevel_dirs``) and ``bootloader.rs`` (``get_boot_resources``);
bootc ``crates/lib/src/bootc_composefs/repo.rs`` (``pull_composefs_repo``) and ``boot.rs``
(``compute_boot_digest``).

``transform_for_boot``, applied to the ``transform_for_oci``-ed tree (root metadata from
``/usr``, ``/run`` emptied, xattrs filtered to ``security.capability`` (+ ``user.*`` in
``keep-user-xattrs`` mode)):

1. ``/boot`` and ``/sysroot`` are emptied and their mtime *seconds* set to ``/usr``'s (the
   nanoseconds are kept); both must exist as directories, as must ``/usr`` (UKIs in ``/boot``
   carry the image digest, so they cannot be inside the image; ``/sysroot`` is skipped for
   labelling, composefs-rs issue 164);
2. SELinux labels from the image's own policy (``selabel.py``), or every ``security.selinux``
   removed when the image has no policy.

The boot images (one per configured EROFS format) are recorded on the config stream as
``composefs.image.boot.v1`` (V1) / ``composefs.image.boot`` (V2), with ``.xattrs=keep-user-xattrs``
appended in that mode, keeping every other ``composefs.image*`` key; config then manifest streams
are rewritten (``streams.rewrite_image_streams``). An existing key is returned as is.

Boot resources, found in the *untransformed* tree in this order (the first decides the boot type
for bootc: a UKI means UKI boot, a kernel alone BLS, a Type 1 entry in the image is refused):

============== ====================================================== ================================
kind           where                                                  files
============== ====================================================== ================================
``type1``      ``/boot/loader/entries/*.conf``                        the entry, and the files its
                                                                      ``linux``/``initrd``/``efi`` lines
                                                                      name (must exist)
``uki``        ``*.efi`` below ``/boot/EFI/Linux`` and below each     the PE file
               ``/usr/lib/modules/<kver>/``
``uki-addon``  ``*.addon.efi`` there                                  the PE file
``global-uki-  ``*.efi`` below ``/boot/loader/addons``                the PE file
addon``
``vmlinuz``    ``/usr/lib/modules/<kver>/vmlinuz``                    ``vmlinuz``, ``initramfs.img``
                                                                      and ``/usr/lib/os-release`` when
                                                                      present
============== ====================================================== ================================

The *boot digest* of a kernel is the sha256 of the ``vmlinuz`` bytes followed by the
``initramfs.img`` bytes (bootc shares a Type 1 boot directory between deployments whose digests
are equal).
"""

from __future__ import annotations

import hashlib
from typing import NamedTuple

from ansible_collections.bootc.composefs.plugins.module_utils.errors import FormatError
from ansible_collections.bootc.composefs.plugins.module_utils.formats import tree
from ansible_collections.bootc.composefs.plugins.module_utils.oci import filesystem, selabel, streams
from ansible_collections.bootc.composefs.plugins.module_utils.oci.image import (
    XATTRS_ALLOWLIST_ONLY,
    boot_image_ref_key,
    open_image,
)

__all__ = [
    "TOPLEVEL_DIRS_TO_EMPTY",
    "BootResource",
    "read_file",
    "boot_digest",
    "transform_for_boot",
    "find_boot_resources",
    "generate_boot_image",
    "boot_resources",
]

TOPLEVEL_DIRS_TO_EMPTY = (b"boot", b"sysroot")
EFI_SUFFIX = b".efi"
EFI_ADDON_SUFFIX = b".addon.efi"
ENTRY_SUFFIX = b".conf"
TYPE1_FILE_KEYS = ("linux", "initrd", "efi")
KIND_TYPE1 = "type1"
KIND_UKI = "uki"
KIND_UKI_ADDON = "uki-addon"
KIND_GLOBAL_UKI_ADDON = "global-uki-addon"
KIND_VMLINUZ = "vmlinuz"
# (directory, addons found there are global) searched for UKIs, in composefs-boot's order
UKI_DIRECTORIES = ((b"/boot/EFI/Linux", False), (b"/boot/loader/addons", True))
MODULES_DIRECTORY = b"/usr/lib/modules"
OS_RELEASE = b"/usr/lib/os-release"


class BootResource(NamedTuple):
    """One boot resource of an image: ``files`` maps a name (``vmlinuz``, an image path...) to its node."""

    kind: str
    path: str
    kver: str | None
    files: dict

    def read(self, repo) -> dict:
        """Return ``{name: bytes}`` of the resource's files (from inline content or repository objects)."""
        return {name: read_file(repo, node) for name, node in self.files.items()}

    def boot_digest(self, repo) -> str:
        """Return the boot digest of a ``vmlinuz`` resource (needs ``initramfs.img``)."""
        if self.kind != KIND_VMLINUZ or "initramfs.img" not in self.files:
            raise FormatError("%s has no initramfs.img next to it: no boot digest" % self.path)
        return boot_digest(read_file(repo, self.files["vmlinuz"]), read_file(repo, self.files["initramfs.img"]))


def read_file(repo, node: tree.RegularFile) -> bytes:
    """Return a tree file's bytes: inline content, or the repository object its digest names."""
    if node.content is not None:
        return bytes(node.content)
    if node.size == 0:
        return b""
    if node.fsverity_digest is None:
        raise FormatError("file of %d bytes has neither inline content nor an object digest" % node.size)
    data = repo.read_object(node.fsverity_digest.hex())
    if len(data) != node.size:
        raise FormatError("object %s is %d bytes, the image says %d" % (node.fsverity_digest.hex(), len(data), node.size))
    return data


def boot_digest(vmlinuz: bytes, initrd: bytes) -> str:
    """Return bootc's boot digest: hex sha256 of the kernel bytes followed by the initrd bytes."""
    hasher = hashlib.sha256(vmlinuz)
    hasher.update(initrd)
    return hasher.hexdigest()


def _directory(root: tree.Directory, path: bytes) -> tree.Directory | None:
    node = tree.lookup(root, path)
    if node is None:
        return None
    if not isinstance(node, tree.Directory):
        raise FormatError("%s is not a directory in the image" % path.decode("utf-8", "replace"))
    return node


def transform_for_boot(root: tree.Directory, repo) -> None:
    """Apply composefs-boot's ``transform_for_boot`` to ``root`` (see the module docstring)."""
    usr = root.entries.get(b"usr")
    if not isinstance(usr, tree.Directory):
        raise FormatError("the image has no /usr directory; it cannot be booted")
    find_boot_resources(root, lambda node: read_file(repo, node))
    for name in TOPLEVEL_DIRS_TO_EMPTY:
        directory = root.entries.get(name)
        if not isinstance(directory, tree.Directory):
            raise FormatError("the image has no /%s directory, which a bootable image must have (composefs-boot empties "
                              "/boot and /sysroot)" % name.decode())
        directory.stat.mtime = usr.stat.mtime
        directory.entries.clear()
    selabel.selabel(root, lambda node: read_file(repo, node))


def _type1_entries(root: tree.Directory, read) -> list:
    entries_dir = _directory(root, b"/boot/loader/entries")
    found = []
    for name, node in (entries_dir.sorted_entries() if entries_dir is not None else []):
        if not name.endswith(ENTRY_SUFFIX):
            continue
        path = "/boot/loader/entries/" + name.decode("utf-8", "surrogateescape")
        if not isinstance(node, tree.RegularFile):
            raise FormatError("%s is not a regular file" % path)
        try:
            text = read(node).decode("utf-8")
        except UnicodeDecodeError:
            raise FormatError("%s is not UTF-8" % path) from None
        files = {path: node}
        for line in text.split("\n"):
            for key in TYPE1_FILE_KEYS:
                rest = line[len(key):] if line.startswith(key) else ""
                if rest[:1].isspace() and rest[:1].isascii():
                    target = rest.lstrip()
                    linked = tree.lookup(root, target.encode("utf-8"))
                    if not isinstance(linked, tree.RegularFile):
                        raise FormatError("%s names %s, which is not a regular file in the image" % (path, target))
                    files[target] = linked
        found.append(BootResource(KIND_TYPE1, path, None, files))
    return found


def _ukis(directory: tree.Directory, path: bytes, kver: str | None, global_addons: bool, found: list) -> None:
    for name, node in directory.sorted_entries():
        full = path + b"/" + name
        if isinstance(node, tree.Directory):
            _ukis(node, full, kver, global_addons, found)
            continue
        if not name.endswith(EFI_SUFFIX):
            continue
        text = full.decode("utf-8", "surrogateescape")
        if not isinstance(node, tree.RegularFile):
            raise FormatError("%s is not a regular file" % text)
        if name.endswith(EFI_ADDON_SUFFIX):
            kind = KIND_GLOBAL_UKI_ADDON if global_addons else KIND_UKI_ADDON
        else:
            kind = KIND_UKI
        found.append(BootResource(kind, text, kver, {text: node}))


def _kver(name: bytes) -> str:
    try:
        return name.decode("utf-8")
    except UnicodeDecodeError:
        raise FormatError("kernel directory name %r in /usr/lib/modules is not UTF-8" % (name,)) from None


def find_boot_resources(root: tree.Directory, read) -> list:
    """Return the :class:`BootResource` list of an untransformed tree, in composefs-boot's order.

    ``read(node)`` returns a file's bytes (only Type 1 entry files are read here).
    """
    found = _type1_entries(root, read)
    ukis = []
    for path, global_addons in UKI_DIRECTORIES:
        directory = _directory(root, path)
        if directory is not None:
            _ukis(directory, path, None, global_addons, ukis)
    modules = _directory(root, MODULES_DIRECTORY)
    kernels = []
    for name, node in (modules.sorted_entries() if modules is not None else []):
        if not isinstance(node, tree.Directory):
            continue
        kver = _kver(name)
        base = MODULES_DIRECTORY + b"/" + name
        _ukis(node, base, kver, False, ukis)
        vmlinuz = node.entries.get(b"vmlinuz")
        if isinstance(vmlinuz, tree.RegularFile):
            files = {"vmlinuz": vmlinuz}
            initramfs = node.entries.get(b"initramfs.img")
            if isinstance(initramfs, tree.RegularFile):
                files["initramfs.img"] = initramfs
            os_release = tree.lookup(root, OS_RELEASE)
            if isinstance(os_release, tree.RegularFile):
                files["os-release"] = os_release
            kernels.append(BootResource(KIND_VMLINUZ, (base + b"/vmlinuz").decode("utf-8"), kver, files))
    return found + ukis + kernels


def generate_boot_image(repo, manifest_digest: str, xattr_mode: str = XATTRS_ALLOWLIST_ONLY) -> str:
    """Return the boot EROFS image object id (the deployment verity) of a pulled image, creating it if needed.

    Idempotent: when the config already records the key of the repository's default format (and
    the image is there), that id is returned and nothing is written.
    """
    image = open_image(repo, manifest_digest)
    if not image.is_container_image:
        raise FormatError("manifest %s is an artifact (config media type %r); only container images boot"
                          % (manifest_digest, image.config_media_type))
    versions = filesystem.erofs_versions(repo)
    key = boot_image_ref_key(versions[0], xattr_mode)
    existing = image.erofs_refs.get(key)
    if existing is not None and repo.has_object(existing) and repo.image_object_id(existing) is not None:
        return existing
    root = filesystem.create_filesystem(repo, image, xattr_mode)
    transform_for_boot(root, repo)
    written = filesystem.write_erofs_images(repo, root, versions, key_for=lambda v: boot_image_ref_key(v, xattr_mode))
    erofs_refs = dict(image.erofs_refs)
    erofs_refs.update(written)
    streams.rewrite_image_streams(repo, image, erofs_refs)
    return written[key]


def boot_resources(repo, manifest_digest: str) -> list:
    """Return the boot resources of a pulled image's untransformed tree (what bootc lays out after a pull)."""
    root = filesystem.create_filesystem(repo, open_image(repo, manifest_digest))
    return find_boot_resources(root, lambda node: read_file(repo, node))
