# -*- coding: utf-8 -*-
"""The filesystem tree model: names, walking, lookups, link counts, object paths, storage kinds."""

import gc

import pytest

from ansible_collections.bootc.composefs.plugins.module_utils.errors import FormatError
from ansible_collections.bootc.composefs.plugins.module_utils.formats import tree
from ansible_collections.bootc.composefs.plugins.module_utils.formats.tree import Directory, Fifo, RegularFile, Stat, Symlink


def _sample():
    root = Directory(Stat(0o040755))
    sub = Directory(Stat(0o040700))
    shared = RegularFile(Stat(0o100644), 2, b"hi")
    root.entries = {b"z": Fifo(Stat(0o010644)), b"sub": sub, b"a": shared}
    sub.entries = {b"link": Symlink(Stat(0o120777), b"../a"), b"again": shared}
    return root, sub, shared


def test_walk_is_depth_first_with_sorted_names():
    root, _sub, _shared = _sample()
    assert [path for path, _node in tree.walk(root)] == [b"/", b"/a", b"/sub", b"/sub/again", b"/sub/link", b"/z"]


def test_lookup():
    root, sub, shared = _sample()
    assert tree.lookup(root, b"/") is root
    assert tree.lookup(root, b"sub/./again") is shared
    assert tree.lookup(root, b"/sub") is sub
    assert tree.lookup(root, b"/missing") is None
    assert tree.lookup(root, b"/a/below") is None


def test_link_counts_follow_object_identity():
    root, sub, shared = _sample()
    counts = tree.link_counts(root)
    assert counts[id(shared)] == 2
    assert counts[id(sub.entries[b"link"])] == 1
    assert id(sub) not in counts


@pytest.mark.parametrize("name", [b"", b".", b"..", b"a/b", b"a\0b", b"x" * 256])
def test_invalid_names(name):
    with pytest.raises(FormatError):
        tree.validate_name(name)


def test_valid_names():
    for name in (b"x" * 255, b"...", b" ", b"\xff", b"-"):
        assert tree.validate_name(name) == name


def test_object_pathname():
    assert tree.object_pathname(bytes.fromhex("5a" * 32)) == b"5a/" + b"5a" * 31
    assert tree.object_pathname(bytes(range(64))) == b"00/" + bytes(range(1, 64)).hex().encode()


def test_storage_kinds():
    assert RegularFile(Stat(0o100644), 3, b"abc").is_inline
    assert RegularFile(Stat(0o100644)).is_inline
    external = RegularFile(Stat(0o100644), 10, None, b"\1" * 32)
    assert external.is_external and not external.is_inline
    unknown = RegularFile(Stat(0o100644), 10)
    assert not unknown.is_external and not unknown.is_inline
    assert Stat(0o104755).permissions == 0o4755


def test_gc_paused_restores_the_collector_state():
    assert gc.isenabled()
    with tree.gc_paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(ValueError):
        with tree.gc_paused():
            raise ValueError("boom")
    assert gc.isenabled()
    gc.disable()
    try:
        with tree.gc_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()
