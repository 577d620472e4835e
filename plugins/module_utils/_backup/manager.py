# -*- coding: utf-8 -*-
# Copyright: kvmops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""virt_backup's manager: full and incremental backups of existing guests with libvirt's
backup API in push mode (virDomainBackupBegin with a checkpoint; QEMU writes the qcow2
targets itself), quiesced through the guest agent when it answers, into the repository that
plan.py describes; retention after a successful backup only.

Never lose data: a backup that fails or is interrupted leaves the committed chains as they
were; its partial files and its checkpoint are removed (by itself, or by the next run, which
first cleans up what an interrupted run left: partial directories, a backup job of ours
still running, checkpoints no committed point owns, a guest it started paused). A deleted
checkpoint's bitmap is merged into its parent by libvirt, so the chain stays continuous; when
that is impossible the chain is marked broken and the next backup is a full one. The guest's
disks change only by the checkpoint bitmaps.

Private to the collection: no API promise. Independent of AnsibleModule.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import fcntl
import json
import os
import shutil
import threading
import time

from ansible_collections.kvmops.hypervisor.plugins.module_utils._common.errors import KvmopsError
from ansible_collections.kvmops.hypervisor.plugins.module_utils._common.manager import ManagerBase
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt import agent as _agent
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt import constants as C
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt import domain_disks
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt import xml as lxml_util
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt.tags import domain_tags
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt.connection import libvirt  # None without libvirt-python
from ansible_collections.kvmops.hypervisor.plugins.module_utils._backup import plan
from ansible_collections.kvmops.hypervisor.plugins.module_utils._backup import repo

POLL = 0.2
PAUSED_MARKER = '.started-paused'
INFLIGHT = '.inflight'  # what a run is backing up right now: identifies its job after a crash
LOCK_FILE = '.lock'
BEGIN_ATTEMPTS = 4
BEGIN_RETRY_WAIT = 5


# What libvirt raises (nothing to catch without libvirt-python: the runner fails before)
LIBVIRT_ERROR = libvirt.libvirtError if libvirt is not None else ()


