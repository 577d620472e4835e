# -*- coding: utf-8 -*-
"""Benchmark case "drain": the drain of a hypervisor running three guests, the
kvmops.hypervisor.hypervisor_maintenance role (`state: drained`) against the floor, the same
three live moves one after another with
`virsh migrate --live --p2p --persistent --undefinesource --unsafe` to the hosts the drain chose.

Three podman hypervisors share /vm-images (tests/support/migration_fleet.py, as
tests/migration/test_hypervisor_maintenance.py); hv1 runs three counting tiny guests of 256 MiB.
Per repetition, once each (their order alternates):
  drain       the role with `state: drained` on hv1 (wall time of ansible-playbook), then
              `state: active` brings the guests back (its wall time is recorded separately);
  sequential  the three moves with virsh, run on hv1 one after another (each `podman exec`ed
              from here), to the targets of the last drain; then back to hv1 (not measured).
Plus, per repetition, a one-task play (ping) on hv1: ansible-playbook's fixed cost here.
The role runs with its default `hypervisor_maintenance_parallel` (BENCH_DRAIN_PARALLEL
overrides it) and `hypervisor_maintenance_unsafe: true` (libvirt calls the podman volume local).
After every step the guests are checked to be where they should be (exactly one host), and at
the end that every guest kept its boot id (its counter went on through all the moves).
Writes bench/.work/raw/drain.json and its own section of bench/results.md (between the
`<!-- section:drain -->` markers, which bench/report.py keeps). Everything it makes (containers
kvmops-bench-drain-*, volume kvmops-bench-drainvol-*, a temporary directory) is removed at the end.

Usage (bench/run.sh does this for BENCH_CASES=drain): drain.py [--reps N]  (BENCH_DRAIN_REPS, default 2)
"""
import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time

import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'tests'))

import benchlib as B  # noqa: E402
from support import migration_fleet as mf  # noqa: E402

PREFIX = 'kvmops-bench-drain-'
GUESTS = ['bench-drain-a', 'bench-drain-b', 'bench-drain-c']
MEMORY_MIB = 256
ROLE_DEFAULTS = os.path.join(B.REPO, 'roles', 'hypervisor_maintenance', 'defaults', 'main.yml')


def role_default(name):
    with open(ROLE_DEFAULTS) as f:
        return yaml.safe_load(f)[name]


