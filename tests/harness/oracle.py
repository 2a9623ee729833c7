# -*- coding: utf-8 -*-
"""Independent oracles for the GC harnesses: what must exist, read without the library under test.

* ``FsverityOracle``: Debian's ``fsverity digest --hash-alg=sha512 --block-size=4096`` over many
  files per call (the names of objects are checked against it);
* ``composefs_info_objects``: ``composefs-info objects IMAGE`` (Debian's composefs, through
  ``tests/setup/composefs-oracle``): the objects an EROFS image names;
* ``read_splitstream``: a splitstream reader written from the spec (composefs-repo.md section 8:
  header, info ranges, reference arrays), with the ``zstd`` command-line tool inflating the named
  refs section; ``reassemble``: the bytes a splitstream stands for, from the same reader and the
  ``zstd`` tool; they share no code with ``formats/splitstream.py``;
* ``RepoOracle``: a repository seen through those three: entries, tag chains (manifest -> config ->
  layers -> their objects, EROFS images named by the config, spec section 12.2 step 6) and the
  closure of root images, cached per object id (objects are immutable).

Nothing here imports the collection.
"""

from __future__ import annotations

import os
import struct
import subprocess

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
COMPOSEFS_ORACLE = os.path.join(REPO_ROOT, "tests", "setup", "composefs-oracle")
FSVERITY_BATCH = 256

SPLITSTREAM_MAGIC = b"SplitStream"
HEADER = struct.Struct("<11sBHBB QQ")  # magic, version, flags, algorithm, lg_blocksize, info range
OLD_HEADER = struct.Struct("<QQ H11sBBB")  # info range, flags, magic, version, algorithm, lg_blocksize
INFO = struct.Struct("<QQ QQ QQ QQ QQ")  # stream_refs, object_refs, stream, named_refs ranges; content_type, size
ALGORITHM_IDS = {1: ("sha256", 32), 2: ("sha512", 64)}
EROFS_REF_PREFIX = "composefs.image"


class OracleError(Exception):
    """An oracle tool failed or a file does not have the shape the spec describes."""


def _run(argv, data=None) -> bytes:
    proc = subprocess.run(argv, input=data, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          env=dict(os.environ, LC_ALL="C"), check=False)
    if proc.returncode != 0:
        raise OracleError("%s failed (rc %d): %s" % (" ".join(argv[:3]), proc.returncode,
                                                     proc.stderr.decode("utf-8", "replace")[-500:]))
    return proc.stdout


def ensure_composefs_oracle() -> None:
    """Build the cached sid root holding mkcomposefs/composefs-info if it is missing."""
    _run([COMPOSEFS_ORACLE, "--ensure"])


def composefs_info_objects(image_path: str) -> set:
    """Object ids (hex) the EROFS image at ``image_path`` names, as ``composefs-info objects`` lists them."""
    out = _run([COMPOSEFS_ORACLE, "composefs-info", "objects", image_path]).decode("ascii")
    return {line.strip().replace("/", "") for line in out.splitlines() if line.strip()}


class FsverityOracle:
    """Runs ``fsverity digest`` (sha512, 4 KiB blocks) on batches of files; counts the files checked."""

    def __init__(self, algorithm: str = "sha512") -> None:
        self.algorithm = algorithm
        self.checked = 0

    def digests(self, paths) -> dict:
        """``{path: hex digest}``; OracleError when the tool fails (a missing file, for instance)."""
        paths = list(paths)
        result = {}
        for start in range(0, len(paths), FSVERITY_BATCH):
            batch = paths[start:start + FSVERITY_BATCH]
            out = _run(["fsverity", "digest", "--hash-alg=%s" % self.algorithm, "--block-size=4096"] + batch)
            lines = out.decode("utf-8", "surrogateescape").splitlines()
            if len(lines) != len(batch):
                raise OracleError("fsverity digest printed %d lines for %d files" % (len(lines), len(batch)))
            for path, line in zip(batch, lines):
                prefix, _sep, rest = line.partition(":")
                digest, _space, printed = rest.partition(" ")
                if prefix != self.algorithm or printed != path:
                    raise OracleError("unexpected fsverity output %r for %s" % (line, path))
                result[path] = digest
        self.checked += len(paths)
        return result

    def check_objects(self, repo_path: str, object_ids) -> list:
        """Problems (strings) among ``object_ids`` of ``repo_path``: missing files and digests that differ from names."""
        problems = []
        present = []
        for object_id in sorted(object_ids):
            path = object_path(repo_path, object_id)
            if os.path.isfile(path) and not os.path.islink(path):
                present.append(path)
            else:
                problems.append("missing object %s" % object_id)
        for path, digest in self.digests(present).items():
            name = os.path.basename(os.path.dirname(path)) + os.path.basename(path)
            if digest != name:
                problems.append("object %s has fs-verity digest %s" % (name, digest))
        return problems


