# -*- coding: utf-8 -*-
# Copyright: kvmops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where guests' VNC consoles listen and how to reach them. Private to the collection.

Pure logic, unit-testable without Ansible or a daemon:
- the host-wide plan for qemu.conf (which keys, their checks, the insecure-listen guard);
- per-domain editing of the persistent ``<graphics type='vnc'>`` (listen address, passwd) with
  lxml, the way ``virsh edit`` does it (inactive XML with secrets, changed, defined again);
- ``displays`` (like ``virsh vncdisplay``) from running guests' live XML, and the
  ``ssh -L`` tunnel command for each.
The few functions that talk to libvirt take a connection or a domain object as argument.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import copy
import os

from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt import graphics as _graphics
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt import masking
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt import qemu_conf as _qemu_conf
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt import (
    qemu_identity as _qemu_identity)
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt import xml as lxml_util
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt.constants import (
    VIR_CONNECT_LIST_DOMAINS_ACTIVE)
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt.xml import HAS_LXML, etree

VNC_PORT_BASE = _graphics.VNC_PORT_BASE
REMOTE_PORT_MIN = 5900
REMOTE_PORT_MAX = 65535
PASSWORD_SIGNIFICANT_BYTES = _graphics.PASSWORD_SIGNIFICANT_BYTES
MASK = masking.MASK

# qemu.conf keys this module owns, how libvirt reads them, and libvirt's built-in defaults.
HOST_KEYS = (
    ('vnc_listen', 'string', '127.0.0.1'),
    ('vnc_tls', 'bool', 0),
    ('vnc_tls_x509_verify', 'bool', None),     # default: default_tls_x509_verify, else 0
    ('vnc_tls_x509_cert_dir', 'string', None),  # default: /etc/pki/libvirt-vnc or the default dir
    ('vnc_password', 'string', None),
    ('vnc_auto_unix_socket', 'bool', 0),
    ('remote_display_port_min', 'uint', REMOTE_PORT_MIN),
    ('remote_display_port_max', 'uint', REMOTE_PORT_MAX),
)
HOST_KEY_TYPES = dict((k, t) for k, t, dummy in HOST_KEYS)
SECRET_KEYS = ('vnc_password', 'spice_password')
DEFAULT_VNC_CERT_DIR = _graphics.CONSOLE_KEYS['vnc']['default_dir']
DEFAULT_TLS_CERT_DIR = _graphics.DEFAULT_TLS_CERT_DIR
TLS_SERVER_FILES = _graphics.TLS_SERVER_FILES


# Bad input or a state the module must not change; the message says how to fix it.
VncError = _graphics.GraphicsError
parse_listen = _graphics.parse_listen
is_loopback = _graphics.is_loopback
vnc_graphics = _graphics.vnc_graphics
graphics_listen = _graphics.read_listen
follows_host = _graphics.follows_host


# ---------------------------------------------------------------------------------------
# Addresses, passwords, the insecure guard
# ---------------------------------------------------------------------------------------

def tunnel_hint(port=5901, ssh_user=None, ssh_host=None):
    return ssh_tunnel_command('127.0.0.1', port, ssh_user, ssh_host or 'HOST')


def insecure_message(listen, where, ssh_user=None, ssh_host=None):
    return (
        'Refusing to make VNC listen on %s (%s) without TLS: anyone who can reach this host '
        'could watch and control the guest consoles, and a VNC password protects with at '
        'most 8 bytes and no encryption. Safer alternatives: keep listen on 127.0.0.1 and '
        'reach each console through an SSH tunnel, e.g. "%s" (this module returns the '
        'command for every running guest in ssh_tunnels); or enable tls: true with server '
        'certificates (tls_cert_dir) and tls_verify: true. Set allow_insecure: true only if '
        'you accept the risk (and open the firewall for remote_display_port_min..max).'
        % (listen, where, tunnel_hint(5901, ssh_user, ssh_host)))


