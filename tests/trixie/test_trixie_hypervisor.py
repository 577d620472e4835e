"""The collection on a Debian 13 (trixie) hypervisor: libvirt 11.3, QEMU 10.0, Python 3.13,
passt enabled (make trixie; issue 32).

One podman container from testbed/images/trixiehost.packages (systemd as PID 1, libvirt
preinstalled as on a prepared host; its libvirtd, virbr0 and guests live in the container, this
machine's libvirtd is not touched). What runs there, each the community.libvirt way (check
mode, real, independent verification with virsh, re-run changed=false, removal):
- site.yml's plays (kvm_host, image_storage, guests) with the bare-host test's variables:
  converge, the tiny guest boots, a re-run and a check-mode run change nothing;
- virt_install_domain: a second tiny guest with passt port forwards (libvirt 11 has passt; on
  Debian 12 it is built without), the QEMU user-mode fallback, re-runs, removal;
- virt_network and virt_snapshot: create, re-run, remove.
What differs between libvirt 9 (Debian 12) and 11 here: Debian packages no modular daemons (the
role keeps the monolithic libvirtd), passt is enabled, QEMU 10 machine types; none makes a drift.
"""
import json
import shutil
import time

import pytest

from support import containers
from support.ansible_run import run_module, run_playbook
from support import paths

pytestmark = pytest.mark.trixie

SITE = paths.REPO + '/playbooks/site.yml'


def sh(name, *argv, **kw):
    return containers.podman_exec(name, *argv, **kw)


