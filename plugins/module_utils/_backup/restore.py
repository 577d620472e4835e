# -*- coding: utf-8 -*-
# Copyright: kvmops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""virt_backup_restore's logic: a point of a chain (the full backup and the incrementals up to
it) rebuilt with qemu-img into images, into a new guest (new name, UUID and MACs) or over a
shut-off guest's own disks (only with force; never under a running guest), and verify: every
file's sha256 against the manifest, qemu-img check, and a rebuild in a scratch directory.

Private to the collection: no API promise. Independent of AnsibleModule.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import shutil
import tempfile

from ansible_collections.kvmops.hypervisor.plugins.module_utils._common.argspec import DEFAULT_URI
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt import locality
from ansible_collections.kvmops.hypervisor.plugins.module_utils._common.errors import KvmopsError
from ansible_collections.kvmops.hypervisor.plugins.module_utils._common.manager import ManagerBase
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt import constants as C
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt import domain_disks
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt import xml as lxml_util
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt.connection import libvirt  # None without libvirt-python
from ansible_collections.kvmops.hypervisor.plugins.module_utils._backup import plan
from ansible_collections.kvmops.hypervisor.plugins.module_utils._backup import repo

ACTIONS = ('verify', 'images', 'guest', 'in_place')
FORMATS = ('qcow2', 'raw')
TMP_SUFFIX = '.kvmops-restore.tmp'
UNIX_PATH_MAX = 107     # sun_path is 108 bytes with its terminating NUL


def normalize(params):
    spec = {
        'repository': plan.check_repository(params.get('repository')),
        'domain': plan.check_guest_name(params.get('domain')),
        'chain': params.get('chain'),
        'point': params.get('point'),
        'action': params.get('action') or 'verify',
        'dest_dir': params.get('dest_dir'),
        'name': params.get('name'),
        'format': params.get('format') or 'qcow2',
        'force': bool(params.get('force')),
        'scratch_dir': params.get('scratch_dir'),
        'start': bool(params.get('start')),
    }
    if spec['action'] not in ACTIONS:
        raise KvmopsError('action=%r: choose one of %s.' % (spec['action'], ', '.join(ACTIONS)))
    if spec['action'] != 'verify':
        locality.require_local(params.get('uri', DEFAULT_URI), [
            ('action=%s' % spec['action'], 'reads the repository and writes the restored images')])
    if spec['format'] not in FORMATS:
        raise KvmopsError('format=%r: choose qcow2 or raw.' % spec['format'])
    if spec['chain'] is not None and not plan.is_chain_dir(spec['chain']):
        raise KvmopsError('chain=%r is not a chain name (like 20261207T021500Z): list the '
                          'repository directory of the guest.' % spec['chain'])
    if spec['action'] in ('images', 'guest'):
        if not spec['dest_dir'] or not os.path.isabs(spec['dest_dir']):
            raise KvmopsError('action=%s needs dest_dir: an absolute directory on the hypervisor for '
                              'the restored images.' % spec['action'])
    if spec['action'] == 'guest':
        plan.check_guest_name(spec['name'], 'name')
        if spec['name'] == spec['domain']:
            raise KvmopsError('name=%s is the backed-up guest itself: a restored guest gets a new '
                              'name (or use action=in_place with force).' % spec['name'])
    for key in ('dest_dir', 'scratch_dir'):
        if spec[key] and not os.path.isabs(spec[key]):
            raise KvmopsError('%s=%r must be an absolute path.' % (key, spec[key]))
    return spec


def select(gdir, chain=None, point=None):
    """(chain id, chain path, manifest, point entry) of the point asked for (default: the newest
    chain's last point)."""
    chains = repo.chains(gdir)
    if not chains:
        raise KvmopsError('There is no backup in %s: check repository and domain.' % gdir)
    if chain is None:
        cid, manifest = chains[-1]
    else:
        found = [c for c in chains if c[0] == chain]
        if not found:
            raise KvmopsError('There is no chain %s in %s (chains: %s).' % (
                chain, gdir, ', '.join(c[0] for c in chains)))
        cid, manifest = found[0]
    if manifest is None:
        raise KvmopsError('The manifest of chain %s in %s is unreadable: that chain cannot be '
                          'restored; choose another with chain.' % (cid, gdir))
    points = manifest['points']
    index = len(points) - 1 if point is None else point
    if index < 0 or index >= len(points):
        raise KvmopsError('Chain %s has points 0 to %d; point=%s is not one of them.' % (
            cid, len(points) - 1, point))
    return cid, os.path.join(gdir, cid), manifest, points[index]


