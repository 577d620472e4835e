#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: kvmops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: virt_backup
short_description: Full and incremental backups of libvirt guests into a repository
version_added: 1.0.0
description:
  - Backs up one guest (O(domain)) or a list of guests (O(domains)) with libvirt's backup API in
    push mode - QEMU copies the disks of the running guest itself, without stopping it, into qcow2
    files of the repository - and creates a checkpoint (a dirty bitmap in each qcow2 image) so that
    the next backup can be incremental.
  - The repository has one directory per guest and one per chain (a full backup and the
    incrementals on top of it); every point holds one qcow2 file per disk (an incremental one has the
    previous point as its backing file), the domain XML and the NVRAM of a UEFI guest; the chain's
    C(manifest.json), written atomically, lists every file with its size and sha256.
  - O(level=auto) takes a full backup when there is no chain yet, when the chain is broken (its last
    checkpoint is missing, a disk was added, removed or replaced, the guest was redefined or moved to
    another host) or when the chain has O(chain_length) points; else an incremental one. The result
    says which and why (RV(level), RV(level_reason)).
  - Raw disks cannot carry checkpoints (libvirt keeps them as qcow2 bitmaps), so a guest with a raw
    disk gets full backups only; O(level=inc) fails for it.
  - A running guest is quiesced through the QEMU guest agent when it has one (file systems frozen
    only while the backup begins; RV(frozen) says whether they were). A shut-off guest is started
    paused for the backup (its CPUs never run) and stopped again, because libvirt 9.0 backs up
    running domains only.
  - A failed or interrupted backup leaves the committed chains as they were and removes its partial
    files and its checkpoint (or the next run does, first thing); retention (O(keep_chains),
    O(keep_days)) runs only after a successful backup. The guest's disks change only by the bitmaps.
  - Every run first recovers what an interrupted run left (C(recovered) in RV(backups), and a warning) - a
    record of the run's job in the guest's directory tells that run's job, checkpoint and files from
    anyone else's, which are left alone. After libvirtd was killed during a backup, libvirt 9.0 may
    keep a backup job without its data that no API call ends; the run then fails at once, naming it
    and its cure (shut the guest down, restart libvirtd while it is off, start it); the chain
    continues afterwards.
  - Restore and verify with M(kvmops.hypervisor.virt_backup_restore).
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
    details: Check mode says the level and why, the disks and the estimated size; it writes nothing and creates no checkpoint.
  diff_mode:
    support: none
  idempotent:
    support: none
    details: Every run takes a new backup (that is its purpose); schedule it.
