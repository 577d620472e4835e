"""kvm_host's host-bridge addressing, run by Ansible against this machine's real NIC facts,
without making a bridge (that would move this machine's address): the IPv4 settings the role
works out (tasks/bridge_address.yml), the ifupdown stanza it renders from them, and the
rewrite of the NIC's own stanza (tasks/bridge_nic_stanza.yml) on a copy of an interfaces file.
"""
import json
import os
import subprocess

import pytest

from support import paths
from support.ansible_run import run_playbook

ROLE = os.path.join(paths.REPO, 'roles', 'kvm_host')

INTERFACES = """# The loopback network interface
auto lo
iface lo inet loopback

allow-hotplug {nic}
iface {nic} inet static
    address 192.0.2.10/24
    gateway 192.0.2.1
    dns-nameservers 192.0.2.53

source /etc/network/interfaces.d/*
"""


def default_route():
    """(interface, gateway, address/prefix) of this machine's default route."""
    route = subprocess.run(['ip', '-4', 'route', 'show', 'default'], stdout=subprocess.PIPE,
                           universal_newlines=True, check=True).stdout.split()
    nic, gateway = route[route.index('dev') + 1], route[route.index('via') + 1]
    addr = subprocess.run(['ip', '-4', '-o', 'addr', 'show', 'dev', nic], stdout=subprocess.PIPE,
                          universal_newlines=True, check=True).stdout.split()
    return nic, gateway, addr[addr.index('inet') + 1]


def run(tmp_path, variables, tasks_from):
    play = [{'hosts': 'localhost', 'gather_facts': True, 'gather_subset': ['min'], 'tasks': [
        {'name': 'under test', 'ansible.builtin.include_role': {
            'name': 'kvmops.hypervisor.kvm_host', 'tasks_from': tasks_from}, 'vars': variables},
        {'name': 'render', 'ansible.builtin.template': {
            'src': os.path.join(ROLE, 'templates', 'ifupdown_bridge.j2'),
            'dest': str(tmp_path / 'br0')}, 'vars': variables,
         'when': tasks_from == 'bridge_address'},
    ]}]
    playbook = tmp_path / 'play.yml'
    playbook.write_text(json.dumps(play))
    doc = run_playbook(str(playbook), extra_vars={
        'kvm_host_ifupdown_interfaces': str(tmp_path / 'interfaces')})
    assert doc['_rc'] == 0, doc['_stderr'][-3000:] + json.dumps(doc['plays'])[-3000:]
    return doc


@pytest.fixture
def nic():
    try:
        return default_route()
    except (ValueError, subprocess.CalledProcessError):
        pytest.skip('this machine has no IPv4 default route')


def base(nic_name):
    return {'kvm_host_bridge_interface': nic_name, 'kvm_host_bridge_name': 'kvmopsbr0',
            'kvm_host_nmcli': {'stat': {'exists': False}}}


def stanza(path):
    return [line.strip() for line in open(path).read().splitlines() if line and not line.startswith('#')]


def test_a_statically_configured_nic_keeps_its_address_gateway_and_dns(tmp_path, nic):
    name, gateway, address = nic
    (tmp_path / 'interfaces').write_text(INTERFACES.format(nic=name))   # the NIC says static
    run(tmp_path, base(name), 'bridge_address')
    lines = stanza(tmp_path / 'br0')
    assert 'iface kvmopsbr0 inet static' in lines
    assert 'address %s' % address in lines          # the NIC's current address, from facts
    assert 'gateway %s' % gateway in lines
    resolvers = [l.split()[1] for l in open('/etc/resolv.conf') if l.startswith('nameserver')]
    if resolvers:
        assert 'dns-nameservers %s' % ' '.join(resolvers) in lines


def test_a_dhcp_nic_gives_a_dhcp_bridge_and_variables_win(tmp_path, nic):
    name = nic[0]
    (tmp_path / 'interfaces').write_text(INTERFACES.format(nic=name).replace('inet static', 'inet dhcp'))
    run(tmp_path, base(name), 'bridge_address')
    assert 'iface kvmopsbr0 inet dhcp' in stanza(tmp_path / 'br0')
    run(tmp_path, dict(base(name), kvm_host_bridge_ipv4_method='static',
                       kvm_host_bridge_ipv4_address='198.51.100.7/24',
                       kvm_host_bridge_ipv4_gateway='198.51.100.1',
                       kvm_host_bridge_dns_servers=['198.51.100.53']), 'bridge_address')
    lines = stanza(tmp_path / 'br0')
    assert ['address 198.51.100.7/24', 'gateway 198.51.100.1',
            'dns-nameservers 198.51.100.53'] == [l for l in lines if l.split()[0] in ('address', 'gateway', 'dns-nameservers')]


def test_the_nics_own_stanza_is_handed_to_the_bridge(tmp_path, nic):
    name = 'eno7'
    path = tmp_path / 'interfaces'
    path.write_text(INTERFACES.format(nic=name))
    run(tmp_path, base(name), 'bridge_nic_stanza')
    text = path.read_text()
    assert 'iface eno7 inet manual' in text
    assert '    # moved to kvmopsbr0 by kvmops: address 192.0.2.10/24' in text
    assert '    # moved to kvmopsbr0 by kvmops: gateway 192.0.2.1' in text
    assert 'iface lo inet loopback' in text and 'source /etc/network/interfaces.d/*' in text
    again = path.read_text()
    run(tmp_path, base(name), 'bridge_nic_stanza')
    assert path.read_text() == again                # idempotent
