"""Generate small, real OCI images (image layout directories) for tests, the demo and Molecule.

This is test tooling, independent of the collection's library: layers are written with Python's
``tarfile`` and ``gzip``, blobs are named by their sha256, and the layout is what ``skopeo`` and
``podman`` read (``oci:<dir>:<tag>``). Everything is deterministic: the same spec gives the same
digests, so tests can build an image twice and expect the same manifest digest.

An image is described by a list of layers; a layer is a list of entries:

    ("dir", "usr/lib", {"mode": 0o755})
    ("file", "usr/lib/os-release", b"ID=simos\\n", {"mode": 0o644, "xattrs": {"user.k": b"v"}})
    ("symlink", "bin", "usr/bin")
    ("hardlink", "usr/bin/b", "usr/bin/a")
    ("whiteout", "etc/old.conf")          -> .wh.old.conf
    ("opaque", "var/cache")               -> var/cache/.wh..wh..opq
    ("fifo", "run/fifo") / ("chr", "dev/null", 1, 3)
"""

import gzip
import hashlib
import io
import json
import os
import pathlib
import struct
import tarfile

MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
MEDIA_LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
MEDIA_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
FIXED_MTIME = 1700000000


def _json_bytes(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def _sha256(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _tarinfo(name, kind, opts):
    info = tarfile.TarInfo(name)
    info.mtime = opts.get("mtime", FIXED_MTIME)
    info.uid = opts.get("uid", 0)
    info.gid = opts.get("gid", 0)
    info.uname = info.gname = ""
    info.type = kind
    xattrs = opts.get("xattrs")
    if xattrs:
        info.pax_headers = {"SCHILY.xattr." + k: v.decode("utf-8", "surrogateescape") if isinstance(v, bytes) else v
                            for k, v in sorted(xattrs.items())}
    return info


def build_layer_tar(entries):
    """Return the uncompressed tar bytes of one layer (PAX format, deterministic)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for entry in entries:
            kind = entry[0]
            if kind == "dir":
                opts = entry[2] if len(entry) > 2 else {}
                info = _tarinfo(entry[1].rstrip("/") + "/", tarfile.DIRTYPE, opts)
                info.mode = opts.get("mode", 0o755)
                tar.addfile(info)
            elif kind == "file":
                opts = entry[3] if len(entry) > 3 else {}
                data = entry[2]
                info = _tarinfo(entry[1], tarfile.REGTYPE, opts)
                info.mode = opts.get("mode", 0o644)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            elif kind in ("symlink", "hardlink"):
                opts = entry[3] if len(entry) > 3 else {}
                info = _tarinfo(entry[1], tarfile.SYMTYPE if kind == "symlink" else tarfile.LNKTYPE, opts)
                info.mode = opts.get("mode", 0o777 if kind == "symlink" else 0o644)
                info.linkname = entry[2]
                tar.addfile(info)
            elif kind in ("whiteout", "opaque"):
                path = entry[1].rstrip("/")
                if kind == "whiteout":
                    parent, _sep, base = path.rpartition("/")
                    name = (parent + "/" if parent else "") + ".wh." + base
                else:
                    name = path + "/.wh..wh..opq"
                info = _tarinfo(name, tarfile.REGTYPE, {})
                info.mode = 0o644
                tar.addfile(info, io.BytesIO(b""))
            elif kind == "fifo":
                info = _tarinfo(entry[1], tarfile.FIFOTYPE, entry[2] if len(entry) > 2 else {})
                info.mode = 0o644
                tar.addfile(info)
            elif kind in ("chr", "blk"):
                info = _tarinfo(entry[1], tarfile.CHRTYPE if kind == "chr" else tarfile.BLKTYPE, {})
                info.mode = 0o644
                info.devmajor, info.devminor = entry[2], entry[3]
                tar.addfile(info)
            else:
                raise ValueError("unknown layer entry kind %r" % (kind,))
    return buf.getvalue()


def compress_layer(tar_bytes, compression="gzip"):
    """Compress a layer deterministically; returns (blob bytes, media type)."""
    if compression == "gzip":
        return gzip.compress(tar_bytes, compresslevel=6, mtime=0), MEDIA_LAYER_GZIP
    if compression == "none":
        return tar_bytes, MEDIA_LAYER_TAR
    raise ValueError("unsupported compression %r" % (compression,))


class LayoutWriter:
    """Writes blobs and index.json of an OCI image layout directory."""

    def __init__(self, path):
        self.path = pathlib.Path(path)
        (self.path / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
        (self.path / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
        index = self.path / "index.json"
        self.index = json.loads(index.read_text()) if index.exists() else {"schemaVersion": 2, "manifests": []}

    def add_blob(self, data):
        digest = _sha256(data)
        target = self.path / "blobs" / "sha256" / digest.split(":", 1)[1]
        if not target.exists():
            target.write_bytes(data)
        return digest

    def add_ref(self, descriptor, ref_name):
        manifests = [m for m in self.index["manifests"]
                     if m.get("annotations", {}).get("org.opencontainers.image.ref.name") != ref_name]
        descriptor = dict(descriptor, annotations={"org.opencontainers.image.ref.name": ref_name})
        manifests.append(descriptor)
        self.index["manifests"] = manifests
        (self.path / "index.json").write_bytes(_json_bytes(self.index))


def write_image(layout_dir, layers, tag="latest", labels=None, annotations=None, architecture="amd64",
                compression="gzip", created="2026-11-01T00:00:00Z", os_name="linux", writer=None, add_ref=True):
    """Write one image into an OCI layout dir; returns a dict with manifest/config digests and diff_ids."""
    writer = writer or LayoutWriter(layout_dir)
    diff_ids, descriptors = [], []
    for entries in layers:
        tar_bytes = build_layer_tar(entries)
        blob, media = compress_layer(tar_bytes, compression)
        diff_ids.append(_sha256(tar_bytes))
        descriptors.append({"mediaType": media, "digest": writer.add_blob(blob), "size": len(blob)})
    config = {
        "architecture": architecture,
        "os": os_name,
        "created": created,
        "config": {"Labels": dict(labels or {})},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created": created, "created_by": "ocigen layer %d" % i} for i in range(len(layers))],
    }
    config_bytes = _json_bytes(config)
    manifest = {
        "schemaVersion": 2,
        "mediaType": MEDIA_MANIFEST,
        "config": {"mediaType": MEDIA_CONFIG, "digest": writer.add_blob(config_bytes), "size": len(config_bytes)},
        "layers": descriptors,
    }
    if annotations:
        manifest["annotations"] = dict(annotations)
    manifest_bytes = _json_bytes(manifest)
    manifest_digest = writer.add_blob(manifest_bytes)
    descriptor = {"mediaType": MEDIA_MANIFEST, "digest": manifest_digest, "size": len(manifest_bytes),
                  "platform": {"architecture": architecture, "os": os_name}}
    if add_ref:
        writer.add_ref(descriptor, tag)
    return {"manifest_digest": manifest_digest, "config_digest": manifest["config"]["digest"], "diff_ids": diff_ids,
            "descriptor": descriptor, "manifest": manifest_bytes, "config": config_bytes}


def write_index(layout_dir, images, tag="latest"):
    """Write an image index (multi-platform) referencing already written images; returns its digest."""
    writer = LayoutWriter(layout_dir)
    index = {"schemaVersion": 2, "mediaType": MEDIA_INDEX, "manifests": [img["descriptor"] for img in images]}
    data = _json_bytes(index)
    digest = writer.add_blob(data)
    writer.add_ref({"mediaType": MEDIA_INDEX, "digest": digest, "size": len(data)}, tag)
    return digest


def bootc_rootfs_layers(name="simos", version="1", kernel=b"", initrd=b"", payload=None, kernel_version="6.12.0-sim"):
    """Layers of a small bootc-like OS image: a base layer and an 'update' layer with the version.

    ``kernel``/``initrd`` default to content derived from ``kernel_version`` so images that share a
    kernel version share kernel bytes (bootc then shares the Type1 boot directory, bootc#2102).
    """
    kernel = kernel or (b"vmlinuz for " + kernel_version.encode() + b"\n") * 64
    initrd = initrd or (b"initramfs for " + kernel_version.encode() + b"\n") * 64
    modules = "usr/lib/modules/%s" % kernel_version
    base = [
        ("dir", "usr"), ("dir", "usr/bin"), ("dir", "usr/lib"), ("dir", "usr/lib/modules"), ("dir", modules),
        ("file", modules + "/vmlinuz", kernel), ("file", modules + "/initramfs.img", initrd),
        ("file", "usr/bin/sh", b"#!fake shell\n" + b"\0" * 200, {"mode": 0o755}),
        ("hardlink", "usr/bin/bash", "usr/bin/sh"),
        ("symlink", "bin", "usr/bin"),
        ("dir", "etc"), ("file", "etc/hostname", b"simhost\n"),
        ("file", "etc/old.conf", b"obsolete=1\n"),
        ("dir", "var"), ("dir", "var/cache"), ("file", "var/cache/stale", b"x" * 100),
        ("dir", "boot"), ("dir", "sysroot"),
    ]
    os_release = ("NAME=\"Sim OS\"\nID=%s\nVERSION_ID=%s\nPRETTY_NAME=\"Sim OS %s\"\n" % (name, version, version)).encode()
    update = [
        ("dir", "usr/lib"),
        ("file", "usr/lib/os-release", os_release, {"xattrs": {"user.simos": b"1"}}),
        ("whiteout", "etc/old.conf"),
        ("opaque", "var/cache"),
        ("file", "usr/share-%s.bin" % version, (version.encode() * 4096)[:16384]),
    ]
    if payload:
        update.append(("file", "usr/lib/payload-%s.bin" % version, payload))
    return [base, update]


def write_bootc_image(layout_dir, version="1", name="simos", tag=None, **kwargs):
    """A bootc-like image (labels, version annotation) into an OCI layout dir."""
    layer_args = {k: kwargs.pop(k) for k in ("kernel", "initrd", "payload", "kernel_version") if k in kwargs}
    return write_image(
        layout_dir, bootc_rootfs_layers(name=name, version=version, **layer_args), tag=tag or version,
        labels={"containers.bootc": "1", "ostree.bootable": "1"},
        annotations={"org.opencontainers.image.version": "%s.%s" % (name, version)}, **kwargs)


# -- PE images and UKIs ---------------------------------------------------------------------------
#
# A UKI (Unified Kernel Image, UAPI Boot Loader Specification Type #2) is a PE/COFF EFI application
# whose named sections carry the kernel (.linux), the initrd (.initrd), the command line (.cmdline)
# and os-release (.osrel). bootc and composefs-boot only ever *read sections* of it (by name, through
# the section table), so the images built here are structurally valid PE32+ files with those
# sections and no code at all: they parse with objdump and composefs-boot's section reader, but no
# firmware could run them. All integers little-endian.

PE_DOS_HEADER_BYTES = 64            # "MZ" ... e_lfanew (u32 at 0x3c); no DOS stub program
PE_OPTIONAL_HEADER_BYTES = 240      # PE32+ standard + Windows fields + 16 data directories
PE_SECTION_HEADER_BYTES = 40
PE_FILE_ALIGNMENT = 0x200
PE_SECTION_ALIGNMENT = 0x1000
PE_MACHINE_X86_64 = 0x8664
PE_SUBSYSTEM_EFI_APPLICATION = 10
# IMAGE_FILE_EXECUTABLE_IMAGE | LINE_NUMS_STRIPPED | LARGE_ADDRESS_AWARE | DEBUG_STRIPPED
PE_CHARACTERISTICS = 0x0002 | 0x0004 | 0x0020 | 0x0200
# IMAGE_SCN_CNT_INITIALIZED_DATA | IMAGE_SCN_MEM_READ
PE_SECTION_CHARACTERISTICS = 0x00000040 | 0x40000000


def _align(value, alignment):
    return (value + alignment - 1) // alignment * alignment


def build_pe(sections):
    """Return a minimal PE32+ EFI application holding ``sections`` (``[(name, bytes)]``, names <= 8 bytes).

    No code, no relocations: only the headers and section table a section reader needs.
    """
    header_bytes = PE_DOS_HEADER_BYTES + 4 + 20 + PE_OPTIONAL_HEADER_BYTES + PE_SECTION_HEADER_BYTES * len(sections)
    size_of_headers = _align(header_bytes, PE_FILE_ALIGNMENT)
    table, body = [], []
    file_offset = size_of_headers
    virtual_address = PE_SECTION_ALIGNMENT
    for name, data in sections:
        raw_name = name.encode("ascii")
        if len(raw_name) > 8:
            raise ValueError("PE section name %r is longer than 8 bytes" % (name,))
        raw_size = _align(len(data), PE_FILE_ALIGNMENT)
        table.append(struct.pack("<8sIIIIIIHHI", raw_name, len(data), virtual_address, raw_size, file_offset,
                                 0, 0, 0, 0, PE_SECTION_CHARACTERISTICS))
        body.append(data + b"\0" * (raw_size - len(data)))
        file_offset += raw_size
        virtual_address += _align(max(len(data), 1), PE_SECTION_ALIGNMENT)
    dos = bytearray(PE_DOS_HEADER_BYTES)
    dos[0:2] = b"MZ"
    struct.pack_into("<I", dos, 0x3C, PE_DOS_HEADER_BYTES)
    coff = struct.pack("<HHIIIHH", PE_MACHINE_X86_64, len(sections), 0, 0, 0, PE_OPTIONAL_HEADER_BYTES, PE_CHARACTERISTICS)
    optional = struct.pack(
        "<HBBIIIIIQIIHHHHHHIIIIHHQQQQII",
        0x20B, 2, 40, 0, file_offset - size_of_headers, 0, 0, 0,   # magic, linker, code/data sizes, entry, code base
        0x10000000, PE_SECTION_ALIGNMENT, PE_FILE_ALIGNMENT,        # image base, alignments
        0, 0, 0, 0, 0, 0, 0,                                        # OS/image/subsystem versions, Win32VersionValue
        virtual_address, size_of_headers, 0,                        # SizeOfImage, SizeOfHeaders, CheckSum
        PE_SUBSYSTEM_EFI_APPLICATION, 0,                            # subsystem, DLL characteristics
        0x100000, 0x1000, 0x100000, 0x1000, 0, 16)                  # stack/heap sizes, loader flags, 16 directories
    optional += b"\0" * (PE_OPTIONAL_HEADER_BYTES - len(optional))
    head = bytes(dos) + b"PE\0\0" + coff + optional + b"".join(table)
    return head + b"\0" * (size_of_headers - len(head)) + b"".join(body)


def read_pe_sections(data):
    """Return ``{section name: bytes}`` of a PE image (the inverse of :func:`build_pe`, for checks)."""
    pe_offset = struct.unpack_from("<I", data, 0x3C)[0]
    if data[:2] != b"MZ" or data[pe_offset:pe_offset + 4] != b"PE\0\0":
        raise ValueError("not a PE image")
    count, optional_bytes = struct.unpack_from("<2xH12xH", data, pe_offset + 4)
    table = pe_offset + 4 + 20 + optional_bytes
    sections = {}
    for index in range(count):
        name, vsize, _va, _raw, pointer = struct.unpack_from("<8sIIII", data, table + index * PE_SECTION_HEADER_BYTES)
        sections[name.rstrip(b"\0").decode("ascii")] = data[pointer:pointer + vsize]
    return sections


def build_uki(cmdline, os_release, linux, initrd, uname=None):
    """A UKI-shaped PE image: ``.osrel``, ``.cmdline``, (``.uname``), ``.linux``, ``.initrd`` sections."""
    sections = [(".osrel", os_release), (".cmdline", cmdline.encode() if isinstance(cmdline, str) else cmdline)]
    if uname:
        sections.append((".uname", uname.encode()))
    sections += [(".linux", linux), (".initrd", initrd)]
    return build_pe(sections)


def build_uki_addon(cmdline):
    """A UKI addon (PE image with only a ``.cmdline`` section), as ``ukify`` builds for ``*.addon.efi``."""
    return build_pe([(".cmdline", cmdline.encode() if isinstance(cmdline, str) else cmdline)])


def bootc_os_release(name="simos", version="1"):
    """The ``/usr/lib/os-release`` bytes of :func:`bootc_rootfs_layers` for ``name``/``version``."""
    return ("NAME=\"Sim OS\"\nID=%s\nVERSION_ID=%s\nPRETTY_NAME=\"Sim OS %s\"\n" % (name, version, version)).encode()


def default_kernel(kernel_version="6.12.0-sim"):
    """``(vmlinuz, initramfs)`` bytes :func:`bootc_rootfs_layers` uses for ``kernel_version``."""
    return ((b"vmlinuz for " + kernel_version.encode() + b"\n") * 64,
            (b"initramfs for " + kernel_version.encode() + b"\n") * 64)


def uki_layer(uki_name, uki, addons=None):
    """A layer adding ``/boot/EFI/Linux/<uki_name>.efi`` and its addons (``{name: bytes}``) in
    ``<uki_name>.efi.extra.d/<name>.addon.efi``, where composefs-boot looks for UKIs."""
    entries = [("dir", "boot/EFI"), ("dir", "boot/EFI/Linux"), ("file", "boot/EFI/Linux/%s.efi" % uki_name, uki)]
    if addons:
        extra = "boot/EFI/Linux/%s.efi.extra.d" % uki_name
        entries.append(("dir", extra))
        for addon_name, data in sorted(addons.items()):
            entries.append(("file", "%s/%s.addon.efi" % (extra, addon_name), data))
    return entries


def write_bootc_uki_image(layout_dir, version="1", name="simos", uki=b"", uki_name=None, addons=None, tag=None, **kwargs):
    """:func:`write_bootc_image` plus a third layer holding a UKI (and addons) under ``/boot/EFI/Linux``.

    composefs-boot empties ``/boot`` in the boot image, so this image's boot EROFS is the same as
    that of :func:`write_bootc_image` with the same arguments: a UKI can carry ``composefs=<verity>``
    computed from the image without it (the two-stage build UKI images use).
    """
    layer_args = {k: kwargs.pop(k) for k in ("kernel", "initrd", "payload", "kernel_version") if k in kwargs}
    layers = bootc_rootfs_layers(name=name, version=version, **layer_args)
    layers.append(uki_layer(uki_name or "%s-%s" % (name, version), uki, addons))
    return write_image(
        layout_dir, layers, tag=tag or version,
        labels={"containers.bootc": "1", "ostree.bootable": "1"},
        annotations={"org.opencontainers.image.version": "%s.%s" % (name, version)}, **kwargs)


def app_layers(name="app", version="1", payload=None):
    """One small layer of an application (non-bootc) image: a binary, a config file, a data file."""
    layer = [
        ("dir", "usr"), ("dir", "usr/bin"), ("file", "usr/bin/%s" % name, b"#!fake %s %s\n" % (name.encode(), version.encode()) + b"\0" * 300,
                                             {"mode": 0o755}),
        ("dir", "etc"), ("file", "etc/%s.conf" % name, b"version=%s\n" % version.encode()),
    ]
    if payload:
        layer.append(("file", "usr/share/%s-%s.bin" % (name, version), payload))
    return [layer]


if __name__ == "__main__":  # pragma: no cover - manual use
    import sys

    OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.getcwd(), "oci-sim")
    print(json.dumps({k: v for k, v in write_bootc_image(OUT).items() if k in ("manifest_digest", "config_digest")}))
