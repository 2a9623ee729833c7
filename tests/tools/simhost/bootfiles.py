"""The small text and binary files bootc writes on a composefs host, rendered as bootc renders them.

Pure functions (value -> text/bytes); ``layout.py`` decides where they go. Spec:
bootc-composefs-host.md §1.4 (origin), §1.5 (imginfo), §1.6 (staged marker), §1.7 (entries, GRUB
menu, LoaderInfo). Upstream (read, not copied): bootc ``bootc_composefs/boot.rs``
(``setup_composefs_bls_boot``, ``write_grub_uki_menuentry``, ``write_systemd_uki_config``,
``type1_entry_conf_file_name``, sort keys), ``state.rs`` (``write_composefs_state``),
``parsers/bls_config.rs`` (``Display``), ``parsers/grub_menuconfig.rs`` (``MenuEntry``),
composefs-rs ``composefs-boot/src/os_release.rs`` and ``uki.rs`` (boot label).

Renderings:

* BLS entry: ``title``, ``version``, then ``linux``, one ``initrd`` line each and ``options``
  (Type1) or ``uki``/``efi`` (UKI), then ``sort-key``; every line ends in ``\\n``.
* entry file name: ``bootc_<ID with - as _>-<version>-<1 primary / 0 otherwise>.conf``;
  sort key ``bootc-<ID>-<menu position>`` (0 = primary, 1 = secondary).
* ``.origin``: tini keyfile, ``[section]``, ``key = value``, one blank line between sections, no
  final newline. ``.imginfo``: compact JSON ``{"config":...,"manifest":...}`` in that order.
* staged marker: canonical JSON ``{"depl_id":"<v>","finalization_locked":false}``.
* ``grub2/user.cfg``: the preamble sourcing ``efiuuid.cfg``, then menuentries with unindented
  bodies; ``grub2/efiuuid.cfg``: ``set EFI_PART_UUID="<ESP fs UUID>"`` (no final newline).
* ``loader/loader.conf``: ``timeout 5`` (bootc's UKI path writes it when missing).
* LoaderInfo efivar: u32 attributes (little-endian), then NUL-terminated UTF-16LE text.
"""

from __future__ import annotations

import json

PREFIX = "bootc_composefs-"
UKI_DIR = "EFI/Linux/bootc"
TYPE1_ESP_DIR = "EFI/Linux"
LOADER_INFO_VARIABLE = "LoaderInfo-4a67b082-0a4c-41cf-b6c7-440b29bb8c4f"
# EFI_VARIABLE_BOOTSERVICE_ACCESS | EFI_VARIABLE_RUNTIME_ACCESS
EFIVAR_ATTRIBUTES = 0x6
SYSTEMD_LOADER_INFO = "systemd-boot 258.2"
LOADER_CONF = "timeout 5"
ESP_FS_UUID = "5A1D-B00C"
ROOT_FS_UUID = "6b2f0b2e-5d6e-4c1a-9f3e-3d7c2a1b0c9d"
BOOT_FS_UUID = "0e8d3c6a-2b1f-4e7d-8a9c-1f2e3d4c5b6a"
GRUB_PREAMBLE = (
    "\n"
    "if [ -f ${config_directory}/efiuuid.cfg ]; then\n"
    "        source ${config_directory}/efiuuid.cfg\n"
    "fi\n"
)
GRUB_PASSWORD_USER_CFG = ("GRUB2_PASSWORD=grub.pbkdf2.sha512.10000."
                          "3A0D6E8C4B2F19A7D5E3C1B0F9A8E7D6C5B4A39281706F5E4D3C2B1A09F8E7D6."
                          "8C7B6A5F4E3D2C1B0A9F8E7D6C5B4A3928170F6E5D4C3B2A1908F7E6D5C4B3A2\n")

# Foreign BLS entries (bootc#2228): neither has composefs= nor a bootc UKI path.
FOREIGN_ENTRIES = {
    "fwupd": ("fwupd.conf", "title Firmware Updater\nversion 1.9.21\nefi /EFI/fedora/fwupdx64.efi\n"),
    "memtest86+": ("memtest86+.conf", "title Memtest86+ 7.20\nversion 7.20\nlinux /memtest86+/memtest.efi\n"),
}