def object_path(repo_path: str, object_id: str) -> str:
    """``<repo>/objects/<xx>/<rest>``."""
    return os.path.join(repo_path, "objects", object_id[:2], object_id[2:])


def list_objects(repo_path: str) -> set:
    """Every name below ``objects/<xx>/`` as an object id (no validation)."""
    found = set()
    objects_dir = os.path.join(repo_path, "objects")
    if not os.path.isdir(objects_dir):
        return found
    for subdir in os.listdir(objects_dir):
        sub = os.path.join(objects_dir, subdir)
        if len(subdir) == 2 and os.path.isdir(sub) and not os.path.islink(sub):
            found.update(subdir + name for name in os.listdir(sub))
    return found


def _zstd_decompress(data: bytes) -> bytes:
    if not data:
        return b""
    return _run(["zstd", "-q", "-d", "-c"], data)


def _splitstream_layout(path: str) -> tuple:
    """``(data, algorithm, digest size, info fields)`` of a splitstream file, header and ranges checked.

    Follows composefs-repo.md section 8: both header layouts, navigation by the info ranges only.
    """
    with open(path, "rb") as handle:
        data = handle.read()
    if len(data) < HEADER.size:
        raise OracleError("%s: shorter than a splitstream header" % path)
    magic, version, _flags, algorithm_id, lg_blocksize, info_start, info_end = HEADER.unpack_from(data)
    if magic != SPLITSTREAM_MAGIC:
        info_start, info_end, _flags, magic, version, algorithm_id, lg_blocksize = OLD_HEADER.unpack_from(data)
        if magic != SPLITSTREAM_MAGIC:
            raise OracleError("%s: no splitstream magic" % path)
    if version != 0 or lg_blocksize != 12 or algorithm_id not in ALGORITHM_IDS:
        raise OracleError("%s: unsupported splitstream header" % path)
    algorithm, size = ALGORITHM_IDS[algorithm_id]
    if info_end - info_start < INFO.size or info_end > len(data):
        raise OracleError("%s: bad info range" % path)
    fields = INFO.unpack_from(data, info_start)
    for start, end in (fields[i:i + 2] for i in range(0, 8, 2)):
        if end < start or end > len(data):
            raise OracleError("%s: bad range %d..%d" % (path, start, end))
    return data, algorithm, size, fields


def _digests(path: str, data: bytes, start: int, end: int, size: int) -> list:
    chunk = data[start:end]
    if len(chunk) % size:
        raise OracleError("%s: reference array is not a multiple of %d bytes" % (path, size))
    return [chunk[i:i + size].hex() for i in range(0, len(chunk), size)]


def read_splitstream(path: str) -> dict:
    """``{"algorithm", "content_type", "object_refs", "stream_refs", "named_refs"}`` (hex ids) of a splitstream file.

    Named refs are ``"<index>:<name>\\0"`` records indexing ``stream_refs``. The stream section is
    not inflated (the GC does not read it either; :func:`reassemble` does).
    """
    data, algorithm, size, fields = _splitstream_layout(path)
    stream_refs = _digests(path, data, fields[0], fields[1], size)
    object_refs = _digests(path, data, fields[2], fields[3], size)
    named = {}
    text = _zstd_decompress(data[fields[6]:fields[7]])
    if text:
        if not text.endswith(b"\0"):
            raise OracleError("%s: named refs not NUL-terminated" % path)
        for record in text[:-1].split(b"\0"):
            index, _colon, name = record.decode("utf-8").partition(":")
            named[name] = stream_refs[int(index)]
    return {"algorithm": algorithm, "content_type": fields[8], "object_refs": object_refs, "stream_refs": stream_refs,
            "named_refs": named}


def reassemble(repo_path: str, object_id: str) -> bytes:
    """The bytes the splitstream ``object_id`` stands for (composefs-repo.md 8.2, 8.3, 8.6).

    The stream section, inflated by the ``zstd`` tool, is a sequence of little-endian i64 headers:
    a negative one is followed by that many inline bytes, any other is an index into ``object_refs``
    whose object's content comes next.
    """
    path = object_path(repo_path, object_id)
    data, _algorithm, size, fields = _splitstream_layout(path)
    objects = _digests(path, data, fields[2], fields[3], size)
    stream = _zstd_decompress(data[fields[4]:fields[5]])
    out, offset = [], 0
    while offset < len(stream):
        value = struct.unpack_from("<q", stream, offset)[0]
        offset += 8
        if value < 0:
            out.append(stream[offset:offset - value])
            offset -= value
        else:
            with open(object_path(repo_path, objects[value]), "rb") as handle:
                out.append(handle.read())
    return b"".join(out)


