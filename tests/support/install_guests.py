"""What the install-phase integration tests share (virt_install_domain with install:): the
tiny guest playing the installer, a recorder of its serial console, the checks of the final
configuration after the install phase. The fixtures tree_server and recorders are in
tests/integration/conftest.py."""
import os
import threading
import time

import libvirt
from lxml import etree

from .ansible_run import run_module
from .libvirt_helpers import lookup_domain as lookup

TREES = '/var/cache/kvmops-testbed/tiny/trees'
NS = 'urn:kvmops:hypervisor:install:1'
INSTALLER_ARGS = 'console=tty0 console=ttyS0,115200 kvmops.installer=1'


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
