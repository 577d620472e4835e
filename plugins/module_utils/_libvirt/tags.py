# -*- coding: utf-8 -*-
# Copyright: kvmops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A guest's tags, kept in its domain metadata (shared by the libvirt_guests inventory plugin
and virt_backup's guest selection). Private to the collection: no API promise.

    <tags xmlns="urn:kvmops:hypervisor:tags:1"><tag>web</tag></tags>
    virsh metadata DOM urn:kvmops:hypervisor:tags:1 --key kvmops --set '<tags><tag>web</tag></tags>'
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt import constants as C
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt import xml as lxml_util

TAG_NAMESPACE = 'urn:kvmops:hypervisor:tags:1'


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
