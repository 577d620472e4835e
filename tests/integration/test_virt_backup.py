"""virt_backup and virt_backup_restore against the real libvirtd (QEMU TCG) with the tiny guest.

The guest writes known 64 KiB blocks to its qcow2 data disk on command (the kvmops.writer
switch of testbed/tiny_guest_init.sh; it says KVMOPS-WROTE on its console). For every backup
the test pauses the guest, copies the data disk (qemu-img convert -U) and runs the backup while
it is still paused, so the backup's point in time and the copy are the same moment; each point
restored to a new image must then be byte for byte that copy (qemu-img compare).
"""
import os
import signal
import subprocess

import pytest

from support import faults
from support.ansible_run import run_module
from support.backup_guests import (boot, images_equal, layer_data_bytes, make_writer_guest,
                                   module_process, our_checkpoints, paused_copy, run_direct,
                                   write_round, BLOCK)
from support.libvirt_helpers import remove_domain


def backup(domain, repository, check=False, ansible=False, **args):
    """virt_backup; through ansible-playbook with ansible=True, else the module run directly."""
    args.update(domain=domain, repository=repository)
    if ansible:
        return run_module('virt_backup', args, check=check)
    return run_direct('virt_backup', args, check=check)


def restore(domain, repository, check=False, ansible=False, **args):
    args.update(domain=domain, repository=repository)
    if ansible:
        return run_module('virt_backup_restore', args, check=check)
    return run_direct('virt_backup_restore', args, check=check)


def ok(res):
    assert not res.get('failed'), res.get('msg', res)
    return res


def tree(path):
    out = []
    for base, dirs, files in os.walk(path):
        for n in dirs + files:
            out.append(os.path.relpath(os.path.join(base, n), path))
    return sorted(out)


def paused_backup(guest, copy, repo, **args):
    """Pause, copy the data disk, back up (still paused), resume."""
    dom = guest['dom']
    dom.suspend()
    try:
        paused_copy(guest, copy)
        res = backup(dom.name(), repo, **args)
    finally:
        dom.resume()
    return res


@pytest.fixture(scope='module')
def shared_guest(conn, module_prefix, module_image_dir, tiny):
    g = make_writer_guest(conn, module_prefix + 'bk', tiny, module_image_dir)
    boot(g)
    yield g
    g['shell'].close()
    remove_domain(conn.lookupByName(g['dom'].name()))


@pytest.fixture
def guest(shared_guest, conn):
    """The file's running guest, its domain looked up again (another run may have restarted
    libvirtd between two tests: the old handle's connection is gone)."""
    shared_guest['dom'] = conn.lookupByName(shared_guest['dom'].name())
    return shared_guest


@pytest.fixture
def repo(image_dir):
    path = os.path.join(image_dir, 'repo')
    os.mkdir(path, 0o711)
    return path


