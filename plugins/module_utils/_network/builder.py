# -*- coding: utf-8 -*-
# Copyright: kvmops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Network XML for virt_network: the facets the user asked for written into a network
definition (a new skeleton, or the current inactive XML so that everything else libvirt or
an admin put there is kept: UUID, MAC, NAT port ranges, port groups, DNS forwarders...).

Private to the collection: no API promise. Pure functions on lxml elements.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import ipaddress

from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt import xml as lxml_util
from ansible_collections.kvmops.hypervisor.plugins.module_utils._network import drift as ndrift

etree = lxml_util.etree

# Where a new child goes: libvirt's own output order, so the XML reads as virsh shows it.
_ORDER = ('name', 'uuid', 'metadata', 'forward', 'bridge', 'mtu', 'mac', 'domain', 'dns', 'ip',
          'route', 'portgroup')


def skeleton(name):
    root = etree.Element('network')
    etree.SubElement(root, 'name').text = name
    return root


def _child(root, tag, create=True):
    el = root.find(tag)
    if el is None and create:
        el = etree.Element(tag)
        rank = _ORDER.index(tag) if tag in _ORDER else len(_ORDER)
        for i, other in enumerate(root):
            if other.tag in _ORDER and _ORDER.index(other.tag) > rank:
                root.insert(i, el)
                break
        else:
            root.append(el)
    return el


def _drop(root, tag):
    for el in root.findall(tag):
        root.remove(el)


def _set_forward(root, mode, dev):
    fwd = root.find('forward')
    current = ndrift.forward_mode(root)
    if mode == 'isolated':
        _drop(root, 'forward')
        return
    if current != mode or fwd is None:
        _drop(root, 'forward')
        fwd = _child(root, 'forward')
        fwd.set('mode', 'bridge' if mode == 'macvtap' else mode)
    if mode == 'macvtap':
        _drop(root, 'bridge')
        if dev is not None:
            for iface in fwd.findall('interface'):
                fwd.remove(iface)
            etree.SubElement(fwd, 'interface').set('dev', dev)
    elif dev is not None:
        fwd.set('dev', dev)


def _set_ip(root, version, facet):
    ip = ndrift.ip_element(root, version)
    if ip is None:
        ip = etree.Element('ip')
        if version == 6:
            ip.set('family', 'ipv6')
        others = root.findall('ip')
        if others:
            others[-1].addnext(ip)
        else:
            _child(root, 'ip').getparent().replace(root.find('ip'), ip)  # in libvirt's order
    ip.set('address', facet['address'])
    if ip.get('netmask') is not None and version == 4:
        ip.set('netmask', str(ipaddress.IPv4Network(u'0.0.0.0/%d' % facet['prefix']).netmask))
        ip.attrib.pop('prefix', None)
    else:
        ip.set('prefix', str(facet['prefix']))
        ip.attrib.pop('netmask', None)
    if 'dhcp_ranges' not in facet and 'dhcp_hosts' not in facet:
        return
    dhcp = ip.find('dhcp')
    if dhcp is None:
        dhcp = etree.SubElement(ip, 'dhcp')
    if 'dhcp_ranges' in facet:
        for r in dhcp.findall('range'):
            dhcp.remove(r)
        for i, (start, end) in enumerate(facet['dhcp_ranges']):
            el = etree.Element('range', start=start, end=end)
            dhcp.insert(i, el)
    if 'dhcp_hosts' in facet:
        for h in dhcp.findall('host'):
            dhcp.remove(h)
        for host in facet['dhcp_hosts']:
            dhcp.append(host_element(host))
    if len(dhcp) == 0:
        ip.remove(dhcp)


def host_element(host):
    mac, name, addr = host
    el = etree.Element('host')
    if mac:
        el.set('mac', mac)
    if name:
        el.set('name', name)
    el.set('ip', addr)
    return el


def range_element(rng):
    return etree.Element('range', start=rng[0], end=rng[1])


def dns_host_element(host):
    el = etree.Element('host', ip=host[0])
    for name in host[1]:
        etree.SubElement(el, 'hostname').text = name
    return el


def apply(root, facets):
    """Write the asked facets into root (changed in place, and returned)."""
    if 'forward' in facets or 'forward_interface' in facets:
        mode = facets.get('forward') or ndrift.forward_mode(root)
        _set_forward(root, mode, facets.get('forward_interface'))
    if 'bridge' in facets:
        bridge = _child(root, 'bridge')
        bridge.set('name', facets['bridge'])
        if facets.get('forward') not in ('bridge',) and ndrift.forward_mode(root) != 'bridge' \
                and bridge.get('stp') is None:
            bridge.set('stp', 'on')
            bridge.set('delay', '0')
    if 'domain' in facets:
        _child(root, 'domain').set('name', facets['domain'])
    if 'mtu' in facets:
        _child(root, 'mtu').set('size', str(facets['mtu']))
    if 'dns_hosts' in facets:
        dns = _child(root, 'dns')
        for h in dns.findall('host'):
            dns.remove(h)
        for host in facets['dns_hosts']:
            dns.append(dns_host_element(host))
        if len(dns) == 0 and not dns.attrib:
            root.remove(dns)
    for version in (4, 6):
        key = 'ipv%d' % version
        if key in facets:
            _set_ip(root, version, facets[key])
    return root


def to_xml(root):
    return lxml_util.to_string(root)
