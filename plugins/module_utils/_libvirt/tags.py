# -*- coding: utf-8 -*-
# Copyright: kvmops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A guest's tags, kept in its domain metadata (shared by the libvirt_guests inventory plugin
and virt_backup's guest selection), and the template mark and clone record that
_guest/features/clone.py writes there (read by the inventory plugin). Private to the
collection: no API promise.

    <tags xmlns="urn:kvmops:hypervisor:tags:1"><tag>web</tag></tags>
    virsh metadata DOM urn:kvmops:hypervisor:tags:1 --key kvmops --set '<tags><tag>web</tag></tags>'
    <kvmopstpl:template xmlns:kvmopstpl="urn:kvmops:hypervisor:template:1"><image .../></...>
    <kvmopsclone:clone xmlns:kvmopsclone="urn:kvmops:hypervisor:clone:1" source= source_uuid= mode=/>
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt import constants as C
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt import xml as lxml_util

TAG_NAMESPACE = 'urn:kvmops:hypervisor:tags:1'
# A template (template: true) and a clone (clone_from): written by _guest/features/clone.py.
TEMPLATE_NAMESPACE = 'urn:kvmops:hypervisor:template:1'
TEMPLATE_PREFIX = 'kvmopstpl'
CLONE_NAMESPACE = 'urn:kvmops:hypervisor:clone:1'
CLONE_PREFIX = 'kvmopsclone'


def domain_tags(dom, namespace=TAG_NAMESPACE):
    """The tags in the domain's metadata element of namespace (empty when there is none)."""
    try:
        text = dom.metadata(C.VIR_DOMAIN_METADATA_ELEMENT, namespace, 0)
    except Exception:  # pylint: disable=broad-except  # libvirtError: no such metadata
        return []
    try:
        root = lxml_util.parse(text)
    except lxml_util.etree.XMLSyntaxError:
        return []
    return [t.text.strip() for t in root.iter()
            if isinstance(t.tag, str) and t.tag.split('}')[-1] == 'tag' and t.text and t.text.strip()]


def template_and_clone(root):
    """(is a template, clone record {'source', 'source_uuid', 'mode'} or None) from a domain's
    parsed XML (its <metadata>): what the guest's XML already says, no libvirt call. The
    record's values are the domain's data (strings, or None where an attribute is missing)."""
    meta = root.find('metadata') if root is not None else None
    if meta is None:
        return False, None
    template = meta.find('{%s}template' % TEMPLATE_NAMESPACE) is not None
    rec = meta.find('{%s}clone' % CLONE_NAMESPACE)
    if rec is None:
        return template, None
    return template, dict((k, rec.get(k)) for k in ('source', 'source_uuid', 'mode'))