def test_full_inc_inc_each_point_restores_byte_for_byte(guest, repo, image_dir):
    dom, name = guest['dom'], guest['dom'].name()
    write_round(guest, 1, count=64)         # 4 MiB before the full backup

    # check mode: level, disks, estimate; nothing written, no checkpoint
    res = ok(backup(name, repo, check=True, ansible=True))
    assert res['changed'] is True and res['level'] == 'full', res
    assert res['disks'] == ['vda'] and res['estimated_size'] > 4 * 1024 * 1024, res
    assert 'no backup chain yet' in res['level_reason']
    assert tree(repo) == [] and our_checkpoints(dom) == []

    copies, results = [], []
    for rnd, count in ((None, 0), (2, 4), (3, 8)):
        if rnd:
            write_round(guest, rnd, count=count)
        copy = os.path.join(image_dir, 'copy%d.raw' % len(copies))
        res = ok(paused_backup(guest, copy, repo))
        copies.append(copy)
        results.append(res)
    assert [r['level'] for r in results] == ['full', 'inc', 'inc'], results
    for r in results:   # what was written: the disk file plus domain.xml (a few KiB)
        assert r['files']['vda']['size'] < r['size'] < r['files']['vda']['size'] + 65536, r
    assert len(set(r['chain'] for r in results)) == 1
    assert [r['point'] for r in results] == [0, 1, 2]
    assert all(r['frozen'] is False and 'no guest-agent channel' in r['quiesce_reason'] for r in results)
    # the incrementals hold exactly the blocks written since the backup before
    for res, count in ((results[1], 4), (results[2], 8)):
        assert layer_data_bytes(os.path.join(res['point_dir'], 'vda.qcow2')) == count * BLOCK, res
        assert res['files']['vda']['size'] < count * BLOCK + 1024 * 1024
    assert layer_data_bytes(os.path.join(results[0]['point_dir'], 'vda.qcow2')) >= 64 * BLOCK
    # only the newest point's checkpoint stays on the guest
    assert our_checkpoints(dom) == [results[2]['checkpoint']]

    # check mode again: an incremental, nothing written, no new checkpoint
    before = tree(repo)
    res = ok(backup(name, repo, check=True))
    assert res['level'] == 'inc' and tree(repo) == before
    assert our_checkpoints(dom) == [results[2]['checkpoint']]

    # every point restored to a new image is the paused copy of that moment
    out = os.path.join(image_dir, 'restored')
    os.mkdir(out)
    for point, copy in enumerate(copies):
        res = ok(restore(name, repo, action='images', point=point, dest_dir=out,
                         name='p%d' % point, format='raw'))
        assert res['changed'] and res['level'] == results[point]['level']
        assert images_equal(res['images']['vda'], copy), 'point %d differs from its copy' % point
        assert not images_equal(res['images']['vda'], copies[-1]) or point == 2
    # a second restore to the same place overwrites nothing
    res = restore(name, repo, action='images', point=0, dest_dir=out, name='p0', format='raw')
    assert res.get('failed') and 'never overwrites' in res['msg']

    res = ok(restore(name, repo, ansible=True))  # verify, the default action
    assert res['verified'] is True and res['changed'] is False and res['files_checked'] == 3
    assert [n for n in os.listdir(os.path.join(repo, name, results[0]['chain'])) if n.startswith('.')] == []

    # a flipped byte in the middle of the chain is found
    inc1 = os.path.join(results[1]['point_dir'], 'vda.qcow2')
    with open(inc1, 'r+b') as f:
        f.seek(os.path.getsize(inc1) - 100)
        b = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([b[0] ^ 0xff]))
    res = restore(name, repo, action='verify')
    assert res.get('failed') and res['verified'] is False, res
    assert 'does not match its sha256' in res['msg'] and '01-inc/vda.qcow2' in res['msg']
    res = ok(restore(name, repo, action='verify', point=0))
    assert res['verified'] is True


def test_retention_keeps_exactly_what_it_says(guest, repo):
    dom, name = guest['dom'], guest['dom'].name()
    levels = []
    for i in range(5):
        write_round(guest, 10 + i, count=1)
        res = ok(backup(name, repo, chain_length=2, keep_chains=2))
        levels.append(res['level'])
    assert levels == ['full', 'inc', 'full', 'inc', 'full'], levels
    chains = sorted(n for n in os.listdir(os.path.join(repo, name)) if not n.startswith('.'))
    assert len(chains) == 2 and chains[-1] == res['chain'], chains
    assert sorted(os.listdir(os.path.join(repo, name, chains[0]))) == ['00-full', '01-inc', 'manifest.json']
    assert sorted(os.listdir(os.path.join(repo, name, chains[1]))) == ['00-full', 'manifest.json']
    assert len(res['removed_chains']) == 1 and res['removed_chains'][0] < chains[0]
    assert our_checkpoints(dom) == [res['checkpoint']]
    # keep_chains=1: after the next successful backup only its own chain is left
    res = ok(backup(name, repo, level='full', keep_chains=1))
    assert sorted(n for n in os.listdir(os.path.join(repo, name)) if not n.startswith('.')) == [res['chain']]
    # level=inc with chain_length reached still continues the chain (asked for explicitly)
    res2 = ok(backup(name, repo, level='inc', chain_length=1))
    assert res2['level'] == 'inc' and res2['chain'] == res['chain']


def test_raw_disk_gets_full_backups_only(conn, prefix, image_dir, tiny):
    """A shut-off guest: the module starts it paused for each backup (no boot needed)."""
    g = make_writer_guest(conn, prefix + 'raw', tiny, image_dir, size='16M', fmt='raw')
    repo = os.path.join(image_dir, 'repo')
    os.mkdir(repo, 0o711)
    name = g['dom'].name()
    res = backup(name, repo, level='inc')
    assert res.get('failed') and 'raw' in res['msg'] and 'level=full or auto' in res['msg'], res
    assert not os.path.exists(os.path.join(repo, name, 'x')) and our_checkpoints(g['dom']) == []
    for dummy in range(2):
        res = ok(backup(name, repo))
        assert res['level'] == 'full' and 'raw' in res['level_reason'] and res['checkpoint'] is None
    assert g['dom'].listAllCheckpoints(0) == [] and not g['dom'].isActive()


