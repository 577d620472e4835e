"""virt_install_domain install sources (issue 5) against the real libvirtd.

The tiny guest plays the installer: booted with kvmops.installer=1 it prints its kernel
command line, writes KVMOPS-INSTALLED onto its first disk and powers off, which ends the
install phase. The "installed" disk then holds only that marker (no boot loader): the final
configuration is checked to be running, from the disk, with the marker on it; nothing here
pretends that an operating system booted from it.

Install trees are served over HTTP by a server on 127.0.0.1 in a thread of this process,
which counts every request, so "a re-run fetches nothing" is measured, not assumed.
Verification goes through libvirt-python, the disk files and the serial log, not the module.
"""
import json
import os
import subprocess
import threading
import time

import libvirt
import pytest
from lxml import etree

from support.ansible_run import run_module
from support.http_server import TreeServer
from support.libvirt_helpers import wait_for_state

TREES = '/var/cache/kvmops-testbed/tiny/trees'
NS = 'urn:kvmops:hypervisor:install:1'
INSTALLER_ARGS = 'console=tty0 console=ttyS0,115200 kvmops.installer=1'


# ------------------------------------------------------------------------------ fixtures

@pytest.fixture(scope='module')
def tree_server(tiny):
    srv = TreeServer(TREES)
    yield srv
    srv.close()


class SerialRecorder(object):
    """Keeps everything a file-backed serial console ever held: libvirt truncates the log
    when the final configuration starts, after the installer wrote to it."""

    def __init__(self, path):
        self.path = path
        self.chunks = []
        self._pos = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _poll(self):
        try:
            size = os.path.getsize(self.path)
        except OSError:
            return
        if size < self._pos:
            self._pos = 0
            self.chunks.append('\n--- truncated ---\n')
        if size > self._pos:
            with open(self.path, 'r', errors='replace') as f:
                f.seek(self._pos)
                data = f.read()
            self._pos += len(data.encode('utf-8', 'replace'))
            self.chunks.append(data)

    def _run(self):
        while not self._stop.is_set():
            self._poll()
            time.sleep(0.05)

    def text(self):
        self._poll()
        return ''.join(self.chunks)

    def stop(self):
        self._stop.set()
        self._thread.join()
        self._poll()


@pytest.fixture
def recorders():
    started = []

    def start(path):
        r = SerialRecorder(path)
        started.append(r)
        return r
    yield start
    for r in started:
        r.stop()


def guest_args(prefix, image_dir, short, install, **extra):
    install = dict(install)
    wait = install.pop('wait', None)
    name = prefix + short
    args = {
        'name': name, 'memory': 256, 'virt_type': 'qemu', 'os_variant': 'linux',
        'disks': [{'path': os.path.join(image_dir, short + '.img'), 'size': 0.02}],
        'networks': [], 'graphics': {'type': 'none'},
        'serial': os.path.join(image_dir, short + '.log'),
        'install': dict({'cache_dir': os.path.join(image_dir, 'cache')}, **install),
    }
    if wait is not None:
        args['wait'] = wait
    args.update(extra)
    return args


def lookup(conn, name):
    try:
        return conn.lookupByName(name)
    except libvirt.libvirtError:
        return None


def inactive(dom):
    return etree.fromstring(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE).encode())


def live(dom):
    return etree.fromstring(dom.XMLDesc(0).encode())


def record(tree):
    el = tree.find('metadata/{%s}install' % NS)
    return dict(el.attrib) if el is not None else None


def marker(path):
    with open(path, 'rb') as f:
        return f.read(64)


def ok(res):
    assert not res.get('failed'), res.get('msg')
    return res


def assert_final_running_from_disk(conn, name, disk):
    dom = lookup(conn, name)
    assert dom.state()[0] == libvirt.VIR_DOMAIN_RUNNING
    cur = live(dom)
    # The running configuration is the final one: no installer kernel, boots the disk.
    assert cur.find('os/kernel') is None
    assert [b.get('dev') for b in cur.findall('os/boot')] == ['hd']
    assert cur.findtext('on_reboot') == 'restart'
    assert marker(disk).startswith(b'KVMOPS-INSTALLED ')
    return dom


