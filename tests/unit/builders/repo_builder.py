# -*- coding: utf-8 -*-
# Copyright: (c) 2026, bootc.composefs maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Build composefs repositories on disk by hand, independently of the library under test.

Everything here follows ``composefs-repo.md`` literally: meta.json bytes of section 3.2, object
names from the ``fsverity digest`` oracle (section 7.4 tool), link texts of section 5.1 and
splitstream sections compressed by the ``zstd`` command-line tool. Tests use it to create inputs
the library must read, and to check what the library wrote.
"""

from __future__ import annotations

import os
import pathlib
import struct
import subprocess

from ansible_collections.bootc.composefs.tests.conftest import run_tool

# composefs-repo.md section 3.2, default `cfsctl init` (sha512, EROFS V1)
META_SHA512_V1 = b"""{
  "version": 1,
  "algorithm": "fsverity-sha512-12",
  "features": {
    "compatible": [],
    "read-only-compatible": [
      "v1_erofs"
    ],
    "incompatible": []
  },
  "erofs_formats": {
    "default": 1
  }
}
"""
META_SHA256_V1 = META_SHA512_V1.replace(b"sha512", b"sha256")
# section 3.2: "V2 repo: same but read-only-compatible [] and default 2"
META_SHA512_V2 = META_SHA512_V1.replace(b'[\n      "v1_erofs"\n    ]', b"[]").replace(b'"default": 1', b'"default": 2')

KERNEL_IDS = {"sha256": 1, "sha512": 2}


def fsverity_digest(tool: str, path, algorithm: str) -> str:
    """The oracle's fs-verity digest (hex) of the file at ``path``."""
    out = run_tool([tool, "digest", "--hash-alg=%s" % algorithm, "--block-size=4096", str(path)]).stdout.decode()
    prefix, _colon, rest = out.partition(":")
    assert prefix == algorithm, out
    return rest.split()[0]


def zstd_compress(tool: str, data: bytes) -> bytes:
    """One zstd frame made by the zstd command-line tool."""
    return run_tool([tool, "-q", "-c", "-3"], input=data).stdout


def zstd_decompress(tool: str, data: bytes) -> bytes:
    """Inflate ``data`` with the zstd command-line tool (all frames)."""
    return run_tool([tool, "-q", "-d", "-c"], input=data).stdout


class RepoBuilder:
    """A repository directory written file by file."""

    def __init__(self, root, algorithm: str = "sha256", fsverity_tool: str | None = None, meta: bytes | None = b"") -> None:
        self.root = pathlib.Path(root)
        self.algorithm = algorithm
        self.fsverity_tool = fsverity_tool
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        if meta == b"":
            meta = META_SHA512_V1 if algorithm == "sha512" else META_SHA256_V1
        if meta is not None:
            (self.root / "meta.json").write_bytes(meta)

    def add_object(self, data: bytes) -> str:
        """Store ``data`` at ``objects/<xx>/<rest>`` named by the fsverity oracle; return the hex name."""
        staging = self.root / "builder-staging"
        staging.write_bytes(data)
        try:
            object_id = fsverity_digest(self.fsverity_tool, staging, self.algorithm)
            target = self.root / "objects" / object_id[:2]
            target.mkdir(parents=True, exist_ok=True)
            os.replace(staging, target / object_id[2:])
        finally:
            if staging.exists():
                staging.unlink()
        return object_id

    def symlink(self, relpath: str, text: str) -> None:
        """Create symlink ``relpath`` with link text ``text`` (parents created)."""
        path = self.root / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(text, path)

    def add_entry(self, category: str, name: str, object_id: str) -> None:
        """``<category>/<name> -> ../objects/<xx>/<rest>`` (section 5.1)."""
        self.symlink("%s/%s" % (category, name), "../objects/%s/%s" % (object_id[:2], object_id[2:]))

    def add_ref(self, category: str, ref: str, entry_name: str) -> None:
        """``<category>/refs/<ref> -> ../ * depth + <entry>`` (section 5.1)."""
        self.symlink("%s/refs/%s" % (category, ref), "../" * len(ref.split("/")) + entry_name)


