# -*- coding: utf-8 -*-
# Copyright: kvmops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Cloud-image guests for virt_install_domain: base image clones, the cloud-init seed, the
guest agent channel, passt port forwards and waiting until the guest is reachable.
Private to the collection: no API promise.

CloudDomainManager extends the install manager through the domain engine's seams:
plan_storage() fetches and verifies base images and builds the seed before the disks are
planned (check mode does neither: it plans them as "would create"), build_final_xml() adds
the agent channel and the passt NIC, ensure_updated() reports and rebuilds a changed seed
and reconciles the channel and the port forwards, and run() waits for wait_for at the end.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import hashlib
import os

from ansible_collections.kvmops.hypervisor.plugins.module_utils._domain import manager as dman
from ansible_collections.kvmops.hypervisor.plugins.module_utils._domain import storage as _storage
from ansible_collections.kvmops.hypervisor.plugins.module_utils._install import manager as dinst
from ansible_collections.kvmops.hypervisor.plugins.module_utils._cloud import base_image as _base
from ansible_collections.kvmops.hypervisor.plugins.module_utils._cloud import reach as _reach
from ansible_collections.kvmops.hypervisor.plugins.module_utils._cloud import seed as _seed
from ansible_collections.kvmops.hypervisor.plugins.module_utils._cloud import seed_store as _store
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt import xml as _xml
from ansible_collections.kvmops.hypervisor.plugins.module_utils._common.errors import KvmopsError
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt.connection import libvirt  # None without libvirt-python

AGENT_CHANNEL = 'org.qemu.guest_agent.0'
QEMU_NS = 'http://libvirt.org/schemas/domain/qemu/1.0'
FWD_NETDEV = 'kvmopsfwd0'


def agent_channel_element():
    el = _xml.etree.Element('channel', type='unix')
    _xml.etree.SubElement(el, 'target', type='virtio', name=AGENT_CHANNEL)
    return el


def passt_interface_element(forwards):
    el = _xml.etree.Element('interface', type='user')
    _xml.etree.SubElement(el, 'backend', type='passt')
    _xml.etree.SubElement(el, 'model', type='virtio')
    for f in forwards:
        pf = _xml.etree.SubElement(el, 'portForward', proto=f['proto'], address=f['address'])
        _xml.etree.SubElement(pf, 'range', start=str(f['host_port']), to=str(f['guest_port']))
    return el


def qemu_user_element(forwards, mac):
    """<qemu:commandline> with a QEMU user-mode (slirp) NIC and hostfwd rules: the
    port_forward_backend=qemu way for hosts whose libvirt has passt disabled (Debian 12)."""
    el = _xml.etree.Element('{%s}commandline' % QEMU_NS, nsmap={'qemu': QEMU_NS})
    rules = ','.join('hostfwd=%s:%s:%d-:%d' % (f['proto'], f['address'], f['host_port'],
                                               f['guest_port']) for f in forwards)
    # restrict=on: the guest reaches nothing through this NIC; only the forwards come in.
    for value in ('-netdev', 'user,id=%s,restrict=on,%s' % (FWD_NETDEV, rules), '-device',
                  # A fixed slot on the root bus: QEMU would otherwise take the first free one
                  # before libvirt's own devices (which carry explicit addresses) are added.
                  'virtio-net-pci,netdev=%s,mac=%s,addr=0x19' % (FWD_NETDEV, mac)):
        _xml.etree.SubElement(el, '{%s}arg' % QEMU_NS, value=value)
    return el


def _fwd_mac(name):
    h = hashlib.sha256(name.encode('utf-8')).digest()
    return '52:54:00:%02x:%02x:%02x' % (h[0], h[1], h[2])


def qemu_user_forwards(tree):
    out = []
    for cl in tree.findall('{%s}commandline' % QEMU_NS):
        for arg in cl.findall('{%s}arg' % QEMU_NS):
            value = arg.get('value') or ''
            if not value.startswith('user,id=%s,' % FWD_NETDEV):
                continue
            for part in value.split(','):
                if not part.startswith('hostfwd='):
                    continue
                proto, address, rest = part[len('hostfwd='):].split(':', 2)
                host_port, guest = rest.split('-', 1)
                out.append((proto, address, int(host_port), int(guest.split(':')[-1])))
    return sorted(out)


