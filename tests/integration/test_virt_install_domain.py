"""virt_install_domain against the real libvirtd (QEMU/TCG), the community.libvirt way:
check mode, real, check mode again, independent verification (libvirt-python, files),
re-run unchanged, drift, absent. Only two tests boot a guest (the lifecycle and UEFI)."""
import json
import os
import stat
import tempfile

import libvirt
import pytest

from support.ansible_run import run_module, run_playbook
from support.libvirt_helpers import wait_for_text

GIB = 1024 ** 3
PASSWORD = 'kvm0pS3c'  # VNC: at most 8 bytes


def vid(args, check=False, diff=False):
    return run_module('virt_install_domain', args, check=check, diff=diff)


def lookup(conn, name):
    try:
        return conn.lookupByName(name)
    except libvirt.libvirtError:
        return None


def tiny_args(prefix, image_dir, tiny, **extra):
    args = dict(name=prefix + 'vm', memory='256MiB', vcpus=1, virt_type='auto',
                os_variant='linux', kernel=tiny['kernel'], initrd=tiny['initrd'],
                cmdline='console=ttyS0', serial=os.path.join(image_dir, 'console.log'),
                networks=[], disks=[{'path': os.path.join(image_dir, 'root.img'), 'size': 100}],
                graphics={'type': 'vnc', 'listen': '127.0.0.1', 'password': PASSWORD})
    args.update(extra)
    return args


def assert_ok(res):
    assert not res.get('failed'), res.get('msg', res)
    return res


