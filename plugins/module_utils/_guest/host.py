# -*- coding: utf-8 -*-
# Copyright: kvmops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The host facts a guest is built for: KVM or QEMU (virt_type), the architecture and the
machine aliases of the host's capabilities. Private to the collection: no API promise.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt import capabilities


def decide_virt_type(spec, conn, caps=None):
    """{'requested', 'domain_type', 'reasons'}: auto asks kvm_capability (one connection)."""
    requested = spec.get('virt_type') or 'auto'
    if requested in ('kvm', 'qemu'):
        return {'requested': requested, 'domain_type': requested,
                'reasons': ['virt_type=%s was requested.' % requested]}
    # Imported only for virt_type=auto: the host probe is the largest import of a guest run.
    from ansible_collections.kvmops.hypervisor.plugins.module_utils._host.kvm_capability import (
        gather_kvm_capability)
    facts = gather_kvm_capability(root='/', conn=conn, caps=caps)
    return {'requested': 'auto', 'domain_type': facts.get('domain_type') or 'qemu',
            'reasons': list(facts.get('reasons') or []),
            'kvm_usable': facts.get('kvm_usable')}


def host_facts(conn, spec, decision, caps=None):
    """arch, domain_type and the machine aliases (pc -> pc-i440fx-7.2) from capabilities."""
    if caps is None:
        caps = capabilities.read(conn)
    host_arch = caps.host_arch
    arch = spec.get('arch') or host_arch
    if arch != host_arch and decision['domain_type'] == 'kvm' and decision['requested'] == 'auto':
        decision['domain_type'] = 'qemu'
        decision['reasons'].append('arch=%s differs from the host (%s): KVM cannot run a foreign '
                                   'architecture, so the guest is emulated.' % (arch, host_arch))
    return {'arch': arch, 'domain_type': decision['domain_type'], 'machine': None,
            'machine_aliases': caps.machine_aliases(arch)}