class Drain(object):
    """The fleet, the inventory and the plays of one benchmark run."""

    def __init__(self, names, work, parallel):
        self.names = names
        self.hv1 = names[0]
        self.work = work
        self.parallel = parallel
        self.inv = mf.inventory(os.path.join(work, 'inv.json'), names)
        self.marker = role_default('hypervisor_maintenance_marker')
        self.plays = dict((s, self._play(s)) for s in ('drained', 'active'))
        self.plays['ping'] = self._write('ping', [{'hosts': self.hv1, 'gather_facts': False,
                                                  'tasks': [{'ansible.builtin.ping': {}}]}])

    def _write(self, tag, doc):
        path = os.path.join(self.work, '%s.yml' % tag)
        with open(path, 'w') as f:
            json.dump(doc, f)
        return path

    def _play(self, state):
        vars_ = {'hypervisor_maintenance_state': state, 'hypervisor_maintenance_unsafe': True}
        if self.parallel is not None:
            vars_['hypervisor_maintenance_parallel'] = self.parallel
        return self._write('maint-%s' % state, [{'hosts': self.hv1, 'gather_facts': False, 'vars': vars_,
                                                 'roles': [{'role': 'kvmops.hypervisor.hypervisor_maintenance'}]}])

    def play(self, tag):
        wall, _counts, _doc = B.run_playbook(self.plays[tag], inventory=self.inv, timeout=1800)
        return wall

    def where(self):
        """{guest: [(host, state)]} over the fleet."""
        found = dict((g, []) for g in GUESTS)
        for h in self.names:
            for g in GUESTS:
                st = mf.state(h, g)
                if st is not None:
                    found[g].append((h, st))
        return found

    def expect(self, spots, step):
        """Every guest runs on exactly its host in spots, and nowhere else is it defined."""
        found = self.where()
        wrong = dict((g, f) for g, f in found.items() if f != [(spots[g], 'running')])
        if wrong:
            raise B.BenchError('after %s: guests not where expected %s: %s' % (step, spots, wrong))

    def home(self):
        return dict((g, self.hv1) for g in GUESTS)

    def drain(self):
        """(wall of drained, wall of active, {guest: target})."""
        self.expect(self.home(), 'the set-up of the drain')
        wall = self.play('drained')
        marker = json.loads(mf.sh(self.hv1, 'cat', self.marker).stdout)
        targets = dict((m['name'], m['host']) for m in marker['guests'] if m.get('how') == 'migrated')
        if sorted(targets) != sorted(GUESTS) or marker.get('state') != 'drained':
            raise B.BenchError('the drain did not migrate every guest: %s' % marker)
        self.expect(targets, 'the drain')
        back = self.play('active')
        self.expect(self.home(), 'state active')
        return wall, back, targets

    def sequential(self, targets):
        """The same moves with virsh, one after another: wall of the three; then back (not measured)."""
        self.expect(self.home(), 'the set-up of the sequential moves')
        t = time.monotonic()
        for g in GUESTS:
            mf.sh(self.hv1, 'virsh', 'migrate', '--live', '--p2p', '--persistent', '--undefinesource', '--unsafe',
                  g, mf.uri(targets[g]), timeout=600)
        wall = time.monotonic() - t
        self.expect(targets, 'the sequential moves')
        for g in GUESTS:
            mf.sh(targets[g], 'virsh', 'migrate', '--live', '--p2p', '--persistent', '--undefinesource', '--unsafe',
                  g, mf.uri(self.hv1), timeout=600)
        self.expect(self.home(), 'the moves back')
        return wall


def measure(reps, parallel):
    samples = {'drain': [], 'active': [], 'sequential': [], 'ping': [], 'targets': []}
    work = tempfile.mkdtemp(prefix=PREFIX)
    try:
        with mf.fleet(3, shared=True, prefix=PREFIX, volume_prefix='kvmops-bench-drainvol-') as names:
            d = Drain(names, work, parallel)
            samples['hosts'] = names
            for g in GUESTS:
                mf.start_guest(d.hv1, g, memory_mib=MEMORY_MIB, wait=False)
            boot = {}
            for g in GUESTS:
                boot[g] = mf.wait_count(d.hv1, g, 3)[-1][1]
            # Warm-up: one of each (not measured); its drain gives the first targets.
            _w, _b, targets = d.drain()
            d.sequential(targets)
            d.play('ping')
            B.log('drain warm-up done: targets %s' % targets)
            for i in range(reps):
                for what in (('drain', 'sequential') if i % 2 == 0 else ('sequential', 'drain')):
                    if what == 'drain':
                        wall, back, targets = d.drain()
                        samples['drain'].append(wall)
                        samples['active'].append(back)
                        samples['targets'].append(targets)
                        B.log('drain rep %d: drained %.1f s, active %.1f s, targets %s' % (i + 1, wall, back, targets))
                    else:
                        wall = d.sequential(targets)
                        samples['sequential'].append(wall)
                        B.log('drain rep %d: sequential virsh %.1f s' % (i + 1, wall))
                samples['ping'].append(d.play('ping'))
            # Counting on hv1 now (a few more lines than the log held) with the boot id of the start.
            kept = []
            for g in GUESTS:
                last = mf.counts(d.hv1, g)[-1][0]
                kept.append(mf.wait_count(d.hv1, g, last + 5)[-1][1] == boot[g])
            samples['boot_ids_kept'] = all(kept)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return samples


