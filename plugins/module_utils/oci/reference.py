# -*- coding: utf-8 -*-
# Copyright: (c) 2026, bootc.composefs maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Container image references: ``<transport>:<name>``, bootc's ``ostree-*`` forms, pinned digests (layer: oci).

Spec: bootc-composefs-host.md §1.4 (origin ``container-image-reference``) and §2.8 (the status
``ImageReference`` mapping). Upstream: bootc ``crates/lib/src/spec.rs`` (``ImageReference``),
``crates/ostree-ext/src/container/mod.rs`` (``OstreeImageReference``, ``SignatureSource``),
containers-image-proxy-rs ``imageref.rs`` (``Transport``); the transport names are those of
containers/image (``skopeo copy`` reads the same strings).

A reference is a transport and a name. The transports and how a name is written for each:

====================== ===================================== =========================================
transport (status)     written as                            name
====================== ===================================== =========================================
``registry``           ``docker://NAME``, ``registry:NAME``,  ``quay.io/org/os:42``,
                       or a bare ``NAME``                     ``quay.io/org/os@sha256:<hex>``
``oci``                ``oci:DIR[:REF]``                      an image layout directory; ``REF`` its
                                                              ``org.opencontainers.image.ref.name``
``oci-archive``        ``oci-archive:FILE[:REF]``             a tar of an image layout
``docker-archive``     ``docker-archive:FILE[:NAME:TAG]``     ``docker save`` output
``containers-storage`` ``containers-storage:[STORE]NAME``     an image of podman's storage; ``[STORE]``
                                                              = ``[driver@root+runroot]``
``dir``                ``dir:DIR``                            skopeo's own directory format
``docker-daemon``      ``docker-daemon:NAME``                 an image of a Docker daemon
====================== ===================================== =========================================

bootc writes origins with a signature-policy prefix in front (``parse_image_reference``):

=================================== ================================ ==============================
prefix                              signature                        rest
=================================== ================================ ==============================
``ostree-unverified-image:``        none                             ``<transport>:<name>``
``ostree-unverified-registry:``     none                             ``<name>`` (transport registry)
``ostree-image-signed:``            ``container-policy``             ``<transport>:<name>``
``ostree-remote-image:<remote>:``   ``ostree-remote`` (``remote``)   ``<transport>:<name>``
``ostree-remote-registry:<remote>:`` ``ostree-remote`` (``remote``)  ``<name>`` (transport registry)
=================================== ================================ ==============================

``docker:`` needs its ``//``; every other transport is followed by ``:`` alone. Examples:
``docker://quay.io/example/os:42`` -> (``registry``, ``quay.io/example/os:42``);
``containers-storage:localhost/bootc-derived`` -> (``containers-storage``, ``localhost/bootc-derived``);
``oci:/path/to/dir:tag`` -> (``oci``, ``/path/to/dir:tag``).

Pinned digests: a name ending in ``@sha256:<64 lowercase hex>`` is pinned (``pinned_digest``) on any
transport. Registries and containers-storage resolve it themselves; for the file transports
(``oci``, ``oci-archive``, ``docker-archive``, ``dir``), which skopeo 1.9 cannot address by digest,
``source_name`` drops it and the caller checks the digest of what it got (see
``operations/pull.py``).

