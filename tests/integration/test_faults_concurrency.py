"""Faults: two ansible-playbook runs at once, and a controller interrupted mid-run.

Concurrent runs: the same guest list (define-only guests, so a repetition costs seconds)
with two different memory sizes, and the same qemu.conf copy with two different listen
addresses, started together. Both end with a clear result (success, or a handled failure
naming the cause); the final state equals one of the two runs; no duplicate or corrupted
definition, no partial image, no lost byte of qemu.conf. `make test` runs 2 repetitions,
`make reliability` (KVMOPS_RELIABILITY=1) 20.

Interrupted controller: SIGINT, then SIGTERM, sent to ansible-playbook as soon as the first
of four guests is defined; a plain re-run converges and the run after it changes nothing.
"""
import json
import os
import signal
import subprocess

import libvirt
import pytest
import yaml
from lxml import etree

from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt import qemu_conf as qc
from ansible_collections.kvmops.hypervisor.plugins.module_utils._guest import spec as dspec
from support import faults, paths
from support.ansible_run import ansible_env

FULL = os.environ.get('KVMOPS_RELIABILITY') == '1'
REPS = 20 if FULL else 2
SUITE = 'make reliability (20 repetitions); make test runs 2' if FULL else 'make test (2 repetitions)'
# What a run that loses a race may say; anything else (a traceback, MODULE FAILURE) is a bug.
CLEAR_FAILURES = ('appeared while this run created it', 'already exists',
                  'nothing was overwritten', 'libvirt refused the definition')


def guests_play(names, image_dir, memory):
    tasks = [{'name': 'guests', 'loop': names, 'kvmops.hypervisor.virt_install_domain': {
        'name': '{{ item }}', 'memory': memory, 'virt_type': 'qemu', 'os_variant': 'linux',
        'state': 'present', 'networks': [], 'graphics': {'type': 'none'},
        'disks': [{'path': image_dir + '/{{ item }}.img', 'size': 0.01}]}}]
    return [{'hosts': 'localhost', 'gather_facts': False, 'tasks': tasks}]


def conf_play(conf, listen):
    return [{'hosts': 'localhost', 'gather_facts': False, 'tasks': [
        {'name': 'listen', 'kvmops.hypervisor.vnc_listen': {'config': conf, 'listen': listen}}]}]


def start(play, path):
    with open(path, 'w') as f:
        yaml.safe_dump(play, f)
    cmd = [os.path.join(paths.VENV, 'bin', 'ansible-playbook'), '-i', 'localhost,', '-c',
           'local', path]
    return subprocess.Popen(cmd, env=ansible_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, universal_newlines=True)


def finish(proc, timeout=300):
    out, err = proc.communicate(timeout=timeout)
    doc = json.loads(out)
    results = []
    for task in doc['plays'][0]['tasks']:
        res = task['hosts'].get('localhost', {})
        results.extend(res.get('results', [res]))
    return proc.returncode, results


def assert_clear(results):
    for r in results:
        if r.get('failed'):
            msg = r.get('msg', '')
            assert any(c in msg for c in CLEAR_FAILURES), msg


def test_two_runs_on_the_same_guests(conn, prefix, image_dir, tmp_path, request):
    outcomes = {'both ok': 0, 'one lost a race (clear error)': 0}
    messages = set()
    for rep in range(REPS):
        names = ['%sc%d-%d' % (prefix, rep, i) for i in range(3)]
        a = start(guests_play(names, image_dir, 128), str(tmp_path / 'a.yml'))
        b = start(guests_play(names, image_dir, 192), str(tmp_path / 'b.yml'))
        (rc_a, res_a), (rc_b, res_b) = finish(a), finish(b)
        assert_clear(res_a)
        assert_clear(res_b)
        failed = [r['msg'] for r in res_a + res_b if r.get('failed')]
        messages.update(faults.short(m, 160) for m in failed)
        outcomes['both ok' if not failed else 'one lost a race (clear error)'] += 1
        for name in names:
            dom = conn.lookupByName(name)
            tree = etree.fromstring(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE).encode())
            assert tree.findtext('memory') in ('131072', '196608')
            disks = [d.get('file') for d in tree.iterfind('devices/disk/source')]
            assert disks == [os.path.join(image_dir, name + '.img')]
            assert os.path.getsize(disks[0]) == dspec.parse_size_gib(0.01, 'size')
        # a plain re-run of either converges to its own state
        rc, res = finish(start(guests_play(names, image_dir, 128), str(tmp_path / 'c.yml')))
        assert rc == 0, res
    assert not [f for f in os.listdir(image_dir) if f.endswith('.kvmops-partial')]
    assert len([f for f in os.listdir(image_dir) if f.endswith('.img')]) == 3 * REPS
    faults.record('two ansible-playbook runs at once on the same guest list',
                  '3 define-only guests with a disk each, memory 128 vs 192 MiB, started '
                  'together', REPS, '; '.join('%s: %d' % kv for kv in outcomes.items()) +
                  ('. Messages: ' + ' | '.join(sorted(messages)) if messages else ''),
                  'each guest defined once, with the memory of one run, its one disk; no '
                  'partial image', SUITE, request.node.nodeid)


