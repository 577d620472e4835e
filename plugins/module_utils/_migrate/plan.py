# -*- coding: utf-8 -*-
# Copyright: kvmops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""virt_migrate's pure half: option normalisation, the checks a target host must pass before a
guest moves there, the choice of a target among candidates, and the migration flags and
parameters. No libvirt calls: the manager gathers facts and hands them in as dicts.

Private to the collection: no API promise.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os

from ansible_collections.kvmops.hypervisor.plugins.module_utils._common.errors import KvmopsError

try:
    from urllib.parse import urlsplit
except ImportError:  # pragma: no cover - Python 2 is not supported, kept for sanity's compile test
    from urlparse import urlsplit

STORAGE = ('shared', 'copy')
TIMEOUT_ACTIONS = ('abort', 'pause', 'postcopy')
MIB = 1024 * 1024
GIB = 1024 * MIB

# virDomainMigrateFlags (libvirt's public ABI).
VIR_MIGRATE_LIVE = 1
VIR_MIGRATE_PEER2PEER = 2
VIR_MIGRATE_PERSIST_DEST = 8
VIR_MIGRATE_UNDEFINE_SOURCE = 16
VIR_MIGRATE_NON_SHARED_DISK = 64
VIR_MIGRATE_UNSAFE = 512
VIR_MIGRATE_OFFLINE = 1024
VIR_MIGRATE_COMPRESSED = 2048
VIR_MIGRATE_AUTO_CONVERGE = 8192
VIR_MIGRATE_POSTCOPY = 32768
VIR_MIGRATE_TLS = 65536
FLAG_NAMES = [(VIR_MIGRATE_LIVE, 'live'), (VIR_MIGRATE_PEER2PEER, 'peer2peer'),
              (VIR_MIGRATE_PERSIST_DEST, 'persist_dest'), (VIR_MIGRATE_UNDEFINE_SOURCE, 'undefine_source'),
              (VIR_MIGRATE_NON_SHARED_DISK, 'non_shared_disk'), (VIR_MIGRATE_UNSAFE, 'unsafe'),
              (VIR_MIGRATE_OFFLINE, 'offline'), (VIR_MIGRATE_COMPRESSED, 'compressed'),
              (VIR_MIGRATE_AUTO_CONVERGE, 'auto_converge'), (VIR_MIGRATE_POSTCOPY, 'postcopy'),
              (VIR_MIGRATE_TLS, 'tls')]

# Tags in the guest's metadata (the inventory plugin's tags namespace) that steer placement.
PIN_PREFIX = 'pin:'
ANTI_AFFINITY_PREFIX = 'anti_affinity:'

# QEMU's TLS files for migration (tls: true): libvirt hands QEMU the directory of qemu.conf's
# migrate_tls_x509_cert_dir, else default_tls_x509_cert_dir, else /etc/pki/qemu. The source's
# QEMU connects (client files), the target's listens (server files); both check the peer
# against ca-cert.pem. The libvirt_pki role makes all five on every hypervisor.
QEMU_TLS_DIR = '/etc/pki/qemu'
TLS_CLIENT_FILES = ('ca-cert.pem', 'client-cert.pem', 'client-key.pem')
TLS_SERVER_FILES = ('ca-cert.pem', 'server-cert.pem', 'server-key.pem')
# What QEMU says when a TLS file is not there (object tls-creds-x509).
TLS_CREDENTIALS_ERROR = 'Unable to access credentials'

# libvirt's words for "I will not migrate this, the storage is not shared as far as I know".
VIR_ERR_MIGRATE_UNSAFE = 81
EOF_MESSAGE = 'End of file while reading data'


def host_of(uri):
    """The host name a URI points at (qemu+ssh://root@hv2/system -> hv2; local -> localhost)."""
    return urlsplit(uri).hostname or 'localhost'