def test_tiny_guest_lifecycle_drift_and_absent(conn, prefix, image_dir, tiny):
    name = prefix + 'vm'
    args = tiny_args(prefix, image_dir, tiny)
    disk = os.path.join(image_dir, 'root.img')
    log = os.path.join(image_dir, 'console.log')

    # check mode on a clean host: changed, and NOTHING exists afterwards
    res = assert_ok(vid(args, check=True, diff=True))
    assert res['changed'] and res['uuid'] is None
    assert lookup(conn, name) is None
    assert os.listdir(image_dir) == []
    assert PASSWORD not in repr(res)
    assert "type=\"qemu\"" in res['diff']['after']  # auto chose emulation on this host

    # real run: 100 GiB sparse raw disk, defined, started, guest boots from the kernel
    res = assert_ok(vid(args))
    assert res['changed'] and res['state'] == 'running'
    assert res['virt_type']['domain_type'] == 'qemu' and res['virt_type']['reasons']
    assert os.path.getsize(disk) == 100 * GIB and os.stat(disk).st_blocks * 512 < 1024 ** 2
    console = wait_for_text(log, 'KVMOPS-READY', timeout=90)
    assert 'KVMOPS-CMDLINE: console=ttyS0' in console
    dom = conn.lookupByName(name)
    assert dom.isActive() and res['uuid'] == dom.UUIDString()
    assert res['serial'] == log
    assert res['vnc']['listen'] == '127.0.0.1' and res['vnc']['port'] >= 5900
    assert res['vnc']['display'] == ':%d' % (res['vnc']['port'] - 5900)
    assert PASSWORD not in repr(res) and PASSWORD not in res['_stderr']
    # independent: libvirt's own view; the password reached QEMU without its command line
    live = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_SECURE)
    assert "type='qemu'" in live and PASSWORD in live
    pid = open('/run/libvirt/qemu/%s.pid' % name).read().strip()
    assert PASSWORD.encode() not in open('/proc/%s/cmdline' % pid, 'rb').read()
    mac_before = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)

    # check mode again and a real re-run: unchanged, nothing churned
    assert not assert_ok(vid(args, check=True))['changed']
    res = assert_ok(vid(args))
    assert not res['changed'] and res['differences'] == []
    assert dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE) == mac_before

    # a new console password is applied live (libvirt can): no restart needed
    other = dict(args, graphics=dict(args['graphics'], password='n3wPass!'))
    res = assert_ok(vid(other, diff=True))
    assert res['changed'] and not res['restart_required']
    assert 'console password changed live' in res['actions']
    assert 'n3wPass!' not in repr(res) and PASSWORD not in repr(res)
    assert "passwd='n3wPass!'" in dom.XMLDesc(libvirt.VIR_DOMAIN_XML_SECURE)
    assert not assert_ok(vid(other))['changed']
    args = other
    mac_before = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)

    # drift: memory and vCPUs changed; check+diff reports without applying
    bigger = dict(args, memory=384, vcpus=2)
    res = assert_ok(vid(bigger, check=True, diff=True))
    assert res['changed'] and res['restart_required']
    assert sorted(d['item'] for d in res['differences']) == ['memory', 'vcpus']
    assert '262144' in res['diff']['before'] and '393216' in res['diff']['after']
    assert '<disk' not in res['diff']['before']
    assert dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE) == mac_before

    # real: the persistent definition changes, the running guest does not
    res = assert_ok(vid(bigger))
    assert res['changed'] and res['restart_required']
    inactive = conn.lookupByName(name).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
    assert "<memory unit='KiB'>393216</memory>" in inactive
    assert "<vcpu placement='static'>2</vcpu>" in inactive
    assert dom.info()[1] == 262144  # live max memory unchanged until a restart
    assert not assert_ok(vid(bigger))['changed']

    # restart: true applies it with a clean shutdown and a start (new cmdline proves it)
    res = assert_ok(vid(dict(bigger, cmdline='console=ttyS0 kvmops.gen=2', restart=True)))
    assert res['changed'] and not res['restart_required']
    assert 'shut down' in res['actions'] and 'started' in res['actions']
    wait_for_text(log, 'KVMOPS-CMDLINE: console=ttyS0 kvmops.gen=2', timeout=90)
    dom = conn.lookupByName(name)
    assert dom.info()[1] == 393216 and dom.info()[3] == 2

    # stopped: clean ACPI shutdown
    res = assert_ok(vid(dict(bigger, cmdline='console=ttyS0 kvmops.gen=2', state='stopped')))
    assert res['changed'] and res['state'] == 'stopped' and not dom.isActive()
    assert 'KVMOPS-POWEROFF' in open(log).read()

    # absent: check mode keeps everything; real removes the domain and keeps the disk
    res = assert_ok(vid({'name': name, 'state': 'absent'}, check=True))
    assert res['changed'] and lookup(conn, name) is not None
    res = assert_ok(vid({'name': name, 'state': 'absent'}))
    assert res['changed'] and lookup(conn, name) is None
    assert os.path.getsize(disk) == 100 * GIB
    assert not assert_ok(vid({'name': name, 'state': 'absent'}))['changed']


def test_uefi_guest_absent_removes_nvram_idempotently(conn, prefix, image_dir, tiny):
    name = prefix + 'uefi'
    args = tiny_args(prefix, image_dir, tiny, name=name, firmware='uefi', disks=[],
                     graphics={'type': 'none'})
    if not os.path.exists('/usr/share/OVMF'):
        pytest.skip('OVMF is not installed')
    res = assert_ok(vid(args))
    assert res['changed'] and res['state'] == 'running'
    assert "<os firmware='efi'>" in res['xml']
    nvram = '/var/lib/libvirt/qemu/nvram/%s_VARS.fd' % name
    assert os.path.exists(nvram)  # created at the first start
    assert not assert_ok(vid(args))['changed']
    res = assert_ok(vid({'name': name, 'state': 'absent'}))
    assert res['changed'] and 'undefined' in res['actions']
    assert lookup(conn, name) is None and not os.path.exists(nvram)
    assert not assert_ok(vid({'name': name, 'state': 'absent'}))['changed']


