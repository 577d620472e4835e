"""What the vnc_listen integration tests share: a tiny guest with VNC graphics, reading its
graphics with lxml directly, QEMU's RFB banner, `virsh vncdisplay`."""
import os
import socket
import subprocess

import libvirt

from . import paths
from .libvirt_helpers import tiny_guest_xml

QEMU_CONF = '/etc/libvirt/qemu.conf'
INACTIVE_SECURE = libvirt.VIR_DOMAIN_XML_INACTIVE | libvirt.VIR_DOMAIN_XML_SECURE


def define_guest(conn, name, tiny, image_dir, graphics="<graphics type='vnc' autoport='yes'/>"):
    log = os.path.join(image_dir, name + '.log')
    return conn.defineXML(tiny_guest_xml(name, tiny, log, memory=128, devices=graphics))


def vnc_of(xml):
    """(listen attribute, port, passwd) of the first VNC graphics, read with lxml directly."""
    from lxml import etree
    g = etree.fromstring(xml.encode()).find("./devices/graphics[@type='vnc']")
    listen = g.find('listen')
    return {'listen': g.get('listen'), 'port': g.get('port'), 'passwd': g.get('passwd'),
            'listen_el': None if listen is None else dict(listen.attrib)}


def rfb_banner(address, port):
    with socket.create_connection((address, int(port)), timeout=10) as s:
        return s.recv(12)


def vncdisplay(name, uri=paths.URI):
    out = subprocess.run(['virsh', '-c', uri, 'vncdisplay', name], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, universal_newlines=True, check=True)
    return out.stdout.strip()


def read_bytes(path):
    with open(path, 'rb') as f:
        return f.read()
