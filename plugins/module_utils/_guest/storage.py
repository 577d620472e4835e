# -*- coding: utf-8 -*-
# Copyright: kvmops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Disk images for virt_install_domain: plan (read-only), then create what is missing.

Private to the collection: no API promise.

plan_disks() only reads: it detects the format and virtual size of existing images, checks
that a new image can be created (parent directory, backing store, pool) and never touches
anything, so check mode and bad input leave no trace. create_missing() then creates the
planned images: raw sparse via ftruncate (a 100 GiB disk costs a syscall), raw preallocated
via posix_fallocate, qcow2 and backing-store clones via qemu-img, pool volumes via libvirt.
An existing image is never overwritten, reformatted or shrunk; a larger requested size is
reported (growth), never silently ignored.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import errno
import os
import stat
import struct

from ansible_collections.kvmops.hypervisor.plugins.module_utils._common.errors import KvmopsError
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt import xml as lxml_util
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt.connection import libvirt  # None without libvirt-python

QCOW2_MAGIC = b'QFI\xfb'
GIB = 1024 ** 3


class StorageError(KvmopsError):
    """A disk cannot be used or created; the message says why and how to fix it. Caught by
    GuestManager (plan_storage, create_storage), which re-wraps it as DomainError."""


def gib(size):
    if size is None:
        return None
    value = size / float(GIB)
    return int(value) if value == int(value) else round(value, 3)


def read_header(path):
    """(claimed format, virtual size, has a backing file) from an image's first bytes.

    For checks only (a declared qcow2 that is not one; a base image whose header points
    elsewhere): the format used for a guest never comes from here."""
    with open(path, 'rb') as f:
        header = f.read(32)
    if header[:4] == QCOW2_MAGIC and len(header) >= 32:
        backing_offset = struct.unpack('>Q', header[8:16])[0]
        return 'qcow2', struct.unpack('>Q', header[24:32])[0], backing_offset != 0
    return 'raw', None, False


def _raw_size(path):
    st = os.stat(path)
    if stat.S_ISBLK(st.st_mode):
        with open(path, 'rb') as f:
            f.seek(0, os.SEEK_END)
            return f.tell()
    return st.st_size


def _existing_format(d, p, i, path, known):
    """The format of an existing image: recorded by kvmops > given > declared by the
    existing definition > raw (libvirt's default; a header claiming qcow2 is refused)."""
    given = d.get('format')
    fmt, source = (known or {}).get(path, (None, None))
    if source == 'record' and given and given != fmt:
        raise StorageError(
            "disks[%d]: %s already exists as a %s image (recorded when kvmops created it), "
            "but format=%s was given. The module never reformats an image, and telling QEMU "
            "the wrong format corrupts it: set format=%s (or remove format), or give another "
            "path." % (i, path, fmt, given, fmt))
    if source == 'record':
        return fmt
    if given:
        return given
    if fmt:
        return fmt
    claimed = read_header(path)[0]
    if claimed != 'raw':
        raise StorageError(
            "disks[%d]: %s exists, no format was given and kvmops has no record of making "
            "it. Its header claims %s, but a guest writes its disk's bytes, so the module "
            "never takes a format from them (a forged qcow2 header can point QEMU at any "
            "host file). Check it yourself (qemu-img info -U --output=json %s) and set "
            "format=%s if you made it as one, or format=raw if it is a raw disk."
            % (i, path, claimed, path, claimed))
    return 'raw'


# qcow2 v3 incompatible feature bit: the guest data lives in an external data file (a path
# in a header extension, opened by QEMU like a backing file).
QCOW2_INCOMPAT_DATA_FILE = 1 << 2


