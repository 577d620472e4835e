#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: kvmops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

# The suboptions of guests and defaults are virt_install_domain's options without their
# top-level defaults, from one text: the doc fragment kvmops.hypervisor.guest (its BATCH).
DOCUMENTATION = r"""
---
module: virt_install_domains
short_description: Many libvirt guests in one task, created, started and installed in parallel
version_added: 1.1.0
description:
  - Converges a whole list of guests (each item takes the options of
    M(kvmops.hypervisor.virt_install_domain)) in one module run over one libvirt connection.
  - Every guest is planned and checked first, without side effects (its manager in check
    mode). When one guest cannot be made (a missing ISO, kernel or backing image, an image
    that exists with another size than asked for, a name held by a domain that kvmops did not
    create while the guest asks for an install, two guests sharing a writable image or a
    name, bad options), the run fails before anything is created, and the error names every
    such guest.
  - Then the guests that need a change are defined, get their disks, start and install in
    parallel, at most O(parallel) at a time; each guest's install phase waits on its own
    (O(guests[].wait)). A guest whose plan changes nothing is not touched again.
  - Volume creation in one storage pool is serialised (libvirt refuses concurrent jobs on a
    pool, "has asynchronous jobs running", which is also retried when another tool holds the
    pool); one install source is fetched into its cache once, by the first guest that needs it.
  - Cloud-image guests (O(guests[].cloud_init), O(guests[].disks[].base_image),
    O(guests[].port_forwards), O(guests[].wait_for)) converge side by side like the others; a
    base image that several guests clone is fetched once, and each guest waits for its own
    address or SSH.
  - When a guest fails during the run the others still finish; the task then fails, naming
    each failed guest with its error, and RV(guests) holds every guest's result.
  - 'Reading this page: the options of the batch are O(defaults), O(parallel), O(preflight) and
    O(uri); O(guests) holds the options of one guest, documented once, in its suboptions (the
    long part of the list, between O(defaults) and O(parallel)). O(defaults) takes the same
    options.'
author:
  - kvmops team (@kvmops)
extends_documentation_fragment:
  - kvmops.hypervisor.guest.batch
  - kvmops.hypervisor.libvirt
  - kvmops.hypervisor.attributes
  - kvmops.hypervisor.attributes.actiongroup_kvm
  - kvmops.hypervisor.attributes.idempotent
attributes:
  check_mode:
    support: full
    details: Check mode plans every guest and creates nothing at all.
  diff_mode:
    support: full
    details: One diff per changed guest (the affected elements of its persistent XML, passwords masked).
  idempotent:
    support: full
options:
  guests:
    description:
      - The guests, each a dictionary of M(kvmops.hypervisor.virt_install_domain)'s options
        (O(guests[].name) required). Options an item leaves unset come from O(defaults), then
        from virt_install_domain's defaults.
    type: list
    elements: dict
    required: true
  defaults:
    description:
      - Options every guest gets unless it sets them itself. It takes the options of one guest,
        the suboptions of O(guests) (not repeated here), except O(guests[].name); they are
        checked as in O(guests), before anything is made, and the no_log ones (such as
        O(guests[].graphics.password)) are masked as there.
      - Top-level keys only (a guest's O(guests[].disks) or O(guests[].install) replaces the
        default's as a whole, as the guests role's C(combine) does). A guest cannot unset what
        O(defaults) sets (null means unset); leave such an option out of O(defaults).
    type: dict
  preflight:
    description:
      - What the run does with the plan of every guest (made first, without side effects),
        and with the preflight of the media of the guests it creates - kernel, initrd,
        CD-ROM disks, backing images, O(guests[].install.location) (a URL gets one GET, with
        O(guests[].install.validate_certs) and O(guests[].install.timeout), unless its tree is
        in the cache already), O(guests[].install.cdrom) and O(guests[].install.kickstart).
      - V(fail) - a guest that cannot be made fails the run before anything is created, then
        the guests are converged; RV(preflight) comes with the failure.
      - V(report) - check mode only (C(check_mode=true) on the task). The plan is the whole
        run, and a guest that cannot be made does not fail it - RV(guests[].failed) and
        RV(guests[].msg) say why, RV(preflight.media) lists every missing, unreadable or
        unreachable medium. What check mode cannot plan yet is deferred, not failed, and
        listed in RV(preflight.deferred) (not in RV(guests)) - a guest with a new image in a
        directory that does not exist yet, and every guest when libvirt is not installed or
        does not answer yet (a bare host before its libvirt is installed). The guests role
        checks its guests this way before any of them starts.
    type: str
    choices: [fail, report]
    default: fail
  parallel:
    description:
      - How many guests are worked on at a time. Default - twice the host's CPUs, at least 4.
      - A guest waiting for its installer (O(guests[].wait)) holds its place until the
        install ends, so give at least as many as guests install side by side.
    type: int
notes:
  - Requires libvirt-python and python3-lxml on the managed host, and qemu-img to create qcow2 images.
  - Guests without an install source never load the install-media code.
  - A long O(guests[].wait) keeps the task open; with V(-1) consider Ansible's C(async).
seealso:
  - module: kvmops.hypervisor.virt_install_domain
requirements:
  - python3-lxml
"""

