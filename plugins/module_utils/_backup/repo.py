# -*- coding: utf-8 -*-
# Copyright: kvmops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The backup repository on disk (layout in plan.py): atomic writes, checksums, chains,
leftovers of interrupted runs, and qemu-img. Private to the collection: no API promise.

Nothing here removes a file kvmops did not make: removal happens only below a guest
directory that carries the marker file, and only for names of the repository's layout.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import hashlib
import json
import os
import shutil
import subprocess

from ansible_collections.kvmops.hypervisor.plugins.module_utils._common import files
from ansible_collections.kvmops.hypervisor.plugins.module_utils._common.errors import KvmopsError
from ansible_collections.kvmops.hypervisor.plugins.module_utils._backup import plan

CHUNK = 4 * 1024 * 1024


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        while True:
            block = f.read(CHUNK)
            if not block:
                break
            h.update(block)
    return h.hexdigest()


def fsync_dir(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path, text, mode=0o600):
    """Write text to path atomically (the collection's one writer), then fsync its directory."""
    directory = os.path.dirname(path)
    files.write_atomic(directory, os.path.basename(path), text.encode('utf-8'), mode)
    fsync_dir(directory)


def guest_dir(repository, guest):
    return os.path.join(repository, guest)


def ensure_guest_dir(repository, guest):
    """The guest's directory with its marker (created when missing)."""
    if not os.path.isdir(repository):
        raise KvmopsError('The backup repository %s does not exist: create it (or mount its file '
                          'system) first; virt_backup does not create it, so that a missing mount '
                          'never fills the root file system.' % repository)
    path = guest_dir(repository, guest)
    if not os.path.isdir(path):
        os.mkdir(path, 0o700)
    marker = os.path.join(path, plan.MARKER)
    if not os.path.exists(marker):
        atomic_write(marker, 'kvmops.hypervisor virt_backup repository of guest %s\n' % guest)
    return path


def is_ours(path):
    return os.path.isfile(os.path.join(path, plan.MARKER))


def read_manifest(chain_path):
    path = os.path.join(chain_path, plan.MANIFEST)
    with open(path) as f:
        return plan.parse_manifest(f.read(), path)


def write_manifest(chain_path, manifest):
    atomic_write(os.path.join(chain_path, plan.MANIFEST), plan.manifest_text(manifest), 0o600)


def chains(gdir):
    """[(chain id, manifest)] of the committed chains, oldest first (unreadable ones with
    manifest None)."""
    out = []
    if not os.path.isdir(gdir):
        return out
    for name in sorted(os.listdir(gdir)):
        path = os.path.join(gdir, name)
        if not plan.is_chain_dir(name) or not os.path.isdir(path):
            continue
        if not os.path.exists(os.path.join(path, plan.MANIFEST)):
            continue
        try:
            out.append((name, read_manifest(path)))
        except (KvmopsError, OSError):
            out.append((name, None))
    return out


def leftovers(gdir):
    """Paths an interrupted run left behind under a guest directory of ours: partial chains and
    points, chains without a manifest, point directories the manifest does not list, and
    temporary files of atomic writes."""
    found = []
    if not os.path.isdir(gdir) or not is_ours(gdir):
        return found
    for name in sorted(os.listdir(gdir)):
        path = os.path.join(gdir, name)
        if name.endswith(plan.PARTIAL) and plan.is_chain_dir(name[:-len(plan.PARTIAL)]):
            found.append(path)
            continue
        if not plan.is_chain_dir(name) or not os.path.isdir(path):
            continue
        mpath = os.path.join(path, plan.MANIFEST)
        if not os.path.exists(mpath):
            found.append(path)
            continue
        try:
            listed = set(p['dir'] for p in read_manifest(path)['points'])
        except (KvmopsError, OSError):
            continue
        for sub in sorted(os.listdir(path)):
            spath = os.path.join(path, sub)
            if sub.endswith(plan.PARTIAL) and plan.parse_point_dir(sub[:-len(plan.PARTIAL)]):
                found.append(spath)
            elif plan.parse_point_dir(sub) and sub not in listed:
                found.append(spath)
            elif sub.startswith('.%s.' % plan.MANIFEST):
                found.append(spath)
    return found


def remove(path, gdir):
    """Remove a chain, point or temporary file below a guest directory of ours."""
    real, base = os.path.realpath(path), os.path.realpath(gdir)
    if not real.startswith(base + os.sep) or not is_ours(gdir):
        raise KvmopsError('Refusing to remove %s: it is not inside the kvmops backup directory %s.'
                          % (path, gdir))
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.unlink(path)


def dir_size(path):
    total = 0
    for base, _dirs, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(base, f)).st_size
            except OSError:
                pass
    return total


def free_bytes(path):
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


# -- qemu-img -------------------------------------------------------------------------------
def qemu_img_path():
    for d in os.environ.get('PATH', '').split(os.pathsep) + ['/usr/bin', '/usr/local/bin']:
        p = os.path.join(d, 'qemu-img')
        if os.access(p, os.X_OK):
            return p
    raise KvmopsError('qemu-img is not installed on this hypervisor (Debian/Ubuntu: apt install '
                      'qemu-utils; RHEL/Fedora: dnf install qemu-img).')


def qemu_img(args, what):
    cmd = [qemu_img_path()] + list(args)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = proc.communicate()
    if proc.returncode != 0:
        raise KvmopsError('qemu-img failed to %s (%s): %s' % (
            what, ' '.join(cmd), (err or out).decode('utf-8', 'replace').strip()))
    return out.decode('utf-8', 'replace')


def create_target(path, virtual_size, backing=None):
    """A qcow2 backup target; an incremental one has the previous point as backing file (a
    path relative to its own directory, format given: never probed)."""
    args = ['create', '-q', '-f', 'qcow2']
    if backing:
        args += ['-b', backing, '-F', 'qcow2']
    args += [path, str(int(virtual_size))]
    qemu_img(args, 'create the backup target %s' % path)


def image_info(path, chain=False):
    args = ['info', '--output=json', '-f', 'qcow2']
    if chain:
        args.append('--backing-chain')
    return json.loads(qemu_img(args + [path], 'read %s' % path))


def check_image(path):
    qemu_img(['check', '-q', '-f', 'qcow2', path], 'check %s' % path)


def convert(src, dest, fmt):
    """Rebuild a point (its qcow2 file and the backing chain in the repository) into one image."""
    qemu_img(['convert', '-q', '-f', 'qcow2', '-O', fmt, src, dest],
             'rebuild %s into %s' % (src, dest))
