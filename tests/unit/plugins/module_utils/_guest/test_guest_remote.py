"""Issue 26, "What a remote URI means": a guest through another host's libvirt. The decisions
(pure) and GuestManager runs against libvirt's in-process test driver, whose connection is
wrapped to report a remote URI (the real remote daemon is in tests/migration/
test_remote_uri.py). File work is refused before anything is made, check mode too; pool
volumes keep working."""
import hashlib
import os
import shutil
import tempfile
import uuid

import pytest

libvirt = pytest.importorskip('libvirt')

from ansible_collections.kvmops.hypervisor.plugins.module_utils._guest import manager as M  # noqa: E402
from ansible_collections.kvmops.hypervisor.plugins.module_utils._guest import host as H  # noqa: E402
from ansible_collections.kvmops.hypervisor.plugins.module_utils._guest import remote as R  # noqa: E402
from ansible_collections.kvmops.hypervisor.plugins.module_utils._guest import argspec as A  # noqa: E402
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt import locality  # noqa: E402
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt import xml as lxml_util  # noqa: E402

REMOTE_URI = 'qemu+tcp://10.88.0.5/system'
POOL = 'default-pool'   # the test driver's pool


class RemoteConn(object):
    """The test driver's connection, reporting another host's URI."""

    def __init__(self, conn, uri=REMOTE_URI):
        self._conn, self._uri = conn, uri

    def getURI(self):
        return self._uri

    def __getattr__(self, name):
        return getattr(self._conn, name)


@pytest.fixture
def conn(monkeypatch):
    libvirt.registerErrorHandler(lambda ctx, err: None, None)
    monkeypatch.setattr(H, 'decide_virt_type', lambda spec, conn, caps=None: {
        'requested': spec.get('virt_type'), 'domain_type': 'test', 'reasons': ['stub']})
    c = libvirt.open('test:///default')
    yield c
    c.close()


@pytest.fixture
def workdir():
    d = tempfile.mkdtemp(prefix='kvmops-remote-')
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d)


@pytest.fixture
def name(conn):
    n = 'kvmops-unit-remote-' + uuid.uuid4().hex[:8]
    yield n
    try:
        dom = conn.lookupByName(n)
        if dom.isActive():
            dom.destroy()
        dom.undefine()
    except libvirt.libvirtError:
        pass


def run(conn, params, check=False):
    mgr = M.GuestManager(conn, A.normalize(params), check_mode=check)
    return mgr.run()


def guest(name, disks, **extra):
    p = dict(name=name, memory=256, vcpus=1, networks=[], graphics={'type': 'none'},
             disks=disks, state='stopped')
    p.update(extra)
    return p


def digest(path):
    with open(path, 'rb') as f:
        return hashlib.sha256(f.read()).hexdigest()


# ------------------------------------------------------------------ decisions (pure)
def spec(**params):
    base = dict(name='g', memory=256, vcpus=1, networks=[], graphics={'type': 'none'})
    base.update(params)
    return A.normalize(base)


def options(needs):
    return [opt for opt, dummy in needs]


def test_pool_volume_guest_needs_no_local_file():
    assert R.present_needs(spec(disks=[{'pool': POOL, 'volume': 'v.img', 'size': 1}])) == []


def test_each_option_that_needs_local_files_is_named():
    s = spec(disks=[{'path': '/vm/a.qcow2', 'size': 1},
                    {'pool': POOL, 'volume': 'b', 'backing_store': '/vm/base.qcow2'},
                    {'path': '/iso/x.iso', 'device': 'cdrom'}],
             kernel='/boot/k', initrd='/boot/i', serial='/var/log/libvirt/qemu/g.log',
             graphics={'type': 'vnc', 'listen': '0.0.0.0', 'allow_insecure': True})
    got = options(R.present_needs(s, install={'source': 'location'}))
    assert got == ['kernel', 'initrd', 'disks[0].path', 'disks[1].backing_store',
                   'disks[2].path', 'serial', 'graphics.listen', 'install.location']


def test_loopback_console_pty_serial_pxe_import_need_nothing():
    s = spec(disks=[{'pool': POOL, 'volume': 'v', 'size': 1}],
             graphics={'type': 'vnc', 'listen': '127.0.0.1'})
    assert R.present_needs(s, install={'source': 'pxe'}) == []
    assert R.present_needs(s, install={'source': 'import'}) == []


def test_cloud_seed_and_base_image_are_named_by_their_options():
    s = spec(disks=[{'path': '/vm/c.qcow2'}, {'path': '/seed/g.iso', 'device': 'cdrom'}])
    cloud = {'seed_iso': '/seed/g.iso', 'cloud_init': {'x': 1},
             'bases': [{'index': 0}], 'seed_directory': '/seed'}
    assert options(R.present_needs(s, cloud=cloud)) == ['disks[0].base_image', 'cloud_init']


