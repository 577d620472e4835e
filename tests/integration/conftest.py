"""Fixtures for integration tests against the real libvirtd (see testbed/setup.sh)."""
import os
import re
import shutil
import uuid

import pytest

libvirt = pytest.importorskip('libvirt')

from support import paths, testbed_lock  # noqa: E402
from support.libvirt_helpers import remove_everything_named  # noqa: E402

IMAGE_ROOT = '/var/lib/libvirt/images/kvmops-tests'


class _SessionConnection(object):
    """The session's connection; reopened (and the call retried once) when it died because a
    daemon_exclusive test restarted libvirtd. isAlive() stays true until a call fails."""

    def __init__(self):
        self._conn = libvirt.open(paths.URI)

    def __getattr__(self, name):
        if not callable(getattr(self._conn, name)):
            return getattr(self._conn, name)

        def call(*args, **kwargs):
            try:
                return getattr(self._conn, name)(*args, **kwargs)
            except libvirt.libvirtError:
                if self._conn.isAlive():
                    raise
                self._conn = libvirt.open(paths.URI)
                return getattr(self._conn, name)(*args, **kwargs)
        return call


@pytest.fixture(scope='session')
def conn():
    """One read-write connection for the whole session (tests verify independently of modules)."""
    libvirt.registerErrorHandler(lambda ctx, err: None, None)
    c = _SessionConnection()
    yield c
    c.close()


@pytest.fixture(autouse=True)
def daemon_lock():
    """Integration tests share libvirtd: each holds the test-bed lock shared.

    Also taken by other runs on the same machine (parallel sessions, molecule, benchmarks),
    so a test that restarts libvirtd never pulls the daemon from under another one.
    """
    fd = testbed_lock.acquire_shared()
    yield fd
    testbed_lock.release(fd)


@pytest.fixture
def daemon_exclusive(daemon_lock):
    """For tests that restart libvirtd or edit qemu.conf: wait until nothing else uses it."""
    testbed_lock.to_exclusive(daemon_lock)
    yield
    testbed_lock.to_shared(daemon_lock)


@pytest.fixture
def prefix(request, conn):
    """A unique name prefix; everything in libvirt carrying it is removed after the test."""
    short = re.sub(r'[^a-z0-9]+', '-', request.node.name.lower())[:24].strip('-')
    p = 'kvmops-t-%s-%s-' % (short, uuid.uuid4().hex[:6])
    yield p
    remove_everything_named(conn, p)


@pytest.fixture
def image_dir(prefix):
    """A directory QEMU can reach (under /var/lib/libvirt/images), removed after the test."""
    path = os.path.join(IMAGE_ROOT, prefix.rstrip('-'))
    os.makedirs(path, mode=0o755)
    os.chmod(IMAGE_ROOT, 0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope='session')
def tiny():
    """Paths of the tiny guest assets built by testbed/build_tiny_guest.sh."""
    a = paths.ASSETS
    assets = {
        'kernel': os.path.join(a, 'vmlinuz'),
        'initrd': os.path.join(a, 'initrd.img'),
        'iso': os.path.join(a, 'tiny.iso'),
        'tree_iso': os.path.join(a, 'tree.iso'),
        'tree_rhel': os.path.join(a, 'trees', 'rhel'),
        'tree_debian': os.path.join(a, 'trees', 'debian'),
    }
    missing = [p for p in assets.values() if not os.path.exists(p)]
    if missing:
        pytest.fail('tiny guest assets missing (run testbed/setup.sh): %s' % missing)
    return assets


def pytest_collection_modifyitems(config, items):
    """Tests marked reliability (daemon kills, 20 repetitions) run only in `make reliability`
    (KVMOPS_RELIABILITY=1): they restart libvirtd under the exclusive lock."""
    if os.environ.get('KVMOPS_RELIABILITY') == '1':
        return
    skip = pytest.mark.skip(reason='reliability run only (make reliability)')
    for item in items:
        if 'reliability' in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def daemon_fault(daemon_exclusive):
    """For tests that stop or kill libvirtd: it is running again afterwards, whatever failed."""
    from support import faults
    yield faults
    faults.start_libvirtd()
