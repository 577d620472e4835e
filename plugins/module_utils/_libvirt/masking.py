# -*- coding: utf-8 -*-
# Copyright: kvmops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one masker for secrets shown in results, messages and diffs: libvirt XML (graphics
passwd), credentials in URLs (``scheme://user:password@host``) and secret settings in config
file comments (``#vnc_password = "old"``). Private to the collection: no API promise.
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


# scheme://user:password@ -> scheme://user:********@ (the user name stays: it says who
# connects; a password-less user@ is not a secret). The password runs to the last "@" before
# the first /, whitespace or quote (as urllib splits an unescaped "@" in it), so a path
# holding "@" is not mistaken for credentials.
_URL_CREDENTIALS = re.compile(
    r'(?P<head>\b[A-Za-z][A-Za-z0-9+.-]*://[^\s/@:\'"<>]*:)(?P<secret>[^\s/\'"<>]+)(?P<at>@)')


def mask_url_credentials(text):
    """text with the password of every ``scheme://user:password@`` replaced by MASK.

    Works on any text (a URL, a message, a command line); non-strings come back as they are."""
    if not isinstance(text, str):
        return text
    return _URL_CREDENTIALS.sub(lambda m: m.group('head') + MASK + m.group('at'), text)


def url_passwords(text):
    """The passwords of the ``scheme://user:password@`` URLs in text (a list, maybe empty)."""
    if not isinstance(text, str):
        return []
    return [m.group('secret') for m in _URL_CREDENTIALS.finditer(text)]


def mask_commented_settings(text, keys, masked_value='"%s"' % MASK):
    """text with the value of every commented-out ``key = value`` of these keys masked.

    A config file keeps old secrets in comments (``#vnc_password = "old"``, also after a
    statement: ``x = 1  # vnc_password = "old"``); a diff of the file would show them. The
    comment stays a comment: only what follows its ``=`` on that line is replaced."""
    if not keys:
        return text
    pattern = re.compile(r'(#[^\r\n]*?(?<![A-Za-z0-9_])(?:%s)[ \t]*=[ \t]*)([^\r\n]*?)([ \t]*)(?=\r?\n|$)'
                         % '|'.join(re.escape(k) for k in keys))
    return pattern.sub(lambda m: m.group(1) + (masked_value if m.group(2) else '') + m.group(3), text)


def url_secrets(value):
    """The passwords of every ``scheme://user:password@`` URL in value: a string, or lists
    and dicts of them, nested (a module's options); a set, maybe empty."""
    found = set()
    pending = [value]
    while pending:
        v = pending.pop()
        if isinstance(v, dict):
            pending.extend(v.values())
        elif isinstance(v, (list, tuple)):
            pending.extend(v)
        else:
            found.update(url_passwords(v))
    return found
