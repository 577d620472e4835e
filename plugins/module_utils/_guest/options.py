# -*- coding: utf-8 -*-
# Copyright: kvmops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one entry from a guest's options to what its manager runs on: from_params() gives
the spec (the engine's), the install option and the cloud options, normalised. Both guest
modules and each guest of virt_install_domains use it. Also here: the cloud-guest options'
argument spec. Private to the collection: no API promise. Pure (no files, no libvirt).

prepare_params() runs before the domain spec is normalised: it takes disks[].base_image out
of each disk (turning it into backing_store: the path the base will have in the cache) and
appends the cloud-init seed as a read-only virtio disk, so the engine (_guest/storage.py,
builder.py, drift.py) plans, builds and compares those disks like any other.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import copy
import re

from ansible_collections.kvmops.hypervisor.plugins.module_utils._common.errors import KvmopsError
from ansible_collections.kvmops.hypervisor.plugins.module_utils._guest import argspec as dargspec
from ansible_collections.kvmops.hypervisor.plugins.module_utils._cloud import seed_store as _store
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt import addresses as _addr

WAIT_FOR = ('none', 'ip', 'ssh')
# Same value as _cloud.base_image.DEFAULT_CACHE_DIR (a unit test keeps them equal); repeated
# here so that the argument spec does not import the download code (_install/media.py), which
# a plain guest of virt_install_domains never loads.
DEFAULT_BASE_CACHE_DIR = '/var/lib/libvirt/boot/kvmops-base'


def base_image_argument_spec():
    return dict(type='dict', options=dict(
        url=dict(type='str', required=True),
        checksum=dict(type='str', required=True),
        cache_dir=dict(type='path', default=DEFAULT_BASE_CACHE_DIR),
        validate_certs=dict(type='bool', default=True),
        timeout=dict(type='int', default=30),
    ))


def argument_spec():
    """The top-level options this package adds to virt_install_domain."""
    return dict(
        cloud_init=dict(type='dict', options=dict(
            # user_data is where cloud-init takes passwords, tokens and keys (chpasswd,
            # write_files): no_log. meta_data and network_config hold names and addresses; no_log
            # there would mask every short value (a network_config 'version: 2' masks each '2'
            # of the output), so they are not (issue 26).
            user_data=dict(type='raw', no_log=True),
            meta_data=dict(type='dict', no_log=False),
            network_config=dict(type='raw', no_log=False),
            ssh_authorized_keys=dict(type='list', elements='str', no_log=False),
            password=dict(type='str', no_log=True),
            password_hash=dict(type='str', no_log=True),
            hostname=dict(type='str'),
            instance_id=dict(type='str'),
            seed_dir=dict(type='path', default=_store.DEFAULT_SEED_DIR),
        )),
        guest_agent=dict(type='bool'),
        port_forwards=dict(type='list', elements='dict', options=dict(
            host_port=dict(type='int', required=True),
            guest_port=dict(type='int', required=True),
            address=dict(type='str', default='127.0.0.1'),
            proto=dict(type='str', default='tcp', choices=['tcp', 'udp']),
        )),
        port_forward_backend=dict(type='str', default='passt', choices=['passt', 'qemu']),
        wait_for=dict(type='str', default='none', choices=list(WAIT_FOR)),
        wait_timeout=dict(type='int', default=300),
        address_sources=dict(type='list', elements='str', default=['lease', 'agent', 'arp'],
                             choices=sorted(_addr.SOURCES)),
        ssh_host=dict(type='str'),
        ssh_port=dict(type='int'),
    )


def with_cloud_options(guest_spec):
    """One guest's argument spec (_guest/argspec.guest_options) plus the cloud options: what
    virt_install_domain and each item of virt_install_domains take."""
    spec = copy.deepcopy(guest_spec)
    spec['disks']['options']['base_image'] = base_image_argument_spec()
    spec.update(argument_spec())
    return spec


def guest_options():
    """What one guest of virt_install_domains takes: one guest's options with the cloud ones
    (without uri: one connection serves the run)."""
    return with_cloud_options(dargspec.guest_options())


def _port(value, option):
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 65535:
        raise KvmopsError("%s=%r must be a port number between 1 and 65535." % (option, value))
    return value


def normalize(params):
    """The cloud options as a dict (or raises KvmopsError). Pure."""
    ci = params.get('cloud_init')
    disks = params.get('disks') or []
    bases = []
    for i, d in enumerate(disks):
        b = (d or {}).get('base_image')
        if not b:
            continue
        opt = 'disks[%d].base_image' % i
        from ansible_collections.kvmops.hypervisor.plugins.module_utils._cloud import (
            base_image as _base)
        url = b.get('url') or ''
        if not re.match(r'^(https?|ftp|file)://', url, re.I) and not url.startswith('/'):
            raise KvmopsError("%s.url=%r must be an http(s)/ftp/file URL or an absolute "
                              "path on the hypervisor." % (opt, url))
        _base.parse_checksum(b.get('checksum'), opt + '.checksum')
        if d.get('backing_store'):
            raise KvmopsError("%s and disks[%d].backing_store both name the base; give "
                              "one." % (opt, i))
        if not d.get('path'):
            raise KvmopsError("%s needs disks[%d].path (the clone's qcow2 overlay)."
                              % (opt, i))
        if d.get('format') == 'raw':
            raise KvmopsError("%s makes a qcow2 overlay clone; remove format=raw." % opt)
        path = _base.planned_path(url, b['checksum'], b.get('cache_dir'))
        bases.append({'index': i, 'url': url, 'checksum': b['checksum'], 'path': path,
                      'cache_dir': b.get('cache_dir') or DEFAULT_BASE_CACHE_DIR,
                      'validate_certs': b.get('validate_certs') is not False,
                      'timeout': b.get('timeout') or 30})
    agent = params.get('guest_agent')
    if agent is None:
        agent = bool(ci)
    forwards = []
    seen = set()
    for i, f in enumerate(params.get('port_forwards') or []):
        opt = 'port_forwards[%d]' % i
        hp = _port(f.get('host_port'), opt + '.host_port')
        gp = _port(f.get('guest_port'), opt + '.guest_port')
        address = f.get('address') or '127.0.0.1'
        if not re.match(r'^[0-9A-Fa-f:.]+$', address):
            raise KvmopsError("%s.address=%r is not an IP address." % (opt, address))
        proto = f.get('proto') or 'tcp'
        if (proto, address, hp) in seen:
            raise KvmopsError("%s forwards %s %s:%d twice." % (opt, proto, address, hp))
        seen.add((proto, address, hp))
        forwards.append({'host_port': hp, 'guest_port': gp, 'address': address, 'proto': proto})
    wait_for = params.get('wait_for') or 'none'
    if wait_for not in WAIT_FOR:
        raise KvmopsError("wait_for=%r: use none, ip or ssh." % wait_for)
    timeout = params.get('wait_timeout')
    timeout = 300 if timeout is None else timeout
    if timeout < 1:
        raise KvmopsError("wait_timeout=%r must be at least 1 second." % timeout)
    if wait_for != 'none' and params.get('state', 'running') != 'running':
        raise KvmopsError("wait_for=%s needs state=running (a stopped guest has no "
                          "address)." % wait_for)
    out = {
        'cloud_init': None, 'bases': bases, 'guest_agent': agent, 'port_forwards': forwards,
        'port_forward_backend': params.get('port_forward_backend') or 'passt',
        'wait_for': wait_for, 'wait_timeout': timeout,
        'address_sources': list(params.get('address_sources') or ['lease', 'agent', 'arp']),
        'ssh_host': params.get('ssh_host'), 'ssh_port': params.get('ssh_port'),
    }
    if out['ssh_port'] is not None:
        _port(out['ssh_port'], 'ssh_port')
    if ci:
        ci = dict(ci)
        if not disks and params.get('state') != 'absent' and not params.get('clone_from'):
            raise KvmopsError("cloud_init needs disks: the guest's root disk (usually a "
                              "clone of a cloud image: disks[0].base_image).")
        ci['seed_dir'] = ci.get('seed_dir') or _store.DEFAULT_SEED_DIR
        out['cloud_init'] = ci
        out['seed_directory'], out['seed_iso'] = _store.seed_paths(ci['seed_dir'],
                                                                   params.get('name') or '')
    return out


def prepare_params(params, cloud):
    """Params for the domain spec: base_image -> backing_store; the seed as the last disk."""
    params = dict(params)
    if params.get('disks') is None and cloud.get('cloud_init') and params.get('clone_from'):
        params['disks'] = []   # a clone's disks come from its source; its seed is its own
    if params.get('disks') is None:
        return params
    disks = []
    by_index = dict((b['index'], b) for b in cloud['bases'])
    for i, d in enumerate(params['disks']):
        d = dict((k, v) for k, v in (d or {}).items() if k != 'base_image')
        if i in by_index:
            d['backing_store'] = by_index[i]['path']
            d['format'] = 'qcow2'
        disks.append(d)
    if cloud.get('cloud_init'):
        if any(d.get('path') == cloud['seed_iso'] for d in disks):
            raise KvmopsError("disks already holds the cloud-init seed %s; remove it "
                              "(the module attaches the seed itself)." % cloud['seed_iso'])
        # A read-only virtio disk, not a CD-ROM: Debian's cloud kernel has no SATA/AHCI
        # driver, so a seed on a SATA CD-ROM is never seen (cloud-init falls back to
        # DataSourceNone); every cloud kernel has virtio-blk.
        disks.append({'path': cloud['seed_iso'], 'device': 'disk', 'bus': 'virtio',
                      'readonly': True, 'format': 'raw'})
    params['disks'] = disks
    return params


def spec_and_cloud(params):
    """(domain spec, cloud options or None) of one guest's validated params: the cloud options
    normalised, base_image made backing_store, the seed appended, then the domain spec.
    Raises KvmopsError (or _guest.spec.SpecError, one)."""
    params = dict(params)
    if params.get('disks') is not None:
        params['disks'] = [dict((k, v) for k, v in d.items() if v is not None)
                           for d in params['disks']]
    cloud = normalize(params)
    spec = dargspec.spec_from_params(prepare_params(params, cloud))
    return spec, (cloud if wanted(cloud) else None)


def wanted(cloud):
    """Whether a run needs the cloud-guest manager (any cloud option given)."""
    return bool(cloud.get('cloud_init') or cloud.get('bases') or cloud.get('guest_agent')
                or cloud.get('port_forwards') or cloud.get('wait_for', 'none') != 'none')


class GuestOptions(object):
    """One guest's options, normalised: spec (the engine's), install (None without an install
    source), cloud (None without a cloud option)."""

    def __init__(self, spec, install=None, cloud=None):
        self.spec = spec
        self.install = install
        self.cloud = cloud

    @property
    def name(self):
        return self.spec['name']


def from_params(params):
    """GuestOptions of one guest's validated params; raises KvmopsError naming the option and
    the fix before anything is touched. The install code is imported only for a guest with an
    install source (a plain guest's run skips its import time)."""
    clone = params.get('clone_from') or {}
    if clone.get('seal') and not params.get('cloud_init') and params.get('state') != 'absent':
        # A sealed clone needs a seed with a new instance-id (_cloud/seal.py): a minimal one
        # (hostname = the clone's name) when the task gives none.
        params = dict(params, cloud_init={'seed_dir': _store.DEFAULT_SEED_DIR})
    spec, cloud = spec_and_cloud(params)
    if clone.get('seal') and cloud and cloud.get('cloud_init'):
        cloud['cloud_init']['seal'] = True
    spec['clone_from'] = None
    spec['template'] = params.get('template')
    if params.get('clone_from') or params.get('template') is not None:
        from ansible_collections.kvmops.hypervisor.plugins.module_utils._guest.features import (
            clone as _clone)
        _clone.normalize(params, spec)
    install = None
    if params.get('install'):
        from ansible_collections.kvmops.hypervisor.plugins.module_utils._guest.features import (
            install as _install)
        install = _install.normalize_install(params['install'], spec, params.get('wait'))
    return GuestOptions(spec, install, cloud)
