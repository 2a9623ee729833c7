# -*- coding: utf-8 -*-
# Copyright: (c) 2026, bootc.composefs maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests for repository/gc_listing.py: the listing of objects/ taken by a forked child while the mark runs.

The concurrent sweep (the listing the mark started, read back from the child) is compared with the
sequential one (the same live set as a plain ``set``: listed in this process) on repositories with
names that are no objects, non-regular files and names that vanish; the expected values come from
what is on disk (``os.walk`` / ``os.lstat``) as in test_gc_sweep.py. A child that crashes, is killed,
exits non-zero or sends anything short, malformed or inconsistent must refuse: an error, nothing to
remove, and a plan that ``apply_repository_gc`` refuses.
"""

from __future__ import annotations

import gc
import marshal
import os
import signal
import struct
import threading

import pytest

from ansible_collections.bootc.composefs.plugins.module_utils.errors import PlanError
from ansible_collections.bootc.composefs.plugins.module_utils.repository import gc as repo_gc
from ansible_collections.bootc.composefs.plugins.module_utils.repository import gc_listing, gc_mark, gc_roots, gc_snapshot, gc_sweep
from ansible_collections.bootc.composefs.tests.unit.plugins.module_utils.operations import image_repo
from ansible_collections.bootc.composefs.tests.unit.plugins.module_utils.repository.test_gc import (
    Built,
    apply_plan,
    objects_on_disk,
    open_repo,
    plan_of,
)

PARENT = os.getpid()


@pytest.fixture
def built(tmp_path, fsverity_tool, zstd_tool, composefs_oracle):
    return Built(image_repo.ImageRepo(tmp_path / "repo", fsverity_tool, zstd_tool, composefs_oracle))


def _marked(repo, untag=()):
    snapshot = gc_snapshot.scan_repository(repo)
    roots = gc_roots.build_roots(gc_roots.expected_refs(snapshot, remove_stream_refs=untag))
    return gc_mark.mark(repo, roots, snapshot).live


def _both(root, untag=()):
    """(concurrent sweep, sequential sweep) of the same mark; the concurrent one must really come from a child."""
    with open_repo(root, writable=False) as repo:
        live = _marked(repo, untag)
        assert isinstance(live.listing, gc_listing.PendingListing), "the mark started no listing child"
        plain = set(live)
        concurrent = gc_sweep.sweep_objects(repo, live)
        assert live.listing is None
        sequential = gc_sweep.sweep_objects(repo, plain)
    return concurrent, sequential


def _odd_repository(built):
    """Names that are no objects, non-regular files named like objects, a temporary file, a stray directory."""
    base = os.path.join(str(built.root), "objects")
    some = sorted(built.garbage)[0]
    odd = {
        os.path.join(base, some[:2], some[2:].upper()): "file",
        os.path.join(base, some[:2], "short"): "file",
        os.path.join(base, some[:2], "ab" * 30 + " c"): "file",
        os.path.join(base, "ff", "e" * 62): "dir",
        os.path.join(base, "fe", "d" * 62): "link",
        os.path.join(base, "fd", "c" * 62): "fifo",
        os.path.join(base, ".tmp-object-abcdefabcdef"): "file",
        os.path.join(base, "not-hex"): "dir",
        os.path.join(base, "AB"): "dir",
        os.path.join(base, "0a"): "file",
    }
    for path, kind in odd.items():
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if kind == "file":
            with open(path, "wb") as handle:
                handle.write(b"x")
        elif kind == "dir":
            os.mkdir(path)
        elif kind == "fifo":
            os.mkfifo(path)
        else:
            os.symlink("/etc/passwd", path)
    os.makedirs(os.path.join(base, "fc"), exist_ok=True)
    return odd


def test_concurrent_listing_equals_the_sequential_one(built):
    concurrent, sequential = _both(built.root, untag=[built.tag_ref(built.a)])
    assert concurrent == sequential
    assert concurrent.errors == ()
    on_disk = objects_on_disk(built.root)
    assert concurrent.present == len(on_disk)
    assert {raw.hex(): size for raw, size in zip(concurrent.remove, concurrent.sizes)} == {
        object_id: on_disk[object_id] for object_id in built.a.closure - built.live(built.b, built.app) | built.garbage}
    assert list(concurrent.remove) == sorted(concurrent.remove)


def test_concurrent_listing_equals_the_sequential_one_with_odd_names(built):
    odd = _odd_repository(built)
    concurrent, sequential = _both(built.root)
    assert concurrent == sequential
    assert {raw.hex() for raw in concurrent.remove} == built.garbage
    assert concurrent.present == len([name for name in objects_on_disk(built.root) if len(name) == 64 and set(name) <= set("0123456789abcdef")])
    reported = {path for path, _problem in concurrent.invalid}
    assert reported == {p for p in odd if ".tmp-object-" not in p}
    plan = plan_of(built.root)
    assert plan.errors == ()
    assert set(plan.object_ids()) == built.garbage
    apply_plan(built.root, plan)
    for path in odd:
        assert os.path.lexists(path)


def test_names_vanishing_under_the_listing_are_skipped_alike(built, monkeypatch):
    """Names the listing gives that no longer exist when looked at: neither counted nor planned, both ways."""
    ghosts = {"%s%s" % (object_id[:2], "e" * 62) for object_id in built.garbage}
    real_listdir = os.listdir

    def listdir(path):
        names = real_listdir(path)
        if isinstance(path, int):
            names.extend(g[2:] for g in ghosts if os.readlink("/proc/self/fd/%d" % path).endswith("/" + g[:2]))
        return names

    monkeypatch.setattr(os, "listdir", listdir)
    concurrent, sequential = _both(built.root)
    assert concurrent == sequential
    assert {raw.hex() for raw in concurrent.remove} == built.garbage
    assert concurrent.present == len(objects_on_disk(built.root))


def test_no_objects_directory_alike(built):
    for name in os.listdir(os.path.join(str(built.root), "objects")):
        path = os.path.join(str(built.root), "objects", name)
        for child in os.listdir(path):
            os.unlink(os.path.join(path, child))
        os.rmdir(path)
    os.rmdir(os.path.join(str(built.root), "objects"))
    concurrent, sequential = _both(built.root)
    assert concurrent == sequential == gc_sweep.Sweep((), (), 0, (), ())


def _crash_in_child(how):
    """An ``os.listdir`` that fails ``how`` in a forked child only (this test process lists normally)."""
    real_listdir = os.listdir

    def listdir(path):
        if os.getpid() != PARENT:
            if how == "killed":
                os.kill(os.getpid(), signal.SIGKILL)
            if how == "exit-0":
                os._exit(0)  # pylint: disable=protected-access
            raise OSError(5, "Input/output error")
        return real_listdir(path)

    return listdir


@pytest.mark.parametrize("how", ["killed", "exit-0", "raises"])
def test_a_failing_child_refuses(built, monkeypatch, how):
    monkeypatch.setattr(os, "listdir", _crash_in_child(how))
    with open_repo(built.root, writable=False) as repo:
        live = _marked(repo)
        assert isinstance(live.listing, gc_listing.PendingListing)
        sweep = gc_sweep.sweep_objects(repo, live)
    assert sweep.remove == () and sweep.present == 0
    if how == "raises":  # a directory the child cannot list: reported as the sequential sweep reports it
        assert sweep.errors and all(": cannot be listed: Input/output error" in e for e in sweep.errors)
    else:
        assert len(sweep.errors) == 1 and "the listing taken while marking failed, so nothing is deleted" in sweep.errors[0]
    before = objects_on_disk(built.root)
    plan = plan_of(built.root)
    assert plan.errors and plan.remove_objects == ()
    with pytest.raises(PlanError):
        apply_plan(built.root, plan)
    assert objects_on_disk(built.root) == before


def test_a_short_write_refuses(built, monkeypatch):
    """The child writes half of its output and exits 0: a short read, never a partial listing."""
    real_write = os.write

    def write(fd, data):
        if os.getpid() != PARENT:
            real_write(fd, bytes(data[:len(data) // 2]))
            os._exit(0)  # pylint: disable=protected-access
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", write)
    with open_repo(built.root, writable=False) as repo:
        live = _marked(repo)
        sweep = gc_sweep.sweep_objects(repo, live)
    assert sweep.remove == () and len(sweep.errors) == 1 and "ends early" in sweep.errors[0]


def _frame(record) -> bytes:
    payload = marshal.dumps(record)
    return struct.pack("<Q", len(payload)) + payload


def _listing_of(repo, data: bytes, status: int = 0):
    """A PendingListing whose child writes ``data`` and exits with ``status``."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read_fd)
            view = memoryview(data)
            while view:
                view = view[os.write(write_fd, view):]
        finally:
            os._exit(status)  # pylint: disable=protected-access
    os.close(write_fd)
    return gc_listing.PendingListing(repo, pid, read_fd)