def password_checks(password):
    """Return (errors, warnings) for a VNC password."""
    errors, warnings = [], []
    if password is None:
        return errors, warnings
    if password == '':
        errors.append('password must not be empty: QEMU rejects every VNC client when the '
                      'password is an empty string. Leave password out to keep the current one.')
        return errors, warnings
    try:
        _graphics.check_vnc_password(password)
    except VncError as exc:
        errors.append(str(exc))
    return errors, warnings


# ---------------------------------------------------------------------------------------
# Host scope: qemu.conf
# ---------------------------------------------------------------------------------------

def _current(entries, key):
    entry = _qemu_conf.effective(entries, key)
    return None if entry is None else entry.value


def host_state(entries):
    """The effective VNC settings libvirt reads from these entries (defaults filled in)."""
    state = {}
    for key, dummy, default in HOST_KEYS:
        value = _current(entries, key)
        state[key] = default if value is None else value
    if state['vnc_tls_x509_verify'] is None:
        dflt = _current(entries, 'default_tls_x509_verify')
        state['vnc_tls_x509_verify'] = dflt if dflt is not None else 0
    return state


def effective_cert_dir(entries, exists=os.path.isdir):
    """The VNC certificate directory libvirt will use (mirrors qemu_conf.c's defaults)."""
    explicit = _current(entries, 'vnc_tls_x509_cert_dir')
    if explicit:
        return explicit
    if exists(DEFAULT_VNC_CERT_DIR):
        return DEFAULT_VNC_CERT_DIR
    return _current(entries, 'default_tls_x509_cert_dir') or DEFAULT_TLS_CERT_DIR


def plan_host(text, params, isdir=os.path.isdir, filename='qemu.conf', stat_fn=os.stat,
              ident=None):
    """Decide the qemu.conf edit for the host scope.

    params: dict with listen, tls, tls_verify, tls_cert_dir, password, auto_unix_socket,
    port_min, port_max, allow_insecure (the module's options). stat_fn and ident (QEMU's
    user, qemu_identity's dict; read from this host when None) decide whether QEMU can use
    the server certificates.
    Returns dict: settings (list of (key, value) to write), errors, warnings, check_warnings
    (problems that are errors outside check mode), state (effective values after the edit).
    """
    errors, warnings, check_warnings = [], [], []
    entries = _qemu_conf.parse(text)
    before = host_state(entries)
    wanted = _wanted_settings(params, errors, warnings)

    # Settings this run does not write must already be readable by libvirt.
    written = set(k for k, dummy in wanted)
    errors.extend(_qemu_conf.check_types(
        entries, dict((k, t) for k, t in HOST_KEY_TYPES.items() if k not in written), filename))
    settings = _differing(entries, wanted, before)
    after = dict(before)
    after.update(dict((k, _normal(v)) for k, v in wanted))

    errors.extend(_port_range_errors(after))
    if ident is None:
        ident = _qemu_identity.qemu_identity(conf_text=text, conf_path=filename)
    _check_tls(params, entries, after, errors, warnings, check_warnings, isdir, stat_fn, ident)
    _check_listen(params, after, errors, warnings, filename)
    if after['vnc_auto_unix_socket'] and params.get('auto_unix_socket'):
        warnings.append('vnc_auto_unix_socket takes precedence over vnc_listen: guests whose '
                        'graphics have no listen address of their own get a UNIX socket, not '
                        'a TCP port (no display number, no SSH tunnel by port).')
    return {'settings': settings, 'errors': errors, 'warnings': warnings,
            'check_warnings': check_warnings, 'state': after, 'before': before}


