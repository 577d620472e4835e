# -*- coding: utf-8 -*-
# Copyright: kvmops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Clones and templates (issue 30): a guest made from another one (clone_from), and guests
marked as templates (template). Private to the collection: no API promise.

A clone is a new domain made from the persistent definition of a shut-off guest or a
template: a new name, a new UUID and new MAC addresses (libvirt generates both), every
writable disk copied

- full:   a real copy (cp --reflink=auto --sparse=always: a reflink where the file system
          can, sparse otherwise), or libvirt's volume clone for a disk in a pool;
- linked: a qcow2 overlay whose backing file is the template's image (the source must be
          a template: its images are read-only while it is one);

CD-ROMs, read-only and shareable disks are shared, not copied. The NVRAM file of a UEFI
guest is copied (the clone's own file); TPM state is never copied (swtpm keeps it per UUID:
the clone gets a new one at its first start). The image format of a source disk comes from
its definition (<driver type>), never from the image's header. Once defined, a clone is a
normal guest: idempotent by name, the drift rules apply.

With cloud_init the clone gets its own NoCloud seed (the cloud feature builds it, as for any
cloud-image guest); it replaces the source's kvmops seed device (seed_disks), the clone record
names its directory (removed with remove_storage), and its instance-id must differ from the
source's. clone_from.seal adds the first-boot seal to that seed's user-data (_cloud/seal.py
says what it covers); a Windows source is refused.

A template carries <kvmopstpl:template> in its metadata (with the modes its images had);
the collection never starts it, its writable images are mode 0444, and it cannot be
removed (or unmarked) while linked clones (<kvmopsclone:clone mode="linked"> naming its
UUID) use its images.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import os
import stat
import subprocess

from ansible_collections.kvmops.hypervisor.plugins.module_utils._cloud import devices as _devices
from ansible_collections.kvmops.hypervisor.plugins.module_utils._cloud import seal as _seal
from ansible_collections.kvmops.hypervisor.plugins.module_utils._cloud import seed as _seed
from ansible_collections.kvmops.hypervisor.plugins.module_utils._cloud import seed_store as _store
from ansible_collections.kvmops.hypervisor.plugins.module_utils._common.errors import KvmopsError
from ansible_collections.kvmops.hypervisor.plugins.module_utils._guest import builder as dxml
from ansible_collections.kvmops.hypervisor.plugins.module_utils._guest import record as _record
from ansible_collections.kvmops.hypervisor.plugins.module_utils._guest import space as _space
from ansible_collections.kvmops.hypervisor.plugins.module_utils._guest.device_defaults import (
    LIBOSINFO_NS)
from ansible_collections.kvmops.hypervisor.plugins.module_utils._guest.features.base import Feature
from ansible_collections.kvmops.hypervisor.plugins.module_utils._guest.manager import DomainError
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt import disk_targets
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt import xml as lxml_util
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt import tags as _tags
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt.connection import libvirt
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt.xml import etree

# The metadata namespaces, shared with the inventory plugin (_libvirt/tags.py).
TEMPLATE_NS = _tags.TEMPLATE_NAMESPACE
TEMPLATE_PREFIX = _tags.TEMPLATE_PREFIX
CLONE_NS = _tags.CLONE_NAMESPACE
CLONE_PREFIX = _tags.CLONE_PREFIX
MODES = ('full', 'linked')
TEMPLATE_MODE = 0o444
DISK_FORMATS = ('raw', 'qcow2')
# libvirt's numbers (python-libvirt names), repeated so the pure parts need no libvirt.
_METADATA_ELEMENT = 2
_AFFECT_CONFIG = 2
_XML_SECURE = 1
_XML_INACTIVE = 2
_SHUTOFF = 5


def normalize(params, spec):
    """clone_from and template into the spec (spec['clone_from'], spec['template']); raises
    DomainError for what cannot go together. Pure."""
    clone = params.get('clone_from')
    template = params.get('template')
    state = spec.get('state')
    if template and state == 'running':
        raise DomainError("template: true and state: running: the collection never starts a "
                          "template. Use state: stopped (or present) for the template and start "
                          "its clones (clone_from).")
    spec['template'] = template
    spec['clone_from'] = None
    if not clone or state == 'absent':
        return spec
    name = clone.get('name')
    if not name or not isinstance(name, str):
        raise DomainError("clone_from.name must be the name of a shut-off guest or template.")
    if name == spec['name']:
        raise DomainError("clone_from.name=%s is the guest itself; give the new guest another "
                          "name." % name)
    mode = clone.get('mode') or 'full'
    if mode not in MODES:
        raise DomainError("clone_from.mode=%r: use full or linked." % (mode,))
    for opt in ('disks', 'install'):
        if params.get(opt):
            raise DomainError("clone_from copies the disks and the install of %s: remove %s "
                              "(add disks to the clone in a later task)." % (name, opt))
    spec['clone_from'] = {'name': name, 'mode': mode, 'seal': bool(clone.get('seal'))}
    return spec


