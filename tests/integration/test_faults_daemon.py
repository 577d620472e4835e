"""Faults against the real libvirtd: stopped before a run, SIGKILLed during define, during
start and during an install phase's wait, restarted between two tasks of a play.

Each takes the daemon exclusively (daemon_fault -> daemon_exclusive: no other test uses
libvirtd meanwhile), is bounded in time and leaves libvirtd running. Only in
`make reliability` (KVMOPS_RELIABILITY=1): restarting the daemon stalls everyone else.
Expected every time: a handled error naming the cause (never a traceback), then a plain
re-run converges; no domain pointing at a missing disk, no image created and forgotten, no
installer started twice.
"""
import json
import os
import signal
import subprocess
import time

import libvirt
import pytest
import yaml
from lxml import etree

from support import paths
from support.ansible_run import ansible_env, run_module

pytestmark = [pytest.mark.reliability, pytest.mark.slow]
SUITE = 'make reliability'
TREES = '/var/cache/kvmops-testbed/tiny/trees'
INSTALLER_ARGS = 'console=tty0 console=ttyS0,115200 kvmops.installer=1'
NS = 'urn:kvmops:hypervisor:install:1'


def define_args(prefix, image_dir, short, **extra):
    args = {'name': prefix + short, 'memory': 128, 'virt_type': 'qemu', 'os_variant': 'linux',
            'state': 'present', 'networks': [], 'graphics': {'type': 'none'},
            'disks': [{'path': os.path.join(image_dir, short + '.img'), 'size': 0.01}]}
    args.update(extra)
    return args


def boot_args(prefix, image_dir, tiny, short):
    return define_args(prefix, image_dir, short, state='running', kernel=tiny['kernel'],
                       initrd=tiny['initrd'], cmdline='console=ttyS0',
                       serial=os.path.join(image_dir, short + '.log'))


def start_module(module, args, tmp_path):
    play = [{'hosts': 'localhost', 'gather_facts': False,
             'tasks': [{'name': 'under test', 'kvmops.hypervisor.' + module: args}]}]
    path = str(tmp_path / ('%s-%d.yml' % (module, time.time() * 1000)))
    with open(path, 'w') as f:
        yaml.safe_dump(play, f)
    return subprocess.Popen([os.path.join(paths.VENV, 'bin', 'ansible-playbook'), '-i',
                             'localhost,', '-c', 'local', path], env=ansible_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            universal_newlines=True)


def result_of(proc, timeout=300):
    out, err = proc.communicate(timeout=timeout)
    doc = json.loads(out)
    return doc['plays'][0]['tasks'][0]['hosts']['localhost']


def lookup(name):
    """A fresh connection each time: the daemon comes and goes in these tests."""
    try:
        c = libvirt.open(paths.URI)
    except libvirt.libvirtError:
        return None
    try:
        dom = c.lookupByName(name)
        return etree.fromstring(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE).encode()), \
            dom.state()[0]
    except libvirt.libvirtError:
        return None
    finally:
        c.close()


def handled(res):
    """A failure the module reported itself (not an exception reaching the user)."""
    msg = res.get('msg', '')
    assert res.get('failed'), res
    assert 'Traceback' not in msg and 'MODULE FAILURE' not in msg and \
        'Module failed:' not in msg, msg
    return msg


def assert_no_dangling_disk(name, image_dir):
    found = lookup(name)
    if found is None:
        return
    for src in found[0].iterfind('devices/disk/source'):
        assert os.path.exists(src.get('file')), 'domain %s points at a missing disk' % name


def converge(args):
    res = run_module('virt_install_domain', args)
    assert not res.get('failed'), res.get('msg')
    again = run_module('virt_install_domain', args)
    assert not again.get('failed') and not again['changed'], again.get('actions')
    return res


def installed(disk):
    with open(disk, 'rb') as f:
        return f.read(64).startswith(b'KVMOPS-INSTALLED ')


