# -*- coding: utf-8 -*-
# Copyright: kvmops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Find the installer kernel and initrd of an install tree and cache them on the host.

Private to the collection: no API promise.

A *location* is what virt-install calls --location: an http(s)/ftp URL, a local directory or
a local ISO image, each holding an install tree.  Known layouts (relative to the location):

* RHEL, CentOS, Fedora, Rocky, Alma: ``.treeinfo`` ([images-<arch>] kernel/initrd, with the
  [checksums] section when present), else ``images/pxeboot/{vmlinuz,initrd.img}`` (also
  ``isolinux/`` on DVDs, ``ppc/ppc64/`` and ``images/kernel.img`` on other arches).
* Debian and Ubuntu netboot: ``current/images/netboot/<distro>-installer/<arch>/{linux,
  initrd.gz}`` for a location such as ``.../dists/bookworm/main/installer-amd64/``; the
  same tree given one level up (``.../main/``) or down (``.../current/``,
  ``.../current/images/``, ``.../netboot/``); ``daily/`` and ``current/legacy-images/``;
  installer CDs (``install.amd/``, ``install/``) and Ubuntu live media (``casper/``).
* openSUSE / SLES: ``boot/<arch>/loader/{linux,initrd}`` and ``boot/<arch>/{linux,initrd}``.

What was found is copied into a cache directory keyed by the source (and the architecture),
``/var/lib/libvirt/boot/kvmops/<key>`` by default, together with a manifest recording sizes
and SHA-256 checksums.  Every file is written to a temporary file in that directory and
renamed into place only once complete and verified, so a partial download is never used.  A
later run whose cache verifies fetches nothing: no network traffic at all for URLs, a stat
of the source files for local directories and ISOs.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import configparser
import errno
import hashlib
import json
import os
import shutil
import socket
import subprocess
import tempfile

from ansible_collections.kvmops.hypervisor.plugins.module_utils._common.errors import KvmopsError
from ansible_collections.kvmops.hypervisor.plugins.module_utils._common.files import unlink_quietly, write_atomic

from urllib.error import HTTPError, URLError

from ansible.module_utils.common.text.converters import to_native, to_text
from ansible.module_utils.urls import open_url

from ansible_collections.kvmops.hypervisor.plugins.module_utils._install import (
    source_arg as _source_arg)

DEFAULT_CACHE_DIR = '/var/lib/libvirt/boot/kvmops'
MANIFEST = 'manifest.json'
MANIFEST_VERSION = 1
KERNEL_NAME = 'kernel'
INITRD_NAME = 'initrd'
URL_SCHEMES = ('http', 'https', 'ftp')
_CHUNK = 1024 * 1024
_SMALL_LIMIT = 1024 * 1024

# Guest architecture (libvirt's name) -> Debian/Ubuntu architecture name.
DEBIAN_ARCH = {
    'x86_64': 'amd64', 'i686': 'i386', 'i386': 'i386', 'aarch64': 'arm64',
    'armv7l': 'armhf', 'ppc64le': 'ppc64el', 's390x': 's390x', 'riscv64': 'riscv64',
}
# Debian installer CD directory per architecture.
DEBIAN_CD_DIR = {'x86_64': 'install.amd', 'i686': 'install.386', 'i386': 'install.386',
                 'aarch64': 'install.a64'}


class InstallMediaError(KvmopsError):
    """The message says what failed (URL or path, every path tried) and how to fix it.
    Caught here (probe_url) and by _guest/features/install (re-wrapped as DomainError)."""


def _unreachable(msg, reason):
    """InstallMediaError for a URL that did not answer; .reason is the short cause."""
    exc = InstallMediaError(msg)
    exc.reason = reason
    return exc


class NotFound(Exception):
    def __init__(self, where, why):
        super(NotFound, self).__init__(where)
        self.where = where
        self.why = why


# --------------------------------------------------------------------------------------------
# Layouts
# --------------------------------------------------------------------------------------------

