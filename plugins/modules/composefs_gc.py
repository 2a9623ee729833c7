#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, bootc.composefs maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: composefs_gc
short_description: Reclaim disk space on a bootc host using composefs, keeping every deployment bootable
version_added: 0.1.0
description:
  - Garbage collection of a bootc host that uses the composefs backend, in four phases, each of which can be
    switched off. Boot binaries (kernel directories, UKIs and their addon directories) that no boot entry
    names. State directories of deployments that no boot entry names, and a staged-deployment marker
    left behind. C(localhost/bootc-<digest>) tags that no live deployment uses (missing ones are created
    for live deployments first). Repository objects that no tag, image ref or live deployment reaches,
    then the C(images/) and C(streams/) entries left dangling.
  - The booted, staged and rollback deployments, every other deployment with a boot entry, and everything
    reachable from them are never removed. Boot binaries are matched by the name the entries use, so a
    kernel directory shared by later deployments (bootc issue 2102) stays. Tags not starting with
    C(localhost/bootc-) (application images) are never touched and keep their images alive.
  - Nothing at all is deleted, and the task fails naming the file, when anything that could protect
    something cannot be read or parsed (a boot entry, an origin, a C(.imginfo), a ref, a manifest, a
    config, a splitstream, an EROFS image, C(meta.json)), wherever C(bootc status) would fail (a boot
    entry that looks like bootc's but names no valid deployment, finding C(damaged-entry); an origin
    without manifest digest nor C(.imginfo); conflicting boot types), when a repository object read on the way does not match its
    name, when a symlink stands where bootc keeps boot entries or state directories, or when the
    repository has a format version or feature this collection does not know.
  - The repository is collected under its exclusive lock, taken the way composefs-rs takes it, so a
    concurrent C(cfsctl), C(bootc) or M(bootc.composefs.composefs_pull) never loses an object. Deletions
    are ordered so that an interrupted run leaves every live deployment complete; running again finishes the job.
  - In check mode the module returns exactly what a normal run would delete and create, object by object
    and byte by byte, including the objects that only become unreachable through the tags it would remove.
author:
  - bootc.composefs maintainers (@bootc-dev)
extends_documentation_fragment:
  - bootc.composefs.common.HOST_PATHS
  - bootc.composefs.common.ATTRIBUTES_CHANGING
  - bootc.composefs.common.ACTION_GROUP
attributes:
  check_mode:
    support: full
    details:
      - The plan returned in check mode is the one a normal run carries out.
  diff_mode:
    support: full
    details:
      - Shows the tags, the deployment state directories and the boot binaries before and after.
  idempotent:
    support: full
    details:
      - A second run right after the first finds nothing to collect.
options:
  boot_binaries:
    description:
      - Remove kernel directories, UKIs and UKI addon directories that no boot entry names.
      - Refused (the task fails) while the host still has the layout bootc used before it prefixed boot artifacts
        with C(bootc_composefs-); run bootc once to migrate, or set this to V(false).
    type: bool
    default: true
  state_dirs:
    description:
      - Remove C(state/deploy/<verity>) directories that no boot entry names, and the staged-deployment marker
        when it names a deployment without boot entry or state directory.
    type: bool
    default: true
  tags:
    description:
      - Create the missing C(localhost/bootc-<digest>) tags of live deployments and remove those that no live
        deployment uses. Other tags are never touched.
    type: bool
    default: true
  repository:
    description:
      - Remove the repository objects nothing live reaches, then the C(images/) and C(streams/) entries that
        named them. Dangling refs are reported in C(repository.dangling_refs), never removed.
    type: bool
    default: true
  repo_gc_backend:
    description:
      - V(native) collects the repository with this collection's own mark and sweep.
      - V(cfsctl) delegates it to O(cfsctl_command) (C(cfsctl gc) or C(bootc internals cfs gc)) with the live
        deployments as extra roots, after the tags were changed. Check mode still shows the native plan, and
        results count what the tool actually removed of it. composefs-rs aborts on dangling refs and prunes
        broken refs, which the native backend does not.
    type: str
    choices: [native, cfsctl]
    default: native
  cfsctl_command:
    description:
      - The command that runs cfsctl, as a list. Use V([bootc, internals, cfs]) on hosts without C(cfsctl).
      - Only used with O(repo_gc_backend=cfsctl).
    type: list
    elements: str
    default: [cfsctl]
  lock_timeout:
    description:
      - Seconds to wait for the repository lock (shared to read, exclusive to delete) before failing.
    type: float
    default: 300
  list_objects:
    description:
      - Also return the ids of the removed objects in RV(removed_objects). They can be many thousands.
    type: bool
    default: false
