"""Faults: the install-tree server cuts a download short or dies in the middle of one.

A server on 127.0.0.1 that promises more bytes than it sends (the shared TreeServer), and a
server in its own process killed with SIGKILL while it streams the 14 MB installer kernel.
Every time: a handled error naming the URL and the cause, nothing in the cache that a later
run could take for a complete file, and a plain re-run against a working server converges.
A cached file that no longer matches its manifest is fetched again, never used.
"""
import os
import signal
import subprocess
import sys

import pytest

from ansible_collections.kvmops.hypervisor.plugins.module_utils._install import media
from support import faults, paths
from support.ansible_run import run_module
from support.http_server import TreeServer

SUITE = 'make test'
TREES = '/var/cache/kvmops-testbed/tiny/trees'
INSTALLER_ARGS = 'console=tty0 console=ttyS0,115200 kvmops.installer=1'
SLOW_SERVER = os.path.join(paths.REPO, 'tests', 'support', 'slow_http_server.py')


def cache_files(cache):
    out = []
    for dirpath, dirnames, filenames in os.walk(cache):
        out += [os.path.relpath(os.path.join(dirpath, f), cache) for f in filenames]
    return sorted(out)


def guest(prefix, image_dir, location):
    return {'name': prefix + 'media', 'memory': 256, 'virt_type': 'qemu',
            'os_variant': 'linux', 'networks': [], 'graphics': {'type': 'none'},
            'disks': [{'path': os.path.join(image_dir, 'media.img'), 'size': 0.02}],
            'serial': os.path.join(image_dir, 'media.log'), 'wait': -1,
            'install': {'location': location, 'extra_args': INSTALLER_ARGS,
                        'cache_dir': os.path.join(image_dir, 'cache')}}


def test_truncated_download_is_never_cached(conn, prefix, image_dir, request):
    bad = TreeServer(TREES, truncate='vmlinuz')
    try:
        args = guest(prefix, image_dir, bad.url + 'rhel/')
        res = run_module('virt_install_domain', args)
    finally:
        bad.close()
    cache = args['install']['cache_dir']
    assert res.get('failed'), res
    assert 'stopped after 7 of 999999 bytes' in res['msg'] and 'vmlinuz' in res['msg'], res['msg']
    left = cache_files(cache) if os.path.isdir(cache) else []
    assert left == [], left
    assert not os.path.exists(args['disks'][0]['path'])
    with pytest.raises(Exception):
        conn.lookupByName(args['name'])
    # The re-run against a working server fetches and verifies (the install itself is
    # covered by test_virt_install_domain_install; here only the cache matters).
    good = TreeServer(TREES)
    try:
        again = media.resolve_location(good.url + 'rhel/', cache_dir=cache)
    finally:
        good.close()
    assert again['fetched'] and media.cached_files_valid(again['cache'],
                                                         media.read_manifest(again['cache']))
    faults.record('install-tree server serves a truncated file',
                  'HTTP 200 with Content-Length 999999, 7 bytes sent, then the connection '
                  'closed', 1, faults.short(res['msg']),
                  'nothing: no cache entry, no disk, no domain; the re-run fetched and verified',
                  SUITE, request.node.nodeid)


def _slow_server(root, mode='length', env=None):
    proc = subprocess.Popen([sys.executable, SLOW_SERVER, root, '262144', '0.1', mode],
                            stdout=subprocess.PIPE, universal_newlines=True,
                            env=dict(os.environ, **(env or {})))
    port = int(proc.stdout.readline())
    return proc, 'http://127.0.0.1:%d/' % port


def test_server_killed_mid_download(tmp_path, request):
    """The server process dies (SIGKILL) while the kernel streams: no cache entry."""
    cache = str(tmp_path / 'cache')
    proc, url = _slow_server(TREES)
    try:
        import threading
        result = {}

        def fetch():
            try:
                media.resolve_location(url + 'rhel/', cache_dir=cache, timeout=20)
            except media.InstallMediaError as exc:
                result['error'] = str(exc)

        t = threading.Thread(target=fetch)
        t.start()
        # kill it once a partial kernel sits in the cache's temporary file
        faults.wait_until(lambda: any(f.startswith('.fetch.') and os.path.getsize(
            os.path.join(d, f)) > 0 for d, dn, fs in os.walk(cache) for f in fs)
            if os.path.isdir(cache) else False, 30, what='a partial download')
        proc.send_signal(signal.SIGKILL)
        t.join(60)
        assert not t.is_alive()
    finally:
        proc.kill()
        proc.wait()
    assert 'error' in result, result
    assert 'vmlinuz' in result['error'], result['error']
    left = cache_files(cache) if os.path.isdir(cache) else []
    assert left == [], left
    faults.record('install-tree server dies mid-download',
                  'server process SIGKILLed while streaming vmlinuz (256 KiB every 0.1 s)', 1,
                  faults.short(result['error']), 'nothing in the cache', SUITE,
                  request.node.nodeid)