def parse_os_release(data: bytes) -> dict:
    """``{KEY: value}`` of os-release text: ``KEY=value`` lines, one level of quotes removed."""
    values = {}
    for line in data.decode("utf-8", "replace").splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _sep, value = line.partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        values[key.strip()] = value
    return values


def os_id(os_release: dict) -> str:
    """``ID``, default ``bootc`` (bootc's ``parse_os_release``)."""
    return os_release.get("ID") or "bootc"


def pretty_name(os_release: dict):
    """``PRETTY_NAME``, else ``NAME``, else ``ID``; None when none is set."""
    for key in ("PRETTY_NAME", "NAME", "ID"):
        if os_release.get(key):
            return os_release[key]
    return None


def os_version(os_release: dict):
    """``VERSION_ID``, else ``VERSION``; None when neither is set."""
    for key in ("VERSION_ID", "VERSION"):
        if os_release.get(key):
            return os_release[key]
    return None


def boot_label(os_release: dict) -> str:
    """A UKI's boot label: pretty name, then a space and the version when there is one."""
    label = pretty_name(os_release) or "Unknown"
    version = os_version(os_release)
    return "%s %s" % (label, version) if version else label


def entry_file_name(os_identifier: str, version: str, primary: bool) -> str:
    """``bootc_<os_>-<version>-<1|0>.conf`` (``-`` in the OS id turned into ``_`` for GRUB's split)."""
    return "bootc_%s-%s-%s.conf" % (os_identifier.replace("-", "_"), version, "1" if primary else "0")


def sort_key(os_identifier: str, position: int) -> str:
    """``bootc-<os>-<position>``: 0 for the primary entry, 1 for the secondary (systemd-boot sorts ascending)."""
    return "bootc-%s-%d" % (os_identifier, position)


def render_bls_entry(title, version, linux=None, initrd=(), options=None, efi=None, efi_key="uki", sort_key_value=None) -> str:
    """A BLS ``.conf`` entry in bootc's field order: Type1 when ``linux`` is given, else EFI (``efi_key``)."""
    lines = []
    if title is not None:
        lines.append("title %s" % title)
    lines.append("version %s" % version)
    if linux is not None:
        lines.append("linux %s" % linux)
        lines.extend("initrd %s" % path for path in initrd)
        if options is not None:
            lines.append("options %s" % options)
    else:
        lines.append("%s %s" % (efi_key, efi))
    if sort_key_value is not None:
        lines.append("sort-key %s" % sort_key_value)
    return "".join(line + "\n" for line in lines)


def set_sort_key(text: str, value: str) -> str:
    """``text`` (a rendered entry) with its ``sort-key`` line replaced (bootc re-keys the booted entry)."""
    lines = [line for line in text.splitlines() if not line.startswith("sort-key ")]
    return "".join(line + "\n" for line in lines) + "sort-key %s\n" % value


def composefs_karg(verity: str, allow_missing_verity: bool) -> str:
    """``composefs=<v>``, or ``composefs=?<v>`` when fs-verity is optional (insecure repository)."""
    return "composefs=%s%s" % ("?" if allow_missing_verity else "", verity)


def render_origin(image_reference, boot_type: str, boot_digest, manifest_digest=None) -> str:
    """A ``<v>.origin`` keyfile as tini writes it; ``manifest_digest`` None gives a legacy origin."""
    sections = []
    if image_reference is not None:
        sections.append(("origin", (("container-image-reference", image_reference),)))
    boot = [("boot_type", boot_type)]
    if boot_digest is not None:
        boot.append(("digest", boot_digest))
    sections.append(("boot", tuple(boot)))
    if manifest_digest is not None:
        sections.append(("image", (("manifest_digest", manifest_digest),)))
    return "\n\n".join("[%s]\n%s" % (name, "\n".join("%s = %s" % item for item in items)) for name, items in sections)


def render_imginfo(config_bytes: bytes, manifest_bytes: bytes) -> str:
    """A legacy ``<v>.imginfo``: compact JSON of ``config`` then ``manifest`` (member order kept)."""
    document = {"config": json.loads(config_bytes), "manifest": json.loads(manifest_bytes)}
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False)


