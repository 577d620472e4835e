"""The test-bed lock: tests share libvirtd (LOCK_SH); a test that restarts it or edits
qemu.conf takes it exclusively. Writer-preferring, as testbed/with_testbed_lock.sh: every
taker passes the turnstile first and an exclusive taker keeps it until it holds the lock, so
shared takers arriving meanwhile wait behind it instead of starving it."""
import contextlib
import fcntl
import os

from support import paths


def _open(path):
    return os.open(path, os.O_CREAT | os.O_RDWR, 0o600)  # not inherited (PEP 446)


@contextlib.contextmanager
def _turnstile():
    fd = _open(paths.DAEMON_LOCK + '.turnstile')
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def acquire_shared():
    """The lock held shared; returns its descriptor (release() it)."""
    fd = _open(paths.DAEMON_LOCK)
    with _turnstile():
        fcntl.flock(fd, fcntl.LOCK_SH)
    return fd


def to_exclusive(fd):
    """Shared -> exclusive. The shared lock is dropped before queueing at the turnstile:
    two tests converting at once would otherwise each wait for the other's shared lock."""
    fcntl.flock(fd, fcntl.LOCK_UN)
    with _turnstile():
        fcntl.flock(fd, fcntl.LOCK_EX)


def to_shared(fd):
    fcntl.flock(fd, fcntl.LOCK_SH)


def release(fd):
    fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)