def normalize(params):
    """The spec the manager runs on, from the module's parameters (KvmopsError on bad input)."""
    dests = []
    if params.get('dest_uri'):
        dests.append(params['dest_uri'])
    for uri in params.get('dest_candidates') or []:
        if uri not in dests:
            dests.append(uri)
    if not dests:
        raise KvmopsError('Say where the guest goes: dest_uri (one target) or dest_candidates '
                          '(the module picks one), e.g. qemu+ssh://root@hv2/system.')
    if params['uri'] in dests:
        raise KvmopsError('The target %s is the source itself (uri): give another hypervisor.'
                          % params['uri'])
    if params.get('unsafe') and params['storage'] != 'shared':
        raise KvmopsError('unsafe only applies to storage: shared (it tells libvirt that storage it '
                          'cannot recognise as shared really is); with storage: copy drop it.')
    bandwidth = params.get('bandwidth')
    if bandwidth is not None and bandwidth <= 0:
        raise KvmopsError('bandwidth is in MiB/s and must be positive (leave it out for no limit).')
    timeout = params.get('timeout') or 0
    if timeout < 0:
        raise KvmopsError('timeout is in seconds and must be 0 (none) or positive.')
    reserve = params.get('memory_reserve')
    if reserve is not None and reserve < 0:
        raise KvmopsError('memory_reserve is in MiB and cannot be negative.')
    return {
        'name': params['name'],
        'uri': params['uri'],
        'dests': dests,
        'storage': params['storage'],
        'unsafe': bool(params.get('unsafe')),
        'bandwidth': bandwidth,
        'timeout': timeout,
        'timeout_action': params.get('timeout_action') or 'abort',
        'auto_converge': bool(params.get('auto_converge')),
        'compression': bool(params.get('compression')),
        'tls': bool(params.get('tls')),
        'memory_reserve_bytes': (reserve if reserve is not None else 256) * MIB,
        'source_log': params.get('source_log', True),
    }


def flags(spec, live):
    """The virDomainMigrateFlags of this move (live: the guest runs; else offline)."""
    value = VIR_MIGRATE_PEER2PEER | VIR_MIGRATE_PERSIST_DEST | VIR_MIGRATE_UNDEFINE_SOURCE
    if not live:
        return value | VIR_MIGRATE_OFFLINE | (VIR_MIGRATE_UNSAFE if spec['unsafe'] else 0)
    value |= VIR_MIGRATE_LIVE
    if spec['storage'] == 'copy':
        value |= VIR_MIGRATE_NON_SHARED_DISK
    if spec['unsafe']:
        value |= VIR_MIGRATE_UNSAFE
    if spec['auto_converge']:
        value |= VIR_MIGRATE_AUTO_CONVERGE
    if spec['compression']:
        value |= VIR_MIGRATE_COMPRESSED
    if spec['tls']:
        value |= VIR_MIGRATE_TLS
    if spec['timeout'] and spec['timeout_action'] == 'postcopy':
        value |= VIR_MIGRATE_POSTCOPY
    return value


def flag_names(value):
    return [name for bit, name in FLAG_NAMES if value & bit]


def migrate_params(spec, guest, live):
    """virDomainMigrateToURI3's typed parameters (bandwidth MiB/s, migrate_disks)."""
    params = {}
    if spec['bandwidth']:
        params['bandwidth'] = int(spec['bandwidth'])
    if live and spec['storage'] == 'copy':
        params['migrate_disks'] = [d['target'] for d in disks_to_copy(guest)]
    return params


def disks_to_copy(guest):
    """The guest's writable local file/block disks: what storage: copy copies."""
    return [d for d in guest['disks']
            if d['device'] == 'disk' and d['type'] in ('file', 'block', 'volume') and d['path']
            and not d['readonly'] and not d['shareable']]


def disks_needed_as_is(guest, storage):
    """Disks that must already be on the target under the same path (read-only media, and
    with shared storage every local disk)."""
    local = [d for d in guest['disks'] if d['path'] and d['type'] in ('file', 'block', 'volume')]
    if storage == 'shared':
        return local
    copied = set(d['target'] for d in disks_to_copy(guest))
    return [d for d in local if d['target'] not in copied]


