# -*- coding: utf-8 -*-
# Copyright: (c) 2026, bootc.composefs maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Documentation shared by the bootc.composefs modules: host path options and attribute blocks."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):

    # Host path options; defined once in module_utils/module_support.py (HOST_PATH_ARGSPEC).
    HOST_PATHS = r'''
options:
  root:
    description:
      - Directory that stands for C(/) of the host. Every other host path (sysroot, boot directory,
        ESP, run directory, kernel command line) is taken relative to it unless given explicitly.
      - Point it at a mounted disk image or a test tree to inspect a host that is not running.
      - Symlinks found on disk are resolved inside O(root); none may lead out of it.
    type: path
    default: /
  sysroot:
    description:
      - The physical root holding C(composefs/), C(state/) and C(boot/).
      - Defaults to C(<root>/sysroot).
    type: path
  boot_dir:
    description:
      - Directory holding C(loader/entries) (BLS) or C(grub2/user.cfg) (GRUB with UKIs) and the
        C(bootc_composefs-*) kernel directories of GRUB hosts.
      - Defaults to C(<sysroot>/boot). Set it to the mount point of a separate C(/boot) partition
        when that partition is not visible under the sysroot.
    type: path
  esp_dir:
    description:
      - Mount point of the EFI System Partition (UKIs, systemd-boot entries).
      - Defaults to the first of C(<root>/boot/efi), C(<sysroot>/boot/efi) that holds an C(EFI)
        directory, else the boot directory.
    type: path
  run_dir:
    description:
      - The runtime directory holding C(composefs/staged-deployment). Defaults to C(<root>/run).
    type: path
  kernel_cmdline:
    description:
      - The kernel command line of the running system, used to find the booted deployment
        (C(composefs=<verity>)). Defaults to the content of C(<root>/proc/cmdline).
    type: str
  repository:
    description:
      - The composefs repository. Defaults to C(<sysroot>/composefs).
    type: path
'''

    ATTRIBUTES_READ_ONLY = r'''
attributes:
  check_mode:
    support: full
    description: The module never changes anything, so check mode returns exactly what a normal run returns.
  diff_mode:
    support: none
  idempotent:
    support: full
'''

    FACTS = r'''
attributes:
  facts:
    support: full
    description: Returns the same data under C(ansible_facts.composefs).
'''