def layout_candidates(arch):
    """Every (layout, kernel, initrd) pair worth trying for a guest architecture, most likely
    first.  Paths are relative to the location."""
    darch = DEBIAN_ARCH.get(arch, arch)
    cands = [
        ('redhat', 'images/pxeboot/vmlinuz', 'images/pxeboot/initrd.img'),
    ]
    # Debian and Ubuntu netboot: the installer-<arch>/ directory, one level down
    # (current/, current/images/, netboot/, <distro>-installer/<arch>/) and one level up
    # (dists/<suite>/main/).
    deb_kernel = 'vmlinux' if darch == 'ppc64el' else 'linux'
    for distro in ('debian', 'ubuntu'):
        tail = 'netboot/%s-installer/%s/' % (distro, darch)
        prefixes = ['current/images/', 'current/legacy-images/', 'daily/', 'images/', '',
                    'installer-%s/current/images/' % darch]
        for p in prefixes:
            cands.append((distro, p + tail + deb_kernel, p + tail + 'initrd.gz'))
        cands.append((distro, '%s-installer/%s/%s' % (distro, darch, deb_kernel),
                      '%s-installer/%s/initrd.gz' % (distro, darch)))
    cands.append(('debian', deb_kernel, 'initrd.gz'))
    # openSUSE / SLES.
    cands += [
        ('suse', 'boot/%s/loader/linux' % arch, 'boot/%s/loader/initrd' % arch),
        ('suse', 'boot/%s/linux' % arch, 'boot/%s/initrd' % arch),
    ]
    # Installer CDs/DVDs (local ISO or a mounted ISO exported over HTTP).
    cands.append(('redhat', 'isolinux/vmlinuz', 'isolinux/initrd.img'))
    if arch in ('ppc64', 'ppc64le'):
        cands.append(('redhat', 'ppc/ppc64/vmlinuz', 'ppc/ppc64/initrd.img'))
    if arch == 's390x':
        cands.append(('redhat', 'images/kernel.img', 'images/initrd.img'))
    if arch in DEBIAN_CD_DIR:
        d = DEBIAN_CD_DIR[arch]
        cands.append(('debian', d + '/vmlinuz', d + '/initrd.gz'))
    cands += [
        ('ubuntu', 'install/vmlinuz', 'install/initrd.gz'),
        ('ubuntu', 'casper/vmlinuz', 'casper/initrd'),
        ('ubuntu', 'casper/vmlinuz', 'casper/initrd.gz'),
    ]
    seen = set()
    out = []
    for c in cands:
        if (c[1], c[2]) not in seen:
            seen.add((c[1], c[2]))
            out.append(c)
    return out


def parse_treeinfo(text, arch):
    """(kernel, initrd, {relpath: 'sha256:<hex>'}) from a .treeinfo, or None.

    Looks at [images-<arch>] first, then at the arch named in [general] or [tree]."""
    cp = configparser.ConfigParser(interpolation=None, strict=False)
    cp.optionxform = str  # [checksums] keys are paths: keep their case
    try:
        cp.read_string(to_text(text, errors='surrogate_or_strict'))
    except (configparser.Error, UnicodeError):
        return None
    arches = [arch]
    for section in ('general', 'tree'):
        if cp.has_option(section, 'arch'):
            arches.append(cp.get(section, 'arch').strip())
    for a in arches:
        section = 'images-%s' % a
        if cp.has_option(section, 'kernel') and cp.has_option(section, 'initrd'):
            kernel = cp.get(section, 'kernel').strip().lstrip('/')
            initrd = cp.get(section, 'initrd').strip().lstrip('/')
            if not _safe_relpath(kernel) or not _safe_relpath(initrd):
                return None
            sums = {}
            if cp.has_section('checksums'):
                for key, value in cp.items('checksums'):
                    sums[key.strip().lstrip('/')] = value.strip()
            return kernel, initrd, sums
    return None


def _safe_relpath(rel):
    parts = rel.split('/')
    return bool(rel) and '..' not in parts and not rel.startswith('/')


