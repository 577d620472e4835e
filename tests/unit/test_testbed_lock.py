"""The test-bed lock prefers writers (tests/support/testbed_lock.py): real flock on a lock
file in a temporary directory, real processes."""
import multiprocessing
import os
import time

from support import paths, testbed_lock


def _reader_stream(lock_path, stop_at, counter):
    """Overlapping shared holders, as parallel integration tests are: never a gap."""
    paths.DAEMON_LOCK = lock_path
    while time.monotonic() < stop_at:
        fd = testbed_lock.acquire_shared()
        with counter.get_lock():
            counter.value += 1
        time.sleep(0.05)
        testbed_lock.release(fd)


def test_an_exclusive_taker_is_not_starved_by_overlapping_shared_ones(tmp_path, monkeypatch):
    lock_path = str(tmp_path / 'testbed.lock')
    monkeypatch.setattr(paths, 'DAEMON_LOCK', lock_path)
    counter = multiprocessing.Value('i', 0)
    stop_at = time.monotonic() + 30
    readers = [multiprocessing.Process(target=_reader_stream, args=(lock_path, stop_at, counter))
               for _reader in range(4)]
    for r in readers:
        r.start()
    try:
        while counter.value < 8:  # the readers overlap by now
            time.sleep(0.01)
        fd = testbed_lock.acquire_shared()
        testbed_lock.to_exclusive(fd)  # returns long before the readers stop (30 s)
        got_it_early = time.monotonic() < stop_at - 5
        testbed_lock.to_shared(fd)
        testbed_lock.release(fd)
    finally:
        for r in readers:
            r.terminate()
            r.join()
    assert got_it_early


def test_two_converting_takers_do_not_deadlock(tmp_path, monkeypatch):
    monkeypatch.setattr(paths, 'DAEMON_LOCK', str(tmp_path / 'testbed.lock'))
    mine = testbed_lock.acquire_shared()
    pid = os.fork()
    if pid == 0:  # the other test: shared, then exclusive, while we hold ours shared
        fd = testbed_lock.acquire_shared()
        testbed_lock.to_exclusive(fd)
        testbed_lock.release(fd)
        os._exit(0)
    time.sleep(0.2)
    testbed_lock.to_exclusive(mine)  # would wait for the child's shared lock for ever
    testbed_lock.release(mine)
    _pid, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 0
