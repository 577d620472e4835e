"""Free-space preflight against a real, small file system (issue 14).

A 32 MiB tmpfs is mounted as the image directory inside the test (and unmounted after it,
also on failure). Non-sparse images larger than the free space fail the run before anything
is created; sparse ones go on with a warning. A full clone counts what its source has
allocated (issue 30): refused before anything is copied, alone and when clones of one
virt_install_domains task fit one by one but not together.
"""
import os
import subprocess

import pytest

from support.ansible_run import run_module


@pytest.fixture
def small_fs(image_dir):
    path = os.path.join(image_dir, 'small')
    os.mkdir(path)
    subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=32m,mode=0755', 'tmpfs', path],
                   check=True, timeout=30)
    try:
        yield path
    finally:
        subprocess.run(['umount', path], check=False, timeout=60)
        os.rmdir(path)


def args_for(prefix, path, sparse, size_gib, **more):
    args = {'name': prefix + ('sparse' if sparse else 'full'), 'memory': 256, 'virt_type': 'qemu',
            'os_variant': 'linux', 'state': 'present', 'networks': [],
            'graphics': {'type': 'none'},
            'disks': [{'path': os.path.join(path, 'a.img'), 'size': size_gib, 'sparse': sparse}]}
    args.update(more)
    return args


def test_non_sparse_image_larger_than_free_space_fails_before_anything(conn, prefix, small_fs):
    args = args_for(prefix, small_fs, False, 0.0625)  # 64 MiB on a 32 MiB file system
    for check in (True, False):
        res = run_module('virt_install_domain', args, check=check)
        assert res.get('failed'), res
        msg = res['msg']
        assert 'Not enough free space' in msg and small_fs in msg, msg
        assert '0.06 GiB' in msg and 'sparse: true' in msg, msg
        assert os.listdir(small_fs) == []
        assert args['name'] not in conn.listDefinedDomains()
    # Two images that fit alone but not together fail as well (the sum counts).
    two = dict(args, disks=[{'path': os.path.join(small_fs, n), 'size': 0.02, 'sparse': False}
                            for n in ('b.img', 'c.img')])
    res = run_module('virt_install_domain', two)
    assert res.get('failed') and 'b.img' in res['msg'] and 'c.img' in res['msg'], res
    assert os.listdir(small_fs) == []
    # One that fits is allocated in full.
    fits = dict(args, disks=[{'path': os.path.join(small_fs, 'd.img'), 'size': 0.02,
                              'sparse': False}])
    res = run_module('virt_install_domain', fits)
    assert not res.get('failed'), res.get('msg')
    assert os.stat(os.path.join(small_fs, 'd.img')).st_blocks * 512 >= int(0.02 * 1024 ** 3)
    run_module('virt_install_domain', dict(fits, state='absent', remove_storage=True))


def test_sparse_image_larger_than_free_space_warns(conn, prefix, small_fs):
    args = args_for(prefix, small_fs, True, 1)
    res = run_module('virt_install_domain', args)
    assert not res.get('failed'), res.get('msg')
    warned = [w for w in res.get('warnings', []) if 'can grow to 1.00 GiB' in w]
    assert warned and small_fs in warned[0], res.get('warnings')
    assert os.path.exists(os.path.join(small_fs, 'a.img'))
    # The re-run creates nothing, so it has nothing to warn about.
    again = run_module('virt_install_domain', args)
    assert not again['changed']
    assert not [w for w in again.get('warnings', []) if 'can grow' in w]
    run_module('virt_install_domain', dict(args, state='absent', remove_storage=True))


def _write_mib(path, offset_mib, mib):
    with open(path, 'r+b') as f:
        f.seek(offset_mib * 1024 * 1024)
        f.write(os.urandom(mib * 1024 * 1024))


def test_full_clones_that_do_not_fit_are_refused_before_copying(conn, prefix, small_fs):
    source = args_for(prefix, small_fs, True, 0.0625, name=prefix + 'src',
                      disks=[{'path': os.path.join(small_fs, 'src.img'), 'size': 0.0625,
                              'sparse': True, 'format': 'raw'}])   # 64 MiB, sparse
    res = run_module('virt_install_domain', source)
    assert not res.get('failed'), res.get('msg')
    src_img = os.path.join(small_fs, 'src.img')
    try:
        _write_mib(src_img, 0, 12)      # 12 MiB allocated of 64: one copy fits, two do not
        clones = [{'name': prefix + 'c%d' % i, 'clone_from': {'name': source['name']},
                   'state': 'present'} for i in (1, 2)]
        for check in (True, False):
            res = run_module('virt_install_domains', {'guests': clones}, check=check)
            assert res.get('failed'), res
            msg = res['msg']
            assert "Not enough free space for the full clone's copies" in msg, msg
            assert clones[0]['name'] in msg and clones[1]['name'] in msg and small_fs in msg
            assert 'together' in msg, msg
            assert sorted(os.listdir(small_fs)) == ['src.img']
            assert not set(c['name'] for c in clones) & set(conn.listDefinedDomains())
        _write_mib(src_img, 12, 10)     # 22 MiB allocated: not even one copy fits
        for check in (True, False):
            res = run_module('virt_install_domain', clones[0], check=check)
            assert res.get('failed'), res
            assert "0.02 GiB" in res['msg'] and 'Nothing was copied' in res['msg'], res['msg']
            assert 'mode: linked' in res['msg']
            assert sorted(os.listdir(small_fs)) == ['src.img']
            assert clones[0]['name'] not in conn.listDefinedDomains()
    finally:
        run_module('virt_install_domain', {'name': source['name'], 'state': 'absent',
                                           'remove_storage': True})
