"""Damages applied to a built host, one per finding kind (the table is in ``spec.py``).

Each ``_damage_<kind>`` changes the tree the way a real mishap would (a finalize that dropped an
entry, an interrupted GC, a crash during a write, a hand edit) and returns the paths it touched.
``apply_damage`` wraps that into the record ``build_host`` returns:
``{kind, finding, reported_by, target, paths}``.

Repository damages go around the library on purpose (plain ``unlink``), as a crash or a bad disk
would; nothing here takes the repository's exclusive lock.
"""

from __future__ import annotations

import hashlib
import os

import ocigen
from ansible_collections.bootc.composefs.plugins.module_utils.formats import fsverity
from ansible_collections.bootc.composefs.plugins.module_utils.formats.erofs import reader as erofs_reader
from ansible_collections.bootc.composefs.plugins.module_utils.oci import closure as oci_closure
from ansible_collections.bootc.composefs.plugins.module_utils.oci import digest as oci_digest
from ansible_collections.bootc.composefs.plugins.module_utils.oci import tags
from simhost import bootfiles
from simhost.spec import DAMAGE_FINDINGS

DANGLING_TAG = "quay.io/example/dangling:1"
# What a crash in the middle of rewriting an origin can leave: half a keyfile and stale block data.
GARBAGE_ORIGIN = b"[origin]\ncontainer-image-reference = ostree-unverified-ima\x00\x00\x00\xff\xfe\x9c garbage\n[boot\n"


def fake_verity(label: str) -> str:
    """A well-formed 128-hex verity that names no deployment: SHA-512 of ``simhost:<label>``."""
    return hashlib.sha512(("simhost:" + label).encode()).hexdigest()


def _target(build, damage):
    """The deployment a damage is about: ``damage.target`` (role, version or verity) or the default."""
    if damage.target is None:
        for role in ("rollback", "other", "staged", "booted"):
            found = build.by_role(role)
            if found:
                return found[0]
    for deployed in build.deployed:
        if damage.target in (deployed.role, deployed.spec.version, deployed.verity):
            return deployed
    raise ValueError("damage %s: no deployment matches target %r (a role, a version or a verity)" % (damage.kind, damage.target))


def _tag_path(build, tag: str) -> str:
    return os.path.join(build.layout.repo_path, "streams", "refs", tags.tag_ref(tag))


def _extra_image(build, base: str):
    image = build.factory.bootc_image(build.factory.fresh_version(base), build.booted.spec.kernel_version,
                                      boot_type=build.spec.boot_type)
    build.extra_images.append(image)
    return image


# -- one function per kind ------------------------------------------------------------------------


def _damage_orphan_state_dir(build, damage):
    image = _extra_image(build, damage.options.get("version", "90"))
    reference = bootfiles.image_reference("registry", "quay.io/example/simos:%s" % image.version)
    files = build.layout.write_state_dir(image.verity, build.repo, image, reference, legacy=False)
    return image.verity, [files["state_dir"]]


def _damage_entry_without_state_dir(build, damage):
    verity = damage.options.get("verity") or fake_verity("entry-without-state-dir")
    booted = build.booted
    if build.spec.variant == "uki-grub":
        text = bootfiles.render_menuentry(bootfiles.boot_label(booted.image.os_release), verity)
        with open(build.layout.user_cfg, "a", encoding="utf-8") as handle:
            handle.write(text)
        return verity, [build.layout.user_cfg]
    if build.spec.boot_type == "uki":
        text = booted.entry_text.replace(bootfiles.uki_efi_path(booted.verity), bootfiles.uki_efi_path(verity))
    else:
        old = bootfiles.composefs_karg(booted.verity, build.spec.allow_missing_verity)
        text = booted.entry_text.replace(old, bootfiles.composefs_karg(verity, build.spec.allow_missing_verity))
    return verity, [build.layout.write_entry(damage.options.get("file_name", "new-entry.conf"), text)]


def _damage_live_manifest_without_bootc_tag(build, damage):
    deployed = _target(build, damage)
    path = _tag_path(build, deployed.image.bootc_tag)
    tags.untag_image(build.repo, deployed.image.bootc_tag)
    return deployed.verity, [path]


def _damage_unreferenced_bootc_tag(build, damage):
    image = _extra_image(build, damage.options.get("version", "91"))
    return image.verity, [_tag_path(build, image.bootc_tag)]


