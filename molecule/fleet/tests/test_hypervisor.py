"""Each of the fleet's hypervisors on its own (testinfra runs every test once per host, over
SSH): its libvirtd, default network, image storage and running TCG guest, which has a DHCP
lease there and answers a ping sent from inside that hypervisor's container."""
import re
import time

import pytest

testinfra_hosts = ['ansible://hypervisors']

URI = 'qemu:///system'


@pytest.fixture(scope='module')
def hv(host):
    variables = host.ansible.get_variables()
    return {'guest': variables['demo_guest_name'], 'dir': variables['image_storage_dir'],
            'pool': variables['image_storage_pool_name']}


def virsh(host, *args):
    return host.check_output('virsh -c %s %s' % (URI, ' '.join(args)))


def guest_log(host, hv, text, timeout=300):  # a loaded 2-core machine boots TCG guests slowly
    log = host.file('%s/%s-serial.log' % (hv['dir'], hv['guest']))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not (log.exists and text in log.content_string):
        time.sleep(1)
    return log.content_string if log.exists else ''


def test_libvirtd_runs_under_systemd(host):
    assert host.service('libvirtd').is_running
    assert host.service('libvirtd').is_enabled
    assert 'Running hypervisor' in virsh(host, 'version')


def test_default_network_is_active_and_autostarted(host):
    info = virsh(host, 'net-info', 'default')
    assert re.search(r'^Active:\s+yes', info, re.M)
    assert re.search(r'^Autostart:\s+yes', info, re.M)
    assert re.search(r'<[^>]*\bUP\b', host.check_output('ip -o link show virbr0'))


def test_image_pool_is_active_on_the_image_dir(host, hv):
    info = virsh(host, 'pool-info', hv['pool'])
    assert re.search(r'^State:\s+running', info, re.M)
    assert re.search(r'^Autostart:\s+yes', info, re.M)
    assert '<path>%s</path>' % hv['dir'] in virsh(host, 'pool-dumpxml', hv['pool'])
    assert host.file(hv['dir']).is_directory


def test_guest_runs_under_tcg_and_booted(host, hv):
    assert virsh(host, 'domstate', hv['guest']).strip() == 'running'
    assert "<domain type='qemu'" in virsh(host, 'dumpxml', hv['guest'])
    content = guest_log(host, hv, 'KVMOPS-READY')
    assert 'KVMOPS-READY' in content, content[-2000:]


def test_guest_lease_matches_the_guest_and_answers_from_its_hypervisor(host, hv):
    content = guest_log(host, hv, 'KVMOPS-IP:')
    guest_ip = re.search(r'KVMOPS-IP: (\S+)', content).group(1)
    mac = re.search(r"<mac address='([^']+)'", virsh(host, 'dumpxml', hv['guest'])).group(1)
    leases = virsh(host, 'net-dhcp-leases', 'default', '--mac', mac)
    assert re.search(r'\s%s/\d+\s' % re.escape(guest_ip), leases), leases
    # From inside this hypervisor's network namespace, never from the machine running the tests.
    assert host.run('ping -c 1 -W 5 %s' % guest_ip).rc == 0


def test_guest_vnc_listens_on_loopback_only(host, hv):
    listen, dummy, num = virsh(host, 'vncdisplay', hv['guest']).strip().rpartition(':')
    assert listen == '127.0.0.1'
    port = 5900 + int(num)
    on_port = [s for s in host.socket.get_listening_sockets()
               if s.startswith('tcp://') and s.endswith(':%d' % port)]
    assert on_port == ['tcp://127.0.0.1:%d' % port]
