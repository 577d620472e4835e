"""Unit tests of _install/media.py: layouts, .treeinfo, the cache, and fetching from real
sources (a temporary directory, an HTTP server on 127.0.0.1 in a thread, an ISO built with
xorriso). Nothing is mocked except a missing ISO tool, which cannot be simulated otherwise."""
import hashlib
import json
import os
import shutil
import subprocess

import pytest

from ansible_collections.kvmops.hypervisor.plugins.module_utils._install import media as m
from support.http_server import TreeServer

KERNEL = b'fake-kernel-' * 1000
INITRD = b'fake-initrd-' * 500


def _write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'wb') as f:
        f.write(data)


def rhel_tree(root, treeinfo=True, sums=None):
    _write(os.path.join(root, 'images/pxeboot/vmlinuz'), KERNEL)
    _write(os.path.join(root, 'images/pxeboot/initrd.img'), INITRD)
    if treeinfo:
        text = ('[general]\nfamily = Rocky Linux\nversion = 9.4\narch = x86_64\n'
                '[images-x86_64]\nkernel = images/pxeboot/vmlinuz\n'
                'initrd = images/pxeboot/initrd.img\n')
        if sums:
            text += '[checksums]\n' + ''.join('%s = sha256:%s\n' % kv for kv in sums.items())
        _write(os.path.join(root, '.treeinfo'), text.encode())
    return root


def debian_tree(root, distro='debian', arch='amd64'):
    base = os.path.join(root, 'dists/bookworm/main/installer-%s' % arch)
    d = os.path.join(base, 'current/images/netboot/%s-installer/%s' % (distro, arch))
    _write(os.path.join(d, 'linux'), KERNEL)
    _write(os.path.join(d, 'initrd.gz'), INITRD)
    _write(os.path.join(base, 'current/images/MANIFEST'), b'%s netboot\n' % distro.encode())
    return base


# ---------------------------------------------------------------- layouts and .treeinfo

def test_layout_candidates_cover_the_known_families():
    pairs = [(c[1], c[2]) for c in m.layout_candidates('x86_64')]
    assert pairs[0] == ('images/pxeboot/vmlinuz', 'images/pxeboot/initrd.img')
    assert ('current/images/netboot/debian-installer/amd64/linux',
            'current/images/netboot/debian-installer/amd64/initrd.gz') in pairs
    assert ('current/legacy-images/netboot/ubuntu-installer/amd64/linux',
            'current/legacy-images/netboot/ubuntu-installer/amd64/initrd.gz') in pairs
    assert ('boot/x86_64/loader/linux', 'boot/x86_64/loader/initrd') in pairs
    assert ('install.amd/vmlinuz', 'install.amd/initrd.gz') in pairs
    assert len(pairs) == len(set(pairs))


def test_layout_candidates_use_debian_arch_names():
    pairs = [c[1] for c in m.layout_candidates('aarch64')]
    assert 'current/images/netboot/debian-installer/arm64/linux' in pairs
    assert 'boot/aarch64/loader/linux' in pairs
    assert 'current/images/netboot/debian-installer/ppc64el/vmlinux' in [
        c[1] for c in m.layout_candidates('ppc64le')]


def test_treeinfo_images_and_checksums():
    text = (b'[header]\ntype = productmd.treeinfo\n[general]\nfamily = CentOS\narch = x86_64\n'
            b'[tree]\narch = x86_64\n[images-x86_64]\nkernel = images/pxeboot/vmlinuz\n'
            b'initrd = images/pxeboot/initrd.img\nboot.iso = images/boot.iso\n'
            b'[checksums]\nimages/pxeboot/vmlinuz = sha256:ABCDEF\nEFI/BOOT/BOOTX64.EFI = sha256:01\n')
    kernel, initrd, sums = m.parse_treeinfo(text, 'x86_64')
    assert (kernel, initrd) == ('images/pxeboot/vmlinuz', 'images/pxeboot/initrd.img')
    assert m._expected_sha256(sums, kernel) == 'abcdef'
    assert m._expected_sha256(sums, initrd) is None
    assert m._expected_sha256(sums, 'EFI/BOOT/BOOTX64.EFI') == '01'