def _remove_qemu_user(tree):
    for cl in tree.findall('{%s}commandline' % QEMU_NS):
        if any((a.get('value') or '').startswith('user,id=%s,' % FWD_NETDEV)
               for a in cl.findall('{%s}arg' % QEMU_NS)):
            tree.remove(cl)


def _is_passt(el):
    backend = el.find('backend')
    return el.get('type') == 'user' and backend is not None and backend.get('type') == 'passt'


def passt_forwards(tree):
    """[(proto, address, host_port, guest_port)] of the domain's passt NICs."""
    out = []
    for el in tree.findall('./devices/interface'):
        if not _is_passt(el):
            continue
        for pf in el.findall('portForward'):
            for r in pf.findall('range'):
                out.append((pf.get('proto') or 'tcp', pf.get('address') or '',
                            int(r.get('start')), int(r.get('to') or r.get('start'))))
    return sorted(out)


def has_agent_channel(tree):
    for ch in tree.findall('./devices/channel'):
        t = ch.find('target')
        if t is not None and t.get('name') == AGENT_CHANNEL:
            return True
    return False


def current_forwards(tree, backend):
    return qemu_user_forwards(tree) if backend == 'qemu' else passt_forwards(tree)


def add_cloud_devices(tree, cloud, agent=True, forwards=True):
    """Add the agent channel and the forwarding NIC (passt: after the last NIC; qemu: a
    user-mode netdev on QEMU's command line) to a domain tree."""
    devices = tree.find('devices')
    if agent and cloud['guest_agent'] and not has_agent_channel(tree):
        devices.append(agent_channel_element())
    if forwards and cloud['port_forwards'] and cloud.get('port_forward_backend') == 'qemu':
        name = tree.findtext('name') or ''
        if tree.nsmap.get('qemu') != QEMU_NS:
            # lxml cannot add a namespace declaration to an existing root: rebuild it.
            new = _xml.etree.Element(tree.tag, attrib=dict(tree.attrib),
                                     nsmap=dict(tree.nsmap, qemu=QEMU_NS))
            new.extend(list(tree))
            tree = new
        tree.append(qemu_user_element(cloud['port_forwards'], _fwd_mac(name)))
    elif forwards and cloud['port_forwards']:
        el = passt_interface_element(cloud['port_forwards'])
        ifaces = devices.findall('interface')
        if ifaces:
            devices.insert(list(devices).index(ifaces[-1]) + 1, el)
        else:
            devices.append(el)
    return tree


def _sha(text):
    return hashlib.sha256((text or '').encode('utf-8')).hexdigest()[:16] if text is not None else None


