#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: kvmops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: virt_snapshots
short_description: One snapshot over a group of libvirt guests - create, delete or revert them all
version_added: 1.0.0
description:
  - Takes, deletes or reverts to the snapshot O(name) on every guest of O(domains) in one task,
    for a patch window - snapshot the group, patch, then revert all or delete all. Each guest is
    handled exactly as M(kvmops.hypervisor.virt_snapshot) handles one (internal or external,
    quiesced through the guest agent where it answers, merge-back on delete), and its result is
    reported per guest in RV(guests).
  - Every guest is planned first, without side effects. When the plan of any guest is refused (a
    guest that does not exist, libvirt 9.0 asked to revert an external snapshot, a guest without the
    snapshot to revert to, an existing snapshot of that name of another kind, an overlay file in the
    way), the task fails before anything is done, naming every refused guest with its reason.
  - Then the guests that need a change are handled one after the other, in the order of
    O(domains). When one fails, the task stops there. Nothing is undone on the guests already done;
    the message and RV(summary) say which guests have the snapshot now (as libvirt reports it after
    the failure) and which do not. Fix the cause and run the task again - it acts only on the guests
    still to do.
  - V(present) and V(absent) are idempotent per guest - a guest that has the snapshot (or, for
    V(absent), does not) is left alone. V(reverted) reverts every guest on every run.
author:
  - kvmops team (@kvmops)
extends_documentation_fragment:
  - kvmops.hypervisor.libvirt
  - kvmops.hypervisor.snapshot
  - kvmops.hypervisor.attributes
  - kvmops.hypervisor.attributes.actiongroup_kvm
  - kvmops.hypervisor.attributes.idempotent
attributes:
  check_mode:
    support: full
    details: Check mode plans every guest and creates, deletes and reverts nothing; RV(guests) holds each guest's prediction.
  diff_mode:
    support: full
    details: Shows each guest's snapshot names before and after, one line per guest.
  idempotent:
    support: partial
    details: V(present) and V(absent) are idempotent; V(reverted) reverts on every run, since the guests may have changed since.
options:
  domains:
    description:
      - Names of the guests (libvirt domains), each once. They are handled in this order.
    type: list
    elements: str
    required: true
  name:
    description:
      - Name of the snapshot on every guest.
      - Letters, digits and C(_.+:-); external snapshots use it in their overlay file names.
    type: str
    required: true
  state:
    description:
      - V(present) creates the snapshot on every guest that has none of that name.
      - V(absent) deletes it (and with O(children) its descendants) from every guest that has it.
      - V(reverted) reverts every guest to it. Every guest must have it; a guest without it refuses
        the whole group before anything is reverted.
      - To list the snapshots of a guest use M(kvmops.hypervisor.virt_snapshot) with C(state=listed).
    type: str
    choices: [present, absent, reverted]
    default: present
notes:
  - libvirt 9.0 cannot revert to external snapshots (9.7 can); a group with such a guest is refused
    before anything is reverted. Guests with qcow2 disks take internal snapshots, which can be reverted.
  - A failure part-way leaves the guests done before it as they are (their snapshot taken, deleted or
    reverted); nothing is rolled back, so one guest's fault never costs the others their snapshot.
  - Sequential - one guest after the other. A snapshot takes a fraction of a second for a shut-off
    guest and seconds for a running one's memory state, short next to a patch window, and a stop at
    the first failure is exact only one guest at a time.
seealso:
  - module: kvmops.hypervisor.virt_snapshot
  - name: libvirt snapshot XML format
    description: What a snapshot records.
    link: https://libvirt.org/formatsnapshot.html
'''

EXAMPLES = r'''
# A patch window over the web group: snapshot every guest, patch, then keep or roll back.
- name: Plan it first - each guest's kind and quiesce in web_plan.guests, nothing is made
  kvmops.hypervisor.virt_snapshots:
    domains: [web01, web02, web03]
    name: before-patch
  check_mode: true
  register: web_plan

- name: Snapshot every web guest before patching
  kvmops.hypervisor.virt_snapshots:
    domains: [web01, web02, web03]
    name: before-patch
    description: Before the October patches
  register: web_snapshots   # web_snapshots.guests[i].quiesced - frozen by its guest agent or not

- name: Raw-disk guests - external snapshots in one directory, each frozen by its agent or fail
  kvmops.hypervisor.virt_snapshots:
    domains: [db1, db2]
    name: before-patch
    kind: external
    quiesce: required
    external_dir: /vm-images/snapshots

