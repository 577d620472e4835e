# -*- coding: utf-8 -*-
# Copyright: kvmops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""vnc_listen's manager: validate -> plan (qemu.conf or the guests' persistent graphics) ->
act unless check_mode -> result with displays and SSH tunnels.

Private to the collection: no API promise. Independent of AnsibleModule: it gets the
module's params, a warn callable and write_config(path, text, backup) -> backup file or
None (the module writes atomically). Every failure is a KvmopsError raised before anything
changed, or naming what had already changed (result fields).
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os

from ansible_collections.kvmops.hypervisor.plugins.module_utils._common.errors import KvmopsError
from ansible_collections.kvmops.hypervisor.plugins.module_utils._common.manager import ManagerBase
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt import connection as _conn
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt import constants as C
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt import graphics as _graphics
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt import locality as _locality
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt import qemu_conf as _qemu_conf
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt import (
    qemu_identity as _qemu_identity)
from ansible_collections.kvmops.hypervisor.plugins.module_utils._vnc import listen as _vnc

# Options that are qemu.conf settings, not per-guest ones.
HOST_ONLY = ('tls', 'tls_cert_dir', 'auto_unix_socket', 'port_min', 'port_max')
INACTIVE_SECURE = C.VIR_DOMAIN_XML_INACTIVE | C.VIR_DOMAIN_XML_SECURE


def read_config(path, must_exist=True):
    """The text of qemu.conf (bytes kept through surrogateescape), or None if absent and
    must_exist is False."""
    if not os.path.exists(path):
        if not must_exist:
            return None
        raise KvmopsError(
            '%s does not exist. libvirt\'s QEMU driver always installs it (Debian/Ubuntu: '
            'libvirt-daemon-system; RHEL/Fedora: libvirt-daemon-driver-qemu). Install libvirt '
            'first, or point config at the right file; this module does not create it.' % path)
    if not os.path.isfile(path):
        raise KvmopsError('config %s is not a regular file' % path)
    try:
        with open(path, 'rb') as f:
            data = f.read()
    except (IOError, OSError) as exc:
        raise KvmopsError('cannot read %s: %s (run as root, e.g. become: true)' % (path, exc))
    return data.decode('utf-8', 'surrogateescape')


