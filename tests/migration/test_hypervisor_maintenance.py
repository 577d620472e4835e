"""The hypervisor_maintenance role over three podman hypervisors sharing /vm-images (make migration).

hv1 runs three counting tiny guests: one in anti-affinity group `db` (hv2 already runs another
of that group, so it must go to hv3), one untagged, one pinned to hv1 (it cannot move: the
unmovable policy shuts it down). `state: drained` moves the others away live
(two at a time), shuts the pinned one down, and marks hv1; every moved guest runs exactly once
elsewhere with its counter going on. `state: active` brings them back and starts the pinned one.
"""
import json
import os
import signal
import subprocess
import time

import pytest

from support import migration_fleet as mf
from support import paths
from support.ansible_run import ansible_env, run_playbook

pytestmark = [pytest.mark.migration]

MARKER = '/var/lib/kvmops/maintenance.json'
TAGS_NS = 'urn:kvmops:hypervisor:tags:1'


def tag(host, name, *tags):
    xml = '<tags>%s</tags>' % ''.join('<tag>%s</tag>' % t for t in tags)
    mf.sh(host, 'virsh', 'metadata', name, TAGS_NS, '--key', 'kvmops', '--set', xml, '--live', '--config')


def playbook(tmp_path, host, state, **extra):
    vars_ = {'hypervisor_maintenance_state': state, 'hypervisor_maintenance_unsafe': True,
             'hypervisor_maintenance_unmovable': 'shutdown', 'hypervisor_maintenance_parallel': 2,
             'hypervisor_maintenance_shutdown_timeout': 30}
    vars_.update(extra)
    path = str(tmp_path / ('maint-%s.yml' % state))
    with open(path, 'w') as f:
        json.dump([{'hosts': host, 'gather_facts': False, 'vars': vars_,
                    'roles': [{'role': 'kvmops.hypervisor.hypervisor_maintenance'}]}], f)
    return path


def run(tmp_path, inv, host, state, check=False, **extra):
    doc = run_playbook(playbook(tmp_path, host, state, **extra), inventory=inv, check=check, diff=check,
                       timeout=1800)
    return doc


def failures(doc):
    """The failed tasks' names and messages (for assertion messages)."""
    out = []
    for play in doc.get('plays', []):
        for task in play['tasks']:
            for host, res in task['hosts'].items():
                if res.get('failed'):
                    out.append('%s on %s: %s' % (task['task']['name'], host, res.get('msg')))
    return '\n'.join(out) or doc.get('_stderr', '')[-3000:]


def where(names, guest):
    return [(h, mf.state(h, guest)) for h in names if mf.state(h, guest) is not None]