def test_shut_off_guest_is_started_paused_and_stopped_again(conn, prefix, image_dir, tiny):
    g = make_writer_guest(conn, prefix + 'off', tiny, image_dir, size='16M')
    repo = os.path.join(image_dir, 'repo')
    os.mkdir(repo, 0o711)
    name = g['dom'].name()
    subprocess.run(['qemu-io', '-f', 'qcow2', '-c', 'write -P 0x61 0 1M', g['disk']], check=True,
                   stdout=subprocess.DEVNULL)
    res = ok(backup(name, repo, check=True))
    assert res['level'] == 'full' and any('start the shut-off guest paused' in a for a in res['actions'])
    assert not g['dom'].isActive()
    res = ok(backup(name, repo))
    assert res['started_paused'] is True and not g['dom'].isActive(), res
    subprocess.run(['qemu-io', '-f', 'qcow2', '-c', 'write -P 0x62 4M 128k', g['disk']], check=True,
                   stdout=subprocess.DEVNULL)
    res = ok(backup(name, repo))
    assert res['level'] == 'inc' and not g['dom'].isActive(), res
    assert layer_data_bytes(os.path.join(res['point_dir'], 'vda.qcow2')) == 2 * BLOCK
    out = os.path.join(image_dir, 'out')
    os.mkdir(out)
    res = ok(restore(name, repo, action='images', dest_dir=out, format='raw'))
    ref = os.path.join(image_dir, 'ref.raw')
    subprocess.run(['qemu-img', 'convert', '-f', 'qcow2', '-O', 'raw', g['disk'], ref], check=True)
    assert images_equal(res['images']['vda'], ref)

    # in place: the guest writes on after the backup; without force nothing happens, check mode
    # says what would, with force its disk is the backup again and its checkpoints are gone
    subprocess.run(['qemu-io', '-f', 'qcow2', '-c', 'write -P 0x63 8M 1M', g['disk']], check=True,
                   stdout=subprocess.DEVNULL)
    assert not images_equal(ref, paused_copy(g, os.path.join(image_dir, 'now.raw')))
    res = restore(name, repo, action='in_place')
    assert res.get('failed') and 'force=true' in res['msg']
    res = ok(restore(name, repo, action='in_place', force=True, check=True))
    assert res['changed'] and res['images'] == {'vda': g['disk']}
    assert any('drop the checkpoints' in a for a in res['actions'])
    assert our_checkpoints(g['dom']) != []
    res = ok(restore(name, repo, action='in_place', force=True))
    assert images_equal(ref, paused_copy(g, os.path.join(image_dir, 'after.raw')))
    assert our_checkpoints(g['dom']) == []
    assert ok(backup(name, repo))['level'] == 'full'
    # never over a running guest
    g['dom'].createWithFlags(1)     # paused is running for libvirt
    try:
        res = restore(name, repo, action='in_place', force=True)
        assert res.get('failed') and 'running' in res['msg']
    finally:
        g['dom'].destroy()


def test_module_killed_during_a_backup_next_run_recovers(guest, repo, image_dir, conn):
    dom, name = guest['dom'], guest['dom'].name()
    write_round(guest, 30, count=16)
    first = ok(backup(name, repo, level='full'))
    write_round(guest, 31, count=16)
    proc, argfile = module_process('virt_backup', {'domain': name, 'repository': repo})
    partial = faults.wait_until(lambda: len(our_checkpoints(dom)) == 2, 60, interval=0.002,
                                what='the backup checkpoint')
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    os.unlink(argfile)
    gdir = os.path.join(repo, name)
    left = tree(gdir)
    # the committed chain is intact and verifies; the new checkpoint and partial point are left
    assert our_checkpoints(dom)[0] == first['checkpoint'] and partial
    assert os.path.exists(os.path.join(gdir, '.inflight'))
    res = ok(restore(name, repo, action='verify'))
    assert res['point'] == 0 and res['verified'] is True
    # the next run cleans up (job, partial files, checkpoint) and continues the chain
    copy = os.path.join(image_dir, 'after-kill.raw')
    res = ok(paused_backup(guest, copy, repo))
    assert res['level'] == 'inc' and res['chain'] == first['chain'] and res['point'] == 1, res
    assert any('delete checkpoint' in r for r in res['recovered']), res['recovered']
    assert our_checkpoints(dom) == [res['checkpoint']]
    assert not [p for p in tree(gdir) if '.partial' in p]
    # the killed run's record of its job (what identifies it as ours) is gone too
    assert os.path.exists(os.path.join(gdir, '.inflight')) is False
    assert any('forget the record' in r for r in res['recovered']), res['recovered']
    out = os.path.join(image_dir, 'out-kill')
    os.mkdir(out)
    r = ok(restore(name, repo, action='images', dest_dir=out, format='raw'))
    assert images_equal(r['images']['vda'], copy)
    faults.record('virt_backup killed during a backup', 'SIGKILL to the module as soon as its '
                  'checkpoint existed (the backup job had begun)', 1,
                  'nothing (killed); left: %s' % faults.short(', '.join(p for p in left if 'partial' in p) or
                                                              'no partial directory'),
                  'the committed chain verified; the next run aborted/cleaned (%s) and took an '
                  'incremental that restores byte for byte' % faults.short('; '.join(res['recovered']), 160),
                  'make test', 'tests/integration/test_virt_backup.py::'
                  'test_module_killed_during_a_backup_next_run_recovers')


