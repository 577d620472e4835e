"""Issue 26, the guest core: what a guest's disk bytes and a domain kvmops did not make can do,
tried for real against the host's libvirtd (the images are written the way a guest writes
its disk: the bytes of the file; booting a guest to run dd would add a minute and prove
nothing more, the module only ever sees the file)."""
import os
import struct

import libvirt

from support.domain_guests import GIB, assert_ok, vid
from support.libvirt_helpers import lookup_domain


def forge_qcow2_header(path, backing):
    """What a guest with root in it can write to the start of its raw disk: a qcow2 v2
    header whose backing file is any host path (QEMU, reading it as qcow2, opens that)."""
    name = backing.encode()
    header = (b'QFI\xfb' + struct.pack('>I', 2) + struct.pack('>Q', 72)
              + struct.pack('>I', len(name)) + struct.pack('>I', 16)
              + struct.pack('>Q', 4 * GIB) + b'\0' * 40)
    with open(path, 'r+b') as f:
        f.write(header[:72] + name)


def driver_of(conn, name, path):
    xml = conn.lookupByName(name).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
    from lxml import etree
    for disk in etree.fromstring(xml.encode()).iter('disk'):
        src = disk.find('source')
        if src is not None and src.get('file') == path:
            return disk.find('driver').get('type'), disk.find('backingStore')
    return None, None


def test_forged_qcow2_header_never_makes_a_qcow2_with_its_backing_file(conn, prefix,
                                                                      image_dir):
    name = prefix + 'forged'
    disk = os.path.join(image_dir, 'root.img')
    secret = os.path.join(image_dir, 'host-secret')
    with open(secret, 'w') as f:
        f.write('HOST SECRET')
    args = dict(name=name, state='present', virt_type='qemu', memory=128, networks=[],
                graphics={'type': 'none'}, disks=[{'path': disk, 'size': 1}])
    assert_ok(vid(args))
    assert driver_of(conn, name, disk)[0] == 'raw'
    forge_qcow2_header(disk, secret)
    # the domain is still there: kvmops recorded raw when it made the image
    res = assert_ok(vid(args))
    assert not res['changed'] and res['disks'][0]['format'] == 'raw'
    assert driver_of(conn, name, disk)[0] == 'raw'
    # format: raw is honoured (it was refused: "already exists as a qcow2 image")
    res = assert_ok(vid(dict(args, disks=[{'path': disk, 'format': 'raw'}])))
    assert not res['changed'] and driver_of(conn, name, disk)[0] == 'raw'
    # the domain is removed, its disk kept, and the guest defined again: no record now, and
    # the header is never the format: refused with the fix, or raw when the user says so
    assert_ok(vid(dict(name=name, state='absent')))
    assert os.path.exists(disk)
    res = vid(args)
    assert res.get('failed'), res
    assert 'never takes a format from them' in res['msg'] and 'format=raw' in res['msg']
    assert lookup_domain(conn, name) is None
    res = assert_ok(vid(dict(args, disks=[{'path': disk, 'format': 'raw'}])))
    fmt, backing = driver_of(conn, name, disk)
    assert fmt == 'raw' and backing is None
    assert open(secret).read() == 'HOST SECRET'
