# -*- coding: utf-8 -*-
# Copyright: kvmops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""virt_console_token's manager: the browser console's tokens in websockify's token
directory, one per guest, short-lived, pointing only at the guest's own VNC on loopback or
its UNIX socket as the LIVE domain XML says.

Every run first sweeps the directory: kvmops token files that expired, whose guest is no
longer running, or whose guest's VNC moved (a port can be reused by another guest) are
removed; files kvmops did not write are left alone. Then the asked-for guests get a token
(an existing one is kept while it has more than renew_before seconds left and still points
at the guest's VNC: idempotent), or lose theirs (state absent). Everything is planned before
anything is written; check mode writes nothing. Tokens never appear in diffs, actions or
messages; only the result's consoles carry them (the URL is what the user asked for).
Private to the collection: no API promise.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import secrets
import stat
import tempfile
import time

from ansible_collections.kvmops.hypervisor.plugins.module_utils._common.errors import KvmopsError
from ansible_collections.kvmops.hypervisor.plugins.module_utils._common.manager import ManagerBase
from ansible_collections.kvmops.hypervisor.plugins.module_utils._console import target as _target
from ansible_collections.kvmops.hypervisor.plugins.module_utils._console import tokens as _tokens
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt import graphics as _graphics
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt import qemu_conf as _qemu_conf
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt import xml as _xml

MIN_LIFETIME = 60
MAX_LIFETIME = 86400
TOKEN_BYTES = 32          # secrets.token_urlsafe(32): 43 characters, 256 bits
MASK = '********'


def _iso(epoch):
    return time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(epoch))


def console_url(base, token):
    """noVNC's page for a token: BASE/vnc.html?autoconnect=1&path=websockify%3Ftoken%3DTOKEN
    (noVNC decodes the path; websockify reads the token from it)."""
    return '%s/vnc.html?autoconnect=1&path=websockify%%3Ftoken%%3D%s' % (base.rstrip('/'), token)


def describe(name, entry):
    """One line of the diff for a token file, the token masked."""
    if entry is None:
        return '%s: (not a kvmops token file)' % name
    return '%s: %s -> %s, expires %s, token %s' % (name, entry['domain'], entry['target'],
                                                   _iso(entry['expires']), MASK)


def write_token_file(directory, name, text, gid):
    """Write atomically with mode 0640 and the directory's group (websockify's user reads it
    through that group), the group set before the file appears under its name."""
    fd, tmp = tempfile.mkstemp(prefix='.%s.' % name, dir=directory)
    try:
        with os.fdopen(fd, 'w') as f:
            f.write(text)
            f.flush()
            os.fchmod(f.fileno(), 0o640)
            if gid is not None:
                os.fchown(f.fileno(), -1, gid)
            os.fsync(f.fileno())
        os.rename(tmp, os.path.join(directory, name))
    except Exception:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


