# -*- coding: utf-8 -*-
# Copyright: kvmops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""virt_backup's pure logic: options, which disks a backup takes, the level (full or
incremental) and why, the chain's state, the repository layout and manifest, retention,
and the backup and checkpoint XML libvirt gets.

Private to the collection: no API promise. No libvirt and no file access here (the manager
reads and writes; restore.py rebuilds).

Repository layout (one directory per guest, one per chain, one per point):

    <repository>/<guest>/.kvmops-backups         marker: kvmops made this directory
    <repository>/<guest>/<chain>/manifest.json   the chain: points, files, sizes, sha256
    <repository>/<guest>/<chain>/00-full/vda.qcow2, domain.xml, nvram.fd
    <repository>/<guest>/<chain>/01-inc/vda.qcow2   (qcow2, backing file ../00-full/vda.qcow2)
    <repository>/<guest>/<chain>.partial/ and <chain>/NN-inc.partial/   a backup in progress

A point is committed when its directory has its final name AND the manifest lists it; the
manifest is written atomically (temporary file, fsync, rename). Anything else under the
guest's directory is a leftover of an interrupted run and is removed by the next one.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import os
import re
import time

from ansible_collections.kvmops.hypervisor.plugins.module_utils._common.argspec import DEFAULT_URI
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt import locality
from ansible_collections.kvmops.hypervisor.plugins.module_utils._common.errors import KvmopsError
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt import xml as lxml_util

etree = lxml_util.etree

LEVELS = ('full', 'inc', 'auto')
QUIESCE = ('auto', 'required', 'skip')
MANIFEST = 'manifest.json'
MARKER = '.kvmops-backups'
PARTIAL = '.partial'
MANIFEST_FORMAT = 1
CHECKPOINT_PREFIX = 'kvmops-backup-'
_GUEST_NAME = re.compile(r'^[A-Za-z0-9][A-Za-z0-9_.+:-]*$')
_CHAIN = re.compile(r'^[0-9]{8}T[0-9]{6}Z(-[0-9]+)?$')
_POINT = re.compile(r'^([0-9]{2,})-(full|inc)$')


def check_guest_name(name, option='domain'):
    if not name or not _GUEST_NAME.match(name) or len(name) > 200:
        raise KvmopsError('%s=%r: a guest name of letters, digits and "_.+:-" (it names a '
                          'directory of the repository).' % (option, name))
    return name


def check_repository(path, option='repository'):
    if not path or not os.path.isabs(path):
        raise KvmopsError('%s=%r must be an absolute path on the hypervisor (a local directory '
                          'or a mounted file system QEMU can write to).' % (option, path))
    return os.path.normpath(path)


def normalize(params):
    """The spec of a virt_backup run from the module's parameters."""
    locality.require_local(params.get('uri', DEFAULT_URI), [
        ('repository', 'and the backup jobs\' target files are written')])
    names = []
    if params.get('domain'):
        names.append(params['domain'])
    names.extend(params.get('domains') or [])
    all_guests = bool(params.get('all_guests'))
    tag = params.get('tag')
    if not names and not all_guests and not tag:
        raise KvmopsError('Give domain (one guest), domains (a list of guests), all_guests=true '
                          'or tag (the guests carrying that tag) to back up.')
    if names and (all_guests or tag):
        raise KvmopsError('domain/domains name the guests; all_guests and tag select them: use '
                          'one way, not both.')
    seen = set()
    domains = []
    for name in names:
        check_guest_name(name, 'domains')
        if name not in seen:
            seen.add(name)
            domains.append(name)
    spec = {
        'domains': domains,
        'all_guests': all_guests,
        'tag': tag,
        'repository': check_repository(params.get('repository')),
        'level': params.get('level') or 'auto',
        'quiesce': params.get('quiesce') or 'auto',
        'chain_length': params.get('chain_length') if params.get('chain_length') is not None else 7,
        'keep_chains': params.get('keep_chains') if params.get('keep_chains') is not None else 2,
        'keep_days': params.get('keep_days'),
        'timeout': params.get('timeout') if params.get('timeout') is not None else 0,
        'parallel': params.get('parallel') or 2,
        'shut_off': params.get('shut_off') or 'start_paused',
    }
    for key, choices in (('level', LEVELS), ('quiesce', QUIESCE),
                         ('shut_off', ('start_paused', 'skip'))):
        if spec[key] not in choices:
            raise KvmopsError('%s=%r: choose one of %s.' % (key, spec[key], ', '.join(choices)))
    if spec['chain_length'] < 1:
        raise KvmopsError('chain_length=%r: at least 1 (the full backup itself; 1 means every '
                          'backup is a full one).' % spec['chain_length'])
    if spec['keep_chains'] < 1:
        raise KvmopsError('keep_chains=%r: at least 1 (the chain just written is always kept).'
                          % spec['keep_chains'])
    if spec['keep_days'] is not None and spec['keep_days'] <= 0:
        raise KvmopsError('keep_days=%r: a positive number of days, or leave it unset.'
                          % spec['keep_days'])
    if spec['parallel'] < 1:
        raise KvmopsError('parallel=%r: at least 1.' % spec['parallel'])
    if spec['timeout'] < 0:
        raise KvmopsError('timeout=%r: seconds, 0 for no limit.' % spec['timeout'])
    return spec