def _good_frames(repo):
    records = list(gc_listing.iter_listing(repo.fd, repo.algorithm))
    return [_frame(r) for r in records] + [_frame(("end", len(records)))]


def _corruptions(frames, digest_size):
    """``{name: output}``: the child's good output, spoiled one way each."""
    good = b"".join(frames)
    listed = [i for i, f in enumerate(frames) if marshal.loads(f[8:])[0] == gc_listing.LISTED]
    first = marshal.loads(frames[listed[0]][8:])
    second = marshal.loads(frames[listed[1]][8:])
    foreign = (first[0], first[1], second[2] or bytes(digest_size), first[3])
    swapped = list(frames)
    swapped[listed[0]], swapped[listed[1]] = swapped[listed[1]], swapped[listed[0]]
    return {
        "nothing": b"",
        "half a header": good[:4],
        "cut in a record": good[:len(good) // 2],
        "no end record": b"".join(frames[:-1]),
        "end record miscounts": b"".join(frames[:-1]) + _frame(("end", len(frames))),
        "a record dropped": b"".join(frames[:listed[0]] + frames[listed[0] + 1:]),
        "trailing data": good + b"x",
        "undecodable": frames[0] + struct.pack("<Q", 3) + b"\xff\xff\xff" + b"".join(frames[1:]),
        "out of order": b"".join(swapped),
        "digests of another directory": b"".join(frames[:listed[0]] + [_frame(foreign)] + frames[listed[0] + 1:]),
        "digest cut short": b"".join(frames[:listed[0]] + [_frame((first[0], first[1], first[2][:-1], first[3]))]
                                     + frames[listed[0] + 1:]),
        "not a tuple": frames[0] + _frame(["listed"]) + b"".join(frames[1:]),
        "bad header": _frame(("header", "maybe", None)) + b"".join(frames[1:]),
        "absurd record size": frames[0] + struct.pack("<Q", 1 << 62) + b"".join(frames[1:]),
        "a second header": frames[0] + _frame(("header", "ab", None)) + b"".join(frames[1:]),
    }


def test_records_of_a_good_child_are_the_listing(built):
    with open_repo(built.root, writable=False) as repo:
        expected = list(gc_listing.iter_listing(repo.fd, repo.algorithm))
        listing = _listing_of(repo, b"".join(_good_frames(repo)))
        assert list(listing.records()) == expected
        with pytest.raises(ChildProcessError):
            os.waitpid(listing.pid, os.WNOHANG)


@pytest.mark.parametrize("case", ["nothing", "half a header", "cut in a record", "no end record", "end record miscounts",
                                  "a record dropped", "trailing data", "undecodable", "out of order",
                                  "digests of another directory", "digest cut short", "not a tuple", "bad header",
                                  "absurd record size", "a second header",
                                  "good output, exit status 3"])
def test_anything_unexpected_from_the_child_is_an_error(built, case):
    with open_repo(built.root, writable=False) as repo:
        frames = _good_frames(repo)
        if case == "good output, exit status 3":
            listing = _listing_of(repo, b"".join(frames), status=3)
        else:
            listing = _listing_of(repo, _corruptions(frames, repo.algorithm.digest_size)[case])
        live = gc_listing.LiveSet(listing)
        sweep = gc_sweep.sweep_objects(repo, live)
        assert sweep.remove == () and sweep.present == 0 and sweep.invalid == ()
        assert len(sweep.errors) == 1 and "nothing is deleted" in sweep.errors[0]
        with pytest.raises(ChildProcessError):
            os.waitpid(listing.pid, os.WNOHANG)


def test_an_abandoned_listing_is_killed_and_reaped(built):
    with open_repo(built.root, writable=False) as repo:
        live = _marked(repo)
        pid = live.listing.pid
        del live
        gc.collect()
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def test_listing_of_another_repository_is_not_used(built):
    """A live set carrying the listing of another handle: the sweep lists for itself."""
    with open_repo(built.root, writable=False) as repo, open_repo(built.root, writable=False) as other:
        live = _marked(other)
        pid = live.listing.pid
        sweep = gc_sweep.sweep_objects(repo, live)
        assert sweep == gc_sweep.sweep_objects(repo, set(live))
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def test_with_other_threads_the_listing_is_sequential(built):
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait)
    thread.start()
    try:
        with open_repo(built.root, writable=False) as repo:
            live = _marked(repo)
            assert live.listing is None
            sweep = gc_sweep.sweep_objects(repo, live)
    finally:
        stop.set()
        thread.join()
    assert {raw.hex() for raw in sweep.remove} == built.garbage


def test_plan_and_apply_with_the_concurrent_listing(built):
    """End to end through repository/gc.py: the plan (its listing from the child) deletes exactly the garbage."""
    with open_repo(built.root) as repo:
        plan = repo_gc.plan_repository_gc(repo)
        assert plan.errors == ()
        assert set(plan.object_ids()) == built.garbage
        result = repo_gc.apply_repository_gc(repo, plan)
    assert result.validation == "plan"
    assert set(objects_on_disk(built.root)) == built.live(built.a, built.b, built.app)
