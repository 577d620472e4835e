"""Unit tests of per-NIC address discovery, replaying libvirt answers recorded on the test bed
(tests/fixtures/addresses/*.json: the domain XML plus what virDomainInterfaceAddresses
answered per source, or the error it raised). The fake domain only replays them."""
import glob
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
                                             ('agent', AGENT_ANSWER)])
    first = entries[0]
    assert first['interface'] == 'ens2'
    assert first['sources'] == ['lease', 'agent']
    assert [(a['address'], a['source']) for a in first['addresses']] == [
        ('192.168.215.23', 'lease'), ('fe80::5054:ff:fe15:1', 'agent'),
        ('192.168.215.23', 'agent')]
    # guest-internal interfaces (lo, docker0) are not NICs of the domain
    assert all(a['address'] not in ('127.0.0.1', '172.17.0.1') for e in entries for a in e['addresses'])
    # link-local never becomes ansible_host
    assert addresses.best_address(entries, 'ipv6') is None


def test_mac_match_is_case_insensitive_and_duplicates_dropped():
    nics = [{'mac': '52:54:00:aa:bb:cc', 'network': None, 'type': 'bridge', 'target': None}]
    answer = {'eth0': {'hwaddr': '52:54:00:AA:BB:CC', 'addrs': [
        {'addr': '10.0.0.5', 'prefix': 24, 'type': 0}, {'addr': '10.0.0.5', 'prefix': 24, 'type': 0}]}}
    entries = addresses.merge_answers(nics, [('arp', answer)])
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