EXAMPLES = r"""
# The guide's two guests, installing side by side (each waits for its own installer):
- name: CentOS 7 and Windows 2012 at once
  kvmops.hypervisor.virt_install_domains:
    defaults:
      networks:
        - bridge: br0
    guests:
      - name: vm1
        memory: 1024
        os_variant: centos7.0
        disks:
          - path: /vm-images/vm1.img
            size: 10
            format: raw
        graphics:
          type: none
        install:
          location: http://mirror.example.org/centos/7/os/x86_64/
          extra_args: console=tty0 console=ttyS0,115200
        wait: 3600
      - name: windows1
        memory: 2GiB
        cpu: host
        vcpus: 2
        os_variant: win2k12r2
        disks:
          - path: /vm-images/windows1.img
            size: 40
        graphics:
          type: vnc
          password: "{{ vault_vnc_password }}"
        install:
          cdrom: /var/lib/libvirt/boot/win2012.iso
        wait: 7200

# Ten tiny guests from one template, four at a time
- name: A lab of ten guests
  kvmops.hypervisor.virt_install_domains:
    parallel: 4
    defaults:
      memory: 256MiB
      virt_type: qemu
      os_variant: linux
      kernel: /var/lib/libvirt/boot/vmlinuz
      initrd: /var/lib/libvirt/boot/initrd.img
      cmdline: console=ttyS0
      networks:
        - network: default
      graphics:
        type: vnc
        listen: 127.0.0.1
    guests: "{{ query('ansible.builtin.sequence', 'start=1 end=10 format=lab%02d')
                | map('community.general.dict_kv', 'name') | list }}"
  register: lab

- name: Which guests changed
  ansible.builtin.debug:
    msg: "{{ lab.summary.changed_guests }}"

# Remove a whole list of guests with their disk images
- name: The lab is gone
  kvmops.hypervisor.virt_install_domains:
    defaults:
      state: absent
      remove_storage: true
    guests:
      - name: lab01
      - name: lab02
"""

