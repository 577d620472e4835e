# -*- coding: utf-8 -*-
# Copyright: kvmops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which mount holds a path, and is it NFS or CIFS? Read from /proc/self/mountinfo.

Private to the collection: no API promise. Pure functions, unit-testable without Ansible.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import re

MOUNTINFO = '/proc/self/mountinfo'

# File-system types whose files libvirt can only use on an SELinux host when a boolean allows it.
NETWORK_FS = {
    'nfs': 'nfs',
    'nfs4': 'nfs',
    'cifs': 'cifs',
    'smb3': 'cifs',
    'smbfs': 'cifs',
}

# The SELinux boolean that lets sVirt guests use files on each kind of network file system.
BOOLEAN_FOR_FS = {
    'nfs': 'virt_use_nfs',
    'cifs': 'virt_use_samba',
}

_OCTAL = re.compile(r'\\([0-7]{3})')


def unescape(field):
    r"""Undo the kernel's octal escapes in mountinfo fields (\040 space, \011 tab, \012 newline, \134 backslash)."""
    return _OCTAL.sub(lambda m: chr(int(m.group(1), 8)), field)


def parse_mountinfo(text):
    """Parse the text of /proc/<pid>/mountinfo into a list of dicts, in file order.

    Line format (proc(5)): ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER
    Lines that do not follow it are skipped.
    """
    mounts = []
    for line in text.splitlines():
        fields = line.split(' ')
        if '-' not in fields:
            continue
        sep = fields.index('-')
        if sep < 6 or len(fields) < sep + 3:
            continue
        mounts.append({
            'mount_id': fields[0],
            'parent_id': fields[1],
            'device': fields[2],
            'root': unescape(fields[3]),
            'mount_point': unescape(fields[4]),
            'options': fields[5],
            'fstype': fields[sep + 1],
            'source': unescape(fields[sep + 2]),
            'super_options': fields[sep + 3] if len(fields) > sep + 3 else '',
        })
    return mounts


def _is_under(path, mount_point):
    if mount_point == '/':
        return True
    return path == mount_point or path.startswith(mount_point.rstrip('/') + '/')


def find_mount(path, mounts):
    """The mount that holds the absolute path: the longest mount point that is path or one of
    its parent directories (component-wise: /mnt/nfs2 is not under /mnt/nfs). Of several mounts
    on the same point, the last one listed (the one on top) wins. None when nothing matches."""
    best = None
    best_len = -1
    for m in mounts:
        mp = m['mount_point']
        if not _is_under(path, mp):
            continue
        length = len(mp.rstrip('/'))
        if length >= best_len:  # >=: a later mount on the same point is stacked on top
            best, best_len = m, length
    return best


def network_fs_kind(fstype):
    """'nfs' or 'cifs' for network file systems that need an SELinux boolean, else None."""
    return NETWORK_FS.get(fstype)


def resolve_existing(path):
    """Resolve symlinks of the deepest existing ancestor of path (the path may not exist yet)."""
    path = os.path.abspath(path)
    tail = []
    current = path
    while not os.path.exists(current):
        parent = os.path.dirname(current)
        if parent == current:
            break
        tail.insert(0, os.path.basename(current))
        current = parent
    resolved = os.path.realpath(current)
    return os.path.join(resolved, *tail) if tail else resolved


def mount_for_path(path, mountinfo_path=MOUNTINFO):
    """Return (mount dict or None, resolved path) for path, reading mountinfo_path."""
    resolved = resolve_existing(path)
    try:
        with open(mountinfo_path, 'r') as f:
            text = f.read()
    except (IOError, OSError):
        return None, resolved
    return find_mount(resolved, parse_mountinfo(text)), resolved
