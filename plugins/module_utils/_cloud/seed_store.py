# -*- coding: utf-8 -*-
# Copyright: kvmops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A guest's NoCloud seed on the hypervisor: its files and the ISO built from them.
Private to the collection: no API promise.

Each guest has ``<seed_dir>/<domain name>/`` with user-data, meta-data, network-config (the
source, compared byte for byte on every run) and cidata.iso (volume label ``cidata``). The
seed stays there for the guest's whole life, so the guest can restart and cloud-init can
re-read it (virt-install 4.1 deletes its seed after the install, virt-manager issue 178);
state=absent with remove_storage removes it.

The ISO is built with xorriso (``xorriso -as mkisofs``): GNU xorriso is maintained, packaged
on Debian/Ubuntu and RHEL/Fedora alike (RHEL 9 dropped genisoimage), and it is what
virt-install itself uses for its cloud-init seeds; cloud-localds is a shell wrapper around
genisoimage that RHEL does not ship. genisoimage/mkisofs are used when xorriso is missing.

Files are 0640 root:<QEMU's group> in a 0750 directory (the seed holds the password hash), so
QEMU can read the ISO even with dynamic_ownership off; where SELinux is enabled the ISO gets
virt_content_t (read-only guest content), which libvirt also sets when it starts the guest.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import shutil
import stat
import subprocess
import tempfile

from ansible_collections.kvmops.hypervisor.plugins.module_utils._common.errors import KvmopsError
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt import qemu_access as _access

DEFAULT_SEED_DIR = '/var/lib/libvirt/boot/kvmops-seeds'
ISO_NAME = 'cidata.iso'
LABEL = 'cidata'
SOURCE_FILES = ('user-data', 'meta-data', 'network-config')


def _which(name):
    for d in os.environ.get('PATH', '/usr/bin:/bin').split(os.pathsep) + ['/usr/bin', '/usr/sbin']:
        p = os.path.join(d, name)
        if os.path.isfile(p) and os.access(p, os.X_OK):
            return p
    return None


def iso_tool():
    """(tool, path): xorriso first, then genisoimage, then mkisofs; (None, None) if none."""
    for name in ('xorriso', 'genisoimage', 'mkisofs'):
        path = _which(name)
        if path:
            return name, path
    return None, None


def iso_command(tool, path, out, src):
    """The command building a NoCloud seed ISO of directory src at out (Joliet + Rock Ridge,
    volume id cidata, which is how cloud-init finds it: blkid LABEL=cidata)."""
    args = ['-output', out, '-volid', LABEL, '-joliet', '-rock', src]
    if tool == 'xorriso':
        return [path, '-as', 'mkisofs', '-quiet'] + args
    return [path, '-quiet', '-input-charset', 'utf-8'] + args


def seed_paths(seed_dir, name):
    directory = os.path.join(seed_dir or DEFAULT_SEED_DIR, name)
    return directory, os.path.join(directory, ISO_NAME)


def read_existing(directory):
    """The seed's source files as they are on disk ({name: text}); {} when there are none."""
    files = {}
    for name in SOURCE_FILES:
        try:
            with open(os.path.join(directory, name), 'rb') as f:
                files[name] = f.read().decode('utf-8')
        except (IOError, OSError):
            continue
        except UnicodeDecodeError:
            files[name] = None
    return files


def _qemu_gid():
    ident = _access.qemu_identity()
    gids = sorted(ident.get('gids') or ())
    try:
        import grp
        if ident.get('group'):
            return grp.getgrnam(ident['group']).gr_gid
    except (KeyError, ImportError):
        pass
    return gids[0] if gids else None


def _selinux_label(path, run=None):
    if not _access.selinux_enabled():
        return
    chcon = _which('chcon')
    if chcon:
        subprocess.call([chcon, '-t', 'virt_content_t', path])