def test_existing_disk_with_data_survives_a_rerun_with_another_size(conn, prefix, image_dir):
    name = prefix + 'data'
    disk = os.path.join(image_dir, 'data.img')
    with open(disk, 'wb') as f:
        f.write(b'KVMOPS-PRECIOUS-DATA')
        f.truncate(GIB)
    args = dict(name=name, state='present', virt_type='qemu', memory=128, networks=[],
                graphics={'type': 'none'}, disks=[{'path': disk, 'size': 5}])
    res = assert_ok(vid(args))
    assert res['changed']
    assert res['disks'][0]['action'] == 'exists'
    assert res['disks'][0]['growth_requested_gib'] == 5 and res['disks'][0]['size_gib'] == 1
    assert any('never resizes' in w for w in res.get('warnings', []))
    assert os.path.getsize(disk) == GIB
    assert open(disk, 'rb').read(20) == b'KVMOPS-PRECIOUS-DATA'
    # smaller, and again: still never touched, and the domain is unchanged
    res = assert_ok(vid(dict(args, disks=[{'path': disk, 'size': 0.5}])))
    assert not res['changed'] and res['disks'][0]['shrink_refused_gib'] == 0.5
    assert os.path.getsize(disk) == GIB
    # claiming the wrong format would corrupt it: refused
    res = vid(dict(args, disks=[{'path': disk, 'format': 'qcow2'}]))
    assert res.get('failed') and 'already exists as a raw image' in res['msg']
    assert open(disk, 'rb').read(20) == b'KVMOPS-PRECIOUS-DATA'


def test_pool_volume_backing_clone_networks_graphics_drift(conn, prefix, image_dir):
    """Define-only: check mode creates no volume or clone; MACs stay; drift of NICs/graphics;
    absent with remove_storage removes the clone and the volume but not the base image."""
    pool_dir = os.path.join(image_dir, 'pool')
    os.mkdir(pool_dir)
    pool = conn.storagePoolDefineXML(
        "<pool type='dir'><name>%spool</name><target><path>%s</path></target></pool>"
        % (prefix, pool_dir))
    pool.create()
    base = os.path.join(image_dir, 'base.img')
    with open(base, 'wb') as f:
        f.write(b'BASE')
        f.truncate(GIB)
    clone = os.path.join(image_dir, 'clone.qcow2')
    name = prefix + 'vols'
    args = dict(name=name, state='present', virt_type='qemu', memory=128, os_variant='linux',
                disks=[{'path': clone, 'backing_store': base},
                       {'pool': prefix + 'pool', 'volume': prefix + 'data.qcow2', 'size': 2,
                        'format': 'qcow2'}],
                networks=[{'network': 'default'}], graphics={'type': 'vnc'})
    res = assert_ok(vid(args, check=True))
    assert res['changed'] and not os.path.exists(clone) and os.listdir(pool_dir) == []
    assert lookup(conn, name) is None
    res = assert_ok(vid(args))
    assert res['changed']
    assert open(clone, 'rb').read(4) == b'QFI\xfb'
    vol = conn.storagePoolLookupByName(prefix + 'pool').storageVolLookupByName(
        prefix + 'data.qcow2')
    assert vol.info()[1] == 2 * GIB
    dom = conn.lookupByName(name)
    xml1 = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
    assert "<source pool='%spool' volume='%sdata.qcow2'/>" % (prefix, prefix) in xml1
    assert not assert_ok(vid(args))['changed']
    assert dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE) == xml1

    # drift: a second NIC and a VNC listen address; the first NIC keeps its MAC
    mac = xml1.split("<mac address='")[1].split("'")[0]
    two_nics = [{'network': 'default'}, {'network': 'default', 'model': 'e1000e'}]
    changed = dict(args, networks=two_nics,
                   graphics={'type': 'vnc', 'listen': '127.0.0.1', 'port': 5987})
    res = assert_ok(vid(changed, diff=True))
    assert res['changed'] and not res['restart_required']
    assert sorted(d['item'] for d in res['differences']) == [
        'graphics.listen', 'graphics.port', 'networks[1]']
    assert 'e1000e' in res['diff']['after'] and 'e1000e' not in res['diff']['before']
    xml2 = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
    assert xml2.count('<interface') == 2 and mac in xml2
    assert "listen='127.0.0.1'" in xml2 and "port='5987'" in xml2
    assert not assert_ok(vid(changed))['changed']

    res = assert_ok(vid({'name': name, 'state': 'absent', 'remove_storage': True}))
    assert res['changed'] and clone in res['removed_storage']
    assert not os.path.exists(clone) and os.listdir(pool_dir) == []
    assert open(base, 'rb').read(4) == b'BASE'


