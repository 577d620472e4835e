# -*- coding: utf-8 -*-
# Copyright: kvmops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Many guests in one module run (virt_install_domains). Private to the collection.

1. prepare(): merge `defaults` under each guest, validate the result with the one guest
   argument spec (_guest/argspec.py), refuse duplicate names and disk images, normalise
   (_guest/options.from_params, the one entry both guest modules use).
2. Batch.run(), plan pass: every guest runs through its manager in CHECK MODE (no side
   effects), in parallel; a guest that cannot be made (missing ISO or kernel, a disk that
   exists with another size, a name taken by a domain kvmops did not create, ...) fails the
   whole run before anything is created, and the error names every such guest.
3. Apply pass: the guests whose plan changes something run for real, in a thread pool of
   `parallel` workers over ONE libvirt connection (libvirt's API is thread-safe and
   libvirt-python releases the GIL during calls). An unchanged guest's plan IS its result.
   One guest failing does not stop the others; the run then fails naming each failed guest.

Every guest runs through the one GuestManager (_guest/manager.py) with the features its
options enable; the batch hands each manager the run's Shared (_guest/shared.py): what
libvirt (or the shared host) cannot do concurrently is serialised there, not in the
managers: volume creation per storage pool (libvirt refuses jobs on a pool with
"asynchronous jobs running"; such an error is retried), fetching one install source or base
image into its cache, and the host facts (asked once per virt_type/arch, shared by every
guest). The install-media code is imported only when a guest has an install source.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import time

from concurrent.futures import ThreadPoolExecutor

from ansible_collections.kvmops.hypervisor.plugins.module_utils._common.errors import KvmopsError
from ansible_collections.kvmops.hypervisor.plugins.module_utils._guest import argspec as dargspec
from ansible_collections.kvmops.hypervisor.plugins.module_utils._guest.features import base as _features
from ansible_collections.kvmops.hypervisor.plugins.module_utils._guest import manager as dman
from ansible_collections.kvmops.hypervisor.plugins.module_utils._guest import options as _options
from ansible_collections.kvmops.hypervisor.plugins.module_utils._guest import preflight as _preflight
from ansible_collections.kvmops.hypervisor.plugins.module_utils._guest import shared as _shared
from ansible_collections.kvmops.hypervisor.plugins.module_utils._guest import space as _space
from ansible_collections.kvmops.hypervisor.plugins.module_utils._guest import storage as _storage
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt.connection import libvirt  # None without libvirt-python

INSTALL_SOURCES = ('location', 'cdrom', 'pxe')


def default_parallel(cpus=None):
    """Workers when `parallel` is unset: starting guests waits mostly on libvirtd and QEMU,
    and an installing guest's worker mostly sleeps, so more workers than CPUs pay off."""
    cpus = cpus or os.cpu_count() or 1
    return max(4, 2 * cpus)


# ------------------------------------------------------------------------------ prepare

def _unset_dropped(value):
    """AnsibleModule fills every unset suboption with None; drop them (at every level) so the
    merged guest is validated as if the user had written only what they wrote."""
    if isinstance(value, dict):
        return dict((k, _unset_dropped(v)) for k, v in value.items() if v is not None)
    if isinstance(value, list):
        return [_unset_dropped(v) for v in value]
    return value


def merge(defaults, guest):
    """defaults under guest, top-level keys only (like the guests role's combine)."""
    out = _unset_dropped(defaults or {})
    out.update(_unset_dropped(guest))
    return out


def _disk_keys(params):
    """Identities of the writable images a guest uses (files by path, volumes by pool/name)."""
    keys = []
    for d in params.get('disks') or []:
        if d.get('device') == 'cdrom' or d.get('readonly'):
            continue
        if d.get('path'):
            keys.append(('file', os.path.normpath(d['path'])))
        elif d.get('pool') and d.get('volume'):
            keys.append(('volume', '%s/%s' % (d['pool'], d['volume'])))
    return keys


class Guest(object):
    """One guest of the list: its params, spec, install, and what became of it."""

    def __init__(self, index, params):
        self.index = index
        self.params = params
        self.name = params.get('name')
        self.options = None        # _guest/options.GuestOptions: spec, install, cloud
        self.error = None
        self.result = None
        self.warnings = []
        self.elapsed = 0.0
        self.manager = None        # the plan's manager (its domain, install record, media)
        self.media = []            # preflight problems of its media (_guest/preflight.py)
        self.deferred = None       # why check mode cannot plan it yet (preflight=report)

    @property
    def spec(self):
        return self.options.spec if self.options is not None else None

    @property
    def install(self):
        return self.options.install if self.options is not None else None

    @property
    def cloud(self):
        return self.options.cloud if self.options is not None else None

    @property
    def has_install(self):
        return bool(self.install)


