"""virt_install_domains' orchestration (_guest/batch.py) without libvirt: merge, validation,
duplicates, the plan/apply passes and their concurrency with fake managers, the pool retry.
Real guests, pools and installs are in tests/integration/test_virt_install_domains*.py."""
import os
import subprocess
import sys
import threading

import pytest

from ansible_collections.kvmops.hypervisor.plugins.module_utils._common.errors import KvmopsError
from ansible_collections.kvmops.hypervisor.plugins.module_utils._guest import batch
from ansible_collections.kvmops.hypervisor.plugins.module_utils._guest import manager as dman
from ansible_collections.kvmops.hypervisor.plugins.module_utils._guest import shared as S
from ansible_collections.kvmops.hypervisor.plugins.module_utils._guest import storage


def guest(name, **kw):
    g = {'name': name, 'virt_type': 'qemu', 'networks': [], 'graphics': {'type': 'none'}}
    g.update(kw)
    return g


def test_merge_is_shallow_and_ignores_unset_values():
    d = {'memory': 256, 'disks': [{'path': '/a'}], 'vcpus': None}
    assert batch.merge(d, {'name': 'x', 'memory': None, 'disks': [{'path': '/b'}]}) == \
        {'memory': 256, 'disks': [{'path': '/b'}], 'name': 'x'}


def test_prepare_applies_defaults_then_the_module_defaults():
    gs = batch.prepare([guest('a'), guest('b', state='stopped')], {'memory': '256MiB'})
    assert [g.spec['memory_mib'] for g in gs] == [256, 256]
    assert [g.spec['state'] for g in gs] == ['running', 'stopped']
    assert all(g.install is None for g in gs)


def test_prepare_names_every_bad_guest_and_touches_nothing():
    with pytest.raises(KvmopsError) as err:
        batch.prepare([guest('ok'), guest('bad1', memory='-1GiB'),
                       guest('bad2', state='gone'), guest('ok')])
    msg = str(err.value)
    assert msg.startswith('Nothing was created or changed: 3 guests cannot be made.')
    assert '[bad1]' in msg and 'memory' in msg
    assert '[bad2]' in msg and 'state' in msg
    assert "[ok] the name ok is also guests[0]'s" in msg
    names = [r['name'] for r in err.value.result['guests'] if r['failed']]
    assert names == ['bad1', 'bad2', 'ok']


def test_writable_images_cannot_be_shared_cdroms_can():
    disk = {'path': '/var/lib/libvirt/images/x.img', 'size': 1}
    cd = {'path': '/var/lib/libvirt/boot/a.iso', 'device': 'cdrom'}
    batch.prepare([guest('a', disks=[cd]), guest('b', disks=[cd])])
    with pytest.raises(KvmopsError, match=r"\[b\] the disk /var/lib/libvirt/images/x.img "
                                          r"is also a's"):
        batch.prepare([guest('a', disks=[disk]), guest('b', disks=[dict(disk)])])
    vol = {'pool': 'p', 'volume': 'v.img', 'size': 1}
    with pytest.raises(KvmopsError, match=r"p/v.img is also a's"):
        batch.prepare([guest('a', disks=[vol]), guest('b', disks=[dict(vol)])])


def test_defaults_cannot_name_a_guest_and_every_guest_needs_a_name():
    with pytest.raises(KvmopsError, match='defaults.name'):
        batch.prepare([guest('a')], {'name': 'x'})
    with pytest.raises(KvmopsError, match=r'guests\[1\] has no name'):
        batch.prepare([guest('a'), {'memory': 256}])
    with pytest.raises(KvmopsError, match='empty'):
        batch.prepare([])


def test_install_options_are_checked_per_guest(tmp_path):
    with pytest.raises(KvmopsError, match=r'\[b\] install.cdrom=%s/none.iso does not exist'
                       % tmp_path):
        batch.prepare([guest('a'), guest('b', install={'cdrom': str(tmp_path / 'none.iso')})])


