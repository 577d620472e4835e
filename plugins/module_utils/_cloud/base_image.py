# -*- coding: utf-8 -*-
# Copyright: kvmops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Base (cloud) images fetched from a URL, verified and cached once per host.

Private to the collection: no API promise.

A base image is downloaded once into ``<cache_dir>/<key>/<file name>`` (key: the URL and the
checksum as given), beside the install-media cache, using the install-media code
(_install/media.py: its URL opener, atomic write and directory helpers).  The download goes
to a temporary file in that directory and is renamed into place only once its checksum
matched, so a wrong checksum or a cut download leaves nothing in the cache.  The cached file
is made read-only (0444): guests use it only as the backing file of their qcow2 overlays,
and an overlay's base must never change under it.  For the same reason a cached base is
never replaced: a new checksum (a new image version) gets a new cache entry, existing
clones keep theirs.

Several module runs (parallel guests) share one download through a lock file.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import fcntl
import hashlib
import json
import os
import re

from ansible_collections.kvmops.hypervisor.plugins.module_utils._common.errors import KvmopsError
from ansible_collections.kvmops.hypervisor.plugins.module_utils._common.files import unlink_quietly, write_atomic
from ansible_collections.kvmops.hypervisor.plugins.module_utils._install import media
from ansible_collections.kvmops.hypervisor.plugins.module_utils._cloud import seed_store as _store

DEFAULT_CACHE_DIR = os.path.join(os.path.dirname(media.DEFAULT_CACHE_DIR), 'kvmops-base')
ALGORITHMS = ('sha256', 'sha512')
MANIFEST = 'manifest.json'
MANIFEST_VERSION = 1
_HEX = {'sha256': 64, 'sha512': 128}
_CHUNK = 1024 * 1024


def parse_checksum(value, option='base_image.checksum'):
    """('sha256'|'sha512', hex digest or None, sums URL or None) from 'ALG:HEX' / 'ALG:URL'
    (ansible.builtin.get_url's checksum format)."""
    if not value or ':' not in str(value):
        raise KvmopsError("%s=%r must be ALGORITHM:DIGEST or ALGORITHM:URL of a checksum file "
                          "(like get_url), e.g. sha256:9f86d08... or "
                          "sha512:https://cloud.debian.org/images/cloud/bookworm/latest/"
                          "SHA512SUMS; algorithms: %s." % (option, value, ', '.join(ALGORITHMS)))
    alg, rest = str(value).split(':', 1)
    alg = alg.strip().lower()
    rest = rest.strip()
    if alg not in ALGORITHMS:
        raise KvmopsError("%s uses %r; use one of %s (weaker digests do not protect an image "
                          "a guest boots from)." % (option, alg, ', '.join(ALGORITHMS)))
    if re.match(r'^(https?|ftp|file)://', rest, re.I):
        return alg, None, rest
    if not re.match(r'^[0-9a-fA-F]{%d}$' % _HEX[alg], rest):
        raise KvmopsError("%s: %r is not a %s digest (%d hex digits) nor a URL of a checksum "
                          "file." % (option, rest, alg, _HEX[alg]))
    return alg, rest.lower(), None


def parse_sums(text, name):
    """The digest for file name in a SHA256SUMS/SHA512SUMS file (GNU 'HEX  name' or
    'HEX *name', or BSD 'SHA256 (name) = HEX'); None when it is not listed."""
    if isinstance(text, bytes):
        text = text.decode('utf-8', 'replace')
    for line in text.splitlines():
        line = line.strip()
        m = re.match(r'^([0-9a-fA-F]{64,128})\s+\*?(.+)$', line)
        if m and os.path.basename(m.group(2).strip()) == name:
            return m.group(1).lower()
        m = re.match(r'^SHA(256|512)\s*\((.+)\)\s*=\s*([0-9a-fA-F]+)$', line)
        if m and os.path.basename(m.group(2).strip()) == name:
            return m.group(3).lower()
    return None


def file_digest(path, algorithm):
    return media.file_digest(path, algorithm)


def _file_name(url):
    name = os.path.basename(url.split('?', 1)[0].split('#', 1)[0].rstrip('/'))
    name = re.sub(r'[^A-Za-z0-9._+-]', '_', name) or 'image'
    return name if not name.startswith('.') else 'image' + name


def cache_entry(url, digest_spec, cache_dir=None):
    """(directory, image path) of a base image in the cache (nothing is touched).
    digest_spec is 'ALG:HEXDIGEST': the same image from the same URL is cached once,
    whether its checksum was given as a digest or as a checksum-file URL."""
    key = hashlib.sha256(('%s\n%s' % (url, digest_spec)).encode('utf-8')).hexdigest()[:16]
    directory = os.path.join(cache_dir or DEFAULT_CACHE_DIR, key)
    return directory, os.path.join(directory, _file_name(url))


