# -*- coding: utf-8 -*-
# Copyright: kvmops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where the installer's text goes: the LAST console= argument is /dev/console.

Private to the collection: no API promise. Pure.

Linux writes kernel messages to every console= device but makes the last one /dev/console,
where anaconda, d-i and systemd write. A guest with VNC graphics and ``console=ttyS0`` last
shows the installer on the serial port only, and the VNC screen stops at the last kernel or
systemd line (the guide's "stuck after Started D-Bus").
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

SERIAL_CONSOLES = ('ttyS', 'hvc', 'ttyAMA', 'ttysclp', 'ttyPS')


def last_console(args):
    last = None
    for word in (args or '').split():
        if word.startswith('console='):
            last = word[len('console='):].split(',', 1)[0]
    return last


def serial_last_warning(args, graphics, option='install.extra_args'):
    """A warning when the guest has a graphical console (vnc/spice; the default is vnc)
    and the last console= of args is a serial port, else None."""
    gtype = (graphics or {}).get('type') or 'vnc'
    if gtype == 'none':
        return None
    last = last_console(args)
    if not last or not last.startswith(SERIAL_CONSOLES):
        return None
    return ("%s ends with console=%s while the guest has %s graphics: the installer writes to "
            "the LAST console=, so its screens go to the serial port and the %s display stays "
            "at the last boot message (it looks stuck). Put console=tty0 last (e.g. "
            "'console=ttyS0,115200 console=tty0') to install on %s and keep kernel messages on "
            "the serial port, or use graphics: {type: none} and virsh console for a text "
            "install." % (option, last, gtype.upper(), gtype.upper(), gtype.upper()))
