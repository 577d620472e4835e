#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: kvmops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
module: kvm_capability_facts
short_description: Decide whether a host can really run KVM guests, and which libvirt domain type to use
version_added: 1.0.0
author:
  - kvmops team (@kvmops)
description:
  - Gathers facts in C(ansible_facts.kvm_capability) that say whether KVM guests can run on the host
    (RV(ansible_facts.kvm_capability.kvm_usable)) and which libvirt domain type guests should use (C(kvm) or C(qemu)).
  - Decides from the CPU virtualization flag, C(/dev/kvm) and the KVM vendor module together, never
    by starting a VM. A host can expose a C(/dev/kvm) that answers ioctls while guests of type C(kvm)
    hang (for example a C(kvm_pvm) device inside a cloud VM without VT-x/AMD-V); libvirt then still
    advertises domain type C(kvm). The facts then say C(qemu), and C(reasons) explains why.
  - Counts logical CPUs that carry C(vmx)/C(svm), not matching lines of C(/proc/cpuinfo) (Linux 5.x
    and later print an extra C(vmx flags) line per Intel CPU, so a line count such as C(egrep -c vmx) counts them twice).
    On s390x the machine-wide C(sie) feature counts for every CPU; arm64 and ppc64le have no such
    flag and rely on C(/dev/kvm) and the kernel.
  - Also runs the checks of C(virt-host-validate qemu) (devices, cgroup controllers, IOMMU) and
    reports what libvirt offers, if it is installed and running. libvirt being absent or down is
    reported, not an error.
  - Never changes anything on the host.
options:
  require:
    description:
      - V(none) only gathers the facts.
      - V(kvm) fails, with the reasons and the facts, when KVM is not usable on the host, so a play
        can stop before it builds guests that would be slow or would not start.
    type: str
    choices: [none, kvm]
    default: none
  root:
    description:
      - Read C(proc), C(sys), C(dev) and C(etc) under this directory instead of C(/), for example a
        mounted host image or an unpacked sosreport.
      - With a root other than C(/), libvirt is not queried (it would describe the live host).
    type: path
    default: /
extends_documentation_fragment:
  - kvmops.hypervisor.libvirt
  - kvmops.hypervisor.attributes
  - kvmops.hypervisor.attributes.actiongroup_kvm
  - kvmops.hypervisor.attributes.facts
  - kvmops.hypervisor.attributes.idempotent
attributes:
  check_mode:
    support: full
    details: The module never changes anything; check mode returns the same facts.
  diff_mode:
    support: none
  facts:
    support: full
  idempotent:
    support: full
notes:
  - Reads C(/proc/cpuinfo), C(/sys/module), C(/dev/kvm), C(/etc/libvirt/qemu.conf), C(/etc/passwd),
    C(/etc/group), C(/proc/mounts) and C(/sys/kernel/iommu_groups) under O(root).
  - The QEMU user is taken from C(user)/C(group) in C(qemu.conf), else the distribution's default
    (C(libvirt-qemu) on Debian/Ubuntu, C(qemu) on RHEL/Fedora). POSIX ACLs on C(/dev/kvm) are not
    evaluated.
  - libvirt's domain capabilities (emulator paths per domain type) need a read-write connection;
    with a read-only one the emulator of the capabilities XML is reported.
seealso:
  - name: virt-host-validate
    description: libvirt's own host validation tool, whose checks this module mirrors.
    link: https://libvirt.org/manpages/virt-host-validate.html
'''

EXAMPLES = r'''
- name: Gather KVM capability facts
  kvmops.hypervisor.kvm_capability_facts:

- name: Show why guests would (not) use KVM
  ansible.builtin.debug:
    msg: "{{ ansible_facts.kvm_capability.domain_type }}: {{ ansible_facts.kvm_capability.reasons }}"

- name: Stop here unless KVM really works (fails with the reasons)
  kvmops.hypervisor.kvm_capability_facts:
    require: kvm

- name: Inspect a host image mounted on /mnt/host (libvirt is not queried)
  kvmops.hypervisor.kvm_capability_facts:
    root: /mnt/host