def test_full_repository_file_system(conn, prefix, image_dir, tiny):
    """A shut-off guest (started paused by the module for each backup: its QEMU starts after the
    tmpfs is mounted; a QEMU started before would not see a mount made later on a host whose /
    is a private mount, as here without systemd) writes with qemu-io between the backups."""
    g = make_writer_guest(conn, prefix + 'full', tiny, image_dir, size='64M')
    dom, name = g['dom'], g['dom'].name()

    def io(cmd):
        subprocess.run(['qemu-io', '-f', 'qcow2', '-c', cmd, g['disk']], check=True,
                       stdout=subprocess.DEVNULL)
    io('write -P 0x41 0 2M')
    mnt = os.path.join(image_dir, 'small')
    with faults.Tmpfs(mnt, '8m'):
        os.chmod(mnt, 0o711)
        first = ok(backup(name, mnt, level='full'))
        assert first['chain_size'] < 4 * 1024 * 1024, first
        io('write -P 0x42 8M 16M')                 # more than the space left
        res = backup(name, mnt)
        assert res.get('failed'), res
        msg = res['msg']
        assert 'inc backup failed' in msg and 'earlier backups are unchanged' in msg, msg
        assert not dom.isActive()
        gdir = os.path.join(mnt, name)
        cdir = os.path.join(gdir, first['chain'])
        assert tree(gdir) == sorted(['.kvmops-backups', '.lock', first['chain'],
                                     os.path.join(first['chain'], '00-full'),
                                     os.path.join(first['chain'], 'manifest.json')] +
                                    [os.path.join(first['chain'], '00-full', f)
                                     for f in os.listdir(os.path.join(cdir, '00-full'))])
        assert our_checkpoints(dom) == [first['checkpoint']]
        assert ok(restore(name, mnt))['verified'] is True
        subprocess.run(['mount', '-o', 'remount,size=64m', mnt], check=True)
        res = ok(backup(name, mnt))
        assert res['level'] == 'inc' and res['chain'] == first['chain'], res
        ref = os.path.join(image_dir, 'ref.raw')
        subprocess.run(['qemu-img', 'convert', '-f', 'qcow2', '-O', 'raw', g['disk'], ref], check=True)
        out = os.path.join(image_dir, 'out-enospc')
        os.mkdir(out)
        r = ok(restore(name, mnt, action='images', dest_dir=out, format='raw'))
        assert images_equal(r['images']['vda'], ref)
    faults.record('backup repository file system full', 'tmpfs of 8 MiB as the repository; a full '
                  'backup (2 MiB of data) fits, the next incremental (16 MiB written) does not', 1,
                  faults.short(msg),
                  'the first chain unchanged and verified, no partial file, the failed checkpoint '
                  'deleted; after more space the next run continued the chain (incremental) and '
                  'restored byte for byte', 'make test',
                  'tests/integration/test_virt_backup.py::test_full_repository_file_system')


def test_backup_playbook_backs_up_the_tagged_guests(guest, repo):
    """playbooks/backup.yml (role guest_backup) on this host: only the guest with the tag."""
    from support.ansible_run import run_playbook
    from support import paths
    dom, name = guest['dom'], guest['dom'].name()
    tag = 'bk' + name[-12:].replace('-', '')
    dom.setMetadata(2, '<tags><tag>%s</tag></tags>' % tag, 'kvmops', 'urn:kvmops:hypervisor:tags:1',
                    1 | 2)   # VIR_DOMAIN_METADATA_ELEMENT, live and config
    doc = run_playbook(os.path.join(paths.REPO, 'playbooks', 'backup.yml'),
                       extra_vars={'backup_hosts': 'localhost', 'guest_backup_tag': tag,
                                   'guest_backup_repository': repo, 'ansible_connection': 'local'})
    assert doc['_rc'] == 0, doc['_stderr'][-2000:]
    summary = [t for t in doc['plays'][1]['tasks'] if 'summary' in t['task']['name'].lower()
               or 'what was backed up' in t['task']['name'].lower()][0]['hosts']['localhost']['msg']
    assert len(summary) == 1 and summary[0].startswith('%s: full backup' % name), summary
    assert sorted(os.listdir(repo)) == [name]
