"""The host's libvirtd between integration tests (issue 25).

A daemon that dies mid-suite must not turn into forty unrelated failures and leftovers.
tests/integration/conftest.py calls `Watch.start()` when a test begins (under the shared
test-bed lock, so no other run may restart the daemon meanwhile) and `Watch.check()` when its
call ends: the same pid alive and answering a fast call, else the test fails with the death
described here (how the process ended, what libvirtd logged, the kernel's segfault line, a
core file), and `restart()` starts libvirtd again under the exclusive lock before the test's
fixtures tear down, so they still remove what they made.

The check is cheap: a /proc read and one libvirt call (~5 ms).
"""
import glob
import os
import signal
import subprocess
import threading
import time

from . import faults, paths, testbed_lock

LOG = '/var/log/libvirt/libvirtd.log'
ANSWER_TIMEOUT = 15.0
RESTART_TIMEOUT = 90


def _uptime():
    with open('/proc/uptime') as f:
        return float(f.read().split()[0])


def _stat(pid):
    """/proc/PID/stat fields after the command (state first), or None."""
    try:
        with open('/proc/%d/stat' % pid) as f:
            return f.read().rsplit(')', 1)[1].split()
    except (OSError, IndexError):
        return None


def alive(pid):
    st = _stat(pid) if pid else None
    return bool(st) and st[0] not in ('Z', 'X')


def how_it_ended(pid):
    """The wait status of a dead libvirtd, when it is still a zombie (PID 1 here does not
    reap orphans; /proc/PID/stat field 52 is the exit code), else None."""
    st = _stat(pid)
    if not st or st[0] not in ('Z', 'X') or len(st) < 50:
        return None
    try:
        return int(st[49])
    except ValueError:
        return None


def describe_status(status):
    if status is None:
        return 'its exit status is unknown (the process is gone, reaped by PID 1)'
    sig = status & 0x7f
    if sig:
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = 'signal %d' % sig
        return 'killed by signal %d (%s)%s' % (
            sig, name, ', core dumped' if status & 0x80 else '')
    return 'exited with status %d' % ((status >> 8) & 0xff)


def answers(timeout=ANSWER_TIMEOUT):
    """None if libvirtd answered a fast call (open, getLibVersion) in time, else why not."""
    import libvirt
    result = []

    def call():
        try:
            c = libvirt.open(paths.URI)
            try:
                c.getLibVersion()
            finally:
                c.close()
            result.append(None)
        except libvirt.libvirtError as e:
            result.append(str(e))
    t = threading.Thread(target=call, daemon=True)
    t.start()
    t.join(timeout)
    if t.is_alive():
        return 'it did not answer within %ss' % timeout
    return result[0]


def _log_size():
    try:
        return os.path.getsize(LOG)
    except OSError:
        return 0


def _log_tail(offset, lines=8):
    """(logged since offset?, the last lines logged since offset, else the log's last)."""
    try:
        with open(LOG, 'rb') as f:
            data = f.read()
    except OSError:
        return []
    new = data[offset:] if len(data) >= offset else data
    text = [t for t in (new or data).decode('utf-8', 'replace').splitlines() if t.strip()]
    return bool(new), text[-lines:]


def kernel_lines(since_uptime):
    """The kernel's lines about a libvirtd thread faulting since since_uptime (seconds after
    boot): 'rpc-libvirtd[PID]: segfault at 0 ip ... in libvirt.so...'. [] if dmesg is not
    readable."""
    try:
        out = subprocess.run(['dmesg'], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                             universal_newlines=True, timeout=10, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    found = []
    for line in out.splitlines():
        if 'libvirt' not in line or not any(w in line for w in (
                'segfault', 'trap', 'general protection', 'Code:', 'potentially unexpected')):
            continue
        try:
            when = float(line.split(']', 1)[0].lstrip('[ '))
        except ValueError:
            when = since_uptime
        if when >= since_uptime - 1:
            found.append(line.strip())
    return found[-4:]


def core_files(since_epoch):
    """Core files written since since_epoch where kernel.core_pattern puts them (a path)."""
    try:
        with open('/proc/sys/kernel/core_pattern') as f:
            pattern = f.read().strip()
    except OSError:
        return []
    if not pattern.startswith('/'):
        return []
    d = os.path.dirname(pattern)
    out = []
    for p in glob.glob(os.path.join(d, '*')):
        try:
            if os.path.getmtime(p) >= since_epoch - 1 and 'libvirtd' in os.path.basename(p):
                out.append(p)
        except OSError:
            continue
    return sorted(out)


class Watch(object):
    """What was true of the host's libvirtd when a test began."""

    def __init__(self):
        self.pid = None
        self.log_offset = 0
        self.uptime = 0.0
        self.epoch = 0.0

    def start(self):
        self.pid = faults.libvirtd_pid()
        self.log_offset = _log_size()
        self.uptime = _uptime()
        self.epoch = time.time()
        return self.pid

    def check(self):
        """None while the daemon the test began with is alive and answers; else the death,
        described for the test's failure."""
        if self.pid is None:
            return None  # nothing to compare with (it was down when the test began)
        if alive(self.pid):
            why = answers()
            if why is None:
                return None
            if alive(self.pid):
                return ('libvirtd (pid %d) is running but failed a fast call during this '
                        'test: %s' % (self.pid, why))
        return self.death()

    def death(self):
        status = how_it_ended(self.pid)
        lines = ['libvirtd (pid %d) died during this test: %s.' % (self.pid,
                                                                   describe_status(status))]
        now = faults.libvirtd_pid()
        if now is not None and now != self.pid:
            lines.append('A new libvirtd (pid %d) runs now: something restarted it without '
                         'the exclusive test-bed lock.' % now)
        k = kernel_lines(self.uptime)
        if k:
            lines.append('kernel: ' + '\n        '.join(k))
        cores = core_files(self.epoch)
        if cores:
            lines.append('core file(s): ' + ', '.join(cores))
        new, tail = _log_tail(self.log_offset)
        if tail:
            lines.append('last lines of %s%s:\n    %s' % (
                LOG, ' (written during this test)' if new else
                ' (nothing written during this test; the lines before it)', '\n    '.join(tail)))
        else:
            lines.append('%s: nothing' % LOG)
        lines.append('libvirtd is started again for the rest of the run (issue 25); other '
                     'runs sharing this daemon may have caused its death as well.')
        return '\n'.join(lines)


def restart(lock_fd=None):
    """Start the host's libvirtd again under the exclusive test-bed lock (lock_fd: this
    test's shared lock, converted and given back shared). Returns the new pid; raises
    AssertionError if it does not come back."""
    if lock_fd is not None:
        testbed_lock.to_exclusive(lock_fd)
    try:
        pid = faults.libvirtd_pid()
        if pid is None or not alive(pid):  # another run may have restarted it meanwhile
            for path in ('/run/libvirtd.pid', '/var/run/libvirtd.pid'):
                try:
                    with open(path) as f:
                        old = int(f.read().strip() or 0)
                    if not alive(old):
                        os.unlink(path)
                except (OSError, ValueError):
                    pass
            subprocess.run(['service', 'libvirtd', 'start'], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, check=False, timeout=60)
        faults.wait_for_libvirtd(RESTART_TIMEOUT)
        return faults.libvirtd_pid()
    finally:
        if lock_fd is not None:
            testbed_lock.to_shared(lock_fd)
