"""Unit tests of per-NIC address discovery, replaying libvirt answers recorded on the test bed
(tests/fixtures/addresses/*.json: the domain XML plus what virDomainInterfaceAddresses
answered per source, or the error it raised). The fake domain only replays them."""
import glob
import ipaddress
import json
import os

import pytest

from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt import addresses

FIXTURES = os.path.join(os.path.dirname(__file__), '..', '..', '..', '..', 'fixtures', 'addresses')


class ReplayError(Exception):
    """Stands in for libvirt.libvirtError (raised with libvirt's recorded message)."""


class ReplayDomain(object):
    def __init__(self, recording, active=True):
        self.recording = recording
        self.active = active
        self.calls = []

    def XMLDesc(self, flags):
        return self.recording['xml']

    def isActive(self):
        return self.active

    def interfaceAddresses(self, source, flags):
        name = [k for k, v in addresses.SOURCES.items() if v == source][0]
        self.calls.append(name)
        if name in self.recording.get('errors', {}):
            raise ReplayError(self.recording['errors'][name])
        return self.recording['answers'].get(name, {})


def load(name):
    with open(os.path.join(FIXTURES, name)) as f:
        return json.load(f)


def test_fixtures_present():
    assert glob.glob(os.path.join(FIXTURES, '*.json'))


def test_lease_only_two_nics_in_xml_order():
    dom = ReplayDomain(load('tiny-two-nics-no-agent.json'))
    entries, errors = addresses.domain_addresses_report(None, dom)
    assert dom.calls == ['lease', 'agent', 'arp']
    assert [e['mac'] for e in entries] == ['52:54:00:15:00:01', '52:54:00:15:00:02']
    first, second = entries
    assert first['network'] == 'kvmops-i15-rec' and first['type'] == 'network'
    assert first['target'] == 'vnet0' or first['target'].startswith('vnet')
    assert first['interface'] is None  # only the agent knows the guest-side name
    assert first['sources'] == ['lease']
    assert first['addresses'] == [{'address': '192.168.215.23', 'prefix': 24,
                                   'family': 'ipv4', 'source': 'lease'}]
    assert second['addresses'] == [] and second['sources'] == []
    assert 'not connected' in errors['agent'] and 'arp' in errors
    assert addresses.best_address(entries) == '192.168.215.23'
    assert addresses.best_address(entries, 'ipv6') is None


def test_domain_addresses_is_the_entries_of_the_report():
    rec = load('tiny-two-nics-no-agent.json')
    assert (addresses.domain_addresses(None, ReplayDomain(rec))
            == addresses.domain_addresses_report(None, ReplayDomain(rec))[0])


def test_sources_restricted_and_ordered():
    dom = ReplayDomain(load('tiny-two-nics-no-agent.json'))
    entries = addresses.domain_addresses(None, dom, sources=('arp', 'lease'))
    assert dom.calls == ['arp', 'lease']
    assert entries[0]['sources'] == ['lease']


def test_unknown_source_rejected():
    with pytest.raises(ValueError, match='dns'):
        addresses.domain_addresses(None, ReplayDomain(load('tiny-two-nics-no-agent.json')),
                                   sources=('lease', 'dns'))


def test_inactive_domain_lists_nics_without_asking():
    dom = ReplayDomain(load('tiny-two-nics-no-agent.json'), active=False)
    entries, errors = addresses.domain_addresses_report(None, dom)
    assert dom.calls == [] and len(entries) == 2
    assert all(e['addresses'] == [] for e in entries)
    assert set(errors) == {'lease', 'agent', 'arp'}


def net_ranges(*interfaces):
    """network_ranges()-shaped ranges of 'host address/prefix' strings."""
    out = []
    for text in interfaces:
        iface = ipaddress.ip_interface(text)
        out.append((iface.network, iface.ip))
    return out


REC_RANGES = net_ranges('192.168.215.1/24')   # the recording's network (kvmops-i15-rec)

