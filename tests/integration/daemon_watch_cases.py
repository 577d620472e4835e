"""Two tests run by test_testbed_daemon_watch.py in a pytest session of their own (never
collected on their own: the file name does not start with test_). The first kills the host's
libvirtd in the middle, as a crash would; the second must pass against a daemon started
again, and both must leave nothing behind. Gated by KVMOPS_DAEMON_WATCH_CASES=1."""
import os
import signal
import time

import pytest

from support import faults
from support.libvirt_helpers import tiny_guest_xml

pytestmark = pytest.mark.skipif(os.environ.get('KVMOPS_DAEMON_WATCH_CASES') != '1',
                                reason='run by test_testbed_daemon_watch.py only')

POOL_XML = """<pool type='dir'><name>{name}</name><target><path>{path}</path></target></pool>"""
VOL_XML = """<volume><name>{name}</name><capacity unit='MiB'>1</capacity>
<target><format type='raw'/></target></volume>"""


def make_things(conn, prefix, image_dir, tiny):
    """A running guest, a started pool with a volume: what a test typically leaves to its
    teardown."""
    dom = conn.defineXML(tiny_guest_xml(prefix + 'g', tiny, os.path.join(image_dir, 'g.log'),
                                        memory=96))
    dom.create()
    pool = conn.storagePoolCreateXML(POOL_XML.format(name=prefix + 'pool', path=image_dir), 0)
    pool.createXML(VOL_XML.format(name=prefix + 'vol.img'), 0)
    return dom


def test_watch_case_daemon_dies(conn, prefix, image_dir, tiny):
    make_things(conn, prefix, image_dir, tiny)
    pid = faults.libvirtd_pid()
    os.kill(pid, signal.SIGKILL)  # as a crash would: no pid file removed, nobody told
    deadline = time.monotonic() + 30
    while not faults._zombie(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    conn.lookupByName(prefix + 'g')  # what the test would do next: fails, daemon gone


def test_watch_case_next_test(conn, prefix, image_dir, tiny):
    dom = make_things(conn, prefix, image_dir, tiny)
    assert dom.isActive()
    assert conn.storagePoolLookupByName(prefix + 'pool').isActive()