def _expected_sha256(sums, rel):
    value = sums.get(rel)
    if value and value.lower().startswith('sha256:'):
        return value.split(':', 1)[1].strip().lower()
    return None


# --------------------------------------------------------------------------------------------
# Sources
# --------------------------------------------------------------------------------------------

def classify_location(location):
    """('url' | 'dir' | 'iso', canonical source string) or raise InstallMediaError."""
    if not isinstance(location, str) or not location.strip():
        raise InstallMediaError("install.location must be an http(s)/ftp URL, a local directory "
                                "or a local ISO image holding an install tree.")
    loc = location.strip()
    if '://' in loc:
        scheme = loc.split('://', 1)[0].lower()
        if scheme == 'file':
            loc = loc[len('file://'):]
        elif scheme in URL_SCHEMES:
            return 'url', loc.rstrip('/') + '/'
        else:
            raise InstallMediaError(
                "install.location=%r uses the scheme %r, which is not supported; give an http, "
                "https or ftp URL, or mount the share on the hypervisor and give the directory."
                % (location, scheme))
    if not os.path.isabs(loc):
        raise InstallMediaError("install.location=%r is neither a URL nor an absolute path; give "
                                "http(s)/ftp URL or an absolute path on the hypervisor."
                                % (location,))
    path = os.path.realpath(loc)
    if os.path.isdir(path):
        return 'dir', path
    if os.path.isfile(path):
        if not is_iso9660(path):
            raise InstallMediaError(
                "install.location=%r is a file but not an ISO 9660 image; give the ISO of an "
                "installer, the directory of an install tree or its URL." % (location,))
        return 'iso', path
    raise InstallMediaError("install.location=%r does not exist on the hypervisor." % (location,))


def is_optical_image(path):
    """True for an ISO 9660 or UDF image (the volume recognition area from sector 16 on):
    Windows media are UDF with or without an ISO 9660 bridge."""
    try:
        with open(path, 'rb') as f:
            for sector in range(16, 32):
                f.seek(sector * 2048 + 1)
                ident = f.read(5)
                if ident in (b'CD001', b'BEA01', b'NSR02', b'NSR03', b'TEA01'):
                    return True
                if not ident:
                    break
    except (IOError, OSError):
        return False
    return False


def is_iso9660(path):
    """True if the file carries the ISO 9660 volume descriptor magic (CD001 at 32769)."""
    try:
        with open(path, 'rb') as f:
            f.seek(32769)
            return f.read(5) == b'CD001'
    except (IOError, OSError):
        return False


