"""kvm_host's qemu.conf handler on the real daemon: a changed host-wide VNC address restarts
libvirtd through the role's handler, and libvirt answers again before the play goes on.
qemu.conf is restored byte for byte (and the daemon restarted) afterwards."""
import json
import os
import subprocess
import tempfile
import time

from support import paths
from support.ansible_run import run_playbook

QEMU_CONF = '/etc/libvirt/qemu.conf'
DEMO_INVENTORY = os.path.join(paths.REPO, 'inventories', 'demo')


def libvirtd_pid():
    """The live daemon's PID (pgrep would also list <defunct> ones: PID 1 here does not reap)."""
    with open('/run/libvirtd.pid') as f:
        return f.read().strip()


def restart_libvirtd():
    subprocess.run(['service', 'libvirtd', 'restart'], stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, check=False)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if subprocess.run(['virsh', '-c', paths.URI, 'version'], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL, check=False).returncode == 0:
            return
        time.sleep(0.5)
    raise AssertionError('libvirtd did not come back')


def test_vnc_listen_change_restarts_the_daemon_through_the_handler(daemon_exclusive):
    with open(QEMU_CONF, 'rb') as f:
        original = f.read()
    pid_before = libvirtd_pid()
    play = [{'hosts': 'hypervisors', 'gather_facts': True, 'gather_subset': ['min'],
             'roles': [{'role': 'kvmops.hypervisor.kvm_host',
                        'kvm_host_manage_packages': False,
                        'kvm_host_vnc_listen': '127.0.0.2'}],
             'post_tasks': [{'name': 'libvirt answers after the handler',
                             'ansible.builtin.command': 'virsh -c qemu:///system version',
                             'changed_when': False}]}]
    fd, path = tempfile.mkstemp(suffix='.yml')
    with os.fdopen(fd, 'w') as f:
        json.dump(play, f)
    try:
        doc = run_playbook(path, inventory=DEMO_INVENTORY)
        failed = [(t['task']['name'], t['hosts'].get('localhost', {}).get('msg'))
                  for t in doc['plays'][0]['tasks'] if t['hosts'].get('localhost', {}).get('failed')]
        assert doc['_rc'] == 0, json.dumps(failed)[:3000] + doc['_stderr'][-2000:]
        names = {}
        for task in doc['plays'][0]['tasks']:
            names[task['task']['name'].split(' : ')[-1]] = task['hosts'].get('localhost', {})
        assert names['Set the host-wide VNC listen address in qemu.conf']['changed'] is True
        assert names['Restart the QEMU daemon']['changed'] is True
        assert names['Wait until libvirt answers again'].get('rc') == 0
        assert 'libvirt answers after the handler' in names
        assert libvirtd_pid() != pid_before           # really restarted
        with open(QEMU_CONF) as f:
            assert 'vnc_listen = "127.0.0.2"' in f.read().splitlines()
        # no firewall rule for a loopback address
        assert 'Open the VNC port range with iptables' not in names or names[
            'Open the VNC port range with iptables'].get('skipped')
    finally:
        os.unlink(path)
        with open(QEMU_CONF, 'rb') as f:
            changed = f.read() != original
        if changed:
            with open(QEMU_CONF, 'wb') as f:
                f.write(original)
            restart_libvirtd()


def _iptables_rules():
    return subprocess.run(['iptables', '-S', 'INPUT'], stdout=subprocess.PIPE,
                          universal_newlines=True, check=False).stdout