def test_permission_preflight_0700_directory(conn, prefix, image_dir, tiny):
    private = os.path.join(image_dir, 'private')
    os.mkdir(private, 0o700)
    os.chmod(private, 0o700)
    disk = os.path.join(private, 'disk.img')
    args = dict(name=prefix + 'perm', state='present', virt_type='qemu', networks=[],
                graphics={'type': 'none'}, disks=[{'path': disk, 'size': 1}])
    for check in (True, False):
        res = vid(args, check=check)
        assert res.get('failed'), res
        msg = res['msg']
        assert private in msg and disk in msg and '0700' in msg, msg
        assert 'libvirt-qemu' in msg and '/var/lib/libvirt/images' in msg
        assert os.listdir(private) == [] and lookup(conn, prefix + 'perm') is None
    iso = os.path.join(private, 'win.iso')
    with open(iso, 'wb') as f:
        f.write(b'\0' * 2048)
    res = vid(dict(args, disks=[{'path': iso, 'device': 'cdrom'}]))
    assert res.get('failed') and 'ISO image' in res['msg'] and iso in res['msg']
    assert stat.S_IMODE(os.stat(private).st_mode) == 0o700  # the module changed nothing
    # the fix the message names works: let QEMU traverse the directory
    os.chmod(private, 0o711)
    res = assert_ok(vid(args))
    assert res['changed'] and os.path.exists(disk)


BAD_INPUTS = [
    ({'memory': -512}, 'memory'),
    ({'name': 'a/b'}, 'name'),
    ({'cmdline': "console=ttyS0'/><devices/>"}, 'metacharacters'),
    ({'disks': [{'path': 'relative.img', 'size': 1}]}, 'relative path'),
    ({'disks': [{'path': '@IMG@/x.img', 'size': 1, 'bus': 'floppy'}]}, 'bus'),
    ({'disks': [{'path': '@IMG@/same.img', 'size': 1}, {'path': '@IMG@/same.img'}]}, 'both use'),
    ({'kernel': '/nonexistent/vmlinuz'}, 'not a file'),
    ({'graphics': {'type': 'vnc', 'password': '123456789'}}, 'only 8'),
]


def test_bad_input_fails_before_anything_is_created(conn, prefix, image_dir, tiny):
    """One playbook, one task per bad input (ignore_errors): each fails with its message."""
    tasks = []
    for i, (bad, _match) in enumerate(BAD_INPUTS):
        args = dict(name=prefix + 'bad', state='running', virt_type='qemu', networks=[],
                    kernel=tiny['kernel'], graphics={'type': 'none'},
                    disks=[{'path': os.path.join(image_dir, 'ok.img'), 'size': 1}])
        for key, value in bad.items():
            if key == 'disks':
                value = [dict(d, path=d['path'].replace('@IMG@', image_dir)) for d in value]
            args[key] = value
        tasks.append({'name': 'bad input %d' % i, 'kvmops.hypervisor.virt_install_domain': args,
                      'ignore_errors': True})
    fd, path = tempfile.mkstemp(suffix='.yml')
    with os.fdopen(fd, 'w') as f:
        json.dump([{'hosts': 'localhost', 'gather_facts': False, 'tasks': tasks}], f)
    try:
        doc = run_playbook(path)
    finally:
        os.unlink(path)
    results = [t['hosts']['localhost'] for t in doc['plays'][0]['tasks']]
    assert len(results) == len(BAD_INPUTS)
    for (bad, match), res in zip(BAD_INPUTS, results):
        assert res.get('failed') and match in res['msg'], (bad, res.get('msg'))
    assert '123456789' not in json.dumps(doc)
    assert os.listdir(image_dir) == []
    assert not [d for d in conn.listAllDomains() if d.name().startswith(prefix)]
