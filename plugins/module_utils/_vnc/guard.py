# -*- coding: utf-8 -*-
# Copyright: kvmops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The public-VNC guard for a guest's own graphics listen (virt_install_domain).

Private to the collection: no API promise. vnc_listen refuses a non-loopback listen without
TLS for the host setting and per-guest listens; this applies the same rule to a guest's
graphics option, so no path can open VNC to the network by accident.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt import qemu_conf as _qemu_conf
from ansible_collections.kvmops.hypervisor.plugins.module_utils._vnc import listen as _vnc

QEMU_CONF = '/etc/libvirt/qemu.conf'


def host_vnc_tls(conf_path=QEMU_CONF):
    """True when qemu.conf turns vnc_tls on (unreadable or unparsable: False)."""
    try:
        with open(conf_path, 'rb') as f:
            text = f.read().decode('utf-8', 'surrogateescape')
        return bool(_vnc.host_state(_qemu_conf.parse(text))['vnc_tls'])
    except (IOError, OSError, _qemu_conf.ConfSyntaxError):
        return False


def public_vnc_error(graphics, allow_insecure=False, conf_path=QEMU_CONF):
    """None when graphics may listen where asked, else the message that refuses it."""
    if not graphics or graphics.get('type') != 'vnc' or not graphics.get('listen'):
        return None  # no VNC, or qemu.conf's vnc_listen decides (guarded by vnc_listen)
    listen = graphics['listen']
    try:
        if _vnc.is_loopback(listen):
            return None
    except _vnc.VncError as exc:
        return 'graphics.listen: %s' % exc
    if allow_insecure or host_vnc_tls(conf_path):
        return None
    return ('Refusing graphics.listen=%s: VNC would listen beyond loopback without TLS '
            '(vnc_tls is off in %s), so anyone who reaches this host could watch and control '
            'the console; a VNC password protects with at most 8 bytes and no encryption. '
            'Leave graphics.listen unset or 127.0.0.1 and use an SSH tunnel (ssh -L '
            '5901:127.0.0.1:5901 HOST), or enable TLS host-wide with '
            'kvmops.hypervisor.vnc_listen (tls: true), or set graphics.allow_insecure: true '
            'if you accept the risk. Nothing was changed.' % (listen, conf_path))