class ConsoleTokenManager(ManagerBase):
    """params: domains, state, lifetime, renew_before, rotate, token_dir, url.
    conn: an open libvirt connection. clock / new_token: injectable for tests."""

    def __init__(self, conn, params, check_mode=False, diff_mode=False, warn=None,
                 clock=time.time, new_token=None, qemu_conf=_graphics.QEMU_CONF):
        super(ConsoleTokenManager, self).__init__(check_mode, diff_mode, warn)
        self.conn = conn
        self.params = params
        self.clock = clock
        self.new_token = new_token or (lambda: secrets.token_urlsafe(TOKEN_BYTES))
        self.removed = []
        self.qemu_conf = qemu_conf

    # ------------------------------------------------------------------ inputs
    def _check_params(self):
        p = self.params
        if not MIN_LIFETIME <= p['lifetime'] <= MAX_LIFETIME:
            raise KvmopsError('lifetime %d is out of range: give %d to %d seconds (a console '
                              'token is meant to be short-lived; make a new one when needed).'
                              % (p['lifetime'], MIN_LIFETIME, MAX_LIFETIME))
        if not 0 <= p['renew_before'] < p['lifetime']:
            raise KvmopsError('renew_before %d must be at least 0 and less than lifetime %d, '
                              'else every run would replace the token.'
                              % (p['renew_before'], p['lifetime']))
        names = p['domains'] or []
        if 'all' in names and len(names) > 1:
            raise KvmopsError("domains: 'all' stands alone; give either all or guest names.")
        if p['state'] == 'present' and not names:
            raise KvmopsError('domains is empty: name the guests that get a console token '
                              "(or all for every running guest with VNC).")

    def _directory(self):
        d = self.params['token_dir']
        try:
            st = os.stat(d)
        except OSError:
            raise KvmopsError(
                'The token directory %s does not exist. The kvm_host role makes it with the '
                'browser console (kvm_host_console: true), owned by root and readable by '
                "websockify's group only; or point token_dir at websockify's --token-source."
                % d)
        if not stat.S_ISDIR(st.st_mode):
            raise KvmopsError('token_dir %s is not a directory.' % d)
        if st.st_mode & stat.S_IWOTH or st.st_mode & stat.S_IROTH:
            raise KvmopsError(
                'The token directory %s is readable or writable by every user (mode %04o): '
                'anyone on the host could read the tokens or plant one. Fix: chmod 0750 %s '
                "(group: websockify's user's group)." % (d, stat.S_IMODE(st.st_mode), d))
        return st

    # ------------------------------------------------------------------ libvirt
    def _running(self):
        """{uuid: (name, live target or None, problem)} of every running guest."""
        out = {}
        for dom in self.conn.listAllDomains(0):
            try:
                if not dom.isActive():
                    continue
                tree = _xml.parse(dom.XMLDesc(0))
                name = dom.name()
                target, problem = _target.live_target(tree, name)
                out[dom.UUIDString()] = (name, target, problem)
            except Exception:  # pylint: disable=broad-except  # a guest gone mid-listing
                continue
        return out

    # ------------------------------------------------------------------ run
    def run(self):
        self._check_params()
        p = self.params
        dst = self._directory()
        directory = p['token_dir']
        now = int(self.clock())
        existing = _tokens.read_dir(directory)
        running = self._running()
        by_name = dict((v[0], k) for k, v in running.items())

        # 1. the sweep: expired, guest gone or stopped, VNC moved
        keep = {}
        removals = []
        for fname, (entry, dummy) in existing.items():
            if entry is None:
                continue     # not ours (or unreadable): never delete what kvmops did not make
            live = running.get(entry['uuid'])
            if entry['expires'] <= now:
                removals.append((fname, entry, 'expired'))
            elif live is None:
                removals.append((fname, entry, 'guest not running'))
            elif live[1] != entry['target']:
                removals.append((fname, entry, 'VNC moved'))
            else:
                keep[entry['uuid']] = (fname, entry)

        # 2. the asked-for guests
        names = p['domains'] or []
        if names == ['all']:
            wanted = [u for u, v in running.items() if v[1] is not None] if p['state'] == 'present' \
                else [e['uuid'] for dummy, e in keep.values()]
        else:
            wanted, problems = [], []
            for name in names:
                uuid = by_name.get(name)
                if uuid is None:
                    if p['state'] == 'absent':
                        wanted += [e['uuid'] for dummy, e in keep.values() if e['domain'] == name]
                        continue
                    problems.append(self._not_running(name))
                    continue
                if p['state'] == 'present' and running[uuid][1] is None:
                    problems.append(running[uuid][2])
                    continue
                wanted.append(uuid)
            if problems:
                raise KvmopsError(' '.join(problems) + ' No token was written.',
                                  changed=False, consoles=[])

        writes = []
        consoles = []
        if p['state'] == 'absent':
            for uuid in wanted:
                if uuid in keep:
                    fname, entry = keep.pop(uuid)
                    removals.append((fname, entry, 'state absent'))
        else:
            for uuid in sorted(set(wanted), key=lambda u: running[u][0]):
                name, target, dummy = running[uuid]
                held = keep.get(uuid)
                if held and not p['rotate'] and held[1]['expires'] - now > p['renew_before']:
                    entry = held[1]
                else:
                    entry = {'token': self.new_token(), 'domain': name, 'uuid': uuid,
                             'target': target, 'created': now, 'expires': now + p['lifetime']}
                    writes.append((_tokens.file_name(uuid), entry, held is not None))
                consoles.append(self._console(entry, now))

        # 3. act
        before = dict((f, e) for f, (e, dummy) in existing.items())
        after = dict(before)
        for fname, entry, why in removals:
            self.act('remove the console token of %s (%s)' % (entry['domain'], why))
            self.removed.append({'domain': entry['domain'], 'reason': why})
            after.pop(fname, None)
            if not self.check_mode:
                try:
                    os.unlink(os.path.join(directory, fname))
                except OSError as exc:
                    if os.path.exists(os.path.join(directory, fname)):
                        raise KvmopsError('Cannot remove %s: %s (run as root: become: true).'
                                          % (os.path.join(directory, fname), exc),
                                          **self.result(consoles=[], removed=self.removed))
        for fname, entry, replaced in writes:
            self.act('%s the console token of %s (-> %s, %d s)'
                     % ('replace' if replaced else 'write', entry['domain'], entry['target'],
                        p['lifetime']))
            after[fname] = entry
            if not self.check_mode:
                try:
                    write_token_file(directory, fname, _tokens.render(entry), dst.st_gid)
                except (IOError, OSError) as exc:
                    raise KvmopsError('Cannot write a token file in %s: %s (run as root: '
                                      'become: true).' % (directory, exc),
                                      **self.result(consoles=[], removed=self.removed))
        if self.diff_mode:
            self.diff = {
                'before': ''.join(describe(f, e) + '\n' for f, e in sorted(before.items())),
                'after': ''.join(describe(f, e) + '\n' for f, e in sorted(after.items())),
                'before_header': directory, 'after_header': directory}
        if self.check_mode:
            for c in consoles:
                if any(w[1]['uuid'] == c['uuid'] for w in writes):
                    # not written in check mode: a token that works nowhere is not returned
                    c.update(token=None, url=None)
        self._warn_tls(consoles)
        return self.result(consoles=consoles, removed=self.removed, token_dir=directory)

    def _warn_tls(self, consoles):
        """noVNC cannot present a client certificate: say so when qemu.conf turns VNC TLS on.
        libvirt (9.0, observed) gives a guest's UNIX-socket VNC the same TLS credentials as a
        TCP one, so a socket does not avoid it."""
        names = [c['domain'] for c in consoles]
        if not names:
            return
        try:
            with open(self.qemu_conf, 'r') as f:
                values = _qemu_conf.values(f.read())
        except Exception:  # pylint: disable=broad-except  # unreadable or unparsable: no warning
            return
        settings = _graphics.console_settings('vnc', values)
        if settings['tls']:
            self.warn('vnc_tls = 1 in %s: QEMU asks every VNC client for TLS%s (on TCP and on '
                      'UNIX sockets alike), which noVNC in a browser cannot do, so the console '
                      'of %s will fail to connect. The browser console needs VNC without TLS on '
                      'loopback; with VNC TLS use a VeNCrypt viewer (virt-viewer, gvncviewer) with '
                      'a client certificate instead.'
                      % (self.qemu_conf, ' with a client certificate' if settings['verify'] else '',
                         ', '.join(names)))

    def _not_running(self, name):
        try:
            dom = self.conn.lookupByName(name)
        except Exception:  # pylint: disable=broad-except  # libvirtError: no such domain
            return ('There is no guest named %s on this host (virsh list --all).' % name)
        if not dom.isActive():
            return ('Guest %s is not running: a console token points at a running guest\'s '
                    'VNC, whose port exists only while it runs. Start it first.' % name)
        return 'Guest %s is running but could not be read; try again.' % name

    def _console(self, entry, now):
        return {'domain': entry['domain'], 'uuid': entry['uuid'], 'target': entry['target'],
                'token': entry['token'], 'expires': _iso(entry['expires']),
                'expires_epoch': entry['expires'], 'expires_in': entry['expires'] - now,
                'url': console_url(self.params['url'], entry['token'])}
