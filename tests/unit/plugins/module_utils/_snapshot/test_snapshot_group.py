"""virt_snapshots' group logic, pure: options, the plan of every guest before anything is done,
the stop at the first failure (nothing undone), statuses, summary and messages. The per-guest
work is a fake SnapshotManager here (the real one against libvirtd:
tests/integration/test_virt_snapshots.py)."""
import libvirt
import pytest

from ansible_collections.kvmops.hypervisor.plugins.module_utils._common.errors import KvmopsError
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt import constants as C
from ansible_collections.kvmops.hypervisor.plugins.module_utils._snapshot import group

from support.assertions import raises_naming


def spec(**kw):
    params = {'domains': ['a', 'b', 'c'], 'name': 's1', 'state': 'present'}
    params.update(kw)
    return group.normalize(params)


# -- options --------------------------------------------------------------------------------
def test_normalize_gives_one_virt_snapshot_spec_per_guest():
    s = spec(kind='external', external_dir='/vm-images/snap', quiesce='required')
    assert s['domains'] == ['a', 'b', 'c'] and s['name'] == 's1' and s['state'] == 'present'
    assert [g['domain'] for g in s['guests']] == ['a', 'b', 'c']
    for g in s['guests']:
        assert g['name'] == 's1' and g['kind'] == 'external' and g['quiesce'] == 'required'
        assert g['external_dir'] == '/vm-images/snap' and g['state'] == 'present'


@pytest.mark.parametrize('params, words', [
    ({'domains': []}, 'domains is empty'),
    ({'domains': ['a', '', 'b']}, 'domains[1] is empty'),
    ({'domains': ['a', 'b', 'a']}, 'names a more than once'),
    ({'state': 'listed'}, "state='listed'"),
    ({'name': 'no spaces'}, 'use letters, digits'),
    ({'name': None}, 'name is required'),
    ({'external_dir': 'relative'}, 'absolute path'),
])
def test_bad_options_are_refused_naming_the_fix(params, words):
    raises_naming(KvmopsError, words, spec, **params)


# -- the run, with fake guests -------------------------------------------------------------
class Guests(object):
    """What each fake guest does: 'has' (the snapshot exists), 'refuse' (its plan fails),
    'fail' (its act fails); records every call."""

    def __init__(self, has=(), refuse=None, fail=None):
        self.has = set(has)
        self.refuse = refuse or {}
        self.fail = fail or {}
        self.calls = []

    # the connection, as the group reads it after the run
    def lookupByName(self, name):
        guests = self

        class Dom(object):
            def snapshotLookupByName(self, snap, flags):
                if name in guests.has:
                    return object()
                err = libvirt.libvirtError('no snapshot')
                err.err = (C.VIR_ERR_NO_DOMAIN_SNAPSHOT, 0, 'no snapshot', 0, None, None, None, 0, 0)
                raise err
        if name == 'ghost':
            raise libvirt.libvirtError('no domain')
        return Dom()

    def manager(self, conn, s, check_mode=False, diff_mode=False, warn=None):
        guests = self

        class Fake(object):
            def __init__(self):
                self.actions = []
                self.changed = False

            def run(self):
                d = s['domain']
                guests.calls.append((d, 'check' if check_mode else 'act'))
                if d in guests.refuse:
                    raise KvmopsError(guests.refuse[d], domain=d, name=s['name'], changed=False)
                todo = {'present': d not in guests.has, 'absent': d in guests.has,
                        'reverted': True}[s['state']]
                before = 's1\n' if d in guests.has else ''
                if todo:
                    self.changed = True
                    self.actions.append('%s %s' % (s['state'], s['name']))
                    if warn is not None:
                        warn('warning of %s' % d)
                if not check_mode and todo:
                    if d in guests.fail:
                        raise KvmopsError(guests.fail[d], domain=d, name=s['name'], changed=False,
                                          actions=list(self.actions))
                    if s['state'] == 'present':
                        guests.has.add(d)
                    elif s['state'] == 'absent':
                        guests.has.discard(d)
                after = before
                if todo and s['state'] == 'present':
                    after = 's1\n'
                elif todo and s['state'] == 'absent':
                    after = ''
                return {'domain': d, 'name': s['name'], 'changed': self.changed,
                        'actions': list(self.actions), 'quiesced': False,
                        'diff': {'before': before, 'after': after}}
        return Fake()


def run(guests, check=False, diff=False, **kw):
    warnings = []
    m = group.GroupSnapshotManager(guests, spec(**kw), check_mode=check, diff_mode=diff,
                                   warn=warnings.append, guest_manager=guests.manager)
    return m.run(), warnings


def statuses(result):
    return [(g['domain'], g['status']) for g in result['guests']]


def test_check_mode_plans_every_guest_and_acts_on_none():
    g = Guests(has=['b'])
    res, warnings = run(g, check=True, diff=True)
    assert g.calls == [('a', 'check'), ('b', 'check'), ('c', 'check')]
    assert res['changed'] is True and statuses(res) == [('a', 'planned'), ('b', 'unchanged'), ('c', 'planned')]
    assert res['actions'] == ['a: present s1', 'c: present s1']
    assert res['summary']['planned_guests'] == ['a', 'c'] and res['summary']['with_snapshot'] == ['b']
    assert res['diff'] == {'before': 'a: (none)\nb: s1\nc: (none)\n', 'after': 'a: s1\nb: s1\nc: s1\n'}
    assert warnings == ['warning of a', 'warning of c']     # the plan's warnings, in check mode


