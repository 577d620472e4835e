#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: kvmops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: virt_install_domain
short_description: Declarative libvirt guests in virt-install's vocabulary, kept in sync
version_added: 1.0.0
description:
  - Creates, updates, starts, stops and removes a libvirt domain (a KVM/QEMU guest) from
    options named like C(virt-install)'s, so the guide's commands translate line by line.
  - The domain XML is built by the module (lxml) and sent to libvirtd through libvirt-python
    over O(uri); C(virt-install) is not needed on the hypervisor, and no secret ever appears on
    a command line.
  - An existing domain is compared with the options after libvirt's normalisation, and only
    what the options ask for is compared. Everything libvirt generated (UUID, MAC and PCI
    addresses, controllers) is kept, so a second run with the same options reports no change.
    Options left unset are not managed on an existing domain; their defaults apply only to
    what the module creates.
  - Missing disk images are created (raw sparse, qcow2, or a copy-on-write clone of a base
    image); an existing image is never overwritten, reformatted or shrunk.
  - Before anything is defined the module checks that the QEMU user (from qemu.conf) can reach
    every disk, ISO, kernel and initrd (directory search permissions, and the SELinux type when
    SELinux is enabled), and fails with the path, the obstacle and the fix.
author:
  - kvmops team (@kvmops)
extends_documentation_fragment:
  - kvmops.hypervisor.guest
  - kvmops.hypervisor.libvirt
  - kvmops.hypervisor.attributes
  - kvmops.hypervisor.attributes.actiongroup_kvm
  - kvmops.hypervisor.attributes.idempotent
attributes:
  check_mode:
    support: full
    details: Check mode creates nothing at all (no disk files, volumes, definitions or starts).
  diff_mode:
    support: full
    details: Shows the affected elements of the persistent XML before and after (passwords masked).
  idempotent:
    support: full
notes:
  - Requires libvirt-python and python3-lxml on the managed host, and qemu-img to create qcow2 images.
  - A long O(wait) keeps the task (and its connection) open; with O(wait=-1) consider Ansible's C(async).
  - The module never resizes or converts images.
seealso:
  - module: kvmops.hypervisor.kvm_capability_facts
  - module: kvmops.hypervisor.selinux_virt_dir
  - module: kvmops.hypervisor.vnc_listen
requirements:
  - python3-lxml
'''

EXAMPLES = r'''
# The guide's Linux guest:
#   virt-install --network bridge:virbr0 --name vm1 --ram=1024 --vcpus=1 \
#     --disk path=/vm-images/vm1.img,size=10 --graphics none \
#     --location=http://mirror.example.org/centos/7/os/x86_64/ \
#     --extra-args="console=tty0 console=ttyS0,115200"
# translated; the installer's kernel and initrd are fetched once and cached, the installer
# gets inst.repo=<location> (as virt-install adds it), and the module waits for the
# installer and boots the installed guest (follow it with virsh console vm1):
- name: CentOS 7 guest vm1 on virbr0, serial console only
  kvmops.hypervisor.virt_install_domain:
    name: vm1
    memory: 1024
    vcpus: 1
    os_variant: centos7.0
    disks:
      - path: /vm-images/vm1.img
        size: 10
        format: raw
    networks:
      - bridge: virbr0
    graphics:
      type: none
    install:
      location: http://mirror.example.org/centos/7/os/x86_64/
      extra_args: console=tty0 console=ttyS0,115200
    wait: 1h

# The same, unattended: the kickstart file is injected into the installer's initrd
# (virt-install --initrd-inject=/root/ks.cfg --extra-args="ks=file:/ks.cfg ...").
- name: CentOS 7 guest vm2, kickstart from the hypervisor
  kvmops.hypervisor.virt_install_domain:
    name: vm2
    memory: 1024
    os_variant: centos7.0
    disks:
      - path: /vm-images/vm2.img
        size: 10
        format: raw
    networks:
      - bridge: br0
    graphics:
      type: none
    install:
      location: http://mirror.example.org/centos/7/os/x86_64/
      kickstart: /root/ks.cfg
      extra_args: ks=file:/ks.cfg console=tty0 console=ttyS0,115200
    wait: -1

