"""Faults: a full file system under the image directory and under qemu.conf (real tmpfs).

Creating a guest's disk on a full file system fails with a handled error naming the cause,
leaves no zero-length or partial image and no domain pointing at a missing disk; qemu.conf on
a full file system keeps its original bytes. Each ends with a plain re-run that converges
once space is available.
"""
import os

import libvirt
import pytest

from support import faults, paths
from support.ansible_run import run_module

SUITE = 'make test'


def guest(prefix, directory, short, disk):
    return {'name': prefix + short, 'memory': 128, 'virt_type': 'qemu', 'os_variant': 'linux',
            'state': 'present', 'networks': [], 'graphics': {'type': 'none'},
            'disks': [dict({'path': os.path.join(directory, short + '.img')}, **disk)]}


def lookup(conn, name):
    try:
        return conn.lookupByName(name)
    except libvirt.libvirtError:
        return None


def files_in(directory):
    return sorted(f for f in os.listdir(directory) if f != '.filler')


@pytest.mark.parametrize('case,disk,fill', [
    ('raw-preallocated', {'size': 0.02, 'sparse': False}, False),
    ('qcow2-on-a-full-fs', {'size': 1, 'format': 'qcow2'}, True),
    ('qcow2-preallocated', {'size': 0.02, 'format': 'qcow2', 'sparse': False}, False),
])
def test_image_directory_full(conn, prefix, image_dir, request, case, disk, fill):
    full = os.path.join(image_dir, 'full')
    args = guest(prefix, full, case[:8], disk)
    with faults.Tmpfs(full, '4m') as fs:
        if fill:
            fs.fill()
        res = run_module('virt_install_domain', args)
        left = files_in(full)
        dom = lookup(conn, args['name'])
        assert res.get('failed'), res
        # A non-sparse image that cannot fit is refused by the free-space preflight before
        # anything is written; a sparse one passes it and meets ENOSPC while it is created.
        expected = ('Not enough free space',) if disk.get('sparse') is False else (
            'No space left on device', 'ENOSPC')
        assert any(e in res['msg'] for e in expected), res['msg']
        assert left == [], left          # no zero-length or partial image
        assert dom is None               # no domain pointing at a missing disk
    faults.record(
        'image directory file system full (%s)' % case,
        'tmpfs of 4 MiB%s as the disk directory' % (', filled' if fill else ''),
        1, faults.short(res['msg']), 'nothing (no image, no domain)', SUITE, request.node.nodeid)
    # With space, the same task converges.
    os.makedirs(full, exist_ok=True)
    res = run_module('virt_install_domain', args)
    assert not res.get('failed') and res['changed'], res.get('msg')
    assert not run_module('virt_install_domain', args)['changed']


def test_sparse_raw_on_a_full_fs_is_created_sparse(conn, prefix, image_dir, request):
    """A sparse raw image needs no blocks: it is created (and says so), nothing else."""
    full = os.path.join(image_dir, 'full')
    args = guest(prefix, full, 'sparse', {'size': 1})
    with faults.Tmpfs(full, '4m') as fs:
        fs.fill()
        res = run_module('virt_install_domain', args)
        assert not res.get('failed'), res.get('msg')
        st = os.stat(os.path.join(full, 'sparse.img'))
        assert st.st_size == 1024 ** 3 and st.st_blocks == 0
        run_module('virt_install_domain', dict(args, state='absent', remove_storage=True))
    faults.record('image directory full, sparse raw disk', 'filled tmpfs of 4 MiB', 1,
                  'created (a sparse image allocates no blocks)', 'the guest and its sparse '
                  'image, removed by the test', SUITE, request.node.nodeid)


def test_qemu_conf_on_a_full_file_system_stays_intact(tmp_path, request):
    fixture = os.path.join(paths.FIXTURES, 'qemu_conf', '9.0.0-debian12.conf')
    with open(fixture, 'rb') as f:
        original = f.read()
    mnt = str(tmp_path / 'etc')
    with faults.Tmpfs(mnt, '128k') as fs:
        conf = os.path.join(mnt, 'qemu.conf')
        with open(conf, 'wb') as f:
            f.write(original)
        os.chmod(conf, 0o600)
        fs.fill()
        res = run_module('vnc_listen', {'config': conf, 'listen': '127.0.0.2', 'backup': True})
        with open(conf, 'rb') as f:
            after = f.read()
        leftovers = files_in(mnt)
    assert res.get('failed'), res
    assert 'No space left on device' in res['msg'], res['msg']
    assert after == original
    assert leftovers == ['qemu.conf'], leftovers
    faults.record('qemu.conf on a full file system', 'tmpfs of 128 KiB, filled, holding a copy '
                  'of qemu.conf (vnc_listen config, backup: true)', 1, faults.short(res['msg']),
                  'the original bytes, no temporary or backup file', SUITE, request.node.nodeid)
