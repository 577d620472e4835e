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

The guest controls what its agent answers (and, on its segment, what the ARP table learns),
so an address from 'agent' or 'arp' is only kept when it is an IP address inside the network
the NIC is attached to: the <ip> ranges of its libvirt network, or the addresses of the host
bridge or device it is attached to (libvirt's interface XML). Anything else - another host's
address, the hypervisor's own address on that network, the network or broadcast address, an
address of a NIC whose network has no known range, a string that is not an address - is
dropped and listed in the NIC's 'rejected' with the reason, so that a guest can never steer
the SSH probe or the next play to a machine outside its network. Leases are dnsmasq's own
choice from the network's DHCP range and are only checked to be addresses.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import ipaddress

from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt import agent as _agent
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
# Sources whose answers the guest controls: checked against the NIC's network.
GUEST_CONTROLLED = ('agent', 'arp')
# An agent's interface name is data; a longer one is cut (Linux allows 15 characters).
_IFNAME_MAX = 64


def domain_nics(domain_xml):
    """The domain's NICs in XML order: [{'mac', 'network', 'type', 'target'}].

    'network' is the libvirt network's name for <interface type='network'>, else None;
    'target' is the host-side device (vnetN) of a running domain, else None.
    """
    return [dict((k, v) for k, v in nic.items() if k != 'source_dev') for nic in _nics(domain_xml)]


def _nics(domain_xml):
    """domain_nics() plus 'source_dev': the host bridge (type bridge) or device (type direct)."""
    root = lxml_util.parse(domain_xml) if not hasattr(domain_xml, 'tag') else domain_xml
    nics = []
    for iface in root.findall('./devices/interface'):
        mac = iface.find('mac')
        source = iface.find('source')
        target = iface.find('target')
        itype = iface.get('type')
        dev = None
        if source is not None:
            dev = source.get('bridge') if itype == 'bridge' else source.get('dev') if itype == 'direct' else None
        nics.append({
            'mac': mac.get('address').lower() if mac is not None and mac.get('address') else None,
            'network': source.get('network') if itype == 'network' and source is not None else None,
            'type': itype,
            'target': target.get('dev') if target is not None else None,
            'source_dev': dev,
        })
    return nics


def parse_address(text):
    """An ipaddress object for text (a plain IPv4/IPv6 address, no zone or prefix), or None."""
    if not isinstance(text, str) or not text or len(text) > 45:
        return None
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _ranges_of_ip_elements(elements, prefix_attr='prefix'):
    """[(ip_network, host address)] of <ip address= netmask=|prefix= family=> elements."""
    ranges = []
    for ip in elements:
        address = parse_address(ip.get('address'))
        if address is None:
            continue
        prefix = ip.get(prefix_attr) or ip.get('prefix')
        netmask = ip.get('netmask')
        try:
            if netmask:
                network = ipaddress.ip_network('%s/%s' % (address, netmask), strict=False)
            else:
                network = ipaddress.ip_network('%s/%s' % (address, int(prefix) if prefix else
                                                          (24 if address.version == 4 else 64)),
                                               strict=False)
        except ValueError:
            continue
        ranges.append((network, address))
    return ranges


def _interface_ranges(conn, dev):
    """The ranges of a host interface (bridge or device) from libvirt's interface XML."""
    try:
        root = lxml_util.parse(conn.interfaceLookupByName(dev).XMLDesc(0))
    # libvirtError (no interface driver, unknown device): the range is unknown
    except Exception:  # pylint: disable=broad-except
        return None
    return _ranges_of_ip_elements(root.iter('ip')) or None


def network_ranges(conn, nic, cache=None):
    """[(ip_network, host's own address)] of the network a NIC is attached to, or None when
    it is not known (no connection, a network without <ip>, a passt/user NIC, ...).

    cache (a dict) keeps the answers per network/device across the domains of one listing."""
    if conn is None:
        return None
    key = (nic.get('type'), nic.get('network') or nic.get('source_dev'))
    if cache is not None and key in cache:
        return cache[key]
    ranges = None
    if nic.get('network'):
        try:
            root = lxml_util.parse(conn.networkLookupByName(nic['network']).XMLDesc(0))
        # libvirtError (the network went away), bad XML: the range is unknown
        except Exception:  # pylint: disable=broad-except
            root = None
        if root is not None:
            ranges = _ranges_of_ip_elements(root.findall('ip')) or None
            bridge = root.find('bridge')
            forward = root.find('forward')
            if ranges is None and bridge is not None and bridge.get('name') and forward is not None \
                    and forward.get('mode') == 'bridge':
                ranges = _interface_ranges(conn, bridge.get('name'))
    elif nic.get('source_dev'):
        ranges = _interface_ranges(conn, nic['source_dev'])
    if cache is not None:
        cache[key] = ranges
    return ranges


def check_address(address, ranges):
    """None when address may be used for a NIC with these ranges, else why not."""
    if ranges is None:
        return 'the range of the network the NIC is attached to is not known'
    for network, host in ranges:
        if address.version != network.version or address not in network:
            continue
        if address == host:
            return "it is the hypervisor's own address on %s" % network
        if network.num_addresses > 2 and address in (network.network_address, network.broadcast_address):
            return 'it is the network or broadcast address of %s' % network
        return None
    return 'outside the network the NIC is attached to (%s)' % (
        ', '.join(str(n) for n, _host in ranges) or 'no address range')


def _query(dom, source):
    """(answer, error): libvirt's interfaceAddresses dict for one source, or why it failed.
    The agent's answer is waited for at most _agent.AGENT_TIMEOUT seconds (a guest's agent
    that never answers would hold libvirt's call for ever)."""
    try:
        if source == 'agent':
            answer = _agent.bounded(dom.interfaceAddresses, (SOURCES[source], 0),
                                    what='guest-network-get-interfaces')
            return answer or {}, None
        return dom.interfaceAddresses(SOURCES[source], 0) or {}, None
    except _agent.AgentTimeout as exc:
        return None, '%s; not asked again in this run' % exc
    # libvirtError (agent not connected, no ARP support): the source is skipped
    except Exception as exc:  # pylint: disable=broad-except
        return None, str(exc).strip() or exc.__class__.__name__


def _prefix(value):
    return value if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 128 else None


def merge_answers(nics, answers, ranges=None):
    """Combine libvirt answers {source: interfaceAddresses dict} into per-NIC entries.

    One address entry per (address, source): the same address seen by the lease and the agent
    is listed twice, so a caller can tell which sources agree. Sources are kept in the order
    given. Interfaces the guest has but the domain XML does not (lo, bridges inside the guest)
    are left out; NICs are matched by MAC.

    ranges: one network_ranges() answer per NIC (same order as nics; None = not known). An
    address from a guest-controlled source ('agent', 'arp') outside its NIC's ranges, and any
    answer that is not an IP address, goes to the entry's 'rejected' with the reason instead.
    """
    entries = []
    by_mac = {}
    ranges = list(ranges) if ranges is not None else [None] * len(nics)
    for nic, nic_ranges in zip(nics, ranges):
        entry = {'mac': nic['mac'], 'network': nic['network'], 'type': nic['type'],
                 'target': nic['target'], 'interface': None, 'addresses': [], 'sources': [],
                 'rejected': []}
        entries.append((entry, nic_ranges))
        if nic['mac']:
            by_mac.setdefault(nic['mac'], (entry, nic_ranges))
    for source, answer in answers:
        for ifname, info in sorted((answer or {}).items(), key=lambda kv: str(kv[0])):
            if not isinstance(info, dict):
                continue
            mac = str(info.get('hwaddr') or '').lower()
            entry, nic_ranges = by_mac.get(mac, (None, None))
            if entry is None or mac == _NO_MAC:
                continue
            if source == 'agent':
                entry['interface'] = str(ifname)[:_IFNAME_MAX]
            seen = set((a['address'], a['source']) for a in entry['addresses'])
            for addr in info.get('addrs') or []:
                if not isinstance(addr, dict) or not addr.get('addr'):
                    continue
                parsed = parse_address(addr.get('addr'))
                why = None
                if parsed is None:
                    why = 'not an IP address'
                elif source in GUEST_CONTROLLED:
                    why = check_address(parsed, nic_ranges)
                if why is not None:
                    entry['rejected'].append({'address': str(addr.get('addr'))[:64], 'source': source,
                                              'reason': why})
                    continue
                address = str(parsed)
                if (address, source) in seen:
                    continue
                seen.add((address, source))
                entry['addresses'].append({
                    'address': address,
                    'prefix': _prefix(addr.get('prefix')),
                    'family': 'ipv4' if parsed.version == 4 else 'ipv6',
                    'source': source,
                })
                if source not in entry['sources']:
                    entry['sources'].append(source)
    return [entry for entry, _ranges in entries]


def rejected_messages(entries):
    """One line per address dropped from entries (for a warning)."""
    return ['%s from the %s of NIC %s: %s' % (r['address'], r['source'], e['mac'] or '?', r['reason'])
            for e in entries for r in e.get('rejected', [])]


def domain_addresses_report(conn, dom, sources=('lease', 'agent', 'arp'), ranges_cache=None,
                            agent_dom=None, domain_xml=None):
    """(entries, errors): the per-NIC entries of domain_addresses() and {source: why it was
    skipped} for each source that failed. conn is the domain's connection: the networks' and
    host interfaces' ranges that guest-reported addresses are checked against come from it
    (without it, no agent or ARP address is accepted). ranges_cache: see network_ranges().
    agent_dom: the same domain on another connection, to ask its agent through (a call the
    agent never answers stays in flight in libvirtd, and libvirtd serves few calls of one
    connection at once: the inventory keeps those off its main connection). domain_xml: the
    domain's XML (dom.XMLDesc(0), a string or parsed) when the caller read it already."""
    unknown = [s for s in sources if s not in SOURCES]
    if unknown:
        raise ValueError('unknown address source(s) %s; use %s'
                         % (', '.join(unknown), ', '.join(sorted(SOURCES))))
    nics = _nics(dom.XMLDesc(0) if domain_xml is None else domain_xml)
    answers = []
    errors = {}
    if dom.isActive():
        for source in sources:
            answer, error = _query(agent_dom if source == 'agent' and agent_dom is not None else dom, source)
            if error is not None:
                errors[source] = error
            else:
                answers.append((source, answer))
    else:
        errors = dict((s, 'domain is not running') for s in sources)
    checked = [s for s, _answer in answers if s in GUEST_CONTROLLED]
    ranges = [network_ranges(conn, nic, ranges_cache) if checked else None for nic in nics]
    entries = merge_answers(nics, answers, ranges)
    if entries and all(e['addresses'] for e in entries):
        # every NIC has its address: a source that failed beside them changed nothing, and
        # its error (ARP's "wrong nlmsg len" on many hosts) would only alarm (issue 27)
        errors = {}
    return entries, errors


def domain_addresses(conn, dom, sources=('lease', 'agent', 'arp'), ranges_cache=None, agent_dom=None,
                     domain_xml=None):
    """One entry per NIC of the domain, in XML order:

    {'mac', 'network' (libvirt network name or None), 'type', 'target' (host-side device),
     'interface' (guest-side name when the agent says it, else None),
     'sources' (the sources that answered for this NIC, in query order),
     'addresses': [{'address', 'prefix', 'family': 'ipv4'|'ipv6', 'source'}],
     'rejected': [{'address', 'source', 'reason'}] (guest answers that were dropped)}
    """
    return domain_addresses_report(conn, dom, sources, ranges_cache, agent_dom, domain_xml)[0]


def _usable(addr):
    parsed = parse_address(addr.get('address'))
    if parsed is None:
        return False
    return not (parsed.is_loopback or parsed.is_link_local or parsed.is_multicast
                or parsed.is_unspecified or parsed.is_reserved)


def best_address(entries, family='ipv4'):
    """The address to reach the guest by (ansible_host): the first usable address of the
    wanted family, NICs in XML order, sources in query order; None when there is none.
    Link-local and loopback addresses never qualify."""
    for entry in entries:
        for addr in entry['addresses']:
            if addr['family'] == family and _usable(addr):
                return addr['address']
    return None