def test_drain_one_of_three_hypervisors_and_bring_it_back(tmp_path):
    with mf.fleet(3, shared=True) as names:
        hv1, hv2, hv3 = names
        inv = mf.inventory(str(tmp_path / 'inv.json'), names)
        guests = ['mnt-a', 'mnt-b', 'mnt-pin']
        for g in guests:
            mf.start_guest(hv1, g, wait=False)
        # hv2 already runs a guest of anti-affinity group db: mnt-a (db) must go to hv3.
        mf.start_guest(hv2, 'mnt-db2', wait=False)
        for g in guests:
            mf.wait_count(hv1, g, 3)
        tag(hv1, 'mnt-a', 'anti_affinity:db')
        tag(hv2, 'mnt-db2', 'anti_affinity:db')
        tag(hv1, 'mnt-pin', 'pin:%s' % hv1)
        boot = dict((g, mf.counts(hv1, g)[-1][1]) for g in guests)

        # Check mode: plans, moves nothing, writes no marker.
        doc = run(tmp_path, inv, hv1, 'drained', check=True)
        assert doc['_rc'] == 0, failures(doc)
        for g in guests:
            assert where(names, g) == [(hv1, 'running')], (g, where(names, g))
        assert mf.sh(hv1, 'test', '-e', MARKER, check=False).returncode != 0

        doc = run(tmp_path, inv, hv1, 'drained')
        assert doc['_rc'] == 0 and doc['stats'][hv1]['failures'] == 0, failures(doc)
        spots = {}
        for g in ('mnt-a', 'mnt-b'):
            found = where(names, g)
            assert len(found) == 1 and found[0][0] != hv1 and found[0][1] == 'running', (g, found)
            spots[g] = found[0][0]
            assert mf.qemu_processes(hv1, g) == 0
            after = mf.wait_count(spots[g], g, 1)
            assert after[0][1] == boot[g] and after[0][0] > 1, 'the counter of %s restarted: %s' % (g, after[0])
        assert spots['mnt-a'] == hv3, 'anti-affinity ignored: %s' % spots
        assert where(names, 'mnt-pin') == [(hv1, 'shut off')]
        assert mf.sh(hv1, 'virsh', 'list', '--name').stdout.strip() == ''
        marker = json.loads(mf.sh(hv1, 'cat', MARKER).stdout)
        assert marker['state'] == 'drained'
        assert sorted((m['name'], m['how'], m['host']) for m in marker['guests']) == sorted(
            [('mnt-a', 'migrated', spots['mnt-a']), ('mnt-b', 'migrated', spots['mnt-b']), ('mnt-pin', 'shutdown', hv1)])

        # Re-run: nothing to do.
        doc = run(tmp_path, inv, hv1, 'drained')
        assert doc['_rc'] == 0 and doc['stats'][hv1]['changed'] == 0, json.dumps(doc['stats'])

        doc = run(tmp_path, inv, hv1, 'active')
        assert doc['_rc'] == 0 and doc['stats'][hv1]['failures'] == 0, failures(doc)
        for g in guests:
            assert where(names, g) == [(hv1, 'running')], (g, where(names, g))
        for g in ('mnt-a', 'mnt-b'):
            back = mf.wait_count(hv1, g, 1)
            assert back[-1][1] == boot[g], 'the counter of %s restarted' % g
        assert mf.sh(hv1, 'test', '-e', MARKER, check=False).returncode != 0
        doc = run(tmp_path, inv, hv1, 'active')
        assert doc['_rc'] == 0 and doc['stats'][hv1]['changed'] == 0, json.dumps(doc['stats'])


def settled(names, guests, timeout=300):
    """{guest: host} once every guest runs on exactly one host (an in-flight move finished)."""
    deadline = time.monotonic() + timeout
    while True:
        found = dict((g, where(names, g)) for g in guests)
        if all(len(f) == 1 and f[0][1] == 'running' for f in found.values()):
            return dict((g, f[0][0]) for g, f in found.items())
        if time.monotonic() > deadline:
            raise AssertionError('the guests did not settle: %s' % found)
        time.sleep(1)


