# -*- coding: utf-8 -*-
# Copyright: kvmops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where a running guest's VNC really is, read from its live domain XML, and whether a
browser console token may point there. Pure: takes a parsed document.
Private to the collection: no API promise.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible_collections.kvmops.hypervisor.plugins.module_utils._console import tokens as _tokens
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt import graphics as _graphics

LOOPBACK_FIX = ('Put its VNC on 127.0.0.1 (kvmops.hypervisor.vnc_listen scope: domains, listen: '
                '127.0.0.1, then restart the guest) or on a UNIX socket; websockify reaches the '
                'guest locally and the browser reaches websockify through an SSH tunnel or TLS.')


def live_target(tree, name):
    """(target, problem): the token target of the guest's first VNC graphics in its LIVE XML
    ('127.0.0.1:5901', '::1:5901' or 'unix_socket:/path'), or None and why not (a sentence
    that says how to fix it)."""
    found = _graphics.vnc_graphics(tree)
    if not found:
        kinds = sorted(set(g.get('type') for g in tree.findall('./devices/graphics')))
        return None, ('guest %s has no VNC graphics%s: the browser console speaks VNC only. '
                      'Give it <graphics type="vnc"> (virt_install_domain graphics: {type: vnc}).'
                      % (name, ' (it has %s)' % ', '.join(kinds) if kinds else ''))
    g = found[0]
    info = _graphics.read_listen(g)
    if info['type'] == 'socket':
        target = _tokens.UNIX_PREFIX + (info['socket'] or '')
        problem = _tokens.target_problem(target)
        if problem:
            return None, 'guest %s: %s.' % (name, problem)
        return target, None
    if info['type'] != 'address':
        return None, ('guest %s listens on a %s (%s), not an address: %s'
                      % (name, info['type'], info.get('network') or '-', LOOPBACK_FIX))
    address = info['address'] or g.get('listen')
    port = g.get('port')
    if not port or not port.isdigit() or int(port) <= 0:
        return None, ('guest %s has no VNC port in its live definition (is it running, with '
                      'autoport or a port?)' % name)
    if not address:
        return None, ('guest %s has no VNC listen address in its live definition: %s'
                      % (name, LOOPBACK_FIX))
    try:
        loopback = _graphics.is_loopback(address)
    except _graphics.GraphicsError:
        loopback = False
    if not loopback:
        return None, ('Refusing a console token for guest %s: its VNC listens on %s, and a '
                      "token may only point at the guest's own VNC on 127.0.0.1 or its UNIX "
                      'socket (websockify would otherwise open a path to an address beyond '
                      'this host\'s loopback). %s' % (name, address, LOOPBACK_FIX))
    target = '%s:%s' % (address, port)
    problem = _tokens.target_problem(target)
    if problem:
        return None, 'guest %s: %s.' % (name, problem)
    return target, None
