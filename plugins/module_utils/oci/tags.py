# -*- coding: utf-8 -*-
# Copyright: (c) 2026, bootc.composefs maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""OCI tags: named GC roots pointing at manifest streams, and bootc's ``localhost/bootc-<digest>`` tags.

Layer: oci. Spec: ``composefs-repo.md`` section 10.4; upstream: composefs-rs
``crates/composefs-oci/src/oci_image.rs`` (``tag_image``, ``untag_image``, ``resolve_ref``,
``list_refs``, ``encode_tag``, ``decode_tag``) and bootc ``crates/lib/src/composefs_consts.rs``.

A tag is the ref ``streams/refs/oci/<encode(tag)>`` whose link text is
``../../oci-manifest-<manifest digest>``: it names the manifest's stream entry, so a rewritten
manifest (new EROFS refs) is followed automatically.

Encoding of a tag into one file name: every ``%`` becomes ``%25``, then every ``/`` becomes
``%2F``; nothing else changes (``:`` and ``@`` stay, no ``:latest`` is added). Decoding is one
left-to-right pass: ``%2F`` -> ``/``, ``%25`` -> ``%`` (uppercase only); any other ``%`` is kept
together with the (up to) two characters after it.

======================================= ==========================================
tag                                     file under ``streams/refs/oci/``
======================================= ==========================================
``localhost/bootc-sha256:abc``          ``localhost%2Fbootc-sha256:abc``
``myimage:latest``                      ``myimage:latest``
``quay.io/fedora/fedora-bootc:42``      ``quay.io%2Ffedora%2Ffedora-bootc:42``
``docker://busybox``                    ``docker:%2F%2Fbusybox``
``test%2F``                             ``test%252F``
======================================= ==========================================

Rules added here: a tag may not start with ``@`` (reserved for digests, as upstream), be empty,
contain NUL, or encode to ``.``/``..``. Manifest digests must be ``sha256:<64 lowercase hex>``
(``digest.py`` parses them and names their streams; a tag refuses the sha512 digests it also
parses). Both are path safety rules here: a bad tag or digest is an ``UnsafePathError``.

