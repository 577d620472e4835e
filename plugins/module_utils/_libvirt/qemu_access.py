# -*- coding: utf-8 -*-
# Copyright: kvmops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Can QEMU reach a file? The guide's "Permission denied", checked before a guest uses it
(the guest's preflight, _guest/preflight.py, and the cloud-init seed, _cloud/seed_store.py).

Private to the collection: no API promise. Reads only.

QEMU runs as the user and group set in qemu.conf (Debian: libvirt-qemu, RHEL/Fedora: qemu).
libvirt relabels and chowns the image files themselves (dynamic_ownership), but it never
touches their directories: every directory on the way must let that user search it (x).
With SELinux enabled the file (or, for a new image, its directory) must carry a type that
svirt may use (virt_image_t, virt_content_t, ...), else QEMU gets "Permission denied" even
as root.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import errno
import grp
import os
import pwd
import stat

from ansible_collections.kvmops.hypervisor.plugins.module_utils._common.errors import KvmopsError
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt import qemu_identity as _qemu_identity

QEMU_CONF = _qemu_identity.QEMU_CONF
SELINUX_OK_TYPES = ('virt_image_t', 'virt_content_t', 'svirt_image_t', 'virt_var_lib_t',
                    'svirt_tmp_t', 'iso9660_t', 'public_content_t', 'public_content_rw_t')
FIX_HINT = ("move it under /var/lib/libvirt/images (ISOs and kernels: /var/lib/libvirt/boot), "
            "or %s")


class PreflightError(KvmopsError):
    """QEMU could not reach a path: the message names path, obstacle and fix. Caught by
    _guest/manager and _guest/features/install (re-wrapped as the guest's DomainError)."""


def qemu_identity(conf_path=QEMU_CONF, conf_text=None):
    """{'user', 'group', 'uid', 'gids', 'source', 'dynamic_ownership'} of QEMU processes
    (the collection's one answer, _libvirt/qemu_identity)."""
    return _qemu_identity.qemu_identity('/', conf_text=conf_text, conf_path=conf_path)


def _may(st, ident, bit):
    """Whether uid/gids get permission bit (4 r, 2 w, 1 x) on st (classic DAC, no ACLs)."""
    mode = st.st_mode
    if st.st_uid == ident['uid']:
        return bool(mode & (bit << 6))
    if st.st_gid in ident['gids']:
        return bool(mode & (bit << 3))
    return bool(mode & bit)


def _owner(st):
    try:
        u = pwd.getpwuid(st.st_uid).pw_name
    except KeyError:
        u = str(st.st_uid)
    try:
        g = grp.getgrgid(st.st_gid).gr_name
    except KeyError:
        g = str(st.st_gid)
    return '%s:%s' % (u, g)


def check_dac(path, what, ident, exists=True):
    """Raise PreflightError when ident cannot search every directory on the way to path."""
    if ident.get('uid') in (None, 0):
        return  # QEMU as root (or unknown user): classic permissions are no obstacle
    user = ident['user']
    who = ident['user'] + (':%s' % ident['group'] if ident.get('group') else '')
    parts = os.path.dirname(path).split('/')
    current = '/'
    dirs = ['/']
    for part in parts:
        if part:
            current = os.path.join(current, part)
            dirs.append(current)
    for d in dirs:
        try:
            st = os.stat(d)
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                return  # reported elsewhere (missing directory)
            raise
        if not _may(st, ident, 1):
            raise PreflightError(
                "Permission denied ahead: QEMU runs as %s (from %s) and cannot reach %s (%s): "
                "the directory %s is mode %04o owned by %s and gives %s no search (x) "
                "permission. Fix: %s." % (
                    who, ident['source'], path, what, d, stat.S_IMODE(st.st_mode), _owner(st),
                    user, traverse_hint(d, user)))
    if exists and not ident.get('dynamic_ownership', True) and os.path.exists(path):
        st = os.stat(path)
        if not _may(st, ident, 4):
            raise PreflightError(
                "Permission denied ahead: dynamic_ownership = 0 in qemu.conf, so libvirt does "
                "not chown %s (%s) for QEMU, and %s cannot read it (mode %04o, owner %s). Fix: "
                "chown it to %s or enable dynamic_ownership." % (
                    path, what, ident['user'], stat.S_IMODE(st.st_mode), _owner(st),
                    ident['user']))


def traverse_fix(directory, user):
    return ("let QEMU traverse the directory: chmod o+x %s (or a group ACL: setfacl -m u:%s:x "
            "%s)" % (directory, user, directory))


def traverse_hint(directory, user):
    """The fix for a directory QEMU cannot traverse; never "open a home directory (root's or a
    user's) to others": its files would be readable by every local account."""
    if directory in ('/home', '/root') or _in_home_directory(directory):
        return ("move it under /var/lib/libvirt/images (ISOs and kernels: "
                "/var/lib/libvirt/boot); do not open %s to other users for QEMU" % directory)
    return FIX_HINT % traverse_fix(directory, user)


def selinux_enabled(root='/'):
    return os.path.exists(os.path.join(root, 'sys/fs/selinux/enforce'))


def selinux_type(path):
    """The SELinux type of path ('virt_image_t'), or None when it has no label."""
    try:
        raw = os.getxattr(path, 'security.selinux')
    except (OSError, AttributeError):
        return None
    label = raw.decode('utf-8', 'replace').rstrip('\x00')
    fields = label.split(':')
    return fields[2] if len(fields) >= 3 else None


def _in_home_directory(path):
    return path == '/root' or path.startswith(('/root/', '/home/'))


def _read_only_media(what):
    return 'ISO' in what or what in ('kernel', 'initrd') or 'kernel cache' in what


def selinux_fix(path, what, exists=True):
    """How to give path a type QEMU may use; never "label a home directory for libvirt"."""
    directory = os.path.dirname(path)
    setype = 'virt_content_t' if _read_only_media(what) else 'virt_image_t'
    home = '/var/lib/libvirt/boot' if _read_only_media(what) else '/var/lib/libvirt/images'
    if exists:
        # mv keeps a file's label (user_home_t stays user_home_t): relabel it where it lands.
        move = ("move it to %s (then restorecon -v on the moved file: mv keeps the old label)"
                % home)
    else:
        move = 'create it under %s' % home
    if _in_home_directory(directory):
        return ("%s, or to a directory outside the home directories labelled with "
                "kvmops.hypervisor.selinux_virt_dir (setype: %s). Do not label %s itself for "
                "libvirt: a home directory relabelled as %s loses the types its owner's login "
                "and SSH keys need" % (move, setype, directory, setype))
    return ("%s, or label its directory for libvirt with kvmops.hypervisor.selinux_virt_dir "
            "(path: %s, setype: %s; semanage fcontext -a -t %s '%s(/.*)?' && restorecon -R -v "
            "%s)" % (move, directory, setype, setype, directory, directory))


def check_selinux(path, what, exists=True):
    target = path if exists and os.path.exists(path) else os.path.dirname(path)
    t = selinux_type(target)
    if t is None or t in SELINUX_OK_TYPES:
        return
    raise PreflightError(
        "Permission denied ahead: SELinux is enabled and %s carries the type %s, which QEMU "
        "(svirt_t) may not use for %s (%s). libvirt relabels some files itself at start "
        "(and leaves them relabelled); where it does not (directories, NFS, relabel off) "
        "QEMU is denied. Fix: %s." % (
            target, t, path, what, selinux_fix(path, what, target == path)))


def check_paths(items, ident=None, selinux=None):
    """items: [(path, what, exists)]; raise PreflightError for the first unreachable one."""
    if ident is None:
        ident = qemu_identity()
    if selinux is None:
        selinux = selinux_enabled()
    for path, what, exists in items:
        check_dac(path, what, ident, exists)
        if selinux:
            check_selinux(path, what, exists)
    return ident