RETURN = r"""
guests:
  description:
    - One result per guest, in the order of O(guests) - the fields
      M(kvmops.hypervisor.virt_install_domain) returns, plus RV(guests[].elapsed), and
      RV(guests[].failed) and RV(guests[].msg) for a guest that failed.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Name of the domain.
      type: str
      sample: vm1
    changed:
      description: Whether this guest changed (or would in check mode).
      type: bool
    failed:
      description: This guest failed; RV(guests[].msg) says why.
      type: bool
      returned: when the guest failed
    msg:
      description: The guest's error.
      type: str
      returned: when the guest failed
    state:
      description: Power state after the run (running, stopped, paused, crashed, suspended or absent).
      type: str
    uuid:
      description: UUID of the domain (null when absent, or in check mode before it exists).
      type: str
    xml:
      description: The persistent XML after the run, without secrets.
      type: str
    vnc:
      description: The VNC console - listen address, port and display.
      type: dict
    serial:
      description: Path of the serial console (pty or log file).
      type: str
    restart_required:
      description: The persistent definition changed while the domain runs (in this run or an earlier one); a cold restart applies it.
      type: bool
    differences:
      description: What differed from the options (item, before, after), passwords masked.
      type: list
      elements: dict
    actions:
      description: What the run did (or would do in check mode) for this guest.
      type: list
      elements: str
      sample: ["created disk /var/lib/libvirt/images/vm1.img", "defined", "started"]
    disks:
      description: One entry per disk - action (create, exists, none), format, size_gib.
      type: list
      elements: dict
    virt_type:
      description: The domain type decision - requested, domain_type and the reasons.
      type: dict
      returned: when the domain is created or compared
    install_phase:
      description: Where the install stands - started, completed, timed_out, pending or none.
      type: str
      returned: when the guest has an install
    install:
      description: The install source and, for a location, the cached kernel and initrd.
      type: dict
      returned: when the guest has an install
    os_info:
      description:
        - What O(guests[].os_variant) means for a new guest and which source decided (V(libosinfo) or V(families)),
          as virt_install_domain returns it.
      type: dict
      returned: when the guest was planned
    cloud_init:
      description: The guest's cloud-init seed, as virt_install_domain returns it.
      type: dict
      returned: when O(guests[].cloud_init) is given and the guest is not removed
    base_images:
      description: The base image of each clone (O(guests[].disks[].base_image)), as virt_install_domain returns it.
      type: list
      elements: dict
      returned: when a disk has a base_image
    interfaces:
      description: Addresses per NIC and their source, after O(guests[].wait_for).
      type: list
      elements: dict
      returned: when O(guests[].wait_for) is V(ip) or V(ssh)
    ansible_host:
      description: The address to reach the guest at (after O(guests[].wait_for)).
      type: str
      returned: when O(guests[].wait_for) is V(ip) or V(ssh)
    ansible_port:
      description: The SSH port (a forwarded hypervisor port, or null for 22).
      type: int
      returned: when O(guests[].wait_for) is V(ip) or V(ssh)
    ssh_banner:
      description: The SSH banner the guest answered with (O(guests[].wait_for=ssh)).
      type: str
      returned: when O(guests[].wait_for) is V(ssh)
    address_errors:
      description: Address sources that failed and why, as virt_install_domain returns them.
      type: dict
      returned: when a source failed during O(guests[].wait_for)
    template:
      description: Whether the guest is a template after the run (O(guests[].template)), as virt_install_domain returns it.
      type: bool
      returned: when the guest was planned
    clone:
      description:
        - For a guest made with O(guests[].clone_from) - C(source), C(source_uuid), C(mode), C(seed), and in the run
          that makes it C(disks) (what was copied, linked or shared), C(nvram) and C(seal), as virt_install_domain
          returns it.
      type: dict
      returned: when the guest is a clone
    warnings:
      description: This guest's warnings (also shown as the task's warnings, prefixed with its name).
      type: list
      elements: str
      returned: when the guest has warnings
    elapsed:
      description: Seconds spent on this guest (its plan and, when it changed, its run).
      type: float
preflight:
  description: What the preflight found (O(preflight)).
  returned: always, and with the failure of a guest's plan
  type: dict
  contains:
    media:
      description:
        - One entry per medium of a new guest that cannot be used - C(guest), C(option)
          (V(install.cdrom), V(disks[1].path), ...), C(source) (the path or URL), C(problem)
          (a few words, V(no such file), V(not readable), V(not an ISO 9660 or UDF image),
          V(HTTP 404), V([Errno 111] Connection refused)) and C(msg) (with the fix).
      type: list
      elements: dict
      sample: [{"guest": "vm2", "option": "install.cdrom", "source": "/vm-images/iso/w2012.iso",
                "problem": "no such file", "msg": "install.cdrom=/vm-images/iso/w2012.iso cannot be used (no such file): ..."}]
    deferred:
      description:
        - O(preflight=report) only - the guests check mode cannot plan yet, each C(guest),
          C(reason) (V(directory) or V(libvirt)) and C(msg).
      type: list
      elements: dict
      sample: [{"guest": "vm1", "reason": "directory",
                "msg": "its image directory /vm-images (disks[0]) does not exist yet; ..."}]
summary:
  description: Counts and names over all guests, the workers used and the module's own time.
  returned: always
  type: dict
  contains:
    total:
      description: Number of guests.
      type: int
    changed:
      description: Number of guests that changed.
      type: int
    unchanged:
      description: Number of guests left as they were.
      type: int
    failed:
      description: Number of guests that failed.
      type: int
    changed_guests:
      description: Names of the guests that changed.
      type: list
      elements: str
    failed_guests:
      description: Names of the guests that failed.
      type: list
      elements: str
    parallel:
      description: Workers used.
      type: int
    elapsed:
      description: Seconds from the plan to the last guest.
      type: float
  sample: {"total": 10, "changed": 1, "unchanged": 9, "failed": 0, "changed_guests": ["lab3"],
           "failed_guests": [], "parallel": 4, "elapsed": 0.71}
"""

