# -*- coding: utf-8 -*-
# Copyright: (c) 2026, bootc.composefs maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ``<verity>.origin`` keyfile of a deployment and its container image reference (layer: host).

Spec: bootc-composefs-host.md §1.3, §1.4, §2.8 (ImageReference mapping). Upstream: bootc
``bootc_composefs/state.rs`` (``write_composefs_state``, ``read_origin``), ``status.rs``
(``boot_entry_from_composefs_deployment``), ``crates/lib/src/status.rs``
(``From<OstreeImageReference>``), ``crates/ostree-ext/src/container/mod.rs``
(``OstreeImageReference``).

Location: ``<sysroot>/state/deploy/<verity>/<verity>.origin``.

Keyfile syntax (written by the ``tini`` crate): ``[section]`` lines, ``key = value`` items, a blank
line between sections, usually no trailing newline. We accept ``key=value`` and any surrounding
whitespace, skip blank lines and lines starting with ``#`` or ``;``, merge repeated sections, and
let a repeated key keep its last value. An item before any section, or a line that is neither a
section nor an item, is a ``FormatError``.

| section | key | value |
|---|---|---|
| ``origin`` | ``container-image-reference`` | e.g. ``ostree-unverified-image:docker://quay.io/example/os:42``; absent ⇒ no image |
| ``boot`` | ``boot_type`` | ``bls`` or ``uki``; **required** (bootc fails status without it) |
| ``boot`` | ``digest`` | 64-hex SHA-256 of kernel+initrd (may be absent on old UKI deployments) |
| ``image`` | ``manifest_digest`` | ``sha256:<64 hex>``; absent ⇒ legacy deployment (see ``imginfo``) |

Every problem above (missing or unknown ``boot_type``, a ``manifest_digest`` that is not
``sha256:<64 lowercase hex>``, an unparsable image reference) is a ``FormatError``: bootc would fail
``bootc status`` on it, we report the file instead.

The container image reference is parsed by ``oci/reference.py`` (``parse_image_reference``:
the ``ostree-*`` signature-policy prefixes, transports and names); ``ImageReference`` and
``parse_image_reference`` are re-exported here for the host layer's callers.
"""

from __future__ import annotations

import os
import re
from typing import NamedTuple

from ansible_collections.bootc.composefs.plugins.module_utils.errors import FormatError
from ansible_collections.bootc.composefs.plugins.module_utils.oci.reference import (
    SIGNATURE_CONTAINER_POLICY,
    SIGNATURE_OSTREE_REMOTE,
    ImageReference,
    parse_image_reference,
)

__all__ = [
    "Origin",
    "ImageReference",
    "BOOT_TYPES",
    "SIGNATURE_CONTAINER_POLICY",
    "SIGNATURE_OSTREE_REMOTE",
    "parse_keyfile",
    "parse_image_reference",
    "parse_origin",
    "origin_path",
    "load_origin",
]

SECTION_ORIGIN = "origin"
KEY_IMAGE_REFERENCE = "container-image-reference"
SECTION_BOOT = "boot"
KEY_BOOT_TYPE = "boot_type"
KEY_BOOT_DIGEST = "digest"
SECTION_IMAGE = "image"
KEY_MANIFEST_DIGEST = "manifest_digest"

BOOT_TYPES = ("bls", "uki")

_MANIFEST_DIGEST_RE = re.compile(r"\Asha256:[0-9a-f]{64}\Z")


class Origin(NamedTuple):
    """A parsed origin. ``sections`` keeps every section as ``(name, ((key, value), ...))``."""

    boot_type: str
    container_image_reference: str | None = None
    image: ImageReference | None = None
    boot_digest: str | None = None
    manifest_digest: str | None = None
    sections: tuple = ()


def parse_keyfile(text: str) -> dict:
    """``{section: {key: value}}`` of keyfile ``text`` (insertion ordered); ``FormatError`` on bad lines."""
    sections = {}
    current = None
    for number, line in enumerate(text.split("\n"), start=1):
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            if not line.endswith("]") or len(line) < 3:
                raise FormatError("line %d: malformed section header %r" % (number, line))
            current = sections.setdefault(line[1:-1].strip(), {})
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise FormatError("line %d: expected 'key = value', got %r" % (number, line))
        if current is None:
            raise FormatError("line %d: item %r comes before any [section]" % (number, key.strip()))
        current[key.strip()] = value.strip()
    return sections


def parse_origin(text: str) -> Origin:
    """Parse the text of a ``.origin`` file; ``FormatError`` for anything bootc would refuse."""
    sections = parse_keyfile(text)
    boot = sections.get(SECTION_BOOT, {})
    boot_type = boot.get(KEY_BOOT_TYPE)
    if boot_type is None:
        raise FormatError("no [%s] %s" % (SECTION_BOOT, KEY_BOOT_TYPE))
    if boot_type not in BOOT_TYPES:
        raise FormatError("unknown [%s] %s %r (expected bls or uki)" % (SECTION_BOOT, KEY_BOOT_TYPE, boot_type))
    manifest_digest = sections.get(SECTION_IMAGE, {}).get(KEY_MANIFEST_DIGEST)
    if manifest_digest is not None and not _MANIFEST_DIGEST_RE.match(manifest_digest):
        raise FormatError("[%s] %s %r is not sha256:<64 hex>" % (SECTION_IMAGE, KEY_MANIFEST_DIGEST, manifest_digest))
    reference = sections.get(SECTION_ORIGIN, {}).get(KEY_IMAGE_REFERENCE)
    return Origin(
        boot_type=boot_type,
        container_image_reference=reference,
        image=parse_image_reference(reference) if reference is not None else None,
        boot_digest=boot.get(KEY_BOOT_DIGEST),
        manifest_digest=manifest_digest,
        sections=tuple((name, tuple(items.items())) for name, items in sections.items()),
    )


def origin_path(paths, verity: str) -> str:
    """``<sysroot>/state/deploy/<verity>/<verity>.origin``."""
    return os.path.join(paths.state_deploy_dir, verity, verity + ".origin")


def load_origin(paths, verity: str) -> Origin | None:
    """The origin of deployment ``verity``; None if its state dir or origin file does not exist."""
    path = origin_path(paths, verity)
    text = paths.read_text(path)
    if text is None:
        return None
    try:
        return parse_origin(text)
    except FormatError as err:
        raise err.with_path(path)
