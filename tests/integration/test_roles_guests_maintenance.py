"""The guests role on a host in maintenance (roles/guests/tasks/maintenance.yml), through real
ansible-playbook on localhost. The marker is a temporary file (guests_maintenance_marker): the
host's real /var/lib/kvmops is never written (other tests share this host). No guest is created:
the refusals stop before the module, the removal and the override reach the real module with a
guest that does not exist / an option it rejects."""
import json

import pytest

from support.ansible_run import run_playbook

libvirt = pytest.importorskip('libvirt')

MARKER = {'kvmops_maintenance': 1, 'state': 'drained', 'since': '2026-12-07T15:00:00Z',
          'guests': [{'name': 'web1', 'how': 'migrated', 'host': 'hv2'}]}
# guests_list needs nothing that exists: the refusal comes before any module.
QUIET = {'guests_preflight': False, 'guests_summary': False, 'guests_add_to_inventory': False}


def _run(tmp_path, role_vars, check=False):
    play = [{'hosts': 'localhost', 'gather_facts': False, 'tasks': [
        {'name': 'the role under test',
         'ansible.builtin.include_role': {'name': 'kvmops.hypervisor.guests'},
         'vars': dict(QUIET, **role_vars)}]}]
    path = tmp_path / 'play.yml'
    path.write_text(json.dumps(play))
    return run_playbook(str(path), check=check)


def _results(out):
    """(task name, result) of every task that ran, in order."""
    return [(task['task']['name'].split(' : ', 1)[-1], task['hosts']['localhost'])
            for play_doc in out['plays'] for task in play_doc['tasks']
            if 'localhost' in task['hosts']]


def _failure(out):
    failed = [(name, res) for name, res in _results(out) if res.get('failed')]
    assert failed, 'nothing failed: %s' % json.dumps(_results(out))[:3000]
    return failed[0]


@pytest.fixture
def marker(tmp_path):
    path = tmp_path / 'kvmops' / 'maintenance.json'
    path.parent.mkdir()
    path.write_text(json.dumps(MARKER))
    return path


def test_a_drained_host_refuses_new_guests_and_names_the_fix(tmp_path, marker, prefix, conn):
    name = prefix + 'web'
    out = _run(tmp_path, {'guests_maintenance_marker': str(marker),
                          'guests_list': [{'name': name}, {'name': prefix + 'gone', 'state': 'absent'}]})
    assert out['_rc'] != 0
    task, res = _failure(out)
    assert task == 'Refuse to place guests on a host in maintenance', task
    msg = res['msg']
    assert str(marker) in msg and 'state drained' in msg, msg
    assert 'state: active' in msg and 'guests_ignore_maintenance: true' in msg, msg
    assert name in msg and prefix + 'gone' not in msg, msg  # the removal is not "placed"
    with pytest.raises(libvirt.libvirtError):
        conn.lookupByName(name)
    # the marker is only read
    assert json.loads(marker.read_text()) == MARKER


def test_removals_run_and_check_mode_warns_on_a_drained_host(tmp_path, marker, prefix):
    removal = {'guests_maintenance_marker': str(marker),
               'guests_list': [{'name': prefix + 'gone', 'state': 'absent'}]}
    out = _run(tmp_path, removal)
    assert out['_rc'] == 0, json.dumps(_results(out))[:3000] + out['_stderr'][-2000:]
    names = [n for n, res in _results(out) if not res.get('skipped')]
    assert 'Define, install and start the guests' in names  # the module ran (nothing to remove)

    # check mode: the warning, no failure, the plan goes on
    placing = {'guests_maintenance_marker': str(marker), 'guests_list': [{'name': prefix + 'web'}]}
    out = _run(tmp_path, placing, check=True)
    shown = dict((n, res) for n, res in _results(out) if not res.get('skipped'))
    assert 'Refuse to place guests on a host in maintenance' not in shown
    warning = shown['Say that a real run would refuse (check mode)']['msg']
    assert warning.startswith('WARNING: ') and str(marker) in warning and prefix + 'web' in warning


def test_the_override_reaches_the_module(tmp_path, marker, prefix, conn):
    """guests_ignore_maintenance: the role's gate lets the guest through; the module then
    rejects an option of it (so nothing is created here and the gate is proven open)."""
    name = prefix + 'web'
    out = _run(tmp_path, {'guests_maintenance_marker': str(marker), 'guests_ignore_maintenance': True,
                          'guests_list': [{'name': name, 'memory': 'lots'}]})
    task, res = _failure(out)
    assert task != 'Refuse to place guests on a host in maintenance', res
    assert 'maintenance' not in json.dumps(res), res
    with pytest.raises(libvirt.libvirtError):
        conn.lookupByName(name)


def test_no_marker_no_gate(tmp_path, prefix):
    out = _run(tmp_path, {'guests_maintenance_marker': str(tmp_path / 'none.json'),
                          'guests_list': [{'name': prefix + 'gone', 'state': 'absent'}]})
    assert out['_rc'] == 0, out['_stderr'][-2000:]
    ran = [n for n, res in _results(out) if not res.get('skipped')]
    assert 'Read the maintenance marker' not in ran
