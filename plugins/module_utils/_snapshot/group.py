# -*- coding: utf-8 -*-
# Copyright: kvmops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""virt_snapshots: one snapshot name over a group of guests (a patch window).

Every guest is planned first: its SnapshotManager runs in check mode (no side effects). When
any guest's plan is refused, the run fails before anything is done, naming every refused
guest with its reason. Then the guests that need a change are acted on one after the other,
each by its own SnapshotManager (the one implementation of create, quiesce, delete and
revert). The first failure stops the run; nothing is undone, and the result says, as libvirt
reports it afterwards, which guests have the snapshot and which do not, so a re-run (which
skips the guests already done) finishes the work.

Sequential on purpose: "stop at the first failure" is exact only one guest at a time (threads
would leave several guests half-way when one fails), and a guest's snapshot is short next to a
patch window (internal snapshot of a shut-off tiny guest ~0.1 s, of a running one with its
memory a few seconds under TCG; see the note of issue 30).

Private to the collection: no API promise. The pure parts (normalize, statuses, summary and
messages) are unit-tested without libvirt.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible_collections.kvmops.hypervisor.plugins.module_utils._common.errors import KvmopsError
from ansible_collections.kvmops.hypervisor.plugins.module_utils._common.manager import ManagerBase
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt import constants as C
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt.connection import libvirt  # None without libvirt-python
from ansible_collections.kvmops.hypervisor.plugins.module_utils._snapshot import plan
from ansible_collections.kvmops.hypervisor.plugins.module_utils._snapshot.manager import SnapshotManager

STATES = ('present', 'absent', 'reverted')

# A guest's status in the result.
UNCHANGED = 'unchanged'     # nothing to do (has it / does not have it already)
PLANNED = 'planned'         # check mode: would change
REFUSED = 'refused'         # its plan failed: nothing was done on any guest
CHANGED = 'changed'         # done in this run
FAILED = 'failed'           # the guest the run stopped at
NOT_DONE = 'not_done'       # would have changed, but the run stopped before it

_DONE_WORDS = {'present': 'took the snapshot', 'absent': 'deleted the snapshot',
               'reverted': 'reverted to the snapshot'}


def normalize(params):
    """The group's spec: {'domains', 'name', 'state', 'guests': [one virt_snapshot spec per
    guest, from plan.normalize]}."""
    state = params.get('state') or 'present'
    if state not in STATES:
        raise KvmopsError('state=%r: choose one of %s (state=listed is virt_snapshot\'s, per '
                          'guest).' % (state, ', '.join(STATES)))
    domains = params.get('domains')
    if not domains:
        raise KvmopsError('domains is empty: name the guests that take the snapshot.')
    empty = [i for i, d in enumerate(domains) if not d]
    if empty:
        raise KvmopsError('domains[%s] is empty: every item is the name of a guest.'
                          % ', '.join(str(i) for i in empty))
    twice = sorted(set(d for d in domains if domains.count(d) > 1))
    if twice:
        raise KvmopsError('domains names %s more than once: name every guest once.'
                          % ', '.join(twice))
    guests = [plan.normalize(dict(params, domain=d, state=state)) for d in domains]
    return {'domains': list(domains), 'name': guests[0]['name'], 'state': state, 'guests': guests}


def overlay_clashes(rows):
    """[(domain, reason)] for the guests whose planned overlay files another guest of the group
    would write too (one external_dir for guests whose disks share a file name): each guest's
    own plan cannot see that, the first to act would make the file the next one refuses."""
    owners = {}
    for row in rows:
        for path in row.get('overlays') or []:
            owners.setdefault(path, []).append(row['domain'])
    clashes = {}
    for path, domains in owners.items():
        if len(domains) > 1:
            for d in domains:
                clashes.setdefault(d, []).append((path, [o for o in domains if o != d]))
    out = []
    for row in rows:
        if row['domain'] in clashes:
            out.append((row['domain'], ' '.join(
                'its overlay %s would also be the overlay of %s.' % (path, ', '.join(others))
                for path, others in clashes[row['domain']]) + (
                ' Give the guests disk files of their own names, or snapshot them without a '
                'shared external_dir.')))
    return out