class UrlTree(object):
    kind = 'url'

    def __init__(self, base, validate_certs=True, timeout=30, http_agent=None):
        self.base = base
        self.validate_certs = validate_certs
        self.timeout = timeout
        self.http_agent = http_agent or 'kvmops.hypervisor'

    def describe(self, rel):
        return self.base + rel

    def _open(self, rel):
        url = self.describe(rel)
        try:
            return open_url(url, method='GET', validate_certs=self.validate_certs,
                            timeout=self.timeout, http_agent=self.http_agent,
                            follow_redirects='safe', decompress=False)
        except HTTPError as exc:
            if exc.code in (403, 404, 410):
                raise NotFound(url, 'HTTP %s' % exc.code)
            raise _unreachable("Fetching %s failed: HTTP %s %s." % (url, exc.code, exc.reason),
                               'HTTP %s %s' % (exc.code, exc.reason))
        except URLError as exc:
            if isinstance(getattr(exc, 'reason', None), socket.timeout):
                raise self._timed_out(url)
            reason = to_native(getattr(exc, 'reason', exc))
            if url.lower().startswith('ftp') and ('550' in reason or 'No such file' in reason):
                raise NotFound(url, 'FTP %s' % reason)
            raise _unreachable(
                "Cannot reach %s: %s. Check the URL, that the server is up and that the "
                "hypervisor (not the Ansible controller) can reach it." % (url, reason), reason)
        except socket.timeout:
            raise self._timed_out(url)
        except (IOError, OSError, ValueError) as exc:
            raise _unreachable("Fetching %s failed: %s." % (url, to_native(exc)), to_native(exc))

    def _timed_out(self, url):
        return _unreachable(
            "Fetching %s timed out: the server did not answer within install.timeout=%ss. "
            "Check that it is up and answers from the hypervisor, or raise install.timeout "
            "for a slow server." % (url, self.timeout), 'timed out after %ss' % self.timeout)

    def read_small(self, rel):
        try:
            resp = self._open(rel)
        except NotFound:
            return None
        try:
            return resp.read(_SMALL_LIMIT)
        finally:
            resp.close()

    def exists(self, rel):
        return None  # only a GET tells; copy_to raises NotFound

    def signature(self, rel):
        return None

    def copy_to(self, rel, fileobj, workdir=None):
        """Stream rel into fileobj; return (size, sha256 hex)."""
        resp = self._open(rel)
        url = self.describe(rel)
        try:
            expected = None
            headers = getattr(resp, 'headers', None)
            if headers is not None and headers.get('Content-Length'):
                try:
                    expected = int(headers.get('Content-Length'))
                except ValueError:
                    expected = None
            size, digest = _stream(resp, fileobj)
        except (IOError, OSError) as exc:
            raise InstallMediaError("Downloading %s failed after a partial transfer: %s. Nothing "
                                    "was kept; run again." % (url, to_native(exc)))
        finally:
            resp.close()
        if expected is not None and size != expected:
            raise InstallMediaError("Downloading %s stopped after %d of %d bytes; nothing was "
                                    "kept. Run again, or check the server." % (url, size, expected))
        return size, digest


def probe_url(url, validate_certs=True, timeout=30):
    """None when the install tree at url answers, else why not (short: 'HTTP 404',
    'connection refused'). One GET of the tree's root (not its files) through the same
    open_url as the fetch, so install.validate_certs and install.timeout apply; 403 counts as
    an answer (mirrors often refuse directory listings)."""
    tree = UrlTree(url, validate_certs=validate_certs, timeout=timeout)
    try:
        tree._open('').close()
    except NotFound as nf:
        return None if nf.why == 'HTTP 403' else nf.why
    except InstallMediaError as exc:
        return getattr(exc, 'reason', None) or str(exc)
    return None


class _DirTree(object):
    kind = 'dir'

    def __init__(self, root):
        self.root = root

    def describe(self, rel):
        return os.path.join(self.root, rel)

    def _inside(self, rel):
        """The path of rel, refused when a symlink takes it outside the tree (a tree's
        vmlinuz -> /etc/shadow must not end up world-readable in the cache)."""
        path = self.describe(rel)
        real = os.path.realpath(path)
        root = os.path.realpath(self.root)
        if os.path.exists(path) and not real.startswith(root.rstrip(os.sep) + os.sep):
            raise InstallMediaError(
                "%s is a symlink to %s, outside the install tree %s; refusing to copy it. "
                "Give a tree whose files lie inside it." % (path, real, root))
        return path

    def read_small(self, rel):
        path = self._inside(rel)
        if not os.path.isfile(path):
            return None
        with open(path, 'rb') as f:
            return f.read(_SMALL_LIMIT)

    def exists(self, rel):
        return os.path.isfile(self._inside(rel))

    def signature(self, rel):
        st = os.stat(self.describe(rel))
        return [st.st_size, int(st.st_mtime * 1e9)]

    def copy_to(self, rel, fileobj, workdir=None):
        path = self._inside(rel)
        if not os.path.isfile(path):
            raise NotFound(path, 'missing')
        with open(path, 'rb') as f:
            return _stream(f, fileobj)


def iso_tool():
    """The first usable ISO reader on PATH: 'xorriso', 'bsdtar' or 'isoinfo', else None."""
    for tool in ('xorriso', 'bsdtar', 'isoinfo'):
        if _which(tool):
            return tool
    return None