def _wanted_settings(params, errors, warnings):
    """(key, value) the options ask for, in the order of HOST_KEYS."""
    wanted = []
    listen = params.get('listen')
    if listen is not None:
        parse_listen(listen)
        wanted.append(('vnc_listen', listen.strip()))
    tls = params.get('tls')
    if tls is not None:
        wanted.append(('vnc_tls', bool(tls)))
        if tls:
            wanted.append(('vnc_tls_x509_verify', bool(params.get('tls_verify', True))))
    if params.get('tls_cert_dir'):
        wanted.append(('vnc_tls_x509_cert_dir', params['tls_cert_dir']))
    password = params.get('password')
    if password is not None:
        perrors, pwarnings = password_checks(password)
        errors.extend(perrors)
        warnings.extend(pwarnings)
        if '\n' in password or '\r' in password or ('"' in password and "'" in password):
            errors.append('password cannot be written to qemu.conf: it must not contain a line '
                          'break, nor both \' and " quote characters')
        else:
            wanted.append(('vnc_password', password))
    if params.get('auto_unix_socket') is not None:
        wanted.append(('vnc_auto_unix_socket', bool(params['auto_unix_socket'])))
    if params.get('port_min') is not None:
        wanted.append(('remote_display_port_min', params['port_min']))
    if params.get('port_max') is not None:
        wanted.append(('remote_display_port_max', params['port_max']))
    return wanted


def _differing(entries, wanted, before):
    """Only what differs from what libvirt already uses (a commented-out default that already
    matches is not written: the file stays as shipped)."""
    settings = []
    for key, value in wanted:
        entry = _qemu_conf.effective(entries, key)
        if entry is not None:
            if not _qemu_conf.same_value(entry, value):
                settings.append((key, value))
        elif _normal(value) != _normal(before.get(key)):
            settings.append((key, value))
    return settings


def _port_range_errors(after):
    """The port range, as libvirt checks it when the daemon starts."""
    errors = []
    pmin, pmax = after['remote_display_port_min'], after['remote_display_port_max']
    if not isinstance(pmin, int) or pmin < REMOTE_PORT_MIN or pmin > REMOTE_PORT_MAX:
        errors.append('port_min (remote_display_port_min) must be between %d and %d, got %s'
                      % (REMOTE_PORT_MIN, REMOTE_PORT_MAX, pmin))
    if not isinstance(pmax, int) or pmax < REMOTE_PORT_MIN or pmax > REMOTE_PORT_MAX:
        errors.append('port_max (remote_display_port_max) must be between %d and %d, got %s'
                      % (REMOTE_PORT_MIN, REMOTE_PORT_MAX, pmax))
    elif isinstance(pmin, int) and pmin > pmax:
        errors.append('port_min (%s) must not be greater than port_max (%s); libvirtd would '
                      'refuse to load qemu.conf' % (pmin, pmax))
    return errors


def _check_tls(params, entries, after, errors, warnings, check_warnings, isdir, stat_fn,
               ident):
    """libvirt refuses to start with a missing explicit certificate directory, and guests
    with VNC fail to start when QEMU cannot read the server certificates."""
    if params.get('tls_cert_dir') and not isdir(params['tls_cert_dir']):
        errors.append('tls_cert_dir %s does not exist (or is not a directory): libvirtd '
                      'refuses to load a qemu.conf whose vnc_tls_x509_cert_dir is missing. '
                      'Create it with ca-cert.pem, server-cert.pem and server-key.pem first.'
                      % params['tls_cert_dir'])
    elif after['vnc_tls']:
        cert_dir = params.get('tls_cert_dir') or effective_cert_dir(entries, isdir)
        problems = _graphics.cert_problems(cert_dir, ident, stat_fn)
        if problems:
            check_warnings.append(
                'VNC TLS needs %s in %s, non-empty and readable by QEMU\'s user (%s), but %s: '
                'guests with VNC would fail to start. Put the certificates there first (the '
                'kvmops.hypervisor.libvirt_pki role makes them) or point tls_cert_dir at them.'
                % (', '.join(TLS_SERVER_FILES), cert_dir, ident.get('user') or 'unknown',
                   '; '.join(problems)))
    if after['vnc_tls'] and not after['vnc_tls_x509_verify']:
        warnings.append('VNC TLS is on without x509 client verification (tls_verify): any '
                        'client may connect; qemu.conf itself recommends verification.')