options:
  domain:
    description: Name of one guest to back up.
    type: str
  domains:
    description: Names of guests to back up in one task, O(parallel) at a time; a failing guest does not stop the others.
    type: list
    elements: str
  all_guests:
    description: Back up every persistent guest of the hypervisor (set it to V(true)).
    type: bool
  tag:
    description:
      - Back up every persistent guest carrying this tag in its domain metadata
        (C(<tags xmlns="urn:kvmops:hypervisor:tags:1"><tag>web</tag></tags>), as the
        P(kvmops.hypervisor.libvirt_guests#inventory) inventory plugin reads them).
    type: str
  repository:
    description:
      - Absolute path of the backup repository on the hypervisor (a local directory or a mounted file
        system). It must exist (a missing mount never fills the root file system) and QEMU's user must
        be able to traverse it (mode 0711 or wider).
    type: path
    required: true
  level:
    description:
      - V(auto) - incremental when the chain allows it, else full (see the description).
      - V(full) - always a new chain.
      - V(inc) - an incremental backup, or fail saying why not.
    type: str
    choices: [auto, full, inc]
    default: auto
  quiesce:
    description:
      - V(auto) - freeze the guest's file systems through the guest agent when it answers, else a
        crash-consistent backup with the reason in RV(quiesce_reason); V(required) - fail instead;
        V(skip) - never ask the agent.
    type: str
    choices: [auto, required, skip]
    default: auto
  chain_length:
    description: Points per chain (the full backup included) before O(level=auto) starts a new chain.
    type: int
    default: 7
  keep_chains:
    description: Chains kept per guest after a successful backup, the new one included.
    type: int
    default: 2
  keep_days:
    description: Also remove kept chains whose last backup is older than this many days (never the newest chain).
    type: int
  shut_off:
    description:
      - What to do with a shut-off guest. V(start_paused) - start it paused (its CPUs never run),
        back it up, stop it; V(skip) - report it as skipped.
    type: str
    choices: [start_paused, skip]
    default: start_paused
  timeout:
    description: Seconds a backup job may take before it is aborted (and cleaned up); 0 waits without limit.
    type: int
    default: 0
  parallel:
    description: Guests backed up at the same time (each backup is a QEMU job; the module mostly waits).
    type: int
    default: 2
notes:
  - One of O(domain), O(domains), O(all_guests) and O(tag) is required.
  - The domain XML is saved without secrets (a VNC password is not in the backup).
  - Back up a guest into one repository. Checkpoints belong to the guest, not to a repository - a
    backup into another repository removes the checkpoint the first one's chain needs, so that
    chain's next backup is a full one (nothing is lost, only the incremental).
  - Pull mode (an NBD export read by a client) is not used; see the collection's README, section Backups.
seealso:
  - module: kvmops.hypervisor.virt_backup_restore
  - name: libvirt backup and checkpoint XML
    description: What libvirt's backup API does.
    link: https://libvirt.org/kbase/incrementalbackupinternals.html
'''

EXAMPLES = r'''
- name: Back up vm1 (full the first time, incremental afterwards, a new chain every 7 backups)
  kvmops.hypervisor.virt_backup:
    domain: vm1
    repository: /srv/backups

- name: What a backup of three guests would do (level, disks, estimated size)
  kvmops.hypervisor.virt_backup:
    domains: [web1, web2, db1]
    repository: /srv/backups
  check_mode: true
  register: backup_plan

- name: Nightly backups, two guests at a time, quiesced or fail, four chains kept
  kvmops.hypervisor.virt_backup:
    domains: [web1, web2, db1]
    repository: /mnt/backup
    quiesce: required
    keep_chains: 4
    parallel: 2
'''

RETURN = r'''
backups:
  description:
    - One entry per guest - domain, level, level_reason, chain, point, point_dir, files (per disk - file,
      size, sha256, virtual_size), size (bytes written), chain_size, estimated_size, duration
      (seconds), frozen, quiesce_reason, checkpoint, started_paused, skipped_disks, recovered (what an
      interrupted run had left and was cleaned, or a chain that continues), removed_chains (retention),
      failed and msg.
  returned: always
  type: list
  elements: dict
summary:
  description:
    - guests (count), full and inc (guests per level), skipped, failed (names), size (bytes written),
      lines (one line per guest - what, how big, how long).
  returned: always
  type: dict
level:
  description: With O(domain), the level taken (or that would be taken) - V(full) or V(inc).
  returned: with domain
  type: str
level_reason:
  description: With O(domain), why that level.
  returned: with domain
  type: str
  sample: "the guest's disks changed since the chain began (added or changed: vdb)"
frozen:
  description: With O(domain), whether the guest agent froze the file systems (null in check mode).
  returned: with domain
  type: bool
quiesce_reason:
  description: With O(domain), why the backup is or is not quiesced.
  returned: with domain, when a backup was taken
  type: str
  sample: "the guest has no guest-agent channel: the backup is crash-consistent, as if the guest had lost power"
estimated_size:
  description: With O(domain), bytes the backup is expected to write (allocated data for a full; the checkpoint's dirty size for an incremental).
  returned: with domain
  type: int
size:
  description: With O(domain), bytes written - the point's files (null in check mode).
  returned: with domain
  type: int
point_dir:
  description:
    - With O(domain), the directory of the new point. (Not C(path) - Ansible would add that
      directory's file attributes, C(size) among them, to the result.)
  returned: with domain, when a backup was taken
  type: str
actions:
  description: What was done (or would be done in check mode).
  returned: always
  type: list
  elements: str
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.kvmops.hypervisor.plugins.module_utils._common.argspec import uri_option
from ansible_collections.kvmops.hypervisor.plugins.module_utils._module.runner import manager_options, run_manager
from ansible_collections.kvmops.hypervisor.plugins.module_utils._backup import plan
from ansible_collections.kvmops.hypervisor.plugins.module_utils._backup.manager import BackupManager


def argument_spec():
    return dict(
        uri=uri_option(),
        domain=dict(type='str'),
        domains=dict(type='list', elements='str'),
        all_guests=dict(type='bool'),
        tag=dict(type='str'),
        repository=dict(type='path', required=True),
        level=dict(type='str', choices=['auto', 'full', 'inc'], default='auto'),
        quiesce=dict(type='str', choices=list(plan.QUIESCE), default='auto'),
        chain_length=dict(type='int', default=7),
        keep_chains=dict(type='int', default=2),
        keep_days=dict(type='int'),
        shut_off=dict(type='str', choices=['start_paused', 'skip'], default='start_paused'),
        timeout=dict(type='int', default=0),
        parallel=dict(type='int', default=2),
    )


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True,
                           required_one_of=[('domain', 'domains', 'all_guests', 'tag')],
                           mutually_exclusive=[('domain', 'all_guests'), ('domains', 'all_guests'),
                                               ('domain', 'tag'), ('domains', 'tag')])
    run_manager(module,
                prepare=lambda: plan.normalize(module.params),
                build=lambda conn, spec: BackupManager(conn, spec, **manager_options(module)),
                subject=lambda spec: 'the backup of %s' % (', '.join(spec['domains']) or 'the guests'),
                fail_fields=lambda spec, manager: dict(changed=bool(manager and manager.changed)))


if __name__ == '__main__':
    main()