# The guide's Windows guest:
#   virt-install --name=windows1 --ram=1024 --vcpus=1 --os-type=windows \
#     --os-variant=win2k12r2 --disk path=/vm-images/windows1.img,size=10 \
#     --cdrom=/root/win2012.iso --network bridge:virbr0 --graphics vnc
# /root is not reachable by QEMU: the module fails before creating anything and says so.
# Keep the ISO in the ISO directory (/vm-images/iso) instead. The CD-ROM boots first during
# the install phase only; wait lets Setup's first reboot end the install phase and the
# module start the guest from its disk in the same task (follow Setup on the VNC console,
# e.g. through an SSH tunnel to 127.0.0.1:5900).
- name: Windows 2012 guest windows1 with VNC on 127.0.0.1
  kvmops.hypervisor.virt_install_domain:
    name: windows1
    memory: 1024
    vcpus: 1
    os_variant: win2k12r2
    disks:
      - path: /vm-images/windows1.img
        size: 10
    networks:
      - bridge: virbr0
    graphics:
      type: vnc
      password: "{{ vault_vnc_password }}"
    install:
      cdrom: /vm-images/iso/win2012.iso
    wait: 2h

# Direct kernel boot with the serial console in a log file (how the tests boot a tiny guest)
- name: Tiny guest under QEMU emulation
  kvmops.hypervisor.virt_install_domain:
    name: tiny1
    memory: 256MiB
    virt_type: qemu
    kernel: /var/lib/libvirt/boot/vmlinuz
    initrd: /var/lib/libvirt/boot/initrd.img
    cmdline: console=ttyS0
    serial: /var/lib/libvirt/images/tiny1-console.log
    networks: []
    graphics:
      type: none

# Grow the memory of an existing guest and restart it cleanly to apply it
- name: vm1 gets 4 GiB and 2 vCPUs
  kvmops.hypervisor.virt_install_domain:
    name: vm1
    memory: 4GiB
    vcpus: 2
    restart: true

# A qcow2 copy-on-write clone of a base image, UEFI, on libvirt's default network
- name: Clone of a golden image
  kvmops.hypervisor.virt_install_domain:
    name: web1
    memory: 2048
    os_variant: linux
    firmware: uefi
    disks:
      - path: /var/lib/libvirt/images/web1.qcow2
        backing_store: /var/lib/libvirt/images/base/debian12.qcow2
    networks:
      - network: default

# Import an existing image (virt-install --import): no install phase
- name: Guest from a prepared image
  kvmops.hypervisor.virt_install_domain:
    name: app1
    memory: 2048
    os_variant: linux
    disks:
      - path: /var/lib/libvirt/images/app1.raw
    install:
      import: true

# Debian from the network, answers in a preseed file injected into the installer's initrd
- name: Debian 12 guest deb1
  kvmops.hypervisor.virt_install_domain:
    name: deb1
    memory: 1024
    os_variant: debian12
    disks:
      - path: /var/lib/libvirt/images/deb1.raw
        size: 8
    graphics:
      type: none
    install:
      location: http://deb.debian.org/debian/dists/bookworm/main/installer-amd64/
      kickstart: /srv/preseed/preseed.cfg
      extra_args: auto=true priority=critical console=ttyS0,115200n8
    wait: -1

# Remove a guest (UEFI NVRAM included) and its disk images
- name: vm1 is gone
  kvmops.hypervisor.virt_install_domain:
    name: vm1
    state: absent
    remove_storage: true

- name: Three Debian cloud guests from one cached base image, reachable over SSH
  kvmops.hypervisor.virt_install_domain:
    name: "web{{ item }}"
    memory: 2GiB
    vcpus: 2
    os_variant: debian12
    disks:
      - path: "/var/lib/libvirt/images/web{{ item }}.qcow2"
        size: 20
        base_image:
          url: https://cloud.debian.org/images/cloud/bookworm/latest/debian-12-genericcloud-amd64.qcow2
          checksum: sha512:https://cloud.debian.org/images/cloud/bookworm/latest/SHA512SUMS
    networks:
      - network: default
    cloud_init:
      hostname: "web{{ item }}"
      ssh_authorized_keys:
        - "{{ lookup('ansible.builtin.file', '~/.ssh/id_ed25519.pub') }}"
      user_data:
        package_update: true
        packages: [nginx]
    wait_for: ip
    wait_timeout: 300
  loop: [1, 2, 3]
  register: web

# web.results[*].ansible_host is the address; interfaces[0].addresses say which source
# (lease, agent) reported it.