def test_an_interrupted_drain_is_finished_by_a_rerun_and_active_brings_every_guest_back(tmp_path):
    """The controller is SIGKILLed as soon as the first guest runs on another host: after its
    move, before the batch's marker update (the window in which the origin of a moved guest
    was lost before each batch recorded its guests as moving)."""
    with mf.fleet(3, shared=True) as names:
        hv1, hv2, hv3 = names
        inv = mf.inventory(str(tmp_path / 'inv.json'), names)
        guests = ['int-a', 'int-b', 'int-c']
        for g in guests:
            mf.start_guest(hv1, g, wait=False)
        for g in guests:
            mf.wait_count(hv1, g, 3)
        boot = dict((g, mf.counts(hv1, g)[-1][1]) for g in guests)

        cmd = [os.path.join(paths.VENV, 'bin', 'ansible-playbook'), '-i', inv,
               playbook(tmp_path, hv1, 'drained', hypervisor_maintenance_unmovable='fail')]
        with open(str(tmp_path / 'interrupted.json'), 'w') as log:
            controller = subprocess.Popen(cmd, env=ansible_env(), stdout=log, stderr=subprocess.STDOUT,
                                          start_new_session=True)
        moved = None
        try:
            deadline = time.monotonic() + 900
            while moved is None and controller.poll() is None and time.monotonic() < deadline:
                for h in (hv2, hv3):
                    running = mf.sh(h, 'virsh', 'list', '--name', '--state-running').stdout.split()
                    moved = moved or next(((g, h) for g in guests if g in running), None)
                time.sleep(0.2)
        finally:
            if controller.poll() is None:
                os.killpg(controller.pid, signal.SIGKILL)  # the controller this test started
            controller.wait(timeout=60)
        assert moved, 'no guest moved before the controller ended (rc %s): %s' % (
            controller.returncode, (tmp_path / 'interrupted.json').read_text()[-3000:])
        marker = json.loads(mf.sh(hv1, 'cat', MARKER).stdout)
        assert marker['state'] == 'draining', marker
        records = dict((m['name'], m) for m in marker['guests'])
        # the interrupted batch is known only as "moving" (origin hv1, by UUID)
        assert records[moved[0]]['how'] == 'moving' and records[moved[0]]['host'] == hv1, marker

        settled(names, guests)  # a move the controller had started may still finish on its own
        doc = run(tmp_path, inv, hv1, 'drained', hypervisor_maintenance_unmovable='fail')
        assert doc['_rc'] == 0 and doc['stats'][hv1]['failures'] == 0, failures(doc)
        spots = settled(names, guests, timeout=30)
        assert hv1 not in spots.values(), spots
        assert mf.sh(hv1, 'virsh', 'list', '--name').stdout.strip() == ''
        marker = json.loads(mf.sh(hv1, 'cat', MARKER).stdout)
        assert marker['state'] == 'drained', marker
        assert sorted((m['name'], m['how'], m['host']) for m in marker['guests']) == sorted(
            (g, 'migrated', spots[g]) for g in guests), (marker, spots)

        doc = run(tmp_path, inv, hv1, 'active')
        assert doc['_rc'] == 0 and doc['stats'][hv1]['failures'] == 0, failures(doc)
        for g in guests:
            assert where(names, g) == [(hv1, 'running')], (g, where(names, g))
            assert mf.wait_count(hv1, g, 1)[-1][1] == boot[g], 'the counter of %s restarted' % g
        assert mf.sh(hv1, 'test', '-e', MARKER, check=False).returncode != 0


def test_the_migration_firewall_task_file_opens_ssh_and_the_migration_ports(tmp_path):
    """kvm_host's migration_firewall.yml with iptables in a hypervisor container (check, real, re-run)."""
    with mf.fleet(1, shared=False) as names:
        (hv,) = names
        inv = mf.inventory(str(tmp_path / 'inv.json'), names)
        path = str(tmp_path / 'fw.yml')
        with open(path, 'w') as f:
            json.dump([{'hosts': hv, 'gather_facts': False,
                        'vars': {'kvm_host_firewall': 'iptables', 'kvm_host_firewall_persist': False,
                                 'kvm_host_migration_port_min': 49152, 'kvm_host_migration_port_max': 49215,
                                 'kvm_host_migration_source': ''},
                        'tasks': [{'name': 'migration firewall', 'ansible.builtin.include_role': {
                            'name': 'kvmops.hypervisor.kvm_host', 'tasks_from': 'migration_firewall.yml'}}]}], f)
        doc = run_playbook(path, inventory=inv, check=True)
        assert doc['_rc'] == 0 and doc['stats'][hv]['changed'] == 1, failures(doc)
        assert 'kvmops live migration' not in mf.sh(hv, 'iptables', '-S', 'INPUT').stdout
        doc = run_playbook(path, inventory=inv)
        assert doc['_rc'] == 0 and doc['stats'][hv]['changed'] == 1, failures(doc)
        rules = mf.sh(hv, 'iptables', '-S', 'INPUT').stdout
        assert '--dports 22,49152:49215' in rules and 'kvmops live migration' in rules, rules
        doc = run_playbook(path, inventory=inv)
        assert doc['_rc'] == 0 and doc['stats'][hv]['changed'] == 0, json.dumps(doc['stats'])