:func:`parse_reference` is what ``composefs_pull`` accepts: any of the forms above, or a bare name
plus a separate transport. A ``word://`` or ``word:`` prefix whose word is no transport of this
table is an unknown transport (``ftp://x``) unless the name reads as a registry ``host:port/...``
or ``name:tag`` (``localhost:5000/os``, ``fedora:42``), which are bare registry names.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ansible_collections.bootc.composefs.plugins.module_utils.errors import FormatError

__all__ = [
    "TRANSPORTS",
    "PULL_TRANSPORTS",
    "FILE_TRANSPORTS",
    "SIGNATURE_CONTAINER_POLICY",
    "SIGNATURE_OSTREE_REMOTE",
    "ImageReference",
    "parse_image_reference",
    "parse_reference",
    "split_pinned_digest",
]

SIGNATURE_CONTAINER_POLICY = "container-policy"
SIGNATURE_OSTREE_REMOTE = "ostree-remote"

REGISTRY = "registry"
# transport as written -> transport as reported (status and this collection)
TRANSPORTS = {
    "registry": REGISTRY,
    "docker": REGISTRY,
    "oci": "oci",
    "oci-archive": "oci-archive",
    "docker-archive": "docker-archive",
    "containers-storage": "containers-storage",
    "dir": "dir",
    "docker-daemon": "docker-daemon",
}
# the transports composefs_pull offers as a separate option
PULL_TRANSPORTS = ("registry", "oci", "oci-archive", "docker-archive", "containers-storage")
# transports whose names are paths: skopeo 1.9 cannot address them by digest
FILE_TRANSPORTS = ("oci", "oci-archive", "docker-archive", "dir")

# scheme -> (signature, has a remote name, rest is a bare registry name)
_SCHEMES = {
    "ostree-unverified-image": (None, False, False),
    "ostree-unverified-registry": (None, False, True),
    "ostree-image-signed": (SIGNATURE_CONTAINER_POLICY, False, False),
    "ostree-remote-image": (SIGNATURE_OSTREE_REMOTE, True, False),
    "ostree-remote-registry": (SIGNATURE_OSTREE_REMOTE, True, True),
}
_PINNED = re.compile(r"@(sha256:[0-9a-f]{64})\Z")
_SCHEME_WORD = re.compile(r"\A([A-Za-z][A-Za-z0-9+.-]*)(://|:)")
# "host:port/..." or "name:tag" with no slash after the colon: a registry name, not a transport
_REGISTRY_PORT = re.compile(r"\A[A-Za-z0-9.-]+:[0-9]+/")
_NAME_AND_TAG = re.compile(r"\A[a-z0-9._/-]+:[A-Za-z0-9_.-]+(@sha256:[0-9a-f]{64})?\Z")


def split_pinned_digest(name: str) -> tuple:
    """Return ``(name without @digest, digest or None)`` for a name that may end in ``@sha256:<hex>``."""
    found = _PINNED.search(name)
    if found is None:
        return name, None
    return name[:found.start()], found.group(1)


@dataclass(frozen=True)
class ImageReference:
    """A container image reference: status ``transport``, ``image`` name, signature policy, raw text."""

    transport: str
    image: str
    signature: str | None
    remote: str | None
    raw: str

    @property
    def pinned_digest(self) -> str | None:
        """The ``sha256:<hex>`` the name is pinned to, or None."""
        return split_pinned_digest(self.image)[1]

    @property
    def unverified(self) -> bool:
        """True for bootc's ``ostree-unverified-*`` forms: no signature policy applies."""
        return self.signature is None and self.raw.startswith("ostree-unverified-")

    def source_name(self) -> str:
        """The reference as skopeo and podman read it (``docker://NAME``, ``oci:DIR:REF``...).

        For the file transports a pinned digest is left out (see the module docstring).
        """
        name = self.image
        if self.transport in FILE_TRANSPORTS:
            name = split_pinned_digest(name)[0]
        if self.transport == REGISTRY:
            return "docker://" + name
        return "%s:%s" % (self.transport, name)

    def display(self) -> str:
        """``<transport>:<name>`` as this collection reports it (registry names with ``docker://``)."""
        if self.transport == REGISTRY:
            return "docker://" + self.image
        return "%s:%s" % (self.transport, self.image)


def _split_transport(rest: str, raw: str) -> tuple:
    transport, sep, name = rest.partition(":")
    if not sep:
        raise FormatError("image reference %r has no '<transport>:'" % raw)
    if transport not in TRANSPORTS:
        raise FormatError("image reference %r has unknown transport %r (known: %s)"
                          % (raw, transport, ", ".join(sorted(set(TRANSPORTS) - {REGISTRY}))))
    if transport == "docker":
        if not name.startswith("//"):
            raise FormatError("image reference %r: docker transport needs 'docker://'" % raw)
        name = name[2:]
    if not name:
        raise FormatError("image reference %r has an empty image name" % raw)
    return TRANSPORTS[transport], name


def parse_image_reference(text: str) -> ImageReference:
    """Parse an ``ostree-*:<transport>:<name>`` reference as bootc writes it in origins (table above)."""
    scheme, sep, rest = text.partition(":")
    if not sep:
        raise FormatError("image reference %r has no ':'" % text)
    if scheme not in _SCHEMES:
        raise FormatError("image reference %r has unknown scheme %r" % (text, scheme))
    signature, has_remote, bare_registry = _SCHEMES[scheme]
    remote = None
    if has_remote:
        remote, sep, rest = rest.partition(":")
        if not sep:
            raise FormatError("image reference %r has no ':' after the ostree remote name" % text)
    if bare_registry:
        rest = "registry:" + rest
    transport, name = _split_transport(rest, text)
    return ImageReference(transport=transport, image=name, signature=signature, remote=remote, raw=text)


def _looks_like_registry_name(text: str) -> bool:
    return bool(_REGISTRY_PORT.match(text) or _NAME_AND_TAG.match(text))


def parse_reference(text, transport: str | None = None) -> ImageReference:
    """Parse what ``composefs_pull`` accepts as ``image``: any form above, or a bare name with ``transport``.

    FormatError for an empty name, an unknown transport or scheme, or a ``transport`` that
    contradicts the one written in ``text``.
    """
    if not isinstance(text, str) or not text.strip():
        raise FormatError("image reference %r is empty; give a name like quay.io/org/os:42" % (text,))
    text = text.strip()
    if transport is not None and transport not in TRANSPORTS:
        raise FormatError("unknown transport %r (known: %s)" % (transport, ", ".join(PULL_TRANSPORTS)))
    wanted = TRANSPORTS[transport] if transport is not None else None
    if text.startswith("ostree-"):
        parsed = parse_image_reference(text)
    else:
        found = _SCHEME_WORD.match(text)
        word = found.group(1) if found else None
        if word in TRANSPORTS and (found.group(2) == ":" or word == "docker"):
            transport_name, name = _split_transport(text, text)
            parsed = ImageReference(transport=transport_name, image=name, signature=None, remote=None, raw=text)
        elif found is not None and (found.group(2) == "://" or not _looks_like_registry_name(text)):
            raise FormatError("image reference %r has unknown transport %r (known: %s)"
                              % (text, word, ", ".join(PULL_TRANSPORTS)))
        else:
            parsed = ImageReference(transport=wanted or REGISTRY, image=text, signature=None, remote=None, raw=text)
    if wanted is not None and parsed.transport != wanted:
        raise FormatError("image reference %r names transport %r but transport %r was asked for; drop one of them"
                          % (text, parsed.transport, transport))
    return parsed
