# -*- coding: utf-8 -*-
# Copyright: kvmops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""virt_snapshot's manager: create a snapshot by name (internal, or external disk-only where
internal is impossible, quiesced through the guest agent when it answers), delete it (with
or without its children; external ones are merged back into their base images), revert the
guest to it, and list a guest's snapshots.

Private to the collection: no API promise. Independent of AnsibleModule: it gets the one
libvirt connection and the spec from plan.normalize().
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import time

from ansible_collections.kvmops.hypervisor.plugins.module_utils._common.errors import KvmopsError
from ansible_collections.kvmops.hypervisor.plugins.module_utils._common.manager import ManagerBase
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt import agent as _agent
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt import constants as C
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt import xml as lxml_util
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt.locality import connection_is_local, refusal
from ansible_collections.kvmops.hypervisor.plugins.module_utils._snapshot import plan
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt.connection import libvirt  # None without libvirt-python

# libvirt deletes external snapshots itself (merging them back) since 9.0, and reverts to
# them since 9.7.
LIBVIRT_DELETES_EXTERNAL = 9000000
LIBVIRT_REVERTS_EXTERNAL = 9007000
MERGE_TIMEOUT = 600


def _state_name(dom):
    return C.DOMAIN_STATE_NAMES.get(dom.state()[0], 'unknown')