def test_public_vnc_opens_the_port_range_in_the_firewall_check_mode():
    """Beyond loopback (here only in check mode: no test may listen on a public address) the
    role writes the autoport range and opens it with iptables (no firewalld here)."""
    with open(QEMU_CONF, 'rb') as f:
        conf_before = f.read()
    rules_before = _iptables_rules()
    play = [{'hosts': 'hypervisors', 'gather_facts': True, 'gather_subset': ['min'],
             'roles': [{'role': 'kvmops.hypervisor.kvm_host',
                        'kvm_host_manage_packages': False,
                        'kvm_host_vnc_listen': '0.0.0.0',
                        'kvm_host_vnc_allow_insecure': True,
                        'kvm_host_vnc_port_min': 5900, 'kvm_host_vnc_port_max': 5950}]}]
    fd, path = tempfile.mkstemp(suffix='.yml')
    with os.fdopen(fd, 'w') as f:
        json.dump(play, f)
    try:
        doc = run_playbook(path, inventory=DEMO_INVENTORY, check=True, diff=True)
    finally:
        os.unlink(path)
    assert doc['_rc'] == 0, json.dumps(doc['stats']) + doc['_stderr'][-3000:]
    names = {}
    for task in doc['plays'][0]['tasks']:
        names[task['task']['name'].split(' : ')[-1]] = task['hosts'].get('localhost', {})
    vnc = names['Set the host-wide VNC listen address in qemu.conf']
    assert vnc['changed'] is True
    keys = {c['key']: c['after'] for c in vnc['config_changes']}
    assert keys['vnc_listen'] == 'vnc_listen = "0.0.0.0"'
    assert keys['remote_display_port_max'] == 'remote_display_port_max = 5950'  # min 5900 is the default
    ipt = names['Open the VNC port range with iptables']
    assert ipt['changed'] is True and ipt['rule'].find('5900:5950') >= 0, ipt
    assert names['Open the VNC port range with firewalld'].get('skipped') is True
    # check mode: nothing changed
    with open(QEMU_CONF, 'rb') as f:
        assert f.read() == conf_before
    assert _iptables_rules() == rules_before


def test_default_network_follows_the_role_variables(conn, prefix):
    """kvm_host keeps its NAT network as its variables say: a changed dhcp_end changes the
    network on the next run (live and persistent). Tested on a network of this test's own name
    and subnet: the machine's 'default' network is shared with everyone's tests."""
    import ipaddress
    import libvirt
    from support.network_helpers import bridge_name, free_subnets, ranges
    subnet, = free_subnets(conn, 1)
    name, bridge = prefix + 'nat', bridge_name()
    base = str(subnet.network_address)[:-1]

    def play(dhcp_end, check=False):
        variables = {'kvm_host_manage_packages': False, 'kvm_host_vnc_manage': False,
                     'kvm_host_manage_kvm_device': False,
                     'kvm_host_default_network_name': name,
                     'kvm_host_default_network_bridge': bridge,
                     'kvm_host_default_network_address': base + '1',
                     'kvm_host_default_network_netmask': '255.255.255.0',
                     'kvm_host_default_network_dhcp_start': base + '2',
                     'kvm_host_default_network_dhcp_end': base + dhcp_end}
        pb = [{'hosts': 'hypervisors', 'gather_facts': True, 'gather_subset': ['min'],
               'roles': [dict({'role': 'kvmops.hypervisor.kvm_host'}, **variables)]}]
        fd, path = tempfile.mkstemp(suffix='.yml')
        with os.fdopen(fd, 'w') as f:
            json.dump(pb, f)
        try:
            doc = run_playbook(path, inventory=DEMO_INVENTORY, check=check)
        finally:
            os.unlink(path)
        assert doc['_rc'] == 0, json.dumps(doc['stats']) + doc['_stderr'][-3000:]
        for task in doc['plays'][0]['tasks']:
            if task['task']['name'].endswith('Keep the default NAT network as the variables say, '
                                             'active and autostarted'):
                return task['hosts']['localhost']
        raise AssertionError('the network task did not run')

    res = play('254')
    assert res['changed'] is True and 'define the network' in res['actions'], res
    net = conn.networkLookupByName(name)
    assert net.isActive() and net.autostart()
    assert ranges(net.XMLDesc(0)) == [(base + '2', base + '254')]
    assert play('254')['changed'] is False

    res = play('100', check=True)
    assert res['changed'] is True and ranges(net.XMLDesc(0)) == [(base + '2', base + '254')]
    res = play('100')
    assert res['changed'] is True and res['restart_required'] is False, res
    assert res['live_updates'] == ['remove DHCP range %s2-%s254' % (base, base),
                                   'add DHCP range %s2-%s100' % (base, base)]
    for flags in (0, libvirt.VIR_NETWORK_XML_INACTIVE):
        assert ranges(net.XMLDesc(flags)) == [(base + '2', base + '100')]
    assert play('100')['changed'] is False
    assert ipaddress.ip_address(base + '1') in subnet