- name: A cloud guest whose SSH is forwarded to the hypervisor's loopback (no bridge needed)
  kvmops.hypervisor.virt_install_domain:
    name: build1
    memory: 1GiB
    os_variant: debian12
    disks:
      - path: /var/lib/libvirt/images/build1.qcow2
        size: 10
        base_image:
          url: http://mirror.example.com/images/debian-12-genericcloud-amd64.qcow2
          checksum: sha256:9d1a7b1e0c7c5f25b6f1ea3a2f1b7f0b0c1d6a3b1d2e3f4a5b6c7d8e9f0a1b2c
    networks: []
    port_forwards:
      - host_port: 2201
        guest_port: 22
    port_forward_backend: qemu   # Debian 12's libvirt has passt disabled
    cloud_init:
      password: "{{ vault_build1_password }}"   # hashed (SHA-512) on the hypervisor
      ssh_authorized_keys: ["{{ lookup('ansible.builtin.file', '~/.ssh/id_ed25519.pub') }}"]
    wait_for: ssh
  register: build1   # build1.ansible_host == 127.0.0.1, build1.ansible_port == 2201

- name: Make a running guest re-run cloud-init with changed user-data at its next boot
  kvmops.hypervisor.virt_install_domain:
    name: web1
    disks:
      - path: /var/lib/libvirt/images/web1.qcow2
    cloud_init:
      instance_id: iid-web1-2   # a new instance-id: cloud-init treats the next boot as new
      user_data:
        packages: [nginx, htop]
'''

RETURN = r'''
name:
  description: Name of the domain.
  returned: always
  type: str
  sample: vm1
uuid:
  description: UUID of the domain (null when absent, or in check mode before it exists).
  returned: always
  type: str
  sample: 88bfee97-579e-4c1b-b714-c9151a062936
state:
  description: Power state after the run - running, stopped, paused, crashed, suspended or absent.
  returned: always
  type: str
  sample: running
xml:
  description: The persistent (inactive) XML after the run, without secrets; in check mode for a new domain, the XML that would be defined (password masked).
  returned: always
  type: str
vnc:
  description: The VNC console - listen address, port and display (port and display only while running).
  returned: always
  type: dict
  sample: {"listen": "127.0.0.1", "port": 5900, "display": ":0"}
serial:
  description: Path of the serial console - the pty (/dev/pts/N) while running, or the log file.
  returned: always
  type: str
  sample: /var/lib/libvirt/images/vm1-console.log
restart_required:
  description:
    - The persistent definition changed while the domain runs; a cold restart applies it (or use O(restart)).
    - Reported on every run (with a warning) until the running guest has restarted, also when this run changed nothing (memory, vCPUs
      or CPU model of the running guest differ from its definition).
    - A changed console password alone is applied to the running guest at once and needs no restart.
  returned: always
  type: bool
differences:
  description: What differed from the options (item, before, after), passwords masked.
  returned: always
  type: list
  elements: dict
  sample: [{"item": "memory", "before": "256 MiB", "after": "512 MiB"}]
actions:
  description: What the run did (or would do in check mode).
  returned: always
  type: list
  elements: str
  sample: ["created disk /var/lib/libvirt/images/vm1.img", "defined", "started"]
disks:
  description:
    - One entry per disk in O(disks) - action (create, exists, none), format, size_gib, and
      growth_requested_gib or shrink_refused_gib when the requested size differs from an existing image.
  returned: always
  type: list
  elements: dict
virt_type:
  description: The domain type decision - requested, domain_type (kvm or qemu) and the reasons.
  returned: when the domain is created or compared
  type: dict
  sample: {"requested": "auto", "domain_type": "qemu", "reasons": ["No vmx/svm flag in /proc/cpuinfo."]}
removed_storage:
  description: Disk images and volumes removed with O(remove_storage).
  returned: when images were removed
  type: list
  elements: str
install_phase:
  description:
    - Where the install stands after the run - V(started) (the installer runs), V(completed)
      (it ended; the final configuration is in place), V(timed_out) (O(wait) ran out
      while the installer was running), V(pending) (defined, the installer starts with
      O(state=running)) or V(none) (no install phase - O(install.import), or a domain without
      an install record).
  returned: when O(install) is given
  type: str
  sample: completed