def _check_listen(params, after, errors, warnings, filename):
    """The insecure-listen guard on the address libvirt will use after the edit."""
    listen_after = after['vnc_listen']
    if not isinstance(listen_after, str):
        return
    try:
        loopback = is_loopback(listen_after)
    except VncError as exc:
        errors.append('%s line: vnc_listen: %s' % (filename, exc))
        loopback = True
    if not loopback and not after['vnc_tls'] and not params.get('allow_insecure'):
        errors.append(insecure_message(listen_after, 'vnc_listen in %s' % filename,
                                       params.get('ssh_user'), params.get('ssh_host')))
    elif not loopback and not after['vnc_tls_x509_verify'] and not params.get('allow_insecure'):
        # TLS is on (its certificates are _check_tls's); a public listen also needs verify.
        problems = _graphics.console_setting_problems(
            'vnc', {'tls': True, 'verify': False, 'password': None})
        errors.append(_graphics.public_console_message(
            'vnc', listen_after, 'vnc_listen in %s' % filename, problems))
    if not loopback and after['remote_display_port_max'] == REMOTE_PORT_MAX:
        warnings.append('VNC listens on %s but remote_display_port_max is %d: a firewall '
                        'rule for 5900-5950 only holds if port_max is lowered (e.g. '
                        'port_max: 5950).' % (listen_after, REMOTE_PORT_MAX))


def _normal(value):
    if isinstance(value, bool):
        return int(value)
    return value


# ---------------------------------------------------------------------------------------
# Domain scope: persistent <graphics type='vnc'>
# ---------------------------------------------------------------------------------------

def _require_lxml():
    if not HAS_LXML:  # pragma: no cover
        raise VncError('python lxml is required on the managed host (python3-lxml)')


def parse_xml(xml):
    _require_lxml()
    return lxml_util.parse(xml, keep_blank_text=True)


def set_graphics(graphics, listen=None, password=None):
    """Edit one <graphics type='vnc'> in place; return the list of what changed."""
    changed = []
    if listen is not None:
        info = graphics_listen(graphics)
        if (info['type'] != 'address' or info['address'] != listen
                or graphics.get('listen') != listen or graphics.get('socket')):
            changed.append('listen')
            graphics.set('listen', listen)
            if 'socket' in graphics.attrib:
                del graphics.attrib['socket']
            listens = graphics.findall('listen')
            if listens:
                first = listens[0]
                first.attrib.clear()
                for extra in listens[1:]:
                    _remove_keep_tail(extra)
            else:
                first = etree.Element('listen')
                indent = graphics.text if graphics.text and not graphics.text.strip() else None
                graphics.insert(0, first)
                if indent is None and len(graphics) == 1:
                    first.tail = None
                else:
                    first.tail = indent
            first.set('type', 'address')
            first.set('address', listen)
            if graphics.get('port') is None and graphics.get('autoport') is None:
                graphics.set('autoport', 'yes')
    if password is not None and graphics.get('passwd') != password:
        changed.append('password')
        graphics.set('passwd', password)
    return changed


def _remove_keep_tail(element):
    """Remove an element (lxml drops its tail too); keep the closing indentation."""
    prev = element.getprevious()
    if element.getnext() is None and prev is not None:
        prev.tail = element.tail
    element.getparent().remove(element)


def to_text(element):
    return lxml_util.to_string(element, pretty=False)


def plan_domain(inactive_xml, listen=None, password=None):
    """Plan the persistent change of one domain from its inactive XML (with secrets).

    Returns dict: has_vnc, changes (list of 'listen'/'password'), new_xml (None if nothing
    changes), before and after (the VNC graphics as text, passwd masked), follows_host.
    """
    root = parse_xml(inactive_xml)
    graphics = vnc_graphics(root)
    result = {'has_vnc': bool(graphics), 'changes': [], 'new_xml': None,
              'before': '', 'after': '', 'follows_host': False}
    if not graphics:
        return result
    result['follows_host'] = all(follows_host(g) for g in graphics)
    result['before'] = '\n'.join(to_text(masking.mask_element(g)) for g in graphics) + '\n'
    changes = []
    for g in graphics:
        for what in set_graphics(g, listen=listen, password=password):
            if what not in changes:
                changes.append(what)
    result['changes'] = changes
    result['after'] = '\n'.join(to_text(masking.mask_element(g)) for g in graphics) + '\n'
    if changes:
        result['new_xml'] = lxml_util.to_string(root, pretty=False)
    return result


