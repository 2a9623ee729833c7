# -*- coding: utf-8 -*-
# Copyright: (c) 2026, bootc.composefs maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ``skopeo`` command line, wrapped once: options, exact argv, and what its failures mean (layer: oci).

Upstream: skopeo ``cmd/skopeo/main.go`` (global options), ``utils.go`` (image options),
``proxy.go`` (``experimental-image-proxy``); the error texts come from containers/image, which
podman shares (``podman.py`` classifies its failures here too).

Command lines built here (``command`` is ``["skopeo"]`` or whatever the caller configured)::

    <command> [--override-os OS --override-arch ARCH [--override-variant V]] [--insecure-policy]
              experimental-image-proxy [--authfile F] [--creds USER:PASS] [--tls-verify=BOOL]
              [--cert-dir DIR]

The platform overrides make skopeo choose that platform's manifest from an image index (the
default is the machine's own, like ``layout.host_platform``); ``--insecure-policy`` is passed for
bootc's ``ostree-unverified-*`` references only, every other reference is checked against the
host's ``/etc/containers/policy.json`` as ``skopeo copy`` would. The proxy talks over its standard
input (a socket, ``proxy.py``), so the command line has no file descriptor number in it and two
runs record the same argv. :func:`display_argv` masks the ``--creds`` value; that masked argv is
what results report.

Every child runs with ``LC_ALL=C`` in an otherwise inherited environment.

Failure classes (:func:`classify_failure`, first match wins), each returned as ``failure`` in the
error's ``partial_result`` with a sentence saying what would fix it:

===================== ==========================================================================
class                 recognised by
===================== ==========================================================================
``missing-tool``      the program does not exist (``FileNotFoundError`` on exec)
``unknown-transport`` ``unknown transport``, ``Invalid image name``
``no-space``          ``no space left on device`` (ENOSPC), ``disk quota exceeded``
``digest-mismatch``   ``digest mismatch``, ``corrupted blob``, ``did not match``, ``digest ... does not match``
``auth-refused``      ``unauthorized``, ``authentication required``, ``access to the resource is
                      denied``, ``access denied``, ``forbidden``
``tls``               ``x509:``, ``certificate``, ``tls:``, ``HTTP response to HTTPS client``
``not-found``         ``manifest unknown``, ``name unknown``, ``not found``, ``no such file``,
                      ``no descriptor found``, ``does not resolve to an image ID``,
                      ``identifier is not an image``, ``no image found in manifest list``
``policy-rejected``   ``Source image rejected``, ``policy requirements``
``unreachable``       ``connection refused``, ``no such host``, ``i/o timeout``,
                      ``network is unreachable``, ``connection reset``, ``broken pipe``,
                      ``unexpected EOF``, ``EOF``, ``dial tcp``, ``TLS handshake timeout``,
                      ``context deadline exceeded``, ``no route to host``, ``server misbehaving``
``tool-failed``       anything else
===================== ==========================================================================
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from ansible_collections.bootc.composefs.plugins.module_utils.errors import ToolError

__all__ = [
    "FAILURE_CLASSES",
    "SourceOptions",
    "classify_failure",
    "failure_hint",
    "tool_error",
    "missing_tool_error",
    "tool_env",
    "display_argv",
    "global_args",
    "image_args",
    "proxy_argv",
]

STDERR_TAIL_CHARS = 2000
MASK = "********"
PROXY_SUBCOMMAND = "experimental-image-proxy"

MISSING_TOOL = "missing-tool"
UNKNOWN_TRANSPORT = "unknown-transport"
NO_SPACE = "no-space"
DIGEST_MISMATCH = "digest-mismatch"
AUTH_REFUSED = "auth-refused"
TLS = "tls"
NOT_FOUND = "not-found"
POLICY_REJECTED = "policy-rejected"
UNREACHABLE = "unreachable"
TOOL_FAILED = "tool-failed"

# class -> what would fix it (one clause, appended to the tool's own words)
FAILURE_CLASSES = {
    MISSING_TOOL: "the program is not installed on the managed host; install it (Debian/Fedora package of the same name)",
    UNKNOWN_TRANSPORT: "use one of the transports registry (docker://), oci, oci-archive, docker-archive, containers-storage",
    NO_SPACE: "the filesystem holding the repository is full; free space (composefs_gc) and pull again",
    DIGEST_MISMATCH: "the content does not match its digest: the source is corrupt or changed during the pull; pull again",
    AUTH_REFUSED: "the registry refused access; pass creds or an authfile with a login for it",
    TLS: "TLS failed; for a plain-HTTP registry set tls_verify to false, for a private CA point cert_dir at its certificates",
    NOT_FOUND: "the image, tag or digest does not exist at the source; check the reference",
    POLICY_REJECTED: "the signature policy (/etc/containers/policy.json) rejected the image",
    UNREACHABLE: "the source cannot be reached or stopped answering; check the address and the network, then pull again",
    TOOL_FAILED: "see the tool's message",
}

