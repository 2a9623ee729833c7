#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, bootc.composefs maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: composefs_status
short_description: Report the deployments, repository and problems of a bootc host using composefs
version_added: 0.1.0
description:
  - Reads the boot entries, deployment state directories and composefs repository of a bootc host
    that uses the composefs backend and reports what it is booted into, what is staged, what would
    be rolled back to, which image each deployment runs, and everything that looks wrong.
  - Strictly read-only, unlike C(bootc status), which may rename legacy boot artifacts and write
    boot digests into origin files. Only the repository's shared lock is taken, as every reader does.
  - Robust where C(bootc status) aborts. Foreign boot entries, entries without a state directory,
    state directories without an entry, unreadable or malformed files, dangling refs and missing
    repository data are reported in RV(findings) instead of failing the task.
  - Image metadata of a deployment comes from the repository (origin C(manifest_digest), manifest
    stream, config stream). When that fails, from the legacy C(<verity>.imginfo) file. As a last
    resort, from a tagged image whose config names the deployment's boot EROFS image.
  - The module fails only when the host is not a composefs bootc host, or its booted deployment
    cannot be identified (no C(composefs=) on the kernel command line).
author:
  - bootc.composefs maintainers (@bootc-dev)
extends_documentation_fragment:
  - bootc.composefs.common.HOST_PATHS
  - bootc.composefs.common.ATTRIBUTES_READ_ONLY
  - bootc.composefs.common.ACTION_GROUP
  - bootc.composefs.common.FACTS
options:
  usage:
    description:
      - Also count the repository's objects and their bytes (apparent and allocated), streams,
        images and tags, listing every C(objects/<xx>/) directory once.
      - Also parse the EROFS images of the deployments and check that every object they name exists
        (without it, the objects named by the image layers are checked, which are the same ones
        for images that composefs tools wrote).
      - Takes time proportional to the number of objects and files, so it is off by default.
      - With it, names under C(objects/) that are no object are reported as C(invalid-object) findings.
    type: bool
    default: false
notes:
  - To inspect a disk image, mount its partitions and point O(root) (or O(sysroot), O(boot_dir), O(esp))
    at them. A disk image has no C(/proc/cmdline), so also pass O(cmdline_file) with a
    C(composefs=<verity>) line naming the deployment to treat as booted.
seealso:
  - name: bootc
    description: The bootc project.
    link: https://github.com/bootc-dev/bootc
'''

EXAMPLES = r'''
- name: Read the composefs status of every bootc host
  bootc.composefs.composefs_status:
  register: status

- name: Show what each host is booted into and what is staged
  ansible.builtin.debug:
    msg: >-
      booted {{ status.host.booted[:12] }}
      ({{ (status.deployments | selectattr('role', 'eq', 'booted') | first).image.image | default('no image') }}),
      staged {{ status.host.staged[:12] if status.host.staged else 'nothing' }}

- name: Fail when anything looks wrong on the host
  ansible.builtin.assert:
    that: status.findings | length == 0
    fail_msg: "{{ status.findings | map(attribute='message') | list }}"

- name: Inspect a mounted disk image as if deployment 4f1c... were booted, with disk usage
  bootc.composefs.composefs_status:
    root: /mnt/image
    cmdline_file: /tmp/image-cmdline
    bootloader: systemd
    usage: true

- name: Use the facts from an earlier run
  ansible.builtin.debug:
    var: ansible_facts.composefs.repository.usage
