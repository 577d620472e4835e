# -*- coding: utf-8 -*-
# Copyright: kvmops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A guest through a URI of another host (issue 26): which of its options need the file
system of the host the module runs on, and the refusal of them BEFORE anything is made (check
mode too). Private to the collection: no API promise. Reads only.

libvirt acts where the URI points (_libvirt/locality.is_local_uri decides), but file disks,
kernel/initrd, cloud-init seeds, base-image and install-media caches, serial logs, the public
console's TLS check, templates' image modes and clones' file copies are this host's files.
Storage pool volumes go through libvirt's API and work on the remote host: a guest whose
disks are all pool volumes is managed through any URI.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible_collections.kvmops.hypervisor.plugins.module_utils._guest import storage as _storage
from ansible_collections.kvmops.hypervisor.plugins.module_utils._guest import record as _record
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt import locality
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt import xml as lxml_util
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt.graphics import is_loopback

POOL_FIX = ('give the disks as storage pool volumes (pool and volume: libvirt makes and '
            'removes them on its own host) and no option that names a file')


def _disk_needs(spec, cloud):
    needs = []
    seed = (cloud or {}).get('seed_iso')
    bases = set(b['index'] for b in (cloud or {}).get('bases') or [])
    for i, d in enumerate(spec.get('disks') or []):
        if d.get('path') and seed and d['path'] == seed:
            needs.append(('cloud_init', 'writes its seed ISO %s' % seed))
        elif i in bases:
            needs.append(('disks[%d].base_image' % i, 'downloads, caches and clones the base '
                          'image into %s' % d['path']))
        elif d.get('path'):
            needs.append(('disks[%d].path' % i, '%s the %s %s' % (
                'reads' if d.get('device') == 'cdrom' else 'checks, creates or reads',
                'CD-ROM image' if d.get('device') == 'cdrom' else 'image file', d['path'])))
        elif d.get('backing_store'):
            needs.append(('disks[%d].backing_store' % i, 'reads the base image %s'
                          % d['backing_store']))
    return needs


def present_needs(spec, install=None, cloud=None):
    """[(option, what it does with this host's files)] for a guest that is to exist. Pure.

    install: the install feature's options (its 'source'), cloud: the cloud feature's."""
    needs = []
    for opt in ('kernel', 'initrd'):
        if spec.get(opt):
            needs.append((opt, 'checks that %s exists' % spec[opt]))
    needs.extend(_disk_needs(spec, cloud))
    if cloud and cloud.get('cloud_init') and not cloud.get('seed_iso'):
        needs.append(('cloud_init', 'writes its seed ISO'))
    serial = spec.get('serial') or {}
    if serial.get('type') == 'file' and serial.get('path'):
        needs.append(('serial', 'checks (and with remove_storage removes) the log file %s'
                      % serial['path']))
    graphics = spec.get('graphics') or {}
    if graphics.get('listen') and not is_loopback(graphics['listen']):
        needs.append(('graphics.listen', 'on %s is guarded by a check of qemu.conf and the TLS '
                      'certificates' % graphics['listen']))
    if install and install.get('source') in ('location', 'cdrom'):
        needs.append(('install.%s' % install['source'], 'downloads, caches or reads the '
                      'installer media'))
    if spec.get('clone_from'):
        needs.append(('clone_from', 'copies the source guest\'s images and NVRAM'))
    if spec.get('template') is not None:
        needs.append(('template', 'changes the modes of the guest\'s image files'))
    return needs


def absent_needs(spec, tree, cloud=None):
    """[(option, what)] for removing a domain whose definition is tree: with remove_storage,
    its file disks and serial logs are this host's files (pool volumes are libvirt's). Pure."""
    if not spec.get('remove_storage') or tree is None:
        return []
    files, dummy = _storage.removable_storage(tree)
    logs = _record.logs(tree)
    needs = [('remove_storage', 'deletes the file disk %s' % f) for f in files]
    needs += [('remove_storage', 'deletes the serial log %s' % f) for f in logs]
    if cloud and cloud.get('cloud_init'):
        needs.append(('remove_storage', 'deletes the cloud-init seed directory %s'
                      % cloud.get('seed_directory')))
    return needs


def _feature_options(m, name, attr):
    f = m.feature(name)
    return getattr(f, attr, None) if f is not None else None


def _definition(dom, libvirt):
    flags = libvirt.VIR_DOMAIN_XML_INACTIVE if dom.isPersistent() else 0
    return lxml_util.parse(dom.XMLDesc(flags))


def refuse_remote_file_work(m, libvirt):
    """Raise locality.RemoteUriError when m (a GuestManager after its look-up) would work on
    this host's files through a connection to another host's libvirt. Nothing is read from
    the file system here."""
    if locality.connection_is_local(m.conn):
        return
    cloud = _feature_options(m, 'cloud', 'cloud')
    if m.spec['state'] == 'absent':
        tree = _definition(m.dom, libvirt) if m.dom is not None else None
        needs = absent_needs(m.spec, tree, cloud)
        fix = 'set remove_storage: false (the domain goes, the files stay)'
    else:
        needs = present_needs(m.spec, _feature_options(m, 'install', 'install'), cloud)
        fix = POOL_FIX
    try:
        uri = m.conn.getURI()
    except Exception:  # pylint: disable=broad-except
        uri = '(unknown)'
    if needs:
        raise locality.RemoteUriError(locality.refusal(uri, needs, fix), changed=False)