- name: List the virt-host-validate style checks that did not pass
  ansible.builtin.debug:
    msg: "{{ ansible_facts.kvm_capability.checks | rejectattr('result', 'equalto', 'PASS') | list }}"
'''

RETURN = r'''
ansible_facts:
  description: Facts added to the host.
  returned: always
  type: dict
  contains:
    kvm_capability:
      description: What the host can run and why.
      returned: always
      type: dict
      contains:
        arch:
          description: Machine architecture (C(uname -m) on the live host, else from C(/proc/cpuinfo)).
          type: str
          returned: always
          sample: x86_64
        cpu_vendor:
          description: Lowercase vendor label (intel, amd, hisilicon, qualcomm, ibm, ...).
          type: str
          returned: always
          sample: intel
        cpu_model:
          description: CPU model name.
          type: str
          returned: always
          sample: Intel(R) Xeon(R) Gold 6230 CPU @ 2.10GHz
        logical_cpus:
          description: Number of logical CPUs in C(/proc/cpuinfo).
          type: int
          returned: always
          sample: 80
        virt_extension:
          description: Hardware virtualization flag found (C(vmx), C(svm), C(sie)), or null.
          type: str
          returned: always
          sample: vmx
        virt_flag_count:
          description: Number of logical CPUs that carry RV(ansible_facts.kvm_capability.virt_extension) (CPUs, not lines).
          type: int
          returned: always
          sample: 80
        hypervisor:
          description: Whether the host is itself a guest (x86 C(hypervisor) CPU flag).
          type: bool
          returned: always
          sample: false
        kvm_device:
          description:
            - C(/dev/kvm) - present, char_device, owner, group, mode, permissions, root_access,
              and QEMU's user - qemu_user, qemu_group, qemu_user_source, qemu_access (null if that user
              is unknown), qemu_access_via (owner, group NAME, other or root).
          type: dict
          returned: always
          sample: {present: true, char_device: true, owner: root, group: kvm, mode: '0660',
                   permissions: crw-rw----, root_access: true, qemu_user: libvirt-qemu,
                   qemu_group: libvirt-qemu, qemu_user_source: the libvirt default on Debian/Ubuntu,
                   qemu_access: true, qemu_access_via: group kvm, path: /dev/kvm}
        kvm_modules:
          description: Loaded KVM modules from C(/sys/module) (kvm, kvm_intel, kvm_amd, kvm_pvm, kvm_hv, ...).
          type: list
          elements: str
          returned: always
          sample: [kvm, kvm_intel]
        kvm_vendor_module:
          description: The module that drives the CPU's virtualization (kvm_intel, kvm_amd, kvm_hv, kvm), or null.
          type: str
          returned: always
          sample: kvm_intel
        nested:
          description: Nested virtualization from the vendor module's C(nested) parameter; null if unknown.
          type: bool
          returned: always
          sample: true
        devices:
          description: Whether C(/dev/vhost-net) and C(/dev/net/tun) exist.
          type: dict
          returned: always
          sample: {/dev/vhost-net: true, /dev/net/tun: true}
        cgroup_controllers:
          description: cgroup controllers libvirt can use (null if C(/proc/mounts) is unreadable).
          type: list
          elements: str
          returned: always
        cgroup_version:
          description: Mounted cgroup hierarchies (v1, v2 or v1+v2).
          type: str
          returned: always
        iommu_groups:
          description: Number of IOMMU groups (0 = PCI device assignment unavailable).
          type: int
          returned: always
        iommu_acpi_tables:
          description: ACPI tables describing an IOMMU (DMAR, IVRS) present in the firmware.
          type: list
          elements: str
          returned: always
        kvm_usable:
          description: Whether guests can use KVM on this host.
          type: bool
          returned: always
          sample: false
        domain_type:
          description: The libvirt domain type guests should use, C(kvm) or C(qemu).
          type: str
          returned: always
          sample: qemu
        reasons:
          description: Sentences explaining the decision, for a sysadmin.
          type: list
          elements: str
          returned: always
          sample:
            - "The CPU reports no vmx/svm flag on any of its 2 logical CPUs: hardware virtualization
               (Intel VT-x / AMD-V) is absent or disabled in firmware."
            - "Guests will run under QEMU software emulation (TCG, domain type \"qemu\"): they work,
               but much slower than with KVM."
        checks:
          description: Checks in the spirit of C(virt-host-validate qemu), each with C(name), C(result) (PASS, WARN or FAIL) and C(detail).
          type: list
          elements: dict
          returned: always
          sample: [{name: /dev/net/tun exists, result: PASS, detail: present}]
        libvirt:
          description:
            - What libvirt offers - installed, daemons_installed, daemons_running, sockets,
              daemon_mode (monolithic libvirtd or split virtqemud), connected, uri, error,
              library_version, hypervisor_name, hypervisor_version, host_arch, domain_types (for
              the host arch), advertises_kvm, emulators (per domain type), guest_arches, summary.
            - When libvirt is not installed or does not answer, connected is false and summary says so.
          type: dict
          returned: always
          sample: {connected: true, daemon_mode: monolithic, library_version: 9.0.0,
                   hypervisor_name: QEMU, hypervisor_version: 7.2.22, domain_types: [qemu, kvm],
                   advertises_kvm: true, emulators: {kvm: /bin/qemu-system-x86_64, qemu: /bin/qemu-system-x86_64}}
        emulator:
          description: The QEMU binary for RV(ansible_facts.kvm_capability.domain_type) (from libvirt, else the first found), or null.
          type: str
          returned: always
          sample: /usr/bin/qemu-system-x86_64
        root:
          description: The directory the facts were read under.
          type: str
          returned: always
          sample: /