def check_rerun_unchanged(args, server=None):
    before = len(server.requests) if server else None
    again = ok(run_module('virt_install_domain', args, check=True))
    assert not again['changed'] and again['install_phase'] == 'completed', again['actions']
    again = ok(run_module('virt_install_domain', args))
    assert not again['changed'] and again['install_phase'] == 'completed', again['actions']
    if server:
        assert len(server.requests) == before, server.requests[before:]
    return again


# ------------------------------------------------------------------------------ location

def test_location_rhel_tree_over_http(conn, prefix, image_dir, tree_server, recorders):
    args = guest_args(prefix, image_dir, 'rhel', {
        'location': tree_server.url + 'rhel/', 'extra_args': INSTALLER_ARGS + ' kvmops.t=rhel',
        'wait': -1})
    name = args['name']
    disk = args['disks'][0]['path']
    cache = os.path.join(image_dir, 'cache')

    # Check mode: nothing fetched, created or defined.
    before = len(tree_server.requests)
    res = ok(run_module('virt_install_domain', args, check=True))
    assert res['changed'] and res['install_phase'] == 'started'
    assert 'would start the installer' in res['actions'] and res['install']['fetched']
    assert len(tree_server.requests) == before and not os.path.exists(cache)
    assert lookup(conn, name) is None and not os.path.exists(disk)

    rec = recorders(args['serial'])
    res = ok(run_module('virt_install_domain', args))
    assert res['changed'] and res['install_phase'] == 'completed', res['actions']
    assert res['install']['layout'] == 'redhat' and res['install']['fetched']
    assert res['actions'][-3:] == ['started the installer', 'install phase completed', 'started']
    fetched = tree_server.requests[before:]
    assert fetched == ['/rhel/.treeinfo', '/rhel/images/pxeboot/vmlinuz',
                       '/rhel/images/pxeboot/initrd.img']

    console = rec.text()
    assert 'KVMOPS-CMDLINE: %s kvmops.t=rhel' % INSTALLER_ARGS in console
    assert 'KVMOPS-INSTALL-DONE /dev/vda' in console
    dom = assert_final_running_from_disk(conn, name, disk)
    final = inactive(dom)
    assert final.find('os/kernel') is None
    assert record(final)['state'] == 'completed' and record(final)['source'] == 'location'
    # The cache holds exactly what the tree holds.
    with open(os.path.join(TREES, 'rhel/images/pxeboot/vmlinuz'), 'rb') as f:
        assert open(res['install']['kernel'], 'rb').read() == f.read()

    check_rerun_unchanged(args, tree_server)

    gone = ok(run_module('virt_install_domain', dict(args, state='absent')))
    assert gone['changed'] and lookup(conn, name) is None
    assert os.path.exists(disk)


def test_location_debian_tree_over_http(conn, prefix, image_dir, tree_server, recorders):
    # The Debian tree's root is the installer-<arch>/ level (current/images/... below it).
    args = guest_args(prefix, image_dir, 'deb', {
        'location': tree_server.url + 'debian', 'extra_args': INSTALLER_ARGS + ' kvmops.t=deb',
        'wait': 300})
    before = len(tree_server.requests)
    rec = recorders(args['serial'])
    res = ok(run_module('virt_install_domain', args))
    assert res['install_phase'] == 'completed' and res['install']['layout'] == 'debian'
    fetched = tree_server.requests[before:]
    assert '/debian/current/images/netboot/debian-installer/amd64/linux' in fetched
    assert '/debian/current/images/netboot/debian-installer/amd64/initrd.gz' in fetched
    assert 'KVMOPS-CMDLINE: %s kvmops.t=deb' % INSTALLER_ARGS in rec.text()
    dom = assert_final_running_from_disk(conn, args['name'], args['disks'][0]['path'])
    check_rerun_unchanged(args, tree_server)
    # A later change of the definition keeps the install record: still no second install.
    res = ok(run_module('virt_install_domain', dict(args, memory=320)))
    assert res['changed'] and res['restart_required'] and res['install_phase'] == 'completed'
    assert 'started the installer' not in res['actions'] and not res.get('warnings')
    assert record(inactive(dom))['state'] == 'completed'


