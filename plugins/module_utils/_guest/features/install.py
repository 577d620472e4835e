# -*- coding: utf-8 -*-
# Copyright: kvmops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The install feature of a guest: install.location, cdrom, import or pxe.

Private to the collection: no API promise. Imported only for a guest with an install source.

normalize_install() checks the install option (the spec entry, _guest/options.py, calls it);
InstallFeature hooks into the guest manager's steps (_guest/features/__init__.py):
- plan: the checks of a new guest's source (import needs an existing image, pxe a NIC), the
  install record of an existing domain, and which paths QEMU must reach;
- prepare: the installer's kernel and initrd of install.location are fetched into the cache
  (only for a guest that is to run; check mode fetches nothing);
- final XML: a new domain carries its pending install record from its first definition;
- power: while an install is pending or under way, the install phase (_install/phase.py:
  install XML, record, wait) replaces a plain start.
The libraries it uses: _install/media.py (trees, ISOs, the cache), initrd_inject.py
(kickstart), source_arg.py (inst.repo=...), durations.py (wait).
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os

from ansible_collections.kvmops.hypervisor.plugins.module_utils._guest import argspec as dargspec
from ansible_collections.kvmops.hypervisor.plugins.module_utils._guest import spec as dspec
from ansible_collections.kvmops.hypervisor.plugins.module_utils._install import initrd_inject as inj
from ansible_collections.kvmops.hypervisor.plugins.module_utils._install import media
from ansible_collections.kvmops.hypervisor.plugins.module_utils._install import phase
from ansible_collections.kvmops.hypervisor.plugins.module_utils._install import (
    source_arg as _source_arg)
from ansible_collections.kvmops.hypervisor.plugins.module_utils._install import (
    durations as _durations)
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt import masking as _masking
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt import qemu_access as _access
from ansible_collections.kvmops.hypervisor.plugins.module_utils._guest.features.base import Feature
from ansible_collections.kvmops.hypervisor.plugins.module_utils._guest.manager import DomainError
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt.connection import libvirt  # None without libvirt-python

SOURCE_KEYS = ('location', 'cdrom', 'import', 'pxe')


def install_argument_spec():
    """The install option (a dict) for the module's argument_spec."""
    return dargspec.install_option()


def wait_argument_spec():
    """The top-level wait option (virt-install's --wait) for the module's argument_spec:
    seconds, or a duration with a unit (see _install/durations.py)."""
    return dargspec.wait_option()


def normalize_install(params, spec, wait=0):
    """Validate the install option (and wait) against the spec; a dict (source, ...) or None.

    Raises DomainError with the option, the problem and the fix."""
    if not params:
        return None
    chosen = [k for k in SOURCE_KEYS if params.get(k) not in (None, False)]
    if len(chosen) != 1:
        raise DomainError(
            "install needs exactly one source: location (an http(s)/ftp URL, a directory or an "
            "ISO holding an install tree), cdrom (an installer ISO), import: true (boot an "
            "existing disk image) or pxe: true; got %s."
            % (', '.join(chosen) if chosen else 'none'))
    source = chosen[0]
    try:
        wait = _durations.parse_wait(wait)
    except _durations.DurationError as exc:
        raise DomainError.rewrap(exc)
    out = {
        'source': source, 'location': params.get('location'), 'cdrom': params.get('cdrom'),
        'extra_args': params.get('extra_args'), 'kickstart': params.get('kickstart'),
        'wait': wait if wait is not None else 0,
        'cache_dir': params.get('cache_dir') or media.DEFAULT_CACHE_DIR,
        'validate_certs': params.get('validate_certs') is not False,
        'timeout': params.get('timeout') or 30,
    }
    if out['wait'] < -1:
        raise DomainError("wait=%s: use 0 (return once the installer started), -1 "
                          "(no limit) or a number of seconds." % out['wait'])
    if source != 'location':
        for key in ('extra_args', 'kickstart'):
            if out[key]:
                raise DomainError(
                    "install.%s works only with install.location: it goes to the installer "
                    "kernel the module boots directly (like virt-install's --%s)."
                    % (key, 'extra-args' if key == 'extra_args' else 'initrd-inject'))
    if source in ('location', 'cdrom', 'pxe') and spec.get('kernel'):
        raise DomainError(
            "install.%s and kernel cannot be combined: kernel/initrd/cmdline make direct kernel "
            "boot the permanent configuration, the install source is booted once. Drop one."
            % source)
    for key in ('extra_args',):
        value = out[key]
        if value and (any(c in value for c in '<>&\x00\n\r') or dspec.NOT_XML.search(value)):
            raise DomainError("install.extra_args contains XML metacharacters, line "
                              "breaks or control characters; give plain kernel arguments.")
    if out['cdrom']:
        if not os.path.isabs(out['cdrom']):
            raise DomainError("install.cdrom=%s must be an absolute path on the hypervisor."
                              % out['cdrom'])
        if not os.path.isfile(out['cdrom']):
            raise DomainError("install.cdrom=%s does not exist on the hypervisor; copy the "
                              "ISO there (e.g. to /var/lib/libvirt/boot)." % out['cdrom'])
        if not media.is_optical_image(out['cdrom']):
            raise DomainError("install.cdrom=%s is neither an ISO 9660 nor a UDF image; "
                              "give the installer's ISO." % out['cdrom'])
    if out['kickstart']:
        try:
            out['inject_files'] = inj.read_inject_files([out['kickstart']])
        except inj.InitrdInjectError as exc:
            raise DomainError.rewrap(exc, 'install.kickstart: %s' % exc)
        out['inject_name'] = out['inject_files'][0][0]
    if source == 'location':
        try:
            out['kind'], out['canonical'] = media.classify_location(out['location'])
        except media.InstallMediaError as exc:
            raise DomainError.rewrap(exc)
    return out


