# -*- coding: utf-8 -*-
# Copyright: kvmops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What an os_variant means for a new guest: libosinfo when the hypervisor has it, else the
families of _guest/spec.py.

Private to the collection: no API promise.

libosinfo is the database virt-install reads (Debian/Ubuntu: osinfo-db, python3-gi,
gir1.2-libosinfo-1.0; RHEL/Fedora: osinfo-db, python3-gobject, libosinfo). It is read
through GObject introspection in the target's system Python; the import is guarded, and
without it (or for an id the installed osinfo-db does not know, e.g. debian12 in
osinfo-db 2022) the families decide. resolve() says which source decided ('libosinfo' or
'families'), so a user can see why a guest got the devices it got.

The facts mirror virt-install 4.1's use of libosinfo (virtinst/osdict.py, guest.py):
virtio disk/NIC/rng/serial support by PCI id, q35 only for an OS that lists the q35
chipset and virtio 1.0 (when it has virtio-net at all), the kernel-url-argument
(inst.repo, method, install) and the recommended/minimum memory.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import platform
import re

SOURCE_LIBOSINFO = 'libosinfo'
SOURCE_FAMILIES = 'families'

# PCI ids libosinfo lists per OS (the ones virt-install checks).
_VIRTIO_DISK = ('http://pcisig.com/pci/1af4/1001', 'http://pcisig.com/pci/1af4/1042')
_VIRTIO_NET = ('http://pcisig.com/pci/1af4/1000', 'http://pcisig.com/pci/1af4/1041')
_VIRTIO1_NET = ('http://pcisig.com/pci/1af4/1041',)
_VIRTIO_RNG = ('http://pcisig.com/pci/1af4/1005', 'http://pcisig.com/pci/1af4/1044')
_VIRTIO_SERIAL = ('http://pcisig.com/pci/1af4/1003', 'http://pcisig.com/pci/1af4/1043')
_VIRTIO_GPU = ('http://pcisig.com/pci/1af4/1050',)
_USB3 = ('http://pcisig.com/pci/1b36/0004',)
_Q35 = ('http://qemu.org/chipset/x86/q35',)

# Login user of the distribution's official cloud images (cloud-init's default_user);
# libosinfo records whether an image uses cloud-init, not the user name.
CLOUD_USERS = {
    'debian': 'debian', 'ubuntu': 'ubuntu', 'centos': 'centos', 'centos-stream': 'cloud-user',
    'fedora': 'fedora', 'rhel': 'cloud-user', 'rocky': 'rocky', 'almalinux': 'almalinux',
    'alma': 'almalinux', 'opensuse': 'opensuse', 'sles': 'sles', 'archlinux': 'arch',
    'alpine': 'alpine', 'freebsd': 'freebsd', 'ol': 'cloud-user', 'amzn': 'ec2-user',
    'cirros': 'cirros',
}

# Distribution prefixes the families know (kept beside spec._LINUX_PREFIXES, which maps
# linux ids; these are the non-Linux systems virt-install accepts).
_BSD_PREFIXES = ('freebsd', 'netbsd', 'openbsd', 'dragonflybsd', 'midnightbsd', 'ghostbsd',
                 'trueos', 'hardenedbsd')
_OTHER_PREFIXES = ('solaris', 'opensolaris', 'openindiana', 'omnios', 'smartos', 'haiku',
                   'reactos', 'msdos', 'freedos', 'plan9', 'netware', 'hurd', 'illumos',
                   'mandriva', 'mandrake', 'macos', 'openbsd')
_SHORT_ID_RE = re.compile(r'^[a-z][a-z0-9]*(?:[-_.][a-z0-9]+)*$')
_RH_DISTROS = ('rhel', 'centos', 'centos-stream', 'fedora', 'rocky', 'alma', 'almalinux',
               'ol', 'scientificlinux', 'sl', 'eurolinux', 'circle', 'navy')
