"""virt_install_domain's disks against the real libvirtd: an existing image is never resized
or reformatted; pool volumes, backing-store clones, NICs and graphics drift of a defined (not
started) guest; the permission preflight names the directory QEMU cannot traverse and its fix."""
import os
import stat

import libvirt

from support.domain_guests import GIB, assert_ok, vid
from support.libvirt_helpers import lookup_domain


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
                disks=[{'path': clone, 'backing_store': base, 'backing_format': 'raw'},
                       {'pool': prefix + 'pool', 'volume': prefix + 'data.qcow2', 'size': 2,
                        'format': 'qcow2'}],
                networks=[{'network': 'default'}], graphics={'type': 'vnc'})
    res = assert_ok(vid(args, check=True))
    assert res['changed'] and not os.path.exists(clone) and os.listdir(pool_dir) == []
    assert lookup_domain(conn, name) is None
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
        assert os.listdir(private) == [] and lookup_domain(conn, prefix + 'perm') is None
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