def write(directory, iso, files, runner=None):
    """Write the source files and rebuild the ISO atomically (temp file, rename)."""
    tool, path = iso_tool()
    if tool is None:
        raise KvmopsError("No ISO writer on the hypervisor to build the cloud-init seed: "
                          "install xorriso (Debian/Ubuntu/RHEL/Fedora package xorriso).")
    gid = _qemu_gid()
    parent = os.path.dirname(directory)
    try:
        # Guests of one virt_install_domains task write their seeds at once: a directory
        # another thread made between a look and a mkdir is not an error (seen in CI).
        os.makedirs(parent, 0o755, exist_ok=True)
        try:
            os.mkdir(directory, 0o750)
        except FileExistsError:
            if not os.path.isdir(directory):
                raise
        if gid is not None:
            os.chown(directory, 0 if os.geteuid() == 0 else -1, gid)
        os.chmod(directory, 0o750)
    except OSError as exc:
        raise KvmopsError("Cannot create the seed directory %s: %s. Give cloud_init.seed_dir "
                          "a directory the module may write to." % (directory, exc))
    work = tempfile.mkdtemp(prefix='.seed.', dir=directory)
    try:
        src = os.path.join(work, 'cidata')
        os.mkdir(src, 0o700)
        for name, text in sorted(files.items()):
            with open(os.path.join(src, name), 'wb') as f:
                f.write(text.encode('utf-8'))
        tmp_iso = os.path.join(work, ISO_NAME)
        cmd = iso_command(tool, path, tmp_iso, src)
        run = runner or _run
        rc, out, err = run(cmd)
        if rc != 0:
            raise KvmopsError("Building the cloud-init seed with %s failed (rc %s): %s"
                              % (tool, rc, (err or out).strip()[-800:]))
        _finish(tmp_iso, gid)
        for name, text in sorted(files.items()):
            _finish(os.path.join(src, name), gid)
        # The ISO first: the source files are what says "this seed is current".
        os.rename(tmp_iso, iso)
        for name in SOURCE_FILES:
            target = os.path.join(directory, name)
            if name in files:
                os.rename(os.path.join(src, name), target)
            elif os.path.exists(target):
                os.unlink(target)
        _selinux_label(iso)
    except (IOError, OSError) as exc:
        raise KvmopsError("Writing the cloud-init seed in %s failed: %s" % (directory, exc))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return tool


def _finish(path, gid):
    if gid is not None and os.geteuid() == 0:
        os.chown(path, 0, gid)
    os.chmod(path, 0o640)
    with open(path, 'rb') as f:
        os.fsync(f.fileno())


def _run(cmd):
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = proc.communicate()
    return proc.returncode, out.decode('utf-8', 'replace'), err.decode('utf-8', 'replace')


def copy_seed(source_dir, directory):
    """Copy a guest's seed directory (its source files and ISO, as write() left them) to
    another guest's directory, atomically (a temporary directory beside it, renamed): a clone
    keeps its source's seed bytes without sharing the file. Never overwrites."""
    if os.path.lexists(directory):
        raise KvmopsError('The seed directory %s exists already and no domain of that name '
                          'uses it: remove or rename it (a clone never overwrites a seed).'
                          % directory)
    parent = os.path.dirname(directory)
    work = tempfile.mkdtemp(prefix='.kvmops-seed.', dir=parent)
    try:
        st = os.stat(source_dir)
        for name in list(SOURCE_FILES) + [ISO_NAME]:
            src = os.path.join(source_dir, name)
            if os.path.isfile(src) and not os.path.islink(src):
                dst = os.path.join(work, name)
                shutil.copyfile(src, dst)
                shutil.copystat(src, dst)
                fst = os.stat(src)
                if os.geteuid() == 0:
                    os.chown(dst, fst.st_uid, fst.st_gid)
                with open(dst, 'rb') as f:
                    os.fsync(f.fileno())
        if os.geteuid() == 0:
            os.chown(work, st.st_uid, st.st_gid)
        os.chmod(work, stat.S_IMODE(st.st_mode))
        os.rename(work, directory)
        _selinux_label(os.path.join(directory, ISO_NAME))
    except (IOError, OSError) as exc:
        raise KvmopsError('Copying the cloud-init seed %s to %s failed: %s. Free space or fix '
                          'the permissions there and run again.' % (source_dir, directory, exc))
    finally:
        if os.path.isdir(work):
            shutil.rmtree(work, ignore_errors=True)


def is_seed_directory(directory, name):
    """Whether directory is a guest's seed directory as write() makes it: a real directory
    named after the guest holding nothing but seed files (what a clone's record may name for
    removal; anything else is not kvmops' to delete)."""
    if os.path.islink(directory) or not os.path.isdir(directory) \
            or os.path.basename(os.path.normpath(directory)) != name:
        return False
    allowed = set(SOURCE_FILES) | {ISO_NAME}
    return all(entry in allowed or entry.startswith('.seed.')
               for entry in os.listdir(directory))


def remove(directory):
    """Remove a guest's seed directory; True when something was removed."""
    if os.path.isdir(directory):
        shutil.rmtree(directory)
        return True
    return False
