# -*- coding: utf-8 -*-
# Copyright: kvmops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Guest graphics (VNC, SPICE) in libvirt domain XML, and the console policy every module applies.

- where a guest's VNC listens (read_listen, listen_address, vnc_info, follows_host);
- the listen address check (an IP literal, checked by ipaddress) and is_loopback;
- the VNC password rule: at most 8 bytes, an ERROR everywhere. VNC authentication only uses
  8 bytes and libvirt refuses a longer passwd in a domain definition, so a longer password
  is a mistake to fix, not a risk to accept (in qemu.conf it would be cut silently);
- the public-console rule (the one place for it; vnc_listen, the VNC guard of a guest's
  graphics option and the SPICE guard all call :func:`public_console_problems`):

  A console that listens beyond loopback needs TLS that is really on: ``vnc_tls = 1`` /
  ``spice_tls = 1`` in qemu.conf AND ca-cert.pem, server-cert.pem and server-key.pem in the
  certificate directory libvirt will use, each a non-empty regular file that QEMU's user can
  read (QEMU, not libvirtd, opens them when a guest starts). On top of TLS:

  * VNC needs x509 client verification (``vnc_tls_x509_verify = 1``); a VNC password does
    NOT replace it. VNC authentication is a DES challenge over at most 8 bytes, one password
    for a guest that every viewer shares, with no lock-out: anyone who reaches the port can
    guess at it. With verification only holders of a client certificate signed by the CA
    even reach the RFB handshake (what libvirt's qemu.conf recommends for public access).
    A password may be added on top.
  * SPICE needs a password (``spice_password`` in qemu.conf or the guest's ``passwd``):
    QEMU's SPICE server has no client-certificate verification (qemu.conf has no
    spice_tls_x509_verify), so TLS alone admits everyone; a SPICE ticket is up to 60 bytes
    and travels inside the TLS channel.

  ``allow_insecure`` (the user's explicit acceptance) skips the rule.
Private to the collection: no API promise.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import ipaddress
import os
import stat

from ansible_collections.kvmops.hypervisor.plugins.module_utils._common.errors import KvmopsError
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt import qemu_conf as _qemu_conf
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt import (
    qemu_identity as _qemu_identity)

VNC_PORT_BASE = 5900
PASSWORD_SIGNIFICANT_BYTES = 8
QEMU_CONF = '/etc/libvirt/qemu.conf'
DEFAULT_TLS_CERT_DIR = '/etc/pki/qemu'
TLS_SERVER_FILES = ('ca-cert.pem', 'server-cert.pem', 'server-key.pem')
# qemu.conf keys of each console kind and libvirt's defaults (src/qemu/qemu_conf.c).
CONSOLE_KEYS = {
    'vnc': {'listen': 'vnc_listen', 'tls': 'vnc_tls', 'verify': 'vnc_tls_x509_verify',
            'cert_dir': 'vnc_tls_x509_cert_dir', 'password': 'vnc_password',
            'default_dir': '/etc/pki/libvirt-vnc', 'name': 'VNC'},
    'spice': {'listen': 'spice_listen', 'tls': 'spice_tls', 'verify': None,
              'cert_dir': 'spice_tls_x509_cert_dir', 'password': 'spice_password',
              'default_dir': '/etc/pki/libvirt-spice', 'name': 'SPICE'},
}


class GraphicsError(KvmopsError):
    """A listen address or VNC password that cannot be used; the message says what to give.
    Caught here (public_console_error), by _guest/spec (re-wrapped as SpecError) and by _vnc (as
    VncError)."""


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


# ----------------------------------------------------------------------- public consoles

def console_settings(kind, values, isdir=os.path.isdir):
    """What libvirt will use for a console kind ('vnc' or 'spice'), from qemu.conf values
    (dict key -> value, e.g. qemu_conf.values(text)): listen, tls, verify, cert_dir, password.
    Defaults as libvirt 9 fills them in (a per-kind directory /etc/pki/libvirt-vnc or
    -spice when it exists, else default_tls_x509_cert_dir, else /etc/pki/qemu; verify from
    default_tls_x509_verify, else off)."""
    keys = CONSOLE_KEYS[kind]
    cert_dir = values.get(keys['cert_dir'])
    if not cert_dir:
        cert_dir = keys['default_dir'] if isdir(keys['default_dir']) else (
            values.get('default_tls_x509_cert_dir') or DEFAULT_TLS_CERT_DIR)
    verify = None
    if keys['verify']:
        verify = values.get(keys['verify'])
        if verify is None:
            verify = values.get('default_tls_x509_verify', 0)
    return {'listen': values.get(keys['listen'], '127.0.0.1'),
            'tls': bool(values.get(keys['tls'], 0)),
            'verify': bool(verify),
            'cert_dir': cert_dir,
            'password': values.get(keys['password'])}


def _can(st, ident, rbit, gbit, obit):
    uid = ident.get('uid')
    if uid == 0:
        return True
    mode = st.st_mode
    if uid is not None and st.st_uid == uid:
        return bool(mode & rbit)
    if st.st_gid in (ident.get('gids') or ()):
        return bool(mode & gbit)
    return bool(mode & obit)


def cert_problems(cert_dir, ident, stat_fn=os.stat):
    """Why QEMU (running as ident: qemu_identity's dict) could not use the server certificates
    in cert_dir: a list of phrases, empty when ca-cert.pem, server-cert.pem and server-key.pem
    are non-empty regular files QEMU's user can read (mode bits; ACLs are not read)."""
    who = ident.get('user') or 'QEMU\'s user'
    try:
        st = stat_fn(cert_dir)
    except OSError:
        return ['the certificate directory %s does not exist' % cert_dir]
    if not stat.S_ISDIR(st.st_mode):
        return ['%s is not a directory' % cert_dir]
    if ident.get('uid') is None and ident.get('user'):
        return ['QEMU\'s user %s does not exist on this host, so nothing it could read can '
                'be checked' % ident['user']]
    problems = []
    path = os.path.abspath(cert_dir)
    while True:
        try:
            dst = stat_fn(path)
        except OSError:
            break
        if not _can(dst, ident, stat.S_IXUSR, stat.S_IXGRP, stat.S_IXOTH):
            problems.append('%s cannot enter %s (mode %04o)' % (who, path,
                                                                stat.S_IMODE(dst.st_mode)))
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    for name in TLS_SERVER_FILES:
        fpath = os.path.join(cert_dir, name)
        try:
            fst = stat_fn(fpath)
        except OSError:
            problems.append('%s is missing' % fpath)
            continue
        if not stat.S_ISREG(fst.st_mode):
            problems.append('%s is not a regular file' % fpath)
        elif fst.st_size == 0:
            problems.append('%s is empty' % fpath)
        elif not _can(fst, ident, stat.S_IRUSR, stat.S_IRGRP, stat.S_IROTH):
            problems.append('%s is not readable by %s (mode %04o, owner uid %d gid %d)'
                            % (fpath, who, stat.S_IMODE(fst.st_mode), fst.st_uid, fst.st_gid))
    return problems


def console_setting_problems(kind, settings, guest_password=None):
    """The qemu.conf side of the rule (no file is looked at): (problem, fix) pairs for TLS off,
    VNC without client verification, SPICE without a password."""
    keys = CONSOLE_KEYS[kind]
    out = []
    if not settings['tls']:
        how = ('kvmops.hypervisor.vnc_listen tls: true' if kind == 'vnc'
               else 'in qemu.conf, then restart libvirtd')
        out.append(('it would be served without TLS (%s is off)' % keys['tls'],
                    'set %s = 1 (%s; the kvmops.hypervisor.libvirt_pki role makes the '
                    'certificates)' % (keys['tls'], how)))
    if kind == 'vnc' and not settings['verify']:
        out.append(('vnc_tls_x509_verify is off, so any client that reaches the port gets the '
                    'console (a VNC password is 8 bytes of DES and does not replace it)',
                    'set vnc_tls_x509_verify = 1 (vnc_listen tls_verify: true) and give each '
                    'viewer a client certificate from the CA'))
    if kind == 'spice' and not (settings.get('password') or guest_password):
        out.append(('there is no SPICE password (spice_password in qemu.conf or the guest\'s '
                    'graphics password), and SPICE cannot verify client certificates',
                    'give the guest graphics.password or set spice_password in qemu.conf'))
    return out


def public_console_problems(kind, listen, settings, ident, guest_password=None,
                            stat_fn=os.stat):
    """Why a console of kind ('vnc'/'spice') must not listen on listen, given the qemu.conf
    settings (console_settings) and QEMU's identity: a list of (problem, fix) pairs, empty
    when the address is loopback or the console is protected as the module docstring says."""
    if listen is None or is_loopback(listen):
        return []
    out = console_setting_problems(kind, settings, guest_password)
    if settings['tls']:
        fix = ('put ca-cert.pem, server-cert.pem and server-key.pem in %s, readable by QEMU\'s '
               'user (the kvmops.hypervisor.libvirt_pki role does it)' % settings['cert_dir'])
        out[:0] = [(p, fix) for p in cert_problems(settings['cert_dir'], ident, stat_fn)]
    return out


def public_console_message(kind, listen, where, problems, option='allow_insecure',
                           head=None):
    """The refusal for public_console_problems' answer: what is wrong, then how to fix it.
    head replaces the opening 'Refusing to make VNC listen on ADDR (where)'."""
    name = CONSOLE_KEYS[kind]['name']
    if head is None:
        head = 'Refusing to make %s listen on %s (%s)' % (name, listen, where)
    return ('%s: a %s console beyond loopback needs TLS with its server certificates in place '
            'and %s, but %s. Fix: %s. Or keep the console on 127.0.0.1 and reach it through an '
            'SSH tunnel (ssh -L 5901:127.0.0.1:5901 HOST), or set %s: true if you accept the '
            'risk. Nothing was changed.'
            % (head, name,
               'client certificate verification' if kind == 'vnc' else 'a password',
               '; '.join(p for p, dummy in problems),
               '; '.join(_unique(f for dummy, f in problems)), option))


def _unique(items):
    out = []
    for item in items:
        if item not in out:
            out.append(item)
    return out


def read_conf_values(conf_path=QEMU_CONF):
    """(values, text) of qemu.conf; ({}, None) when it cannot be read. A file libvirt could
    not parse raises qemu_conf.ConfSyntaxError (the caller says to fix it)."""
    try:
        with open(conf_path, 'rb') as f:
            text = f.read().decode('utf-8', 'surrogateescape')
    except (IOError, OSError):
        return {}, None
    return _qemu_conf.values(text), text


def public_console_error(graphics, allow_insecure=False, conf_path=QEMU_CONF, root='/',
                         stat_fn=os.stat, isdir=os.path.isdir):
    """For a guest's graphics option ({type, listen, password}): None when it may listen
    where it will, else the refusal. A graphics without listen follows qemu.conf's
    vnc_listen / spice_listen: VNC's is guarded by vnc_listen when it is set; SPICE's is
    nobody's, so it is checked here too."""
    if not graphics or graphics.get('type') not in CONSOLE_KEYS or allow_insecure:
        return None
    kind = graphics['type']
    listen = graphics.get('listen')
    if not listen and kind == 'vnc':
        return None
    option = 'graphics.listen'
    if listen:
        try:
            if is_loopback(listen):
                return None
        except GraphicsError as exc:
            return '%s: %s' % (option, exc)
    try:
        values, text = read_conf_values(conf_path)
    except _qemu_conf.ConfSyntaxError as exc:
        return ('%s cannot be parsed (%s): libvirtd would not start with it. Fix that line '
                'first; nothing was changed.' % (conf_path, exc))
    settings = console_settings(kind, values, isdir)
    head = 'Refusing %s=%s' % (option, listen)
    if not listen:
        listen = settings['listen']
        head = ('Refusing SPICE graphics without a listen of their own: the guest follows '
                'spice_listen = %s in %s' % (listen, conf_path))
        try:
            if is_loopback(listen):
                return None
        except GraphicsError as exc:
            return '%s: spice_listen: %s' % (conf_path, exc)
    ident = _qemu_identity.qemu_identity(root, conf_text=text or '', conf_path=conf_path)
    problems = public_console_problems(kind, listen, settings, ident,
                                       guest_password=graphics.get('password'),
                                       stat_fn=stat_fn)
    if not problems:
        return None
    return public_console_message(kind, listen, None, problems, 'graphics.allow_insecure',
                                  head=head)


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