# (class, pattern) in the order they are tried
_PATTERNS = (
    (UNKNOWN_TRANSPORT, re.compile(r"unknown transport|invalid image name", re.IGNORECASE)),
    (NO_SPACE, re.compile(r"no space left on device|disk quota exceeded", re.IGNORECASE)),
    (DIGEST_MISMATCH, re.compile(r"digest mismatch|corrupted blob|did not match|digest[^\n]*does not match", re.IGNORECASE)),
    (AUTH_REFUSED, re.compile(r"unauthori[sz]ed|authentication required|access to the resource is denied|access denied|"
                              r"forbidden", re.IGNORECASE)),
    (TLS, re.compile(r"x509:|certificate|\btls:|http response to https client", re.IGNORECASE)),
    (NOT_FOUND, re.compile(r"manifest unknown|name unknown|not found|no such file|no descriptor found|"
                           r"does not resolve to an image id|identifier is not an image|no such image|"
                           r"no image found in (?:image index|manifest list)", re.IGNORECASE)),
    (POLICY_REJECTED, re.compile(r"source image rejected|policy requirements", re.IGNORECASE)),
    (UNREACHABLE, re.compile(r"connection refused|no such host|i/o timeout|network is unreachable|connection reset|"
                             r"broken pipe|unexpected eof|\beof\b|dial tcp|tls handshake timeout|"
                             r"context deadline exceeded|no route to host|server misbehaving", re.IGNORECASE)),
)


@dataclass(frozen=True)
class SourceOptions:
    """How to reach a source: credentials, TLS, platform choice, signature policy."""

    authfile: str | None = None
    creds: str | None = None
    tls_verify: bool | None = None
    cert_dir: str | None = None
    platform: tuple | None = None  # (os, architecture, variant), e.g. layout.Platform
    insecure_policy: bool = False


def classify_failure(text: str) -> str:
    """Return the failure class of a tool's error text (table in the module docstring)."""
    for name, pattern in _PATTERNS:
        if pattern.search(text or ""):
            return name
    return TOOL_FAILED


def failure_hint(failure: str) -> str:
    """The clause saying what fixes a failure class."""
    return FAILURE_CLASSES.get(failure, FAILURE_CLASSES[TOOL_FAILED])


def tool_env() -> dict:
    """The environment of every child: the inherited one with ``LC_ALL=C``."""
    return dict(os.environ, LC_ALL="C")


def display_argv(argv) -> list:
    """``argv`` with the value of ``--creds`` masked (what results report)."""
    shown, mask_next = [], False
    for arg in argv:
        arg = str(arg)
        if mask_next:
            shown.append(MASK)
            mask_next = False
        elif arg == "--creds":
            shown.append(arg)
            mask_next = True
        elif arg.startswith("--creds="):
            shown.append("--creds=" + MASK)
        else:
            shown.append(arg)
    return shown


def tool_error(what: str, text: str, command=None, rc: int | None = None, stderr: str = "",
               failure: str | None = None) -> ToolError:
    """A ToolError ``"<what>: <tool text> (<hint>)"`` whose partial result names the failure class and command."""
    failure = failure or classify_failure(text or stderr)
    detail = (text or stderr or "(no error output)").strip()
    shown = display_argv(command or [])
    result = {"failure": failure}
    if shown:
        result["command"] = shown
    return ToolError("%s: %s (%s)" % (what, detail, failure_hint(failure)), command=shown, rc=rc,
                     stderr=(stderr or "")[-STDERR_TAIL_CHARS:], partial_result=result)


def missing_tool_error(argv, err: OSError) -> ToolError:
    """The error for a program that cannot be started (``missing-tool`` when it does not exist)."""
    failure = MISSING_TOOL if isinstance(err, FileNotFoundError) else TOOL_FAILED
    return tool_error("cannot run %s" % argv[0], err.strerror or str(err), command=argv, failure=failure)


def global_args(options: SourceOptions) -> list:
    """skopeo's global options for ``options`` (platform overrides, insecure policy)."""
    args = []
    if options.platform is not None:
        os_name, architecture = options.platform[0], options.platform[1]
        variant = options.platform[2] if len(options.platform) > 2 else ""
        args += ["--override-os", os_name, "--override-arch", architecture]
        if variant:
            args += ["--override-variant", variant]
    if options.insecure_policy:
        args.append("--insecure-policy")
    return args


def image_args(options: SourceOptions) -> list:
    """The image options of a skopeo subcommand (also podman's, which has the same names)."""
    args = []
    if options.authfile:
        args += ["--authfile", str(options.authfile)]
    if options.creds:
        args += ["--creds", options.creds]
    if options.tls_verify is not None:
        args.append("--tls-verify=%s" % ("true" if options.tls_verify else "false"))
    if options.cert_dir:
        args += ["--cert-dir", str(options.cert_dir)]
    return args


def proxy_argv(command, options: SourceOptions) -> list:
    """The argv of skopeo's image proxy serving on its standard input."""
    return [str(part) for part in command] + global_args(options) + [PROXY_SUBCOMMAND] + image_args(options)
