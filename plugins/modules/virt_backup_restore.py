#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: kvmops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: virt_backup_restore
short_description: Restore or verify backups taken by virt_backup
version_added: 1.0.0
description:
  - Works on the repository of M(kvmops.hypervisor.virt_backup). A point of a chain (the full backup
    and the incrementals up to it) is rebuilt with C(qemu-img convert) into one image per disk.
  - V(verify) checks every file of the chain up to the point against the manifest (size, sha256),
    runs C(qemu-img check) on each, rebuilds the point's disks in a scratch directory and compares
    their sizes with the manifest. It changes nothing; it fails when anything does not match.
  - V(images) writes the rebuilt disks into O(dest_dir) (C(NAME-vda.qcow2)); existing files are
    never overwritten.
  - V(guest) defines a new guest O(name) from the point - its saved domain XML with a new name, a new
    UUID and new MAC addresses, the rebuilt disks in O(dest_dir), its NVRAM copy, and its own serial
    log files and sockets - and starts it with O(start).
  - V(in_place) replaces the disks of the shut-off guest O(domain) with the point; only with
    O(force=true), never while the guest runs. Its checkpoints are dropped, so its next backup is a
    full one.
author:
  - kvmops team (@kvmops)
extends_documentation_fragment:
  - kvmops.hypervisor.libvirt
  - kvmops.hypervisor.attributes
  - kvmops.hypervisor.attributes.actiongroup_kvm
  - kvmops.hypervisor.attributes.idempotent
attributes:
  check_mode:
    support: full
    details: Check mode selects the point and says what would be written; verify in check mode verifies (it writes only into a scratch directory it removes).
  diff_mode:
    support: none
  idempotent:
    support: partial
    details: V(verify) never changes anything; the other actions refuse to overwrite what a first run made.
options:
  repository:
    description: The repository of M(kvmops.hypervisor.virt_backup).
    type: path
    required: true
  domain:
    description: The backed-up guest (its directory in the repository).
    type: str
    required: true
  chain:
    description: The chain (a directory name such as C(20261207T021500Z)); default the newest.
    type: str
  point:
    description: The point of the chain, 0 for its full backup; default its last point.
    type: int
  action:
    description: What to do with the point (see the description).
    type: str
    choices: [verify, images, guest, in_place]
    default: verify
  dest_dir:
    description: Directory for the rebuilt images (and NVRAM, serial logs) with V(images) and V(guest).
    type: path
  name:
    description: The new guest's name with V(guest); with V(images), the prefix of the image names (default O(domain)).
    type: str
  format:
    description: Format of the images written by V(images) and V(guest); V(in_place) keeps each disk's format.
    type: str
    choices: [qcow2, raw]
    default: qcow2
  force:
    description: Required for V(in_place) - everything the guest wrote since the backup is lost.
    type: bool
    default: false
  start:
    description: With V(guest), start the new guest.
    type: bool
    default: false
  scratch_dir:
    description: Where V(verify) rebuilds the disks (default a temporary directory inside the chain, on the repository's file system).
    type: path
notes:
  - The restored guest's VNC password is not restored (the backup keeps the domain XML without secrets).
seealso:
  - module: kvmops.hypervisor.virt_backup
'''

EXAMPLES = r'''
- name: Verify the newest chain of vm1
  kvmops.hypervisor.virt_backup_restore:
    repository: /srv/backups
    domain: vm1
    action: verify

- name: vm1 as it was at the second backup of a chain, as a new guest beside it
  kvmops.hypervisor.virt_backup_restore:
    repository: /srv/backups
    domain: vm1
    chain: 20261207T021500Z
    point: 1
    action: guest
    name: vm1-restored
    dest_dir: /var/lib/libvirt/images
    start: true

- name: Put vm1's disks back to its last backup (vm1 is shut off)
  kvmops.hypervisor.virt_backup_restore:
    repository: /srv/backups
    domain: vm1
    action: in_place
    force: true
'''

RETURN = r'''
domain:
  description: The backed-up guest.
  returned: always
  type: str
chain:
  description: The chain used.
  returned: always
  type: str
point:
  description: The point used (0 is the chain's full backup).
  returned: always
  type: int
level:
  description: The level of that point (V(full) or V(inc)).
  returned: always
  type: str
taken:
  description: When the point's backup finished (epoch seconds).
  returned: always
  type: int
images:
  description: The images written (or that would be), per disk.
  returned: with images, guest and in_place
  type: dict
uuid:
  description: The new guest's UUID.
  returned: with guest, when defined
  type: str
verified:
  description: Whether every check passed.
  returned: with verify
  type: bool
problems:
  description: What did not match.
  returned: with verify
  type: list
  elements: str
rebuilt:
  description: Per disk, the size and sha256 of the rebuilt raw image (the scratch copy is removed).
  returned: with verify
  type: dict
actions:
  description: What was done (or would be done in check mode).
  returned: always
  type: list
  elements: str
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.kvmops.hypervisor.plugins.module_utils._common.argspec import uri_option
from ansible_collections.kvmops.hypervisor.plugins.module_utils._module.runner import manager_options, run_manager
from ansible_collections.kvmops.hypervisor.plugins.module_utils._backup import restore


def argument_spec():
    return dict(
        uri=uri_option(),
        repository=dict(type='path', required=True),
        domain=dict(type='str', required=True),
        chain=dict(type='str'),
        point=dict(type='int'),
        action=dict(type='str', choices=list(restore.ACTIONS), default='verify'),
        dest_dir=dict(type='path'),
        name=dict(type='str'),
        format=dict(type='str', choices=list(restore.FORMATS), default='qcow2'),
        force=dict(type='bool', default=False),
        start=dict(type='bool', default=False),
        scratch_dir=dict(type='path'),
    )


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True,
                           required_if=[('action', 'guest', ['name', 'dest_dir']),
                                        ('action', 'images', ['dest_dir'])])
    run_manager(module,
                prepare=lambda: restore.normalize(module.params),
                build=lambda conn, spec: restore.RestoreManager(conn, spec, **manager_options(module)),
                subject=lambda spec: 'the restore of %s' % spec['domain'],
                fail_fields=lambda spec, manager: dict(domain=module.params['domain'], changed=False))


if __name__ == '__main__':
    main()
