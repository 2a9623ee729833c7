# -*- coding: utf-8 -*-
"""oci/skopeo.py: command lines, masked credentials, and the failure classes of real skopeo errors.

The classification cases marked ``real`` feed the class the error text real ``skopeo inspect``
prints for a situation this test creates (a closed port, a server answering 401, plain HTTP asked
for HTTPS, a missing layout, an unknown transport); the others are texts from containers/image.
"""

import http.server
import os
import socket
import subprocess
import threading

import pytest

from ansible_collections.bootc.composefs.plugins.module_utils.errors import ToolError
from ansible_collections.bootc.composefs.plugins.module_utils.oci import skopeo
from ansible_collections.bootc.composefs.plugins.module_utils.oci.layout import Platform


class _Refuse(http.server.BaseHTTPRequestHandler):
    """A registry that wants credentials it never accepts."""

    def do_GET(self):  # pylint: disable=invalid-name
        body = b'{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}'
        self.send_response(401)
        self.send_header("WWW-Authenticate", 'Basic realm="test"')
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_HEAD = do_GET

    def log_message(self, *args):  # pylint: disable=arguments-differ
        pass


@pytest.fixture(scope="module")
def refusing_registry():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Refuse)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield "127.0.0.1:%d" % server.server_address[1]
    server.shutdown()
    server.server_close()


def _closed_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _skopeo_error(argv):
    proc = subprocess.run(["skopeo"] + argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          env=dict(os.environ, LC_ALL="C"), check=False)
    assert proc.returncode != 0
    return proc.stderr.decode("utf-8", "replace")


def test_real_errors_are_classified(refusing_registry, tmp_path):
    cases = [
        (["inspect", "--tls-verify=false", "docker://127.0.0.1:%d/x:1" % _closed_port()], skopeo.UNREACHABLE),
        (["inspect", "--tls-verify=false", "docker://%s/x:1" % refusing_registry], skopeo.AUTH_REFUSED),
        (["inspect", "--tls-verify=false", "--creds", "u:p", "docker://%s/x:1" % refusing_registry], skopeo.AUTH_REFUSED),
        (["inspect", "docker://%s/x:1" % refusing_registry], skopeo.TLS),
        (["inspect", "oci:%s:1" % (tmp_path / "missing")], skopeo.NOT_FOUND),
        (["inspect", "ftp://x"], skopeo.UNKNOWN_TRANSPORT),
    ]
    for argv, expected in cases:
        text = _skopeo_error(argv)
        assert skopeo.classify_failure(text) == expected, (argv, text)


@pytest.mark.parametrize("text, expected", [
    ("reading manifest 1 in quay.io/x: manifest unknown: manifest unknown", skopeo.NOT_FOUND),
    ("reading manifest latest in quay.io/x: name unknown: repository name not known to registry", skopeo.NOT_FOUND),
    ('no descriptor found for reference "nope"', skopeo.NOT_FOUND),
    ("choosing image instance: no image found in image index for architecture s390x, variant \"\", OS linux",
     skopeo.NOT_FOUND),
    ("requested access to the resource is denied", skopeo.AUTH_REFUSED),
    ("reading blob sha256:aa: fetching blob: unauthorized: authentication required", skopeo.AUTH_REFUSED),
    ("x509: certificate signed by unknown authority", skopeo.TLS),
    ("corrupted blob, expecting sha256:aa", skopeo.DIGEST_MISMATCH),
    ("Digest did not match, expected sha256:aa, got sha256:bb", skopeo.DIGEST_MISMATCH),
    ("writing blob: write /var/tmp/x: no space left on device", skopeo.NO_SPACE),
    ("read tcp 127.0.0.1:1->127.0.0.1:2: read: connection reset by peer", skopeo.UNREACHABLE),
    ("unexpected EOF", skopeo.UNREACHABLE),
    ("dial tcp: lookup nosuchhost.invalid on 10.0.0.1:53: no such host", skopeo.UNREACHABLE),
    ("Source image rejected: Running image docker://x is rejected by policy.", skopeo.POLICY_REJECTED),
    ("open /srv/os/index.json: permission denied", skopeo.TOOL_FAILED),
    ("something else entirely", skopeo.TOOL_FAILED),
])
def test_texts_are_classified(text, expected):
    assert skopeo.classify_failure(text) == expected


