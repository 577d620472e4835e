"""Issue 26, the install phase: an installer that did not finish, and two runs starting one
pending install, tried for real with the tiny guest as the installer on the host's libvirtd.

- An installer whose domain is destroyed (virsh destroy) or whose QEMU is killed (SIGKILL: a
  crash) before it finished must not be taken as a finished install: the run fails naming
  the cause and the fix, the final configuration is never started on that disk, the record
  stays 'started'; the fix in the message (remove the guest with its storage, run again)
  works.
- Two runs starting one pending install, the race forced: run A stops itself (SIGSTOP) at the
  exact step, after it checked the domain is shut off and just before it writes 'started'
  into the record; run B starts then. B must wait (the per-guest install lock) and follow A's
  installer; the installer runs once; a later run completes it and never installs again.

Each boots the tiny guest two or three times and runs the module 5-9 times (about 1-2 min per
test at load ~3): outside make test's budget, so `make reliability` runs them; make test
covers the same decisions with the fake domain of tests/unit/.../_install/test_install_phase.py.
"""
import json
import os
import re
import signal
import subprocess
import time

import libvirt
import pytest

from support import faults, paths
from support.ansible_run import run_module
from support.install_guests import (
    INSTALLER_ARGS, TREES, guest_args, inactive, lookup, marker, ok, record)

pytestmark = [pytest.mark.reliability, pytest.mark.slow]
SUITE = 'make reliability'
LOCK_DIR = '/run/kvmops/install'


def _installer_args(prefix, image_dir, short, wait):
    return guest_args(prefix, image_dir, short, {
        'location': os.path.join(TREES, 'rhel'), 'extra_args': INSTALLER_ARGS, 'wait': wait})


def _wait_console(rec, text, timeout=120):
    faults.wait_until(lambda: text in rec.text(), timeout, interval=0.05,
                      what='%r on the serial console' % text)


def _qemu_pid(name):
    with open('/run/libvirt/qemu/%s.pid' % name) as f:
        return int(f.read().strip())


def _shutoff_reason(conn, name):
    state, reason = conn.lookupByName(name).state()
    assert state == libvirt.VIR_DOMAIN_SHUTOFF
    return reason


def _refused(res, word):
    assert res.get('failed'), res
    msg = res['msg']
    assert 'did not finish' in msg and word in msg, msg
    assert 'remove_storage: true' in msg and 'serial log' in msg, msg
    return msg


def _stop_installer(conn, name, how):
    dom = conn.lookupByName(name)
    if how == 'destroyed':
        dom.destroy()
    else:
        os.kill(_qemu_pid(name), signal.SIGKILL)
    faults.wait_until(lambda: dom.state()[0] == libvirt.VIR_DOMAIN_SHUTOFF, 60,
                      what='the installer domain stopping')


def test_an_installer_destroyed_or_crashed_mid_install_is_not_finished(
        conn, prefix, image_dir, recorders, request):
    results = []
    for how, word in (('destroyed', "'destroyed'"), ('crashed', "'crashed'")):
        args = _installer_args(prefix, image_dir, how[:4], wait=0)
        name, disk = args['name'], args['disks'][0]['path']
        rec = recorders(args['serial'])
        res = ok(run_module('virt_install_domain', args))
        assert res['install_phase'] == 'started' and 'started the installer' in res['actions']
        # mid-install: the installer booted, it has not written its marker yet (it sleeps 1 s
        # after booting, then writes and powers off)
        _wait_console(rec, 'KVMOPS-TINY-GUEST BOOTED')
        _stop_installer(conn, name, how)
        assert 'KVMOPS-INSTALL-DONE' not in rec.text(), 'the installer finished first'
        reason = _shutoff_reason(conn, name)
        # check mode and a real run: refused, the final configuration never started
        for check in (True, False):
            msg = _refused(run_module('virt_install_domain', args, check=check), word)
        dom = lookup(conn, name)
        assert dom.state()[0] == libvirt.VIR_DOMAIN_SHUTOFF
        assert record(inactive(dom))['state'] == 'started'
        assert not marker(disk).startswith(b'KVMOPS-INSTALLED')
        assert rec.text().count('KVMOPS-TINY-GUEST BOOTED') == 1
        results.append((how, reason, faults.short(msg, 160)))
    # the fix the message gives: remove the guest with its storage, run again
    ok(run_module('virt_install_domain', dict(args, state='absent', remove_storage=True)))
    assert lookup(conn, name) is None and not os.path.exists(disk)
    res = ok(run_module('virt_install_domain', dict(args, wait=-1)))
    assert res['install_phase'] == 'completed' and res['actions'][-1] == 'started'
    assert marker(disk).startswith(b'KVMOPS-INSTALLED')
    faults.record('installer stopped mid-install (destroyed; QEMU SIGKILLed = crashed)',
                  'tiny-guest installer started with wait: 0, then virsh destroy / SIGKILL to '
                  'its QEMU after it booted, before it wrote its marker; then state: running '
                  '(check mode and real)', 2,
                  '; '.join('%s (libvirt shutoff reason %d): "%s"' % r for r in results),
                  'domain shut off, record "started", no final configuration started, disk '
                  'without the install marker; the fix (absent + remove_storage, run again) '
                  'installed it', SUITE, request.node.nodeid)


