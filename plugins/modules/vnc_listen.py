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
  - Refuses an address outside 127.0.0.0/8 and C(::1) without TLS unless O(allow_insecure=true), and
    explains the safer way instead, an SSH tunnel per console.
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
      - Only the first 8 bytes count in VNC; a longer password gets a warning. It must not be empty.
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
      - Allow listening on an address outside 127.0.0.0/8 and C(::1) without TLS.
      - With O(scope=domains) TLS means C(vnc_tls = 1) in O(config).
    type: bool
    default: false
  config:
    description:
      - Path of libvirt's QEMU driver configuration. It must exist (every libvirt package ships it); the module
        does not create it, since a missing file means the QEMU driver is not installed or the path is wrong.
      - With O(scope=domains) it is only read, to know whether TLS is on.
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

import os
import socket
import tempfile

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_bytes, to_native

from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt import connection as _libvirt_conn
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt import constants as _const
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt import qemu_conf as _qemu_conf
from ansible_collections.kvmops.hypervisor.plugins.module_utils._vnc import listen as _vnc

HOST_ONLY = ('tls', 'tls_cert_dir', 'auto_unix_socket', 'port_min', 'port_max')


def read_config(module, path, must_exist=True):
    if not os.path.exists(path):
        if not must_exist:
            return None
        module.fail_json(
            msg='%s does not exist. libvirt\'s QEMU driver always installs it (Debian/Ubuntu: '
                'libvirt-daemon-system; RHEL/Fedora: libvirt-daemon-driver-qemu). Install libvirt first, or '
                'point config at the right file; this module does not create it.' % path)
    if not os.path.isfile(path):
        module.fail_json(msg='config %s is not a regular file' % path)
    try:
        with open(path, 'rb') as f:
            data = f.read()
    except (IOError, OSError) as exc:
        module.fail_json(msg='cannot read %s: %s (run as root, e.g. become: true)'
                         % (path, to_native(exc)))
    return data.decode('utf-8', 'surrogateescape')


def write_config(module, path, text, backup):
    path = os.path.realpath(path)  # a symlinked qemu.conf stays a symlink
    backup_file = None
    if backup:
        backup_file = module.backup_local(path)
    fd, tmp = tempfile.mkstemp(prefix='.qemu.conf.', dir=module.tmpdir)
    try:
        with os.fdopen(fd, 'wb') as f:
            f.write(text.encode('utf-8', 'surrogateescape'))
    except (IOError, OSError) as exc:
        module.fail_json(msg='cannot write a temporary copy of %s: %s' % (path, to_native(exc)))
    module.atomic_move(tmp, to_bytes(path), unsafe_writes=False)
    return backup_file


def do_host(module, params, result, diffs):
    path = params['config']
    text = read_config(module, path)
    try:
        plan = _vnc.plan_host(text, params, filename=path)
    except _qemu_conf.ConfSyntaxError as exc:
        module.fail_json(msg='%s cannot be parsed (%s); libvirtd would not accept it either. '
                             'Fix that line first; nothing was changed.' % (path, exc))
    except _vnc.VncError as exc:
        module.fail_json(msg=str(exc))
    errors = list(plan['errors'])
    if module.check_mode:
        for w in plan['check_warnings']:
            module.warn(w)
    else:
        errors.extend(plan['check_warnings'])
    if errors:
        module.fail_json(msg=' '.join(errors) + ' Nothing was changed.', **result)
    for w in plan['warnings']:
        module.warn(w)
    try:
        new_text, changes = _qemu_conf.edit(text, plan['settings'])
    except (_qemu_conf.ConfEditError, _qemu_conf.ConfSyntaxError) as exc:
        module.fail_json(msg='cannot edit %s: %s' % (path, exc))
    for change in changes:
        if change['key'] in _vnc.SECRET_KEYS:
            for side in ('before', 'after'):
                if change[side] is not None:
                    change[side] = _qemu_conf.mask_secrets(change[side], _vnc.SECRET_KEYS)
    result['config_changes'] = changes
    if new_text != text:
        result['changed'] = True
        result['daemon_restart_required'] = True
        if module._diff:
            diffs.append({'before_header': path, 'after_header': path,
                          'before': _qemu_conf.mask_secrets(text, _vnc.SECRET_KEYS),
                          'after': _qemu_conf.mask_secrets(new_text, _vnc.SECRET_KEYS,
                                                           changed_from=text)})
        if not module.check_mode:
            backup_file = write_config(module, path, new_text, params['backup'])
            if backup_file:
                result['backup_file'] = backup_file
    return plan['state']