def test_location_local_directory_with_kickstart(conn, prefix, image_dir, recorders):
    token = os.path.basename(image_dir)[-6:]
    secret = 'Kvm0ps-Pw-%s' % token
    ks = os.path.join(image_dir, 'ks.cfg')
    with open(ks, 'w') as f:
        f.write('# KVMOPS-KS-%s unattended\nrootpw --plaintext %s\n' % (token, secret))
    args = guest_args(prefix, image_dir, 'dir', {
        'location': os.path.join(TREES, 'rhel'), 'extra_args': INSTALLER_ARGS,
        'kickstart': ks, 'wait': -1})
    rec = recorders(args['serial'])
    res = ok(run_module('virt_install_domain', args))
    assert res['install_phase'] == 'completed'
    assert res['install']['injected_as'] == '/ks.cfg'
    assert res['install']['cmdline'] == INSTALLER_ARGS + ' inst.ks=file:/ks.cfg'
    console = rec.text()
    # The installer saw the injected file at the root of its initramfs.
    assert 'KVMOPS-KS: /ks.cfg: # KVMOPS-KS-%s unattended' % token in console
    assert 'KVMOPS-CMDLINE: %s inst.ks=file:/ks.cfg' % INSTALLER_ARGS in console
    # The password never shows up in results or Ansible's output.
    assert secret not in json.dumps(res)
    # The injected copy (the only file holding the secret) is gone; the plain initrd stays.
    cache_dir = res['install']['cache']
    assert sorted(os.listdir(cache_dir)) == ['initrd', 'kernel', 'manifest.json']
    assert_final_running_from_disk(conn, args['name'], args['disks'][0]['path'])
    again = check_rerun_unchanged(args)
    assert secret not in json.dumps(again)


def test_location_iso_holding_a_tree_nobody_waits(conn, prefix, image_dir, tiny, recorders):
    args = guest_args(prefix, image_dir, 'iso', {
        'location': tiny['tree_iso'], 'extra_args': INSTALLER_ARGS})
    name = args['name']
    rec = recorders(args['serial'])
    res = ok(run_module('virt_install_domain', args))
    assert res['changed'] and res['install_phase'] == 'started'
    assert res['install']['layout'] == 'redhat'
    dom = lookup(conn, name)
    # While the installer runs: direct kernel boot from the cache, the ISO attached as a CD,
    # on_reboot=destroy; the persistent definition is already the final one.
    cur = live(dom)
    assert dom.isActive()
    assert cur.findtext('os/kernel') == res['install']['kernel']
    assert cur.findtext('on_reboot') == 'destroy'
    cds = cur.findall("devices/disk[@device='cdrom']/source")
    assert [c.get('file') for c in cds] == [tiny['tree_iso']]
    final = inactive(dom)
    assert final.find('os/kernel') is None and final.find("devices/disk[@device='cdrom']") is None
    assert record(final)['state'] == 'started'

    # A re-run while the installer runs changes nothing; with a short wait it times out
    # (a warning, not a failure). The installer then ends on its own.
    during = ok(run_module('virt_install_domain', dict(args, wait=1)))
    assert not during['changed'] and during['install_phase'] == 'timed_out', during['actions']
    assert any('still running after wait=1' in w for w in during.get('warnings', []))
    wait_for_state(dom, libvirt.VIR_DOMAIN_SHUTOFF, timeout=120)
    assert 'KVMOPS-INSTALL-DONE /dev/vda' in rec.text()
    # The next run sees the ended install phase and starts the final configuration.
    res = ok(run_module('virt_install_domain', args))
    assert res['changed'] and res['install_phase'] == 'completed'
    assert res['actions'] == ['install phase completed', 'started']
    assert_final_running_from_disk(conn, name, args['disks'][0]['path'])
    check_rerun_unchanged(args)