'''

RETURN = r'''
host:
  description: How the host was read and its boot state.
  returned: success
  type: dict
  contains:
    root:
      description: The host root used.
      returned: success
      type: str
      sample: /
    sysroot:
      description: The physical root holding C(composefs/) and C(state/).
      returned: success
      type: str
      sample: /sysroot
    boot_dir:
      description: The boot directory read (BLS entries on GRUB hosts, C(grub2/user.cfg), kernel directories).
      returned: success
      type: str
      sample: /sysroot/boot
    boot_dir_rule:
      description: Why that boot directory was chosen (V(override) when given).
      returned: success
      type: str
      sample: <sysroot>/boot
    esp:
      description: The EFI System Partition directory read.
      returned: success
      type: str
      sample: /boot/efi
    esp_rule:
      description: Why that ESP directory was chosen (V(override) when given).
      returned: success
      type: str
      sample: <root>/boot/efi holds EFI/
    esp_found:
      description: Whether the ESP directory holds an C(EFI) directory (false means it is probably not mounted).
      returned: success
      type: bool
      sample: true
    run_dir:
      description: The runtime directory read for the staged-deployment marker.
      returned: success
      type: str
      sample: /run
    bootloader:
      description: The bootloader kind.
      returned: success
      type: str
      choices: [grub, grub-cc, systemd]
      sample: grub
    bootloader_source:
      description: Where the bootloader kind came from.
      returned: success
      type: str
      choices: [efivars, default, override]
      sample: efivars
    loader_info:
      description: The C(LoaderInfo) EFI variable, if it was read.
      returned: success
      type: str
      sample: systemd-boot 257.7
    entry_source:
      description: Which boot menu named the deployments, V(bls) (C(loader/entries)) or V(grub) (C(grub2/user.cfg)).
      returned: success
      type: str
      sample: bls
    boot_type:
      description: V(bls) (kernel and initrd) or V(uki) (unified kernel images), from the first origin read.
      returned: success
      type: str
      sample: bls
    booted:
      description: Verity of the booted deployment.
      returned: success
      type: str
      sample: 6f1e1d6b0c7f4c1a9d3e2b5a8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8
    staged:
      description: Verity of the staged deployment, null when nothing is staged.
      returned: success
      type: str
      sample: null
    rollback:
      description: Verity of the deployment a rollback would boot, null when there is none.
      returned: success
      type: str
      sample: 0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f06f1e1d6b0c7f4c1a9d3e2b5a8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8
    download_only:
      description: Whether the staged deployment is locked against finalization (C(bootc upgrade --download-only)).
      returned: success
      type: bool
      sample: false
    missing_verity_allowed:
      description: Whether the kernel command line allows objects without fs-verity (C(composefs=?<verity>)).
      returned: success
      type: bool
      sample: true
    soft_rebooted:
      description: Whether the root mount names another deployment than the kernel command line (a soft reboot happened).
      returned: success
      type: bool
      sample: false
    rollback_queued:
      description: Whether the default boot entry boots another deployment than the booted one.
      returned: success
      type: bool
      sample: false
    rollback_queued_bootc:
      description: The value C(bootc status) reports as C(rollbackQueued), inverted for some bootloaders (kept for comparisons).
      returned: success
      type: bool
      sample: true
    boot_binaries:
      description: Kernel directories and UKIs found, and whether a boot entry uses them.
      returned: success
      type: list
      elements: dict
      sample:
        - name: 6f1e1d6b0c7f4c1a9d3e2b5a8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8
          boot_type: bls
          path: >-
            /sysroot/boot/bootc_composefs-6f1e1d6b0c7f4c1a9d3e2b5a8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8
          prefixed: true
          in_use: true
          bytes: 48213504
