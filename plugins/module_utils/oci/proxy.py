# -*- coding: utf-8 -*-
# Copyright: (c) 2026, bootc.composefs maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Client of skopeo's image proxy, ``skopeo experimental-image-proxy`` (layer: oci).

The proxy is how composefs-rs and bootc read images from any containers/image transport: one
skopeo process per pull, asked for the manifest, the config and one blob at a time, so a pull
fetches exactly the layers it lacks. Upstream: skopeo ``cmd/skopeo/proxy.go`` (the server and
its protocol notes), containers-image-proxy-rs ``src/imageproxy.rs`` (the Rust client);
composefs-rs ``crates/composefs-oci/src/skopeo.rs`` uses it the same way.

Wire protocol (version 0.2.x; skopeo 1.9 speaks 0.2.3):

- a ``SOCK_SEQPACKET`` socket pair; skopeo serves on its standard input (``--sockfd 0``);
- request: one JSON message ``{"method": NAME, "args": [...]}``;
- reply: one JSON message ``{"success": bool, "value": ..., "pipeid": int, "error": str}``; when
  ``pipeid`` is not 0 the read end of a pipe comes with it as ``SCM_RIGHTS`` ancillary data and
  carries the payload;
- skopeo closes a pipe's write end only when ``FinishPipe(pipeid)`` is called, and the reply to
  ``FinishPipe`` carries the payload's errors (short read, size or digest verification). It must
  be read; a payload is only valid once that reply says success.