def _readlink(path: str):
    try:
        return os.readlink(path)
    except OSError:
        return None


class RepoOracle:
    """A repository read through the oracles above; splitstreams and image listings are cached by object id."""

    def __init__(self, repo_path: str) -> None:
        self.path = repo_path
        self._streams = {}
        self._images = {}

    def entries(self, category: str) -> dict:
        """``{name: object id}`` of the first-level symlinks of ``images/`` or ``streams/`` (spec section 5.1 form)."""
        result = {}
        directory = os.path.join(self.path, category)
        if not os.path.isdir(directory):
            return result
        for name in os.listdir(directory):
            text = _readlink(os.path.join(directory, name))
            if text is not None and text.startswith("../objects/"):
                result[name] = text[len("../objects/"):].replace("/", "")
        return result

    def splitstream(self, object_id: str) -> dict:
        """The parsed splitstream stored as ``object_id`` (cached)."""
        if object_id not in self._streams:
            self._streams[object_id] = read_splitstream(object_path(self.path, object_id))
        return self._streams[object_id]

    def image_objects(self, object_id: str) -> set:
        """What ``composefs-info objects`` lists for the EROFS image stored as ``object_id`` (cached)."""
        if object_id not in self._images:
            self._images[object_id] = composefs_info_objects(object_path(self.path, object_id))
        return self._images[object_id]

    def image_closure(self, verity: str) -> dict:
        """``{"entries": {...}, "objects": {...}}`` a root image keeps: its entry, its object, every object it names."""
        object_id = self.entries("images").get(verity)
        if object_id is None:
            raise OracleError("images/%s does not exist" % verity)
        objects = {object_id} | self.image_objects(object_id)
        return {"entries": {"images/" + verity: object_id}, "objects": objects}

    def tag_closure(self, manifest_digest: str) -> dict:
        """What the tag of ``manifest_digest`` keeps (composefs-repo.md section 12.2 step 6).

        ``entries``: the ``streams/`` entries on the way (manifest, config, layers) and the
        ``images/`` entries of the EROFS images the config names; ``objects``: the stream objects,
        their object refs, every named-ref target.
        """
        streams = self.entries("streams")
        images_by_object = {oid: name for name, oid in self.entries("images").items()}
        names_by_object = {oid: name for name, oid in streams.items()}
        start = "oci-manifest-" + manifest_digest
        if start not in streams:
            raise OracleError("streams/%s does not exist" % start)
        entries = {}
        objects = set()
        walked = set()
        todo = [(streams[start], start)]
        while todo:
            object_id, name = todo.pop()
            if object_id in walked:
                continue
            walked.add(object_id)
            objects.add(object_id)
            entries["streams/" + name] = object_id
            stream = self.splitstream(object_id)
            objects.update(stream["object_refs"])
            for key, ref in stream["named_refs"].items():
                objects.add(ref)
                if key.startswith(EROFS_REF_PREFIX):
                    if ref in images_by_object:
                        entries["images/" + images_by_object[ref]] = ref
                elif ref in names_by_object:
                    todo.append((ref, names_by_object[ref]))
        return {"entries": entries, "objects": objects}


def merge_closures(closures) -> dict:
    """Union of several ``{"entries", "objects"}`` closures."""
    entries = {}
    objects = set()
    for closure in closures:
        entries.update(closure["entries"])
        objects |= closure["objects"]
    return {"entries": entries, "objects": objects}


def missing_from(repo_path: str, closure: dict) -> list:
    """Problems: entries of ``closure`` that are gone or re-pointed, objects that are gone (existence only)."""
    problems = []
    for entry, object_id in sorted(closure["entries"].items()):
        text = _readlink(os.path.join(repo_path, entry))
        if text != "../objects/%s/%s" % (object_id[:2], object_id[2:]):
            problems.append("entry %s is %s" % (entry, "gone" if text is None else "re-pointed to %s" % text))
    for object_id in sorted(closure["objects"]):
        path = object_path(repo_path, object_id)
        if not os.path.isfile(path) or os.path.islink(path):
            problems.append("object %s is gone" % object_id)
    return problems