def test_two_runs_on_the_same_qemu_conf(tmp_path, request):
    with open(os.path.join(paths.FIXTURES, 'qemu_conf', '9.0.0-debian12.conf'), 'rb') as f:
        original = f.read()
    text = original.decode('utf-8', 'surrogateescape')
    want = {qc.edit(text, [('vnc_listen', listen)])[0].encode('utf-8', 'surrogateescape'): listen
            for listen in ('127.0.0.2', '127.0.0.3')}
    winners = {}
    for rep in range(REPS):
        d = tmp_path / ('r%d' % rep)
        d.mkdir()
        conf = str(d / 'qemu.conf')
        with open(conf, 'wb') as f:
            f.write(original)
        os.chmod(conf, 0o600)
        a = start(conf_play(conf, '127.0.0.2'), str(tmp_path / 'a.yml'))
        b = start(conf_play(conf, '127.0.0.3'), str(tmp_path / 'b.yml'))
        (rc_a, res_a), (rc_b, res_b) = finish(a), finish(b)
        assert rc_a == 0 and rc_b == 0, (res_a, res_b)
        with open(conf, 'rb') as f:
            final = f.read()
        assert final in want, final[-400:]  # exactly one run's edit, every other byte kept
        winners[want[final]] = winners.get(want[final], 0) + 1
        assert os.listdir(str(d)) == ['qemu.conf']
    faults.record('two ansible-playbook runs at once on the same qemu.conf',
                  'vnc_listen 127.0.0.2 vs 127.0.0.3 on one copy, started together', REPS,
                  'both succeeded every time; final file = %s' % ', '.join(
                      '%s\'s edit %d times' % kv for kv in sorted(winners.items())),
                  'exactly one run\'s edit, no other byte changed, no temporary file',
                  SUITE, request.node.nodeid)


@pytest.mark.parametrize('sig', [signal.SIGINT, signal.SIGTERM], ids=['SIGINT', 'SIGTERM'])
def test_interrupted_controller_rerun_converges(conn, prefix, image_dir, tmp_path, request, sig):
    names = ['%si%d' % (prefix, i) for i in range(4)]
    play = guests_play(names, image_dir, 128)
    for t in play[0]['tasks']:
        t['kvmops.hypervisor.virt_install_domain']['disks'][0]['format'] = 'qcow2'
    proc = start(play, str(tmp_path / 'p.yml'))

    def first_defined():
        try:
            return conn.lookupByName(names[0])
        except libvirt.libvirtError:
            return None
    try:
        faults.wait_until(first_defined, 120, interval=0.01, what='the first guest')
    finally:
        proc.send_signal(sig)
    try:
        proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise
    defined_after = [n for n in names if _exists(conn, n)]
    left = sorted(os.listdir(image_dir))
    rc, res = finish(start(play, str(tmp_path / 'p.yml')))
    assert rc == 0, [r.get('msg') for r in res if r.get('failed')]
    rc, res = finish(start(play, str(tmp_path / 'p.yml')))
    assert rc == 0 and not any(r.get('changed') for r in res), res
    for n in names:
        assert _exists(conn, n)
    assert not [f for f in os.listdir(image_dir) if f.endswith('.kvmops-partial')]
    faults.record('controller interrupted (%s to ansible-playbook)' % sig.name,
                  '%s as soon as the first of 4 guests (qcow2 disks) was defined' % sig.name,
                  1, 'exit code %s; %d of 4 guests defined, files then: %s'
                  % (proc.returncode, len(defined_after), ', '.join(left) or 'none'),
                  'the re-run created the rest; the run after it changed nothing',
                  'make test', request.node.nodeid)


def _exists(conn, name):
    try:
        conn.lookupByName(name)
        return True
    except libvirt.libvirtError:
        return False