install:
  description:
    - The install source - source, wait (seconds), and for O(install.location) the cached kernel and
      initrd, the layout found (redhat, debian, ubuntu, suse), the cache directory and
      whether this run fetched anything (in check mode, whether it would). Also the
      installer's kernel command line and the name the kickstart file has in the initrd
      (never its content).
    - C(source_argument) (e.g. V(inst.repo=http://...), or null) and
      C(source_argument_decided_by) when the installer's kernel starts.
  returned: when O(install) is given
  type: dict
  sample: {"source": "location", "layout": "redhat", "fetched": false,
           "kernel": "/var/lib/libvirt/boot/kvmops/70ff82bfcc3ffe47/kernel",
           "initrd": "/var/lib/libvirt/boot/kvmops/70ff82bfcc3ffe47/initrd",
           "cmdline": "console=ttyS0 inst.ks=file:/ks.cfg", "injected_as": "/ks.cfg"}
os_info:
  description:
    - What O(os_variant) means for a new guest and which source decided - C(source) is
      V(libosinfo) or V(families), C(reason) says why; with the libosinfo C(id), C(distro),
      C(version), C(disk_bus), C(nic_model), C(q35), C(virtio_rng), C(guest_agent), the
      recommended and minimum memory (MiB), the installer's C(kernel_url_arg) and the
      C(cloud_user) of the distribution's cloud images.
    - For an existing guest C(source) is V(families) (libosinfo is read only when a guest is
      created or its installer starts).
  returned: always
  type: dict
  sample: {"os_variant": "centos7.0", "source": "libosinfo", "id": "http://centos.org/centos/7.0",
           "disk_bus": "virtio", "nic_model": "virtio", "q35": true, "kernel_url_arg": "inst.repo",
           "cloud_user": "centos"}
cloud_init:
  description:
    - The guest's cloud-init seed - seed (the ISO), seed_dir, instance_id, tool (xorriso, ...),
      status (V(built), V(rebuilt), V(unchanged); in check mode V(build), V(rebuild)),
      changed_files (seed files that differed from the ones on disk) and files (a short
      SHA-256 per file; never their content).
  returned: when O(cloud_init) is given and the domain is not removed
  type: dict
  sample: {"seed": "/var/lib/libvirt/boot/kvmops-seeds/web1/cidata.iso", "status": "unchanged",
           "instance_id": "iid-web1", "tool": "xorriso", "changed_files": [],
           "files": {"meta-data": "5c1c6b4e0f1e2d3a", "user-data": "0a9b3c4d5e6f7a8b"}}
base_images:
  description:
    - Per O(disks[].base_image) - url, path (in the cache), cache, digest, algorithm, clone,
      clone_exists, and fetched (downloaded by this run; in check mode, would be).
  returned: when a disk has O(disks[].base_image)
  type: list
  elements: dict
guest_agent:
  description: Whether the guest agent channel is wanted.
  returned: always
  type: bool
interfaces:
  description:
    - With O(wait_for), one entry per NIC in definition order - mac, network (libvirt network
      name or null), type, target (host-side device), interface (guest-side name, from the
      agent), sources (that answered for this NIC) and addresses (address, prefix, family
      V(ipv4)/V(ipv6), source V(lease)/V(agent)/V(arp)); an address seen by two sources is
      listed once per source.
  returned: when O(wait_for) is not V(none) and the guest runs
  type: list
  elements: dict
  sample: [{"mac": "52:54:00:6b:3c:58", "network": "default", "type": "network",
            "target": "vnet3", "interface": "eth0", "sources": ["lease", "agent"],
            "addresses": [{"address": "192.168.122.47", "prefix": 24, "family": "ipv4",
                           "source": "lease"},
                          {"address": "192.168.122.47", "prefix": 24, "family": "ipv4",
                           "source": "agent"}]}]
ansible_host:
  description:
    - Where to reach the guest - for O(wait_for=ssh) the SSH endpoint that answered (a port
      forward's address, or O(ssh_host)), else the first usable IPv4 address (NICs in order;
      loopback and link-local never).
  returned: when O(wait_for) is not V(none) and the guest runs
  type: str
  sample: 192.168.122.47
ansible_port:
  description: The SSH port that answered (O(wait_for=ssh)); null for O(wait_for=ip).
  returned: when O(wait_for) is not V(none) and the guest runs
  type: int
  sample: 2201
ssh_banner:
  description: The SSH server's identification line (O(wait_for=ssh)).
  returned: when O(wait_for) is not V(none) and the guest runs
  type: str
  sample: SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3
waited:
  description: Seconds spent in O(wait_for).
  returned: when O(wait_for) is not V(none) and the guest runs
  type: float
address_errors:
  description: Address sources that failed and why (e.g. the agent not running yet; libvirt without ARP support).
  returned: when a source failed during O(wait_for)
  type: dict
  sample: {"arp": "internal error: wrong nlmsg len"}
template:
  description:
    - Whether the domain is a template after the run (marked with O(template=true) in this run or
      an earlier one; in check mode, whether it would be).
  returned: always
  type: bool
  sample: false
clone:
  description:
    - For a guest made with O(clone_from) - C(source) (the source's name when the clone was
      made), C(source_uuid), C(mode) (V(full) or V(linked)), from the clone's record in its
      metadata, and C(seed) (the directory of the clone's own cloud-init seed, or null).
    - In the run that makes the clone (also in check mode) also C(disks) (per disk of the
      source - C(action) V(copy), V(link), V(volume-copy), V(volume-link) or V(share), C(source), and
      for a copy or an overlay C(kind) V(file) or V(volume), C(format), and C(path) or C(pool),
      C(volume), C(new_volume)), C(nvram) (the clone's NVRAM file, or null), C(seed) (the
      clone's seed ISO, or null) and C(seal) (with O(clone_from.seal) - C(method) and
      C(operations), the list of what the first-boot seal covers; else null).
  returned: when the guest is a clone
  type: dict
  sample: {"source": "web-template", "source_uuid": "88bfee97-579e-4c1b-b714-c9151a062936",
           "mode": "linked", "nvram": null, "seed": null, "seal": null,
           "disks": [{"action": "link", "kind": "file", "format": "qcow2",
                      "source": "/var/lib/libvirt/images/web-template.qcow2",
                      "path": "/var/lib/libvirt/images/web1.qcow2"}]}
'''


from ansible.module_utils.basic import AnsibleModule

from ansible_collections.kvmops.hypervisor.plugins.module_utils._module.runner import run_manager
from ansible_collections.kvmops.hypervisor.plugins.module_utils._guest import argspec as dargspec
from ansible_collections.kvmops.hypervisor.plugins.module_utils._guest.features import base as _features
from ansible_collections.kvmops.hypervisor.plugins.module_utils._guest.manager import GuestManager
from ansible_collections.kvmops.hypervisor.plugins.module_utils._guest import options as _options
from ansible_collections.kvmops.hypervisor.plugins.module_utils._install import console_hint


def argument_spec():
    """One guest's options with the cloud-guest options (shared with virt_install_domains:
    _guest/argspec.py, _guest/options.py), plus uri."""
    return _options.with_cloud_options(dargspec.domain_argument_spec())


def build_options(module):
    """The guest's normalised options (_guest/options.py; a KvmopsError on bad input, before
    anything is touched)."""
    options = _options.from_params(module.params)
    warning = dargspec.vnc_password_warning(options.spec)
    if warning:
        module.warn(warning)
    return options


def make_manager(module, conn, options):
    """The guest's manager with the features its options enable: the install-phase code is
    imported only when the guest has an install source (a re-run of a plain guest skips its
    import time), the cloud-guest code only when a cloud option is given."""
    spec = options.spec
    if spec.get('cmdline') and spec.get('graphics'):
        hint = console_hint.serial_last_warning(spec['cmdline'], spec['graphics'], 'cmdline')
        if hint:
            module.warn(hint)
    install = options.install
    if not options.cloud and install and install['source'] == 'location':
        hint = console_hint.serial_last_warning(install.get('extra_args'), spec.get('graphics'))
        if hint:
            module.warn(hint)
    return GuestManager(
        conn, spec, check_mode=module.check_mode, diff_mode=module._diff,
        run_command=module.run_command, qemu_img=module.get_bin_path('qemu-img'),
        warn=module.warn,
        features=_features.for_guest(install, options.cloud,
                                     openssl=module.get_bin_path('openssl') if options.cloud
                                     else None))


def _failure_fields(options, manager):
    if manager is None:
        return {}
    return dict(name=options.name, actions=manager.actions, changed=manager.changed)


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    run_manager(module,
                prepare=lambda: build_options(module),
                build=lambda conn, options: make_manager(module, conn, options),
                subject=lambda options: 'domain %s' % options.name,
                fail_fields=_failure_fields)


if __name__ == '__main__':
    main()
