# -*- coding: utf-8 -*-
# Copyright: kvmops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type


class ModuleDocFragment(object):
    """Options shared by every module that talks to libvirtd."""

    DOCUMENTATION = r'''
options:
  uri:
    description:
      - libvirt connection URI of the hypervisor to manage.
      - The module opens one connection per run on the managed host.
    type: str
    default: qemu:///system
requirements:
  - libvirt-python (C(python3-libvirt) on Debian/Ubuntu, C(python3-libvirt) on RHEL/Fedora) for the Python that runs the module
'''
