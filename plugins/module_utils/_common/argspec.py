# -*- coding: utf-8 -*-
# Copyright: kvmops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Argument-spec pieces shared by the modules, beside their doc fragments
(plugins/doc_fragments). Private to the collection: no API promise.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DEFAULT_URI = 'qemu:///system'


def uri_option():
    """The `uri` option (doc fragment kvmops.hypervisor.libvirt)."""
    return dict(type='str', default=DEFAULT_URI)
