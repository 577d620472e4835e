# -*- coding: utf-8 -*-
# Copyright: kvmops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Build libvirt domain XML with lxml: a pure function of the spec and host facts.

Private to the collection: no API promise. No libvirt, no I/O: golden-file tested.

build_domain_tree(values, host) -> lxml Element of the FINAL (persistent) definition, where
values = _guest/spec.creation_values(spec) whose disks may carry 'format_resolved' (the
storage layer detects the format of existing images) and host = {'arch', 'domain_type',
'machine' (or None)}. The element builders (disk_element, interface_element, ...) are also
used by _domain_drift to merge the user's wishes into an existing definition.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt import disk_targets
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt import xml as lxml_util
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt.xml import etree

from ansible_collections.kvmops.hypervisor.plugins.module_utils._guest import (
    device_defaults as _devdef)

# The allocator lives in _libvirt/disk_targets; these names stay for the drift merge.
TARGET_PREFIX = disk_targets.TARGET_PREFIX
target_name = disk_targets.target_name
assign_targets = disk_targets.assign_targets


def _sub(parent, tag, attrib=None, text=None):
    el = etree.SubElement(parent, tag)
    for k, v in (attrib or {}).items():
        if v is not None:
            el.set(k, str(v))
    if text is not None:
        el.text = str(text)
    return el


def disk_element(disk):
    """<disk> for one spec disk (bus resolved from bus or bus_default, format resolved)."""
    bus = disk.get('bus') or disk.get('bus_default')
    if disk.get('pool'):
        el = etree.Element('disk', type='volume', device=disk['device'])
    else:
        el = etree.Element('disk', type='file', device=disk['device'])
    fmt = disk.get('format_resolved') or disk.get('format') or 'raw'
    _sub(el, 'driver', {'name': 'qemu', 'type': fmt,
                        'cache': disk.get('cache'), 'discard': disk.get('discard')})
    if disk.get('pool'):
        _sub(el, 'source', {'pool': disk['pool'], 'volume': disk['volume']})
    elif disk.get('path'):
        _sub(el, 'source', {'file': disk['path']})
    _sub(el, 'target', {'dev': disk['target'], 'bus': bus})
    if disk.get('readonly'):
        _sub(el, 'readonly')
    return el


def interface_element(nic):
    kind = nic['type']
    el = etree.Element('interface', type=kind)
    if nic.get('mac'):
        _sub(el, 'mac', {'address': nic['mac']})
    if kind == 'network':
        _sub(el, 'source', {'network': nic['source']})
    elif kind == 'bridge':
        _sub(el, 'source', {'bridge': nic['source']})
    else:
        _sub(el, 'source', {'dev': nic['source'], 'mode': nic.get('mode') or 'bridge'})
    _sub(el, 'model', {'type': nic.get('model') or nic.get('model_default')})
    return el


def graphics_element(g):
    """<graphics> for vnc/spice, or None for type none."""
    if not g or g['type'] == 'none':
        return None
    el = etree.Element('graphics', type=g['type'])
    if g.get('port') and g['port'] != 'auto':
        el.set('port', str(g['port']))
        el.set('autoport', 'no')
    else:
        el.set('port', '-1')
        el.set('autoport', 'yes')
    if g.get('listen'):
        el.set('listen', g['listen'])
    if g.get('password'):
        el.set('passwd', g['password'])
    if g.get('keymap'):
        el.set('keymap', g['keymap'])
    if g.get('listen'):
        _sub(el, 'listen', {'type': 'address', 'address': g['listen']})
    else:
        # No address of our own: qemu.conf's vnc_listen / spice_listen decides (127.0.0.1).
        _sub(el, 'listen', {'type': 'address'})
    return el


def serial_elements(s):
    """(<serial>, <console>) for a pty or a log file."""
    elements = []
    for tag in ('serial', 'console'):
        el = etree.Element(tag, type=s['type'])
        if s['type'] == 'file':
            _sub(el, 'source', {'path': s['path']})
        if tag == 'serial':
            _sub(el, 'target', {'port': '0'})
        else:
            _sub(el, 'target', {'type': 'serial', 'port': '0'})
        elements.append(el)
    return elements


def video_element(g, family_defaults):
    if not g or g['type'] == 'none':
        return None
    model = 'qxl' if g['type'] == 'spice' else family_defaults.get('video', 'vga')
    el = etree.Element('video')
    _sub(el, 'model', {'type': model})
    return el


def cpu_element(cpu):
    if not cpu:
        return None
    if cpu in ('host-passthrough', 'host-model'):
        el = etree.Element('cpu', mode=cpu)
        if cpu == 'host-passthrough':
            el.set('check', 'none')
        return el
    el = etree.Element('cpu', mode='custom', match='exact')
    _sub(el, 'model', {'fallback': 'allow'}, cpu)
    return el