AGENT_ANSWER = {
    # the shape qemu-guest-agent answers through libvirt: lo (zero MAC) and a NIC by guest name
    'lo': {'hwaddr': '00:00:00:00:00:00', 'addrs': [
        {'addr': '127.0.0.1', 'prefix': 8, 'type': 0}, {'addr': '::1', 'prefix': 128, 'type': 1}]},
    'ens2': {'hwaddr': '52:54:00:15:00:01', 'addrs': [
        {'addr': 'fe80::5054:ff:fe15:1', 'prefix': 64, 'type': 1},
        {'addr': '192.168.215.23', 'prefix': 24, 'type': 0}]},
    'docker0': {'hwaddr': '02:42:ac:11:00:01', 'addrs': [{'addr': '172.17.0.1', 'prefix': 16, 'type': 0}]},
}


def test_merge_lease_and_agent_keeps_both_sources():
    rec = load('tiny-two-nics-no-agent.json')
    nics = addresses.domain_nics(rec['xml'])
    entries = addresses.merge_answers(nics, [('lease', rec['answers']['lease']),
                                             ('agent', AGENT_ANSWER)], [REC_RANGES, REC_RANGES])
    first = entries[0]
    assert first['interface'] == 'ens2'
    assert first['sources'] == ['lease', 'agent']
    assert [(a['address'], a['source']) for a in first['addresses']] == [
        ('192.168.215.23', 'lease'), ('192.168.215.23', 'agent')]
    # the network has no IPv6 range: the agent's link-local address is not kept
    assert [r['address'] for r in first['rejected']] == ['fe80::5054:ff:fe15:1']
    # guest-internal interfaces (lo, docker0) are not NICs of the domain
    assert all(a['address'] not in ('127.0.0.1', '172.17.0.1') for e in entries for a in e['addresses'])
    # link-local never becomes ansible_host
    assert addresses.best_address(entries, 'ipv6') is None


def test_mac_match_is_case_insensitive_and_duplicates_dropped():
    nics = [{'mac': '52:54:00:aa:bb:cc', 'network': None, 'type': 'bridge', 'target': None}]
    answer = {'eth0': {'hwaddr': '52:54:00:AA:BB:CC', 'addrs': [
        {'addr': '10.0.0.5', 'prefix': 24, 'type': 0}, {'addr': '10.0.0.5', 'prefix': 24, 'type': 0}]}}
    entries = addresses.merge_answers(nics, [('arp', answer)], [net_ranges('10.0.0.1/24')])
    assert entries[0]['addresses'] == [{'address': '10.0.0.5', 'prefix': 24, 'family': 'ipv4',
                                        'source': 'arp'}]
    assert entries[0]['network'] is None and entries[0]['interface'] is None


def test_domain_nics_of_passt_and_bridge():
    xml = """<domain><devices>
      <interface type='user'><mac address='52:54:00:00:00:0A'/><backend type='passt'/></interface>
      <interface type='bridge'><mac address='52:54:00:00:00:0b'/><source bridge='br0'/></interface>
      <interface type='network'><source network='default'/></interface>
    </devices></domain>"""
    assert addresses.domain_nics(xml) == [
        {'mac': '52:54:00:00:00:0a', 'network': None, 'type': 'user', 'target': None},
        {'mac': '52:54:00:00:00:0b', 'network': None, 'type': 'bridge', 'target': None},
        {'mac': None, 'network': 'default', 'type': 'network', 'target': None},
    ]


# --- hostile agent answers (issue 26): a guest must not steer ansible_host outside its network

NET_XML = """<network><name>kvmops-i26</name><forward mode='nat'/><bridge name='virbr26'/>
  <ip address='10.26.0.1' netmask='255.255.255.0'><dhcp><range start='10.26.0.10' end='10.26.0.50'/></dhcp></ip>
  <ip family='ipv6' address='fd26::1' prefix='64'/></network>"""
DOM_XML = """<domain><name>g</name><devices>
  <interface type='network'><mac address='52:54:00:26:00:01'/><source network='kvmops-i26'/><target dev='vnet9'/></interface>
  <interface type='bridge'><mac address='52:54:00:26:00:02'/><source bridge='br26'/></interface>
  <interface type='user'><mac address='52:54:00:26:00:03'/><backend type='passt'/></interface>
</devices></domain>"""
BRIDGE_XML = """<interface type='bridge' name='br26'><protocol family='ipv4'><ip address='172.26.5.2' prefix='16'/>
  </protocol><bridge/></interface>"""