def check_base(i, path, fmt):
    """The virtual size of the base image of a copy-on-write clone (backing_store, or a
    base_image kvmops downloaded), used as fmt (disks[].backing_format: the user's word,
    default qcow2). A base is untrusted bytes (issue 26): its header is read only to refuse
    one that disagrees with fmt, or a qcow2 that itself points at another file (a backing
    file or an external data file: QEMU would read that host file through every overlay).
    Raises StorageError with the fix."""
    opt = 'disks[%d].backing_store' % i
    with open(path, 'rb') as f:
        header = f.read(104)
    is_qcow2 = header[:4] == QCOW2_MAGIC and len(header) >= 32
    flatten = ("Flatten it into a self-contained image first (qemu-img convert -f qcow2 -O "
               "qcow2 %s FLAT.qcow2, after checking with qemu-img info --backing-chain that "
               "its chain is yours) and use that." % path)
    if fmt == 'raw':
        if is_qcow2:
            raise StorageError(
                "%s=%s: backing_format is raw, but the image's header says qcow2. If it is a "
                "qcow2 image, set backing_format: qcow2; if it is really raw, its first bytes "
                "look like a qcow2 header, which the module does not accept for a base image "
                "(a guest could read it as one)." % (opt, path))
        return _raw_size(path)
    if not is_qcow2:
        raise StorageError(
            "%s=%s: backing_format is qcow2 (the default), but the image has no qcow2 header. "
            "If it is a raw image, set backing_format: raw; if it is another format (vmdk, "
            "vdi, ...), convert it (qemu-img convert -O qcow2 %s BASE.qcow2)." % (opt, path, path))
    version = struct.unpack('>I', header[4:8])[0]
    if struct.unpack('>Q', header[8:16])[0] != 0:
        raise StorageError(
            "%s=%s is a qcow2 image with a backing file of its own: QEMU would read that file "
            "through every guest made from it, and the module never lets an image's header "
            "choose a host file. %s" % (opt, path, flatten))
    if version >= 3 and len(header) >= 80:
        incompatible = struct.unpack('>Q', header[72:80])[0]
        if incompatible & QCOW2_INCOMPAT_DATA_FILE:
            raise StorageError(
                "%s=%s is a qcow2 image with an external data file: QEMU would read that file "
                "through every guest made from it. %s" % (opt, path, flatten))
    return struct.unpack('>Q', header[24:32])[0]


def probe_image(path):
    """(format, virtual_size_bytes) as the header claims: for tests and base images the
    user names, never for the format of a guest's existing disk."""
    st = os.stat(path)
    with open(path, 'rb') as f:
        header = f.read(32)
        if stat.S_ISBLK(st.st_mode):
            f.seek(0, os.SEEK_END)
            raw_size = f.tell()
        else:
            raw_size = st.st_size
    if header[:4] == QCOW2_MAGIC and len(header) >= 32:
        return 'qcow2', struct.unpack('>Q', header[24:32])[0]
    return 'raw', raw_size


def _label(d):
    return d['path'] if d.get('path') else '%s/%s' % (d.get('pool'), d.get('volume'))


def _volume_format(vol):
    try:
        fmt = lxml_util.parse(vol.XMLDesc(0)).find('target/format')
        return fmt.get('type') if fmt is not None else 'raw'
    except Exception:  # pragma: no cover - defensive
        return None


def plan_disks(disks, conn=None, known=None):
    """A list of per-disk plans (dicts) for the spec's disks. Reads only.

    Each plan: label, kind (file | volume | cdrom), action (exists | create | none),
    format (resolved), size (virtual size, bytes, existing or to create), requested,
    growth (True when a larger size was asked for than the image has), shrink_refused.
    Raises StorageError for anything that would fail later.

    known: {path: (format, source)} of what kvmops recorded when it made an image
    (source 'record') or what the existing definition declares (source 'definition'); an
    existing image's format comes from there or from the user, never from its header (a
    guest writes its disk's bytes: a qcow2 header with a backing file of the guest's choosing
    would make QEMU read any host file).
    """
    plans = []
    for i, d in enumerate(disks or []):
        label = _label(d)
        p = {'index': i, 'label': label, 'requested': d.get('size'), 'action': 'none',
             'format': d.get('format'), 'size': None, 'growth': False, 'shrink_refused': False,
             'path': d.get('path'), 'pool': d.get('pool'), 'volume': d.get('volume'),
             'backing_store': d.get('backing_store'), 'sparse': d.get('sparse', True)}
        plans.append(p)
        if d['device'] == 'cdrom':
            p['kind'] = 'cdrom'
            if d.get('path') and not os.path.isfile(d['path']):
                raise StorageError("disks[%d]: the CD-ROM image %s does not exist on the "
                                   "hypervisor; copy the ISO there first." % (i, d['path']))
            if d.get('path'):
                p['action'] = 'exists'
                p['format'] = 'raw'
            continue
        if d.get('pool'):
            p['kind'] = 'volume'
            _plan_volume(conn, d, p, i, known)
        else:
            p['kind'] = 'file'
            _plan_file(d, p, i, known)
        if p['action'] == 'exists' and d.get('size') is not None:
            if d['size'] > p['size']:
                p['growth'] = True
            elif d['size'] < p['size']:
                p['shrink_refused'] = True
    return plans


