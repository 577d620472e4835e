"""kvmops.hypervisor.libvirt_guests across the fleet, from this controller: the guests of the
hypervisors of the molecule inventory, over qemu+ssh, each with the address its hypervisor's
dnsmasq leased to it (the one the guest printed on its console), reachable from inside that
hypervisor, a ProxyCommand through that hypervisor (the guests sit on its NAT network), groups
by hypervisor, state and tag, and a warning (not a failure) for a hypervisor that is down."""
import json
import os
import re
import stat
import subprocess
import time

import pytest
import yaml

INVENTORY = os.environ['MOLECULE_INVENTORY_FILE']
EPHEMERAL = os.environ['MOLECULE_EPHEMERAL_DIRECTORY']
KEY = os.path.join(EPHEMERAL, 'fleet_ed25519')
HOSTS = ['kvmops-molecule-fleet-hv1', 'kvmops-molecule-fleet-hv2', 'kvmops-molecule-fleet-hv3']
GUEST = 'kvmops-fleet-guest'
DOWN = 'qemu+ssh://root@127.0.0.1:1/system?no_tty=1'
TAG_NS = 'urn:kvmops:hypervisor:tags:1'
SSH_OPTS = '-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o BatchMode=yes'


def plain(value):
    """ansible-inventory marks plugin values unsafe ({'__ansible_unsafe': v})."""
    if isinstance(value, dict):
        if list(value) == ['__ansible_unsafe']:
            return value['__ansible_unsafe']
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def in_container(name, *argv):
    return subprocess.run(['podman', 'exec', name] + list(argv), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, universal_newlines=True, timeout=60, check=False)


def wait_for_lease_line(name, timeout=300):
    """Until the guest has printed the address it leased (a loaded machine boots TCG slowly)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if 'KVMOPS-IP:' in in_container(name, 'cat', '/srv/kvmops-fleet/%s-serial.log' % GUEST).stdout:
            return
        time.sleep(2)
    raise AssertionError('%s: the guest printed no KVMOPS-IP within %ss' % (name, timeout))


@pytest.fixture(scope='module')
def listed():
    for hv in HOSTS:
        wait_for_lease_line(hv)
    # libvirt runs ssh itself: a wrapper keeps the test's host keys out of root's known_hosts.
    wrapper = os.path.join(EPHEMERAL, 'libvirt-ssh')
    with open(wrapper, 'w') as f:
        f.write('#!/bin/sh\nexec ssh %s "$@"\n' % SSH_OPTS)
    os.chmod(wrapper, stat.S_IRWXU)
    # A tag in the metadata of hv1's guest only.
    tagged = in_container(HOSTS[0], 'virsh', 'metadata', GUEST, TAG_NS, '--key', 'kvmops', '--live', '--config',
                          '--set', '<tags><tag>web</tag></tags>')
    assert tagged.returncode == 0, tagged.stdout
    config = os.path.join(EPHEMERAL, 'libvirt_guests.yml')
    with open(config, 'w') as f:
        yaml.safe_dump({'plugin': 'kvmops.hypervisor.libvirt_guests', 'hypervisor_group': 'hypervisors',
                        'hypervisor_uri_params': {'keyfile': KEY, 'command': wrapper, 'no_tty': 1},
                        'uris': [{'uri': DOWN, 'name': 'down'}],
                        'hostname_format': '{name}@{hypervisor}',
                        'proxy_ssh_args': '-i %s %s' % (KEY, SSH_OPTS)}, f)
    proc = subprocess.run(['ansible-inventory', '-i', INVENTORY, '-i', config, '--list'],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                          timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    yield plain(json.loads(proc.stdout)), proc.stderr
    in_container(HOSTS[0], 'virsh', 'metadata', GUEST, TAG_NS, '--live', '--config', '--remove')


def test_a_hypervisor_down_is_a_warning(listed):
    stderr = listed[1]
    assert 'hypervisor down (%s) is not listed' % DOWN in ' '.join(stderr.split()), stderr


@pytest.mark.parametrize('hv', HOSTS)
def test_each_guest_has_its_lease_address_reachable_from_its_hypervisor(listed, hv):
    inv = listed[0]
    v = inv['_meta']['hostvars']['%s@%s' % (GUEST, hv)]
    assert v['libvirt_hypervisor'] == hv and v['libvirt_state'] == 'running'
    log = in_container(hv, 'cat', '/srv/kvmops-fleet/%s-serial.log' % GUEST).stdout
    assert v['ansible_host'] == re.search(r'KVMOPS-IP: (\S+)', log).group(1)
    assert v['libvirt_interfaces'][0]['network'] == 'default'
    assert v['libvirt_interfaces'][0]['network_forward'] == 'nat'
    assert in_container(hv, 'ping', '-c', '1', '-W', '5', v['ansible_host']).returncode == 0
    address = inv['_meta']['hostvars'][hv]['ansible_host']
    assert v['ansible_ssh_common_args'] == "-o ProxyCommand='ssh -i %s %s -W %%h:%%p root@%s'" % (KEY, SSH_OPTS, address)


def test_groups_by_hypervisor_state_and_tag(listed):
    inv = listed[0]
    for hv in HOSTS:
        group = 'libvirt_hypervisor_' + hv.replace('-', '_')
        assert inv[group]['hosts'] == ['%s@%s' % (GUEST, hv)]
    assert sorted(inv['libvirt_state_running']['hosts']) == ['%s@%s' % (GUEST, hv) for hv in HOSTS]
    assert inv['libvirt_tag_web']['hosts'] == ['%s@%s' % (GUEST, HOSTS[0])]
