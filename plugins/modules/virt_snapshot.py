#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: kvmops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: virt_snapshot
short_description: Snapshots of libvirt guests - create, delete, revert, list
version_added: 1.0.0
description:
  - Creates a snapshot of a guest by name (idempotent - an existing snapshot of that name is
    kept), deletes it with or without its children, reverts the guest to it, or lists the
    guest's snapshots as facts.
  - O(kind=auto) takes an internal snapshot (inside the qcow2 images; of a running guest with
    its memory state, so a revert resumes it where it was) when every disk is qcow2 and the guest
    does not boot UEFI from pflash; otherwise an external disk-only snapshot (a new qcow2 overlay
    per disk). The result says which kind was used and why (RV(kind), RV(kind_reason)).
  - An external snapshot of a running guest is quiesced through the guest agent (the guest's
    file systems are frozen for the moment of the snapshot) when the agent answers; when it does
    not, the snapshot is crash-consistent and the module says so (RV(quiesced), RV(quiesce_reason)).
    The agent is given 10 seconds to freeze (the guest runs its agent, and one that never answers
    would otherwise hold the task for ever); the file systems are thawed right after the snapshot.
  - Deleting an external snapshot merges its overlays back into their base images (libvirt 9.0
    and later do this themselves; on older libvirt the module runs an active blockcommit and
    pivots the running guest back onto its base images).
  - Reverting throws away the guest's current state and warns about it. In check mode nothing is
    reverted and RV(prediction) says what would happen.
author:
  - kvmops team (@kvmops)
extends_documentation_fragment:
  - kvmops.hypervisor.libvirt
  - kvmops.hypervisor.snapshot
  - kvmops.hypervisor.attributes
  - kvmops.hypervisor.attributes.actiongroup_kvm
  - kvmops.hypervisor.attributes.facts
  - kvmops.hypervisor.attributes.idempotent
attributes:
  check_mode:
    support: full
    details: Check mode creates, deletes and reverts nothing; a revert returns RV(prediction).
  diff_mode:
    support: full
    details: Shows the guest's snapshot names before and after.
  facts:
    support: full
    details: O(state=listed) returns C(ansible_facts.virt_snapshots).
  idempotent:
    support: partial
    details: V(present) and V(absent) are idempotent; V(reverted) reverts on every run, since the guest may have changed since.
options:
  domain:
    description: Name of the guest (libvirt domain).
    type: str
    required: true
  name:
    description:
      - Name of the snapshot. Required unless O(state=listed).
      - Letters, digits and C(_.+:-); external snapshots use it in their overlay file names.
    type: str
  state:
    description:
      - V(present) creates the snapshot when the guest has none of that name.
      - V(absent) deletes it (and with O(children) its descendants).
      - V(reverted) reverts the guest to it.
      - V(listed) returns the guest's snapshots in RV(snapshots) and C(ansible_facts.virt_snapshots).
    type: str
    choices: [present, absent, reverted, listed]
    default: present
notes:
  - libvirt 9.0 cannot revert to external snapshots (9.7 can); the module refuses with that reason
    before it changes anything. Convert raw disks to qcow2 for internal snapshots you can revert to.
seealso:
  - module: kvmops.hypervisor.virt_install_domain
  - name: libvirt snapshot XML format
    description: What a snapshot records.
    link: https://libvirt.org/formatsnapshot.html
'''

EXAMPLES = r'''
- name: Snapshot vm1 before its upgrade (internal with memory state when its disks are qcow2)
  kvmops.hypervisor.virt_snapshot:
    domain: vm1
    name: before-upgrade
    description: Before the kernel upgrade

- name: Snapshot a raw-disk guest (external overlays in /vm-images/snapshots), quiesced or fail
  kvmops.hypervisor.virt_snapshot:
    domain: win2012
    name: nightly
    kind: external
    quiesce: required
    external_dir: /vm-images/snapshots

- name: Show what a revert would throw away
  kvmops.hypervisor.virt_snapshot:
    domain: vm1
    name: before-upgrade
    state: reverted
  check_mode: true
  register: vm1_revert

- name: Go back to the snapshot and start the guest
  kvmops.hypervisor.virt_snapshot:
    domain: vm1
    name: before-upgrade
    state: reverted
    revert_state: running

- name: List vm1's snapshots
  kvmops.hypervisor.virt_snapshot:
    domain: vm1
    state: listed
  register: vm1_snapshots