# ------------------------------------------------------------------ metadata
def _metadata(dom, ns):
    """The metadata element of that namespace, parsed, or None."""
    try:
        text = dom.metadata(_METADATA_ELEMENT, ns, _AFFECT_CONFIG)
    except libvirt.libvirtError:
        return None
    try:
        return lxml_util.parse(text)
    except Exception:  # pylint: disable=broad-except
        return None


def template_record(dom):
    """{path: original mode} of a template's images, or None for a domain that is not one."""
    el = _metadata(dom, TEMPLATE_NS)
    if el is None:
        return None
    out = {}
    for img in el.iter('image'):
        try:
            out[img.get('path')] = int(img.get('mode'), 8)
        except (TypeError, ValueError):
            out[img.get('path')] = 0o644
    return out


def clone_record(dom):
    """{'source', 'source_uuid', 'mode', 'seed'} of a domain made by clone_from, or None."""
    el = _metadata(dom, CLONE_NS)
    if el is None:
        return None
    return {'source': el.get('source'), 'source_uuid': el.get('source_uuid'),
            'mode': el.get('mode'), 'seed': el.get('seed')}


def linked_clones(conn, uuid):
    """Names of the domains that are linked clones of the domain with that UUID."""
    names = []
    for dom in conn.listAllDomains(0):
        rec = clone_record(dom)
        if rec and rec['mode'] == 'linked' and rec['source_uuid'] == uuid:
            names.append(dom.name())
    return sorted(names)


# ------------------------------------------------------------------ the source's disks
def writable_images(tree, conn=None):
    """Paths of a definition's writable disk images (what a template makes read-only)."""
    paths = []
    for disk in tree.iter('disk'):
        if disk.get('device', 'disk') != 'disk' or disk.find('readonly') is not None \
                or disk.find('shareable') is not None:
            continue
        src = disk.find('source')
        if src is None:
            continue
        if disk.get('type') == 'file' and src.get('file'):
            paths.append(src.get('file'))
        elif disk.get('type') == 'volume' and src.get('pool') and conn is not None:
            try:
                vol = conn.storagePoolLookupByName(src.get('pool')).storageVolLookupByName(
                    src.get('volume'))
                paths.append(vol.path())
            except libvirt.libvirtError:
                continue
    return paths


def seed_disks(tree):
    """The <disk> elements of a definition that are a kvmops cloud-init seed: read-only,
    a file named cidata.iso (_cloud/seed_store.py). A seed attached under another name is not
    recognised (it is shared like any read-only disk)."""
    out = []
    for disk in tree.iter('disk'):
        src = disk.find('source')
        if disk.find('readonly') is None or src is None or not src.get('file'):
            continue
        if os.path.basename(src.get('file')) == _store.ISO_NAME:
            out.append(disk)
    return out


def source_instance_ids(seed_paths):
    """The instance-ids in the meta-data beside the source's seed ISOs (what its image has
    seen), read from the seed directories kvmops wrote."""
    ids = set()
    for path in seed_paths:
        meta = _store.read_existing(os.path.dirname(path)).get('meta-data')
        try:
            ident = json.loads(meta or '').get('instance-id')
        except (ValueError, AttributeError):
            continue
        if ident:
            ids.add(ident)
    return ids


def os_id(tree):
    """The libosinfo id in a definition's metadata, or None."""
    for el in tree.iter('{%s}os' % LIBOSINFO_NS):
        return el.get('id')
    return None


def clone_name_for(path, source, name):
    """The clone's image name beside the source's: the source's name replaced by the clone's
    in the file name, else the clone's name put in front."""
    directory, base = os.path.split(path)
    if source and source in base:
        new = base.replace(source, name, 1)
    else:
        new = '%s-%s' % (name, base)
    return os.path.join(directory, new)


def plan_disks(tree, source, name, mode):
    """[{index, kind, action, ...}] for every disk of the source's definition: copy, link
    (a qcow2 overlay), volume-copy, volume-link or share. Pure; DomainError for a disk that
    cannot be cloned."""
    plans = []
    for i, disk in enumerate(tree.iter('disk')):
        kind = disk.get('type')
        src = disk.find('source')
        label = (src.get('file') or src.get('volume') or src.get('dev') or '?') \
            if src is not None else '(empty)'
        shared = (disk.get('device', 'disk') != 'disk' or disk.find('readonly') is not None
                  or disk.find('shareable') is not None or src is None)
        if shared:
            plans.append({'index': i, 'action': 'share', 'source': label})
            continue
        driver = disk.find('driver')
        fmt = driver.get('type') if driver is not None else None
        if fmt not in DISK_FORMATS:
            raise DomainError("disk %s of %s has %s in its definition; clone_from clones raw and "
                              "qcow2 disks whose format is in the definition (<driver type>), "
                              "never probed from the image. Set the format in %s's definition."
                              % (label, source, "no <driver type>" if fmt is None
                                 else "format %s" % fmt, source))
        if kind == 'file':
            path = src.get('file')
            plans.append({'index': i, 'kind': 'file', 'source': path, 'format': fmt,
                          'path': clone_name_for(path, source, name),
                          'action': 'copy' if mode == 'full' else 'link'})
        elif kind == 'volume' and src.get('pool'):
            vol = src.get('volume')
            plans.append({'index': i, 'kind': 'volume', 'source': '%s/%s' % (src.get('pool'), vol),
                          'pool': src.get('pool'), 'volume': vol, 'format': fmt,
                          'new_volume': os.path.basename(clone_name_for(vol, source, name)),
                          'action': 'volume-copy' if mode == 'full' else 'volume-link'})
        else:
            raise DomainError("disk %s of %s is a %s disk: clone_from copies file and pool-volume "
                              "disks. Copy that disk yourself, or mark it shareable or read-only "
                              "to share it." % (label, source, kind))
    return plans


