# -*- coding: utf-8 -*-
# Copyright: kvmops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Would a network's subnet collide with another active libvirt network or a route of the
host? Checked before anything is defined, so a bad subnet changes nothing.

Private to the collection: no API promise. The route readers take the /proc text, so the
logic is unit-testable with recorded tables.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import ipaddress

RTF_REJECT = 0x0200
RTF_LOCAL = 0x80000000
_SKIP_V6 = (ipaddress.ip_network(u'fe80::/10'), ipaddress.ip_network(u'ff00::/8'))


def parse_ipv4_routes(text):
    """[(network, device)] from /proc/net/route (main table), without the default route."""
    routes = []
    for line in text.splitlines()[1:]:
        cols = line.split()
        if len(cols) < 8:
            continue
        dev, dest, flags, mask = cols[0], cols[1], int(cols[3], 16), cols[7]
        # little-endian hex
        dest_ip = ipaddress.IPv4Address(bytes(bytearray.fromhex(dest))[::-1])
        mask_ip = ipaddress.IPv4Address(bytes(bytearray.fromhex(mask))[::-1])
        if int(mask_ip) == 0 or flags & RTF_REJECT or dev == 'lo':
            continue
        net = ipaddress.IPv4Network(u'%s/%s' % (dest_ip, mask_ip), strict=False)
        routes.append((net, dev))
    return routes


def parse_ipv6_routes(text):
    """[(network, device)] from /proc/net/ipv6_route, without default, local, link-local and
    multicast routes (they are not subnets a network could collide with)."""
    routes = []
    for line in text.splitlines():
        cols = line.split()
        if len(cols) < 10:
            continue
        dest, plen, flags, dev = cols[0], int(cols[1], 16), int(cols[8], 16), cols[9]
        if plen == 0 or flags & (RTF_LOCAL | RTF_REJECT) or dev == 'lo':
            continue
        addr = ipaddress.IPv6Address(bytes(bytearray.fromhex(dest)))
        net = ipaddress.IPv6Network(u'%s/%d' % (addr, plen), strict=False)
        if any(net.subnet_of(s) for s in _SKIP_V6):
            continue
        routes.append((net, dev))
    return routes


def host_routes(read=None):
    """The host's routes; read(path) returns a file's text (injectable for tests)."""
    if read is None:
        def read(path):
            try:
                with open(path) as f:
                    return f.read()
            except (IOError, OSError):
                return ''
    return parse_ipv4_routes(read('/proc/net/route')) + parse_ipv6_routes(read('/proc/net/ipv6_route'))


def find_overlaps(subnets, other_networks, routes, own_bridge=None):
    """Messages for every collision of subnets with other active networks or host routes.

    other_networks: [(name, bridge, [subnet])] of the OTHER active libvirt networks;
    routes: [(subnet, device)]; routes on own_bridge (this network's own, when it runs) and
    on other networks' bridges (reported as that network) are not counted again.
    """
    problems = []
    other_bridges = set(net[1] for net in other_networks if net[1])
    for net in subnets:
        for name, bridge, theirs in other_networks:
            for other in theirs:
                if other.version == net.version and net.overlaps(other):
                    problems.append('%s overlaps %s of the active libvirt network %s%s'
                                    % (net, other, name, ' (%s)' % bridge if bridge else ''))
        for route, dev in routes:
            if dev == own_bridge or dev in other_bridges:
                continue
            if route.version == net.version and net.overlaps(route):
                problems.append('%s overlaps the host route %s dev %s' % (net, route, dev))
    return problems