notes:
  - Like bootc, it treats C(localhost/bootc-<digest>) tags as its own. An image pulled under such a tag but not yet
    deployed (a pre-fetch by M(bootc.composefs.composefs_pull)) is collected. Run the cleanup after staging, or
    pull it under another O(bootc.composefs.composefs_pull#module:tag).
  - The sysroot, the boot directory and the ESP must be writable (on a booted host, remount C(/sysroot)
    read-write in a private mount namespace first, as bootc does). Nothing outside them and the repository
    is ever deleted, whatever symlinks say, except the staged-deployment marker below the run directory.
  - C(bootc/storage) (containers-storage used by unified pulls and logically bound images) is never pruned.
  - Boot entries without a state directory are kept and so is what they name.
seealso:
  - module: bootc.composefs.composefs_status
  - name: bootc
    description: The bootc project.
    link: https://github.com/bootc-dev/bootc
'''

EXAMPLES = r'''
- name: Show what a garbage collection would remove on every bootc host
  bootc.composefs.composefs_gc:
  check_mode: true
  diff: true
  register: gc_plan

- name: Reclaim the space
  bootc.composefs.composefs_gc:
  register: gc

- name: Report what was freed
  ansible.builtin.debug:
    msg: >-
      {{ gc.objects_removed }} objects, {{ gc.boot_binaries | length }} boot binaries,
      {{ gc.state_dirs | length }} state dirs: {{ (gc.bytes_freed / 1048576) | round(1) }} MiB

- name: Only drop stale bootc tags and unreachable objects, leave /boot alone
  bootc.composefs.composefs_gc:
    boot_binaries: false
    state_dirs: false

- name: Let bootc's own cfsctl collect the repository
  bootc.composefs.composefs_gc:
    repo_gc_backend: cfsctl
    cfsctl_command: [bootc, internals, cfs]

- name: Collect a mounted disk image as if deployment 4f1c... were booted
  bootc.composefs.composefs_gc:
    root: /mnt/image
    cmdline_file: /tmp/image-cmdline
    bootloader: systemd
'''

RETURN = r'''
changed:
  description: Whether something was (check mode, would be) removed or created.
  returned: always
  type: bool
  sample: true
booted:
  description: Verity of the booted deployment.
  returned: success
  type: str
  sample: 6f1e1d6b0c7f4c1a9d3e2b5a8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8
live:
  description:
    - What is kept alive, one item per deployment (booted, staged, rollback, other, unlisted) and per verity that
      only a boot entry names (V(entry-only)).
  returned: success
  type: list
  elements: dict
  contains:
    verity:
      description: The deployment verity.
      returned: success
      type: str
      sample: 6f1e1d6b0c7f4c1a9d3e2b5a8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8
    role:
      description: Its role.
      returned: success
      type: str
      choices: [booted, staged, rollback, other, unlisted, entry-only]
      sample: booted
    manifest_digests:
      description: The manifests it keeps (their C(localhost/bootc-) tags stay or are created).
      returned: success
      type: list
      elements: str
      sample: [sha256:3f0d6c1e2b4a59788c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b]
    manifest_source:
      description: Where the manifests came from; null when none was found.
      returned: success
      type: str
      choices: [origin, imginfo, tag-search]
      sample: origin
    boot_image:
      description: Whether its boot EROFS image (C(images/<verity>)) is in the repository.
      returned: success
      type: bool
      sample: true
live_manifests:
  description: Every manifest digest a live deployment keeps.
  returned: success
  type: list
  elements: str
  sample: [sha256:3f0d6c1e2b4a59788c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b]
tags_created:
  description: The C(localhost/bootc-<digest>) tags created for live deployments that had none.
  returned: success
  type: list
  elements: dict
  sample: [{tag: "localhost/bootc-sha256:3f0d6c1e2b4a59788c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b",
            manifest_digest: "sha256:3f0d6c1e2b4a59788c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b"}]
tags_removed:
  description: The C(localhost/bootc-*) tags removed because no live deployment uses their manifest.
  returned: success
  type: list
  elements: dict
  sample: [{tag: "localhost/bootc-sha256:9b7e0c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b",
            manifest_digest: "sha256:9b7e0c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b"}]
boot_binaries:
  description: Boot binaries removed.
  returned: success
  type: list
  elements: dict
  contains:
    kind:
      description: V(type1) (a kernel directory), V(uki) (with its addon directory) or V(addon-dir) (its UKI was gone).
      returned: success
      type: str
      sample: type1
    name:
      description: The artifact name (the verity of the deployment that created it).
      returned: success
      type: str
      sample: 0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f06f1e1d6b0c7f4c1a9d3e2b5a8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8
    path:
      description: The path removed.
      returned: success
      type: str
      sample: /sysroot/boot/bootc_composefs-0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f06f1e1d6b0c7f4c1a9d3e2b5a8c7d
    addon_dir:
      description: The addon directory removed with a UKI, null otherwise.
      returned: success
      type: str
      sample: null
    bytes:
      description: Apparent size of what was removed.
      returned: success
      type: int
      sample: 48234496
state_dirs:
  description: Orphan deployment state directories removed.
  returned: success
  type: list
  elements: dict
  sample: [{verity: "0a9b8c7d6e5f4a3b...", path: "/sysroot/state/deploy/0a9b8c7d6e5f4a3b...", bytes: 10485}]
staged_marker:
  description: The staged-deployment marker removed (it named a deployment without entry or state directory), or null.
  returned: success
  type: str
  sample: null
objects_removed:
  description: Number of repository objects removed.
  returned: success
  type: int
  sample: 1432
objects_bytes:
  description: Sum of the sizes of the removed objects.
  returned: success
  type: int
  sample: 734003200
bytes_freed:
  description: Apparent bytes freed in total (objects, boot binaries, state directories).
  returned: success
  type: int
  sample: 782237696
images_pruned:
  description: C(images/) entries removed (their object was unreachable or missing).
  returned: success
  type: int
  sample: 2
streams_pruned:
  description: C(streams/) entries removed (their object was unreachable or missing).
  returned: success
  type: int
  sample: 7
removed_objects:
  description: Ids of the removed objects.
  returned: when O(list_objects=true)
  type: list
  elements: str
  sample: [3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a]
repository:
  description:
    - The repository collection in detail, null when the phase is off or there is no repository.
    - Planned counts in check mode; in a normal run what was removed, with C(validation) V(plan) when the repository
      still matched the plan under the exclusive lock or V(recomputed) when it had changed (then only what both
      plans agreed on is removed), or V(cfsctl).
  returned: success
  type: dict
  sample:
    objects_removed: 1432
    objects_bytes: 734003200
    images_pruned: 2
    streams_pruned: 7
    pruned_entries: [streams/oci-manifest-sha256:9b7e0c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b]
    dangling_refs: []
    validation: plan
paths:
  description: The host paths used.
  returned: success
  type: dict
  sample: {root: /, sysroot: /sysroot, boot_dir: /sysroot/boot, esp: /boot/efi, run_dir: /run,
           repository: /sysroot/composefs, state_dir: /sysroot/state/deploy, type1_dir: /sysroot/boot,
           uki_dir: /boot/efi/EFI/Linux/bootc}
repo_gc_backend:
  description: The repository backend used.
  returned: success
  type: str
  sample: native
findings:
  description:
    - What looked wrong on the host or in the repository, each with a C(code), the C(path) and a C(message),
      as in M(bootc.composefs.composefs_status) (C(dangling-ref), C(invalid-object), C(malformed-ref),
      C(missing-image) and C(missing-repository) are added here).
  returned: always
  type: list
  elements: dict
  sample: [{code: orphan-state-dir, path: /sysroot/state/deploy/0a9b..., message: state dir of 0a9b... is named by no boot entry}]
errors:
  description: Why nothing was collected (the task fails when this is not empty).
  returned: always
  type: list
  elements: str
  sample: []
'''

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.bootc.composefs.plugins.module_utils import module_support
from ansible_collections.bootc.composefs.plugins.module_utils.errors import ComposefsError
from ansible_collections.bootc.composefs.plugins.module_utils.operations import gc


def main():
    argument_spec = dict(module_support.HOST_PATHS)
    argument_spec.update(
        boot_binaries={"type": "bool", "default": True},
        state_dirs={"type": "bool", "default": True},
        tags={"type": "bool", "default": True},
        repository={"type": "bool", "default": True},
        repo_gc_backend={"type": "str", "default": gc.BACKEND_NATIVE, "choices": list(gc.BACKENDS)},
        cfsctl_command={"type": "list", "elements": "str", "default": ["cfsctl"]},
        lock_timeout={"type": "float", "default": gc.LOCK_TIMEOUT_SECONDS},
        list_objects={"type": "bool", "default": False},
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    params = module.params
    request = gc.GcRequest(
        boot_binaries=params["boot_binaries"], state_dirs=params["state_dirs"], tags=params["tags"],
        repository=params["repository"], repo_gc_backend=params["repo_gc_backend"],
        cfsctl_command=tuple(params["cfsctl_command"]), lock_timeout=params["lock_timeout"],
        **module_support.host_paths_params(params))
    try:
        outcome = gc.run_gc(request, check_mode=module.check_mode)
    except ComposefsError as err:
        module.fail_json(msg=str(err), **err.partial_result)
    for text in outcome.warnings:
        module.warn(text)
    result = outcome.as_dict(list_objects=params["list_objects"])
    if module._diff:
        result["diff"] = outcome.diff()
    module.exit_json(**result)


if __name__ == "__main__":
    main()
