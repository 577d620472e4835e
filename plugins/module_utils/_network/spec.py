# -*- coding: utf-8 -*-
# Copyright: kvmops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Validate and normalise virt_network's options into a spec dict.

Private to the collection: no API promise. Pure functions (no libvirt). Every problem raises
KvmopsError naming the option, the bad value and the fix, before anything is touched.

spec['facets'] holds only what the user asked for (drift compares nothing else), in the
normalised form drift.read_facets() gives for libvirt's XML: compressed IP addresses, prefix
lengths instead of netmasks, lower-case MACs, sorted lists of tuples.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import ipaddress
import re

from ansible_collections.kvmops.hypervisor.plugins.module_utils._common.errors import KvmopsError

STATES = ('active', 'inactive', 'present', 'absent')
FORWARD_MODES = ('nat', 'route', 'open', 'isolated', 'bridge', 'macvtap')
# Facets libvirt can change on a running network (virNetworkUpdate); the rest need a restart.
LIVE_FACETS = ('ipv4.dhcp_ranges', 'ipv4.dhcp_hosts', 'ipv6.dhcp_ranges', 'ipv6.dhcp_hosts',
               'dns_hosts')
IFNAMSIZ = 15  # Linux interface names: at most 15 characters
_MAC = re.compile(r'^[0-9a-f]{2}(:[0-9a-f]{2}){5}$')
_NAME = re.compile(r'^[^/\s]+$')


def _ifname(option, value):
    if not value:
        return None
    if len(value) > IFNAMSIZ or not re.match(r'^[A-Za-z0-9_.:-]+$', value):
        raise KvmopsError('%s=%r is not a usable interface name: at most %d characters of '
                          'letters, digits, "-", "_", "." or ":".' % (option, value, IFNAMSIZ))
    return value


def _ip(option, value, version):
    try:
        addr = ipaddress.ip_address(u'%s' % value)
    except ValueError:
        raise KvmopsError('%s=%r is not an IPv%d address.' % (option, value, version))
    if addr.version != version:
        raise KvmopsError('%s=%r is not an IPv%d address.' % (option, value, version))
    return addr.compressed


def _prefix(option, ip, version):
    prefix, netmask = ip.get('prefix'), ip.get('netmask')
    if prefix is not None and netmask:
        raise KvmopsError('%s: give prefix or netmask, not both.' % option)
    if netmask:
        if version == 6:
            raise KvmopsError('%s.netmask: IPv6 uses prefix (e.g. prefix: 64).' % option)
        try:
            prefix = ipaddress.IPv4Network(u'0.0.0.0/%s' % netmask).prefixlen
        except ValueError:
            raise KvmopsError('%s.netmask=%r is not a netmask (e.g. 255.255.255.0).'
                              % (option, netmask))
    if prefix is None:
        prefix = 24 if version == 4 else 64
    top = 32 if version == 4 else 128
    # dnsmasq needs room for the host address and at least one guest.
    if not 8 <= int(prefix) <= top - 2:
        raise KvmopsError('%s.prefix=%s is outside 8..%d.' % (option, prefix, top - 2))
    return int(prefix)


def _ip_facet(option, ip, version):
    if not ip.get('address'):
        raise KvmopsError('%s.address is required (the host address on the network, e.g. '
                          '%s).' % (option, '10.213.1.1' if version == 4 else 'fd00:213::1'))
    address = _ip(option + '.address', ip['address'], version)
    prefix = _prefix(option, ip, version)
    subnet = ipaddress.ip_network(u'%s/%d' % (address, prefix), strict=False)
    if ipaddress.ip_address(u'%s' % address) in (subnet.network_address, subnet.broadcast_address):
        raise KvmopsError('%s.address=%s is the network or broadcast address of %s: use a '
                          'host address such as %s.' % (option, address, subnet,
                                                        subnet.network_address + 1))
    facet = {'address': address, 'prefix': prefix}

    def inside(where, value):
        addr = _ip(where, value, version)
        if ipaddress.ip_address(u'%s' % addr) not in subnet:
            raise KvmopsError('%s=%s is outside the network %s.' % (where, addr, subnet))
        return addr

    if ip.get('dhcp_ranges') is not None:
        ranges = []
        for i, r in enumerate(ip['dhcp_ranges']):
            where = '%s.dhcp_ranges[%d]' % (option, i)
            start, end = inside(where + '.start', r.get('start')), inside(where + '.end', r.get('end'))
            if ipaddress.ip_address(u'%s' % start) > ipaddress.ip_address(u'%s' % end):
                raise KvmopsError('%s: start %s is after end %s.' % (where, start, end))
            ranges.append((start, end))
        facet['dhcp_ranges'] = sorted(set(ranges), key=_ip_key)
    if ip.get('dhcp_hosts') is not None:
        hosts, seen = [], set()
        for i, h in enumerate(ip['dhcp_hosts']):
            where = '%s.dhcp_hosts[%d]' % (option, i)
            mac = (h.get('mac') or '').lower() or None
            name = h.get('name') or None
            if mac and not _MAC.match(mac):
                raise KvmopsError('%s.mac=%r is not a MAC address (52:54:00:xx:xx:xx).'
                                  % (where, h.get('mac')))
            if version == 6 and mac:
                raise KvmopsError('%s.mac: libvirt matches IPv6 DHCP hosts by name, not by MAC; '
                                  'give name instead.' % where)
            if not mac and not name:
                raise KvmopsError('%s needs mac (IPv4) or name.' % where)
            if name and not _NAME.match(name):
                raise KvmopsError('%s.name=%r is not a host name.' % (where, name))
            addr = inside(where + '.ip', h.get('ip'))
            for key in (('mac', mac), ('name', name), ('ip', addr)):
                if key[1] and key in seen:
                    raise KvmopsError('%s: %s %s appears twice in %s.dhcp_hosts.'
                                      % (where, key[0], key[1], option))
                seen.add(key)
            hosts.append((mac, name, addr))
        facet['dhcp_hosts'] = sorted(hosts, key=lambda t: _ip_key(t[2]))
    return facet