def prepare(guests, defaults=None, collect=False):
    """Merged, validated and normalised Guests; raises KvmopsError naming every bad guest
    (nothing has been touched: no connection is needed). collect=True (what
    virt_install_domains passes) keeps the bad guests, their error set: the plan pass then
    checks the others too, and its failure (or the preflight report) names every one."""
    option_spec = _options.guest_options()
    if defaults and defaults.get('name') is not None:
        raise KvmopsError('defaults.name=%s: a name belongs to one guest; set it in guests.'
                          % defaults['name'])
    if defaults:
        # once, not in every guest's error: defaults takes guests[]'s options
        msgs = dargspec.validate(defaults, dargspec.without_defaults(option_spec))[1]
        if msgs:
            raise KvmopsError('defaults: %s (defaults takes the options of guests[]; nothing '
                              'was created).' % '; '.join(msgs), changed=False)
    out = []
    for i, item in enumerate(guests or []):
        params, msgs = dargspec.validate(merge(defaults, item), option_spec)
        g = Guest(i, params)
        out.append(g)
        if not item.get('name'):
            g.error = 'guests[%d] has no name: every guest needs one.' % i
            continue
        if msgs:
            g.error = '; '.join(msgs)
            continue
        try:
            g.options = _options.from_params(params)
        except KvmopsError as exc:
            g.error = str(exc)
    _check_duplicates(out)
    bad = [g for g in out if g.error]
    if not out:
        raise KvmopsError('guests is empty: give at least one guest.')
    if bad and not collect:
        raise KvmopsError(_nothing_created(bad), guests=[failed_result(g) for g in out],
                          changed=False)
    return out


def _check_duplicates(guests):
    names, images = {}, {}
    for g in guests:
        if g.name in names:
            g.error = g.error or ('the name %s is also guests[%d]\'s: every guest needs its own '
                                  'name.' % (g.name, names[g.name]))
        names.setdefault(g.name, g.index)
        if g.params.get('state') == 'absent':
            continue
        for key in _disk_keys(g.params):
            if key in images and images[key][0] != g.name:
                g.error = g.error or ('the disk %s is also %s\'s: two guests writing one image '
                                      'corrupt it; give each its own image (a shared one '
                                      'read-only or as a CD-ROM).' % (key[1], images[key][0]))
            images.setdefault(key, (g.name, g.index))


def _nothing_created(bad):
    return ('Nothing was created or changed: %d guest%s cannot be made. %s'
            % (len(bad), '' if len(bad) == 1 else 's',
               ' '.join('[%s] %s' % (g.name or 'guests[%d]' % g.index, g.error) for g in bad)))


def failed_result(g):
    return {'name': g.name, 'failed': bool(g.error), 'msg': g.error, 'changed': False}


# ------------------------------------------------------------------------------ the run

def _install_feature(m):
    """The install feature of a guest's manager, or None."""
    return m.feature('install') if hasattr(m, 'feature') else None


def _install_record(m):
    install = _install_feature(m)
    return install.record if install is not None else None


def deferral(g):
    """preflight=report (check mode): why the guest cannot be planned yet, or None. A new
    image in a directory that does not exist yet: in check mode the task that creates the
    directory (the image_storage role's, say) has not run, so the guest is reported as
    deferred, not as a failure; a real run's plan checks it."""
    if g.params.get('state') == 'absent':
        return None
    for i, d in enumerate(g.params.get('disks') or []):
        path = d.get('path')
        if not path or d.get('device') == 'cdrom' or d.get('pool') or os.path.lexists(path):
            continue
        parent = os.path.dirname(path)
        if not os.path.isdir(parent):
            return deferred(g.name, 'directory',
                            'its image directory %s (disks[%d]) does not exist yet; the guest '
                            'is planned once it does (in a real run, after the task that '
                            'creates it)' % (parent, i))
    return None


def deferred(name, reason, msg):
    return {'guest': name, 'reason': reason, 'msg': msg}


