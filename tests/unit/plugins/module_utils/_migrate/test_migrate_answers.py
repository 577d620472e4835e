"""virt_migrate's probe of the target daemon after a failed move: bounded in time. A paused or
unreachable target never answers a call on the module's own connection (no keepalive without an
event loop); the real fault is tests/migration/test_virt_migrate.py's paused target. The fake
connections stand for libvirt's (pure timing logic)."""
import time

import pytest

pytest.importorskip('libvirt')

from ansible_collections.kvmops.hypervisor.plugins.module_utils._migrate import manager  # noqa: E402


class _Conn(object):
    def __init__(self, delay=0.0, alive=1, error=False):
        self.delay, self.alive, self.error = delay, alive, error

    def isAlive(self):
        return self.alive

    def getLibVersion(self):
        time.sleep(self.delay)
        if self.error:
            raise RuntimeError('client socket is closed')
        return 9000000


def test_a_target_that_answers():
    assert manager._answers(_Conn(), 5) is True  # pylint: disable=protected-access


def test_a_dead_or_closed_target():
    assert manager._answers(_Conn(alive=0), 5) is False  # pylint: disable=protected-access
    assert manager._answers(_Conn(error=True), 5) is False  # pylint: disable=protected-access


def test_a_target_that_never_answers_is_given_up_in_time():
    started = time.monotonic()
    assert manager._answers(_Conn(delay=30), 0.3) is False  # pylint: disable=protected-access
    assert time.monotonic() - started < 5