=================== ========================== ===========================================
method              args                       value (+ pipe)
=================== ========================== ===========================================
``Initialize``      none                       protocol version, e.g. ``"0.2.3"``
``OpenImage``       ``"<transport>:<name>"``   image handle (an index is resolved to the
                                               platform's manifest here)
``GetManifest``     handle                     manifest digest *as the source names it*;
                                               pipe: the manifest, converted to OCI when the
                                               source has a Docker schema 2 one
``GetFullConfig``   handle                     none; pipe: the OCI config as skopeo
                                               re-serializes it (for converted manifests)
``GetBlob``         handle, digest, size       the blob's size; pipe: the blob, checked by
                                               skopeo against digest and size
``FinishPipe``      pipeid                     none; success = the payload was complete
``CloseImage``      handle                     none
=================== ========================== ===========================================

Per payload: request, reply with the pipe, ``FinishPipe`` sent at once, the pipe read to its end,
then the ``FinishPipe`` reply received. skopeo answers requests one at a time and ``FinishPipe``
waits for the payload's writer, so reading while it waits cannot deadlock, and one payload is
read at a time. A reader that stops early closes the pipe; skopeo's writer then fails and the
``FinishPipe`` reply (an error) is received and dropped, keeping the conversation in step.

Every payload is also checked here, while it is read: its sha256 against the digest it was asked
by, and its size. Limits: a reply message of more than ``MAX_REPLY_BYTES``; no reply within
``reply_timeout``; no payload bytes for ``data_timeout`` (an ``unreachable`` failure: skopeo is
waiting on a registry that stopped answering).

:class:`ImageProxy` is the conversation, :class:`ProxyPipe` one payload; ``proxy_source.py``
presents an image read through them as an image source for the importer.
"""

from __future__ import annotations

import array
import fcntl
import hashlib
import io
import json
import os
import select
import socket
import subprocess
import tempfile
from typing import Callable

from ansible_collections.bootc.composefs.plugins.module_utils.errors import ComposefsError
from ansible_collections.bootc.composefs.plugins.module_utils.oci import skopeo

__all__ = ["ImageProxy", "ProxyPipe", "REPLY_TIMEOUT_SECONDS", "DATA_TIMEOUT_SECONDS"]

MAX_REPLY_BYTES = 1 << 20  # skopeo's own messages stay under 32 KiB
MAX_JSON_PAYLOAD_BYTES = 16 << 20  # manifests and configs
READ_CHUNK_BYTES = 1 << 20
REPLY_TIMEOUT_SECONDS = 300.0  # opening an image may retry a slow registry for minutes
DATA_TIMEOUT_SECONDS = 300.0
EXIT_WAIT_SECONDS = 5.0
F_SETPIPE_SZ = 1031  # linux/fcntl.h
PIPE_BYTES = 1 << 20  # a 1 MiB pipe (the default maximum) lets skopeo run ahead of the reader: far fewer wake-ups
ABANDON_WAIT_SECONDS = 10.0  # how long an abandoned payload's FinishPipe reply is waited for
SUPPORTED_PROTOCOL = "0.2."
_FD_BYTES = array.array("i").itemsize


class ProxyPipe(io.RawIOBase):
    """One payload pipe: read it (hashing and counting), then :meth:`finish` for skopeo's verdict.

    ``expected_digest`` (``sha256:<hex>``) and ``expected_size`` are checked by :meth:`finish`;
    ``on_progress(bytes_read)`` is called about every ``READ_CHUNK_BYTES``. A read waits at most
    the proxy's ``data_timeout`` for data (then ``unreachable``: the source went silent, skopeo is
    killed on close); :meth:`interrupt`, from another thread, ends a waiting read at once.
    """

    path = None  # a pipe has no file to name in messages

    def __init__(self, proxy: "ImageProxy", fd: int, pipeid: int, what: str, expected_digest: str | None = None,
                 expected_size: int | None = None, on_progress: Callable[[int], None] | None = None) -> None:
        super().__init__()
        self._proxy = proxy
        self._fd = fd
        self.what = what
        self.expected_digest = expected_digest
        self.expected_size = expected_size
        self._hasher = hashlib.sha256()
        self._on_progress = on_progress
        self._next_report = READ_CHUNK_BYTES
        self.bytes_read = 0
        self._finished = False
        self._wake_read, self._wake_write = os.pipe()
        try:
            fcntl.fcntl(fd, F_SETPIPE_SZ, PIPE_BYTES)
        except OSError:
            pass  # a smaller pipe is only slower
        proxy.send("FinishPipe", pipeid)
        proxy.pending = self

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if self._fd < 0:
            return 0
        poller = select.poll()
        poller.register(self._fd, select.POLLIN | select.POLLHUP | select.POLLERR)
        poller.register(self._wake_read, select.POLLIN)
        ready = [fd for fd, _event in poller.poll(self._proxy.data_timeout * 1000)]
        if self._wake_read in ready:
            raise ComposefsError("reading %s was interrupted" % self.what)
        if not ready:
            self._proxy.broken = True
            raise skopeo.tool_error(self.what, "no data from the source for %d seconds" % self._proxy.data_timeout,
                                    command=self._proxy.argv, failure=skopeo.UNREACHABLE)
        count = os.readv(self._fd, [buffer])
        if count:
            self._hasher.update(memoryview(buffer)[:count])
            self.bytes_read += count
            if self.expected_size is not None and self.bytes_read > self.expected_size:
                raise skopeo.tool_error(self.what, "more than the %d bytes announced" % self.expected_size,
                                        command=self._proxy.argv, failure=skopeo.DIGEST_MISMATCH)
            if self._on_progress is not None and self.bytes_read >= self._next_report:
                self._next_report = self.bytes_read + READ_CHUNK_BYTES
                self._on_progress(self.bytes_read)
        return count

    def interrupt(self) -> None:
        """Make a read waiting in another thread (and every later one) fail at once."""
        if self._wake_write >= 0:
            os.write(self._wake_write, b"x")

    def finish(self) -> None:
        """Read what is left, take skopeo's ``FinishPipe`` reply, check size and digest; ToolError otherwise."""
        try:
            while self.read(READ_CHUNK_BYTES):
                pass
        except BaseException:
            self.close()
            raise
        self._close_fd()
        self._finished = True
        self._proxy.pending = None
        self._proxy.receive("FinishPipe", self.what)
        if self.expected_size is not None and self.bytes_read != self.expected_size:
            raise skopeo.tool_error(self.what, "got %d bytes, expected %d" % (self.bytes_read, self.expected_size),
                                    command=self._proxy.argv, failure=skopeo.DIGEST_MISMATCH)
        if self.expected_digest is not None:
            actual = "sha256:" + self._hasher.hexdigest()
            if actual != self.expected_digest:
                raise skopeo.tool_error(self.what, "content has digest %s, not %s" % (actual, self.expected_digest),
                                        command=self._proxy.argv, failure=skopeo.DIGEST_MISMATCH)
        if self._on_progress is not None:
            self._on_progress(self.bytes_read)

    def _close_fd(self) -> None:
        if self._fd >= 0:
            fd, self._fd = self._fd, -1
            os.close(fd)

    def close(self) -> None:
        """Abandon the payload unless finished (skopeo's error reply is received and dropped)."""
        if not self.closed and not self._finished:
            self._close_fd()
            self._finished = True
            self._proxy.pending = None
            if not self._proxy.broken:
                try:
                    self._proxy.receive("FinishPipe", self.what, timeout=ABANDON_WAIT_SECONDS)
                except ComposefsError:
                    pass
        self._close_fd()
        for attr in ("_wake_read", "_wake_write"):
            fd = getattr(self, attr)
            if fd >= 0:
                setattr(self, attr, -1)
                os.close(fd)
        super().close()


