# -*- coding: utf-8 -*-
# Copyright: kvmops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Safe XML parsing and serialising for libvirt documents (domain, network, capabilities,
volume, snapshot XML). Private to the collection: no API promise.

One parser set-up for the whole collection: no entity expansion, no network access, and
blank text dropped so that serialised XML compares and pretty-prints the same everywhere.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

try:
    from lxml import etree
    HAS_LXML = True
except ImportError:  # pragma: no cover - reported by the module through HAS_LXML
    etree = None
    HAS_LXML = False

LXML_INSTALL_HINT = ('lxml is not importable by the Python running this module: install it on '
                     'the managed host (Debian/Ubuntu: apt install python3-lxml; RHEL/Fedora: '
                     'dnf install python3-lxml).')


def _parser(keep_blank_text=False):
    return etree.XMLParser(remove_blank_text=not keep_blank_text, resolve_entities=False,
                           no_network=True, huge_tree=False)


def parse(xml, keep_blank_text=False):
    """An lxml element from an XML string or bytes (what libvirt's XMLDesc calls return)."""
    if not isinstance(xml, bytes):
        xml = xml.encode('utf-8')
    return etree.fromstring(xml, _parser(keep_blank_text))


def to_string(element, pretty=True):
    """Serialise an element (without its tail) as text."""
    return etree.tostring(element, encoding='unicode', pretty_print=pretty, with_tail=False)