NVRAM_DIR = '/var/lib/libvirt/qemu/nvram'   # libvirt's (qemu:///system) default


def nvram_plan(tree, source, name):
    """(source path, clone path, explicit) of a UEFI guest's NVRAM file, or None. With
    firmware autoselection (<os firmware='efi'>) libvirt keeps no path in the definition: the
    file is <nvram dir>/<name>_VARS.fd, and the clone's goes to its own default path."""
    os_el = tree.find('os')
    if os_el is None:
        return None
    nv = os_el.find('nvram')
    if nv is not None and (nv.text or '').strip():
        path = nv.text.strip()
        return path, os.path.join(os.path.dirname(path), '%s_VARS.fd' % name), True
    loader = os_el.find('loader')
    if os_el.get('firmware') == 'efi' or (loader is not None and loader.get('type') == 'pflash'):
        return (os.path.join(NVRAM_DIR, '%s_VARS.fd' % source),
                os.path.join(NVRAM_DIR, '%s_VARS.fd' % name), False)
    return None


def clone_definition(tree, spec, plans, nvram, source_name, source_uuid, mode, seed=None,
                     seed_dir=None, seed_copy=None, keep_forwards=False):
    """The clone's definition (an XML string) from the source's: new name, no UUID and no
    MACs (libvirt makes new ones), the copied disks, the NVRAM copy, the options that
    override the source's (memory, vcpus, networks, graphics, serial, kernel command line),
    the clone's own cloud-init seed (seed: its spec disk; it replaces the source's seed
    devices) or its copy of the source's (seed_copy: (source ISO, the clone's ISO)), no host
    port forwards of the source's (keep_forwards: the clone's own replace them later), no
    template mark, a clone record. Pure."""
    tree = etree.fromstring(etree.tostring(tree))
    tree.find('name').text = spec['name']
    for tag in ('uuid', 'title', 'description', 'genid'):
        for el in tree.findall(tag):
            tree.remove(el)
    disks = list(tree.iter('disk'))
    for p in plans:
        disk = disks[p['index']]
        if p['action'] == 'share':
            continue
        src = disk.find('source')
        if p['kind'] == 'file':
            src.set('file', p['path'])
        else:
            src.set('volume', p['new_volume'])
        for bs in disk.findall('backingStore'):
            disk.remove(bs)
        if p['action'] in ('link', 'volume-link'):
            disk.find('driver').set('type', 'qcow2')
    if seed is not None:
        _replace_seed(tree, seed)
    elif seed_copy is not None:
        for disk in seed_disks(tree):
            if disk.find('source').get('file') == seed_copy[0]:
                disk.find('source').set('file', seed_copy[1])
    if not keep_forwards:
        drop_forwards(tree)
    if nvram and nvram[2]:
        tree.find('os/nvram').text = nvram[1]
    devices = tree.find('devices')
    for iface in devices.findall('interface'):
        for mac in iface.findall('mac'):
            iface.remove(mac)
        for tgt in iface.findall('target'):
            iface.remove(tgt)
    if spec.get('memory_mib'):
        kib = str(int(spec['memory_mib']) * 1024)
        for tag in ('memory', 'currentMemory'):
            el = tree.find(tag)
            if el is None:
                el = etree.SubElement(tree, tag)
            el.text = kib
            el.set('unit', 'KiB')
    if spec.get('vcpus'):
        el = tree.find('vcpu')
        if el is None:
            el = etree.SubElement(tree, 'vcpu')
        el.text = str(spec['vcpus'])
        for attr in ('current',):
            if attr in el.attrib:
                del el.attrib[attr]
    if spec.get('networks') is not None:
        anchor = _first_index(devices, ('interface',))
        for iface in devices.findall('interface'):
            devices.remove(iface)
        for k, nic in enumerate(spec['networks']):
            devices.insert(anchor + k, dxml.interface_element(nic))
    if spec.get('graphics') is not None:
        anchor = _first_index(devices, ('graphics',))
        for g in devices.findall('graphics'):
            devices.remove(g)
        el = dxml.graphics_element(spec['graphics'])
        if el is not None:
            devices.insert(anchor, el)
    if spec.get('serial') is not None:
        anchor = _first_index(devices, ('serial', 'console'))
        for tag in ('serial', 'console'):
            for el in devices.findall(tag):
                devices.remove(el)
        for k, el in enumerate(dxml.serial_elements(spec['serial'])):
            devices.insert(anchor + k, el)
    else:
        for el in devices.findall('serial'):
            if el.get('type') == 'file':
                raise DomainError("%s logs its serial console to %s: give the clone its own "
                                  "serial (a log file path, or pty), or both would write there."
                                  % (source_name, el.find('source').get('path')))
    os_el = tree.find('os')
    for opt in ('kernel', 'initrd', 'cmdline'):
        if spec.get(opt):
            el = os_el.find(opt)
            if el is None:
                el = etree.SubElement(os_el, opt)
            el.text = spec[opt]
    meta = tree.find('metadata')
    if meta is None:
        meta = etree.SubElement(tree, 'metadata')
    for el in list(meta):
        # The source's record of what kvmops made for it (its images, its serial logs) is not
        # the clone's: remove_storage on the clone would delete the source's log files. The
        # clone's own record is written when it is defined (_guest/record.py).
        if el.tag in ('{%s}template' % TEMPLATE_NS, '{%s}clone' % CLONE_NS,
                      '{%s}guest' % _record.NS):
            meta.remove(el)
    rec = etree.SubElement(meta, '{%s}clone' % CLONE_NS, nsmap={CLONE_PREFIX: CLONE_NS})
    rec.set('source', source_name)
    rec.set('source_uuid', source_uuid)
    rec.set('mode', mode)
    if seed_dir:
        rec.set('seed', seed_dir)
    return lxml_util.to_string(tree)