def test_treeinfo_falls_back_to_its_own_arch_and_rejects_escapes():
    text = b'[general]\narch = s390x\n[images-s390x]\nkernel = images/kernel.img\ninitrd = images/initrd.img\n'
    assert m.parse_treeinfo(text, 'x86_64')[:2] == ('images/kernel.img', 'images/initrd.img')
    evil = b'[images-x86_64]\nkernel = ../../etc/shadow\ninitrd = a\n'
    assert m.parse_treeinfo(evil, 'x86_64') is None
    assert m.parse_treeinfo(b'not an ini [', 'x86_64') is None
    assert m.parse_treeinfo(b'[general]\nfamily = x\n', 'x86_64') is None


# ---------------------------------------------------------------- classifying a location

def test_classify_location(tmp_path):
    assert m.classify_location('http://mirror/centos/7/os/x86_64') == \
        ('url', 'http://mirror/centos/7/os/x86_64/')
    assert m.classify_location('FTP://h/x/')[0] == 'url'
    assert m.classify_location('file://%s' % tmp_path) == ('dir', str(tmp_path))
    iso = tmp_path / 'x.iso'
    iso.write_bytes(b'\0' * 32769 + b'CD001' + b'\0' * 100)
    assert m.classify_location(str(iso)) == ('iso', str(iso))


@pytest.mark.parametrize('loc,words', [
    ('nfs://server/export', ['nfs', 'mount the share']),
    ('relative/tree', ['absolute path']),
    ('/nonexistent/kvmops/tree', ['does not exist']),
    ('', ['URL']),
])
def test_classify_location_rejects_with_a_fix(loc, words):
    with pytest.raises(m.InstallMediaError) as exc:
        m.classify_location(loc)
    for w in words:
        assert w in str(exc.value)


def test_a_file_that_is_not_an_iso_is_rejected(tmp_path):
    f = tmp_path / 'kernel'
    f.write_bytes(b'x' * 40000)
    with pytest.raises(m.InstallMediaError) as exc:
        m.classify_location(str(f))
    assert 'not an ISO 9660 image' in str(exc.value)


# ---------------------------------------------------------------- local directories

def test_directory_check_mode_writes_nothing_then_real_then_cached(tmp_path):
    tree = rhel_tree(str(tmp_path / 'tree'))
    cache = str(tmp_path / 'cache')
    r = m.resolve_location(tree, cache_dir=cache, check_mode=True)
    assert r['fetched'] and r['layout'] == 'redhat'
    assert not os.path.exists(cache)

    r = m.resolve_location(tree, cache_dir=cache)
    assert r['fetched'] and r['kind'] == 'dir'
    assert open(r['kernel'], 'rb').read() == KERNEL
    assert open(r['initrd'], 'rb').read() == INITRD
    assert oct(os.stat(r['kernel']).st_mode & 0o777) == '0o644'
    manifest = json.load(open(os.path.join(r['cache'], 'manifest.json')))
    assert manifest['kernel']['sha256'] == hashlib.sha256(KERNEL).hexdigest()
    assert manifest['initrd']['size'] == len(INITRD)
    assert [n for n in os.listdir(r['cache']) if n.startswith('.')] == []

    mtime = os.stat(r['kernel']).st_mtime_ns
    again = m.resolve_location(tree, cache_dir=cache)
    assert not again['fetched'] and again['kernel'] == r['kernel']
    assert os.stat(r['kernel']).st_mtime_ns == mtime
    assert not m.resolve_location(tree, cache_dir=cache, check_mode=True)['fetched']