class ImageProxy:
    """One ``skopeo experimental-image-proxy`` process and the conversation with it (context manager).

    ``argv`` is the full command (``skopeo.proxy_argv``); ``what`` names the image in messages.
    """

    def __init__(self, argv, what: str, env: dict | None = None, reply_timeout: float = REPLY_TIMEOUT_SECONDS,
                 data_timeout: float = DATA_TIMEOUT_SECONDS) -> None:
        self.argv = [str(a) for a in argv]
        self.what = what
        self.env = env
        self.reply_timeout = reply_timeout
        self.data_timeout = data_timeout
        self.version = None
        self.pending = None
        self._sock = None
        self._proc = None
        self._stderr = None
        self.broken = False  # out of step with skopeo: every call fails, close() kills it

    # --- process ------------------------------------------------------------------------------

    def start(self) -> "ImageProxy":
        """Start skopeo and ``Initialize``; ToolError (``missing-tool``...) when it cannot run."""
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self._stderr = tempfile.TemporaryFile()  # pylint: disable=consider-using-with
        try:
            self._proc = subprocess.Popen(self.argv, stdin=child.fileno(), stdout=subprocess.DEVNULL,  # pylint: disable=consider-using-with
                                          stderr=self._stderr, env=self.env if self.env is not None else skopeo.tool_env(),
                                          close_fds=True)
        except OSError as err:
            parent.close()
            self._stderr.close()
            raise skopeo.missing_tool_error(self.argv, err) from None
        finally:
            child.close()
        self._sock = parent
        try:
            version = self.call("Initialize")[0]
            if not isinstance(version, str) or not version.startswith(SUPPORTED_PROTOCOL):
                raise skopeo.tool_error(self.what, "skopeo speaks image proxy protocol %r; protocol %sx is needed (skopeo 1.6 "
                                        "or later)" % (version, SUPPORTED_PROTOCOL), command=self.argv)
            self.version = version
        except BaseException:
            self.close()
            raise
        return self

    def __enter__(self) -> "ImageProxy":
        return self.start() if self._sock is None else self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def kill(self) -> None:
        """Kill skopeo now (a source that stopped answering): every open pipe reaches its end, every call fails."""
        self.broken = True
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()

    def stderr_tail(self) -> str:
        """The end of what skopeo wrote to its standard error so far."""
        if self._stderr is None or self._stderr.closed:
            return ""
        self._stderr.flush()
        size = self._stderr.seek(0, os.SEEK_END)
        self._stderr.seek(max(0, size - skopeo.STDERR_TAIL_CHARS))
        return self._stderr.read().decode("utf-8", "replace")

    def close(self) -> None:
        """Drop any payload in progress, end the conversation and reap skopeo (idempotent)."""
        if self.pending is not None:
            self.pending.close()
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        if self._proc is not None:
            if self.broken:
                self._proc.kill()
            try:
                self._proc.wait(timeout=EXIT_WAIT_SECONDS)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            self._proc = None
        if self._stderr is not None:
            self._stderr.close()

    # --- messages -----------------------------------------------------------------------------

    def send(self, method: str, *args) -> None:
        """Send one request."""
        if self._sock is None:
            raise ComposefsError("the image proxy for %s is not running" % self.what)
        message = json.dumps({"method": method, "args": list(args)}).encode()
        try:
            self._sock.send(message)
        except OSError as err:
            raise self._died("sending %s: %s" % (method, err.strerror or err)) from None

    def _died(self, doing: str):
        rc = self._proc.poll() if self._proc is not None else None
        if rc is None and self._proc is not None:
            try:
                rc = self._proc.wait(timeout=EXIT_WAIT_SECONDS)
            except subprocess.TimeoutExpired:
                rc = None
        tail = self.stderr_tail()
        text = "skopeo ended the conversation (%s, exit code %s)%s" % (doing, rc, ": " + tail.strip() if tail.strip() else "")
        return skopeo.tool_error(self.what, text, command=self.argv, rc=rc, stderr=tail)

    def receive(self, method: str, what: str | None = None, timeout: float | None = None) -> tuple:
        """Receive one reply; return ``(value, fd or None, pipeid)``; ToolError for a failure reply.

        A reply that does not come in time leaves the conversation out of step: the proxy is
        marked broken and killed on :meth:`close`.
        """
        if self._sock is None or self.broken:
            raise skopeo.tool_error(what or self.what, "the image proxy stopped answering earlier", command=self.argv,
                                    failure=skopeo.UNREACHABLE)
        wait = self.reply_timeout if timeout is None else timeout
        self._sock.settimeout(wait)
        try:
            data, ancdata, _flags, _addr = self._sock.recvmsg(
                MAX_REPLY_BYTES, socket.CMSG_SPACE(_FD_BYTES), socket.MSG_CMSG_CLOEXEC)
        except socket.timeout:
            self.broken = True
            raise skopeo.tool_error(what or self.what, "skopeo did not answer %s within %d seconds" % (method, wait),
                                    command=self.argv, failure=skopeo.UNREACHABLE) from None
        except OSError as err:
            raise self._died("waiting for %s: %s" % (method, err.strerror or err)) from None
        fds = array.array("i")
        for level, kind, payload in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds.frombytes(payload[:len(payload) - len(payload) % _FD_BYTES])
        fd = fds[0] if fds else None
        for extra in fds[1:]:
            os.close(extra)
        if not data:
            if fd is not None:
                os.close(fd)
            raise self._died("waiting for %s" % method)
        try:
            reply = json.loads(data)
            if not isinstance(reply, dict):
                raise ValueError("not an object")
        except ValueError as err:
            if fd is not None:
                os.close(fd)
            raise skopeo.tool_error(what or self.what, "unreadable %s reply from skopeo: %s" % (method, err), command=self.argv) from None
        if not reply.get("success"):
            if fd is not None:
                os.close(fd)
            raise skopeo.tool_error(what or self.what, str(reply.get("error") or "%s failed" % method), command=self.argv,
                                    stderr=self.stderr_tail())
        pipeid = reply.get("pipeid") or 0
        if pipeid and fd is None:
            raise skopeo.tool_error(what or self.what, "%s reply names pipe %s but carries no descriptor" % (method, pipeid),
                                    command=self.argv)
        return reply.get("value"), fd, pipeid

    def call(self, method: str, *args, what: str | None = None) -> tuple:
        """Send a request and receive its reply; a payload still in progress is abandoned first."""
        if self.pending is not None:
            self.pending.close()
        self.send(method, *args)
        return self.receive(method, what)

    def _payload(self, method: str, args: tuple, what: str, expected_digest=None, expected_size=None,
                 on_progress=None) -> tuple:
        value, fd, pipeid = self.call(method, *args, what=what)
        if fd is None:
            raise skopeo.tool_error(what, "%s reply carries no data pipe" % method, command=self.argv)
        return value, ProxyPipe(self, fd, pipeid, what, expected_digest, expected_size, on_progress)

    def _read_small(self, pipe: ProxyPipe) -> bytes:
        with pipe:
            data = pipe.read(MAX_JSON_PAYLOAD_BYTES + 1)
            if len(data) > MAX_JSON_PAYLOAD_BYTES:
                raise skopeo.tool_error(pipe.what, "more than %d bytes of JSON" % MAX_JSON_PAYLOAD_BYTES, command=self.argv)
            pipe.finish()
        return data

    # --- methods ------------------------------------------------------------------------------

    def open_image(self, name: str) -> int:
        """``OpenImage``: return the handle of ``<transport>:<name>``."""
        return self.call("OpenImage", name, what="opening %s" % name)[0]

    def close_image(self, handle: int) -> None:
        """``CloseImage``."""
        self.call("CloseImage", handle)

    def get_manifest(self, handle: int) -> tuple:
        """``GetManifest``: return ``(manifest digest as the source names it, OCI manifest bytes)``."""
        digest, pipe = self._payload("GetManifest", (handle,), "manifest of %s" % self.what)
        return digest, self._read_small(pipe)

    def get_full_config(self, handle: int) -> bytes:
        """``GetFullConfig``: the OCI config as skopeo serializes it."""
        return self._read_small(self._payload("GetFullConfig", (handle,), "config of %s" % self.what)[1])

    def get_blob(self, handle: int, digest: str, size: int, on_progress=None) -> ProxyPipe:
        """``GetBlob``: a pipe of blob ``digest``, checked against ``digest`` and ``size`` by :meth:`ProxyPipe.finish`."""
        _value, pipe = self._payload("GetBlob", (handle, digest, size), "blob %s of %s" % (digest, self.what),
                                     expected_digest=digest, expected_size=size, on_progress=on_progress)
        return pipe

    def read_blob(self, handle: int, digest: str, size: int) -> bytes:
        """A small blob (a config), verified."""
        return self._read_small(self.get_blob(handle, digest, size))

    def blob_size(self, handle: int, digest: str) -> int:
        """The size of blob ``digest`` as the source reports it (its pipe is abandoned unread).

        For sources that serve a layer only uncompressed, under its diff_id (containers-storage),
        where the manifest does not say the size; skopeo 1.9 has no ``GetLayerInfo``.
        """
        value, pipe = self._payload("GetBlob", (handle, digest, 0), "blob %s of %s" % (digest, self.what))
        pipe.close()
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise skopeo.tool_error("blob %s of %s" % (digest, self.what), "skopeo reported size %r" % (value,), command=self.argv)
        return value
