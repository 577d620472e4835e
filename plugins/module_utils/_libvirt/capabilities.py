# -*- coding: utf-8 -*-
# Copyright: kvmops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one reader of libvirt's host capabilities XML (virConnectGetCapabilities).

A module run asks libvirt once (read(conn)) and hands the Capabilities object to whoever
needs it (kvm capability facts, the domain manager's host facts, selinux_virt_dir's security
drivers). Private to the collection: no API promise.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt import xml as lxml_util


class Capabilities(object):
    """Parsed capabilities: host arch, guest arches, domain types, machines, security drivers."""

    def __init__(self, xml):
        if not lxml_util.HAS_LXML:
            raise ImportError(lxml_util.LXML_INSTALL_HINT)
        self.root = lxml_util.parse(xml)

    @property
    def host_arch(self):
        return self.root.findtext('host/cpu/arch')

    def _arches(self, arch=None, os_type=None):
        for guest in self.root.findall('guest'):
            a = guest.find('arch')
            if a is None:
                continue
            if arch is not None and a.get('name') != arch:
                continue
            if os_type is not None and guest.findtext('os_type') != os_type:
                continue
            yield a

    def guest_arches(self):
        """Sorted names of every architecture libvirt can run guests of."""
        return sorted(set(a.get('name') for a in self._arches() if a.get('name')))

    def domain_types(self, arch, os_type='hvm'):
        """[(domain type, emulator)] for guests of arch, in libvirt's order, each type once."""
        found = []
        for a in self._arches(arch, os_type):
            for dom in a.findall('domain'):
                t = dom.get('type')
                if t and t not in [x[0] for x in found]:
                    found.append((t, dom.findtext('emulator') or a.findtext('emulator')))
        return found

    def machine_aliases(self, arch):
        """{alias: canonical machine} for arch (pc -> pc-i440fx-7.2)."""
        aliases = {}
        for a in self._arches(arch):
            for m in a.findall('machine'):
                if m.get('canonical') and m.text:
                    aliases[m.text] = m.get('canonical')
        return aliases

    def security_models(self):
        """The host's security drivers in libvirt's order (['selinux', 'dac'], ['none'])."""
        return [m.text.strip() for m in self.root.findall('host/secmodel/model')
                if m.text and m.text.strip()]


def read(conn):
    """Ask libvirt for its capabilities (once per module run) and parse them."""
    return Capabilities(conn.getCapabilities())