def planned_path(url, checksum, cache_dir=None):
    """The cache path known without the network: final for ALG:DIGEST; for ALG:URL the
    entry an earlier run resolved it to, else a provisional path (replaced once fetched)."""
    alg, digest, _sums = parse_checksum(checksum)
    if digest:
        return cache_entry(url, '%s:%s' % (alg, digest), cache_dir)[1]
    found = find_by_checksum(url, checksum, cache_dir)
    if found:
        return found[1]
    return cache_entry(url, checksum, cache_dir)[1]


def _read_manifest(directory):
    try:
        with open(os.path.join(directory, MANIFEST)) as f:
            data = json.load(f)
    except (IOError, OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get('version') == MANIFEST_VERSION else None


def find_by_checksum(url, checksum, cache_dir=None):
    """(directory, path, manifest) of a cache entry of url that checksum already resolved
    to (a checksum-file URL is fetched once, not on every run), or None."""
    root = cache_dir or DEFAULT_CACHE_DIR
    try:
        names = sorted(os.listdir(root))
    except OSError:
        return None
    for name in names:
        directory = os.path.join(root, name)
        m = _read_manifest(directory)
        if m and m.get('url') == url and checksum in (m.get('checksums') or []):
            return directory, os.path.join(directory, _file_name(url)), m
    return None


def _valid(directory, path, manifest, full=False):
    """manifest when the cached file matches it (size and mtime; full: the digest too)."""
    if not manifest:
        return None
    try:
        st = os.stat(path)
    except OSError:
        return None
    if st.st_size != manifest.get('size') or int(st.st_mtime) != manifest.get('mtime'):
        return None
    if full and file_digest(path, manifest['algorithm']) != manifest['digest']:
        return None
    return manifest


def cached(url, digest_spec, cache_dir=None, full=False):
    """The manifest of a valid cached base image for url and 'ALG:DIGEST', or None. full=True
    re-hashes the file (before a new clone is made from it); otherwise size and mtime must
    match the manifest."""
    directory, path = cache_entry(url, digest_spec, cache_dir)
    manifest = _read_manifest(directory)
    if not manifest or manifest.get('url') != url or \
            '%s:%s' % (manifest.get('algorithm'), manifest.get('digest')) != digest_spec:
        return None
    return _valid(directory, path, manifest, full)


class _HashingWriter(object):
    """A file object that also hashes what goes through it (media's copy_to streams into it)."""

    def __init__(self, fileobj, algorithm):
        self.fileobj = fileobj
        self.hash = hashlib.new(algorithm)

    def write(self, data):
        self.hash.update(data)
        return self.fileobj.write(data)


class _Source(object):
    """A URL (through media's opener) or a local file (file:// or an absolute path)."""

    def __init__(self, url, validate_certs=True, timeout=30):
        self.url = url
        self.local = None
        if url.startswith('file://'):
            self.local = url[len('file://'):]
        elif url.startswith('/'):
            self.local = url
        else:
            self.tree = media.UrlTree('', validate_certs=validate_certs, timeout=timeout)

    def read_small(self, url):
        if url.startswith('file://') or url.startswith('/'):
            path = url[len('file://'):] if url.startswith('file://') else url
            try:
                with open(path, 'rb') as f:
                    return f.read(1024 * 1024)
            except (IOError, OSError) as exc:
                raise KvmopsError("Cannot read the checksum file %s: %s." % (url, exc))
        data = self.tree.read_small(url)
        if data is None:
            raise KvmopsError("The checksum file %s does not exist (HTTP 404); fix the "
                              "checksum URL." % url)
        return data

    def copy_to(self, fileobj):
        if self.local is not None:
            try:
                with open(self.local, 'rb') as src:
                    while True:
                        chunk = src.read(_CHUNK)
                        if not chunk:
                            break
                        fileobj.write(chunk)
            except (IOError, OSError) as exc:
                raise KvmopsError("Cannot read the base image %s: %s. Fix base_image.url."
                                  % (self.local, exc))
            return
        try:
            self.tree.copy_to(self.url, fileobj)
        except media.NotFound:
            raise KvmopsError("The base image %s does not exist (HTTP 404); fix "
                              "base_image.url." % self.url)


def expected_digest(url, checksum, source):
    alg, digest, sums_url = parse_checksum(checksum)
    if digest:
        return alg, digest
    found = parse_sums(source.read_small(sums_url), _file_name(url))
    if not found or len(found) != _HEX[alg]:
        raise KvmopsError("The checksum file %s lists no %s digest for %s; check that it "
                          "belongs to this image (and the algorithm prefix)."
                          % (sums_url, alg, _file_name(url)))
    return alg, found


def _remember_checksum(directory, manifest, checksum):
    if checksum in manifest.get('checksums', []):
        return
    manifest = dict(manifest, checksums=sorted(set(manifest.get('checksums', []) + [checksum])))
    write_atomic(directory, MANIFEST, json.dumps(manifest, indent=1, sort_keys=True).encode())


def ensure(url, checksum, cache_dir=None, check_mode=False, validate_certs=True, timeout=30,
           full=False):
    """The base image for url, cached on the host. Returns a dict: path, cache, digest,
    algorithm, fetched (downloaded by this call; in check mode: would be). full=True verifies
    the digest of an already cached file too (before a clone is made from it)."""
    alg, digest, sums_url = parse_checksum(checksum)
    result = {'url': url, 'path': planned_path(url, checksum, cache_dir), 'fetched': False}
    source = _Source(url, validate_certs=validate_certs, timeout=timeout)
    if digest is None:
        found = find_by_checksum(url, checksum, cache_dir)
        if found and _valid(found[0], found[1], found[2]):
            digest = found[2]['digest']
        elif check_mode:
            result.update(fetched=True, cache=os.path.dirname(result['path']))
            return result
        else:
            alg, digest = expected_digest(url, checksum, source)
    digest_spec = '%s:%s' % (alg, digest)
    directory, path = cache_entry(url, digest_spec, cache_dir)
    result.update(path=path, cache=directory, digest=digest, algorithm=alg)
    manifest = cached(url, digest_spec, cache_dir, full=full)
    if manifest:
        if not check_mode:
            _remember_checksum(directory, manifest, checksum)
        return result
    if check_mode:
        result['fetched'] = True
        return result
    media.ensure_dir(os.path.dirname(directory))
    media.ensure_dir(directory)
    lock_fd = os.open(os.path.join(directory, '.lock'), os.O_CREAT | os.O_RDWR, 0o600)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX)
        manifest = cached(url, digest_spec, cache_dir, full=full)  # another run fetched it
        if manifest:
            _remember_checksum(directory, manifest, checksum)
            return result
        if os.path.exists(path):
            raise KvmopsError(
                "%s exists but does not match its manifest (changed on disk, or left by an "
                "older tool). The module never replaces a base image that clones may use: "
                "check the clones, then remove %s yourself so it is fetched again."
                % (path, directory))
        fd, tmp = media.fetch_tmp(directory)
        try:
            with os.fdopen(fd, 'wb') as f:
                writer = _HashingWriter(f, alg)
                source.copy_to(writer)
                f.flush()
                os.fsync(f.fileno())
            got = writer.hash.hexdigest()
            if got != digest:
                raise KvmopsError(
                    "The base image from %s does not match its checksum (%s %s expected, got "
                    "%s); nothing was cached. Fix base_image.checksum, or the mirror serves a "
                    "different image than you expect." % (url, alg, digest, got))
            # like the seeds: root and QEMU's group, not the world (an image may hold
            # anything its maker put in it)
            # (a run that is not root, or finds no QEMU group, keeps the old 0444: QEMU
            # must read it)
            gid = _store._qemu_gid() if os.geteuid() == 0 else None
            if gid is not None:
                os.chown(tmp, 0, gid)
            os.chmod(tmp, 0o440 if gid is not None else 0o444)
            os.rename(tmp, path)
        except Exception:
            unlink_quietly(tmp)
            raise
        st = os.stat(path)
        manifest = {'version': MANIFEST_VERSION, 'url': url, 'checksums': [checksum],
                    'algorithm': alg, 'digest': digest, 'size': st.st_size,
                    'mtime': int(st.st_mtime)}
        write_atomic(directory, MANIFEST,
                     json.dumps(manifest, indent=1, sort_keys=True).encode())
        result['fetched'] = True
        return result
    finally:
        fcntl.flock(lock_fd, fcntl.LOCK_UN)
        os.close(lock_fd)
        _remove_if_empty(directory)


def _remove_if_empty(directory):
    """A failed first download leaves no cache entry behind (only the lock file was there)."""
    try:
        names = os.listdir(directory)
    except OSError:
        return
    if names == ['.lock']:
        try:
            os.unlink(os.path.join(directory, '.lock'))
            os.rmdir(directory)
        except OSError:
            pass
