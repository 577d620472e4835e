# -*- coding: utf-8 -*-
# Copyright: kvmops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The cloud-image feature of a guest: base image clones, the cloud-init seed, the guest
agent channel, port forwards and waiting until the guest is reachable (wait_for).

Private to the collection: no API promise. Imported only for a guest with a cloud option.

CloudFeature hooks into the guest manager's steps (_guest/features/__init__.py):
- plan: the seed is rendered and compared with the one on disk (pure); clones and a seed
  that are not there yet are planned as "would create" disks (placeholders);
- prepare: base images are fetched and verified (one fetch per base in a run: the shared
  lock), the seed ISO written (check mode reports both); the disks are planned again;
- final XML: the agent channel and the port-forward NIC (_cloud/devices.py);
- an existing domain: the passt NIC counts as wanted in the drift comparison; a changed
  seed is reported; the channel and the forwards are reconciled;
- a new domain that was not defined: the seed directory this run made is removed;
- finish: wait_for (_cloud/reach.py); absent with remove_storage: the seed goes too.
The libraries it uses: _cloud/base_image.py, seed.py, seed_store.py, devices.py, reach.py.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import hashlib
import json
import os

from ansible_collections.kvmops.hypervisor.plugins.module_utils._cloud import base_image as _base
from ansible_collections.kvmops.hypervisor.plugins.module_utils._cloud import devices as _devices
from ansible_collections.kvmops.hypervisor.plugins.module_utils._cloud import reach as _reach
from ansible_collections.kvmops.hypervisor.plugins.module_utils._cloud import seed as _seed
from ansible_collections.kvmops.hypervisor.plugins.module_utils._cloud import seed_store as _store
from ansible_collections.kvmops.hypervisor.plugins.module_utils._common.errors import KvmopsError
from ansible_collections.kvmops.hypervisor.plugins.module_utils._guest.features.base import Feature
from ansible_collections.kvmops.hypervisor.plugins.module_utils._guest.manager import DomainError
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt import addresses as _addr
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt import xml as lxml_util
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt.connection import libvirt  # None without libvirt-python


def _sha(text):
    return hashlib.sha256((text or '').encode('utf-8')).hexdigest()[:16] if text is not None else None