def check_files(chain_path, manifest, upto):
    """Problems with the files of points 0..upto: missing, wrong size, wrong sha256."""
    problems = []
    for p in manifest['points'][:upto + 1]:
        entries = [(p['disks'][t]['file'], p['disks'][t]) for t in sorted(p['disks'])]
        entries += sorted((p.get('files') or {}).items())
        for fname, meta in entries:
            path = os.path.join(chain_path, p['dir'], fname)
            if not os.path.isfile(path):
                problems.append('%s is missing' % path)
                continue
            if os.path.getsize(path) != meta['size']:
                problems.append('%s has %d bytes, the manifest says %d' % (path, os.path.getsize(path), meta['size']))
                continue
            if repo.sha256_file(path) != meta['sha256']:
                problems.append('%s does not match its sha256 in the manifest' % path)
    return problems


def point_file(chain_path, point, target):
    return os.path.join(chain_path, point['dir'], point['disks'][target]['file'])


def rebuild(chain_path, point, target, dest, fmt):
    """One disk of a point into dest (through a temporary file beside it; dest must not exist)."""
    tmp = dest + TMP_SUFFIX
    if os.path.lexists(tmp):
        os.unlink(tmp)
    try:
        repo.convert(point_file(chain_path, point, target), tmp, fmt)
        os.rename(tmp, dest)
    except BaseException:
        if os.path.lexists(tmp):
            os.unlink(tmp)
        raise


def new_guest_xml(domain_xml, name, disk_paths, fmt, dest_dir, nvram=None):
    """The backed-up domain XML as a new guest: new name, no UUID (libvirt makes one), no MAC
    addresses (libvirt makes new ones), the restored disks, the NVRAM copy, and its own serial
    log files and sockets in dest_dir (the two guests never share them)."""
    root = lxml_util.parse(domain_xml)
    root.find('name').text = name
    for tag in ('uuid',):
        node = root.find(tag)
        if node is not None:
            root.remove(node)
    desc = root.find('description')
    if desc is None:
        desc = lxml_util.etree.Element('description')
        root.find('name').addnext(desc)
    desc.text = 'Restored by kvmops.hypervisor.virt_backup_restore'
    for iface in root.findall('devices/interface'):
        mac = iface.find('mac')
        if mac is not None:
            iface.remove(mac)
    for disk in root.findall('devices/disk'):
        target = disk.find('target')
        if target is None or target.get('dev') not in disk_paths:
            continue
        disk.set('type', 'file')
        source = disk.find('source')
        for attr in list(source.attrib):
            del source.attrib[attr]
        for child in list(source):
            source.remove(child)
        source.set('file', disk_paths[target.get('dev')])
        driver = disk.find('driver')
        if driver is None:
            driver = lxml_util.etree.SubElement(disk, 'driver', name='qemu')
        driver.set('type', fmt)
        backing = disk.find('backingStore')
        if backing is not None:
            disk.remove(backing)
    moved = {}   # old path -> new path: a console and its serial port keep sharing one log
    for dev in list(root.find('devices')):
        if dev.tag not in ('serial', 'console', 'channel', 'parallel'):
            continue
        source = dev.find('source')
        if source is None or not source.get('path'):
            continue
        if dev.get('type') == 'file' or (dev.get('type') == 'unix' and source.get('mode') == 'bind'):
            old = source.get('path')
            if old not in moved:
                ext = 'log' if dev.get('type') == 'file' else 'sock'
                moved[old] = os.path.join(dest_dir, '%s-%s%d.%s' % (name, dev.tag, len(moved) + 1, ext))
            source.set('path', moved[old])
    nv = root.find('os/nvram')
    if nv is not None:
        if nvram:
            nv.text = nvram
        else:
            nv.getparent().remove(nv)
    return lxml_util.to_string(root)


def socket_paths(xml):
    root = lxml_util.parse(xml)
    return [src.get('path') for src in root.findall('devices/*/source')
            if src.getparent().get('type') == 'unix' and src.get('path')]


