# -*- coding: utf-8 -*-
# Copyright: kvmops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read a host's files under a root directory (/ for this host; a mounted image, a sosreport
or a unit test's fake tree otherwise). Private to the collection: no API promise.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os


def under(root, path):
    """path (absolute on the inspected host) as a path below root."""
    return os.path.join(root, path.lstrip('/'))


def read(root, path, default=None):
    """The text of a file of the inspected host, or default when it cannot be read."""
    try:
        with open(under(root, path), 'r', errors='replace') as f:
            return f.read()
    except (IOError, OSError):
        return default


def listdir(root, path):
    try:
        return sorted(os.listdir(under(root, path)))
    except (IOError, OSError):
        return []


def is_live(root):
    """True when root is this host's own root directory."""
    return os.path.realpath(root) == '/'


def os_ids(root):
    """ID and ID_LIKE of os-release, lower case (['ubuntu', 'debian'])."""
    text = read(root, '/etc/os-release', '') or read(root, '/usr/lib/os-release', '') or ''
    ids = []
    for line in text.splitlines():
        if '=' in line:
            k, v = line.split('=', 1)
            if k in ('ID', 'ID_LIKE'):
                ids += v.strip().strip('"\'').lower().split()
    return ids


class Accounts(object):
    """users and groups of the inspected tree (the live NSS databases when root is /)."""

    def __init__(self, root='/'):
        self.users = {}    # name -> (uid, gid)
        self.groups = {}   # name -> (gid, [members])
        if is_live(root):
            import grp
            import pwd
            try:
                for p in pwd.getpwall():
                    self.users[p.pw_name] = (p.pw_uid, p.pw_gid)
                for g in grp.getgrall():
                    self.groups[g.gr_name] = (g.gr_gid, list(g.gr_mem))
            except (KeyError, OSError):
                pass
        if not self.users:
            for line in (read(root, '/etc/passwd', '') or '').splitlines():
                f = line.split(':')
                if len(f) >= 4 and f[2].isdigit() and f[3].isdigit():
                    self.users.setdefault(f[0], (int(f[2]), int(f[3])))
        if not self.groups:
            for line in (read(root, '/etc/group', '') or '').splitlines():
                f = line.split(':')
                if len(f) >= 4 and f[2].isdigit():
                    self.groups.setdefault(f[0], (int(f[2]), [m for m in f[3].split(',') if m]))

    def user_name(self, uid):
        for name, (u, dummy) in self.users.items():
            if u == uid:
                return name
        return str(uid)

    def group_name(self, gid):
        for name, (g, dummy) in self.groups.items():
            if g == gid:
                return name
        return str(gid)

    def resolve_user(self, spec):
        """qemu.conf user: 'name', '+uid' or a number. -> (name, uid, primary gid) or None."""
        if spec is None:
            return None
        if spec.startswith('+') and spec[1:].isdigit():
            uid = int(spec[1:])
            name = self.user_name(uid)
            return name, uid, self.users.get(name, (uid, None))[1]
        if spec in self.users:
            return spec, self.users[spec][0], self.users[spec][1]
        if spec.isdigit():
            uid = int(spec)
            name = self.user_name(uid)
            return name, uid, self.users.get(name, (uid, None))[1]
        return None

    def resolve_group(self, spec):
        if spec is None:
            return None
        if spec.startswith('+') and spec[1:].isdigit():
            return int(spec[1:])
        if spec in self.groups:
            return self.groups[spec][0]
        if spec.isdigit():
            return int(spec)
        return None

    def member_gids(self, name):
        return set(g for (g, members) in self.groups.values() if name in members)
