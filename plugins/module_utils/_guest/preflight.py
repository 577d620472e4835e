# -*- coding: utf-8 -*-
# Copyright: kvmops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The guest's preflight: the paths QEMU must reach for a guest (checked by
_libvirt/qemu_access.check_paths), the host objects its NICs name (libvirt networks, bridges,
interfaces: network_problems) and the media a new guest reads, and what is wrong with them.

Private to the collection: no API promise. Reads only.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os

from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt.locality import connection_is_local


def paths_of(spec, plans=None):
    """The (path, what, exists) items QEMU must reach for this spec."""
    items = []
    for tag in ('kernel', 'initrd'):
        if spec.get(tag):
            items.append((spec[tag], tag, True))
    for i, d in enumerate(spec.get('disks') or []):
        if d.get('path'):
            what = 'disks[%d], %s' % (i, 'ISO image' if d['device'] == 'cdrom' else 'disk image')
            exists = os.path.exists(d['path'])
            items.append((d['path'], what, exists))
            if d.get('backing_store'):
                items.append((d['backing_store'], 'disks[%d].backing_store' % i, True))
    # A serial log file is written by virtlogd (root), not by QEMU: nothing to check.
    return items


# --------------------------------------------------------------------------------------------
# What the guest's NICs name on the host: libvirt only refuses them when the guest starts
# --------------------------------------------------------------------------------------------

SYS_NET = '/sys/class/net'


def network_problems(spec, conn, lookup_error=Exception, sys_net=SYS_NET):
    """Why each of the guest's NICs cannot be attached, one sentence each with the fix: a
    libvirt network that does not exist (or, for a guest to be started, is not active), a
    bridge or host interface that this host does not have. Reads only (check mode too)."""
    out = []
    will_run = spec.get('state') == 'running'
    local = None
    for i, n in enumerate(spec.get('networks') or []):
        opt = 'networks[%d].%s' % (i, n['type'] if n['type'] != 'direct' else 'direct')
        if n['type'] == 'network':
            try:
                net = conn.networkLookupByName(n['source'])
            except lookup_error:
                out.append('%s=%s: this host has no libvirt network of that name. Define it first '
                           '(kvmops.hypervisor.virt_network, in an earlier task), or use network: '
                           'default.' % (opt, n['source']))
                continue
            if will_run and not net.isActive():
                out.append('%s=%s is defined but not active, so the guest cannot start. Start it '
                           'first (kvmops.hypervisor.virt_network with state: active, or virsh '
                           'net-start %s).' % (opt, n['source'], n['source']))
            continue
        if local is None:
            local = connection_is_local(conn)
        if not local:
            continue  # another host's interfaces cannot be seen from here
        dev = os.path.join(sys_net, n['source'])
        if not os.path.exists(dev):
            out.append('%s=%s: this host has no such %s. %s' % (
                opt, n['source'], 'bridge' if n['type'] == 'bridge' else 'interface',
                'Create the bridge first (the kvm_host role: kvm_host_bridge_enabled), or use a '
                'libvirt network (network: default).' if n['type'] == 'bridge' else
                'Name an existing interface (ip link).'))
        elif n['type'] == 'bridge' and not os.path.isdir(os.path.join(dev, 'bridge')):
            out.append('%s=%s is an interface but not a bridge. Use direct: %s (macvtap) for a '
                       'plain interface, or create a bridge (kvm_host_bridge_enabled).'
                       % (opt, n['source'], n['source']))
    return out


# --------------------------------------------------------------------------------------------
# Media: what a new guest reads before it can start, and whether it is there
# --------------------------------------------------------------------------------------------

MEDIUM_FILE, MEDIUM_ISO, MEDIUM_TREE = 'file', 'iso', 'location'
# _install/media.URL_SCHEMES (a unit test keeps them equal), not imported: a guest without an
# install source never loads the install-media code.
URL_SCHEMES = ('http', 'https', 'ftp')
LOCAL_FIX = ('copy it to the hypervisor (ISOs and kernels: /var/lib/libvirt/boot, or the image '
             'directory QEMU may read) or fix the path')
URL_FIX = ('serve the install tree there or fix the URL: the hypervisor (not the Ansible '
           'controller) must reach it')


def media_of(params):
    """(option, source, kind) of every medium a new guest reads, from its validated options:
    kernel and initrd, CD-ROM disks, the backing images of its disks, and its install
    location (a URL, directory or ISO), cdrom and kickstart. The one list of a guest's media
    (virt_install_domains' preflight report, and through it the guests role)."""
    items = []
    for opt in ('kernel', 'initrd'):
        if params.get(opt):
            items.append((opt, params[opt], MEDIUM_FILE))
    for i, d in enumerate(params.get('disks') or []):
        if d.get('device') == 'cdrom' and d.get('path'):
            # any image QEMU can show as a CD-ROM, not only ISO 9660/UDF
            items.append(('disks[%d].path' % i, d['path'], MEDIUM_FILE))
        if d.get('backing_store'):
            items.append(('disks[%d].backing_store' % i, d['backing_store'], MEDIUM_FILE))
    install = params.get('install') or {}
    if install.get('location'):
        items.append(('install.location', install['location'], MEDIUM_TREE))
    if install.get('cdrom'):
        items.append(('install.cdrom', install['cdrom'], MEDIUM_ISO))
    if install.get('kickstart'):
        items.append(('install.kickstart', install['kickstart'], MEDIUM_FILE))
    return items


def is_url(source):
    return '://' in source and source.split('://', 1)[0].lower() in URL_SCHEMES


def local_problem(source, kind):
    """Why the local medium cannot be used, in a few words ('no such file', 'not readable',
    'not an ISO 9660 or UDF image'), or None when it can."""
    path = source[len('file://'):] if source.lower().startswith('file://') else source
    if not os.path.exists(path):
        return 'no such file or directory' if kind == MEDIUM_TREE else 'no such file'
    if os.path.isdir(path):
        if kind == MEDIUM_TREE:
            return None if os.access(path, os.R_OK | os.X_OK) else 'directory not readable'
        return 'a directory, not a file'
    if not os.access(path, os.R_OK):
        return 'not readable'
    if kind == MEDIUM_FILE:
        return None
    # install media only: a guest without an install source never loads this code
    from ansible_collections.kvmops.hypervisor.plugins.module_utils._install import media
    if kind == MEDIUM_TREE and not media.is_iso9660(path):
        return 'neither a directory nor an ISO 9660 image'
    if kind == MEDIUM_ISO and not media.is_optical_image(path):
        return 'not an ISO 9660 or UDF image'
    return None


def media_problem(guest, option, source, problem):
    """One entry of the preflight report: the guest, the option, the source, the problem in a
    few words, and msg (the whole sentence, with the fix)."""
    fix = URL_FIX if is_url(source) else LOCAL_FIX
    verb = 'cannot be fetched' if is_url(source) else 'cannot be used'
    return {'guest': guest, 'option': option, 'source': source, 'problem': problem,
            'msg': '%s=%s %s (%s): %s.' % (option, source, verb, problem, fix)}
