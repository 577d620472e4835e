"""Test networks that collide with nothing: free private subnets and short bridge names."""
import ipaddress
import json
import random
import subprocess
import uuid

import pytest
from lxml import etree


def _used_subnets(conn):
    used = []
    for family in ('-4', '-6'):
        out = subprocess.run(['ip', '-j', family, 'route', 'show', 'table', 'all'],
                             stdout=subprocess.PIPE, universal_newlines=True, check=False).stdout
        for r in json.loads(out or '[]'):
            if r.get('dst') not in (None, 'default'):
                try:
                    used.append(ipaddress.ip_network(r['dst'], strict=False))
                except ValueError:
                    pass
    for net in conn.listAllNetworks():
        for ip in etree.fromstring(net.XMLDesc(0).encode()).findall('ip'):
            if ip.get('address') and ':' not in ip.get('address'):
                mask = ip.get('prefix') or ip.get('netmask') or '24'
                used.append(ipaddress.ip_network('%s/%s' % (ip.get('address'), mask), strict=False))
    return used


def free_subnets(conn, count):
    """count /24s of 10.213.0.0/16 that no route and no libvirt network uses (random, so that
    parallel sessions rarely pick the same)."""
    used = [u for u in _used_subnets(conn) if u.version == 4]
    thirds = list(range(10, 250))
    random.shuffle(thirds)
    picked = []
    for third in thirds:
        net = ipaddress.ip_network('10.213.%d.0/24' % third)
        if not any(net.overlaps(u) for u in used):
            picked.append(net)
            if len(picked) == count:
                return picked
    pytest.skip('no free 10.213.x.0/24 subnet on this host')


def bridge_name():
    return 'kvt' + uuid.uuid4().hex[:8]            # 11 characters, under IFNAMSIZ


def ranges(xml):
    return [(r.split("start='")[1].split("'")[0], r.split("end='")[1].split("'")[0])
            for r in xml.split('<range ')[1:]]