def test_guests_without_install_do_not_import_the_install_media_code():
    code = ('import sys\n'
            'from ansible_collections.kvmops.hypervisor.plugins.module_utils._guest import batch\n'
            'batch.prepare([{"name": "a", "virt_type": "qemu"}])\n'
            'print(sorted(m for m in sys.modules if "_install" in m))\n')
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    out = subprocess.run([sys.executable, '-c', code], stdout=subprocess.PIPE, check=True,
                         env=env, universal_newlines=True).stdout
    assert out.strip() == '[]'


def test_retry_pool_busy_retries_only_the_async_jobs_refusal():
    calls = []

    def busy():
        calls.append(1)
        if len(calls) < 3:
            raise storage.StorageError("cannot create volume p/v: pool 'p' has asynchronous "
                                       "jobs running.")
        return ['p/v']
    assert S.retry_pool_busy(busy, sleep=lambda s: None) == ['p/v'] and len(calls) == 3

    def other():
        raise storage.StorageError('disk full')
    with pytest.raises(storage.StorageError, match='disk full'):
        S.retry_pool_busy(other, sleep=lambda s: None)


def test_shared_host_facts_are_asked_once_per_virt_type_and_arch():
    class Conn(object):
        calls = 0

        def getCapabilities(self):
            Conn.calls += 1
            return ("<capabilities><host><cpu><arch>x86_64</arch></cpu></host><guest><arch "
                    "name='x86_64'><machine canonical='pc-q35-7.2'>q35</machine></arch></guest>"
                    "</capabilities>")
    shared = S.Shared()
    a = shared.host_facts({'virt_type': 'qemu'}, Conn())
    b = shared.host_facts({'virt_type': 'qemu'}, Conn())
    assert Conn.calls == 1 and a == b and a is not b
    assert a[1]['machine_aliases'] == {'q35': 'pc-q35-7.2'}


class FakeManager(object):
    """Stands in for a GuestManager: the script says what run() does per guest and mode."""

    def __init__(self, g, check_mode, script):
        self.g, self.check_mode, self.script = g, check_mode, script
        self.changed, self.actions, self.dom, self.plans = False, [], object(), []

    def run(self):
        return self.script(self, self.g.name, self.check_mode)


def make_batch(names, script, parallel=None, check_mode=False):
    gs = batch.prepare([guest(n) for n in names])
    b = batch.Batch(None, gs, parallel=parallel, check_mode=check_mode)
    b.manager = lambda g, check: FakeManager(g, check, script)
    return b


def test_unchanged_guests_are_not_run_again_and_all_run_in_parallel():
    names = ['g%d' % i for i in range(6)]
    barrier = threading.Barrier(6, timeout=10)  # passes only if all six run at once
    real = []

    def script(m, name, check):
        barrier.wait()
        if not check:
            real.append(name)
        return {'name': name, 'changed': name in ('g1', 'g4') and check or False}
    b = make_batch(names, lambda m, n, c: script(m, n, c) if c else {'name': n, 'changed': True},
                   parallel=6)
    out = b.run()
    assert out['summary']['changed_guests'] == ['g1', 'g4']
    assert [r['name'] for r in out['guests']] == names and out['changed']


def test_one_guest_failing_lets_the_others_finish_and_names_it():
    def script(m, name, check):
        if name == 'g2' and not check:
            m.actions.append('created disk /x')
            m.changed = True
            raise dman.DomainError('libvirt refused the definition of g2: boom')
        if name == 'g3' and not check:
            raise RuntimeError('surprise')
        return {'name': name, 'changed': True}
    b = make_batch(['g1', 'g2', 'g3', 'g4'], script, parallel=2)
    with pytest.raises(KvmopsError) as err:
        b.run()
    msg = str(err.value)
    assert msg.startswith('2 of 4 guests failed (the others were converged):')
    assert '[g2] libvirt refused the definition of g2: boom' in msg
    assert '[g3] unexpected RuntimeError: surprise' in msg
    res = err.value.result
    assert res['changed'] and res['summary']['failed_guests'] == ['g2', 'g3']
    g2 = res['guests'][1]
    assert g2['failed'] and g2['changed'] and g2['actions'] == ['created disk /x']
    assert not res['guests'][0].get('failed') and not res['guests'][3].get('failed')


