"""Fixtures for integration tests against the real libvirtd (see testbed/setup.sh)."""
import contextlib
import os
import re
import shutil
import uuid

import pytest

libvirt = pytest.importorskip('libvirt')

from support import paths, testbed_lock  # noqa: E402
from support.libvirt_helpers import leftovers, remove_everything_named  # noqa: E402

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


@contextlib.contextmanager
def shared_daemon_lock():
    """The test-bed lock held shared: no other run restarts libvirtd meanwhile."""
    fd = testbed_lock.acquire_shared()
    try:
        yield fd
    finally:
        testbed_lock.release(fd)


@pytest.fixture(scope='session')
def conn():
    """One read-write connection for the whole session (tests verify independently of modules)."""
    libvirt.registerErrorHandler(lambda ctx, err: None, None)
    with shared_daemon_lock():  # not while another run's fault test has the daemon stopped
        c = _SessionConnection()
    yield c
    c.close()


@pytest.fixture(autouse=True)
def daemon_lock():
    """Integration tests share libvirtd: each holds the test-bed lock shared.

    Also taken by other runs on the same machine (parallel sessions, molecule, benchmarks),
    so a test that restarts libvirtd never pulls the daemon from under another one.
    """
    with shared_daemon_lock() as fd:
        yield fd


# ------------------------------------------------------------------ the daemon between tests
# (issue 25) A libvirtd that dies mid-suite fails the test that was running, with its death
# described, and is started again before that test's fixtures tear down: the teardowns still
# remove what they made and the next tests run against a live daemon.
_DEATHS = []


@pytest.fixture(autouse=True)
def daemon_watch(request, daemon_lock):
    """Notes the host libvirtd's pid when the test begins (under the shared lock: no other run
    restarts it until the test ends). A daemon found dead here (killed between tests) is
    started again first; that is not this test's fault."""
    from support import daemon_watch as dw
    w = dw.Watch()
    if w.start() is None or not dw.alive(w.pid) or dw.answers() is not None:
        _DEATHS.append('found dead (or not answering) before %s' % request.node.nodeid)
        dw.restart(daemon_lock)
        w.start()
    request.node._daemon_watch = w
    yield w


def _exclusive(item):
    """Tests that stop or restart libvirtd themselves (their fixture starts it again)."""
    return 'daemon_exclusive' in getattr(item, 'fixturenames', ())


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    w = getattr(item, '_daemon_watch', None)
    if w is None or report.when != 'call' or _exclusive(item):
        return
    death = w.check()
    if death is None:
        return
    item._daemon_death = death
    _DEATHS.append('%s: %s' % (item.nodeid, death.splitlines()[0]))
    before = report.longreprtext if report.failed else ''
    report.outcome = 'failed'
    report.longrepr = death + ('\n\nThe test\'s own failure:\n' + before if before else '')


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_teardown(item, nextitem):
    """Before the test's fixtures tear down: libvirtd running again if it died in the test."""
    if getattr(item, '_daemon_death', None) is None:
        return
    from support import daemon_watch as dw
    try:
        dw.restart(item.funcargs.get('daemon_lock'))
    except AssertionError as e:
        item.session.shouldstop = 'libvirtd died and could not be started again: %s' % e


def pytest_terminal_summary(terminalreporter):
    if _DEATHS:
        terminalreporter.section('libvirtd deaths (issue 25)')
        for line in _DEATHS:
            terminalreporter.write_line(line)


@pytest.fixture
def daemon_exclusive(daemon_lock):
    """For tests that restart libvirtd or edit qemu.conf: wait until nothing else uses it."""
    testbed_lock.to_exclusive(daemon_lock)
    yield
    testbed_lock.to_shared(daemon_lock)


def _unique_prefix(name):
    short = re.sub(r'[^a-z0-9]+', '-', name.lower())[:24].strip('-')
    return 'kvmops-t-%s-%s-' % (short, uuid.uuid4().hex[:6])


def _make_image_dir(prefix):
    path = os.path.join(IMAGE_ROOT, prefix.rstrip('-'))
    os.makedirs(path, mode=0o755)
    os.chmod(IMAGE_ROOT, 0o755)
    return path


@pytest.fixture
def prefix(request, conn):
    """A unique name prefix; everything in libvirt carrying it is removed after the test, and
    so is every pool on the test's image directory (virt-install defines one named after the
    directory, without the prefix's trailing '-'). Tests marked nothing_left fail if
    anything with the prefix is still there afterwards."""
    p = _unique_prefix(request.node.name)
    yield p
    under = os.path.join(IMAGE_ROOT, p.rstrip('-'))
    remove_everything_named(conn, p, under=under)
    if request.node.get_closest_marker('nothing_left'):
        left = leftovers(conn, p.rstrip('-'), under=under)
        assert left == [], 'left behind after the test: %s' % left


@pytest.fixture
def image_dir(prefix):
    """A directory QEMU can reach (under /var/lib/libvirt/images), removed after the test."""
    path = _make_image_dir(prefix)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope='module')
def module_prefix(request, conn):
    """prefix for what the tests of one file share (a guest set up once); everything carrying
    it is removed after the file's last test, under the shared daemon lock as in each test."""
    p = _unique_prefix(request.module.__name__.rsplit('.', 1)[-1].replace('test_', 'm-', 1))
    yield p
    with shared_daemon_lock():
        remove_everything_named(conn, p, under=os.path.join(IMAGE_ROOT, p.rstrip('-')))


@pytest.fixture(scope='module')
def module_image_dir(module_prefix):
    """image_dir for what the tests of one file share; removed after the file's last test."""
    path = _make_image_dir(module_prefix)
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


@pytest.fixture(scope='module')
def tree_server(tiny):
    """The tiny guest's install trees over HTTP on 127.0.0.1, counting every request."""
    from support.http_server import TreeServer
    from support.install_guests import TREES
    srv = TreeServer(TREES)
    yield srv
    srv.close()


@pytest.fixture
def recorders():
    """recorders(path) starts a SerialRecorder on a guest's serial log; all stop afterwards."""
    from support.install_guests import SerialRecorder
    started = []

    def start(path):
        r = SerialRecorder(path)
        started.append(r)
        return r
    yield start
    for r in started:
        r.stop()


@pytest.fixture
def selinux_store(prefix):
    """The policy store for one test (serialised): every file-context rule carrying the prefix
    goes and the booleans come back afterwards. Yields the booleans as they were."""
    from support.selinux import store_guard
    with store_guard(prefix) as booleans:
        yield booleans
