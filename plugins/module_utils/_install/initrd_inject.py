# -*- coding: utf-8 -*-
# Copyright: kvmops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Inject files (a kickstart, preseed or AutoYaST file) into a COPY of an installer initrd.

Private to the collection: no API promise.

Like virt-install --initrd-inject: a gzip-compressed "newc" cpio archive holding the files at
the root of the initramfs is appended to a copy of the initrd. The Linux kernel unpacks
concatenated initramfs archives in order, so the installer finds /<name> (for example
``inst.ks=file:/ks.cfg``).  Pure Python (no cpio or gzip binaries).

The files may hold passwords: their content is never logged, returned or put on a command
line, and the injected initrd is written with mode 0600 (libvirt hands it to QEMU itself).
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import gzip
import hashlib
import io
import os
import re
import tempfile

from ansible_collections.kvmops.hypervisor.plugins.module_utils._common.errors import KvmopsError

NEWC_MAGIC = b'070701'
TRAILER = 'TRAILER!!!'
_NAME_RE = re.compile(r'^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$')


class InitrdInjectError(KvmopsError):
    """The message names the file (never its content) and the fix. Caught by
    _guest/features/install, which re-wraps it as DomainError naming install.kickstart."""


def check_inject_name(name):
    """A name for a file at the initrd root: a plain file name, no directories."""
    if not isinstance(name, str) or not _NAME_RE.match(name) or name in ('.', '..'):
        raise InitrdInjectError(
            "%r cannot be injected as a file at the root of the initrd: use a plain file name "
            "of letters, digits, '.', '_', '+' and '-' (such as ks.cfg or preseed.cfg)." % (name,))
    return name


def _pad4(n):
    return (4 - n % 4) % 4


def newc_entry(name, data, mode=0o100644, ino=1, mtime=0):
    """One newc cpio member (header, NUL-terminated name, data, each padded to 4 bytes)."""
    bname = name.encode('utf-8') + b'\0'
    fields = [ino, mode, 0, 0, 1, mtime, len(data), 0, 0, 0, 0, len(bname), 0]
    header = NEWC_MAGIC + b''.join(('%08X' % f).encode('ascii') for f in fields)
    out = header + bname + b'\0' * _pad4(len(header) + len(bname))
    out += data + b'\0' * _pad4(len(data))
    return out


def newc_archive(files):
    """A complete newc archive of [(name, bytes)], regular files 0644, ending in the trailer."""
    parts = []
    for i, (name, data) in enumerate(files):
        check_inject_name(name)
        parts.append(newc_entry(name, data, ino=i + 1))
    parts.append(newc_entry(TRAILER, b'', mode=0, ino=0))
    return b''.join(parts)


def parse_newc(blob):
    """[(name, mode, bytes)] of an uncompressed newc archive (for tests and verification)."""
    out = []
    pos = 0
    while True:
        if blob[pos:pos + 6] != NEWC_MAGIC:
            raise ValueError('bad newc magic at %d' % pos)
        fields = [int(blob[pos + 6 + 8 * i:pos + 14 + 8 * i], 16) for i in range(13)]
        mode, size, namesize = fields[1], fields[6], fields[11]
        pos += 110
        name = blob[pos:pos + namesize - 1].decode('utf-8')
        pos += namesize + _pad4(110 + namesize)
        data = blob[pos:pos + size]
        pos += size + _pad4(size)
        if name == TRAILER:
            return out
        out.append((name, mode, data))


def gzip_bytes(data):
    buf = io.BytesIO()
    # mtime=0: the same input gives the same bytes, so a re-run sees the same digest.
    with gzip.GzipFile(fileobj=buf, mode='wb', compresslevel=6, mtime=0) as gz:
        gz.write(data)
    return buf.getvalue()


def read_inject_files(paths):
    """[(name, bytes)] from local paths; the name in the initrd is the file's base name."""
    files = []
    names = set()
    for path in paths:
        name = check_inject_name(os.path.basename(path))
        if name in names:
            raise InitrdInjectError("Two files to inject share the name %s; rename one." % name)
        names.add(name)
        try:
            with open(path, 'rb') as f:
                files.append((name, f.read()))
        except (IOError, OSError) as exc:
            raise InitrdInjectError("Cannot read %s to inject it into the initrd: %s. Give a "
                                    "readable file on the hypervisor." % (path, exc.strerror))
    return files


def injected_digest(initrd_path, files):
    """Digest naming the injected copy: changes with the initrd or any injected byte."""
    h = hashlib.sha256()
    with open(initrd_path, 'rb') as f:
        for chunk in iter(lambda: f.read(1024 * 1024), b''):
            h.update(chunk)
    for name, data in files:
        h.update(b'\0' + name.encode('utf-8') + b'\0')
        h.update(hashlib.sha256(data).digest())
    return h.hexdigest()[:16]


def injected_path(initrd_path, files, directory=None):
    directory = directory or os.path.dirname(initrd_path)
    return os.path.join(directory, 'initrd-inject-%s' % injected_digest(initrd_path, files))


def inject(initrd_path, files, directory=None, check_mode=False):
    """Path of a copy of initrd_path with files appended; (path, created).

    The copy lives next to the initrd (or in directory), named by a digest of the initrd and
    the files, so a re-run with the same inputs reuses it and creates nothing.  Written to a
    0600 temporary file in the same directory and renamed into place.
    """
    dest = injected_path(initrd_path, files, directory)
    if os.path.isfile(dest):
        return dest, False
    if check_mode:
        return dest, True
    tail = gzip_bytes(newc_archive(files))
    fd, tmp = tempfile.mkstemp(prefix='.inject.', dir=os.path.dirname(dest))
    try:
        with os.fdopen(fd, 'wb') as out:
            with open(initrd_path, 'rb') as src:
                for chunk in iter(lambda: src.read(1024 * 1024), b''):
                    out.write(chunk)
            out.write(tail)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o600)
        os.rename(tmp, dest)
    except Exception:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return dest, True


def remove_injected(path):
    """Remove one injected copy (after its install phase ended): True if it was removed.

    Only files named initrd-inject-* are ever removed, so a wrong path cannot delete an
    original initrd."""
    if not path or not os.path.basename(path).startswith('initrd-inject-'):
        return False
    try:
        os.unlink(path)
    except OSError:
        return False
    return True
