#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: kvmops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
module: vnc_listen
short_description: Choose where guests' VNC consoles listen, safely, and say how to reach them
version_added: 1.0.0
author:
  - kvmops team (@kvmops)
description:
  - Sets the address QEMU's VNC servers listen on, either host-wide in libvirt's C(qemu.conf)
    (O(scope=host)) or in the persistent C(<graphics type='vnc'>) of chosen guests (O(scope=domains)).
  - Refuses an address outside 127.0.0.0/8 and C(::1) unless O(allow_insecure=true) or TLS is really on
    (C(vnc_tls = 1), C(ca-cert.pem), C(server-cert.pem) and C(server-key.pem) non-empty and readable by
    QEMU's user in the certificate directory libvirt uses) B(with x509 client verification)
    (C(vnc_tls_x509_verify = 1), O(tls_verify)). A VNC password does not replace verification, as VNC
    authentication is a DES challenge over at most 8 bytes that anyone who reaches the port can guess at.
    The refusal names what is missing and explains the safer way instead, an SSH tunnel per console.
  - Always returns RV(displays) (like C(virsh vncdisplay)) and RV(ssh_tunnels) for every running guest
    with VNC, so a play can print how to reach each console.
  - Edits C(qemu.conf) line by line and keeps every other byte of it (comments, the commented defaults,
    other settings). A key is set by replacing its active line, else by writing the active line right
    after libvirt's commented example (C(#vnc_listen = "0.0.0.0")), else at the end of the file.
    The result is parsed with a strict parser of libvirt's configuration syntax before it is written,
    atomically, keeping owner, mode and SELinux context.
  - Never restarts the libvirt daemon. RV(daemon_restart_required) says when C(qemu.conf) changed; restart
    C(libvirtd) (or C(virtqemud) on split-daemon hosts) in a handler. Running guests keep their VNC address
    until they are restarted (libvirt cannot change it live); RV(domains_restart_required) names them.
options:
  scope:
    description:
      - V(host) edits C(qemu.conf) (O(config)); it applies to every guest whose graphics have no listen address
        of their own, after a daemon restart and a restart of the guest.
      - V(domains) edits the persistent definition of the guests in O(domains).
    type: str
    choices: [host, domains]
    default: host
  listen:
    description:
      - The IP address to listen on (IPv4 or IPv6 literal, without brackets). V(0.0.0.0) or V(::) listen on all
        interfaces. Host names are refused.
      - With O(scope=host) this is C(vnc_listen); when C(qemu.conf) has no active C(vnc_listen) and O(listen) is
        libvirt's default V(127.0.0.1), the file is left alone.
      - With O(scope=domains) the guest's C(<graphics listen=...>) and its C(<listen type='address'>) are set; a
        guest listening on a UNIX socket or a network is switched to this address.
    type: str
    default: 127.0.0.1
  domains:
    description:
      - Names of the guests to edit, with O(scope=domains). V(all) (alone) selects every persistent guest that
        has VNC graphics; guests without VNC are then skipped (see RV(domains_skipped)).
      - A named guest that does not exist, is transient or has no VNC graphics is an error, reported before
        anything changes.
      - Required with O(scope=domains), refused with O(scope=host).
    type: list
    elements: str
  tls:
    description:
      - Host-wide C(vnc_tls). With V(true) also sets C(vnc_tls_x509_verify) from O(tls_verify).
      - When TLS gets enabled the server certificates (C(ca-cert.pem), C(server-cert.pem), C(server-key.pem)) must be
        in the certificate directory, or guests with VNC would not start; outside check mode that is an error.
      - Unset leaves C(vnc_tls) as it is. Only with O(scope=host).
    type: bool
  tls_verify:
    description:
      - C(vnc_tls_x509_verify) when O(tls=true), so that clients need a certificate signed by the CA. Recommended.
    type: bool
    default: true
  tls_cert_dir:
    description:
      - C(vnc_tls_x509_cert_dir). It must exist (libvirtd refuses a configuration naming a missing directory).
        Only with O(scope=host).
    type: path
  password:
    description:
      - With O(scope=host) C(vnc_password), the password of guests that have none of their own; with
        O(scope=domains) each guest's C(passwd).
      - VNC uses at most 8 bytes of a password; a longer one fails before anything changes (the same rule as
        M(kvmops.hypervisor.virt_install_domain)). It must not be empty.
      - A running guest that was started with a password gets the new one live; one started without any needs a
        restart (it is listed in RV(domains_restart_required)).
      - Never shown in results or diffs, never put on a command line.
    type: str
  auto_unix_socket:
    description:
      - C(vnc_auto_unix_socket). When on, it takes precedence over C(vnc_listen) for guests without their own listen
        address, which get a UNIX socket instead of a TCP port. Only with O(scope=host).
    type: bool
  port_min:
    description:
      - C(remote_display_port_min), the first port of automatic VNC ports (at least 5900).
        Only with O(scope=host).
    type: int
  port_max:
    description:
      - C(remote_display_port_max), the last port of automatic VNC ports (at most 65535). Lower it (for example to
        5950) so that a firewall rule for a port range really covers every guest. Only with O(scope=host).
    type: int
  allow_insecure:
    description:
      - Allow listening on an address outside 127.0.0.0/8 and C(::1) without TLS with client verification.
      - With O(scope=domains) the TLS settings are read from O(config) and the certificate files checked.
    type: bool
    default: false
  config:
    description:
      - Path of libvirt's QEMU driver configuration. It must exist (every libvirt package ships it); the module
        does not create it, since a missing file means the QEMU driver is not installed or the path is wrong.
      - With O(scope=domains) it is only read, to know whether TLS with client verification is on.
    type: path
    default: /etc/libvirt/qemu.conf
  backup:
    description:
      - Keep a timestamped copy of O(config) before changing it (RV(backup_file)).
    type: bool
    default: false
  ssh_user:
    description:
      - User name written into the RV(ssh_tunnels) commands (C(user@host)). Omitted when unset.
    type: str
  ssh_host:
    description:
      - Host name written into the RV(ssh_tunnels) commands. Defaults to the fully qualified name of the managed host.
    type: str
extends_documentation_fragment:
  - kvmops.hypervisor.libvirt
  - kvmops.hypervisor.attributes
  - kvmops.hypervisor.attributes.actiongroup_kvm
  - kvmops.hypervisor.attributes.idempotent
attributes:
  check_mode:
    support: full
    details: Reports what would change in C(qemu.conf) and in the guests' definitions, without writing anything.
  diff_mode:
    support: full
    details: One diff for C(qemu.conf) and one per changed guest (its VNC graphics); passwords are masked.
  idempotent:
    support: full
notes:
  - With O(scope=host) the libvirt daemon is only queried for RV(displays); if it is not reachable the module still
    edits the file and warns.
  - Changing C(qemu.conf) takes effect when C(libvirtd) (C(virtqemud) on split-daemon hosts such as RHEL 9) restarts,
    and for each guest when it is started again.
  - Guests listening on a UNIX socket have no display number and are not listed in RV(displays).
seealso:
  - name: libvirt graphics devices
    description: The C(<graphics>) element and its C(<listen>) children.
    link: https://libvirt.org/formatdomain.html#graphical-framebuffers
  - module: kvmops.hypervisor.virt_install_domain
'''

EXAMPLES = r'''
# The guide's first way, host-wide: every guest without its own address listens on all
# interfaces (after a libvirtd restart and a guest restart). Only with TLS, or insecure.
- name: VNC on all interfaces, TLS with client certificates
  kvmops.hypervisor.vnc_listen:
    listen: 0.0.0.0
    tls: true
    tls_cert_dir: /etc/pki/libvirt-vnc
    port_max: 5950
  notify: Restart libvirtd

- name: VNC on all interfaces without TLS (insecure, you were warned)
  kvmops.hypervisor.vnc_listen:
    listen: 0.0.0.0
    allow_insecure: true
    password: "{{ vault_vnc_password }}"
    port_max: 5950
    backup: true
  notify: Restart libvirtd

# ... and the guide's firewall step, for the port range the guests can get.
- name: Open the VNC port range
  ansible.posix.firewalld:
    port: 5900-5950/tcp
    permanent: true
    immediate: true
    state: enabled

# The guide's second way, per guest (what `virsh edit` + listen='0.0.0.0' does).
- name: One guest listens on the management interface
  kvmops.hypervisor.vnc_listen:
    scope: domains
    domains: [win2012]
    listen: 192.0.2.10
    allow_insecure: true
  register: vnc

- name: Say which running guests must be restarted for it
  ansible.builtin.debug:
    msg: "Restart {{ vnc.domains_restart_required | join(', ') }} to apply the new VNC address"
  when: vnc.domains_restart_required | length > 0

# The recommended way: stay on 127.0.0.1 and tunnel over SSH.
- name: Keep VNC local and get the SSH tunnel commands
  kvmops.hypervisor.vnc_listen:
    listen: 127.0.0.1
    ssh_user: admin
    ssh_host: hypervisor1.example.com
  register: vnc

- name: Print one ssh -L command per running guest
  ansible.builtin.debug:
    msg: "{{ item.domain }} ({{ item.display }}): {{ item.ssh_tunnel }}"
  loop: "{{ vnc.displays }}"

- name: Every guest back on loopback, each with its own VNC password
  kvmops.hypervisor.vnc_listen:
    scope: domains
    domains: all
    listen: 127.0.0.1
    password: "{{ vault_vnc_password }}"

# handlers:
#   - name: Restart libvirtd
#     ansible.builtin.service:
#       name: libvirtd   # virtqemud on split-daemon hosts
#       state: restarted
'''

RETURN = r'''
config:
  description: Path of the C(qemu.conf) the module read.
  returned: always
  type: str
  sample: /etc/libvirt/qemu.conf
backup_file:
  description: Copy of O(config) made before it changed (O(backup=true)).
  returned: when a backup was made
  type: str
  sample: /etc/libvirt/qemu.conf.12345.2026-11-25@15:00:00~
config_changes:
  description:
    - The lines of C(qemu.conf) that changed (or would change in check mode), in the final file's line numbers.
    - C(action) is V(replace) (an active line got a new value), V(insert) (after the commented example) or V(append).
  returned: always
  type: list
  elements: dict
  sample: [{key: vnc_listen, action: insert, line: 73, before: null, after: 'vnc_listen = "127.0.0.2"'}]
daemon_restart_required:
  description: C(qemu.conf) changed (or would change); restart C(libvirtd) or C(virtqemud) to apply it.
  returned: always
  type: bool
  sample: true
domains_changed:
  description: Guests whose persistent VNC settings (or live password) changed, or would change in check mode.
  returned: always
  type: list
  elements: str
  sample: [web01]
domains_restart_required:
  description:
    - Running guests whose VNC listens elsewhere than their persistent (or, for guests without an address of
      their own, host-wide) setting says, or that need a restart to get a password. libvirt cannot change a
      running guest's VNC address.
    - With O(scope=host) this compares with the new C(vnc_listen); such guests also need the daemon restart first.
  returned: always
  type: list
  elements: str
  sample: [web01]
domains_skipped:
  description: With O(domains=all), persistent guests left alone because they have no VNC graphics.
  returned: always
  type: list
  elements: str
  sample: [headless01]
displays:
  description: One entry per running guest with a VNC TCP port, sorted by name, as C(virsh vncdisplay) shows it.
  returned: always
  type: list
  elements: dict
  contains:
    domain:
      description: Guest name.
      type: str
    listen:
      description: Address QEMU listens on.
      type: str
    port:
      description: TCP port.
      type: int
    display:
      description: What C(virsh vncdisplay) prints (C(:N) for 0.0.0.0).
      type: str
    ssh_tunnel:
      description: The C(ssh -L) command that forwards this console through the host.
      type: str
  sample: [{domain: web01, listen: 127.0.0.1, port: 5901, display: '127.0.0.1:1',
            ssh_tunnel: 'ssh -L 5901:127.0.0.1:5901 -N -f admin@hv1'}]
ssh_tunnels:
  description: The C(ssh -L ... -N -f user@host) command for every entry of RV(displays), in the same order.
  returned: always
  type: list
  elements: str
  sample: ['ssh -L 5901:127.0.0.1:5901 -N -f admin@hv1']
'''

import socket

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.kvmops.hypervisor.plugins.module_utils._common.argspec import uri_option
from ansible_collections.kvmops.hypervisor.plugins.module_utils._module.runner import run_manager
from ansible_collections.kvmops.hypervisor.plugins.module_utils._vnc.config_file import write_config
from ansible_collections.kvmops.hypervisor.plugins.module_utils._vnc.manager import VncListenManager


def main():
    module = AnsibleModule(
        argument_spec=dict(
            uri=uri_option(),
            scope=dict(type='str', choices=['host', 'domains'], default='host'),
            listen=dict(type='str', default='127.0.0.1'),
            domains=dict(type='list', elements='str'),
            tls=dict(type='bool'),
            tls_verify=dict(type='bool', default=True),
            tls_cert_dir=dict(type='path'),
            password=dict(type='str', no_log=True),
            auto_unix_socket=dict(type='bool'),
            port_min=dict(type='int'),
            port_max=dict(type='int'),
            allow_insecure=dict(type='bool', default=False),
            config=dict(type='path', default='/etc/libvirt/qemu.conf'),
            backup=dict(type='bool', default=False),
            ssh_user=dict(type='str'),
            ssh_host=dict(type='str'),
        ),
        required_if=[('scope', 'domains', ['domains'])],
        supports_check_mode=True,
    )

    def build(conn, spec):
        params = dict(module.params)
        params['ssh_host'] = params['ssh_host'] or socket.getfqdn()
        return VncListenManager(
            params, check_mode=module.check_mode, diff_mode=module._diff, warn=module.warn,
            write_config=lambda path, text, backup: write_config(module, path, text, backup))

    # The manager opens its libvirt connection itself, only with scope: domains.
    run_manager(module, build, connect=False, lxml=False,
                fail_fields=lambda spec, manager: manager.result() if manager is not None else {})


if __name__ == '__main__':
    main()