def splitstream_bytes(zstd_tool: str, algorithm: str, content_type: int, stream_size: int, stream_refs: list,
                      object_refs: list, named_records: bytes, chunks: bytes, legacy: bool = False) -> bytes:
    """A splitstream assembled field by field from spec section 8 (zstd frames by the CLI)."""
    named = zstd_compress(zstd_tool, named_records)
    stream = zstd_compress(zstd_tool, chunks)
    refs_a = b"".join(stream_refs)
    refs_b = b"".join(object_refs)
    a_start = 112
    b_start = a_start + len(refs_a)
    n_start = b_start + len(refs_b)
    s_start = n_start + len(named)
    info = struct.pack("<10Q", a_start, b_start, b_start, n_start, s_start, s_start + len(stream), n_start, s_start,
                       content_type, stream_size)
    if legacy:
        header = struct.pack("<QQH", 32, 112, 0) + b"SplitStream" + bytes([0, KERNEL_IDS[algorithm], 12])
    else:
        header = b"SplitStream" + bytes([0, 0, 0, KERNEL_IDS[algorithm], 12]) + struct.pack("<QQ", 32, 112)
    return header + info + refs_a + refs_b + named + stream


def tree_snapshot(root) -> dict:
    """``{relative path: (kind, link text or bytes)}`` of everything under ``root`` (nothing followed)."""
    result = {}
    root = pathlib.Path(root)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = pathlib.Path(dirpath) / name
            rel = str(path.relative_to(root))
            if path.is_symlink():
                result[rel] = ("link", os.readlink(path))
            elif path.is_dir():
                result[rel] = ("dir", None)
            else:
                result[rel] = ("file", path.read_bytes())
    return result


def hold_lock_process(path, mode: str = "SH"):
    """Start a second process that opens ``path`` and holds ``flock(LOCK_<mode>)`` until its stdin closes.

    Returns the Popen after the child reported that it holds the lock.
    """
    script = ("import fcntl, os, sys\n"
              "fd = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECTORY)\n"
              "fcntl.flock(fd, fcntl.LOCK_%s)\n"
              "sys.stdout.write('locked\\n'); sys.stdout.flush()\n"
              "sys.stdin.read()\n" % mode)
    proc = subprocess.Popen(["python3", "-c", script, str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    line = proc.stdout.readline()
    assert line == b"locked\n", line
    return proc


def try_lock_process(path, mode: str = "EX") -> bool:
    """Whether a separate process can take ``flock(LOCK_<mode> | LOCK_NB)`` on ``path`` right now."""
    script = ("import fcntl, os, sys\n"
              "fd = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECTORY)\n"
              "try:\n"
              "    fcntl.flock(fd, fcntl.LOCK_%s | fcntl.LOCK_NB)\n"
              "except BlockingIOError:\n"
              "    sys.exit(1)\n" % mode)
    return subprocess.run(["python3", "-c", script, str(path)], check=False).returncode == 0


class FakeVerity:
    """Stand-in for a filesystem with fs-verity, for hosts whose test filesystem has none.

    ``enable_fd`` records the file's digest as the ``fsverity digest`` oracle computes it (reading
    the descriptor through ``/proc/<pid>/fd``); ``measure_fd`` returns it. Install with
    ``monkeypatch`` over ``formats.fsverity``.
    """

    def __init__(self, fsverity_tool: str) -> None:
        self.fsverity_tool = fsverity_tool
        self.enabled = {}  # (st_dev, st_ino) -> (algorithm name, digest bytes)

    @staticmethod
    def key(fd: int):
        info = os.fstat(fd)
        return info.st_dev, info.st_ino

    def enable_fd(self, fd: int, algorithm) -> bool:
        if self.key(fd) not in self.enabled:
            digest = fsverity_digest(self.fsverity_tool, "/proc/%d/fd/%d" % (os.getpid(), fd), algorithm.name)
            self.enabled[self.key(fd)] = (algorithm.name, bytes.fromhex(digest))
        return True

    def measure_fd(self, fd: int, algorithm):
        found = self.enabled.get(self.key(fd))
        if found is None or found[0] != algorithm.name:
            return None
        return found[1]

    def enable_path(self, path, algorithm) -> None:
        fd = os.open(path, os.O_RDONLY)
        try:
            self.enable_fd(fd, algorithm)
        finally:
            os.close(fd)

    def has_verity(self, path) -> bool:
        info = os.stat(path)
        return (info.st_dev, info.st_ino) in self.enabled

    def install(self, monkeypatch, fsverity_module) -> "FakeVerity":
        monkeypatch.setattr(fsverity_module, "enable_fd", self.enable_fd)
        monkeypatch.setattr(fsverity_module, "measure_fd", self.measure_fd)
        return self