def test_a_guest_failing_its_plan_stops_the_run_before_anything_is_applied():
    applied = []

    def script(m, name, check):
        if not check:
            applied.append(name)
        if name == 'bad' and check:
            raise dman.DomainError('kernel=/nope is not a file on the hypervisor')
        return {'name': name, 'changed': True}
    b = make_batch(['a', 'bad', 'c'], script)
    with pytest.raises(KvmopsError, match=r'Nothing was created or changed: 1 guest cannot '
                                          r'be made. \[bad\] kernel=/nope'):
        b.run()
    assert applied == []


def test_check_mode_runs_only_the_plan():
    applied = []

    def script(m, name, check):
        if not check:
            applied.append(name)
        return {'name': name, 'changed': True, 'diff': {'before': '', 'after': '<domain/>'}}
    b = make_batch(['a', 'b'], script, check_mode=True)
    b.diff_mode = True
    out = b.run()
    assert applied == [] and out['changed']
    assert [d['after_header'] for d in out['diff']] == ['a (after)', 'b (after)']
    assert 'diff' not in out['guests'][0]


def test_parallel_is_bounded_by_the_guests_and_defaults_from_cpus():
    assert batch.default_parallel(1) == 4 and batch.default_parallel(8) == 16
    b = batch.Batch(None, batch.prepare([guest('a'), guest('b')]), parallel=10)
    assert b.parallel == 2


# ---------------------------------------------------------------- preflight (fail | report)

class NoDomains(object):
    """A connection without domains: every guest is new."""

    def lookupByName(self, name):
        raise batch.libvirt.libvirtError('Domain not found: %s' % name)


class NewGuestManager(FakeManager):
    def __init__(self, *a):
        super(NewGuestManager, self).__init__(*a)
        self.dom = None


def planned(m, name, check):
    return {'name': name, 'changed': True}


def test_report_defers_what_check_mode_cannot_plan_and_lists_missing_media(tmp_path):
    gs = batch.prepare([
        guest('later', disks=[{'path': str(tmp_path / 'new' / 'later.img'), 'size': 1}]),
        guest('noiso', install={'cdrom': str(tmp_path / 'w.iso')}),
        guest('nokernel', kernel=str(tmp_path / 'vmlinuz')),
        guest('fine', disks=[{'path': str(tmp_path / 'fine.img'), 'size': 1}]),
    ], collect=True)
    b = batch.Batch(NoDomains(), gs, check_mode=True, preflight='report')
    b.manager = lambda g, check: NewGuestManager(g, check, planned)
    out = b.run()  # never raises for a guest
    assert out['preflight']['deferred'] == [{
        'guest': 'later', 'reason': 'directory',
        'msg': 'its image directory %s (disks[0]) does not exist yet; the guest is planned once '
               'it does (in a real run, after the task that creates it)' % (tmp_path / 'new')}]
    assert [r['name'] for r in out['guests']] == ['noiso', 'nokernel', 'fine']
    assert out['summary']['failed_guests'] == ['noiso', 'nokernel']
    assert [(p['guest'], p['option'], p['problem']) for p in out['preflight']['media']] == [
        ('noiso', 'install.cdrom', 'no such file'), ('nokernel', 'kernel', 'no such file')]
    assert 'does not exist on the hypervisor' in out['guests'][0]['msg']  # prepare's own words