def qemu_processes(name):
    out = subprocess.run(['pgrep', '-f', 'guest=%s,' % name], stdout=subprocess.PIPE,
                         universal_newlines=True, check=False).stdout.split()
    return [int(p) for p in out]


def test_libvirtd_stopped_before_a_run(conn, prefix, image_dir, request, daemon_fault):
    args = define_args(prefix, image_dir, 'stopped')
    daemon_fault.stop_libvirtd()
    res = run_module('virt_install_domain', args)
    msg = handled(res)
    assert 'Cannot connect to libvirt' in msg and 'running' in msg, msg
    left = sorted(os.listdir(image_dir))
    assert left == [], left
    daemon_fault.start_libvirtd()
    converge(args)
    daemon_fault.record('libvirtd stopped before a run', 'service libvirtd stop, then '
                        'virt_install_domain (define with a new disk)', 1,
                        daemon_fault.short(msg), 'nothing (no image); the re-run defined it',
                        SUITE, request.node.nodeid)


def test_libvirtd_killed_during_define(conn, prefix, image_dir, tmp_path, request,
                                       daemon_fault):
    """SIGSTOP libvirtd the moment the new image appears (the define call is next), then
    SIGKILL it: the define is in flight when the daemon dies."""
    outcomes = []
    for i in range(3):
        args = define_args(prefix, image_dir, 'def%d' % i)
        disk = args['disks'][0]['path']
        proc = start_module('virt_install_domain', args, tmp_path)
        try:
            daemon_fault.wait_until(lambda: os.path.exists(disk), 120, interval=0.001,
                                    what='the new image')
            pid = daemon_fault.libvirtd_pid()
            os.kill(pid, signal.SIGSTOP)
            time.sleep(1.0)
            daemon_fault.kill_libvirtd()
        finally:
            res = result_of(proc)
        msg = handled(res)
        daemon_fault.start_libvirtd()
        defined = lookup(args['name']) is not None
        assert_no_dangling_disk(args['name'], image_dir)
        assert os.path.exists(disk), 'the image was removed although the define may have ' \
                                     'been stored'
        inode = os.stat(disk).st_ino
        converge(args)
        assert os.stat(disk).st_ino == inode  # reused, never recreated
        outcomes.append((defined, daemon_fault.short(msg, 160)))
    daemon_fault.record(
        'libvirtd SIGKILLed during define', 'SIGSTOP when the new disk image appeared (the '
        'define is the next call), 1 s, SIGKILL', len(outcomes),
        ' | '.join(sorted(set(m for d, m in outcomes))),
        'the image, kept; the domain %s; the re-run defined it with the same image' % (
            'defined in %d of %d runs' % (sum(d for d, m in outcomes), len(outcomes))),
        SUITE, request.node.nodeid)


def test_libvirtd_killed_during_start(conn, prefix, image_dir, tiny, tmp_path, request,
                                      daemon_fault):
    args = boot_args(prefix, image_dir, tiny, 'start')
    proc = start_module('virt_install_domain', args, tmp_path)
    try:
        daemon_fault.wait_until(lambda: lookup(args['name']), 120, interval=0.002,
                                what='the definition')
        daemon_fault.kill_libvirtd()
    finally:
        res = result_of(proc)
    daemon_fault.start_libvirtd()
    reported = daemon_fault.short(handled(res)) if res.get('failed') else \
        'succeeded (the start completed before the kill)'
    assert_no_dangling_disk(args['name'], image_dir)
    converge(args)
    assert lookup(args['name'])[1] == libvirt.VIR_DOMAIN_RUNNING
    procs = qemu_processes(args['name'])
    assert len(procs) == 1, procs  # one QEMU: never started twice
    daemon_fault.record('libvirtd SIGKILLed during start', 'SIGKILL as soon as the domain '
                        'was defined (the start call is next)', 1, reported,
                        'one running guest after the re-run (one QEMU process)', SUITE,
                        request.node.nodeid)


