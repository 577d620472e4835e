# -*- coding: utf-8 -*-
# Copyright: kvmops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one masker for secrets in libvirt XML (graphics passwd) shown in results and diffs.
Private to the collection: no API promise.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import copy

from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt import xml as lxml_util

MASK = '********'
# Attributes that hold secrets in libvirt XML (graphics passwords).
SECRET_ATTRIBUTES = ('passwd',)


def mask_element(element):
    """A deep copy of element with every secret attribute replaced by MASK."""
    dup = copy.deepcopy(element)
    for node in dup.iter():
        for attr in SECRET_ATTRIBUTES:
            if node.get(attr) is not None:
                node.set(attr, MASK)
    return dup


def mask_xml(xml):
    """XML text with every secret attribute masked (returned serialised, pretty-printed)."""
    return lxml_util.to_string(mask_element(lxml_util.parse(xml)))