def _damage_dangling_ref(build, damage):
    tag = damage.options.get("tag", DANGLING_TAG)
    mode = damage.options.get("mode", "missing-entry")
    if mode == "missing-entry":
        manifest_digest = "sha256:" + hashlib.sha256(b"simhost:dangling-ref").hexdigest()
        tags.tag_image(build.repo, manifest_digest, tag)
        return None, [_tag_path(build, tag)]
    if mode != "missing-object":
        raise ValueError("dangling-ref mode must be missing-entry or missing-object, not %r" % mode)
    app = build.factory.app_image(tag, build.factory.fresh_version("dangling"))
    build.app_images.append(app)
    object_id = build.repo.stream_object_id(oci_digest.manifest_stream_name(app.manifest_digest))
    path = build.repo.object_path(object_id)
    os.unlink(path)
    return None, [_tag_path(build, tag), path]


def _damage_missing_stream(build, damage):
    deployed = _target(build, damage)
    part = damage.options.get("part", "config")
    if part == "config":
        name = oci_digest.config_stream_name(deployed.image.config_digest)
    elif part == "layer":
        name = oci_digest.layer_stream_name(deployed.image.diff_ids[-1])
    else:
        raise ValueError("missing-stream part must be config or layer, not %r" % part)
    path = os.path.join(build.layout.repo_path, "streams", name)
    os.unlink(path)
    return deployed.verity, [path]


def _boot_image_objects(build, verity: str) -> set:
    data = build.repo.read_object(build.repo.image_object_id(verity))
    return {raw.hex() for raw in erofs_reader.referenced_objects(data, fsverity.SHA512)}


def _damage_missing_object(build, damage):
    deployed = _target(build, damage)
    candidates = _boot_image_objects(build, deployed.verity)
    for other in build.deployed:
        if other is deployed:
            continue
        candidates -= oci_closure.image_object_closure(build.repo, other.image.manifest_digest)
        candidates -= _boot_image_objects(build, other.verity)
    if not candidates:
        raise ValueError("missing-object: every object of %s's boot image is shared with another deployment" % deployed.verity)
    # The biggest one: a file that exists in this image only (its payload or version data).
    object_id = max(sorted(candidates), key=lambda oid: os.path.getsize(build.repo.object_path(oid)))
    path = build.repo.object_path(object_id)
    os.unlink(path)
    return deployed.verity, [path]


def _damage_unreadable_origin(build, damage):
    deployed = _target(build, damage)
    path = build.layout.origin_path(deployed.verity)
    with open(path, "wb") as handle:
        handle.write(damage.options.get("content", GARBAGE_ORIGIN))
    return deployed.verity, [path]


def _damage_orphan_addon_dir(build, damage):
    verity = damage.options.get("verity") or fake_verity("orphan-addon-dir")
    directory = build.layout.addon_dir(verity)
    os.makedirs(directory)
    with open(os.path.join(directory, "console.addon.efi"), "wb") as handle:
        handle.write(ocigen.build_uki_addon("console=ttyS0,115200"))
    return verity, [directory]


def _damage_staged_marker_without_entry(build, damage):
    verity = damage.options.get("verity") or fake_verity("staged-marker-without-entry")
    return verity, [build.layout.write_staged_marker(verity)]


_DAMAGES = {
    "orphan-state-dir": _damage_orphan_state_dir,
    "entry-without-state-dir": _damage_entry_without_state_dir,
    "live-manifest-without-bootc-tag": _damage_live_manifest_without_bootc_tag,
    "unreferenced-bootc-tag": _damage_unreferenced_bootc_tag,
    "dangling-ref": _damage_dangling_ref,
    "missing-stream": _damage_missing_stream,
    "missing-object": _damage_missing_object,
    "unreadable-origin": _damage_unreadable_origin,
    "orphan-addon-dir": _damage_orphan_addon_dir,
    "staged-marker-without-entry": _damage_staged_marker_without_entry,
}


def apply_damage(build, damage) -> dict:
    """Apply one ``DamageSpec`` to the built host; return ``{kind, finding, reported_by, target, paths}``."""
    target, paths = _DAMAGES[damage.kind](build, damage)
    finding, reported_by = DAMAGE_FINDINGS[damage.kind]
    return {"kind": damage.kind, "finding": finding, "reported_by": reported_by, "target": target, "paths": paths}