def wait_in(name, argv, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        proc = sh(name, *argv)
        if proc.returncode == 0:
            return proc.stdout
        time.sleep(1)
    raise AssertionError('%s: %s did not succeed within %ss' % (name, argv, timeout))


@pytest.fixture(scope='module')
def trixie(tmp_path_factory):
    if not shutil.which('podman'):
        pytest.skip('podman is not installed (testbed/setup_podman.sh installs it)')
    ref = containers.image('trixiehost')
    with containers.running(ref, 'kvmops-t-trixie-', boot_timeout=300) as name:
        containers.copy_tiny_media(name)
        sh(name, 'mkdir', '-p', '/vm-images')   # the site test's image_storage makes it too
        inventory = containers.write_inventory(
            str(tmp_path_factory.mktemp('trixie') / 'inventory.json'), name)
        yield name, inventory


def changed_tasks(doc, name):
    return [t for t, r in containers.task_results(doc, name).items() if r.get('changed')]


def failed(doc):
    return json.dumps([(t['task']['name'], h.get('msg')) for p in doc['plays'] for t in p['tasks']
                       for h in t['hosts'].values() if h.get('failed')])[:3000] + doc['_stderr'][-2000:]


def test_the_image_is_debian_13_with_libvirt_11(trixie):
    name = trixie[0]
    assert sh(name, 'cat', '/etc/debian_version').stdout.startswith('13.')
    version = sh(name, 'virsh', '-c', 'qemu:///system', 'version').stdout
    assert 'libvirt 11.' in version and 'QEMU 10.' in version, version
    assert sh(name, 'python3', '-c', 'import sys; print(sys.version_info[:2] >= (3, 13))').stdout.strip() == 'True'


def test_site_converges_and_reruns_unchanged(trixie):
    name, inventory = trixie
    extra = containers.BARE_HOST_VARS
    doc = run_playbook(SITE, inventory=inventory, diff=True, extra_vars=extra, timeout=1500)
    stats = doc['stats'][name]
    assert doc['_rc'] == 0 and stats['failures'] == 0, failed(doc)
    r = containers.task_results(doc, name)
    # Debian 13 runs the monolithic libvirtd (its packages ship no modular daemons)
    assert r['Choose the libvirt daemon layout']['ansible_facts']['kvm_host_daemon_layout'] == 'monolithic'
    assert sh(name, 'systemctl', 'is-active', 'libvirtd').stdout.strip() == 'active'
    assert 'running' in sh(name, 'virsh', '-c', 'qemu:///system', 'domstate', containers.GUEST).stdout
    wait_in(name, ['grep', '-q', 'KVMOPS-TINY-GUEST BOOTED', containers.GUEST_SERIAL], 180)
    assert 'vm-images' in sh(name, 'virsh', 'pool-list', '--name').stdout.split()

    for check in (False, True):   # re-run, then check mode on the configured host
        doc = run_playbook(SITE, inventory=inventory, check=check, diff=True, extra_vars=extra)
        assert doc['_rc'] == 0 and changed_tasks(doc, name) == [], (check, changed_tasks(doc, name), failed(doc))


def _guest(name, **extra):
    args = {'name': name, 'memory': 256, 'vcpus': 1, 'os_variant': 'linux',
            'kernel': containers.MEDIA_DIR + '/vmlinuz', 'initrd': containers.MEDIA_DIR + '/initrd.img',
            'cmdline': containers.TINY_CMDLINE, 'serial': '/vm-images/%s-serial.log' % name,
            'disks': [{'path': '/vm-images/%s.img' % name, 'size': 1, 'format': 'raw'}],
            'networks': [], 'graphics': {'type': 'none'}}
    args.update(extra)
    return args


@pytest.mark.parametrize('backend,port', [('passt', 2231), ('qemu', 2232)])
def test_guest_with_port_forwards_create_rerun_remove(trixie, backend, port):
    name, inventory = trixie
    guest = 'fwd-' + backend
    args = _guest(guest, port_forwards=[{'host_port': port, 'guest_port': 22}],
                  port_forward_backend=backend)

    def mod(check=False, **over):
        a = dict(args, **over)
        return run_module('virt_install_domain', a, check=check, diff=True, host=name,
                          inventory=inventory, timeout=600)

    res = mod(check=True)
    assert res.get('changed') and not res.get('failed'), res
    assert sh(name, 'virsh', 'dominfo', guest).returncode != 0   # check mode defined nothing
    try:
        res = mod()
        assert res.get('changed') and not res.get('failed'), res
        try:
            wait_in(name, ['grep', '-q', 'KVMOPS-TINY-GUEST BOOTED', '/vm-images/%s-serial.log' % guest], 300)
        except AssertionError as e:
            raise AssertionError('%s\nstate: %s\nserial: %s\nlog: %s' % (
                e, sh(name, 'virsh', 'domstate', '--reason', guest).stdout,
                sh(name, 'tail', '-c', '1500', '/vm-images/%s-serial.log' % guest).stdout,
                sh(name, 'tail', '-c', '1500', '/var/log/libvirt/qemu/%s.log' % guest).stdout))
        xml = sh(name, 'virsh', 'dumpxml', '--inactive', guest).stdout
        if backend == 'passt':
            assert "<backend type='passt'/>" in xml and "start='%d'" % port in xml, xml
            # passt re-executes its AVX2 build (passt.avx2) where the CPU has it: match by name
            assert sh(name, 'pgrep', 'passt').returncode == 0
            # passt listens on the forward inside the container
            wait_in(name, ['sh', '-c', 'ss -Hltn | grep -q "127.0.0.1:%d "' % port], 30)
        else:
            assert 'hostfwd=tcp:127.0.0.1:%d-:22' % port in xml, xml
            wait_in(name, ['sh', '-c', 'ss -Hltn | grep -q "127.0.0.1:%d "' % port], 30)
        for check in (False, True):   # libvirt 11's normalised XML must not look like a drift
            res = mod(check=check)
            assert not res.get('changed') and not res.get('failed'), (check, res.get('diff'), res)
    finally:
        res = mod(state='absent', remove_storage=True)
    assert not res.get('failed'), res
    assert sh(name, 'virsh', 'dominfo', guest).returncode != 0
    assert sh(name, 'test', '-e', '/vm-images/%s.img' % guest).returncode != 0
    res = mod(state='absent', remove_storage=True)
    assert not res.get('changed') and not res.get('failed'), res


def test_network_create_rerun_remove(trixie):
    name, inventory = trixie
    net = {'name': 'kvmops-t-lab', 'forward': 'nat', 'bridge': 'virbr-klab',
           'ipv4': {'address': '10.213.9.1', 'prefix': 24,
                    'dhcp_ranges': [{'start': '10.213.9.100', 'end': '10.213.9.199'}]},
           'autostart': True}

    def mod(check=False, **over):
        return run_module('virt_network', dict(net, **over), check=check, diff=True, host=name,
                          inventory=inventory)

    res = mod(check=True)
    assert res.get('changed') and not res.get('failed'), res
    assert sh(name, 'virsh', 'net-info', net['name']).returncode != 0
    try:
        res = mod()
        assert res.get('changed') and not res.get('failed'), res
        info = sh(name, 'virsh', 'net-info', net['name']).stdout
        assert 'Active:' in info and 'yes' in info.split('Active:')[1].split('\n')[0], info
        for check in (False, True):
            res = mod(check=check)
            assert not res.get('changed') and not res.get('failed'), (check, res)
    finally:
        res = mod(state='absent')
    assert not res.get('failed'), res
    assert sh(name, 'virsh', 'net-info', net['name']).returncode != 0


def test_snapshot_create_rerun_remove(trixie):
    """On the site play's guest (kept running): an external-free internal snapshot needs qcow2,
    so the snapshot is taken of a small qcow2 guest made here."""
    name, inventory = trixie
    guest = 'snap1'
    gargs = _guest(guest, disks=[{'path': '/vm-images/snap1.qcow2', 'size': 1, 'format': 'qcow2'}])
    res = run_module('virt_install_domain', gargs, host=name, inventory=inventory)
    assert not res.get('failed'), res
    try:
        snap = {'domain': guest, 'name': 'before'}
        res = run_module('virt_snapshot', snap, check=True, host=name, inventory=inventory)
        assert res.get('changed') and not res.get('failed'), res
        res = run_module('virt_snapshot', snap, host=name, inventory=inventory)
        assert res.get('changed') and not res.get('failed'), res
        assert 'before' in sh(name, 'virsh', 'snapshot-list', guest, '--name').stdout
        res = run_module('virt_snapshot', snap, host=name, inventory=inventory)
        assert not res.get('changed') and not res.get('failed'), res
        res = run_module('virt_snapshot', dict(snap, state='absent'), host=name, inventory=inventory)
        assert res.get('changed') and not res.get('failed'), res
        assert 'before' not in sh(name, 'virsh', 'snapshot-list', guest, '--name').stdout
    finally:
        run_module('virt_install_domain', dict(gargs, state='absent', remove_storage=True),
                   host=name, inventory=inventory)
