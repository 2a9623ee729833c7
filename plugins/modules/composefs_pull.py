#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, bootc.composefs maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: composefs_pull
short_description: Pull a container image into the composefs repository of a bootc host
version_added: 0.1.0
description:
  - Fetches a container image into the composefs repository (C(<sysroot>/composefs)) of a bootc host
    that uses the composefs backend, the way C(bootc upgrade) and C(bootc switch) pull before they
    deploy. Use it to pre-fetch the next OS image in a maintenance window, so that the upgrade itself
    only writes boot entries, or to keep application images in the same repository.
  - Only what is missing is fetched. The manifest digest is looked up first (the platform's manifest
    when the reference names an image index), then every layer whose uncompressed content (its
    C(diff_id)) is already in the repository is reused, and the others are fetched one by one through
    the skopeo image proxy, verified by digest and size, and imported natively (file objects, layer
    streams, the composefs EROFS image, config and manifest streams).
  - Images labelled C(containers.bootc=1) also get their boot EROFS image, as C(bootc) does after a
    pull; its verity (RV(boot_verity)) is the C(composefs=) id a deployment of that image will have.
  - The image is tagged last, C(localhost/bootc-<manifest digest>) by default (the name bootc itself
    gives the images it deploys), or O(tag). The repository's shared lock is held for the whole pull,
    so M(bootc.composefs.composefs_gc) or C(bootc) waits instead of collecting data in the middle of
    it. An interrupted or failed pull leaves no tag, only data a garbage collection removes, and its
    temporary files are removed.
  - The task result lists the exact commands run (RV(commands), with the O(creds) value masked) and
    what was done (RV(actions)). A failure names what failed and returns its class in RV(failure).
author:
  - bootc.composefs maintainers (@bootc-dev)
extends_documentation_fragment:
  - bootc.composefs.common.HOST_PATHS
  - bootc.composefs.common.ATTRIBUTES_CHANGING
  - bootc.composefs.common.ACTION_GROUP
attributes:
  check_mode:
    support: partial
    details:
      - When the source must be asked, the prediction assumes it does not change before the real run; a tag moved
        in between makes the real run pull something else.
      - With O(via_containers_storage) the source is read directly (C(podman pull) keeps its manifest as it is). From a
        C(containers-storage) source the copy into bootc's storage rewrites the manifest, whose digest is known only
        after the copy; check mode then reports only "changed".
    description:
      - Decides everything it can without the network exactly as a real run does (O(pull_policy), pinned
        digests, tags present). When the source must be asked, reads its manifest and config (nothing
        else is fetched, nothing is written) and predicts the result.
      - The prediction can be wrong if the remote tag moves between the check and the real run.
  diff_mode:
    support: none
    description: The result lists what changes (RV(actions)); there is no file diff.
  idempotent:
    support: full
    description: Pulling the same image again reports no change; with O(pull_policy=missing) and a present tag it does not even contact the source.
