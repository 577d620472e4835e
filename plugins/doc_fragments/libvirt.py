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
      - A URI with a host part or a network transport (C(qemu+ssh://hv2/system), C(qemu+tcp://...),
        C(qemu+tls://...), also to C(localhost) or C(127.0.0.1)) is another host's libvirt; only a URI
        without a host part and with no transport or C(+unix) (C(qemu:///system), C(qemu+unix:///system))
        is the host the module runs on.
      - Through another host's libvirt the module does only what libvirt's API does there (domains,
        networks, storage pool volumes, internal snapshots, migrations). Options that work on files
        (file disks, C(kernel)/C(initrd), cloud-init seeds, base images, install media, serial log
        files, the public console's TLS check, C(remove_storage) of file disks and serial logs,
        templates and clones, external snapshots, backup repositories and restores, qemu.conf,
        SELinux labels, the host's KVM facts) would act on the local file system instead, so they are
        refused before anything is made (check mode too) with a message naming the option. Run such a
        task on the hypervisor itself (C(delegate_to) it, or make it the inventory host) with
        C(uri=qemu:///system).
    type: str
    default: qemu:///system
requirements:
  - libvirt-python (C(python3-libvirt) on Debian/Ubuntu, C(python3-libvirt) on RHEL/Fedora) for the Python that runs the module
'''