def test_a_changed_source_or_damaged_cache_is_fetched_again(tmp_path):
    tree = rhel_tree(str(tmp_path / 'tree'))
    cache = str(tmp_path / 'cache')
    r = m.resolve_location(tree, cache_dir=cache)
    _write(os.path.join(tree, 'images/pxeboot/initrd.img'), INITRD + b'new')
    r2 = m.resolve_location(tree, cache_dir=cache)
    assert r2['fetched'] and open(r2['initrd'], 'rb').read() == INITRD + b'new'
    # Same size, other bytes: the checksum catches it.
    with open(r['kernel'], 'r+b') as f:
        f.write(b'X')
    r3 = m.resolve_location(tree, cache_dir=cache)
    assert r3['fetched'] and open(r3['kernel'], 'rb').read() == KERNEL


def test_cache_is_keyed_by_source_and_arch(tmp_path):
    a = rhel_tree(str(tmp_path / 'a'))
    b = rhel_tree(str(tmp_path / 'b'))
    cache = str(tmp_path / 'cache')
    ra = m.resolve_location(a, cache_dir=cache)
    rb = m.resolve_location(b, cache_dir=cache)
    assert ra['cache'] != rb['cache']
    assert m.cache_path(cache, 'dir', a, 'x86_64') != m.cache_path(cache, 'dir', a, 'aarch64')
    assert m.cache_path(None, 'url', 'http://x/', 'x86_64').startswith(m.DEFAULT_CACHE_DIR + '/')


@pytest.mark.parametrize('sub', ['', 'dists/bookworm/main', 'dists/bookworm/main/installer-amd64/current',
                                 'dists/bookworm/main/installer-amd64/current/images',
                                 'dists/bookworm/main/installer-amd64/current/images/netboot',
                                 'dists/bookworm/main/installer-amd64/current/images/netboot/debian-installer/amd64'])
def test_debian_tree_one_level_up_or_down(tmp_path, sub):
    debian_tree(str(tmp_path))
    loc = os.path.join(str(tmp_path), sub) if sub else os.path.join(
        str(tmp_path), 'dists/bookworm/main/installer-amd64')
    r = m.resolve_location(loc, cache_dir=str(tmp_path / 'cache'))
    assert r['layout'] == 'debian'
    assert open(r['kernel'], 'rb').read() == KERNEL


def test_ubuntu_legacy_and_opensuse_layouts(tmp_path):
    u = str(tmp_path / 'ubuntu')
    d = os.path.join(u, 'current/legacy-images/netboot/ubuntu-installer/amd64')
    _write(os.path.join(d, 'linux'), KERNEL)
    _write(os.path.join(d, 'initrd.gz'), INITRD)
    assert m.resolve_location(u, cache_dir=str(tmp_path / 'c'))['layout'] == 'ubuntu'
    s = str(tmp_path / 'suse')
    _write(os.path.join(s, 'boot/x86_64/loader/linux'), KERNEL)
    _write(os.path.join(s, 'boot/x86_64/loader/initrd'), INITRD)
    assert m.resolve_location(s, cache_dir=str(tmp_path / 'c'))['layout'] == 'suse'


def test_kernel_without_initrd_is_not_a_layout(tmp_path):
    tree = str(tmp_path / 'tree')
    _write(os.path.join(tree, 'images/pxeboot/vmlinuz'), KERNEL)
    cache = str(tmp_path / 'cache')
    with pytest.raises(m.InstallMediaError) as exc:
        m.resolve_location(tree, cache_dir=cache)
    msg = str(exc.value)
    assert os.path.join(tree, 'images/pxeboot/initrd.img') + ' (missing)' in msg
    assert os.path.join(tree, 'boot/x86_64/loader/linux') + ' (missing)' in msg
    # Nothing half-made stays behind.
    assert os.listdir(cache) == []


def test_no_layout_in_check_mode_fails_too(tmp_path):
    with pytest.raises(m.InstallMediaError) as exc:
        m.resolve_location(str(tmp_path), cache_dir=str(tmp_path / 'c'), check_mode=True)
    assert 'Paths tried' in str(exc.value)
    assert not os.path.exists(str(tmp_path / 'c'))