def _which(name):
    for d in os.environ.get('PATH', '/usr/sbin:/usr/bin:/sbin:/bin').split(os.pathsep) + [
            '/usr/bin', '/usr/sbin', '/bin', '/sbin']:
        p = os.path.join(d, name)
        if os.path.isfile(p) and os.access(p, os.X_OK):
            return p
    return None


def iso_list_command(tool, iso):
    if tool == 'xorriso':
        return ['xorriso', '-abort_on', 'FATAL', '-indev', iso, '-find', '/', '-type', 'f']
    if tool == 'bsdtar':
        return ['bsdtar', '-tf', iso]
    if tool == 'isoinfo':
        return ['isoinfo', '-R', '-f', '-i', iso]
    raise ValueError(tool)


def iso_extract_command(tool, iso, rel, dest):
    """The command that extracts /rel from iso. For bsdtar and isoinfo it writes to stdout."""
    if tool == 'xorriso':
        return ['xorriso', '-abort_on', 'FATAL', '-osirrox', 'on', '-indev', iso,
                '-extract', '/' + rel, dest]
    if tool == 'bsdtar':
        return ['bsdtar', '-xOf', iso, rel]
    if tool == 'isoinfo':
        return ['isoinfo', '-R', '-i', iso, '-x', '/' + rel]
    raise ValueError(tool)


def parse_iso_listing(tool, text):
    """Set of relative file paths from a listing command's output."""
    files = set()
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        if tool == 'xorriso':
            if not (line.startswith("'") and line.endswith("'")):
                continue
            line = line[1:-1].replace("'\"'\"'", "'")
        line = line.lstrip('/')
        if line.startswith('./'):
            line = line[2:]
        if line and line != '.' and not line.endswith('/'):
            files.add(line)
    return files


class _IsoTree(object):
    kind = 'iso'

    def __init__(self, iso, runner=None):
        self.iso = iso
        self.tool = iso_tool()
        self._runner = runner or _run
        self._files = None
        if self.tool is None:
            raise InstallMediaError(
                "install.location=%s is an ISO image; reading the install tree inside it needs "
                "xorriso, bsdtar or isoinfo on the hypervisor. Install one (Debian/Ubuntu: apt "
                "install xorriso; RHEL/Fedora: dnf install xorriso) or give the tree's URL or an "
                "unpacked directory instead." % iso)

    def describe(self, rel):
        return '%s:/%s' % (self.iso, rel)

    def files(self):
        if self._files is None:
            rc, out, err = self._runner(iso_list_command(self.tool, self.iso))
            if rc != 0:
                raise InstallMediaError("Listing the ISO %s with %s failed (rc=%s): %s"
                                        % (self.iso, self.tool, rc, err.strip()[-500:]))
            self._files = parse_iso_listing(self.tool, out)
        return self._files

    def exists(self, rel):
        return rel in self.files()

    def signature(self, rel):
        st = os.stat(self.iso)
        return [st.st_size, int(st.st_mtime * 1e9)]

    def read_small(self, rel):
        if not self.exists(rel):
            return None
        tmpdir = tempfile.mkdtemp(prefix='kvmops-iso-')
        try:
            dest = os.path.join(tmpdir, 'f')
            with open(dest, 'wb') as f:
                self._extract(rel, dest, f)
            with open(dest, 'rb') as f:
                return f.read(_SMALL_LIMIT)
        finally:
            shutil.rmtree(tmpdir, ignore_errors=True)

    def _extract(self, rel, dest, fileobj):
        if self.tool == 'xorriso':
            fileobj.close()
            os.unlink(dest)
            rc, out, err = self._runner(iso_extract_command(self.tool, self.iso, rel, dest))
        else:
            rc, out, err = self._runner(iso_extract_command(self.tool, self.iso, rel, dest),
                                        stdout=fileobj)
        if rc != 0 or not os.path.isfile(dest):
            raise InstallMediaError("Extracting /%s from the ISO %s with %s failed (rc=%s): %s"
                                    % (rel, self.iso, self.tool, rc, (err or '').strip()[-500:]))

    def copy_to(self, rel, fileobj, workdir=None):
        if not self.exists(rel):
            raise NotFound(self.describe(rel), 'not in the ISO')
        tmpdir = tempfile.mkdtemp(prefix='.extract.', dir=workdir)
        try:
            dest = os.path.join(tmpdir, 'f')
            with open(dest, 'wb') as f:
                self._extract(rel, dest, f)
            with open(dest, 'rb') as f:
                return _stream(f, fileobj)
        finally:
            shutil.rmtree(tmpdir, ignore_errors=True)


