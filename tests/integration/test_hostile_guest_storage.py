"""Issue 26, the guest core: what a guest's disk bytes and a domain kvmops did not make can do,
tried for real against the host's libvirtd (the images are written the way a guest writes
its disk: the bytes of the file; booting a guest to run dd would add a minute and prove
nothing more, the module only ever sees the file)."""
import os
import struct

import libvirt

from support import faults
from support.domain_guests import GIB, assert_ok, vid
from support.libvirt_helpers import lookup_domain

SUITE = 'make test (integration)'


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


def test_forged_qcow2_header_never_makes_a_qcow2_with_its_backing_file(
        conn, prefix, image_dir, request):
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
    faults.record('hostile guest: forged qcow2 header with a host backing file on its raw disk',
                  'qcow2 v2 header, backing file = a host file, written over the raw image',
                  4, 'raw kept (record); format: raw honoured; redefined without format: '
                  'refused, "never takes a format from them"', 'raw definition, no backing '
                  'store; host file untouched', SUITE, request.node.nodeid)


def _file_disk(path, target, extra=''):
    return ("<disk type='file' device='disk'><driver name='qemu' type='raw'/>"
            "<source file='%s'/><target dev='%s' bus='virtio'/>%s</disk>"
            % (path, target, extra))


def test_remove_storage_removes_only_what_kvmops_made(conn, prefix, image_dir, request):
    made = os.path.join(image_dir, 'made.img')
    brought = os.path.join(image_dir, 'brought.img')
    for p in (brought,):
        with open(p, 'wb') as f:
            f.write(b'USER DATA')
    name = prefix + 'owned'
    args = dict(name=name, state='present', virt_type='qemu', memory=128, networks=[],
                graphics={'type': 'none'},
                disks=[{'path': made, 'size': 1}, {'path': brought, 'format': 'raw'}],
                serial=os.path.join(image_dir, 'owned.log'))
    assert_ok(vid(args))
    for log in ('owned.log', 'owned.log.0'):  # what virtlogd writes and rotates
        with open(os.path.join(image_dir, log), 'w') as f:
            f.write('console')
    res = assert_ok(vid(dict(name=name, state='absent', remove_storage=True)))
    assert res['removed_storage'] == [made]
    assert not os.path.exists(os.path.join(image_dir, 'owned.log'))
    assert not os.path.exists(os.path.join(image_dir, 'owned.log.0'))
    assert not os.path.exists(made) and open(brought, 'rb').read() == b'USER DATA'
    assert any('remove_storage kept %s' % brought in w for w in res.get('warnings', []))
    # named by the user: it goes
    assert_ok(vid(dict(args, disks=[{'path': brought, 'format': 'raw'}], serial=None)))
    res = assert_ok(vid(dict(name=name, state='absent', remove_storage=True,
                             disks=[{'path': brought}])))
    assert res['removed_storage'] == [brought] and not os.path.exists(brought)
    faults.record('remove_storage on a guest with a brought-along image',
                  'a user image attached beside the disk kvmops created', 2,
                  'removed the created disk and serial logs; warned "remove_storage kept ..."; '
                  'removed the user image only when named in disks', 'the user image until '
                  'named', SUITE, request.node.nodeid)


def test_a_domain_kvmops_did_not_make_keeps_its_disks_and_nvram(
        conn, prefix, image_dir, request):
    """Defined by virsh (same name pattern), with a shareable disk, a plain disk and an
    NVRAM: absent with remove_storage deletes none of its disks; without remove_storage the
    NVRAM stays (KEEP_NVRAM), with it the NVRAM goes."""
    plain = os.path.join(image_dir, 'plain.img')
    shared = os.path.join(image_dir, 'shared.img')
    nvram = os.path.join(image_dir, 'VARS.fd')
    for p in (plain, shared, nvram):
        with open(p, 'wb') as f:
            f.write(b'NOT KVMOPS')
    name = prefix + 'foreign'
    xml = ("<domain type='qemu'><name>%s</name><memory unit='MiB'>128</memory>"
           "<os><type arch='x86_64' machine='q35'>hvm</type>"
           "<loader readonly='yes' type='pflash'>/usr/share/OVMF/OVMF_CODE_4M.fd</loader>"
           "<nvram>%s</nvram></os><features><acpi/></features><devices>%s%s</devices></domain>"
           % (name, nvram, _file_disk(plain, 'vda'),
              _file_disk(shared, 'vdb', '<shareable/>')))
    conn.defineXML(xml)
    res = assert_ok(vid(dict(name=name, state='absent')))
    assert res['changed'] and lookup_domain(conn, name) is None
    assert os.path.exists(nvram), 'the NVRAM went with remove_storage: false'
    conn.defineXML(xml)
    res = assert_ok(vid(dict(name=name, state='absent', remove_storage=True)))
    assert lookup_domain(conn, name) is None and not res.get('removed_storage')
    assert open(plain, 'rb').read() == b'NOT KVMOPS' and open(shared, 'rb').read() == b'NOT KVMOPS'
    assert not os.path.exists(nvram)
    faults.record('remove_storage on a domain defined by virsh (same name pattern)',
                  'plain disk, <shareable/> disk and NVRAM of a domain kvmops did not define',
                  2, 'undefined; nothing in removed_storage', 'both disks; the NVRAM with '
                  'remove_storage: false (KEEP_NVRAM), removed with true', SUITE,
                  request.node.nodeid)