def host_restart_required(conn, state):
    """Running guests that follow the host setting but listen elsewhere than it says."""
    names = []
    for dom in conn.listAllDomains(_const.VIR_CONNECT_LIST_DOMAINS_ACTIVE):
        try:
            if not dom.isPersistent():
                continue
            plan = _vnc.plan_domain(dom.XMLDesc(_const.VIR_DOMAIN_XML_INACTIVE))
            live = _vnc.live_listen(dom.XMLDesc(0))
        except Exception:  # pylint: disable=broad-except  # guest went away meanwhile
            continue
        if not plan['has_vnc'] or not plan['follows_host'] or live is None:
            continue
        if state['vnc_auto_unix_socket']:
            wanted = ('socket', None)
            live = (live[0], None)
        else:
            wanted = ('address', state['vnc_listen'])
        if live != wanted:
            names.append(dom.name())
    return sorted(names)


def host_tls_on(module, path):
    text = read_config(module, path, must_exist=False)
    if text is None:
        return False
    try:
        return bool(_vnc.host_state(_qemu_conf.parse(text))['vnc_tls'])
    except _qemu_conf.ConfSyntaxError as exc:
        module.fail_json(msg='%s cannot be parsed (%s); fix it first.' % (path, exc))


def select_domains(module, conn, names):
    """Return (list of (dom, inactive_plan_input), skipped)."""
    import libvirt  # pylint: disable=import-outside-toplevel  # present: checked before
    selected, skipped = [], []
    if names == ['all']:
        for dom in conn.listAllDomains(_const.VIR_CONNECT_LIST_DOMAINS_PERSISTENT):
            selected.append(dom)
        return sorted(selected, key=lambda d: d.name()), skipped, True
    problems = []
    for name in names:
        try:
            dom = conn.lookupByName(name)
        except libvirt.libvirtError:
            problems.append('guest %s does not exist' % name)
            continue
        if not dom.isPersistent():
            problems.append('guest %s is transient (no persistent definition to change); define '
                            'it first (virsh dumpxml %s > f.xml; virsh define f.xml)' % (name, name))
            continue
        selected.append(dom)
    if problems:
        module.fail_json(msg='; '.join(problems) + '. Nothing was changed.')
    return selected, skipped, False


def do_domains(module, conn, params, result, diffs):
    import libvirt  # pylint: disable=import-outside-toplevel
    listen = params['listen']
    password = params['password']
    doms, skipped, all_mode = select_domains(module, conn, params['domains'])
    flags = _const.VIR_DOMAIN_XML_INACTIVE | _const.VIR_DOMAIN_XML_SECURE
    plans = []
    problems = []
    for dom in doms:
        name = dom.name()
        try:
            plan = _vnc.plan_domain(dom.XMLDesc(flags), listen=listen, password=password)
        except libvirt.libvirtError as exc:
            problems.append('cannot read the definition of %s: %s' % (name, exc))
            continue
        if not plan['has_vnc']:
            if all_mode:
                skipped.append(name)
            else:
                problems.append('guest %s has no <graphics type=\'vnc\'>; add VNC graphics to its '
                                'definition first (this module does not add devices)' % name)
            continue
        plans.append((dom, plan))
    if problems:
        module.fail_json(msg='; '.join(problems) + '. Nothing was changed.')
    result['domains_skipped'] = sorted(skipped)

    changed, restart = [], []
    for dom, plan in plans:
        name = dom.name()
        running = dom.isActive()
        live_xml = dom.XMLDesc(_const.VIR_DOMAIN_XML_SECURE) if running else None
        live_pw_xml = None
        dom_changed = bool(plan['changes'])
        if running:
            live = _vnc.live_listen(live_xml)
            # no VNC while running (added to the definition later) counts as elsewhere too
            if live != ('address', listen):
                restart.append(name)
            if password is not None:
                live_pw_xml = _vnc.live_password_xml(live_xml, password)
                if live_pw_xml is not None:
                    if _vnc.live_has_password(live_xml):
                        dom_changed = True
                    else:
                        live_pw_xml = None
                        if name not in restart:
                            restart.append(name)
        if dom_changed:
            changed.append(name)
        if plan['changes'] and module._diff:
            diffs.append({'before_header': '%s (persistent VNC graphics)' % name,
                          'after_header': '%s (persistent VNC graphics)' % name,
                          'before': plan['before'], 'after': plan['after']})
        if module.check_mode:
            continue
        try:
            if plan['new_xml']:
                conn.defineXML(plan['new_xml'])
            if live_pw_xml:
                dom.updateDeviceFlags(live_pw_xml, _const.VIR_DOMAIN_AFFECT_LIVE)
        except libvirt.libvirtError as exc:
            result['domains_changed'] = changed
            module.fail_json(msg='libvirt refused the VNC change of %s: %s' % (name, exc),
                             **result)
        if plan['new_xml']:
            check = _vnc.plan_domain(dom.XMLDesc(flags), listen=listen, password=password)
            if check['changes']:
                module.fail_json(msg='libvirt stored the VNC graphics of %s differently than '
                                     'asked (%s still differ)' % (name, ', '.join(check['changes'])),
                                 **result)
    result['domains_changed'] = changed
    result['domains_restart_required'] = sorted(restart)
    if changed:
        result['changed'] = True


