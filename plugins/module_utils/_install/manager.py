# -*- coding: utf-8 -*-
# Copyright: kvmops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""virt_install_domain's install sources: location, cdrom, import, pxe.

Private to the collection: no API promise.

InstallDomainManager extends the definition engine (_domain_manager.DomainManager) through
its seams: plan_new_domain() validates the install options (and, for a guest that is to
run, fetches the installer's kernel and initrd) before anything is created;
ensure_created() marks a new domain's install as pending in its metadata; and the power
step runs the install phase (_install_phase.run) instead of a plain start while an install
is pending or under way.  See _install_media (the cache), _initrd_inject (kickstart) and
_install_phase (install XML, record, wait).
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os

from ansible_collections.kvmops.hypervisor.plugins.module_utils._domain import argspec as dargspec
from ansible_collections.kvmops.hypervisor.plugins.module_utils._domain import manager as dman
from ansible_collections.kvmops.hypervisor.plugins.module_utils._domain import spec as dspec
from ansible_collections.kvmops.hypervisor.plugins.module_utils._install import initrd_inject as inj
from ansible_collections.kvmops.hypervisor.plugins.module_utils._install import media
from ansible_collections.kvmops.hypervisor.plugins.module_utils._install import phase
from ansible_collections.kvmops.hypervisor.plugins.module_utils._install import (
    source_arg as _source_arg)
from ansible_collections.kvmops.hypervisor.plugins.module_utils._install import (
    durations as _durations)
from ansible_collections.kvmops.hypervisor.plugins.module_utils._domain import preflight as _preflight
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

    Raises dman.DomainError with the option, the problem and the fix."""
    if not params:
        return None
    chosen = [k for k in SOURCE_KEYS if params.get(k) not in (None, False)]
    if len(chosen) != 1:
        raise dman.DomainError(
            "install needs exactly one source: location (an http(s)/ftp URL, a directory or an "
            "ISO holding an install tree), cdrom (an installer ISO), import: true (boot an "
            "existing disk image) or pxe: true; got %s."
            % (', '.join(chosen) if chosen else 'none'))
    source = chosen[0]
    try:
        wait = _durations.parse_wait(wait)
    except _durations.DurationError as exc:
        raise dman.DomainError(str(exc))
    out = {
        'source': source, 'location': params.get('location'), 'cdrom': params.get('cdrom'),
        'extra_args': params.get('extra_args'), 'kickstart': params.get('kickstart'),
        'wait': wait if wait is not None else 0,
        'cache_dir': params.get('cache_dir') or media.DEFAULT_CACHE_DIR,
        'validate_certs': params.get('validate_certs') is not False,
        'timeout': params.get('timeout') or 30,
    }
    if out['wait'] < -1:
        raise dman.DomainError("wait=%s: use 0 (return once the installer started), -1 "
                               "(no limit) or a number of seconds." % out['wait'])
    if source != 'location':
        for key in ('extra_args', 'kickstart'):
            if out[key]:
                raise dman.DomainError(
                    "install.%s works only with install.location: it goes to the installer "
                    "kernel the module boots directly (like virt-install's --%s)."
                    % (key, 'extra-args' if key == 'extra_args' else 'initrd-inject'))
    if source in ('location', 'cdrom', 'pxe') and spec.get('kernel'):
        raise dman.DomainError(
            "install.%s and kernel cannot be combined: kernel/initrd/cmdline make direct kernel "
            "boot the permanent configuration, the install source is booted once. Drop one."
            % source)
    for key in ('extra_args',):
        value = out[key]
        if value and (any(c in value for c in '<>&\x00\n\r') or dspec.NOT_XML.search(value)):
            raise dman.DomainError("install.extra_args contains XML metacharacters, line "
                                   "breaks or control characters; give plain kernel arguments.")
    if out['cdrom']:
        if not os.path.isabs(out['cdrom']):
            raise dman.DomainError("install.cdrom=%s must be an absolute path on the hypervisor."
                                   % out['cdrom'])
        if not os.path.isfile(out['cdrom']):
            raise dman.DomainError("install.cdrom=%s does not exist on the hypervisor; copy the "
                                   "ISO there (e.g. to /var/lib/libvirt/boot)." % out['cdrom'])
        if not media.is_optical_image(out['cdrom']):
            raise dman.DomainError("install.cdrom=%s is neither an ISO 9660 nor a UDF image; "
                                   "give the installer's ISO." % out['cdrom'])
    if out['kickstart']:
        try:
            out['inject_files'] = inj.read_inject_files([out['kickstart']])
        except inj.InitrdInjectError as exc:
            raise dman.DomainError('install.kickstart: %s' % exc)
        out['inject_name'] = out['inject_files'][0][0]
    if source == 'location':
        try:
            out['kind'], out['canonical'] = media.classify_location(out['location'])
        except media.InstallMediaError as exc:
            raise dman.DomainError(str(exc))
    return out


class InstallDomainManager(dman.DomainManager):
    """DomainManager plus the install phase."""

    def __init__(self, conn, spec, install=None, **kwargs):
        super(InstallDomainManager, self).__init__(conn, spec, **kwargs)
        self.install = install
        self.media = None          # resolve_location() result
        self.plan = None           # install plan (build_install_xml)
        self.record = None         # install record of the domain at the start of the run
        self.install_outcome = None
        self.source_arg = None     # _install/source_arg.plan(): the installer's source argument
        self._source_warned = False

    # ------------------------------------------------------------------ validation
    def _check_import(self):
        if not self.plans or self.plans[0].get('kind') not in ('file', 'volume'):
            raise dman.DomainError("install.import boots an existing disk image: give it as the "
                                   "first entry of disks (path of the image).")
        first = self.plans[0]
        if first.get('action') != 'exists':
            raise dman.DomainError(
                "install.import: the image %s does not exist; import boots an existing disk "
                "image and never creates it. Copy the image there or fix disks[0]."
                % first.get('label'))

    def _arch(self):
        return self.host_facts()['arch']

    def _preflight_install(self):
        items = []
        if self.install['cdrom']:
            items.append((self.install['cdrom'], 'install.cdrom ISO image', True))
        if self.install['source'] == 'location':
            if self.install.get('kind') == 'iso':
                items.append((self.install['canonical'], 'install.location ISO image', True))
            cache = media.cache_path(self.install['cache_dir'], self.install['kind'],
                                     self.install['canonical'], self._arch())
            items.append((os.path.join(cache, media.KERNEL_NAME), 'installer kernel cache',
                          os.path.exists(os.path.join(cache, media.KERNEL_NAME))))
        try:
            _preflight.check_paths(items)
        except _preflight.PreflightError as exc:
            raise dman.DomainError(str(exc))

    def plan_new_domain(self, values):
        self.resolve_osinfo(values)
        if not self.install:
            return None
        if self.install['source'] == 'import':
            self._check_import()
            return None
        if self.install['source'] == 'pxe' and not values.get('networks'):
            raise dman.DomainError("install.pxe boots from the network: the domain needs a "
                                   "network interface (networks must not be empty).")
        self._preflight_install()
        if self.install['source'] == 'location':
            # Fetch now (only for a guest that is to run): a source that cannot be fetched
            # fails before anything is defined. Check mode fetches nothing.
            fetch = self.spec['state'] == 'running' and not self.check_mode
            self._plan_source_arg(self._resolve_media(check_mode=not fetch))
        return None

    def _plan_source_arg(self, m):
        """The installer's source argument (inst.repo=...); warns once when the guest
        cannot reach the tree (a directory on the hypervisor)."""
        self.resolve_osinfo()
        self.source_arg = _source_arg.plan(self.install['location'], m.get('kind'),
                                           m.get('layout'), self.install['extra_args'],
                                           m.get('release'), self.spec.get('osinfo'))
        if self.source_arg['warning'] and not self._source_warned:
            self._source_warned = True
            self.warn(self.source_arg['warning'])
        return self.source_arg

    # ------------------------------------------------------------------ media and plan
    def _resolve_media(self, check_mode):
        if self.media is not None and (check_mode or not self.media.get('_check')):
            return self.media
        try:
            self.media = media.resolve_location(
                self.install['location'], arch=self._arch(), cache_dir=self.install['cache_dir'],
                check_mode=check_mode, validate_certs=self.install['validate_certs'],
                timeout=self.install['timeout'])
        except media.InstallMediaError as exc:
            raise dman.DomainError(str(exc))
        self.media['_check'] = check_mode
        return self.media

    def _plan(self, check_mode):
        src = self.install['source']
        if src == 'cdrom':
            return {'boot': 'cdrom', 'iso': self.install['cdrom']}
        if src == 'pxe':
            return {'boot': 'network'}
        m = self._resolve_media(check_mode)
        initrd = m['initrd']
        if self.install.get('inject_files') and not os.path.isfile(m['initrd']):
            # Check mode before the first fetch: the copy is made from what will be fetched.
            initrd = os.path.join(m['cache'], 'initrd-inject-<digest>')
        elif self.install.get('inject_files'):
            try:
                initrd, _created = inj.inject(m['initrd'], self.install['inject_files'],
                                              check_mode=check_mode or m.get('_check'))
            except (IOError, OSError) as exc:
                raise dman.DomainError("Injecting install.kickstart into a copy of %s failed: %s"
                                       % (m['initrd'], exc))
        cmdline = phase.install_cmdline(self.install['extra_args'], m.get('layout'),
                                        self.install.get('inject_name'))
        self._plan_source_arg(m)
        plan = {'boot': 'kernel', 'kernel': m['kernel'], 'initrd': initrd,
                'cmdline': _source_arg.append(cmdline, self.source_arg['argument'])}
        if m.get('kind') == 'iso':
            plan['attach_iso'] = m['iso']
        return plan

    # ------------------------------------------------------------------ the run
    def _needs_install_phase(self):
        return bool(self.install) and self.install['source'] in ('location', 'cdrom', 'pxe')

    def build_final_xml(self, values):
        """The final definition, carrying the pending install record from the start (one
        define: a domain of ours never exists without its record)."""
        xml = super(InstallDomainManager, self).build_final_xml(values)
        if not self._needs_install_phase():
            return xml
        self.record = phase.new_record(self.install['source'])
        return phase.add_record(xml, self.record)

    def ensure_updated(self):
        if self._needs_install_phase():
            try:
                self.record = phase.read_record(self.dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
            except libvirt.libvirtError:
                self.record = None
            if self.record is None:
                self.warn("Domain %s exists and carries no kvmops install record, so no "
                          "installer is started over its disks (the install phase only runs "
                          "for a domain this module created). Remove the domain first to "
                          "reinstall it." % self.spec['name'])
            elif self.record.get('state') == 'pending' and self.spec['state'] == 'running':
                self._preflight_install()
        if self._install_active() and self.spec.get('restart'):
            # Never restart a running installer to apply an updated definition: the final
            # configuration starts from the updated definition once the installer ended.
            spec = self.spec
            self.spec = dict(spec, restart=False)
            try:
                super(InstallDomainManager, self).ensure_updated()
            finally:
                self.spec = spec
            return
        super(InstallDomainManager, self).ensure_updated()

    def _install_active(self):
        return self._needs_install_phase() and self.record is not None and \
            self.record.get('state') in ('pending', 'started')

    def ensure_power_state(self):
        if not self._install_active() or self.spec['state'] == 'present':
            return super(InstallDomainManager, self).ensure_power_state()
        dom = self.dom
        if self.spec['state'] == 'stopped':
            if dom is not None and dom.isActive() and phase.live_is_installer(dom):
                # Stopping a running installer interrupts the install: it runs again later.
                if self.check_mode:
                    self.act('would shut down')
                else:
                    self.shutdown(dom)
                    phase.write_record(dom, phase.new_record(self.install['source']))
                self.install_outcome = {'install_phase': phase.PHASE_PENDING}
                return None
            if dom is not None and self.record.get('state') == 'started':
                self._run_phase(want_running=False)
                return None
            return super(InstallDomainManager, self).ensure_power_state()
        if dom is None:  # check mode, new domain
            self.plan = self._plan(check_mode=True)
            self.act('would start the installer')
            self.install_outcome = {'install_phase': phase.PHASE_STARTED}
            return None
        self._run_phase(want_running=True)
        return None

    def _run_phase(self, want_running):
        dom = self.dom
        record = dict(self.record)

        def factory(check_mode):
            plan = self._plan(check_mode)
            self.plan = plan
            if os.path.basename(plan.get('initrd') or '').startswith('initrd-inject-'):
                # Remembered (a path, nothing secret) so the copy is removed afterwards.
                record['initrd_inject'] = plan['initrd']
            return plan

        def completed(done):
            inj.remove_injected(done.get('initrd_inject'))

        try:
            out = phase.run(self.conn, dom, record, want_running, self.install['wait'],
                            factory, self.secure_xml(dom), check_mode=self.check_mode,
                            on_completed=completed)
        except phase.InstallPhaseError as exc:
            raise dman.DomainError(str(exc))
        if out['started_installer']:
            self.act('started the installer')
        elif out['changed'] and self.check_mode and out['install_phase'] == phase.PHASE_STARTED:
            self.act('would start the installer')
        if out['install_phase'] == phase.PHASE_COMPLETED and out['changed']:
            self.act('install phase completed')
        if out['started_final']:
            self.act('started' if not self.check_mode else 'would start')
            self.restart_required = False  # the final configuration started from the definition
        if out['install_phase'] == phase.PHASE_TIMED_OUT:
            self.warn("The installer of %s was still running after wait=%s seconds (%s). "
                      "A later run with state=running finishes the job (it starts the final "
                      "configuration once the installer has ended)."
                      % (self.spec['name'], self.install['wait'],
                         _durations.describe(self.install['wait'])))
        self.install_outcome = out

    # ------------------------------------------------------------------ result
    def result(self):
        res = super(InstallDomainManager, self).result()
        if not self.install:
            return res
        if self.install_outcome is not None:
            ip = self.install_outcome['install_phase']
        elif not self._needs_install_phase():
            ip = phase.PHASE_NONE
        elif self.record is None:
            ip = phase.PHASE_NONE
        else:
            ip = {'pending': phase.PHASE_PENDING, 'started': phase.PHASE_STARTED,
                  'completed': phase.PHASE_COMPLETED}[self.record['state']]
        if self.spec['state'] == 'absent':
            ip = phase.PHASE_NONE
        res['install_phase'] = ip
        info = {'source': self.install['source'], 'wait': self.install['wait']}
        if self.install['source'] == 'location':
            info['location'] = self.install['location']
            if self.media:
                info.update(kernel=self.media['kernel'], initrd=self.media['initrd'],
                            layout=self.media.get('layout'), cache=self.media['cache'],
                            fetched=bool(self.media['fetched']) and (
                                self.check_mode or not self.media.get('_check')))
        elif self.install['source'] == 'cdrom':
            info['cdrom'] = self.install['cdrom']
        if self.plan and self.plan.get('cmdline') is not None:
            info['cmdline'] = self.plan['cmdline']
        if self.source_arg:
            info['source_argument'] = self.source_arg['argument']
            info['source_argument_decided_by'] = self.source_arg['decided_by']
        if self.install.get('kickstart'):
            info['kickstart'] = self.install['kickstart']
            info['injected_as'] = '/' + self.install['inject_name']
        res['install'] = info
        return res
