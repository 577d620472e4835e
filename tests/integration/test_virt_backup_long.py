"""virt_backup's long tests (make backups): a restored guest boots with its data, and libvirtd
killed during a backup (under the exclusive test-bed lock, briefly)."""
import os
import shutil
import tempfile
import time

import pytest

from support import faults
from support.backup_guests import (boot, images_equal, make_writer_guest, module_process,
                                   our_checkpoints, paused_copy, run_direct, write_round)
from support.libvirt_helpers import wait_for_text
from support.tiny_shell import SerialShell

pytestmark = pytest.mark.backups


def ok(res):
    assert not res.get('failed'), res.get('msg', res)
    return res


@pytest.fixture
def writer_guest(conn, prefix, image_dir, tiny):
    g = make_writer_guest(conn, prefix + 'bk', tiny, image_dir)
    boot(g)
    repo = os.path.join(image_dir, 'repo')
    os.mkdir(repo, 0o711)
    g['repo'] = repo
    yield g
    g['shell'].close()


def test_restored_guest_boots_with_its_data(writer_guest, conn, image_dir, request):
    g = writer_guest
    name, repo = g['dom'].name(), g['repo']
    write_round(g, 5, count=8)
    ok(run_direct('virt_backup', {'domain': name, 'repository': repo}))
    write_round(g, 6, count=2)
    ok(run_direct('virt_backup', {'domain': name, 'repository': repo}))
    new = name + '-r'
    # the test's image directory is too deep for the new guest's UNIX socket (107 bytes at most)
    deep = os.path.join(image_dir, 'restored')
    os.mkdir(deep)
    res = run_direct('virt_backup_restore', {'domain': name, 'repository': repo, 'action': 'guest',
                                             'name': new, 'dest_dir': deep})
    assert res.get('failed') and 'shorter dest_dir' in res['msg'], res
    with pytest.raises(Exception):
        conn.lookupByName(new)
    out = tempfile.mkdtemp(prefix='kvmops-r', dir='/var/tmp')
    os.chmod(out, 0o755)
    request.addfinalizer(lambda: shutil.rmtree(out, ignore_errors=True))
    res = ok(run_direct('virt_backup_restore', {'domain': name, 'repository': repo, 'action': 'guest',
                                                'name': new, 'dest_dir': out, 'start': True}))
    dom = conn.lookupByName(new)
    assert dom.UUIDString() != g['dom'].UUIDString() and res['uuid'] == dom.UUIDString()
    log = os.path.join(out, '%s-serial1.log' % new)
    wait_for_text(log, 'KVMOPS-READY', timeout=300)
    sh = SerialShell(os.path.join(out, '%s-serial2.sock' % new))
    try:
        for rnd, blk in ((5, 7), (6, 1)):
            text = sh.run('dd if=/dev/vda bs=65536 skip=%d count=1 2>/dev/null | head -c 40; echo'
                          % (rnd * 64 + blk))
            assert 'KVMOPS-BLOCK round=%d block=%d' % (rnd, blk) in text, text
    finally:
        sh.close()
    # the restored guest is a guest of its own: the second restore to the same name is refused
    res = run_direct('virt_backup_restore', {'domain': name, 'repository': repo, 'action': 'guest',
                                             'name': new, 'dest_dir': out})
    assert res.get('failed') and 'exists' in res['msg']


@pytest.mark.reliability
def test_libvirtd_killed_during_a_backup(writer_guest, conn, image_dir, daemon_fault):
    g = writer_guest
    name, repo = g['dom'].name(), g['repo']
    write_round(g, 7, count=16)
    first = ok(run_direct('virt_backup', {'domain': name, 'repository': repo}))
    write_round(g, 8, count=16)
    proc, argfile = module_process('virt_backup', {'domain': name, 'repository': repo})
    faults.wait_until(lambda: len(our_checkpoints(conn.lookupByName(name))) == 2, 60, interval=0.002,
                      what='the backup checkpoint')
    daemon_fault.kill_libvirtd()
    out, err = proc.communicate(timeout=120)
    os.unlink(argfile)
    reported = faults.short(out or err)
    daemon_fault.start_libvirtd()
    dom = conn.lookupByName(name)
    assert dom.isActive()
    res = ok(run_direct('virt_backup_restore', {'domain': name, 'repository': repo}))
    assert res['verified'] and res['chain'] == first['chain']
    # libvirtd reconnects to the guest's QEMU after its start; until then a job cannot begin
    # ("cannot acquire state change lock (held by monitor=init...)"): wait for that first
    deadline = time.monotonic() + 300
    while True:
        try:
            dom.blockInfo('vda')
            dom.suspend()
            break
        except Exception:  # pylint: disable=broad-except
            if time.monotonic() > deadline:
                raise
            time.sleep(2)
    try:
        copy = paused_copy(g, os.path.join(image_dir, 'after.raw'))
        res = ok(run_direct('virt_backup', {'domain': name, 'repository': repo}))
    finally:
        dom.resume()
    # documented: the failed run could not delete its checkpoint with libvirtd gone, so it marked
    # the chain broken and this run is a new full one; else the chain goes on
    assert (res['level'] == 'inc' and res['chain'] == first['chain']) or \
        (res['level'] == 'full' and 'broken' in res['level_reason']), res
    assert our_checkpoints(dom) == [res['checkpoint']]
    dest = os.path.join(image_dir, 'out')
    os.mkdir(dest)
    r = ok(run_direct('virt_backup_restore', {'domain': name, 'repository': repo, 'action': 'images',
                                              'dest_dir': dest, 'format': 'raw'}))
    assert images_equal(r['images']['vda'], copy)
    faults.record('libvirtd SIGKILLed during a backup', 'SIGKILL to libvirtd as soon as the backup\'s '
                  'checkpoint existed; libvirtd started again after the module ended', 1, reported,
                  'the committed chain verified; the next run cleaned up (%s) and took a %s backup (%s) '
                  'that restores byte for byte' % (faults.short('; '.join(res.get('recovered') or []), 120),
                                                   res['level'], faults.short(res['level_reason'], 100)),
                  'make backups (and make reliability)',
                  'tests/integration/test_virt_backup_long.py::test_libvirtd_killed_during_a_backup')