# Runs virt_install_domain's real main() with its arguments file; with KVMOPS_STOP_AT_STARTED
# set, the process SIGSTOPs itself at the exact step: just before libvirt's setMetadata
# writes state="started" into the install record (after its check that the domain is off).
STOPPING_MODULE = """
import os, signal
import libvirt
real = libvirt.virDomain.setMetadata
def setMetadata(self, typ, metadata, *args, **kwargs):
    if os.environ.get('KVMOPS_STOP_AT_STARTED') and 'state="started"' in (metadata or ''):
        os.environ.pop('KVMOPS_STOP_AT_STARTED')
        os.kill(os.getpid(), signal.SIGSTOP)
    return real(self, typ, metadata, *args, **kwargs)
libvirt.virDomain.setMetadata = setMetadata
from ansible_collections.kvmops.hypervisor.plugins.modules import virt_install_domain
virt_install_domain.main()
"""


def _module_proc(tmp_path, tag, args, stop=False):
    args_file = tmp_path / ('%s.json' % tag)
    args_file.write_text(json.dumps({'ANSIBLE_MODULE_ARGS': args}))
    script = tmp_path / 'stopping_module.py'
    script.write_text(STOPPING_MODULE)
    env = dict(os.environ, PYTHONPATH=paths.COLLECTIONS_DIR)
    env.pop('KVMOPS_STOP_AT_STARTED', None)
    if stop:
        env['KVMOPS_STOP_AT_STARTED'] = '1'
    return subprocess.Popen([os.path.join(paths.VENV, 'bin', 'python'), str(script),
                             str(args_file)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, universal_newlines=True)


def _proc_state(pid):
    try:
        with open('/proc/%d/stat' % pid) as f:
            return f.read().rsplit(')', 1)[1].split()[0]
    except OSError:
        return None


def _holds_open(pid, path):
    try:
        fds = os.listdir('/proc/%d/fd' % pid)
    except OSError:
        return False
    for fd in fds:
        try:
            if os.readlink('/proc/%d/fd/%s' % (pid, fd)) == path:
                return True
        except OSError:
            continue
    return False


def _result(proc):
    out, err = proc.communicate(timeout=300)
    try:
        return json.loads(out)
    except ValueError:
        raise AssertionError('no module result: %s\n%s' % (out[-2000:], err[-2000:]))


def test_two_runs_starting_one_pending_install_install_once(
        conn, prefix, image_dir, recorders, tmp_path, request):
    args = _installer_args(prefix, image_dir, 'race', wait=0)
    name, disk = args['name'], args['disks'][0]['path']
    ok(run_module('virt_install_domain', dict(args, state='present')))
    dom = lookup(conn, name)
    assert record(inactive(dom))['state'] == 'pending'
    lock = os.path.join(LOCK_DIR, '%s.lock' % dom.UUIDString())
    rec = recorders(args['serial'])
    full = dict(args, state='running')
    first = _module_proc(tmp_path, 'a', full, stop=True)
    second = None
    b_waited = False
    try:
        faults.wait_until(lambda: _proc_state(first.pid) == 'T' or first.poll() is not None,
                          120, what='run A stopping before it writes "started"')
        assert first.poll() is None, first.communicate()
        second = _module_proc(tmp_path, 'b', full)
        # B either finishes (no lock: the defect) or waits on the guest's install lock
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and second.poll() is None:
            if _holds_open(second.pid, lock):
                time.sleep(0.3)
                if second.poll() is None and _holds_open(second.pid, lock):
                    b_waited = True
                    break
            time.sleep(0.05)
    finally:
        os.kill(first.pid, signal.SIGCONT)
    res_a, res_b = _result(first), _result(second)
    # the installer runs to its end; then a later run completes the install phase
    faults.wait_until(lambda: dom.state()[0] == libvirt.VIR_DOMAIN_SHUTOFF
                      or 'KVMOPS-INSTALL-DONE' in rec.text(), 120, what='the installer')
    faults.wait_until(lambda: dom.state()[0] == libvirt.VIR_DOMAIN_SHUTOFF, 120,
                      what='the installer powering off')
    later = run_module('virt_install_domain', dict(full, wait=-1))
    installs = len(re.findall('KVMOPS-INSTALL-DONE', rec.text()))
    assert record(inactive(dom))['state'] == 'completed', (res_a, res_b, later.get('msg'))
    assert installs == 1, 'the installer ran %d times (a reset record reinstalled)' % installs
    assert not later.get('failed') and later['install_phase'] == 'completed', later
    assert 'started the installer' not in later['actions'], later['actions']
    assert not res_a.get('failed') and res_a['install_phase'] == 'started', res_a
    assert not res_b.get('failed') and res_b['install_phase'] in ('started', 'completed'), res_b
    assert 'started the installer' in res_a['actions']
    assert 'started the installer' not in res_b['actions'], res_b['actions']
    assert b_waited, 'run B did not wait on the install lock'
    assert dom.state()[0] == libvirt.VIR_DOMAIN_RUNNING and marker(disk).startswith(
        b'KVMOPS-INSTALLED')
    again = ok(run_module('virt_install_domain', full))
    assert not again['changed'] and again['install_phase'] == 'completed'
    faults.record('two runs starting one pending install, race forced',
                  'run A SIGSTOPped itself after its shut-off check, just before writing '
                  '"started" into the record; run B (same task) started then; SIGCONT to A '
                  'once B waited; a later run with wait: -1', 1,
                  'A started the installer; B waited on the guest\'s install lock, then '
                  'followed A\'s installer (install_phase %s); the later run completed it'
                  % res_b['install_phase'],
                  'the installer ran once; record completed; final configuration running; a '
                  're-run changed nothing', SUITE, request.node.nodeid)
