"""virt_snapshot's quiesce with a guest agent that does not answer (pure logic; the real
freeze against the tiny guest's fake agent is tests/integration/test_hostile_agent.py)."""
import pytest

from ansible_collections.kvmops.hypervisor.plugins.module_utils._common.errors import KvmopsError
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt import agent
from ansible_collections.kvmops.hypervisor.plugins.module_utils._snapshot import manager


class Dom(object):
    def name(self):
        return 'vm1'


def make(monkeypatch, quiesce, freeze_error, thawed=False):
    calls = []

    def freeze(dom):
        calls.append('freeze')
        raise freeze_error

    def thaw(dom):
        calls.append('thaw')
        return thawed
    monkeypatch.setattr(agent, 'freeze', freeze)
    monkeypatch.setattr(agent, 'thaw', thaw)
    warnings = []
    m = manager.SnapshotManager(None, {'domain': 'vm1', 'name': 's1', 'quiesce': quiesce}, warn=warnings.append)
    return m, calls, warnings


def test_auto_a_freeze_not_answered_gives_a_crash_consistent_snapshot(monkeypatch):
    m, calls, warnings = make(monkeypatch, 'auto', agent.AgentTimeout('the guest agent did not answer within 10s'))
    assert m.freeze(Dom()) is False
    assert m.maybe_frozen and calls == ['freeze']      # thawed after the snapshot, not before
    assert 'crash-consistent' in m.fields['quiesce_reason'] and 'within 10s' in m.fields['quiesce_reason']
    assert warnings and 'not quiesced' in warnings[0]
    m.thaw(Dom())
    assert 'virsh domfsthaw vm1' in warnings[-1]


def test_required_fails_and_thaws_a_freeze_that_may_land(monkeypatch):
    m, calls, warnings = make(monkeypatch, 'required', agent.AgentTimeout('the guest agent did not answer within 10s'),
                              thawed=True)
    with pytest.raises(KvmopsError) as exc:
        m.freeze(Dom())
    assert 'quiesce=required, but the guest agent did not freeze the guest' in str(exc.value)
    assert calls == ['freeze', 'thaw'] and warnings == []