class FakeConn(object):
    """The network and host-interface XML a connection would give (pure lookups)."""
    def __init__(self, networks=None, interfaces=None):
        self.networks = networks or {}
        self.interfaces = interfaces or {}
        self.lookups = []

    def networkLookupByName(self, name):
        self.lookups.append(('network', name))
        return _Xml(self.networks[name])

    def interfaceLookupByName(self, name):
        self.lookups.append(('interface', name))
        if name not in self.interfaces:
            raise ReplayError('Interface not found: %s' % name)
        return _Xml(self.interfaces[name])


class _Xml(object):
    def __init__(self, xml):
        self.xml = xml

    def XMLDesc(self, flags):
        return self.xml


def hostile(agent_nic1_addrs, lease=None, arp=None, nic2_addrs=None, nic3_addrs=None):
    agent = {'eth0': {'hwaddr': '52:54:00:26:00:01', 'addrs': agent_nic1_addrs}}
    if nic2_addrs is not None:
        agent['eth1'] = {'hwaddr': '52:54:00:26:00:02', 'addrs': nic2_addrs}
    if nic3_addrs is not None:
        agent['eth2'] = {'hwaddr': '52:54:00:26:00:03', 'addrs': nic3_addrs}
    rec = {'xml': DOM_XML, 'answers': {'agent': agent, 'lease': lease or {}, 'arp': arp or {}}}
    conn = FakeConn({'kvmops-i26': NET_XML}, {'br26': BRIDGE_XML})
    return addresses.domain_addresses_report(conn, ReplayDomain(rec), ('lease', 'agent', 'arp'), {})[0]


def v4(addr, prefix=24):
    return {'addr': addr, 'prefix': prefix, 'type': 0}


@pytest.mark.parametrize('claimed, why', [
    ('192.0.2.66', 'outside the network'),          # another machine anywhere
    ('10.26.1.5', 'outside the network'),           # the neighbouring subnet
    ('10.26.0.1', "hypervisor's own address"),      # the hypervisor itself
    ('10.26.0.255', 'broadcast'),
    ('10.26.0.0', 'network or broadcast'),
    ('127.0.0.1', 'outside the network'),
    ('10.26.0.7; touch /tmp/x', 'not an IP address'),
    ('-oProxyCommand=sh', 'not an IP address'),
    ('10.26.0.7%eth0', 'not an IP address'),
    ('10.26.0.7/24', 'not an IP address'),
])
def test_agent_cannot_claim_an_address_outside_its_network(claimed, why):
    entries = hostile([v4(claimed)])
    assert entries[0]['addresses'] == []
    assert [r['source'] for r in entries[0]['rejected']] == ['agent']
    assert why in entries[0]['rejected'][0]['reason']
    assert addresses.best_address(entries) is None
    assert claimed[:20] in addresses.rejected_messages(entries)[0]


def test_agent_address_inside_the_network_is_kept_and_lease_wins():
    lease = {'vnet9': {'hwaddr': '52:54:00:26:00:01', 'addrs': [v4('10.26.0.23')]}}
    entries = hostile([v4('192.0.2.66'), v4('10.26.0.99'), {'addr': 'fd26::99', 'prefix': 64, 'type': 1}],
                      lease=lease)
    nic = entries[0]
    assert [(a['address'], a['source']) for a in nic['addresses']] == [
        ('10.26.0.23', 'lease'), ('10.26.0.99', 'agent'), ('fd26::99', 'agent')]
    assert [r['address'] for r in nic['rejected']] == ['192.0.2.66']
    assert addresses.best_address(entries) == '10.26.0.23'
    assert addresses.best_address(entries, 'ipv6') == 'fd26::99'


