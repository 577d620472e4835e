# -*- coding: utf-8 -*-
# Copyright: kvmops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""virt_snapshot's pure logic: options, which kind of snapshot a guest can take (and why),
the snapshot XML, and what libvirt's snapshot XML says.

Private to the collection: no API promise. Pure functions on lxml elements (no libvirt).
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import re

from ansible_collections.kvmops.hypervisor.plugins.module_utils._common.errors import KvmopsError
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt import xml as lxml_util

etree = lxml_util.etree

STATES = ('present', 'absent', 'reverted', 'listed')
KINDS = ('auto', 'internal', 'external')
QUIESCE = ('auto', 'required', 'skip')
REVERT_STATES = ('snapshot', 'running', 'paused')
AGENT_CHANNEL = 'org.qemu.guest_agent.0'
_NAME = re.compile(r'^[A-Za-z0-9][A-Za-z0-9_.+:-]*$')


def normalize(params):
    state = params.get('state') or 'present'
    if state not in STATES:
        raise KvmopsError('state=%r: choose one of %s.' % (state, ', '.join(STATES)))
    if not params.get('domain'):
        raise KvmopsError('domain is required: the guest whose snapshots are managed.')
    name = params.get('name')
    if state != 'listed':
        if not name:
            raise KvmopsError('name is required with state=%s.' % state)
        if not _NAME.match(name) or len(name) > 100:
            raise KvmopsError('name=%r: use letters, digits and "_.+:-" (it becomes part of '
                              'file names for external snapshots), at most 100 characters.' % name)
    spec = {'domain': params['domain'], 'name': name, 'state': state,
            'description': params.get('description'),
            'kind': params.get('kind') or 'auto', 'quiesce': params.get('quiesce') or 'auto',
            'external_dir': params.get('external_dir'), 'children': bool(params.get('children')),
            'revert_state': params.get('revert_state') or 'snapshot'}
    for key, choices in (('kind', KINDS), ('quiesce', QUIESCE), ('revert_state', REVERT_STATES)):
        if spec[key] not in choices:
            raise KvmopsError('%s=%r: choose one of %s.' % (key, spec[key], ', '.join(choices)))
    if spec['external_dir'] and not os.path.isabs(spec['external_dir']):
        raise KvmopsError('external_dir=%r must be an absolute path on the hypervisor.'
                          % spec['external_dir'])
    return spec


def snapshot_disks(domain_root):
    """[{'target', 'type', 'format', 'source'}] of the disks a snapshot covers (not CD-ROMs,
    floppies, read-only or shared disks)."""
    disks = []
    for disk in domain_root.findall('devices/disk'):
        if disk.get('device', 'disk') not in ('disk', 'lun'):
            continue
        if disk.find('readonly') is not None or disk.find('shareable') is not None:
            continue
        source = disk.find('source')
        driver = disk.find('driver')
        target = disk.find('target')
        path = None
        if source is not None:
            path = source.get('file') or source.get('dev')
        disks.append({'target': target.get('dev') if target is not None else None,
                      'type': disk.get('type', 'file'),
                      'format': driver.get('type', 'raw') if driver is not None else 'raw',
                      'source': path})
    return disks


def uses_pflash(domain_root):
    os_el = domain_root.find('os')
    if os_el is None:
        return False
    if os_el.get('firmware') == 'efi':
        return True
    loader = os_el.find('loader')
    return loader is not None and (loader.get('type') == 'pflash' or os_el.find('nvram') is not None)


def has_agent_channel(domain_root):
    for target in domain_root.findall('devices/channel/target'):
        if target.get('name') == AGENT_CHANNEL:
            return True
    return False