def drop_forwards(tree):
    """The source's host port forwards out of a clone's definition (a host port is one
    guest's, like a MAC): the passt NIC stays without its <portForward> rules, the QEMU
    user-mode forwarding NIC (it exists only for them) goes. [(proto, address, host port,
    guest port)] dropped."""
    dropped = _devices.passt_forwards(tree) + _devices.qemu_user_forwards(tree)
    for el in tree.findall('./devices/interface'):
        if _devices.is_passt(el):
            for pf in el.findall('portForward'):
                el.remove(pf)
    _devices.remove_qemu_user(tree)
    return sorted(dropped)


def _replace_seed(tree, seed):
    """The source's seed devices out, the clone's seed (a read-only disk) in their place (or
    after the last disk), on a free target of its bus."""
    devices = tree.find('devices')
    old = seed_disks(tree)
    disks = devices.findall('disk')
    if old:
        index = list(devices).index(old[0])
    elif disks:
        index = list(devices).index(disks[-1]) + 1
    else:
        index = len(devices)
    for el in old:
        devices.remove(el)
    disk = dict(seed)
    disk.pop('target', None)
    disk_targets.assign_targets([disk], disk_targets.used_targets(devices))
    devices.insert(index, dxml.disk_element(disk))


def _first_index(parent, tags):
    for i, el in enumerate(parent):
        if el.tag in tags:
            return i
    return len(parent)


# ------------------------------------------------------------------ copies
def _run(m, argv):
    if m.run_command is not None:
        rc, out, err = m.run_command(argv)
    else:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        out, err = proc.communicate()
        rc = proc.returncode
        out, err = out.decode('utf-8', 'replace'), err.decode('utf-8', 'replace')
    if rc != 0:
        raise DomainError('%s failed (rc=%s): %s' % (argv[0], rc, (err or out).strip()))


def _writable_mode(path):
    return (stat.S_IMODE(os.stat(path).st_mode) | 0o200) & 0o666


def copy_file(m, source, dest):
    """A real copy, written under a temporary name and renamed: a reflink where the file
    system can, sparse otherwise. Never overwrites."""
    if os.path.lexists(dest):
        raise DomainError('%s exists already and no domain %s uses it: remove or rename it '
                          '(a clone never overwrites an image).' % (dest, m.spec['name']))
    tmp = '%s.kvmops-clone.%d' % (dest, os.getpid())
    try:
        _run(m, ['cp', '--reflink=auto', '--sparse=always', '--', source, tmp])
        os.chmod(tmp, _writable_mode(source))
        if os.path.lexists(dest):
            raise DomainError('%s appeared while it was being copied; nothing was '
                              'overwritten.' % dest)
        os.rename(tmp, dest)
    finally:
        if os.path.lexists(tmp):
            os.unlink(tmp)


def link_file(m, source, fmt, dest):
    """A qcow2 overlay on the source image (its format given, never probed)."""
    if os.path.lexists(dest):
        raise DomainError('%s exists already and no domain %s uses it: remove or rename it '
                          '(a clone never overwrites an image).' % (dest, m.spec['name']))
    qemu_img = m.qemu_img or 'qemu-img'
    tmp = '%s.kvmops-clone.%d' % (dest, os.getpid())
    try:
        _run(m, [qemu_img, 'create', '-q', '-f', 'qcow2', '-F', fmt, '-b', source, tmp])
        os.chmod(tmp, 0o644)
        os.rename(tmp, dest)
    finally:
        if os.path.lexists(tmp):
            os.unlink(tmp)