_SUSE_DISTROS = ('caasp', 'sle', 'sled', 'sles', 'opensuse')


def fallback_family(os_variant):
    """generic | linux | windows for an id the families do not map by their Linux prefixes:
    BSDs and other systems virt-install knows are 'generic' (with their own device facts
    below), None when the string does not look like an OS id at all."""
    v = (os_variant or '').lower()
    if v.startswith(_BSD_PREFIXES) or v.startswith(_OTHER_PREFIXES):
        return 'generic'
    return None


def looks_like_short_id(os_variant):
    return bool(_SHORT_ID_RE.match((os_variant or '').lower()))


def distro_of(os_variant):
    """The distribution part of a short id: centos7.0 -> centos, centos-stream9 ->
    centos-stream, win2k12r2 -> win, opensuse15.4 -> opensuse."""
    v = (os_variant or '').lower()
    m = re.match(r'^([a-z]+(?:-[a-z]+)*?)(?:[-_]?[0-9].*)?$', v)
    return m.group(1) if m else v


def version_of(os_variant):
    """The leading version number of a short id as a tuple (centos7.0 -> (7, 0)), or None."""
    m = re.search(r'([0-9]+(?:\.[0-9]+)*)', os_variant or '')
    if not m:
        return None
    return tuple(int(x) for x in m.group(1).split('.'))


def kernel_url_arg_for(distro, version):
    """virt-install's fallback when libosinfo has no kernel-url-argument: RHEL-like 7 and
    later inst.repo, older ones method; SUSE install; everything else none."""
    distro = (distro or '').lower()
    if distro in _SUSE_DISTROS or distro.startswith(('sle', 'opensuse')):
        return 'install'
    if distro in _RH_DISTROS:
        if distro == 'fedora':
            # Fedora moved to inst.repo with Fedora 17's dracut-based anaconda.
            return 'inst.repo' if not version or version[0] >= 17 else 'method'
        if distro == 'centos-stream':
            return 'inst.repo'
        return 'inst.repo' if not version or version[0] >= 7 else 'method'
    return None


def family_facts(os_variant, family, arch='x86_64'):
    """Device facts from the families alone (no libosinfo)."""
    distro = distro_of(os_variant) if os_variant and os_variant not in (
        'generic', 'linux', 'windows') else None
    version = version_of(os_variant) if distro else None
    x86 = arch in ('x86_64', 'i686', 'i386')
    linux = family == 'linux'
    bsd = bool(distro) and distro.startswith(_BSD_PREFIXES)
    windows = family == 'windows'
    info = {
        'os_variant': os_variant, 'source': SOURCE_FAMILIES, 'id': None, 'name': None,
        'distro': distro, 'version': '.'.join(str(x) for x in version) if version else None,
        'family': family,
        'virtio_disk': linux or bsd, 'virtio_net': linux or bsd, 'virtio_rng': linux,
        'guest_agent': linux, 'usb3': linux or windows, 'virtio_gpu': False,
        # virt-install: q35 needs the OS to list it (and virtio 1.0); the generic OS gets pc.
        'q35': x86 and (linux or windows),
        'tablet': x86,
        'recommended_memory_mib': None, 'minimum_memory_mib': None,
        'kernel_url_arg': kernel_url_arg_for(distro, version) if linux else None,
        'cloud_user': CLOUD_USERS.get(distro) if distro else None,
        'clock': 'localtime' if windows else 'utc',
    }
    if linux and distro in ('rhel', 'centos', 'sl', 'scientificlinux', 'ol') and version \
            and version[0] < 7:
        info['q35'] = False  # virtio 0.9 only: virt-install keeps them on pc
    info['disk_bus'] = 'virtio' if info['virtio_disk'] else 'sata'
    fallback_nic = 'e1000e' if info['q35'] else 'e1000'
    info['nic_model'] = 'virtio' if info['virtio_net'] else fallback_nic
    info['video'] = 'virtio' if linux else 'vga'
    return info