def test_report_keeps_guests_that_fail_validation_and_one_without_a_name():
    gs = batch.prepare([guest('a', memory='-1GiB'), {'memory': 256}, guest('fine')],
                       collect=True)
    b = batch.Batch(NoDomains(), gs, check_mode=True, preflight='report')
    b.manager = lambda g, check: NewGuestManager(g, check, planned)
    out = b.run()
    assert [r.get('failed', False) for r in out['guests']] == [True, True, False]
    assert 'guests[1] has no name' in out['guests'][1]['msg']
    assert out['preflight'] == {'media': [], 'deferred': []}


def test_fail_mode_stops_on_an_install_url_that_does_not_answer_with_one_get(tmp_path):
    from support.http_server import TreeServer
    server = TreeServer(str(tmp_path))
    try:
        url = server.url + 'centos/7/os/x86_64/'
        gs = batch.prepare([guest('a', install={'location': url}),
                            guest('b', install={'location': url})])
        b = batch.Batch(NoDomains(), gs, check_mode=True)
        b.manager = lambda g, check: NewGuestManager(g, check, planned)
        with pytest.raises(KvmopsError) as err:
            b.run()
        assert server.requests == ['/centos/7/os/x86_64/']
    finally:
        server.close()
    msg = str(err.value)
    assert msg.startswith('Nothing was created or changed: 2 guests cannot be made.')
    assert '[a] install.location=%s cannot be fetched (HTTP 404)' % url in msg
    assert [p['guest'] for p in err.value.result['preflight']['media']] == ['a', 'b']


def test_media_of_existing_guests_and_cached_trees_are_not_checked(tmp_path):
    gs = batch.prepare([guest('old', kernel=str(tmp_path / 'gone'))])
    b = batch.Batch(None, gs, check_mode=True)
    b.manager = lambda g, check: FakeManager(g, check, planned)  # its domain exists
    assert b.run()['preflight'] == {'media': [], 'deferred': []}

    class CachedInstall(object):  # the install feature: the plan found the tree in the cache
        media = {'fetched': False}
        record = None

    class Cached(NewGuestManager):
        def feature(self, name):
            return CachedInstall()
    gs = batch.prepare([guest('new', install={'location': 'http://127.0.0.1:9/t/'})])
    b = batch.Batch(NoDomains(), gs, check_mode=True)
    b.manager = lambda g, check: Cached(g, check, planned)
    assert b.run()['preflight']['media'] == []  # port 9 was never asked


def test_clones_that_fit_one_by_one_but_not_together_fail_the_plan(tmp_path, monkeypatch):
    """Issue 30: the copies of every clone of the run are summed per file system; the
    clones whose copies do not fit fail (a guest without copies is left alone)."""
    class Vfs(object):
        f_bavail, f_frsize = 100, 1024 * 1024       # 100 MiB free

    real = batch._space.check_copies
    monkeypatch.setattr(batch._space, 'check_copies',
                        lambda copies, conn: real(copies, conn, statvfs=lambda path: Vfs()))

    class Manager(object):
        def __init__(self, copies):
            self.clone = type('Clone', (), {'copies': copies})()

        def feature(self, name):
            return self.clone if name == 'clone' else None

    def copy(n, mib):
        return {'label': str(tmp_path / n), 'kind': 'file', 'path': str(tmp_path / n),
                'bytes': mib * 1024 * 1024, 'source_dev': None}

    def guests(*sizes):
        gs = [batch.Guest(i, {'name': 'c%d' % i}) for i in range(len(sizes))]
        for g, mib in zip(gs, sizes):
            g.manager = Manager([copy(g.name, mib)] if mib else [])
        return gs
    gs = guests(60, 60, 0)
    batch.Batch(None, gs).check_clone_space()
    assert gs[0].error and gs[1].error and gs[2].error is None
    assert 'c0, c1 together' in gs[0].error and 'Nothing was copied' in gs[0].error
    assert gs[0].result['failed'] and not gs[0].result['changed']
    gs = guests(40, 40)                      # together they fit
    batch.Batch(None, gs).check_clone_space()
    assert gs[0].error is None and gs[1].error is None
