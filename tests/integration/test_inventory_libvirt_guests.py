"""The kvmops.hypervisor.libvirt_guests inventory plugin against the real libvirtd: a tiny guest
on an isolated network of the test's own gets a DHCP lease (no guest agent in the tiny guest),
the plugin lists it with that address, its state and tag groups, a stopped guest in the
shutoff group, a hypervisor that cannot be reached gives a warning while the others are listed,
and the cache answers until it is flushed. (The fleet scenario lists three remote
hypervisors' guests over qemu+ssh, with the ProxyJump.)"""
import contextlib
import json
import os
import re
import subprocess

import libvirt
import pytest
import yaml

from support import paths
from support.libvirt_helpers import tiny_guest_xml, wait_for_text

TAG_NS = 'urn:kvmops:hypervisor:tags:1'
UNREACHABLE = 'qemu+ssh://root@127.0.0.1:1/system'   # nothing listens on port 1: refused at once


def plain(value):
    """ansible-inventory marks values from inventory plugins unsafe ({'__ansible_unsafe': v}):
    rightly, a tag or a guest name is never templated."""
    if isinstance(value, dict):
        if list(value) == ['__ansible_unsafe']:
            return value['__ansible_unsafe']
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def _env():
    return dict(os.environ, ANSIBLE_COLLECTIONS_PATH=paths.COLLECTIONS_DIR, ANSIBLE_NOCOLOR='1',
                ANSIBLE_INVENTORY_UNPARSED_FAILED='1')


