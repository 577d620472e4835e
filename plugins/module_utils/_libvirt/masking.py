# -*- coding: utf-8 -*-
# Copyright: kvmops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one masker for secrets in libvirt XML (graphics passwd) shown in results and diffs,
and for the password of a user:password@ in the URLs a module is given (install trees,
base images): url_secrets() finds them, the module runner adds them to AnsibleModule's
no_log values, so Ansible masks them in results, error messages and the -vvv invocation.
Private to the collection: no API promise.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import copy
import re

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


# scheme://user:password@host ; the password ends at the last @ before the path
_URL_CREDENTIALS = re.compile(r'[A-Za-z][A-Za-z0-9+.-]*://[^/@\s:]*:([^/\s]*)@')


def url_secrets(value):
    """Every password of a user:password@ URL in value (strings, lists, dicts, nested)."""
    found = set()
    if isinstance(value, dict):
        for v in value.values():
            found |= url_secrets(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            found |= url_secrets(v)
    elif isinstance(value, str):
        for m in _URL_CREDENTIALS.finditer(value):
            if m.group(1):
                found.add(m.group(1))
    return found


def mask_urls(text):
    """text with the password of every user:password@ URL replaced by MASK."""
    if not isinstance(text, str):
        return text
    return _URL_CREDENTIALS.sub(lambda m: m.group(0).replace(':%s@' % m.group(1),
                                                             ':%s@' % MASK), text)
