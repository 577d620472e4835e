# -*- coding: utf-8 -*-
# Copyright: kvmops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Free-space preflight: will the images this run creates fit, before anything is created?
And a full clone's copies (check_copies), before anything is copied?

Private to the collection: no API promise. Reads only (statvfs, a pool's info).

The images a run creates (storage plans with action=create) are summed per file system
(st_dev of the directory they go to) or per storage pool:
- non-sparse images allocate their full size now: more than the free space fails the run;
- sparse images allocate as the guest writes: when they could grow past the free space the
  run goes on with a warning (a full file system pauses the guest with an I/O error).
qcow2 metadata and the installer cache (a kernel and an initrd) are small and not counted.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os

from ansible_collections.kvmops.hypervisor.plugins.module_utils._common.errors import KvmopsError
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt.locality import connection_is_local
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt.xml import etree

_GIB = 1024.0 ** 3


class SpaceError(KvmopsError):
    """Not enough free space: the message names the file system, the sizes and the fix.
    Caught by GuestManager.preflight, which re-wraps it as DomainError. labels: the images
    (or copies) that do not fit."""

    def __init__(self, msg, labels=(), **result):
        super(SpaceError, self).__init__(msg, **result)
        self.labels = list(labels)


def _gib(n):
    return '%.2f' % (n / _GIB)


def mount_point(path):
    path = os.path.realpath(path)
    while not os.path.ismount(path):
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return path


def _pool_target(pool):
    try:
        xml = pool.XMLDesc(0)
        path = etree.fromstring(xml.encode()).findtext('target/path') if etree is not None \
            else None
    except Exception:  # noqa: BLE001 - a pool without a target path: use its info
        path = None
    return path if path and os.path.isdir(path) else None


def _group_key_and_free(p, conn, statvfs):
    """(key, where, free bytes) for a planned image."""
    if p['kind'] == 'volume':
        pool = conn.storagePoolLookupByName(p['pool'])
        # Another host's pool: its target path here would be this host's directory.
        target = _pool_target(pool) if connection_is_local(conn) else None
        if target is None:
            return ('pool', p['pool']), 'storage pool %s' % p['pool'], pool.info()[3]
        directory = target
    else:
        directory = os.path.dirname(p['path'])
    st = os.stat(directory)
    vfs = statvfs(directory)
    free = vfs.f_bavail * vfs.f_frsize
    return ('dev', st.st_dev), 'the file system of %s (mounted on %s)' % (
        directory, mount_point(directory)), free


def check(plans, conn=None, statvfs=os.statvfs):
    """Warnings (list of str) for sparse images that could outgrow the free space; raises
    SpaceError when non-sparse images do not fit."""
    groups = {}
    for p in plans or []:
        if p.get('action') != 'create' or not p.get('size'):
            continue
        key, where, free = _group_key_and_free(p, conn, statvfs)
        g = groups.setdefault(key, {'where': where, 'free': free, 'full': [], 'sparse': []})
        # A copy-on-write clone starts empty whatever its size: count it as sparse.
        if p.get('sparse', True) or p.get('backing_store'):
            g['sparse'].append(p)
        else:
            g['full'].append(p)
    warnings = []
    for g in groups.values():
        full = sum(p['size'] for p in g['full'])
        if full > g['free']:
            raise SpaceError(
                "Not enough free space for the new disk images: %s (%s GiB, not sparse) need "
                "%s GiB on %s, which has %s GiB free. Nothing was created. Free space there, "
                "make the images sparse (sparse: true), make them smaller, or put them in "
                "another directory or pool."
                % (', '.join(p['label'] for p in g['full']), _gib(full), _gib(full), g['where'],
                   _gib(g['free'])))
        sparse = sum(p['size'] for p in g['sparse'])
        if g['sparse'] and full + sparse > g['free']:
            warnings.append(
                "The sparse disk images %s can grow to %s GiB, but %s has %s GiB free%s: the "
                "guest pauses with an I/O error when the file system fills. Free space there "
                "or watch it."
                % (', '.join(p['label'] for p in g['sparse']), _gib(sparse), g['where'],
                   _gib(g['free']),
                   (' (%s GiB of it for the non-sparse images)' % _gib(full)) if full else ''))
    return warnings


# ---------------------------------------------------------------------- full clones (issue 30)
# File systems where `cp --reflink=auto` can share the source's blocks (a copy on the same
# file system then needs ~nothing; XFS only when made with reflink=1, its default since
# xfsprogs 5.1).
REFLINK_FS = ('btrfs', 'xfs', 'bcachefs', 'ocfs2')


def fs_type(path, mounts='/proc/self/mounts'):
    """The type of the file system that path is on (the mount table's last entry for its
    mount point), or None when the table cannot be read."""
    point = mount_point(path)
    found = None
    try:
        with open(mounts) as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 3 and parts[1].replace('\\040', ' ') == point:
                    found = parts[2]
    except (IOError, OSError):
        return None
    return found


def clone_copies(disk_plans, nvram, conn=None):
    """What a full clone writes, per copy: [{'label', 'kind', 'path' | 'pool', 'bytes',
    'source_dev'}]. disk_plans and nvram are _guest/features/clone.py's plan (plan_disks,
    nvram_plan). bytes is what the source has allocated (its blocks, or the volume's
    allocation): the copies are sparse (cp --sparse=always; a pool volume is cloned with
    allocation 0), so that is what they write at most. A linked clone's qcow2 overlay and a
    shared disk write ~nothing and are not counted. Reads only."""
    out = []
    for p in disk_plans or []:
        if p['action'] == 'copy':
            st = os.stat(p['source'])
            out.append({'label': p['path'], 'kind': 'file', 'path': p['path'],
                        'bytes': st.st_blocks * 512, 'source_dev': st.st_dev})
        elif p['action'] == 'volume-copy':
            vol = conn.storagePoolLookupByName(p['pool']).storageVolLookupByName(p['volume'])
            out.append({'label': '%s/%s' % (p['pool'], p['new_volume']), 'kind': 'volume',
                        'pool': p['pool'], 'bytes': vol.info()[2], 'source_dev': None})
    if nvram and os.path.exists(nvram[0]):
        st = os.stat(nvram[0])
        out.append({'label': nvram[1], 'kind': 'file', 'path': nvram[1],
                    'bytes': st.st_blocks * 512, 'source_dev': st.st_dev})
    return out


def check_copies(copies, conn=None, statvfs=os.statvfs, fstype=fs_type):
    """Warnings (list of str); raises SpaceError when a full clone's copies (clone_copies())
    do not fit where they go, before anything is copied. A file copy on the source's own file
    system of a kind that can share blocks (REFLINK_FS) may need nothing: when only those
    would not fit, the run goes on with a warning (cp falls back to a real copy where the
    file system cannot share them; a failed copy is removed)."""
    groups = {}
    for c in copies or []:
        key, where, free = _group_key_and_free(c, conn, statvfs)
        g = groups.setdefault(key, {'where': where, 'free': free, 'full': [], 'reflink': []})
        shared_blocks = (c['kind'] == 'file' and c.get('source_dev') is not None
                         and key == ('dev', c['source_dev'])
                         and fstype(os.path.dirname(c['path'])) in REFLINK_FS)
        g['reflink' if shared_blocks else 'full'].append(c)
    warnings = []
    for g in groups.values():
        full = sum(c['bytes'] for c in g['full'])
        if full > g['free']:
            raise SpaceError(
                "Not enough free space for the full clone's copies: %s (%s GiB allocated in the "
                "source; the copies are sparse, so that is what they write) need %s GiB on %s, "
                "which has %s GiB free. Nothing was copied. Free space there, clone linked "
                "(clone_from.mode: linked, from a template: a qcow2 overlay needs almost "
                "nothing), or clone a source whose images are on a file system with room."
                % (', '.join(c['label'] for c in g['full']), _gib(full), _gib(full), g['where'],
                   _gib(g['free'])), labels=[c['label'] for c in g['full']])
        maybe = sum(c['bytes'] for c in g['reflink'])
        if g['reflink'] and full + maybe > g['free']:
            warnings.append(
                "The full clone's copies %s need %s GiB on %s, which has %s GiB free: enough "
                "only if the file system shares the source's blocks (a reflink; btrfs, XFS made "
                "with reflink=1). If it cannot, the copy fails when the file system is full and "
                "is removed. Free space there to be sure."
                % (', '.join(c['label'] for c in g['reflink']), _gib(maybe), g['where'],
                   _gib(g['free'])))
    return warnings
