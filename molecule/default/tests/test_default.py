"""Verify the converged hypervisor (this machine) with testinfra.

The names come from the molecule inventory (molecule.yml host_vars over the demo group_vars).
"""
import re
import time

import pytest

testinfra_hosts = ['ansible://hypervisors']

URI = 'qemu:///system'


@pytest.fixture(scope='module')
def hv(host):
    variables = host.ansible.get_variables()
    return {
        'guest': variables['demo_guest_name'],
        'dir': variables['image_storage_dir'],
        'pool': variables['image_storage_pool_name'],
    }


def virsh(host, *args):
    return host.check_output('virsh -c %s %s' % (URI, ' '.join(args)))


def test_libvirtd_is_running(host):
    assert host.run('pgrep -x libvirtd').rc == 0
    assert 'Running hypervisor' in virsh(host, 'version')


def test_default_network_virbr0_is_up(host):
    info = virsh(host, 'net-info', 'default')
    assert re.search(r'^Active:\s+yes', info, re.M)
    assert re.search(r'^Autostart:\s+yes', info, re.M)
    assert re.search(r'^Bridge:\s+virbr0', info, re.M)
    link = host.check_output('ip -o link show virbr0')
    assert re.search(r'<[^>]*\bUP\b[^>]*>', link), link


def test_pool_is_active_and_autostarted_on_the_image_dir(host, hv):
    info = virsh(host, 'pool-info', hv['pool'])
    assert re.search(r'^State:\s+running', info, re.M)
    assert re.search(r'^Autostart:\s+yes', info, re.M)
    assert '<path>%s</path>' % hv['dir'] in virsh(host, 'pool-dumpxml', hv['pool'])


def test_guest_is_running_and_its_serial_log_has_the_marker(host, hv):
    assert virsh(host, 'domstate', hv['guest']).strip() == 'running'
    log = host.file('%s/%s-serial.log' % (hv['dir'], hv['guest']))
    deadline = time.monotonic() + 90  # under TCG the tiny guest is READY ~10 s after its start
    while time.monotonic() < deadline and not (log.exists and 'KVMOPS-READY' in log.content_string):
        time.sleep(1)
    content = log.content_string
    # The guest booted the tree's kernel with the role's extra arguments and finished booting.
    assert 'KVMOPS-CMDLINE: console=ttyS0 kvmops.dhcp=1' in content
    assert 'KVMOPS-READY' in content, content[-2000:]


def test_guest_vnc_listens_on_loopback_only(host, hv):
    display = virsh(host, 'vncdisplay', hv['guest']).strip()
    listen, dummy, num = display.rpartition(':')
    assert listen == '127.0.0.1', display
    port = 5900 + int(num)
    sockets = host.socket.get_listening_sockets()
    on_port = [s for s in sockets if s.startswith('tcp://') and s.endswith(':%d' % port)]
    assert on_port == ['tcp://127.0.0.1:%d' % port], on_port


def test_selinux_rule_is_recorded_for_the_image_dir(host, hv):
    rules = host.check_output('semanage fcontext -l -C')
    line = [r for r in rules.splitlines() if r.startswith('%s(/.*)?' % hv['dir'])]
    assert line and 'virt_image_t' in line[0], rules
    assert 'virt_image_t' in host.check_output('matchpathcon %s/%s.img' % (hv['dir'], hv['guest']))