class SnapshotManager(ManagerBase):
    def __init__(self, conn, spec, check_mode=False, diff_mode=False, warn=None,
                 merge_with_blockcommit=None):
        super(SnapshotManager, self).__init__(check_mode=check_mode, diff_mode=diff_mode, warn=warn)
        self.conn = conn
        self.spec = spec
        self.fields = {}
        self.maybe_frozen = False   # a freeze the guest agent did not answer in time
        # None: blockcommit only where libvirt cannot delete external snapshots itself.
        self.merge_with_blockcommit = merge_with_blockcommit

    def _fail(self, msg, **extra):
        fields = dict(domain=self.spec['domain'], name=self.spec['name'], changed=self.changed,
                      actions=list(self.actions))
        fields.update(extra)
        raise KvmopsError(msg, **fields)

    def _call(self, what, fn, *args):
        try:
            return fn(*args)
        except libvirt.libvirtError as exc:
            self._fail('libvirt refused to %s: %s' % (what, exc))

    # -- reads ----------------------------------------------------------------------------
    def lookup_domain(self):
        try:
            return self.conn.lookupByName(self.spec['domain'])
        except libvirt.libvirtError:
            self._fail('There is no guest named %s on this hypervisor: check domain (virsh list --all).'
                       % self.spec['domain'])

    def lookup_snapshot(self, dom, name):
        try:
            return dom.snapshotLookupByName(name, 0)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() == C.VIR_ERR_NO_DOMAIN_SNAPSHOT:
                return None
            self._fail('Cannot look up snapshot %s of %s: %s' % (name, dom.name(), exc))

    def current_name(self, dom):
        try:
            if dom.hasCurrentSnapshot(0):
                return dom.snapshotCurrent(0).getName()
        except libvirt.libvirtError:
            pass
        return None

    def info(self, dom, snap):
        return plan.snapshot_info(snap.getXMLDesc(0), self.current_name(dom), snap.numChildren(0))

    def list_snapshots(self, dom):
        current = self.current_name(dom)
        out = []
        for snap in dom.listAllSnapshots(C.VIR_DOMAIN_SNAPSHOT_LIST_TOPOLOGICAL):
            out.append(plan.snapshot_info(snap.getXMLDesc(0), current, snap.numChildren(0)))
        return out

    # -- the run --------------------------------------------------------------------------
    def run(self):
        dom = self.lookup_domain()
        state = self.spec['state']
        before = [s['name'] for s in self.list_snapshots(dom)]
        if state == 'listed':
            snaps = self.list_snapshots(dom)
            return self.result(snapshots=snaps, ansible_facts={'virt_snapshots': snaps})
        snap = self.lookup_snapshot(dom, self.spec['name'])
        if state == 'present':
            self.ensure_present(dom, snap)
        elif state == 'absent':
            self.ensure_absent(dom, snap)
        else:
            self.revert(dom, snap)
        if self.diff_mode:
            after = before
            if self.changed and state == 'present':
                after = before + [self.spec['name']]
            elif self.changed and state == 'absent':
                gone = set(self.fields.get('deleted', [self.spec['name']]))
                after = [n for n in before if n not in gone]
            self.diff = {'before': '\n'.join(before) + ('\n' if before else ''),
                         'after': '\n'.join(after) + ('\n' if after else '')}
        return self.result(**self.fields)

    def ensure_present(self, dom, snap):
        if snap is not None:
            current = self.info(dom, snap)
            if self.spec['kind'] != 'auto' and self.spec['kind'] != current['kind']:
                self._fail('The snapshot %s of %s exists as an %s snapshot, not %s: delete it first '
                           '(state=absent) or pick another name.'
                           % (self.spec['name'], dom.name(), current['kind'], self.spec['kind']))
            if self.spec['description'] is not None and self.spec['description'] != (current['description'] or ''):
                self.update_description(dom, snap)
            self.fields['snapshot'] = self.info(dom, snap) if not self.check_mode else current
            return
        root = lxml_util.parse(dom.XMLDesc(C.VIR_DOMAIN_XML_INACTIVE if not dom.isActive() else 0))
        try:
            external = [s['name'] for s in self.list_snapshots(dom) if s['kind'] == 'external']
            kind, reason = plan.decide_kind(self.spec['kind'], root, external)
        except KvmopsError as exc:
            self._fail(exc.msg)
        xml, overlays = plan.snapshot_xml(self.spec, kind, root)
        self.require_local_files([('kind=external', 'checks the overlay paths %s'
                                   % ', '.join(overlays))] if overlays else [],
                                 'use kind: internal')
        for path in overlays:
            if os.path.exists(path):
                self._fail('The external snapshot %s would write its overlay to %s, which exists: '
                           'nothing is overwritten. Pick another name, or another external_dir.'
                           % (self.spec['name'], path))
            if not os.path.isdir(os.path.dirname(path)):
                self._fail('The directory %s for the overlay %s does not exist: create it or set '
                           'external_dir.' % (os.path.dirname(path), path))
        running = dom.isActive()
        flags = 0
        if kind == 'external':
            flags |= C.VIR_DOMAIN_SNAPSHOT_CREATE_DISK_ONLY | C.VIR_DOMAIN_SNAPSHOT_CREATE_ATOMIC
        quiesce, quiesce_reason = self.quiesce_plan(root, running, kind)
        self.fields.update(kind=kind, kind_reason=reason, overlays=overlays,
                           quiesced=False, quiesce_reason=quiesce_reason,
                           memory=bool(kind == 'internal' and running))
        self.act('create %s snapshot %s%s' % (kind, self.spec['name'],
                                              ' with the memory state' if self.fields['memory'] else ''))
        if self.check_mode:
            self.fields['quiesced'] = None if quiesce else False
            self.fields['snapshot'] = None
            return
        # Quiesced as libvirt's QUIESCE flag does it (freeze, snapshot, thaw), but with every
        # agent call bounded: inside libvirt the freeze waits for the guest's answer for ever.
        frozen = self.freeze(dom) if quiesce else False
        try:
            self._call('create the snapshot %s of %s' % (self.spec['name'], dom.name()),
                       dom.snapshotCreateXML, xml, flags)
        finally:
            if frozen or self.maybe_frozen:
                self.thaw(dom)
        self.fields['snapshot'] = self.info(dom, dom.snapshotLookupByName(self.spec['name'], 0))

    def freeze(self, dom):
        """Freeze the guest's file systems for the snapshot: True when the agent did; else the
        snapshot is crash-consistent with a warning (quiesce=auto) or the run fails
        (quiesce=required)."""
        try:
            _agent.freeze(dom)
            self.fields.update(quiesced=True, quiesce_reason=(
                'The guest agent froze the guest file systems for the snapshot.'))
            return True
        except _agent.AgentTimeout as exc:
            # the freeze may still land: thawed after the snapshot (or now, when this fails)
            self.maybe_frozen = True
            why = ('%s to the freeze; a guest agent that never answers would hold libvirt for '
                   'ever, so kvmops stops waiting' % exc)
        except libvirt.libvirtError as exc:
            why = str(exc)
        if self.spec['quiesce'] == 'required':
            if self.maybe_frozen:
                self.thaw(dom)
            self._fail('quiesce=required, but the guest agent did not freeze the guest: %s. '
                       'Check that qemu-guest-agent runs in the guest.' % why)
        self.fields['quiesce_reason'] = (
            'The guest agent did not answer (%s): the snapshot is crash-consistent, as if '
            'the guest had lost power.' % why)
        self.warn('Snapshot %s of %s is not quiesced: %s'
                  % (self.spec['name'], dom.name(), self.fields['quiesce_reason']))
        return False

    def thaw(self, dom):
        if not _agent.thaw(dom):
            self.warn('The guest agent of %s did not thaw its file systems: run `virsh domfsthaw %s`.'
                      % (dom.name(), dom.name()))

    def quiesce_plan(self, root, running, kind):
        """(try quiesce?, why) - only a disk-only snapshot of a running guest can be quiesced."""
        mode = self.spec['quiesce']
        if mode == 'skip':
            return False, 'quiesce=skip.'
        if not running:
            return False, 'The guest is shut off: its disks are consistent as they are.'
        if kind == 'internal':
            if mode == 'required':
                self._fail('quiesce=required applies to external (disk-only) snapshots; an internal '
                           'snapshot of a running guest saves its memory too and needs no freeze. Use '
                           'kind=external or quiesce=auto.')
            return False, ('The snapshot includes the memory state of the running guest: reverting '
                           'resumes it exactly where it was (no freeze needed).')
        if not plan.has_agent_channel(root):
            if mode == 'required':
                self._fail('quiesce=required, but the guest has no guest-agent channel (%s): add one '
                           'and run qemu-guest-agent in the guest.' % plan.AGENT_CHANNEL)
            reason = ('The guest has no guest-agent channel: the snapshot is crash-consistent, as if '
                      'the guest had lost power.')
            self.warn('Snapshot %s of %s is not quiesced: %s' % (self.spec['name'], self.spec['domain'], reason))
            return False, reason
        return True, None

    def update_description(self, dom, snap):
        self.act('update the description of snapshot %s' % self.spec['name'])
        if self.check_mode:
            return
        root = lxml_util.parse(snap.getXMLDesc(C.VIR_DOMAIN_XML_SECURE))
        desc = root.find('description')
        if desc is None:
            desc = lxml_util.etree.Element('description')
            root.find('name').addnext(desc)
        desc.text = self.spec['description']
        flags = 1  # VIR_DOMAIN_SNAPSHOT_CREATE_REDEFINE
        if self.current_name(dom) == self.spec['name']:
            flags |= 2  # VIR_DOMAIN_SNAPSHOT_CREATE_CURRENT: stays the current snapshot
        self._call('update the description', dom.snapshotCreateXML, lxml_util.to_string(root), flags)

    def ensure_absent(self, dom, snap):
        if snap is None:
            return
        info = self.info(dom, snap)
        deleted = [info['name']]
        if self.spec['children'] and info['children']:
            deleted += [s.getName() for s in snap.listAllChildren(C.VIR_DOMAIN_SNAPSHOT_LIST_DESCENDANTS)]
        self.fields.update(snapshot=info, deleted=deleted)
        if info['children'] and not self.spec['children']:
            self.fields['children_kept'] = [s.getName() for s in snap.listAllChildren(0)]
        blockcommit = self.merge_with_blockcommit
        if blockcommit is None:
            blockcommit = info['kind'] == 'external' and self.conn.getLibVersion() < LIBVIRT_DELETES_EXTERNAL
        if blockcommit:
            self.require_local_files([('state=absent', 'removes the overlays of the external '
                                       'snapshot %s after the merge' % info['name'])],
                                     'use libvirt 9.0 or newer there (it merges them itself)')
        if info['kind'] == 'external':
            self.act('delete external snapshot %s, merging its overlays back into their base images%s'
                     % (info['name'], ' (blockcommit)' if blockcommit else ''))
        else:
            self.act('delete internal snapshot %s%s' % (
                info['name'], ' and its %d descendants' % (len(deleted) - 1) if len(deleted) > 1 else ''))
        if self.check_mode:
            return
        if blockcommit:
            self.merge_back(dom, snap, info)
            return
        flags = C.VIR_DOMAIN_SNAPSHOT_DELETE_CHILDREN if self.spec['children'] else 0
        self._call('delete the snapshot %s of %s' % (info['name'], dom.name()), snap.delete, flags)
        self.fields['merged'] = [d['name'] for d in info['disks'] if d['snapshot'] == 'external']

    def require_local_files(self, needs, fix):
        """Fail before anything is done when this host's files are needed through another
        host's libvirt (issue 26); internal snapshots need none."""
        if needs and not connection_is_local(self.conn):
            self._fail(refusal(self.conn.getURI(), needs, fix))

    def merge_back(self, dom, snap, info):
        """Delete an external snapshot where libvirt cannot: commit each overlay into its base
        (active blockcommit, then pivot), then drop the snapshot's metadata and the overlays."""
        if info['children'] or self.spec['children']:
            self._fail('The external snapshot %s has children: merging it back would break them. '
                       'Delete its children first.' % info['name'])
        if not dom.isActive():
            self._fail('Deleting the external snapshot %s needs blockcommit, which runs only while '
                       'the guest runs (or libvirt 9.0+, which merges it itself): start %s first.'
                       % (info['name'], dom.name()))
        live = lxml_util.parse(dom.XMLDesc(0))
        sources = {}
        for disk in live.findall('devices/disk'):
            target, source = disk.find('target'), disk.find('source')
            if target is not None and source is not None:
                sources[target.get('dev')] = source.get('file') or source.get('dev')
        merged = []
        for d in info['disks']:
            if d['snapshot'] != 'external':
                continue
            if sources.get(d['name']) != d['file']:
                self._fail('Disk %s no longer runs on the overlay %s of snapshot %s (it is on %s): '
                           'only the newest external snapshot can be merged back.'
                           % (d['name'], d['file'], info['name'], sources.get(d['name'])))
            self._call('start blockcommit on %s' % d['name'], dom.blockCommit, d['name'], None, None,
                       0, C.VIR_DOMAIN_BLOCK_COMMIT_ACTIVE)
            deadline = time.time() + MERGE_TIMEOUT
            while True:
                job = dom.blockJobInfo(d['name'], 0)
                if job and job.get('end') and job.get('cur') == job.get('end'):
                    break
                if time.time() > deadline:
                    dom.blockJobAbort(d['name'], 0)
                    self._fail('blockcommit of %s did not finish within %ss; it was aborted and the '
                               'guest still runs on the overlay %s.' % (d['name'], MERGE_TIMEOUT, d['file']))
                time.sleep(0.2)
            self._call('pivot %s back onto its base image' % d['name'], dom.blockJobAbort,
                       d['name'], C.VIR_DOMAIN_BLOCK_JOB_ABORT_PIVOT)
            deadline = time.time() + 60
            while dom.blockJobInfo(d['name'], 0) and time.time() < deadline:
                time.sleep(0.2)
            merged.append(d['name'])
        self._call('drop the metadata of snapshot %s' % info['name'], snap.delete,
                   C.VIR_DOMAIN_SNAPSHOT_DELETE_METADATA_ONLY)
        for d in info['disks']:
            if d['snapshot'] == 'external' and d['file'] and os.path.exists(d['file']):
                os.unlink(d['file'])
        self.fields['merged'] = merged

    def revert(self, dom, snap):
        if snap is None:
            self._fail('The guest %s has no snapshot named %s: nothing to revert to (state=listed shows '
                       'its snapshots).' % (dom.name(), self.spec['name']))
        info = self.info(dom, snap)
        if info['kind'] == 'external' and self.conn.getLibVersion() < LIBVIRT_REVERTS_EXTERNAL:
            self._fail('The snapshot %s is external, and this libvirt (%s) cannot revert to external '
                       'snapshots (libvirt 9.7 can). Nothing was changed.'
                       % (info['name'], self._version()))
        now = _state_name(dom)
        after = {'snapshot': 'running' if info['state'] in ('running', 'paused') and info['memory']
                 else 'stopped', 'running': 'running', 'paused': 'paused'}[self.spec['revert_state']]
        if info['state'] == 'paused' and self.spec['revert_state'] == 'snapshot':
            after = 'paused'
        lost = ('everything the guest wrote to its disks since the snapshot%s'
                % (', and its current memory state (it is %s now)' % now if now != 'stopped' else ''))
        prediction = ('%s would go back to snapshot %s (taken %s, guest %s then) and be %s afterwards; '
                      '%s would be discarded.' % (dom.name(), info['name'],
                                                  time.strftime('%Y-%m-%d %H:%M:%S UTC',
                                                                time.gmtime(info['created'] or 0)),
                                                  info['state'], after, lost))
        self.fields.update(snapshot=info, state_before=now, prediction=prediction)
        self.act('revert %s to snapshot %s' % (dom.name(), info['name']))
        if self.check_mode:
            self.fields['state_after'] = after
            return
        self.warn('Reverted %s to snapshot %s: %s was discarded.' % (dom.name(), info['name'], lost))
        flags = {'snapshot': 0, 'running': C.VIR_DOMAIN_SNAPSHOT_REVERT_RUNNING,
                 'paused': C.VIR_DOMAIN_SNAPSHOT_REVERT_PAUSED}[self.spec['revert_state']]
        try:
            dom.revertToSnapshot(snap, flags)
        except libvirt.libvirtError as exc:
            # e.g. a running guest whose configuration changed since the snapshot
            self._fail('libvirt refused to revert %s to %s: %s' % (dom.name(), info['name'], exc))
        self.fields['state_after'] = _state_name(dom)

    def _version(self):
        v = self.conn.getLibVersion()
        return '%d.%d.%d' % (v // 1000000, v // 1000 % 1000, v % 1000)

    def result(self, **fields):
        return super(SnapshotManager, self).result(domain=self.spec['domain'], name=self.spec['name'],
                                                   **fields)
