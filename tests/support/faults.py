"""Fault injection for the reliability tests (tests/integration/test_faults_*.py).

Every injection is bounded in time and undone by the caller's fixture: libvirtd is always
running again afterwards, tmpfs mounts are unmounted, servers are stopped. Each test records
what it injected and what it saw with `record(...)`; tools/reliability_report.py turns the
records into tests/RELIABILITY.md.
"""
import json
import os
import signal
import subprocess
import time

from . import paths

REPORT_DIR = os.path.join(paths.REPO, '.build', 'reports', 'reliability')


# ------------------------------------------------------------------ libvirtd
def libvirtd_pid():
    """The host's libvirtd (its init script's pid file), never one inside a container or
    namespace another test started (pidof would see those too)."""
    for path in ('/run/libvirtd.pid', '/var/run/libvirtd.pid'):
        try:
            with open(path) as f:
                pid = int(f.read().strip())
            with open('/proc/%d/comm' % pid) as f:
                if f.read().strip() != 'libvirtd':
                    continue
            if os.readlink('/proc/%d/ns/mnt' % pid) != os.readlink('/proc/self/ns/mnt'):
                continue
            return pid
        except (OSError, ValueError):
            continue
    return None


def wait_for_libvirtd(timeout=90):
    """Wait until libvirtd answers (virsh version), like testbed/setup.sh."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if subprocess.run(['virsh', '-c', paths.URI, 'version'], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL, check=False, timeout=30).returncode == 0:
            return
        time.sleep(0.3)
    raise AssertionError('libvirtd did not answer within %ss' % timeout)


def start_libvirtd():
    if libvirtd_pid() is None:
        subprocess.run(['service', 'libvirtd', 'start'], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, check=False, timeout=60)
    wait_for_libvirtd()


def restart_libvirtd():
    """What a handler does after qemu.conf changed (only under the daemon_exclusive lock)."""
    subprocess.run(['service', 'libvirtd', 'restart'], stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, check=True, timeout=120)
    wait_for_libvirtd()


def stop_libvirtd(timeout=30):
    subprocess.run(['service', 'libvirtd', 'stop'], stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, check=False, timeout=60)
    _wait_gone(timeout)


def kill_libvirtd(sig=signal.SIGKILL, timeout=30):
    pid = libvirtd_pid()
    if pid is None:
        return None
    os.kill(pid, sig)
    if sig == signal.SIGKILL:
        deadline = time.monotonic() + timeout
        while os.path.exists('/proc/%d' % pid) and not _zombie(pid):
            if time.monotonic() > deadline:
                raise AssertionError('libvirtd %d still running after SIGKILL' % pid)
            time.sleep(0.02)
        _remove_stale_pidfile()
    return pid


def _zombie(pid):
    try:
        with open('/proc/%d/stat' % pid) as f:
            return f.read().rsplit(')', 1)[1].split()[0] == 'Z'
    except OSError:
        return True


def _remove_stale_pidfile():
    for path in ('/var/run/libvirtd.pid', '/run/libvirtd.pid'):
        try:
            os.unlink(path)
        except OSError:
            pass


def _wait_gone(timeout):
    deadline = time.monotonic() + timeout
    while libvirtd_pid() is not None:
        if time.monotonic() > deadline:
            raise AssertionError('libvirtd still running after %ss' % timeout)
        time.sleep(0.05)


def wait_until(predicate, timeout, interval=0.005, what='condition'):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError('%s not reached within %ss' % (what, timeout))


# ------------------------------------------------------------------ tmpfs
class Tmpfs(object):
    """A small tmpfs at path (a full file system for ENOSPC tests), unmounted on exit."""

    def __init__(self, path, size):
        self.path = path
        self.size = size

    def __enter__(self):
        os.makedirs(self.path, exist_ok=True)
        subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=%s,mode=0755' % self.size, 'tmpfs',
                        self.path], check=True, timeout=30)
        return self

    def fill(self, leave=0):
        """Fill the file system, leaving about `leave` bytes free."""
        st = os.statvfs(self.path)
        free = st.f_bavail * st.f_frsize - leave
        fd = os.open(os.path.join(self.path, '.filler'), os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            chunk = 1024 * 1024
            while free > 0 and chunk >= 512:
                try:
                    free -= os.write(fd, b'\0' * min(chunk, free))
                except OSError:
                    chunk //= 2
        finally:
            os.close(fd)

    def __exit__(self, *exc):
        subprocess.run(['umount', '-l', self.path], check=False, timeout=30)


# ------------------------------------------------------------------ records
def record(fault, injected, runs, reported, left, suite, test, ok=True, notes=None):
    """One row of tests/RELIABILITY.md (written as JSON next to the JUnit reports)."""
    os.makedirs(REPORT_DIR, exist_ok=True)
    row = {'fault': fault, 'injected': injected, 'runs': runs, 'reported': reported,
           'left': left, 'suite': suite, 'test': test, 'ok': ok, 'notes': notes,
           'when': time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}
    name = '%s.json' % test.replace('/', '_').replace('::', '--')
    with open(os.path.join(REPORT_DIR, name), 'w') as f:
        json.dump(row, f, indent=1, sort_keys=True)
    return row


def short(msg, n=220):
    msg = ' '.join((msg or '').split())
    return msg if len(msg) <= n else msg[:n - 3] + '...'
