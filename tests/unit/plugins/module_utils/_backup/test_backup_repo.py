"""The repository on disk: leftovers of interrupted runs are found (and only those), removal
stays inside a guest directory kvmops made, the manifest is written atomically."""
import os

import pytest

from ansible_collections.kvmops.hypervisor.plugins.module_utils._common.errors import KvmopsError
from ansible_collections.kvmops.hypervisor.plugins.module_utils._backup import plan, repo


def make_chain(gdir, cid, points):
    path = os.path.join(gdir, cid)
    os.makedirs(path)
    m = plan.new_manifest('vm1', 'u', 'h', cid, [], 0)
    for i in range(points):
        os.mkdir(os.path.join(path, plan.point_dir(i, 'full' if i == 0 else 'inc')))
        m['points'].append(plan.point_entry(i, 'full' if i == 0 else 'inc', 'c%d' % i, 0, 0, False, {}, {}))
    repo.write_manifest(path, m)
    return path


def test_leftovers_are_exactly_what_an_interrupted_run_leaves(tmp_path):
    gdir = repo.ensure_guest_dir(str(tmp_path), 'vm1')
    c1 = make_chain(gdir, '20261201T000000Z', 2)
    os.mkdir(os.path.join(c1, '02-inc.partial'))
    os.mkdir(os.path.join(c1, '03-inc'))                         # renamed, manifest not written
    os.mkdir(os.path.join(gdir, '20261202T000000Z.partial'))      # a full in progress
    os.mkdir(os.path.join(gdir, '20261203T000000Z'))              # chain without manifest
    os.mkdir(os.path.join(gdir, 'my-notes'))                      # not ours: never touched
    found = sorted(os.path.relpath(p, gdir) for p in repo.leftovers(gdir))
    assert found == ['20261201T000000Z/02-inc.partial', '20261201T000000Z/03-inc',
                     '20261202T000000Z.partial', '20261203T000000Z']
    for p in repo.leftovers(gdir):
        repo.remove(p, gdir)
    assert sorted(os.listdir(gdir)) == ['.kvmops-backups', '20261201T000000Z', 'my-notes']
    assert [c for c, _m in repo.chains(gdir)] == ['20261201T000000Z']


def test_remove_refuses_outside_or_unmarked(tmp_path):
    gdir = repo.ensure_guest_dir(str(tmp_path), 'vm1')
    with pytest.raises(KvmopsError, match='Refusing'):
        repo.remove(str(tmp_path), gdir)
    other = tmp_path / 'other'
    other.mkdir()
    (other / 'x').write_text('keep')
    with pytest.raises(KvmopsError, match='Refusing'):
        repo.remove(str(other / 'x'), str(other))
    assert (other / 'x').read_text() == 'keep'


def test_missing_repository_is_not_created(tmp_path):
    with pytest.raises(KvmopsError, match='does not exist'):
        repo.ensure_guest_dir(str(tmp_path / 'unmounted'), 'vm1')
    assert not (tmp_path / 'unmounted').exists()


def test_atomic_write_leaves_no_temporary_file(tmp_path):
    path = str(tmp_path / 'manifest.json')
    repo.atomic_write(path, 'one')
    repo.atomic_write(path, 'two')
    assert open(path).read() == 'two' and os.listdir(str(tmp_path)) == ['manifest.json']
    assert oct(os.stat(path).st_mode & 0o777) == '0o600'


def test_one_run_per_guest_directory(tmp_path):
    from ansible_collections.kvmops.hypervisor.plugins.module_utils._backup.manager import GuestBackup
    spec = {'repository': str(tmp_path)}
    repo.ensure_guest_dir(str(tmp_path), 'vm1')
    first = GuestBackup(None, spec, 'vm1', False, None, 'h')
    second = GuestBackup(None, spec, 'vm1', False, None, 'h')
    first.lock()
    with pytest.raises(KvmopsError, match='another virt_backup run'):
        second.lock()
    first.unlock()
    second.lock()
    second.unlock()