def _run(cmd, stdout=None):
    try:
        proc = subprocess.Popen(cmd, stdout=stdout if stdout is not None else subprocess.PIPE,
                                stderr=subprocess.PIPE)
        out, err = proc.communicate()
    except OSError as exc:
        return 127, '', to_native(exc)
    return proc.returncode, to_text(out or b'', errors='surrogate_or_replace'), \
        to_text(err or b'', errors='surrogate_or_replace')


def _stream(src, fileobj):
    h = hashlib.sha256()
    size = 0
    while True:
        chunk = src.read(_CHUNK)
        if not chunk:
            break
        fileobj.write(chunk)
        h.update(chunk)
        size += len(chunk)
    return size, h.hexdigest()


def file_digest(path, algorithm='sha256'):
    """The hex digest of a file, read in chunks (install media and base images)."""
    h = hashlib.new(algorithm)
    with open(path, 'rb') as f:
        while True:
            chunk = f.read(_CHUNK)
            if not chunk:
                break
            h.update(chunk)
    return h.hexdigest()


def sha256_file(path):
    return file_digest(path, 'sha256')


# --------------------------------------------------------------------------------------------
# Cache
# --------------------------------------------------------------------------------------------

def cache_key(kind, source, arch):
    return hashlib.sha256(('%s\n%s\n%s' % (kind, source, arch)).encode('utf-8')).hexdigest()[:16]


def cache_path(cache_dir, kind, source, arch):
    return os.path.join(cache_dir or DEFAULT_CACHE_DIR, cache_key(kind, source, arch))