# -- disks -----------------------------------------------------------------------------------
def select_disks(disk_list):
    """(included, skipped) from _libvirt.domain_disks.disks(): the guest's writable disks on a
    file or block device are backed up; CD-ROMs, floppies, read-only and shareable disks and
    network disks are skipped, each with the reason."""
    included, skipped = [], []
    for d in disk_list:
        reason = None
        if d['device'] != 'disk':
            reason = 'a %s, not a disk' % d['device']
        elif d['readonly']:
            reason = 'read-only (e.g. a cloud-init seed)'
        elif d['shareable']:
            reason = 'shareable (attached to several guests): back it up where it lives'
        elif d['type'] not in ('file', 'block'):
            reason = ('a %s disk: only disks on files and block devices are backed up' % d['type'])
        elif not d['source'] or not d['target']:
            reason = 'no source'
        if reason:
            skipped.append({'target': d['target'], 'source': d['source'], 'reason': reason})
        else:
            included.append({'target': d['target'], 'source': d['source'],
                             'format': d['format'] or 'raw'})
    return included, skipped


def raw_disks(disks):
    """Disks that cannot carry a checkpoint (libvirt keeps checkpoints as qcow2 bitmaps)."""
    return [d['target'] for d in disks if d['format'] != 'qcow2']


def disk_signature(disks):
    return [[d['target'], d['source'], d['format']] for d in disks]


# -- names -------------------------------------------------------------------------------------
def chain_id(now, existing=()):
    base = time.strftime('%Y%m%dT%H%M%SZ', time.gmtime(now))
    name, n = base, 1
    while name in existing:
        name = '%s-%d' % (base, n)
        n += 1
    return name


def is_chain_dir(name):
    return bool(_CHAIN.match(name))


def point_dir(index, level):
    return '%02d-%s' % (index, level)


def parse_point_dir(name):
    m = _POINT.match(name)
    return (int(m.group(1)), m.group(2)) if m else None


def checkpoint_name(chain, index):
    return '%s%s-%02d' % (CHECKPOINT_PREFIX, chain, index)


def is_our_checkpoint(name):
    return name.startswith(CHECKPOINT_PREFIX)


def disk_file(target):
    return '%s.qcow2' % target


# -- the chain -----------------------------------------------------------------------------
def new_manifest(guest, uuid, host, chain, disks, now):
    return {'format': MANIFEST_FORMAT, 'guest': guest, 'uuid': uuid, 'host': host, 'chain': chain,
            'created': int(now), 'disks': disk_signature(disks), 'checkpoints': True,
            'broken': None, 'points': []}


def manifest_text(manifest):
    return json.dumps(manifest, indent=2, sort_keys=True) + '\n'


def parse_manifest(text, where):
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise KvmopsError('The backup manifest %s is not valid JSON (%s): the chain is unusable; '
                          'move it aside (the next backup starts a new chain).' % (where, exc))
    if not isinstance(data, dict) or data.get('format') != MANIFEST_FORMAT or \
            not isinstance(data.get('points'), list):
        raise KvmopsError('The backup manifest %s is not a kvmops manifest of format %d.'
                          % (where, MANIFEST_FORMAT))
    return data


def last_point(manifest):
    return manifest['points'][-1] if manifest and manifest.get('points') else None


def chain_problem(manifest, uuid, host, disks, checkpoints):
    """Why the chain cannot take an incremental backup (None when it can)."""
    if manifest is None or not manifest.get('points'):
        return 'there is no backup chain yet'
    if manifest.get('broken'):
        return 'the chain was marked broken: %s' % manifest['broken']
    if not manifest.get('checkpoints'):
        return 'the chain has no checkpoints (a disk is raw)'
    if manifest.get('uuid') != uuid:
        return 'the guest was redefined (its UUID is %s, the chain\'s is %s)' % (uuid, manifest.get('uuid'))
    if manifest.get('host') != host:
        return 'the guest moved host (from %s to %s): its checkpoints stayed behind' % (
            manifest.get('host'), host)
    if manifest.get('disks') != disk_signature(disks):
        before = set(tuple(d) for d in manifest.get('disks') or [])
        now = set(tuple(d) for d in disk_signature(disks))
        what = []
        if now - before:
            what.append('added or changed: %s' % ', '.join(sorted(d[0] for d in now - before)))
        if before - now:
            what.append('removed or changed: %s' % ', '.join(sorted(d[0] for d in before - now)))
        return 'the guest\'s disks changed since the chain began (%s)' % '; '.join(what)
    cp = last_point(manifest).get('checkpoint')
    if cp not in checkpoints:
        return 'its last checkpoint %s is missing on the guest' % cp
    return None


