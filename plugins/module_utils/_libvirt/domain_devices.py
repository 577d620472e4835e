# -*- coding: utf-8 -*-
# Copyright: kvmops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a domain's XML says about the resources it needs from a host: its disks, network
interfaces, passed-through host devices, memory, CPU and tags. Pure (XML in, dicts out), for
whoever must check that another host can run the guest (migration, placement).

Private to the collection: no API promise.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt import domain_disks
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt import xml as lxml_util
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt.tags import TAG_NAMESPACE as TAGS_NAMESPACE

_UNITS = {'b': 1, 'bytes': 1, 'k': 1024, 'kib': 1024, 'kb': 1000, 'm': 1024 ** 2, 'mib': 1024 ** 2,
          'mb': 1000 ** 2, 'g': 1024 ** 3, 'gib': 1024 ** 3, 'gb': 1000 ** 3, 't': 1024 ** 4,
          'tib': 1024 ** 4, 'tb': 1000 ** 4}


def _bytes(element):
    """A libvirt memory element (<memory unit='KiB'>262144</memory>) in bytes (None if absent)."""
    if element is None or not (element.text or '').strip():
        return None
    unit = (element.get('unit') or 'KiB').lower()
    return int(element.text.strip()) * _UNITS.get(unit, 1024)


def disks(root):
    """The domain's disks: _libvirt/domain_disks.disks (the one reader)."""
    return domain_disks.disks(root)


def interfaces(root):
    """[{type, network, bridge, mac, model}] in XML order."""
    out = []
    for iface in root.findall('devices/interface'):
        source = iface.find('source')
        mac = iface.find('mac')
        model = iface.find('model')
        out.append({
            'type': iface.get('type'),
            'network': source.get('network') if source is not None else None,
            'bridge': source.get('bridge') if source is not None else None,
            'dev': source.get('dev') if source is not None else None,
            'mac': mac.get('address') if mac is not None else None,
            'model': model.get('type') if model is not None else None,
        })
    return out


def hostdevs(root):
    """Host devices passed through: ['pci 0000:01:00.0', 'usb 046d:c52b', ...]."""
    out = []
    for dev in root.findall('devices/hostdev'):
        kind = dev.get('type', '?')
        src = dev.find('source')
        what = ''
        if src is not None:
            addr = src.find('address')
            vendor, product = src.find('vendor'), src.find('product')
            if addr is not None and addr.get('domain') is not None:
                what = '%s:%s:%s.%s' % tuple((addr.get(k) or '0').replace('0x', '')
                                             for k in ('domain', 'bus', 'slot', 'function'))
            elif vendor is not None and product is not None:
                what = '%s:%s' % (vendor.get('id', '').replace('0x', ''), product.get('id', '').replace('0x', ''))
            elif addr is not None:
                what = 'bus %s device %s' % (addr.get('bus'), addr.get('device'))
        out.append(('%s %s' % (kind, what)).strip())
    # Physical-function NICs handed over whole are host devices too.
    for iface in root.findall('devices/interface'):
        if iface.get('type') == 'hostdev':
            out.append('interface hostdev %s' % ((iface.find('mac') is not None and iface.find('mac').get('address')) or ''))
    return out


def cpu(root):
    """{mode, model, xml}: the guest's <cpu> (mode None and xml None when it has none)."""
    element = root.find('cpu')
    if element is None:
        return {'mode': None, 'model': None, 'xml': None}
    model = element.find('model')
    return {'mode': element.get('mode', 'custom'),
            'model': model.text.strip() if model is not None and model.text else None,
            'xml': lxml_util.to_string(element, pretty=False)}


def tags(root, namespace=TAGS_NAMESPACE):
    """The tags kept in the domain's metadata under namespace (<tags><tag>web</tag></tags>)."""
    metadata = root.find('metadata')
    if metadata is None:
        return []
    out = []
    for element in metadata:
        if not isinstance(element.tag, str) or not element.tag.startswith('{%s}' % namespace):
            continue
        for t in element.iter():
            if isinstance(t.tag, str) and t.tag.split('}')[-1] == 'tag' and t.text and t.text.strip():
                out.append(t.text.strip())
    return out


def facts(xml):
    """Everything above from one domain XML document (string or bytes)."""
    root = lxml_util.parse(xml)
    os_type = root.find('os/type')
    memory = _bytes(root.find('currentMemory'))
    if memory is None:
        memory = _bytes(root.find('memory'))
    return {
        'name': root.findtext('name'),
        'uuid': root.findtext('uuid'),
        'domain_type': root.get('type'),
        'arch': os_type.get('arch') if os_type is not None else None,
        'machine': os_type.get('machine') if os_type is not None else None,
        'emulator': root.findtext('devices/emulator'),
        'memory_bytes': memory,
        'max_memory_bytes': _bytes(root.find('memory')),
        'disks': disks(root),
        'interfaces': interfaces(root),
        'hostdevs': hostdevs(root),
        'cpu': cpu(root),
        'tags': tags(root),
    }
