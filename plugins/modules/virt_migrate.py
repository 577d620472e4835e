#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: kvmops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: virt_migrate
short_description: Move a libvirt guest to another hypervisor - live, or offline when it is shut off
version_added: 1.0.0
description:
  - Moves the guest O(name) from the hypervisor of O(uri) (the host the task runs on) to the
    hypervisor O(dest_uri), or to the best of O(dest_candidates).
  - A running guest moves live through libvirt's peer-to-peer migration
    (virDomainMigrateToURI3 with LIVE, PEER2PEER, PERSIST_DEST and UNDEFINE_SOURCE) - the source's
    libvirt daemon connects to O(dest_uri) itself, so the source host (its root account for
    C(qemu+ssh)) must reach the target with the same URI. A shut-off guest is moved offline - defined
    on the target, undefined on the source.
  - Afterwards exactly one host has the guest, with the same UUID, MAC addresses and disk paths;
    the source keeps no definition and no QEMU process.
  - Before anything moves, each target is checked - the guest's libvirt networks (active) and
    bridges, its disks (O(storage)), enough available memory, a CPU the target can give it
    (libvirt's compareHypervisorCPU; a host-passthrough guest only between hosts with the same CPU),
    the domain type, no host device passed through, no other guest of that name, and the guest's
    placement tags (C(pin:HOST), C(anti_affinity:GROUP) in the tags metadata the inventory plugin
    reads, namespace C(urn:kvmops:hypervisor:tags:1)). RV(checks) gives one reason per failed check.
    In check mode the checks run and nothing moves.
  - Idempotent - a guest that is no longer on the source but on a target is V(changed=false); a
    guest on neither fails.
  - A module and not a state of the guest modules, because a move acts on an existing domain of any
    origin, on two hosts at once, and has its own failure model (a half-done job, a target that
    goes away); the guest modules converge one definition on one host.
  - The role C(kvmops.hypervisor.hypervisor_maintenance) drains a whole hypervisor with this module.
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
    details: Check mode connects to the targets, runs every check and picks the target; it moves and creates nothing.
  diff_mode:
    support: full
    details: Shows the host (and power state) before and after.
  idempotent:
    support: full
options:
  name:
    description: Name of the guest (libvirt domain) on the source.
    type: str
    required: true
  dest_uri:
    description:
      - libvirt URI of the target hypervisor as the source host reaches it, e.g.
        C(qemu+ssh://root@hv2/system). The source's libvirt daemon opens it (peer-to-peer), and the
        module opens it too for the checks and the job statistics.
      - One of O(dest_uri) and O(dest_candidates) is required.
    type: str
  dest_candidates:
    description:
      - Target URIs to choose from. Among those that pass every check the module takes the one
        with the most available memory, then the fewest running guests.
    type: list
    elements: str
  storage:
    description:
      - V(shared) - the disks are on storage both hosts see under the same paths (NFS, Ceph, a
        cluster file system, a volume both mount); nothing is copied. The module checks that the
        files are there on the target (where a storage pool covers their directory).
      - V(copy) - libvirt copies the writable disks (NBD, non-shared migration) into images the
        module creates first on the target through its storage API, with the same size and format,
        in the pool over the same directory. An existing image there is never overwritten. Read-only
        disks (CD-ROMs) must already be on the target. For a shut-off guest the images are streamed
        through the two storage APIs (the source images must be in a pool). The source's images are
        left where they are (RV(disks)); remove them once you are satisfied.
    type: str
    choices: [shared, copy]
    required: true
  unsafe:
    description:
      - With O(storage=shared), let libvirt migrate although it does not recognise the storage as
        shared (VIR_MIGRATE_UNSAFE). libvirt knows NFS, GlusterFS, Ceph and a few others; a bind
        mount, a podman volume or another cluster file system look local to it, and it refuses. Set
        this only when the disks really are the same files on both hosts. Never set implicitly; a
        warning repeats it on every move.
    type: bool
    default: false
  bandwidth:
    description: Maximum migration bandwidth in MiB/s (libvirt's C(bandwidth) parameter). Default no limit.
    type: int
  timeout:
    description:
      - Seconds after which O(timeout_action) is applied to a live migration that has not finished
        (a guest that dirties its memory faster than the link copies it never converges). V(0), the
        default, waits without limit.
    type: int
    default: 0
  timeout_action:
    description:
      - V(abort) - abort the migration; the guest keeps running on the source, the task fails.
      - V(pause) - pause the guest so the migration finishes (downtime grows), then resume it on the target.
      - V(postcopy) - switch to post-copy (the guest runs on the target while its memory follows;
        if the link breaks then, the guest is lost). Sets the POSTCOPY flag.
    type: str
    choices: [abort, pause, postcopy]
    default: abort
  auto_converge:
    description: Throttle the guest's vCPUs when the migration does not converge (VIR_MIGRATE_AUTO_CONVERGE).
    type: bool
    default: false
  compression:
    description: Compress the memory pages sent (VIR_MIGRATE_COMPRESSED, QEMU's xbzrle by default).
    type: bool
    default: false
  tls:
    description:
      - Encrypt the migration stream (memory and copied disks) with TLS (VIR_MIGRATE_TLS), QEMU to
        QEMU, each side checking the other's certificate against the CA. Both hosts need QEMU's
        certificates in C(/etc/pki/qemu) (or qemu.conf's C(migrate_tls_x509_cert_dir)) - the source
        C(ca-cert.pem), C(client-cert.pem), C(client-key.pem), the target C(ca-cert.pem),
        C(server-cert.pem), C(server-key.pem); the role C(kvmops.hypervisor.libvirt_pki) makes them all.
      - Before anything moves (check mode too) the module refuses when the source lacks its files,
        naming them. The target's files cannot be seen through libvirt; if they are missing, libvirt
        fails the move before the guest leaves the source, and the message names the fix.
      - Independent of the transport of O(dest_uri) - C(qemu+tls://hv2/system) (libvirt's own TLS,
        port 16514) and C(qemu+ssh://) both work.
      - Applies to a live move; an offline move sends only the definition.
    type: bool
    default: false
  memory_reserve:
    description: MiB a target must keep available beyond the guest's memory for the check to pass.
    type: int
    default: 256
  source_log:
    description:
      - When a move fails, read the source daemon's errors since the move started (journalctl for
        libvirtd / virtqemud) and QEMU's log of the guest, and put them in the message. libvirt often
        reports only "End of file while reading data" while the real cause is in that log.
      - Read only when O(uri) is this host's libvirt (such as C(qemu:///system)); those logs are on the
        source host, which a remote O(uri) is not.
    type: bool
    default: true
notes:
  - Runs on the source hypervisor. The source must resolve and reach the target's host name (the
    migration data goes to it on ports 49152-49215; libvirt's C(qemu+ssh) on 22) - the
    C(kvm_host) role opens them with C(kvm_host_migration_firewall).
  - Job statistics (RV(job)) are read on the target after the move; after UNDEFINE_SOURCE the
    source has none.
  - After a shared-storage move libvirt on the source may give the image's ownership back to
    root (its remember_owner feature) while the guest runs on the target; a later block job on
    the target may then need the owner fixed.
seealso:
  - name: libvirt migration
    description: How libvirt migrates guests, the flags and parameters.
    link: https://libvirt.org/migration.html
'''

EXAMPLES = r'''
- name: Move vm1 live to hv2 (disks on NFS both mount)
  kvmops.hypervisor.virt_migrate:
    name: vm1
    dest_uri: qemu+ssh://root@hv2/system
    storage: shared

- name: Move vm2 with its disks copied, at most 200 MiB/s, switch to post-copy after 5 minutes
  kvmops.hypervisor.virt_migrate:
    name: vm2
    dest_uri: qemu+ssh://root@hv3/system
    storage: copy
    bandwidth: 200
    timeout: 300
    timeout_action: postcopy

- name: Move vm4 live over libvirt's TLS, the memory stream encrypted too (certificates from libvirt_pki)
  kvmops.hypervisor.virt_migrate:
    name: vm4
    dest_uri: qemu+tls://hv2.example.org/system
    storage: shared
    tls: true

- name: Pick the best of two targets, without moving (check mode prints the checks)
  kvmops.hypervisor.virt_migrate:
    name: vm3
    dest_candidates: [qemu+ssh://root@hv2/system, qemu+ssh://root@hv3/system]
    storage: shared
    unsafe: true      # a cluster file system libvirt does not know: the disks ARE shared
  check_mode: true
  register: plan
'''

RETURN = r'''
name:
  description: Name of the guest.
  returned: always
  type: str
source:
  description: Host name of the source hypervisor (as its libvirt reports it).
  returned: always
  type: str
dest:
  description: URI of the target the guest went to (or is on already).
  returned: success
  type: str
dest_host:
  description: Host name of that target.
  returned: success
  type: str
moved:
  description: Whether the guest was moved by this run.
  returned: always
  type: bool
mode:
  description: V(live), V(offline), or V(none) when nothing had to move.
  returned: success
  type: str
uuid:
  description: UUID of the guest (the same on both hosts).
  returned: success
  type: str
macs:
  description: MAC addresses of the guest's interfaces.
  returned: when the guest is moved (or would be)
  type: list
  elements: str
disks:
  description: Paths of the guest's disks (the same on the target).
  returned: when the guest is moved (or would be)
  type: list
  elements: str
checks:
  description: Per target - host, ok, reasons (why the guest cannot go there), warnings.
  returned: when the guest is on the source
  type: list
  elements: dict
  sample: [{host: hv2, ok: false, reasons: ["hv2 has no bridge br0 (interface 52:54:00:12:34:56): ..."], warnings: []}]
flags:
  description: libvirt's migration flags used (or that would be).
  returned: when the guest is moved (or would be)
  type: list
  elements: str
  sample: [live, peer2peer, persist_dest, undefine_source]
job:
  description:
    - libvirt's statistics of the completed migration job, read on the target - total_ms, downtime_ms,
      setup_ms, data_total_bytes, memory_total_bytes, memory_iterations, disk_total_bytes and others
      when libvirt reports them. Empty for an offline move and in check mode.
  returned: when the guest is moved (or would be)
  type: dict
  sample: {total_ms: 1840, downtime_ms: 62, data_total_bytes: 287309824}
state:
  description: Power state of the guest on the target.
  returned: when the guest is moved, or was there already
  type: str
timeout_action_applied:
  description: The timeout action that was applied (null when the migration finished in time).
  returned: when the guest is moved
  type: str
created_volumes:
  description: Images created on the target for O(storage=copy).
  returned: when the guest is moved
  type: list
  elements: str
source_log:
  description: The source daemon's and QEMU's error lines logged during a failed move.
  returned: on a failed move
  type: list
  elements: str
refused:
  description: True when no target passed the checks (nothing was tried; RV(checks) says why).
  returned: when the guest cannot move
  type: bool
missing_tls_files:
  description: With O(tls=true), QEMU's TLS files the source lacks (the move was refused before anything moved).
  returned: when tls is refused for missing files
  type: list
  elements: str
cause:
  description: The cause of a failed move, in a few words.
  returned: on a failed move
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
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt.connection import open_connection
from ansible_collections.kvmops.hypervisor.plugins.module_utils._migrate import plan
from ansible_collections.kvmops.hypervisor.plugins.module_utils._migrate.manager import MigrateManager


def argument_spec():
    return dict(
        uri=uri_option(),
        name=dict(type='str', required=True),
        dest_uri=dict(type='str'),
        dest_candidates=dict(type='list', elements='str'),
        storage=dict(type='str', choices=list(plan.STORAGE), required=True),
        unsafe=dict(type='bool', default=False),
        bandwidth=dict(type='int'),
        timeout=dict(type='int', default=0),
        timeout_action=dict(type='str', choices=list(plan.TIMEOUT_ACTIONS), default='abort'),
        auto_converge=dict(type='bool', default=False),
        compression=dict(type='bool', default=False),
        tls=dict(type='bool', default=False),
        memory_reserve=dict(type='int', default=256),
        source_log=dict(type='bool', default=True),
    )


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True,
                           required_one_of=[('dest_uri', 'dest_candidates')],
                           mutually_exclusive=[('dest_uri', 'dest_candidates')])
    run_manager(module,
                prepare=lambda: plan.normalize(module.params),
                build=lambda conn, spec: MigrateManager(conn, spec, open_connection, run_command=module.run_command,
                                                        **manager_options(module)),
                subject=lambda spec: 'the move of domain %s' % spec['name'],
                fail_fields=lambda spec, manager: dict(name=module.params['name'], changed=False, moved=False))


if __name__ == '__main__':
    main()