options:
  image:
    description:
      - The image reference. A registry name (V(quay.io/fedora/fedora-bootc:42), V(registry.example.com/os@sha256:...)),
        or C(<transport>:<name>) as skopeo reads it (V(docker://quay.io/org/os:1), V(oci:/srv/images/os:1),
        V(oci-archive:/srv/os.tar), V(docker-archive:/srv/os.tar), V(containers-storage:localhost/os)),
        or the forms bootc writes into origin files (V(ostree-unverified-registry:quay.io/org/os:1),
        V(ostree-unverified-image:docker://...), V(ostree-image-signed:docker://...)).
      - A name ending in C(@sha256:<digest>) is pinned to that manifest. For the file transports (C(oci),
        C(oci-archive), C(docker-archive)) the image found there must have that digest.
      - C(ostree-unverified-*) references skip the host's signature policy (C(--insecure-policy)), as bootc does;
        all others are checked against C(/etc/containers/policy.json).
    type: str
    required: true
  transport:
    description:
      - The transport of a O(image) written without one. V(registry) when neither says.
      - Must agree with the transport written in O(image), if any.
    type: str
    choices: [registry, oci, oci-archive, docker-archive, containers-storage]
  tag:
    description:
      - The tag to create or move (C(streams/refs/oci/<tag>)), for application images kept beside the OS
        images, for example V(quay.io/example/app:1).
      - Defaults to C(localhost/bootc-<manifest digest>), the tag bootc gives the images it deploys. A
        garbage collection keeps a C(localhost/bootc-*) tag only while a deployment uses its image
        (bootc's rule), while any other tag is kept until removed.
    type: str
  pull_policy:
    description:
      - V(missing) contacts the source only when needed. Not at all for a pinned digest whose image is
        complete in the repository, nor when O(tag) is given and already names a complete image.
        Otherwise the manifest digest is looked up and only the missing parts are fetched.
      - V(newer) looks up the source's digest every time (except for pinned digests) and moves O(tag)
        when it names another image.
      - V(always) always contacts the source and re-reads manifest and config; layers already in the
        repository are still reused, as podman reuses the layers of its storage.
      - With the default tag V(missing) and V(newer) behave the same, because the local name depends on
        the digest.
    type: str
    choices: [missing, always, newer]
    default: missing
  platform:
    description:
      - The platform whose manifest to take from an image index, as C(os/architecture[/variant])
        (V(linux/arm64/v8)) or just an architecture (V(arm64)). Defaults to the managed host's.
    type: str
  authfile:
    description: Path of a containers auth file (C(auth.json)) with the registry login.
    type: path
  creds:
    description: Registry credentials as C(USERNAME[:PASSWORD]).
    type: str
  tls_verify:
    description:
      - Require HTTPS and verify the registry's certificate. Set to V(false) for a registry served over plain HTTP.
      - Defaults to skopeo's default (verify).
    type: bool
  cert_dir:
    description: Directory of C(*.crt), C(*.cert) and C(*.key) files for the registry (a private CA, client certificates).
    type: path
  via_containers_storage:
    description:
      - Pull as bootc's unified storage does. First C(podman pull) into bootc's containers-storage
        C(<sysroot>/ostree/bootc/storage) (run root C(<run_dir>/bootc/storage)), so that the image is also
        there for C(podman run). For O(transport=containers-storage) the image is copied from the storage
        that holds it. Then the image is imported from that storage.
      - The repository stores the manifest bootc's storage holds, under the digest podman reports for it
        (RV(manifest_digest)); containers-storage serves the layers uncompressed, which are shared with direct pulls
        of the same image.
    type: bool
    default: false
  progress_file:
    description:
      - Where a running pull keeps its progress, as JSON replaced atomically and removed at the end. Keys are
        C(phase), C(layers_done), C(layers_total), C(bytes_done), C(bytes_total), C(image), C(pid),
        C(started) and C(updated). The upgrade role reads it while the pull runs under C(async).
      - Defaults to C(<run_dir>/bootc-composefs/pull-progress.json).
    type: path
  lock_timeout:
    description:
      - Seconds to wait for the repository's lock while a garbage collection holds it exclusively.
    type: float
    default: 600
notes:
  - Needs C(skopeo) (1.6 or later) on the managed host, and C(podman) for O(via_containers_storage).
  - A C(localhost/bootc-<digest>) tag keeps an image only while a deployment uses it, by bootc's rule. An image
    pre-fetched under that tag and not deployed yet is removed by the next garbage collection
    (M(bootc.composefs.composefs_gc) or bootc's own). Stage it before a cleanup runs, as the C(upgrade) role does.
  - Layers are streamed from skopeo's pipes straight into the importer (decompressed on a second thread while the
    tar is split); nothing of them is copied to disk first and nothing is staged outside the repository's objects.
    The repository's filesystem must have at least the size of the layers to fetch free.
  - The manifest and config are stored byte for byte as the source has them, so RV(manifest_digest) is the digest
    C(skopeo inspect) and C(podman images --digests) show. Docker schema 2 images (C(docker save) archives, images
    built by Docker) are the exception, because skopeo's image proxy hands them out only converted to OCI. They are
    stored as that conversion, under its own digest; RV(source_digest) keeps the original one.
  - A long pull can run under C(async) and C(poll); poll the O(progress_file) meanwhile.
seealso:
  - module: bootc.composefs.composefs_status
  - module: bootc.composefs.composefs_gc
  - name: bootc
    description: The bootc project.
    link: https://github.com/bootc-dev/bootc
  - name: containers-transports(5)
    description: The transports and their reference syntax.
    link: https://github.com/containers/image/blob/main/docs/containers-transports.5.md
'''

EXAMPLES = r'''
- name: Pre-fetch the next OS image in the maintenance window
  bootc.composefs.composefs_pull:
    image: quay.io/fedora/fedora-bootc:42
  register: prefetch

- name: Pull an application image next to the OS images, with a tag of its own
  bootc.composefs.composefs_pull:
    image: docker://registry.example.com/apps/web:1.4
    tag: registry.example.com/apps/web:1.4
    authfile: /etc/ostree/auth.json

- name: Pull a pinned digest; no network at all once it is in the repository
  bootc.composefs.composefs_pull:
    image: quay.io/fedora/fedora-bootc@sha256:3f0d6c1e2b4a59788c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b

- name: Follow a moving tag of an application image
  bootc.composefs.composefs_pull:
    image: registry.example.com/apps/web:stable
    tag: registry.example.com/apps/web:stable
    pull_policy: newer

- name: Pull from a local plain-HTTP registry, for the arm64 boards
  bootc.composefs.composefs_pull:
    image: 192.0.2.10:5000/os:next
    tls_verify: false
    platform: linux/arm64

- name: Import an image built on the host with podman
  bootc.composefs.composefs_pull:
    image: localhost/os-custom:latest
    transport: containers-storage

- name: Pull as bootc's unified storage does (also available to podman run)
  bootc.composefs.composefs_pull:
    image: quay.io/fedora/fedora-bootc:42
    via_containers_storage: true

- name: Long pull in the background while the progress is shown
  bootc.composefs.composefs_pull:
    image: quay.io/fedora/fedora-bootc:42
  async: 3600
  poll: 0
  register: pull_job

- name: Predict whether a pull would change anything (asks the registry for the digest only)
  bootc.composefs.composefs_pull:
    image: quay.io/fedora/fedora-bootc:42
  check_mode: true
  register: would_pull
'''

RETURN = r'''
image:
  description: The reference pulled, as C(<transport>:<name>) (registry names with C(docker://)).
  returned: always
  type: str
  sample: docker://quay.io/fedora/fedora-bootc:42
transport:
  description: Its transport.
  returned: always
  type: str
  sample: registry
tag:
  description: The tag that names the image (created, moved, or already there).
  returned: success
  type: str
  sample: localhost/bootc-sha256:9b7e2f0a1c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7
previous_digest:
  description: The manifest digest the tag named before the pull; null when it did not exist.
  returned: success
  type: str
  sample: sha256:5f1c0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f
tag_changed:
  description: Whether the tag was created or moved.
  returned: success
  type: bool
  sample: true
manifest_digest:
  description:
    - The manifest digest stored in the repository and tagged (see also RV(source_digest)).
    - Null in check mode of a O(via_containers_storage) pull from C(containers-storage), where it is known only after
      the copy into bootc's storage.
  returned: success
  type: str
  sample: sha256:9b7e2f0a1c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7
source_digest:
  description:
    - The manifest digest as the source names it (C(skopeo inspect), C(podman images --digests)); null when
      the source was not contacted.
    - Differs from RV(manifest_digest) only for RV(form) V(converted).
  returned: success
  type: str
  sample: sha256:9b7e2f0a1c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7
config_digest:
  description: The digest of the image configuration.
  returned: success
  type: str
  sample: sha256:cc1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b0c1d
form:
  description:
    - V(exact) the source's bytes are stored. V(converted) the source has a Docker schema 2 manifest, stored as
      skopeo's OCI conversion. Null when the source was not contacted.
  returned: success
  type: str
  sample: exact
platform:
  description: The platform whose manifest is taken from an image index.
  returned: always
  type: str
  sample: linux/amd64
bootable:
  description: Whether the image is a bootc image (config label C(containers.bootc=1)), which gets a boot image.
  returned: success
  type: bool
  sample: true
image_verity:
  description: The object id of the image's composefs EROFS image (C(images/<id>)), in the repository's default format.
  returned: success
  type: str
  sample: 1e0d6f3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0
boot_verity:
  description: For bootable images, the verity of the boot EROFS image, which is the deployment id C(bootc) will use. Null otherwise.
  returned: success
  type: str
  sample: 7a6b5c4d3e2f10f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a6978879
layers_total:
  description: The number of layers of the image.
  returned: success
  type: int
  sample: 3
layers_fetched:
  description: The diff_ids of the layers fetched (in check mode, of those that would be).
  returned: success
  type: list
  elements: str
  sample: [sha256:4dd8baaf36052d981d02e43fd3acc90b682049e50b0e79f3d6a8aaa6cde0d9fd]
layers_reused:
  description: The diff_ids of the layers already in the repository.
  returned: success
  type: list
  elements: str
  sample: [sha256:90715f3ea218a6010ea05b80fc2862ee94143d4097ef8731233ceb326a4369b2]
bytes_fetched:
  description: Bytes of layer blobs read from the source (in check mode, the blob sizes that would be).
  returned: success
  type: int
  sample: 734003200
bytes_written:
  description: Bytes handed to the repository's object store (objects already present included, so an upper bound).
  returned: success
  type: int
  sample: 1468006400
objects_written:
  description: Objects handed to the object store.
  returned: success
  type: int
  sample: 21874
contacted_source:
  description: Whether the source (registry, file, storage) was asked at all.
  returned: always
  type: bool
  sample: true
repository:
  description: The path of the composefs repository.
  returned: always
  type: str
  sample: /sysroot/composefs
progress_file:
  description: The progress file the pull kept while it ran (removed since); null in check mode.
  returned: always
  type: str
  sample: /run/bootc-composefs/pull-progress.json
actions:
  description: What was done (check mode, would be done), in order, one sentence each.
  returned: always
  type: list
  elements: str
  sample:
    - resolved docker://quay.io/fedora/fedora-bootc:42 (platform linux/amd64) to manifest sha256:9b7e2f0a...
    - "fetched layer sha256:4dd8baaf... (312.4 MiB)"
    - "imported manifest sha256:9b7e2f0a... and config sha256:cc1d2e3f...: 1 layer(s) written, 2 reused, 21874 object(s), 1400.0 MiB"
    - generated boot image 7a6b5c4d...
    - tag localhost/bootc-sha256:9b7e2f0a... -> sha256:9b7e2f0a...
commands:
  description: The exact commands run, as argument lists, with the O(creds) value masked.
  returned: always
  type: list
  elements: list
  sample: [[skopeo, experimental-image-proxy, --authfile, /etc/ostree/auth.json]]
failure:
  description:
    - On failure, its class.
    - V(unreachable), V(tls), V(auth-refused), V(not-found), V(unknown-transport), V(missing-tool), V(digest-mismatch),
      V(no-space), V(policy-rejected), V(repository), V(repository-locked), V(bad-reference), V(tool-failed),
      V(pull-failed).
  returned: failed
  type: str
  sample: auth-refused
'''

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.bootc.composefs.plugins.module_utils import module_support
from ansible_collections.bootc.composefs.plugins.module_utils.errors import ComposefsError
from ansible_collections.bootc.composefs.plugins.module_utils.oci import reference
from ansible_collections.bootc.composefs.plugins.module_utils.operations import pull


def main():
    argument_spec = dict(module_support.HOST_PATHS)
    argument_spec.update(
        image={"type": "str", "required": True},
        transport={"type": "str", "choices": list(reference.PULL_TRANSPORTS)},
        tag={"type": "str"},
        pull_policy={"type": "str", "default": pull.POLICY_MISSING, "choices": list(pull.POLICIES)},
        platform={"type": "str"},
        authfile={"type": "path"},
        creds={"type": "str", "no_log": True},
        tls_verify={"type": "bool"},
        cert_dir={"type": "path"},
        via_containers_storage={"type": "bool", "default": False},
        progress_file={"type": "path"},
        lock_timeout={"type": "float", "default": pull.LOCK_TIMEOUT_SECONDS},
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    params = module.params
    request = pull.PullRequest(
        image=params["image"], transport=params["transport"], tag=params["tag"], pull_policy=params["pull_policy"],
        platform=params["platform"], authfile=params["authfile"], creds=params["creds"], tls_verify=params["tls_verify"],
        cert_dir=params["cert_dir"], via_containers_storage=params["via_containers_storage"],
        progress_file=params["progress_file"], lock_timeout=params["lock_timeout"],
        **module_support.host_paths_params(params))
    try:
        result = pull.pull_image(request, check_mode=module.check_mode)
    except ComposefsError as err:
        module.fail_json(msg=str(err), **err.partial_result)
    for text in result.warnings:
        module.warn(text)
    module.exit_json(**result.as_dict())


if __name__ == "__main__":
    main()
