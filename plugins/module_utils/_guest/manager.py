# -*- coding: utf-8 -*-
# Copyright: kvmops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One guest's manager, for virt_install_domain and each guest of virt_install_domains.

Private to the collection: no API promise. Independent of AnsibleModule: it gets the one
libvirt connection, the guest's spec (_guest/options.py turns the options into it), the
features the options enable (_guest/features/: install, cloud) and what it shares with the
other guests of its run (_guest/shared.py: locks, host facts).

run() reads top to bottom in a fixed step order; the features' hooks are called at their
step (_guest/features/__init__.py lists them):

  look up -> plan (no side effects in any mode) -> prepare (side effects: fetch base images
  and installers, write seed ISOs; check mode reports them) -> preflight (free space, what
  QEMU must reach; check mode too) -> final XML -> storage -> define -> power -> result
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import time

from ansible_collections.kvmops.hypervisor.plugins.module_utils._common.errors import KvmopsError
from ansible_collections.kvmops.hypervisor.plugins.module_utils._common.manager import ManagerBase
from ansible_collections.kvmops.hypervisor.plugins.module_utils._guest import builder as dxml
from ansible_collections.kvmops.hypervisor.plugins.module_utils._guest import drift as ddrift
from ansible_collections.kvmops.hypervisor.plugins.module_utils._guest import preflight as _preflight
from ansible_collections.kvmops.hypervisor.plugins.module_utils._guest import record as _record
from ansible_collections.kvmops.hypervisor.plugins.module_utils._guest import remote as _remote
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt import qemu_access as _access
from ansible_collections.kvmops.hypervisor.plugins.module_utils._guest import shared as _shared
from ansible_collections.kvmops.hypervisor.plugins.module_utils._guest import space as _space
from ansible_collections.kvmops.hypervisor.plugins.module_utils._guest import spec as dspec
from ansible_collections.kvmops.hypervisor.plugins.module_utils._guest import storage as _storage
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt import failure as _failure
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt import graphics
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt import masking
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt import osinfo as _osinfo
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt import xml as lxml_util
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt.connection import libvirt  # None without libvirt-python
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt.constants import (
    DOMAIN_STATE_NAMES as STATE_NAMES)


class DomainError(KvmopsError):
    """Fails the guest with this message (what went wrong, how to fix it). Caught by
    GuestManager.run (a new guest's features clean up: create_failed) and around define (a
    lost connection keeps the new images). Features and the manager's steps re-wrap the
    libraries' errors as DomainError (rewrap: the result fields are kept)."""


