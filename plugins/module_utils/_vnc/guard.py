# -*- coding: utf-8 -*-
# Copyright: kvmops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The public-console guard for a guest's own graphics listen (virt_install_domain).

Private to the collection: no API promise. The rule itself (TLS really on, VNC with client
certificate verification, SPICE with a password) lives in _libvirt/graphics.py, the one place
for console policy; vnc_listen applies it to qemu.conf and per-guest listens, this applies it
to a guest's graphics option (VNC and SPICE), so no path opens a console to the network by
accident. Kept as the guest core's entry point (its argspec calls public_vnc_error).
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os

from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt import graphics as _graphics

QEMU_CONF = _graphics.QEMU_CONF


def public_vnc_error(graphics, allow_insecure=False, conf_path=QEMU_CONF, root='/',
                     stat_fn=os.stat, isdir=os.path.isdir):
    """None when graphics (VNC or SPICE) may listen where asked, else the refusal."""
    return _graphics.public_console_error(graphics, allow_insecure, conf_path, root,
                                          stat_fn, isdir)


public_console_error = public_vnc_error
