# -*- coding: utf-8 -*-
# Copyright: kvmops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Guest graphics (VNC) in libvirt domain XML, and the VNC policy every module applies.

- where a guest's VNC listens (read_listen, listen_address, vnc_info, follows_host);
- the listen address check (an IP literal, checked by ipaddress) and is_loopback;
- the VNC password rule: at most 8 bytes, an ERROR everywhere. VNC authentication only uses
  8 bytes and libvirt refuses a longer passwd in a domain definition, so a longer password
  is a mistake to fix, not a risk to accept (in qemu.conf it would be cut silently).
Private to the collection: no API promise.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import ipaddress

from ansible_collections.kvmops.hypervisor.plugins.module_utils._common.errors import KvmopsError

VNC_PORT_BASE = 5900
PASSWORD_SIGNIFICANT_BYTES = 8


class GraphicsError(KvmopsError):
    """A listen address or VNC password that cannot be used; the message says what to give."""


# ---------------------------------------------------------------------------------- policy

def parse_listen(address, option='listen'):
    """Validate a listen address (an IPv4 or IPv6 literal); return the ipaddress object."""
    if address is None or not str(address).strip():
        raise GraphicsError('%s must be an IP address such as 127.0.0.1, 0.0.0.0 or ::1; '
                            'it was empty' % option)
    text = str(address).strip()
    if text.startswith('[') and text.endswith(']'):
        raise GraphicsError('%s %r: write an IPv6 address without brackets, e.g. %s'
                            % (option, address, text[1:-1]))
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        raise GraphicsError(
            '%s %r is not an IP address. Give the literal address QEMU should listen on '
            '(127.0.0.1 for local access through an SSH tunnel, an address of one of this '
            "host's interfaces, 0.0.0.0 or :: for all); host names are not accepted because "
            'what they resolve to can change under a running guest.' % (option, address))


def is_loopback(address):
    """True for addresses inside 127.0.0.0/8 and ::1 (also as IPv4-mapped IPv6)."""
    if isinstance(address, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
        ip = address
    else:
        ip = parse_listen(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


def check_vnc_password(password, option='password'):
    """Raise GraphicsError for a VNC password longer than VNC can use (see the docstring)."""
    size = len(password.encode('utf-8'))
    if size > PASSWORD_SIGNIFICANT_BYTES:
        raise GraphicsError(
            '%s is %d bytes long: VNC authentication uses only %d bytes, and libvirt refuses '
            'longer VNC passwords. Give at most %d bytes, keep VNC on 127.0.0.1 and reach it '
            'through an SSH tunnel (or use TLS, or spice with TLS).'
            % (option, size, PASSWORD_SIGNIFICANT_BYTES, PASSWORD_SIGNIFICANT_BYTES))


# ------------------------------------------------------------------------------- reading XML

def vnc_graphics(root):
    """The <graphics type='vnc'> elements of a domain document."""
    return root.findall("./devices/graphics[@type='vnc']")


def read_listen(graphics):
    """Describe where a <graphics> listens: dict type (address/network/socket/none),
    address (None when it follows qemu.conf), network, socket."""
    listen = graphics.find('listen')
    if listen is not None:
        ltype = listen.get('type') or 'address'
        return {'type': ltype, 'address': listen.get('address') or graphics.get('listen'),
                'network': listen.get('network'), 'socket': listen.get('socket')}
    if graphics.get('socket'):
        return {'type': 'socket', 'address': None, 'network': None,
                'socket': graphics.get('socket')}
    return {'type': 'address', 'address': graphics.get('listen'), 'network': None,
            'socket': None}


def listen_address(graphics):
    """The address a <graphics> names (its listen attribute, else the first <listen address>),
    or None when it has none of its own."""
    if graphics.get('listen'):
        return graphics.get('listen')
    for listen in graphics.findall('listen'):
        if listen.get('address'):
            return listen.get('address')
    return None


def follows_host(graphics):
    """True when the guest's VNC has no address of its own (uses qemu.conf's vnc_listen)."""
    info = read_listen(graphics)
    return info['type'] == 'address' and not info['address']


def display_number(port):
    """The VNC display number of a TCP port (5901 -> 1), or None for no or a low port."""
    return port - VNC_PORT_BASE if port and port >= VNC_PORT_BASE else None


def vnc_info(tree):
    """{listen, port, display} of the first VNC graphics (port/display when running)."""
    for g in vnc_graphics(tree):
        listen = listen_address(g)
        if not listen:
            listen = next((lst.get('socket') for lst in g.findall('listen')
                           if lst.get('socket')), None)
        port = g.get('port')
        port = int(port) if port and port.lstrip('-').isdigit() and int(port) > 0 else None
        number = display_number(port)
        return {'listen': listen, 'port': port,
                'display': ':%d' % number if number is not None else None}
    return None
