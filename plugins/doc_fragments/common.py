# -*- coding: utf-8 -*-
# Copyright: (c) 2026, bootc.composefs maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Documentation shared by the bootc.composefs modules: host path options and attribute blocks.

Attribute blocks: ``ATTRIBUTES_READ_ONLY`` (modules that change nothing), ``ATTRIBUTES_CHANGING``
(modules that do), ``ACTION_GROUP`` and ``FACTS`` (each module that has the attribute).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):

    # Host selection options. The argument spec with the same name, HOST_PATHS, is in
    # plugins/module_utils/module_support.py; the names are those of host/paths.load_host_paths.
    HOST_PATHS = r'''
options:
  root:
    description:
      - Directory that stands for C(/) of the host. Every other host path (sysroot, boot directory,
        ESP, run directory, kernel command line) is taken relative to it unless given explicitly.
      - Point it at a mounted disk image or a test tree to inspect a host that is not running.
      - Symlinks found on disk are resolved inside O(root), the way a chroot would; none may lead out of it.
    type: path
    default: /
  sysroot:
    description:
      - The physical root holding C(composefs/) (the repository), C(state/deploy/) and usually C(boot/).
      - Defaults to C(<root>/sysroot).
    type: path
  boot_dir:
    description:
      - Directory holding C(loader/entries) (GRUB with BLS entries) or C(grub2/user.cfg) (GRUB with
        UKIs) and the C(bootc_composefs-*) kernel directories of GRUB hosts.
      - Defaults to C(<sysroot>/boot), or to C(<root>/boot) when that is a separate partition and
        C(<sysroot>/boot) holds no boot state (bootc issue 2399).
    type: path
  esp:
    description:
      - Mount point of the EFI System Partition (UKIs, systemd-boot and grub-cc entries).
      - Defaults to the first of C(<root>/boot/efi), C(<root>/efi), C(<sysroot>/boot/efi) and the boot
        directory that holds an C(EFI) directory.
    type: path
  run_dir:
    description:
      - The runtime directory holding C(composefs/staged-deployment), the marker of a staged update.
      - Defaults to C(<root>/run).
    type: path
  cmdline_file:
    description:
      - File holding the kernel command line of the booted system; its C(composefs=<verity>)
        parameter names the booted deployment.
      - Defaults to C(<root>/proc/cmdline). Point it at a file of your own to inspect a disk image as
        if a given deployment were booted.
    type: path
  bootloader:
    description:
      - The bootloader of the host. By default it is read from the C(LoaderInfo) EFI variable under
        C(<root>/sys/firmware/efi/efivars); without it GRUB is assumed, unless only the ESP holds
        C(loader/entries), which means systemd-boot.
      - Set it when inspecting a disk image of a grub-cc host, which cannot be told apart from a
        systemd-boot one by its files.
    type: str
    choices: [grub, grub-cc, systemd]
'''

    ATTRIBUTES_READ_ONLY = r'''
attributes:
  check_mode:
    support: full
    description: The module never changes anything, so check mode returns exactly what a normal run returns.
  diff_mode:
    support: none
    description: Nothing changes, so there is no difference to show.
  idempotent:
    support: full
    description: Running it twice gives the same result when the host did not change in between.
'''

    # Attributes of the modules that change the host (composefs_pull, composefs_gc): what each one
    # means for them. A module adds ``support`` to each, and ``details`` where it has more to say.
    ATTRIBUTES_CHANGING = r'''
attributes:
  check_mode:
    description: Computes the plan and returns it, C(changed) included, without changing anything.
  diff_mode:
    description: Returns what the run changes (in check mode, what it would change) as before and after.
  idempotent:
    description: A second run with the same options right after the first reports no change.
'''

    # Every module of the collection is in the action group of meta/runtime.yml.
    ACTION_GROUP = r'''
attributes:
  action_group:
    description: Use C(group/bootc.composefs.composefs) in C(module_defaults) to set defaults for this module.
    support: full
    membership:
      - bootc.composefs.composefs
'''

    FACTS = r'''
attributes:
  facts:
    support: full
    description: Returns the same data under C(ansible_facts.composefs).
'''