def placement(tags):
    """(pins, anti_affinity groups) from the guest's tags (pin:hv2, anti_affinity:db)."""
    pins = [t[len(PIN_PREFIX):].strip() for t in tags if t.startswith(PIN_PREFIX) and t[len(PIN_PREFIX):].strip()]
    groups = [t[len(ANTI_AFFINITY_PREFIX):].strip() for t in tags
              if t.startswith(ANTI_AFFINITY_PREFIX) and t[len(ANTI_AFFINITY_PREFIX):].strip()]
    return pins, groups


def _pool_for(path, pools):
    directory = os.path.dirname(path)
    for pool in pools:
        if pool.get('path') and os.path.normpath(pool['path']) == os.path.normpath(directory):
            return pool
    return None


def check_target(spec, guest, source, target):
    """Why the guest cannot move to target: ([reasons], [warnings]); no reasons = it can.

    guest: domain_devices.facts() of the guest (plus 'live': whether it runs).
    source/target: host facts the manager read: name, networks {name: active}, bridges (set,
    None when the host cannot list them), available_memory_bytes, domain_types, host_cpu
    (vendor, model, features), cpu_compare (None, 'incompatible', 'identical', 'superset' or
    'error: ...'), pools [{name, path, active}], volumes {path: {capacity, format}} (the guest's
    disk paths that exist on the target), guest_tags [tags of each running guest].
    """
    reasons, warnings = [], []
    name = target['name']
    for dev in guest['hostdevs']:
        reasons.append('it has a host device passed through (%s): a host device cannot move with '
                       'the guest; detach it first (virsh detach-device) or shut the guest down '
                       'and move it offline' % dev)
    if guest['domain_type'] and guest['arch'] and target.get('domain_types') is not None \
            and guest['domain_type'] not in target['domain_types']:
        reasons.append('%s cannot run %s guests of arch %s (it offers: %s)'
                       % (name, guest['domain_type'], guest['arch'], ', '.join(target['domain_types']) or 'none'))
    for iface in guest['interfaces']:
        if iface['type'] == 'network':
            active = target['networks'].get(iface['network'])
            if active is None:
                reasons.append('%s has no libvirt network %s (interface %s): define and start it there '
                               '(kvmops.hypervisor.virt_network)' % (name, iface['network'], iface['mac']))
            elif not active:
                reasons.append('the libvirt network %s is not active on %s: start it there (virsh net-start %s)'
                               % (iface['network'], name, iface['network']))
        elif iface['type'] == 'bridge':
            if target.get('bridges') is None:
                warnings.append('cannot list the network interfaces of %s: bridge %s not checked'
                                % (name, iface['bridge']))
            elif iface['bridge'] not in target['bridges']:
                reasons.append('%s has no bridge %s (interface %s): create it there (kvm_host_bridge_enabled '
                               'in the kvm_host role) or move the guest to a host that has it'
                               % (name, iface['bridge'], iface['mac']))
        elif iface['type'] in ('direct', 'hostdev', 'vhostuser'):
            if iface['type'] == 'direct' and iface.get('dev') and target.get('bridges') is not None \
                    and iface['dev'] not in target.get('nics', target['bridges']):
                reasons.append('%s has no network device %s for the macvtap interface %s'
                               % (name, iface['dev'], iface['mac']))
    need = guest['memory_bytes'] or 0
    free = target.get('available_memory_bytes')
    if free is not None and need + spec['memory_reserve_bytes'] > free:
        reasons.append('%s has %d MiB of memory available and the guest needs %d MiB plus the %d MiB '
                       'kept for the host (memory_reserve): free memory there, lower memory_reserve, or '
                       'pick another target' % (name, free // MIB, need // MIB, spec['memory_reserve_bytes'] // MIB))
    mode = guest['cpu']['mode']
    if mode == 'host-passthrough':
        if source.get('host_cpu') != target.get('host_cpu'):
            reasons.append('the guest uses CPU mode host-passthrough and the CPUs of %s (%s) and %s (%s) '
                           'differ: such a guest can only move between identical hosts; give it a CPU '
                           'model both hosts have (mode custom or host-model) at its next restart'
                           % (source['name'], _cpu_text(source.get('host_cpu')), name, _cpu_text(target.get('host_cpu'))))
    else:
        result = target.get('cpu_compare')
        if result == 'incompatible':
            reasons.append("the guest's CPU (%s, model %s) is not available on %s (libvirt's "
                           "compareHypervisorCPU): give the guest a CPU model both hosts have"
                           % (mode, guest['cpu']['model'], name))
        elif result and result.startswith('error'):
            warnings.append("the guest's CPU could not be compared with %s's: %s" % (name, result[len('error: '):]))
    # Storage.
    for disk in disks_needed_as_is(guest, spec['storage']):
        if disk['path'] in target['volumes']:
            continue
        pool = _pool_for(disk['path'], target['pools'])
        if spec['storage'] == 'shared':
            if pool is None:
                warnings.append('%s has no storage pool over %s: cannot check that %s (%s) is there; '
                                'libvirt will fail the move if it is not'
                                % (name, os.path.dirname(disk['path']), disk['path'], disk['target']))
            else:
                reasons.append('disk %s (%s) is not in pool %s on %s: with storage: shared the same file '
                               'must be visible on both hosts; mount the shared storage there, or use '
                               'storage: copy' % (disk['target'], disk['path'], pool['name'], name))
        else:
            if pool is None:
                warnings.append('%s has no storage pool over %s: cannot check that the read-only disk '
                                '%s (%s) is there' % (name, os.path.dirname(disk['path']), disk['target'], disk['path']))
            else:
                reasons.append('the read-only disk %s (%s) is not on %s: copy it there first (storage: copy '
                               'copies only writable disks)' % (disk['target'], disk['path'], name))
    if spec['storage'] == 'copy':
        for disk in disks_to_copy(guest):
            pool = _pool_for(disk['path'], target['pools'])
            if disk['path'] in target['volumes']:
                reasons.append('%s already has %s (disk %s): storage: copy never overwrites an image; '
                               'remove it there if it is stale, or use storage: shared if it is the same file'
                               % (name, disk['path'], disk['target']))
            elif pool is None:
                reasons.append('%s has no storage pool over %s to create the copy of disk %s in: define one '
                               '(the image_storage role) or use storage: shared'
                               % (name, os.path.dirname(disk['path']), disk['target']))
            elif not pool.get('active'):
                reasons.append('the storage pool %s on %s is not active: start it (virsh pool-start %s)'
                               % (pool['name'], name, pool['name']))
    for disk in guest['disks']:
        if disk['type'] == 'volume' and disk['pool'] and not any(p['name'] == disk['pool'] for p in target['pools']):
            reasons.append('%s has no storage pool %s (disk %s)' % (name, disk['pool'], disk['target']))
    # Placement tags.
    pins, groups = placement(guest['tags'])
    if pins and name not in pins:
        reasons.append('the guest is pinned to %s (tag pin:...), not %s' % (', '.join(pins), name))
    for group in groups:
        if any(ANTI_AFFINITY_PREFIX + group in tags for tags in target.get('guest_tags', [])):
            reasons.append('%s already runs a guest of anti-affinity group %s' % (name, group))
    return reasons, warnings


def _cpu_text(cpu):
    if not cpu:
        return 'unknown'
    return '%s %s' % (cpu.get('vendor') or '', cpu.get('model') or '')


def choose_target(spec, guest, source, targets):
    """(chosen target or None, {target name: (reasons, warnings)}): among the targets that pass
    every check, the one with the most available memory (in whole GiB), then the fewest running
    guests, then the first name."""
    verdicts = {}
    eligible = []
    for target in targets:
        reasons, warnings = check_target(spec, guest, source, target)
        verdicts[target['name']] = (reasons, warnings)
        if not reasons:
            eligible.append(target)
    # Memory in whole GiB: a few MiB of difference between two samples must not outweigh the
    # running-guest count.
    eligible.sort(key=lambda t: (-((t.get('available_memory_bytes') or 0) // GIB), t.get('running_guests', 0), t['name']))
    return (eligible[0] if eligible else None), verdicts


def refusal_message(guest_name, verdicts):
    """The message of a guest that no target can take."""
    parts = ['%s: %s' % (name, '; '.join(reasons)) for name, (reasons, dummy) in sorted(verdicts.items())]
    return ('Guest %s cannot move, nothing was changed. %s.' % (guest_name, ' | '.join(parts)))


def job_stats(stats):
    """The migration's job statistics, as libvirt reports them, in the result's units."""
    if not stats:
        return {}
    keys = {'time_elapsed': 'total_ms', 'downtime': 'downtime_ms', 'setup_time': 'setup_ms',
            'data_total': 'data_total_bytes', 'data_processed': 'data_processed_bytes',
            'memory_total': 'memory_total_bytes', 'memory_processed': 'memory_processed_bytes',
            'memory_iteration': 'memory_iterations', 'memory_dirty_rate': 'memory_dirty_rate_pages_s',
            'memory_bps': 'memory_bps', 'disk_total': 'disk_total_bytes', 'disk_processed': 'disk_processed_bytes',
            'auto_converge_throttle': 'auto_converge_throttle_percent', 'compression_cache': 'compression_cache_bytes'}
    return dict((new, stats[old]) for old, new in keys.items() if old in stats)


def is_unsafe_refusal(code, message):
    """libvirt refused because it does not know the storage to be shared (peer-to-peer
    migration may hand the error over with another code: the words decide then)."""
    return code == VIR_ERR_MIGRATE_UNSAFE or 'unsafe migration' in (message or '').lower()


def tls_dir(conf):
    """The directory migration TLS reads, from qemu.conf's values (a dict)."""
    for key in ('migrate_tls_x509_cert_dir', 'default_tls_x509_cert_dir'):
        value = conf.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return QEMU_TLS_DIR


def tls_paths(directory, names):
    return [os.path.join(directory, n) for n in names]


def tls_refusal(guest_name, host, directory, missing):
    """The message of a tls: true move whose source lacks QEMU's TLS files."""
    return ('Guest %s cannot move with tls: true, nothing was changed: %s has no %s. With tls: true '
            "the source's QEMU connects to the target's with TLS and needs %s; the target's needs %s. "
            'Make them on every hypervisor with the role kvmops.hypervisor.libvirt_pki (or kvm_host with '
            'kvm_host_pki: true), or move without tls.'
            % (guest_name, host, ', '.join(missing), ', '.join(tls_paths(directory, TLS_CLIENT_FILES)),
               ', '.join(tls_paths(directory, TLS_SERVER_FILES))))


def tls_failure_hint(message, target_name):
    """The fix when a tls: true move failed because QEMU could not read a TLS file (on the
    target: the module cannot look at the target's files before the move), or None."""
    if TLS_CREDENTIALS_ERROR.lower() not in (message or '').lower():
        return None
    return ("QEMU could not read a TLS file for the migration (on %s, the target, unless the source's "
            "files changed since the check): make the certificates in %s on every hypervisor with the role "
            'kvmops.hypervisor.libvirt_pki (or kvm_host with kvm_host_pki: true), or move without tls'
            % (target_name, QEMU_TLS_DIR))


def is_eof(message):
    return EOF_MESSAGE.lower() in (message or '').lower()


def unsafe_hint(exc_message):
    """The fix for libvirt's refusal of storage it does not know to be shared."""
    return ('libvirt refused the move: %s. libvirt recognises only NFS, GlusterFS, Ceph/RBD, GPFS, '
            'CIFS, Quobyte and the like as shared; a bind mount, a podman volume or a cluster file system '
            'it does not know looks local to it. If the disks really are the same files on both hosts, '
            'say so with unsafe: true (libvirt then skips that check; a wrong claim corrupts the disks); '
            'otherwise use storage: copy, or use cache=none where libvirt asks for it.' % exc_message)