import sys

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.kvmops.hypervisor.plugins.module_utils._common.argspec import uri_option
from ansible_collections.kvmops.hypervisor.plugins.module_utils._common.errors import KvmopsError
from ansible_collections.kvmops.hypervisor.plugins.module_utils._module.runner import fail_on_missing_lxml
from ansible_collections.kvmops.hypervisor.plugins.module_utils._guest import options as _options
from ansible_collections.kvmops.hypervisor.plugins.module_utils._guest import argspec as dargspec
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt.connection import (
    HAS_LIBVIRT, LibvirtConnectionError, connection, fail_on_missing_libvirt)

from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt.xml import HAS_LXML

try:
    from ansible_collections.kvmops.hypervisor.plugins.module_utils._guest import batch
except ImportError:  # pragma: no cover - lxml missing: reported through HAS_LXML
    batch = None


def argument_spec():
    """guests takes one guest's options without their top-level defaults, so an unset option
    can come from defaults; batch.prepare() validates defaults against the same options and
    applies the real defaults. defaults is a plain dict here so that the guest options are
    documented once (under guests[]); BatchModule masks its no_log values."""
    options = dargspec.without_defaults(_options.guest_options())
    return dict(
        guests=dict(type='list', elements='dict', required=True, options=options),
        defaults=dict(type='dict'),
        parallel=dict(type='int'),
        preflight=dict(type='str', default='fail', choices=list(dargspec.PREFLIGHT_MODES)),
        uri=uri_option(),
    )


class BatchModule(AnsibleModule):
    """AnsibleModule that masks the no_log values in defaults (a VNC password, cloud-init
    passwords) as it does for options its argument spec declares: in the invocation it logs on
    the host, and in every result."""

    def _log_invocation(self):
        # called by AnsibleModule.__init__, before it logs the invocation (syslog/journal)
        hide_defaults_secrets(self)
        super(BatchModule, self)._log_invocation()


def hide_defaults_secrets(module):
    module.no_log_values.update(dargspec.secret_values(
        dargspec.without_defaults(_options.guest_options()), module.params.get('defaults')))


def defer_all(module, why):
    """preflight=report when libvirt is not there yet: nothing can be planned, nothing fails."""
    names = [g.get('name') for g in module.params['guests']]
    module.exit_json(changed=False, guests=[], summary={
        'total': 0, 'changed': 0, 'unchanged': 0, 'failed': 0, 'changed_guests': [],
        'failed_guests': [], 'parallel': 0, 'elapsed': 0.0},
        preflight={'media': [], 'deferred': [
            {'guest': name, 'reason': 'libvirt', 'msg': why} for name in names]})


def main():
    module = BatchModule(argument_spec=argument_spec(), supports_check_mode=True)
    hide_defaults_secrets(module)  # also when the invocation is not logged (no_log)
    report = module.params['preflight'] == 'report'
    if report and not module.check_mode:
        module.fail_json(msg='preflight=report plans only and needs check mode: set '
                         'check_mode: true on the task (or preflight=fail to converge).')
    if report and not (HAS_LIBVIRT and HAS_LXML):
        defer_all(module, 'libvirt is not installed yet (no %s for %s on this host); check '
                  'mode cannot plan the guest before a real run installs it'
                  % ('libvirt-python' if not HAS_LIBVIRT else 'python3-lxml', sys.executable))
    fail_on_missing_libvirt(module)
    fail_on_missing_lxml(module)
    parallel = module.params['parallel']
    if parallel is not None and parallel < 1:
        module.fail_json(msg='parallel=%s: give at least 1 (or leave it unset).' % parallel)
    try:
        # a guest with bad options is kept with its error: the plan pass checks the others
        # too, so the failure names every guest that cannot be made, not only the first
        guests = batch.prepare(module.params['guests'], module.params['defaults'],
                               collect=True)
        for g in guests:
            warning = g.spec and dargspec.vnc_password_warning(g.spec)
            if warning:
                module.warn('%s: %s' % (g.name, warning))
        with connection(module.params['uri']) as conn:
            result = batch.Batch(conn, guests, parallel=parallel, check_mode=module.check_mode,
                                 diff_mode=module._diff, run_command=module.run_command,
                                 qemu_img=module.get_bin_path('qemu-img'),
                                 preflight=module.params['preflight'],
                                 openssl=module.get_bin_path('openssl')).run()
    except LibvirtConnectionError as exc:
        if not report:
            module.fail_json(**exc.fail_kwargs())
        defer_all(module, 'libvirt does not answer yet: %s' % exc)
    except KvmopsError as exc:
        for w in exc.result.pop('warnings', []):
            module.warn(w)
        module.fail_json(**exc.fail_kwargs())
    for w in result.pop('warnings'):
        module.warn(w)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
