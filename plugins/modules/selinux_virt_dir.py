#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: kvmops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
module: selinux_virt_dir
short_description: Make a custom image directory usable by libvirt guests on SELinux hosts
version_added: 1.0.0
author:
  - kvmops team (@kvmops)
description:
  - Keeps guest images in a directory other than C(/var/lib/libvirt/images) without C(Permission denied)
    on SELinux hosts, the way the classic walk-through does it by hand
    (semanage fcontext -a -t virt_image_t '/vm-images(/.*)?', then C(restorecon -R -v /vm-images),
    then C(setsebool -P virt_use_nfs 1)).
  - Adds a local file-context rule for the regular expression '<path>(/.*)?' with type O(setype) (or an equivalence rule, see
    O(equivalent_to)), sets SELinux booleans persistently, then relabels the directory with one
    C(restorecon -R) call and returns the files it relabelled.
  - Drives the SELinux command-line tools (C(semanage), C(restorecon), C(matchpathcon), C(getenforce)), never the
    Python bindings, so it works with whatever Python interpreter Ansible picked on the host.
  - Reads the local rules once per run and changes only what differs. All changes to the policy
    store (rule first, then booleans) are made in one C(semanage import) transaction, so a failure
    leaves the store as it was; the relabel runs after it. A failure says which step failed and what
    was already done.
  - B(SELinux enforcing or permissive) - rule, booleans and relabel.
    B(Disabled, userspace installed) - the rule and booleans are recorded in the policy store so they
    hold once SELinux is enabled; the relabel is skipped with a warning and RV(selinux=disabled).
    B(No SELinux userspace) (a typical Debian/Ubuntu host using AppArmor) - nothing SELinux is
    changed, RV(selinux=absent) and the security drivers libvirt reports are returned; O(required=true) makes that a failure.
  - When the path is on an NFS or CIFS mount, the matching boolean (C(virt_use_nfs), C(virt_use_samba))
    is turned on (see O(auto_booleans)) and the relabel is skipped, because files there cannot carry
    SELinux labels.