class CloudFeature(Feature):
    """A cloud-image guest (see the module docstring)."""

    name = 'cloud'

    def __init__(self, cloud, openssl=None):
        self.cloud = cloud
        self.openssl = openssl
        self.base_results = []
        self.seed_result = None
        self.reach = None
        self._seed_files = None
        self._seed_created_dir = False
        self._seed_previous = {}

    # ------------------------------------------------------------------ plan
    def placeholders(self, m):
        """The seed and the clones that prepare() makes, planned as "would create"."""
        disks = m.spec.get('disks') or []
        placeholders = {}
        seed_i = self._seed_index(m)
        if seed_i is not None and not os.path.isfile(disks[seed_i]['path']):
            placeholders[seed_i] = {'kind': 'file', 'action': 'create', 'format': 'raw',
                                    'size': None}
        for b in self.cloud['bases']:
            d = disks[b['index']]
            if not os.path.exists(d['path']) and not os.path.isfile(d.get('backing_store') or ''):
                placeholders[b['index']] = {'kind': 'file', 'action': 'create',
                                            'format': 'qcow2', 'size': d.get('size'),
                                            'backing_format': None}
        return placeholders

    def _seed_index(self, m):
        iso = self.cloud.get('seed_iso')
        for i, d in enumerate(m.spec.get('disks') or []):
            if iso and d.get('path') == iso:
                return i
        return None

    def plan(self, m):
        """Validate and render the seed (pure); compare with what is on disk."""
        ci = self.cloud.get('cloud_init')
        if not ci or self._seed_files is not None:
            return
        directory, iso = self.cloud['seed_directory'], self.cloud['seed_iso']
        existing = _store.read_existing(directory)
        try:
            files, warnings = _seed.build(ci, m.spec['name'], existing, openssl=self.openssl)
        except KvmopsError as exc:
            raise DomainError.rewrap(exc)
        for w in warnings:
            m.warn(w)
        self._seed_files = files
        changed = _seed.changed_files(files, existing)
        iso_ok = os.path.isfile(iso)
        self.seed_result = {
            'seed': iso, 'seed_dir': directory, 'instance_id': None,
            'files': dict((n, _sha(t)) for n, t in sorted(files.items())),
            'changed_files': changed if existing else [],
            'status': 'unchanged' if (not changed and iso_ok) else
            ('rebuild' if existing or iso_ok else 'build'),
            'tool': _store.iso_tool()[0],
        }
        self._seed_previous = dict((n, _sha(t)) for n, t in existing.items())
        meta = files.get('meta-data') or ''
        try:
            self.seed_result['instance_id'] = json.loads(meta).get('instance-id')
        except ValueError:
            pass
        if self.seed_result['tool'] is None and self.seed_result['status'] != 'unchanged':
            raise DomainError("No ISO writer on the hypervisor to build the cloud-init seed: "
                              "install xorriso (package xorriso on Debian, Ubuntu, RHEL and "
                              "Fedora).")

    # ------------------------------------------------------------------ prepare
    def prepare(self, m):
        with m.shared.locks(('base', b['cache_dir'], b['url'], b['checksum'])
                            for b in self.cloud['bases']):
            self._ensure_bases(m)
        self._write_seed(m)
        return True  # the clones and the seed may be there now: plan the disks again

    def _ensure_bases(self, m):
        """Fetch (or, in check mode, plan fetching) the base of every clone to be created."""
        self.base_results = []
        disks = m.spec.get('disks') or []
        for b in self.cloud['bases']:
            d = disks[b['index']]
            if os.path.exists(d['path']):
                # The clone exists: its backing file is whatever it was made from.
                self.base_results.append({'url': b['url'], 'path': b['path'], 'fetched': False,
                                          'clone': d['path'], 'clone_exists': True})
                continue
            try:
                # full: a cached base is re-hashed before a new clone is made from it
                res = _base.ensure(b['url'], b['checksum'], cache_dir=b['cache_dir'],
                                   check_mode=m.check_mode, full=True,
                                   validate_certs=b['validate_certs'], timeout=b['timeout'])
            except KvmopsError as exc:
                raise DomainError.rewrap(exc, 'disks[%d].base_image: %s' % (b['index'], exc))
            if res['path'] != d.get('backing_store'):
                # a checksum file resolved the entry only now
                disks[b['index']] = dict(d, backing_store=res['path'])
            res['clone'] = d['path']
            res['clone_exists'] = False
            if res['fetched'] and not m.check_mode:
                m.act('fetched base image %s' % b['url'])
            elif res['fetched']:
                m.actions.append('would fetch base image %s' % b['url'])
            self.base_results.append(res)

    def _write_seed(self, m):
        r = self.seed_result
        if not r or r['status'] == 'unchanged':
            return
        if m.check_mode:
            m.actions.append('would %s cloud-init seed %s' % (r['status'],
                                                              self.cloud['seed_iso']))
            m.changed = True
            return
        directory = self.cloud['seed_directory']
        self._seed_created_dir = not os.path.isdir(directory)
        try:
            _store.write(directory, self.cloud['seed_iso'], self._seed_files,
                         runner=m.run_command)
        except KvmopsError as exc:
            raise DomainError.rewrap(exc)
        m.act('%s cloud-init seed %s' % ('built' if r['status'] == 'build' else 'rebuilt',
                                         self.cloud['seed_iso']))
        r['status'] = 'built' if r['status'] == 'build' else 'rebuilt'

    # ------------------------------------------------------------------ a new domain
    def final_xml(self, m, xml):
        if not (self.cloud['guest_agent'] or self.cloud['port_forwards']):
            return xml
        tree = _devices.add_cloud_devices(lxml_util.parse(xml), self.cloud)
        return lxml_util.to_string(tree)

    def define_error(self, m, error):
        if "element 'backend'" in str(error) and self.cloud['port_forwards']:
            return DomainError.rewrap(
                error, "%s. This libvirt cannot use passt for port_forwards (Debian 12 builds "
                "libvirt with passt disabled); set port_forward_backend: qemu (QEMU's "
                "user-mode network) instead." % error)
        return None

    def create_failed(self, m):
        # Nothing of this run stays behind: the seed of a guest that was not defined.
        if self._seed_created_dir and not m.check_mode:
            _store.remove(self.cloud['seed_directory'])

    # ------------------------------------------------------------------ an existing domain
    def compare_spec(self, m, spec):
        if (spec.get('networks') is not None and self.cloud['port_forwards']
                and self.cloud.get('port_forward_backend', 'passt') == 'passt'):
            # The passt NIC is ours: the engine's NIC comparison sees it as wanted.
            pseudo = {'type': 'user', 'source': None, 'mode': None, 'model': None,
                      'model_default': None, 'mac': None}
            spec = dict(spec, networks=list(spec['networks']) + [pseudo])
        return spec

    def updated(self, m):
        r = self.seed_result
        if r and r['status'] in ('rebuilt', 'rebuild') and r['changed_files']:
            for name in r['changed_files']:
                before, after = self._seed_previous.get(name), r['files'].get(name)
                m.differences.append({'item': 'cloud_init.%s' % name,
                                      'before': 'sha256 %s' % before if before else None,
                                      'after': 'sha256 %s' % after if after else None})
            m.warn(
                "The cloud-init seed of %s changed (%s) and was %s. cloud-init reads it again "
                "only when the guest boots with a NEW instance-id (now %s): keep the instance_id "
                "and the running guest ignores the change (also after a reboot); change "
                "cloud_init.instance_id and the next boot runs cloud-init as on a new instance "
                "(users, keys, new SSH host keys, hostname)."
                % (m.spec['name'], ', '.join(r['changed_files']),
                   'rebuilt' if not m.check_mode else 'would be rebuilt', r['instance_id']))
        self._reconcile_devices(m)

    def _reconcile_devices(self, m):
        dom = m.dom
        if dom is None:
            return
        try:
            tree = lxml_util.parse(m.secure_xml(dom))
        except libvirt.libvirtError as exc:
            raise DomainError('Cannot read the definition of %s: %s' % (m.spec['name'], exc))
        changed = []
        if self.cloud['guest_agent'] and not _devices.has_agent_channel(tree):
            changed.append({'item': 'guest_agent', 'before': False, 'after': True})
        want = sorted((f['proto'], f['address'], f['host_port'], f['guest_port'])
                      for f in self.cloud['port_forwards'])
        have = sorted(set(_devices.passt_forwards(tree)) | set(_devices.qemu_user_forwards(tree)))
        if want != have and (want or have):
            changed.append({'item': 'port_forwards', 'before': have, 'after': want})
        if not changed:
            return
        # A channel it was not asked about is never removed.
        devices = tree.find('devices')
        if want != have:
            for el in devices.findall('interface'):
                if _devices.is_passt(el):
                    devices.remove(el)
            _devices.remove_qemu_user(tree)
        tree = _devices.add_cloud_devices(tree, self.cloud, forwards=want != have)
        m.differences.extend(changed)
        m.act('updated definition (%s)' % ', '.join(c['item'] for c in changed))
        if not m.check_mode:
            m.dom = m.define(lxml_util.to_string(tree))
        if dom.isActive():
            m.restart_required = True

    # ------------------------------------------------------------------ finish, absent
    def finish(self, m):
        if (self.cloud['wait_for'] != 'none' and m.spec['state'] == 'running'
                and m.dom is not None and not m.check_mode):
            try:
                self.reach = _reach.wait(m.conn, m.dom, self.cloud)
            except _reach.WaitError as exc:
                self.warn_rejected(m, exc.result.get('interfaces') or [])
                raise DomainError.rewrap(exc)
            self.warn_rejected(m, self.reach['interfaces'])

    @staticmethod
    def warn_rejected(m, entries):
        """A warning per address the guest (agent, ARP) gave that is not used (see
        _libvirt/addresses.py): a guest pointing the next play elsewhere is worth seeing."""
        for line in _addr.rejected_messages(entries):
            m.warn('%s: address %s dropped; it is not used as ansible_host.' % (m.spec['name'], line))

    def removed(self, m, had):
        ci = self.cloud.get('cloud_init')
        if had and ci and m.spec.get('remove_storage'):
            directory = self.cloud['seed_directory']
            if os.path.isdir(directory):
                if not m.check_mode:
                    _store.remove(directory)
                m.act('%sremoved cloud-init seed %s' % (
                    'would have ' if m.check_mode else '', directory))

    # ------------------------------------------------------------------ result
    def result(self, m, res):
        if self.seed_result is not None:
            res['cloud_init'] = dict(self.seed_result)
        if self.base_results:
            res['base_images'] = self.base_results
        res['guest_agent'] = bool(self.cloud['guest_agent'])
        if self.reach is not None:
            res.update(interfaces=self.reach['interfaces'],
                       ansible_host=self.reach['ansible_host'],
                       ansible_port=self.reach['ansible_port'],
                       ssh_banner=self.reach['ssh_banner'],
                       waited=self.reach['waited'])
            if self.reach['address_errors']:
                res['address_errors'] = self.reach['address_errors']