def render_staged_marker(verity: str, finalization_locked: bool = False) -> str:
    """``/run/composefs/staged-deployment``: canonical JSON (sorted keys, no whitespace)."""
    return json.dumps({"depl_id": verity, "finalization_locked": finalization_locked}, sort_keys=True, separators=(",", ":"))


def image_reference(transport: str, name: str) -> str:
    """The origin's ``container-image-reference``: ``ostree-unverified-image:`` + ``<transport>:<name>``."""
    if transport == "registry":
        return "ostree-unverified-image:docker://%s" % name
    return "ostree-unverified-image:%s:%s" % (transport, name)


def uki_file_name(verity: str) -> str:
    """``bootc_composefs-<v>.efi``."""
    return PREFIX + verity + ".efi"


def addon_dir_name(verity: str) -> str:
    """``bootc_composefs-<v>.efi.extra.d``."""
    return PREFIX + verity + ".efi.extra.d"


def uki_efi_path(verity: str) -> str:
    """The ESP-absolute path an entry or menuentry names: ``/EFI/Linux/bootc/bootc_composefs-<v>.efi``."""
    return "/%s/%s" % (UKI_DIR, uki_file_name(verity))


def render_menuentry(label: str, verity: str) -> str:
    """One GRUB menuentry chainloading the UKI of ``verity`` (bodies unindented, as bootc writes them)."""
    return ('menuentry "%s: (%s)" {\n'
            "insmod fat\n"
            "insmod chain\n"
            'search --no-floppy --set=root --fs-uuid "${EFI_PART_UUID}"\n'
            "chainloader %s\n"
            "}\n") % (label, verity, uki_efi_path(verity))


def render_user_cfg(menuentries) -> str:
    """``grub2/user.cfg`` (or ``.staged``): the preamble then the rendered menuentries, first = default."""
    return GRUB_PREAMBLE + "".join(menuentries)


def render_efiuuid_cfg(uuid: str = ESP_FS_UUID) -> str:
    """``grub2/efiuuid.cfg``: the ESP's filesystem UUID for ``search --fs-uuid``."""
    return 'set EFI_PART_UUID="%s"' % uuid


def encode_efivar(text: str, attributes: int = EFIVAR_ATTRIBUTES) -> bytes:
    """An efivarfs file: u32 attributes (LE) then ``text`` as NUL-terminated UTF-16LE."""
    return attributes.to_bytes(4, "little") + (text + "\0").encode("utf-16-le")


def render_mountinfo(booted_verity: str, separate_boot: bool, esp_mounted: bool) -> str:
    """``/proc/self/mountinfo`` of the booted host: composefs ``/`` plus /sysroot, /etc, /var, /boot..."""
    lines = [
        "22 1 0:21 / / ro,relatime shared:1 - overlay composefs:%s ro,seclabel,lowerdir+=/run/composefs/erofs,"
        "datadir+=/sysroot/composefs/objects,redirect_dir=on,metacopy=on" % booted_verity,
        "23 22 252:3 / /sysroot ro,relatime shared:2 - ext4 /dev/vda3 ro,seclabel",
        "24 22 252:3 /state/deploy/%s/etc /etc rw,relatime shared:3 - ext4 /dev/vda3 rw,seclabel" % booted_verity,
        "25 22 252:3 /state/os/default/var /var rw,relatime shared:4 - ext4 /dev/vda3 rw,seclabel",
        "26 22 0:25 / /run rw,nosuid,nodev shared:5 - tmpfs tmpfs rw,seclabel,mode=755",
    ]
    if separate_boot:
        lines.append("27 22 252:2 / /boot rw,relatime shared:6 - ext4 /dev/vda2 rw,seclabel")
    if esp_mounted:
        lines.append("28 %s 252:1 / /boot/efi rw,relatime shared:7 - vfat /dev/vda1 rw,fmask=0077,dmask=0077,codepage=437"
                     % ("27" if separate_boot else "22"))
    return "\n".join(lines) + "\n"