bootc names the tag of each deployed image ``localhost/bootc-<manifest digest>`` (a GC root for
that deployment); :func:`bootc_tag` and :func:`is_bootc_tag` build and recognise those names.
"""

from __future__ import annotations

from ansible_collections.bootc.composefs.plugins.module_utils.errors import DanglingRefError, FormatError, UnsafePathError
from ansible_collections.bootc.composefs.plugins.module_utils.oci import digest as oci_digest
from ansible_collections.bootc.composefs.plugins.module_utils.repository import paths

__all__ = [
    "OCI_REF_PREFIX",
    "BOOTC_TAG_PREFIX",
    "encode_tag",
    "decode_tag",
    "validate_tag",
    "validate_manifest_digest",
    "manifest_stream_name",
    "tag_ref",
    "tag_image",
    "untag_image",
    "resolve_tag",
    "list_tags",
    "bootc_tag",
    "is_bootc_tag",
]

OCI_REF_PREFIX = "oci/"  # tags live in streams/refs/oci/
BOOTC_TAG_PREFIX = "localhost/bootc-"
_TAG_REF_DEPTH = 2  # streams/refs/oci/<tag> climbs two levels to reach streams/


def encode_tag(tag: str) -> str:
    """Return the file name of ``tag`` under ``streams/refs/oci/`` (``%`` -> ``%25``, then ``/`` -> ``%2F``)."""
    return tag.replace("%", "%25").replace("/", "%2F")


def decode_tag(name: str) -> str:
    """Return the tag stored as file name ``name`` (single pass; unknown ``%xx`` kept as is)."""
    out = []
    position, end = 0, len(name)
    while position < end:
        char = name[position]
        if char != "%":
            out.append(char)
            position += 1
            continue
        code = name[position + 1:position + 3]
        out.append({"2F": "/", "25": "%"}.get(code, "%" + code))
        position += 1 + len(code)
    return "".join(out)


def validate_tag(tag) -> str:
    """Return ``tag`` when it can be stored; UnsafePathError otherwise."""
    if not isinstance(tag, str) or not tag:
        raise UnsafePathError("tag %r is empty or not a string; use a name like 'quay.io/org/image:tag'" % (tag,))
    if tag.startswith("@"):
        raise UnsafePathError("tag %r starts with '@', which is reserved for digest references; drop the '@'" % (tag,))
    encoded = encode_tag(tag)
    if encoded in (".", "..") or "\0" in tag:
        raise UnsafePathError("tag %r cannot be stored as a file name; use a real image name" % (tag,))
    paths.split_relpath(encoded, "encoded tag")
    return tag


def validate_manifest_digest(manifest_digest) -> str:
    """Return ``manifest_digest`` when it is ``sha256:<64 lowercase hex>``; UnsafePathError otherwise."""
    try:
        algorithm = oci_digest.parse_digest(manifest_digest, "manifest digest").algorithm
    except FormatError:
        algorithm = None
    if algorithm != oci_digest.SHA256:
        raise UnsafePathError("manifest digest %r is not sha256:<64 lowercase hex digits>; pass the digest skopeo or "
                              "the registry reports" % (manifest_digest,))
    return manifest_digest


def manifest_stream_name(manifest_digest: str) -> str:
    """Return the stream entry name of a manifest: ``oci-manifest-<digest>`` (UnsafePathError for a bad digest)."""
    return oci_digest.manifest_stream_name(validate_manifest_digest(manifest_digest))


def tag_ref(tag: str) -> str:
    """Return the ref name (below ``streams/refs/``) that stores ``tag``: ``oci/<encoded>``."""
    return OCI_REF_PREFIX + encode_tag(validate_tag(tag))


def tag_image(repo, manifest_digest: str, tag: str) -> None:
    """Point ``tag`` at the manifest stream of ``manifest_digest`` (atomic replace; the stream is not checked)."""
    repo.name_stream(manifest_stream_name(manifest_digest), tag_ref(tag))


def untag_image(repo, tag: str) -> None:
    """Remove ``tag``; DanglingRefError when the repository has no such tag."""
    if not repo.remove_stream_ref(tag_ref(tag)):
        raise DanglingRefError("tag %r does not exist; list the tags to see what is there" % (tag,),
                               path="%s/streams/refs/%s" % (repo.path, tag_ref(tag)))


def _digest_of_stream(stream_name: str) -> str | None:
    """Return the sha256 manifest digest a stream name carries, or None when it is no such name."""
    parsed = oci_digest.parse_stream_name(stream_name)
    if parsed is None or parsed[0] != "manifest" or not parsed[1].startswith(oci_digest.SHA256 + ":"):
        return None
    return parsed[1]


def resolve_tag(repo, tag: str) -> tuple | None:
    """Return ``(manifest_digest, object_id of the manifest stream)`` for ``tag``, or None when untagged.

    UnsafePathError when the tag's link is not ``../../oci-manifest-sha256:<hex>``; DanglingRefError
    when the manifest stream it names does not exist.
    """
    ref = tag_ref(tag)
    where = "%s/streams/refs/%s" % (repo.path, ref)
    stream_name = repo.stream_ref_target(ref)
    if stream_name is None:
        return None
    manifest_digest = _digest_of_stream(stream_name)
    if manifest_digest is None:
        raise UnsafePathError("tag names stream %r, which is not oci-manifest-sha256:<hex>; re-tag the image" % stream_name,
                              path=where)
    if not repo.has_stream(stream_name):
        raise DanglingRefError("tag names manifest stream %r, which does not exist; pull the image again or remove the "
                               "tag" % stream_name, path=where)
    return manifest_digest, repo.stream_object_id(stream_name)


def list_tags(repo) -> list:
    """Return ``[(tag, manifest_digest)]`` for every tag, sorted by stored name.

    Like composefs-rs, refs that are not exactly ``../../oci-manifest-sha256:<hex>`` are skipped
    (also nested directories, which no encoded tag produces); nothing is followed.
    """
    result = []
    for relpath, text in repo.list_stream_refs(OCI_REF_PREFIX.rstrip("/")):
        if "/" in relpath:
            continue
        try:
            stream_name = paths.parse_ref_link(text, _TAG_REF_DEPTH)
        except UnsafePathError:
            continue
        manifest_digest = _digest_of_stream(stream_name)
        if manifest_digest is not None:
            result.append((decode_tag(relpath), manifest_digest))
    return result


def bootc_tag(manifest_digest: str) -> str:
    """Return bootc's tag for a deployed image: ``localhost/bootc-<manifest digest>``."""
    return BOOTC_TAG_PREFIX + validate_manifest_digest(manifest_digest)


def is_bootc_tag(tag: str) -> bool:
    """Return whether ``tag`` is one of bootc's ``localhost/bootc-...`` tags."""
    return isinstance(tag, str) and tag.startswith(BOOTC_TAG_PREFIX)