def live_has_password(live_xml):
    """True when the running guest's VNC was started with a password (XML with secrets).

    QEMU can only change the password of a VNC server started with password auth; one started
    without needs a restart of the guest.
    """
    graphics = vnc_graphics(parse_xml(live_xml))
    return bool(graphics) and graphics[0].get('passwd') is not None


def live_password_xml(live_xml, password):
    """The live <graphics type='vnc'> with passwd replaced (for updateDeviceFlags), or None
    when the running guest already has that password (or has no VNC)."""
    root = parse_xml(live_xml)
    graphics = vnc_graphics(root)
    if not graphics or graphics[0].get('passwd') == password:
        return None
    g = copy.deepcopy(graphics[0])
    g.tail = None
    g.set('passwd', password)
    return to_text(g)


# ---------------------------------------------------------------------------------------
# Displays and SSH tunnels
# ---------------------------------------------------------------------------------------

def display_string(listen, port):
    """What ``virsh vncdisplay`` prints: ':N' for 0.0.0.0 or no address, else 'ADDR:N'."""
    number = int(port) - VNC_PORT_BASE
    if not listen or listen == '0.0.0.0':
        return ':%d' % number
    return '%s:%d' % (listen, number)


def tunnel_target(listen):
    """The address the SSH server connects to for a guest listening on listen."""
    if not listen or listen == '0.0.0.0':
        return '127.0.0.1'
    if listen == '::':
        return '[::1]'
    if ':' in listen:
        return '[%s]' % listen
    return listen


def ssh_tunnel_command(listen, port, ssh_user=None, ssh_host=None):
    """``ssh -L PORT:ADDR:PORT -N -f user@host`` forwarding a local port to the console."""
    dest = ssh_host or 'localhost'
    if ssh_user:
        dest = '%s@%s' % (ssh_user, dest)
    return 'ssh -L %d:%s:%d -N -f %s' % (int(port), tunnel_target(listen), int(port), dest)


def displays_from_live_xml(name, live_xml, ssh_user=None, ssh_host=None):
    """Display entries of one running guest (its live XML): one per VNC with a TCP port."""
    root = parse_xml(live_xml)
    result = []
    for g in vnc_graphics(root):
        port = g.get('port')
        try:
            port = int(port)
        except (TypeError, ValueError):
            continue
        if port <= 0:
            continue
        info = graphics_listen(g)
        if info['type'] not in ('address', 'network'):
            continue
        listen = g.get('listen') or info['address']
        result.append({
            'domain': name,
            'listen': listen,
            'port': port,
            'display': display_string(listen, port),
            'ssh_tunnel': ssh_tunnel_command(listen, port, ssh_user, ssh_host),
        })
    return result


def live_listen(live_xml):
    """(type, address) of the first VNC of a running guest, or None without VNC."""
    root = parse_xml(live_xml)
    graphics = vnc_graphics(root)
    if not graphics:
        return None
    info = graphics_listen(graphics[0])
    return info['type'], graphics[0].get('listen') or info['address']


def collect_displays(conn, ssh_user=None, ssh_host=None):
    """displays for every running guest with VNC on conn, sorted by domain name."""
    result = []
    for dom in conn.listAllDomains(VIR_CONNECT_LIST_DOMAINS_ACTIVE):
        try:
            xml = dom.XMLDesc(0)
        except Exception:  # pylint: disable=broad-except  # guest went away meanwhile
            continue
        result.extend(displays_from_live_xml(dom.name(), xml, ssh_user, ssh_host))
    result.sort(key=lambda d: (d['domain'], d['port']))
    return result