def section(data):
    s = data['samples']
    med = dict((k, statistics.median(s[k])) for k in ('drain', 'active', 'sequential', 'ping'))

    def spread(k):
        return '%.1f s (%.1f-%.1f)' % (med[k], min(s[k]), max(s[k]))

    hv = dict((h, 'hv%d' % (i + 1)) for i, h in enumerate(s['hosts']))
    spots = sorted(set(tuple(sorted(t.items())) for t in s['targets']))
    per_host = [', '.join('%s -> %s' % (g[len('bench-drain-'):], hv.get(h, h)) for g, h in t) for t in spots]
    busy = max(data['load_start'][0], data['load_end'][0]) > 1.5
    lines = [
        '<!-- section:drain -->',
        '## Case drain: a hypervisor with 3 running guests drained, against the same moves one after another',
        '',
        'Measured by `bench/drain.py` (`BENCH_CASES=drain make bench`) on %s UTC, %d repetition(s) of each '
        '(interleaved, their order alternating) after one warm-up of each; load average at start / end %s / %s. '
        '%s'
        'Three hypervisor containers (podman, recipe testbed/images/hypervisor.packages) share /vm-images '
        '(a podman volume: both ways pass unsafe); hv1 runs three counting tiny guests (%d MiB, TCG). '
        '*drain*: ansible-playbook of the hypervisor_maintenance role, `state: drained` on hv1, '
        'hypervisor_maintenance_parallel %s (%s); *sequential*: `virsh migrate --live --p2p --persistent '
        '--undefinesource --unsafe` of the three guests one after another on hv1 (each through `podman exec`), '
        'to the hosts the drain chose. *active*: the role bringing them back (not part of the ratio).'
        % (data['date'], data['reps'], ' '.join(map(str, data['load_start'])), ' '.join(map(str, data['load_end'])),
           '**Taken under load** (1-min load average above 1.5 on 2 cores): ratios within one run, not absolute '
           'figures. ' if busy else '', MEMORY_MIB, data['parallel'], 'the role\'s default' if data['parallel_is_default'] else 'BENCH_DRAIN_PARALLEL'),
        '',
        '| what | wall median (min-max) |',
        '|---|---|',
        '| drain (`state: drained`, whole play) | %s |' % spread('drain'),
        '| 3 moves one after another (`virsh migrate`, floor) | %s |' % spread('sequential'),
        '| back (`state: active`, whole play) | %s |' % spread('active'),
        '| a one-task play on hv1 (ansible-playbook\'s fixed cost) | %s |' % spread('ping'),
        '',
        'Ratio drain / sequential (medians, same run): %.2fx. Targets the drain chose: %s. '
        'Every guest kept its boot id through all %d moves: %s.'
        % (med['drain'] / med['sequential'], '; '.join(per_host),
           4 * len(GUESTS) * (data['reps'] + 1), 'yes' if s['boot_ids_kept'] else 'NO'),
        '<!-- /section:drain -->',
    ]
    return '\n'.join(lines)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('--reps', type=int, default=int(os.environ.get('BENCH_DRAIN_REPS', '2')))
    args = parser.parse_args()
    override = os.environ.get('BENCH_DRAIN_PARALLEL')
    parallel = int(override) if override else None
    data = {'date': time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime()), 'reps': args.reps,
            'parallel': parallel if parallel is not None else role_default('hypervisor_maintenance_parallel'),
            'parallel_is_default': parallel is None, 'load_start': B.loadavg()}
    B.log('drain: start, load average %s, %d rep(s), parallel %s' % (data['load_start'], args.reps, data['parallel']))
    data['samples'] = measure(args.reps, parallel)
    data['load_end'] = B.loadavg()
    os.makedirs(B.RAW, exist_ok=True)
    with open(os.path.join(B.RAW, 'drain.json'), 'w') as f:
        json.dump(data, f, indent=1)
    text = section(data)
    B.write_section('drain', text)
    print(text, flush=True)
    B.log('drain: load average %s, written to bench/results.md' % data['load_end'])


if __name__ == '__main__':
    main()
