"""Fixtures for the status tests: host trees (host_tree.py) with a hand-built repository (image_repo.py).

The builders are imported inside the fixtures: pytest loads this file before pytest-ansible has put
the collection on ``sys.path`` when the tests of this folder are run on their own.
"""

import importlib

import pytest

BUILDERS = "ansible_collections.bootc.composefs.tests.unit."


def _builder(name):
    return importlib.import_module(BUILDERS + name)


class SimHost:
    """A GRUB + BLS host tree whose deployments boot images of an ``ImageRepo`` at ``<sysroot>/composefs``."""

    def __init__(self, tree, repo):
        self.tree = tree
        self.repo = repo
        self.root = tree.root

    def deploy(self, image, file_name, sort_key, version="42", staged=False, manifest_digest="image", imginfo=None,
               reference="ostree-unverified-image:docker://quay.io/example/os:42", tag=True):
        """State dir + kernel dir + Type1 entry booting ``image.boot_id``; the origin names its manifest."""
        if manifest_digest == "image":
            manifest_digest = image.manifest_digest
        origin = _builder("builders.host_tree").origin_text(image=reference, digest="0" * 64, manifest_digest=manifest_digest)
        self.tree.type1_deployment(image.boot_id, file_name, staged=staged, sort_key=sort_key, version=version, origin=origin)
        if imginfo is not None:
            self.tree.write(self.tree.state / image.boot_id / (image.boot_id + ".imginfo"), imginfo)
        if tag:
            self.repo.bootc_tag(image.manifest_digest)
        return image.boot_id


@pytest.fixture
def sim_host(tmp_path, fsverity_tool, zstd_tool, composefs_oracle):
    """An empty GRUB host tree with an empty sha256 repository."""
    tree = _builder("builders.host_tree").HostTree(tmp_path / "root", bootloader="grub")
    repo = _builder("plugins.module_utils.operations.image_repo").ImageRepo(tree.sysroot / "composefs", fsverity_tool, zstd_tool, composefs_oracle)
    return SimHost(tree, repo)


@pytest.fixture
def three_deployments(sim_host):
    """Booted B (v2), staged S (v3, marker), rollback R (v1); returns (host, {role: image})."""
    files = {"usr/bin/tool": b"#!/bin/sh\n" + b"x" * 200, "usr/lib/os-release": b"ID=simos\n" + b"y" * 100}
    images = {
        "rollback": sim_host.repo.image([files], version="1.0", marker="r"),
        "booted": sim_host.repo.image([files, {"usr/share/v2": b"v2" * 100}], version="2.0", marker="b"),
        "staged": sim_host.repo.image([files, {"usr/share/v3": b"v3" * 100}], label_version="3.0", marker="s"),
    }
    sim_host.deploy(images["booted"], "bootc_simos-2.0-1.conf", "bootc-simos-0", version="2.0")
    sim_host.deploy(images["rollback"], "bootc_simos-1.0-0.conf", "bootc-simos-1", version="1.0")
    sim_host.deploy(images["staged"], "bootc_simos-3.0-1.conf", "bootc-simos-0", version="3.0", staged=True)
    sim_host.tree.type1_entry("bootc_simos-2.0-0.conf", images["booted"].boot_id, staged=True, sort_key="bootc-simos-1",
                              version="2.0")
    sim_host.tree.staged_marker(images["staged"].boot_id)
    sim_host.tree.booted(images["booted"].boot_id)
    return sim_host, images
