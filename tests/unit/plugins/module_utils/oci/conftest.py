# -*- coding: utf-8 -*-
"""Fixtures of the oci tests: OCI image layouts built once per session, and fresh repositories.

The layouts come from ``oci_testimages`` (ocigen's tar layers; zstd layers by the zstd tool).
Library and helper modules are imported inside the fixtures: the collection is importable only
once pytest-ansible has set up its path, after conftest files are loaded.
"""

import importlib

import pytest


def _module(name):
    return importlib.import_module("ansible_collections.bootc.composefs." + name)


class Layouts:
    """Lazily built layouts: ``layouts.get(name)`` returns ``(layout dir, info)``."""

    def __init__(self, factory):
        self._factory = factory
        self._built = {}

    def get(self, name):
        if name not in self._built:
            path = self._factory.mktemp("layout-" + name)
            self._built[name] = (str(path), self._build(name, str(path)))
        return self._built[name]

    @staticmethod
    def _build(name, path):
        images = _module("tests.unit.plugins.module_utils.oci.oci_testimages")
        ocigen = images.ocigen
        multi = images.build_tars(images.multi_layers())
        if name in ("gzip", "none", "zstd"):
            return images.write_layout_image(path, multi, compression=name, tag="multi")
        if name == "plain":
            return images.write_layout_image(path, images.build_tars(images.without_hardlinks(images.multi_layers())),
                                             tag="plain")
        if name == "mixed":
            return images.write_layout_image(path, multi, compression=["zstd", "none", "gzip"], tag="multi")
        if name == "bootc":
            return ocigen.write_bootc_image(path, version="3", tag="bootc", payload=images.content(70000, 31))
        if name == "boot":
            return images.write_layout_image(path, images.build_tars(images.boot_layers()), tag="boot")
        if name == "index":
            amd = images.write_layout_image(path, multi[:2], architecture="amd64", add_ref=False)
            arm = images.write_layout_image(path, multi[:1] + multi[2:], architecture="arm64", add_ref=False)
            digest = ocigen.write_index(path, [amd, arm], tag="multiarch")
            return {"amd64": amd, "arm64": arm, "index_digest": digest}
        raise KeyError(name)


@pytest.fixture(scope="session")
def layouts(tmp_path_factory):
    return Layouts(tmp_path_factory)


@pytest.fixture
def make_repo(tmp_path):
    """``make_repo(algorithm=SHA256, erofs_default=1, erofs_extra=())`` -> an open, writable repository."""
    opened = []
    fsverity = _module("plugins.module_utils.formats.fsverity")
    repository = _module("plugins.module_utils.repository.repo")

    def make(algorithm=None, erofs_default=1, erofs_extra=(), name="repo"):
        repo = repository.Repository.init(str(tmp_path / name), algorithm=algorithm or fsverity.SHA256,
                                          erofs_default=erofs_default, erofs_extra=erofs_extra)
        opened.append(repo)
        return repo

    yield make
    for repo in opened:
        repo.close()
