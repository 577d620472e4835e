"""virt_network's pure logic: option normalisation, reading libvirt's normalised XML, drift
of only the asked facets, the XML builder keeping what libvirt added, the live update plan,
and the overlap check on recorded route tables."""
import pytest

from ansible_collections.kvmops.hypervisor.plugins.module_utils._common.errors import KvmopsError
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt import xml as lxml_util
from ansible_collections.kvmops.hypervisor.plugins.module_utils._network import builder
from ansible_collections.kvmops.hypervisor.plugins.module_utils._network import drift
from ansible_collections.kvmops.hypervisor.plugins.module_utils._network import overlap
from ansible_collections.kvmops.hypervisor.plugins.module_utils._network import spec as nspec
from ansible_collections.kvmops.hypervisor.plugins.module_utils._network.manager import live_update_plan

from support.assertions import raises_naming

# `virsh net-dumpxml default --inactive` on Debian 12 (libvirt 9.0), as normalised by libvirt.
DEFAULT_XML = """<network>
  <name>default</name>
  <uuid>22abd765-b8df-447e-ac0a-d1bcce49a487</uuid>
  <forward mode='nat'>
    <nat>
      <port start='1024' end='65535'/>
    </nat>
  </forward>
  <bridge name='virbr0' stp='on' delay='0'/>
  <mac address='52:54:00:22:e3:b8'/>
  <ip address='192.168.122.1' netmask='255.255.255.0'>
    <dhcp>
      <range start='192.168.122.2' end='192.168.122.254'/>
    </dhcp>
  </ip>
</network>"""

ROLE_PARAMS = {'name': 'default', 'forward': 'nat', 'bridge': 'virbr0', 'autostart': True,
               'ipv4': {'address': '192.168.122.1', 'netmask': '255.255.255.0', 'prefix': None,
                        'dhcp_ranges': [{'start': '192.168.122.2', 'end': '192.168.122.254'}],
                        'dhcp_hosts': None}}


def spec(**params):
    base = {'name': 'n1'}
    base.update(params)
    return nspec.normalize(base)


def test_the_roles_default_network_has_no_drift_against_libvirts_xml():
    s = nspec.normalize(ROLE_PARAMS)
    assert s['facets']['ipv4']['prefix'] == 24
    assert drift.compare(s['facets'], drift.read_facets(lxml_util.parse(DEFAULT_XML))) == []


def test_only_the_asked_facets_are_compared():
    current = drift.read_facets(lxml_util.parse(DEFAULT_XML))
    assert drift.compare(spec()['facets'], current) == []
    changes = drift.compare(spec(mtu=1400, ipv4={'address': '192.168.122.1', 'dhcp_ranges': [
        {'start': '192.168.122.2', 'end': '192.168.122.100'}]})['facets'], current)
    assert [(c['facet'], c['live']) for c in changes] == [('mtu', False), ('ipv4.dhcp_ranges', True)]
    assert changes[1]['before'] == [{'start': '192.168.122.2', 'end': '192.168.122.254'}]


def test_builder_keeps_what_libvirt_added_and_writes_the_netmask_form_it_found():
    s = spec(ipv4={'address': '192.168.122.1', 'prefix': 24,
                   'dhcp_ranges': [{'start': '192.168.122.10', 'end': '192.168.122.20'}],
                   'dhcp_hosts': [{'mac': '52:54:00:AA:BB:CC', 'ip': '192.168.122.5', 'name': 'web'}]},
             dns_hosts=[{'ip': '192.168.122.5', 'hostnames': ['web.lab', 'www.lab']}], domain='lab')
    root = builder.apply(lxml_util.parse(DEFAULT_XML), s['facets'])
    xml = builder.to_xml(root)
    for kept in ('<uuid>22abd765', '<port start="1024" end="65535"/>', '<mac address="52:54:00:22:e3:b8"/>',
                 'netmask="255.255.255.0"'):
        assert kept in xml
    assert '<host mac="52:54:00:aa:bb:cc" name="web" ip="192.168.122.5"/>' in xml
    assert drift.compare(s['facets'], drift.read_facets(root)) == []
    # libvirt's element order: domain and dns before ip
    assert [el.tag for el in root] == ['name', 'uuid', 'forward', 'bridge', 'mac', 'domain', 'dns', 'ip']


def test_new_networks_in_each_forward_mode():
    for params, expect in [
            ({'forward': 'isolated', 'ipv4': {'address': '10.213.1.1'}}, '<ip address="10.213.1.1" prefix="24"/>'),
            ({'forward': 'bridge', 'bridge': 'br0'}, '<forward mode="bridge"/>\n  <bridge name="br0"/>'),
            ({'forward': 'macvtap', 'forward_interface': 'eno1'},
             '<forward mode="bridge">\n    <interface dev="eno1"/>\n  </forward>'),
            ({'forward': 'route', 'forward_interface': 'eth1', 'ipv6': {'address': 'fd00:213::1'}},
             '<ip family="ipv6" address="fd00:213::1" prefix="64"/>')]:
        s = spec(**params)
        root = builder.apply(builder.skeleton('n1'), s['facets'])
        assert expect in builder.to_xml(root), builder.to_xml(root)
        assert drift.compare(s['facets'], drift.read_facets(root)) == []
    assert builder.to_xml(builder.apply(builder.skeleton('n1'), spec(forward='isolated')['facets'])) \
        == '<network>\n  <name>n1</name>\n</network>\n'