# --------------------------------------------------------------------------------------------
# libosinfo through GObject introspection
# --------------------------------------------------------------------------------------------

_DB = {}


def load_db():
    """(Libosinfo module, db) or None when libosinfo cannot be imported here (cached)."""
    if 'db' not in _DB:
        _DB['db'] = None
        try:
            import gi  # noqa: F401 - the target's system Python has it with python3-gi
            gi.require_version('Libosinfo', '1.0')
            from gi.repository import Libosinfo
            loader = Libosinfo.Loader()
            loader.process_default_path()
            _DB['db'] = (Libosinfo, loader.get_db())
        except Exception as exc:  # noqa: BLE001 - ImportError, ValueError, GLib.Error
            _DB['error'] = '%s: %s' % (type(exc).__name__, exc)
    return _DB['db']


def load_error():
    return _DB.get('error')


def _iter(oslist):
    for i in range(oslist.get_length()):
        yield oslist.get_nth(i)


def _find_os(lib, db, short_id):
    for os_obj in _iter(db.get_os_list()):
        if os_obj.get_short_id() == short_id:
            return os_obj
        ids = os_obj.get_short_id_list() if hasattr(os_obj, 'get_short_id_list') else []
        if short_id in (ids or []):
            return os_obj
    return None


def _resources_mib(resources, arch):
    best = None
    for r in _iter(resources):
        a = r.get_architecture()
        if a not in (arch, 'all'):
            continue
        ram = r.get_ram()
        if ram and ram > 0 and (best is None or a == arch):
            best = int(ram // (1024 * 1024))
    return best


def libosinfo_facts(os_variant, family, arch='x86_64', db=None):
    """Device facts of os_variant from libosinfo, or None (not installed, or unknown id)."""
    loaded = db or load_db()
    if not loaded:
        return None
    lib, database = loaded
    os_obj = _find_os(lib, database, os_variant.lower())
    if os_obj is None:
        return None
    devices = os_obj.get_all_devices(None)
    ids = set(devices.get_nth(i).get_id() for i in range(devices.get_length()))

    def has(group):
        return any(d in ids for d in group)
    x86 = arch in ('x86_64', 'i686', 'i386')
    os_family = os_obj.get_family() or ''
    windows = os_family.startswith('win')
    distro = os_obj.get_distro()
    version = os_obj.get_version()
    q35 = x86 and has(_Q35) and not (has(_VIRTIO_NET) and not has(_VIRTIO1_NET))
    url_arg = None
    if hasattr(os_obj, 'get_kernel_url_argument'):
        url_arg = os_obj.get_kernel_url_argument()
    if url_arg is None:
        url_arg = kernel_url_arg_for(distro, version_of(version or ''))
    info = {
        'os_variant': os_variant, 'source': SOURCE_LIBOSINFO, 'id': os_obj.get_id(),
        'name': os_obj.get_name(), 'distro': distro, 'version': version,
        'family': 'windows' if windows else family,
        'virtio_disk': has(_VIRTIO_DISK), 'virtio_net': has(_VIRTIO_NET),
        'virtio_rng': has(_VIRTIO_RNG),
        # virt-install's rhel6.0-and-later exception (osinfo data before Oct 2018).
        'guest_agent': has(_VIRTIO_SERIAL) or (distro in ('rhel', 'centos') and
                                               (version_of(version or '') or (0,))[0] >= 6),
        'usb3': has(_USB3), 'virtio_gpu': has(_VIRTIO_GPU), 'q35': q35, 'tablet': x86,
        'recommended_memory_mib': _resources_mib(os_obj.get_recommended_resources(), arch),
        'minimum_memory_mib': _resources_mib(os_obj.get_minimum_resources(), arch),
        'kernel_url_arg': url_arg,
        'cloud_user': CLOUD_USERS.get(distro),
        'clock': 'localtime' if windows or os_family == 'solaris' else 'utc',
        'libosinfo_family': os_family,
    }
    info['disk_bus'] = 'virtio' if info['virtio_disk'] else 'sata'
    info['nic_model'] = 'virtio' if info['virtio_net'] else ('e1000e' if q35 else 'e1000')
    info['video'] = 'virtio' if info['virtio_gpu'] else 'vga'
    return info


def resolve(os_variant, family, arch='x86_64', use_libosinfo=True, db=None):
    """The facts for a new guest and the source that decided. family is spec's os_family.

    The three family names (generic, linux, windows) are the families' own; every other id
    is looked up in libosinfo first."""
    info = None
    reason = None
    family_name = (os_variant or '').lower() in ('generic', 'linux', 'windows')
    if use_libosinfo and os_variant and not family_name:
        info = libosinfo_facts(os_variant, family, arch=arch, db=db)
        if info is None:
            if (db or load_db()) is None:
                reason = ('libosinfo is not available on the hypervisor (%s); install osinfo-db, '
                          'python3-gi and gir1.2-libosinfo-1.0 to use it'
                          % (load_error() or 'not importable'))
            else:
                reason = ('the installed osinfo-db does not know %s (osinfo-query os lists '
                          'what it knows); the %s family decided' % (os_variant, family))
    if info is None:
        info = family_facts(os_variant, family, arch=arch)
        info['reason'] = reason or ('os_variant=%s is a family name' % os_variant
                                    if os_variant else 'no os_variant given')
    else:
        info['reason'] = 'libosinfo knows %s (%s)' % (os_variant, info['id'])
    return info


def summary(info):
    """What the module returns as os_info (the facts that decided, no internals)."""
    keys = ('os_variant', 'source', 'reason', 'id', 'name', 'distro', 'version', 'disk_bus',
            'nic_model', 'q35', 'virtio_rng', 'guest_agent', 'recommended_memory_mib',
            'minimum_memory_mib', 'kernel_url_arg', 'cloud_user')
    return dict((k, info.get(k)) for k in keys)


def family_for_libosinfo(info):
    """spec's family for an OS only libosinfo knows (rhl9, altlinux10, ...)."""
    raw = info.get('libosinfo_family') or ''
    if raw.startswith('win'):
        return 'windows'
    if raw == 'linux':
        return 'linux'
    return 'generic'


def apply(spec, info):
    """Put the facts into a normalised spec: spec['osinfo'], and the disk bus and NIC model
    defaults of what a new guest gets (an explicit bus or model always wins)."""
    spec['osinfo'] = info
    for d in spec.get('disks') or []:
        if d.get('device') == 'disk':
            d['bus_default'] = info['disk_bus']
    for n in spec.get('networks') or []:
        n['model_default'] = info['nic_model']
    return spec


def normalize_with_facts(dspec, params):
    """dspec.normalize(params) with spec['osinfo']: the families now; libosinfo is read
    (~0.3 s) only when a guest is created or its installer starts (the manager's
    resolve_osinfo), never for a re-run or a removal. An id only libosinfo knows (rhl9,
    altlinux10) is looked up here, to normalise it with its family."""
    arch = params.get('arch') or platform.machine()
    info = None
    try:
        dspec.os_family(params.get('os_variant'))
    except dspec.SpecError:
        info = libosinfo_facts(params['os_variant'], 'generic', arch=arch)
        if info is not None:
            params = dict(params, os_variant=family_for_libosinfo(info))
    spec = dspec.normalize(params)
    if info is not None:
        spec['os_variant'] = info['os_variant']
        info['family'] = spec['os_family']
        info['reason'] = 'libosinfo knows %s (%s)' % (info['os_variant'], info['id'])
    else:
        info = resolve(spec['os_variant'], spec['os_family'], arch=arch, use_libosinfo=False)
        info['reason'] = ('libosinfo is read only when a guest is created or its installer '
                          'starts; the families give the defaults of what this run adds')
        spec['osinfo_lookup'] = spec['state'] != 'absent'
    return apply(spec, info)