def test_agent_alone_cannot_move_ansible_host_off_its_network():
    # no lease (static address in the guest): the agent's in-network address is used,
    # a first-listed address elsewhere is not
    entries = hostile([v4('198.51.100.7'), v4('10.26.0.42')])
    assert addresses.best_address(entries) == '10.26.0.42'


def test_bridged_nic_checked_against_the_host_bridge_addresses():
    entries = hostile([], nic2_addrs=[v4('172.26.200.9', 16), v4('172.26.5.2', 16), v4('10.1.1.1')])
    nic = entries[1]
    assert [a['address'] for a in nic['addresses']] == ['172.26.200.9']
    assert sorted(r['address'] for r in nic['rejected']) == ['10.1.1.1', '172.26.5.2']


def test_nic_with_unknown_range_keeps_no_guest_address():
    # passt/user NIC: no range known, so nothing the agent says is used
    entries = hostile([], nic3_addrs=[v4('10.26.0.5')])
    assert entries[2]['addresses'] == []
    assert 'not known' in entries[2]['rejected'][0]['reason']


def test_arp_is_checked_like_the_agent():
    arp = {'vnet9': {'hwaddr': '52:54:00:26:00:01', 'addrs': [v4('192.0.2.1'), v4('10.26.0.31')]}}
    entries = hostile([], arp=arp)
    assert [(a['address'], a['source']) for a in entries[0]['addresses']] == [('10.26.0.31', 'arp')]


def test_no_connection_means_no_guest_reported_address():
    rec = {'xml': DOM_XML, 'answers': {'agent': {'eth0': {'hwaddr': '52:54:00:26:00:01',
                                                          'addrs': [v4('10.26.0.5')]}}}}
    entries = addresses.domain_addresses(None, ReplayDomain(rec), ('agent',))
    assert entries[0]['addresses'] == [] and entries[0]['rejected']


@pytest.mark.parametrize('junk', [
    {'eth0': 'not a dict'},
    {'eth0': {'hwaddr': '52:54:00:26:00:01', 'addrs': ['x', None, {'addr': 7}, {'addr': 'x' * 5000}]}},
    {'eth0': {'hwaddr': '52:54:00:26:00:01', 'addrs': [{'addr': '10.26.0.9', 'prefix': 'ff', 'type': 9}]}},
])
def test_malformed_agent_answers_are_data_not_errors(junk):
    rec = {'xml': DOM_XML, 'answers': {'agent': junk}}
    conn = FakeConn({'kvmops-i26': NET_XML})
    entries = addresses.domain_addresses(conn, ReplayDomain(rec), ('agent',))
    for addr in entries[0]['addresses']:
        assert addr['address'] == '10.26.0.9' and addr['prefix'] is None and addr['family'] == 'ipv4'
    assert all(len(r['address']) <= 64 for r in entries[0]['rejected'])


def test_long_interface_name_is_cut_and_ranges_are_looked_up_once_per_network():
    agent = {'x' * 500: {'hwaddr': '52:54:00:26:00:01', 'addrs': [v4('10.26.0.5')]}}
    rec = {'xml': DOM_XML, 'answers': {'agent': agent}}
    conn = FakeConn({'kvmops-i26': NET_XML}, {'br26': BRIDGE_XML})
    cache = {}
    for _round in range(3):
        entries = addresses.domain_addresses(conn, ReplayDomain(rec), ('agent',), cache)
    assert len(entries[0]['interface']) == 64
    assert conn.lookups.count(('network', 'kvmops-i26')) == 1


def test_no_errors_reported_when_every_nic_has_its_address():
    """Issue 27 (point 8): ARP's failure is not shown when the lease already answered for
    every NIC; it is while a NIC still has no address (test_lease_only_two_nics_in_xml_order)."""
    rec = load('tiny-two-nics-no-agent.json')
    root_xml = rec['xml']
    second = root_xml.index('<interface', root_xml.index('<interface') + 1)
    end = root_xml.index('</interface>', second) + len('</interface>')
    one_nic = dict(rec, xml=root_xml[:second] + root_xml[end:])
    entries, errors = addresses.domain_addresses_report(None, ReplayDomain(one_nic))
    assert len(entries) == 1 and entries[0]['addresses'] and errors == {}
