# -*- coding: utf-8 -*-
# Copyright: kvmops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The devices of a cloud-image guest in its domain XML: the guest agent channel and the
port forwards (a passt NIC, or QEMU's user-mode NIC through <qemu:commandline> where libvirt
has passt disabled). Built, read back and removed here. Private to the collection: no API
promise. Pure (lxml only).
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import hashlib

from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt import xml as lxml_util

AGENT_CHANNEL = 'org.qemu.guest_agent.0'
QEMU_NS = 'http://libvirt.org/schemas/domain/qemu/1.0'
FWD_NETDEV = 'kvmopsfwd0'


def agent_channel_element():
    el = lxml_util.etree.Element('channel', type='unix')
    lxml_util.etree.SubElement(el, 'target', type='virtio', name=AGENT_CHANNEL)
    return el


def passt_interface_element(forwards):
    el = lxml_util.etree.Element('interface', type='user')
    lxml_util.etree.SubElement(el, 'backend', type='passt')
    lxml_util.etree.SubElement(el, 'model', type='virtio')
    for f in forwards:
        pf = lxml_util.etree.SubElement(el, 'portForward', proto=f['proto'], address=f['address'])
        lxml_util.etree.SubElement(pf, 'range', start=str(f['host_port']), to=str(f['guest_port']))
    return el


def qemu_user_element(forwards, mac):
    """<qemu:commandline> with a QEMU user-mode (slirp) NIC and hostfwd rules: the
    port_forward_backend=qemu way for hosts whose libvirt has passt disabled (Debian 12)."""
    el = lxml_util.etree.Element('{%s}commandline' % QEMU_NS, nsmap={'qemu': QEMU_NS})
    rules = ','.join('hostfwd=%s:%s:%d-:%d' % (f['proto'], f['address'], f['host_port'],
                                               f['guest_port']) for f in forwards)
    # restrict=on: the guest reaches nothing through this NIC; only the forwards come in.
    for value in ('-netdev', 'user,id=%s,restrict=on,%s' % (FWD_NETDEV, rules), '-device',
                  # A fixed slot on the root bus: QEMU would otherwise take the first free one
                  # before libvirt's own devices (which carry explicit addresses) are added.
                  'virtio-net-pci,netdev=%s,mac=%s,addr=0x19' % (FWD_NETDEV, mac)):
        lxml_util.etree.SubElement(el, '{%s}arg' % QEMU_NS, value=value)
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


def remove_qemu_user(tree):
    for cl in tree.findall('{%s}commandline' % QEMU_NS):
        if any((a.get('value') or '').startswith('user,id=%s,' % FWD_NETDEV)
               for a in cl.findall('{%s}arg' % QEMU_NS)):
            tree.remove(cl)


def is_passt(el):
    backend = el.find('backend')
    return el.get('type') == 'user' and backend is not None and backend.get('type') == 'passt'


def passt_forwards(tree):
    """[(proto, address, host_port, guest_port)] of the domain's passt NICs."""
    out = []
    for el in tree.findall('./devices/interface'):
        if not is_passt(el):
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
            new = lxml_util.etree.Element(tree.tag, attrib=dict(tree.attrib),
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