def _plan_file(d, p, i, known=None):
    path = d['path']
    if os.path.islink(path):
        real = os.path.realpath(path)
        if os.path.dirname(real) != os.path.realpath(os.path.dirname(path)):
            # libvirt would relabel and chown the target (dynamic_ownership): be explicit.
            raise StorageError("disks[%d].path=%s is a symlink to %s, outside its directory; "
                               "give the real path (%s) if that file is meant to be the disk."
                               % (i, path, real, real))
    if os.path.exists(path):
        if os.path.isdir(path):
            raise StorageError("disks[%d].path=%s is a directory; give the image file's path."
                               % (i, path))
        mode = os.stat(path).st_mode
        if not stat.S_ISREG(mode):
            kind = 'block device' if stat.S_ISBLK(mode) else 'device or special file'
            raise StorageError("disks[%d].path=%s is a %s, not an image file; this module "
                               "manages file images. Give an image file, or the device as a "
                               "volume of a libvirt storage pool (pool and volume)."
                               % (i, path, kind))
        fmt = _existing_format(d, p, i, path, known)
        try:
            claimed, vsize, backing_file = read_header(path)
            size = vsize if fmt == 'qcow2' and claimed == 'qcow2' else _raw_size(path)
        except (IOError, OSError) as exc:
            raise StorageError("disks[%d]: cannot read %s: %s" % (i, path, exc))
        if fmt == 'qcow2' and claimed != 'qcow2':
            raise StorageError("disks[%d]: %s is not a qcow2 image but format=qcow2 was given "
                               "or recorded; give format=raw if it is a raw disk."
                               % (i, path))
        if fmt == 'raw' and claimed == 'qcow2':
            p['header_claims'] = 'qcow2'
        p.update(action='exists', format=fmt, size=size)
        return
    parent = os.path.dirname(path)
    if not os.path.isdir(parent):
        raise StorageError("disks[%d]: the directory %s for the new image %s does not exist; "
                           "create it first (e.g. with ansible.builtin.file) or use "
                           "/var/lib/libvirt/images." % (i, parent, path))
    backing = d.get('backing_store')
    if backing:
        if not os.path.isfile(backing):
            raise StorageError("disks[%d].backing_store=%s does not exist; the base image of a "
                               "copy-on-write clone must exist first." % (i, backing))
        bfmt = d.get('backing_format') or 'qcow2'
        bsize = check_base(i, backing, bfmt)
        p['backing_format'] = bfmt
        size = d.get('size') or bsize
        if d.get('size') and d['size'] < bsize:
            raise StorageError("disks[%d].size (%s GiB) is smaller than its backing store %s "
                               "(%s GiB); remove size or make it at least as large."
                               % (i, gib(d['size']), backing, gib(bsize)))
        p.update(action='create', format='qcow2', size=size)
        return
    if d.get('size') is None:
        raise StorageError("disks[%d]: %s does not exist and no size was given; give size (GiB) "
                           "to create it, or fix the path." % (i, path))
    p.update(action='create', format=d.get('format') or 'raw', size=d['size'])


