# -*- coding: utf-8 -*-
# Copyright: kvmops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A domain's IP addresses, per NIC, from the sources libvirt offers. Private to the
collection: no API promise (but the shape of domain_addresses() is shared with the
inventory plugin: keep it).

None of the sources sends anything to the guest: 'lease' reads the libvirt network's dnsmasq
leases, 'agent' asks qemu-guest-agent over its virtio-serial channel, 'arp' reads the host's
ARP table. Each source is tried; one that fails (agent not running, no ARP support, domain
not on a libvirt network) is skipped and noted in the report.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt import xml as lxml_util

# virDomainInterfaceAddressesSource
VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_LEASE = 0
VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_AGENT = 1
VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_ARP = 2
# virIPAddrType
VIR_IP_ADDR_TYPE_IPV4 = 0
VIR_IP_ADDR_TYPE_IPV6 = 1

SOURCES = {
    'lease': VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_LEASE,
    'agent': VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_AGENT,
    'arp': VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_ARP,
}
FAMILIES = {VIR_IP_ADDR_TYPE_IPV4: 'ipv4', VIR_IP_ADDR_TYPE_IPV6: 'ipv6'}
_NO_MAC = '00:00:00:00:00:00'


def domain_nics(domain_xml):
    """The domain's NICs in XML order: [{'mac', 'network', 'type', 'target'}].

    'network' is the libvirt network's name for <interface type='network'>, else None;
    'target' is the host-side device (vnetN) of a running domain, else None.
    """
    root = lxml_util.parse(domain_xml) if not hasattr(domain_xml, 'tag') else domain_xml
    nics = []
    for iface in root.findall('./devices/interface'):
        mac = iface.find('mac')
        source = iface.find('source')
        target = iface.find('target')
        itype = iface.get('type')
        nics.append({
            'mac': mac.get('address').lower() if mac is not None and mac.get('address') else None,
            'network': source.get('network') if itype == 'network' and source is not None else None,
            'type': itype,
            'target': target.get('dev') if target is not None else None,
        })
    return nics


def _query(dom, source):
    """(answer, error): libvirt's interfaceAddresses dict for one source, or why it failed."""
    try:
        return dom.interfaceAddresses(SOURCES[source], 0) or {}, None
    # libvirtError (agent not connected, no ARP support): the source is skipped
    except Exception as exc:  # pylint: disable=broad-except
        return None, str(exc).strip() or exc.__class__.__name__


def merge_answers(nics, answers):
    """Combine libvirt answers {source: interfaceAddresses dict} into per-NIC entries.

    One address entry per (address, source): the same address seen by the lease and the agent
    is listed twice, so a caller can tell which sources agree. Sources are kept in the order
    given. Interfaces the guest has but the domain XML does not (lo, bridges inside the guest)
    are left out; NICs are matched by MAC.
    """
    entries = []
    by_mac = {}
    for nic in nics:
        entry = {'mac': nic['mac'], 'network': nic['network'], 'type': nic['type'],
                 'target': nic['target'], 'interface': None, 'addresses': [], 'sources': []}
        entries.append(entry)
        if nic['mac']:
            by_mac.setdefault(nic['mac'], entry)
    for source, answer in answers:
        for ifname, info in sorted((answer or {}).items()):
            mac = (info.get('hwaddr') or '').lower()
            entry = by_mac.get(mac)
            if entry is None or mac == _NO_MAC:
                continue
            if source == 'agent':
                entry['interface'] = ifname
            seen = set((a['address'], a['source']) for a in entry['addresses'])
            for addr in info.get('addrs') or []:
                address = addr.get('addr')
                if not address or (address, source) in seen:
                    continue
                seen.add((address, source))
                entry['addresses'].append({
                    'address': address,
                    'prefix': addr.get('prefix'),
                    'family': FAMILIES.get(addr.get('type'), 'unknown'),
                    'source': source,
                })
                if source not in entry['sources']:
                    entry['sources'].append(source)
    return entries


def domain_addresses_report(conn, dom, sources=('lease', 'agent', 'arp')):
    """(entries, errors): the per-NIC entries of domain_addresses() and {source: why it was
    skipped} for each source that failed. conn is unused today (libvirt asks the domain's own
    connection) but part of the interface so a caller can later add network-side lookups."""
    unknown = [s for s in sources if s not in SOURCES]
    if unknown:
        raise ValueError('unknown address source(s) %s; use %s'
                         % (', '.join(unknown), ', '.join(sorted(SOURCES))))
    nics = domain_nics(dom.XMLDesc(0))
    answers = []
    errors = {}
    if dom.isActive():
        for source in sources:
            answer, error = _query(dom, source)
            if error is not None:
                errors[source] = error
            else:
                answers.append((source, answer))
    else:
        errors = dict((s, 'domain is not running') for s in sources)
    return merge_answers(nics, answers), errors


def domain_addresses(conn, dom, sources=('lease', 'agent', 'arp')):
    """One entry per NIC of the domain, in XML order:

    {'mac', 'network' (libvirt network name or None), 'type', 'target' (host-side device),
     'interface' (guest-side name when the agent says it, else None),
     'sources' (the sources that answered for this NIC, in query order),
     'addresses': [{'address', 'prefix', 'family': 'ipv4'|'ipv6', 'source'}]}
    """
    return domain_addresses_report(conn, dom, sources)[0]


def _usable(addr):
    a = addr['address'].lower()
    if addr['family'] == 'ipv4':
        return not a.startswith('127.') and not a.startswith('169.254.')
    return a != '::1' and not a.startswith('fe80:')


def best_address(entries, family='ipv4'):
    """The address to reach the guest by (ansible_host): the first usable address of the
    wanted family, NICs in XML order, sources in query order; None when there is none.
    Link-local and loopback addresses never qualify."""
    for entry in entries:
        for addr in entry['addresses']:
            if addr['family'] == family and _usable(addr):
                return addr['address']
    return None
