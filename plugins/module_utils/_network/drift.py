# -*- coding: utf-8 -*-
# Copyright: kvmops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a libvirt network XML says, in virt_network's normalised terms, and what differs
from what the user asked for. Only the facets the user gave are compared (libvirt fills in
UUID, MAC, STP, NAT port ranges... which nobody asked for and nobody should see as drift).

Private to the collection: no API promise. Pure functions on lxml elements.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import ipaddress

from ansible_collections.kvmops.hypervisor.plugins.module_utils._network import spec as nspec


def _prefix_of(ip):
    if ip.get('prefix'):
        return int(ip.get('prefix'))
    if ip.get('netmask'):
        return ipaddress.IPv4Network(u'0.0.0.0/%s' % ip.get('netmask')).prefixlen
    return 24 if ip_family(ip) == 4 else 64


def ip_family(ip):
    fam = ip.get('family')
    if fam == 'ipv6':
        return 6
    if fam == 'ipv4':
        return 4
    return ipaddress.ip_address(u'%s' % ip.get('address', '0.0.0.0')).version


def ip_element(root, version):
    """The first <ip> element of that IP version (what the ipv4 / ipv6 options manage)."""
    for ip in root.findall('ip'):
        if ip.get('address') and ip_family(ip) == version:
            return ip
    return None


def _norm_ip(value):
    try:
        return ipaddress.ip_address(u'%s' % value).compressed
    except ValueError:
        return value


def _ip_facets(ip):
    facet = {'address': _norm_ip(ip.get('address')), 'prefix': _prefix_of(ip),
             'dhcp_ranges': [], 'dhcp_hosts': []}
    dhcp = ip.find('dhcp')
    if dhcp is not None:
        facet['dhcp_ranges'] = sorted(((_norm_ip(r.get('start')), _norm_ip(r.get('end')))
                                       for r in dhcp.findall('range')), key=nspec._ip_key)
        hosts = [((h.get('mac') or '').lower() or None, h.get('name') or None, _norm_ip(h.get('ip')))
                 for h in dhcp.findall('host')]
        facet['dhcp_hosts'] = sorted(hosts, key=lambda t: nspec._ip_key(t[2]))
    return facet


def forward_mode(root):
    fwd = root.find('forward')
    if fwd is None:
        return 'isolated'
    mode = fwd.get('mode') or 'nat'
    if mode in ('bridge', 'private', 'vepa', 'passthrough') and root.find('bridge') is None \
            and fwd.find('interface') is not None:
        return 'macvtap'
    return mode


def read_facets(root):
    """Every facet virt_network manages, read from a network XML element."""
    fwd = root.find('forward')
    mode = forward_mode(root)
    facets = {'forward': mode, 'forward_interface': None, 'bridge': None, 'domain': None,
              'mtu': None, 'ipv4': None, 'ipv6': None, 'dns_hosts': []}
    if fwd is not None:
        if mode == 'macvtap':
            iface = fwd.find('interface')
            facets['forward_interface'] = iface.get('dev') if iface is not None else None
        else:
            facets['forward_interface'] = fwd.get('dev')
    bridge = root.find('bridge')
    if bridge is not None:
        facets['bridge'] = bridge.get('name')
    domain = root.find('domain')
    if domain is not None:
        facets['domain'] = domain.get('name')
    mtu = root.find('mtu')
    if mtu is not None and mtu.get('size'):
        facets['mtu'] = int(mtu.get('size'))
    for version in (4, 6):
        ip = ip_element(root, version)
        if ip is not None:
            facets['ipv%d' % version] = _ip_facets(ip)
    dns = root.find('dns')
    if dns is not None:
        hosts = [(_norm_ip(h.get('ip')), tuple(sorted(set(n.text for n in h.findall('hostname') if n.text))))
                 for h in dns.findall('host')]
        facets['dns_hosts'] = sorted(hosts, key=nspec._ip_key)
    return facets


def _show(value):
    """A facet value as the module reports it (lists of dicts, not tuples)."""
    if isinstance(value, list):
        out = []
        for item in value:
            if isinstance(item, tuple) and len(item) == 3:
                out.append(dict((k, v) for k, v in zip(('mac', 'name', 'ip'), item) if v))
            elif isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], tuple):
                out.append({'ip': item[0], 'hostnames': list(item[1])})
            elif isinstance(item, tuple):
                out.append({'start': item[0], 'end': item[1]})
            else:
                out.append(item)
        return out
    return value


def compare(wanted, current):
    """[{'facet', 'before', 'after', 'live'}] for every asked facet that differs.

    wanted: spec['facets']; current: read_facets() of the network (None when it is new).
    """
    current = current or {}
    changes = []

    def add(facet, before, after):
        changes.append({'facet': facet, 'before': _show(before), 'after': _show(after),
                        'live': facet in nspec.LIVE_FACETS})

    for key in ('forward', 'forward_interface', 'bridge', 'domain', 'mtu', 'dns_hosts'):
        if key in wanted and wanted[key] != current.get(key):
            add(key, current.get(key), wanted[key])
    for key in ('ipv4', 'ipv6'):
        if key not in wanted:
            continue
        want, have = wanted[key], current.get(key) or {}
        if (want['address'], want['prefix']) != (have.get('address'), have.get('prefix')):
            before = '%s/%s' % (have['address'], have['prefix']) if have else None
            add(key + '.address', before, '%s/%s' % (want['address'], want['prefix']))
        for sub in ('dhcp_ranges', 'dhcp_hosts'):
            if sub in want and want[sub] != have.get(sub, []):
                add('%s.%s' % (key, sub), have.get(sub, []), want[sub])
    return changes