def _plan_volume(conn, d, p, i, known=None):
    if conn is None:
        raise StorageError("disks[%d]: pool volumes need a libvirt connection." % i)
    try:
        pool = conn.storagePoolLookupByName(d['pool'])
    except libvirt.libvirtError:
        raise StorageError("disks[%d].pool=%s is not a libvirt storage pool on this host; "
                           "define and start it first (community.libvirt.virt_pool), or give "
                           "path instead." % (i, d['pool']))
    if not pool.isActive():
        raise StorageError("disks[%d].pool=%s is not active; start it first (virsh pool-start "
                           "%s)." % (i, d['pool'], d['pool']))
    try:
        vol = pool.storageVolLookupByName(d['volume'])
    except libvirt.libvirtError:
        vol = None
    if vol is not None:
        info = vol.info()
        # libvirt's dir pools probe a volume's format from its header: like a file's, it
        # is taken from the record, the user or the definition, never from there.
        probed = _volume_format(vol) or 'raw'
        given = d.get('format')
        fmt, source = (known or {}).get('%s/%s' % (d['pool'], d['volume']), (None, None))
        if source == 'record' and given and given != fmt:
            raise StorageError("disks[%d]: volume %s/%s already exists as %s (recorded when "
                               "kvmops created it), but format=%s was given; the module never "
                               "reformats a volume." % (i, d['pool'], d['volume'], fmt, given))
        if source != 'record':
            fmt = given or fmt
        if not fmt:
            if probed not in ('raw', None):
                raise StorageError(
                    "disks[%d]: volume %s/%s exists, no format was given and kvmops has no "
                    "record of making it; libvirt reads %s from its header, but a guest "
                    "writes its disk's bytes, so the module never takes a format from them. "
                    "Set format=%s if you made it as one, or format=raw."
                    % (i, d['pool'], d['volume'], probed, probed))
            fmt = 'raw'
        p.update(action='exists', format=fmt, size=info[1])
        return
    backing = d.get('backing_store')
    if backing and not os.path.isfile(backing):
        raise StorageError("disks[%d].backing_store=%s does not exist." % (i, backing))
    if backing:
        p['backing_format'] = d.get('backing_format') or 'qcow2'
        size = d.get('size') or check_base(i, backing, p['backing_format'])
        if d.get('size'):
            check_base(i, backing, p['backing_format'])
    else:
        size = d.get('size')
    if size is None:
        raise StorageError("disks[%d]: volume %s/%s does not exist and no size was given; give "
                           "size (GiB) to create it." % (i, d['pool'], d['volume']))
    p.update(action='create', format=d.get('format') or 'raw', size=size)


def _volume_xml(p):
    etree = lxml_util.etree
    vol = etree.Element('volume')
    etree.SubElement(vol, 'name').text = p['volume']
    etree.SubElement(vol, 'capacity', unit='bytes').text = str(p['size'])
    etree.SubElement(vol, 'allocation', unit='bytes').text = (
        '0' if p['sparse'] else str(p['size']))
    target = etree.SubElement(vol, 'target')
    etree.SubElement(target, 'format', type=p['format'])
    if p.get('backing_store'):
        bs = etree.SubElement(vol, 'backingStore')
        etree.SubElement(bs, 'path').text = p['backing_store']
        etree.SubElement(bs, 'format', type=p['backing_format'])
    return etree.tostring(vol, encoding='unicode')


def create_missing(plans, conn=None, run_command=None, qemu_img=None):
    """Create every image planned with action=create; returns the labels created."""
    created = []
    for p in plans:
        if p['action'] != 'create':
            continue
        if p['kind'] == 'volume':
            pool = conn.storagePoolLookupByName(p['pool'])
            try:
                pool.createXML(_volume_xml(p), 0)
            except libvirt.libvirtError as exc:
                raise StorageError("cannot create volume %s: %s" % (p['label'], exc))
        else:
            _create_file(p, run_command, qemu_img)
        created.append(p['label'])
    return created


PARTIAL_SUFFIX = '.kvmops-partial'


def _partial_name(path, pid=None):
    """Hidden name an image is built under before it appears at its path."""
    d, base = os.path.split(path)
    return os.path.join(d, '.%s.%d%s' % (base, pid or os.getpid(), PARTIAL_SUFFIX))


def _remove_stale_partials(path):
    """Partial images of runs that died (killed mid-creation): their process is gone."""
    d, base = os.path.split(path)
    head = '.%s.' % base
    try:
        names = os.listdir(d)
    except OSError:
        return
    for name in names:
        if not (name.startswith(head) and name.endswith(PARTIAL_SUFFIX)):
            continue
        pid = name[len(head):-len(PARTIAL_SUFFIX)]
        if pid.isdigit() and not os.path.exists('/proc/%s' % pid):
            _unlink_quiet(os.path.join(d, name))


def _unlink_quiet(path):
    try:
        os.unlink(path)
    except OSError:
        pass


def _publish(tmp, path):
    """Make the finished image appear at path, never over an existing file."""
    try:
        os.link(tmp, path)  # atomic, and fails with EEXIST instead of overwriting
    except OSError as exc:
        if exc.errno == errno.EEXIST:
            raise StorageError("cannot create %s: it appeared while this run created it (a "
                               "concurrent run?); nothing was overwritten. Run again." % path)
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV,
                             errno.EMLINK):
            raise StorageError("cannot create %s: %s (nothing was overwritten)." % (path, exc))
        # a file system without hard links
        if os.path.lexists(path):
            raise StorageError("cannot create %s: it appeared while this run created it; "
                               "nothing was overwritten. Run again." % path)
        os.rename(tmp, path)
        return
    os.unlink(tmp)


