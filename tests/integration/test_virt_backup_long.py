"""virt_backup's long tests (make backups): a restored guest boots with its data, and libvirtd
killed during a backup (under the exclusive test-bed lock, briefly)."""
import json
import os
import shutil
import tempfile

import pytest

from support import faults
from support.backup_guests import (boot, images_equal, leftover_state, make_writer_guest,
                                   module_process, our_checkpoints, paused_copy, run_direct,
                                   write_round)
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


def _brief(res):
    return {k: res.get(k) for k in ('failed', 'msg', 'level', 'level_reason', 'recovered', 'warnings')}


def _answers(dom):
    try:
        dom.blockInfo('vda')
        return True
    except Exception:  # pylint: disable=broad-except
        return False


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
    try:
        reported = faults.short(json.loads(out).get('msg') or out)
    except ValueError:
        reported = faults.short(out or err)
    daemon_fault.start_libvirtd()
    print('\nafter the kill, module said: %s' % reported)
    print('left behind: %s' % leftover_state(name, g['disk']))
    dom = conn.lookupByName(name)
    assert dom.isActive()
    res = ok(run_direct('virt_backup_restore', {'domain': name, 'repository': repo}))
    assert res['verified'] and res['chain'] == first['chain']
    # libvirtd reconnects to the guest's QEMU after its start: wait for that first
    faults.wait_until(lambda: _answers(dom), 300, interval=2, what='libvirtd\'s reconnect to the guest')
    # libvirt 9.0 may keep a backup job without its data after the kill (restored from its
    # status file although QEMU's job had ended): the next run identifies it as its own, cleans
    # what it can and fails saying how to end it (only the end of the guest's QEMU process does)
    res = run_direct('virt_backup', {'domain': name, 'repository': repo})
    print('next backup: %s' % _brief(res))
    after_kill, stuck = res, None
    if res.get('failed'):
        print('left behind then: %s' % leftover_state(name, g['disk']))
        assert 'libvirt still holds the backup job that an interrupted virt_backup run' in res['msg'], res
        assert 'virsh shutdown' in res['msg'] and 'committed backups are unchanged' in res['msg']
        stuck = faults.short(res['msg'], 160)
        assert ok(run_direct('virt_backup_restore', {'domain': name, 'repository': repo}))['verified']
        # what the message says: shut the guest down, restart libvirtd while it is off, start it
        g['shell'].close()
        dom.shutdown()
        faults.wait_until(lambda: not dom.isActive(), 120, interval=0.5, what='the guest\'s poweroff')
        daemon_fault.restart_libvirtd()
        os.unlink(g['log'])
        dom = g['dom'] = conn.lookupByName(name)  # on the connection made after the restart
        boot(g)
    dom.suspend()
    try:
        copy = paused_copy(g, os.path.join(image_dir, 'after.raw'))
        res = run_direct('virt_backup', {'domain': name, 'repository': repo})
        print('then: %s' % _brief(res))
        if res.get('failed'):
            print('left behind then: %s' % leftover_state(name, g['disk']))
        ok(res)
    finally:
        dom.resume()
    # the failed run's checkpoint is gone, the chain's last one kept: the chain continues
    assert res['level'] == 'inc' and res['chain'] == first['chain'], res
    assert our_checkpoints(dom) == [res['checkpoint']]
    dest = os.path.join(image_dir, 'out')
    os.mkdir(dest)
    r = ok(run_direct('virt_backup_restore', {'domain': name, 'repository': repo, 'action': 'images',
                                              'dest_dir': dest, 'format': 'raw'}))
    assert images_equal(r['images']['vda'], copy)
    faults.record('libvirtd SIGKILLed during a backup', 'SIGKILL to libvirtd as soon as the backup\'s '
                  'checkpoint existed; libvirtd started again after the module ended', 1, reported,
                  'the committed chain verified; the next run cleaned up (%s)%s; then a %s backup (%s) '
                  'that restores byte for byte' % (
                      faults.short('; '.join(after_kill.get('recovered') or []), 160),
                      ' and failed: %s; the guest was shut down, libvirtd restarted, the guest started, as it says' % stuck if stuck else '',
                      res['level'], faults.short(res['level_reason'], 100)),
                  'make backups (and make reliability)',
                  'tests/integration/test_virt_backup_long.py::test_libvirtd_killed_during_a_backup')
