# -*- coding: utf-8 -*-
"""Benchmark case "migration": live migration of a 256 MiB TCG guest between two podman
hypervisors that share /vm-images, kvmops.hypervisor.virt_migrate against the floor,
`virsh migrate --live --p2p --persistent --undefinesource --unsafe` doing the same move.

Per repetition, one move with each tool (their order alternates; each moves the guest to the
other host, so the guest ping-pongs). Figures: libvirt's job statistics of the completed job,
read on the destination (total time and downtime: the same counters for both tools), and the
wall-clock time of the whole call (ansible-playbook's start-up included for the module). Writes
bench/.work/raw/migration.json and its own section of bench/results.md (between the
`<!-- section:migration -->` markers, which bench/report.py keeps).

Usage (bench/run.sh does this for BENCH_CASES=migration): migration.py [--reps N]
"""
import argparse
import json
import os
import re
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'tests'))

import benchlib as B  # noqa: E402
from support import migration_fleet as mf  # noqa: E402

BEGIN, END = '<!-- section:migration -->', '<!-- /section:migration -->'
GUEST = 'bench-mig'


def jobinfo(host, name):
    """virsh domjobinfo --completed on host: {'total_ms', 'downtime_ms'}."""
    out = mf.sh(host, 'virsh', 'domjobinfo', '--completed', name).stdout
    found = {}
    for key, field in (('Time elapsed', 'total_ms'), ('Total downtime', 'downtime_ms')):
        m = re.search(r'^%s:\s+(\d+)\s+ms' % key, out, re.M)
        if m:
            found[field] = int(m.group(1))
    return found


def move_virsh(src, dst):
    t = time.monotonic()
    mf.sh(src, 'virsh', 'migrate', '--live', '--p2p', '--persistent', '--undefinesource', '--unsafe',
          GUEST, mf.uri(dst), timeout=600)
    wall = time.monotonic() - t
    stats = jobinfo(dst, GUEST)
    stats['wall_s'] = wall
    return stats


def move_module(inv, src, dst):
    t = time.monotonic()
    r, _out = mf.migrate(inv, src, name=GUEST, dest_uri=mf.uri(dst), storage='shared', unsafe=True)
    wall = time.monotonic() - t
    if not r.get('moved'):
        raise B.BenchError('virt_migrate did not move the guest: %s' % r.get('msg'))
    return {'total_ms': r['job']['total_ms'], 'downtime_ms': r['job']['downtime_ms'], 'wall_s': wall}


def measure(reps):
    samples = {'module': [], 'virsh': []}
    with mf.fleet(2, shared=True, prefix='kvmops-bench-mig-') as (a, b):
        inv = mf.inventory(os.path.join(tempfile.mkdtemp(prefix='kvmops-bench-mig-'), 'inv.json'), [a, b])
        mf.start_guest(a, GUEST, memory_mib=256)
        where = [a, b]
        # Warm-up: one move each way with each tool (not measured).
        move_virsh(where[0], where[1])
        where.reverse()
        move_module(inv, where[0], where[1])
        where.reverse()
        for i in range(reps):
            order = ('module', 'virsh') if i % 2 == 0 else ('virsh', 'module')
            for tool in order:
                if tool == 'virsh':
                    s = move_virsh(where[0], where[1])
                else:
                    s = move_module(inv, where[0], where[1])
                samples[tool].append(s)
                B.log('migration %s %s -> %s: %s' % (tool, where[0], where[1], s))
                where.reverse()
        counts = mf.wait_count(where[0], GUEST, 1)
        samples['guest_boot_ids'] = sorted(set(c[1] for c in counts))
    return samples


def med(samples, key):
    return statistics.median(s[key] for s in samples)


def section(data):
    s = data['samples']
    lines = [
        BEGIN,
        '## Case migration: live migration of a 256 MiB TCG guest',
        '',
        'Measured by `bench/migration.py` (`BENCH_CASES=migration make bench`) on %s UTC, %d repetition(s) '
        'per tool after one warm-up move each; load average at start / end %s / %s. '
        '**Taken under load**: the machine (2 cores) was shared with other test runs, so these are '
        'ratios within one run, not absolute figures. '
        'Two hypervisor containers (podman, recipe testbed/images/hypervisor.packages) share /vm-images '
        '(a podman volume; libvirt calls it local, so both tools pass unsafe); the guest is the tiny guest '
        'counting on its serial port, 256 MiB, TCG. Job figures are libvirt\'s statistics of the completed '
        'job read on the destination; wall time is the whole call (the module\'s includes ansible-playbook '
        'starting and connecting through podman).'
        % (data['date'], data['reps'], ' '.join(map(str, data['load_start'])), ' '.join(map(str, data['load_end']))),
        '',
        '| tool | job total median (min-max) | downtime median (min-max) | wall median |',
        '|---|---|---|---|',
    ]
    for tool, label in (('virsh', '`virsh migrate --live --p2p` (floor)'), ('module', '`virt_migrate`')):
        t = [x['total_ms'] for x in s[tool]]
        d = [x['downtime_ms'] for x in s[tool]]
        lines.append('| %s | %d ms (%d-%d) | %d ms (%d-%d) | %.1f s |' % (
            label, statistics.median(t), min(t), max(t), statistics.median(d), min(d), max(d), med(s[tool], 'wall_s')))
    lines += [
        '',
        'Ratio virt_migrate / virsh (medians, same run): job total %.2fx, downtime %.2fx, wall %.2fx. '
        'The guest kept one boot id through all %d moves: %s.'
        % (med(s['module'], 'total_ms') / med(s['virsh'], 'total_ms'),
           med(s['module'], 'downtime_ms') / max(1, med(s['virsh'], 'downtime_ms')),
           med(s['module'], 'wall_s') / med(s['virsh'], 'wall_s'),
           2 * data['reps'] + 2, 'yes' if len(s['guest_boot_ids']) == 1 else 'NO (%s)' % s['guest_boot_ids']),
        END,
    ]
    return '\n'.join(lines)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('--reps', type=int, default=int(os.environ.get('BENCH_MIGRATION_REPS', '3')))
    args = parser.parse_args()
    data = {'date': time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime()), 'reps': args.reps,
            'load_start': B.loadavg()}
    data['samples'] = measure(args.reps)
    data['load_end'] = B.loadavg()
    os.makedirs(B.RAW, exist_ok=True)
    with open(os.path.join(B.RAW, 'migration.json'), 'w') as f:
        json.dump(data, f, indent=1)
    B.write_section('migration', section(data))
    B.log('migration: written to bench/results.md')


if __name__ == '__main__':
    main()