- name: Delete the snapshot and everything taken after it
  kvmops.hypervisor.virt_snapshot:
    domain: vm1
    name: before-upgrade
    state: absent
    children: true
'''

RETURN = r'''
domain:
  description: Name of the guest.
  returned: always
  type: str
name:
  description: Name of the snapshot (null with O(state=listed)).
  returned: always
  type: str
snapshot:
  description:
    - The snapshot - name, description, state of the guest when it was taken (C(running),
      C(shutoff), C(disk-snapshot)), kind (C(internal) or C(external)), memory (whether it holds
      the memory state), parent, created (epoch seconds), current, children (count), disks
      (name, snapshot kind, overlay file).
    - Null in check mode for a snapshot not created yet.
  returned: unless state is listed
  type: dict
  sample: {name: before-upgrade, kind: internal, state: running, memory: true, parent: null,
           created: 1764682800, current: true, children: 0, disks: [{name: vda, snapshot: internal, file: null}]}
kind:
  description: The kind of snapshot created - V(internal) or V(external).
  returned: when a snapshot is created
  type: str
  sample: external
kind_reason:
  description: Why that kind was used.
  returned: when a snapshot is created
  type: str
  sample: "external disk-only snapshot, because an internal one is impossible: disk vda is raw (internal snapshots live inside qcow2 images)."
quiesced:
  description: Whether the guest agent froze the guest's file systems for the snapshot (null in check mode when it would be tried).
  returned: when a snapshot is created
  type: bool
quiesce_reason:
  description: Why the snapshot is or is not quiesced.
  returned: when a snapshot is created
  type: str
memory:
  description: Whether the snapshot holds the memory state of the running guest.
  returned: when a snapshot is created
  type: bool
overlays:
  description: The overlay files of an external snapshot.
  returned: when a snapshot is created
  type: list
  elements: str
deleted:
  description: The snapshots deleted (the snapshot and, with O(children), its descendants).
  returned: when a snapshot is deleted
  type: list
  elements: str
merged:
  description: Disks whose external overlay was merged back into the base image.
  returned: when a snapshot is deleted
  type: list
  elements: str
children_kept:
  description: Children of a deleted snapshot that were kept (re-parented).
  returned: when a snapshot with children is deleted without O(children)
  type: list
  elements: str
prediction:
  description: What a revert does (or, in check mode, would do) and what it throws away.
  returned: with state reverted
  type: str
  sample: >-
    vm1 would go back to snapshot before-upgrade (taken 2026-12-02 13:00:00 UTC, guest running then)
    and be running afterwards; everything the guest wrote to its disks since the snapshot, and its
    current memory state (it is running now) would be discarded.
state_before:
  description: Power state of the guest before a revert.
  returned: with state reverted
  type: str
state_after:
  description: Power state of the guest after the revert (predicted in check mode).
  returned: with state reverted
  type: str
snapshots:
  description: The guest's snapshots, parents before children, as in RV(snapshot).
  returned: with state listed
  type: list
  elements: dict
actions:
  description: What was done (or would be done in check mode).
  returned: always
  type: list
  elements: str
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.kvmops.hypervisor.plugins.module_utils._common.argspec import uri_option
from ansible_collections.kvmops.hypervisor.plugins.module_utils._module.runner import manager_options, run_manager
from ansible_collections.kvmops.hypervisor.plugins.module_utils._snapshot import plan
from ansible_collections.kvmops.hypervisor.plugins.module_utils._snapshot.argspec import snapshot_options
from ansible_collections.kvmops.hypervisor.plugins.module_utils._snapshot.manager import SnapshotManager


def argument_spec():
    return dict(
        uri=uri_option(),
        domain=dict(type='str', required=True),
        name=dict(type='str'),
        state=dict(type='str', choices=list(plan.STATES), default='present'),
        **snapshot_options()
    )


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True,
                           required_if=[('state', 'present', ['name']), ('state', 'absent', ['name']),
                                        ('state', 'reverted', ['name'])])
    run_manager(module,
                prepare=lambda: plan.normalize(module.params),
                build=lambda conn, spec: SnapshotManager(conn, spec, **manager_options(module)),
                subject=lambda spec: 'the snapshots of domain %s' % spec['domain'],
                fail_fields=lambda spec, manager: dict(domain=module.params['domain'],
                                                       name=module.params['name'], changed=False))


if __name__ == '__main__':
    main()