class CloudDomainManager(dinst.InstallDomainManager):
    """InstallDomainManager plus cloud-image guests."""

    def __init__(self, conn, spec, cloud=None, openssl=None, **kwargs):
        super(CloudDomainManager, self).__init__(conn, spec, **kwargs)
        self.cloud = cloud or {'cloud_init': None, 'bases': [], 'guest_agent': False,
                               'port_forwards': [], 'wait_for': 'none'}
        self.openssl = openssl
        self.base_results = []
        self.seed_result = None
        self.reach = None
        self._seed_files = None
        self._seed_created_dir = False
        self._seed_previous = {}

    # ------------------------------------------------------------------ seed
    def _seed_index(self):
        iso = self.cloud.get('seed_iso')
        for i, d in enumerate(self.spec.get('disks') or []):
            if iso and d.get('path') == iso:
                return i
        return None

    def _prepare_seed(self):
        """Validate and render the seed (pure); compare with what is on disk."""
        ci = self.cloud.get('cloud_init')
        if not ci or self._seed_files is not None:
            return
        directory, iso = self.cloud['seed_directory'], self.cloud['seed_iso']
        existing = _store.read_existing(directory)
        try:
            files, warnings = _seed.build(ci, self.spec['name'], existing, openssl=self.openssl)
        except KvmopsError as exc:
            raise dman.DomainError(str(exc))
        for w in warnings:
            self.warn(w)
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
            import json
            self.seed_result['instance_id'] = json.loads(meta).get('instance-id')
        except ValueError:
            pass
        if self.seed_result['tool'] is None and self.seed_result['status'] != 'unchanged':
            raise dman.DomainError("No ISO writer on the hypervisor to build the cloud-init seed: "
                                   "install xorriso (package xorriso on Debian, Ubuntu, RHEL and "
                                   "Fedora).")

    def _write_seed(self):
        r = self.seed_result
        if not r or r['status'] == 'unchanged':
            return
        if self.check_mode:
            self.actions.append('would %s cloud-init seed %s' % (r['status'],
                                                                 self.cloud['seed_iso']))
            self.changed = True
            return
        directory = self.cloud['seed_directory']
        self._seed_created_dir = not os.path.isdir(directory)
        try:
            _store.write(directory, self.cloud['seed_iso'], self._seed_files,
                         runner=self.run_command)
        except KvmopsError as exc:
            raise dman.DomainError(str(exc))
        self.act('%s cloud-init seed %s' % ('built' if r['status'] == 'build' else 'rebuilt',
                                            self.cloud['seed_iso']))
        r['status'] = 'built' if r['status'] == 'build' else 'rebuilt'

    # ------------------------------------------------------------------ base images
    def _ensure_bases(self):
        """Fetch (or, in check mode, plan fetching) the base of every clone to be created."""
        self.base_results = []
        disks = self.spec.get('disks') or []
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
                                   check_mode=self.check_mode, full=True,
                                   validate_certs=b['validate_certs'], timeout=b['timeout'])
            except KvmopsError as exc:
                raise dman.DomainError('disks[%d].base_image: %s' % (b['index'], exc))
            if res['path'] != d.get('backing_store'):
                # a checksum file resolved the entry only now
                disks[b['index']] = dict(d, backing_store=res['path'])
            res['clone'] = d['path']
            res['clone_exists'] = False
            if res['fetched'] and not self.check_mode:
                self.act('fetched base image %s' % b['url'])
            elif res['fetched']:
                self.actions.append('would fetch base image %s' % b['url'])
            self.base_results.append(res)

    # ------------------------------------------------------------------ storage seam
    def plan_storage(self):
        if self.spec['state'] == 'absent':
            return super(CloudDomainManager, self).plan_storage()
        self._prepare_seed()
        self._ensure_bases()
        self._write_seed()
        disks = self.spec.get('disks') or []
        placeholders = {}
        seed_i = self._seed_index()
        if seed_i is not None and not os.path.isfile(disks[seed_i]['path']):
            placeholders[seed_i] = {'kind': 'file', 'action': 'create', 'format': 'raw',
                                    'size': None}
        for b in self.cloud['bases']:
            d = disks[b['index']]
            if not os.path.exists(d['path']) and not os.path.isfile(d.get('backing_store') or ''):
                placeholders[b['index']] = {'kind': 'file', 'action': 'create',
                                            'format': 'qcow2', 'size': d.get('size'),
                                            'backing_format': None}
        if not placeholders:
            return super(CloudDomainManager, self).plan_storage()
        # Check mode before the first fetch/build: plan these disks as "would create".
        real = [d for i, d in enumerate(disks) if i not in placeholders]
        try:
            real_plans = _storage.plan_disks(real, self.conn)
        except _storage.StorageError as exc:
            raise dman.DomainError(str(exc))
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
        self.plans = plans
        for msg in _storage.growth_warnings(plans):
            self.warn(msg)
        return plans

    # ------------------------------------------------------------------ definition
    def build_final_xml(self, values):
        xml = super(CloudDomainManager, self).build_final_xml(values)
        if not (self.cloud['guest_agent'] or self.cloud['port_forwards']):
            return xml
        tree = add_cloud_devices(_xml.parse(xml), self.cloud)
        return _xml.to_string(tree)

    def define(self, xml):
        try:
            return super(CloudDomainManager, self).define(xml)
        except dman.DomainError as exc:
            if "element 'backend'" in str(exc) and self.cloud['port_forwards']:
                raise dman.DomainError(
                    "%s. This libvirt cannot use passt for port_forwards (Debian 12 builds "
                    "libvirt with passt disabled); set port_forward_backend: qemu (QEMU's "
                    "user-mode network) instead." % exc)
            raise

    def ensure_created(self):
        try:
            super(CloudDomainManager, self).ensure_created()
        except dman.DomainError:
            # Nothing of this run stays behind: the seed of a guest that was not defined.
            if self._seed_created_dir and not self.check_mode:
                _store.remove(self.cloud['seed_directory'])
            raise

    def ensure_updated(self):
        spec = self.spec
        if (spec.get('networks') is not None and self.cloud['port_forwards']
                and self.cloud.get('port_forward_backend', 'passt') == 'passt'):
            # The passt NIC is ours: the engine's NIC comparison sees it as wanted.
            pseudo = {'type': 'user', 'source': None, 'mode': None, 'model': None,
                      'model_default': None, 'mac': None}
            self.spec = dict(spec, networks=list(spec['networks']) + [pseudo])
        try:
            super(CloudDomainManager, self).ensure_updated()
        finally:
            self.spec = spec
        r = self.seed_result
        if r and r['status'] in ('rebuilt', 'rebuild') and r['changed_files']:
            for name in r['changed_files']:
                before, after = self._seed_previous.get(name), r['files'].get(name)
                self.differences.append({'item': 'cloud_init.%s' % name,
                                         'before': 'sha256 %s' % before if before else None,
                                         'after': 'sha256 %s' % after if after else None})
            self.warn(
                "The cloud-init seed of %s changed (%s) and was %s. cloud-init reads it again "
                "only when the guest boots with a NEW instance-id (now %s): keep the instance_id "
                "and the running guest ignores the change (also after a reboot); change "
                "cloud_init.instance_id and the next boot runs cloud-init as on a new instance "
                "(users, keys, new SSH host keys, hostname)."
                % (self.spec['name'], ', '.join(r['changed_files']),
                   'rebuilt' if not self.check_mode else 'would be rebuilt', r['instance_id']))
        self._reconcile_devices()

    def _reconcile_devices(self):
        dom = self.dom
        if dom is None:
            return
        try:
            tree = _xml.parse(self.secure_xml(dom))
        except libvirt.libvirtError as exc:
            raise dman.DomainError('Cannot read the definition of %s: %s' % (self.spec['name'], exc))
        changed = []
        if self.cloud['guest_agent'] and not has_agent_channel(tree):
            changed.append({'item': 'guest_agent', 'before': False, 'after': True})
        want = sorted((f['proto'], f['address'], f['host_port'], f['guest_port'])
                      for f in self.cloud['port_forwards'])
        backend = self.cloud.get('port_forward_backend') or 'passt'
        have = sorted(set(passt_forwards(tree)) | set(qemu_user_forwards(tree)))
        if want != have and (want or have):
            changed.append({'item': 'port_forwards', 'before': have, 'after': want})
        if not changed:
            return
        if not self.cloud['guest_agent']:
            pass  # never removes a channel it was not asked about
        devices = tree.find('devices')
        if want != have:
            for el in devices.findall('interface'):
                if _is_passt(el):
                    devices.remove(el)
            _remove_qemu_user(tree)
        tree = add_cloud_devices(tree, self.cloud, forwards=want != have)
        self.differences.extend(changed)
        self.act('updated definition (%s)' % ', '.join(c['item'] for c in changed))
        if not self.check_mode:
            self.dom = self.define(_xml.to_string(tree))
        if dom.isActive():
            self.restart_required = True

    # ------------------------------------------------------------------ absent
    def ensure_absent(self):
        had = self.dom is not None
        super(CloudDomainManager, self).ensure_absent()
        ci = self.cloud.get('cloud_init')
        if had and ci and self.spec.get('remove_storage'):
            directory = self.cloud['seed_directory']
            if os.path.isdir(directory):
                if not self.check_mode:
                    _store.remove(directory)
                self.act('%sremoved cloud-init seed %s' % (
                    'would have ' if self.check_mode else '', directory))

    # ------------------------------------------------------------------ run / result
    def run(self):
        res = super(CloudDomainManager, self).run()
        if (self.cloud['wait_for'] != 'none' and self.spec['state'] == 'running'
                and self.dom is not None and not self.check_mode):
            try:
                self.reach = _reach.wait(self.conn, self.dom, self.cloud)
            except _reach.WaitError as exc:
                raise dman.DomainError(str(exc))
            res = self.result()
        return res

    def result(self):
        res = super(CloudDomainManager, self).result()
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
        return res
