# -*- coding: utf-8 -*-
# Copyright: kvmops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Drift between the options and an existing domain, compared after libvirt's normalisation.

Private to the collection: no API promise. Pure (lxml only).

compare(spec, current_xml, host) starts from the domain's inactive XML as libvirt normalised
it and changes ONLY what an option that was given asks for. Everything libvirt generated
(uuid, MAC addresses, PCI addresses, controllers, emulator) stays as it is, so a re-run with
the same options finds no difference and never churns anything. It returns a Drift with the
list of differences, the merged tree to define, and a readable before/after of the affected
elements for diff mode.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import copy
import os

from ansible_collections.kvmops.hypervisor.plugins.module_utils._common.errors import KvmopsError
from ansible_collections.kvmops.hypervisor.plugins.module_utils._guest import builder as dxml
from ansible_collections.kvmops.hypervisor.plugins.module_utils._guest.spec import OS_FAMILIES
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt import graphics
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt import masking
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt import xml as lxml_util
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt.xml import etree

_UNIT_KIB = {'b': 1.0 / 1024, 'bytes': 1.0 / 1024, 'kb': 1000.0 / 1024, 'k': 1, 'kib': 1,
             'mb': 1000.0 * 1000 / 1024, 'm': 1024, 'mib': 1024, 'gb': 1000.0 ** 3 / 1024,
             'g': 1024 ** 2, 'gib': 1024 ** 2, 'tb': 1000.0 ** 4 / 1024, 't': 1024 ** 3,
             'tib': 1024 ** 3}
PASSWORD_MASK = masking.MASK


class DriftError(KvmopsError):
    """A difference that cannot be applied by redefining (e.g. another architecture). Caught
    by GuestManager.update, which re-wraps it as DomainError."""


class Drift(object):
    def __init__(self, current, merged):
        self.current = current
        self.merged = merged
        self.differences = []

    def add(self, item, before, after):
        self.differences.append({'item': item, 'before': before, 'after': after})

    @property
    def changed(self):
        return bool(self.differences)

    def merged_xml(self):
        return dxml.to_string(self.merged)

    def devices(self, tag):
        """The merged definition's <devices> and its children named tag, to compare and edit."""
        devices = self.merged.find('devices')
        return devices, devices.findall(tag)

    def diff(self):
        """{'before': ..., 'after': ...}: the affected elements only, passwords masked."""
        return diff_elements(self.current, self.merged)


def parse(xml):
    return lxml_util.parse(xml)


def memory_kib(el):
    if el is None or el.text is None:
        return None
    unit = (el.get('unit') or 'KiB').lower()
    return int(round(int(el.text) * _UNIT_KIB.get(unit, 1)))


def _serialise_children(parent):
    out = []
    if parent is None:
        return out
    for child in parent:
        if not isinstance(child.tag, str):
            continue
        out.append(lxml_util.to_string(masking.mask_element(child)))
    return out


def diff_elements(current, merged):
    """Readable before/after: the root-level and device elements that differ."""
    def pick(a, b):
        a_children = [x for x in a if isinstance(x.tag, str)]
        b_children = [x for x in b if isinstance(x.tag, str)]
        a_top = [s for c, s in zip(a_children, _serialise_children(a)) if c.tag != 'devices']
        b_set = set(s for c, s in zip(b_children, _serialise_children(b))
                    if c.tag != 'devices')
        only = [s for s in a_top if s not in b_set]
        a_dev = _serialise_children(a.find('devices'))
        b_dev = set(_serialise_children(b.find('devices')))
        only_dev = [s for s in a_dev if s not in b_dev]
        text = ''.join(only)
        if only_dev:
            lines = [line for s in only_dev for line in s.rstrip('\n').split('\n')]
            text += '<devices>\n' + ''.join('  %s\n' % line for line in lines) + '</devices>\n'
        return text
    name = current.findtext('name') or ''
    header = '<!-- domain %s: changed elements of the persistent definition -->\n' % name
    return {'before': header + pick(current, merged), 'after': header + pick(merged, current),
            'before_header': 'domain %s (inactive XML)' % name,
            'after_header': 'domain %s (inactive XML, updated)' % name}


def _canonical_machine(machine, host):
    aliases = host.get('machine_aliases') or {}
    return aliases.get(machine, machine)