def ansible_inventory(config, *extra):
    env = _env()
    proc = subprocess.run([os.path.join(paths.VENV, 'bin', 'ansible-inventory'), '-i', config, '--list']
                          + list(extra), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, env=env, timeout=180, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return plain(json.loads(proc.stdout)), proc.stderr


def flushed_inventory(config, tmp_path):
    """The listing after a cache flush. ansible-inventory has --flush-cache from ansible-core
    2.19 on; on 2.17 and 2.18 only ansible-playbook has it (it parses the inventory with the
    cache off and writes the cache anew), so a play that does nothing flushes, and
    ansible-inventory then lists from the new cache."""
    inventory = os.path.join(paths.VENV, 'bin', 'ansible-inventory')
    helps = subprocess.run([inventory, '--help'], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                           universal_newlines=True, env=_env(), timeout=120, check=True).stdout
    if '--flush-cache' in helps:
        return ansible_inventory(config, '--flush-cache')[0]
    play = str(tmp_path / 'noop.yml')
    with open(play, 'w') as f:
        yaml.safe_dump([{'hosts': 'localhost', 'gather_facts': False, 'tasks': []}], f)
    proc = subprocess.run([os.path.join(paths.VENV, 'bin', 'ansible-playbook'), '-i', config, '--flush-cache',
                           play], stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                          env=_env(), timeout=180, check=False)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return ansible_inventory(config)[0]


@pytest.fixture
def lease_network(conn, prefix):
    """An isolated network with DHCP, on a /24 and a bridge no other network of this machine
    uses. Another test (another run of this file, too) may pick the same free /24 at the same
    moment: libvirt refuses the second definition, and the next free one is tried."""
    name = prefix + 'net'
    for third in range(30, 250):
        xmls = ''.join(n.XMLDesc(0) for n in conn.listAllNetworks())
        net = '10.218.%d' % third
        bridge = 'kv17i%d' % third
        if "address='%s." % net in xmls or "'%s'" % bridge in xmls or os.path.exists('/sys/class/net/' + bridge):
            continue
        try:
            conn.networkDefineXML(
                "<network><name>{name}</name><bridge name='{bridge}'/>"
                "<ip address='{net}.1' netmask='255.255.255.0'><dhcp><range start='{net}.10' end='{net}.50'/></dhcp></ip>"
                "</network>".format(name=name, bridge=bridge, net=net)).create()
        except libvirt.libvirtError as exc:
            if 'in use' not in str(exc) and 'overlap' not in str(exc):
                raise
            with contextlib.suppress(libvirt.libvirtError):
                conn.networkLookupByName(name).undefine()
            continue
        return name
    raise AssertionError('no free 10.218.x.0/24 network for the test')


def test_lists_guests_with_lease_addresses_state_and_tags(conn, prefix, tiny, image_dir, lease_network, tmp_path):
    log = os.path.join(image_dir, 'web-serial.log')
    xml = tiny_guest_xml(prefix + 'web', tiny, log, cmdline='console=ttyS0 kvmops.dhcp=1', devices=(
        "<interface type='network'><source network='%s'/><model type='virtio'/></interface>" % lease_network))
    xml = xml.replace('</name>', '</name><metadata><k:tags xmlns:k="%s"><k:tag>web</k:tag><k:tag>blue-team</k:tag>'
                      '</k:tags></metadata>' % TAG_NS, 1)
    web = conn.defineXML(xml)
    web.create()
    conn.defineXML(tiny_guest_xml(prefix + 'idle', tiny, os.path.join(image_dir, 'idle.log')))
    guest_ip = re.search(r'KVMOPS-IP: (\S+)', wait_for_text(log, 'KVMOPS-IP:', timeout=300)).group(1)

    config = str(tmp_path / 'libvirt_guests.yml')
    cache_dir = str(tmp_path / 'cache')
    with open(config, 'w') as f:
        yaml.safe_dump({'plugin': 'kvmops.hypervisor.libvirt_guests',
                        'uris': ['qemu:///system', {'uri': UNREACHABLE, 'name': 'down'}],
                        'name_pattern': '^' + re.escape(prefix), 'connect_timeout': 60,
                        'cache': True, 'cache_plugin': 'ansible.builtin.jsonfile',
                        'cache_connection': cache_dir, 'cache_timeout': 3600}, f)
    inv, stderr = ansible_inventory(config)

    # The unreachable hypervisor is a warning naming it; the reachable one is listed.
    assert 'hypervisor down (%s) is not listed' % UNREACHABLE in ' '.join(stderr.split()), stderr
    hosts = inv['_meta']['hostvars']
    assert sorted(hosts) == [prefix + 'idle', prefix + 'web']
    v = hosts[prefix + 'web']
    # The address is the lease of the guest's own NIC: the one the guest printed it got.
    assert v['ansible_host'] == guest_ip
    nic = v['libvirt_interfaces'][0]
    assert nic['network'] == lease_network and nic['network_forward'] == 'none'
    assert [a['source'] for a in nic['addresses']] == ['lease']
    mac = re.search(r"<mac address='([^']+)'", web.XMLDesc(0)).group(1)
    lease = [entry for entry in conn.networkLookupByName(lease_network).DHCPLeases() if entry['mac'] == mac]
    assert lease and lease[0]['ipaddr'] == guest_ip
    assert v['libvirt_state'] == 'running' and v['libvirt_tags'] == ['web', 'blue-team']
    assert v['libvirt_uri'] == 'qemu:///system' and v['libvirt_memory_mib'] == 256
    assert 'ansible_ssh_common_args' not in v       # a local hypervisor: no hop needed
    assert 'ansible_host' not in hosts[prefix + 'idle']
    assert hosts[prefix + 'idle']['libvirt_state'] == 'shutoff'

    members = {g: inv[g].get('hosts', []) for g in inv if g != '_meta'}
    assert prefix + 'web' in members['libvirt_state_running']
    assert prefix + 'idle' in members['libvirt_state_shutoff']
    assert prefix + 'web' in members['libvirt_tag_web'] and prefix + 'web' in members['libvirt_tag_blue_team']
    assert sorted(members['libvirt_hypervisor_localhost']) == [prefix + 'idle', prefix + 'web']

    # Cached: a guest that went away is still listed until the cache is flushed. (--export is
    # how AWX's inventory update calls ansible-inventory.)
    web.destroy()
    cached = ansible_inventory(config, '--export')[0]
    assert cached['_meta']['hostvars'][prefix + 'web']['libvirt_state'] == 'running'
    fresh = flushed_inventory(config, tmp_path)
    assert fresh['_meta']['hostvars'][prefix + 'web']['libvirt_state'] == 'shutoff'

    # Another selection is another listing: the cache of the old name_pattern is not served
    # (the idle guest, gone meanwhile, is not listed from it), and the new one is cached.
    conn.lookupByName(prefix + 'idle').undefine()
    with open(config) as f:
        options = yaml.safe_load(f)
    options['name_pattern'] = '^%s(idle|web)$' % re.escape(prefix)
    with open(config, 'w') as f:
        yaml.safe_dump(options, f)
    other = ansible_inventory(config)[0]
    assert sorted(other['_meta']['hostvars']) == [prefix + 'web']
    assert sorted(ansible_inventory(config, '--export')[0]['_meta']['hostvars']) == [prefix + 'web']


def test_ansible_doc_renders_the_plugin():
    proc = subprocess.run([os.path.join(paths.VENV, 'bin', 'ansible-doc'), '-t', 'inventory',
                           'kvmops.hypervisor.libvirt_guests'], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, timeout=60, check=False,
                          env=dict(os.environ, ANSIBLE_COLLECTIONS_PATH=paths.COLLECTIONS_DIR))
    assert proc.returncode == 0, proc.stderr
    for text in ('address_sources', 'hypervisor_group', 'ProxyJump', 'cache_plugin', 'keyed_groups'):
        assert text in proc.stdout, text
