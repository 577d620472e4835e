# -*- coding: utf-8 -*-
# Copyright: kvmops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Validate and normalise virt_install_domain's options into a spec dict.

Private to the collection: no API promise. Pure functions: no libvirt, no file system
(whether files exist is checked by the manager's preflight, still before anything changes). Every problem raises SpecError with a message
that names the option, the bad value and the fix, before anything is created.

The spec keeps None for every option the user did not give: drift detection compares only
what was asked for, and the XML builder fills in defaults (see DEFAULTS / os_variant_defaults)
only when it creates something new.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import re

from ansible_collections.kvmops.hypervisor.plugins.module_utils._common.errors import KvmopsError
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt import osinfo as _osinfo
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt import graphics
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt.disk_targets import CDROM_BUS


class SpecError(KvmopsError):
    """Bad input: the message says which option, what was wrong and how to fix it. Caught by
    _libvirt/osinfo.normalize_with_facts (an os_variant only libosinfo knows)."""


STATES = ('running', 'stopped', 'present', 'absent')
VIRT_TYPES = ('auto', 'kvm', 'qemu')
FIRMWARES = ('bios', 'uefi')
DISK_FORMATS = ('raw', 'qcow2')
# What the base image of a copy-on-write clone may be (backing_format; issue 26).
BACKING_FORMATS = ('qcow2', 'raw')
DISK_BUSES = ('virtio', 'sata', 'scsi', 'ide', 'usb')
DISK_DEVICES = ('disk', 'cdrom')
DISK_CACHES = ('default', 'none', 'writethrough', 'writeback', 'directsync', 'unsafe')
NIC_MODELS = ('virtio', 'e1000', 'e1000e', 'rtl8139')
GRAPHICS_TYPES = ('none', 'vnc', 'spice')
CPU_MODES = ('host-passthrough', 'host-model')
DIRECT_MODES = ('bridge', 'vepa', 'private', 'passthrough')

# Defaults used only when something new is created (a domain, a disk, a NIC).
DEFAULTS = {
    'memory_mib': 1024,
    'vcpus': 1,
    'firmware': 'bios',
    'graphics': {'type': 'vnc', 'listen': None, 'port': None, 'password': None, 'keymap': None},
    'serial': {'type': 'pty', 'path': None},
    'disk_format': 'raw',
}

# os_variant families and their device defaults (virt-install / libosinfo in spirit).
OS_FAMILIES = {
    'generic': {'disk_bus': 'sata', 'nic_model': 'e1000', 'clock': 'utc', 'hyperv': False,
                'tablet': False, 'video': 'vga'},
    'linux': {'disk_bus': 'virtio', 'nic_model': 'virtio', 'clock': 'utc', 'hyperv': False,
              'tablet': False, 'video': 'virtio'},
    'windows': {'disk_bus': 'sata', 'nic_model': 'e1000e', 'clock': 'localtime', 'hyperv': True,
                'tablet': True, 'video': 'qxl'},
}
# libosinfo short ids (what the guide passes to --os-variant) mapped onto a family by prefix.
_LINUX_PREFIXES = ('linux', 'rhel', 'centos', 'fedora', 'rocky', 'alma', 'ol', 'debian',
                   'ubuntu', 'opensuse', 'sles', 'sled', 'archlinux', 'alpine', 'gentoo',
                   'slackware', 'mageia', 'cirros', 'silverblue', 'coreos', 'fedora-coreos',
                   'nixos', 'void', 'manjaro', 'mint', 'popos', 'kali', 'amzn', 'eurolinux',
                   'navy', 'circle', 'openeuler', 'virtuozzo', 'scientificlinux', 'sl')

_MEMORY_UNITS = {
    '': 1, 'm': 1, 'mb': 1, 'mib': 1, 'M': 1,
    'k': 1.0 / 1024, 'kb': 1.0 / 1024, 'kib': 1.0 / 1024,
    'g': 1024, 'gb': 1024, 'gib': 1024,
    't': 1024 * 1024, 'tb': 1024 * 1024, 'tib': 1024 * 1024,
}
_XML_META = re.compile('[<>&"\'\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff\ufffe\uffff]')
# Characters XML 1.0 cannot carry at all (lxml raises ValueError on them): control
# characters, lone surrogates and the non-characters U+FFFE/U+FFFF.
NOT_XML = re.compile('[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff\ufffe\uffff]')
_MAC_RE = re.compile(r'^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$')
_NAME_RE = re.compile(r'^[A-Za-z0-9][A-Za-z0-9_.+:-]*$')
_IFACE_RE = re.compile(r'^[A-Za-z0-9_.:-]{1,15}$')
_KEYMAP_RE = re.compile(r'^[a-z]{2,3}(-[a-z]{2,4})?$')
_MODEL_RE = re.compile(r'^[A-Za-z0-9_.-]+$')


def check_string(option, value):
    """Reject XML metacharacters and control characters: they never belong in names or
    paths, and a value that carries them is a templating accident, not intent."""
    if value is None:
        return None
    if not isinstance(value, str):
        value = str(value)
    bad = _XML_META.search(value)
    if bad:
        raise SpecError("%s=%r contains the character %r; XML metacharacters (< > & ' \") and "
                        "control characters are not allowed. Remove it (quote nothing: the "
                        "module writes the XML itself)." % (option, value, bad.group(0)))
    return value


def parse_memory(value, option='memory'):
    """MiB as an int, or a string with a unit ('2GiB', '512M', '1.5G'); returns MiB (int)."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise SpecError("%s=%r is not a size; give MiB as a number or a string such as '2GiB'."
                        % (option, value))
    if isinstance(value, (int, float)):
        number, unit = float(value), ''
    else:
        m = re.match(r'^\s*(-?[0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)\s*$', str(value))
        if not m:
            raise SpecError("%s=%r is not a size; give MiB as a number or a string with a unit "
                            "such as '2048', '512MiB' or '2GiB'." % (option, value))
        number, unit = float(m.group(1)), m.group(2)
    factor = _MEMORY_UNITS.get(unit, _MEMORY_UNITS.get(unit.lower()))
    if factor is None:
        raise SpecError("%s=%r has an unknown unit %r; use KiB, MiB, GiB or TiB."
                        % (option, value, unit))
    mib = number * factor
    if mib <= 0:
        raise SpecError("%s=%r must be positive." % (option, value))
    if mib != int(mib):
        raise SpecError("%s=%r is not a whole number of MiB." % (option, value))
    return int(mib)


def parse_size_gib(value, option):
    """Disk size in GiB like virt-install (may be fractional); returns bytes (int)."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise SpecError("%s=%r is not a size in GiB." % (option, value))
    try:
        gib = float(value)
    except (TypeError, ValueError):
        raise SpecError("%s=%r is not a size in GiB (a number such as 10 or 0.5)."
                        % (option, value))
    if gib <= 0:
        raise SpecError("%s=%r must be a positive size in GiB." % (option, value))
    size = int(gib * 1024 * 1024 * 1024)
    return size - size % 512


def check_name(name):
    if not name:
        raise SpecError("name is required and must not be empty.")
    check_string('name', name)
    if len(name) > 200 or not _NAME_RE.match(name):
        raise SpecError("name=%r cannot be a libvirt domain name here: use letters, digits, "
                        "'.', '_', '+', ':' and '-', starting with a letter or digit, at most 200 "
                        "characters (no '/', spaces or shell/XML metacharacters)." % (name,))
    return name


def check_path(option, value):
    if value is None:
        return None
    check_string(option, value)
    if not os.path.isabs(value):
        raise SpecError("%s=%r is a relative path; give an absolute path (libvirt resolves "
                        "paths on the hypervisor, not from the playbook's directory)."
                        % (option, value))
    norm = os.path.normpath(value)
    if norm.startswith('//'):
        norm = '/' + norm.lstrip('/')
    if norm == '/':
        raise SpecError("%s=%r names the root directory, not a file; give the file's absolute "
                        "path." % (option, value))
    return norm


def os_family(os_variant):
    """generic | linux | windows for an os_variant (a family or a libosinfo short id)."""
    if os_variant is None:
        return 'generic'
    v = os_variant.lower()
    if v in OS_FAMILIES:
        return v
    if v.startswith('win'):
        return 'windows'
    for p in _LINUX_PREFIXES:
        if v.startswith(p):
            return 'linux'
    # BSDs and other systems libosinfo knows (freebsd13.0): see _libvirt/osinfo.py.
    family = _osinfo.fallback_family(v)
    if family:
        return family
    raise SpecError("os_variant=%r is unknown; use generic, linux or windows, or a libosinfo "
                    "short id that starts with a known family (e.g. centos7.0, rhel9.4, "
                    "debian12, ubuntu24.04, win2k12r2, freebsd13.0; osinfo-query os lists "
                    "them)." % (os_variant,))


def _disk(i, d, family):
    opt = 'disks[%d]' % i
    device = d.get('device') or 'disk'
    path = check_path(opt + '.path', d.get('path'))
    pool = check_string(opt + '.pool', d.get('pool'))
    volume = check_string(opt + '.volume', d.get('volume'))
    if path and (pool or volume):
        raise SpecError("%s gives both path and pool/volume; give either path or pool and "
                        "volume." % opt)
    if not path and not (pool and volume):
        if device == 'cdrom' and not pool and not volume:
            pass  # an empty CD-ROM drive
        else:
            raise SpecError("%s needs a path, or pool and volume." % opt)
    for key, value in (('pool', pool), ('volume', volume)):
        if value is not None and '/' in value:
            raise SpecError("%s.%s=%r must be a name, not a path." % (opt, key, value))
    fmt = d.get('format')
    backing = check_path(opt + '.backing_store', d.get('backing_store'))
    if backing:
        if fmt == 'raw':
            raise SpecError("%s: backing_store needs format qcow2 (a copy-on-write clone); "
                            "remove format=raw." % opt)
        fmt = 'qcow2'
        if device != 'disk':
            raise SpecError("%s: backing_store only applies to device=disk." % opt)
    backing_format = d.get('backing_format')
    if backing_format is not None:
        if backing_format not in BACKING_FORMATS:
            raise SpecError("%s.backing_format=%r: give one of %s."
                            % (opt, backing_format, ', '.join(BACKING_FORMATS)))
        if not backing and not d.get('base_image'):
            raise SpecError("%s.backing_format applies only with backing_store or base_image."
                            % opt)
    if backing and backing_format is None:
        # the base's format is the user's word (default qcow2), never its header's
        backing_format = 'qcow2'
    size = parse_size_gib(d.get('size'), opt + '.size')
    if device == 'cdrom' and (size is not None or backing):
        raise SpecError("%s is a cdrom: size and backing_store do not apply (give the ISO "
                        "path)." % opt)
    sparse = d.get('sparse')
    if sparse is None:
        sparse = True
    readonly = d.get('readonly')
    if device == 'cdrom':
        readonly = True
    return {
        'path': path, 'pool': pool, 'volume': volume, 'device': device, 'size': size,
        'format': fmt, 'sparse': sparse, 'backing_store': backing,
        'backing_format': backing_format if backing else None,
        'bus': d.get('bus'),
        'bus_default': CDROM_BUS if device == 'cdrom' else OS_FAMILIES[family]['disk_bus'],
        'cache': d.get('cache'),
        'readonly': readonly,
    }


def _network(i, n, family):
    opt = 'networks[%d]' % i
    kinds = [k for k in ('network', 'bridge', 'direct') if n.get(k) is not None]
    if len(kinds) != 1:
        raise SpecError("%s needs exactly one of network (a libvirt network such as default), "
                        "bridge (a host bridge such as br0) or direct (a host interface such as "
                        "eth0 for macvtap); got %s." % (opt, ', '.join(kinds) or 'none'))
    kind = kinds[0]
    source = check_string('%s.%s' % (opt, kind), n[kind])
    if kind != 'network' and not _IFACE_RE.match(source):
        raise SpecError("%s.%s=%r is not a host interface name." % (opt, kind, source))
    if kind == 'network' and not _NAME_RE.match(source):
        raise SpecError("%s.network=%r is not a libvirt network name." % (opt, source))
    mode = n.get('mode')
    if mode and kind != 'direct':
        raise SpecError("%s.mode only applies to direct (macvtap) interfaces." % opt)
    model = check_string(opt + '.model', n.get('model'))
    if model is not None and not _MODEL_RE.match(model):
        raise SpecError("%s.model=%r is not a NIC model name (e.g. %s)."
                        % (opt, model, ', '.join(NIC_MODELS)))
    mac = check_string(opt + '.mac', n.get('mac'))
    if mac is not None:
        if not _MAC_RE.match(mac):
            raise SpecError("%s.mac=%r is not a MAC address like 52:54:00:12:34:56." % (opt, mac))
        mac = mac.lower()
        if int(mac[:2], 16) & 1:
            raise SpecError("%s.mac=%r is a multicast address; use a unicast one such as "
                            "52:54:00:xx:xx:xx." % (opt, mac))
    return {'type': kind, 'source': source, 'mode': mode,
            'model': model, 'model_default': OS_FAMILIES[family]['nic_model'], 'mac': mac}


def _graphics(g):
    if g is None:
        return None
    gtype = g.get('type') or 'vnc'
    listen = check_string('graphics.listen', g.get('listen'))
    if listen is not None:
        try:
            graphics.parse_listen(listen, 'graphics.listen')
        except graphics.GraphicsError as exc:
            raise SpecError.rewrap(exc)
    port = g.get('port')
    if port is not None:
        try:
            port = int(port)
        except (TypeError, ValueError):
            raise SpecError("graphics.port=%r is not a number." % (port,))
        if port != -1 and not 5900 <= port <= 65535:
            raise SpecError("graphics.port=%r must be between 5900 and 65535 (or -1 for "
                            "autoport)." % (port,))
        if port == -1:
            port = 'auto'
    password = g.get('password')
    if password is not None:
        password = str(password)
        if re.search(r'[\x00-\x1f\x7f]', password) or NOT_XML.search(password):
            raise SpecError("graphics.password contains control characters or characters XML "
                            "cannot carry (U+FFFE, U+FFFF, lone surrogates); choose another.")
        if gtype == 'vnc':
            try:
                graphics.check_vnc_password(password, 'graphics.password')
            except graphics.GraphicsError as exc:
                raise SpecError.rewrap(exc)
    keymap = check_string('graphics.keymap', g.get('keymap'))
    if keymap is not None and not _KEYMAP_RE.match(keymap):
        raise SpecError("graphics.keymap=%r is not a keymap such as en-us or de." % (keymap,))
    if gtype == 'none' and (listen or port or password is not None or keymap):
        raise SpecError("graphics.type=none takes no listen, port, password or keymap.")
    return {'type': gtype, 'listen': listen, 'port': port, 'password': password,
            'keymap': keymap}


def _serial(value):
    if value is None:
        return None
    if value == 'pty':
        return {'type': 'pty', 'path': None}
    path = check_path('serial', value)
    if path is None or path == '/':
        raise SpecError("serial must be pty or an absolute log file path.")
    return {'type': 'file', 'path': path}


def normalize(params):
    """Turn a guest's params into a spec dict, or raise SpecError. Pure.

    The params are those the guest argument spec validated (_guest/argspec.py: types,
    choices, unknown keys; AnsibleModule, the batch and argspec.normalize all run it): this
    checks only what an argument spec cannot say (names, paths, units, cross-option rules)."""
    name = check_name(params.get('name'))
    state = params.get('state') or 'running'
    family = os_family(check_string('os_variant', params.get('os_variant')))
    spec = {
        'name': name,
        'state': state,
        'os_variant': params.get('os_variant'),
        'os_family': family,
        'memory_mib': parse_memory(params.get('memory')),
        'vcpus': params.get('vcpus'),
        'cpu': check_string('cpu', params.get('cpu')),
        'virt_type': params.get('virt_type') or 'auto',
        'arch': check_string('arch', params.get('arch')),
        'machine': check_string('machine', params.get('machine')),
        'firmware': params.get('firmware'),
        'autostart': params.get('autostart'),
        'kernel': check_path('kernel', params.get('kernel')),
        'initrd': check_path('initrd', params.get('initrd')),
        'cmdline': check_string('cmdline', params.get('cmdline')),
        'graphics': _graphics(params.get('graphics')),
        'serial': _serial(params.get('serial')),
        'remove_storage': bool(params.get('remove_storage')),
        'update': params.get('update', True) is not False,
        'restart': bool(params.get('restart')),
        'shutdown_timeout': params.get('shutdown_timeout'),
        'disks': None,
        'networks': None,
    }
    if spec['shutdown_timeout'] is None:
        spec['shutdown_timeout'] = 120
    if spec['vcpus'] is not None:
        try:
            spec['vcpus'] = int(spec['vcpus'])
        except (TypeError, ValueError):
            raise SpecError("vcpus=%r is not a number." % (spec['vcpus'],))
        if spec['vcpus'] < 1 or spec['vcpus'] > 4096:
            raise SpecError("vcpus=%r must be between 1 and 4096." % (spec['vcpus'],))
    cpu = spec['cpu']
    if cpu is not None:
        if cpu == 'host':
            spec['cpu'] = cpu = 'host-model'  # virt-install's --cpu host
        if cpu not in CPU_MODES and not _MODEL_RE.match(cpu):
            raise SpecError("cpu=%r must be host-passthrough, host-model or a CPU model name "
                            "such as Skylake-Server." % (cpu,))
    if spec['arch'] is not None and not _MODEL_RE.match(spec['arch']):
        raise SpecError("arch=%r is not an architecture name such as x86_64." % (spec['arch'],))
    if spec['machine'] is not None and not _MODEL_RE.match(spec['machine']):
        raise SpecError("machine=%r is not a machine type such as q35 or pc." % (spec['machine'],))
    if (spec['initrd'] or spec['cmdline']) and not spec['kernel']:
        raise SpecError("initrd and cmdline need kernel (direct kernel boot).")
    if params.get('disks') is not None:
        spec['disks'] = [_disk(i, d, family) for i, d in enumerate(params['disks'])]
        seen = {}
        for i, d in enumerate(spec['disks']):
            key = d['path'] or ('%s/%s' % (d['pool'], d['volume']) if d['pool'] else None)
            if key is None:
                continue
            if key in seen:
                raise SpecError("disks[%d] and disks[%d] both use %s; a disk image can be "
                                "attached once." % (seen[key], i, key))
            seen[key] = i
            if d['backing_store'] and d['backing_store'] == d['path']:
                raise SpecError("disks[%d].backing_store is the disk itself." % i)
    if params.get('networks') is not None:
        spec['networks'] = [_network(i, n, family) for i, n in enumerate(params['networks'])]
        macs = [n['mac'] for n in spec['networks'] if n['mac']]
        if len(macs) != len(set(macs)):
            raise SpecError("networks: the same mac is given twice.")
    if spec['serial'] and spec['serial']['type'] == 'file':
        for d in spec['disks'] or []:
            if d['path'] == spec['serial']['path']:
                raise SpecError("serial=%r is also a disk path." % (spec['serial']['path'],))
    return spec


def creation_values(spec):
    """The spec with every default filled in: what a NEW domain is built from."""
    full = dict(spec)
    fam = OS_FAMILIES[spec['os_family']]
    if full['memory_mib'] is None:
        full['memory_mib'] = DEFAULTS['memory_mib']
    if full['vcpus'] is None:
        full['vcpus'] = DEFAULTS['vcpus']
    if full['firmware'] is None:
        full['firmware'] = DEFAULTS['firmware']
    if full['graphics'] is None:
        full['graphics'] = dict(DEFAULTS['graphics'])
    if full['serial'] is None:
        full['serial'] = dict(DEFAULTS['serial'])
    full['disks'] = list(full['disks'] or [])
    if full['networks'] is None:
        # virt-install's default: one NIC on libvirt's default NAT network.
        full['networks'] = [{'type': 'network', 'source': 'default', 'mode': None,
                             'model': None, 'model_default': fam['nic_model'], 'mac': None}]
    full['networks'] = list(full['networks'])
    full['family_defaults'] = dict(fam)
    return full