- name: The patches broke something - revert every web guest and start it
  kvmops.hypervisor.virt_snapshots:
    domains: [web01, web02, web03]
    name: before-patch
    state: reverted
    revert_state: running

- name: The patches are good - delete the snapshot on every web guest (data kept)
  kvmops.hypervisor.virt_snapshots:
    domains: [web01, web02, web03]
    name: before-patch
    state: absent
'''

RETURN = r'''
name:
  description: Name of the snapshot.
  returned: always
  type: str
  sample: before-patch
state:
  description: The O(state) asked for.
  returned: always
  type: str
guests:
  description:
    - One entry per guest, in the order of O(domains) - M(kvmops.hypervisor.virt_snapshot)'s result for
      that guest (C(domain), C(name), C(changed), C(actions), C(snapshot), and by state C(kind),
      C(kind_reason), C(quiesced), C(quiesce_reason), C(memory), C(overlays); C(deleted), C(merged),
      C(children_kept); C(prediction), C(state_before), C(state_after)), plus C(status).
    - C(status) - V(unchanged) (nothing to do), V(planned) (check mode - would change),
      V(changed) (done in this run), V(refused) (its plan failed - nothing was done on any guest),
      V(failed) (the run stopped at this guest), V(not_done) (the run stopped before it). A refused
      or failed guest carries its reason in C(msg).
  returned: always
  type: list
  elements: dict
  sample: [{domain: web01, name: before-patch, status: changed, changed: true, kind: internal,
            quiesced: false, quiesce_reason: "The guest is shut off: its disks are consistent as they are.",
            actions: [create internal snapshot before-patch]}]
summary:
  description: Names of the guests by outcome; which guests have the snapshot is read from libvirt after the run.
  returned: always
  type: dict
  contains:
    total:
      description: Number of guests.
      type: int
    changed_guests:
      description: Guests changed in this run.
      type: list
      elements: str
    unchanged_guests:
      description: Guests with nothing to do.
      type: list
      elements: str
    planned_guests:
      description: Check mode - guests that would change.
      type: list
      elements: str
    refused_guests:
      description: Guests whose plan was refused (nothing was done on any guest).
      type: list
      elements: str
    failed_guests:
      description: The guest the run stopped at (one at most).
      type: list
      elements: str
    not_done_guests:
      description: Guests that would have changed but the run stopped before them.
      type: list
      elements: str
    reverted_guests:
      description: With O(state=reverted), the guests reverted in this run.
      type: list
      elements: str
    with_snapshot:
      description: Guests that have the snapshot after the run (in check mode - now).
      type: list
      elements: str
    without_snapshot:
      description: Guests that do not have it after the run (in check mode - now).
      type: list
      elements: str
    unknown_guests:
      description: Guests libvirt could not say that for (a guest that does not exist).
      type: list
      elements: str
  sample: {total: 3, changed_guests: [web01], unchanged_guests: [], planned_guests: [], refused_guests: [],
           failed_guests: [web02], not_done_guests: [web03], with_snapshot: [web01],
           without_snapshot: [web02, web03], unknown_guests: []}
actions:
  description: What was done (or would be done in check mode), each prefixed with its guest's name.
  returned: always
  type: list
  elements: str
  sample: ["web01: create internal snapshot before-patch with the memory state"]
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.kvmops.hypervisor.plugins.module_utils._common.argspec import uri_option
from ansible_collections.kvmops.hypervisor.plugins.module_utils._module.runner import manager_options, run_manager
from ansible_collections.kvmops.hypervisor.plugins.module_utils._snapshot import group
from ansible_collections.kvmops.hypervisor.plugins.module_utils._snapshot.argspec import snapshot_options


def argument_spec():
    return dict(
        uri=uri_option(),
        domains=dict(type='list', elements='str', required=True),
        name=dict(type='str', required=True),
        state=dict(type='str', choices=list(group.STATES), default='present'),
        **snapshot_options()
    )


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    run_manager(module,
                prepare=lambda: group.normalize(module.params),
                build=lambda conn, spec: group.GroupSnapshotManager(conn, spec, **manager_options(module)),
                subject=lambda spec: 'the snapshot %s of domains %s' % (spec['name'], ', '.join(spec['domains'])),
                fail_fields=lambda spec, manager: dict(name=module.params['name'], changed=False))


if __name__ == '__main__':
    main()