# ------------------------------------------------------------------------------ cdrom

def test_cdrom_install_then_the_cd_is_gone(conn, prefix, image_dir, tiny, recorders):
    args = guest_args(prefix, image_dir, 'cd', {'cdrom': tiny['iso'], 'wait': -1})
    rec = recorders(args['serial'])
    res = ok(run_module('virt_install_domain', args))
    assert res['install_phase'] == 'completed', res['actions']
    console = rec.text()
    assert 'kvmops.from=iso kvmops.installer=1' in console        # booted the CD (isolinux)
    assert 'KVMOPS-INSTALL-DONE /dev/vda' in console
    dom = assert_final_running_from_disk(conn, args['name'], args['disks'][0]['path'])
    for tree in (inactive(dom), live(dom)):
        assert tree.find("devices/disk[@device='cdrom']") is None
        assert 'cdrom' not in [b.get('dev') for b in tree.findall('os/boot')]
    check_rerun_unchanged(args)


# ------------------------------------------------------------------------------ import

def test_import_existing_image(conn, prefix, image_dir, tree_server):
    image = os.path.join(image_dir, 'imported.img')
    with open(image, 'wb') as f:
        f.write(b'KVMOPS-IMPORTED-IMAGE\n')
        f.truncate(20 * 1024 * 1024)
    args = guest_args(prefix, image_dir, 'imp', {'import': True})
    args['disks'] = [{'path': image}]
    before = len(tree_server.requests)
    res = ok(run_module('virt_install_domain', args, check=True))
    assert res['changed'] and res['install_phase'] == 'none'
    assert lookup(conn, args['name']) is None

    res = ok(run_module('virt_install_domain', args))
    assert res['changed'] and res['install_phase'] == 'none'
    assert 'started' in res['actions'] and 'started the installer' not in res['actions']
    dom = lookup(conn, args['name'])
    assert dom.state()[0] == libvirt.VIR_DOMAIN_RUNNING
    assert live(dom).find('os/kernel') is None
    assert record(inactive(dom)) is None
    disks = live(dom).findall("devices/disk[@device='disk']/source")
    assert [d.get('file') for d in disks] == [image]
    assert marker(image).startswith(b'KVMOPS-IMPORTED-IMAGE')   # never overwritten

    for check in (True, False):
        again = ok(run_module('virt_install_domain', args, check=check))
        assert not again['changed'], again['actions']
    assert len(tree_server.requests) == before
    assert marker(image).startswith(b'KVMOPS-IMPORTED-IMAGE')


def test_import_of_a_missing_image_creates_nothing(conn, prefix, image_dir):
    args = guest_args(prefix, image_dir, 'nop', {'import': True})
    res = run_module('virt_install_domain', args)
    assert res.get('failed') and 'does not exist' in res['msg'] and 'import' in res['msg']
    assert lookup(conn, args['name']) is None
    assert not os.path.exists(args['disks'][0]['path'])


# ------------------------------------------------------------------------------ Windows