def test_every_class_has_a_hint():
    classes = {name for name, _pattern in skopeo._PATTERNS}  # pylint: disable=protected-access
    assert classes | {skopeo.MISSING_TOOL, skopeo.TOOL_FAILED} == set(skopeo.FAILURE_CLASSES)
    assert skopeo.failure_hint("no-such-class") == skopeo.FAILURE_CLASSES[skopeo.TOOL_FAILED]


def test_command_lines():
    options = skopeo.SourceOptions(authfile="/etc/auth.json", creds="me:secret", tls_verify=False, cert_dir="/etc/certs",
                                   platform=Platform("linux", "arm64", "v8"), insecure_policy=True)
    argv = skopeo.proxy_argv(["skopeo"], options)
    assert argv == ["skopeo", "--override-os", "linux", "--override-arch", "arm64", "--override-variant", "v8",
                    "--insecure-policy", "experimental-image-proxy", "--authfile", "/etc/auth.json", "--creds", "me:secret",
                    "--tls-verify=false", "--cert-dir", "/etc/certs"]
    assert skopeo.display_argv(argv)[11:13] == ["--creds", skopeo.MASK]
    assert "me:secret" not in " ".join(skopeo.display_argv(argv))
    assert skopeo.display_argv(["x", "--creds=me:secret"]) == ["x", "--creds=" + skopeo.MASK]
    assert skopeo.proxy_argv(("/usr/bin/skopeo",), skopeo.SourceOptions()) == ["/usr/bin/skopeo", "experimental-image-proxy"]
    assert skopeo.image_args(skopeo.SourceOptions(tls_verify=True)) == ["--tls-verify=true"]
    assert skopeo.global_args(skopeo.SourceOptions(platform=Platform("linux", "amd64"))) == [
        "--override-os", "linux", "--override-arch", "amd64"]


def test_real_skopeo_accepts_the_global_options(tmp_path):
    """skopeo's own parser is the oracle for the option spelling (it rejects unknown flags)."""
    argv = skopeo.global_args(skopeo.SourceOptions(platform=Platform("linux", "arm64", "v8"), insecure_policy=True))
    argv += ["inspect"] + skopeo.image_args(skopeo.SourceOptions(authfile=str(tmp_path / "auth.json"), tls_verify=False,
                                                                 cert_dir=str(tmp_path)))
    text = _skopeo_error(argv + ["oci:%s:1" % (tmp_path / "missing")])
    assert "unknown flag" not in text and skopeo.classify_failure(text) == skopeo.NOT_FOUND


def test_tool_error_shape():
    err = skopeo.tool_error("pulling docker://x", "unauthorized", command=["skopeo", "--creds", "u:p"], rc=1, stderr="e" * 5000)
    assert isinstance(err, ToolError)
    assert err.partial_result == {"failure": skopeo.AUTH_REFUSED, "command": ["skopeo", "--creds", skopeo.MASK]}
    assert str(err).startswith("pulling docker://x: unauthorized (") and "creds or an authfile" in str(err)
    assert err.command == ["skopeo", "--creds", skopeo.MASK] and err.rc == 1 and len(err.stderr) == skopeo.STDERR_TAIL_CHARS
    assert skopeo.tool_error("x", "", failure=skopeo.UNREACHABLE).partial_result == {"failure": skopeo.UNREACHABLE}


def test_missing_tool_error():
    with pytest.raises(OSError) as raised:
        subprocess.run(["/nonexistent/skopeo"], check=False)
    failed = skopeo.missing_tool_error(["/nonexistent/skopeo", "inspect"], raised.value)
    assert failed.partial_result["failure"] == skopeo.MISSING_TOOL
    assert "cannot run /nonexistent/skopeo" in str(failed) and "not installed" in str(failed)
    failed = skopeo.missing_tool_error(["x"], PermissionError(13, "Permission denied"))
    assert failed.partial_result["failure"] == skopeo.TOOL_FAILED


def test_tool_env_forces_c_locale():
    env = skopeo.tool_env()
    assert env["LC_ALL"] == "C" and env.get("PATH") == os.environ.get("PATH")
