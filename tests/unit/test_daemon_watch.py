"""How the suite's daemon watch (tests/support/daemon_watch.py) names a dead process: the wait
status of a zombie read from /proc (real child processes), the kernel's segfault lines."""
import os
import signal
import subprocess
import sys
import time

from support import daemon_watch


def _zombie(argv):
    """A child that has ended and is not reaped yet (as libvirtd under this machine's PID 1)."""
    p = subprocess.Popen(argv)
    deadline = time.monotonic() + 10
    while daemon_watch.alive(p.pid) and time.monotonic() < deadline:
        time.sleep(0.01)
    return p


def test_a_killed_process_is_named_by_its_signal():
    p = _zombie([sys.executable, '-c', 'import os, signal; os.kill(os.getpid(), signal.SIGKILL)'])
    try:
        assert not daemon_watch.alive(p.pid)
        assert daemon_watch.describe_status(daemon_watch.how_it_ended(p.pid)) == \
            'killed by signal 9 (SIGKILL)'
    finally:
        p.wait()


def test_an_exit_status_is_named():
    p = _zombie([sys.executable, '-c', 'raise SystemExit(3)'])
    try:
        assert daemon_watch.describe_status(daemon_watch.how_it_ended(p.pid)) == \
            'exited with status 3'
    finally:
        p.wait()


def test_statuses():
    assert daemon_watch.describe_status(signal.SIGSEGV | 0x80) == \
        'killed by signal 11 (SIGSEGV), core dumped'
    assert 'unknown' in daemon_watch.describe_status(None)
    assert daemon_watch.alive(os.getpid())
    assert not daemon_watch.alive(None)


def test_kernel_segfault_lines_since_the_test_began(monkeypatch):
    dmesg = ('[  10.000001] rpc-libvirtd[100]: segfault at 0 ip 00007f error 4 in '
             'libvirt.so.0.9000.0[7f+1000]\n'
             '[ 500.250000] rpc-libvirtd[4242]: segfault at 0 ip 00007f51 sp 00007f error 4 '
             'in libvirt.so.0.9000.0[7f5+1c6000] likely on CPU 1 (core 1, socket 0)\n'
             '[ 500.250100] Code: 48 8b 07 ...\n'
             '[ 501.000000] virbr0: port 2(vnet3) entered disabled state\n')

    class Done(object):
        stdout = dmesg
    monkeypatch.setattr(daemon_watch.subprocess, 'run', lambda *a, **k: Done())
    lines = daemon_watch.kernel_lines(400.0)
    assert len(lines) == 1 and 'rpc-libvirtd[4242]: segfault at 0' in lines[0]
