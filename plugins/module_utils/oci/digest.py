# -*- coding: utf-8 -*-
# Copyright: (c) 2026, bootc.composefs maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""OCI content digests, and the repository stream names and named-ref keys built from them.

Layer: oci. Spec: ``composefs-repo.md`` sections 10.2, 10.3 and 14; upstream: composefs-rs
``crates/composefs-oci/src/lib.rs`` (``layer_identifier``, ``config_identifier``) and
``oci_image.rs`` (``manifest_identifier``, ``blob_identifier``).

A *content digest* names a blob by a hash of its bytes: ``<algorithm>:<lowercase hex>``. It is
not an fs-verity digest (the repository's object ids); both may start with ``sha256:`` in tool
output, never mix them (spec section 14).

============ ============ =============================================================
algorithm    hex digits   status here
============ ============ =============================================================
``sha256``   64           parsed and verified (the only one composefs-rs verifies)
``sha512``   128          parsed; *not verifiable*: composefs-rs checks content with sha256
                          only, so such a digest cannot be checked without a trusted
                          verity (spec section 14), and this collection refuses to import
                          blobs named by one
============ ============ =============================================================

Stream names (first-level entries of ``streams/``), one per stored blob:

=========================== ========================================= ==========================
stream name                 names                                     content type
=========================== ========================================= ==========================
``oci-manifest-<digest>``   the manifest, by manifest digest          ``ocimanif``
``oci-config-<digest>``     the config, by config digest              ``ociconfg``
``oci-layer-<diff_id>``     a tar layer, by uncompressed sha256;      ``ocilayer``
                            an artifact layer, by its blob digest     ``oci_blob``
``oci-blob-<digest>``       a standalone blob                         ``oci_blob``
=========================== ========================================= ==========================

Named-ref keys of a manifest stream: ``config:<config digest>`` and one ``<diff_id>`` per layer.
"""

from __future__ import annotations

import hashlib
from typing import NamedTuple

from ansible_collections.bootc.composefs.plugins.module_utils.errors import ComposefsError, FormatError

__all__ = [
    "SHA256",
    "SHA512",
    "HEX_LENGTHS",
    "MANIFEST_STREAM_PREFIX",
    "CONFIG_STREAM_PREFIX",
    "LAYER_STREAM_PREFIX",
    "BLOB_STREAM_PREFIX",
    "STREAM_KINDS",
    "CONFIG_REF_PREFIX",
    "OciDigest",
    "parse_digest",
    "validate_digest",
    "is_digest",
    "sha256_digest",
    "new_hasher",
    "check_digest",
    "stream_name",
    "manifest_stream_name",
    "config_stream_name",
    "layer_stream_name",
    "blob_stream_name",
    "parse_stream_name",
    "config_ref_name",
    "parse_config_ref_name",
]

SHA256 = "sha256"
SHA512 = "sha512"
# algorithm -> number of lowercase hex digits of its digests
HEX_LENGTHS = {SHA256: 64, SHA512: 128}
# content digests this code (and composefs-rs) can check against content
VERIFIABLE_ALGORITHMS = (SHA256,)
_HEX_DIGITS = frozenset("0123456789abcdef")

MANIFEST_STREAM_PREFIX = "oci-manifest-"
CONFIG_STREAM_PREFIX = "oci-config-"
LAYER_STREAM_PREFIX = "oci-layer-"
BLOB_STREAM_PREFIX = "oci-blob-"
# kind -> stream name prefix
STREAM_KINDS = {
    "manifest": MANIFEST_STREAM_PREFIX,
    "config": CONFIG_STREAM_PREFIX,
    "layer": LAYER_STREAM_PREFIX,
    "blob": BLOB_STREAM_PREFIX,
}
CONFIG_REF_PREFIX = "config:"


class OciDigest(NamedTuple):
    """A parsed content digest; ``str()`` gives back ``<algorithm>:<hex>``."""

    algorithm: str
    hex: str

    def __str__(self) -> str:
        return "%s:%s" % (self.algorithm, self.hex)

    @property
    def verifiable(self) -> bool:
        """True when content can be checked against this digest (sha256 only, spec section 14)."""
        return self.algorithm in VERIFIABLE_ALGORITHMS


def parse_digest(text, what: str = "digest") -> OciDigest:
    """Parse ``sha256:<64 hex>`` or ``sha512:<128 hex>`` (lowercase); FormatError naming ``what`` otherwise."""
    if not isinstance(text, str):
        raise FormatError("%s %r is not a string; expected sha256:<64 lowercase hex digits>" % (what, text))
    algorithm, colon, hex_part = text.partition(":")
    length = HEX_LENGTHS.get(algorithm)
    if not colon or length is None:
        raise FormatError("%s %r does not start with sha256: (or sha512:); expected sha256:<64 lowercase hex digits>"
                          % (what, text))
    if len(hex_part) != length or not set(hex_part) <= _HEX_DIGITS:
        raise FormatError("%s %r: expected %d lowercase hex digits after %s:, found %r"
                          % (what, text, length, algorithm, hex_part))
    return OciDigest(algorithm, hex_part)


def validate_digest(text, what: str = "digest") -> str:
    """Return ``text`` when it is a well-formed digest (see :func:`parse_digest`)."""
    parse_digest(text, what)
    return text


def is_digest(text) -> bool:
    """Return whether ``text`` is a well-formed digest."""
    try:
        parse_digest(text)
    except FormatError:
        return False
    return True


def sha256_digest(data) -> str:
    """Return the ``sha256:<hex>`` content digest of ``data``."""
    return SHA256 + ":" + hashlib.sha256(data).hexdigest()


def new_hasher(digest: str, what: str = "digest"):
    """Return a ``hashlib`` object for checking content against ``digest``; ComposefsError if it is unverifiable."""
    parsed = parse_digest(digest, what)
    if not parsed.verifiable:
        raise ComposefsError("%s %s cannot be verified: composefs checks content with sha256 only (a sha512 content "
                             "digest needs a trusted fs-verity digest instead); use an image with sha256 digests"
                             % (what, digest))
    return hashlib.new(parsed.algorithm)


def check_digest(actual: str, expected: str, what: str, path: str | None = None) -> None:
    """Raise ComposefsError naming both digests when ``actual`` differs from ``expected``."""
    if actual != expected:
        raise ComposefsError("%s has digest %s, not the expected %s: the content is corrupted or does not belong to "
                             "this image; fetch it again" % (what, actual, expected), path=path,
                             partial_result={"expected_digest": expected, "actual_digest": actual})


def stream_name(kind: str, digest: str) -> str:
    """Return the stream name of ``kind`` (manifest, config, layer, blob) for ``digest``."""
    prefix = STREAM_KINDS.get(kind)
    if prefix is None:
        raise ValueError("unknown stream kind %r (expected one of %s)" % (kind, ", ".join(sorted(STREAM_KINDS))))
    return prefix + validate_digest(digest, "%s digest" % kind)


def manifest_stream_name(manifest_digest: str) -> str:
    """Return ``oci-manifest-<manifest digest>``."""
    return stream_name("manifest", manifest_digest)


def config_stream_name(config_digest: str) -> str:
    """Return ``oci-config-<config digest>``."""
    return stream_name("config", config_digest)


def layer_stream_name(diff_id: str) -> str:
    """Return ``oci-layer-<diff_id>`` (an artifact layer: its blob digest)."""
    return stream_name("layer", diff_id)


def blob_stream_name(digest: str) -> str:
    """Return ``oci-blob-<digest>``."""
    return stream_name("blob", digest)


def parse_stream_name(name) -> tuple | None:
    """Return ``(kind, digest)`` of an OCI stream name, or None when ``name`` is not one."""
    if not isinstance(name, str):
        return None
    for kind, prefix in STREAM_KINDS.items():
        if name.startswith(prefix) and is_digest(name[len(prefix):]):
            return kind, name[len(prefix):]
    return None


def config_ref_name(config_digest: str) -> str:
    """Return the manifest stream's named-ref key of its config: ``config:<config digest>``."""
    return CONFIG_REF_PREFIX + validate_digest(config_digest, "config digest")


def parse_config_ref_name(name) -> str | None:
    """Return the config digest of a ``config:<digest>`` key, or None when ``name`` is not one."""
    if isinstance(name, str) and name.startswith(CONFIG_REF_PREFIX) and is_digest(name[len(CONFIG_REF_PREFIX):]):
        return name[len(CONFIG_REF_PREFIX):]
    return None