def _create_file(p, run_command, qemu_img):
    """Build the image under a hidden partial name, then link it into place: a run killed or
    failing midway never leaves a zero-length or half-written image at the disk's path."""
    path = p['path']
    if os.path.lexists(path):
        raise StorageError("cannot create %s: it already exists (nothing was overwritten)."
                           % path)
    _remove_stale_partials(path)
    tmp = _partial_name(path)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except (IOError, OSError) as exc:
        raise StorageError("cannot create %s: %s (nothing was overwritten)." % (path, exc))
    try:
        try:
            if p['format'] == 'raw':
                try:
                    if p['sparse']:
                        os.ftruncate(fd, p['size'])
                    else:
                        os.posix_fallocate(fd, 0, p['size'])
                    os.fsync(fd)
                except (IOError, OSError) as exc:
                    raise StorageError("cannot allocate %s GiB for %s: %s"
                                       % (gib(p['size']), path, exc))
        finally:
            os.close(fd)
        if p['format'] != 'raw':
            if not qemu_img or run_command is None:
                raise StorageError("qemu-img is needed to create the qcow2 image %s; install it "
                                   "(Debian: qemu-utils, RHEL: qemu-img)." % path)
            cmd = [qemu_img, 'create', '-q', '-f', 'qcow2']
            if p.get('backing_store'):
                cmd += ['-b', p['backing_store'], '-F', p['backing_format']]
            if not p['sparse'] and not p.get('backing_store'):
                cmd += ['-o', 'preallocation=falloc']
            cmd += [tmp, str(p['size'])]
            rc, out, err = run_command(cmd)
            if rc != 0 or not os.path.isfile(tmp):
                raise StorageError("qemu-img create failed for %s: %s"
                                   % (path, (err or out).strip()))
        _publish(tmp, path)
    finally:
        _unlink_quiet(tmp)


def report(plans):
    """What the result shows about the disks (sizes in GiB)."""
    out = []
    for p in plans:
        item = {'disk': p['label'], 'action': p['action'], 'format': p['format'],
                'size_gib': gib(p['size'])}
        if p['growth']:
            item['growth_requested_gib'] = gib(p['requested'])
        if p['shrink_refused']:
            item['shrink_refused_gib'] = gib(p['requested'])
        out.append(item)
    return out


def growth_warnings(plans):
    msgs = []
    for p in plans:
        if p['growth']:
            msgs.append("disk %s is %s GiB but size=%s GiB was asked for: the module never "
                        "resizes an existing image. Grow it yourself (qemu-img resize, or virsh "
                        "blockresize while running), then grow the guest's partition."
                        % (p['label'], gib(p['size']), gib(p['requested'])))
        if p['shrink_refused']:
            msgs.append("disk %s is %s GiB, larger than size=%s GiB: the module never shrinks "
                        "an image; it was left as it is."
                        % (p['label'], gib(p['size']), gib(p['requested'])))
    return msgs


def removable_storage(tree):
    """(files, volumes) of the domain's writable disks (never CD-ROMs, read-only or
    <shareable/> images: other guests use those)."""
    files, volumes = [], []
    devices = tree.find('devices')
    for el in devices.findall('disk') if devices is not None else []:
        if el.get('device') != 'disk' or el.find('readonly') is not None \
                or el.find('shareable') is not None:
            continue
        src = el.find('source')
        if src is None:
            continue
        if el.get('type') == 'file' and src.get('file'):
            files.append(src.get('file'))
        elif el.get('type') == 'volume' and src.get('pool'):
            volumes.append((src.get('pool'), src.get('volume')))
    return files, volumes


def remove_images(files, volumes, conn):
    removed = []
    for path in files:
        if os.path.isfile(path):
            os.unlink(path)
            removed.append(path)
    for pool_name, vol_name in volumes:
        try:
            pool = conn.storagePoolLookupByName(pool_name)
            vol = pool.storageVolLookupByName(vol_name)
        except libvirt.libvirtError:
            continue
        vol.delete(0)
        removed.append('%s/%s' % (pool_name, vol_name))
    return removed
