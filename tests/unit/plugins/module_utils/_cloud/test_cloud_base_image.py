"""Unit tests of the base-image cache against a real HTTP server on 127.0.0.1 (no libvirt)."""
import hashlib
import os

import pytest

from ansible_collections.kvmops.hypervisor.plugins.module_utils._common.errors import KvmopsError
from ansible_collections.kvmops.hypervisor.plugins.module_utils._cloud import base_image as bi
from support.http_server import TreeServer

IMAGE = b'QFI\xfb' + os.urandom(200000)
SHA256 = hashlib.sha256(IMAGE).hexdigest()
SHA512 = hashlib.sha512(IMAGE).hexdigest()


@pytest.fixture
def server(tmp_path):
    www = tmp_path / 'www'
    www.mkdir()
    (www / 'base.qcow2').write_bytes(IMAGE)
    (www / 'SHA256SUMS').write_text('%s  other.img\n%s *base.qcow2\n' % ('1' * 64, SHA256))
    (www / 'SHA512SUMS').write_text('SHA512 (base.qcow2) = %s\n' % SHA512)
    s = TreeServer(str(www))
    yield s
    s.close()


def test_parse_checksum():
    assert bi.parse_checksum('sha256:' + 'A' * 64) == ('sha256', 'a' * 64, None)
    assert bi.parse_checksum('sha512:https://x/SHA512SUMS') == ('sha512', None,
                                                                'https://x/SHA512SUMS')
    for bad in ('md5:' + '0' * 32, 'sha256:abc', 'deadbeef', None):
        with pytest.raises(KvmopsError):
            bi.parse_checksum(bad)


def test_fetch_once_verified_read_only_and_shared_between_checksum_forms(server, tmp_path):
    cache = str(tmp_path / 'cache')
    url = server.url + 'base.qcow2'
    res = bi.ensure(url, 'sha256:' + SHA256, cache_dir=cache)
    assert res['fetched'] and open(res['path'], 'rb').read() == IMAGE
    # root and QEMU's group, not the world (issue 26); 0444 when not root
    assert os.stat(res['path']).st_mode & 0o777 == (0o440 if os.geteuid() == 0 else 0o444)
    # the same image by its SHA256SUMS: same cache entry, the image is not fetched again
    res2 = bi.ensure(url, 'sha256:' + server.url + 'SHA256SUMS', cache_dir=cache)
    assert res2['path'] == res['path'] and not res2['fetched']
    assert server.requests.count('/base.qcow2') == 1
    # and from then on the checksum file is not fetched either
    n = len(server.requests)
    assert bi.planned_path(url, 'sha256:' + server.url + 'SHA256SUMS', cache) == res['path']
    assert not bi.ensure(url, 'sha256:' + server.url + 'SHA256SUMS', cache_dir=cache)['fetched']
    assert len(server.requests) == n


def test_sha512_bsd_sums_file(server, tmp_path):
    res = bi.ensure(server.url + 'base.qcow2', 'sha512:' + server.url + 'SHA512SUMS',
                    cache_dir=str(tmp_path / 'c'))
    assert res['fetched'] and res['digest'] == SHA512 and res['algorithm'] == 'sha512'


def test_wrong_checksum_caches_nothing(server, tmp_path):
    cache = tmp_path / 'cache'
    with pytest.raises(KvmopsError, match='does not match its checksum'):
        bi.ensure(server.url + 'base.qcow2', 'sha256:' + '0' * 64, cache_dir=str(cache))
    assert list(cache.iterdir()) == []


def test_check_mode_fetches_nothing(server, tmp_path):
    cache = tmp_path / 'cache'
    res = bi.ensure(server.url + 'base.qcow2', 'sha256:' + server.url + 'SHA256SUMS',
                    cache_dir=str(cache), check_mode=True)
    assert res['fetched'] and server.requests == [] and not cache.exists()


def test_cut_download_and_404_and_unreachable(server, tmp_path):
    cut = TreeServer(os.path.dirname(str(tmp_path / 'www' / 'x')), truncate='base.qcow2')
    try:
        with pytest.raises(KvmopsError, match='stopped after'):
            bi.ensure(cut.url + 'base.qcow2', 'sha256:' + SHA256, cache_dir=str(tmp_path / 'a'))
    finally:
        cut.close()
    assert not os.path.exists(str(tmp_path / 'a')) or os.listdir(str(tmp_path / 'a')) == []
    with pytest.raises(KvmopsError, match='does not exist'):
        bi.ensure(server.url + 'nope.qcow2', 'sha256:' + SHA256, cache_dir=str(tmp_path / 'b'))
    with pytest.raises(KvmopsError, match='lists no sha256 digest'):
        bi.ensure(server.url + 'nope.qcow2', 'sha256:' + server.url + 'SHA256SUMS',
                  cache_dir=str(tmp_path / 'b'))
    with pytest.raises(KvmopsError, match='Cannot reach'):
        bi.ensure('http://127.0.0.1:9/base.qcow2', 'sha256:' + SHA256,
                  cache_dir=str(tmp_path / 'b'), timeout=3)


def test_changed_cached_file_is_refused_never_replaced(server, tmp_path):
    cache = str(tmp_path / 'cache')
    url = server.url + 'base.qcow2'
    res = bi.ensure(url, 'sha256:' + SHA256, cache_dir=cache)
    os.chmod(res['path'], 0o644)
    st = os.stat(res['path'])  # before the write: its mtime is put back after it
    with open(res['path'], 'r+b') as f:
        f.write(b'XXXX')
    os.utime(res['path'], ns=(st.st_atime_ns, st.st_mtime_ns))
    # size and mtime still match: only the full check (before a new clone) notices
    assert bi.ensure(url, 'sha256:' + SHA256, cache_dir=cache)['fetched'] is False
    with pytest.raises(KvmopsError, match='never replaces'):
        bi.ensure(url, 'sha256:' + SHA256, cache_dir=cache, full=True)
    assert open(res['path'], 'rb').read(4) == b'XXXX'


def test_local_file_source(tmp_path):
    src = tmp_path / 'img.qcow2'
    src.write_bytes(IMAGE)
    res = bi.ensure(str(src), 'sha256:' + SHA256, cache_dir=str(tmp_path / 'c'))
    assert res['fetched'] and open(res['path'], 'rb').read() == IMAGE
    with pytest.raises(KvmopsError, match='Cannot read the base image'):
        bi.ensure(str(tmp_path / 'missing.qcow2'), 'sha256:' + SHA256,
                  cache_dir=str(tmp_path / 'd'))