def test_treeinfo_checksum_mismatch_keeps_nothing(tmp_path):
    tree = rhel_tree(str(tmp_path / 'tree'), sums={'images/pxeboot/vmlinuz': 'ab' * 32})
    cache = str(tmp_path / 'cache')
    with pytest.raises(m.InstallMediaError) as exc:
        m.resolve_location(tree, cache_dir=cache)
    assert 'does not match the checksum' in str(exc.value)
    assert not os.path.exists(cache) or os.listdir(cache) == []


def test_treeinfo_checksum_match_is_accepted(tmp_path):
    tree = rhel_tree(str(tmp_path / 'tree'), sums={
        'images/pxeboot/vmlinuz': hashlib.sha256(KERNEL).hexdigest(),
        'images/pxeboot/initrd.img': hashlib.sha256(INITRD).hexdigest()})
    assert m.resolve_location(tree, cache_dir=str(tmp_path / 'c'))['fetched']


# ---------------------------------------------------------------- HTTP on 127.0.0.1

@pytest.fixture
def serve():
    servers = []

    def start(root, truncate=None):
        s = TreeServer(root, truncate)
        servers.append(s)
        return s
    yield start
    for s in servers:
        s.close()


def test_url_fetch_then_a_rerun_makes_no_request(tmp_path, serve):
    rhel_tree(str(tmp_path / 'www' / 'rhel'))
    srv = serve(str(tmp_path / 'www'))
    cache = str(tmp_path / 'cache')
    loc = srv.url + 'rhel'
    r = m.resolve_location(loc, cache_dir=cache, check_mode=True)
    assert r['fetched'] and srv.requests == [] and not os.path.exists(cache)
    r = m.resolve_location(loc, cache_dir=cache)
    assert r['fetched'] and r['layout'] == 'redhat'
    assert '/rhel/images/pxeboot/vmlinuz' in srv.requests
    assert open(r['initrd'], 'rb').read() == INITRD
    n = len(srv.requests)
    assert not m.resolve_location(loc, cache_dir=cache)['fetched']
    assert not m.resolve_location(loc + '/', cache_dir=cache, check_mode=True)['fetched']
    assert len(srv.requests) == n


def test_url_debian_tree(tmp_path, serve):
    debian_tree(str(tmp_path / 'www'))
    srv = serve(str(tmp_path / 'www'))
    r = m.resolve_location(srv.url + 'dists/bookworm/main/installer-amd64/',
                           cache_dir=str(tmp_path / 'c'))
    assert r['layout'] == 'debian' and open(r['kernel'], 'rb').read() == KERNEL


def test_url_without_layout_names_every_url_tried(tmp_path, serve):
    os.makedirs(str(tmp_path / 'www' / 'empty'))
    srv = serve(str(tmp_path / 'www'))
    with pytest.raises(m.InstallMediaError) as exc:
        m.resolve_location(srv.url + 'empty', cache_dir=str(tmp_path / 'c'))
    msg = str(exc.value)
    assert srv.url + 'empty/images/pxeboot/vmlinuz (HTTP 404)' in msg
    assert srv.url + 'empty/current/images/netboot/debian-installer/amd64/linux (HTTP 404)' in msg
    assert srv.url + 'empty/boot/x86_64/loader/linux (HTTP 404)' in msg


def test_partial_download_is_never_used(tmp_path, serve):
    rhel_tree(str(tmp_path / 'www'), treeinfo=False)
    srv = serve(str(tmp_path / 'www'), truncate='initrd.img')
    cache = str(tmp_path / 'cache')
    with pytest.raises(m.InstallMediaError) as exc:
        m.resolve_location(srv.url, cache_dir=cache)
    assert 'stopped after 7 of 999999 bytes' in str(exc.value)
    assert srv.url + 'images/pxeboot/initrd.img' in str(exc.value)
    assert not os.path.exists(cache) or os.listdir(cache) == []


def test_unreachable_server_says_so(tmp_path):
    import socket
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
    s.close()
    with pytest.raises(m.InstallMediaError) as exc:
        m.resolve_location('http://127.0.0.1:%d/tree/' % port, cache_dir=str(tmp_path / 'c'))
    assert 'Cannot reach http://127.0.0.1:%d/tree/' % port in str(exc.value)