def _disk_identity(el):
    src = el.find('source')
    if src is None:
        return None
    if src.get('file'):
        return ('file', os.path.normpath(src.get('file')))
    if src.get('dev'):
        return ('file', os.path.normpath(src.get('dev')))
    if src.get('pool'):
        return ('volume', src.get('pool'), src.get('volume'))
    return None


def disk_identity(d):
    if d.get('pool'):
        return ('volume', d['pool'], d['volume'])
    if d.get('path'):
        return ('file', d['path'])
    return None


def _compare_memory(spec, drift):
    if spec.get('memory_mib') is None:
        return
    root = drift.merged
    want = spec['memory_mib'] * 1024
    mem = root.find('memory')
    cur = root.find('currentMemory')
    have = memory_kib(mem)
    have_cur = memory_kib(cur)
    if have != want or (have_cur is not None and have_cur != want):
        drift.add('memory', '%s MiB' % (None if have is None else have // 1024),
                  '%s MiB' % spec['memory_mib'])
        for tag in ('memory', 'currentMemory'):
            el = root.find(tag)
            if el is None:
                el = etree.Element(tag)
                root.insert(2 if tag == 'memory' else 3, el)
            el.set('unit', 'KiB')
            el.text = str(want)


def _compare_vcpus(spec, drift):
    if spec.get('vcpus') is None:
        return
    el = drift.merged.find('vcpu')
    have = int(el.text) if el is not None and el.text else None
    have_current = el.get('current') if el is not None else None
    if have != spec['vcpus'] or (have_current and int(have_current) != spec['vcpus']):
        drift.add('vcpus', have, spec['vcpus'])
        if el is None:
            el = etree.SubElement(drift.merged, 'vcpu', placement='static')
        el.text = str(spec['vcpus'])
        if 'current' in el.attrib:
            del el.attrib['current']


def _compare_cpu(spec, drift):
    want = spec.get('cpu')
    if not want:
        return
    el = drift.merged.find('cpu')
    mode = el.get('mode', 'custom') if el is not None else None
    model = el.findtext('model') if el is not None else None
    if want in ('host-passthrough', 'host-model'):
        same = mode == want
        before = mode
    else:
        same = mode == 'custom' and model == want
        before = model if mode == 'custom' else mode
    if not same:
        drift.add('cpu', before, want)
        new = dxml.cpu_element(want)
        if el is None:
            os_el = drift.merged.find('os')
            drift.merged.insert(list(drift.merged).index(os_el) + 2 if os_el is not None else 0,
                                new)
        else:
            el.getparent().replace(el, new)


def _compare_os(spec, drift, host):
    root = drift.merged
    os_el = root.find('os')
    type_el = os_el.find('type')
    if spec.get('arch') and type_el.get('arch') != spec['arch']:
        raise DriftError("domain %s is %s, not arch=%s: the architecture of an existing domain "
                         "cannot be changed; remove it (state=absent) and create it again."
                         % (spec['name'], type_el.get('arch'), spec['arch']))
    if spec.get('machine'):
        have = type_el.get('machine')
        if _canonical_machine(have, host) != _canonical_machine(spec['machine'], host):
            drift.add('machine', have, spec['machine'])
            type_el.set('machine', spec['machine'])
    if spec.get('virt_type') in ('kvm', 'qemu') and root.get('type') != spec['virt_type']:
        drift.add('virt_type', root.get('type'), spec['virt_type'])
        root.set('type', spec['virt_type'])
    fw = spec.get('firmware')
    if fw:
        loader = os_el.find('loader')
        is_uefi = os_el.get('firmware') == 'efi' or (
            loader is not None and (loader.get('type') == 'pflash' or 'OVMF' in (loader.text or '')
                                    or 'edk2' in (loader.text or '')))
        if (fw == 'uefi') != is_uefi:
            drift.add('firmware', 'uefi' if is_uefi else 'bios', fw)
            if fw == 'uefi':
                os_el.set('firmware', 'efi')
            else:
                if 'firmware' in os_el.attrib:
                    del os_el.attrib['firmware']
                for tag in ('loader', 'nvram', 'firmware'):
                    for el in os_el.findall(tag):
                        os_el.remove(el)
    if spec.get('kernel'):
        for tag in ('kernel', 'initrd', 'cmdline'):
            want = spec.get(tag)
            el = os_el.find(tag)
            have = el.text if el is not None else None
            if (have or None) != (want or None):
                drift.add(tag, have, want)
                if want is None:
                    os_el.remove(el)
                else:
                    if el is None:
                        el = etree.Element(tag)
                        anchor = None
                        for prev in ('initrd', 'kernel', 'nvram', 'loader', 'type'):
                            anchor = os_el.find(prev)
                            if anchor is not None and prev != tag:
                                break
                        os_el.insert(list(os_el).index(anchor) + 1, el)
                    el.text = want


def _compare_disks(spec, drift):
    wanted = spec.get('disks')
    if wanted is None:
        return
    devices, current = drift.devices('disk')
    keep, new, used_targets = _match_disks(wanted, current, drift)
    kept_elements = [pair[1] for pair in keep]
    for el in current:
        if el not in kept_elements:
            drift.add('disks', _disk_label(el), None)
    # Reassign targets for disks whose bus changed and for new disks.
    for el in kept_elements:
        target = el.find('target')
        if not target.get('dev'):
            tmp = dxml.assign_targets([{'bus': target.get('bus')}], used_targets)[0]['target']
            target.set('dev', tmp)
            used_targets.add(tmp)
    new_elements = [dxml.disk_element(d)
                    for d in dxml.assign_targets([dict(x) for x in new], used_targets)]
    _place_disks(devices, current, wanted, keep, new_elements)


def _match_disks(wanted, current, drift):
    """Pair each wanted disk with its element (by source; empty CD-ROMs in order) and update
    the pairs in place. Returns (kept [(disk, element)], new disks, targets in use)."""
    by_id = {}
    for el in current:
        ident = _disk_identity(el)
        if ident is not None and ident not in by_id:
            by_id[ident] = el
    empty_cdroms = [el for el in current if _disk_identity(el) is None]
    used_targets = set()
    keep, new = [], []
    for d in wanted:
        ident = disk_identity(d)
        el = by_id.pop(ident, None) if ident else (empty_cdroms.pop(0) if empty_cdroms else None)
        label = d.get('path') or ('%s/%s' % (d['pool'], d['volume']) if d.get('pool')
                                  else 'cdrom')
        if el is None:
            new.append(d)
            drift.add('disks', None, label)
            continue
        for key, before, after in _update_disk(d, el):
            drift.add('disks[%s].%s' % (label, key), before, after)
        if el.find('target').get('dev'):
            used_targets.add(el.find('target').get('dev'))
        keep.append((d, el))
    return keep, new, used_targets


def _update_disk(d, el):
    """Apply the wanted disk's options to its element; [(key, before, after)] changed."""
    target = el.find('target')
    changes = []
    if el.get('device') != d['device']:
        changes.append(('device', el.get('device'), d['device']))
        el.set('device', d['device'])
    if d.get('bus') and target.get('bus') != d['bus']:
        changes.append(('bus', target.get('bus'), d['bus']))
        target.set('bus', d['bus'])
        target.set('dev', '')  # reassigned by the caller
        for addr in el.findall('address'):
            el.remove(addr)
    driver = el.find('driver')
    if driver is None:
        driver = etree.Element('driver', name='qemu')
        el.insert(0, driver)
    if d.get('format') and driver.get('type') != d['format']:
        changes.append(('format', driver.get('type'), d['format']))
        driver.set('type', d['format'])
    if d.get('cache'):
        have = driver.get('cache') or 'default'
        if have != d['cache']:
            changes.append(('cache', have, d['cache']))
            if d['cache'] == 'default':
                del driver.attrib['cache']
            else:
                driver.set('cache', d['cache'])
    if d.get('readonly') is not None:
        ro = el.find('readonly')
        if (ro is not None) != d['readonly']:
            changes.append(('readonly', ro is not None, d['readonly']))
            if d['readonly']:
                etree.SubElement(el, 'readonly')
            else:
                el.remove(ro)
    return changes


def _place_disks(devices, current, wanted, keep, new_elements):
    """Rebuild the disks in the wanted order, at the place of the first disk (after
    <emulator>)."""
    first = current[0] if current else None
    index = list(devices).index(first) if first is not None else (
        1 if devices.find('emulator') is not None else 0)
    for el in current:
        devices.remove(el)
    ordered = []
    it_new = iter(new_elements)
    kept = dict((id(d), el) for d, el in keep)
    for d in wanted:
        ordered.append(kept[id(d)] if id(d) in kept else next(it_new))
    for offset, el in enumerate(ordered):
        devices.insert(index + offset, el)


def _disk_label(el):
    ident = _disk_identity(el)
    if ident is None:
        return '%s %s' % (el.get('device'), el.find('target').get('dev'))
    return ident[1] if ident[0] == 'file' else '%s/%s' % (ident[1], ident[2])


def _iface_source(el):
    src = el.find('source')
    if src is None:
        return None
    kind = el.get('type')
    if kind == 'network':
        return src.get('network')
    if kind == 'bridge':
        return src.get('bridge')
    if kind == 'direct':
        return src.get('dev')
    return None


def _compare_networks(spec, drift):
    wanted = spec.get('networks')
    if wanted is None:
        return
    devices, current = drift.devices('interface')
    for i, n in enumerate(wanted):
        label = 'networks[%d]' % i
        if i >= len(current):
            drift.add(label, None, '%s %s' % (n['type'], n['source']))
            el = dxml.interface_element(n)
            anchor = current[-1] if current else None
            if anchor is not None:
                devices.insert(list(devices).index(anchor) + 1, el)
            else:
                last_disk = devices.findall('disk')
                pos = (list(devices).index(last_disk[-1]) + 1) if last_disk else len(devices)
                for ctrl in devices.findall('controller'):
                    pos = max(pos, list(devices).index(ctrl) + 1)
                devices.insert(pos, el)
            current.append(el)
            continue
        el = current[i]
        have_kind, have_src = el.get('type'), _iface_source(el)
        if (have_kind, have_src) != (n['type'], n['source']) or (
                n['type'] == 'direct' and n.get('mode')
                and el.find('source').get('mode') != n['mode']):
            drift.add(label, '%s %s' % (have_kind, have_src), '%s %s' % (n['type'], n['source']))
            el.set('type', n['type'])
            src = el.find('source')
            new_src = dxml.interface_element(n).find('source')
            if src is None:
                mac = el.find('mac')
                el.insert(list(el).index(mac) + 1 if mac is not None else 0, new_src)
            else:
                el.replace(src, new_src)
        if n.get('model'):
            model = el.find('model')
            have = model.get('type') if model is not None else None
            if have != n['model']:
                drift.add(label + '.model', have, n['model'])
                if model is None:
                    model = etree.SubElement(el, 'model')
                model.set('type', n['model'])
                for addr in el.findall('address'):
                    el.remove(addr)
        if n.get('mac'):
            mac = el.find('mac')
            have = mac.get('address').lower() if mac is not None else None
            if have != n['mac']:
                drift.add(label + '.mac', have, n['mac'])
                if mac is None:
                    mac = etree.Element('mac')
                    el.insert(0, mac)
                mac.set('address', n['mac'])
    for el in current[len(wanted):]:
        drift.add('networks', '%s %s' % (el.get('type'), _iface_source(el)), None)
        devices.remove(el)


def _compare_graphics(spec, drift, family_defaults):
    g = spec.get('graphics')
    if g is None:
        return
    devices, current = drift.devices('graphics')
    if g['type'] == 'none':
        if current:
            drift.add('graphics.type', current[0].get('type'), 'none')
            for el in current:
                devices.remove(el)
        return
    el = current[0] if current else None
    if el is None or el.get('type') != g['type']:
        drift.add('graphics.type', el.get('type') if el is not None else 'none', g['type'])
        new = dxml.graphics_element(g)
        if el is None:
            pos = len(devices)
            for tag in ('video', 'memballoon', 'audio'):
                found = devices.find(tag)
                if found is not None:
                    pos = min(pos, list(devices).index(found))
            devices.insert(pos, new)
        else:
            devices.replace(el, new)
        if devices.find('video') is None:
            video = dxml.video_element(g, family_defaults)
            devices.insert(list(devices).index(new) + 1, video)
        return
    if g.get('listen') and graphics.listen_address(el) != g['listen']:
        drift.add('graphics.listen', graphics.listen_address(el), g['listen'])
        el.set('listen', g['listen'])
        for listen in el.findall('listen'):
            el.remove(listen)
        etree.SubElement(el, 'listen', type='address', address=g['listen'])
    if g.get('port'):
        auto = el.get('autoport') == 'yes'
        if g['port'] == 'auto' and not auto:
            drift.add('graphics.port', el.get('port'), 'auto')
            el.set('port', '-1')
            el.set('autoport', 'yes')
        elif g['port'] != 'auto' and (auto or el.get('port') != str(g['port'])):
            drift.add('graphics.port', 'auto' if auto else el.get('port'), g['port'])
            el.set('port', str(g['port']))
            el.set('autoport', 'no')
    if g.get('password') is not None and (el.get('passwd') or '') != g['password']:
        drift.add('graphics.password', PASSWORD_MASK if el.get('passwd') else None,
                  PASSWORD_MASK + ' (changed)' if g['password'] else None)
        if g['password']:
            el.set('passwd', g['password'])
        else:
            del el.attrib['passwd']  # password: '' removes it
    if g.get('keymap') and el.get('keymap') != g['keymap']:
        drift.add('graphics.keymap', el.get('keymap'), g['keymap'])
        el.set('keymap', g['keymap'])


def _compare_serial(spec, drift):
    s = spec.get('serial')
    if s is None:
        return
    devices, serials = drift.devices('serial')
    el = serials[0] if serials else None
    have_type = el.get('type') if el is not None else None
    have_path = None
    if el is not None and el.find('source') is not None and have_type == 'file':
        have_path = el.find('source').get('path')
    if have_type == s['type'] and (s['type'] != 'file' or have_path == s['path']):
        return
    drift.add('serial', have_path or have_type, s['path'] or s['type'])
    new_serial, new_console = dxml.serial_elements(s)
    if el is not None:
        target = el.find('target')
        if target is not None:
            new_serial.replace(new_serial.find('target'), copy.deepcopy(target))
        devices.replace(el, new_serial)
    else:
        devices.append(new_serial)
    consoles = [c for c in devices.findall('console')
                if c.find('target') is None or c.find('target').get('type') in (None, 'serial')]
    if consoles:
        devices.replace(consoles[0], new_console)
    else:
        devices.insert(list(devices).index(new_serial) + 1, new_console)


def _cold_facets(root):
    """The facets of a definition that only a cold start applies and that libvirt's live XML
    shows as the guest runs them: memory, vCPUs, CPU model."""
    vcpu = root.find('vcpu')
    cpu = root.find('cpu')
    return [
        ('memory', memory_kib(root.find('memory'))),
        ('vcpus', int(vcpu.text) if vcpu is not None and vcpu.text else None),
        ('cpu', None if cpu is None else (cpu.get('mode', 'custom'), cpu.findtext('model'))),
    ]


def pending_restart(inactive_xml, live_xml):
    """What the running guest still runs differently from its persistent definition (items of
    _cold_facets: a definition changed while it ran, by an earlier run or by hand). Empty
    when the two agree; compared on both sides' own XML, so libvirt's normalisation cancels
    out."""
    defined = dict(_cold_facets(parse(inactive_xml)))
    out = []
    for item, running in _cold_facets(parse(live_xml)):
        if item == 'cpu' and (running is None or defined[item] is None):
            continue  # libvirt adds a live <cpu> for host-model and the like
        if running != defined[item]:
            if item == 'memory':
                out.append({'item': item, 'running': '%s MiB' % (running // 1024),
                            'defined': '%s MiB' % (defined[item] // 1024)})
            else:
                out.append({'item': item, 'running': running, 'defined': defined[item]})
    return out


def compare(spec, current_xml, host, family_defaults=None):
    """Drift of an existing domain from the options that were given (see module docstring)."""
    current = parse(current_xml)
    merged = copy.deepcopy(current)
    drift = Drift(current, merged)
    fam = family_defaults or OS_FAMILIES[spec.get('os_family') or 'generic']
    _compare_memory(spec, drift)
    _compare_vcpus(spec, drift)
    _compare_os(spec, drift, host)
    _compare_cpu(spec, drift)
    _compare_disks(spec, drift)
    _compare_networks(spec, drift)
    _compare_serial(spec, drift)
    _compare_graphics(spec, drift, fam)
    return drift