def test_serial_log_outside_the_log_directories_is_refused(
        conn, prefix, image_dir, tmp_path, request):
    """virtlogd runs as root and truncates the serial file when the guest starts: a path
    outside /var/log/libvirt/qemu and the guest's image directory (a survey answer such as
    /etc/...) and a symlink in the image directory are refused before anything is defined."""
    victim = tmp_path / 'victim.conf'
    victim.write_text('KEEP ME')
    disk = os.path.join(image_dir, 'log.img')
    name = prefix + 'serial'
    args = dict(name=name, state='present', virt_type='qemu', memory=128, networks=[],
                graphics={'type': 'none'}, disks=[{'path': disk, 'size': 1}],
                serial=str(victim))
    res = vid(args)
    assert res.get('failed') and 'virtlogd runs as root and truncates' in res['msg'], res
    assert os.path.join(image_dir, name + '-serial.log') in res['msg']
    link = os.path.join(image_dir, 'console.log')
    os.symlink(str(victim), link)
    res = vid(dict(args, serial=link))
    assert res.get('failed') and 'symlink' in res['msg'], res
    assert lookup_domain(conn, name) is None and victim.read_text() == 'KEEP ME'
    os.unlink(link)
    assert_ok(vid(dict(args, serial=link)))
    faults.record('serial log path outside the log directories (virtlogd truncates it)',
                  'serial = a file outside /var/log/libvirt/qemu and the image directory; a '
                  'symlink to it in the image directory', 2, faults.short(res['msg']),
                  'nothing defined; the file untouched', SUITE, request.node.nodeid)


def test_rollback_keeps_an_image_a_concurrent_run_defined_a_domain_on(
        conn, prefix, image_dir, request):
    """A failed define rolls back the images its run created; a concurrent run may have
    defined a domain on one of them between the creation and the rollback. Forced at that
    exact step (the other definition happens inside this run's define, which then fails)."""
    import pytest
    from ansible_collections.kvmops.hypervisor.plugins.module_utils._guest import argspec
    from ansible_collections.kvmops.hypervisor.plugins.module_utils._guest import manager as gm
    disk = os.path.join(image_dir, 'race.img')
    spec = argspec.normalize(dict(name=prefix + 'race', state='present', virt_type='qemu',
                                  memory=128, networks=[], graphics={'type': 'none'},
                                  disks=[{'path': disk, 'size': 1}]))
    other = prefix + 'other'

    class Racing(gm.GuestManager):
        def define(self, xml):
            conn.defineXML("<domain type='qemu'><name>%s</name><memory unit='MiB'>128</memory>"
                           "<os><type arch='x86_64'>hvm</type></os><devices>%s</devices>"
                           "</domain>" % (other, _file_disk(disk, 'vda')))
            raise gm.DomainError('libvirt refused the definition (injected)')
    warnings = []
    with pytest.raises(gm.DomainError):
        Racing(conn, spec, warn=warnings.append).run()
    assert os.path.exists(disk), 'the rollback unlinked the image another domain uses'
    assert any('another domain may use it now' in w for w in warnings), warnings
    faults.record('failed define rolls back while a concurrent run uses the image',
                  'another domain defined on the new image between its creation and the '
                  'failing define', 1, 'the define error; warning "kept ... another domain may '
                  'use it now"', 'the image, used by the other domain', SUITE,
                  request.node.nodeid)


def test_url_credentials_are_masked_in_results_messages_and_invocation(
        conn, prefix, image_dir, request):
    """user:password@ in an install URL: the task fails (nothing listens there) and neither
    its message nor its result nor the invocation shown at -vvv carries the password."""
    import json
    from support.ansible_run import run_module
    secret = 'S3cret-26-%s' % prefix.strip('-_')[-6:]
    location = 'http://kvmops:%s@127.0.0.1:9/tree/' % secret
    args = {'name': prefix + 'creds', 'memory': 256, 'virt_type': 'qemu',
            'os_variant': 'linux', 'networks': [], 'graphics': {'type': 'none'},
            'disks': [{'path': os.path.join(image_dir, 'creds.img'), 'size': 0.02}],
            'wait': -1, 'install': {'location': location,
                                    'cache_dir': os.path.join(image_dir, 'cache')}}
    res = run_module('virt_install_domain', args)
    assert res.get('failed'), res
    text = json.dumps(res)
    assert secret not in text, text[:2000]
    assert 'kvmops:' in text  # the URL itself is still named
    faults.record('user:password@ in an install URL', 'install.location with credentials, '
                  'unreachable', 1, faults.short(res.get('msg')), 'password absent from the '
                  'result, message and invocation', SUITE, request.node.nodeid)