def _volume_xml(name, fmt, backing=None, backing_fmt=None, capacity=None):
    vol = etree.Element('volume')
    etree.SubElement(vol, 'name').text = name
    # allocation 0: a sparse copy (without it libvirt allocates a raw clone's whole capacity:
    # measured, a 64 MiB volume with 1 MiB of data became 64 MiB allocated; with it, 1 MiB)
    etree.SubElement(vol, 'allocation').text = '0'
    if capacity is not None:
        etree.SubElement(vol, 'capacity', unit='bytes').text = str(capacity)
    target = etree.SubElement(vol, 'target')
    etree.SubElement(target, 'format', type=fmt)
    if backing:
        bs = etree.SubElement(vol, 'backingStore')
        etree.SubElement(bs, 'path').text = backing
        etree.SubElement(bs, 'format', type=backing_fmt)
    return lxml_util.to_string(vol, pretty=False)


class CloneFeature(Feature):
    """clone_from (a new guest from another one) and template (mark, guard, unmark)."""

    name = 'clone'

    def __init__(self):
        self.plans = None          # the disks of a clone this run makes
        self.nvram = None
        self.source_xml = None
        self.source_uuid = None
        self.made = []             # ('file', path) / ('volume', pool, name) this run made
        self.copies = []           # what the copies write, per copy (_guest/space.py)
        self.is_template = False
        self.template_images = None
        self.marked = False
        self.seed = None           # the clone's own seed disk (spec disk), when cloud_init
        self.seed_dir = None
        self.source_seeds = []     # the source's seed ISOs (not the clone's)
        self.seed_copy = None      # (source seed dir, the clone's, source ISO, the clone's ISO)
        self.removing = None       # the clone record of a domain being removed

    # ---------------------------------------------------------------- plan
    def plan(self, m):
        spec = m.spec
        if m.dom is not None:
            self.template_images = template_record(m.dom)
            self.is_template = self.template_images is not None
            if self.is_template and spec['state'] == 'running' and spec.get('template') is not False:
                raise DomainError('%s is a template: the collection never starts it. Clone it '
                                  '(clone_from) and start the clone, or set template: false to '
                                  'make it a normal guest again.' % spec['name'])
            self.check_existing_seed(m)
            return
        clone = spec.get('clone_from')
        if not clone:
            return
        conn = m.conn
        try:
            src = conn.lookupByName(clone['name'])
        except libvirt.libvirtError:
            raise DomainError('clone_from.name=%s: no such domain on this hypervisor. Create or '
                              'install it first (or fix the name).' % clone['name'])
        if src.isActive():
            raise DomainError('clone_from.name=%s is %s: a clone is made from a shut-off guest '
                              'or a template. Shut it down first (state: stopped).'
                              % (clone['name'], 'paused' if src.state()[0] == 3 else 'running'))
        if clone['mode'] == 'linked' and template_record(src) is None:
            raise DomainError('clone_from.mode=linked needs a template: %s is not one (its images '
                              'would change under the clone). Mark it first (template: true on '
                              '%s), or use mode: full.' % (clone['name'], clone['name']))
        self.source_xml = src.XMLDesc(_XML_SECURE | _XML_INACTIVE)
        self.source_uuid = src.UUIDString()
        tree = lxml_util.parse(self.source_xml)
        self.plans = plan_disks(tree, clone['name'], spec['name'], clone['mode'])
        self.nvram = nvram_plan(tree, clone['name'], spec['name'])
        for p in self.plans:
            if p['action'] in ('copy', 'link') and os.path.lexists(p['path']):
                raise DomainError('%s exists already and no domain %s uses it: remove or rename '
                                  'it (a clone never overwrites an image).'
                                  % (p['path'], spec['name']))
        if self.nvram and os.path.lexists(self.nvram[1]):
            raise DomainError('the NVRAM file %s exists already and no domain %s uses it: remove '
                              'it (a clone never overwrites it).' % (self.nvram[1], spec['name']))
        self.plan_seed(m, tree)
        self.check_space(m)
        # The definition is built here too, so that check mode sees its errors.
        clone_definition(tree, spec, self.plans, self.nvram, clone['name'], self.source_uuid,
                         clone['mode'], self.seed, self.seed_dir, self._seed_isos(),
                         self._keep_forwards(m))

    def _seed_isos(self):
        return self.seed_copy[2:] if self.seed_copy else None

    @staticmethod
    def _keep_forwards(m):
        """Whether the clone has port forwards of its own (they replace the source's)."""
        cloud = m.feature('cloud')
        return bool(cloud is not None and cloud.cloud.get('port_forwards'))

    def check_existing_seed(self, m):
        """An existing clone given cloud_init (or seal) in its clone_from task must carry that
        seed: clone_from, its seed and its seal apply when the clone is made, and a seed built
        now would be attached to nothing."""
        cloud = m.feature('cloud')
        if not m.spec.get('clone_from') or cloud is None or not cloud.cloud.get('cloud_init'):
            return
        tree = lxml_util.parse(m.dom.XMLDesc(_XML_INACTIVE))
        if cloud.cloud['seed_iso'] in [d.find('source').get('file') for d in seed_disks(tree)]:
            return
        raise DomainError('%s exists without the cloud-init seed %s: clone_from with cloud_init '
                          '(or seal) gives a clone its seed only when it is made. Remove '
                          'cloud_init and clone_from.seal from the task, or remove %s '
                          '(state: absent) and run it again.'
                          % (m.spec['name'], cloud.cloud['seed_iso'], m.spec['name']))

    def plan_seed(self, m, tree):
        """The clone's own seed (cloud_init) and the seal's refusals and warnings."""
        clone = m.spec['clone_from']
        cloud = m.feature('cloud')
        ci = cloud.cloud.get('cloud_init') if cloud is not None else None
        self.source_seeds = [d.find('source').get('file') for d in seed_disks(tree)]
        if clone.get('seal'):
            ident = os_id(tree)
            if _seal.is_windows(ident):
                raise DomainError(_seal.windows_refusal(clone['name'], ident))
            if not ci:
                raise DomainError('clone_from.seal needs a cloud-init seed for the clone: give '
                                  'cloud_init (an empty dictionary will do).')
            if not self.source_seeds:
                m.warn('clone_from.seal: %s carries no kvmops cloud-init seed, so nothing says '
                       'its image has cloud-init. The seal runs through cloud-init at the '
                       "clone's first boot: an image without cloud-init (or with it disabled) "
                       'is NOT sealed (same machine-id and SSH host keys as %s).'
                       % (clone['name'], clone['name']))
        if not ci:
            self.plan_seed_copy(m)
        if not self._keep_forwards(m):
            dropped = drop_forwards(etree.fromstring(etree.tostring(tree)))
            if dropped:
                m.warn('%s forwards host ports %s: a host port is one guest\'s, so the clone %s '
                       'does not take them. Give the clone port_forwards of its own.'
                       % (clone['name'], ', '.join('%s:%s->%s/%s' % (f[1], f[2], f[3], f[0])
                                                   for f in dropped), m.spec['name']))
        if ci:
            self.seed_dir = cloud.cloud['seed_directory']
            for d in m.spec.get('disks') or []:
                if d.get('path') == cloud.cloud['seed_iso']:
                    self.seed = d
            if cloud.cloud['seed_iso'] in self.source_seeds:
                raise DomainError('cloud_init.seed_dir gives %s the seed %s of its source %s: '
                                  'a clone never shares its source\'s seed. Use the default '
                                  'seed_dir (one directory per guest name).'
                                  % (m.spec['name'], cloud.cloud['seed_iso'], clone['name']))
            self.check_instance_id(m, _seed.instance_id(ci, m.spec['name']))

    def plan_seed_copy(self, m):
        """A clone without cloud_init gets a copy of its source's kvmops seed (the same bytes,
        so the same instance-id: cloud-init runs nothing again) in its own seed directory:
        never the source's file, which goes when the source is removed with its storage. A
        seed kvmops did not write (another file name, another directory) stays shared."""
        source = m.spec['clone_from']['name']
        for iso in self.source_seeds:
            src_dir = os.path.dirname(iso)
            if not _store.is_seed_directory(src_dir, source):
                continue
            dest_dir = os.path.join(os.path.dirname(src_dir), m.spec['name'])
            if os.path.lexists(dest_dir):
                raise DomainError('The seed directory %s exists already and no domain %s uses '
                                  'it: remove or rename it (a clone never overwrites a seed).'
                                  % (dest_dir, m.spec['name']))
            self.seed_copy = (src_dir, dest_dir, iso, os.path.join(dest_dir, _store.ISO_NAME))
            self.seed_dir = dest_dir
            return

    def check_instance_id(self, m, mine):
        """A clone's seed must carry an instance-id its source's image has not seen: with the
        same one cloud-init ignores the seed (and the seal)."""
        if mine not in source_instance_ids(self.source_seeds):
            return
        msg = ("cloud_init of %s has the instance-id %s, the one %s's seed gives its image: "
               "cloud-init sees no new instance and ignores the clone's seed"
               % (m.spec['name'], mine, m.spec['clone_from']['name']))
        if m.spec['clone_from'].get('seal'):
            raise DomainError(msg + ', so the clone would not be sealed. Remove '
                              'cloud_init.instance_id (the default is iid-<name>) or give a '
                              'new one.')
        m.warn(msg + '. Remove cloud_init.instance_id or give a new one.')

    def check_space(self, m):
        """Free space for the copies (a full clone's images, the NVRAM) before any is made,
        in check mode too (_guest/space.py)."""
        try:
            self.copies = copies = _space.clone_copies(self.plans, self.nvram, m.conn)
            for msg in _space.check_copies(copies, m.conn):
                m.warn(msg)
        except _space.SpaceError as exc:
            raise DomainError.rewrap(exc)
        except (OSError, libvirt.libvirtError) as exc:
            raise DomainError('Cannot read the size of the images of %s or the free space '
                              'where the clone goes: %s. Restore or fix the image the '
                              "source's definition names, or the directory or pool."
                              % (m.spec['clone_from']['name'], exc))

    # ---------------------------------------------------------------- prepare
    def prepare(self, m):
        if not self.plans:
            return False
        for p in self.plans:
            if p['action'] == 'share':
                continue
            target = p.get('path') or '%s/%s' % (p['pool'], p['new_volume'])
            if p['action'] in ('copy', 'volume-copy'):
                verb, done, what = 'copy', 'copied', 'disk %s to %s' % (p['source'], target)
            else:
                verb, done, what = 'link', 'linked', 'disk %s on %s' % (target, p['source'])
            if m.check_mode:
                m.act('would %s %s' % (verb, what))
                continue
            self._make(m, p)
            m.act('%s %s' % (done, what))
        if self.nvram and os.path.exists(self.nvram[0]):
            if m.check_mode:
                m.act('would copy NVRAM %s to %s' % self.nvram[:2])
            else:
                copy_file(m, self.nvram[0], self.nvram[1])
                self.made.append(('file', self.nvram[1]))
                m.act('copied NVRAM %s to %s' % self.nvram[:2])
        if self.seed_copy:
            if m.check_mode:
                m.act('would copy cloud-init seed %s to %s' % self.seed_copy[:2])
            else:
                try:
                    _store.copy_seed(self.seed_copy[0], self.seed_copy[1])
                except KvmopsError as exc:
                    raise DomainError.rewrap(exc)
                self.made.append(('dir', self.seed_copy[1]))
                m.act('copied cloud-init seed %s to %s' % self.seed_copy[:2])
        return False

    def _make(self, m, p):
        try:
            if p['action'] == 'copy':
                copy_file(m, p['source'], p['path'])
                self.made.append(('file', p['path']))
            elif p['action'] == 'link':
                link_file(m, p['source'], p['format'], p['path'])
                self.made.append(('file', p['path']))
            else:
                pool = m.conn.storagePoolLookupByName(p['pool'])
                src = pool.storageVolLookupByName(p['volume'])
                if p['action'] == 'volume-copy':
                    xml = _volume_xml(p['new_volume'], p['format'])
                    pool.createXMLFrom(xml, src, 0)
                else:
                    xml = _volume_xml(p['new_volume'], 'qcow2', src.path(), p['format'],
                                      src.info()[1])
                    pool.createXML(xml, 0)
                self.made.append(('volume', p['pool'], p['new_volume']))
        except (OSError, libvirt.libvirtError) as exc:
            raise DomainError('Cannot clone disk %s of %s: %s' % (p['source'],
                                                                  m.spec['clone_from']['name'], exc))

    def create_failed(self, m):
        for item in reversed(self.made):
            try:
                if item[0] == 'file':
                    os.unlink(item[1])
                elif item[0] == 'dir':
                    _store.remove(item[1])
                else:
                    m.conn.storagePoolLookupByName(item[1]).storageVolLookupByName(
                        item[2]).delete(0)
            except (OSError, libvirt.libvirtError):
                m.warn('could not remove %s after the failed clone: remove it yourself.'
                       % '/'.join(item[1:]))
        self.made = []

    # ---------------------------------------------------------------- a new domain
    def created(self, m):
        """The clone's disk copies and overlays (not its NVRAM): recorded as made by kvmops."""
        nvram = self.nvram[1] if self.nvram else None
        return [item[1] if item[0] == 'file' else '%s/%s' % (item[1], item[2])
                for item in self.made
                if item[0] != 'dir' and not (item[0] == 'file' and item[1] == nvram)]

    def final_xml(self, m, xml):
        if self.plans is None:
            return xml
        clone = m.spec['clone_from']
        xml = clone_definition(lxml_util.parse(self.source_xml), m.spec, self.plans,
                               self.nvram, clone['name'], self.source_uuid, clone['mode'],
                               self.seed, self.seed_dir, self._seed_isos(),
                               self._keep_forwards(m))
        cloud = m.feature('cloud')
        if cloud is not None and cloud.cloud['port_forwards']:
            # The clone's port forwards replace the source's (the cloud feature adds them).
            tree = lxml_util.parse(xml)
            devices = tree.find('devices')
            for el in devices.findall('interface'):
                if _devices.is_passt(el):
                    devices.remove(el)
            _devices.remove_qemu_user(tree)
            xml = lxml_util.to_string(tree)
        return xml

    def compare_spec(self, m, spec):
        if spec.get('clone_from') and spec.get('disks') is not None:
            # An existing clone: its disks came from its source, spec['disks'] holds only its
            # seed (clone_from takes no disks). Not compared, as for any clone.
            spec = dict(spec, disks=None)
        return spec

    # ---------------------------------------------------------------- an existing domain
    def updated(self, m):
        if m.spec.get('template') is False and self.is_template:
            self.unmark(m)

    def finish(self, m):
        if m.spec.get('template'):
            self.mark(m)

    # ---------------------------------------------------------------- template
    def mark(self, m):
        """Record the template and make its writable images mode 0444 (idempotent)."""
        dom = m.dom
        if dom is None:                      # check mode, not defined yet
            m.act('would mark as template')
            return
        if dom.isActive():
            if m.check_mode:
                return  # the power step said it would shut it down
            raise DomainError('%s is running: a template is shut off. Use state: stopped.'
                              % m.spec['name'])
        tree = lxml_util.parse(dom.XMLDesc(_XML_INACTIVE))
        images = writable_images(tree, m.conn)
        known = dict(self.template_images or {})
        for path in images:
            if path not in known and os.path.exists(path):
                known[path] = stat.S_IMODE(os.stat(path).st_mode)
        if not self.is_template or set(known) != set(self.template_images or {}):
            if m.check_mode:
                m.act('would mark as template')
            else:
                rec = etree.Element('template')
                for path in sorted(known):
                    etree.SubElement(rec, 'image', path=path, mode='%04o' % known[path])
                dom.setMetadata(_METADATA_ELEMENT, lxml_util.to_string(rec, pretty=False),
                                TEMPLATE_PREFIX, TEMPLATE_NS, _AFFECT_CONFIG)
                m.act('marked as template')
            self.template_images = known
        self.is_template = True
        self.marked = True
        for path in images:
            if os.path.exists(path) and stat.S_IMODE(os.stat(path).st_mode) != TEMPLATE_MODE:
                if not m.check_mode:
                    os.chmod(path, TEMPLATE_MODE)
                m.act('%simage %s read-only (0444)' % ('would make ' if m.check_mode
                                                       else 'made ', path))

    def unmark(self, m):
        dom = m.dom
        users = linked_clones(m.conn, dom.UUIDString())
        if users:
            raise DomainError('%s stays a template: the linked clones %s use its images. Remove '
                              'them first (or keep template: true).'
                              % (m.spec['name'], ', '.join(users)))
        if not m.check_mode:
            for path, mode in sorted((self.template_images or {}).items()):
                if os.path.exists(path):
                    os.chmod(path, mode)
            dom.setMetadata(_METADATA_ELEMENT, None, None, TEMPLATE_NS, _AFFECT_CONFIG)
        m.act('%s template mark (images back to their modes)'
              % ('would remove the' if m.check_mode else 'removed the'))
        self.is_template = False

    # ---------------------------------------------------------------- absent
    def before_remove(self, m):
        if m.dom is None:
            return
        self.removing = clone_record(m.dom)
        users = linked_clones(m.conn, m.dom.UUIDString())
        if users:
            raise DomainError('%s cannot be removed: the linked clones %s use its images (qcow2 '
                              'overlays on them). Remove the clones first.'
                              % (m.spec['name'], ', '.join(users)))

    def removed(self, m, had):
        """remove_storage: the clone's own seed directory (its record names it) goes too."""
        seed_dir = (self.removing or {}).get('seed')
        if not (had and seed_dir and m.spec.get('remove_storage')):
            return
        cloud = m.feature('cloud')
        if cloud is not None and cloud.cloud.get('cloud_init') and \
                os.path.normpath(cloud.cloud['seed_directory']) == os.path.normpath(seed_dir):
            return  # the cloud feature removes it (cloud_init given with state: absent)
        if not _store.is_seed_directory(seed_dir, m.spec['name']):
            if os.path.lexists(seed_dir):
                m.warn('remove_storage kept %s: it is not the seed directory kvmops made for %s '
                       '(<seed_dir>/%s with only seed files). Remove it yourself.'
                       % (seed_dir, m.spec['name'], m.spec['name']))
            return
        if not m.check_mode:
            _store.remove(seed_dir)
        m.act('%sremoved cloud-init seed %s' % ('would have ' if m.check_mode else '', seed_dir))

    # ---------------------------------------------------------------- result
    def result(self, m, res):
        res['template'] = bool(self.is_template or self.marked)
        if self.plans is not None:
            clone = m.spec['clone_from']
            res['clone'] = {
                'source': clone['name'], 'source_uuid': self.source_uuid, 'mode': clone['mode'],
                'disks': [dict((k, v) for k, v in p.items() if k != 'index')
                          for p in self.plans],
                'nvram': self.nvram[1] if self.nvram else None,
                'seed': self.seed['path'] if self.seed else None,
                'seal': ({'method': _seal.METHOD, 'operations': list(_seal.OPERATIONS)}
                         if clone.get('seal') else None),
            }
        elif m.dom is not None:
            rec = clone_record(m.dom)
            if rec:
                res['clone'] = rec
