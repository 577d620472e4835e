"""install.validate_certs and install.timeout, against real servers on 127.0.0.1: an HTTPS
install tree with a self-signed certificate, and a server that accepts and never answers."""
import http.server
import socket
import ssl
import subprocess
import threading

import pytest

from ansible_collections.kvmops.hypervisor.plugins.module_utils._guest.features import install as im
from ansible_collections.kvmops.hypervisor.plugins.module_utils._install import media

SPEC = {'name': 'kvmops-t-http', 'disks': [], 'kernel': None, 'initrd': None, 'cmdline': None,
        'arch': None}


@pytest.fixture
def https_tree(tmp_path):
    (tmp_path / 'tree').mkdir()
    (tmp_path / 'tree' / 'hello.txt').write_bytes(b'install tree\n')
    key, cert = str(tmp_path / 'key.pem'), str(tmp_path / 'cert.pem')
    subprocess.run(['openssl', 'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1',
                    '-subj', '/CN=127.0.0.1', '-keyout', key, '-out', cert],
                   check=True, capture_output=True, timeout=60)
    root = str(tmp_path / 'tree')

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw):
            super(Handler, self).__init__(*a, directory=root, **kw)

        def log_message(self, *a):
            pass

    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield 'https://127.0.0.1:%d/' % server.server_address[1]
    server.shutdown()
    server.server_close()


def test_validate_certs_defaults_on_and_is_passed_through(tmp_path):
    assert im.normalize_install({'location': str(tmp_path)}, SPEC)['validate_certs'] is True
    assert im.normalize_install({'location': str(tmp_path), 'validate_certs': False},
                                SPEC)['validate_certs'] is False


def test_validate_certs_refuses_a_self_signed_tree_unless_false(https_tree):
    with pytest.raises(media.InstallMediaError) as exc:
        media.UrlTree(https_tree, validate_certs=True, timeout=10).read_small('hello.txt')
    assert https_tree in str(exc.value) and 'CERTIFICATE' in str(exc.value).upper()
    tree = media.UrlTree(https_tree, validate_certs=False, timeout=10)
    assert tree.read_small('hello.txt') == b'install tree\n'


def test_timeout_defaults_to_30_and_bounds_a_silent_server(tmp_path):
    assert im.normalize_install({'location': str(tmp_path)}, SPEC)['timeout'] == 30
    assert im.normalize_install({'location': str(tmp_path), 'timeout': 2}, SPEC)['timeout'] == 2
    silent = socket.socket()
    silent.bind(('127.0.0.1', 0))
    silent.listen(1)  # the kernel completes the handshake; nobody ever answers
    try:
        url = 'http://127.0.0.1:%d/' % silent.getsockname()[1]
        with pytest.raises(media.InstallMediaError) as exc:
            media.UrlTree(url, timeout=1).read_small('images/pxeboot/vmlinuz')
    finally:
        silent.close()
    assert url in str(exc.value) and 'timed out' in str(exc.value)


# probe_url: the preflight's one GET of an install URL (virt_install_domains' plan pass)

def test_probe_url_answers_none_for_a_served_tree_and_says_why_otherwise(tmp_path):
    from support.http_server import TreeServer
    (tmp_path / 'tree').mkdir()
    (tmp_path / 'tree' / '.treeinfo').write_bytes(b'[general]\n')
    server = TreeServer(str(tmp_path))
    try:
        assert media.probe_url(server.url + 'tree/', timeout=5) is None
        assert media.probe_url(server.url + 'nope/', timeout=5) == 'HTTP 404'
        assert server.requests == ['/tree/', '/nope/']  # the root only, no file is fetched
    finally:
        server.close()
    closed = socket.socket()
    closed.bind(('127.0.0.1', 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there
    assert 'refused' in media.probe_url('http://127.0.0.1:%d/' % port, timeout=5).lower()


def test_probe_url_honours_validate_certs_and_timeout(https_tree):
    assert 'CERTIFICATE' in media.probe_url(https_tree, validate_certs=True, timeout=10).upper()
    assert media.probe_url(https_tree, validate_certs=False, timeout=10) is None
    silent = socket.socket()
    silent.bind(('127.0.0.1', 0))
    silent.listen(1)
    try:
        why = media.probe_url('http://127.0.0.1:%d/' % silent.getsockname()[1], timeout=1)
    finally:
        silent.close()
    assert 'timed out' in why


@pytest.fixture
def silent_url():
    """A server that accepts connections (the kernel completes the handshake) and never answers."""
    silent = socket.socket()
    silent.bind(('127.0.0.1', 0))
    silent.listen(1)
    yield 'http://127.0.0.1:%d/' % silent.getsockname()[1]
    silent.close()


def media_of(location, tmp_path, **install):
    """What the install manager fetches for install.location (its options as the module gets
    them), on libvirt's test driver: the options must reach the download itself."""
    libvirt = pytest.importorskip('libvirt')
    from ansible_collections.kvmops.hypervisor.plugins.module_utils._guest import manager as dman
    conn = libvirt.open('test:///default')
    try:
        params = dict(install, location=location, cache_dir=str(tmp_path / 'cache'))
        feature = im.InstallFeature(im.normalize_install(params, SPEC))
        mgr = dman.GuestManager(conn, dict(SPEC), features=[feature])
        with pytest.raises(dman.DomainError) as exc:
            feature.resolve_media(mgr, check_mode=False)
        return str(exc.value)
    finally:
        conn.close()


def test_the_manager_passes_validate_certs_to_the_download(https_tree, tmp_path):
    msg = media_of(https_tree, tmp_path)
    assert 'CERTIFICATE' in msg.upper(), msg
    # validate_certs: false gets past the certificate; the tree has no kernel, so the paths
    # tried are reported (a 404 each) instead
    msg = media_of(https_tree, tmp_path, validate_certs=False)
    assert 'CERTIFICATE' not in msg.upper() and 'HTTP 404' in msg, msg


def test_the_manager_passes_timeout_to_the_download(silent_url, tmp_path):
    msg = media_of(silent_url, tmp_path, timeout=1)
    assert silent_url in msg and 'timed out' in msg, msg
    assert 'install.timeout=1s' in msg, msg  # not the default 30