def test_windows_2012_from_cdrom_define_only(conn, prefix, image_dir):
    """The guide's Windows command (cdrom + VNC + windows) with state=present: no Windows
    media exists here, so this checks the definition, not an install."""
    iso = os.path.join(image_dir, 'win2012.iso')
    src = os.path.join(image_dir, 'isosrc')
    os.makedirs(src)
    with open(os.path.join(src, 'setup.exe'), 'w') as f:
        f.write('not really\n')
    subprocess.check_call(['xorriso', '-as', 'mkisofs', '-quiet', '-o', iso, '-V', 'WIN2012',
                           src], stderr=subprocess.DEVNULL)
    name = prefix + 'windows1'
    args = {
        'name': name, 'state': 'present', 'memory': '2GiB', 'vcpus': 2, 'virt_type': 'qemu',
        'os_variant': 'windows',
        'disks': [{'path': os.path.join(image_dir, 'windows1.img'), 'size': 40}],
        'networks': [{'network': 'default'}],
        'graphics': {'type': 'vnc', 'listen': '127.0.0.1'},
        'install': {'cdrom': iso},
    }
    res = ok(run_module('virt_install_domain', args, check=True))
    assert res['changed'] and res['install_phase'] == 'pending' and lookup(conn, name) is None

    res = ok(run_module('virt_install_domain', args))
    assert res['changed'] and res['install_phase'] == 'pending'
    dom = lookup(conn, name)
    assert dom.state()[0] == libvirt.VIR_DOMAIN_SHUTOFF
    x = inactive(dom)
    assert x.find("devices/disk[@device='disk']/target").get('bus') == 'sata'
    assert x.find('devices/interface/model').get('type') == 'e1000e'
    assert x.find('clock').get('offset') == 'localtime'
    assert x.find("devices/input[@type='tablet']").get('bus') == 'usb'
    g = x.find('devices/graphics')
    assert g.get('type') == 'vnc' and g.find('listen').get('address') == '127.0.0.1'
    # The install CD is not part of the final definition; the install is pending.
    assert x.find("devices/disk[@device='cdrom']") is None
    assert [b.get('dev') for b in x.findall('os/boot')] == ['hd']
    assert record(x) == {'state': 'pending', 'source': 'cdrom'}
    assert os.path.getsize(args['disks'][0]['path']) == 40 * 1024 ** 3   # sparse raw

    for check in (True, False):
        again = ok(run_module('virt_install_domain', args, check=check))
        assert not again['changed'] and again['install_phase'] == 'pending', again['actions']


# ------------------------------------------------------------------------------ pxe

def test_pxe_boots_the_network_first_only_while_installing(conn, prefix, image_dir):
    if not conn.networkLookupByName('default').isActive():
        pytest.skip("libvirt's default network is not active")
    args = guest_args(prefix, image_dir, 'pxe', {'pxe': True},
                      networks=[{'network': 'default'}])
    res = ok(run_module('virt_install_domain', args))
    assert res['install_phase'] == 'started'
    dom = lookup(conn, args['name'])
    assert [b.get('dev') for b in live(dom).findall('os/boot')] == ['network', 'hd']
    assert live(dom).findtext('on_reboot') == 'destroy'
    assert [b.get('dev') for b in inactive(dom).findall('os/boot')] == ['hd']
    again = ok(run_module('virt_install_domain', args))
    assert not again['changed'] and again['install_phase'] == 'started'
    gone = ok(run_module('virt_install_domain', dict(args, state='absent')))
    assert gone['changed'] and lookup(conn, args['name']) is None


# ------------------------------------------------------------------------------ bad input

def test_bad_install_input_fails_before_anything_exists(conn, prefix, image_dir, tree_server):
    base = guest_args(prefix, image_dir, 'bad', {})
    disk = base['disks'][0]['path']

    def fails(install, *words):
        args = dict(base, install=dict(base['install'], **install))
        res = run_module('virt_install_domain', args)
        assert res.get('failed'), res
        for w in words:
            assert w in res['msg'], res['msg']
        assert lookup(conn, base['name']) is None and not os.path.exists(disk)
        return res

    fails({'cdrom': '/nonexistent/x.iso', 'pxe': True}, 'exactly one source')
    fails({'cdrom': os.path.join(TREES, 'rhel/.treeinfo'), 'extra_args': 'x'},
          'install.extra_args works only with install.location')
    res = fails({'location': tree_server.url + 'nothing-here/'},
                tree_server.url + 'nothing-here/images/pxeboot/vmlinuz (HTTP 404)',
                tree_server.url + 'nothing-here/boot/x86_64/loader/linux (HTTP 404)')
    assert 'Paths tried' in res['msg']
    fails({'location': os.path.join(TREES, 'rhel'), 'kickstart': '/nonexistent/ks.cfg'},
          '/nonexistent/ks.cfg')