class Batch(object):
    def __init__(self, conn, guests, parallel=None, check_mode=False, diff_mode=False,
                 run_command=None, qemu_img=None, preflight='fail', openssl=None):
        self.conn = conn
        self.report = preflight == 'report'   # plan only, never fail for a guest
        self.guests = guests
        self.parallel = max(1, min(parallel or default_parallel(), len(guests) or 1))
        self.check_mode = check_mode
        self.diff_mode = diff_mode
        self.run_command = run_command
        self.qemu_img = qemu_img
        self.openssl = openssl
        self.shared = _shared.Shared()

    def manager(self, g, check_mode):
        """The guest's manager, with the locks and host facts of this run."""
        g.warnings = []
        return dman.GuestManager(
            self.conn, g.spec, shared=self.shared, check_mode=check_mode,
            diff_mode=self.diff_mode, run_command=self.run_command, qemu_img=self.qemu_img,
            warn=g.warnings.append,
            features=_features.for_guest(g.install, g.cloud, openssl=self.openssl))

    def _map(self, fn, guests):
        if len(guests) <= 1 or self.parallel == 1:
            for g in guests:
                fn(g)
            return
        with ThreadPoolExecutor(max_workers=self.parallel) as pool:
            list(pool.map(fn, guests))

    def _guarded(self, g, check_mode, extra_checks=None):
        started = time.time()
        m = None
        try:
            m = self.manager(g, check_mode)
            g.result = m.run()
            if extra_checks:
                extra_checks(g, m)
        except KvmopsError as exc:
            g.error = str(exc)
        # One guest's surprise never takes the others' results with it.
        except Exception as exc:  # pylint: disable=broad-except
            if libvirt is not None and isinstance(exc, libvirt.libvirtError):
                g.error = 'libvirt: %s' % exc
            else:
                g.error = ('unexpected %s: %s (a bug in kvmops.hypervisor, please report it)'
                           % (type(exc).__name__, exc))
        if g.error:
            g.result = {'name': g.name, 'failed': True, 'msg': g.error,
                        'changed': bool(m and m.changed),
                        'actions': list(m.actions) if m else []}
        g.manager = m
        g.elapsed += time.time() - started
        return g

    def plan(self):
        """Every guest in check mode, and the media of the new ones; KvmopsError when one
        cannot be made (preflight=report: the problems are reported instead)."""
        def one(g):
            if self.report and not g.error:
                g.deferred = deferral(g)
            if not g.error and not g.deferred:
                self._guarded(g, True, self._refuse)
            self.check_media(g)
        self._map(one, self.guests)
        self.check_clone_space()
        bad = [g for g in self.guests if g.error]
        if bad and not self.report:
            raise KvmopsError(_nothing_created(bad), changed=False,
                              guests=[g.result or failed_result(g) for g in self.guests],
                              summary=self.summary(), preflight=self.preflight_report())

    def check_clone_space(self):
        """The full clones' copies of every guest together: each guest's plan checked its
        own, and clones that fit one by one may not fit side by side. The guests whose copies
        do not fit fail the plan (nothing is copied)."""
        owners = []
        for g in self.guests:
            feature = g.manager.feature('clone') if hasattr(g.manager, 'feature') and not g.error \
                else None
            if feature is not None and getattr(feature, 'copies', None):
                owners.append((g, feature.copies))
        if len(owners) < 2:
            return
        try:
            _space.check_copies([c for _g, copies in owners for c in copies], self.conn)
        except (_space.SpaceError, OSError) as exc:
            labels = set(getattr(exc, 'labels', ()))
            names = [g.name for g, copies in owners if labels & set(c['label'] for c in copies)]
            for g, copies in owners:
                if not labels or labels & set(c['label'] for c in copies):
                    g.error = ('%s (the clones %s together; each would fit alone: clone fewer in '
                               'one task, or free space first)' % (exc, ', '.join(names)))
                    g.result = failed_result(g)

    def _installs(self, g):
        """Whether the guest's install media are read in this run: a new domain, or one whose
        install is still pending."""
        m = g.manager
        if m is None:
            try:
                self.conn.lookupByName(g.name)
                return False
            except libvirt.libvirtError:
                return True
        record = _install_record(m) or {}
        return m.dom is None or record.get('state') == 'pending'

    def check_media(self, g):
        """g.media: what is wrong with the media of a guest this run creates (local files
        missing, unreadable or of the wrong kind; install trees whose URL does not answer).
        A guest whose plan passed fails on them too: the fetch would fail mid-run."""
        if not g.name or g.params.get('state') == 'absent' or not self._installs(g):
            return
        install = g.params.get('install') or {}
        feature = _install_feature(g.manager)
        media = feature.media if feature is not None else None
        for option, source, kind in _preflight.media_of(g.params):
            if _preflight.is_url(source):
                if media is not None and not media.get('fetched'):
                    continue  # the tree is in the cache already: no traffic
                problem = self.shared.url_problem(source, install.get('validate_certs', True),
                                                  install.get('timeout') or 30)
            else:
                problem = _preflight.local_problem(source, kind)
            if problem:
                g.media.append(_preflight.media_problem(g.name, option, source, problem))
        if g.media and not g.error:
            g.error = ' '.join(p['msg'] for p in g.media)
            g.result = failed_result(g)

    def preflight_report(self):
        return {'media': [p for g in self.guests for p in g.media],
                'deferred': [g.deferred for g in self.guests if g.deferred]}

    @staticmethod
    def _refuse(g, m):
        """What a single virt_install_domain run allows but a list must not."""
        new = m.dom is None and g.spec['state'] != 'absent'
        if new:
            for p in m.plans:
                if p['action'] == 'exists' and p.get('requested') is not None and (
                        p['growth'] or p['shrink_refused']):
                    raise dman.DomainError(
                        'the disk %s exists already with %s GiB, not the %s GiB asked for, and '
                        'no domain %s uses it: is it another guest\'s image? Remove or rename '
                        'it, or give its size (nothing is ever resized).'
                        % (p['label'], _storage.gib(p['size']), _storage.gib(p['requested']),
                           g.name))
        if m.dom is not None and g.has_install and g.install['source'] in INSTALL_SOURCES \
                and _install_record(m) is None and g.spec['state'] != 'absent':
            raise dman.DomainError(
                'a domain named %s exists and was not created by kvmops (no install record), '
                'but the list installs it from install.%s: rename the guest, remove that domain '
                'first, or drop install to manage the existing domain.'
                % (g.name, g.install['source']))

    def apply(self):
        """The guests whose plan changes something, for real."""
        todo = [g for g in self.guests
                if g.result.get('changed') or g.result.get('install_phase') == 'started']
        self._map(lambda g: self._guarded(g, False), todo)

    def run(self):
        started = time.time()
        self.plan()
        if not self.check_mode and not self.report:
            self.apply()
        self.elapsed = time.time() - started
        return self.outcome()

    def summary(self):
        results = [g.result or failed_result(g) for g in self.guests if not g.deferred]
        return {
            'total': len(results),
            'changed': sum(1 for r in results if r.get('changed')),
            'failed': sum(1 for r in results if r.get('failed')),
            'unchanged': sum(1 for r in results if not r.get('changed') and not r.get('failed')),
            'changed_guests': [r['name'] for r in results if r.get('changed')],
            'failed_guests': [r['name'] for r in results if r.get('failed')],
            'parallel': self.parallel,
            'elapsed': round(getattr(self, 'elapsed', 0.0), 3),
        }

    def outcome(self):
        """The module result; raises KvmopsError (with every result) when a guest failed."""
        results, diffs, warnings = [], [], []
        for g in self.guests:
            if g.deferred:
                continue
            r = dict(g.result or failed_result(g))
            r['elapsed'] = round(g.elapsed, 3)
            diff = r.pop('diff', None)
            if self.diff_mode and diff and (diff.get('before') or diff.get('after')):
                diffs.append(dict(diff, before_header='%s (before)' % g.name,
                                  after_header='%s (after)' % g.name))
            for w in g.warnings:
                warnings.append('%s: %s' % (g.name, w))
            if g.warnings:
                r['warnings'] = list(g.warnings)
            results.append(r)
        out = {'changed': any(r.get('changed') for r in results), 'guests': results,
               'summary': self.summary(), 'warnings': warnings,
               'preflight': self.preflight_report()}
        if self.diff_mode:
            out['diff'] = diffs
        failed = [g for g in self.guests if g.error]
        if failed and not self.report:
            raise KvmopsError(
                '%d of %d guests failed (the others were converged): %s'
                % (len(failed), len(self.guests),
                    ' '.join('[%s] %s' % (g.name, g.error) for g in failed)), **out)
        return out