def refusal_message(name, state, refused):
    """refused: [(domain, reason)] -> the message of a group refused in its plan."""
    return ('Nothing was done on any guest: the plan of snapshot %s (state=%s) was refused for %d '
            'of the guests. %s Fix these (or leave those guests out of domains) and run the task '
            'again.' % (name, state, len(refused),
                        ' '.join('%s: %s' % (d, reason.rstrip()) for d, reason in refused)))


def summary(state, rows, has_snapshot):
    """Names per outcome. rows: [{'domain', 'status'}] in order; has_snapshot: {domain: True,
    False or None (unknown: libvirt did not say)} as read after the run."""
    def named(*statuses):
        return [r['domain'] for r in rows if r['status'] in statuses]
    out = {'total': len(rows), 'changed_guests': named(CHANGED), 'unchanged_guests': named(UNCHANGED),
           'planned_guests': named(PLANNED), 'refused_guests': named(REFUSED),
           'failed_guests': named(FAILED), 'not_done_guests': named(NOT_DONE),
           'with_snapshot': [r['domain'] for r in rows if has_snapshot.get(r['domain']) is True],
           'without_snapshot': [r['domain'] for r in rows if has_snapshot.get(r['domain']) is False],
           'unknown_guests': [r['domain'] for r in rows if has_snapshot.get(r['domain']) is None]}
    if state == 'reverted':
        out['reverted_guests'] = named(CHANGED)
    return out


def failure_message(name, state, failed, reason, summ):
    """The message of a group whose act stopped at guest `failed`."""
    parts = ['Snapshot %s (state=%s) stopped at guest %s: %s' % (name, state, failed, reason.rstrip())]
    if not parts[0].endswith('.'):
        parts[0] += '.'
    if summ['changed_guests']:
        parts.append('Done before it (%s, not undone): %s.'
                     % (_DONE_WORDS[state], ', '.join(summ['changed_guests'])))
    if summ['not_done_guests']:
        parts.append('Not done: %s.' % ', '.join(summ['not_done_guests']))
    parts.append('The snapshot exists now on: %s; not on: %s.'
                 % (', '.join(summ['with_snapshot']) or 'none',
                    ', '.join(summ['without_snapshot']) or 'none'))
    if summ['unknown_guests']:
        parts.append('libvirt did not say for: %s.' % ', '.join(summ['unknown_guests']))
    if state == 'reverted':
        left = [failed] + summ['not_done_guests']
        parts.append('Fix the cause, then revert the rest with domains: [%s] (a re-run with the '
                     'whole group reverts the guests already reverted once more).' % ', '.join(left))
    else:
        parts.append('Fix the cause and run the task again: it acts only on the guests not done '
                     '(%s).' % ', '.join([failed] + summ['not_done_guests']))
    return ' '.join(parts)


def group_diff(rows):
    """One line per guest: its snapshot names before and after (virt_snapshot's diff per guest)."""
    def side(key):
        lines = []
        for row in rows:
            names = [n for n in (row.get('diff') or {}).get(key, '').split('\n') if n]
            lines.append('%s: %s' % (row['domain'], ', '.join(names) if names else '(none)'))
        return '\n'.join(lines) + '\n'
    return {'before': side('before'), 'after': side('after')}


