# -*- coding: utf-8 -*-
# Copyright: kvmops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Free-space preflight: will the images this run creates fit, before anything is created?

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
    Caught by GuestManager.preflight, which re-wraps it as DomainError."""


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