class VncListenManager(ManagerBase):
    def __init__(self, params, check_mode=False, diff_mode=False, warn=None, write_config=None):
        super(VncListenManager, self).__init__(check_mode, diff_mode, warn)
        self.params = params
        self.write_config = write_config
        self.conn = None
        self.diffs = []
        self.fields = dict(config=params['config'], config_changes=[],
                           daemon_restart_required=False, domains_changed=[],
                           domains_restart_required=[], domains_skipped=[], displays=[],
                           ssh_tunnels=[])

    def fail(self, msg):
        raise KvmopsError(msg, **self.result())

    def result(self):
        out = dict(self.fields, changed=self.changed)
        if self.diff_mode:
            out['diff'] = self.diffs
        return out

    # ---------------------------------------------------------------- input
    def validate(self):
        """Bad input fails before anything is read or changed."""
        p = self.params
        try:
            _vnc.parse_listen(p['listen'])
        except _vnc.VncError as exc:
            self.fail(str(exc))
        perrors, dummy = _vnc.password_checks(p['password'])
        if perrors:
            self.fail(' '.join(perrors))
        if p['scope'] == 'host':
            if p['domains'] is not None:
                self.fail('domains only applies with scope: domains (scope is host, which '
                          'edits qemu.conf for every guest)')
            self.require_local_uri([('scope=host', 'edits %s' % p['config'])])
            return
        wrong = [k for k in HOST_ONLY if p[k] is not None]
        if wrong:
            self.fail('%s only apply host-wide (scope: host): they are qemu.conf settings, not '
                      'per-guest ones' % ', '.join(wrong))
        if not p['domains'] or any(not d for d in p['domains']):
            self.fail('domains must list guest names, or be all')
        if 'all' in p['domains'] and len(p['domains']) > 1:
            self.fail('domains: all selects every guest; do not mix it with names')
        p['listen'] = p['listen'].strip()
        if not _vnc.is_loopback(p['listen']) and not p['allow_insecure']:
            self.require_local_uri([('listen=%s' % p['listen'], 'is guarded by a check of %s and '
                                     'the TLS certificates' % p['config'])])
            refusal = self.public_listen_refusal()
            if refusal:
                self.fail(refusal)

    def public_listen_refusal(self):
        """The console policy (_libvirt/graphics.py) for the guests' own public listen: None,
        or the refusal naming what qemu.conf and the certificates lack."""
        p = self.params
        path = p['config']
        text = read_config(path, must_exist=False) or ''
        try:
            values = _qemu_conf.values(text)
        except _qemu_conf.ConfSyntaxError as exc:
            self.fail('%s cannot be parsed (%s); fix it first.' % (path, exc))
        settings = _graphics.console_settings('vnc', values)
        where = 'the guests\' <graphics listen>'
        if not settings['tls']:
            return _vnc.insecure_message(p['listen'], '%s; vnc_tls is off in %s' % (where, path),
                                         p['ssh_user'], p['ssh_host'])
        ident = _qemu_identity.qemu_identity(conf_text=text, conf_path=path)
        problems = _graphics.public_console_problems('vnc', p['listen'], settings, ident)
        if not problems:
            return None
        return _graphics.public_console_message('vnc', p['listen'], where, problems)

    def require_local_uri(self, needs):
        """Fail when uri is another host's libvirt: qemu.conf and the certificates read here
        are this host's (issue 26)."""
        try:
            _locality.require_local(self.params['uri'], needs)
        except _locality.RemoteUriError as exc:
            self.fail(str(exc))

    # ---------------------------------------------------------------- run
    def run(self):
        self.validate()
        if self.params['scope'] == 'domains':
            self.conn = _conn.open_connection(self.params['uri'])
            try:
                self.run_domains()
                self.report_displays()
            finally:
                self.close()
        else:
            state = _qemu_conf.locked(self.params['config'], self.run_host, enabled=not self.check_mode)
            self.open_for_displays()
            try:
                if self.conn is not None:
                    self.fields['domains_restart_required'] = self.host_restart_required(state)
                    self.report_displays()
            finally:
                self.close()
        return self.result()

    def close(self):
        if self.conn is not None:
            try:
                self.conn.close()
            except Exception:  # pylint: disable=broad-except  # a dead daemon cannot be closed
                pass
            self.conn = None

    def open_for_displays(self):
        """Host scope: libvirt is only asked for displays; not reaching it is a warning."""
        if not _conn.HAS_LIBVIRT:
            self.warn('libvirt-python is missing: displays are empty. ' + _conn.LIBVIRT_INSTALL_HINT)
            return
        try:
            self.conn = _conn.open_connection(self.params['uri'])
        except _conn.LibvirtConnectionError as exc:
            self.warn('qemu.conf was handled, but displays are empty: %s' % exc)

    def report_displays(self):
        p = self.params
        self.fields['displays'] = _vnc.collect_displays(self.conn, p['ssh_user'], p['ssh_host'])
        self.fields['ssh_tunnels'] = [d['ssh_tunnel'] for d in self.fields['displays']]

    # ---------------------------------------------------------------- host scope
    def plan_host(self, text):
        """The qemu.conf plan; its errors (and outside check mode its check warnings) fail."""
        path = self.params['config']
        try:
            plan = _vnc.plan_host(text, self.params, filename=path)
        except _qemu_conf.ConfSyntaxError as exc:
            self.fail('%s cannot be parsed (%s); libvirtd would not accept it either. Fix that '
                      'line first; nothing was changed.' % (path, exc))
        errors = list(plan['errors'])
        if self.check_mode:
            for w in plan['check_warnings']:
                self.warn(w)
        else:
            errors.extend(plan['check_warnings'])
        if errors:
            self.fail(' '.join(errors) + ' Nothing was changed.')
        for w in plan['warnings']:
            self.warn(w)
        return plan

    def run_host(self):
        path = self.params['config']
        text = read_config(path, must_exist=not self.check_mode)
        if text is None:
            # Check mode before libvirt is installed (site.yml --check on a bare host): predict
            # against the shipped file, in which every setting is commented out.
            self.warn('%s does not exist yet (libvirt is not installed): the prediction assumes '
                      'the file libvirt ships, with every setting at its default.' % path)
            text = ''
        plan = self.plan_host(text)
        try:
            new_text, changes = _qemu_conf.edit(text, plan['settings'])
        except (_qemu_conf.ConfEditError, _qemu_conf.ConfSyntaxError) as exc:
            self.fail('cannot edit %s: %s' % (path, exc))
        for change in changes:
            if change['key'] in _vnc.SECRET_KEYS:
                for side in ('before', 'after'):
                    if change[side] is not None:
                        change[side] = _qemu_conf.mask_secrets(change[side], _vnc.SECRET_KEYS)
        self.fields['config_changes'] = changes
        if new_text != text:
            self.changed = True
            self.fields['daemon_restart_required'] = True
            if self.diff_mode:
                self.diffs.append({'before_header': path, 'after_header': path,
                                   'before': _qemu_conf.mask_secrets(text, _vnc.SECRET_KEYS),
                                   'after': _qemu_conf.mask_secrets(new_text, _vnc.SECRET_KEYS,
                                                                    changed_from=text)})
            if not self.check_mode:
                backup_file = self.write_config(path, new_text, self.params['backup'])
                if backup_file:
                    self.fields['backup_file'] = backup_file
        return plan['state']

    def host_restart_required(self, state):
        """Running guests that follow the host setting but listen elsewhere than it says."""
        names = []
        for dom in self.conn.listAllDomains(C.VIR_CONNECT_LIST_DOMAINS_ACTIVE):
            try:
                if not dom.isPersistent():
                    continue
                plan = _vnc.plan_domain(dom.XMLDesc(C.VIR_DOMAIN_XML_INACTIVE))
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

    # ---------------------------------------------------------------- domains scope
    def select_domains(self):
        """(persistent domains to change, all_mode)."""
        names = self.params['domains']
        if names == ['all']:
            doms = self.conn.listAllDomains(C.VIR_CONNECT_LIST_DOMAINS_PERSISTENT)
            return sorted(doms, key=lambda d: d.name()), True
        selected, problems = [], []
        for name in names:
            try:
                dom = self.conn.lookupByName(name)
            except _conn.libvirt.libvirtError:
                problems.append('guest %s does not exist' % name)
                continue
            if not dom.isPersistent():
                problems.append('guest %s is transient (no persistent definition to change); '
                                'define it first (virsh dumpxml %s > f.xml; virsh define f.xml)'
                                % (name, name))
                continue
            selected.append(dom)
        if problems:
            raise KvmopsError('; '.join(problems) + '. Nothing was changed.')
        return selected, False

    def plan_domains(self):
        """[(dom, plan)] for every selected guest with VNC; fails before any change."""
        p = self.params
        doms, all_mode = self.select_domains()
        plans, problems, skipped = [], [], []
        for dom in doms:
            name = dom.name()
            try:
                plan = _vnc.plan_domain(dom.XMLDesc(INACTIVE_SECURE), listen=p['listen'],
                                        password=p['password'])
            except _conn.libvirt.libvirtError as exc:
                problems.append('cannot read the definition of %s: %s' % (name, exc))
                continue
            if not plan['has_vnc']:
                if all_mode:
                    skipped.append(name)
                else:
                    problems.append('guest %s has no <graphics type=\'vnc\'>; add VNC graphics '
                                    'to its definition first (this module does not add devices)'
                                    % name)
                continue
            plans.append((dom, plan))
        if problems:
            raise KvmopsError('; '.join(problems) + '. Nothing was changed.')
        self.fields['domains_skipped'] = sorted(skipped)
        return plans

    def live_change(self, dom, restart):
        """(changed, live password XML or None) of a guest; adds it to restart when the
        running guest cannot take the change live."""
        listen, password = self.params['listen'], self.params['password']
        live_xml = dom.XMLDesc(C.VIR_DOMAIN_XML_SECURE)
        name = dom.name()
        # no VNC while running (added to the definition later) counts as elsewhere too
        if _vnc.live_listen(live_xml) != ('address', listen):
            restart.append(name)
        if password is None:
            return False, None
        live_pw_xml = _vnc.live_password_xml(live_xml, password)
        if live_pw_xml is None:
            return False, None
        if _vnc.live_has_password(live_xml):
            return True, live_pw_xml
        if name not in restart:
            restart.append(name)  # QEMU started without password auth: needs a restart
        return False, None

    def run_domains(self):
        listen, password = self.params['listen'], self.params['password']
        changed, restart = [], []
        for dom, plan in self.plan_domains():
            name = dom.name()
            live_changed, live_pw_xml = (self.live_change(dom, restart) if dom.isActive()
                                         else (False, None))
            if plan['changes'] or live_changed:
                changed.append(name)
            if plan['changes'] and self.diff_mode:
                header = '%s (persistent VNC graphics)' % name
                self.diffs.append({'before_header': header, 'after_header': header,
                                   'before': plan['before'], 'after': plan['after']})
            if self.check_mode:
                continue
            try:
                if plan['new_xml']:
                    self.conn.defineXML(plan['new_xml'])
                if live_pw_xml:
                    dom.updateDeviceFlags(live_pw_xml, C.VIR_DOMAIN_AFFECT_LIVE)
            except _conn.libvirt.libvirtError as exc:
                self.fields['domains_changed'] = changed
                self.fail('libvirt refused the VNC change of %s: %s' % (name, exc))
            if plan['new_xml']:
                check = _vnc.plan_domain(dom.XMLDesc(INACTIVE_SECURE), listen=listen,
                                         password=password)
                if check['changes']:
                    self.fail('libvirt stored the VNC graphics of %s differently than asked '
                              '(%s still differ)' % (name, ', '.join(check['changes'])))
        self.fields['domains_changed'] = changed
        self.fields['domains_restart_required'] = sorted(restart)
        if changed:
            self.changed = True
