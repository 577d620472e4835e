"""Backups (issue 29): virt_backup against virtnbdbackup (Debian's 1.9.x) on the same guest.

    BENCH_CASES=backup make bench        (or: python bench/backup.py)

One tiny guest (TCG) with a 1 GiB qcow2 data disk, filled with 1 GiB of data before it boots.
Each tool in turn (virtnbdbackup refuses to run beside checkpoints it did not make): a full
backup, the guest writes BENCH_BACKUP_MIB (default 32) MiB of known blocks (its kvmops.writer),
an incremental backup, a restore of the latest point (virt_backup_restore action=images,
virtnbdrestore -o DIR); virtnbdbackup's checkpoints are deleted before ours begin. Wall-clock
time of each command, sizes on disk (du) and of the incremental, load average at start and end.
Writes bench/results-backups.md.
"""
import json
import os
import shutil
import subprocess
import sys
import time

import benchlib as B

sys.path.insert(0, os.path.join(B.REPO, 'tests'))
from support.backup_guests import boot, make_writer_guest, run_direct, write_round  # noqa: E402

MIB = 1024 * 1024
WRITE_MIB = int(os.environ.get('BENCH_BACKUP_MIB', '32'))


def du(path):
    out = subprocess.run(['du', '-sb', path], stdout=subprocess.PIPE, universal_newlines=True,
                         check=True).stdout
    return int(out.split()[0])


def timed(fn):
    t = time.monotonic()
    res = fn()
    return time.monotonic() - t, res


def sh(cmd):
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True,
                          check=False)
    if proc.returncode != 0:
        raise RuntimeError('%s failed: %s' % (' '.join(cmd), proc.stdout[-2000:]))
    return proc.stdout


def main():
    import libvirt
    libvirt.registerErrorHandler(lambda c, e: None, None)
    conn = libvirt.open(B.URI)
    work = os.path.join(B.IMAGE_ROOT, B.PREFIX + 'backup')
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work, 0o755)
    name = B.PREFIX + 'backup'
    load_start = B.loadavg()
    tiny = {'kernel': B.KERNEL, 'initrd': B.INITRD}
    disk = os.path.join(work, 'data.qcow2')
    sh(['qemu-img', 'create', '-q', '-f', 'qcow2', disk, '1G'])
    sh(['qemu-io', '-f', 'qcow2', '-c', 'write -P 0x5a 0 1G', disk])
    g = make_writer_guest(conn, name, tiny, work, size='1G')
    res = {}
    try:
        boot(g)
        ours, theirs = os.path.join(work, 'ours'), os.path.join(work, 'virtnbdbackup')
        os.mkdir(ours, 0o711)
        # virtnbdbackup refuses to run beside checkpoints it did not make ("Foreign checkpoint
        # found"): its whole sequence first, its checkpoints deleted, then ours.
        res['theirs_full_s'], dummy = timed(lambda: sh(['virtnbdbackup', '-d', name, '-l', 'full',
                                                        '-o', theirs, '-n', '-S', work]))
        res['theirs_full_bytes'] = du(theirs)
        t = time.monotonic()
        write_round(g, 1, count=WRITE_MIB * 16)
        res['write_s'] = time.monotonic() - t
        before = du(theirs)
        res['theirs_inc_s'], dummy = timed(lambda: sh(['virtnbdbackup', '-d', name, '-l', 'inc',
                                                       '-o', theirs, '-n', '-S', work]))
        res['theirs_inc_bytes'] = du(theirs) - before
        out2 = os.path.join(work, 'r-theirs')
        res['theirs_restore_s'], dummy = timed(lambda: sh(['virtnbdrestore', '-i', theirs, '-o', out2, '-n']))
        dom = conn.lookupByName(name)
        for cp in sorted(dom.listAllCheckpoints(0), key=lambda c: c.getName(), reverse=True):
            cp.delete(0)
        res['ours_full_s'], r = timed(lambda: run_direct('virt_backup', {'domain': name, 'repository': ours}))
        assert not r.get('failed'), r
        res['ours_full_bytes'] = r['size']
        # round r writes blocks r*64 .. r*64+count-1: a round past round 1's blocks
        write_round(g, 2 + WRITE_MIB * 16 // 64, count=WRITE_MIB * 16)
        res['ours_inc_s'], r = timed(lambda: run_direct('virt_backup', {'domain': name, 'repository': ours}))
        assert not r.get('failed') and r['level'] == 'inc', r
        res['ours_inc_bytes'] = r['size']
        out1 = os.path.join(work, 'r-ours')
        os.mkdir(out1)
        res['ours_restore_s'], r = timed(lambda: run_direct('virt_backup_restore', {
            'domain': name, 'repository': ours, 'action': 'images', 'dest_dir': out1}))
        assert not r.get('failed'), r
        res['ours_verify_s'], r = timed(lambda: run_direct('virt_backup_restore', {
            'domain': name, 'repository': ours, 'action': 'verify'}))
        assert r.get('verified'), r
    finally:
        try:
            d = conn.lookupByName(name)
            if d.isActive():
                d.destroy()
            d.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA)
        except libvirt.libvirtError:
            pass
        res['load_start'], res['load_end'] = load_start, B.loadavg()
        shutil.rmtree(work, ignore_errors=True)
    write_report(res)
    print(json.dumps(res, indent=1))