@pytest.mark.parametrize('params, message', [
    ({'forward': 'bridge'}, 'name it with bridge'),
    ({'forward': 'macvtap'}, 'needs forward_interface'),
    ({'bridge': 'x' * 16}, 'at most 15 characters'),
    ({'ipv4': {'address': '10.0.0.0'}}, 'network or broadcast address'),
    ({'ipv4': {'address': '10.0.0.1', 'prefix': 24, 'netmask': '255.0.0.0'}}, 'not both'),
    ({'ipv4': {'address': 'fd00::1'}}, 'not an IPv4 address'),
    ({'ipv4': {'address': '10.0.0.1', 'dhcp_ranges': [{'start': '10.0.1.2', 'end': '10.0.1.9'}]}},
     'outside the network 10.0.0.0/24'),
    ({'ipv4': {'address': '10.0.0.1', 'dhcp_ranges': [{'start': '10.0.0.9', 'end': '10.0.0.2'}]}},
     'is after end'),
    ({'ipv4': {'address': '10.0.0.1', 'dhcp_hosts': [{'mac': 'zz', 'ip': '10.0.0.5'}]}}, 'not a MAC'),
    ({'ipv4': {'address': '10.0.0.1', 'dhcp_hosts': [{'mac': '52:54:00:00:00:01', 'ip': '10.0.0.5'},
                                                     {'mac': '52:54:00:00:00:02', 'ip': '10.0.0.5'}]}},
     'appears twice'),
    ({'forward': 'bridge', 'bridge': 'br0', 'ipv4': {'address': '10.0.0.1'}}, 'no addresses of its own'),
    ({'dns_hosts': [{'ip': '10.0.0.5', 'hostnames': []}]}, 'at least one name'),
    ({'name': 'a b'}, 'not a usable libvirt network name'),
])
def test_bad_input_names_the_option(params, message):
    raises_naming(KvmopsError, message, spec, **params)


def test_live_plan_deletes_before_it_adds_and_addresses_the_right_ip_element():
    live = lxml_util.parse(DEFAULT_XML.replace(
        "</ip>", "</ip><ip family='ipv6' address='fd00:213::1' prefix='64'>"
                 "<dhcp><range start='fd00:213::10' end='fd00:213::20'/></dhcp></ip>"))
    s = spec(ipv4={'address': '192.168.122.1', 'dhcp_ranges': [{'start': '192.168.122.2', 'end': '192.168.122.9'}],
                   'dhcp_hosts': [{'mac': '52:54:00:00:00:01', 'ip': '192.168.122.50'}]},
             ipv6={'address': 'fd00:213::1', 'dhcp_ranges': []},
             dns_hosts=[{'ip': '192.168.122.50', 'hostnames': ['a']}])
    changes = drift.compare(s['facets'], drift.read_facets(live))
    plan = live_update_plan(changes, live, s['facets'])
    commands = [(step[0], step[1], step[2], step[4]) for step in plan]
    assert commands == [
        (2, 5, 0, 'remove DHCP range 192.168.122.2-192.168.122.254'),
        (2, 5, 1, 'remove DHCP range fd00:213::10-fd00:213::20'),
        (3, 10, -1, 'add DNS host 192.168.122.50 (a)'),
        (3, 5, 0, 'add DHCP range 192.168.122.2-192.168.122.9'),
        (3, 4, 0, 'add DHCP host 52:54:00:00:00:01 -> 192.168.122.50'),
    ]
    assert plan[-1][3] == '<host mac="52:54:00:00:00:01" ip="192.168.122.50"/>'


# /proc/net/route and /proc/net/ipv6_route of the test bed (Debian 12, podman's cni bridge).
PROC_ROUTE = """Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0
cni-podman0\t0000580A\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0
eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0
"""
PROC_IPV6_ROUTE = """\
fd000000000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001 eth0
fe800000000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000002 00000000 00000001 eth0
00000000000000000000000000000000 00 00000000000000000000000000000000 00 fd000000000000000000000000000001 00000400 00000002 00000000 00000003 eth0
00000000000000000000000000000001 80 00000000000000000000000000000000 00 00000000000000000000000000000000 00000000 00000004 00000000 80200001 lo
fd000000000000000000000000000002 80 00000000000000000000000000000000 00 00000000000000000000000000000000 00000000 00000003 00000000 80200001 eth0
ff000000000000000000000000000000 08 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000003 00000000 00000001 eth0
"""


def test_route_tables_without_default_local_link_local_and_multicast():
    routes = overlap.host_routes(lambda p: PROC_ROUTE if p.endswith('/route') else PROC_IPV6_ROUTE)
    assert [(str(n), d) for n, d in routes] == [('10.88.0.0/16', 'cni-podman0'), ('192.0.2.0/24', 'eth0'),
                                                ('fd00::/64', 'eth0')]


def test_overlaps_with_networks_and_routes_but_not_with_its_own_bridge():
    import ipaddress
    routes = overlap.parse_ipv4_routes(PROC_ROUTE) + [(ipaddress.ip_network(u'10.213.5.0/24'), 'virbr7')]
    others = [('lab', 'virbr3', [ipaddress.ip_network(u'10.213.0.0/22')])]
    mine = [ipaddress.ip_network(u'10.213.1.0/24'), ipaddress.ip_network(u'10.88.7.0/24')]
    assert overlap.find_overlaps(mine, others, routes) == [
        '10.213.1.0/24 overlaps 10.213.0.0/22 of the active libvirt network lab (virbr3)',
        '10.88.7.0/24 overlaps the host route 10.88.0.0/16 dev cni-podman0']
    assert overlap.find_overlaps([ipaddress.ip_network(u'10.213.5.0/24')], [], routes, own_bridge='virbr7') == []
    assert overlap.find_overlaps([ipaddress.ip_network(u'10.213.9.0/24')], others, routes) == []
