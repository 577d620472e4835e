"""What the next virt_backup run does after libvirtd was killed during a backup (the decisions
only: libvirt's answers are faked here with the error codes libvirt 9.0 gave on this host, see
tests/integration/test_virt_backup_long.py for the real thing)."""
import json
import os

import pytest

libvirt = pytest.importorskip('libvirt')

from ansible_collections.kvmops.hypervisor.plugins.module_utils._common.errors import KvmopsError
from ansible_collections.kvmops.hypervisor.plugins.module_utils._backup import manager, plan, repo

UUID = '4d1c3b8e-0000-4000-8000-000000000001'
CHAIN = '20261207T054952Z'


class Err(libvirt.libvirtError):
    def __init__(self, code, msg):  # pylint: disable=super-init-not-called
        # libvirtError's own __init__ reads libvirt's last error; these carry their own
        self.args = (msg,)
        self.err = (code, 0, msg, 2, None, None, None, 0, 0)


class Checkpoint(object):
    def __init__(self, dom, name):
        self.dom, self.name = dom, name

    def getName(self):
        return self.name

    def delete(self, flags):
        self.dom.checkpoints.remove(self.name)


class Dom(object):
    """A running guest holding libvirt 9.0's stale backup job (or none: stale=False)."""

    def __init__(self, stale=True, checkpoints=(), dom_id=7):
        self.stale, self.checkpoints, self.dom_id = stale, list(checkpoints), dom_id
        self.aborts = 0

    def isActive(self):
        return True

    def ID(self):
        return self.dom_id

    def UUIDString(self):
        return UUID

    def jobInfo(self):
        if self.stale:
            raise Err(libvirt.VIR_ERR_INTERNAL_ERROR, 'internal error: backup job data missing')
        return [0] + [0] * 11

    def backupGetXMLDesc(self, flags):
        raise Err(libvirt.VIR_ERR_NO_DOMAIN_BACKUP, 'no domain backup job present')

    def abortJob(self):
        self.aborts += 1  # libvirt 9.0 answers 0 and keeps the stale job

    def listAllCheckpoints(self, flags):
        return [Checkpoint(self, n) for n in self.checkpoints]

    def checkpointLookupByName(self, name, flags):
        if name not in self.checkpoints:
            raise Err(libvirt.VIR_ERR_NO_DOMAIN_CHECKPOINT, 'no checkpoint')
        return Checkpoint(self, name)

    def state(self):
        return [1, 0]


def job(tmp_path, check_mode=False):
    warnings = []
    repo.ensure_guest_dir(str(tmp_path), 'vm1')
    g = manager.GuestBackup(None, {'repository': str(tmp_path)}, 'vm1', check_mode, warnings.append, 'h')
    return g, warnings


def broken_chain(g):
    """A committed chain of one point, marked broken by a run whose checkpoint -01 could not be
    deleted while libvirtd was down."""
    path = os.path.join(g.gdir, CHAIN)
    os.mkdir(path)
    m = plan.new_manifest('vm1', UUID, 'h', CHAIN, [], 0)
    m['points'].append(plan.point_entry(0, 'full', plan.checkpoint_name(CHAIN, 0), 0, 1, False, {}, {}))
    os.mkdir(os.path.join(path, m['points'][0]['dir']))
    m['broken'] = 'checkpoint %s of a failed backup could not be deleted' % plan.checkpoint_name(CHAIN, 1)
    m['broken_checkpoint'] = plan.checkpoint_name(CHAIN, 1)
    repo.write_manifest(path, m)
    return repo.chains(g.gdir)


def write_inflight(g, dom_id=7, uuid=UUID):
    with open(os.path.join(g.gdir, manager.INFLIGHT), 'w') as f:
        json.dump({'uuid': uuid, 'domain_id': dom_id, 'chain': CHAIN, 'point': '01-inc',
                   'checkpoint': plan.checkpoint_name(CHAIN, 1)}, f)


def test_our_stale_job_is_named_with_its_cure_and_the_chain_continues(tmp_path):
    g, warnings = job(tmp_path)
    chains = broken_chain(g)
    write_inflight(g)
    dom = Dom(checkpoints=[plan.checkpoint_name(CHAIN, 0)])
    with pytest.raises(KvmopsError) as exc:
        g.recover(dom, plan.checkpoint_name(CHAIN, 0), chains)
    assert 'libvirt still holds the backup job that an interrupted virt_backup run began' in exc.value.msg
    assert 'restart libvirtd while it is off' in exc.value.msg
    assert dom.aborts == 1  # tried, identified as ours
    assert os.path.exists(os.path.join(g.gdir, manager.INFLIGHT))  # kept: still needed to know it
    assert repo.chains(g.gdir)[0][1]['broken'] is None  # the failed checkpoint is gone: continues
    assert 'continues' in g.out['recovered'][0] and warnings
    assert dom.checkpoints == [plan.checkpoint_name(CHAIN, 0)]  # the chain's checkpoint kept


def test_a_stale_job_kvmops_cannot_tell_as_its_own_is_left_alone(tmp_path):
    for inflight in (None, {'dom_id': 8}, {'uuid': 'other'}):
        g, dummy = job(tmp_path)
        if inflight is not None:
            write_inflight(g, **({'dom_id': 8} if 'dom_id' in inflight else {'uuid': 'other'}))
        dom = Dom()
        with pytest.raises(KvmopsError, match='kvmops did not start'):
            g.recover(dom, None, [])
        assert dom.aborts == 0


def test_no_stale_job_forgets_the_record_and_warns(tmp_path):
    g, warnings = job(tmp_path)
    write_inflight(g)
    out = g.recover(Dom(stale=False), None, [])
    assert out and 'forget the record' in out[0] and warnings
    assert not os.path.exists(os.path.join(g.gdir, manager.INFLIGHT))
    assert g.recover(Dom(stale=False), None, []) == []


def test_check_mode_aborts_and_writes_nothing(tmp_path):
    g, dummy = job(tmp_path)
    chains = broken_chain(g)
    write_inflight(g)
    dom = Dom(checkpoints=[plan.checkpoint_name(CHAIN, 0)])
    g.check_mode = True
    with pytest.raises(KvmopsError, match='still holds'):
        g.recover(dom, plan.checkpoint_name(CHAIN, 0), chains)
    assert dom.aborts == 0
    assert repo.read_manifest(os.path.join(g.gdir, CHAIN))['broken']


def test_chain_stays_broken_while_the_failed_checkpoint_or_the_last_one_is_not_as_needed(tmp_path):
    g, dummy = job(tmp_path)
    chains = broken_chain(g)
    # the failed checkpoint is still there (it could not be deleted): no
    assert g.unbreak(Dom(checkpoints=[plan.checkpoint_name(CHAIN, 0), plan.checkpoint_name(CHAIN, 1)]),
                     chains) == []
    # the last point's checkpoint is missing too: a new full chain is the only way
    assert g.unbreak(Dom(checkpoints=[]), chains) == []
    assert repo.read_manifest(os.path.join(g.gdir, CHAIN))['broken']
