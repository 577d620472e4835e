#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: kvmops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
module: virt_console_token
short_description: Short-lived browser console (noVNC) tokens for running guests
version_added: 1.1.0
author:
  - kvmops team (@kvmops)
description:
  - Writes one websockify token per guest into the hypervisor's token directory (websockify's
    C(--token-source)), so that noVNC opens the guest's VNC console in a browser through one
    websockify port for every guest.
  - A token points only at the guest's own VNC as its B(live) definition says, on loopback
    (127.0.0.0/8, C(::1)) or a UNIX socket. A guest whose VNC listens anywhere else, or that has
    no VNC, or is not running, is refused before anything is written.
  - Tokens are random (Python's C(secrets), 256 bits), and expire after O(lifetime) seconds. The
    kvm_host role runs websockify with the collection's token plugin, which refuses an expired
    token at the second it expires; every run of this module also removes the token files that
    expired, whose guest stopped or whose VNC moved (a port can be reused by another guest), so
    websockify's stock C(TokenFile) plugin refuses them from that run on.
  - Files in the directory that this module did not write are left alone.
  - An existing token is kept (no change) while it has more than O(renew_before) seconds left and
    still points at the guest's VNC.
options:
  domains:
    description:
      - Names of the guests. V(all) (alone) selects every running guest whose VNC a token may
        point at (with O(state=present)) or every token (with O(state=absent)).
      - Required with O(state=present).
    type: list
    elements: str
  state:
    description:
      - V(present) makes sure each guest has a valid token; V(absent) removes the guests' tokens.
      - Both sweep expired and stale tokens first.
    type: str
    choices: [present, absent]
    default: present
  lifetime:
    description:
      - Seconds a new token is valid, 60 to 86400.
    type: int
    default: 1800
  renew_before:
    description:
      - An existing token with this many seconds left or fewer is replaced by a new one.
    type: int
    default: 300
  rotate:
    description:
      - Replace the guests' tokens even if they are still valid.
    type: bool
    default: false
  token_dir:
    description:
      - websockify's token directory. It must exist and must not be readable by every user; new
        files get mode 0640 and the directory's group (websockify's).
    type: path
    default: /var/lib/kvmops/console/tokens
  url:
    description:
      - Where the browser reaches websockify and noVNC, used in RV(consoles[].url). With the
        default listen on 127.0.0.1 that is the local end of an SSH tunnel
        (C(ssh -L 6080:127.0.0.1:6080 HOST)).
    type: str
    default: http://127.0.0.1:6080
extends_documentation_fragment:
  - kvmops.hypervisor.libvirt
  - kvmops.hypervisor.attributes
  - kvmops.hypervisor.attributes.actiongroup_kvm
  - kvmops.hypervisor.attributes.idempotent
attributes:
  check_mode:
    support: full
    details: Reports which tokens would be written or removed; writes nothing (a token that would be new is returned as null).
  diff_mode:
    support: full
    details: The token directory before and after, one line per token file, tokens masked.
  idempotent:
    support: full
    details: Changes nothing while the tokens are valid for more than O(renew_before) seconds and nothing expired.
notes:
  - Must run on the hypervisor itself (O(uri) without a host part), as the tokens are files of the host that runs websockify.
  - A token is a credential for its lifetime; whoever has the URL reaches the guest's console through websockify.
    Keep websockify on 127.0.0.1 and reach it through SSH, or on a public address only with TLS (kvm_host_console_tls).
  - noVNC cannot present a client certificate, so on a host whose C(qemu.conf) turns VNC TLS on (C(vnc_tls), which
    libvirt applies to UNIX-socket VNC too) no guest is reachable from the browser; the module warns about it.
seealso:
  - module: kvmops.hypervisor.vnc_listen
  - name: websockify token plugins
    description: The TokenFile syntax (one C(TOKEN, colon, HOST, colon, PORT) line per token) that the token files use.
    link: https://github.com/novnc/websockify/blob/master/docs/websockify.1
'''

EXAMPLES = r'''
- name: A browser console for two guests, valid for 15 minutes
  kvmops.hypervisor.virt_console_token:
    domains: [web01, db01]
    lifetime: 900
  register: console

- name: Print the noVNC address of each (behind ssh -L 6080:127.0.0.1:6080 HOST)
  ansible.builtin.debug:
    msg: "{{ item.domain }}: {{ item.url }} (until {{ item.expires }})"
  loop: "{{ console.consoles }}"
  loop_control:
    label: "{{ item.domain }}"

- name: Take every console token back
  kvmops.hypervisor.virt_console_token:
    domains: all
    state: absent
'''

RETURN = r'''
consoles:
  description: One entry per guest with a token (O(state=present)), sorted by name.
  returned: always
  type: list
  elements: dict
  contains:
    domain:
      description: Guest name.
      type: str
    uuid:
      description: Guest UUID (the token file is C(<uuid>.token)).
      type: str
    target:
      description: Where websockify connects, C(127.0.0.1:PORT) or C(unix_socket:/path).
      type: str
    token:
      description: The token (null in check mode for a token not written yet).
      type: str
    url:
      description: The noVNC page that opens this console (null in check mode for a new token).
      type: str
    expires:
      description: Expiry time, UTC, ISO 8601.
      type: str
    expires_epoch:
      description: Expiry time, seconds since the epoch.
      type: int
    expires_in:
      description: Seconds left.
      type: int
  sample: [{domain: web01, uuid: 6a5d..., target: '127.0.0.1:5901', token: 'Zq3...', expires: '2026-12-07T18:30:00Z',
            expires_epoch: 1796661000, expires_in: 1800,
            url: 'http://127.0.0.1:6080/vnc.html?autoconnect=1&path=websockify%3Ftoken%3DZq3...'}]
removed:
  description: Token files removed (or that would be), with why (expired, guest not running, VNC moved, state absent).
  returned: always
  type: list
  elements: dict
  sample: [{domain: old01, reason: expired}]
token_dir:
  description: The token directory.
  returned: always
  type: str
  sample: /var/lib/kvmops/console/tokens
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.kvmops.hypervisor.plugins.module_utils._common.argspec import uri_option
from ansible_collections.kvmops.hypervisor.plugins.module_utils._console.manager import ConsoleTokenManager
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt import locality as _locality
from ansible_collections.kvmops.hypervisor.plugins.module_utils._module.runner import manager_options, run_manager


def argument_spec():
    return dict(
        uri=uri_option(),
        domains=dict(type='list', elements='str'),
        state=dict(type='str', choices=['present', 'absent'], default='present'),
        lifetime=dict(type='int', default=1800),
        renew_before=dict(type='int', default=300),
        rotate=dict(type='bool', default=False),
        token_dir=dict(type='path', default='/var/lib/kvmops/console/tokens'),
        url=dict(type='str', default='http://127.0.0.1:6080'),
    )


def main():
    module = AnsibleModule(argument_spec=argument_spec(), required_if=[('state', 'present', ['domains'])],
                           supports_check_mode=True)

    def prepare():
        _locality.require_local(module.params['uri'], [('token_dir', 'holds the tokens websockify reads')])

    run_manager(module, prepare=prepare,
                build=lambda conn, spec: ConsoleTokenManager(conn, module.params, **manager_options(module)),
                subject=lambda spec: 'console tokens',
                fail_fields=lambda spec, manager: dict(changed=False, consoles=[], removed=[]))


if __name__ == '__main__':
    main()