def quiet(r):
    """What the load average at the start says (the rise during the run is the guest's and the
    two tools' own work)."""
    start = r.get('load_start') or [99]
    if float(start[0]) < 2:
        return ('below the core count at the start, so no other run shared the machine then (the\n'
                'rise during the run is the guest\'s and the tools\' own work).')
    return ('shared with other runs, so these are figures under load, not results: re-run on a\n'
            'quiet machine.')


def write_report(r):
    def s(k):
        return '%.1f s' % r[k] if k in r else 'n/a'

    def m(k):
        return '%.1f MiB' % (r[k] / MIB) if k in r else 'n/a'

    def ratio(a, b):
        return ('%.2fx' % (r[a] / r[b])) if a in r and b in r and r[b] else 'n/a'
    text = """# Backups: virt_backup against virtnbdbackup

Written by `BENCH_CASES=backup make bench` (bench/backup.py) on %s UTC. One run, one
repetition per figure: **load average at start %s, at end %s** on a 2-core machine: %s

A tiny guest (QEMU TCG) with a 1 GiB qcow2 data disk filled with 1 GiB of data before it boots;
between the full and the incremental backup it writes %d MiB (its kvmops.writer, %.1f s).
virtnbdbackup %s (pull mode: NBD export read by the tool, stream format) and virt_backup
(push mode: QEMU writes qcow2 files). Wall-clock time of each command.

| | virt_backup | virtnbdbackup | ours / theirs |
|---|---|---|---|
| full backup, time | %s | %s | %s |
| full backup, size | %s | %s | %s |
| incremental (%d MiB written), time | %s | %s | %s |
| incremental, size | %s | %s | %s |
| restore of the latest point, time | %s | %s | %s |
| verify (sha256 of every file, qemu-img check, rebuild in scratch) | %s | - | |

virtnbdbackup refuses to run beside checkpoints it did not make ("Foreign checkpoint found"),
so the two tools ran one after the other on the same guest: virtnbdbackup full, %d MiB written,
its incremental and its restore; its checkpoints deleted; then virt_backup full, another %d MiB
written (other blocks, same amount), its incremental, restore and verify.
""" % (time.strftime('%Y-%m-%d %H:%M', time.gmtime()), r.get('load_start'), r.get('load_end'), quiet(r), WRITE_MIB,
       r.get('write_s', 0), sh(['virtnbdbackup', '--version']).strip(),
       s('ours_full_s'), s('theirs_full_s'), ratio('ours_full_s', 'theirs_full_s'),
       m('ours_full_bytes'), m('theirs_full_bytes'), ratio('ours_full_bytes', 'theirs_full_bytes'),
       WRITE_MIB, s('ours_inc_s'), s('theirs_inc_s'), ratio('ours_inc_s', 'theirs_inc_s'),
       m('ours_inc_bytes'), m('theirs_inc_bytes'), ratio('ours_inc_bytes', 'theirs_inc_bytes'),
       s('ours_restore_s'), s('theirs_restore_s'), ratio('ours_restore_s', 'theirs_restore_s'),
       s('ours_verify_s'), WRITE_MIB, WRITE_MIB)
    with open(os.path.join(B.BENCH, 'results-backups.md'), 'w') as f:
        f.write(text)


if __name__ == '__main__':
    main()