def test_libvirtd_killed_during_install_wait(conn, prefix, image_dir, tmp_path, request,
                                             daemon_fault):
    args = define_args(prefix, image_dir, 'inst', state='running', memory=256, wait=-1,
                       serial=os.path.join(image_dir, 'inst.log'),
                       install={'location': os.path.join(TREES, 'rhel'),
                                'extra_args': INSTALLER_ARGS,
                                'cache_dir': os.path.join(image_dir, 'cache')})
    args['disks'][0]['size'] = 0.02
    proc = start_module('virt_install_domain', args, tmp_path)

    def installer_running():
        found = lookup(args['name'])
        return found is not None and found[1] == libvirt.VIR_DOMAIN_RUNNING
    try:
        daemon_fault.wait_until(installer_running, 180, interval=0.05, what='the installer')
        started = lookup(args['name'])[0].find('metadata/{%s}install' % NS).get('started')
        daemon_fault.kill_libvirtd()
    finally:
        res = result_of(proc)
    msg = handled(res)
    # The installer goes on without libvirtd. libvirt starts QEMU with -no-shutdown, so the
    # guest's poweroff leaves QEMU paused until libvirtd is back: wait for the installer's
    # mark on the disk (then its poweroff), not for QEMU to exit.
    daemon_fault.wait_until(lambda: installed(args['disks'][0]['path']), 240, interval=0.5,
                            what="the installer's mark on the disk")
    time.sleep(2)
    daemon_fault.start_libvirtd()
    again = run_module('virt_install_domain', args)
    assert not again.get('failed'), again.get('msg')
    assert again['install_phase'] == 'completed', again
    rec = lookup(args['name'])[0].find('metadata/{%s}install' % NS)
    assert rec.get('state') == 'completed' and rec.get('started') == started  # one installer
    assert installed(args['disks'][0]['path'])
    last = run_module('virt_install_domain', args)
    assert not last['changed'], last['actions']
    daemon_fault.record('libvirtd SIGKILLed during an install phase\'s wait',
                        'SIGKILL while the installer ran (wait: -1); libvirtd started again '
                        'after the installer powered off', 1, daemon_fault.short(msg),
                        'the install record still "started" with the same start time; the '
                        're-run completed the phase and started the final configuration',
                        SUITE, request.node.nodeid)


def test_libvirtd_restarted_between_two_tasks(conn, prefix, image_dir, tmp_path, request,
                                              daemon_fault):
    a = define_args(prefix, image_dir, 'ra', graphics={'type': 'vnc'})
    b = define_args(prefix, image_dir, 'rb')
    play = [{'hosts': 'localhost', 'gather_facts': False, 'tasks': [
        {'name': 'first guest', 'kvmops.hypervisor.virt_install_domain': a},
        {'name': 'restart libvirtd', 'ansible.builtin.command': 'service libvirtd restart',
         'changed_when': True},
        {'name': 'second guest', 'kvmops.hypervisor.virt_install_domain': b},
        {'name': 'per-guest listen', 'kvmops.hypervisor.vnc_listen': {
            'scope': 'domains', 'domains': [a['name']], 'listen': '127.0.0.1'}},
    ]}]
    path = str(tmp_path / 'restart.yml')
    with open(path, 'w') as f:
        yaml.safe_dump(play, f)
    out = subprocess.run([os.path.join(paths.VENV, 'bin', 'ansible-playbook'), '-i',
                          'localhost,', '-c', 'local', path], env=ansible_env(),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         universal_newlines=True, timeout=300, check=False)
    doc = json.loads(out.stdout)
    results = [t['hosts']['localhost'] for t in doc['plays'][0]['tasks']]
    daemon_fault.wait_for_libvirtd()
    failed = [r.get('msg') for r in results if r.get('failed')]
    assert out.returncode == 0, failed
    assert lookup(a['name']) and lookup(b['name'])
    daemon_fault.record('libvirtd restarted between two tasks of a play',
                        'a play: define, `service libvirtd restart`, define, vnc_listen', 1,
                        'every task succeeded (each module run opens its own connection)',
                        'both guests defined', SUITE, request.node.nodeid)