def os_element(values, host):
    el = etree.Element('os')
    if values.get('firmware') == 'uefi':
        el.set('firmware', 'efi')
    _sub(el, 'type', {'arch': host['arch'], 'machine': values.get('machine') or host.get('machine')},
         'hvm')
    if values.get('kernel'):
        _sub(el, 'kernel', text=values['kernel'])
        if values.get('initrd'):
            _sub(el, 'initrd', text=values['initrd'])
        if values.get('cmdline'):
            _sub(el, 'cmdline', text=values['cmdline'])
    else:
        _sub(el, 'boot', {'dev': 'hd'})
        if any(d['device'] == 'cdrom' for d in values.get('disks') or []):
            _sub(el, 'boot', {'dev': 'cdrom'})
    return el


def clock_element(family_defaults, domain_type):
    el = etree.Element('clock', offset=family_defaults['clock'])
    _sub(el, 'timer', {'name': 'rtc', 'tickpolicy': 'catchup'})
    _sub(el, 'timer', {'name': 'pit', 'tickpolicy': 'delay'})
    _sub(el, 'timer', {'name': 'hpet', 'present': 'no'})
    if family_defaults.get('hyperv') and domain_type == 'kvm':
        _sub(el, 'timer', {'name': 'hypervclock', 'present': 'yes'})
    return el


def features_element(family_defaults, domain_type):
    el = etree.Element('features')
    _sub(el, 'acpi')
    _sub(el, 'apic')
    # Hyper-V enlightenments need KVM; under TCG QEMU refuses them.
    if family_defaults.get('hyperv') and domain_type == 'kvm':
        hv = _sub(el, 'hyperv', {'mode': 'custom'})
        _sub(hv, 'relaxed', {'state': 'on'})
        _sub(hv, 'vapic', {'state': 'on'})
        _sub(hv, 'spinlocks', {'state': 'on', 'retries': '8191'})
    return el


def build_domain_tree(values, host):
    """The final domain definition as an lxml Element (see the module docstring)."""
    info = _devdef.facts(values, host)
    values = _devdef.with_defaults(values, host, info)  # virt-install's devices: see there
    fam = dict(values['family_defaults'],
               video=_devdef.video_model(info, values['family_defaults'], values))
    dom = etree.Element('domain', type=host['domain_type'])
    _sub(dom, 'name', text=values['name'])
    meta = _devdef.metadata_element(info)
    if meta is not None:
        dom.append(meta)
    _sub(dom, 'memory', {'unit': 'MiB'}, values['memory_mib'])
    _sub(dom, 'currentMemory', {'unit': 'MiB'}, values['memory_mib'])
    _sub(dom, 'vcpu', {'placement': 'static'}, values['vcpus'])
    dom.append(os_element(values, host))
    dom.append(features_element(fam, host['domain_type']))
    cpu = cpu_element(values.get('cpu'))
    if cpu is not None:
        dom.append(cpu)
    dom.append(clock_element(fam, host['domain_type']))
    _sub(dom, 'on_poweroff', text='destroy')
    _sub(dom, 'on_reboot', text='restart')
    _sub(dom, 'on_crash', text='destroy')
    pm = _devdef.pm_element(host)
    if pm is not None:
        dom.append(pm)
    devices = _sub(dom, 'devices')
    disks = assign_targets([dict(d) for d in values['disks']])
    for d in disks:
        devices.append(disk_element(d))
    if any((d.get('bus') or d.get('bus_default')) == 'scsi' for d in disks):
        _sub(devices, 'controller', {'type': 'scsi', 'index': '0', 'model': 'virtio-scsi'})
    for n in values['networks']:
        devices.append(interface_element(n))
    for el in serial_elements(values['serial']):
        devices.append(el)
    for el in _devdef.extra_devices(values, host, info):
        devices.append(el)
    if _devdef.wants_tablet(values, host, info, fam):
        _sub(devices, 'input', {'type': 'tablet', 'bus': 'usb'})
    gfx = graphics_element(values['graphics'])
    if gfx is not None:
        devices.append(gfx)
        devices.append(video_element(values['graphics'], fam))
    return dom


def to_string(tree):
    """Serialise an element (pretty, no XML declaration)."""
    return lxml_util.to_string(tree)


def build_domain_xml(values, host):
    return to_string(build_domain_tree(values, host))


def indent(tree):
    """Re-indent a tree that was parsed with whitespace and then edited."""
    if hasattr(etree, 'indent'):
        etree.indent(tree, space='  ')
    return tree
