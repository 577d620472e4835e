"""The test bed survives a libvirtd death (issue 25): the test that was running fails with
the death named, the daemon is started again, the next test passes and nothing is left.

daemon_watch_cases.py runs in a pytest session of its own: its first test SIGKILLs the host
libvirtd mid-test (as a crash does: no pid file removed) after making a running guest, a
pool and a volume; its second test makes the same against the restarted daemon. This test
holds the test-bed lock exclusively the whole time (the inner session uses a private lock
file), so no other run sees the daemon go. Only in `make reliability`."""
import glob
import os
import subprocess
import xml.etree.ElementTree as ET

import libvirt
import pytest

from support import daemon_watch, faults, paths
from support.libvirt_helpers import leftovers

pytestmark = [pytest.mark.reliability, pytest.mark.slow]
CASES = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'daemon_watch_cases.py')
INNER_PREFIX = 'kvmops-t-test-watch-case-'


def everything_left(prefix):
    """Everything in libvirt, on disk and among the processes carrying prefix."""
    c = libvirt.open(paths.URI)
    try:
        found = leftovers(c, prefix)
    finally:
        c.close()
    found += ['directory ' + p for p in glob.glob('/var/lib/libvirt/images/kvmops-tests/%s*'
                                                  % prefix)]
    qemu = subprocess.run(['pgrep', '-f', 'guest=%s' % prefix], stdout=subprocess.PIPE,
                          universal_newlines=True, check=False).stdout.split()
    return found + ['qemu process %s' % p for p in qemu]


def test_a_daemon_death_fails_one_test_and_the_next_passes(daemon_fault, tmp_path):
    assert everything_left(INNER_PREFIX) == []
    before = faults.libvirtd_pid()
    junit = str(tmp_path / 'inner.xml')
    env = dict(os.environ, KVMOPS_DAEMON_WATCH_CASES='1',
               KVMOPS_TESTBED_LOCK=str(tmp_path / 'inner.lock'))
    proc = subprocess.run([os.path.join(paths.VENV, 'bin', 'pytest'), CASES, '-q', '-p',
                           'no:cacheprovider', '--junitxml', junit], cwd=paths.REPO, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True, timeout=600, check=False)
    out = proc.stdout
    assert proc.returncode == 1, out
    cases = {c.get('name'): c for c in ET.parse(junit).getroot().iter('testcase')}
    dies, nxt = cases['test_watch_case_daemon_dies'], cases['test_watch_case_next_test']
    failure = dies.find('failure')
    assert failure is not None, out
    text = (failure.get('message') or '') + (failure.text or '')
    assert 'libvirtd (pid %d) died during this test: killed by signal 9 (SIGKILL)' % before \
        in text, text
    assert 'last lines of /var/log/libvirt/libvirtd.log' in text, text
    assert nxt.find('failure') is None and nxt.find('error') is None, out
    assert nxt.find('skipped') is None, out
    # no teardown errors in the inner run: each test's fixtures removed what it made
    assert dies.find('error') is None, out
    assert 'libvirtd deaths (issue 25)' in out, out

    after = faults.libvirtd_pid()
    assert after is not None and after != before and daemon_watch.alive(after)
    assert daemon_watch.answers() is None
    assert everything_left(INNER_PREFIX) == []
    faults.record('libvirtd SIGKILLed in the middle of a test (the suite\'s daemon watch)',
                  'SIGKILL to the host libvirtd after the test made a running guest, a pool '
                  'and a volume; then a second test', 1,
                  'the test failed with: ' + faults.short(text.splitlines()[0]),
                  'nothing: the daemon was started again before the teardowns, which removed '
                  'the guest, pool and volume; the next test passed',
                  'make reliability', 'tests/integration/test_testbed_daemon_watch.py::'
                  'test_a_daemon_death_fails_one_test_and_the_next_passes')