class GuestManager(ManagerBase):
    """One guest: the engine (definition, storage, power) and the hooks of its features."""

    LIVE_ITEMS = ('graphics.password',)

    def __init__(self, conn, spec, features=(), shared=None, check_mode=False, diff_mode=False,
                 run_command=None, qemu_img=None, warn=None):
        super(GuestManager, self).__init__(check_mode=check_mode, diff_mode=diff_mode,
                                           warn=warn)
        self.conn = conn
        self.spec = spec
        self.features = list(features)
        self.shared = shared if shared is not None else _shared.Solo()
        self.run_command = run_command
        self.qemu_img = qemu_img
        self.dom = None
        self.newly_defined = False
        self.restart_required = False
        self.differences = []
        self.plans = []
        self.decision = None
        self.host = None
        self.planned_xml = None
        self.removed_storage = []
        self._osinfo = None        # libosinfo's facts, once resolved

    def feature(self, name):
        """The enabled feature of that name ('install', 'cloud'), or None."""
        for f in self.features:
            if f.name == name:
                return f
        return None

    # ================================================================ the run
    def run(self):
        self.dom = self.lookup()                           # look up
        _remote.refuse_remote_file_work(self, libvirt)     # another host: no local file work
        if self.spec['state'] == 'absent':
            self.remove()
            return self.result()
        self.plan()                                        # plan: no side effects
        new = self.dom is None
        try:
            self.prepare()                                 # prepare: side effects
            self.preflight()                               # preflight: check mode too
            if new:
                xml = self.final_xml()                     # final XML
                self.define_new(xml)                       # storage, define
        except DomainError:
            if new:
                for f in self.features:
                    f.create_failed(self)
            raise
        if not new:
            self.update()                                  # drift, storage, define
        self.power()                                       # power
        self.autostart()
        for f in self.features:
            f.finish(self)
        return self.result()                               # result

    # ---------------------------------------------------------------- look up
    def lookup(self):
        try:
            return self.conn.lookupByName(self.spec['name'])
        except libvirt.libvirtError as exc:
            if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                return None
            raise DomainError('Cannot look up domain %s: %s' % (self.spec['name'], exc))

    # ---------------------------------------------------------------- plan
    def plan(self):
        self.host_facts()
        self.plans = self.plan_storage()
        # A new guest without networks gets the default NIC: check what it will be built with.
        nics = self.spec if self.dom is not None else dspec.creation_values(self.spec)
        problems = _preflight.network_problems(nics, self.conn, libvirt.libvirtError)
        if problems:
            raise DomainError(' '.join(problems))
        for f in self.features:
            f.plan(self)

    def host_facts(self):
        if self.host is None:
            self.decision, self.host = self.shared.host_facts(self.spec, self.conn)
        return self.host

    def plan_storage(self):
        """The storage plan of every disk (pure); a feature's disks that prepare() makes are
        planned as "would create" until they are there."""
        disks = self.spec.get('disks')
        placeholders = {}
        for f in self.features:
            placeholders.update(f.placeholders(self))
        real = [d for i, d in enumerate(disks or []) if i not in placeholders]
        try:
            real_plans = _storage.plan_disks(real if disks is not None else disks, self.conn,
                                             known=self.known_formats())
        except _storage.StorageError as exc:
            raise DomainError.rewrap(exc)
        if not placeholders:
            return real_plans
        plans = []
        it = iter(real_plans)
        for i, d in enumerate(disks):
            if i in placeholders:
                p = {'index': i, 'label': d['path'], 'requested': d.get('size'),
                     'growth': False, 'shrink_refused': False, 'path': d['path'],
                     'pool': None, 'volume': None, 'backing_store': d.get('backing_store'),
                     'sparse': True}
                p.update(placeholders[i])
            else:
                p = dict(next(it), index=i)
            plans.append(p)
        return plans

    def known_formats(self):
        """{disk key: (format, 'record' | 'definition')} of the existing domain: what kvmops
        recorded when it made or first used an image, else the definition's <driver type>."""
        if self.dom is None:
            return {}
        try:
            tree = lxml_util.parse(self.dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
        except libvirt.libvirtError:
            return {}
        known = dict((k, (v, 'definition'))
                     for k, v in _record.definition_formats(tree).items())
        for k, v in _record.read(tree).items():
            if v.get('format'):
                known[k] = (v['format'], 'record')
        return known

    def resolve_osinfo(self, values=None):
        """os_variant through libosinfo (once, only for a guest being created or installed):
        the facts go into the spec and, given them, into the creation values."""
        if self._osinfo is None:
            if not self.spec.get('osinfo_lookup'):
                return self.spec.get('osinfo')
            self.spec['osinfo_lookup'] = False
            self._osinfo = _osinfo.resolve(self.spec['os_variant'], self.spec['os_family'],
                                           arch=self.host_facts()['arch'])
            _osinfo.apply(self.spec, self._osinfo)
        info = self._osinfo
        if values is not None:
            _osinfo.apply(values, info)
            minimum = info.get('minimum_memory_mib')
            if minimum and values.get('memory_mib') and values['memory_mib'] < minimum:
                self.warn('memory=%s MiB is below the %s MiB libosinfo gives as the minimum '
                          'for %s; its installer may fail.'
                          % (values['memory_mib'], minimum, self.spec['os_variant']))
        return info

    # ---------------------------------------------------------------- prepare
    def prepare(self):
        replan = False
        for f in self.features:
            replan = f.prepare(self) or replan
        if replan:
            self.plans = self.plan_storage()

    # ---------------------------------------------------------------- preflight
    def preflight(self):
        for msg in _storage.growth_warnings(self.plans):
            self.warn(msg)
        try:
            for msg in _space.check(self.plans, self.conn):
                self.warn(msg)
        except (_space.SpaceError, OSError) as exc:
            raise DomainError.rewrap(exc)
        for opt in ('kernel', 'initrd'):
            if self.spec.get(opt) and not os.path.isfile(self.spec[opt]):
                raise DomainError('%s=%s is not a file on the hypervisor; copy it there (e.g. '
                                  'to /var/lib/libvirt/boot) or fix the path.'
                                  % (opt, self.spec[opt]))
        self.check_serial_log()
        try:
            _access.check_paths(_preflight.paths_of(self.spec))
        except _access.PreflightError as exc:
            raise DomainError.rewrap(exc)
        for f in self.features:
            f.preflight(self)

    LOG_DIRECTORY = '/var/log/libvirt/qemu'
    IMAGE_DIRECTORY = '/var/lib/libvirt/images'   # and below: libvirt's default storage

    def log_paths(self):
        serial = self.spec.get('serial') or {}
        return [serial['path']] if serial.get('type') == 'file' else []

    def check_serial_log(self):
        """virtlogd (root) creates and truncates the serial log file: it may only be in
        /var/log/libvirt/qemu or the directory of one of the guest's disk images, and not a
        symlink or anything but a regular file there."""
        serial = self.spec.get('serial') or {}
        path = serial.get('path') if serial.get('type') == 'file' else None
        if not path:
            return
        allowed = [self.LOG_DIRECTORY]
        allowed += [os.path.dirname(d['path']) for d in self.spec.get('disks') or []
                    if d.get('path') and d.get('device', 'disk') == 'disk']
        if self.dom is not None:
            try:
                tree = lxml_util.parse(self.dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
                allowed += [os.path.dirname(k) for k in _record.definition_formats(tree)
                            if k.startswith('/')]
            except libvirt.libvirtError:
                pass
        parent = os.path.realpath(os.path.dirname(path))
        images = os.path.realpath(self.IMAGE_DIRECTORY)
        under_images = parent == images or parent.startswith(images + os.sep)
        if parent not in set(os.path.realpath(a) for a in allowed) and not under_images:
            raise DomainError(
                'serial=%s is outside the directories a guest\'s log belongs in: virtlogd '
                'runs as root and truncates that file when the guest starts. Put the log in '
                '%s/, under /var/lib/libvirt/images/ or in the directory of the guest\'s disk '
                'image (e.g. %s).'
                % (path, self.LOG_DIRECTORY,
                   os.path.join(allowed[-1], self.spec['name'] + '-serial.log')))
        if os.path.islink(path) or (os.path.lexists(path) and not os.path.isfile(path)):
            raise DomainError('serial=%s is a symlink or not a regular file: virtlogd (root) '
                              'would truncate what it points to. Remove it or give another '
                              'log path.' % path)

    # ---------------------------------------------------------------- a new domain
    def resolved_disks(self, disks):
        out = []
        for d, p in zip(disks or [], self.plans):
            d = dict(d)
            d['format_resolved'] = p.get('format')
            out.append(d)
        return out

    def final_xml(self):
        """The persistent definition of a new domain, as an XML string."""
        values = dspec.creation_values(self.spec)
        values['disks'] = self.resolved_disks(values['disks'])
        self.resolve_osinfo(values)
        xml = dxml.build_domain_xml(values, self.host_facts())
        for f in self.features:
            xml = f.final_xml(self, xml)
        return xml

    def define_new(self, xml):
        self.planned_xml = xml
        if self.diff_mode:
            self.diff = {'before': '', 'after': masking.mask_xml(xml)}
        self.act('defined')
        if self.check_mode:
            for p in self.plans:
                if p['action'] == 'create':
                    self.actions.append('would create disk %s' % p['label'])
            return
        created = self.create_storage()
        for f in self.features:
            created += f.created(self)
        xml = _record.with_disks(xml, self.plans, created, self.log_paths())
        try:
            self.dom = self.define(xml)
        except DomainError as exc:
            if not _failure.connection_alive(self.conn):
                # libvirtd went away during the define: it may have stored the definition
                # before dying, so the new images stay (a re-run uses them, never recreates).
                raise DomainError.rewrap(
                    exc, 'The connection to libvirtd was lost while defining %s; the disk '
                    'images created for it were kept (%s) in case the definition was stored. '
                    'Start libvirtd and run again.'
                    % (self.spec['name'], ', '.join(created) or 'none'))
            # Roll back the empty images this run created; nothing else was touched. An
            # image that a domain uses by now (a concurrent run defined one on it) stays.
            in_use = self.storage_in_use()
            if in_use is None:  # cannot tell: keep them
                in_use = set(created)
            for p in self.plans:
                if p['label'] in created and p['label'] in in_use:
                    self.warn('kept %s, created for %s: another domain may use it now (a '
                              'concurrent run?); remove it yourself if none does.'
                              % (p['label'], self.spec['name']))
                elif p['label'] in created:
                    _storage.remove_images([p['path']] if p['kind'] == 'file' else [],
                                           [(p['pool'], p['volume'])] if p['kind'] == 'volume'
                                           else [], self.conn)
            raise
        self.newly_defined = True

    def storage_in_use(self):
        """The disk keys (path, pool/volume) of every domain libvirt knows now."""
        keys = set()
        try:
            doms = self.conn.listAllDomains(0)
        except libvirt.libvirtError:
            return None
        for dom in doms:
            try:
                tree = lxml_util.parse(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
            except libvirt.libvirtError:
                continue  # undefined meanwhile
            keys.update(_record.definition_formats(tree))
            devices = tree.find('devices')
            for el in devices.findall('disk') if devices is not None else []:
                src = el.find('source')
                if src is not None:
                    k = _record.key({'path': src.get('file'), 'pool': src.get('pool'),
                                     'volume': src.get('volume')})
                    if k:
                        keys.add(k)
        return keys

    def create_storage(self):
        """Create the planned images, one pool at a time (the run's shared pool locks)."""
        created = []
        for p in self.plans:
            if p['action'] != 'create':
                continue
            pools = [p['pool']] if p['kind'] == 'volume' else []
            with self.shared.pools(pools):
                def one(p=p):
                    return _storage.create_missing([p], self.conn, self.run_command,
                                                   self.qemu_img)
                try:
                    created += _shared.retry_pool_busy(one)
                except _storage.StorageError as exc:
                    raise DomainError.rewrap(exc)
            self.act('created disk %s' % p['label'])
        return created

    def secure_xml(self, dom, inactive=True):
        flags = libvirt.VIR_DOMAIN_XML_SECURE
        if inactive:
            flags |= libvirt.VIR_DOMAIN_XML_INACTIVE
        return dom.XMLDesc(flags)

    def define(self, xml):
        try:
            return self.conn.defineXML(xml)
        except libvirt.libvirtError as exc:
            error = DomainError('libvirt refused the definition of %s: %s'
                                % (self.spec['name'], exc))
        for f in self.features:
            error = f.define_error(self, error) or error
        raise error

    # ---------------------------------------------------------------- an existing domain
    def update(self):
        dom = self.dom
        compare_spec = dict(self.spec)
        compare_spec['disks'] = (self.resolved_disks(self.spec['disks'])
                                 if self.spec.get('disks') is not None else None)
        for f in self.features:
            compare_spec = f.compare_spec(self, compare_spec)
        try:
            drift = ddrift.compare(compare_spec, self.secure_xml(dom), self.host)
        except ddrift.DriftError as exc:
            raise DomainError.rewrap(exc)
        self.apply_drift(dom, drift)
        self.restart_pending(drift)
        for f in self.features:
            f.updated(self)

    def apply_drift(self, dom, drift):
        new_disks = [p for p in self.plans if p['action'] == 'create']
        if not drift.changed and not new_disks:
            return
        self.differences = drift.differences
        if not self.spec.get('update', True):
            if drift.changed:
                items = ', '.join(d['item'] for d in drift.differences)
                self.warn('domain %s differs from the options (%s) but update=false: left as '
                          'it is.' % (self.spec['name'], items))
            return
        if self.diff_mode:
            self.diff = drift.diff()
        created = []
        if not self.check_mode:
            created = self.create_storage()
        elif new_disks:
            for p in new_disks:
                self.actions.append('would create disk %s' % p['label'])
        if drift.changed:
            self.act('updated definition')
            if not self.check_mode:
                self.dom = self.define(_record.with_disks(drift.merged_xml(), self.plans,
                                                          created, self.log_paths()))
            if dom.isActive():
                self.restart_required = not self.apply_live(drift)
                restart = (self.spec.get('restart') and self.spec['state'] != 'stopped'
                           and not any(f.blocks_restart(self) for f in self.features))
                if self.restart_required and restart:
                    if not self.check_mode:
                        self.shutdown(self.dom)
                        self.start(self.dom)
                    else:
                        self.act('would restart')
                    self.restart_required = False
        elif new_disks:
            self.changed = True
            if created and not self.check_mode:
                self.dom = self.define(_record.with_disks(self.secure_xml(dom), self.plans,
                                                          created, self.log_paths()))

    def restart_pending(self, drift):
        """A running guest that still runs an older definition (changed by this run, an
        earlier one, or by hand): restart_required and a warning on every run until it has
        restarted (libvirt's live vs inactive XML says so); with restart=true the restart."""
        dom = self.dom
        if dom is None or self.spec['state'] == 'stopped' or not dom.isActive():
            return
        if any(f.blocks_restart(self) for f in self.features):
            return  # an installer runs: the final configuration starts from the definition
        if self.restart_required:          # this run changed it; restart was not asked for
            self.warn_pending(', '.join(d['item'] for d in drift.differences))
            return
        if drift.changed and self.spec.get('update', True):
            return                         # this run changed it and applied it
        pending = ddrift.pending_restart(self.secure_xml(dom), self.secure_xml(dom, False))
        if not pending:
            return
        items = ', '.join('%s %s -> %s' % (p['item'], p['running'], p['defined'])
                          for p in pending)
        if not (self.spec.get('restart')
                and not any(f.blocks_restart(self) for f in self.features)):
            self.restart_required = True
            self.warn_pending(items)
            return
        if self.check_mode:
            self.act('would restart')
        else:
            self.shutdown(dom)
            self.start(dom)
        self.differences.extend({'item': 'running ' + p['item'], 'before': p['running'],
                                 'after': p['defined']} for p in pending)

    def warn_pending(self, items):
        self.warn('%s runs with its old definition (%s) until it restarts: set restart: true '
                  '(or shut it down and start it) to apply it; until then every run reports '
                  'restart_required.' % (self.spec['name'], items))

    def apply_live(self, drift):
        """Apply to the running guest what libvirt can change live (the console password);
        True when nothing else differs, so no restart is needed."""
        if not drift.differences or any(d['item'] not in self.LIVE_ITEMS
                                        for d in drift.differences):
            return False
        want = drift.merged.find('devices/graphics')
        if want is None or not want.get('passwd'):
            return False  # removing a password needs a cold restart
        if self.check_mode:
            return True
        dom = self.dom
        live = lxml_util.parse(self.secure_xml(dom, inactive=False))
        for g in live.iter('graphics'):
            if g.get('type') != want.get('type'):
                continue
            g.set('passwd', want.get('passwd'))
            try:
                dom.updateDeviceFlags(lxml_util.to_string(g, pretty=False),
                                      libvirt.VIR_DOMAIN_AFFECT_LIVE)
            except libvirt.libvirtError as exc:
                self.warn('could not change the console password of the running guest (%s): '
                          'it applies at the next cold start.' % exc)
                return False
            self.act('console password changed live')
            return True
        return False

    # ---------------------------------------------------------------- power
    def power(self):
        for f in self.features:
            if f.power(self):
                return
        state = self.spec['state']
        dom = self.dom
        if state == 'present':
            return
        if dom is None:  # check mode, domain not created
            if state == 'running':
                self.act('would start')
            return
        active = dom.isActive()
        if state == 'running' and not active:
            if self.check_mode:
                self.act('would start')
            elif self.newly_defined:
                self.start_new(dom)
            else:
                self.start(dom)
        elif state == 'running' and dom.state()[0] == libvirt.VIR_DOMAIN_PAUSED:
            if self.check_mode:
                self.act('would resume')
            else:
                dom.resume()
                self.act('resumed')
        elif state == 'stopped' and active:
            if self.check_mode:
                self.act('would shut down')
            else:
                self.shutdown(dom)
            self.restart_required = False

    def start_new(self, dom):
        """Start a domain this run just defined (a feature may do it its own way)."""
        for f in self.features:
            if f.start_new(self, dom):
                return
        self.start(dom)

    def start(self, dom):
        try:
            dom.create()
        except libvirt.libvirtError as exc:
            if not _failure.connection_alive(self.conn):
                # The daemon died during the start: say so, not libvirt's "End of file".
                raise DomainError(_failure.libvirt_failure_message(
                    'the start of %s' % self.spec['name'], exc, self.conn, self.actions))
            raise DomainError('Cannot start %s: %s' % (self.spec['name'], exc))
        self.act('started')

    def shutdown(self, dom):
        """Clean shutdown (ACPI) with a bounded wait; fails rather than pulling the plug."""
        timeout = self.spec.get('shutdown_timeout') or 120
        try:
            dom.shutdown()
        except libvirt.libvirtError as exc:
            if dom.isActive():
                raise DomainError('Cannot shut down %s: %s' % (self.spec['name'], exc))
        deadline = time.time() + timeout
        while time.time() < deadline:
            if not dom.isActive():
                self.act('shut down')
                return
            time.sleep(0.5)
        raise DomainError('%s did not shut down within shutdown_timeout=%ss after an ACPI power '
                          'button press. Does the guest handle ACPI (acpid, or a logged-in '
                          'Windows)? Raise shutdown_timeout, or power it off yourself '
                          '(virsh destroy %s) and run again.'
                          % (self.spec['name'], timeout, self.spec['name']))

    def autostart(self):
        want = self.spec.get('autostart')
        if want is None:
            return
        dom = self.dom
        if dom is None:
            if want:
                self.act('would set autostart')
            return
        if bool(dom.autostart()) != bool(want):
            if not self.check_mode:
                dom.setAutostart(1 if want else 0)
            self.act('autostart %s' % ('on' if want else 'off'))
            self.differences.append({'item': 'autostart', 'before': not want, 'after': want})

    # ---------------------------------------------------------------- absent
    def remove(self):
        had = self.dom is not None
        for f in self.features:
            f.before_remove(self)
        if self.spec.get('remove_storage') and not self.check_mode and had:
            with self.shared.all_pools(self.conn):
                self.remove_domain()
        else:
            self.remove_domain()
        for f in self.features:
            f.removed(self, had)

    def remove_domain(self):
        dom = self.dom
        if dom is None:
            return
        xml = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE) if dom.isPersistent() else \
            dom.XMLDesc(0)
        if self.diff_mode:
            self.diff = {'before': xml, 'after': ''}
        files, volumes = self.owned_storage(lxml_util.parse(xml))
        if self.check_mode:
            self.act('would remove domain')
            if self.spec.get('remove_storage'):
                self.removed_storage = files + ['%s/%s' % v for v in volumes]
            return
        if dom.isActive():
            try:
                dom.destroy()
            except libvirt.libvirtError as exc:
                if dom.isActive():
                    raise DomainError('Cannot stop %s: %s' % (self.spec['name'], exc))
            self.act('destroyed')
        if dom.isPersistent():
            self.undefine(dom)
        if self.spec.get('remove_storage'):
            self.removed_storage = _storage.remove_images(files, volumes, self.conn)
            for label in self.removed_storage:
                self.act('removed disk %s' % label)
            for path in _record.logs(lxml_util.parse(xml)):
                # virtlogd's rotated copies (path.0, path.1, ...) go too; regular files only
                rotated = [path] + ['%s.%d' % (path, n) for n in range(10)]
                for f in rotated:
                    if os.path.isfile(f) and not os.path.islink(f):
                        try:
                            os.unlink(f)
                        except OSError as exc:
                            # virtlogd (root) owns it; a libvirt-group member may not unlink
                            self.warn('remove_storage kept the serial log %s: %s. Remove it '
                                      'as root (become: true).' % (f, exc.strerror or exc))
                            continue
                        self.act('removed serial log %s' % f)
        self.dom = None

    def owned_storage(self, tree):
        """(files, volumes) remove_storage may delete: the writable, unshared disks that
        kvmops' record says it created for this guest, or that the user names in disks. A
        disk kvmops did not make (a domain defined by virsh, an image brought along) stays,
        with a warning that says how to remove it."""
        files, volumes = _storage.removable_storage(tree)
        if not self.spec.get('remove_storage'):
            return files, volumes
        record = _record.read(tree)
        named = set(filter(None, (_record.key(d) for d in self.spec.get('disks') or [])))

        def owned(k):
            return k in named or record.get(k, {}).get('created')
        kept = [k for k in files + ['%s/%s' % v for v in volumes] if not owned(k)]
        if kept:
            self.warn('remove_storage kept %s: kvmops did not create %s for %s (no record of '
                      'it in the definition). Remove it yourself, or name it in disks '
                      '(path, or pool and volume) with remove_storage: true.'
                      % (', '.join(kept), 'it' if len(kept) == 1 else 'them',
                         self.spec['name']))
        return ([f for f in files if owned(f)],
                [v for v in volumes if owned('%s/%s' % v)])

    def undefine(self, dom):
        """Undefine with managed save and snapshot metadata; the NVRAM (UEFI guests) goes
        with remove_storage and is kept without it."""
        nvram = (libvirt.VIR_DOMAIN_UNDEFINE_NVRAM if self.spec.get('remove_storage')
                 else libvirt.VIR_DOMAIN_UNDEFINE_KEEP_NVRAM)
        flags = nvram | libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE
        flags |= libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA
        if hasattr(libvirt, 'VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA'):
            flags |= libvirt.VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA
        # Fall back to fewer flags only for drivers that do not know them (they have no
        # NVRAM either); a domain with an NVRAM is never undefined without one of the two
        # NVRAM flags (libvirt refuses a plain undefine of it).
        attempts = [flags, nvram, 0]
        for i, attempt in enumerate(attempts):
            try:
                if attempt:
                    dom.undefineFlags(attempt)
                else:
                    dom.undefine()
                break
            except libvirt.libvirtError as exc:
                unsupported = exc.get_error_code() in (libvirt.VIR_ERR_INVALID_ARG,
                                                       libvirt.VIR_ERR_NO_SUPPORT)
                if not unsupported or i == len(attempts) - 1:
                    raise DomainError('Cannot undefine %s: %s' % (self.spec['name'], exc))
        self.act('undefined')

    # ---------------------------------------------------------------- result
    def result(self):
        res = {
            'changed': self.changed,
            'name': self.spec['name'],
            'uuid': None,
            'state': 'absent',
            'xml': None,
            'vnc': None,
            'serial': None,
            'restart_required': self.restart_required,
            'actions': self.actions,
            'differences': self.differences,
            'disks': _storage.report(self.plans),
        }
        if self.decision:
            res['virt_type'] = self.decision
        if self.spec.get('osinfo'):
            res['os_info'] = _osinfo.summary(self.spec['osinfo'])
        if self.removed_storage:
            res['removed_storage'] = self.removed_storage
        if self.diff_mode:
            res['diff'] = self.diff
        dom = self.dom
        if dom is None:
            if self.planned_xml is not None:
                res['xml'] = masking.mask_xml(self.planned_xml)
                res['state'] = 'running' if self.spec['state'] == 'running' else 'stopped'
        else:
            res['uuid'] = dom.UUIDString()
            res['state'] = STATE_NAMES.get(dom.state()[0], 'unknown')
            res['xml'] = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
            live = lxml_util.parse(dom.XMLDesc(0))
            res['vnc'] = vnc_info(live)
            res['serial'] = serial_path(live)
        for f in self.features:
            f.result(self, res)
        return res


vnc_info = graphics.vnc_info


def serial_path(tree):
    for s in tree.iter('serial'):
        src = s.find('source')
        if src is not None and src.get('path'):
            return src.get('path')
        return None
    return None