class RestoreManager(ManagerBase):
    def __init__(self, conn, spec, check_mode=False, diff_mode=False, warn=None):
        super(RestoreManager, self).__init__(check_mode=check_mode, diff_mode=diff_mode, warn=warn)
        self.conn = conn
        self.spec = spec
        self.fields = {}

    def fail(self, msg):
        raise KvmopsError(msg, changed=self.changed, actions=list(self.actions), **self.fields)

    def run(self):
        s = self.spec
        gdir = repo.guest_dir(s['repository'], s['domain'])
        try:
            cid, cpath, manifest, point = select(gdir, s['chain'], s['point'])
        except KvmopsError as exc:
            self.fail(exc.msg)
        self.fields.update(domain=s['domain'], chain=cid, point=point['index'], level=point['level'],
                           taken=point['finished'], disks=sorted(point['disks']))
        getattr(self, 'do_' + s['action'])(cpath, manifest, point)
        return self.result(**self.fields)

    def rebuild_all(self, cpath, point, dest_for, fmt):
        done = {}
        for target in sorted(point['disks']):
            dest = dest_for(target)
            rebuild(cpath, point, target, dest, fmt)
            done[target] = dest
        return done

    # -- verify ----------------------------------------------------------------------------
    def do_verify(self, cpath, manifest, point):
        problems = check_files(cpath, manifest, point['index'])
        checked = []
        if not problems:
            for p in manifest['points'][:point['index'] + 1]:
                for target in sorted(p['disks']):
                    path = point_file(cpath, p, target)
                    try:
                        repo.check_image(path)
                        checked.append(path)
                    except KvmopsError as exc:
                        problems.append(exc.msg)
        rebuilt = {}
        if not problems:
            base = self.spec['scratch_dir'] or cpath
            scratch = tempfile.mkdtemp(prefix='.kvmops-verify-', dir=base)
            try:
                for target in sorted(point['disks']):
                    dest = os.path.join(scratch, '%s.raw' % target)
                    try:
                        rebuild(cpath, point, target, dest, 'raw')
                    except KvmopsError as exc:
                        problems.append(exc.msg)
                        continue
                    size = os.path.getsize(dest)
                    want = point['disks'][target]['virtual_size']
                    if size != want:
                        problems.append('disk %s rebuilt to %d bytes, the manifest says %d' % (target, size, want))
                    rebuilt[target] = {'size': size, 'sha256': repo.sha256_file(dest)}
            finally:
                shutil.rmtree(scratch, ignore_errors=True)
        self.fields.update(verified=not problems, problems=problems, rebuilt=rebuilt,
                           files_checked=len(checked))
        if problems:
            self.fail('Verify of %s chain %s point %d failed: %s. That point cannot be trusted; an '
                      'earlier chain (chain=...) or a new full backup (level=full) is the way out.'
                      % (self.spec['domain'], self.fields['chain'], point['index'], '; '.join(problems)))

    # -- images ----------------------------------------------------------------------------
    def dest_images(self, point):
        s = self.spec
        return dict((t, os.path.join(s['dest_dir'], '%s-%s.%s' % (s['name'] or s['domain'], t, s['format'])))
                    for t in sorted(point['disks']))

    def check_dests(self, dests):
        if not os.path.isdir(self.spec['dest_dir']):
            self.fail('dest_dir %s does not exist: create it first.' % self.spec['dest_dir'])
        clash = [p for p in dests.values() if os.path.lexists(p)]
        if clash:
            self.fail('%s exist: a restore never overwrites an image. Remove them or choose another '
                      'dest_dir.' % ', '.join(clash))

    def do_images(self, cpath, manifest, point):
        dests = self.dest_images(point)
        self.fields['images'] = dests
        self.check_dests(dests)
        self.act('rebuild %s point %d of chain %s into %s' % (
            self.spec['domain'], point['index'], self.fields['chain'], ', '.join(sorted(dests.values()))))
        if self.check_mode:
            return
        self.rebuild_all(cpath, point, lambda t: dests[t], self.spec['format'])

    # -- a new guest -------------------------------------------------------------------------
    def do_guest(self, cpath, manifest, point):
        s = self.spec
        try:
            self.conn.lookupByName(s['name'])
            self.fail('A guest named %s exists: a restore never replaces a guest. Choose another name, '
                      'or use action=in_place (with force) for that guest\'s own disks.' % s['name'])
        except libvirt.libvirtError:
            pass
        dests = self.dest_images(point)
        self.fields['images'] = dests
        self.check_dests(dests)
        nvram_src = os.path.join(cpath, point['dir'], 'nvram.fd')
        nvram = os.path.join(s['dest_dir'], '%s_VARS.fd' % s['name']) if os.path.exists(nvram_src) else None
        if nvram and os.path.lexists(nvram):
            self.fail('%s exists: a restore never overwrites it.' % nvram)
        with open(os.path.join(cpath, point['dir'], 'domain.xml')) as f:
            xml = new_guest_xml(f.read(), s['name'], dests, s['format'], s['dest_dir'], nvram)
        for path in socket_paths(xml):
            if len(path.encode('utf-8')) > UNIX_PATH_MAX:
                self.fail('The new guest\'s socket %s would be longer than a UNIX socket path may be '
                          '(%d bytes): QEMU could not start it. Choose a shorter dest_dir or name.'
                          % (path, UNIX_PATH_MAX))
        self.fields['name'] = s['name']
        self.act('define guest %s from %s point %d of chain %s (new UUID and MAC addresses)%s' % (
            s['name'], s['domain'], point['index'], self.fields['chain'], ' and start it' if s['start'] else ''))
        if self.check_mode:
            return
        made = []
        try:
            made = list(self.rebuild_all(cpath, point, lambda t: dests[t], s['format']).values())
            if nvram:
                shutil.copyfile(nvram_src, nvram)
                made.append(nvram)
            dom = self.conn.defineXML(xml)
        except BaseException:
            for p in made:
                if os.path.exists(p):
                    os.unlink(p)
            raise
        self.fields['uuid'] = dom.UUIDString()
        if s['start']:
            dom.create()

    # -- over the guest's own disks ------------------------------------------------------------
    def do_in_place(self, cpath, manifest, point):
        s = self.spec
        try:
            dom = self.conn.lookupByName(s['domain'])
        except libvirt.libvirtError:
            self.fail('There is no guest %s to restore in place: use action=guest to define a new one.' % s['domain'])
        if dom.isActive():
            self.fail('%s is running: a restore never replaces the disks of a running guest. Shut it '
                      'down first (virsh shutdown %s).' % (s['domain'], s['domain']))
        if not s['force']:
            self.fail('action=in_place replaces the disks of %s with the backup (everything written '
                      'since is lost): set force=true to do it.' % s['domain'])
        root = lxml_util.parse(dom.XMLDesc(C.VIR_DOMAIN_XML_INACTIVE))
        current = dict((d['target'], d) for d in domain_disks.disks(root))
        plan_ = {}
        for target in sorted(point['disks']):
            d = current.get(target)
            if d is None or d['type'] != 'file' or not d['source']:
                self.fail('Disk %s of the backup is not a file disk of %s now: restore it with '
                          'action=images and attach it yourself.' % (target, s['domain']))
            plan_[target] = (d['source'], d['format'] or 'raw')
        self.fields['images'] = dict((t, v[0]) for t, v in plan_.items())
        self.act('replace the disks %s of %s with point %d of chain %s' % (
            ', '.join(sorted(plan_)), s['domain'], point['index'], self.fields['chain']))
        ours = [c for c in dom.listAllCheckpoints(0) if plan.is_our_checkpoint(c.getName())]
        if ours:
            self.act('drop the checkpoints %s (their bitmaps are not in the restored images; the next '
                     'backup is a full one)' % ', '.join(c.getName() for c in ours))
        if self.check_mode:
            return
        self.warn('The disks %s of %s were replaced with the backup of %s.' % (
            ', '.join(sorted(plan_)), s['domain'], self.fields['chain']))
        for target, (source, fmt) in sorted(plan_.items()):
            tmp = source + TMP_SUFFIX
            if os.path.lexists(tmp):
                os.unlink(tmp)
            try:
                repo.convert(point_file(cpath, point, target), tmp, fmt)
                st = os.stat(source) if os.path.exists(source) else None
                if st is not None:
                    os.chown(tmp, st.st_uid, st.st_gid)
                    os.chmod(tmp, st.st_mode & 0o7777)
                os.rename(tmp, source)
            except BaseException:
                if os.path.lexists(tmp):
                    os.unlink(tmp)
                raise
        for cp in sorted(ours, key=lambda c: c.getName(), reverse=True):
            cp.delete(C.VIR_DOMAIN_CHECKPOINT_DELETE_METADATA_ONLY)