def main():
    module = AnsibleModule(
        argument_spec=dict(
            uri=dict(type='str', default='qemu:///system'),
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
    params = module.params
    params['ssh_host'] = params['ssh_host'] or socket.getfqdn()
    result = dict(changed=False, config=params['config'], config_changes=[],
                  daemon_restart_required=False, domains_changed=[],
                  domains_restart_required=[], domains_skipped=[], displays=[], ssh_tunnels=[])
    diffs = []

    # Bad input fails before anything changes.
    try:
        _vnc.parse_listen(params['listen'])
    except _vnc.VncError as exc:
        module.fail_json(msg=str(exc), **result)
    perrors, pwarnings = _vnc.password_checks(params['password'])
    if perrors:
        module.fail_json(msg=' '.join(perrors), **result)
    if params['scope'] == 'host' and params['domains'] is not None:
        module.fail_json(msg='domains only applies with scope: domains (scope is host, which '
                             'edits qemu.conf for every guest)', **result)
    if params['scope'] == 'domains':
        wrong = [k for k in HOST_ONLY if params[k] is not None]
        if wrong:
            module.fail_json(msg='%s only apply host-wide (scope: host): they are qemu.conf '
                                 'settings, not per-guest ones' % ', '.join(wrong), **result)
        if not params['domains'] or any(not d for d in params['domains']):
            module.fail_json(msg='domains must list guest names, or be all', **result)
        if 'all' in params['domains'] and len(params['domains']) > 1:
            module.fail_json(msg='domains: all selects every guest; do not mix it with names',
                             **result)
        listen = params['listen'].strip()
        if not _vnc.is_loopback(listen) and not params['allow_insecure'] \
                and not host_tls_on(module, params['config']):
            module.fail_json(msg=_vnc.insecure_message(
                listen, 'the guests\' <graphics listen>; vnc_tls is off in %s' % params['config'],
                params['ssh_user'], params['ssh_host']), **result)
        params['listen'] = listen
        _libvirt_conn.fail_on_missing_libvirt(module)
        try:
            conn = _libvirt_conn.open_connection(params['uri'])
        except _libvirt_conn.LibvirtConnectionError as exc:
            module.fail_json(msg=str(exc), **result)
        for w in pwarnings:
            module.warn(w)
        do_domains(module, conn, params, result, diffs)
    else:
        state = do_host(module, params, result, diffs)
        conn = None
        if _libvirt_conn.HAS_LIBVIRT:
            try:
                conn = _libvirt_conn.open_connection(params['uri'])
            except _libvirt_conn.LibvirtConnectionError as exc:
                module.warn('qemu.conf was handled, but displays are empty: %s' % exc)
        else:
            module.warn('libvirt-python is missing: displays are empty. '
                        + _libvirt_conn.LIBVIRT_INSTALL_HINT)
        if conn is not None:
            result['domains_restart_required'] = host_restart_required(conn, state)

    if conn is not None:
        result['displays'] = _vnc.collect_displays(conn, params['ssh_user'], params['ssh_host'])
        result['ssh_tunnels'] = [d['ssh_tunnel'] for d in result['displays']]
    if module._diff:
        result['diff'] = diffs
    module.exit_json(**result)


if __name__ == '__main__':
    main()