def choose_level(requested, manifest, problem, raw, chain_length):
    """(level, reason). raw: the disks without checkpoint support. Raises for level=inc when an
    incremental is impossible (use level=auto to fall back to a full)."""
    if raw:
        reason = ('disk(s) %s are raw: libvirt keeps checkpoints only in qcow2 images, so this guest '
                  'gets full backups only (convert them with qemu-img convert -O qcow2 for '
                  'incrementals)' % ', '.join(raw))
        if requested == 'inc':
            raise KvmopsError('level=inc is impossible: %s. Use level=full or auto.' % reason)
        return 'full', reason
    if requested == 'full':
        return 'full', 'level=full'
    if problem is None and len(manifest['points']) >= chain_length:
        if requested == 'inc':
            return 'inc', ('level=inc (the chain already has %d points, chain_length=%d)'
                           % (len(manifest['points']), chain_length))
        return 'full', ('the chain has %d points (chain_length=%d): a new chain starts'
                        % (len(manifest['points']), chain_length))
    if problem is not None:
        if requested == 'inc':
            raise KvmopsError('level=inc is impossible: %s. Use level=auto to start a new chain '
                              'with a full backup.' % problem)
        return 'full', problem
    return 'inc', 'incremental since checkpoint %s' % last_point(manifest)['checkpoint']


def point_entry(index, level, checkpoint, started, finished, frozen, disks, extra_files):
    """A manifest point; disks: {target: {file, size, sha256, virtual_size}}."""
    return {'index': index, 'level': level, 'dir': point_dir(index, level), 'checkpoint': checkpoint,
            'started': int(started), 'finished': int(finished), 'frozen': frozen,
            'disks': disks, 'files': extra_files}


def point_size(point):
    return sum(d['size'] for d in point['disks'].values()) + \
        sum(f['size'] for f in (point.get('files') or {}).values())


# -- retention ---------------------------------------------------------------------------------
def retention(chains, keep_chains, keep_days, now):
    """Chains to delete. chains: [(chain id, last point's finish time)] of complete chains;
    the newest chain is never deleted. keep_chains counts the newest chains kept; keep_days
    also deletes older-kept chains whose last point is older than that (never the newest)."""
    ordered = sorted(chains, key=lambda c: c[0], reverse=True)
    delete = []
    for pos, (cid, last) in enumerate(ordered):
        if pos == 0:
            continue
        if pos >= keep_chains:
            delete.append(cid)
        elif keep_days is not None and last is not None and now - last > keep_days * 86400:
            delete.append(cid)
    return delete


# -- XML -----------------------------------------------------------------------------------
def backup_xml(disks, all_targets, targets, incremental=None):
    """Push-mode backup XML: every disk in `disks` to its target file (qcow2, pre-created:
    REUSE_EXTERNAL); every other disk of the guest (all_targets) is left out."""
    root = etree.Element('domainbackup', mode='push')
    if incremental:
        etree.SubElement(root, 'incremental').text = incremental
    dl = etree.SubElement(root, 'disks')
    names = set(d['target'] for d in disks)
    for d in disks:
        disk = etree.SubElement(dl, 'disk', name=d['target'], backup='yes', type='file')
        etree.SubElement(disk, 'target', file=targets[d['target']])
        etree.SubElement(disk, 'driver', type='qcow2')
    for t in all_targets:
        if t and t not in names:
            etree.SubElement(dl, 'disk', name=t, backup='no')
    return lxml_util.to_string(root)


def checkpoint_xml(name, disks, all_targets, description=None):
    root = etree.Element('domaincheckpoint')
    etree.SubElement(root, 'name').text = name
    if description:
        etree.SubElement(root, 'description').text = description
    dl = etree.SubElement(root, 'disks')
    names = set(d['target'] for d in disks)
    for d in disks:
        etree.SubElement(dl, 'disk', name=d['target'], checkpoint='bitmap')
    for t in all_targets:
        if t and t not in names:
            etree.SubElement(dl, 'disk', name=t, checkpoint='no')
    return lxml_util.to_string(root)


def checkpoint_sizes(xml):
    """{disk: bytes changed since the checkpoint} from checkpoint XML read with the SIZE flag."""
    root = lxml_util.parse(xml)
    out = {}
    for disk in root.findall('disks/disk'):
        if disk.get('size') is not None:
            out[disk.get('name')] = int(disk.get('size'))
    return out
