# -*- coding: utf-8 -*-
# Copyright: kvmops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The devices virt-install 4.1 gives a NEW guest, as elements for _guest/builder.py.

Private to the collection: no API promise. Pure (lxml only); used only when a domain is
created, never to compare an existing one (drift compares only what the options ask for, so
a guest defined with older defaults is left as it is).

What a new guest gets, decided by the os facts of _libvirt/osinfo.py (libosinfo or families):
- machine q35 on x86 when the OS supports it (libosinfo lists the q35 chipset and virtio
  1.0), unless a disk asks for the IDE bus (q35 has no IDE); 'virt' on aarch64/armv7l/riscv64;
- <pm> with suspend-to-mem and suspend-to-disk off (x86): a guest that suspends itself
  looks hung to the host and comes back only with a virsh dompmwakeup;
- the QEMU guest agent channel (virtio-serial) when the OS has virtio-serial drivers: IP
  discovery (domifaddr --source agent), fsfreeze and clean shutdown without ACPI;
- virtio-rng fed from /dev/urandom when the OS has the driver: early-boot entropy for
  cloud-init and sshd host keys;
- discard='unmap' on sparse images: blocks the guest frees (fstrim) go back to the host;
- a USB tablet for any x86 guest with graphics (absolute pointer, no mouse drift over VNC);
- video virtio when the OS has virtio-gpu, qxl with spice, bochs with UEFI, else vga;
- <metadata> with the libosinfo OS id (virt-manager, Cockpit and virt-install read it).
What virt-install does and this module does not, on purpose:
- 14 spare pcie-root-ports for hot-plug: libvirt adds the ports the devices need, and this
  module changes devices in the persistent definition (a restart applies them);
- Hyper-V enlightenments under TCG (domain type qemu): QEMU without KVM does not implement
  them; they are set for type kvm only;
- an explicit <memballoon model='virtio'/> and usb controller: libvirt adds the same itself
  (qemu-xhci on q35).
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt import osinfo as _osinfo

from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt.xml import etree

LIBOSINFO_NS = 'http://libosinfo.org/xmlns/libvirt/domain/1.0'
GUEST_AGENT_CHANNEL = 'org.qemu.guest_agent.0'
X86 = ('x86_64', 'i686', 'i386')
_VIRT_MACHINE_ARCHES = ('aarch64', 'armv7l', 'riscv64')


def facts(values, host):
    """The os facts for values (spec['osinfo'] when the module resolved them, else the
    families, which keeps the builder pure)."""
    info = values.get('osinfo')
    if info:
        return info
    return _osinfo.family_facts(values.get('os_variant'), values.get('os_family') or 'generic',
                                arch=host.get('arch') or 'x86_64')


def default_machine(values, host, info):
    """The machine type for a new guest, or None for libvirt's default."""
    if values.get('machine') or host.get('machine'):
        return values.get('machine') or host.get('machine')
    arch = host.get('arch')
    if arch in _VIRT_MACHINE_ARCHES:
        return 'virt'
    if arch not in X86 or not info.get('q35'):
        return None
    for d in values.get('disks') or []:
        if (d.get('bus') or d.get('bus_default')) == 'ide':
            return None  # q35 has no IDE controller
    return 'q35'


def with_defaults(values, host, info):
    """values with machine and each disk's discard filled in (a new dict)."""
    out = dict(values)
    out['machine'] = default_machine(values, host, info)
    disks = []
    for d in values.get('disks') or []:
        d = dict(d)
        if d.get('device', 'disk') == 'disk' and info.get('disk_bus'):
            d['bus_default'] = info['disk_bus']
        if d.get('device', 'disk') == 'disk' and d.get('sparse', True) and not d.get('discard'):
            d['discard'] = 'unmap'
        disks.append(d)
    out['disks'] = disks
    out['networks'] = [dict(n, model_default=info.get('nic_model') or n.get('model_default'))
                       for n in values.get('networks') or []]
    return out


def metadata_element(info):
    """<metadata><libosinfo:libosinfo><libosinfo:os id=.../></...></metadata> or None."""
    if not info.get('id'):
        return None
    meta = etree.Element('metadata')
    lo = etree.SubElement(meta, '{%s}libosinfo' % LIBOSINFO_NS, nsmap={'libosinfo': LIBOSINFO_NS})
    etree.SubElement(lo, '{%s}os' % LIBOSINFO_NS, id=info['id'])
    return meta


def pm_element(host):
    if host.get('arch') not in X86:
        return None
    pm = etree.Element('pm')
    etree.SubElement(pm, 'suspend-to-mem', enabled='no')
    etree.SubElement(pm, 'suspend-to-disk', enabled='no')
    return pm


def wants_tablet(values, host, info, family_defaults):
    g = values.get('graphics') or {}
    if not g or g.get('type') == 'none':
        return False
    return bool(family_defaults.get('tablet') or (info.get('tablet') and host.get('arch') in X86))


def video_model(info, family_defaults, values=None):
    model = info.get('video') or family_defaults.get('video', 'vga')
    if model == 'vga' and (values or {}).get('firmware') == 'uefi':
        return 'bochs'  # virt-install: UEFI without virtio-gpu gets bochs (a VGA-free display)
    return model


def extra_devices(values, host, info):
    """The guest agent channel and virtio-rng, as far as the OS supports them."""
    out = []
    if info.get('guest_agent'):
        ch = etree.Element('channel', type='unix')
        etree.SubElement(ch, 'source', mode='bind')
        etree.SubElement(ch, 'target', type='virtio', name=GUEST_AGENT_CHANNEL)
        out.append(ch)
    if info.get('virtio_rng'):
        rng = etree.Element('rng', model='virtio')
        backend = etree.SubElement(rng, 'backend', model='random')
        backend.text = '/dev/urandom'
        out.append(rng)
    return out
