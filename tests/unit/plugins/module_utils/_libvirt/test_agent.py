"""Unit tests of the bounded agent call (plugins/module_utils/_libvirt/agent.py) and of the
rule that an agent which did not answer is asked once per wait. The real hang (a guest agent
that reads a command and never answers) is tests/integration/test_hostile_agent.py."""
import contextlib
import threading
import time

import pytest

from ansible_collections.kvmops.hypervisor.plugins.module_utils._cloud import reach
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt import addresses
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt import agent


def test_an_answer_and_an_error_come_back_as_they_are():
    assert agent.bounded(lambda a, b: a + b, (1, 2), timeout=5) == 3
    with pytest.raises(KeyError):
        agent.bounded({}.__getitem__, ('x',), timeout=5)


def test_a_call_that_never_returns_is_given_up_after_the_timeout():
    never = threading.Event()
    start = time.monotonic()
    with pytest.raises(agent.AgentTimeout) as exc:
        agent.bounded(never.wait, (), timeout=0.2, what='guest-fsfreeze-freeze')
    assert time.monotonic() - start < 2
    assert str(exc.value) == 'the guest agent did not answer within 0.2s (guest-fsfreeze-freeze)'
    assert agent.timed_out(str(exc.value)) and not agent.timed_out('Guest agent is not responding')
    never.set()


class MuteAgentDomain(object):
    """A running domain on a libvirt network whose agent never answers; no lease yet."""
    XML = ("<domain><name>mute</name><devices><interface type='network'><mac address='52:54:00:00:00:01'/>"
           "<source network='n'/></interface></devices></domain>")

    def __init__(self):
        self.asked = []
        self.release = threading.Event()

    def name(self):
        return 'mute'

    def XMLDesc(self, flags):
        return self.XML

    def isActive(self):
        return True

    def interfaceAddresses(self, source, flags):
        self.asked.append(source)
        if source == addresses.VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_AGENT:
            self.release.wait()
        return {}


def test_wait_asks_a_mute_agent_once_and_says_so(monkeypatch):
    monkeypatch.setattr(agent, 'AGENT_TIMEOUT', 0.2)
    monkeypatch.setattr(agent.bounded, '__defaults__', ((), 0.2, None))
    dom = MuteAgentDomain()
    now = [0.0]

    def sleep(s):
        now[0] += s
    cloud = {'wait_for': 'ip', 'wait_timeout': 20, 'address_sources': ['lease', 'agent'], 'port_forwards': []}
    on_own = MuteAgentDomain()
    opened = []

    @contextlib.contextmanager
    def own_connection(d):
        opened.append(d)
        yield on_own
    try:
        with pytest.raises(reach.WaitError) as exc:
            reach.wait(None, dom, cloud, clock=lambda: now[0], sleep=sleep, agent_connection=own_connection)
    finally:
        on_own.release.set()
    assert opened == [dom]              # one agent connection for the whole wait
    # the agent is asked once, on its own connection; the lease on the run's connection
    assert on_own.asked == [addresses.VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_AGENT]
    assert addresses.VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_AGENT not in dom.asked
    assert dom.asked.count(addresses.VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_LEASE) > 1   # still polled
    assert 'agent: the guest agent did not answer within 0.2s' in str(exc.value)
    assert 'not asked again' in str(exc.value)


class NoOpen(object):
    """libvirt as own_connection sees it when no second connection can be had."""
    class libvirtError(Exception):
        pass

    @classmethod
    def open(cls, uri):
        raise cls.libvirtError('too many active clients (20), dropping connection')


class MainConnection(object):
    def getURI(self):
        return 'qemu:///system'


class Dom(object):
    def connect(self):
        return MainConnection()

    def UUIDString(self):
        return '0d3b2f4c-0000-4000-8000-000000000001'


def test_own_connection_falls_back_to_the_runs_connection(monkeypatch):
    monkeypatch.setattr(agent, 'libvirt', NoOpen)
    dom = Dom()
    with agent.own_connection(dom) as agent_dom:
        assert agent_dom is dom


def test_own_connection_opens_the_same_uri_and_closes_it(monkeypatch):
    seen = {}

    class Other(object):
        closed = False

        def lookupByUUIDString(self, uuid):
            seen['uuid'] = uuid
            return 'the domain on the other connection'

        def close(self):
            Other.closed = True

    class Lib(NoOpen):
        @classmethod
        def open(cls, uri):
            seen['uri'] = uri
            return Other()
    monkeypatch.setattr(agent, 'libvirt', Lib)
    with agent.own_connection(Dom()) as agent_dom:
        assert agent_dom == 'the domain on the other connection'
        assert not Other.closed
    assert Other.closed and seen == {'uri': 'qemu:///system', 'uuid': Dom().UUIDString()}


def test_thaw_tries_again_after_an_error_never_after_a_timeout(monkeypatch):
    class Flaky(object):
        def __init__(self, outcomes):
            self.outcomes, self.calls = list(outcomes), 0

        def fsThaw(self, disks, flags):
            self.calls += 1
            out = self.outcomes.pop(0)
            if out == 'error':
                raise agent.libvirt.libvirtError('Guest agent is not responding')
            if out == 'hang':
                time.sleep(1)
            return 1

    @contextlib.contextmanager
    def same(d):
        yield d
    monkeypatch.setattr(agent, 'own_connection', same)
    dom = Flaky(['error', 'error', 'ok'])
    assert agent.thaw(dom, sleep=lambda s: None) is True and dom.calls == 3
    dom = Flaky(['hang', 'ok'])
    assert agent.thaw(dom, timeout=0.1, sleep=lambda s: None) is False and dom.calls == 1
    dom = Flaky(['error'] * 5)
    assert agent.thaw(dom, sleep=lambda s: None) is False and dom.calls == 5


def test_freeze_asks_on_the_agent_connection_not_the_runs(monkeypatch):
    class Main(object):
        def fsFreeze(self, disks, flags):
            raise AssertionError('asked on the run\'s own connection')

    class Other(object):
        def fsFreeze(self, disks, flags):
            return 2

    @contextlib.contextmanager
    def own(d):
        assert isinstance(d, Main)
        yield Other()
    monkeypatch.setattr(agent, 'own_connection', own)
    assert agent.freeze(Main()) == 2


def test_thaw_lets_a_programming_error_through(monkeypatch):
    class Broken(object):
        def fsThaw(self, disks, flags):
            raise TypeError('not a libvirt error')

    @contextlib.contextmanager
    def same(d):
        yield d
    monkeypatch.setattr(agent, 'own_connection', same)
    with pytest.raises(TypeError):
        agent.thaw(Broken(), sleep=lambda s: None)
