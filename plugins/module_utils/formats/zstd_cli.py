# -*- coding: utf-8 -*-
# Copyright: (c) 2026, bootc.composefs maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ``zstd`` binary as a backend of ``zstd.py``: the one place the collection runs it.

Layer: formats. Used when no Python binding is installed (``zstd.py`` picks it before the
pure-Python codec). Every run takes an argv list, forces ``LC_ALL=C`` and turns a failure into a
``ToolError`` carrying the command, the exit status and the tail of stderr.

| operation | command | input | output |
|---|---|---|---|
| :func:`decompress` | ``zstd -d -c -q`` | the whole stream, from a temporary file | read in bounded chunks, killed past ``max_size`` |
| :func:`inflate_stream` | ``zstd -d -c -q`` | raw frames piped in as the scanner reads them (a copy spooled to a temporary file) | read as it comes |
| :func:`compress` | ``zstd -q -c --no-check -<level>`` (``--ultra`` above 19, ``--fast=N`` below 0) | the data on stdin | one frame |

When ``zstd -d`` fails, the input is bad data or the tool is broken: the pure-Python decoder
decides (over the buffer, or over the spooled copy of a stream) and can say where the data is bad.
A ``zstd`` killed by a signal is always a ``ToolError``. Framing errors (bad magic, truncation) are
found by ``zstd_frame`` before the tool sees the bytes.
"""

from __future__ import annotations

import itertools
import os
import selectors
import subprocess
import tempfile
from typing import Dict, Iterator, List, Optional

from ansible_collections.bootc.composefs.plugins.module_utils.errors import FormatError, ToolError
from ansible_collections.bootc.composefs.plugins.module_utils.formats import zstd_stream

__all__ = ["decompress", "inflate_stream", "compress"]

# Levels above this need --ultra on the zstd command line.
CLI_MAX_PLAIN_LEVEL = 19
# Output is read from the tool in pieces of at most this size.
READ_CHUNK_SIZE = 1 << 20
# How much of the tool's stderr goes into an error message.
STDERR_TAIL_CHARS = 2000


def _tool_environment() -> Dict[str, str]:
    return dict(os.environ, LC_ALL="C")


def _stderr_tail(raw: bytes) -> str:
    return raw.decode("utf-8", "replace")[-STDERR_TAIL_CHARS:].strip()


def _level_arguments(level: int) -> List[str]:
    if level < 0:
        return ["--fast=%d" % -level]
    if level > CLI_MAX_PLAIN_LEVEL:
        return ["--ultra", "-%d" % level]
    return ["-%d" % level]


def _decompress_argv(binary: str) -> List[str]:
    return [binary, "-d", "-c", "-q"]


def _start(argv: List[str], stdin, stderr, bufsize: int = -1) -> subprocess.Popen:
    try:
        return subprocess.Popen(argv, stdin=stdin, stdout=subprocess.PIPE, stderr=stderr, env=_tool_environment(), bufsize=bufsize)
    except OSError as err:
        raise ToolError("cannot run %s: %s" % (argv[0], err), command=argv) from None


def _failure(argv: List[str], returncode: int, stderr: str, check_data) -> ToolError:
    """The error for a failed ``zstd -d``: ``check_data()`` raises FormatError when the data is bad (raised with the tool's words)."""
    if returncode < 0:
        return ToolError("%s was killed by signal %d: %s" % (" ".join(argv), -returncode, stderr),
                         command=argv, rc=returncode, stderr=stderr)
    try:
        check_data()
    except FormatError as err:
        err.message = "%s (%s: %s)" % (err.message, " ".join(argv), stderr)
        raise
    return ToolError("%s failed (rc %d) on data the pure-Python decoder accepts: %s" % (" ".join(argv), returncode, stderr),
                     command=argv, rc=returncode, stderr=stderr)


def decompress(binary: str, view, spans, max_size: Optional[int]) -> bytes:
    """Feed the whole stream to ``zstd -d`` and read its output, stopping past ``max_size``."""
    argv = _decompress_argv(binary)
    with tempfile.TemporaryFile() as source, tempfile.TemporaryFile() as errors:
        source.write(view)
        source.seek(0)
        proc = _start(argv, source, errors)
        pieces = []
        total = 0
        exceeded = False
        with proc:
            while True:
                piece = proc.stdout.read(READ_CHUNK_SIZE)
                if not piece:
                    break
                total += len(piece)
                if max_size is not None and total > max_size:
                    exceeded = True
                    proc.kill()
                    break
                pieces.append(piece)
        if exceeded:
            raise zstd_stream.too_large(max_size, None)
        errors.seek(0)
        stderr = _stderr_tail(errors.read())
    if proc.returncode != 0:
        # pylint: disable-next=import-outside-toplevel
        from ansible_collections.bootc.composefs.plugins.module_utils.formats import zstd_python
        raise _failure(argv, proc.returncode, stderr, lambda: zstd_python.decompress_frames(view, spans, max_size))
    return b"".join(pieces)


def inflate_stream(binary: str, scanner, max_size: Optional[int]) -> Iterator[bytes]:
    """Yield what ``zstd -d`` writes while it is fed the frames ``scanner`` reads.

    One thread, no deadlock: a selector writes input when the tool's stdin has room and reads
    output when there is some, so the compressed file object is only read inside our caller's
    ``read`` (never behind its back). A copy of the input is spooled for :func:`_failure`.
    """
    argv = _decompress_argv(binary)
    raw = zstd_stream.iter_raw_frames(scanner)
    first = next(raw, None)
    if first is None:
        return  # no zstd frame at all (``zstd -d`` would call empty input an error)
    raw = itertools.chain((first,), raw)
    with tempfile.TemporaryFile() as spool, tempfile.TemporaryFile() as errors:
        proc = _start(argv, subprocess.PIPE, errors, bufsize=0)
        try:
            fed_all = yield from _pump(proc, raw, spool)
            returncode = proc.wait()
            if returncode != 0 or not fed_all:
                for piece in raw:  # the rest of the input, for the pure-Python decoder to judge
                    spool.write(piece)
                errors.seek(0)
                stderr = _stderr_tail(errors.read()) or "(ended before reading all its input)"
                raise _failure(argv, returncode, stderr, lambda: _check_spooled(spool, max_size))
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.stdin.close()
            proc.stdout.close()
            proc.wait()


def _pump(proc: subprocess.Popen, raw: Iterator[bytes], spool):
    """Feed ``raw`` to the tool and yield its output until it closes stdout; return whether all input went in."""
    stdin_fd = proc.stdin.fileno()
    stdout_fd = proc.stdout.fileno()
    os.set_blocking(stdin_fd, False)
    pending = memoryview(b"")
    fed_all = False
    with selectors.DefaultSelector() as selector:
        selector.register(stdout_fd, selectors.EVENT_READ)
        selector.register(stdin_fd, selectors.EVENT_WRITE)
        feeding = True
        while True:
            for key, _events in selector.select():
                if key.fd == stdout_fd:
                    piece = os.read(stdout_fd, READ_CHUNK_SIZE)
                    if not piece:
                        return fed_all
                    yield piece
                    continue
                if not pending:
                    piece = next(raw, None)  # the scanner reads here; a framing error ends everything
                    if piece is None:
                        fed_all = True
                    else:
                        spool.write(piece)
                        pending = memoryview(piece)
                try:
                    if pending:
                        pending = pending[os.write(stdin_fd, pending):]
                except BlockingIOError:
                    pass
                except BrokenPipeError:
                    feeding = False  # the tool stopped reading: its exit status says why
                if fed_all or not feeding:
                    selector.unregister(stdin_fd)
                    proc.stdin.close()


def _check_spooled(spool, max_size: Optional[int]) -> None:
    """Run the pure-Python decoder over the spooled input; FormatError when the data is bad."""
    # pylint: disable-next=import-outside-toplevel
    from ansible_collections.bootc.composefs.plugins.module_utils.formats import zstd_python
    spool.seek(0)
    total = 0
    for piece in zstd_python.inflate_stream(zstd_stream.LimitedScanner(spool, max_size)):
        total += len(piece)
        if max_size is not None and total > max_size:
            raise zstd_stream.too_large(max_size, None)


def compress(binary: str, data, level: int) -> bytes:
    """Compress ``data`` into one frame without checksum at ``level``."""
    argv = [binary, "-q", "-c", "--no-check"] + _level_arguments(level)
    try:
        proc = subprocess.run(argv, input=bytes(data), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              env=_tool_environment(), check=False)
    except OSError as err:
        raise ToolError("cannot run %s: %s" % (binary, err), command=argv) from None
    if proc.returncode != 0:
        stderr = _stderr_tail(proc.stderr)
        raise ToolError("%s failed (rc %d): %s" % (" ".join(argv), proc.returncode, stderr),
                        command=argv, rc=proc.returncode, stderr=stderr)
    return proc.stdout
