"""What a simulated host is made of: ``HostSpec`` and its parts, plus the named presets.

A spec is plain data. ``load_spec`` accepts a ``HostSpec`` or a dict of the same shape (nested
dicts for deployments, app images and damages; a damage may also be a bare kind string), so a
Molecule scenario can pass YAML and a test can pass dataclasses.

Variants (``VARIANTS``):

| variant | bootloader | boot binaries | menu |
|---|---|---|---|
| ``bls-grub`` | GRUB classic | Type1 ``<boot>/bootc_composefs-<n>/`` | ``<boot>/loader/entries`` |
| ``bls-systemd`` | systemd-boot | Type1 ``ESP/EFI/Linux/bootc_composefs-<n>/`` | ``ESP/loader/entries`` |
| ``uki-systemd`` | systemd-boot | UKIs ``ESP/EFI/Linux/bootc/bootc_composefs-<v>.efi`` | ``ESP/loader/entries`` (``uki`` key) |
| ``uki-grub`` | GRUB classic | UKIs, as above | ``<boot>/grub2/user.cfg`` menuentries |

Deployments are listed in menu order; the roles decide where each one lands (see
``layout.menu_positions``): one ``booted``, at most one ``staged`` (it lives in the staged entry
set), at most one ``rollback`` (required as soon as there is an ``other``), any number of
``other``. Deployments with the same ``kernel_version`` share one Type1 kernel dir, named after
the oldest of them (the list is newest first, staged newest of all), as bootc does (bootc#2102).

Damages (``DAMAGE_KINDS``) are applied after the host is built (``damage.py``), each producing
one finding. Each kind, the finding it produces and who reports it (the host layer or the status operation):

``orphan-state-dir`` -> ``orphan-state-dir`` (host)
    an extra image is deployed (tag, boot image, state dir) with no boot entry, as after a
    finalize dropped it; its tag then also shows as ``unreferenced-bootc-tag`` in status.
``entry-without-state-dir`` -> ``entry-without-state-dir`` (host)
    ``new-entry.conf`` (a menuentry on uki-grub): the booted entry with another verity (tmt T3).
``live-manifest-without-bootc-tag`` -> ``untagged-live-manifest`` (status)
    the target's ``localhost/bootc-<digest>`` tag is removed.
``unreferenced-bootc-tag`` -> ``unreferenced-bootc-tag`` (status)
    an extra image is imported and bootc-tagged (with its boot image); no deployment uses it.
``dangling-ref`` -> ``dangling-ref`` (status)
    tag ``quay.io/example/dangling:1`` names a missing manifest entry (option ``mode:
    missing-entry``, the default) or an app image whose manifest object is gone (``mode:
    missing-object``).
``missing-stream`` -> ``missing-stream`` (status)
    the target's ``streams/oci-config-<digest>`` entry (option ``part: config``, the default) or
    its last layer's entry (``part: layer``) is removed.
``missing-object`` -> ``missing-object`` (status)
    the biggest object named by the target's boot EROFS image and by no other deployment's
    image is removed.
``unreadable-origin`` -> ``unreadable-file`` (host)
    the target's ``<v>.origin`` is overwritten with half a keyfile and junk bytes; the deployment
    is then ``unlisted`` (and its tag unreferenced in status).
``orphan-addon-dir`` -> ``orphan-addon-dir`` (host)
    ``ESP/EFI/Linux/bootc/bootc_composefs-<x>.efi.extra.d/`` whose UKI does not exist (an ESP is
    laid out for it on bls-grub).
``staged-marker-without-entry`` -> ``staged-marker-without-entry`` (host)
    ``/run/composefs/staged-deployment`` names a verity no entry boots (a staged deployment then
    becomes ``unlisted``).

The default ``target`` of a damage about one deployment is the rollback (else the first other,
else the staged, else the booted deployment); ``target`` may name a role, a deployment version
or a verity.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Optional, Tuple

VARIANTS = ("bls-grub", "bls-systemd", "uki-systemd", "uki-grub")
ROLES = ("booted", "staged", "rollback", "other")
TRANSPORTS = ("registry", "containers-storage", "oci", "oci-archive")
FOREIGN_ENTRY_KINDS = ("fwupd", "memtest86+")

DAMAGE_KINDS = (
    "orphan-state-dir",
    "entry-without-state-dir",
    "live-manifest-without-bootc-tag",
    "unreferenced-bootc-tag",
    "dangling-ref",
    "missing-stream",
    "missing-object",
    "unreadable-origin",
    "orphan-addon-dir",
    "staged-marker-without-entry",
)
# damage kind -> (finding code, who reports it: the host layer or the status operation)
DAMAGE_FINDINGS = {
    "orphan-state-dir": ("orphan-state-dir", "host"),
    "entry-without-state-dir": ("entry-without-state-dir", "host"),
    "live-manifest-without-bootc-tag": ("untagged-live-manifest", "status"),
    "unreferenced-bootc-tag": ("unreferenced-bootc-tag", "status"),
    "dangling-ref": ("dangling-ref", "status"),
    "missing-stream": ("missing-stream", "status"),
    "missing-object": ("missing-object", "status"),
    "unreadable-origin": ("unreadable-file", "host"),
    "orphan-addon-dir": ("orphan-addon-dir", "host"),
    "staged-marker-without-entry": ("staged-marker-without-entry", "host"),
}

DEFAULT_KERNEL_VERSION = "6.12.0-sim"
DEFAULT_IMAGE_REPOSITORY = "quay.io/example/simos"
DEFAULT_OS_ID = "simos"


@dataclass
class DeploymentSpec:
    """One deployment: its role, the image it runs and how bootc recorded it.

    ``image`` is the container image name in the origin (default ``quay.io/example/simos:<version>``),
    reached through ``transport``. ``legacy`` writes the origin without ``[image] manifest_digest``
    plus a ``.imginfo`` (deployments made before bootc PR #2044). ``uki_addons`` names addons
    (``console``...) installed next to the UKI (UKI variants only). ``payload_bytes`` adds a file of
    that many bytes unique to this image. ``download_only`` marks a staged deployment's
    finalization as locked.
    """

    role: str
    version: str = "1"
    kernel_version: str = DEFAULT_KERNEL_VERSION
    legacy: bool = False
    uki_addons: Tuple[str, ...] = ()
    image: Optional[str] = None
    transport: str = "registry"
    payload_bytes: int = 0
    download_only: bool = False
    os_id: str = DEFAULT_OS_ID

    @property
    def image_name(self) -> str:
        """The image name recorded in the origin."""
        return self.image or "%s:%s" % (DEFAULT_IMAGE_REPOSITORY, self.version)


@dataclass
class AppImageSpec:
    """An application image (not bootable) imported under a non-bootc ``tag``."""

    tag: str
    version: str = "1"
    payload_bytes: int = 0


@dataclass
class DamageSpec:
    """One damage: ``kind`` (``DAMAGE_KINDS``), optional ``target`` and kind-specific ``options``."""

    kind: str
    target: Optional[str] = None
    options: dict = field(default_factory=dict)


@dataclass
class HostSpec:
    """Everything ``build_host`` needs; every field has a default (one booted deployment on GRUB + BLS).

    ``deployments`` in menu order (see the module docstring); ``app_images`` imported under their
    own tags; ``stale_bootc_tags`` bootc-tagged images (with boot images) no deployment uses;
    ``separate_boot`` puts the boot dir at ``<root>/boot`` (bootc#2399); ``grub_password_user_cfg``
    adds a password-only ``grub2/user.cfg`` (GRUB + BLS); ``foreign_entries`` adds ``fwupd`` /
    ``memtest86+`` BLS entries; ``damages`` are applied last; ``allow_missing_verity`` writes
    ``composefs=?<v>`` (the repository is insecure either way); ``esp`` forces an ESP on GRUB + BLS;
    ``oci_dir`` keeps the OCI layout the images came from, and ``pending_versions`` adds images
    (booted kernel, not imported) to it, for pulls.
    """

    variant: str = "bls-grub"
    deployments: Tuple[DeploymentSpec, ...] = (DeploymentSpec(role="booted"),)
    app_images: Tuple[AppImageSpec, ...] = ()
    stale_bootc_tags: int = 0
    separate_boot: bool = False
    grub_password_user_cfg: bool = False
    foreign_entries: Tuple[str, ...] = ()
    damages: Tuple[DamageSpec, ...] = ()
    allow_missing_verity: bool = True
    esp: Optional[bool] = None
    oci_dir: Optional[str] = None
    pending_versions: Tuple[str, ...] = ()

    @property
    def boot_type(self) -> str:
        """``bls`` or ``uki``."""
        return self.variant.split("-", 1)[0]

    @property
    def bootloader(self) -> str:
        """``grub`` or ``systemd``."""
        return self.variant.split("-", 1)[1]

    @property
    def has_esp(self) -> bool:
        """Whether an ESP is laid out at ``<root>/boot/efi``: always for systemd-boot and UKIs, on request
        (``esp``) or for the ``orphan-addon-dir`` damage on GRUB + BLS."""
        return self.variant != "bls-grub" or bool(self.esp) or any(d.kind == "orphan-addon-dir" for d in self.damages)

    def as_dict(self) -> dict:
        """The spec as plain JSON-able data (``load_spec`` reads it back)."""
        return dataclasses.asdict(self)


def _deployment(value) -> DeploymentSpec:
    if isinstance(value, DeploymentSpec):
        return value
    data = dict(value)
    if "uki_addons" in data:
        data["uki_addons"] = tuple(data["uki_addons"])
    return DeploymentSpec(**data)


def _damage(value) -> DamageSpec:
    if isinstance(value, DamageSpec):
        return value
    if isinstance(value, str):
        return DamageSpec(kind=value)
    data = dict(value)
    return DamageSpec(kind=data.pop("kind"), target=data.pop("target", None), options=dict(data.pop("options", {}), **data))


def _app(value) -> AppImageSpec:
    if isinstance(value, AppImageSpec):
        return value
    if isinstance(value, str):
        return AppImageSpec(tag=value)
    return AppImageSpec(**dict(value))


def validate_spec(spec: HostSpec) -> None:
    """Raise ``ValueError`` naming the first thing in ``spec`` that cannot be built."""
    if spec.variant not in VARIANTS:
        raise ValueError("unknown variant %r (expected one of %s)" % (spec.variant, ", ".join(VARIANTS)))
    roles = [d.role for d in spec.deployments]
    for deployment in spec.deployments:
        if deployment.role not in ROLES:
            raise ValueError("unknown role %r (expected one of %s)" % (deployment.role, ", ".join(ROLES)))
        if deployment.transport not in TRANSPORTS:
            raise ValueError("unknown transport %r (expected one of %s)" % (deployment.transport, ", ".join(TRANSPORTS)))
        if deployment.uki_addons and spec.boot_type != "uki":
            raise ValueError("uki_addons need a UKI variant, not %s" % spec.variant)
        if deployment.download_only and deployment.role != "staged":
            raise ValueError("download_only applies to the staged deployment only")
    if roles.count("booted") != 1:
        raise ValueError("exactly one deployment must be booted (got %d)" % roles.count("booted"))
    for role in ("staged", "rollback"):
        if roles.count(role) > 1:
            raise ValueError("at most one deployment can be %s" % role)
    if "other" in roles and "rollback" not in roles:
        raise ValueError("an 'other' deployment needs a rollback: bootc calls the first non-booted entry the rollback")
    versions = [d.version for d in spec.deployments]
    if len(set(versions)) != len(versions):
        raise ValueError("deployment versions must differ (each deployment runs its own image): %s" % ", ".join(versions))
    for kind in spec.foreign_entries:
        if kind not in FOREIGN_ENTRY_KINDS:
            raise ValueError("unknown foreign entry %r (expected one of %s)" % (kind, ", ".join(FOREIGN_ENTRY_KINDS)))
    for damage in spec.damages:
        if damage.kind not in DAMAGE_KINDS:
            raise ValueError("unknown damage %r (expected one of %s)" % (damage.kind, ", ".join(DAMAGE_KINDS)))
    if spec.grub_password_user_cfg and spec.variant != "bls-grub":
        raise ValueError("grub_password_user_cfg is the GRUB + BLS case (a password-only user.cfg); variant is %s" % spec.variant)
    if spec.stale_bootc_tags < 0:
        raise ValueError("stale_bootc_tags must be >= 0")
    if spec.pending_versions and not spec.oci_dir:
        raise ValueError("pending_versions are written to the OCI layout only: set oci_dir to keep it")
    if set(spec.pending_versions) & set(versions):
        raise ValueError("pending_versions must differ from the deployments' versions")


def load_spec(value=None, **overrides) -> HostSpec:
    """A validated ``HostSpec`` from a ``HostSpec``, a dict of the same shape, or None (defaults)."""
    if value is None:
        spec = HostSpec()
    elif isinstance(value, HostSpec):
        spec = dataclasses.replace(value)
    else:
        data = dict(value)
        known = {f.name for f in dataclasses.fields(HostSpec)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError("unknown spec field(s): %s" % ", ".join(unknown))
        if "deployments" in data:
            data["deployments"] = tuple(_deployment(d) for d in data["deployments"])
        if "app_images" in data:
            data["app_images"] = tuple(_app(a) for a in data["app_images"])
        if "damages" in data:
            data["damages"] = tuple(_damage(d) for d in data["damages"])
        for name in ("foreign_entries", "pending_versions"):
            if name in data:
                data[name] = tuple(data[name])
        spec = HostSpec(**data)
    if overrides:
        spec = dataclasses.replace(spec, **overrides)
    spec.deployments = tuple(_deployment(d) for d in spec.deployments)
    spec.damages = tuple(_damage(d) for d in spec.damages)
    spec.app_images = tuple(_app(a) for a in spec.app_images)
    validate_spec(spec)
    return spec


# -- presets --------------------------------------------------------------------------------------

def _three(variant="bls-grub", addons=()):
    return HostSpec(variant=variant, deployments=(
        DeploymentSpec(role="staged", version="3", kernel_version="6.12.3-sim", uki_addons=addons),
        DeploymentSpec(role="booted", version="2", kernel_version="6.12.2-sim", uki_addons=addons),
        DeploymentSpec(role="rollback", version="1", kernel_version="6.12.1-sim", uki_addons=addons),
    ))


def _demo():
    # GRUB orders BLS files by name, descending, and bootc's rollback list is that menu reversed:
    # versions 5 > 4 > 3 > 2 > 1 put booted first, the others next and the rollback last.
    return HostSpec(
        variant="bls-grub",
        deployments=(
            DeploymentSpec(role="staged", version="5", kernel_version="6.13.0-sim", payload_bytes=96 * 1024),
            DeploymentSpec(role="booted", version="4", kernel_version="6.12.5-sim", payload_bytes=96 * 1024),
            DeploymentSpec(role="other", version="3", kernel_version="6.12.5-sim", payload_bytes=96 * 1024),
            DeploymentSpec(role="other", version="2", kernel_version="6.12.0-sim", legacy=True, payload_bytes=96 * 1024),
            DeploymentSpec(role="rollback", version="1", kernel_version="6.11.0-sim", payload_bytes=96 * 1024),
        ),
        app_images=(AppImageSpec(tag="quay.io/example/app:1", payload_bytes=32 * 1024),),
        stale_bootc_tags=2,
    )


def _damaged():
    return HostSpec(
        variant="bls-grub",
        deployments=(
            DeploymentSpec(role="staged", version="5", kernel_version="6.12.5-sim"),
            DeploymentSpec(role="booted", version="4", kernel_version="6.12.4-sim"),
            DeploymentSpec(role="other", version="3", kernel_version="6.12.3-sim"),
            DeploymentSpec(role="other", version="2", kernel_version="6.12.2-sim"),
            DeploymentSpec(role="rollback", version="1", kernel_version="6.12.1-sim"),
        ),
        app_images=(AppImageSpec(tag="quay.io/example/app:1"),),
        damages=(
            DamageSpec("orphan-state-dir"),
            DamageSpec("entry-without-state-dir"),
            DamageSpec("live-manifest-without-bootc-tag", target="booted"),
            DamageSpec("unreferenced-bootc-tag"),
            DamageSpec("dangling-ref"),
            DamageSpec("missing-stream", target="rollback"),
            DamageSpec("missing-object", target="3"),
            DamageSpec("unreadable-origin", target="2"),
            DamageSpec("orphan-addon-dir"),
            DamageSpec("staged-marker-without-entry"),
        ),
    )


def _separate_boot():
    spec = _three()
    spec.separate_boot = True
    return spec


def _grub_password():
    spec = _three()
    spec.grub_password_user_cfg = True
    return spec


def _foreign_entries():
    spec = _three()
    spec.foreign_entries = FOREIGN_ENTRY_KINDS
    return spec


# name -> (one line for --list-presets, factory)
PRESETS = {
    "demo": ("GRUB + BLS: booted, staged, rollback, two others (one legacy, one sharing the booted kernel dir), "
             "an app image, two stale bootc tags", _demo),
    "three-deployments": ("GRUB + BLS: booted, staged, rollback; clean", _three),
    "damaged": ("GRUB + BLS with one damage of every kind applied", _damaged),
    "bls-grub": ("GRUB classic + Type1 BLS entries in <sysroot>/boot: booted, staged, rollback", lambda: _three("bls-grub")),
    "bls-systemd": ("systemd-boot + Type1 BLS entries on the ESP: booted, staged, rollback", lambda: _three("bls-systemd")),
    "uki-systemd": ("systemd-boot + UKIs (console addon) with uki entries on the ESP: booted, staged, rollback",
                    lambda: _three("uki-systemd", ("console",))),
    "uki-grub": ("GRUB classic + UKIs chainloaded from grub2/user.cfg: booted, staged, rollback", lambda: _three("uki-grub")),
    "separate-boot": ("GRUB + BLS with /boot on its own partition (boot dir at <root>/boot, bootc#2399)", _separate_boot),
    "grub-password": ("GRUB + BLS with a password-only grub2/user.cfg (grub2-setpassword)", _grub_password),
    "foreign-entries": ("GRUB + BLS with fwupd.conf and memtest86+.conf entries next to bootc's", _foreign_entries),
}


def preset_spec(name: str, variant: Optional[str] = None) -> HostSpec:
    """The ``HostSpec`` of preset ``name`` (``PRESETS``), optionally moved to another ``variant``."""
    if name not in PRESETS:
        raise ValueError("unknown preset %r (expected one of %s)" % (name, ", ".join(PRESETS)))
    spec = PRESETS[name][1]()
    if variant is not None:
        spec.variant = variant
        if spec.boot_type != "uki":
            spec.deployments = tuple(dataclasses.replace(d, uki_addons=()) for d in spec.deployments)
        if variant != "bls-grub":
            spec.grub_password_user_cfg = False
    return load_spec(spec)