def _ip_key(value):
    if isinstance(value, tuple):
        value = value[0]
    addr = ipaddress.ip_address(u'%s' % value)
    return (addr.version, int(addr))


def _dns_hosts(hosts):
    out = []
    for i, h in enumerate(hosts):
        where = 'dns_hosts[%d]' % i
        addr = h.get('ip')
        try:
            addr = ipaddress.ip_address(u'%s' % addr).compressed
        except ValueError:
            raise KvmopsError('%s.ip=%r is not an IP address.' % (where, addr))
        names = [n for n in (h.get('hostnames') or []) if n]
        if not names:
            raise KvmopsError('%s.hostnames needs at least one name.' % where)
        for n in names:
            if not _NAME.match(n):
                raise KvmopsError('%s.hostnames: %r is not a host name.' % (where, n))
        out.append((addr, tuple(sorted(set(names)))))
    ips = [host[0] for host in out]
    if len(set(ips)) != len(ips):
        raise KvmopsError('dns_hosts: give each IP once, with all its hostnames in one list.')
    return sorted(out, key=_ip_key)


def normalize(params):
    """The spec dict from module parameters (a plain dict; unknown keys are ignored)."""
    name = params.get('name') or ''
    if not _NAME.match(name) or len(name) > 200:
        raise KvmopsError('name=%r is not a usable libvirt network name (no "/" or spaces).'
                          % name)
    state = params.get('state') or 'active'
    if state not in STATES:
        raise KvmopsError('state=%r: choose one of %s.' % (state, ', '.join(STATES)))
    facets = {}
    forward = params.get('forward')
    if forward is not None:
        if forward not in FORWARD_MODES:
            raise KvmopsError('forward=%r: choose one of %s.' % (forward, ', '.join(FORWARD_MODES)))
        facets['forward'] = forward
    fwd_if = _ifname('forward_interface', params.get('forward_interface'))
    bridge = _ifname('bridge', params.get('bridge'))
    if forward == 'bridge' and not bridge:
        raise KvmopsError('forward=bridge connects guests to an existing host bridge: name it '
                          'with bridge (e.g. bridge: br0).')
    if forward == 'macvtap':
        if not fwd_if:
            raise KvmopsError('forward=macvtap needs forward_interface: the host NIC the '
                              'guests share (e.g. eno1).')
        if bridge:
            raise KvmopsError('forward=macvtap uses no bridge: drop the bridge option.')
    if fwd_if:
        if forward in ('isolated', 'open', 'bridge'):
            raise KvmopsError('forward_interface applies to forward=nat, route or macvtap, '
                              'not %s.' % forward)
        facets['forward_interface'] = fwd_if
    if bridge:
        facets['bridge'] = bridge
    if params.get('domain'):
        if not re.match(r'^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$', params['domain']):
            raise KvmopsError('domain=%r is not a DNS domain name.' % params['domain'])
        facets['domain'] = params['domain']
    if params.get('mtu') is not None:
        if not 68 <= int(params['mtu']) <= 65535:
            raise KvmopsError('mtu=%s is outside 68..65535.' % params['mtu'])
        facets['mtu'] = int(params['mtu'])
    routed_only = forward in ('bridge', 'macvtap')
    for version, key in ((4, 'ipv4'), (6, 'ipv6')):
        if params.get(key):
            if routed_only:
                raise KvmopsError('%s: a forward=%s network has no addresses of its own '
                                  '(the LAN provides them): drop %s.' % (key, forward, key))
            facets[key] = _ip_facet(key, params[key], version)
    if params.get('dns_hosts') is not None:
        if routed_only:
            raise KvmopsError('dns_hosts: a forward=%s network has no DNS server of its own.'
                              % forward)
        facets['dns_hosts'] = _dns_hosts(params['dns_hosts'])
    autostart = params.get('autostart')
    return {'name': name, 'state': state, 'facets': facets, 'autostart': autostart,
            'restart': bool(params.get('restart'))}


def subnet(ip_facet):
    """ipaddress network of an ip facet ({'address', 'prefix'})."""
    return ipaddress.ip_network(u'%s/%d' % (ip_facet['address'], ip_facet['prefix']), strict=False)