'''

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.kvmops.hypervisor.plugins.module_utils._common.argspec import uri_option
from ansible_collections.kvmops.hypervisor.plugins.module_utils._module.runner import hide_url_credentials
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt.masking import mask_url_credentials
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt import connection as _conn
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt.locality import is_local_uri, refusal
from ansible_collections.kvmops.hypervisor.plugins.module_utils._host.kvm_capability import gather_kvm_capability


def _connect(uri):
    """One connection (read-write for domain capabilities, else read-only); (conn, error)."""
    if not _conn.HAS_LIBVIRT:
        return None, _conn.LIBVIRT_INSTALL_HINT
    try:
        return _conn.open_connection(uri), None
    except _conn.LibvirtConnectionError as exc:
        error = str(exc)
    try:
        return _conn.open_connection(uri, read_only=True), None
    except _conn.LibvirtConnectionError:
        return None, error


def main():
    module = AnsibleModule(
        argument_spec=dict(
            uri=uri_option(),
            require=dict(type='str', default='none', choices=['none', 'kvm']),
            root=dict(type='path', default='/'),
        ),
        supports_check_mode=True,
    )
    hide_url_credentials(module)
    root = module.params['root']
    if not os.path.isdir(root):
        module.fail_json(msg='root %s is not a directory: give the directory that holds the '
                             'proc, sys, dev and etc trees to inspect (default /).' % root)
    conn = error = None
    live = os.path.realpath(root) == '/'
    if live and not is_local_uri(module.params['uri']):
        # /proc, /sys and /dev are read here: another host's libvirt would mix two hosts' facts.
        module.fail_json(msg=refusal(module.params['uri'], [
            ('uri', 'is asked for libvirt\'s view while /proc, /sys and /dev are read')]))
    if live:
        conn, error = _connect(module.params['uri'])
    try:
        facts = gather_kvm_capability(root=root, conn=conn, uri=mask_url_credentials(module.params['uri']) if live else None,
                                      libvirt_error=error)
    finally:
        if conn is not None:
            try:
                conn.close()
            except Exception:
                pass
    result = dict(changed=False, ansible_facts=dict(kvm_capability=facts))
    if module.params['require'] == 'kvm' and not facts['kvm_usable']:
        module.fail_json(msg='KVM is not usable on this host (require=kvm; with require=none guests '
                             'can use domain type qemu): %s' % ' '.join(facts['reasons']), **result)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
