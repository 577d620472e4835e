# -*- coding: utf-8 -*-
# Copyright: kvmops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What kvmops records in a guest's definition about the storage it made (issue 26).

Private to the collection: no API promise.

A guest controls the bytes of its disks, so the format of an existing image is never read
from its header: it comes from the user (format:), from this record, or from the <driver
type> of the existing definition. remove_storage removes only what this record says kvmops
created for this guest (and what the user names). The record lives in the domain's
<metadata>, in a namespace of its own that libvirt keeps as it is:

  <metadata>
    <kvmops:guest xmlns:kvmops="https://kvmops.hypervisor/xmlns/guest/1">
      <kvmops:disk path="/var/lib/libvirt/images/web.qcow2" format="qcow2" created="yes"/>
      <kvmops:disk pool="default" volume="data.img" format="raw" created="yes"/>
    </kvmops:guest>
  </metadata>
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt import xml as lxml_util

NS = 'https://kvmops.hypervisor/xmlns/guest/1'
PREFIX = 'kvmops'


def _q(tag):
    return '{%s}%s' % (NS, tag)


def key(entry):
    """The record's key of a disk: its path, or pool/volume."""
    if entry.get('path'):
        return entry['path']
    if entry.get('pool') and entry.get('volume'):
        return '%s/%s' % (entry['pool'], entry['volume'])
    return None


def read(tree):
    """{key: {'format': ..., 'created': bool}} of the record in a domain tree (or XML)."""
    if tree is None:
        return {}
    if not hasattr(tree, 'find'):
        tree = lxml_util.parse(tree)
    out = {}
    meta = tree.find('metadata')
    if meta is None:
        return out
    for guest in meta.findall(_q('guest')):
        for d in guest.findall(_q('disk')):
            entry = {'path': d.get('path'), 'pool': d.get('pool'), 'volume': d.get('volume')}
            k = key(entry)
            if k:
                out[k] = {'format': d.get('format'), 'created': d.get('created') == 'yes'}
    return out


def definition_formats(tree):
    """{key: driver type} of the disks of an existing definition (what the admin declared)."""
    if tree is None:
        return {}
    if not hasattr(tree, 'find'):
        tree = lxml_util.parse(tree)
    out = {}
    devices = tree.find('devices')
    for el in devices.findall('disk') if devices is not None else []:
        src, driver = el.find('source'), el.find('driver')
        if src is None or driver is None or not driver.get('type'):
            continue
        k = key({'path': src.get('file') or src.get('dev'), 'pool': src.get('pool'),
                 'volume': src.get('volume')})
        if k:
            out[k] = driver.get('type')
    return out


def logs(tree):
    """The serial log files kvmops named for the guest (removed with remove_storage)."""
    if tree is None:
        return []
    if not hasattr(tree, 'find'):
        tree = lxml_util.parse(tree)
    meta = tree.find('metadata')
    if meta is None:
        return []
    return [el.get('path') for g in meta.findall(_q('guest')) for el in g.findall(_q('log'))
            if el.get('path')]


def with_disks(xml, plans, created, log_paths=()):
    """xml (a string) with the record of the plans' disks; created: keys of the images this
    run made; log_paths: the serial log files the guest writes. Earlier entries stay (an
    image once created by kvmops stays recorded)."""
    etree = lxml_util.etree
    tree = lxml_util.parse(xml)
    old = read(tree)
    old_logs = logs(tree)
    meta = tree.find('metadata')
    if meta is None:
        meta = etree.Element('metadata')
        name = tree.find('name')
        index = list(tree).index(name) + 1 if name is not None else 0
        for tag in ('uuid', 'genid', 'title', 'description'):
            el = tree.find(tag)
            if el is not None:
                index = max(index, list(tree).index(el) + 1)
        tree.insert(index, meta)
    for g in meta.findall(_q('guest')):
        meta.remove(g)
    guest = etree.SubElement(meta, _q('guest'), nsmap={PREFIX: NS})
    entries = {}
    for k, v in old.items():
        entries[k] = dict(v)
    for p in plans:
        if p.get('kind') == 'cdrom':
            continue
        k = key(p)
        if not k:
            continue
        e = entries.setdefault(k, {'format': None, 'created': False})
        e['format'] = p.get('format') or e['format']
        e['created'] = e['created'] or k in created
    for k in created:
        # an image a feature made outside the disk plans (a clone's copies and overlays)
        entries.setdefault(k, {'format': None, 'created': False})['created'] = True
    for k in sorted(entries):
        e = entries[k]
        attrs = {}
        if '/' in k and k.startswith('/'):
            attrs['path'] = k
        else:
            attrs['pool'], attrs['volume'] = k.split('/', 1)
        if e.get('format'):
            attrs['format'] = e['format']
        attrs['created'] = 'yes' if e.get('created') else 'no'
        etree.SubElement(guest, _q('disk'), **attrs)
    for path in sorted(set(old_logs) | set(p for p in log_paths if p)):
        etree.SubElement(guest, _q('log'), path=path)
    return lxml_util.to_string(tree)