options:
  path:
    description:
      - Absolute path of the image directory, for example C(/vm-images).
      - The rule covers the directory and everything below it. Dots are escaped in the rule's regular
        expression; a path with other regular-expression characters (* + ? ^ $ | \ ( ) [ ] { }), quotes,
        whitespace or newlines, a path that is not normalised (C(//), C(/./), C(/../)), C(/) itself
        and system directories such as C(/var), C(/etc) or C(/usr) are refused before anything changes.
    type: path
    required: true
  state:
    description:
      - V(present) adds or fixes the rule, sets the booleans and relabels.
      - V(absent) removes the local rule for O(path) (type rule or equivalence) and relabels the
        directory back to what the remaining rules say. It never deletes the directory or its files.
    type: str
    choices: [present, absent]
    default: present
  setype:
    description:
      - SELinux type for the directory and its files. Defaults to C(virt_image_t) (disk images that
        guests write) when O(equivalent_to) is not set.
      - Use C(virt_content_t) for read-only media such as installation ISOs.
      - Mutually exclusive with O(equivalent_to).
    type: str
  equivalent_to:
    description:
      - Instead of a type, label O(path) like this directory
        (C(semanage fcontext -a -e /var/lib/libvirt/images /vm-images)), so files below O(path) get the labels
        the policy gives the same files below O(equivalent_to).
      - Mutually exclusive with O(setype).
    type: path
  create:
    description:
      - Create the directory (and its parents) if it is missing, with O(mode), O(owner) and O(group).
      - With V(false) and a missing directory, the rule is still recorded and nothing is relabelled.
      - Only used with O(state=present). The directory is managed also on hosts without SELinux
        (RV(selinux=absent)), so one task serves a mixed fleet.
    type: bool
    default: true
  mode:
    description:
      - Permissions of the directory, as for M(ansible.builtin.file) (for example C('0755') or C(u=rwx,g=rx,o=rx)).
      - The libvirt QEMU user must be able to enter the directory.
    type: raw
  owner:
    description: Owner of the directory.
    type: str
  group:
    description: Group of the directory.
    type: str
  relabel:
    description:
      - Run C(restorecon -R -v) on O(path) after the rule is in place (one recursive call, never one
        per file), and return the relabelled paths (RV(relabelled), capped) and their number (RV(relabelled_count)).
      - A relabel that changes files makes the task V(changed), so re-running the module fixes files
        that were moved in with the wrong label.
      - In check mode C(restorecon -n -v) reports what would be relabelled.
    type: bool
    default: true
  booleans:
    description:
      - 'SELinux booleans to set persistently, for example C({virt_use_nfs: true, virt_use_samba: true}).'
      - Applied with both states. O(state=absent) never resets booleans by itself (other directories may need them).
      - Unknown boolean names fail before anything changes.
    type: dict
  auto_booleans:
    description:
      - When O(path) is on an NFS mount turn on C(virt_use_nfs), on a CIFS/SMB mount C(virt_use_samba), and say
        so in RV(notes). The mount is found in C(/proc/self/mountinfo) (longest matching mount point).
      - A value given for the same boolean in O(booleans) wins (with a warning if it is V(false)).
    type: bool
    default: true
  required:
    description:
      - Fail when the host has no SELinux userspace or policy store, instead of returning RV(selinux=absent).
    type: bool
    default: false
extends_documentation_fragment:
  - kvmops.hypervisor.libvirt
  - kvmops.hypervisor.attributes
  - kvmops.hypervisor.attributes.actiongroup_kvm
  - kvmops.hypervisor.attributes.idempotent
attributes:
  check_mode:
    support: full
    details:
      - Reads the rules and booleans and runs C(restorecon -n -v). When the rule itself would change,
        the files that would be relabelled cannot be known yet and RV(relabelled_count) is V(null).
  diff_mode:
    support: full
    details: Shows the directory, the local rules for O(path) and the managed booleans before and after.
  idempotent:
    support: full
notes:
  - O(uri) is used only to report which security drivers libvirt uses (RV(libvirt_security_models))
    when SELinux is disabled or absent; the module works without libvirt.
  - Each change to the policy store rebuilds the policy (about a second); the module makes at most one
    change transaction per run.
  - SELinux booleans are global to the host; O(state=absent) leaves them as they are.
requirements:
  - On SELinux hosts C(semanage) (policycoreutils-python-utils), C(restorecon) (policycoreutils) and
    C(matchpathcon)/C(getenforce) (libselinux-utils on RHEL/Fedora, selinux-utils on Debian/Ubuntu).
seealso:
  - module: community.general.sefcontext
    description: Generic SELinux file-context rules (needs the SELinux Python bindings in the module's interpreter).
  - module: ansible.posix.seboolean
    description: Generic SELinux booleans.
'''

EXAMPLES = r'''
# The guide's /vm-images walk-through, step by step:
#   semanage fcontext -a -t virt_image_t '/vm-images(/.*)?'
#   restorecon -R -v /vm-images
#   semanage fcontext -l                         # check the rule
#   setsebool -P virt_use_nfs 1                  # images on NFS
#   setsebool -P virt_use_samba 1                # images on Samba/CIFS
- name: semanage fcontext -a -t virt_image_t '/vm-images(/.*)?' and restorecon -R -v /vm-images
  kvmops.hypervisor.selinux_virt_dir:
    path: /vm-images
    setype: virt_image_t
    mode: '0711'
    owner: root
    group: root
  register: vm_images

- name: What restorecon -v printed, and what matchpathcon says now
  ansible.builtin.debug:
    msg: >-
      {{ vm_images.relabelled_count }} path(s) relabelled (first ones {{ vm_images.relabelled[:5] }}),
      matchpathcon /vm-images = {{ vm_images.matchpathcon }}, SELinux {{ vm_images.selinux }}

- name: Check the rule the way the guide does, with semanage fcontext -l
  ansible.builtin.command: semanage fcontext -l -C
  register: local_rules
  changed_when: false

- name: The rule is there
  ansible.builtin.assert:
    that:
      - "'/vm-images(/.*)?' in local_rules.stdout"
      - "'virt_image_t' in local_rules.stdout"

- name: setsebool -P virt_use_nfs 1 and setsebool -P virt_use_samba 1 (images on NFS or Samba)
  kvmops.hypervisor.selinux_virt_dir:
    path: /vm-images
    booleans:
      virt_use_nfs: true
      virt_use_samba: true

- name: Read-only installation media (ISOs) in their own directory
  kvmops.hypervisor.selinux_virt_dir:
    path: /srv/iso
    setype: virt_content_t

- name: Label /vm-images exactly like /var/lib/libvirt/images (semanage fcontext -a -e)
  kvmops.hypervisor.selinux_virt_dir:
    path: /vm-images
    equivalent_to: /var/lib/libvirt/images

- name: Images on an NFS mount; virt_use_nfs is turned on automatically
  kvmops.hypervisor.selinux_virt_dir:
    path: /mnt/nfs/vm-images
    create: false

- name: Hosts must have SELinux (fail on AppArmor hosts instead of reporting selinux=absent)
  kvmops.hypervisor.selinux_virt_dir:
    path: /vm-images
    required: true

- name: Remove the rule and relabel back (the directory and the images stay)
  kvmops.hypervisor.selinux_virt_dir:
    path: /vm-images
    state: absent
'''

RETURN = r'''
path:
  description: The directory, normalised (no trailing slash).
  returned: always
  type: str
  sample: /vm-images
state:
  description:
    - C(directory) when O(path) exists after the run, else C(absent). Ansible adds it, with C(uid), C(gid),
      C(owner), C(group), C(mode) and C(size) of the path, as for M(ansible.builtin.file).
  returned: always
  type: str
  sample: directory
selinux:
  description:
    - V(enforcing) or V(permissive) (everything applied), V(disabled) (SELinux userspace installed but
      the kernel has SELinux off; rules and booleans recorded, no relabel) or V(absent) (no SELinux
      userspace or policy store; nothing SELinux changed).
  returned: always
  type: str
  sample: enforcing
rule:
  description:
    - The rule for O(path) after the run - C(regex) and C(setype) for a type rule,
      C(path) and C(equivalent_to) for an equivalence rule. V(null) with O(state=absent) or RV(selinux=absent).
  returned: always
  type: dict
  sample: {regex: '/vm-images(/.*)?', setype: virt_image_t}
rule_source:
  description:
    - V(local) for a local rule (what C(semanage fcontext -l -C) lists); V(policy) when the distribution's
      policy already labels O(path) with O(setype) (for example C(/var/lib/libvirt/images)), so no local rule was added.
  returned: always
  type: str
  sample: local
matchpathcon:
  description:
    - The context the policy store gives O(path) (C(matchpathcon <path>)) after the run; in check mode, before it.
  returned: when matchpathcon is installed
  type: str
  sample: system_u:object_r:virt_image_t:s0
booleans:
  description:
    - The managed booleans, each with its persistent value C(before) and C(after) the run (and
      C(running_before), the running value, when SELinux is enabled).
  returned: always
  type: dict
  sample: {virt_use_nfs: {before: false, after: true}}
relabelled:
  description: Paths that restorecon relabelled (or would, in check mode), at most the first 100.
  returned: always
  type: list
  elements: str
  sample: [/vm-images, /vm-images/guest1.img]
relabelled_count:
  description:
    - How many paths were (or would be) relabelled in total; V(null) in check mode when the rule would
      change first, so restorecon cannot tell yet.
  returned: always
  type: int
  sample: 2
relabel_skipped:
  description: Why no relabel ran (SELinux disabled, O(relabel=false), path missing, network file system), or V(null).
  returned: always
  type: str
  sample: 'SELinux is disabled: restorecon would do nothing'
network_fs:
  description: The NFS/CIFS mount holding O(path) (C(kind), C(fstype), C(mount_point), C(source)), or V(null).
  returned: always
  type: dict
  sample: {kind: nfs, fstype: nfs4, mount_point: /mnt/nfs, source: 'filer:/export'}
semanage_commands:
  description: The C(semanage import) lines of the store change (made, or that would be made in check mode).
  returned: always
  type: list
  elements: str
  sample: ["fcontext -a -f a -t virt_image_t '/vm-images(/.*)?'", "boolean -m --on virt_use_nfs"]
notes:
  description: What the module decided and why, for example booleans turned on because of an NFS mount.
  returned: always
  type: list
  elements: str
libvirt_security_models:
  description:
    - The security drivers libvirt reports in its host capabilities (for example V(selinux), V(apparmor),
      V(dac), V(none)), when SELinux is disabled or absent and libvirt answers on O(uri); else V(null).
  returned: always
  type: list
  elements: str
  sample: [apparmor, dac]
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.kvmops.hypervisor.plugins.module_utils._common.argspec import uri_option
from ansible_collections.kvmops.hypervisor.plugins.module_utils._module.runner import run_manager
from ansible_collections.kvmops.hypervisor.plugins.module_utils._host.mountinfo import resolve_existing
from ansible_collections.kvmops.hypervisor.plugins.module_utils._selinux.directory import Directory
from ansible_collections.kvmops.hypervisor.plugins.module_utils._selinux.virt_dir import (
    C_LOCALE, SELinuxCLI, VirtDirManager, libvirt_security_models, normalize_params)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type='path', required=True),
            state=dict(type='str', choices=['present', 'absent'], default='present'),
            setype=dict(type='str'),
            equivalent_to=dict(type='path'),
            create=dict(type='bool', default=True),
            mode=dict(type='raw'),
            owner=dict(type='str'),
            group=dict(type='str'),
            relabel=dict(type='bool', default=True),
            booleans=dict(type='dict'),
            auto_booleans=dict(type='bool', default=True),
            required=dict(type='bool', default=False),
            uri=uri_option(),
        ),
        mutually_exclusive=[('setype', 'equivalent_to')],
        supports_check_mode=True,
    )
    p = module.params

    def build(conn, params):
        path = params['path']
        resolved = resolve_existing(path)
        if resolved != path:
            module.warn('%s resolves to %s through a symbolic link. File-context rules are '
                        'matched against the real path of each file, so a rule for %s may '
                        'never apply; consider path: %s.' % (path, resolved, path, resolved))

        def run(argv, data=None):
            return module.run_command(argv, data=data, binary_data=data is not None,
                                      environ_update=C_LOCALE)

        directory = Directory(module, path, p['create']) if p['state'] == 'present' else None
        return VirtDirManager(SELinuxCLI(run, module.get_bin_path), params, module.check_mode,
                              directory=directory, diff_mode=module._diff,
                              security_models=lambda: libvirt_security_models(p['uri']))

    # The manager reads libvirt's security drivers itself, only where SELinux is missing.
    run_manager(module, build, prepare=lambda: normalize_params(p), connect=False, lxml=False,
                fail_fields=lambda params, manager: (dict(commands=manager.cli.calls)
                                                     if manager is not None else {}))


if __name__ == '__main__':
    main()