class GroupSnapshotManager(ManagerBase):
    """Plan every guest, then act guest by guest; one SnapshotManager per guest and step."""

    def __init__(self, conn, spec, check_mode=False, diff_mode=False, warn=None,
                 guest_manager=SnapshotManager):
        super(GroupSnapshotManager, self).__init__(check_mode=check_mode, diff_mode=diff_mode, warn=warn)
        self.conn = conn
        self.spec = spec
        self.guest_manager = guest_manager

    def _guest(self, spec, check_mode, warn):
        """(result, None) of one guest's SnapshotManager run, or (the fields its error carries,
        error message) when it failed."""
        manager = self.guest_manager(self.conn, spec, check_mode=check_mode, diff_mode=True, warn=warn)
        try:
            return manager.run(), None
        except KvmopsError as exc:
            return dict(exc.result, actions=list(manager.actions), changed=manager.changed), exc.msg
        except libvirt.libvirtError as exc:
            return (dict(domain=spec['domain'], name=spec['name'], actions=list(manager.actions),
                         changed=manager.changed),
                    'libvirt failed on %s: %s' % (spec['domain'], exc))

    def run(self):
        rows = []
        refused = []
        plan_warnings = []
        for spec in self.spec['guests']:
            result, error = self._guest(spec, True, plan_warnings.append)
            row = dict(result, domain=spec['domain'])
            if error is not None:
                row.update(status=REFUSED, msg=error)
                refused.append((spec['domain'], error))
            else:
                row['status'] = PLANNED if result.get('changed') else UNCHANGED
            rows.append(row)
        for domain, reason in overlay_clashes(rows):
            row = rows[self.spec['domains'].index(domain)]
            row.update(status=REFUSED, msg=reason)
            refused.append((domain, reason))
        if refused:
            refused.sort(key=lambda item: self.spec['domains'].index(item[0]))
            raise KvmopsError(refusal_message(self.spec['name'], self.spec['state'], refused),
                              **self._fields(rows, diff=False))
        if self.check_mode:
            for warning in plan_warnings:
                self.warn(warning)
            for row in rows:
                self.actions.extend('%s: %s' % (row['domain'], a) for a in row.get('actions') or [])
            self.changed = any(r['status'] == PLANNED for r in rows)
            return self.result(**self._fields(rows))
        for index, spec in enumerate(self.spec['guests']):
            row = rows[index]
            if row['status'] == UNCHANGED:
                continue
            result, error = self._guest(spec, False, self.warn)
            rows[index] = row = dict(result, domain=spec['domain'])
            self.actions.extend('%s: %s' % (spec['domain'], a) for a in row.get('actions') or [])
            if row.get('changed'):
                self.changed = True
            if error is None:
                row['status'] = CHANGED if row.get('changed') else UNCHANGED
                continue
            row.update(status=FAILED, msg=error)
            for later in rows[index + 1:]:
                if later['status'] == PLANNED:
                    later['status'] = NOT_DONE
            fields = self._fields(rows, diff=False)
            raise KvmopsError(failure_message(self.spec['name'], self.spec['state'], spec['domain'],
                                              error, fields['summary']),
                              changed=self.changed, actions=list(self.actions), **fields)
        return self.result(**self._fields(rows))

    def _has_snapshot(self, domain):
        """True/False as libvirt says now; None when it cannot say (no such guest, an error)."""
        try:
            dom = self.conn.lookupByName(domain)
        except libvirt.libvirtError:
            return None
        try:
            dom.snapshotLookupByName(self.spec['name'], 0)
            return True
        except libvirt.libvirtError as exc:
            if exc.get_error_code() == C.VIR_ERR_NO_DOMAIN_SNAPSHOT:
                return False
            return None

    def _fields(self, rows, diff=True):
        """guests, summary (and diff in diff mode, unless the run failed) of the rows as they
        are now."""
        has = dict((r['domain'], self._has_snapshot(r['domain'])) for r in rows)
        fields = {'name': self.spec['name'], 'state': self.spec['state'],
                  'summary': summary(self.spec['state'], rows, has)}
        if self.diff_mode and diff:
            fields['diff'] = group_diff(rows)
        fields['guests'] = [dict((k, v) for k, v in r.items() if k not in ('diff', 'warnings'))
                            for r in rows]
        return fields