def test_real_run_acts_only_where_needed_and_a_rerun_is_unchanged():
    g = Guests(has=['b'])
    res, warnings = run(g, diff=True)
    assert g.calls == [('a', 'check'), ('b', 'check'), ('c', 'check'), ('a', 'act'), ('c', 'act')]
    assert res['changed'] is True and statuses(res) == [('a', 'changed'), ('b', 'unchanged'), ('c', 'changed')]
    assert res['summary']['with_snapshot'] == ['a', 'b', 'c'] and res['summary']['without_snapshot'] == []
    assert warnings == ['warning of a', 'warning of c']     # from the act, not twice
    assert 'diff' not in res['guests'][0] and res['diff']['after'] == 'a: s1\nb: s1\nc: s1\n'
    g.calls = []
    res, warnings = run(g)
    assert res['changed'] is False and res['actions'] == [] and warnings == []
    assert statuses(res) == [('a', 'unchanged'), ('b', 'unchanged'), ('c', 'unchanged')]
    assert [c[1] for c in g.calls] == ['check'] * 3


def test_absent_deletes_only_where_it_exists():
    g = Guests(has=['a', 'c'])
    res, dummy = run(g, state='absent')
    assert statuses(res) == [('a', 'changed'), ('b', 'unchanged'), ('c', 'changed')]
    assert res['summary']['without_snapshot'] == ['a', 'b', 'c'] and g.has == set()
    assert run(g, state='absent')[0]['changed'] is False


def test_a_refused_plan_fails_before_anything_naming_every_refused_guest():
    g = Guests(refuse={'a': 'There is no guest named a.', 'c': 'cannot revert to external snapshots.'})
    with pytest.raises(KvmopsError) as exc:
        run(g, state='reverted')
    err = exc.value
    assert [c[1] for c in g.calls] == ['check'] * 3           # nothing acted
    assert err.msg.startswith('Nothing was done on any guest') and '2 of the guests' in err.msg
    assert 'a: There is no guest named a.' in err.msg and 'c: cannot revert to external' in err.msg
    assert 'b:' not in err.msg
    assert [(x['domain'], x['status']) for x in err.result['guests']] == [
        ('a', 'refused'), ('b', 'planned'), ('c', 'refused')]
    assert err.result['guests'][0]['msg'] == 'There is no guest named a.'
    assert err.result['summary']['refused_guests'] == ['a', 'c']


def test_a_failure_midway_stops_undoes_nothing_and_says_who_has_it():
    g = Guests(has=['d'], fail={'b': 'quiesce=required, but the guest agent did not freeze the guest.'})
    with pytest.raises(KvmopsError) as exc:
        run(g, domains=['a', 'b', 'c', 'd'])
    err = exc.value
    assert ('c', 'act') not in g.calls and g.has == {'a', 'd'}
    assert [(x['domain'], x['status']) for x in err.result['guests']] == [
        ('a', 'changed'), ('b', 'failed'), ('c', 'not_done'), ('d', 'unchanged')]
    summ = err.result['summary']
    assert summ['with_snapshot'] == ['a', 'd'] and summ['without_snapshot'] == ['b', 'c']
    assert summ['failed_guests'] == ['b'] and summ['not_done_guests'] == ['c']
    assert err.result['changed'] is True and err.result['actions'] == ['a: present s1', 'b: present s1']
    assert 'stopped at guest b: quiesce=required' in err.msg
    assert 'Done before it (took the snapshot, not undone): a.' in err.msg
    assert 'exists now on: a, d; not on: b, c.' in err.msg
    assert 'acts only on the guests not done (b, c)' in err.msg
    # the cause fixed: the re-run acts on b and c only
    g.fail = {}
    g.calls = []
    res, dummy = run(g, domains=['a', 'b', 'c', 'd'])
    assert [c for c in g.calls if c[1] == 'act'] == [('b', 'act'), ('c', 'act')]
    assert res['summary']['with_snapshot'] == ['a', 'b', 'c', 'd']


def test_a_revert_that_stops_names_the_guests_left_to_revert():
    g = Guests(has=['a', 'b', 'c'], fail={'b': 'libvirt refused to revert b to s1.'})
    with pytest.raises(KvmopsError) as exc:
        run(g, state='reverted')
    err = exc.value
    assert err.result['summary']['reverted_guests'] == ['a']
    assert 'Done before it (reverted to the snapshot, not undone): a.' in err.msg
    assert 'revert the rest with domains: [b, c]' in err.msg


def test_a_guest_libvirt_cannot_answer_for_is_unknown():
    summ = group.summary('present', [{'domain': 'a', 'status': 'changed'},
                                     {'domain': 'ghost', 'status': 'failed'}],
                         {'a': True, 'ghost': None})
    assert summ['unknown_guests'] == ['ghost'] and summ['with_snapshot'] == ['a']
    msg = group.failure_message('s1', 'present', 'ghost', 'gone', summ)
    assert 'libvirt did not say for: ghost.' in msg and msg.count('..') == 0


def test_two_guests_planning_one_overlay_file_are_refused_before_anything():
    rows = [{'domain': 'a', 'overlays': ['/snap/disk.s1.qcow2']},
            {'domain': 'b', 'overlays': ['/snap/b.s1.qcow2']},
            {'domain': 'c', 'overlays': ['/snap/disk.s1.qcow2']}]
    clashes = group.overlay_clashes(rows)
    assert [d for d, dummy in clashes] == ['a', 'c']
    assert 'its overlay /snap/disk.s1.qcow2 would also be the overlay of c.' in clashes[0][1]
    assert 'shared external_dir' in clashes[0][1]
    assert group.overlay_clashes(rows[:2]) == []