def read_manifest(directory):
    try:
        with open(os.path.join(directory, MANIFEST), 'r') as f:
            data = json.load(f)
    except (IOError, OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def cached_files_valid(directory, manifest):
    """True when the kernel and initrd in directory match the manifest (size and SHA-256)."""
    if not manifest or manifest.get('version') != MANIFEST_VERSION:
        return False
    for name in (KERNEL_NAME, INITRD_NAME):
        entry = manifest.get(name) or {}
        path = os.path.join(directory, name)
        try:
            if os.path.getsize(path) != entry.get('size'):
                return False
        except OSError:
            return False
        if sha256_file(path) != entry.get('sha256'):
            return False
    return True


def ensure_dir(path, mode=0o755):
    try:
        os.makedirs(path, mode)
    except OSError as exc:
        if exc.errno != errno.EEXIST or not os.path.isdir(path):
            raise InstallMediaError("Cannot create the cache directory %s: %s"
                                    % (path, to_native(exc)))


# --------------------------------------------------------------------------------------------
# Resolution
# --------------------------------------------------------------------------------------------

def _make_tree(kind, source, validate_certs, timeout, runner):
    if kind == 'url':
        return UrlTree(source, validate_certs=validate_certs, timeout=timeout)
    if kind == 'dir':
        return _DirTree(source)
    return _IsoTree(source, runner=runner)


def _candidates(tree, arch):
    """Candidates from .treeinfo (with its checksums) first, then the static layouts."""
    cands = []
    sums = {}
    for name in ('.treeinfo', 'treeinfo'):
        text = tree.read_small(name)
        if text is None:
            continue
        tree.treeinfo_text = text  # family/version for the installer's source argument
        parsed = parse_treeinfo(text, arch)
        if parsed:
            kernel, initrd, sums = parsed
            family = 'suse' if b'suse' in text.lower() else 'redhat'
            cands.append((family, kernel, initrd))
        break
    for c in layout_candidates(arch):
        if (c[1], c[2]) not in [(cand[1], cand[2]) for cand in cands]:
            cands.append(c)
    return cands, sums


def _not_found_message(location, tried, arch):
    lines = ["Cannot find an installer kernel and initrd for %s in install.location=%s. Paths "
             "tried:" % (arch, location)]
    for where, why in tried:
        lines.append('  %s (%s)' % (where, why))
    lines.append("Give the root of an install tree: RHEL/CentOS/Fedora/Rocky/Alma "
                 "(images/pxeboot/vmlinuz), Debian/Ubuntu netboot (.../dists/<suite>/main/"
                 "installer-<arch>/), openSUSE (boot/<arch>/loader/linux), or an installer ISO.")
    return '\n'.join(lines)


def find_layout(tree, arch, location):
    """(layout, kernel_rel, initrd_rel, checksums) for a local tree, without copying."""
    cands, sums = _candidates(tree, arch)
    tried = []
    for layout, krel, irel in cands:
        if not tree.exists(krel):
            tried.append((tree.describe(krel), 'missing'))
            continue
        if not tree.exists(irel):
            tried.append((tree.describe(irel), 'missing'))
            continue
        return layout, krel, irel, sums
    raise InstallMediaError(_not_found_message(location, tried, arch))


FETCH_PREFIX = '.fetch.'
LEGACY_FETCH_AGE = 3600  # a partial download of an older release, named without its pid


def fetch_tmp(directory):
    """(fd, path) of a partial download: .fetch.<pid>.XXXX, so that the next run can tell a
    dead run's leftover from a live run's download (remove_stale_fetches)."""
    remove_stale_fetches(directory)
    return tempfile.mkstemp(prefix='%s%d.' % (FETCH_PREFIX, os.getpid()), dir=directory)


def remove_stale_fetches(directory, now=None):
    """Remove the partial downloads of runs that died (killed mid-download): their pid is
    gone, or (an older release's name without a pid) they are older than an hour."""
    import time
    now = now or time.time()
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    removed = []
    for name in names:
        if not name.startswith(FETCH_PREFIX):
            continue
        path = os.path.join(directory, name)
        pid = name[len(FETCH_PREFIX):].split('.', 1)[0]
        if '.' in name[len(FETCH_PREFIX):] and pid.isdigit():
            stale = not os.path.exists('/proc/%s' % pid)
        else:
            try:
                stale = now - os.lstat(path).st_mtime > LEGACY_FETCH_AGE
            except OSError:
                continue
        if stale and os.path.isfile(path) and not os.path.islink(path):
            unlink_quietly(path)
            removed.append(path)
    return removed


def _fetch_one(tree, rel, directory, sums):
    fd, tmp = fetch_tmp(directory)
    try:
        with os.fdopen(fd, 'wb') as f:
            size, digest = tree.copy_to(rel, f, workdir=directory)
            f.flush()
            os.fsync(f.fileno())
        expected = _expected_sha256(sums, rel)
        if expected and expected != digest:
            raise InstallMediaError(
                "%s does not match the checksum in the tree's .treeinfo (sha256 %s, got %s); "
                "nothing was kept. The mirror may be out of sync: try again or another mirror."
                % (tree.describe(rel), expected, digest))
        return tmp, size, digest
    except Exception:
        unlink_quietly(tmp)
        raise


def _fetch_pair(tree, arch, location, directory):
    """Fetch the first candidate pair into temp files; return (layout, krel, irel, k, i)."""
    cands, sums = _candidates(tree, arch)
    tried = []
    for layout, krel, irel in cands:
        if tree.exists(krel) is False:
            tried.append((tree.describe(krel), 'missing'))
            continue
        if tree.exists(irel) is False:
            tried.append((tree.describe(irel), 'missing'))
            continue
        try:
            k = _fetch_one(tree, krel, directory, sums)
        except NotFound as nf:
            tried.append((nf.where, nf.why))
            continue
        try:
            i = _fetch_one(tree, irel, directory, sums)
        except NotFound as nf:
            unlink_quietly(k[0])
            tried.append((nf.where, nf.why))
            continue
        except Exception:
            unlink_quietly(k[0])
            raise
        return layout, krel, irel, k, i
    raise InstallMediaError(_not_found_message(location, tried, arch))


def resolve_location(location, arch='x86_64', cache_dir=None, check_mode=False,
                     validate_certs=True, timeout=30, runner=None):
    """Kernel and initrd for the install tree at location, cached on the host.

    Returns a dict: kernel, initrd (paths in the cache), layout, kind (url|dir|iso),
    source (canonical), cache (directory), fetched (something was downloaded or copied),
    iso (the ISO path for kind iso, else None).  In check mode nothing is fetched or written:
    a valid cache is reported as it is, otherwise the paths it would have and fetched=True.
    """
    kind, source = classify_location(location)
    directory = cache_path(cache_dir, kind, source, arch)
    result = {
        'kernel': os.path.join(directory, KERNEL_NAME),
        'initrd': os.path.join(directory, INITRD_NAME),
        'layout': None, 'kind': kind, 'source': source, 'cache': directory,
        'fetched': False, 'iso': source if kind == 'iso' else None,
    }
    manifest = read_manifest(directory)
    tree = None
    if manifest and manifest.get('source') == source and manifest.get('arch') == arch \
            and cached_files_valid(directory, manifest):
        fresh = True
        if kind != 'url':
            tree = _make_tree(kind, source, validate_certs, timeout, runner) \
                if kind == 'dir' else None
            try:
                if kind == 'dir':
                    sig = [tree.signature(manifest['kernel']['from']),
                           tree.signature(manifest['initrd']['from'])]
                else:
                    st = os.stat(source)
                    sig = [[st.st_size, int(st.st_mtime * 1e9)]] * 2
            except (OSError, KeyError):
                sig = None
            fresh = sig == manifest.get('signature')
        if fresh:
            result['layout'] = manifest.get('layout')
            result['release'] = manifest.get('release')
            return result

    tree = _make_tree(kind, source, validate_certs, timeout, runner)
    if check_mode:
        if kind != 'url':
            result['layout'] = find_layout(tree, arch, location)[0]
            result['release'] = _source_arg.treeinfo_release(getattr(tree, 'treeinfo_text', None))
        result['fetched'] = True
        return result

    ensure_dir(os.path.dirname(directory))
    created = not os.path.isdir(directory)
    ensure_dir(directory)
    try:
        layout, krel, irel, k, i = _fetch_pair(tree, arch, location, directory)
    except Exception:
        if created:
            shutil.rmtree(directory, ignore_errors=True)
        raise
    try:
        sig = None
        if kind != 'url':
            sig = [tree.signature(krel), tree.signature(irel)]
        for tmp in (k[0], i[0]):
            os.chmod(tmp, 0o644)
        os.rename(k[0], result['kernel'])
        os.rename(i[0], result['initrd'])
    except Exception:
        unlink_quietly(k[0])
        unlink_quietly(i[0])
        raise
    manifest = {
        'version': MANIFEST_VERSION, 'source': source, 'arch': arch, 'kind': kind,
        'layout': layout, 'signature': sig,
        'release': _source_arg.treeinfo_release(getattr(tree, 'treeinfo_text', None)),
        KERNEL_NAME: {'from': krel, 'size': k[1], 'sha256': k[2]},
        INITRD_NAME: {'from': irel, 'size': i[1], 'sha256': i[2]},
    }
    write_atomic(directory, MANIFEST, json.dumps(manifest, indent=1, sort_keys=True).encode())
    result['layout'] = layout
    result['release'] = manifest['release']
    result['fetched'] = True
    return result