def decide_kind(requested, domain_root, external_snapshots=()):
    """(kind, reason): internal where every disk is qcow2 and the firmware is not UEFI
    (pflash); external disk-only otherwise, and also once the guest has external snapshots (its
    disks then are their overlays: internal snapshots there would not survive merging them
    back). Raises when an explicit internal is impossible."""
    disks = snapshot_disks(domain_root)
    if not disks:
        raise KvmopsError('The guest has no writable disk to snapshot.')
    obstacles = []
    if external_snapshots:
        obstacles.append('the guest already has external snapshots (%s) and runs on their overlays'
                         % ', '.join(external_snapshots))
    for d in disks:
        if d['format'] != 'qcow2':
            obstacles.append('disk %s is %s (internal snapshots live inside qcow2 images)'
                             % (d['target'], d['format']))
        elif d['type'] not in ('file', 'block', 'volume'):
            obstacles.append('disk %s is of type %s' % (d['target'], d['type']))
    if uses_pflash(domain_root):
        obstacles.append('the guest boots UEFI from pflash, which QEMU cannot snapshot internally')
    if requested == 'internal':
        if obstacles:
            raise KvmopsError('An internal snapshot is impossible for this guest: %s. Use '
                              'kind=external (or auto), or convert the disks to qcow2.'
                              % '; '.join(obstacles))
        return 'internal', 'kind=internal was asked for, and every disk is qcow2.'
    if requested == 'external':
        return 'external', 'kind=external was asked for.'
    if obstacles:
        return 'external', ('external disk-only snapshot, because an internal one is impossible: %s.'
                            % '; '.join(obstacles))
    return 'internal', 'internal snapshot: every disk is qcow2 and the firmware is not UEFI.'


def overlay_path(source, name, external_dir=None):
    """Where an external snapshot's overlay for the disk at source goes."""
    base = os.path.basename(source)
    stem = os.path.splitext(base)[0] if '.' in base else base
    return os.path.join(external_dir or os.path.dirname(source), '%s.%s.qcow2' % (stem, name))


def snapshot_xml(spec, kind, domain_root):
    """The <domainsnapshot> to create, and [overlay paths] for an external one."""
    root = etree.Element('domainsnapshot')
    etree.SubElement(root, 'name').text = spec['name']
    if spec.get('description'):
        etree.SubElement(root, 'description').text = spec['description']
    overlays = []
    if kind == 'external':
        covered = dict((d['target'], d) for d in snapshot_disks(domain_root))
        disks = etree.SubElement(root, 'disks')
        for disk in domain_root.findall('devices/disk'):
            target = disk.find('target')
            dev = target.get('dev') if target is not None else None
            if dev is None:
                continue
            el = etree.SubElement(disks, 'disk', name=dev)
            d = covered.get(dev)
            if d is None or not d['source']:
                el.set('snapshot', 'no')
                continue
            el.set('snapshot', 'external')
            path = overlay_path(d['source'], spec['name'], spec.get('external_dir'))
            if path in overlays:
                # two disks with one stem (a.img, a.qcow2; or external_dir): one overlay
                # each, never two disks writing one file
                stem, ext = os.path.splitext(path)
                path = '%s.%s%s' % (stem, dev, ext)
            etree.SubElement(el, 'driver', type='qcow2')
            etree.SubElement(el, 'source', file=path)
            overlays.append(path)
    return lxml_util.to_string(root), overlays


def snapshot_info(xml, current_name=None, children=0):
    """What a libvirt snapshot XML says, as the module reports it."""
    root = lxml_util.parse(xml)
    disks = []
    external = False
    for d in root.findall('disks/disk'):
        kind = d.get('snapshot') or 'internal'
        src = d.find('source')
        disks.append({'name': d.get('name'), 'snapshot': kind,
                      'file': src.get('file') if src is not None else None})
        external = external or kind == 'external'
    memory = root.find('memory')
    if memory is not None and memory.get('snapshot') == 'external':
        external = True
    created = root.findtext('creationTime')
    name = root.findtext('name')
    return {'name': name, 'description': root.findtext('description'),
            'state': root.findtext('state'), 'kind': 'external' if external else 'internal',
            'memory': bool(memory is not None and memory.get('snapshot') not in (None, 'no')),
            'parent': root.findtext('parent/name'),
            'created': int(created) if created and created.isdigit() else None,
            'current': name == current_name, 'children': children,
            'disks': disks}