def test_clone_and_template_are_refused_options():
    s = spec(disks=[{'pool': POOL, 'volume': 'v', 'size': 1}])
    s['clone_from'] = {'name': 'tpl', 'mode': 'full'}
    s['template'] = True
    assert options(R.present_needs(s)) == ['clone_from', 'template']


DOMAIN = """<domain type='test'><name>g</name><memory>65536</memory><os><type>hvm</type></os>
<metadata><kvmops:guest xmlns:kvmops='urn:kvmops:hypervisor:guest:1'>%s</kvmops:guest></metadata>
<devices>
<disk type='file' device='disk'><source file='/vm/a.qcow2'/><target dev='vda'/></disk>
<disk type='file' device='disk'><source file='/vm/shared.img'/><shareable/><target dev='vdb'/></disk>
<disk type='volume' device='disk'><source pool='p' volume='v'/><target dev='vdc'/></disk>
<disk type='file' device='cdrom'><source file='/iso/x.iso'/><target dev='sda'/></disk>
</devices></domain>"""


def test_absent_needs_only_with_remove_storage_and_only_files():
    tree = lxml_util.parse(DOMAIN % '')
    assert R.absent_needs({'remove_storage': False}, tree) == []
    assert R.absent_needs({'remove_storage': True}, None) == []
    needs = R.absent_needs({'remove_storage': True}, tree)
    assert [w for dummy, w in needs] == ['deletes the file disk /vm/a.qcow2']
    volumes_only = lxml_util.parse(DOMAIN.replace(
        "<disk type='file' device='disk'><source file='/vm/a.qcow2'/><target dev='vda'/></disk>", '')
        % '')
    assert R.absent_needs({'remove_storage': True}, volumes_only) == []


# ------------------------------------------------------------------ GuestManager runs
@pytest.mark.parametrize('check', [True, False])
def test_file_disk_through_remote_uri_is_refused_before_anything(conn, name, workdir, check):
    path = os.path.join(workdir, 'new.qcow2')
    with pytest.raises(locality.RemoteUriError) as exc:
        run(RemoteConn(conn), guest(name, [{'path': path, 'size': 1}]), check=check)
    msg = str(exc.value)
    assert 'disks[0].path' in msg and REMOTE_URI in msg and 'delegate_to' in msg
    assert not os.path.exists(path) and os.listdir(workdir) == []
    with pytest.raises(libvirt.libvirtError):
        conn.lookupByName(name)


def test_serial_log_through_remote_uri_is_refused(conn, name, workdir):
    log = '/var/log/libvirt/qemu/%s-serial.log' % name
    with pytest.raises(locality.RemoteUriError) as exc:
        run(RemoteConn(conn), guest(name, [{'pool': POOL, 'volume': name + '.img', 'size': 1}],
                                    serial=log), check=True)
    assert 'serial' in str(exc.value)
    assert not os.path.exists(log)


def test_pool_volume_guest_through_remote_uri_works(conn, name):
    params = guest(name, [{'pool': POOL, 'volume': name + '.img', 'size': 1}])
    remote = RemoteConn(conn)
    assert run(remote, params, check=True)['changed']
    with pytest.raises(libvirt.libvirtError):
        conn.lookupByName(name)
    assert run(remote, params)['changed']
    assert conn.storagePoolLookupByName(POOL).storageVolLookupByName(name + '.img')
    assert not run(remote, params)['changed']
    res = run(remote, {'name': name, 'state': 'absent', 'remove_storage': True})
    assert res['changed'] and res['removed_storage'] == ['%s/%s.img' % (POOL, name)]
    assert name + '.img' not in conn.storagePoolLookupByName(POOL).listVolumes()


@pytest.mark.parametrize('check', [True, False])
def test_remove_storage_of_a_file_disk_through_remote_uri_keeps_the_local_file(
        conn, name, workdir, check):
    """The local file with the remote disk's path (here: the same test driver, so the same
    path) stays byte for byte, and the domain stays defined."""
    path = os.path.join(workdir, 'disk.img')
    with open(path, 'wb') as f:
        f.write(b'SENTINEL' * 512)
    run(conn, guest(name, [{'path': path, 'format': 'raw'}]))     # defined locally
    before = digest(path)
    with pytest.raises(locality.RemoteUriError) as exc:
        run(RemoteConn(conn), {'name': name, 'state': 'absent', 'remove_storage': True}, check=check)
    msg = str(exc.value)
    assert 'remove_storage deletes the file disk %s' % path in msg
    assert 'remove_storage: false' in msg
    assert digest(path) == before
    assert conn.lookupByName(name)
    # Without remove_storage the domain goes through the remote URI and the file stays.
    assert run(RemoteConn(conn), {'name': name, 'state': 'absent'})['changed']
    assert digest(path) == before
