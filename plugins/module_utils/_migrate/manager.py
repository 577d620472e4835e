# -*- coding: utf-8 -*-
# Copyright: kvmops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""virt_migrate's manager: find the guest (on the source, or already on a target), read what
the targets offer, check them (plan.check_target), pick one, and move the guest there: live
through libvirt's peer-to-peer migration (virDomainMigrateToURI3, persistent on the target,
undefined on the source), or offline for a shut-off guest. With storage: copy the target's
images are made first through the target's storage API (same size and format) and libvirt
copies the disks (NBD); an offline copy streams the images through the two storage APIs.

Private to the collection: no API promise. Independent of AnsibleModule: it gets the source
connection, a function that opens a target connection, and one that runs a command on the
source host (to read the source daemon's log when libvirt says only "End of file").
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import threading
import time

from ansible_collections.kvmops.hypervisor.plugins.module_utils._common.errors import KvmopsError
from ansible_collections.kvmops.hypervisor.plugins.module_utils._common.manager import ManagerBase
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt import constants as C
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt import domain_devices
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt import qemu_conf
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt import xml as lxml_util
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt.connection import libvirt  # None without libvirt-python
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt.failure import connection_alive
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt.locality import connection_is_local
from ansible_collections.kvmops.hypervisor.plugins.module_utils._migrate import plan

VIR_DOMAIN_JOB_STATS_COMPLETED = 1
VIR_CONNECT_LIST_NODE_DEVICES_CAP_NET = 1 << 4
VIR_CPU_COMPARE = {-1: 'error: libvirt could not compare', 0: 'incompatible', 1: 'identical', 2: 'superset'}
STREAM_CHUNK = 1024 * 1024
LOG_LINES = 6
# Seconds the failure analysis waits for the target's daemon to answer one call. A paused or
# unreachable target never answers (the module's own connection has no keepalive: no event
# loop), so the probe runs in a thread and gives up.
ANSWER_TIMEOUT = 15
QEMU_CONF = '/etc/libvirt/qemu.conf'


def _text(exc):
    return str(exc).strip()


class MigrateManager(ManagerBase):
    def __init__(self, conn, spec, open_target, run_command=None, check_mode=False, diff_mode=False,
                 warn=None, poll=0.2):
        super(MigrateManager, self).__init__(check_mode=check_mode, diff_mode=diff_mode, warn=warn)
        self.conn = conn
        self.spec = spec
        self.open_target = open_target
        self.run_command = run_command
        self.poll = poll
        self.targets = {}          # uri -> connection (or None with the reason in self.unreachable)
        self.unreachable = {}
        self.created_volumes = []
        self.source_name = conn.getHostname() if conn is not None else 'source'

    # -- helpers -----------------------------------------------------------------------------
    def _fields(self, **extra):
        fields = dict(name=self.spec['name'], changed=self.changed, actions=list(self.actions),
                      source=self.source_name)
        fields.update(extra)
        return fields

    def _fail(self, msg, **extra):
        raise KvmopsError(msg, **self._fields(**extra))

    def close(self):
        for conn in self.targets.values():
            if conn is not None:
                try:
                    conn.close()
                except Exception:  # pylint: disable=broad-except  # a dead daemon cannot be closed
                    pass

    def _target(self, uri):
        if uri not in self.targets:
            try:
                self.targets[uri] = self.open_target(uri)
            except Exception as exc:  # pylint: disable=broad-except  # reported per target
                self.targets[uri] = None
                self.unreachable[uri] = _text(exc)
        return self.targets[uri]

    @staticmethod
    def _lookup(conn, name=None, uuid=None):
        try:
            if uuid is not None:
                return conn.lookupByUUIDString(uuid)
            return conn.lookupByName(name)
        except libvirt.libvirtError:
            return None

    # -- facts -----------------------------------------------------------------------------
    def host_facts(self, conn, uri, guest):
        facts = {'uri': uri, 'name': plan.host_of(uri) if uri != self.spec['uri'] else self.source_name}
        facts['networks'] = {}
        for net in conn.listAllNetworks(0):
            facts['networks'][net.name()] = bool(net.isActive())
        facts['bridges'] = self._net_devices(conn)
        try:
            mem = conn.getMemoryStats(-1, 0)
            facts['available_memory_bytes'] = (mem.get('free', 0) + mem.get('buffers', 0) + mem.get('cached', 0)) * 1024
        except libvirt.libvirtError:
            facts['available_memory_bytes'] = conn.getFreeMemory()
        caps = lxml_util.parse(conn.getCapabilities())
        cpu = caps.find('host/cpu')
        facts['host_cpu'] = None if cpu is None else {
            'vendor': cpu.findtext('vendor'), 'model': cpu.findtext('model'),
            'features': sorted(f.get('name') for f in cpu.findall('feature'))}
        types = set()
        for g in caps.findall('guest'):
            arch = g.find('arch')
            if arch is not None and arch.get('name') == guest['arch']:
                types.update(d.get('type') for d in arch.findall('domain'))
        facts['domain_types'] = sorted(t for t in types if t)
        facts['cpu_compare'] = None
        if guest['cpu']['xml'] and guest['cpu']['mode'] != 'host-passthrough':
            try:
                value = conn.compareHypervisorCPU(None, guest['arch'], guest['machine'],
                                                  guest['domain_type'], guest['cpu']['xml'], 0)
                facts['cpu_compare'] = VIR_CPU_COMPARE.get(value, 'error: %s' % value)
            except libvirt.libvirtError as exc:
                facts['cpu_compare'] = 'error: %s' % _text(exc)
        facts['pools'] = []
        wanted_dirs = set(os.path.dirname(d['path']) for d in guest['disks'] if d['path'])
        for pool in conn.listAllStoragePools(0):
            root = lxml_util.parse(pool.XMLDesc(0))
            path = root.findtext('target/path')
            active = bool(pool.isActive())
            if active and path and os.path.normpath(path) in set(os.path.normpath(p) for p in wanted_dirs):
                try:
                    pool.refresh(0)   # files made outside libvirt (a shared image) become visible
                except libvirt.libvirtError:
                    pass
            facts['pools'].append({'name': pool.name(), 'path': path, 'active': active})
        facts['volumes'] = {}
        for disk in guest['disks']:
            if not disk['path']:
                continue
            try:
                vol = conn.storageVolLookupByPath(disk['path'])
            except libvirt.libvirtError:
                continue
            info = vol.info()
            fmt = lxml_util.parse(vol.XMLDesc(0)).find('target/format')
            facts['volumes'][disk['path']] = {'capacity': info[1],
                                              'format': fmt.get('type') if fmt is not None else None}
        facts['guest_tags'] = []
        running = 0
        for dom in conn.listAllDomains(C.VIR_CONNECT_LIST_DOMAINS_ACTIVE):
            if dom.UUIDString() == guest['uuid']:
                continue
            running += 1
            try:
                facts['guest_tags'].append(domain_devices.tags(lxml_util.parse(dom.XMLDesc(0))))
            except libvirt.libvirtError:
                facts['guest_tags'].append([])
        facts['running_guests'] = running
        return facts

    @staticmethod
    def _net_devices(conn):
        """Names of the host's network devices (bridges included), or None if libvirt cannot list them."""
        names = set()
        try:
            for dev in conn.listAllDevices(VIR_CONNECT_LIST_NODE_DEVICES_CAP_NET):
                root = lxml_util.parse(dev.XMLDesc(0))
                for cap in root.findall('capability'):
                    if cap.get('type') == 'net' and cap.findtext('interface'):
                        names.add(cap.findtext('interface'))
        except libvirt.libvirtError:
            names = None
        try:
            for iface in conn.listAllInterfaces(0):
                names = names if names is not None else set()
                names.add(iface.name())
        except libvirt.libvirtError:
            pass
        return names

    # -- run -----------------------------------------------------------------------------------
    def run(self):
        try:
            return self._run()
        finally:
            self.close()

    def _find_elsewhere(self, uuid=None):
        """(uri, dom) of the guest on a target (by UUID when known, else by name)."""
        for uri in self.spec['dests']:
            conn = self._target(uri)
            if conn is None:
                continue
            dom = self._lookup(conn, self.spec['name'] if uuid is None else None, uuid)
            if dom is not None:
                return uri, conn, dom
        return None, None, None

    def _run(self):
        name = self.spec['name']
        src = self._lookup(self.conn, name)
        if src is None:
            uri, conn, dom = self._find_elsewhere()
            if dom is not None:
                state = C.DOMAIN_STATE_NAMES.get(dom.state()[0], 'unknown')
                return self.result(name=name, dest=uri, dest_host=plan.host_of(uri), moved=False,
                                   mode='none', state=state, uuid=dom.UUIDString(), source=self.source_name,
                                   msg='%s is already on %s (%s) and not on %s: nothing to do.'
                                   % (name, plan.host_of(uri), state, self.source_name))
            unreachable = ''.join('; %s could not be asked: %s' % (u, r) for u, r in self.unreachable.items())
            self._fail('There is no guest %s on the source %s nor on %s%s. Check the name (virsh list --all '
                       'on each host), or the uri of the host it runs on.'
                       % (name, self.source_name, ', '.join(plan.host_of(u) for u in self.spec['dests']), unreachable))
        live = bool(src.isActive())
        guest = domain_devices.facts(src.XMLDesc(0))
        guest['live'] = live
        # A guest already on a target: a former move that stopped between its steps.
        uri, conn, dom = self._find_elsewhere(guest['uuid'])
        if dom is not None:
            if live and dom.isActive():
                self._fail('%s runs on %s and on %s (same UUID %s): a migration may be under way '
                           '(virsh domjobinfo %s on %s). Wait for it or abort it, then run again.'
                           % (name, self.source_name, plan.host_of(uri), guest['uuid'], name, self.source_name))
            if not live and (dom.isActive() or dom.isPersistent()):
                self.act('undefine the leftover shut-off definition of %s on %s (it is on %s)'
                         % (name, self.source_name, plan.host_of(uri)))
                if not self.check_mode:
                    src.undefine()
                return self.result(name=name, dest=uri, dest_host=plan.host_of(uri), moved=False, mode='none',
                                   uuid=guest['uuid'], source=self.source_name)
        if self.spec['tls'] and live:
            self._check_tls_files()
        source = self.host_facts(self.conn, self.spec['uri'], guest)
        candidates = []
        verdicts = {}
        for uri in self.spec['dests']:
            conn = self._target(uri)
            if conn is None:
                verdicts[plan.host_of(uri)] = (['cannot connect to %s: %s' % (uri, self.unreachable[uri])], [])
                continue
            other = self._lookup(conn, name)
            facts = self.host_facts(conn, uri, guest)
            if other is not None and other.UUIDString() != guest['uuid']:
                verdicts[facts['name']] = (['%s already has another guest named %s (UUID %s)'
                                            % (facts['name'], name, other.UUIDString())], [])
                continue
            candidates.append(facts)
        target, more = plan.choose_target(self.spec, guest, source, candidates)
        verdicts.update(more)
        checks = [{'host': h, 'ok': not r, 'reasons': r, 'warnings': w} for h, (r, w) in sorted(verdicts.items())]
        if target is None:
            self._fail(plan.refusal_message(name, verdicts), checks=checks, moved=False, refused=True)
        for warning in verdicts[target['name']][1]:
            self.warn(warning)
        if self.spec['unsafe']:
            self.warn('unsafe: true - libvirt does not check that the disks of %s are on shared storage; '
                      'you said they are the same files on %s and %s' % (name, self.source_name, target['name']))
        fl = plan.flags(self.spec, live)
        params = plan.migrate_params(self.spec, guest, live)
        mode = 'live' if live else 'offline'
        self.diff = {'before': {'host': self.source_name, 'state': 'running' if live else 'shut off'},
                     'after': {'host': target['name'], 'state': 'running' if live else 'shut off'}}
        self.act('move %s %s from %s to %s (storage: %s; flags: %s)'
                 % (name, mode, self.source_name, target['name'], self.spec['storage'], ', '.join(plan.flag_names(fl))))
        base = dict(name=name, dest=target['uri'], dest_host=target['name'], mode=mode, uuid=guest['uuid'],
                    macs=[i['mac'] for i in guest['interfaces']], disks=[d['path'] for d in guest['disks'] if d['path']],
                    checks=checks, flags=plan.flag_names(fl), storage=self.spec['storage'], source=self.source_name)
        if self.check_mode:
            return self.result(moved=False, job={}, **base)
        dconn = self.targets[target['uri']]
        if self.spec['storage'] == 'copy':
            self._create_target_images(src, dconn, guest, target, copy_data=not live)
        started = time.time()
        log_offset = self._qemu_log_size(name)
        applied = self._migrate(src, dconn, target, fl, params, started, log_offset, guest)
        ddom = self._lookup(dconn, uuid=guest['uuid'])
        job = {}
        if ddom is not None and live:
            try:
                job = plan.job_stats(ddom.jobStats(VIR_DOMAIN_JOB_STATS_COMPLETED))
            except libvirt.libvirtError as exc:
                self.warn('the job statistics could not be read on %s: %s' % (target['name'], _text(exc)))
        state = None
        if ddom is not None:
            if applied == 'pause' and ddom.state()[0] == C.VIR_DOMAIN_PAUSED:
                ddom.resume()
                self.act('resume %s on %s (paused by the timeout action to let the migration converge)'
                         % (name, target['name']))
            state = C.DOMAIN_STATE_NAMES.get(ddom.state()[0], 'unknown')
        left = self._lookup(self.conn, uuid=guest['uuid'])
        if left is not None:
            self.warn('%s still has a definition of %s after the move (active: %s): undefine it by hand once '
                      'you checked the guest on %s' % (self.source_name, name, bool(left.isActive()), target['name']))
        return self.result(moved=True, job=job, state=state, timeout_action_applied=applied,
                           created_volumes=list(self.created_volumes), **base)

    def _check_tls_files(self):
        """tls: true - the source's QEMU needs its TLS client files: refuse before anything moves
        (check mode too) when they are missing. The target's files cannot be seen through libvirt;
        a move that fails on them gets the same fix in its message (_failed_move)."""
        if not connection_is_local(self.conn):
            self.warn('tls: true - the source (%s) is not the host this task runs on: its QEMU TLS files '
                      'are not checked before the move' % self.spec['uri'])
            return
        conf = {}
        try:
            with open(QEMU_CONF) as f:
                conf = qemu_conf.values(f.read())
        except (IOError, OSError, KvmopsError):
            pass   # unreadable or invalid: libvirt's defaults (the daemon would not run otherwise)
        directory = plan.tls_dir(conf)
        missing = [p for p in plan.tls_paths(directory, plan.TLS_CLIENT_FILES) if not os.path.exists(p)]
        if missing:
            self._fail(plan.tls_refusal(self.spec['name'], self.source_name, directory, missing),
                       moved=False, refused=True, missing_tls_files=missing)

    # -- storage: copy -----------------------------------------------------------------------
    def _create_target_images(self, src, dconn, guest, target, copy_data):
        for disk in plan.disks_to_copy(guest):
            path = disk['path']
            pool_facts = plan._pool_for(path, target['pools'])  # pylint: disable=protected-access
            pool = dconn.storagePoolLookupByName(pool_facts['name'])
            capacity = src.blockInfo(disk['target'], 0)[0]
            fmt = disk['format'] or 'raw'
            xml = ('<volume><name>%s</name><capacity unit="bytes">%d</capacity>'
                   '<target><format type="%s"/>%s</target></volume>'
                   % (_xml_escape(os.path.basename(path)), capacity, _xml_escape(fmt), self._qcow2_compat(path, fmt)))
            try:
                vol = pool.createXML(xml, 0)
            except libvirt.libvirtError as exc:
                self._cleanup_volumes()
                self._fail('Could not create the copy of disk %s (%s, %d bytes, %s) in pool %s on %s: %s. Nothing '
                           'was moved.' % (disk['target'], path, capacity, fmt, pool_facts['name'], target['name'], _text(exc)))
            self.created_volumes.append(path)
            self.act('create %s on %s (%d bytes, %s)' % (path, target['name'], capacity, fmt))
            if vol.path() != path:
                self._cleanup_volumes()
                self._fail('The copy of %s on %s came out as %s: the pool over that directory names files '
                           'differently; nothing was moved.' % (path, target['name'], vol.path()))
            self._created_vols = getattr(self, '_created_vols', []) + [vol]
            if copy_data:
                self._stream_copy(path, vol, target, dconn)

    def _qcow2_compat(self, path, fmt):
        """<compat> of the source image when it is a qcow2 in a pool (libvirt makes 0.10 otherwise)."""
        if fmt != 'qcow2':
            return ''
        try:
            root = lxml_util.parse(self.conn.storageVolLookupByPath(path).XMLDesc(0))
        except libvirt.libvirtError:
            return '<compat>1.1</compat>'
        compat = root.findtext('target/compat')
        return '<compat>%s</compat>' % _xml_escape(compat or '1.1')

    def _stream_copy(self, path, dvol, target, dconn):
        try:
            svol = self.conn.storageVolLookupByPath(path)
        except libvirt.libvirtError:
            self._cleanup_volumes()
            self._fail('The offline copy of %s needs it in a storage pool on %s (libvirt streams pool volumes): '
                       'define a pool over %s, or use storage: shared.' % (path, self.source_name, os.path.dirname(path)))
        sst = self.conn.newStream(0)
        dst = dconn.newStream(0)
        try:
            svol.download(sst, 0, 0, 0)
            dvol.upload(dst, 0, 0, 0)
            while True:
                data = sst.recv(STREAM_CHUNK)
                if not data:
                    break
                dst.send(data)
            sst.finish()
            dst.finish()
        except libvirt.libvirtError as exc:
            for stream in (sst, dst):
                try:
                    stream.abort()
                except libvirt.libvirtError:
                    pass
            self._cleanup_volumes()
            self._fail('Copying %s to %s failed: %s. Nothing was moved; the partial copy was removed.'
                       % (path, target['name'], _text(exc)))
        self.act('copy %s to %s' % (path, target['name']))

    def _cleanup_volumes(self):
        for vol in getattr(self, '_created_vols', []):
            try:
                vol.delete(0)
                self.act('remove the copy %s made by this run on the target' % vol.path())
            except libvirt.libvirtError:
                pass
        self._created_vols = []
        self.created_volumes = []

    # -- the move ------------------------------------------------------------------------------
    def _migrate(self, src, dconn, target, fl, params, started, log_offset, guest):
        """Run the migration, applying the timeout action; returns the action applied (or None)."""
        outcome = {}

        def worker():
            try:
                src.migrateToURI3(target['uri'], params, fl)
            except libvirt.libvirtError as exc:
                outcome['error'] = exc
            except Exception as exc:  # pylint: disable=broad-except  # reported below
                outcome['error'] = exc

        thread = threading.Thread(target=worker)
        thread.daemon = True
        thread.start()
        applied = None
        timeout = self.spec['timeout']
        while thread.is_alive():
            thread.join(self.poll)
            if timeout and applied is None and thread.is_alive() and time.time() - started > timeout:
                applied = self.spec['timeout_action']
                try:
                    if applied == 'abort':
                        src.abortJob()
                    elif applied == 'pause':
                        src.suspend()
                    else:
                        src.migrateStartPostCopy(0)
                    self.act('%s the migration after %ds (timeout)' % (
                        {'abort': 'abort', 'pause': 'pause the guest to finish', 'postcopy': 'switch to post-copy'}[applied],
                        timeout))
                except libvirt.libvirtError as exc:
                    self.warn('the timeout action %s failed: %s' % (applied, _text(exc)))
        error = outcome.get('error')
        if error is None:
            return applied
        self._failed_move(src, dconn, target, error, started, log_offset, guest, applied)
        return applied

    def _failed_move(self, src, dconn, target, error, started, log_offset, guest, applied):
        name = self.spec['name']
        message = _text(error)
        if plan.is_unsafe_refusal(getattr(error, 'get_error_code', lambda: None)(), message):
            self._cleanup_volumes()
            self.changed = False   # libvirt refused before it started anything
            self._fail(plan.unsafe_hint(message), moved=False, dest=target['uri'])
        causes = []
        dest_alive = _answers(dconn, ANSWER_TIMEOUT)
        if not dest_alive:
            # A call still blocked on it would block close() too: never touch it again.
            self.targets[target['uri']] = None
            causes.append('the libvirt daemon on %s went away during the move or does not answer within %ds '
                          '(stopped, killed, paused, or its host unreachable): check it (virsh -c %s version)'
                          % (target['name'], ANSWER_TIMEOUT, target['uri']))
        if self.spec['tls']:
            hint = plan.tls_failure_hint(message, target['name'])
            if hint:
                causes.append(hint)
        if applied == 'abort':
            causes.append('the migration did not finish within timeout (%ss) and was aborted; raise timeout, '
                          'set bandwidth higher, or use auto_converge / timeout_action: postcopy'
                          % self.spec['timeout'])
        log = self._source_log(started, log_offset)
        # Where the guest is now.
        here = self._lookup(self.conn, uuid=guest['uuid'])
        where = []
        if here is not None:
            where.append('%s on %s' % (C.DOMAIN_STATE_NAMES.get(here.state()[0], 'unknown'), self.source_name))
        there = None
        if dest_alive:
            there = self._lookup(dconn, uuid=guest['uuid'])
            if there is not None:
                where.append('%s on %s' % (C.DOMAIN_STATE_NAMES.get(there.state()[0], 'unknown'), target['name']))
        if there is None:
            self._cleanup_volumes()
            if here is not None:
                self.changed = False   # the guest is where it was; what this run made is gone
        msg = 'Moving %s from %s to %s failed: %s.' % (name, self.source_name, target['name'], message)
        if causes:
            msg += ' Cause: %s.' % '; '.join(causes)
        if log:
            msg += ' The source daemon logged: %s.' % ' | '.join(log)
        msg += ' The guest is now %s.' % (' and '.join(where) or 'on neither host (check both with virsh list --all)')
        msg += ' Fix the cause and run again: the run moves what is still on %s.' % self.source_name
        self._fail(msg, moved=False, dest=target['uri'], source_log=log,
                   cause=causes[0] if causes else ('see source_log' if log and plan.is_eof(message) else message))

    def _qemu_log_path(self, name):
        return '/var/log/libvirt/qemu/%s.log' % name

    def _qemu_log_size(self, name):
        if not connection_is_local(self.conn):
            return None  # that log is on the source host, not here (issue 26)
        try:
            return os.path.getsize(self._qemu_log_path(name))
        except OSError:
            return None

    def _source_log(self, started, log_offset):
        """The source daemon's errors since the move started (libvirt's "End of file while reading
        data" hides them), and what QEMU wrote to the guest's log meanwhile."""
        if not self.spec['source_log'] or not connection_is_local(self.conn):
            return []  # journal and QEMU log are the source host's: not readable from here
        lines = []
        if self.run_command is not None:
            rc, out, dummy = self.run_command(['journalctl', '--no-pager', '-o', 'cat', '-u', 'libvirtd', '-u',
                                               'virtqemud', '--since', '@%d' % int(started - 1)])
            if rc == 0:
                lines.extend(l.strip() for l in out.splitlines() if ' error : ' in l or 'error:' in l.lower())
        if log_offset is not None:
            try:
                with open(self._qemu_log_path(self.spec['name'])) as f:
                    f.seek(log_offset)
                    lines.extend('qemu: ' + l.strip() for l in f.read().splitlines()
                                 if l.strip() and ('error' in l.lower() or 'fail' in l.lower()))
            except (IOError, OSError):
                pass
        return lines[-LOG_LINES:]


def _answers(conn, timeout):
    """Whether the daemon behind conn still answers within timeout seconds (isAlive alone may
    not have noticed yet; a paused daemon never answers, so the call runs in a thread)."""
    if not connection_alive(conn):
        return False
    answer = {}

    def probe():
        try:
            conn.getLibVersion()
            answer['ok'] = True
        except Exception:  # pylint: disable=broad-except  # a dead connection raises
            answer['ok'] = False

    thread = threading.Thread(target=probe)
    thread.daemon = True
    thread.start()
    thread.join(timeout)
    return answer.get('ok', False)


def _xml_escape(text):
    return (text.replace('&', '&amp;').replace('<', '&lt;').replace('>', '&gt;')
            .replace('"', '&quot;'))