class GuestBackup(object):
    """One guest's backup (or its plan in check mode)."""

    def __init__(self, conn, spec, name, check_mode, warn, host):
        self.conn = conn
        self.spec = spec
        self.name = name
        self.check_mode = check_mode
        self.warn = warn
        self.host = host
        self.actions = []
        self.out = {'domain': name, 'changed': False}
        self.gdir = repo.guest_dir(spec['repository'], name)
        self.maybe_frozen = False   # a freeze the guest agent did not answer in time

    def act(self, what):
        self.actions.append('%s: %s' % (self.name, what))
        self.out['changed'] = True

    def fail(self, msg):
        raise KvmopsError('%s: %s' % (self.name, msg))

    def lock(self):
        """One run per guest directory at a time (an overlapping schedule must not take the
        other run's job and partial files for leftovers). Held until the process ends."""
        if getattr(self, '_lock_fd', None) is not None:
            return
        fd = os.open(os.path.join(self.gdir, LOCK_FILE), os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except (IOError, OSError):
            os.close(fd)
            self.fail('another virt_backup run is backing up this guest into %s right now: wait for '
                      'it to end (nothing was changed).' % self.gdir)
        self._lock_fd = fd

    def unlock(self):
        if getattr(self, '_lock_fd', None) is not None:
            os.close(self._lock_fd)  # closing the descriptor releases the flock
            self._lock_fd = None

    # -- recovery of an interrupted run ---------------------------------------------------
    def our_job_running(self, dom):
        try:
            if dom.jobInfo()[0] == C.VIR_DOMAIN_JOB_NONE:
                return False
            xml = dom.backupGetXMLDesc(0)
        except LIBVIRT_ERROR:
            return False
        root = lxml_util.parse(xml)
        for target in root.iter('target'):
            f = target.get('file') or ''
            if f.startswith(self.gdir + os.sep):
                return True
        return False

    def read_inflight(self):
        """The record of a backup this directory's last run began and did not finish, or None."""
        try:
            with open(os.path.join(self.gdir, INFLIGHT)) as f:
                data = json.load(f)
        except (IOError, OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def write_inflight(self, dom, chain, pname, cp_name):
        repo.atomic_write(os.path.join(self.gdir, INFLIGHT), json.dumps(
            {'uuid': dom.UUIDString(), 'domain_id': dom.ID(), 'chain': chain, 'point': pname,
             'checkpoint': cp_name, 'started': time.time()}, sort_keys=True) + '\n')

    def clear_inflight(self):
        path = os.path.join(self.gdir, INFLIGHT)
        if os.path.exists(path):
            os.unlink(path)

    def stale_job(self, dom, inflight):
        """A backup job libvirt holds on this guest without its data: libvirt 9.0 restores the
        async backup job from its status file when it restarts after a kill, even when QEMU's
        job ended meanwhile; virDomainAbortJob answers 0 and leaves it, it outlives a libvirtd
        restart and the guest's shutdown; only a libvirtd restart while the guest is off ends it
        (measured). Returns None, or (ours, text)."""
        if not dom.isActive():
            return None
        try:
            dom.jobInfo()
            return None
        except LIBVIRT_ERROR as exc:
            if exc.get_error_code() != C.VIR_ERR_INTERNAL_ERROR:
                return None
            what = str(exc)
        try:
            dom.backupGetXMLDesc(0)
            return None  # a backup job with its data: our_job_running() decides about it
        except LIBVIRT_ERROR as exc:
            if exc.get_error_code() != C.VIR_ERR_NO_DOMAIN_BACKUP:
                return None
        # ours when our record names this very QEMU process (same UUID, same domain ID)
        ours = bool(inflight and inflight.get('uuid') == dom.UUIDString()
                    and inflight.get('domain_id') == dom.ID())
        return ours, what

    def unbreak(self, dom, chains):
        """A chain marked broken only because a failed backup's checkpoint could not be deleted
        continues once that checkpoint is gone and the last point's checkpoint is still there
        (libvirt keeps every checkpoint's bitmap recording, so the last one saw every write)."""
        if not chains or chains[-1][1] is None:
            return []
        cid, manifest = chains[-1]
        failed_cp = manifest.get('broken_checkpoint')
        last = plan.last_point(manifest)
        if not manifest.get('broken') or not failed_cp or not last or not last.get('checkpoint'):
            return []
        try:
            names = [c.getName() for c in dom.listAllCheckpoints(0)]
        except LIBVIRT_ERROR:
            return []
        if failed_cp in names or last['checkpoint'] not in names:
            return []
        manifest['broken'] = None
        manifest.pop('broken_checkpoint', None)
        if not self.check_mode:
            repo.write_manifest(os.path.join(self.gdir, cid), manifest)
        return ['chain %s continues: the failed backup\'s checkpoint %s is gone and the last point\'s '
                'checkpoint %s is intact' % (cid, failed_cp, last['checkpoint'])]

    def recover(self, dom, keep_checkpoint, chains=None):
        """Clean what an interrupted run left; returns what was (or would be) cleaned."""
        done = []
        inflight = self.read_inflight()
        if dom.isActive() and self.our_job_running(dom):
            done.append('abort the backup job an earlier run left running')
            if not self.check_mode:
                try:
                    dom.abortJob()
                except LIBVIRT_ERROR:
                    pass
                self.wait_no_job(dom, 60)
        marker = os.path.join(self.gdir, PAUSED_MARKER)
        if os.path.exists(marker):
            with open(marker) as f:
                dom_id = f.read().strip()
            if dom.isActive() and str(dom.ID()) == dom_id and dom.state()[0] == C.VIR_DOMAIN_PAUSED:
                done.append('stop the guest an earlier run started paused for its backup')
                if not self.check_mode:
                    dom.destroy()
            if not self.check_mode:
                os.unlink(marker)
        for path in repo.leftovers(self.gdir):
            done.append('remove %s (left by an interrupted backup)' % path)
            if not self.check_mode:
                repo.remove(path, self.gdir)
        done.extend(self.drop_checkpoints(dom, keep_checkpoint, 'not owned by a committed backup'))
        done.extend(self.unbreak(dom, chains))
        stale = self.stale_job(dom, inflight)
        if stale and stale[0]:
            # the only API there is (libvirt 9.0 answers 0 and keeps the job: measured); a later
            # libvirt may end it
            if not self.check_mode:
                try:
                    dom.abortJob()
                except LIBVIRT_ERROR:
                    pass
                stale = self.stale_job(dom, inflight)
        if stale is None and inflight is not None:
            done.append('forget the record of the interrupted %s backup %s/%s' % (
                self.name, inflight.get('chain'), inflight.get('point')))
            if not self.check_mode:
                self.clear_inflight()
        for what in done:
            self.act(what)
        self.out['recovered'] = done
        if done:
            self.warn('%s: recovered from an interrupted backup: %s.' % (self.name, '; '.join(done)))
        if stale is not None:
            ours, what = stale
            kept = ' '.join(['Cleaned up first: %s.' % '; '.join(done) if done else '',
                             'The committed backups are unchanged.']).strip()
            if ours:
                self.fail('libvirt still holds the backup job that an interrupted virt_backup run '
                          'began (%s/%s, checkpoint %s) and has lost its data ("%s"): libvirt 9.0 '
                          'restores it after libvirtd was killed during the backup when QEMU\'s '
                          'job ended meanwhile, and neither virsh domjobabort, nor a libvirtd '
                          'restart while the guest runs, nor the guest\'s shutdown ends it (the '
                          'guest could not even start again). Shut the guest down (virsh shutdown '
                          '%s), restart libvirtd while it is off (service libvirtd restart: running '
                          'guests keep running), start it (virsh start %s), then run the backup '
                          'again: its chain continues. %s' % (
                              inflight.get('chain'), inflight.get('point'), inflight.get('checkpoint'),
                              what, self.name, self.name, kept))
            self.fail('libvirt holds a backup job on this guest that kvmops did not start (or cannot '
                      'tell as its own: "%s"); it was left alone. Find who started it (virsh '
                      'domjobinfo %s), end it (virsh domjobabort %s, or stop and start the guest), '
                      'then run the backup again. %s' % (what, self.name, self.name, kept))
        return done

    def drop_checkpoints(self, dom, keep, why):
        """Delete kvmops checkpoints other than keep, newest first (libvirt merges each one's
        bitmap into its parent)."""
        done = []
        try:
            cps = dom.listAllCheckpoints(0)
        except LIBVIRT_ERROR:
            return done
        cps = [c for c in cps if plan.is_our_checkpoint(c.getName()) and c.getName() != keep]
        for cp in sorted(cps, key=lambda c: c.getName(), reverse=True):
            done.append('delete checkpoint %s (%s)' % (cp.getName(), why))
            if not self.check_mode:
                self.delete_checkpoint(dom, cp.getName())
        return done

    def delete_checkpoint(self, dom, name):
        try:
            dom.checkpointLookupByName(name, 0).delete(0)
            return True
        except LIBVIRT_ERROR as exc:
            if getattr(exc, 'get_error_code', lambda: None)() == C.VIR_ERR_NO_DOMAIN_CHECKPOINT:
                return True
            try:  # e.g. the guest is shut off: drop the metadata, the bitmap stays harmlessly
                dom.checkpointLookupByName(name, 0).delete(C.VIR_DOMAIN_CHECKPOINT_DELETE_METADATA_ONLY)
                return True
            except LIBVIRT_ERROR:
                return False

    def wait_no_job(self, dom, timeout):
        deadline = time.time() + timeout if timeout else None
        while dom.jobInfo()[0] != C.VIR_DOMAIN_JOB_NONE:
            if deadline and time.time() > deadline:
                return False
            time.sleep(POLL)
        return True

    # -- the run ---------------------------------------------------------------------------
    def run(self):
        started = time.time()
        try:
            dom = self.conn.lookupByName(self.name)
        except LIBVIRT_ERROR:
            self.fail('there is no guest of that name on this hypervisor: check the name (virsh list --all).')
        active = bool(dom.isActive())
        root = lxml_util.parse(dom.XMLDesc(0 if active else C.VIR_DOMAIN_XML_INACTIVE))
        all_disks = domain_disks.disks(root)
        disks, skipped = plan.select_disks(all_disks)
        if not disks:
            self.fail('it has no disk a backup can take (%s).' % '; '.join(
                '%s: %s' % (s['target'], s['reason']) for s in skipped) or 'no disks')
        all_targets = [d['target'] for d in all_disks if d['target']]
        self.out.update(disks=[d['target'] for d in disks], skipped_disks=skipped)

        chains = repo.chains(self.gdir)
        current_id, manifest = chains[-1] if chains else (None, None)
        keep_cp = plan.last_point(manifest)['checkpoint'] if plan.last_point(manifest) else None
        if os.path.isdir(self.gdir):
            if not self.check_mode:
                self.lock()
            self.out['recovered'] = self.recover(dom, keep_cp, chains)
        checkpoints = [c.getName() for c in dom.listAllCheckpoints(0)]
        uuid = dom.UUIDString()
        problem = plan.chain_problem(manifest, uuid, self.host, disks, checkpoints)
        raw = plan.raw_disks(disks)
        try:
            level, reason = plan.choose_level(self.spec['level'], manifest, problem, raw,
                                              self.spec['chain_length'])
        except KvmopsError as exc:
            self.fail(exc.msg)
        self.out.update(level=level, level_reason=reason, checkpoints=not raw)
        if not active and self.spec['shut_off'] == 'skip':
            self.out.update(skipped=True, skip_reason='the guest is shut off and shut_off=skip')
            return self.out

        # estimate: a full copies the allocated data; an incremental what the checkpoint says
        estimate = 0
        sizes = {}
        if level == 'inc' and active:
            try:
                cp = dom.checkpointLookupByName(keep_cp, 0)
                sizes = plan.checkpoint_sizes(cp.getXMLDesc(C.VIR_DOMAIN_CHECKPOINT_XML_SIZE))
            except LIBVIRT_ERROR:
                sizes = {}
        capacity = {}
        for d in disks:
            info = dom.blockInfo(d['target'], 0)
            capacity[d['target']] = info[0]
            estimate += sizes.get(d['target'], info[1]) if level == 'inc' else info[1]
        self.out['estimated_size'] = estimate
        chain = current_id if level == 'inc' else plan.chain_id(started, [c[0] for c in chains])
        index = len(manifest['points']) if level == 'inc' else 0
        self.out.update(chain=chain, point=index)
        self.act('%s backup of %s (%s) into %s' % (level, ', '.join(self.out['disks']), reason,
                                                   os.path.join(self.gdir, chain, plan.point_dir(index, level))))
        if not active:
            self.act('start the shut-off guest paused for the backup, then stop it again')
        if self.check_mode:
            self.out.update(frozen=None, size=None)
            return self.out

        repo.ensure_guest_dir(self.spec['repository'], self.name)
        os.chmod(self.gdir, 0o711)  # QEMU (its own user) writes the targets: traverse only
        self.lock()
        free = repo.free_bytes(self.gdir)
        if estimate > free:
            self.warn('%s: the backup may need about %d bytes and %s has %d free.' % (
                self.name, estimate, self.gdir, free))
        result = self.take(dom, root, disks, all_targets, level, chain, index, manifest,
                           capacity, uuid, active, started)
        self.out.update(result)
        self.out['duration'] = round(time.time() - started, 2)
        return self.out

    def take(self, dom, root, disks, all_targets, level, chain, index, manifest, capacity, uuid,
             active, started):
        new_chain = level == 'full'
        chain_final = os.path.join(self.gdir, chain)
        chain_work = chain_final + plan.PARTIAL if new_chain else chain_final
        pname = plan.point_dir(index, level)
        pwork = os.path.join(chain_work, pname if new_chain else pname + plan.PARTIAL)
        with_checkpoint = not plan.raw_disks(disks)
        cp_name = plan.checkpoint_name(chain, index) if with_checkpoint else None
        prev = plan.last_point(manifest) if not new_chain else None
        state = {'cp_created': False, 'started_paused': False}
        try:
            if new_chain:
                os.mkdir(chain_work, 0o711)
            os.mkdir(pwork, 0o711)
            targets = {}
            for d in disks:
                target = os.path.join(pwork, plan.disk_file(d['target']))
                backing = None
                if prev is not None:
                    backing = os.path.join('..', prev['dir'], prev['disks'][d['target']]['file'])
                repo.create_target(target, capacity[d['target']], backing)
                targets[d['target']] = target
            if not active:
                dom.createWithFlags(C.VIR_DOMAIN_START_PAUSED)
                state['started_paused'] = True
                repo.atomic_write(os.path.join(self.gdir, PAUSED_MARKER), '%d\n' % dom.ID())
            xml = plan.backup_xml(disks, all_targets, targets,
                                  incremental=prev['checkpoint'] if prev else None)
            cpxml = plan.checkpoint_xml(cp_name, disks, all_targets,
                                        'kvmops virt_backup %s %s' % (chain, pname)) if cp_name else None
            self.write_inflight(dom, chain, pname, cp_name)
            for attempt in range(BEGIN_ATTEMPTS):
                frozen, qreason = self.freeze(dom, active)
                try:
                    dom.backupBegin(xml, cpxml, C.VIR_DOMAIN_BACKUP_BEGIN_REUSE_EXTERNAL)
                    state['cp_created'] = bool(cp_name)
                    break
                except LIBVIRT_ERROR as exc:
                    # libvirt busy with the guest (another job, or reconnecting to its QEMU after
                    # a daemon restart: "cannot acquire state change lock"): thaw, wait, again
                    if exc.get_error_code() != C.VIR_ERR_OPERATION_TIMEOUT or attempt == BEGIN_ATTEMPTS - 1:
                        raise
                    self.warn('%s: libvirt was busy with the guest (%s); trying again.' % (self.name, exc))
                finally:
                    if frozen or self.maybe_frozen:
                        self.thaw(dom)
                time.sleep(BEGIN_RETRY_WAIT)
            self.wait_job(dom)
            files = {}
            for d in disks:
                path = targets[d['target']]
                repo.check_image(path)
                os.chmod(path, 0o600)  # the guest's data: root only (libvirt gave it back to root)
                files[d['target']] = {'file': plan.disk_file(d['target']),
                                      'size': os.path.getsize(path),
                                      'sha256': repo.sha256_file(path),
                                      'virtual_size': capacity[d['target']]}
            extra = self.save_config(dom, pwork)
            finished = time.time()
            point = plan.point_entry(index, level, cp_name, started, finished, frozen, files, extra)
            if new_chain:
                manifest = plan.new_manifest(self.name, uuid, self.host, chain, disks, started)
                if not with_checkpoint:
                    manifest['checkpoints'] = False
                manifest['points'].append(point)
                repo.write_manifest(chain_work, manifest)
                os.rename(chain_work, chain_final)
            else:
                final = os.path.join(chain_final, pname)
                os.rename(pwork, final)
                manifest['points'].append(point)
                repo.write_manifest(chain_final, manifest)
            repo.fsync_dir(self.gdir)
        except BaseException as exc:  # also KeyboardInterrupt / SystemExit: clean up, then re-raise
            kept = self.undo(dom, state, cp_name, chain_work if new_chain else pwork,
                             chain_final, manifest if not new_chain else None)
            if isinstance(exc, KvmopsError):
                self.fail('the %s backup failed: %s %s' % (level, exc.msg, kept))
            if isinstance(exc, (LIBVIRT_ERROR, OSError)):
                hint = ''
                if 'Could not open' in str(exc) and 'No such file or directory' in str(exc):
                    hint = (' QEMU does not see the repository: it runs in the mount namespace libvirt '
                            'made when the guest started, and a file system mounted later is not '
                            'propagated into it where / is not a shared mount. Mount the repository '
                            'before the guests start (or as a shared mount), or restart the guest.')
                self.fail('the %s backup failed: %s.%s %s' % (level, exc, hint, kept))
            raise
        try:  # committed: the record of the job is not needed any more (outside the undo above,
            self.clear_inflight()  # which must never touch a committed point's checkpoint)
        except OSError as exc:
            self.warn('%s: could not remove %s (the next run does): %s' % (self.name, INFLIGHT, exc))
        if state['started_paused']:
            self.stop_paused(dom)
        result = {'frozen': frozen, 'quiesce_reason': qreason, 'checkpoint': cp_name,
                  'started_paused': state['started_paused'],
                  'point_dir': os.path.join(chain_final, pname), 'files': files,
                  'size': plan.point_size(point), 'chain_size': repo.dir_size(chain_final)}
        # only the newest point's checkpoint is needed for the next incremental
        for what in self.drop_checkpoints(dom, cp_name, 'superseded by %s' % (cp_name or 'a full backup')):
            self.act(what)
        result['removed_chains'] = self.apply_retention()
        return result

    def undo(self, dom, state, cp_name, work, chain_final, manifest):
        """After a failure: no job, no checkpoint of ours, no partial files. Returns a sentence
        saying what is kept."""
        notes = []
        job_gone = False
        try:
            job_gone = dom.jobInfo()[0] == C.VIR_DOMAIN_JOB_NONE
            if not job_gone and self.our_job_running(dom):
                dom.abortJob()
                job_gone = self.wait_no_job(dom, 60)
        except LIBVIRT_ERROR:
            pass
        if cp_name:
            try:
                exists = cp_name in [c.getName() for c in dom.listAllCheckpoints(0)]
                if exists and not self.delete_checkpoint(dom, cp_name):
                    raise KvmopsError('delete failed')
            except (LIBVIRT_ERROR, KvmopsError):
                notes.append('its checkpoint %s could not be deleted now (the next run does)' % cp_name)
                if manifest is not None:
                    manifest['broken'] = 'checkpoint %s of a failed backup could not be deleted' % cp_name
                    manifest['broken_checkpoint'] = cp_name
                    try:
                        repo.write_manifest(chain_final, manifest)
                    except OSError:
                        pass
        if state.get('started_paused'):
            self.stop_paused(dom)
        try:
            if os.path.lexists(work):
                repo.remove(work, self.gdir)
        except (OSError, KvmopsError):
            notes.append('its partial files in %s could not be removed (the next run does)' % work)
        if job_gone and not notes:  # nothing left that the next run must recognise as ours
            try:
                self.clear_inflight()
            except OSError:
                pass
        kept = 'The earlier backups are unchanged.'
        return kept + (' Note: %s.' % '; '.join(notes) if notes else ' Its partial files were removed.')

    def stop_paused(self, dom):
        try:
            if dom.isActive() and dom.state()[0] == C.VIR_DOMAIN_PAUSED:
                dom.destroy()
        except LIBVIRT_ERROR:
            return
        marker = os.path.join(self.gdir, PAUSED_MARKER)
        if os.path.exists(marker):
            os.unlink(marker)

    def freeze(self, dom, active):
        mode = self.spec['quiesce']
        self.maybe_frozen = False
        if mode == 'skip':
            return False, 'quiesce=skip'
        if not active:
            return False, 'the guest was shut off: its disks are consistent as they are'
        live = lxml_util.parse(dom.XMLDesc(0))
        channel = domain_disks.agent_channel(live)
        if channel is None or channel.get('state') == 'disconnected':
            why = ('the guest has no guest-agent channel' if channel is None
                   else 'the guest agent is not connected')
            if mode == 'required':
                raise KvmopsError('quiesce=required, but %s: run qemu-guest-agent in the guest.' % why)
            return False, '%s: the backup is crash-consistent, as if the guest had lost power' % why
        try:
            _agent.freeze(dom)
            return True, 'the guest agent froze the file systems while the backup began'
        except _agent.AgentTimeout as exc:
            # The freeze may still happen when the guest answers: thawed after the backup began
            # (or now, when quiesce=required stops here).
            self.maybe_frozen = True
            if mode == 'required':
                self.thaw(dom)
                raise KvmopsError('quiesce=required, but %s to the freeze (a guest agent that never '
                                  'answers holds libvirt for ever; kvmops stops waiting). Check '
                                  'qemu-guest-agent in the guest, or use quiesce: auto.' % exc)
            self.warn('%s: the backup is not quiesced: %s to the freeze. If the guest froze its '
                      'file systems after all, run `virsh domfsthaw %s`.' % (self.name, exc, self.name))
            return False, '%s to the freeze: the backup is crash-consistent' % exc
        except LIBVIRT_ERROR as exc:
            if mode == 'required':
                raise KvmopsError('quiesce=required, but the guest agent did not freeze the guest: %s' % exc)
            self.warn('%s: the backup is not quiesced (the guest agent did not freeze: %s).' % (self.name, exc))
            return False, 'the guest agent did not freeze (%s): the backup is crash-consistent' % exc

    def thaw(self, dom):
        if _agent.thaw(dom):
            return
        self.warn('%s: the guest agent did not thaw the file systems: run `virsh domfsthaw %s`.'
                  % (self.name, self.name))

    def wait_job(self, dom):
        timeout = self.spec['timeout']
        deadline = time.time() + timeout if timeout else None
        while True:
            job = dom.jobInfo()
            if job[0] == C.VIR_DOMAIN_JOB_NONE:
                break
            if deadline and time.time() > deadline:
                dom.abortJob()
                raise KvmopsError('the backup job did not finish within timeout=%ss and was aborted' % timeout)
            time.sleep(POLL)
        stats = dom.jobStats(C.VIR_DOMAIN_JOB_STATS_COMPLETED)
        if stats.get('operation') not in (None, C.VIR_DOMAIN_JOB_OPERATION_BACKUP):
            raise KvmopsError('libvirt reports no completed backup job (last job: %r)' % stats)
        if stats.get('type') != C.VIR_DOMAIN_JOB_COMPLETED or not stats.get('success', True) \
                or stats.get('errmsg'):
            raise KvmopsError('QEMU ended the backup job with an error: %s. A full target file system '
                              'is the usual cause: free space in the repository or point it '
                              'elsewhere' % (stats.get('errmsg') or 'no message'))

    def save_config(self, dom, pwork):
        """The domain XML (inactive definition, without secrets) and the NVRAM beside the disks."""
        files = {}
        xml = dom.XMLDesc(C.VIR_DOMAIN_XML_INACTIVE)
        path = os.path.join(pwork, 'domain.xml')
        repo.atomic_write(path, xml)
        files['domain.xml'] = {'size': os.path.getsize(path), 'sha256': repo.sha256_file(path)}
        nvram = domain_disks.nvram_path(lxml_util.parse(xml))
        if nvram and os.path.isfile(nvram):
            dest = os.path.join(pwork, 'nvram.fd')
            shutil.copyfile(nvram, dest)
            files['nvram.fd'] = {'size': os.path.getsize(dest), 'sha256': repo.sha256_file(dest),
                                 'source': nvram}
        return files

    def apply_retention(self):
        chains = [(cid, (plan.last_point(m) or {}).get('finished'))
                  for cid, m in repo.chains(self.gdir) if m is not None]
        victims = plan.retention(chains, self.spec['keep_chains'], self.spec['keep_days'], time.time())
        for cid in victims:
            self.act('remove chain %s (retention: keep_chains=%s, keep_days=%s)' % (
                cid, self.spec['keep_chains'], self.spec['keep_days']))
            repo.remove(os.path.join(self.gdir, cid), self.gdir)
        return victims


def _human(n):
    n = float(n or 0)
    for unit in ('B', 'KiB', 'MiB', 'GiB'):
        if n < 1024 or unit == 'GiB':
            return '%.1f %s' % (n, unit) if unit != 'B' else '%d B' % n
        n /= 1024
    return '%.1f TiB' % n


def summary_line(r):
    """One line per guest for a play's summary: what, how big, how long."""
    if r.get('failed'):
        return '%s: FAILED: %s' % (r['domain'], r.get('msg'))
    if r.get('skipped'):
        return '%s: skipped (%s)' % (r['domain'], r.get('skip_reason'))
    if r.get('size') is None:
        return '%s: would take a %s backup (about %s)' % (
            r['domain'], r.get('level'), _human(r.get('estimated_size')))
    return '%s: %s backup, %s in %.1f s (chain %s point %s%s)' % (
        r['domain'], r.get('level'), _human(r.get('size')), r.get('duration') or 0, r.get('chain'),
        r.get('point'), ', quiesced' if r.get('frozen') else '')


class BackupManager(ManagerBase):
    """Back up every guest of the spec, `parallel` at a time over the one connection."""

    def __init__(self, conn, spec, check_mode=False, diff_mode=False, warn=None):
        super(BackupManager, self).__init__(check_mode=check_mode, diff_mode=diff_mode, warn=warn)
        self.conn = conn
        self.spec = spec
        self._lock = threading.Lock()

    def _warn(self, msg):
        with self._lock:
            self.warn(msg)

    def one(self, name, host):
        job = GuestBackup(self.conn, self.spec, name, self.check_mode, self._warn, host)
        try:
            out = job.run()
        except KvmopsError as exc:
            out = dict(job.out, failed=True, msg=exc.msg)
        except LIBVIRT_ERROR as exc:
            out = dict(job.out, failed=True, msg='%s: libvirt failed: %s' % (name, exc))
        finally:
            job.unlock()
        with self._lock:
            for a in job.actions:
                self.act(a)
        return out

    def select(self):
        """The guests to back up: the names given, else every persistent guest (with the tag)."""
        if self.spec['domains']:
            return list(self.spec['domains'])
        names = []
        for dom in self.conn.listAllDomains(C.VIR_CONNECT_LIST_DOMAINS_PERSISTENT):
            if self.spec['tag'] and self.spec['tag'] not in domain_tags(dom):
                continue
            names.append(dom.name())
        return sorted(names)

    def run(self):
        host = self.conn.getHostname()
        names = self.select()
        if not names:
            return self.result(backups=[], summary={'guests': 0, 'failed': [], 'full': [], 'inc': [],
                                                    'skipped': [], 'size': 0, 'lines': []})
        results = [None] * len(names)
        todo = list(enumerate(names))
        lock = threading.Lock()

        def worker():
            while True:
                with lock:
                    if not todo:
                        return
                    i, name = todo.pop(0)
                results[i] = self.one(name, host)
        threads = [threading.Thread(target=worker) for dummy in range(min(self.spec['parallel'], len(names)))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        summary = {
            'guests': len(results),
            'failed': [r['domain'] for r in results if r.get('failed')],
            'full': [r['domain'] for r in results if r.get('level') == 'full' and not r.get('failed')
                     and not r.get('skipped')],
            'inc': [r['domain'] for r in results if r.get('level') == 'inc' and not r.get('failed')
                    and not r.get('skipped')],
            'skipped': [r['domain'] for r in results if r.get('skipped')],
            'size': sum(r.get('size') or 0 for r in results),
            'lines': [summary_line(r) for r in results],
        }
        self.changed = any(r.get('changed') for r in results)
        out = self.result(backups=results, summary=summary)
        if len(names) == 1 and self.spec['domains']:
            out.update({k: v for k, v in results[0].items() if k not in ('changed', 'failed', 'msg')})
        if summary['failed']:
            msgs = [r['msg'] for r in results if r.get('failed')]
            raise KvmopsError('; '.join(msgs), **{k: v for k, v in out.items() if k != 'warnings'})
        return out