# ---------------------------------------------------------------- ISO images

needs_xorriso = pytest.mark.skipif(not shutil.which('xorriso'), reason='xorriso not installed')


@needs_xorriso
def test_iso_holding_a_tree(tmp_path):
    tree = rhel_tree(str(tmp_path / 'tree'))
    iso = str(tmp_path / 'tree.iso')
    subprocess.check_call(['xorriso', '-as', 'mkisofs', '-quiet', '-o', iso, '-J', '-R', tree],
                          stderr=subprocess.DEVNULL)
    cache = str(tmp_path / 'cache')
    r = m.resolve_location(iso, cache_dir=cache, check_mode=True)
    assert r['kind'] == 'iso' and r['layout'] == 'redhat' and not os.path.exists(cache)
    r = m.resolve_location(iso, cache_dir=cache)
    assert r['iso'] == iso and open(r['kernel'], 'rb').read() == KERNEL
    assert [n for n in os.listdir(r['cache']) if n.startswith('.')] == []
    calls = []
    again = m.resolve_location(iso, cache_dir=cache, runner=lambda *a, **k: calls.append(a))
    assert not again['fetched'] and calls == []  # cache valid: the ISO is not even opened


@needs_xorriso
@pytest.mark.parametrize('tool', ['xorriso', 'bsdtar', 'isoinfo'])
def test_iso_readers_extract_the_same_tree(tmp_path, monkeypatch, tool):
    # Each reader for real when it is installed (bsdtar: libarchive-tools, isoinfo:
    # genisoimage); the choice among installed ones is forced, nothing is faked.
    if not shutil.which(tool):
        pytest.skip('%s not installed' % tool)
    tree = rhel_tree(str(tmp_path / 'tree'))
    iso = str(tmp_path / 'tree.iso')
    subprocess.check_call(['xorriso', '-as', 'mkisofs', '-quiet', '-o', iso, '-J', '-R', tree],
                          stderr=subprocess.DEVNULL)
    monkeypatch.setattr(m, 'iso_tool', lambda: tool)
    r = m.resolve_location(iso, cache_dir=str(tmp_path / 'cache'))
    assert r['layout'] == 'redhat'
    assert open(r['kernel'], 'rb').read() == KERNEL and open(r['initrd'], 'rb').read() == INITRD


def test_iso_without_a_reader_says_what_to_install(tmp_path, monkeypatch):
    # Simulated: this machine has xorriso, so its absence can only be faked.
    iso = tmp_path / 'x.iso'
    iso.write_bytes(b'\0' * 32769 + b'CD001' + b'\0' * 100)
    monkeypatch.setattr(m, 'iso_tool', lambda: None)
    with pytest.raises(m.InstallMediaError) as exc:
        m.resolve_location(str(iso), cache_dir=str(tmp_path / 'c'))
    assert 'xorriso, bsdtar or isoinfo' in str(exc.value) and 'apt install xorriso' in str(exc.value)


def test_iso_listing_parsers():
    assert m.parse_iso_listing('xorriso', "'/.treeinfo'\n'/images/pxeboot/vmlinuz'\n") == {
        '.treeinfo', 'images/pxeboot/vmlinuz'}
    assert m.parse_iso_listing('bsdtar', '.\nimages/\nimages/pxeboot/vmlinuz\n') == {
        'images/pxeboot/vmlinuz'}
    assert m.parse_iso_listing('isoinfo', '/images\n/images/pxeboot/vmlinuz\n') == {
        'images', 'images/pxeboot/vmlinuz'}
    assert m.iso_extract_command('bsdtar', '/x.iso', 'a/b', '/d') == ['bsdtar', '-xOf', '/x.iso', 'a/b']
    assert m.iso_extract_command('isoinfo', '/x.iso', 'a/b', '/d')[-2:] == ['-x', '/a/b']
    assert m.iso_extract_command('xorriso', '/x.iso', 'a/b', '/d')[-3:] == ['-extract', '/a/b', '/d']