class InstallFeature(Feature):
    """The install phase of a guest (see the module docstring)."""

    name = 'install'

    def __init__(self, install):
        self.install = install
        self.media = None          # resolve_location() result
        self.plan_ = None          # install plan (build_install_xml)
        self.record = None         # install record of the domain at the start of the run
        self.outcome = None
        self.source_arg = None     # _install/source_arg.plan(): the installer's source argument
        self._credentials_warned = False
        self._source_warned = False
        self._paths = []           # what QEMU must reach, decided in the plan step

    # ------------------------------------------------------------------ plan
    def plan(self, m):
        if m.dom is None:
            self._plan_new(m)
            return
        if not self.needs_phase():
            return
        try:
            self.record = phase.read_record(m.dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
        except libvirt.libvirtError:
            self.record = None
        if self.record is None:
            m.warn("Domain %s exists and carries no kvmops install record, so no "
                   "installer is started over its disks (the install phase only runs "
                   "for a domain this module created). Remove the domain first to "
                   "reinstall it." % m.spec['name'])
        elif self.record.get('state') == 'pending' and m.spec['state'] == 'running':
            self._paths = self._install_paths(m)

    def _plan_new(self, m):
        if self.install['source'] == 'import':
            self._check_import(m)
            return
        networks = m.spec.get('networks')
        if self.install['source'] == 'pxe' and networks is not None and not networks:
            raise DomainError("install.pxe boots from the network: the domain needs a "
                              "network interface (networks must not be empty).")
        self._paths = self._install_paths(m)

    def _check_import(self, m):
        if not m.plans or m.plans[0].get('kind') not in ('file', 'volume'):
            raise DomainError("install.import boots an existing disk image: give it as the "
                              "first entry of disks (path of the image).")
        first = m.plans[0]
        if first.get('action') != 'exists':
            raise DomainError(
                "install.import: the image %s does not exist; import boots an existing disk "
                "image and never creates it. Copy the image there or fix disks[0]."
                % first.get('label'))

    def _install_paths(self, m):
        """(path, what, must exist) of the install media QEMU reads (the installer kernel
        must exist only when it is in the cache already)."""
        items = []
        if self.install['cdrom']:
            items.append((self.install['cdrom'], 'install.cdrom ISO image', True))
        if self.install['source'] == 'location':
            if self.install.get('kind') == 'iso':
                items.append((self.install['canonical'], 'install.location ISO image', True))
            cache = media.cache_path(self.install['cache_dir'], self.install['kind'],
                                     self.install['canonical'], m.host_facts()['arch'])
            items.append((os.path.join(cache, media.KERNEL_NAME), 'installer kernel cache',
                          os.path.exists(os.path.join(cache, media.KERNEL_NAME))))
        return items

    # ------------------------------------------------------------------ prepare
    def prepare(self, m):
        if m.dom is None and self.install['source'] == 'location':
            # Fetch now (only for a guest that is to run): a source that cannot be fetched
            # fails before anything is defined. Check mode fetches nothing.
            m.resolve_osinfo()
            fetch = m.spec['state'] == 'running' and not m.check_mode
            self._plan_source_arg(m, self.resolve_media(m, check_mode=not fetch))
        return False

    def resolve_media(self, m, check_mode):
        """The install tree's kernel and initrd (fetched into the cache unless check_mode);
        one fetch per source at a time in a run (the shared media lock)."""
        with self._media_lock(m):
            if self.media is not None and (check_mode or not self.media.get('_check')):
                return self.media
            try:
                self.media = media.resolve_location(
                    self.install['location'], arch=m.host_facts()['arch'],
                    cache_dir=self.install['cache_dir'], check_mode=check_mode,
                    validate_certs=self.install['validate_certs'],
                    timeout=self.install['timeout'])
            except media.InstallMediaError as exc:
                raise DomainError.rewrap(exc)
            self.media['_check'] = check_mode
            return self.media

    def _media_lock(self, m):
        return m.shared.lock(('media', self.install.get('cache_dir'),
                              self.install.get('location'), m.host_facts()['arch']))

    def _plan_source_arg(self, m, found):
        """The installer's source argument (inst.repo=...); warns once when the guest
        cannot reach the tree (a directory on the hypervisor)."""
        m.resolve_osinfo()
        self.source_arg = _source_arg.plan(self.install['location'], found.get('kind'),
                                           found.get('layout'), self.install['extra_args'],
                                           found.get('release'), m.spec.get('osinfo'))
        if self.source_arg['warning'] and not self._source_warned:
            self._source_warned = True
            m.warn(self.source_arg['warning'])
        if not self._credentials_warned and _masking.url_secrets(
                [self.source_arg.get('argument'), self.install.get('extra_args')]):
            # warned, not refused: an installer that must fetch from a mirror behind a
            # password has no other way to get it
            self._credentials_warned = True
            m.warn('the installer\'s kernel command line carries a password (user:password@ '
                   'in install.location or install.extra_args): QEMU\'s command line, which '
                   'every user of the hypervisor can read (ps), and the guest\'s '
                   '/proc/cmdline show it. Serve the tree without credentials to the '
                   'hypervisor\'s guests (an address-restricted mirror) or use a throw-away '
                   'password.')
        return self.source_arg

    # ------------------------------------------------------------------ preflight
    def preflight(self, m):
        if not self._paths:
            return
        try:
            _access.check_paths(self._paths)
        except _access.PreflightError as exc:
            raise DomainError.rewrap(exc)

    # ------------------------------------------------------------------ a new domain
    def needs_phase(self):
        return self.install['source'] in ('location', 'cdrom', 'pxe')

    def final_xml(self, m, xml):
        """The final definition carries the pending install record from the start (one
        define: a domain of ours never exists without its record)."""
        if not self.needs_phase():
            return xml
        self.record = phase.new_record(self.install['source'])
        return phase.add_record(xml, self.record)

    # ------------------------------------------------------------------ power
    def active(self):
        return self.needs_phase() and self.record is not None and \
            self.record.get('state') in ('pending', 'started')

    def blocks_restart(self, m):
        # Never restart a running installer to apply an updated definition: the final
        # configuration starts from the updated definition once the installer ended.
        return self.active()

    def power(self, m):
        if not self.active() or m.spec['state'] == 'present':
            return False
        dom = m.dom
        if m.spec['state'] == 'stopped':
            if dom is not None and dom.isActive() and phase.live_is_installer(dom):
                # Stopping a running installer interrupts the install: it runs again later.
                if m.check_mode:
                    m.act('would shut down')
                else:
                    m.shutdown(dom)
                    phase.write_record(dom, phase.new_record(self.install['source']))
                self.outcome = {'install_phase': phase.PHASE_PENDING}
                return True
            if dom is not None and self.record.get('state') == 'started':
                self._run_phase(m, want_running=False)
                return True
            return False
        if dom is None:  # check mode, new domain
            self.plan_ = self._plan(m, check_mode=True)
            m.act('would start the installer')
            self.outcome = {'install_phase': phase.PHASE_STARTED}
            return True
        self._run_phase(m, want_running=True)
        return True

    def _plan(self, m, check_mode):
        src = self.install['source']
        if src == 'cdrom':
            return {'boot': 'cdrom', 'iso': self.install['cdrom']}
        if src == 'pxe':
            return {'boot': 'network'}
        with self._media_lock(m):
            found = self.resolve_media(m, check_mode)
            initrd = found['initrd']
            if self.install.get('inject_files') and not os.path.isfile(found['initrd']):
                # Check mode before the first fetch: the copy is made from what will be fetched.
                initrd = os.path.join(found['cache'], 'initrd-inject-<digest>')
            elif self.install.get('inject_files'):
                try:
                    initrd, _created = inj.inject(found['initrd'], self.install['inject_files'],
                                                  check_mode=check_mode or found.get('_check'))
                except (IOError, OSError) as exc:
                    raise DomainError("Injecting install.kickstart into a copy of %s failed: %s"
                                      % (found['initrd'], exc))
        cmdline = phase.install_cmdline(self.install['extra_args'], found.get('layout'),
                                        self.install.get('inject_name'))
        self._plan_source_arg(m, found)
        plan = {'boot': 'kernel', 'kernel': found['kernel'], 'initrd': initrd,
                'cmdline': _source_arg.append(cmdline, self.source_arg['argument'])}
        if found.get('kind') == 'iso':
            plan['attach_iso'] = found['iso']
        return plan

    def _run_phase(self, m, want_running):
        dom = m.dom
        record = dict(self.record)

        def factory(check_mode):
            plan = self._plan(m, check_mode)
            self.plan_ = plan
            if os.path.basename(plan.get('initrd') or '').startswith('initrd-inject-'):
                # Remembered (a path, nothing secret) so the copy is removed afterwards.
                record['initrd_inject'] = plan['initrd']
            return plan

        def completed(done):
            inj.remove_injected(done.get('initrd_inject'))

        try:
            out = phase.run(m.conn, dom, record, want_running, self.install['wait'],
                            factory, m.secure_xml(dom), check_mode=m.check_mode,
                            on_completed=completed)
        except phase.InstallPhaseError as exc:
            raise DomainError.rewrap(exc)
        if out['started_installer']:
            m.act('started the installer')
        elif out['changed'] and m.check_mode and out['install_phase'] == phase.PHASE_STARTED:
            m.act('would start the installer')
        if out['install_phase'] == phase.PHASE_COMPLETED and out['changed']:
            m.act('install phase completed')
        if out['started_final']:
            m.act('started' if not m.check_mode else 'would start')
            m.restart_required = False  # the final configuration started from the definition
        if out['install_phase'] == phase.PHASE_TIMED_OUT:
            m.warn("The installer of %s was still running after wait=%s seconds (%s). "
                   "A later run with state=running finishes the job (it starts the final "
                   "configuration once the installer has ended)."
                   % (m.spec['name'], self.install['wait'],
                      _durations.describe(self.install['wait'])))
        self.outcome = out

    # ------------------------------------------------------------------ result
    def result(self, m, res):
        if self.outcome is not None:
            ip = self.outcome['install_phase']
        elif not self.needs_phase() or self.record is None:
            ip = phase.PHASE_NONE
        else:
            ip = {'pending': phase.PHASE_PENDING, 'started': phase.PHASE_STARTED,
                  'completed': phase.PHASE_COMPLETED}[self.record['state']]
        if m.spec['state'] == 'absent':
            ip = phase.PHASE_NONE
        res['install_phase'] = ip
        info = {'source': self.install['source'], 'wait': self.install['wait']}
        if self.install['source'] == 'location':
            info['location'] = self.install['location']
            if self.media:
                info.update(kernel=self.media['kernel'], initrd=self.media['initrd'],
                            layout=self.media.get('layout'), cache=self.media['cache'],
                            fetched=bool(self.media['fetched']) and (
                                m.check_mode or not self.media.get('_check')))
        elif self.install['source'] == 'cdrom':
            info['cdrom'] = self.install['cdrom']
        if self.plan_ and self.plan_.get('cmdline') is not None:
            info['cmdline'] = self.plan_['cmdline']
        if self.source_arg:
            info['source_argument'] = self.source_arg['argument']
            info['source_argument_decided_by'] = self.source_arg['decided_by']
        if self.install.get('kickstart'):
            info['kickstart'] = self.install['kickstart']
            info['injected_as'] = '/' + self.install['inject_name']
        res['install'] = info
