"""roles/kvm_host/templates/ifupdown_bridge.j2: a host with a static address keeps its address,
gateway and DNS on the bridge; a DHCP host keeps asking DHCP. Rendered with Jinja2 as Ansible
does (trim_blocks); no real bridge is made (it would move this machine's address)."""
import os

import jinja2

from support import paths

TEMPLATE = os.path.join(paths.REPO, 'roles', 'kvm_host', 'templates', 'ifupdown_bridge.j2')


def render(ip):
    env = jinja2.Environment(trim_blocks=True, keep_trailing_newline=True,
                             undefined=jinja2.StrictUndefined)
    with open(TEMPLATE) as f:
        template = env.from_string(f.read())
    return template.render(ansible_managed='Ansible managed', kvm_host_bridge_name='br0',
                           kvm_host_bridge_interface='eno1', kvm_host_bridge_ip=ip)


def stanza(text):
    return [line for line in text.splitlines() if line and not line.startswith('#')]


def test_static_host_keeps_address_gateway_and_dns():
    text = render({'method': 'static', 'source': 'nic', 'address': '192.0.2.10/24',
                   'gateway': '192.0.2.1', 'dns': ['192.0.2.53', '198.51.100.53'],
                   'search': ['example.com']})
    assert stanza(text) == [
        'auto br0',
        'iface br0 inet static',
        '    bridge_ports eno1',
        '    bridge_stp off',
        '    bridge_fd 0',
        '    address 192.0.2.10/24',
        '    gateway 192.0.2.1',
        '    dns-nameservers 192.0.2.53 198.51.100.53',
        '    dns-search example.com',
    ]
    assert 'as configured there before' in text


def test_static_without_gateway_or_dns_writes_only_the_address():
    text = render({'method': 'static', 'source': 'variables', 'address': '10.0.0.5/16',
                   'gateway': '', 'dns': [], 'search': []})
    assert stanza(text)[-1] == '    address 10.0.0.5/16'
    assert not [line for line in stanza(text) if 'gateway' in line or 'dns-' in line]


def test_dhcp_host_stays_dhcp():
    text = render({'method': 'dhcp', 'source': 'nic', 'address': '192.0.2.10/24',
                   'gateway': '192.0.2.1', 'dns': ['192.0.2.53'], 'search': []})
    assert stanza(text) == ['auto br0', 'iface br0 inet dhcp', '    bridge_ports eno1',
                            '    bridge_stp off', '    bridge_fd 0']