deployments:
  description:
    - One item per deployment, booted first, then staged, rollback, other deployments in
      rollback order, and V(unlisted) ones (see RV(deployments[].role)).
  returned: success
  type: list
  elements: dict
  contains:
    verity:
      description: Deployment id, the fs-verity digest of its boot EROFS image (128 hex digits).
      returned: success
      type: str
      sample: 6f1e1d6b0c7f4c1a9d3e2b5a8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8
    role:
      description:
        - V(booted), V(staged), V(rollback), V(other) as C(bootc status) assigns them.
        - V(unlisted) for a deployment C(bootc status) hides although it still boots or may be
          finalized (no readable origin, or named only by staged entries without a staged marker).
      returned: success
      type: str
      choices: [booted, staged, rollback, other, unlisted]
      sample: booted
    unlisted_reason:
      description: Why a deployment is V(unlisted), null otherwise.
      returned: success
      type: str
      sample: null
    image:
      description: The container image the deployment was made from (origin C(container-image-reference)), null if unknown.
      returned: success
      type: dict
      contains:
        image:
          description: The image name.
          type: str
          returned: success
          sample: quay.io/example/os:42
        transport:
          description: V(registry), V(containers-storage), V(oci), V(oci-archive), V(dir), V(docker-daemon) or V(docker-archive).
          type: str
          returned: success
          sample: registry
        signature:
          description: Signature policy, null for C(ostree-unverified-image) references.
          type: str
          returned: success
          sample: null
        reference:
          description: The reference as written in the origin file.
          type: str
          returned: success
          sample: ostree-unverified-image:docker://quay.io/example/os:42
    manifest_digest:
      description:
        - OCI manifest digest of the image. For legacy deployments (origin without C(manifest_digest)),
          the digest of a tagged image found by the tag search, else null (bootc's re-serialized
          digest is not reproduced).
      returned: success
      type: str
      sample: sha256:3f0d6c1e2b4a59788c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b
    config_digest:
      description: OCI config digest of the image, null if no metadata was found.
      returned: success
      type: str
      sample: sha256:9b7e0c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b
    version:
      description: Manifest annotation C(org.opencontainers.image.version), else the config label of that name.
      returned: success
      type: str
      sample: 42.20260801.0
    created:
      description: The config's C(created) time as stored (RFC 3339).
      returned: success
      type: str
      sample: '2026-08-01T10:00:00Z'
    architecture:
      description: The config's C(architecture).
      returned: success
      type: str
      sample: amd64
    metadata_source:
      description:
        - Where the image metadata came from. V(repository) (origin manifest digest), V(imginfo)
          (legacy C(.imginfo) file), V(tag-search) (a tagged image whose config names the
          deployment's EROFS image), or null when none worked.
      returned: success
      type: str
      sample: repository
    metadata_tag:
      description: The tag whose image the tag search (or a legacy deployment's manifest digest lookup) used, else null.
      returned: success
      type: str
      sample: null
    boot_type:
      description: V(bls) or V(uki), from the origin (else from the boot entries).
      returned: success
      type: str
      sample: bls
    boot_digest:
      description: SHA-256 of kernel and initrd recorded in the origin, null if absent.
      returned: success
      type: str
      sample: 0c5e2d4f0d8b7a51e9e3c9f7a0c1b2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9
    boot_artifacts:
      description: Names of the kernel directories or UKIs its boot entries use (shared ones included).
      returned: success
      type: list
      elements: str
      sample: [6f1e1d6b0c7f4c1a9d3e2b5a8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8]
    boot_entries:
      description: The boot entry files (or C(user.cfg) files) naming it, and whether each is a staged one.
      returned: success
      type: list
      elements: dict
      sample: [{path: /sysroot/boot/loader/entries/bootc_fedora-42-1.conf, staged: false}]
    state_dir:
      description: Its state directory, null if it has none.
      returned: success
      type: str
      sample: >-
        /sysroot/state/deploy/6f1e1d6b0c7f4c1a9d3e2b5a8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8
    download_only:
      description: For the staged deployment, whether finalization is locked.
      returned: success
      type: bool
      sample: false
    warnings:
      description: Problems met while resolving this deployment's image metadata.
      returned: success
      type: list
      elements: str
      sample: ["manifest sha256:3f0d... is not in the repository; metadata read from the legacy .imginfo file"]
repository:
  description: The composefs repository.
  returned: success
  type: dict
  contains:
    path:
      description: Its path.
      returned: success
      type: str
      sample: /sysroot/composefs
    exists:
      description: Whether it exists.
      returned: success
      type: bool
      sample: true
    algorithm:
      description: fs-verity hash of its objects, V(sha256) or V(sha512).
      returned: success
      type: str
      sample: sha512
    meta_algorithm:
      description: The C(algorithm) value of C(meta.json).
      returned: when the repository could be opened
      type: str
      sample: fsverity-sha512-12
    format_version:
      description: The C(meta.json) format version.
      returned: success
      type: int
      sample: 1
    erofs_formats:
      description: EROFS format versions images are written in, the default first.
      returned: success
      type: list
      elements: int
      sample: [1]
    features:
      description: The C(meta.json) feature lists.
      returned: when the repository could be opened
      type: dict
      sample: {compatible: [], read_only_compatible: [v1_erofs], incompatible: []}
    secure:
      description: Whether C(meta.json) carries fs-verity, so every object must carry it too.
      returned: success
      type: bool
      sample: false
    meta_json:
      description: Whether the repository has a C(meta.json) (false for repositories written before it existed).
      returned: success
      type: bool
      sample: true
    read_only_reason:
      description: Why a writer could not use the repository as it is (no C(meta.json), unknown features), else null.
      returned: success
      type: str
      sample: null
    error:
      description: Why the repository could not be read, null when it could.
      returned: success
      type: str
      sample: null
    usage:
      description: Counts and sizes, only with O(usage=true) (null otherwise).
      returned: success
      type: dict
      contains:
        objects:
          description: Number of objects.
          type: int
          returned: with O(usage=true)
          sample: 18342
        object_bytes:
          description: Sum of the objects' sizes.
          type: int
          returned: with O(usage=true)
          sample: 2147483648
        object_disk_bytes:
          description: Sum of the objects' allocated blocks.
          type: int
          returned: with O(usage=true)
          sample: 2190475264
        invalid_objects:
          description: Names under C(objects/<xx>/) that are no object.
          type: int
          returned: with O(usage=true)
          sample: 0
        streams:
          description: Number of C(streams/) entries.
          type: int
          returned: with O(usage=true)
          sample: 42
        images:
          description: Number of C(images/) entries.
          type: int
          returned: with O(usage=true)
          sample: 6
        tags:
          description: Number of OCI tags.
          type: int
          returned: with O(usage=true)
          sample: 3
tags:
  description: The OCI tags of the repository (C(streams/refs/oci/)).
  returned: success
  type: list
  elements: dict
  contains:
    name:
      description: The tag.
      returned: success
      type: str
      sample: localhost/bootc-sha256:3f0d6c1e2b4a59788c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b
    manifest_digest:
      description: The manifest it names.
      returned: success
      type: str
      sample: sha256:3f0d6c1e2b4a59788c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b
    owner:
      description: V(bootc) for C(localhost/bootc-*) tags (a GC removes those no deployment uses), V(foreign) for others (never touched).
      returned: success
      type: str
      choices: [bootc, foreign]
      sample: bootc
    live:
      description: Whether a deployment's image has this manifest.
      returned: success
      type: bool
      sample: true
findings:
  description:
    - Everything that looks wrong, each with a stable C(code), the C(path) it is about and a C(message).
    - >-
      Codes from reading the host: C(orphan-state-dir), C(entry-without-state-dir), C(foreign-entry),
      C(unreadable-file), C(missing-origin), C(legacy-boot-layout), C(conflicting-boot-types),
      C(staged-marker-without-entry), C(orphan-addon-dir), C(stray-state-entry), C(booted-without-entry),
      C(unknown-boot-artifact), C(bootloader-guessed), C(damaged-entry) (a boot entry that looks like
      bootc's but names no valid deployment; C(composefs_gc) refuses to run while one is present).
    - >-
      From image resolution: C(unresolved-image) (no metadata from any source).
    - >-
      From the repository: C(missing-repository), C(repository-locked), C(dangling-ref), C(malformed-ref),
      C(missing-image), C(missing-stream), C(missing-object), C(untagged-live-manifest),
      C(unreferenced-bootc-tag), C(invalid-object), and C(unreadable-file).
  returned: success
  type: list
  elements: dict
  sample:
    - code: orphan-state-dir
      path: /sysroot/state/deploy/0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f06f1e1d6b0c7f4c1a9d3e2b5a8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8
      message: state dir of 0a9b8c7d... is named by no boot entry (configured or staged)
ansible_facts:
  description: The same data as facts.
  returned: success
  type: dict
  contains:
    composefs:
      description: RV(host), RV(deployments), RV(repository), RV(tags) and RV(findings) as above.
      returned: success
      type: dict
      sample: {host: {}, deployments: [], repository: {}, tags: [], findings: []}
'''

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.bootc.composefs.plugins.module_utils import module_support
from ansible_collections.bootc.composefs.plugins.module_utils.errors import ComposefsError
from ansible_collections.bootc.composefs.plugins.module_utils.operations import status


def main():
    argument_spec = dict(module_support.HOST_PATHS)
    argument_spec["usage"] = {"type": "bool", "default": False}
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    request = status.StatusRequest(usage=module.params["usage"], **module_support.host_paths_params(module.params))
    try:
        result = status.read_status(request)
    except ComposefsError as err:
        module.fail_json(msg=str(err), **err.partial_result)
    for text in result.warnings:
        module.warn(text)
    module.exit_json(changed=False, ansible_facts={"composefs": result.data}, **result.data)


if __name__ == "__main__":
    main()