def test_close_delimited_truncation_is_caught_by_treeinfo_checksums(tmp_path, request):
    """Without Content-Length a cut connection looks like the end of the file; the tree's
    .treeinfo checksums are what catches it then."""
    tree = tmp_path / 'tree'
    src = os.path.join(TREES, 'rhel')
    (tree / 'images' / 'pxeboot').mkdir(parents=True)
    import hashlib
    import shutil
    sums = {}
    for rel in ('images/pxeboot/vmlinuz', 'images/pxeboot/initrd.img'):
        shutil.copy(os.path.join(src, rel), str(tree / rel))
        with open(str(tree / rel), 'rb') as f:
            sums[rel] = hashlib.sha256(f.read()).hexdigest()
    (tree / '.treeinfo').write_text(
        '[general]\narch = x86_64\n[images-x86_64]\nkernel = images/pxeboot/vmlinuz\n'
        'initrd = images/pxeboot/initrd.img\n[checksums]\n' + ''.join(
            '%s = sha256:%s\n' % kv for kv in sorted(sums.items())))
    cache = str(tmp_path / 'cache')
    proc, url = _slow_server(str(tree), mode='close', env={'KVMOPS_CUT_AT': '1000000'})
    try:
        with pytest.raises(media.InstallMediaError) as exc:
            media.resolve_location(url, cache_dir=cache, timeout=20)
    finally:
        proc.kill()
        proc.wait()
    assert 'does not match the checksum' in str(exc.value)
    assert (cache_files(cache) if os.path.isdir(cache) else []) == []
    faults.record('server closes the connection early, no Content-Length',
                  'HTTP/1.0 close-delimited body cut at 1,000,000 of 14,190,528 bytes, tree '
                  'with .treeinfo checksums', 1, faults.short(str(exc.value)),
                  'nothing in the cache', SUITE, request.node.nodeid,
                  notes='without Content-Length and without .treeinfo checksums a cut '
                        'connection cannot be told from the end of the file')


def test_a_cache_entry_that_does_not_verify_is_fetched_again(tmp_path, request):
    cache = str(tmp_path / 'cache')
    server = TreeServer(TREES)
    try:
        first = media.resolve_location(server.url + 'rhel/', cache_dir=cache)
        with open(first['kernel'], 'r+b') as f:  # one flipped byte in the cached kernel
            f.seek(1000)
            b = f.read(1)
            f.seek(1000)
            f.write(bytes([b[0] ^ 0xff]))
        before = len(server.requests)
        second = media.resolve_location(server.url + 'rhel/', cache_dir=cache)
        fetched = server.requests[before:]
    finally:
        server.close()
    assert second['fetched'] and any(r.endswith('vmlinuz') for r in fetched), fetched
    assert media.sha256_file(second['kernel']) == media.sha256_file(
        os.path.join(TREES, 'rhel', 'images', 'pxeboot', 'vmlinuz'))
    faults.record('a cached installer kernel is corrupted', 'one byte of the cached kernel '
                  'flipped between two runs', 1, 'the cache did not verify: fetched again',
                  'a verified cache entry', SUITE, request.node.nodeid)


def test_partial_download_of_a_killed_run_is_removed_by_the_next_run(tmp_path, request):
    """The run itself is SIGKILLed mid-download (the module killed): its .fetch.<pid>.* file
    stays; the next run removes it (its pid is gone) and a live run's partial file is kept."""
    cache = str(tmp_path / 'cache')
    proc, url = _slow_server(TREES)
    code = ('import sys; sys.path.insert(0, %r)\n'
            'from ansible_collections.kvmops.hypervisor.plugins.module_utils._install import media\n'
            'media.resolve_location(%r, cache_dir=%r, timeout=20)\n'
            % (media.__file__.split('/ansible_collections/', maxsplit=1)[0], url + 'rhel/', cache))
    run = subprocess.Popen([sys.executable, '-c', code])
    try:
        def partial():
            for d, dn, fs in os.walk(cache) if os.path.isdir(cache) else ():
                for f in fs:
                    if f.startswith('.fetch.') and os.path.getsize(os.path.join(d, f)) > 0:
                        return os.path.join(d, f)
            return None
        left = faults.wait_until(partial, 30, what='a partial download')
        run.send_signal(signal.SIGKILL)
        run.wait(30)
        assert os.path.exists(left)
        directory = os.path.dirname(left)
        live = os.path.join(directory, '.fetch.%d.live' % os.getpid())
        open(live, 'w').close()
        # the next run of the same source: the dead run's file goes, a live process's stays
        media.resolve_location(url + 'rhel/', cache_dir=cache, timeout=60)
    finally:
        proc.kill()
        proc.wait()
        if run.poll() is None:
            run.kill()
    assert not os.path.exists(left), left
    assert os.path.exists(live)
    os.unlink(live)
    assert [f for f in cache_files(cache) if '.fetch.' in f] == []
    faults.record('run SIGKILLed mid-download (partial .fetch file)',
                  'the process running the download SIGKILLed while vmlinuz streams', 1,
                  'the next run removed the dead run\'s .fetch.<pid>.* file, kept a live '
                  'run\'s', 'nothing', SUITE, request.node.nodeid)
